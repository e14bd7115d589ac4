//! The SQLite event store: an embedded database in the data directory
//! (`--data DIR`), for a single server.
//!
//! One process writes a data directory (`lock`); the writer thread commits
//! events in groups (`writer`) and keeps per-arm sums up to date as it goes
//! (`aggregates`); readouts read those sums (`reads`); runtime kills,
//! guardrail states and the webhook outbox are tables of the same database
//! (`kills`, `guardrail_checks`, `outbox`), written on a second connection
//! with the same durability; `retention` deletes old raw events; `schema`
//! creates and migrates the tables. Not here: the interface and its types
//! (`crate::store`).

pub mod aggregates;
pub mod guardrail_checks;
pub mod guardrail_trips;
pub mod kills;
pub mod lock;
pub mod outbox;
pub mod reads;
pub mod retention;
pub mod schema;
pub mod writer;

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::Connection;

pub use schema::OpenError;
use writer::WriterHandle;

use super::{
    Answer, ArmSums, Event, EventStore, Exposure, GuardrailRow, GuardrailTrip, Look, LookPoint,
    MetricWindow, PairedSums, Pending, PhaseRecord, PhaseStart, Readouts, RecentUnit, StoreError,
    StoreOptions, Stored, StoredKill, UnitValue, WriteError, WriterHealth,
};

/// Reads the database in a data directory on a connection of its own,
/// without writing to it (a server may be running): `flags results`, and
/// the reads of [`SqliteStore`].
pub struct SqliteReader {
    path: PathBuf,
    connection: Mutex<Connection>,
}

impl SqliteReader {
    /// Opens the database in `dir` for reading; errs if there is none.
    pub fn open(dir: &Path) -> Result<Self, OpenError> {
        Ok(Self {
            path: dir.join(schema::FILE_NAME),
            connection: Mutex::new(schema::open_for_reading(dir)?),
        })
    }

    fn read<T>(
        &self,
        read: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T, StoreError> {
        read(&lock(&self.connection)).map_err(|e| failed(&self.path, e))
    }
}

impl Readouts for SqliteReader {
    fn phases(&self, flag: &str) -> Result<Vec<PhaseRecord>, StoreError> {
        self.read(|c| reads::phases(c, flag))
    }

    fn arm_units(&self, flag: &str, phase: i64) -> Result<Vec<(String, i64)>, StoreError> {
        self.read(|c| reads::arm_units(c, flag, phase))
    }

    fn multiple_exposures(&self, flag: &str, phase: i64) -> Result<i64, StoreError> {
        self.read(|c| reads::multiple_exposures(c, flag, phase))
    }

    fn metric_sums(
        &self,
        flag: &str,
        phase: i64,
        metric: &str,
        window: MetricWindow,
    ) -> Result<Vec<ArmSums>, StoreError> {
        self.read(|c| reads::metric_sums(c, flag, phase, metric, window))
    }

    fn paired_sums(
        &self,
        flag: &str,
        phase: i64,
        end: i64,
        first: UnitValue<'_>,
        second: UnitValue<'_>,
    ) -> Result<Vec<PairedSums>, StoreError> {
        self.read(|c| reads::paired_sums(c, flag, phase, end, first, second))
    }

    fn looks(
        &self,
        flag: &str,
        phase: i64,
        metric: &str,
    ) -> Result<Vec<(String, f64)>, StoreError> {
        self.read(|c| reads::looks(c, flag, phase, metric))
    }

    fn recent_units(
        &self,
        flag: &str,
        phase: i64,
        metric: &str,
        from: i64,
        to: i64,
    ) -> Result<Vec<RecentUnit>, StoreError> {
        self.read(|c| reads::recent_units(c, flag, phase, metric, from, to))
    }

    fn look_history(
        &self,
        flag: &str,
        phase: i64,
        metric: &str,
    ) -> Result<Vec<LookPoint>, StoreError> {
        self.read(|c| reads::look_history(c, flag, phase, metric))
    }

    fn kills(&self) -> Result<Vec<StoredKill>, StoreError> {
        self.read(kills::load)
    }

    fn guardrail_states(&self) -> Result<Vec<GuardrailRow>, StoreError> {
        self.read(guardrail_checks::load)
    }

