//! Administration: teams, users and API keys (issue, list, revoke, authenticate), and moving
//! stored secrets to the current encryption key. The app's CLI and its demo seeding call these.
//!
//! API keys look like `smsd_<8-character prefix>_<40 random characters>`. The plaintext key is
//! returned once, by [`Store::create_api_key`]; the database keeps only its SHA-256 hash and the
//! prefix. Authentication looks the key up by prefix and compares hashes in constant time.

use async_trait::async_trait;
use rand::Rng;
use rand::distr::Alphanumeric;
use sea_orm::sea_query::{Expr, ExprTrait, Order, Query};
use sea_orm::{ConnectionTrait, QueryResult};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use smsdesk_domain::api_keys::{ApiKeyId, ApiKeyLabel, ApiKeySummary, IssuedKey};
use smsdesk_domain::ports::{ApiKeyAuthenticator, ApiKeyRepository, RepositoryError};
use smsdesk_domain::{Plan, Requester, Role, TeamId, Timestamp, UserId};
use subtle::ConstantTimeEq;

use crate::cipher::{KeyUsed, is_encrypted};
use crate::error::{StoreError, corrupt, repo_err, store_err};
use crate::schema::{ApiKeys, Teams, TwilioIntegrations, Users};
use crate::store::{Store, execute, stored_time};

/// What every smsdesk API key starts with.
pub const API_KEY_SCHEME: &str = "smsd";
const PREFIX_LEN: usize = 8;
const SECRET_LEN: usize = 40;

/// How stale a key's `last_used_at` may get before an authentication writes it again.
const LAST_USED_PRECISION: chrono::TimeDelta = chrono::TimeDelta::minutes(5);

/// Every column a team is read from.
const TEAM_COLUMNS: [Teams; 4] = [Teams::Id, Teams::Name, Teams::Plan, Teams::CreatedAt];

/// The columns a user is written with (and, after its id, read from).
const USER_COLUMNS: [Users; 5] = [
    Users::TeamId,
    Users::Name,
    Users::Email,
    Users::Role,
    Users::CreatedAt,
];

/// A team as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TeamRecord {
    /// Its id.
    pub id: TeamId,
    /// Its display name.
    pub name: String,
    /// Its plan.
    pub plan: Plan,
    /// When it was created.
    pub created_at: Timestamp,
}

/// A user as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    /// Its id.
    pub id: UserId,
    /// The user's team.
    pub team_id: TeamId,
    /// Display name.
    pub name: String,
    /// E-mail address, unique across teams.
    pub email: String,
    /// Role in the team.
    pub role: Role,
    /// When the user was created.
    pub created_at: Timestamp,
}

/// A freshly issued API key. `key` is the only copy of the plaintext: show it once.
#[derive(Debug, Clone)]
pub struct IssuedApiKey {
    /// The key's owner.
    pub user_id: UserId,
    /// The visible prefix that identifies the key (e.g. to revoke it).
    pub prefix: String,
    /// The whole key, `smsd_<prefix>_<secret>`.
    pub key: SecretString,
}

/// What [`Store::reencrypt_secrets`] did, counted per secret value (auth token, API key secret).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReencryptReport {
    /// Secret values examined.
    pub scanned: usize,
    /// Already encrypted with the current key; left alone.
    pub already_current: usize,
    /// Encrypted with an old key; now encrypted with the current one.
    pub reencrypted: usize,
    /// Stored in plaintext (never by this version); now encrypted.
    pub encrypted_from_plaintext: usize,
    /// Values no configured key decrypts, by team, with the reason; left untouched.
    pub failed: Vec<(TeamId, String)>,
}

