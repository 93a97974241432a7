//! A small typed JSON client for the hand-written adapters: auth header, base URL, and the
//! mapping of HTTP status and rate-limit headers onto [`ErrorKind`]s, written once.
//!
//! It also keeps one rate-limit gate: an estimate of the server's token bucket, fed by
//! `RateLimit-Limit`/`-Remaining`/`-Reset` and shared by concurrent requests, so that when the
//! budget is spent the next requests wait for their token instead of drawing 429s.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::time::Instant;

use crate::deadline::Deadline;
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

/// Turns an error response (status, headers, body) into the provider's error: its kind (start
/// from [`kind_for_status`] for codes it does not know, which keeps the rate-limit wait), the API's
/// message, and its typed error as the source when it has one (so callers can test API codes).
/// The client prefixes the message with the request and status. `None` keeps the status-based
/// kind and a generic message.
pub type ErrorParser = fn(StatusCode, &HeaderMap, &str) -> Option<Error>;

/// How a provider's rate-limit headers read; the gate and the 429 wait follow it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RateLimitStyle {
    /// `RateLimit-Limit`/`-Remaining`/`-Reset`, the reset being when the bucket is *full*
    /// again, refilled one request at a time (Hetzner).
    #[default]
    ResetWhenFull,
    /// `ratelimit-limit`/`-remaining`/`-reset`, the reset (epoch seconds) being when the
    /// oldest counted request expires, i.e. when one more is allowed (DigitalOcean); burst
    /// 429s carry `retry-after`.
    ResetNextToken,
    /// No rate headers at all (Scaleway): a 429 gets the retry loop's jittered backoff.
    None,
}

/// A response body of a request sent with [`HttpClient::send_full`], with its headers (for
/// `X-Total-Count`, `Link` and the like).
#[derive(Debug)]
pub struct Response<T> {
    /// The decoded body.
    pub body: T,
    /// The response headers.
    pub headers: HeaderMap,
}

/// What a request carries.
#[derive(Debug, Clone, Copy)]
pub enum Body<'a> {
    /// Nothing.
    Empty,
    /// A JSON document.
    Json(&'a serde_json::Value),
    /// Text with its content type (Scaleway's user-data is `text/plain`).
    Text(&'static str, &'a str),
}

/// A JSON API client bound to one base URL and token.
#[derive(Debug, Clone)]
pub struct HttpClient {
    client: reqwest::Client,
    base: String,
    auth: Auth,
    provider: &'static str,
    parse_error: ErrorParser,
    style: RateLimitStyle,
    /// Shared with [`HttpClient::sibling`]s: one provider, one budget.
    gate: Arc<Mutex<Budget>>,
}

impl HttpClient {
    /// A client for `base` (no trailing slash needed) that names `provider` in errors. `base`
    /// must pass [`crate::endpoint::check`] (`ErrorKind::InvalidInput` otherwise): no token is
    /// ever attached to a request for an unchecked URL, whichever source the URL came from.
    pub fn new(
        client: reqwest::Client,
        base: &str,
        auth: Auth,
        provider: &'static str,
        parse_error: ErrorParser,
    ) -> Result<Self> {
        crate::endpoint::check(base).map_err(|why| {
            Error::new(
                ErrorKind::InvalidInput,
                format!("invalid {provider} endpoint: {why}"),
            )
        })?;
        Ok(Self {
            client,
            base: base.trim_end_matches('/').to_owned(),
            auth,
            provider,
            parse_error,
            style: RateLimitStyle::default(),
            gate: Arc::new(Mutex::new(Budget::default())),
        })
    }

    /// The same client reading rate-limit headers in `style`.
    #[must_use]
    pub fn with_rate_limit_style(mut self, style: RateLimitStyle) -> Self {
        self.style = style;
        self
    }

