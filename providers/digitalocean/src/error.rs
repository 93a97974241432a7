//! DigitalOcean's API errors: the body `{"id", "message", "request_id"}` (the tags endpoints
//! answer `{"error", "messages"}` instead), kept as a typed [`ApiError`] under the core's error.
//!
//! The core's [`bootstrap_core::Error`] carries the kind (what retries and exit codes decide on)
//! and the API's message with the request id (what DigitalOcean support asks for); the
//! [`ApiError`] rides along as its source, so that code can ask [`is_id`] instead of reading
//! message text. The mapping onto [`ErrorKind`] lives here, in [`kind_for`], and nowhere else.

use std::fmt;

use bootstrap_core::http::{RateLimitStyle, kind_for_status_in, retry_after_in};
use bootstrap_core::{Error, ErrorKind};
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde::Deserialize;

/// The response header that carries the request id when the body does not.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// Error id: the resource does not exist (404).
pub const NOT_FOUND: &str = "not_found";
/// Error id: the token is missing or invalid (401).
pub const UNAUTHORIZED: &str = "unauthorized";
/// Error id: the token lacks a scope (403).
pub const FORBIDDEN: &str = "forbidden";
/// Error id: the input was refused (422), also for a duplicate SSH key.
pub const UNPROCESSABLE_ENTITY: &str = "unprocessable_entity";
/// Error id: the rate limit is spent (429).
pub const TOO_MANY_REQUESTS: &str = "too_many_requests";
/// Error id: DigitalOcean failed (500).
pub const SERVER_ERROR: &str = "server_error";
/// Error id: a service is down for a moment (503).
pub const SERVICE_UNAVAILABLE: &str = "service_unavailable";
/// Error id: the resource is locked by another event (e.g. a droplet action in progress).
pub const CONFLICT: &str = "conflict";

/// An error answer of DigitalOcean's API, kept as the source of the core error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ApiError {
    /// The error id (`not_found`, `unprocessable_entity`, ...), for decisions ([`is_id`]).
    pub id: String,
    /// The API's message, for people.
    pub message: String,
    /// The request id, from the body or the `x-request-id` header.
    pub request_id: Option<String>,
    /// The HTTP status.
    pub status: u16,
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (HTTP {})", self.id, self.status)
    }
}

impl ApiError {
    /// The error in an answer's body and headers; `None` when the body is neither of
    /// DigitalOcean's error shapes (e.g. a proxy's HTML page).
    pub fn from_response(status: StatusCode, headers: &HeaderMap, body: &str) -> Option<Self> {
        let b: Body = serde_json::from_str(body).ok()?;
        let header_id = headers
            .get(REQUEST_ID_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned);
        let (id, message, request_id) = match b {
            Body::Standard {
                id,
                message,
                request_id,
            } => (id, message, request_id.filter(|r| !r.is_empty())),
            Body::Tags { error, messages } => (
                id_for_status(status).to_owned(),
                if messages.is_empty() {
                    error
                } else {
                    format!("{error}: {}", messages.join("; "))
                },
                None,
            ),
        };
        Some(Self {
            id,
            message,
            request_id: request_id.or(header_id),
            status: status.as_u16(),
        })
    }

