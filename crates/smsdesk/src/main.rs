//! The `smsdesk` binary: see `smsdesk --help` and docs/operations.md.

use clap::Parser;

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
