//! Experiments: the listing (`GET /v1/experiments`) and the readout
//! (`GET /v1/experiments/{flag}/results`), both admin-only.
//!
//! The readout is computed by `crate::events::analysis` on a read-only
//! connection of its own, on a blocking thread, so it neither waits for nor
//! delays the event writer. Also here, what keeps analyses honest: starting a
//! new analysis phase when a reload changes an experiment's assignment
//! (before the new config is served), and an hourly look at every
//! experiment so the always-valid p-values are tracked even when nobody
//! asks. Not here: storing events (`events`).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::response::Response;
use flags_core::{ConfigVersion, FlagInfo, bucket::BUCKETS};
use serde::{Deserialize, Serialize};

use super::auth::Admin;
use super::errors::ApiError;
use super::json;
use super::state::AppState;
use crate::clock::now_ms;
use crate::events::{EventLog, analysis};
use crate::live::{LiveConfig, Published};
use crate::store::{EventStore, PhaseStart};
use crate::tokens::Role;

/// Interval between the looks taken without a request.
const LOOK_INTERVAL: Duration = Duration::from_secs(60 * 60);

/// `GET /v1/experiments` (admin): every experiment, whether it is running,
/// and how it is laid out.
pub async fn list(State(state): State<AppState>, _: Admin) -> Response {
    let published = state.live.current.load();
    let experiments = published
        .snapshot
        .flags()
        .flat_map(|flag| {
            // Collected per flag: the iterator borrows `flag`, which is local here.
            flag.experiments()
                .map(|e| Experiment {
                    flag: flag.key(),
                    status: status(&flag),
                    results: format!("/v1/experiments/{}/results", flag.key()),
                    rule_index: e.rule_index(),
                    traffic_percent: percent(e.traffic()),
                    layer: e.layer().map(|(name, start, end)| Layer {
                        name,
                        range_percent: [percent(start), percent(end)],
                    }),
                    arms: e
                        .arms()
                        .map(|(variant, width)| Arm {
                            variant,
                            percent: percent(width),
                        })
                        .collect(),
                    metrics: e.metrics().collect(),
                })
                .collect::<Vec<_>>()
        })
        .collect();
    json(&Experiments {
        config_version: published.snapshot.version(),
        experiments,
    })
}

/// A share in buckets (out of 1 000 000) as a percentage.
pub(super) fn percent(buckets: u32) -> f64 {
    f64::from(buckets) * 100.0 / f64::from(BUCKETS)
}

#[derive(Serialize)]
struct Experiments<'a> {
    config_version: ConfigVersion,
    experiments: Vec<Experiment<'a>>,
}

#[derive(Serialize)]
struct Experiment<'a> {
    flag: &'a str,
    status: &'static str,
    results: String,
    rule_index: usize,
    traffic_percent: f64,
    layer: Option<Layer<'a>>,
    arms: Vec<Arm<'a>>,
    metrics: Vec<&'a str>,
}

#[derive(Serialize)]
struct Layer<'a> {
    name: &'a str,
    range_percent: [f64; 2],
}

#[derive(Serialize)]
struct Arm<'a> {
    variant: &'a str,
    percent: f64,
}

