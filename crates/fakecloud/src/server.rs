//! The server every fake runs on: an axum [`Router`] served by hyper, one `serve_connection` per
//! accepted socket on a loopback listener, on its own thread and runtime (so sync and async tests
//! alike can use it), stopped with every connection closed on [`Server::stop`] or drop.
//!
//! Around the router sits the one request pipeline of all fakes: number the request, pick its
//! [`Fault`], delay it, drop the connection or answer an injected status before the router runs,
//! take a rate-limit token, run the router, then replace the answer or drop the connection after
//! it did the work, add the rate-limit headers and log the exchange. A dropped connection is the
//! connection future going out of scope (`tokio::select!`), so no HTTP code is written here.
//!
//! A set latency ([`Server::set_latency`]) is a network between client and cloud: half of it
//! passes before the request reaches the pipeline, the other half before the answer leaves, so
//! a client sees every call take at least that long and the work happens in the middle. The log
//! keeps when each request arrived and when its answer left, which is how the benchmark counts
//! round trips.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::sync::{Notify, oneshot};
use tower::ServiceExt as _;

use crate::fault::{Fault, Matcher, Predicate, RequestView, Rule, Rules};
use crate::ratelimit::{HeaderStyle, RateLimit};

/// Bodies larger than this are refused (413): no fake needs more.
const MAX_BODY: usize = 16 * 1024 * 1024;

/// The provider's error answer for a status and an error code.
pub type ErrorFn = Arc<dyn Fn(StatusCode, &str) -> Response<Body> + Send + Sync>;

/// One request as the fake saw it.
#[derive(Clone, Debug)]
pub struct LoggedRequest {
    /// 1-based arrival number (the `n` of [`Server::fail_request`]).
    pub n: u64,
    /// HTTP method.
    pub method: String,
    /// Path and query as sent (`/v1/servers?name=web1`).
    pub path: String,
    /// Status answered; 0 when the connection was dropped instead.
    pub status: u16,
    /// The fault applied to this request, if any.
    pub fault: Option<Fault>,
    /// The request body if it is JSON; a form body as an object of its fields.
    pub body: Option<Value>,
    /// The response body, if any (for `DropAfter`, what would have been sent): JSON, or the
    /// text of any other (EC2's XML) as a string.
    pub response: Option<Value>,
    /// When the request arrived, before the first half of the latency.
    pub arrived: Instant,
    /// When the answer left (or the connection was dropped), after the whole latency.
    pub answered: Instant,
}

/// How a fake's server is set up; [`Builder::start`] starts it.
pub struct Builder {
    name: String,
    listen: SocketAddr,
    base_path: String,
    error: ErrorFn,
    rate_limit_code: &'static str,
    rate: RateLimit,
}

impl Builder {
    /// A server called `name` (its thread's name) on 127.0.0.1 with a free port, no base
    /// path, plain-text errors and no rate limit to speak of.
    pub fn new(name: &str) -> Builder {
        Builder {
            name: name.to_owned(),
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            base_path: String::new(),
            error: Arc::new(|status, code| {
                let mut r = Response::new(Body::from(code.to_owned()));
                *r.status_mut() = status;
                r
            }),
            rate_limit_code: "rate_limited",
            rate: RateLimit::new(HeaderStyle::None, u32::MAX, 0.0),
        }
    }

    /// Listens on `addr` (port 0: a free one); it must be a loopback address.
    pub fn listen(mut self, addr: SocketAddr) -> Builder {
        self.listen = addr;
        self
    }

    /// The API's base path (`/v1`): rules may name paths with or without it.
    pub fn base_path(mut self, base: &str) -> Builder {
        base.clone_into(&mut self.base_path);
        self
    }

    /// How the provider answers an injected status: its error body for a status and a code.
    pub fn errors(
        mut self,
        f: impl Fn(StatusCode, &str) -> Response<Body> + Send + Sync + 'static,
    ) -> Builder {
        self.error = Arc::new(f);
        self
    }

