//! The machine a run happened on, and the Markdown report (`docs/benchmarks.md`).

use std::fmt::Write as _;
use std::process::Command;
use std::time::Duration;

use crate::Size;
use crate::endpoint::EndpointResult;
use crate::engine::{Comparison, ConcurrentRun, PlanComparison, PlanRow, Run};
use crate::fleet::FleetRun;
use crate::memory::{LimiterMemory, Rounds, mib};
use crate::stats::ms;
use crate::throughput::Row;
use crate::webhooks::WebhookRun;

/// What the benchmark ran on.
#[derive(Debug, Clone)]
pub struct Machine {
    /// Logical CPUs (`nproc`).
    pub cpus: usize,
    /// The CPU model, from `/proc/cpuinfo`.
    pub cpu_model: String,
    /// Total memory, from `/proc/meminfo`.
    pub memory: String,
    /// `rustc --version`.
    pub rustc: String,
    /// The operating system, from `/etc/os-release`.
    pub os: String,
    /// `/proc/loadavg` when the run started: other work on the machine shows here.
    pub load_average: String,
}

impl Machine {
    /// Reads this machine.
    pub fn detect() -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let os_release = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
        let field = |text: &str, key: &str, sep: char| {
            text.lines()
                .find(|line| line.starts_with(key))
                .and_then(|line| line.split_once(sep))
                .map(|(_, value)| value.trim().trim_matches('"').to_owned())
                .unwrap_or_else(|| "unknown".to_owned())
        };
        let memory = field(&meminfo, "MemTotal", ':')
            .trim_end_matches("kB")
            .trim()
            .parse::<f64>()
            .map_or_else(
                |_| "unknown".to_owned(),
                |kib| format!("{:.1} GiB", kib / 1024.0 / 1024.0),
            );
        let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_owned());
        let rustc = Command::new(rustc)
            .arg("--version")
            .output()
            .ok()
            .and_then(|out| String::from_utf8(out.stdout).ok())
            .map_or_else(|| "unknown".to_owned(), |v| v.trim().to_owned());
        Self {
            cpus: std::thread::available_parallelism().map_or(0, usize::from),
            cpu_model: field(&cpuinfo, "model name", ':'),
            memory,
            rustc,
            os: field(&os_release, "PRETTY_NAME", '='),
            load_average: load_average(),
        }
    }
}

/// The 1, 5 and 15 minute load averages, from `/proc/loadavg`.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|text| {
            text.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_else(|| "unknown".to_owned())
}

/// Every result of one run, ready to be written out.
#[derive(Debug, Clone)]
pub struct Report {
    /// Full or quick.
    pub size: Size,
    /// Where it ran.
    pub machine: Machine,
    /// When it started (UTC).
    pub started: chrono::DateTime<chrono::Utc>,
    /// How long the whole run took.
    pub total_time: Duration,
    /// Workload 1 at 100 messages.
    pub engine_hundred: Comparison,
    /// Workload 1 at 1,000 messages.
    pub engine_thousand: Comparison,
    /// Workload 1's concurrent bulk refreshes.
    pub concurrent: ConcurrentRun,
    /// Workload 1's plans: sweeps, the window and barrier batches, and the reconciler.
    pub plans: PlanComparison,
    /// Workload 2, one entry per database.
    pub endpoint: Vec<EndpointResult>,
    /// Why PostgreSQL is missing from workload 2, when it is.
    pub postgres_note: Option<String>,
    /// Workload 3.
    pub throughput: Vec<Row>,
    /// Seconds each throughput target was loaded.
    pub throughput_secs: u64,
    /// Workload 5: resident memory with the service idle (before any load).
    pub idle_kib: Option<u64>,
    /// Workload 5: after the throughput load ended.
    pub after_load_kib: Option<u64>,
    /// Workload 5: repeated identical loads.
    pub memory_rounds: Vec<Rounds>,
    /// `/proc/loadavg` when the run ended.
    pub load_average_at_end: String,
    /// Workload 5: the edge rate limiter.
    pub limiter: LimiterMemory,
    /// Workload 6: the fleet, or why it did not run.
    pub fleet: Result<FleetRun, String>,
    /// Workload 7: delivery webhooks, one run per database.
    pub webhooks: Vec<WebhookRun>,
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "**missed**" }
}

