//! The HTTP face: Twilio's Messages API routes (auth, latency and faults applied) and the
//! unauthenticated `/_sim` control routes.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::http::header::AUTHORIZATION;
use actix_web::{HttpRequest, HttpResponse, web};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::Utc;
use serde::Deserialize;
use serde_json::json;
use smsdesk_domain::{AccountSid, MessageSid, MessageStatus};
use subtle::ConstantTimeEq as _;

use crate::config::{FaultConfig, LatencyConfig, SimAccount};
use crate::lifecycle::{ControlError, InboundSms, SeedMessage, segments};
use crate::state::{InFlight, SimMessage, SimState, lock};

type State = web::Data<SimState>;

/// Registers every route.
pub(crate) fn routes(cfg: &mut web::ServiceConfig) {
    // One resource per path, the message's first: the router tries each dynamic path's
    // pattern in turn, and a refresh's fetch is by far the most frequent request.
    cfg.service(
        web::resource("/2010-04-01/Accounts/{account}/Messages/{file}")
            .route(web::get().to(fetch))
            .route(web::delete().to(delete)),
    )
    .service(
        web::resource("/2010-04-01/Accounts/{account}/Messages.json")
            .route(web::post().to(create))
            .route(web::get().to(list)),
    )
    .service(
        web::scope("/_sim")
            .route("/stats", web::get().to(control_stats))
            .route("/stats/reset", web::post().to(control_reset_stats))
            .route("/latencies", web::get().to(control_latencies))
            .route("/accounts", web::post().to(control_add_account))
            .route("/messages", web::post().to(control_seed))
            .route("/messages/{sid}", web::get().to(control_message))
            .route("/messages/{sid}", web::delete().to(control_delete))
            .route("/messages/{sid}/status", web::post().to(control_set_status))
            .route("/messages/{sid}/advance", web::post().to(control_advance))
            .route("/inbound", web::post().to(control_inbound))
            .route("/faults", web::put().to(control_faults))
            .route("/latency", web::put().to(control_latency))
            .route("/speed", web::put().to(control_speed)),
    )
    .default_service(web::to(unknown_route));
}

