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
}