fn ratio(value: f64) -> String {
    format!("{value:.2}×")
}

impl Report {
    /// The report as Markdown.
    pub fn to_markdown(&self) -> String {
        let mut md = String::new();
        self.header(&mut md);
        self.engine(&mut md);
        self.plans(&mut md);
        self.endpoint(&mut md);
        self.throughput(&mut md);
        self.memory(&mut md);
        self.fleet(&mut md);
        self.webhooks(&mut md);
        md
    }

    fn plans(&self, md: &mut String) {
        let p = &self.plans;
        let c = &p.config;
        let _ = writeln!(
            md,
            "### Plans: a sweep of the account's list, or the window\n"
        );
        let _ = writeln!(
            md,
            "A bulk refresh of the team's {} messages (all `sent` at Twilio), median of {} runs \
             each, alternating. **Barrier batches** and the **sliding window** fetch every \
             message ({} in flight); the **planner** is `RefreshStatus` with the default plan \
             rule, which reads the account's Messages list first (pages of up to 1,000, newest \
             first) when the candidates likely fit in two pages. The simulator answers each \
             request after a log-normal delay and adds 1 ms per message on a list page, so a big \
             page costs more.\n",
            c.messages, c.runs, c.window
        );
        let quiet_rows = |rows: &[PlanRow], md: &mut String| {
            let _ = writeln!(
                md,
                "| strategy | plan | time | Twilio requests | runs with failures |\n|---|---|---:|---:|---:|"
            );
            for row in rows {
                let _ = writeln!(
                    md,
                    "| {} | {} | {} ms | {} | {} |",
                    row.strategy,
                    row.plan,
                    ms(row.elapsed),
                    row.requests,
                    row.failed
                );
            }
            let _ = writeln!(md);
        };
        let _ = writeln!(md, "**A quiet account** (only the team's messages):\n");
        quiet_rows(&p.quiet, md);
        let time = |name: &str, rows: &[PlanRow]| {
            rows.iter()
                .find(|row| row.strategy.starts_with(name))
                .map_or(0.0, |row| row.elapsed.as_secs_f64())
        };
        let planner = time("planner", &p.quiet);
        let over_barrier = time("barrier", &p.quiet) / planner.max(f64::EPSILON);
        let over_window = time("sliding", &p.quiet) / planner.max(f64::EPSILON);
        let requests = p
            .quiet
            .iter()
            .find(|row| row.strategy.starts_with("planner"))
            .map_or(0.0, |row| row.requests);
        let _ = writeln!(
            md,
            "The planner made {requests} request(s) (target ≤ 2: {}), {} faster than the \
             barrier batches (target ≥ 4×: {}) and {} faster than the sliding window (target \
             ≥ 2×: {}).\n",
            verdict(requests <= 2.0),
            ratio(over_barrier),
            verdict(over_barrier >= 4.0),
            ratio(over_window),
            verdict(over_window >= 2.0),
        );
        let _ = writeln!(
            md,
            "**A busy account**: {} more messages of the account, sent after the team's, come \
             first in its list ({} pages). The planner's first bulk refresh sweeps its budget of \
             two pages, finds none of the team's messages and fetches them; from then on it \
             knows the account's traffic and picks the window.\n",
            c.other_traffic,
            c.other_traffic.div_ceil(1000)
        );
        quiet_rows(&p.busy, md);
        let bound_ratio = |name: &str| {
            p.busy
                .iter()
                .find(|row| row.strategy.starts_with(name))
                .map_or(0.0, |row| row.ratio_to_bound)
        };
        let busy_ratio = bound_ratio("planner") / bound_ratio("sliding").max(f64::EPSILON);
        let _ = writeln!(
            md,
            "Both ran the window here, so they differ only by the latencies each run drew: held \
             to its own lower bound (`max(longest call, sum of calls / {})` over the latencies \
             it was served, medians of {} runs), the planner's runs took {} the window's \
             (target ≤ 1.05×: {}); by raw median time, {}.\n",
            c.window,
            c.runs + 4,
            ratio(busy_ratio),
            verdict(busy_ratio <= 1.05),
            ratio(time("planner", &p.busy) / time("sliding", &p.busy).max(f64::EPSILON)),
        );
        let (requests, took) = p.reconcile;
        let _ = writeln!(
            md,
            "**The reconciler**: one run over {} unfinished messages of one account, every one \
             older than the minimum age, made {} Twilio request(s) in {} ms: {:.1} requests per \
             10,000 non-terminal messages (pages of 1,000; the default budget is 5 pages per \
             account per run, so 10,000 take two runs).\n",
            c.reconciled,
            requests,
            ms(took),
            requests as f64 * 10_000.0 / c.reconciled.max(1) as f64,
        );
    }

