//! The event writer: one thread owns the write connection and commits
//! events in groups.
//!
//! Requests hand their events to the writer through a channel and wait for
//! the commit. What waits is bounded in events, not requests: a request
//! whose events would take the queue beyond `--max-queued-events` is turned
//! away ([`WriteError::Busy`], 503 with `Retry-After`), so a disk slower
//! than the clients costs a bounded amount of memory, never a growing one; the writer drains whatever has queued up since its
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
//! was published.
//!
//! Each request's events are written in a savepoint of their own inside the
//! group's transaction, so an event that cannot be written fails its own
//! request only, never the unrelated requests it was grouped with. The
//! writer holds the data directory's lock (`lock`) while it runs. Not here:
//! validating events (`ingest`), reading them (`analysis`) or deciding what
//! retention removes (`retention`, which the writer runs between groups).

use std::path::Path;
use std::sync::Arc;
use std::sync::mpsc::{
    Receiver, RecvTimeoutError, Sender, SyncSender, TrySendError, channel, sync_channel,
};
use std::thread::JoinHandle;

use rusqlite::{Connection, Transaction, TransactionBehavior, params};
use tokio::sync::oneshot;

use super::aggregates;
use super::lock::WriterLock;
use super::schema::{self, OpenError};
use crate::store::MINUTE_MS;
use crate::store::health::Health;
use crate::store::phases::{PhaseChange, PhaseRow, Phases};
use crate::store::retention::Retention;
use crate::store::{
    Event, EventId, Exposure, Look, PhaseStart, StoreOptions, Stored, WriteError, WriterHealth,
};

/// Writes queued before senders are turned away (a request is one write),
/// a backstop behind the bound in events ([`StoreOptions::max_queued_events`]).
const QUEUE_CAPACITY: usize = 8192;

/// Most events committed in one transaction; a longer queue takes several.
const MAX_GROUP_EVENTS: usize = 20_000;

/// What storing one request's events did, or why they were not stored.
type Outcome = Result<Vec<Stored>, String>;

enum Job {
    /// Events to store.
    Events {
        events: Vec<Event>,
        /// Where to send the outcome; `None` when nobody waits (exposures).
        reply: Option<oneshot::Sender<Outcome>>,
    },
    /// Phases wait in their own channel: write them even if nothing else comes.
    PhasesWaiting,
    /// Looks to fold into each arm's running minimum.
    Looks(Vec<Look>),
    /// The handle is dropped: commit what came before, then stop.
    Stop,
}

impl Job {
    fn events(&self) -> usize {
        match self {
            Self::Events { events, .. } => events.len(),
            Self::PhasesWaiting | Self::Looks(_) | Self::Stop => 0,
        }
    }
}

/// The stored phases, as the writer starts (and after a failed commit).
fn load_phases(connection: &Connection) -> rusqlite::Result<Phases> {
    let mut phases = Phases::default();
    let mut statement = connection.prepare(
        "SELECT flag, number, started, assignment, stopped FROM phases ORDER BY flag, number",
    )?;
    let mut rows = statement.query([])?;
    while let Some(row) = rows.next()? {
        let row_of = PhaseRow {
            number: row.get(1)?,
            started: row.get(2)?,
            assignment: row.get(3)?,
            stopped: row.get(4)?,
        };
        phases.push(row.get(0)?, row_of);
    }
    Ok(phases)
}

/// Stores what publishing a config changed: a stop takes back from the
/// readout what was counted at or after it; a start is a new row.
fn store_phase_changes(
    transaction: &Transaction<'_>,
    changes: Vec<PhaseChange<'_>>,
) -> rusqlite::Result<()> {
    for change in changes {
        match change {
            PhaseChange::Stopped {
                flag,
                phase,
                stopped,
            } => {
                transaction.execute(
                    "UPDATE phases SET stopped = ?3 WHERE flag = ?1 AND number = ?2",
                    params![flag, phase, stopped],
                )?;
                aggregates::end_phase(transaction, &flag, phase, stopped)?;
            }
            PhaseChange::Started {
                flag,
                phase,
                assignment,
                started,
            } => {
                transaction.execute(
                    "INSERT INTO phases (flag, number, assignment, started, design)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![flag.flag, phase, assignment, started, flag.design],
                )?;
            }
        }
    }
    Ok(())
}

