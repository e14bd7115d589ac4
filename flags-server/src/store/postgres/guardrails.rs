//! Guardrail states in PostgreSQL (`guardrail_checks`): per flag,
//! guardrail, metric and arm, what the last check left, shared by every
//! replica. A save writes all its rows in one statement: all or none.
//! Not here: what the fields mean or when to save (`crate::guardrails`).

use std::collections::HashSet;

use postgres::Client;

use crate::store::GuardrailRow;

/// Every stored state, by flag, guardrail, metric and arm.
pub fn load(client: &mut Client) -> Result<Vec<GuardrailRow>, postgres::Error> {
    let rows = client.query(
        "SELECT flag, guardrail, metric, arm, flag_version, phase, running_min, above_since,
                figures, decision, decided_at, checked_at
         FROM guardrail_checks ORDER BY flag, guardrail, metric, arm",
        &[],
    )?;
    Ok(rows
        .iter()
        .map(|row| GuardrailRow {
            flag: row.get(0),
            guardrail: row.get(1),
            metric: row.get(2),
            arm: row.get(3),
            flag_version: row.get(4),
            phase: row.get(5),
            running_min: row.get(6),
            above_since: row.get(7),
            figures: row.get(8),
            decision: row.get(9),
            decided_at: row.get(10),
            checked_at: row.get(11),
        })
        .collect())
}

/// Replaces the stored states of `rows`' keys; of two rows with one key,
/// the later stays (one statement cannot write a row twice).
pub fn save(client: &mut Client, rows: &[GuardrailRow]) -> Result<(), postgres::Error> {
    let mut keys = HashSet::new();
    let mut rows: Vec<&GuardrailRow> = rows
        .iter()
        .rev()
        .filter(|r| keys.insert((&r.flag, r.guardrail, &r.metric, &r.arm)))
        .collect();
    if rows.is_empty() {
        return Ok(());
    }
    rows.reverse();
    let column =
        |field: fn(&GuardrailRow) -> String| rows.iter().copied().map(field).collect::<Vec<_>>();
    let flags = column(|r| r.flag.clone());
    let metrics = column(|r| r.metric.clone());
    let arms = column(|r| r.arm.clone());
    let versions = column(|r| r.flag_version.clone());
    let figures = column(|r| r.figures.clone());
    let decisions = column(|r| r.decision.clone());
    let guardrails: Vec<i64> = rows.iter().map(|r| r.guardrail).collect();
    let phases: Vec<i64> = rows.iter().map(|r| r.phase).collect();
    let running_min: Vec<Option<f64>> = rows.iter().map(|r| r.running_min).collect();
    let above_since: Vec<Option<i64>> = rows.iter().map(|r| r.above_since).collect();
    let decided_at: Vec<i64> = rows.iter().map(|r| r.decided_at).collect();
    let checked_at: Vec<i64> = rows.iter().map(|r| r.checked_at).collect();
    client.execute(
        "INSERT INTO guardrail_checks (flag, guardrail, metric, arm, flag_version, phase,
             running_min, above_since, figures, decision, decided_at, checked_at)
         SELECT * FROM unnest($1::text[], $2::int8[], $3::text[], $4::text[], $5::text[],
                              $6::int8[], $7::float8[], $8::int8[], $9::text[], $10::text[],
                              $11::int8[], $12::int8[])
         ON CONFLICT (flag, guardrail, metric, arm) DO UPDATE SET
             flag_version = excluded.flag_version, phase = excluded.phase,
             running_min = excluded.running_min, above_since = excluded.above_since,
             figures = excluded.figures, decision = excluded.decision,
             decided_at = excluded.decided_at, checked_at = excluded.checked_at",
        &[
            &flags,
            &guardrails,
            &metrics,
            &arms,
            &versions,
            &phases,
            &running_min,
            &above_since,
            &figures,
            &decisions,
            &decided_at,
            &checked_at,
        ],
    )?;
    Ok(())
}
