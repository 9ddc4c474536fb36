//! The OpenAPI document against the service it describes: served as compiled in, every
//! reference resolves, every documented operation is routed and every other method on its path
//! is 405, and real responses carry what the document says they carry.

use actix_web::http::Method;
use actix_web::test::TestRequest;
use serde_json::Value;
use smsdesk_domain::MessageStatus;

use smsdesk_test_support::world::{PRO_MEMBER_KEY, World, bearer};

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

pub(crate) fn document() -> Value {
    serde_json::from_str(smsdesk_web::OPENAPI_DOCUMENT).expect("the document is JSON")
}

/// Follows a local `$ref` (`#/components/...`) to what it names.
pub(crate) fn resolve<'a>(doc: &'a Value, node: &'a Value) -> &'a Value {
    match node.get("$ref").and_then(Value::as_str) {
        Some(reference) => {
            let pointer = reference
                .strip_prefix('#')
                .unwrap_or_else(|| panic!("only local references are used: {reference}"));
            let target = doc
                .pointer(pointer)
                .unwrap_or_else(|| panic!("{reference} names nothing"));
            resolve(doc, target)
        }
        None => node,
    }
}

fn collect_refs<'a>(node: &'a Value, found: &mut Vec<&'a str>) {
    match node {
        Value::Object(map) => {
            for (key, value) in map {
                match (key.as_str(), value) {
                    ("$ref", Value::String(reference)) => found.push(reference),
                    _ => collect_refs(value, found),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|item| collect_refs(item, found)),
        _ => {}
    }
}

/// Where `value` breaks `schema` (a node of the document), as JSON Schema 2020-12 (OpenAPI
/// 3.1's dialect) sees it; the document's components go along so its `$ref`s resolve.
pub(crate) fn violations(doc: &Value, schema: &Value, value: &Value) -> Vec<String> {
    let mut root = schema.clone();
    root["components"] = doc["components"].clone();
    let validator = jsonschema::draft202012::new(&root).expect("the schema compiles");
    validator
        .iter_errors(value)
        .map(|error| format!("{}: {error}", error.instance_path()))
        .collect()
}

/// The schema of `path`'s `method` response `status` as JSON.
fn response_schema<'a>(doc: &'a Value, path: &str, method: &str, status: u16) -> &'a Value {
    let operation = &doc["paths"][path][method];
    let response = resolve(doc, &operation["responses"][status.to_string()]);
    let schema = &response["content"]["application/json"]["schema"];
    assert!(
        !schema.is_null(),
        "{method} {path} documents no JSON body for {status}"
    );
    schema
}

fn assert_conforms(doc: &Value, schema: &Value, value: &Value, what: &str) {
    let broken = violations(doc, schema, value);
    assert!(
        broken.is_empty(),
        "{what} does not match the document:\n{}\nbody: {value}",
        broken.join("\n")
    );
}

#[actix_web::test]
async fn the_document_is_served_as_compiled_in_and_every_reference_resolves() {
    let world = World::new();
    let answer = world
        .call(TestRequest::get().uri("/api/openapi.json"))
        .await;
    assert_eq!(answer.status.as_u16(), 200, "{}", answer.text);
    assert!(
        answer
            .header("content-type")
            .is_some_and(|c| c.starts_with("application/json")),
        "served as JSON"
    );
    let doc = document();
    assert_eq!(
        answer.json, doc,
        "the service serves the compiled-in document"
    );
    assert!(
        doc["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.1"))
    );
    assert_eq!(
        doc["info"]["version"].as_str(),
        Some(env!("CARGO_PKG_VERSION")),
        "the document's version is the crate's"
    );
    let mut references = Vec::new();
    collect_refs(&doc, &mut references);
    assert!(references.len() > 20, "the document shares its schemas");
    for reference in references {
        resolve(&doc, &serde_json::json!({ "$ref": reference }));
    }
}

