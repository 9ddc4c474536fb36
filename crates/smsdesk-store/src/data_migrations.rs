//! One-off data migrations, run from the app's CLI.
//!
//! [`decrypt_account_sids`] (the original's `decrypt-sms-account-sids`): older deployments stored
//! `sms_messages.account_sid` encrypted. An account SID is a public identifier, and inbound
//! webhooks must be matched by it, so it is now stored in plaintext. The migration finds the
//! encrypted values, decrypts and validates them, and (with `apply`) writes the plaintext in
//! batches, one transaction per batch. Values it cannot decrypt are listed and left untouched.
//! Each row is rewritten only if it still holds the value that was read, and plaintext rows are
//! skipped, so a second run changes nothing.

use sea_orm::ConnectionTrait;
use sea_orm::sea_query::{Expr, ExprTrait, Order, Query};
use smsdesk_domain::AccountSid;

use crate::cipher::{SecretCipher, is_encrypted};
use crate::error::{StoreError, store_err};
use crate::schema::SmsMessages;
use crate::store::{Store, execute};

/// How to run [`decrypt_account_sids`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecryptOptions {
    /// Write the decrypted values. Without it (the default) nothing is written: a dry run.
    pub apply: bool,
    /// Rows read, and written in one transaction, at a time (at least 1).
    pub batch_size: usize,
}

impl Default for DecryptOptions {
    fn default() -> Self {
        Self {
            apply: false,
            batch_size: 500,
        }
    }
}

/// What [`decrypt_account_sids`] found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DecryptReport {
    /// Whether values were written (false: dry run).
    pub applied: bool,
    /// Message rows examined.
    pub scanned: usize,
    /// Rows whose account SID was already plaintext.
    pub already_plaintext: usize,
    /// Rows decrypted (in a dry run: that would be decrypted).
    pub decrypted: usize,
    /// Rows that could not be decrypted or did not decrypt to an account SID: (message SID,
    /// reason). Left untouched.
    pub undecryptable: Vec<(String, String)>,
}

/// Finds message rows whose account SID is stored encrypted and decrypts them to plaintext.
///
/// # Errors
/// Database errors; a batch that fails is rolled back and the run stops (earlier batches stay
/// written, and a rerun continues where it left off).
pub async fn decrypt_account_sids(
    store: &Store,
    cipher: &SecretCipher,
    options: DecryptOptions,
) -> Result<DecryptReport, StoreError> {
    let batch_size = options.batch_size.max(1);
    let mut report = DecryptReport {
        applied: options.apply,
        ..DecryptReport::default()
    };
    let mut after_id = 0_i64;
    loop {
        let query = Query::select()
            .columns([SmsMessages::Id, SmsMessages::Sid, SmsMessages::AccountSid])
            .from(SmsMessages::Table)
            .and_where(Expr::col(SmsMessages::Id).gt(after_id))
            .order_by(SmsMessages::Id, Order::Asc)
            .limit(u64::try_from(batch_size).unwrap_or(u64::MAX))
            .to_owned();
        let rows = store.reader.query_all(&query).await.map_err(store_err)?;
        let Some(last) = rows.last() else {
            break;
        };
        after_id = last.try_get("", "id").map_err(store_err)?;

        let mut changes = Vec::new();
        for row in &rows {
            report.scanned += 1;
            let id: i64 = row.try_get("", "id").map_err(store_err)?;
            let sid: String = row.try_get("", "sid").map_err(store_err)?;
            let stored: String = row.try_get("", "account_sid").map_err(store_err)?;
            if !is_encrypted(&stored) {
                report.already_plaintext += 1;
                continue;
            }
            let decrypted = cipher
                .decrypt(&stored)
                .map_err(|err| err.to_string())
                .and_then(|plain| {
                    AccountSid::parse(&plain)
                        .map(|_| plain)
                        .map_err(|err| format!("decrypted value is not an account SID: {err}"))
                });
            match decrypted {
                Ok(plain) => changes.push((id, stored, plain)),
                Err(reason) => report.undecryptable.push((sid, reason)),
            }
        }

        if !options.apply {
            report.decrypted += changes.len();
            continue;
        }
        if changes.is_empty() {
            continue;
        }
        let tx = store.begin_write().await.map_err(store_err)?;
        for (id, stored, plain) in &changes {
            let update = Query::update()
                .table(SmsMessages::Table)
                .value(SmsMessages::AccountSid, plain.as_str())
                .and_where(Expr::col(SmsMessages::Id).eq(*id))
                .and_where(Expr::col(SmsMessages::AccountSid).eq(stored.as_str()))
                .to_owned();
            let changed = execute(&tx, &update).await.map_err(store_err)?;
            report.decrypted += usize::try_from(changed).unwrap_or(0);
        }
        tx.commit().await.map_err(store_err)?;
    }
    tracing::info!(
        applied = report.applied,
        scanned = report.scanned,
        already_plaintext = report.already_plaintext,
        decrypted = report.decrypted,
        undecryptable = report.undecryptable.len(),
        "account SID decryption finished"
    );
    Ok(report)
}
