//! [`IntegrationRepository`] on SQL. The account SID is stored in plaintext (a public
//! identifier, needed to route webhooks); the auth token and API key secret only encrypted.

use async_trait::async_trait;
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict, Query, SelectStatement};
use sea_orm::{ConnectionTrait, QueryResult};
use secrecy::{ExposeSecret, SecretString};
use smsdesk_domain::ports::{
    IntegrationRepository, NewIntegration, RepositoryError, Sender, TwilioAuth, TwilioCredentials,
    TwilioIntegration,
};
use smsdesk_domain::{AccountSid, ApiKeySid, MessagingServiceSid, PhoneNumber, TeamId};

use crate::cipher::SecretCipher;
use crate::error::{corrupt, repo_err};
use crate::schema::TwilioIntegrations;
use crate::store::{Store, execute, stored_time};

pub(crate) const INTEGRATION_COLUMNS: [TwilioIntegrations; 7] = [
    TwilioIntegrations::TeamId,
    TwilioIntegrations::AccountSid,
    TwilioIntegrations::AuthTokenEncrypted,
    TwilioIntegrations::ApiKeySid,
    TwilioIntegrations::ApiKeySecretEncrypted,
    TwilioIntegrations::SenderNumber,
    TwilioIntegrations::MessagingServiceSid,
];

fn select_integrations() -> SelectStatement {
    Query::select()
        .columns(INTEGRATION_COLUMNS)
        .from(TwilioIntegrations::Table)
        .to_owned()
}

fn get<T: sea_orm::TryGetable>(row: &QueryResult, column: &str) -> Result<T, RepositoryError> {
    row.try_get::<T>("", column)
        .map_err(|err| corrupt(column, err))
}

fn decrypt(
    cipher: &SecretCipher,
    what: &str,
    stored: &str,
) -> Result<SecretString, RepositoryError> {
    cipher
        .decrypt(stored)
        .map(SecretString::from)
        .map_err(|err| RepositoryError::Unexpected(format!("cannot decrypt the {what}: {err}")))
}

fn integration_from_row(
    row: &QueryResult,
    cipher: &SecretCipher,
) -> Result<TwilioIntegration, RepositoryError> {
    let team_id = TeamId::new(get(row, "team_id")?).map_err(|err| corrupt("team_id", err))?;
    let account_sid = AccountSid::parse(&get::<String>(row, "account_sid")?)
        .map_err(|err| corrupt("account_sid", err))?;
    let auth_token = decrypt(
        cipher,
        "auth token",
        &get::<String>(row, "auth_token_encrypted")?,
    )?;
    let api_key_sid: Option<String> = get(row, "api_key_sid")?;
    let api_key_secret: Option<String> = get(row, "api_key_secret_encrypted")?;
    let auth = match (api_key_sid, api_key_secret) {
        (Some(sid), Some(secret)) => TwilioAuth::ApiKey {
            sid: ApiKeySid::parse(&sid).map_err(|err| corrupt("api_key_sid", err))?,
            secret: decrypt(cipher, "API key secret", &secret)?,
        },
        (None, None) => TwilioAuth::AuthToken(auth_token.clone()),
        _ => {
            return Err(corrupt(
                "API key",
                "the SID and the secret must both be set or both be empty",
            ));
        }
    };
    let number: Option<String> = get(row, "sender_number")?;
    let service: Option<String> = get(row, "messaging_service_sid")?;
    let sender = match (number, service) {
        (Some(number), None) => {
            Sender::Number(PhoneNumber::parse(&number).map_err(|err| corrupt("sender", err))?)
        }
        (None, Some(service)) => Sender::MessagingService(
            MessagingServiceSid::parse(&service).map_err(|err| corrupt("sender", err))?,
        ),
        _ => {
            return Err(corrupt(
                "sender",
                "exactly one of number and messaging service must be set",
            ));
        }
    };
    Ok(TwilioIntegration {
        team_id,
        credentials: TwilioCredentials { account_sid, auth },
        auth_token,
        sender,
    })
}

