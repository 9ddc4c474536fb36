//! `POST /api/integrations/twilio/messages/refresh-status`.

use std::time::Duration;

use actix_web::test::TestRequest;
use smsdesk_domain::{DeliveryState, MessageStatus};

use smsdesk_test_support::world::{
    ACCOUNT, FREE_KEY, OTHER_TEAM_KEY, PRO_MEMBER_KEY, World, bearer, sid,
};

const PATH: &str = "/api/integrations/twilio/messages/refresh-status";

fn refresh(key: &str, query: &str) -> TestRequest {
    TestRequest::post()
        .uri(&format!("{PATH}{query}"))
        .insert_header(bearer(key))
}

#[actix_web::test]
async fn a_single_refresh_reports_the_new_status_and_stores_it() {
    let world = World::new();
    world.connect_twilio(1, ACCOUNT).await;
    let message = world.seed_message(1, 1, 5, MessageStatus::Sent).await;
    world
        .provider
        .set_state(&message.sid, DeliveryState::new(MessageStatus::Delivered));

    let answer = world
        .call(refresh(
            PRO_MEMBER_KEY,
            &format!("?messageSid={}", message.sid),
        ))
        .await;

    assert_eq!(answer.status.as_u16(), 200, "{}", answer.text);
    assert_eq!(answer.json["mode"], "single");
    let outcome = &answer.json["outcomes"][0];
    assert_eq!(outcome["sid"], message.sid.as_str());
    assert_eq!(outcome["previousStatus"], "sent");
    assert_eq!(outcome["newStatus"], "delivered");
    assert_eq!(outcome["outcome"], "updated");
    assert_eq!(answer.json["summary"]["updated"], 1);
    assert_eq!(answer.json["summary"]["twilioCalls"], 1);
    assert!(answer.json["summary"]["durationMs"].is_u64());
    let stored = world.store.all_messages();
    assert_eq!(stored[0].delivery.status, MessageStatus::Delivered);
}

#[actix_web::test]
async fn a_second_refresh_within_the_cooldown_is_429_with_retry_after() {
    let world = World::new();
    world.connect_twilio(1, ACCOUNT).await;
    let message = world.seed_message(1, 1, 5, MessageStatus::Sent).await;
    let query = format!("?messageSid={}", message.sid);
    let first = world.call(refresh(PRO_MEMBER_KEY, &query)).await;
    assert_eq!(first.status.as_u16(), 200, "{}", first.text);
    world.clock.advance(Duration::from_secs(20));

    let second = world.call(refresh(PRO_MEMBER_KEY, &query)).await;

    second.assert_error(429, "cooling_down", "second refresh 20 s later");
    assert_eq!(second.header("retry-after"), Some("40"));
    assert_eq!(second.json["error"]["retryAfterSeconds"], 40);
    assert_eq!(world.provider.calls(), 1, "Twilio was asked once");
}

