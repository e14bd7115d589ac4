//! Runtime kills in PostgreSQL (`runtime_kills`): the flags disabled
//! through the admin API or by a guardrail, shared by every replica. Each
//! call commits before it returns. Not here: applying kills to the served
//! config (`crate::kills`).

use flags_core::KilledBy;
use postgres::Client;

use crate::store::StoredKill;

/// Every stored kill, by flag; a row naming an unknown killer is an error
/// naming the flag.
pub fn load(client: &mut Client) -> Result<Result<Vec<StoredKill>, String>, postgres::Error> {
    let rows = client.query(
        "SELECT flag, killed_by, killed_at, reason FROM runtime_kills ORDER BY flag",
        &[],
    )?;
    Ok(rows
        .iter()
        .map(|row| {
            let flag: String = row.get(0);
            let by: String = row.get(1);
            let by = KilledBy::parse(&by)
                .ok_or_else(|| format!("flag `{flag}` killed by unknown `{by}`"))?;
            Ok(StoredKill {
                flag,
                by,
                at_ms: row.get(2),
                reason: row.get(3),
            })
        })
        .collect())
}

/// Stores `kill`, replacing any earlier kill of its flag.
pub fn record(client: &mut Client, kill: &StoredKill) -> Result<(), postgres::Error> {
    client.execute(
        "INSERT INTO runtime_kills (flag, killed_by, killed_at, reason) VALUES ($1, $2, $3, $4)
         ON CONFLICT (flag) DO UPDATE SET killed_by = excluded.killed_by,
             killed_at = excluded.killed_at, reason = excluded.reason",
        &[&kill.flag, &kill.by.to_string(), &kill.at_ms, &kill.reason],
    )?;
    Ok(())
}

/// Removes the kill of `flag`, if stored.
pub fn clear(client: &mut Client, flag: &str) -> Result<(), postgres::Error> {
    client.execute("DELETE FROM runtime_kills WHERE flag = $1", &[&flag])?;
    Ok(())
}
