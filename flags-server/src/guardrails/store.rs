//! Guardrail checks in the event database (`guardrail_checks`, schema
//! version 7): per flag, guardrail, metric and compared arm, the state the
//! last check left, so that a restart resumes where it stopped (running
//! minimum, `above_since`, the decision and its time) and `flags results`
//! can show it with no server running.
//!
//! Written on a connection of its own with the events' durability, like
//! the runtime kills; every call blocks on the disk, so callers run it off
//! the async executor. Not here: deciding (`decide`) or when to write
//! (`super`).

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rusqlite::{Connection, params};

use super::decide::{ArmState, Decision, Figures};
use crate::events::schema::{self, OpenError};

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

/// The table, on its own write connection.
pub struct GuardrailStore {
    path: PathBuf,
    connection: Mutex<Connection>,
}

impl GuardrailStore {
    /// Opens (creating and migrating if needed) the database in `dir`.
    pub fn open(dir: &Path) -> Result<Self, OpenError> {
        Ok(Self {
            path: dir.join(schema::FILE_NAME),
            connection: Mutex::new(schema::open_for_writing(dir)?),
        })
    }

    /// Every stored state.
    pub fn load(&self) -> Result<Vec<(Key, ArmState)>, String> {
        load(&self.connection()).map_err(|e| self.error(e))
    }

    /// Stores `states` in one transaction, replacing their earlier rows.
    pub fn save<'a>(
        &self,
        states: impl IntoIterator<Item = (&'a Key, &'a ArmState)>,
    ) -> Result<(), String> {
        let mut connection = self.connection();
        let write = |connection: &mut Connection| -> rusqlite::Result<()> {
            let transaction = connection.transaction()?;
            {
                let mut insert = transaction.prepare_cached(
                    "INSERT OR REPLACE INTO guardrail_checks (flag, guardrail, metric, arm,
                         flag_version, phase, running_min, above_since, figures, decision,
                         decided_at, checked_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
                )?;
                for (key, state) in states {
                    let figures = serde_json::to_string(&state.figures)
                        .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
                    insert.execute(params![
                        key.flag,
                        key.guardrail as i64,
                        key.metric,
                        key.arm.as_deref().unwrap_or_default(),
                        format!("{:016x}", state.flag_version),
                        state.phase,
                        state.running_min,
                        state.above_since,
                        figures,
                        state.decision.as_str(),
                        state.decided_at,
                        state.checked_at,
                    ])?;
                }
            }
            transaction.commit()
        };
        write(&mut connection).map_err(|e| self.error(e))
    }

    fn connection(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.connection.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn error(&self, error: impl std::fmt::Display) -> String {
        format!("guardrail checks in {}: {error}", self.path.display())
    }
}

/// Every state stored in the database of `connection` (the writer's, or a
/// read-only one for `flags results`).
pub fn load(connection: &Connection) -> rusqlite::Result<Vec<(Key, ArmState)>> {
    let mut statement = connection.prepare(
        "SELECT flag, guardrail, metric, arm, flag_version, phase, running_min, above_since,
                figures, decision, decided_at, checked_at
         FROM guardrail_checks ORDER BY flag, guardrail, metric, arm",
    )?;
    let rows = statement.query_map([], |row| {
        let arm: String = row.get(3)?;
        let key = Key {
            flag: row.get(0)?,
            guardrail: row.get::<_, i64>(1)? as usize,
            metric: row.get(2)?,
            arm: (!arm.is_empty()).then_some(arm),
        };
        let version: String = row.get(4)?;
        let figures: String = row.get(8)?;
        let decision: String = row.get(9)?;
        let state = ArmState {
            flag_version: u64::from_str_radix(&version, 16)
                .map_err(|e| unreadable(4, format!("flag_version `{version}`: {e}")))?,
            phase: row.get(5)?,
            running_min: row.get(6)?,
            above_since: row.get(7)?,
            figures: serde_json::from_str::<Figures>(&figures)
                .map_err(|e| unreadable(8, format!("figures `{figures}`: {e}")))?,
            decision: Decision::parse(&decision)
                .ok_or_else(|| unreadable(9, format!("unknown decision `{decision}`")))?,
            decided_at: row.get(10)?,
            checked_at: row.get(11)?,
        };
        Ok((key, state))
    })?;
    rows.collect()
}

/// A column that holds something this binary cannot read.
fn unreadable(column: usize, message: String) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(column, rusqlite::types::Type::Text, message.into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guardrails::decide::Side;

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
        let store = GuardrailStore::open(dir.path()).unwrap();
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
        store
            .save([(&on, &state(Decision::Clear, relative.clone()))])
            .unwrap();
        let tripped = state(Decision::Tripped, relative);
        let mut above = state(Decision::Above, absolute);
        above.above_since = Some(1_789_999_999_000);
        store.save([(&on, &tripped), (&pooled, &above)]).unwrap();
        drop(store);
        let reopened = GuardrailStore::open(dir.path()).unwrap();
        assert_eq!(reopened.load().unwrap(), [(pooled, above), (on, tripped)]);
    }

    #[test]
    fn a_row_this_binary_cannot_read_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = GuardrailStore::open(dir.path()).unwrap();
        store
            .connection()
            .execute_batch(
                "INSERT INTO guardrail_checks VALUES
                 ('f', 0, 'errors', '', '00000000000000ff', 1, NULL, NULL,
                  '{\"treatment_units\":1,\"units_with_event\":0,\"rate\":0.0}', 'exploded', 1, 1);",
            )
            .unwrap();
        let error = store.load().unwrap_err();
        assert!(error.contains("unknown decision `exploded`"), "{error}");
        assert!(error.contains(schema::FILE_NAME), "{error}");
    }
}