    /// A client for another base URL of the same provider (Scaleway's Instance, IAM and Block
    /// APIs) sharing the connection pool, token and rate-limit budget.
    #[must_use]
    pub fn sibling(&self, base: &str) -> Self {
        Self {
            base: base.trim_end_matches('/').to_owned(),
            ..self.clone()
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

    /// How long a request sent now would wait at the rate-limit gate (zero while the estimate
    /// has a token, or before any answer carried the headers). Takes nothing from the budget.
    pub fn queue_wait(&self) -> Duration {
        self.gate
            .lock()
            .map(|mut g| g.peek(Instant::now()))
            .unwrap_or(Duration::ZERO)
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
        let json = match body {
            Some(b) => Some(serde_json::to_value(b).map_err(|e| {
                Error::new(ErrorKind::Other, format!("encoding the request body: {e}"))
            })?),
            None => None,
        };
        let body = json.as_ref().map_or(Body::Empty, Body::Json);
        Ok(self.send_full(method, path, query, body).await?.body)
    }

    /// Sends text (`content_type`, e.g. `text/plain`) and decodes a JSON answer (or `null`).
    pub async fn send_text<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        content_type: &'static str,
        text: &str,
    ) -> Result<T> {
        Ok(self
            .send_full(method, path, &[], Body::Text(content_type, text))
            .await?
            .body)
    }

    /// Sends one request and returns the decoded body with the response headers. `path` is
    /// relative to the base URL, or an absolute URL on the base's own origin (DigitalOcean's
    /// `links.pages.next`); any other origin is refused, so the token never goes elsewhere.
    pub async fn send_full<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Body<'_>,
    ) -> Result<Response<T>> {
        let what = format!("{} {} {}", self.provider, method, path);
        let url = self.url(path)?;
        let ticket = self.wait_for_gate(&what).await?;
        let answer = self.send_once(&what, method, &url, query, body).await;
        ticket.answered(answer.as_ref().ok().map(|(_, h, _)| h));
        let (status, headers, text) = answer?;
        if status.is_success() {
            let text = if text.trim().is_empty() {
                "null"
            } else {
                &text
            };
            let body = serde_json::from_str(text).map_err(|e| {
                Error::new(
                    ErrorKind::Other,
                    format!("{what}: unexpected response body: {e}"),
                )
            })?;
            return Ok(Response { body, headers });
        }
        Err(self.status_error(&what, status, &headers, &text))
    }

    /// The URL for `path`: the base plus a relative path, or an absolute URL on the base's origin.
    fn url(&self, path: &str) -> Result<String> {
        if !(path.starts_with("http://") || path.starts_with("https://")) {
            return Ok(format!("{}{}", self.base, path));
        }
        let origin = |u: &str| -> Option<String> {
            let parsed = reqwest::Url::parse(u).ok()?;
            Some(format!(
                "{}://{}:{}",
                parsed.scheme(),
                parsed.host_str()?,
                parsed.port_or_known_default()?
            ))
        };
        match (origin(path), origin(&self.base)) {
            (Some(a), Some(b)) if a == b => Ok(path.to_owned()),
            _ => Err(Error::new(
                ErrorKind::Other,
                format!(
                    "{}: the API pointed at a URL outside {}; not following it",
                    self.provider, self.base
                ),
            )),
        }
    }

    /// One exchange on the wire: status, headers and body text.
    async fn send_once(
        &self,
        what: &str,
        method: Method,
        url: &str,
        query: &[(&str, String)],
        body: Body<'_>,
    ) -> Result<(StatusCode, HeaderMap, String)> {
        let mut req = self.client.request(method, url).query(query);
        req = match &self.auth {
            Auth::Bearer(t) => req.bearer_auth(t.expose()),
            Auth::Header(name, t) => req.header(*name, t.expose()),
        };
        match body {
            Body::Empty => {}
            Body::Json(v) => req = req.json(v),
            Body::Text(ct, t) => {
                req = req
                    .header(reqwest::header::CONTENT_TYPE, ct)
                    .body(t.to_owned());
            }
        }
        tracing::debug!(request = %what, "sending");
        let resp = req.send().await.map_err(|e| transport_error(what, e))?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let text = resp.text().await.map_err(|e| transport_error(what, e))?;
        tracing::debug!(request = %what, %status, "answered");
        Ok((status, headers, text))
    }

    fn status_error(
        &self,
        what: &str,
        status: StatusCode,
        headers: &HeaderMap,
        body: &str,
    ) -> Error {
        let prefix = format!("{what}: HTTP {}", status.as_u16());
        match (self.parse_error)(status, headers, body) {
            Some(e) => e.context(prefix),
            None => Error::new(kind_for_status_in(status, headers, self.style), prefix),
        }
    }

