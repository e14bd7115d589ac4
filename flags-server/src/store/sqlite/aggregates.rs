//! Per-arm sufficient statistics, kept up to date by the writer as events
//! arrive, so a readout reads a handful of rows instead of every unit.
//!
//! Three levels, all in the same transaction as the events that change them:
//! `unit_outcomes` holds each exposed unit's count and total of each metric
//! from its first exposure in a phase until the next phase started;
//! (or until its experiment stopped);
//! `arm_units` and `arm_outcomes` hold, per arm, the units, the units with
//! at least one event, and the sum and sum of squares of the unit totals,
//! over units exposed to exactly one variant; `multiple_exposures` counts
//! the others. A unit's contribution is subtracted and re-added whenever its
//! exposures change (a second variant, an earlier first exposure), so the
//! totals always equal an aggregation from scratch; sums of squares are
//! updated by differences, exact for values with few significant digits and
//! within rounding otherwise. None of these sums can overflow: `ingest`
//! accepts values within ±1e12 only (`ingest::MAX_ABS_VALUE`, which says
//! why that bound keeps every total, sum and sum of squares finite). Not
//! here: storing the events themselves (`store`) or the statistics
//! (`analysis`).

use rusqlite::{Connection, OptionalExtension, params};

use crate::store::phases::Phases;

/// A unit's exposures in one phase of one experiment.
struct UnitExposure {
    variants: i64,
    variant: String,
    first: i64,
}

fn unit_exposure(
    connection: &Connection,
    flag: &str,
    phase: i64,
    unit: &str,
) -> rusqlite::Result<Option<UnitExposure>> {
    let mut statement = connection.prepare_cached(
        "SELECT count(*), min(variant), min(time) FROM exposures
         WHERE flag = ?1 AND phase = ?2 AND unit = ?3",
    )?;
    statement.query_row(params![flag, phase, unit], |row| {
        let variants: i64 = row.get(0)?;
        Ok((variants > 0).then(|| UnitExposure {
            variants,
            variant: row.get(1).unwrap_or_default(),
            first: row.get(2).unwrap_or_default(),
        }))
    })
}

/// Runs `write` (which stores one exposure of `unit` in `flag`'s `phase`)
/// and updates the aggregates for the change it made; returns its result.
pub fn around_exposure(
    connection: &Connection,
    ends: &Phases,
    flag: &str,
    phase: i64,
    unit: &str,
    write: impl FnOnce() -> rusqlite::Result<usize>,
) -> rusqlite::Result<usize> {
    let before = unit_exposure(connection, flag, phase, unit)?;
    let changed = write()?;
    if changed == 0 {
        return Ok(0);
    }
    let after = unit_exposure(connection, flag, phase, unit)?;
    if let Some(before) = &before
        && before.variants == 1
    {
        count_unit(connection, flag, phase, unit, &before.variant, -1)?;
    }
    let was_multiple = before.as_ref().is_some_and(|b| b.variants > 1);
    match after {
        Some(after) if after.variants == 1 => {
            recompute_unit(
                connection,
                flag,
                phase,
                unit,
                after.first,
                ends.end(flag, phase),
            )?;
            count_unit(connection, flag, phase, unit, &after.variant, 1)?;
        }
        Some(after) if after.variants > 1 && !was_multiple => {
            connection
                .prepare_cached(
                    "INSERT INTO multiple_exposures (flag, phase, units) VALUES (?1, ?2, 1)
                     ON CONFLICT (flag, phase) DO UPDATE SET units = units + 1",
                )?
                .execute(params![flag, phase])?;
        }
        _ => {}
    }
    Ok(changed)
}

/// Rebuilds `unit`'s outcomes in a phase from its conversions in `[first, end)`.
fn recompute_unit(
    connection: &Connection,
    flag: &str,
    phase: i64,
    unit: &str,
    first: i64,
    end: i64,
) -> rusqlite::Result<()> {
    connection
        .prepare_cached("DELETE FROM unit_outcomes WHERE flag = ?1 AND phase = ?2 AND unit = ?3")?
        .execute(params![flag, phase, unit])?;
    connection
        .prepare_cached(
            "INSERT INTO unit_outcomes (flag, phase, unit, metric, events, total)
             SELECT ?1, ?2, ?3, metric, count(*), total(value) FROM conversions
             WHERE unit = ?3 AND time >= ?4 AND time < ?5 GROUP BY metric",
        )?
        .execute(params![flag, phase, unit, first, end])?;
    Ok(())
}

