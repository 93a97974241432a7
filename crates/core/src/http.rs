//! A small typed JSON client for the hand-written adapters: auth header, base URL, and the
//! mapping of HTTP status and rate-limit headers onto [`ErrorKind`]s, written once.
//!
//! It also keeps one rate-limit gate fed by `RateLimit-Remaining`/`RateLimit-Reset`: when the
//! API says the budget is spent, the next request waits for the reset instead of drawing a 429.

use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::time::Instant;

use crate::error::{Error, ErrorKind, Result};
use crate::secret::Secret;

/// How the API wants its token.
#[derive(Debug, Clone)]
pub enum Auth {
    /// `Authorization: Bearer <token>` (Hetzner, DigitalOcean).
    Bearer(Secret),
    /// A named header carrying the token (Scaleway's `X-Auth-Token`).
    Header(&'static str, Secret),
}

/// Turns an error response body into the provider's (kind, message); `None` keeps the
/// status-based kind and a generic message.
pub type ErrorParser = fn(StatusCode, &str) -> Option<(Option<ErrorKind>, String)>;

/// A JSON API client bound to one base URL and token.
#[derive(Debug)]
pub struct HttpClient {
    client: reqwest::Client,
    base: String,
    auth: Auth,
    provider: &'static str,
    parse_error: ErrorParser,
    gate: Mutex<Option<Instant>>,
}

impl HttpClient {
    /// A client for `base` (no trailing slash needed) that names `provider` in errors.
    pub fn new(
        client: reqwest::Client,
        base: &str,
        auth: Auth,
        provider: &'static str,
        parse_error: ErrorParser,
    ) -> Self {
        Self {
            client,
            base: base.trim_end_matches('/').to_owned(),
            auth,
            provider,
            parse_error,
            gate: Mutex::new(None),
        }
    }

    /// A reqwest client with the timeouts every adapter should use.
    pub fn default_client() -> Result<reqwest::Client> {
        reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(60))
            .user_agent(concat!("bootstrap/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::new(ErrorKind::Other, format!("building the HTTP client: {e}")))
    }

    /// The base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// GET `path` with `query`, decoding JSON.
    pub async fn get<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<T> {
        self.send(Method::GET, path, query, None::<&()>).await
    }

    /// POST `body` as JSON to `path`.
    pub async fn post<T: DeserializeOwned, B: Serialize + ?Sized>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T> {
        self.send(Method::POST, path, &[], Some(body)).await
    }

    /// DELETE `path`; an empty body decodes as JSON `null`.
    pub async fn delete<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        self.send(Method::DELETE, path, &[], None::<&()>).await
    }

    /// Sends one request (no retries: the core's retry loop decides).
    pub async fn send<T: DeserializeOwned, B: Serialize + ?Sized>(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&B>,
    ) -> Result<T> {
        self.wait_for_gate().await;
        let url = format!("{}{}", self.base, path);
        let what = format!("{} {} {}", self.provider, method, path);
        let mut req = self.client.request(method, &url).query(query);
        req = match &self.auth {
            Auth::Bearer(t) => req.bearer_auth(t.expose()),
            Auth::Header(name, t) => req.header(*name, t.expose()),
        };
        if let Some(b) = body {
            req = req.json(b);
        }
        tracing::debug!(request = %what, "sending");
        let resp = req.send().await.map_err(|e| transport_error(&what, e))?;
        let status = resp.status();
        let headers = resp.headers().clone();
        self.update_gate(&headers);
        let text = resp.text().await.map_err(|e| transport_error(&what, e))?;
        tracing::debug!(request = %what, %status, "answered");
        if status.is_success() {
            let text = if text.trim().is_empty() {
                "null"
            } else {
                &text
            };
            return serde_json::from_str(text).map_err(|e| {
                Error::new(
                    ErrorKind::Other,
                    format!("{what}: unexpected response body: {e}"),
                )
            });
        }
        Err(self.status_error(&what, status, &headers, &text))
    }

    fn status_error(
        &self,
        what: &str,
        status: StatusCode,
        headers: &HeaderMap,
        body: &str,
    ) -> Error {
        let mut kind = kind_for_status(status, headers);
        let mut message = format!("HTTP {}", status.as_u16());
        if let Some((k, m)) = (self.parse_error)(status, body) {
            if let Some(k) = k {
                // A rate-limit code keeps the header-derived wait.
                if !matches!(kind, ErrorKind::RateLimited { .. })
                    || !matches!(k, ErrorKind::RateLimited { .. })
                {
                    kind = k;
                }
            }
            message = format!("{message}: {m}");
        }
        Error::new(kind, format!("{what}: {message}"))
    }

