//! Guardrails that roll back by themselves: a timer checks the metrics of
//! every guarded flag off the request path, keeps each check's state, and
//! kills the flag (`action = "kill"`) or only notifies (`"alert"`) when one
//! trips, and logs each trip and alert in the store's trip log (the revive
//! that ends a kill is logged by `crate::kills`).
//!
//! What it is for: the timer (`spawn`: every `--guardrail-interval`, one
//! check at a time, the database work on a blocking thread); a check
//! (`check_all`: per flag that serves its rules, per guardrail, read the
//! figures, decide, act); the states in memory and their persistence (a
//! check's states are stored as it ends, so a restart resumes them). A
//! guardrail whose check fails (store unavailable, numbers the statistics
//! refuse) is logged and shows the error in `GET /v1/guardrails`; the
//! others go on.
//!
//! A trip is never undone by itself: a `kill` guardrail that tripped stays
//! tripped, and a flag killed by anything (the file, an admin, a guardrail)
//! is not checked. A kill stops the flag's analysis phase and a revive
//! (`flags revive --server`, the admin API) starts a new one (see
//! `store::EventStore::start_phases`), as does an edit of its definition
//! (`store::AnalysedFlag::assignment`); states of another phase are not carried
//! (`decide`), so the first check in the new phase re-arms every guardrail
//! of the flag from scratch, on the units exposed since, and the evidence
//! that tripped it does not kill it again.
//!
//! What it is not: the statistics (`flags_core::stats::guardrail`), the
//! reading of figures (`figures`), the decision (`decide`), the table
//! (`store`), or the HTTP and CLI shapes (`view`).

pub mod decide;
pub mod figures;
pub mod store;
pub mod view;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use flags_core::guardrail::{Guardrail, GuardrailAction, GuardrailTest};
use flags_core::{FlagInfo, KilledBy, Snapshot};
use tokio::time::MissedTickBehavior;

use crate::clock::now_ms;
use crate::events::EventLog;
use crate::events::analysis::current_phase;
use crate::kills::{Change, Kills};
use crate::live::LiveConfig;
use crate::store::{EventStore, GuardrailTrip, Readouts, StoreError};
use crate::webhooks::{FlagChange, Notification, Notifier};
use decide::{ArmState, Check, Step};
use store::Key;

/// The guardrails' states, and where they are stored.
pub struct Guardrails {
    /// Time between checks.
    interval: Duration,
    book: Mutex<Book>,
    store: Result<Arc<dyn EventStore>, String>,
    /// Held while states are copied out and written, so that the last
    /// write is of the latest states.
    persisting: Mutex<()>,
}

/// What the checks know, in memory.
#[derive(Default)]
pub struct Book {
    /// Every guardrail's state per compared arm (restored at startup).
    pub states: BTreeMap<Key, ArmState>,
    /// Why the last check of a guardrail (flag, index) failed, until one succeeds.
    pub errors: BTreeMap<(String, usize), String>,
    /// When the last check to end began (Unix ms): its figures include
    /// everything stored before then.
    pub last_check: Option<i64>,
    /// Why the last read or write of the states failed, until one succeeds.
    pub store_error: Option<String>,
    /// Whether the stored states were read (a database down at startup is
    /// read again at each check): until then nothing is written over them.
    restored: bool,
    /// States changed since they were last written.
    dirty: BTreeSet<Key>,
}

/// A guardrail that tripped at this check, for one arm.
struct Trip {
    /// The guardrail's index among the flag's.
    index: usize,
    arm: Option<String>,
    state: ArmState,
}

impl Guardrails {
    /// Restores the states kept in `events`' store; checks every
    /// `interval`. Without a store the checks run from scratch, in memory
    /// only; a store that cannot be read yet is read again at each check,
    /// and written to only once it has been. Blocks on the store.
    pub fn open(events: &EventLog, interval: Duration) -> Self {
        let guardrails = Self {
            interval,
            book: Mutex::new(Book::default()),
            store: events.store().cloned().map_err(str::to_string),
            persisting: Mutex::new(()),
        };
        if let Err(error) = &guardrails.store {
            tracing::error!("guardrail checks start afresh and are not stored: {error}");
        }
        guardrails.restore();
        guardrails
    }

