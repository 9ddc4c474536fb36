//! The SMS page and the API reference (`/docs`) in a real browser: Debian's headless Chromium
//! driven over WebDriver (`chromedriver`) against the service on 127.0.0.1:0 over the in-memory
//! fakes.
//!
//! Without `chromium` and `chromedriver` the tests print `SKIPPED: …` and pass, unless
//! `SMSDESK_REQUIRE_BROWSER=1` (set by CI), where they fail. Nothing here sleeps to wait for
//! something: every wait polls the DOM (or the server) for a condition with a bounded timeout.
//! Screenshots go to `target/`: `sms-page.png`, `sms-page-list.png`, `sms-page-360.png`, the
//! delivery summary and a message's history at desktop and phone width (`sms-summary.png`,
//! `sms-summary-360.png`, `sms-detail.png`, `sms-detail-360.png`; copies are in
//! `docs/screenshots/`) and `api-reference.png`.

use std::net::SocketAddr;
use std::sync::mpsc;

use serde_json::json;
use smsdesk_domain::{DeliveryState, Direction, MessageSid, MessageStatus};
use smsdesk_test_support::browser::{Browser, WAIT, browser_tools, http, wait_for, wait_within};
use smsdesk_test_support::world::{PRO_ADMIN_KEY as PRO_KEY, World};
use smsdesk_web::{WebConfig, WebState};
// ---- the service -------------------------------------------------------------------------

/// Runs the service on 127.0.0.1:0 in its own thread and actix system; stops with the test.
fn serve(state: WebState) -> SocketAddr {
    let (bound, address) = mpsc::channel();
    std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            let server = actix_web::HttpServer::new(move || {
                let state = state.clone();
                actix_web::App::new().configure(move |cfg| smsdesk_web::configure(cfg, state))
            })
            .workers(2)
            .disable_signals()
            .bind(("127.0.0.1", 0))
            .expect("binding 127.0.0.1:0");
            let _ = bound.send(server.addrs()[0]);
            server.run().await
        })
    });
    address.recv_timeout(WAIT).expect("the server to bind")
}

/// Demo mode: the page fills in the Pro team's key.
fn demo_mode() -> WebConfig {
    WebConfig {
        demo_api_key: Some(PRO_KEY.to_owned()),
        ..WebConfig::default()
    }
}

/// A world served over HTTP, its address, and a Tokio runtime to script the fakes with.
fn start(config: WebConfig) -> (World, SocketAddr, tokio::runtime::Runtime) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let world = runtime.block_on(World::for_page(config));
    let addr = serve(world.state.clone());
    (world, addr, runtime)
}

const ROW: &str = "return document.querySelector(`#messages li[data-sid=\"${arguments[0]}\"]`)";

fn row_status(browser: &Browser, sid: &str) -> Option<String> {
    browser
        .js(&format!("{ROW}?.dataset.status ?? null;"), json!([sid]))
        .as_str()
        .map(str::to_owned)
}

fn sign_in_with_demo_key(browser: &Browser, addr: SocketAddr) {
    browser.open(&format!("http://{addr}/sms"));
    let filled = browser.wait_js(
        "the sign-in form",
        "const k = document.getElementById('api-key'); return k && k.value;",
        json!([]),
    );
    assert_eq!(filled, PRO_KEY, "demo mode fills in the demo key");
    browser.click("#sign-in button[type=submit]");
    browser.wait_js(
        "the stream to be live",
        "return document.getElementById('live').dataset.state === 'live';",
        json!([]),
    );
}

