//! Authentication: `Authorization: Bearer <api key>` resolved by the
//! [`ApiKeyAuthenticator`](smsdesk_domain::ports::ApiKeyAuthenticator) port.
//!
//! A missing, malformed, unknown or revoked key is the same 401 (with `WWW-Authenticate: Bearer`):
//! the answer never tells which. The key itself is never logged.
//!
//! [`KeyCache`] remembers, by a keyed hash, the keys that authenticated: for
//! [`KEY_CACHE_FRESH_FOR`] a key is answered without the database (so a revocation takes effect
//! within that long on every replica), and for [`KEY_CACHE_KNOWN_FOR`] it counts as known at the
//! edge, which charges it to its own budget rather than its IP's failed-authentication budget.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpMessage as _, HttpRequest, web};
use futures::future::LocalBoxFuture;
use smsdesk_domain::freshness::age;
use smsdesk_domain::ports::Clock;
use smsdesk_domain::secrecy::{ExposeSecret, SecretString};
use smsdesk_domain::{Requester, Timestamp};

use crate::edge::{EdgeKey, PresentedKey, bearer_token, rate_limited};
use crate::error::{ApiError, store_error};
use crate::state::WebState;

/// The longest API key we bother looking up.
const MAX_KEY_LEN: usize = 512;

/// How long a key that authenticated is answered from memory: a revoked key stops working on
/// every replica within this long (the bound of every cached credential).
pub const KEY_CACHE_FRESH_FOR: Duration = smsdesk_domain::freshness::CREDENTIALS_FRESH_FOR;

/// How long a key that authenticated counts as known at the edge (charged to its own budget).
pub const KEY_CACHE_KNOWN_FOR: Duration = Duration::from_secs(3600);

/// Keys that authenticated in this process, by keyed hash (the map never holds a key).
pub struct KeyCache {
    hasher: RandomState,
    clock: Arc<dyn Clock>,
    entries: Mutex<HashMap<u64, (Requester, Timestamp)>>,
}

impl KeyCache {
    /// An empty cache reading the time from `clock`.
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self {
            hasher: RandomState::new(),
            clock,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The keyed hash a presented key is known by (here and in the edge rate limiter).
    pub fn hash(&self, presented: &str) -> u64 {
        self.hasher.hash_one(presented)
    }

    /// How long ago `verified_at` was, by this cache's clock (see [`age`]).
    fn age(&self, verified_at: Timestamp) -> Duration {
        age(self.clock.now(), verified_at)
    }

    /// Whether the key authenticated here within [`KEY_CACHE_KNOWN_FOR`].
    pub fn is_known(&self, hash: u64) -> bool {
        self.lock()
            .get(&hash)
            .is_some_and(|(_, at)| self.age(*at) < KEY_CACHE_KNOWN_FOR)
    }

    /// The requester of a key that authenticated within [`KEY_CACHE_FRESH_FOR`].
    pub fn fresh(&self, hash: u64) -> Option<Requester> {
        self.lock()
            .get(&hash)
            .filter(|(_, at)| self.age(*at) < KEY_CACHE_FRESH_FOR)
            .map(|(requester, _)| *requester)
    }

    /// Remembers that the key authenticated as `requester` now.
    pub fn remember(&self, hash: u64, requester: Requester) {
        self.lock().insert(hash, (requester, self.clock.now()));
    }

    /// Forgets the key (it failed to authenticate).
    pub fn forget(&self, hash: u64) {
        self.lock().remove(&hash);
    }

    /// Drops keys not seen authenticate within [`KEY_CACHE_KNOWN_FOR`]; run with the edge's
    /// housekeeping so the map stays bounded by the keys in use.
    pub fn housekeeping(&self) {
        let now = self.clock.now();
        self.lock()
            .retain(|_, (_, at)| age(now, *at) < KEY_CACHE_KNOWN_FOR);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, (Requester, Timestamp)>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Asks the store about a key not answered from memory, remembers a valid one and, when the edge
/// charged the request to the IP (the key was unverified), charges the key's own budget too.
async fn look_up(
    state: &WebState,
    token: &SecretString,
    presented: PresentedKey,
) -> Result<Requester, ApiError> {
    state.metrics().record_api_key_lookup();
    let cache = state.key_cache();
    match state.authenticator().authenticate(token).await {
        Ok(Some(requester)) => {
            cache.remember(presented.hash, requester);
            if presented.unverified {
                state
                    .rate_limiter()
                    .check(EdgeKey::ApiKey(presented.hash))
                    .map_err(rate_limited)?;
            }
            Ok(requester)
        }
        Ok(None) => {
            cache.forget(presented.hash);
            Err(ApiError::unauthorized("the API key is not valid"))
        }
        Err(error) => Err(store_error(&error)),
    }
}

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
        let presented = req.extensions().get::<PresentedKey>().copied();
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
            // Hashed by the edge; without it (an app that skips the edge), hash here.
            let presented = presented.unwrap_or_else(|| PresentedKey {
                hash: state.key_cache().hash(token.expose_secret()),
                unverified: false,
            });
            let requester = match state.key_cache().fresh(presented.hash) {
                Some(requester) => requester,
                None => look_up(&state, &token, presented).await?,
            };
            tracing::Span::current().record("team_id", requester.team_id.get());
            Ok(Self(requester))
        })
    }
}

