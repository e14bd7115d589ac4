//! What guardrails show: the JSON of `GET /v1/guardrails` (with the trip
//! log), which `flags results FLAG --json` prints for one flag in the same
//! shape; the flat
//! figures of a trip's notification; and the sentence stored as its kill's
//! reason.
//!
//! Rates, means and limits are fractions (`0.1` is 10%; `flags.toml`
//! writes limits as percentages); times are RFC 3339 (UTC). Not here:
//! deciding (`decide`) or the text of `flags results` (`commands::results`).

use std::collections::BTreeMap;

use flags_core::guardrail::{Guardrail, GuardrailTest};
use flags_core::stats::guardrail::Harm;
use flags_core::{FlagInfo, FlagVersion, KilledBy};
use serde::Serialize;
use serde_json::{Map, Value};

use super::Book;
use super::decide::{ArmState, Decision, Figures};
use super::store::Key;
use crate::clock::rfc3339_ms;
use crate::metrics::GuardrailGauge;
use crate::store::GuardrailTrip;

/// `GET /v1/guardrails`: every served flag with guardrails.
#[derive(Serialize)]
pub struct Overview<'a> {
    /// `--guardrail-interval`, in seconds.
    pub interval_seconds: f64,
    /// When the last completed check began (its figures include every
    /// event stored before); `None` before the first.
    pub last_check: Option<String>,
    /// Why the states are not being stored, if they are not.
    pub store_error: Option<String>,
    /// Per flag, in file order.
    pub flags: Vec<FlagGuardrails<'a>>,
}

/// `GET /v1/guardrails`: the [`Overview`] and the trip log.
#[derive(Serialize)]
pub struct WithTrips<'a> {
    /// The guardrails and their states.
    #[serde(flatten)]
    pub overview: Overview<'a>,
    /// Every logged trip and alert, newest first (the store keeps
    /// `TRIPS_KEPT_PER_FLAG` per flag).
    pub trips: Vec<TripView>,
    /// Why the trip log cannot be read, when it cannot.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trips_error: Option<String>,
}

/// One entry of the trip log.
#[derive(Debug, Serialize)]
pub struct TripView {
    /// The flag.
    pub flag: String,
    /// The guardrail's index among the flag's.
    pub guardrail: i64,
    /// The metric.
    pub metric: String,
    /// The treatment arm compared; `None` for a pooled (absolute) guardrail.
    pub arm: Option<String>,
    /// `kill` or `alert`.
    pub action: String,
    /// When it tripped.
    pub tripped_at: String,
    /// The figures at the trip, flat, as the webhooks carry them.
    pub figures: Value,
    /// The same in a sentence.
    pub reason: String,
    /// When an admin revived the flag it killed; `None` while the kill
    /// holds, and for alerts.
    pub revived_at: Option<String>,
    /// Who revived it.
    pub revived_by: Option<String>,
}

impl TripView {
    /// The entry as stored; figures that are not JSON (never written so)
    /// show as `null`.
    pub fn of(trip: GuardrailTrip) -> Self {
        Self {
            figures: serde_json::from_str(&trip.figures).unwrap_or(Value::Null),
            tripped_at: rfc3339_ms(trip.tripped_at),
            revived_at: trip.revived_at.map(rfc3339_ms),
            arm: (!trip.arm.is_empty()).then_some(trip.arm),
            flag: trip.flag,
            guardrail: trip.guardrail,
            metric: trip.metric,
            action: trip.action,
            reason: trip.reason,
            revived_by: trip.revived_by,
        }
    }
}

/// One flag's guardrails.
#[derive(Debug, Serialize)]
pub struct FlagGuardrails<'a> {
    /// The flag.
    pub flag: &'a str,
    /// The served definition's version (the arms' states say which
    /// version they were decided for).
    pub flag_version: FlagVersion,
    /// Who disabled the flag, if anything did.
    pub killed_by: Option<&'a KilledBy>,
    /// Whether its guardrails are checked: not while the flag is killed.
    pub checked: bool,
    /// In the order written.
    pub guardrails: Vec<GuardrailView<'a>>,
}

