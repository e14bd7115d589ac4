//! Hot reload: watch the config, debounce, compile off the request path,
//! publish with one atomic swap.
//!
//! The watcher observes the config's directory, not the file: editors save
//! by writing a temporary file and renaming it over the original, and
//! Kubernetes ConfigMaps swap a `..data` symlink, and neither shows up as a
//! change to the watched file itself. Events for the file's name or a
//! `..`-prefixed name count; reads (access events) never do. One save fires
//! several events, so a reload waits until events stop for `--debounce`, and
//! a content hash equal to the last attempt's skips the work entirely.
//!
//! Reloads run on one dedicated thread, in order, whatever asked for them
//! (file events, SIGHUP, `POST /v1/admin/reload`), so compiling a large
//! config never occupies a request worker. Each compile uses the core's
//! per-flag last-known-good merge: a file that does not parse changes
//! nothing, invalid flags keep their previous version and are served stale,
//! and every problem is logged, counted and kept for `/v1/status`, and
//! sent to the webhooks as `config.rejected`.
//! Not here: what a published config holds (`crate::live`) or how the
//! change is announced to clients (`server::stream`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::time::{Duration, Instant};

use flags_core::{Diagnostics, Merged, Overrides, Snapshot, compile_merged};
use notify::{EventKind, RecursiveMode, Watcher};
use tokio::sync::oneshot;
use xxhash_rust::xxh3::xxh3_64;

use crate::error::Error;
use crate::live::{ConfigError, LiveConfig, Published, ReloadAttempt};
use crate::metrics::{Metrics, ReloadOutcome};
use crate::webhooks::{Notification, Notifier, Rejection};

/// Longest a burst of file events can postpone a reload.
const MAX_SETTLE: Duration = Duration::from_millis(250);

/// Asks the reload thread for work; cheap to share.
pub struct Reloader {
    commands: Sender<Command>,
}

enum Command {
    /// The watched directory changed.
    Changed,
    /// SIGHUP.
    Signal,
    /// `POST /v1/admin/reload`, which waits for the outcome.
    Admin(oneshot::Sender<ReloadAttempt>),
}

impl Reloader {
    /// Starts watching `loader`'s file and reloading into `live`.
    pub fn start(loader: Loader, live: Arc<LiveConfig>, debounce: Duration) -> Result<Self, Error> {
        let (commands, inbox) = channel();
        let watcher = watch(&loader.path, commands.clone())?;
        let thread = ReloadThread {
            loader,
            live,
            debounce,
        };
        std::thread::Builder::new()
            .name("flags-reload".into())
            .spawn(move || thread.run(inbox, watcher))
            .map_err(|e| Error::Serve(format!("cannot start the reload thread: {e}")))?;
        Ok(Self { commands })
    }

    /// Reloads soon (SIGHUP).
    pub fn signal(&self) {
        let _ = self.commands.send(Command::Signal);
    }

    /// Reloads now and returns the attempt; `None` if the reload thread is gone.
    pub async fn reload(&self) -> Option<ReloadAttempt> {
        let (reply, outcome) = oneshot::channel();
        self.commands.send(Command::Admin(reply)).ok()?;
        outcome.await.ok()
    }
}

/// Watches the directory holding `path`; events for it or for `..` names
/// (Kubernetes' `..data`) become [`Command::Changed`].
fn watch(path: &Path, commands: Sender<Command>) -> Result<notify::RecommendedWatcher, Error> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let name = path.file_name().map(ToOwned::to_owned);
    let concerns = move |changed: &Path| {
        changed.file_name().is_some_and(|changed| {
            Some(changed) == name.as_deref() || changed.to_string_lossy().starts_with("..")
        })
    };
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        let relevant = match &event {
            Ok(event) => {
                !matches!(event.kind, EventKind::Access(_))
                    && event.paths.iter().any(|p| concerns(p))
            }
            // A lost or failed event may hide a change: look again.
            Err(_) => true,
        };
        if relevant {
            let _ = commands.send(Command::Changed);
        }
    })
    .map_err(|e| Error::Serve(format!("cannot watch {}: {e}", dir.display())))?;
    watcher
        .watch(dir, RecursiveMode::NonRecursive)
        .map_err(|e| Error::Serve(format!("cannot watch {}: {e}", dir.display())))?;
    Ok(watcher)
}

struct ReloadThread {
    loader: Loader,
    live: Arc<LiveConfig>,
    debounce: Duration,
}

impl ReloadThread {
    fn run(mut self, inbox: Receiver<Command>, _watcher: notify::RecommendedWatcher) {
        while let Ok(mut command) = inbox.recv() {
            if matches!(command, Command::Changed) {
                command = self.settle(&inbox).unwrap_or(Command::Changed);
            }
            let (trigger, reply) = match command {
                Command::Changed => ("watch", None),
                Command::Signal => ("signal", None),
                Command::Admin(reply) => ("admin", Some(reply)),
            };
            let attempt = self.reload(trigger);
            if let Some(reply) = reply {
                let _ = reply.send(attempt);
            }
        }
    }

    /// Waits until file events stop for `debounce` (at most [`MAX_SETTLE`]);
    /// returns another command that arrived meanwhile, which reloads anyway.
    fn settle(&self, inbox: &Receiver<Command>) -> Option<Command> {
        let deadline = Instant::now() + MAX_SETTLE;
        loop {
            let wait = self
                .debounce
                .min(deadline.saturating_duration_since(Instant::now()));
            match inbox.recv_timeout(wait) {
                Ok(Command::Changed) if Instant::now() < deadline => continue,
                Ok(Command::Changed) => return None,
                Ok(other) => return Some(other),
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => return None,
            }
        }
    }

