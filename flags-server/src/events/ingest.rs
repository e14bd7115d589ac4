//! `POST /v1/events` bodies: parsing, and checking each event against the
//! served config, so a bad event is rejected with its reason while the
//! valid ones of the same batch are still stored.
//!
//! The body is `{"events": [...]}` with at most [`MAX_BATCH`] events:
//! `{"type": "exposure", "id", "flag", "variant", "key", "time"?}` and
//! `{"type": "conversion", "id", "metric", "key", "value"?, "time"?}`, where
//! `time` is an RFC 3339 instant (the server's clock when absent). Not here:
//! storing (`store`) or the HTTP plumbing (`server::experiments`).

use flags_core::Snapshot;
use flags_core::stats::MetricKind;
use serde::{Deserialize, Serialize};

use super::store::{Conversion, Event, Exposure, Stored};

/// Most events accepted in one request.
pub const MAX_BATCH: usize = 1000;

/// Longest event id or unit key, in bytes.
const MAX_TEXT: usize = 256;

/// How far ahead of the server's clock an event may be (clock skew).
const MAX_FUTURE_MS: i64 = 24 * 60 * 60 * 1000;

/// Events before 2000-01-01 are certainly a client bug (a zero or seconds-for-ms clock).
const EARLIEST_MS: i64 = 946_684_800_000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Body {
    events: Vec<RawEvent>,
}

/// Every field optional, so that a missing one is this event's problem, not the batch's.
#[derive(Deserialize)]
struct RawEvent {
    #[serde(rename = "type")]
    kind: Option<String>,
    id: Option<String>,
    flag: Option<String>,
    variant: Option<String>,
    metric: Option<String>,
    key: Option<String>,
    value: Option<f64>,
    time: Option<String>,
}

/// Why a whole batch is refused.
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    /// Not JSON of the documented shape.
    #[error("{0}")]
    Parse(String),
    /// More than [`MAX_BATCH`] events.
    #[error("a batch holds at most {MAX_BATCH} events, got {0}")]
    TooLarge(usize),
}

/// A checked batch: the events to store and the ones refused.
pub struct Batch {
    received: usize,
    /// Valid events, in request order.
    pub events: Vec<Event>,
    /// Position in the request of each valid event.
    positions: Vec<usize>,
    ids: Vec<Option<String>>,
    rejected: Vec<Problem>,
}

/// The answer to a batch.
#[derive(Debug, Serialize)]
pub struct Receipt {
    /// Events in the request.
    pub received: usize,
    /// Events newly stored.
    pub stored: usize,
    /// Events already stored (same id, or same first exposure).
    pub duplicates: usize,
    /// Events refused.
    pub rejected: usize,
    /// One entry per duplicate or refused event, in request order.
    pub problems: Vec<Problem>,
}