/// One guardrail and its arms' states.
#[derive(Debug, Serialize)]
pub struct GuardrailView<'a> {
    /// The metric watched.
    pub metric: &'a str,
    /// Line of its `[[flags.KEY.guardrails]]` table.
    pub line: u32,
    /// The test and its limit.
    #[serde(flatten)]
    pub limits: Limits,
    /// Units needed before any decision.
    pub min_units: u64,
    /// `kill` or `alert`.
    pub action: &'static str,
    /// The most urgent of its arms' decisions; `None` before any.
    pub decision: Option<Decision>,
    /// Why its last check failed, if it did (server only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<&'a str>,
    /// Per compared arm: each treatment arm for a relative guardrail, the
    /// pooled treatment for an absolute one.
    pub arms: Vec<ArmView<'a>>,
}

/// A guardrail's test and limit.
#[derive(Debug, Serialize)]
#[serde(tag = "test", rename_all = "snake_case")]
pub enum Limits {
    /// Treatment against control.
    Relative {
        /// Tolerated relative harm.
        max_increase: f64,
        /// Which way the metric moving hurts.
        direction: Harm,
        /// Level of the sequential test.
        alpha: f64,
    },
    /// The treatment's windowed rate.
    Absolute {
        /// Highest tolerated rate.
        max_rate: f64,
        /// The window, in seconds.
        window_seconds: f64,
    },
}

impl Limits {
    fn of(test: &GuardrailTest) -> Self {
        match *test {
            GuardrailTest::Relative {
                margin,
                harm,
                alpha,
            } => Self::Relative {
                max_increase: margin,
                direction: harm,
                alpha,
            },
            GuardrailTest::Absolute { max_rate, window } => Self::Absolute {
                max_rate,
                window_seconds: window.as_secs_f64(),
            },
        }
    }
}

/// One compared arm's state.
#[derive(Debug, Serialize)]
pub struct ArmView<'a> {
    /// The treatment arm; `None` for an absolute guardrail's pooled treatment.
    pub arm: Option<&'a str>,
    /// Where it stands.
    pub decision: Decision,
    /// Since when.
    pub decided_at: String,
    /// When it was last checked.
    pub checked_at: String,
    /// The flag version it was checked for.
    pub flag_version: String,
    /// The analysis phase read.
    pub phase: i64,
    /// What the last check saw.
    #[serde(flatten)]
    pub figures: &'a Figures,
    /// The p-value or `above_since`.
    #[serde(flatten)]
    pub carried: Carried,
}

/// What a check carries to the next, as shown.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum Carried {
    /// Relative.
    Relative {
        /// The running-minimum always-valid p-value; `None` until defined.
        p_value: Option<f64>,
    },
    /// Absolute.
    Absolute {
        /// Since when every check saw the rate above the limit.
        above_since: Option<String>,
    },
}

impl<'a> ArmView<'a> {
    fn of(arm: Option<&'a str>, state: &'a ArmState) -> Self {
        Self {
            arm,
            decision: state.decision,
            decided_at: rfc3339_ms(state.decided_at),
            checked_at: rfc3339_ms(state.checked_at),
            flag_version: format!("{:016x}", state.flag_version),
            phase: state.phase,
            figures: &state.figures,
            carried: match state.figures {
                Figures::Relative { .. } => Carried::Relative {
                    p_value: state.running_min,
                },
                Figures::Absolute { .. } => Carried::Absolute {
                    above_since: state.above_since.map(rfc3339_ms),
                },
            },
        }
    }
}

/// The overview of every flag of `flags` with guardrails.
pub fn overview<'a>(
    flags: impl Iterator<Item = FlagInfo<'a>>,
    book: &'a Book,
    interval_seconds: f64,
    store_error: Option<String>,
) -> Overview<'a> {
    Overview {
        interval_seconds,
        last_check: book.last_check.map(rfc3339_ms),
        store_error,
        flags: flags
            .filter(|flag| !flag.guardrails().is_empty())
            .map(|flag| flag_guardrails(&flag, &book.states, &book.errors))
            .collect(),
    }
}

