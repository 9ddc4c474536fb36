//! [`MessageRepository`] on SQL: messages, their history, the bulk candidate query and the
//! conditional status writes; and [`MessageRetention`], which redacts old messages.

use std::collections::{BTreeMap, HashMap, HashSet};

use async_trait::async_trait;
use sea_orm::sea_query::{
    Alias, CommonTableExpression, Condition, Expr, ExprTrait, InsertStatement, LockBehavior,
    LockType, Order, Query, SelectStatement, UpdateStatement, WithClause,
};
use sea_orm::{
    ConnectionTrait, DatabaseTransaction, DbBackend, QueryResult, Statement, TransactionTrait,
};
use smsdesk_domain::ports::{
    FoundMessage, MessageCursor, MessagePage, MessageQuery, MessageRepository, MessageRetention,
    ObservationWrite, RepositoryError, StateChange, StuckMessages, UnfinishedMessages,
    UnfinishedTeam, WriteOutcome,
};
use smsdesk_domain::retention::RetentionPolicy;
use smsdesk_domain::status::KNOWN_STATUSES;
use smsdesk_domain::summary::StatusCount;
use smsdesk_domain::webhooks::WebhookEvent;
use smsdesk_domain::{
    AccountSid, Address, DeliveryState, Direction, Message, MessageReference, MessageSid,
    MessageStatus, NewMessage, ObservationSource, StatusEvent, StatusObservation, TeamId,
    Timestamp,
};

use crate::batched_finds::FindCall;
use crate::cipher::{SecretCipher, is_encrypted};
use crate::error::{StoreError, corrupt, repo_err, store_err};
use crate::schema::{MessageStatusEvents, SmsMessages};
use crate::store::{Backend, Store, execute, stored_time};
use crate::webhooks;

/// The largest page [`MessageRepository::list`] returns.
pub const MAX_PAGE_SIZE: usize = 200;

/// Rows per multi-row event INSERT, well under every driver's bound-parameter limit.
const EVENT_INSERT_CHUNK: usize = 200;

/// Every column a message is read from: what it is written with, its last refresh and its
/// redaction.
pub(crate) fn select_messages() -> SelectStatement {
    Query::select()
        .columns(NEW_MESSAGE_COLUMNS)
        .columns([
            SmsMessages::LastRefreshedAt,
            SmsMessages::RedactedAt,
            SmsMessages::DeliveryUnknownAt,
        ])
        .from(SmsMessages::Table)
        .to_owned()
}

pub(crate) fn get<T: sea_orm::TryGetable>(
    row: &QueryResult,
    column: &str,
) -> Result<T, RepositoryError> {
    row.try_get::<T>("", column)
        .map_err(|err| corrupt(column, err))
}

fn optional_u32(value: Option<i64>, column: &str) -> Result<Option<u32>, RepositoryError> {
    value
        .map(|value| u32::try_from(value).map_err(|err| corrupt(column, err)))
        .transpose()
}

/// The columns a new message row is written with, in the order of [`new_message_values`].
pub(crate) const NEW_MESSAGE_COLUMNS: [SmsMessages; 16] = [
    SmsMessages::Sid,
    SmsMessages::TeamId,
    SmsMessages::Direction,
    SmsMessages::FromAddress,
    SmsMessages::ToAddress,
    SmsMessages::Body,
    SmsMessages::Status,
    SmsMessages::ErrorCode,
    SmsMessages::ErrorMessage,
    SmsMessages::NumSegments,
    SmsMessages::Price,
    SmsMessages::PriceUnit,
    SmsMessages::AccountSid,
    SmsMessages::CreatedAt,
    SmsMessages::UpdatedAt,
    SmsMessages::Reference,
];

/// A new message row's values, in the order of [`NEW_MESSAGE_COLUMNS`]; `updated_at` is the
/// first observation's time.
pub(crate) fn new_message_values(message: &NewMessage) -> Vec<Expr> {
    let parties: [sea_orm::Value; 6] = [
        message.sid.as_str().into(),
        message.team_id.get().into(),
        message.direction.as_str().into(),
        message.from.as_str().into(),
        message.to.as_str().into(),
        message.body.as_str().into(),
    ];
    let rest: [sea_orm::Value; 4] = [
        message.account_sid.as_str().into(),
        stored_time(message.created_at).into(),
        stored_time(message.first_observation.observed_at).into(),
        message
            .reference
            .as_ref()
            .map(MessageReference::as_str)
            .into(),
    ];
    parties
        .into_iter()
        .chain(state_values(&message.first_observation.state))
        .chain(rest)
        .map(Expr::val)
        .collect()
}

/// A delivery state's values (status, error code and text, segments, price and its unit), in
/// the order every table that stores one (messages, history, parked callbacks) lists them.
pub(crate) fn state_values(state: &DeliveryState) -> [sea_orm::Value; 6] {
    [
        state.status.as_str().into(),
        to_i64(state.error_code).into(),
        state.error_message.clone().into(),
        to_i64(state.num_segments).into(),
        state.price.clone().into(),
        state.price_unit.clone().into(),
    ]
}

/// An observation's values: its state's ([`state_values`]), then its source and time.
pub(crate) fn observation_values(
    observation: &StatusObservation,
) -> impl Iterator<Item = sea_orm::Value> {
    state_values(&observation.state).into_iter().chain([
        observation.source.as_str().into(),
        stored_time(observation.observed_at).into(),
    ])
}

fn to_i64(value: Option<u32>) -> Option<i64> {
    value.map(i64::from)
}

pub(crate) fn delivery_from_row<R: Columns + ?Sized>(
    row: &R,
) -> Result<DeliveryState, RepositoryError> {
    Ok(DeliveryState {
        status: MessageStatus::parse(&required(row.text("status")?, "status")?),
        error_code: optional_u32(row.integer("error_code")?, "error_code")?,
        error_message: row.text("error_message")?,
        num_segments: optional_u32(row.integer("num_segments")?, "num_segments")?,
        price: row.text("price")?,
        price_unit: row.text("price_unit")?,
    })
}

