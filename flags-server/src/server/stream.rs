//! `GET /v1/stream`: server-sent events announcing each new config version,
//! so frontends re-fetch at once instead of polling.
//!
//! The events follow OFREP's event-stream extension: `data` is
//! `{"type":"refetchEvaluation","etag":VERSION,"lastModified":UNIX_SECONDS}`
//! and the event `id` is the served version (the config version, with a
//! digest of the runtime kills appended while any are in force). Events are notifications, not
//! payloads, so missed ones coalesce: a client reconnecting with a
//! `Last-Event-ID` other than the current version gets one `refetchEvaluation`
//! at once (this also holds across server restarts); a client without one
//! gets a `connected` event carrying the current version as its id. Not here:
//! deciding when a version is new (`reload`) or what an announcement holds
//! (`crate::live::ConfigEvent`).
//!
//! The stream needs no token: browsers' `EventSource` cannot send headers,
//! and an event says only that an opaque version changed. Open streams are
//! capped (429 beyond) and end when the server drains.

use std::convert::Infallible;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::{StreamExt, stream};
use serde_json::json;

use super::errors::ApiError;
use super::state::AppState;
use crate::live::ConfigEvent;

/// Where the stream is served (advertised in OFREP bulk answers).
pub const STREAM_PATH: &str = "/v1/stream";

impl ConfigEvent {
    fn to_event(&self, kind: &str) -> Event {
        let data = json!({
            "type": kind,
            "etag": &*self.version,
            "lastModified": self.published_unix,
        });
        Event::default().id(&*self.version).data(data.to_string())
    }
}

/// `GET /v1/stream`.
pub async fn stream(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let permit = state
        .streams
        .clone()
        .try_acquire_owned()
        .map_err(|_| ApiError::overloaded())?;
    let mut changes = state.live.events.subscribe();
    let current = changes.borrow_and_update().clone();
    let last_seen = headers.get("last-event-id").and_then(|v| v.to_str().ok());
    let first = match last_seen {
        Some(id) if id == &*current.version => None,
        Some(_) => Some(current.to_event("refetchEvaluation")),
        None => Some(current.to_event("connected")),
    };
    let later = stream::unfold(changes, |mut changes| async move {
        changes.changed().await.ok()?;
        let event = changes.borrow_and_update().clone();
        Some((event.to_event("refetchEvaluation"), changes))
    });
    let mut shutdown = state.shutdown.clone();
    let drained = async move {
        let _ = shutdown.wait_for(|draining| *draining).await;
    };
    let events = stream::iter(first)
        .chain(later)
        .map(move |event| {
            // The permit lives as long as the stream: dropping the connection frees it.
            let _ = &permit;
            Ok::<_, Infallible>(event)
        })
        .take_until(drained);
    let mut response = Sse::new(events)
        .keep_alive(KeepAlive::new().interval(state.sse_keepalive))
        .into_response();
    // Reverse proxies that buffer would hold events back.
    response
        .headers_mut()
        .insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(response)
}
