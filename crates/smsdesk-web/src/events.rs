//! Live message events: what changed, pushed to the SMS page as Server-Sent Events, from the
//! change log every process can read, so a change committed through any replica reaches every
//! open stream of its team on every replica.
//!
//! - The log is the truth: every applied history row, read through the domain's
//!   [`ChangeLog`] port in commit order. One **follower** per process reads it after its last
//!   position and hands each change to the streams of that change's team only (one broadcast
//!   channel per team with open streams, so a stream wakes only for its own team).
//! - Doorbells only say when to look: [`MessageEvents::ring`] on every change this process
//!   commits (from [`crate::consequences::ServiceConsequences`]; no handler publishes), a
//!   [`FleetDoorbell`] for the other replicas' changes (PostgreSQL `LISTEN/NOTIFY`, wired by the
//!   app), and a poll every [`POLL_PERIOD`] in case a notification was lost. A lost ring costs
//!   latency, never an event.
//! - Each event carries the history row's id as its SSE `id:`. A client that reconnects with
//!   `Last-Event-ID`, to any replica, first gets what it missed (up to [`RESUME_WINDOW`] events),
//!   then the live events; further back, or an id it does not own, it gets `event: resync` and
//!   reloads its list.
//!
//! `GET /api/messages/events` streams the requester's team's events as `text/event-stream`:
//!
//! ```text
//! retry: 3000
//! event: ready
//! data: {"resumed":false}
//!
//! id: 812
//! event: message
//! data: {"sid":"SM…","change":"status","status":"delivered","errorCode":null,…}
//!
//! : heartbeat
//! ```
//!
//! Publishing never waits: a stream that falls behind by more than the channel's capacity loses
//! the oldest events and is sent `event: resync`. Events of other teams never leave the server on
//! another team's stream.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use actix_web::http::header;
use actix_web::web::Bytes;
use actix_web::{HttpRequest, HttpResponse, web};
use async_trait::async_trait;
use futures::Stream;
use serde::Serialize;
use smsdesk_domain::changes::{LogPosition, LoggedChange};
use smsdesk_domain::ports::{ChangeLog, RepositoryError};
use smsdesk_domain::{DeliveryError, MessageSid, MessageStatus, ObservationSource, TeamId};
use tokio::sync::{Notify, broadcast};

use crate::auth::Authenticated;
use crate::error::{ApiError, ErrorCode, store_error};
use crate::query::QueryParams;
use crate::state::WebState;

/// How often an idle stream sends a comment, so proxies and the browser keep it open and a dead
/// peer is noticed.
pub const HEARTBEAT_PERIOD: Duration = Duration::from_secs(15);

/// How often the follower reads the log with no doorbell rung: the bound on how late a change
/// can be when its notification was lost (or, on PostgreSQL, when an older transaction was still
/// open as it committed).
pub const POLL_PERIOD: Duration = Duration::from_millis(250);

/// The most events a reconnecting client is sent from the log; further behind, it is told to
/// resync.
pub const RESUME_WINDOW: usize = 1000;

/// Changes the follower reads from the log per query.
const READ_BATCH: usize = 500;

/// Events buffered per stream before the slowest ones start losing the oldest.
const CHANNEL_CAPACITY: usize = 1024;

/// Live streams allowed at once per process; more are refused with 503 so a misbehaving client
/// cannot hold every connection.
const MAX_SUBSCRIBERS: usize = 2048;

/// What kind of change an event reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum EventChange {
    /// A message was stored (sent or received).
    Created,
    /// A stored message's status (or error) changed.
    Status,
}

/// One change to one message, as the page receives it (camelCase JSON, team id and log position
/// withheld; the position's id is the SSE `id:`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageEvent {
    /// Where the change stands in the log.
    #[serde(skip)]
    pub position: LogPosition,
    /// The team the message belongs to; only that team's streams see the event.
    #[serde(skip)]
    pub team_id: TeamId,
    /// The message's SID.
    pub sid: String,
    /// Created or changed.
    pub change: EventChange,
    /// The status now.
    pub status: String,
    /// Twilio's error code now, for failures.
    pub error_code: Option<u32>,
    /// Twilio's error text now, for failures.
    pub error_message: Option<String>,
    /// The human explanation of `error_code`.
    pub error_reason: Option<String>,
    /// `deliveryUnknown` when this change declared the message stuck; `null` otherwise (any
    /// other change clears it).
    pub status_reason: Option<String>,
}

