//! The simulator over HTTP: Twilio's shapes and errors, progression, signed callbacks, latency,
//! faults and the `/_sim` controls.

use std::time::Duration;

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use serde_json::Value;
use smsdesk_domain::{AccountSid, ApiKeySid, MessageSid, MessageStatus};
use smsdesk_twilio::signature::validate_form;
use smsdesk_twilio_sim::{
    CallbackConfig, FaultConfig, InboundSms, LatencyConfig, OutcomeShares, SeedMessage, SimAccount,
    SimConfig, SimHandle, SimServer, UNDELIVERED_CODES,
};
use tokio::sync::mpsc;

const ACCOUNT: &str = "AC0123456789abcdef0123456789abcdef";
const TOKEN: &str = "test-auth-token";
const KEY: &str = "SK0123456789abcdef0123456789abcdef";
const KEY_SECRET: &str = "key-secret";

fn account() -> AccountSid {
    AccountSid::parse(ACCOUNT).unwrap()
}

fn config() -> SimConfig {
    SimConfig {
        speed: 0.0,
        seed: Some(7),
        ..SimConfig::default()
    }
    .with_account(
        SimAccount::new(account(), TOKEN).with_api_key(ApiKeySid::parse(KEY).unwrap(), KEY_SECRET),
    )
}

async fn start(config: SimConfig) -> SimHandle {
    SimServer::start(config)
        .await
        .expect("the simulator starts")
}

fn messages_url(sim: &SimHandle) -> String {
    format!(
        "{}/2010-04-01/Accounts/{ACCOUNT}/Messages.json",
        sim.base_url()
    )
}

fn message_url(sim: &SimHandle, sid: &str) -> String {
    format!(
        "{}/2010-04-01/Accounts/{ACCOUNT}/Messages/{sid}.json",
        sim.base_url()
    )
}

async fn create(
    sim: &SimHandle,
    form: &[(&str, &str)],
    user: &str,
    password: &str,
) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(messages_url(sim))
        .basic_auth(user, Some(password))
        .form(form)
        .send()
        .await
        .expect("the simulator answers");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn fetch(sim: &SimHandle, sid: &str) -> (u16, String) {
    let response = reqwest::Client::new()
        .get(message_url(sim, sid))
        .basic_auth(ACCOUNT, Some(TOKEN))
        .send()
        .await
        .expect("the simulator answers");
    (
        response.status().as_u16(),
        response.text().await.unwrap_or_default(),
    )
}

fn standard_form(callback: Option<&str>) -> Vec<(&str, &str)> {
    let mut form = vec![
        ("To", "+14155550100"),
        ("From", "+15005550006"),
        ("Body", "hello"),
    ];
    if let Some(url) = callback {
        form.push(("StatusCallback", url));
    }
    form
}

/// A status-callback endpoint that checks nothing and records everything.
struct Receiver {
    url: String,
    calls: mpsc::UnboundedReceiver<Callback>,
    server: actix_web::dev::ServerHandle,
}

#[derive(Debug)]
struct Callback {
    url: String,
    signature: String,
    params: Vec<(String, String)>,
}

