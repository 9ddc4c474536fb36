//! Twilio's webhooks: status callbacks (`POST /api/integrations/twilio/status-callback`) and
//! inbound SMS (`POST /api/integrations/twilio/sms/receive`).
//!
//! They carry no API key: Twilio authenticates them with `X-Twilio-Signature`, an HMAC of the URL
//! it requested and the form parameters, keyed by the account's auth token. So each request is
//! handled in this order:
//! 1. the body must be `application/x-www-form-urlencoded` (415 otherwise); every parameter is
//!    kept, repeated keys included, because all of them are signed;
//! 2. `AccountSid` names the integration (and so the team and the auth token);
//! 3. the signature is checked over the public URL ([`public_url`]); an unknown account, a
//!    missing signature and a wrong one all get the same 403, so a caller cannot probe which
//!    accounts exist, and nothing is changed;
//! 4. only then are the other parameters read (400 when malformed) and the use case runs.
//!
//! Store failures are 5xx so that Twilio retries; Twilio's retries are harmless because callbacks
//! are deduplicated on (MessageSid, MessageStatus) and inbound messages on their SID.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderName};
use actix_web::{FromRequest, HttpRequest, HttpResponse, web};
use smsdesk_domain::ports::TwilioIntegration;
use smsdesk_domain::secrecy::{ExposeSecret, SecretString};
use smsdesk_domain::services::{InboundSms, SignedBy, StatusCallback};
use smsdesk_domain::{AccountSid, Address, DeliveryState, MessageSid, MessageStatus};

use crate::edge::first_header_value;
use crate::error::{ApiError, ErrorCode, signature_refused};
use crate::state::{WebConfig, WebState};

/// Twilio's parameters, in the order they were sent, repeated keys kept.
type FormParams = Vec<(String, String)>;

/// The TwiML that tells Twilio to do nothing more (no reply SMS).
const EMPTY_TWIML: &str = r#"<?xml version="1.0" encoding="UTF-8"?><Response></Response>"#;

/// Checked against when the account is unknown, so that an unknown account costs the same HMAC
/// work as a known one with a wrong signature. Nothing signed with it is ever accepted.
const DECOY_AUTH_TOKEN: &str = "no-integration-has-this-account";

const FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// The URL Twilio requested, which its signature covers: scheme, host (and port, if any), path and
/// query string exactly as received.
///
/// The scheme and host come from, in order: `X-Forwarded-Proto` / `X-Forwarded-Host` when
/// [`WebConfig::trust_forwarded_headers`] is set and either is present; the configured
/// [`WebConfig::public_base_url`]; the request itself (its `Host` header and whether the server
/// listens with TLS). actix's `ConnectionInfo` is deliberately not used for the last case: it
/// reads forwarding headers whether or not a proxy is trusted.
pub(crate) fn public_url(req: &HttpRequest, config: &WebConfig) -> String {
    let path_and_query = req
        .uri()
        .path_and_query()
        .map_or_else(|| req.uri().path(), |pq| pq.as_str());
    if config.trust_forwarded_headers {
        let proto = first_header_value(req, &FORWARDED_PROTO);
        let host = first_header_value(req, &FORWARDED_HOST);
        if proto.is_some() || host.is_some() {
            let scheme = proto.map_or_else(|| own_scheme(req), str::to_ascii_lowercase);
            let host = host.map_or_else(|| own_host(req), str::to_owned);
            return format!("{scheme}://{host}{path_and_query}");
        }
    }
    if let Some(base) = &config.public_base_url {
        return format!("{}{path_and_query}", base.trim_end_matches('/'));
    }
    format!("{}://{}{path_and_query}", own_scheme(req), own_host(req))
}

fn own_scheme(req: &HttpRequest) -> String {
    match req.uri().scheme_str() {
        Some(scheme) => scheme.to_ascii_lowercase(),
        None if req.app_config().secure() => "https".to_owned(),
        None => "http".to_owned(),
    }
}

fn own_host(req: &HttpRequest) -> String {
    req.headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| req.uri().authority().map(|a| a.as_str().to_owned()))
        .unwrap_or_else(|| req.app_config().host().to_owned())
}

/// Reads the form body (after checking its content type) into all its parameters.
async fn form_params(
    req: &HttpRequest,
    payload: web::Payload,
) -> Result<FormParams, actix_web::Error> {
    let is_form = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|essence| {
            essence
                .trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    if !is_form {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorCode::UnsupportedMediaType,
            "Twilio webhooks must be application/x-www-form-urlencoded",
        )
        .into());
    }
    // `PayloadConfig` (set by `configure`) caps the body at the configured limit.
    let mut payload = payload.into_inner();
    let body = web::Bytes::from_request(req, &mut payload).await?;
    Ok(url::form_urlencoded::parse(&body).into_owned().collect())
}

