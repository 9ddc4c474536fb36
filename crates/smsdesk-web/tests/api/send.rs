//! `POST /api/integrations/twilio/sms/send`.

use std::sync::Arc;

use actix_web::test::TestRequest;
use smsdesk_domain::ports::{MockSmsProvider, ProviderError};
use smsdesk_web::WebConfig;

use smsdesk_test_support::world::{ACCOUNT, OTHER_TEAM_KEY, PRO_MEMBER_KEY, World, bearer};

const PATH: &str = "/api/integrations/twilio/sms/send";

fn send(json: serde_json::Value) -> TestRequest {
    TestRequest::post()
        .uri(PATH)
        .insert_header(bearer(PRO_MEMBER_KEY))
        .set_json(json)
}

#[actix_web::test]
async fn a_send_answers_201_with_the_stored_message() {
    let world = World::with(
        WebConfig {
            public_base_url: Some("https://sms.example.com".into()),
            ..WebConfig::default()
        },
        None,
    );
    world.connect_twilio(1, ACCOUNT).await;

    let answer = world
        .call(send(
            serde_json::json!({"to": "+14155550100", "body": "hello"}),
        ))
        .await;

    assert_eq!(answer.status.as_u16(), 201, "{}", answer.text);
    let sid = answer.json["sid"].as_str().unwrap_or_default().to_owned();
    assert!(sid.starts_with("SM"), "{}", answer.text);
    assert_eq!(answer.json["accountSid"], ACCOUNT, "plaintext account SID");
    assert_eq!(answer.json["status"], "queued", "Twilio's initial status");
    assert_eq!(answer.json["direction"], "outbound-api");
    assert_eq!(answer.json["from"], "+15005550006");
    assert_eq!(answer.json["body"], "hello");
    assert_eq!(
        answer.header("location"),
        Some(&*format!("/api/messages/{sid}"))
    );
    assert_eq!(world.store.all_messages().len(), 1);
    assert_eq!(
        world.provider.sent()[0].status_callback.as_deref(),
        Some("https://sms.example.com/api/integrations/twilio/status-callback")
    );
}

#[actix_web::test]
async fn a_sender_override_is_used() {
    let world = World::new();
    world.connect_twilio(1, ACCOUNT).await;
    let answer = world
        .call(send(serde_json::json!({
            "to": "+14155550100", "body": "hi", "from": "+15005550009"
        })))
        .await;
    assert_eq!(answer.status.as_u16(), 201, "{}", answer.text);
    assert_eq!(answer.json["from"], "+15005550009");
}

#[actix_web::test]
async fn invalid_sends_are_4xx_in_the_error_shape_and_store_nothing() {
    let world = World::new();
    world.connect_twilio(1, ACCOUNT).await;
    let long_body = "x".repeat(1601);
    let cases = [
        (
            serde_json::json!({"to": "4155550100", "body": "hi"}),
            "invalid_field",
            Some("to"),
            "number without +",
        ),
        (
            serde_json::json!({"to": "+14155550100", "body": ""}),
            "invalid_field",
            Some("body"),
            "empty body",
        ),
        (
            serde_json::json!({"to": "+14155550100", "body": long_body}),
            "invalid_field",
            Some("body"),
            "1601 characters",
        ),
        (
            serde_json::json!({"to": "+14155550100", "body": "hi", "from": "+15005550009",
                "messagingServiceSid": "MG0123456789abcdef0123456789abcdef"}),
            "conflicting_fields",
            Some("messagingServiceSid"),
            "two senders",
        ),
        (
            serde_json::json!({"to": "+14155550100", "body": "hi", "messagingServiceSid": "MG1"}),
            "invalid_field",
            Some("messagingServiceSid"),
            "short service SID",
        ),
        (
            serde_json::json!({"to": "+14155550100"}),
            "invalid_json",
            None,
            "missing body",
        ),
        (
            serde_json::json!({"to": "+14155550100", "body": "hi", "cc": "+1"}),
            "invalid_json",
            None,
            "unknown field",
        ),
        (
            serde_json::json!({"to": 14155550100_u64, "body": "hi"}),
            "invalid_json",
            None,
            "number instead of string",
        ),
    ];
    for (json, code, field, why) in cases {
        let answer = world.call(send(json)).await;
        answer.assert_error(400, code, why);
        assert_eq!(answer.error_field(), field, "{why}");
    }
    assert!(world.provider.sent().is_empty(), "Twilio was never asked");
    assert!(world.store.all_messages().is_empty());
}

