//! Loading shortcuts for the scale benchmark (`benches/scale.rs`), which needs a million messages
//! in minutes. Not part of the store's API: they skip the history rows and the checks that
//! [`MessageRepository::insert`](smsdesk_domain::ports::MessageRepository::insert) makes, and
//! exist only so the benchmark stores values exactly as the store itself would.

use sea_orm::sea_query::Query;
use sea_orm::{ConnectionTrait, TransactionTrait};
use smsdesk_domain::NewMessage;

use crate::error::{StoreError, store_err};
use crate::messages::{NEW_MESSAGE_COLUMNS, new_message_values};
use crate::schema::SmsMessages;
use crate::store::{Backend, Store, execute};

/// Rows per multi-row INSERT: 15 columns each, well under SQLite's 32,766 bound parameters.
const ROWS_PER_STATEMENT: usize = 1_000;

impl Store {
    /// Stores `messages` without history events, with multi-row INSERTs in one transaction.
    /// For benchmarks only.
    ///
    /// # Errors
    /// [`StoreError`] from the database (a duplicate SID, a missing team, ...); nothing is
    /// stored then.
    #[doc(hidden)]
    pub async fn bulk_load_for_benchmarks(
        &self,
        messages: &[NewMessage],
    ) -> Result<(), StoreError> {
        let tx = self.writer().begin().await.map_err(store_err)?;
        for chunk in messages.chunks(ROWS_PER_STATEMENT) {
            let mut insert = Query::insert();
            insert
                .into_table(SmsMessages::Table)
                .columns(NEW_MESSAGE_COLUMNS);
            for message in chunk {
                insert.values_panic(new_message_values(message));
            }
            execute(&tx, &insert).await.map_err(store_err)?;
        }
        tx.commit().await.map_err(store_err)
    }

    /// Refreshes the planner's statistics after a bulk load (`ANALYZE` on SQLite, `VACUUM
    /// ANALYZE` on PostgreSQL), as a long-running database would have them. For benchmarks only.
    ///
    /// # Errors
    /// [`StoreError`] from the database.
    #[doc(hidden)]
    pub async fn refresh_statistics_for_benchmarks(&self) -> Result<(), StoreError> {
        let sql = match self.backend() {
            Backend::Sqlite => "ANALYZE",
            Backend::Postgres => "VACUUM ANALYZE sms_messages",
        };
        self.writer()
            .execute_unprepared(sql)
            .await
            .map_err(store_err)?;
        Ok(())
    }

    /// Drops the index named `index` from `sms_messages` and refreshes the statistics, so the
    /// scale benchmark can measure the same data without it in the same run. For benchmarks
    /// only: the next `migrate()` does not bring it back.
    ///
    /// # Errors
    /// [`StoreError`] from the database.
    #[doc(hidden)]
    pub async fn drop_index_for_benchmarks(&self, index: &str) -> Result<(), StoreError> {
        let drop = sea_orm::sea_query::Index::drop()
            .name(index)
            .table(SmsMessages::Table)
            .to_owned();
        let sql = self.db_backend().build(&drop).sql;
        self.writer()
            .execute_unprepared(&sql)
            .await
            .map_err(store_err)?;
        self.refresh_statistics_for_benchmarks().await
    }
}
