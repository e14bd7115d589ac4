//! The config lifecycle: the config being served ([`LiveConfig`]), what is
//! published ([`Published`]), reload attempts and their problems as
//! `/v1/status` reports them, and the change feed's announcements.
//!
//! A [`Published`] config is immutable; `reload` builds the next one off the
//! request path and swaps it in with one atomic store. A handler loads the
//! current one once, so a request finishes on the config it started with.
//! Runtime kills are applied to every config as it is published, and a kill
//! or revive publishes the served config again with the new set; both take
//! one lock, so neither can undo the other. Independent of HTTP: the server
//! (`server`), the reloader (`reload`) and kills (`kills`) all build on it.
//! Not here: building configs (`reload`), deciding and storing kills
//! (`crate::kills`), serving the change feed (`server::stream`) or answering
//! requests (handlers).

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use flags_core::{Context, Diagnostic, Evaluation, Explain, Section, Snapshot, Timestamp};
use serde::Serialize;
use tokio::sync::watch;

use crate::kill_set::KillSet;
use crate::metrics::{Metrics, ReloadOutcome};

/// The config being served, the last reload attempt and the change feed.
pub struct LiveConfig {
    /// The published config.
    pub current: ArcSwap<Published>,
    /// The latest reload attempts (the initial load at first).
    attempts: Mutex<ReloadHistory>,
    /// Announces each newly published config version (`/v1/stream`).
    pub events: watch::Sender<ConfigEvent>,
    before_publish: OnceLock<PublishHook>,
    /// The runtime kills in force; held while publishing.
    kills: Mutex<KillSet>,
}

/// How many reload attempts `/v1/status` lists: enough to see what a run of
/// saves did, few enough that a file saved in a loop costs nothing.
pub const RECENT_ATTEMPTS: usize = 10;

/// The last reload attempt and up to [`RECENT_ATTEMPTS`] - 1 before it;
/// serialised as one list, newest first.
#[derive(Clone, Debug)]
pub struct ReloadHistory {
    /// The last attempt.
    pub last: ReloadAttempt,
    /// The ones before it, newest first.
    pub earlier: Vec<ReloadAttempt>,
}

impl ReloadHistory {
    /// Every attempt kept, newest first.
    pub fn newest_first(&self) -> impl Iterator<Item = &ReloadAttempt> {
        std::iter::once(&self.last).chain(&self.earlier)
    }
}

impl Serialize for ReloadHistory {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.newest_first())
    }
}

/// Runs on the reloading thread just before a config is swapped in.
type PublishHook = Box<dyn Fn(&Published) + Send + Sync>;

impl LiveConfig {
    /// The initial state: `published` after the initial load `attempt`.
    pub fn new(published: Published, attempt: ReloadAttempt) -> Self {
        let (events, _) = watch::channel(ConfigEvent::of(&published));
        Self {
            current: ArcSwap::from_pointee(published),
            attempts: Mutex::new(ReloadHistory {
                last: attempt,
                earlier: Vec::new(),
            }),
            events,
            before_publish: OnceLock::new(),
            kills: Mutex::new(KillSet::default()),
        }
    }

    /// Has `hook` run before every later swap, while no request can be
    /// served the new config yet: what must be in place before that (the
    /// analysis phases of its experiments) is done there, not after the
    /// announcement. Set once; a second hook is refused.
    pub fn before_publish(&self, hook: impl Fn(&Published) + Send + Sync + 'static) -> bool {
        self.before_publish.set(Box::new(hook)).is_ok()
    }

    /// Publishes `next` with the runtime kills in force: the hook, one
    /// atomic swap, then the announcement.
    pub fn publish(&self, next: Published) {
        let kills = self.lock_kills();
        self.swap(next.with_kills(&kills));
    }

