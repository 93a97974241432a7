//! A stateful fake of the Hetzner Cloud API (`/v1`), for flow and fault-injection tests that run
//! the real `bootstrap` binary against it (`--endpoint <fake.url()>`).
//!
//! Shapes follow the official OpenAPI document (`hetzner-cloud.json` in the specs dir); the
//! self-tests at the bottom validate response bodies against that document's response schemas.
//!
//! What it models:
//! - `ssh_keys`: list (filters `name`, `fingerprint`, `label_selector`), create (MD5 colon-hex
//!   fingerprint of the key blob, `uniqueness_error` on duplicate name or fingerprint), get,
//!   update, delete (204).
//! - `firewalls`: list (`name`, `label_selector`), create with `rules` and `apply_to`
//!   (`apply_firewall` actions), get, update, delete (204; 422 `resource_in_use` while applied),
//!   `actions/apply_to_resources`, `actions/remove_from_resources`, `actions/set_rules`.
//! - `servers`: list (`name`, `label_selector`, `status`), create (status `initializing` until
//!   its `create_server` action finishes; `user_data` over 32 KiB is 422 `invalid_input`;
//!   firewalls from the body are applied), get, update, delete (200 `{action}`; the server is
//!   gone when `delete_server` finishes), `actions/create_image`, `actions/enable_backup`,
//!   `actions/disable_backup`, `actions/poweron|poweroff|shutdown|reboot`.
//! - `images`: list (`type`, `status`, `name`, `label_selector`, `bound_to`), get, update,
//!   delete (204). A few system images (`ubuntu-24.04`, `debian-12`, ...) exist from the start.
//! - `server_types`, `locations`: list (`name`), the fixed catalog the servers are made from.
//! - `actions`: `GET /actions/{id}`, `GET /actions?id=1&id=2`, and the per-resource variants.
//!   An action is `running` for `action_polls` observations (default 2, progress rising), then
//!   finishes (`success`, or `error` when made to fail). An observation is a GET of the action
//!   (through any action endpoint) or a GET by id of a resource the action names. With
//!   `action_polls == 0` actions are finished when created.
//! - Pagination (`page`, `per_page` default 25 max 50, `meta.pagination`, `Link` header), sorting
//!   (`sort=id|name|created[:asc|:desc]`), label selectors (`k=v`, `k==v`, `k!=v`, `k`, `!k`,
//!   `k in (a,b)`, `k notin (a,b)`).
//! - Auth: `Authorization: Bearer <token>` (any non-empty token unless `FakeConfig::token`), else
//!   401 `unauthorized`. Rate limiting: a token bucket with `RateLimit-Limit`,
//!   `RateLimit-Remaining`, `RateLimit-Reset` on every response and 429 `rate_limit_exceeded`.
//! - Fault injection: [`FakeHetzner::fail_request`], [`FakeHetzner::fail_matching`],
//!   [`FakeHetzner::fail_next_action`], [`FakeHetzner::fail_action`].
//!
//! The server is a small HTTP/1.1 implementation over tokio (keep-alive, `Content-Length` and
//! chunked bodies), which gives full control over dropped connections. It runs on its own
//! thread with its own runtime, so it works from sync and async tests alike, and stops on Drop.
//!
//! Ids are drawn from separate ranges per resource type (ssh keys 100001.., firewalls 200001..,
//! servers 300001.., images 400001.. (system images 1..), actions 900001..), so that an id of the
//! wrong type gives 404 instead of silently hitting another resource.

#![allow(dead_code)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::io::{Read as _, Write as _};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value, json};

use crate::support::form_decode as url_decode;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

/// Labels as the API carries them.
pub type Labels = BTreeMap<String, String>;

/// Largest `user_data` the API accepts, in bytes.
pub const USER_DATA_LIMIT: usize = 32 * 1024;

/// How the fake behaves; `FakeConfig::default()` is the documented API with fast actions.
#[derive(Clone, Debug)]
pub struct FakeConfig {
    /// Observations for which an action stays `running` (0: actions finish when created).
    pub action_polls: u32,
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
            action_polls: 2,
            rate_limit: 3600,
            rate_refill_per_sec: 1.0,
            token: None,
            user_data_limit: USER_DATA_LIMIT,
        }
    }
}

/// What happens to a request picked by a fault rule.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Fault {
    /// Answer 500 `server_error` without doing the work.
    Status500,
    /// Do the work, then answer 500 `server_error`.
    Status500After,
    /// Read the request, then close the connection without answering and without doing the work.
    Drop,
    /// Do the work, then close the connection without answering.
    DropAfter,
    /// Answer this status with this error code without doing the work (e.g. `503, "unavailable"`,
    /// `409, "conflict"`, `423, "locked"`, `429, "rate_limit_exceeded"`).
    Status(u16, &'static str),
    /// Wait this long, then handle the request normally (for client timeouts).
    Delay(Duration),
}

/// One request as the fake saw it.
#[derive(Clone, Debug)]
pub struct LoggedRequest {
    /// 1-based arrival number (the `n` of [`FakeHetzner::fail_request`]).
    pub n: u64,
    /// HTTP method.
    pub method: String,
    /// Path and query as sent (`/v1/servers?name=web1`).
    pub path: String,
    /// Status answered; 0 when the connection was dropped instead.
    pub status: u16,
    /// The fault applied to this request, if any.
    pub fault: Option<Fault>,
    /// The JSON request body, if any.
    pub body: Option<Value>,
    /// The JSON response body, if any (also for `DropAfter`: what would have been sent).
    pub response: Option<Value>,
}

/// A running fake; stops (and closes every connection) when dropped.
pub struct FakeHetzner {
    addr: std::net::SocketAddr,
    shared: Arc<Shared>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FakeHetzner {
    /// Starts a fake on 127.0.0.1 on a free port, on its own thread and tokio runtime.
    pub fn start(config: FakeConfig) -> FakeHetzner {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        listener
            .set_nonblocking(true)
            .expect("nonblocking listener");
        let addr = listener.local_addr().expect("local addr");
        let shared = Arc::new(Shared {
            state: Mutex::new(State::new(config)),
        });
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let for_thread = shared.clone();
        let thread = std::thread::Builder::new()
            .name(format!("hetzner-fake-{}", addr.port()))
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("fake runtime");
                rt.block_on(async move {
                    let listener =
                        tokio::net::TcpListener::from_std(listener).expect("tokio listener");
                    let mut rx = rx;
                    loop {
                        tokio::select! {
                            _ = &mut rx => break,
                            accepted = listener.accept() => {
                                if let Ok((sock, _)) = accepted {
                                    tokio::spawn(serve_connection(sock, for_thread.clone()));
                                }
                            }
                        }
                    }
                });
                rt.shutdown_timeout(Duration::from_millis(200));
            })
            .expect("spawn fake thread");
        FakeHetzner {
            addr,
            shared,
            stop: Some(tx),
            thread: Some(thread),
        }
    }

    /// Starts a fake with the default configuration.
    pub fn start_default() -> FakeHetzner {
        Self::start(FakeConfig::default())
    }

    /// The API base URL, `http://127.0.0.1:PORT/v1`.
    pub fn url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// The listening address.
    pub fn addr(&self) -> std::net::SocketAddr {
        self.addr
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.shared.lock()
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
        let st = self.state();
        st.ssh_keys.values().map(ssh_key_json).collect()
    }

    /// Images of type `snapshot` and `backup` (not the system images), by id.
    pub fn snapshots(&self) -> Vec<Value> {
        let st = self.state();
        st.images
            .values()
            .filter(|i| i.kind != "system")
            .map(image_json)
            .collect()
    }

    /// Every action, by id.
    pub fn actions(&self) -> Vec<Value> {
        let st = self.state();
        st.actions.values().map(action_json).collect()
    }

    /// The server named `name`, rendered, if it exists.
    pub fn server_by_name(&self, name: &str) -> Option<Value> {
        let st = self.state();
        st.servers
            .values()
            .find(|s| s.name == name)
            .map(|s| st.server_json(s))
    }

    /// The `user_data` a server was created with.
    pub fn server_user_data(&self, id: u64) -> Option<String> {
        self.state()
            .servers
            .get(&id)
            .and_then(|s| s.user_data.clone())
    }

    /// `(method, path_and_query, status)` of every request, in arrival order (status 0 = dropped).
    pub fn request_log(&self) -> Vec<(String, String, u16)> {
        self.state()
            .log
            .iter()
            .map(|r| (r.method.clone(), r.path.clone(), r.status))
            .collect()
    }

    /// Every request with bodies and the fault applied.
    pub fn requests(&self) -> Vec<LoggedRequest> {
        self.state().log.clone()
    }

    /// How many requests arrived so far.
    pub fn request_count(&self) -> u64 {
        self.state().request_count
    }

    /// How many servers, firewalls and SSH keys carry the label `k=v` (images are not counted:
    /// snapshots are kept on purpose; see [`FakeHetzner::images_labelled`]).
    pub fn resources_labelled(&self, k: &str, v: &str) -> usize {
        let st = self.state();
        let has = |l: &Labels| l.get(k).map(|x| x == v).unwrap_or(false);
        st.servers.values().filter(|s| has(&s.labels)).count()
            + st.firewalls.values().filter(|f| has(&f.labels)).count()
            + st.ssh_keys.values().filter(|s| has(&s.labels)).count()
    }

    /// How many snapshot/backup images carry the label `k=v`.
    pub fn images_labelled(&self, k: &str, v: &str) -> usize {
        let st = self.state();
        st.images
            .values()
            .filter(|i| i.labels.get(k).map(|x| x == v).unwrap_or(false))
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

    // ----- seeding -----

    /// Adds an SSH key directly (no request is logged); returns its id. Panics on a bad key.
    pub fn insert_ssh_key(&self, name: &str, public_key: &str, labels: &[(&str, &str)]) -> u64 {
        let fingerprint = md5_fingerprint(public_key).expect("valid OpenSSH public key");
        let mut st = self.state();
        let id = st.next_id(Kind::SshKey);
        let created = st.now();
        st.ssh_keys.insert(
            id,
            SshKey {
                id,
                name: name.to_string(),
                fingerprint,
                public_key: public_key.trim().to_string(),
                labels: to_labels(labels),
                created,
            },
        );
        id
    }

    /// Adds a running server directly (type cx22, image ubuntu-24.04, location fsn1).
    pub fn insert_server(&self, name: &str, labels: &[(&str, &str)]) -> u64 {
        let mut st = self.state();
        let image = st
            .images
            .values()
            .find(|i| i.name.as_deref() == Some("ubuntu-24.04"))
            .map(image_json);
        let id = st.new_server(
            name,
            "cx22",
            image.unwrap_or(Value::Null),
            "fsn1",
            to_labels(labels),
        );
        st.servers.get_mut(&id).expect("just inserted").status = "running";
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
        let id = st.next_id(Kind::Firewall);
        let created = st.now();
        st.firewalls.insert(
            id,
            Firewall {
                id,
                name: name.to_string(),
                labels: to_labels(labels),
                rules: vec![],
                applied_to: vec![],
                created,
            },
        );
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
        let mut st = self.state();
        let id = st.next_id(Kind::Image);
        st.images.insert(
            id,
            Image {
                id,
                kind: "snapshot",
                status: "available",
                name: None,
                description: description.to_string(),
                created: created_unix,
                created_from: None,
                bound_to: None,
                os_flavor: "ubuntu",
                os_version: Some("24.04".into()),
                labels: to_labels(labels),
                disk_size: 40.0,
                image_size: Some(1.2),
                architecture: "x86",
            },
        );
        id
    }

    /// Sets an image's status (`available`, `creating`, `unavailable`).
    pub fn set_image_status(&self, id: u64, status: &'static str) {
        if let Some(i) = self.state().images.get_mut(&id) {
            i.status = status;
        }
    }

    // ----- faults and actions -----

    /// Applies `fault` to the `n`th request (1-based, arrival order, all endpoints), once.
    pub fn fail_request(&self, n: u64, fault: Fault) {
        self.state().faults.push(FaultRule {
            matcher: Matcher::Nth(n),
            fault,
            remaining: 1,
        });
    }

    /// Applies `fault` to the next `times` requests whose method is `method` (`"*"` for any) and
    /// whose path starts with `path_prefix` (with or without the `/v1`, e.g. `"/servers"`).
    /// `usize::MAX` means every time.
    pub fn fail_matching(&self, method: &str, path_prefix: &str, fault: Fault, times: usize) {
        let prefix = path_prefix
            .strip_prefix("/v1")
            .unwrap_or(path_prefix)
            .to_string();
        self.state().faults.push(FaultRule {
            matcher: Matcher::Matching {
                method: method.to_ascii_uppercase(),
                prefix,
            },
            fault,
            remaining: times,
        });
    }

    /// Removes every pending fault rule and pending action failure.
    pub fn clear_faults(&self) {
        let mut st = self.state();
        st.faults.clear();
        st.action_failures.clear();
    }

    /// Makes the next action with this `command` (e.g. `create_server`, `apply_firewall`,
    /// `delete_server`, `create_image`) end in `error` with `{code, message}`.
    pub fn fail_next_action(&self, command: &str, code: &str, message: &str) {
        self.state().action_failures.push((
            command.to_string(),
            code.to_string(),
            message.to_string(),
        ));
    }

    /// Makes the (still running) action `id` end in `error` with `{code, message}`.
    pub fn fail_action(&self, id: u64, code: &str, message: &str) {
        if let Some(a) = self.state().actions.get_mut(&id) {
            a.fail_with = Some((code.to_string(), message.to_string()));
        }
    }

    /// Changes how many observations new actions stay `running` for.
    pub fn set_action_polls(&self, n: u32) {
        self.state().config.action_polls = n;
    }

    /// Finishes every running action now (with its effects).
    pub fn finish_all_actions(&self) {
        let mut st = self.state();
        let ids: Vec<u64> = st
            .actions
            .values()
            .filter(|a| a.status == "running")
            .map(|a| a.id)
            .collect();
        for id in ids {
            st.finish_action(id);
        }
    }

    /// Sets the rate limit bucket: its size, refill per second and current fill.
    pub fn set_rate_limit(&self, limit: u32, refill_per_sec: f64, remaining: u32) {
        let mut st = self.state();
        st.bucket = Bucket {
            limit,
            refill: refill_per_sec,
            tokens: remaining as f64,
            last: Instant::now(),
        };
    }
}

impl Drop for FakeHetzner {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

// =====================================================================================
// State
// =====================================================================================

struct Shared {
    state: Mutex<State>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[derive(Clone, Copy)]
enum Kind {
    SshKey,
    Firewall,
    Server,
    Image,
    Action,
}

struct SshKey {
    id: u64,
    name: String,
    fingerprint: String,
    public_key: String,
    labels: Labels,
    created: u64,
}

#[derive(Clone, PartialEq)]
enum Target {
    Server(u64),
    LabelSelector(String),
}

struct Firewall {
    id: u64,
    name: String,
    labels: Labels,
    rules: Vec<Value>,
    applied_to: Vec<Target>,
    created: u64,
}

struct Server {
    id: u64,
    seq: u64,
    name: String,
    status: &'static str,
    status_before: &'static str,
    created: u64,
    labels: Labels,
    server_type: &'static ServerTypeInfo,
    image: Value,
    location: &'static LocationInfo,
    ipv4: bool,
    ipv6: bool,
    user_data: Option<String>,
    ssh_keys: Vec<u64>,
    /// Explicitly applied firewalls: (firewall id, applied (true) or pending (false)).
    firewalls: Vec<(u64, bool)>,
    backup_window: Option<String>,
    start_after_create: bool,
}

struct Image {
    id: u64,
    kind: &'static str,
    status: &'static str,
    name: Option<String>,
    description: String,
    created: u64,
    created_from: Option<(u64, String)>,
    bound_to: Option<u64>,
    os_flavor: &'static str,
    os_version: Option<String>,
    labels: Labels,
    disk_size: f64,
    image_size: Option<f64>,
    architecture: &'static str,
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Effect {
    None,
    CreateServer(u64),
    DeleteServer(u64),
    ApplyFirewall { fw: u64, server: Option<u64> },
    RemoveFirewall { fw: u64, server: u64 },
    CreateImage(u64),
    Power { server: u64, on: bool },
}

struct Action {
    id: u64,
    command: String,
    status: &'static str,
    progress: u32,
    started: u64,
    finished: Option<u64>,
    resources: Vec<(u64, &'static str)>,
    error: Option<(String, String)>,
    polls_needed: u32,
    polls_seen: u32,
    effect: Effect,
    fail_with: Option<(String, String)>,
}

enum Matcher {
    Nth(u64),
    Matching { method: String, prefix: String },
}

struct FaultRule {
    matcher: Matcher,
    fault: Fault,
    remaining: usize,
}

struct Bucket {
    limit: u32,
    refill: f64,
    tokens: f64,
    last: Instant,
}

impl Bucket {
    fn refill(&mut self) {
        let now = Instant::now();
        let dt = now.duration_since(self.last).as_secs_f64();
        self.last = now;
        if self.refill > 0.0 {
            self.tokens = (self.tokens + dt * self.refill).min(self.limit as f64);
        }
    }

