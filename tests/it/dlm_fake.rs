//! A small fake of Data Lifecycle Manager's REST-JSON API (moto has none), on 127.0.0.1:
//! `POST /policies` (CreateLifecyclePolicy), `GET /policies?targetTags=K=V` (GetLifecyclePolicies),
//! `DELETE /policies/{id}/` (DeleteLifecyclePolicy). Errors as DLM sends them: a status, the
//! `x-amzn-ErrorType` header and a JSON body with `message`. It keeps the request bodies, so tests
//! read the policy exactly as the SDK sent it. Runs on its own thread; stops on Drop.

#![allow(dead_code)]

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State as AxState;
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

#[derive(Debug, Default)]
struct State {
    /// (policy id, the CreateLifecyclePolicy body).
    policies: Vec<(String, Value)>,
    next: u64,
    /// Refuse creates as DLM does when the role is missing.
    refuse_create: bool,
    /// Every request, `METHOD path?query`.
    requests: Vec<String>,
}

/// The running fake.
pub struct FakeDlm {
    state: Arc<Mutex<State>>,
    server: fakecloud::Server,
}

impl FakeDlm {
    /// Starts the fake on a free port of 127.0.0.1.
    pub fn start() -> FakeDlm {
        let state = Arc::new(Mutex::new(State::default()));
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(state.clone());
        FakeDlm {
            state,
            server: fakecloud::Builder::new("dlm-fake").start(app).unwrap(),
        }
    }

    /// Its base URL.
    pub fn url(&self) -> String {
        self.server.url()
    }

    /// The policies held: (id, the body the SDK sent).
    pub fn policies(&self) -> Vec<(String, Value)> {
        self.state.lock().unwrap().policies.clone()
    }

    /// Every request seen.
    pub fn requests(&self) -> Vec<String> {
        self.state.lock().unwrap().requests.clone()
    }

    /// Makes CreateLifecyclePolicy fail as it does for a missing role.
    pub fn refuse_create(&self, on: bool) {
        self.state.lock().unwrap().refuse_create = on;
    }
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        [
            ("content-type", "application/json"),
            ("x-amzn-ErrorType", code),
        ],
        json!({ "message": message, "Code": code }).to_string(),
    )
        .into_response()
}

fn ok(v: Value) -> Response {
    (
        StatusCode::OK,
        [("content-type", "application/json")],
        v.to_string(),
    )
        .into_response()
}

/// `targetTags` values of the query (`key=value`, percent-encoded, possibly repeated).
fn target_tags(query: &str) -> Vec<String> {
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .filter(|(k, _)| *k == "targetTags")
        .map(|(_, v)| decode(v))
        .collect()
}

fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let Ok(x) = u8::from_str_radix(&s[i + 1..i + 3], 16)
        {
            out.push(x);
            i += 3;
        } else {
            out.push(if b[i] == b'+' { b' ' } else { b[i] });
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

async fn handle(
    AxState(state): AxState<Arc<Mutex<State>>>,
    method: Method,
    uri: Uri,
    body: Bytes,
) -> Response {
    let path = uri.path().trim_end_matches('/').to_owned();
    let query = uri.query().unwrap_or_default().to_owned();
    let mut s = state.lock().unwrap();
    s.requests.push(format!("{method} {}?{query}", uri.path()));
    match (method, path.as_str()) {
        (Method::POST, "/policies") => {
            if s.refuse_create {
                return error(
                    StatusCode::BAD_REQUEST,
                    "InvalidRequestException",
                    "The provided execution role does not exist or cannot be assumed",
                );
            }
            let Ok(v) = serde_json::from_slice::<Value>(&body) else {
                return error(
                    StatusCode::BAD_REQUEST,
                    "InvalidRequestException",
                    "bad JSON",
                );
            };
            for field in ["ExecutionRoleArn", "Description", "PolicyDetails"] {
                if v.get(field).is_none() {
                    return error(
                        StatusCode::BAD_REQUEST,
                        "InvalidRequestException",
                        &format!("{field} is required"),
                    );
                }
            }
            s.next += 1;
            let id = format!("policy-{:017x}", s.next);
            s.policies.push((id.clone(), v));
            ok(json!({ "PolicyId": id }))
        }
        (Method::GET, "/policies") => {
            let wanted = target_tags(&query);
            let list: Vec<Value> = s
                .policies
                .iter()
                .filter(|(_, p)| {
                    let targets: Vec<String> = p["PolicyDetails"]["TargetTags"]
                        .as_array()
                        .map(|a| {
                            a.iter()
                                .map(|t| {
                                    format!(
                                        "{}={}",
                                        t["Key"].as_str().unwrap_or_default(),
                                        t["Value"].as_str().unwrap_or_default()
                                    )
                                })
                                .collect()
                        })
                        .unwrap_or_default();
                    wanted.iter().all(|w| targets.contains(w))
                })
                .map(|(id, p)| {
                    json!({
                        "PolicyId": id,
                        "Description": p["Description"],
                        "State": p.get("State").cloned().unwrap_or(json!("ENABLED")),
                        "Tags": p.get("Tags").cloned().unwrap_or(json!({})),
                        "PolicyType": p["PolicyDetails"]["PolicyType"],
                    })
                })
                .collect();
            ok(json!({ "Policies": list }))
        }
        (Method::DELETE, p) if p.starts_with("/policies/") => {
            let id = p.trim_start_matches("/policies/").to_owned();
            let before = s.policies.len();
            s.policies.retain(|(x, _)| *x != id);
            if s.policies.len() == before {
                error(
                    StatusCode::NOT_FOUND,
                    "ResourceNotFoundException",
                    &format!("policy {id} not found"),
                )
            } else {
                ok(json!({}))
            }
        }
        (m, p) => error(
            StatusCode::NOT_FOUND,
            "UnknownOperationException",
            &format!("{m} {p}"),
        ),
    }
}
