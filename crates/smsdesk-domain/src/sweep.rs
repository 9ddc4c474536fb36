//! Account sweeps: learning many statuses from a Twilio account's Messages list (up to 1,000 a
//! page, newest first) instead of one request per message, and the rule that picks a bulk
//! refresh's plan.
//!
//! A sweep reads pages of messages Twilio sent since a time, newest first, until the list ends
//! or the page budget is spent. Every listed message smsdesk holds then goes through the same
//! forward-only rule as any other observation, with its own source (`sweep`). A message Twilio
//! has not sent yet (queued, scheduled, or failed before sending) has no `date_sent` and never
//! appears under the filter: it is fetched on its own, or waits for the next look.
//!
//! [`choose_plan`] decides, for one bulk refresh, between a sweep (when the candidates are
//! likely covered by a page or two of the account's list) and the sliding window of
//! per-message fetches (when the account's other traffic would take more pages than that). Its
//! inputs are the candidates, the age of the oldest, and what the account's last sweep saw
//! ([`AccountTraffic`], kept per process in [`TrafficEstimates`]).

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use serde::Serialize;

use crate::ids::{AccountSid, MessageSid};
use crate::message::{DeliveryState, Timestamp};
use crate::ports::{
    MAX_LIST_PAGE_SIZE, MessageListQuery, ProviderError, SmsProvider, TwilioCredentials,
};

/// How sweeps are sized and when a bulk refresh uses one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SweepPolicy {
    /// Messages per list page (Twilio's maximum is 1,000).
    pub page_size: u32,
    /// A bulk refresh sweeps only when the plan needs at most this many pages.
    pub max_bulk_pages: u32,
    /// Below this many messages to ask about, a bulk refresh fetches them one by one (as cheap
    /// as a page, and never misses a message not sent yet).
    pub min_candidates: usize,
    /// How much earlier than the oldest candidate's creation a sweep starts, for clocks that
    /// disagree a little.
    pub clock_margin: Duration,
    /// Which plans a bulk refresh may choose.
    pub mode: PlanMode,
}

impl SweepPolicy {
    /// Where a sweep for messages created from `oldest_created` on starts: that much earlier
    /// by the clock margin, since Twilio's clock and ours may disagree a little.
    pub fn since(&self, oldest_created: Timestamp) -> Timestamp {
        oldest_created - chrono::Duration::from_std(self.clock_margin).unwrap_or_default()
    }
}

impl Default for SweepPolicy {
    fn default() -> Self {
        Self {
            page_size: MAX_LIST_PAGE_SIZE,
            max_bulk_pages: 2,
            min_candidates: 3,
            clock_margin: Duration::from_secs(120),
            mode: PlanMode::Auto,
        }
    }
}

/// Which plans a bulk refresh may choose (`SMSDESK_REFRESH_PLAN`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PlanMode {
    /// [`choose_plan`] decides.
    #[default]
    Auto,
    /// Always the sliding window of per-message fetches (as before sweeps existed).
    Window,
}

impl PlanMode {
    /// Reads `auto` or `window`.
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "auto" => Some(Self::Auto),
            "window" => Some(Self::Window),
            _ => None,
        }
    }
}

/// How a bulk refresh learns its candidates' statuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum BulkPlan {
    /// One request per candidate, in the sliding window.
    Window,
    /// Up to `pages` pages of the account's list, then one request per candidate the pages
    /// did not list.
    Sweep {
        /// The page budget.
        pages: u32,
    },
}

impl BulkPlan {
    /// `window` or `sweep`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Window => "window",
            Self::Sweep { .. } => "sweep",
        }
    }
}

/// How busy an account's list was when last swept: messages Twilio sent per hour, and how much
/// of a bulk refresh's candidates its last sweep listed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AccountTraffic {
    /// Messages listed per hour of the span the sweep covered.
    pub sent_per_hour: f64,
    /// The share (0 to 1) of the last bulk sweep's candidates that its pages listed; `None`
    /// until a bulk refresh has swept the account. Low when the team's messages are mostly
    /// not sent yet (queued, scheduled), which no list shows.
    pub covered_share: Option<f64>,
}

/// What [`choose_plan`] decides from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PlanInputs {
    /// Messages to ask about (after cool-downs).
    pub candidates: usize,
    /// How long ago the oldest of them was created.
    pub oldest_age: Duration,
    /// The account's traffic at its last sweep, if this process has swept it.
    pub traffic: Option<AccountTraffic>,
}