#[actix_web::test]
async fn every_documented_operation_is_routed_and_every_other_method_is_405() {
    let world = World::new();
    let doc = document();
    let paths = doc["paths"].as_object().expect("paths");
    assert!(paths.len() >= 15, "all of the surface: {}", paths.len());
    for (number, (path, item)) in paths.iter().enumerate() {
        let uri = path.replace("{sid}", "SM0123456789abcdef0123456789abcdef");
        let documented = METHODS
            .iter()
            .filter(|method| item.get(**method).is_some())
            .map(|method| method.to_uppercase())
            .collect::<Vec<_>>()
            .join(", ");
        for method in METHODS {
            // One client address per path, so the sweep stays inside the per-IP budget.
            let client = std::net::SocketAddr::from((
                [10, 0, 0, u8::try_from(number).expect("few paths")],
                40_000,
            ));
            let request = TestRequest::default()
                .method(Method::from_bytes(method.to_uppercase().as_bytes()).expect("a method"))
                .uri(&uri)
                .peer_addr(client);
            // Without a key: answers without touching anything, and never opens a stream.
            let answer = world.call(request).await;
            let code = answer.error_code();
            if item.get(method).is_some() {
                assert!(
                    code != Some("not_found") && code != Some("method_not_allowed"),
                    "{method} {path} is documented but not routed: {} {}",
                    answer.status,
                    answer.text
                );
            } else {
                assert_eq!(
                    answer.status.as_u16(),
                    405,
                    "{method} {path} is served but not documented: {}",
                    answer.text
                );
                assert_eq!(
                    answer.header("allow"),
                    Some(documented.as_str()),
                    "{method} {path}: the 405 names the method the path does serve"
                );
            }
        }
    }
}

#[actix_web::test]
async fn real_responses_carry_what_the_document_says() {
    let world = World::new();
    world
        .connect_twilio(1, smsdesk_test_support::world::ACCOUNT)
        .await;
    let delivered = world.seed_message(1, 1, 5, MessageStatus::Delivered).await;
    world.seed_message(1, 2, 4, MessageStatus::Sent).await;
    let doc = document();

    let page = world
        .call(
            TestRequest::get()
                .uri("/api/messages?limit=1")
                .insert_header(bearer(PRO_MEMBER_KEY)),
        )
        .await;
    assert_eq!(page.status.as_u16(), 200, "{}", page.text);
    assert!(page.json["nextCursor"].is_string(), "a first page of two");
    assert_conforms(
        &doc,
        response_schema(&doc, "/api/messages", "get", 200),
        &page.json,
        "a page of messages",
    );

    let one = world
        .call(
            TestRequest::get()
                .uri(&format!("/api/messages/{}", delivered.sid))
                .insert_header(bearer(PRO_MEMBER_KEY)),
        )
        .await;
    assert_eq!(one.status.as_u16(), 200, "{}", one.text);
    assert_conforms(
        &doc,
        response_schema(&doc, "/api/messages/{sid}", "get", 200),
        &one.json,
        "a message with its history",
    );

    let errors = [
        (
            TestRequest::get().uri("/api/messages"),
            "/api/messages",
            "get",
            401,
        ),
        (
            TestRequest::get()
                .uri("/api/messages?limit=lots")
                .insert_header(bearer(PRO_MEMBER_KEY)),
            "/api/messages",
            "get",
            400,
        ),
        (
            TestRequest::get()
                .uri("/api/messages/SM0000000000000000000000000000ffff")
                .insert_header(bearer(PRO_MEMBER_KEY)),
            "/api/messages/{sid}",
            "get",
            404,
        ),
    ];
    for (request, path, method, status) in errors {
        let answer = world.call(request).await;
        assert_eq!(answer.status.as_u16(), status, "{}", answer.text);
        assert_conforms(
            &doc,
            response_schema(&doc, path, method, status),
            &answer.json,
            &format!("{method} {path} {status}"),
        );
    }
}

