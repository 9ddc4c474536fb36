//! The SMS page's server side without a browser: the HTML and its headers, the demo key, the
//! assets, and the live-event stream (authentication, content type, team scoping, publishing
//! from send and refresh).

use std::time::Duration;

use actix_web::App;
use actix_web::body::MessageBody;
use actix_web::dev::ServiceResponse;
use actix_web::test::{self, TestRequest};
use smsdesk_domain::{DeliveryState, Direction, MessageStatus};
use smsdesk_test_support::world::{OTHER_TEAM_KEY, PRO_ADMIN_KEY as PRO_KEY, World};
use smsdesk_web::WebConfig;
use smsdesk_web::events::MessageEvent;

fn demo_config(production: bool) -> WebConfig {
    WebConfig {
        production,
        demo_api_key: Some("sk_demo_\"<key>".to_owned()),
        ..WebConfig::default()
    }
}

async fn get(world: &World, request: TestRequest) -> ServiceResponse {
    let state = world.state.clone();
    let app =
        test::init_service(App::new().configure(move |cfg| smsdesk_web::configure(cfg, state)))
            .await;
    test::call_service(&app, request.to_request()).await
}

fn header<'a>(response: &'a ServiceResponse, name: &str) -> &'a str {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// The next chunk of a streaming body, waiting at most a few seconds.
async fn next_chunk<B: MessageBody + Unpin>(body: &mut B) -> String {
    let chunk = tokio::time::timeout(
        Duration::from_secs(5),
        futures::future::poll_fn(|cx| std::pin::Pin::new(&mut *body).poll_next(cx)),
    )
    .await;
    match chunk {
        Ok(Some(Ok(bytes))) => String::from_utf8_lossy(&bytes).into_owned(),
        Ok(Some(Err(_))) => panic!("the stream failed"),
        Ok(None) => panic!("the stream ended"),
        Err(_) => panic!("no chunk within 5 s"),
    }
}

#[actix_web::test]
async fn the_page_is_html_with_a_strict_policy_and_the_servers_statuses_and_cool_downs() {
    let world = World::for_page(WebConfig::default()).await;
    let response = get(&world, TestRequest::get().uri("/sms")).await;
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(
        header(&response, "content-type"),
        "text/html; charset=utf-8"
    );
    let policy = header(&response, "content-security-policy").to_owned();
    assert!(
        policy.contains("script-src 'self'") && !policy.contains("unsafe-inline"),
        "no inline script may run: {policy}"
    );
    assert_eq!(header(&response, "cache-control"), "no-store");
    assert_eq!(header(&response, "x-content-type-options"), "nosniff");
    assert!(
        !header(&response, "x-request-id").is_empty(),
        "the edge ran"
    );
    let html = String::from_utf8_lossy(&test::read_body(response).await).into_owned();
    assert!(!html.contains("{{"), "every placeholder is filled");
    assert!(html.contains("data-message-cooldown=\"60\""), "{html}");
    assert!(html.contains("<option value=\"partially_delivered\">"));
    assert!(
        html.contains("data-terminal=\"delivered undelivered failed canceled received read\""),
        "the final statuses come from the domain"
    );
    assert!(
        html.contains(
            "data-ranks=\"scheduled:0 accepted:1 receiving:2 queued:2 sending:3 sent:4 \
             partially_delivered:5 delivered:6 undelivered:6 failed:6 canceled:6 received:6 read:7\""
        ),
        "the forward-only order comes from the domain: {html}"
    );
    assert!(!html.contains("data-demo"), "no demo key unless configured");
}

#[actix_web::test]
async fn the_demo_key_is_filled_in_escaped_in_development_and_never_in_production() {
    let cases = [
        (false, true, "development shows the demo key"),
        (true, false, "production never renders a key"),
    ];
    for (production, shown, why) in cases {
        let world = World::for_page(demo_config(production)).await;
        let response = get(&world, TestRequest::get().uri("/sms")).await;
        let html = String::from_utf8_lossy(&test::read_body(response).await).into_owned();
        assert_eq!(
            html.contains("value=\"sk_demo_&quot;&lt;key&gt;\" data-demo=\"true\""),
            shown,
            "{why}"
        );
        assert!(!html.contains("sk_demo_\"<key>"), "{why}: never unescaped");
    }
}

