//! Security: tenant isolation across every endpoint, plan gating, webhook signatures, secrets at
//! rest and in answers, production error bodies, and body limits enforced before reading.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use smsdesk_domain::services::STATUS_CALLBACK_PATH;
use smsdesk_domain::{MessageStatus, Plan};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use smsdesk_test_support::app::{
    RECEIVE_PATH, callback_params, credentials, post_webhook, sign, signed_callback,
};
use smsdesk_test_support::app::{TestApp, error_code, spawn_app, spawn_app_with};

/// A webhook's form parameters.
type FormParams = [(String, String)];

const REFRESH: &str = "/api/integrations/twilio/messages/refresh-status";

/// Every request team B can make that names or could reveal team A's data, with what B must get.
#[tokio::test]
async fn another_teams_key_never_reaches_this_teams_data_on_any_endpoint() {
    let app = spawn_app().await;
    let team_a = app.demo_team().await;
    let a_sids = [
        app.message_without_callbacks(team_a, MessageStatus::Sent)
            .await,
        app.message_without_callbacks(team_a, MessageStatus::Delivered)
            .await,
    ];
    let (account_a, token_a) = credentials(&app, team_a).await;
    let (team_b, key_b) = app.new_team("Team B", Plan::Enterprise).await;
    let (account_b, token_b) = credentials(&app, team_b).await;
    let a_page: Value = app
        .http
        .get(app.url("/api/messages?limit=1"))
        .bearer_auth(&app.api_key)
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("JSON");
    let a_cursor = a_page["nextCursor"]
        .as_str()
        .expect("a next page")
        .to_owned();
    let before = app.snapshot().await;
    let fetches_before = app.sim.stats().fetches;

    // (why, method, path, JSON body, expected status)
    let cases: Vec<(&str, Method, String, Option<Value>, u16)> = vec![
        (
            "get A's message",
            Method::GET,
            format!("/api/messages/{}", a_sids[0]),
            None,
            404,
        ),
        (
            "get A's other message",
            Method::GET,
            format!("/api/messages/{}", a_sids[1]),
            None,
            404,
        ),
        (
            "refresh A's message",
            Method::POST,
            format!("{REFRESH}?messageSid={}", a_sids[0]),
            None,
            404,
        ),
        ("list", Method::GET, "/api/messages".to_owned(), None, 200),
        (
            "list by A's status",
            Method::GET,
            "/api/messages?status=queued".to_owned(),
            None,
            200,
        ),
        (
            "list from A's cursor",
            Method::GET,
            format!("/api/messages?cursor={a_cursor}"),
            None,
            200,
        ),
        (
            "bulk refresh",
            Method::POST,
            format!("{REFRESH}?hours=168"),
            None,
            200,
        ),
        (
            "take over A's Twilio account",
            Method::PUT,
            "/api/integrations/twilio".to_owned(),
            Some(
                json!({"accountSid": account_a, "authToken": token_a, "fromNumber": "+15005550006"}),
            ),
            409,
        ),
    ];
    for (why, method, path, body, expected) in cases {
        let mut request = app.http.request(method, app.url(&path)).bearer_auth(&key_b);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("sent");
        assert_eq!(response.status().as_u16(), expected, "{why}");
        let text = response.text().await.expect("body");
        for sid in &a_sids {
            assert!(
                !text.contains(sid.as_str()),
                "{why}: A's {sid} leaked: {text}"
            );
        }
        assert!(!text.contains(&token_a), "{why}: A's token leaked");
    }

    // Webhooks: B's account cannot move A's message; A's account without A's token is refused.
    let status = signed_callback(&app, &account_b, &token_b, &a_sids[0], "delivered").await;
    assert!(status.is_success(), "parked for B, harmlessly: {status}");
    let params = callback_params(&account_a, &a_sids[0], "delivered");
    let signature = sign(&app, STATUS_CALLBACK_PATH, &token_b, &params);
    let forged = post_webhook(&app, STATUS_CALLBACK_PATH, &params, Some(&signature)).await;
    assert_eq!(
        forged.status(),
        StatusCode::FORBIDDEN,
        "A's account with B's token"
    );

    assert_eq!(app.snapshot().await, before, "A's messages are untouched");
    assert_eq!(
        app.sim.stats().fetches,
        fetches_before,
        "no Twilio call for A's messages"
    );
}