/// The plan for one bulk refresh. A sweep when there are at least `min_candidates`, the
/// account's list since the oldest candidate most likely fits in `max_bulk_pages` pages, and the
/// last bulk sweep listed at least half of its candidates (an account never swept is assumed
/// quiet: the sweep itself stops at the budget, and what it saw decides the next time);
/// otherwise the window.
pub fn choose_plan(inputs: PlanInputs, policy: &SweepPolicy) -> BulkPlan {
    if policy.mode == PlanMode::Window
        || inputs.candidates < policy.min_candidates.max(1)
        || policy.max_bulk_pages == 0
    {
        return BulkPlan::Window;
    }
    if inputs
        .traffic
        .and_then(|traffic| traffic.covered_share)
        .is_some_and(|share| share < 0.5)
    {
        return BulkPlan::Window;
    }
    let pages = match inputs.traffic {
        None => 1,
        Some(traffic) => {
            let hours = (inputs.oldest_age + policy.clock_margin).as_secs_f64() / 3600.0;
            let expected = (traffic.sent_per_hour.max(0.0) * hours).ceil();
            let per_page = f64::from(policy.page_size.max(1));
            // At least one page; the float is small and non-negative here.
            (expected / per_page).ceil().clamp(1.0, f64::from(u32::MAX)) as u32
        }
    };
    if pages <= policy.max_bulk_pages {
        BulkPlan::Sweep {
            pages: policy.max_bulk_pages,
        }
    } else {
        BulkPlan::Window
    }
}

/// What one sweep of an account's list found.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Swept {
    /// The state Twilio listed for each message (the first listing wins: pages are newest
    /// first, so a message listed twice across pages shows its newer state first).
    pub states: HashMap<MessageSid, DeliveryState>,
    /// Pages requested.
    pub requests: usize,
    /// Entries listed, readable or not.
    pub listed: usize,
    /// Whether the list ended before the page budget did (so everything sent since the start
    /// time was listed).
    pub complete: bool,
    /// When the oldest listed message was sent.
    pub oldest_sent: Option<Timestamp>,
}

impl Swept {
    /// The account's traffic as this sweep saw it, over the span it covered (from `since`
    /// when complete, else from the oldest message listed, up to `now`; at least a minute).
    pub fn traffic(&self, since: Timestamp, now: Timestamp) -> AccountTraffic {
        let from = if self.complete {
            since
        } else {
            self.oldest_sent.unwrap_or(since)
        };
        let span = (now - from)
            .to_std()
            .unwrap_or_default()
            .max(Duration::from_secs(60));
        AccountTraffic {
            sent_per_hour: self.listed as f64 * 3600.0 / span.as_secs_f64(),
            covered_share: None,
        }
    }
}

/// Reads up to `max_pages` pages of the account's list of messages sent since `since`.
///
/// # Errors
/// The provider's error on any page; what earlier pages found is dropped with it (the caller
/// falls back to fetching one by one).
pub async fn read_account(
    provider: &dyn SmsProvider,
    credentials: &TwilioCredentials,
    since: Timestamp,
    page_size: u32,
    max_pages: u32,
) -> Result<Swept, ProviderError> {
    let mut swept = Swept::default();
    let mut query = MessageListQuery {
        sent_since: since,
        page_size: page_size.clamp(1, MAX_LIST_PAGE_SIZE),
        page_uri: None,
    };
    while swept.requests < usize::try_from(max_pages).unwrap_or(usize::MAX) {
        let page = provider.list_messages(credentials, &query).await?;
        swept.requests += 1;
        swept.listed += page.messages.len() + page.unreadable;
        for message in page.messages {
            if let Some(sent) = message.date_sent {
                swept.oldest_sent = Some(swept.oldest_sent.map_or(sent, |o| o.min(sent)));
            }
            swept.states.entry(message.sid).or_insert(message.state);
        }
        match page.next_page_uri {
            Some(next) => query.page_uri = Some(next),
            None => {
                swept.complete = true;
                break;
            }
        }
    }
    Ok(swept)
}

/// The accounts' traffic as this process's sweeps last saw it. Cheap to share.
#[derive(Debug, Default)]
pub struct TrafficEstimates {
    seen: Mutex<HashMap<AccountSid, AccountTraffic>>,
}

impl TrafficEstimates {
    /// Nothing seen yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// What the last sweep of `account` saw.
    pub fn get(&self, account: &AccountSid) -> Option<AccountTraffic> {
        self.seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(account)
            .copied()
    }