/// Twilio's error body.
pub(crate) fn twilio_error(status: u16, code: u32, message: &str) -> HttpResponse {
    let body = json!({
        "code": code,
        "message": message,
        "more_info": format!("https://www.twilio.com/docs/errors/{code}"),
        "status": status,
    });
    HttpResponse::build(StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .content_type("application/json")
        .body(body.to_string())
}

fn not_found(path: &str) -> HttpResponse {
    twilio_error(
        404,
        20404,
        &format!("The requested resource {path} was not found"),
    )
}

async fn unknown_route(req: HttpRequest) -> HttpResponse {
    not_found(req.path())
}

/// Whether the Basic credentials belong to the account in the path.
fn authorized(state: &SimState, req: &HttpRequest, account: &AccountSid) -> bool {
    let Some(header) = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let Some(decoded) = header
        .strip_prefix("Basic ")
        .and_then(|encoded| BASE64.decode(encoded.trim()).ok())
        .and_then(|bytes| String::from_utf8(bytes).ok())
    else {
        return false;
    };
    let Some((user, password)) = decoded.split_once(':') else {
        return false;
    };
    let accounts = lock(&state.accounts);
    let Some(known) = accounts.get(account) else {
        return false;
    };
    let expected = if user == known.sid.as_str() {
        Some(known.auth_token.as_str())
    } else {
        known
            .api_keys
            .iter()
            .find(|key| key.sid.as_str() == user)
            .map(|key| key.secret.as_str())
    };
    expected.is_some_and(|secret| bool::from(secret.as_bytes().ct_eq(password.as_bytes())))
}

/// What every API request goes through before its handler: the account's in-flight limit, latency,
/// authentication and injected faults; then the truncation fault on its answer.
async fn api(
    state: &SimState,
    req: &HttpRequest,
    account: &str,
    counter: &AtomicU64,
    handler: impl FnOnce(&AccountSid) -> (HttpResponse, Duration),
) -> HttpResponse {
    let counters = &state.counters;
    counters.requests.fetch_add(1, Ordering::SeqCst);
    counter.fetch_add(1, Ordering::SeqCst);
    let in_flight = InFlight::enter(counters, account);
    let settings = state.settings();
    if settings
        .faults
        .max_in_flight
        .is_some_and(|limit| in_flight.for_account > limit)
    {
        counters.rate_limited.fetch_add(1, Ordering::SeqCst);
        return twilio_error(429, 20429, "Too Many Requests");
    }
    let latency = state.sample_latency();
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    lock(&state.latencies).push(latency);
    let account = AccountSid::parse(account).ok();
    let Some(account) = account.filter(|a| authorized(state, req, a)) else {
        counters.unauthorized.fetch_add(1, Ordering::SeqCst);
        return twilio_error(401, 20003, "Authenticate");
    };
    if state.chance() < settings.faults.server_error_share {
        counters.server_errors.fetch_add(1, Ordering::SeqCst);
        if state.chance() < 0.5 {
            return twilio_error(500, 20500, "An internal server error has occurred");
        }
        return HttpResponse::ServiceUnavailable()
            .content_type("text/html")
            .body("<html><body><h1>503 Service Unavailable</h1></body></html>");
    }
    if state.chance() < settings.faults.timeout_share {
        counters.timeouts.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(settings.faults.timeout_hang).await;
        return HttpResponse::GatewayTimeout().finish();
    }
    // A handler may take longer for a bigger answer (a list page), still in flight meanwhile.
    let (response, extra_latency) = handler(&account);
    if !extra_latency.is_zero() {
        tokio::time::sleep(extra_latency).await;
    }
    drop(in_flight);
    if response.status().is_success() && state.chance() < settings.faults.malformed_share {
        counters.malformed.fetch_add(1, Ordering::SeqCst);
        return truncate(response).await;
    }
    response
}

async fn truncate(response: HttpResponse) -> HttpResponse {
    let status = response.status();
    let bytes = actix_web::body::to_bytes(response.into_body())
        .await
        .unwrap_or_default();
    let half = bytes.slice(..bytes.len() / 2);
    HttpResponse::build(status)
        .content_type("application/json")
        .body(half)
}

fn json_response(status: StatusCode, message: &SimMessage) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("application/json")
        .body(message.to_twilio_json().to_string())
}

fn looks_like_address(value: &str) -> bool {
    let number = value
        .strip_prefix("whatsapp:")
        .or_else(|| value.strip_prefix("sms:"))
        .unwrap_or(value);
    number
        .strip_prefix('+')
        .is_some_and(|d| (8..=15).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit()))
}

async fn create(
    state: State,
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    let state = state.into_inner();
    let account = path.into_inner();
    let form: Vec<(String, String)> = url::form_urlencoded::parse(&body).into_owned().collect();
    let field = |name: &str| {
        form.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .filter(|v| !v.is_empty())
    };
    let shared = Arc::clone(&state);
    api(
        &state,
        &req,
        &account,
        &state.counters.creates,
        move |account| (create_message(&shared, account, &field), Duration::ZERO),
    )
    .await
}