    fn fleet(&self, md: &mut String) {
        let _ = writeln!(
            md,
            "## 6. A fleet of replicas
"
        );
        let fleet = match &self.fleet {
            Ok(fleet) => fleet,
            Err(why) => {
                let _ = writeln!(
                    md,
                    "{why}
"
                );
                return;
            }
        };
        let (c, run) = (&fleet.config, &fleet.run);
        let _ = writeln!(
            md,
            "{} replicas (`smsdesk::Application`, production mode, in this process) on one fresh \
             PostgreSQL database and one shared simulator that answers 429 above {} requests in \
             flight for an account, like Twilio. {} users of one team (one Twilio account) each \
             start a bulk refresh of the team's {} messages at the same moment over HTTP, spread \
             over the replicas in turn ({} calls in all). Each replica is configured with the \
             account's cap of {} and takes `cap / live replicas` of it through the database's \
             roll call. The bound is the cap's: `max(longest call, sum of calls / {})`.\n",
            c.replicas,
            c.account_cap,
            c.users,
            c.messages,
            c.users * c.messages,
            c.account_cap,
            c.account_cap,
        );
        let _ = writeln!(
            md,
            "| requests at the simulator | 429s (target 0) | most in flight there | failed \
             outcomes | bulks refused | total time | bound | ratio to bound (target ≤ 1.2×) |"
        );
        let _ = writeln!(md, "|---:|---:|---:|---:|---:|---:|---:|---:|");
        let _ = writeln!(
            md,
            "| {} | {} ({}) | {} | {} | {} | {} ms | {} ms | {} ({}) |\n",
            run.requests,
            run.rate_limited,
            verdict(run.rate_limited == 0),
            run.max_in_flight,
            run.failed,
            fleet.refused,
            ms(run.elapsed),
            ms(run.bound),
            ratio(run.ratio_to_bound()),
            verdict(run.ratio_to_bound() <= 1.2),
        );
        let share = c.account_cap / c.replicas.max(1);
        let _ = writeln!(
            md,
            "Each replica's share is {share} ({} in all, {} of the cap unused by the integer \
             split), so the bound is not quite reachable for the fleet: {} wide, it would be \
             {:.2}× the cap's bound at best.\n",
            share * c.replicas,
            c.account_cap - share * c.replicas,
            share * c.replicas,
            c.account_cap as f64 / (share * c.replicas).max(1) as f64,
        );
    }

    fn webhooks(&self, md: &mut String) {
        let _ = writeln!(md, "## 7. Delivery webhooks\n");
        let Some(first) = self.webhooks.first() else {
            let _ = writeln!(md, "Not measured in this run.\n");
            return;
        };
        let c = first.config;
        let _ = writeln!(
            md,
            "One endpoint subscribed to `message.status_changed`, received by an actix-web \
             server on loopback that answers 200 at once. The load generator offers {} signed \
             status callbacks per second for {} s on a fixed schedule (open loop, at most {} in \
             flight), each moving a different message from `sent` to `delivered`, so each \
             commits one change and records one delivery in the same transaction. The latency \
             runs from sending the callback to its delivery's first attempt arriving at the \
             receiver: an upper bound on commit-to-first-attempt, since it also holds the \
             callback's handling before the commit. The worker is the service's own (woken by \
             each commit, polling every 250 ms, claiming 64 at a time, 16 attempts in flight).\n",
            c.rate,
            c.duration.as_secs(),
            c.connections,
        );
        let _ = writeln!(
            md,
            "| database | changes offered | committed (per s) | callbacks failed | deliveries \
             (per s) | receiver requests | p50 | p99 (target ≤ 1 s) | max |"
        );
        let _ = writeln!(md, "|---|---:|---:|---:|---:|---:|---:|---:|---:|");
        for run in &self.webhooks {
            let p99 = run.latency(99.0);
            let _ = writeln!(
                md,
                "| {} | {} | {} ({:.0}/s) | {} | {} ({:.0}/s) | {} | {} ms | {} ms ({}) | {} ms |",
                run.backend,
                run.config.changes(),
                run.committed,
                run.changes_per_second(),
                run.refused,
                run.delivered,
                run.deliveries_per_second(),
                run.requests,
                ms(run.latency(50.0)),
                ms(p99),
                verdict(p99 <= Duration::from_secs(1) && run.delivered == run.committed),
                ms(run.latency(100.0)),
            );
        }
        let _ = writeln!(md);
    }