#[tokio::test]
async fn only_pro_and_enterprise_teams_may_refresh_on_either_path() {
    let app = spawn_app().await;
    for (plan, allowed) in [
        (Plan::Free, false),
        (Plan::Pro, true),
        (Plan::Enterprise, true),
    ] {
        let (team, key) = app.new_team(&format!("{plan:?} team"), plan).await;
        let sid = app
            .message_without_callbacks(team, MessageStatus::Delivered)
            .await;
        for (path, response) in [
            ("single", app.refresh_one(&key, &sid).await),
            ("bulk", app.refresh_recent(&key, "?hours=24").await),
        ] {
            if allowed {
                assert_eq!(response.status(), StatusCode::OK, "{plan:?} {path}");
            } else {
                let (status, code, _) = error_code(response).await;
                assert_eq!(
                    (status, code.as_str()),
                    (StatusCode::FORBIDDEN, "plan_required"),
                    "{plan:?} {path}"
                );
            }
        }
        let expected = if allowed { "delivered" } else { "queued" };
        let message: Value = app
            .get_message(&key, &sid)
            .await
            .json()
            .await
            .expect("JSON");
        assert_eq!(message["status"], expected, "{plan:?}");
    }
}

#[tokio::test]
async fn forged_missing_and_altered_webhook_signatures_are_refused_and_a_replay_is_a_harmless_duplicate()
 {
    let app = spawn_app().await;
    let team = app.demo_team().await;
    let sid = app
        .message_without_callbacks(team, MessageStatus::Delivered)
        .await;
    let (account, token) = credentials(&app, team).await;
    let params = callback_params(&account, &sid, "delivered");
    let good = sign(&app, STATUS_CALLBACK_PATH, &token, &params);
    let mut altered = params.clone();
    altered[2].1 = "failed".to_owned();
    let other_url = smsdesk_twilio::compute_signature(
        &token,
        &format!("https://elsewhere.example{STATUS_CALLBACK_PATH}"),
        &params,
    );
    let inbound = vec![
        ("AccountSid".to_owned(), account.clone()),
        (
            "MessageSid".to_owned(),
            "SM0123456789abcdef0123456789abcdef".to_owned(),
        ),
        ("From".to_owned(), "+14155550100".to_owned()),
        ("To".to_owned(), "+15005550006".to_owned()),
        ("Body".to_owned(), "hi".to_owned()),
    ];
    let before = app.snapshot().await;

    // (why, path, form parameters, signature)
    let cases: Vec<(&str, &str, &FormParams, Option<String>)> = vec![
        ("no signature", STATUS_CALLBACK_PATH, &params, None),
        (
            "empty signature",
            STATUS_CALLBACK_PATH,
            &params,
            Some(String::new()),
        ),
        (
            "signed with another token",
            STATUS_CALLBACK_PATH,
            &params,
            Some(sign(&app, STATUS_CALLBACK_PATH, "not-the-token", &params)),
        ),
        (
            "a parameter changed after signing",
            STATUS_CALLBACK_PATH,
            &altered,
            Some(good.clone()),
        ),
        (
            "signed for another URL",
            STATUS_CALLBACK_PATH,
            &params,
            Some(other_url),
        ),
        (
            "a callback's signature on the inbound path",
            RECEIVE_PATH,
            &params,
            Some(good.clone()),
        ),
        (
            "inbound SMS without a signature",
            RECEIVE_PATH,
            &inbound,
            None,
        ),
        (
            "inbound SMS signed with another token",
            RECEIVE_PATH,
            &inbound,
            Some(sign(&app, RECEIVE_PATH, "nope", &inbound)),
        ),
    ];
    for (why, path, params, signature) in cases {
        let response = post_webhook(&app, path, params, signature.as_deref()).await;
        let (status, code, _) = error_code(response).await;
        assert_eq!(
            (status, code.as_str()),
            (StatusCode::FORBIDDEN, "invalid_signature"),
            "{why}"
        );
    }
    assert_eq!(
        app.snapshot().await,
        before,
        "refused webhooks change nothing"
    );

    // The genuine callback applies once; replaying it byte for byte is accepted as a duplicate.
    let first = post_webhook(&app, STATUS_CALLBACK_PATH, &params, Some(&good)).await;
    assert_eq!(first.status(), StatusCode::OK);
    let applied = app.snapshot().await;
    assert_ne!(applied, before, "the genuine callback was applied");
    for _ in 0..3 {
        let replay = post_webhook(&app, STATUS_CALLBACK_PATH, &params, Some(&good)).await;
        assert_eq!(replay.status(), StatusCode::OK, "a replay is acknowledged");
    }
    assert_eq!(app.snapshot().await, applied, "replays add no event");
}

