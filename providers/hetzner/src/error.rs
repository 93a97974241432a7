//! Hetzner's error body `{"error": {"code", "message"}}` mapped onto the core's kinds, by code,
//! never by message text.

use bootstrap_core::ErrorKind;
use reqwest::StatusCode;
use serde::Deserialize;

#[derive(Deserialize)]
struct Body {
    error: Inner,
}

#[derive(Deserialize)]
struct Inner {
    code: String,
    #[serde(default)]
    message: String,
}

/// The kind for a Hetzner error code (see the "Errors" section of Hetzner's API document).
fn kind_for_code(code: &str) -> Option<ErrorKind> {
    Some(match code {
        "uniqueness_error" => ErrorKind::Conflict,
        "resource_in_use" => ErrorKind::InUse,
        "not_found" => ErrorKind::NotFound,
        "unauthorized" | "forbidden" | "token_readonly" => ErrorKind::Unauthorized,
        "invalid_input" | "json_error" | "resource_limit_exceeded" | "placement_error" => {
            ErrorKind::InvalidInput
        }
        "rate_limit_exceeded" => ErrorKind::RateLimited { retry_after: None },
        // hcloud-go retries these: the resource is busy or Hetzner had a hiccup.
        "conflict" | "locked" | "server_error" | "service_error" | "unavailable" => {
            ErrorKind::Transient
        }
        "timeout" => ErrorKind::Timeout,
        _ => return None,
    })
}

/// Parses an error response for [`bootstrap_core::http::HttpClient`].
pub(crate) fn parse(_status: StatusCode, body: &str) -> Option<(Option<ErrorKind>, String)> {
    let b: Body = serde_json::from_str(body).ok()?;
    let kind = kind_for_code(&b.error.code);
    Some((kind, format!("{} ({})", b.error.message, b.error.code)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_map_to_kinds() {
        let (k, m) = parse(
            StatusCode::CONFLICT,
            r#"{"error":{"code":"uniqueness_error","message":"SSH key with the same fingerprint already exists","details":{}}}"#,
        )
        .unwrap();
        assert_eq!(k, Some(ErrorKind::Conflict));
        assert!(m.contains("uniqueness_error"));
        assert_eq!(kind_for_code("resource_in_use"), Some(ErrorKind::InUse));
        assert_eq!(kind_for_code("locked"), Some(ErrorKind::Transient));
        assert_eq!(kind_for_code("whatever"), None);
        assert!(parse(StatusCode::BAD_GATEWAY, "<html>").is_none());
    }
}
