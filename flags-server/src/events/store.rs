//! The event writer: one thread owns the write connection and commits
//! events in groups.
//!
//! Requests hand their events to the writer through a bounded channel and
//! wait for the commit; the writer drains whatever has queued up since its
//! last commit (up to [`MAX_GROUP_EVENTS`]) into one transaction, commits,
//! then answers every request of the group. Durability then costs one sync
//! per group instead of one per request, so throughput grows with
//! concurrency instead of being capped by the disk's sync latency.
//! Exposures recorded by evaluations go through the same channel without
//! waiting for an answer, and so do the looks of each readout. The analysis
//! phases of each newly published config come through a channel of their
//! own, without bound (one entry per reload), so that publishing a config
//! never waits for the writer; the writer applies them before anything in
//! a group, so they are in place for every exposure queued after the config
//! was published. Not here: validating events (`ingest`) or reading them
//! (`analysis`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::mpsc::{Receiver, Sender, SyncSender, TrySendError, channel, sync_channel};
use std::sync::{Arc, Mutex};

use flags_core::Snapshot;
use rusqlite::{Connection, Transaction, params};
use tokio::sync::oneshot;

use super::aggregates::{self, PhaseEnds};
use super::schema::{self, OpenError};

/// Writes queued before senders are turned away (a request is one write).
const QUEUE_CAPACITY: usize = 8192;

/// Most events committed in one transaction; a longer queue takes several.
const MAX_GROUP_EVENTS: usize = 20_000;

/// One exposure: `unit` was served `variant` of experiment flag `flag`.
#[derive(Clone, Debug, PartialEq)]
pub struct Exposure {
    /// The client's event id; `None` for exposures the server records itself.
    pub id: Option<String>,
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
    pub id: String,
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
    /// Written (or, for an exposure, moved its unit's first exposure earlier).
    New,
    /// Already there: the same conversion id, or the same unit's exposure to
    /// the same variant at an earlier or equal time.
    Duplicate,
}

/// Why a write was not acknowledged.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The queue is full: the disk is slower than the incoming events.
    #[error("the event writer is saturated; retry shortly")]
    Busy,
    /// The commit failed (full disk, I/O error) or the writer stopped.
    #[error("the event store cannot write: {0}")]
    Failed(String),
}

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

enum Job {
    /// Events to store.
    Events {
        events: Vec<Event>,
        /// Where to send the outcome; `None` when nobody waits (exposures).
        reply: Option<oneshot::Sender<Result<Vec<Stored>, String>>>,
    },
    /// Phases wait in their own channel: write them even if nothing else comes.
    PhasesWaiting,
    /// Looks to fold into each arm's running minimum.
    Looks(Vec<Look>),
}

impl Job {
    fn events(&self) -> usize {
        match self {
            Self::Events { events, .. } => events.len(),
            Self::PhasesWaiting | Self::Looks(_) => 0,
        }
    }
}

/// The experiments of a config published at `published` (Unix ms), as
/// (flag, assignment hash): a changed hash starts a new phase.
struct PhaseStart {
    experiments: Vec<(String, u64)>,
    published: i64,
}

impl PhaseEnds for Phases {
    fn end(&self, flag: &str, phase: i64) -> i64 {
        self.0
            .get(flag)
            .and_then(|phases| phases.iter().find(|(number, _, _)| *number == phase + 1))
            .map_or(i64::MAX, |(_, started, _)| *started)
    }
}

/// Every experiment's phases as (number, start in Unix ms, assignment hash),
/// in order: the writer's copy of the `phases` table.
#[derive(Default)]
struct Phases(HashMap<String, Vec<(i64, i64, String)>>);

impl Phases {
    fn load(connection: &Connection) -> rusqlite::Result<Self> {
        let mut phases = Self::default();
        let mut statement = connection.prepare(
            "SELECT flag, number, started, assignment FROM phases ORDER BY flag, number",
        )?;
        let mut rows = statement.query([])?;
        while let Some(row) = rows.next()? {
            phases
                .0
                .entry(row.get(0)?)
                .or_default()
                .push((row.get(1)?, row.get(2)?, row.get(3)?));
        }
        Ok(phases)
    }