#[actix_web::test]
async fn the_assets_are_served_with_their_types_and_other_methods_are_refused() {
    let world = World::for_page(WebConfig::default()).await;
    for (path, content_type, marker) in [
        (
            "/sms/app.js",
            "text/javascript; charset=utf-8",
            "use strict",
        ),
        ("/sms/app.css", "text/css; charset=utf-8", ".refresh"),
    ] {
        let response = get(&world, TestRequest::get().uri(path)).await;
        assert_eq!(response.status().as_u16(), 200, "{path}");
        assert_eq!(header(&response, "content-type"), content_type, "{path}");
        let text = String::from_utf8_lossy(&test::read_body(response).await).into_owned();
        assert!(text.contains(marker), "{path} is the right file");
    }
    let response = get(&world, TestRequest::post().uri("/sms")).await;
    assert_eq!(response.status().as_u16(), 405, "the page is read-only");
}

#[actix_web::test]
async fn the_event_stream_needs_a_key_and_refuses_query_parameters() {
    let world = World::for_page(WebConfig::default()).await;
    let cases = [
        (
            TestRequest::get().uri("/api/messages/events"),
            401,
            "no key",
        ),
        (
            TestRequest::get()
                .uri("/api/messages/events")
                .insert_header(("authorization", "Bearer sk_unknown")),
            401,
            "unknown key",
        ),
        (
            TestRequest::get()
                .uri("/api/messages/events?key=sk_demo_pro_team_key")
                .insert_header(("authorization", format!("Bearer {PRO_KEY}"))),
            400,
            "keys never travel in the URL; unknown parameters are refused",
        ),
    ];
    for (request, status, why) in cases {
        let response = get(&world, request).await;
        assert_eq!(response.status().as_u16(), status, "{why}");
        assert_eq!(
            header(&response, "content-type"),
            "application/json",
            "{why}"
        );
    }
    assert_eq!(world.state.events().subscribers(), 0);
}

#[actix_web::test]
async fn a_send_and_a_refresh_reach_their_teams_stream_and_no_other() {
    let world = World::for_page(WebConfig::default()).await;
    let sid = world
        .seed(
            1,
            1,
            2,
            Direction::OutboundApi,
            DeliveryState::new(MessageStatus::Queued),
        )
        .await;
    world.settle_live_events().await;
    let state = world.state.clone();
    let app =
        test::init_service(App::new().configure(move |cfg| smsdesk_web::configure(cfg, state)))
            .await;
    let open = |key: &str| {
        TestRequest::get()
            .uri("/api/messages/events")
            .insert_header(("authorization", format!("Bearer {key}")))
            .to_request()
    };
    let ours = test::call_service(&app, open(PRO_KEY)).await;
    let theirs = test::call_service(&app, open(OTHER_TEAM_KEY)).await;
    assert_eq!(ours.status().as_u16(), 200);
    assert_eq!(header(&ours, "content-type"), "text/event-stream");
    assert_eq!(header(&ours, "cache-control"), "no-store");
    let mut ours = ours.into_body();
    let mut theirs = theirs.into_body();
    assert!(next_chunk(&mut ours).await.contains("event: ready"));
    assert!(next_chunk(&mut theirs).await.contains("event: ready"));
    assert_eq!(world.state.events().subscribers(), 2);

    world
        .provider
        .set_state(&sid, DeliveryState::new(MessageStatus::Sent));
    let refreshed = test::call_service(
        &app,
        TestRequest::post()
            .uri(&format!(
                "/api/integrations/twilio/messages/refresh-status?messageSid={sid}"
            ))
            .insert_header(("authorization", format!("Bearer {PRO_KEY}")))
            .to_request(),
    )
    .await;
    assert_eq!(refreshed.status().as_u16(), 200);
    let event = next_chunk(&mut ours).await;
    assert!(
        event.starts_with("id: ")
            && event.contains("\nevent: message\n")
            && event.contains(&format!("\"sid\":\"{sid}\""))
            && event.contains("\"change\":\"status\"")
            && event.contains("\"status\":\"sent\""),
        "the refresh's change is pushed: {event}"
    );

    let sent = test::call_service(
        &app,
        TestRequest::post()
            .uri("/api/integrations/twilio/sms/send")
            .insert_header(("authorization", format!("Bearer {PRO_KEY}")))
            .set_json(serde_json::json!({"to": "+14155550123", "body": "hello"}))
            .to_request(),
    )
    .await;
    assert_eq!(sent.status().as_u16(), 201);
    let event = next_chunk(&mut ours).await;
    assert!(
        event.contains("\"change\":\"created\"") && event.contains("\"status\":\"queued\""),
        "a sent message is pushed: {event}"
    );

    // Team 2's stream skipped both: the first thing it gets is team 2's own event.
    let marker = world
        .seed(
            2,
            9,
            1,
            Direction::OutboundApi,
            DeliveryState::new(MessageStatus::Queued),
        )
        .await;
    world.state.events().publish(MessageEvent::status_changed(
        smsdesk_test_support::world::team(2),
        &marker,
        &MessageStatus::Sending,
        None,
        None,
    ));
    let event = next_chunk(&mut theirs).await;
    assert!(
        event.contains(&marker.to_string()) && !event.contains(&sid.to_string()),
        "another team's stream only carries its own events: {event}"
    );
    drop((ours, theirs));
    assert_eq!(
        world.state.events().subscribers(),
        0,
        "closed streams unsubscribe"
    );
}

