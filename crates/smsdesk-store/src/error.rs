//! Errors of this crate, and the translation of driver errors into the domain's
//! [`RepositoryError`] at this seam.

use sea_orm::{DbErr, RuntimeErr, SqlErr};
use smsdesk_domain::ports::RepositoryError;

use crate::cipher::CipherError;

/// A failure of a [`crate::Store`] operation outside the domain ports: connecting, migrating,
/// administration and data migrations.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The database URL is not one this store understands.
    #[error("unsupported database URL: {0} (expected sqlite:… or postgres://…)")]
    UnsupportedUrl(String),
    /// The database could not be reached, or stopped answering.
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    /// A migration failed.
    #[error("migration failed: {0}")]
    Migration(String),
    /// A row with the same unique key exists (an e-mail address, an API key prefix, ...).
    #[error("already exists: {0}")]
    Duplicate(String),
    /// The row to change does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// An argument was refused before reaching the database.
    #[error("invalid input: {0}")]
    Invalid(String),
    /// A secret could not be encrypted or decrypted.
    #[error("secret cipher: {0}")]
    Cipher(#[from] CipherError),
    /// Anything else the database reported, or a stored value that cannot be read.
    #[error("unexpected database error: {0}")]
    Unexpected(String),
}

/// Whether a database-reported error code means "try again later" rather than "this statement
/// is wrong": PostgreSQL's connection exceptions (class 08), shutdowns (57P01-57P03) and
/// serialization failures or deadlocks (40001, 40P01); SQLite's BUSY (5) and LOCKED (6), with
/// their extended codes.
fn is_transient_code(code: &str) -> bool {
    if is_connection_lost_code(code) || matches!(code, "40001" | "40P01") {
        return true;
    }
    // PostgreSQL's SQLSTATEs are always five characters; SQLite's (extended) result codes are
    // shorter numbers whose low byte is the primary code.
    code.len() < 5
        && code
            .parse::<i32>()
            .is_ok_and(|sqlite| matches!(sqlite & 0xff, 5 | 6))
}

/// PostgreSQL's connection exceptions (class 08) and shutdowns (57P01-57P03): the connection
/// that reported it is gone.
fn is_connection_lost_code(code: &str) -> bool {
    code.starts_with("08") || matches!(code, "57P01" | "57P02" | "57P03")
}

/// The driver's own error inside a statement's failure, when there is one.
fn driver_error(err: &DbErr) -> Option<&sea_orm::sqlx::Error> {
    match err {
        DbErr::Exec(RuntimeErr::SqlxError(sqlx)) | DbErr::Query(RuntimeErr::SqlxError(sqlx)) => {
            Some(sqlx.as_ref())
        }
        _ => None,
    }
}

/// Whether a failed statement certainly wrote nothing: the server refused it (a database error
/// with its SQLSTATE: the statement's transaction was rolled back), or it never reached the
/// server (no connection could be had). An I/O error after sending may hide a commit.
pub(crate) fn nothing_was_written(err: &DbErr) -> bool {
    use sea_orm::sqlx::Error as SqlxError;
    if matches!(err, DbErr::ConnectionAcquire(_)) {
        return true;
    }
    matches!(
        driver_error(err),
        Some(SqlxError::Database(_) | SqlxError::PoolTimedOut | SqlxError::PoolClosed)
    )
}

fn is_unavailable(err: &DbErr) -> bool {
    use sea_orm::sqlx::Error as SqlxError;
    if matches!(err, DbErr::ConnectionAcquire(_) | DbErr::Conn(_)) {
        return true;
    }
    let Some(sqlx) = driver_error(err) else {
        return false;
    };
    match sqlx {
        SqlxError::Io(_)
        | SqlxError::Tls(_)
        | SqlxError::PoolTimedOut
        | SqlxError::PoolClosed
        | SqlxError::WorkerCrashed
        | SqlxError::BeginFailed => true,
        SqlxError::Database(db) => db.code().is_some_and(|code| is_transient_code(&code)),
        _ => false,
    }
}