    /// Takes a token from the shared estimate, sleeping first when none is left (at most
    /// [`MAX_GATE_WAIT`]). Under a [`Deadline`], a token that comes back only after it gives up
    /// at once, naming the wait: the request is not sent. Where the refill rate is known
    /// (Hetzner) each request is given its place in the queue; where it is not (DigitalOcean)
    /// nothing is promised ahead: a waiting request looks again as answers and resets come,
    /// and leaves once one says a token is there.
    async fn wait_for_gate(&self, what: &str) -> Result<Ticket<'_>> {
        let started = Instant::now();
        let mut waiting: Option<Waiting<'_>> = None;
        let wait = loop {
            let now = Instant::now();
            let pass = match self.gate.lock() {
                // Waited long enough: the retry loop deals with whatever comes.
                Ok(mut g) if now.saturating_duration_since(started) >= MAX_GATE_WAIT => {
                    g.take(now);
                    Pass::Go(Duration::ZERO)
                }
                Ok(mut g) => g.acquire(now, waiting.is_some()),
                Err(_) => Pass::Go(Duration::ZERO),
            };
            match pass {
                Pass::Go(wait) => break wait,
                Pass::Later(hint, known) => {
                    // The reset the API named, not the short look: a reset past the deadline
                    // ends the request now (it once looked again every 100 ms for 120 s).
                    let reset = known.unwrap_or(hint);
                    if let Some(d) = Deadline::current()
                        && d.would_pass(reset)
                    {
                        return Err(d.too_long(
                            what,
                            reset,
                            "ratelimit-remaining 0 until ratelimit-reset",
                        ));
                    }
                    if waiting.is_none() {
                        waiting = Some(Waiting::new(&self.gate));
                    }
                    tokio::time::sleep(hint).await;
                }
            }
        };
        drop(waiting);
        // From here on, dropping the ticket hands the count back.
        let mut ticket = Ticket {
            gate: &self.gate,
            style: self.style,
            sent: Instant::now(),
            open: true,
        };
        if !wait.is_zero() {
            if let Some(d) = Deadline::current()
                && d.would_pass(wait)
            {
                return Err(d.too_long(what, wait, "RateLimit-Remaining 0 until RateLimit-Reset"));
            }
            let wait = wait.min(MAX_GATE_WAIT);
            tracing::debug!(?wait, "rate limit budget spent, waiting for a token");
            tokio::time::sleep(wait).await;
            ticket.sent = Instant::now();
        }
        Ok(ticket)
    }
}

/// What the gate says to a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pass {
    /// Counted as sent: go after this wait (zero: now), the request's place in the queue where
    /// the refill rate is known.
    Go(Duration),
    /// No token, and no rate to queue by: nothing taken; look again after the first, and no
    /// token is known to come before the second (the reset the API named, if any).
    Later(Duration, Option<Duration>),
}

/// The longest a request waiting without a rate sleeps before it looks at the estimate again
/// (answers to requests in flight may have brought tokens).
const LOOK_AGAIN: Duration = Duration::from_millis(100);

/// A request looking again and again for a token, counted so that the queue shows in
/// [`HttpClient::queue_wait`]; dropping it, also when the request is cancelled, uncounts it.
struct Waiting<'a> {
    gate: &'a Mutex<Budget>,
}

impl<'a> Waiting<'a> {
    fn new(gate: &'a Mutex<Budget>) -> Self {
        if let Ok(mut g) = gate.lock() {
            g.waiting += 1;
        }
        Self { gate }
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        if let Ok(mut g) = self.gate.lock() {
            g.waiting = g.waiting.saturating_sub(1);
        }
    }
}

/// One request counted as in flight; answering it (or dropping it, when the request future is
/// cancelled) hands the count back to the gate.
struct Ticket<'a> {
    gate: &'a Mutex<Budget>,
    style: RateLimitStyle,
    /// When the request left; orders its answer against the others.
    sent: Instant,
    open: bool,
}

impl Ticket<'_> {
    /// Feeds the answer's headers (`None`: no answer came) to the gate.
    fn answered(mut self, headers: Option<&HeaderMap>) {
        self.open = false;
        // Headers of a style the gate cannot read are not fed to it.
        let headers = headers.filter(|_| self.style != RateLimitStyle::None);
        if let Ok(mut g) = self.gate.lock() {
            g.observe(Instant::now(), self.sent, headers, self.style);
        }
    }
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        if self.open
            && let Ok(mut g) = self.gate.lock()
        {
            g.observe(Instant::now(), self.sent, None, self.style);
        }
    }
}

/// Requests of one provider primitive in flight at once where it fans out (the pages of a
/// listing, the batched polls of a check, the tag calls of a finish): the gate keeps them within
/// the rate budget; this keeps one primitive from opening a connection per request.
pub const CALLS_AT_ONCE: usize = 8;

/// The longest the gate ever holds a request back (without a deadline that the whole wait would
/// pass); the retry loop deals with anything longer.
const MAX_GATE_WAIT: Duration = Duration::from_secs(120);

/// The client's picture of the server's token bucket. Every request takes a token before it is
/// sent (waiting when the estimate is empty) and every answer corrects the estimate, counting the
/// requests still in flight as spent, so concurrent tasks cannot all spend the last token.
#[derive(Debug, Default)]
struct Budget {
    /// Tokens left by the last answer minus what was taken since; negative when requests wait.
    tokens: f64,
    /// When `tokens` was last brought up to date; `None` until an answer carried the headers.
    at: Option<Instant>,
    /// When an answer last set the estimate.
    answered_at: Option<Instant>,
    /// `RateLimit-Limit`: the bucket never refills above it.
    limit: f64,
    /// Refill rate derived from the headers, in tokens per second.
    per_sec: Option<f64>,
    /// Without a rate, the instant the API said one token is back.
    until: Option<Instant>,
    /// Requests sent and not answered yet.
    in_flight: u64,
    /// Requests looking for a token without a rate to queue by (see [`Pass::Later`]).
    waiting: u64,
}

