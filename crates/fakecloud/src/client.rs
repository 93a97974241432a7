//! A blocking one-request HTTP client for tests that talk to a fake directly (hyper's client
//! over one connection, on a runtime of its own). A dropped connection is an error, which is
//! how tests see `Fault::Drop`.

use std::io;

use axum::body::Body;
use axum::http::Request;
use hyper_util::rt::TokioIo;
use serde_json::Value;

/// An answer read by [`http_request`].
#[derive(Debug, Clone)]
pub struct HttpResponse {
    /// Status code.
    pub status: u16,
    /// Headers, names lower-case.
    pub headers: Vec<(String, String)>,
    /// The body as JSON (`Value::Null` if empty or not JSON).
    pub body: Value,
}

impl HttpResponse {
    /// A header's value (case-insensitive name).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Sends one request to `base` (`http://127.0.0.1:PORT/v1`) + `path`, with
/// `Authorization: Bearer <token>` when `token` is given and `body` as JSON.
///
/// # Errors
/// The connection fails or is closed before an answer (a dropped request). Must not be called
/// on a tokio runtime's thread (use `spawn_blocking`).
pub fn http_request(
    base: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> io::Result<HttpResponse> {
    let url = format!("{base}{path}");
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| io::Error::other("only http:// URLs"))?;
    let (host, target) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let mut req = Request::builder()
        .method(method)
        .uri(if target.is_empty() { "/" } else { target })
        .header("host", host)
        .header("accept", "application/json")
        .header("connection", "close");
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let req = match body {
        Some(b) => req
            .header("content-type", "application/json")
            .body(Body::from(b.to_string())),
        None => req.body(Body::empty()),
    }
    .map_err(io::Error::other)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let sock = tokio::net::TcpStream::connect(host).await?;
        let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(sock))
            .await
            .map_err(io::Error::other)?;
        let driver = tokio::spawn(conn);
        let answer = send.send_request(req).await.map_err(io::Error::other)?;
        let (head, body) = answer.into_parts();
        let bytes = axum::body::to_bytes(Body::new(body), usize::MAX)
            .await
            .map_err(io::Error::other)?;
        driver.abort();
        Ok(HttpResponse {
            status: head.status.as_u16(),
            headers: head
                .headers
                .iter()
                .map(|(k, v)| {
                    (
                        k.to_string(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect(),
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        })
    })
}
