//! Experiment events: exposures and conversions, stored durably in an
//! embedded SQLite database under the data directory (`--data`).
//!
//! What it is for: accepting events (`POST /v1/events`, and the exposures the
//! server records when it evaluates an enrolled unit) and acknowledging them
//! only once committed (`store`); deciding which events are valid against
//! the served config (`ingest`); keeping per-arm sufficient statistics up to
//! date as events are written (`aggregates`); reading them out through
//! `flags_core::stats::analyze` (`analysis`); and deleting raw events past
//! `--retain` without changing readouts (`retention`). The schema and its
//! migrations are in `schema`; the data directory's one-writer lock in
//! `lock`. The same database keeps the runtime kills (`kills`), so that a kill survives
//! a restart wherever events do.
//!
//! What it is not: a general event pipeline. Flags never depend on it: if the
//! store cannot be opened (unwritable directory, corrupt file, full disk) the
//! server still starts and serves flags, reports the reason in `/v1/status`,
//! and answers event requests with 503 and that reason. The one exception is
//! a data directory another server writes to: that server refuses to start.

pub mod aggregates;
pub mod analysis;
pub mod ingest;
pub mod kills;
pub mod lock;
pub mod retention;
pub mod schema;
pub mod store;

use std::path::Path;

use serde::Serialize;

pub use schema::OpenError;
pub use store::{EventStore, Exposure, StoreOptions, WriteError};

/// The event store, or why there is none.
pub enum EventLog {
    /// Open and writing.
    Open(EventStore),
    /// Could not be opened at startup; flags are served regardless.
    Unavailable(String),
}

impl EventLog {
    /// Opens the store in `dir`, or records why it cannot be. Errs only
    /// when another process holds `dir`'s writer lock
    /// ([`OpenError::InUse`]): two writers must not share a database.
    pub fn open(dir: &Path, options: StoreOptions) -> Result<Self, OpenError> {
        match EventStore::open(dir, options) {
            Ok(store) => Ok(Self::Open(store)),
            Err(error @ OpenError::InUse { .. }) => Err(error),
            Err(error) => {
                tracing::error!("events are not recorded: {error}");
                Ok(Self::Unavailable(error.to_string()))
            }
        }
    }

    /// The store, or the reason it is unavailable.
    pub fn store(&self) -> Result<&EventStore, &str> {
        match self {
            Self::Open(store) => Ok(store),
            Self::Unavailable(reason) => Err(reason),
        }
    }

    /// What `/v1/status` shows.
    pub fn status(&self) -> EventLogStatus {
        match self {
            Self::Open(store) => {
                let error = store.last_error();
                EventLogStatus {
                    available: error.is_none(),
                    error,
                    dropped_exposures: store.dropped_exposures(),
                    queued_events: store.queued_events(),
                }
            }
            Self::Unavailable(reason) => EventLogStatus {
                available: false,
                error: Some(reason.clone()),
                dropped_exposures: 0,
                queued_events: 0,
            },
        }
    }
}

/// The event store's health.
#[derive(Serialize)]
pub struct EventLogStatus {
    /// Whether events are being stored.
    pub available: bool,
    /// Why not, when not (startup failure or the last failed commit).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Exposures the server did not record: the writer was saturated, or
    /// the unit key was longer than 256 bytes.
    pub dropped_exposures: u64,
    /// Events waiting for the writer (at most `--max-queued-events`).
    pub queued_events: usize,
}