#[actix_web::test]
async fn malformed_json_is_400_and_a_non_json_body_is_415() {
    let world = World::new();
    world.connect_twilio(1, ACCOUNT).await;
    let broken = world
        .call(
            TestRequest::post()
                .uri(PATH)
                .insert_header(bearer(PRO_MEMBER_KEY))
                .insert_header(("content-type", "application/json"))
                .set_payload("{\"to\": \"+1415"),
        )
        .await;
    broken.assert_error(400, "invalid_json", "truncated JSON");

    let form = world
        .call(
            TestRequest::post()
                .uri(PATH)
                .insert_header(bearer(PRO_MEMBER_KEY))
                .insert_header(("content-type", "application/x-www-form-urlencoded"))
                .set_payload("to=%2B14155550100&body=hi"),
        )
        .await;
    form.assert_error(415, "unsupported_media_type", "form body");
    assert!(world.store.all_messages().is_empty());
}

#[actix_web::test]
async fn a_one_megabyte_body_is_413_before_it_is_read() {
    let world = World::new();
    world.connect_twilio(1, ACCOUNT).await;
    let huge = format!(
        "{{\"to\":\"+14155550100\",\"body\":\"{}\"}}",
        "x".repeat(1024 * 1024)
    );
    let answer = world
        .call(
            TestRequest::post()
                .uri(PATH)
                .insert_header(bearer(PRO_MEMBER_KEY))
                .insert_header(("content-type", "application/json"))
                .set_payload(huge),
        )
        .await;
    answer.assert_error(413, "payload_too_large", "1 MB body");
    assert!(world.provider.sent().is_empty());
}

#[actix_web::test]
async fn a_send_without_an_integration_is_409() {
    let world = World::new();
    let answer = world
        .call(send(
            serde_json::json!({"to": "+14155550100", "body": "hi"}),
        ))
        .await;
    answer.assert_error(409, "integration_missing", "no Twilio configured");
}

#[actix_web::test]
async fn twilio_refusing_a_send_is_422_with_its_code_and_stores_nothing() {
    let mut provider = MockSmsProvider::new();
    provider.expect_send_message().returning(|_, _| {
        Err(ProviderError::Rejected {
            status: 400,
            code: Some(21211),
            message: "The 'To' number is not a valid phone number.".into(),
        })
    });
    let world = World::with(WebConfig::default(), Some(Arc::new(provider)));
    world.connect_twilio(1, ACCOUNT).await;

    let answer = world
        .call(send(
            serde_json::json!({"to": "+14155550100", "body": "hi"}),
        ))
        .await;

    answer.assert_error(422, "twilio_rejected", "invalid To at Twilio");
    assert_eq!(answer.json["error"]["twilioCode"], 21211);
    assert!(world.store.all_messages().is_empty());
}

#[actix_web::test]
async fn twilio_down_is_502_and_its_detail_is_hidden_in_production() {
    for production in [false, true] {
        let mut provider = MockSmsProvider::new();
        provider.expect_send_message().returning(|_, _| {
            Err(ProviderError::Unavailable {
                reason: "connect to 10.1.2.3:443 timed out".into(),
            })
        });
        let world = World::with(
            WebConfig {
                production,
                ..WebConfig::default()
            },
            Some(Arc::new(provider)),
        );
        world.connect_twilio(1, ACCOUNT).await;

        let answer = world
            .call(
                send(serde_json::json!({"to": "+14155550100", "body": "hi"}))
                    .insert_header(("x-request-id", "req-42")),
            )
            .await;

        answer.assert_error(502, "twilio_unavailable", "Twilio timed out");
        let detail_shown = answer.text.contains("10.1.2.3");
        assert_eq!(
            detail_shown, !production,
            "production={production}: {}",
            answer.text
        );
        if production {
            assert!(
                answer.text.contains("req-42"),
                "names the request id: {}",
                answer.text
            );
        }
    }
}

