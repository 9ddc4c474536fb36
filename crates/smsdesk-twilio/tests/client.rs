//! The Twilio client over HTTP: against the simulator (real shapes, errors, faults, concurrency)
//! and against a canned server (exact requests, odd bodies, Retry-After).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use secrecy::SecretString;
use smsdesk_domain::ports::{
    MessageListQuery, OutboundSms, ProviderError, Sender, SmsProvider, TwilioAuth,
    TwilioCredentials,
};
use smsdesk_domain::{
    AccountSid, ApiKeySid, Direction, MessageSid, MessageStatus, MessagingServiceSid, PhoneNumber,
};
use smsdesk_twilio::{RetryPolicy, TwilioClient, TwilioConfig};
use smsdesk_twilio_sim::{
    FaultConfig, LatencyConfig, SeedMessage, SimAccount, SimConfig, SimHandle, SimServer,
};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;

const ACCOUNT: &str = "AC0123456789abcdef0123456789abcdef";
const TOKEN: &str = "the-auth-token";
const KEY: &str = "SK0123456789abcdef0123456789abcdef";
const KEY_SECRET: &str = "the-key-secret";
const SID: &str = "SM0123456789abcdef0123456789abcdef";

fn account() -> AccountSid {
    AccountSid::parse(ACCOUNT).unwrap()
}

fn credentials() -> TwilioCredentials {
    TwilioCredentials {
        account_sid: account(),
        auth: TwilioAuth::AuthToken(SecretString::from(TOKEN)),
    }
}

fn with_token(token: &str) -> TwilioCredentials {
    TwilioCredentials {
        account_sid: account(),
        auth: TwilioAuth::AuthToken(SecretString::from(token)),
    }
}

fn sms(callback: Option<&str>) -> OutboundSms {
    OutboundSms {
        to: PhoneNumber::parse("+14155550100").unwrap(),
        body: "Your code is 1234".into(),
        sender: Sender::Number(PhoneNumber::parse("+15005550006").unwrap()),
        status_callback: callback.map(str::to_owned),
    }
}

/// Fast retries: the tests count attempts, they do not measure backoff (the retry module's
/// paused-time tests do).
fn quick_retries(max_retries: u32) -> RetryPolicy {
    RetryPolicy {
        max_retries,
        base_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(5),
        max_total_time: Duration::from_secs(10),
    }
}

fn client(base_url: &str, retry: RetryPolicy) -> TwilioClient {
    TwilioClient::new(TwilioConfig {
        base_url: base_url.to_owned(),
        retry,
        request_timeout: Duration::from_secs(5),
        ..TwilioConfig::default()
    })
    .expect("the client builds")
}

async fn sim() -> SimHandle {
    let account =
        SimAccount::new(account(), TOKEN).with_api_key(ApiKeySid::parse(KEY).unwrap(), KEY_SECRET);
    SimServer::start(
        SimConfig {
            speed: 0.0,
            seed: Some(11),
            workers: 2,
            ..SimConfig::default()
        }
        .with_account(account),
    )
    .await
    .expect("the simulator starts")
}

fn seed(sim: &SimHandle) -> MessageSid {
    sim.seed_message(SeedMessage::new(account(), MessageStatus::Sent))
        .expect("seeded")
        .sid
}