impl Callback {
    fn get(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

async fn receiver() -> Receiver {
    let (sender, calls) = mpsc::unbounded_channel::<Callback>();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let own_base = base.clone();
    let server = HttpServer::new(move || {
        let sender = sender.clone();
        let base = own_base.clone();
        App::new().default_service(web::to(move |req: HttpRequest, body: web::Bytes| {
            let sender = sender.clone();
            let url = format!("{base}{}", req.uri());
            async move {
                let signature = req
                    .headers()
                    .get("X-Twilio-Signature")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                let params = url::form_urlencoded::parse(&body).into_owned().collect();
                let _ = sender.send(Callback {
                    url,
                    signature,
                    params,
                });
                HttpResponse::Ok().finish()
            }
        }))
    })
    .workers(1)
    .disable_signals()
    .listen(listener)
    .unwrap()
    .run();
    let handle = server.handle();
    tokio::spawn(server);
    Receiver {
        url: format!("{base}/twilio/status?team=42"),
        calls,
        server: handle,
    }
}

impl Receiver {
    async fn next(&mut self) -> Callback {
        tokio::time::timeout(Duration::from_secs(10), self.calls.recv())
            .await
            .expect("a callback within 10 s")
            .expect("the receiver is running")
    }

    fn nothing_pending(&mut self) -> bool {
        self.calls.try_recv().is_err()
    }
}

#[tokio::test]
async fn a_created_message_has_every_twilio_field_in_twilio_shapes() {
    let sim = start(config()).await;
    let (status, json) = create(&sim, &standard_form(None), ACCOUNT, TOKEN).await;
    assert_eq!(status, 201);
    for field in [
        "sid",
        "account_sid",
        "messaging_service_sid",
        "status",
        "error_code",
        "error_message",
        "direction",
        "date_created",
        "date_sent",
        "date_updated",
        "num_segments",
        "num_media",
        "price",
        "price_unit",
        "from",
        "to",
        "body",
        "uri",
    ] {
        assert!(json.get(field).is_some(), "missing {field}: {json}");
    }
    assert_eq!(json["status"], "queued");
    assert_eq!(json["direction"], "outbound-api");
    assert_eq!(json["num_segments"], "1", "a string, as Twilio sends it");
    assert_eq!(json["num_media"], "0");
    assert!(json["date_sent"].is_null());
    let created = json["date_created"].as_str().unwrap_or_default();
    assert!(
        chrono::DateTime::parse_from_rfc2822(created).is_ok() && created.ends_with("+0000"),
        "RFC 2822: {created}"
    );
    assert!(MessageSid::parse(json["sid"].as_str().unwrap_or_default()).is_ok());
    let (status, body) = fetch(&sim, json["sid"].as_str().unwrap_or_default()).await;
    assert_eq!(status, 200);
    assert!(body.contains("\"queued\""), "{body}");
    sim.stop().await;
}

#[tokio::test]
async fn wrong_credentials_get_twilios_exact_401_and_api_keys_work() {
    let sim = start(config()).await;
    let form = standard_form(None);
    let cases = [
        (ACCOUNT, "wrong-token", 401, "a wrong auth token"),
        (KEY, "wrong-secret", 401, "a wrong key secret"),
        (
            "SKffffffffffffffffffffffffffffffff",
            KEY_SECRET,
            401,
            "an unknown key",
        ),
        (ACCOUNT, TOKEN, 201, "the auth token"),
        (KEY, KEY_SECRET, 201, "the API key"),
    ];
    for (user, password, expected, why) in cases {
        let (status, json) = create(&sim, &form, user, password).await;
        assert_eq!(status, expected, "{why}");
        if expected == 401 {
            assert_eq!(
                json,
                serde_json::json!({"code":20003,"message":"Authenticate","more_info":"https://www.twilio.com/docs/errors/20003","status":401}),
                "{why}"
            );
        }
    }
    let response = reqwest::Client::new()
        .get(message_url(&sim, "SM00000000000000000000000000000000"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 401, "no credentials at all");
    assert_eq!(sim.stats().unauthorized, 4);
    sim.stop().await;
}

/// The form, Twilio's expected code, and why.
type RefusalCase = (&'static [(&'static str, &'static str)], u64, &'static str);

#[tokio::test]
async fn create_time_refusals_carry_twilios_codes() {
    let sim = start(config()).await;
    let cases: [RefusalCase; 6] = [
        (&[("From", "+15005550006"), ("Body", "x")], 21604, "no To"),
        (&[("To", "+14155550100"), ("Body", "x")], 21603, "no From"),
        (
            &[("To", "+14155550100"), ("From", "+15005550006")],
            21602,
            "no Body",
        ),
        (
            &[("To", "call me"), ("From", "+15005550006"), ("Body", "x")],
            21211,
            "an invalid To",
        ),
        (
            &[
                ("To", "+15005550009"),
                ("From", "+15005550006"),
                ("Body", "x"),
            ],
            21614,
            "Twilio's magic non-mobile number",
        ),
        (
            &[
                ("To", "+15005550004"),
                ("From", "+15005550006"),
                ("Body", "x"),
            ],
            21610,
            "Twilio's magic unsubscribed number",
        ),
    ];
    for (form, code, why) in cases {
        let (status, json) = create(&sim, form, ACCOUNT, TOKEN).await;
        assert_eq!(status, 400, "{why}");
        assert_eq!(json["code"], code, "{why}: {json}");
        assert_eq!(json["status"], 400, "{why}");
    }
    assert!(sim.messages().is_empty(), "nothing was created");
    sim.stop().await;
}

#[tokio::test]
async fn unknown_and_deleted_messages_are_twilios_404() {
    let sim = start(config()).await;
    let seeded = sim
        .seed_message(SeedMessage::new(account(), MessageStatus::Sent))
        .unwrap();
    let (status, _) = fetch(&sim, seeded.sid.as_str()).await;
    assert_eq!(status, 200);
    sim.delete_message(&seeded.sid).unwrap();
    let (status, body) = fetch(&sim, seeded.sid.as_str()).await;
    assert_eq!(status, 404, "deleted");
    let json: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["code"], 20404);
    assert_eq!(
        json["more_info"],
        "https://www.twilio.com/docs/errors/20404"
    );
    let (status, _) = fetch(&sim, "not-a-sid").await;
    assert_eq!(status, 404, "a malformed SID");
    sim.stop().await;
}

#[tokio::test]
async fn advancing_walks_a_message_through_a_real_life_to_its_end() {
    let mut config = config();
    config.outcomes = OutcomeShares {
        undelivered: 1.0,
        failed: 0.0,
    };
    let sim = start(config).await;
    let (_, json) = create(&sim, &standard_form(None), ACCOUNT, TOKEN).await;
    let sid = MessageSid::parse(json["sid"].as_str().unwrap()).unwrap();
    let mut seen = Vec::new();
    while let Ok(message) = sim.advance(&sid).await {
        seen.push(message.status.as_str().to_owned());
        if message.status == MessageStatus::Undelivered {
            let code = message.error_code.unwrap_or_default();
            assert!(UNDELIVERED_CODES.contains(&code), "realistic code {code}");
            assert!(message.error_message.is_some());
        }
    }
    assert_eq!(seen, ["sending", "sent", "undelivered"]);
    let (_, body) = fetch(&sim, sid.as_str()).await;
    let json: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["status"], "undelivered");
    assert!(json["error_code"].is_u64(), "an integer: {json}");
    assert!(
        json["price"].as_str().is_some_and(|p| p.starts_with('-')),
        "a negative price string once sent: {json}"
    );
    assert!(json["date_sent"].is_string());
    sim.stop().await;
}

#[tokio::test]
async fn messages_progress_on_their_own_and_every_change_posts_a_signed_callback() {
    let mut config = config();
    config.speed = 1000.0;
    config.outcomes = OutcomeShares {
        undelivered: 0.0,
        failed: 0.0,
    };
    let sim = start(config).await;
    let mut receiver = receiver().await;
    let (_, json) = create(&sim, &standard_form(Some(&receiver.url)), ACCOUNT, TOKEN).await;
    let sid = json["sid"].as_str().unwrap().to_owned();
    let mut statuses = Vec::new();
    for _ in 0..3 {
        let callback = receiver.next().await;
        assert_eq!(callback.url, receiver.url);
        assert_eq!(
            validate_form(TOKEN, &callback.url, &callback.params, &callback.signature),
            Ok(()),
            "signed with the account's auth token: {callback:?}"
        );
        assert_eq!(
            validate_form(
                "another-token",
                &callback.url,
                &callback.params,
                &callback.signature
            ),
            Err(smsdesk_twilio::SignatureError::Mismatch)
        );
        assert_eq!(callback.get("MessageSid"), Some(sid.as_str()));
        assert_eq!(callback.get("SmsSid"), Some(sid.as_str()));
        assert_eq!(callback.get("AccountSid"), Some(ACCOUNT));
        assert_eq!(callback.get("ApiVersion"), Some("2010-04-01"));
        assert_eq!(callback.get("To"), Some("+14155550100"));
        assert_eq!(callback.get("From"), Some("+15005550006"));
        assert_eq!(callback.get("MessageStatus"), callback.get("SmsStatus"));
        assert_eq!(callback.get("ErrorCode"), None, "no error on success");
        statuses.push(callback.get("MessageStatus").unwrap_or_default().to_owned());
    }
    assert_eq!(statuses, ["sending", "sent", "delivered"]);
    let sid = MessageSid::parse(&sid).unwrap();
    assert_eq!(
        sim.message(&sid).map(|m| m.status),
        Some(MessageStatus::Delivered)
    );
    receiver.server.stop(true).await;
    sim.stop().await;
}

#[tokio::test]
async fn failures_post_their_error_code() {
    let sim = start(config()).await;
    let mut receiver = receiver().await;
    let mut seed = SeedMessage::new(account(), MessageStatus::Sent);
    seed.status_callback = Some(receiver.url.clone());
    let seeded = sim.seed_message(seed).unwrap();
    let after = sim
        .set_status(&seeded.sid, MessageStatus::Undelivered, Some(30007))
        .await
        .unwrap();
    assert_eq!(after.error_message.as_deref(), Some("Message filtered"));
    let callback = receiver.next().await;
    assert_eq!(callback.get("MessageStatus"), Some("undelivered"));
    assert_eq!(callback.get("ErrorCode"), Some("30007"));
    assert_eq!(
        validate_form(TOKEN, &callback.url, &callback.params, &callback.signature),
        Ok(())
    );
    receiver.server.stop(true).await;
    sim.stop().await;
}

#[tokio::test]
async fn callbacks_can_be_duplicated_and_reordered_on_request() {
    let mut config = config();
    config.outcomes = OutcomeShares {
        undelivered: 0.0,
        failed: 0.0,
    };
    let sim = start(config).await;
    let mut receiver = receiver().await;
    let (_, json) = create(&sim, &standard_form(Some(&receiver.url)), ACCOUNT, TOKEN).await;
    let sid = MessageSid::parse(json["sid"].as_str().unwrap()).unwrap();

    sim.set_callbacks(CallbackConfig {
        duplicate_share: 0.0,
        out_of_order_share: 1.0,
    });
    sim.advance(&sid).await.unwrap(); // sending: held back
    assert!(receiver.nothing_pending(), "the first callback is held");
    sim.advance(&sid).await.unwrap(); // sent, then the held sending
    sim.set_callbacks(CallbackConfig {
        duplicate_share: 1.0,
        out_of_order_share: 0.0,
    });
    sim.advance(&sid).await.unwrap(); // delivered, twice
    let mut order = Vec::new();
    for _ in 0..4 {
        let callback = receiver.next().await;
        assert_eq!(
            validate_form(TOKEN, &callback.url, &callback.params, &callback.signature),
            Ok(())
        );
        order.push(callback.get("MessageStatus").unwrap_or_default().to_owned());
    }
    assert_eq!(order, ["sent", "sending", "delivered", "delivered"]);
    receiver.server.stop(true).await;
    sim.stop().await;
}

#[tokio::test]
async fn latency_follows_the_configuration_and_is_recorded() {
    let mut config = config();
    config.latency = LatencyConfig::fixed(Duration::from_millis(15));
    let sim = start(config).await;
    for _ in 0..3 {
        create(&sim, &standard_form(None), ACCOUNT, TOKEN).await;
    }
    assert_eq!(sim.latencies(), vec![Duration::from_millis(15); 3]);
    sim.set_latency(LatencyConfig {
        median: Duration::from_millis(2),
        sigma: 0.8,
    });
    sim.reset_stats();
    for _ in 0..20 {
        create(&sim, &standard_form(None), ACCOUNT, TOKEN).await;
    }
    let served = sim.latencies();
    assert_eq!(served.len(), 20);
    let distinct: std::collections::BTreeSet<Duration> = served.iter().copied().collect();
    assert!(
        distinct.len() > 10,
        "a distribution, not a constant: {served:?}"
    );
    sim.stop().await;
}

#[tokio::test]
async fn injected_faults_look_like_twilio_and_proxies() {
    let sim = start(config()).await;
    let form = standard_form(None);

    sim.set_faults(FaultConfig {
        max_in_flight: Some(0),
        ..FaultConfig::default()
    });
    let (status, json) = create(&sim, &form, ACCOUNT, TOKEN).await;
    assert_eq!(
        (status, json["code"].as_u64()),
        (429, Some(20429)),
        "{json}"
    );

    sim.set_faults(FaultConfig {
        server_error_share: 1.0,
        ..FaultConfig::default()
    });
    for _ in 0..6 {
        let (status, _) = create(&sim, &form, ACCOUNT, TOKEN).await;
        assert!(status == 500 || status == 503, "a 5xx, got {status}");
    }
    assert!(sim.messages().is_empty(), "a 5xx fault creates nothing");

    sim.set_faults(FaultConfig {
        malformed_share: 1.0,
        ..FaultConfig::default()
    });
    let response = reqwest::Client::new()
        .post(messages_url(&sim))
        .basic_auth(ACCOUNT, Some(TOKEN))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 201);
    let body = response.text().await.unwrap();
    assert!(
        serde_json::from_str::<Value>(&body).is_err() && body.starts_with('{'),
        "truncated JSON: {body}"
    );

