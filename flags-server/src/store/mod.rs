//! The event store: where a server keeps what outlives a request, behind
//! one interface with two backends.
//!
//! What it is for: the experiment events (exposures and conversions, each
//! acknowledged only once committed), the analysis phases each published
//! config starts, the looks of each readout, the runtime kills, the
//! guardrails' states and the webhook outbox; and the reads a readout and a
//! guardrail check need (per-arm sufficient statistics, never every row).
//! [`EventStore`] is that interface; `sqlite` keeps it in an embedded
//! database under `--data DIR` (one server per directory), `postgres` in a
//! PostgreSQL database that several replicas share (`--database-url`).
//!
//! What it is not: deciding which events are valid (`crate::events::ingest`),
//! computing statistics (`crate::events::analysis`, `crate::guardrails`) or
//! delivering webhooks (`crate::webhooks`). No type of a database driver
//! crosses this module's boundary: callers see the types below.
//!
//! Writes of events are asynchronous (the caller awaits the commit of a
//! group, see each backend's writer); every other method blocks on the
//! database and is called from a blocking thread (`spawn_blocking`, or the
//! guardrail and webhook threads), never from an async task directly.

pub mod health;
pub mod phases;
pub mod postgres;
pub mod retention;
pub mod sqlite;
#[cfg(test)]
pub mod test_events;
#[cfg(test)]
pub mod test_trips;

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use flags_core::bucket::BUCKETS;
use flags_core::stats::SideSums;
use flags_core::{ExperimentInfo, FlagInfo, KilledBy, Snapshot};

/// The default `--max-queued-events`: two seconds of the writer's measured
/// throughput (docs/benchmarks.md), and at most about 100 MB of queued
/// events, each under 1 KiB (id and key within [`MAX_TEXT`]).
pub const DEFAULT_MAX_QUEUED_EVENTS: usize = 100_000;

/// Longest event id or unit key, in bytes: the one bound on what a unit
/// key stored costs, for client events (`crate::events::ingest` refuses
/// longer) and the server's own exposures (the writers drop longer).
pub const MAX_TEXT: usize = 256;

/// How the writer is bounded and what it keeps.
#[derive(Clone, Copy, Debug)]
pub struct StoreOptions {
    /// Most events waiting for the writer; beyond, writes are refused.
    pub max_queued_events: usize,
    /// How long raw events are kept (`--retain`); `None` keeps them forever.
    pub retain: Option<Duration>,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            max_queued_events: DEFAULT_MAX_QUEUED_EVENTS,
            retain: None,
        }
    }
}

/// A client's event id, with a digest of the rest of what the client sent
/// under it: the same id with another digest is a different event reusing
/// the id (a conflict), not a resend (a duplicate).
#[derive(Clone, Debug, PartialEq)]
pub struct EventId {
    /// The id, unique among events of its kind.
    pub id: String,
    /// The digest of the event's other fields as sent (see `ingest`).
    pub payload: u64,
}

impl EventId {
    /// The digest as the databases store it (a signed 64-bit integer, same bits).
    pub fn stored_payload(&self) -> i64 {
        self.payload.cast_signed()
    }
}

/// One exposure: `unit` was served `variant` of experiment flag `flag`.
#[derive(Clone, Debug, PartialEq)]
pub struct Exposure {
    /// The client's event id; `None` for exposures the server records itself.
    pub id: Option<EventId>,
    /// The flag running the experiment.
    pub flag: String,
    /// The variant served.
    pub variant: String,
    /// The unit (targeting key).
    pub unit: String,
    /// Unix milliseconds.
    pub time: i64,
}

/// One conversion: `unit` did `metric`, worth `value` for mean metrics.
#[derive(Clone, Debug, PartialEq)]
pub struct Conversion {
    /// The client's event id, unique across conversions.
    pub id: EventId,
    /// The metric.
    pub metric: String,
    /// The unit (targeting key).
    pub unit: String,
    /// The value (mean metrics); `None` for conversion metrics.
    pub value: Option<f64>,
    /// Unix milliseconds.
    pub time: i64,
}

/// An event to store.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// See [`Exposure`].
    Exposure(Exposure),
    /// See [`Conversion`].
    Conversion(Conversion),
}

/// What storing one event did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stored {
    /// Written: a new id (for a client's exposure, even when its unit's
    /// first exposure to that variant is earlier and stays), or a server's
    /// exposure that moved its unit's first exposure earlier.
    New,
    /// Already there: the same id with the same payload, or (server's
    /// exposures, which have no id) the same unit's exposure to the same
    /// variant at an earlier or equal time.
    Duplicate,
    /// The id is already stored with a different payload; nothing written.
    Conflict,
}