    /// The phase in force at `time`; events before the first phase started
    /// (sent late, or stored before phases existed) belong to the first.
    fn at(&self, flag: &str, time: i64) -> i64 {
        let Some(phases) = self.0.get(flag) else {
            return 1;
        };
        phases
            .iter()
            .rev()
            .find(|(_, started, _)| *started <= time)
            .or(phases.first())
            .map_or(1, |(number, _, _)| *number)
    }

    /// Starts a new phase of `flag` unless its assignment is unchanged.
    fn start(
        &mut self,
        transaction: &Transaction<'_>,
        flag: &str,
        assignment: u64,
        published: i64,
    ) -> rusqlite::Result<()> {
        let assignment = format!("{assignment:016x}");
        let phases = self.0.entry(flag.to_string()).or_default();
        if phases
            .last()
            .is_some_and(|(_, _, last)| *last == assignment)
        {
            return Ok(());
        }
        let number = phases.last().map_or(1, |(number, _, _)| number + 1);
        transaction.execute(
            "INSERT INTO phases (flag, number, assignment, started) VALUES (?1, ?2, ?3, ?4)",
            params![flag, number, assignment, published],
        )?;
        phases.push((number, published, assignment));
        Ok(())
    }
}

/// The writer's handle (cheap to clone; the thread stops when every clone
/// is dropped).
#[derive(Clone)]
pub struct EventStore {
    dir: PathBuf,
    queue: SyncSender<Job>,
    phase_starts: Sender<PhaseStart>,
    health: Arc<Health>,
}

/// What `/v1/status` reports about the writer.
#[derive(Default)]
struct Health {
    /// The last failed commit's error, cleared by the next successful one.
    last_error: Mutex<Option<String>>,
    /// Exposures dropped because the queue was full.
    dropped_exposures: AtomicU64,
}

impl EventStore {
    /// Opens the database in `dir` and starts the writer thread.
    pub fn open(dir: &Path) -> Result<Self, OpenError> {
        let (connection, phases) = open_writer(dir)?;
        let (store, writer) = Self::unstarted(dir);
        std::thread::Builder::new()
            .name("event-writer".into())
            .spawn(move || writer.run(connection, phases))
            .map_err(|source| OpenError::Directory {
                path: dir.to_path_buf(),
                source,
            })?;
        Ok(store)
    }

    /// A handle and the writer's ends of its channels, not yet running.
    fn unstarted(dir: &Path) -> (Self, Writer) {
        let (queue, jobs) = sync_channel(QUEUE_CAPACITY);
        let (phase_starts, started) = channel();
        let health = Arc::new(Health::default());
        let writer = Writer {
            jobs,
            started,
            health: health.clone(),
        };
        let store = Self {
            dir: dir.to_path_buf(),
            queue,
            phase_starts,
            health,
        };
        (store, writer)
    }

    /// The data directory (readers open their own connections there).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Stores `events`, answering once they are committed.
    pub async fn write(&self, events: Vec<Event>) -> Result<Vec<Stored>, WriteError> {
        let (reply, outcome) = oneshot::channel();
        self.queue
            .try_send(Job::Events {
                events,
                reply: Some(reply),
            })
            .map_err(|e| match e {
                TrySendError::Full(_) => WriteError::Busy,
                TrySendError::Disconnected(_) => {
                    WriteError::Failed("the writer thread has stopped".into())
                }
            })?;
        outcome
            .await
            .map_err(|_| WriteError::Failed("the writer thread has stopped".into()))?
            .map_err(WriteError::Failed)
    }

    /// Queues an exposure without waiting; dropped (and counted) when the
    /// queue is full, because evaluations must never wait on the disk.
    pub fn record_exposure(&self, exposure: Exposure) {
        let job = Job::Events {
            events: vec![Event::Exposure(exposure)],
            reply: None,
        };
        if self.queue.try_send(job).is_err() {
            self.health.dropped_exposures.fetch_add(1, Relaxed);
        }
    }

    /// Starts a new analysis phase for each experiment of `snapshot` whose
    /// assignment changed; `published` is when it was published (Unix ms).
    /// Never waits, even when the writer is saturated: a reload (a kill
    /// switch) must not be held up by the event store.
    pub fn start_phases(&self, snapshot: &Snapshot, published: i64) {
        let experiments = snapshot
            .flags()
            .filter_map(|flag| {
                let experiment = flag.experiments().next()?;
                Some((flag.key().to_string(), experiment.assignment_hash()))
            })
            .collect();
        let start = PhaseStart {
            experiments,
            published,
        };
        if self.phase_starts.send(start).is_err() {
            tracing::error!("cannot record analysis phases: the event writer has stopped");
            return;
        }
        // A full queue means the writer is busy and will take the phases
        // with its next group anyway.
        let _ = self.queue.try_send(Job::PhasesWaiting);
    }

