//! A stateful fake of the Hetzner Cloud API (`/v1`), for flow and fault-injection tests that run
//! the real `bootstrap` binary against it (`--endpoint <fake.url()>`), and for `fakecloud hetzner`.
//!
//! Shapes follow the official OpenAPI document (`hetzner-cloud.json`); the crate's tests check
//! every kind of answer against that document's response schemas. It models:
//! - `ssh_keys`, `firewalls`, `servers`, `images` (one module each), `server_types` and
//!   `locations` (the fixed catalog servers are made from);
//! - actions (`GET /actions/{id}`, `GET /actions?id=1&id=2`, the per-resource variants): each is
//!   `running` until the kit's [`Pace`] says it is done, then `success` (or `error` when made to
//!   fail, its effect undone). An observation is a GET of the action or of a resource it names;
//! - pagination (`page`, `per_page` default 25 max 50, `meta.pagination`, `Link`), sorting
//!   (`sort=id|name|created[:asc|:desc]`), label selectors;
//! - auth (`Authorization: Bearer`, any non-empty token unless [`FakeConfig::token`], else 401
//!   `unauthorized`) and the rate limit (`RateLimit-*` headers, 429 `rate_limit_exceeded`).
//!
//! Faults, the rate limit and the request log are the kit's: [`FakeHetzner`] dereferences to its
//! [`Server`]. Ids come from separate ranges per resource type (ssh keys 100001.., firewalls
//! 200001.., servers 300001.., images 400001.. (system images 1..), actions 900001..), so that an
//! id of the wrong type is a 404 instead of silently another resource.

mod api;
mod catalog;
mod firewalls;
mod images;
mod labels;
mod servers;
mod ssh_keys;
mod state;

use std::net::SocketAddr;
use std::ops::Deref;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State as Shared;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

pub use labels::{
    Labels, SelectorTerm, md5_fingerprint, parse_selector, rfc3339, selector_matches, valid_cidr,
    valid_hostname, validate_label,
};

use crate::clock::Pace;
use crate::ratelimit::{HeaderStyle, RateLimit};
use crate::server::{Builder, Server};
use state::State;

/// Largest `user_data` the API accepts, in bytes.
pub const USER_DATA_LIMIT: usize = 32 * 1024;

/// How the fake behaves; `FakeConfig::default()` is the documented API with fast actions.
#[derive(Clone, Debug)]
pub struct FakeConfig {
    /// How long actions stay `running`.
    pub pace: Pace,
    /// Size of the rate-limit bucket (`RateLimit-Limit`).
    pub rate_limit: u32,
    /// Tokens added back per second (Hetzner: 1 per second for 3600/h). 0 disables refill.
    pub rate_refill_per_sec: f64,
    /// If set, only this bearer token is accepted; otherwise any non-empty token is.
    pub token: Option<String>,
    /// Largest accepted `user_data`, in bytes.
    pub user_data_limit: usize,
}

impl Default for FakeConfig {
    fn default() -> Self {
        FakeConfig {
            pace: Pace::default(),
            rate_limit: 3600,
            rate_refill_per_sec: 1.0,
            token: None,
            user_data_limit: USER_DATA_LIMIT,
        }
    }
}

/// A running fake; stops (and closes every connection) when dropped. Dereferences to the kit's
/// [`Server`] for faults, the rate limit and the request log.
pub struct FakeHetzner {
    server: Server,
    state: Arc<Mutex<State>>,
}

impl Deref for FakeHetzner {
    type Target = Server;

    fn deref(&self) -> &Server {
        &self.server
    }
}

/// The Hetzner error body for an injected fault or a rate limit.
fn error_answer(status: StatusCode, code: &str) -> Response {
    let message = match code {
        "rate_limit_exceeded" => "limit of requests per hour reached".to_owned(),
        _ => format!("injected fault: {code}"),
    };
    api::error(status.as_u16(), code, &message).into_response()
}