/// A message's columns read by name: from a database row, or from one element of a page the
/// database aggregated into a single JSON value ([`PageRow`]). One decoder serves both.
pub(crate) trait Columns {
    /// A text column (`None` for NULL).
    fn text(&self, column: &'static str) -> Result<Option<String>, RepositoryError>;
    /// An integer column.
    fn integer(&self, column: &'static str) -> Result<Option<i64>, RepositoryError>;
    /// A time column.
    fn time(&self, column: &'static str) -> Result<Option<Timestamp>, RepositoryError>;
}

impl Columns for QueryResult {
    fn text(&self, column: &'static str) -> Result<Option<String>, RepositoryError> {
        get(self, column)
    }

    fn integer(&self, column: &'static str) -> Result<Option<i64>, RepositoryError> {
        get(self, column)
    }

    fn time(&self, column: &'static str) -> Result<Option<Timestamp>, RepositoryError> {
        get(self, column)
    }
}

fn required<T>(value: Option<T>, column: &str) -> Result<T, RepositoryError> {
    value.ok_or_else(|| corrupt(column, "NULL"))
}

/// Reads a stored account SID, decrypting it when an older deployment stored it encrypted.
fn account_sid_from_stored(
    stored: &str,
    cipher: &SecretCipher,
) -> Result<AccountSid, RepositoryError> {
    let plaintext;
    let value = if is_encrypted(stored) {
        plaintext = cipher
            .decrypt(stored)
            .map_err(|err| corrupt("account SID", err))?;
        plaintext.as_str()
    } else {
        stored
    };
    AccountSid::parse(value).map_err(|err| corrupt("account SID", err))
}

pub(crate) fn message_from_row<R: Columns + ?Sized>(
    row: &R,
    cipher: &SecretCipher,
) -> Result<Message, RepositoryError> {
    let text = |column: &'static str| required(row.text(column)?, column);
    let team = required(row.integer("team_id")?, "team_id")?;
    Ok(Message {
        sid: MessageSid::parse(&text("sid")?).map_err(|err| corrupt("sid", err))?,
        team_id: TeamId::new(team).map_err(|err| corrupt("team_id", err))?,
        account_sid: account_sid_from_stored(&text("account_sid")?, cipher)?,
        direction: Direction::parse(&text("direction")?)
            .map_err(|err| corrupt("direction", err))?,
        from: Address::parse(&text("from_address")?).map_err(|err| corrupt("from_address", err))?,
        to: Address::parse(&text("to_address")?).map_err(|err| corrupt("to_address", err))?,
        body: text("body")?,
        delivery: delivery_from_row(row)?,
        created_at: required(row.time("created_at")?, "created_at")?,
        updated_at: required(row.time("updated_at")?, "updated_at")?,
        last_refreshed_at: row.time("last_refreshed_at")?,
        redacted_at: row.time("redacted_at")?,
        delivery_unknown_at: row.time("delivery_unknown_at")?,
        reference: row
            .text("reference")?
            .map(|raw| MessageReference::parse(&raw).map_err(|err| corrupt("reference", err)))
            .transpose()?,
    })
}

/// Every column of a listed message, in the order a [`PageRow`] holds them.
const PAGE_COLUMNS: [&str; 19] = [
    "sid",
    "team_id",
    "direction",
    "from_address",
    "to_address",
    "body",
    "status",
    "error_code",
    "error_message",
    "num_segments",
    "price",
    "price_unit",
    "account_sid",
    "created_at",
    "updated_at",
    "reference",
    "last_refreshed_at",
    "redacted_at",
    "delivery_unknown_at",
];

/// A message row and, when the query `asked`, whether its history holds the observation
/// (`already_observed`).
pub(crate) fn found_message(
    row: &QueryResult,
    cipher: &SecretCipher,
    asked: bool,
) -> Result<FoundMessage, RepositoryError> {
    Ok(FoundMessage {
        message: message_from_row(row, cipher)?,
        already_observed: asked && get::<bool>(row, "already_observed")?,
    })
}

/// A page of messages as SQLite aggregates it: one row holding a JSON array with one array of
/// [`PAGE_COLUMNS`] per message. SQLx runs each SQLite connection on a thread of its own and
/// hands every result row across a channel; one row instead of 51 saves those hand-offs.
fn aggregated_page(page: SelectStatement) -> SelectStatement {
    Query::select()
        .expr_as(
            Expr::cust(format!(
                "json_group_array(json_array({}))",
                PAGE_COLUMNS.join(", ")
            )),
            Alias::new("page"),
        )
        .from_subquery(page, Alias::new("listed"))
        .to_owned()
}

/// One value of an aggregated page, as SQLite's JSON writes a column: NULL, an integer or a
/// text. A text without escapes is borrowed from the page, not copied.
enum Cell<'a> {
    Null,
    Integer(i64),
    Text(std::borrow::Cow<'a, str>),
}

impl std::fmt::Display for Cell<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Cell::Null => f.write_str("null"),
            Cell::Integer(value) => write!(f, "{value}"),
            Cell::Text(text) => write!(f, "{text:?}"),
        }
    }
}

impl<'de: 'a, 'a> serde::Deserialize<'de> for Cell<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct CellVisitor;
        impl<'de> serde::de::Visitor<'de> for CellVisitor {
            type Value = Cell<'de>;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("null, an integer or a text")
            }

            fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
                Ok(Cell::Null)
            }

            fn visit_i64<E: serde::de::Error>(self, value: i64) -> Result<Self::Value, E> {
                Ok(Cell::Integer(value))
            }

            fn visit_u64<E: serde::de::Error>(self, value: u64) -> Result<Self::Value, E> {
                i64::try_from(value)
                    .map(Cell::Integer)
                    .map_err(|_| E::custom(format!("{value} is out of range")))
            }

            fn visit_borrowed_str<E: serde::de::Error>(
                self,
                value: &'de str,
            ) -> Result<Self::Value, E> {
                Ok(Cell::Text(std::borrow::Cow::Borrowed(value)))
            }

            fn visit_str<E: serde::de::Error>(self, value: &str) -> Result<Self::Value, E> {
                Ok(Cell::Text(std::borrow::Cow::Owned(value.to_owned())))
            }
        }
        deserializer.deserialize_any(CellVisitor)
    }
}

/// One message of an aggregated page.
struct PageRow<'a>(&'a [Cell<'a>]);

impl PageRow<'_> {
    fn value(&self, column: &'static str) -> Result<&Cell<'_>, RepositoryError> {
        PAGE_COLUMNS
            .iter()
            .position(|name| *name == column)
            .and_then(|index| self.0.get(index))
            .ok_or_else(|| corrupt(column, "missing from the page"))
    }
}

impl Columns for PageRow<'_> {
    fn text(&self, column: &'static str) -> Result<Option<String>, RepositoryError> {
        match self.value(column)? {
            Cell::Null => Ok(None),
            Cell::Text(text) => Ok(Some(text.clone().into_owned())),
            other => Err(corrupt(column, other)),
        }
    }

    fn integer(&self, column: &'static str) -> Result<Option<i64>, RepositoryError> {
        match self.value(column)? {
            Cell::Null => Ok(None),
            Cell::Integer(value) => Ok(Some(*value)),
            other => Err(corrupt(column, other)),
        }
    }

    fn time(&self, column: &'static str) -> Result<Option<Timestamp>, RepositoryError> {
        match self.value(column)? {
            Cell::Null => Ok(None),
            Cell::Text(text) => parse_stored_time(text)
                .map(Some)
                .ok_or_else(|| corrupt(column, text)),
            other => Err(corrupt(column, other)),
        }
    }
}

/// A time as SQLx stores it in SQLite (RFC 3339), or in SQLite's own `YYYY-MM-DD HH:MM:SS`
/// forms for rows written by other tools.
fn parse_stored_time(text: &str) -> Option<Timestamp> {
    if let Ok(time) = chrono::DateTime::parse_from_rfc3339(text) {
        return Some(time.with_timezone(&chrono::Utc));
    }
    chrono::DateTime::parse_from_str(text, "%F %T%.f%:z")
        .map(|time| time.with_timezone(&chrono::Utc))
        .ok()
        .or_else(|| {
            chrono::NaiveDateTime::parse_from_str(text, "%F %T%.f")
                .ok()
                .map(|time| time.and_utc())
        })
}

fn event_from_row(row: &QueryResult) -> Result<StatusEvent, RepositoryError> {
    let source = get::<String>(row, "source")?;
    Ok(StatusEvent {
        observation: StatusObservation {
            state: delivery_from_row(row)?,
            source: ObservationSource::parse(&source)
                .ok_or_else(|| corrupt("event source", &source))?,
            observed_at: get(row, "observed_at")?,
        },
        applied: get(row, "applied")?,
    })
}

/// One history row to insert.
pub(crate) struct EventRow<'a> {
    pub(crate) team_id: TeamId,
    pub(crate) message_id: i64,
    pub(crate) observation: &'a StatusObservation,
    pub(crate) applied: bool,
}

/// The columns of a history row that describe the observation, in the order they are written and
/// read.
const EVENT_COLUMNS: [MessageStatusEvents; 9] = [
    MessageStatusEvents::Status,
    MessageStatusEvents::ErrorCode,
    MessageStatusEvents::ErrorMessage,
    MessageStatusEvents::NumSegments,
    MessageStatusEvents::Price,
    MessageStatusEvents::PriceUnit,
    MessageStatusEvents::Source,
    MessageStatusEvents::ObservedAt,
    MessageStatusEvents::Applied,
];

/// A history row's values after its message id, in [`EVENT_COLUMNS`] order: what every way of
/// inserting history rows writes.
fn history_values(
    observation: &StatusObservation,
    applied: bool,
) -> impl Iterator<Item = sea_orm::Value> {
    observation_values(observation).chain([applied.into()])
}

