//! The decision of one guardrail check for one compared arm: a pure
//! function of the figures read from the store and of what the previous
//! check carried, unit-tested without a database.
//!
//! Relative: the treatment arm is tested against the control with
//! `flags_core::stats::guardrail::relative_harm`, carrying the running
//! minimum p-value from check to check (from the first check on, as the
//! test's always-valid guarantee allows); it trips once both sides have
//! `min_units` units and the running minimum is below `alpha`. Absolute:
//! the rate is above `max_rate` at every check for a whole `window` (kept
//! as `above_since`), with `min_units` treatment units; a check at or below
//! the limit, or short of units, starts the wait again.
//!
//! What a check carries is only valid for the flag version and analysis
//! phase it was made in: a check of another version or phase starts afresh
//! (that is how a guardrail re-arms after an edit, or after a revive, which
//! starts a new phase). Within one, a `kill` guardrail that tripped stays
//! tripped; an `alert` guardrail's trip lasts while the harm does, so it
//! notifies once per episode. Not here: reading the
//! figures (`figures`), storing states (`store`) or acting (`super`).

use flags_core::guardrail::{Guardrail, GuardrailAction};
use flags_core::stats::guardrail::{Harm, relative_harm};
use flags_core::stats::{ArmInput, ArmStats, InputError, SequentialSettings};
use serde::{Deserialize, Serialize};

/// Where a guardrail stands for one compared arm.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// Too few units to decide (`min_units`).
    Waiting,
    /// No harm shown.
    Clear,
    /// Absolute: the rate is above its limit, not yet for a whole window.
    Above,
    /// The limit is crossed: the guardrail acted (or, for `kill`, would
    /// have, had the flag not been killed already).
    Tripped,
}

impl Decision {
    const ALL: [Self; 4] = [Self::Waiting, Self::Clear, Self::Above, Self::Tripped];

    /// Its name, as stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Waiting => "waiting",
            Self::Clear => "clear",
            Self::Above => "above",
            Self::Tripped => "tripped",
        }
    }

    /// The decision named `text`, if any.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|d| d.as_str() == text)
    }

    /// How much attention it needs, for the most urgent of several arms.
    pub fn severity(self) -> u8 {
        match self {
            Self::Waiting => 0,
            Self::Clear => 1,
            Self::Above => 2,
            Self::Tripped => 3,
        }
    }
}

/// One side of a relative comparison.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Side {
    /// The variant its units were exposed under.
    pub variant: String,
    /// Units exposed to it (and to no other variant) in the phase.
    pub units: i64,
    /// Their mean of the metric: for a conversion metric, the share of
    /// units with at least one event; `None` without units.
    pub mean: Option<f64>,
}

/// What one check saw.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Figures {
    /// A relative guardrail's sides.
    Relative {
        /// The control.
        control: Side,
        /// The treatment arm compared.
        treatment: Side,
    },
    /// An absolute guardrail's pooled treatment.
    Absolute {
        /// Treatment units exposed in the phase.
        treatment_units: i64,
        /// Of those, the units with an event of the metric in the window.
        units_with_event: i64,
        /// `units_with_event / treatment_units`; `None` without units.
        rate: Option<f64>,
    },
}

/// What a check leaves for the next one, and shows.
#[derive(Clone, Debug, PartialEq)]
pub struct ArmState {
    /// The flag version (content hash) it was decided for.
    pub flag_version: u64,
    /// The analysis phase it read.
    pub phase: i64,
    /// Relative: the running minimum always-valid p-value.
    pub running_min: Option<f64>,
    /// Absolute: since when (Unix ms) every check saw the rate above its limit.
    pub above_since: Option<i64>,
    /// What the last check saw.
    pub figures: Figures,
    /// Where it stands.
    pub decision: Decision,
    /// When it came to stand there (Unix ms).
    pub decided_at: i64,
    /// When it was last checked (Unix ms).
    pub checked_at: i64,
}

/// A check of one guardrail for one arm.
pub struct Check<'a> {
    guardrail: &'a Guardrail,
    /// The previous check's state, if made for the same version and phase.
    previous: Option<&'a ArmState>,
    flag_version: u64,
    phase: i64,
    now: i64,
}

