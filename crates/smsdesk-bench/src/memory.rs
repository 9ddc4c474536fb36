//! Workload 5: resident memory, read from `/proc/self/status` (`VmRSS`) of this one process, which
//! holds the service, its simulator and the load generator alike.
//!
//! The edge rate limiter is measured on its own: a fresh `EdgeRateLimiter` with the default rates
//! counts one request for each of `keys` distinct API keys, then, once every key's allowance has
//! refilled, `housekeeping` forgets them all and hands the memory back.

use std::time::{Duration, Instant};

use smsdesk_web::{EdgeKey, EdgeRateLimiter, RateLimitConfig};

use crate::Size;
use crate::service::RunningService;
use crate::throughput::{CONNECTIONS, MakeRequest, drive};

/// This process's resident memory in KiB, when `/proc` tells.
pub fn rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    parse_vm_rss(&status)
}

/// CPU time (user + system) this process has used so far, from `/proc/self/stat`, at its
/// 10 ms resolution.
pub fn cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    parse_cpu_ticks(&stat).map(|ticks| Duration::from_millis(ticks * 1000 / USER_HZ))
}

/// The unit of `/proc/*/stat` times: fixed at 100 per second on Linux, whatever the kernel's HZ.
const USER_HZ: u64 = 100;

fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    // The command name (field 2) may hold spaces and parentheses: count from the last ')'.
    let (_, rest) = stat.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state); utime and stime are fields 14 and 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

fn parse_vm_rss(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

/// KiB as MiB with one decimal, or `n/a`.
pub fn mib(kib: Option<u64>) -> String {
    kib.map_or_else(
        || "n/a".to_owned(),
        |kib| format!("{:.1}", kib as f64 / 1024.0),
    )
}

/// Resident memory after each of several identical loads: a level that holds is reuse, a
/// steady climb is a leak (or data the service keeps on purpose).
#[derive(Debug, Clone)]
pub struct Rounds {
    /// What was loaded.
    pub target: &'static str,
    /// Resident memory after each round, once the load has stopped.
    pub after_kib: Vec<Option<u64>>,
}

/// Loads `make` for `duration`, `rounds` times, reading resident memory a second after each.
///
/// # Errors
/// When the load cannot run.
pub async fn rounds(
    service: &RunningService,
    target: &'static str,
    make: MakeRequest,
    duration: Duration,
    rounds: usize,
) -> anyhow::Result<Rounds> {
    let mut after_kib = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        drive(CONNECTIONS, duration, make.clone()).await?;
        // The simulator keeps one latency per request it served; that is not the service's.
        service.simulator.reset_stats();
        tokio::time::sleep(Duration::from_secs(1)).await;
        after_kib.push(rss_kib());
    }
    Ok(Rounds { target, after_kib })
}

/// Distinct keys the limiter is filled with.
pub fn limiter_keys(size: Size) -> u64 {
    match size {
        Size::Full => 1_000_000,
        Size::Quick => 100_000,
    }
}

/// The limiter's memory at each step.
#[derive(Debug, Clone, Copy)]
pub struct LimiterMemory {
    /// Distinct keys counted.
    pub keys: u64,
    /// Resident memory before the limiter existed.
    pub before_kib: Option<u64>,
    /// After one request from each key.
    pub filled_kib: Option<u64>,
    /// Keys tracked then.
    pub tracked_filled: usize,
    /// How long the requests took.
    pub fill_time: Duration,
    /// After `housekeeping`.
    pub cleaned_kib: Option<u64>,
    /// Keys tracked then.
    pub tracked_cleaned: usize,
    /// How long `housekeeping` took.
    pub housekeeping_time: Duration,
}

/// Fills a fresh limiter with `keys` distinct API keys, waits for their allowances to refill,
/// runs its housekeeping, and reads resident memory at each step.
pub async fn edge_limiter(keys: u64) -> LimiterMemory {
    let config = RateLimitConfig::default();
    let before_kib = rss_kib();
    let limiter = EdgeRateLimiter::new(config);
    let started = Instant::now();
    for key in 0..keys {
        // Each key is under its allowance: the first request always passes.
        let _ = limiter.check(EdgeKey::ApiKey(key));
    }
    let fill_time = started.elapsed();
    let filled_kib = rss_kib();
    let tracked_filled = limiter.tracked();

    // One request is one cell of the per-key quota; it refills in 60 s / per-minute rate.
    let refill = Duration::from_secs(60) / config.per_key_per_minute.get();
    tokio::time::sleep(refill + Duration::from_millis(200)).await;
    let started = Instant::now();
    limiter.housekeeping();
    let housekeeping_time = started.elapsed();
    let cleaned_kib = rss_kib();
    let tracked_cleaned = limiter.tracked();
    LimiterMemory {
        keys,
        before_kib,
        filled_kib,
        tracked_filled,
        fill_time,
        cleaned_kib,
        tracked_cleaned,
        housekeeping_time,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vm_rss_is_read_in_kib() {
        let status = "Name:\tbench\nVmPeak:\t  9999 kB\nVmRSS:\t   12345 kB\nThreads:\t4\n";
        assert_eq!(
            parse_vm_rss(status),
            Some(12345),
            "the VmRSS line, not VmPeak"
        );
        assert_eq!(parse_vm_rss("Name:\tbench\n"), None, "no VmRSS line");
    }

    #[test]
    fn cpu_ticks_are_user_plus_system_counted_after_the_command_name() {
        let stat = "4242 (tokio (rt) 1) S 1 2 3 4 5 6 7 8 9 10 250 31 0 0 20 0 8 0 100";
        assert_eq!(
            parse_cpu_ticks(stat),
            Some(281),
            "utime 250 + stime 31, with a command name holding spaces and parentheses"
        );
        assert_eq!(parse_cpu_ticks("garbage"), None, "no command name");
    }

    #[test]
    fn this_process_has_a_resident_size_on_linux() {
        if cfg!(target_os = "linux") {
            assert!(
                rss_kib().is_some_and(|kib| kib > 0),
                "/proc/self/status has VmRSS"
            );
        }
    }
}