    fn header(&self, md: &mut String) {
        let m = &self.machine;
        let _ = writeln!(md, "# Benchmarks\n");
        let _ = writeln!(
            md,
            "Written by `just bench` ({} form) on {} UTC; the whole run took {:.0} s. Every number \
             below comes from this one run: each ratio compares things measured side by side, \
             in the same process, minutes apart at most. A load average above the CPU count (see below) means other work \
             shared the machine during the run: the ratios are robust to it, absolute times \
             less so.\n",
            self.size.name(),
            self.started.format("%Y-%m-%d %H:%M"),
            self.total_time.as_secs_f64()
        );
        let _ = writeln!(md, "## Machine\n");
        let _ = writeln!(md, "| | |\n|---|---|");
        let _ = writeln!(md, "| CPUs (`nproc`) | {} |", m.cpus);
        let _ = writeln!(md, "| CPU | {} |", m.cpu_model);
        let _ = writeln!(md, "| Memory | {} |", m.memory);
        let _ = writeln!(md, "| OS | {} |", m.os);
        let _ = writeln!(md, "| Rust | {} |", m.rustc);
        let _ = writeln!(
            md,
            "| Load average (1, 5, 15 min) | {} at the start, {} at the end |",
            m.load_average, self.load_average_at_end
        );
        let _ = writeln!(md, "| Build | `cargo bench` (release profile) |\n");
        let _ = writeln!(md, "## How to reproduce\n");
        let _ = writeln!(
            md,
            "Offline, loopback only: the service, the Twilio simulator and the load generator \
             all run inside one benchmark process.\n\n```sh\n\
             # the full form (a few minutes); rewrites docs/benchmarks.md. This report:\n\
             SMSDESK_BENCH_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/postgres just bench\n\
             # = the same variable + cargo bench -p smsdesk-bench\n\
             #   (without the variable, workload 2 runs on SQLite only)\n\n\
             # the quick form (seconds, small sizes; prints the report, writes no file)\n\
             just bench quick\n\
             # = SMSDESK_BENCH_QUICK=1 cargo bench -p smsdesk-bench\n\n\
             # what CI runs so the benchmarks never rot (quick forms, relations only)\n\
             cargo test -p smsdesk-bench\n\n\
             # workload 4 (scale, 1M messages) lives with the store\n\
             cargo bench -p smsdesk-store --bench scale\n```\n"
        );
    }