    async fn wait_for_gate(&self) {
        let until = self.gate.lock().map(|g| *g).unwrap_or(None);
        if let Some(until) = until.filter(|u| *u > Instant::now()) {
            tracing::debug!(wait = ?(until - Instant::now()), "rate limit budget spent, waiting for reset");
            tokio::time::sleep_until(until).await;
        }
    }

    fn update_gate(&self, headers: &HeaderMap) {
        let remaining = header_u64(headers, "ratelimit-remaining");
        let next = match remaining {
            Some(0) => {
                token_wait(headers).map(|d| Instant::now() + d.min(Duration::from_secs(120)))
            }
            _ => None,
        };
        if let Ok(mut g) = self.gate.lock() {
            *g = next;
        }
    }
}

fn transport_error(what: &str, e: reqwest::Error) -> Error {
    let kind = if e.is_timeout() {
        ErrorKind::Timeout
    } else {
        ErrorKind::Transient
    };
    // reqwest's Display may include the URL but never headers, so the token stays out.
    Error::new(kind, format!("{what}: {e}"))
}

/// The kind for an HTTP status, with the rate-limit wait read from the headers.
pub fn kind_for_status(status: StatusCode, headers: &HeaderMap) -> ErrorKind {
    match status.as_u16() {
        404 => ErrorKind::NotFound,
        409 => ErrorKind::Conflict,
        401 | 403 => ErrorKind::Unauthorized,
        400 | 422 => ErrorKind::InvalidInput,
        408 | 504 => ErrorKind::Timeout,
        429 => ErrorKind::RateLimited {
            retry_after: retry_after(headers),
        },
        s if s >= 500 => ErrorKind::Transient,
        _ => ErrorKind::Other,
    }
}

/// The wait a 429 asks for: `Retry-After` seconds, else the time one request takes to come back
/// by `RateLimit-*` (see [`token_wait`]).
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    header_u64(headers, "retry-after")
        .map(Duration::from_secs)
        .or_else(|| token_wait(headers))
}

/// How long until one more request is allowed. `RateLimit-Reset` is when the budget is *full*
/// again (Hetzner refills it one request at a time, 3600/h), so the wait for one request is
/// `(reset - now) / (limit - remaining)`, not the whole time to reset. Without `RateLimit-Limit`
/// the whole wait to reset is the only safe answer.
pub fn token_wait(headers: &HeaderMap) -> Option<Duration> {
    let reset = header_u64(headers, "ratelimit-reset")?;
    let now = SystemTime::now().duration_since(UNIX_EPOCH).ok()?.as_secs();
    // A unix timestamp (Hetzner, DigitalOcean) or, when small, seconds from now.
    let to_reset = if reset > 1_000_000_000 {
        reset.saturating_sub(now)
    } else {
        reset
    };
    let to_reset = Duration::from_secs(to_reset);
    let missing = match (
        header_u64(headers, "ratelimit-limit"),
        header_u64(headers, "ratelimit-remaining"),
    ) {
        (Some(limit), Some(remaining)) if limit > remaining => limit - remaining,
        (Some(_), Some(_)) => return Some(Duration::ZERO),
        _ => 1,
    };
    let per_request = to_reset / u32::try_from(missing).unwrap_or(u32::MAX);
    // Reset has whole-second resolution: never wait less than a short beat.
    Some(per_request.max(Duration::from_millis(100)))
}

fn header_u64(headers: &HeaderMap, name: &str) -> Option<u64> {
    headers
        .get(HeaderName::from_bytes(name.as_bytes()).ok()?)
        .and_then(|v: &HeaderValue| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, String)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn statuses_map_to_kinds() {
        let h = HeaderMap::new();
        assert_eq!(
            kind_for_status(StatusCode::NOT_FOUND, &h),
            ErrorKind::NotFound
        );
        assert_eq!(
            kind_for_status(StatusCode::CONFLICT, &h),
            ErrorKind::Conflict
        );
        assert_eq!(
            kind_for_status(StatusCode::BAD_GATEWAY, &h),
            ErrorKind::Transient
        );
        assert_eq!(
            kind_for_status(StatusCode::UNAUTHORIZED, &h),
            ErrorKind::Unauthorized
        );
        assert_eq!(
            kind_for_status(StatusCode::TOO_MANY_REQUESTS, &h),
            ErrorKind::RateLimited { retry_after: None }
        );
    }

    #[test]
    fn rate_limit_waits_come_from_headers() {
        let h = headers(&[("retry-after", "12".into())]);
        assert_eq!(retry_after(&h), Some(Duration::from_secs(12)));
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let h = headers(&[("ratelimit-reset", (now + 30).to_string())]);
        let d = retry_after(&h).unwrap();
        assert!(
            d <= Duration::from_secs(30) && d >= Duration::from_secs(28),
            "{d:?}"
        );
        assert_eq!(retry_after(&HeaderMap::new()), None);
    }
}
