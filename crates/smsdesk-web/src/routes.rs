//! The handlers, one per endpoint, and their registration.

use actix_web::http::Method;
use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::web::Bytes;
use actix_web::{FromRequest, Handler, HttpRequest, HttpResponse, Responder, web};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use smsdesk_domain::api_keys::{ApiKeyId, ApiKeyLabel};
use smsdesk_domain::idempotency::{IdempotencyKey, InvalidIdempotencyKey};
use smsdesk_domain::ports::{MessageCursor, MessageQuery, Sender};
use smsdesk_domain::services::{
    ConfigureIntegration, IntegrationSettings, ManageApiKeys, RefreshTarget, STATUS_CALLBACK_PATH,
    SendRequest,
};
use smsdesk_domain::summary::SummaryWindow;
use smsdesk_domain::{
    Address, Direction, MessageReference, MessageSid, MessageStatus, MessagingServiceSid,
    PhoneNumber, RefreshWindow, TeamId,
};

use crate::auth::Authenticated;
use crate::dto::{
    ApiKeyDto, ApiKeyListDto, CreateApiKeyDto, DeliverySummaryDto, IntegrationDto,
    IntegrationViewDto, IssuedApiKeyDto, MessageDto, MessagePageDto, MessageWithHistoryDto,
    PageLinksDto, RefreshResponseDto, SendSmsDto, StatusEventDto,
};
use crate::error::{ApiError, ErrorCode, store_error};
use crate::query::QueryParams;
use crate::state::{ListPageBody, WebState};
use crate::webhooks;

pub(crate) type Query = web::Query<Vec<(String, String)>>;

/// Registers every route on `cfg` (inside the edge-wrapped scope).
pub(crate) fn register(scope: actix_web::Scope) -> actix_web::Scope {
    crate::webhook_endpoints::register(scope)
        .service(endpoint("/healthz", Method::GET, healthz))
        .service(endpoint("/readyz", Method::GET, readyz))
        .service(endpoint("/metrics", Method::GET, metrics))
        .service(endpoint("/api/openapi.json", Method::GET, openapi))
        .service(endpoint(
            "/api/integrations/twilio/messages/refresh-status",
            Method::POST,
            refresh_status,
        ))
        .service(endpoint(
            "/api/integrations/twilio/sms/send",
            Method::POST,
            send_sms,
        ))
        // Twilio's webhooks: authenticated by X-Twilio-Signature, not by API key.
        .service(endpoint(
            STATUS_CALLBACK_PATH,
            Method::POST,
            webhooks::status_callback,
        ))
        .service(endpoint(
            "/api/integrations/twilio/sms/receive",
            Method::POST,
            webhooks::receive_sms,
        ))
        .service(endpoint(
            "/api/integrations/twilio",
            Method::PUT,
            put_integration,
        ))
        .service(
            web::resource("/api/keys")
                .route(web::get().to(list_api_keys))
                .route(web::post().to(create_api_key))
                .default_service(web::to(|| async {
                    Err::<HttpResponse, _>(ApiError::method_not_allowed_of(&[
                        Method::GET,
                        Method::POST,
                    ]))
                })),
        )
        .service(endpoint("/api/keys/{id}", Method::DELETE, revoke_api_key))
        .service(endpoint("/api/messages", Method::GET, list_messages))
        .service(endpoint(
            "/api/messages/summary",
            Method::GET,
            message_summary,
        ))
        .service(endpoint("/api/messages/{sid}", Method::GET, get_message))
        .default_service(web::to(not_found))
}

/// `path` answered by `handler` for `method`; any other method gets 405 in the error shape, with
/// `Allow` naming `method`.
pub(crate) fn endpoint<F, Args>(path: &str, method: Method, handler: F) -> actix_web::Resource
where
    F: Handler<Args>,
    Args: FromRequest + 'static,
    F::Output: Responder + 'static,
{
    web::resource(path)
        .route(web::method(method.clone()).to(handler))
        .default_service(web::to(move || {
            let allow = method.clone();
            async move { Err::<HttpResponse, _>(ApiError::method_not_allowed(allow)) }
        }))
}

async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::not_found("no such endpoint"))
}