impl MessageEvent {
    /// The event for a change read from the log.
    pub fn from_logged(change: &LoggedChange) -> Self {
        let kind = if change.created_the_message() {
            EventChange::Created
        } else {
            EventChange::Status
        };
        let mut event = Self::new(
            change.team_id,
            kind,
            &change.sid,
            &change.state.status,
            change.state.error_code,
            change.state.error_message.clone(),
        );
        event.position = change.position;
        event.status_reason = (change.source == ObservationSource::Timeout)
            .then(|| crate::dto::DELIVERY_UNKNOWN.to_owned());
        event
    }

    /// The event for a message whose status is now `status` (at the log's start position).
    pub fn status_changed(
        team_id: TeamId,
        sid: &MessageSid,
        status: &MessageStatus,
        error_code: Option<u32>,
        error_message: Option<String>,
    ) -> Self {
        Self::new(
            team_id,
            EventChange::Status,
            sid,
            status,
            error_code,
            error_message,
        )
    }

    fn new(
        team_id: TeamId,
        change: EventChange,
        sid: &MessageSid,
        status: &MessageStatus,
        error_code: Option<u32>,
        error_message: Option<String>,
    ) -> Self {
        Self {
            position: LogPosition::START,
            team_id,
            sid: sid.to_string(),
            change,
            status: status.as_str().to_owned(),
            error_code,
            error_message,
            error_reason: error_code.map(|code| DeliveryError::explain(code).reason.to_owned()),
            status_reason: None,
        }
    }

    /// The SSE frame: `id:` (when the event has a log position), `event: message`, the JSON.
    fn frame(&self) -> Option<Bytes> {
        let json = serde_json::to_string(self).ok()?;
        Some(Bytes::from(if self.position == LogPosition::START {
            format!("event: message\ndata: {json}\n\n")
        } else {
            format!("id: {}\nevent: message\ndata: {json}\n\n", self.position.id)
        }))
    }
}

/// How the other replicas of a fleet learn that this one committed changes, and how this one
/// hears of theirs (PostgreSQL `NOTIFY`/`LISTEN` in the app). Only a doorbell: the log is read
/// for the changes themselves.
#[async_trait]
pub trait FleetDoorbell: Send + Sync {
    /// Tells every replica (this one included) that the log has news.
    ///
    /// # Errors
    /// [`RepositoryError`] when the database cannot be reached; the others' polls catch up.
    async fn announce(&self) -> Result<(), RepositoryError>;

    /// Calls `on_news` for every announcement from any replica, for as long as the process
    /// runs, reconnecting as needed (and calling `on_news` after a reconnect, since
    /// announcements may have been missed meanwhile).
    async fn listen(&self, on_news: Box<dyn Fn() + Send + Sync>);
}

/// The process's live events: per-team channels fed by the log follower. Cheap to clone; every
/// clone shares the same channels and doorbell.
#[derive(Clone, Default)]
pub struct MessageEvents {
    inner: Arc<EventsInner>,
}

#[derive(Default)]
struct EventsInner {
    teams: Mutex<HashMap<TeamId, broadcast::Sender<MessageEvent>>>,
    /// The last log position the follower published.
    followed_until: Mutex<LogPosition>,
    /// Something may be new in the log.
    doorbell: Notify,
    /// This process committed something the fleet should hear of.
    announcements: Notify,
}

/// A lock that a panic elsewhere never poisons for the streams.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl std::fmt::Debug for MessageEvents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MessageEvents")
            .field("subscribers", &self.subscribers())
            .finish()
    }
}

impl MessageEvents {
    /// No streams yet, and no follower: start one with [`MessageEvents::spawn_follower`].
    pub fn new() -> Self {
        Self::default()
    }

