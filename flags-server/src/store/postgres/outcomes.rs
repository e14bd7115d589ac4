//! What storing each event of a group does, decided in Rust, event by
//! event in request order, against the rows stored before the group and
//! the group's earlier events: the outcomes the SQLite writer gives with a
//! statement per event (a resent id is a duplicate, a reused one a
//! conflict, the earliest exposure of a unit to a variant stays), from a
//! few set-based reads and writes per group instead.
//!
//! What it is not: reading the stored rows or writing the result
//! (`group`), nor the SQL of the aggregates (`aggregates`); it only says
//! which units they change and how.

use std::collections::{HashMap, HashSet};

use super::aggregates::{Changes, Exposed, UnitKey};
use crate::store::phases::Phases;
use crate::store::{Conversion, Event, EventId, Exposure, Stored};

/// The stored rows a group's events can meet, as `group` reads them.
#[derive(Default)]
pub struct StoredRows {
    /// Exposure ids and their payloads (`None`: stored without one).
    pub exposure_ids: HashMap<String, Option<i64>>,
    /// Conversion ids and their payloads.
    pub conversion_ids: HashMap<String, Option<i64>>,
    /// Every exposure row of the group's units: variant and time.
    pub exposures: HashMap<UnitKey, Vec<(String, i64)>>,
}

/// The rows a group writes, as columns for `unnest`.
#[derive(Default)]
pub struct Writes {
    /// New exposure ids: id, payload, time.
    pub exposure_ids: (Vec<String>, Vec<i64>, Vec<i64>),
    /// Exposure rows inserted or moved earlier.
    pub exposures: ExposureRows,
    /// New conversions.
    pub conversions: ConversionRows,
    /// What they change in the aggregates.
    pub changes: Changes,
}

/// Exposure rows as columns.
#[derive(Default)]
pub struct ExposureRows {
    /// Flags.
    pub flags: Vec<String>,
    /// Phases.
    pub phases: Vec<i64>,
    /// Units.
    pub units: Vec<String>,
    /// Variants.
    pub variants: Vec<String>,
    /// Times (Unix ms).
    pub times: Vec<i64>,
    /// The client's ids.
    pub ids: Vec<Option<String>>,
}

/// Conversions as columns.
#[derive(Default)]
pub struct ConversionRows {
    /// Ids.
    pub ids: Vec<String>,
    /// Metrics.
    pub metrics: Vec<String>,
    /// Units.
    pub units: Vec<String>,
    /// Values.
    pub values: Vec<Option<f64>>,
    /// Times (Unix ms).
    pub times: Vec<i64>,
    /// Payload digests.
    pub payloads: Vec<i64>,
}

/// One group's events being decided.
pub struct Batch<'a> {
    phases: &'a Phases,
    /// As stored before the group, then with the group's ids added.
    stored: StoredRows,
    /// The exposure rows of the units whose exposures changed, as they are now.
    exposures_now: HashMap<UnitKey, Vec<(String, i64)>>,
    /// Exposure rows to write: (unit, variant) -> (time, id).
    changed_rows: HashMap<(UnitKey, String), (i64, Option<String>)>,
    new_exposure_ids: Vec<(String, i64, i64)>,
    new_conversions: Vec<&'a Conversion>,
}

impl<'a> Batch<'a> {
    /// A group starting from `stored`, with the phases in force.
    pub fn new(phases: &'a Phases, stored: StoredRows) -> Self {
        Self {
            phases,
            stored,
            exposures_now: HashMap::new(),
            changed_rows: HashMap::new(),
            new_exposure_ids: Vec::new(),
            new_conversions: Vec::new(),
        }
    }

    /// Decides what storing `event` does, and remembers what it writes.
    pub fn store(&mut self, event: &'a Event) -> Stored {
        match event {
            Event::Exposure(e) => self.expose(e),
            Event::Conversion(c) => self.convert(c),
        }
    }

    fn expose(&mut self, e: &Exposure) -> Stored {
        if let Some(id) = &e.id {
            if let Some(stored) = self.stored.exposure_ids.get(&id.id) {
                return resent(*stored, id);
            }
            let payload = id.stored_payload();
            self.stored
                .exposure_ids
                .insert(id.id.clone(), Some(payload));
            self.new_exposure_ids.push((id.id.clone(), payload, e.time));
        }
        let new_id = if e.id.is_some() {
            Stored::New
        } else {
            Stored::Duplicate
        };
        let phase = self.phases.at(&e.flag, e.time);
        if e.time >= self.phases.end(&e.flag, phase) {
            // After its experiment stopped, before any restart: no phase
            // counts it (the id, if any, is kept all the same).
            return new_id;
        }
        let key = UnitKey {
            flag: e.flag.clone(),
            phase,
            unit: e.unit.clone(),
        };
        let rows = self
            .exposures_now
            .entry(key.clone())
            .or_insert_with(|| self.stored.exposures.get(&key).cloned().unwrap_or_default());
        match rows.iter_mut().find(|(variant, _)| *variant == e.variant) {
            Some((_, time)) if *time <= e.time => return new_id,
            Some((_, time)) => *time = e.time,
            None => rows.push((e.variant.clone(), e.time)),
        }
        let id = e.id.as_ref().map(|id| id.id.clone());
        self.changed_rows
            .insert((key, e.variant.clone()), (e.time, id));
        Stored::New
    }

