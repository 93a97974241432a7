//! Hetzner's API errors: the body `{"error": {"code", "message", "details"}}` and the
//! `X-Correlation-Id` response header, kept as a typed [`ApiError`] under the core's error.
//!
//! The core's [`bootstrap_core::Error`] carries the kind (what retries and exit codes decide on)
//! and the API's message; the [`ApiError`] rides along as its source, so that code can ask
//! [`is_code`] instead of reading message text, and the correlation id (what Hetzner support asks
//! for) is printed with the error chain. The mapping from code and status onto
//! [`ErrorKind`] lives here, in [`kind_for`], and nowhere else.

use std::fmt;

use bootstrap_core::http::{kind_for_status, retry_after};
use bootstrap_core::{Error, ErrorKind};
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde::Deserialize;

/// The response header Hetzner puts on every answer to tie it to its logs.
pub const CORRELATION_ID_HEADER: &str = "x-correlation-id";

macro_rules! error_codes {
    ($($(#[doc = $doc:literal])* $variant:ident = $code:literal,)*) => {
        /// An error code of Hetzner's API (the "Errors" table of its API document, and the
        /// general codes hcloud-go names), so that callers match codes, never message text.
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum ErrorCode {
            $($(#[doc = $doc])* $variant,)*
            /// A code this crate does not name (kept verbatim; [`ErrorCode::parse`] never
            /// puts a named code here).
            Other(String),
        }

        impl ErrorCode {
            /// The code as the API spells it.
            pub fn as_str(&self) -> &str {
                match self {
                    $(Self::$variant => $code,)*
                    Self::Other(code) => code,
                }
            }

            /// The code for the API's spelling.
            pub fn parse(code: &str) -> Self {
                match code {
                    $($code => Self::$variant,)*
                    other => Self::Other(other.to_owned()),
                }
            }
        }
    };
}

error_codes! {
    /// 400: the request body is not valid JSON.
    JsonError = "json_error",
    /// 401: the token is invalid or unknown.
    Unauthorized = "unauthorized",
    /// 401: the token may only read (GET).
    TokenReadonly = "token_readonly",
    /// 403: the token lacks the permission.
    Forbidden = "forbidden",
    /// 403: maintenance prevents the operation.
    Maintenance = "maintenance",
    /// 403: the account's quota for this resource is used up.
    ResourceLimitExceeded = "resource_limit_exceeded",
    /// 404: no such resource.
    NotFound = "not_found",
    /// 405: the method is not allowed on this path.
    MethodNotAllowed = "method_not_allowed",
    /// 409: a field that must be unique (name, key fingerprint) is taken.
    UniquenessError = "uniqueness_error",
    /// 409: the resource changed during the request; retrying is safe.
    Conflict = "conflict",
    /// 410: the endpoint was removed.
    DeprecatedApiEndpoint = "deprecated_api_endpoint",
    /// 412: the resource cannot be ordered now (e.g. a server type sold out in a location).
    ResourceUnavailable = "resource_unavailable",
    /// 422: the input was refused; `details.fields` names the fields.
    InvalidInput = "invalid_input",
    /// 422: a service behind the API failed.
    ServiceError = "service_error",
    /// 422: the resource does not support the action.
    UnsupportedError = "unsupported_error",
    /// 423: another action runs on the resource.
    Locked = "locked",
    /// 423: the resource is protected against this action.
    Protected = "protected",
    /// 429: the rate limit is spent.
    RateLimitExceeded = "rate_limit_exceeded",
    /// 500: the API backend failed.
    ServerError = "server_error",
    /// 502: the API backend did not answer.
    BadGateway = "bad_gateway",
    /// 503: a service or product is not available now.
    Unavailable = "unavailable",
    /// 504: the request was not answered in time.
    Timeout = "timeout",
    /// An error the API could not classify.
    UnknownError = "unknown_error",
    /// The firewall (or other resource) is still in use and cannot be deleted.
    ResourceInUse = "resource_in_use",
    /// The server could not be placed (location full, placement group constraints).
    PlacementError = "placement_error",
    /// 422: the firewall is applied to that resource already.
    FirewallAlreadyApplied = "firewall_already_applied",
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error answer of Hetzner's API, kept as the source of the core error the client returns.
///
/// Its text is the machine part, code and correlation id: the API's message is already the text
/// of the core error above it in the chain, so a printed chain says each thing once.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub struct ApiError {
    /// The error code, for decisions ([`is_code`]).
    pub code: ErrorCode,
    /// The API's message, for people.
    pub message: String,
    /// The `X-Correlation-Id` of the answer, which Hetzner support asks for.
    pub correlation_id: Option<String>,
    /// The code-specific `details` object (e.g. the refused fields of `invalid_input`).
    pub details: Option<serde_json::Value>,
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.correlation_id {
            Some(id) => write!(f, "{} (correlation id {id})", self.code),
            None => write!(f, "{}", self.code),
        }
    }
}

/// True when `err`, or any error in its source chain, is an [`ApiError`] with one of `codes`.
pub fn is_code(err: &(dyn std::error::Error + 'static), codes: &[ErrorCode]) -> bool {
    let mut next = Some(err);
    while let Some(e) = next {
        if let Some(api) = e.downcast_ref::<ApiError>() {
            return codes.contains(&api.code);
        }
        next = e.source();
    }
    false
}

/// The kind of an error answer: by its code where the code says more than the status (see the
/// "Errors" section of Hetzner's API document), else by the status.
pub fn kind_for(code: &ErrorCode, status: StatusCode, headers: &HeaderMap) -> ErrorKind {
    match code {
        ErrorCode::UniquenessError => ErrorKind::Conflict,
        ErrorCode::ResourceInUse => ErrorKind::InUse,
        ErrorCode::NotFound => ErrorKind::NotFound,
        ErrorCode::Unauthorized | ErrorCode::Forbidden | ErrorCode::TokenReadonly => {
            ErrorKind::Unauthorized
        }
        ErrorCode::InvalidInput
        | ErrorCode::JsonError
        | ErrorCode::ResourceLimitExceeded
        | ErrorCode::PlacementError => ErrorKind::InvalidInput,
        ErrorCode::RateLimitExceeded => ErrorKind::RateLimited {
            retry_after: retry_after(headers),
        },
        // hcloud-go retries these: the resource is busy or Hetzner had a hiccup.
        ErrorCode::Conflict
        | ErrorCode::Locked
        | ErrorCode::ServerError
        | ErrorCode::ServiceError
        | ErrorCode::Unavailable => ErrorKind::Transient,
        ErrorCode::Timeout => ErrorKind::Timeout,
        _ => kind_for_status(status, headers),
    }
}

#[derive(Deserialize)]
struct Body {
    error: Inner,
}

#[derive(Deserialize)]
struct Inner {
    code: String,
    #[serde(default)]
    message: String,
    #[serde(default)]
    details: Option<serde_json::Value>,
}

impl ApiError {
    /// The error in an answer's body and headers; `None` when the body is not Hetzner's error
    /// shape (e.g. a proxy's HTML page).
    pub fn from_response(headers: &HeaderMap, body: &str) -> Option<Self> {
        let b: Body = serde_json::from_str(body).ok()?;
        let correlation_id = headers
            .get(CORRELATION_ID_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned);
        Some(Self {
            code: ErrorCode::parse(&b.error.code),
            message: b.error.message,
            correlation_id,
            details: b.error.details.filter(|d| !d.is_null()),
        })
    }
}

/// Parses an error answer for [`bootstrap_core::http::HttpClient`]: the core error's text is the
/// API's message, its source the [`ApiError`].
pub(crate) fn parse(status: StatusCode, headers: &HeaderMap, body: &str) -> Option<Error> {
    let api = ApiError::from_response(headers, body)?;
    let kind = kind_for(&api.code, status, headers);
    let message = if api.message.is_empty() {
        "no message".to_owned()
    } else {
        api.message.clone()
    };
    Some(Error::new(kind, message).with_source(api))
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    const UNIQUENESS: &str = r#"{"error":{"code":"uniqueness_error","message":"SSH key with the same fingerprint already exists","details":{"fields":[{"name":"public_key"}]}}}"#;

    fn with_correlation_id(id: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(CORRELATION_ID_HEADER, HeaderValue::from_str(id).unwrap());
        h
    }

    #[test]
    fn codes_map_to_kinds() {
        let h = HeaderMap::new();
        let e = parse(StatusCode::CONFLICT, &h, UNIQUENESS).unwrap();
        assert_eq!(e.kind(), &ErrorKind::Conflict);
        let kind = |code: &str, status| kind_for(&ErrorCode::parse(code), status, &h);
        assert_eq!(
            kind("resource_in_use", StatusCode::CONFLICT),
            ErrorKind::InUse
        );
        assert_eq!(kind("locked", StatusCode::LOCKED), ErrorKind::Transient);
        assert_eq!(
            kind("token_readonly", StatusCode::UNAUTHORIZED),
            ErrorKind::Unauthorized
        );
        // A code this crate does not know falls back on the status.
        assert_eq!(kind("whatever", StatusCode::NOT_FOUND), ErrorKind::NotFound);
        assert_eq!(kind("whatever", StatusCode::IM_A_TEAPOT), ErrorKind::Other);
        assert!(parse(StatusCode::BAD_GATEWAY, &h, "<html>").is_none());
    }

    #[test]
    fn rate_limit_codes_keep_the_wait_from_the_headers() {
        let mut h = HeaderMap::new();
        h.insert("retry-after", HeaderValue::from_static("7"));
        let body =
            r#"{"error":{"code":"rate_limit_exceeded","message":"limit reached","details":null}}"#;
        let e = parse(StatusCode::TOO_MANY_REQUESTS, &h, body).unwrap();
        assert_eq!(
            e.kind(),
            &ErrorKind::RateLimited {
                retry_after: Some(std::time::Duration::from_secs(7))
            }
        );
    }

    #[test]
    fn the_code_and_correlation_id_survive_inside_the_core_error() {
        let h = with_correlation_id("3b1f7c2a9d");
        let e = parse(StatusCode::CONFLICT, &h, UNIQUENESS)
            .unwrap()
            .context("creating the SSH key");
        assert!(is_code(&e, &[ErrorCode::UniquenessError]));
        assert!(!is_code(&e, &[ErrorCode::NotFound, ErrorCode::Conflict]));
        assert_eq!(
            e.to_string(),
            "creating the SSH key: SSH key with the same fingerprint already exists"
        );
        let source = std::error::Error::source(&e).unwrap().to_string();
        assert_eq!(source, "uniqueness_error (correlation id 3b1f7c2a9d)");
        let api = std::error::Error::source(&e)
            .unwrap()
            .downcast_ref::<ApiError>()
            .unwrap();
        assert_eq!(
            api.details.as_ref().unwrap()["fields"][0]["name"],
            "public_key"
        );
        // Without the header there is no id to show.
        let e = parse(StatusCode::CONFLICT, &HeaderMap::new(), UNIQUENESS).unwrap();
        let source = std::error::Error::source(&e).unwrap().to_string();
        assert_eq!(source, "uniqueness_error");
    }

    #[test]
    fn codes_round_trip_and_unknown_ones_are_kept() {
        for code in [
            "not_found",
            "resource_in_use",
            "rate_limit_exceeded",
            "locked",
        ] {
            assert_eq!(ErrorCode::parse(code).as_str(), code);
            assert!(!matches!(ErrorCode::parse(code), ErrorCode::Other(_)));
        }
        assert_eq!(
            ErrorCode::parse("brand_new"),
            ErrorCode::Other("brand_new".into())
        );
        let plain = Error::new(ErrorKind::NotFound, "not_found");
        assert!(
            !is_code(&plain, &[ErrorCode::NotFound]),
            "text is not a code"
        );
    }
}
