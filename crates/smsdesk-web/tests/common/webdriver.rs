//! A small WebDriver client over a minimal blocking HTTP/1.1 client, enough to drive Debian's
//! headless Chromium through `chromedriver`: sessions, navigation, elements, keys, scripts,
//! screenshots and phone emulation. Waits poll a condition with a bounded timeout; nothing sleeps
//! to wait for an outcome.
//!
//! Shared by the browser suites of `smsdesk-web` and of the end-to-end crate (`tests/browser`).

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};

pub const WAIT: Duration = Duration::from_secs(15);
/// The W3C WebDriver key of an element reference.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

// ---- a minimal HTTP/1.1 client (WebDriver and the API speak JSON over plain HTTP) ----------

pub struct HttpAnswer {
    pub status: u16,
    pub body: String,
}

fn decode_chunked(mut raw: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = raw.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if size == 0 || rest.len() < size {
            break;
        }
        out.push_str(&rest[..size]);
        raw = rest[size..].trim_start_matches("\r\n");
    }
    out
}

pub fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&Value>,
) -> HttpAnswer {
    let mut stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    let payload = body.map(Value::to_string).unwrap_or_default();
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        payload.len()
    );
    if body.is_some() {
        request.push_str("Content-Type: application/json\r\n");
    }
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(&payload);
    stream
        .write_all(request.as_bytes())
        .unwrap_or_else(|e| panic!("write {method} {path}: {e}"));
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .expect("a read timeout");
    // Servers may keep the connection open despite `Connection: close`: read the head, then
    // exactly the body it announces.
    let mut raw = Vec::new();
    let mut buffer = [0_u8; 8192];
    let head_end = loop {
        if let Some(at) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        let read = stream
            .read(&mut buffer)
            .unwrap_or_else(|e| panic!("read {method} {path}: {e}"));
        assert!(
            read > 0,
            "{method} {path}: the connection closed before the answer"
        );
        raw.extend_from_slice(&buffer[..read]);
    };
    let head = String::from_utf8_lossy(&raw[..head_end]).to_ascii_lowercase();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let length = head
        .lines()
        .find_map(|line| line.strip_prefix("content-length:"))
        .and_then(|n| n.trim().parse::<usize>().ok());
    let mut body = raw.split_off(head_end);
    match length {
        Some(length) => {
            while body.len() < length {
                let read = stream
                    .read(&mut buffer)
                    .unwrap_or_else(|e| panic!("read {method} {path}: {e}"));
                assert!(read > 0, "{method} {path}: the body was cut short");
                body.extend_from_slice(&buffer[..read]);
            }
            body.truncate(length);
        }
        None => {
            stream
                .read_to_end(&mut body)
                .unwrap_or_else(|e| panic!("read {method} {path}: {e}"));
        }
    }
    let body = String::from_utf8_lossy(&body).into_owned();
    HttpAnswer {
        status,
        body: if head.contains("transfer-encoding: chunked") {
            decode_chunked(&body)
        } else {
            body
        },
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Polls `probe` until it answers `Some`, for at most `WAIT`.
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

// ---- the browser -------------------------------------------------------------------------

fn on_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|candidate| candidate.is_file())
    })
}

/// Chromium and chromedriver, or `None` after saying loudly why the test is skipped.
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
    driver: Child,
    addr: SocketAddr,
    session: String,
    profile: PathBuf,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = http(
            self.addr,
            "DELETE",
            &format!("/session/{}", self.session),
            &[],
            None,
        );
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