    fn convert(&mut self, c: &'a Conversion) -> Stored {
        if let Some(stored) = self.stored.conversion_ids.get(&c.id.id) {
            return resent(*stored, &c.id);
        }
        self.stored
            .conversion_ids
            .insert(c.id.id.clone(), Some(c.id.stored_payload()));
        self.new_conversions.push(c);
        Stored::New
    }

    /// What the group writes.
    pub fn into_writes(self) -> Writes {
        let mut writes = Writes::default();
        let changed_units: HashSet<&UnitKey> =
            self.changed_rows.keys().map(|(key, _)| key).collect();
        for key in &changed_units {
            let before = self.stored.exposures.get(key).map(|rows| exposed(rows));
            let after = exposed(&self.exposures_now[*key]);
            let end = self.phases.end(&key.flag, key.phase);
            writes
                .changes
                .exposures_changed(key, before.as_ref(), &after, end);
        }
        let mut by_unit: HashMap<&str, Vec<(&UnitKey, Exposed)>> = HashMap::new();
        for (key, rows) in &self.stored.exposures {
            if !changed_units.contains(key) {
                by_unit
                    .entry(&key.unit)
                    .or_default()
                    .push((key, exposed(rows)));
            }
        }
        for c in &self.new_conversions {
            for (key, exposed) in by_unit.get(c.unit.as_str()).into_iter().flatten() {
                let end = self.phases.end(&key.flag, key.phase);
                if exposed.variants == 1 && c.time >= exposed.first && c.time < end {
                    let value = c.value.unwrap_or(0.0);
                    writes
                        .changes
                        .converted(key, &exposed.variant, &c.metric, value);
                }
            }
            let rows = &mut writes.conversions;
            rows.ids.push(c.id.id.clone());
            rows.metrics.push(c.metric.clone());
            rows.units.push(c.unit.clone());
            rows.values.push(c.value);
            rows.times.push(c.time);
            rows.payloads.push(c.id.stored_payload());
        }
        for ((key, variant), (time, id)) in self.changed_rows {
            let rows = &mut writes.exposures;
            rows.flags.push(key.flag);
            rows.phases.push(key.phase);
            rows.units.push(key.unit);
            rows.variants.push(variant);
            rows.times.push(time);
            rows.ids.push(id);
        }
        for (id, payload, time) in self.new_exposure_ids {
            writes.exposure_ids.0.push(id);
            writes.exposure_ids.1.push(payload);
            writes.exposure_ids.2.push(time);
        }
        writes
    }
}

/// A unit's exposures summed up from its rows (variant, time): never empty.
fn exposed(rows: &[(String, i64)]) -> Exposed {
    Exposed {
        variants: rows.len(),
        variant: rows
            .iter()
            .map(|(v, _)| v)
            .min()
            .cloned()
            .unwrap_or_default(),
        first: rows.iter().map(|(_, t)| *t).min().unwrap_or_default(),
    }
}

/// What an event whose id is stored with `stored` (its payload, `None`
/// when stored before payloads were) is: the same event again, or a
/// different one reusing the id.
fn resent(stored: Option<i64>, id: &EventId) -> Stored {
    match stored {
        Some(payload) if payload != id.stored_payload() => Stored::Conflict,
        _ => Stored::Duplicate,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exposure(variant: &str, time: i64) -> Event {
        Event::Exposure(Exposure {
            id: None,
            flag: "f".into(),
            variant: variant.into(),
            unit: "u".into(),
            time,
        })
    }

    fn decide(stored: StoredRows, events: &[Event]) -> (Vec<Stored>, Writes) {
        let phases = Phases::default();
        let mut batch = Batch::new(&phases, stored);
        let outcomes = events.iter().map(|e| batch.store(e)).collect();
        (outcomes, batch.into_writes())
    }

    #[test]
    fn an_earlier_exposure_in_the_same_group_moves_the_first_one() {
        let (outcomes, writes) = decide(
            StoredRows::default(),
            &[exposure("x", 9), exposure("x", 3), exposure("x", 5)],
        );
        assert_eq!(outcomes, [Stored::New, Stored::New, Stored::Duplicate]);
        assert_eq!(writes.exposures.times, [3]);
    }

    #[test]
    fn a_stored_later_exposure_is_moved_and_a_stored_earlier_one_stays() {
        let key = UnitKey {
            flag: "f".into(),
            phase: 1,
            unit: "u".into(),
        };
        let mut stored = StoredRows::default();
        stored.exposures.insert(key, vec![("x".into(), 5)]);
        let (outcomes, writes) = decide(stored, &[exposure("x", 9), exposure("x", 3)]);
        assert_eq!(outcomes, [Stored::Duplicate, Stored::New]);
        assert_eq!(writes.exposures.times, [3]);
    }
}
