//! The OpenAPI document against the Rust types the server answers with and the client reads
//! (`smsdesk-api`): for each type, a value with every field filled serialises to exactly the
//! properties its schema names (at every depth), and conforms; a value with every optional field
//! empty conforms too; and both read back into the type unchanged. A field added to a type
//! without the document, or to the document without the type, fails here. The samples are struct
//! literals, so a new field does not compile until it is given a value here.

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use smsdesk_web::dto::*;
use smsdesk_web::{ErrorBody, ErrorDetail};

use crate::openapi::{document, resolve, violations};

fn at(seconds: i64) -> Timestamp {
    chrono::DateTime::from_timestamp(seconds, 0).expect("a valid time")
}

const SID: &str = "SM0123456789abcdef0123456789abcdef";

/// The properties a schema names, `allOf` parts merged and `$ref`s followed.
fn properties<'a>(doc: &'a Value, schema: &'a Value) -> Option<serde_json::Map<String, Value>> {
    let schema = resolve(doc, schema);
    if let Some(parts) = schema.get("allOf").and_then(Value::as_array) {
        let mut merged = serde_json::Map::new();
        for part in parts {
            merged.extend(properties(doc, part)?);
        }
        return Some(merged);
    }
    if let Some(branches) = schema.get("anyOf").or(schema.get("oneOf")) {
        return branches
            .as_array()?
            .iter()
            .find_map(|branch| properties(doc, branch));
    }
    schema.get("properties")?.as_object().cloned()
}

