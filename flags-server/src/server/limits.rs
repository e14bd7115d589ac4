//! Defences against bad and heavy input: body size, content type, slow
//! bodies, context size, and load shedding.
//!
//! Evaluation bodies are read here, within `--max-body` bytes and
//! `--client-timeout`, and parsed once into JSON that the evaluation context
//! then borrows from. Evaluation requests beyond `--max-in-flight` are shed
//! with 429 and `Retry-After` rather than queued, so latency stays bounded
//! under overload; the slot is taken here, before the body is read, and held
//! until the handler returns.
//! Slow request headers are cut by the HTTP layer (`server::serve`). Not here:
//! tokens (`auth`) or what a context means (`crate::context`).

use std::pin::pin;
use std::time::Duration;

use axum::body::{Body, Bytes, HttpBody as _};
use axum::extract::{FromRequest, Request};
use axum::http::header;
use futures_util::FutureExt as _;
use http_body_util::BodyExt as _;
use tokio::sync::OwnedSemaphorePermit;

use super::errors::ApiError;
use super::state::AppState;
use crate::context::{ContextLimits, RequestBody, parse_body};

/// Request limits.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Largest evaluation body, in bytes.
    pub max_body: usize,
    /// Largest `POST /v1/events` body, in bytes.
    pub max_events_body: usize,
    /// Bounds on the evaluation context.
    pub context: ContextLimits,
    /// Time to send headers, and separately the body.
    pub client_timeout: Duration,
}

/// The bytes of an evaluation request body, `{"context": {...}}`, within
/// the size and time limits and of a JSON content type; an empty body is
/// an empty context (OFREP makes the body optional). Holds one of the
/// `--max-in-flight` evaluation slots while it lives.
#[derive(Debug)]
pub struct EvaluationRequest {
    body: Bytes,
    _slot: OwnedSemaphorePermit,
}

impl EvaluationRequest {
    /// The parsed body, borrowing from the bytes (see `crate::context`).
    pub fn parse(&self) -> Result<RequestBody<'_>, ApiError> {
        Ok(parse_body(&self.body)?)
    }
}

impl FromRequest<AppState> for EvaluationRequest {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, ApiError> {
        let limits = state.limits;
        let Ok(slot) = state.in_flight.clone().try_acquire_owned() else {
            state.metrics.record_shed();
            // Read the (bounded) body first: answering over an unread body
            // makes the server close the connection, which can reset it
            // before the client has read the 429.
            let body = read_body(request.into_body(), limits.max_body);
            let _ = tokio::time::timeout(limits.client_timeout, body).await;
            return Err(ApiError::overloaded());
        };
        let body = read_json(request, limits.max_body, limits.client_timeout).await?;
        Ok(Self { body, _slot: slot })
    }
}

/// The bytes of a `POST /v1/events` body: like [`EvaluationRequest`] but
/// within `--max-events-body`, since a batch is far larger than a context.
#[derive(Debug)]
pub struct EventsRequest(pub Bytes);

impl FromRequest<AppState> for EventsRequest {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, ApiError> {
        let limits = state.limits;
        read_json(request, limits.max_events_body, limits.client_timeout)
            .await
            .map(Self)
    }
}

/// The bytes of an admin request's optional JSON body, within `--max-body`.
#[derive(Debug)]
pub struct AdminRequest(pub Bytes);

impl FromRequest<AppState> for AdminRequest {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, ApiError> {
        let limits = state.limits;
        read_json(request, limits.max_body, limits.client_timeout)
            .await
            .map(Self)
    }
}

/// Reads a body of at most `max_body` bytes within `timeout`, sent as JSON
/// (or empty).
async fn read_json(
    request: Request,
    max_body: usize,
    timeout: Duration,
) -> Result<Bytes, ApiError> {
    let headers = request.headers();
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > max_body as u64) {
        return Err(ApiError::too_large(max_body));
    }
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(is_json_media_type);
    let mut body = pin!(read_body(request.into_body(), max_body));
    // Nearly every body arrives with its headers: take it without arming a
    // timer, which is a measurable share of a small evaluation's cost.
    let read = match body.as_mut().now_or_never() {
        Some(read) => read,
        None => tokio::time::timeout(timeout, body)
            .await
            .map_err(|_| ApiError::timeout())?,
    };
    let bytes = read.map_err(|_| {
        ApiError::general(format!(
            "the request body is larger than {max_body} bytes or was cut short"
        ))
    })?;
    if !is_json && !bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::general(
            "the request body must be sent as Content-Type: application/json",
        ));
    }
    Ok(bytes)
}

