//! The HTTP transport against a real receiver on loopback: headers and body arrive, redirects are
//! answers and never followed, answers are read to 4 KiB, and non-public addresses are refused
//! (literal, or after resolving) unless the policy allows them.

use std::sync::{Arc, Mutex};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use smsdesk_domain::ports::WebhookTransport;
use smsdesk_domain::webhooks::UrlPolicy;
use smsdesk_webhooks::{BODY_READ_LIMIT, HttpWebhookTransport};

type Seen = Arc<Mutex<Vec<(String, Option<String>, Vec<u8>)>>>;

async fn receiver() -> (String, Seen) {
    let seen: Seen = Arc::default();
    let recorded = seen.clone();
    let server = HttpServer::new(move || {
        let recorded = recorded.clone();
        App::new()
            .route(
                "/hook",
                web::post().to(move |req: HttpRequest, body: web::Bytes| {
                    let recorded = recorded.clone();
                    async move {
                        let id = req
                            .headers()
                            .get("webhook-id")
                            .and_then(|v| v.to_str().ok())
                            .map(str::to_owned);
                        recorded.lock().expect("lock").push((
                            req.path().to_owned(),
                            id,
                            body.to_vec(),
                        ));
                        HttpResponse::Ok().body("thanks")
                    }
                }),
            )
            .route(
                "/moved",
                web::post().to(|| async {
                    HttpResponse::Found()
                        .insert_header(("location", "/hook"))
                        .finish()
                }),
            )
            .route(
                "/chatty",
                web::post()
                    .to(|| async { HttpResponse::InternalServerError().body("x".repeat(100_000)) }),
            )
    })
    .workers(1)
    .bind(("127.0.0.1", 0))
    .expect("bind");
    let address = server.addrs()[0];
    tokio::spawn(server.run());
    (format!("http://{address}"), seen)
}

#[actix_web::test]
async fn a_delivery_arrives_with_its_headers_and_a_redirect_is_an_answer_not_followed() {
    let (base, seen) = receiver().await;
    let transport = HttpWebhookTransport::new(UrlPolicy::DEVELOPMENT).expect("client");
    let answer = transport
        .post(
            &format!("{base}/hook"),
            vec![("webhook-id", "evt_1".to_owned())],
            b"{\"a\":1}".to_vec(),
        )
        .await
        .expect("answered");
    assert_eq!(
        (answer.status, answer.body.as_slice()),
        (200, &b"thanks"[..])
    );
    let moved = transport
        .post(&format!("{base}/moved"), vec![], b"{}".to_vec())
        .await
        .expect("answered");
    assert_eq!(moved.status, 302, "the redirect is the answer");
    let recorded = seen.lock().expect("lock").clone();
    assert_eq!(
        recorded,
        vec![(
            "/hook".to_owned(),
            Some("evt_1".to_owned()),
            b"{\"a\":1}".to_vec()
        )],
        "the redirect's target was never posted to"
    );
    let chatty = transport
        .post(&format!("{base}/chatty"), vec![], b"{}".to_vec())
        .await
        .expect("answered");
    assert_eq!(chatty.status, 500);
    assert_eq!(
        chatty.body.len(),
        BODY_READ_LIMIT,
        "only the start of an answer is read"
    );
}

#[actix_web::test]
async fn non_public_addresses_are_refused_unless_allowed() {
    let (base, seen) = receiver().await;
    let port = base.rsplit(':').next().unwrap_or_default().to_owned();
    let public_only = HttpWebhookTransport::new(UrlPolicy {
        require_https: false,
        allow_private: false,
    })
    .expect("client");
    for url in [
        format!("{base}/hook"),
        format!("http://localhost:{port}/hook"),
        format!("http://[::ffff:127.0.0.1]:{port}/hook"),
    ] {
        let refused = public_only.post(&url, vec![], b"{}".to_vec()).await;
        assert!(refused.is_err(), "{url}: {refused:?}");
    }
    let production = HttpWebhookTransport::new(UrlPolicy::PRODUCTION).expect("client");
    let plain = production
        .post("http://hooks.example.com/hook", vec![], b"{}".to_vec())
        .await
        .expect_err("http refused");
    assert!(plain.0.contains("https"), "{plain}");
    assert!(
        seen.lock().expect("lock").is_empty(),
        "nothing reached the receiver"
    );
}