/// Every byte of the service's SQLite files (database and write-ahead log).
fn database_bytes(app: &TestApp) -> Vec<u8> {
    let mut bytes = Vec::new();
    for entry in std::fs::read_dir(app.data_dir()).expect("data directory") {
        let path = entry.expect("entry").path();
        if path.to_string_lossy().contains("smsdesk.db") {
            bytes.extend(std::fs::read(&path).expect("readable"));
        }
    }
    assert!(!bytes.is_empty(), "found the database files");
    bytes
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle.as_bytes())
}

#[tokio::test]
async fn api_keys_and_auth_tokens_are_not_stored_in_the_clear() {
    let app = spawn_app().await;
    let (team, key) = app.new_team("Hashed", Plan::Pro).await;
    let (account, token) = credentials(&app, team).await;
    let token = format!("{token}-distinctive-token-value");
    let response = app
        .http
        .put(app.url("/api/integrations/twilio"))
        .bearer_auth(&key)
        .json(&json!({"accountSid": account, "authToken": token, "fromNumber": "+15005550006"}))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), StatusCode::OK);
    let answer = response.text().await.expect("body");
    assert!(
        !answer.contains(&token),
        "the token is not echoed: {answer}"
    );
    // The key still works, so it is stored in some form; the account SID is stored, so the scan
    // can find what is stored in the clear.
    assert_eq!(
        app.refresh_recent(&key, "?hours=1").await.status(),
        StatusCode::OK
    );

    let bytes = database_bytes(&app);
    assert!(
        contains(&bytes, "Hashed"),
        "the scan sees plain text (the team's name)"
    );
    for (what, secret) in [
        ("the new API key", key.as_str()),
        ("the demo API key", app.api_key.as_str()),
        ("the auth token", token.as_str()),
    ] {
        assert!(!contains(&bytes, secret), "{what} is in the database files");
    }
}

#[tokio::test]
async fn production_mode_answers_a_database_failure_without_internal_detail() {
    let mut bodies = Vec::new();
    for production in [false, true] {
        let app = spawn_app_with(|settings| {
            if production {
                settings.environment = smsdesk::Environment::Production;
            }
        })
        .await;
        let path = app.data_dir().to_string_lossy().into_owned();
        app.store.clone().close().await.expect("closed");
        let response = app
            .http
            .get(app.url("/api/messages"))
            .bearer_auth(&app.api_key)
            .send()
            .await
            .expect("sent");
        let (status, code, body) = error_code(response).await;
        assert!(
            status.is_server_error(),
            "production {production}: {status} {code}"
        );
        let message = body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        if production {
            let lowered = message.to_lowercase();
            for detail in [
                "pool",
                "closed",
                "sqlite",
                "sqlx",
                "database",
                "store",
                path.as_str(),
            ] {
                assert!(
                    !lowered.contains(detail),
                    "production leaks {detail:?}: {body}"
                );
            }
            assert!(
                lowered.contains("request id"),
                "it names the request id: {body}"
            );
        }
        bodies.push(message);
    }
    assert_ne!(
        bodies[0], bodies[1],
        "development shows the detail production hides"
    );
}