/// Inserts history rows with one multi-row INSERT per chunk.
async fn insert_events<C: ConnectionTrait>(
    conn: &C,
    events: &[EventRow<'_>],
) -> Result<(), sea_orm::DbErr> {
    // The outbox: one delivery per subscribed endpoint for every applied event, in this same
    // transaction. Teams without endpoints (most writes) cost one indexed read.
    let endpoints = webhooks::subscribed_endpoints(conn, events).await?;
    for chunk in events.chunks(EVENT_INSERT_CHUNK) {
        let mut insert = history_insert();
        for event in chunk {
            insert.values_panic(
                std::iter::once(event.message_id.into())
                    .chain(history_values(event.observation, event.applied).map(Into::into)),
            );
        }
        if endpoints.is_empty() {
            execute(conn, &insert).await?;
            continue;
        }
        insert.returning_col(MessageStatusEvents::Id);
        let mut ids = conn
            .query_all(&insert)
            .await?
            .iter()
            .map(|row| row.try_get::<i64>("", "id"))
            .collect::<Result<Vec<_>, _>>()?;
        // Ids are handed out in the order the rows are inserted, which is the chunk's order.
        ids.sort_unstable();
        webhooks::record_deliveries(conn, &endpoints, chunk, &ids).await?;
    }
    Ok(())
}

fn outbound_directions() -> Vec<&'static str> {
    [
        Direction::OutboundApi,
        Direction::OutboundCall,
        Direction::OutboundReply,
    ]
    .into_iter()
    .map(Direction::as_str)
    .collect()
}

fn terminal_statuses() -> Vec<String> {
    KNOWN_STATUSES
        .iter()
        .filter(|status| status.is_terminal())
        .map(|status| status.as_str().to_owned())
        .collect()
}

/// The bulk candidate query. Equality on `team_id`, a short IN list on `direction`, then
/// `status` and `created_at`: the shape of the composite index
/// `(team_id, direction, status, created_at)`. The list index serves it as well (team, then a
/// `created_at` range, direction and status checked in the index); the planner picks.
fn refresh_candidates_query(
    team: TeamId,
    created_since: Timestamp,
    limit: usize,
) -> SelectStatement {
    select_messages()
        .and_where(Expr::col(SmsMessages::TeamId).eq(team.get()))
        .and_where(Expr::col(SmsMessages::Direction).is_in(outbound_directions()))
        .and_where(Expr::col(SmsMessages::Status).is_not_in(terminal_statuses()))
        .and_where(Expr::col(SmsMessages::CreatedAt).gte(stored_time(created_since)))
        .and_where(Expr::col(SmsMessages::DeliveryUnknownAt).is_null())
        .order_by(SmsMessages::CreatedAt, Order::Desc)
        .order_by(SmsMessages::Sid, Order::Desc)
        .limit(u64::try_from(limit).unwrap_or(u64::MAX))
        .to_owned()
}

/// [`MessageRepository::find_with_observed`] as one statement: the message row, and whether its
/// history holds the observation, by the `(message_id, source, status)` index (one probe,
/// however long the history).
fn found_message_query(
    team: TeamId,
    sid: &MessageSid,
    source: ObservationSource,
    status: &MessageStatus,
) -> SelectStatement {
    let seen = Query::select()
        .expr(Expr::val(1))
        .from(MessageStatusEvents::Table)
        .and_where(
            Expr::col((MessageStatusEvents::Table, MessageStatusEvents::MessageId))
                .equals((SmsMessages::Table, SmsMessages::Id)),
        )
        .and_where(
            Expr::col((MessageStatusEvents::Table, MessageStatusEvents::Source))
                .eq(source.as_str()),
        )
        .and_where(
            Expr::col((MessageStatusEvents::Table, MessageStatusEvents::Status))
                .eq(status.as_str()),
        )
        .to_owned();
    select_messages()
        .expr_as(Expr::exists(seen), "already_observed")
        .and_where(Expr::col((SmsMessages::Table, SmsMessages::TeamId)).eq(team.get()))
        .and_where(Expr::col((SmsMessages::Table, SmsMessages::Sid)).eq(sid.as_str()))
        .to_owned()
}

/// The list query: the team's messages with optional filters, newest first, after the cursor,
/// one row more than the page so the caller knows whether another page follows. Its order is
/// the list index's (`team_id, created_at, sid`), read backwards, so a page needs no sort.
fn list_query(team: TeamId, query: &MessageQuery) -> SelectStatement {
    let limit = query.limit.clamp(1, MAX_PAGE_SIZE);
    let mut select = select_messages();
    select.and_where(Expr::col(SmsMessages::TeamId).eq(team.get()));
    if let Some(direction) = query.direction {
        select.and_where(Expr::col(SmsMessages::Direction).eq(direction.as_str()));
    }
    if !query.statuses.is_empty() {
        select.and_where(
            Expr::col(SmsMessages::Status).is_in(query.statuses.iter().map(MessageStatus::as_str)),
        );
    }
    if let Some(since) = query.created_since {
        select.and_where(Expr::col(SmsMessages::CreatedAt).gte(stored_time(since)));
    }
    if let Some(until) = query.created_until {
        select.and_where(Expr::col(SmsMessages::CreatedAt).lt(stored_time(until)));
    }
    if let Some(reference) = &query.reference {
        select.and_where(Expr::col(SmsMessages::Reference).eq(reference.as_str()));
    }
    if let Some(to) = &query.to {
        select.and_where(Expr::col(SmsMessages::ToAddress).eq(to.as_str()));
    }
    if let Some(from) = &query.from {
        select.and_where(Expr::col(SmsMessages::FromAddress).eq(from.as_str()));
    }
    if let Some(party) = &query.party {
        select.and_where(
            Expr::col(SmsMessages::ToAddress)
                .eq(party.as_str())
                .or(Expr::col(SmsMessages::FromAddress).eq(party.as_str())),
        );
    }
    if let Some(after) = &query.after {
        let at = stored_time(after.created_at);
        select.and_where(
            Expr::col(SmsMessages::CreatedAt)
                .lt(at)
                .or(Expr::col(SmsMessages::CreatedAt)
                    .eq(at)
                    .and(Expr::col(SmsMessages::Sid).lt(after.sid.as_str()))),
        );
    }
    select
        .order_by(SmsMessages::CreatedAt, Order::Desc)
        .order_by(SmsMessages::Sid, Order::Desc)
        .limit(u64::try_from(limit + 1).unwrap_or(u64::MAX));
    select
}

impl Store {
    /// A page read as one aggregated row (SQLite), in the page's order.
    async fn aggregated_list(
        &self,
        page: SelectStatement,
    ) -> Result<Vec<Message>, RepositoryError> {
        let row = self
            .reader
            .query_one(&aggregated_page(page))
            .await
            .map_err(repo_err)?
            .ok_or_else(|| corrupt("page", "no aggregate row"))?;
        let json = required(row.text("page")?, "page")?;
        let rows: Vec<Vec<Cell<'_>>> =
            serde_json::from_str(&json).map_err(|err| corrupt("page", err))?;
        let mut messages = rows
            .iter()
            .map(|values| message_from_row(&PageRow(values), &self.cipher))
            .collect::<Result<Vec<_>, _>>()?;
        // The order the list query sorted by: SQLite aggregates a sorted subquery in its order,
        // but does not promise to.
        messages
            .sort_by(|a, b| (b.created_at, b.sid.as_str()).cmp(&(a.created_at, a.sid.as_str())));
        Ok(messages)
    }
}

/// A query plan as the database printed it (`EXPLAIN QUERY PLAN` on SQLite, `EXPLAIN` on
/// PostgreSQL), one plan line per line, with the two questions the store's checks ask of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryPlan {
    text: String,
}

impl QueryPlan {
    /// The plan as printed.
    #[must_use]
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Whether the plan reads the index named `index` (one of the names
    /// [`smsdesk_migrations`] exports).
    #[must_use]
    pub fn uses_index(&self, index: &str) -> bool {
        self.text.contains(index)
    }

    /// Whether the database sorts rows itself rather than reading them in index order:
    /// SQLite's `USE TEMP B-TREE FOR ORDER BY`, PostgreSQL's `Sort` and `Incremental Sort`.
    #[must_use]
    pub fn sorts(&self) -> bool {
        self.text.lines().any(|line| {
            let step = line.trim_start().trim_start_matches("->").trim_start();
            step.contains("TEMP B-TREE FOR")
                || step.starts_with("Sort ")
                || step.starts_with("Incremental Sort ")
        })
    }
}

impl std::fmt::Display for QueryPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

impl Store {
    /// The database's plan for the bulk candidate query, to check which index serves it
    /// (see `docs/benchmarks-scale.md`).
    ///
    /// On PostgreSQL sequential scans are disabled for this one statement (in a transaction that
    /// is rolled back), so the answer shows whether an index *can* serve the query even on a
    /// table too small for the planner to bother with one.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] or [`StoreError::Unexpected`] from the database.
    pub async fn explain_refresh_candidates(
        &self,
        team: TeamId,
        created_since: Timestamp,
        limit: usize,
    ) -> Result<QueryPlan, StoreError> {
        self.explain(&refresh_candidates_query(team, created_since, limit))
            .await
    }