    fn take(&mut self) -> bool {
        self.refill();
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    fn headers(&mut self) -> Vec<(String, String)> {
        self.refill();
        let missing = (self.limit as f64 - self.tokens).max(0.0);
        let secs = if self.refill > 0.0 {
            (missing / self.refill).ceil() as u64
        } else {
            3600
        };
        vec![
            ("RateLimit-Limit".into(), self.limit.to_string()),
            (
                "RateLimit-Remaining".into(),
                (self.tokens.floor().max(0.0) as u64).to_string(),
            ),
            ("RateLimit-Reset".into(), (unix_now() + secs).to_string()),
        ]
    }
}

struct State {
    config: FakeConfig,
    ssh_keys: BTreeMap<u64, SshKey>,
    firewalls: BTreeMap<u64, Firewall>,
    servers: BTreeMap<u64, Server>,
    images: BTreeMap<u64, Image>,
    actions: BTreeMap<u64, Action>,
    ids: [u64; 5],
    server_seq: u64,
    request_count: u64,
    log: Vec<LoggedRequest>,
    faults: Vec<FaultRule>,
    action_failures: Vec<(String, String, String)>,
    bucket: Bucket,
}

struct ServerTypeInfo {
    id: u64,
    name: &'static str,
    cores: u32,
    memory: f64,
    disk: u32,
    cpu_type: &'static str,
    architecture: &'static str,
    category: &'static str,
    hourly: &'static str,
    monthly: &'static str,
}

const SERVER_TYPES: &[ServerTypeInfo] = &[
    ServerTypeInfo {
        id: 22,
        name: "cx22",
        cores: 2,
        memory: 4.0,
        disk: 40,
        cpu_type: "shared",
        architecture: "x86",
        category: "cost_optimized",
        hourly: "0.0060000000",
        monthly: "3.7900000000",
    },
    ServerTypeInfo {
        id: 23,
        name: "cx23",
        cores: 2,
        memory: 4.0,
        disk: 40,
        cpu_type: "shared",
        architecture: "x86",
        category: "cost_optimized",
        hourly: "0.0060000000",
        monthly: "3.4900000000",
    },
    ServerTypeInfo {
        id: 32,
        name: "cx32",
        cores: 4,
        memory: 8.0,
        disk: 80,
        cpu_type: "shared",
        architecture: "x86",
        category: "cost_optimized",
        hourly: "0.0110000000",
        monthly: "6.8000000000",
    },
    ServerTypeInfo {
        id: 33,
        name: "cx33",
        cores: 4,
        memory: 8.0,
        disk: 80,
        cpu_type: "shared",
        architecture: "x86",
        category: "cost_optimized",
        hourly: "0.0090000000",
        monthly: "5.4900000000",
    },
    ServerTypeInfo {
        id: 42,
        name: "cx42",
        cores: 8,
        memory: 16.0,
        disk: 160,
        cpu_type: "shared",
        architecture: "x86",
        category: "cost_optimized",
        hourly: "0.0270000000",
        monthly: "16.4000000000",
    },
    ServerTypeInfo {
        id: 52,
        name: "cx52",
        cores: 16,
        memory: 32.0,
        disk: 320,
        cpu_type: "shared",
        architecture: "x86",
        category: "cost_optimized",
        hourly: "0.0540000000",
        monthly: "32.4000000000",
    },
    ServerTypeInfo {
        id: 11,
        name: "cpx11",
        cores: 2,
        memory: 2.0,
        disk: 40,
        cpu_type: "shared",
        architecture: "x86",
        category: "regular_purpose",
        hourly: "0.0080000000",
        monthly: "4.5100000000",
    },
    ServerTypeInfo {
        id: 21,
        name: "cpx21",
        cores: 3,
        memory: 4.0,
        disk: 80,
        cpu_type: "shared",
        architecture: "x86",
        category: "regular_purpose",
        hourly: "0.0140000000",
        monthly: "8.4900000000",
    },
    ServerTypeInfo {
        id: 24,
        name: "cpx22",
        cores: 2,
        memory: 4.0,
        disk: 80,
        cpu_type: "shared",
        architecture: "x86",
        category: "regular_purpose",
        hourly: "0.0120000000",
        monthly: "7.4900000000",
    },
    ServerTypeInfo {
        id: 31,
        name: "cpx31",
        cores: 4,
        memory: 8.0,
        disk: 160,
        cpu_type: "shared",
        architecture: "x86",
        category: "regular_purpose",
        hourly: "0.0250000000",
        monthly: "15.5900000000",
    },
    ServerTypeInfo {
        id: 45,
        name: "cax11",
        cores: 2,
        memory: 4.0,
        disk: 40,
        cpu_type: "shared",
        architecture: "arm",
        category: "cost_optimized",
        hourly: "0.0060000000",
        monthly: "3.7900000000",
    },
    ServerTypeInfo {
        id: 93,
        name: "cax21",
        cores: 4,
        memory: 8.0,
        disk: 80,
        cpu_type: "shared",
        architecture: "arm",
        category: "cost_optimized",
        hourly: "0.0110000000",
        monthly: "6.4900000000",
    },
    ServerTypeInfo {
        id: 96,
        name: "ccx13",
        cores: 2,
        memory: 8.0,
        disk: 80,
        cpu_type: "dedicated",
        architecture: "x86",
        category: "general_purpose",
        hourly: "0.0240000000",
        monthly: "14.8600000000",
    },
];

struct LocationInfo {
    id: u64,
    name: &'static str,
    description: &'static str,
    country: &'static str,
    city: &'static str,
    latitude: f64,
    longitude: f64,
    network_zone: &'static str,
    datacenter: &'static str,
    dc_description: &'static str,
}

const LOCATIONS: &[LocationInfo] = &[
    LocationInfo {
        id: 1,
        name: "fsn1",
        description: "Falkenstein DC Park 1",
        country: "DE",
        city: "Falkenstein",
        latitude: 50.47612,
        longitude: 12.370071,
        network_zone: "eu-central",
        datacenter: "fsn1-dc14",
        dc_description: "Falkenstein 1 virtual DC 14",
    },
    LocationInfo {
        id: 2,
        name: "nbg1",
        description: "Nuremberg DC Park 1",
        country: "DE",
        city: "Nuremberg",
        latitude: 49.452102,
        longitude: 11.076665,
        network_zone: "eu-central",
        datacenter: "nbg1-dc3",
        dc_description: "Nuremberg 1 virtual DC 3",
    },
    LocationInfo {
        id: 3,
        name: "hel1",
        description: "Helsinki DC Park 1",
        country: "FI",
        city: "Helsinki",
        latitude: 60.169855,
        longitude: 24.938379,
        network_zone: "eu-central",
        datacenter: "hel1-dc2",
        dc_description: "Helsinki 1 virtual DC 2",
    },
    LocationInfo {
        id: 4,
        name: "ash",
        description: "Ashburn, VA",
        country: "US",
        city: "Ashburn, VA",
        latitude: 39.045821,
        longitude: -77.487073,
        network_zone: "us-east",
        datacenter: "ash-dc1",
        dc_description: "Ashburn virtual DC 1",
    },
    LocationInfo {
        id: 5,
        name: "hil",
        description: "Hillsboro, OR",
        country: "US",
        city: "Hillsboro, OR",
        latitude: 45.54222,
        longitude: -122.951924,
        network_zone: "us-west",
        datacenter: "hil-dc1",
        dc_description: "Hillsboro virtual DC 1",
    },
    LocationInfo {
        id: 6,
        name: "sin",
        description: "Singapore",
        country: "SG",
        city: "Singapore",
        latitude: 1.283333,
        longitude: 103.833333,
        network_zone: "ap-southeast",
        datacenter: "sin-dc1",
        dc_description: "Singapore virtual DC 1",
    },
];

/// (id, name, os_flavor, os_version, description)
const SYSTEM_IMAGES: &[(u64, &str, &str, &str, &str)] = &[
    (1, "ubuntu-22.04", "ubuntu", "22.04", "Ubuntu 22.04"),
    (2, "ubuntu-24.04", "ubuntu", "24.04", "Ubuntu 24.04"),
    (3, "debian-12", "debian", "12", "Debian 12"),
    (4, "debian-13", "debian", "13", "Debian 13"),
    (5, "rocky-9", "rocky", "9", "Rocky Linux 9"),
    (6, "alma-9", "alma", "9", "AlmaLinux 9"),
    (7, "fedora-42", "fedora", "42", "Fedora 42"),
];

/// What a handler returns.
struct Resp {
    status: u16,
    body: Option<Value>,
    headers: Vec<(String, String)>,
}

impl Resp {
    fn json(status: u16, body: Value) -> Resp {
        Resp {
            status,
            body: Some(body),
            headers: vec![],
        }
    }
    fn empty(status: u16) -> Resp {
        Resp {
            status,
            body: None,
            headers: vec![],
        }
    }
}

fn error(status: u16, code: &str, message: &str) -> Resp {
    error_details(status, code, message, json!({}))
}

fn error_details(status: u16, code: &str, message: &str, details: Value) -> Resp {
    Resp::json(
        status,
        json!({"error": {"code": code, "message": message, "details": details}}),
    )
}

fn invalid_input(field: &str, msg: &str) -> Resp {
    error_details(
        422,
        "invalid_input",
        &format!("invalid input in field '{field}': {msg}"),
        json!({"fields": [{"name": field, "messages": [msg]}]}),
    )
}

fn uniqueness(field: &str, message: &str) -> Resp {
    error_details(
        409,
        "uniqueness_error",
        message,
        json!({"fields": [{"name": field}]}),
    )
}

fn not_found(what: &str) -> Resp {
    error(404, "not_found", &format!("{what} not found"))
}

struct Req {
    method: String,
    target: String,
    path: String,
    query: Vec<(String, String)>,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Req {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    fn q(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
    fn q_all(&self, name: &str) -> Vec<&str> {
        self.query
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
    fn json_body(&self) -> Option<Value> {
        if self.body.is_empty() {
            None
        } else {
            serde_json::from_slice(&self.body).ok()
        }
    }
}

/// Result of handling a request.
enum Outcome {
    Respond(Resp),
    Drop,
}

impl State {
    fn new(config: FakeConfig) -> State {
        let bucket = Bucket {
            limit: config.rate_limit,
            refill: config.rate_refill_per_sec,
            tokens: config.rate_limit as f64,
            last: Instant::now(),
        };
        let mut images = BTreeMap::new();
        for (id, name, flavor, version, desc) in SYSTEM_IMAGES {
            images.insert(
                *id,
                Image {
                    id: *id,
                    kind: "system",
                    status: "available",
                    name: Some(name.to_string()),
                    description: desc.to_string(),
                    created: 1_714_000_000,
                    created_from: None,
                    bound_to: None,
                    os_flavor: flavor,
                    os_version: Some(version.to_string()),
                    labels: Labels::new(),
                    disk_size: 5.0,
                    image_size: None,
                    architecture: "x86",
                },
            );
        }
        State {
            config,
            ssh_keys: BTreeMap::new(),
            firewalls: BTreeMap::new(),
            servers: BTreeMap::new(),
            images,
            actions: BTreeMap::new(),
            ids: [100_000, 200_000, 300_000, 400_000, 900_000],
            server_seq: 0,
            request_count: 0,
            log: vec![],
            faults: vec![],
            action_failures: vec![],
            bucket,
        }
    }

    fn now(&self) -> u64 {
        unix_now()
    }

    fn next_id(&mut self, kind: Kind) -> u64 {
        let i = kind as usize;
        self.ids[i] += 1;
        self.ids[i]
    }

    // ----- request pipeline -----

    /// Phase 1: number the request and pick its fault.
    fn arrive(&mut self, req: &Req) -> (u64, Option<Fault>) {
        self.request_count += 1;
        let n = self.request_count;
        let rel = req
            .path
            .strip_prefix("/v1")
            .unwrap_or(&req.path)
            .to_string();
        let mut chosen = None;
        for rule in self.faults.iter_mut() {
            if rule.remaining == 0 {
                continue;
            }
            let hit = match &rule.matcher {
                Matcher::Nth(k) => *k == n,
                Matcher::Matching { method, prefix } => {
                    (method == "*" || method.is_empty() || *method == req.method)
                        && rel.starts_with(prefix.as_str())
                }
            };
            if hit {
                rule.remaining = rule.remaining.saturating_sub(1);
                chosen = Some(rule.fault);
                break;
            }
        }
        self.faults.retain(|r| r.remaining > 0);
        (n, chosen)
    }

    /// Phase 2: do (or not do) the work.
    fn process(&mut self, req: &Req, n: u64, fault: Option<Fault>) -> Outcome {
        let body = req.json_body();
        let (outcome, status, response) = match fault {
            Some(Fault::Status500) => {
                let r = error(500, "server_error", "injected fault: server error");
                (None, 500, r)
            }
            Some(Fault::Status(code, c)) => {
                let r = error(code, c, &format!("injected fault: {c}"));
                (None, code, r)
            }
            Some(Fault::Drop) => {
                self.log.push(LoggedRequest {
                    n,
                    method: req.method.clone(),
                    path: req.target.clone(),
                    status: 0,
                    fault,
                    body,
                    response: None,
                });
                return Outcome::Drop;
            }
            _ => {
                let r = self.rate_limited(req);
                match fault {
                    Some(Fault::Status500After) => {
                        let _ = r;
                        (
                            None,
                            500,
                            error(
                                500,
                                "server_error",
                                "injected fault: server error after doing the work",
                            ),
                        )
                    }
                    Some(Fault::DropAfter) => (Some(Outcome::Drop), 0, r),
                    _ => {
                        let s = r.status;
                        (None, s, r)
                    }
                }
            }
        };
        let mut resp = response;
        self.log.push(LoggedRequest {
            n,
            method: req.method.clone(),
            path: req.target.clone(),
            status,
            fault,
            body,
            response: resp.body.clone(),
        });
        if let Some(o) = outcome {
            return o;
        }
        resp.headers.extend(self.bucket.headers());
        Outcome::Respond(resp)
    }

    fn rate_limited(&mut self, req: &Req) -> Resp {
        if !self.bucket.take() {
            return error(
                429,
                "rate_limit_exceeded",
                "limit of requests per hour reached",
            );
        }
        let auth_ok = match req.header("authorization") {
            Some(h) => match h
                .strip_prefix("Bearer ")
                .or_else(|| h.strip_prefix("bearer "))
            {
                Some(tok) => {
                    let tok = tok.trim();
                    !tok.is_empty() && self.config.token.as_deref().is_none_or(|t| t == tok)
                }
                None => false,
            },
            None => false,
        };
        if !auth_ok {
            return error(401, "unauthorized", "unable to authenticate");
        }
        self.route(req)
    }

    /// Whether the firewall or server `id` exists (`res` is the path segment).
    fn has(&self, res: &str, id: u64) -> bool {
        match res {
            "firewalls" => self.firewalls.contains_key(&id),
            _ => self.servers.contains_key(&id),
        }
    }

    fn route(&mut self, req: &Req) -> Resp {
        let Some(rest) = req.path.strip_prefix("/v1") else {
            return not_found("path");
        };
        let segs: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
        let m = req.method.as_str();
        let id = |s: &str| s.parse::<u64>().ok();
        match segs.as_slice() {
            ["ssh_keys"] => match m {
                "GET" => self.list_ssh_keys(req),
                "POST" => self.create_ssh_key(req),
                _ => not_allowed(),
            },
            ["ssh_keys", i] => match (m, id(i)) {
                (_, None) => not_found("ssh_key"),
                ("GET", Some(i)) => self
                    .ssh_keys
                    .get(&i)
                    .map(|k| Resp::json(200, json!({"ssh_key": ssh_key_json(k)})))
                    .unwrap_or_else(|| not_found("ssh_key")),
                ("PUT", Some(i)) => self.update_ssh_key(req, i),
                ("DELETE", Some(i)) => match self.ssh_keys.remove(&i) {
                    Some(_) => Resp::empty(204),
                    None => not_found("ssh_key"),
                },
                _ => not_allowed(),
            },
            // The action routes firewalls and servers share.
            [res @ ("firewalls" | "servers"), "actions"] if m == "GET" => {
                self.list_actions(req, Some(singular(res)), None)
            }
            [res @ ("firewalls" | "servers"), "actions", a] if m == "GET" => {
                self.get_action(id(a), Some(singular(res)), None)
            }
            [res @ ("firewalls" | "servers"), i, "actions"] if m == "GET" => match id(i) {
                Some(i) if self.has(res, i) => self.list_actions(req, Some(singular(res)), Some(i)),
                _ => not_found(singular(res)),
            },
            [res @ ("firewalls" | "servers"), i, "actions", a] => match (m, id(i), id(a)) {
                ("GET", Some(i), Some(a)) => self.get_action(Some(a), Some(singular(res)), Some(i)),
                ("POST", Some(i), None) if *res == "firewalls" => self.firewall_action(req, i, a),
                ("POST", Some(i), None) => self.server_action(req, i, a),
                _ => not_allowed(),
            },
            ["firewalls"] => match m {
                "GET" => self.list_firewalls(req),
                "POST" => self.create_firewall(req),
                _ => not_allowed(),
            },
            ["firewalls", i] => match (m, id(i)) {
                (_, None) => not_found("firewall"),
                ("GET", Some(i)) => {
                    self.observe_resource("firewall", i);
                    self.firewalls
                        .get(&i)
                        .map(|f| Resp::json(200, json!({"firewall": self.firewall_json(f)})))
                        .unwrap_or_else(|| not_found("firewall"))
                }
                ("PUT", Some(i)) => self.update_firewall(req, i),
                ("DELETE", Some(i)) => self.delete_firewall(i),
                _ => not_allowed(),
            },
            ["servers"] => match m {
                "GET" => self.list_servers(req),
                "POST" => self.create_server(req),
                _ => not_allowed(),
            },
            ["servers", i] => match (m, id(i)) {
                (_, None) => not_found("server"),
                ("GET", Some(i)) => {
                    self.observe_resource("server", i);
                    self.servers
                        .get(&i)
                        .map(|s| Resp::json(200, json!({"server": self.server_json(s)})))
                        .unwrap_or_else(|| not_found("server"))
                }
                ("PUT", Some(i)) => self.update_server(req, i),
                ("DELETE", Some(i)) => self.delete_server(i),
                _ => not_allowed(),
            },
            ["images"] => match m {
                "GET" => self.list_images(req),
                _ => not_allowed(),
            },
            ["images", i] => match (m, id(i)) {
                (_, None) => not_found("image"),
                ("GET", Some(i)) => {
                    self.observe_resource("image", i);
                    self.images
                        .get(&i)
                        .map(|im| Resp::json(200, json!({"image": image_json(im)})))
                        .unwrap_or_else(|| not_found("image"))
                }
                ("PUT", Some(i)) => self.update_image(req, i),
                ("DELETE", Some(i)) => match self.images.get(&i) {
                    None => not_found("image"),
                    Some(im) if im.kind == "system" => {
                        error(422, "unsupported_error", "system images cannot be deleted")
                    }
                    Some(_) => {
                        self.images.remove(&i);
                        Resp::empty(204)
                    }
                },
                _ => not_allowed(),
            },
            ["server_types"] if m == "GET" => {
                let items = SERVER_TYPES
                    .iter()
                    .map(|t| Item {
                        id: t.id,
                        name: Some(t.name.to_owned()),
                        created: 0,
                        labels: Labels::new(),
                        json: server_type_json(t),
                    })
                    .collect();
                self.list(req, "server_types", items)
            }
            ["locations"] if m == "GET" => {
                let items = LOCATIONS
                    .iter()
                    .map(|l| Item {
                        id: l.id,
                        name: Some(l.name.to_owned()),
                        created: 0,
                        labels: Labels::new(),
                        json: location_json(l),
                    })
                    .collect();
                self.list(req, "locations", items)
            }
            ["actions"] if m == "GET" => {
                let ids: Vec<u64> = req
                    .q_all("id")
                    .iter()
                    .flat_map(|v| v.split(','))
                    .filter_map(|v| v.trim().parse().ok())
                    .collect();
                if ids.is_empty() {
                    return error_details(
                        410,
                        "deprecated_api_endpoint",
                        "API functionality was removed",
                        json!({"announcement": "https://docs.hetzner.cloud/changelog#2023-07-20-actions-list-endpoint-is-deprecated"}),
                    );
                }
                let mut out = vec![];
                for i in ids {
                    if self.actions.contains_key(&i) {
                        self.observe_action(i);
                        out.push(action_json(&self.actions[&i]));
                    }
                }
                Resp::json(200, json!({"actions": out}))
            }
            ["actions", a] if m == "GET" => self.get_action(id(a), None, None),
            [] | ["actions"] | ["actions", _] => not_allowed(),
            _ => not_found("path"),
        }
    }

    // ----- generic list helper -----

    fn list(&self, req: &Req, key: &str, mut items: Vec<Item>) -> Resp {
        if let Some(sel) = req.q("label_selector") {
            let sel = match parse_selector(sel) {
                Ok(s) => s,
                Err(e) => return invalid_input("label_selector", &e),
            };
            items.retain(|it| selector_matches(&sel, &it.labels));
        }
        if let Some(name) = req.q("name") {
            items.retain(|it| it.name.as_deref() == Some(name));
        }
        let sorts = req.q_all("sort");
        for s in sorts.iter().rev() {
            let (field, desc) = match s.split_once(':') {
                Some((f, "asc")) => (f, false),
                Some((f, "desc")) => (f, true),
                Some(_) => return invalid_input("sort", "invalid sort direction"),
                None => (*s, false),
            };
            match field {
                "id" => items.sort_by_key(|i| i.id),
                "name" => items.sort_by(|a, b| a.name.cmp(&b.name)),
                "created" => items.sort_by_key(|i| i.created),
                _ => return invalid_input("sort", "invalid sort field"),
            }
            if desc {
                items.reverse();
            }
        }
        let page = match req.q("page").map(|p| p.parse::<i64>()) {
            None => 1,
            Some(Ok(p)) if p >= 1 => p,
            _ => return invalid_input("page", "must be a positive integer"),
        };
        let per_page = match req.q("per_page").map(|p| p.parse::<i64>()) {
            None => 25,
            Some(Ok(p)) if p >= 1 => p.min(50),
            _ => return invalid_input("per_page", "must be a positive integer"),
        };
        let total = items.len() as i64;
        let last = ((total + per_page - 1) / per_page).max(1);
        let start = ((page - 1) * per_page).min(total) as usize;
        let end = (page * per_page).min(total) as usize;
        let page_items: Vec<Value> = items.drain(start..end).map(|i| i.json).collect();
        let prev = if page > 1 {
            json!(page - 1)
        } else {
            Value::Null
        };
        let next = if page < last {
            json!(page + 1)
        } else {
            Value::Null
        };
        let mut body = Map::new();
        body.insert(key.to_string(), Value::Array(page_items));
        body.insert(
            "meta".into(),
            json!({"pagination": {
                "page": page, "per_page": per_page, "previous_page": prev,
                "next_page": next, "last_page": last, "total_entries": total
            }}),
        );
        let mut resp = Resp::json(200, Value::Object(body));
        // Link header, as documented.
        let host = req.header("host").unwrap_or("127.0.0.1");
        let link_for = |p: i64| {
            let mut q: Vec<String> = req
                .query
                .iter()
                .filter(|(k, _)| k != "page" && k != "per_page")
                .map(|(k, v)| format!("{}={}", url_encode(k), url_encode(v)))
                .collect();
            q.push(format!("page={p}"));
            q.push(format!("per_page={per_page}"));
            format!("<http://{host}{}?{}>", req.path, q.join("&"))
        };
        let mut links = vec![];
        if page > 1 {
            links.push(format!("{}; rel=\"prev\"", link_for(page - 1)));
        }
        if page < last {
            links.push(format!("{}; rel=\"next\"", link_for(page + 1)));
        }
        links.push(format!("{}; rel=\"last\"", link_for(last)));
        resp.headers.push(("Link".into(), links.join(", ")));
        resp
    }

    // ----- ssh keys -----

    fn list_ssh_keys(&self, req: &Req) -> Resp {
        let fp = req.q("fingerprint");
        let items = self
            .ssh_keys
            .values()
            .filter(|k| fp.is_none_or(|f| f == k.fingerprint))
            .map(|k| Item {
                id: k.id,
                name: Some(k.name.clone()),
                created: k.created,
                labels: k.labels.clone(),
                json: ssh_key_json(k),
            })
            .collect();
        self.list(req, "ssh_keys", items)
    }

    fn create_ssh_key(&mut self, req: &Req) -> Resp {
        let body = match object_body(req) {
            Ok(b) => b,
            Err(r) => return r,
        };
        let name = match req_str(&body, "name") {
            Ok(n) => n,
            Err(r) => return r,
        };
        let public_key = match req_str(&body, "public_key") {
            Ok(n) => n,
            Err(r) => return r,
        };
        let labels = match labels_field(&body) {
            Ok(l) => l,
            Err(r) => return r,
        };
        let fingerprint = match md5_fingerprint(&public_key) {
            Ok(f) => f,
            Err(e) => return invalid_input("public_key", &e),
        };
        if self.ssh_keys.values().any(|k| k.name == name) {
            return uniqueness("name", "SSH key with the same name already exists");
        }
        if self.ssh_keys.values().any(|k| k.fingerprint == fingerprint) {
            return uniqueness(
                "public_key",
                "SSH key with the same fingerprint already exists",
            );
        }
        let id = self.next_id(Kind::SshKey);
        let key = SshKey {
            id,
            name,
            fingerprint,
            public_key: public_key.trim().to_string(),
            labels,
            created: self.now(),
        };
        let out = ssh_key_json(&key);
        self.ssh_keys.insert(id, key);
        Resp::json(201, json!({"ssh_key": out}))
    }

    fn update_ssh_key(&mut self, req: &Req, id: u64) -> Resp {
        if !self.ssh_keys.contains_key(&id) {
            return not_found("ssh_key");
        }
        let body = match object_body(req) {
            Ok(b) => b,
            Err(r) => return r,
        };
        let name = match opt_str(&body, "name") {
            Ok(n) => n,
            Err(r) => return r,
        };
        if let Some(n) = &name
            && self.ssh_keys.values().any(|k| &k.name == n && k.id != id)
        {
            return uniqueness("name", "SSH key with the same name already exists");
        }
        let labels = match opt_labels(&body) {
            Ok(l) => l,
            Err(r) => return r,
        };
        let k = self.ssh_keys.get_mut(&id).expect("checked");
        if let Some(n) = name {
            k.name = n;
        }
        if let Some(l) = labels {
            k.labels = l;
        }
        Resp::json(200, json!({"ssh_key": ssh_key_json(k)}))
    }

    // ----- firewalls -----

    fn list_firewalls(&self, req: &Req) -> Resp {
        let items = self
            .firewalls
            .values()
            .map(|f| Item {
                id: f.id,
                name: Some(f.name.clone()),
                created: f.created,
                labels: f.labels.clone(),
                json: self.firewall_json(f),
            })
            .collect();
        self.list(req, "firewalls", items)
    }

    fn parse_targets(
        &self,
        v: Option<&Value>,
        field: &str,
        missing_code: (u16, &str),
    ) -> Result<Vec<Target>, Resp> {
        let Some(v) = v else { return Ok(vec![]) };
        let Some(arr) = v.as_array() else {
            return Err(invalid_input(field, "must be an array"));
        };
        let mut out = vec![];
        for t in arr {
            match t.get("type").and_then(Value::as_str) {
                Some("server") => {
                    let Some(sid) = t.pointer("/server/id").and_then(Value::as_u64) else {
                        return Err(invalid_input(
                            field,
                            "server.id is required for type server",
                        ));
                    };
                    if !self.servers.contains_key(&sid) {
                        return Err(error(
                            missing_code.0,
                            missing_code.1,
                            &format!("server {sid} not found"),
                        ));
                    }
                    if out.contains(&Target::Server(sid)) {
                        return Err(error(
                            422,
                            "server_already_added",
                            "the server was applied more than once",
                        ));
                    }
                    out.push(Target::Server(sid));
                }
                Some("label_selector") => {
                    let Some(sel) = t
                        .pointer("/label_selector/selector")
                        .and_then(Value::as_str)
                    else {
                        return Err(invalid_input(
                            field,
                            "label_selector.selector is required for type label_selector",
                        ));
                    };
                    if let Err(e) = parse_selector(sel) {
                        return Err(invalid_input(field, &e));
                    }
                    out.push(Target::LabelSelector(sel.to_string()));
                }
                _ => {
                    return Err(invalid_input(
                        field,
                        "type must be server or label_selector",
                    ));
                }
            }
        }
        Ok(out)
    }

    fn create_firewall(&mut self, req: &Req) -> Resp {
        let body = match object_body(req) {
            Ok(b) => b,
            Err(r) => return r,
        };
        let name = match req_str(&body, "name") {
            Ok(n) => n,
            Err(r) => return r,
        };
        let labels = match labels_field(&body) {
            Ok(l) => l,
            Err(r) => return r,
        };
        let rules = match parse_rules(body.get("rules")) {
            Ok(r) => r,
            Err(r) => return r,
        };
        let targets = match self.parse_targets(
            body.get("apply_to"),
            "apply_to",
            (422, "firewall_resource_not_found"),
        ) {
            Ok(t) => t,
            Err(r) => return r,
        };
        if self.firewalls.values().any(|f| f.name == name) {
            return uniqueness("name", "firewall with the same name already exists");
        }
        let id = self.next_id(Kind::Firewall);
        let created = self.now();
        self.firewalls.insert(
            id,
            Firewall {
                id,
                name,
                labels,
                rules,
                applied_to: vec![],
                created,
            },
        );
        let mut actions = vec![];
        for t in targets {
            actions.push(self.apply_target(id, t));
        }
        let actions: Vec<Value> = actions
            .iter()
            .map(|a| action_json(&self.actions[a]))
            .collect();
        let fw = self.firewall_json(&self.firewalls[&id]);
        Resp::json(201, json!({"firewall": fw, "actions": actions}))
    }

    /// Applies a firewall to a target (pending until its action finishes); returns the action id.
    fn apply_target(&mut self, fw: u64, t: Target) -> u64 {
        match t {
            Target::Server(sid) => {
                self.attach_firewall(fw, sid, false);
                self.new_action(
                    "apply_firewall",
                    vec![(sid, "server"), (fw, "firewall")],
                    Effect::ApplyFirewall {
                        fw,
                        server: Some(sid),
                    },
                )
            }
            Target::LabelSelector(sel) => {
                if let Some(f) = self.firewalls.get_mut(&fw) {
                    f.applied_to.push(Target::LabelSelector(sel));
                }
                self.new_action(
                    "apply_firewall",
                    vec![(fw, "firewall")],
                    Effect::ApplyFirewall { fw, server: None },
                )
            }
        }
    }

    fn attach_firewall(&mut self, fw: u64, sid: u64, applied: bool) {
        if let Some(f) = self.firewalls.get_mut(&fw)
            && !f.applied_to.contains(&Target::Server(sid))
        {
            f.applied_to.push(Target::Server(sid));
        }
        if let Some(s) = self.servers.get_mut(&sid) {
            if let Some(e) = s.firewalls.iter_mut().find(|(f, _)| *f == fw) {
                e.1 = e.1 || applied;
            } else {
                s.firewalls.push((fw, applied));
            }
        }
    }

    fn detach_firewall(&mut self, fw: u64, sid: u64) {
        if let Some(f) = self.firewalls.get_mut(&fw) {
            f.applied_to.retain(|t| *t != Target::Server(sid));
        }
        if let Some(s) = self.servers.get_mut(&sid) {
            s.firewalls.retain(|(f, _)| *f != fw);
        }
    }

    fn update_firewall(&mut self, req: &Req, id: u64) -> Resp {
        if !self.firewalls.contains_key(&id) {
            return not_found("firewall");
        }
        let body = match object_body(req) {
            Ok(b) => b,
            Err(r) => return r,
        };
        let name = match opt_str(&body, "name") {
            Ok(n) => n,
            Err(r) => return r,
        };
        if let Some(n) = &name
            && self.firewalls.values().any(|f| &f.name == n && f.id != id)
        {
            return uniqueness("name", "firewall with the same name already exists");
        }
        let labels = match opt_labels(&body) {
            Ok(l) => l,
            Err(r) => return r,
        };
        let f = self.firewalls.get_mut(&id).expect("checked");
        if let Some(n) = name {
            f.name = n;
        }
        if let Some(l) = labels {
            f.labels = l;
        }
        let out = self.firewall_json(&self.firewalls[&id]);
        Resp::json(200, json!({"firewall": out}))
    }

    fn firewall_in_use(&self, f: &Firewall) -> bool {
        f.applied_to.iter().any(|t| match t {
            Target::Server(s) => self.servers.contains_key(s),
            Target::LabelSelector(sel) => {
                let sel = parse_selector(sel).unwrap_or_default();
                self.servers
                    .values()
                    .any(|s| selector_matches(&sel, &s.labels))
            }
        })
    }

    fn delete_firewall(&mut self, id: u64) -> Resp {
        let Some(f) = self.firewalls.get(&id) else {
            return not_found("firewall");
        };
        if self.firewall_in_use(f) {
            return error(
                422,
                "resource_in_use",
                "firewall is still applied to a resource",
            );
        }
        self.firewalls.remove(&id);
        Resp::empty(204)
    }

    fn firewall_action(&mut self, req: &Req, id: u64, name: &str) -> Resp {
        if !self.firewalls.contains_key(&id) {
            return not_found("firewall");
        }
        let body = match object_body(req) {
            Ok(b) => b,
            Err(r) => return r,
        };
        match name {
            "apply_to_resources" => {
                if body.get("apply_to").is_none() {
                    return invalid_input("apply_to", "is required");
                }
                let targets = match self.parse_targets(
                    body.get("apply_to"),
                    "apply_to",
                    (404, "firewall_resource_not_found"),
                ) {
                    Ok(t) => t,
                    Err(r) => return r,
                };
                if targets
                    .iter()
                    .any(|t| self.firewalls[&id].applied_to.contains(t))
                {
                    return error(
                        422,
                        "firewall_already_applied",
                        "firewall is already applied to resource",
                    );
                }
                let ids: Vec<u64> = targets
                    .into_iter()
                    .map(|t| self.apply_target(id, t))
                    .collect();
                let out: Vec<Value> = ids.iter().map(|a| action_json(&self.actions[a])).collect();
                Resp::json(201, json!({"actions": out}))
            }
            "remove_from_resources" => {
                let Some(arr) = body.get("remove_from").and_then(Value::as_array) else {
                    return invalid_input("remove_from", "is required");
                };
                let mut ids = vec![];
                for t in arr {
                    match t.get("type").and_then(Value::as_str) {
                        Some("server") => {
                            let Some(sid) = t.pointer("/server/id").and_then(Value::as_u64) else {
                                return invalid_input("remove_from", "server.id is required");
                            };
                            if !self.firewalls[&id]
                                .applied_to
                                .contains(&Target::Server(sid))
                            {
                                return error(
                                    422,
                                    "firewall_not_applied",
                                    "firewall is not applied to resource",
                                );
                            }
                            ids.push(self.new_action(
                                "remove_firewall",
                                vec![(sid, "server"), (id, "firewall")],
                                Effect::RemoveFirewall {
                                    fw: id,
                                    server: sid,
                                },
                            ));
                        }
                        Some("label_selector") => {
                            let sel = t
                                .pointer("/label_selector/selector")
                                .and_then(Value::as_str)
                                .unwrap_or("")
                                .to_string();
                            let f = self.firewalls.get_mut(&id).expect("checked");
                            let before = f.applied_to.len();
                            f.applied_to
                                .retain(|x| *x != Target::LabelSelector(sel.clone()));
                            if f.applied_to.len() == before {
                                return error(
                                    422,
                                    "firewall_not_applied",
                                    "firewall is not applied to resource",
                                );
                            }
                            ids.push(self.new_action(
                                "remove_firewall",
                                vec![(id, "firewall")],
                                Effect::None,
                            ));
                        }
                        _ => {
                            return invalid_input(
                                "remove_from",
                                "type must be server or label_selector",
                            );
                        }
                    }
                }
                let out: Vec<Value> = ids.iter().map(|a| action_json(&self.actions[a])).collect();
                Resp::json(201, json!({"actions": out}))
            }
            "set_rules" => {
                if body.get("rules").is_none() {
                    return invalid_input("rules", "is required");
                }
                let rules = match parse_rules(body.get("rules")) {
                    Ok(r) => r,
                    Err(r) => return r,
                };
                self.firewalls.get_mut(&id).expect("checked").rules = rules;
                let mut ids = vec![self.new_action(
                    "set_firewall_rules",
                    vec![(id, "firewall")],
                    Effect::None,
                )];
                let servers: Vec<u64> = self.firewalls[&id]
                    .applied_to
                    .iter()
                    .filter_map(|t| {
                        if let Target::Server(s) = t {
                            Some(*s)
                        } else {
                            None
                        }
                    })
                    .collect();
                for s in servers {
                    ids.push(self.new_action(
                        "apply_firewall",
                        vec![(id, "firewall"), (s, "server")],
                        Effect::None,
                    ));
                }
                let out: Vec<Value> = ids.iter().map(|a| action_json(&self.actions[a])).collect();
                Resp::json(201, json!({"actions": out}))
            }
            _ => not_found("action"),
        }
    }

    fn firewall_json(&self, f: &Firewall) -> Value {
        let applied: Vec<Value> = f
            .applied_to
            .iter()
            .map(|t| match t {
                Target::Server(s) => json!({"type": "server", "server": {"id": s}}),
                Target::LabelSelector(sel) => {
                    let parsed = parse_selector(sel).unwrap_or_default();
                    let res: Vec<Value> = self
                        .servers
                        .values()
                        .filter(|s| selector_matches(&parsed, &s.labels))
                        .map(|s| json!({"type": "server", "server": {"id": s.id}}))
                        .collect();
                    json!({"type": "label_selector", "label_selector": {"selector": sel}, "applied_to_resources": res})
                }
            })
            .collect();
        json!({
            "id": f.id,
            "name": f.name,
            "labels": f.labels,
            "created": rfc3339(f.created),
            "rules": f.rules,
            "applied_to": applied,
        })
    }

    // ----- servers -----

    fn new_server(
        &mut self,
        name: &str,
        server_type: &str,
        image: Value,
        location: &str,
        labels: Labels,
    ) -> u64 {
        let id = self.next_id(Kind::Server);
        self.server_seq += 1;
        let st = SERVER_TYPES
            .iter()
            .find(|t| t.name == server_type)
            .unwrap_or(&SERVER_TYPES[0]);
        let loc = LOCATIONS
            .iter()
            .find(|l| l.name == location)
            .unwrap_or(&LOCATIONS[0]);
        let created = self.now();
        self.servers.insert(
            id,
            Server {
                id,
                seq: self.server_seq,
                name: name.to_string(),
                status: "initializing",
                status_before: "running",
                created,
                labels,
                server_type: st,
                image,
                location: loc,
                ipv4: true,
                ipv6: true,
                user_data: None,
                ssh_keys: vec![],
                firewalls: vec![],
                backup_window: None,
                start_after_create: true,
            },
        );
        id
    }

    fn list_servers(&self, req: &Req) -> Resp {
        let statuses = req.q_all("status");
        let items = self
            .servers
            .values()
            .filter(|s| statuses.is_empty() || statuses.contains(&s.status))
            .map(|s| Item {
                id: s.id,
                name: Some(s.name.clone()),
                created: s.created,
                labels: s.labels.clone(),
                json: self.server_json(s),
            })
            .collect();
        self.list(req, "servers", items)
    }

    fn create_server(&mut self, req: &Req) -> Resp {
        let body = match object_body(req) {
            Ok(b) => b,
            Err(r) => return r,
        };
        let name = match req_str(&body, "name") {
            Ok(n) => n,
            Err(r) => return r,
        };
        if !valid_hostname(&name) {
            return invalid_input("name", "must be a valid hostname (RFC 1123)");
        }
        let server_type = match req_str(&body, "server_type") {
            Ok(n) => n,
            Err(r) => return r,
        };
        if !SERVER_TYPES.iter().any(|t| t.name == server_type) {
            return invalid_input("server_type", "server type not found");
        }
        let image_ref = match req_str(&body, "image") {
            Ok(n) => n,
            Err(r) => return r,
        };
        let image = match self.find_image(&image_ref) {
            Some(i) => image_json(i),
            None => return invalid_input("image", "image not found"),
        };
        let location = match (opt_str(&body, "location"), opt_str(&body, "datacenter")) {
            (Err(r), _) | (_, Err(r)) => return r,
            (Ok(Some(l)), _) => l,
            (Ok(None), Ok(Some(dc))) => dc.split('-').next().unwrap_or("").to_string(),
            (Ok(None), Ok(None)) => "fsn1".to_string(),
        };
        if !LOCATIONS.iter().any(|l| l.name == location) {
            return invalid_input("location", "location not found");
        }
        let user_data = match opt_str(&body, "user_data") {
            Ok(u) => u,
            Err(r) => return r,
        };
        if let Some(u) = &user_data
            && u.len() > self.config.user_data_limit
        {
            return invalid_input("user_data", "is too long");
        }
        let labels = match labels_field(&body) {
            Ok(l) => l,
            Err(r) => return r,
        };
        let start = match body.get("start_after_create") {
            None | Some(Value::Null) => true,
            Some(Value::Bool(b)) => *b,
            Some(_) => return invalid_input("start_after_create", "must be a boolean"),
        };
        let mut key_ids = vec![];
        match body.get("ssh_keys") {
            None | Some(Value::Null) => {}
            Some(Value::Array(arr)) => {
                for k in arr {
                    let found = match k {
                        Value::String(s) => self
                            .ssh_keys
                            .values()
                            .find(|x| x.name == *s || x.id.to_string() == *s),
                        Value::Number(n) => n.as_u64().and_then(|n| self.ssh_keys.get(&n)),
                        _ => None,
                    };
                    match found {
                        Some(x) => key_ids.push(x.id),
                        None => {
                            return invalid_input("ssh_keys", &format!("SSH key {k} not found"));
                        }
                    }
                }
            }
            Some(_) => return invalid_input("ssh_keys", "must be an array"),
        }
        let mut fw_ids = vec![];
        match body.get("firewalls") {
            None | Some(Value::Null) => {}
            Some(Value::Array(arr)) => {
                for f in arr {
                    let Some(fid) = f.get("firewall").and_then(Value::as_u64) else {
                        return invalid_input(
                            "firewalls",
                            "each entry needs an integer 'firewall'",
                        );
                    };
                    if !self.firewalls.contains_key(&fid) {
                        return invalid_input("firewalls", &format!("firewall {fid} not found"));
                    }
                    fw_ids.push(fid);
                }
            }
            Some(_) => return invalid_input("firewalls", "must be an array"),
        }
        let (ipv4, ipv6) = match body.get("public_net") {
            None | Some(Value::Null) => (true, true),
            Some(Value::Object(p)) => {
                let b = |k: &str| p.get(k).and_then(Value::as_bool).unwrap_or(true);
                (b("enable_ipv4"), b("enable_ipv6"))
            }
            Some(_) => return invalid_input("public_net", "must be an object"),
        };
        if self.servers.values().any(|s| s.name == name) {
            return uniqueness("name", "server name is already used");
        }
        let id = self.new_server(&name, &server_type, image, &location, labels);
        {
            let s = self.servers.get_mut(&id).expect("just inserted");
            s.user_data = user_data;
            s.ssh_keys = key_ids;
            s.ipv4 = ipv4;
            s.ipv6 = ipv6;
            s.start_after_create = start;
        }
        let create = self.new_action(
            "create_server",
            vec![(id, "server")],
            Effect::CreateServer(id),
        );
        let mut next = vec![];
        if start {
            next.push(self.new_action("start_server", vec![(id, "server")], Effect::None));
        }
        for fw in fw_ids {
            next.push(self.apply_target(fw, Target::Server(id)));
        }
        let server = self.server_json(&self.servers[&id]);
        Resp::json(
            201,
            json!({
                "server": server,
                "action": action_json(&self.actions[&create]),
                "next_actions": next.iter().map(|a| action_json(&self.actions[a])).collect::<Vec<_>>(),
                "root_password": Value::Null,
            }),
        )
    }

    fn find_image(&self, r: &str) -> Option<&Image> {
        if let Ok(id) = r.parse::<u64>() {
            return self.images.get(&id).filter(|i| i.status == "available");
        }
        self.images
            .values()
            .find(|i| i.name.as_deref() == Some(r) && i.status == "available")
    }

    fn update_server(&mut self, req: &Req, id: u64) -> Resp {
        if !self.servers.contains_key(&id) {
            return not_found("server");
        }
        let body = match object_body(req) {
            Ok(b) => b,
            Err(r) => return r,
        };
        let name = match opt_str(&body, "name") {
            Ok(n) => n,
            Err(r) => return r,
        };
        if let Some(n) = &name {
            if !valid_hostname(n) {
                return invalid_input("name", "must be a valid hostname (RFC 1123)");
            }
            if self.servers.values().any(|s| &s.name == n && s.id != id) {
                return uniqueness("name", "server name is already used");
            }
        }
        let labels = match opt_labels(&body) {
            Ok(l) => l,
            Err(r) => return r,
        };
        let s = self.servers.get_mut(&id).expect("checked");
        if let Some(n) = name {
            s.name = n;
        }
        if let Some(l) = labels {
            s.labels = l;
        }
        let out = self.server_json(&self.servers[&id]);
        Resp::json(200, json!({"server": out}))
    }

    fn delete_server(&mut self, id: u64) -> Resp {
        let Some(s) = self.servers.get_mut(&id) else {
            return not_found("server");
        };
        if s.status == "deleting" {
            return error(423, "locked", "server is locked: it is being deleted");
        }
        s.status_before = s.status;
        s.status = "deleting";
        let a = self.new_action(
            "delete_server",
            vec![(id, "server")],
            Effect::DeleteServer(id),
        );
        Resp::json(200, json!({"action": action_json(&self.actions[&a])}))
    }

    fn server_action(&mut self, req: &Req, id: u64, name: &str) -> Resp {
        let Some(s) = self.servers.get(&id) else {
            return not_found("server");
        };
        if s.status == "deleting" {
            return error(423, "locked", "server is locked: it is being deleted");
        }
        let body = if req.body.is_empty() {
            Map::new()
        } else {
            match object_body(req) {
                Ok(b) => b,
                Err(r) => return r,
            }
        };
        match name {
            "create_image" => {
                let description = match opt_str(&body, "description") {
                    Ok(d) => d,
                    Err(r) => return r,
                };
                let kind = match opt_str(&body, "type") {
                    Ok(None) => "snapshot",
                    Ok(Some(t)) if t == "snapshot" => "snapshot",
                    Ok(Some(t)) if t == "backup" => "backup",
                    Ok(Some(_)) => return invalid_input("type", "must be snapshot or backup"),
                    Err(r) => return r,
                };
                let labels = match labels_field(&body) {
                    Ok(l) => l,
                    Err(r) => return r,
                };
                let s = &self.servers[&id];
                let (os_flavor, os_version, arch) = (
                    s.image
                        .get("os_flavor")
                        .and_then(Value::as_str)
                        .and_then(static_flavor)
                        .unwrap_or("unknown"),
                    s.image
                        .get("os_version")
                        .and_then(Value::as_str)
                        .map(str::to_string),
                    s.server_type.architecture,
                );
                let (sname, disk) = (s.name.clone(), s.server_type.disk as f64);
                let iid = self.next_id(Kind::Image);
                let created = self.now();
                self.images.insert(
                    iid,
                    Image {
                        id: iid,
                        kind,
                        status: "creating",
                        name: None,
                        description: description.unwrap_or_else(|| format!("{sname}-{created}")),
                        created,
                        created_from: Some((id, sname)),
                        bound_to: if kind == "backup" { Some(id) } else { None },
                        os_flavor,
                        os_version,
                        labels,
                        disk_size: disk,
                        image_size: None,
                        architecture: arch,
                    },
                );
                let a = self.new_action(
                    "create_image",
                    vec![(id, "server"), (iid, "image")],
                    Effect::CreateImage(iid),
                );
                Resp::json(
                    201,
                    json!({"image": image_json(&self.images[&iid]), "action": action_json(&self.actions[&a])}),
                )
            }
            "enable_backup" => {
                self.servers.get_mut(&id).expect("checked").backup_window = Some("22-02".into());
                let a = self.new_action("enable_backup", vec![(id, "server")], Effect::None);
                Resp::json(201, json!({"action": action_json(&self.actions[&a])}))
            }
            "disable_backup" => {
                self.servers.get_mut(&id).expect("checked").backup_window = None;
                let a = self.new_action("disable_backup", vec![(id, "server")], Effect::None);
                Resp::json(201, json!({"action": action_json(&self.actions[&a])}))
            }
            "poweron" | "poweroff" | "shutdown" | "reboot" | "reset" => {
                let command = match name {
                    "poweron" => "start_server",
                    "poweroff" => "stop_server",
                    "shutdown" => "shutdown_server",
                    "reboot" => "reboot_server",
                    _ => "reset_server",
                };
                let on = matches!(name, "poweron" | "reboot" | "reset");
                let a = self.new_action(
                    command,
                    vec![(id, "server")],
                    Effect::Power { server: id, on },
                );
                Resp::json(201, json!({"action": action_json(&self.actions[&a])}))
            }
            _ => not_found("action"),
        }
    }

    fn server_json(&self, s: &Server) -> Value {
        let loc = s.location;
        let location = location_json(loc);
        let all_type_ids: Vec<u64> = SERVER_TYPES.iter().map(|t| t.id).collect();
        let server_type = server_type_json(s.server_type);
        let mut firewalls: Vec<Value> =
            s.firewalls.iter().map(|(f, applied)| json!({"id": f, "status": if *applied { "applied" } else { "pending" }})).collect();
        for f in self.firewalls.values() {
            let by_selector = f.applied_to.iter().any(|t| match t {
                Target::LabelSelector(sel) => {
                    selector_matches(&parse_selector(sel).unwrap_or_default(), &s.labels)
                }
                Target::Server(_) => false,
            });
            if by_selector && !s.firewalls.iter().any(|(x, _)| *x == f.id) {
                firewalls.push(json!({"id": f.id, "status": "applied"}));
            }
        }
        let octet = (s.seq - 1) % 254 + 1;
        let ipv4 = if s.ipv4 {
            json!({
                "id": 500_000 + s.seq * 2, "ip": format!("203.0.113.{octet}"), "blocked": false,
                "dns_ptr": format!("static.{octet}.113.0.203.clients.your-server.de"),
            })
        } else {
            Value::Null
        };
        let ipv6 = if s.ipv6 {
            json!({"id": 500_001 + s.seq * 2, "ip": format!("2001:db8:0:{:x}::/64", s.seq), "blocked": false, "dns_ptr": []})
        } else {
            Value::Null
        };
        json!({
            "id": s.id,
            "name": s.name,
            "status": s.status,
            "created": rfc3339(s.created),
            "public_net": {"ipv4": ipv4, "ipv6": ipv6, "floating_ips": [], "firewalls": firewalls},
            "private_net": [],
            "server_type": server_type,
            "datacenter": {
                "id": loc.id, "name": loc.datacenter, "description": loc.dc_description, "location": location,
                "server_types": {"supported": all_type_ids, "available": all_type_ids, "available_for_migration": all_type_ids},
            },
            "location": location,
            "image": s.image,
            "iso": Value::Null,
            "rescue_enabled": false,
            "locked": false,
            "backup_window": s.backup_window,
            "outgoing_traffic": 0,
            "ingoing_traffic": 0,
            "included_traffic": 21_990_232_555_520_u64,
            "protection": {"delete": false, "rebuild": false},
            "labels": s.labels,
            "volumes": [],
            "load_balancers": [],
            "primary_disk_size": s.server_type.disk,
            "placement_group": Value::Null,
        })
    }

    // ----- images -----

    fn list_images(&self, req: &Req) -> Resp {
        let types = req.q_all("type");
        let statuses = req.q_all("status");
        let bound: Vec<&str> = req.q_all("bound_to");
        let arch = req.q("architecture");
        let items = self
            .images
            .values()
            .filter(|i| types.is_empty() || types.contains(&i.kind))
            .filter(|i| statuses.is_empty() || statuses.contains(&i.status))
            .filter(|i| {
                bound.is_empty()
                    || i.bound_to
                        .is_some_and(|b| bound.contains(&b.to_string().as_str()))
            })
            .filter(|i| arch.is_none_or(|a| a == i.architecture))
            .map(|i| Item {
                id: i.id,
                name: i.name.clone(),
                created: i.created,
                labels: i.labels.clone(),
                json: image_json(i),
            })
            .collect();
        self.list(req, "images", items)
    }

    fn update_image(&mut self, req: &Req, id: u64) -> Resp {
        match self.images.get(&id) {
            None => return not_found("image"),
            Some(i) if i.kind == "system" => {
                return error(422, "unsupported_error", "system images cannot be updated");
            }
            _ => {}
        }
        let body = match object_body(req) {
            Ok(b) => b,
            Err(r) => return r,
        };
        let description = match opt_str(&body, "description") {
            Ok(d) => d,
            Err(r) => return r,
        };
        let kind = match opt_str(&body, "type") {
            Ok(None) => None,
            Ok(Some(t)) if t == "snapshot" => Some("snapshot"),
            Ok(Some(_)) => return invalid_input("type", "can only be converted to snapshot"),
            Err(r) => return r,
        };
        let labels = match opt_labels(&body) {
            Ok(l) => l,
            Err(r) => return r,
        };
        let i = self.images.get_mut(&id).expect("checked");
        if let Some(d) = description {
            i.description = d;
        }
        if let Some(k) = kind {
            i.kind = k;
            i.bound_to = None;
        }
        if let Some(l) = labels {
            i.labels = l;
        }
        Resp::json(200, json!({"image": image_json(i)}))
    }

    // ----- actions -----

    fn new_action(
        &mut self,
        command: &str,
        resources: Vec<(u64, &'static str)>,
        effect: Effect,
    ) -> u64 {
        let id = self.next_id(Kind::Action);
        let fail_with = match self
            .action_failures
            .iter()
            .position(|(c, _, _)| c == command)
        {
            Some(p) => {
                let (_, code, msg) = self.action_failures.remove(p);
                Some((code, msg))
            }
            None => None,
        };
        let polls = self.config.action_polls;
        self.actions.insert(
            id,
            Action {
                id,
                command: command.to_string(),
                status: "running",
                progress: 0,
                started: self.now(),
                finished: None,
                resources,
                error: None,
                polls_needed: polls,
                polls_seen: 0,
                effect,
                fail_with,
            },
        );
        if polls == 0 {
            self.finish_action(id);
        }
        id
    }

    fn observe_action(&mut self, id: u64) {
        let Some(a) = self.actions.get_mut(&id) else {
            return;
        };
        if a.status != "running" {
            return;
        }
        if a.polls_seen >= a.polls_needed {
            self.finish_action(id);
        } else {
            a.polls_seen += 1;
            a.progress = (a.polls_seen * 100 / (a.polls_needed + 1)).min(99);
        }
    }

    fn observe_resource(&mut self, kind: &str, rid: u64) {
        let ids: Vec<u64> = self
            .actions
            .values()
            .filter(|a| {
                a.status == "running" && a.resources.iter().any(|(i, k)| *i == rid && *k == kind)
            })
            .map(|a| a.id)
            .collect();
        for id in ids {
            self.observe_action(id);
        }
    }

    fn finish_action(&mut self, id: u64) {
        let now = self.now();
        let Some(a) = self.actions.get_mut(&id) else {
            return;
        };
        if a.status != "running" {
            return;
        }
        a.finished = Some(now);
        let effect = a.effect;
        if let Some((code, msg)) = a.fail_with.take() {
            a.status = "error";
            a.error = Some((code, msg));
            self.undo_effect(effect);
        } else {
            a.status = "success";
            a.progress = 100;
            self.apply_effect(effect);
        }
    }

    fn apply_effect(&mut self, effect: Effect) {
        match effect {
            Effect::None => {}
            Effect::CreateServer(sid) => {
                if let Some(s) = self.servers.get_mut(&sid)
                    && s.status == "initializing"
                {
                    s.status = if s.start_after_create {
                        "running"
                    } else {
                        "off"
                    };
                }
            }
            Effect::DeleteServer(sid) => {
                self.servers.remove(&sid);
                for f in self.firewalls.values_mut() {
                    f.applied_to.retain(|t| *t != Target::Server(sid));
                }
                self.images
                    .retain(|_, i| !(i.kind == "backup" && i.bound_to == Some(sid)));
            }
            Effect::ApplyFirewall {
                fw,
                server: Some(sid),
            } => {
                if let Some(s) = self.servers.get_mut(&sid) {
                    for e in s.firewalls.iter_mut().filter(|(f, _)| *f == fw) {
                        e.1 = true;
                    }
                }
            }
            Effect::ApplyFirewall { server: None, .. } => {}
            Effect::RemoveFirewall { fw, server } => self.detach_firewall(fw, server),
            Effect::CreateImage(iid) => {
                if let Some(i) = self.images.get_mut(&iid) {
                    i.status = "available";
                    i.image_size = Some(1.2);
                }
            }
            Effect::Power { server, on } => {
                if let Some(s) = self.servers.get_mut(&server)
                    && s.status != "deleting"
                {
                    s.status = if on { "running" } else { "off" };
                }
            }
        }
    }

    fn undo_effect(&mut self, effect: Effect) {
        match effect {
            Effect::CreateServer(sid) => {
                // The server stays, switched off: the client has to clean it up.
                if let Some(s) = self.servers.get_mut(&sid)
                    && s.status == "initializing"
                {
                    s.status = "off";
                }
            }
            Effect::DeleteServer(sid) => {
                if let Some(s) = self.servers.get_mut(&sid) {
                    s.status = s.status_before;
                }
            }
            Effect::ApplyFirewall {
                fw,
                server: Some(sid),
            } => self.detach_firewall(fw, sid),
            Effect::CreateImage(iid) => {
                self.images.remove(&iid);
            }
            Effect::None
            | Effect::ApplyFirewall { server: None, .. }
            | Effect::RemoveFirewall { .. }
            | Effect::Power { .. } => {}
        }
    }

    fn get_action(&mut self, id: Option<u64>, kind: Option<&str>, rid: Option<u64>) -> Resp {
        let Some(id) = id else {
            return not_found("action");
        };
        let ok = self.actions.get(&id).is_some_and(|a| match (kind, rid) {
            (None, _) => true,
            (Some(k), None) => a.resources.iter().any(|(_, t)| *t == k),
            (Some(k), Some(r)) => a.resources.iter().any(|(i, t)| *t == k && *i == r),
        });
        if !ok {
            return not_found("action");
        }
        self.observe_action(id);
        Resp::json(200, json!({"action": action_json(&self.actions[&id])}))
    }

    fn list_actions(&mut self, req: &Req, kind: Option<&str>, rid: Option<u64>) -> Resp {
        let ids: Vec<u64> = req
            .q_all("id")
            .iter()
            .flat_map(|v| v.split(','))
            .filter_map(|v| v.trim().parse().ok())
            .collect();
        let statuses = req.q_all("status");
        let selected: Vec<u64> = self
            .actions
            .values()
            .filter(|a| ids.is_empty() || ids.contains(&a.id))
            .filter(|a| match (kind, rid) {
                (None, _) => true,
                (Some(k), None) => a.resources.iter().any(|(_, t)| *t == k),
                (Some(k), Some(r)) => a.resources.iter().any(|(i, t)| *t == k && *i == r),
            })
            .map(|a| a.id)
            .collect();
        for id in &selected {
            self.observe_action(*id);
        }
        let items = selected
            .iter()
            .map(|id| &self.actions[id])
            .filter(|a| statuses.is_empty() || statuses.contains(&a.status))
            .map(|a| Item {
                id: a.id,
                name: Some(a.command.clone()),
                created: a.started,
                labels: Labels::new(),
                json: action_json(a),
            })
            .collect();
        // `name` and `label_selector` are not filters of action lists.
        let mut r = Req {
            method: req.method.clone(),
            target: req.target.clone(),
            path: req.path.clone(),
            query: req
                .query
                .iter()
                .filter(|(k, _)| k != "name" && k != "label_selector")
                .cloned()
                .collect(),
            headers: req.headers.clone(),
            body: vec![],
        };
        // Sorting actions by `command` is what `name` would mean; keep `sort` as given.
        r.query
            .retain(|(k, v)| !(k == "sort" && v.starts_with("name")));
        self.list(&r, "actions", items)
    }
}

/// A location as `GET /locations` renders it.
fn location_json(loc: &LocationInfo) -> Value {
    json!({
        "id": loc.id, "name": loc.name, "description": loc.description, "country": loc.country,
        "city": loc.city, "latitude": loc.latitude, "longitude": loc.longitude, "network_zone": loc.network_zone,
    })
}

/// A server type as `GET /server_types` renders it.
fn server_type_json(t: &ServerTypeInfo) -> Value {
    let price = |v: &str| {
        let net: f64 = v.parse().unwrap_or(0.0);
        json!({"net": v, "gross": format!("{:.16}", net * 1.19)})
    };
    json!({
        "id": t.id, "name": t.name, "description": t.name.to_uppercase(), "cores": t.cores,
        "memory": t.memory, "disk": t.disk, "deprecated": false,
        "prices": LOCATIONS.iter().map(|l| json!({
            "location": l.name, "price_hourly": price(t.hourly), "price_monthly": price(t.monthly),
            "included_traffic": 21_990_232_555_520_u64, "price_per_tb_traffic": price("1.0000000000"),
        })).collect::<Vec<_>>(),
        "storage_type": "local", "cpu_type": t.cpu_type, "category": t.category,
        "architecture": t.architecture, "deprecation": Value::Null,
        "locations": LOCATIONS.iter().map(|l| json!({
            "id": l.id, "name": l.name, "deprecation": Value::Null, "available": true, "recommended": l.id == 1,
        })).collect::<Vec<_>>(),
    })
}

/// `firewalls` -> `firewall`: the resource type in errors and action resources.
fn singular(res: &str) -> &'static str {
    match res {
        "firewalls" => "firewall",
        _ => "server",
    }
}

struct Item {
    id: u64,
    name: Option<String>,
    created: u64,
    labels: Labels,
    json: Value,
}

fn not_allowed() -> Resp {
    error(
        405,
        "method_not_allowed",
        "the request method is not allowed",
    )
}

fn ssh_key_json(k: &SshKey) -> Value {
    json!({
        "id": k.id,
        "name": k.name,
        "fingerprint": k.fingerprint,
        "public_key": k.public_key,
        "labels": k.labels,
        "created": rfc3339(k.created),
    })
}

fn image_json(i: &Image) -> Value {
    json!({
        "id": i.id,
        "type": i.kind,
        "status": i.status,
        "name": i.name,
        "description": i.description,
        "image_size": i.image_size,
        "disk_size": i.disk_size,
        "created": rfc3339(i.created),
        "created_from": i.created_from.as_ref().map(|(id, n)| json!({"id": id, "name": n})),
        "bound_to": i.bound_to,
        "os_flavor": i.os_flavor,
        "os_version": i.os_version,
        "rapid_deploy": i.kind == "system",
        "protection": {"delete": false},
        "deprecated": Value::Null,
        "deleted": Value::Null,
        "labels": i.labels,
        "architecture": i.architecture,
    })
}

fn action_json(a: &Action) -> Value {
    json!({
        "id": a.id,
        "command": a.command,
        "status": a.status,
        "progress": a.progress,
        "started": rfc3339(a.started),
        "finished": a.finished.map(rfc3339),
        "resources": a.resources.iter().map(|(id, t)| json!({"id": id, "type": t})).collect::<Vec<_>>(),
        "error": a.error.as_ref().map(|(c, m)| json!({"code": c, "message": m})),
    })
}

fn static_flavor(s: &str) -> Option<&'static str> {
    [
        "ubuntu", "centos", "debian", "fedora", "rocky", "alma", "opensuse", "unknown",
    ]
    .into_iter()
    .find(|f| *f == s)
}

fn to_labels(l: &[(&str, &str)]) -> Labels {
    l.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

// ----- body helpers -----

fn object_body(req: &Req) -> Result<Map<String, Value>, Resp> {
    match serde_json::from_slice::<Value>(&req.body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(error(
            400,
            "json_error",
            "request body must be a JSON object",
        )),
        Err(e) => Err(error(
            400,
            "json_error",
            &format!("invalid JSON input: {e}"),
        )),
    }
}

fn req_str(body: &Map<String, Value>, field: &str) -> Result<String, Resp> {
    match body.get(field) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
        Some(Value::String(_)) => Err(invalid_input(field, "must not be empty")),
        None | Some(Value::Null) => Err(invalid_input(field, "is required")),
        Some(_) => Err(invalid_input(field, "must be a string")),
    }
}

fn opt_str(body: &Map<String, Value>, field: &str) -> Result<Option<String>, Resp> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(invalid_input(field, "must be a string")),
    }
}

fn labels_field(body: &Map<String, Value>) -> Result<Labels, Resp> {
    Ok(opt_labels(body)?.unwrap_or_default())
}

fn opt_labels(body: &Map<String, Value>) -> Result<Option<Labels>, Resp> {
    match body.get("labels") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(m)) => {
            let mut out = Labels::new();
            for (k, v) in m {
                let Some(v) = v.as_str() else {
                    return Err(invalid_input(
                        "labels",
                        &format!("value of label '{k}' must be a string"),
                    ));
                };
                if let Err(e) = validate_label(k, v) {
                    return Err(invalid_input("labels", &e));
                }
                out.insert(k.clone(), v.to_string());
            }
            Ok(Some(out))
        }
        Some(_) => Err(invalid_input("labels", "must be an object")),
    }
}

/// Checks a label against the documented syntax (keys: optional DNS-subdomain prefix and `/`,
/// name of at most 63 characters; values: at most 63 characters; both alphanumeric at the ends
/// with `-`, `_`, `.` inside; `hetzner.cloud/` reserved).
pub fn validate_label(k: &str, v: &str) -> Result<(), String> {
    fn segment_ok(s: &str) -> bool {
        let b = s.as_bytes();
        !b.is_empty()
            && b.len() <= 63
            && b[0].is_ascii_alphanumeric()
            && b[b.len() - 1].is_ascii_alphanumeric()
            && b.iter()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
    }
    let (prefix, name) = match k.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, k),
    };
    if let Some(p) = prefix {
        if p == "hetzner.cloud" || p.ends_with(".hetzner.cloud") {
            return Err(format!(
                "label key '{k}' uses the reserved prefix hetzner.cloud/"
            ));
        }
        let dns_ok = p.len() <= 253
            && p.split('.').all(|l| {
                let b = l.as_bytes();
                !b.is_empty()
                    && b.len() <= 63
                    && b[0].is_ascii_alphanumeric()
                    && b[b.len() - 1].is_ascii_alphanumeric()
                    && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
            });
        if !dns_ok {
            return Err(format!("label key '{k}' has an invalid prefix"));
        }
    }
    if !segment_ok(name) {
        return Err(format!("label key '{k}' is invalid"));
    }
    if !v.is_empty() && !segment_ok(v) {
        return Err(format!("label value '{v}' of key '{k}' is invalid"));
    }
    Ok(())
}

fn valid_hostname(n: &str) -> bool {
    n.len() <= 253
        && n.split('.').all(|l| {
            let b = l.as_bytes();
            !b.is_empty()
                && b.len() <= 63
                && b[0].is_ascii_alphanumeric()
                && b[b.len() - 1].is_ascii_alphanumeric()
                && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
        })
}

fn parse_rules(v: Option<&Value>) -> Result<Vec<Value>, Resp> {
    let Some(v) = v else { return Ok(vec![]) };
    let Some(arr) = v.as_array() else {
        return Err(invalid_input("rules", "must be an array"));
    };
    if arr.len() > 50 {
        return Err(invalid_input("rules", "must not have more than 50 entries"));
    }
    let mut out = vec![];
    for (i, r) in arr.iter().enumerate() {
        let field = format!("rules[{i}]");
        let Some(r) = r.as_object() else {
            return Err(invalid_input(&field, "must be an object"));
        };
        let direction = match r.get("direction").and_then(Value::as_str) {
            Some(d @ ("in" | "out")) => d,
            _ => {
                return Err(invalid_input(
                    &format!("{field}.direction"),
                    "must be 'in' or 'out'",
                ));
            }
        };
        let protocol = match r.get("protocol").and_then(Value::as_str) {
            Some(p @ ("tcp" | "udp" | "icmp" | "esp" | "gre")) => p,
            _ => {
                return Err(invalid_input(
                    &format!("{field}.protocol"),
                    "must be one of tcp, udp, icmp, esp, gre",
                ));
            }
        };
        let port = match r.get("port") {
            None | Some(Value::Null) => None,
            Some(Value::String(p)) => Some(p.clone()),
            Some(_) => return Err(invalid_input(&format!("{field}.port"), "must be a string")),
        };
        if matches!(protocol, "tcp" | "udp") {
            let Some(p) = &port else {
                return Err(invalid_input(
                    &format!("{field}.port"),
                    "is required for tcp and udp",
                ));
            };
            let ok = |s: &str| s.parse::<u16>().is_ok_and(|n| n >= 1);
            let valid =
                p == "any" || ok(p) || p.split_once('-').is_some_and(|(a, b)| ok(a) && ok(b));
            if !valid {
                return Err(invalid_input(
                    &format!("{field}.port"),
                    "must be a port, a range a-b, or any",
                ));
            }
        } else if port.is_some() {
            return Err(invalid_input(
                &format!("{field}.port"),
                "is only allowed for tcp and udp",
            ));
        }
        let ips = |key: &str| -> Result<Vec<String>, Resp> {
            match r.get(key) {
                None | Some(Value::Null) => Ok(vec![]),
                Some(Value::Array(a)) => a
                    .iter()
                    .map(|x| match x.as_str() {
                        Some(s) if valid_cidr(s) => Ok(s.to_string()),
                        _ => Err(invalid_input(
                            &format!("{field}.{key}"),
                            &format!("invalid CIDR {x}"),
                        )),
                    })
                    .collect(),
                Some(_) => Err(invalid_input(&format!("{field}.{key}"), "must be an array")),
            }
        };
        let source_ips = ips("source_ips")?;
        let destination_ips = ips("destination_ips")?;
        if direction == "in" && source_ips.is_empty() {
            return Err(invalid_input(
                &format!("{field}.source_ips"),
                "is required for direction in",
            ));
        }
        if direction == "out" && destination_ips.is_empty() {
            return Err(invalid_input(
                &format!("{field}.destination_ips"),
                "is required for direction out",
            ));
        }
        let description = match r.get("description") {
            None | Some(Value::Null) => Value::Null,
            Some(Value::String(s)) if s.len() <= 255 => json!(s),
            Some(_) => {
                return Err(invalid_input(
                    &format!("{field}.description"),
                    "must be a string of at most 255 characters",
                ));
            }
        };
        out.push(json!({
            "description": description,
            "direction": direction,
            "source_ips": source_ips,
            "destination_ips": destination_ips,
            "protocol": protocol,
            "port": port,
        }));
    }
    Ok(out)
}

fn valid_cidr(s: &str) -> bool {
    let Some((ip, len)) = s.split_once('/') else {
        return false;
    };
    match ip.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(_)) => len.parse::<u8>().is_ok_and(|l| l <= 32),
        Ok(std::net::IpAddr::V6(_)) => len.parse::<u8>().is_ok_and(|l| l <= 128),
        Err(_) => false,
    }
}

