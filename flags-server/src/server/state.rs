//! The HTTP layer's state, in one place: what handlers need to answer
//! requests (the live config, tokens, limits, metrics, the reloader, the
//! event log, kills, webhooks, guardrails) and the evaluation clock.
//!
//! Not here: the config lifecycle, what is published and how
//! (`crate::live`), building configs (`reload`), deciding and storing kills
//! (`crate::kills`) or answering requests (handlers).

use std::sync::Arc;
use std::time::Duration;

use flags_core::Context;
use tokio::sync::{Semaphore, watch};

use crate::clock::now_ms;
use crate::context::ContextLimits;
use crate::events::EventLog;
use crate::guardrails::Guardrails;
use crate::kills::Kills;
use crate::live::{Evaluated, LiveConfig, Published};
use crate::metrics::Metrics;
use crate::reload::Reloader;
use crate::store::Exposure;
use crate::tokens::Tokens;
use crate::webhooks::Notifier;

/// Request limits.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Largest evaluation body, in bytes.
    pub max_body: usize,
    /// Largest `POST /v1/events` body, in bytes.
    pub max_events_body: usize,
    /// Bounds on the evaluation context.
    pub context: ContextLimits,
    /// Time to send headers, and separately the body.
    pub client_timeout: Duration,
}

/// Shared by every handler (cheap to clone).
pub type AppState = Arc<ServerState>;

/// Everything handlers read.
pub struct ServerState {
    /// The live config and its history.
    pub live: Arc<LiveConfig>,
    /// Counters and histograms.
    pub metrics: Arc<Metrics>,
    /// Who may do what.
    pub tokens: Tokens,
    /// Request limits.
    pub limits: Limits,
    /// Asks for a reload (admin endpoint).
    pub reloader: Reloader,
    /// Where experiment events go, or why they cannot.
    pub events: EventLog,
    /// Whether bulk evaluations record exposures too (`--bulk-exposures`);
    /// by default only single-flag evaluations do, as a prefetch is not a use.
    pub bulk_exposures: bool,
    /// Kills and revives through the admin API, and where they are stored.
    pub kills: Kills,
    /// Evaluation requests allowed in flight; beyond that, 429.
    pub in_flight: Arc<Semaphore>,
    /// `POST /v1/events` requests allowed in flight; beyond that, 429. A
    /// pool apart from evaluations': an events request holds a body up to
    /// `--max-events-body` until its commit, so sharing would let a burst
    /// of events shed evaluations, which never depend on the event store.
    pub events_in_flight: Arc<Semaphore>,
    /// Open event streams allowed; beyond that, 429.
    pub streams: Arc<Semaphore>,
    /// Public base URL for the event stream, if configured.
    pub public_url: Option<String>,
    /// Interval between SSE keep-alive comments.
    pub sse_keepalive: Duration,
    /// Turns true when the server starts draining.
    pub shutdown: watch::Receiver<bool>,
    /// The instant evaluations are made at.
    pub clock: Clock,
    /// Sends webhook notifications (kills, revivals, guardrails).
    pub notifier: Notifier,
    /// The guardrails' states, checked on a timer.
    pub guardrails: Guardrails,
}

/// Where evaluations get "now" from.
#[derive(Clone, Copy, Debug)]
pub enum Clock {
    /// The system clock (the normal case).
    System,
    /// A fixed instant (`flags serve --at`): previews what a schedule or a
    /// `before`/`after` condition will serve then, and makes answers
    /// reproducible for conformance tests.
    Fixed(flags_core::Timestamp),
}

impl Clock {
    /// The evaluation instant.
    pub fn now(self) -> flags_core::Timestamp {
        match self {
            Self::System => flags_core::Timestamp::now(),
            Self::Fixed(at) => at,
        }
    }
}

impl ServerState {
    /// Records the exposure of `ctx`'s unit (the flag's `bucket_by` value,
    /// else the targeting key) when `evaluated` enrolled it in an experiment
    /// or a guardrail's comparison, under the arm it counts in. Never waits:
    /// evaluations do not depend on the event store.
    pub fn record_exposure(
        &self,
        published: &Published,
        evaluated: &Evaluated<'_>,
        ctx: &Context<'_>,
    ) {
        let evaluation = &evaluated.evaluation;
        if !evaluation.enrolled {
            return;
        }
        let unit = published
            .snapshot
            .flag(evaluated.key)
            .and_then(|f| f.unit(ctx));
        if let (Ok(store), Some(unit), Some(arm)) = (self.events.store(), unit, evaluation.arm) {
            store.record_exposure(Exposure {
                id: None,
                flag: evaluated.key.into(),
                variant: arm.into(),
                unit: unit.into(),
                time: now_ms(),
            });
        }
    }
}

impl crate::guardrails::CheckContext for ServerState {
    fn guardrails(&self) -> &Guardrails {
        &self.guardrails
    }

    fn live(&self) -> &LiveConfig {
        &self.live
    }

    fn events(&self) -> &EventLog {
        &self.events
    }

    fn kills(&self) -> &Kills {
        &self.kills
    }

    fn notifier(&self) -> &Notifier {
        &self.notifier
    }
}
