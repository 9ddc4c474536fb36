//! Authentication: `Authorization: Bearer <api key>` resolved by the
//! [`ApiKeyAuthenticator`](smsdesk_domain::ports::ApiKeyAuthenticator) port.
//!
//! A missing, malformed, unknown or revoked key is the same 401 (with `WWW-Authenticate: Bearer`):
//! the answer never tells which. The key itself is never logged.

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest, web};
use futures::future::LocalBoxFuture;
use smsdesk_domain::Requester;
use smsdesk_domain::secrecy::SecretString;

use crate::edge::bearer_token;
use crate::error::{ApiError, store_error};
use crate::state::WebState;

/// The longest API key we bother looking up.
const MAX_KEY_LEN: usize = 512;

/// The authenticated caller; extract it in a handler to require authentication.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Authenticated(pub Requester);

impl FromRequest for Authenticated {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = req.app_data::<web::Data<WebState>>().cloned();
        let has_header = req
            .headers()
            .contains_key(actix_web::http::header::AUTHORIZATION);
        let token = bearer_token(req)
            .filter(|t| t.len() <= MAX_KEY_LEN && t.bytes().all(|b| b.is_ascii_graphic()))
            .map(|t| SecretString::from(t.to_owned()));
        Box::pin(async move {
            let Some(state) = state else {
                return Err(ApiError::internal("the web state is not configured"));
            };
            let Some(token) = token else {
                return Err(ApiError::unauthorized(if has_header {
                    "the Authorization header must be 'Bearer <api key>'"
                } else {
                    "an API key is required: send 'Authorization: Bearer <api key>'"
                }));
            };
            match state.authenticator().authenticate(&token).await {
                Ok(Some(requester)) => {
                    tracing::Span::current().record("team_id", requester.team_id.get());
                    Ok(Self(requester))
                }
                Ok(None) => Err(ApiError::unauthorized("the API key is not valid")),
                Err(error) => Err(store_error(&error)),
            }
        })
    }
}
