//! [`RefreshLimiter`] on SQL. The per-message cool-down is `sms_messages.last_refreshed_at`,
//! claimed by one conditional UPDATE for all the SIDs of a request; the bulk cool-down is a row
//! per (team, user) in `bulk_refresh_claims`, claimed by a conditional upsert. Either way the
//! database decides, so of concurrent claimers exactly one wins, across replicas and restarts.
//! A single refresh claims and reads its message in one step (`claim_and_read`): one statement
//! on PostgreSQL, one group transaction on a SQLite file.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use async_trait::async_trait;
use sea_orm::ConnectionTrait;
use sea_orm::sea_query::{Expr, ExprTrait, LockType, OnConflict, Order, Query};
use smsdesk_domain::ports::{ClaimedRead, RefreshLimiter, RepositoryError};
use smsdesk_domain::{CooldownClaim, Message, MessageSid, TeamId, Timestamp, UserId};

use crate::batched_finds::FindCall;
use crate::error::{corrupt, repo_err};
use crate::messages::MessageKeys;
use crate::schema::{BulkRefreshClaims, SmsMessages};
use crate::store::{Backend, Store, execute, stored_time};

/// The latest last-claim time that lets a claim at `now` through.
fn threshold(now: Timestamp, cooldown: Duration) -> Timestamp {
    let cooldown = chrono::Duration::from_std(cooldown).unwrap_or(chrono::Duration::MAX);
    now.checked_sub_signed(cooldown)
        .unwrap_or(chrono::DateTime::<chrono::Utc>::MIN_UTC)
}

/// The latest last-claim time that lets a claim at `now` through, as stored; `None` when there
/// is no cool-down and every claim goes through (`CooldownClaim::decide`'s rule).
pub(crate) fn cutoff(now: Timestamp, cooldown: Duration) -> Option<Timestamp> {
    (!cooldown.is_zero()).then(|| stored_time(threshold(now, cooldown)))
}

/// A denial computed from the stored time. The conditional write already refused the claim, so
/// if the arithmetic disagrees (clock skew between replicas) the answer is still a denial.
fn denial(last: Option<Timestamp>, now: Timestamp, cooldown: Duration) -> CooldownClaim {
    match CooldownClaim::decide(last, now, cooldown) {
        CooldownClaim::Granted => CooldownClaim::Denied {
            retry_after_secs: 1,
        },
        denied => denied,
    }
}

/// One request's claim of the per-message cool-down on some of its team's messages.
#[derive(Debug, Clone)]
pub(crate) struct MessageClaim {
    pub(crate) team: TeamId,
    pub(crate) sids: Vec<String>,
    pub(crate) now: Timestamp,
    pub(crate) cooldown: Duration,
    /// Whether the claim also reads its (one) message ([`RefreshLimiter::claim_and_read`]).
    pub(crate) read: bool,
}

/// What a claim answers: the SIDs granted and, when it asked to read ([`MessageClaim::read`]),
/// its message as stored before the claim's stamp (`None`: the team has no such message).
#[derive(Debug)]
pub(crate) struct Claimed {
    pub(crate) granted: Vec<String>,
    pub(crate) message: Option<Message>,
}

/// A claim on its own (no batch, or handed back by one): the read it asks for, then the claim.
pub(crate) async fn claim_alone(
    store: &Store,
    claim: &MessageClaim,
) -> Result<Claimed, RepositoryError> {
    let message = match (claim.read, claim.sids.first()) {
        (true, Some(sid)) => {
            let call = FindCall {
                team: claim.team,
                sid: MessageSid::parse(sid).map_err(|err| corrupt("sid", err))?,
                observed: None,
            };
            store.find_alone(&call).await?.map(|found| found.message)
        }
        _ => None,
    };
    let granted = claim_in(store.writer(), store.backend(), claim)
        .await
        .map_err(repo_err)?;
    Ok(Claimed { granted, message })
}

