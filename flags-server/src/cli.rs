//! The command line: what `flags` accepts, as clap types.
//!
//! Only parsing lives here; each subcommand's behaviour is in `commands/`
//! (and `server/` for `serve`). Defaults are chosen so that `flags serve` with
//! no arguments serves `./flags.toml` on loopback.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

/// The environment variable naming the config file when no path is given.
const CONFIG_ENV: &str = "FLAGS_CONFIG";
/// The config file when neither a path nor [`CONFIG_ENV`] is given.
const DEFAULT_CONFIG: &str = "flags.toml";

/// Feature flags and experiments from one `flags.toml`.
#[derive(Debug, Parser)]
#[command(name = "flags", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve OFREP and the native API, reloading the config when it changes.
    Serve(Box<ServeArgs>),
    /// Validate a config file; print every problem with file:line:column.
    Check(CheckArgs),
    /// Evaluate one flag for one context and say why.
    Eval(EvalArgs),
    /// Print an experiment's readout from the event database.
    Results(ResultsArgs),
    /// Turn a flag's kill switch off: `enabled = false` in the file, or a
    /// runtime kill on a server (`--server`).
    Kill(EditArgs),
    /// Turn a flag's kill switch back on: `enabled = true` in the file, or
    /// clear a server's runtime kill (`--server`).
    Revive(EditArgs),
    /// Experiment statistics from sufficient statistics (JSON in, JSON or a table out).
    Stats(StatsArgs),
}

/// `flags serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The config file to serve and watch.
    #[arg(long, env = CONFIG_ENV, default_value = DEFAULT_CONFIG)]
    pub config: PathBuf,
    /// Address to listen on, `IP:PORT` or `HOST:PORT` (a name such as
    /// `localhost` is resolved); port 0 picks a free port (the bound address is printed).
    #[arg(long, env = "FLAGS_ADDR", default_value = "127.0.0.1:8080")]
    pub addr: String,
    /// A file of tokens, one `client TOKEN` or `admin TOKEN` per line.
    #[arg(long)]
    pub tokens: Option<PathBuf>,
    /// Allow binding a non-loopback address without any token configured.
    #[arg(long)]
    pub insecure: bool,
    /// Browser origins allowed by CORS (repeatable; `*` for any).
    #[arg(long = "cors-origin", value_name = "ORIGIN")]
    pub cors_origins: Vec<String>,
    /// Public base URL advertised to OFREP clients for the event stream
    /// (default: `http://` + the request's Host header).
    #[arg(long, value_name = "URL")]
    pub public_url: Option<String>,
    /// Largest request body accepted, in bytes.
    #[arg(long, default_value_t = 64 * 1024)]
    pub max_body: usize,
    /// Largest `POST /v1/events` body accepted, in bytes (a batch of 1 000 events).
    #[arg(long, default_value_t = 1024 * 1024)]
    pub max_events_body: usize,
    /// Directory of the event database (created on first start).
    #[arg(
        long = "data",
        env = "FLAGS_DATA",
        value_name = "DIR",
        default_value = "data"
    )]
    pub data: PathBuf,
    /// A PostgreSQL event store shared by several replicas
    /// (`postgres://USER:PASSWORD@HOST/DB?sslmode=require`) instead of the
    /// SQLite database under `--data`, which is then not used (docs/deploy.md).
    #[arg(long, env = "FLAGS_DATABASE_URL", value_name = "URL")]
    pub database_url: Option<String>,
    /// Most attributes accepted in one evaluation context.
    #[arg(long, default_value_t = 128)]
    pub max_attributes: usize,
    /// Evaluation requests in flight before the server answers 429.
    #[arg(long, default_value_t = 1024)]
    pub max_in_flight: usize,
    /// `POST /v1/events` requests in flight before the server answers 429
    /// (a pool of its own: a burst of events never sheds evaluations).
    #[arg(long, default_value_t = 64)]
    pub max_events_in_flight: usize,
    /// Events waiting for the disk before `POST /v1/events` answers 503
    /// (and evaluations' exposures are dropped, counted in /v1/status).
    #[arg(long, default_value_t = crate::store::DEFAULT_MAX_QUEUED_EVENTS)]
    pub max_queued_events: usize,
    /// Delete raw events older than this (`90d`, `12h`), keeping every
    /// readout; default: keep them for ever.
    #[arg(long, value_name = "SPAN", value_parser = parse_retention)]
    pub retain: Option<Duration>,
    /// Time a client has to send its request headers or body.
    #[arg(long, value_parser = parse_duration, default_value = "10s")]
    pub client_timeout: Duration,
    /// Longest wait for in-flight requests on shutdown.
    #[arg(long, value_parser = parse_duration, default_value = "10s")]
    pub drain_timeout: Duration,
    /// Quiet time after the last file event before a reload.
    #[arg(long, value_parser = parse_duration, default_value = "10ms")]
    pub debounce: Duration,
    /// Record exposures from bulk evaluations too (OFREP bulk, `/v1/evaluate`).
    /// Off by default: a frontend's prefetch is not a use of the value, so
    /// clients report the exposures of what they show (`POST /v1/events`).
    #[arg(long)]
    pub bulk_exposures: bool,
    /// Evaluate every request at this RFC 3339 instant instead of now: a
    /// preview of what schedules and `before`/`after` conditions will serve.
    #[arg(long, value_name = "TIME", value_parser = parse_instant)]
    pub at: Option<flags_core::Timestamp>,
    /// Interval between keep-alive comments on `/v1/stream`.
    #[arg(long, value_parser = parse_duration, default_value = "15s")]
    pub sse_keepalive: Duration,
    /// A file of webhooks to notify (`[[webhook]]` tables; see docs/server.md).
    #[arg(long, env = "FLAGS_WEBHOOKS", value_name = "FILE")]
    pub webhooks: Option<PathBuf>,
    /// Time between guardrail checks (docs/guardrails.md).
    #[arg(long, value_parser = parse_duration, default_value = "10s")]
    pub guardrail_interval: Duration,
    /// Wait before the first webhook retry, doubling after that. Hidden:
    /// the tests shorten it to see retries without waiting seconds.
    #[arg(long, value_parser = parse_duration, default_value = "1s", hide = true)]
    pub webhook_backoff: Duration,
}