fn create_message(
    state: &Arc<SimState>,
    account: &AccountSid,
    field: &dyn Fn(&str) -> Option<String>,
) -> HttpResponse {
    let Some(to) = field("To") else {
        return twilio_error(400, 21604, "A 'To' phone number is required.");
    };
    let from = field("From");
    let service = field("MessagingServiceSid");
    if from.is_none() && service.is_none() {
        return twilio_error(400, 21603, "A 'From' phone number is required.");
    }
    if let Some(service) = &service
        && (!service.starts_with("MG") || service.len() != 34)
    {
        return twilio_error(
            400,
            21701,
            &format!("The Messaging Service Sid {service} is invalid."),
        );
    }
    let Some(body) = field("Body") else {
        return twilio_error(400, 21602, "Message body is required.");
    };
    // Twilio's magic test numbers, so clients can exercise create-time refusals.
    match to.as_str() {
        "+15005550009" => {
            return twilio_error(
                400,
                21614,
                &format!("'To' number {to} is not a valid mobile number"),
            );
        }
        "+15005550004" => {
            return twilio_error(400, 21610, "Attempt to send to unsubscribed recipient");
        }
        _ => {}
    }
    if to == "+15005550001" || !looks_like_address(&to) {
        return twilio_error(
            400,
            21211,
            &format!("The 'To' number {to} is not a valid phone number."),
        );
    }
    if body.chars().count() > 1600 {
        return twilio_error(
            400,
            21617,
            "The concatenated message body exceeds the 1600 character limit.",
        );
    }
    let first = if service.is_some() {
        MessageStatus::Accepted
    } else {
        MessageStatus::Queued
    };
    let now = Utc::now();
    let sid = MessageSid::parse(&state.new_sid("SM"))
        .unwrap_or_else(|_| unreachable!("generated SIDs are well formed"));
    let message = SimMessage {
        sid,
        account_sid: account.clone(),
        messaging_service_sid: service,
        from,
        to,
        num_segments: segments(&body),
        body,
        plan: state.plan(&first),
        status: first,
        error_code: None,
        error_message: None,
        direction: "outbound-api".to_owned(),
        date_created: now,
        date_sent: None,
        date_updated: now,
        status_callback: field("StatusCallback"),
        generation: 0,
        held_callback: None,
    };
    state.insert_message(message.clone(), true);
    json_response(StatusCode::CREATED, &message)
}

/// The message in `file` (`{Sid}.json`) if it belongs to `account`.
fn find(state: &SimState, account: &AccountSid, file: &str) -> Option<SimMessage> {
    let sid = MessageSid::parse(file.strip_suffix(".json")?).ok()?;
    lock(&state.messages)
        .get(&sid)
        .filter(|m| m.account_sid == *account)
        .cloned()
}

async fn fetch(state: State, req: HttpRequest, path: web::Path<(String, String)>) -> HttpResponse {
    let (account, file) = path.into_inner();
    let request_path = req.path().to_owned();
    api(&state, &req, &account, &state.counters.fetches, |account| {
        let answer = match find(&state, account, &file) {
            Some(message) => json_response(StatusCode::OK, &message),
            None => not_found(&request_path),
        };
        (answer, Duration::ZERO)
    })
    .await
}

async fn delete(state: State, req: HttpRequest, path: web::Path<(String, String)>) -> HttpResponse {
    let (account, file) = path.into_inner();
    let request_path = req.path().to_owned();
    api(&state, &req, &account, &state.counters.deletes, |account| {
        let answer = match find(&state, account, &file) {
            Some(message) => {
                lock(&state.messages).remove(&message.sid);
                HttpResponse::NoContent().finish()
            }
            None => not_found(&request_path),
        };
        (answer, Duration::ZERO)
    })
    .await
}

async fn list(state: State, req: HttpRequest, path: web::Path<String>) -> HttpResponse {
    let account = path.into_inner();
    let query: Vec<(String, String)> = url::form_urlencoded::parse(req.query_string().as_bytes())
        .into_owned()
        .collect();
    let per_message = state.settings().list_latency_per_message;
    api(&state, &req, &account, &state.counters.lists, |account| {
        match crate::listing::ListQuery::parse(&query) {
            Ok(query) => {
                let page = crate::listing::page(&lock(&state.messages), account, &query);
                let listed = u32::try_from(page.listed).unwrap_or(u32::MAX);
                (
                    HttpResponse::Ok()
                        .content_type("application/json")
                        .body(page.body.to_string()),
                    per_message * listed,
                )
            }
            Err(message) => (twilio_error(400, 20001, &message), Duration::ZERO),
        }
    })
    .await
}

fn control_error(error: &ControlError) -> HttpResponse {
    let status = match error {
        ControlError::UnknownMessage(_) | ControlError::UnknownAccount(_) => StatusCode::NOT_FOUND,
        ControlError::DuplicateMessage(_) | ControlError::NothingToAdvance(_) => {
            StatusCode::CONFLICT
        }
    };
    HttpResponse::build(status).json(json!({ "error": error.to_string() }))
}

fn control_answer(result: Result<SimMessage, ControlError>) -> HttpResponse {
    match result {
        Ok(message) => json_response(StatusCode::OK, &message),
        Err(error) => control_error(&error),
    }
}

