//! The SMS page (`GET /sms`): one HTML document, one stylesheet and one script, compiled into the
//! binary from `assets/` so the service needs no front-end server, build step or CDN. Beside it,
//! the API reference (`GET /docs`): the OpenAPI document rendered by the Swagger UI vendored in
//! `assets/vendor/swagger-ui` (version and licence in its `VERSION`; updated by
//! `assets/vendor/update-swagger-ui.sh`), under the same Content-Security-Policy.
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

const DOCS_HTML: &str = include_str!("../assets/docs.html");
const DOCS_CSS: &str = include_str!("../assets/docs.css");
const DOCS_JS: &str = include_str!("../assets/docs.js");
const SWAGGER_UI_JS: &str = include_str!("../assets/vendor/swagger-ui/swagger-ui-bundle.js");
const SWAGGER_UI_CSS: &str = include_str!("../assets/vendor/swagger-ui/swagger-ui.css");
/// `package`, `version`, `licence`, `integrity` and `source` of the vendored Swagger UI, one
/// `key: value` per line, written by the update script.
pub(crate) const SWAGGER_UI_VERSION_FILE: &str =
    include_str!("../assets/vendor/swagger-ui/VERSION");

/// The vendored Swagger UI's version, from its `VERSION` file.
#[must_use]
pub(crate) fn swagger_ui_version() -> &'static str {
    SWAGGER_UI_VERSION_FILE
        .lines()
        .find_map(|line| line.strip_prefix("version: "))
        .unwrap_or("unknown")
        .trim()
}

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
        .service(get("/docs", docs_page))
        .service(get("/docs/docs.css", docs_stylesheet))
        .service(get("/docs/docs.js", docs_script))
        .service(get("/docs/swagger-ui.css", swagger_ui_stylesheet))
        .service(get("/docs/swagger-ui-bundle.js", swagger_ui_script))
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

/// An HTML document under the page's Content-Security-Policy.
fn html(cache_control: &'static str, body: String) -> HttpResponse {
    with_page_headers(
        HttpResponse::Ok()
            .content_type("text/html; charset=utf-8")
            .insert_header((header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY))
            .insert_header((header::CACHE_CONTROL, cache_control))
            .body(body),
    )
}

async fn page(state: web::Data<WebState>) -> HttpResponse {
    // The page may carry the demo key; keep it out of shared caches and history.
    html("no-store", render(&state))
}

async fn stylesheet() -> HttpResponse {
    own_asset("text/css; charset=utf-8", PAGE_CSS)
}

async fn script() -> HttpResponse {
    own_asset("text/javascript; charset=utf-8", PAGE_JS)
}

/// The reference page, its one placeholder filled once per process.
static DOCS_PAGE: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| DOCS_HTML.replace("{{SWAGGER_UI_VERSION}}", swagger_ui_version()));

async fn docs_page() -> HttpResponse {
    html("no-cache", DOCS_PAGE.clone())
}

/// One of the page's own small files: revalidated on every load, so an upgrade shows at once.
fn own_asset(content_type: &'static str, body: &'static str) -> HttpResponse {
    with_page_headers(
        HttpResponse::Ok()
            .content_type(content_type)
            .insert_header((header::CACHE_CONTROL, "no-cache"))
            .body(body),
    )
}

/// A vendored file: linked with its version in the query (`?v=5.35.0`), so a browser may keep
/// it for a year and an upgrade is a new URL.
fn vendored_asset(content_type: &'static str, body: &'static str) -> HttpResponse {
    with_page_headers(
        HttpResponse::Ok()
            .content_type(content_type)
            .insert_header((header::CACHE_CONTROL, "public, max-age=31536000, immutable"))
            .body(body),
    )
}

async fn docs_stylesheet() -> HttpResponse {
    own_asset("text/css; charset=utf-8", DOCS_CSS)
}

async fn docs_script() -> HttpResponse {
    own_asset("text/javascript; charset=utf-8", DOCS_JS)
}

async fn swagger_ui_stylesheet() -> HttpResponse {
    vendored_asset("text/css; charset=utf-8", SWAGGER_UI_CSS)
}

async fn swagger_ui_script() -> HttpResponse {
    vendored_asset("text/javascript; charset=utf-8", SWAGGER_UI_JS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_vendored_viewer_names_its_version_licence_and_integrity() {
        let version = swagger_ui_version();
        assert!(
            version.split('.').count() == 3
                && version.split('.').all(|part| part.parse::<u32>().is_ok()),
            "a semantic version, not {version:?}"
        );
        for key in [
            "package: swagger-ui-dist",
            "licence: Apache-2.0",
            "integrity: sha512-",
        ] {
            assert!(SWAGGER_UI_VERSION_FILE.contains(key), "VERSION lacks {key}");
        }
        assert!(DOCS_HTML.contains("?v={{SWAGGER_UI_VERSION}}"));
        assert!(!DOCS_HTML.contains("<script>") && !DOCS_HTML.contains("https://"));
    }

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
