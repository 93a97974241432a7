//! Scaleway's API errors: the body `{type, message, resource, resource_id, fields}`, kept as a
//! typed [`ApiError`] under the core's error.
//!
//! The mapping from type and status onto [`ErrorKind`] lives here, in [`kind_for`], and nowhere
//! else: `transient_state` and `locked` may pass (retry); `quotas_exceeded`,
//! `permissions_denied` and `precondition_failed` get a message with the fix. A 429 carries no
//! rate headers at Scaleway, so its wait is the retry loop's jittered backoff.

use std::fmt;

use bootstrap_core::http::{RateLimitStyle, kind_for_status_in};
use bootstrap_core::{Error, ErrorKind};
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde::Deserialize;

/// An error answer of Scaleway's API, the source of the core error the client returns.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub struct ApiError {
    /// The error type (`not_found`, `transient_state`, ...), for decisions ([`is_type`]).
    pub kind: String,
    /// The API's message.
    pub message: String,
    /// The resource the error is about (`instance_server`, `security_group`, ...).
    pub resource: Option<String>,
    /// Its id.
    pub resource_id: Option<String>,
    /// Refused fields of `invalid_arguments`.
    pub fields: Option<serde_json::Value>,
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.kind)?;
        match (&self.resource, &self.resource_id) {
            (Some(r), Some(id)) => write!(f, " ({r} {id})"),
            (Some(r), None) => write!(f, " ({r})"),
            _ => Ok(()),
        }
    }
}

/// Error types Scaleway names (scaleway-sdk-go `scw/errors.go`).
pub mod types {
    /// 400: a field was refused.
    pub const INVALID_ARGUMENTS: &str = "invalid_arguments";
    /// 401: the key is unknown.
    pub const DENIED_AUTHENTICATION: &str = "denied_authentication";
    /// 403: the key's IAM policy lacks the permission.
    pub const PERMISSIONS_DENIED: &str = "permissions_denied";
    /// 403: the organization's quota for the resource is used up.
    pub const QUOTAS_EXCEEDED: &str = "quotas_exceeded";
    /// 404: no such resource.
    pub const NOT_FOUND: &str = "not_found";
    /// 409: the resource is in a state that forbids the call for now.
    pub const TRANSIENT_STATE: &str = "transient_state";
    /// 409: the resource already exists.
    pub const CONFLICT: &str = "conflict";
    /// 412: a precondition of the call does not hold (e.g. still attached).
    pub const PRECONDITION_FAILED: &str = "precondition_failed";
    /// 423: the resource is locked.
    pub const LOCKED: &str = "locked";
    /// The type or zone has no stock.
    pub const OUT_OF_STOCK: &str = "out_of_stock";
    /// The resource expired.
    pub const RESOURCE_EXPIRED: &str = "resource_expired";
}

/// True when `err`, or an error in its source chain, is an [`ApiError`] of one of `kinds`.
pub fn is_type(err: &(dyn std::error::Error + 'static), kinds: &[&str]) -> bool {
    let mut next = Some(err);
    while let Some(e) = next {
        if let Some(api) = e.downcast_ref::<ApiError>() {
            return kinds.contains(&api.kind.as_str());
        }
        next = e.source();
    }
    false
}

/// The kind of an error answer: by its type where it says more than the status.
pub fn kind_for(kind: &str, status: StatusCode, headers: &HeaderMap) -> ErrorKind {
    match kind {
        types::NOT_FOUND => ErrorKind::NotFound,
        types::TRANSIENT_STATE | types::LOCKED => ErrorKind::Transient,
        types::CONFLICT => ErrorKind::Conflict,
        types::PERMISSIONS_DENIED | types::DENIED_AUTHENTICATION => ErrorKind::Unauthorized,
        types::QUOTAS_EXCEEDED
        | types::INVALID_ARGUMENTS
        | types::OUT_OF_STOCK
        | types::PRECONDITION_FAILED => ErrorKind::InvalidInput,
        _ => kind_for_status_in(status, headers, RateLimitStyle::None),
    }
}

/// What the user can do about an error type, if anything.
fn fix_for(kind: &str) -> Option<&'static str> {
    match kind {
        types::QUOTAS_EXCEEDED => Some(
            "the organization's quota is used up: remove unused resources or ask for more (console: Organization > Quotas)",
        ),
        types::PERMISSIONS_DENIED => Some(
            "the API key's IAM policy lacks a permission: give its application or user InstancesFullAccess and BlockStorageFullAccess (and MarketplaceReadOnly) on the project, plus ServerlessJobsFullAccess and SecretManagerFullAccess for --snapshot-engine serverless-jobs",
        ),
        types::PRECONDITION_FAILED => Some(
            "the resource is not in a state that allows this (still attached or in use); run the command again once it settles",
        ),
        types::OUT_OF_STOCK => {
            Some("the server type is out of stock here: choose another --server-type or --location")
        }
        _ => None,
    }
}

