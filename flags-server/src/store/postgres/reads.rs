//! What readouts and guardrail checks read: phases, per-arm units and
//! sums, looks and a guardrail window's units, each aggregated inside the
//! database (a few rows per call, never one per unit of a phase), with the
//! same definitions as the SQLite store's queries (`events::analysis`,
//! `guardrails::figures`): `sum(...)` and `coalesce(..., 0)` where SQLite
//! says `total(...)`. Not here: the statistics (`events::analysis`).

use postgres::Client;

use flags_core::stats::SideSums;

use crate::store::{
    ArmSums, LookPoint, MINUTE_MS, MetricWindow, PairedSums, PhaseRecord, RecentUnit, UnitValue,
};

/// Every stored phase of `flag`, in order.
pub fn phases(client: &mut Client, flag: &str) -> Result<Vec<PhaseRecord>, postgres::Error> {
    let rows = client.query(
        "SELECT number, started, stopped, assignment, design FROM phases
         WHERE flag = $1 ORDER BY number",
        &[&flag],
    )?;
    Ok(rows
        .iter()
        .map(|row| PhaseRecord {
            number: row.get(0),
            started: row.get(1),
            stopped: row.get(2),
            assignment: row.get(3),
            design: row.get(4),
        })
        .collect())
}

/// Units exposed to one variant only in `flag`'s `phase`, per variant.
pub fn arm_units(
    client: &mut Client,
    flag: &str,
    phase: i64,
) -> Result<Vec<(String, i64)>, postgres::Error> {
    let rows = client.query(
        "SELECT variant, units FROM arm_units WHERE flag = $1 AND phase = $2 ORDER BY variant",
        &[&flag, &phase],
    )?;
    Ok(rows.iter().map(|row| (row.get(0), row.get(1))).collect())
}

/// Units exposed to several variants in `flag`'s `phase`.
pub fn multiple_exposures(
    client: &mut Client,
    flag: &str,
    phase: i64,
) -> Result<i64, postgres::Error> {
    let row = client.query_opt(
        "SELECT units FROM multiple_exposures WHERE flag = $1 AND phase = $2",
        &[&flag, &phase],
    )?;
    Ok(row.map_or(0, |row| row.get(0)))
}

/// Per-arm sums of `metric` over `window`. A plain metric is read from the
/// maintained aggregates; as SQLite's readout does, an arm whose sums
/// rounding made impossible (values that nearly cancel; see
/// `events::analysis::arm_inputs`) has them summed afresh from the
/// per-unit totals. A cap is applied to the per-unit totals; a span needs
/// each event's time, so it reads the raw events.
pub fn metric_sums(
    client: &mut Client,
    flag: &str,
    phase: i64,
    metric: &str,
    window: MetricWindow,
) -> Result<Vec<ArmSums>, postgres::Error> {
    let MetricWindow {
        span_ms,
        cap,
        end,
        from_units,
    } = window;
    match span_ms {
        Some(span) => sums(
            client,
            WINDOWED,
            &[&flag, &phase, &metric, &span, &end, &cap],
        ),
        None if cap.is_some() || from_units => {
            sums(client, FROM_UNIT_TOTALS, &[&flag, &phase, &metric, &cap])
        }
        None => sums(client, FROM_AGGREGATES, &[&flag, &phase, &metric]),
    }
}

/// The rows of `query` (variant, converted, sum, sum of squares).
fn sums(
    client: &mut Client,
    query: &str,
    parameters: &[&(dyn postgres::types::ToSql + Sync)],
) -> Result<Vec<ArmSums>, postgres::Error> {
    let rows = client.query(query, parameters)?;
    Ok(rows
        .iter()
        .map(|row| ArmSums {
            variant: row.get(0),
            converted: row.get(1),
            sum: row.get(2),
            sum_of_squares: row.get(3),
        })
        .collect())
}

