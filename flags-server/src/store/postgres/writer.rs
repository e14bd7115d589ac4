//! The writer: one thread per process owns a connection and commits the
//! queued events in groups, as the SQLite writer does.
//!
//! Requests hand their events through a bounded channel (bounded in
//! events: beyond `StoreOptions::max_queued_events` a request is refused
//! at once, `WriteError::Busy`); the writer drains what has queued up (up
//! to [`MAX_GROUP_EVENTS`]) into one transaction (`group`), commits, then
//! answers each request. Server-recorded exposures and looks ride along
//! without an answer; phase starts wait in a channel of their own and go
//! first in the next group (kept for the one after if a commit fails).
//!
//! A group whose transaction fails for another reason than a lost
//! connection is split in halves, each retried in its own transaction,
//! down to single requests: a request that cannot be written is refused
//! alone, and the others are stored. The database being unreachable never
//! stops the thread: the connection is made on demand and again after it
//! is lost (each group tries; idle, every [`RECONNECT_INTERVAL`]), and
//! until then every request is answered with the reason. Retention prunes
//! one bounded batch between groups when due (`retention`). Not here:
//! what a group writes (`group`).

use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::Duration;

use postgres::Client;

use super::group;
use super::job::{Job, Outcome};
use super::outbox;
use super::pool::Database;
use super::prepared::Prepared;
use crate::store::PhaseStart;
use crate::store::health::Health;
use crate::store::retention::Retention;

/// Writes queued before senders are turned away (a request is one write),
/// a backstop behind the bound in events.
pub const QUEUE_CAPACITY: usize = 8192;

/// Most events committed in one transaction; a longer queue takes several.
const MAX_GROUP_EVENTS: usize = 20_000;

/// How often an idle writer without a connection tries again.
const RECONNECT_INTERVAL: Duration = Duration::from_secs(2);

/// The writer's ends of the channels, and what it needs to write.
pub struct Writer {
    /// Jobs, in order.
    pub jobs: Receiver<Job>,
    /// Phase starts, in order.
    pub started: Receiver<PhaseStart>,
    /// Shared with the handles.
    pub health: Arc<Health>,
    /// Where to connect.
    pub database: Arc<Database>,
    /// What `--retain` prunes, between groups; `None` keeps everything.
    pub retention: Option<Retention>,
}

/// The writer's connection, made on demand.
#[derive(Default)]
struct Connection {
    client: Option<Client>,
    /// The statements prepared on it.
    prepared: Prepared,
    /// Whether this writer has connected once (and so done its startup chores).
    ever: bool,
}

impl Writer {
    /// Commits whatever is queued, answers, repeats, until every handle is
    /// dropped. Connects at once, so that the schema is migrated and the
    /// health known before the first request.
    pub fn run(mut self) {
        let mut connection = Connection::default();
        let mut starts = Vec::new();
        while let Some(first) = self.next_job(&mut connection) {
            starts.extend(self.started.try_iter());
            let group = self.group(first);
            let events = group.iter().map(Job::event_count).sum();
            let outcomes = self.commit(&mut connection, &mut starts, &group);
            for (job, outcome) in group.into_iter().zip(outcomes) {
                job.answer(outcome);
            }
            // The group's events are answered and dropped: room for more.
            self.health.release(events);
        }
    }

    /// The next job, or `None` once every handle is dropped; meanwhile,
    /// connects when not connected and prunes when retention is due.
    fn next_job(&mut self, connection: &mut Connection) -> Option<Job> {
        loop {
            let wait = match (self.connect(connection), &mut self.retention) {
                (Err(_), _) => Some(RECONNECT_INTERVAL),
                (Ok(()), None) => None,
                (Ok(()), Some(retention)) => {
                    if retention.wait().is_zero()
                        && let Some(client) = &mut connection.client
                        && let Err(error) = retention.prune_batch(|cutoff, limit| {
                            super::retention::prune(client, cutoff, limit)
                        })
                    {
                        self.lost_if_closed(connection, &error);
                    }
                    self.retention.as_ref().map(Retention::wait)
                }
            };
            let Some(wait) = wait else {
                return self.jobs.recv().ok();
            };
            match self.jobs.recv_timeout(wait) {
                Ok(job) => return Some(job),
                Err(RecvTimeoutError::Disconnected) => return None,
                Err(RecvTimeoutError::Timeout) => {}
            }
        }
    }

