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

/// 400 events of flag `f` (arms `on` and `off`), metric `m` and revenue
/// `r`, in a shuffled order: late exposures, earlier re-exposures,
/// units in both arms, conversions before and after exposure.
pub fn shuffled_events() -> Vec<Event> {
    let mut seed = 0x0123_4567_89ab_cdef_u64;
    let mut next = |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    let mut events = Vec::new();
    for i in 0..400 {
        let unit = format!("u{}", next(60));
        let time = next(1000) as i64;
        events.push(match next(3) {
            0 => Event::Exposure(Exposure {
                id: None,
                flag: "f".into(),
                variant: ["on", "off"][(next(20) == 0) as usize ^ (unit.len() % 2)].into(),
                unit,
                time,
            }),
            1 => Event::Conversion(Conversion {
                id: self::id(&format!("c{i}"), 0),
                metric: "m".into(),
                unit,
                value: None,
                time,
            }),
            _ => Event::Conversion(Conversion {
                id: self::id(&format!("c{i}"), 0),
                metric: "r".into(),
                unit,
                value: Some(next(100) as f64),
                time,
            }),
        });
    }
    events
}