// =====================================================================================
// Label selectors
// =====================================================================================

/// One term of a label selector.
#[derive(Clone, Debug, PartialEq)]
pub enum SelectorTerm {
    /// `k=v` or `k==v`
    Eq(String, String),
    /// `k!=v`
    Ne(String, String),
    /// `k`
    Exists(String),
    /// `!k`
    NotExists(String),
    /// `k in (a,b)`
    In(String, Vec<String>),
    /// `k notin (a,b)`
    NotIn(String, Vec<String>),
}

/// Parses a label selector (terms separated by commas outside parentheses; all must hold).
pub fn parse_selector(s: &str) -> Result<Vec<SelectorTerm>, String> {
    let mut terms = vec![];
    let mut depth = 0i32;
    let mut cur = String::new();
    let mut raw = vec![];
    for c in s.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            _ => {}
        }
        if c == ',' && depth == 0 {
            raw.push(std::mem::take(&mut cur));
        } else {
            cur.push(c);
        }
    }
    raw.push(cur);
    if depth != 0 {
        return Err(format!("unbalanced parentheses in label selector '{s}'"));
    }
    let set = |rest: &str| -> Result<Vec<String>, String> {
        let rest = rest.trim();
        let inner = rest
            .strip_prefix('(')
            .and_then(|r| r.strip_suffix(')'))
            .ok_or_else(|| format!("expected (v1,v2) in label selector '{s}'"))?;
        Ok(inner.split(',').map(|v| v.trim().to_string()).collect())
    };
    for t in raw {
        let t = t.trim();
        if t.is_empty() {
            return Err(format!("empty term in label selector '{s}'"));
        }
        let term = if let Some((k, rest)) = t.split_once(" notin ") {
            SelectorTerm::NotIn(k.trim().to_string(), set(rest)?)
        } else if let Some((k, rest)) = t.split_once(" in ") {
            SelectorTerm::In(k.trim().to_string(), set(rest)?)
        } else if let Some((k, v)) = t.split_once("!=") {
            SelectorTerm::Ne(k.trim().to_string(), v.trim().to_string())
        } else if let Some((k, v)) = t.split_once("==") {
            SelectorTerm::Eq(k.trim().to_string(), v.trim().to_string())
        } else if let Some((k, v)) = t.split_once('=') {
            SelectorTerm::Eq(k.trim().to_string(), v.trim().to_string())
        } else if let Some(k) = t.strip_prefix('!') {
            SelectorTerm::NotExists(k.trim().to_string())
        } else {
            SelectorTerm::Exists(t.to_string())
        };
        let key = match &term {
            SelectorTerm::Eq(k, _)
            | SelectorTerm::Ne(k, _)
            | SelectorTerm::Exists(k)
            | SelectorTerm::NotExists(k)
            | SelectorTerm::In(k, _)
            | SelectorTerm::NotIn(k, _) => k,
        };
        if key.is_empty() || key.contains(char::is_whitespace) {
            return Err(format!("invalid key in label selector '{s}'"));
        }
        terms.push(term);
    }
    Ok(terms)
}

