//! `GET/POST /api/keys` and `DELETE /api/keys/{id}`: team admins manage their team's API keys;
//! members are refused, another team's key does not exist, bad input changes nothing.

use actix_web::test::TestRequest;
use smsdesk_domain::ports::ApiKeyRepository;
use smsdesk_test_support::world::{
    OTHER_TEAM_KEY, PRO_ADMIN_KEY, PRO_MEMBER_KEY, World, bearer, team,
};

fn create(key: &str, json: serde_json::Value) -> TestRequest {
    TestRequest::post()
        .uri("/api/keys")
        .insert_header(bearer(key))
        .set_json(json)
}

#[actix_web::test]
async fn an_admin_creates_a_key_sees_it_once_lists_it_and_revokes_it() {
    let world = World::new();
    let created = world
        .call(create(
            PRO_ADMIN_KEY,
            serde_json::json!({"label": " CI deploys "}),
        ))
        .await;
    assert_eq!(created.status.as_u16(), 201, "{}", created.text);
    assert_eq!(created.header("cache-control"), Some("no-store"));
    let id = created.json["id"].as_str().expect("an id").to_owned();
    let key = created.json["key"]
        .as_str()
        .expect("the key, once")
        .to_owned();
    assert!(key.starts_with(&format!("smsd_{id}_")), "{key}");
    assert_eq!(created.json["label"], "CI deploys", "trimmed");
    assert_eq!(
        created.json["userId"], 1,
        "owned by the admin who created it"
    );

    let listed = world
        .call(
            TestRequest::get()
                .uri("/api/keys")
                .insert_header(bearer(PRO_ADMIN_KEY)),
        )
        .await;
    assert_eq!(listed.status.as_u16(), 200, "{}", listed.text);
    assert_eq!(listed.json["keys"][0]["id"], id.as_str());
    assert!(
        !listed.text.contains(&key[14..]),
        "a list never shows the secret: {}",
        listed.text
    );
    assert!(listed.json["keys"][0].get("key").is_none());

    let revoked = world
        .call(
            TestRequest::delete()
                .uri(&format!("/api/keys/{id}"))
                .insert_header(bearer(PRO_ADMIN_KEY)),
        )
        .await;
    assert_eq!(revoked.status.as_u16(), 200, "{}", revoked.text);
    assert!(revoked.json["revokedAt"].is_string(), "{}", revoked.text);
}

#[actix_web::test]
async fn members_are_refused_before_anything_is_read_and_another_teams_key_is_not_found() {
    let world = World::new();
    for request in [
        TestRequest::get().uri("/api/keys"),
        TestRequest::post()
            .uri("/api/keys")
            .insert_header(("content-type", "application/json"))
            .set_payload("{broken"),
        TestRequest::delete().uri("/api/keys/abcd1234"),
    ] {
        world
            .call(request.insert_header(bearer(PRO_MEMBER_KEY)))
            .await
            .assert_error(403, "forbidden", "a member");
    }
    let theirs = world
        .call(create(OTHER_TEAM_KEY, serde_json::json!({})))
        .await;
    assert_eq!(theirs.status.as_u16(), 201, "{}", theirs.text);
    let their_id = theirs.json["id"].as_str().expect("id").to_owned();
    world
        .call(
            TestRequest::delete()
                .uri(&format!("/api/keys/{their_id}"))
                .insert_header(bearer(PRO_ADMIN_KEY)),
        )
        .await
        .assert_error(404, "not_found", "another team's key");
    let untouched = world.store.list_keys(team(2)).await.expect("listed");
    assert_eq!(untouched[0].revoked_at, None, "their key still works");
}

#[actix_web::test]
async fn bad_input_is_a_4xx_in_the_one_shape_and_creates_nothing() {
    let world = World::new();
    let cases = [
        (
            create(PRO_ADMIN_KEY, serde_json::json!({"label": "x".repeat(65)})),
            400,
            "invalid_field",
            Some("label"),
            "an over-long label",
        ),
        (
            create(PRO_ADMIN_KEY, serde_json::json!({"label": "  "})),
            400,
            "invalid_field",
            Some("label"),
            "a blank label",
        ),
        (
            create(
                PRO_ADMIN_KEY,
                serde_json::json!({"label": "a", "scope": "all"}),
            ),
            400,
            "invalid_json",
            None,
            "an unknown field",
        ),
        (
            TestRequest::delete()
                .uri("/api/keys/ABCD1234")
                .insert_header(bearer(PRO_ADMIN_KEY)),
            400,
            "invalid_parameter",
            Some("id"),
            "a malformed id",
        ),
        (
            TestRequest::delete()
                .uri("/api/keys/abcd")
                .insert_header(bearer(PRO_ADMIN_KEY)),
            400,
            "invalid_parameter",
            Some("id"),
            "a short id",
        ),
        (
            TestRequest::get()
                .uri("/api/keys?all=1")
                .insert_header(bearer(PRO_ADMIN_KEY)),
            400,
            "unknown_parameter",
            Some("all"),
            "a query parameter",
        ),
        (
            TestRequest::put()
                .uri("/api/keys")
                .insert_header(bearer(PRO_ADMIN_KEY)),
            405,
            "method_not_allowed",
            None,
            "PUT",
        ),
    ];
    for (request, status, code, field, why) in cases {
        let answer = world.call(request).await;
        answer.assert_error(status, code, why);
        assert_eq!(answer.error_field(), field, "{why}");
        if status == 405 {
            assert_eq!(answer.header("allow"), Some("GET, POST"), "{why}");
        }
    }
    assert!(
        world
            .store
            .list_keys(team(1))
            .await
            .expect("listed")
            .is_empty(),
        "nothing was created"
    );
}