    /// The database's plan for [`MessageRepository::list`] with this query, as
    /// [`Store::explain_refresh_candidates`] explains the bulk query.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] or [`StoreError::Unexpected`] from the database.
    pub async fn explain_list(
        &self,
        team: TeamId,
        query: &MessageQuery,
    ) -> Result<QueryPlan, StoreError> {
        self.explain(&list_query(team, query)).await
    }

    /// The database's plan for [`MessageRepository::find_with_observed`], as
    /// [`Store::explain_refresh_candidates`] explains the bulk query.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] or [`StoreError::Unexpected`] from the database.
    pub async fn explain_find_with_observed(
        &self,
        team: TeamId,
        sid: &MessageSid,
        source: ObservationSource,
        status: &MessageStatus,
    ) -> Result<QueryPlan, StoreError> {
        self.explain(&found_message_query(team, sid, source, status))
            .await
    }

    async fn explain(&self, select: &SelectStatement) -> Result<QueryPlan, StoreError> {
        self.explain_statement(self.db_backend().build(select))
            .await
    }

    /// The plan of `query`, as [`Store::explain_refresh_candidates`] explains the bulk query.
    pub(crate) async fn explain_statement(
        &self,
        query: Statement,
    ) -> Result<QueryPlan, StoreError> {
        let (prefix, column) = match self.backend() {
            Backend::Sqlite => ("EXPLAIN QUERY PLAN ", "detail"),
            Backend::Postgres => ("EXPLAIN ", "QUERY PLAN"),
        };
        let explain = Statement {
            sql: format!("{prefix}{}", query.sql),
            ..query
        };
        let tx = self.reader.begin().await.map_err(store_err)?;
        if self.backend() == Backend::Postgres {
            tx.execute_unprepared("SET LOCAL enable_seqscan = off")
                .await
                .map_err(store_err)?;
        }
        let rows = tx.query_all_raw(explain).await.map_err(store_err)?;
        tx.rollback().await.map_err(store_err)?;
        let lines = rows
            .iter()
            .map(|row| row.try_get::<String>("", column))
            .collect::<Result<Vec<_>, _>>()
            .map_err(store_err)?;
        Ok(QueryPlan {
            text: lines.join("\n"),
        })
    }
}

/// One caller's writes, all of one team: what [`apply_in`] applies.
pub(crate) struct TeamWrites<'a> {
    /// The team every write is scoped to.
    pub(crate) team: TeamId,
    /// The writes, in the caller's order.
    pub(crate) writes: &'a [ObservationWrite],
}

/// What a batch of claims and writes needs of one message: its owning team, its id and its
/// last cool-down claim, and the whole message when the batch asked for it.
pub(crate) struct MessageKey {
    pub(crate) team: i64,
    pub(crate) id: i64,
    pub(crate) last_refreshed_at: Option<Timestamp>,
    pub(crate) message: Option<Message>,
}

/// [`message_keys`]' answer, by SID (unique across teams).
pub(crate) type MessageKeys = HashMap<String, MessageKey>;

/// The messages named by `wanted` (team, SID) pairs, in one read of each team's own only. A
/// pair naming another team's SID finds nothing here, so it has no id ([`message_id_of`]) and no
/// cool-down to claim. With a cipher (`whole`), every column is read and each whole message
/// decoded too (a row that does not decode fails the read: a group then runs its calls alone,
/// where each answers its own error).
pub(crate) async fn message_keys(
    conn: &impl ConnectionTrait,
    wanted: &[(TeamId, &str)],
    whole: Option<&SecretCipher>,
) -> Result<MessageKeys, sea_orm::DbErr> {
    let mut sids_by_team: BTreeMap<i64, Vec<&str>> = BTreeMap::new();
    for &(team, sid) in wanted {
        sids_by_team.entry(team.get()).or_default().push(sid);
    }
    let mut of_teams = Condition::any();
    for (team, mut sids) in sids_by_team {
        sids.sort_unstable();
        sids.dedup();
        of_teams = of_teams.add(
            Expr::col(SmsMessages::TeamId)
                .eq(team)
                .and(Expr::col(SmsMessages::Sid).is_in(sids)),
        );
    }
    let mut query = match whole {
        Some(_) => select_messages(),
        None => Query::select()
            .columns([
                SmsMessages::TeamId,
                SmsMessages::Sid,
                SmsMessages::LastRefreshedAt,
            ])
            .from(SmsMessages::Table)
            .to_owned(),
    };
    query.column(SmsMessages::Id).cond_where(of_teams);
    let rows = conn.query_all(&query).await?;
    rows.iter()
        .map(|row| {
            let message = whole
                .map(|cipher| message_from_row(row, cipher))
                .transpose()
                .map_err(|err| sea_orm::DbErr::Custom(err.to_string()))?;
            Ok((
                row.try_get::<String>("", "sid")?,
                MessageKey {
                    team: row.try_get("", "team_id")?,
                    id: row.try_get("", "id")?,
                    last_refreshed_at: row.try_get("", "last_refreshed_at")?,
                    message,
                },
            ))
        })
        .collect()
}

/// The (team, SID) pairs `calls` write, pushed onto `wanted`.
pub(crate) fn push_written<'a>(wanted: &mut Vec<(TeamId, &'a str)>, calls: &'a [TeamWrites<'_>]) {
    for call in calls {
        wanted.extend(
            call.writes
                .iter()
                .map(|write| (call.team, write.sid.as_str())),
        );
    }
}

/// The id of the message `write` names, if it belongs to `team` ([`message_keys`]' answer).
fn message_id_of(keys: &MessageKeys, team: TeamId, write: &ObservationWrite) -> Option<i64> {
    keys.get(write.sid.as_str())
        .filter(|key| key.team == team.get())
        .map(|key| key.id)
}

/// The columns a change sets in its message's row, in the order [`changed_values`] gives them.
const CHANGED_COLUMNS: [SmsMessages; 8] = [
    SmsMessages::Status,
    SmsMessages::ErrorCode,
    SmsMessages::ErrorMessage,
    SmsMessages::NumSegments,
    SmsMessages::Price,
    SmsMessages::PriceUnit,
    SmsMessages::UpdatedAt,
    SmsMessages::DeliveryUnknownAt,
];

/// What a change stores in [`CHANGED_COLUMNS`]: the new delivery state ([`state_values`]), the
/// observation's time as `updated_at`, and no longer stuck (any change, however late, is news
/// of the message).
fn changed_values(write: &ObservationWrite, change: &StateChange) -> [sea_orm::Value; 8] {
    let [
        status,
        error_code,
        error_message,
        num_segments,
        price,
        price_unit,
    ] = state_values(&change.next);
    [
        status,
        error_code,
        error_message,
        num_segments,
        price,
        price_unit,
        stored_time(write.observation.observed_at).into(),
        Option::<Timestamp>::None.into(),
    ]
}

/// The forward-only rule in SQL: `change` lands only if nobody changed the status since the
/// caller read it (a concurrent writer that got there first makes it match no row). The caller
/// adds which row: by id, or by SID.
fn conditional_update(
    team: TeamId,
    write: &ObservationWrite,
    change: &StateChange,
) -> UpdateStatement {
    let mut update = Query::update()
        .table(SmsMessages::Table)
        .values(
            CHANGED_COLUMNS
                .into_iter()
                .zip(changed_values(write, change).map(Expr::val)),
        )
        .and_where(Expr::col(SmsMessages::TeamId).eq(team.get()))
        .and_where(Expr::col(SmsMessages::Status).eq(change.expected_status.as_str()))
        .to_owned();
    if let Some(at) = change.expected_updated_at {
        update.and_where(Expr::col(SmsMessages::UpdatedAt).eq(stored_time(at)));
    }
    update
}