    /// Runs `change` on the runtime kills (with the served snapshot, to
    /// look flags up) and, if it changed which flags are killed or by whom,
    /// publishes the served config again with the new set. The hook runs, as
    /// for any publication: a kill stops the flag's experiment, a revival
    /// restarts it in a new phase.
    pub fn change_kills<R>(&self, change: impl FnOnce(&mut KillSet, &Snapshot) -> R) -> R {
        let mut kills = self.lock_kills();
        let served = self.current.load_full();
        let before = kills.digest();
        let result = change(&mut kills, &served.snapshot);
        if kills.digest() != before {
            self.swap(served.with_kills(&kills));
        }
        result
    }

    /// A copy of the runtime kills in force.
    pub fn kills(&self) -> KillSet {
        self.lock_kills().clone()
    }

    fn lock_kills(&self) -> std::sync::MutexGuard<'_, KillSet> {
        self.kills.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The hook, one atomic swap, then the announcement.
    fn swap(&self, next: Published) {
        if let Some(hook) = self.before_publish.get() {
            hook(&next);
        }
        let event = ConfigEvent::of(&next);
        self.current.store(Arc::new(next));
        self.events.send_replace(event);
    }

    /// Records the outcome of a reload attempt, forgetting the oldest
    /// beyond [`RECENT_ATTEMPTS`].
    pub fn record(&self, attempt: ReloadAttempt) {
        let mut attempts = self.lock_attempts();
        let previous = std::mem::replace(&mut attempts.last, attempt);
        attempts.earlier.insert(0, previous);
        attempts.earlier.truncate(RECENT_ATTEMPTS - 1);
    }

    /// A copy of the latest reload attempts: the last one and up to
    /// [`RECENT_ATTEMPTS`] - 1 before it.
    pub fn recent_attempts(&self) -> ReloadHistory {
        self.lock_attempts().clone()
    }

    fn lock_attempts(&self) -> std::sync::MutexGuard<'_, ReloadHistory> {
        self.attempts.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A compiled config plus what the server precomputes for it.
pub struct Published {
    /// The compiled config, with the runtime kills in force applied.
    pub snapshot: Snapshot,
    /// [`Snapshot::version`] as text, formatted once.
    pub version: Box<str>,
    /// What is served, as one opaque version: [`Published::version`], plus
    /// a digest of the runtime kills when there are any, so that change
    /// stream clients also hear of a kill or a revive.
    pub served_version: Box<str>,
    /// When its config was loaded (kills do not change it).
    pub loaded_at: SystemTime,
    flags: Arc<[FlagCounters]>,
}

/// Per flag: whether its exposures are analysed, and its evaluation counters.
struct FlagCounters {
    analysed: bool,
    variants: Box<[(Box<str>, Arc<AtomicU64>)]>,
}

/// One evaluation, ready to be answered.
pub struct Evaluated<'s> {
    /// The flag key.
    pub key: &'s str,
    /// The result.
    pub evaluation: Evaluation<'s>,
    /// Whether the flag's exposures are analysed (it runs an experiment or
    /// has guardrails), so enrolment is worth reporting.
    pub analysed: bool,
}

impl Published {
    /// Wraps `snapshot`, resolving its evaluation counters in `metrics`.
    pub fn new(snapshot: Snapshot, metrics: &Metrics) -> Self {
        let flags = snapshot
            .flags()
            .map(|flag| FlagCounters {
                analysed: flag.experiments().next().is_some() || !flag.guardrails().is_empty(),
                variants: flag
                    .variants()
                    .map(|(name, _)| (name.into(), metrics.evaluation_counter(flag.key(), name)))
                    .collect(),
            })
            .collect();
        let version: Box<str> = snapshot.version().to_string().into();
        Self {
            served_version: version.clone(),
            version,
            snapshot,
            loaded_at: SystemTime::now(),
            flags,
        }
    }

    /// The same config with exactly the runtime kills of `kills`.
    pub fn with_kills(&self, kills: &KillSet) -> Self {
        let served_version = match kills.digest() {
            Some(digest) => format!("{}-{digest:016x}", self.version).into(),
            None => self.version.clone(),
        };
        Self {
            snapshot: kills.apply(&self.snapshot),
            version: self.version.clone(),
            served_version,
            loaded_at: self.loaded_at,
            flags: self.flags.clone(),
        }
    }