/// Lower-case hex of the SHA-256 of `key` (API keys, idempotent requests).
pub(crate) fn hash_key(key: &str) -> String {
    Sha256::digest(key.as_bytes())
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

fn random_text(len: usize) -> String {
    rand::rng()
        .sample_iter(Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

/// Splits a presented key into its prefix, or `None` if it does not have the key's shape.
fn key_prefix(presented: &str) -> Option<&str> {
    let rest = presented.strip_prefix(API_KEY_SCHEME)?.strip_prefix('_')?;
    let (prefix, secret) = rest.split_once('_')?;
    let alphanumeric = |s: &str| s.bytes().all(|b| b.is_ascii_alphanumeric());
    (prefix.len() == PREFIX_LEN
        && secret.len() == SECRET_LEN
        && alphanumeric(prefix)
        && alphanumeric(secret))
    .then_some(prefix)
}

fn get<T: sea_orm::TryGetable>(row: &QueryResult, column: &str) -> Result<T, StoreError> {
    row.try_get::<T>("", column)
        .map_err(|err| StoreError::Unexpected(format!("stored {column} is unreadable: {err}")))
}

fn team_from_row(row: &QueryResult) -> Result<TeamRecord, StoreError> {
    let plan = get::<String>(row, "plan")?;
    Ok(TeamRecord {
        id: TeamId::new(get(row, "id")?).map_err(|err| StoreError::Unexpected(err.to_string()))?,
        name: get(row, "name")?,
        plan: Plan::parse(&plan).map_err(|err| StoreError::Unexpected(err.to_string()))?,
        created_at: get(row, "created_at")?,
    })
}

fn user_from_row(row: &QueryResult) -> Result<UserRecord, StoreError> {
    let role = get::<String>(row, "role")?;
    let invalid = |err: smsdesk_domain::IdError| StoreError::Unexpected(err.to_string());
    Ok(UserRecord {
        id: UserId::new(get(row, "id")?).map_err(invalid)?,
        team_id: TeamId::new(get(row, "team_id")?).map_err(invalid)?,
        name: get(row, "name")?,
        email: get(row, "email")?,
        role: Role::parse(&role)
            .ok_or_else(|| StoreError::Unexpected(format!("stored role '{role}' is unknown")))?,
        created_at: get(row, "created_at")?,
    })
}

fn check_text(what: &str, value: &str, max: usize) -> Result<(), StoreError> {
    if value.trim().is_empty() || value.len() > max || value.chars().any(char::is_control) {
        return Err(StoreError::Invalid(format!(
            "{what} must be 1 to {max} printable characters"
        )));
    }
    Ok(())
}

impl Store {
    /// Creates a team.
    ///
    /// # Errors
    /// [`StoreError::Invalid`] for an empty or overlong name; database errors.
    pub async fn create_team(&self, name: &str, plan: Plan) -> Result<TeamRecord, StoreError> {
        check_text("team name", name, 200)?;
        let created_at = stored_time(chrono::Utc::now());
        let insert = Query::insert()
            .into_table(Teams::Table)
            .columns([Teams::Name, Teams::Plan, Teams::CreatedAt])
            .values_panic([name.into(), plan.as_str().into(), created_at.into()])
            .returning_col(Teams::Id)
            .to_owned();
        let row = self
            .writer()
            .query_one(&insert)
            .await
            .map_err(store_err)?
            .ok_or_else(|| StoreError::Unexpected("INSERT returned no id".into()))?;
        Ok(TeamRecord {
            id: TeamId::new(get(&row, "id")?)
                .map_err(|err| StoreError::Unexpected(err.to_string()))?,
            name: name.to_owned(),
            plan,
            created_at,
        })
    }

    /// Changes a team's plan.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] for an unknown team; database errors.
    pub async fn set_plan(&self, team: TeamId, plan: Plan) -> Result<(), StoreError> {
        let update = Query::update()
            .table(Teams::Table)
            .value(Teams::Plan, plan.as_str())
            .and_where(Expr::col(Teams::Id).eq(team.get()))
            .to_owned();
        match execute(self.writer(), &update).await.map_err(store_err)? {
            0 => Err(StoreError::NotFound(format!("team {team}"))),
            _ => Ok(()),
        }
    }

    /// The team with this id.
    ///
    /// # Errors
    /// Database errors.
    pub async fn find_team(&self, team: TeamId) -> Result<Option<TeamRecord>, StoreError> {
        let query = Query::select()
            .columns(TEAM_COLUMNS)
            .from(Teams::Table)
            .and_where(Expr::col(Teams::Id).eq(team.get()))
            .to_owned();
        let row = self.reader.query_one(&query).await.map_err(store_err)?;
        row.as_ref().map(team_from_row).transpose()
    }

    /// Every team, oldest first.
    ///
    /// # Errors
    /// Database errors.
    pub async fn list_teams(&self) -> Result<Vec<TeamRecord>, StoreError> {
        let query = Query::select()
            .columns(TEAM_COLUMNS)
            .from(Teams::Table)
            .order_by(Teams::Id, Order::Asc)
            .to_owned();
        let rows = self.reader.query_all(&query).await.map_err(store_err)?;
        rows.iter().map(team_from_row).collect()
    }

    /// Creates a user in a team.
    ///
    /// # Errors
    /// [`StoreError::Invalid`] for a bad name or e-mail; [`StoreError::NotFound`] for an unknown
    /// team; [`StoreError::Duplicate`] when the e-mail address is taken.
    pub async fn create_user(
        &self,
        team: TeamId,
        name: &str,
        email: &str,
        role: Role,
    ) -> Result<UserRecord, StoreError> {
        check_text("user name", name, 200)?;
        check_text("e-mail address", email, 320)?;
        if !email.contains('@') || email.contains(char::is_whitespace) {
            return Err(StoreError::Invalid(
                "e-mail address must look like name@example.com".into(),
            ));
        }
        if self.find_team(team).await?.is_none() {
            return Err(StoreError::NotFound(format!("team {team}")));
        }
        let created_at = stored_time(chrono::Utc::now());
        let insert = Query::insert()
            .into_table(Users::Table)
            .columns(USER_COLUMNS)
            .values_panic([
                team.get().into(),
                name.into(),
                email.into(),
                role.as_str().into(),
                created_at.into(),
            ])
            .returning_col(Users::Id)
            .to_owned();
        let row = self
            .writer()
            .query_one(&insert)
            .await
            .map_err(|err| match store_err(err) {
                StoreError::Duplicate(_) => {
                    StoreError::Duplicate(format!("a user with e-mail {email}"))
                }
                other => other,
            })?
            .ok_or_else(|| StoreError::Unexpected("INSERT returned no id".into()))?;
        Ok(UserRecord {
            id: UserId::new(get(&row, "id")?)
                .map_err(|err| StoreError::Unexpected(err.to_string()))?,
            team_id: team,
            name: name.to_owned(),
            email: email.to_owned(),
            role,
            created_at,
        })
    }

    /// The team's users, oldest first.
    ///
    /// # Errors
    /// Database errors.
    pub async fn list_users(&self, team: TeamId) -> Result<Vec<UserRecord>, StoreError> {
        let query = Query::select()
            .columns(std::iter::once(Users::Id).chain(USER_COLUMNS))
            .from(Users::Table)
            .and_where(Expr::col(Users::TeamId).eq(team.get()))
            .order_by(Users::Id, Order::Asc)
            .to_owned();
        let rows = self.reader.query_all(&query).await.map_err(store_err)?;
        rows.iter().map(user_from_row).collect()
    }

    /// Issues an API key for a user, unlabelled (the CLI's way). The returned plaintext is the
    /// only copy.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] for an unknown user; database errors.
    pub async fn create_api_key(&self, user: UserId) -> Result<IssuedApiKey, StoreError> {
        let exists = Query::select()
            .column(Users::Id)
            .from(Users::Table)
            .and_where(Expr::col(Users::Id).eq(user.get()))
            .to_owned();
        if self
            .reader
            .query_one(&exists)
            .await
            .map_err(store_err)?
            .is_none()
        {
            return Err(StoreError::NotFound(format!("user {user}")));
        }
        let issued = self.insert_key(user, None).await.map_err(store_err)?;
        Ok(IssuedApiKey {
            user_id: user,
            prefix: issued.summary.id.as_str().to_owned(),
            key: issued.key,
        })
    }

    /// Stores a new key for `user` (who must exist) and returns it with its only plaintext.
    async fn insert_key(
        &self,
        user: UserId,
        label: Option<ApiKeyLabel>,
    ) -> Result<IssuedKey, sea_orm::DbErr> {
        let prefix = random_text(PREFIX_LEN).to_ascii_lowercase();
        let id = ApiKeyId::parse(&prefix).map_err(|e| sea_orm::DbErr::Custom(e.to_string()))?;
        let key = format!("{API_KEY_SCHEME}_{prefix}_{}", random_text(SECRET_LEN));
        let created_at = stored_time(chrono::Utc::now());
        let insert = Query::insert()
            .into_table(ApiKeys::Table)
            .columns([
                ApiKeys::UserId,
                ApiKeys::Prefix,
                ApiKeys::KeyHash,
                ApiKeys::CreatedAt,
                ApiKeys::Label,
            ])
            .values_panic([
                user.get().into(),
                prefix.as_str().into(),
                hash_key(&key).into(),
                created_at.into(),
                label.as_ref().map(|l| l.as_str().to_owned()).into(),
            ])
            .to_owned();
        execute(self.writer(), &insert).await?;
        Ok(IssuedKey {
            summary: ApiKeySummary {
                id,
                label,
                user_id: user,
                created_at,
                last_used_at: None,
                revoked_at: None,
            },
            key: SecretString::from(key),
        })
    }

    /// The API keys of a team's users, oldest first, or only the one with `id`.
    async fn team_keys(
        &self,
        team: TeamId,
        id: Option<&ApiKeyId>,
    ) -> Result<Vec<ApiKeySummary>, RepositoryError> {
        let mut query = Query::select()
            .columns(
                [
                    ApiKeys::Prefix,
                    ApiKeys::UserId,
                    ApiKeys::CreatedAt,
                    ApiKeys::LastUsedAt,
                    ApiKeys::RevokedAt,
                    ApiKeys::Label,
                ]
                .map(|column| (ApiKeys::Table, column)),
            )
            .from(ApiKeys::Table)
            .inner_join(
                Users::Table,
                Expr::col((Users::Table, Users::Id)).equals((ApiKeys::Table, ApiKeys::UserId)),
            )
            .and_where(Expr::col((Users::Table, Users::TeamId)).eq(team.get()))
            .order_by((ApiKeys::Table, ApiKeys::Id), Order::Asc)
            .to_owned();
        if let Some(id) = id {
            query.and_where(Expr::col((ApiKeys::Table, ApiKeys::Prefix)).eq(id.as_str()));
        }
        let rows = self.reader.query_all(&query).await.map_err(repo_err)?;
        rows.iter().map(key_from_row).collect()
    }

    /// The API keys of a team's users, oldest first.
    ///
    /// # Errors
    /// Database errors.
    pub async fn list_api_keys(&self, team: TeamId) -> Result<Vec<ApiKeySummary>, StoreError> {
        self.team_keys(team, None)
            .await
            .map_err(|e| StoreError::Unexpected(e.to_string()))
    }

    /// Revokes the key with this prefix; it never authenticates again. Revoking a revoked key
    /// is a no-op.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] when no key has this prefix; database errors.
    pub async fn revoke_api_key(&self, prefix: &str) -> Result<(), StoreError> {
        let update = Query::update()
            .table(ApiKeys::Table)
            .value(ApiKeys::RevokedAt, stored_time(chrono::Utc::now()))
            .and_where(Expr::col(ApiKeys::Prefix).eq(prefix))
            .and_where(Expr::col(ApiKeys::RevokedAt).is_null())
            .to_owned();
        if execute(self.writer(), &update).await.map_err(store_err)? > 0 {
            return Ok(());
        }
        let exists = Query::select()
            .column(ApiKeys::Id)
            .from(ApiKeys::Table)
            .and_where(Expr::col(ApiKeys::Prefix).eq(prefix))
            .to_owned();
        match self.reader.query_one(&exists).await.map_err(store_err)? {
            Some(_) => Ok(()),
            None => Err(StoreError::NotFound(format!("API key {prefix}"))),
        }
    }

    /// Re-encrypts every stored integration secret with the cipher's current key: values under
    /// an old key move to the current one, plaintext values are encrypted, current ones are left
    /// alone (so a second run changes nothing). Each row is updated only if it still holds the
    /// value that was read, so a concurrent change of the integration is never overwritten.
    ///
    /// # Errors
    /// Database errors. A value no key decrypts is reported in [`ReencryptReport::failed`].
    pub async fn reencrypt_secrets(&self) -> Result<ReencryptReport, StoreError> {
        let query = Query::select()
            .columns([
                TwilioIntegrations::Id,
                TwilioIntegrations::TeamId,
                TwilioIntegrations::AuthTokenEncrypted,
                TwilioIntegrations::ApiKeySecretEncrypted,
            ])
            .from(TwilioIntegrations::Table)
            .order_by(TwilioIntegrations::Id, Order::Asc)
            .to_owned();
        let rows = self.reader.query_all(&query).await.map_err(store_err)?;
        let mut report = ReencryptReport::default();
        for row in rows {
            let id: i64 = get(&row, "id")?;
            let team = TeamId::new(get(&row, "team_id")?)
                .map_err(|err| StoreError::Unexpected(err.to_string()))?;
            let token: String = get(&row, "auth_token_encrypted")?;
            let secret: Option<String> = get(&row, "api_key_secret_encrypted")?;
            let new_token = self.reencrypt_value(team, "auth token", &token, &mut report)?;
            let new_secret = match &secret {
                Some(secret) => {
                    self.reencrypt_value(team, "API key secret", secret, &mut report)?
                }
                None => None,
            };
            if new_token.is_none() && new_secret.is_none() {
                continue;
            }
            let mut update = Query::update();
            update.table(TwilioIntegrations::Table);
            if let Some(value) = new_token {
                update.value(TwilioIntegrations::AuthTokenEncrypted, value);
            }
            if let Some(value) = new_secret {
                update.value(TwilioIntegrations::ApiKeySecretEncrypted, value);
            }
            update
                .value(
                    TwilioIntegrations::UpdatedAt,
                    stored_time(chrono::Utc::now()),
                )
                .and_where(Expr::col(TwilioIntegrations::Id).eq(id))
                .and_where(Expr::col(TwilioIntegrations::AuthTokenEncrypted).eq(token.as_str()));
            if let Some(secret) = &secret {
                update.and_where(
                    Expr::col(TwilioIntegrations::ApiKeySecretEncrypted).eq(secret.as_str()),
                );
            }
            execute(self.writer(), &update).await.map_err(store_err)?;
        }
        tracing::info!(
            scanned = report.scanned,
            reencrypted = report.reencrypted,
            encrypted_from_plaintext = report.encrypted_from_plaintext,
            failed = report.failed.len(),
            "integration secrets re-encrypted"
        );
        Ok(report)
    }

    /// The value to store instead of `stored`, or `None` to leave it.
    fn reencrypt_value(
        &self,
        team: TeamId,
        what: &str,
        stored: &str,
        report: &mut ReencryptReport,
    ) -> Result<Option<String>, StoreError> {
        report.scanned += 1;
        if !is_encrypted(stored) {
            report.encrypted_from_plaintext += 1;
            return Ok(Some(self.cipher.encrypt(stored)?));
        }
        match self.cipher.decrypt_with_key(stored) {
            Ok((_, KeyUsed::Current)) => {
                report.already_current += 1;
                Ok(None)
            }
            Ok((plaintext, KeyUsed::Old(_))) => {
                report.reencrypted += 1;
                Ok(Some(self.cipher.encrypt(&plaintext)?))
            }
            Err(err) => {
                report.failed.push((team, format!("{what}: {err}")));
                Ok(None)
            }
        }
    }
}

fn key_from_row(row: &QueryResult) -> Result<ApiKeySummary, RepositoryError> {
    let read = |column: &str| -> Result<String, RepositoryError> {
        row.try_get("", column).map_err(|err| corrupt(column, err))
    };
    let optional_time = |column: &str| -> Result<Option<Timestamp>, RepositoryError> {
        row.try_get("", column).map_err(|err| corrupt(column, err))
    };
    let label: Option<String> = row
        .try_get("", "label")
        .map_err(|err| corrupt("label", err))?;
    Ok(ApiKeySummary {
        id: ApiKeyId::parse(&read("prefix")?).map_err(|err| corrupt("prefix", err))?,
        label: label
            .map(|l| ApiKeyLabel::parse(&l))
            .transpose()
            .map_err(|err| corrupt("label", err))?,
        user_id: UserId::new(
            row.try_get::<i64>("", "user_id")
                .map_err(|err| corrupt("user_id", err))?,
        )
        .map_err(|err| corrupt("user_id", err))?,
        created_at: row
            .try_get("", "created_at")
            .map_err(|err| corrupt("created_at", err))?,
        last_used_at: optional_time("last_used_at")?,
        revoked_at: optional_time("revoked_at")?,
    })
}

#[async_trait]
impl ApiKeyRepository for Store {
    async fn list_keys(&self, team: TeamId) -> Result<Vec<ApiKeySummary>, RepositoryError> {
        self.team_keys(team, None).await
    }

    async fn issue_key(
        &self,
        team: TeamId,
        user: UserId,
        label: Option<ApiKeyLabel>,
    ) -> Result<IssuedKey, RepositoryError> {
        let member = Query::select()
            .column(Users::Id)
            .from(Users::Table)
            .and_where(Expr::col(Users::Id).eq(user.get()))
            .and_where(Expr::col(Users::TeamId).eq(team.get()))
            .to_owned();
        if self
            .reader
            .query_one(&member)
            .await
            .map_err(repo_err)?
            .is_none()
        {
            return Err(RepositoryError::Unexpected(format!(
                "user {user} is not a member of team {team}"
            )));
        }
        self.insert_key(user, label).await.map_err(repo_err)
    }

    async fn revoke_key(
        &self,
        team: TeamId,
        id: &ApiKeyId,
        now: Timestamp,
    ) -> Result<Option<ApiKeySummary>, RepositoryError> {
        // Only the team's own key, and only once: a second revocation keeps the first time.
        let team_users = Query::select()
            .column(Users::Id)
            .from(Users::Table)
            .and_where(Expr::col(Users::TeamId).eq(team.get()))
            .to_owned();
        let update = Query::update()
            .table(ApiKeys::Table)
            .value(ApiKeys::RevokedAt, stored_time(now))
            .and_where(Expr::col(ApiKeys::Prefix).eq(id.as_str()))
            .and_where(Expr::col(ApiKeys::RevokedAt).is_null())
            .and_where(Expr::col(ApiKeys::UserId).in_subquery(team_users))
            .to_owned();
        execute(self.writer(), &update).await.map_err(repo_err)?;
        Ok(self.team_keys(team, Some(id)).await?.pop())
    }
}

#[async_trait]
impl ApiKeyAuthenticator for Store {
    async fn authenticate(
        &self,
        presented_key: &SecretString,
    ) -> Result<Option<Requester>, RepositoryError> {
        let presented = presented_key.expose_secret();
        let Some(prefix) = key_prefix(presented) else {
            return Ok(None);
        };
        let query = Query::select()
            .expr_as(Expr::col((ApiKeys::Table, ApiKeys::Id)), "key_id")
            .column((ApiKeys::Table, ApiKeys::KeyHash))
            .column((ApiKeys::Table, ApiKeys::RevokedAt))
            .column((ApiKeys::Table, ApiKeys::LastUsedAt))
            .expr_as(Expr::col((Users::Table, Users::Id)), "user_id")
            .column((Users::Table, Users::Role))
            .expr_as(Expr::col((Teams::Table, Teams::Id)), "team_id")
            .column((Teams::Table, Teams::Plan))
            .from(ApiKeys::Table)
            .inner_join(
                Users::Table,
                Expr::col((Users::Table, Users::Id)).equals((ApiKeys::Table, ApiKeys::UserId)),
            )
            .inner_join(
                Teams::Table,
                Expr::col((Teams::Table, Teams::Id)).equals((Users::Table, Users::TeamId)),
            )
            .and_where(Expr::col((ApiKeys::Table, ApiKeys::Prefix)).eq(prefix))
            .to_owned();
        let Some(row) = self.reader.query_one(&query).await.map_err(repo_err)? else {
            return Ok(None);
        };
        let read = |column: &str| {
            row.try_get::<String>("", column)
                .map_err(|err| corrupt(column, err))
        };
        let stored_hash = read("key_hash")?;
        let matches: bool = hash_key(presented)
            .as_bytes()
            .ct_eq(stored_hash.as_bytes())
            .into();
        let revoked: Option<Timestamp> = row
            .try_get("", "revoked_at")
            .map_err(|err| corrupt("revoked_at", err))?;
        if !matches || revoked.is_some() {
            return Ok(None);
        }
        let id = |column: &str| {
            row.try_get::<i64>("", column)
                .map_err(|err| corrupt(column, err))
        };
        let requester = Requester {
            team_id: TeamId::new(id("team_id")?).map_err(|err| corrupt("team_id", err))?,
            user_id: UserId::new(id("user_id")?).map_err(|err| corrupt("user_id", err))?,
            plan: Plan::parse(&read("plan")?).map_err(|err| corrupt("plan", err))?,
            role: Role::parse(&read("role")?).ok_or_else(|| corrupt("role", "unknown role"))?,
        };
        // `last_used_at` is for people ("used 3 days ago"), so it is written at most once per
        // `LAST_USED_PRECISION`: a read-only request must not take the database's write lock.
        let last_used: Option<Timestamp> = row
            .try_get("", "last_used_at")
            .map_err(|err| corrupt("last_used_at", err))?;
        let now = chrono::Utc::now();
        let stale = last_used.is_none_or(|at| now - at >= LAST_USED_PRECISION);
        if stale {
            let touch = Query::update()
                .table(ApiKeys::Table)
                .value(ApiKeys::LastUsedAt, stored_time(now))
                .and_where(Expr::col(ApiKeys::Id).eq(id("key_id")?))
                .to_owned();
            // Best effort: a busy database must not turn a valid key into a failed request.
            if let Err(error) = execute(self.writer(), &touch).await {
                tracing::warn!(%error, "could not record an API key's last use");
            }
        }
        Ok(Some(requester))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_keys_of_the_issued_shape_have_a_prefix() {
        let secret = "a".repeat(SECRET_LEN);
        let good = format!("smsd_abcd1234_{secret}");
        assert_eq!(key_prefix(&good), Some("abcd1234"));
        let cases = [
            (format!("smsx_abcd1234_{secret}"), "wrong scheme"),
            (format!("smsd_abc1234_{secret}"), "short prefix"),
            (format!("smsd_abcd1234_{}", &secret[1..]), "short secret"),
            (format!("smsd_abcd-234_{secret}"), "punctuation in prefix"),
            ("smsd_abcd1234".to_owned(), "no secret"),
            (String::new(), "empty"),
        ];
        for (key, why) in cases {
            assert_eq!(key_prefix(&key), None, "{why}");
        }
    }

    #[test]
    fn hashes_are_hex_sha256() {
        assert_eq!(
            hash_key("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