/// Every request: the state answers it under its lock.
async fn handle(
    Shared(state): Shared<Arc<Mutex<State>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let req = api::Req::new(method, &uri, headers, body);
    let reply = lock(&state).handle(&req);
    reply.unwrap_or_else(|e| e).into_response()
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    // A test that panicked while holding the lock must not take the fake down with it.
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

fn pairs(l: &[(&str, &str)]) -> Labels {
    l.iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

impl FakeHetzner {
    /// Starts a fake on 127.0.0.1 on a free port, on its own thread and runtime.
    ///
    /// # Panics
    /// If no loopback port can be bound: a test cannot run without one, and a panic is how a
    /// test fails ([`FakeHetzner::start_on`] returns the error instead).
    #[allow(clippy::expect_used)]
    pub fn start(config: FakeConfig) -> FakeHetzner {
        let any = SocketAddr::from(([127, 0, 0, 1], 0));
        FakeHetzner::start_on(any, config).expect("bind a port on 127.0.0.1")
    }

    /// Starts a fake with the default configuration.
    pub fn start_default() -> FakeHetzner {
        FakeHetzner::start(FakeConfig::default())
    }

    /// Starts a fake on `addr` (a loopback address; port 0 picks a free one).
    ///
    /// # Errors
    /// A non-loopback address, or the address cannot be bound.
    pub fn start_on(addr: SocketAddr, config: FakeConfig) -> std::io::Result<FakeHetzner> {
        let rate = RateLimit::new(
            HeaderStyle::Hetzner,
            config.rate_limit,
            config.rate_refill_per_sec,
        );
        let state = Arc::new(Mutex::new(State::new(config)));
        let app = Router::new().fallback(handle).with_state(state.clone());
        let server = Builder::new("hetzner-fake")
            .listen(addr)
            .base_path("/v1")
            .errors(error_answer)
            .rate_limit(rate, "rate_limit_exceeded")
            .start(app)?;
        Ok(FakeHetzner { server, state })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    // ----- inspection -----

    /// Servers as `GET /servers/{id}` renders them (the `server` object), by id.
    pub fn servers(&self) -> Vec<Value> {
        let st = self.state();
        st.servers.values().map(|s| st.server_json(s)).collect()
    }

    /// Firewalls as `GET /firewalls/{id}` renders them, by id.
    pub fn firewalls(&self) -> Vec<Value> {
        let st = self.state();
        st.firewalls.values().map(|f| st.firewall_json(f)).collect()
    }

    /// SSH keys as `GET /ssh_keys/{id}` renders them, by id.
    pub fn ssh_keys(&self) -> Vec<Value> {
        self.state()
            .ssh_keys
            .values()
            .map(state::SshKey::json)
            .collect()
    }

    /// Images of type `snapshot` and `backup` (not the system images), by id.
    pub fn snapshots(&self) -> Vec<Value> {
        let st = self.state();
        st.images
            .values()
            .filter(|i| i.kind != "system")
            .map(state::Image::json)
            .collect()
    }

    /// Every action, by id.
    pub fn actions(&self) -> Vec<Value> {
        self.state()
            .actions
            .values()
            .map(state::Action::json)
            .collect()
    }

    /// The server named `name`, rendered, if it exists.
    pub fn server_by_name(&self, name: &str) -> Option<Value> {
        let st = self.state();
        let s = st.servers.values().find(|s| s.name == name)?;
        Some(st.server_json(s))
    }

    /// The `user_data` a server was created with.
    pub fn server_user_data(&self, id: u64) -> Option<String> {
        self.state().servers.get(&id)?.user_data.clone()
    }

    /// How many servers, firewalls and SSH keys carry the label `k=v` (images are not counted:
    /// snapshots are kept on purpose; see [`FakeHetzner::images_labelled`]).
    pub fn resources_labelled(&self, k: &str, v: &str) -> usize {
        let st = self.state();
        let has = |l: &Labels| l.get(k).is_some_and(|x| x == v);
        st.servers.values().filter(|s| has(&s.labels)).count()
            + st.firewalls.values().filter(|f| has(&f.labels)).count()
            + st.ssh_keys.values().filter(|s| has(&s.labels)).count()
    }

    /// How many snapshot/backup images carry the label `k=v`.
    pub fn images_labelled(&self, k: &str, v: &str) -> usize {
        let st = self.state();
        st.images
            .values()
            .filter(|i| i.labels.get(k).is_some_and(|x| x == v))
            .count()
    }

    /// How many servers, firewalls, SSH keys and snapshot images exist at all.
    pub fn resource_count(&self) -> usize {
        let st = self.state();
        st.servers.len()
            + st.firewalls.len()
            + st.ssh_keys.len()
            + st.images.values().filter(|i| i.kind != "system").count()
    }

    // ----- seeding (no request is logged) -----

    /// Adds an SSH key directly; returns its id.
    ///
    /// # Panics
    /// On a public key that is not an OpenSSH key line: the test's fixture is broken, and a
    /// panic is how a test fails.
    #[allow(clippy::expect_used)]
    pub fn insert_ssh_key(&self, name: &str, public_key: &str, labels: &[(&str, &str)]) -> u64 {
        let fingerprint = md5_fingerprint(public_key).expect("valid OpenSSH public key");
        self.state()
            .insert_ssh_key(name.to_owned(), fingerprint, public_key, pairs(labels))
    }

    /// Adds a running server directly (type cx22, image ubuntu-24.04, location fsn1).
    pub fn insert_server(&self, name: &str, labels: &[(&str, &str)]) -> u64 {
        let mut st = self.state();
        let image = st
            .images
            .values()
            .find(|i| i.name.as_deref() == Some("ubuntu-24.04"))
            .map_or(Value::Null, state::Image::json);
        let id = st.new_server(name, "cx22", image, "fsn1", pairs(labels));
        if let Some(s) = st.servers.get_mut(&id) {
            s.status = "running";
        }
        id
    }

    /// Sets a server's `status` directly (e.g. `"off"`, `"running"`).
    pub fn set_server_status(&self, id: u64, status: &'static str) {
        if let Some(s) = self.state().servers.get_mut(&id) {
            s.status = status;
        }
    }

    /// Adds a firewall directly, applied (status `applied`) to the given servers.
    pub fn insert_firewall(&self, name: &str, labels: &[(&str, &str)], servers: &[u64]) -> u64 {
        let mut st = self.state();
        let id = st.insert_firewall(name, pairs(labels), vec![]);
        for s in servers {
            st.attach_firewall(id, *s, true);
        }
        id
    }

    /// Adds a snapshot image directly; `created_unix` (seconds) lets retention tests place it in
    /// time. Returns its id.
    pub fn insert_snapshot(
        &self,
        description: &str,
        labels: &[(&str, &str)],
        created_unix: u64,
    ) -> u64 {
        self.state()
            .insert_snapshot(description, pairs(labels), created_unix)
    }

    /// Sets an image's status (`available`, `creating`, `unavailable`).
    pub fn set_image_status(&self, id: u64, status: &'static str) {
        if let Some(i) = self.state().images.get_mut(&id) {
            i.status = status;
        }
    }

    // ----- faults and actions -----

    /// Removes every pending fault rule and pending action failure.
    pub fn clear_faults(&self) {
        self.server.clear_faults();
        self.state().action_failures.clear();
    }

    /// Makes the next action with this `command` (e.g. `create_server`, `apply_firewall`,
    /// `delete_server`, `create_image`) end in `error` with `{code, message}`.
    pub fn fail_next_action(&self, command: &str, code: &str, message: &str) {
        self.state().action_failures.push((
            command.to_owned(),
            code.to_owned(),
            message.to_owned(),
        ));
    }

    /// Makes the (still running) action `id` end in `error` with `{code, message}`.
    pub fn fail_action(&self, id: u64, code: &str, message: &str) {
        if let Some(a) = self.state().actions.get_mut(&id) {
            a.fail_with = Some((code.to_owned(), message.to_owned()));
        }
    }

    /// Changes how long new actions stay `running`.
    pub fn set_pace(&self, pace: Pace) {
        self.state().config.pace = pace;
    }

    /// Finishes every running action now (with its effects).
    pub fn finish_all_actions(&self) {
        let mut st = self.state();
        let running: Vec<u64> = st
            .actions
            .values()
            .filter(|a| a.status == "running")
            .map(|a| a.id)
            .collect();
        for id in running {
            st.finish_action(id);
        }
    }
}