    /// The rate limit, and the error code of its 429s (Hetzner: `rate_limit_exceeded`).
    pub fn rate_limit(mut self, rate: RateLimit, code: &'static str) -> Builder {
        self.rate = rate;
        self.rate_limit_code = code;
        self
    }

    /// Binds the listener and serves `app` on a new thread until the server is stopped.
    ///
    /// # Errors
    /// A listen address that is not loopback (fakes are for this machine only), or bind errors.
    pub fn start(self, app: Router) -> io::Result<Server> {
        if !self.listen.ip().is_loopback() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "{} is not a loopback address: a fake only listens on 127.0.0.1 or ::1",
                    self.listen
                ),
            ));
        }
        let listener = std::net::TcpListener::bind(self.listen)?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let control = Arc::new(Control {
            base_path: self.base_path,
            error: self.error,
            rate_limit_code: self.rate_limit_code,
            inner: Mutex::new(Inner {
                count: 0,
                rules: Rules::default(),
                log: vec![],
                rate: self.rate,
                latency: Duration::ZERO,
            }),
        });
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let (stop, stopped) = oneshot::channel::<()>();
        let ctl = control.clone();
        let thread = std::thread::Builder::new()
            .name(format!("{}-{}", self.name, addr.port()))
            .spawn(move || {
                runtime.block_on(accept(listener, ctl, app, stopped));
                runtime.shutdown_timeout(Duration::from_millis(200));
            })?;
        Ok(Server {
            addr,
            control,
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

/// A running server: the handle tests use for faults, rate limits and the request log.
/// Stops, closing every connection, when dropped.
pub struct Server {
    addr: SocketAddr,
    control: Arc<Control>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its base URL: `http://127.0.0.1:PORT` plus the base path.
    pub fn url(&self) -> String {
        format!("http://{}{}", self.addr, self.control.base_path)
    }

    /// Applies `fault` to the `n`th request (1-based, arrival order, all endpoints), once.
    pub fn fail_request(&self, n: u64, fault: Fault) {
        self.add_rule(Matcher::Nth(n), fault, 1);
    }

    /// Applies `fault` to the next `times` requests (`usize::MAX`: every one) whose method is
    /// `method` (`"*"`: any) and whose path starts with the segments of `pattern` (`*` for any one
    /// segment; with or without the base path), e.g. `fail_matching("DELETE", "/servers", ..)`.
    pub fn fail_matching(&self, method: &str, pattern: &str, fault: Fault, times: usize) {
        let matcher = Matcher::route(method, pattern, &self.control.base_path);
        self.add_rule(matcher, fault, times);
    }

    /// Applies `fault` to the next `times` requests that `pick` accepts.
    pub fn fail_when(
        &self,
        pick: impl Fn(&RequestView<'_>) -> bool + Send + Sync + 'static,
        fault: Fault,
        times: usize,
    ) {
        let pick: Predicate = Arc::new(pick);
        self.add_rule(Matcher::When(pick), fault, times);
    }

    fn add_rule(&self, matcher: Matcher, fault: Fault, remaining: usize) {
        self.control.lock().rules.push(Rule {
            matcher,
            fault,
            remaining,
        });
    }

    /// Removes every pending fault rule.
    pub fn clear_faults(&self) {
        self.control.lock().rules.clear();
    }

    /// Resizes the rate-limit bucket and sets its fill.
    pub fn set_rate_limit(&self, limit: u32, refill_per_sec: f64, remaining: u32) {
        self.control
            .lock()
            .rate
            .set(limit, refill_per_sec, remaining);
    }

    /// Adds `latency` to every request from now on: half before the work, half before the
    /// answer leaves (a network in between; zero, the default, for none).
    pub fn set_latency(&self, latency: Duration) {
        self.control.lock().latency = latency;
    }

    /// Every answered (or dropped) request, in the order they finished.
    pub fn requests(&self) -> Vec<LoggedRequest> {
        self.control.lock().log.clone()
    }

    /// `(method, path_and_query, status)` of every finished request (status 0: dropped).
    pub fn request_log(&self) -> Vec<(String, String, u16)> {
        let c = self.control.lock();
        c.log
            .iter()
            .map(|r| (r.method.clone(), r.path.clone(), r.status))
            .collect()
    }

    /// Forgets the requests logged so far (the arrival count goes on).
    pub fn clear_log(&self) {
        self.control.lock().log.clear();
    }

    /// How many requests arrived so far, answered or not (more than the log while one waits).
    pub fn request_count(&self) -> u64 {
        self.control.lock().count
    }

    /// Stops serving and closes every connection; waits for the server's thread.
    pub fn stop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// What the pipeline shares with the test's handle.
struct Control {
    base_path: String,
    error: ErrorFn,
    rate_limit_code: &'static str,
    inner: Mutex<Inner>,
}

struct Inner {
    count: u64,
    rules: Rules,
    log: Vec<LoggedRequest>,
    rate: RateLimit,
    latency: Duration,
}

impl Control {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panicking test thread must not take the fake down with it.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

async fn accept(
    listener: std::net::TcpListener,
    ctl: Arc<Control>,
    app: Router,
    mut stopped: oneshot::Receiver<()>,
) {
    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
        return;
    };
    let mut connections = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            _ = &mut stopped => break,
            accepted = listener.accept() => {
                if let Ok((sock, _)) = accepted {
                    connections.spawn(connection(sock, ctl.clone(), app.clone()));
                }
            }
            // Reap finished connections so the set does not grow for the server's lifetime.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    // Aborting the tasks drops their sockets: every connection closes.
    connections.shutdown().await;
}

/// Serves one connection until the client closes it or a fault drops it.
async fn connection(sock: tokio::net::TcpStream, ctl: Arc<Control>, app: Router) {
    let _ = sock.set_nodelay(true);
    let hang_up = Arc::new(Notify::new());
    let signal = hang_up.clone();
    let service = hyper::service::service_fn(move |req| {
        // The work runs on a task of its own, as on a real server: a client that goes away
        // (Ctrl-C, a timeout) does not undo what its request started.
        let work = tokio::spawn(pipeline(req, ctl.clone(), app.clone()));
        let signal = signal.clone();
        async move {
            match work.await {
                Ok(Some(answer)) => Ok::<_, Infallible>(answer),
                // Drop the connection: this future never finishes, and the connection task,
                // woken, drops the socket.
                _ => {
                    signal.notify_one();
                    std::future::pending().await
                }
            }
        }
    });
    let conn =
        hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(sock), service);
    tokio::select! {
        _ = conn => {}
        () = hang_up.notified() => {}
    }
}

/// The request body as the log keeps it: JSON, or a form (EC2's query API) as an object of its
/// fields.
fn logged_body(headers: &axum::http::HeaderMap, bytes: &[u8]) -> Option<Value> {
    let form = headers
        .get(axum::http::header::CONTENT_TYPE)
        .is_some_and(|t| {
            t.as_bytes()
                .starts_with(b"application/x-www-form-urlencoded")
        });
    if form {
        let fields = form_urlencoded::parse(bytes)
            .map(|(k, v)| (k.into_owned(), Value::String(v.into_owned())))
            .collect();
        return Some(Value::Object(fields));
    }
    serde_json::from_slice(bytes).ok()
}

/// The response body as the log keeps it: JSON, or text as a string.
fn logged_response(bytes: &[u8]) -> Option<Value> {
    if bytes.is_empty() {
        return None;
    }
    serde_json::from_slice(bytes)
        .ok()
        .or_else(|| Some(Value::String(String::from_utf8_lossy(bytes).into_owned())))
}

/// One request through faults, rate limit and router; `None`: drop the connection.
async fn pipeline(
    req: Request<hyper::body::Incoming>,
    ctl: Arc<Control>,
    app: Router,
) -> Option<Response<Body>> {
    let arrived = Instant::now();
    let latency = ctl.lock().latency;
    // Half of the network on the way in, the other half on the way out.
    let way_in = latency / 2;
    let way_out = latency - way_in;
    sleep_nonzero(way_in).await;
    let (parts, body) = req.into_parts();
    let Ok(bytes) = axum::body::to_bytes(Body::new(body), MAX_BODY).await else {
        return Some((ctl.error)(
            StatusCode::PAYLOAD_TOO_LARGE,
            "request_too_large",
        ));
    };
    let path = parts.uri.path();
    let (n, fault) = {
        let view = RequestView {
            method: &parts.method,
            path: path.strip_prefix(ctl.base_path.as_str()).unwrap_or(path),
            query: parts.uri.query(),
            body: &bytes,
        };
        let mut c = ctl.lock();
        c.count += 1;
        let n = c.count;
        (n, c.rules.pick(n, &view))
    };
    let log = |status: u16, response: Option<Value>| {
        ctl.lock().log.push(LoggedRequest {
            arrived,
            answered: Instant::now(),
            n,
            method: parts.method.to_string(),
            path: parts
                .uri
                .path_and_query()
                .map_or(path, |p| p.as_str())
                .to_owned(),
            status,
            fault,
            body: logged_body(&parts.headers, &bytes),
            response,
        });
    };
    if let Some(Fault::Delay(d)) = fault {
        tokio::time::sleep(d).await;
    }
    let status =
        |code: u16| StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let answer = match fault {
        Some(Fault::Drop) => {
            sleep_nonzero(way_out).await;
            log(0, None);
            return None;
        }
        Some(Fault::Status(code, error)) => (ctl.error)(status(code), error),
        Some(Fault::RateLimited { .. }) => {
            (ctl.error)(StatusCode::TOO_MANY_REQUESTS, ctl.rate_limit_code)
        }
        _ => {
            let taken = ctl.lock().rate.take();
            let answer = if taken {
                let req = Request::from_parts(parts.clone(), Body::from(bytes.clone()));
                match app.oneshot(req).await {
                    Ok(r) => r,
                    Err(never) => match never {},
                }
            } else {
                (ctl.error)(StatusCode::TOO_MANY_REQUESTS, ctl.rate_limit_code)
            };
            match fault {
                Some(Fault::StatusAfter(code, error)) => (ctl.error)(status(code), error),
                Some(Fault::DropAfter) => {
                    let (_, body) = read(answer).await;
                    sleep_nonzero(way_out).await;
                    log(0, logged_response(&body));
                    return None;
                }
                _ => answer,
            }
        }
    };
    let (mut head, body) = read(answer).await;
    if fault != Some(Fault::RateLimited { headers: false }) {
        let limited = head.status == StatusCode::TOO_MANY_REQUESTS;
        for (k, v) in ctl.lock().rate.headers(limited) {
            if let Ok(v) = HeaderValue::from_str(&v) {
                head.headers.insert(k, v);
            }
        }
    }
    sleep_nonzero(way_out).await;
    log(head.status.as_u16(), logged_response(&body));
    Some(Response::from_parts(head, Body::from(body)))
}

/// Sleeps for `d` unless it is zero (no timer, no yield, when there is no latency).
async fn sleep_nonzero(d: Duration) {
    if !d.is_zero() {
        tokio::time::sleep(d).await;
    }
}

/// An answer's head and its whole body.
async fn read(answer: Response<Body>) -> (axum::http::response::Parts, Bytes) {
    let (head, body) = answer.into_parts();
    let bytes = axum::body::to_bytes(body, MAX_BODY)
        .await
        .unwrap_or_default();
    (head, bytes)
}
