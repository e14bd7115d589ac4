//! Experiments: the listing (`GET /v1/experiments`) and the readout
//! (`GET /v1/experiments/{flag}/results`), both admin-only.
//!
//! The readout is computed by `crate::events::analysis` on a read-only
//! connection of its own, on a blocking thread, so it neither waits for nor
//! delays the event writer. Also here, the two background tasks that keep
//! analyses honest: starting a new analysis phase when a reload changes an
//! experiment's assignment, and an hourly look at every experiment so the
//! always-valid p-values are tracked even when nobody asks. Not here:
//! storing events (`events`).

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
use crate::events::analysis;
use crate::events::ingest::now_ms;

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

fn percent(buckets: u32) -> f64 {
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

/// `running` while the flag serves its rules; `stopped` when killed;
/// `overridden` when an override pins one variant for everyone.
fn status(flag: &FlagInfo<'_>) -> &'static str {
    if flag.overridden_to().is_some() {
        "overridden"
    } else if flag.enabled() {
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
        let store = state.events.store().map_err(|reason| {
            ApiError::unavailable(format!("events are not recorded: {reason}"))
        })?;
        let published = state.live.current.load();
        analysis::read_and_record(store, &published.snapshot, &flag, query.phase)
            .map_err(ApiError::from)
    })
    .await
    .map_err(|_| ApiError::internal("the readout task failed"))??;
    Ok(json(&readout))
}

/// Starts the background tasks, if events are recorded: phases for the
/// served config and each one published after it, and the hourly looks.
pub fn spawn_background(state: &AppState) {
    if state.events.store().is_err() {
        return;
    }
    let published = state.live.current.load();
    start_phases(state, &published.snapshot, published.loaded_at);
    let following = state.clone();
    tokio::spawn(async move {
        let mut changes = following.live.events.subscribe();
        while changes.changed().await.is_ok() {
            let published = following.live.current.load_full();
            // The queue is rarely full; when it is, this waits for room
            // rather than lose a phase.
            tokio::task::block_in_place(|| {
                start_phases(&following, &published.snapshot, published.loaded_at);
            });
        }
    });
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

fn start_phases(
    state: &AppState,
    snapshot: &flags_core::Snapshot,
    published: std::time::SystemTime,
) {
    if let Ok(store) = state.events.store() {
        let ms = published
            .duration_since(std::time::UNIX_EPOCH)
            .map_or_else(|_| now_ms(), |d| d.as_millis() as i64);
        store.start_phases(snapshot, ms);
    }
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
                analysis::read_and_record(store, &published.snapshot, flag.key(), None)
        {
            tracing::warn!(flag = flag.key(), "hourly look failed: {error}");
        }
    }
}