#[cfg(test)]
mod tests {
    use smsdesk_domain::{Plan, Role, TeamId, UserId};

    use super::*;

    #[derive(Clone)]
    struct Now(Arc<Mutex<Timestamp>>);

    impl Clock for Now {
        fn now(&self) -> Timestamp {
            *self.0.lock().unwrap_or_else(PoisonError::into_inner)
        }
    }

    impl Now {
        fn advance(&self, by: Duration) {
            let mut now = self.0.lock().unwrap_or_else(PoisonError::into_inner);
            *now += chrono::Duration::from_std(by).unwrap_or_default();
        }

        fn advance_back(&self, by: Duration) {
            let mut now = self.0.lock().unwrap_or_else(PoisonError::into_inner);
            *now -= chrono::Duration::from_std(by).unwrap_or_default();
        }
    }

    #[test]
    fn a_key_is_answered_from_memory_for_seconds_and_known_for_an_hour() {
        let now = Now(Arc::new(Mutex::new(chrono::Utc::now())));
        let cache = KeyCache::new(Arc::new(now.clone()));
        let requester = Requester {
            team_id: TeamId::new(1).expect("team"),
            user_id: UserId::new(1).expect("user"),
            plan: Plan::Pro,
            role: Role::Admin,
        };
        let hash = cache.hash("smsd_key");
        assert_ne!(hash, cache.hash("smsd_other"), "keys hash apart");
        assert!(!cache.is_known(hash) && cache.fresh(hash).is_none());

        cache.remember(hash, requester);
        assert_eq!(cache.fresh(hash), Some(requester));
        now.advance(KEY_CACHE_FRESH_FOR);
        assert_eq!(
            cache.fresh(hash),
            None,
            "a revocation shows after {KEY_CACHE_FRESH_FOR:?}"
        );
        assert!(cache.is_known(hash), "still charged to its own budget");

        now.advance(KEY_CACHE_KNOWN_FOR);
        cache.housekeeping();
        assert!(!cache.is_known(hash), "forgotten after an hour unseen");
        cache.remember(hash, requester);
        cache.forget(hash);
        assert!(
            !cache.is_known(hash),
            "a failed authentication forgets it at once"
        );

        cache.remember(hash, requester);
        now.advance_back(Duration::from_secs(60));
        assert_eq!(
            cache.fresh(hash),
            None,
            "a clock stepped back never makes an entry look fresh"
        );
    }
}