    fn teams(&self) -> MutexGuard<'_, HashMap<TeamId, broadcast::Sender<MessageEvent>>> {
        lock(&self.inner.teams)
    }

    /// Says that this process committed a change: the follower reads the log now, and the fleet
    /// doorbell (if any) tells the other replicas. Never waits; rings coalesce.
    pub fn ring(&self) {
        self.inner.doorbell.notify_one();
        self.inner.announcements.notify_one();
    }

    /// The last log position the follower has published (or started from).
    pub fn followed_until(&self) -> LogPosition {
        *lock(&self.inner.followed_until)
    }

    fn set_followed_until(&self, position: LogPosition) {
        *lock(&self.inner.followed_until) = position;
    }

    /// Returns when the doorbell rings (at once if it rang since the last call).
    pub(crate) async fn rung(&self) {
        self.inner.doorbell.notified().await;
    }

    /// Sends `event` to its team's open streams without waiting; with none, it is dropped.
    pub fn publish(&self, event: MessageEvent) {
        let mut teams = self.teams();
        if let Some(sender) = teams.get(&event.team_id) {
            let team = event.team_id;
            // An error only means every stream of the team has gone: forget its channel.
            if sender.send(event).is_err() {
                teams.remove(&team);
            }
        }
    }

    /// A new subscription to `team`'s events published from now on.
    pub fn subscribe(&self, team: TeamId) -> broadcast::Receiver<MessageEvent> {
        self.teams()
            .entry(team)
            .or_insert_with(|| broadcast::channel(CHANNEL_CAPACITY).0)
            .subscribe()
    }

    /// How many streams are open, over all teams.
    pub fn subscribers(&self) -> usize {
        self.teams()
            .values()
            .map(broadcast::Sender::receiver_count)
            .sum()
    }

    /// Spawns, on the current tokio runtime, the follower: from `from` (the log's
    /// [`head`](ChangeLog::head), read before serving, so no change committed meanwhile is
    /// missed), it reads every change after its last position whenever a doorbell rings or [`POLL_PERIOD`]
    /// passes, and publishes each to its team's streams. With `fleet`, also tells the other
    /// replicas of this process's changes and listens for theirs. Runs until the runtime stops.
    pub fn spawn_follower(
        &self,
        log: Arc<dyn ChangeLog>,
        fleet: Option<Arc<dyn FleetDoorbell>>,
        from: LogPosition,
    ) -> tokio::task::JoinHandle<()> {
        let events = self.clone();
        // One task for the three loops, so aborting the handle stops them all.
        tokio::spawn(async move {
            let follow = events.follow_forever(log.as_ref(), from);
            match fleet {
                None => follow.await,
                Some(fleet) => {
                    let heard = events.clone();
                    let listen = fleet.listen(Box::new(move || heard.inner.doorbell.notify_one()));
                    let announce = async {
                        loop {
                            events.inner.announcements.notified().await;
                            if let Err(error) = fleet.announce().await {
                                tracing::warn!(%error, "could not tell the fleet of new changes");
                            }
                        }
                    };
                    futures::join!(follow, listen, announce);
                }
            }
        })
    }

    /// After `position`, publishes every change as it becomes readable.
    async fn follow_forever(&self, log: &dyn ChangeLog, mut position: LogPosition) {
        self.set_followed_until(position);
        loop {
            position = self.follow(log, position).await;
            self.set_followed_until(position);
            let _ = tokio::time::timeout(POLL_PERIOD, self.rung()).await;
        }
    }

    /// Publishes every change after `position` and returns the last one published (or
    /// `position`, when the log has nothing new or cannot be read).
    async fn follow(&self, log: &dyn ChangeLog, mut position: LogPosition) -> LogPosition {
        loop {
            match log.read_after(position, None, READ_BATCH).await {
                Ok(changes) => {
                    for change in &changes {
                        self.publish(MessageEvent::from_logged(change));
                        position = change.position;
                    }
                    if changes.len() < READ_BATCH {
                        return position;
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, "cannot read the change log; retrying at the next poll");
                    return position;
                }
            }
        }
    }
}

/// What a reconnecting client missed, read from the log before its stream goes live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Resume {
    /// A new stream: nothing to replay.
    Fresh,
    /// The events after the client's last one, oldest first, and the position they end at.
    Replay(Vec<MessageEvent>, LogPosition),
    /// The client's last event is unknown to this team's log, or it missed more than
    /// [`RESUME_WINDOW`]: it must reload.
    Resync,
}

