//! The `ManageApiKeys` use case: a team admin lists, creates and revokes the team's API keys.
//!
//! Members may do none of it ([`ManageApiKeysError::NotAdmin`]); another team's key is
//! [`ManageApiKeysError::NotFound`], never a hint that it exists. A key created over the API
//! belongs to the admin who created it; its secret is in the answer once and nowhere after.
//! Revocation takes effect on every replica within the HTTP layer's key cache period (seconds).

use std::sync::Arc;

use crate::access::{Requester, TeamAdmin};
use crate::api_keys::{ApiKeyId, ApiKeyLabel, ApiKeySummary, IssuedKey};
use crate::ports::{ApiKeyRepository, Clock, RepositoryError};

/// Why an API key operation did not happen. Nothing changed in any of these cases.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManageApiKeysError {
    /// The requester is not an admin of the team.
    #[error("only team admins may manage the team's API keys")]
    NotAdmin,
    /// The team has no key with this id.
    #[error("no such API key")]
    NotFound,
    /// The store failed.
    #[error(transparent)]
    Store(RepositoryError),
}

/// The use case. Cheap to clone; share one per process.
#[derive(Clone)]
pub struct ManageApiKeys {
    keys: Arc<dyn ApiKeyRepository>,
    clock: Arc<dyn Clock>,
}

impl ManageApiKeys {
    /// Builds the use case over its ports.
    pub fn new(keys: Arc<dyn ApiKeyRepository>, clock: Arc<dyn Clock>) -> Self {
        Self { keys, clock }
    }

    /// The admin rule, checked before anything else is read.
    ///
    /// # Errors
    /// [`ManageApiKeysError::NotAdmin`] for members.
    pub fn authorize(requester: &Requester) -> Result<TeamAdmin, ManageApiKeysError> {
        TeamAdmin::of(requester).ok_or(ManageApiKeysError::NotAdmin)
    }

    /// The team's keys, oldest first.
    ///
    /// # Errors
    /// [`ManageApiKeysError::Store`] when the store fails.
    pub async fn list(&self, admin: TeamAdmin) -> Result<Vec<ApiKeySummary>, ManageApiKeysError> {
        self.keys
            .list_keys(admin.team())
            .await
            .map_err(ManageApiKeysError::Store)
    }

    /// Creates a key owned by the admin; the answer is the only place its secret appears.
    ///
    /// # Errors
    /// [`ManageApiKeysError::NotAdmin`] for the command-line operator, who has no user to own
    /// the key (the CLI issues keys for a named user instead); [`ManageApiKeysError::Store`]
    /// when the store fails.
    pub async fn create(
        &self,
        admin: TeamAdmin,
        label: Option<ApiKeyLabel>,
    ) -> Result<IssuedKey, ManageApiKeysError> {
        let owner = admin.user().ok_or(ManageApiKeysError::NotAdmin)?;
        self.keys
            .issue_key(admin.team(), owner, label)
            .await
            .map_err(ManageApiKeysError::Store)
    }

    /// Revokes the team's key `id`; revoking it again is harmless.
    ///
    /// # Errors
    /// [`ManageApiKeysError::NotFound`] when the team has no such key;
    /// [`ManageApiKeysError::Store`] when the store fails.
    pub async fn revoke(
        &self,
        admin: TeamAdmin,
        id: &ApiKeyId,
    ) -> Result<ApiKeySummary, ManageApiKeysError> {
        self.keys
            .revoke_key(admin.team(), id, self.clock.now())
            .await
            .map_err(ManageApiKeysError::Store)?
            .ok_or(ManageApiKeysError::NotFound)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::{Plan, Role};
    use crate::fakes::{InMemoryStore, ManualClock};
    use crate::ids::{TeamId, UserId};

    fn requester(team: i64, user: i64, role: Role) -> Requester {
        Requester {
            team_id: TeamId::new(team).expect("team"),
            user_id: UserId::new(user).expect("user"),
            plan: Plan::Pro,
            role,
        }
    }

    fn service() -> ManageApiKeys {
        ManageApiKeys::new(
            Arc::new(InMemoryStore::new()),
            Arc::new(ManualClock::new(chrono::Utc::now())),
        )
    }

    #[tokio::test]
    async fn an_admin_creates_lists_and_revokes_and_another_team_sees_none_of_it() {
        let keys = service();
        let admin = ManageApiKeys::authorize(&requester(1, 1, Role::Admin)).expect("admin");
        let other = ManageApiKeys::authorize(&requester(2, 9, Role::Admin)).expect("admin");
        let issued = keys
            .create(admin, Some(ApiKeyLabel::parse("CI").expect("label")))
            .await
            .expect("created");
        use secrecy::ExposeSecret as _;
        assert!(
            issued
                .key
                .expose_secret()
                .starts_with(&format!("smsd_{}_", issued.summary.id)),
            "the key carries its id"
        );
        assert_eq!(issued.summary.user_id.get(), 1, "owned by the admin");
        assert_eq!(
            keys.list(admin).await.expect("listed"),
            vec![issued.summary.clone()]
        );
        assert!(keys.list(other).await.expect("listed").is_empty());
        assert_eq!(
            keys.revoke(other, &issued.summary.id).await,
            Err(ManageApiKeysError::NotFound),
            "another team's key is not found"
        );
        let revoked = keys
            .revoke(admin, &issued.summary.id)
            .await
            .expect("revoked");
        assert!(revoked.revoked_at.is_some());
        assert_eq!(
            keys.revoke(admin, &issued.summary.id)
                .await
                .map(|k| k.revoked_at),
            Ok(revoked.revoked_at),
            "revoking twice is harmless and keeps the first time"
        );
    }

    #[test]
    fn members_may_not_manage_keys() {
        assert_eq!(
            ManageApiKeys::authorize(&requester(1, 2, Role::Member)),
            Err(ManageApiKeysError::NotAdmin)
        );
    }
}
