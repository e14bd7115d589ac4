//! Every HTTP failure and the one place it becomes a response.
//!
//! Bodies follow OFREP's error shapes everywhere, so clients need one parser:
//! `{"errorCode": ..., "errorDetails": ...}` for evaluation failures (with
//! `key` when one flag was asked for), and `{"errorDetails": ...}` for the
//! rest. Bad input of any kind (malformed JSON, wrong content type, oversized
//! or slow bodies, bad contexts) is a 4xx with `errorDetails`; nothing a
//! client sends yields a 500.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::context::BodyError;
use crate::events::analysis::ResultsError;
use crate::events::ingest::BatchError;
use crate::store::WriteError;
use crate::tokens::Role;

/// OFREP error codes this server sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ErrorCode {
    /// The body is not valid JSON (or not a JSON object).
    ParseError,
    /// The context is unusable (wrong shape, too large).
    InvalidContext,
    /// Anything else about the request (content type, size, timeout).
    General,
    /// No flag with that key.
    FlagNotFound,
}

/// A request that cannot be answered with a result.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: Option<ErrorCode>,
    details: String,
    key: Option<String>,
    /// Answered before the body was read: the connection cannot be reused,
    /// so say so rather than let the client reuse a closing connection.
    close: bool,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Body<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    key: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error_code: Option<ErrorCode>,
    error_details: &'a str,
}

/// Seconds a shed client is asked to wait before retrying.
const RETRY_AFTER_SECONDS: &str = "1";

impl ApiError {
    fn new(status: StatusCode, code: Option<ErrorCode>, details: impl Into<String>) -> Self {
        Self {
            status,
            code,
            details: details.into(),
            key: None,
            close: false,
        }
    }

    fn closing(mut self) -> Self {
        self.close = true;
        self
    }

    /// 400 `PARSE_ERROR`.
    pub fn parse(details: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            Some(ErrorCode::ParseError),
            details,
        )
    }

    /// 400 `GENERAL`.
    pub fn general(details: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, Some(ErrorCode::General), details)
    }

    /// 404 `FLAG_NOT_FOUND` for `key`.
    pub fn flag_not_found(key: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            Some(ErrorCode::FlagNotFound),
            format!("no flag `{key}`"),
        )
        .for_flag(key)
    }

    /// 401: no token, or not a configured one.
    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            None,
            "a valid token is required (Authorization: Bearer TOKEN or X-API-Key: TOKEN)",
        )
        .closing()
    }

    /// 403: a client token on an admin endpoint (answered before the body
    /// is read).
    pub fn forbidden() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            None,
            "this endpoint needs an admin token",
        )
        .closing()
    }

    /// 403: a client token asking for an evaluation's trace, which shows
    /// the flag's rules.
    pub fn explain_forbidden() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            None,
            "`?explain=true` needs an admin token: the trace shows the flag's rules",
        )
    }

    /// 429: too many requests in flight.
    pub fn overloaded() -> Self {
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            Some(ErrorCode::General),
            "too many requests in flight; retry after the Retry-After delay",
        )
    }

    /// 400 `GENERAL`: the declared body is larger than `max` bytes (not read).
    pub fn too_large(max: usize) -> Self {
        Self::general(format!("the request body is larger than {max} bytes")).closing()
    }

    /// 408 `GENERAL`: the client did not send its body in time.
    pub fn timeout() -> Self {
        Self::new(
            StatusCode::REQUEST_TIMEOUT,
            Some(ErrorCode::General),
            "the request body was not received in time",
        )
    }

    /// 404 for a path that is no endpoint.
    pub fn no_route() -> Self {
        Self::new(StatusCode::NOT_FOUND, None, "no such endpoint")
    }

    /// 405 for a known path with the wrong method.
    pub fn wrong_method() -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            None,
            "method not allowed on this endpoint",
        )
    }

    /// 503: the server is stopping or the reloader is gone.
    pub fn unavailable(details: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, None, details)
    }

    /// 503: the event store could not be opened, for `reason`. The reason
    /// names the server's files, so only an admin is given it.
    pub fn events_unavailable(reason: &str, role: Role) -> Self {
        let reason = match role {
            Role::Admin => reason,
            Role::Client => "an admin token sees why in /v1/status",
        };
        Self::unavailable(format!("events are not recorded: {reason}"))
    }

    /// 500: a bug; the details say what broke, never a client's data.
    pub fn internal(details: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, None, details)
    }

    /// The same error about flag `key` (OFREP single-flag failures carry it).
    pub fn for_flag(mut self, key: &str) -> Self {
        self.key = Some(key.to_string());
        self
    }
}

impl From<BodyError> for ApiError {
    fn from(error: BodyError) -> Self {
        match error {
            BodyError::Parse(details) => Self::parse(details),
            BodyError::InvalidContext(details) => Self::new(
                StatusCode::BAD_REQUEST,
                Some(ErrorCode::InvalidContext),
                details,
            ),
        }
    }
}

impl From<WriteError> for ApiError {
    fn from(error: WriteError) -> Self {
        Self::unavailable(error.to_string())
    }
}

impl From<BatchError> for ApiError {
    fn from(error: BatchError) -> Self {
        match error {
            BatchError::Parse(details) => Self::parse(details),
            BatchError::TooLarge(_) => Self::general(error.to_string()),
        }
    }
}

impl From<ResultsError> for ApiError {
    fn from(error: ResultsError) -> Self {
        match error {
            ResultsError::NotFound(details) => Self::new(StatusCode::NOT_FOUND, None, details),
            ResultsError::Store(_) | ResultsError::Unreadable(_) => {
                Self::unavailable(error.to_string())
            }
            ResultsError::Correction(_) => Self::internal(error.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Body {
            key: self.key.as_deref(),
            error_code: self.code,
            error_details: &self.details,
        };
        let bytes = serde_json::to_vec(&body).unwrap_or_default();
        let mut response = (
            self.status,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            bytes,
        )
            .into_response();
        let headers = response.headers_mut();
        if self.close {
            headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        match self.status {
            StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE => {
                headers.insert(
                    header::RETRY_AFTER,
                    HeaderValue::from_static(RETRY_AFTER_SECONDS),
                );
            }
            StatusCode::UNAUTHORIZED => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            _ => {}
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body_of(error: ApiError) -> (StatusCode, serde_json::Value, Response) {
        let response = error.into_response();
        let status = response.status();
        let (parts, body) = response.into_parts();
        let bytes = axum::body::to_bytes(body, 1 << 16).await.unwrap();
        let json = serde_json::from_slice(&bytes).unwrap();
        (
            status,
            json,
            Response::from_parts(parts, axum::body::Body::empty()),
        )
    }

    #[tokio::test]
    async fn errors_take_ofreps_shape_with_key_only_for_one_flag() {
        let (status, json, _) = body_of(ApiError::flag_not_found("f")).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(json["key"], "f");
        assert_eq!(json["errorCode"], "FLAG_NOT_FOUND");
        assert!(json["errorDetails"].is_string());

        let (status, json, _) = body_of(ApiError::parse("bad json")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(json.get("key").is_none());
        assert_eq!(json["errorCode"], "PARSE_ERROR");
    }

    #[tokio::test]
    async fn shedding_says_when_to_retry_and_auth_failures_say_how() {
        let (_, _, response) = body_of(ApiError::overloaded()).await;
        assert_eq!(response.headers()[header::RETRY_AFTER], "1");
        let (_, json, response) = body_of(ApiError::unauthorized()).await;
        assert!(json.get("errorCode").is_none());
        assert_eq!(response.headers()[header::WWW_AUTHENTICATE], "Bearer");
    }
}