/// Claims `claim`'s messages that are due on `db` (the writer, or a group's transaction) and
/// returns the SIDs granted: one conditional UPDATE, so of concurrent claimers exactly one wins.
pub(crate) async fn claim_in(
    db: &impl ConnectionTrait,
    backend: Backend,
    claim: &MessageClaim,
) -> Result<Vec<String>, sea_orm::DbErr> {
    let cutoff = cutoff(claim.now, claim.cooldown);
    let due = || {
        // No cut-off (no cool-down): every claim goes through.
        Expr::col(SmsMessages::LastRefreshedAt)
            .is_null()
            .or(Expr::col(SmsMessages::LastRefreshedAt).lte(cutoff))
            .or(Expr::value(cutoff.is_none()))
    };
    // The rows are locked in message-id order, the order every write of this store takes,
    // so a claim and a batch write over the same messages can never wait on each other in
    // a circle (PostgreSQL locks as the sorted, locked subquery hands rows out). The lock is
    // `FOR NO KEY UPDATE`, the one an UPDATE of non-key columns takes: `FOR UPDATE` would
    // also conflict with the `KEY SHARE` locks that history inserts take on their messages
    // (the foreign key), and those are taken after the batch's updates, out of id order.
    let mut in_order = Query::select()
        .column(SmsMessages::Id)
        .from(SmsMessages::Table)
        .and_where(Expr::col(SmsMessages::TeamId).eq(claim.team.get()))
        .and_where(Expr::col(SmsMessages::Sid).is_in(claim.sids.iter().map(String::as_str)))
        .and_where(due())
        .order_by(SmsMessages::Id, Order::Asc)
        .to_owned();
    if backend == Backend::Postgres {
        in_order.lock(LockType::NoKeyUpdate);
    }
    let update = Query::update()
        .table(SmsMessages::Table)
        .value(SmsMessages::LastRefreshedAt, claim.now)
        .and_where(Expr::col(SmsMessages::Id).in_subquery(in_order))
        .and_where(due())
        .returning_col(SmsMessages::Sid)
        .to_owned();
    db.query_all(&update)
        .await?
        .iter()
        .map(|row| row.try_get::<String>("", "sid"))
        .collect()
}

/// A claimed message as [`claim_group_in`] decides it.
struct ClaimedRow {
    team: i64,
    id: i64,
    last: Option<Timestamp>,
    stamped: bool,
}

