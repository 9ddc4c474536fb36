//! Refreshing messages through the domain alone, with the in-memory fakes standing in for the
//! database and Twilio. Run with
//! `cargo run -p smsdesk-domain --features fakes --example refresh_in_memory`.

use std::sync::Arc;

use futures::executor::block_on;
use smsdesk_domain::fakes::{FakeSmsProvider, InMemoryStore, ManualClock};
use smsdesk_domain::ports::{IntegrationRepository, MessageRepository, NewIntegration, Sender};
use smsdesk_domain::secrecy::SecretString;
use smsdesk_domain::services::RefreshStatus;
use smsdesk_domain::{
    AccountSid, Address, DeliveryState, Direction, MessageSid, MessageStatus, NewMessage,
    ObservationSource, PhoneNumber, Plan, RefreshPolicy, RefreshWindow, Requester, Role,
    StatusObservation, TeamId, UserId,
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    block_on(run())
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let store = InMemoryStore::new();
    let twilio = FakeSmsProvider::new();
    let clock = ManualClock::new(chrono::Utc::now());
    let team = TeamId::new(1)?;
    let account = AccountSid::parse("AC0123456789abcdef0123456789abcdef")?;

    store
        .upsert(
            team,
            NewIntegration {
                account_sid: account.clone(),
                auth_token: SecretString::from("auth-token"),
                api_key: None,
                sender: Sender::Number(PhoneNumber::parse("+15005550006")?),
            },
        )
        .await?;

    // Two messages we sent a few minutes ago; Twilio has since delivered one and failed the other.
    let statuses = [
        (MessageStatus::Delivered, None),
        (MessageStatus::Undelivered, Some(30003)),
    ];
    for (n, (now_at_twilio, error_code)) in statuses.into_iter().enumerate() {
        let sid = MessageSid::parse(&format!("SM{:032x}", n + 1))?;
        let created_at = clock.now_minus_minutes(5);
        store
            .insert(NewMessage {
                sid: sid.clone(),
                team_id: team,
                account_sid: account.clone(),
                direction: Direction::OutboundApi,
                from: Address::parse("+15005550006")?,
                to: Address::parse("+14155550100")?,
                body: "Your code is 123456".into(),
                first_observation: StatusObservation {
                    state: DeliveryState::new(MessageStatus::Sent),
                    source: ObservationSource::Send,
                    observed_at: created_at,
                },
                created_at,
                reference: None,
            })
            .await?;
        let mut state = DeliveryState::new(now_at_twilio);
        state.error_code = error_code;
        twilio.set_state(&sid, state);
    }

    let refresh = RefreshStatus::new(
        Arc::new(store.clone()),
        Arc::new(store.clone()),
        Arc::new(twilio.clone()),
        Arc::new(store.clone()),
        Arc::new(clock.clone()),
        RefreshPolicy::default(),
    );
    let me = Requester {
        team_id: team,
        user_id: UserId::new(1)?,
        plan: Plan::Pro,
        role: Role::Member,
    };
    let report = refresh
        .refresh_recent(&me, RefreshWindow::default())
        .await?;
    for outcome in &report.outcomes {
        println!(
            "{}: {} -> {} ({:?}, error {:?})",
            outcome.sid,
            outcome.previous_status,
            outcome.new_status,
            outcome.result,
            outcome.error_code
        );
    }
    println!("summary: {:?}", report.summary);
    Ok(())
}

/// A small convenience for the example.
trait MinutesAgo {
    fn now_minus_minutes(&self, minutes: i64) -> smsdesk_domain::Timestamp;
}

impl MinutesAgo for ManualClock {
    fn now_minus_minutes(&self, minutes: i64) -> smsdesk_domain::Timestamp {
        use smsdesk_domain::ports::Clock;
        self.now() - chrono::Duration::minutes(minutes)
    }
}
