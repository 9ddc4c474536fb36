//! What every request goes through: authentication, the error shape for unknown routes and
//! methods, request ids, edge rate limits, health and readiness.

use std::num::NonZeroU32;

use actix_web::test::TestRequest;
use smsdesk_web::{RateLimitConfig, WebConfig};

use smsdesk_test_support::world::{PRO_MEMBER_KEY, World, bearer};

#[actix_web::test]
async fn requests_without_a_valid_key_are_401_asking_for_a_bearer_token() {
    let world = World::new();
    let cases = [
        (None, "no header"),
        (Some("Bearer"), "scheme without key"),
        (Some("Basic dXNlcjpwYXNz"), "basic auth"),
        (Some("Bearer sk_nobody"), "unknown key"),
        (Some("Bearer two words"), "key with a space"),
    ];
    for (header, why) in cases {
        for (method, uri) in [
            ("GET", "/api/messages"),
            ("POST", "/api/integrations/twilio/messages/refresh-status"),
        ] {
            let mut request = if method == "GET" {
                TestRequest::get()
            } else {
                TestRequest::post()
            }
            .uri(uri);
            if let Some(value) = header {
                request = request.insert_header(("authorization", value));
            }
            let answer = world.call(request).await;
            answer.assert_error(401, "unauthorized", why);
            assert_eq!(answer.header("www-authenticate"), Some("Bearer"), "{why}");
        }
    }
}

#[actix_web::test]
async fn unknown_routes_are_404_and_wrong_methods_405_in_the_error_shape() {
    let world = World::new();
    world
        .call(TestRequest::get().uri("/api/nothing-here"))
        .await
        .assert_error(404, "not_found", "unknown path");
    world
        .call(
            TestRequest::get()
                .uri("/api/integrations/twilio/sms/send")
                .insert_header(bearer(PRO_MEMBER_KEY)),
        )
        .await
        .assert_error(405, "method_not_allowed", "GET on a POST route");
    world
        .call(TestRequest::delete().uri("/api/messages"))
        .await
        .assert_error(405, "method_not_allowed", "DELETE on a GET route");
}

#[actix_web::test]
async fn health_is_200_and_readiness_follows_the_probe() {
    let world = World::new();
    let health = world.call(TestRequest::get().uri("/healthz")).await;
    assert_eq!(health.status.as_u16(), 200);
    assert_eq!(health.json["status"], "ok");

    assert_eq!(
        world
            .call(TestRequest::get().uri("/readyz"))
            .await
            .status
            .as_u16(),
        200
    );
    world.ready.set(false);
    world
        .call(TestRequest::get().uri("/readyz"))
        .await
        .assert_error(503, "not_ready", "database down");
}

#[actix_web::test]
async fn a_request_id_is_echoed_or_made_up() {
    let world = World::new();
    let given = world
        .call(
            TestRequest::get()
                .uri("/healthz")
                .insert_header(("x-request-id", "abc-123")),
        )
        .await;
    assert_eq!(given.header("x-request-id"), Some("abc-123"));

    let made = world.call(TestRequest::get().uri("/healthz")).await;
    let id = made.header("x-request-id").unwrap_or_default();
    assert_eq!(id.len(), 32, "a fresh id: {id}");

    let hostile = world
        .call(
            TestRequest::get()
                .uri("/healthz")
                .insert_header(("x-request-id", "a b\"c")),
        )
        .await;
    assert_ne!(
        hostile.header("x-request-id"),
        Some("a b\"c"),
        "not echoed verbatim"
    );

    let error = world.call(TestRequest::get().uri("/api/messages")).await;
    assert!(
        error.header("x-request-id").is_some(),
        "errors carry it too"
    );
}

fn tight_limits() -> WebConfig {
    let two = NonZeroU32::new(2).unwrap_or(NonZeroU32::MIN);
    WebConfig {
        rate_limits: RateLimitConfig {
            per_key_per_minute: NonZeroU32::MIN,
            per_key_burst: two,
            per_ip_per_minute: NonZeroU32::MIN,
            per_ip_burst: two,
            ..RateLimitConfig::default()
        },
        ..WebConfig::default()
    }
}

#[actix_web::test]
async fn an_api_key_over_its_rate_is_429_with_retry_after() {
    let world = World::with(tight_limits(), None);
    let list = || {
        TestRequest::get()
            .uri("/api/messages")
            .insert_header(bearer(PRO_MEMBER_KEY))
    };
    assert_eq!(world.call(list()).await.status.as_u16(), 200);
    assert_eq!(world.call(list()).await.status.as_u16(), 200);

    let limited = world.call(list()).await;

    limited.assert_error(429, "rate_limited", "third request in a burst of two");
    let retry: u64 = limited
        .header("retry-after")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    assert!(
        (1..=60).contains(&retry),
        "Retry-After {retry}: {:?} {}",
        limited.headers,
        limited.text
    );
    assert_eq!(limited.json["error"]["retryAfterSeconds"], retry);
    let other_ip_unauthenticated = world.call(TestRequest::get().uri("/healthz")).await;
    assert_eq!(
        other_ip_unauthenticated.status.as_u16(),
        200,
        "unauthenticated requests are counted per IP, not against the key"
    );
}

#[actix_web::test]
async fn unauthenticated_requests_are_limited_per_ip() {
    let world = World::with(tight_limits(), None);
    let from = |ip: &str| {
        TestRequest::get()
            .uri("/healthz")
            .peer_addr(format!("{ip}:5000").parse().expect("socket address"))
    };
    assert_eq!(world.call(from("192.0.2.1")).await.status.as_u16(), 200);
    assert_eq!(world.call(from("192.0.2.1")).await.status.as_u16(), 200);
    world
        .call(from("192.0.2.1"))
        .await
        .assert_error(429, "rate_limited", "third from one IP");
    assert_eq!(
        world.call(from("192.0.2.2")).await.status.as_u16(),
        200,
        "another IP has its own budget"
    );
    assert_eq!(world.state.rate_limiter().tracked(), 2);
}

#[actix_web::test]
async fn an_anonymous_broken_body_is_401_not_400() {
    let world = World::new();
    for (key, why) in [(None, "no key"), (Some("Bearer sk_nobody"), "unknown key")] {
        let mut request = TestRequest::post()
            .uri("/api/integrations/twilio/sms/send")
            .insert_header(("content-type", "application/json"))
            .set_payload("{not json");
        if let Some(value) = key {
            request = request.insert_header(("authorization", value));
        }
        world
            .call(request)
            .await
            .assert_error(401, "unauthorized", why);
    }
}