/// The claims of one SQLite group transaction, decided together: from `known`, the group's one
/// read of its messages ([`message_keys`], every claimed message of its claimer's team among
/// them), the domain's rule ([`CooldownClaim::decide`]) applied claim by claim in queue order (a
/// claim granted earlier in the group is the next one's last claim, as between separate
/// transactions), and one UPDATE stamping every granted message with its last granted claim's
/// time. One read (shared with the group's writes) and one write for the whole group instead of
/// a statement per claim; the group's transaction holds the writer, so nothing changes between
/// the read and the write. That holds on SQLite only (`BEGIN IMMEDIATE`): on PostgreSQL the read
/// would need row locks, and PostgreSQL never groups. Returns each claim's granted SIDs, as
/// [`claim_in`] does.
pub(crate) async fn claim_group_in(
    tx: &impl ConnectionTrait,
    claims: &[&MessageClaim],
    known: &MessageKeys,
) -> Result<Vec<Vec<String>>, sea_orm::DbErr> {
    // By SID (unique across teams): the owner, the message id, its last claim and whether this
    // group stamps it. Only a team's own messages have a cool-down.
    let mut claimed: HashMap<&str, ClaimedRow> = known
        .iter()
        .map(|(sid, key)| {
            (
                sid.as_str(),
                ClaimedRow {
                    team: key.team,
                    id: key.id,
                    last: key.last_refreshed_at,
                    stamped: false,
                },
            )
        })
        .collect();
    let granted = claims
        .iter()
        .map(|claim| {
            claim
                .sids
                .iter()
                .filter(|sid| {
                    let Some(row) = claimed
                        .get_mut(sid.as_str())
                        .filter(|row| row.team == claim.team.get())
                    else {
                        return false;
                    };
                    if !CooldownClaim::decide(row.last, claim.now, claim.cooldown).is_granted() {
                        return false;
                    }
                    row.last = Some(claim.now);
                    row.stamped = true;
                    true
                })
                .cloned()
                .collect()
        })
        .collect();
    // One branch per claim time (at most one per claim), not per message: the CASE stays
    // short however many messages the group's claims name. A message claimed twice keeps the
    // later time, its `last` now.
    let mut by_time: BTreeMap<Timestamp, Vec<i64>> = BTreeMap::new();
    for row in claimed.values().filter(|row| row.stamped) {
        if let Some(last) = row.last {
            by_time.entry(last).or_default().push(row.id);
        }
    }
    let mut branches = by_time.iter();
    if let Some((first_at, first)) = branches.next() {
        let mut at = Expr::case(
            Expr::col(SmsMessages::Id).is_in(first.iter().copied()),
            Expr::val(*first_at),
        );
        for (when, ids) in branches {
            at = at.case(
                Expr::col(SmsMessages::Id).is_in(ids.iter().copied()),
                Expr::val(*when),
            );
        }
        let stamp = Query::update()
            .table(SmsMessages::Table)
            .value(
                SmsMessages::LastRefreshedAt,
                at.finally(Expr::col(SmsMessages::LastRefreshedAt)),
            )
            .and_where(Expr::col(SmsMessages::Id).is_in(by_time.values().flatten().copied()))
            .to_owned();
        execute(tx, &stamp).await?;
    }
    Ok(granted)
}

#[async_trait]
impl RefreshLimiter for Store {
    /// A SID that is not one of the team's stored messages has no cool-down to keep and is
    /// granted (the caller found no such message anyway).
    async fn claim_messages(
        &self,
        team: TeamId,
        sids: &[MessageSid],
        now: Timestamp,
        cooldown: Duration,
    ) -> Result<Vec<CooldownClaim>, RepositoryError> {
        if sids.is_empty() {
            return Ok(Vec::new());
        }
        let now = stored_time(now);
        let wanted: Vec<&str> = sids.iter().map(MessageSid::as_str).collect();
        let claim = MessageClaim {
            team,
            sids: wanted.iter().map(|sid| (*sid).to_owned()).collect(),
            now,
            cooldown,
            read: false,
        };
        // On a SQLite file the claim joins the group commit: one write transaction for the
        // claims and status writes that arrive together, instead of a commit of its own.
        // On PostgreSQL a single refresh's claim shares a statement with the claims that arrive
        // together (`batched_claims`).
        let granted = if let Some(group) = self.group_commit() {
            group.claim(self, claim).await?.granted
        } else if let Some(batches) = self.batches()
            && claim.sids.len() == 1
        {
            batches.claims.call(self, claim).await?.granted
        } else {
            claim_in(self.writer(), self.backend(), &claim)
                .await
                .map_err(repo_err)?
        };

        let refused: Vec<&str> = wanted
            .iter()
            .copied()
            .filter(|sid| !granted.iter().any(|g| g == sid))
            .collect();
        let mut last_claims: HashMap<String, Option<Timestamp>> = HashMap::new();
        if !refused.is_empty() {
            let query = Query::select()
                .columns([SmsMessages::Sid, SmsMessages::LastRefreshedAt])
                .from(SmsMessages::Table)
                .and_where(Expr::col(SmsMessages::TeamId).eq(team.get()))
                .and_where(Expr::col(SmsMessages::Sid).is_in(refused.iter().copied()))
                .to_owned();
            for row in self.reader.query_all(&query).await.map_err(repo_err)? {
                let sid: String = row.try_get("", "sid").map_err(|err| corrupt("sid", err))?;
                let last: Option<Timestamp> = row
                    .try_get("", "last_refreshed_at")
                    .map_err(|err| corrupt("last_refreshed_at", err))?;
                last_claims.insert(sid, last);
            }
        }
        Ok(wanted
            .iter()
            .map(|sid| {
                if granted.iter().any(|g| g == sid) {
                    return CooldownClaim::Granted;
                }
                match last_claims.get(*sid) {
                    Some(last) => denial(*last, now, cooldown),
                    None => CooldownClaim::Granted,
                }
            })
            .collect())
    }

