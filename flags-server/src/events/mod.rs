//! Experiment events: exposures and conversions, what a server accepts of
//! them and what it reads out of them.
//!
//! What it is for: deciding which events are valid against the served
//! config (`ingest`); reading an experiment out of the event store through
//! `flags_core::stats::analyze` (`analysis`); and holding the server's
//! event store, or the reason it has none ([`EventLog`]).
//!
//! What it is not: the storage itself (`crate::store`, with its SQLite and
//! PostgreSQL backends). Flags never depend on it: if the store cannot be
//! opened (unwritable directory, corrupt file, full disk) the server still
//! starts and serves flags, reports the reason in `/v1/status`, and answers
//! event requests with 503 and that reason. The one exception is a data
//! directory another server writes to: that server refuses to start.

pub mod analysis;
pub mod ingest;

use std::path::Path;
use std::sync::Arc;

use serde::Serialize;

use crate::store::postgres::PostgresStore;
use crate::store::sqlite::{OpenError, SqliteStore};
use crate::store::{EventStore, StoreError, StoreOptions};

/// The event store, or why there is none.
#[derive(Clone)]
pub enum EventLog {
    /// Open and writing.
    Open(Arc<dyn EventStore>),
    /// Could not be opened at startup; flags are served regardless.
    Unavailable(String),
}

impl EventLog {
    /// Opens the SQLite store in `dir`, or records why it cannot be. Errs
    /// only when another process holds `dir`'s writer lock
    /// ([`OpenError::InUse`]): two writers must not share a database.
    pub fn open_sqlite(dir: &Path, options: StoreOptions) -> Result<Self, OpenError> {
        match SqliteStore::open(dir, options) {
            Ok(store) => Ok(Self::Open(Arc::new(store))),
            Err(error @ OpenError::InUse { .. }) => Err(error),
            Err(error) => {
                tracing::error!("events are not recorded: {error}");
                Ok(Self::Unavailable(error.to_string()))
            }
        }
    }

    /// The PostgreSQL store at `url`, shared with other servers. Errs only
    /// for a URL that cannot be used: the database itself is reached in the
    /// background, and until it is, events are refused with the reason.
    pub fn open_postgres(url: &str, options: StoreOptions) -> Result<Self, StoreError> {
        let store = PostgresStore::open(url, options)?;
        tracing::info!("events are stored in {}", store.location());
        Ok(Self::Open(Arc::new(store)))
    }

    /// The store, or the reason it is unavailable.
    pub fn store(&self) -> Result<&Arc<dyn EventStore>, &str> {
        match self {
            Self::Open(store) => Ok(store),
            Self::Unavailable(reason) => Err(reason),
        }
    }

    /// What `/v1/status` shows.
    pub fn status(&self) -> EventLogStatus {
        match self {
            Self::Open(store) => {
                let health = store.health();
                EventLogStatus {
                    available: health.last_error.is_none(),
                    error: health.last_error,
                    dropped_exposures: health.dropped_exposures,
                    queued_events: health.queued_events,
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
