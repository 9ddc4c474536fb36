//! The `ConfigureIntegration` use case: set or replace a team's Twilio credentials and default
//! sender.
//!
//! One validation for every way in (the HTTP `PUT /api/integrations/twilio`, the CLI's
//! `admin set-twilio`, an embedder): what one refuses, all refuse. The input is the raw text the
//! caller was given ([`IntegrationSettings`]); every problem names the [`IntegrationField`] at
//! fault, and each adapter spells that field its own way (a JSON name, a CLI flag).
//!
//! Who may configure: a team admin ([`ConfigureIntegration::authorize`] turns a requester into a
//! [`TeamAdmin`], which [`ConfigureIntegration::configure`] requires), or the operator at the
//! command line ([`TeamAdmin::operator`]), who administers every team.

use std::sync::Arc;

use secrecy::SecretString;

use crate::access::{Requester, TeamAdmin};
use crate::ids::{AccountSid, ApiKeySid, MessagingServiceSid, PhoneNumber};
use crate::ports::{
    IntegrationRepository, NewIntegration, RepositoryError, Sender, TwilioIntegration,
};

/// The longest secret (auth token, API key secret) accepted, in bytes.
pub const MAX_SECRET_LEN: usize = 256;

/// A team's Twilio settings as a caller wrote them, before validation.
#[derive(Clone, Default)]
pub struct IntegrationSettings {
    /// The account SID (`AC…`).
    pub account_sid: String,
    /// The account's auth token.
    pub auth_token: SecretString,
    /// An API key SID (`SK…`) for REST calls instead of the auth token.
    pub api_key_sid: Option<String>,
    /// That key's secret.
    pub api_key_secret: Option<SecretString>,
    /// The default sender number (E.164); exactly one of this and `messaging_service_sid`.
    pub from_number: Option<String>,
    /// Or a messaging service (`MG…`).
    pub messaging_service_sid: Option<String>,
}

impl std::fmt::Debug for IntegrationSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IntegrationSettings")
            .field("account_sid", &self.account_sid)
            .field("api_key_sid", &self.api_key_sid)
            .field("from_number", &self.from_number)
            .field("messaging_service_sid", &self.messaging_service_sid)
            .finish_non_exhaustive()
    }
}

/// A field of [`IntegrationSettings`], named in errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IntegrationField {
    /// `account_sid`.
    AccountSid,
    /// `auth_token`.
    AuthToken,
    /// `api_key_sid`.
    ApiKeySid,
    /// `api_key_secret`.
    ApiKeySecret,
    /// `from_number`.
    FromNumber,
    /// `messaging_service_sid`.
    MessagingServiceSid,
}

/// Why a team's integration was not configured. Nothing was stored in any of these cases.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigureIntegrationError {
    /// The requester is not an admin of the team.
    #[error("only team admins may change the team's Twilio integration")]
    NotAdmin,
    /// A field's value is malformed.
    #[error("{field:?}: {problem}")]
    Invalid {
        /// The field at fault.
        field: IntegrationField,
        /// What is wrong with it, without echoing secrets.
        problem: String,
    },
    /// An API key SID without its secret, or a secret without its SID.
    #[error("an API key needs both its SID and its secret; {missing:?} is missing")]
    IncompleteApiKey {
        /// The half that is missing.
        missing: IntegrationField,
    },
    /// Neither a sender number nor a messaging service was given.
    #[error("a default sender is required: a from number or a messaging service")]
    SenderMissing,
    /// Both a sender number and a messaging service were given.
    #[error("give either a from number or a messaging service, not both")]
    ConflictingSenders,
    /// Another team already uses this Twilio account (its webhooks could not be routed).
    #[error("this Twilio account is already connected to another team")]
    AccountInUse,
    /// The store failed.
    #[error(transparent)]
    Store(RepositoryError),
}

/// The use case. Cheap to clone; share one per process.
#[derive(Clone)]
pub struct ConfigureIntegration {
    integrations: Arc<dyn IntegrationRepository>,
}

impl ConfigureIntegration {
    /// Builds the use case over its port.
    pub fn new(integrations: Arc<dyn IntegrationRepository>) -> Self {
        Self { integrations }
    }

