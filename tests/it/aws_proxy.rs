//! A recording, fault-injecting HTTP proxy in front of moto, for what moto cannot show.
//!
//! - It logs every EC2 call (the `Action` and all form parameters of the query request, and the
//!   answer's status and error code), so tests count calls and read `ClientToken`.
//! - Rules make an action fail with an EC2 error document (`<Response><Errors><Error><Code>`),
//!   a number of times or for good, before moto sees it, or after moto did it (the answer lost).
//! - It plays the parts of EC2 that moto leaves out: instances `pending` for the first describes
//!   after launch and `shutting-down` before `terminated`; `DependencyViolation` for a security
//!   group still attached; and `ClientToken` idempotency of `RunInstances` (a repeated token gets
//!   the first answer again, no second instance).
//!
//! It runs on the fake-cloud kit's server (faults are the kit's [`Fault`]s, picked by `Action`;
//! the calls are read from the kit's request log) and stops on Drop.

#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crate::support::form_decode;
use axum::body::Bytes;
use axum::extract::State as AxState;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
pub use fakecloud::Fault;
use serde_json::Value;

/// One EC2 call as the proxy saw it.
#[derive(Debug, Clone)]
pub struct Call {
    /// `RunInstances`, ...
    pub action: String,
    /// The form parameters (`ClientToken`, `Filter.1.Name`, ...), percent-decoded.
    pub params: BTreeMap<String, String>,
    /// The status the client got.
    pub status: u16,
    /// The error code the client got, if any.
    pub code: Option<String>,
}

#[derive(Debug, Default)]
struct State {
    upstream: String,
    pending_describes: u32,
    shutting_down_describes: u32,
    sg_in_use: u32,
    launches: HashMap<String, (u16, Bytes)>,
}

/// The running proxy.
pub struct Ec2Proxy {
    state: Arc<Mutex<State>>,
    server: fakecloud::Server,
}

impl Ec2Proxy {
    /// A proxy on a free port of 127.0.0.1 forwarding to `upstream` (moto's URL).
    pub fn start(upstream: &str) -> Ec2Proxy {
        // reqwest is built without a crypto provider; the binary installs this one too.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let state = Arc::new(Mutex::new(State {
            upstream: upstream.trim_end_matches('/').to_owned(),
            ..State::default()
        }));
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        let app = axum::Router::new()
            .fallback(handle)
            .with_state((state.clone(), http));
        let server = fakecloud::Builder::new("ec2-proxy")
            .errors(error_response)
            .start(app)
            .unwrap();
        Ec2Proxy { state, server }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The proxy's URL, to give the binary as its EC2 endpoint.
    pub fn url(&self) -> String {
        self.server.url()
    }

    /// Makes `action` fail with `fault` (`Fault::Status`: before moto sees it;
    /// `Fault::StatusAfter`: after moto did it, the answer lost), `times` times (`None`: for good).
    pub fn fail(&self, action: &str, fault: Fault, times: Option<u32>) {
        let action = action.to_owned();
        self.server.fail_when(
            move |r| parse_form(r.body).get("Action") == Some(&action),
            fault,
            times.map_or(usize::MAX, |t| t as usize),
        );
    }

    /// Removes every rule.
    pub fn clear_faults(&self) {
        self.server.clear_faults();
    }

    /// The next `n` DescribeInstances answers show running instances as `pending`.
    pub fn pending_for(&self, n: u32) {
        self.state().pending_describes = n;
    }

    /// The next `n` DescribeInstances answers show terminated instances as `shutting-down`.
    pub fn shutting_down_for(&self, n: u32) {
        self.state().shutting_down_describes = n;
    }

    /// The next `n` DeleteSecurityGroup calls answer `DependencyViolation`, as EC2 does while
    /// an instance that is not yet `terminated` still has the group.
    pub fn security_group_in_use_for(&self, n: u32) {
        self.state().sg_in_use = n;
    }

    /// Every call so far.
    pub fn calls(&self) -> Vec<Call> {
        self.server
            .requests()
            .into_iter()
            .map(|r| {
                let params: BTreeMap<String, String> = match r.body {
                    Some(Value::Object(m)) => m
                        .into_iter()
                        .map(|(k, v)| (k, v.as_str().unwrap_or_default().to_owned()))
                        .collect(),
                    _ => BTreeMap::new(),
                };
                let text = r.response.as_ref().and_then(Value::as_str).unwrap_or("");
                let code = (r.status >= 400).then(|| error_code(text));
                Call {
                    action: params.get("Action").cloned().unwrap_or_default(),
                    params,
                    status: r.status,
                    code,
                }
            })
            .collect()
    }

    /// Forgets the calls so far.
    pub fn clear_calls(&self) {
        self.server.clear_log();
    }

    /// The actions called so far, in order.
    pub fn actions(&self) -> Vec<String> {
        self.calls().into_iter().map(|c| c.action).collect()
    }

    /// Calls of `action` so far.
    pub fn calls_of(&self, action: &str) -> Vec<Call> {
        self.calls()
            .into_iter()
            .filter(|c| c.action == action)
            .collect()
    }
}