#[actix_web::test]
async fn a_body_that_grows_past_the_limit_while_streaming_is_413() {
    let world = World::new();
    world.connect_twilio(1, ACCOUNT).await;
    let huge = format!(
        "{{\"to\":\"+14155550100\",\"body\":\"{}\"}}",
        "x".repeat(200 * 1024)
    );
    // A declared length under the limit: only counting the bytes as they arrive can catch it.
    let answer = world
        .call(
            TestRequest::post()
                .uri(PATH)
                .insert_header(bearer(PRO_MEMBER_KEY))
                .insert_header(("content-type", "application/json"))
                .set_payload(huge)
                .insert_header(("content-length", "100")),
        )
        .await;
    answer.assert_error(413, "payload_too_large", "streamed body over the limit");
    assert!(world.provider.sent().is_empty());
}

fn keyed(key_header: &str, key: &str, body: &str) -> TestRequest {
    TestRequest::post()
        .uri(PATH)
        .insert_header(bearer(key_header))
        .insert_header(("idempotency-key", key.to_owned()))
        .set_json(serde_json::json!({"to": "+14155550100", "body": body}))
}

#[actix_web::test]
async fn an_idempotency_key_sends_once_replays_the_first_answer_and_refuses_misuse() {
    let world = World::new();
    world.connect_twilio(1, ACCOUNT).await;
    world
        .connect_twilio(2, "ACfedcba9876543210fedcba9876543210")
        .await;

    // The first request holds at Twilio while the retry arrives.
    world.twilio_gate.send_replace(false);
    let (first, early_retry) = futures::join!(
        world.call(keyed(PRO_MEMBER_KEY, "order-4711", "hello")),
        async {
            let retry = world
                .call(keyed(PRO_MEMBER_KEY, "order-4711", "hello"))
                .await;
            world.twilio_gate.send_replace(true);
            retry
        }
    );
    assert_eq!(first.status.as_u16(), 201, "{}", first.text);
    assert_eq!(first.header("idempotent-replayed"), Some("false"));
    assert_eq!(early_retry.status.as_u16(), 409, "{}", early_retry.text);
    assert_eq!(
        early_retry.json["error"]["code"],
        "idempotency_key_in_progress"
    );

    let replay = world
        .call(keyed(PRO_MEMBER_KEY, "order-4711", "hello"))
        .await;
    assert_eq!(replay.status.as_u16(), 201, "{}", replay.text);
    assert_eq!(replay.header("idempotent-replayed"), Some("true"));
    assert_eq!(
        replay.json["sid"], first.json["sid"],
        "the first answer's message"
    );
    assert_eq!(world.provider.sent().len(), 1, "one SMS for three requests");

    let reused = world
        .call(keyed(PRO_MEMBER_KEY, "order-4711", "another text"))
        .await;
    assert_eq!(reused.status.as_u16(), 422, "{}", reused.text);
    assert_eq!(reused.json["error"]["code"], "idempotency_key_reused");

    let other_team = world
        .call(keyed(OTHER_TEAM_KEY, "order-4711", "hello"))
        .await;
    assert_eq!(other_team.status.as_u16(), 201, "keys are per team");
    assert_ne!(other_team.json["sid"], first.json["sid"]);

    for bad in ["has space", "", &"k".repeat(256)] {
        let answer = world.call(keyed(PRO_MEMBER_KEY, bad, "hello")).await;
        assert_eq!(answer.status.as_u16(), 400, "{bad:?}: {}", answer.text);
        assert_eq!(answer.json["error"]["code"], "bad_request");
    }

    // A send that failed keeps nothing: the same key works once the request is right.
    let too_long = world
        .call(keyed(PRO_MEMBER_KEY, "order-4712", &"x".repeat(1601)))
        .await;
    assert_eq!(too_long.status.as_u16(), 400, "{}", too_long.text);
    let fixed = world
        .call(keyed(PRO_MEMBER_KEY, "order-4712", "short now"))
        .await;
    assert_eq!(fixed.status.as_u16(), 201, "{}", fixed.text);
    assert_eq!(world.provider.sent().len(), 3);
}
