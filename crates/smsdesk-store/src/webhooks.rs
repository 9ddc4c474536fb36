//! Delivery webhooks on the database: endpoints (secrets encrypted like every secret), the
//! outbox of deliveries and their attempts.
//!
//! The outbox is filled by [`record_deliveries`], which the message writes call inside their
//! own transaction, so a change and the deliveries that tell of it commit together. Workers on
//! every replica claim due deliveries with one `UPDATE … WHERE id IN (SELECT … FOR NO KEY UPDATE
//! SKIP LOCKED)` on PostgreSQL (SQLite's single writer serialises the same statement), with a
//! lease so an attempt whose worker died is claimed again.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use rand::RngCore as _;
use sea_orm::sea_query::{Alias, Expr, ExprTrait, InsertStatement, Order, Query, SelectStatement};
use sea_orm::{ConnectionTrait, DbErr, QueryResult, Statement, Value};
use smsdesk_domain::ports::{RepositoryError, SecretGenerator, WebhookRepository};
use smsdesk_domain::webhooks::{
    AfterAttempt, DeliveryAttempt, DeliveryId, DeliveryStatus, DisabledReason, DueDelivery,
    EndpointId, EndpointPatch, EndpointUrl, EventFacts, EventSelection, NewEndpoint,
    WebhookDelivery, WebhookEndpoint, WebhookEvent, WebhookSecret,
};
use smsdesk_domain::{
    Address, Direction, MessageReference, MessageSid, ObservationSource, TeamId, Timestamp,
};

use crate::error::{corrupt, repo_err};
use crate::messages::{EventRow, delivery_from_row, get};
use crate::schema::{
    MessageStatusEvents, SmsMessages, WebhookAttempts, WebhookDeliveries, WebhookEndpoints,
};
use crate::store::{Backend, Store, execute, stored_time};

/// An enabled endpoint as the outbox needs it.
pub(crate) struct Subscriber {
    id: i64,
    team_id: i64,
    events: EventSelection,
}