impl Resume {
    /// What `team`'s client, whose last event was `last_event_id`, missed.
    pub(crate) async fn read(
        log: &dyn ChangeLog,
        team: TeamId,
        last_event_id: Option<i64>,
    ) -> Result<Self, RepositoryError> {
        let Some(id) = last_event_id else {
            return Ok(Self::Fresh);
        };
        let Some(from) = log.position_of(team, id).await? else {
            return Ok(Self::Resync);
        };
        let missed = log.read_after(from, Some(team), RESUME_WINDOW + 1).await?;
        if missed.len() > RESUME_WINDOW {
            return Ok(Self::Resync);
        }
        let until = missed.last().map_or(from, |change| change.position);
        Ok(Self::Replay(
            missed.iter().map(MessageEvent::from_logged).collect(),
            until,
        ))
    }
}

/// One SSE frame carrying a named event with a JSON payload.
fn frame(event: &str, data: &str) -> Bytes {
    Bytes::from(format!("event: {event}\ndata: {data}\n\n"))
}

/// The stream of one subscriber: `ready`, then what `resume` replays (or `resync`), then
/// `receiver`'s events newer than those, a heartbeat comment after every `heartbeat` of silence,
/// and `resync` when events were lost to lag. Ends when the channel closes; the client going
/// away drops it (and the subscription).
pub(crate) fn event_stream(
    receiver: broadcast::Receiver<MessageEvent>,
    resume: Resume,
    heartbeat: Duration,
) -> impl Stream<Item = Result<Bytes, Infallible>> {
    struct Subscriber {
        receiver: broadcast::Receiver<MessageEvent>,
        /// The last position sent: live events at or before it were replayed already.
        sent_until: LogPosition,
    }
    let (opening, sent_until) = opening_frames(resume);
    let subscriber = Subscriber {
        receiver,
        sent_until,
    };
    let live = futures::stream::unfold(subscriber, move |mut subscriber| async move {
        loop {
            let next = tokio::time::timeout(heartbeat, subscriber.receiver.recv()).await;
            let bytes = match next {
                Err(_elapsed) => Bytes::from_static(b": heartbeat\n\n"),
                Ok(Ok(event))
                    if event.position != LogPosition::START
                        && event.position <= subscriber.sent_until =>
                {
                    continue;
                }
                Ok(Ok(event)) => match event.frame() {
                    Some(bytes) => bytes,
                    None => continue,
                },
                Ok(Err(broadcast::error::RecvError::Lagged(_))) => frame("resync", "{}"),
                Ok(Err(broadcast::error::RecvError::Closed)) => return None,
            };
            return Some((Ok(bytes), subscriber));
        }
    });
    futures::StreamExt::chain(
        futures::stream::iter(opening.into_iter().map(Ok::<Bytes, Infallible>)),
        live,
    )
}

/// The frames a stream opens with, and the position they bring the client to.
fn opening_frames(resume: Resume) -> (Vec<Bytes>, LogPosition) {
    // `retry` tells EventSource-style clients how long to wait before reconnecting.
    let ready = |resumed: bool| {
        Bytes::from(format!(
            "retry: 3000\nevent: ready\ndata: {{\"resumed\":{resumed}}}\n\n"
        ))
    };
    match resume {
        Resume::Fresh => (vec![ready(false)], LogPosition::START),
        Resume::Resync => (
            vec![ready(false), frame("resync", "{}")],
            LogPosition::START,
        ),
        Resume::Replay(events, until) => {
            let mut frames = vec![ready(true)];
            frames.extend(events.iter().filter_map(MessageEvent::frame));
            (frames, until)
        }
    }
}

/// The `Last-Event-ID` a reconnecting client sent, if any.
fn last_event_id(request: &HttpRequest) -> Result<Option<i64>, ApiError> {
    let Some(value) = request.headers().get("last-event-id") else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .and_then(|text| text.trim().parse::<i64>().ok())
        .filter(|id| *id > 0)
        .map(Some)
        .ok_or_else(|| {
            ApiError::new(
                actix_web::http::StatusCode::BAD_REQUEST,
                ErrorCode::BadRequest,
                "Last-Event-ID must be the id of an event this service sent (a positive integer)",
            )
        })
}

