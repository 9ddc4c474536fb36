//! `GET /api/messages`'s filters as a value, turned into its query parameters.

/// Which messages to list. Every field left `None` (or empty) does not filter; the filters
/// combine (all must hold), and several `statuses` mean any of them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MessageFilter {
    /// `inbound`, `outbound-api`, `outbound-call` or `outbound-reply`.
    pub direction: Option<String>,
    /// Any of these statuses (e.g. `delivered`, `failed`).
    pub statuses: Vec<String>,
    /// Created at or after (RFC 3339).
    pub since: Option<String>,
    /// Created before (RFC 3339).
    pub until: Option<String>,
    /// The sender's own reference given on send.
    pub reference: Option<String>,
    /// Recipient, exactly.
    pub to: Option<String>,
    /// Sender, exactly.
    pub from: Option<String>,
    /// Either party: messages to or from this address, whichever the direction.
    pub party: Option<String>,
    /// Page size (1 to 200; default 50).
    pub limit: Option<usize>,
    /// A previous page's `nextCursor`.
    pub cursor: Option<String>,
}

impl MessageFilter {
    /// The query parameters, in a stable order (`status` repeated once per status).
    #[must_use]
    pub fn pairs(&self) -> Vec<(&'static str, String)> {
        let single = [
            ("direction", self.direction.clone()),
            ("since", self.since.clone()),
            ("until", self.until.clone()),
            ("reference", self.reference.clone()),
            ("to", self.to.clone()),
            ("from", self.from.clone()),
            ("party", self.party.clone()),
            ("limit", self.limit.map(|limit| limit.to_string())),
            ("cursor", self.cursor.clone()),
        ];
        self.statuses
            .iter()
            .map(|status| ("status", status.clone()))
            .chain(
                single
                    .into_iter()
                    .filter_map(|(key, value)| value.map(|value| (key, value))),
            )
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_repeat_and_unset_filters_are_left_out() {
        let filter = MessageFilter {
            statuses: vec!["failed".into(), "undelivered".into()],
            to: Some("+14155550100".into()),
            limit: Some(10),
            ..MessageFilter::default()
        };
        assert_eq!(
            filter.pairs(),
            vec![
                ("status", "failed".to_owned()),
                ("status", "undelivered".to_owned()),
                ("to", "+14155550100".to_owned()),
                ("limit", "10".to_owned()),
            ]
        );
        assert!(MessageFilter::default().pairs().is_empty());
    }
}
