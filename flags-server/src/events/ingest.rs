//! `POST /v1/events` bodies: parsing, and checking each event against the
//! served config, so a bad event is rejected with its reason while the
//! valid ones of the same batch are still stored.
//!
//! The body is `{"events": [...]}` with at most [`MAX_BATCH`] events:
//! `{"type": "exposure", "id", "flag", "variant", "key", "time"?}` and
//! `{"type": "conversion", "id", "metric", "key", "value"?, "time"?}`, where
//! `time` is an RFC 3339 instant (the server's clock when absent) and
//! `value` a number within ±[`MAX_ABS_VALUE`]. Only the envelope can fail
//! the whole request (a body that is not JSON, or whose `events` is not an
//! array); each element is then decoded on its own, so a wrong type, an
//! unknown field or an out-of-bound value refuses that event alone. Not
//! here: storing (`store`) or the HTTP plumbing (`server::events`).

use std::time::Duration;

use flags_core::stats::MetricKind;
use flags_core::{FlagInfo, Snapshot};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::store::retention;
use crate::store::{Conversion, Event, EventId, Exposure, MAX_TEXT, Stored};

/// Most events accepted in one request.
pub const MAX_BATCH: usize = 1000;

/// Largest magnitude of a conversion's `value`.
///
/// It keeps every sum the server derives finite: a unit's total is at most
/// events × 1e12, and even 2^63 events (more rows than SQLite can hold) give
/// squares summed over all units below 1e62, far from `f64::MAX` (~1.8e308).
/// No plausible metric comes near it (a trillion of any currency unit).
pub const MAX_ABS_VALUE: f64 = 1e12;

/// How far ahead of the server's clock an event may be (clock skew).
const MAX_FUTURE_MS: i64 = 24 * 60 * 60 * 1000;

/// Events before 2000-01-01 are certainly a client bug (a zero or seconds-for-ms clock).
const EARLIEST_MS: i64 = 946_684_800_000;

/// The envelope: its elements stay JSON until each is decoded on its own.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Body {
    events: Vec<Value>,
}

/// One element of `events`. Every field is optional, so that a missing one
/// is reported by name in [`event`]; unknown fields are refused, so that a
/// typo (`timestamp`) is not silently replaced by the server's clock.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "an event object")]
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
    /// Not JSON, or not `{"events": [...]}`.
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
    /// Events already stored under the same id with the same fields.
    pub duplicates: usize,
    /// Events whose id was already stored with different fields (not stored).
    pub conflicts: usize,
    /// Events refused.
    pub rejected: usize,
    /// One entry per event not stored, in request order.
    pub problems: Vec<Problem>,
}