/// The writer's handle. Dropping it stops the writer once everything
/// queued before is committed, and waits for that: the data directory's
/// lock is free again when the drop returns.
pub struct WriterHandle {
    queue: SyncSender<Job>,
    phase_starts: Sender<PhaseStart>,
    health: Arc<Health>,
    retain: Option<std::time::Duration>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for WriterHandle {
    fn drop(&mut self) {
        if let Some(thread) = self.thread.take() {
            // Behind whatever is queued; a writer that already stopped
            // cannot take it, and needs no telling.
            let _ = self.queue.send(Job::Stop);
            let _ = thread.join();
        }
    }
}

impl WriterHandle {
    /// Locks `dir` for this process, opens the database in it and starts
    /// the writer thread.
    pub fn open(dir: &Path, options: StoreOptions) -> Result<Self, OpenError> {
        let (lock, connection, phases) = open_writer(dir)?;
        let (mut store, writer) = Self::unstarted(options);
        let thread = std::thread::Builder::new()
            .name("event-writer".into())
            .spawn(move || writer.run(lock, connection, phases))
            .map_err(|source| OpenError::Directory {
                path: dir.to_path_buf(),
                source,
            })?;
        store.thread = Some(thread);
        Ok(store)
    }

    /// A handle and the writer's ends of its channels, not yet running.
    fn unstarted(options: StoreOptions) -> (Self, Writer) {
        let (queue, jobs) = sync_channel(QUEUE_CAPACITY);
        let (phase_starts, started) = channel();
        let health = Arc::new(Health::new(options.max_queued_events));
        let writer = Writer {
            jobs,
            started,
            health: health.clone(),
            retention: options.retain.map(Retention::new),
        };
        let store = Self {
            queue,
            phase_starts,
            health,
            retain: options.retain,
            thread: None,
        };
        (store, writer)
    }

    /// How long raw events are kept (`--retain`), `None` for ever.
    pub fn retain(&self) -> Option<std::time::Duration> {
        self.retain
    }

