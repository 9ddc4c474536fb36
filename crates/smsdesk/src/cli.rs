//! The command line: `serve` (the default), `migrate`, `admin …` and `data …`.

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use std::sync::Arc;

use smsdesk_domain::secrecy::{ExposeSecret, SecretString};
use smsdesk_domain::services::{
    ConfigureIntegration, ConfigureIntegrationError, IntegrationField, IntegrationSettings,
    TeamAdmin,
};
use smsdesk_domain::{Plan, Role, TeamId, UserId};
use smsdesk_store::{DecryptOptions, decrypt_account_sids};

use crate::settings::{Settings, value_or_file};
use crate::startup::{Application, cipher_for, open_store};
use crate::telemetry;

/// smsdesk: send SMS through Twilio and keep every message's delivery status true.
#[derive(Debug, Parser)]
#[command(name = "smsdesk", version)]
pub struct Cli {
    /// Shared settings (database, keys, Twilio, ...).
    #[command(flatten)]
    pub settings: Settings,
    /// What to do (default: serve).
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP service (the default).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Administrative tasks.
    #[command(subcommand)]
    Admin(AdminCommand),
    /// Data migrations.
    #[command(subcommand)]
    Data(DataCommand),
}

/// `smsdesk admin …`
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Create a team; prints its id.
    CreateTeam {
        /// Display name.
        #[arg(long)]
        name: String,
        /// free, pro or enterprise.
        #[arg(long, value_parser = parse_plan, default_value = "free")]
        plan: Plan,
    },
    /// Change a team's plan.
    SetPlan {
        /// The team id.
        #[arg(long)]
        team: i64,
        /// free, pro or enterprise.
        #[arg(long, value_parser = parse_plan)]
        plan: Plan,
    },
    /// List teams.
    ListTeams,
    /// Create a user in a team; prints its id.
    CreateUser {
        /// The team id.
        #[arg(long)]
        team: i64,
        /// E-mail address (unique).
        #[arg(long)]
        email: String,
        /// Display name (default: the e-mail address).
        #[arg(long)]
        name: Option<String>,
        /// admin or member.
        #[arg(long, value_parser = parse_role, default_value = "member")]
        role: Role,
    },
    /// Create an API key for a user; prints it once (only its hash is stored).
    CreateApiKey {
        /// The user id.
        #[arg(long)]
        user: i64,
    },
    /// Revoke an API key by its visible prefix.
    RevokeApiKey {
        /// The prefix (the part after `smsd_`).
        #[arg(long)]
        prefix: String,
    },
    /// Set or replace a team's Twilio credentials. The auth token is read from the environment
    /// variable SMSDESK_TWILIO_AUTH_TOKEN (never a flag: flags show in process lists).
    SetTwilio {
        /// The team id.
        #[arg(long)]
        team: i64,
        /// The account SID (AC…).
        #[arg(long)]
        account_sid: String,
        /// The auth token.
        #[arg(
            long = "auth-token-env",
            hide = true,
            env = "SMSDESK_TWILIO_AUTH_TOKEN",
            hide_env_values = true
        )]
        auth_token: Option<String>,
        /// A file holding the auth token (instead of SMSDESK_TWILIO_AUTH_TOKEN).
        #[arg(long, env = "SMSDESK_TWILIO_AUTH_TOKEN_FILE")]
        auth_token_file: Option<std::path::PathBuf>,
        /// An API key SID (SK…) for REST calls; its secret from SMSDESK_TWILIO_API_KEY_SECRET.
        #[arg(long)]
        api_key_sid: Option<String>,
        /// The API key secret.
        #[arg(
            long = "api-key-secret-env",
            hide = true,
            env = "SMSDESK_TWILIO_API_KEY_SECRET",
            hide_env_values = true
        )]
        api_key_secret: Option<String>,
        /// A file holding the API key secret (instead of SMSDESK_TWILIO_API_KEY_SECRET).
        #[arg(long, env = "SMSDESK_TWILIO_API_KEY_SECRET_FILE")]
        api_key_secret_file: Option<std::path::PathBuf>,
        /// The default sender number (E.164).
        #[arg(long = "from", conflicts_with = "messaging_service_sid")]
        from_number: Option<String>,
        /// Or a messaging service (MG…).
        #[arg(long)]
        messaging_service_sid: Option<String>,
    },
    /// Re-encrypt every stored secret with the current key (after a key rotation).
    ReencryptSecrets,
}

