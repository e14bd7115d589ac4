//! Instants: the evaluation time and the datetimes that schedules and
//! `before`/`after` conditions compare against.
//!
//! Only full RFC 3339 instants (date, time and offset) are accepted, because
//! a local time in a config would mean different things on different servers.
//! Parsing never allocates, so conditions can parse attribute values during
//! evaluation.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

/// A UTC instant with nanosecond precision, ordered in time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp {
    secs: i64,
    nanos: u32,
}

impl Timestamp {
    /// The instant `secs` seconds and `nanos` nanoseconds after the Unix epoch.
    ///
    /// `nanos` above one second carry into `secs`.
    pub fn from_unix(secs: i64, nanos: u32) -> Self {
        Self {
            secs: secs.saturating_add(i64::from(nanos / 1_000_000_000)),
            nanos: nanos % 1_000_000_000,
        }
    }

    /// The current time from the system clock.
    pub fn now() -> Self {
        SystemTime::now().into()
    }

    /// Seconds since the Unix epoch (floored).
    pub fn unix_seconds(self) -> i64 {
        self.secs
    }

    /// Parses an RFC 3339 instant such as `2026-12-01T10:00:00Z`, or returns
    /// `None` for anything else (a date alone, a local time, garbage).
    pub fn parse_rfc3339(text: &str) -> Option<Self> {
        let parsed = chrono::DateTime::parse_from_rfc3339(text).ok()?;
        Some(Self {
            secs: parsed.timestamp(),
            nanos: parsed.timestamp_subsec_nanos(),
        })
    }
}

impl From<SystemTime> for Timestamp {
    fn from(time: SystemTime) -> Self {
        match time.duration_since(UNIX_EPOCH) {
            Ok(after) => Self::from_unix(after.as_secs() as i64, after.subsec_nanos()),
            Err(before) => {
                let d = before.duration();
                let (secs, nanos) = if d.subsec_nanos() == 0 {
                    (-(d.as_secs() as i64), 0)
                } else {
                    (-(d.as_secs() as i64) - 1, 1_000_000_000 - d.subsec_nanos())
                };
                Self::from_unix(secs, nanos)
            }
        }
    }
}

impl fmt::Display for Timestamp {
    /// Formats as RFC 3339 in UTC, e.g. `2026-12-01T10:00:00Z`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match chrono::DateTime::from_timestamp(self.secs, self.nanos) {
            Some(dt) => write!(
                f,
                "{}",
                dt.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
            ),
            None => write!(f, "{}s", self.secs),
        }
    }
}

/// The longest span [`parse_span`] accepts: about 100 years, far beyond any
/// window or retention, and small enough that adding it to any instant a
/// server sees cannot overflow.
pub const MAX_SPAN: std::time::Duration = std::time::Duration::from_secs(100 * 365 * 86_400);

/// Parses a span such as `250ms`, `30s`, `5m`, `2h` or `7d` (a whole
/// number and one unit; a bare number is seconds). `None` for anything
/// else, including spans longer than [`MAX_SPAN`].
pub fn parse_span(text: &str) -> Option<std::time::Duration> {
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: u64 = number.parse().ok()?;
    let millis_per_unit: u64 = match unit {
        "ms" => 1,
        "" | "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return None,
    };
    let span = std::time::Duration::from_millis(n.checked_mul(millis_per_unit)?);
    (span <= MAX_SPAN).then_some(span)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_full_instants_with_offsets() {
        let utc = Timestamp::parse_rfc3339("2026-12-01T10:00:00Z").unwrap();
        let offset = Timestamp::parse_rfc3339("2026-12-01T11:00:00+01:00").unwrap();
        assert_eq!(utc, offset);
        assert_eq!(utc.unix_seconds(), 1_796_119_200);
        let fraction = Timestamp::parse_rfc3339("2026-12-01T10:00:00.5Z").unwrap();
        assert!(fraction > utc);
        assert_eq!(utc.to_string(), "2026-12-01T10:00:00Z");
    }

    #[test]
    fn rejects_anything_that_is_not_a_full_instant() {
        for text in [
            "2026-12-01",
            "2026-12-01T10:00:00",
            "10:00:00Z",
            "",
            "yesterday",
            "2026-13-01T10:00:00Z",
        ] {
            assert_eq!(Timestamp::parse_rfc3339(text), None, "{text}");
        }
    }

    #[test]
    fn system_times_before_the_epoch_keep_their_order() {
        let before = UNIX_EPOCH - std::time::Duration::from_millis(1500);
        let ts = Timestamp::from(before);
        assert_eq!(ts, Timestamp::from_unix(-2, 500_000_000));
        assert!(ts < Timestamp::from_unix(0, 0));
    }

    #[test]
    fn spans_take_one_unit_and_stay_bounded() {
        use std::time::Duration;
        assert_eq!(parse_span("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_span("30"), Some(Duration::from_secs(30)));
        assert_eq!(parse_span("5m"), Some(Duration::from_secs(300)));
        assert_eq!(parse_span("2h"), Some(Duration::from_secs(7200)));
        assert_eq!(parse_span("7d"), Some(Duration::from_secs(7 * 86_400)));
        assert_eq!(parse_span("36500d"), Some(MAX_SPAN));
        for text in [
            "",
            "m",
            "5 m",
            "5min",
            "-5m",
            "1.5h",
            "36501d",
            "99999999999999999999d",
        ] {
            assert_eq!(parse_span(text), None, "{text}");
        }
    }
}