/// `GET /api/messages/events`: the requester's team's live events, resumed after
/// `Last-Event-ID` when the client sends one.
pub(crate) async fn message_events(
    state: web::Data<WebState>,
    Authenticated(requester): Authenticated,
    request: HttpRequest,
    query: web::Query<Vec<(String, String)>>,
) -> Result<HttpResponse, ApiError> {
    QueryParams::new(query.into_inner(), &[])?;
    let last_event_id = last_event_id(&request)?;
    let events = state.events();
    if events.subscribers() >= MAX_SUBSCRIBERS {
        return Err(ApiError::new(
            actix_web::http::StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::TooManyStreams,
            "too many live event streams are open; poll GET /api/messages instead",
        ));
    }
    // Subscribed before the log is read, so nothing falls between the replay and the live events.
    let receiver = events.subscribe(requester.team_id);
    let resume = Resume::read(
        state.change_log().as_ref(),
        requester.team_id,
        last_event_id,
    )
    .await
    .map_err(|error| store_error(&error))?;
    Ok(HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        // Proxies such as nginx would otherwise buffer the stream.
        .insert_header(("x-accel-buffering", "no"))
        .streaming(event_stream(receiver, resume, HEARTBEAT_PERIOD)))
}

#[cfg(test)]
mod tests {
    use futures::StreamExt;
    use smsdesk_domain::fakes::InMemoryStore;
    use smsdesk_domain::ports::{MessageRepository, ObservationWrite, StateChange};
    use smsdesk_domain::{
        AccountSid, Address, DeliveryState, Direction, NewMessage, ObservationSource,
        StatusObservation,
    };

    use super::*;

    fn team(id: i64) -> TeamId {
        TeamId::new(id).expect("team id")
    }

    fn sid(number: u32) -> MessageSid {
        MessageSid::parse(&format!("SM{number:032x}")).expect("sid")
    }

    fn text(chunk: Option<Result<Bytes, Infallible>>) -> String {
        match chunk {
            Some(Ok(bytes)) => String::from_utf8_lossy(&bytes).into_owned(),
            Some(Err(never)) => match never {},
            None => "<end>".to_owned(),
        }
    }

    fn observation(status: MessageStatus) -> StatusObservation {
        StatusObservation {
            state: DeliveryState::new(status),
            source: ObservationSource::Callback,
            observed_at: chrono::Utc::now(),
        }
    }

    async fn stored(store: &InMemoryStore, team_id: TeamId, number: u32) {
        store
            .insert(NewMessage {
                sid: sid(number),
                team_id,
                account_sid: AccountSid::parse("AC0123456789abcdef0123456789abcdef")
                    .expect("account"),
                direction: Direction::OutboundApi,
                from: Address::parse("+15005550006").expect("from"),
                to: Address::parse("+15005550001").expect("to"),
                body: "hi".into(),
                first_observation: StatusObservation {
                    source: ObservationSource::Send,
                    ..observation(MessageStatus::Queued)
                },
                created_at: chrono::Utc::now(),
                reference: None,
            })
            .await
            .expect("stored");
    }

    async fn advance(store: &InMemoryStore, team_id: TeamId, number: u32, to: MessageStatus) {
        let current = store
            .find(team_id, &sid(number))
            .await
            .expect("store")
            .expect("message");
        store
            .apply_observations(
                team_id,
                vec![ObservationWrite {
                    sid: sid(number),
                    observation: observation(to.clone()),
                    change: Some(StateChange {
                        expected_status: current.delivery.status,
                        expected_updated_at: Some(current.updated_at),
                        next: DeliveryState::new(to),
                    }),
                }],
            )
            .await
            .expect("written");
    }

