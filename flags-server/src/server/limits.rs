//! Defences against bad and heavy input: body size, content type, slow
//! bodies, JSON nesting depth, context size, and load shedding.
//!
//! Every JSON body is read here, within `--max-body` bytes (events:
//! `--max-events-body`) and `--client-timeout`, and its nesting checked
//! against [`MAX_JSON_DEPTH`] before any parser sees it; evaluation bodies
//! are then parsed once into JSON that the evaluation context borrows from.
//! Evaluation requests beyond `--max-in-flight`, and event requests beyond
//! `--max-events-in-flight` (a pool of their own), are shed with 429 and
//! `Retry-After` rather than queued, so latency and the memory held in
//! bodies stay bounded under overload; the slot is taken here, before the
//! body is read, and held until the handler returns.
//! Slow request headers are cut by the HTTP layer (`server::serve`). Not here:
//! tokens (`auth`) or what a context means (`crate::context`).

use std::pin::pin;
use std::time::Duration;

use axum::body::{Body, Bytes, HttpBody as _};
use axum::extract::{FromRequest, Request};
use axum::http::header;
use futures_util::FutureExt as _;
use http_body_util::BodyExt as _;
use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::errors::ApiError;
use super::state::AppState;
use crate::context::{RequestBody, parse_body};

/// Deepest nesting of arrays and objects accepted in a JSON body, the
/// body's own object counted as level 1.
///
/// Checked once for every body, ahead of both the flat-context scanner and
/// serde_json. serde_json refuses 128 levels itself, but only where it
/// recurses (its skipping of ignored values does not, so unread members
/// could nest without bound); a limit well under its own keeps that guard a
/// backstop that no body reaches, and the answer the same for every body.
pub const MAX_JSON_DEPTH: usize = 64;

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
        let (body, slot) =
            read_in_slot(request, state, &state.in_flight, state.limits.max_body).await?;
        Ok(Self { body, _slot: slot })
    }
}

/// The bytes of a `POST /v1/events` body: like [`EvaluationRequest`] but
/// within `--max-events-body`, since a batch is far larger than a context,
/// and holding one of the `--max-events-in-flight` slots until the handler
/// returns (after the commit), so the bodies held at once are bounded.
#[derive(Debug)]
pub struct EventsRequest {
    /// The body.
    pub body: Bytes,
    _slot: OwnedSemaphorePermit,
}

impl FromRequest<AppState> for EventsRequest {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, ApiError> {
        let max_body = state.limits.max_events_body;
        let (body, slot) = read_in_slot(request, state, &state.events_in_flight, max_body).await?;
        Ok(Self { body, _slot: slot })
    }
}

/// Takes a slot of `slots` and reads the JSON body within `max_body`; with
/// no slot free, sheds the request with 429.
async fn read_in_slot(
    request: Request,
    state: &AppState,
    slots: &Arc<Semaphore>,
    max_body: usize,
) -> Result<(Bytes, OwnedSemaphorePermit), ApiError> {
    let timeout = state.limits.client_timeout;
    let Ok(slot) = slots.clone().try_acquire_owned() else {
        state.metrics.record_shed();
        // Read the (bounded) body first: answering over an unread body
        // makes the server close the connection, which can reset it
        // before the client has read the 429.
        let body = read_body(request.into_body(), max_body);
        let _ = tokio::time::timeout(timeout, body).await;
        return Err(ApiError::overloaded());
    };
    let body = read_json(request, max_body, timeout).await?;
    Ok((body, slot))
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
/// (or empty) and nested at most [`MAX_JSON_DEPTH`] levels.
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
    if !nesting_within(&bytes, MAX_JSON_DEPTH) {
        return Err(ApiError::parse(format!(
            "the request body nests JSON arrays and objects more than {MAX_JSON_DEPTH} levels deep"
        )));
    }
    Ok(bytes)
}

/// Whether the arrays and objects of `json` nest at most `max` levels deep.
///
/// A loop over the bytes, so no depth can exhaust the stack. Brackets inside
/// strings do not count; malformed JSON is not this check's business (the
/// parsers report it), and up to where a parser would stop, this counts the
/// same levels it would enter.
fn nesting_within(json: &[u8], max: usize) -> bool {
    // Nesting never exceeds the number of opening brackets, so counting them
    // (a loop the compiler vectorises) settles nearly every body.
    if json.iter().filter(|&&b| b == b'{' || b == b'[').count() <= max {
        return true;
    }
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for &byte in json {
        if in_string {
            match byte {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'{' | b'[' if depth == max => return false,
            b'{' | b'[' => depth += 1,
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    true
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

    /// `levels` nested `open`/`close` pairs around `inner`.
    fn nested(open: &str, inner: &str, close: &str, levels: usize) -> String {
        format!("{}{inner}{}", open.repeat(levels), close.repeat(levels))
    }

    #[test]
    fn nesting_is_counted_through_objects_and_arrays_alike() {
        for (open, inner, close) in [("{\"a\":", "1", "}"), ("[", "1", "]")] {
            let at_limit = nested(open, inner, close, 5);
            assert!(nesting_within(at_limit.as_bytes(), 5), "{at_limit}");
            let deeper = nested(open, inner, close, 6);
            assert!(!nesting_within(deeper.as_bytes(), 5), "{deeper}");
        }
        let mixed = r#"{"a":[{"b":[1]}],"c":{"d":[[2]]}}"#;
        assert!(nesting_within(mixed.as_bytes(), 4));
        assert!(!nesting_within(mixed.as_bytes(), 3));
        // Siblings do not add up: six brackets, two levels.
        assert!(nesting_within(b"[[1],[2],[3]]", 2));
        assert!(!nesting_within(b"[[1],[2],[3]]", 1));
    }

    #[test]
    fn brackets_inside_strings_are_not_nesting() {
        let in_string = r#"{"a":"[[[[{{{{","b":"\\\"[[[[[[","c":"\\"}"#;
        assert!(nesting_within(in_string.as_bytes(), 1), "{in_string}");
        // After an escaped backslash the string ends, and brackets count again.
        let after = r#"["\\",[[[1]]]]"#;
        assert!(!nesting_within(after.as_bytes(), 3), "{after}");
        assert!(nesting_within(after.as_bytes(), 4), "{after}");
    }

    #[test]
    fn deep_or_malformed_input_is_answered_without_recursion() {
        let deep = nested("[", "", "]", 100_000);
        assert!(!nesting_within(deep.as_bytes(), MAX_JSON_DEPTH));
        assert!(!nesting_within(&b"{".repeat(100_000), MAX_JSON_DEPTH));
        assert!(nesting_within(&b"}]".repeat(100_000), MAX_JSON_DEPTH));
        assert!(nesting_within(b"", MAX_JSON_DEPTH));
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