/// The first value of `key`, if any.
fn param<'a>(params: &'a FormParams, key: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

fn required<'a>(params: &'a FormParams, key: &'static str) -> Result<&'a str, ApiError> {
    param(params, key).ok_or_else(|| ApiError::invalid_field(key, format!("{key} is required")))
}

/// An optional whole number; an empty value counts as absent (Twilio sends some fields empty).
fn optional_number(params: &FormParams, key: &'static str) -> Result<Option<u32>, ApiError> {
    match param(params, key).map(str::trim) {
        None | Some("") => Ok(None),
        Some(raw) => raw.parse().map(Some).map_err(|_| {
            ApiError::invalid_field(key, format!("{key} must be a whole number, got '{raw}'"))
        }),
    }
}

/// The message SID, under its current name or the legacy `SmsSid`.
fn message_sid(params: &FormParams) -> Result<MessageSid, ApiError> {
    let raw = param(params, "MessageSid")
        .or_else(|| param(params, "SmsSid"))
        .ok_or_else(|| ApiError::invalid_field("MessageSid", "MessageSid is required"))?;
    MessageSid::parse(raw).map_err(|e| ApiError::invalid_field("MessageSid", e.to_string()))
}

/// Finds the integration of the request's `AccountSid` and checks the request's signature with
/// its auth token. Unknown account and bad or missing signature are the same 403 to the caller;
/// the log says which it was.
async fn verified_integration(
    state: &WebState,
    req: &HttpRequest,
    params: &FormParams,
) -> Result<TwilioIntegration, ApiError> {
    let account = AccountSid::parse(required(params, "AccountSid")?)
        .map_err(|e| ApiError::invalid_field("AccountSid", e.to_string()))?;
    let url = public_url(req, state.config());
    let presented = req
        .headers()
        .get(smsdesk_twilio::signature::SIGNATURE_HEADER)
        .and_then(|v| v.to_str().ok());
    // An unknown account is checked against a decoy token, so its refusal costs an HMAC like
    // a known account's.
    let verifies = |auth_token: Option<&SecretString>| {
        let auth_token = auth_token.map_or(DECOY_AUTH_TOKEN, ExposeSecret::expose_secret);
        presented.is_some_and(|signature| {
            smsdesk_twilio::signature::validate_form(auth_token, &url, params, signature).is_ok()
        })
    };
    match state
        .callbacks()
        .signed_integration(&account, verifies)
        .await?
    {
        SignedBy::Integration(integration) => {
            tracing::Span::current().record("team_id", integration.team_id.get());
            Ok(integration)
        }
        SignedBy::WrongSignature => {
            tracing::warn!(
                account_sid = %account,
                url = %url,
                signature_present = presented.is_some(),
                "Twilio webhook refused: signature missing or not matching (check the public URL)"
            );
            Err(signature_refused())
        }
        SignedBy::UnknownAccount => {
            tracing::warn!(account_sid = %account, "Twilio webhook refused: no integration has this account");
            Err(signature_refused())
        }
    }
}

fn twiml() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/xml; charset=utf-8")
        .body(EMPTY_TWIML)
}

fn status_callback_from(params: &FormParams) -> Result<StatusCallback, ApiError> {
    let sid = message_sid(params)?;
    let status = param(params, "MessageStatus")
        .or_else(|| param(params, "SmsStatus"))
        .ok_or_else(|| ApiError::invalid_field("MessageStatus", "MessageStatus is required"))?;
    let status = MessageStatus::parse_reported(status).map_err(|malformed| {
        ApiError::invalid_field("MessageStatus", format!("MessageStatus: {malformed}"))
    })?;
    let mut state = DeliveryState::new(status);
    state.error_code = optional_number(params, "ErrorCode")?;
    state.num_segments = optional_number(params, "NumSegments")?;
    Ok(StatusCallback { sid, state })
}

