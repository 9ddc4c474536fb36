//! `/api/webhook-endpoints`: team admins create, read, change, rotate and delete their endpoints;
//! deliveries are listed with their attempts and replayed; members, other teams and bad input are
//! refused in the one error shape, changing nothing.

use actix_web::test::TestRequest;
use smsdesk_web::WebConfig;

use smsdesk_test_support::world::{
    ACCOUNT, OTHER_TEAM_KEY, PRO_ADMIN_KEY, PRO_MEMBER_KEY, World, bearer,
};

const PATH: &str = "/api/webhook-endpoints";

fn post(key: &str, uri: &str, body: serde_json::Value) -> TestRequest {
    TestRequest::post()
        .uri(uri)
        .insert_header(bearer(key))
        .set_json(body)
}

fn get(key: &str, uri: &str) -> TestRequest {
    TestRequest::get().uri(uri).insert_header(bearer(key))
}

#[actix_web::test]
async fn an_admin_creates_reads_changes_rotates_and_deletes_an_endpoint() {
    let world = World::new();
    let created = world
        .call(post(
            PRO_ADMIN_KEY,
            PATH,
            serde_json::json!({"url": "http://127.0.0.1:9/hooks", "events": ["message.status_changed"]}),
        ))
        .await;
    assert_eq!(created.status.as_u16(), 201, "{}", created.text);
    assert_eq!(created.header("cache-control"), Some("no-store"));
    let id = created.json["id"].as_str().unwrap_or_default().to_owned();
    assert_eq!(created.header("location"), Some(&*format!("{PATH}/{id}")));
    let secret = created.json["secret"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(secret.starts_with("whsec_"), "{}", created.text);
    assert_eq!(
        created.json["events"],
        serde_json::json!(["message.status_changed"])
    );
    assert_eq!(created.json["enabled"], true);

    let listed = world.call(get(PRO_ADMIN_KEY, PATH)).await;
    assert_eq!(listed.json["endpoints"][0]["id"], id.as_str());
    assert!(!listed.text.contains(&secret), "the secret is shown once");
    let one = world
        .call(get(PRO_ADMIN_KEY, &format!("{PATH}/{id}")))
        .await;
    assert_eq!(one.status.as_u16(), 200);
    assert!(one.json.get("secret").is_none());

    let patched = world
        .call(
            TestRequest::patch()
                .uri(&format!("{PATH}/{id}"))
                .insert_header(bearer(PRO_ADMIN_KEY))
                .set_json(serde_json::json!({"enabled": false, "events": ["message.received", "message.status_changed"]})),
        )
        .await;
    assert_eq!(patched.status.as_u16(), 200, "{}", patched.text);
    assert_eq!(patched.json["enabled"], false);
    assert_eq!(
        patched.json["events"],
        serde_json::json!(["message.status_changed", "message.received"])
    );

    let rotated = world
        .call(post(
            PRO_ADMIN_KEY,
            &format!("{PATH}/{id}/rotate-secret"),
            serde_json::json!({}),
        ))
        .await;
    assert_eq!(rotated.status.as_u16(), 200, "{}", rotated.text);
    assert_ne!(rotated.json["secret"], secret.as_str());
    assert!(rotated.json["previousSecretExpiresAt"].is_string());

    let deleted = world
        .call(
            TestRequest::delete()
                .uri(&format!("{PATH}/{id}"))
                .insert_header(bearer(PRO_ADMIN_KEY)),
        )
        .await;
    assert_eq!(deleted.status.as_u16(), 204);
    world
        .call(get(PRO_ADMIN_KEY, &format!("{PATH}/{id}")))
        .await
        .assert_error(404, "not_found", "a deleted endpoint");
}

#[actix_web::test]
async fn members_other_teams_and_bad_input_are_refused_and_nothing_is_stored() {
    let world = World::new();
    let member = world
        .call(post(
            PRO_MEMBER_KEY,
            PATH,
            serde_json::json!({"url": "not a url"}),
        ))
        .await;
    member.assert_error(403, "forbidden", "a member, whatever the body");
    for (body, field, why) in [
        (
            serde_json::json!({"url": "ftp://127.0.0.1/"}),
            "url",
            "not http(s)",
        ),
        (serde_json::json!({}), "url", "no url"),
        (
            serde_json::json!({"url": "http://127.0.0.1:9/", "events": ["message.deleted"]}),
            "events",
            "an unknown event",
        ),
        (
            serde_json::json!({"url": "http://127.0.0.1:9/", "events": []}),
            "events",
            "no event",
        ),
    ] {
        let answer = world.call(post(PRO_ADMIN_KEY, PATH, body)).await;
        answer.assert_error(400, "invalid_field", why);
        assert_eq!(answer.error_field(), Some(field), "{why}");
    }
    world
        .call(post(
            PRO_ADMIN_KEY,
            PATH,
            serde_json::json!({"url": "http://127.0.0.1:9/", "secret": "mine"}),
        ))
        .await
        .assert_error(400, "invalid_json", "an unknown field");
    let listed = world.call(get(PRO_ADMIN_KEY, PATH)).await;
    assert_eq!(
        listed.json["endpoints"],
        serde_json::json!([]),
        "nothing was stored"
    );

    let created = world
        .call(post(
            PRO_ADMIN_KEY,
            PATH,
            serde_json::json!({"url": "http://127.0.0.1:9/"}),
        ))
        .await;
    let id = created.json["id"].as_str().unwrap_or_default().to_owned();
    world
        .call(get(OTHER_TEAM_KEY, &format!("{PATH}/{id}")))
        .await
        .assert_error(404, "not_found", "another team's endpoint");
    world
        .call(get(PRO_ADMIN_KEY, &format!("{PATH}/42")))
        .await
        .assert_error(400, "invalid_parameter", "an id without its prefix");
    world
        .call(get(
            PRO_ADMIN_KEY,
            &format!("{PATH}/{id}/deliveries?limit=0"),
        ))
        .await
        .assert_error(400, "invalid_parameter", "a zero limit");

    let production = World::with(
        WebConfig {
            production: true,
            webhook_urls: smsdesk_domain::webhooks::UrlPolicy::PRODUCTION,
            ..WebConfig::default()
        },
        None,
    );
    let plain = production
        .call(post(
            PRO_ADMIN_KEY,
            PATH,
            serde_json::json!({"url": "http://hooks.example.com/"}),
        ))
        .await;
    plain.assert_error(400, "invalid_field", "http in production");
    let private = production
        .call(post(
            PRO_ADMIN_KEY,
            PATH,
            serde_json::json!({"url": "https://10.0.0.8/hooks"}),
        ))
        .await;
    private.assert_error(400, "invalid_field", "a private address in production");
}

#[actix_web::test]
async fn deliveries_are_listed_with_their_attempts_and_replayed() {
    let world = World::new();
    world.connect_twilio(1, ACCOUNT).await;
    let created = world
        .call(post(
            PRO_ADMIN_KEY,
            PATH,
            serde_json::json!({"url": "http://127.0.0.1:9/hooks"}),
        ))
        .await;
    let id = created.json["id"].as_str().unwrap_or_default().to_owned();
    let sent = world
        .call(post(
            PRO_MEMBER_KEY,
            "/api/integrations/twilio/sms/send",
            serde_json::json!({"to": "+14155550100", "body": "hello", "reference": "order-9"}),
        ))
        .await;
    assert_eq!(sent.status.as_u16(), 201, "{}", sent.text);
    world.receiver.answer_next([Ok(500)]);
    world
        .state
        .deliver_webhooks()
        .deliver_due()
        .await
        .expect("a round");

    let posted = world.receiver.posted();
    assert_eq!(posted.len(), 1);
    assert_eq!(posted[0].url, "http://127.0.0.1:9/hooks");
    assert_eq!(posted[0].json()["data"]["reference"], "order-9");
    assert_eq!(posted[0].json()["data"]["sid"], sent.json["sid"]);

    let page = world
        .call(get(PRO_ADMIN_KEY, &format!("{PATH}/{id}/deliveries")))
        .await;
    assert_eq!(page.status.as_u16(), 200, "{}", page.text);
    let delivery = &page.json["deliveries"][0];
    assert_eq!(delivery["status"], "pending");
    assert_eq!(delivery["type"], "message.status_changed");
    assert_eq!(delivery["attempts"][0]["statusCode"], 500);
    assert_eq!(delivery["attempts"][0]["responseBody"], "answered 500");
    assert_eq!(
        delivery["webhookId"],
        posted[0].header("webhook-id").unwrap_or_default()
    );
    let delivery_id = delivery["id"].as_str().unwrap_or_default().to_owned();

    let replayed = world
        .call(post(
            PRO_ADMIN_KEY,
            &format!("{PATH}/{id}/deliveries/{delivery_id}/replay"),
            serde_json::json!({}),
        ))
        .await;
    assert_eq!(replayed.status.as_u16(), 202, "{}", replayed.text);
    assert_eq!(replayed.json["attemptCount"], 0);
    world
        .state
        .deliver_webhooks()
        .deliver_due()
        .await
        .expect("a round");
    assert_eq!(
        world.receiver.posted().len(),
        2,
        "the replay was delivered at once"
    );
    world
        .call(post(
            OTHER_TEAM_KEY,
            &format!("{PATH}/{id}/deliveries/{delivery_id}/replay"),
            serde_json::json!({}),
        ))
        .await
        .assert_error(404, "not_found", "another team's delivery");
}
