# Shortcuts for smsdesk. Every recipe is plain cargo underneath; the README needs none of them.

default:
    @just --list

# Run the service (SQLite file and the built-in Twilio simulator unless configured otherwise).
run:
    cargo run --release -p smsdesk

# The test suite, as CI runs it (set SMSDESK_TEST_POSTGRES_URL to include PostgreSQL).
test:
    cargo test --workspace

# The test suite with cargo-nextest (faster on many test binaries).
nextest:
    cargo nextest run --workspace

# Formatting and lints, as CI checks them.
lint:
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets -- -D warnings

# Benchmarks: the full form rewrites docs/benchmarks.md (minutes); `just bench quick` prints the
# quick form (seconds). PostgreSQL is included when SMSDESK_BENCH_POSTGRES_URL is set.
bench form="full":
    if [ "{{form}}" = "quick" ]; then SMSDESK_BENCH_QUICK=1 cargo bench -p smsdesk-bench; else cargo bench -p smsdesk-bench; fi

# Everything CI does, including preparing PostgreSQL.
ci:
    bash .ci/run

# Benchmark 4 (1M messages over 1,000 teams; set SMSDESK_BENCH_POSTGRES_URL for PostgreSQL too).
bench-scale:
    cargo bench -p smsdesk-store --bench scale

# Replace the vendored Swagger UI behind GET /docs (latest, or a version: `just update-swagger-ui 5.35.0`).
update-swagger-ui version="latest":
    crates/smsdesk-web/assets/vendor/update-swagger-ui.sh {{version}}