/// An event that was not stored.
#[derive(Debug, Serialize)]
pub struct Problem {
    /// Its position in the request.
    pub index: usize,
    /// Its id, if it had one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// `duplicate`, `conflict` or `rejected`.
    pub status: &'static str,
    /// Why it was refused (`conflict`, `rejected`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Parses `body` and checks each event against `snapshot` at `now_ms` (Unix
/// milliseconds), refusing events older than `retain` (`--retain`) when set.
pub fn check(
    body: &[u8],
    snapshot: &Snapshot,
    now_ms: i64,
    retain: Option<Duration>,
) -> Result<Batch, BatchError> {
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
    for (index, element) in body.events.into_iter().enumerate() {
        // Named in the receipt even when the rest of the element is unreadable.
        let id = element.get("id").and_then(Value::as_str).map(str::to_owned);
        match decode(element).and_then(|raw| event(raw, snapshot, now_ms, retain)) {
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
            let (status, reason) = match outcome {
                Stored::New => {
                    new += 1;
                    continue;
                }
                Stored::Duplicate => ("duplicate", None),
                Stored::Conflict => (
                    "conflict",
                    Some("this id was already stored with different fields; not stored".into()),
                ),
            };
            problems.push(Problem {
                index,
                id,
                status,
                reason,
            });
        }
        problems.sort_by_key(|p| p.index);
        let count = |status: &str| problems.iter().filter(|p| p.status == status).count();
        Receipt {
            received: self.received,
            stored: new,
            duplicates: count("duplicate"),
            conflicts: count("conflict"),
            rejected: count("rejected"),
            problems,
        }
    }
}

/// One element of `events` as an event's fields, or why it is not one
/// (naming the field whose type is wrong).
fn decode(element: Value) -> Result<RawEvent, String> {
    serde_path_to_error::deserialize(element).map_err(|error| {
        let path = error.path().to_string();
        if path == "." {
            error.inner().to_string()
        } else {
            format!("`{path}`: {}", error.inner())
        }
    })
}

/// One event, or why it is refused.
fn event(
    raw: RawEvent,
    snapshot: &Snapshot,
    now_ms: i64,
    retain: Option<Duration>,
) -> Result<Event, String> {
    let id = text("id", raw.id)?;
    let unit = text("key", raw.key)?;
    let sent_time = time(raw.time, now_ms, retain)?;
    let time = sent_time.unwrap_or(now_ms);
    match raw.kind.as_deref() {
        Some("exposure") => {
            let flag = text("flag", raw.flag)?;
            let variant = text("variant", raw.variant)?;
            let info = snapshot
                .flag(&flag)
                .ok_or_else(|| format!("no flag `{flag}`"))?;
            check_arm(&info, &flag, &variant)?;
            let payload = payload_digest(&[
                Some(flag.as_bytes()),
                Some(variant.as_bytes()),
                Some(unit.as_bytes()),
                sent_time.map(i64::to_le_bytes).as_ref().map(|t| &t[..]),
            ]);
            Ok(Event::Exposure(Exposure {
                id: Some(EventId { id, payload }),
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
                && value.abs() > MAX_ABS_VALUE
            {
                return Err(format!(
                    "`value` {value:e} is beyond ±{MAX_ABS_VALUE:e}, the largest magnitude accepted"
                ));
            }
            if kind == MetricKind::Ratio {
                return Err(format!(
                    "metric `{metric}` is a ratio of two other metrics: send their events instead"
                ));
            }
            if kind == MetricKind::Mean && raw.value.is_none() {
                return Err(format!("metric `{metric}` is a mean: `value` is required"));
            }
            // -0 and 0 are the same value.
            let value_bits = raw.value.map(|v| (v + 0.0).to_bits().to_le_bytes());
            let payload = payload_digest(&[
                Some(metric.as_bytes()),
                Some(unit.as_bytes()),
                value_bits.as_ref().map(|v| &v[..]),
                sent_time.map(i64::to_le_bytes).as_ref().map(|t| &t[..]),
            ]);
            Ok(Event::Conversion(Conversion {
                id: EventId { id, payload },
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

/// The instant an event gives as `time` (Unix ms), `None` when it gives none.
fn time(
    sent: Option<String>,
    now_ms: i64,
    retain: Option<Duration>,
) -> Result<Option<i64>, String> {
    let Some(time) = sent else {
        return Ok(None);
    };
    let ms = chrono::DateTime::parse_from_rfc3339(&time)
        .map_err(|_| format!("`time` {time:?} is not an RFC 3339 instant"))?
        .timestamp_millis();
    if ms > now_ms + MAX_FUTURE_MS {
        return Err(format!("`time` {time} is more than a day in the future"));
    }
    if ms < EARLIEST_MS {
        return Err(format!("`time` {time} is before 2000"));
    }
    // Retention would delete it, and what it counts, at the next sweep.
    if let Some(span) = retain
        && ms < retention::earliest_kept(now_ms, span)
    {
        return Err(format!(
            "`time` {time} is older than the server keeps events (--retain {})",
            retention::describe(span)
        ));
    }
    Ok(Some(ms))
}

/// A digest of what an event says besides its id, from its fields as sent
/// (a `time` left to the server's clock is absent, so resending the same
/// event later still matches). Each field is marked present or absent and
/// length-prefixed, so no two different payloads run together.
fn payload_digest(fields: &[Option<&[u8]>]) -> u64 {
    let mut bytes = Vec::new();
    for field in fields {
        match field {
            None => bytes.push(0),
            Some(field) => {
                bytes.push(1);
                bytes.extend_from_slice(&(field.len() as u64).to_le_bytes());
                bytes.extend_from_slice(field);
            }
        }
    }
    xxhash_rust::xxh3::xxh3_64(&bytes)
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

/// Whether `variant` is an arm an exposure of `flag` may name: an arm of
/// its experiment, or, for a flag analysed only by its guardrails, any of
/// its variants (the control included).
fn check_arm(info: &FlagInfo<'_>, flag: &str, variant: &str) -> Result<(), String> {
    let known = match info.experiments().next() {
        Some(experiment) => experiment.arms().any(|(arm, _)| arm == variant),
        None if !info.guardrails().is_empty() => info.variants().any(|(name, _)| name == variant),
        None => {
            return Err(format!(
                "flag `{flag}` runs no experiment and has no guardrail"
            ));
        }
    };
    if known {
        Ok(())
    } else {
        Err(format!("`{variant}` is not an arm of `{flag}`"))
    }
}