    /// Folds `looks` into the stored running minima, without waiting.
    pub fn record_looks(&self, looks: Vec<Look>) {
        if !looks.is_empty() && self.queue.try_send(Job::Looks(looks)).is_err() {
            tracing::warn!("looks not recorded: the event writer is saturated");
        }
    }

    /// The last commit error, if the last commit failed.
    pub fn last_error(&self) -> Option<String> {
        self.health
            .last_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Exposures dropped so far because the queue was full.
    pub fn dropped_exposures(&self) -> u64 {
        self.health.dropped_exposures.load(Relaxed)
    }
}

/// The write connection and the phases it has stored, as the writer starts.
fn open_writer(dir: &Path) -> Result<(Connection, Phases), OpenError> {
    let connection = schema::open_for_writing(dir)?;
    let phases = Phases::load(&connection).map_err(|source| OpenError::Sqlite {
        path: dir.join(schema::FILE_NAME),
        source,
    })?;
    Ok((connection, phases))
}

/// The writer's ends of the channels.
struct Writer {
    jobs: Receiver<Job>,
    started: Receiver<PhaseStart>,
    health: Arc<Health>,
}

impl Writer {
    /// Commits whatever is queued, answers, repeats, until every handle is
    /// dropped.
    ///
    /// Phases started since the last group go first in the next one. That
    /// is early enough (they were sent before any exposure to their config
    /// was queued) and never too early: an exposure belongs to the phase in
    /// force at its time, whenever it is written. Phases of a group whose
    /// commit failed are retried with the next group.
    fn run(self, mut connection: Connection, mut phases: Phases) {
        let mut starts = Vec::new();
        while let Ok(first) = self.jobs.recv() {
            starts.extend(self.started.try_iter());
            let group = self.group(first);
            let outcome = commit(&mut connection, &mut phases, &starts, &group);
            *self
                .health
                .last_error
                .lock()
                .unwrap_or_else(|e| e.into_inner()) =
                outcome.as_ref().err().map(ToString::to_string);
            match outcome {
                Ok(stored) => {
                    starts.clear();
                    answer(group, stored);
                }
                Err(error) => {
                    tracing::error!("event commit failed: {error}");
                    // The phases started in the failed transaction are not stored.
                    if let Ok(stored) = Phases::load(&connection) {
                        phases = stored;
                    }
                    refuse(group, &error);
                }
            }
        }
    }

