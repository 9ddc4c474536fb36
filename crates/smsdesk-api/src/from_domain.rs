//! Conversions from the domain's types to the answers that show them: the server's side, so the
//! domain's own serialisation never becomes the API by accident.

use smsdesk_domain::api_keys::{ApiKeySummary, IssuedKey};
use smsdesk_domain::ports::{Sender, TwilioAuth, TwilioIntegration};
use smsdesk_domain::secrecy::{ExposeSecret, SecretString};
use smsdesk_domain::services::{
    EndpointRequest, EndpointWithSecret, FailureReason, IntegrationSettings, MessageOutcome,
    OutcomeKind, RefreshAnswer, SkipReason,
};
use smsdesk_domain::summary::DeliverySummary;
use smsdesk_domain::webhooks::{WebhookDelivery, WebhookEndpoint};
use smsdesk_domain::{DeliveryError, Message, StatusEvent};

use crate::*;

impl From<Message> for MessageDto {
    fn from(message: Message) -> Self {
        Self {
            sid: message.sid.to_string(),
            account_sid: message.account_sid.to_string(),
            direction: message.direction.as_str().to_owned(),
            from: message.from.to_string(),
            to: message.to.to_string(),
            body: message.body,
            reference: message.reference.map(|r| r.as_str().to_owned()),
            status: message.delivery.status.as_str().to_owned(),
            error_reason: message
                .delivery
                .error_code
                .map(|code| DeliveryError::explain(code).reason.to_owned()),
            error_code: message.delivery.error_code,
            error_message: message.delivery.error_message,
            num_segments: message.delivery.num_segments,
            price: message.delivery.price,
            price_unit: message.delivery.price_unit,
            created_at: message.created_at,
            updated_at: message.updated_at,
            last_refreshed_at: message.last_refreshed_at,
            redacted_at: message.redacted_at,
            status_reason: message
                .delivery_unknown_at
                .map(|_| DELIVERY_UNKNOWN.to_owned()),
            delivery_unknown_at: message.delivery_unknown_at,
        }
    }
}

impl From<StatusEvent> for StatusEventDto {
    fn from(event: StatusEvent) -> Self {
        let observation = event.observation;
        Self {
            status: observation.state.status.as_str().to_owned(),
            error_reason: observation
                .state
                .error_code
                .map(|code| DeliveryError::explain(code).reason.to_owned()),
            error_code: observation.state.error_code,
            error_message: observation.state.error_message,
            source: observation.source.as_str().to_owned(),
            observed_at: observation.observed_at,
            applied: event.applied,
        }
    }
}

impl From<DeliverySummary> for DeliverySummaryDto {
    fn from(summary: DeliverySummary) -> Self {
        Self {
            window_hours: summary.window.as_hours(),
            since: summary.since,
            total: summary.total(),
            delivered: summary.delivered(),
            settled: summary.settled(),
            delivery_rate: summary.delivery_rate(),
            counts: summary
                .counts
                .into_iter()
                .map(|c| StatusCountDto {
                    status: c.status.as_str().to_owned(),
                    count: c.count,
                })
                .collect(),
        }
    }
}

fn failure_reason(reason: FailureReason) -> &'static str {
    match reason {
        FailureReason::RateLimited => "rateLimited",
        FailureReason::ProviderUnavailable => "providerUnavailable",
        FailureReason::CredentialsRejected => "credentialsRejected",
        FailureReason::Rejected => "rejected",
        FailureReason::Unexpected => "unexpected",
    }
}

impl From<MessageOutcome> for OutcomeDto {
    fn from(outcome: MessageOutcome) -> Self {
        let mut dto = Self {
            sid: outcome.sid.to_string(),
            previous_status: outcome.previous_status.as_str().to_owned(),
            new_status: outcome.new_status.as_str().to_owned(),
            error_reason: outcome
                .error_code
                .map(|code| DeliveryError::explain(code).reason.to_owned()),
            error_code: outcome.error_code,
            error_message: outcome.error_message,
            outcome: String::new(),
            reason: None,
            detail: None,
            twilio_code: None,
            retry_after_seconds: None,
        };
        match outcome.result {
            OutcomeKind::Updated => dto.outcome = "updated".into(),
            OutcomeKind::Unchanged => dto.outcome = "unchanged".into(),
            OutcomeKind::Failed {
                reason,
                code,
                message,
            } => {
                dto.outcome = "failed".into();
                dto.reason = Some(failure_reason(reason).into());
                dto.twilio_code = code;
                dto.detail = Some(message);
            }
            OutcomeKind::Skipped { reason } => {
                dto.outcome = "skipped".into();
                dto.reason = Some(
                    match reason {
                        SkipReason::CoolingDown { retry_after_secs } => {
                            dto.retry_after_seconds = Some(retry_after_secs);
                            "coolingDown"
                        }
                        SkipReason::NotFoundAtProvider => "notFoundAtProvider",
                        SkipReason::IntegrationMissing => "integrationMissing",
                    }
                    .into(),
                );
            }
        }
        dto
    }
}

