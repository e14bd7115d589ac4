//! The event store in PostgreSQL, shared by several replicas of `flags
//! serve` (`--database-url postgres://...`).
//!
//! What it is for: the [`EventStore`] interface on a database that other
//! processes write to at the same time. Events go through one writer
//! thread per process that commits them in groups with a handful of
//! set-based statements each (`writer`, `group`, `outcomes`,
//! `aggregates`); replicas take turns on an advisory lock per group, and
//! read the phases afresh each time (`phases`). Readouts aggregate in the
//! database (`reads`). Kills, guardrail states and the webhook outbox are
//! tables every replica shares (`kills`, `guardrails`, `outbox`, which
//! claims rows so that two replicas never deliver the same one at once).
//! The schema migrates itself under a lock (`schema`).
//!
//! The database being down never crashes nor blocks the server: opening
//! succeeds once the URL parses, and connections are made on demand
//! (`pool`, `connect`); until one is, and whenever one is lost, writes
//! answer [`WriteError::Failed`] and reads a [`StoreError`] naming the
//! database (never its password), and [`EventStore::health`] says why.
//! It recovers by itself when the database returns.
//!
//! What it is not: the reference semantics (the SQLite store's; every
//! answer here equals its answer to the same calls) nor deciding which
//! events are valid (`crate::events::ingest`).

mod aggregates;
mod connect;
mod group;
mod guardrail_trips;
mod guardrails;
mod job;
mod kills;
mod outbox;
mod outcomes;
mod phases;
mod pool;
mod prepared;
mod reads;
mod retention;
mod schema;
mod tls;
mod writer;

#[cfg(test)]
mod measurements;
#[cfg(test)]
mod test_database;
#[cfg(test)]
mod test_relay;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::sync::mpsc::{Sender, SyncSender, TrySendError, channel, sync_channel};
use std::time::Duration;

use tokio::sync::oneshot;

use self::connect::Target;
use self::job::Job;
use self::pool::Database;
use self::writer::{QUEUE_CAPACITY, Writer};
use super::health::Health;
use super::retention::Retention;
use super::{
    Answer, ArmSums, Event, EventStore, Exposure, GuardrailRow, GuardrailTrip, Look, LookPoint,
    MetricWindow, PairedSums, Pending, PhaseRecord, PhaseStart, Readouts, RecentUnit, StoreError,
    StoreOptions, Stored, StoredKill, UnitValue, WriteError, WriterHealth,
};
use crate::store::MAX_TEXT;

/// The event store in a PostgreSQL database (see the module's documentation).
pub struct PostgresStore {
    queue: SyncSender<Job>,
    phase_starts: Sender<PhaseStart>,
    health: Arc<Health>,
    database: Arc<Database>,
    retain: Option<Duration>,
}

impl PostgresStore {
    /// The store in the database at `url` (`postgres://USER:PASSWORD@HOST:PORT/DATABASE`,
    /// `?sslmode=` disable, prefer, require or verify-full), with its writer
    /// started. Errs only for a URL that cannot be used, saying why; the
    /// database itself is reached (and its schema migrated) in the
    /// background and on demand.
    pub fn open(url: &str, options: StoreOptions) -> Result<Self, StoreError> {
        let (store, writer) = Self::unstarted(url, options)?;
        std::thread::Builder::new()
            .name("event-writer".into())
            .spawn(move || writer.run())
            .map_err(|e| StoreError(format!("cannot start the event writer: {e}")))?;
        Ok(store)
    }

    /// A handle and its writer, not yet running.
    fn unstarted(url: &str, options: StoreOptions) -> Result<(Self, Writer), StoreError> {
        let database = Arc::new(Database::new(Target::parse(url)?));
        let (queue, jobs) = sync_channel(QUEUE_CAPACITY);
        let (phase_starts, started) = channel();
        let health = Arc::new(Health::new(options.max_queued_events));
        let writer = Writer {
            jobs,
            started,
            health: health.clone(),
            database: database.clone(),
            retention: options.retain.map(Retention::new),
        };
        let store = Self {
            queue,
            phase_starts,
            health,
            database,
            retain: options.retain,
        };
        Ok((store, writer))
    }

    /// Hands `job` to the writer if its events fit under the ceiling and
    /// the channel has room; `Full` otherwise.
    fn queue(&self, job: Job) -> Result<(), TrySendError<Job>> {
        let events = job.event_count();
        self.health.queue(&self.queue, job, events)
    }
}

fn writer_stopped() -> WriteError {
    WriteError::Failed("the writer thread has stopped".into())
}

impl Readouts for PostgresStore {
    fn phases(&self, flag: &str) -> Result<Vec<PhaseRecord>, StoreError> {
        self.database.with_client(|c| reads::phases(c, flag))
    }

    fn arm_units(&self, flag: &str, phase: i64) -> Result<Vec<(String, i64)>, StoreError> {
        self.database
            .with_client(|c| reads::arm_units(c, flag, phase))
    }

    fn multiple_exposures(&self, flag: &str, phase: i64) -> Result<i64, StoreError> {
        self.database
            .with_client(|c| reads::multiple_exposures(c, flag, phase))
    }

    fn metric_sums(
        &self,
        flag: &str,
        phase: i64,
        metric: &str,
        window: MetricWindow,
    ) -> Result<Vec<ArmSums>, StoreError> {
        self.database
            .with_client(|c| reads::metric_sums(c, flag, phase, metric, window))
    }

