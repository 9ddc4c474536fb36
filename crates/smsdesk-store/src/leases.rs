//! [`Leases`] on SQL: one row per background job, taken or renewed by one conditional upsert
//! (`INSERT … ON CONFLICT (name) DO UPDATE … WHERE holder = ? OR expires_at <= now`), so the
//! database decides who holds it, across replicas.

use std::time::Duration;

use async_trait::async_trait;
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict, Query};
use smsdesk_domain::Timestamp;
use smsdesk_domain::ports::{Leases, RepositoryError};

use crate::error::repo_err;
use crate::schema::Leases as LeaseRows;
use crate::store::{Store, execute, stored_time};

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
        let until = stored_time(now + chrono::Duration::from_std(ttl).unwrap_or_default());
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
        Ok(execute(&self.db, &take).await.map_err(repo_err)? > 0)
    }

    async fn release(&self, name: &str, holder: &str) -> Result<(), RepositoryError> {
        let give_back = Query::delete()
            .from_table(LeaseRows::Table)
            .and_where(Expr::col(LeaseRows::Name).eq(name))
            .and_where(Expr::col(LeaseRows::Holder).eq(holder))
            .to_owned();
        execute(&self.db, &give_back).await.map_err(repo_err)?;
        Ok(())
    }
}
