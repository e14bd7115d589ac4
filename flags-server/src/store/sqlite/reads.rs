//! The reads of readouts and guardrail checks in SQLite: per-arm sums from
//! the aggregates the writer maintains (`aggregates`), or from the per-unit
//! totals when a metric caps them or counts a window after exposure.
//!
//! Not here: what the sums mean or how they are analysed
//! (`crate::events::analysis`, `crate::guardrails::figures`).

use rusqlite::{Connection, OptionalExtension, params};

use flags_core::stats::SideSums;

use crate::store::{
    ArmSums, LookPoint, MINUTE_MS, MetricWindow, PairedSums, PhaseRecord, RecentUnit, UnitValue,
};

/// Every stored phase of `flag`, in order.
pub fn phases(connection: &Connection, flag: &str) -> rusqlite::Result<Vec<PhaseRecord>> {
    let mut statement = connection.prepare_cached(
        "SELECT number, started, stopped, assignment, design FROM phases
         WHERE flag = ?1 ORDER BY number",
    )?;
    let rows = statement.query_map([flag], |row| {
        Ok(PhaseRecord {
            number: row.get(0)?,
            started: row.get(1)?,
            stopped: row.get(2)?,
            assignment: row.get(3)?,
            design: row.get(4)?,
        })
    })?;
    rows.collect()
}

/// Units exposed to one variant only, per variant.
pub fn arm_units(
    connection: &Connection,
    flag: &str,
    phase: i64,
) -> rusqlite::Result<Vec<(String, i64)>> {
    let mut statement = connection.prepare_cached(
        "SELECT variant, units FROM arm_units WHERE flag = ?1 AND phase = ?2 ORDER BY variant",
    )?;
    let rows = statement.query_map(params![flag, phase], |row| Ok((row.get(0)?, row.get(1)?)))?;
    rows.collect()
}

/// Units exposed to several variants.
pub fn multiple_exposures(
    connection: &Connection,
    flag: &str,
    phase: i64,
) -> rusqlite::Result<i64> {
    Ok(connection
        .prepare_cached("SELECT units FROM multiple_exposures WHERE flag = ?1 AND phase = ?2")?
        .query_row(params![flag, phase], |row| row.get(0))
        .optional()?
        .unwrap_or(0))
}

/// Per-arm sums of `metric` over `window`.
pub fn metric_sums(
    connection: &Connection,
    flag: &str,
    phase: i64,
    metric: &str,
    window: MetricWindow,
) -> rusqlite::Result<Vec<ArmSums>> {
    let MetricWindow {
        span_ms,
        cap,
        end,
        from_units,
    } = window;
    match span_ms {
        Some(span_ms) => sums(
            connection,
            WINDOWED,
            params![flag, phase, metric, span_ms, end, cap],
        ),
        None if cap.is_some() || from_units => sums(
            connection,
            FROM_UNIT_TOTALS,
            params![flag, phase, metric, cap],
        ),
        None => sums(connection, FROM_AGGREGATES, params![flag, phase, metric]),
    }
}

fn sums(
    connection: &Connection,
    query: &str,
    parameters: &[&dyn rusqlite::ToSql],
) -> rusqlite::Result<Vec<ArmSums>> {
    let mut statement = connection.prepare_cached(query)?;
    let rows = statement.query_map(parameters, |row| {
        Ok(ArmSums {
            variant: row.get(0)?,
            converted: row.get(1)?,
            sum: row.get(2)?,
            sum_of_squares: row.get(3)?,
        })
    })?;
    rows.collect()
}

/// The per-arm sums the writer maintains.
const FROM_AGGREGATES: &str = "
    SELECT variant, converted, sum, sum_of_squares FROM arm_outcomes
    WHERE flag = ?1 AND phase = ?2 AND metric = ?3";

/// Each single-variant unit's total, capped at ?4 when given, summed
/// afresh (the totals stop at the phase's end already).
const FROM_UNIT_TOTALS: &str = "
    WITH exposed AS (
        SELECT unit, min(variant) AS variant FROM exposures
        WHERE flag = ?1 AND phase = ?2 GROUP BY unit HAVING count(*) = 1
    ), totals AS (
        SELECT e.variant, o.events,
               CASE WHEN ?4 IS NULL THEN o.total ELSE min(o.total, ?4) END AS total
        FROM exposed e JOIN unit_outcomes o
          ON o.flag = ?1 AND o.phase = ?2 AND o.unit = e.unit AND o.metric = ?3
    )
    SELECT variant, sum(events > 0), total(total), total(total * total)
    FROM totals GROUP BY variant";

/// Each single-variant unit's events within ?4 ms of its first exposure
/// and before the phase's end ?5, capped at ?6 when given.
const WINDOWED: &str = "
    WITH exposed AS (
        SELECT unit, min(variant) AS variant, min(time) AS first FROM exposures
        WHERE flag = ?1 AND phase = ?2 GROUP BY unit HAVING count(*) = 1
    ), totals AS (
        SELECT e.variant, count(c.time) AS events,
               CASE WHEN ?6 IS NULL THEN total(c.value) ELSE min(total(c.value), ?6) END AS total
        FROM exposed e JOIN conversions c
          ON c.unit = e.unit AND c.metric = ?3 AND c.time >= e.first
         AND c.time < min(coalesce(e.first + ?4, ?5), ?5)
        GROUP BY e.unit
    )
    SELECT variant, count(*), total(total), total(total * total) FROM totals GROUP BY variant";

