//! [`HttpExposures`] (feature `http`): exposures sent in batches to a flags
//! server's `POST /v1/events`, for applications that evaluate in process but
//! read their experiments' results from the server.
//!
//! Reporting never blocks an evaluation: exposures go into a bounded queue
//! (full: the exposure is dropped and counted) and a task on the caller's
//! tokio runtime sends them, at most [`BATCH`] per request, every
//! [`INTERVAL`] or as soon as a batch is full, retrying a failed request a
//! few times. Each exposure's id ([`Exposure::id`]) is the same for a unit's
//! every exposure to an arm, so retries and repeats are never counted
//! twice; repeats within the process are not even sent. Dropping the
//! reporter sends what is queued and ends the task. Not here: deciding what
//! to report (`provider`).

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::{mpsc, oneshot};

use crate::exposure::{Exposure, ExposureSink};

/// Most exposures in one request (the server takes up to 1 000 events).
pub const BATCH: usize = 500;

/// Longest an exposure waits in the queue before it is sent.
pub const INTERVAL: Duration = Duration::from_secs(1);

/// Exposures the queue holds before it drops new ones.
const QUEUE: usize = 10_000;

/// Attempts per request: the first and two retries.
const ATTEMPTS: u32 = 3;

/// Ids remembered to skip repeats; forgotten past this many (a repeat sent
/// after that is a `duplicate` or `conflict` at the server, not a count).
const REMEMBERED: usize = 100_000;

/// Sends exposures to a server; see the module documentation.
pub struct HttpExposures {
    queue: mpsc::Sender<Command>,
    dropped: Arc<AtomicU64>,
}

enum Command {
    Expose(Event),
    Flush(oneshot::Sender<Result<(), HttpExposuresError>>),
}

/// One exposure as `POST /v1/events` takes it.
#[derive(Serialize)]
struct Event {
    #[serde(rename = "type")]
    kind: &'static str,
    id: String,
    flag: String,
    variant: String,
    key: String,
    time: String,
}

#[derive(Serialize)]
struct Events<'a> {
    events: &'a [Event],
}

/// Why exposures could not be sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpExposuresError {
    /// The HTTP client could not be built.
    Client(String),
    /// A batch was still refused after every attempt (and dropped).
    Send(String),
    /// The sending task is gone (its runtime shut down).
    Stopped,
}

impl std::fmt::Display for HttpExposuresError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Client(why) => write!(f, "cannot build the HTTP client: {why}"),
            Self::Send(why) => write!(f, "exposures not sent: {why}"),
            Self::Stopped => f.write_str("the exposure reporter has stopped"),
        }
    }
}

impl std::error::Error for HttpExposuresError {}

impl HttpExposures {
    /// Starts sending to `events_url` (the server's `.../v1/events`), with
    /// `token` as the bearer token when the server requires one (a client
    /// token will do). Must be called within a tokio runtime, which runs
    /// the sending task.
    pub fn spawn(events_url: &str, token: Option<&str>) -> Result<Self, HttpExposuresError> {
        // reqwest is built without a TLS provider of its own; the server
        // uses rustls with `ring`, and so does this.
        #[allow(deprecated)] // `ring` lacks post-quantum key exchange; see the server.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| HttpExposuresError::Client(e.to_string()))?;
        let (queue, inbox) = mpsc::channel(QUEUE);
        let sender = Sender {
            client,
            url: events_url.to_string(),
            token: token.map(str::to_string),
        };
        tokio::spawn(sender.run(inbox));
        Ok(Self {
            queue,
            dropped: Arc::default(),
        })
    }

    /// Sends every exposure queued so far and waits for the answer.
    pub async fn flush(&self) -> Result<(), HttpExposuresError> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Command::Flush(reply))
            .await
            .map_err(|_| HttpExposuresError::Stopped)?;
        answer.await.map_err(|_| HttpExposuresError::Stopped)?
    }

    /// Exposures dropped because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Relaxed)
    }
}

impl ExposureSink for HttpExposures {
    fn expose(&self, exposure: &Exposure<'_>) {
        let event = Event {
            kind: "exposure",
            id: exposure.id(),
            flag: exposure.flag.to_string(),
            variant: exposure.variant.to_string(),
            key: exposure.unit.to_string(),
            time: exposure.time.to_string(),
        };
        if self.queue.try_send(Command::Expose(event)).is_err() {
            self.dropped.fetch_add(1, Relaxed);
        }
    }
}

/// The sending task's state.
struct Sender {
    client: reqwest::Client,
    url: String,
    token: Option<String>,
}

impl Sender {
    async fn run(self, mut inbox: mpsc::Receiver<Command>) {
        let mut batch = Vec::new();
        let mut seen = HashSet::new();
        let mut ticker = tokio::time::interval(INTERVAL);
        loop {
            tokio::select! {
                command = inbox.recv() => match command {
                    Some(Command::Expose(event)) => {
                        if seen.len() >= REMEMBERED {
                            seen.clear();
                        }
                        if seen.insert(event.id.clone()) {
                            batch.push(event);
                        }
                        if batch.len() >= BATCH {
                            let _ = self.send(&mut batch).await;
                        }
                    }
                    Some(Command::Flush(reply)) => {
                        let _ = reply.send(self.send(&mut batch).await);
                    }
                    None => {
                        let _ = self.send(&mut batch).await;
                        return;
                    }
                },
                _ = ticker.tick() => {
                    let _ = self.send(&mut batch).await;
                }
            }
        }
    }

    /// Sends `batch` (emptying it, sent or not), retrying with backoff.
    async fn send(&self, batch: &mut Vec<Event>) -> Result<(), HttpExposuresError> {
        if batch.is_empty() {
            return Ok(());
        }
        let events = std::mem::take(batch);
        let mut last = String::new();
        for attempt in 0..ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
            }
            let mut request = self
                .client
                .post(&self.url)
                .json(&Events { events: &events });
            if let Some(token) = &self.token {
                request = request.bearer_auth(token);
            }
            match request.send().await {
                Ok(response) if response.status().is_success() => return Ok(()),
                // Another answer will not change on a retry: refused for good.
                Ok(response)
                    if response.status().is_client_error()
                        && response.status() != reqwest::StatusCode::TOO_MANY_REQUESTS =>
                {
                    let status = response.status();
                    let body = response.text().await.unwrap_or_default();
                    return Err(HttpExposuresError::Send(format!("{status}: {body}")));
                }
                Ok(response) => last = response.status().to_string(),
                Err(error) => last = error.to_string(),
            }
        }
        Err(HttpExposuresError::Send(last))
    }
}
