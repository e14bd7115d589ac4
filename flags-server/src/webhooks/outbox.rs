//! Where the delivery worker keeps the deliveries it has still to make: the
//! event store's outbox, durable across restarts, or memory when the server
//! has no store (delivered all the same, lost on restart).
//!
//! Not here: the durable table (`crate::store`), when to attempt
//! (`deliver`) or what the body says (`body`).

use std::sync::{Arc, Mutex, MutexGuard};

use crate::events::EventLog;
use crate::store::{EventStore, Pending, StoreError};

/// The outbox.
pub enum Outbox {
    /// The event store's (durable).
    Store(Arc<dyn EventStore>),
    /// Rows in memory, by id.
    Memory(Mutex<Vec<MemoryRow>>),
}

/// A delivery kept in memory.
pub struct MemoryRow {
    pending: Pending,
    finished: bool,
}

impl Outbox {
    /// The outbox of `events`' store, or one in memory without a store.
    pub fn of(events: &EventLog) -> Self {
        match events.store() {
            Ok(store) => Self::Store(store.clone()),
            Err(reason) => {
                tracing::error!(
                    "webhook notifications are kept in memory only (lost on restart): {reason}"
                );
                Self::Memory(Mutex::default())
            }
        }
    }

    /// Whether committed rows survive a restart.
    pub fn is_durable(&self) -> bool {
        matches!(self, Self::Store(_))
    }

    /// Queues one delivery per (endpoint, body), due at `now`, all or none.
    pub fn enqueue(&self, deliveries: &[(&str, String)], now: i64) -> Result<(), StoreError> {
        match self {
            Self::Store(store) => store.enqueue_deliveries(deliveries, now),
            Self::Memory(rows) => {
                let mut rows = lock(rows);
                for (endpoint, body) in deliveries {
                    let id = rows.len() as i64 + 1;
                    rows.push(MemoryRow {
                        pending: Pending {
                            id,
                            endpoint: endpoint.to_string(),
                            body: body.clone(),
                            attempts: 0,
                            next_attempt_at: now,
                            created_at: now,
                        },
                        finished: false,
                    });
                }
                Ok(())
            }
        }
    }

    /// Up to `limit` pending deliveries, soonest due first.
    pub fn pending(&self, limit: usize) -> Result<Vec<Pending>, StoreError> {
        match self {
            Self::Store(store) => store.pending_deliveries(limit),
            Self::Memory(rows) => {
                let rows = lock(rows);
                let mut pending: Vec<Pending> = rows
                    .iter()
                    .filter(|row| !row.finished)
                    .map(|row| row.pending.clone())
                    .collect();
                pending.sort_by_key(|p| (p.next_attempt_at, p.id));
                pending.truncate(limit);
                Ok(pending)
            }
        }
    }

    /// How many deliveries are pending.
    pub fn depth(&self) -> Result<u64, StoreError> {
        match self {
            Self::Store(store) => store.outbox_depth(),
            Self::Memory(rows) => Ok(lock(rows).iter().filter(|r| !r.finished).count() as u64),
        }
    }

    /// Records a successful attempt, the `attempts`-th.
    pub fn delivered(&self, id: i64, attempts: u32, now: i64) -> Result<(), StoreError> {
        match self {
            Self::Store(store) => store.delivered(id, attempts, now),
            Self::Memory(rows) => update(rows, id, attempts, |row| row.finished = true),
        }
    }

    /// Records a failed attempt, the `attempts`-th, and when to try again.
    pub fn retry_at(
        &self,
        id: i64,
        attempts: u32,
        next: i64,
        error: &str,
    ) -> Result<(), StoreError> {
        match self {
            Self::Store(store) => store.retry_at(id, attempts, next, error),
            Self::Memory(rows) => update(rows, id, attempts, |row| {
                row.pending.next_attempt_at = next;
            }),
        }
    }

    /// Records that no attempt will follow the `attempts`-th, and why.
    pub fn give_up(&self, id: i64, attempts: u32, now: i64, error: &str) -> Result<(), StoreError> {
        match self {
            Self::Store(store) => store.give_up(id, attempts, now, error),
            Self::Memory(rows) => update(rows, id, attempts, |row| row.finished = true),
        }
    }
}

fn lock(rows: &Mutex<Vec<MemoryRow>>) -> MutexGuard<'_, Vec<MemoryRow>> {
    rows.lock().unwrap_or_else(|e| e.into_inner())
}

/// Sets the attempts of row `id` and applies `change` to it (memory
/// cannot fail, as the store's writes can).
fn update(
    rows: &Mutex<Vec<MemoryRow>>,
    id: i64,
    attempts: u32,
    change: impl FnOnce(&mut MemoryRow),
) -> Result<(), StoreError> {
    if let Some(row) = lock(rows).iter_mut().find(|row| row.pending.id == id) {
        row.pending.attempts = attempts;
        change(row);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_memory_outbox_queues_retries_and_finishes_like_the_stores() {
        let outbox = Outbox::Memory(Mutex::default());
        assert!(!outbox.is_durable());
        outbox
            .enqueue(
                &[("a", "1".into()), ("b", "1".into()), ("a", "2".into())],
                100,
            )
            .unwrap();
        let ids: Vec<i64> = outbox.pending(10).unwrap().iter().map(|p| p.id).collect();
        outbox.retry_at(ids[0], 1, 300, "HTTP 500").unwrap();
        let order: Vec<(String, String, u32)> = outbox
            .pending(10)
            .unwrap()
            .into_iter()
            .map(|p| (p.endpoint, p.body, p.attempts))
            .collect();
        assert_eq!(
            order,
            [
                ("b".into(), "1".into(), 0),
                ("a".into(), "2".into(), 0),
                ("a".into(), "1".into(), 1)
            ]
        );
        outbox.delivered(ids[1], 1, 200).unwrap();
        outbox.give_up(ids[2], 1, 200, "HTTP 410").unwrap();
        assert_eq!(outbox.depth().unwrap(), 1);
        assert_eq!(outbox.pending(1).unwrap()[0].id, ids[0]);
    }
}
