//! `GET /api/messages` and `GET /api/messages/{sid}`.

use actix_web::test::TestRequest;
use smsdesk_domain::{DeliveryState, MessageStatus};
use smsdesk_web::WebConfig;

use smsdesk_test_support::world::{ACCOUNT, OTHER_TEAM_KEY, PRO_MEMBER_KEY, World, bearer, sid};

fn get(key: &str, uri: &str) -> TestRequest {
    TestRequest::get().uri(uri).insert_header(bearer(key))
}

#[actix_web::test]
async fn pages_follow_the_cursor_newest_first_until_the_end() {
    let world = World::new();
    for number in 1..=5 {
        world
            .seed_message(1, number, i64::from(10 * number), MessageStatus::Sent)
            .await;
    }
    world.seed_message(2, 99, 1, MessageStatus::Sent).await;

    let mut seen = Vec::new();
    let mut uri = "/api/messages?limit=2".to_owned();
    for _page in 0..5 {
        let answer = world.call(get(PRO_MEMBER_KEY, &uri)).await;
        assert_eq!(answer.status.as_u16(), 200, "{}", answer.text);
        for message in answer.json["messages"]
            .as_array()
            .cloned()
            .unwrap_or_default()
        {
            seen.push(message["sid"].as_str().unwrap_or_default().to_owned());
        }
        match answer.json["nextCursor"].as_str() {
            Some(cursor) => uri = format!("/api/messages?limit=2&cursor={cursor}"),
            None => break,
        }
    }
    let expected: Vec<String> = (1..=5).map(|n| sid(n).to_string()).collect();
    assert_eq!(
        seen, expected,
        "newest first, every message once, team 2's never"
    );
}

#[actix_web::test]
async fn filters_narrow_the_list() {
    let world = World::new();
    world.seed_message(1, 1, 10, MessageStatus::Sent).await;
    world.seed_message(1, 2, 20, MessageStatus::Delivered).await;
    world.seed_message(1, 3, 60 * 48, MessageStatus::Sent).await;
    let since = (world.clock_now() - chrono::Duration::hours(1)).to_rfc3339();
    let cases = [
        ("?status=sent".to_owned(), vec![1, 3], "by status"),
        ("?direction=inbound".to_owned(), vec![], "by direction"),
        (
            format!("?since={}", since.replace('+', "%2B")),
            vec![1, 2],
            "by creation time",
        ),
        (
            format!("?status=sent&since={}", since.replace('+', "%2B")),
            vec![1],
            "combined",
        ),
    ];
    for (query, expected, why) in cases {
        let answer = world
            .call(get(PRO_MEMBER_KEY, &format!("/api/messages{query}")))
            .await;
        assert_eq!(answer.status.as_u16(), 200, "{why}: {}", answer.text);
        let sids: Vec<String> = answer.json["messages"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|m| m["sid"].as_str().unwrap_or_default().to_owned())
            .collect();
        let expected: Vec<String> = expected.into_iter().map(|n| sid(n).to_string()).collect();
        assert_eq!(sids, expected, "{why}");
    }
}

#[actix_web::test]
async fn bad_list_parameters_are_400_naming_the_parameter() {
    let world = World::new();
    let cases = [
        (
            "?cursor=not-a-cursor",
            "invalid_parameter",
            "cursor",
            "garbage cursor",
        ),
        ("?limit=0", "invalid_parameter", "limit", "zero"),
        ("?limit=201", "invalid_parameter", "limit", "over 200"),
        ("?limit=ten", "invalid_parameter", "limit", "words"),
        ("?limit=+5", "invalid_parameter", "limit", "sign"),
        (
            "?direction=outbound",
            "invalid_parameter",
            "direction",
            "not Twilio's word",
        ),
        (
            "?status=Delivered",
            "invalid_parameter",
            "status",
            "capitalised",
        ),
        (
            "?since=yesterday",
            "invalid_parameter",
            "since",
            "not RFC 3339",
        ),
        ("?sort=asc", "unknown_parameter", "sort", "unknown key"),
    ];
    for (query, code, field, why) in cases {
        let answer = world
            .call(get(PRO_MEMBER_KEY, &format!("/api/messages{query}")))
            .await;
        answer.assert_error(400, code, why);
        assert_eq!(answer.error_field(), Some(field), "{why}");
    }
}

