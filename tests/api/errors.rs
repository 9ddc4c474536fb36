//! Bad input: every malformed request is a 4xx in the one error shape and changes nothing.

use reqwest::{Method, StatusCode};

use smsdesk_test_support::app::{error_code, spawn_app};

/// (method, path, content type, body, expected status, reason)
type BadRequest = (
    Method,
    String,
    Option<&'static str>,
    String,
    StatusCode,
    &'static str,
);

#[tokio::test]
async fn bad_input_is_a_clear_4xx_and_changes_nothing() {
    let app = spawn_app().await;
    let before = app.snapshot().await;
    let refresh = "/api/integrations/twilio/messages/refresh-status";
    let send = "/api/integrations/twilio/sms/send";
    let huge = format!(
        "{{\"to\":\"+14155550100\",\"body\":\"{}\"}}",
        "x".repeat(1024 * 1024)
    );
    let cases: Vec<BadRequest> = vec![
        (
            Method::POST,
            format!("{refresh}?hours=0"),
            None,
            String::new(),
            StatusCode::BAD_REQUEST,
            "hours below 1",
        ),
        (
            Method::POST,
            format!("{refresh}?hours=169"),
            None,
            String::new(),
            StatusCode::BAD_REQUEST,
            "hours above 168",
        ),
        (
            Method::POST,
            format!("{refresh}?hours=abc"),
            None,
            String::new(),
            StatusCode::BAD_REQUEST,
            "hours not a number",
        ),
        (
            Method::POST,
            format!("{refresh}?hours=-1"),
            None,
            String::new(),
            StatusCode::BAD_REQUEST,
            "negative hours",
        ),
        (
            Method::POST,
            format!("{refresh}?hours=1.5"),
            None,
            String::new(),
            StatusCode::BAD_REQUEST,
            "fractional hours",
        ),
        (
            Method::POST,
            format!("{refresh}?messageSid=SM123"),
            None,
            String::new(),
            StatusCode::BAD_REQUEST,
            "short SID",
        ),
        (
            Method::POST,
            format!("{refresh}?messageSid=AC0123456789abcdef0123456789abcdef"),
            None,
            String::new(),
            StatusCode::BAD_REQUEST,
            "account SID as message SID",
        ),
        (
            Method::POST,
            format!("{refresh}?hourz=24"),
            None,
            String::new(),
            StatusCode::BAD_REQUEST,
            "unknown query key",
        ),
        (
            Method::GET,
            "/api/messages/SM%27%20OR%201%3D1--".to_owned(),
            None,
            String::new(),
            StatusCode::BAD_REQUEST,
            "SQL-looking SID",
        ),
        (
            Method::GET,
            "/api/messages?status=teleported".to_owned(),
            None,
            String::new(),
            StatusCode::BAD_REQUEST,
            "unknown status filter",
        ),
        (
            Method::GET,
            "/api/messages?limit=100000".to_owned(),
            None,
            String::new(),
            StatusCode::BAD_REQUEST,
            "limit too large",
        ),
        (
            Method::POST,
            send.to_owned(),
            Some("application/json"),
            "{\"to\":".to_owned(),
            StatusCode::BAD_REQUEST,
            "invalid JSON",
        ),
        (
            Method::POST,
            send.to_owned(),
            Some("application/json"),
            "{\"to\":\"555\",\"body\":\"hi\"}".to_owned(),
            StatusCode::BAD_REQUEST,
            "number not E.164",
        ),
        (
            Method::POST,
            send.to_owned(),
            Some("text/plain"),
            "{\"to\":\"+14155550100\",\"body\":\"hi\"}".to_owned(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "not JSON",
        ),
        (
            Method::POST,
            send.to_owned(),
            Some("application/json"),
            huge,
            StatusCode::PAYLOAD_TOO_LARGE,
            "a 1 MB body",
        ),
    ];
    for (method, path, content_type, body, expected, why) in cases {
        let mut request = app
            .http
            .request(method, app.url(&path))
            .bearer_auth(&app.api_key);
        if let Some(content_type) = content_type {
            request = request.header("Content-Type", content_type);
        }
        let response = request.body(body).send().await.expect("request sent");
        let (status, code, body) = error_code(response).await;
        assert_eq!(status, expected, "{why}: {code} {body}");
    }
    assert_eq!(app.snapshot().await, before, "bad input changed nothing");
    assert_eq!(app.sim.stats().fetches, 0, "Twilio was never asked");
}