    fn paired_sums(
        &self,
        flag: &str,
        phase: i64,
        end: i64,
        first: UnitValue<'_>,
        second: UnitValue<'_>,
    ) -> Result<Vec<PairedSums>, StoreError> {
        self.database
            .with_client(|c| reads::paired_sums(c, flag, phase, end, first, second))
    }

    fn looks(
        &self,
        flag: &str,
        phase: i64,
        metric: &str,
    ) -> Result<Vec<(String, f64)>, StoreError> {
        self.database
            .with_client(|c| reads::looks(c, flag, phase, metric))
    }

    fn recent_units(
        &self,
        flag: &str,
        phase: i64,
        metric: &str,
        from: i64,
        to: i64,
    ) -> Result<Vec<RecentUnit>, StoreError> {
        self.database
            .with_client(|c| reads::recent_units(c, flag, phase, metric, from, to))
    }

    fn look_history(
        &self,
        flag: &str,
        phase: i64,
        metric: &str,
    ) -> Result<Vec<LookPoint>, StoreError> {
        self.database
            .with_client(|c| reads::look_history(c, flag, phase, metric))
    }

    fn kills(&self) -> Result<Vec<StoredKill>, StoreError> {
        self.database.with_client(kills::load)?.map_err(|e| {
            StoreError(format!(
                "runtime kills in PostgreSQL {}: {e}",
                self.database.location()
            ))
        })
    }

    fn guardrail_states(&self) -> Result<Vec<GuardrailRow>, StoreError> {
        self.database.with_client(guardrails::load)
    }

    fn guardrail_trips(&self) -> Result<Vec<GuardrailTrip>, StoreError> {
        self.database.with_client(guardrail_trips::load)
    }
}

impl EventStore for PostgresStore {
    fn readouts(&self) -> &dyn Readouts {
        self
    }

    fn write(&self, events: Vec<Event>) -> Answer<'_, Result<Vec<Stored>, WriteError>> {
        let (reply, outcome) = oneshot::channel();
        let queued = self.queue(Job::Events {
            events,
            reply: Some(reply),
        });
        Box::pin(async move {
            queued.map_err(|e| match e {
                TrySendError::Full(_) => WriteError::Busy,
                TrySendError::Disconnected(_) => writer_stopped(),
            })?;
            outcome
                .await
                .map_err(|_| writer_stopped())?
                .map_err(WriteError::Failed)
        })
    }

    fn record_exposure(&self, exposure: Exposure) {
        let fits = exposure.unit.len() <= MAX_TEXT;
        let job = Job::Events {
            events: vec![Event::Exposure(exposure)],
            reply: None,
        };
        if !fits || self.queue(job).is_err() {
            self.health.drop_exposure();
        }
    }

    fn start_phases(&self, start: PhaseStart) {
        if self.phase_starts.send(start).is_err() {
            tracing::error!("cannot record analysis phases: the event writer has stopped");
            return;
        }
        // A full queue means the writer is busy and will take the phases
        // with its next group anyway.
        let _ = self.queue.try_send(Job::PhasesWaiting);
    }

    fn record_looks(&self, looks: Vec<Look>) {
        if !looks.is_empty() && self.queue.try_send(Job::Looks(looks)).is_err() {
            tracing::warn!("looks not recorded: the event writer is saturated");
        }
    }

    fn health(&self) -> WriterHealth {
        self.health.report()
    }

    fn retain(&self) -> Option<Duration> {
        self.retain
    }

    fn location(&self) -> String {
        self.database.location().to_string()
    }

    fn record_kill(&self, kill: &StoredKill) -> Result<(), StoreError> {
        self.database.with_client(|c| kills::record(c, kill))
    }

    fn clear_kill(&self, flag: &str) -> Result<(), StoreError> {
        self.database.with_client(|c| kills::clear(c, flag))
    }

    fn save_guardrail_states(&self, rows: &[GuardrailRow]) -> Result<(), StoreError> {
        self.database.with_client(|c| guardrails::save(c, rows))
    }

    fn record_guardrail_trip(&self, trip: &GuardrailTrip) -> Result<(), StoreError> {
        self.database
            .with_client(|c| guardrail_trips::record(c, trip))
    }

    fn record_guardrail_revive(&self, flag: &str, by: &str, at: i64) -> Result<(), StoreError> {
        self.database
            .with_client(|c| guardrail_trips::revive(c, flag, by, at))
    }

    fn enqueue_deliveries(
        &self,
        deliveries: &[(&str, String)],
        now: i64,
    ) -> Result<(), StoreError> {
        self.database
            .with_client(|c| outbox::enqueue(c, deliveries, now))
    }

    fn pending_deliveries(&self, limit: usize) -> Result<Vec<Pending>, StoreError> {
        self.database.with_client(|c| outbox::pending(c, limit))
    }

    fn outbox_depth(&self) -> Result<u64, StoreError> {
        self.database.with_client(outbox::depth)
    }

    fn delivered(&self, id: i64, attempts: u32, now: i64) -> Result<(), StoreError> {
        self.database
            .with_client(|c| outbox::delivered(c, id, attempts, now))
    }

    fn retry_at(&self, id: i64, attempts: u32, next: i64, error: &str) -> Result<(), StoreError> {
        self.database
            .with_client(|c| outbox::retry_at(c, id, attempts, next, error))
    }

    fn give_up(&self, id: i64, attempts: u32, now: i64, error: &str) -> Result<(), StoreError> {
        self.database
            .with_client(|c| outbox::give_up(c, id, attempts, now, error))
    }
}