/// The HTTP surface as an OpenAPI 3.1 document, compiled in so it always matches this binary;
/// a test checks that it names every route served and nothing else.
pub const OPENAPI_DOCUMENT: &str = include_str!("../assets/openapi.json");

async fn openapi() -> HttpResponse {
    HttpResponse::Ok()
        .content_type(header::ContentType::json())
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(OPENAPI_DOCUMENT)
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "status": "ok" }))
}

async fn readyz(state: web::Data<WebState>) -> Result<HttpResponse, ApiError> {
    if state.readiness().ready().await {
        Ok(HttpResponse::Ok().json(serde_json::json!({ "status": "ready" })))
    } else {
        Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::NotReady,
            "a dependency (the database) is not reachable",
        ))
    }
}

async fn metrics(state: web::Data<WebState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
        .body(state.metrics().encode())
}

fn parse_sid(field: &str, raw: &str) -> Result<MessageSid, ApiError> {
    MessageSid::parse(raw).map_err(|e| ApiError::invalid_parameter(field, e.to_string()))
}

/// Reads `messageSid` (one message) or `hours` (bulk, default 24) into what to refresh.
fn refresh_target(params: &QueryParams) -> Result<RefreshTarget, ApiError> {
    match (params.get("messageSid"), params.get("hours")) {
        (Some(_), Some(_)) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::ConflictingParameters,
            "give either messageSid (one message) or hours (bulk), not both",
        )
        .with_field("hours")),
        (Some(raw_sid), None) => Ok(RefreshTarget::One(parse_sid("messageSid", raw_sid)?)),
        (None, hours) => RefreshWindow::parse(hours)
            .map(RefreshTarget::Recent)
            .map_err(|e| ApiError::invalid_parameter("hours", e.to_string())),
    }
}

async fn refresh_status(
    state: web::Data<WebState>,
    Authenticated(requester): Authenticated,
    query: Query,
) -> Result<HttpResponse, ApiError> {
    let params = QueryParams::new(query.into_inner(), &["messageSid", "hours"])?;
    let target = refresh_target(&params)?;
    let answer = state.refresh().refresh(&requester, target).await?;
    Ok(HttpResponse::Ok().json(RefreshResponseDto::from(answer)))
}

fn parse_phone(field: &str, raw: &str) -> Result<PhoneNumber, ApiError> {
    PhoneNumber::parse(raw).map_err(|e| ApiError::invalid_field(field, e.to_string()))
}

fn parse_service(raw: &str) -> Result<MessagingServiceSid, ApiError> {
    MessagingServiceSid::parse(raw)
        .map_err(|e| ApiError::invalid_field("messagingServiceSid", e.to_string()))
}

/// A send's sender override: `from` or `messagingServiceSid`, not both.
fn one_sender(from: Option<&str>, service: Option<&str>) -> Result<Option<Sender>, ApiError> {
    match (from, service) {
        (Some(_), Some(_)) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::ConflictingFields,
            "give either from or messagingServiceSid, not both",
        )
        .with_field("messagingServiceSid")),
        (Some(number), None) => Ok(Some(Sender::Number(parse_phone("from", number)?))),
        (None, Some(service)) => Ok(Some(Sender::MessagingService(parse_service(service)?))),
        (None, None) => Ok(None),
    }
}

/// Reads a JSON body only once the caller is known (and allowed): actix runs a handler's
/// extractors concurrently, so a `web::Json` argument could answer an anonymous caller's broken
/// body with a 400 before authentication answered 401. Limits and error shapes are `JsonConfig`'s.
pub(crate) async fn json_body<T: serde::de::DeserializeOwned>(
    req: &HttpRequest,
    payload: web::Payload,
) -> Result<T, actix_web::Error> {
    let mut payload = payload.into_inner();
    Ok(web::Json::<T>::from_request(req, &mut payload)
        .await?
        .into_inner())
}

