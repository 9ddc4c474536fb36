//! Twilio's webhooks: `POST /api/integrations/twilio/status-callback` and
//! `POST /api/integrations/twilio/sms/receive`, signed as Twilio signs them.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use actix_web::test::TestRequest;
use smsdesk_domain::ports::{CallbackInbox, MessageRepository, MockCallbackInbox, RepositoryError};
use smsdesk_domain::{Direction, MessageSid, MessageStatus, ObservationSource};
use smsdesk_twilio::signature::{SIGNATURE_HEADER, compute_signature};
use smsdesk_web::{RateLimitConfig, WebConfig};

use smsdesk_test_support::world::{ACCOUNT, AUTH_TOKEN, PRO_MEMBER_KEY, World, bearer, sid, team};

const BASE: &str = "https://sms.example.com";
const CALLBACK: &str = "/api/integrations/twilio/status-callback";
const RECEIVE: &str = "/api/integrations/twilio/sms/receive";
const OTHER_ACCOUNT: &str = "ACfedcba9876543210fedcba9876543210";
const OTHER_TOKEN: &str = "tok_other_team_0000000000000000000";
const UNKNOWN_ACCOUNT: &str = "AC00000000000000000000000000000000";
const EMPTY_TWIML: &str = r#"<?xml version="1.0" encoding="UTF-8"?><Response></Response>"#;

fn config() -> WebConfig {
    WebConfig {
        public_base_url: Some(BASE.into()),
        ..WebConfig::default()
    }
}

fn owned(params: &[(&str, &str)]) -> Vec<(String, String)> {
    params
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn form_body(params: &[(&str, &str)]) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params)
        .finish()
}

/// A form POST to `path` without a signature.
fn unsigned(path: &str, params: &[(&str, &str)]) -> TestRequest {
    TestRequest::post()
        .uri(path)
        .insert_header(("content-type", "application/x-www-form-urlencoded"))
        .set_payload(form_body(params))
}

/// A form POST to `path`, signed with `token` over `url` (what Twilio requested).
fn signed_over(url: &str, path: &str, params: &[(&str, &str)], token: &str) -> TestRequest {
    let signature = compute_signature(token, url, &owned(params));
    unsigned(path, params).insert_header((SIGNATURE_HEADER, signature))
}

/// A form POST to `path` signed as Twilio would for team 1's account.
fn signed(path: &str, params: &[(&str, &str)]) -> TestRequest {
    signed_over(&format!("{BASE}{path}"), path, params, AUTH_TOKEN)
}

fn callback_params<'a>(sid: &'a str, status: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("AccountSid", ACCOUNT),
        ("ApiVersion", "2010-04-01"),
        ("From", "+15005550006"),
        ("MessageSid", sid),
        ("MessageStatus", status),
        ("SmsSid", sid),
        ("SmsStatus", status),
        ("To", "+14155550100"),
    ]
}

fn callback(sid: &str, status: &str) -> TestRequest {
    signed(CALLBACK, &callback_params(sid, status))
}

async fn stored_status(world: &World, sid: &MessageSid) -> Option<MessageStatus> {
    MessageRepository::find(&world.store, team(1), sid)
        .await
        .expect("store")
        .map(|m| m.delivery.status)
}

async fn callback_events(world: &World, sid: &MessageSid) -> Vec<(MessageStatus, bool)> {
    MessageRepository::history(&world.store, team(1), sid)
        .await
        .expect("history")
        .into_iter()
        .filter(|e| e.observation.source == ObservationSource::Callback)
        .map(|e| (e.observation.state.status, e.applied))
        .collect()
}

fn metric(world: &World, line_start: &str) -> Option<String> {
    world
        .state
        .metrics()
        .encode()
        .lines()
        .find(|line| line.starts_with(line_start))
        .map(|line| line[line_start.len()..].trim().to_owned())
}

fn assert_twiml(answer: &smsdesk_test_support::world::Answer, why: &str) {
    assert_eq!(answer.status.as_u16(), 200, "{why}: {}", answer.text);
    assert_eq!(answer.text, EMPTY_TWIML, "{why}: empty TwiML");
    assert!(
        answer
            .header("content-type")
            .is_some_and(|c| c.starts_with("text/xml")),
        "{why}: TwiML is XML, got {:?}",
        answer.header("content-type")
    );
}