/// `flag`'s guardrails with their states and last errors.
pub fn flag_guardrails<'a>(
    flag: &FlagInfo<'a>,
    states: &'a BTreeMap<Key, ArmState>,
    errors: &'a BTreeMap<(String, usize), String>,
) -> FlagGuardrails<'a> {
    let guardrails = flag
        .guardrails()
        .iter()
        .enumerate()
        .map(|(index, guardrail)| {
            let arms: Vec<ArmView<'a>> = states
                .iter()
                .filter(|(key, _)| {
                    key.flag == flag.key()
                        && key.guardrail == index
                        && *key.metric == *guardrail.metric
                })
                .map(|(key, state)| ArmView::of(key.arm.as_deref(), state))
                .collect();
            GuardrailView {
                metric: &guardrail.metric,
                line: guardrail.line,
                limits: Limits::of(&guardrail.test),
                min_units: guardrail.min_units,
                action: guardrail.action.as_str(),
                decision: arms.iter().map(|a| a.decision).max_by_key(|d| d.severity()),
                error: errors
                    .get(&(flag.key().to_string(), index))
                    .map(String::as_str),
                arms,
            }
        })
        .collect();
    FlagGuardrails {
        flag: flag.key(),
        flag_version: flag.version(),
        killed_by: flag.killed_by(),
        checked: flag.killed_by().is_none(),
        guardrails,
    }
}

/// Per flag and metric of `flags`, for `/metrics`: the smallest p-value of
/// its relative guardrails' arms, and whether any of its guardrails is
/// tripped (two guardrails of a flag may watch one metric).
pub fn gauges(flags: &[FlagGuardrails<'_>]) -> Vec<GuardrailGauge> {
    let mut gauges: BTreeMap<(&str, &str), GuardrailGauge> = BTreeMap::new();
    for flag in flags {
        for guardrail in &flag.guardrails {
            let gauge = gauges
                .entry((flag.flag, guardrail.metric))
                .or_insert_with(|| GuardrailGauge {
                    flag: flag.flag.to_string(),
                    metric: guardrail.metric.to_string(),
                    p_value: None,
                    tripped: false,
                });
            gauge.tripped |= guardrail.decision == Some(Decision::Tripped);
            for arm in &guardrail.arms {
                if let Carried::Relative { p_value: Some(p) } = arm.carried {
                    gauge.p_value = Some(gauge.p_value.map_or(p, |q: f64| q.min(p)));
                }
            }
        }
    }
    gauges.into_values().collect()
}

/// A trip's figures for its notification: the guardrail's limits and the
/// arm's state, one level deep (`control_units`, `treatment_mean`, ...).
pub fn trip_figures(
    guardrail: &Guardrail,
    arm: Option<&str>,
    state: &ArmState,
) -> Map<String, Value> {
    #[derive(Serialize)]
    struct Trip<'a> {
        metric: &'a str,
        line: u32,
        #[serde(flatten)]
        limits: Limits,
        min_units: u64,
        action: &'static str,
        #[serde(flatten)]
        arm: ArmView<'a>,
    }
    let trip = Trip {
        metric: &guardrail.metric,
        line: guardrail.line,
        limits: Limits::of(&guardrail.test),
        min_units: guardrail.min_units,
        action: guardrail.action.as_str(),
        arm: ArmView::of(arm, state),
    };
    let Ok(Value::Object(nested)) = serde_json::to_value(&trip) else {
        return Map::new();
    };
    let mut flat = Map::new();
    for (name, value) in nested {
        match value {
            Value::Object(inner) => {
                for (field, value) in inner {
                    flat.insert(format!("{name}_{field}"), value);
                }
            }
            value => {
                flat.insert(name, value);
            }
        }
    }
    flat
}

/// What a trip's kill is stored with, as one sentence (`/v1/status`,
/// `flags kill` answers).
pub fn reason(guardrail: &Guardrail, arm: Option<&str>, state: &ArmState) -> String {
    let percent = |x: Option<f64>| x.map_or("-".to_string(), |x| format!("{:.2}%", x * 100.0));
    let what = format!(
        "guardrail on {} (line {})",
        guardrail.metric, guardrail.line
    );
    match (&state.figures, &guardrail.test) {
        (Figures::Relative { control, treatment }, GuardrailTest::Relative { alpha, .. }) => {
            format!(
                "{what}: treatment `{}` mean {} ({} units) against control `{}` mean {} ({} units); \
                 always-valid p = {} below alpha {alpha}",
                arm.unwrap_or(&treatment.variant),
                mean(treatment.mean),
                treatment.units,
                control.variant,
                mean(control.mean),
                control.units,
                state
                    .running_min
                    .map_or("-".to_string(), |p| format!("{p:.3e}")),
            )
        }
        (
            Figures::Absolute {
                treatment_units,
                units_with_event,
                rate,
            },
            GuardrailTest::Absolute { max_rate, window },
        ) => format!(
            "{what}: {units_with_event} of {treatment_units} treatment units ({}) had the event \
             in the last {}s, above max_rate {} at every check since {}",
            percent(*rate),
            window.as_secs_f64(),
            percent(Some(*max_rate)),
            state.above_since.map_or("-".to_string(), rfc3339_ms),
        ),
        _ => format!("{what}: tripped"),
    }
}

