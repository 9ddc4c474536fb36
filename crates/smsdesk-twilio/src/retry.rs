//! The retry loop, separate from HTTP so its timing can be tested with paused time.

use std::future::Future;

use smsdesk_domain::ports::ProviderError;
use tokio::time::{Instant, sleep};

use crate::config::RetryPolicy;

/// Whether an operation may be repeated after an outcome Twilio may have acted on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Idempotency {
    /// A read: retried on 429, 5xx, timeouts and connection errors.
    Read,
    /// A send: retried only on 429, which Twilio guarantees it did not process.
    Write,
}

fn is_retryable(error: &ProviderError, idempotency: Idempotency) -> bool {
    match error {
        ProviderError::RateLimited { .. } => true,
        ProviderError::Unavailable { .. } => idempotency == Idempotency::Read,
        _ => false,
    }
}

/// Runs `attempt` (given the 0-based attempt number) until it succeeds, fails for good, or the
/// policy's attempts or time run out; returns the last result. Waits with `tokio::time::sleep`.
pub(crate) async fn with_retries<T, F, Fut>(
    policy: &RetryPolicy,
    idempotency: Idempotency,
    mut attempt: F,
) -> Result<T, ProviderError>
where
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Result<T, ProviderError>>,
{
    let started = Instant::now();
    let mut retry = 0;
    loop {
        let error = match attempt(retry).await {
            Ok(value) => return Ok(value),
            Err(error) => error,
        };
        if retry >= policy.max_retries || !is_retryable(&error, idempotency) {
            return Err(error);
        }
        let retry_after = match &error {
            ProviderError::RateLimited { retry_after } => *retry_after,
            _ => None,
        };
        let delay = policy.delay(retry, retry_after, rand::random::<f64>());
        if started.elapsed() + delay > policy.max_total_time {
            tracing::debug!(
                ?delay,
                "not retrying Twilio: the wait would exceed the retry time budget"
            );
            return Err(error);
        }
        tracing::debug!(retry, ?delay, %error, "retrying Twilio");
        sleep(delay).await;
        retry += 1;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::time::Duration;

    use super::*;

    fn unavailable() -> ProviderError {
        ProviderError::Unavailable {
            reason: "HTTP 503".into(),
        }
    }

    fn limited(after: Option<u64>) -> ProviderError {
        ProviderError::RateLimited {
            retry_after: after.map(Duration::from_secs),
        }
    }

    /// Runs the loop over scripted outcomes; returns the result, the attempts made and the
    /// (virtual) time each attempt started at, relative to the first.
    async fn run(
        policy: RetryPolicy,
        idempotency: Idempotency,
        script: Vec<Result<u8, ProviderError>>,
    ) -> (Result<u8, ProviderError>, Vec<Duration>) {
        let started = Instant::now();
        let script = Mutex::new(script.into_iter());
        let starts = Mutex::new(Vec::new());
        let result = with_retries(&policy, idempotency, |_| {
            starts.lock().unwrap().push(started.elapsed());
            let next = script.lock().unwrap().next().unwrap_or(Ok(0));
            async move { next }
        })
        .await;
        (result, starts.into_inner().unwrap())
    }

    #[tokio::test(start_paused = true)]
    async fn a_read_is_retried_on_5xx_until_it_succeeds() {
        let (result, starts) = run(
            RetryPolicy::default(),
            Idempotency::Read,
            vec![Err(unavailable()), Err(unavailable()), Ok(7)],
        )
        .await;
        assert_eq!(result, Ok(7));
        assert_eq!(starts.len(), 3);
        // Full jitter: each wait is at most its ceiling (100 ms, then 200 ms).
        assert!(starts[1] <= Duration::from_millis(100), "{starts:?}");
        assert!(
            starts[2] - starts[1] <= Duration::from_millis(200),
            "{starts:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn attempts_stop_after_max_retries_with_the_last_error() {
        let (result, starts) = run(
            RetryPolicy::default(),
            Idempotency::Read,
            vec![Err(limited(None)); 10],
        )
        .await;
        assert_eq!(result, Err(limited(None)));
        assert_eq!(starts.len(), 4, "one attempt and three retries");
    }

    #[tokio::test(start_paused = true)]
    async fn a_send_is_not_retried_after_a_5xx_or_timeout() {
        let (result, starts) = run(
            RetryPolicy::default(),
            Idempotency::Write,
            vec![Err(unavailable()), Ok(1)],
        )
        .await;
        assert_eq!(result, Err(unavailable()));
        assert_eq!(starts.len(), 1, "the message may already have gone out");
    }

    #[tokio::test(start_paused = true)]
    async fn a_send_is_retried_after_a_429() {
        let (result, starts) = run(
            RetryPolicy::default(),
            Idempotency::Write,
            vec![Err(limited(None)), Ok(1)],
        )
        .await;
        assert_eq!(result, Ok(1));
        assert_eq!(starts.len(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn retry_after_is_honoured_exactly() {
        let (result, starts) = run(
            RetryPolicy::default(),
            Idempotency::Read,
            vec![Err(limited(Some(2))), Err(limited(Some(3))), Ok(9)],
        )
        .await;
        assert_eq!(result, Ok(9));
        assert_eq!(
            starts,
            [
                Duration::ZERO,
                Duration::from_secs(2),
                Duration::from_secs(5)
            ],
            "waits follow Retry-After, not the 100 ms backoff"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_retry_after_beyond_the_time_budget_ends_the_retries() {
        let (result, starts) = run(
            RetryPolicy::default(),
            Idempotency::Read,
            vec![Err(limited(Some(60))), Ok(1)],
        )
        .await;
        assert_eq!(
            result,
            Err(limited(Some(60))),
            "the caller learns when to retry"
        );
        assert_eq!(starts.len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn permanent_errors_are_not_retried() {
        let cases = [
            (ProviderError::NotFound, "not found"),
            (
                ProviderError::Rejected {
                    status: 400,
                    code: Some(21211),
                    message: "invalid To".into(),
                },
                "rejected",
            ),
            (
                ProviderError::Unexpected {
                    reason: "bad JSON".into(),
                },
                "unreadable body",
            ),
        ];
        for (error, why) in cases {
            let (result, starts) = run(
                RetryPolicy::default(),
                Idempotency::Read,
                vec![Err(error.clone()), Ok(1)],
            )
            .await;
            assert_eq!(result, Err(error), "{why}");
            assert_eq!(starts.len(), 1, "{why}");
        }
    }
}