    /// Stores `events`, answering once they are committed; refused at once
    /// when they would take the queue beyond its ceiling in events.
    pub async fn write(&self, events: Vec<Event>) -> Result<Vec<Stored>, WriteError> {
        let (reply, outcome) = oneshot::channel();
        let job = Job::Events {
            events,
            reply: Some(reply),
        };
        self.queue(job).map_err(|e| match e {
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
    /// queue is full, because evaluations must never wait on the disk, and
    /// when its unit key is longer than a client's event may give
    /// ([`crate::store::MAX_TEXT`]; a targeting key may be longer).
    pub fn record_exposure(&self, exposure: Exposure) {
        if exposure.unit.len() > crate::store::MAX_TEXT {
            self.health.drop_exposure();
            return;
        }
        let job = Job::Events {
            events: vec![Event::Exposure(exposure)],
            reply: None,
        };
        if self.queue(job).is_err() {
            self.health.drop_exposure();
        }
    }

    /// Hands `job` to the writer if its events fit under the ceiling and
    /// the channel has room; `Full` otherwise.
    fn queue(&self, job: Job) -> Result<(), TrySendError<Job>> {
        let events = job.events();
        self.health.queue(&self.queue, job, events)
    }

    /// Events waiting for the writer now (`/v1/status`).
    pub fn queued_events(&self) -> usize {
        self.health.queued_events()
    }

    /// See [`crate::store::EventStore::start_phases`]: never waits, even
    /// when the writer is saturated.
    pub fn start_phases(&self, start: PhaseStart) {
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

    /// What `/v1/status` shows of the writer.
    pub fn health(&self) -> WriterHealth {
        self.health.report()
    }
}

/// The data directory's lock, then the write connection and the phases it
/// has stored, as the writer starts. The lock comes first: a second server
/// must not even migrate the schema under the first.
fn open_writer(dir: &Path) -> Result<(WriterLock, Connection, Phases), OpenError> {
    let lock = WriterLock::acquire(dir)?;
    let connection = schema::open_for_writing(dir)?;
    let phases = load_phases(&connection).map_err(|source| OpenError::Sqlite {
        path: dir.join(schema::FILE_NAME),
        source,
    })?;
    Ok((lock, connection, phases))
}

/// The writer's ends of the channels.
struct Writer {
    jobs: Receiver<Job>,
    started: Receiver<PhaseStart>,
    health: Arc<Health>,
    /// What `--retain` prunes, between groups; `None` keeps everything.
    retention: Option<Retention>,
}

impl Writer {
    /// Commits whatever is queued, answers, repeats, until the handle is
    /// dropped.
    ///
    /// Phases started since the last group go first in the next one. That
    /// is early enough (they were sent before any exposure to their config
    /// was queued) and never too early: an exposure belongs to the phase in
    /// force at its time, whenever it is written. Phases of a group whose
    /// commit failed are retried with the next group. `_lock` is held until
    /// the writer stops.
    fn run(mut self, _lock: WriterLock, mut connection: Connection, mut phases: Phases) {
        let mut starts = Vec::new();
        while let Some(first) = self.next_job(&connection) {
            starts.extend(self.started.try_iter());
            let (group, stop) = self.group(first);
            let events = group.iter().map(Job::events).sum();
            let outcome = commit(&mut connection, &mut phases, &starts, &group);
            self.health
                .set_last_error(outcome.as_ref().err().map(ToString::to_string));
            match outcome {
                Ok(outcomes) => {
                    starts.clear();
                    answer(group, outcomes);
                }
                Err(error) => {
                    tracing::error!("event commit failed: {error}");
                    // The phases started in the failed transaction are not stored.
                    if let Ok(stored) = load_phases(&connection) {
                        phases = stored;
                    }
                    refuse(group, &error);
                }
            }
            // The group's events are answered and dropped: room for more.
            self.health.release(events);
            if stop {
                return;
            }
        }
    }

    /// The next job, or `None` once every handle is dropped. Retention
    /// prunes one bounded batch whenever it is due, between groups, so a
    /// prune never holds a request up for longer than one batch takes.
    fn next_job(&mut self, connection: &Connection) -> Option<Job> {
        loop {
            let Some(retention) = &mut self.retention else {
                return self.jobs.recv().ok();
            };
            if retention.wait().is_zero() {
                // Logged by the schedule; SQLite has no connection to lose.
                let _ = retention.prune_batch(|cutoff, limit| {
                    super::retention::prune(connection, cutoff, limit)
                });
            }
            match self.jobs.recv_timeout(retention.wait()) {
                Ok(job) => return Some(job),
                Err(RecvTimeoutError::Disconnected) => return None,
                Err(RecvTimeoutError::Timeout) => {}
            }
        }
    }

    /// `first` and whatever else is queued, up to [`MAX_GROUP_EVENTS`] or
    /// [`Job::Stop`], and whether that came (the last group).
    fn group(&self, first: Job) -> (Vec<Job>, bool) {
        let mut queued = first.events();
        let mut stop = matches!(first, Job::Stop);
        let mut group = vec![first];
        while queued < MAX_GROUP_EVENTS && !stop {
            match self.jobs.try_recv() {
                Ok(job) => {
                    queued += job.events();
                    stop = matches!(job, Job::Stop);
                    group.push(job);
                }
                Err(_) => break,
            }
        }
        (group, stop)
    }
}

/// Answers each request of a committed group with its outcome (one per
/// job, in order).
fn answer(group: Vec<Job>, outcomes: Vec<Outcome>) {
    for (job, outcome) in group.into_iter().zip(outcomes) {
        if let Job::Events {
            reply: Some(reply), ..
        } = job
        {
            let _ = reply.send(outcome);
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

/// Applies every job of `group` in one transaction; returns each job's
/// outcome, in order (an empty list for jobs other than events).
///
/// The transaction takes the write lock as it begins (`IMMEDIATE`), waiting
/// for it under the busy timeout: the other connections writing to the
/// database (runtime kills, the webhook outbox, guardrail checks) may
/// commit at any time, and a transaction that read first would then fail
/// at its first write ("database is locked") instead of waiting.
fn commit(
    connection: &mut Connection,
    phases: &mut Phases,
    starts: &[PhaseStart],
    group: &[Job],
) -> rusqlite::Result<Vec<Outcome>> {
    let mut transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
    for start in starts {
        store_phase_changes(&transaction, phases.apply(start))?;
    }
    let mut outcomes = Vec::with_capacity(group.len());
    for job in group {
        outcomes.push(match job {
            Job::Events { events, .. } => store_request(&mut transaction, phases, events)?,
            Job::PhasesWaiting | Job::Stop => Ok(Vec::new()),
            Job::Looks(looks) => {
                record_looks(&transaction, looks)?;
                Ok(Vec::new())
            }
        });
    }
    transaction.commit()?;
    Ok(outcomes)
}

/// Folds `looks` into each arm's stored running minimum, and into the
/// minute's point of its history.
fn record_looks(connection: &Connection, looks: &[Look]) -> rusqlite::Result<()> {
    let mut look = connection.prepare_cached(
        "INSERT INTO looks (flag, phase, metric, arm, p_value, time)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (flag, phase, metric, arm)
         DO UPDATE SET p_value = min(p_value, excluded.p_value), time = excluded.time",
    )?;
    let mut point = connection.prepare_cached(
        "INSERT INTO look_history (flag, phase, metric, arm, minute, p_value)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (flag, phase, metric, arm, minute)
         DO UPDATE SET p_value = min(p_value, excluded.p_value)",
    )?;
    let now = crate::clock::now_ms();
    let minute = now.div_euclid(MINUTE_MS);
    for l in looks {
        look.execute(params![l.flag, l.phase, l.metric, l.arm, l.p_value, now])?;
        point.execute(params![l.flag, l.phase, l.metric, l.arm, minute, l.p_value])?;
    }
    Ok(())
}

/// Writes one request's events in a savepoint of their own: if one cannot
/// be written, the request's events are rolled back and it alone is
/// refused, while the group's other requests go on. Errs only when the
/// savepoint itself fails, which fails the group.
fn store_request(
    transaction: &mut Transaction<'_>,
    phases: &Phases,
    events: &[Event],
) -> rusqlite::Result<Outcome> {
    let savepoint = transaction.savepoint()?;
    let stored: rusqlite::Result<Vec<Stored>> = events
        .iter()
        .map(|event| store(&savepoint, phases, event))
        .collect();
    match stored {
        Ok(stored) => {
            savepoint.commit()?;
            Ok(Ok(stored))
        }
        Err(error) => {
            tracing::error!("events of one request not stored: {error}");
            // Rolls back to the savepoint, the default when not committed.
            savepoint.finish()?;
            Ok(Err(error.to_string()))
        }
    }
}

/// Writes one event (inside the writer's transaction).
fn store(connection: &Connection, phases: &Phases, event: &Event) -> rusqlite::Result<Stored> {
    match event {
        Event::Exposure(e) => {
            if let Some(id) = &e.id {
                let new_id = connection
                    .prepare_cached(
                        "INSERT INTO exposure_ids (id, payload, time) VALUES (?1, ?2, ?3)
                         ON CONFLICT (id) DO NOTHING",
                    )?
                    .execute(params![id.id, id.stored_payload(), e.time])?;
                if new_id == 0 {
                    return resent(
                        connection,
                        "SELECT payload FROM exposure_ids WHERE id = ?1",
                        id,
                    );
                }
            }
            // Keeps the earliest exposure when one arrives late (clients batch).
            let mut expose = connection.prepare_cached(
                "INSERT INTO exposures (flag, phase, unit, variant, time, id)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (flag, phase, unit, variant)
                 DO UPDATE SET time = excluded.time, id = excluded.id
                 WHERE excluded.time < exposures.time",
            )?;
            let phase = phases.at(&e.flag, e.time);
            if e.time >= phases.end(&e.flag, phase) {
                // After its experiment stopped, before any restart: no phase
                // counts it (the id, if any, is kept all the same).
                return Ok(if e.id.is_some() {
                    Stored::New
                } else {
                    Stored::Duplicate
                });
            }
            let id = e.id.as_ref().map(|id| &id.id);
            let changed =
                aggregates::around_exposure(connection, phases, &e.flag, phase, &e.unit, || {
                    expose.execute(params![e.flag, phase, e.unit, e.variant, e.time, id])
                })?;
            Ok(if changed > 0 || e.id.is_some() {
                Stored::New
            } else {
                Stored::Duplicate
            })
        }
        Event::Conversion(c) => {
            let changed = connection
                .prepare_cached(
                    "INSERT INTO conversions (id, metric, unit, value, time, payload)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                     ON CONFLICT (id) DO NOTHING",
                )?
                .execute(params![
                    c.id.id,
                    c.metric,
                    c.unit,
                    c.value,
                    c.time,
                    c.id.stored_payload()
                ])?;
            if changed == 0 {
                return resent(
                    connection,
                    "SELECT payload FROM conversions WHERE id = ?1",
                    &c.id,
                );
            }
            let value = c.value.unwrap_or(0.0);
            aggregates::after_conversion(connection, phases, &c.unit, &c.metric, value, c.time)?;
            Ok(Stored::New)
        }
    }
}

/// What an event whose id is already stored is: the same event again if
/// `payload_of` (a query of the stored payload by id) gives its payload, or
/// none because the id was stored before payloads were; otherwise a
/// different event under the same id.
fn resent(connection: &Connection, payload_of: &str, id: &EventId) -> rusqlite::Result<Stored> {
    let stored: Option<i64> = connection
        .prepare_cached(payload_of)?
        .query_row([&id.id], |row| row.get(0))?;
    Ok(match stored {
        Some(payload) if payload != id.stored_payload() => Stored::Conflict,
        _ => Stored::Duplicate,
    })
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering::Relaxed;

    use super::*;
    use crate::store::test_events::{
        client_exposure, conversion, exposure, revenue, shuffled_events,
    };

    /// Queues `events` as one request, as `write` does, for a writer run by hand.
    fn queue(store: &WriterHandle, events: Vec<Event>) -> oneshot::Receiver<Outcome> {
        let (reply, outcome) = oneshot::channel();
        let job = Job::Events {
            events,
            reply: Some(reply),
        };
        assert!(store.queue(job).is_ok());
        outcome
    }

    fn count(dir: &Path, sql: &str) -> i64 {
        let connection = Connection::open(dir.join(schema::FILE_NAME)).unwrap();
        connection.query_row(sql, [], |row| row.get(0)).unwrap()
    }

    #[tokio::test]
    async fn duplicates_are_stored_once_and_the_earliest_exposure_wins() {
        let dir = tempfile::tempdir().unwrap();
        let store = WriterHandle::open(dir.path(), StoreOptions::default()).unwrap();
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

    #[tokio::test]
    async fn a_resent_id_is_a_duplicate_and_a_reused_one_a_conflict() {
        let dir = tempfile::tempdir().unwrap();
        let store = WriterHandle::open(dir.path(), StoreOptions::default()).unwrap();
        let stored = store
            .write(vec![
                conversion("a"),
                client_exposure("e", 1, "x", 5),
                // A later exposure of the same unit and variant under a new id
                // is a new event, although the first exposure stays.
                client_exposure("e2", 2, "x", 9),
            ])
            .await
            .unwrap();
        assert_eq!(stored, [Stored::New, Stored::New, Stored::New]);
        let mut reused = conversion("a");
        if let Event::Conversion(c) = &mut reused {
            c.id.payload = 8;
        }
        let stored = store
            .write(vec![
                conversion("a"),
                reused,
                client_exposure("e", 1, "x", 5),
                client_exposure("e", 3, "y", 5),
            ])
            .await
            .unwrap();
        assert_eq!(
            stored,
            [
                Stored::Duplicate,
                Stored::Conflict,
                Stored::Duplicate,
                Stored::Conflict
            ]
        );
        drop(store);
        assert_eq!(count(dir.path(), "SELECT count(*) FROM conversions"), 1);
        assert_eq!(
            count(
                dir.path(),
                "SELECT count(*) FROM exposures WHERE variant = 'y'"
            ),
            0
        );
        assert_eq!(
            count(dir.path(), "SELECT time FROM exposures WHERE variant = 'x'"),
            5
        );
    }

    #[tokio::test]
    async fn ids_stored_before_payloads_were_kept_count_as_resent() {
        let dir = tempfile::tempdir().unwrap();
        let connection = Connection::open(dir.path().join(schema::FILE_NAME)).unwrap();
        connection
            .execute_batch(&schema::migrations_before(5).join(";"))
            .unwrap();
        connection
            .execute_batch(
                "INSERT INTO conversions (id, metric, unit, value, time) VALUES ('a', 'm', 'u', NULL, 1);
                 INSERT INTO exposures (flag, phase, unit, variant, time, id) VALUES ('f', 1, 'u', 'x', 5, 'e');
                 PRAGMA user_version = 4;",
            )
            .unwrap();
        drop(connection);
        let store = WriterHandle::open(dir.path(), StoreOptions::default()).unwrap();
        let stored = store
            .write(vec![conversion("a"), client_exposure("e", 1, "x", 5)])
            .await
            .unwrap();
        assert_eq!(stored, [Stored::Duplicate, Stored::Duplicate]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn commits_on_other_connections_never_fail_the_writers_groups() {
        let dir = tempfile::tempdir().unwrap();
        let store = WriterHandle::open(dir.path(), StoreOptions::default()).unwrap();
        // Another writer of the same database (as the kill store, the
        // outbox and the guardrail checks are), committing all along.
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (other, stopping) = (schema::open_for_writing(dir.path()).unwrap(), stop.clone());
        let committing = std::thread::spawn(move || {
            let mut commits = 0;
            while !stopping.load(Relaxed) {
                other
                    .execute(
                        "INSERT OR REPLACE INTO runtime_kills VALUES ('x', 'admin', 1, NULL)",
                        [],
                    )
                    .unwrap();
                commits += 1;
                // A busy writer, not a monopoly: back-to-back commits would
                // starve any other writer past its busy timeout.
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            commits
        });
        for i in 0..300 {
            let unit = format!("u{i}");
            let events = vec![Event::Exposure(Exposure {
                id: None,
                flag: "f".into(),
                variant: "on".into(),
                unit,
                time: i,
            })];
            let stored = store.write(events).await;
            assert!(stored.is_ok(), "request {i}: {stored:?}");
        }
        stop.store(true, Relaxed);
        assert!(committing.join().unwrap() > 0);
    }

    #[test]
    fn a_locked_data_directory_is_refused_before_the_database_is_touched() {
        let dir = tempfile::tempdir().unwrap();
        let _held = WriterLock::acquire(dir.path()).unwrap();
        let error = WriterHandle::open(dir.path(), StoreOptions::default())
            .err()
            .unwrap();
        assert!(matches!(error, OpenError::InUse { .. }), "{error}");
        assert!(!dir.path().join(schema::FILE_NAME).exists());
    }

    #[test]
    fn a_request_whose_events_cannot_be_written_fails_alone_in_its_group() {
        let dir = tempfile::tempdir().unwrap();
        let (store, writer) = WriterHandle::unstarted(StoreOptions::default());
        // Queued before the writer runs, so that both are one group. The
        // second f64::MAX makes the unit's total infinite and its square's
        // difference inf - inf, a NaN that SQLite stores as NULL in a NOT
        // NULL column: the statement fails. (`ingest` refuses such values;
        // the store must still not let one request fail the others.)
        let poisoned = queue(
            &store,
            vec![
                exposure("x", 1),
                revenue("p1", f64::MAX),
                revenue("p2", f64::MAX),
            ],
        );
        let good = queue(&store, vec![conversion("g")]);
        drop(store);
        let (lock, connection, phases) = open_writer(dir.path()).unwrap();
        writer.run(lock, connection, phases);
        let error = poisoned.blocking_recv().unwrap().unwrap_err();
        assert!(error.contains("NOT NULL"), "{error}");
        assert_eq!(good.blocking_recv().unwrap(), Ok(vec![Stored::New]));
        // The poisoned request left nothing behind, not even its exposure.
        assert_eq!(count(dir.path(), "SELECT count(*) FROM exposures"), 0);
        assert_eq!(
            count(
                dir.path(),
                "SELECT count(*) FROM conversions WHERE id = 'g'"
            ),
            1
        );
        assert_eq!(count(dir.path(), "SELECT count(*) FROM conversions"), 1);
    }

    #[tokio::test]
    async fn the_queue_is_bounded_in_events_not_requests() {
        let dir = tempfile::tempdir().unwrap();
        let options = StoreOptions {
            max_queued_events: 4,
            retain: None,
        };
        let (store, writer) = WriterHandle::unstarted(options);
        let first = queue(
            &store,
            vec![conversion("a"), conversion("b"), conversion("c")],
        );
        // Two more events do not fit beside three: the request is refused
        // whole, at once, with nothing queued.
        let refused = store.write(vec![conversion("d"), conversion("e")]).await;
        assert!(matches!(refused, Err(WriteError::Busy)), "{refused:?}");
        assert_eq!(store.queued_events(), 3);
        let served = |unit: String| Exposure {
            id: None,
            flag: "f".into(),
            variant: "x".into(),
            unit,
            time: 1,
        };
        store.record_exposure(served("u".into()));
        store.record_exposure(served("v".into()));
        assert_eq!(store.queued_events(), 4);
        assert_eq!(
            store.health().dropped_exposures,
            1,
            "the fifth event is dropped"
        );
        store.record_exposure(served("u".repeat(crate::store::MAX_TEXT + 1)));
        assert_eq!(
            store.health().dropped_exposures,
            2,
            "a unit key beyond the limit"
        );
        let health = store.health.clone();
        drop(store);
        let (lock, connection, phases) = open_writer(dir.path()).unwrap();
        writer.run(lock, connection, phases);
        assert_eq!(first.await.unwrap().unwrap().len(), 3);
        assert_eq!(health.queued_events(), 0, "answered, released");
        assert_eq!(count(dir.path(), "SELECT count(*) FROM conversions"), 3);
        assert_eq!(count(dir.path(), "SELECT count(*) FROM exposures"), 1);
    }

    #[test]
    fn starting_phases_never_waits_for_a_saturated_writer() {
        let dir = tempfile::tempdir().unwrap();
        let (store, writer) = WriterHandle::unstarted(StoreOptions::default());
        while store.queue.try_send(Job::PhasesWaiting).is_ok() {}
        let text = "version = 1\n[flags.f]\n[[flags.f.rules]]\nsplit = { on = 50, off = 50 }\nexperiment = {}\n";
        let snapshot = flags_core::compile(text, &flags_core::Overrides::new()).unwrap();
        let (done, returned) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            store.start_phases(PhaseStart::of(&snapshot, 5));
            let _ = done.send(store);
        });
        let store = returned.recv_timeout(std::time::Duration::from_secs(10));
        assert!(store.is_ok(), "start_phases waited for room in the queue");
        // Its wake-up found no room; the writer takes the phase with the
        // first group it commits all the same.
        drop(store);
        let (lock, connection, phases) = open_writer(dir.path()).unwrap();
        writer.run(lock, connection, phases);
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
        let events = shuffled_events();
        let incremental = tempfile::tempdir().unwrap();
        let store = WriterHandle::open(incremental.path(), StoreOptions::default()).unwrap();
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
                    params![c.id.id, c.metric, c.unit, c.value, c.time],
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
