//! Query strings read strictly: every key must be known and appear at most once, so a typo such
//! as `?hour=48` is a 400 naming the key instead of a silently ignored filter.

use actix_web::http::StatusCode;

use crate::error::{ApiError, ErrorCode};

/// A query string's pairs, checked against the keys an endpoint knows.
pub(crate) struct QueryParams {
    pairs: Vec<(String, String)>,
}

impl QueryParams {
    /// Checks `pairs` against `allowed`; none may be repeated.
    pub(crate) fn new(pairs: Vec<(String, String)>, allowed: &[&str]) -> Result<Self, ApiError> {
        Self::with_repeatable(pairs, allowed, &[])
    }

    /// Checks `pairs` against `allowed`; only the keys in `repeatable` may be given more than
    /// once (a filter meaning any of its values).
    pub(crate) fn with_repeatable(
        pairs: Vec<(String, String)>,
        allowed: &[&str],
        repeatable: &[&str],
    ) -> Result<Self, ApiError> {
        for (index, (key, _)) in pairs.iter().enumerate() {
            if !allowed.contains(&key.as_str()) {
                let shown: String = key.chars().take(64).collect();
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    ErrorCode::UnknownParameter,
                    format!(
                        "unknown query parameter '{shown}'; this endpoint accepts: {}",
                        allowed.join(", ")
                    ),
                )
                .with_field(shown));
            }
            if !repeatable.contains(&key.as_str())
                && pairs[..index].iter().any(|(seen, _)| seen == key)
            {
                return Err(ApiError::invalid_parameter(
                    key,
                    format!("'{key}' is given more than once"),
                ));
            }
        }
        Ok(Self { pairs })
    }

    /// The value of `key`, if given.
    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `key`, in the order given.
    pub(crate) fn get_all<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.pairs
            .iter()
            .filter(move |(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// `limit`: a whole number from 1 to `max`, or `default` when absent.
    pub(crate) fn limit(&self, default: usize, max: usize) -> Result<usize, ApiError> {
        match self.get("limit") {
            None => Ok(default),
            Some(raw) => raw
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=max).contains(n) && raw.bytes().all(|b| b.is_ascii_digit()))
                .ok_or_else(|| {
                    ApiError::invalid_parameter(
                        "limit",
                        format!("limit must be a whole number from 1 to {max}"),
                    )
                }),
        }
    }

    /// The pairs, in the order given.
    pub(crate) fn pairs(&self) -> &[(String, String)] {
        &self.pairs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn unknown_and_repeated_keys_are_refused_by_name() {
        let unknown = QueryParams::new(pairs(&[("hour", "4")]), &["hours"])
            .err()
            .map(|e| e.body().error);
        assert_eq!(
            unknown.as_ref().map(|e| e.code.as_str()),
            Some("unknown_parameter")
        );
        assert_eq!(unknown.and_then(|e| e.field), Some("hour".to_owned()));

        let repeated = QueryParams::new(pairs(&[("hours", "4"), ("hours", "5")]), &["hours"])
            .err()
            .map(|e| e.body().error);
        assert_eq!(repeated.and_then(|e| e.field), Some("hours".to_owned()));
    }

    #[test]
    fn only_repeatable_keys_may_repeat() {
        let params = QueryParams::with_repeatable(
            pairs(&[("status", "sent"), ("status", "failed")]),
            &["status", "to"],
            &["status"],
        )
        .ok();
        assert_eq!(
            params.map(|p| p.get_all("status").map(str::to_owned).collect::<Vec<_>>()),
            Some(vec!["sent".to_owned(), "failed".to_owned()])
        );
        assert!(
            QueryParams::with_repeatable(
                pairs(&[("to", "a"), ("to", "b")]),
                &["status", "to"],
                &["status"]
            )
            .is_err()
        );
    }

    #[test]
    fn known_keys_are_read_back() {
        let params = QueryParams::new(pairs(&[("hours", "4")]), &["hours", "messageSid"]);
        assert_eq!(
            params.ok().and_then(|p| p.get("hours").map(str::to_owned)),
            Some("4".into())
        );
    }
}
