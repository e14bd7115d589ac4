//! Per-arm sufficient statistics kept up to date by the writer, set-based:
//! the same tables and the same totals as the SQLite store's (see
//! `events::aggregates`, which says what each level holds), but each
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

use postgres::Transaction;

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
    /// The variant, or (for `rebuilt`) unused.
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

    /// Writes the changes, in the order the module's documentation gives.
    pub fn write(mut self, transaction: &mut Transaction<'_>) -> Result<(), postgres::Error> {
        for (key, variant) in std::mem::take(&mut self.incremented) {
            self.taken_out.push(&key, &variant);
            self.added.push(&key, &variant);
        }
        count_outcomes(transaction, &self.taken_out, -1)?;
        if !self.cleared.is_empty() {
            let c = &self.cleared;
            transaction.execute(CLEAR, &[&c.flags, &c.phases, &c.units])?;
        }
        if !self.rebuilt.is_empty() {
            let r = &self.rebuilt;
            transaction.execute(
                REBUILD,
                &[&r.flags, &r.phases, &r.units, &r.firsts, &r.ends],
            )?;
        }
        increment(transaction, &self.increments)?;
        count_outcomes(transaction, &self.added, 1)?;
        add_counts(transaction, ADD_ARM_UNITS, self.arm_units.into_iter())?;
        let multiple = self
            .multiple
            .into_iter()
            .map(|((flag, phase), change)| ((flag, phase, String::new()), change));
        add_counts(transaction, ADD_MULTIPLE, multiple)
    }
}

/// Adds (`sign` 1) or takes out (-1) the outcomes of `units` to or from
/// their variant's totals.
fn count_outcomes(
    transaction: &mut Transaction<'_>,
    units: &Units,
    sign: i64,
) -> Result<(), postgres::Error> {
    if units.is_empty() {
        return Ok(());
    }
    let u = units;
    transaction.execute(
        COUNT_OUTCOMES,
        &[&u.flags, &u.phases, &u.units, &u.variants, &sign],
    )?;
    Ok(())
}

fn increment(
    transaction: &mut Transaction<'_>,
    increments: &HashMap<(UnitKey, String), (i64, f64)>,
) -> Result<(), postgres::Error> {
    if increments.is_empty() {
        return Ok(());
    }
    let mut columns = (Units::default(), Vec::new(), Vec::new());
    for ((key, metric), (events, total)) in increments {
        columns.0.push(key, metric);
        columns.1.push(*events);
        columns.2.push(*total);
    }
    let (u, events, totals) = &columns;
    transaction.execute(
        INCREMENT,
        &[&u.flags, &u.phases, &u.units, &u.variants, events, totals],
    )?;
    Ok(())
}

/// Adds each change to its row of `arm_units` or `multiple_exposures`
/// (`sql`), skipping those that cancel out.
fn add_counts(
    transaction: &mut Transaction<'_>,
    sql: &str,
    changes: impl Iterator<Item = ((String, i64, String), i64)>,
) -> Result<(), postgres::Error> {
    let (mut flags, mut phases, mut variants, mut counts) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for ((flag, phase, variant), change) in changes.filter(|(_, change)| *change != 0) {
        flags.push(flag);
        phases.push(phase);
        variants.push(variant);
        counts.push(change);
    }
    if !flags.is_empty() {
        transaction.execute(sql, &[&flags, &phases, &variants, &counts])?;
    }
    Ok(())
}

/// Per (flag, phase, variant, metric) of units $1..$4, their outcomes times
/// $5 added to the arm's.
const COUNT_OUTCOMES: &str = "
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
        sum_of_squares = a.sum_of_squares + excluded.sum_of_squares";

const CLEAR: &str = "
    DELETE FROM unit_outcomes o
    USING unnest($1::text[], $2::int8[], $3::text[]) AS k(flag, phase, unit)
    WHERE o.flag = k.flag AND o.phase = k.phase AND o.unit = k.unit";

/// Each unit's outcomes from its conversions in [first, end).
const REBUILD: &str = "
    INSERT INTO unit_outcomes (flag, phase, unit, metric, events, total)
    SELECT k.flag, k.phase, k.unit, c.metric, count(*), coalesce(sum(c.value), 0)
    FROM unnest($1::text[], $2::int8[], $3::text[], $4::int8[], $5::int8[])
         AS k(flag, phase, unit, first, phase_end)
    JOIN conversions c ON c.unit = k.unit AND c.time >= k.first AND c.time < k.phase_end
    GROUP BY k.flag, k.phase, k.unit, c.metric";

const INCREMENT: &str = "
    INSERT INTO unit_outcomes AS o (flag, phase, unit, metric, events, total)
    SELECT * FROM unnest($1::text[], $2::int8[], $3::text[], $4::text[], $5::int8[], $6::float8[])
    ON CONFLICT (flag, phase, unit, metric) DO UPDATE SET
        events = o.events + excluded.events,
        total = o.total + excluded.total";

const ADD_ARM_UNITS: &str = "
    INSERT INTO arm_units AS a (flag, phase, variant, units)
    SELECT * FROM unnest($1::text[], $2::int8[], $3::text[], $4::int8[])
    ON CONFLICT (flag, phase, variant) DO UPDATE SET units = a.units + excluded.units";

/// As [`ADD_ARM_UNITS`] for `multiple_exposures` ($3 unused).
const ADD_MULTIPLE: &str = "
    INSERT INTO multiple_exposures AS m (flag, phase, units)
    SELECT flag, phase, units
    FROM unnest($1::text[], $2::int8[], $3::text[], $4::int8[]) AS k(flag, phase, variant, units)
    ON CONFLICT (flag, phase) DO UPDATE SET units = m.units + excluded.units";