/// Whether labels satisfy every term.
pub fn selector_matches(sel: &[SelectorTerm], labels: &Labels) -> bool {
    sel.iter().all(|t| match t {
        SelectorTerm::Eq(k, v) => labels.get(k) == Some(v),
        SelectorTerm::Ne(k, v) => labels.get(k) != Some(v),
        SelectorTerm::Exists(k) => labels.contains_key(k),
        SelectorTerm::NotExists(k) => !labels.contains_key(k),
        SelectorTerm::In(k, vs) => labels.get(k).is_some_and(|x| vs.contains(x)),
        SelectorTerm::NotIn(k, vs) => labels.get(k).is_none_or(|x| !vs.contains(x)),
    })
}

// =====================================================================================
// MD5, base64, fingerprints, time
// =====================================================================================

/// MD5 (RFC 1321) of `input`.
pub fn md5(input: &[u8]) -> [u8; 16] {
    const S: [u32; 64] = [
        7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 5, 9, 14, 20, 5, 9, 14, 20, 5,
        9, 14, 20, 5, 9, 14, 20, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 6, 10,
        15, 21, 6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21,
    ];
    const K: [u32; 64] = [
        0xd76aa478, 0xe8c7b756, 0x242070db, 0xc1bdceee, 0xf57c0faf, 0x4787c62a, 0xa8304613,
        0xfd469501, 0x698098d8, 0x8b44f7af, 0xffff5bb1, 0x895cd7be, 0x6b901122, 0xfd987193,
        0xa679438e, 0x49b40821, 0xf61e2562, 0xc040b340, 0x265e5a51, 0xe9b6c7aa, 0xd62f105d,
        0x02441453, 0xd8a1e681, 0xe7d3fbc8, 0x21e1cde6, 0xc33707d6, 0xf4d50d87, 0x455a14ed,
        0xa9e3e905, 0xfcefa3f8, 0x676f02d9, 0x8d2a4c8a, 0xfffa3942, 0x8771f681, 0x6d9d6122,
        0xfde5380c, 0xa4beea44, 0x4bdecfa9, 0xf6bb4b60, 0xbebfbc70, 0x289b7ec6, 0xeaa127fa,
        0xd4ef3085, 0x04881d05, 0xd9d4d039, 0xe6db99e5, 0x1fa27cf8, 0xc4ac5665, 0xf4292244,
        0x432aff97, 0xab9423a7, 0xfc93a039, 0x655b59c3, 0x8f0ccc92, 0xffeff47d, 0x85845dd1,
        0x6fa87e4f, 0xfe2ce6e0, 0xa3014314, 0x4e0811a1, 0xf7537e82, 0xbd3af235, 0x2ad7d2bb,
        0xeb86d391,
    ];
    let mut msg = input.to_vec();
    let bit_len = (input.len() as u64).wrapping_mul(8);
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    msg.extend_from_slice(&bit_len.to_le_bytes());
    let (mut a0, mut b0, mut c0, mut d0) =
        (0x67452301u32, 0xefcdab89u32, 0x98badcfeu32, 0x10325476u32);
    for chunk in msg.chunks_exact(64) {
        let m: Vec<u32> = chunk
            .chunks_exact(4)
            .map(|w| u32::from_le_bytes([w[0], w[1], w[2], w[3]]))
            .collect();
        let (mut a, mut b, mut c, mut d) = (a0, b0, c0, d0);
        for i in 0..64 {
            let (f, g) = match i / 16 {
                0 => ((b & c) | (!b & d), i),
                1 => ((d & b) | (!d & c), (5 * i + 1) % 16),
                2 => (b ^ c ^ d, (3 * i + 5) % 16),
                _ => (c ^ (b | !d), (7 * i) % 16),
            };
            let f = f.wrapping_add(a).wrapping_add(K[i]).wrapping_add(m[g]);
            a = d;
            d = c;
            c = b;
            b = b.wrapping_add(f.rotate_left(S[i]));
        }
        a0 = a0.wrapping_add(a);
        b0 = b0.wrapping_add(b);
        c0 = c0.wrapping_add(c);
        d0 = d0.wrapping_add(d);
    }
    let mut out = [0u8; 16];
    out[..4].copy_from_slice(&a0.to_le_bytes());
    out[4..8].copy_from_slice(&b0.to_le_bytes());
    out[8..12].copy_from_slice(&c0.to_le_bytes());
    out[12..].copy_from_slice(&d0.to_le_bytes());
    out
}