/// Per arm of phase $2 of flag $1 and metric $3, as the writer keeps them.
const FROM_AGGREGATES: &str = "
    SELECT variant, converted, sum, sum_of_squares FROM arm_outcomes
    WHERE flag = $1 AND phase = $2 AND metric = $3 ORDER BY variant";

/// Per arm of phase $2 of flag $1: units with an event of metric $3, and
/// the sum and sum of squares of their totals capped at $4 (none when
/// NULL), from the per-unit totals, over units exposed to one variant.
const FROM_UNIT_TOTALS: &str = "
    WITH exposed AS (
        SELECT unit, min(variant) AS variant FROM exposures
        WHERE flag = $1 AND phase = $2 GROUP BY unit HAVING count(*) = 1
    ), totals AS (
        SELECT e.variant, o.events,
               CASE WHEN $4::float8 IS NULL THEN o.total ELSE least(o.total, $4::float8) END
                   AS total
        FROM exposed e JOIN unit_outcomes o
          ON o.flag = $1 AND o.phase = $2 AND o.unit = e.unit AND o.metric = $3
    )
    SELECT variant, count(*) FILTER (WHERE events > 0), coalesce(sum(total), 0),
           coalesce(sum(total * total), 0)
    FROM totals GROUP BY variant ORDER BY variant";

/// Per arm of phase $2 of flag $1: units with an event of metric $3, and
/// the sum and sum of squares of unit totals capped at $6 (none when
/// NULL), counting events from the unit's first exposure until $4 ms later
/// or the phase's end $5, whichever comes first; over units exposed to one
/// variant.
const WINDOWED: &str = "
    WITH exposed AS (
        SELECT unit, min(variant) AS variant, min(time) AS first FROM exposures
        WHERE flag = $1 AND phase = $2 GROUP BY unit HAVING count(*) = 1
    ), totals AS (
        SELECT e.variant,
               CASE WHEN $6::float8 IS NULL THEN coalesce(sum(c.value), 0)
                    ELSE least(coalesce(sum(c.value), 0), $6::float8) END AS total
        FROM exposed e JOIN conversions c
          ON c.unit = e.unit AND c.metric = $3 AND c.time >= e.first
         AND c.time < least(e.first + $4::int8, $5::int8)
        GROUP BY e.unit, e.variant
    )
    SELECT variant, count(*), coalesce(sum(total), 0), coalesce(sum(total * total), 0)
    FROM totals GROUP BY variant ORDER BY variant";

/// Per-arm sums of two per-unit values and of their product (see
/// [`UnitValue`]), over units exposed to one variant, from the stored
/// events: the SQLite store's `paired_sums`.
pub fn paired_sums(
    client: &mut Client,
    flag: &str,
    phase: i64,
    end: i64,
    first: UnitValue<'_>,
    second: UnitValue<'_>,
) -> Result<Vec<PairedSums>, postgres::Error> {
    let rows = client.query(
        PAIRED,
        &[
            &flag,
            &phase,
            &end,
            &first.metric,
            &first.from_ms,
            &first.to_ms,
            &first.cap,
            &first.converted,
            &second.metric,
            &second.from_ms,
            &second.to_ms,
            &second.cap,
            &second.converted,
        ],
    )?;
    Ok(rows
        .iter()
        .map(|row| PairedSums {
            variant: row.get(0),
            first: SideSums {
                sum: row.get(1),
                sum_of_squares: row.get(2),
            },
            second: SideSums {
                sum: row.get(3),
                sum_of_squares: row.get(4),
            },
            sum_of_products: row.get(5),
        })
        .collect())
}