    /// Reads the stored states if not done yet; a state decided since
    /// startup stays (it is newer). Blocks on the store.
    fn restore(&self) {
        let Ok(store) = &self.store else {
            return;
        };
        if self.book().restored {
            return;
        }
        let loaded = store::load(store.readouts());
        let mut book = self.book();
        match loaded {
            Ok(states) => {
                for (key, state) in states {
                    book.states.entry(key).or_insert(state);
                }
                book.restored = true;
                book.store_error = None;
            }
            Err(error) => {
                tracing::error!("stored guardrail states cannot be read yet: {error}");
                book.store_error = Some(format!("stored states cannot be read yet: {error}"));
            }
        }
    }

    /// Time between checks.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// What the checks know, locked (briefly: nothing waits on the disk
    /// while holding it).
    pub fn book(&self) -> MutexGuard<'_, Book> {
        self.book.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether states are stored, and why not.
    pub fn store_error(&self) -> Option<String> {
        match &self.store {
            Ok(_) => self.book().store_error.clone(),
            Err(error) => Some(error.clone()),
        }
    }

    /// Decides under the lock with `decide` (given the states so far),
    /// records the new states, and returns the arms that tripped.
    fn record(
        &self,
        decide: impl FnOnce(&BTreeMap<Key, ArmState>) -> Result<Vec<(Key, Step)>, String>,
    ) -> Result<Vec<Trip>, String> {
        let mut book = self.book();
        let steps = decide(&book.states)?;
        let mut trips = Vec::new();
        for (key, step) in steps {
            if step.tripped {
                trips.push(Trip {
                    index: key.guardrail,
                    arm: key.arm.clone(),
                    state: step.state.clone(),
                });
            }
            book.dirty.insert(key.clone());
            book.states.insert(key, step.state);
        }
        Ok(trips)
    }

    /// Records the outcome of one guardrail's check.
    fn outcome(&self, flag: &str, index: usize, error: Option<String>) {
        let mut book = self.book();
        let key = (flag.to_string(), index);
        match error {
            Some(error) => {
                tracing::warn!(flag, guardrail = index, "guardrail check failed: {error}");
                book.errors.insert(key, error);
            }
            None => {
                book.errors.remove(&key);
            }
        }
    }

    /// Checks `flag`'s guardrails in order at `now`, handing each one's
    /// trips to `act`, which says whether the flag is now killed: the
    /// others then wait (a killed flag is not checked). A guardrail whose
    /// check fails keeps the error and the others go on.
    fn check_flag(
        &self,
        snapshot: &Snapshot,
        flag: &FlagInfo<'_>,
        readouts: Result<&dyn Readouts, &String>,
        now: i64,
        mut act: impl FnMut(&Guardrail, Vec<Trip>) -> bool,
    ) {
        let reading = readouts.map_err(Clone::clone).and_then(|readouts| {
            let phase = current_phase(readouts, flag.key()).map_err(database)?;
            Ok((readouts, phase))
        });
        for (index, guardrail) in flag.guardrails().iter().enumerate() {
            let checked = reading.clone().and_then(|(readouts, phase)| {
                let at = At {
                    flag,
                    index,
                    guardrail,
                    phase,
                    now,
                };
                self.check_guardrail(readouts, snapshot, &at)
            });
            let trips = match checked {
                Ok(trips) => trips,
                Err(error) => {
                    self.outcome(flag.key(), index, Some(error));
                    continue;
                }
            };
            self.outcome(flag.key(), index, None);
            if act(guardrail, trips) {
                return;
            }
        }
    }

