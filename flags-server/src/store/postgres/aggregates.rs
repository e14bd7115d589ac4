//! Per-arm sufficient statistics kept up to date by the writer, set-based:
//! the same tables and the same totals as the SQLite store's (see
//! `store::sqlite::aggregates`, which says what each level holds), but each
//! group's changes are gathered first ([`Changes`]) and then written with a
//! handful of statements whatever their number, passing arrays.
//!
//! For every affected unit (of one flag's phase): its contribution is
//! taken out of `arm_outcomes` (from its `unit_outcomes`, before they
//! change), its `unit_outcomes` are rebuilt from `conversions` in
//! `[first exposure, phase end)` (its exposures changed, or its phase
//! stopped) or increased by its new conversions (nothing else changed: as
//! SQLite does, so that a conversion deleted by retention still counts),
//! and its contribution is added back. Units per arm and units exposed to
//! several variants change by counts decided in Rust. A unit exposed to
//! several variants has no `unit_outcomes` here (SQLite keeps stale ones,
//! which nothing reads). Not here: deciding which units a group affects
//! (`group`), or reading the statistics (`reads`).

use std::collections::HashMap;

use super::prepared::Tx;

/// A unit of one phase of one flag.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct UnitKey {
    /// The flag.
    pub flag: String,
    /// The analysis phase.
    pub phase: i64,
    /// The unit.
    pub unit: String,
}

/// A unit's exposures in one phase of one flag.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Exposed {
    /// How many variants it was exposed to.
    pub variants: usize,
    /// The (alphabetically first) variant.
    pub variant: String,
    /// Its first exposure (Unix ms).
    pub first: i64,
}

impl Exposed {
    fn single(this: Option<&Self>) -> Option<&Self> {
        this.filter(|e| e.variants == 1)
    }
}

/// Units as the columns `unnest` takes.
#[derive(Default)]
struct Units {
    flags: Vec<String>,
    phases: Vec<i64>,
    units: Vec<String>,
    /// The variant; for increments, the metric; unused in `cleared` and `rebuilt`.
    variants: Vec<String>,
    /// The first exposure (`rebuilt` only).
    firsts: Vec<i64>,
    /// The phase's end (`rebuilt` only).
    ends: Vec<i64>,
}

impl Units {
    fn push(&mut self, key: &UnitKey, variant: &str) {
        self.flags.push(key.flag.clone());
        self.phases.push(key.phase);
        self.units.push(key.unit.clone());
        self.variants.push(variant.to_string());
    }

    fn push_span(&mut self, key: &UnitKey, first: i64, end: i64) {
        self.push(key, "");
        self.firsts.push(first);
        self.ends.push(end);
    }

    fn is_empty(&self) -> bool {
        self.flags.is_empty()
    }
}

/// What a group changes in the aggregates, to write at once ([`Changes::write`]).
#[derive(Default)]
pub struct Changes {
    taken_out: Units,
    cleared: Units,
    rebuilt: Units,
    added: Units,
    /// Per (unit, metric): new events and their total.
    increments: HashMap<(UnitKey, String), (i64, f64)>,
    /// Units taken out and added back around their increments.
    incremented: HashMap<UnitKey, String>,
    arm_units: HashMap<(String, i64, String), i64>,
    multiple: HashMap<(String, i64), i64>,
}

impl Changes {
    /// `key`'s exposures went from `before` to `after` (the phase ending at `end`).
    pub fn exposures_changed(
        &mut self,
        key: &UnitKey,
        before: Option<&Exposed>,
        after: &Exposed,
        end: i64,
    ) {
        if let Some(before) = Exposed::single(before) {
            self.taken_out.push(key, &before.variant);
            self.count_unit(key, &before.variant, -1);
        }
        self.cleared.push(key, "");
        if after.variants == 1 {
            self.rebuilt.push_span(key, after.first, end);
            self.added.push(key, &after.variant);
            self.count_unit(key, &after.variant, 1);
        } else if before.is_none_or(|b| b.variants == 1) {
            *self
                .multiple
                .entry((key.flag.clone(), key.phase))
                .or_default() += 1;
        }
    }

