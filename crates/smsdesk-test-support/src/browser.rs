//! Debian's headless Chromium, driven over WebDriver with [fantoccini], for the browser suites of
//! `smsdesk-web` and of the end-to-end crate.
//!
//! [`Browser`] starts a `chromedriver` on a free loopback port, opens one Chromium session with
//! a profile of its own, and ends both when dropped. Its methods block (each runs the WebDriver
//! command on the browser's own runtime), so a suite reads like the steps a person takes; waits
//! poll a condition with a bounded timeout, nothing sleeps to wait for an outcome.
//!
//! [`browser_tools`] finds `chromium` and `chromedriver`, or says loudly that the suite skipped
//! (and fails instead when `SMSDESK_REQUIRE_BROWSER=1`, as in CI).

use std::io::Write as _;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::actions::InputSource as _;
pub use fantoccini::key::Key;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

/// How long a wait polls before it fails the test.
pub const WAIT: Duration = Duration::from_secs(15);

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Polls `probe` until it answers `Some`, for at most [`WAIT`].
pub fn wait_for<T>(what: &str, probe: impl FnMut() -> Option<T>) -> T {
    wait_within(WAIT, what, probe)
}

/// Polls `probe` until it answers `Some`, for at most `limit`.
pub fn wait_within<T>(limit: Duration, what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(found) = probe() {
            return found;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        // A polling interval, not a wait for the condition itself.
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// An HTTP answer, read whole.
pub struct HttpAnswer {
    /// The status code.
    pub status: u16,
    /// The body as text.
    pub body: String,
    /// Every header, names in lower case.
    pub headers: Vec<(String, String)>,
}

impl HttpAnswer {
    /// The first value of header `name` (any case), if sent.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

/// Sends one request to the service at `addr` and waits for the whole answer, from a test that
/// is not itself async (a browser suite). Runs on a runtime of its own.
///
/// # Panics
/// When the request cannot be sent or its answer read.
pub fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&Value>,
) -> HttpAnswer {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime for the request");
    runtime.block_on(async {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("an HTTP method");
        let mut request = reqwest::Client::new().request(method, format!("http://{addr}{path}"));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let answer = request.send().await.expect("the request is answered");
        let status = answer.status().as_u16();
        let headers = answer
            .headers()
            .iter()
            .map(|(name, value)| {
                (
                    name.as_str().to_owned(),
                    String::from_utf8_lossy(value.as_bytes()).into_owned(),
                )
            })
            .collect();
        let body = answer.text().await.expect("the answer's body");
        HttpAnswer {
            status,
            body,
            headers,
        }
    })
}

fn on_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|candidate| candidate.is_file())
    })
}

/// Chromium and chromedriver, or `None` after saying loudly why the test is skipped.
///
/// # Panics
/// When `SMSDESK_REQUIRE_BROWSER=1` and either is missing.
pub fn browser_tools() -> Option<(PathBuf, PathBuf)> {
    let chromium = std::env::var_os("CHROMIUM_BIN")
        .map(PathBuf::from)
        .or_else(|| on_path("chromium"))
        .or_else(|| on_path("chromium-browser"));
    let driver = on_path("chromedriver");
    match (chromium, driver) {
        (Some(chromium), Some(driver)) => Some((chromium, driver)),
        _ => {
            assert!(
                std::env::var("SMSDESK_REQUIRE_BROWSER").as_deref() != Ok("1"),
                "SMSDESK_REQUIRE_BROWSER=1 but chromium/chromedriver were not found \
                 (apt-get install chromium chromium-driver)"
            );
            // Straight to the process's stderr: the test harness would swallow `eprintln!`.
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED: chromium/chromedriver not found; the browser tests did not run"
            );
            None
        }
    }
}

/// A chromedriver process with one Chromium session; both end when this is dropped.
pub struct Browser {
    runtime: tokio::runtime::Runtime,
    client: Option<Client>,
    driver: Child,
    profile: PathBuf,
}