#[tokio::test]
async fn a_sent_message_is_fetched_back_with_its_later_status() {
    let sim = sim().await;
    let client = client(sim.base_url(), RetryPolicy::default());
    let callback = "https://desk.example/api/integrations/twilio/status-callback";
    let sent = client
        .send_message(&credentials(), &sms(Some(callback)))
        .await
        .expect("sent");
    assert_eq!(sent.state.status, MessageStatus::Queued);
    assert_eq!(sent.direction, Some(Direction::OutboundApi));
    assert_eq!(sent.account_sid, Some(account()));
    assert_eq!(sent.body.as_deref(), Some("Your code is 1234"));
    assert!(sent.date_created.is_some());
    let held = sim.message(&sent.sid).expect("the simulator has it");
    assert_eq!(held.status_callback.as_deref(), Some(callback));
    assert_eq!(held.from.as_deref(), Some("+15005550006"));

    sim.set_status(&sent.sid, MessageStatus::Undelivered, Some(30003))
        .await
        .unwrap();
    let fetched = client
        .fetch_message(&credentials(), &sent.sid)
        .await
        .expect("fetched");
    assert_eq!(fetched.sid, sent.sid);
    assert_eq!(fetched.state.status, MessageStatus::Undelivered);
    assert_eq!(fetched.state.error_code, Some(30003));
    assert_eq!(fetched.state.num_segments, Some(1));
    assert_eq!(fetched.state.price_unit.as_deref(), Some("USD"));
    assert_eq!(
        fetched.to.map(|a| a.to_string()),
        Some("+14155550100".into())
    );
    sim.stop().await;
}

#[tokio::test]
async fn a_messaging_service_and_an_api_key_are_used_as_twilio_expects() {
    let sim = sim().await;
    let client = client(sim.base_url(), RetryPolicy::default());
    let api_key = TwilioCredentials {
        account_sid: account(),
        auth: TwilioAuth::ApiKey {
            sid: ApiKeySid::parse(KEY).unwrap(),
            secret: SecretString::from(KEY_SECRET),
        },
    };
    let mut message = sms(None);
    message.sender = Sender::MessagingService(
        MessagingServiceSid::parse("MG0123456789abcdef0123456789abcdef").unwrap(),
    );
    let sent = client.send_message(&api_key, &message).await.expect("sent");
    assert_eq!(
        sent.state.status,
        MessageStatus::Accepted,
        "Twilio accepts first when a messaging service picks the sender"
    );
    let held = sim.message(&sent.sid).unwrap();
    assert_eq!(
        held.messaging_service_sid.as_deref(),
        Some("MG0123456789abcdef0123456789abcdef")
    );
    sim.stop().await;
}

#[tokio::test]
async fn twilio_errors_map_to_the_domain_errors() {
    let sim = sim().await;
    let client = client(sim.base_url(), RetryPolicy::default());
    let known = seed(&sim);
    let unknown = MessageSid::parse(SID).unwrap();

    let error = client
        .fetch_message(&with_token("wrong"), &known)
        .await
        .expect_err("a wrong token");
    assert!(
        matches!(&error, ProviderError::CredentialsRejected { code: Some(20003), message } if message.contains("Authenticate")),
        "{error:?}"
    );
    assert_eq!(
        client.fetch_message(&credentials(), &unknown).await,
        Err(ProviderError::NotFound),
        "an unknown SID"
    );
    sim.delete_message(&known).unwrap();
    assert_eq!(
        client.fetch_message(&credentials(), &known).await,
        Err(ProviderError::NotFound),
        "a deleted message"
    );
    let mut invalid = sms(None);
    invalid.to = PhoneNumber::parse("+15005550001").unwrap();
    let error = client
        .send_message(&credentials(), &invalid)
        .await
        .expect_err("Twilio's invalid number");
    assert!(
        matches!(&error, ProviderError::Rejected { status: 400, code: Some(21211), message } if message.contains("not a valid phone number")),
        "{error:?}"
    );
    assert_eq!(sim.stats().requests, 4, "none of these is retried");
    sim.stop().await;
}

#[tokio::test]
async fn rate_limiting_is_retried_for_reads_and_sends_then_reported() {
    let sim = sim().await;
    let sid = seed(&sim);
    sim.set_faults(FaultConfig {
        max_in_flight: Some(0),
        ..FaultConfig::default()
    });
    let client = client(sim.base_url(), quick_retries(2));
    let fetched = client.fetch_message(&credentials(), &sid).await;
    assert!(
        matches!(fetched, Err(ProviderError::RateLimited { .. })),
        "{fetched:?}"
    );
    assert_eq!(sim.stats().fetches, 3, "one attempt and two retries");
    let sent = client.send_message(&credentials(), &sms(None)).await;
    assert!(
        matches!(sent, Err(ProviderError::RateLimited { .. })),
        "{sent:?}"
    );
    assert_eq!(
        sim.stats().creates,
        3,
        "a 429 was not processed, so a send is safe to retry"
    );
    sim.set_faults(FaultConfig::default());
    assert!(client.fetch_message(&credentials(), &sid).await.is_ok());
    sim.stop().await;
}

