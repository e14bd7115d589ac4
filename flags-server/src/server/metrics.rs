//! The HTTP side of the metrics: the layer that counts and times every
//! routed request, and `GET /metrics`.
//!
//! The counters themselves and their text format are in `crate::metrics`.
//! Not here: deciding what else to count (handlers and `reload`).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::{Instant, UNIX_EPOCH};

use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use pin_project_lite::pin_project;
use tower::{Layer, Service};

use super::auth::Admin;
use super::state::AppState;
use crate::guardrails::view;
use crate::metrics::{ConfigGauges, GuardrailGauge, Metrics};

/// `GET /metrics` (admin: the series name every flag and variant): the
/// Prometheus text format.
pub async fn export(State(state): State<AppState>, _: Admin) -> Response {
    let published = state.live.current.load();
    let snapshot = &published.snapshot;
    let events = state.events.status();
    let gauges = ConfigGauges {
        version: &published.version,
        loaded_at: published
            .loaded_at
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64()),
        flags: snapshot.len(),
        stale: snapshot.flags().filter(|f| f.stale()).count(),
        events_available: events.available,
        dropped_exposures: events.dropped_exposures,
        killed: snapshot
            .flags()
            .filter_map(|f| Some((f.key(), f.killed_by()?)))
            .collect(),
        webhooks_pending: state.notifier.pending(),
        guardrails: guardrail_gauges(&state, snapshot),
    };
    let content_type = "text/plain; version=0.0.4; charset=utf-8";
    (
        [(header::CONTENT_TYPE, content_type)],
        state.metrics.render(&gauges),
    )
        .into_response()
}

/// The guardrails' gauges, from the states the checks keep.
fn guardrail_gauges(state: &AppState, snapshot: &flags_core::Snapshot) -> Vec<GuardrailGauge> {
    let book = state.guardrails.book();
    let overview = view::overview(snapshot.flags(), &book, 0.0, None);
    view::gauges(&overview.flags)
}

/// Layer: counts every routed request by route and status and times it.
///
/// A hand-written service rather than `axum::middleware::from_fn`, which
/// boxes a future and clones the inner service on every request: with the
/// shedding middleware beside it, about a twentieth of the server's CPU on a
/// single-flag evaluation (perf, 2026-12-07).
#[derive(Clone)]
pub struct TrackLayer(pub Arc<Metrics>);

impl<S> Layer<S> for TrackLayer {
    type Service = Track<S>;

    fn layer(&self, inner: S) -> Track<S> {
        Track {
            inner,
            metrics: self.0.clone(),
        }
    }
}

/// The service [`TrackLayer`] wraps around each route.
#[derive(Clone)]
pub struct Track<S> {
    inner: S,
    metrics: Arc<Metrics>,
}

impl<S> Service<Request> for Track<S>
where
    S: Service<Request, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Tracked<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        // MatchedPath is a shared string: cloning it does not allocate.
        let route = request.extensions().get::<MatchedPath>().cloned();
        Tracked {
            started: Instant::now(),
            inner: self.inner.call(request),
            route,
            metrics: self.metrics.clone(),
        }
    }
}

pin_project! {
    /// A request being answered; recorded when the answer is ready.
    pub struct Tracked<F> {
        #[pin]
        inner: F,
        route: Option<MatchedPath>,
        started: Instant,
        metrics: Arc<Metrics>,
    }
}

impl<F, E> Future for Tracked<F>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let answer = ready!(this.inner.poll(cx));
        if let Ok(response) = &answer {
            let route = this.route.as_ref().map_or("unmatched", MatchedPath::as_str);
            this.metrics
                .record_request(route, response.status().as_u16(), *this.started);
        }
        Poll::Ready(answer)
    }
}