    /// Reads one guardrail's figures and decides; the arms that tripped.
    fn check_guardrail(
        &self,
        readouts: &dyn Readouts,
        snapshot: &Snapshot,
        at: &At<'_, '_>,
    ) -> Result<Vec<Trip>, String> {
        let metric = &*at.guardrail.metric;
        match at.guardrail.test {
            GuardrailTest::Relative {
                margin,
                harm,
                alpha,
            } => {
                // `compile` refuses guardrails on undeclared metrics.
                let definition = snapshot
                    .metric(metric)
                    .ok_or_else(|| format!("metric `{metric}` is not declared"))?;
                let sides =
                    figures::relative_sides(readouts, at.flag, metric, definition, at.phase)
                        .map_err(database)?;
                let Some((control, treatments)) = sides.split_first() else {
                    return Ok(Vec::new());
                };
                // An arm is shown once it has units, and then at every
                // check, so that an edit's fresh start replaces its state.
                self.record(|states| {
                    treatments
                        .iter()
                        .filter(|t| {
                            decide::units(&t.stats) > 0
                                || states.contains_key(&at.key(Some(&t.name)))
                        })
                        .map(|treatment| {
                            let key = at.key(Some(&treatment.name));
                            let step = at
                                .check(states.get(&key))
                                .relative(margin, harm, alpha, control, treatment)
                                .map_err(|e| format!("the statistics refuse the figures: {e}"))?;
                            Ok((key, step))
                        })
                        .collect()
                })
            }
            GuardrailTest::Absolute { max_rate, window } => {
                let window_ms = i64::try_from(window.as_millis()).unwrap_or(i64::MAX);
                let (units, with_event) =
                    figures::windowed_rate(readouts, at.flag, metric, at.phase, at.now, window_ms)
                        .map_err(database)?;
                self.record(|states| {
                    let key = at.key(None);
                    let step = at
                        .check(states.get(&key))
                        .absolute(max_rate, window_ms, units, with_event);
                    Ok(vec![(key, step)])
                })
            }
        }
    }

    /// Appends `trip` of `flag`'s `guardrail` to the store's trip log. A
    /// failed write is logged and not retried: the trip acts all the same,
    /// and its kill stays in `/v1/status`.
    fn log_trip(&self, flag: &str, guardrail: &Guardrail, trip: &Trip) {
        let Ok(store) = &self.store else {
            return;
        };
        let entry = GuardrailTrip {
            flag: flag.to_string(),
            guardrail: trip.index as i64,
            metric: guardrail.metric.to_string(),
            arm: trip.arm.clone().unwrap_or_default(),
            action: guardrail.action.as_str().to_string(),
            tripped_at: trip.state.decided_at,
            // A map of plain numbers and strings: serialising cannot fail.
            figures: serde_json::to_string(&view::trip_figures(
                guardrail,
                trip.arm.as_deref(),
                &trip.state,
            ))
            .unwrap_or_default(),
            reason: view::reason(guardrail, trip.arm.as_deref(), &trip.state),
            revived_at: None,
            revived_by: None,
        };
        if let Err(error) = store.record_guardrail_trip(&entry) {
            tracing::error!(flag, "guardrail trip not logged: {error}");
        }
    }

    /// Writes the states changed since the last write; a failed write is
    /// retried with the next.
    fn persist(&self) {
        let Ok(store) = &self.store else {
            return;
        };
        self.restore();
        if !self.book().restored {
            return;
        }
        let _turn = self.persisting.lock().unwrap_or_else(|e| e.into_inner());
        let changed: Vec<(Key, ArmState)> = {
            let mut book = self.book();
            let keys = std::mem::take(&mut book.dirty);
            keys.into_iter()
                .filter_map(|key| Some((key.clone(), book.states.get(&key)?.clone())))
                .collect()
        };
        if changed.is_empty() {
            return;
        }
        let saved = store::save(
            store.as_ref(),
            changed.iter().map(|(key, state)| (key, state)),
        )
        .map_err(|e| e.to_string());
        let mut book = self.book();
        if let Err(error) = &saved {
            tracing::error!("guardrail checks not stored: {error}");
            book.dirty.extend(changed.into_iter().map(|(key, _)| key));
        }
        book.store_error = saved.err();
    }
}