    #[tokio::test(start_paused = true)]
    async fn a_stream_says_ready_then_carries_its_teams_events_only() {
        let events = MessageEvents::new();
        let stream = event_stream(events.subscribe(team(1)), Resume::Fresh, HEARTBEAT_PERIOD);
        let mut stream = std::pin::pin!(stream);
        assert!(text(stream.next().await).contains("event: ready"));
        let _other = events.subscribe(team(2));
        events.publish(MessageEvent::status_changed(
            team(2),
            &sid(1),
            &MessageStatus::Sent,
            None,
            None,
        ));
        events.publish(MessageEvent::status_changed(
            team(1),
            &sid(2),
            &MessageStatus::Undelivered,
            Some(30003),
            Some("Unreachable".into()),
        ));
        let chunk = text(stream.next().await);
        assert!(chunk.starts_with("event: message\ndata: {"), "{chunk}");
        assert!(
            chunk.contains(&sid(2).to_string()) && !chunk.contains(&sid(1).to_string()),
            "another team's event is never sent: {chunk}"
        );
        assert!(
            chunk.contains("\"status\":\"undelivered\"")
                && chunk.contains("\"errorCode\":30003")
                && chunk.contains("Unreachable destination handset"),
            "the event carries the status, code and human reason: {chunk}"
        );
        assert!(!chunk.contains("teamId"), "the team id stays on the server");
    }

