//! [`IdempotencyStore`] on SQL: one row per team and key, claimed with one conditional upsert
//! (`INSERT … ON CONFLICT (team_id, key) DO UPDATE … WHERE expires_at <= now`), so the database
//! decides which of concurrent requests with one key goes ahead, across replicas. Only a SHA-256
//! of the request is kept.

use std::time::Duration;

use async_trait::async_trait;
use sea_orm::ConnectionTrait as _;
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict, Query};
use smsdesk_domain::idempotency::{IdempotencyClaim, IdempotencyKey};
use smsdesk_domain::ports::{IdempotencyStore, RepositoryError};
use smsdesk_domain::{MessageSid, TeamId, Timestamp};

use crate::admin::hash_key;
use crate::error::{corrupt, repo_err};
use crate::messages::get;
use crate::schema::IdempotencyKeys;
use crate::store::{Store, execute, stored_time, stored_until};

#[async_trait]
impl IdempotencyStore for Store {
    async fn claim_key(
        &self,
        team: TeamId,
        key: &IdempotencyKey,
        request: &str,
        now: Timestamp,
        lock: Duration,
    ) -> Result<IdempotencyClaim, RepositoryError> {
        let hash = hash_key(request);
        let take = Query::insert()
            .into_table(IdempotencyKeys::Table)
            .columns([
                IdempotencyKeys::TeamId,
                IdempotencyKeys::Key,
                IdempotencyKeys::RequestHash,
                IdempotencyKeys::MessageSid,
                IdempotencyKeys::ExpiresAt,
            ])
            .values_panic([
                team.get().into(),
                key.as_str().into(),
                hash.as_str().into(),
                Option::<String>::None.into(),
                stored_until(now, lock).into(),
            ])
            .on_conflict(
                OnConflict::columns([IdempotencyKeys::TeamId, IdempotencyKeys::Key])
                    .update_columns([
                        IdempotencyKeys::RequestHash,
                        IdempotencyKeys::MessageSid,
                        IdempotencyKeys::ExpiresAt,
                    ])
                    // An expired row (an old answer, or a request that died) is taken over.
                    .action_and_where(
                        Expr::col((IdempotencyKeys::Table, IdempotencyKeys::ExpiresAt))
                            .lte(stored_time(now)),
                    )
                    .to_owned(),
            )
            .to_owned();
        if execute(self.writer(), &take).await.map_err(repo_err)? > 0 {
            return Ok(IdempotencyClaim::Claimed);
        }
        let held = Query::select()
            .columns([IdempotencyKeys::RequestHash, IdempotencyKeys::MessageSid])
            .from(IdempotencyKeys::Table)
            .and_where(Expr::col(IdempotencyKeys::TeamId).eq(team.get()))
            .and_where(Expr::col(IdempotencyKeys::Key).eq(key.as_str()))
            .to_owned();
        let Some(row) = self.reader.query_one(&held).await.map_err(repo_err)? else {
            // Released between the two statements: the next attempt claims it.
            return Ok(IdempotencyClaim::InProgress);
        };
        if get::<String>(&row, "request_hash")? != hash {
            return Ok(IdempotencyClaim::Mismatch);
        }
        Ok(match get::<Option<String>>(&row, "message_sid")? {
            Some(sid) => IdempotencyClaim::Completed(
                MessageSid::parse(&sid).map_err(|err| corrupt("idempotent answer", err))?,
            ),
            None => IdempotencyClaim::InProgress,
        })
    }

    async fn complete_key(
        &self,
        team: TeamId,
        key: &IdempotencyKey,
        sid: &MessageSid,
        now: Timestamp,
        keep: Duration,
    ) -> Result<(), RepositoryError> {
        let done = Query::update()
            .table(IdempotencyKeys::Table)
            .value(IdempotencyKeys::MessageSid, sid.as_str())
            .value(IdempotencyKeys::ExpiresAt, stored_until(now, keep))
            .and_where(Expr::col(IdempotencyKeys::TeamId).eq(team.get()))
            .and_where(Expr::col(IdempotencyKeys::Key).eq(key.as_str()))
            .to_owned();
        execute(self.writer(), &done).await.map_err(repo_err)?;
        Ok(())
    }

    async fn release_key(&self, team: TeamId, key: &IdempotencyKey) -> Result<(), RepositoryError> {
        let give_back = Query::delete()
            .from_table(IdempotencyKeys::Table)
            .and_where(Expr::col(IdempotencyKeys::TeamId).eq(team.get()))
            .and_where(Expr::col(IdempotencyKeys::Key).eq(key.as_str()))
            .and_where(Expr::col(IdempotencyKeys::MessageSid).is_null())
            .to_owned();
        execute(self.writer(), &give_back).await.map_err(repo_err)?;
        Ok(())
    }
}