/// A duplicate or refused event.
#[derive(Debug, Serialize)]
pub struct Problem {
    /// Its position in the request.
    pub index: usize,
    /// Its id, if it had one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// `duplicate` or `rejected`.
    pub status: &'static str,
    /// Why it was refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Parses `body` and checks each event against `snapshot` at `now_ms` (Unix milliseconds).
pub fn check(body: &[u8], snapshot: &Snapshot, now_ms: i64) -> Result<Batch, BatchError> {
    let body: Body = serde_json::from_slice(body).map_err(|e| BatchError::Parse(e.to_string()))?;
    if body.events.len() > MAX_BATCH {
        return Err(BatchError::TooLarge(body.events.len()));
    }
    let mut batch = Batch {
        received: body.events.len(),
        events: Vec::with_capacity(body.events.len()),
        positions: Vec::with_capacity(body.events.len()),
        ids: Vec::with_capacity(body.events.len()),
        rejected: Vec::new(),
    };
    for (index, raw) in body.events.into_iter().enumerate() {
        let id = raw.id.clone();
        match event(raw, snapshot, now_ms) {
            Ok(event) => {
                batch.events.push(event);
                batch.positions.push(index);
                batch.ids.push(id);
            }
            Err(reason) => batch.rejected.push(Problem {
                index,
                id,
                status: "rejected",
                reason: Some(reason),
            }),
        }
    }
    Ok(batch)
}

impl Batch {
    /// The receipt once the valid events were stored with outcomes `stored`.
    pub fn receipt(self, stored: &[Stored]) -> Receipt {
        let mut problems = self.rejected;
        let mut new = 0;
        for ((outcome, index), id) in stored.iter().zip(self.positions).zip(self.ids) {
            match outcome {
                Stored::New => new += 1,
                Stored::Duplicate => problems.push(Problem {
                    index,
                    id,
                    status: "duplicate",
                    reason: None,
                }),
            }
        }
        problems.sort_by_key(|p| p.index);
        let rejected = problems.iter().filter(|p| p.status == "rejected").count();
        Receipt {
            received: self.received,
            stored: new,
            duplicates: problems.len() - rejected,
            rejected,
            problems,
        }
    }
}

/// One event, or why it is refused.
fn event(raw: RawEvent, snapshot: &Snapshot, now_ms: i64) -> Result<Event, String> {
    let id = text("id", raw.id)?;
    let unit = text("key", raw.key)?;
    let time = match raw.time {
        None => now_ms,
        Some(time) => {
            let ms = chrono::DateTime::parse_from_rfc3339(&time)
                .map_err(|_| format!("`time` {time:?} is not an RFC 3339 instant"))?
                .timestamp_millis();
            if ms > now_ms + MAX_FUTURE_MS {
                return Err(format!("`time` {time} is more than a day in the future"));
            }
            if ms < EARLIEST_MS {
                return Err(format!("`time` {time} is before 2000"));
            }
            ms
        }
    };
    match raw.kind.as_deref() {
        Some("exposure") => {
            let flag = text("flag", raw.flag)?;
            let variant = text("variant", raw.variant)?;
            let info = snapshot
                .flag(&flag)
                .ok_or_else(|| format!("no flag `{flag}`"))?;
            let experiment = info
                .experiments()
                .next()
                .ok_or_else(|| format!("flag `{flag}` runs no experiment"))?;
            if !experiment.arms().any(|(arm, _)| arm == variant) {
                return Err(format!(
                    "`{variant}` is not an arm of the experiment on `{flag}`"
                ));
            }
            Ok(Event::Exposure(Exposure {
                id: Some(id),
                flag,
                variant,
                unit,
                time,
            }))
        }
        Some("conversion") => {
            let metric = text("metric", raw.metric)?;
            let kind = snapshot
                .metrics()
                .find(|(name, _)| *name == metric)
                .map(|(_, kind)| kind)
                .ok_or_else(|| format!("no metric `{metric}`"))?;
            if let Some(value) = raw.value
                && !value.is_finite()
            {
                return Err("`value` must be a finite number".into());
            }
            if kind == MetricKind::Mean && raw.value.is_none() {
                return Err(format!("metric `{metric}` is a mean: `value` is required"));
            }
            Ok(Event::Conversion(Conversion {
                id,
                metric,
                unit,
                value: raw.value,
                time,
            }))
        }
        Some(other) => Err(format!(
            "unknown `type` {other:?}: expected \"exposure\" or \"conversion\""
        )),
        None => Err("`type` is missing".into()),
    }
}

/// A required, non-empty, bounded string field.
fn text(field: &str, value: Option<String>) -> Result<String, String> {
    match value {
        None => Err(format!("`{field}` is missing")),
        Some(v) if v.is_empty() => Err(format!("`{field}` is empty")),
        Some(v) if v.len() > MAX_TEXT => Err(format!("`{field}` is longer than {MAX_TEXT} bytes")),
        Some(v) => Ok(v),
    }
}

/// The server's clock in Unix milliseconds.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