    sim.set_faults(FaultConfig {
        timeout_share: 1.0,
        timeout_hang: Duration::from_secs(5),
        ..FaultConfig::default()
    });
    let hung = reqwest::Client::new()
        .get(message_url(&sim, "SM00000000000000000000000000000000"))
        .basic_auth(ACCOUNT, Some(TOKEN))
        .timeout(Duration::from_millis(200))
        .send()
        .await;
    assert!(hung.is_err_and(|e| e.is_timeout()), "the request hangs");

    let stats = sim.stats();
    assert_eq!(
        (
            stats.rate_limited,
            stats.server_errors,
            stats.malformed,
            stats.timeouts
        ),
        (1, 6, 1, 1)
    );
    sim.stop().await;
}

#[tokio::test]
async fn the_http_control_routes_drive_the_simulator() {
    let sim = start(config()).await;
    let http = reqwest::Client::new();
    let control = |path: &str| format!("{}/_sim{path}", sim.base_url());

    let other = "AC00000000000000000000000000000002";
    let response = http
        .post(control("/accounts"))
        .json(&serde_json::json!({"sid": other, "auth_token": "other-token"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 204);

    let seeded: Value = http
        .post(control("/messages"))
        .json(&serde_json::json!({
            "account_sid": ACCOUNT, "to": "+14155550100", "from": "+15005550006",
            "body": "seeded", "status": "sent"
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let sid = seeded["sid"].as_str().unwrap().to_owned();
    assert_eq!(seeded["status"], "sent");

    let changed: Value = http
        .post(control(&format!("/messages/{sid}/status")))
        .json(&serde_json::json!({"status": "failed", "error_code": 30008}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(changed["status"], "failed");
    let (_, body) = fetch(&sim, &sid).await;
    assert!(body.contains("30008"), "{body}");

    let response = http
        .put(control("/faults"))
        .json(&serde_json::json!({"max_in_flight": 0}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 204);
    let (status, _) = fetch(&sim, &sid).await;
    assert_eq!(status, 429, "the fault applies at once");
    http.put(control("/faults"))
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();

    let response = http
        .delete(control(&format!("/messages/{sid}")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 204);
    let (status, _) = fetch(&sim, &sid).await;
    assert_eq!(status, 404);

    let stats: Value = http
        .get(control("/stats"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats["fetches"], 3);
    assert_eq!(stats["rate_limited"], 1);
    let unknown = http
        .post(control(
            "/messages/SM00000000000000000000000000000000/advance",
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status().as_u16(), 404);
    sim.stop().await;
}

#[tokio::test]
async fn an_inbound_sms_is_announced_with_a_signed_webhook() {
    let sim = start(config()).await;
    let mut receiver = receiver().await;
    let (message, webhook_status) = sim
        .receive_sms(InboundSms {
            account_sid: account(),
            from: "+14155550199".into(),
            to: "+15005550006".into(),
            body: "STOP & go".into(),
            webhook_url: receiver.url.clone(),
        })
        .await
        .expect("a known account");
    assert_eq!(webhook_status, Some(200));
    assert_eq!(message.status, MessageStatus::Received);
    assert_eq!(message.direction, "inbound");
    let webhook = receiver.next().await;
    assert_eq!(
        validate_form(TOKEN, &webhook.url, &webhook.params, &webhook.signature),
        Ok(())
    );
    assert_eq!(webhook.get("MessageSid"), Some(message.sid.as_str()));
    assert_eq!(webhook.get("Body"), Some("STOP & go"));
    assert_eq!(webhook.get("From"), Some("+14155550199"));
    assert_eq!(webhook.get("SmsStatus"), Some("received"));
    let (status, body) = fetch(&sim, message.sid.as_str()).await;
    assert_eq!(status, 200);
    assert!(body.contains("\"inbound\""), "{body}");
    receiver.server.stop(true).await;
    sim.stop().await;
}

#[tokio::test]
async fn the_in_flight_cap_is_per_account_like_twilios() {
    const OTHER: &str = "ACfedcba9876543210fedcba9876543210";
    const OTHER_TOKEN: &str = "other-token";
    let sim = start(SimConfig {
        latency: LatencyConfig::fixed(Duration::from_millis(300)),
        faults: FaultConfig {
            max_in_flight: Some(2),
            ..FaultConfig::default()
        },
        ..config().with_account(SimAccount::new(
            AccountSid::parse(OTHER).unwrap(),
            OTHER_TOKEN,
        ))
    })
    .await;
    let list = |account: &'static str, token: &'static str| {
        let url = format!(
            "{}/2010-04-01/Accounts/{account}/Messages/SM00000000000000000000000000000001.json",
            sim.base_url()
        );
        async move {
            reqwest::Client::new()
                .get(url)
                .basic_auth(account, Some(token))
                .send()
                .await
                .expect("the simulator answers")
                .status()
                .as_u16()
        }
    };
    // Three at once for the first account (one over its cap of 2), two for the other.
    let (a, b, c, d, e) = tokio::join!(
        list(ACCOUNT, TOKEN),
        list(ACCOUNT, TOKEN),
        list(ACCOUNT, TOKEN),
        list(OTHER, OTHER_TOKEN),
        list(OTHER, OTHER_TOKEN),
    );
    let answers = [a, b, c, d, e];
    let refused = |range: std::ops::Range<usize>| {
        answers[range]
            .iter()
            .filter(|status| **status == 429)
            .count()
    };
    assert_eq!(
        refused(0..3),
        1,
        "the first account's third request: {answers:?}"
    );
    assert_eq!(
        refused(3..5),
        0,
        "the other account has a cap of its own: {answers:?}"
    );
    assert_eq!(sim.stats().rate_limited, 1);
    sim.stop().await;
}

/// Seeds `status` messages created (and, if sent, sent) `minutes_ago`.
fn seed_at(sim: &SimHandle, status: MessageStatus, minutes_ago: i64) -> MessageSid {
    let mut seed = SeedMessage::new(account(), status);
    seed.created_at = Some(chrono::Utc::now() - chrono::Duration::minutes(minutes_ago));
    sim.seed_message(seed).expect("seeded").sid
}

async fn list_page(sim: &SimHandle, path_and_query: &str) -> (u16, Value) {
    let response = reqwest::Client::new()
        .get(format!("{}{path_and_query}", sim.base_url()))
        .basic_auth(ACCOUNT, Some(TOKEN))
        .send()
        .await
        .expect("the simulator answers");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn sids_of(page: &Value) -> Vec<String> {
    page["messages"]
        .as_array()
        .expect("a messages array")
        .iter()
        .map(|m| m["sid"].as_str().expect("a sid").to_owned())
        .collect()
}

#[tokio::test]
async fn the_messages_list_is_newest_first_filtered_by_date_sent_and_paged_like_twilios() {
    let sim = start(config()).await;
    let old = seed_at(&sim, MessageStatus::Delivered, 120);
    let middle = seed_at(&sim, MessageStatus::Sent, 30);
    let newest = seed_at(&sim, MessageStatus::Undelivered, 5);
    let _queued = seed_at(&sim, MessageStatus::Queued, 1);
    let since = (chrono::Utc::now() - chrono::Duration::minutes(60))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let base = format!("/2010-04-01/Accounts/{ACCOUNT}/Messages.json");
    let filter = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("DateSent>", &since)
        .append_pair("PageSize", "1")
        .finish();

    let (status, first) = list_page(&sim, &format!("{base}?{filter}")).await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(sids_of(&first), vec![newest.to_string()], "newest first");
    assert_eq!(first["page"], 0);
    assert_eq!(first["page_size"], 1);
    assert_eq!(first["previous_page_uri"], Value::Null);
    let next = first["next_page_uri"]
        .as_str()
        .expect("a next page")
        .to_owned();
    assert!(
        next.starts_with(&format!("{base}?"))
            && next.contains("DateSent%3E=")
            && next.contains("PageToken=PA"),
        "relative to the API host, with the filter and a token: {next}"
    );
    assert_eq!(
        first["messages"][0]["status"], "undelivered",
        "entries are Twilio's message JSON"
    );

    let (_, second) = list_page(&sim, &next).await;
    assert_eq!(sids_of(&second), vec![middle.to_string()]);
    assert_eq!(
        second["next_page_uri"],
        Value::Null,
        "the message sent two hours ago is before the filter, the queued one never matches it"
    );

    let (_, everything) = list_page(&sim, &format!("{base}?PageSize=1000")).await;
    let all = sids_of(&everything);
    assert_eq!(
        all.len(),
        4,
        "without a date filter every message is listed"
    );
    assert_eq!(all.last(), Some(&old.to_string()), "oldest last");
    assert_eq!(sim.stats().lists, 3);

    for bad in ["PageSize=0", "PageSize=1001", "DateSent%3E=yesterday"] {
        let (status, body) = list_page(&sim, &format!("{base}?{bad}")).await;
        assert_eq!(status, 400, "{bad}: {body}");
    }
    sim.stop().await;
}

#[tokio::test]
async fn a_bigger_list_page_takes_longer() {
    let sim = start(SimConfig {
        list_latency_per_message: Duration::from_millis(2),
        ..config()
    })
    .await;
    for _ in 0..100 {
        seed_at(&sim, MessageStatus::Sent, 1);
    }
    let base = format!("/2010-04-01/Accounts/{ACCOUNT}/Messages.json");
    let timed = |size: u32| {
        let url = format!("{base}?PageSize={size}");
        let sim = &sim;
        async move {
            let started = std::time::Instant::now();
            let (status, _) = list_page(sim, &url).await;
            assert_eq!(status, 200);
            started.elapsed()
        }
    };
    // A lower bound only: the simulator sleeps that long, whatever else the machine does.
    let big = timed(100).await;
    assert!(
        big >= Duration::from_millis(200),
        "100 messages at 2 ms each: {big:?}"
    );
    sim.stop().await;
}
