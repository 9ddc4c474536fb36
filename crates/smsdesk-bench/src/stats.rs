//! Percentiles and medians over measured durations.

use std::time::Duration;

/// The `p`-th percentile (0 to 100) of `samples` by the nearest-rank method; zero when empty.
pub fn percentile(samples: &[Duration], p: f64) -> Duration {
    if samples.is_empty() {
        return Duration::ZERO;
    }
    let mut sorted = samples.to_vec();
    sorted.sort_unstable();
    // Nearest rank: the smallest value with at least p% of the samples at or below it.
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// The median of `values` (the mean of the two middle ones for an even count); zero when empty.
pub fn median(values: &[f64]) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let middle = sorted.len() / 2;
    if sorted.len().is_multiple_of(2) {
        (sorted[middle - 1] + sorted[middle]) / 2.0
    } else {
        sorted[middle]
    }
}

/// The median of durations.
pub fn median_duration(values: &[Duration]) -> Duration {
    let seconds: Vec<f64> = values.iter().map(Duration::as_secs_f64).collect();
    Duration::from_secs_f64(median(&seconds))
}

/// The least time `latencies` can take with at most `width` in flight: no schedule beats the
/// longest single call, nor the total work spread perfectly over `width` slots.
pub fn lower_bound(latencies: &[Duration], width: usize) -> Duration {
    let longest = latencies.iter().copied().max().unwrap_or(Duration::ZERO);
    let total: Duration = latencies.iter().sum();
    let spread = total / u32::try_from(width.max(1)).unwrap_or(u32::MAX);
    longest.max(spread)
}

/// Milliseconds with one decimal, for tables.
pub fn ms(duration: Duration) -> String {
    format!("{:.1}", duration.as_secs_f64() * 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn millis(values: &[u64]) -> Vec<Duration> {
        values.iter().copied().map(Duration::from_millis).collect()
    }

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let samples = millis(&[5, 1, 4, 2, 3, 10, 9, 8, 7, 6]);
        let cases = [
            (50.0, 5, "half of ten samples are at or below the fifth"),
            (99.0, 10, "p99 of ten samples is the largest"),
            (0.0, 1, "p0 is the smallest"),
            (100.0, 10, "p100 is the largest"),
        ];
        for (p, expected, why) in cases {
            assert_eq!(
                percentile(&samples, p),
                Duration::from_millis(expected),
                "{why}"
            );
        }
        assert_eq!(percentile(&[], 50.0), Duration::ZERO, "no samples, no time");
    }

    #[test]
    fn the_median_of_an_even_count_is_the_mean_of_the_middle_two() {
        assert!((median(&[4.0, 1.0, 3.0, 2.0]) - 2.5).abs() < 1e-12);
        assert!((median(&[3.0, 1.0, 2.0]) - 2.0).abs() < 1e-12);
    }

    #[test]
    fn the_lower_bound_is_the_longest_call_or_the_spread_work_whichever_is_larger() {
        let cases = [
            (
                millis(&[100; 20]),
                10,
                200,
                "20 equal calls over 10 slots take two rounds",
            ),
            (millis(&[1000, 10, 10]), 10, 1000, "one long call dominates"),
            (millis(&[]), 10, 0, "no calls take no time"),
        ];
        for (latencies, width, expected, why) in cases {
            assert_eq!(
                lower_bound(&latencies, width),
                Duration::from_millis(expected),
                "{why}"
            );
        }
    }
}
