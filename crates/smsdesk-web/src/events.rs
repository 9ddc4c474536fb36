//! Live message events: what changed, pushed to the SMS page as Server-Sent Events.
//!
//! Every change the domain commits (a send, a refresh, a status callback, an inbound SMS) reaches
//! [`crate::consequences::ServiceConsequences`], which [`publish`](MessageEvents::publish)es a
//! [`MessageEvent`] on one `tokio::sync::broadcast` channel per process; no handler publishes. `GET /api/messages/events` subscribes and
//! streams the requester's team's events as `text/event-stream`:
//!
//! ```text
//! event: ready
//! data: {}
//!
//! event: message
//! data: {"sid":"SM…","change":"status","status":"delivered","errorCode":null,…}
//!
//! : heartbeat
//! ```
//!
//! Publishing never waits: a subscriber that falls behind by more than the channel's capacity
//! loses the oldest events and is sent `event: resync` so it reloads its list instead. Events of
//! other teams never leave the server on another team's stream.

use std::convert::Infallible;
use std::time::Duration;

use actix_web::http::header;
use actix_web::web::Bytes;
use actix_web::{HttpResponse, web};
use futures::Stream;
use serde::Serialize;
use smsdesk_domain::changes::CommittedChange;
use smsdesk_domain::{DeliveryError, MessageSid, MessageStatus, TeamId};
use tokio::sync::broadcast;

use crate::auth::Authenticated;
use crate::error::{ApiError, ErrorCode};
use crate::query::QueryParams;
use crate::state::WebState;

/// How often an idle stream sends a comment, so proxies and the browser keep it open and a dead
/// peer is noticed.
pub const HEARTBEAT_PERIOD: Duration = Duration::from_secs(15);

/// Events buffered per subscriber before the slowest ones start losing the oldest.
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

/// One change to one message, as the page receives it (camelCase JSON, team id withheld).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageEvent {
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
}

impl MessageEvent {
    /// The event for a change the domain committed.
    pub fn from_change(change: &CommittedChange, kind: EventChange) -> Self {
        Self::new(
            change.team_id,
            kind,
            &change.sid,
            &change.state.status,
            change.state.error_code,
            change.state.error_message.clone(),
        )
    }

    /// The event for a message whose status is now `status`.
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
            team_id,
            sid: sid.to_string(),
            change,
            status: status.as_str().to_owned(),
            error_code,
            error_message,
            error_reason: error_code.map(|code| DeliveryError::explain(code).reason.to_owned()),
        }
    }
}

/// The process's event channel. Cheap to clone; every clone publishes to the same subscribers.
#[derive(Clone)]
pub struct MessageEvents {
    sender: broadcast::Sender<MessageEvent>,
}

impl Default for MessageEvents {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for MessageEvents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MessageEvents")
            .field("subscribers", &self.subscribers())
            .finish()
    }
}

impl MessageEvents {
    /// A channel with no subscribers.
    pub fn new() -> Self {
        let (sender, _) = broadcast::channel(CHANNEL_CAPACITY);
        Self { sender }
    }

    /// Sends `event` to every current subscriber without waiting; with none, it is dropped.
    pub fn publish(&self, event: MessageEvent) {
        // An error only means nobody is listening, which is normal.
        let _ = self.sender.send(event);
    }

    /// A new subscription, receiving events published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<MessageEvent> {
        self.sender.subscribe()
    }

    /// How many subscriptions are open.
    pub fn subscribers(&self) -> usize {
        self.sender.receiver_count()
    }
}

/// One SSE frame carrying a named event with a JSON payload.
fn frame(event: &str, data: &str) -> Bytes {
    Bytes::from(format!("event: {event}\ndata: {data}\n\n"))
}