impl Budget {
    /// The estimate refilled up to `now`. Without a rate, the reset brings one token, and
    /// each second after it without news another one.
    fn refill(&mut self, now: Instant) {
        if let (Some(at), Some(rate)) = (self.at, self.per_sec) {
            let refilled = self.tokens + now.saturating_duration_since(at).as_secs_f64() * rate;
            self.tokens = refilled.min(self.limit.max(1.0));
            self.at = Some(now);
        } else if self.at.is_some() {
            while let Some(u) = self.until.filter(|u| *u <= now) {
                if self.tokens >= self.limit.max(1.0) {
                    self.until = None;
                    break;
                }
                self.tokens += 1.0;
                self.until = u.checked_add(Duration::from_secs(1));
            }
        }
    }

    /// A request asks to go: with a token, or where the refill rate is known (its place in the
    /// queue), it is counted and goes; without either, nothing is promised and it looks again
    /// (`again`: it has been waiting already, so it is in [`Budget::waiting`]).
    fn acquire(&mut self, now: Instant, again: bool) -> Pass {
        if self.at.is_none() || self.per_sec.is_some() {
            return Pass::Go(self.take(now));
        }
        self.refill(now);
        // Requests already waiting go first: a newcomer leaves them a token each.
        let ahead = if again { 0.0 } else { self.waiting as f64 };
        if self.tokens - ahead >= 1.0 {
            self.in_flight += 1;
            self.tokens -= 1.0;
            return Pass::Go(Duration::ZERO);
        }
        let reset = self.until.map(|u| u.saturating_duration_since(now));
        let look = reset.unwrap_or(LOOK_AGAIN);
        Pass::Later(look.clamp(Duration::from_millis(5), LOOK_AGAIN), reset)
    }

    /// Takes one token and says how long until it is there (uncapped: the caller caps the sleep,
    /// and compares the whole wait with the run's deadline).
    fn take(&mut self, now: Instant) -> Duration {
        self.in_flight += 1;
        let wait = self.peek(now);
        if self.at.is_some() {
            self.tokens -= 1.0;
        }
        wait
    }

    /// How long until one more token is there, taking nothing.
    fn peek(&mut self, now: Instant) -> Duration {
        if self.at.is_none() {
            return Duration::ZERO;
        }
        self.refill(now);
        if self.tokens >= 1.0 {
            Duration::ZERO
        } else if let Some(rate) = self.per_sec {
            secs_f64((1.0 - self.tokens) / rate)
        } else {
            // Without a rate (DigitalOcean's reset names only the next free request): the first
            // missing token at the reset, each one after it a second later, until an answer
            // tells more; never all of them together at the reset. With no reset known either,
            // the first one is a second away: none is known to come sooner.
            let first = self
                .until
                .map_or(Duration::from_secs(1), |u| u.saturating_duration_since(now));
            // Those already waiting come first.
            first + secs_f64((self.waiting as f64 - self.tokens).ceil())
        }
    }

    /// Corrects the estimate from the answer to a request that left at `sent` (`None`: no answer).
    fn observe(
        &mut self,
        now: Instant,
        sent: Instant,
        headers: Option<&HeaderMap>,
        style: RateLimitStyle,
    ) {
        self.in_flight = self.in_flight.saturating_sub(1);
        let Some(h) = headers else { return };
        let Some(remaining) = header_u64(h, "ratelimit-remaining") else {
            return;
        };
        match header_u64(h, "ratelimit-limit") {
            Some(limit) => self.limit = limit as f64,
            None => self.limit = self.limit.max(remaining as f64),
        }
        // A full budget says nothing about the rate: keep the last one.
        if let Some(rate) = refill_rate(h, style) {
            self.per_sec = Some(rate);
        }
        // Requests still in flight will spend tokens the server has not counted yet.
        let mut told = remaining as f64 - self.in_flight as f64;
        if self.per_sec.is_none() {
            // Without a rate nothing is queued ahead (see `acquire`), and requests in flight
            // may have been counted already: the server never counts below zero, and an
            // estimate below it only kept the gate shut long after the budget was back.
            told = told.max(0.0);
        }
        // A request sent before the last answer arrived may have reached the server before or
        // after that answer's request: its answer is not news, only a possibly lower count.
        let overlapping = self.answered_at.is_some_and(|a| sent < a);
        if overlapping {
            self.refill(now);
            if told >= self.tokens {
                return;
            }
        }
        let at = |d: Duration| {
            now.checked_add(d)
                .unwrap_or_else(|| crate::deadline::after(d))
        };
        self.until = match style {
            // Every answer says when the next request is free again, also while some are left:
            // the requests in flight may spend those, and the next one then waits for the reset
            // (leaving it until the answer that says 0 drew 429s). A burst 429's retry-after
            // may come later still.
            RateLimitStyle::ResetNextToken => {
                let reset = next_token_in(h).map(at);
                let retry = header_u64(h, "retry-after").map(|s| at(Duration::from_secs(s)));
                reset.max(retry)
            }
            _ if remaining == 0 => token_wait(h, style).map(at),
            _ => None,
        };
        self.tokens = told;
        self.at = Some(now);
        self.answered_at = Some(now);
    }
}