    /// A new conversion of `key`, exposed to `variant` alone, counts.
    pub fn converted(&mut self, key: &UnitKey, variant: &str, metric: &str, value: f64) {
        self.incremented
            .entry(key.clone())
            .or_insert_with(|| variant.to_string());
        let increment = self
            .increments
            .entry((key.clone(), metric.to_string()))
            .or_default();
        increment.0 += 1;
        increment.1 += value;
    }

    /// `key`'s phase now ends at `end`: its outcomes are counted again without
    /// what happened since.
    pub fn phase_ended(&mut self, key: &UnitKey, exposed: &Exposed, end: i64) {
        self.taken_out.push(key, &exposed.variant);
        self.cleared.push(key, "");
        self.rebuilt.push_span(key, exposed.first, end);
        self.added.push(key, &exposed.variant);
    }

    fn count_unit(&mut self, key: &UnitKey, variant: &str, change: i64) {
        *self
            .arm_units
            .entry((key.flag.clone(), key.phase, variant.to_string()))
            .or_default() += change;
    }

    /// Writes the changes in three statements: the contributions taken
    /// out (reading the outcomes before they change) with the outcomes to
    /// rebuild deleted and the unit counts changed; the outcomes rebuilt and
    /// increased; the contributions added back.
    pub fn write(mut self, transaction: &mut Tx<'_>) -> Result<(), postgres::Error> {
        for (key, variant) in std::mem::take(&mut self.incremented) {
            self.taken_out.push(&key, &variant);
            self.added.push(&key, &variant);
        }
        let arm_units = counts(self.arm_units.into_iter());
        let multiple = counts(
            self.multiple
                .into_iter()
                .map(|((flag, phase), change)| ((flag, phase, String::new()), change)),
        );
        let (t, c) = (&self.taken_out, &self.cleared);
        if !(t.is_empty() && c.is_empty() && arm_units.0.is_empty() && multiple.0.is_empty()) {
            transaction.execute(
                TAKE_OUT,
                &[
                    &t.flags,
                    &t.phases,
                    &t.units,
                    &t.variants,
                    &-1_i64,
                    &c.flags,
                    &c.phases,
                    &c.units,
                    &arm_units.0,
                    &arm_units.1,
                    &arm_units.2,
                    &arm_units.3,
                    &multiple.0,
                    &multiple.1,
                    &multiple.3,
                ],
            )?;
        }
        let (r, i) = (&self.rebuilt, increments(&self.increments));
        if !(r.is_empty() && i.0.is_empty()) {
            transaction.execute(
                OUTCOMES,
                &[
                    &r.flags,
                    &r.phases,
                    &r.units,
                    &r.firsts,
                    &r.ends,
                    &i.0.flags,
                    &i.0.phases,
                    &i.0.units,
                    &i.0.variants,
                    &i.1,
                    &i.2,
                ],
            )?;
        }
        let a = &self.added;
        if !a.is_empty() {
            transaction.execute(ADD, &[&a.flags, &a.phases, &a.units, &a.variants, &1_i64])?;
        }
        Ok(())
    }
}

/// The increments as columns: (unit, metric) in `Units` (metric as
/// variant), events, totals.
fn increments(increments: &HashMap<(UnitKey, String), (i64, f64)>) -> (Units, Vec<i64>, Vec<f64>) {
    let mut columns = (Units::default(), Vec::new(), Vec::new());
    for ((key, metric), (events, total)) in increments {
        columns.0.push(key, metric);
        columns.1.push(*events);
        columns.2.push(*total);
    }
    columns
}