/// `smsdesk data …`
#[derive(Debug, Subcommand)]
pub enum DataCommand {
    /// Decrypt message account SIDs that were stored encrypted. Dry run unless --apply.
    DecryptAccountSids {
        /// Write the changes (default: report only).
        #[arg(long)]
        apply: bool,
        /// Rows per transaction.
        #[arg(long, default_value_t = 500)]
        batch_size: usize,
    },
}

fn parse_plan(value: &str) -> Result<Plan, String> {
    Plan::parse(value).map_err(|e| e.to_string())
}

fn parse_role(value: &str) -> Result<Role, String> {
    Role::parse(value).ok_or_else(|| format!("unknown role '{value}': expected admin or member"))
}

/// Runs the parsed command line.
///
/// # Errors
/// Whatever the command failed with, with context.
pub async fn run(mut cli: Cli) -> anyhow::Result<()> {
    telemetry::init(cli.settings.log_format);
    cli.settings.load_secret_files()?;
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(cli.settings).await,
        Command::Migrate => {
            open_store(&cli.settings, cipher_for(&cli.settings)?).await?;
            println!("migrations applied");
            Ok(())
        }
        Command::Admin(command) => admin(&cli.settings, command).await,
        Command::Data(DataCommand::DecryptAccountSids { apply, batch_size }) => {
            let cipher = cipher_for(&cli.settings)?;
            let store = open_store(&cli.settings, cipher.clone()).await?;
            let report = decrypt_account_sids(
                &store,
                &cipher,
                DecryptOptions {
                    apply,
                    batch_size: batch_size.max(1),
                },
            )
            .await?;
            println!(
                "{}: scanned {}, already plaintext {}, {} {}, undecryptable {}",
                if apply { "applied" } else { "dry run" },
                report.scanned,
                report.already_plaintext,
                if apply { "decrypted" } else { "would decrypt" },
                report.decrypted,
                report.undecryptable.len()
            );
            for (sid, reason) in &report.undecryptable {
                println!("  undecryptable {sid}: {reason}");
            }
            Ok(())
        }
    }
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    let application = Application::build(settings).await?;
    let url = format!("http://{}", application.addr());
    match application.demo_api_key() {
        Some(key) => tracing::info!(
            "smsdesk is ready: open {url}/sms and sign in with the demo API key {key} \
             (or: curl -H 'Authorization: Bearer {key}' {url}/api/messages)"
        ),
        None => tracing::info!("smsdesk is ready on {url}"),
    }
    application
        .run_until_stopped()
        .await
        .context("the HTTP server failed")
}

