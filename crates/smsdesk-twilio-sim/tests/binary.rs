//! The `smsdesk-twilio-sim` binary: starts from flags, prints its address, serves Twilio's API.

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};

/// Ends the simulator process even when an assertion fails first.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

const ACCOUNT: &str = "AC0123456789abcdef0123456789abcdef";

#[tokio::test]
async fn the_binary_serves_the_accounts_given_on_its_command_line() {
    let mut child = KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_smsdesk-twilio-sim"))
            .args([
                "--bind",
                "127.0.0.1:0",
                "--account",
                &format!("{ACCOUNT}:cli-token"),
                "--speed",
                "0",
                "--workers",
                "1",
                "--latency-median-ms",
                "1",
            ])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .spawn()
            .expect("the binary starts"),
    );
    let stdout = child.0.stdout.take().expect("stdout is piped");
    let first_line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).map(|_| line)
    })
    .await
    .expect("the reader runs")
    .expect("a line on stdout");
    let base_url = first_line
        .trim()
        .strip_prefix("Twilio simulator at ")
        .unwrap_or_default()
        .to_owned();
    assert!(base_url.starts_with("http://127.0.0.1:"), "{first_line}");

    let http = reqwest::Client::new();
    let create = |password: &'static str| {
        http.post(format!(
            "{base_url}/2010-04-01/Accounts/{ACCOUNT}/Messages.json"
        ))
        .basic_auth(ACCOUNT, Some(password))
        .form(&[
            ("To", "+14155550100"),
            ("From", "+15005550006"),
            ("Body", "hi"),
        ])
        .send()
    };
    let accepted = create("cli-token").await.map(|r| r.status().as_u16());
    let refused = create("wrong").await.map(|r| r.status().as_u16());
    drop(child);
    assert_eq!(accepted.ok(), Some(201), "the account from --account");
    assert_eq!(refused.ok(), Some(401), "a wrong token");
}

#[test]
fn a_malformed_account_flag_is_refused_with_a_reason() {
    let output = Command::new(env!("CARGO_BIN_EXE_smsdesk-twilio-sim"))
        .args(["--account", "AC123:token"])
        .output()
        .expect("the binary runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("account SID"), "{stderr}");
}