/// Sends a request head announcing `length` body bytes, then only 1 KB of them, and reads the
/// answer's status line: the service must answer without waiting for the rest.
async fn answer_to_an_announced_body(
    app: &TestApp,
    method: &str,
    path: &str,
    content_type: &str,
    length: usize,
) -> String {
    let address = app.address.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address)
        .await
        .expect("connected");
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {}\r\nContent-Type: {content_type}\r\nContent-Length: {length}\r\n\r\n",
        app.api_key
    );
    stream
        .write_all(head.as_bytes())
        .await
        .expect("head written");
    stream
        .write_all(&[b'a'; 1024])
        .await
        .expect("a little body written");
    let mut answer = vec![0_u8; 512];
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut answer))
        .await
        .unwrap_or_else(|_| panic!("{path}: no answer while the body was still owed"))
        .expect("read");
    String::from_utf8_lossy(&answer[..read]).into_owned()
}

#[tokio::test]
async fn an_oversized_body_is_refused_before_it_is_read_whole() {
    let app = spawn_app().await;
    let before = app.snapshot().await;
    let cases = [
        (
            "send",
            "POST",
            "/api/integrations/twilio/sms/send",
            "application/json",
        ),
        (
            "integration",
            "PUT",
            "/api/integrations/twilio",
            "application/json",
        ),
        (
            "status callback",
            "POST",
            STATUS_CALLBACK_PATH,
            "application/x-www-form-urlencoded",
        ),
        (
            "inbound SMS",
            "POST",
            RECEIVE_PATH,
            "application/x-www-form-urlencoded",
        ),
        ("a body on a probe", "POST", "/healthz", "application/json"),
    ];
    for (why, method, path, content_type) in cases {
        let answer = answer_to_an_announced_body(&app, method, path, content_type, 1 << 30).await;
        let status_line = answer.lines().next().unwrap_or_default();
        assert!(
            status_line.contains("413"),
            "{why}: a 1 GB body announced, got {status_line:?}"
        );
    }
    assert_eq!(app.snapshot().await, before);
}

#[tokio::test]
async fn a_chunked_body_is_cut_off_at_the_limit() {
    let app = spawn_app().await;
    let creates_before = app.sim.stats().creates;
    let address = app.address.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address)
        .await
        .expect("connected");
    let head = format!(
        "POST /api/integrations/twilio/sms/send HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n",
        app.api_key
    );
    stream
        .write_all(head.as_bytes())
        .await
        .expect("head written");
    // 256 KB in 8 KB chunks, four times the limit, and never the final empty chunk: the answer
    // can only come from the service stopping at the limit. Writes may fail once it has hung up.
    let chunk = format!("2000\r\n{}\r\n", "a".repeat(0x2000));
    for _ in 0..32 {
        if stream.write_all(chunk.as_bytes()).await.is_err() {
            break;
        }
    }
    let mut answer = vec![0_u8; 512];
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut answer))
        .await
        .expect("an answer before the body ended")
        .expect("read");
    let answer = String::from_utf8_lossy(&answer[..read]);
    assert!(
        answer.starts_with("HTTP/1.1 413"),
        "a chunked body past the limit: {answer}"
    );
    assert_eq!(app.sim.stats().creates, creates_before, "nothing was sent");
}

/// Webhook integrations are reused for a few seconds (`INTEGRATION_FRESH_FOR`); a token replaced
/// through this replica's API must not be among them.
#[tokio::test]
async fn a_replaced_auth_token_takes_effect_for_webhooks_at_once() {
    let app = spawn_app().await;
    let team = app.demo_team().await;
    let (account, old_token) = credentials(&app, team).await;
    let sid = app
        .message_without_callbacks(team, MessageStatus::Queued)
        .await;
    assert_eq!(
        signed_callback(&app, &account, &old_token, &sid, "sending").await,
        StatusCode::OK,
        "the old token verifies, and its integration is now remembered"
    );
    let new_token = "f".repeat(32);
    app.client()
        .configure_twilio(&smsdesk_client::IntegrationDto {
            account_sid: account.clone(),
            auth_token: new_token.clone(),
            api_key_sid: None,
            api_key_secret: None,
            from_number: Some("+15005550006".to_owned()),
            messaging_service_sid: None,
        })
        .await
        .expect("the token is replaced");
    assert_eq!(
        signed_callback(&app, &account, &old_token, &sid, "sent").await,
        StatusCode::FORBIDDEN,
        "the replaced token is refused at once"
    );
    assert_eq!(
        signed_callback(&app, &account, &new_token, &sid, "sent").await,
        StatusCode::OK,
        "the new token is accepted at once"
    );
}