/// One change of a batch of writes: where its outcome goes, and its message's id.
struct RoundWrite<'a> {
    call_index: usize,
    index: usize,
    message_id: i64,
    team: TeamId,
    write: &'a ObservationWrite,
    change: &'a StateChange,
}

/// Changes per statement of a round (12 parameters each).
const ROUND_CHUNK: usize = 256;

/// Applies one round of changes, at most one per message, on a SQLite file: one `UPDATE … FROM
/// (VALUES …)` per chunk, each row with [`conditional_update`]'s conditions (the message's id and
/// team, the status the caller read and, when it gave one, the time it read) and the values
/// [`changed_values`] sets. Returns the ids of the messages it changed.
async fn update_round(
    tx: &DatabaseTransaction,
    round: &[RoundWrite<'_>],
) -> Result<HashSet<i64>, sea_orm::DbErr> {
    use sea_orm::sea_query::Iden as _;
    // Each input row: the four conditions, then the changed values. SQLite names a `VALUES`
    // list's columns `column1`, `column2`, ….
    const CONDITIONS: usize = 4;
    const PER_ROW: usize = CONDITIONS + CHANGED_COLUMNS.len();
    static TEXT: std::sync::OnceLock<(String, String)> = std::sync::OnceLock::new();
    let (set, row) = TEXT.get_or_init(|| {
        let set = CHANGED_COLUMNS
            .iter()
            .enumerate()
            .map(|(n, column)| {
                format!("{} = input.column{}", column.unquoted(), CONDITIONS + n + 1)
            })
            .collect::<Vec<_>>()
            .join(", ");
        (set, format!("({})", ["?"; PER_ROW].join(", ")))
    });
    let mut written = HashSet::with_capacity(round.len());
    for chunk in round.chunks(ROUND_CHUNK) {
        let rows = vec![row.as_str(); chunk.len()].join(", ");
        let sql = format!(
            "UPDATE sms_messages SET {set} FROM (VALUES {rows}) AS input \
             WHERE sms_messages.id = input.column1 AND sms_messages.team_id = input.column2 \
             AND sms_messages.status = input.column3 \
             AND (input.column4 IS NULL OR sms_messages.updated_at = input.column4) \
             RETURNING id"
        );
        let mut values: Vec<sea_orm::Value> = Vec::with_capacity(chunk.len() * PER_ROW);
        for change in chunk {
            values.extend([
                change.message_id.into(),
                change.team.get().into(),
                change.change.expected_status.as_str().into(),
                change.change.expected_updated_at.map(stored_time).into(),
            ]);
            values.extend(changed_values(change.write, change.change));
        }
        let rows = tx
            .query_all_raw(Statement::from_sql_and_values(
                DbBackend::Sqlite,
                sql,
                values,
            ))
            .await?;
        for row in rows {
            written.insert(row.try_get::<i64>("", "id")?);
        }
    }
    Ok(written)
}

/// One call with one change (a status callback, a single refresh): the update finds its row by
/// SID and returns its id, so no id lookup comes first; only a write that matched nothing asks
/// whether the message is missing or was changed meanwhile. One row locks in no order.
async fn apply_one_change(
    tx: &DatabaseTransaction,
    team: TeamId,
    write: &ObservationWrite,
    change: &StateChange,
) -> Result<WriteOutcome, sea_orm::DbErr> {
    let update = conditional_update(team, write, change)
        .and_where(Expr::col(SmsMessages::Sid).eq(write.sid.as_str()))
        .returning_col(SmsMessages::Id)
        .to_owned();
    let Some(row) = tx.query_one(&update).await? else {
        return missing_or_conflict(tx, team, write).await;
    };
    let event = EventRow {
        team_id: team,
        message_id: row.try_get::<i64>("", "id")?,
        observation: &write.observation,
        applied: true,
    };
    insert_events(tx, &[event]).await?;
    Ok(WriteOutcome::Written)
}

/// On PostgreSQL, one call with one write that only records (a refresh that found nothing new)
/// is one statement in autocommit: its history row, inserted from the team's message row, so a
/// SID the team does not own inserts nothing and is missing. It replaces `BEGIN`, the id lookup,
/// the history insert and `COMMIT`.
pub(crate) async fn record_one_in_one_statement<C: ConnectionTrait>(
    db: &C,
    team: TeamId,
    write: &ObservationWrite,
) -> Result<WriteOutcome, sea_orm::DbErr> {
    let insert = history_insert_from(
        Query::select()
            .column(SmsMessages::Id)
            .from(SmsMessages::Table)
            .and_where(Expr::col(SmsMessages::TeamId).eq(team.get()))
            .and_where(Expr::col(SmsMessages::Sid).eq(write.sid.as_str())),
        &write.observation,
        false,
    )?;
    Ok(if execute(db, &insert).await? == 0 {
        WriteOutcome::Missing
    } else {
        WriteOutcome::Recorded
    })
}

/// An INSERT into the history naming its columns: the message id, then [`EVENT_COLUMNS`].
fn history_insert() -> InsertStatement {
    Query::insert()
        .into_table(MessageStatusEvents::Table)
        .columns(std::iter::once(MessageStatusEvents::MessageId).chain(EVENT_COLUMNS))
        .to_owned()
}

/// The history rows `select` yields (it names message ids), each with `observation`'s values.
fn history_insert_from(
    select: &mut SelectStatement,
    observation: &StatusObservation,
    applied: bool,
) -> Result<InsertStatement, sea_orm::DbErr> {
    let rows = select
        .exprs(history_values(observation, applied).map(Expr::val))
        .to_owned();
    Ok(history_insert()
        .select_from(rows)
        .map_err(|e| sea_orm::DbErr::Custom(format!("the history insert: {e}")))?
        .to_owned())
}

/// On PostgreSQL, one call with one change (a status callback, a single refresh) is one
/// statement in autocommit: the conditional update, its history row and its webhook deliveries
/// as data-modifying CTEs, all or nothing as any one statement is. It replaces `BEGIN`, the
/// update, the endpoint lookup, the history insert and `COMMIT`: PostgreSQL's cost is per
/// statement, and the server shares this machine's CPUs. Only a write that matched nothing asks
/// next whether the message is missing or was changed meanwhile.
pub(crate) async fn apply_one_change_in_one_statement<C: ConnectionTrait>(
    db: &C,
    team: TeamId,
    write: &ObservationWrite,
    change: &StateChange,
) -> Result<WriteOutcome, sea_orm::DbErr> {
    let changed = Alias::new("changed");
    let recorded = Alias::new("recorded");
    let update = conditional_update(team, write, change)
        .and_where(Expr::col(SmsMessages::Sid).eq(write.sid.as_str()))
        .returning_col(SmsMessages::Id)
        .to_owned();
    let observation = &write.observation;
    let history = history_insert_from(
        Query::select()
            .column((changed.clone(), SmsMessages::Id))
            .from(changed.clone()),
        observation,
        true,
    )?
    .returning(
        Query::returning().columns([MessageStatusEvents::Id, MessageStatusEvents::MessageId]),
    )
    .to_owned();
    let mut with = WithClause::new();
    with.cte(
        CommonTableExpression::new()
            .query(update)
            .table_name(changed.clone())
            .to_owned(),
    )
    .cte(
        CommonTableExpression::new()
            .query(history)
            .table_name(recorded.clone())
            .to_owned(),
    );
    if let Some(kind) = WebhookEvent::for_history(observation.source, true) {
        let deliveries =
            webhooks::deliveries_for_recorded(&recorded, team, kind, observation.observed_at)?;
        with.cte(
            CommonTableExpression::new()
                .query(deliveries)
                .table_name(Alias::new("delivered"))
                .to_owned(),
        );
    }
    let statement = Query::select()
        .column((changed.clone(), SmsMessages::Id))
        .from(changed)
        .to_owned()
        .with(with);
    if db.query_one(&statement).await?.is_some() {
        return Ok(WriteOutcome::Written);
    }
    missing_or_conflict(db, team, write).await
}

/// Why a single change by SID matched no row: the team has no such message, or its status (or
/// time) was no longer the one the write expected.
async fn missing_or_conflict(
    db: &impl ConnectionTrait,
    team: TeamId,
    write: &ObservationWrite,
) -> Result<WriteOutcome, sea_orm::DbErr> {
    let keys = message_keys(db, &[(team, write.sid.as_str())], None).await?;
    Ok(match message_id_of(&keys, team, write) {
        None => WriteOutcome::Missing,
        Some(_) => WriteOutcome::Conflict,
    })
}

/// Applies the writes of `calls` inside `tx` (not committed), as if each call ran in turn: each
/// write conditional on the status its caller read, with a history row for each one applied or
/// recorded. Returns each call's outcomes, in its writes' order. Shared by a transaction of its
/// own ([`Store::apply_alone`]) and a group commit ([`crate::group_commit`]), whose calls share
/// one id lookup, one endpoint lookup and one history insert.
pub(crate) async fn apply_in(
    tx: &DatabaseTransaction,
    calls: &[TeamWrites<'_>],
) -> Result<Vec<Vec<WriteOutcome>>, sea_orm::DbErr> {
    if let [call] = calls
        && let [write] = call.writes
        && let Some(change) = &write.change
    {
        let outcome = apply_one_change(tx, call.team, write, change).await?;
        return Ok(vec![vec![outcome]]);
    }
    let mut written = Vec::new();
    push_written(&mut written, calls);
    let keys = message_keys(tx, &written, None).await?;
    apply_known_in(tx, calls, &keys).await
}

/// [`apply_in`] once the written messages' ids are known (`keys` holds at least every message
/// `calls` write, as [`message_keys`] read them in this transaction).
pub(crate) async fn apply_known_in(
    tx: &DatabaseTransaction,
    calls: &[TeamWrites<'_>],
    keys: &MessageKeys,
) -> Result<Vec<Vec<WriteOutcome>>, sea_orm::DbErr> {
    // Every write of every call, in the calls' order, then sorted by message id: rows are
    // locked in message-id order, whatever the order of the writes, so two batches touching
    // the same messages cannot deadlock on PostgreSQL. The sort is stable, so writes to one
    // message keep the calls' order, and each sees the ones before it as a serial run would;
    // writes to different messages do not see each other.
    let mut order: Vec<(usize, usize, Option<i64>)> = calls
        .iter()
        .enumerate()
        .flat_map(|(call_index, call)| {
            call.writes.iter().enumerate().map(move |(index, write)| {
                (call_index, index, message_id_of(keys, call.team, write))
            })
        })
        .collect();
    order.sort_by_key(|&(_, _, id)| id);
    let mut outcomes: Vec<Vec<WriteOutcome>> = calls
        .iter()
        .map(|call| vec![WriteOutcome::Missing; call.writes.len()])
        .collect();
    // The changes, in that order.
    let changes: Vec<RoundWrite<'_>> = order
        .iter()
        .filter_map(|&(call_index, index, message_id)| {
            let write = &calls[call_index].writes[index];
            Some(RoundWrite {
                call_index,
                index,
                message_id: message_id?,
                team: calls[call_index].team,
                write,
                change: write.change.as_ref()?,
            })
        })
        .collect();
    if tx.get_database_backend() == DbBackend::Sqlite {
        // On a SQLite file, each round is one statement: the first change of each message,
        // then the second, and so on, so each sees the ones before it as a serial run would.
        // The rows take no locks there (the transaction holds the one writer), so their order
        // does not matter; each statement is a round trip to the connection's thread saved.
        let mut pending = changes;
        while !pending.is_empty() {
            let mut messages = HashSet::new();
            let (round, later): (Vec<_>, Vec<_>) = pending
                .into_iter()
                .partition(|change| messages.insert(change.message_id));
            let written = update_round(tx, &round).await?;
            for change in &round {
                outcomes[change.call_index][change.index] = if written.contains(&change.message_id)
                {
                    WriteOutcome::Written
                } else {
                    WriteOutcome::Conflict
                };
            }
            pending = later;
        }
    } else {
        for change in &changes {
            let update = conditional_update(change.team, change.write, change.change)
                .and_where(Expr::col(SmsMessages::Id).eq(change.message_id))
                .to_owned();
            outcomes[change.call_index][change.index] = if execute(tx, &update).await? == 1 {
                WriteOutcome::Written
            } else {
                WriteOutcome::Conflict
            };
        }
    }
    let mut events = Vec::with_capacity(order.len());
    for (call_index, index, message_id) in order {
        let Some(message_id) = message_id else {
            continue;
        };
        let write = &calls[call_index].writes[index];
        let outcome = &mut outcomes[call_index][index];
        let applied = match (&write.change, &*outcome) {
            (None, _) => {
                *outcome = WriteOutcome::Recorded;
                false
            }
            (Some(_), WriteOutcome::Written) => true,
            (Some(_), _) => continue,
        };
        events.push(EventRow {
            team_id: calls[call_index].team,
            message_id,
            observation: &write.observation,
            applied,
        });
    }
    insert_events(tx, &events).await?;
    Ok(outcomes)
}

impl Store {
    /// `call` as one statement of its own: the message row by the team's SID and, when the
    /// call asks, whether its history holds the observation ([`found_message_query`]).
    pub(crate) async fn find_alone(
        &self,
        call: &FindCall,
    ) -> Result<Option<FoundMessage>, RepositoryError> {
        let query = match &call.observed {
            Some((source, status)) => found_message_query(call.team, &call.sid, *source, status),
            None => select_messages()
                .and_where(Expr::col(SmsMessages::TeamId).eq(call.team.get()))
                .and_where(Expr::col(SmsMessages::Sid).eq(call.sid.as_str()))
                .to_owned(),
        };
        let row = self.reader.query_one(&query).await.map_err(repo_err)?;
        row.map(|row| found_message(&row, &self.cipher, call.observed.is_some()))
            .transpose()
    }

    /// `writes` in a write transaction of their own; on PostgreSQL a single write is one
    /// statement instead, all or nothing as well.
    pub(crate) async fn apply_alone(
        &self,
        team: TeamId,
        writes: &[ObservationWrite],
    ) -> Result<Vec<WriteOutcome>, RepositoryError> {
        if self.backend() == Backend::Postgres
            && let [write] = writes
        {
            let outcome = match &write.change {
                Some(change) => {
                    apply_one_change_in_one_statement(self.writer(), team, write, change).await
                }
                None => record_one_in_one_statement(self.writer(), team, write).await,
            };
            return outcome.map(|outcome| vec![outcome]).map_err(repo_err);
        }
        let tx = self.begin_write().await.map_err(repo_err)?;
        let outcomes = apply_in(&tx, &[TeamWrites { team, writes }])
            .await
            .map_err(repo_err)?;
        tx.commit().await.map_err(repo_err)?;
        Ok(outcomes.into_iter().next().unwrap_or_default())
    }
}

/// The history rows of `team`'s message `sid` (no columns chosen yet): scoped by team like
/// every read, so another team's message has no history.
fn events_of(team: TeamId, sid: &MessageSid) -> SelectStatement {
    Query::select()
        .from(MessageStatusEvents::Table)
        .inner_join(
            SmsMessages::Table,
            Expr::col((SmsMessages::Table, SmsMessages::Id))
                .equals((MessageStatusEvents::Table, MessageStatusEvents::MessageId)),
        )
        .and_where(Expr::col((SmsMessages::Table, SmsMessages::TeamId)).eq(team.get()))
        .and_where(Expr::col((SmsMessages::Table, SmsMessages::Sid)).eq(sid.as_str()))
        .to_owned()
}

#[async_trait]
impl MessageRepository for Store {
    async fn insert(&self, message: NewMessage) -> Result<Message, RepositoryError> {
        let first = &message.first_observation;
        let created_at = stored_time(message.created_at);
        let updated_at = stored_time(first.observed_at);
        let tx = self.begin_write().await.map_err(repo_err)?;
        let insert = Query::insert()
            .into_table(SmsMessages::Table)
            .columns(NEW_MESSAGE_COLUMNS)
            .values_panic(new_message_values(&message))
            .returning_col(SmsMessages::Id)
            .to_owned();
        let row = tx
            .query_one(&insert)
            .await
            .map_err(repo_err)?
            .ok_or_else(|| RepositoryError::Unexpected("INSERT returned no id".into()))?;
        let id = get::<i64>(&row, "id")?;
        insert_events(
            &tx,
            &[EventRow {
                team_id: message.team_id,
                message_id: id,
                observation: first,
                applied: true,
            }],
        )
        .await
        .map_err(repo_err)?;
        tx.commit().await.map_err(repo_err)?;
        tracing::debug!(sid = %message.sid, team = %message.team_id, "message stored");
        Ok(Message {
            sid: message.sid,
            team_id: message.team_id,
            account_sid: message.account_sid,
            direction: message.direction,
            from: message.from,
            to: message.to,
            body: message.body,
            delivery: message.first_observation.state,
            created_at,
            updated_at,
            last_refreshed_at: None,
            redacted_at: None,
            delivery_unknown_at: None,
            reference: message.reference,
        })
    }

    async fn find(
        &self,
        team: TeamId,
        sid: &MessageSid,
    ) -> Result<Option<Message>, RepositoryError> {
        let call = FindCall {
            team,
            sid: sid.clone(),
            observed: None,
        };
        let found = match self.batches() {
            Some(batches) => batches.finds.call(self, call).await?,
            None => self.find_alone(&call).await?,
        };
        Ok(found.map(|found| found.message))
    }

    async fn refresh_candidates(
        &self,
        team: TeamId,
        created_since: Timestamp,
        limit: usize,
    ) -> Result<Vec<Message>, RepositoryError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let query = refresh_candidates_query(team, created_since, limit);
        let rows = self.reader.query_all(&query).await.map_err(repo_err)?;
        rows.iter()
            .map(|row| message_from_row(row, &self.cipher))
            .collect()
    }

    async fn apply_observations(
        &self,
        team: TeamId,
        mut writes: Vec<ObservationWrite>,
    ) -> Result<Vec<WriteOutcome>, RepositoryError> {
        if writes.is_empty() {
            return Ok(Vec::new());
        }
        if let Some(group) = self.group_commit() {
            return group.apply(self, team, writes).await;
        }
        if let Some(batches) = self.batches()
            && let [_] = writes.as_slice()
            && let Some(write) = writes.pop()
        {
            let outcome = batches.writes.call(self, (team, write)).await?;
            return Ok(vec![outcome]);
        }
        self.apply_alone(team, &writes).await
    }

    async fn history(
        &self,
        team: TeamId,
        sid: &MessageSid,
    ) -> Result<Vec<StatusEvent>, RepositoryError> {
        let query = events_of(team, sid)
            .columns(EVENT_COLUMNS.map(|column| (MessageStatusEvents::Table, column)))
            .order_by(
                (MessageStatusEvents::Table, MessageStatusEvents::Id),
                Order::Asc,
            )
            .to_owned();
        let rows = self.reader.query_all(&query).await.map_err(repo_err)?;
        rows.iter().map(event_from_row).collect()
    }

    async fn list(
        &self,
        team: TeamId,
        query: MessageQuery,
    ) -> Result<MessagePage, RepositoryError> {
        let limit = query.limit.clamp(1, MAX_PAGE_SIZE);
        let select = list_query(team, &query);
        let mut messages = match self.backend() {
            Backend::Sqlite => self.aggregated_list(select).await?,
            Backend::Postgres => {
                let rows = self.reader.query_all(&select).await.map_err(repo_err)?;
                rows.iter()
                    .map(|row| message_from_row(row, &self.cipher))
                    .collect::<Result<Vec<_>, _>>()?
            }
        };
        let more = messages.len() > limit;
        messages.truncate(limit);
        let next = if more {
            messages.last().map(|last| MessageCursor {
                created_at: last.created_at,
                sid: last.sid.clone(),
            })
        } else {
            None
        };
        Ok(MessagePage { messages, next })
    }

    async fn status_counts(
        &self,
        team: TeamId,
        created_since: Timestamp,
    ) -> Result<Vec<StatusCount>, RepositoryError> {
        // One grouped read over the list index's prefix (`team_id, created_at`).
        let query = Query::select()
            .column(SmsMessages::Status)
            .expr_as(Expr::col(SmsMessages::Id).count(), "messages")
            .from(SmsMessages::Table)
            .and_where(Expr::col(SmsMessages::TeamId).eq(team.get()))
            .and_where(Expr::col(SmsMessages::CreatedAt).gte(stored_time(created_since)))
            .group_by_col(SmsMessages::Status)
            .to_owned();
        let rows = self.reader.query_all(&query).await.map_err(repo_err)?;
        rows.iter()
            .map(|row| {
                let count = get::<i64>(row, "messages")?;
                Ok(StatusCount {
                    status: MessageStatus::parse(&get::<String>(row, "status")?),
                    count: u64::try_from(count).map_err(|err| corrupt("messages", err))?,
                })
            })
            .collect()
    }

    async fn find_with_observed(
        &self,
        team: TeamId,
        sid: &MessageSid,
        source: ObservationSource,
        status: &MessageStatus,
    ) -> Result<Option<FoundMessage>, RepositoryError> {
        let call = FindCall {
            team,
            sid: sid.clone(),
            observed: Some((source, status.clone())),
        };
        match self.batches() {
            Some(batches) => batches.finds.call(self, call).await,
            None => self.find_alone(&call).await,
        }
    }
}

/// SIDs per `IN (…)` list when reading the messages a sweep listed.
const FIND_MANY_CHUNK: usize = 500;

#[async_trait]
impl UnfinishedMessages for Store {
    async fn unfinished_teams(
        &self,
        created_since: Timestamp,
        created_before: Timestamp,
        limit: usize,
    ) -> Result<Vec<UnfinishedTeam>, RepositoryError> {
        let query = Query::select()
            .column(SmsMessages::TeamId)
            .expr_as(Expr::col(SmsMessages::CreatedAt).min(), "oldest")
            .expr_as(Expr::col(SmsMessages::Id).count(), "messages")
            .from(SmsMessages::Table)
            .and_where(Expr::col(SmsMessages::Direction).is_in(outbound_directions()))
            .and_where(Expr::col(SmsMessages::Status).is_not_in(terminal_statuses()))
            .and_where(Expr::col(SmsMessages::CreatedAt).gte(stored_time(created_since)))
            .and_where(Expr::col(SmsMessages::CreatedAt).lt(stored_time(created_before)))
            .and_where(Expr::col(SmsMessages::DeliveryUnknownAt).is_null())
            .group_by_col(SmsMessages::TeamId)
            .order_by_expr(Expr::col(SmsMessages::CreatedAt).min(), Order::Asc)
            .order_by(SmsMessages::TeamId, Order::Asc)
            .limit(u64::try_from(limit).unwrap_or(u64::MAX))
            .to_owned();
        let rows = self.reader.query_all(&query).await.map_err(repo_err)?;
        rows.iter()
            .map(|row| {
                Ok(UnfinishedTeam {
                    team_id: TeamId::new(get(row, "team_id")?)
                        .map_err(|err| corrupt("team_id", err))?,
                    oldest_created_at: get(row, "oldest")?,
                    messages: u64::try_from(get::<i64>(row, "messages")?)
                        .map_err(|err| corrupt("count", err))?,
                })
            })
            .collect()
    }

    async fn find_many(
        &self,
        team: TeamId,
        sids: &[MessageSid],
    ) -> Result<Vec<Message>, RepositoryError> {
        let mut found = Vec::new();
        for chunk in sids.chunks(FIND_MANY_CHUNK) {
            let query = select_messages()
                .and_where(Expr::col(SmsMessages::TeamId).eq(team.get()))
                .and_where(Expr::col(SmsMessages::Sid).is_in(chunk.iter().map(MessageSid::as_str)))
                .to_owned();
            for row in self.reader.query_all(&query).await.map_err(repo_err)? {
                found.push(message_from_row(&row, &self.cipher)?);
            }
        }
        Ok(found)
    }
}

#[async_trait]
impl StuckMessages for Store {
    async fn time_out_stuck(
        &self,
        created_before: Timestamp,
        now: Timestamp,
        limit: usize,
    ) -> Result<Vec<Message>, RepositoryError> {
        let tx = self.begin_write().await.map_err(repo_err)?;
        // In id order, the one lock order of every batch write; another replica's run skips
        // rows this one holds (PostgreSQL), so each message times out once. `NO KEY UPDATE`,
        // as every row lock of this store: it never waits on a history insert's `KEY SHARE`.
        let mut due = select_messages()
            .column(SmsMessages::Id)
            .and_where(Expr::col(SmsMessages::Direction).is_in(outbound_directions()))
            .and_where(Expr::col(SmsMessages::Status).is_not_in(terminal_statuses()))
            .and_where(Expr::col(SmsMessages::CreatedAt).lt(stored_time(created_before)))
            .and_where(Expr::col(SmsMessages::DeliveryUnknownAt).is_null())
            .order_by(SmsMessages::Id, Order::Asc)
            .limit(u64::try_from(limit).unwrap_or(u64::MAX))
            .to_owned();
        if self.backend() == Backend::Postgres {
            due.lock_with_behavior(LockType::NoKeyUpdate, LockBehavior::SkipLocked);
        }
        let rows = tx.query_all(&due).await.map_err(repo_err)?;
        let now = stored_time(now);
        let mut timed_out = Vec::with_capacity(rows.len());
        let mut ids = Vec::with_capacity(rows.len());
        for row in &rows {
            let mut message = message_from_row(row, &self.cipher)?;
            message.delivery_unknown_at = Some(now);
            ids.push(get::<i64>(row, "id")?);
            timed_out.push(message);
        }
        if !ids.is_empty() {
            let mark = Query::update()
                .table(SmsMessages::Table)
                .value(SmsMessages::DeliveryUnknownAt, now)
                .and_where(Expr::col(SmsMessages::Id).is_in(ids.clone()))
                .to_owned();
            execute(&tx, &mark).await.map_err(repo_err)?;
            let observations: Vec<StatusObservation> = timed_out
                .iter()
                .map(|message| StatusObservation {
                    state: message.delivery.clone(),
                    source: ObservationSource::Timeout,
                    observed_at: now,
                })
                .collect();
            let events: Vec<EventRow<'_>> = ids
                .iter()
                .zip(&observations)
                .zip(&timed_out)
                .map(|((&message_id, observation), message)| EventRow {
                    team_id: message.team_id,
                    message_id,
                    observation,
                    applied: true,
                })
                .collect();
            insert_events(&tx, &events).await.map_err(repo_err)?;
        }
        tx.commit().await.map_err(repo_err)?;
        Ok(timed_out)
    }
}

#[async_trait]
impl MessageRetention for Store {
    async fn redact_batch(
        &self,
        cutoff: Timestamp,
        policy: &RetentionPolicy,
        limit: usize,
        now: Timestamp,
    ) -> Result<u64, RepositoryError> {
        let tx = self.begin_write().await.map_err(repo_err)?;
        let mut due = Query::select()
            .columns([
                SmsMessages::Id,
                SmsMessages::FromAddress,
                SmsMessages::ToAddress,
            ])
            .from(SmsMessages::Table)
            .and_where(Expr::col(SmsMessages::RedactedAt).is_null())
            .and_where(Expr::col(SmsMessages::CreatedAt).lt(stored_time(cutoff)))
            // The partial index's order: only due rows are read.
            .order_by(SmsMessages::CreatedAt, Order::Asc)
            .order_by(SmsMessages::Id, Order::Asc)
            .limit(u64::try_from(limit).unwrap_or(u64::MAX))
            .to_owned();
        if self.backend() == Backend::Postgres {
            // Replicas running retention at once take different rows instead of waiting on (or
            // redoing) each other's; SQLite's single writer serialises them anyway.
            due.lock_with_behavior(LockType::NoKeyUpdate, LockBehavior::SkipLocked);
        }
        let rows = tx.query_all(&due).await.map_err(repo_err)?;
        let redact = || {
            Query::update()
                .table(SmsMessages::Table)
                .value(SmsMessages::Body, "")
                .value(SmsMessages::RedactedAt, stored_time(now))
                .and_where(Expr::col(SmsMessages::RedactedAt).is_null())
                .to_owned()
        };
        let redacted = if rows.is_empty() {
            0
        } else if policy.mask_numbers {
            // Each row's masked numbers differ, so each row is its own UPDATE.
            let mut redacted = 0;
            for row in &rows {
                let from = get::<String>(row, "from_address")?;
                let to = get::<String>(row, "to_address")?;
                let update = redact()
                    .value(SmsMessages::FromAddress, policy.redact_address(&from))
                    .value(SmsMessages::ToAddress, policy.redact_address(&to))
                    .and_where(Expr::col(SmsMessages::Id).eq(get::<i64>(row, "id")?))
                    .to_owned();
                redacted += execute(&tx, &update).await.map_err(repo_err)?;
            }
            redacted
        } else {
            // Numbers stay: one statement for the whole batch.
            let ids = rows
                .iter()
                .map(|row| get::<i64>(row, "id"))
                .collect::<Result<Vec<_>, _>>()?;
            let update = redact()
                .and_where(Expr::col(SmsMessages::Id).is_in(ids))
                .to_owned();
            execute(&tx, &update).await.map_err(repo_err)?
        };
        tx.commit().await.map_err(repo_err)?;
        Ok(redacted)
    }
}

#[cfg(test)]
mod tests {
    use super::{Cell, Columns as _, PageRow, QueryPlan, parse_stored_time};

    fn plan(text: &str) -> QueryPlan {
        QueryPlan {
            text: text.to_owned(),
        }
    }

    #[test]
    fn a_plan_that_sorts_is_recognised_on_both_databases() {
        let sqlite =
            plan("SEARCH sms_messages USING INDEX idx_a (team_id=?)\nUSE TEMP B-TREE FOR ORDER BY");
        let postgres = plan(
            "Limit  (cost=1.0..2.0 rows=51 width=9)\n  ->  Sort  (cost=1.0..1.5 rows=99 width=9)\n        Sort Key: created_at DESC, sid DESC\n        ->  Bitmap Heap Scan on sms_messages",
        );
        let incremental = plan("Limit\n  ->  Incremental Sort  (cost=1..2 rows=3 width=4)");
        assert!(sqlite.sorts() && postgres.sorts() && incremental.sorts());
        assert!(sqlite.uses_index("idx_a") && !sqlite.uses_index("idx_b"));
    }

    #[test]
    fn a_plan_read_in_index_order_does_not_sort() {
        let sqlite = plan("SEARCH sms_messages USING INDEX idx_b (team_id=?)");
        let postgres = plan(
            "Limit  (cost=0.42..9.1 rows=51 width=9)\n  ->  Index Scan Backward using idx_b on sms_messages  (cost=0.42..100 rows=990 width=9)\n        Index Cond: (team_id = 1)",
        );
        assert!(!sqlite.sorts() && !postgres.sorts());
        assert_eq!(postgres.to_string(), postgres.text());
    }

    #[test]
    fn an_aggregated_pages_times_read_in_every_form_sqlite_stores() {
        let expected = chrono::DateTime::parse_from_rfc3339("2026-03-01T12:00:05.123456Z")
            .expect("valid")
            .with_timezone(&chrono::Utc);
        for text in [
            "2026-03-01T12:00:05.123456+00:00",
            "2026-03-01T12:00:05.123456Z",
            "2026-03-01 12:00:05.123456+00:00",
            "2026-03-01 12:00:05.123456",
        ] {
            assert_eq!(parse_stored_time(text), Some(expected), "{text}");
        }
        assert_eq!(parse_stored_time("yesterday"), None);
        let cells: Vec<Cell<'_>> =
            serde_json::from_str(r#"["not a number", 7, null, "2026-03-01T12:00:05.123456Z"]"#)
                .expect("cells");
        let row = PageRow(&cells);
        assert!(row.integer("sid").is_err(), "a text is no integer");
        assert_eq!(row.integer("team_id").expect("an integer"), Some(7));
        assert!(row.text("team_id").is_err(), "an integer is no text");
        assert_eq!(row.text("direction").expect("null"), None);
        assert_eq!(
            row.time("from_address").expect("a time"),
            Some(expected),
            "a time read straight from the page's text"
        );
        assert!(row.time("sid").is_err(), "a text that is no time");
        assert!(row.text("to_address").is_err(), "a page row too short");
        assert!(
            serde_json::from_str::<Vec<Cell<'_>>>("[1.5]").is_err(),
            "SQLite writes no other kind of value for a message's columns"
        );
    }
}