impl From<IntegrationDto> for IntegrationSettings {
    fn from(dto: IntegrationDto) -> Self {
        Self {
            account_sid: dto.account_sid,
            auth_token: SecretString::from(dto.auth_token),
            api_key_sid: dto.api_key_sid,
            api_key_secret: dto.api_key_secret.map(SecretString::from),
            from_number: dto.from_number,
            messaging_service_sid: dto.messaging_service_sid,
        }
    }
}

impl From<RefreshAnswer> for RefreshResponseDto {
    fn from(answer: RefreshAnswer) -> Self {
        let summary = SummaryDto {
            candidates: answer.summary.candidates,
            updated: answer.summary.updated,
            unchanged: answer.summary.unchanged,
            failed: answer.summary.failed,
            skipped: answer.summary.skipped,
            twilio_calls: answer.summary.provider_calls,
            twilio_list_pages: answer.summary.list_pages,
            duration_ms: u64::try_from(answer.took.as_millis()).unwrap_or(u64::MAX),
        };
        Self {
            mode: answer.mode.as_str().to_owned(),
            window_hours: answer.window_hours,
            plan: answer.plan.map(|plan| plan.as_str().to_owned()),
            outcomes: answer.outcomes.into_iter().map(OutcomeDto::from).collect(),
            summary,
        }
    }
}

impl From<&TwilioIntegration> for IntegrationViewDto {
    fn from(integration: &TwilioIntegration) -> Self {
        let (credentials, api_key_sid) = match &integration.credentials.auth {
            TwilioAuth::AuthToken(_) => ("authToken", None),
            TwilioAuth::ApiKey { sid, .. } => ("apiKey", Some(sid.to_string())),
        };
        let (from_number, messaging_service_sid) = match &integration.sender {
            Sender::Number(number) => (Some(number.to_string()), None),
            Sender::MessagingService(service) => (None, Some(service.to_string())),
        };
        Self {
            account_sid: integration.credentials.account_sid.to_string(),
            credentials: credentials.into(),
            api_key_sid,
            from_number,
            messaging_service_sid,
        }
    }
}

impl From<ApiKeySummary> for ApiKeyDto {
    fn from(key: ApiKeySummary) -> Self {
        Self {
            id: key.id.to_string(),
            label: key.label.map(|l| l.as_str().to_owned()),
            user_id: key.user_id.get(),
            created_at: key.created_at,
            last_used_at: key.last_used_at,
            revoked_at: key.revoked_at,
        }
    }
}

impl From<IssuedKey> for IssuedApiKeyDto {
    fn from(issued: IssuedKey) -> Self {
        Self {
            summary: issued.summary.into(),
            key: issued.key.expose_secret().to_owned(),
        }
    }
}

impl From<WebhookEndpointRequestDto> for EndpointRequest {
    fn from(dto: WebhookEndpointRequestDto) -> Self {
        Self {
            url: dto.url,
            events: dto.events,
            enabled: dto.enabled,
        }
    }
}

impl From<WebhookEndpoint> for WebhookEndpointDto {
    fn from(endpoint: WebhookEndpoint) -> Self {
        Self {
            id: endpoint.id.to_string(),
            url: endpoint.url.as_str().to_owned(),
            events: endpoint
                .events
                .events()
                .into_iter()
                .map(|event| event.as_str().to_owned())
                .collect(),
            enabled: endpoint.enabled,
            disabled_reason: endpoint
                .disabled_reason
                .map(|reason| reason.as_str().to_owned()),
            previous_secret_expires_at: endpoint.previous_secret_expires_at,
            created_at: endpoint.created_at,
            updated_at: endpoint.updated_at,
        }
    }
}

impl From<EndpointWithSecret> for WebhookEndpointWithSecretDto {
    fn from(created: EndpointWithSecret) -> Self {
        Self {
            endpoint: created.endpoint.into(),
            secret: created.secret.expose().to_owned(),
        }
    }
}

impl From<WebhookDelivery> for WebhookDeliveryDto {
    fn from(delivery: WebhookDelivery) -> Self {
        Self {
            id: delivery.id.to_string(),
            webhook_id: delivery.facts.webhook_id(),
            event: delivery.facts.event.as_str().to_owned(),
            message_sid: delivery.facts.sid.to_string(),
            message_status: delivery.facts.state.status.as_str().to_owned(),
            status: delivery.status.as_str().to_owned(),
            attempt_count: delivery.attempt_count,
            next_attempt_at: delivery.next_attempt_at,
            created_at: delivery.created_at,
            attempts: delivery
                .attempts
                .into_iter()
                .map(|attempt| WebhookAttemptDto {
                    attempted_at: attempt.attempted_at,
                    status_code: attempt.status_code,
                    response_body: attempt.response_body,
                    error: attempt.error,
                    duration_ms: attempt.duration_ms,
                })
                .collect(),
        }
    }
}