/// Decodes standard base64 (with or without `=` padding).
pub fn base64_decode(s: &str) -> Result<Vec<u8>, String> {
    let val = |c: u8| -> Result<u32, String> {
        Ok(match c {
            b'A'..=b'Z' => (c - b'A') as u32,
            b'a'..=b'z' => (c - b'a' + 26) as u32,
            b'0'..=b'9' => (c - b'0' + 52) as u32,
            b'+' => 62,
            b'/' => 63,
            _ => return Err(format!("invalid base64 character {:?}", c as char)),
        })
    };
    let trimmed = s.trim_end_matches('=').as_bytes();
    if trimmed.len() % 4 == 1 {
        return Err("invalid base64 length".into());
    }
    let mut out = Vec::with_capacity(trimmed.len() * 3 / 4);
    for chunk in trimmed.chunks(4) {
        let mut acc = 0u32;
        for (i, c) in chunk.iter().enumerate() {
            acc |= val(*c)? << (18 - 6 * i);
        }
        let bytes = acc.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    Ok(out)
}

/// The MD5 colon-hex fingerprint of an OpenSSH public key line (`type base64 [comment]`), as
/// Hetzner computes it; checks that the blob's embedded type matches the first field.
pub fn md5_fingerprint(public_key: &str) -> Result<String, String> {
    let mut parts = public_key.split_whitespace();
    let (Some(kind), Some(b64)) = (parts.next(), parts.next()) else {
        return Err("is not an OpenSSH public key".into());
    };
    let blob = base64_decode(b64).map_err(|e| format!("is not an OpenSSH public key: {e}"))?;
    if blob.len() < 4 {
        return Err("is not an OpenSSH public key: blob too short".into());
    }
    let n = u32::from_be_bytes([blob[0], blob[1], blob[2], blob[3]]) as usize;
    if blob.len() < 4 + n || &blob[4..4 + n] != kind.as_bytes() {
        return Err("is not an OpenSSH public key: key type does not match the blob".into());
    }
    Ok(md5(&blob)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":"))
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Formats unix seconds as RFC 3339 UTC (`2016-01-30T23:55:00Z`).
pub fn rfc3339(unix: u64) -> String {
    let days = (unix / 86_400) as i64;
    let secs = unix % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + if m <= 2 { 1 } else { 0 };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

fn url_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn parse_query(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (url_decode(k), url_decode(v)),
            None => (url_decode(p), String::new()),
        })
        .collect()
}

