//! Notifications by webhook: what other code hands over ([`Notifier::send`])
//! and how it reaches every configured endpoint at least once.
//!
//! What it is for: `config` reads the webhooks file (`--webhooks`,
//! `FLAGS_WEBHOOKS`); `body` renders a notification as JSON or as a
//! Slack-compatible `{"text": ...}` body and signs it; `outbox` is the
//! durable queue, a table in the event database; `deliver` is the worker
//! that posts what is due, off every request path, and retries with
//! backoff. `send` never waits: it hands the notification to the worker's
//! thread, which commits one outbox row per endpoint before any attempt.
//!
//! What it is not: the judge of what is worth notifying (reloads, kills and
//! guardrails call `send`), nor an ordered log: each row is retried on its
//! own, so receivers order by the body's `time` and deduplicate by its `id`.

pub mod body;
pub mod config;
pub mod deliver;
pub mod outbox;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::mpsc::Sender;

use flags_core::Timestamp;
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::error::Error;
use crate::events::EventLog;
use crate::metrics::Metrics;
pub use config::Endpoint;
pub use deliver::Delivery;

/// The kinds of notification, as the body's `type` and the webhooks file's
/// `events` filter name them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
pub enum EventType {
    /// A guardrail's metric crossed its limit and the flag was killed.
    #[serde(rename = "guardrail.tripped")]
    GuardrailTripped,
    /// A guardrail's metric crossed its alert level; nothing was changed.
    #[serde(rename = "guardrail.alert")]
    GuardrailAlert,
    /// A flag was switched off.
    #[serde(rename = "flag.killed")]
    FlagKilled,
    /// A killed flag was switched back on (the recovery notification).
    #[serde(rename = "flag.revived")]
    FlagRevived,
    /// A saved config had problems; some or all of it was not applied.
    #[serde(rename = "config.rejected")]
    ConfigRejected,
}

impl EventType {
    /// The name in bodies and in the webhooks file, e.g. `flag.killed`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::GuardrailTripped => "guardrail.tripped",
            Self::GuardrailAlert => "guardrail.alert",
            Self::FlagKilled => "flag.killed",
            Self::FlagRevived => "flag.revived",
            Self::ConfigRejected => "config.rejected",
        }
    }
}

/// Who or what acted: the file, an admin or a guardrail, the same three
/// that can kill a flag (`admin`, `guardrail:<metric>` or `file` in bodies).
pub use flags_core::KilledBy as Actor;

/// Something that happened to a flag.
#[derive(Clone, Debug, PartialEq)]
pub struct FlagChange {
    /// The flag.
    pub flag: String,
    /// Who or what acted.
    pub actor: Actor,
    /// The figures that decided (a guardrail's metric, its value and limit,
    /// say), as they should appear in the body.
    pub figures: Map<String, Value>,
}

/// A config load that found problems.
#[derive(Clone, Debug, PartialEq)]
pub struct Rejection {
    /// What started the load: `startup`, `watch`, `signal` or `admin`.
    pub trigger: &'static str,
    /// `partial` (valid flags applied) or `failed` (nothing applied).
    pub outcome: &'static str,
    /// Every problem, as `file:line:column: message`.
    pub problems: Vec<String>,
}

/// What other code sends.
#[derive(Clone, Debug, PartialEq)]
pub enum Notification {
    /// See [`EventType::GuardrailTripped`].
    GuardrailTripped(FlagChange),
    /// See [`EventType::GuardrailAlert`].
    GuardrailAlert(FlagChange),
    /// See [`EventType::FlagKilled`].
    FlagKilled(FlagChange),
    /// See [`EventType::FlagRevived`].
    FlagRevived(FlagChange),
    /// See [`EventType::ConfigRejected`]; the actor is the file.
    ConfigRejected(Rejection),
}

impl Notification {
    /// Its type.
    pub fn event_type(&self) -> EventType {
        match self {
            Self::GuardrailTripped(_) => EventType::GuardrailTripped,
            Self::GuardrailAlert(_) => EventType::GuardrailAlert,
            Self::FlagKilled(_) => EventType::FlagKilled,
            Self::FlagRevived(_) => EventType::FlagRevived,
            Self::ConfigRejected(_) => EventType::ConfigRejected,
        }
    }
}

/// A notification as sent: stamped with an id and the time it was sent.
#[derive(Clone, Debug)]
pub struct Envelope {
    /// Unique per notification (the same for every endpoint): receivers
    /// deduplicate on it, since delivery is at least once.
    pub id: String,
    /// When it was sent.
    pub time: Timestamp,
    /// What happened.
    pub notification: Notification,
}

impl Envelope {
    /// Stamps `notification` now with a fresh id.
    pub fn new(notification: Notification) -> Self {
        Self {
            id: format!("{:032x}", fastrand::u128(..)),
            time: Timestamp::now(),
            notification,
        }
    }
}

/// Sends notifications to the configured webhooks (cheap to clone).
#[derive(Clone)]
pub struct Notifier {
    /// The worker's inbox; `None` when no webhook is configured.
    worker: Option<Sender<deliver::Message>>,
    pending: Arc<AtomicU64>,
}

impl Notifier {
    /// A notifier that sends nothing (no webhook configured).
    pub fn disabled() -> Self {
        Self {
            worker: None,
            pending: Arc::default(),
        }
    }

    /// Starts delivering to `endpoints` from the outbox of `events`' store
    /// (in memory, not durably, without one); disabled when `endpoints` is
    /// empty. Must run inside the tokio runtime, which runs the attempts.
    pub fn start(
        endpoints: Vec<Endpoint>,
        events: &EventLog,
        metrics: Arc<Metrics>,
        delivery: Delivery,
    ) -> Result<Self, Error> {
        if endpoints.is_empty() {
            return Ok(Self::disabled());
        }
        let outbox = outbox::Outbox::of(events);
        let names: Vec<&str> = endpoints.iter().map(|e| e.name.as_str()).collect();
        tracing::info!(
            durable = outbox.is_durable(),
            "notifying webhooks {names:?}"
        );
        let pending = Arc::new(AtomicU64::new(0));
        let worker = deliver::start(endpoints, outbox, metrics, delivery, pending.clone())?;
        Ok(Self {
            worker: Some(worker),
            pending,
        })
    }

    /// Queues `notification` for every endpoint that wants its type.
    /// Never waits: the worker commits it to the outbox on its own thread.
    pub fn send(&self, notification: Notification) {
        if let Some(worker) = &self.worker {
            let event = notification.event_type().as_str();
            if worker
                .send(deliver::Message::Send(Envelope::new(notification)))
                .is_err()
            {
                tracing::error!(event, "webhook notification lost: the worker has stopped");
            }
        }
    }

    /// Deliveries in the outbox not yet delivered nor given up.
    pub fn pending(&self) -> u64 {
        self.pending.load(Relaxed)
    }
}

#[cfg(test)]
mod tests;