#[tokio::test]
async fn a_read_is_retried_after_a_5xx_but_a_send_is_not() {
    let sim = sim().await;
    let sid = seed(&sim);
    sim.set_faults(FaultConfig {
        server_error_share: 1.0,
        ..FaultConfig::default()
    });
    let client = client(sim.base_url(), quick_retries(2));
    let fetched = client.fetch_message(&credentials(), &sid).await;
    assert!(
        matches!(&fetched, Err(ProviderError::Unavailable { reason }) if reason.contains("HTTP 50")),
        "{fetched:?}"
    );
    assert_eq!(sim.stats().fetches, 3);
    let sent = client.send_message(&credentials(), &sms(None)).await;
    assert!(
        matches!(sent, Err(ProviderError::Unavailable { .. })),
        "{sent:?}"
    );
    assert_eq!(
        sim.stats().creates,
        1,
        "after a 5xx the message may have gone out: never resend"
    );
    sim.stop().await;
}

#[tokio::test]
async fn a_timeout_is_unavailable_retried_for_reads_only() {
    let sim = sim().await;
    let sid = seed(&sim);
    sim.set_faults(FaultConfig {
        timeout_share: 1.0,
        timeout_hang: Duration::from_secs(5),
        ..FaultConfig::default()
    });
    let client = TwilioClient::new(TwilioConfig {
        base_url: sim.base_url().to_owned(),
        request_timeout: Duration::from_millis(150),
        retry: quick_retries(1),
        ..TwilioConfig::default()
    })
    .unwrap();
    let fetched = client.fetch_message(&credentials(), &sid).await;
    assert!(
        matches!(&fetched, Err(ProviderError::Unavailable { reason }) if reason.contains("timed out")),
        "{fetched:?}"
    );
    assert_eq!(sim.stats().fetches, 2);
    let sent = client.send_message(&credentials(), &sms(None)).await;
    assert!(
        matches!(sent, Err(ProviderError::Unavailable { .. })),
        "{sent:?}"
    );
    assert_eq!(sim.stats().creates, 1, "a timed-out send is not repeated");
    sim.stop().await;
}

#[tokio::test]
async fn a_truncated_success_body_is_unexpected_and_not_retried() {
    let sim = sim().await;
    let sid = seed(&sim);
    sim.set_faults(FaultConfig {
        malformed_share: 1.0,
        ..FaultConfig::default()
    });
    let client = client(sim.base_url(), quick_retries(3));
    let fetched = client.fetch_message(&credentials(), &sid).await;
    assert!(
        matches!(fetched, Err(ProviderError::Unexpected { .. })),
        "{fetched:?}"
    );
    assert_eq!(sim.stats().fetches, 1);
    sim.stop().await;
}