/// Why a write was not acknowledged.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The queue is full: the database is slower than the incoming events.
    #[error("the event writer is saturated; retry shortly")]
    Busy,
    /// The commit failed (full disk, I/O error, database unreachable) or
    /// the writer stopped.
    #[error("the event store cannot write: {0}")]
    Failed(String),
}

/// Why the store could not answer a read or a write other than events':
/// what failed, in words, naming the database.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct StoreError(pub String);

/// A look at an experiment: an arm's always-valid p-value at one readout.
#[derive(Clone, Debug, PartialEq)]
pub struct Look {
    /// The flag running the experiment.
    pub flag: String,
    /// The analysis phase.
    pub phase: i64,
    /// The metric.
    pub metric: String,
    /// The treatment arm.
    pub arm: String,
    /// Its running-minimum always-valid p-value.
    pub p_value: f64,
}

/// The resolution of the looks' history (see [`LookPoint`]).
pub const MINUTE_MS: i64 = 60_000;

/// A point of an arm's always-valid p-value over time: its running minimum
/// as of the minute `time` starts, the last look of that minute.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct LookPoint {
    /// The treatment arm.
    pub arm: String,
    /// The minute (Unix ms of its start).
    pub time: i64,
    /// The running-minimum p-value then.
    pub p_value: f64,
}

/// The analysed flags of a config published at `published` (Unix ms): a
/// changed assignment (see [`AnalysedFlag::assignment`]) starts a new
/// phase; a flag missing from the list (rule removed, flag killed) stops.
pub struct PhaseStart {
    /// Every flag the config analyses.
    pub flags: Vec<AnalysedFlag>,
    /// When the config was published (Unix ms).
    pub published: i64,
}

/// One analysed flag as a config publishes it.
#[derive(Debug, PartialEq)]
pub struct AnalysedFlag {
    /// The flag.
    pub flag: String,
    /// What a phase of the flag is a period of, as a hash: its experiment's
    /// assignment (split, traffic, layer, salts); for a flag with
    /// guardrails and no experiment, its whole definition (its flag
    /// version), so that the units a guardrail compares after an edit are
    /// those exposed since (a guardrail re-armed by an edit must not trip
    /// again on the evidence of the version it stopped; see
    /// `crate::guardrails`).
    pub assignment: u64,
    /// An experiment's design as JSON (see [`design`]), stored with a new
    /// phase; `None` for a flag analysed only by its guardrails.
    pub design: Option<String>,
}

impl PhaseStart {
    /// The flags of `snapshot` whose exposures something analyses (an
    /// experiment or a guardrail), killed flags left out so that their
    /// phase stops.
    pub fn of(snapshot: &Snapshot, published: i64) -> Self {
        let flags = snapshot
            .flags()
            .filter(|flag| flag.killed_by().is_none())
            .filter_map(|flag| {
                Some(AnalysedFlag {
                    flag: flag.key().to_string(),
                    assignment: phase_key(&flag)?,
                    design: flag.experiments().next().map(|e| design(&e)),
                })
            })
            .collect();
        Self { flags, published }
    }
}

/// See [`AnalysedFlag::assignment`]; `None` for a flag whose exposures
/// nothing analyses.
fn phase_key(flag: &FlagInfo<'_>) -> Option<u64> {
    match flag.experiments().next() {
        Some(experiment) => Some(experiment.assignment_hash()),
        None => (!flag.guardrails().is_empty()).then(|| flag.version().0),
    }
}

/// The design of `experiment` as stored with each of its phases: what a
/// readout of that phase weighs its arms by, whatever the config says later.
pub fn design(experiment: &ExperimentInfo<'_>) -> String {
    let percent = |buckets: u32| f64::from(buckets) * 100.0 / f64::from(BUCKETS);
    serde_json::json!({
        "arms": experiment
            .arms()
            .map(|(variant, width)| serde_json::json!({"variant": variant, "weight": percent(width)}))
            .collect::<Vec<_>>(),
        "traffic": percent(experiment.traffic()),
        "layer": experiment.layer().map(|(name, start, end)| {
            serde_json::json!({"name": name, "range": [percent(start), percent(end)]})
        }),
        "metrics": experiment.metrics().collect::<Vec<_>>(),
        "correction_across_metrics": experiment.correction_across_metrics(),
    })
    .to_string()
}

