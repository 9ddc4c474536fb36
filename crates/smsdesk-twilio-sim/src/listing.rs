//! The Messages list (`GET /2010-04-01/Accounts/{AccountSid}/Messages.json`) as Twilio serves
//! it: newest first, filtered by `To`, `From` and `DateSent` (`DateSent>` on or after,
//! `DateSent<` on or before, `DateSent` that day; a date or a date-time), `PageSize` 1 to 1000
//! (default 50), and paged by `next_page_uri`, relative to the API host, whose `PageToken` names
//! the last message of the page before, so messages created meanwhile never shift a page.
//! Messages not sent yet have no `date_sent` and never match a `DateSent` filter.

use std::collections::HashMap;

use chrono::{DateTime, Duration, NaiveDate, NaiveDateTime, Utc};
use serde_json::{Value, json};
use smsdesk_domain::{AccountSid, MessageSid};

use crate::state::SimMessage;

/// The largest page, and the default.
const MAX_PAGE_SIZE: usize = 1000;
const DEFAULT_PAGE_SIZE: usize = 50;

/// One bound of a `DateSent` filter: a day (the whole day) or an instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum When {
    Day(NaiveDate),
    At(DateTime<Utc>),
}

impl When {
    fn parse(value: &str) -> Option<Self> {
        let value = value.trim();
        if let Ok(day) = NaiveDate::parse_from_str(value, "%Y-%m-%d") {
            return Some(Self::Day(day));
        }
        DateTime::parse_from_rfc3339(value)
            .or_else(|_| DateTime::parse_from_rfc2822(value))
            .map(|at| Self::At(at.with_timezone(&Utc)))
            .ok()
            .or_else(|| {
                NaiveDateTime::parse_from_str(value, "%Y-%m-%d %H:%M:%S%.f")
                    .ok()
                    .map(|at| Self::At(at.and_utc()))
            })
    }

    /// The first instant it covers.
    fn start(self) -> DateTime<Utc> {
        match self {
            Self::Day(day) => day.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc(),
            Self::At(at) => at,
        }
    }

    /// The instant just after it ends.
    fn end(self) -> DateTime<Utc> {
        match self {
            Self::Day(_) => self.start() + Duration::days(1),
            Self::At(at) => at + Duration::microseconds(1),
        }
    }
}

/// A list request's filters and paging, as read from its query string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ListQuery {
    to: Option<String>,
    from: Option<String>,
    sent_on_or_after: Option<When>,
    sent_on_or_before: Option<When>,
    sent_on: Option<When>,
    page_size: usize,
    page: usize,
    after_sid: Option<String>,
    /// The filters as given, to write into the page URIs.
    filters: Vec<(String, String)>,
}

impl ListQuery {
    /// Reads the query string's pairs; unknown parameters are ignored, as Twilio does.
    ///
    /// # Errors
    /// Twilio-style text for a page size or date it cannot read.
    pub(crate) fn parse(pairs: &[(String, String)]) -> Result<Self, String> {
        let mut query = Self {
            to: None,
            from: None,
            sent_on_or_after: None,
            sent_on_or_before: None,
            sent_on: None,
            page_size: DEFAULT_PAGE_SIZE,
            page: 0,
            after_sid: None,
            filters: Vec::new(),
        };
        let date = |value: &str| {
            When::parse(value).ok_or_else(|| format!("Invalid DateSent value: {value}"))
        };
        for (name, value) in pairs {
            match name.as_str() {
                "To" => query.to = Some(value.clone()),
                "From" => query.from = Some(value.clone()),
                "DateSent>" => query.sent_on_or_after = Some(date(value)?),
                "DateSent<" => query.sent_on_or_before = Some(date(value)?),
                "DateSent" => query.sent_on = Some(date(value)?),
                "PageSize" => {
                    query.page_size = value
                        .parse::<usize>()
                        .ok()
                        .filter(|size| (1..=MAX_PAGE_SIZE).contains(size))
                        .ok_or_else(|| {
                            format!("PageSize must be between 1 and {MAX_PAGE_SIZE}: {value}")
                        })?;
                }
                "Page" => {
                    query.page = value
                        .parse()
                        .map_err(|_| format!("Page must be a number: {value}"))?;
                }
                "PageToken" => query.after_sid = value.strip_prefix("PA").map(str::to_owned),
                _ => {}
            }
            if matches!(
                name.as_str(),
                "To" | "From" | "DateSent>" | "DateSent<" | "DateSent"
            ) {
                query.filters.push((name.clone(), value.clone()));
            }
        }
        Ok(query)
    }