async fn admin(settings: &Settings, command: AdminCommand) -> anyhow::Result<()> {
    let store = open_store(settings, cipher_for(settings)?).await?;
    match command {
        AdminCommand::CreateTeam { name, plan } => {
            let team = store.create_team(&name, plan).await?;
            println!(
                "team {} created ({}, plan {})",
                team.id, team.name, team.plan
            );
        }
        AdminCommand::SetPlan { team, plan } => {
            store.set_plan(TeamId::new(team)?, plan).await?;
            println!("team {team} is now on plan {plan}");
        }
        AdminCommand::ListTeams => {
            for team in store.list_teams().await? {
                println!("{}\t{}\t{}", team.id, team.plan, team.name);
            }
        }
        AdminCommand::CreateUser {
            team,
            email,
            name,
            role,
        } => {
            let name = name.unwrap_or_else(|| email.clone());
            let user = store
                .create_user(TeamId::new(team)?, &name, &email, role)
                .await?;
            println!("user {} created ({}, {})", user.id, email, role.as_str());
        }
        AdminCommand::CreateApiKey { user } => {
            let issued = store.create_api_key(UserId::new(user)?).await?;
            println!("{}", issued.key.expose_secret());
            eprintln!(
                "(shown once: only its hash is stored; prefix {})",
                issued.prefix
            );
        }
        AdminCommand::RevokeApiKey { prefix } => {
            store.revoke_api_key(&prefix).await?;
            println!("key {prefix} revoked");
        }
        AdminCommand::SetTwilio {
            team,
            account_sid,
            auth_token,
            auth_token_file,
            api_key_sid,
            api_key_secret,
            api_key_secret_file,
            from_number,
            messaging_service_sid,
        } => {
            let auth_token = value_or_file(
                auth_token,
                auth_token_file.as_deref(),
                "SMSDESK_TWILIO_AUTH_TOKEN",
            )?
            .context("the auth token is required: SMSDESK_TWILIO_AUTH_TOKEN or SMSDESK_TWILIO_AUTH_TOKEN_FILE")?;
            let api_key_secret = value_or_file(
                api_key_secret,
                api_key_secret_file.as_deref(),
                "SMSDESK_TWILIO_API_KEY_SECRET",
            )?;
            let settings = IntegrationSettings {
                account_sid,
                auth_token: SecretString::from(auth_token),
                api_key_sid,
                api_key_secret: api_key_secret.map(SecretString::from),
                from_number,
                messaging_service_sid,
            };
            // The operator administers every team: the same validation as the HTTP API, without
            // its per-team admin rule.
            let stored = ConfigureIntegration::new(Arc::new(store))
                .configure(TeamAdmin::operator(TeamId::new(team)?), settings)
                .await
                .map_err(|error| anyhow::anyhow!(set_twilio_refusal(&error)))?;
            println!(
                "team {team} now uses Twilio account {}",
                stored.credentials.account_sid
            );
        }
        AdminCommand::ReencryptSecrets => {
            let report = store.reencrypt_secrets().await?;
            println!(
                "scanned {}, already current {}, re-encrypted {}, encrypted from plaintext {}, failed {}",
                report.scanned,
                report.already_current,
                report.reencrypted,
                report.encrypted_from_plaintext,
                report.failed.len()
            );
            for (team, reason) in &report.failed {
                println!("  team {team}: {reason}");
            }
        }
    }
    Ok(())
}

/// How `admin set-twilio` names a field: its flag, or the environment variable a secret is read
/// from.
fn set_twilio_source(field: IntegrationField) -> &'static str {
    match field {
        IntegrationField::AccountSid => "--account-sid",
        IntegrationField::AuthToken => "SMSDESK_TWILIO_AUTH_TOKEN",
        IntegrationField::ApiKeySid => "--api-key-sid",
        IntegrationField::ApiKeySecret => "SMSDESK_TWILIO_API_KEY_SECRET",
        IntegrationField::FromNumber => "--from",
        IntegrationField::MessagingServiceSid => "--messaging-service-sid",
    }
}

/// What `admin set-twilio` prints when the domain refuses the settings, in the CLI's own terms.
pub fn set_twilio_refusal(error: &ConfigureIntegrationError) -> String {
    use ConfigureIntegrationError as E;
    match error {
        E::Invalid { field, problem } => format!("{}: {problem}", set_twilio_source(*field)),
        E::IncompleteApiKey { missing } => format!(
            "--api-key-sid needs SMSDESK_TWILIO_API_KEY_SECRET, and the other way round ({} is missing)",
            set_twilio_source(*missing)
        ),
        E::SenderMissing | E::ConflictingSenders => {
            "give exactly one of --from or --messaging-service-sid".to_owned()
        }
        E::AccountInUse => format!(
            "{}: {error}",
            set_twilio_source(IntegrationField::AccountSid)
        ),
        E::NotAdmin | E::Store(_) => error.to_string(),
    }
}