    /// `first` and whatever else is queued, up to [`MAX_GROUP_EVENTS`].
    fn group(&self, first: Job) -> Vec<Job> {
        let mut queued = first.events();
        let mut group = vec![first];
        while queued < MAX_GROUP_EVENTS {
            match self.jobs.try_recv() {
                Ok(job) => {
                    queued += job.events();
                    group.push(job);
                }
                Err(_) => break,
            }
        }
        group
    }
}

/// Answers each request of a committed group with what storing its events did.
fn answer(group: Vec<Job>, stored: Vec<Stored>) {
    let mut stored = stored.into_iter();
    for job in group {
        if let Job::Events { events, reply } = job {
            let mine: Vec<Stored> = stored.by_ref().take(events.len()).collect();
            if let Some(reply) = reply {
                let _ = reply.send(Ok(mine));
            }
        }
    }
}

/// Answers each request of a group whose commit failed.
fn refuse(group: Vec<Job>, error: &rusqlite::Error) {
    for job in group {
        if let Job::Events {
            reply: Some(reply), ..
        } = job
        {
            let _ = reply.send(Err(error.to_string()));
        }
    }
}

/// Applies every job of `group` in one transaction; returns what storing
/// each event did, in order.
fn commit(
    connection: &mut Connection,
    phases: &mut Phases,
    starts: &[PhaseStart],
    group: &[Job],
) -> rusqlite::Result<Vec<Stored>> {
    let transaction = connection.transaction()?;
    for start in starts {
        for (flag, assignment) in &start.experiments {
            phases.start(&transaction, flag, *assignment, start.published)?;
        }
    }
    let mut stored = Vec::with_capacity(group.iter().map(Job::events).sum());
    for job in group {
        match job {
            Job::Events { events, .. } => {
                for event in events {
                    stored.push(store(&transaction, phases, event)?);
                }
            }
            Job::PhasesWaiting => {}
            Job::Looks(looks) => {
                let mut look = transaction.prepare_cached(
                    "INSERT INTO looks (flag, phase, metric, arm, p_value, time)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                     ON CONFLICT (flag, phase, metric, arm)
                     DO UPDATE SET p_value = min(p_value, excluded.p_value), time = excluded.time",
                )?;
                let now = super::ingest::now_ms();
                for l in looks {
                    look.execute(params![l.flag, l.phase, l.metric, l.arm, l.p_value, now])?;
                }
            }
        }
    }
    transaction.commit()?;
    Ok(stored)
}

/// Writes one event.
fn store(
    transaction: &Transaction<'_>,
    phases: &Phases,
    event: &Event,
) -> rusqlite::Result<Stored> {
    let changed = match event {
        Event::Exposure(e) => {
            // Keeps the earliest exposure when one arrives late (clients batch).
            let mut expose = transaction.prepare_cached(
                "INSERT INTO exposures (flag, phase, unit, variant, time, id)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (flag, phase, unit, variant)
                 DO UPDATE SET time = excluded.time, id = excluded.id
                 WHERE excluded.time < exposures.time",
            )?;
            let phase = phases.at(&e.flag, e.time);
            aggregates::around_exposure(transaction, phases, &e.flag, phase, &e.unit, || {
                expose.execute(params![e.flag, phase, e.unit, e.variant, e.time, e.id])
            })?
        }
        Event::Conversion(c) => {
            let mut convert = transaction.prepare_cached(
                "INSERT OR IGNORE INTO conversions (id, metric, unit, value, time)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            let changed = convert.execute(params![c.id, c.metric, c.unit, c.value, c.time])?;
            if changed > 0 {
                let value = c.value.unwrap_or(0.0);
                aggregates::after_conversion(
                    transaction,
                    phases,
                    &c.unit,
                    &c.metric,
                    value,
                    c.time,
                )?;
            }
            changed
        }
    };
    Ok(if changed > 0 {
        Stored::New
    } else {
        Stored::Duplicate
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conversion(id: &str) -> Event {
        Event::Conversion(Conversion {
            id: id.into(),
            metric: "m".into(),
            unit: "u".into(),
            value: None,
            time: 1,
        })
    }

    fn exposure(variant: &str, time: i64) -> Event {
        Event::Exposure(Exposure {
            id: None,
            flag: "f".into(),
            variant: variant.into(),
            unit: "u".into(),
            time,
        })
    }

    #[tokio::test]
    async fn duplicates_are_stored_once_and_the_earliest_exposure_wins() {
        let dir = tempfile::tempdir().unwrap();
        let store = EventStore::open(dir.path()).unwrap();
        let stored = store
            .write(vec![conversion("a"), conversion("a"), exposure("x", 5)])
            .await
            .unwrap();
        assert_eq!(stored, [Stored::New, Stored::Duplicate, Stored::New]);
        let stored = store
            .write(vec![exposure("x", 9), exposure("x", 3), exposure("y", 9)])
            .await
            .unwrap();
        assert_eq!(stored, [Stored::Duplicate, Stored::New, Stored::New]);
        let connection = Connection::open(dir.path().join(schema::FILE_NAME)).unwrap();
        let time: i64 = connection
            .query_row(
                "SELECT time FROM exposures WHERE variant = 'x'",
                [],
                |row| row.get(0),
            )
            .unwrap();
        assert_eq!(time, 3);
    }

    #[test]
    fn starting_phases_never_waits_for_a_saturated_writer() {
        let dir = tempfile::tempdir().unwrap();
        let (store, writer) = EventStore::unstarted(dir.path());
        while store.queue.try_send(Job::PhasesWaiting).is_ok() {}
        let text = "version = 1\n[flags.f]\n[[flags.f.rules]]\nsplit = { on = 50, off = 50 }\nexperiment = {}\n";
        let snapshot = flags_core::compile(text, &flags_core::Overrides::new()).unwrap();
        let (done, returned) = std::sync::mpsc::channel();
        let starter = store.clone();
        std::thread::spawn(move || {
            starter.start_phases(&snapshot, 5);
            let _ = done.send(());
        });
        let waited = returned.recv_timeout(std::time::Duration::from_secs(10));
        assert!(waited.is_ok(), "start_phases waited for room in the queue");
        // Its wake-up found no room; the writer takes the phase with the
        // first group it commits all the same.
        drop(store);
        let (connection, phases) = open_writer(dir.path()).unwrap();
        writer.run(connection, phases);
        let connection = Connection::open(dir.path().join(schema::FILE_NAME)).unwrap();
        let started: i64 = connection
            .query_row("SELECT started FROM phases WHERE flag = 'f'", [], |row| {
                row.get(0)
            })
            .unwrap();
        assert_eq!(started, 5);
    }

    /// The aggregates' rows, sorted, for comparison.
    fn aggregates(connection: &Connection) -> Vec<String> {
        let mut rows = Vec::new();
        for sql in [
            "SELECT flag, phase, variant, units FROM arm_units WHERE units != 0",
            "SELECT flag, phase, variant, metric, converted, sum, sum_of_squares FROM arm_outcomes
             WHERE converted != 0 OR sum != 0",
            "SELECT flag, phase, units FROM multiple_exposures",
        ] {
            let mut statement = connection.prepare(sql).unwrap();
            let columns = statement.column_count();
            let mut query = statement.query([]).unwrap();
            while let Some(row) = query.next().unwrap() {
                let values: Vec<String> = (0..columns)
                    .map(|i| format!("{:?}", row.get_ref(i).unwrap()))
                    .collect();
                rows.push(values.join(" "));
            }
        }
        rows.sort();
        rows
    }

    #[tokio::test]
    async fn incremental_aggregates_equal_an_aggregation_from_scratch() {
        // Events in a shuffled order: late exposures, earlier re-exposures,
        // units in both arms, conversions before and after exposure.
        let mut seed = 0x0123_4567_89ab_cdef_u64;
        let mut next = |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let mut events = Vec::new();
        for i in 0..400 {
            let unit = format!("u{}", next(60));
            let time = next(1000) as i64;
            events.push(match next(3) {
                0 => Event::Exposure(Exposure {
                    id: None,
                    flag: "f".into(),
                    variant: ["a", "b"][(next(20) == 0) as usize ^ (unit.len() % 2)].into(),
                    unit,
                    time,
                }),
                1 => Event::Conversion(Conversion {
                    id: format!("c{i}"),
                    metric: "m".into(),
                    unit,
                    value: None,
                    time,
                }),
                _ => Event::Conversion(Conversion {
                    id: format!("c{i}"),
                    metric: "r".into(),
                    unit,
                    value: Some(next(100) as f64),
                    time,
                }),
            });
        }
        let incremental = tempfile::tempdir().unwrap();
        let store = EventStore::open(incremental.path()).unwrap();
        for batch in events.chunks(37) {
            store.write(batch.to_vec()).await.unwrap();
        }
        drop(store);

        // The same events stored at schema version 2, then migrated: version
        // 3 builds its aggregates from scratch.
        let scratch = tempfile::tempdir().unwrap();
        let connection = Connection::open(scratch.path().join(schema::FILE_NAME)).unwrap();
        connection
            .execute_batch(&schema::migrations_before(3).join(";"))
            .unwrap();
        for event in &events {
            match event {
                Event::Exposure(e) => connection.execute(
                    "INSERT INTO exposures (flag, phase, unit, variant, time) VALUES (?1, 1, ?2, ?3, ?4)
                     ON CONFLICT DO UPDATE SET time = min(time, excluded.time)",
                    params![e.flag, e.unit, e.variant, e.time],
                ),
                Event::Conversion(c) => connection.execute(
                    "INSERT OR IGNORE INTO conversions (id, metric, unit, value, time)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![c.id, c.metric, c.unit, c.value, c.time],
                ),
            }
            .unwrap();
        }
        connection.pragma_update(None, "user_version", 2).unwrap();
        drop(connection);
        let migrated = schema::open_for_writing(scratch.path()).unwrap();

        let written = Connection::open(incremental.path().join(schema::FILE_NAME)).unwrap();
        let expected = aggregates(&migrated);
        assert!(expected.len() > 5, "{expected:?}");
        assert_eq!(aggregates(&written), expected);
    }
}