/// The whole body, or `Err` beyond `max` bytes or if the client broke off.
///
/// Not `axum::body::to_bytes`, which buffers every body through a list: a
/// body that arrived in one piece (nearly all evaluation bodies) is returned
/// as that piece, and the end is taken from the declared length without
/// waiting for the stream to say so.
async fn read_body(mut body: Body, max: usize) -> Result<Bytes, ()> {
    let mut first = Bytes::new();
    let mut joined = Vec::new();
    while !body.is_end_stream() {
        let Some(frame) = body.frame().await else {
            break;
        };
        // Trailers carry nothing an evaluation reads.
        let Ok(data) = frame.map_err(drop)?.into_data() else {
            continue;
        };
        if first.len() + joined.len() + data.len() > max {
            return Err(());
        }
        if first.is_empty() && joined.is_empty() {
            first = data;
        } else {
            if joined.is_empty() {
                joined.extend_from_slice(&std::mem::take(&mut first));
            }
            joined.extend_from_slice(&data);
        }
    }
    Ok(if joined.is_empty() {
        first
    } else {
        joined.into()
    })
}

/// `application/json`, `application/*+json`, with or without parameters.
fn is_json_media_type(value: &str) -> bool {
    // What nearly every client sends, checked before taking the value apart.
    if value.eq_ignore_ascii_case("application/json") {
        return true;
    }
    let essence = value.split(';').next().unwrap_or("").trim();
    let Some((kind, subtype)) = essence.split_once('/') else {
        return false;
    };
    kind.eq_ignore_ascii_case("application")
        && (subtype.eq_ignore_ascii_case("json")
            || subtype.len() > 5 && subtype[subtype.len() - 5..].eq_ignore_ascii_case("+json"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunked(parts: &[&'static str]) -> Body {
        let parts: Vec<_> = parts
            .iter()
            .map(|part| Ok::<_, std::io::Error>(Bytes::from_static(part.as_bytes())))
            .collect();
        Body::from_stream(futures_util::stream::iter(parts))
    }

    #[tokio::test]
    async fn bodies_are_read_whole_from_one_piece_or_many_within_the_limit() {
        assert_eq!(read_body(Body::from("{}"), 10).await.unwrap(), "{}");
        assert_eq!(read_body(Body::empty(), 10).await.unwrap(), "");
        let joined = read_body(chunked(&["{\"a\"", "", ":1}"]), 10).await;
        assert_eq!(joined.unwrap(), "{\"a\":1}");
        assert_eq!(read_body(chunked(&["", "x", "y"]), 10).await.unwrap(), "xy");
        assert_eq!(
            read_body(chunked(&["12345", "67890"]), 10).await.unwrap(),
            "1234567890"
        );
    }

    #[tokio::test]
    async fn bodies_beyond_the_limit_or_broken_off_are_refused() {
        assert!(read_body(Body::from("12345678901"), 10).await.is_err());
        assert!(read_body(chunked(&["12345", "678901"]), 10).await.is_err());
        let broken = Body::from_stream(futures_util::stream::iter([
            Ok(Bytes::from_static(b"{")),
            Err(std::io::Error::other("connection reset")),
        ]));
        assert!(read_body(broken, 10).await.is_err());
    }

    #[test]
    fn json_media_types_are_recognised_with_parameters() {
        for good in [
            "application/json",
            "Application/JSON; charset=utf-8",
            "application/merge-patch+json",
        ] {
            assert!(is_json_media_type(good), "{good}");
        }
        for bad in [
            "text/plain",
            "application/x-www-form-urlencoded",
            "json",
            "application/+json",
        ] {
            assert!(!is_json_media_type(bad), "{bad}");
        }
    }
}