/// What the checks read and act on: the server's state, seen from here.
pub trait CheckContext: Send + Sync + 'static {
    /// The states and their store.
    fn guardrails(&self) -> &Guardrails;
    /// The served config.
    fn live(&self) -> &LiveConfig;
    /// The event store the figures come from.
    fn events(&self) -> &EventLog;
    /// Where a `kill` guardrail kills.
    fn kills(&self) -> &Kills;
    /// Where trips and alerts are announced.
    fn notifier(&self) -> &Notifier;
}

/// Starts the checks: at once, then every interval, one at a time (the
/// next waits for the last to end), each on a blocking thread.
pub fn spawn<C: CheckContext>(state: &Arc<C>) {
    let checking = state.clone();
    tokio::spawn(async move {
        let mut timer = tokio::time::interval(checking.guardrails().interval());
        timer.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            timer.tick().await;
            let state = checking.clone();
            if tokio::task::spawn_blocking(move || check_all(state.as_ref()))
                .await
                .is_err()
            {
                tracing::error!(
                    "a guardrail check failed unexpectedly; the next one runs as planned"
                );
            }
        }
    });
}

/// Checks every guardrail of every flag that serves its rules, then stores
/// the states.
pub fn check_all(state: &impl CheckContext) {
    let guardrails = state.guardrails();
    guardrails.restore();
    let published = state.live().current.load_full();
    let snapshot = &published.snapshot;
    let now = now_ms();
    let store = state
        .events()
        .store()
        .map_err(|reason| format!("events are not recorded: {reason}"));
    let readouts = store.as_ref().map(|store| store.readouts());
    for flag in snapshot.flags() {
        if flag.guardrails().is_empty() || flag.killed_by().is_some() {
            continue;
        }
        guardrails.check_flag(
            snapshot,
            &flag,
            readouts.as_ref().copied().map_err(|reason| *reason),
            now,
            |guardrail, trips| act(state, &flag, guardrail, trips),
        );
    }
    guardrails.book().last_check = Some(now);
    guardrails.persist();
}

/// One guardrail of one flag, checked in one phase at one time.
struct At<'a, 's> {
    flag: &'a FlagInfo<'s>,
    index: usize,
    guardrail: &'s Guardrail,
    phase: i64,
    now: i64,
}

impl At<'_, '_> {
    fn key(&self, arm: Option<&str>) -> Key {
        Key {
            flag: self.flag.key().to_string(),
            guardrail: self.index,
            metric: self.guardrail.metric.to_string(),
            arm: arm.map(Into::into),
        }
    }

    fn check<'a>(&'a self, previous: Option<&'a ArmState>) -> Check<'a> {
        Check::new(
            self.guardrail,
            previous,
            self.flag.version().0,
            self.phase,
            self.now,
        )
    }
}

fn database(error: StoreError) -> String {
    format!("cannot read the event store: {error}")
}

/// Acts on what tripped, once the trip is stored: `kill` kills the flag
/// (the first arm's figures decide) and sends `guardrail.tripped`; `alert`
/// sends `guardrail.alert` per arm. Returns whether the flag is now killed.
fn act(
    state: &impl CheckContext,
    flag: &FlagInfo<'_>,
    guardrail: &Guardrail,
    trips: Vec<Trip>,
) -> bool {
    if trips.is_empty() {
        return false;
    }
    state.guardrails().persist();
    match guardrail.action {
        GuardrailAction::Alert => {
            for trip in &trips {
                tracing::warn!(
                    flag = flag.key(),
                    metric = &*guardrail.metric,
                    "guardrail alert"
                );
                state.guardrails().log_trip(flag.key(), guardrail, trip);
                let change = flag_change(flag, guardrail, trip);
                state.notifier().send(Notification::GuardrailAlert(change));
            }
            false
        }
        GuardrailAction::Kill => {
            let Some(trip) = trips.first() else {
                return false;
            };
            let by = KilledBy::Guardrail(guardrail.metric.clone());
            let reason = view::reason(guardrail, trip.arm.as_deref(), &trip.state);
            let outcome = state
                .kills()
                .kill(state.live(), flag.key(), by, Some(reason));
            // Anything else: killed or removed since the check began.
            if outcome.is_some_and(|o| o.change == Change::Killed) {
                tracing::warn!(
                    flag = flag.key(),
                    metric = &*guardrail.metric,
                    "guardrail killed the flag"
                );
                state.guardrails().log_trip(flag.key(), guardrail, trip);
                let change = flag_change(flag, guardrail, trip);
                state
                    .notifier()
                    .send(Notification::GuardrailTripped(change));
            }
            true
        }
    }
}