#[tokio::test]
async fn a_refused_connection_is_unavailable() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = closed.local_addr().unwrap();
    drop(closed);
    let client = client(&format!("http://{address}"), RetryPolicy::none());
    let fetched = client
        .fetch_message(&credentials(), &MessageSid::parse(SID).unwrap())
        .await;
    assert!(
        matches!(&fetched, Err(ProviderError::Unavailable { reason }) if reason.contains("connect")),
        "{fetched:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_concurrent_callers_never_exceed_the_per_account_cap() {
    const CAP: usize = 10;
    let sim = sim().await;
    let sid = seed(&sim);
    sim.set_latency(LatencyConfig::fixed(Duration::from_millis(10)));
    sim.set_faults(FaultConfig {
        max_in_flight: Some(CAP),
        ..FaultConfig::default()
    });
    let client = TwilioClient::new(TwilioConfig {
        base_url: sim.base_url().to_owned(),
        per_account_concurrency: CAP,
        retry: RetryPolicy::none(),
        ..TwilioConfig::default()
    })
    .unwrap();
    let callers = (0..200).map(|_| {
        let client = client.clone();
        let sid = sid.clone();
        tokio::spawn(async move { client.fetch_message(&credentials(), &sid).await })
    });
    let results = futures::future::join_all(callers).await;
    let failures: Vec<_> = results
        .into_iter()
        .filter_map(|r| r.ok().and_then(Result::err))
        .collect();
    assert!(failures.is_empty(), "{failures:?}");
    let stats = sim.stats();
    assert_eq!(stats.fetches, 200);
    assert_eq!(
        stats.rate_limited, 0,
        "the client kept under Twilio's limit"
    );
    assert!(
        stats.max_in_flight <= CAP as u64,
        "at most {CAP} in flight, saw {}",
        stats.max_in_flight
    );
    assert!(
        stats.max_in_flight >= 2,
        "the cap allows parallel requests, saw {}",
        stats.max_in_flight
    );
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_account_has_its_own_cap() {
    const OTHER: &str = "AC00000000000000000000000000000002";
    let sim = sim().await;
    sim.add_account(SimAccount::new(
        AccountSid::parse(OTHER).unwrap(),
        "other-token",
    ));
    let first = seed(&sim);
    let mut other_seed = SeedMessage::new(AccountSid::parse(OTHER).unwrap(), MessageStatus::Sent);
    other_seed.to = "+14155550123".into();
    let second = sim.seed_message(other_seed).unwrap().sid;
    sim.set_latency(LatencyConfig::fixed(Duration::from_millis(20)));
    let client = TwilioClient::new(TwilioConfig {
        base_url: sim.base_url().to_owned(),
        per_account_concurrency: 1,
        retry: RetryPolicy::none(),
        ..TwilioConfig::default()
    })
    .unwrap();
    let other = TwilioCredentials {
        account_sid: AccountSid::parse(OTHER).unwrap(),
        auth: TwilioAuth::AuthToken(SecretString::from("other-token")),
    };
    let callers = (0..20).map(|i| {
        let client = client.clone();
        let (credentials, sid) = if i % 2 == 0 {
            (credentials(), first.clone())
        } else {
            (other.clone(), second.clone())
        };
        tokio::spawn(async move { client.fetch_message(&credentials, &sid).await })
    });
    let results = futures::future::join_all(callers).await;
    assert!(
        results.iter().all(|r| matches!(r, Ok(Ok(_)))),
        "{results:?}"
    );
    assert_eq!(
        sim.stats().max_in_flight,
        2,
        "one request per account at a time, the two accounts in parallel"
    );
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_matching_cap_the_same_load_trips_twilios_429() {
    let sim = sim().await;
    let sid = seed(&sim);
    sim.set_latency(LatencyConfig::fixed(Duration::from_millis(10)));
    sim.set_faults(FaultConfig {
        max_in_flight: Some(10),
        ..FaultConfig::default()
    });
    let client = TwilioClient::new(TwilioConfig {
        base_url: sim.base_url().to_owned(),
        per_account_concurrency: 200,
        retry: RetryPolicy::none(),
        ..TwilioConfig::default()
    })
    .unwrap();
    let callers = (0..200).map(|_| {
        let client = client.clone();
        let sid = sid.clone();
        tokio::spawn(async move { client.fetch_message(&credentials(), &sid).await })
    });
    let limited = futures::future::join_all(callers)
        .await
        .into_iter()
        .filter(|r| matches!(r, Ok(Err(ProviderError::RateLimited { .. }))))
        .count();
    assert!(limited > 0, "the simulator enforces its limit");
    assert!(sim.stats().rate_limited > 0);
    sim.stop().await;
}

/// One canned answer: status line, extra headers, body.
#[derive(Clone)]
struct Canned {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: String,
}

fn canned(status: u16, body: &str) -> Canned {
    Canned {
        status,
        headers: Vec::new(),
        body: body.to_owned(),
    }
}

/// A server that answers each request with the next canned answer (the last one repeats) and
/// keeps every raw request.
struct CannedServer {
    base_url: String,
    requests: Arc<Mutex<Vec<String>>>,
    count: Arc<AtomicUsize>,
}

async fn canned_server(answers: Vec<Canned>) -> CannedServer {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base_url = format!("http://{}", listener.local_addr().unwrap());
    let requests = Arc::new(Mutex::new(Vec::new()));
    let count = Arc::new(AtomicUsize::new(0));
    let (seen, counter) = (Arc::clone(&requests), Arc::clone(&count));
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut raw = Vec::new();
            let mut buffer = [0u8; 4096];
            // Read the head, then as much body as Content-Length says.
            loop {
                let n = socket.read(&mut buffer).await.unwrap_or(0);
                if n == 0 {
                    break;
                }
                raw.extend_from_slice(&buffer[..n]);
                let text = String::from_utf8_lossy(&raw).to_string();
                if let Some(end) = text.find("\r\n\r\n") {
                    let length = text[..end]
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                        })
                        .unwrap_or(0);
                    if raw.len() >= end + 4 + length {
                        break;
                    }
                }
            }
            let index = counter.fetch_add(1, Ordering::SeqCst);
            seen.lock()
                .unwrap()
                .push(String::from_utf8_lossy(&raw).to_string());
            let answer = answers[index.min(answers.len() - 1)].clone();
            let mut response = format!(
                "HTTP/1.1 {} Canned\r\nContent-Length: {}\r\nConnection: close\r\n",
                answer.status,
                answer.body.len()
            );
            for (name, value) in &answer.headers {
                response.push_str(&format!("{name}: {value}\r\n"));
            }
            response.push_str("\r\n");
            response.push_str(&answer.body);
            let _ = socket.write_all(response.as_bytes()).await;
            let _ = socket.shutdown().await;
        }
    });
    CannedServer {
        base_url,
        requests,
        count,
    }
}