fn mean(x: Option<f64>) -> String {
    x.map_or("-".to_string(), |x| format!("{x:.4}"))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use flags_core::guardrail::GuardrailAction;

    use super::*;
    use crate::guardrails::decide::Side;

    fn state(figures: Figures, running_min: Option<f64>, above_since: Option<i64>) -> ArmState {
        ArmState {
            flag_version: 0xab,
            phase: 1,
            running_min,
            above_since,
            figures,
            decision: Decision::Tripped,
            decided_at: 1_790_000_000_000,
            checked_at: 1_790_000_000_000,
        }
    }

    #[test]
    fn a_relative_trip_has_both_sides_and_the_p_value_one_level_deep() {
        let guardrail = Guardrail {
            metric: "errors".into(),
            test: GuardrailTest::Relative {
                margin: 0.1,
                harm: Harm::Increase,
                alpha: 0.05,
            },
            min_units: 100,
            action: GuardrailAction::Kill,
            line: 12,
        };
        let side = |variant: &str, units, mean| Side {
            variant: variant.into(),
            units,
            mean: Some(mean),
        };
        let state = state(
            Figures::Relative {
                control: side("off", 300, 0.05),
                treatment: side("on", 310, 0.15),
            },
            Some(0.0004),
            None,
        );
        let figures = Value::Object(trip_figures(&guardrail, Some("on"), &state));
        assert_eq!(
            figures,
            serde_json::json!({
                "metric": "errors", "line": 12, "test": "relative", "max_increase": 0.1,
                "direction": "increase", "alpha": 0.05, "min_units": 100, "action": "kill",
                "arm": "on", "decision": "tripped", "decided_at": "2026-09-21T14:13:20Z",
                "checked_at": "2026-09-21T14:13:20Z", "flag_version": "00000000000000ab",
                "phase": 1, "control_variant": "off", "control_units": 300,
                "control_mean": 0.05, "treatment_variant": "on", "treatment_units": 310,
                "treatment_mean": 0.15, "p_value": 0.0004
            })
        );
        assert_eq!(
            reason(&guardrail, Some("on"), &state),
            "guardrail on errors (line 12): treatment `on` mean 0.1500 (310 units) against \
             control `off` mean 0.0500 (300 units); always-valid p = 4.000e-4 below alpha 0.05"
        );
    }

    #[test]
    fn an_absolute_trip_has_the_rate_its_limit_and_since_when() {
        let guardrail = Guardrail {
            metric: "errors".into(),
            test: GuardrailTest::Absolute {
                max_rate: 0.1,
                window: Duration::from_secs(60),
            },
            min_units: 100,
            action: GuardrailAction::Alert,
            line: 20,
        };
        let state = state(
            Figures::Absolute {
                treatment_units: 300,
                units_with_event: 39,
                rate: Some(0.13),
            },
            None,
            Some(1_789_999_940_000),
        );
        let figures = trip_figures(&guardrail, None, &state);
        assert_eq!(figures["test"], "absolute");
        assert_eq!(figures["max_rate"], 0.1);
        assert_eq!(figures["window_seconds"], 60.0);
        assert_eq!(figures["arm"], Value::Null);
        assert_eq!(figures["rate"], 0.13);
        assert_eq!(figures["above_since"], "2026-09-21T14:12:20Z");
        assert_eq!(
            reason(&guardrail, None, &state),
            "guardrail on errors (line 20): 39 of 300 treatment units (13.00%) had the event in \
             the last 60s, above max_rate 10.00% at every check since 2026-09-21T14:12:20Z"
        );
    }
}
