//! Handlers parse, call one use case and map the answer: a rule of this crate, kept by reading
//! its source. Every function that takes the shared state as an actix extractor
//! (`web::Data<WebState>`) is a handler, and none may grow past 40 lines; a longer one is doing
//! a use case's work and belongs in `smsdesk-domain`.

use std::path::Path;

const MAX_HANDLER_LINES: usize = 40;

/// `(name, lines)` of every handler in `source`: from its `fn` line to its closing brace.
fn handlers(source: &str) -> Vec<(String, usize)> {
    let lines: Vec<&str> = source.lines().collect();
    let mut found = Vec::new();
    let mut index = 0;
    while index < lines.len() {
        let line = lines[index];
        let is_fn_start = !line.starts_with(' ') && line.contains("fn ") && !line.starts_with("//");
        if !is_fn_start {
            index += 1;
            continue;
        }
        let end = (index..lines.len())
            .find(|&i| lines[i] == "}")
            .unwrap_or(lines.len() - 1);
        let signature_end = (index..=end)
            .find(|&i| lines[i].ends_with('{'))
            .unwrap_or(end);
        let signature = lines[index..=signature_end].join(" ");
        if signature.contains("web::Data<WebState>") {
            let name = signature
                .split("fn ")
                .nth(1)
                .and_then(|rest| rest.split(['(', '<']).next())
                .unwrap_or("?")
                .to_owned();
            found.push((name, end - index + 1));
        }
        index = end + 1;
    }
    found
}

#[test]
fn no_handler_is_longer_than_forty_lines() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut seen = 0;
    let mut too_long = Vec::new();
    for file in ["routes.rs", "webhooks.rs", "events.rs", "page.rs"] {
        let source = std::fs::read_to_string(src.join(file)).expect("the source is readable");
        for (name, length) in handlers(&source) {
            seen += 1;
            if length > MAX_HANDLER_LINES {
                too_long.push(format!("{file}: {name} has {length} lines"));
            }
        }
    }
    assert!(
        seen >= 9,
        "the scan found the handlers ({seen}); has the layout changed?"
    );
    assert!(too_long.is_empty(), "{too_long:#?}");
}

#[test]
fn the_scan_measures_a_handler_from_its_signature_to_its_closing_brace() {
    let source = "async fn short(\n    state: web::Data<WebState>,\n) -> R {\n    one();\n}\n\nfn helper(state: &WebState) {\n}\n";
    assert_eq!(handlers(source), vec![("short".to_owned(), 5)]);
}