/// One stored analysis phase of a flag.
#[derive(Clone, Debug, PartialEq)]
pub struct PhaseRecord {
    /// 1, 2, ... in order.
    pub number: i64,
    /// When it started (Unix ms).
    pub started: i64,
    /// When its experiment stopped (Unix ms), if it did in this phase.
    pub stopped: Option<i64>,
    /// The assignment hash, as 16 hex digits.
    pub assignment: String,
    /// The design as JSON (see [`design`]); `None` for phases stored before
    /// designs were.
    pub design: Option<String>,
}

/// What a metric's per-arm sums are taken over.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MetricWindow {
    /// Count a unit's events only within this span of its first exposure.
    pub span_ms: Option<i64>,
    /// Cap each unit's total at this value.
    pub cap: Option<f64>,
    /// The phase's end (Unix ms; `i64::MAX` while it runs): later events
    /// never count.
    pub end: i64,
    /// Sum each unit's total afresh instead of reading the sums the writer
    /// maintains (which, updated by differences, may be off by rounding);
    /// implied by `span_ms` and `cap`.
    pub from_units: bool,
}

/// One arm's sufficient statistics for one metric, over its units exposed
/// to that arm alone.
#[derive(Clone, Debug, PartialEq)]
pub struct ArmSums {
    /// The variant.
    pub variant: String,
    /// Units with at least one event of the metric.
    pub converted: i64,
    /// Sum of the units' totals.
    pub sum: f64,
    /// Sum of the squares of the units' totals.
    pub sum_of_squares: f64,
}

/// Which events of a metric make a unit's value in [`Readouts::paired_sums`]:
/// those at or after the unit's first exposure in the phase plus `from_ms`
/// and before it plus `to_ms` (never at or after the phase's end).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct UnitValue<'a> {
    /// The metric.
    pub metric: &'a str,
    /// Where the events start, from the first exposure (ms; negative: before it).
    pub from_ms: i64,
    /// Where they end, from the first exposure (ms); `None`: the phase's end.
    pub to_ms: Option<i64>,
    /// Cap each unit's total at this.
    pub cap: Option<f64>,
    /// The value is 1 for a unit with any such event, else 0 (a conversion
    /// metric), instead of its total.
    pub converted: bool,
}

/// One arm's sums of two per-unit values and of their product, over its
/// units exposed to it alone (a unit without events has the value 0).
#[derive(Clone, Debug, PartialEq)]
pub struct PairedSums {
    /// The variant.
    pub variant: String,
    /// The first value's sum and sum of squares.
    pub first: SideSums,
    /// The second value's sum and sum of squares.
    pub second: SideSums,
    /// Sum over the units of the first value times the second.
    pub sum_of_products: f64,
}

/// A unit with an event of a metric in a guardrail's window, and its
/// exposures in the phase.
#[derive(Clone, Debug, PartialEq)]
pub struct RecentUnit {
    /// How many variants the unit was exposed to in the phase.
    pub variants: i64,
    /// The (alphabetically first) variant.
    pub variant: String,
    /// Its first exposure (Unix ms).
    pub first_exposure: i64,
    /// Its last event of the metric in the window (Unix ms).
    pub last_event: i64,
}

/// A runtime kill as stored.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredKill {
    /// The flag disabled.
    pub flag: String,
    /// Who disabled it (never [`KilledBy::File`]).
    pub by: KilledBy,
    /// When, in Unix milliseconds.
    pub at_ms: i64,
    /// Why, as the request said.
    pub reason: Option<String>,
}

/// A guardrail's state for one arm, as stored (see `crate::guardrails`,
/// which gives the fields their meaning).
#[derive(Clone, Debug, PartialEq)]
pub struct GuardrailRow {
    /// The flag.
    pub flag: String,
    /// The guardrail's index among the flag's.
    pub guardrail: i64,
    /// The metric.
    pub metric: String,
    /// The treatment arm; empty for a pooled (absolute) guardrail.
    pub arm: String,
    /// The flag version decided for, as 16 hex digits.
    pub flag_version: String,
    /// The phase read.
    pub phase: i64,
    /// The running minimum p-value (relative guardrails).
    pub running_min: Option<f64>,
    /// Since when the rate was above its limit (absolute guardrails).
    pub above_since: Option<i64>,
    /// What the last check saw, as JSON.
    pub figures: String,
    /// The decision's name.
    pub decision: String,
    /// When it was decided (Unix ms).
    pub decided_at: i64,
    /// When it was checked (Unix ms).
    pub checked_at: i64,
}