    fn matches(&self, message: &SimMessage) -> bool {
        if self.to.as_ref().is_some_and(|to| *to != message.to)
            || self
                .from
                .as_ref()
                .is_some_and(|from| message.from.as_ref() != Some(from))
        {
            return false;
        }
        let date_filtered = self.sent_on_or_after.is_some()
            || self.sent_on_or_before.is_some()
            || self.sent_on.is_some();
        let Some(sent) = message.date_sent else {
            return !date_filtered;
        };
        self.sent_on_or_after
            .is_none_or(|bound| sent >= bound.start())
            && self
                .sent_on_or_before
                .is_none_or(|bound| sent < bound.end())
            && self
                .sent_on
                .is_none_or(|day| sent >= day.start() && sent < day.end())
    }

    fn uri(&self, account: &AccountSid, page: usize, token: Option<&MessageSid>) -> String {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        query.extend_pairs(&self.filters);
        query.append_pair("PageSize", &self.page_size.to_string());
        query.append_pair("Page", &page.to_string());
        if let Some(sid) = token {
            query.append_pair("PageToken", &format!("PA{sid}"));
        }
        format!(
            "/2010-04-01/Accounts/{account}/Messages.json?{}",
            query.finish()
        )
    }
}

/// A page ready to send, and how many messages it lists (its latency grows with them).
pub(crate) struct Page {
    pub body: Value,
    pub listed: usize,
}

/// The page of `account`'s messages that `query` asks for.
pub(crate) fn page(
    messages: &HashMap<MessageSid, SimMessage>,
    account: &AccountSid,
    query: &ListQuery,
) -> Page {
    let mut matching: Vec<&SimMessage> = messages
        .values()
        .filter(|m| m.account_sid == *account && query.matches(m))
        .collect();
    // Newest first: by when it was sent, else created; the SID breaks ties.
    matching.sort_by(|a, b| {
        let key = |m: &SimMessage| m.date_sent.unwrap_or(m.date_created);
        key(b).cmp(&key(a)).then_with(|| b.sid.cmp(&a.sid))
    });
    let start = match &query.after_sid {
        Some(sid) => matching
            .iter()
            .position(|m| m.sid.as_str() == sid)
            .map_or(query.page * query.page_size, |at| at + 1),
        None => query.page * query.page_size,
    };
    let on_page: Vec<&SimMessage> = matching
        .iter()
        .skip(start)
        .take(query.page_size)
        .copied()
        .collect();
    let more = matching.len() > start + on_page.len();
    let next = more.then(|| {
        query.uri(
            account,
            query.page + 1,
            on_page.last().map(|message| &message.sid),
        )
    });
    let previous = (query.page > 0).then(|| query.uri(account, query.page - 1, None));
    let body = json!({
        "messages": on_page.iter().map(|m| m.to_twilio_json()).collect::<Vec<_>>(),
        "page": query.page,
        "page_size": query.page_size,
        "start": start,
        "end": (start + on_page.len()).saturating_sub(1),
        "first_page_uri": query.uri(account, 0, None),
        "previous_page_uri": previous,
        "next_page_uri": next,
        "uri": query.uri(account, query.page, None),
    });
    Page {
        body,
        listed: on_page.len(),
    }
}