fn transport_error(what: &str, e: reqwest::Error) -> Error {
    if speaks_plain_http(&e) {
        return Error::new(
            ErrorKind::Other,
            format!(
                "{what}: the endpoint speaks plain http, not TLS: give it as http:// (only for a test server on this machine), or check the host and port of the https:// endpoint"
            ),
        );
    }
    let kind = if e.is_timeout() {
        ErrorKind::Timeout
    } else {
        ErrorKind::Transient
    };
    // reqwest's Display says only "error sending request": the causes say what happened. They
    // may include the URL but never headers, so the token stays out.
    Error::new(kind, format!("{what}: {}", crate::error::chain(&e)))
}

/// Whether the TLS handshake failed because the peer answered with something that is not TLS
/// (a plain-http server answering `HTTP/1.1 400`), found by type along the cause chain.
fn speaks_plain_http(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(c) = cur {
        if let Some(rustls::Error::InvalidMessage(_)) = c.downcast_ref::<rustls::Error>() {
            return true;
        }
        // `io::Error::source` skips the error it wraps: look inside.
        if let Some(inner) = c
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            && speaks_plain_http(inner)
        {
            return true;
        }
        cur = c.source();
    }
    false
}

/// The kind for an HTTP status, with the rate-limit wait read from Hetzner-style headers.
pub fn kind_for_status(status: StatusCode, headers: &HeaderMap) -> ErrorKind {
    kind_for_status_in(status, headers, RateLimitStyle::ResetWhenFull)
}

/// The kind for an HTTP status, with the rate-limit wait read from headers in `style`.
pub fn kind_for_status_in(
    status: StatusCode,
    headers: &HeaderMap,
    style: RateLimitStyle,
) -> ErrorKind {
    match status.as_u16() {
        404 => ErrorKind::NotFound,
        409 => ErrorKind::Conflict,
        401 | 403 => ErrorKind::Unauthorized,
        400 | 422 => ErrorKind::InvalidInput,
        408 | 504 => ErrorKind::Timeout,
        429 => ErrorKind::RateLimited {
            retry_after: retry_after_in(headers, style),
        },
        s if s >= 500 => ErrorKind::Transient,
        _ => ErrorKind::Other,
    }
}

/// The wait a 429 asks for: `Retry-After` seconds, else the time one request takes to come back
/// by `RateLimit-*` (see [`token_wait`]).
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    retry_after_in(headers, RateLimitStyle::ResetWhenFull)
}

/// [`retry_after`] for headers in `style`; `None` (jittered backoff) without any.
pub fn retry_after_in(headers: &HeaderMap, style: RateLimitStyle) -> Option<Duration> {
    if style == RateLimitStyle::None {
        return None;
    }
    header_u64(headers, "retry-after")
        .map(Duration::from_secs)
        .or_else(|| token_wait(headers, style))
}

/// How long until one more request is allowed.
///
/// Hetzner ([`RateLimitStyle::ResetWhenFull`]): `RateLimit-Reset` is when the budget is *full*
/// again, refilled one request at a time (3600/h), so the wait for one request is
/// `(reset - now) / (limit - remaining)`, not the whole time to reset. Without `RateLimit-Limit`
/// the whole wait to reset is the only safe answer. DigitalOcean
/// ([`RateLimitStyle::ResetNextToken`]): the reset is when one request is allowed again.
pub fn token_wait(headers: &HeaderMap, style: RateLimitStyle) -> Option<Duration> {
    match style {
        RateLimitStyle::None => return None,
        RateLimitStyle::ResetNextToken => {
            let wait = match header_u64(headers, "ratelimit-remaining") {
                Some(0) | None => next_token_in(headers)?,
                Some(_) => Duration::ZERO,
            };
            return Some(wait.max(Duration::from_millis(100)));
        }
        RateLimitStyle::ResetWhenFull => {}
    }
    let to_reset = reset_in(headers)?;
    let wait = match (
        header_u64(headers, "ratelimit-limit"),
        header_u64(headers, "ratelimit-remaining"),
    ) {
        (Some(limit), Some(remaining)) if limit > remaining => {
            secs_f64(1.0 / refill_rate(headers, style)?)
        }
        (Some(_), Some(_)) => return Some(Duration::ZERO),
        _ => to_reset,
    };
    // Reset has whole-second resolution: never wait less than a short beat.
    Some(wait.max(Duration::from_millis(100)))
}

