//! A writer's health, shared between the handle requests use and the
//! thread that commits: how many events wait, under which ceiling, how
//! many server exposures were dropped, and why the last commit failed.
//!
//! What it is for: bounding what waits for a backend's writer in events
//! (not requests), so that a database slower than the clients costs a
//! bounded amount of memory, and reporting it (`/v1/status`). Not here: the
//! queues themselves (each backend's `writer`).

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::mpsc::{SyncSender, TrySendError};

use super::WriterHealth;

/// The counters (see the module's documentation).
#[derive(Debug, Default)]
pub struct Health {
    /// The last failed commit's (or connection's) error, cleared by the
    /// next success.
    last_error: Mutex<Option<String>>,
    /// Exposures dropped: the queue was full, or the unit key too long.
    dropped_exposures: AtomicU64,
    /// Events handed to the writer and not yet answered.
    queued_events: AtomicUsize,
    /// The ceiling on `queued_events`.
    max_queued_events: usize,
}

impl Health {
    /// Nothing queued, at most `max_queued_events` later.
    pub fn new(max_queued_events: usize) -> Self {
        Self {
            max_queued_events,
            ..Self::default()
        }
    }

    /// Counts `events` as queued, unless that would exceed the ceiling.
    fn reserve(&self, events: usize) -> bool {
        let reserved = self.queued_events.fetch_update(Relaxed, Relaxed, |queued| {
            Some(queued + events).filter(|&total| total <= self.max_queued_events)
        });
        reserved.is_ok()
    }

    /// Counts `events` as no longer queued (answered, or never sent).
    pub fn release(&self, events: usize) {
        self.queued_events.fetch_sub(events, Relaxed);
    }

    /// Hands `job`, of `events` events, to the writer through `queue` if
    /// they fit under the ceiling and the channel has room; gives it back
    /// (`Full`) otherwise, with nothing counted.
    pub fn queue<J>(
        &self,
        queue: &SyncSender<J>,
        job: J,
        events: usize,
    ) -> Result<(), TrySendError<J>> {
        if !self.reserve(events) {
            return Err(TrySendError::Full(job));
        }
        queue.try_send(job).inspect_err(|_| self.release(events))
    }

    /// Counts one exposure the server did not record.
    pub fn drop_exposure(&self) {
        self.dropped_exposures.fetch_add(1, Relaxed);
    }

    /// Events waiting for the writer now.
    pub fn queued_events(&self) -> usize {
        self.queued_events.load(Relaxed)
    }

    /// Records the outcome of a commit (or of a connection attempt); a new
    /// error is logged once, not at every retry.
    pub fn set_last_error(&self, error: Option<String>) {
        let mut last = self.last_error.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(error) = &error
            && last.as_ref() != Some(error)
        {
            tracing::error!("event store: {error}");
        }
        *last = error;
    }

    /// What `/v1/status` shows.
    pub fn report(&self) -> WriterHealth {
        WriterHealth {
            last_error: self
                .last_error
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
            dropped_exposures: self.dropped_exposures.load(Relaxed),
            queued_events: self.queued_events(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_reserved_up_to_the_ceiling_and_released_when_answered() {
        let health = Health::new(5);
        assert!(health.reserve(3));
        assert!(!health.reserve(3), "3 more would make 6");
        assert!(health.reserve(2));
        assert_eq!(health.queued_events(), 5);
        health.release(3);
        assert!(health.reserve(3));
        health.drop_exposure();
        health.set_last_error(Some("disk full".into()));
        assert_eq!(
            health.report(),
            WriterHealth {
                last_error: Some("disk full".into()),
                dropped_exposures: 1,
                queued_events: 5,
            }
        );
        health.set_last_error(None);
        assert_eq!(health.report().last_error, None);
    }
}
