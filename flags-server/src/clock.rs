//! The server's clock, in Unix milliseconds as events and the stores keep
//! time, and how answers show such a time (RFC 3339, UTC).
//!
//! Not here: the instant flags are evaluated at (`server::state::Clock`,
//! which `--at` can fix) or time in the config (`flags_core::time`).

/// The server's clock in Unix milliseconds.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// A time in Unix milliseconds as RFC 3339 (UTC), as answers show times.
pub fn rfc3339_ms(ms: i64) -> String {
    let nanos = (ms.rem_euclid(1000) * 1_000_000) as u32;
    flags_core::Timestamp::from_unix(ms.div_euclid(1000), nanos).to_string()
}