    /// True for the 422 DigitalOcean answers to a public key that is already uploaded
    /// ("SSH Key is already in use on your account"). Its id is the generic
    /// `unprocessable_entity`, so the message is the only thing that tells it from a malformed
    /// key: this is the one place that reads message text.
    pub fn is_key_in_use(&self) -> bool {
        self.status == 422 && self.message.to_ascii_lowercase().contains("already in use")
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Body {
    Standard {
        id: String,
        #[serde(default)]
        message: String,
        #[serde(default)]
        request_id: Option<String>,
    },
    Tags {
        error: String,
        #[serde(default)]
        messages: Vec<String>,
    },
}

/// The id DigitalOcean uses for a status, for the tags endpoints' bodies that carry none.
fn id_for_status(status: StatusCode) -> &'static str {
    match status.as_u16() {
        401 => UNAUTHORIZED,
        403 => FORBIDDEN,
        404 => NOT_FOUND,
        409 => CONFLICT,
        422 | 400 => UNPROCESSABLE_ENTITY,
        429 => TOO_MANY_REQUESTS,
        503 => SERVICE_UNAVAILABLE,
        _ => SERVER_ERROR,
    }
}

/// True when `err`, or any error in its source chain, is an [`ApiError`] with one of `ids`.
pub fn is_id(err: &(dyn std::error::Error + 'static), ids: &[&str]) -> bool {
    api_error(err).is_some_and(|a| ids.contains(&a.id.as_str()))
}

/// The [`ApiError`] in `err`'s source chain, if any.
pub fn api_error<'a>(err: &'a (dyn std::error::Error + 'static)) -> Option<&'a ApiError> {
    let mut next = Some(err);
    while let Some(e) = next {
        if let Some(api) = e.downcast_ref::<ApiError>() {
            return Some(api);
        }
        next = e.source();
    }
    None
}

/// The kind of an error answer: by its id where the id says more than the status, else by the
/// status (with DigitalOcean's `ratelimit-reset`/`retry-after` reading for 429s).
pub fn kind_for(api: &ApiError, status: StatusCode, headers: &HeaderMap) -> ErrorKind {
    const STYLE: RateLimitStyle = RateLimitStyle::ResetNextToken;
    if api.is_key_in_use() {
        return ErrorKind::Conflict;
    }
    match api.id.as_str() {
        NOT_FOUND => ErrorKind::NotFound,
        UNAUTHORIZED | FORBIDDEN => ErrorKind::Unauthorized,
        TOO_MANY_REQUESTS => ErrorKind::RateLimited {
            retry_after: retry_after_in(headers, STYLE),
        },
        SERVER_ERROR | SERVICE_UNAVAILABLE => ErrorKind::Transient,
        _ => kind_for_status_in(status, headers, STYLE),
    }
}

/// Parses an error answer for [`bootstrap_core::http::HttpClient`]: the core error's text is the
/// API's message with the request id, its source the [`ApiError`].
pub(crate) fn parse(status: StatusCode, headers: &HeaderMap, body: &str) -> Option<Error> {
    let api = ApiError::from_response(status, headers, body)?;
    let kind = kind_for(&api, status, headers);
    let mut message = if api.message.is_empty() {
        api.id.clone()
    } else {
        api.message.clone()
    };
    if let Some(r) = &api.request_id {
        message = format!("{message} (request id {r})");
    }
    Some(Error::new(kind, message).with_source(api))
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;
    use std::time::Duration;

    const DUPLICATE: &str = r#"{"id":"unprocessable_entity","message":"SSH Key is already in use on your account","request_id":"4d9d8375-3c56-4925-a3e7-eceb7c1df7b4"}"#;

    #[test]
    fn ids_map_to_kinds_and_the_request_id_is_in_the_message() {
        let h = HeaderMap::new();
        let e = parse(StatusCode::UNPROCESSABLE_ENTITY, &h, DUPLICATE).unwrap();
        assert_eq!(e.kind(), &ErrorKind::Conflict);
        assert_eq!(
            e.to_string(),
            "SSH Key is already in use on your account (request id 4d9d8375-3c56-4925-a3e7-eceb7c1df7b4)"
        );
        assert!(is_id(&e, &[UNPROCESSABLE_ENTITY]));
        let invalid =
            r#"{"id":"unprocessable_entity","message":"Key invalid type","request_id":"r"}"#;
        let e = parse(StatusCode::UNPROCESSABLE_ENTITY, &h, invalid).unwrap();
        assert_eq!(e.kind(), &ErrorKind::InvalidInput);
        let nf = r#"{"id":"not_found","message":"The resource you requested could not be found."}"#;
        assert_eq!(
            parse(StatusCode::NOT_FOUND, &h, nf).unwrap().kind(),
            &ErrorKind::NotFound
        );
        let se = r#"{"id":"server_error","message":"Server was unable to give you a response."}"#;
        assert_eq!(
            parse(StatusCode::INTERNAL_SERVER_ERROR, &h, se)
                .unwrap()
                .kind(),
            &ErrorKind::Transient
        );
        let fb =
            r#"{"id":"forbidden","message":"You do not have access for the attempted action."}"#;
        assert_eq!(
            parse(StatusCode::FORBIDDEN, &h, fb).unwrap().kind(),
            &ErrorKind::Unauthorized
        );
        assert!(parse(StatusCode::BAD_GATEWAY, &h, "<html>").is_none());
    }

    #[test]
    fn the_tags_endpoints_shape_is_read_too() {
        let mut h = HeaderMap::new();
        h.insert(REQUEST_ID_HEADER, HeaderValue::from_static("abc-123"));
        let body =
            r#"{"error":"tag name is invalid","messages":["name must match ^[a-zA-Z0-9_\\-:]+$"]}"#;
        let e = parse(StatusCode::BAD_REQUEST, &h, body).unwrap();
        assert_eq!(e.kind(), &ErrorKind::InvalidInput);
        assert!(
            e.to_string().contains("tag name is invalid: name must"),
            "{e}"
        );
        assert!(e.to_string().contains("(request id abc-123)"), "{e}");
        let api = api_error(&e).unwrap();
        assert_eq!(api.id, UNPROCESSABLE_ENTITY);
    }

    #[test]
    fn burst_429s_wait_for_retry_after() {
        let mut h = HeaderMap::new();
        h.insert("retry-after", HeaderValue::from_static("3"));
        h.insert("ratelimit-remaining", HeaderValue::from_static("0"));
        let body = r#"{"id":"too_many_requests","message":"API Rate limit exceeded."}"#;
        let e = parse(StatusCode::TOO_MANY_REQUESTS, &h, body).unwrap();
        assert_eq!(
            e.kind(),
            &ErrorKind::RateLimited {
                retry_after: Some(Duration::from_secs(3))
            }
        );
    }
}
