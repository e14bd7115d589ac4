//! `flags serve`: start-up checks, the HTTP/1.1 accept loop, signals and
//! graceful shutdown.
//!
//! The accept loop is hyper's own rather than `axum::serve` because the
//! server must cut clients that are slow to send their headers
//! (`--client-timeout`) and drain in-flight requests on SIGTERM within
//! `--drain-timeout`. Endpoints are in `routes`; the config lifecycle is in
//! `crate::live` and `crate::reload`.

pub mod auth;
pub mod console;
pub mod errors;
pub mod events;
pub mod experiments;
pub mod guardrails;
pub mod kills;
pub mod limits;
pub mod metrics;
pub mod native;
pub mod ofrep;
pub mod routes;
pub mod state;
pub mod stream;

use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderValue, Method, header};
use axum::response::{IntoResponse, Response};
use flags_core::Overrides;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use serde::Serialize;
use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{Semaphore, watch};
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::cli::ServeArgs;
use crate::context::ContextLimits;
use crate::error::Error;
use crate::events::EventLog;
use crate::guardrails::Guardrails;
use crate::kills::Kills;
use crate::live::LiveConfig;
use crate::metrics::Metrics;
use crate::reload::{Loader, Reloader};
use crate::store::StoreOptions;
use crate::tokens::Tokens;
use crate::webhooks::{self, Delivery, Notifier};
use errors::ApiError;

use state::{AppState, Clock, Limits, ServerState};

/// Runs the server until SIGTERM or SIGINT, then drains.
pub async fn serve(args: ServeArgs) -> Result<(), Error> {
    let announce = |bound| {
        // Tests and scripts read the bound address (port 0 picks one) from stdout.
        println!("listening on http://{bound}");
        let _ = std::io::stdout().flush();
    };
    serve_until(args, announce, terminated()).await
}

/// Runs the server until `stop` completes (or fails), then drains;
/// `listening` is told the bound address once requests are accepted.
pub async fn serve_until(
    args: ServeArgs,
    listening: impl FnOnce(SocketAddr),
    stop: impl Future<Output = Result<(), Error>>,
) -> Result<(), Error> {
    let tokens = Tokens::load(args.tokens.as_deref())?;
    let addresses = resolve(&args.addr).await?;
    if tokens.is_empty() && !all_loopback(&addresses) && !args.insecure {
        return Err(Error::Usage(format!(
            "refusing to listen on {} with no token configured: set FLAGS_CLIENT_TOKENS / \
             FLAGS_ADMIN_TOKENS or --tokens FILE, or pass --insecure to serve anyone who can connect",
            args.addr
        )));
    }
    let webhooks = webhooks::config::load(args.webhooks.as_deref())?;
    let cors = cors_layer(&args.cors_origins)?;
    let metrics = Arc::new(Metrics::default());
    let store_options = StoreOptions {
        max_queued_events: args.max_queued_events,
        retain: args.retain,
    };
    let events = match &args.database_url {
        Some(url) => EventLog::open_postgres(url, store_options)
            .map_err(|e| Error::Usage(format!("--database-url: {e}")))?,
        None => EventLog::open_sqlite(&args.data, store_options)
            .map_err(|e| Error::Serve(e.to_string()))?,
    };
    let delivery = Delivery {
        backoff: args.webhook_backoff,
        ..Delivery::default()
    };
    let notifier = Notifier::start(webhooks, &events, metrics.clone(), delivery)?;
    let mut loader = Loader::new(
        args.config.clone(),
        Overrides::from_env(),
        metrics.clone(),
        notifier.clone(),
    );
    let (published, attempt) = loader.initial()?;
    let live = Arc::new(LiveConfig::new(published, attempt));
    let (kills, guardrails) = restore(&events, &live, args.guardrail_interval).await?;
    experiments::follow_phases(&live, &events);
    let reloader = Reloader::start(loader, live.clone(), args.debounce)?;
    let listener = TcpListener::bind(&addresses[..])
        .await
        .map_err(|e| Error::Serve(format!("cannot listen on {}: {e}", args.addr)))?;
    let bound = listener
        .local_addr()
        .map_err(|e| Error::Serve(format!("cannot read the bound address: {e}")))?;
    let (drain, draining) = watch::channel(false);
    let state: AppState = Arc::new(ServerState {
        live,
        metrics,
        tokens,
        limits: Limits {
            max_body: args.max_body,
            max_events_body: args.max_events_body,
            context: ContextLimits::new(args.max_attributes),
            client_timeout: args.client_timeout,
        },
        reloader,
        events,
        bulk_exposures: args.bulk_exposures,
        kills,
        in_flight: Arc::new(Semaphore::new(args.max_in_flight)),
        events_in_flight: Arc::new(Semaphore::new(args.max_events_in_flight)),
        streams: Arc::new(Semaphore::new(args.max_in_flight)),
        public_url: args.public_url,
        sse_keepalive: args.sse_keepalive,
        shutdown: draining,
        clock: args.at.map_or(Clock::System, Clock::Fixed),
        notifier,
        guardrails,
    });
    experiments::spawn_looks(&state);
    kills::follow(&state);
    crate::guardrails::spawn(&state);
    let hangups = forward_hangups(state.clone())?;
    let app = routes::router(state.clone(), cors);
    listening(bound);
    tracing::info!(%bound, config = %args.config.display(), "serving");

    let connections = accept_until_stopped(listener, app, args.client_timeout, stop).await?;
    tracing::info!("draining in-flight requests");
    let _ = drain.send(true);
    hangups.abort();
    if tokio::time::timeout(args.drain_timeout, connections.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            "drain timed out after {:?}; closing the remaining connections",
            args.drain_timeout
        );
    }
    tracing::info!("stopped");
    Ok(())
}