/// Most trips kept per flag in the trip log: recording one more deletes
/// the flag's oldest.
pub const TRIPS_KEPT_PER_FLAG: usize = 100;

/// One entry of the guardrails' trip log: a guardrail that tripped (and
/// killed its flag) or fired an alert, with what it saw then, and, for a
/// kill, the revive that ended it.
#[derive(Clone, Debug, PartialEq)]
pub struct GuardrailTrip {
    /// The flag.
    pub flag: String,
    /// The guardrail's index among the flag's.
    pub guardrail: i64,
    /// The metric.
    pub metric: String,
    /// The treatment arm compared; empty for a pooled (absolute) guardrail.
    pub arm: String,
    /// `"kill"` or `"alert"`: what the guardrail did.
    pub action: String,
    /// When it tripped (Unix ms).
    pub tripped_at: i64,
    /// The figures at the trip, as the webhooks carry them (a JSON object).
    pub figures: String,
    /// The same, in a sentence (the kill's reason).
    pub reason: String,
    /// When the kill was revived (Unix ms); `None` while it holds, and for alerts.
    pub revived_at: Option<i64>,
    /// Who revived it (`"admin"`: the revive API).
    pub revived_by: Option<String>,
}

/// A webhook delivery not yet delivered nor given up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pending {
    /// The row id.
    pub id: i64,
    /// The endpoint's name.
    pub endpoint: String,
    /// The body to POST.
    pub body: String,
    /// Attempts made so far.
    pub attempts: u32,
    /// When the next attempt is due (Unix ms).
    pub next_attempt_at: i64,
    /// When it was queued (Unix ms).
    pub created_at: i64,
}

/// What `/v1/status` shows of the writer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WriterHealth {
    /// The last failed commit's error, cleared by the next successful one.
    pub last_error: Option<String>,
    /// Exposures dropped: the queue was full, or the unit key too long.
    pub dropped_exposures: u64,
    /// Events handed to the writer and not yet answered.
    pub queued_events: usize,
}

/// A future the store answers with; boxed so that the trait stays usable
/// as `dyn EventStore`.
pub type Answer<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What a readout and a guardrail check read (blocking): per-arm sums,
/// never a row per unit; and the stored kills and guardrail states. A running server reads through its
/// [`EventStore::readouts`]; `flags results` reads a database without
/// writing to it.
pub trait Readouts: Send + Sync {
    /// Every stored phase of `flag`, in order.
    fn phases(&self, flag: &str) -> Result<Vec<PhaseRecord>, StoreError>;

    /// Units exposed to one variant only in `flag`'s `phase`, per variant
    /// (variants with none may be missing).
    fn arm_units(&self, flag: &str, phase: i64) -> Result<Vec<(String, i64)>, StoreError>;

    /// Units exposed to several variants in `flag`'s `phase`.
    fn multiple_exposures(&self, flag: &str, phase: i64) -> Result<i64, StoreError>;

    /// Per-arm sums of `metric` in `flag`'s `phase`, over `window`;
    /// variants without any unit may be missing.
    fn metric_sums(
        &self,
        flag: &str,
        phase: i64,
        metric: &str,
        window: MetricWindow,
    ) -> Result<Vec<ArmSums>, StoreError>;

    /// Per-arm sums of two values of each unit of `flag`'s `phase` and of
    /// their product (a ratio's numerator and denominator; a CUPED metric's
    /// covariate and value), computed from the stored events whatever
    /// order they arrived in; `end` is the phase's end (Unix ms). Variants
    /// without any unit may be missing. One query over the phase's units.
    fn paired_sums(
        &self,
        flag: &str,
        phase: i64,
        end: i64,
        first: UnitValue<'_>,
        second: UnitValue<'_>,
    ) -> Result<Vec<PairedSums>, StoreError>;

    /// The stored running-minimum p-values of `flag`'s `phase` for
    /// `metric`, per arm.
    fn looks(&self, flag: &str, phase: i64, metric: &str)
    -> Result<Vec<(String, f64)>, StoreError>;

    /// The units of `flag`'s `phase` with an event of `metric` in
    /// `[from, to]` (Unix ms).
    fn recent_units(
        &self,
        flag: &str,
        phase: i64,
        metric: &str,
        from: i64,
        to: i64,
    ) -> Result<Vec<RecentUnit>, StoreError>;

