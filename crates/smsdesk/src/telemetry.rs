//! Log set-up: tracing with an `RUST_LOG`-style filter (default `info`), pretty or JSON lines.
//! Colour only when the log goes to a terminal and `NO_COLOR` is unset (<https://no-color.org>),
//! so a log redirected to a file or a collector is plain text.

use std::io::IsTerminal as _;

use tracing_subscriber::EnvFilter;

use crate::settings::LogFormat;

/// Installs the global subscriber. Calling it twice is harmless (the second call does nothing),
/// which keeps tests that build several applications simple.
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,sea_orm=warn,actix_server=warn"));
    let colour = wants_colour(
        std::io::stdout().is_terminal(),
        std::env::var_os("NO_COLOR").as_deref(),
    );
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour)
        .with_target(true);
    let _already_set = match format {
        LogFormat::Pretty => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

/// Whether to colour the log: only on a terminal, and not when `NO_COLOR` is set to anything but
/// the empty string.
fn wants_colour(terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
    terminal && no_color.is_none_or(std::ffi::OsStr::is_empty)
}

#[cfg(test)]
mod tests {
    use super::wants_colour;
    use std::ffi::OsStr;

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        assert!(wants_colour(true, None));
        assert!(
            wants_colour(true, Some(OsStr::new(""))),
            "an empty NO_COLOR is unset"
        );
        assert!(!wants_colour(true, Some(OsStr::new("1"))));
        assert!(
            !wants_colour(false, None),
            "a file or a pipe gets plain text"
        );
    }
}
