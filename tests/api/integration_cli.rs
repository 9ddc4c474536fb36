//! One validation of a team's Twilio settings, whichever way they come in: what
//! `PUT /api/integrations/twilio` refuses, `smsdesk admin set-twilio` refuses too, and neither
//! changes the stored integration.

use clap::Parser as _;
use serde_json::{Value, json};
use smsdesk::cli::{Cli, run};
use smsdesk_domain::ports::IntegrationRepository;

use smsdesk_test_support::app::spawn_app;

const ACCOUNT: &str = "AC0123456789abcdef0123456789abcdef";

/// One bad input, as HTTP JSON and as CLI arguments, and the field HTTP names.
struct Case {
    why: &'static str,
    json: Value,
    args: Vec<String>,
    field: &'static str,
}

fn case(why: &'static str, json: Value, args: &[&str], field: &'static str) -> Case {
    Case {
        why,
        json,
        args: args.iter().map(|a| (*a).to_owned()).collect(),
        field,
    }
}

fn cases() -> Vec<Case> {
    let long_token = "x".repeat(257);
    vec![
        case(
            "a short account SID",
            json!({"accountSid": "AC123", "authToken": "token", "fromNumber": "+15005550006"}),
            &[
                "--account-sid",
                "AC123",
                "--auth-token-env",
                "token",
                "--from",
                "+15005550006",
            ],
            "accountSid",
        ),
        case(
            "a token with a space",
            json!({"accountSid": ACCOUNT, "authToken": "to ken", "fromNumber": "+15005550006"}),
            &[
                "--account-sid",
                ACCOUNT,
                "--auth-token-env",
                "to ken",
                "--from",
                "+15005550006",
            ],
            "authToken",
        ),
        case(
            "an over-long token",
            json!({"accountSid": ACCOUNT, "authToken": long_token, "fromNumber": "+15005550006"}),
            &[
                "--account-sid",
                ACCOUNT,
                "--auth-token-env",
                &long_token,
                "--from",
                "+15005550006",
            ],
            "authToken",
        ),
        case(
            "a key without its secret",
            json!({"accountSid": ACCOUNT, "authToken": "token", "fromNumber": "+15005550006",
                "apiKeySid": "SK0123456789abcdef0123456789abcdef"}),
            &[
                "--account-sid",
                ACCOUNT,
                "--auth-token-env",
                "token",
                "--from",
                "+15005550006",
                "--api-key-sid",
                "SK0123456789abcdef0123456789abcdef",
            ],
            "apiKeySecret",
        ),
        case(
            "no sender",
            json!({"accountSid": ACCOUNT, "authToken": "token"}),
            &["--account-sid", ACCOUNT, "--auth-token-env", "token"],
            "fromNumber",
        ),
        case(
            "a sender that is not E.164",
            json!({"accountSid": ACCOUNT, "authToken": "token", "fromNumber": "555"}),
            &[
                "--account-sid",
                ACCOUNT,
                "--auth-token-env",
                "token",
                "--from",
                "555",
            ],
            "fromNumber",
        ),
    ]
}

#[tokio::test]
async fn the_cli_refuses_every_setting_the_http_api_refuses_and_neither_changes_anything() {
    let app = spawn_app().await;
    let teams = app.store.list_teams().await.expect("teams");
    let team = teams.first().expect("the demo team").id;
    let before = app
        .store
        .for_team(team)
        .await
        .expect("store up")
        .expect("the demo integration");
    let data_dir = app.data_dir().to_string_lossy().into_owned();

    for case in cases() {
        let answer = app
            .http
            .put(app.url("/api/integrations/twilio"))
            .bearer_auth(&app.api_key)
            .json(&case.json)
            .send()
            .await
            .expect("request sent");
        assert_eq!(answer.status().as_u16(), 400, "HTTP, {}", case.why);
        let body: Value = answer.json().await.expect("JSON error");
        assert_eq!(
            body["error"]["field"], case.field,
            "HTTP names the field, {}",
            case.why
        );

        let mut argv = vec![
            "smsdesk".to_owned(),
            "--data-dir".to_owned(),
            data_dir.clone(),
            "admin".to_owned(),
            "set-twilio".to_owned(),
            "--team".to_owned(),
            team.get().to_string(),
        ];
        argv.extend(case.args.iter().cloned());
        let cli = Cli::try_parse_from(&argv).expect("the arguments parse");
        let refused = run(cli).await;
        let error = refused.expect_err(case.why).to_string();
        assert!(
            !error.contains("to ken") && !error.contains("xxxxxxxx"),
            "the CLI does not echo secrets, {}: {error}",
            case.why
        );
    }

    let after = app
        .store
        .for_team(team)
        .await
        .expect("store up")
        .expect("the demo integration");
    assert_eq!(
        after.credentials.account_sid, before.credentials.account_sid,
        "nothing was stored"
    );
    assert_eq!(after.sender, before.sender, "nothing was stored");
}