    fn engine(&self, md: &mut String) {
        let _ = writeln!(md, "## 1. Refresh engine\n");
        let h = &self.engine_hundred.config;
        let _ = writeln!(
            md,
            "The simulator answers each fetch after a log-normal delay (median {} ms, sigma {}), \
             with at most {} calls in flight. **Sliding window** is our \
             `RefreshStatus::refresh_recent` (a real `TwilioClient` over HTTP to the simulator, \
             the messages in an `InMemoryStore`, cool-downs 0 s so every run refreshes them all \
             again). **Barrier batches** is the original's strategy, written in the benchmark: \
             chunks of {} with `join_all`, each chunk waiting for its slowest call; it makes the \
             provider calls only, with no store work, which if anything flatters it. The **lower \
             bound** is `max(longest call, sum of calls / {})` over the latencies the simulator \
             actually served in that run (`SimHandle::latencies()` after `reset_stats`), so each \
             run is held to its own draw. The two strategies alternate, run by run.\n",
            h.latency.median.as_millis(),
            h.latency.sigma,
            h.window,
            h.window,
            h.window,
        );
        for comparison in [&self.engine_hundred, &self.engine_thousand] {
            engine_table(md, comparison);
        }

        let c = &self.concurrent;
        let run = &c.run;
        let _ = writeln!(md, "### {} concurrent bulk refreshes\n", c.config.users);
        let _ = writeln!(
            md,
            "{} users of one team (one Twilio account) each start a bulk refresh of the team's \
             {} messages at the same moment ({} calls in all, {} in flight per refresh, so {} \
             wanted at once). The simulator answers 429 above {} requests in flight, like \
             Twilio's per-account concurrency limit; one shared `TwilioClient` with its \
             per-account cap of {} stands between them. The bound is for a {}-wide cap: \
             `max(longest call, sum of calls / {})`.\n",
            c.config.users,
            c.config.messages,
            c.config.users * c.config.messages,
            c.config.window,
            c.config.users * c.config.window,
            c.config.simulator_limit,
            c.config.account_cap,
            c.config.account_cap,
            c.config.account_cap,
        );
        let _ = writeln!(
            md,
            "| requests at the simulator | 429s at the simulator (target 0) | most in flight \
             there | failed outcomes | total time | bound | ratio to bound |"
        );
        let _ = writeln!(md, "|---:|---:|---:|---:|---:|---:|---:|");
        let _ = writeln!(
            md,
            "| {} | {} ({}) | {} | {} | {} ms | {} ms | {} |\n",
            run.requests,
            run.rate_limited,
            verdict(run.rate_limited == 0),
            run.max_in_flight,
            run.failed,
            ms(run.elapsed),
            ms(run.bound),
            ratio(run.ratio_to_bound()),
        );
        if run.rate_limited == 0 {
            let _ = writeln!(
                md,
                "The simulator never saw more than {} requests in flight, so none went over its \
                 limit: the refreshes shared the client's per-account cap instead of fighting \
                 over the account's concurrency.\n",
                run.max_in_flight,
            );
        } else {
            let _ = writeln!(
                md,
                "The simulator saw up to {} requests in flight and answered {} of them 429: the \
                 per-account cap did not hold the account under its limit in this run.\n",
                run.max_in_flight, run.rate_limited,
            );
        }
    }

    fn endpoint(&self, md: &mut String) {
        let _ = writeln!(md, "## 2. Endpoint overhead\n");
        let _ = writeln!(
            md,
            "The real service (`smsdesk::Application`, release build, two workers) on a fresh \
             database with the demo team and 100 more `sent` messages; its built-in simulator adds \
             **no latency**, so the request time is what the service itself adds: routing, the \
             edge, API-key authentication, the cool-down claims, the store reads and writes, the \
             loopback HTTP calls to the simulator (each a real Twilio request in shape), and the \
             JSON answer. Requests go one at a time, after a few uncounted warm-up requests.\n\n\
             Benchmark settings: `--message-cooldown-secs 0 --bulk-cooldown-secs 0` (the 60 s \
             cool-downs would refuse the repeats) and the edge rate limits raised to 10⁹ per \
             minute (`--rate-limit-per-key`, `--rate-limit-per-ip`, `--rate-limit-per-webhook-ip` and \
             their bursts) so the \
             limiter does not answer 429. Everything else is the default.\n"
        );
        let _ = writeln!(
            md,
            "| database | request | requests | Twilio calls each | p50 | p99 | max |"
        );
        let _ = writeln!(md, "|---|---|---:|---:|---:|---:|---:|");
        for result in &self.endpoint {
            for (kind, lat) in [
                ("refresh, single (`messageSid`)", &result.single),
                ("refresh, bulk (`hours=24`, 100 messages)", &result.bulk),
                (
                    "`GET /api/messages` (50, no Twilio call; for comparison)",
                    &result.list,
                ),
            ] {
                let _ = writeln!(
                    md,
                    "| {} | {} | {} | {} | {} ms | {} ms | {} ms |",
                    result.backend,
                    kind,
                    lat.count,
                    lat.provider_calls,
                    ms(lat.p50),
                    ms(lat.p99),
                    ms(lat.max),
                );
            }
        }
        if let Some(note) = &self.postgres_note {
            let _ = writeln!(md, "\n{note}");
        }
        let median_call = self.engine_hundred.config.latency.median;
        if let Some(sqlite) = self.endpoint.first() {
            let _ = writeln!(
                md,
                "\nFor scale: a single Twilio call has a median of about {} ms, so the service \
                 adds {:.1} % to a single refresh at the median; a bulk refresh of 100 messages \
                 takes at least about 10 × that median through a 10-wide window, against which \
                 the service's {} ms are {:.1} %.\n",
                median_call.as_millis(),
                100.0 * sqlite.single.p50.as_secs_f64() / median_call.as_secs_f64(),
                ms(sqlite.bulk.p50),
                100.0 * sqlite.bulk.p50.as_secs_f64() / (10.0 * median_call.as_secs_f64()),
            );
        }
    }

