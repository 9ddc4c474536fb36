//! [`Leases`] and [`ReplicaRegistry`] on SQL: the fleet's coordination rows. Leases: one row per
//! background job, taken or renewed by one conditional upsert
//! (`INSERT … ON CONFLICT (name) DO UPDATE … WHERE holder = ? OR expires_at <= now`), so the
//! database decides who holds it, across replicas.

use std::time::Duration;

use async_trait::async_trait;
use sea_orm::ConnectionTrait as _;
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict, Query};
use smsdesk_domain::Timestamp;
use smsdesk_domain::ports::{Leases, ReplicaRegistry, RepositoryError};

use crate::error::repo_err;
use crate::schema::{Leases as LeaseRows, Replicas};
use crate::store::{Store, execute, stored_time, stored_until};

#[async_trait]
impl Leases for Store {
    async fn acquire(
        &self,
        name: &str,
        holder: &str,
        now: Timestamp,
        ttl: Duration,
    ) -> Result<bool, RepositoryError> {
        let now = stored_time(now);
        let until = stored_until(now, ttl);
        let take = Query::insert()
            .into_table(LeaseRows::Table)
            .columns([LeaseRows::Name, LeaseRows::Holder, LeaseRows::ExpiresAt])
            .values_panic([name.into(), holder.into(), until.into()])
            .on_conflict(
                OnConflict::column(LeaseRows::Name)
                    .update_columns([LeaseRows::Holder, LeaseRows::ExpiresAt])
                    .action_and_where(
                        Expr::col((LeaseRows::Table, LeaseRows::Holder))
                            .eq(holder)
                            .or(Expr::col((LeaseRows::Table, LeaseRows::ExpiresAt)).lte(now)),
                    )
                    .to_owned(),
            )
            .to_owned();
        Ok(execute(self.writer(), &take).await.map_err(repo_err)? > 0)
    }

    async fn release(&self, name: &str, holder: &str) -> Result<(), RepositoryError> {
        let give_back = Query::delete()
            .from_table(LeaseRows::Table)
            .and_where(Expr::col(LeaseRows::Name).eq(name))
            .and_where(Expr::col(LeaseRows::Holder).eq(holder))
            .to_owned();
        execute(self.writer(), &give_back).await.map_err(repo_err)?;
        Ok(())
    }
}

#[async_trait]
impl ReplicaRegistry for Store {
    async fn heartbeat(
        &self,
        replica: &str,
        now: Timestamp,
        ttl: Duration,
    ) -> Result<usize, RepositoryError> {
        let now = stored_time(now);
        let until = stored_until(now, ttl);
        let check_in = Query::insert()
            .into_table(Replicas::Table)
            .columns([Replicas::Id, Replicas::AliveUntil])
            .values_panic([replica.into(), until.into()])
            .on_conflict(
                OnConflict::column(Replicas::Id)
                    .update_column(Replicas::AliveUntil)
                    .to_owned(),
            )
            .to_owned();
        execute(self.writer(), &check_in).await.map_err(repo_err)?;
        // Rows of replicas long gone are removed here too, so the table stays the size of the
        // fleet.
        let forget = Query::delete()
            .from_table(Replicas::Table)
            .and_where(
                Expr::col(Replicas::AliveUntil).lt(stored_time(now - chrono::Duration::hours(1))),
            )
            .to_owned();
        execute(self.writer(), &forget).await.map_err(repo_err)?;
        let live = Query::select()
            .expr_as(Expr::col(Replicas::Id).count(), "live")
            .from(Replicas::Table)
            .and_where(Expr::col(Replicas::AliveUntil).gt(now))
            .to_owned();
        let row = self
            .reader
            .query_one(&live)
            .await
            .map_err(repo_err)?
            .ok_or_else(|| RepositoryError::Unexpected("COUNT answered no row".into()))?;
        let live: i64 = row
            .try_get("", "live")
            .map_err(|err| crate::error::corrupt("live", err))?;
        Ok(usize::try_from(live).unwrap_or(0).max(1))
    }

    async fn leave(&self, replica: &str) -> Result<(), RepositoryError> {
        let leave = Query::delete()
            .from_table(Replicas::Table)
            .and_where(Expr::col(Replicas::Id).eq(replica))
            .to_owned();
        execute(self.writer(), &leave).await.map_err(repo_err)?;
        Ok(())
    }
}
