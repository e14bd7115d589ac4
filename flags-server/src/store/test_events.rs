//! Events the store tests of both backends write (tests only): one unit
//! `u` of flag `f`, conversions of metric `m` and revenues of `r`.

use super::{Conversion, Event, EventId, Exposure};

/// A client's event id with the digest of what it sent.
pub fn id(id: &str, payload: u64) -> EventId {
    EventId {
        id: id.into(),
        payload,
    }
}

/// A conversion of `m` by `u` under `id`.
pub fn conversion(id: &str) -> Event {
    Event::Conversion(Conversion {
        id: self::id(id, 7),
        metric: "m".into(),
        unit: "u".into(),
        value: None,
        time: 1,
    })
}

/// An exposure the server recorded (no id) of `u` to `variant` of `f`.
pub fn exposure(variant: &str, time: i64) -> Event {
    Event::Exposure(Exposure {
        id: None,
        flag: "f".into(),
        variant: variant.into(),
        unit: "u".into(),
        time,
    })
}

/// A client's exposure of `u` to `variant` of `f`.
pub fn client_exposure(id: &str, payload: u64, variant: &str, time: i64) -> Event {
    Event::Exposure(Exposure {
        id: Some(self::id(id, payload)),
        flag: "f".into(),
        variant: variant.into(),
        unit: "u".into(),
        time,
    })
}

/// A revenue of `value` by `u` under `id`.
pub fn revenue(id: &str, value: f64) -> Event {
    Event::Conversion(Conversion {
        id: self::id(id, value.to_bits()),
        metric: "r".into(),
        unit: "u".into(),
        value: Some(value),
        time: 10,
    })
}