#[tokio::test]
async fn a_send_is_a_form_post_with_basic_auth_and_the_status_callback() {
    let created = format!(r#"{{"sid":"{SID}","status":"queued"}}"#);
    let server = canned_server(vec![canned(201, &created)]).await;
    let client = client(&server.base_url, RetryPolicy::none());
    let sent = client
        .send_message(&credentials(), &sms(Some("https://desk.example/cb?x=1")))
        .await
        .expect("sent");
    assert_eq!(sent.sid.as_str(), SID);
    let request = server.requests.lock().unwrap()[0].clone();
    let head = request.to_ascii_lowercase();
    assert!(
        request.starts_with(&format!(
            "POST /2010-04-01/Accounts/{ACCOUNT}/Messages.json HTTP/1.1"
        )),
        "{request}"
    );
    assert!(
        head.contains("content-type: application/x-www-form-urlencoded"),
        "{request}"
    );
    use base64::Engine as _;
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{ACCOUNT}:{TOKEN}"));
    assert!(
        request.contains(&format!("Basic {basic}")),
        "HTTP Basic with SID and token: {request}"
    );
    assert!(
        request.ends_with(
            "To=%2B14155550100&From=%2B15005550006&Body=Your+code+is+1234&StatusCallback=https%3A%2F%2Fdesk.example%2Fcb%3Fx%3D1"
        ),
        "{request}"
    );
}

#[tokio::test]
async fn canned_answers_map_to_the_domain() {
    let odd = format!(
        r#"{{"sid":"{SID}","status":"teleported","num_segments":"3","price":-0.02,"error_code":null,"from":null,"whatever":{{"a":1}}}}"#
    );
    let twilio_refusal = r#"{"code":21610,"message":"Attempt to send to unsubscribed recipient","more_info":"https://www.twilio.com/docs/errors/21610","status":400}"#;
    type Check = fn(&Result<smsdesk_domain::ports::ProviderMessage, ProviderError>) -> bool;
    let cases: Vec<(Canned, &str, Check)> = vec![
        (canned(200, &odd), "an odd but readable body", |r| {
            r.as_ref().is_ok_and(|m| {
                m.state.status == MessageStatus::Unknown("teleported".into())
                    && m.state.num_segments == Some(3)
                    && m.state.price.as_deref() == Some("-0.02")
                    && m.from.is_none()
            })
        }),
        (
            canned(200, r#"{"status":"sent"}"#),
            "a body without sid",
            |r| matches!(r, Err(ProviderError::Unexpected { .. })),
        ),
        (
            canned(502, "<html>Bad Gateway</html>"),
            "a proxy's HTML 502",
            |r| matches!(r, Err(ProviderError::Unavailable { reason }) if reason.contains("502")),
        ),
        (canned(404, ""), "a bare 404", |r| {
            *r == Err(ProviderError::NotFound)
        }),
        (canned(401, "<html>no</html>"), "a bare 401", |r| {
            matches!(
                r,
                Err(ProviderError::CredentialsRejected { code: None, .. })
            )
        }),
        (
            canned(400, twilio_refusal),
            "Twilio's 400",
            |r| matches!(r, Err(ProviderError::Rejected { status: 400, code: Some(21610), message }) if message.contains("unsubscribed") && message.contains("errors/21610")),
        ),
        (
            canned(429, "slow down"),
            "a 429 without Twilio's body",
            |r| matches!(r, Err(ProviderError::RateLimited { retry_after: None })),
        ),
    ];
    for (answer, why, check) in cases {
        let server = canned_server(vec![answer]).await;
        let client = client(&server.base_url, RetryPolicy::none());
        let result = client
            .fetch_message(&credentials(), &MessageSid::parse(SID).unwrap())
            .await;
        assert!(check(&result), "{why}: {result:?}");
        assert_eq!(server.count.load(Ordering::SeqCst), 1, "{why}");
    }
}

#[tokio::test]
async fn a_redirect_is_not_followed_and_the_credentials_go_nowhere_else() {
    // The redirect points at a second server, which counts what it is asked: a client that
    // followed the redirect would ask it, with the account's credentials.
    let elsewhere = canned_server(vec![canned(
        200,
        &format!(r#"{{"sid":"{SID}","status":"sent"}}"#),
    )])
    .await;
    let redirect = Canned {
        status: 302,
        headers: vec![("Location", format!("{}/stolen", elsewhere.base_url))],
        body: String::new(),
    };
    let server = canned_server(vec![redirect]).await;
    let client = client(&server.base_url, RetryPolicy::none());
    let result = client
        .fetch_message(&credentials(), &MessageSid::parse(SID).unwrap())
        .await;
    assert!(
        matches!(result, Err(ProviderError::Unexpected { .. })),
        "a redirect is an unexpected answer: {result:?}"
    );
    assert_eq!(server.count.load(Ordering::SeqCst), 1);
    assert_eq!(
        elsewhere.count.load(Ordering::SeqCst),
        0,
        "the redirect's target was never asked"
    );
}

#[tokio::test]
async fn retry_after_is_waited_for_before_the_retry() {
    let limited = Canned {
        status: 429,
        headers: vec![("Retry-After", "1".to_owned())],
        body: r#"{"code":20429,"message":"Too Many Requests","status":429}"#.into(),
    };
    let ok = canned(200, &format!(r#"{{"sid":"{SID}","status":"delivered"}}"#));
    let server = canned_server(vec![limited, ok]).await;
    let client = client(&server.base_url, quick_retries(3));
    let started = Instant::now();
    let fetched = client
        .fetch_message(&credentials(), &MessageSid::parse(SID).unwrap())
        .await
        .expect("the retry succeeds");
    assert_eq!(fetched.state.status, MessageStatus::Delivered);
    assert_eq!(server.count.load(Ordering::SeqCst), 2);
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "waited for Retry-After rather than the 1 ms backoff: {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_retry_after_beyond_the_budget_is_handed_to_the_caller() {
    let limited = Canned {
        status: 429,
        headers: vec![("Retry-After", "120".to_owned())],
        body: String::new(),
    };
    let server = canned_server(vec![limited]).await;
    let client = client(&server.base_url, quick_retries(3));
    let fetched = client
        .fetch_message(&credentials(), &MessageSid::parse(SID).unwrap())
        .await;
    assert_eq!(
        fetched,
        Err(ProviderError::RateLimited {
            retry_after: Some(Duration::from_secs(120))
        })
    );
    assert_eq!(server.count.load(Ordering::SeqCst), 1);
}

/// Log output collected in memory.
#[derive(Clone, Default)]
struct CapturedLog(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for CapturedLog {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn the_response_body_is_logged_at_debug_without_the_secret_or_the_auth_header() {
    // A misbehaving proxy echoing the token back must not put it in the log.
    let echo = format!(r#"{{"code":20003,"message":"bad token {TOKEN}","status":401}}"#);
    let server = canned_server(vec![canned(401, &echo)]).await;
    let log = CapturedLog::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer({
            let log = log.clone();
            move || log.clone()
        })
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let client = client(&server.base_url, RetryPolicy::none());
    let result = client
        .fetch_message(&credentials(), &MessageSid::parse(SID).unwrap())
        .await;
    assert!(
        matches!(&result, Err(ProviderError::CredentialsRejected { message, .. }) if message.contains("bad token [REDACTED]")),
        "the error carries no secret either: {result:?}"
    );
    let output = String::from_utf8(log.0.lock().unwrap().clone()).unwrap();
    assert!(output.contains("Twilio answered"), "{output}");
    assert!(
        output.contains("bad token [REDACTED]"),
        "the body is logged: {output}"
    );
    assert!(
        !output.contains(TOKEN),
        "the token never reaches the log: {output}"
    );
    assert!(
        !output.contains("Basic "),
        "the auth header never reaches the log: {output}"
    );
}

fn first_page(since: chrono::DateTime<chrono::Utc>, page_size: u32) -> MessageListQuery {
    MessageListQuery {
        sent_since: since,
        page_size,
        page_uri: None,
    }
}

#[tokio::test]
async fn twilios_reference_list_pages_are_read_leniently() {
    let full = include_str!("fixtures/messages_list_page.json");
    let empty = include_str!("fixtures/messages_list_empty.json");
    // The reference page, plus an entry with no SID and one that is not an object.
    let mut odd: serde_json::Value = serde_json::from_str(full).unwrap();
    odd["messages"]
        .as_array_mut()
        .unwrap()
        .extend([serde_json::json!({"status": "sent"}), serde_json::json!(7)]);
    let server = canned_server(vec![
        canned(200, full),
        canned(200, empty),
        canned(200, &odd.to_string()),
        canned(200, r#"{"page": 0}"#),
    ])
    .await;
    let client = client(&server.base_url, RetryPolicy::none());
    let since = chrono::Utc::now() - chrono::Duration::hours(1);

    let page = client
        .list_messages(&credentials(), &first_page(since, 2))
        .await
        .expect("the reference page reads");
    let sids: Vec<&str> = page.messages.iter().map(|m| m.sid.as_str()).collect();
    assert_eq!(
        sids,
        vec![
            "SMded05904ccb347238880ca9264e8fe1c",
            "MMc26223853f8c46b4ab7dfaa6abba0a26"
        ]
    );
    let first = &page.messages[0];
    assert_eq!(first.state.status, MessageStatus::Sent);
    assert_eq!(first.state.num_segments, Some(1), "a string of digits");
    assert_eq!(first.state.price.as_deref(), Some("-0.00750"));
    assert_eq!(
        first.date_sent.map(|d| d.to_rfc3339()),
        Some("2019-05-24T17:44:50+00:00".to_owned()),
        "RFC 2822 read"
    );
    assert_eq!(page.messages[1].state.error_code, Some(30004));
    assert!(
        page.next_page_uri.as_deref().is_some_and(
            |uri| uri.starts_with("/2010-04-01/Accounts/") && uri.contains("PageToken=")
        ),
        "{:?}",
        page.next_page_uri
    );
    let request = server.requests.lock().unwrap()[0].clone();
    let line = request.lines().next().unwrap_or_default().to_owned();
    assert!(
        line.starts_with(&format!(
            "GET /2010-04-01/Accounts/{ACCOUNT}/Messages.json?"
        )) && line.contains("DateSent%3E=")
            && line.contains("PageSize=2"),
        "the first page's request: {line}"
    );

    let empty = client
        .list_messages(&credentials(), &first_page(since, 25))
        .await
        .expect("an empty page reads");
    assert!(empty.messages.is_empty() && empty.next_page_uri.is_none());

    let odd = client
        .list_messages(&credentials(), &first_page(since, 2))
        .await
        .expect("a page with bad entries still reads");
    assert_eq!((odd.messages.len(), odd.unreadable), (2, 2));

    let error = client
        .list_messages(&credentials(), &first_page(since, 2))
        .await
        .expect_err("a page without messages is not a page");
    assert!(
        matches!(error, ProviderError::Unexpected { .. }),
        "{error:?}"
    );
}

#[tokio::test]
async fn a_next_page_elsewhere_is_refused_before_any_request() {
    let server = canned_server(vec![canned(200, r#"{"messages": []}"#)]).await;
    let client = client(&server.base_url, RetryPolicy::none());
    for uri in [
        "https://evil.example/2010-04-01/Accounts/AC0123456789abcdef0123456789abcdef/Messages.json?Page=1",
        "/2010-04-01/Accounts/ACfedcba9876543210fedcba9876543210/Messages.json?Page=1",
        "/2010-04-01/Accounts/AC0123456789abcdef0123456789abcdef/Calls.json?Page=1",
    ] {
        let query = MessageListQuery {
            page_uri: Some(uri.to_owned()),
            ..first_page(chrono::Utc::now(), 50)
        };
        let error = client
            .list_messages(&credentials(), &query)
            .await
            .expect_err(uri);
        assert!(
            matches!(error, ProviderError::Unexpected { .. }),
            "{uri}: {error:?}"
        );
    }
    assert_eq!(
        server.count.load(Ordering::SeqCst),
        0,
        "the credentials never went anywhere"
    );
}

#[tokio::test]
async fn an_accounts_list_is_followed_page_by_page_on_the_simulator() {
    let sim = sim().await;
    let mut seeded = Vec::new();
    for minutes_ago in [50, 40, 30, 20, 10] {
        let mut seed = SeedMessage::new(account(), MessageStatus::Delivered);
        seed.created_at = Some(chrono::Utc::now() - chrono::Duration::minutes(minutes_ago));
        seeded.push(sim.seed_message(seed).expect("seeded").sid);
    }
    let client = client(sim.base_url(), quick_retries(0));
    let mut query = first_page(chrono::Utc::now() - chrono::Duration::minutes(45), 2);
    let mut listed = Vec::new();
    loop {
        let page = client
            .list_messages(&credentials(), &query)
            .await
            .expect("a page");
        listed.extend(page.messages.into_iter().map(|m| m.sid));
        match page.next_page_uri {
            Some(next) => query.page_uri = Some(next),
            None => break,
        }
    }
    let mut expected: Vec<MessageSid> = seeded[1..].to_vec();
    expected.reverse();
    assert_eq!(
        listed, expected,
        "newest first, the one sent 50 minutes ago left out"
    );
    assert_eq!(sim.stats().lists, 2, "two pages of two");
    sim.stop().await;
}
