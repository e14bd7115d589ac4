//! docs/guardrails.md, run as written: each code block that names a file
//! (`# receiver.py: ...`; the first `toml` block is `flags.toml`) is written
//! into a fresh directory, and each `$ ` command of its `text` blocks runs
//! there in order, through `sh` with the built `flags` first on `PATH`.
//! Every output the doc shows (`...` for what varies from run to run) must
//! be what the command printed. Only the ports differ from the doc: free
//! ones stand for its server's 8080 and its receiver's 9000.
//!
//! `flags serve` is started as the doc starts it (its variables and
//! options), in the background, its log captured; a second `flags serve` is
//! the doc's restart, after a Ctrl-C (SIGINT). A command ending in `&` runs
//! in the background until the test ends. An output that shows what the
//! guardrail thread has done by then (a check, a notification) is awaited:
//! the command is run again until it prints what the doc shows, or
//! [`SETTLE`] has passed.

mod common;

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::doc::{Block, Prompt, at_host, blocks, matches, prompts, sh, sh_command};
use common::{Options, Server};

const DOC: &str = include_str!("../../docs/guardrails.md");

/// The doc's webhook receiver port.
const DOC_RECEIVER_PORT: &str = "9000";

/// How long an output that waits on the guardrail thread may take to show.
const SETTLE: Duration = Duration::from_secs(10);

/// Commands whose output shows what the guardrail thread has done by now.
const AWAITED: [&str; 5] = [
    "/v1/guardrails",
    "/v1/status",
    "/metrics",
    "receiver.log",
    "flags results",
];

/// A background command of the doc, stopped with the test.
struct Background(Child);

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The walk-through's state: its directory, server and background commands.
struct Walk {
    dir: Option<tempfile::TempDir>,
    server: Option<Server>,
    host: String,
    receiver_port: String,
    background: Vec<Background>,
    serves: usize,
}

