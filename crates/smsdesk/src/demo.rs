//! The demo a newcomer sees on a first development start: a Pro team with an admin user, an API
//! key, a Twilio integration on the built-in simulator, and a few messages on their way to
//! delivered.
//!
//! The key is kept in `<data-dir>/demo-api-key` (owner-only) so later starts can print it again;
//! the database itself stores only its hash.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use smsdesk_domain::ports::{Clock, IntegrationRepository, NewIntegration, Sender, SmsProvider};
use smsdesk_domain::secrecy::{ExposeSecret, SecretString};
use smsdesk_domain::services::{SendRequest, SendSms};
use smsdesk_domain::{AccountSid, PhoneNumber, Plan, Requester, Role};
use smsdesk_store::Store;
use smsdesk_twilio_sim::{SimAccount, SimHandle};

use crate::startup::write_private;

const DEMO_KEY_FILE: &str = "demo-api-key";
const DEMO_SENDER: &str = "+15005550006";
const DEMO_MESSAGES: [(&str, &str); 3] = [
    ("+14155550101", "Your verification code is 482913."),
    ("+14155550102", "Your order #1042 has shipped."),
    (
        "+14155550103",
        "Reminder: your appointment is tomorrow at 10:00.",
    ),
];

/// Every stored integration as a simulator account, so teams' stored credentials work against the
/// built-in simulator after a restart.
///
/// # Errors
/// When the store cannot be read.
pub async fn stored_accounts(store: &Store) -> anyhow::Result<Vec<SimAccount>> {
    let mut accounts = Vec::new();
    for team in store.list_teams().await.context("listing teams")? {
        match store.for_team(team.id).await {
            Ok(Some(integration)) => accounts.push(SimAccount::new(
                integration.credentials.account_sid.clone(),
                integration.auth_token.expose_secret(),
            )),
            Ok(None) => {}
            Err(error) => tracing::warn!(team = %team.id, %error, "integration unreadable"),
        }
    }
    Ok(accounts)
}

/// Creates the demo team on a first start (no team yet) and returns its key; on later starts
/// returns the key kept in the data directory, if any.
///
/// # Errors
/// When the store fails or the key file cannot be written.
pub async fn ensure_demo(
    store: &Store,
    sim: &SimHandle,
    data_dir: &Path,
    provider: Arc<dyn SmsProvider>,
    clock: Arc<dyn Clock>,
    public_base_url: Option<String>,
) -> anyhow::Result<Option<String>> {
    let key_path = data_dir.join(DEMO_KEY_FILE);
    if !store
        .list_teams()
        .await
        .context("listing teams")?
        .is_empty()
    {
        return Ok(std::fs::read_to_string(&key_path)
            .ok()
            .map(|key| key.trim().to_owned()));
    }

    let team = store.create_team("Demo team", Plan::Pro).await?;
    let user = store
        .create_user(team.id, "Demo admin", "demo@smsdesk.invalid", Role::Admin)
        .await?;
    let issued = store.create_api_key(user.id).await?;

    let account = AccountSid::parse(&format!("AC{:032x}", rand::random::<u128>()))?;
    let token = format!("{:032x}", rand::random::<u128>());
    sim.add_account(SimAccount::new(account.clone(), token.clone()));
    store
        .upsert(
            team.id,
            NewIntegration {
                account_sid: account,
                auth_token: SecretString::from(token),
                api_key: None,
                sender: Sender::Number(PhoneNumber::parse(DEMO_SENDER)?),
            },
        )
        .await
        .context("storing the demo integration")?;

    let shared = Arc::new(store.clone());
    let mut send = SendSms::new(shared.clone(), shared.clone(), shared, provider, clock);
    if let Some(base) = &public_base_url {
        send = send.with_public_base_url(base);
    }
    let requester = Requester {
        team_id: team.id,
        user_id: user.id,
        plan: Plan::Pro,
        role: Role::Admin,
    };
    for (to, body) in DEMO_MESSAGES {
        let request = SendRequest {
            to: PhoneNumber::parse(to)?,
            body: body.to_owned(),
            sender: None,
            reference: None,
        };
        if let Err(error) = send.send(&requester, request).await {
            tracing::warn!(%error, "a demo message could not be sent");
        }
    }

    let key = issued.key.expose_secret().to_owned();
    std::fs::create_dir_all(data_dir)?;
    write_private(&key_path, &key)?;
    Ok(Some(key))
}