fn bad_sid(error: &smsdesk_domain::IdError) -> HttpResponse {
    HttpResponse::BadRequest().json(json!({ "error": error.to_string() }))
}

async fn control_stats(state: State) -> HttpResponse {
    HttpResponse::Ok().json(state.stats())
}

async fn control_reset_stats(state: State) -> HttpResponse {
    state.reset_stats();
    HttpResponse::NoContent().finish()
}

async fn control_latencies(state: State) -> HttpResponse {
    let millis: Vec<f64> = lock(&state.latencies)
        .iter()
        .map(|d| d.as_secs_f64() * 1000.0)
        .collect();
    HttpResponse::Ok().json(json!({ "latencies_ms": millis }))
}

async fn control_add_account(state: State, account: web::Json<SimAccount>) -> HttpResponse {
    let account = account.into_inner();
    lock(&state.accounts).insert(account.sid.clone(), account);
    HttpResponse::NoContent().finish()
}

async fn control_seed(state: State, seed: web::Json<SeedMessage>) -> HttpResponse {
    control_answer(state.into_inner().seed(seed.into_inner()))
}

async fn control_message(state: State, sid: web::Path<String>) -> HttpResponse {
    let sid = match MessageSid::parse(&sid) {
        Ok(sid) => sid,
        Err(error) => return bad_sid(&error),
    };
    let message = lock(&state.messages).get(&sid).cloned();
    control_answer(message.ok_or(ControlError::UnknownMessage(sid)))
}

async fn control_delete(state: State, sid: web::Path<String>) -> HttpResponse {
    match MessageSid::parse(&sid) {
        Ok(sid) => match state.delete(&sid) {
            Ok(()) => HttpResponse::NoContent().finish(),
            Err(error) => control_error(&error),
        },
        Err(error) => bad_sid(&error),
    }
}

/// Body of `POST /_sim/messages/{sid}/status`.
#[derive(Debug, Deserialize)]
struct StatusChange {
    status: MessageStatus,
    #[serde(default)]
    error_code: Option<u32>,
}

async fn control_set_status(
    state: State,
    sid: web::Path<String>,
    change: web::Json<StatusChange>,
) -> HttpResponse {
    match MessageSid::parse(&sid) {
        Ok(sid) => {
            let change = change.into_inner();
            control_answer(
                state
                    .set_status(&sid, change.status, change.error_code)
                    .await,
            )
        }
        Err(error) => bad_sid(&error),
    }
}

async fn control_advance(state: State, sid: web::Path<String>) -> HttpResponse {
    match MessageSid::parse(&sid) {
        Ok(sid) => control_answer(state.advance(&sid).await),
        Err(error) => bad_sid(&error),
    }
}

async fn control_inbound(state: State, inbound: web::Json<InboundSms>) -> HttpResponse {
    match state.receive(inbound.into_inner()).await {
        Ok((message, webhook_status)) => HttpResponse::Ok().json(json!({
            "message": message.to_twilio_json(),
            "webhook_status": webhook_status,
        })),
        Err(error) => control_error(&error),
    }
}

async fn control_faults(state: State, faults: web::Json<FaultConfig>) -> HttpResponse {
    lock(&state.settings).faults = faults.into_inner();
    HttpResponse::NoContent().finish()
}

async fn control_latency(state: State, latency: web::Json<LatencyConfig>) -> HttpResponse {
    lock(&state.settings).latency = latency.into_inner();
    HttpResponse::NoContent().finish()
}

/// Body of `PUT /_sim/speed`.
#[derive(Debug, Deserialize)]
struct Speed {
    speed: f64,
}

async fn control_speed(state: State, speed: web::Json<Speed>) -> HttpResponse {
    lock(&state.settings).speed = speed.speed.max(0.0);
    HttpResponse::NoContent().finish()
}

/// The latency the simulator will add, for logs.
pub(crate) fn describe_latency(latency: &LatencyConfig) -> String {
    if latency.median == Duration::ZERO {
        "none".to_owned()
    } else {
        format!(
            "log-normal, median {:?}, sigma {}",
            latency.median, latency.sigma
        )
    }
}
