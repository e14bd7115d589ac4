//! Analysis phases as a writer sees them: each flag's stored phases in
//! order, which phase an event at a given time belongs to, when a phase
//! ends, and what a newly published config changes.
//!
//! A flag gets a new phase only when its last one assigns differently (see
//! [`AnalysedFlag::assignment`]) or stopped; a flag the config no longer
//! analyses stops. So a config published again (a reload that changes
//! nothing, or several replicas publishing the same file) starts nothing.
//! And a config published before the newest start or stop stored changes
//! nothing: with several replicas, one may store the phases of a config it
//! published earlier (its writer was waiting for the database) after
//! another stored those of a newer one, and the older must not undo the
//! newer. (What this cannot see: a newer config that changed no phase, the
//! file edited and edited back, with a replica storing the edit late.)
//! Every backend decides here and stores the [`PhaseChange`]s in its own
//! way. Not here: reading or writing the `phases` table (each backend's
//! writer) or what a readout shows of a phase (`crate::events::analysis`).

use std::collections::HashMap;

use super::{AnalysedFlag, PhaseStart};

/// One stored phase.
#[derive(Clone, Debug, PartialEq)]
pub struct PhaseRow {
    /// 1, 2, ... in order.
    pub number: i64,
    /// Unix ms.
    pub started: i64,
    /// The assignment hash, as stored (16 hex digits).
    pub assignment: String,
    /// When the experiment stopped (Unix ms), if it did in this phase.
    pub stopped: Option<i64>,
}

/// What publishing a config changes, for the backend to store, in order.
#[derive(Debug, PartialEq)]
pub enum PhaseChange<'a> {
    /// `flag`'s `phase` stopped at `stopped` (Unix ms): what was counted
    /// at or after it is to be taken back.
    Stopped {
        /// The flag.
        flag: String,
        /// Its last phase.
        phase: i64,
        /// When it stopped.
        stopped: i64,
    },
    /// A new phase of `flag` started.
    Started {
        /// The flag and its design.
        flag: &'a AnalysedFlag,
        /// The new phase's number.
        phase: i64,
        /// Its assignment hash, as stored.
        assignment: String,
        /// When it started (Unix ms).
        started: i64,
    },
}

/// Every flag's phases, in order.
#[derive(Default)]
pub struct Phases {
    flags: HashMap<String, Vec<PhaseRow>>,
    /// The newest start or stop stored (Unix ms).
    newest: i64,
}

impl Phases {
    /// Adds a stored phase of `flag`; rows come in order of number.
    pub fn push(&mut self, flag: String, row: PhaseRow) {
        self.newest = self.newest.max(row.started).max(row.stopped.unwrap_or(0));
        self.flags.entry(flag).or_default().push(row);
    }