#[test]
fn the_page_sends_shows_changes_live_and_refreshes_with_cool_downs_and_a_429() {
    let Some((chromium, driver)) = browser_tools() else {
        return;
    };
    let (world, addr, runtime) = start(demo_mode());
    let browser = Browser::launch(&chromium, &driver);
    sign_in_with_demo_key(&browser, addr);
    assert_eq!(world.state.events().subscribers(), 1, "one live stream");
    browser.js("window.notReloaded = true;", json!([]));

    // Send from the form: the new message appears, queued.
    browser.type_into("#send-to", "+14155550100");
    browser.type_into("#send-body", "Hello from the browser test");
    browser.click("#send-button");
    let first = browser
        .wait_js(
            "the sent message's row",
            "return document.querySelector('#messages li.msg')?.dataset.sid ?? null;",
            json!([]),
        )
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert_eq!(row_status(&browser, &first).as_deref(), Some("queued"));
    assert!(
        browser
            .text_of("#send-result")
            .contains("Sent to +14155550100")
    );

    // Twilio moves it on and someone else refreshes it: the page shows it without reloading.
    let sid = MessageSid::parse(&first).expect("a message SID");
    world
        .provider
        .set_state(&sid, DeliveryState::new(MessageStatus::Sending));
    let refreshed = http(
        addr,
        "POST",
        &format!("/api/integrations/twilio/messages/refresh-status?messageSid={first}"),
        &[("Authorization", &format!("Bearer {PRO_KEY}"))],
        None,
    );
    assert_eq!(refreshed.status, 200, "{}", refreshed.body);
    wait_for("the pushed status", || {
        (row_status(&browser, &first).as_deref() == Some("sending")).then_some(())
    });
    assert_eq!(
        browser.js("return window.notReloaded === true;", json!([])),
        true,
        "the change arrived without a reload"
    );
    assert_eq!(
        browser.text_of(&format!("li[data-sid='{first}'] .badge")),
        "sending"
    );

    // Its refresh button: named for the message; the server answers 429 (refreshed moments
    // ago), which shows when to retry and counts down on the button.
    let button = format!("li[data-sid='{first}'] button.refresh");
    let label = browser.js(
        "return document.querySelector(arguments[0]).getAttribute('aria-label');",
        json!([button]),
    );
    assert_eq!(label, json!(format!("Refresh status of message {first}")));
    browser.click(&button);
    let shown = browser.wait_js(
        "the 429 message",
        "const t = document.querySelector(arguments[0])?.textContent ?? ''; return /try again in \\d+ s/.test(t) && t;",
        json!([format!("li[data-sid='{first}'] .inline-error")]),
    );
    assert!(
        shown.as_str().unwrap_or("").contains("(at "),
        "the retry time is shown: {shown}"
    );
    let countdown = browser.wait_js(
        "the countdown",
        "const t = document.querySelector(arguments[0]).textContent; return /^Wait \\d+ s$/.test(t) && t;",
        json!([button]),
    );
    let seconds: u64 = countdown
        .as_str()
        .and_then(|t| t.split(' ').nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(
        (30..=60).contains(&seconds),
        "counts down from the server's 60 s: {countdown}"
    );
    browser.wait_js(
        "the countdown to tick",
        "return document.querySelector(arguments[0]).textContent !== arguments[1];",
        json!([button, countdown]),
    );
    // The error dismisses itself after a few seconds.
    browser.wait_js(
        "the inline error to go away",
        "return document.querySelector(arguments[0]).textContent === '';",
        json!([format!("li[data-sid='{first}'] .inline-error")]),
    );

    // A second message, refreshed from the page: a spinner while Twilio answers, then the new
    // status in place and the cool-down.
    browser.type_into("#send-to", "+14155550111");
    browser.type_into("#send-body", "Second message");
    browser.click("#send-button");
    let second = browser
        .wait_js(
            "the second row",
            "const s = document.querySelector('#messages li.msg')?.dataset.sid; return s !== arguments[0] && s;",
            json!([first]),
        )
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let second_sid = MessageSid::parse(&second).expect("a message SID");
    world
        .provider
        .set_state(&second_sid, DeliveryState::new(MessageStatus::Sent));
    world.twilio_gate.send_replace(false);
    let button = format!("li[data-sid='{second}'] button.refresh");
    browser.click(&button);
    browser.wait_js(
        "the spinner",
        "const b = document.querySelector(arguments[0]); return b.getAttribute('aria-busy') === 'true' && b.querySelector('.spinner') !== null;",
        json!([button]),
    );
    world.twilio_gate.send_replace(true);
    wait_for("the refreshed status", || {
        (row_status(&browser, &second).as_deref() == Some("sent")).then_some(())
    });
    browser.wait_js(
        "the cool-down after a refresh",
        "const b = document.querySelector(arguments[0]); return /^Wait \\d+ s$/.test(b.textContent) && b.getAttribute('aria-disabled') === 'true';",
        json!([button]),
    );

    // Bulk: hours are checked in the page first, then the summary per outcome is shown.
    browser.type_into("#bulk-hours", "0");
    browser.click("#bulk-button");
    browser.wait_js(
        "the hours error",
        "return document.getElementById('bulk-result').textContent.includes('1 to 168');",
        json!([]),
    );
    assert_eq!(
        browser.js(
            "return document.getElementById('bulk-hours').getAttribute('aria-invalid');",
            json!([])
        ),
        "true"
    );
    browser.type_into("#bulk-hours", "24");
    browser.click("#bulk-button");
    let summary = browser.wait_js(
        "the bulk summary",
        "const s = document.querySelector('#bulk-result .summary'); return s && document.getElementById('bulk-result').textContent;",
        json!([]),
    );
    let summary = summary.as_str().unwrap_or_default();
    assert!(
        summary.contains("Last 24 h: 2 messages checked")
            && summary.contains("0 updated")
            && summary.contains(" unchanged")
            && summary.contains(" failed")
            && summary.contains(" skipped")
            && summary.contains("0 Twilio calls"),
        "both messages are cooling down (skipped), nothing was asked of Twilio: {summary}"
    );

    browser.screenshot("sms-page.png");

    // Signing out aborts the stream; the server lets go of it at the latest when its next
    // heartbeat finds the connection closed.
    browser.click("#sign-out");
    let heartbeat = smsdesk_web::events::HEARTBEAT_PERIOD;
    wait_within(heartbeat + WAIT, "the stream to close", || {
        (world.state.events().subscribers() == 0).then_some(())
    });
    assert_eq!(
        browser.js("return sessionStorage.length;", json!([])),
        0,
        "the key is forgotten"
    );
    drop(browser);
    drop(runtime);
}

#[test]
fn the_page_pages_filters_explains_failures_and_works_by_keyboard_and_at_phone_width() {
    let Some((chromium, driver)) = browser_tools() else {
        return;
    };
    let (world, addr, runtime) = start(WebConfig::default());
    runtime.block_on(async {
        for number in 0..52 {
            world
                .seed(
                    1,
                    number,
                    i64::from(120 + number),
                    Direction::OutboundApi,
                    DeliveryState::new(MessageStatus::Delivered),
                )
                .await;
        }
        world
            .seed(
                1,
                100,
                3,
                Direction::OutboundApi,
                World::failed(30003, "Unreachable destination handset"),
            )
            .await;
        world
            .seed(
                1,
                101,
                2,
                Direction::Inbound,
                DeliveryState::new(MessageStatus::Received),
            )
            .await;
        world
            .seed(
                1,
                102,
                1,
                Direction::OutboundApi,
                DeliveryState::new(MessageStatus::Sent),
            )
            .await;
        world
            .seed(
                1,
                103,
                0,
                Direction::OutboundApi,
                DeliveryState::new(MessageStatus::Queued),
            )
            .await;
        // Sent five days ago and never delivered: past the stuck limit, declared stuck.
        world
            .seed(
                1,
                104,
                5 * 24 * 60,
                Direction::OutboundApi,
                DeliveryState::new(MessageStatus::Sent),
            )
            .await;
        let now = chrono::Utc::now();
        let declared = smsdesk_domain::ports::StuckMessages::time_out_stuck(
            &world.store,
            now - chrono::Duration::hours(72),
            now,
            10,
        )
        .await
        .expect("declared");
        assert_eq!(declared.len(), 1);
    });
    let browser = Browser::launch(&chromium, &driver);
    browser.open(&format!("http://{addr}/sms"));
    browser.wait_js(
        "the sign-in form",
        "return document.activeElement?.id === 'api-key';",
        json!([]),
    );
    assert_eq!(
        browser.js(
            "return document.getElementById('api-key').value;",
            json!([])
        ),
        "",
        "no key is filled in outside demo mode"
    );
    browser.type_into("#api-key", "sk_wrong");
    browser.click("#sign-in button[type=submit]");
    browser.wait_js(
        "the refusal",
        "return document.getElementById('sign-in-error').textContent.includes('not valid');",
        json!([]),
    );
    browser.type_into("#api-key", PRO_KEY);
    browser.click("#sign-in button[type=submit]");
    browser.wait_js(
        "the first page",
        "return document.querySelectorAll('#messages li.msg').length === 50;",
        json!([]),
    );

    // Paging: the cursor brings the rest.
    browser.click("#load-more");
    browser.wait_js(
        "the second page",
        "return document.querySelectorAll('#messages li.msg').length === 57 && document.getElementById('load-more').hidden;",
        json!([]),
    );

    // A stuck message says its delivery is unknown.
    let stuck = browser.text_of("#messages li[data-reason='deliveryUnknown'] .failure");
    assert_eq!(stuck, "Delivery unknown", "{stuck}");

    // Failures carry the code, the human reason and Twilio's text; times say when exactly.
    let failure = browser.text_of("#messages li[data-status='undelivered'] .failure");
    assert!(
        failure.contains("Error 30003")
            && failure.contains("Unreachable destination handset (off, out of coverage")
            && failure.contains("(Twilio: Unreachable destination handset)"),
        "{failure}"
    );
    let time = browser.js(
        "const t = document.querySelector('#messages li[data-status=\"undelivered\"] time'); return [t.textContent, t.title, t.dateTime];",
        json!([]),
    );
    assert_eq!(time[0], "3 minutes ago", "relative time: {time}");
    assert!(
        time[1].as_str().is_some_and(|t| !t.is_empty())
            && time[2].as_str().is_some_and(|t| t.ends_with('Z')),
        "exact time on hover and machine-readable: {time}"
    );
    let buttons = browser.js(
        "return [...document.querySelectorAll('#messages li.msg')].filter(li => { const b = li.querySelector('button.refresh'); return b && !b.hidden; }).map(li => li.dataset.status);",
        json!([]),
    );
    assert_eq!(
        buttons,
        json!(["queued", "sent", "sent"]),
        "only outbound messages that are not final can be refreshed (a stuck one too)"
    );
    let badge = browser.js(
        "const b = document.querySelector('#messages li[data-status=\"delivered\"] .badge'); return [b.textContent, b.dataset.tone];",
        json!([]),
    );
    assert_eq!(badge, json!(["delivered", "ok"]), "colour and text");

    // Keyboard: tabbing from the reload button reaches the newest message's refresh button,
    // which shows on focus while the others stay hidden until hovered or focused.
    browser.click("#reload");
    browser.wait_js(
        "the reload to settle",
        "return document.querySelectorAll('#messages li.msg').length === 50;",
        json!([]),
    );
    browser.js("document.getElementById('reload').focus();", json!([]));
    let newest = browser
        .js(
            "return document.querySelector('#messages li.msg').dataset.sid;",
            json!([]),
        )
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let focused = wait_for("Tab to reach a refresh button", || {
        browser.press_tab();
        let active = browser.js(
            "const a = document.activeElement; return a.classList.contains('refresh') ? a.getAttribute('aria-label') : null;",
            json!([]),
        );
        active.as_str().map(str::to_owned)
    });
    assert_eq!(focused, format!("Refresh status of message {newest}"));
    browser.wait_js(
        "the focused button to show",
        "return getComputedStyle(document.activeElement).opacity === '1';",
        json!([]),
    );
    let other = browser.js(
        "return getComputedStyle(document.querySelector('#messages li[data-status=\"sent\"] button.refresh')).opacity;",
        json!([]),
    );
    assert_eq!(
        other, "0",
        "unfocused, unhovered buttons stay out of the way"
    );

    browser.screenshot("sms-page-list.png");

    // Filters.
    browser.js(
        "const s = document.getElementById('filter-status'); s.value = 'undelivered'; s.dispatchEvent(new Event('change'));",
        json!([]),
    );
    browser.wait_js(
        "the status filter",
        "const rows = [...document.querySelectorAll('#messages li.msg')]; return rows.length === 1 && rows[0].dataset.status === 'undelivered';",
        json!([]),
    );
    // Two filter changes in a row start two list loads. Hold back the first (unfiltered)
    // response until the second has landed, the order a slow network can produce: the page
    // must keep showing the newer answer.
    browser.js(
        r#"
        const realFetch = window.fetch;
        window.heldBackLanded = false;
        window.fetch = (path, init) => {
            const url = String(path);
            if (url.startsWith('/api/messages?') && !url.includes('direction=') && !url.includes('status=')) {
                window.fetch = realFetch;
                return realFetch(path, init).then((response) => new Promise((resolve) => {
                    const release = () => {
                        if (document.querySelectorAll('#messages li.msg').length === 1) {
                            // Flag once the page has handled the body: a task queued after
                            // the parse runs only when the page's await chain has finished.
                            const parse = response.json.bind(response);
                            response.json = () => parse().then((body) => {
                                setTimeout(() => { window.heldBackLanded = true; }, 0);
                                return body;
                            });
                            resolve(response);
                        } else {
                            setTimeout(release, 20);
                        }
                    };
                    release();
                }));
            }
            return realFetch(path, init);
        };
        "#,
        json!([]),
    );
    browser.js(
        "const s = document.getElementById('filter-status'); s.value = ''; s.dispatchEvent(new Event('change')); const d = document.getElementById('filter-direction'); d.value = 'inbound'; d.dispatchEvent(new Event('change'));",
        json!([]),
    );
    browser.wait_js(
        "the direction filter, after the held-back response landed",
        "const rows = [...document.querySelectorAll('#messages li.msg')]; return window.heldBackLanded && rows.length === 1 && rows[0].querySelector('.dir').textContent === 'Inbound';",
        json!([]),
    );
    browser.js(
        "const d = document.getElementById('filter-direction'); d.value = ''; d.dispatchEvent(new Event('change'));",
        json!([]),
    );

    // A stale list answer (fetched before a live update landed) never moves a status backwards:
    // the next auto-refresh merge gets every message back as `queued`, and the page keeps what it
    // shows.
    browser.wait_js(
        "the unfiltered list back",
        "return document.querySelectorAll('#messages li.msg[data-status=\"delivered\"]').length > 40;",
        json!([]),
    );
    browser.js(
        r#"
        const shown = () => [...document.querySelectorAll('#messages li.msg')]
            .map((row) => row.dataset.sid + '=' + row.dataset.status).join(' ');
        window.shownBeforeStaleMerge = shown();
        window.shownNow = shown;
        const realFetch = window.fetch;
        window.staleMerged = false;
        window.fetch = (path, init) => {
            const url = String(path);
            if (!url.startsWith('/api/messages?')) return realFetch(path, init);
            window.fetch = realFetch;
            return realFetch(path, init).then((response) => {
                const parse = response.json.bind(response);
                response.json = () => parse().then((page) => {
                    for (const message of page.messages) message.status = 'queued';
                    // Flag once the page has handled the body (see the held-back response above).
                    setTimeout(() => { window.staleMerged = true; }, 0);
                    return page;
                });
                return response;
            });
        };
        const auto = document.getElementById('auto-refresh');
        auto.checked = true;
        auto.dispatchEvent(new Event('change'));
        "#,
        json!([]),
    );
    browser.wait_js(
        "the stale merge to land",
        "return window.staleMerged === true;",
        json!([]),
    );
    let (before, after) = (
        browser.js("return window.shownBeforeStaleMerge;", json!([])),
        browser.js(
            "const auto = document.getElementById('auto-refresh'); auto.checked = false; auto.dispatchEvent(new Event('change')); return window.shownNow();",
            json!([]),
        ),
    );
    assert!(
        before
            .as_str()
            .is_some_and(|shown| shown.contains("=delivered")),
        "{before}"
    );
    assert_eq!(after, before, "no status went backwards on screen");

    // Phone width: nothing scrolls sideways and the refresh buttons are always visible.
    browser.emulate_phone();
    browser.wait_js(
        "the phone layout",
        "return window.innerWidth === 360 && document.querySelectorAll('#messages li.msg').length === 50;",
        json!([]),
    );
    let overflow = browser.js(
        "return document.documentElement.scrollWidth - window.innerWidth;",
        json!([]),
    );
    assert_eq!(overflow, 0, "no horizontal scrolling at 360 px");
    browser.wait_js(
        "refresh buttons without hover",
        "return getComputedStyle(document.querySelector('#messages li[data-status=\"sent\"] button.refresh')).opacity === '1';",
        json!([]),
    );
    browser.js("window.scrollTo(0, 0);", json!([]));
    browser.screenshot("sms-page-360.png");
    drop(browser);
    drop(runtime);
}

#[test]
fn a_message_redacted_by_retention_says_so_on_the_page() {
    use smsdesk_domain::ports::MessageRetention;
    use smsdesk_domain::retention::RetentionPolicy;

    let Some((chromium, driver)) = browser_tools() else {
        return;
    };
    let (world, addr, runtime) = start(demo_mode());
    let kept = runtime.block_on(world.seed(
        1,
        1,
        5,
        Direction::OutboundApi,
        DeliveryState::new(MessageStatus::Delivered),
    ));
    let old = runtime.block_on(world.seed(
        1,
        2,
        60 * 24 * 40,
        Direction::OutboundApi,
        DeliveryState::new(MessageStatus::Delivered),
    ));
    let policy = RetentionPolicy::after_days(30, true);
    let now = chrono::Utc::now();
    let redacted = runtime
        .block_on(
            world
                .store
                .redact_batch(policy.cutoff(now), &policy, 10, now),
        )
        .expect("retention runs");
    assert_eq!(redacted, 1, "only the 40-day-old message is due");

    let browser = Browser::launch(&chromium, &driver);
    sign_in_with_demo_key(&browser, addr);
    let body_of = |sid: &MessageSid| {
        browser.wait_js(
            "the message's row",
            &format!("{ROW}?.querySelector('.body')?.textContent ?? null;"),
            json!([sid.to_string()]),
        )
    };
    assert_eq!(
        body_of(&old),
        json!("redacted"),
        "the redacted body says so"
    );
    assert_eq!(
        body_of(&kept),
        json!("Seeded message 1"),
        "a recent body is shown"
    );
    let parties = browser.js(
        &format!("{ROW}?.querySelector('.parties')?.textContent ?? null;"),
        json!([old.to_string()]),
    );
    assert_eq!(
        parties,
        json!("+*********06 → +*********00"),
        "numbers masked"
    );
}

/// Refreshes `sid` through the API, as another client of the team would.
fn refresh_over_http(addr: SocketAddr, sid: &MessageSid) {
    let answer = http(
        addr,
        "POST",
        &format!("/api/integrations/twilio/messages/refresh-status?messageSid={sid}"),
        &[("Authorization", &format!("Bearer {PRO_KEY}"))],
        None,
    );
    assert_eq!(answer.status, 200, "{}", answer.body);
}

/// The chart's bars as `status:count`, top to bottom.
fn bars(browser: &Browser) -> Vec<String> {
    let found = browser.js(
        "return [...document.querySelectorAll('#summary-chart g.bar')].map(g => `${g.dataset.status}:${g.dataset.count}`);",
        json!([]),
    );
    serde_json::from_value(found).unwrap_or_default()
}

fn wait_for_bars(browser: &Browser, what: &str, expected: &[&str]) {
    wait_for(what, || (bars(browser) == expected).then_some(()));
}

/// The open dialog's timeline as `source/status/applied` per observation, oldest first.
fn timeline(browser: &Browser) -> Vec<String> {
    let found = browser.js(
        "if (!document.getElementById('detail').open) return [];
         return [...document.querySelectorAll('#detail .timeline li')]
           .map(li => `${li.dataset.source}/${li.dataset.status}/${li.dataset.applied}`);",
        json!([]),
    );
    serde_json::from_value(found).unwrap_or_default()
}

#[test]
fn a_messages_history_opens_as_a_timeline_and_the_summary_charts_the_window_live() {
    use smsdesk_domain::ports::{MessageRepository as _, ObservationWrite, StateChange};
    use smsdesk_domain::{ObservationSource, StatusObservation};
    use smsdesk_test_support::browser::Key;

    let Some((chromium, driver)) = browser_tools() else {
        return;
    };
    let (world, addr, runtime) = start(demo_mode());
    let (delivered, failed, queued) = runtime.block_on(async {
        let delivered = world
            .seed(
                1,
                300,
                20,
                Direction::OutboundApi,
                DeliveryState::new(MessageStatus::Sent),
            )
            .await;
        let failed = world
            .seed(
                1,
                301,
                180,
                Direction::OutboundApi,
                World::failed(30003, "Unreachable destination handset"),
            )
            .await;
        world
            .seed(
                1,
                302,
                10,
                Direction::Inbound,
                DeliveryState::new(MessageStatus::Received),
            )
            .await;
        let queued = world
            .seed(
                1,
                303,
                5,
                Direction::OutboundApi,
                DeliveryState::new(MessageStatus::Queued),
            )
            .await;
        // Message 300's history: a refresh found it delivered, then a late `sent` callback
        // arrived and was recorded but ignored.
        let at = |minutes: i64| chrono::Utc::now() - chrono::Duration::minutes(minutes);
        let observed = |status, source, minutes| StatusObservation {
            state: DeliveryState::new(status),
            source,
            observed_at: at(minutes),
        };
        let team = smsdesk_test_support::world::team(1);
        world
            .store
            .apply_observations(
                team,
                vec![ObservationWrite {
                    sid: delivered.clone(),
                    observation: observed(MessageStatus::Delivered, ObservationSource::Poll, 15),
                    change: Some(StateChange {
                        expected_status: MessageStatus::Sent,
                        expected_updated_at: None,
                        next: DeliveryState::new(MessageStatus::Delivered),
                    }),
                }],
            )
            .await
            .expect("applied");
        world
            .store
            .apply_observations(
                team,
                vec![ObservationWrite {
                    sid: delivered.clone(),
                    observation: observed(MessageStatus::Sent, ObservationSource::Callback, 14),
                    change: None,
                }],
            )
            .await
            .expect("recorded");
        world
            .provider
            .set_state(&delivered, DeliveryState::new(MessageStatus::Delivered));
        (delivered, failed, queued)
    });

    let browser = Browser::launch(&chromium, &driver);
    sign_in_with_demo_key(&browser, addr);

    // The summary of the last 24 hours: one message in each of four statuses, in rank order.
    wait_for_bars(
        &browser,
        "the summary chart",
        &["queued:1", "delivered:1", "undelivered:1", "received:1"],
    );
    assert!(
        browser
            .text_of("#summary-rate")
            .starts_with("50 % delivered (1 of 2 settled, 4 messages"),
        "{}",
        browser.text_of("#summary-rate")
    );
    let chart_name = browser.text_of("#summary-chart svg > title");
    assert!(chart_name.contains("undelivered 1"), "{chart_name}");
    browser.screenshot("sms-summary.png");

    // A row's detail by click: every observation, its source, applied or ignored.
    browser.click(&format!("#messages li[data-sid='{delivered}'] p.body"));
    wait_for("the detail's timeline", || {
        (timeline(&browser)
            == [
                "send/sent/true",
                "poll/delivered/true",
                "callback/sent/false",
            ])
        .then_some(())
    });
    let verdicts = browser.text_of("#detail .timeline li[data-applied='false'] .verdict");
    assert!(verdicts.starts_with("ignored"), "{verdicts}");
    assert_eq!(
        browser.text_of("#detail .timeline li[data-source='poll'] .source"),
        "Refresh"
    );
    assert_eq!(
        browser.js("return document.activeElement.id;", json!([])),
        "detail-close",
        "focus moves into the dialog"
    );
    browser.screenshot("sms-detail.png");
    browser.press(Key::Escape);
    browser.wait_js(
        "Escape to close the dialog",
        "return !document.getElementById('detail').open;",
        json!([]),
    );
    let refocused = browser.js(
        "return document.activeElement.closest('li.msg')?.dataset.sid ?? null;",
        json!([]),
    );
    assert_eq!(
        refocused,
        json!(delivered.to_string()),
        "focus goes back to its row"
    );

    // By keyboard: the failed message's History button, Enter; the error is explained.
    browser.js(
        &format!("{ROW}.querySelector('button.history').focus();"),
        json!([failed.to_string()]),
    );
    browser.press(Key::Enter);
    wait_for("the failed message's timeline", || {
        (timeline(&browser) == ["send/undelivered/true"]).then_some(())
    });
    let reason = browser.text_of("#detail .timeline .reason");
    assert!(
        reason.contains("30003") && reason.contains("Unreachable"),
        "{reason}"
    );
    browser.click("#detail-close");

    // Live: with the queued message's detail open, another client refreshes it; the timeline
    // and the chart follow without a reload.
    browser.js("window.notReloaded = true;", json!([]));
    browser.click(&format!("#messages li[data-sid='{queued}'] p.body"));
    wait_for("the queued message's timeline", || {
        (timeline(&browser) == ["send/queued/true"]).then_some(())
    });
    world
        .provider
        .set_state(&queued, DeliveryState::new(MessageStatus::Delivered));
    refresh_over_http(addr, &queued);
    wait_for("the new observation in the open timeline", || {
        (timeline(&browser) == ["send/queued/true", "poll/delivered/true"]).then_some(())
    });
    wait_for_bars(
        &browser,
        "the chart after the change",
        &["delivered:2", "undelivered:1", "received:1"],
    );
    assert!(
        browser
            .text_of("#summary-rate")
            .starts_with("66.7 % delivered (2 of 3")
    );
    assert_eq!(
        browser.js("return window.notReloaded === true;", json!([])),
        true
    );
    browser.press(Key::Escape);

    // Another window: the last hour leaves out the message failed three hours ago.
    browser.js(
        "const w = document.getElementById('summary-window'); w.value = '1'; w.dispatchEvent(new Event('change'));",
        json!([]),
    );
    wait_for_bars(
        &browser,
        "the last hour's chart",
        &["delivered:2", "received:1"],
    );
    assert!(
        browser
            .text_of("#summary-rate")
            .starts_with("100 % delivered (2 of 2 settled, 3 messages in the last hour)"),
        "{}",
        browser.text_of("#summary-rate")
    );

    // The number filter: a conversation with one number, whichever the direction.
    browser.type_into("#send-to", "+14155550177");
    browser.type_into("#send-body", "Only this one goes to 0177");
    browser.click("#send-button");
    browser.wait_js(
        "the send",
        "return document.getElementById('send-result').textContent.startsWith('Sent to +14155550177');",
        json!([]),
    );
    // A new message is counted at once, without a reload.
    wait_for_bars(
        &browser,
        "the sent message in the chart",
        &["queued:1", "delivered:2", "received:1"],
    );
    let listed = |browser: &Browser| -> Vec<String> {
        serde_json::from_value(browser.js(
            "return [...document.querySelectorAll('#messages li.msg .parties')].map(p => p.textContent);",
            json!([]),
        ))
        .unwrap_or_default()
    };
    browser.type_into("#filter-party", "+14155550177");
    browser.press(Key::Enter);
    wait_for("only the conversation with +14155550177", || {
        (listed(&browser) == ["+15005550006 → +14155550177"]).then_some(())
    });
    browser.type_into("#filter-party", "+14155550100");
    browser.press(Key::Enter);
    wait_for("both directions with +14155550100", || {
        let shown = listed(&browser);
        (shown.len() == 4
            && shown.contains(&"+14155550100 → +15005550006".to_owned())
            && shown.contains(&"+15005550006 → +14155550100".to_owned()))
        .then_some(())
    });
    // A number the API refuses: named next to the filter, and no stale list beside it.
    browser.js(
        "const p = document.getElementById('filter-party'); p.value = '9'.repeat(300); p.dispatchEvent(new Event('change'));",
        json!([]),
    );
    browser.wait_js(
        "the refused number",
        "return document.getElementById('filter-party').getAttribute('aria-invalid') === 'true'
           && document.getElementById('list-error').textContent.startsWith('Number:')
           && document.querySelectorAll('#messages li.msg').length === 0;",
        json!([]),
    );
    browser.type_into("#filter-party", "");
    browser.press(Key::Enter);
    wait_for("every message again", || {
        (listed(&browser).len() == 5).then_some(())
    });

    // At phone width: the chart scales and the dialog fits.
    browser.emulate_phone();
    browser.wait_js(
        "the phone layout",
        "return document.documentElement.clientWidth === 360;",
        json!([]),
    );
    let chart_width = browser.js(
        "return document.querySelector('#summary-chart svg').getBoundingClientRect().width;",
        json!([]),
    );
    assert!(
        chart_width
            .as_f64()
            .is_some_and(|w| w > 200.0 && w <= 340.0),
        "the chart is redrawn for the phone's width: {chart_width}"
    );
    let label_size = browser.js(
        "const svg = document.querySelector('#summary-chart svg');
         const scale = svg.getBoundingClientRect().width / svg.viewBox.baseVal.width;
         return parseFloat(getComputedStyle(svg.querySelector('text')).fontSize) * scale;",
        json!([]),
    );
    assert!(
        label_size.as_f64().is_some_and(|px| px >= 12.0),
        "labels stay readable: {label_size} px"
    );
    browser.js("window.scrollTo(0, 0);", json!([]));
    browser.screenshot("sms-summary-360.png");
    browser.click(&format!("#messages li[data-sid='{delivered}'] p.body"));
    wait_for("the timeline at phone width", || {
        (timeline(&browser).len() == 3).then_some(())
    });
    let dialog_fits = browser.js(
        "const r = document.getElementById('detail').getBoundingClientRect(); return r.left >= 0 && r.right <= 360;",
        json!([]),
    );
    assert_eq!(dialog_fits, true, "the dialog fits a phone's width");
    browser.screenshot("sms-detail-360.png");
}

#[test]
fn the_api_reference_renders_every_path_under_the_pages_policy() {
    let Some((chromium, driver)) = browser_tools() else {
        return;
    };
    let (_world, addr, _runtime) = start(WebConfig::default());
    let page = http(addr, "GET", "/docs", &[], None);
    assert_eq!(page.status, 200);
    let policy = page.header("content-security-policy").unwrap_or_default();
    assert!(
        policy.contains("script-src 'self'") && policy.contains("style-src 'self'"),
        "{policy}"
    );

    let browser = Browser::launch(&chromium, &driver);
    browser.open(&format!("http://{addr}/docs"));
    // Every path of the document, and every webhook it describes (the viewer lists a webhook
    // by its name), as the viewer lists their operations.
    let document: serde_json::Value =
        serde_json::from_str(smsdesk_web::OPENAPI_DOCUMENT).expect("the document is JSON");
    let mut expected: Vec<String> = ["paths", "webhooks"]
        .iter()
        .flat_map(|section| document[section].as_object().expect(section).keys())
        .cloned()
        .collect();
    assert!(expected.len() > 25, "{expected:?}");
    expected.sort();
    let rendered = || -> Vec<String> {
        let mut found: Vec<String> = serde_json::from_value(browser.js(
            "return [...new Set([...document.querySelectorAll('.opblock-summary-path')].map(p => p.dataset.path))];",
            json!([]),
        ))
        .unwrap_or_default();
        found.sort();
        found
    };
    // The viewer renders the whole document at once, so the first non-empty list is complete.
    wait_for("the viewer to render operations", || {
        (!rendered().is_empty()).then_some(())
    });
    assert_eq!(
        rendered(),
        expected,
        "every path of the document is rendered"
    );
    let title = browser.text_of("#reference .title");
    assert!(title.contains("smsdesk"), "{title}");

    // Opening an operation renders its parameters and examples; nothing breaks the policy.
    browser.js(
        "window.violations = [];
         document.addEventListener('securitypolicyviolation',
           (e) => window.violations.push(`${e.violatedDirective} ${e.blockedURI}`));",
        json!([]),
    );
    browser.click("#operations-messages-getDeliverySummary .opblock-summary-control");
    browser.wait_js(
        "the operation to open",
        "return document.querySelector('#operations-messages-getDeliverySummary .parameters') !== null;",
        json!([]),
    );
    browser.screenshot("api-reference.png");
    assert_eq!(
        browser.js("return window.violations;", json!([])),
        json!([]),
        "the viewer runs under the page's Content-Security-Policy"
    );
    let styled = browser.js(
        "return getComputedStyle(document.querySelector('.opblock')).borderRadius;",
        json!([]),
    );
    assert_eq!(styled, "4px", "the vendored stylesheet applies");
    let back = browser.js(
        "return [...document.querySelectorAll('.docs-bar a')].map(a => a.getAttribute('href'));",
        json!([]),
    );
    assert_eq!(back, json!(["/sms", "/api/openapi.json"]));
}