fn flag_change(flag: &FlagInfo<'_>, guardrail: &Guardrail, trip: &Trip) -> FlagChange {
    FlagChange {
        flag: flag.key().to_string(),
        actor: KilledBy::Guardrail(guardrail.metric.clone()),
        figures: view::trip_figures(guardrail, trip.arm.as_deref(), &trip.state),
    }
}

#[cfg(test)]
mod tests {
    use flags_core::{Overrides, compile};

    use std::path::Path;

    use rusqlite::Connection;

    use super::decide::Decision;
    use super::*;
    use crate::store::StoreOptions;
    use crate::store::sqlite::{SqliteReader, schema};

    /// A 50% rollout guarded on a mean metric, then on a conversion metric.
    fn config(rollout: u32) -> String {
        format!(
            "version = 1\n[metrics.latency]\nkind = \"mean\"\n[metrics.errors]\nkind = \"conversion\"\n\
             [flags.f]\n[[flags.f.rules]]\nrollout = {rollout}\nserve = \"on\"\n\
             [[flags.f.guardrails]]\nmetric = \"latency\"\n\
             [[flags.f.guardrails]]\nmetric = \"errors\"\n"
        )
    }

    /// 200 units a side; errors at 5% and 40%; latency sums that no real
    /// values can give (a sum of squares below sum^2 / units), and a unit
    /// total that is not even finite, so that summing afresh from the
    /// per-unit totals fails too.
    fn events(dir: &Path) -> Connection {
        let connection = schema::open_for_writing(dir).unwrap();
        connection
            .execute_batch(
                "INSERT INTO arm_units VALUES ('f', 1, 'off', 200), ('f', 1, 'on', 200);
                 INSERT INTO arm_outcomes VALUES
                     ('f', 1, 'off', 'errors', 10, 10, 10), ('f', 1, 'on', 'errors', 80, 80, 80),
                     ('f', 1, 'off', 'latency', 0, 100, 1), ('f', 1, 'on', 'latency', 0, 100, 1);
                 INSERT INTO exposures (flag, phase, unit, variant, time) VALUES ('f', 1, 'u', 'on', 0);
                 INSERT INTO unit_outcomes VALUES ('f', 1, 'u', 'latency', 1, 1e999);",
            )
            .unwrap();
        connection
    }

    /// Guardrail states kept in the event store in `dir`.
    fn states_in(dir: &Path) -> EventLog {
        EventLog::open_sqlite(dir, StoreOptions::default()).unwrap()
    }

    /// Checks `text`'s flag `f`; the (guardrail index, arms) that tripped.
    fn check(
        guardrails: &Guardrails,
        text: &str,
        readouts: Result<&dyn Readouts, &String>,
    ) -> Vec<(usize, Vec<Option<String>>)> {
        let snapshot = compile(text, &Overrides::new()).unwrap();
        let flag = snapshot.flag("f").unwrap();
        let mut acted = Vec::new();
        guardrails.check_flag(&snapshot, &flag, readouts, now_ms(), |guardrail, trips| {
            if !trips.is_empty() {
                let index = flag
                    .guardrails()
                    .iter()
                    .position(|g| g == guardrail)
                    .unwrap();
                acted.push((index, trips.into_iter().map(|t| t.arm).collect()));
            }
            false
        });
        guardrails.persist();
        acted
    }

