//! The store's connections: made on demand (the database may be down when
//! the server starts, or go away later), migrated by the first one, and a
//! few kept idle for the reads and side writes (kills, guardrail states,
//! the outbox). The writer makes its own connection the same way and keeps it.
//!
//! An idle connection is checked (one round trip) before it is handed out,
//! so a call after the database restarted reconnects instead of failing on
//! a dead socket. The lock on the idle list is never held across a network
//! call. What it is not: what the connections run.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use postgres::Client;

use super::connect::Target;
use super::schema;
use crate::store::StoreError;

/// Most idle connections kept.
const MAX_IDLE: usize = 4;

/// How long the check of an idle connection may take.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// The database and the connections to it.
pub struct Database {
    target: Target,
    /// Whether this process has brought the schema up to date.
    migrated: AtomicBool,
    idle: Mutex<Vec<Client>>,
}

impl Database {
    /// The database at `target`, not connected yet.
    pub fn new(target: Target) -> Self {
        Self {
            target,
            migrated: AtomicBool::new(false),
            idle: Mutex::default(),
        }
    }

    /// See [`Target::location`].
    pub fn location(&self) -> &str {
        self.target.location()
    }

    /// `error` in words, naming the database.
    pub fn describe(&self, error: &postgres::Error) -> String {
        self.target.describe(error)
    }

    /// A new connection to a migrated schema, or why there is none.
    pub fn connect(&self) -> Result<Client, String> {
        let mut client = self.target.connect()?;
        if !self.migrated.load(Ordering::Acquire) {
            schema::migrate(&mut client)
                .map_err(|e| format!("PostgreSQL {}: {e}", self.location()))?;
            self.migrated.store(true, Ordering::Release);
        }
        Ok(client)
    }

    /// Runs `work` on an idle connection, or a new one; errors name the database.
    pub fn with_client<T>(
        &self,
        work: impl FnOnce(&mut Client) -> Result<T, postgres::Error>,
    ) -> Result<T, StoreError> {
        let mut client = self.checked_out().map_err(StoreError)?;
        let result = work(&mut client);
        if !client.is_closed() {
            let mut idle = self.idle();
            if idle.len() < MAX_IDLE {
                idle.push(client);
            }
        }
        result.map_err(|e| StoreError(self.describe(&e)))
    }

    /// An idle connection that still answers, else a new one.
    fn checked_out(&self) -> Result<Client, String> {
        loop {
            let Some(mut client) = self.idle().pop() else {
                return self.connect();
            };
            if client.is_valid(CHECK_TIMEOUT).is_ok() {
                return Ok(client);
            }
        }
    }

    fn idle(&self) -> std::sync::MutexGuard<'_, Vec<Client>> {
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for Database {
    /// Closes the idle connections on a thread of their own: closing one
    /// runs the driver's own runtime, which panics inside an async task,
    /// where the last handle of a store may well be dropped.
    fn drop(&mut self) {
        let idle = std::mem::take(&mut *self.idle());
        if !idle.is_empty() {
            let _ = std::thread::Builder::new()
                .name("postgres-close".into())
                .spawn(move || drop(idle));
        }
    }
}