    /// One statement on PostgreSQL (the batched claim reads the message beside its stamp) and
    /// one group transaction on a SQLite file (the group's read of its messages serves the
    /// claim's); elsewhere `None`, and the caller reads and claims apart.
    async fn claim_and_read(
        &self,
        team: TeamId,
        sid: &MessageSid,
        now: Timestamp,
        cooldown: Duration,
    ) -> Result<Option<ClaimedRead>, RepositoryError> {
        let now = stored_time(now);
        let claim = MessageClaim {
            team,
            sids: vec![sid.as_str().to_owned()],
            now,
            cooldown,
            read: true,
        };
        let claimed = if let Some(group) = self.group_commit() {
            group.claim(self, claim).await?
        } else if let Some(batches) = self.batches() {
            batches.claims.call(self, claim).await?
        } else {
            return Ok(None);
        };
        let Some(message) = claimed.message else {
            return Ok(Some(ClaimedRead::NotFound));
        };
        // A refused claim's wait comes from the last claim as read with the message: the one
        // that refused it (a claim granted since then, if any, would only make it longer).
        let claim = if claimed.granted.is_empty() {
            denial(message.last_refreshed_at, now, cooldown)
        } else {
            CooldownClaim::Granted
        };
        Ok(Some(ClaimedRead::Found { message, claim }))
    }

    async fn claim_bulk(
        &self,
        team: TeamId,
        user: UserId,
        now: Timestamp,
        cooldown: Duration,
    ) -> Result<CooldownClaim, RepositoryError> {
        let now = stored_time(now);
        let cutoff = stored_time(threshold(now, cooldown));
        let claim = Query::insert()
            .into_table(BulkRefreshClaims::Table)
            .columns([
                BulkRefreshClaims::TeamId,
                BulkRefreshClaims::UserId,
                BulkRefreshClaims::LastClaimedAt,
            ])
            .values_panic([team.get().into(), user.get().into(), now.into()])
            .on_conflict(
                OnConflict::columns([BulkRefreshClaims::TeamId, BulkRefreshClaims::UserId])
                    .update_column(BulkRefreshClaims::LastClaimedAt)
                    .action_and_where(
                        Expr::col((BulkRefreshClaims::Table, BulkRefreshClaims::LastClaimedAt))
                            .lte(cutoff)
                            .or(Expr::value(cooldown.is_zero())),
                    )
                    .to_owned(),
            )
            .to_owned();
        if execute(self.writer(), &claim).await.map_err(repo_err)? > 0 {
            return Ok(CooldownClaim::Granted);
        }
        let query = Query::select()
            .column(BulkRefreshClaims::LastClaimedAt)
            .from(BulkRefreshClaims::Table)
            .and_where(Expr::col(BulkRefreshClaims::TeamId).eq(team.get()))
            .and_where(Expr::col(BulkRefreshClaims::UserId).eq(user.get()))
            .to_owned();
        let last = match self.reader.query_one(&query).await.map_err(repo_err)? {
            Some(row) => Some(
                row.try_get::<Timestamp>("", "last_claimed_at")
                    .map_err(|err| corrupt("last_claimed_at", err))?,
            ),
            None => None,
        };
        Ok(denial(last, now, cooldown))
    }
}
