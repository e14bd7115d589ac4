//! Who is calling: token extraction and the role checks handlers declare.
//!
//! A handler that takes [`Caller`] needs any valid token; one that takes
//! [`Admin`] needs an admin token. Tokens are read from
//! `Authorization: Bearer TOKEN` or `X-API-Key: TOKEN`. With no token
//! configured everyone is admin: the server then only listens on loopback
//! (enforced at startup), so only local users can reach it.

use axum::extract::FromRequestParts;
use axum::http::HeaderMap;
use axum::http::request::Parts;

use super::errors::ApiError;
use super::state::AppState;
use crate::tokens::Role;

/// A caller with a valid token, and its role.
#[derive(Clone, Copy, Debug)]
pub struct Caller(pub Role);

/// A caller with an admin token.
#[derive(Clone, Copy, Debug)]
pub struct Admin;

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if state.tokens.is_empty() {
            return Ok(Self(Role::Admin));
        }
        presented(&parts.headers)
            .and_then(|token| state.tokens.role_of(token))
            .map(Self)
            .ok_or_else(ApiError::unauthorized)
    }
}

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        match Caller::from_request_parts(parts, state).await? {
            Caller(Role::Admin) => Ok(Self),
            Caller(Role::Client) => Err(ApiError::forbidden()),
        }
    }
}

/// The token a request presents, if any.
fn presented(headers: &HeaderMap) -> Option<&[u8]> {
    if let Some(value) = headers.get("authorization") {
        let value = value.as_bytes();
        let scheme = b"bearer ";
        return (value.len() > scheme.len() && value[..scheme.len()].eq_ignore_ascii_case(scheme))
            .then(|| value[scheme.len()..].trim_ascii());
    }
    headers.get("x-api-key").map(|v| v.as_bytes().trim_ascii())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(k, v)| (k.parse().unwrap(), v.parse().unwrap()))
            .collect()
    }

    #[test]
    fn tokens_come_from_bearer_or_api_key() {
        let bearer = headers(&[("authorization", "Bearer abc")]);
        assert_eq!(presented(&bearer), Some(&b"abc"[..]));
        let lower = headers(&[("authorization", "bearer  abc ")]);
        assert_eq!(presented(&lower), Some(&b"abc"[..]));
        let key = headers(&[("x-api-key", "xyz")]);
        assert_eq!(presented(&key), Some(&b"xyz"[..]));
        let basic = headers(&[("authorization", "Basic abc")]);
        assert_eq!(presented(&basic), None);
        assert_eq!(presented(&HeaderMap::new()), None);
    }
}