    /// The admin rule: only a team's admins may change its integration. Checked before the
    /// settings are even read, so a member learns nothing about their validity.
    ///
    /// # Errors
    /// [`ConfigureIntegrationError::NotAdmin`] for members.
    pub fn authorize(requester: &Requester) -> Result<TeamAdmin, ConfigureIntegrationError> {
        TeamAdmin::of(requester).ok_or(ConfigureIntegrationError::NotAdmin)
    }

    /// Validates `settings` and stores them as `admin`'s team's integration, replacing any
    /// previous one.
    ///
    /// # Errors
    /// See [`ConfigureIntegrationError`]: a malformed field, an incomplete API key, no sender or
    /// two, an account another team uses, or the store's failure.
    pub async fn configure(
        &self,
        admin: TeamAdmin,
        settings: IntegrationSettings,
    ) -> Result<TwilioIntegration, ConfigureIntegrationError> {
        let integration = validate(settings)?;
        self.integrations
            .upsert(admin.team(), integration)
            .await
            .map_err(|error| match error {
                RepositoryError::Duplicate(_) => ConfigureIntegrationError::AccountInUse,
                other => ConfigureIntegrationError::Store(other),
            })
    }
}

/// The one validation of a team's Twilio settings.
///
/// # Errors
/// Every [`ConfigureIntegrationError`] but `NotAdmin`, `AccountInUse` and `Store`.
pub fn validate(
    settings: IntegrationSettings,
) -> Result<NewIntegration, ConfigureIntegrationError> {
    use IntegrationField as F;
    use secrecy::ExposeSecret as _;

    let invalid = |field, problem: String| ConfigureIntegrationError::Invalid { field, problem };
    let account_sid = AccountSid::parse(&settings.account_sid)
        .map_err(|e| invalid(F::AccountSid, e.to_string()))?;
    let secret = |field, value: SecretString| {
        let text = value.expose_secret();
        if text.is_empty()
            || text.len() > MAX_SECRET_LEN
            || !text.bytes().all(|b| b.is_ascii_graphic())
        {
            Err(invalid(
                field,
                format!("must be 1 to {MAX_SECRET_LEN} visible ASCII characters"),
            ))
        } else {
            Ok(value)
        }
    };
    let auth_token = secret(F::AuthToken, settings.auth_token)?;
    let api_key = match (settings.api_key_sid, settings.api_key_secret) {
        (Some(sid), Some(key_secret)) => Some((
            ApiKeySid::parse(&sid).map_err(|e| invalid(F::ApiKeySid, e.to_string()))?,
            secret(F::ApiKeySecret, key_secret)?,
        )),
        (None, None) => None,
        (Some(_), None) => {
            return Err(ConfigureIntegrationError::IncompleteApiKey {
                missing: F::ApiKeySecret,
            });
        }
        (None, Some(_)) => {
            return Err(ConfigureIntegrationError::IncompleteApiKey {
                missing: F::ApiKeySid,
            });
        }
    };
    let sender = match (settings.from_number, settings.messaging_service_sid) {
        (Some(_), Some(_)) => return Err(ConfigureIntegrationError::ConflictingSenders),
        (None, None) => return Err(ConfigureIntegrationError::SenderMissing),
        (Some(number), None) => Sender::Number(
            PhoneNumber::parse(&number).map_err(|e| invalid(F::FromNumber, e.to_string()))?,
        ),
        (None, Some(service)) => Sender::MessagingService(
            MessagingServiceSid::parse(&service)
                .map_err(|e| invalid(F::MessagingServiceSid, e.to_string()))?,
        ),
    };
    Ok(NewIntegration {
        account_sid,
        auth_token,
        api_key,
        sender,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::{Plan, Role};
    use crate::fakes::InMemoryStore;
    use crate::ids::{TeamId, UserId};

    const ACCOUNT: &str = "AC0123456789abcdef0123456789abcdef";

    fn settings() -> IntegrationSettings {
        IntegrationSettings {
            account_sid: ACCOUNT.into(),
            auth_token: SecretString::from("token"),
            from_number: Some("+15005550006".into()),
            ..IntegrationSettings::default()
        }
    }

    fn requester(team: i64, role: Role) -> Requester {
        Requester {
            team_id: TeamId::new(team).expect("team"),
            user_id: UserId::new(1).expect("user"),
            plan: Plan::Pro,
            role,
        }
    }

    #[test]
    fn only_admins_are_authorized_and_for_their_own_team() {
        assert_eq!(
            ConfigureIntegration::authorize(&requester(1, Role::Member)),
            Err(ConfigureIntegrationError::NotAdmin)
        );
        let admin = ConfigureIntegration::authorize(&requester(7, Role::Admin)).expect("admin");
        assert_eq!(admin.team().get(), 7);
    }

    #[test]
    fn every_malformed_setting_is_refused_naming_its_field() {
        use IntegrationField as F;
        let invalid = |field| move |e: &ConfigureIntegrationError| matches!(e, ConfigureIntegrationError::Invalid { field: f, .. } if *f == field);
        type Check = Box<dyn Fn(&ConfigureIntegrationError) -> bool>;
        let cases: Vec<(IntegrationSettings, Check, &str)> = vec![
            (
                IntegrationSettings {
                    account_sid: "AC123".into(),
                    ..settings()
                },
                Box::new(invalid(F::AccountSid)),
                "short account SID",
            ),
            (
                IntegrationSettings {
                    auth_token: SecretString::from(""),
                    ..settings()
                },
                Box::new(invalid(F::AuthToken)),
                "empty token",
            ),
            (
                IntegrationSettings {
                    auth_token: SecretString::from("has space"),
                    ..settings()
                },
                Box::new(invalid(F::AuthToken)),
                "a token with a space",
            ),
            (
                IntegrationSettings {
                    auth_token: SecretString::from("x".repeat(MAX_SECRET_LEN + 1)),
                    ..settings()
                },
                Box::new(invalid(F::AuthToken)),
                "an over-long token",
            ),
            (
                IntegrationSettings {
                    api_key_sid: Some("SK0123456789abcdef0123456789abcdef".into()),
                    ..settings()
                },
                Box::new(|e| {
                    *e == ConfigureIntegrationError::IncompleteApiKey {
                        missing: F::ApiKeySecret,
                    }
                }),
                "a key without its secret",
            ),
            (
                IntegrationSettings {
                    api_key_secret: Some(SecretString::from("s")),
                    ..settings()
                },
                Box::new(|e| {
                    *e == ConfigureIntegrationError::IncompleteApiKey {
                        missing: F::ApiKeySid,
                    }
                }),
                "a secret without its key",
            ),
            (
                IntegrationSettings {
                    api_key_sid: Some("SK1".into()),
                    api_key_secret: Some(SecretString::from("s")),
                    ..settings()
                },
                Box::new(invalid(F::ApiKeySid)),
                "a short key SID",
            ),
            (
                IntegrationSettings {
                    from_number: None,
                    ..settings()
                },
                Box::new(|e| *e == ConfigureIntegrationError::SenderMissing),
                "no sender",
            ),
            (
                IntegrationSettings {
                    messaging_service_sid: Some("MG0123456789abcdef0123456789abcdef".into()),
                    ..settings()
                },
                Box::new(|e| *e == ConfigureIntegrationError::ConflictingSenders),
                "two senders",
            ),
            (
                IntegrationSettings {
                    from_number: Some("555".into()),
                    ..settings()
                },
                Box::new(invalid(F::FromNumber)),
                "a number that is not E.164",
            ),
        ];
        for (input, expected, why) in cases {
            match validate(input) {
                Ok(_) => panic!("{why}: accepted"),
                Err(error) => assert!(expected(&error), "{why}: {error:?}"),
            }
        }
        assert!(validate(settings()).is_ok(), "the base settings are valid");
    }

    #[tokio::test]
    async fn an_account_another_team_uses_is_refused_and_nothing_changes() {
        let store = InMemoryStore::new();
        let configure = ConfigureIntegration::new(Arc::new(store.clone()));
        let first = TeamAdmin::operator(TeamId::new(1).expect("team"));
        let second = TeamAdmin::operator(TeamId::new(2).expect("team"));
        configure
            .configure(first, settings())
            .await
            .expect("team 1 takes the account");
        let refused = configure.configure(second, settings()).await;
        assert_eq!(
            refused.map(|i| i.team_id),
            Err(ConfigureIntegrationError::AccountInUse)
        );
        assert!(
            store
                .for_team(second.team())
                .await
                .expect("store answers")
                .is_none(),
            "team 2 has no integration"
        );
    }
}