    /// The phase in force at `time`; events before the first phase started
    /// (sent late, or stored before phases existed) belong to the first.
    pub fn at(&self, flag: &str, time: i64) -> i64 {
        let Some(phases) = self.flags.get(flag) else {
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
    /// start, whichever comes first; `i64::MAX` while it runs.
    pub fn end(&self, flag: &str, phase: i64) -> i64 {
        let Some(phases) = self.flags.get(flag) else {
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

    /// Applies `start` here and says what to store: first the stops of
    /// flags it no longer lists, then a new phase for each listed flag
    /// whose assignment changed or that stopped.
    pub fn apply<'a>(&mut self, start: &'a PhaseStart) -> Vec<PhaseChange<'a>> {
        let mut changes = Vec::new();
        if start.published < self.newest {
            return changes;
        }
        self.newest = start.published;
        for (flag, phases) in &mut self.flags {
            let Some(last) = phases.last_mut() else {
                continue;
            };
            if last.stopped.is_some() || start.flags.iter().any(|r| r.flag == *flag) {
                continue;
            }
            let stopped = start.published.max(last.started);
            last.stopped = Some(stopped);
            changes.push(PhaseChange::Stopped {
                flag: flag.clone(),
                phase: last.number,
                stopped,
            });
        }
        for running in &start.flags {
            let assignment = format!("{:016x}", running.assignment);
            let phases = self.flags.entry(running.flag.clone()).or_default();
            if phases
                .last()
                .is_some_and(|last| last.assignment == assignment && last.stopped.is_none())
            {
                continue;
            }
            let phase = phases.last().map_or(1, |last| last.number + 1);
            phases.push(PhaseRow {
                number: phase,
                started: start.published,
                assignment: assignment.clone(),
                stopped: None,
            });
            changes.push(PhaseChange::Started {
                flag: running,
                phase,
                assignment,
                started: start.published,
            });
        }
        changes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn analysed(flag: &str, assignment: u64) -> AnalysedFlag {
        AnalysedFlag {
            flag: flag.into(),
            assignment,
            design: None,
        }
    }

    fn start(flags: Vec<AnalysedFlag>, published: i64) -> PhaseStart {
        PhaseStart { flags, published }
    }

    #[test]
    fn a_config_published_again_starts_nothing_and_a_changed_one_a_new_phase() {
        let mut phases = Phases::default();
        let first = start(vec![analysed("f", 1)], 10);
        assert_eq!(phases.apply(&first).len(), 1);
        assert!(phases.apply(&start(vec![analysed("f", 1)], 20)).is_empty());
        let changed = start(vec![analysed("f", 2)], 30);
        let changes = phases.apply(&changed);
        assert!(
            matches!(
                &changes[..],
                [PhaseChange::Started {
                    phase: 2,
                    started: 30,
                    ..
                }]
            ),
            "{changes:?}"
        );
        assert_eq!((phases.at("f", 29), phases.at("f", 30)), (1, 2));
        assert_eq!(phases.end("f", 1), 30);
        assert_eq!(phases.end("f", 2), i64::MAX);
        assert_eq!(phases.at("f", 5), 1, "before the first: the first");
        assert_eq!(phases.at("other", 5), 1);
    }

    #[test]
    fn a_config_published_before_the_newest_stored_change_changes_nothing() {
        let mut phases = Phases::default();
        phases.apply(&start(vec![analysed("f", 1), analysed("g", 1)], 10));
        phases.apply(&start(vec![analysed("f", 2), analysed("g", 1)], 30));
        // Another replica's writer stores what it published at 20 only now.
        let late = start(vec![analysed("f", 1)], 20);
        assert_eq!(phases.apply(&late), [], "neither f's restart nor g's stop");
        assert_eq!(
            phases.apply(&start(Vec::new(), 29)),
            [],
            "nor anything else older"
        );
        assert_eq!(phases.at("f", 40), 2);
        assert_eq!(phases.end("g", 1), i64::MAX);
        // What it publishes next, after the newer phase, counts as usual.
        assert_eq!(
            phases.apply(&start(vec![analysed("f", 2)], 40)).len(),
            1,
            "g stops"
        );
    }

    #[test]
    fn a_flag_no_longer_analysed_stops_and_starts_again_when_it_comes_back() {
        let mut phases = Phases::default();
        phases.apply(&start(vec![analysed("f", 1)], 10));
        let removed = start(Vec::new(), 5);
        assert_eq!(phases.apply(&removed), [], "older than the start: stale");
        let removed = start(Vec::new(), 15);
        let changes = phases.apply(&removed);
        assert_eq!(
            changes,
            [PhaseChange::Stopped {
                flag: "f".into(),
                phase: 1,
                stopped: 15,
            }]
        );
        assert_eq!(phases.end("f", 1), 15);
        assert!(
            phases.apply(&start(Vec::new(), 40)).is_empty(),
            "stopped once"
        );
        let back = start(vec![analysed("f", 1)], 50);
        assert!(matches!(
            &phases.apply(&back)[..],
            [PhaseChange::Started { phase: 2, .. }]
        ));
    }
}
