//! Guardrail states in the SQLite event database (`guardrail_checks`,
//! schema version 9): one row per flag, guardrail, metric and compared arm,
//! the state the last check left, so that a restart resumes where it
//! stopped and `flags results` can show it with no server running.
//!
//! Written with the events' durability, like the runtime kills. Not here:
//! what the columns mean (`crate::guardrails::store`), deciding or when to
//! write (`crate::guardrails`).

use rusqlite::{Connection, params};

use crate::store::GuardrailRow;

/// Replaces the stored states of `rows`' keys in one transaction.
pub fn save(connection: &mut Connection, rows: &[GuardrailRow]) -> rusqlite::Result<()> {
    let transaction = connection.transaction()?;
    {
        let mut insert = transaction.prepare_cached(
            "INSERT OR REPLACE INTO guardrail_checks (flag, guardrail, metric, arm,
                 flag_version, phase, running_min, above_since, figures, decision,
                 decided_at, checked_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
        )?;
        for row in rows {
            insert.execute(params![
                row.flag,
                row.guardrail,
                row.metric,
                row.arm,
                row.flag_version,
                row.phase,
                row.running_min,
                row.above_since,
                row.figures,
                row.decision,
                row.decided_at,
                row.checked_at,
            ])?;
        }
    }
    transaction.commit()
}

/// Every stored state, by flag, guardrail, metric and arm.
pub fn load(connection: &Connection) -> rusqlite::Result<Vec<GuardrailRow>> {
    let mut statement = connection.prepare(
        "SELECT flag, guardrail, metric, arm, flag_version, phase, running_min, above_since,
                figures, decision, decided_at, checked_at
         FROM guardrail_checks ORDER BY flag, guardrail, metric, arm",
    )?;
    let rows = statement.query_map([], |row| {
        Ok(GuardrailRow {
            flag: row.get(0)?,
            guardrail: row.get(1)?,
            metric: row.get(2)?,
            arm: row.get(3)?,
            flag_version: row.get(4)?,
            phase: row.get(5)?,
            running_min: row.get(6)?,
            above_since: row.get(7)?,
            figures: row.get(8)?,
            decision: row.get(9)?,
            decided_at: row.get(10)?,
            checked_at: row.get(11)?,
        })
    })?;
    rows.collect()
}