impl Browser {
    pub fn launch(chromium: &std::path::Path, driver: &std::path::Path) -> Self {
        let port = free_port();
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let child = Command::new(driver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting chromedriver");
        let profile = std::env::temp_dir().join(format!(
            "smsdesk-browser-{}-{}",
            std::process::id(),
            rand_suffix()
        ));
        let mut browser = Self {
            driver: child,
            addr,
            session: String::new(),
            profile,
        };
        wait_for("chromedriver to be ready", || {
            TcpStream::connect(addr).ok()?;
            let answer = http(addr, "GET", "/status", &[], None);
            let status: Value = serde_json::from_str(&answer.body).ok()?;
            status["value"]["ready"].as_bool().filter(|ready| *ready)
        });
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
        let created = http(
            addr,
            "POST",
            "/session",
            &[],
            Some(&json!({"capabilities": {"alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": {"binary": chromium.display().to_string(), "args": args},
            }}})),
        );
        let created: Value = serde_json::from_str(&created.body).expect("session JSON");
        browser.session = created["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no WebDriver session: {created}"))
            .to_owned();
        browser
    }

    pub fn command(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let answer = http(
            self.addr,
            method,
            &format!("/session/{}{path}", self.session),
            &[],
            Some(&body.unwrap_or_else(|| json!({}))).filter(|_| method != "GET"),
        );
        let value: Value = serde_json::from_str(&answer.body)
            .unwrap_or_else(|_| panic!("{method} {path}: not JSON: {}", answer.body));
        assert_eq!(answer.status, 200, "{method} {path}: {value}");
        value["value"].clone()
    }

    pub fn open(&self, url: &str) {
        self.command("POST", "/url", Some(json!({ "url": url })));
    }

    /// Runs `script` (a function body; `arguments` holds `args`) and returns its result.
    pub fn js(&self, script: &str, args: Value) -> Value {
        self.command(
            "POST",
            "/execute/sync",
            Some(json!({"script": script, "args": args})),
        )
    }

    pub fn text_of(&self, selector: &str) -> String {
        self.js(
            "const n = document.querySelector(arguments[0]); return n ? n.textContent : null;",
            json!([selector]),
        )
        .as_str()
        .unwrap_or("")
        .to_owned()
    }

    pub fn element(&self, selector: &str) -> String {
        let found = self.command(
            "POST",
            "/element",
            Some(json!({"using": "css selector", "value": selector})),
        );
        found[ELEMENT_KEY]
            .as_str()
            .unwrap_or_else(|| panic!("no element {selector}"))
            .to_owned()
    }

    pub fn click(&self, selector: &str) {
        let id = self.element(selector);
        self.command("POST", &format!("/element/{id}/click"), None);
    }

    pub fn type_into(&self, selector: &str, text: &str) {
        let id = self.element(selector);
        self.command("POST", &format!("/element/{id}/clear"), None);
        self.command(
            "POST",
            &format!("/element/{id}/value"),
            Some(json!({ "text": text })),
        );
    }

    pub fn press_tab(&self) {
        self.command(
            "POST",
            "/actions",
            Some(
                json!({"actions": [{"type": "key", "id": "keyboard", "actions": [
                    {"type": "keyDown", "value": "\u{E004}"},
                    {"type": "keyUp", "value": "\u{E004}"},
                ]}]}),
            ),
        );
    }

    /// Polls until `script` returns something other than null/false; returns it.
    pub fn wait_js(&self, what: &str, script: &str, args: Value) -> Value {
        wait_for(what, || {
            let value = self.js(script, args.clone());
            (!value.is_null() && value != Value::Bool(false)).then_some(value)
        })
    }

    pub fn screenshot(&self, name: &str) -> PathBuf {
        let png = self.command("GET", "/screenshot", None);
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(png.as_str().unwrap_or(""))
            .expect("a base64 screenshot");
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
        std::fs::write(&path, bytes).expect("writing the screenshot");
        eprintln!("screenshot: {}", path.display());
        path
    }

    /// Makes the viewport a phone's: 360 CSS pixels wide, with touch (coarse pointer, no hover).
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
            self.command(
                "POST",
                "/goog/cdp/execute",
                Some(json!({"cmd": cmd, "params": params})),
            );
        }
    }
}

fn rand_suffix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos().into())
}
