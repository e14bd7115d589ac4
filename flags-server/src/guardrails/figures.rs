//! What a guardrail check reads from the event database: each side's
//! sufficient statistics, and an absolute guardrail's windowed rate.
//!
//! Who is compared (`flags_core::guardrail`): the units exposed in the
//! flag's current analysis phase under the control (`guardrail_control`)
//! and under each other variant, the treatment arms. A flag with no rule
//! that draws a bucket has no control: every variant but its `default` is
//! treatment. As in experiments, a unit exposed under two variants of the
//! phase is left out, and a unit counts from its first exposure.
//!
//! Relative sides come from the per-arm aggregates the writer maintains
//! (`events::analysis`'s queries). An absolute guardrail's rate is the share
//! of the treatment's exposed units (all of the phase's, pooled over the
//! treatment arms) with at least one event of the metric in the last
//! `window`, at or after their first exposure. Not here: deciding
//! (`decide`) or acting (`super`).

use flags_core::stats::ArmInput;
use flags_core::{FlagInfo, MetricDefinition};

use crate::events::analysis::{Window, arm_inputs, exposed_units};
use crate::store::{Readouts, StoreError};

/// The sides of a relative guardrail: the control first, then each
/// treatment arm, in the flag's variant order.
pub fn relative_sides(
    store: &dyn Readouts,
    flag: &FlagInfo<'_>,
    metric: &str,
    definition: &MetricDefinition,
    phase: i64,
) -> Result<Vec<ArmInput>, StoreError> {
    let mut arms = vec![control(flag)];
    arms.extend(treatments(flag));
    let units = exposed_units(store, flag.key(), &arms, phase)?;
    let window = Window::running(phase);
    arm_inputs(
        store,
        flag.key(),
        metric,
        definition,
        &arms,
        &units,
        &window,
    )
}

/// An absolute guardrail's treatment at `now` (Unix ms): its exposed units,
/// and how many of them had an event of `metric` in `[now - window_ms, now]`.
pub fn windowed_rate(
    store: &dyn Readouts,
    flag: &FlagInfo<'_>,
    metric: &str,
    phase: i64,
    now: i64,
    window_ms: i64,
) -> Result<(i64, i64), StoreError> {
    let treatments: Vec<&str> = treatments(flag).collect();
    let units = exposed_units(store, flag.key(), &treatments, phase)?
        .iter()
        .sum();
    // Units with a recent event, and their exposures in the phase: one
    // variant (else left out), which, and the first exposure.
    let recent = store.recent_units(
        flag.key(),
        phase,
        metric,
        now.saturating_sub(window_ms),
        now,
    )?;
    let with_event = recent
        .iter()
        .filter(|unit| {
            unit.variants == 1
                && unit.last_event >= unit.first_exposure
                && treatments.contains(&unit.variant.as_str())
        })
        .count() as i64;
    Ok((units, with_event))
}

/// The control's variant; without a guarded rule, the `default`, which is
/// then no side of any comparison.
fn control<'s>(flag: &FlagInfo<'s>) -> &'s str {
    flag.guardrail_control()
        .unwrap_or_else(|| flag.default_variant())
}

/// The treatment arms: every variant but the control.
fn treatments<'s>(flag: &FlagInfo<'s>) -> impl Iterator<Item = &'s str> + use<'s> {
    let control = control(flag);
    flag.variants()
        .map(|(name, _)| name)
        .filter(move |name| *name != control)
}

#[cfg(test)]
mod tests {
    use flags_core::{Overrides, compile};

    use super::*;
    use crate::store::sqlite::{SqliteReader, schema};

    const ROLLOUT: &str = r#"version = 1
[metrics.errors]
kind = "conversion"
[flags.f]
[[flags.f.rules]]
rollout = 50
serve = "on"
[[flags.f.guardrails]]
metric = "errors"
"#;

    fn database(sql: &str) -> (tempfile::TempDir, SqliteReader) {
        let dir = tempfile::tempdir().unwrap();
        let connection = schema::open_for_writing(dir.path()).unwrap();
        connection.execute_batch(sql).unwrap();
        let reader = SqliteReader::open(dir.path()).unwrap();
        (dir, reader)
    }

    #[test]
    fn relative_sides_are_the_control_then_each_treatment() {
        let snapshot = compile(ROLLOUT, &Overrides::new()).unwrap();
        let flag = snapshot.flag("f").unwrap();
        let errors = snapshot.metric("errors").unwrap();
        let (_dir, reader) = database(
            "INSERT INTO arm_units VALUES ('f', 1, 'on', 4), ('f', 1, 'off', 3), ('f', 2, 'on', 9);
             INSERT INTO arm_outcomes VALUES ('f', 1, 'on', 'errors', 2, 2, 2),
                                             ('f', 1, 'off', 'errors', 1, 1, 1);",
        );
        let sides = relative_sides(&reader, &flag, "errors", errors, 1).unwrap();
        assert_eq!(
            sides,
            [
                ArmInput::conversion("off", 3, 1),
                ArmInput::conversion("on", 4, 2)
            ]
        );
        // A phase without units has both sides all the same.
        let sides = relative_sides(&reader, &flag, "errors", errors, 3).unwrap();
        assert_eq!(
            sides,
            [
                ArmInput::conversion("off", 0, 0),
                ArmInput::conversion("on", 0, 0)
            ]
        );
    }

    #[test]
    fn the_windowed_rate_counts_treatment_units_with_an_event_after_exposure_in_the_window() {
        let snapshot = compile(ROLLOUT, &Overrides::new()).unwrap();
        let flag = snapshot.flag("f").unwrap();
        let (_dir, reader) = database(
            "INSERT INTO arm_units VALUES ('f', 1, 'on', 5), ('f', 1, 'off', 1);
             INSERT INTO exposures (flag, phase, unit, variant, time) VALUES
                 ('f', 1, 'recent', 'on', 100),
                 ('f', 1, 'old-event', 'on', 100),
                 ('f', 1, 'before-exposure', 'on', 950),
                 ('f', 1, 'two-arms', 'on', 100), ('f', 1, 'two-arms', 'off', 100),
                 ('f', 1, 'control', 'off', 100),
                 ('f', 2, 'other-phase', 'on', 100),
                 ('f', 1, 'other-metric', 'on', 100);
             INSERT INTO conversions (id, metric, unit, value, time) VALUES
                 ('1', 'errors', 'recent', NULL, 950),
                 ('2', 'errors', 'recent', NULL, 990),
                 ('3', 'errors', 'old-event', NULL, 800),
                 ('4', 'errors', 'before-exposure', NULL, 920),
                 ('5', 'errors', 'two-arms', NULL, 950),
                 ('6', 'errors', 'control', NULL, 950),
                 ('7', 'errors', 'other-phase', NULL, 950),
                 ('8', 'crashes', 'other-metric', NULL, 950);",
        );
        let rate = windowed_rate(&reader, &flag, "errors", 1, 1000, 100).unwrap();
        assert_eq!(rate, (5, 1));
    }
}
