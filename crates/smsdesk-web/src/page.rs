//! The SMS page (`GET /sms`): one HTML document, one stylesheet and one script, compiled into the
//! binary from `assets/` so the service needs no front-end server, build step or CDN.
//!
//! The server fills a few values into the HTML, so the page and the API never disagree: the
//! statuses (and which are final), the cool-downs of the refresh policy, and, in demo mode only,
//! the demo API key. Everything else happens in the browser against the JSON API with the key the
//! user signs in with (kept in `sessionStorage`, sent as a bearer header, live updates included:
//! see [`crate::events`]).

use std::fmt::Write as _;

use actix_web::dev::HttpServiceFactory;
use actix_web::http::Method;
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::from_fn;
use actix_web::{FromRequest, Handler, HttpResponse, Responder, web};
use smsdesk_domain::status::KNOWN_STATUSES;

use crate::edge;
use crate::events;
use crate::routes::endpoint;
use crate::state::WebState;

const PAGE_HTML: &str = include_str!("../assets/sms.html");
const PAGE_CSS: &str = include_str!("../assets/sms.css");
const PAGE_JS: &str = include_str!("../assets/sms.js");

/// Scripts and styles only from this origin, no inline code, no framing: even a message body
/// that slipped past the page's escaping could not run.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     connect-src 'self'; img-src 'self' data:; form-action 'none'; base-uri 'none'; \
     frame-ancestors 'none'";

/// Registers the page, its assets and the live-event stream, each behind the edge middleware.
/// Called from [`crate::configure`] before the API scope, so `/api/messages/events` wins over
/// `/api/messages/{sid}`.
pub(crate) fn register(cfg: &mut web::ServiceConfig) {
    cfg.service(get("/sms", page))
        .service(get("/sms/app.css", stylesheet))
        .service(get("/sms/app.js", script))
        .service(get("/api/messages/events", events::message_events));
}

/// A GET endpoint (other methods 405), everything through the edge middleware.
fn get<F, Args>(path: &str, handler: F) -> impl HttpServiceFactory + 'static
where
    F: Handler<Args>,
    Args: FromRequest + 'static,
    F::Output: Responder + 'static,
{
    endpoint(path, Method::GET, handler).wrap(from_fn(edge::edge))
}

/// Escapes text for an HTML attribute value or element content.
fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            other => out.push(other),
        }
    }
    out
}

/// The HTML with the server's values filled in.
fn render(state: &WebState) -> String {
    let config = state.config();
    let policy = &config.refresh_policy;
    let mut options = String::new();
    for status in &KNOWN_STATUSES {
        let name = escape_html(status.as_str());
        let _ = write!(options, "<option value=\"{name}\">{name}</option>");
    }
    let terminal = KNOWN_STATUSES
        .iter()
        .filter(|s| s.is_terminal())
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(" ");
    // The service's forward-only order, so the page never paints a status backwards either.
    let ranks = KNOWN_STATUSES
        .iter()
        .filter_map(|s| s.rank().map(|rank| format!("{}:{rank}", s.as_str())))
        .collect::<Vec<_>>()
        .join(" ");
    // The demo key is a convenience of development setups; production never shows a key.
    let demo_key = config
        .demo_api_key
        .as_deref()
        .filter(|_| !config.production)
        .map_or_else(String::new, |key| {
            format!(" value=\"{}\" data-demo=\"true\"", escape_html(key))
        });
    PAGE_HTML
        .replace("{{STATUS_OPTIONS}}", &options)
        .replace("{{TERMINAL_STATUSES}}", &escape_html(&terminal))
        .replace("{{STATUS_RANKS}}", &escape_html(&ranks))
        .replace(
            "{{MESSAGE_COOLDOWN}}",
            &policy.message_cooldown.as_secs().to_string(),
        )
        .replace(
            "{{BULK_COOLDOWN}}",
            &policy.bulk_cooldown.as_secs().to_string(),
        )
        .replace("{{DEMO_KEY}}", &demo_key)
}

fn with_page_headers(mut response: HttpResponse) -> HttpResponse {
    let headers = response.headers_mut();
    for (name, value) in [
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_FRAME_OPTIONS, "DENY"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

async fn page(state: web::Data<WebState>) -> HttpResponse {
    with_page_headers(
        HttpResponse::Ok()
            .content_type("text/html; charset=utf-8")
            .insert_header((header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY))
            // The page may carry the demo key; keep it out of shared caches and history.
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .body(render(&state)),
    )
}

async fn stylesheet() -> HttpResponse {
    with_page_headers(
        HttpResponse::Ok()
            .content_type("text/css; charset=utf-8")
            .insert_header((header::CACHE_CONTROL, "no-cache"))
            .body(PAGE_CSS),
    )
}

async fn script() -> HttpResponse {
    with_page_headers(
        HttpResponse::Ok()
            .content_type("text/javascript; charset=utf-8")
            .insert_header((header::CACHE_CONTROL, "no-cache"))
            .body(PAGE_JS),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_escaping_covers_every_character_that_could_break_out() {
        assert_eq!(
            escape_html(r#"<a href="x" onclick='y'>&</a>"#),
            "&lt;a href=&quot;x&quot; onclick=&#39;y&#39;&gt;&amp;&lt;/a&gt;"
        );
    }

    #[test]
    fn the_page_template_has_every_placeholder_and_no_inline_script() {
        for placeholder in [
            "{{STATUS_OPTIONS}}",
            "{{TERMINAL_STATUSES}}",
            "{{MESSAGE_COOLDOWN}}",
            "{{BULK_COOLDOWN}}",
            "{{DEMO_KEY}}",
        ] {
            assert!(PAGE_HTML.contains(placeholder), "{placeholder} is missing");
        }
        assert!(
            !PAGE_HTML.contains("<script>"),
            "the policy forbids inline scripts"
        );
        // An inline handler is ` on<letters>=` inside a tag.
        let handler = PAGE_HTML.match_indices(" on").find(|(at, _)| {
            let rest = &PAGE_HTML[at + 3..];
            let name_len = rest.bytes().take_while(u8::is_ascii_lowercase).count();
            name_len > 0 && rest[name_len..].starts_with('=')
        });
        assert_eq!(handler, None, "the policy forbids inline handlers");
        assert!(!PAGE_HTML.contains("http://") && !PAGE_HTML.contains("https://"));
    }
}