/// Per-arm sums of two per-unit values and of their product (see
/// [`UnitValue`]), over units exposed to one variant, from the stored
/// events (each unit's conversions found by the `conversions_by_unit`
/// index): the same whatever order the events arrived in.
pub fn paired_sums(
    connection: &Connection,
    flag: &str,
    phase: i64,
    end: i64,
    first: UnitValue<'_>,
    second: UnitValue<'_>,
) -> rusqlite::Result<Vec<PairedSums>> {
    let mut statement = connection.prepare_cached(PAIRED)?;
    let rows = statement.query_map(
        params![
            flag,
            phase,
            end,
            first.metric,
            first.from_ms,
            first.to_ms,
            first.cap,
            first.converted,
            second.metric,
            second.from_ms,
            second.to_ms,
            second.cap,
            second.converted,
        ],
        |row| {
            Ok(PairedSums {
                variant: row.get(0)?,
                first: SideSums {
                    sum: row.get(1)?,
                    sum_of_squares: row.get(2)?,
                },
                second: SideSums {
                    sum: row.get(3)?,
                    sum_of_squares: row.get(4)?,
                },
                sum_of_products: row.get(5)?,
            })
        },
    )?;
    rows.collect()
}

/// Phase ?2 of flag ?1, ending at ?3; per side, the metric (?4, ?9), the
/// events' start and end from the first exposure (?5 and ?6, ?10 and ?11;
/// an end of NULL is the phase's), the cap (?7, ?12; none when NULL) and
/// whether the value is "converted" rather than the total (?8, ?13).
const PAIRED: &str = "
    WITH exposed AS (
        SELECT unit, min(variant) AS variant, min(time) AS first FROM exposures
        WHERE flag = ?1 AND phase = ?2 GROUP BY unit HAVING count(*) = 1
    ), first_totals AS (
        SELECT e.unit, total(c.value) AS total
        FROM exposed e JOIN conversions c
          ON c.unit = e.unit AND c.metric = ?4 AND c.time >= e.first + ?5
         AND c.time < min(coalesce(e.first + ?6, ?3), ?3)
        GROUP BY e.unit
    ), second_totals AS (
        SELECT e.unit, total(c.value) AS total
        FROM exposed e JOIN conversions c
          ON c.unit = e.unit AND c.metric = ?9 AND c.time >= e.first + ?10
         AND c.time < min(coalesce(e.first + ?11, ?3), ?3)
        GROUP BY e.unit
    ), unit_values AS (
        SELECT e.variant,
               CASE WHEN f.unit IS NULL THEN 0.0 WHEN ?8 THEN 1.0
                    WHEN ?7 IS NULL THEN f.total ELSE min(f.total, ?7) END AS x,
               CASE WHEN s.unit IS NULL THEN 0.0 WHEN ?13 THEN 1.0
                    WHEN ?12 IS NULL THEN s.total ELSE min(s.total, ?12) END AS y
        FROM exposed e
        LEFT JOIN first_totals f ON f.unit = e.unit
        LEFT JOIN second_totals s ON s.unit = e.unit
    )
    SELECT variant, total(x), total(x * x), total(y), total(y * y), total(x * y)
    FROM unit_values GROUP BY variant ORDER BY variant";

/// The stored running-minimum p-values, per arm.
pub fn looks(
    connection: &Connection,
    flag: &str,
    phase: i64,
    metric: &str,
) -> rusqlite::Result<Vec<(String, f64)>> {
    let mut statement = connection.prepare_cached(
        "SELECT arm, p_value FROM looks WHERE flag = ?1 AND phase = ?2 AND metric = ?3
         ORDER BY arm",
    )?;
    let rows = statement.query_map(params![flag, phase, metric], |row| {
        Ok((row.get(0)?, row.get(1)?))
    })?;
    rows.collect()
}

/// Each arm's running-minimum p-value by minute, oldest first.
pub fn look_history(
    connection: &Connection,
    flag: &str,
    phase: i64,
    metric: &str,
) -> rusqlite::Result<Vec<LookPoint>> {
    let mut statement = connection.prepare_cached(
        "SELECT arm, minute, p_value FROM look_history
         WHERE flag = ?1 AND phase = ?2 AND metric = ?3 ORDER BY minute, arm",
    )?;
    let rows = statement.query_map(params![flag, phase, metric], |row| {
        Ok(LookPoint {
            arm: row.get(0)?,
            time: row.get::<_, i64>(1)? * MINUTE_MS,
            p_value: row.get(2)?,
        })
    })?;
    rows.collect()
}

/// The units with an event of `metric` in `[from, to]`, and their
/// exposures in the phase.
pub fn recent_units(
    connection: &Connection,
    flag: &str,
    phase: i64,
    metric: &str,
    from: i64,
    to: i64,
) -> rusqlite::Result<Vec<RecentUnit>> {
    let mut statement = connection.prepare_cached(
        "WITH recent AS (
             SELECT unit, max(time) AS last FROM conversions
             WHERE metric = ?3 AND time >= ?4 AND time <= ?5 GROUP BY unit
         )
         SELECT count(*), min(e.variant), min(e.time), r.last
         FROM recent r JOIN exposures e ON e.flag = ?1 AND e.phase = ?2 AND e.unit = r.unit
         GROUP BY r.unit",
    )?;
    let rows = statement.query_map(params![flag, phase, metric, from, to], |row| {
        Ok(RecentUnit {
            variants: row.get(0)?,
            variant: row.get(1)?,
            first_exposure: row.get(2)?,
            last_event: row.get(3)?,
        })
    })?;
    rows.collect()
}
