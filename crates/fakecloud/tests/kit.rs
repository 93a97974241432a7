//! The kit around a router of its own: every fault, the rate-limit header styles, the request
//! log, loopback only, and a stop that closes every connection.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read as _, Write as _};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::post;
use fakecloud::client::http_request;
use fakecloud::ratelimit::{HeaderStyle, RateLimit};
use fakecloud::{Builder, Fault, Server};
use serde_json::json;

/// `POST /api/things` counts and answers 201 `{"n": count}`; errors are `{"code": code}`.
fn start(rate: RateLimit) -> (Server, Arc<AtomicU32>) {
    let made = Arc::new(AtomicU32::new(0));
    let counter = made.clone();
    let app = Router::new().route(
        "/api/things",
        post(move || async move {
            let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
            (StatusCode::CREATED, axum::Json(json!({ "n": n })))
        }),
    );
    let server = Builder::new("kit-test")
        .base_path("/api")
        .errors(|status, code| (status, axum::Json(json!({ "code": code }))).into_response())
        .rate_limit(rate, "too_many_requests")
        .start(app)
        .unwrap();
    (server, made)
}

fn post_thing(s: &Server) -> std::io::Result<fakecloud::client::HttpResponse> {
    http_request(&s.url(), "POST", "/things", None, Some(&json!({"x": 1})))
}

#[test]
fn faults_before_and_after_the_work() {
    let (s, made) = start(RateLimit::new(HeaderStyle::Hetzner, 100, 1.0));
    s.fail_request(1, Fault::Status(503, "unavailable"));
    let r = post_thing(&s).unwrap();
    assert_eq!(
        (r.status, r.body["code"].as_str()),
        (503, Some("unavailable"))
    );
    assert_eq!(made.load(Ordering::SeqCst), 0, "not done");
    assert!(r.header("RateLimit-Limit").is_some());

    s.fail_matching(
        "post",
        "/api/things",
        Fault::StatusAfter(500, "server_error"),
        1,
    );
    assert_eq!(post_thing(&s).unwrap().status, 500);
    assert_eq!(made.load(Ordering::SeqCst), 1, "done, answer replaced");

    s.fail_when(|r| r.body.starts_with(b"{\"x\""), Fault::Drop, 1);
    assert!(post_thing(&s).is_err());
    assert_eq!(made.load(Ordering::SeqCst), 1);

    s.fail_matching("*", "/things", Fault::DropAfter, 1);
    assert!(post_thing(&s).is_err());
    assert_eq!(made.load(Ordering::SeqCst), 2, "done, connection dropped");

    s.fail_matching("GET", "/things", Fault::Drop, usize::MAX);
    assert_eq!(
        post_thing(&s).unwrap().body,
        json!({"n": 3}),
        "other methods pass"
    );

    let log = s.requests();
    let statuses: Vec<u16> = log.iter().map(|l| l.status).collect();
    assert_eq!(statuses, [503, 500, 0, 0, 201]);
    assert_eq!(log[2].fault, Some(Fault::Drop));
    assert_eq!(log[2].response, None);
    assert_eq!(
        log[3].response,
        Some(json!({"n": 2})),
        "what would have been sent"
    );
    assert_eq!(log[4].body, Some(json!({"x": 1})));
    assert_eq!(log[4].path, "/api/things");
    assert_eq!(s.request_count(), 5);
}

#[test]
fn rate_limits_in_three_styles() {
    let (s, _) = start(RateLimit::new(HeaderStyle::DigitalOcean, 1, 0.0));
    let ok = post_thing(&s).unwrap();
    assert_eq!(ok.header("ratelimit-remaining"), Some("0"));
    assert_eq!(ok.header("retry-after"), None);
    let limited = post_thing(&s).unwrap();
    assert_eq!(
        (limited.status, limited.body["code"].as_str()),
        (429, Some("too_many_requests"))
    );
    assert_eq!(limited.header("retry-after"), Some("3600"));

    let (s, made) = start(RateLimit::new(HeaderStyle::Hetzner, 100, 1.0));
    s.fail_request(1, Fault::RateLimited { headers: false });
    s.fail_request(2, Fault::RateLimited { headers: true });
    let bare = post_thing(&s).unwrap();
    assert_eq!((bare.status, bare.header("RateLimit-Reset")), (429, None));
    let told = post_thing(&s).unwrap();
    assert_eq!(told.status, 429);
    assert!(told.header("RateLimit-Reset").is_some());
    assert_eq!(made.load(Ordering::SeqCst), 0);

    let (s, _) = start(RateLimit::new(HeaderStyle::None, 1, 0.0));
    assert!(
        post_thing(&s)
            .unwrap()
            .headers
            .iter()
            .all(|(k, _)| !k.contains("ratelimit"))
    );
    let limited = post_thing(&s).unwrap();
    assert_eq!(limited.status, 429);
    assert!(
        limited
            .headers
            .iter()
            .all(|(k, _)| !k.contains("ratelimit") && k != "retry-after")
    );
}