/// Waits until `attempt` succeeds, at most [`SETTLE`]; it returns what was
/// printed when it fails, for the message about `context` showing `shown`.
fn settle(context: &str, shown: &str, mut attempt: impl FnMut() -> Result<(), String>) {
    let started = Instant::now();
    while let Err(printed) = attempt() {
        assert!(
            started.elapsed() < SETTLE,
            "{context}\nprinted {printed}\nthe doc shows {shown}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A loopback port free right now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The file a code block is, by its first line's `# NAME`; `flags.toml` for
/// a `toml` block without one.
fn file_name(block: &Block) -> Option<String> {
    let named = block.lines[0]
        .strip_prefix("# ")
        .and_then(|comment| comment.split_whitespace().next())
        .map(|name| name.trim_end_matches(':').to_string());
    named.or_else(|| (block.language == "toml").then(|| "flags.toml".to_string()))
}

impl Walk {
    fn work(&self) -> &Path {
        match (&self.dir, &self.server) {
            (Some(dir), _) => dir.path(),
            (None, Some(server)) => server.dir.path(),
            (None, None) => unreachable!("the directory is the walk's or its server's"),
        }
    }

    fn write(&self, block: &Block) {
        let name =
            file_name(block).unwrap_or_else(|| panic!("a block names no file: {:?}", block.lines));
        let text = at_host(&block.lines.join("\n"), &self.host)
            .replace(DOC_RECEIVER_PORT, &self.receiver_port);
        std::fs::write(self.work().join(name), text + "\n").unwrap();
    }

    /// Runs the doc's `prompt` as the doc means it; checks what it printed.
    fn run(&mut self, prompt: &Prompt) {
        let shown = prompt.shown.trim_end();
        if prompt.command.contains("flags serve") {
            self.serve(&prompt.command, shown);
        } else if let Some(command) = prompt.command.strip_suffix(" &") {
            let command = format!("exec {command}");
            let child = sh_command(&command, self.work(), &self.host)
                .stdin(Stdio::null())
                .spawn()
                .unwrap();
            self.background.push(Background(child));
        } else if AWAITED.iter().any(|reads| prompt.command.contains(reads)) {
            settle(&prompt.command, shown, || {
                self.check(&prompt.command, shown)
            });
        } else if let Err(printed) = self.check(&prompt.command, shown) {
            panic!(
                "{}\nprinted {printed}\nthe doc shows {shown}",
                prompt.command
            );
        }
    }

    /// Runs `command` once: whether it succeeded and printed `shown`, or
    /// what it printed.
    fn check(&self, command: &str, shown: &str) -> Result<(), String> {
        let output = sh(command, self.work(), &self.host);
        let printed = String::from_utf8_lossy(&output.stdout)
            .trim_end()
            .to_string();
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            return Err(format!(
                "{printed}\nand failed ({}): {stderr}",
                output.status
            ));
        }
        matches(&at_host(shown, &self.host), &printed)
            .then_some(())
            .ok_or(printed)
    }

    /// Starts `flags serve` as `command` does, after stopping the running
    /// server with a Ctrl-C; checks its first line (stdout) and its log.
    fn serve(&mut self, command: &str, shown: &str) {
        let words: Vec<&str> = command.split_whitespace().filter(|w| *w != "\\").collect();
        let at = words.iter().position(|w| *w == "flags").unwrap();
        assert_eq!(words[at + 1], "serve", "{command}");
        let dir = match (self.dir.take(), self.server.take()) {
            (Some(dir), None) => dir,
            (None, Some(mut server)) => {
                server.signal("INT");
                assert!(server.wait_exit(SETTLE).is_some(), "no exit on Ctrl-C");
                std::mem::replace(&mut server.dir, tempfile::tempdir().unwrap())
            }
            _ => unreachable!("the directory is the walk's or its server's"),
        };
        self.serves += 1;
        let log_path = dir.path().join(format!("serve-{}.log", self.serves));
        let mut options = Options::default()
            .env("FLAGS_LOG", "info")
            .log(std::fs::File::create(&log_path).unwrap())
            .current_dir(dir.path())
            .arg("--addr")
            .arg(&self.host);
        for assignment in &words[..at] {
            let (name, value) = assignment.split_once('=').unwrap();
            options = options.env(name, value);
        }
        for arg in &words[at + 2..] {
            options = options.arg(arg);
        }
        // Where the doc's server finds it: `flags.toml`, in its directory.
        let server = Server::serve_path(dir, "flags.toml".into(), options);

        let shown = at_host(shown, &self.host);
        let listening = format!("listening on {}", server.base);
        assert!(
            shown.lines().any(|l| l == listening),
            "{shown}\nnot {listening}"
        );
        let shown_log: Vec<&str> = shown.lines().filter(|l| *l != listening).collect();
        let shown_log = shown_log.join("\n");
        // The log's last line may follow the first line of stdout.
        settle(command, &shown_log, || {
            let log = std::fs::read_to_string(&log_path).unwrap();
            let log = log.trim_end();
            matches(&shown_log, log)
                .then_some(())
                .ok_or_else(|| log.to_string())
        });
        self.server = Some(server);
    }
}

#[test]
fn every_command_of_the_guardrails_walk_through_does_what_the_doc_shows() {
    let mut walk = Walk {
        dir: Some(tempfile::tempdir().unwrap()),
        server: None,
        host: format!("127.0.0.1:{}", free_port()),
        receiver_port: free_port().to_string(),
        background: Vec::new(),
        serves: 0,
    };
    for block in blocks(DOC) {
        match block.language.as_str() {
            "text" if block.lines[0].starts_with("$ ") => {
                prompts(&block).iter().for_each(|prompt| walk.run(prompt))
            }
            "toml" | "python" | "sh" => walk.write(&block),
            _ => {}
        }
    }
    assert_eq!(
        walk.serves, 2,
        "the doc starts the server, then restarts it"
    );
}