    /// How often the flag at `position` (file order) served each of its
    /// variants since the server started, in the order written; empty for
    /// a position beyond the last flag.
    pub fn evaluation_counts(&self, position: usize) -> impl Iterator<Item = (&str, u64)> {
        self.flags
            .get(position)
            .into_iter()
            .flat_map(|counters| counters.variants.iter())
            .map(|(variant, counter)| (&**variant, counter.load(Relaxed)))
    }

    /// Evaluates `key`, counting the variant served; `None` if there is no such flag.
    pub fn evaluate<'s, E: Explain>(
        &'s self,
        key: &str,
        ctx: &Context<'_>,
        at: Timestamp,
        explain: &mut E,
    ) -> Option<Evaluated<'s>> {
        let position = self.snapshot.position(key)?;
        let (key, evaluation) = self.snapshot.explain_at(position, ctx, at, explain)?;
        Some(self.count(key, position, evaluation))
    }

    /// Evaluates every flag in file order, counting each variant served.
    pub fn evaluate_all<'s>(
        &'s self,
        ctx: &'s Context<'_>,
        at: Timestamp,
    ) -> impl Iterator<Item = Evaluated<'s>> + 's {
        self.snapshot
            .evaluate_all(ctx, at)
            .enumerate()
            .map(|(position, (key, evaluation))| self.count(key, position, evaluation))
    }

    fn count<'s>(
        &'s self,
        key: &'s str,
        position: usize,
        evaluation: Evaluation<'s>,
    ) -> Evaluated<'s> {
        let counters = &self.flags[position];
        if let Some((_, counter)) = counters
            .variants
            .iter()
            .find(|(name, _)| Some(&**name) == evaluation.variant)
        {
            counter.fetch_add(1, Relaxed);
        }
        Evaluated {
            key,
            evaluation,
            analysed: counters.analysed,
        }
    }
}

/// One reload attempt as `/v1/status` reports it.
#[derive(Clone, Debug, Serialize)]
pub struct ReloadAttempt {
    /// When it ran (RFC 3339).
    pub at: String,
    /// What started it: `startup`, `watch`, `signal` or `admin`.
    pub trigger: &'static str,
    /// `applied`, `partial`, `failed` or `unchanged`.
    pub outcome: &'static str,
    /// Whether the file was fully valid.
    pub ok: bool,
    /// Whether a new config was published.
    pub applied: bool,
    /// A problem with the file as a whole that has no position (unreadable).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Every problem found, with its position.
    pub errors: Vec<ConfigError>,
}

impl ReloadAttempt {
    /// An attempt started by `trigger` that ended as `outcome`.
    pub fn new(trigger: &'static str, outcome: ReloadOutcome, errors: Vec<ConfigError>) -> Self {
        Self {
            at: Timestamp::now().to_string(),
            trigger,
            outcome: outcome.as_str(),
            ok: matches!(outcome, ReloadOutcome::Applied | ReloadOutcome::Unchanged),
            applied: matches!(outcome, ReloadOutcome::Applied | ReloadOutcome::Partial),
            error: None,
            errors,
        }
    }
}

/// One config problem as `/v1/status` reports it.
#[derive(Clone, Debug, Serialize)]
pub struct ConfigError {
    /// The file.
    pub file: String,
    /// The flag it concerns, if a flag.
    pub flag: Option<String>,
    /// The section (`flag`, `segment`, `layer`, `metric`), if inside one.
    pub section: Option<Section>,
    /// The entry's name, if inside one.
    pub name: Option<String>,
    /// 1-based line.
    pub line: u32,
    /// 1-based column.
    pub column: u32,
    /// What is wrong.
    pub message: String,
    /// All of it on one line, `file:line:column: section.name: message`,
    /// as `flags check` prints it.
    pub problem: String,
}

