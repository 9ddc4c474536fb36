//! Secrets in logs: every log line of this test binary is captured (a global subscriber writing
//! to memory), and after a test has driven a Twilio auth token through every path that handles
//! it, the token appears in no log line and no answer.

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

use reqwest::StatusCode;
use serde_json::json;
use smsdesk_domain::services::STATUS_CALLBACK_PATH;
use smsdesk_domain::{AccountSid, Plan};
use smsdesk_twilio_sim::SimAccount;

use smsdesk_test_support::app::spawn_app;
use smsdesk_test_support::app::{
    callback_params, credentials, post_webhook, sign, signed_callback,
};

/// What every thread of this binary has logged.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Installs the capturing subscriber once for the whole binary; returns the capture.
fn captured_logs() -> Captured {
    static CAPTURE: OnceLock<Captured> = OnceLock::new();
    CAPTURE
        .get_or_init(|| {
            let capture = Captured::default();
            let writer = capture.clone();
            let subscriber = tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::new("debug"))
                .with_ansi(false)
                .with_writer(move || writer.clone())
                .finish();
            tracing::subscriber::set_global_default(subscriber)
                .expect("no other global subscriber in this binary");
            capture
        })
        .clone()
}

impl Captured {
    fn text(&self) -> String {
        let bytes = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

#[tokio::test]
async fn the_auth_token_appears_in_no_answer_and_no_log_line() {
    let logs = captured_logs();
    let app = spawn_app().await;
    let (team, key) = app.new_team("Logged", Plan::Pro).await;
    let (account, _) = credentials(&app, team).await;
    let token = format!("tok{:032x}", rand::random::<u128>());
    app.sim.add_account(SimAccount::new(
        AccountSid::parse(&account).expect("valid"),
        token.clone(),
    ));
    let mut answers = Vec::new();

    let put = app
        .http
        .put(app.url("/api/integrations/twilio"))
        .bearer_auth(&key)
        .json(&json!({"accountSid": account, "authToken": token, "fromNumber": "+15005550006"}))
        .send()
        .await
        .expect("sent");
    assert_eq!(put.status(), StatusCode::OK);
    answers.push(put.text().await.expect("body"));

    // A send and a refresh authenticate to Twilio with the token.
    let sent = app
        .http
        .post(app.url("/api/integrations/twilio/sms/send"))
        .bearer_auth(&key)
        .json(&json!({"to": "+14155550100", "body": "hello"}))
        .send()
        .await
        .expect("sent");
    assert_eq!(sent.status(), StatusCode::CREATED);
    let sent: serde_json::Value = sent.json().await.expect("JSON");
    let sid = sent["sid"].as_str().expect("sid").to_owned();
    answers.push(sent.to_string());
    answers.push(
        app.refresh_one(&key, &sid)
            .await
            .text()
            .await
            .expect("body"),
    );

    // Webhooks are checked with it: a genuine one, and a forged one that is logged as refused.
    assert!(
        signed_callback(&app, &account, &token, &sid, "sent")
            .await
            .is_success()
    );
    let params = callback_params(&account, &sid, "delivered");
    let forged = sign(&app, STATUS_CALLBACK_PATH, "forged", &params);
    let refused = post_webhook(&app, STATUS_CALLBACK_PATH, &params, Some(&forged)).await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    answers.push(refused.text().await.expect("body"));

    // Twilio stops accepting it: the rejection is logged and answered.
    let not_yet_refreshed = app
        .message_without_callbacks(team, smsdesk_domain::MessageStatus::Delivered)
        .await;
    app.sim.add_account(SimAccount::new(
        AccountSid::parse(&account).expect("valid"),
        "rotated-at-twilio",
    ));
    let rejected = app.refresh_recent(&key, "?hours=24").await;
    assert_eq!(rejected.status(), StatusCode::OK);
    let rejected = rejected.text().await.expect("body");
    assert!(
        rejected.contains(&not_yet_refreshed) && rejected.contains("credentialsRejected"),
        "{rejected}"
    );
    answers.push(rejected);

    for (i, answer) in answers.iter().enumerate() {
        assert!(
            !answer.contains(&token),
            "answer {i} carries the token: {answer}"
        );
        assert!(!answer.contains(&key), "answer {i} carries the API key");
    }
    let logged = logs.text();
    assert!(
        logged.contains(&sid),
        "the capture saw this test's requests (it mentions {sid})"
    );
    assert!(
        !logged.contains(&token),
        "a log line carries the auth token"
    );
    assert!(!logged.contains(&key), "a log line carries the API key");
}