/// The enabled endpoints of the teams of `events`' applied rows; empty (without a query) when
/// no row is news.
pub(crate) async fn subscribed_endpoints<C: ConnectionTrait>(
    conn: &C,
    events: &[EventRow<'_>],
) -> Result<Vec<Subscriber>, DbErr> {
    let mut teams: Vec<i64> = events
        .iter()
        .filter(|event| {
            WebhookEvent::for_history(event.observation.source, event.applied).is_some()
        })
        .map(|event| event.team_id.get())
        .collect();
    if teams.is_empty() {
        return Ok(Vec::new());
    }
    teams.sort_unstable();
    teams.dedup();
    let query = Query::select()
        .columns([
            WebhookEndpoints::Id,
            WebhookEndpoints::TeamId,
            WebhookEndpoints::WantsStatusChanged,
            WebhookEndpoints::WantsReceived,
        ])
        .from(WebhookEndpoints::Table)
        .and_where(Expr::col(WebhookEndpoints::TeamId).is_in(teams))
        .and_where(Expr::col(WebhookEndpoints::Enabled).eq(true))
        .to_owned();
    conn.query_all(&query)
        .await?
        .iter()
        .map(|row| {
            Ok(Subscriber {
                id: row.try_get("", "id")?,
                team_id: row.try_get("", "team_id")?,
                events: EventSelection {
                    status_changed: row.try_get("", "wants_status_changed")?,
                    received: row.try_get("", "wants_received")?,
                },
            })
        })
        .collect()
}

/// Records one pending delivery per (applied event, subscribed endpoint of its team), due when
/// the event was observed. `ids` are the history rows' ids, in `events`' order.
pub(crate) async fn record_deliveries<C: ConnectionTrait>(
    conn: &C,
    subscribers: &[Subscriber],
    events: &[EventRow<'_>],
    ids: &[i64],
) -> Result<(), DbErr> {
    let mut insert = Query::insert();
    insert
        .into_table(WebhookDeliveries::Table)
        .columns(DELIVERY_COLUMNS);
    let mut any = false;
    for (event, &event_id) in events.iter().zip(ids) {
        let Some(kind) = WebhookEvent::for_history(event.observation.source, event.applied) else {
            continue;
        };
        for subscriber in subscribers
            .iter()
            .filter(|s| s.team_id == event.team_id.get() && s.events.contains(kind))
        {
            any = true;
            insert.values_panic(
                [
                    subscriber.id.into(),
                    event_id.into(),
                    event.message_id.into(),
                ]
                .into_iter()
                .chain(pending_delivery_values(kind, event.observation.observed_at))
                .map(Into::into),
            );
        }
    }
    if any {
        execute(conn, &insert).await?;
    }
    Ok(())
}

/// The outbox rows for history rows inserted in the same statement: one pending delivery per
/// enabled endpoint of `team` that wants `kind`, for every row the CTE `recorded` returned
/// (`id`, `message_id`), due at `at`. The statement form of [`record_deliveries`], for
/// PostgreSQL's single-statement write (`messages::apply_one_change_in_one_statement`).
pub(crate) fn deliveries_for_recorded(
    recorded: &Alias,
    team: TeamId,
    kind: WebhookEvent,
    at: Timestamp,
) -> Result<InsertStatement, DbErr> {
    let wants = match kind {
        WebhookEvent::StatusChanged => WebhookEndpoints::WantsStatusChanged,
        WebhookEvent::Received => WebhookEndpoints::WantsReceived,
    };
    let rows = Query::select()
        .column((WebhookEndpoints::Table, WebhookEndpoints::Id))
        .column((recorded.clone(), MessageStatusEvents::Id))
        .column((recorded.clone(), MessageStatusEvents::MessageId))
        .exprs(pending_delivery_values(kind, at).map(Expr::val))
        .from(recorded.clone())
        .from(WebhookEndpoints::Table)
        .and_where(Expr::col((WebhookEndpoints::Table, WebhookEndpoints::TeamId)).eq(team.get()))
        .and_where(Expr::col((WebhookEndpoints::Table, WebhookEndpoints::Enabled)).eq(true))
        .and_where(Expr::col((WebhookEndpoints::Table, wants)).eq(true))
        .to_owned();
    Ok(Query::insert()
        .into_table(WebhookDeliveries::Table)
        .columns(DELIVERY_COLUMNS)
        .select_from(rows)
        .map_err(|e| DbErr::Custom(format!("the outbox insert: {e}")))?
        .to_owned())
}

/// The outbox's columns: endpoint, event and message first, then [`pending_delivery_values`].
const DELIVERY_COLUMNS: [WebhookDeliveries; 8] = [
    WebhookDeliveries::EndpointId,
    WebhookDeliveries::EventId,
    WebhookDeliveries::MessageId,
    WebhookDeliveries::EventType,
    WebhookDeliveries::Status,
    WebhookDeliveries::AttemptCount,
    WebhookDeliveries::NextAttemptAt,
    WebhookDeliveries::CreatedAt,
];

/// A new delivery's values after its endpoint, event and message ids: pending, never tried,
/// due (and created) when its event was observed.
fn pending_delivery_values(kind: WebhookEvent, observed_at: Timestamp) -> [Value; 5] {
    let at = stored_time(observed_at);
    [
        kind.as_str().into(),
        DeliveryStatus::Pending.as_str().into(),
        0_i32.into(),
        at.into(),
        at.into(),
    ]
}

/// Fresh secrets from the operating system's generator.
#[derive(Debug, Clone, Copy, Default)]
pub struct RandomSecrets;

impl SecretGenerator for RandomSecrets {
    fn webhook_secret(&self) -> WebhookSecret {
        let mut key = [0_u8; 32];
        rand::rng().fill_bytes(&mut key);
        WebhookSecret::from_key(&key).unwrap_or_else(|_| unreachable!("32 bytes is a valid key"))
    }
}

const ENDPOINT_COLUMNS: [WebhookEndpoints; 9] = [
    WebhookEndpoints::Id,
    WebhookEndpoints::TeamId,
    WebhookEndpoints::Url,
    WebhookEndpoints::WantsStatusChanged,
    WebhookEndpoints::WantsReceived,
    WebhookEndpoints::Enabled,
    WebhookEndpoints::DisabledReason,
    WebhookEndpoints::PreviousSecretExpiresAt,
    WebhookEndpoints::CreatedAt,
];

/// The ids of `team`'s endpoints: the tenant scope of every delivery query.
fn team_endpoint_ids(team: TeamId) -> SelectStatement {
    Query::select()
        .column(WebhookEndpoints::Id)
        .from(WebhookEndpoints::Table)
        .and_where(Expr::col(WebhookEndpoints::TeamId).eq(team.get()))
        .to_owned()
}

fn select_endpoints(team: TeamId) -> SelectStatement {
    Query::select()
        .columns(ENDPOINT_COLUMNS)
        .column(WebhookEndpoints::UpdatedAt)
        .from(WebhookEndpoints::Table)
        .and_where(Expr::col(WebhookEndpoints::TeamId).eq(team.get()))
        .to_owned()
}

fn endpoint_from_row(row: &QueryResult) -> Result<WebhookEndpoint, RepositoryError> {
    let reason: Option<String> = get(row, "disabled_reason")?;
    Ok(WebhookEndpoint {
        id: EndpointId::new(get(row, "id")?),
        team_id: TeamId::new(get(row, "team_id")?).map_err(|e| corrupt("team_id", e))?,
        url: EndpointUrl::stored(get(row, "url")?),
        events: EventSelection {
            status_changed: get(row, "wants_status_changed")?,
            received: get(row, "wants_received")?,
        },
        enabled: get(row, "enabled")?,
        disabled_reason: reason.as_deref().and_then(DisabledReason::parse),
        previous_secret_expires_at: get(row, "previous_secret_expires_at")?,
        created_at: get(row, "created_at")?,
        updated_at: get(row, "updated_at")?,
    })
}

/// The history and message columns a delivery tells of, joined onto `webhook_deliveries`.
fn select_facts() -> SelectStatement {
    let d = WebhookDeliveries::Table;
    let e = MessageStatusEvents::Table;
    let m = SmsMessages::Table;
    Query::select()
        .expr_as(
            Expr::col((d, WebhookDeliveries::Id)),
            Alias::new("delivery_id"),
        )
        .column((d, WebhookDeliveries::EndpointId))
        .column((d, WebhookDeliveries::EventType))
        .expr_as(
            Expr::col((d, WebhookDeliveries::Status)),
            Alias::new("delivery_status"),
        )
        .column((d, WebhookDeliveries::AttemptCount))
        .column((d, WebhookDeliveries::NextAttemptAt))
        .expr_as(
            Expr::col((d, WebhookDeliveries::CreatedAt)),
            Alias::new("delivery_created_at"),
        )
        .column((d, WebhookDeliveries::EventId))
        .columns([
            (e, MessageStatusEvents::Status),
            (e, MessageStatusEvents::ErrorCode),
            (e, MessageStatusEvents::ErrorMessage),
            (e, MessageStatusEvents::NumSegments),
            (e, MessageStatusEvents::Price),
            (e, MessageStatusEvents::PriceUnit),
            (e, MessageStatusEvents::Source),
            (e, MessageStatusEvents::ObservedAt),
        ])
        .columns([
            (m, SmsMessages::Sid),
            (m, SmsMessages::Direction),
            (m, SmsMessages::FromAddress),
            (m, SmsMessages::ToAddress),
            (m, SmsMessages::Reference),
        ])
        .from(d)
        .inner_join(
            e,
            Expr::col((e, MessageStatusEvents::Id)).equals((d, WebhookDeliveries::EventId)),
        )
        .inner_join(
            m,
            Expr::col((m, SmsMessages::Id)).equals((e, MessageStatusEvents::MessageId)),
        )
        .to_owned()
}

fn facts_from_row(row: &QueryResult) -> Result<EventFacts, RepositoryError> {
    let kind: String = get(row, "event_type")?;
    let source: String = get(row, "source")?;
    let reference: Option<String> = get(row, "reference")?;
    Ok(EventFacts {
        event_id: get(row, "event_id")?,
        event: WebhookEvent::parse(&kind).map_err(|e| corrupt("event_type", e))?,
        sid: MessageSid::parse(&get::<String>(row, "sid")?).map_err(|e| corrupt("sid", e))?,
        direction: Direction::parse(&get::<String>(row, "direction")?)
            .map_err(|e| corrupt("direction", e))?,
        from: Address::parse(&get::<String>(row, "from_address")?)
            .map_err(|e| corrupt("from_address", e))?,
        to: Address::parse(&get::<String>(row, "to_address")?)
            .map_err(|e| corrupt("to_address", e))?,
        reference: reference
            .map(|raw| MessageReference::parse(&raw).map_err(|e| corrupt("reference", e)))
            .transpose()?,
        state: delivery_from_row(row)?,
        source: ObservationSource::parse(&source).ok_or_else(|| corrupt("source", &source))?,
        observed_at: get(row, "observed_at")?,
    })
}

fn webhook_delivery_from_row(row: &QueryResult) -> Result<WebhookDelivery, RepositoryError> {
    let status: String = get(row, "delivery_status")?;
    Ok(WebhookDelivery {
        id: DeliveryId::new(get(row, "delivery_id")?),
        endpoint_id: EndpointId::new(get(row, "endpoint_id")?),
        facts: facts_from_row(row)?,
        status: DeliveryStatus::parse(&status).ok_or_else(|| corrupt("status", &status))?,
        attempt_count: u32::try_from(get::<i32>(row, "attempt_count")?).unwrap_or_default(),
        next_attempt_at: get(row, "next_attempt_at")?,
        created_at: get(row, "delivery_created_at")?,
        attempts: Vec::new(),
    })
}

/// The claim: due, unleased, enabled, and the oldest pending delivery of its message for its
/// endpoint. `$1` now, `$2` the lease's end, `$3` the batch.
const CLAIM_SQL: &str = "UPDATE webhook_deliveries \
     SET locked_until = $2, attempt_count = attempt_count + 1 \
     WHERE id IN ( \
       SELECT c.id FROM webhook_deliveries c \
       JOIN webhook_endpoints ep ON ep.id = c.endpoint_id \
       WHERE c.status = 'pending' AND c.next_attempt_at <= $1 \
         AND (c.locked_until IS NULL OR c.locked_until <= $1) \
         AND ep.enabled \
         AND NOT EXISTS ( \
           SELECT 1 FROM webhook_deliveries earlier \
           WHERE earlier.status = 'pending' AND earlier.endpoint_id = c.endpoint_id \
             AND earlier.message_id = c.message_id AND earlier.id < c.id) \
       ORDER BY c.next_attempt_at, c.id \
       LIMIT $3 {lock}) \
     RETURNING id";

impl Store {
    fn decrypt_secret(&self, stored: &str) -> Result<WebhookSecret, RepositoryError> {
        let text = self
            .cipher
            .decrypt(stored)
            .map_err(|e| corrupt("webhook secret", e))?;
        WebhookSecret::parse(&text).map_err(|e| corrupt("webhook secret", e))
    }

    fn encrypt_secret(&self, secret: &WebhookSecret) -> Result<String, RepositoryError> {
        self.cipher
            .encrypt(secret.expose())
            .map_err(|e| RepositoryError::Unexpected(format!("cannot encrypt a secret: {e}")))
    }

    async fn deliveries_by_id(
        &self,
        ids: &[i64],
    ) -> Result<HashMap<i64, (WebhookDelivery, i64)>, RepositoryError> {
        let query = select_facts()
            .and_where(
                Expr::col((WebhookDeliveries::Table, WebhookDeliveries::Id)).is_in(ids.to_vec()),
            )
            .to_owned();
        let mut found = HashMap::new();
        for row in self.reader.query_all(&query).await.map_err(repo_err)? {
            let delivery = webhook_delivery_from_row(&row)?;
            found.insert(
                delivery.id.get(),
                (delivery, get::<i64>(&row, "endpoint_id")?),
            );
        }
        Ok(found)
    }

    async fn attempts_of(&self, deliveries: &mut [WebhookDelivery]) -> Result<(), RepositoryError> {
        if deliveries.is_empty() {
            return Ok(());
        }
        let ids: Vec<i64> = deliveries.iter().map(|d| d.id.get()).collect();
        let query = Query::select()
            .columns([
                WebhookAttempts::DeliveryId,
                WebhookAttempts::AttemptedAt,
                WebhookAttempts::StatusCode,
                WebhookAttempts::ResponseBody,
                WebhookAttempts::Error,
                WebhookAttempts::DurationMs,
            ])
            .from(WebhookAttempts::Table)
            .and_where(Expr::col(WebhookAttempts::DeliveryId).is_in(ids))
            .order_by(WebhookAttempts::Id, Order::Desc)
            .to_owned();
        let mut by_delivery: HashMap<i64, Vec<DeliveryAttempt>> = HashMap::new();
        for row in self.reader.query_all(&query).await.map_err(repo_err)? {
            let status: Option<i32> = get(&row, "status_code")?;
            by_delivery
                .entry(get(&row, "delivery_id")?)
                .or_default()
                .push(DeliveryAttempt {
                    attempted_at: get(&row, "attempted_at")?,
                    status_code: status.and_then(|s| u16::try_from(s).ok()),
                    response_body: get(&row, "response_body")?,
                    error: get(&row, "error")?,
                    duration_ms: u64::try_from(get::<i64>(&row, "duration_ms")?).unwrap_or(0),
                });
        }
        for delivery in deliveries {
            delivery.attempts = by_delivery.remove(&delivery.id.get()).unwrap_or_default();
        }
        Ok(())
    }
}

#[async_trait]
impl WebhookRepository for Store {
    async fn create_endpoint(
        &self,
        team: TeamId,
        endpoint: NewEndpoint,
        secret: &WebhookSecret,
        now: Timestamp,
    ) -> Result<WebhookEndpoint, RepositoryError> {
        let now = stored_time(now);
        let insert = Query::insert()
            .into_table(WebhookEndpoints::Table)
            .columns([
                WebhookEndpoints::TeamId,
                WebhookEndpoints::Url,
                WebhookEndpoints::WantsStatusChanged,
                WebhookEndpoints::WantsReceived,
                WebhookEndpoints::Enabled,
                WebhookEndpoints::Secret,
                WebhookEndpoints::CreatedAt,
                WebhookEndpoints::UpdatedAt,
            ])
            .values_panic([
                team.get().into(),
                endpoint.url.as_str().into(),
                endpoint.events.status_changed.into(),
                endpoint.events.received.into(),
                endpoint.enabled.into(),
                self.encrypt_secret(secret)?.into(),
                now.into(),
                now.into(),
            ])
            .returning_col(WebhookEndpoints::Id)
            .to_owned();
        let row = self
            .writer()
            .query_one(&insert)
            .await
            .map_err(repo_err)?
            .ok_or_else(|| RepositoryError::Unexpected("INSERT returned no id".into()))?;
        Ok(WebhookEndpoint {
            id: EndpointId::new(get(&row, "id")?),
            team_id: team,
            url: endpoint.url,
            events: endpoint.events,
            enabled: endpoint.enabled,
            disabled_reason: None,
            previous_secret_expires_at: None,
            created_at: now,
            updated_at: now,
        })
    }

    async fn list_endpoints(&self, team: TeamId) -> Result<Vec<WebhookEndpoint>, RepositoryError> {
        let query = select_endpoints(team)
            .order_by(WebhookEndpoints::Id, Order::Asc)
            .to_owned();
        let rows = self.reader.query_all(&query).await.map_err(repo_err)?;
        rows.iter().map(endpoint_from_row).collect()
    }

    async fn find_endpoint(
        &self,
        team: TeamId,
        id: EndpointId,
    ) -> Result<Option<WebhookEndpoint>, RepositoryError> {
        let query = select_endpoints(team)
            .and_where(Expr::col(WebhookEndpoints::Id).eq(id.get()))
            .to_owned();
        let row = self.reader.query_one(&query).await.map_err(repo_err)?;
        row.as_ref().map(endpoint_from_row).transpose()
    }

    async fn update_endpoint(
        &self,
        team: TeamId,
        id: EndpointId,
        patch: EndpointPatch,
        now: Timestamp,
    ) -> Result<Option<WebhookEndpoint>, RepositoryError> {
        let mut update = Query::update();
        update
            .table(WebhookEndpoints::Table)
            .value(WebhookEndpoints::UpdatedAt, stored_time(now))
            .and_where(Expr::col(WebhookEndpoints::Id).eq(id.get()))
            .and_where(Expr::col(WebhookEndpoints::TeamId).eq(team.get()));
        if let Some(url) = &patch.url {
            update.value(WebhookEndpoints::Url, url.as_str());
        }
        if let Some(events) = patch.events {
            update
                .value(WebhookEndpoints::WantsStatusChanged, events.status_changed)
                .value(WebhookEndpoints::WantsReceived, events.received);
        }
        if let Some(enabled) = patch.enabled {
            update.value(WebhookEndpoints::Enabled, enabled);
            if enabled {
                update.value(WebhookEndpoints::DisabledReason, Option::<String>::None);
            }
        }
        if execute(self.writer(), &update).await.map_err(repo_err)? == 0 {
            return Ok(None);
        }
        self.find_endpoint(team, id).await
    }

    async fn delete_endpoint(&self, team: TeamId, id: EndpointId) -> Result<bool, RepositoryError> {
        let tx = self.begin_write().await.map_err(repo_err)?;
        // Attempts and deliveries go first: SQLite enforces no cascade unless told to.
        let deliveries = Query::select()
            .column(WebhookDeliveries::Id)
            .from(WebhookDeliveries::Table)
            .and_where(Expr::col(WebhookDeliveries::EndpointId).eq(id.get()))
            .and_where(
                Expr::col(WebhookDeliveries::EndpointId).in_subquery(team_endpoint_ids(team)),
            )
            .to_owned();
        let attempts = Query::delete()
            .from_table(WebhookAttempts::Table)
            .and_where(Expr::col(WebhookAttempts::DeliveryId).in_subquery(deliveries.clone()))
            .to_owned();
        execute(&tx, &attempts).await.map_err(repo_err)?;
        let outbox = Query::delete()
            .from_table(WebhookDeliveries::Table)
            .and_where(Expr::col(WebhookDeliveries::Id).in_subquery(deliveries))
            .to_owned();
        execute(&tx, &outbox).await.map_err(repo_err)?;
        let endpoint = Query::delete()
            .from_table(WebhookEndpoints::Table)
            .and_where(Expr::col(WebhookEndpoints::Id).eq(id.get()))
            .and_where(Expr::col(WebhookEndpoints::TeamId).eq(team.get()))
            .to_owned();
        let deleted = execute(&tx, &endpoint).await.map_err(repo_err)?;
        tx.commit().await.map_err(repo_err)?;
        Ok(deleted == 1)
    }

    async fn rotate_secret(
        &self,
        team: TeamId,
        id: EndpointId,
        secret: &WebhookSecret,
        previous_valid_until: Timestamp,
        now: Timestamp,
    ) -> Result<Option<WebhookEndpoint>, RepositoryError> {
        let update = Query::update()
            .table(WebhookEndpoints::Table)
            .value(
                WebhookEndpoints::PreviousSecret,
                Expr::col(WebhookEndpoints::Secret),
            )
            .value(
                WebhookEndpoints::PreviousSecretExpiresAt,
                stored_time(previous_valid_until),
            )
            .value(WebhookEndpoints::Secret, self.encrypt_secret(secret)?)
            .value(WebhookEndpoints::UpdatedAt, stored_time(now))
            .and_where(Expr::col(WebhookEndpoints::Id).eq(id.get()))
            .and_where(Expr::col(WebhookEndpoints::TeamId).eq(team.get()))
            .to_owned();
        if execute(self.writer(), &update).await.map_err(repo_err)? == 0 {
            return Ok(None);
        }
        self.find_endpoint(team, id).await
    }

    async fn claim_due(
        &self,
        now: Timestamp,
        limit: usize,
        lease: Duration,
    ) -> Result<Vec<DueDelivery>, RepositoryError> {
        let now = stored_time(now);
        let until = stored_time(now + chrono::Duration::from_std(lease).unwrap_or_default());
        let lock = match self.backend() {
            // Replicas claiming at once take different rows instead of waiting on each other.
            Backend::Postgres => "FOR NO KEY UPDATE OF c SKIP LOCKED",
            Backend::Sqlite => "",
        };
        let claim = Statement::from_sql_and_values(
            self.db_backend(),
            CLAIM_SQL.replace("{lock}", lock),
            [
                Value::from(now),
                Value::from(until),
                Value::from(i64::try_from(limit).unwrap_or(i64::MAX)),
            ],
        );
        let ids = self
            .writer()
            .query_all_raw(claim)
            .await
            .map_err(repo_err)?
            .iter()
            .map(|row| get::<i64>(row, "id"))
            .collect::<Result<Vec<_>, _>>()?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let endpoints = Query::select()
            .columns([
                WebhookEndpoints::Id,
                WebhookEndpoints::Url,
                WebhookEndpoints::Secret,
                WebhookEndpoints::PreviousSecret,
                WebhookEndpoints::PreviousSecretExpiresAt,
            ])
            .from(WebhookEndpoints::Table)
            .and_where(
                Expr::col(WebhookEndpoints::Id).in_subquery(
                    Query::select()
                        .column(WebhookDeliveries::EndpointId)
                        .from(WebhookDeliveries::Table)
                        .and_where(Expr::col(WebhookDeliveries::Id).is_in(ids.clone()))
                        .to_owned(),
                ),
            )
            .to_owned();
        let mut signing: HashMap<i64, (EndpointUrl, Vec<WebhookSecret>)> = HashMap::new();
        for row in self.reader.query_all(&endpoints).await.map_err(repo_err)? {
            let mut secrets = vec![self.decrypt_secret(&get::<String>(&row, "secret")?)?];
            let previous: Option<String> = get(&row, "previous_secret")?;
            let expires: Option<Timestamp> = get(&row, "previous_secret_expires_at")?;
            if let (Some(previous), Some(expires)) = (previous, expires)
                && expires > now
            {
                secrets.push(self.decrypt_secret(&previous)?);
            }
            signing.insert(
                get(&row, "id")?,
                (EndpointUrl::stored(get(&row, "url")?), secrets),
            );
        }
        let mut deliveries = self.deliveries_by_id(&ids).await?;
        let mut due = Vec::with_capacity(ids.len());
        for id in ids {
            let Some((delivery, endpoint)) = deliveries.remove(&id) else {
                continue;
            };
            let Some((url, secrets)) = signing.get(&endpoint) else {
                continue;
            };
            due.push(DueDelivery {
                id: delivery.id,
                url: url.clone(),
                secrets: secrets.clone(),
                facts: delivery.facts,
                attempt: delivery.attempt_count,
            });
        }
        Ok(due)
    }

    async fn record_attempt(
        &self,
        id: DeliveryId,
        attempt: DeliveryAttempt,
        next: AfterAttempt,
    ) -> Result<(), RepositoryError> {
        let tx = self.begin_write().await.map_err(repo_err)?;
        let insert = Query::insert()
            .into_table(WebhookAttempts::Table)
            .columns([
                WebhookAttempts::DeliveryId,
                WebhookAttempts::AttemptedAt,
                WebhookAttempts::StatusCode,
                WebhookAttempts::ResponseBody,
                WebhookAttempts::Error,
                WebhookAttempts::DurationMs,
            ])
            .values_panic([
                id.get().into(),
                stored_time(attempt.attempted_at).into(),
                attempt.status_code.map(i32::from).into(),
                attempt.response_body.into(),
                attempt.error.into(),
                i64::try_from(attempt.duration_ms)
                    .unwrap_or(i64::MAX)
                    .into(),
            ])
            .to_owned();
        execute(&tx, &insert).await.map_err(repo_err)?;
        let mut update = Query::update();
        update
            .table(WebhookDeliveries::Table)
            .value(WebhookDeliveries::LockedUntil, Option::<Timestamp>::None)
            .and_where(Expr::col(WebhookDeliveries::Id).eq(id.get()));
        match next {
            AfterAttempt::Delivered => {
                update
                    .value(
                        WebhookDeliveries::Status,
                        DeliveryStatus::Delivered.as_str(),
                    )
                    .value(WebhookDeliveries::NextAttemptAt, Option::<Timestamp>::None);
            }
            AfterAttempt::Dead => {
                update
                    .value(WebhookDeliveries::Status, DeliveryStatus::Dead.as_str())
                    .value(WebhookDeliveries::NextAttemptAt, Option::<Timestamp>::None);
            }
            AfterAttempt::RetryAt(at) => {
                update.value(WebhookDeliveries::NextAttemptAt, stored_time(at));
            }
            AfterAttempt::EndpointGone => {
                // The delivery stays pending, and is made when the team enables the endpoint.
                let disable = Query::update()
                    .table(WebhookEndpoints::Table)
                    .value(WebhookEndpoints::Enabled, false)
                    .value(
                        WebhookEndpoints::DisabledReason,
                        DisabledReason::Gone.as_str(),
                    )
                    .and_where(
                        Expr::col(WebhookEndpoints::Id).in_subquery(
                            Query::select()
                                .column(WebhookDeliveries::EndpointId)
                                .from(WebhookDeliveries::Table)
                                .and_where(Expr::col(WebhookDeliveries::Id).eq(id.get()))
                                .to_owned(),
                        ),
                    )
                    .to_owned();
                execute(&tx, &disable).await.map_err(repo_err)?;
            }
        }
        execute(&tx, &update).await.map_err(repo_err)?;
        tx.commit().await.map_err(repo_err)
    }

    async fn list_deliveries(
        &self,
        team: TeamId,
        endpoint: EndpointId,
        before: Option<DeliveryId>,
        limit: usize,
    ) -> Result<Vec<WebhookDelivery>, RepositoryError> {
        let mut query = select_facts()
            .inner_join(
                WebhookEndpoints::Table,
                Expr::col((WebhookEndpoints::Table, WebhookEndpoints::Id))
                    .equals((WebhookDeliveries::Table, WebhookDeliveries::EndpointId)),
            )
            .and_where(
                Expr::col((WebhookEndpoints::Table, WebhookEndpoints::TeamId)).eq(team.get()),
            )
            .and_where(
                Expr::col((WebhookDeliveries::Table, WebhookDeliveries::EndpointId))
                    .eq(endpoint.get()),
            )
            .order_by(
                (WebhookDeliveries::Table, WebhookDeliveries::Id),
                Order::Desc,
            )
            .limit(u64::try_from(limit).unwrap_or(u64::MAX))
            .to_owned();
        if let Some(before) = before {
            query.and_where(
                Expr::col((WebhookDeliveries::Table, WebhookDeliveries::Id)).lt(before.get()),
            );
        }
        let rows = self.reader.query_all(&query).await.map_err(repo_err)?;
        let mut deliveries = rows
            .iter()
            .map(webhook_delivery_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        self.attempts_of(&mut deliveries).await?;
        Ok(deliveries)
    }

    async fn replay_delivery(
        &self,
        team: TeamId,
        endpoint: EndpointId,
        id: DeliveryId,
        now: Timestamp,
    ) -> Result<Option<WebhookDelivery>, RepositoryError> {
        let replay = Query::update()
            .table(WebhookDeliveries::Table)
            .value(WebhookDeliveries::Status, DeliveryStatus::Pending.as_str())
            .value(WebhookDeliveries::AttemptCount, 0_i32)
            .value(WebhookDeliveries::NextAttemptAt, stored_time(now))
            .value(WebhookDeliveries::LockedUntil, Option::<Timestamp>::None)
            .and_where(Expr::col(WebhookDeliveries::Id).eq(id.get()))
            .and_where(Expr::col(WebhookDeliveries::EndpointId).eq(endpoint.get()))
            .and_where(
                Expr::col(WebhookDeliveries::EndpointId).in_subquery(team_endpoint_ids(team)),
            )
            .to_owned();
        if execute(self.writer(), &replay).await.map_err(repo_err)? == 0 {
            return Ok(None);
        }
        let mut found = self.deliveries_by_id(&[id.get()]).await?;
        let Some((delivery, _)) = found.remove(&id.get()) else {
            return Ok(None);
        };
        let mut deliveries = vec![delivery];
        self.attempts_of(&mut deliveries).await?;
        Ok(deliveries.pop())
    }
}