#[actix_web::test]
async fn messages_carry_the_human_reason_for_their_error_code() {
    let world = World::for_page(WebConfig::default()).await;
    let sid = world
        .seed(
            1,
            7,
            5,
            Direction::OutboundApi,
            World::failed(30003, "Unreachable destination handset"),
        )
        .await;
    let response = get(
        &world,
        TestRequest::get()
            .uri(&format!("/api/messages/{sid}"))
            .insert_header(("authorization", format!("Bearer {PRO_KEY}"))),
    )
    .await;
    let json: serde_json::Value =
        serde_json::from_slice(&test::read_body(response).await).expect("a JSON message");
    assert_eq!(json["errorCode"], 30003);
    assert!(
        json["errorReason"]
            .as_str()
            .is_some_and(|r| r.starts_with("Unreachable destination handset (off")),
        "{json}"
    );
}

/// A Twilio webhook signed for team 1's account, as Twilio would send it to `BASE`.
fn webhook(path: &str, params: &[(&str, &str)]) -> actix_web::test::TestRequest {
    const BASE: &str = "https://sms.example.com";
    let owned: Vec<(String, String)> = params
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let signature = smsdesk_twilio::signature::compute_signature(
        smsdesk_test_support::world::AUTH_TOKEN,
        &format!("{BASE}{path}"),
        &owned,
    );
    TestRequest::post()
        .uri(path)
        .insert_header(("content-type", "application/x-www-form-urlencoded"))
        .insert_header((smsdesk_twilio::signature::SIGNATURE_HEADER, signature))
        .set_payload(
            url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(params)
                .finish(),
        )
}

#[actix_web::test]
async fn status_callbacks_and_inbound_sms_reach_the_stream() {
    let world = World::for_page(WebConfig {
        public_base_url: Some("https://sms.example.com".to_owned()),
        ..WebConfig::default()
    })
    .await;
    let sid = world
        .seed(
            1,
            3,
            1,
            Direction::OutboundApi,
            DeliveryState::new(MessageStatus::Sent),
        )
        .await;
    let sid = sid.to_string();
    world.settle_live_events().await;
    let state = world.state.clone();
    let app =
        test::init_service(App::new().configure(move |cfg| smsdesk_web::configure(cfg, state)))
            .await;
    let events = test::call_service(
        &app,
        TestRequest::get()
            .uri("/api/messages/events")
            .insert_header(("authorization", format!("Bearer {PRO_KEY}")))
            .to_request(),
    )
    .await;
    let mut events = events.into_body();
    assert!(next_chunk(&mut events).await.contains("event: ready"));

    let callback = test::call_service(
        &app,
        webhook(
            "/api/integrations/twilio/status-callback",
            &[
                ("AccountSid", smsdesk_test_support::world::ACCOUNT),
                ("MessageSid", &sid),
                ("MessageStatus", "undelivered"),
                ("ErrorCode", "30005"),
            ],
        )
        .to_request(),
    )
    .await;
    assert_eq!(callback.status().as_u16(), 200, "the callback is accepted");
    let event = next_chunk(&mut events).await;
    assert!(
        event.contains(&format!("\"sid\":\"{sid}\""))
            && event.contains("\"status\":\"undelivered\"")
            && event.contains("\"errorCode\":30005")
            && event.contains("Unknown destination handset"),
        "a status callback is pushed with its reason: {event}"
    );

    let inbound_sid = "SM00000000000000000000000000000abc";
    let received = test::call_service(
        &app,
        webhook(
            "/api/integrations/twilio/sms/receive",
            &[
                ("AccountSid", smsdesk_test_support::world::ACCOUNT),
                ("MessageSid", inbound_sid),
                ("From", "+14155550100"),
                ("To", "+15005550006"),
                ("Body", "STOP"),
            ],
        )
        .to_request(),
    )
    .await;
    assert_eq!(
        received.status().as_u16(),
        200,
        "the inbound SMS is accepted"
    );
    let event = next_chunk(&mut events).await;
    assert!(
        event.contains(inbound_sid)
            && event.contains("\"change\":\"created\"")
            && event.contains("\"status\":\"received\""),
        "an inbound SMS is pushed: {event}"
    );
}