/// `application/x-www-form-urlencoded` into pairs.
fn parse_form(body: &[u8]) -> BTreeMap<String, String> {
    String::from_utf8_lossy(body)
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (form_decode(k), form_decode(v))
        })
        .collect()
}

/// The `<Code>` of an EC2 error document.
fn error_code(xml: &str) -> String {
    xml.split("<Code>")
        .nth(1)
        .and_then(|r| r.split("</Code>").next())
        .unwrap_or("?")
        .to_owned()
}

/// An EC2 error document.
fn error_response(status: StatusCode, code: &str) -> Response {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>{code}</Code><Message>injected by the test proxy</Message></Error></Errors><RequestID>proxy</RequestID></Response>"
    );
    (status, [("content-type", "text/xml;charset=UTF-8")], body).into_response()
}

type Shared = (Arc<Mutex<State>>, reqwest::Client);

async fn handle(
    AxState((state, http)): AxState<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let params = parse_form(&body);
    let action = params.get("Action").cloned().unwrap_or_default();
    let lock = || {
        state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    };

    // Decide before forwarding (the kit has applied any fault that answers before moto).
    let (in_use, upstream, replay) = {
        let mut s = lock();
        let in_use = action == "DeleteSecurityGroup" && s.sg_in_use > 0;
        if in_use {
            s.sg_in_use -= 1;
        }
        let replay = if action == "RunInstances" {
            params
                .get("ClientToken")
                .and_then(|t| s.launches.get(t).cloned())
        } else {
            None
        };
        (in_use, s.upstream.clone(), replay)
    };
    if in_use {
        return error_response(StatusCode::BAD_REQUEST, "DependencyViolation");
    }
    let (status, mut text) = if let Some((status, body)) = replay {
        (status, String::from_utf8_lossy(&body).into_owned())
    } else {
        let mut req = http.request(method, format!("{upstream}{uri}"));
        for (k, v) in &headers {
            if k != "host" && k != "content-length" {
                req = req.header(k, v);
            }
        }
        match req.body(body.clone()).send().await {
            Ok(r) => {
                let status = r.status().as_u16();
                (status, r.text().await.unwrap_or_default())
            }
            Err(_) => return error_response(StatusCode::BAD_GATEWAY, "ProxyUpstreamError"),
        }
    };
    if status == 200
        && action == "RunInstances"
        && let Some(t) = params.get("ClientToken")
    {
        lock()
            .launches
            .entry(t.clone())
            .or_insert_with(|| (status, Bytes::from(text.clone())));
    }
    if status == 200 && action == "DescribeInstances" {
        let mut s = lock();
        let running = "<instanceState><code>16</code><name>running</name></instanceState>";
        if s.pending_describes > 0 && text.contains(running) {
            s.pending_describes -= 1;
            text = text.replace(
                running,
                "<instanceState><code>0</code><name>pending</name></instanceState>",
            );
        }
        let terminated = "<instanceState><code>48</code><name>terminated</name></instanceState>";
        if s.shutting_down_describes > 0 && text.contains(terminated) {
            s.shutting_down_describes -= 1;
            text = text.replace(
                terminated,
                "<instanceState><code>32</code><name>shutting-down</name></instanceState>",
            );
        }
    }
    (
        StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY),
        [("content-type", "text/xml;charset=UTF-8")],
        text,
    )
        .into_response()
}

#[test]
fn form_bodies_decode() {
    let p = parse_form(
        b"Action=RunInstances&ClientToken=bootstrap-ab&UserData=IyFjb25m%2Bg%3D%3D&X=a+b",
    );
    assert_eq!(p["Action"], "RunInstances");
    assert_eq!(p["UserData"], "IyFjb25m+g==");
    assert_eq!(p["X"], "a b");
}
