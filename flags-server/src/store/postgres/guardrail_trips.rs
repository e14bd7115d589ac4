//! The guardrails' trip log in PostgreSQL (`guardrail_trips`): every trip
//! and alert, and the revive that ended a kill, at most
//! `TRIPS_KEPT_PER_FLAG` per flag, shared by every replica. Not here: what
//! is logged or when (`crate::guardrails`, `crate::kills`).

use postgres::Client;

use crate::store::{GuardrailTrip, TRIPS_KEPT_PER_FLAG};

/// Appends `trip` and deletes its flag's trips beyond the newest
/// [`TRIPS_KEPT_PER_FLAG`], in one transaction.
pub fn record(client: &mut Client, trip: &GuardrailTrip) -> Result<(), postgres::Error> {
    let mut transaction = client.transaction()?;
    transaction.execute(
        "INSERT INTO guardrail_trips (flag, guardrail, metric, arm, action, tripped_at,
             figures, reason, revived_at, revived_by)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        &[
            &trip.flag,
            &trip.guardrail,
            &trip.metric,
            &trip.arm,
            &trip.action,
            &trip.tripped_at,
            &trip.figures,
            &trip.reason,
            &trip.revived_at,
            &trip.revived_by,
        ],
    )?;
    transaction.execute(
        "DELETE FROM guardrail_trips WHERE flag = $1 AND id <= (
             SELECT id FROM guardrail_trips WHERE flag = $1
             ORDER BY id DESC LIMIT 1 OFFSET $2)",
        &[&trip.flag, &(TRIPS_KEPT_PER_FLAG as i64)],
    )?;
    transaction.commit()
}

/// Marks `flag`'s kills that no revive ended yet as revived `by` at `at`.
pub fn revive(client: &mut Client, flag: &str, by: &str, at: i64) -> Result<(), postgres::Error> {
    client.execute(
        "UPDATE guardrail_trips SET revived_at = $3, revived_by = $2
         WHERE flag = $1 AND action = 'kill' AND revived_at IS NULL",
        &[&flag, &by, &at],
    )?;
    Ok(())
}

/// The whole log, newest first.
pub fn load(client: &mut Client) -> Result<Vec<GuardrailTrip>, postgres::Error> {
    let rows = client.query(
        "SELECT flag, guardrail, metric, arm, action, tripped_at, figures, reason,
                revived_at, revived_by
         FROM guardrail_trips ORDER BY tripped_at DESC, id DESC",
        &[],
    )?;
    Ok(rows
        .iter()
        .map(|row| GuardrailTrip {
            flag: row.get(0),
            guardrail: row.get(1),
            metric: row.get(2),
            arm: row.get(3),
            action: row.get(4),
            tripped_at: row.get(5),
            figures: row.get(6),
            reason: row.get(7),
            revived_at: row.get(8),
            revived_by: row.get(9),
        })
        .collect())
}