/// Whether the error says a connection is dead or could not be made: I/O and TLS failures,
/// PostgreSQL's connection exceptions (class 08) and shutdowns (57P01-57P03). Unlike a deadlock
/// or a busy SQLite file, these are news about every pooled connection
/// ([`crate::connection_health`]).
fn is_connection_lost(err: &DbErr) -> bool {
    use sea_orm::sqlx::Error as SqlxError;
    if matches!(err, DbErr::Conn(_)) {
        return true;
    }
    let Some(sqlx) = driver_error(err) else {
        return false;
    };
    match sqlx {
        SqlxError::Io(_) | SqlxError::Tls(_) => true,
        SqlxError::Database(db) => db.code().is_some_and(|code| is_connection_lost_code(&code)),
        _ => false,
    }
}

/// Translates a driver error for the domain: unique violation → `Duplicate`, connection trouble
/// → `Unavailable`, anything else → `Unexpected`. A lost connection is also recorded, so the pool
/// checks its other connections before use.
pub(crate) fn repo_err(err: DbErr) -> RepositoryError {
    if is_connection_lost(&err) {
        crate::connection_health::connection_lost();
    }
    if let Some(SqlErr::UniqueConstraintViolation(detail)) = err.sql_err() {
        return RepositoryError::Duplicate(detail);
    }
    if is_unavailable(&err) {
        return RepositoryError::Unavailable(err.to_string());
    }
    RepositoryError::Unexpected(err.to_string())
}

/// Translates a driver error for the administrative API.
pub(crate) fn store_err(err: DbErr) -> StoreError {
    match repo_err(err) {
        RepositoryError::Duplicate(detail) => StoreError::Duplicate(detail),
        RepositoryError::Unavailable(detail) => StoreError::Unavailable(detail),
        RepositoryError::Unexpected(detail) => StoreError::Unexpected(detail),
    }
}

impl From<RepositoryError> for StoreError {
    fn from(err: RepositoryError) -> Self {
        match err {
            RepositoryError::Duplicate(detail) => Self::Duplicate(detail),
            RepositoryError::Unavailable(detail) => Self::Unavailable(detail),
            RepositoryError::Unexpected(detail) => Self::Unexpected(detail),
        }
    }
}

/// A stored value that does not read back into a domain type.
pub(crate) fn corrupt(what: &str, detail: impl std::fmt::Display) -> RepositoryError {
    RepositoryError::Unexpected(format!("stored {what} is unreadable: {detail}"))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn a_dead_connection_is_told_from_a_busy_database() {
        use sea_orm::sqlx::Error as SqlxError;
        let query = |error: SqlxError| DbErr::Query(RuntimeErr::SqlxError(Arc::new(error)));
        let reset = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset by peer");
        assert!(is_connection_lost(&query(SqlxError::Io(reset))));
        assert!(is_connection_lost(&DbErr::Conn(RuntimeErr::Internal(
            "refused".into()
        ))));
        assert!(
            !is_connection_lost(&query(SqlxError::PoolTimedOut)),
            "a full pool says nothing about its connections"
        );
        assert!(!is_connection_lost(&query(SqlxError::RowNotFound)));
        for (code, lost) in [
            ("57P01", true),
            ("08006", true),
            ("40P01", false),
            ("5", false),
        ] {
            assert_eq!(is_connection_lost_code(code), lost, "{code}");
        }
    }

    #[test]
    fn transient_database_codes_are_told_from_permanent_ones() {
        let cases = [
            ("08006", true, "PostgreSQL connection failure"),
            ("57P01", true, "PostgreSQL admin shutdown"),
            ("40P01", true, "PostgreSQL deadlock"),
            ("5", true, "SQLITE_BUSY"),
            ("517", true, "SQLITE_BUSY_SNAPSHOT"),
            ("6", true, "SQLITE_LOCKED"),
            ("23505", false, "PostgreSQL unique violation"),
            ("2067", false, "SQLite unique constraint"),
            ("42P01", false, "PostgreSQL undefined table"),
            ("1", false, "SQLite generic error"),
            (
                "22005",
                false,
                "PostgreSQL assignment error, not a SQLite code",
            ),
        ];
        for (code, transient, why) in cases {
            assert_eq!(is_transient_code(code), transient, "{why}");
        }
    }

    #[test]
    fn pool_trouble_is_unavailable_and_other_errors_are_unexpected() {
        assert!(matches!(
            repo_err(DbErr::ConnectionAcquire(sea_orm::ConnAcquireErr::Timeout)),
            RepositoryError::Unavailable(_)
        ));
        assert!(matches!(
            repo_err(DbErr::Custom("bad".into())),
            RepositoryError::Unexpected(_)
        ));
    }
}