impl ConfigError {
    /// `diagnostic`, found in `file`.
    pub fn new(file: &str, diagnostic: &Diagnostic) -> Self {
        Self {
            problem: format!("{file}:{diagnostic}"),
            file: file.to_string(),
            flag: (diagnostic.section == Some(Section::Flag))
                .then(|| diagnostic.name.clone())
                .flatten(),
            section: diagnostic.section,
            name: diagnostic.name.clone(),
            line: diagnostic.line,
            column: diagnostic.column,
            message: diagnostic.message.clone(),
        }
    }
}

impl fmt::Display for ConfigError {
    /// [`ConfigError::problem`].
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.problem)
    }
}

/// A published config version, as announced.
#[derive(Clone, Debug)]
pub struct ConfigEvent {
    /// The served version ([`Published::served_version`]).
    pub version: Arc<str>,
    /// When it was published, in Unix seconds.
    pub published_unix: u64,
}

impl ConfigEvent {
    /// The announcement of `published`, now.
    pub fn of(published: &Published) -> Self {
        Self {
            version: Arc::from(&*published.served_version),
            published_unix: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use flags_core::{Overrides, compile};

    use super::*;

    fn published(text: &str) -> Published {
        let snapshot = compile(text, &Overrides::new()).unwrap();
        Published::new(snapshot, &Metrics::default())
    }

    #[test]
    fn the_latest_reload_attempts_are_kept_newest_first() {
        let live = LiveConfig::new(
            published("version = 1\n"),
            ReloadAttempt::new("startup", ReloadOutcome::Applied, Vec::new()),
        );
        assert_eq!(live.recent_attempts().newest_first().count(), 1);
        for _ in 0..RECENT_ATTEMPTS + 2 {
            live.record(ReloadAttempt::new(
                "watch",
                ReloadOutcome::Failed,
                Vec::new(),
            ));
        }
        live.record(ReloadAttempt::new(
            "admin",
            ReloadOutcome::Partial,
            Vec::new(),
        ));
        let recent: Vec<ReloadAttempt> = live.recent_attempts().newest_first().cloned().collect();
        assert_eq!(recent.len(), RECENT_ATTEMPTS);
        assert_eq!((recent[0].trigger, recent[0].outcome), ("admin", "partial"));
        assert!(recent[1..].iter().all(|a| a.trigger == "watch"));
    }

    #[test]
    fn evaluation_counts_are_per_variant_in_the_order_written() {
        let served =
            published("version = 1\n[flags.f]\nvariants = { a = 1, b = 2 }\ndefault = \"b\"\n");
        let ctx = Context::with_key("u");
        for _ in 0..3 {
            served.evaluate("f", &ctx, Timestamp::now(), &mut flags_core::NoExplain);
        }
        assert_eq!(
            served.evaluation_counts(0).collect::<Vec<_>>(),
            [("a", 0), ("b", 3)]
        );
        assert_eq!(served.evaluation_counts(1).count(), 0);
    }

    #[test]
    fn the_hook_runs_before_the_swap_and_sees_the_next_config() {
        let first = published("version = 1\n[flags.a]\n");
        let next = published("version = 1\n[flags.b]\n");
        let (first_version, next_version) = (first.version.clone(), next.version.clone());
        let live = Arc::new(LiveConfig::new(
            first,
            ReloadAttempt::new("startup", ReloadOutcome::Applied, Vec::new()),
        ));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (watching, record) = (Arc::downgrade(&live), seen.clone());
        assert!(live.before_publish(move |next| {
            let served = watching.upgrade().unwrap().current.load().version.clone();
            record.lock().unwrap().push((served, next.version.clone()));
        }));
        assert!(!live.before_publish(|_| {}), "a second hook is refused");
        live.publish(next);
        assert_eq!(
            *seen.lock().unwrap(),
            [(first_version, next_version.clone())],
            "the hook ran once, while the previous config was still served"
        );
        assert_eq!(live.current.load().version, next_version);
    }
}
