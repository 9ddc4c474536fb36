//! Connection resets between the service and Twilio: a TCP proxy in front of the simulator that
//! resets connections (RST, no answer) on demand. The service runs in production mode, the one
//! where Twilio's address is configurable.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;
use smsdesk_domain::{MessageStatus, Plan};

use smsdesk_test_support::app::{TestApp, spawn_app_with};
use smsdesk_test_support::app::{outcome_of, stored_status};

/// A TCP proxy to the simulator that resets every connection while `resetting` is set.
struct ResettingProxy {
    url: String,
    target: Arc<OnceLock<SocketAddr>>,
    resetting: Arc<AtomicBool>,
    resets: Arc<AtomicU64>,
}

impl ResettingProxy {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bound");
        let url = format!("http://{}", listener.local_addr().expect("address"));
        let target: Arc<OnceLock<SocketAddr>> = Arc::default();
        let resetting = Arc::new(AtomicBool::new(false));
        let resets = Arc::new(AtomicU64::new(0));
        tokio::spawn({
            let (target, resetting, resets) = (target.clone(), resetting.clone(), resets.clone());
            async move {
                while let Ok((mut client, _)) = listener.accept().await {
                    if resetting.load(Ordering::SeqCst) {
                        resets.fetch_add(1, Ordering::SeqCst);
                        // A zero linger makes the close an RST, at once: the deprecation is about
                        // a non-zero linger blocking the thread on drop.
                        #[allow(deprecated)]
                        let _ = client.set_linger(Some(Duration::ZERO));
                        drop(client);
                        continue;
                    }
                    let Some(target) = target.get().copied() else {
                        continue;
                    };
                    tokio::spawn(async move {
                        if let Ok(mut server) = tokio::net::TcpStream::connect(target).await {
                            let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                        }
                    });
                }
            }
        });
        Self {
            url,
            target,
            resetting,
            resets,
        }
    }
}

async fn app_behind(proxy: &ResettingProxy) -> TestApp {
    let app = spawn_app_with(|settings| {
        settings.environment = smsdesk::Environment::Production;
        settings.twilio_base_url = Some(proxy.url.clone());
        // So that a message the failed bulk claimed can be refreshed again at once.
        settings.message_cooldown_secs = 0;
    })
    .await;
    proxy
        .target
        .set(app.sim.addr())
        .expect("the proxy's target is set once");
    app
}

#[tokio::test]
async fn twilio_connections_reset_fail_each_message_cleanly_and_the_next_refresh_recovers() {
    let proxy = ResettingProxy::start().await;
    let app = app_behind(&proxy).await;
    let team = app
        .store
        .list_teams()
        .await
        .expect("teams")
        .into_iter()
        .find(|t| t.plan == Plan::Pro)
        .expect("the test team")
        .id;
    let mut seeded = Vec::new();
    for _ in 0..6 {
        seeded.push(
            app.message_without_callbacks(team, MessageStatus::Delivered)
                .await,
        );
    }
    let before = app.snapshot().await;

    proxy.resetting.store(true, Ordering::SeqCst);
    let response = tokio::time::timeout(
        Duration::from_secs(30),
        app.refresh_recent(&app.api_key, "?hours=24"),
    )
    .await
    .expect("the bulk answers before its deadline");
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.expect("JSON");
    for sid in &seeded {
        let outcome = outcome_of(&body, sid);
        assert_eq!(outcome["outcome"], "failed", "{outcome}");
        assert_eq!(outcome["reason"], "providerUnavailable", "{outcome}");
        let detail = outcome["detail"].as_str().unwrap_or_default();
        assert!(!detail.contains(&app.api_key), "{detail}");
    }
    assert!(
        proxy.resets.load(Ordering::SeqCst) > 0,
        "connections were reset"
    );
    assert_eq!(app.snapshot().await, before, "nothing was written");

    // Twilio reachable again: the next refresh works, on fresh connections.
    proxy.resetting.store(false, Ordering::SeqCst);
    let again = app.refresh_one(&app.api_key, &seeded[0]).await;
    assert_eq!(again.status(), StatusCode::OK, "after the resets");
    assert_eq!(stored_status(&app, &seeded[0]).await, "delivered");
}