    /// The target ratio to the ceiling for a throughput row, by what it loads (issue 17).
    fn throughput_target(target: &str) -> Option<f64> {
        if target.starts_with("GET /api/messages") {
            Some(0.25)
        } else if target.contains("a new status each") {
            Some(0.15)
        } else if target.contains("single refresh") {
            Some(0.10)
        } else {
            None
        }
    }

    /// Workload 3's table: one row per target, its ratio to the ceiling (the first row) and
    /// the target ratio where there is one, p99 beside it, and the kinds of error seen.
    pub fn throughput_table(rows: &[Row]) -> String {
        let mut md = String::new();
        let _ = writeln!(
            md,
            "| target | requests | errors | req/s | ratio to ceiling (target) | p99 | CPUs busy | \
             CPU per request |"
        );
        let _ = writeln!(md, "|---|---:|---:|---:|---:|---:|---:|---:|");
        let ceiling = rows.first().map_or(f64::NAN, |row| row.load.per_second());
        for row in rows {
            let busy = row.load.busy_cpus();
            let per_request = row.load.cpu_per_request();
            let ratio = row.load.per_second() / ceiling;
            let target = Self::throughput_target(&row.target).map_or_else(String::new, |goal| {
                format!(" (≥ {goal:.2}: {})", verdict(ratio >= goal))
            });
            let _ = writeln!(
                md,
                "| {} | {} | {} | {:.0} | {:.2}{target} | {} ms | {} | {} |",
                row.target,
                row.load.ok,
                row.load.errors,
                row.load.per_second(),
                ratio,
                ms_fine(row.load.p99()),
                busy.map_or_else(|| "n/a".to_owned(), |busy| format!("{busy:.2}")),
                per_request.map_or_else(|| "n/a".to_owned(), |cpu| format!("{} ms", ms_fine(cpu))),
            );
        }
        for row in rows {
            for (kind, count) in &row.load.error_kinds {
                let _ = writeln!(
                    md,
                    "\nErrors of *{}*: {count} × `{}`",
                    row.target,
                    kind.replace(['\n', '`'], " ")
                );
            }
        }
        md
    }

    fn throughput(&self, md: &mut String) {
        let _ = writeln!(md, "## 3. Throughput\n");
        let _ = writeln!(
            md,
            "Requests per second at {} connections for {} s per target, on the services of \
             workload 2 (SQLite, and PostgreSQL when configured; zero-latency simulator). The \
             new-status callbacks run on a service of their own per database, seeded with \
             enough `sent` messages that every callback moves one on (to `delivered`, then \
             `read`). *p99* is the 99th percentile of the request times at that load. The load \
             generator is in the benchmark process: {} tasks over one keep-alive `reqwest` client, each sending its next \
             request when the last is answered. The ceiling is a bare actix-web handler \
             answering `{{\"ok\":true}}` on two workers like the service, loaded the same way on \
             the same machine, so the generator's share of the {} CPUs weighs on both alike. \
             Other work on the machine (see the load average above) can differ from one \
             window to the next; the ratios are the numbers to compare.\n",
            crate::throughput::CONNECTIONS,
            self.throughput_secs,
            crate::throughput::CONNECTIONS,
            self.machine.cpus,
        );
        md.push_str(&Self::throughput_table(&self.throughput));
        let _ = writeln!(
            md,
            "\n*CPUs busy* is the CPU time of the whole process (service, simulator and \
             generator) over the run's wall time; *CPU per request* divides it by the requests \
             answered. The ceiling answers from memory, so its row is mostly the cost of HTTP \
             and of the generator itself; the difference to a service row is what that \
             endpoint's own work costs. `GET /api/messages` reads a page of 50 messages and \
             writes them as JSON after API-key authentication. Its first row asks every \
             connection for the same first page, as the open pages of one team do: identical \
             requests in flight together share one read that began after each of them arrived \
             (`smsdesk_web::coalesce`), so that row measures the sharing. Its `until=…` row asks \
             a different question on every request, so nothing is shared and each page is \
             built alone. A single refresh adds a cool-down claim, a Twilio call (loopback to \
             the simulator) and a write; a status callback checks the HMAC signature, looks up \
             the account's integration and writes the observation (a duplicate `sent` here, \
             recorded in the history and ignored). SQLite takes one writer at a time: \
             concurrent writes and refresh claims share group transactions on it. On \
             PostgreSQL the single writes, reads by SID and refresh claims that arrive \
             together share one statement per kind (`smsdesk-store/src/batches.rs`).\n"
        );
        let _ = writeln!(
            md,
            "Where the service's time goes, from profiles of each target alone \
             (`SMSDESK_BENCH_ONLY=throughput SMSDESK_BENCH_TARGETS=distinct-list perf record \
             -g` on the bench binary, then `perf report --sort comm,dso`): for a page of the \
             list built alone, about 55 % of the samples in the actix workers (decoding the page SQLite built, mapping \
             and writing 25 KB of JSON, allocation, sending), about 30 % in the \
             `sqlx-sqlite-worker` threads (building the page, hand-offs) and about 12 % in the \
             load generator; for status callbacks, the kernel's context switches and wake-ups \
             between the workers and SQLite's threads lead. SQLx runs each SQLite connection on \
             its own thread and hands every command and result across a channel, so each \
             statement costs two thread wake-ups. Step by step, with what each change bought: \
             [benchmarks-hot-path.md](benchmarks-hot-path.md).\n"
        );
    }

