//! The endpoint table: every path, its handler, and the layers around them;
//! plus the two probes, which are too small for a module of their own.
//! The console's static files (`console`) are routes like the others, with
//! no layer of their own, so they cost evaluations nothing.
//!
//! Metrics wrap every route; CORS, when configured, answers preflights
//! before anything else. Load shedding is not a layer: evaluation handlers
//! take their slot with their body (`limits::EvaluationRequest`), so probes,
//! metrics and streams answer when evaluations are saturated.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::CorsLayer;

use super::errors::ApiError;
use super::state::AppState;
use super::stream::STREAM_PATH;
use super::{console, events, experiments, guardrails, kills, metrics, native, ofrep, stream};

/// The whole HTTP API.
pub fn router(state: AppState, cors: Option<CorsLayer>) -> Router {
    let router = Router::new()
        .route("/ofrep/v1/evaluate/flags/{key}", post(ofrep::evaluate_flag))
        .route("/ofrep/v1/evaluate/flags", post(ofrep::evaluate_all))
        .route("/v1/evaluate/{key}", post(native::evaluate_flag))
        .route("/v1/evaluate", post(native::evaluate_all))
        .route("/v1/flags", get(native::list_flags))
        .route("/v1/status", get(native::status))
        .route("/v1/experiments", get(experiments::list))
        .route("/v1/experiments/{flag}/results", get(experiments::results))
        .route("/v1/guardrails", get(guardrails::list))
        .route("/v1/events", post(events::ingest))
        .route("/v1/admin/reload", post(native::reload))
        .route("/v1/admin/flags/{key}/kill", post(kills::kill))
        .route("/v1/admin/flags/{key}/revive", post(kills::revive))
        .route(STREAM_PATH, get(stream::stream))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics::export))
        .route("/", get(console::root))
        .route("/ui", get(console::root))
        .route(console::CONSOLE_PATH, get(console::index))
        .route("/ui/{file}", get(console::file))
        .fallback(|| async { ApiError::no_route() })
        .method_not_allowed_fallback(|| async { ApiError::wrong_method() })
        .layer(metrics::TrackLayer(state.metrics.clone()))
        .layer(CatchPanicLayer::custom(|_| {
            ApiError::internal("the server hit a bug answering this request").into_response()
        }));
    let router = match cors {
        Some(cors) => router.layer(cors),
        None => router,
    };
    router.with_state(state)
}

/// `GET /healthz`: the process is up.
async fn healthz() -> &'static str {
    "ok"
}

/// `GET /readyz`: a config is loaded (always, once listening) and the
/// server is not draining.
async fn readyz(State(state): State<AppState>) -> Response {
    if *state.shutdown.borrow() {
        (StatusCode::SERVICE_UNAVAILABLE, "draining").into_response()
    } else {
        "ready".into_response()
    }
}