/// A decided check.
#[derive(Debug)]
pub struct Step {
    /// The new state.
    pub state: ArmState,
    /// Whether this check tripped the guardrail (it was not tripped before).
    pub tripped: bool,
}

impl<'a> Check<'a> {
    /// A check at `now` (Unix ms) of `guardrail` on the flag at
    /// `flag_version`, reading `phase`; `previous` is the arm's last state,
    /// used only if made for the same version and phase.
    pub fn new(
        guardrail: &'a Guardrail,
        previous: Option<&'a ArmState>,
        flag_version: u64,
        phase: i64,
        now: i64,
    ) -> Self {
        let previous = previous.filter(|p| p.flag_version == flag_version && p.phase == phase);
        Self {
            guardrail,
            previous,
            flag_version,
            phase,
            now,
        }
    }

    /// A relative check of `treatment` against `control` with a tolerated
    /// relative `margin` (a fraction) in the direction `harm`, at level
    /// `alpha`. Errs when the statistics refuse the numbers.
    pub fn relative(
        &self,
        margin: f64,
        harm: Harm,
        alpha: f64,
        control: &ArmInput,
        treatment: &ArmInput,
    ) -> Result<Step, InputError> {
        let test = relative_harm(
            &control.stats,
            &treatment.stats,
            margin,
            harm,
            alpha,
            &SequentialSettings::default(),
            self.previous.and_then(|p| p.running_min),
        )?;
        let running_min = test.sequential.p_value;
        let (control_units, treatment_units) = (units(&control.stats), units(&treatment.stats));
        let enough = control_units.min(treatment_units) >= self.min_units();
        let decision = match running_min {
            _ if !enough => Decision::Waiting,
            Some(p) if p < alpha => Decision::Tripped,
            _ => Decision::Clear,
        };
        let figures = Figures::Relative {
            control: Side {
                variant: control.name.clone(),
                units: control_units,
                mean: test.control_mean,
            },
            treatment: Side {
                variant: treatment.name.clone(),
                units: treatment_units,
                mean: test.treatment_mean,
            },
        };
        Ok(self.step(decision, running_min, None, figures))
    }

    /// An absolute check: of `treatment_units`, `units_with_event` had an
    /// event in the last `window`; the limit is `max_rate` (a fraction).
    pub fn absolute(
        &self,
        max_rate: f64,
        window_ms: i64,
        treatment_units: i64,
        units_with_event: i64,
    ) -> Step {
        let rate = (treatment_units > 0).then(|| units_with_event as f64 / treatment_units as f64);
        let enough = treatment_units >= self.min_units();
        let above_since = match rate {
            Some(rate) if enough && rate > max_rate => Some(
                self.previous
                    .and_then(|p| p.above_since)
                    .unwrap_or(self.now),
            ),
            _ => None,
        };
        let decision = match above_since {
            _ if !enough => Decision::Waiting,
            None => Decision::Clear,
            Some(since) if self.now - since >= window_ms => Decision::Tripped,
            Some(_) => Decision::Above,
        };
        let figures = Figures::Absolute {
            treatment_units,
            units_with_event,
            rate,
        };
        self.step(decision, None, above_since, figures)
    }

    fn min_units(&self) -> i64 {
        i64::try_from(self.guardrail.min_units).unwrap_or(i64::MAX)
    }

    /// The new state for `decision`, unless an earlier one settles it: a
    /// `kill` trip stays.
    fn step(
        &self,
        decision: Decision,
        running_min: Option<f64>,
        above_since: Option<i64>,
        figures: Figures,
    ) -> Step {
        let before = self.previous.map(|p| p.decision);
        let decision = match before {
            Some(Decision::Tripped) if self.guardrail.action == GuardrailAction::Kill => {
                Decision::Tripped
            }
            _ => decision,
        };
        let decided_at = match self.previous {
            Some(p) if p.decision == decision => p.decided_at,
            _ => self.now,
        };
        Step {
            tripped: decision == Decision::Tripped && before != Some(Decision::Tripped),
            state: ArmState {
                flag_version: self.flag_version,
                phase: self.phase,
                running_min,
                above_since,
                figures,
                decision,
                decided_at,
                checked_at: self.now,
            },
        }
    }
}