#[actix_web::test]
async fn webhook_endpoint_answers_carry_what_the_document_says() {
    use smsdesk_test_support::world::PRO_ADMIN_KEY;
    let world = World::new();
    world
        .connect_twilio(1, smsdesk_test_support::world::ACCOUNT)
        .await;
    let doc = document();
    let admin = |request: TestRequest| request.insert_header(bearer(PRO_ADMIN_KEY));
    let created = world
        .call(
            admin(TestRequest::post().uri("/api/webhook-endpoints"))
                .set_json(serde_json::json!({"url": "http://127.0.0.1:9/hooks"})),
        )
        .await;
    assert_eq!(created.status.as_u16(), 201, "{}", created.text);
    let id = created.json["id"].as_str().unwrap_or_default().to_owned();
    world.seed_message(1, 1, 5, MessageStatus::Sent).await;
    world.receiver.answer_next([Ok(503)]);
    world
        .state
        .deliver_webhooks()
        .deliver_due()
        .await
        .expect("a round");
    // What the receiver got is the document's WebhookEvent, with its headers.
    let posted = world.receiver.posted();
    let body: Value = serde_json::from_slice(&posted[0].body).expect("a JSON body");
    assert_conforms(
        &doc,
        &serde_json::json!({"$ref": "#/components/schemas/WebhookEvent"}),
        &body,
        "a delivery's body",
    );
    for parameter in doc["webhooks"]["messageEvent"]["post"]["parameters"]
        .as_array()
        .expect("the headers are documented")
    {
        let name = parameter["name"].as_str().unwrap_or_default();
        let value = Value::from(posted[0].header(name).unwrap_or_default());
        assert_conforms(&doc, &parameter["schema"], &value, name);
    }
    let one = format!("/api/webhook-endpoints/{id}");
    let deliveries = format!("{one}/deliveries?limit=1");
    let page = world.call(admin(TestRequest::get().uri(&deliveries))).await;
    let delivery = page.json["deliveries"][0]["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let checks = [
        (created, "/api/webhook-endpoints", "post", 201),
        (
            world
                .call(admin(TestRequest::get().uri("/api/webhook-endpoints")))
                .await,
            "/api/webhook-endpoints",
            "get",
            200,
        ),
        (
            world
                .call(
                    admin(TestRequest::patch().uri(&one))
                        .set_json(serde_json::json!({"enabled": true})),
                )
                .await,
            "/api/webhook-endpoints/{id}",
            "patch",
            200,
        ),
        (
            world
                .call(admin(
                    TestRequest::post().uri(&format!("{one}/rotate-secret")),
                ))
                .await,
            "/api/webhook-endpoints/{id}/rotate-secret",
            "post",
            200,
        ),
        (page, "/api/webhook-endpoints/{id}/deliveries", "get", 200),
        (
            world
                .call(admin(
                    TestRequest::post().uri(&format!("{one}/deliveries/{delivery}/replay")),
                ))
                .await,
            "/api/webhook-endpoints/{id}/deliveries/{delivery}/replay",
            "post",
            202,
        ),
        (
            world
                .call(
                    admin(TestRequest::post().uri("/api/webhook-endpoints"))
                        .set_json(serde_json::json!({"url": "gopher://x"})),
                )
                .await,
            "/api/webhook-endpoints",
            "post",
            400,
        ),
        (
            world
                .call(admin(
                    TestRequest::get().uri("/api/webhook-endpoints/we_999"),
                ))
                .await,
            "/api/webhook-endpoints/{id}",
            "get",
            404,
        ),
    ];
    for (answer, path, method, status) in checks {
        assert_eq!(
            answer.status.as_u16(),
            status,
            "{method} {path}: {}",
            answer.text
        );
        assert_conforms(
            &doc,
            response_schema(&doc, path, method, status),
            &answer.json,
            &format!("{method} {path} {status}"),
        );
    }
}

#[test]
fn the_conformance_check_notices_what_a_body_gets_wrong() {
    let doc = document();
    let error = serde_json::json!({ "$ref": "#/components/schemas/Error" });
    let good =
        serde_json::json!({ "error": { "code": "not_found", "message": "no such message" } });
    assert!(violations(&doc, &error, &good).is_empty());
    let missing = serde_json::json!({ "error": { "code": "not_found" } });
    let unknown_code =
        serde_json::json!({ "error": { "code": "teapot", "message": "short and stout" } });
    let wrong_type = serde_json::json!({ "error": { "code": "not_found", "message": 7 } });
    for (bad, why) in [
        (missing, "a missing message"),
        (unknown_code, "an undocumented code"),
        (wrong_type, "a number for a string"),
    ] {
        assert!(
            !violations(&doc, &error, &bad).is_empty(),
            "{why} must be noticed"
        );
    }
}

#[test]
fn the_error_codes_are_one_list_in_the_code_the_document_and_the_api_guide() {
    let doc = document();
    let documented: Vec<&str> = doc["components"]["schemas"]["ErrorCode"]["enum"]
        .as_array()
        .expect("the ErrorCode enum")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let mut served: Vec<&str> = smsdesk_web::ErrorCode::ALL
        .iter()
        .map(|code| code.as_str())
        .collect();
    let mut in_document = documented.clone();
    served.sort_unstable();
    in_document.sort_unstable();
    assert_eq!(
        in_document, served,
        "OpenAPI's ErrorCode enum and ErrorCode::ALL"
    );

    let guide = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/api.md"),
    )
    .expect("docs/api.md");
    for code in served {
        assert!(
            guide.contains(&format!("| `{code}` |")),
            "docs/api.md's error table has no row for {code}"
        );
    }
}
