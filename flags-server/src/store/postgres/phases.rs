//! Analysis phases in PostgreSQL: the `phases` table, loaded afresh by each
//! group under the group lock (another replica may have started a phase
//! since), and the changes of newly published configs stored
//! (`crate::store::phases` decides them, so two replicas publishing the
//! same config start one phase). Not here: which events belong where
//! (`group`) or what a readout shows (`reads`).

use super::aggregates::{Changes, Exposed, UnitKey};
use super::prepared::Tx;
use crate::store::phases::{PhaseChange, PhaseRow, Phases};

/// The stored phases.
pub fn load(transaction: &mut Tx<'_>) -> Result<Phases, postgres::Error> {
    let mut phases = Phases::default();
    let rows = transaction.query(
        "SELECT flag, number, started, assignment, stopped FROM phases ORDER BY flag, number",
        &[],
    )?;
    for row in rows {
        let stored = PhaseRow {
            number: row.get(1),
            started: row.get(2),
            assignment: row.get(3),
            stopped: row.get(4),
        };
        phases.push(row.get(0), stored);
    }
    Ok(phases)
}

/// Stores what publishing a config changed: a stop takes back from the
/// readout what was counted at or after it; a start is a new row.
pub fn store_changes(
    transaction: &mut Tx<'_>,
    changes: Vec<PhaseChange<'_>>,
) -> Result<(), postgres::Error> {
    for change in changes {
        match change {
            PhaseChange::Stopped {
                flag,
                phase,
                stopped,
            } => {
                transaction.execute(
                    "UPDATE phases SET stopped = $3 WHERE flag = $1 AND number = $2",
                    &[&flag, &phase, &stopped],
                )?;
                end_phase(transaction, &flag, phase, stopped)?;
            }
            PhaseChange::Started {
                flag,
                phase,
                assignment,
                started,
            } => {
                transaction.execute(
                    "INSERT INTO phases (flag, number, assignment, started, design)
                     VALUES ($1, $2, $3, $4, $5)",
                    &[&flag.flag, &phase, &assignment, &started, &flag.design],
                )?;
            }
        }
    }
    Ok(())
}

/// Ends `flag`'s `phase` at `end`: the units exposed to one variant whose
/// outcomes may include conversions at or after `end` are counted again
/// without them.
fn end_phase(
    transaction: &mut Tx<'_>,
    flag: &str,
    phase: i64,
    end: i64,
) -> Result<(), postgres::Error> {
    let units = transaction.query(
        "SELECT e.unit, min(e.variant), min(e.time) FROM exposures e
         WHERE e.flag = $1 AND e.phase = $2
           AND EXISTS (SELECT 1 FROM conversions c WHERE c.unit = e.unit AND c.time >= $3)
         GROUP BY e.unit HAVING count(*) = 1",
        &[&flag, &phase, &end],
    )?;
    let mut changes = Changes::default();
    for row in units {
        let key = UnitKey {
            flag: flag.to_string(),
            phase,
            unit: row.get(0),
        };
        let exposed = Exposed {
            variants: 1,
            variant: row.get(1),
            first: row.get(2),
        };
        changes.phase_ended(&key, &exposed, end);
    }
    changes.write(transaction)
}