/// The stream of one subscriber: a `ready` event, then `team`'s events as they come, a heartbeat
/// comment after every `heartbeat` of silence, and `resync` when events were lost to lag. Ends
/// when the channel closes; the client going away drops it (and the subscription).
pub(crate) fn event_stream(
    receiver: broadcast::Receiver<MessageEvent>,
    team: TeamId,
    heartbeat: Duration,
) -> impl Stream<Item = Result<Bytes, Infallible>> {
    struct Subscriber {
        receiver: broadcast::Receiver<MessageEvent>,
        started: bool,
    }
    let subscriber = Subscriber {
        receiver,
        started: false,
    };
    futures::stream::unfold(subscriber, move |mut subscriber| async move {
        if !subscriber.started {
            subscriber.started = true;
            // `retry` tells EventSource-style clients how long to wait before reconnecting.
            return Some((
                Ok(Bytes::from_static(
                    b"retry: 3000\nevent: ready\ndata: {}\n\n",
                )),
                subscriber,
            ));
        }
        loop {
            let next = tokio::time::timeout(heartbeat, subscriber.receiver.recv()).await;
            let bytes = match next {
                Err(_elapsed) => Bytes::from_static(b": heartbeat\n\n"),
                Ok(Ok(event)) if event.team_id == team => match serde_json::to_string(&event) {
                    Ok(json) => frame("message", &json),
                    Err(_) => continue,
                },
                Ok(Ok(_other_team)) => continue,
                Ok(Err(broadcast::error::RecvError::Lagged(_))) => frame("resync", "{}"),
                Ok(Err(broadcast::error::RecvError::Closed)) => return None,
            };
            return Some((Ok(bytes), subscriber));
        }
    })
}

/// `GET /api/messages/events`: the requester's team's live events.
pub(crate) async fn message_events(
    state: web::Data<WebState>,
    Authenticated(requester): Authenticated,
    query: web::Query<Vec<(String, String)>>,
) -> Result<HttpResponse, ApiError> {
    QueryParams::new(query.into_inner(), &[])?;
    let events = state.events();
    if events.subscribers() >= MAX_SUBSCRIBERS {
        return Err(ApiError::new(
            actix_web::http::StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::TooManyStreams,
            "too many live event streams are open; poll GET /api/messages instead",
        ));
    }
    let stream = event_stream(events.subscribe(), requester.team_id, HEARTBEAT_PERIOD);
    Ok(HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        // Proxies such as nginx would otherwise buffer the stream.
        .insert_header(("x-accel-buffering", "no"))
        .streaming(stream))
}

#[cfg(test)]
mod tests {
    use futures::StreamExt;

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

    #[tokio::test(start_paused = true)]
    async fn a_stream_says_ready_then_carries_its_teams_events_only() {
        let events = MessageEvents::new();
        let stream = event_stream(events.subscribe(), team(1), HEARTBEAT_PERIOD);
        let mut stream = std::pin::pin!(stream);
        assert!(text(stream.next().await).contains("event: ready"));
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

    #[tokio::test(start_paused = true)]
    async fn an_idle_stream_sends_a_heartbeat_comment_every_fifteen_seconds() {
        let events = MessageEvents::new();
        let stream = event_stream(events.subscribe(), team(1), HEARTBEAT_PERIOD);
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
        let stream = event_stream(events.subscribe(), team(1), HEARTBEAT_PERIOD);
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
    async fn a_closed_channel_ends_the_stream_and_a_dropped_stream_unsubscribes() {
        let events = MessageEvents::new();
        let stream = event_stream(events.subscribe(), team(1), HEARTBEAT_PERIOD);
        assert_eq!(events.subscribers(), 1);
        drop(stream);
        assert_eq!(
            events.subscribers(),
            0,
            "a client going away frees its slot"
        );
        let stream = event_stream(events.subscribe(), team(1), HEARTBEAT_PERIOD);
        let mut stream = std::pin::pin!(stream);
        let _ready = stream.next().await;
        drop(events);
        assert_eq!(text(stream.next().await), "<end>");
    }
}
