//! Guardrail states as the event store keeps them: per flag, guardrail,
//! metric and compared arm, the state the last check left, so that a
//! restart resumes where it stopped (running minimum, `above_since`, the
//! decision and its time) and `flags results` can show it with no server
//! running.
//!
//! What it is for: turning [`ArmState`]s into the store's rows and back,
//! refusing a row this binary cannot read with a message naming it. Not
//! here: the database (`crate::store`), deciding (`decide`) or when to
//! write (`super`).

use super::decide::{ArmState, Decision, Figures};
use crate::store::{EventStore, GuardrailRow, Readouts, StoreError};

/// Which state a row is: one guardrail of one flag, for one compared arm.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key {
    /// The flag.
    pub flag: String,
    /// The guardrail's index in the flag's list, from 0.
    pub guardrail: usize,
    /// The metric it watches.
    pub metric: String,
    /// The treatment arm compared (relative); `None` for an absolute
    /// guardrail's pooled treatment.
    pub arm: Option<String>,
}

/// Every state `store` holds.
pub fn load(store: &dyn Readouts) -> Result<Vec<(Key, ArmState)>, String> {
    let rows = store.guardrail_states().map_err(|e| e.to_string())?;
    rows.into_iter().map(from_row).collect()
}

/// Replaces the stored states of `states`' keys, all or none.
pub fn save<'a>(
    store: &dyn EventStore,
    states: impl IntoIterator<Item = (&'a Key, &'a ArmState)>,
) -> Result<(), StoreError> {
    let rows: Vec<GuardrailRow> = states
        .into_iter()
        .map(|(key, state)| to_row(key, state))
        .collect();
    store.save_guardrail_states(&rows)
}

fn to_row(key: &Key, state: &ArmState) -> GuardrailRow {
    GuardrailRow {
        flag: key.flag.clone(),
        guardrail: key.guardrail as i64,
        metric: key.metric.clone(),
        arm: key.arm.clone().unwrap_or_default(),
        flag_version: format!("{:016x}", state.flag_version),
        phase: state.phase,
        running_min: state.running_min,
        above_since: state.above_since,
        // Figures are plain numbers and strings: serialising cannot fail.
        figures: serde_json::to_string(&state.figures).unwrap_or_default(),
        decision: state.decision.as_str().to_string(),
        decided_at: state.decided_at,
        checked_at: state.checked_at,
    }
}

fn from_row(row: GuardrailRow) -> Result<(Key, ArmState), String> {
    let unreadable = |what: &str| {
        format!(
            "guardrail state of flag `{}` (guardrail {}, metric `{}`): {what}",
            row.flag, row.guardrail, row.metric
        )
    };
    let state = ArmState {
        flag_version: u64::from_str_radix(&row.flag_version, 16)
            .map_err(|e| unreadable(&format!("flag_version `{}`: {e}", row.flag_version)))?,
        phase: row.phase,
        running_min: row.running_min,
        above_since: row.above_since,
        figures: serde_json::from_str::<Figures>(&row.figures)
            .map_err(|e| unreadable(&format!("figures `{}`: {e}", row.figures)))?,
        decision: Decision::parse(&row.decision)
            .ok_or_else(|| unreadable(&format!("unknown decision `{}`", row.decision)))?,
        decided_at: row.decided_at,
        checked_at: row.checked_at,
    };
    let key = Key {
        guardrail: usize::try_from(row.guardrail)
            .map_err(|e| unreadable(&format!("guardrail index: {e}")))?,
        arm: (!row.arm.is_empty()).then_some(row.arm),
        flag: row.flag,
        metric: row.metric,
    };
    Ok((key, state))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guardrails::decide::Side;
    use crate::store::StoreOptions;
    use crate::store::sqlite::SqliteStore;

    fn key(arm: Option<&str>) -> Key {
        Key {
            flag: "f".into(),
            guardrail: 1,
            metric: "errors".into(),
            arm: arm.map(Into::into),
        }
    }

    fn state(decision: Decision, figures: Figures) -> ArmState {
        ArmState {
            flag_version: u64::MAX - 5,
            phase: 2,
            running_min: Some(0.001),
            above_since: None,
            figures,
            decision,
            decided_at: 1_790_000_000_000,
            checked_at: 1_790_000_000_500,
        }
    }

    #[test]
    fn states_are_replaced_and_read_back_after_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path(), StoreOptions::default()).unwrap();
        let side = |variant: &str, mean| Side {
            variant: variant.into(),
            units: 300,
            mean,
        };
        let relative = Figures::Relative {
            control: side("off", Some(0.05)),
            treatment: side("on", None),
        };
        let absolute = Figures::Absolute {
            treatment_units: 300,
            units_with_event: 40,
            rate: Some(40.0 / 300.0),
        };
        let (on, pooled) = (key(Some("on")), key(None));
        save(&store, [(&on, &state(Decision::Clear, relative.clone()))]).unwrap();
        let tripped = state(Decision::Tripped, relative);
        let mut above = state(Decision::Above, absolute);
        above.above_since = Some(1_789_999_999_000);
        save(&store, [(&on, &tripped), (&pooled, &above)]).unwrap();
        drop(store);
        let reopened = SqliteStore::open(dir.path(), StoreOptions::default()).unwrap();
        assert_eq!(
            load(reopened.readouts()).unwrap(),
            [(pooled, above), (on, tripped)]
        );
    }

    #[test]
    fn a_row_this_binary_cannot_read_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path(), StoreOptions::default()).unwrap();
        let mut row = to_row(
            &key(None),
            &state(
                Decision::Clear,
                Figures::Absolute {
                    treatment_units: 1,
                    units_with_event: 0,
                    rate: Some(0.0),
                },
            ),
        );
        row.decision = "exploded".into();
        store.save_guardrail_states(&[row]).unwrap();
        let error = load(store.readouts()).unwrap_err();
        assert!(error.contains("unknown decision `exploded`"), "{error}");
        assert!(error.contains("flag `f`"), "{error}");
    }
}