/// The SQLite store's `PAIRED`, with the same parameters.
const PAIRED: &str = "
    WITH exposed AS (
        SELECT unit, min(variant) AS variant, min(time) AS first FROM exposures
        WHERE flag = $1 AND phase = $2 GROUP BY unit HAVING count(*) = 1
    ), first_totals AS (
        SELECT e.unit, coalesce(sum(c.value), 0) AS total
        FROM exposed e JOIN conversions c
          ON c.unit = e.unit AND c.metric = $4 AND c.time >= e.first + $5::int8
         AND c.time < least(coalesce(e.first + $6::int8, $3::int8), $3::int8)
        GROUP BY e.unit
    ), second_totals AS (
        SELECT e.unit, coalesce(sum(c.value), 0) AS total
        FROM exposed e JOIN conversions c
          ON c.unit = e.unit AND c.metric = $9 AND c.time >= e.first + $10::int8
         AND c.time < least(coalesce(e.first + $11::int8, $3::int8), $3::int8)
        GROUP BY e.unit
    ), unit_values AS (
        SELECT e.variant,
               CASE WHEN f.unit IS NULL THEN 0.0::float8 WHEN $8::bool THEN 1.0::float8
                    WHEN $7::float8 IS NULL THEN f.total ELSE least(f.total, $7::float8) END AS x,
               CASE WHEN s.unit IS NULL THEN 0.0::float8 WHEN $13::bool THEN 1.0::float8
                    WHEN $12::float8 IS NULL THEN s.total ELSE least(s.total, $12::float8) END AS y
        FROM exposed e
        LEFT JOIN first_totals f ON f.unit = e.unit
        LEFT JOIN second_totals s ON s.unit = e.unit
    )
    SELECT variant, coalesce(sum(x), 0), coalesce(sum(x * x), 0), coalesce(sum(y), 0),
           coalesce(sum(y * y), 0), coalesce(sum(x * y), 0)
    FROM unit_values GROUP BY variant ORDER BY variant";

/// Each arm's running-minimum p-value by minute, oldest first.
pub fn look_history(
    client: &mut Client,
    flag: &str,
    phase: i64,
    metric: &str,
) -> Result<Vec<LookPoint>, postgres::Error> {
    let rows = client.query(
        "SELECT arm, minute, p_value FROM look_history
         WHERE flag = $1 AND phase = $2 AND metric = $3 ORDER BY minute, arm",
        &[&flag, &phase, &metric],
    )?;
    Ok(rows
        .iter()
        .map(|row| LookPoint {
            arm: row.get(0),
            time: row.get::<_, i64>(1) * MINUTE_MS,
            p_value: row.get(2),
        })
        .collect())
}

/// The stored running minima of `flag`'s `phase` for `metric`, per arm.
pub fn looks(
    client: &mut Client,
    flag: &str,
    phase: i64,
    metric: &str,
) -> Result<Vec<(String, f64)>, postgres::Error> {
    let rows = client.query(
        "SELECT arm, p_value FROM looks WHERE flag = $1 AND phase = $2 AND metric = $3
         ORDER BY arm",
        &[&flag, &phase, &metric],
    )?;
    Ok(rows.iter().map(|row| (row.get(0), row.get(1))).collect())
}

/// The units of `flag`'s `phase` with an event of `metric` in `[from, to]`,
/// with their exposures in the phase.
pub fn recent_units(
    client: &mut Client,
    flag: &str,
    phase: i64,
    metric: &str,
    from: i64,
    to: i64,
) -> Result<Vec<RecentUnit>, postgres::Error> {
    let rows = client.query(
        "WITH recent AS (
             SELECT unit, max(time) AS last FROM conversions
             WHERE metric = $3 AND time >= $4 AND time <= $5 GROUP BY unit
         )
         SELECT count(*), min(e.variant), min(e.time), r.last
         FROM recent r JOIN exposures e ON e.flag = $1 AND e.phase = $2 AND e.unit = r.unit
         GROUP BY r.unit, r.last ORDER BY r.unit",
        &[&flag, &phase, &metric, &from, &to],
    )?;
    Ok(rows
        .iter()
        .map(|row| RecentUnit {
            variants: row.get(0),
            variant: row.get(1),
            first_exposure: row.get(2),
            last_event: row.get(3),
        })
        .collect())
}