// =====================================================================================
// HTTP/1.1
// =====================================================================================

const MAX_HEAD: usize = 64 * 1024;
const MAX_BODY: usize = 16 * 1024 * 1024;

async fn serve_connection(sock: tokio::net::TcpStream, shared: Arc<Shared>) {
    let _ = sock.set_nodelay(true);
    let mut conn = BufReader::new(sock);
    loop {
        let req = match read_request(&mut conn).await {
            Ok(Some(r)) => r,
            Ok(None) | Err(_) => return,
        };
        let close = req
            .header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"));
        let (n, fault) = shared.lock().arrive(&req);
        if let Some(Fault::Delay(d)) = fault {
            tokio::time::sleep(d).await;
        }
        let outcome = shared.lock().process(&req, n, fault);
        let resp = match outcome {
            Outcome::Drop => return,
            Outcome::Respond(r) => r,
        };
        let bytes = encode_response(&resp, close);
        if conn.get_mut().write_all(&bytes).await.is_err() || conn.get_mut().flush().await.is_err()
        {
            return;
        }
        if close {
            let _ = conn.get_mut().shutdown().await;
            return;
        }
    }
}

async fn read_request(conn: &mut BufReader<tokio::net::TcpStream>) -> std::io::Result<Option<Req>> {
    let bad = |m: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, m.to_string());
    let mut lines: Vec<String> = vec![];
    let mut total = 0;
    loop {
        let mut line = Vec::new();
        let n = conn.read_until(b'\n', &mut line).await?;
        if n == 0 {
            return if lines.is_empty() {
                Ok(None)
            } else {
                Err(bad("eof in head"))
            };
        }
        total += n;
        if total > MAX_HEAD {
            return Err(bad("head too large"));
        }
        let s = String::from_utf8_lossy(&line)
            .trim_end_matches(['\r', '\n'])
            .to_string();
        if s.is_empty() {
            if lines.is_empty() {
                continue;
            }
            break;
        }
        lines.push(s);
    }
    let mut first = lines[0].split_whitespace();
    let (Some(method), Some(target)) = (first.next(), first.next()) else {
        return Err(bad("bad request line"));
    };
    let headers: Vec<(String, String)> = lines[1..]
        .iter()
        .filter_map(|l| {
            l.split_once(':')
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        })
        .collect();
    let get = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    };
    if get("expect").is_some_and(|v| v.eq_ignore_ascii_case("100-continue")) {
        conn.get_mut()
            .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
            .await?;
    }
    let mut body = vec![];
    if get("transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked")) {
        loop {
            let mut size_line = String::new();
            conn.read_line(&mut size_line).await?;
            let size_hex = size_line.trim().split(';').next().unwrap_or("").to_string();
            let size = usize::from_str_radix(&size_hex, 16).map_err(|_| bad("bad chunk size"))?;
            if size == 0 {
                // trailers
                loop {
                    let mut t = String::new();
                    let n = conn.read_line(&mut t).await?;
                    if n == 0 || t.trim().is_empty() {
                        break;
                    }
                }
                break;
            }
            if body.len() + size > MAX_BODY {
                return Err(bad("body too large"));
            }
            let start = body.len();
            body.resize(start + size, 0);
            conn.read_exact(&mut body[start..]).await?;
            let mut crlf = String::new();
            conn.read_line(&mut crlf).await?;
        }
    } else if let Some(len) = get("content-length") {
        let len: usize = len.parse().map_err(|_| bad("bad content-length"))?;
        if len > MAX_BODY {
            return Err(bad("body too large"));
        }
        body.resize(len, 0);
        conn.read_exact(&mut body).await?;
    }
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p.to_string(), parse_query(q)),
        None => (target.to_string(), vec![]),
    };
    Ok(Some(Req {
        method: method.to_ascii_uppercase(),
        target: target.to_string(),
        path,
        query,
        headers,
        body,
    }))
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        410 => "Gone",
        412 => "Precondition Failed",
        422 => "Unprocessable Entity",
        423 => "Locked",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Status",
    }
}

fn encode_response(resp: &Resp, close: bool) -> Vec<u8> {
    let body = match &resp.body {
        Some(b) if resp.status != 204 => serde_json::to_vec(b).unwrap_or_default(),
        _ => vec![],
    };
    let mut head = format!("HTTP/1.1 {} {}\r\n", resp.status, reason(resp.status));
    if resp.status != 204 {
        head.push_str("Content-Type: application/json\r\n");
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    for (k, v) in &resp.headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    if close {
        head.push_str("Connection: close\r\n");
    }
    head.push_str("\r\n");
    let mut out = head.into_bytes();
    out.extend_from_slice(&body);
    out
}

// =====================================================================================
// A tiny blocking HTTP client for tests (one connection per request)
// =====================================================================================

/// A response read by [`http_request`].
#[derive(Debug, Clone)]
pub struct HttpResponse {
    /// Status code.
    pub status: u16,
    /// Headers, names as sent.
    pub headers: Vec<(String, String)>,
    /// The body parsed as JSON (`Value::Null` if empty or not JSON).
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

/// Sends one request (`Connection: close`) to `base` (`http://127.0.0.1:PORT/v1`) + `path`, with
/// `Authorization: Bearer <token>` when `token` is given. Errors if the connection is dropped.
pub fn http_request(
    base: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> std::io::Result<HttpResponse> {
    let auth = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("Authorization", a.as_str())).collect();
    let payload = body.map(|b| serde_json::to_string(b).unwrap_or_default());
    let r = crate::support::http(base, method, path, &headers, payload.as_deref())?;
    Ok(HttpResponse {
        status: r.status,
        body: serde_json::from_str(&r.body).unwrap_or(Value::Null),
        headers: r.headers,
    })
}

pub use crate::support::specs_dir;

// =====================================================================================
// A small OpenAPI 3.0 schema checker (for the self-tests' shape-fidelity checks)
// =====================================================================================

/// Checks `value` against an OpenAPI 3.0 schema from `spec` (`$ref`, `type`, `nullable`,
/// `required`, `properties`, `additionalProperties`, `items`, `enum`, `allOf`/`anyOf`/`oneOf`,
/// `format: date-time`, `minimum`). Properties that the schema does not declare are reported
/// too (strict), since the fake should send exactly what the document describes.
pub fn schema_errors(spec: &Value, schema: &Value, value: &Value) -> Vec<String> {
    let mut errs = vec![];
    check_schema(spec, schema, value, "$", &mut errs);
    errs
}

fn resolve<'a>(spec: &'a Value, mut s: &'a Value) -> &'a Value {
    while let Some(r) = s.get("$ref").and_then(Value::as_str) {
        let ptr = r.trim_start_matches('#');
        match spec.pointer(ptr) {
            Some(x) => s = x,
            None => break,
        }
    }
    s
}

fn check_schema(spec: &Value, schema: &Value, v: &Value, at: &str, errs: &mut Vec<String>) {
    let s = resolve(spec, schema);
    if v.is_null() {
        if s.get("nullable").and_then(Value::as_bool) == Some(true)
            || s.get("type").is_none() && s.get("properties").is_none()
        {
            return;
        }
        errs.push(format!("{at}: null but not nullable"));
        return;
    }
    if let Some(all) = s.get("allOf").and_then(Value::as_array) {
        for sub in all {
            check_schema(spec, sub, v, at, errs);
        }
    }
    for comb in ["anyOf", "oneOf"] {
        if let Some(alts) = s.get(comb).and_then(Value::as_array) {
            let ok = alts
                .iter()
                .filter(|sub| schema_errors(spec, sub, v).is_empty())
                .count();
            if ok == 0 || (comb == "oneOf" && ok > 1) {
                errs.push(format!("{at}: {ok} alternatives of {comb} match"));
            }
        }
    }
    if let Some(en) = s.get("enum").and_then(Value::as_array)
        && !en.contains(v)
    {
        errs.push(format!("{at}: {v} not in enum {en:?}"));
    }
    let ty = s
        .get("type")
        .and_then(Value::as_str)
        .or(if s.get("properties").is_some() {
            Some("object")
        } else {
            None
        });
    match ty {
        Some("object") => {
            let Some(obj) = v.as_object() else {
                errs.push(format!("{at}: expected object, got {v}"));
                return;
            };
            let props = s.get("properties").and_then(Value::as_object);
            for r in s
                .get("required")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if let Some(r) = r.as_str()
                    && !obj.contains_key(r)
                {
                    errs.push(format!("{at}: missing required property '{r}'"));
                }
            }
            for (k, val) in obj {
                match props.and_then(|p| p.get(k)) {
                    Some(ps) => check_schema(spec, ps, val, &format!("{at}.{k}"), errs),
                    None => match s.get("additionalProperties") {
                        Some(Value::Bool(true)) => {}
                        Some(ap) if ap.is_object() => {
                            check_schema(spec, ap, val, &format!("{at}.{k}"), errs)
                        }
                        _ => {
                            if props.is_some()
                                && s.get("allOf").is_none()
                                && s.get("oneOf").is_none()
                                && s.get("anyOf").is_none()
                            {
                                errs.push(format!("{at}: property '{k}' is not in the schema"))
                            }
                        }
                    },
                }
            }
        }
        Some("array") => {
            let Some(arr) = v.as_array() else {
                errs.push(format!("{at}: expected array, got {v}"));
                return;
            };
            if let Some(items) = s.get("items") {
                for (i, x) in arr.iter().enumerate() {
                    check_schema(spec, items, x, &format!("{at}[{i}]"), errs);
                }
            }
        }
        Some("string") => match v.as_str() {
            None => errs.push(format!("{at}: expected string, got {v}")),
            Some(st) => {
                if s.get("format").and_then(Value::as_str) == Some("date-time")
                    && !looks_like_rfc3339(st)
                {
                    errs.push(format!("{at}: '{st}' is not RFC 3339"));
                }
            }
        },
        Some("integer") => {
            if !(v.is_i64() || v.is_u64()) {
                errs.push(format!("{at}: expected integer, got {v}"));
            } else if let Some(min) = s.get("minimum").and_then(Value::as_f64)
                && v.as_f64().unwrap_or(0.0) < min
            {
                errs.push(format!("{at}: {v} below minimum {min}"));
            }
        }
        Some("number") if !v.is_number() => {
            errs.push(format!("{at}: expected number, got {v}"));
        }
        Some("boolean") if !v.is_boolean() => {
            errs.push(format!("{at}: expected boolean, got {v}"));
        }
        _ => {}
    }
}

fn looks_like_rfc3339(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 20
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
        && b[16] == b':'
        && (s.ends_with('Z') || s.contains('+'))
}

/// The response schema of `method path` for `status` (`"200"`, `"201"`, `"4xx"`, ...).
pub fn response_schema<'a>(
    spec: &'a Value,
    method: &str,
    path: &str,
    status: &str,
) -> Option<&'a Value> {
    spec.get("paths")?
        .get(path)?
        .get(method.to_ascii_lowercase())?
        .get("responses")?
        .get(status)?
        .pointer("/content/application~1json/schema")
}

// =====================================================================================
// Self-tests
// =====================================================================================

#[cfg(test)]
mod self_tests {
    use super::*;

    const TOKEN: Option<&str> = Some("test-token");
    // ssh-keygen -t ed25519 (throwaway); `ssh-keygen -l -E md5` gives the fingerprint below.
    const KEY_A: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGEZksVoT5fNJmdhBBIauqPRUHr9ncyNgi+AL0ROYE4n a@test";
    const KEY_A_MD5: &str = "50:b6:29:99:10:4e:6c:2d:d8:b7:da:08:d6:0e:17:aa";
    const KEY_B: &str = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQDYO0MibnQb62t/mt++G3/DzVK5PfFO0dlcl6dsyuiqgZXQcIA6bgRclB6ZmlzXSPyM/n/egLqKgjzBarT165Q50ffQki1e6cLgz+Cr49d+vAPGzpyX62uDXmQptzgk7gaactP/XUEfByD/6mSXFiTlM7AEKEamwKea/nhE8B+0zeIfQawH815aE/xihSusHHFNRlkd1HQlQJhzofUWm6Xh/9e4qMwtVK6EKVIH/gjbQyqBUnVPJ5/GZHIUzRmIN3SfMl6ns4882k2wy/60/d/UNaROTaR6yz7BceuhiMTPFyhLwAJxMqwmyuy8IraUFPVN4P+HvejOaoaICJwwYN7T r@test";
    const KEY_B_MD5: &str = "d6:c2:64:95:a4:66:4e:31:1e:de:ac:45:5e:69:e7:dd";

    fn call(f: &FakeHetzner, method: &str, path: &str, body: Option<Value>) -> HttpResponse {
        http_request(&f.url(), method, path, TOKEN, body.as_ref()).expect("request")
    }

    /// A syntactically valid ed25519 public key line whose blob is derived from `seed`.
    fn key(seed: u32) -> String {
        let mut blob = vec![0, 0, 0, 11];
        blob.extend_from_slice(b"ssh-ed25519");
        blob.extend_from_slice(&[0, 0, 0, 32]);
        for i in 0..32u32 {
            blob.push((seed.wrapping_mul(2654435761).wrapping_add(i * 97) >> (i % 24)) as u8);
        }
        format!("ssh-ed25519 {} k{seed}@test", base64_encode(&blob))
    }

    fn base64_encode(b: &[u8]) -> String {
        const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = String::new();
        for c in b.chunks(3) {
            let n = (c[0] as u32) << 16
                | (*c.get(1).unwrap_or(&0) as u32) << 8
                | *c.get(2).unwrap_or(&0) as u32;
            for i in 0..4 {
                if i <= c.len() {
                    out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
                } else {
                    out.push('=');
                }
            }
        }
        out
    }

    fn server_body(name: &str) -> Value {
        json!({
            "name": name, "server_type": "cx22", "image": "ubuntu-24.04", "location": "fsn1",
            "user_data": "#cloud-config\n", "labels": {"managed-by": "bootstrap", "bootstrap-deployment": name},
            "start_after_create": true, "public_net": {"enable_ipv4": true, "enable_ipv6": true},
        })
    }

    fn wait_action(f: &FakeHetzner, id: u64) -> Value {
        for _ in 0..20 {
            let r = call(f, "GET", &format!("/actions/{id}"), None);
            assert_eq!(r.status, 200);
            if r.body["action"]["status"] != "running" {
                return r.body["action"].clone();
            }
        }
        panic!("action {id} never finished");
    }

