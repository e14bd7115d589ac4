//! The `flags` server and command line as a library: the `flags` binary is a
//! thin `main` over [`run`], and tests can call into the same code in-process.
//!
//! What it is for: running one parsed [`cli::Cli`] (serve, check, eval,
//! results, kill, revive, stats) and reporting the outcome as an exit status;
//! parsing the arguments is `main`'s. What it is not: a stable API for other
//! programs. Only the command line, [`start_server`] (`flags serve` in the
//! caller's process, for tests), the event store's interface ([`store`], so
//! that one test suite runs against every backend) and [`Error`] are public;
//! every module behind them is the binary's implementation, free to change.

pub mod cli;
mod clock;
mod commands;
mod context;
mod error;
mod events;
mod guardrails;
mod in_process;
mod kill_set;
mod kills;
mod live;
mod metrics;
mod reload;
mod server;
pub mod store;
mod tokens;
mod views;
mod webhooks;

use std::io::IsTerminal as _;
use std::process::ExitCode;

use cli::{Cli, Command};
pub use error::Error;
pub use in_process::{Server, start_server};

/// Runs one parsed command line: one subcommand, its error turned into a
/// message on stderr and a non-zero exit status.
pub fn run(cli: Cli) -> ExitCode {
    install_tls_provider();
    let outcome = match cli.command {
        Command::Check(args) => commands::check::run(&args),
        Command::Eval(args) => commands::eval::run(&args),
        Command::Results(args) => commands::results::run(&args),
        Command::Kill(args) => commands::edit::run(&args, false),
        Command::Revive(args) => commands::edit::run(&args, true),
        Command::Stats(args) => commands::stats::run(&args),
        Command::Serve(args) => serve(*args),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(Error::Invalid(problems)) => {
            eprintln!("{problems}");
            eprintln!("{} problem(s) found", problems.items.len());
            ExitCode::FAILURE
        }
        Err(error) => {
            eprintln!("flags: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Installs rustls' `ring` crypto provider for every HTTP client the process
/// builds (webhooks, and any other reqwest client): reqwest is built without
/// a provider of its own, since its default, aws-lc-rs, needs cmake and
/// minutes of C compilation, and it panics building a client without one.
/// rustls 0.23.48 deprecates `ring`'s provider for lacking post-quantum key
/// exchange, which nothing here needs. An error means one is installed already.
pub(crate) fn install_tls_provider() {
    #[allow(deprecated)]
    let _ = rustls::crypto::ring::default_provider().install_default();
}

fn serve(args: cli::ServeArgs) -> Result<(), Error> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_max_level(log_level())
        .init();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Serve(format!("cannot start the runtime: {e}")))?
        .block_on(server::serve(args))
}

/// `FLAGS_LOG=error|warn|info|debug|trace`, `info` by default.
fn log_level() -> tracing::Level {
    std::env::var("FLAGS_LOG")
        .ok()
        .and_then(|level| level.parse().ok())
        .unwrap_or(tracing::Level::INFO)
}