#[actix_web::test]
async fn a_message_is_shown_with_its_history() {
    let world = World::new();
    world.connect_twilio(1, ACCOUNT).await;
    let message = world.seed_message(1, 1, 10, MessageStatus::Sent).await;
    world
        .provider
        .set_state(&message.sid, DeliveryState::new(MessageStatus::Delivered));
    let refreshed = world
        .call(
            TestRequest::post()
                .uri(&format!(
                    "/api/integrations/twilio/messages/refresh-status?messageSid={}",
                    message.sid
                ))
                .insert_header(bearer(PRO_MEMBER_KEY)),
        )
        .await;
    assert_eq!(refreshed.status.as_u16(), 200);

    let answer = world
        .call(get(
            PRO_MEMBER_KEY,
            &format!("/api/messages/{}", message.sid),
        ))
        .await;

    assert_eq!(answer.status.as_u16(), 200, "{}", answer.text);
    assert_eq!(answer.json["status"], "delivered");
    let history: Vec<(String, String)> = answer.json["history"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|e| {
            (
                e["status"].as_str().unwrap_or_default().to_owned(),
                e["source"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        history,
        vec![
            ("sent".to_owned(), "send".to_owned()),
            ("delivered".to_owned(), "poll".to_owned())
        ]
    );
}

#[actix_web::test]
async fn unknown_malformed_and_foreign_messages_are_refused() {
    let world = World::new();
    let message = world.seed_message(1, 1, 10, MessageStatus::Sent).await;
    let cases = [
        (
            PRO_MEMBER_KEY,
            "/api/messages/SM123".to_owned(),
            400,
            "invalid_parameter",
            "short SID",
        ),
        (
            PRO_MEMBER_KEY,
            "/api/messages/SM..%2F..%2Fetc".to_owned(),
            400,
            "invalid_parameter",
            "traversal",
        ),
        (
            PRO_MEMBER_KEY,
            format!("/api/messages/{}", sid(77)),
            404,
            "not_found",
            "unknown",
        ),
        (
            OTHER_TEAM_KEY,
            format!("/api/messages/{}", message.sid),
            404,
            "not_found",
            "another team's",
        ),
        (
            PRO_MEMBER_KEY,
            format!("/api/messages/{}?verbose=1", message.sid),
            400,
            "unknown_parameter",
            "unknown key",
        ),
    ];
    for (key, uri, status, code, why) in cases {
        world
            .call(get(key, &uri))
            .await
            .assert_error(status, code, why);
    }
}

#[actix_web::test]
async fn a_store_outage_is_503_with_detail_only_outside_production() {
    for production in [false, true] {
        let world = World::with(
            WebConfig {
                production,
                ..WebConfig::default()
            },
            None,
        );
        world.store.set_unavailable(true);
        let answer = world.call(get(PRO_MEMBER_KEY, "/api/messages")).await;
        answer.assert_error(503, "store_unavailable", "store down");
        assert_eq!(
            answer.text.contains("switched off"),
            !production,
            "production={production}: {}",
            answer.text
        );
    }
}

fn sids_of(json: &serde_json::Value) -> Vec<String> {
    json["messages"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|m| m["sid"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[actix_web::test]
async fn a_reference_given_on_send_is_returned_and_filters_the_list() {
    let world = World::new();
    world.connect_twilio(1, ACCOUNT).await;
    let send = |body: serde_json::Value| {
        TestRequest::post()
            .uri("/api/integrations/twilio/sms/send")
            .insert_header(bearer(PRO_MEMBER_KEY))
            .set_json(body)
    };
    let mut referenced = Vec::new();
    for (to, reference) in [
        ("+14155550100", Some("order-7")),
        ("+14155550101", None),
        ("+14155550100", Some("order-7")),
    ] {
        let mut body = serde_json::json!({"to": to, "body": "hello"});
        if let Some(reference) = reference {
            body["reference"] = reference.into();
        }
        let answer = world.call(send(body)).await;
        assert_eq!(answer.status.as_u16(), 201, "{}", answer.text);
        assert_eq!(answer.json["reference"].as_str(), reference);
        if reference.is_some() {
            referenced.push(answer.json["sid"].as_str().unwrap_or_default().to_owned());
        }
    }
    referenced.reverse();

    let by_reference = world
        .call(get(PRO_MEMBER_KEY, "/api/messages?reference=order-7"))
        .await;
    assert_eq!(by_reference.status.as_u16(), 200, "{}", by_reference.text);
    assert_eq!(sids_of(&by_reference.json), referenced, "newest first");
    let by_recipient = world
        .call(get(PRO_MEMBER_KEY, "/api/messages?to=%2B14155550100"))
        .await;
    assert_eq!(sids_of(&by_recipient.json), referenced);
    let other_team = world
        .call(get(OTHER_TEAM_KEY, "/api/messages?reference=order-7"))
        .await;
    assert_eq!(sids_of(&other_team.json), Vec::<String>::new());

    let too_long = world
        .call(send(serde_json::json!({
            "to": "+14155550100", "body": "hello", "reference": "r".repeat(129)
        })))
        .await;
    too_long.assert_error(400, "invalid_field", "a reference over 128 characters");
    assert_eq!(too_long.error_field(), Some("reference"));
    assert_eq!(world.provider.sent().len(), 3, "nothing was sent for it");
}

#[actix_web::test]
async fn status_repeated_means_any_and_links_next_is_the_full_url_of_the_next_page() {
    let world = World::new();
    world.seed_message(1, 1, 10, MessageStatus::Sent).await;
    world.seed_message(1, 2, 20, MessageStatus::Delivered).await;
    world.seed_message(1, 3, 30, MessageStatus::Failed).await;
    world.seed_message(1, 4, 40, MessageStatus::Sent).await;

    let mut uri = "/api/messages?status=sent&status=failed&limit=2".to_owned();
    let mut seen = Vec::new();
    loop {
        let answer = world.call(get(PRO_MEMBER_KEY, &uri)).await;
        assert_eq!(answer.status.as_u16(), 200, "{}", answer.text);
        seen.extend(sids_of(&answer.json));
        let Some(next) = answer.json["links"]["next"].as_str() else {
            assert!(answer.json["nextCursor"].is_null());
            break;
        };
        let url = url::Url::parse(next).expect("a full URL");
        assert!(
            url.scheme().starts_with("http") && url.host().is_some(),
            "{next}"
        );
        let statuses: Vec<String> = url
            .query_pairs()
            .filter(|(k, _)| k == "status")
            .map(|(_, v)| v.into_owned())
            .collect();
        assert_eq!(statuses, ["sent", "failed"], "the filters are kept: {next}");
        uri = format!("{}?{}", url.path(), url.query().unwrap_or_default());
    }
    let expected: Vec<String> = [1, 3, 4].into_iter().map(|n| sid(n).to_string()).collect();
    assert_eq!(seen, expected, "sent or failed, newest first, each once");

    for (query, field, why) in [
        (
            "?status=sent&status=nope",
            "status",
            "an unknown status among several",
        ),
        ("?to=+14155550100", "to", "an unencoded +"),
        ("?until=yesterday", "until", "a time that is not RFC 3339"),
        ("?limit=1&limit=2", "limit", "a repeated single-valued key"),
    ] {
        let answer = world
            .call(get(PRO_MEMBER_KEY, &format!("/api/messages{query}")))
            .await;
        answer.assert_error(400, "invalid_parameter", why);
        assert_eq!(answer.error_field(), Some(field), "{why}");
    }
}