    fn reload(&mut self, trigger: &'static str) -> ReloadAttempt {
        let previous = self.live.current.load_full();
        let (published, attempt) = self.loader.attempt(&previous.snapshot, trigger);
        // Recorded before the swap, so whoever is served the new config
        // finds the attempt that published it in /v1/status.
        self.live.record(attempt.clone());
        if let Some(published) = published {
            tracing::info!(
                version = %published.version,
                flags = published.snapshot.len(),
                trigger,
                "published config"
            );
            self.live.publish(published);
        }
        attempt
    }
}

/// Reads and compiles the config file, remembering the last content it saw.
pub struct Loader {
    path: PathBuf,
    overrides: Overrides,
    metrics: Arc<Metrics>,
    notifier: Notifier,
    last_hash: Option<u64>,
}

impl Loader {
    /// A loader for `path`, applying `overrides` at every load and sending
    /// `config.rejected` through `notifier` when a load finds problems.
    pub fn new(
        path: PathBuf,
        overrides: Overrides,
        metrics: Arc<Metrics>,
        notifier: Notifier,
    ) -> Self {
        Self {
            path,
            overrides,
            metrics,
            notifier,
            last_hash: None,
        }
    }

    /// The first load, before serving: a file that cannot be read or parsed
    /// is an error; rejected flags are logged and left out.
    pub fn initial(&mut self) -> Result<(Published, ReloadAttempt), Error> {
        let text = std::fs::read_to_string(&self.path).map_err(|e| Error::io(&self.path, e))?;
        self.last_hash = Some(xxh3_64(text.as_bytes()));
        let merged = compile_merged(&text, None, &self.overrides)
            .map_err(|problems| Error::Invalid(problems.in_file(self.file())))?;
        let (published, attempt) = self.accept(merged, "startup");
        self.notify_rejection(&attempt);
        Ok((published, attempt))
    }

    /// One reload attempt against `previous`: what to publish, if anything,
    /// and the attempt as `/v1/status` reports it.
    fn attempt(
        &mut self,
        previous: &Snapshot,
        trigger: &'static str,
    ) -> (Option<Published>, ReloadAttempt) {
        let (published, attempt) = self.load(previous, trigger);
        self.notify_rejection(&attempt);
        (published, attempt)
    }

    /// Sends `config.rejected` if `attempt` found problems, each as
    /// `file:line:column: message` (an unreadable file as its error).
    fn notify_rejection(&self, attempt: &ReloadAttempt) {
        if attempt.ok {
            return;
        }
        let problems = attempt
            .error
            .iter()
            .cloned()
            .chain(attempt.errors.iter().map(ToString::to_string))
            .collect();
        self.notifier.send(Notification::ConfigRejected(Rejection {
            trigger: attempt.trigger,
            outcome: attempt.outcome,
            problems,
        }));
    }

    fn load(
        &mut self,
        previous: &Snapshot,
        trigger: &'static str,
    ) -> (Option<Published>, ReloadAttempt) {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(e) => {
                // Whatever the content is next time, read it again.
                self.last_hash = None;
                tracing::error!(file = %self.file(), trigger, "cannot read config: {e}");
                self.metrics.record_reload(ReloadOutcome::Failed, 1);
                let mut attempt = ReloadAttempt::new(trigger, ReloadOutcome::Failed, Vec::new());
                attempt.error = Some(format!("cannot read {}: {e}", self.file()));
                return (None, attempt);
            }
        };
        let hash = xxh3_64(text.as_bytes());
        if self.last_hash.replace(hash) == Some(hash) {
            self.metrics.record_reload(ReloadOutcome::Unchanged, 0);
            let attempt = ReloadAttempt::new(trigger, ReloadOutcome::Unchanged, Vec::new());
            return (None, attempt);
        }
        match compile_merged(&text, Some(previous), &self.overrides) {
            Ok(merged) => {
                let (published, attempt) = self.accept(merged, trigger);
                (Some(published), attempt)
            }
            Err(problems) => {
                let errors =
                    self.report(&problems, "config rejected; still serving the previous one");
                self.metrics
                    .record_reload(ReloadOutcome::Failed, problems.items.len());
                let attempt = ReloadAttempt::new(trigger, ReloadOutcome::Failed, errors);
                (None, attempt)
            }
        }
    }

    fn accept(&self, merged: Merged, trigger: &'static str) -> (Published, ReloadAttempt) {
        let rejected = &merged.rejected;
        let outcome = if rejected.is_empty() {
            ReloadOutcome::Applied
        } else {
            ReloadOutcome::Partial
        };
        let errors = self.report(
            rejected,
            "flag rejected; serving its previous version if any",
        );
        self.metrics.record_reload(outcome, rejected.items.len());
        for status in merged.snapshot.overrides() {
            match &status.problem {
                None => {
                    tracing::info!(flag = %status.flag, variant = %status.variant, "override applied")
                }
                Some(problem) => {
                    tracing::warn!(flag = %status.flag, variant = %status.variant, "override not applied: {problem}")
                }
            }
        }
        let published = Published::new(merged.snapshot, &self.metrics);
        (published, ReloadAttempt::new(trigger, outcome, errors))
    }

    /// Logs every problem and returns them as `/v1/status` shows them.
    fn report(&self, problems: &Diagnostics, what: &str) -> Vec<ConfigError> {
        let file = self.file();
        problems
            .items
            .iter()
            .map(|d| {
                tracing::warn!("{file}:{d}: {what}");
                ConfigError::new(&file, d)
            })
            .collect()
    }

    fn file(&self) -> String {
        self.path.display().to_string()
    }
}
