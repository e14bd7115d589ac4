//! Shared by the integration tests: start the real `flags` binary (or the
//! library, in-process) on an ephemeral port with a config in a fresh
//! directory, and talk to it.

#![allow(dead_code)] // Each test binary uses a different part of this module.

pub mod backend;
pub mod doc;
pub mod webhook;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use backend::Backend;

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_flags");

/// A small config exercising every kind of answer.
pub const CONFIG: &str = r#"version = 1
# Comments must survive kill/revive.
[segments.staff]
keys = ["alice"]

[layers.page]
salt = "page"

[metrics.clicks]
kind = "conversion"

[flags.banner]
description = "A boolean with a staff rule"
[[flags.banner.rules]]
name = "staff"
segments = ["staff"]
serve = "on"

[flags.color]
variants = { blue = "blue", green = "green" }
default = "blue"
[[flags.color.rules]]
name = "test"
split = { blue = 50, green = 50 }
experiment = { layer = "page", range = [0, 100], metrics = ["clicks"] }

[flags.limit]
variants = { small = 10, large = 100 }
default = "small"
[[flags.limit.rules]]
when = [{ attr = "plan", op = "eq", value = "pro" }]
serve = "large"

[flags.ratio]
variants = { one = 1.0, half = 0.5 }
default = "one"

[flags.settings]
variants = { a = { depth = 2 } }
default = "a"

[flags.killed]
enabled = false # killed in an incident
"#;

/// A running server; stopped (SIGKILL) when dropped unless stopped first.
pub struct Server {
    pub child: Child,
    pub base: String,
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub client: reqwest::Client,
    /// The PostgreSQL database of its event store, when the run's backend
    /// is PostgreSQL (see `backend`).
    pub database_url: Option<String>,
}

/// How to start a server.
#[derive(Default)]
pub struct Options {
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    /// Where the server's log (stderr) goes: the test's stderr if unset.
    pub log: Option<std::fs::File>,
    /// The server's working directory (for a relative config path and
    /// relative options): the test's if unset.
    pub current_dir: Option<PathBuf>,
}

impl Options {
    pub fn arg(mut self, arg: &str) -> Self {
        self.args.push(arg.to_string());
        self
    }
    pub fn env(mut self, name: &str, value: &str) -> Self {
        self.env.push((name.to_string(), value.to_string()));
        self
    }
    /// Runs in `dir`.
    pub fn current_dir(mut self, dir: &Path) -> Self {
        self.current_dir = Some(dir.to_path_buf());
        self
    }
    /// Keeps events in `store` (a restarted server finds them there).
    pub fn store(mut self, store: &backend::StoreUnderTest) -> Self {
        self.args.extend(store.args());
        self
    }
    /// Logs into `file`, at `FLAGS_LOG` (from [`Options::env`]) or `warn`.
    pub fn log(mut self, file: std::fs::File) -> Self {
        self.log = Some(file);
        self
    }
}

/// A server started from the library in this process (no child process).
pub struct InProcess {
    pub server: flags::Server,
    pub base: String,
    pub dir: tempfile::TempDir,
}

impl InProcess {
    /// Serves `config` on 127.0.0.1:0 with default options, as
    /// [`Server::start`] does with the binary.
    pub async fn start(config: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("flags.toml");
        std::fs::write(&path, config).unwrap();
        let args = serve_args(&path, &dir.path().join("data"));
        let server = flags::start_server(args).await.unwrap();
        let base = format!("http://{}", server.address());
        Self { server, base, dir }
    }
}

/// `flags serve --addr 127.0.0.1:0 --config CONFIG --data DATA`, parsed.
pub fn serve_args(config: &Path, data: &Path) -> flags::cli::ServeArgs {
    use clap::Parser as _;
    let argv = [
        "flags".as_ref(),
        "serve".as_ref(),
        "--addr".as_ref(),
        "127.0.0.1:0".as_ref(),
        "--config".as_ref(),
        config.as_os_str(),
        "--data".as_ref(),
        data.as_os_str(),
    ];
    let flags::cli::Command::Serve(args) = flags::cli::Cli::parse_from(argv).command else {
        unreachable!("parsed a `serve` command line")
    };
    *args
}

