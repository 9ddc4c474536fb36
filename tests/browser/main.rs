//! The SMS page against the whole service: `smsdesk::Application` in development mode with its
//! built-in Twilio simulator, opened in Debian's headless Chromium over WebDriver. The test moves
//! the message along itself (queued → sending → sent → delivered, each step posting a signed
//! status callback back to the service), so every step is seen on screen whatever the machine's
//! load.
//!
//! Skips loudly without `chromium`/`chromedriver` unless `SMSDESK_REQUIRE_BROWSER=1`. The
//! browser is `smsdesk_test_support::browser`, shared with `smsdesk-web`'s browser suite.

use std::time::Duration;

use serde_json::json;
use smsdesk::{Application, Environment, Settings};
use smsdesk_test_support::browser::{Browser, browser_tools, wait_within};

#[test]
fn a_message_sent_from_the_page_reaches_delivered_on_screen_through_the_simulators_callbacks() {
    let Some((chromium, driver)) = browser_tools() else {
        return;
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let data_dir = tempfile::tempdir().expect("a data directory");
    let settings = Settings {
        environment: Environment::Development,
        bind: "127.0.0.1:0".parse().expect("an address"),
        data_dir: data_dir.path().to_path_buf(),
        database_url: None,
        twilio_base_url: None,
        // Frozen: the test advances the message one step at a time.
        simulator_speed: 0.0,
        ..Settings::default()
    };
    let (addr, demo_key, sim) = runtime.block_on(async {
        let app = Application::build(settings)
            .await
            .expect("the application starts");
        let addr = app.addr();
        let key = app
            .demo_api_key()
            .expect("development mode seeds a demo team")
            .to_owned();
        let sim = app.simulator().expect("the built-in simulator runs");
        tokio::spawn(app.run_until_stopped());
        (addr, key, sim)
    });

    // The simulator ends a share of messages undelivered or failed, at random; this test follows
    // the delivered path, so every message it sends is planned to be delivered.
    sim.set_outcomes(smsdesk_twilio_sim::OutcomeShares {
        undelivered: 0.0,
        failed: 0.0,
    });
    let browser = Browser::launch(&chromium, &driver);
    browser.open(&format!("http://{addr}/sms"));
    let filled = browser.wait_js(
        "the sign-in form",
        "const k = document.getElementById('api-key'); return k && k.value;",
        json!([]),
    );
    assert_eq!(filled, json!(demo_key), "demo mode fills in the demo key");
    browser.click("#sign-in button[type=submit]");
    browser.wait_js(
        "the stream to be live",
        "return document.getElementById('live').dataset.state === 'live';",
        json!([]),
    );
    browser.js("window.notReloaded = true;", json!([]));

    browser.type_into("#send-to", "+14155550100");
    browser.type_into("#send-body", "Hello through the simulator");
    // The demo team already has messages on screen: the sent one is the row that was not.
    let shown_before = browser.js(
        "return [...document.querySelectorAll('#messages li.msg')].map((row) => row.dataset.sid);",
        json!([]),
    );
    browser.click("#send-button");
    let sid = browser
        .wait_js(
            "the sent message's row",
            "return [...document.querySelectorAll('#messages li.msg')].map((row) => row.dataset.sid).find((sid) => !arguments[0].includes(sid)) ?? null;",
            json!([shown_before]),
        )
        .as_str()
        .unwrap_or_default()
        .to_owned();

    // Each step of the simulator posts a status callback; the page shows it without reloading.
    let row = format!("#messages li[data-sid='{sid}']");
    let message = smsdesk_domain::MessageSid::parse(&sid).expect("a message SID");
    for expected in ["sending", "sent", "delivered"] {
        let delivered_before = sim.stats().callbacks_delivered;
        let advanced = runtime.block_on(sim.advance(&message));
        assert!(
            advanced.is_ok(),
            "the simulator moves the message on: {advanced:?}"
        );
        // `advance` returns once its callback was posted: the service must have accepted it, so
        // a status missing on screen below is the page's fault, not a lost callback.
        let stats = sim.stats();
        assert!(
            stats.callbacks_delivered > delivered_before && stats.callbacks_failed == 0,
            "the service accepted the {expected} callback: {stats:?}"
        );
        wait_within(
            Duration::from_secs(20),
            &format!("{expected} on screen"),
            || {
                let status = browser.js(
                    "return document.querySelector(arguments[0])?.dataset.status ?? null;",
                    json!([row]),
                );
                (status == json!(expected)).then_some(())
            },
        );
    }
    assert_eq!(
        browser.js(
            "return window.notReloaded === true && document.getElementById('live').dataset.state;",
            json!([]),
        ),
        json!("live"),
        "pushed over the live stream, without reloading or falling back to polling"
    );
    assert_eq!(
        browser.text_of(&format!("{row} .badge")),
        "delivered",
        "the badge says it in words"
    );
    assert_eq!(
        browser.js(
            "return document.querySelector(arguments[0]).hidden;",
            json!([format!("{row} button.refresh")]),
        ),
        json!(true),
        "a delivered message has nothing left to refresh"
    );
    browser.screenshot("sms-page-e2e.png");
    drop(browser);
    runtime.shutdown_background();
}