    fn guardrail_trips(&self) -> Result<Vec<GuardrailTrip>, StoreError> {
        self.read(guardrail_trips::load)
    }
}

/// The store of one server's data directory.
pub struct SqliteStore {
    dir: PathBuf,
    writer: WriterHandle,
    reader: SqliteReader,
    /// Writes other than events': kills, guardrail states, the outbox.
    side: Mutex<Connection>,
}

impl SqliteStore {
    /// Locks `dir` for this process, opens (creating or migrating) the
    /// database in it and starts the writer. Errs with
    /// [`OpenError::InUse`] when another process holds the lock.
    pub fn open(dir: &Path, options: StoreOptions) -> Result<Self, OpenError> {
        // The writer first: it takes the lock before anything is migrated.
        let writer = WriterHandle::open(dir, options)?;
        let side = schema::open_for_writing(dir)?;
        let cutoff = crate::clock::now_ms() - outbox::KEEP_FINISHED_MS;
        outbox::drop_finished(&side, cutoff).map_err(|source| OpenError::Sqlite {
            path: dir.join(schema::FILE_NAME),
            source,
        })?;
        Ok(Self {
            dir: dir.to_path_buf(),
            writer,
            reader: SqliteReader::open(dir)?,
            side: Mutex::new(side),
        })
    }

    fn side<T>(
        &self,
        write: impl FnOnce(&mut Connection) -> rusqlite::Result<T>,
    ) -> Result<T, StoreError> {
        write(&mut lock(&self.side)).map_err(|e| failed(&self.reader.path, e))
    }
}

impl EventStore for SqliteStore {
    fn readouts(&self) -> &dyn Readouts {
        &self.reader
    }

    fn write(&self, events: Vec<Event>) -> Answer<'_, Result<Vec<Stored>, WriteError>> {
        Box::pin(self.writer.write(events))
    }

    fn record_exposure(&self, exposure: Exposure) {
        self.writer.record_exposure(exposure);
    }

    fn start_phases(&self, start: PhaseStart) {
        self.writer.start_phases(start);
    }

    fn record_looks(&self, looks: Vec<Look>) {
        self.writer.record_looks(looks);
    }

    fn health(&self) -> WriterHealth {
        self.writer.health()
    }

    fn retain(&self) -> Option<Duration> {
        self.writer.retain()
    }

    fn location(&self) -> String {
        self.dir.display().to_string()
    }

    fn record_kill(&self, kill: &StoredKill) -> Result<(), StoreError> {
        self.side(|c| kills::record(c, kill))
    }

    fn clear_kill(&self, flag: &str) -> Result<(), StoreError> {
        self.side(|c| kills::clear(c, flag))
    }

    fn save_guardrail_states(&self, rows: &[GuardrailRow]) -> Result<(), StoreError> {
        self.side(|c| guardrail_checks::save(c, rows))
    }

    fn record_guardrail_trip(&self, trip: &GuardrailTrip) -> Result<(), StoreError> {
        self.side(|c| guardrail_trips::record(c, trip))
    }

    fn record_guardrail_revive(&self, flag: &str, by: &str, at: i64) -> Result<(), StoreError> {
        self.side(|c| guardrail_trips::revive(c, flag, by, at))
    }

    fn enqueue_deliveries(
        &self,
        deliveries: &[(&str, String)],
        now: i64,
    ) -> Result<(), StoreError> {
        self.side(|c| outbox::enqueue(c, deliveries, now))
    }

    fn pending_deliveries(&self, limit: usize) -> Result<Vec<Pending>, StoreError> {
        self.side(|c| outbox::pending(c, limit))
    }

    fn outbox_depth(&self) -> Result<u64, StoreError> {
        self.side(|c| outbox::depth(c))
    }

    fn delivered(&self, id: i64, attempts: u32, now: i64) -> Result<(), StoreError> {
        self.side(|c| outbox::delivered(c, id, attempts, now))
    }

    fn retry_at(&self, id: i64, attempts: u32, next: i64, error: &str) -> Result<(), StoreError> {
        self.side(|c| outbox::retry_at(c, id, attempts, next, error))
    }

    fn give_up(&self, id: i64, attempts: u32, now: i64, error: &str) -> Result<(), StoreError> {
        self.side(|c| outbox::give_up(c, id, attempts, now, error))
    }
}

/// A connection's lock; a panic while holding it leaves SQLite consistent
/// (the transaction rolls back), so a poisoned lock is taken all the same.
fn lock(connection: &Mutex<Connection>) -> MutexGuard<'_, Connection> {
    connection.lock().unwrap_or_else(|e| e.into_inner())
}

fn failed(path: &Path, error: rusqlite::Error) -> StoreError {
    StoreError(format!("the event database {}: {error}", path.display()))
}