#[actix_web::test]
async fn a_late_sent_after_delivered_is_recorded_as_stale_and_the_message_stays_delivered() {
    let world = World::with(config(), None);
    world.connect_twilio(1, ACCOUNT).await;
    let message = world.seed_message(1, 1, 5, MessageStatus::Queued).await;
    let sid = message.sid.to_string();

    assert_twiml(&world.call(callback(&sid, "delivered")).await, "delivered");
    assert_twiml(&world.call(callback(&sid, "sent")).await, "late sent");

    assert_eq!(
        stored_status(&world, &message.sid).await,
        Some(MessageStatus::Delivered),
        "a status never moves backwards"
    );
    assert_eq!(
        callback_events(&world, &message.sid).await,
        vec![
            (MessageStatus::Delivered, true),
            (MessageStatus::Sent, false)
        ],
        "both observations are recorded; only delivered was applied"
    );
    assert_eq!(
        metric(
            &world,
            r#"smsdesk_status_callbacks_total{outcome="advanced"}"#
        )
        .as_deref(),
        Some("1")
    );
    assert_eq!(
        metric(&world, r#"smsdesk_status_callbacks_total{outcome="stale"}"#).as_deref(),
        Some("1")
    );
}

#[actix_web::test]
async fn a_retried_callback_is_counted_once_in_history_and_as_a_duplicate_in_metrics() {
    let world = World::with(config(), None);
    world.connect_twilio(1, ACCOUNT).await;
    let message = world.seed_message(1, 1, 5, MessageStatus::Sent).await;
    let sid = message.sid.to_string();

    for attempt in ["first", "retry", "second retry"] {
        assert_twiml(&world.call(callback(&sid, "delivered")).await, attempt);
    }

    assert_eq!(
        callback_events(&world, &message.sid).await,
        vec![(MessageStatus::Delivered, true)],
        "retries of the same (sid, status) are not recorded again"
    );
    assert_eq!(
        metric(
            &world,
            r#"smsdesk_status_callbacks_total{outcome="advanced"}"#
        )
        .as_deref(),
        Some("1")
    );
    assert_eq!(
        metric(
            &world,
            r#"smsdesk_status_callbacks_total{outcome="duplicate"}"#
        )
        .as_deref(),
        Some("2")
    );
}

#[actix_web::test]
async fn a_failed_callback_stores_its_error_code() {
    let world = World::with(config(), None);
    world.connect_twilio(1, ACCOUNT).await;
    let message = world.seed_message(1, 1, 5, MessageStatus::Sent).await;
    let sid = message.sid.to_string();
    let mut params = callback_params(&sid, "undelivered");
    params.push(("ErrorCode", "30003"));

    assert_twiml(&world.call(signed(CALLBACK, &params)).await, "undelivered");

    let stored = MessageRepository::find(&world.store, team(1), &message.sid)
        .await
        .expect("store")
        .expect("message");
    assert_eq!(stored.delivery.status, MessageStatus::Undelivered);
    assert_eq!(stored.delivery.error_code, Some(30003));
}

#[actix_web::test]
async fn legacy_sms_sid_and_sms_status_are_understood() {
    let world = World::with(config(), None);
    world.connect_twilio(1, ACCOUNT).await;
    let message = world.seed_message(1, 1, 5, MessageStatus::Queued).await;
    let sid = message.sid.to_string();
    let params = [
        ("AccountSid", ACCOUNT),
        ("SmsSid", sid.as_str()),
        ("SmsStatus", "sent"),
    ];

    assert_twiml(&world.call(signed(CALLBACK, &params)).await, "legacy names");
    assert_eq!(
        stored_status(&world, &message.sid).await,
        Some(MessageStatus::Sent)
    );
}

#[actix_web::test]
async fn unauthenticated_webhooks_are_one_indistinguishable_403_and_change_nothing() {
    let world = World::with(config(), None);
    world.connect_twilio(1, ACCOUNT).await;
    world
        .connect_twilio_with_token(2, OTHER_ACCOUNT, OTHER_TOKEN)
        .await;
    let message = world.seed_message(1, 1, 5, MessageStatus::Sent).await;
    let sid = message.sid.to_string();
    let events_before = world.store.event_count();
    let params = callback_params(&sid, "delivered");
    let url = format!("{BASE}{CALLBACK}");
    let mut other_account = callback_params(&sid, "delivered");
    other_account[0].1 = OTHER_ACCOUNT;
    let mut unknown_account = callback_params(&sid, "delivered");
    unknown_account[0].1 = UNKNOWN_ACCOUNT;
    let mut tampered = callback_params(&sid, "delivered");
    let signature = compute_signature(AUTH_TOKEN, &url, &owned(&tampered));
    tampered[4].1 = "read";

    let cases = [
        (unsigned(CALLBACK, &params), "no signature"),
        (
            unsigned(CALLBACK, &params)
                .insert_header((SIGNATURE_HEADER, "Zm9yZ2VkIHNpZ25hdHVyZQ==")),
            "a forged signature",
        ),
        (
            signed_over(&url, CALLBACK, &params, "not-the-auth-token"),
            "signed with the wrong token",
        ),
        (
            signed_over(&format!("{BASE}{RECEIVE}"), CALLBACK, &params, AUTH_TOKEN),
            "signed for another URL",
        ),
        (
            unsigned(CALLBACK, &tampered).insert_header((SIGNATURE_HEADER, signature)),
            "a parameter changed after signing",
        ),
        (
            signed_over(&url, CALLBACK, &other_account, AUTH_TOKEN),
            "another team's account signed with this team's token",
        ),
        (
            signed_over(&url, CALLBACK, &unknown_account, AUTH_TOKEN),
            "an account no team has",
        ),
        (
            signed_over(&url, CALLBACK, &unknown_account, "any-token"),
            "an account no team has, any token",
        ),
    ];
    let mut bodies = Vec::new();
    for (request, why) in cases {
        let answer = world.call(request).await;
        answer.assert_error(403, "invalid_signature", why);
        bodies.push(answer.text);
    }
    bodies.dedup();
    assert_eq!(
        bodies.len(),
        1,
        "every refusal reads the same, so accounts cannot be probed: {bodies:?}"
    );

    assert_eq!(
        stored_status(&world, &message.sid).await,
        Some(MessageStatus::Sent),
        "nothing applied"
    );
    assert_eq!(world.store.event_count(), events_before, "nothing recorded");
    for team_id in [1, 2] {
        assert!(
            CallbackInbox::take_parked(&world.store, team(team_id), &message.sid)
                .await
                .expect("inbox")
                .is_empty(),
            "nothing parked for team {team_id}"
        );
    }
    assert_eq!(
        metric(&world, "smsdesk_status_callbacks_total"),
        None,
        "no callback was taken"
    );
}

#[actix_web::test]
async fn a_validly_signed_callback_from_another_teams_account_cannot_touch_this_teams_message() {
    let world = World::with(config(), None);
    world.connect_twilio(1, ACCOUNT).await;
    world
        .connect_twilio_with_token(2, OTHER_ACCOUNT, OTHER_TOKEN)
        .await;
    let message = world.seed_message(1, 1, 5, MessageStatus::Sent).await;
    let mut params = callback_params(message.sid.as_str(), "delivered");
    params[0].1 = OTHER_ACCOUNT;

    let answer = world
        .call(signed_over(
            &format!("{BASE}{CALLBACK}"),
            CALLBACK,
            &params,
            OTHER_TOKEN,
        ))
        .await;

    assert_twiml(&answer, "team 2's own callback is taken");
    assert_eq!(
        stored_status(&world, &message.sid).await,
        Some(MessageStatus::Sent),
        "team 1's message is not team 2's to change"
    );
    assert_eq!(
        metric(
            &world,
            r#"smsdesk_status_callbacks_total{outcome="parked"}"#
        )
        .as_deref(),
        Some("1"),
        "team 2 has no such message, so the callback waits for one"
    );
}

#[actix_web::test]
async fn inbound_sms_is_refused_without_a_valid_signature() {
    let world = World::with(config(), None);
    world.connect_twilio(1, ACCOUNT).await;
    let sms = inbound_params("SM0000000000000000000000000000abcd");
    let answer = world
        .call(signed_over(
            &format!("{BASE}{RECEIVE}"),
            RECEIVE,
            &sms,
            "not-the-auth-token",
        ))
        .await;
    answer.assert_error(403, "invalid_signature", "wrong token");
    assert!(world.store.all_messages().is_empty(), "nothing stored");
}

#[actix_web::test]
async fn a_callback_that_beats_the_send_is_parked_and_applied_when_the_send_is_stored() {
    let world = World::with(config(), None);
    world.connect_twilio(1, ACCOUNT).await;
    // The fake Twilio hands out SM…01 to the first message sent.
    let first = sid(1);

    let answer = world.call(callback(first.as_str(), "delivered")).await;
    assert_twiml(
        &answer,
        "a callback for a message not stored yet is still taken",
    );
    assert!(world.store.all_messages().is_empty());
    assert_eq!(
        metric(
            &world,
            r#"smsdesk_status_callbacks_total{outcome="parked"}"#
        )
        .as_deref(),
        Some("1")
    );

    let sent = world
        .call(
            TestRequest::post()
                .uri("/api/integrations/twilio/sms/send")
                .insert_header(bearer(PRO_MEMBER_KEY))
                .set_json(serde_json::json!({"to": "+14155550100", "body": "hello"})),
        )
        .await;

    assert_eq!(sent.status.as_u16(), 201, "{}", sent.text);
    assert_eq!(sent.json["sid"], first.as_str());
    assert_eq!(
        sent.json["status"], "delivered",
        "the send answers with the parked callback applied"
    );
    assert_eq!(
        stored_status(&world, &first).await,
        Some(MessageStatus::Delivered)
    );
    assert_eq!(
        callback_events(&world, &first).await,
        vec![(MessageStatus::Delivered, true)]
    );
    assert_eq!(
        metric(
            &world,
            r#"smsdesk_parked_callbacks_replayed_total{outcome="advanced"}"#
        )
        .as_deref(),
        Some("1")
    );
}

#[actix_web::test]
async fn a_send_succeeds_even_when_replaying_parked_callbacks_fails() {
    let mut inbox = MockCallbackInbox::new();
    inbox
        .expect_take_parked()
        .returning(|_, _| Err(RepositoryError::Unavailable("inbox down".into())));
    let world = World::with_inbox(config(), None, Some(Arc::new(inbox)));
    world.connect_twilio(1, ACCOUNT).await;

    let sent = world
        .call(
            TestRequest::post()
                .uri("/api/integrations/twilio/sms/send")
                .insert_header(bearer(PRO_MEMBER_KEY))
                .set_json(serde_json::json!({"to": "+14155550100", "body": "hello"})),
        )
        .await;

    assert_eq!(sent.status.as_u16(), 201, "{}", sent.text);
    assert_eq!(sent.json["status"], "queued");
    assert_eq!(world.store.all_messages().len(), 1);
}

#[actix_web::test]
async fn parked_callbacks_older_than_the_cutoff_are_discarded() {
    let world = World::with(config(), None);
    world.connect_twilio(1, ACCOUNT).await;
    assert_twiml(
        &world.call(callback(sid(1).as_str(), "delivered")).await,
        "parked",
    );

    world.clock.advance(Duration::from_secs(30 * 60));
    assert_eq!(
        world
            .state
            .discard_stale_parked_callbacks(Duration::from_secs(3600))
            .await,
        Ok(0),
        "30 minutes old is kept under a one-hour cutoff"
    );
    world.clock.advance(Duration::from_secs(31 * 60));
    assert_eq!(
        world
            .state
            .discard_stale_parked_callbacks(Duration::from_secs(3600))
            .await,
        Ok(1),
        "61 minutes old is discarded"
    );
    assert_eq!(
        metric(&world, "smsdesk_parked_callbacks_discarded_total").as_deref(),
        Some("1")
    );
    assert!(
        CallbackInbox::take_parked(&world.store, team(1), &sid(1))
            .await
            .expect("inbox")
            .is_empty()
    );
}

fn inbound_params(sid: &str) -> Vec<(&str, &str)> {
    vec![
        ("AccountSid", ACCOUNT),
        ("ApiVersion", "2010-04-01"),
        ("Body", "Hi there & welcome"),
        ("From", "+14155550100"),
        ("MessageSid", sid),
        ("NumMedia", "0"),
        ("NumSegments", "1"),
        ("SmsMessageSid", sid),
        ("SmsSid", sid),
        ("SmsStatus", "received"),
        ("To", "+15005550006"),
    ]
}

#[actix_web::test]
async fn an_inbound_sms_is_stored_once_per_message_sid_and_answered_with_empty_twiml() {
    let world = World::with(config(), None);
    world.connect_twilio(1, ACCOUNT).await;
    let raw_sid = "SM0000000000000000000000000000abcd";

    for attempt in ["first", "Twilio's retry"] {
        assert_twiml(
            &world.call(signed(RECEIVE, &inbound_params(raw_sid))).await,
            attempt,
        );
    }

    let messages = world.store.all_messages();
    assert_eq!(messages.len(), 1, "stored once: {messages:?}");
    let message = &messages[0];
    assert_eq!(message.sid.as_str(), raw_sid);
    assert_eq!(message.team_id, team(1));
    assert_eq!(message.direction, Direction::Inbound);
    assert_eq!(message.delivery.status, MessageStatus::Received);
    assert_eq!(message.body, "Hi there & welcome");
    assert_eq!(message.from.as_str(), "+14155550100");
    assert_eq!(message.to.as_str(), "+15005550006");
    assert_eq!(message.delivery.num_segments, Some(1));
    assert_eq!(
        metric(&world, r#"smsdesk_inbound_sms_total{outcome="stored"}"#).as_deref(),
        Some("1")
    );
    assert_eq!(
        metric(&world, r#"smsdesk_inbound_sms_total{outcome="duplicate"}"#).as_deref(),
        Some("1")
    );
}

/// A callback that reached the service through a proxy which rewrote scheme and host.
fn proxied_callback(sid: &str, signed_url: &str) -> TestRequest {
    let params = callback_params(sid, "delivered");
    signed_over(signed_url, CALLBACK, &params, AUTH_TOKEN)
        .insert_header(("host", "internal:8080"))
        .insert_header(("x-forwarded-proto", "https"))
        .insert_header(("x-forwarded-host", "sms.example.com"))
}

#[actix_web::test]
async fn forwarded_scheme_and_host_are_honoured_only_from_a_trusted_proxy() {
    let public = format!("{BASE}{CALLBACK}");
    let internal = format!("http://internal:8080{CALLBACK}");
    let cases = [
        (
            true,
            public.as_str(),
            200,
            "trusted proxy: the public URL it describes",
        ),
        (
            true,
            internal.as_str(),
            403,
            "trusted proxy: the internal URL is not what Twilio signed",
        ),
        (
            false,
            public.as_str(),
            403,
            "untrusted: forwarded headers are ignored",
        ),
        (
            false,
            internal.as_str(),
            200,
            "untrusted: the request's own URL",
        ),
    ];
    for (trust, signed_url, expected, why) in cases {
        let world = World::with(
            WebConfig {
                trust_forwarded_headers: trust,
                ..WebConfig::default()
            },
            None,
        );
        world.connect_twilio(1, ACCOUNT).await;
        let message = world.seed_message(1, 1, 5, MessageStatus::Sent).await;
        let answer = world
            .call(proxied_callback(message.sid.as_str(), signed_url))
            .await;
        assert_eq!(answer.status.as_u16(), expected, "{why}: {}", answer.text);
        let expected_status = if expected == 200 {
            MessageStatus::Delivered
        } else {
            MessageStatus::Sent
        };
        assert_eq!(
            stored_status(&world, &message.sid).await,
            Some(expected_status),
            "{why}"
        );
    }
}

#[actix_web::test]
async fn the_query_string_is_part_of_the_signed_url() {
    let world = World::with(config(), None);
    world.connect_twilio(1, ACCOUNT).await;
    let message = world.seed_message(1, 1, 5, MessageStatus::Sent).await;
    let path = format!("{CALLBACK}?tenant=a%20b");
    let params = callback_params(message.sid.as_str(), "delivered");

    let without_query = signed_over(&format!("{BASE}{CALLBACK}"), &path, &params, AUTH_TOKEN);
    world.call(without_query).await.assert_error(
        403,
        "invalid_signature",
        "signed without the query string",
    );

    let with_query = signed_over(&format!("{BASE}{path}"), &path, &params, AUTH_TOKEN);
    assert_twiml(
        &world.call(with_query).await,
        "signed over the URL as requested",
    );
}

#[actix_web::test]
async fn malformed_webhooks_are_4xx_in_the_error_shape_and_change_nothing() {
    let world = World::with(config(), None);
    world.connect_twilio(1, ACCOUNT).await;
    let message = world.seed_message(1, 1, 5, MessageStatus::Sent).await;
    let sid = message.sid.to_string();
    let events_before = world.store.event_count();
    let with = |extra: &[(&'static str, &'static str)], drop: &str| {
        let mut params: Vec<(&str, &str)> = callback_params(&sid, "delivered")
            .into_iter()
            .filter(|(k, _)| *k != drop)
            .collect();
        params.extend_from_slice(extra);
        params
    };
    let no_sid: Vec<(&str, &str)> = with(&[], "MessageSid")
        .into_iter()
        .filter(|(k, _)| *k != "SmsSid")
        .collect();
    let no_status: Vec<(&str, &str)> = with(&[], "MessageStatus")
        .into_iter()
        .filter(|(k, _)| *k != "SmsStatus")
        .collect();
    let bad_sid = [
        ("AccountSid", ACCOUNT),
        ("MessageSid", "SM123"),
        ("MessageStatus", "delivered"),
    ];
    let no_account = with(&[], "AccountSid");
    let bad_account = [
        ("AccountSid", "AC-not-a-sid"),
        ("MessageSid", sid.as_str()),
        ("MessageStatus", "delivered"),
    ];
    let cases = [
        (
            signed(CALLBACK, &no_sid),
            400,
            "invalid_field",
            Some("MessageSid"),
            "no MessageSid",
        ),
        (
            signed(CALLBACK, &bad_sid),
            400,
            "invalid_field",
            Some("MessageSid"),
            "malformed SID",
        ),
        (
            signed(CALLBACK, &no_status),
            400,
            "invalid_field",
            Some("MessageStatus"),
            "no status",
        ),
        (
            signed(CALLBACK, &with(&[("MessageStatus", "")], "MessageStatus")),
            400,
            "invalid_field",
            Some("MessageStatus"),
            "an empty status",
        ),
        (
            signed(
                CALLBACK,
                &with(&[("MessageStatus", "<b>delivered</b>")], "MessageStatus"),
            ),
            400,
            "invalid_field",
            Some("MessageStatus"),
            "markup instead of a status word",
        ),
        (
            signed(
                CALLBACK,
                &with(
                    &[("MessageStatus", "delivered-to-the-handset-and-then-some")],
                    "MessageStatus",
                ),
            ),
            400,
            "invalid_field",
            Some("MessageStatus"),
            "a status word too long to be one",
        ),
        (
            signed(CALLBACK, &with(&[("ErrorCode", "thirty")], "")),
            400,
            "invalid_field",
            Some("ErrorCode"),
            "non-integer ErrorCode",
        ),
        (
            signed(CALLBACK, &no_account),
            400,
            "invalid_field",
            Some("AccountSid"),
            "no AccountSid",
        ),
        (
            signed(CALLBACK, &bad_account),
            400,
            "invalid_field",
            Some("AccountSid"),
            "malformed AccountSid",
        ),
        (
            TestRequest::post()
                .uri(CALLBACK)
                .set_json(serde_json::json!({"MessageSid": sid, "MessageStatus": "delivered"})),
            415,
            "unsupported_media_type",
            None,
            "JSON instead of a form",
        ),
        (
            TestRequest::post()
                .uri(CALLBACK)
                .set_payload("MessageSid=x"),
            415,
            "unsupported_media_type",
            None,
            "no content type",
        ),
        (
            TestRequest::get().uri(CALLBACK),
            405,
            "method_not_allowed",
            None,
            "GET",
        ),
        (
            signed(
                RECEIVE,
                &[
                    ("AccountSid", ACCOUNT),
                    ("MessageSid", "SM0000000000000000000000000000abcd"),
                    ("To", "+15005550006"),
                ],
            ),
            400,
            "invalid_field",
            Some("From"),
            "inbound without From",
        ),
        (
            signed(
                RECEIVE,
                &[
                    ("AccountSid", ACCOUNT),
                    ("From", "+14155550100"),
                    ("MessageSid", "SM0000000000000000000000000000abcd"),
                    ("NumSegments", "two"),
                    ("To", "+15005550006"),
                ],
            ),
            400,
            "invalid_field",
            Some("NumSegments"),
            "inbound with a non-integer NumSegments",
        ),
    ];
    for (request, status, code, field, why) in cases {
        let answer = world.call(request).await;
        answer.assert_error(status, code, why);
        assert_eq!(answer.error_field(), field, "{why}");
    }
    assert_eq!(
        stored_status(&world, &message.sid).await,
        Some(MessageStatus::Sent),
        "nothing applied"
    );
    assert_eq!(world.store.event_count(), events_before, "nothing recorded");
    assert_eq!(world.store.all_messages().len(), 1, "no inbound stored");
}

#[actix_web::test]
async fn a_store_outage_is_503_so_that_twilio_retries() {
    let world = World::with(config(), None);
    world.connect_twilio(1, ACCOUNT).await;
    let message = world.seed_message(1, 1, 5, MessageStatus::Sent).await;
    world.store.set_unavailable(true);

    for (request, why) in [
        (
            callback(message.sid.as_str(), "delivered"),
            "status callback",
        ),
        (
            signed(
                RECEIVE,
                &inbound_params("SM0000000000000000000000000000abcd"),
            ),
            "inbound SMS",
        ),
    ] {
        world
            .call(request)
            .await
            .assert_error(503, "store_unavailable", why);
    }
}

#[actix_web::test]
async fn webhooks_need_no_api_key_but_are_rate_limited_per_ip() {
    let world = World::with(
        WebConfig {
            rate_limits: RateLimitConfig {
                per_webhook_ip_per_minute: NonZeroU32::MIN,
                per_webhook_ip_burst: NonZeroU32::MIN,
                ..RateLimitConfig::default()
            },
            ..config()
        },
        None,
    );
    world.connect_twilio(1, ACCOUNT).await;
    let message = world.seed_message(1, 1, 5, MessageStatus::Sent).await;

    assert_twiml(
        &world
            .call(callback(message.sid.as_str(), "delivered"))
            .await,
        "no Authorization header is needed",
    );
    world
        .call(callback(message.sid.as_str(), "read"))
        .await
        .assert_error(
            429,
            "rate_limited",
            "the second request from one IP in a burst of one",
        );
}

#[actix_web::test]
async fn a_status_word_twilio_adds_later_is_recorded_verbatim_and_moves_nothing() {
    let world = World::with(config(), None);
    world.connect_twilio(1, ACCOUNT).await;
    let message = world.seed_message(1, 1, 5, MessageStatus::Sent).await;
    let sid = message.sid.to_string();

    assert_twiml(
        &world.call(callback(&sid, "held_for_review")).await,
        "an unknown but well-formed status",
    );

    assert_eq!(
        stored_status(&world, &message.sid).await,
        Some(MessageStatus::Sent),
        "a status that cannot be placed moves nothing"
    );
    assert_eq!(
        callback_events(&world, &message.sid).await,
        vec![(MessageStatus::parse("held_for_review"), false)],
        "the observation is kept, word for word"
    );
}