    fn decision(guardrails: &Guardrails, index: usize, metric: &str) -> Option<Decision> {
        let key = Key {
            flag: "f".into(),
            guardrail: index,
            metric: metric.into(),
            arm: Some("on".into()),
        };
        guardrails.book().states.get(&key).map(|s| s.decision)
    }

    #[test]
    fn a_guardrail_whose_check_fails_keeps_its_error_and_the_others_go_on() {
        let (data, states) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        events(data.path());
        let reader = SqliteReader::open(data.path()).unwrap();
        let guardrails = Guardrails::open(&states_in(states.path()), Duration::from_secs(10));
        let acted = check(&guardrails, &config(50), Ok(&reader));
        assert_eq!(acted, [(1, vec![Some("on".to_string())])]);
        let error = guardrails.book().errors[&("f".to_string(), 0)].clone();
        assert!(
            error.contains("the statistics refuse the figures"),
            "{error}"
        );
        assert_eq!(decision(&guardrails, 1, "errors"), Some(Decision::Tripped));
        // As `GET /v1/guardrails` shows them.
        let snapshot = compile(&config(50), &Overrides::new()).unwrap();
        let book = guardrails.book();
        let shown = view::flag_guardrails(&snapshot.flag("f").unwrap(), &book.states, &book.errors);
        assert_eq!(shown.guardrails[0].error, Some(error.as_str()));
        assert_eq!(shown.guardrails[1].error, None);
        assert_eq!(shown.guardrails[1].decision, Some(Decision::Tripped));
        drop(book);

        // Without a store, every guardrail says why; nothing acts.
        let unavailable = "events are not recorded: disk full".to_string();
        assert!(check(&guardrails, &config(50), Err(&unavailable)).is_empty());
        assert_eq!(guardrails.book().errors.len(), 2);
        assert_eq!(guardrails.book().errors[&("f".to_string(), 1)], unavailable);
    }

    /// Whether `/metrics` would show `f`'s guardrail on `metric` tripped.
    fn tripped_gauge(guardrails: &Guardrails, metric: &str) -> bool {
        let snapshot = compile(&config(50), &Overrides::new()).unwrap();
        let book = guardrails.book();
        let shown = view::flag_guardrails(&snapshot.flag("f").unwrap(), &book.states, &book.errors);
        let gauges = view::gauges(&[shown]);
        gauges.iter().find(|g| g.metric == metric).unwrap().tripped
    }

    #[test]
    fn a_trip_survives_a_restart_and_a_new_phase_re_arms_it_from_scratch() {
        let (data, states) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let connection = events(data.path());
        let reader = SqliteReader::open(data.path()).unwrap();
        let first = Guardrails::open(&states_in(states.path()), Duration::from_secs(10));
        assert_eq!(check(&first, &config(50), Ok(&reader)).len(), 1);
        drop(first);

        let restarted = Guardrails::open(&states_in(states.path()), Duration::from_secs(10));
        assert_eq!(decision(&restarted, 1, "errors"), Some(Decision::Tripped));
        // The kill's trip stays, and is not acted on again.
        assert!(check(&restarted, &config(50), Ok(&reader)).is_empty());
        assert_eq!(decision(&restarted, 1, "errors"), Some(Decision::Tripped));
        assert!(tripped_gauge(&restarted, "errors"));

        // A revive starts phase 2 (as the events' writer records it), with
        // no unit exposed yet: the guardrail waits, and the gauge drops.
        connection
            .execute_batch(
                "INSERT INTO phases (flag, number, assignment, started)
                 VALUES ('f', 1, 'a', 0), ('f', 2, 'a', 1);",
            )
            .unwrap();
        assert!(check(&restarted, &config(50), Ok(&reader)).is_empty());
        assert_eq!(decision(&restarted, 1, "errors"), Some(Decision::Waiting));
        assert!(!tripped_gauge(&restarted, "errors"));
        drop(restarted);
        let stored = Guardrails::open(&states_in(states.path()), Duration::from_secs(10));
        assert_eq!(decision(&stored, 1, "errors"), Some(Decision::Waiting));
    }
}