#[async_trait]
impl IntegrationRepository for Store {
    async fn for_team(&self, team: TeamId) -> Result<Option<TwilioIntegration>, RepositoryError> {
        let query = select_integrations()
            .and_where(Expr::col(TwilioIntegrations::TeamId).eq(team.get()))
            .to_owned();
        let row = self.reader.query_one(&query).await.map_err(repo_err)?;
        row.map(|row| integration_from_row(&row, &self.cipher))
            .transpose()
    }

    async fn for_account(
        &self,
        account: &AccountSid,
    ) -> Result<Option<TwilioIntegration>, RepositoryError> {
        let query = select_integrations()
            .and_where(Expr::col(TwilioIntegrations::AccountSid).eq(account.as_str()))
            .to_owned();
        let row = self.reader.query_one(&query).await.map_err(repo_err)?;
        row.map(|row| integration_from_row(&row, &self.cipher))
            .transpose()
    }

    async fn upsert(
        &self,
        team: TeamId,
        integration: NewIntegration,
    ) -> Result<TwilioIntegration, RepositoryError> {
        let encrypt = |secret: &SecretString| {
            self.cipher.encrypt(secret.expose_secret()).map_err(|err| {
                RepositoryError::Unexpected(format!("cannot encrypt a secret: {err}"))
            })
        };
        let auth_token = encrypt(&integration.auth_token)?;
        let (api_key_sid, api_key_secret) = match &integration.api_key {
            Some((sid, secret)) => (Some(sid.as_str().to_owned()), Some(encrypt(secret)?)),
            None => (None, None),
        };
        let (number, service) = match &integration.sender {
            Sender::Number(number) => (Some(number.as_str().to_owned()), None),
            Sender::MessagingService(sid) => (None, Some(sid.as_str().to_owned())),
        };
        let now = stored_time(chrono::Utc::now());
        let insert = Query::insert()
            .into_table(TwilioIntegrations::Table)
            .columns([
                TwilioIntegrations::TeamId,
                TwilioIntegrations::AccountSid,
                TwilioIntegrations::AuthTokenEncrypted,
                TwilioIntegrations::ApiKeySid,
                TwilioIntegrations::ApiKeySecretEncrypted,
                TwilioIntegrations::SenderNumber,
                TwilioIntegrations::MessagingServiceSid,
                TwilioIntegrations::CreatedAt,
                TwilioIntegrations::UpdatedAt,
            ])
            .values_panic([
                team.get().into(),
                integration.account_sid.as_str().into(),
                auth_token.into(),
                api_key_sid.into(),
                api_key_secret.into(),
                number.into(),
                service.into(),
                now.into(),
                now.into(),
            ])
            .on_conflict(
                OnConflict::column(TwilioIntegrations::TeamId)
                    .update_columns([
                        TwilioIntegrations::AccountSid,
                        TwilioIntegrations::AuthTokenEncrypted,
                        TwilioIntegrations::ApiKeySid,
                        TwilioIntegrations::ApiKeySecretEncrypted,
                        TwilioIntegrations::SenderNumber,
                        TwilioIntegrations::MessagingServiceSid,
                        TwilioIntegrations::UpdatedAt,
                    ])
                    .to_owned(),
            )
            .to_owned();
        // A unique violation here can only be the account SID: the team's own row is updated.
        execute(self.writer(), &insert)
            .await
            .map_err(|err| match repo_err(err) {
                RepositoryError::Duplicate(_) => RepositoryError::Duplicate(format!(
                    "Twilio account {} is already connected to another team",
                    integration.account_sid
                )),
                other => other,
            })?;
        let auth = match integration.api_key {
            Some((sid, secret)) => TwilioAuth::ApiKey { sid, secret },
            None => TwilioAuth::AuthToken(integration.auth_token.clone()),
        };
        Ok(TwilioIntegration {
            team_id: team,
            credentials: TwilioCredentials {
                account_sid: integration.account_sid,
                auth,
            },
            auth_token: integration.auth_token,
            sender: integration.sender,
        })
    }
}
