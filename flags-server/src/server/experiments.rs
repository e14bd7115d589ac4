//! Experiments: the listing (`GET /v1/experiments`) and the readout
//! (`GET /v1/experiments/{flag}/results`), both admin-only.
//!
//! The readout is computed by `crate::events::analysis` on a read-only
//! connection of its own, on a blocking thread, so it neither waits for nor
//! delays the event writer. Not here: storing events (`events`).

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::response::Response;
use flags_core::{ConfigVersion, FlagInfo, bucket::BUCKETS};
use serde::Serialize;

use super::auth::Admin;
use super::errors::ApiError;
use super::json;
use super::state::AppState;
use crate::events::analysis;
use crate::events::schema;

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

/// `GET /v1/experiments/{flag}/results` (admin): the readout of the
/// experiment on `flag`, every metric, from the stored events.
pub async fn results(
    State(state): State<AppState>,
    _: Admin,
    flag: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let Path(flag) = flag.map_err(|e| ApiError::general(e.body_text()))?;
    let store = state
        .events
        .store()
        .map_err(|reason| ApiError::unavailable(format!("events are not recorded: {reason}")))?;
    let dir = store.dir().to_path_buf();
    let published = state.live.current.load_full();
    let readout = tokio::task::spawn_blocking(move || {
        let connection =
            schema::open_for_reading(&dir).map_err(|e| ApiError::unavailable(e.to_string()))?;
        analysis::results(&connection, &published.snapshot, &flag).map_err(ApiError::from)
    })
    .await
    .map_err(|_| ApiError::internal("the readout task failed"))??;
    Ok(json(&readout))
}
