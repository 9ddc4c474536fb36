//! `PUT /api/integrations/twilio`.

use actix_web::test::TestRequest;
use smsdesk_domain::ports::{IntegrationRepository, TwilioAuth};
use smsdesk_domain::secrecy::ExposeSecret;

use smsdesk_test_support::world::{
    ACCOUNT, AUTH_TOKEN, OTHER_TEAM_KEY, PRO_ADMIN_KEY, PRO_MEMBER_KEY, World, bearer, team,
};

const PATH: &str = "/api/integrations/twilio";
const KEY_SECRET: &str = "keysecret_0c9d8e7f6a5b4c3d2e1f";

fn put(key: &str, json: serde_json::Value) -> TestRequest {
    TestRequest::put()
        .uri(PATH)
        .insert_header(bearer(key))
        .set_json(json)
}

#[actix_web::test]
async fn an_admin_sets_credentials_and_the_answer_holds_no_secret() {
    let world = World::new();
    let answer = world
        .call(put(
            PRO_ADMIN_KEY,
            serde_json::json!({
                "accountSid": ACCOUNT,
                "authToken": AUTH_TOKEN,
                "apiKeySid": "SK0123456789abcdef0123456789abcdef",
                "apiKeySecret": KEY_SECRET,
                "fromNumber": "+15005550006",
            }),
        ))
        .await;

    assert_eq!(answer.status.as_u16(), 200, "{}", answer.text);
    assert_eq!(answer.json["accountSid"], ACCOUNT);
    assert_eq!(answer.json["credentials"], "apiKey");
    assert_eq!(answer.json["fromNumber"], "+15005550006");
    assert!(
        !answer.text.contains(AUTH_TOKEN),
        "token leaked: {}",
        answer.text
    );
    assert!(
        !answer.text.contains(KEY_SECRET),
        "secret leaked: {}",
        answer.text
    );
    let stored = IntegrationRepository::for_team(&world.store, team(1))
        .await
        .ok()
        .flatten()
        .expect("stored");
    assert_eq!(stored.auth_token.expose_secret(), AUTH_TOKEN);
    assert!(matches!(stored.credentials.auth, TwilioAuth::ApiKey { .. }));
}

#[actix_web::test]
async fn setting_credentials_again_replaces_them() {
    let world = World::new();
    for service in [None, Some("MG0123456789abcdef0123456789abcdef")] {
        let mut json = serde_json::json!({"accountSid": ACCOUNT, "authToken": AUTH_TOKEN});
        match service {
            Some(sid) => json["messagingServiceSid"] = sid.into(),
            None => json["fromNumber"] = "+15005550006".into(),
        }
        let answer = world.call(put(PRO_ADMIN_KEY, json)).await;
        assert_eq!(answer.status.as_u16(), 200, "{}", answer.text);
        assert_eq!(answer.json["credentials"], "authToken");
    }
    let answer_sender = IntegrationRepository::for_team(&world.store, team(1))
        .await
        .ok()
        .flatten()
        .map(|i| i.sender);
    assert!(matches!(
        answer_sender,
        Some(smsdesk_domain::ports::Sender::MessagingService(_))
    ));
}

#[actix_web::test]
async fn a_member_may_not_change_credentials() {
    let world = World::new();
    let answer = world
        .call(put(
            PRO_MEMBER_KEY,
            serde_json::json!({"accountSid": ACCOUNT, "authToken": AUTH_TOKEN,
                "fromNumber": "+15005550006"}),
        ))
        .await;
    answer.assert_error(403, "forbidden", "member");
    assert!(
        IntegrationRepository::for_team(&world.store, team(1))
            .await
            .ok()
            .flatten()
            .is_none()
    );
}

#[actix_web::test]
async fn invalid_credentials_are_400_naming_the_field_without_echoing_secrets() {
    let world = World::new();
    let base = || {
        serde_json::json!({"accountSid": ACCOUNT, "authToken": AUTH_TOKEN,
            "fromNumber": "+15005550006"})
    };
    let mut cases = Vec::new();
    let mut bad_account = base();
    bad_account["accountSid"] = "AC123".into();
    cases.push((
        bad_account,
        "invalid_field",
        Some("accountSid"),
        "short account SID",
    ));
    let mut empty_token = base();
    empty_token["authToken"] = "".into();
    cases.push((
        empty_token,
        "invalid_field",
        Some("authToken"),
        "empty token",
    ));
    let mut lonely_key = base();
    lonely_key["apiKeySid"] = "SK0123456789abcdef0123456789abcdef".into();
    cases.push((
        lonely_key,
        "invalid_field",
        Some("apiKeySecret"),
        "key without secret",
    ));
    let mut no_sender = base();
    no_sender.as_object_mut().map(|o| o.remove("fromNumber"));
    cases.push((no_sender, "invalid_field", Some("fromNumber"), "no sender"));
    let mut two_senders = base();
    two_senders["messagingServiceSid"] = "MG0123456789abcdef0123456789abcdef".into();
    cases.push((
        two_senders,
        "conflicting_fields",
        Some("messagingServiceSid"),
        "two senders",
    ));
    let mut extra = base();
    extra["region"] = "ie1".into();
    cases.push((extra, "invalid_json", None, "unknown field"));

    for (json, code, field, why) in cases {
        let answer = world.call(put(PRO_ADMIN_KEY, json)).await;
        answer.assert_error(400, code, why);
        assert_eq!(answer.error_field(), field, "{why}");
        assert!(!answer.text.contains(AUTH_TOKEN), "{why}: token echoed");
    }
}

#[actix_web::test]
async fn an_account_connected_to_another_team_is_409() {
    let world = World::new();
    world.connect_twilio(1, ACCOUNT).await;
    let answer = world
        .call(put(
            OTHER_TEAM_KEY,
            serde_json::json!({"accountSid": ACCOUNT, "authToken": AUTH_TOKEN,
                "fromNumber": "+15005550006"}),
        ))
        .await;
    answer.assert_error(409, "account_in_use", "team 2 claims team 1's account");
}

#[actix_web::test]
async fn the_role_is_checked_before_the_body_is_read() {
    let world = World::new();
    let answer = world
        .call(
            TestRequest::put()
                .uri(PATH)
                .insert_header(bearer(PRO_MEMBER_KEY))
                .insert_header(("content-type", "application/json"))
                .set_payload("{not json"),
        )
        .await;
    answer.assert_error(403, "forbidden", "a member's broken body");
}
