//! The `smsdesk` binary: see `smsdesk --help` and docs/operations.md.

use clap::Parser;

/// mimalloc instead of the system's allocator: a request allocates and frees many small
/// buffers across threads, where glibc's malloc spent about a tenth of the service's CPU
/// (docs/benchmarks-hot-path.md, step 26).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = smsdesk::cli::Cli::parse();
    match smsdesk::cli::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            // `{:#}` prints the context chain on one line: what failed, then why.
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
