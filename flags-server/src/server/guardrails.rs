//! `GET /v1/guardrails` (admin): every guarded flag's guardrails, their
//! limits, and each compared arm's figures, p-value or windowed rate,
//! decision and its time, as the last check left them.
//!
//! Reads the states in memory (`crate::guardrails`), never the disk. Not
//! here: the checks, or the shapes (`crate::guardrails::view`).

use axum::extract::State;
use axum::response::Response;

use super::auth::Admin;
use super::json;
use super::state::AppState;
use crate::guardrails::view;

/// `GET /v1/guardrails` (admin).
pub async fn list(State(state): State<AppState>, _: Admin) -> Response {
    let published = state.live.current.load();
    let guardrails = &state.guardrails;
    let store_error = guardrails.store_error();
    let book = guardrails.book();
    json(&view::overview(
        published.snapshot.flags(),
        &book,
        guardrails.interval().as_secs_f64(),
        store_error,
    ))
}