/// Where the names in `value` and in `schema` differ, at every depth.
fn drift(doc: &Value, schema: &Value, value: &Value, path: &str, found: &mut Vec<String>) {
    let schema = resolve(doc, schema);
    match value {
        Value::Object(fields) => {
            let Some(named) = properties(doc, schema) else {
                return;
            };
            for key in fields.keys().filter(|key| !named.contains_key(*key)) {
                found.push(format!("{path}.{key}: in the type, not in the document"));
            }
            for (key, property) in &named {
                match fields.get(key) {
                    Some(inner) => drift(doc, property, inner, &format!("{path}.{key}"), found),
                    None => found.push(format!("{path}.{key}: in the document, not in the type")),
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for item in items {
                    drift(doc, item_schema, item, &format!("{path}[]"), found);
                }
            }
        }
        _ => {}
    }
}

/// `full` (every field set) names exactly the schema's properties; each of `valid` (realistic
/// values: every field set where the document allows it, every optional one empty) conforms; all
/// read back unchanged.
fn check<T>(schema_name: &str, full: &T, valid: &[T]) -> Vec<String>
where
    T: Serialize + DeserializeOwned,
{
    let doc = document();
    let schema = serde_json::json!({ "$ref": format!("#/components/schemas/{schema_name}") });
    let mut found = Vec::new();
    let full = serde_json::to_value(full).expect("serialises");
    drift(&doc, &schema, &full, schema_name, &mut found);
    let mut samples = vec![("full", full)];
    for (n, sample) in valid.iter().enumerate() {
        let sample = serde_json::to_value(sample).expect("serialises");
        found.extend(
            violations(&doc, &schema, &sample)
                .into_iter()
                .map(|violation| format!("{schema_name} (sample {n}): {violation}")),
        );
        samples.push(("a sample", sample));
    }
    for (which, sample) in samples {
        match serde_json::from_value::<T>(sample.clone()) {
            Ok(read) => {
                let again = serde_json::to_value(&read).expect("serialises");
                if again != sample {
                    found.push(format!(
                        "{schema_name} ({which}): does not read back unchanged"
                    ));
                }
            }
            Err(error) => found.push(format!(
                "{schema_name} ({which}): does not read back: {error}"
            )),
        }
    }
    found
}

/// The usual case: the full value and the bare one are both valid.
fn check_both<T>(schema_name: &str, sample: impl Fn(bool) -> T) -> Vec<String>
where
    T: Serialize + DeserializeOwned,
{
    check(schema_name, &sample(true), &[sample(true), sample(false)])
}

fn message(full: bool) -> MessageDto {
    let some = |text: &str| full.then(|| text.to_owned());
    MessageDto {
        sid: SID.into(),
        account_sid: "AC0123456789abcdef0123456789abcdef".into(),
        direction: "outbound-api".into(),
        from: "+15005550006".into(),
        to: "+14155550100".into(),
        body: "hello".into(),
        reference: some("order-1"),
        status: "undelivered".into(),
        error_code: full.then_some(30003),
        error_message: some("Unreachable destination handset"),
        error_reason: some("The handset was off or out of coverage."),
        num_segments: full.then_some(1),
        price: some("-0.0075"),
        price_unit: some("USD"),
        created_at: at(1_780_000_000),
        updated_at: at(1_780_000_060),
        last_refreshed_at: full.then(|| at(1_780_000_030)),
        redacted_at: full.then(|| at(1_780_000_090)),
        status_reason: some(DELIVERY_UNKNOWN),
        delivery_unknown_at: full.then(|| at(1_780_000_120)),
    }
}

fn event(full: bool) -> StatusEventDto {
    StatusEventDto {
        status: "failed".into(),
        error_code: full.then_some(30008),
        error_message: full.then(|| "Unknown error".to_owned()),
        error_reason: full.then(|| "Unknown error.".to_owned()),
        source: "callback".into(),
        observed_at: at(1_780_000_000),
        applied: true,
    }
}

fn links(full: bool) -> PageLinksDto {
    PageLinksDto {
        next: full.then(|| "http://127.0.0.1:8080/api/messages?cursor=abc".to_owned()),
    }
}

fn outcome(full: bool) -> OutcomeDto {
    OutcomeDto {
        sid: SID.into(),
        previous_status: "sent".into(),
        new_status: "undelivered".into(),
        error_code: full.then_some(30003),
        error_message: full.then(|| "Unreachable destination handset".to_owned()),
        error_reason: full.then(|| "The handset was off.".to_owned()),
        outcome: "skipped".into(),
        reason: full.then(|| "coolingDown".to_owned()),
        detail: full.then(|| "Twilio answered 500".to_owned()),
        twilio_code: full.then_some(20500),
        retry_after_seconds: full.then_some(42),
    }
}

/// The outcomes as a refresh gives them: updated, skipped while cooling down, failed.
fn outcomes() -> [OutcomeDto; 3] {
    let updated = OutcomeDto {
        outcome: "updated".into(),
        reason: None,
        detail: None,
        twilio_code: None,
        retry_after_seconds: None,
        ..outcome(true)
    };
    let cooling = OutcomeDto {
        outcome: "skipped".into(),
        reason: Some("coolingDown".into()),
        retry_after_seconds: Some(42),
        ..outcome(false)
    };
    let failed = OutcomeDto {
        outcome: "failed".into(),
        reason: Some("providerUnavailable".into()),
        detail: Some("Twilio answered 500".into()),
        twilio_code: Some(20500),
        ..outcome(false)
    };
    [updated, cooling, failed]
}

fn refresh(full: bool) -> RefreshResponseDto {
    RefreshResponseDto {
        mode: "bulk".into(),
        window_hours: full.then_some(24),
        plan: full.then(|| "sweep".to_owned()),
        outcomes: if full { outcomes().to_vec() } else { vec![] },
        summary: SummaryDto {
            candidates: 1,
            updated: 1,
            unchanged: 0,
            failed: 0,
            skipped: 0,
            twilio_calls: 2,
            twilio_list_pages: 1,
            duration_ms: 12,
        },
    }
}

fn api_key(full: bool) -> ApiKeyDto {
    ApiKeyDto {
        id: "k3x9a2bq".into(),
        label: full.then(|| "CI deploys".to_owned()),
        user_id: 1,
        created_at: at(1_780_000_000),
        last_used_at: full.then(|| at(1_780_000_100)),
        revoked_at: full.then(|| at(1_780_000_200)),
    }
}

fn endpoint(full: bool) -> WebhookEndpointDto {
    WebhookEndpointDto {
        id: "we_1".into(),
        url: "https://hooks.example.com/smsdesk".into(),
        events: vec!["message.status_changed".into()],
        enabled: !full,
        disabled_reason: full.then(|| "gone".to_owned()),
        previous_secret_expires_at: full.then(|| at(1_780_086_400)),
        created_at: at(1_780_000_000),
        updated_at: at(1_780_000_000),
    }
}

fn delivery(full: bool) -> WebhookDeliveryDto {
    WebhookDeliveryDto {
        id: "wd_7".into(),
        webhook_id: "evt_41".into(),
        event: "message.status_changed".into(),
        message_sid: SID.into(),
        message_status: "delivered".into(),
        status: "pending".into(),
        attempt_count: 1,
        next_attempt_at: full.then(|| at(1_780_000_005)),
        created_at: at(1_780_000_000),
        attempts: if full {
            vec![WebhookAttemptDto {
                attempted_at: at(1_780_000_000),
                status_code: Some(500),
                response_body: "not now".into(),
                error: Some("connection reset".into()),
                duration_ms: 3,
            }]
        } else {
            vec![]
        },
    }
}

fn webhook_event(full: bool) -> WebhookEventDto {
    WebhookEventDto {
        event: "message.status_changed".into(),
        timestamp: at(1_780_000_000),
        data: WebhookMessageDto {
            sid: SID.into(),
            direction: "outbound-api".into(),
            from: "+15005550006".into(),
            to: "+14155550100".into(),
            reference: full.then(|| "order-1".to_owned()),
            status: "failed".into(),
            error_code: full.then_some(30008),
            error_message: full.then(|| "Unknown error".to_owned()),
            source: "callback".into(),
        },
    }
}

fn error_detail(full: bool) -> ErrorDetail {
    ErrorDetail {
        code: "cooling_down".into(),
        message: "refreshed less than a minute ago".into(),
        field: full.then(|| "messageSid".to_owned()),
        retry_after_seconds: full.then_some(42),
        twilio_code: full.then_some(20429),
    }
}

#[test]
fn every_shared_type_names_exactly_what_the_document_names_and_conforms() {
    let mut found = Vec::new();
    found.extend(check_both("Message", message));
    found.extend(check_both("StatusEvent", event));
    let with_history = |full: bool| MessageWithHistoryDto {
        message: message(full),
        history: vec![event(full)],
    };
    found.extend(check_both("MessageWithHistory", with_history));
    let page = |full: bool| MessagePageDto {
        messages: vec![message(full)],
        next_cursor: full.then(|| "abc".to_owned()),
        links: links(full),
    };
    found.extend(check_both("MessagePage", page));
    let summary = |full: bool| DeliverySummaryDto {
        window_hours: 24,
        since: at(1_780_000_000),
        total: if full { 3 } else { 0 },
        delivered: u64::from(full),
        settled: if full { 2 } else { 0 },
        delivery_rate: full.then_some(0.5),
        counts: if full {
            vec![
                StatusCountDto {
                    status: "delivered".into(),
                    count: 1,
                },
                StatusCountDto {
                    status: "failed".into(),
                    count: 2,
                },
            ]
        } else {
            Vec::new()
        },
    };
    found.extend(check_both("DeliverySummary", summary));
    found.extend(check("RefreshOutcome", &outcome(true), &outcomes()));
    let single = RefreshResponseDto {
        mode: "single".into(),
        window_hours: None,
        plan: None,
        outcomes: outcomes()[..1].to_vec(),
        ..refresh(true)
    };
    found.extend(check(
        "RefreshResponse",
        &refresh(true),
        &[refresh(true), single],
    ));
    let send = |full: bool| SendSmsDto {
        to: "+14155550100".into(),
        body: "hello".into(),
        from: full.then(|| "+15005550006".to_owned()),
        messaging_service_sid: full.then(|| "MG0123456789abcdef0123456789abcdef".to_owned()),
        reference: full.then(|| "order-1".to_owned()),
    };
    let with_service = SendSmsDto {
        from: None,
        ..send(true)
    };
    let with_number = SendSmsDto {
        messaging_service_sid: None,
        ..send(true)
    };
    found.extend(check(
        "SendSmsRequest",
        &send(true),
        &[with_number, with_service, send(false)],
    ));
    let integration = |full: bool| IntegrationDto {
        account_sid: "AC0123456789abcdef0123456789abcdef".into(),
        auth_token: "0123456789abcdef0123456789abcdef".into(),
        api_key_sid: full.then(|| "SK0123456789abcdef0123456789abcdef".to_owned()),
        api_key_secret: full.then(|| "secret".to_owned()),
        from_number: full.then(|| "+15005550006".to_owned()),
        messaging_service_sid: full.then(|| "MG0123456789abcdef0123456789abcdef".to_owned()),
    };
    let by_key_from_number = IntegrationDto {
        messaging_service_sid: None,
        ..integration(true)
    };
    let by_token_from_service = IntegrationDto {
        api_key_sid: None,
        api_key_secret: None,
        from_number: None,
        ..integration(true)
    };
    found.extend(check(
        "TwilioIntegrationRequest",
        &integration(true),
        &[by_key_from_number, by_token_from_service],
    ));
    let view = |full: bool| IntegrationViewDto {
        account_sid: "AC0123456789abcdef0123456789abcdef".into(),
        credentials: "apiKey".into(),
        api_key_sid: full.then(|| "SK0123456789abcdef0123456789abcdef".to_owned()),
        from_number: full.then(|| "+15005550006".to_owned()),
        messaging_service_sid: full.then(|| "MG0123456789abcdef0123456789abcdef".to_owned()),
    };
    let by_key = IntegrationViewDto {
        messaging_service_sid: None,
        ..view(true)
    };
    let by_token = IntegrationViewDto {
        credentials: "authToken".into(),
        api_key_sid: None,
        from_number: None,
        ..view(true)
    };
    found.extend(check("TwilioIntegration", &view(true), &[by_key, by_token]));
    found.extend(check_both("ApiKey", api_key));
    let keys = |full: bool| ApiKeyListDto {
        keys: vec![api_key(full)],
    };
    found.extend(check_both("ApiKeyList", keys));
    let create_key = |full: bool| CreateApiKeyDto {
        label: full.then(|| "CI deploys".to_owned()),
    };
    found.extend(check_both("CreateApiKeyRequest", create_key));
    let issued = |full: bool| IssuedApiKeyDto {
        summary: api_key(full),
        key: format!("smsd_k3x9a2bq_{}", "A1b2C3d4E5".repeat(4)),
    };
    found.extend(check_both("IssuedApiKey", issued));
    let endpoint_request = |full: bool| WebhookEndpointRequestDto {
        url: full.then(|| "https://hooks.example.com/smsdesk".to_owned()),
        events: full.then(|| vec!["message.received".to_owned()]),
        enabled: full.then_some(false),
    };
    found.extend(check_both("WebhookEndpointRequest", endpoint_request));
    found.extend(check_both("WebhookEndpoint", endpoint));
    let endpoints = |full: bool| WebhookEndpointListDto {
        endpoints: vec![endpoint(full)],
    };
    found.extend(check_both("WebhookEndpointList", endpoints));
    let with_secret = |full: bool| WebhookEndpointWithSecretDto {
        endpoint: endpoint(full),
        secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into(),
    };
    found.extend(check_both("WebhookEndpointWithSecret", with_secret));
    found.extend(check_both("WebhookDelivery", delivery));
    let deliveries = |full: bool| WebhookDeliveryPageDto {
        deliveries: vec![delivery(full)],
        next_cursor: full.then(|| "wd_7".to_owned()),
        links: links(full),
    };
    found.extend(check_both("WebhookDeliveryPage", deliveries));
    found.extend(check_both("WebhookEvent", webhook_event));
    found.extend(check_both("ErrorDetail", error_detail));
    let error = |full: bool| ErrorBody {
        error: error_detail(full),
    };
    found.extend(check_both("Error", error));
    assert!(
        found.is_empty(),
        "the types and the document differ:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_drift_check_notices_a_field_either_side_lacks() {
    let doc = document();
    let schema = serde_json::json!({ "$ref": "#/components/schemas/ApiKeyList" });
    let mut sample = serde_json::to_value(ApiKeyListDto {
        keys: vec![api_key(true)],
    })
    .expect("serialises");
    sample["keys"][0]["colour"] = "blue".into();
    sample["keys"][0]
        .as_object_mut()
        .expect("an object")
        .remove("label");
    let mut found = Vec::new();
    drift(&doc, &schema, &sample, "ApiKeyList", &mut found);
    assert_eq!(
        found,
        [
            "ApiKeyList.keys[].colour: in the type, not in the document",
            "ApiKeyList.keys[].label: in the document, not in the type",
        ]
    );
}