    /// `first` and whatever else is queued, up to [`MAX_GROUP_EVENTS`].
    fn group(&self, first: Job) -> Vec<Job> {
        let mut queued = first.event_count();
        let mut group = vec![first];
        while queued < MAX_GROUP_EVENTS {
            match self.jobs.try_recv() {
                Ok(job) => {
                    queued += job.event_count();
                    group.push(job);
                }
                Err(_) => break,
            }
        }
        group
    }

    /// Connects now if not connected.
    fn connect(&self, connection: &mut Connection) -> Result<(), String> {
        if connection.client.is_some() {
            return Ok(());
        }
        match self.database.connect().and_then(|client| {
            group::prepare_session(client).map_err(|e| self.database.describe(&e))
        }) {
            Ok(mut client) => {
                if !connection.ever {
                    outbox::drop_finished(&mut client, &self.database);
                    connection.ever = true;
                }
                self.health.set_last_error(None);
                connection.client = Some(client);
                connection.prepared.clear();
                Ok(())
            }
            Err(reason) => {
                self.health.set_last_error(Some(reason.clone()));
                Err(reason)
            }
        }
    }

    /// Forgets the connection if `error` lost it; returns whether it did.
    fn lost_if_closed(&self, connection: &mut Connection, error: &postgres::Error) -> bool {
        let closed = connection.client.as_ref().is_none_or(Client::is_closed);
        if closed {
            connection.client = None;
            self.health
                .set_last_error(Some(self.database.describe(error)));
        }
        closed
    }

    /// Commits `group`, halving it on failure until each request that
    /// cannot be written fails alone; returns one outcome per job.
    fn commit(
        &self,
        connection: &mut Connection,
        starts: &mut Vec<PhaseStart>,
        group: &[Job],
    ) -> Vec<Outcome> {
        let mut outcomes = Vec::with_capacity(group.len());
        let mut failures = 0;
        let mut pending = vec![group];
        while let Some(jobs) = pending.pop() {
            let committed = match self.connect(connection) {
                Ok(()) => {
                    let Connection {
                        client: Some(client),
                        prepared,
                        ..
                    } = connection
                    else {
                        unreachable!("connected just above");
                    };
                    let committed = group::commit(client, prepared, starts, jobs);
                    if committed.is_err() {
                        prepared.clear();
                    }
                    committed
                }
                Err(reason) => {
                    outcomes.extend(jobs.iter().map(|_| Err(reason.clone())));
                    failures += jobs.len();
                    continue;
                }
            };
            match committed {
                Ok(stored) => {
                    starts.clear();
                    outcomes.extend(stored.into_iter().map(Ok));
                }
                Err(error) if self.lost_if_closed(connection, &error) => {
                    let reason = self.database.describe(&error);
                    outcomes.extend(jobs.iter().map(|_| Err(reason.clone())));
                    failures += jobs.len();
                }
                Err(error) if jobs.len() == 1 => {
                    let reason = self.database.describe(&error);
                    tracing::error!("events of one request not stored: {reason}");
                    outcomes.push(Err(reason));
                    failures += 1;
                }
                Err(_) => {
                    let (first, second) = jobs.split_at(jobs.len() / 2);
                    pending.push(second);
                    pending.push(first);
                }
            }
        }
        if failures < group.len() {
            self.health.set_last_error(None);
        } else if let Some(Err(reason)) = outcomes.last() {
            self.health.set_last_error(Some(reason.clone()));
        }
        outcomes
    }
}
