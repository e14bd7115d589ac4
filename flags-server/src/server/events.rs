//! `POST /v1/events`: a batch of exposures and conversions, answered once
//! the valid ones are committed.
//!
//! Checking is `crate::events::ingest`, storing `crate::store`; this
//! handler only joins them to HTTP. A store that is unavailable or cannot
//! write answers 503 with the reason (why it could not be opened, which
//! names server paths, to admins only); flags are unaffected.

use axum::extract::State;
use axum::response::Response;

use super::auth::Caller;
use super::errors::ApiError;
use super::json;
use super::limits::EventsRequest;
use super::state::AppState;
use crate::events::ingest;

/// `POST /v1/events` (any valid token).
pub async fn ingest(
    State(state): State<AppState>,
    Caller(role): Caller,
    request: Result<EventsRequest, ApiError>,
) -> Result<Response, ApiError> {
    // Bound whole: its slot must be held until the commit is answered (a
    // pattern with `..` would drop the slot at the end of this statement).
    let request: EventsRequest = request?;
    let store = state
        .events
        .store()
        .map_err(|reason| ApiError::events_unavailable(reason, role))?;
    let mut batch = {
        let published = state.live.current.load();
        ingest::check(
            &request.body,
            &published.snapshot,
            crate::clock::now_ms(),
            store.retain(),
        )?
    };
    let stored = store
        .write(std::mem::take(&mut batch.events))
        .await
        .map_err(ApiError::from)?;
    let receipt = batch.receipt(&stored);
    state.metrics.record_events(
        receipt.stored,
        receipt.duplicates,
        receipt.conflicts,
        receipt.rejected,
    );
    Ok(json(&receipt))
}