/// Count changes as columns (flag, phase, variant, change), those that
/// cancel out left out.
fn counts(
    changes: impl Iterator<Item = ((String, i64, String), i64)>,
) -> (Vec<String>, Vec<i64>, Vec<String>, Vec<i64>) {
    let mut columns = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for ((flag, phase, variant), change) in changes.filter(|(_, change)| *change != 0) {
        columns.0.push(flag);
        columns.1.push(phase);
        columns.2.push(variant);
        columns.3.push(change);
    }
    columns
}

/// Per (flag, phase, variant, metric) of units $1..$4, their outcomes
/// times $5 added to the arm's.
macro_rules! count_outcomes {
    () => {
        "
    INSERT INTO arm_outcomes AS a (flag, phase, variant, metric, converted, sum, sum_of_squares)
    SELECT k.flag, k.phase, k.variant, o.metric,
           $5::int8 * count(*) FILTER (WHERE o.events > 0),
           $5::int8::float8 * sum(o.total),
           $5::int8::float8 * sum(o.total * o.total)
    FROM unnest($1::text[], $2::int8[], $3::text[], $4::text[]) AS k(flag, phase, unit, variant)
    JOIN unit_outcomes o ON o.flag = k.flag AND o.phase = k.phase AND o.unit = k.unit
    GROUP BY k.flag, k.phase, k.variant, o.metric
    ON CONFLICT (flag, phase, variant, metric) DO UPDATE SET
        converted = a.converted + excluded.converted,
        sum = a.sum + excluded.sum,
        sum_of_squares = a.sum_of_squares + excluded.sum_of_squares"
    };
}

/// [`count_outcomes`] with $5 = -1, which reads the outcomes as they were
/// before the statement, while the outcomes of units $6..$8 are deleted,
/// and units per arm ($9..$12) and multiple exposures ($13..$15) change by
/// the counts given.
const TAKE_OUT: &str = concat!(
    "
    WITH cleared AS (
        DELETE FROM unit_outcomes o
        USING unnest($6::text[], $7::int8[], $8::text[]) AS k(flag, phase, unit)
        WHERE o.flag = k.flag AND o.phase = k.phase AND o.unit = k.unit
    ), units AS (
        INSERT INTO arm_units AS u (flag, phase, variant, units)
        SELECT * FROM unnest($9::text[], $10::int8[], $11::text[], $12::int8[])
        ON CONFLICT (flag, phase, variant) DO UPDATE SET units = u.units + excluded.units
    ), multiple AS (
        INSERT INTO multiple_exposures AS m (flag, phase, units)
        SELECT * FROM unnest($13::text[], $14::int8[], $15::int8[])
        ON CONFLICT (flag, phase) DO UPDATE SET units = m.units + excluded.units
    )",
    count_outcomes!()
);

/// Units $1..$5's outcomes rebuilt from their conversions in
/// [first, end), and (other) units $6..$11's increased by new conversions.
const OUTCOMES: &str = "
    WITH rebuilt AS (
        INSERT INTO unit_outcomes (flag, phase, unit, metric, events, total)
        SELECT k.flag, k.phase, k.unit, c.metric, count(*), coalesce(sum(c.value), 0)
        FROM unnest($1::text[], $2::int8[], $3::text[], $4::int8[], $5::int8[])
             AS k(flag, phase, unit, first, phase_end)
        JOIN conversions c ON c.unit = k.unit AND c.time >= k.first AND c.time < k.phase_end
        GROUP BY k.flag, k.phase, k.unit, c.metric
    )
    INSERT INTO unit_outcomes AS o (flag, phase, unit, metric, events, total)
    SELECT * FROM unnest($6::text[], $7::int8[], $8::text[], $9::text[], $10::int8[],
                         $11::float8[])
    ON CONFLICT (flag, phase, unit, metric) DO UPDATE SET
        events = o.events + excluded.events,
        total = o.total + excluded.total";

/// [`count_outcomes`], with $5 = 1.
const ADD: &str = count_outcomes!();
