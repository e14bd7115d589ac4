//! Analysis phases as the writer sees them: the `phases` table, loaded
//! afresh by each group under the group lock (another replica may have
//! started a phase since), and the phase starts and stops of newly
//! published configs applied to it, as the SQLite writer does: a flag gets
//! a new phase only if its last one assigns differently or stopped, so two
//! replicas publishing the same config start one phase. Not here: which
//! events belong where (`group`) or what a readout shows (`reads`).

use std::collections::HashMap;

use super::prepared::Tx;

use super::aggregates::{Changes, Exposed, UnitKey};
use crate::store::{AnalysedFlag, PhaseStart};

/// One stored phase.
struct PhaseRow {
    number: i64,
    /// Unix ms.
    started: i64,
    /// The assignment hash, as stored.
    assignment: String,
    /// When the experiment stopped (Unix ms), if it did in this phase.
    stopped: Option<i64>,
}

/// Every flag's phases, in order.
#[derive(Default)]
pub struct Phases(HashMap<String, Vec<PhaseRow>>);

impl Phases {
    /// The stored phases.
    pub fn load(transaction: &mut Tx<'_>) -> Result<Self, postgres::Error> {
        let mut phases = Self::default();
        let rows = transaction.query(
            "SELECT flag, number, started, assignment, stopped FROM phases ORDER BY flag, number",
            &[],
        )?;
        for row in rows {
            phases.0.entry(row.get(0)).or_default().push(PhaseRow {
                number: row.get(1),
                started: row.get(2),
                assignment: row.get(3),
                stopped: row.get(4),
            });
        }
        Ok(phases)
    }

    /// The phase in force at `time`; events before the first phase started
    /// (sent late) belong to the first.
    pub fn at(&self, flag: &str, time: i64) -> i64 {
        let Some(phases) = self.0.get(flag) else {
            return 1;
        };
        phases
            .iter()
            .rev()
            .find(|p| p.started <= time)
            .or(phases.first())
            .map_or(1, |p| p.number)
    }

    /// When `flag`'s `phase` ends (Unix ms): its stop or the next phase's
    /// start, whichever is first; `i64::MAX` while it runs.
    pub fn end(&self, flag: &str, phase: i64) -> i64 {
        let Some(phases) = self.0.get(flag) else {
            return i64::MAX;
        };
        let next = phases
            .iter()
            .find(|p| p.number == phase + 1)
            .map_or(i64::MAX, |p| p.started);
        let stopped = phases
            .iter()
            .find(|p| p.number == phase)
            .and_then(|p| p.stopped);
        stopped.map_or(next, |stopped| stopped.min(next))
    }

    /// Applies `start`: stops the flags it no longer lists, then starts a
    /// phase for each listed flag whose assignment changed or that stopped.
    pub fn apply(
        &mut self,
        transaction: &mut Tx<'_>,
        start: &PhaseStart,
    ) -> Result<(), postgres::Error> {
        self.stop_missing(transaction, &start.flags, start.published)?;
        for analysed in &start.flags {
            self.start(transaction, analysed, start.published)?;
        }
        Ok(())
    }

    fn start(
        &mut self,
        transaction: &mut Tx<'_>,
        running: &AnalysedFlag,
        published: i64,
    ) -> Result<(), postgres::Error> {
        let assignment = format!("{:016x}", running.assignment);
        let phases = self.0.entry(running.flag.clone()).or_default();
        if phases
            .last()
            .is_some_and(|last| last.assignment == assignment && last.stopped.is_none())
        {
            return Ok(());
        }
        let number = phases.last().map_or(1, |last| last.number + 1);
        transaction.execute(
            "INSERT INTO phases (flag, number, assignment, started, design)
             VALUES ($1, $2, $3, $4, $5)",
            &[
                &running.flag,
                &number,
                &assignment,
                &published,
                &running.design,
            ],
        )?;
        phases.push(PhaseRow {
            number,
            started: published,
            assignment,
            stopped: None,
        });
        Ok(())
    }

    /// Records that every flag with a phase in progress but not in
    /// `running` stopped at `published`, and takes back from its readout
    /// what was already counted at or after that instant.
    fn stop_missing(
        &mut self,
        transaction: &mut Tx<'_>,
        running: &[AnalysedFlag],
        published: i64,
    ) -> Result<(), postgres::Error> {
        for (flag, phases) in &mut self.0 {
            let Some(last) = phases.last_mut() else {
                continue;
            };
            if last.stopped.is_some() || running.iter().any(|r| r.flag == *flag) {
                continue;
            }
            let stopped = published.max(last.started);
            transaction.execute(
                "UPDATE phases SET stopped = $3 WHERE flag = $1 AND number = $2",
                &[flag, &last.number, &stopped],
            )?;
            last.stopped = Some(stopped);
            end_phase(transaction, flag, last.number, stopped)?;
        }
        Ok(())
    }
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