    /// Each arm's running-minimum p-value for `metric` in `flag`'s
    /// `phase`, by minute, oldest first.
    fn look_history(
        &self,
        flag: &str,
        phase: i64,
        metric: &str,
    ) -> Result<Vec<LookPoint>, StoreError>;

    /// Every stored runtime kill, by flag.
    fn kills(&self) -> Result<Vec<StoredKill>, StoreError>;

    /// Every stored guardrail state, by flag, guardrail, metric and arm.
    fn guardrail_states(&self) -> Result<Vec<GuardrailRow>, StoreError>;

    /// The trip log (at most [`TRIPS_KEPT_PER_FLAG`] per flag), newest first.
    fn guardrail_trips(&self) -> Result<Vec<GuardrailTrip>, StoreError>;
}

/// The event store (see the module's documentation). Shared as
/// `Arc<dyn EventStore>`; every backend gives the same answers to the same
/// calls (the tests in `tests/events.rs` run against both).
pub trait EventStore: Send + Sync {
    /// What readouts and guardrail checks read.
    fn readouts(&self) -> &dyn Readouts;

    // The writer.

    /// Stores `events`, answering once they are committed; refused at once
    /// ([`WriteError::Busy`]) when they would take the queue beyond its
    /// ceiling in events. One answer per event, in order.
    fn write(&self, events: Vec<Event>) -> Answer<'_, Result<Vec<Stored>, WriteError>>;

    /// Queues an exposure the server recorded, without waiting; dropped
    /// (and counted) when the queue is full or its unit key longer than a
    /// client's event may give ([`MAX_TEXT`]).
    fn record_exposure(&self, exposure: Exposure);

    /// Starts a new analysis phase for each flag of `start` whose
    /// assignment changed or that was stopped, and stops those no longer
    /// listed. Never waits: a reload (a kill switch) must not be held up by
    /// the store. Several replicas publishing the same config start one
    /// phase, not one each.
    fn start_phases(&self, start: PhaseStart);

    /// Folds `looks` into the stored running minima, without waiting.
    fn record_looks(&self, looks: Vec<Look>);

    /// The writer's health.
    fn health(&self) -> WriterHealth;

    /// How long raw events are kept (`--retain`), `None` for ever.
    fn retain(&self) -> Option<Duration>;

    /// Where the store is, for messages (a path, or a URL without password).
    fn location(&self) -> String;

    // Runtime kills (blocking).

    /// Stores `kill`, replacing any earlier kill of its flag; returns once committed.
    fn record_kill(&self, kill: &StoredKill) -> Result<(), StoreError>;

    /// Removes the kill of `flag`, if stored; returns once committed.
    fn clear_kill(&self, flag: &str) -> Result<(), StoreError>;

    // Guardrail states (blocking).

    /// Replaces the stored states of `rows`' keys, all or none.
    fn save_guardrail_states(&self, rows: &[GuardrailRow]) -> Result<(), StoreError>;

    /// Appends `trip` to the trip log, deleting its flag's oldest beyond
    /// [`TRIPS_KEPT_PER_FLAG`].
    fn record_guardrail_trip(&self, trip: &GuardrailTrip) -> Result<(), StoreError>;

    /// Marks the kills of `flag` in the trip log that no revive ended yet
    /// as revived `by` at `at` (Unix ms).
    fn record_guardrail_revive(&self, flag: &str, by: &str, at: i64) -> Result<(), StoreError>;

    // The webhook outbox (blocking).

    /// Queues one delivery per (endpoint, body), due at `now`, all or none.
    fn enqueue_deliveries(&self, deliveries: &[(&str, String)], now: i64)
    -> Result<(), StoreError>;

    /// Up to `limit` pending deliveries, soonest due first. A store that
    /// several servers share hands a due row to one of them at a time (it
    /// is claimed for a while, so that two never deliver it at once).
    fn pending_deliveries(&self, limit: usize) -> Result<Vec<Pending>, StoreError>;

    /// How many deliveries are pending.
    fn outbox_depth(&self) -> Result<u64, StoreError>;

    /// Records a successful attempt, the `attempts`-th.
    fn delivered(&self, id: i64, attempts: u32, now: i64) -> Result<(), StoreError>;

    /// Records a failed attempt, the `attempts`-th, and when to try again.
    fn retry_at(&self, id: i64, attempts: u32, next: i64, error: &str) -> Result<(), StoreError>;

    /// Records that no attempt will follow the `attempts`-th, and why.
    fn give_up(&self, id: i64, attempts: u32, now: i64, error: &str) -> Result<(), StoreError>;
}