    fn memory(&self, md: &mut String) {
        let l = &self.limiter;
        let _ = writeln!(
            md,
            "## 4. Scale\n\nOne million messages over 1,000 teams, on SQLite and PostgreSQL: the \
             bulk candidate query and a page of the message list, with their query plans. It is \
             a benchmark of the store (`cargo bench -p smsdesk-store --bench scale`), reported in \
             [benchmarks-scale.md](benchmarks-scale.md).\n"
        );
        let _ = writeln!(md, "## 5. Memory\n");
        let _ = writeln!(
            md,
            "Resident memory (`VmRSS` from `/proc/self/status`) of the benchmark process, which \
             holds the service, its simulator and the load generator, so these numbers are an \
             upper bound for the service alone.\n"
        );
        let peak = self
            .throughput
            .iter()
            .filter_map(|row| row.load.peak_rss_kib)
            .max();
        let _ = writeln!(md, "| moment | resident memory (MiB) |\n|---|---:|");
        let _ = writeln!(
            md,
            "| idle: service up, demo team + 100 messages, no request yet | {} |",
            mib(self.idle_kib)
        );
        let _ = writeln!(
            md,
            "| peak under the throughput load ({} connections; sampled every 100 ms) | {} |",
            crate::throughput::CONNECTIONS,
            mib(peak)
        );
        let _ = writeln!(
            md,
            "| after the load, idle again | {} |\n",
            mib(self.after_load_kib)
        );
        let _ = writeln!(md);
        let _ = writeln!(
            md,
            "The first load leaves the process larger than at idle: connection pools filled \
             (64 client connections, the service's database pool, the Twilio client's), the \
             database's page cache warmed, and freed memory the allocator keeps for reuse. \
             Identical loads in a row ({} s each, {} connections, memory read a second after \
             each) tell a level from a leak: a level holds, a leak keeps climbing. The refresh \
             rounds also grow the database by one history row per request, on purpose.\n",
            self.throughput_secs,
            crate::throughput::CONNECTIONS,
        );
        let rounds = self.memory_rounds.first().map_or(0, |r| r.after_kib.len());
        let _ = write!(md, "| load |");
        for round in 1..=rounds {
            let _ = write!(md, " after round {round} (MiB) |");
        }
        let _ = writeln!(md, "\n|---|{}", "---:|".repeat(rounds));
        for series in &self.memory_rounds {
            let _ = write!(md, "| {} |", series.target);
            for kib in &series.after_kib {
                let _ = write!(md, " {} |", mib(*kib));
            }
            let _ = writeln!(md);
        }
        let _ = writeln!(md);

        let _ = writeln!(md, "### Edge rate limiter, {} distinct API keys\n", l.keys);
        let _ = writeln!(
            md,
            "A fresh `smsdesk_web::EdgeRateLimiter` (default rates: 600 per minute per key, \
             burst 60) counts one request from each of {} distinct keys; then, once every key's \
             allowance has refilled, `housekeeping()` (which the service runs every minute) \
             forgets them and shrinks its maps.\n",
            l.keys
        );
        let _ = writeln!(md, "| step | keys tracked | resident memory (MiB) | time |");
        let _ = writeln!(md, "|---|---:|---:|---:|");
        let _ = writeln!(md, "| before (idle level) | 0 | {} | |", mib(l.before_kib));
        let _ = writeln!(
            md,
            "| after one request per key | {} | {} | {} ms |",
            l.tracked_filled,
            mib(l.filled_kib),
            ms(l.fill_time)
        );
        let _ = writeln!(
            md,
            "| after `housekeeping()` | {} | {} | {} ms |\n",
            l.tracked_cleaned,
            mib(l.cleaned_kib),
            ms(l.housekeeping_time)
        );
        if let (Some(before), Some(filled), Some(cleaned)) =
            (l.before_kib, l.filled_kib, l.cleaned_kib)
        {
            let grown = filled.saturating_sub(before);
            let kept = cleaned.saturating_sub(before);
            let _ = writeln!(
                md,
                "The keys cost {:.1} MiB ({:.0} bytes each); after the clean-up {:.1} MiB of it \
                 is still resident ({:.0} % of the growth).\n",
                grown as f64 / 1024.0,
                grown as f64 * 1024.0 / l.keys as f64,
                kept as f64 / 1024.0,
                if grown == 0 {
                    0.0
                } else {
                    100.0 * kept as f64 / grown as f64
                },
            );
        }
    }
}