/// Units of one side.
pub fn units(stats: &ArmStats) -> i64 {
    stats.units()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use flags_core::guardrail::GuardrailTest;

    use super::*;

    const ALPHA: f64 = 0.05;
    const WINDOW_MS: i64 = 60_000;

    fn guardrail(action: GuardrailAction, min_units: u64) -> Guardrail {
        Guardrail {
            metric: "errors".into(),
            test: GuardrailTest::Relative {
                margin: 0.0,
                harm: Harm::Increase,
                alpha: ALPHA,
            },
            min_units,
            action,
            line: 1,
        }
    }

    fn relative(
        guardrail: &Guardrail,
        previous: Option<&ArmState>,
        now: i64,
        control: (i64, i64),
        treatment: (i64, i64),
    ) -> Step {
        Check::new(guardrail, previous, 7, 1, now)
            .relative(
                0.0,
                Harm::Increase,
                ALPHA,
                &ArmInput::conversion("off", control.0, control.1),
                &ArmInput::conversion("on", treatment.0, treatment.1),
            )
            .unwrap()
    }

    fn absolute(
        guardrail: &Guardrail,
        previous: Option<&ArmState>,
        now: i64,
        units: i64,
        with_event: i64,
    ) -> Step {
        Check::new(guardrail, previous, 7, 1, now).absolute(0.1, WINDOW_MS, units, with_event)
    }

    #[test]
    fn relative_trips_only_past_min_units_and_below_alpha_carrying_the_running_minimum() {
        let kill = guardrail(GuardrailAction::Kill, 300);
        // Strong harm (5% against 40%), but 200 units a side: too few.
        let first = relative(&kill, None, 1, (200, 10), (200, 80));
        let p = first.state.running_min.unwrap();
        assert!(p < ALPHA, "{p}");
        assert_eq!(first.state.decision, Decision::Waiting);
        assert!(!first.tripped);

        // Past min_units with no harm at this look: the running minimum
        // carried from the first check is below alpha, so it trips.
        let second = relative(&kill, Some(&first.state), 2, (300, 15), (300, 15));
        assert_eq!(second.state.running_min, Some(p));
        assert_eq!(second.state.decision, Decision::Tripped);
        assert!(second.tripped);
        assert_eq!(second.state.decided_at, 2);

        // Without the carried minimum, the same figures do not trip.
        let fresh = relative(&kill, None, 2, (300, 15), (300, 15));
        assert_eq!(fresh.state.decision, Decision::Clear);
        assert!(fresh.state.running_min.unwrap() >= ALPHA);

        // Tripped stays, and is not new.
        let third = relative(&kill, Some(&second.state), 3, (400, 20), (400, 20));
        assert_eq!(
            (third.state.decision, third.tripped, third.state.decided_at),
            (Decision::Tripped, false, 2)
        );
    }

    #[test]
    fn relative_figures_name_both_sides() {
        let kill = guardrail(GuardrailAction::Kill, 1);
        let step = relative(&kill, None, 1, (100, 5), (50, 10));
        assert_eq!(
            step.state.figures,
            Figures::Relative {
                control: Side {
                    variant: "off".into(),
                    units: 100,
                    mean: Some(0.05)
                },
                treatment: Side {
                    variant: "on".into(),
                    units: 50,
                    mean: Some(0.2)
                },
            }
        );
    }

    #[test]
    fn a_state_of_another_version_or_phase_is_not_carried() {
        let kill = guardrail(GuardrailAction::Kill, 1);
        let tripped = relative(&kill, None, 1, (300, 10), (300, 120)).state;
        assert_eq!(tripped.decision, Decision::Tripped);
        let other_version = Check::new(&kill, Some(&tripped), 8, 1, 2)
            .relative(
                0.0,
                Harm::Increase,
                ALPHA,
                &ArmInput::conversion("off", 300, 15),
                &ArmInput::conversion("on", 300, 15),
            )
            .unwrap();
        assert_eq!(other_version.state.decision, Decision::Clear);
        assert_eq!(other_version.state.flag_version, 8);
        let other_phase = Check::new(&kill, Some(&tripped), 7, 2, 2).absolute(0.1, 1, 300, 0);
        assert_eq!(other_phase.state.decision, Decision::Clear);

        // A revive starts a new phase of the same version: the kill's trip
        // is not carried, and the few units exposed since decide nothing.
        let revived = Guardrail {
            min_units: 100,
            ..kill
        };
        let fresh = Check::new(&revived, Some(&tripped), 7, 2, 3)
            .relative(
                0.0,
                Harm::Increase,
                ALPHA,
                &ArmInput::conversion("off", 20, 1),
                &ArmInput::conversion("on", 20, 10),
            )
            .unwrap();
        assert_eq!(
            (fresh.state.decision, fresh.tripped, fresh.state.phase),
            (Decision::Waiting, false, 2)
        );
        assert_eq!(fresh.state.decided_at, 3);
    }

    #[test]
    fn absolute_trips_after_a_whole_window_above_and_resets_when_it_drops() {
        let kill = Guardrail {
            test: GuardrailTest::Absolute {
                max_rate: 0.1,
                window: Duration::from_millis(WINDOW_MS as u64),
            },
            ..guardrail(GuardrailAction::Kill, 100)
        };
        // Above (20%) but short of units: waiting, no clock started.
        let short = absolute(&kill, None, 0, 50, 10);
        assert_eq!(
            (short.state.decision, short.state.above_since),
            (Decision::Waiting, None)
        );
        let above = absolute(&kill, Some(&short.state), 1_000, 100, 20);
        assert_eq!(
            (above.state.decision, above.state.above_since),
            (Decision::Above, Some(1_000))
        );
        let still = absolute(&kill, Some(&above.state), 30_000, 100, 20);
        assert_eq!(still.state.decision, Decision::Above);
        // At the limit (10%) is not above: the wait starts again.
        let dropped = absolute(&kill, Some(&still.state), 40_000, 100, 10);
        assert_eq!(
            (dropped.state.decision, dropped.state.above_since),
            (Decision::Clear, None)
        );
        let again = absolute(&kill, Some(&dropped.state), 50_000, 100, 30);
        let almost = absolute(&kill, Some(&again.state), 109_999, 100, 30);
        assert_eq!(almost.state.decision, Decision::Above);
        assert!(!almost.tripped);
        let whole = absolute(&kill, Some(&almost.state), 110_000, 100, 30);
        assert_eq!(whole.state.decision, Decision::Tripped);
        assert!(whole.tripped);
        assert_eq!(
            whole.state.figures,
            Figures::Absolute {
                treatment_units: 100,
                units_with_event: 30,
                rate: Some(0.3)
            }
        );
        // A kill's trip is never undone by itself, even when the rate drops.
        let after = absolute(&kill, Some(&whole.state), 120_000, 100, 0);
        assert_eq!(
            (after.state.decision, after.tripped),
            (Decision::Tripped, false)
        );
    }

    #[test]
    fn an_alert_is_new_once_per_episode() {
        let alert = Guardrail {
            test: GuardrailTest::Absolute {
                max_rate: 0.1,
                window: Duration::from_millis(WINDOW_MS as u64),
            },
            ..guardrail(GuardrailAction::Alert, 10)
        };
        let mut state = None;
        let mut trips = Vec::new();
        // Above for two windows, below once, above for a window again.
        let rates = [(0, 30), (60_000, 30), (90_000, 30), (120_000, 30)];
        let later = [(130_000, 0), (140_000, 30), (200_000, 30), (210_000, 30)];
        for (now, with_event) in rates.into_iter().chain(later) {
            let step = absolute(&alert, state.as_ref(), now, 100, with_event);
            if step.tripped {
                trips.push(now);
            }
            state = Some(step.state);
        }
        assert_eq!(trips, [60_000, 200_000]);

        // A relative alert's running minimum never rises: one trip.
        let alert = guardrail(GuardrailAction::Alert, 1);
        let first = relative(&alert, None, 1, (300, 10), (300, 120));
        let second = relative(&alert, Some(&first.state), 2, (600, 30), (600, 30));
        assert!(first.tripped && !second.tripped);
        assert_eq!(second.state.decision, Decision::Tripped);
    }

    #[test]
    fn decisions_read_back_what_they_store() {
        for decision in Decision::ALL {
            assert_eq!(Decision::parse(decision.as_str()), Some(decision));
        }
        assert_eq!(Decision::parse("nope"), None);
    }
}