/// The error body. Serverless Jobs answers `{"message": ...}` alone (a 404 of its
/// `DELETE .../job-definitions/{id}` in Scaleway's Terraform recordings): the type is then
/// empty and the status decides.
#[derive(Deserialize)]
struct Body {
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    message: String,
    #[serde(default)]
    resource: Option<String>,
    #[serde(default)]
    resource_id: Option<String>,
    #[serde(default)]
    fields: Option<serde_json::Value>,
    #[serde(default)]
    help_message: Option<String>,
}

impl ApiError {
    /// The error in an answer's body; `None` when it is not Scaleway's shape.
    pub fn from_body(body: &str) -> Option<Self> {
        let b: Body = serde_json::from_str(body).ok()?;
        if b.kind.is_empty() && b.message.is_empty() {
            return None;
        }
        let message = match b.help_message.filter(|h| !h.is_empty()) {
            Some(h) if !b.message.is_empty() => format!("{} ({h})", b.message),
            Some(h) => h,
            None => b.message,
        };
        Some(Self {
            kind: b.kind,
            message,
            resource: b.resource.filter(|r| !r.is_empty()),
            resource_id: b.resource_id.filter(|r| !r.is_empty()),
            fields: b.fields.filter(|f| !f.is_null()),
        })
    }
}

/// Parses an error answer for [`bootstrap_core::http::HttpClient`].
pub(crate) fn parse(status: StatusCode, headers: &HeaderMap, body: &str) -> Option<Error> {
    let api = ApiError::from_body(body)?;
    let kind = kind_for(&api.kind, status, headers);
    let mut message = if api.message.is_empty() {
        "no message".to_owned()
    } else {
        api.message.clone()
    };
    if let Some(fields) = &api.fields {
        message = format!("{message} {fields}");
    }
    if let Some(fix) = fix_for(&api.kind) {
        message = format!("{message}; {fix}");
    }
    Some(Error::new(kind, message).with_source(api))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(status: u16, body: &str) -> Error {
        parse(
            StatusCode::from_u16(status).unwrap(),
            &HeaderMap::new(),
            body,
        )
        .unwrap()
    }

    #[test]
    fn types_map_to_kinds_with_fixes() {
        let e = err(
            404,
            r#"{"type":"not_found","message":"resource is not found","resource":"instance_server","resource_id":"abc"}"#,
        );
        assert!(e.is_not_found());
        assert!(is_type(&e, &[types::NOT_FOUND]));
        assert_eq!(
            std::error::Error::source(&e).unwrap().to_string(),
            "not_found (instance_server abc)"
        );
        for t in ["transient_state", "locked"] {
            let e = err(409, &format!(r#"{{"type":"{t}","message":"busy"}}"#));
            assert!(e.is_retryable(), "{t}");
        }
        let e = err(
            403,
            r#"{"type":"quotas_exceeded","message":"Quota exceeded","details":[]}"#,
        );
        assert_eq!(e.kind(), &ErrorKind::InvalidInput);
        assert!(e.to_string().contains("Organization > Quotas"), "{e}");
        let e = err(403, r#"{"type":"permissions_denied","message":"denied"}"#);
        assert_eq!(e.kind(), &ErrorKind::Unauthorized);
        assert!(e.to_string().contains("InstancesFullAccess"), "{e}");
        let e = err(
            412,
            r#"{"type":"precondition_failed","message":"volume is in use"}"#,
        );
        assert!(e.to_string().contains("once it settles"), "{e}");
        let e = err(
            400,
            r#"{"type":"invalid_arguments","message":"bad","fields":{"name":["required"]}}"#,
        );
        assert_eq!(e.kind(), &ErrorKind::InvalidInput);
        assert!(e.to_string().contains("required"));
    }

    #[test]
    fn a_429_without_headers_is_left_to_backoff() {
        let mut h = HeaderMap::new();
        h.insert("x-envoy-ratelimited", "true".parse().unwrap());
        // No Scaleway error body: the client falls back on the status.
        assert!(parse(StatusCode::TOO_MANY_REQUESTS, &h, "").is_none());
        assert_eq!(
            kind_for("whatever", StatusCode::TOO_MANY_REQUESTS, &h),
            ErrorKind::RateLimited { retry_after: None }
        );
        assert!(parse(StatusCode::BAD_GATEWAY, &h, "<html>").is_none());
        assert!(parse(StatusCode::BAD_GATEWAY, &h, "{}").is_none());
    }

    #[test]
    fn a_message_without_a_type_keeps_the_message_and_the_status_kind() {
        // Serverless Jobs' 404 (scaleway/terraform-provider-scaleway, jobs cassettes).
        let e = err(404, r#"{"message":"job definition is not found"}"#);
        assert!(e.is_not_found());
        assert!(e.to_string().contains("job definition is not found"), "{e}");
    }
}