async fn send_sms(
    state: web::Data<WebState>,
    Authenticated(requester): Authenticated,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, actix_web::Error> {
    let key = idempotency_key(&req)?;
    let body: SendSmsDto = json_body(&req, payload).await?;
    let request = SendRequest {
        to: parse_phone("to", &body.to)?,
        sender: one_sender(body.from.as_deref(), body.messaging_service_sid.as_deref())?,
        reference: body
            .reference
            .as_deref()
            .map(MessageReference::parse)
            .transpose()
            .map_err(|e| ApiError::invalid_field("reference", e.to_string()))?,
        body: body.body,
    };
    let sent = state
        .send()
        .send_idempotent(&requester, request, key.as_ref())
        .await
        .map_err(ApiError::from)?;
    Ok(HttpResponse::Created()
        .insert_header((
            header::LOCATION,
            format!("/api/messages/{}", sent.message.sid),
        ))
        .insert_header(("idempotent-replayed", sent.replayed.to_string()))
        .json(MessageDto::from(sent.message)))
}

/// The `Idempotency-Key` header, if sent.
fn idempotency_key(req: &HttpRequest) -> Result<Option<IdempotencyKey>, ApiError> {
    let Some(value) = req.headers().get("idempotency-key") else {
        return Ok(None);
    };
    let refuse = |error: String| {
        ApiError::new(
            actix_web::http::StatusCode::BAD_REQUEST,
            ErrorCode::BadRequest,
            error,
        )
    };
    let text = value
        .to_str()
        .map_err(|_| refuse(InvalidIdempotencyKey.to_string()))?;
    IdempotencyKey::parse(text)
        .map(Some)
        .map_err(|error| refuse(error.to_string()))
}

async fn put_integration(
    state: web::Data<WebState>,
    Authenticated(requester): Authenticated,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, actix_web::Error> {
    // The role first: a member learns nothing about the body's validity.
    let admin = ConfigureIntegration::authorize(&requester).map_err(ApiError::from)?;
    let settings: IntegrationSettings = json_body::<IntegrationDto>(&req, payload).await?.into();
    let stored = state
        .configure()
        .configure(admin, settings)
        .await
        .map_err(ApiError::from)?;
    tracing::info!(account_sid = %stored.credentials.account_sid, "Twilio integration set");
    Ok(HttpResponse::Ok().json(IntegrationViewDto::from(&stored)))
}

async fn list_api_keys(
    state: web::Data<WebState>,
    Authenticated(requester): Authenticated,
    query: Query,
) -> Result<HttpResponse, ApiError> {
    QueryParams::new(query.into_inner(), &[])?;
    let admin = ManageApiKeys::authorize(&requester)?;
    let keys = state.api_keys().list(admin).await?;
    Ok(HttpResponse::Ok().json(ApiKeyListDto {
        keys: keys.into_iter().map(ApiKeyDto::from).collect(),
    }))
}

async fn create_api_key(
    state: web::Data<WebState>,
    Authenticated(requester): Authenticated,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, actix_web::Error> {
    // The role first: a member learns nothing about the body's validity.
    let admin = ManageApiKeys::authorize(&requester).map_err(ApiError::from)?;
    let body: CreateApiKeyDto = json_body(&req, payload).await?;
    let label = body
        .label
        .as_deref()
        .map(ApiKeyLabel::parse)
        .transpose()
        .map_err(|e| ApiError::invalid_field("label", e.to_string()))?;
    let issued = state
        .api_keys()
        .create(admin, label)
        .await
        .map_err(ApiError::from)?;
    Ok(HttpResponse::Created()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(IssuedApiKeyDto::from(issued)))
}

async fn revoke_api_key(
    state: web::Data<WebState>,
    Authenticated(requester): Authenticated,
    path: web::Path<String>,
    query: Query,
) -> Result<HttpResponse, ApiError> {
    QueryParams::new(query.into_inner(), &[])?;
    let admin = ManageApiKeys::authorize(&requester)?;
    let id = ApiKeyId::parse(&path.into_inner())
        .map_err(|e| ApiError::invalid_parameter("id", e.to_string()))?;
    let revoked = state.api_keys().revoke(admin, &id).await?;
    Ok(HttpResponse::Ok().json(ApiKeyDto::from(revoked)))
}

/// The page size when the client names none, and the largest allowed.
const DEFAULT_PAGE: usize = 50;
const MAX_PAGE: usize = 200;

/// Encodes a cursor as opaque URL-safe base64 of `created_at|sid`.
pub(crate) fn encode_cursor(cursor: &MessageCursor) -> String {
    let raw = format!(
        "{}|{}",
        cursor
            .created_at
            .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
        cursor.sid
    );
    URL_SAFE_NO_PAD.encode(raw)
}

pub(crate) fn decode_cursor(raw: &str) -> Option<MessageCursor> {
    let bytes = URL_SAFE_NO_PAD.decode(raw).ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let (created_at, sid) = text.split_once('|')?;
    Some(MessageCursor {
        created_at: chrono::DateTime::parse_from_rfc3339(created_at)
            .ok()?
            .with_timezone(&chrono::Utc),
        sid: MessageSid::parse(sid).ok()?,
    })
}

/// The query keys `GET /api/messages` accepts; `status` may be repeated (any of them).
const LIST_PARAMETERS: [&str; 10] = [
    "direction",
    "status",
    "since",
    "until",
    "reference",
    "to",
    "from",
    "party",
    "cursor",
    "limit",
];

fn parse_time(
    params: &QueryParams,
    key: &str,
) -> Result<Option<chrono::DateTime<chrono::Utc>>, ApiError> {
    params
        .get(key)
        .map(|raw| {
            chrono::DateTime::parse_from_rfc3339(raw)
                .map(|t| t.with_timezone(&chrono::Utc))
                .map_err(|_| {
                    ApiError::invalid_parameter(
                        key,
                        format!("{key} must be an RFC 3339 time, e.g. 2026-01-31T12:00:00Z"),
                    )
                })
        })
        .transpose()
}

/// A `to`, `from` or `party` filter. A leading `+` sent unencoded arrives as a space (form encoding), so
/// that is named rather than silently matching nothing.
fn parse_address_filter(params: &QueryParams, key: &str) -> Result<Option<Address>, ApiError> {
    params
        .get(key)
        .map(|raw| {
            if raw.starts_with(' ') {
                return Err(ApiError::invalid_parameter(
                    key,
                    format!("{key} starts with a space: send a leading '+' as %2B"),
                ));
            }
            Address::parse(raw).map_err(|e| ApiError::invalid_parameter(key, e.to_string()))
        })
        .transpose()
}

fn parse_list_query(params: &QueryParams) -> Result<MessageQuery, ApiError> {
    let direction = params
        .get("direction")
        .map(Direction::parse)
        .transpose()
        .map_err(|e| ApiError::invalid_parameter("direction", e.to_string()))?;
    let statuses = params
        .get_all("status")
        .map(MessageStatus::parse_known)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ApiError::invalid_parameter("status", e.to_string()))?;
    let created_since = parse_time(params, "since")?;
    let created_until = parse_time(params, "until")?;
    let reference = params
        .get("reference")
        .map(MessageReference::parse)
        .transpose()
        .map_err(|e| ApiError::invalid_parameter("reference", e.to_string()))?;
    let after = params
        .get("cursor")
        .map(|raw| {
            decode_cursor(raw).ok_or_else(|| {
                ApiError::invalid_parameter(
                    "cursor",
                    "cursor is not one this service issued; pass nextCursor from a previous page",
                )
            })
        })
        .transpose()?;
    let limit = params.limit(DEFAULT_PAGE, MAX_PAGE)?;
    Ok(MessageQuery {
        direction,
        statuses,
        created_since,
        created_until,
        reference,
        to: parse_address_filter(params, "to")?,
        from: parse_address_filter(params, "from")?,
        party: parse_address_filter(params, "party")?,
        after,
        limit,
    })
}

/// The next page's full URL: this request's URL with `cursor` set to `next`, every other
/// parameter kept.
pub(crate) fn next_page_url(req: &HttpRequest, params: &QueryParams, next: &str) -> String {
    next_page_url_from(&request_base_url(req), params.pairs(), next)
}

/// This request's URL without its query: scheme, host and path.
fn request_base_url(req: &HttpRequest) -> String {
    let info = req.connection_info();
    format!("{}://{}{}", info.scheme(), info.host(), req.path())
}

/// [`next_page_url`] from the request's base URL and query pairs.
fn next_page_url_from(base: &str, pairs: &[(String, String)], next: &str) -> String {
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    for (key, value) in pairs.iter().filter(|(key, _)| key != "cursor") {
        query.append_pair(key, value);
    }
    query.append_pair("cursor", next);
    format!("{base}?{}", query.finish())
}

async fn list_messages(
    state: web::Data<WebState>,
    Authenticated(requester): Authenticated,
    req: HttpRequest,
    query: Query,
) -> Result<HttpResponse, ApiError> {
    let params = QueryParams::with_repeatable(query.into_inner(), &LIST_PARAMETERS, &["status"])?;
    let query = parse_list_query(&params)?;
    let body = shared_list_page(&state, requester.team_id, &req, params, query).await?;
    Ok(HttpResponse::Ok()
        .insert_header(header::ContentType::json())
        .body(body))
}

/// The JSON body of `team`'s page for `query`, from a read shared with identical requests that
/// arrived at the same time, never one that began before this request (see
/// [`crate::coalesce`]).
async fn shared_list_page(
    state: &WebState,
    team: TeamId,
    req: &HttpRequest,
    params: QueryParams,
    query: MessageQuery,
) -> ListPageBody {
    let base = request_base_url(req);
    let key = (team, format!("{base}?{}", req.query_string()));
    let messages = state.messages().clone();
    let body = state
        .list_pages()
        .read(key, move || async move {
            let page = messages
                .list(team, query)
                .await
                .map_err(|e| store_error(&e))?;
            let next_cursor = page.next.as_ref().map(encode_cursor);
            let dto = MessagePageDto {
                links: PageLinksDto {
                    next: next_cursor
                        .as_deref()
                        .map(|next| next_page_url_from(&base, params.pairs(), next)),
                },
                next_cursor,
                messages: page.messages.into_iter().map(MessageDto::from).collect(),
            };
            serde_json::to_vec(&dto)
                .map(Bytes::from)
                .map_err(|e| ApiError::internal(format!("could not encode a page: {e}")))
        })
        .await;
    (*body).clone()
}

async fn message_summary(
    state: web::Data<WebState>,
    Authenticated(requester): Authenticated,
    query: Query,
) -> Result<HttpResponse, ApiError> {
    let params = QueryParams::new(query.into_inner(), &["hours"])?;
    let window = SummaryWindow::parse(params.get("hours"))
        .map_err(|e| ApiError::invalid_parameter("hours", e.to_string()))?;
    let summary = state
        .summaries()
        .summary(requester.team_id, window)
        .await
        .map_err(|e| store_error(&e))?;
    Ok(HttpResponse::Ok().json(DeliverySummaryDto::from(summary)))
}

async fn get_message(
    state: web::Data<WebState>,
    Authenticated(requester): Authenticated,
    path: web::Path<String>,
    query: Query,
) -> Result<HttpResponse, ApiError> {
    QueryParams::new(query.into_inner(), &[])?;
    let sid = parse_sid("sid", &path.into_inner())?;
    let team = requester.team_id;
    let message = state
        .messages()
        .find(team, &sid)
        .await
        .map_err(|e| store_error(&e))?
        .ok_or_else(|| ApiError::not_found("no such message"))?;
    let history = state
        .messages()
        .history(team, &sid)
        .await
        .map_err(|e| store_error(&e))?;
    Ok(HttpResponse::Ok().json(MessageWithHistoryDto {
        message: message.into(),
        history: history.into_iter().map(StatusEventDto::from).collect(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_round_trips_and_garbage_is_refused() {
        let cursor = MessageCursor {
            created_at: chrono::DateTime::parse_from_rfc3339("2026-01-02T03:04:05.123456789Z")
                .map(|t| t.with_timezone(&chrono::Utc))
                .unwrap_or_default(),
            sid: MessageSid::parse("SM0123456789abcdef0123456789abcdef").expect("sid"),
        };
        assert_eq!(decode_cursor(&encode_cursor(&cursor)), Some(cursor));
        for (raw, why) in [
            ("", "empty"),
            ("!!!", "not base64"),
            ("aGVsbG8", "base64 without a separator"),
            (
                &*URL_SAFE_NO_PAD.encode("yesterday|SM1"),
                "bad time and SID",
            ),
        ] {
            assert_eq!(decode_cursor(raw), None, "{why}");
        }
    }
}
