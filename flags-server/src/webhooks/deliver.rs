//! The delivery worker: queues what `Notifier::send` hands over, posts
//! whatever is due, and retries with exponential backoff.
//!
//! One thread owns the outbox (the event store's, so it blocks, and never on the async
//! executor). It commits each notification's rows before any attempt, then
//! starts an attempt per due row as a task on the tokio runtime, off every
//! request path, and sleeps until a message (a notification, an attempt's
//! result) arrives or the next row falls due. On start it finds the rows
//! left pending by the previous process: delivery resumes across restarts.
//!
//! An attempt is a POST with `content-type: application/json` and, with a
//! secret, `X-Flags-Signature`; it has [`Delivery::timeout`] (5 s) to be
//! answered. A 2xx is delivered. A network error, a timeout, a 5xx, 408 or
//! 429 is retried after 1 s, 2 s, 4 s, ... at most 10 min apart (each wait
//! drawn between half and all of that, so servers that failed together do
//! not retry together), until 24 h after the notification was queued; then
//! it is given up. Any other answer (3xx: redirects are not followed; other
//! 4xx: the receiver refuses this request, and resending it will not change
//! that) is given up at once, as `failed`. Not here: the rows (`outbox`) or
//! the bodies (`body`).

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::CONTENT_TYPE;

use super::Envelope;
use super::body::{self, SIGNATURE_HEADER};
use super::config::Endpoint;
use super::outbox::Outbox;
use crate::clock::now_ms;
use crate::error::{Error, with_causes};
use crate::metrics::{DeliveryOutcome, Metrics, Queued};
use crate::store::{Pending, StoreError};

/// Attempts in flight at once; further due rows wait for one to finish.
const MAX_IN_FLIGHT: usize = 32;

/// How long to wait before looking again when the outbox cannot be read.
const OUTBOX_ERROR_PAUSE: Duration = Duration::from_secs(1);

/// Timing of attempts and retries.
#[derive(Clone, Copy, Debug)]
pub struct Delivery {
    /// Wait before the first retry; doubles with each failed attempt.
    pub backoff: Duration,
    /// Longest wait between two attempts.
    pub max_backoff: Duration,
    /// How long after queueing a delivery is given up.
    pub give_up_after: Duration,
    /// Time an attempt has to be answered.
    pub timeout: Duration,
}

impl Default for Delivery {
    fn default() -> Self {
        Self {
            backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(10 * 60),
            give_up_after: Duration::from_secs(24 * 60 * 60),
            timeout: Duration::from_secs(5),
        }
    }
}

impl Delivery {
    /// When to try again (Unix ms) after the `attempts`-th attempt failed
    /// at `now`, for a delivery queued at `created_at`; `None` once that
    /// would be past [`Self::give_up_after`]. `jitter` in [0, 1) picks the
    /// wait between half and all of the backoff.
    fn next_attempt(&self, attempts: u32, created_at: i64, now: i64, jitter: f64) -> Option<i64> {
        let doublings = attempts.saturating_sub(1).min(31);
        let backoff = self
            .backoff
            .saturating_mul(1 << doublings)
            .min(self.max_backoff);
        let wait = backoff.mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0));
        let next = now.saturating_add(wait.as_millis() as i64);
        let deadline = created_at.saturating_add(self.give_up_after.as_millis() as i64);
        (next <= deadline).then_some(next)
    }
}

/// What an attempt's answer means.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Verdict {
    /// 2xx.
    Delivered,
    /// Worth trying again: network error, timeout, 5xx, 408, 429.
    Retry(String),
    /// Not worth trying again: any other status.
    Refused(String),
}

impl Verdict {
    fn of(answer: Result<StatusCode, reqwest::Error>) -> Self {
        match answer {
            Ok(status) if status.is_success() => Self::Delivered,
            Ok(status)
                if status.is_server_error()
                    || status == StatusCode::TOO_MANY_REQUESTS
                    || status == StatusCode::REQUEST_TIMEOUT =>
            {
                Self::Retry(format!("HTTP {}", status.as_u16()))
            }
            Ok(status) => Self::Refused(format!("HTTP {}", status.as_u16())),
            Err(error) => Self::Retry(describe(error)),
        }
    }
}

/// A network error and its causes, without the URL (a credential).
fn describe(error: reqwest::Error) -> String {
    if error.is_timeout() {
        return "no answer in time".into();
    }
    with_causes(&error.without_url())
}

/// What the worker's thread receives.
pub(super) enum Message {
    /// A notification to queue.
    Send(Envelope),
    /// An attempt ended.
    Attempted {
        row: Pending,
        endpoint: Arc<Endpoint>,
        verdict: Verdict,
    },
}