/// The runtime kills and guardrail states stored by earlier runs (or by
/// other replicas), read on a blocking thread: the store blocks.
async fn restore(
    events: &EventLog,
    live: &Arc<LiveConfig>,
    guardrail_interval: Duration,
) -> Result<(Kills, Guardrails), Error> {
    let (events, live) = (events.clone(), live.clone());
    tokio::task::spawn_blocking(move || {
        let kills = Kills::open(&events);
        let restored = kills.restore(&live);
        if let (true, Ok(store)) = (restored > 0, events.store()) {
            tracing::warn!(restored, "runtime kills restored from {}", store.location());
        }
        (kills, Guardrails::open(&events, guardrail_interval))
    })
    .await
    .map_err(|_| Error::Serve("restoring the stored kills and guardrails failed".into()))
}

/// The addresses `--addr` names: `IP:PORT` as is, `HOST:PORT` resolved.
async fn resolve(addr: &str) -> Result<Vec<SocketAddr>, Error> {
    let addresses: Vec<SocketAddr> = tokio::net::lookup_host(addr)
        .await
        .map_err(|e| {
            Error::Usage(format!(
                "--addr `{addr}`: {e} (expected IP:PORT or HOST:PORT, such as localhost:8080)"
            ))
        })?
        .collect();
    if addresses.is_empty() {
        return Err(Error::Usage(format!(
            "--addr `{addr}` resolves to no address"
        )));
    }
    Ok(addresses)
}

/// Whether listening on `addresses` stays on this machine: a name counts as
/// loopback only if everything it resolves to is (binding takes the first
/// that works, so any one of them may be the one bound).
fn all_loopback(addresses: &[SocketAddr]) -> bool {
    addresses
        .iter()
        .all(|address| address.ip().to_canonical().is_loopback())
}