    /// Records what a sweep of `account` saw; a sweep that had no candidates to cover keeps
    /// the coverage seen before.
    pub fn record(&self, account: &AccountSid, traffic: AccountTraffic) {
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        let covered_share = traffic
            .covered_share
            .or_else(|| seen.get(account).and_then(|before| before.covered_share));
        seen.insert(
            account.clone(),
            AccountTraffic {
                covered_share,
                ..traffic
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs(candidates: usize, oldest_minutes: u64, per_hour: Option<f64>) -> PlanInputs {
        PlanInputs {
            candidates,
            oldest_age: Duration::from_secs(oldest_minutes * 60),
            traffic: per_hour.map(|sent_per_hour| AccountTraffic {
                sent_per_hour,
                covered_share: None,
            }),
        }
    }

    #[test]
    fn a_quiet_or_unknown_account_is_swept_and_a_busy_one_gets_the_window() {
        let policy = SweepPolicy::default();
        let cases = [
            (
                inputs(100, 60, None),
                BulkPlan::Sweep { pages: 2 },
                "never swept: try",
            ),
            (
                inputs(100, 60, Some(150.0)),
                BulkPlan::Sweep { pages: 2 },
                "150 in the hour: one page",
            ),
            (
                inputs(100, 60, Some(1500.0)),
                BulkPlan::Sweep { pages: 2 },
                "1,550 in 62 min: two pages",
            ),
            (
                inputs(100, 60, Some(10_000.0)),
                BulkPlan::Window,
                "10 pages of others' traffic",
            ),
            (
                inputs(100, 1440, Some(100.0)),
                BulkPlan::Window,
                "a day at 100/h is 3 pages",
            ),
            (
                inputs(2, 10, None),
                BulkPlan::Window,
                "two messages: fetch them",
            ),
            (inputs(0, 10, None), BulkPlan::Window, "nothing to ask"),
        ];
        for (given, expected, why) in cases {
            assert_eq!(choose_plan(given, &policy), expected, "{why}");
        }
    }

    #[test]
    fn an_account_whose_last_sweep_listed_few_candidates_gets_the_window() {
        let policy = SweepPolicy::default();
        let covered = |share: f64| PlanInputs {
            traffic: Some(AccountTraffic {
                sent_per_hour: 10.0,
                covered_share: Some(share),
            }),
            ..inputs(50, 30, None)
        };
        assert_eq!(
            choose_plan(covered(0.2), &policy),
            BulkPlan::Window,
            "mostly unsent"
        );
        assert_eq!(
            choose_plan(covered(0.9), &policy),
            BulkPlan::Sweep { pages: 2 }
        );
        let estimates = TrafficEstimates::new();
        let account = AccountSid::parse("AC0123456789abcdef0123456789abcdef").expect("account");
        estimates.record(
            &account,
            AccountTraffic {
                sent_per_hour: 5.0,
                covered_share: Some(0.2),
            },
        );
        estimates.record(
            &account,
            AccountTraffic {
                sent_per_hour: 7.0,
                covered_share: None,
            },
        );
        assert_eq!(
            estimates.get(&account),
            Some(AccountTraffic {
                sent_per_hour: 7.0,
                covered_share: Some(0.2)
            }),
            "a reconciler's sweep keeps the bulk's coverage"
        );
    }

    #[test]
    fn the_window_mode_and_a_zero_page_budget_never_sweep() {
        let window = SweepPolicy {
            mode: PlanMode::Window,
            ..SweepPolicy::default()
        };
        assert_eq!(choose_plan(inputs(100, 5, None), &window), BulkPlan::Window);
        let no_pages = SweepPolicy {
            max_bulk_pages: 0,
            ..SweepPolicy::default()
        };
        assert_eq!(
            choose_plan(inputs(100, 5, None), &no_pages),
            BulkPlan::Window
        );
        assert_eq!(PlanMode::parse("window"), Some(PlanMode::Window));
        assert_eq!(PlanMode::parse("auto"), Some(PlanMode::Auto));
        assert_eq!(PlanMode::parse("sweep"), None);
    }

    #[test]
    fn traffic_is_what_was_listed_per_hour_of_the_span_covered() {
        let now = chrono::Utc::now();
        let since = now - chrono::Duration::hours(2);
        let complete = Swept {
            listed: 300,
            complete: true,
            ..Swept::default()
        };
        assert!((complete.traffic(since, now).sent_per_hour - 150.0).abs() < 1e-6);
        let cut_short = Swept {
            listed: 2000,
            complete: false,
            oldest_sent: Some(now - chrono::Duration::minutes(30)),
            ..Swept::default()
        };
        assert!(
            (cut_short.traffic(since, now).sent_per_hour - 4000.0).abs() < 1e-6,
            "2,000 in the last half hour"
        );
        let instant = Swept {
            listed: 10,
            complete: true,
            ..Swept::default()
        };
        assert!(
            (instant.traffic(now, now).sent_per_hour - 600.0).abs() < 1e-6,
            "at least a minute"
        );
    }
}