#[actix_web::test]
async fn a_bulk_refresh_reports_every_message_and_a_summary() {
    let world = World::new();
    world.connect_twilio(1, ACCOUNT).await;
    let moved = world.seed_message(1, 1, 10, MessageStatus::Sent).await;
    let _still = world.seed_message(1, 2, 20, MessageStatus::Queued).await;
    let _old = world.seed_message(1, 3, 60 * 30, MessageStatus::Sent).await;
    let _done = world.seed_message(1, 4, 5, MessageStatus::Delivered).await;
    world
        .provider
        .set_state(&moved.sid, DeliveryState::new(MessageStatus::Delivered));

    let answer = world.call(refresh(PRO_MEMBER_KEY, "?hours=24")).await;

    assert_eq!(answer.status.as_u16(), 200, "{}", answer.text);
    assert_eq!(answer.json["mode"], "bulk");
    assert_eq!(answer.json["windowHours"], 24);
    let outcomes = answer.json["outcomes"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let kinds: Vec<(&str, &str)> = outcomes
        .iter()
        .map(|o| {
            (
                o["sid"].as_str().unwrap_or(""),
                o["outcome"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        vec![(sid(1).as_str(), "updated"), (sid(2).as_str(), "unchanged")],
        "newest first; old and delivered messages are not candidates"
    );
    let summary = &answer.json["summary"];
    assert_eq!(summary["candidates"], 2);
    assert_eq!(summary["updated"], 1);
    assert_eq!(summary["unchanged"], 1);
    assert_eq!(summary["twilioCalls"], 2);

    let again = world.call(refresh(PRO_MEMBER_KEY, "")).await;
    again.assert_error(429, "cooling_down", "bulk twice within a minute");
    assert!(again.header("retry-after").is_some());
}

#[actix_web::test]
async fn a_bulk_refresh_skips_messages_in_their_cooldown_and_says_so() {
    let world = World::new();
    world.connect_twilio(1, ACCOUNT).await;
    let message = world.seed_message(1, 1, 10, MessageStatus::Sent).await;
    let single = world
        .call(refresh(
            PRO_MEMBER_KEY,
            &format!("?messageSid={}", message.sid),
        ))
        .await;
    assert_eq!(single.status.as_u16(), 200);

    let bulk = world.call(refresh(PRO_MEMBER_KEY, "")).await;

    assert_eq!(bulk.status.as_u16(), 200, "{}", bulk.text);
    let outcome = &bulk.json["outcomes"][0];
    assert_eq!(outcome["outcome"], "skipped");
    assert_eq!(outcome["reason"], "coolingDown");
    assert_eq!(outcome["retryAfterSeconds"], 60);
}

#[actix_web::test]
async fn bad_query_values_are_400_naming_the_parameter_and_change_nothing() {
    let world = World::new();
    world.connect_twilio(1, ACCOUNT).await;
    world.seed_message(1, 1, 10, MessageStatus::Sent).await;
    let events_before = world.store.event_count();
    let cases = [
        (
            "?hours=0",
            "invalid_parameter",
            "hours",
            "below the minimum",
        ),
        (
            "?hours=169",
            "invalid_parameter",
            "hours",
            "above the maximum",
        ),
        ("?hours=abc", "invalid_parameter", "hours", "not a number"),
        ("?hours=-1", "invalid_parameter", "hours", "negative"),
        ("?hours=1.5", "invalid_parameter", "hours", "fraction"),
        ("?hours=", "invalid_parameter", "hours", "empty"),
        ("?hours=2&hours=3", "invalid_parameter", "hours", "repeated"),
        (
            "?messageSid=SM123",
            "invalid_parameter",
            "messageSid",
            "short SID",
        ),
        (
            "?messageSid=AC0123456789abcdef0123456789abcdef",
            "invalid_parameter",
            "messageSid",
            "an account SID",
        ),
        ("?hour=4", "unknown_parameter", "hour", "a typo of hours"),
        ("?limit=4", "unknown_parameter", "limit", "a list parameter"),
        (
            "?messageSid=SM00000000000000000000000000000001&hours=2",
            "conflicting_parameters",
            "hours",
            "both modes",
        ),
    ];
    for (query, code, field, why) in cases {
        let answer = world.call(refresh(PRO_MEMBER_KEY, query)).await;
        answer.assert_error(400, code, why);
        assert_eq!(answer.error_field(), Some(field), "{why}");
    }
    assert_eq!(world.provider.calls(), 0, "Twilio was never asked");
    assert_eq!(world.store.event_count(), events_before, "nothing recorded");
    let ok = world.call(refresh(PRO_MEMBER_KEY, "?hours=168")).await;
    assert_eq!(
        ok.status.as_u16(),
        200,
        "the bad values did not use the bulk cool-down"
    );
}

#[actix_web::test]
async fn the_free_plan_is_403_with_the_plan_message() {
    let world = World::new();
    for query in ["", "?messageSid=SM00000000000000000000000000000001"] {
        let answer = world.call(refresh(FREE_KEY, query)).await;
        answer.assert_error(403, "plan_required", query);
        assert_eq!(
            answer.json["error"]["message"],
            "status refresh needs the Pro or Enterprise plan"
        );
    }
}

#[actix_web::test]
async fn another_teams_message_is_404_not_403() {
    let world = World::new();
    world.connect_twilio(1, ACCOUNT).await;
    let message = world.seed_message(1, 1, 10, MessageStatus::Sent).await;
    let answer = world
        .call(refresh(
            OTHER_TEAM_KEY,
            &format!("?messageSid={}", message.sid),
        ))
        .await;
    answer.assert_error(404, "not_found", "team 2 asks for team 1's message");
    assert_eq!(world.provider.calls(), 0);
}

#[actix_web::test]
async fn a_refresh_without_an_integration_is_409() {
    let world = World::new();
    let message = world.seed_message(1, 1, 10, MessageStatus::Sent).await;
    let answer = world
        .call(refresh(
            PRO_MEMBER_KEY,
            &format!("?messageSid={}", message.sid),
        ))
        .await;
    answer.assert_error(409, "integration_missing", "no Twilio configured");
}

#[actix_web::test]
async fn twilio_failing_a_single_refresh_is_502_with_twilios_code() {
    let world = World::new();
    world.connect_twilio(1, ACCOUNT).await;
    let message = world.seed_message(1, 1, 10, MessageStatus::Sent).await;
    world.provider.set_error(
        &message.sid,
        smsdesk_domain::ports::ProviderError::CredentialsRejected {
            code: Some(20003),
            message: "Authenticate".into(),
        },
    );
    let answer = world
        .call(refresh(
            PRO_MEMBER_KEY,
            &format!("?messageSid={}", message.sid),
        ))
        .await;
    answer.assert_error(
        502,
        "twilio_credentials_rejected",
        "Twilio refuses the token",
    );
    assert_eq!(answer.json["error"]["twilioCode"], 20003);
}

#[actix_web::test]
async fn refreshes_feed_the_metrics() {
    let world = World::new();
    world.connect_twilio(1, ACCOUNT).await;
    let message = world.seed_message(1, 1, 10, MessageStatus::Sent).await;
    world
        .provider
        .set_state(&message.sid, DeliveryState::new(MessageStatus::Delivered));
    let query = format!("?messageSid={}", message.sid);
    world.call(refresh(PRO_MEMBER_KEY, &query)).await;
    world.call(refresh(PRO_MEMBER_KEY, &query)).await;

    let metrics = world.call(TestRequest::get().uri("/metrics")).await;

    assert_eq!(metrics.status.as_u16(), 200);
    for expected in [
        r#"smsdesk_status_transitions_total{from="sent",to="delivered"} 1"#,
        r#"smsdesk_twilio_calls_total{operation="fetch",outcome="ok"} 1"#,
        r#"smsdesk_cooldown_rejections_total{scope="message"} 1"#,
        r#"smsdesk_refresh_duration_seconds_count{kind="single"} 2"#,
        r#"route="/api/integrations/twilio/messages/refresh-status",method="POST",status="429"} 1"#,
        // One answer of each class on the route's duration histogram, in buckets of 1 ms to 10 s.
        r#"smsdesk_http_request_duration_seconds_count{route="/api/integrations/twilio/messages/refresh-status",status_class="2xx"} 1"#,
        r#"smsdesk_http_request_duration_seconds_count{route="/api/integrations/twilio/messages/refresh-status",status_class="4xx"} 1"#,
        r#"smsdesk_http_request_duration_seconds_bucket{le="0.001",route="/api/integrations/twilio/messages/refresh-status",status_class="2xx"}"#,
        r#"smsdesk_http_request_duration_seconds_bucket{le="10.0",route="/api/integrations/twilio/messages/refresh-status",status_class="2xx"} 1"#,
    ] {
        assert!(
            metrics.text.contains(expected),
            "missing {expected} in\n{}",
            metrics.text
        );
    }
}