#[test]
fn delay_holds_the_answer_but_counts_the_arrival() {
    let (s, made) = start(RateLimit::new(HeaderStyle::None, 100, 1.0));
    s.fail_request(1, Fault::Delay(Duration::from_millis(400)));
    let url = s.url();
    let t = std::thread::spawn(move || http_request(&url, "POST", "/things", None, None));
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!((s.request_count(), s.requests().len()), (1, 0));
    assert_eq!(t.join().unwrap().unwrap().status, 201);
    assert_eq!(
        s.request_log(),
        [("POST".into(), "/api/things".into(), 201)]
    );

    // A client that goes away while the answer is held does not undo the work.
    s.fail_request(2, Fault::Delay(Duration::from_millis(300)));
    let mut conn = std::net::TcpStream::connect(s.addr()).unwrap();
    conn.write_all(b"POST /api/things HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
        .unwrap();
    while s.request_count() < 2 {
        std::thread::sleep(Duration::from_millis(10));
    }
    drop(conn);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(made.load(Ordering::SeqCst), 2);
    assert_eq!(s.requests()[1].status, 201);
}

#[test]
fn only_loopback_and_stop_closes_every_connection() {
    let app = Router::new();
    let err = Builder::new("x")
        .listen(SocketAddr::from(([0, 0, 0, 0], 0)))
        .start(app.clone())
        .err()
        .unwrap();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);

    let mut s = Builder::new("x").start(app).unwrap();
    let mut conn = std::net::TcpStream::connect(s.addr()).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    conn.write_all(b"GET /nothing HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut buf = [0u8; 4096];
    let n = conn.read(&mut buf).unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 404"));
    // The keep-alive connection is open; stopping closes it.
    s.stop();
    assert_eq!(conn.read(&mut buf).unwrap_or(0), 0);
    assert!(std::net::TcpStream::connect(s.addr()).is_err());
}

#[test]
fn form_bodies_and_text_answers_are_logged() {
    let app = Router::new().fallback(|| async { "ok" });
    let s = Builder::new("x").start(app).unwrap();
    let mut conn = std::net::TcpStream::connect(s.addr()).unwrap();
    let body = "Action=RunInstances&X=a+b";
    let req = format!(
        "POST / HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    conn.write_all(req.as_bytes()).unwrap();
    let mut out = String::new();
    conn.read_to_string(&mut out).unwrap();
    assert_eq!(
        s.requests()[0].body,
        Some(json!({"Action": "RunInstances", "X": "a b"}))
    );
    assert_eq!(
        s.requests()[0].response,
        Some(json!("ok")),
        "text kept as a string"
    );
    s.clear_log();
    assert!(s.requests().is_empty());
    assert_eq!(s.request_count(), 1);
}

#[test]
fn latency_holds_every_answer_and_the_log_times_it() {
    let (s, made) = start(RateLimit::new(HeaderStyle::None, 100, 1.0));
    s.set_latency(Duration::from_millis(300));
    let t0 = std::time::Instant::now();
    let url = s.url();
    let t = std::thread::spawn(move || http_request(&url, "POST", "/things", None, None));
    // Half the latency passes before the work: nothing is made yet.
    std::thread::sleep(Duration::from_millis(80));
    assert_eq!(
        made.load(Ordering::SeqCst),
        0,
        "not done before half the latency"
    );
    assert_eq!(t.join().unwrap().unwrap().status, 201);
    let took = t0.elapsed();
    assert!(took >= Duration::from_millis(300), "{took:?}");
    assert!(took < Duration::from_secs(3), "{took:?}");
    let logged = &s.requests()[0];
    let held = logged.answered - logged.arrived;
    assert!(
        held >= Duration::from_millis(300) && held <= took,
        "{held:?} of {took:?}"
    );

    // Back to none: the next call is quick, and arrives after the first one's answer.
    s.set_latency(Duration::ZERO);
    let t1 = std::time::Instant::now();
    assert_eq!(post_thing(&s).unwrap().status, 201);
    assert!(
        t1.elapsed() < Duration::from_millis(300),
        "{:?}",
        t1.elapsed()
    );
    let log = s.requests();
    assert!(log[1].arrived >= log[0].answered);
}