    #[test]
    fn md5_test_vectors() {
        let hex = |d: [u8; 16]| d.iter().map(|b| format!("{b:02x}")).collect::<String>();
        assert_eq!(hex(md5(b"")), "d41d8cd98f00b204e9800998ecf8427e");
        assert_eq!(hex(md5(b"abc")), "900150983cd24fb0d6963f7d28e17f72");
        assert_eq!(
            hex(md5(b"The quick brown fox jumps over the lazy dog")),
            "9e107d9d372bb6826bd81d3542a419d6"
        );
        assert_eq!(
            hex(md5(
                b"12345678901234567890123456789012345678901234567890123456789012345678901234567890"
            )),
            "57edf4a22be3c955ac49da2e2107b67a"
        );
        // fingerprints as printed by `ssh-keygen -l -E md5`
        assert_eq!(md5_fingerprint(KEY_A).unwrap(), KEY_A_MD5);
        assert_eq!(md5_fingerprint(KEY_B).unwrap(), KEY_B_MD5);
        assert!(
            md5_fingerprint(
                "ssh-rsa AAAAC3NzaC1lZDI1NTE5AAAAIGEZksVoT5fNJmdhBBIauqPRUHr9ncyNgi+AL0ROYE4n"
            )
            .is_err()
        );
        assert!(md5_fingerprint("not a key").is_err());
    }