#[actix_web::test]
async fn a_stream_resumed_with_last_event_id_replays_what_it_missed_and_bad_ids_are_refused() {
    let world = World::for_page(WebConfig {
        refresh_policy: smsdesk_domain::RefreshPolicy {
            message_cooldown: Duration::ZERO,
            ..smsdesk_domain::RefreshPolicy::default()
        },
        ..WebConfig::default()
    })
    .await;
    let sid = world
        .seed(
            1,
            4,
            1,
            Direction::OutboundApi,
            DeliveryState::new(MessageStatus::Queued),
        )
        .await;
    world.settle_live_events().await;
    let state = world.state.clone();
    let app =
        test::init_service(App::new().configure(move |cfg| smsdesk_web::configure(cfg, state)))
            .await;
    let open = |last: Option<&str>| {
        let mut request = TestRequest::get()
            .uri("/api/messages/events")
            .insert_header(("authorization", format!("Bearer {PRO_KEY}")));
        if let Some(last) = last {
            request = request.insert_header(("last-event-id", last.to_owned()));
        }
        request.to_request()
    };
    let refresh = |status: MessageStatus| {
        world.provider.set_state(&sid, DeliveryState::new(status));
        TestRequest::post()
            .uri(&format!(
                "/api/integrations/twilio/messages/refresh-status?messageSid={sid}"
            ))
            .insert_header(("authorization", format!("Bearer {PRO_KEY}")))
            .to_request()
    };

    let mut first = test::call_service(&app, open(None)).await.into_body();
    assert!(next_chunk(&mut first).await.contains("{\"resumed\":false}"));
    assert_eq!(
        test::call_service(&app, refresh(MessageStatus::Sending))
            .await
            .status()
            .as_u16(),
        200
    );
    let event = next_chunk(&mut first).await;
    let id = event
        .strip_prefix("id: ")
        .and_then(|rest| rest.split('\n').next())
        .unwrap_or_else(|| panic!("the event carries an id: {event}"))
        .to_owned();
    drop(first);

    // While the page is away, the message moves twice.
    for status in [MessageStatus::Sent, MessageStatus::Delivered] {
        let answer = test::call_service(&app, refresh(status)).await;
        assert_eq!(answer.status().as_u16(), 200);
    }
    let mut resumed = test::call_service(&app, open(Some(&id))).await.into_body();
    assert!(
        next_chunk(&mut resumed)
            .await
            .contains("{\"resumed\":true}")
    );
    for status in ["sent", "delivered"] {
        let event = next_chunk(&mut resumed).await;
        assert!(
            event.contains(&format!("\"status\":\"{status}\"")),
            "the missed {status} is replayed, in order: {event}"
        );
    }
    drop(resumed);

    for (bad, why) in [
        ("abc", "not a number"),
        ("-4", "not positive"),
        ("0", "zero"),
    ] {
        let answer = test::call_service(&app, open(Some(bad))).await;
        assert_eq!(answer.status().as_u16(), 400, "{why}");
        let body: serde_json::Value =
            serde_json::from_slice(&test::read_body(answer).await).expect("the error shape");
        assert_eq!(body["error"]["code"], "bad_request", "{why}: {body}");
    }
    let mut unknown = test::call_service(&app, open(Some("999999")))
        .await
        .into_body();
    assert!(
        next_chunk(&mut unknown)
            .await
            .contains("{\"resumed\":false}")
    );
    assert!(
        next_chunk(&mut unknown).await.starts_with("event: resync"),
        "an id this team never received means reload"
    );
}