/// Completes on SIGTERM or SIGINT. The handlers are installed when it is
/// first polled, as the accept loop starts: until then the signals keep
/// their default action.
async fn terminated() -> Result<(), Error> {
    let signal_error = |e| Error::Serve(format!("cannot handle signals: {e}"));
    let mut terminate = signal(SignalKind::terminate()).map_err(signal_error)?;
    let mut interrupt = signal(SignalKind::interrupt()).map_err(signal_error)?;
    tokio::select! {
        _ = terminate.recv() => {},
        _ = interrupt.recv() => {},
    }
    Ok(())
}

/// Accepts connections until `stop` completes; returns the live ones for draining.
async fn accept_until_stopped(
    listener: TcpListener,
    app: Router,
    client_timeout: Duration,
    stop: impl Future<Output = Result<(), Error>>,
) -> Result<GracefulShutdown, Error> {
    tokio::pin!(stop);
    let connections = GracefulShutdown::new();
    loop {
        let (stream, _) = tokio::select! {
            // Stop first: the signal handlers are installed before the
            // first connection is accepted, and a stop is never starved.
            biased;
            stopped = &mut stop => {
                stopped?;
                break;
            }
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: back off, keep serving.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let connection = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(client_timeout)
            .serve_connection(TokioIo::new(stream), TowerToHyperService::new(app.clone()));
        let connection = connections.watch(connection);
        tokio::spawn(async move {
            // A client that goes away mid-request is its own business.
            let _ = connection.await;
        });
    }
    Ok(connections)
}

/// Forwards SIGHUP to the reloader.
fn forward_hangups(state: AppState) -> Result<tokio::task::JoinHandle<()>, Error> {
    let mut hangups = signal(SignalKind::hangup())
        .map_err(|e| Error::Serve(format!("cannot handle SIGHUP: {e}")))?;
    Ok(tokio::spawn(async move {
        while hangups.recv().await.is_some() {
            tracing::info!("SIGHUP: reloading");
            state.reloader.signal();
        }
    }))
}

/// The CORS layer for `--cors-origin` values, if any.
fn cors_layer(origins: &[String]) -> Result<Option<CorsLayer>, Error> {
    if origins.is_empty() {
        return Ok(None);
    }
    let allow_origin = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        let values = origins
            .iter()
            .map(|o| {
                HeaderValue::from_str(o)
                    .map_err(|_| Error::Usage(format!("`{o}` is not a valid CORS origin")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        AllowOrigin::list(values)
    };
    Ok(Some(
        CorsLayer::new()
            .allow_origin(allow_origin)
            .allow_methods([Method::GET, Method::POST])
            .allow_headers([
                header::CONTENT_TYPE,
                header::AUTHORIZATION,
                header::IF_NONE_MATCH,
                header::HeaderName::from_static("x-api-key"),
                header::HeaderName::from_static("last-event-id"),
            ])
            .expose_headers([header::ETAG, header::RETRY_AFTER])
            .max_age(Duration::from_secs(600)),
    ))
}

/// A JSON response.
pub(crate) fn json<T: Serialize>(value: &T) -> Response {
    // Room for a single evaluation's answer, so it is written without regrowing.
    let mut bytes = Vec::with_capacity(512);
    match serde_json::to_writer(&mut bytes, value) {
        Ok(()) => (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            bytes,
        )
            .into_response(),
        Err(e) => ApiError::internal(format!("cannot serialise the answer: {e}")).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addresses(texts: &[&str]) -> Vec<SocketAddr> {
        texts.iter().map(|text| text.parse().unwrap()).collect()
    }

    #[test]
    fn a_name_is_loopback_only_if_everything_it_resolves_to_is() {
        assert!(all_loopback(&addresses(&[
            "127.0.0.1:8080",
            "[::1]:8080",
            "[::ffff:127.0.0.1]:8080"
        ])));
        assert!(!all_loopback(&addresses(&[
            "127.0.0.1:8080",
            "10.0.0.7:8080"
        ])));
        assert!(!all_loopback(&addresses(&["[::]:8080"])));
        assert!(!all_loopback(&addresses(&["0.0.0.0:8080"])));
    }
}
