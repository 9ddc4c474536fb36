//! Bad input: a table of malformed requests across every endpoint. Each must be a 4xx in the one
//! error shape, leave every message and history event as it was, and never reach Twilio.

use reqwest::header::{HeaderName, HeaderValue};
use reqwest::{Method, StatusCode};
use smsdesk_domain::MessageStatus;
use smsdesk_domain::services::STATUS_CALLBACK_PATH;

use smsdesk_test_support::app::{RECEIVE_PATH, credentials, form_body, sign};
use smsdesk_test_support::app::{error_code, spawn_app};

const REFRESH: &str = "/api/integrations/twilio/messages/refresh-status";
const SEND: &str = "/api/integrations/twilio/sms/send";
const INTEGRATION: &str = "/api/integrations/twilio";

/// One malformed request and what it must be answered with.
struct Case {
    why: &'static str,
    method: Method,
    path: String,
    with_key: bool,
    headers: Vec<(&'static str, Vec<u8>)>,
    body: Vec<u8>,
    expected: StatusCode,
}

impl Case {
    fn new(why: &'static str, method: Method, path: impl Into<String>, expected: u16) -> Self {
        Self {
            why,
            method,
            path: path.into(),
            with_key: true,
            headers: Vec::new(),
            body: Vec::new(),
            expected: StatusCode::from_u16(expected).expect("valid status"),
        }
    }

    fn get(why: &'static str, path: impl Into<String>, expected: u16) -> Self {
        Self::new(why, Method::GET, path, expected)
    }

    fn post(why: &'static str, path: impl Into<String>, expected: u16) -> Self {
        Self::new(why, Method::POST, path, expected)
    }

    fn header(mut self, name: &'static str, value: impl Into<Vec<u8>>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    fn json(self, body: impl Into<Vec<u8>>) -> Self {
        self.header("Content-Type", "application/json").body(body)
    }

    fn form(self, body: impl Into<Vec<u8>>) -> Self {
        self.header("Content-Type", "application/x-www-form-urlencoded")
            .body(body)
    }

    fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    fn without_key(mut self) -> Self {
        self.with_key = false;
        self
    }
}

fn pairs(params: &[(&str, &str)]) -> Vec<(String, String)> {
    params
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[tokio::test]
async fn every_malformed_request_is_a_4xx_in_the_error_shape_and_changes_nothing() {
    let app = spawn_app().await;
    let team = app.demo_team().await;
    let known = app
        .message_without_callbacks(team, MessageStatus::Sent)
        .await;
    app.message_without_callbacks(team, MessageStatus::Delivered)
        .await;
    let (account, token) = credentials(&app, team).await;
    let before = app.snapshot().await;
    let twilio_before = app.sim.stats();

    let signed = |params: Vec<(String, String)>, path: &str| {
        let signature = sign(&app, path, &token, &params);
        (form_body(&params), signature)
    };
    let callback = |sid: &str, extra: &[(&str, &str)]| {
        let mut params = pairs(&[
            ("AccountSid", account.as_str()),
            ("MessageSid", sid),
            ("MessageStatus", "delivered"),
        ]);
        params.extend(pairs(extra));
        params
    };
    let (garbage_sid_form, garbage_sid_signature) =
        signed(callback("SM' OR 1=1--", &[]), STATUS_CALLBACK_PATH);
    let (bad_code_form, bad_code_signature) = signed(
        callback(&known, &[("ErrorCode", "abc")]),
        STATUS_CALLBACK_PATH,
    );
    let (huge_code_form, huge_code_signature) = signed(
        callback(&known, &[("ErrorCode", "99999999999999999999")]),
        STATUS_CALLBACK_PATH,
    );
    let (no_status_form, no_status_signature) = signed(
        pairs(&[("AccountSid", account.as_str()), ("MessageSid", &known)]),
        STATUS_CALLBACK_PATH,
    );
    let (inbound_no_from_form, inbound_no_from_signature) = signed(
        pairs(&[
            ("AccountSid", account.as_str()),
            ("MessageSid", "SM0123456789abcdef0123456789abcdef"),
            ("To", "+15005550006"),
            ("Body", "hi"),
        ]),
        RECEIVE_PATH,
    );
    let good_callback = form_body(&callback(&known, &[]));
    let unknown_account_callback = form_body(&pairs(&[
        ("AccountSid", "AC00000000000000000000000000000000"),
        ("MessageSid", &known),
        ("MessageStatus", "delivered"),
    ]));
    let send_ok = r#"{"to":"+14155550100","body":"hi"}"#;
    let deep_json = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let one_megabyte = format!(
        r#"{{"to":"+14155550100","body":"{}"}}"#,
        "x".repeat(1 << 20)
    );
    let long_body = format!(r#"{{"to":"+14155550100","body":"{}"}}"#, "y".repeat(5_000));
    let bogus_cursor = "eHxTTTAxMjM"; // base64 of "x|SM0123": decodes, but not a cursor
    let sid_with_query = format!("/api/messages/{known}?extra=1");
    let integration =
        |body: &str| Case::new("", Method::PUT, INTEGRATION, 400).json(body.to_owned());

    let cases = vec![
        // The refresh endpoint's query string.
        Case::post("hours below 1", format!("{REFRESH}?hours=0"), 400),
        Case::post("hours above 168", format!("{REFRESH}?hours=169"), 400),
        Case::post("hours not a number", format!("{REFRESH}?hours=abc"), 400),
        Case::post("negative hours", format!("{REFRESH}?hours=-1"), 400),
        Case::post("fractional hours", format!("{REFRESH}?hours=1.5"), 400),
        Case::post("hours past u64", format!("{REFRESH}?hours=99999999999999999999999"), 400),
        Case::post("hours as invalid UTF-8", format!("{REFRESH}?hours=%FF%FE"), 400),
        Case::post("hours given twice", format!("{REFRESH}?hours=24&hours=48"), 400),
        Case::post("empty hours", format!("{REFRESH}?hours="), 400),
        Case::post("hours with a leading space", format!("{REFRESH}?hours=+24"), 400),
        Case::post("hours in full-width digits", format!("{REFRESH}?hours=%EF%BC%92%EF%BC%94"), 400),
        Case::post("hours with a NUL", format!("{REFRESH}?hours=24%00"), 400),
        Case::post("short SID", format!("{REFRESH}?messageSid=SM123"), 400),
        Case::post("SQL-looking SID", format!("{REFRESH}?messageSid=SM%27%20OR%20%271%27%3D%271"), 400),
        Case::post("account SID as message SID", format!("{REFRESH}?messageSid=AC0123456789abcdef0123456789abcdef"), 400),
        Case::post("SID with a unicode letter", format!("{REFRESH}?messageSid=SM%C3%A90123456789abcdef0123456789abcde"), 400),
        Case::post("SID of 1000 characters", format!("{REFRESH}?messageSid=SM{}", "a".repeat(1000)), 400),
        Case::post("both a SID and hours", format!("{REFRESH}?messageSid={known}&hours=24"), 400),
        Case::post("unknown query key", format!("{REFRESH}?hourz=24"), 400),
        Case::post("percent-encoding garbage", format!("{REFRESH}?hours=%G0%"), 400),
        Case::get("GET on the refresh path", REFRESH, 405),
        Case::new("DELETE on the refresh path", Method::DELETE, REFRESH, 405),
        // Sending: the JSON body.
        Case::post("truncated JSON", SEND, 400).json(r#"{"to":"#),
        Case::post("number not E.164", SEND, 400).json(r#"{"to":"555","body":"hi"}"#),
        Case::post("JSON sent as text/plain", SEND, 415).header("Content-Type", "text/plain").body(send_ok),
        Case::post("JSON without a content type", SEND, 415).body(send_ok),
        Case::post("a garbage content type", SEND, 415).header("Content-Type", b"appl\xc3\xa9cation/json".to_vec()).body(send_ok),
        Case::post("an empty body", SEND, 400).json(""),
        Case::post("a JSON array", SEND, 400).json(r#"[{"to":"+14155550100","body":"hi"}]"#),
        Case::post("JSON null", SEND, 400).json("null"),
        Case::post("the number as a JSON number", SEND, 400).json(r#"{"to":14155550100,"body":"hi"}"#),
        Case::post("a number past f64", SEND, 400).json(r#"{"to":1e400,"body":"hi"}"#),
        Case::post("an empty SMS body", SEND, 400).json(r#"{"to":"+14155550100","body":""}"#),
        Case::post("an SMS body of 5000 characters", SEND, 400).json(long_body),
        Case::post("invalid UTF-8 in the JSON", SEND, 400).json(b"{\"to\":\"+14155550100\",\"body\":\"\xff\xfe\"}".to_vec()),
        Case::post("a byte-order mark before the JSON", SEND, 400).json(format!("\u{feff}{send_ok}")),
        Case::post("SQL-looking number", SEND, 400).json(r#"{"to":"+1415'; DROP TABLE messages;--","body":"hi"}"#),
        Case::post("full-width digits in the number", SEND, 400).json(r#"{"to":"+１４１５５５５０１００","body":"hi"}"#),
        Case::post("both a sender number and a service", SEND, 400).json(r#"{"to":"+14155550100","body":"hi","from":"+15005550006","messagingServiceSid":"MG0123456789abcdef0123456789abcdef"}"#),
        Case::post("a malformed messaging service SID", SEND, 400).json(r#"{"to":"+14155550100","body":"hi","messagingServiceSid":"MGnope"}"#),
        Case::post("10,000 nested arrays", SEND, 400).json(deep_json),
        Case::post("a 1 MB body", SEND, 413).json(one_megabyte),
        Case::get("GET on the send path", SEND, 405),
        // Listing: the query string.
        Case::get("limit 0", "/api/messages?limit=0", 400),
        Case::get("limit too large", "/api/messages?limit=100000", 400),
        Case::get("limit past u64", "/api/messages?limit=18446744073709551616", 400),
        Case::get("negative limit", "/api/messages?limit=-5", 400),
        Case::get("unknown status filter", "/api/messages?status=teleported", 400),
        Case::get("SQL-looking status filter", "/api/messages?status=%27%3B%20DROP%20TABLE%20messages%3B--", 400),
        Case::get("unknown direction", "/api/messages?direction=sideways", 400),
        Case::get("since not a time", "/api/messages?since=yesterday", 400),
        Case::get("cursor not base64", "/api/messages?cursor=%%%", 400),
        Case::get("cursor of another shape", format!("/api/messages?cursor={bogus_cursor}"), 400),
        Case::get("unknown list parameter", "/api/messages?sort=asc", 400),
        Case::post("POST on the list path", "/api/messages", 405),
        // One message: the path.
        Case::get("SQL-looking SID in the path", "/api/messages/SM%27%20OR%201%3D1--", 400),
        Case::get("invalid UTF-8 in the path", "/api/messages/%FF%FE", 400),
        Case::get("a SID one character short", "/api/messages/SM0123456789abcdef0123456789abcde", 400),
        Case::get("an emoji for a SID", "/api/messages/%F0%9F%98%80", 400),
        Case::get("a query string on a message", sid_with_query, 400),
        Case::new("DELETE of a message", Method::DELETE, format!("/api/messages/{known}"), 405),
        // Setting the integration.
        Case { why: "a malformed account SID", ..integration(r#"{"accountSid":"ACnope","authToken":"t","fromNumber":"+15005550006"}"#) },
        Case { why: "an empty auth token", ..integration(r#"{"accountSid":"AC0123456789abcdef0123456789abcdef","authToken":"","fromNumber":"+15005550006"}"#) },
        Case { why: "a non-ASCII auth token", ..integration(r#"{"accountSid":"AC0123456789abcdef0123456789abcdef","authToken":"tökén","fromNumber":"+15005550006"}"#) },
        Case { why: "an auth token of 300 characters", ..integration(&format!(r#"{{"accountSid":"AC0123456789abcdef0123456789abcdef","authToken":"{}","fromNumber":"+15005550006"}}"#, "t".repeat(300))) },
        Case { why: "an API key SID without its secret", ..integration(r#"{"accountSid":"AC0123456789abcdef0123456789abcdef","authToken":"t","apiKeySid":"SK0123456789abcdef0123456789abcdef","fromNumber":"+15005550006"}"#) },
        Case { why: "no default sender", ..integration(r#"{"accountSid":"AC0123456789abcdef0123456789abcdef","authToken":"t"}"#) },
        Case::post("POST on the integration path", INTEGRATION, 405).json("{}"),
        Case::new("the integration as a form", Method::PUT, INTEGRATION, 415).form("accountSid=AC1"),
        // Twilio's status callback.
        Case::post("a callback as JSON", STATUS_CALLBACK_PATH, 415).without_key().json(r#"{"MessageSid":"SM1"}"#),
        Case::post("a callback without a signature", STATUS_CALLBACK_PATH, 403).without_key().form(good_callback.clone()),
        Case::post("a callback with a forged signature", STATUS_CALLBACK_PATH, 403).without_key().form(good_callback.clone()).header("X-Twilio-Signature", "bm90IGEgc2lnbmF0dXJl"),
        Case::post("a callback with a non-ASCII signature", STATUS_CALLBACK_PATH, 403).without_key().form(good_callback).header("X-Twilio-Signature", b"\xff\xfe".to_vec()),
        Case::post("a callback for an unknown account", STATUS_CALLBACK_PATH, 403).without_key().form(unknown_account_callback),
        Case::post("a callback with a malformed account", STATUS_CALLBACK_PATH, 400).without_key().form("AccountSid=AC%27--&MessageSid=SM1&MessageStatus=sent"),
        Case::post("a callback without an account", STATUS_CALLBACK_PATH, 400).without_key().form("MessageSid=SM1&MessageStatus=sent"),
        Case::post("a callback of percent-encoding garbage", STATUS_CALLBACK_PATH, 400).without_key().form("%ZZ=%&&=%FF"),
        Case::post("a signed callback with an SQL-looking SID", STATUS_CALLBACK_PATH, 400).without_key().form(garbage_sid_form).header("X-Twilio-Signature", garbage_sid_signature),
        Case::post("a signed callback with a word for an error code", STATUS_CALLBACK_PATH, 400).without_key().form(bad_code_form).header("X-Twilio-Signature", bad_code_signature),
        Case::post("a signed callback with a huge error code", STATUS_CALLBACK_PATH, 400).without_key().form(huge_code_form).header("X-Twilio-Signature", huge_code_signature),
        Case::post("a signed callback without a status", STATUS_CALLBACK_PATH, 400).without_key().form(no_status_form).header("X-Twilio-Signature", no_status_signature),
        Case::get("GET on the callback path", STATUS_CALLBACK_PATH, 405).without_key(),
        // Twilio's inbound SMS.
        Case::post("an inbound SMS without a signature", RECEIVE_PATH, 403).without_key().form(format!("AccountSid={account}&From=%2B14155550100&To=%2B15005550006&Body=hi&MessageSid=SM0123456789abcdef0123456789abcdef")),
        Case::post("a signed inbound SMS without a sender", RECEIVE_PATH, 400).without_key().form(inbound_no_from_form).header("X-Twilio-Signature", inbound_no_from_signature),
        Case::post("an inbound SMS as text/plain", RECEIVE_PATH, 415).without_key().header("Content-Type", "text/plain").body("Body=hi"),
        // Probes and metrics with odd methods, and unknown paths.
        Case::post("POST on the health probe", "/healthz", 405).without_key(),
        Case::new("PUT on the readiness probe", Method::PUT, "/readyz", 405).without_key(),
        Case::new("DELETE on the metrics", Method::DELETE, "/metrics", 405).without_key(),
        Case::new("PATCH on the metrics", Method::PATCH, "/metrics", 405).without_key(),
        Case::get("an unknown path", "/api/messagez", 404),
        Case::get("a path traversal", "/api/messages/..%2F..%2Fetc%2Fpasswd", 400),
        // Headers.
        Case::post("a key of 8 KB", format!("{REFRESH}?hours=24"), 401).without_key().header("Authorization", format!("Bearer smsd_{}", "k".repeat(8192))),
        Case::post("a key of non-ASCII bytes", format!("{REFRESH}?hours=24"), 401).without_key().header("Authorization", b"Bearer \xc3\xa9\xff".to_vec()),
        Case::post("an SQL-looking key", format!("{REFRESH}?hours=24"), 401).without_key().header("Authorization", "Bearer ' OR '1'='1"),
        Case::post("a key with a NUL-like escape", format!("{REFRESH}?hours=24"), 401).without_key().header("Authorization", "Bearer smsd_%00"),
    ];
    assert!(cases.len() >= 50, "the table has {} cases", cases.len());

    let mut failures = Vec::new();
    for case in &cases {
        let mut request = app.http.request(case.method.clone(), app.url(&case.path));
        if case.with_key {
            request = request.bearer_auth(&app.api_key);
        }
        for (name, value) in &case.headers {
            request = request.header(
                HeaderName::from_bytes(name.as_bytes()).expect("a header name"),
                HeaderValue::from_bytes(value).expect("a header value"),
            );
        }
        let response = request
            .body(case.body.clone())
            .send()
            .await
            .unwrap_or_else(|e| panic!("{}: request failed: {e}", case.why));
        let status = response.status();
        if !status.is_client_error() {
            failures.push(format!("{}: answered {status}", case.why));
            continue;
        }
        let (status, code, body) = error_code(response).await;
        if status != case.expected {
            failures.push(format!(
                "{}: expected {}, got {status} {code} {body}",
                case.why, case.expected
            ));
        }
    }
    // Every case is tried before failing, so one run lists every deviation.
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(app.snapshot().await, before, "bad input changed nothing");
    assert_eq!(
        credentials(&app, team).await,
        (account.clone(), token.clone()),
        "the integration is as it was"
    );
    assert_eq!(
        app.store.list_teams().await.expect("teams").len(),
        1,
        "no team was created"
    );
    let twilio_after = app.sim.stats();
    assert_eq!(
        (twilio_after.fetches, twilio_after.creates),
        (twilio_before.fetches, twilio_before.creates),
        "Twilio was never asked"
    );
}