fn engine_table(md: &mut String, comparison: &Comparison) {
    let config = &comparison.config;
    let sliding = comparison.sliding_medians();
    let barrier = comparison.barrier_medians();
    let speedup = comparison.speedup();
    let _ = writeln!(
        md,
        "### {} messages, {} in flight, median of {} run{}\n",
        config.messages,
        config.window,
        config.runs,
        if config.runs == 1 { "" } else { "s" }
    );
    let _ = writeln!(
        md,
        "| strategy | time | lower bound | ratio to bound | speed-up over barrier |"
    );
    let _ = writeln!(md, "|---|---:|---:|---:|---:|");
    let _ = writeln!(
        md,
        "| sliding window (ours) | {} ms | {} ms | {} (target ≤ 1.15×: {}) | {} (target ≥ 1.3×: {}) |",
        ms(sliding.elapsed),
        ms(sliding.bound),
        ratio(sliding.ratio_to_bound),
        verdict(sliding.ratio_to_bound <= 1.15),
        ratio(speedup),
        verdict(speedup >= 1.3),
    );
    let _ = writeln!(
        md,
        "| barrier batches of {} | {} ms | {} ms | {} | 1.00× |\n",
        config.window,
        ms(barrier.elapsed),
        ms(barrier.bound),
        ratio(barrier.ratio_to_bound),
    );
    let _ = writeln!(md, "<details><summary>Every run</summary>\n");
    let _ = writeln!(
        md,
        "| run | sliding | its bound | ratio | barrier | its bound | ratio | most in flight (sliding / barrier) | failed |"
    );
    let _ = writeln!(md, "|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (i, (s, b)) in comparison
        .sliding
        .iter()
        .zip(&comparison.barrier)
        .enumerate()
    {
        let _ = writeln!(
            md,
            "| {} | {} ms | {} ms | {} | {} ms | {} ms | {} | {} / {} | {} |",
            i + 1,
            ms(s.elapsed),
            ms(s.bound),
            ratio(s.ratio_to_bound()),
            ms(b.elapsed),
            ms(b.bound),
            ratio(b.ratio_to_bound()),
            s.max_in_flight,
            b.max_in_flight,
            failed(s, b),
        );
    }
    let _ = writeln!(md, "\n</details>\n");
}

/// Milliseconds with two decimals, for CPU time per request.
fn ms_fine(duration: Duration) -> String {
    format!("{:.2}", duration.as_secs_f64() * 1000.0)
}

fn failed(s: &Run, b: &Run) -> usize {
    s.failed + b.failed
}