/// Ends `flag`'s `phase` at `end` (its experiment stopped): the units
/// whose outcomes include conversions at or after `end` (sent ahead of the
/// stop) are counted again without them.
pub fn end_phase(
    connection: &Connection,
    flag: &str,
    phase: i64,
    end: i64,
) -> rusqlite::Result<()> {
    let mut affected = connection.prepare_cached(
        "SELECT e.unit, min(e.variant), min(e.time) FROM exposures e
         WHERE e.flag = ?1 AND e.phase = ?2
           AND EXISTS (SELECT 1 FROM conversions c WHERE c.unit = e.unit AND c.time >= ?3)
         GROUP BY e.unit HAVING count(*) = 1",
    )?;
    let units: Vec<(String, String, i64)> = affected
        .query_map(params![flag, phase, end], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?))
        })?
        .collect::<Result<_, _>>()?;
    for (unit, variant, first) in units {
        count_unit(connection, flag, phase, &unit, &variant, -1)?;
        recompute_unit(connection, flag, phase, &unit, first, end)?;
        count_unit(connection, flag, phase, &unit, &variant, 1)?;
    }
    Ok(())
}

/// Adds (`sign` 1) or removes (-1) a single-variant unit and its outcomes
/// to or from `variant`'s totals.
fn count_unit(
    connection: &Connection,
    flag: &str,
    phase: i64,
    unit: &str,
    variant: &str,
    sign: i64,
) -> rusqlite::Result<()> {
    connection
        .prepare_cached(
            "INSERT INTO arm_units (flag, phase, variant, units) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (flag, phase, variant) DO UPDATE SET units = units + excluded.units",
        )?
        .execute(params![flag, phase, variant, sign])?;
    let s = sign as f64;
    connection
        .prepare_cached(
            "INSERT INTO arm_outcomes (flag, phase, variant, metric, converted, sum, sum_of_squares)
             SELECT ?1, ?2, ?4, metric, ?5 * (events > 0), ?6 * total, ?6 * total * total
             FROM unit_outcomes WHERE flag = ?1 AND phase = ?2 AND unit = ?3
             ON CONFLICT (flag, phase, variant, metric) DO UPDATE SET
                 converted = converted + excluded.converted,
                 sum = sum + excluded.sum,
                 sum_of_squares = sum_of_squares + excluded.sum_of_squares",
        )?
        .execute(params![flag, phase, unit, variant, sign, s])?;
    Ok(())
}

/// Updates the aggregates for a new conversion of `unit`.
pub fn after_conversion(
    connection: &Connection,
    ends: &Phases,
    unit: &str,
    metric: &str,
    value: f64,
    time: i64,
) -> rusqlite::Result<()> {
    let mut exposed = connection.prepare_cached(
        "SELECT flag, phase, count(*), min(variant), min(time) FROM exposures
         WHERE unit = ?1 GROUP BY flag, phase",
    )?;
    let experiments: Vec<(String, i64, i64, String, i64)> = exposed
        .query_map([unit], |row| {
            Ok((
                row.get(0)?,
                row.get(1)?,
                row.get(2)?,
                row.get(3)?,
                row.get(4)?,
            ))
        })?
        .collect::<Result<_, _>>()?;
    for (flag, phase, variants, variant, first) in experiments {
        if variants != 1 || time < first || time >= ends.end(&flag, phase) {
            continue;
        }
        let old: (i64, f64) = connection
            .prepare_cached(
                "SELECT events, total FROM unit_outcomes
                 WHERE flag = ?1 AND phase = ?2 AND unit = ?3 AND metric = ?4",
            )?
            .query_row(params![flag, phase, unit, metric], |row| {
                Ok((row.get(0)?, row.get(1)?))
            })
            .optional()?
            .unwrap_or((0, 0.0));
        let new = (old.0 + 1, old.1 + value);
        connection
            .prepare_cached(
                "INSERT INTO unit_outcomes (flag, phase, unit, metric, events, total)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (flag, phase, unit, metric)
                 DO UPDATE SET events = excluded.events, total = excluded.total",
            )?
            .execute(params![flag, phase, unit, metric, new.0, new.1])?;
        connection
            .prepare_cached(
                "INSERT INTO arm_outcomes (flag, phase, variant, metric, converted, sum, sum_of_squares)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT (flag, phase, variant, metric) DO UPDATE SET
                     converted = converted + excluded.converted,
                     sum = sum + excluded.sum,
                     sum_of_squares = sum_of_squares + excluded.sum_of_squares",
            )?
            .execute(params![
                flag,
                phase,
                variant,
                metric,
                i64::from(old.0 == 0),
                value,
                new.1 * new.1 - old.1 * old.1
            ])?;
    }
    Ok(())
}
