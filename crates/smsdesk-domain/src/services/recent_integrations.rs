//! The integration port with lookups remembered for a few seconds ([`RecentIntegrations`]), by
//! account (a webhook's) and by team (a refresh's). Every webhook and refresh needs its
//! integration (one query and an AES-GCM decryption), and Twilio posts many callbacks per
//! message; a write through the same instance forgets what it replaced at once, and other
//! replicas' copies expire within [`INTEGRATION_FRESH_FOR`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use crate::ids::{AccountSid, TeamId};
use crate::message::Timestamp;
use crate::ports::{
    Clock, IntegrationRepository, NewIntegration, RepositoryError, TwilioIntegration,
};

/// How long an integration read for a webhook is reused (see the module's documentation): the
/// bound every cached credential has.
pub const INTEGRATION_FRESH_FOR: Duration = crate::freshness::CREDENTIALS_FRESH_FOR;

/// The integration port with lookups remembered for [`INTEGRATION_FRESH_FOR`], by account (a
/// webhook's) and by team (a refresh's): [`super::ApplyStatusCallback`] reads through it, and
/// [`super::ApplyStatusCallback::integrations`] hands the same instance to
/// [`super::ConfigureIntegration`] (and the service to its refreshes), whose writes through it
/// forget what the team's old integration was, so on this replica a replaced token is used
/// nowhere after the write; on another replica, for at most [`INTEGRATION_FRESH_FOR`].
pub struct RecentIntegrations {
    inner: Arc<dyn IntegrationRepository>,
    clock: Arc<dyn Clock>,
    entries: Mutex<HashMap<IntegrationKey, (TwilioIntegration, Timestamp)>>,
    /// Bumped by every write: a read that began before one must not be remembered, or the
    /// integration it read (the old token) would outlive the write.
    writes: AtomicU64,
}

/// What an integration was looked up by.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum IntegrationKey {
    Account(AccountSid),
    Team(TeamId),
}

/// Past this many entries, a new entry first drops the expired ones, so the map stays bounded
/// by the accounts and teams looked up within [`INTEGRATION_FRESH_FOR`].
const INTEGRATION_CACHE_PRUNE_AT: usize = 1024;

impl RecentIntegrations {
    /// Remembers lookups of `inner` by `clock`.
    pub fn new(inner: Arc<dyn IntegrationRepository>, clock: Arc<dyn Clock>) -> Self {
        Self {
            inner,
            clock,
            entries: Mutex::new(HashMap::new()),
            writes: AtomicU64::new(0),
        }
    }

    fn lock(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<IntegrationKey, (TwilioIntegration, Timestamp)>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn fresh(read_at: Timestamp, now: Timestamp) -> bool {
        crate::freshness::is_fresh(read_at, now, INTEGRATION_FRESH_FOR)
    }

    /// The integration as read by `key` within [`INTEGRATION_FRESH_FOR`], if it was.
    fn remembered(&self, key: &IntegrationKey) -> Option<TwilioIntegration> {
        let now = self.clock.now();
        self.lock()
            .get(key)
            .filter(|(_, read_at)| Self::fresh(*read_at, now))
            .map(|(integration, _)| integration.clone())
    }

    /// Reads the account's integration from the port now, and remembers a found one.
    ///
    /// # Errors
    /// As [`IntegrationRepository::for_account`].
    pub async fn for_account_now(
        &self,
        account: &AccountSid,
    ) -> Result<Option<TwilioIntegration>, RepositoryError> {
        self.read_now(IntegrationKey::Account(account.clone()))
            .await
    }

    /// The integration `key` names, read from the port now, or from memory while fresh.
    async fn read(
        &self,
        key: IntegrationKey,
    ) -> Result<Option<TwilioIntegration>, RepositoryError> {
        match self.remembered(&key) {
            Some(integration) => Ok(Some(integration)),
            None => self.read_now(key).await,
        }
    }

    /// Reads the integration `key` names from the port now, and remembers a found one.
    async fn read_now(
        &self,
        key: IntegrationKey,
    ) -> Result<Option<TwilioIntegration>, RepositoryError> {
        let writes_before = self.writes.load(Ordering::SeqCst);
        let found = match &key {
            IntegrationKey::Account(account) => self.inner.for_account(account).await?,
            IntegrationKey::Team(team) => self.inner.for_team(*team).await?,
        };
        self.keep(key, &found, writes_before);
        Ok(found)
    }

    /// Remembers what a read by `key` found, unless a write happened since it began; forgets
    /// the key when nothing was found (unknown accounts and teams are never remembered).
    fn keep(&self, key: IntegrationKey, found: &Option<TwilioIntegration>, writes_before: u64) {
        let now = self.clock.now();
        let mut entries = self.lock();
        match found {
            // Checked under the lock `upsert` forgets under, so no write slips in between.
            Some(_) if self.writes.load(Ordering::SeqCst) != writes_before => {}
            Some(integration) => {
                if entries.len() >= INTEGRATION_CACHE_PRUNE_AT {
                    entries.retain(|_, (_, read_at)| Self::fresh(*read_at, now));
                }
                entries.insert(key, (integration.clone(), now));
            }
            None => {
                entries.remove(&key);
            }
        }
    }
}

#[async_trait::async_trait]
impl IntegrationRepository for RecentIntegrations {
    async fn for_team(&self, team: TeamId) -> Result<Option<TwilioIntegration>, RepositoryError> {
        self.read(IntegrationKey::Team(team)).await
    }

    async fn for_account(
        &self,
        account: &AccountSid,
    ) -> Result<Option<TwilioIntegration>, RepositoryError> {
        self.read(IntegrationKey::Account(account.clone())).await
    }

    async fn upsert(
        &self,
        team: TeamId,
        integration: NewIntegration,
    ) -> Result<TwilioIntegration, RepositoryError> {
        let account = integration.account_sid.clone();
        let stored = self.inner.upsert(team, integration).await;
        // Whatever happened, nothing remembered for this team or this account may outlive the
        // write, nor may a read that was under way during it.
        let mut entries = self.lock();
        self.writes.fetch_add(1, Ordering::SeqCst);
        // An entry's key is its integration's own team or account, so looking at the
        // integration covers both kinds of key.
        entries.retain(|_, (known, _)| {
            known.team_id != team && known.credentials.account_sid != account
        });
        stored
    }
}