/// Starts the worker's thread; returns its inbox. Needs a tokio runtime.
pub(super) fn start(
    endpoints: Vec<Endpoint>,
    outbox: Outbox,
    metrics: Arc<Metrics>,
    delivery: Delivery,
    pending: Arc<AtomicU64>,
) -> Result<Sender<Message>, Error> {
    let runtime = tokio::runtime::Handle::try_current()
        .map_err(|e| Error::Serve(format!("webhooks need the async runtime: {e}")))?;
    // Needs the TLS provider `main` installs (`crate::install_tls_provider`).
    let client = reqwest::Client::builder()
        .timeout(delivery.timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("flags/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| Error::Serve(format!("cannot start the webhook client: {e}")))?;
    let (inbox, messages) = channel();
    let worker = Worker {
        endpoints: endpoints.into_iter().map(Arc::new).collect(),
        outbox,
        client,
        runtime,
        delivery,
        metrics,
        pending,
        in_flight: HashSet::new(),
        unrecorded: HashSet::new(),
        results: inbox.clone(),
    };
    std::thread::Builder::new()
        .name("webhooks".into())
        .spawn(move || worker.run(messages))
        .map_err(|e| Error::Serve(format!("cannot start the webhook thread: {e}")))?;
    Ok(inbox)
}

struct Worker {
    endpoints: Vec<Arc<Endpoint>>,
    outbox: Outbox,
    client: reqwest::Client,
    runtime: tokio::runtime::Handle,
    delivery: Delivery,
    metrics: Arc<Metrics>,
    /// The outbox depth, for `/metrics`.
    pending: Arc<AtomicU64>,
    /// Rows being attempted.
    in_flight: HashSet<i64>,
    /// Rows whose last outcome could not be written: not attempted again
    /// by this process (the next one will, as the row is still pending).
    unrecorded: HashSet<i64>,
    /// Where attempts report (the worker's own inbox).
    results: Sender<Message>,
}

impl Worker {
    fn run(mut self, messages: Receiver<Message>) {
        loop {
            let wake = self.start_due();
            match self.outbox.depth() {
                Ok(depth) => self.pending.store(depth, Relaxed),
                Err(e) => tracing::error!("webhook outbox: cannot count pending deliveries: {e}"),
            }
            let message = match wake {
                Some(wait) => match messages.recv_timeout(wait) {
                    Ok(message) => message,
                    Err(RecvTimeoutError::Timeout) => continue,
                    Err(RecvTimeoutError::Disconnected) => return,
                },
                None => match messages.recv() {
                    Ok(message) => message,
                    Err(_) => return,
                },
            };
            match message {
                Message::Send(envelope) => self.enqueue(&envelope),
                Message::Attempted {
                    row,
                    endpoint,
                    verdict,
                } => self.record(&row, &endpoint, verdict),
            }
        }
    }

    /// Starts every due row there is room for; returns how long until the
    /// next row falls due, `None` when only a message can change anything.
    fn start_due(&mut self) -> Option<Duration> {
        let limit = MAX_IN_FLIGHT + self.in_flight.len() + self.unrecorded.len();
        let rows = match self.outbox.pending(limit) {
            Ok(rows) => rows,
            Err(e) => {
                tracing::error!("webhook outbox: cannot read pending deliveries: {e}");
                return Some(OUTBOX_ERROR_PAUSE);
            }
        };
        let now = now_ms();
        for row in rows {
            if self.in_flight.contains(&row.id) || self.unrecorded.contains(&row.id) {
                continue;
            }
            if row.next_attempt_at > now {
                return Some(Duration::from_millis((row.next_attempt_at - now) as u64));
            }
            if self.in_flight.len() >= MAX_IN_FLIGHT {
                return None;
            }
            self.begin(row);
        }
        None
    }

    /// Starts an attempt at `row`, or gives it up if its endpoint is gone.
    fn begin(&mut self, row: Pending) {
        let Some(endpoint) = self.endpoints.iter().find(|e| e.name == row.endpoint) else {
            tracing::warn!(
                webhook = %row.endpoint,
                "giving up a delivery: no webhook has this name in the webhooks file any more"
            );
            let written = self.outbox.give_up(
                row.id,
                row.attempts,
                now_ms(),
                "no webhook has this name any more",
            );
            self.count(row.id, DeliveryOutcome::GivenUp, written);
            return;
        };
        self.in_flight.insert(row.id);
        let (endpoint, client, results) =
            (endpoint.clone(), self.client.clone(), self.results.clone());
        self.runtime.spawn(async move {
            let verdict = attempt(&client, &endpoint, row.body.clone()).await;
            // Only fails once the worker is gone, i.e. at exit; the row is
            // still pending then and is attempted again after the restart.
            let _ = results.send(Message::Attempted {
                row,
                endpoint,
                verdict,
            });
        });
    }

    /// Queues `envelope` for every endpoint that wants it, in one commit.
    fn enqueue(&mut self, envelope: &Envelope) {
        let event = envelope.notification.event_type();
        let deliveries: Vec<(&str, String)> = self
            .endpoints
            .iter()
            .filter(|e| e.wants(event))
            .map(|e| (e.name.as_str(), body::render(envelope, e.format)))
            .collect();
        if deliveries.is_empty() {
            return;
        }
        let queued = match self.outbox.enqueue(&deliveries, now_ms()) {
            Ok(()) if self.outbox.is_durable() => Queued::Durable,
            Ok(()) => Queued::Memory,
            Err(e) => {
                tracing::error!(
                    event = event.as_str(),
                    id = %envelope.id,
                    "webhook notification lost: cannot queue it: {e}"
                );
                Queued::Lost
            }
        };
        self.metrics.record_queued(queued, deliveries.len());
    }

    /// Writes down how the attempt at `row` ended, and what follows.
    fn record(&mut self, row: &Pending, endpoint: &Endpoint, verdict: Verdict) {
        self.in_flight.remove(&row.id);
        let (now, attempts) = (now_ms(), row.attempts + 1);
        let webhook = endpoint.name.as_str();
        let (outcome, written) = match verdict {
            Verdict::Delivered => {
                tracing::info!(webhook, attempts, "webhook delivered");
                let written = self.outbox.delivered(row.id, attempts, now);
                (DeliveryOutcome::Delivered, written)
            }
            Verdict::Refused(reason) => {
                tracing::warn!(webhook, attempts, "webhook refused ({reason}); not retried");
                let written = self.outbox.give_up(row.id, attempts, now, &reason);
                (DeliveryOutcome::Failed, written)
            }
            Verdict::Retry(reason) => {
                let jitter = fastrand::f64();
                match self
                    .delivery
                    .next_attempt(attempts, row.created_at, now, jitter)
                {
                    Some(next) => {
                        tracing::warn!(
                            webhook,
                            attempts,
                            "webhook attempt failed ({reason}); retrying in {} ms",
                            next - now
                        );
                        let written = self.outbox.retry_at(row.id, attempts, next, &reason);
                        (DeliveryOutcome::Retried, written)
                    }
                    None => {
                        tracing::error!(
                            webhook,
                            attempts,
                            "webhook attempt failed ({reason}); giving up after {:?}",
                            self.delivery.give_up_after
                        );
                        let written = self.outbox.give_up(row.id, attempts, now, &reason);
                        (DeliveryOutcome::GivenUp, written)
                    }
                }
            }
        };
        self.count(row.id, outcome, written);
    }

    /// Counts `outcome`; if it could not be written, stops attempting the row.
    fn count(&mut self, id: i64, outcome: DeliveryOutcome, written: Result<(), StoreError>) {
        self.metrics.record_delivery(outcome);
        if let Err(e) = written {
            tracing::error!(
                "webhook outbox: cannot record an attempt ({e}); the delivery waits for a restart"
            );
            self.unrecorded.insert(id);
        }
    }
}

/// One POST of `body` to `endpoint`, signed if it has a secret.
async fn attempt(client: &reqwest::Client, endpoint: &Endpoint, body: String) -> Verdict {
    let mut request = client
        .post(endpoint.url.clone())
        .header(CONTENT_TYPE, "application/json");
    if let Some(secret) = &endpoint.secret {
        request = request.header(
            SIGNATURE_HEADER,
            body::signature(secret.as_bytes(), body.as_bytes()),
        );
    }
    Verdict::of(request.body(body).send().await.map(|r| r.status()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: i64 = 1000;

    #[test]
    fn waits_double_from_the_base_up_to_the_cap() {
        let delivery = Delivery::default();
        // With the largest jitter the wait is the whole backoff.
        let waits: Vec<i64> = (1..=12)
            .map(|n| delivery.next_attempt(n, 0, 0, 1.0).unwrap())
            .collect();
        assert_eq!(
            waits,
            [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 600, 600].map(|s| s * SECOND)
        );
        assert_eq!(delivery.next_attempt(1000, 0, 0, 1.0), Some(600 * SECOND));
    }

    #[test]
    fn jitter_draws_between_half_and_all_of_the_backoff() {
        let delivery = Delivery::default();
        assert_eq!(delivery.next_attempt(3, 0, 0, 0.0), Some(2 * SECOND));
        assert_eq!(delivery.next_attempt(3, 0, 0, 0.5), Some(3 * SECOND));
    }

    #[test]
    fn no_retry_is_scheduled_past_a_day_after_queueing() {
        let delivery = Delivery::default();
        let day = 24 * 3600 * SECOND;
        assert_eq!(
            delivery.next_attempt(20, 0, day - 600 * SECOND, 1.0),
            Some(day)
        );
        assert_eq!(delivery.next_attempt(20, 0, day - 599 * SECOND, 1.0), None);
        // Measured from when it was queued, not from now.
        assert!(delivery.next_attempt(20, day, day + 1, 1.0).is_some());
    }

    #[test]
    fn statuses_decide_between_delivered_retry_and_refused() {
        let verdict = |status: u16| Verdict::of(Ok(StatusCode::from_u16(status).unwrap()));
        assert_eq!(verdict(200), Verdict::Delivered);
        assert_eq!(verdict(204), Verdict::Delivered);
        for retried in [500, 502, 503, 429, 408] {
            assert_eq!(verdict(retried), Verdict::Retry(format!("HTTP {retried}")));
        }
        for refused in [301, 400, 401, 404, 410] {
            assert_eq!(
                verdict(refused),
                Verdict::Refused(format!("HTTP {refused}"))
            );
        }
    }
}