impl Drop for Browser {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            // Closing explicitly: a dropped client only schedules the session's end.
            let _ = self.runtime.block_on(client.close());
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

impl Browser {
    /// Starts `driver` on a free port and opens a headless `chromium` session through it.
    ///
    /// # Panics
    /// When chromedriver does not start or refuses the session.
    pub fn launch(chromium: &Path, driver: &Path) -> Self {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime for the WebDriver client");
        let port = free_port();
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let child = Command::new(driver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting chromedriver");
        let profile =
            std::env::temp_dir().join(format!("smsdesk-browser-{}-{port}", std::process::id()));
        let mut browser = Self {
            runtime,
            client: None,
            driver: child,
            profile,
        };
        wait_for("chromedriver to listen", || TcpStream::connect(addr).ok());
        let args = [
            "--headless".to_owned(),
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-quic".to_owned(),
            "--no-first-run".to_owned(),
            "--disable-background-networking".to_owned(),
            "--disable-component-update".to_owned(),
            "--disable-sync".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            "--window-size=1280,1000".to_owned(),
            format!("--user-data-dir={}", browser.profile.display()),
        ];
        let mut capabilities = serde_json::Map::new();
        capabilities.insert("browserName".into(), json!("chrome"));
        capabilities.insert(
            "goog:chromeOptions".into(),
            json!({"binary": chromium.display().to_string(), "args": args}),
        );
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = browser
            .runtime
            .block_on(
                ClientBuilder::new(connector)
                    .capabilities(capabilities)
                    .connect(&format!("http://{addr}")),
            )
            .unwrap_or_else(|e| panic!("no WebDriver session: {e}"));
        browser.client = Some(client);
        browser
    }

    fn client(&self) -> &Client {
        self.client.as_ref().expect("the session is open")
    }

    /// Navigates to `url`.
    pub fn open(&self, url: &str) {
        self.runtime
            .block_on(self.client().goto(url))
            .unwrap_or_else(|e| panic!("opening {url}: {e}"));
    }

    /// Runs `script` (a function body; `arguments` holds the items of `args`, a JSON array) and
    /// returns its result.
    pub fn js(&self, script: &str, args: Value) -> Value {
        let args = match args {
            Value::Array(items) => items,
            Value::Null => Vec::new(),
            single => vec![single],
        };
        self.runtime
            .block_on(self.client().execute(script, args))
            .unwrap_or_else(|e| panic!("running {script}: {e}"))
    }

    /// The text content of the first element matching `selector` (empty when none does).
    pub fn text_of(&self, selector: &str) -> String {
        self.js(
            "const n = document.querySelector(arguments[0]); return n ? n.textContent : null;",
            json!([selector]),
        )
        .as_str()
        .unwrap_or("")
        .to_owned()
    }

    fn find(&self, selector: &str) -> fantoccini::elements::Element {
        self.runtime
            .block_on(self.client().find(Locator::Css(selector)))
            .unwrap_or_else(|e| panic!("no element {selector}: {e}"))
    }

    /// Clicks the first element matching `selector`.
    pub fn click(&self, selector: &str) {
        let element = self.find(selector);
        self.runtime
            .block_on(element.click())
            .unwrap_or_else(|e| panic!("clicking {selector}: {e}"));
    }

    /// Clears the field matching `selector` and types `text` into it.
    pub fn type_into(&self, selector: &str, text: &str) {
        let element = self.find(selector);
        self.runtime
            .block_on(async {
                element.clear().await?;
                element.send_keys(text).await
            })
            .unwrap_or_else(|e| panic!("typing into {selector}: {e}"));
    }

    /// Presses Tab in whatever has the focus.
    pub fn press_tab(&self) {
        self.press(Key::Tab);
    }

    /// Presses and releases `key` (Enter, Escape, ...) in whatever has the focus.
    pub fn press(&self, key: Key) {
        let actions = fantoccini::actions::KeyActions::new("keyboard".to_owned())
            .then(fantoccini::actions::KeyAction::Down {
                value: char::from(key),
            })
            .then(fantoccini::actions::KeyAction::Up {
                value: char::from(key),
            });
        self.runtime
            .block_on(self.client().perform_actions(actions))
            .unwrap_or_else(|e| panic!("pressing {key:?}: {e}"));
    }

    /// Polls until `script` returns something other than null/false; returns it.
    pub fn wait_js(&self, what: &str, script: &str, args: Value) -> Value {
        wait_for(what, || {
            let value = self.js(script, args.clone());
            (!value.is_null() && value != Value::Bool(false)).then_some(value)
        })
    }

    /// Saves a PNG of the viewport as `target/<name>` and returns its path.
    pub fn screenshot(&self, name: &str) -> PathBuf {
        let png = self
            .runtime
            .block_on(self.client().screenshot())
            .unwrap_or_else(|e| panic!("screenshot: {e}"));
        // `target/` of the workspace: the test binary lives in `target/<profile>/deps/`.
        let dir = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
            || {
                std::env::current_exe()
                    .ok()
                    .and_then(|exe| exe.ancestors().nth(3).map(PathBuf::from))
                    .unwrap_or_else(|| PathBuf::from("target"))
            },
            PathBuf::from,
        );
        std::fs::create_dir_all(&dir).expect("target dir");
        let path = dir.join(name);
        std::fs::write(&path, png).expect("writing the screenshot");
        let _ = writeln!(std::io::stderr(), "screenshot: {}", path.display());
        path
    }

    /// Makes the viewport a phone's: 360 CSS pixels wide, with touch (coarse pointer, no hover).
    /// Chrome's DevTools protocol does it; WebDriver has no command for it, so this goes through
    /// chromedriver's `goog/cdp/execute` extension.
    pub fn emulate_phone(&self) {
        for (cmd, params) in [
            (
                "Emulation.setDeviceMetricsOverride",
                json!({"width": 360, "height": 900, "deviceScaleFactor": 1, "mobile": true}),
            ),
            (
                "Emulation.setTouchEmulationEnabled",
                json!({"enabled": true, "maxTouchPoints": 1}),
            ),
        ] {
            let command = ChromeDevTools {
                cmd,
                params: params.clone(),
            };
            self.runtime
                .block_on(self.client().issue_cmd(command))
                .unwrap_or_else(|e| panic!("{cmd}: {e}"));
        }
    }
}

/// chromedriver's `POST /session/{id}/goog/cdp/execute`, which fantoccini does not name.
#[derive(Debug)]
struct ChromeDevTools {
    cmd: &'static str,
    params: Value,
}

impl fantoccini::wd::WebDriverCompatibleCommand for ChromeDevTools {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/goog/cdp/execute",
            session_id.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _request_url: &url::Url) -> (http::Method, Option<String>) {
        (
            http::Method::POST,
            Some(json!({"cmd": self.cmd, "params": self.params}).to_string()),
        )
    }
}
