//! What the service writes to its log: the request id on every line of a request, and never an
//! API key or a Twilio secret.
//!
//! A test binary of its own: tracing's per-callsite interest cache is process-wide, so capturing
//! logs while other tests run in parallel threads would make the capture flaky.

use std::io::Write;
use std::sync::{Arc, Mutex};

use actix_web::test::TestRequest;
use smsdesk_web::WebConfig;

use smsdesk_test_support::world::{ACCOUNT, AUTH_TOKEN, PRO_ADMIN_KEY, World, bearer};

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

impl Captured {
    fn text(&self) -> String {
        let bytes = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

#[actix_web::test]
async fn every_log_line_of_a_request_names_its_id_and_no_secret() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::DEBUG)
        .finish();
    // The actix test runtime runs on this thread, so a thread-local default sees every line.
    let _guard = tracing::subscriber::set_default(subscriber);
    let world = World::with(
        WebConfig {
            production: true,
            ..WebConfig::default()
        },
        None,
    );

    let put = world
        .call(
            TestRequest::put()
                .uri("/api/integrations/twilio")
                .insert_header(bearer(PRO_ADMIN_KEY))
                .insert_header(("x-request-id", "req-put-1"))
                .set_json(
                    serde_json::json!({"accountSid": ACCOUNT, "authToken": AUTH_TOKEN,
                    "fromNumber": "+15005550006"}),
                ),
        )
        .await;
    assert_eq!(put.status.as_u16(), 200, "{}", put.text);
    world.store.set_unavailable(true);
    let down = world
        .call(
            TestRequest::get()
                .uri("/api/messages")
                .insert_header(bearer(PRO_ADMIN_KEY))
                .insert_header(("x-request-id", "req-down-2")),
        )
        .await;
    assert_eq!(down.status.as_u16(), 503);

    let log = captured.text();
    let lines: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(lines.len() >= 3, "some lines were written:\n{log}");
    for line in &lines {
        assert!(
            line.contains("request_id=req-put-1") || line.contains("request_id=req-down-2"),
            "a line without its request id: {line}"
        );
        assert!(!line.contains(PRO_ADMIN_KEY), "API key logged: {line}");
        assert!(!line.contains(AUTH_TOKEN), "auth token logged: {line}");
    }
    assert!(
        log.contains("switched off"),
        "the 5xx detail hidden from the client is in the log:\n{log}"
    );
    assert!(!down.text.contains("switched off"));
}