/// `flags stats`.
#[derive(Debug, Args)]
pub struct StatsArgs {
    /// A JSON analysis, planning, sample-ratio or p-value adjustment request
    /// (docs/statistics.md); standard input when absent or `-`.
    pub file: Option<PathBuf>,
    /// Print a table instead of JSON.
    #[arg(long)]
    pub table: bool,
}

/// `flags check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The config file to validate.
    #[arg(env = CONFIG_ENV, default_value = DEFAULT_CONFIG)]
    pub file: PathBuf,
}

/// `flags eval`.
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// The flag to evaluate.
    pub flag: String,
    /// The targeting key.
    #[arg(long)]
    pub key: Option<String>,
    /// An attribute: `name=value` (booleans and numbers are typed, anything
    /// else is a string) or `name:=JSON` for an exact JSON value.
    #[arg(long = "attr", value_name = "NAME=VALUE")]
    pub attrs: Vec<String>,
    /// The whole context as a JSON object, as OFREP sends it (`--key` and
    /// `--attr` are applied on top).
    #[arg(long, value_name = "JSON")]
    pub context: Option<String>,
    /// Evaluate at this RFC 3339 instant instead of now.
    #[arg(long, value_name = "TIME")]
    pub at: Option<String>,
    /// The config file.
    #[arg(long, env = CONFIG_ENV, default_value = DEFAULT_CONFIG)]
    pub config: PathBuf,
    /// Print one JSON object (the native API's field names).
    #[arg(long)]
    pub json: bool,
    /// Show every rule tried, why it matched or not, and its line.
    #[arg(long)]
    pub explain: bool,
}

/// `flags results`.
#[derive(Debug, Args)]
pub struct ResultsArgs {
    /// The flag running the experiment.
    pub flag: String,
    /// Directory of the event database (as `flags serve --data`).
    #[arg(
        long = "data",
        env = "FLAGS_DATA",
        value_name = "DIR",
        default_value = "data"
    )]
    pub data: PathBuf,
    /// The PostgreSQL event store (as `flags serve --database-url`) instead
    /// of the SQLite database under `--data`.
    #[arg(long, env = "FLAGS_DATABASE_URL", value_name = "URL")]
    pub database_url: Option<String>,
    /// The config file.
    #[arg(long, env = CONFIG_ENV, default_value = DEFAULT_CONFIG)]
    pub config: PathBuf,
    /// The analysis phase (default: the current one).
    #[arg(long)]
    pub phase: Option<i64>,
    /// Print the results endpoint's JSON instead of tables.
    #[arg(long)]
    pub json: bool,
}

/// `flags kill` and `flags revive`.
#[derive(Debug, Args)]
pub struct EditArgs {
    /// The flag to switch.
    pub flag: String,
    /// The config file to edit.
    #[arg(long, env = CONFIG_ENV, default_value = DEFAULT_CONFIG)]
    pub config: PathBuf,
    /// Kill or revive at run time on the server at this base URL (http://),
    /// through its admin API, instead of editing a file; the admin token is
    /// read from $FLAGS_ADMIN_TOKEN.
    #[arg(long, value_name = "URL")]
    pub server: Option<String>,
    /// Why (`kill --server` only): stored with the kill and shown in `/v1/status`.
    #[arg(long, requires = "server")]
    pub reason: Option<String>,
}

/// Parses `250ms`, `10s`, `2m` or a bare number of seconds.
fn parse_duration(text: &str) -> Result<Duration, String> {
    flags_core::parse_span(text)
        .ok_or_else(|| format!("`{text}` is not a duration like 250ms, 10s, 2m, 1h or 7d"))
}

/// A retention span such as `90d` or `12h`: any positive span that
/// `flags_core::parse_span` reads (zero would delete events as they come).
fn parse_retention(text: &str) -> Result<Duration, String> {
    match flags_core::parse_span(text) {
        Some(span) if !span.is_zero() => Ok(span),
        _ => Err(format!(
            "`{text}` is not a retention span like 90d, 30d or 12h"
        )),
    }
}

/// An RFC 3339 instant such as `2026-12-08T10:00:00Z`.
fn parse_instant(text: &str) -> Result<flags_core::Timestamp, String> {
    flags_core::Timestamp::parse_rfc3339(text)
        .ok_or_else(|| format!("`{text}` is not an RFC 3339 instant such as 2026-12-08T10:00:00Z"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_read_by_the_cores_span_parser() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("10"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(
            parse_duration("ten"),
            Err("`ten` is not a duration like 250ms, 10s, 2m, 1h or 7d".to_string())
        );
    }
}
