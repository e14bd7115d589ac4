//! `GET /v1/guardrails` (admin): every guarded flag's guardrails, their
//! limits, and each compared arm's figures, p-value or windowed rate,
//! decision and its time, as the last check left them; and the trip log.
//!
//! The states come from memory (`crate::guardrails`); the trip log from the
//! event store, read on a blocking thread. Not here: the checks, or the
//! shapes (`crate::guardrails::view`).

use axum::extract::State;
use axum::response::Response;

use super::auth::Admin;
use super::json;
use super::state::AppState;
use crate::guardrails::view;

/// `GET /v1/guardrails` (admin).
pub async fn list(State(state): State<AppState>, _: Admin) -> Response {
    let (trips, trips_error) = match trip_log(&state).await {
        Ok(trips) => (trips, None),
        Err(error) => (Vec::new(), Some(error)),
    };
    let published = state.live.current.load();
    let guardrails = &state.guardrails;
    let store_error = guardrails.store_error();
    let book = guardrails.book();
    json(&view::WithTrips {
        overview: view::overview(
            published.snapshot.flags(),
            &book,
            guardrails.interval().as_secs_f64(),
            store_error,
        ),
        trips,
        trips_error,
    })
}

/// The store's trip log, newest first, or why it cannot be read.
async fn trip_log(state: &AppState) -> Result<Vec<view::TripView>, String> {
    let store = state.events.store().map_err(str::to_string)?.clone();
    tokio::task::spawn_blocking(move || store.readouts().guardrail_trips())
        .await
        .map_err(|_| "the trip log's read failed".to_string())?
        .map(|trips| trips.into_iter().map(view::TripView::of).collect())
        .map_err(|error| format!("cannot read the trip log: {error}"))
}
