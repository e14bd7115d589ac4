//! Retention (`flags serve --retain 90d`): when raw events are old enough to
//! delete, and the schedule on which a backend's writer deletes them, in
//! bounded batches between groups of writes.
//!
//! What every backend deletes, once older than the span (plus
//! [`MARGIN_MS`]): conversions and the ids of client exposures (so an id is
//! deduplicated for one span), and the exposure rows and per-unit totals of
//! analysis phases that ended before then. What it keeps: the per-arm
//! aggregates of every phase, the phases and looks, and the exposure rows
//! and per-unit totals of running phases, which are each unit's state
//! (without its first exposure, a unit exposed again would count twice).
//! Ingestion refuses events older than the span (`crate::events::ingest`),
//! so no event that arrives later needs a deleted one: an exposure
//! recomputes its unit's totals from conversions at or after its own time
//! only. Not here: the deletions themselves (each backend's `retention`).

use std::time::{Duration, Instant};

use crate::clock::now_ms;

/// Most rows one batch deletes: a few milliseconds of the writer's time.
pub const BATCH_ROWS: usize = 5_000;

/// Time between sweeps, once a sweep has nothing more to delete.
const SWEEP_INTERVAL: Duration = Duration::from_secs(60 * 60);

/// What is deleted is older than the span by this much more, so that an
/// event accepted just inside the span and still queued for the writer
/// never finds a conversion it counts already deleted.
pub const MARGIN_MS: i64 = 60 * 60 * 1000;

/// The writer's retention schedule.
pub struct Retention {
    span: Duration,
    next: Instant,
}

impl Retention {
    /// Keeps `span` of raw events; the first sweep is due at once.
    pub fn new(span: Duration) -> Self {
        Self {
            span,
            next: Instant::now(),
        }
    }

    /// Time until the next batch is due (zero: now).
    pub fn wait(&self) -> Duration {
        self.next.saturating_duration_since(Instant::now())
    }

    /// Runs one batch through `prune` (given the cutoff in Unix ms and the
    /// most rows to delete, it answers how many it deleted); the next batch
    /// is due at once if this one was full, else after [`SWEEP_INTERVAL`].
    /// A failure is logged and retried at the next sweep (retention never
    /// stops the writer), and returned for the writer to see whether its
    /// connection is lost.
    pub fn prune_batch<E: std::fmt::Display>(
        &mut self,
        prune: impl FnOnce(i64, usize) -> Result<usize, E>,
    ) -> Result<(), E> {
        let cutoff = earliest_kept(now_ms(), self.span) - MARGIN_MS;
        let pruned = prune(cutoff, BATCH_ROWS);
        match &pruned {
            Ok(BATCH_ROWS) => return Ok(()),
            Ok(0) => {}
            Ok(deleted) => tracing::info!(deleted, "retention: old events deleted"),
            Err(error) => tracing::error!("retention: cannot delete old events: {error}"),
        }
        self.next = Instant::now() + SWEEP_INTERVAL;
        pruned.map(drop)
    }
}

/// The oldest event time (Unix ms) kept at `now_ms` with a span of `span`.
pub fn earliest_kept(now_ms: i64, span: Duration) -> i64 {
    let span_ms = i64::try_from(span.as_millis()).unwrap_or(i64::MAX);
    now_ms.saturating_sub(span_ms)
}

/// `span` as `--retain` would take it: whole days, hours or else seconds.
pub fn describe(span: Duration) -> String {
    let seconds = span.as_secs();
    match seconds {
        s if s > 0 && s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s > 0 && s % 3_600 == 0 => format!("{}h", s / 3_600),
        s => format!("{s}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_batch_is_followed_at_once_and_a_short_one_after_a_sweep_interval() {
        let mut retention = Retention::new(Duration::from_secs(86_400));
        assert!(retention.wait().is_zero(), "due at start");
        assert_eq!(
            retention.prune_batch(|_, limit| Ok::<_, String>(limit)),
            Ok(())
        );
        assert!(retention.wait().is_zero(), "more may be left");
        assert_eq!(retention.prune_batch(|_, _| Ok::<_, String>(3)), Ok(()));
        assert!(retention.wait() > SWEEP_INTERVAL - Duration::from_secs(60));
    }

    #[test]
    fn a_failed_batch_waits_for_the_next_sweep() {
        let mut retention = Retention::new(Duration::from_secs(86_400));
        assert_eq!(
            retention.prune_batch(|_, _| Err("disk I/O error")),
            Err("disk I/O error")
        );
        assert!(retention.wait() > SWEEP_INTERVAL - Duration::from_secs(60));
    }

    #[test]
    fn the_cutoff_is_the_span_and_the_margin_before_now() {
        let mut seen = None;
        let mut retention = Retention::new(Duration::from_secs(86_400));
        let before = now_ms();
        let pruned = retention.prune_batch(|cutoff, _| {
            seen = Some(cutoff);
            Ok::<_, String>(0)
        });
        assert_eq!(pruned, Ok(()));
        let cutoff = seen.unwrap();
        assert!(cutoff >= before - 86_400_000 - MARGIN_MS, "{cutoff}");
        assert!(cutoff <= now_ms() - 86_400_000 - MARGIN_MS, "{cutoff}");
    }

    #[test]
    fn spans_are_described_as_given() {
        assert_eq!(describe(Duration::from_secs(90 * 86_400)), "90d");
        assert_eq!(describe(Duration::from_secs(12 * 3_600)), "12h");
        assert_eq!(describe(Duration::from_secs(90)), "90s");
    }
}