/// Requests per second the budget refills at: what is missing, over the time until it is full
/// again (`RateLimit-Reset`, in whole seconds, so at least one). `None` without the headers, with
/// a full budget, or where the reset says nothing about the rate (DigitalOcean).
fn refill_rate(headers: &HeaderMap, style: RateLimitStyle) -> Option<f64> {
    if style != RateLimitStyle::ResetWhenFull {
        return None;
    }
    let limit = header_u64(headers, "ratelimit-limit")?;
    let remaining = header_u64(headers, "ratelimit-remaining")?;
    let to_reset = reset_in(headers)?;
    (limit > remaining).then(|| (limit - remaining) as f64 / to_reset.as_secs_f64().max(1.0))
}

/// Time until `RateLimit-Reset`: a unix timestamp (Hetzner, DigitalOcean) or, when small,
/// seconds from now.
fn reset_in(headers: &HeaderMap) -> Option<Duration> {
    let reset = header_u64(headers, "ratelimit-reset")?;
    let now = SystemTime::now().duration_since(UNIX_EPOCH).ok()?.as_secs();
    let secs = if reset > 1_000_000_000 {
        reset.saturating_sub(now)
    } else {
        reset
    };
    Some(Duration::from_secs(secs))
}

/// Time until DigitalOcean's next free request: its `ratelimit-reset` is the second at which the
/// oldest counted request expires, which may be cut down to the second (the expiry lies within
/// the second after it), so the request is only sure to be free a second after the reset.
fn next_token_in(headers: &HeaderMap) -> Option<Duration> {
    let reset = header_u64(headers, "ratelimit-reset")?;
    let now = SystemTime::now().duration_since(UNIX_EPOCH).ok()?;
    let secs = if reset > 1_000_000_000 {
        reset as f64 - now.as_secs_f64()
    } else {
        reset as f64
    };
    Some(secs_f64(secs + 1.0))
}

