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
//! waiting for an answer. Not here: validating events (`ingest`) or reading
//! them (`analysis`).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, params};
use tokio::sync::oneshot;

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

struct Write {
    events: Vec<Event>,
    /// Where to send the outcome; `None` when nobody waits (exposures).
    reply: Option<oneshot::Sender<Result<Vec<Stored>, String>>>,
}

/// The writer's handle (cheap to share; the thread stops when it is dropped).
pub struct EventStore {
    dir: PathBuf,
    queue: SyncSender<Write>,
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
        let connection = schema::open_for_writing(dir)?;
        let (queue, writes) = sync_channel(QUEUE_CAPACITY);
        let health = Arc::new(Health::default());
        let writer_health = health.clone();
        std::thread::Builder::new()
            .name("event-writer".into())
            .spawn(move || write_groups(connection, &writes, &writer_health))
            .map_err(|source| OpenError::Directory {
                path: dir.to_path_buf(),
                source,
            })?;
        Ok(Self {
            dir: dir.to_path_buf(),
            queue,
            health,
        })
    }

    /// The data directory (readers open their own connections there).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Stores `events`, answering once they are committed.
    pub async fn write(&self, events: Vec<Event>) -> Result<Vec<Stored>, WriteError> {
        let (reply, outcome) = oneshot::channel();
        self.queue
            .try_send(Write {
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
        let write = Write {
            events: vec![Event::Exposure(exposure)],
            reply: None,
        };
        if self.queue.try_send(write).is_err() {
            self.health.dropped_exposures.fetch_add(1, Relaxed);
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

/// The writer thread: commit whatever is queued, answer, repeat.
fn write_groups(mut connection: Connection, writes: &Receiver<Write>, health: &Health) {
    while let Ok(first) = writes.recv() {
        let mut queued = first.events.len();
        let mut group = vec![first];
        while queued < MAX_GROUP_EVENTS {
            match writes.try_recv() {
                Ok(write) => {
                    queued += write.events.len();
                    group.push(write);
                }
                Err(_) => break,
            }
        }
        let outcome = commit(&mut connection, &group);
        *health.last_error.lock().unwrap_or_else(|e| e.into_inner()) =
            outcome.as_ref().err().map(ToString::to_string);
        match outcome {
            Ok(stored) => {
                let mut stored = stored.into_iter();
                for write in group {
                    let mine: Vec<Stored> = stored.by_ref().take(write.events.len()).collect();
                    if let Some(reply) = write.reply {
                        let _ = reply.send(Ok(mine));
                    }
                }
            }
            Err(error) => {
                tracing::error!("event commit failed: {error}");
                for reply in group.into_iter().filter_map(|w| w.reply) {
                    let _ = reply.send(Err(error.to_string()));
                }
            }
        }
    }
}

/// Writes every event of `group` in one transaction.
fn commit(connection: &mut Connection, group: &[Write]) -> rusqlite::Result<Vec<Stored>> {
    let transaction = connection.transaction()?;
    let mut stored = Vec::with_capacity(group.iter().map(|w| w.events.len()).sum());
    {
        // Keeps the earliest exposure when one arrives late (clients batch).
        let mut expose = transaction.prepare_cached(
            "INSERT INTO exposures (flag, unit, variant, time, id) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (flag, unit, variant) DO UPDATE SET time = excluded.time, id = excluded.id
             WHERE excluded.time < exposures.time",
        )?;
        let mut convert = transaction.prepare_cached(
            "INSERT OR IGNORE INTO conversions (id, metric, unit, value, time)
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )?;
        for event in group.iter().flat_map(|w| &w.events) {
            let changed = match event {
                Event::Exposure(e) => {
                    expose.execute(params![e.flag, e.unit, e.variant, e.time, e.id])?
                }
                Event::Conversion(c) => {
                    convert.execute(params![c.id, c.metric, c.unit, c.value, c.time])?
                }
            };
            stored.push(if changed > 0 {
                Stored::New
            } else {
                Stored::Duplicate
            });
        }
    }
    transaction.commit()?;
    Ok(stored)
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
}
