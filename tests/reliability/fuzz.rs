//! Property-based fuzzing, bounded so it runs in seconds: the parsers of everything a client or
//! Twilio sends (SIDs, statuses, the `hours` window, signatures, and the callback form over HTTP)
//! never panic, accept exactly what they should, and refuse garbage.

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use smsdesk_domain::services::STATUS_CALLBACK_PATH;
use smsdesk_domain::{AccountSid, MessageSid, MessageStatus, RefreshWindow};
use smsdesk_twilio::signature::validate_form;

use smsdesk_test_support::app::spawn_app;
use smsdesk_test_support::app::{credentials, form_body, sign};

/// Cases per pure property: enough to find a panic in a parser, cheap enough for every CI run.
const CASES: u32 = 2_000;

fn config(cases: u32) -> Config {
    Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    }
}

/// Strings that look almost like SIDs, plus any text at all.
fn sid_like() -> impl Strategy<Value = String> {
    prop_oneof![
        "(SM|MM|AC|MG|sm|S|)[0-9a-fA-F]{0,34}",
        "SM[0-9a-fA-Fg-z ' %\u{e9}\u{ff10}-\u{ff19}]{30,34}",
        any::<String>(),
    ]
}

fn is_sid(value: &str, prefixes: &[&str]) -> bool {
    prefixes.iter().any(|prefix| {
        value
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.len() == 32 && rest.bytes().all(|b| b.is_ascii_hexdigit()))
    })
}

proptest! {
    #![proptest_config(config(CASES))]

    #[test]
    fn a_sid_parses_exactly_when_it_is_a_prefix_and_32_hex_digits(raw in sid_like()) {
        prop_assert_eq!(MessageSid::parse(&raw).is_ok(), is_sid(&raw, &["SM", "MM"]), "{:?}", raw);
        prop_assert_eq!(AccountSid::parse(&raw).is_ok(), is_sid(&raw, &["AC"]), "{:?}", raw);
        if let Ok(sid) = MessageSid::parse(&raw) {
            prop_assert_eq!(sid.as_str(), raw.as_str(), "a SID is kept as written");
        }
    }

    #[test]
    fn a_status_filter_accepts_only_twilios_words(raw in prop_oneof![
        "(queued|sent|delivered|failed|undelivered|read|SENT| sent|sent\u{0}|teleported)",
        any::<String>(),
    ]) {
        let known = smsdesk_domain::status::KNOWN_STATUSES
            .iter()
            .any(|status| status.as_str() == raw.trim());
        prop_assert_eq!(MessageStatus::parse_known(&raw).is_ok(), known, "{:?}", raw);
        // What Twilio sends is never refused: an unknown word is kept as news.
        let parsed = MessageStatus::parse(&raw);
        if !known {
            prop_assert_eq!(parsed.as_str(), raw.trim());
        }
    }

    #[test]
    fn hours_parse_exactly_when_they_are_digits_from_1_to_168(raw in prop_oneof![
        "[0-9]{1,12}",
        "[-+ .e0-9\u{ff10}-\u{ff19}]{0,6}",
        any::<String>(),
    ]) {
        let expected = !raw.is_empty()
            && raw.bytes().all(|b| b.is_ascii_digit())
            && raw.parse::<u64>().is_ok_and(|h| (1..=168).contains(&h));
        let parsed = RefreshWindow::parse(Some(&raw));
        prop_assert_eq!(parsed.is_ok(), expected, "{:?}", raw);
        if let Ok(window) = parsed {
            prop_assert_eq!(u64::from(window.hours()), raw.parse::<u64>().unwrap_or(0));
        }
    }

    #[test]
    fn a_signature_validates_only_for_its_own_token_url_and_parameters(
        token in "[ -~]{1,40}",
        other_token in "[ -~]{1,40}",
        path in "/[a-z/]{0,20}",
        params in proptest::collection::vec((any::<String>(), any::<String>()), 0..6),
        garbage in any::<String>(),
        altered in any::<String>(),
    ) {
        let url = format!("https://smsdesk.example{path}");
        let signature = smsdesk_twilio::compute_signature(&token, &url, &params);
        prop_assert!(validate_form(&token, &url, &params, &signature).is_ok());
        if other_token != token {
            prop_assert!(validate_form(&other_token, &url, &params, &signature).is_err());
        }
        if garbage != signature {
            prop_assert!(validate_form(&token, &url, &params, &garbage).is_err());
        }
        let mut tampered = params.clone();
        tampered.push(("Extra".to_owned(), altered));
        prop_assert!(validate_form(&token, &url, &tampered, &signature).is_err());
    }
}

/// Random bytes, random form fields and correctly signed random values posted to the status
/// callback: always a 4xx or a 200, never a 5xx or a dropped connection, and a message Twilio
/// did not send is never created.
#[test]
fn the_status_callback_survives_random_forms_over_http() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let app = runtime.block_on(spawn_app());
    let team = runtime.block_on(app.demo_team());
    let (account, token) = runtime.block_on(credentials(&app, team));
    let before = runtime.block_on(app.snapshot());

    let field = prop_oneof![
        Just("AccountSid".to_owned()),
        Just("MessageSid".to_owned()),
        Just("MessageStatus".to_owned()),
        Just("ErrorCode".to_owned()),
        Just("NumSegments".to_owned()),
        any::<String>(),
    ];
    let form = proptest::collection::vec((field, sid_like()), 0..8);
    let cases = (
        proptest::collection::vec(any::<u8>(), 0..300),
        form,
        any::<bool>(),
    );
    let mut runner = TestRunner::new(config(150));
    runner
        .run(&cases, |(raw, mut params, signed)| {
            runtime.block_on(async {
                // Half the cases are raw bytes; the others a form from our account, signed
                // correctly half the time so that the parsing past the signature is reached.
                let (body, signature) = if raw.len() % 2 == 0 {
                    (raw, None)
                } else {
                    params.insert(0, ("AccountSid".to_owned(), account.clone()));
                    let signature =
                        signed.then(|| sign(&app, STATUS_CALLBACK_PATH, &token, &params));
                    (form_body(&params).into_bytes(), signature)
                };
                let mut request = app
                    .http
                    .post(app.url(STATUS_CALLBACK_PATH))
                    .header("Content-Type", "application/x-www-form-urlencoded")
                    .body(body);
                if let Some(signature) = signature {
                    request = request.header("X-Twilio-Signature", signature);
                }
                let response = request.send().await.expect("the service answers");
                let status = response.status();
                prop_assert!(
                    status.is_client_error() || status.is_success(),
                    "answered {}",
                    status
                );
                Ok(())
            })
        })
        .unwrap_or_else(|failure| panic!("{failure}"));
    assert_eq!(
        runtime.block_on(app.snapshot()),
        before,
        "random callbacks for messages we never stored changed no stored message"
    );
}