/// `POST /api/integrations/twilio/status-callback`.
pub(crate) async fn status_callback(
    state: web::Data<WebState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, actix_web::Error> {
    let params = form_params(&req, payload).await?;
    let integration = verified_integration(&state, &req, &params).await?;
    let callback = status_callback_from(&params)?;
    let (sid, status) = (callback.sid.clone(), callback.state.status.clone());
    let outcome = state
        .callbacks()
        .apply(integration.team_id, callback)
        .await
        .map_err(ApiError::from)?;
    tracing::info!(message_sid = %sid, status = status.as_str(), outcome = ?outcome, "status callback");
    Ok(twiml())
}

fn address(params: &FormParams, key: &'static str) -> Result<Address, ApiError> {
    Address::parse(required(params, key)?).map_err(|e| ApiError::invalid_field(key, e.to_string()))
}

/// `POST /api/integrations/twilio/sms/receive`.
pub(crate) async fn receive_sms(
    state: web::Data<WebState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, actix_web::Error> {
    let params = form_params(&req, payload).await?;
    let integration = verified_integration(&state, &req, &params).await?;
    let sms = InboundSms {
        sid: message_sid(&params)?,
        // Verified above: it is the integration's.
        account_sid: integration.credentials.account_sid.clone(),
        from: address(&params, "From")?,
        to: address(&params, "To")?,
        // An MMS without text comes with an empty Body; treat a missing one the same.
        body: param(&params, "Body").unwrap_or_default().to_owned(),
        num_segments: optional_number(&params, "NumSegments")?,
    };
    let sid = sms.sid.clone();
    let outcome = state
        .receive()
        .receive(&integration, sms)
        .await
        .map_err(ApiError::from)?;
    tracing::info!(message_sid = %sid, outcome = ?outcome, "inbound SMS");
    Ok(twiml())
}

#[cfg(test)]
mod tests {
    use actix_web::test::TestRequest;

    use super::*;

    const PATH: &str = "/api/integrations/twilio/status-callback?x=1";

    fn config(trust: bool, base: Option<&str>) -> WebConfig {
        WebConfig {
            trust_forwarded_headers: trust,
            public_base_url: base.map(str::to_owned),
            ..WebConfig::default()
        }
    }

    #[test]
    fn the_public_url_comes_from_forwarded_headers_only_when_trusted() {
        let forwarded = || {
            TestRequest::post()
                .uri(PATH)
                .insert_header(("host", "internal:8080"))
                .insert_header(("x-forwarded-proto", "HTTPS, http"))
                .insert_header(("x-forwarded-host", "sms.example.com, proxy.local"))
                .to_http_request()
        };
        let plain = || {
            TestRequest::post()
                .uri(PATH)
                .insert_header(("host", "internal:8080"))
                .to_http_request()
        };
        let only_proto = || {
            TestRequest::post()
                .uri(PATH)
                .insert_header(("host", "internal:8080"))
                .insert_header(("x-forwarded-proto", "https"))
                .to_http_request()
        };
        let cases = [
            (
                forwarded(),
                config(true, Some("https://base.example.com/")),
                "https://sms.example.com/api/integrations/twilio/status-callback?x=1",
                "trusted forwarded headers win, first value of each",
            ),
            (
                forwarded(),
                config(false, Some("https://base.example.com/")),
                "https://base.example.com/api/integrations/twilio/status-callback?x=1",
                "untrusted forwarded headers are ignored for the configured base",
            ),
            (
                forwarded(),
                config(false, None),
                "http://internal:8080/api/integrations/twilio/status-callback?x=1",
                "untrusted forwarded headers are ignored for the request's own host",
            ),
            (
                plain(),
                config(true, Some("https://base.example.com")),
                "https://base.example.com/api/integrations/twilio/status-callback?x=1",
                "trusted but absent headers fall back to the base",
            ),
            (
                only_proto(),
                config(true, None),
                "https://internal:8080/api/integrations/twilio/status-callback?x=1",
                "a forwarded proto alone keeps the request's host",
            ),
        ];
        for (req, config, expected, why) in cases {
            assert_eq!(public_url(&req, &config), expected, "{why}");
        }
    }

    #[test]
    fn optional_numbers_accept_absent_and_empty_and_refuse_words() {
        let params = |value: &str| vec![("ErrorCode".to_owned(), value.to_owned())];
        assert_eq!(optional_number(&vec![], "ErrorCode"), Ok(None), "absent");
        assert_eq!(optional_number(&params(""), "ErrorCode"), Ok(None), "empty");
        assert_eq!(
            optional_number(&params("30003"), "ErrorCode"),
            Ok(Some(30003)),
            "a number"
        );
        for bad in ["abc", "-1", "3.5", "99999999999"] {
            assert!(
                optional_number(&params(bad), "ErrorCode").is_err(),
                "'{bad}' is not a whole number that fits"
            );
        }
    }
}