/// `running` while the flag serves its rules; `stopped` when killed (by
/// the file or at run time); `overridden` when an override pins one
/// variant for everyone.
fn status(flag: &FlagInfo<'_>) -> &'static str {
    if flag.overridden_to().is_some() {
        "overridden"
    } else if flag.killed_by().is_none() {
        "running"
    } else {
        "stopped"
    }
}

/// Query of the results endpoint.
#[derive(Debug, Deserialize)]
pub struct ResultsQuery {
    /// The analysis phase (`?phase=N`); the current one by default.
    phase: Option<i64>,
}

/// `GET /v1/experiments/{flag}/results[?phase=N]` (admin): the readout of
/// the experiment on `flag`, every metric, from the stored events.
pub async fn results(
    State(state): State<AppState>,
    _: Admin,
    flag: Result<Path<String>, PathRejection>,
    query: Result<Query<ResultsQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Path(flag) = flag.map_err(|e| ApiError::general(e.body_text()))?;
    let Query(query) = query.map_err(|e| ApiError::general(e.body_text()))?;
    let readout = tokio::task::spawn_blocking(move || {
        let store = state
            .events
            .store()
            .map_err(|reason| ApiError::events_unavailable(reason, Role::Admin))?;
        let published = state.live.current.load();
        analysis::read_and_record(store.as_ref(), &published.snapshot, &flag, query.phase)
            .map_err(ApiError::from)
    })
    .await
    .map_err(|_| ApiError::internal("the readout task failed"))??;
    Ok(json(&readout))
}

/// Starts the analysis phases of the served config's experiments, and has
/// those of every config published later started before it is served, so
/// that no exposure to a new assignment is stored before its phase exists
/// (the writer takes jobs in order). Call before the reloader starts.
pub fn follow_phases(live: &LiveConfig, events: &EventLog) {
    let Ok(store) = events.store() else {
        return;
    };
    start_phases(store, &live.current.load());
    let store = store.clone();
    live.before_publish(move |next| start_phases(&store, next));
}

/// Starts the hourly looks, if events are recorded.
pub fn spawn_looks(state: &AppState) {
    if state.events.store().is_err() {
        return;
    }
    let looking = state.clone();
    tokio::spawn(async move {
        let mut hourly = tokio::time::interval(LOOK_INTERVAL);
        hourly.tick().await; // The first tick is immediate; startup is no look.
        loop {
            hourly.tick().await;
            let state = looking.clone();
            let _ = tokio::task::spawn_blocking(move || look_at_every_experiment(&state)).await;
        }
    });
}

/// Hands the phases of `published` to the event writer (without waiting),
/// as of now: a runtime kill republishes a config loaded long ago, and the
/// experiment stops when it is killed, not when the file was read.
fn start_phases(store: &Arc<dyn EventStore>, published: &Published) {
    store.start_phases(PhaseStart::of(&published.snapshot, now_ms()));
}

/// Reads out every experiment's current phase, recording the looks.
fn look_at_every_experiment(state: &AppState) {
    let Ok(store) = state.events.store() else {
        return;
    };
    let published = state.live.current.load();
    for flag in published.snapshot.flags() {
        if flag.experiments().next().is_some()
            && let Err(error) =
                analysis::read_and_record(store.as_ref(), &published.snapshot, flag.key(), None)
        {
            tracing::warn!(flag = flag.key(), "hourly look failed: {error}");
        }
    }
}

#[cfg(test)]
mod tests {
    use flags_core::{Overrides, compile};

    use super::*;
    use crate::live::ReloadAttempt;
    use crate::metrics::{Metrics, ReloadOutcome};
    use crate::store::{Exposure, StoreOptions};

    fn published(split: &str) -> Published {
        let text = format!(
            "version = 1\n[flags.f]\n[[flags.f.rules]]\nsplit = {split}\nexperiment = {{}}\n"
        );
        let snapshot = compile(&text, &Overrides::new()).unwrap();
        Published::new(snapshot, &Metrics::default())
    }

    /// A guarded rollout of `f` (no experiment) with `description`.
    fn guarded(description: &str) -> Published {
        let text = format!(
            "version = 1\n[metrics.errors]\nkind = \"conversion\"\n[flags.f]\n\
             description = \"{description}\"\n[[flags.f.rules]]\nrollout = 50\nserve = \"on\"\n\
             [[flags.f.guardrails]]\nmetric = \"errors\"\n"
        );
        let snapshot = compile(&text, &Overrides::new()).unwrap();
        Published::new(snapshot, &Metrics::default())
    }

    #[tokio::test]
    async fn an_exposure_to_a_new_assignment_lands_in_its_new_phase() {
        assert_eq!(
            exposure_phases(
                published("{ on = 50, off = 50 }"),
                published("{ on = 90, off = 10 }")
            )
            .await,
            [(2, 1)]
        );
    }

    #[tokio::test]
    async fn a_guarded_flag_without_experiment_starts_a_phase_per_version() {
        assert_eq!(
            exposure_phases(guarded("first"), guarded("edited")).await,
            [(2, 1)]
        );
        assert_eq!(
            exposure_phases(guarded("same"), guarded("same")).await,
            [(1, 1)]
        );
    }

    /// Serves `first`, publishes `next`, records one exposure of `f`: the
    /// exposed units per phase.
    async fn exposure_phases(first: Published, next: Published) -> Vec<(i64, i64)> {
        let dir = tempfile::tempdir().unwrap();
        let events = EventLog::open_sqlite(dir.path(), StoreOptions::default()).unwrap();
        let live = LiveConfig::new(
            first,
            ReloadAttempt::new("startup", ReloadOutcome::Applied, Vec::new()),
        );
        follow_phases(&live, &events);
        live.publish(next);
        // Recorded the moment the new split is served, as a request would.
        let store = events.store().unwrap();
        store.record_exposure(Exposure {
            id: None,
            flag: "f".into(),
            variant: "on".into(),
            unit: "u".into(),
            time: now_ms(),
        });
        store.write(Vec::new()).await.unwrap(); // after everything queued before it
        (1..=2)
            .map(|phase| {
                let arms = store.readouts().arm_units("f", phase).unwrap();
                (phase, arms.iter().map(|(_, units)| units).sum())
            })
            .filter(|(_, units)| *units > 0)
            .collect()
    }
}