/// An HTTP client. Build every test client here: reqwest comes without a
/// TLS provider of its own (the server links rustls with `ring`, see
/// flags-server's manifest), and panics if none is installed when a client
/// is built, even one that only speaks plain http.
pub fn http_client() -> reqwest::Client {
    #[allow(deprecated)] // For lacking post-quantum key exchange; see the server.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

/// A `flags` command with no `FLAGS_*` variables inherited.
pub fn command() -> Command {
    let mut command = Command::new(BIN);
    for (name, _) in std::env::vars() {
        if name.starts_with("FLAGS_") {
            command.env_remove(name);
        }
    }
    command
}

impl Server {
    /// Serves `config` with default options.
    pub fn start(config: &str) -> Self {
        Self::start_with(config, Options::default())
    }

    /// Serves `config` with `options`.
    pub fn start_with(config: &str, options: Options) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("flags.toml");
        std::fs::write(&path, config).unwrap();
        Self::serve_path(dir, path, options)
    }

    /// Serves an existing file `path` kept alive by `dir`.
    pub fn serve_path(dir: tempfile::TempDir, path: PathBuf, options: Options) -> Self {
        let mut command = command();
        command.args(["serve", "--config"]).arg(&path);
        if !options.args.iter().any(|a| a == "--addr") {
            command.args(["--addr", "127.0.0.1:0"]);
        }
        // Never the test's working directory's `data/`: each server gets its
        // own (the default `./data` when it runs in its own directory).
        let in_own_dir = options.current_dir.as_deref() == Some(dir.path());
        if !options.args.iter().any(|a| a == "--data") && !in_own_dir {
            command.arg("--data").arg(dir.path().join("data"));
        }
        let given = options.args.iter().position(|a| a == "--database-url");
        let database_url = match (given, Backend::of_run()) {
            (Some(at), _) => options.args.get(at + 1).cloned(),
            (None, Backend::Sqlite) => None,
            (None, Backend::Postgres { admin_url }) => {
                let url = backend::fresh_database(&admin_url);
                command.args(["--database-url", &url]);
                Some(url)
            }
        };
        // A short debounce keeps the suite fast; a test that measures what
        // users get passes the default itself.
        if !options.args.iter().any(|a| a == "--debounce") {
            command.args(["--debounce", "5ms"]);
        }
        let log = options.log.map_or_else(Stdio::inherit, Stdio::from);
        if let Some(dir) = &options.current_dir {
            command.current_dir(dir);
        }
        command
            .args(&options.args)
            .env("FLAGS_LOG", "warn")
            .envs(options.env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::piped())
            .stderr(log);
        let mut child = command.spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        let base = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_string();
        Self {
            child,
            base,
            dir,
            config: path,
            client: http_client(),
            database_url,
        }
    }

    /// The options that select the server's event store (for `flags
    /// results`), when the test did not choose one.
    pub fn store_args(&self) -> Vec<String> {
        let mut args = vec![
            "--data".to_string(),
            self.dir.path().join("data").display().to_string(),
        ];
        if let Some(url) = &self.database_url {
            args.extend(["--database-url".to_string(), url.clone()]);
        }
        args
    }

    /// The first column of the first row of `sql` on the server's event
    /// store (the tables have the same names and columns in both backends).
    pub fn count(&self, sql: &str) -> i64 {
        match &self.database_url {
            Some(url) => backend::postgres_count(url, sql),
            None => {
                let path = self.dir.path().join("data/events.sqlite3");
                let connection = rusqlite::Connection::open(path).unwrap();
                connection.query_row(sql, [], |row| row.get(0)).unwrap()
            }
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// POSTs `body` as JSON.
    pub async fn post(&self, path: &str, body: &str) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .unwrap()
    }

    /// GETs `path`.
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.unwrap()
    }

    /// OFREP single-flag evaluation for `context` (JSON).
    pub async fn ofrep(&self, flag: &str, context: &str) -> (u16, Value) {
        let body = format!("{{\"context\":{context}}}");
        let response = self
            .post(&format!("/ofrep/v1/evaluate/flags/{flag}"), &body)
            .await;
        status_json(response).await
    }

    /// Sends a signal to the server.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the process to exit, at most `limit`.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The value of one series in `/metrics` (an open server's, or one whose
/// client sends the admin token).
pub async fn metric(server: &Server, series: &str) -> f64 {
    let text = server.get("/metrics").await.text().await.unwrap();
    series_value(&text, series)
}

/// The value of one series in the text of `/metrics`.
pub fn series_value(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {series} in\n{metrics}"))
}

/// Status and JSON body of a response.
pub async fn status_json(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let bytes = response.bytes().await.unwrap();
    let json = serde_json::from_slice(&bytes)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&bytes)));
    (status, json)
}

/// Replaces `path` the way editors save: write a temporary file, rename it over.
pub fn save_by_rename(path: &Path, text: &str) {
    let temp = path.with_extension("toml.swp");
    std::fs::write(&temp, text).unwrap();
    std::fs::rename(&temp, path).unwrap();
}

/// Polls `check` every millisecond until it holds; returns how long it took.
pub async fn until<F, Fut>(limit: Duration, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while started.elapsed() < limit {
        if check().await {
            return started.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    panic!("condition not met within {limit:?}");
}

/// Asserts `actual == expected` as JSON, numbers within 1e-12 relative: JSON
/// text parsed back may differ from the serialised float in the last bit.
pub fn assert_json_close(actual: &Value, expected: &Value) {
    match (actual, expected) {
        (Value::Number(a), Value::Number(e)) => {
            let (a, e) = (a.as_f64().unwrap(), e.as_f64().unwrap());
            assert!((a - e).abs() <= 1e-12 * e.abs().max(1e-300), "{a} != {e}");
        }
        (Value::Array(a), Value::Array(e)) => {
            assert_eq!(a.len(), e.len(), "{actual} != {expected}");
            a.iter().zip(e).for_each(|(a, e)| assert_json_close(a, e));
        }
        (Value::Object(a), Value::Object(e)) => {
            assert_eq!(
                a.keys().collect::<Vec<_>>(),
                e.keys().collect::<Vec<_>>(),
                "{actual} != {expected}"
            );
            a.values()
                .zip(e.values())
                .for_each(|(a, e)| assert_json_close(a, e));
        }
        _ => assert_eq!(actual, expected),
    }
}

/// Reads from an SSE response until `needle` appears (within 10 s),
/// appending what was read to `seen`.
pub async fn read_until(response: &mut reqwest::Response, seen: &mut String, needle: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !seen.contains(needle) {
        let left = deadline.saturating_duration_since(Instant::now());
        let chunk = tokio::time::timeout(left, response.chunk())
            .await
            .unwrap_or_else(|_| panic!("no {needle:?} in {seen:?}"))
            .unwrap()
            .unwrap_or_else(|| panic!("stream ended before {needle:?}: {seen:?}"));
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
}
