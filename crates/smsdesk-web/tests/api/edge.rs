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

/// The count of API key lookups that reached the authenticator (the database in production).
fn lookups(world: &World) -> u64 {
    world
        .state
        .metrics()
        .encode()
        .lines()
        .find_map(|line| line.strip_prefix("smsdesk_api_key_lookups_total "))
        .and_then(|count| count.trim().parse().ok())
        .unwrap_or(0)
}

#[actix_web::test]
async fn varying_the_key_does_not_bypass_the_ips_budget_and_known_keys_keep_working() {
    let world = World::with(
        WebConfig {
            rate_limits: RateLimitConfig {
                failed_auth_per_ip_per_minute: NonZeroU32::new(30).expect("non-zero"),
                ..RateLimitConfig::default()
            },
            ..WebConfig::default()
        },
        None,
    );
    let attacker: std::net::SocketAddr = "198.51.100.7:40000".parse().expect("address");
    let from_attacker = |key: &str| {
        TestRequest::get()
            .uri("/api/messages")
            .peer_addr(attacker)
            .insert_header(bearer(key))
    };
    // A real user behind the same address signs in first.
    let before = world.call(from_attacker(PRO_MEMBER_KEY)).await;
    assert_eq!(before.status.as_u16(), 200, "{}", before.text);

    let mut statuses = Vec::new();
    for n in 0..40 {
        let key = format!("smsd_{n:08x}_{}", "x".repeat(40));
        let answer = world.call(from_attacker(&key)).await;
        statuses.push(answer.status.as_u16());
        if answer.status.as_u16() == 429 {
            answer.assert_error(429, "rate_limited", "over the failed-auth budget");
            assert!(answer.header("retry-after").is_some(), "Retry-After is set");
        }
    }
    // The user's first request was charged to the address too: its key was not known yet.
    assert_eq!(
        statuses.iter().filter(|s| **s == 401).count(),
        29,
        "the rest of the burst of 30 is answered 401: {statuses:?}"
    );
    assert!(
        statuses[29..].iter().all(|s| *s == 429),
        "then every unknown key is 429, whatever it is: {statuses:?}"
    );

    let spent = lookups(&world);
    let answer = world
        .call(from_attacker(&format!("smsd_ffffffff_{}", "y".repeat(40))))
        .await;
    answer.assert_error(429, "rate_limited", "a new unknown key");
    assert_eq!(
        lookups(&world),
        spent,
        "an unknown key over the budget costs no lookup"
    );

    let after = world.call(from_attacker(PRO_MEMBER_KEY)).await;
    assert_eq!(
        after.status.as_u16(),
        200,
        "a key that authenticated keeps working from the same address: {}",
        after.text
    );
    let elsewhere = world
        .call(
            TestRequest::get()
                .uri("/api/messages")
                .peer_addr("203.0.113.9:1234".parse().expect("address"))
                .insert_header(bearer("sk_unknown_elsewhere")),
        )
        .await;
    elsewhere.assert_error(401, "unauthorized", "another address has its own budget");
}

#[actix_web::test]
async fn a_key_that_authenticated_is_answered_from_memory_until_it_goes_stale() {
    let world = World::new();
    let call = || {
        world.call(
            TestRequest::get()
                .uri("/api/messages")
                .insert_header(bearer(PRO_MEMBER_KEY)),
        )
    };
    assert_eq!(call().await.status.as_u16(), 200);
    assert_eq!(lookups(&world), 1);
    assert_eq!(call().await.status.as_u16(), 200);
    assert_eq!(
        lookups(&world),
        1,
        "the second request did not look the key up"
    );
    world.clock.advance(smsdesk_web::auth::KEY_CACHE_FRESH_FOR);
    assert_eq!(call().await.status.as_u16(), 200);
    assert_eq!(lookups(&world), 2, "a stale entry is looked up again");
}