/// Seconds as a duration, saturating (a hostile header can ask for more than `Duration` holds;
/// `Duration::from_secs_f64` would panic).
fn secs_f64(secs: f64) -> Duration {
    Duration::try_from_secs_f64(secs.max(0.0)).unwrap_or(Duration::MAX)
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

    const H: RateLimitStyle = RateLimitStyle::ResetWhenFull;

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

    fn bucket_headers(limit: u64, remaining: u64, reset_in: u64) -> HeaderMap {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        headers(&[
            ("ratelimit-limit", limit.to_string()),
            ("ratelimit-remaining", remaining.to_string()),
            ("ratelimit-reset", (now + reset_in).to_string()),
        ])
    }

    #[test]
    fn the_gate_sends_freely_until_the_headers_say_otherwise() {
        let mut b = Budget::default();
        let now = Instant::now();
        for _ in 0..10 {
            assert_eq!(b.take(now), Duration::ZERO);
        }
        for _ in 0..10 {
            b.observe(now, now, None, H);
        }
        assert_eq!(b.in_flight, 0);
        assert_eq!(b.take(now), Duration::ZERO, "no headers, no gate");
    }

    #[test]
    fn concurrent_requests_share_the_last_tokens_and_queue_behind_them() {
        // 3600/h, 2 left, full again in 1799 s: 2 tokens now, then one per ~0.5 s.
        let mut b = Budget::default();
        let now = Instant::now();
        b.take(now);
        b.observe(now, now, Some(&bucket_headers(3600, 2, 1799)), H);
        let waits: Vec<Duration> = (0..5).map(|_| b.take(now)).collect();
        assert_eq!(waits[0], Duration::ZERO);
        assert_eq!(waits[1], Duration::ZERO);
        for (i, w) in waits[2..].iter().enumerate() {
            let want = 0.5 * (i + 1) as f64;
            assert!(
                (w.as_secs_f64() - want).abs() < 0.01,
                "request {} waits {w:?}, want {want}s",
                i + 3
            );
        }
        // Time refills the estimate.
        let later = now + Duration::from_secs(60);
        assert_eq!(b.take(later), Duration::ZERO);
    }

    #[test]
    fn answers_count_requests_still_in_flight_as_spent() {
        let mut b = Budget::default();
        let now = Instant::now();
        // Three requests go out; the first answer says one token is left.
        b.take(now);
        b.take(now);
        b.take(now);
        b.observe(now, now, Some(&bucket_headers(10, 1, 9)), H);
        // Two still in flight will spend that one and one more: the next request waits.
        assert!(b.take(now) > Duration::from_millis(500));
    }

    #[test]
    fn answers_to_overlapping_requests_only_ever_lower_the_estimate() {
        let mut b = Budget::default();
        let t0 = Instant::now();
        let t1 = t0 + Duration::from_millis(10);
        b.take(t0);
        b.take(t0);
        // Both were in flight together, so the server may have counted them in either order:
        // the answer saying 0 is left arrives before the one saying 1 is left.
        b.observe(t1, t0, Some(&bucket_headers(3600, 0, 3600)), H);
        b.observe(t1, t0, Some(&bucket_headers(3600, 1, 3599)), H);
        assert!(b.take(t1) >= Duration::from_millis(900));
        // A request sent after the last answer is news, up or down.
        let t2 = t1 + Duration::from_millis(10);
        b.observe(
            t2 + Duration::from_millis(10),
            t2,
            Some(&bucket_headers(3600, 5, 3595)),
            H,
        );
        assert_eq!(b.take(t2 + Duration::from_millis(10)), Duration::ZERO);
    }

    #[test]
    fn each_provider_style_reads_its_own_headers() {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        // DigitalOcean: the reset (epoch) is when the oldest request expires; until then
        // nothing, and with requests left no wait at all.
        let spent = headers(&[
            ("ratelimit-limit", "5000".into()),
            ("ratelimit-remaining", "0".into()),
            ("ratelimit-reset", (now + 20).to_string()),
        ]);
        // The reset may be cut down to the second: the request is sure to be free a second on.
        let d = token_wait(&spent, RateLimitStyle::ResetNextToken).unwrap();
        assert!(
            d > Duration::from_secs(19) && d <= Duration::from_secs(21),
            "{d:?}"
        );
        // Read as Hetzner's, the same headers mean one token every 4 ms.
        let h = token_wait(&spent, H).unwrap();
        assert!(h < Duration::from_secs(1), "{h:?}");
        // A burst 429 carries retry-after, which wins.
        let mut burst = spent.clone();
        burst.insert("retry-after", HeaderValue::from_static("3"));
        assert_eq!(
            kind_for_status_in(
                StatusCode::TOO_MANY_REQUESTS,
                &burst,
                RateLimitStyle::ResetNextToken
            ),
            ErrorKind::RateLimited {
                retry_after: Some(Duration::from_secs(3))
            }
        );
        // Scaleway: no headers are read, a 429 is left to the jittered backoff.
        assert_eq!(
            kind_for_status_in(StatusCode::TOO_MANY_REQUESTS, &burst, RateLimitStyle::None),
            ErrorKind::RateLimited { retry_after: None }
        );
        let mut b = Budget::default();
        let t = Instant::now();
        b.take(t);
        b.observe(t, t, Some(&spent), RateLimitStyle::ResetNextToken);
        let w = b.take(t);
        assert!(w > Duration::from_secs(18), "DO: wait for the reset, {w:?}");
    }

    /// A client for `https://api.example.com/v2/` (nothing is sent to it).
    fn example_client() -> HttpClient {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        HttpClient::new(
            reqwest::Client::new(),
            "https://api.example.com/v2/",
            Auth::Bearer(Secret::new("t")),
            "test",
            |_, _, _| None,
        )
        .unwrap()
    }

    #[tokio::test]
    async fn a_reset_past_the_deadline_ends_a_waiting_request_at_once_naming_the_wait() {
        // DigitalOcean: a request that asks for a token after an answer said "0 left, the next
        // in 100000 s" must not look again every 100 ms until the gate's 120 s cap: under
        // `--timeout 5s` it gives up at once, naming the wait (seen in CI: `list` hung 30 s).
        let c = example_client().with_rate_limit_style(DO);
        {
            let mut g = c.gate.lock().unwrap();
            let t = Instant::now();
            g.take(t);
            g.observe(t, t, Some(&do_headers(0, 100_000)), DO);
        }
        let started = Instant::now();
        let r = crate::deadline::Deadline::after(Duration::from_secs(5))
            .scope(c.wait_for_gate("list droplets"))
            .await;
        let Err(e) = r else {
            panic!("the request went out")
        };
        assert_eq!(e.kind(), &ErrorKind::DeadlineExceeded);
        assert!(
            e.to_string().contains("the API asked to wait 1d 3h 46m"),
            "{e}"
        );
        assert!(started.elapsed() < Duration::from_secs(1));
    }

    #[tokio::test]
    async fn absolute_urls_are_followed_only_on_the_base_origin() {
        let c = example_client();
        assert_eq!(
            c.url("/droplets").unwrap(),
            "https://api.example.com/v2/droplets"
        );
        assert_eq!(
            c.url("https://api.example.com:443/v2/droplets?page=2")
                .unwrap(),
            "https://api.example.com:443/v2/droplets?page=2"
        );
        for evil in [
            "https://evil.example/v2/droplets",
            "http://api.example.com/v2/droplets",
            "https://api.example.com.evil.example/",
            "https://api.example.com@evil.example/",
        ] {
            assert!(c.url(evil).is_err(), "{evil}");
        }
        let s = c.sibling("https://api.example.com/iam/v1alpha1");
        assert_eq!(
            s.url("/ssh-keys").unwrap(),
            "https://api.example.com/iam/v1alpha1/ssh-keys"
        );
        assert!(Arc::ptr_eq(&c.gate, &s.gate), "one budget per provider");
    }

    const DO: RateLimitStyle = RateLimitStyle::ResetNextToken;

    fn do_headers(remaining: u64, reset_in: u64) -> HeaderMap {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        headers(&[
            ("ratelimit-limit", "30".into()),
            ("ratelimit-remaining", remaining.to_string()),
            ("ratelimit-reset", (now + reset_in).to_string()),
        ])
    }

    #[test]
    fn without_a_rate_requests_wait_for_news_and_one_leaves_at_the_reset() {
        // DigitalOcean: nothing left, the next request free at the reset, and no rate to queue
        // by: nothing is promised ahead (a promise of "a second each" kept requests asleep
        // long after answers said the budget was back).
        let mut b = Budget::default();
        let t = Instant::now();
        assert_eq!(b.acquire(t, false), Pass::Go(Duration::ZERO));
        b.observe(t, t, Some(&do_headers(0, 2)), DO);
        for _ in 0..3 {
            assert!(
                matches!(b.acquire(t, false), Pass::Later(d, _) if d <= LOOK_AGAIN),
                "looks again shortly"
            );
        }
        b.waiting = 3;
        // The queue shows to the job's admission: the reset, then a second for each one
        // waiting ahead.
        let w = b.peek(t);
        assert!(
            w > Duration::from_secs(4) && w <= Duration::from_secs(6),
            "{w:?}"
        );
        // At the reset (read as cut down to the second: a second after it) one goes, not all.
        let reset = b.until.unwrap();
        assert!(reset > t + Duration::from_secs(2), "{:?}", reset - t);
        assert_eq!(b.acquire(reset, true), Pass::Go(Duration::ZERO));
        assert!(matches!(b.acquire(reset, true), Pass::Later(..)));
        // Its answer says 20 are left: the others go at once.
        b.observe(reset, reset, Some(&do_headers(20, 1)), DO);
        assert_eq!(b.acquire(reset, true), Pass::Go(Duration::ZERO));
        assert_eq!(b.acquire(reset, true), Pass::Go(Duration::ZERO));
    }

    #[test]
    fn without_a_rate_the_last_tokens_spent_in_flight_hold_the_next_request_until_the_reset() {
        // DigitalOcean: three requests out, the first answer says two are left and the next
        // one is free in 3 s. The two still in flight spend those two: the fourth request must
        // wait for the reset, not leave at once because the answer said "2" rather than "0".
        let mut b = Budget::default();
        let t = Instant::now();
        for _ in 0..3 {
            assert_eq!(b.acquire(t, false), Pass::Go(Duration::ZERO));
        }
        b.observe(t, t, Some(&do_headers(2, 3)), DO);
        assert!(matches!(b.acquire(t, false), Pass::Later(..)));
        let w = b.peek(t);
        assert!(
            w > Duration::from_secs(3) && w <= Duration::from_secs(4),
            "the fourth request waits for the reset: {w:?}"
        );
        // And without any reset known, a second rather than nothing.
        let mut b = Budget::default();
        b.take(t);
        b.observe(
            t,
            t,
            Some(&headers(&[("ratelimit-remaining", "0".into())])),
            H,
        );
        assert_eq!(b.take(t), Duration::from_secs(1));
    }

    #[test]
    fn without_a_limit_the_gate_waits_for_the_reset() {
        let mut b = Budget::default();
        let now = Instant::now();
        b.take(now);
        b.observe(
            now,
            now,
            Some(&headers(&[
                ("ratelimit-remaining", "0".into()),
                ("ratelimit-reset", "5".into()),
            ])),
            H,
        );
        let w = b.take(now);
        assert!(
            w > Duration::from_secs(4) && w <= Duration::from_secs(5),
            "{w:?}"
        );
    }
}