    #[test]
    fn each_team_has_its_own_channel_so_a_stream_never_wakes_for_another_team() {
        let events = MessageEvents::new();
        let mut first = events.subscribe(team(1));
        let _second = events.subscribe(team(2));
        events.publish(MessageEvent::status_changed(
            team(2),
            &sid(1),
            &MessageStatus::Sent,
            None,
            None,
        ));
        assert!(
            matches!(first.try_recv(), Err(broadcast::error::TryRecvError::Empty)),
            "team 1's channel never saw team 2's event"
        );
        assert_eq!(events.subscribers(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_stream_sends_a_heartbeat_comment_every_fifteen_seconds() {
        let events = MessageEvents::new();
        let stream = event_stream(events.subscribe(team(1)), Resume::Fresh, HEARTBEAT_PERIOD);
        let mut stream = std::pin::pin!(stream);
        let _ready = stream.next().await;
        let started = tokio::time::Instant::now();
        assert_eq!(text(stream.next().await), ": heartbeat\n\n");
        assert_eq!(
            started.elapsed(),
            HEARTBEAT_PERIOD,
            "paused time auto-advances"
        );
        assert_eq!(text(stream.next().await), ": heartbeat\n\n");
    }

    #[tokio::test(start_paused = true)]
    async fn a_lagging_subscriber_is_told_to_resync_and_publishing_never_blocks() {
        let events = MessageEvents::new();
        let stream = event_stream(events.subscribe(team(1)), Resume::Fresh, HEARTBEAT_PERIOD);
        let mut stream = std::pin::pin!(stream);
        let _ready = stream.next().await;
        for number in 0..(CHANNEL_CAPACITY as u32 + 10) {
            events.publish(MessageEvent::status_changed(
                team(1),
                &sid(number),
                &MessageStatus::Sent,
                None,
                None,
            ));
        }
        assert!(text(stream.next().await).starts_with("event: resync"));
        assert!(
            text(stream.next().await).contains(&sid(10).to_string()),
            "after the resync the oldest kept event follows"
        );
    }

    #[tokio::test]
    async fn a_dropped_stream_unsubscribes_and_a_closed_channel_ends_the_stream() {
        let events = MessageEvents::new();
        let stream = event_stream(events.subscribe(team(1)), Resume::Fresh, HEARTBEAT_PERIOD);
        assert_eq!(events.subscribers(), 1);
        drop(stream);
        assert_eq!(
            events.subscribers(),
            0,
            "a client going away frees its slot"
        );
        let (sender, receiver) = broadcast::channel(4);
        let stream = event_stream(receiver, Resume::Fresh, HEARTBEAT_PERIOD);
        let mut stream = std::pin::pin!(stream);
        let _ready = stream.next().await;
        drop(sender);
        assert_eq!(text(stream.next().await), "<end>");
    }

    #[tokio::test(start_paused = true)]
    async fn the_follower_publishes_logged_changes_with_their_ids_when_rung() {
        let store = InMemoryStore::new();
        stored(&store, team(1), 1).await;
        let events = MessageEvents::new();
        let head = store.head().await.expect("head");
        let follower = events.spawn_follower(Arc::new(store.clone()), None, head);
        let stream = event_stream(events.subscribe(team(1)), Resume::Fresh, HEARTBEAT_PERIOD);
        let mut stream = std::pin::pin!(stream);
        let _ready = stream.next().await;

        stored(&store, team(2), 2).await;
        advance(&store, team(1), 1, MessageStatus::Delivered).await;
        events.ring();
        let chunk = text(stream.next().await);
        assert!(
            chunk.starts_with("id: 3\nevent: message\n")
                && chunk.contains("\"change\":\"status\"")
                && chunk.contains("\"status\":\"delivered\""),
            "the third history row, team 1's, with its id: {chunk}"
        );
        stored(&store, team(1), 3).await;
        // No ring this time: the poll finds it.
        let chunk = text(stream.next().await);
        assert!(
            chunk.starts_with("id: 4\n") && chunk.contains("\"change\":\"created\""),
            "{chunk}"
        );
        follower.abort();
    }

    #[tokio::test(start_paused = true)]
    async fn a_resumed_stream_replays_what_it_missed_then_skips_what_it_already_has() {
        let store = InMemoryStore::new();
        for number in 1..=3 {
            stored(&store, team(1), number).await;
        }
        stored(&store, team(2), 9).await;
        advance(&store, team(1), 2, MessageStatus::Sent).await;
        // Ids: 1, 2, 3 (team 1 created), 4 (team 2), 5 (team 1's message 2 sent).
        let resume = Resume::read(&store, team(1), Some(1)).await.expect("read");
        let Resume::Replay(missed, until) = &resume else {
            panic!("a known id resumes: {resume:?}");
        };
        let ids: Vec<i64> = missed.iter().map(|event| event.position.id).collect();
        assert_eq!(ids, vec![2, 3, 5], "team 1's events after id 1 only");
        assert_eq!(until.id, 5);

        let events = MessageEvents::new();
        let stream = event_stream(events.subscribe(team(1)), resume.clone(), HEARTBEAT_PERIOD);
        let mut stream = std::pin::pin!(stream);
        assert!(text(stream.next().await).contains("{\"resumed\":true}"));
        for id in [2, 3, 5] {
            assert!(text(stream.next().await).starts_with(&format!("id: {id}\n")));
        }
        // The follower publishes id 5 again (it was read after the subscription): skipped.
        let changes = store
            .read_after(LogPosition { epoch: 0, id: 4 }, None, 10)
            .await
            .expect("read");
        events.publish(MessageEvent::from_logged(&changes[0]));
        advance(&store, team(1), 3, MessageStatus::Sent).await;
        let newer = store
            .read_after(*until, Some(team(1)), 10)
            .await
            .expect("read");
        events.publish(MessageEvent::from_logged(&newer[0]));
        assert!(
            text(stream.next().await).starts_with("id: 6\n"),
            "id 5 is not sent twice; id 6 follows"
        );
    }

    #[tokio::test]
    async fn an_unknown_or_foreign_event_id_or_too_long_an_absence_means_resync() {
        let store = InMemoryStore::new();
        stored(&store, team(1), 1).await;
        stored(&store, team(2), 2).await;
        assert_eq!(
            Resume::read(&store, team(1), Some(2)).await.expect("read"),
            Resume::Resync,
            "id 2 is team 2's: unknown to team 1"
        );
        assert_eq!(
            Resume::read(&store, team(1), Some(99)).await.expect("read"),
            Resume::Resync
        );
        for number in 0..=(RESUME_WINDOW as u32) {
            stored(&store, team(1), 100 + number).await;
        }
        assert_eq!(
            Resume::read(&store, team(1), Some(1)).await.expect("read"),
            Resume::Resync,
            "more than the window missed"
        );
        assert_eq!(
            Resume::read(&store, team(1), None).await.expect("read"),
            Resume::Fresh
        );
        let (_sender, receiver) = broadcast::channel(4);
        let stream = event_stream(receiver, Resume::Resync, HEARTBEAT_PERIOD);
        let mut stream = std::pin::pin!(stream);
        assert!(text(stream.next().await).contains("{\"resumed\":false}"));
        assert!(text(stream.next().await).starts_with("event: resync"));
    }
}