    #[test]
    fn rfc3339_and_labels() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_454_198_100), "2016-01-30T23:55:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert!(validate_label("managed-by", "bootstrap").is_ok());
        assert!(validate_label("example.com/my", "label").is_ok());
        assert!(validate_label("just-a-key", "").is_ok());
        assert!(validate_label("hetzner.cloud/x", "y").is_err());
        assert!(validate_label("bad key", "v").is_err());
        assert!(validate_label("k", "has space").is_err());
        assert!(validate_label("k", "-leading").is_err());
    }

    #[test]
    fn auth_is_required() {
        let f = FakeHetzner::start_default();
        let r = http_request(&f.url(), "GET", "/ssh_keys", None, None).unwrap();
        assert_eq!(r.status, 401);
        assert_eq!(r.body["error"]["code"], "unauthorized");
        assert!(r.header("RateLimit-Limit").is_some());
        let r = call(&f, "GET", "/ssh_keys", None);
        assert_eq!(r.status, 200);
        let f2 = FakeHetzner::start(FakeConfig {
            token: Some("right".into()),
            ..Default::default()
        });
        assert_eq!(
            http_request(&f2.url(), "GET", "/servers", Some("wrong"), None)
                .unwrap()
                .status,
            401
        );
        assert_eq!(
            http_request(&f2.url(), "GET", "/servers", Some("right"), None)
                .unwrap()
                .status,
            200
        );
    }

    #[test]
    fn pagination_60_keys_two_pages() {
        let f = FakeHetzner::start_default();
        for i in 0..60 {
            let r = call(
                &f,
                "POST",
                "/ssh_keys",
                Some(
                    json!({"name": format!("key-{i:02}"), "public_key": key(i), "labels": {"n": i.to_string()}}),
                ),
            );
            assert_eq!(r.status, 201, "{:?}", r.body);
        }
        let p1 = call(&f, "GET", "/ssh_keys?per_page=50", None);
        assert_eq!(p1.body["ssh_keys"].as_array().unwrap().len(), 50);
        assert_eq!(
            p1.body["meta"]["pagination"],
            json!({"page": 1, "per_page": 50, "previous_page": null, "next_page": 2, "last_page": 2, "total_entries": 60})
        );
        assert!(p1.header("Link").unwrap().contains("rel=\"next\""));
        let p2 = call(&f, "GET", "/ssh_keys?per_page=50&page=2", None);
        assert_eq!(p2.body["ssh_keys"].as_array().unwrap().len(), 10);
        assert_eq!(
            p2.body["meta"]["pagination"],
            json!({"page": 2, "per_page": 50, "previous_page": 1, "next_page": null, "last_page": 2, "total_entries": 60})
        );
        // default per_page 25, max 50
        let d = call(&f, "GET", "/ssh_keys", None);
        assert_eq!(d.body["ssh_keys"].as_array().unwrap().len(), 25);
        assert_eq!(d.body["meta"]["pagination"]["last_page"], 3);
        let big = call(&f, "GET", "/ssh_keys?per_page=500", None);
        assert_eq!(big.body["meta"]["pagination"]["per_page"], 50);
        // no duplicates across pages
        let mut ids: Vec<u64> = p1.body["ssh_keys"]
            .as_array()
            .unwrap()
            .iter()
            .chain(p2.body["ssh_keys"].as_array().unwrap())
            .map(|k| k["id"].as_u64().unwrap())
            .collect();
        ids.dedup();
        assert_eq!(ids.len(), 60);
        // sorting
        let s = call(&f, "GET", "/ssh_keys?sort=name:desc&per_page=1", None);
        assert_eq!(s.body["ssh_keys"][0]["name"], "key-59");
        // filters
        let n = call(&f, "GET", "/ssh_keys?name=key-07", None);
        assert_eq!(n.body["ssh_keys"].as_array().unwrap().len(), 1);
        let fp = n.body["ssh_keys"][0]["fingerprint"]
            .as_str()
            .unwrap()
            .to_string();
        let byfp = call(
            &f,
            "GET",
            &format!("/ssh_keys?fingerprint={}", url_encode(&fp)),
            None,
        );
        assert_eq!(byfp.body["ssh_keys"][0]["name"], "key-07");
        assert_eq!(call(&f, "GET", "/ssh_keys?page=0", None).status, 422);
    }

    #[test]
    fn label_selectors() {
        let f = FakeHetzner::start_default();
        f.insert_server("a", &[("env", "prod"), ("tier", "web")]);
        f.insert_server("b", &[("env", "staging"), ("tier", "db")]);
        f.insert_server("c", &[("env", "testing")]);
        let names = |sel: &str| -> Vec<String> {
            let r = call(
                &f,
                "GET",
                &format!("/servers?label_selector={}", url_encode(sel)),
                None,
            );
            assert_eq!(r.status, 200, "{sel}: {:?}", r.body);
            r.body["servers"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s["name"].as_str().unwrap().to_string())
                .collect()
        };
        assert_eq!(names("env=prod"), ["a"]);
        assert_eq!(names("env==prod"), ["a"]);
        assert_eq!(names("env!=prod"), ["b", "c"]);
        assert_eq!(names("tier"), ["a", "b"]);
        assert_eq!(names("!tier"), ["c"]);
        assert_eq!(names("env in (staging,testing)"), ["b", "c"]);
        assert_eq!(names("env notin (staging,testing)"), ["a"]);
        assert_eq!(names("env=prod,tier=web"), ["a"]);
        assert_eq!(names("env=prod,tier=db"), Vec::<String>::new());
        assert_eq!(names("tier,env!=prod"), ["b"]);
        // '+' and %20 both decode to a space
        let r = call(&f, "GET", "/servers?label_selector=env+in+%28prod%29", None);
        assert_eq!(r.body["servers"].as_array().unwrap().len(), 1);
        assert_eq!(
            call(&f, "GET", "/servers?label_selector=env%3Dprod%2C", None).status,
            422
        );
        assert_eq!(f.resources_labelled("env", "prod"), 1);
    }

    #[test]
    fn uniqueness_errors() {
        let f = FakeHetzner::start_default();
        let r = call(
            &f,
            "POST",
            "/ssh_keys",
            Some(json!({"name": "k", "public_key": key(1)})),
        );
        assert_eq!(r.status, 201);
        assert_eq!(
            r.body["ssh_key"]["fingerprint"],
            md5_fingerprint(&key(1)).unwrap()
        );
        let dup_name = call(
            &f,
            "POST",
            "/ssh_keys",
            Some(json!({"name": "k", "public_key": key(2)})),
        );
        assert_eq!(dup_name.status, 409);
        assert_eq!(dup_name.body["error"]["code"], "uniqueness_error");
        let dup_fp = call(
            &f,
            "POST",
            "/ssh_keys",
            Some(json!({"name": "other", "public_key": key(1)})),
        );
        assert_eq!(dup_fp.status, 409);
        assert_eq!(dup_fp.body["error"]["code"], "uniqueness_error");
        assert_eq!(
            dup_fp.body["error"]["details"]["fields"][0]["name"],
            "public_key"
        );
        let bad = call(
            &f,
            "POST",
            "/ssh_keys",
            Some(json!({"name": "x", "public_key": "garbage"})),
        );
        assert_eq!(
            (bad.status, bad.body["error"]["code"].as_str()),
            (422, Some("invalid_input"))
        );
        let missing = call(&f, "POST", "/ssh_keys", Some(json!({"name": "x"})));
        assert_eq!(missing.status, 422);
        let badjson =
            http_request(&f.url(), "POST", "/ssh_keys", TOKEN, Some(&json!("str"))).unwrap();
        assert_eq!(badjson.body["error"]["code"], "json_error");

        let fw = call(&f, "POST", "/firewalls", Some(json!({"name": "fw"})));
        assert_eq!(fw.status, 201);
        let fw2 = call(&f, "POST", "/firewalls", Some(json!({"name": "fw"})));
        assert_eq!(
            (fw2.status, fw2.body["error"]["code"].as_str()),
            (409, Some("uniqueness_error"))
        );

        assert_eq!(
            call(&f, "POST", "/servers", Some(server_body("web1"))).status,
            201
        );
        let s2 = call(&f, "POST", "/servers", Some(server_body("web1")));
        assert_eq!(
            (s2.status, s2.body["error"]["code"].as_str()),
            (409, Some("uniqueness_error"))
        );
        assert_eq!(f.servers().len(), 1);
    }

    #[test]
    fn user_data_limit_and_input_checks() {
        let f = FakeHetzner::start_default();
        let mut b = server_body("big");
        b["user_data"] = json!("x".repeat(USER_DATA_LIMIT + 1));
        let r = call(&f, "POST", "/servers", Some(b));
        assert_eq!(
            (r.status, r.body["error"]["code"].as_str()),
            (422, Some("invalid_input"))
        );
        assert_eq!(r.body["error"]["details"]["fields"][0]["name"], "user_data");
        let mut ok = server_body("exact");
        ok["user_data"] = json!("x".repeat(USER_DATA_LIMIT));
        assert_eq!(call(&f, "POST", "/servers", Some(ok)).status, 201);
        let mut badlabel = server_body("lbl");
        badlabel["labels"] = json!({"hetzner.cloud/x": "y"});
        assert_eq!(call(&f, "POST", "/servers", Some(badlabel)).status, 422);
        let mut badkey = server_body("k");
        badkey["ssh_keys"] = json!(["nope"]);
        assert_eq!(call(&f, "POST", "/servers", Some(badkey)).status, 422);
        let mut badtype = server_body("t");
        badtype["server_type"] = json!("cx99");
        assert_eq!(call(&f, "POST", "/servers", Some(badtype)).status, 422);
        let badrule = call(
            &f,
            "POST",
            "/firewalls",
            Some(
                json!({"name": "f", "rules": [{"direction": "in", "protocol": "tcp", "port": "22"}]}),
            ),
        );
        assert_eq!(badrule.status, 422, "in-rule without source_ips");
        assert_eq!(f.servers().len(), 1);
    }

    #[test]
    fn action_lifecycle_and_server_status() {
        let f = FakeHetzner::start_default();
        let k = call(
            &f,
            "POST",
            "/ssh_keys",
            Some(json!({"name": "k", "public_key": key(3)})),
        );
        let mut body = server_body("web1");
        body["ssh_keys"] = json!([k.body["ssh_key"]["name"]]);
        let r = call(&f, "POST", "/servers", Some(body));
        assert_eq!(r.status, 201);
        assert_eq!(r.body["server"]["status"], "initializing");
        assert_eq!(r.body["root_password"], Value::Null);
        assert_eq!(r.body["action"]["command"], "create_server");
        assert_eq!(r.body["action"]["status"], "running");
        assert_eq!(r.body["action"]["progress"], 0);
        assert_eq!(r.body["action"]["finished"], Value::Null);
        assert_eq!(r.body["next_actions"][0]["command"], "start_server");
        let ip = r.body["server"]["public_net"]["ipv4"]["ip"]
            .as_str()
            .unwrap();
        assert!(ip.starts_with("203.0.113."), "{ip}");
        assert!(
            r.body["server"]["public_net"]["ipv6"]["ip"]
                .as_str()
                .unwrap()
                .starts_with("2001:db8:")
        );
        let sid = r.body["server"]["id"].as_u64().unwrap();
        let aid = r.body["action"]["id"].as_u64().unwrap();

        let p1 = call(&f, "GET", &format!("/actions/{aid}"), None);
        assert_eq!(p1.body["action"]["status"], "running");
        let prog1 = p1.body["action"]["progress"].as_u64().unwrap();
        let p2 = call(&f, "GET", &format!("/actions?id={aid}"), None);
        assert_eq!(p2.body["actions"][0]["status"], "running");
        assert!(p2.body["actions"][0]["progress"].as_u64().unwrap() > prog1);
        // a GET of the server is an observation of its actions too: the third one finishes it
        assert_eq!(
            call(&f, "GET", &format!("/servers/{sid}"), None).body["server"]["status"],
            "running"
        );
        let p3 = call(&f, "GET", &format!("/actions/{aid}"), None);
        assert_eq!(p3.body["action"]["status"], "success");
        assert_eq!(p3.body["action"]["progress"], 100);
        assert!(p3.body["action"]["finished"].is_string());
        assert_eq!(p3.body["action"]["error"], Value::Null);
        assert_eq!(
            p3.body["action"]["resources"],
            json!([{"id": sid, "type": "server"}])
        );
        assert_eq!(
            call(&f, "GET", &format!("/servers/{sid}"), None).body["server"]["status"],
            "running"
        );

        // a failing action
        f.fail_next_action("create_server", "action_failed", "placement failed");
        let r = call(&f, "POST", "/servers", Some(server_body("web2")));
        let a = wait_action(&f, r.body["action"]["id"].as_u64().unwrap());
        assert_eq!(a["status"], "error");
        assert_eq!(
            a["error"],
            json!({"code": "action_failed", "message": "placement failed"})
        );
        let s2 = f.server_by_name("web2").unwrap();
        assert_eq!(s2["status"], "off");

        // polls = 0: finished at once
        f.set_action_polls(0);
        let r = call(&f, "POST", "/servers", Some(server_body("web3")));
        assert_eq!(r.body["action"]["status"], "success");
        assert_eq!(r.body["server"]["status"], "running");
        assert_eq!(call(&f, "GET", "/actions", None).status, 410);
    }

    #[test]
    fn rate_limit_429_with_headers() {
        let f = FakeHetzner::start(FakeConfig {
            rate_limit: 3,
            rate_refill_per_sec: 0.0,
            ..Default::default()
        });
        let r1 = call(&f, "GET", "/servers", None);
        assert_eq!(r1.status, 200);
        assert_eq!(r1.header("RateLimit-Limit"), Some("3"));
        assert_eq!(r1.header("RateLimit-Remaining"), Some("2"));
        let reset: u64 = r1.header("RateLimit-Reset").unwrap().parse().unwrap();
        assert!(reset >= unix_now());
        call(&f, "GET", "/servers", None);
        let r3 = call(&f, "GET", "/servers", None);
        assert_eq!(r3.header("RateLimit-Remaining"), Some("0"));
        let r4 = call(&f, "GET", "/servers", None);
        assert_eq!(r4.status, 429);
        assert_eq!(r4.body["error"]["code"], "rate_limit_exceeded");
        assert_eq!(r4.header("RateLimit-Remaining"), Some("0"));
        assert!(r4.header("RateLimit-Reset").is_some());
        // refill
        f.set_rate_limit(3600, 1000.0, 0);
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(call(&f, "GET", "/servers", None).status, 200);
    }

    #[test]
    fn fault_status500_does_nothing_and_after_does_the_work() {
        let f = FakeHetzner::start_default();
        f.fail_request(1, Fault::Status500);
        let r = call(
            &f,
            "POST",
            "/ssh_keys",
            Some(json!({"name": "k", "public_key": key(5)})),
        );
        assert_eq!(r.status, 500);
        assert_eq!(r.body["error"]["code"], "server_error");
        assert!(f.ssh_keys().is_empty());
        f.fail_request(2, Fault::Status500After);
        let r = call(
            &f,
            "POST",
            "/ssh_keys",
            Some(json!({"name": "k", "public_key": key(5)})),
        );
        assert_eq!(r.status, 500);
        assert_eq!(f.ssh_keys().len(), 1);
        // the retry now sees the key
        let r = call(
            &f,
            "POST",
            "/ssh_keys",
            Some(json!({"name": "k", "public_key": key(5)})),
        );
        assert_eq!(r.status, 409);
        let log = f.request_log();
        assert_eq!(log.iter().map(|l| l.2).collect::<Vec<_>>(), [500, 500, 409]);
        f.fail_matching("GET", "/servers", Fault::Status(503, "unavailable"), 2);
        assert_eq!(call(&f, "GET", "/servers", None).status, 503);
        assert_eq!(call(&f, "GET", "/ssh_keys", None).status, 200);
        assert_eq!(
            call(&f, "GET", "/v1/servers".trim_start_matches("/v1"), None).status,
            503
        );
        assert_eq!(call(&f, "GET", "/servers", None).status, 200);
    }

    #[test]
    fn fault_drop_and_drop_after() {
        let f = FakeHetzner::start_default();
        f.fail_request(1, Fault::Drop);
        let r = http_request(
            &f.url(),
            "POST",
            "/firewalls",
            TOKEN,
            Some(&json!({"name": "fw"})),
        );
        assert!(r.is_err(), "dropped request must fail: {r:?}");
        assert!(f.firewalls().is_empty());
        f.fail_request(2, Fault::DropAfter);
        let r = http_request(
            &f.url(),
            "POST",
            "/firewalls",
            TOKEN,
            Some(&json!({"name": "fw"})),
        );
        assert!(r.is_err());
        assert_eq!(f.firewalls().len(), 1);
        let log = f.requests();
        assert_eq!(log[0].status, 0);
        assert_eq!(log[0].fault, Some(Fault::Drop));
        assert_eq!(log[1].status, 0);
        assert!(log[1].response.as_ref().unwrap()["firewall"]["id"].is_u64());
        // a persistent drop on every server POST
        f.fail_matching("POST", "/servers", Fault::Drop, usize::MAX);
        for _ in 0..3 {
            assert!(
                http_request(&f.url(), "POST", "/servers", TOKEN, Some(&server_body("x"))).is_err()
            );
        }
        assert!(f.servers().is_empty());
        f.clear_faults();
        assert_eq!(
            call(&f, "POST", "/servers", Some(server_body("x"))).status,
            201
        );
    }

    #[test]
    fn drop_on_a_keep_alive_connection() {
        // A client that reuses one connection: the second request is dropped mid-stream.
        let f = FakeHetzner::start_default();
        f.fail_request(2, Fault::Drop);
        let mut s = std::net::TcpStream::connect(f.addr()).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let req = "GET /v1/servers HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer t\r\n\r\n";
        s.write_all(req.as_bytes()).unwrap();
        let mut buf = vec![0u8; 65536];
        let n = s.read(&mut buf).unwrap();
        assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
        s.write_all(req.as_bytes()).unwrap();
        let n = s.read(&mut buf).unwrap_or(0);
        assert_eq!(n, 0, "expected EOF after the dropped request");
    }

    #[test]
    fn fault_delay() {
        let f = FakeHetzner::start_default();
        f.fail_request(1, Fault::Delay(Duration::from_millis(300)));
        let t = Instant::now();
        assert_eq!(call(&f, "GET", "/servers", None).status, 200);
        assert!(t.elapsed() >= Duration::from_millis(300));
    }

    #[test]
    fn firewall_resource_in_use_and_apply() {
        let f = FakeHetzner::start_default();
        let fw = call(
            &f,
            "POST",
            "/firewalls",
            Some(
                json!({"name": "fw", "labels": {"managed-by": "bootstrap"}, "rules": [
                    {"direction": "in", "protocol": "tcp", "port": "22", "source_ips": ["203.0.113.7/32"], "description": "ssh"},
                    {"direction": "in", "protocol": "icmp", "source_ips": ["0.0.0.0/0", "::/0"]}
                ]}),
            ),
        );
        assert_eq!(fw.status, 201);
        assert_eq!(fw.body["actions"], json!([]));
        assert_eq!(fw.body["firewall"]["rules"][1]["port"], Value::Null);
        assert_eq!(
            fw.body["firewall"]["rules"][0]["destination_ips"],
            json!([])
        );
        let fid = fw.body["firewall"]["id"].as_u64().unwrap();
        let mut body = server_body("web1");
        body["firewalls"] = json!([{"firewall": fid}]);
        let r = call(&f, "POST", "/servers", Some(body));
        assert_eq!(r.status, 201);
        let sid = r.body["server"]["id"].as_u64().unwrap();
        assert_eq!(
            r.body["server"]["public_net"]["firewalls"],
            json!([{"id": fid, "status": "pending"}])
        );
        let apply = r.body["next_actions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["command"] == "apply_firewall")
            .unwrap()
            .clone();
        assert_eq!(
            apply["resources"],
            json!([{"id": sid, "type": "server"}, {"id": fid, "type": "firewall"}])
        );
        wait_action(&f, apply["id"].as_u64().unwrap());
        let s = call(&f, "GET", &format!("/servers/{sid}"), None);
        assert_eq!(
            s.body["server"]["public_net"]["firewalls"],
            json!([{"id": fid, "status": "applied"}])
        );
        let g = call(&f, "GET", &format!("/firewalls/{fid}"), None);
        assert_eq!(
            g.body["firewall"]["applied_to"],
            json!([{"type": "server", "server": {"id": sid}}])
        );

        let d = call(&f, "DELETE", &format!("/firewalls/{fid}"), None);
        assert_eq!(
            (d.status, d.body["error"]["code"].as_str()),
            (422, Some("resource_in_use"))
        );

        // apply_to_resources on a second firewall, then already applied
        let fw2 = call(
            &f,
            "POST",
            "/firewalls",
            Some(json!({"name": "fw2", "apply_to": [{"type": "server", "server": {"id": sid}}]})),
        );
        assert_eq!(fw2.body["actions"][0]["command"], "apply_firewall");
        let fid2 = fw2.body["firewall"]["id"].as_u64().unwrap();
        let again = call(
            &f,
            "POST",
            &format!("/firewalls/{fid2}/actions/apply_to_resources"),
            Some(json!({"apply_to": [{"type": "server", "server": {"id": sid}}]})),
        );
        assert_eq!(
            (again.status, again.body["error"]["code"].as_str()),
            (422, Some("firewall_already_applied"))
        );
        let fw3 = call(&f, "POST", "/firewalls", Some(json!({"name": "fw3"})));
        let fid3 = fw3.body["firewall"]["id"].as_u64().unwrap();
        let ap = call(
            &f,
            "POST",
            &format!("/firewalls/{fid3}/actions/apply_to_resources"),
            Some(
                json!({"apply_to": [{"type": "label_selector", "label_selector": {"selector": "managed-by=bootstrap"}}]}),
            ),
        );
        assert_eq!(ap.status, 201);
        let g3 = call(&f, "GET", &format!("/firewalls/{fid3}"), None);
        assert_eq!(
            g3.body["firewall"]["applied_to"][0]["applied_to_resources"],
            json!([{"type": "server", "server": {"id": sid}}])
        );
        let missing = call(
            &f,
            "POST",
            &format!("/firewalls/{fid3}/actions/apply_to_resources"),
            Some(json!({"apply_to": [{"type": "server", "server": {"id": 1}}]})),
        );
        assert_eq!(
            (missing.status, missing.body["error"]["code"].as_str()),
            (404, Some("firewall_resource_not_found"))
        );

        // remove_from_resources frees fw2 once its action finished
        let rm = call(
            &f,
            "POST",
            &format!("/firewalls/{fid2}/actions/remove_from_resources"),
            Some(json!({"remove_from": [{"type": "server", "server": {"id": sid}}]})),
        );
        assert_eq!(rm.status, 201);
        assert_eq!(
            call(&f, "DELETE", &format!("/firewalls/{fid2}"), None).status,
            422
        );
        wait_action(&f, rm.body["actions"][0]["id"].as_u64().unwrap());
        assert_eq!(
            call(&f, "DELETE", &format!("/firewalls/{fid2}"), None).status,
            204
        );

        // after the server is gone, the firewall can be deleted
        let del = call(&f, "DELETE", &format!("/servers/{sid}"), None);
        wait_action(&f, del.body["action"]["id"].as_u64().unwrap());
        let g = call(&f, "GET", &format!("/firewalls/{fid}"), None);
        assert_eq!(g.body["firewall"]["applied_to"], json!([]));
        assert_eq!(
            call(&f, "DELETE", &format!("/firewalls/{fid}"), None).status,
            204
        );
        assert_eq!(
            call(&f, "DELETE", &format!("/firewalls/{fid3}"), None).status,
            204
        );
        assert_eq!(
            call(&f, "GET", &format!("/firewalls/{fid}"), None).status,
            404
        );
    }

    #[test]
    fn delete_server_lifecycle() {
        let f = FakeHetzner::start(FakeConfig {
            action_polls: 1,
            ..Default::default()
        });
        let r = call(&f, "POST", "/servers", Some(server_body("web1")));
        let sid = r.body["server"]["id"].as_u64().unwrap();
        wait_action(&f, r.body["action"]["id"].as_u64().unwrap());
        let d = call(&f, "DELETE", &format!("/servers/{sid}"), None);
        assert_eq!(d.status, 200);
        assert_eq!(d.body["action"]["command"], "delete_server");
        assert_eq!(d.body["action"]["status"], "running");
        assert_eq!(
            d.body["action"]["resources"],
            json!([{"id": sid, "type": "server"}])
        );
        let again = call(&f, "DELETE", &format!("/servers/{sid}"), None);
        assert_eq!(
            (again.status, again.body["error"]["code"].as_str()),
            (423, Some("locked"))
        );
        let g = call(&f, "GET", &format!("/servers/{sid}"), None);
        assert_eq!(g.status, 200, "still there while delete_server runs");
        assert_eq!(g.body["server"]["status"], "deleting");
        let a = wait_action(&f, d.body["action"]["id"].as_u64().unwrap());
        assert_eq!(a["status"], "success");
        let g = call(&f, "GET", &format!("/servers/{sid}"), None);
        assert_eq!(
            (g.status, g.body["error"]["code"].as_str()),
            (404, Some("not_found"))
        );
        assert!(f.servers().is_empty());
        assert_eq!(
            call(&f, "DELETE", &format!("/servers/{sid}"), None).status,
            404
        );
        // failing delete: the server stays with its old status
        let sid2 = f.insert_server("keep", &[]);
        f.fail_next_action("delete_server", "action_failed", "nope");
        let d = call(&f, "DELETE", &format!("/servers/{sid2}"), None);
        assert_eq!(
            wait_action(&f, d.body["action"]["id"].as_u64().unwrap())["status"],
            "error"
        );
        assert_eq!(f.server_by_name("keep").unwrap()["status"], "running");
    }

    #[test]
    fn snapshots_and_images() {
        let f = FakeHetzner::start(FakeConfig {
            action_polls: 1,
            ..Default::default()
        });
        let sid = f.insert_server("web1", &[("bootstrap-deployment", "web1")]);
        let r = call(
            &f,
            "POST",
            &format!("/servers/{sid}/actions/create_image"),
            Some(
                json!({"type": "snapshot", "description": "web1-1", "labels": {"managed-by": "bootstrap", "bootstrap-deployment": "web1"}}),
            ),
        );
        assert_eq!(r.status, 201, "{:?}", r.body);
        assert_eq!(r.body["image"]["status"], "creating");
        let iid = r.body["image"]["id"].as_u64().unwrap();
        wait_action(&f, r.body["action"]["id"].as_u64().unwrap());
        let l = call(
            &f,
            "GET",
            "/images?type=snapshot&label_selector=bootstrap-deployment%3Dweb1",
            None,
        );
        assert_eq!(l.body["images"].as_array().unwrap().len(), 1);
        assert_eq!(l.body["images"][0]["status"], "available");
        assert_eq!(
            l.body["images"][0]["created_from"],
            json!({"id": sid, "name": "web1"})
        );
        let old = f.insert_snapshot("old", &[("bootstrap-deployment", "web1")], 1_600_000_000);
        let sorted = call(&f, "GET", "/images?type=snapshot&sort=created:asc", None);
        assert_eq!(sorted.body["images"][0]["id"], old);
        assert_eq!(f.images_labelled("bootstrap-deployment", "web1"), 2);
        assert_eq!(
            call(&f, "DELETE", &format!("/images/{old}"), None).status,
            204
        );
        assert_eq!(call(&f, "DELETE", "/images/2", None).status, 422);
        let sys = call(&f, "GET", "/images?type=system&name=ubuntu-24.04", None);
        assert_eq!(sys.body["images"].as_array().unwrap().len(), 1);
        let eb = call(
            &f,
            "POST",
            &format!("/servers/{sid}/actions/enable_backup"),
            None,
        );
        assert_eq!(eb.body["action"]["command"], "enable_backup");
        assert_eq!(f.server_by_name("web1").unwrap()["backup_window"], "22-02");
        assert_eq!(f.snapshots().len(), 1);
        let _ = iid;
    }

    /// Shape fidelity: every kind of body the fake sends is checked against the response schema
    /// of its operation in the official document.
    #[test]
    fn responses_match_the_official_schemas() {
        let path = specs_dir().join("hetzner-cloud.json");
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("read {}: {e} (set BOOTSTRAP_SPECS_DIR)", path.display()));
        let spec: Value = serde_json::from_str(&text).unwrap();
        let f = FakeHetzner::start_default();
        let mut checked = 0;
        let mut check = |method: &str, op: &str, status: &str, body: &Value| {
            let schema = response_schema(&spec, method, op, status)
                .unwrap_or_else(|| panic!("no schema for {method} {op} {status}"));
            let errs = schema_errors(&spec, schema, body);
            assert!(
                errs.is_empty(),
                "{method} {op} {status}: {errs:#?}\nbody: {body:#}"
            );
            checked += 1;
        };
        let k = call(
            &f,
            "POST",
            "/ssh_keys",
            Some(json!({"name": "k", "public_key": key(9), "labels": {"a": "b"}})),
        );
        check("post", "/ssh_keys", "201", &k.body);
        let kid = k.body["ssh_key"]["id"].as_u64().unwrap();
        check(
            "get",
            "/ssh_keys",
            "200",
            &call(&f, "GET", "/ssh_keys", None).body,
        );
        check(
            "get",
            "/ssh_keys/{id}",
            "200",
            &call(&f, "GET", &format!("/ssh_keys/{kid}"), None).body,
        );
        check(
            "put",
            "/ssh_keys/{id}",
            "200",
            &call(
                &f,
                "PUT",
                &format!("/ssh_keys/{kid}"),
                Some(json!({"labels": {"x": "y"}})),
            )
            .body,
        );
        let fw = call(
            &f,
            "POST",
            "/firewalls",
            Some(
                json!({"name": "fw", "rules": [{"direction": "in", "protocol": "tcp", "port": "22", "source_ips": ["0.0.0.0/0"]}, {"direction": "out", "protocol": "udp", "port": "53", "destination_ips": ["::/0"]}]}),
            ),
        );
        check("post", "/firewalls", "201", &fw.body);
        for (op, query) in [
            ("/server_types", ""),
            ("/server_types", "?name=cpx22"),
            ("/locations", ""),
            ("/locations", "?name=fsn1"),
        ] {
            let r = call(&f, "GET", &format!("{op}{query}"), None);
            check("get", op, "200", &r.body);
        }
        let fid = fw.body["firewall"]["id"].as_u64().unwrap();
        let mut sb = server_body("web1");
        sb["firewalls"] = json!([{"firewall": fid}]);
        sb["ssh_keys"] = json!(["k"]);
        let s = call(&f, "POST", "/servers", Some(sb));
        check("post", "/servers", "201", &s.body);
        let sid = s.body["server"]["id"].as_u64().unwrap();
        let mut v6only = server_body("web2");
        v6only["public_net"] = json!({"enable_ipv4": false, "enable_ipv6": true});
        check(
            "post",
            "/servers",
            "201",
            &call(&f, "POST", "/servers", Some(v6only)).body,
        );
        check(
            "get",
            "/servers/{id}",
            "200",
            &call(&f, "GET", &format!("/servers/{sid}"), None).body,
        );
        check(
            "get",
            "/servers",
            "200",
            &call(
                &f,
                "GET",
                "/servers?label_selector=managed-by%3Dbootstrap",
                None,
            )
            .body,
        );
        check(
            "put",
            "/servers/{id}",
            "200",
            &call(
                &f,
                "PUT",
                &format!("/servers/{sid}"),
                Some(json!({"labels": {"a": "b"}})),
            )
            .body,
        );
        let fw2 = call(
            &f,
            "POST",
            "/firewalls",
            Some(
                json!({"name": "fw2", "apply_to": [{"type": "server", "server": {"id": sid}}, {"type": "label_selector", "label_selector": {"selector": "a=b"}}]}),
            ),
        );
        check("post", "/firewalls", "201", &fw2.body);
        check(
            "get",
            "/firewalls/{id}",
            "200",
            &call(
                &f,
                "GET",
                &format!("/firewalls/{}", fw2.body["firewall"]["id"]),
                None,
            )
            .body,
        );
        check(
            "get",
            "/firewalls",
            "200",
            &call(&f, "GET", "/firewalls", None).body,
        );
        let aid = s.body["action"]["id"].as_u64().unwrap();
        check(
            "get",
            "/actions/{id}",
            "200",
            &call(&f, "GET", &format!("/actions/{aid}"), None).body,
        );
        check(
            "get",
            "/actions",
            "200",
            &call(
                &f,
                "GET",
                &format!("/actions?id={aid}&id={}", aid + 1),
                None,
            )
            .body,
        );
        f.finish_all_actions();
        check(
            "get",
            "/actions/{id}",
            "200",
            &call(&f, "GET", &format!("/actions/{aid}"), None).body,
        );
        check(
            "get",
            "/servers/{id}/actions",
            "200",
            &call(&f, "GET", &format!("/servers/{sid}/actions"), None).body,
        );
        f.fail_next_action("create_server", "action_failed", "x");
        let bad = call(&f, "POST", "/servers", Some(server_body("web3")));
        f.finish_all_actions();
        check(
            "get",
            "/actions/{id}",
            "200",
            &call(
                &f,
                "GET",
                &format!("/actions/{}", bad.body["action"]["id"]),
                None,
            )
            .body,
        );
        let ap = call(
            &f,
            "POST",
            &format!("/firewalls/{fid}/actions/set_rules"),
            Some(json!({"rules": []})),
        );
        check("post", "/firewalls/{id}/actions/set_rules", "201", &ap.body);
        let img = call(
            &f,
            "POST",
            &format!("/servers/{sid}/actions/create_image"),
            Some(json!({"description": "snap", "labels": {"a": "b"}})),
        );
        check(
            "post",
            "/servers/{id}/actions/create_image",
            "201",
            &img.body,
        );
        check(
            "get",
            "/images",
            "200",
            &call(&f, "GET", "/images", None).body,
        );
        check(
            "post",
            "/servers/{id}/actions/enable_backup",
            "201",
            &call(
                &f,
                "POST",
                &format!("/servers/{sid}/actions/enable_backup"),
                None,
            )
            .body,
        );
        check(
            "delete",
            "/servers/{id}",
            "200",
            &call(&f, "DELETE", &format!("/servers/{sid}"), None).body,
        );
        // errors
        for (m, p, b) in [
            ("GET", "/servers/1".to_string(), None),
            (
                "POST",
                "/ssh_keys".to_string(),
                Some(json!({"name": "k", "public_key": key(9)})),
            ),
            ("DELETE", format!("/firewalls/{fid}"), None),
        ] {
            let r = call(&f, m, &p, b);
            assert!(r.status >= 400);
            check("get", "/servers/{id}", "4xx", &r.body);
        }
        let unauth = http_request(&f.url(), "GET", "/servers", None, None).unwrap();
        check("get", "/servers", "4xx", &unauth.body);
        f.fail_request(f.request_count() + 1, Fault::Status500);
        check(
            "get",
            "/servers",
            "5xx",
            &call(&f, "GET", "/servers", None).body,
        );
        assert!(checked >= 25, "{checked}");
    }

    #[test]
    fn schema_checker_catches_mistakes() {
        let path = specs_dir().join("hetzner-cloud.json");
        let spec: Value =
            serde_json::from_str(&std::fs::read_to_string(&path).expect("spec")).unwrap();
        let f = FakeHetzner::start_default();
        f.insert_server("web1", &[]);
        let good = json!({"server": f.servers()[0].clone()});
        let schema = response_schema(&spec, "get", "/servers/{id}", "200").unwrap();
        assert!(schema_errors(&spec, schema, &good).is_empty());
        let mut bad = good.clone();
        bad["server"]
            .as_object_mut()
            .unwrap()
            .remove("primary_disk_size");
        bad["server"]["status"] = json!("booting");
        bad["server"]["public_net"]["ipv4"]["blocked"] = json!("no");
        bad["server"]["created"] = json!("yesterday");
        bad["server"]["image"] = Value::Null; // nullable: fine
        bad["server"]["labels"]["x"] = json!(1);
        bad["server"]["extra"] = json!(true);
        let errs = schema_errors(&spec, schema, &bad);
        assert_eq!(errs.len(), 6, "{errs:#?}");
    }

    #[tokio::test]
    async fn works_from_an_async_test() {
        let f = FakeHetzner::start_default();
        let url = f.url();
        let r = tokio::task::spawn_blocking(move || {
            http_request(&url, "GET", "/servers", Some("t"), None).unwrap()
        })
        .await
        .unwrap();
        assert_eq!(r.status, 200);
        drop(f);
    }

    #[test]
    fn drop_stops_the_server() {
        let f = FakeHetzner::start_default();
        let addr = f.addr();
        drop(f);
        assert!(std::net::TcpStream::connect(addr).is_err());
    }
}
