//! Which pooled PostgreSQL connections are pinged before use: only those that may have died.
//!
//! A ping on every checkout (sqlx's default) is one more round trip per query, and most requests
//! take two or three connections. Instead a pooled connection is pinged before it is handed out
//! when it may be dead:
//! - it has been idle for [`PING_AFTER_IDLE`] (a server, proxy or firewall may have dropped it
//!   meanwhile), or
//! - it went idle before this process last lost a connection, or within
//!   [`SUSPECT_AFTER_LOSS`] after ([`connection_lost`], recorded where driver errors are
//!   translated). A server restart or an administrator's `pg_terminate_backend` kills every
//!   connection at once; the first request to find one dead fails (503, which clients retry) and
//!   makes the pool check every other before use, so the requests after it find live ones. The
//!   requests that took a dead connection before that first failure was recorded fail too: one
//!   when requests come one at a time, up to the pool's size under concurrent load. The ping on
//!   every acquire this replaces failed none of them, at one round trip per query.
//!
//! A connection whose ping fails is discarded and the pool tries another, opening a new one if it
//! must. The record is process-wide on purpose: a lost connection is news about the server, and
//! the cost of sharing it between stores of one process is a few extra pings.

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// A connection idle this long is pinged before use whatever else happened.
pub const PING_AFTER_IDLE: Duration = Duration::from_secs(30);

/// A connection that went idle up to this long after a connection was lost is suspect too: the
/// one whose query failed goes back to the pool just after the loss is recorded.
pub const SUSPECT_AFTER_LOSS: Duration = Duration::from_secs(5);

static LAST_LOSS: Mutex<Option<Instant>> = Mutex::new(None);

/// Records that a connection was found dead (or the server refused or dropped one) now.
pub(crate) fn connection_lost() {
    *LAST_LOSS.lock().unwrap_or_else(PoisonError::into_inner) = Some(Instant::now());
}

/// Whether a pooled connection idle for `idle_for` must be pinged before use.
pub(crate) fn suspect(idle_for: Duration) -> bool {
    let last_loss = *LAST_LOSS.lock().unwrap_or_else(PoisonError::into_inner);
    suspect_at(Instant::now(), idle_for, last_loss)
}

/// [`suspect`] at `now`, given the last loss.
fn suspect_at(now: Instant, idle_for: Duration, last_loss: Option<Instant>) -> bool {
    if idle_for >= PING_AFTER_IDLE {
        return true;
    }
    let Some(lost) = last_loss else {
        return false;
    };
    let idle_since = now.checked_sub(idle_for).unwrap_or(now);
    idle_since <= lost + SUSPECT_AFTER_LOSS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_busy_connection_is_trusted_until_a_loss_and_checked_once_after() {
        let start = Instant::now();
        let at = |secs: u64| start + Duration::from_secs(secs);
        let ms = Duration::from_millis;
        assert!(!suspect_at(at(100), ms(5), None), "nothing lost: no ping");
        assert!(
            suspect_at(at(100), PING_AFTER_IDLE, None),
            "idle long enough for a firewall to drop it"
        );
        let lost = Some(at(100));
        assert!(
            suspect_at(at(101), Duration::from_secs(3), lost),
            "idle since before the loss"
        );
        assert!(
            suspect_at(at(101), ms(990), lost),
            "released just after the loss: the one whose query failed"
        );
        assert!(
            !suspect_at(at(110), ms(5), lost),
            "in use since the loss: proven alive"
        );
    }
}
