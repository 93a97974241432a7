//! A stateful fake of Scaleway's Instance, Block and Marketplace APIs (and, in `jobs.rs`, the
//! Serverless Jobs and Secret Manager calls of the `serverless-jobs` engine), answering like the live
//! API where it differs from the documents (SOURCES.md): server actions answer **202**
//! `{task}`; user-data is `PATCH`ed as `text/plain` only; a security group must be given by id
//! (a name is 404) and, when omitted, the project's default group is attached; `terminate`
//! detaches the SBS root volume, which stays (billed) until deleted; deleting an image leaves
//! its snapshot; a 429 carries no rate headers; the Instance API pages with `per_page` and
//! `X-Total-Count`, Block with `page_size` and `total_count`.
//!
//! It is served on 127.0.0.1 by the kit's [`Builder`] and stops on drop. Everything is in one
//! project; errors are `{type, message, resource, resource_id}`. Faults (an error status, a
//! dropped connection, a header-less 429) come from the kit's fault layer: the fake derefs to
//! its kit [`Server`], so `fake.fail_request(n, fault)` works as on every fake. Addresses come
//! from the documentation ranges (192.0.2.0/24, 2001:db8::/32): a printed `ssh` to a fake
//! server reaches no one's real host.

// The fake's state is its own and every lookup follows an insert of the same request: a panic
// here is a broken fake, which fails the test that drives it.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

mod jobs;

pub use jobs::REGIONS;

use crate::clock::{Pace, Timer};
use crate::fault::Fault;
use crate::ratelimit::{HeaderStyle, RateLimit};
use crate::server::{Builder, Server};

/// The project every test uses.
pub const PROJECT: &str = "11111111-2222-3333-4444-555555555555";
/// Image labels the Marketplace knows.
pub const LABELS: &[&str] = &["ubuntu_noble", "debian_bookworm", "debian_trixie"];
/// Zones served (the Instance document's `zone` enum).
pub const ZONES: &[&str] = &[
    "fr-par-1", "fr-par-2", "fr-par-3", "nl-ams-1", "nl-ams-2", "nl-ams-3", "pl-waw-1", "pl-waw-2",
    "pl-waw-3", "it-mil-1",
];
/// Server types of every zone.
pub const TYPES: &[&str] = &["PLAY2-PICO", "PLAY2-NANO", "DEV1-S"];

/// One logged request.
#[derive(Debug, Clone)]
pub struct Logged {
    /// Method.
    pub method: String,
    /// Path.
    pub path: String,
    /// Content type sent.
    pub content_type: String,
    /// Status answered.
    pub status: u16,
}

/// The fake's whole state.
#[derive(Debug, Default)]
pub struct World {
    next: u64,
    /// Servers by id.
    pub servers: BTreeMap<String, Value>,
    /// Cloud-init user-data by server id.
    pub user_data: BTreeMap<String, String>,
    /// Servers powered on before their cloud-init user-data was set.
    pub booted_without_user_data: Vec<String>,
    /// Security groups by id (the project default included).
    pub groups: BTreeMap<String, Value>,
    /// Rules by group id.
    pub rules: BTreeMap<String, Vec<Value>>,
    /// Flexible IPs by id.
    pub ips: BTreeMap<String, Value>,
    /// Block volumes by id.
    pub volumes: BTreeMap<String, Value>,
    /// Block snapshots by id.
    pub snapshots: BTreeMap<String, Value>,
    /// Instance images by id.
    pub images: BTreeMap<String, Value>,
    /// Serverless Jobs job definitions by id.
    pub job_definitions: BTreeMap<String, Value>,
    /// Serverless Jobs secret references by their id (each names its `job_definition_id`).
    pub job_secrets: BTreeMap<String, Value>,
    /// Secret Manager secrets by id.
    pub secrets: BTreeMap<String, Value>,
    /// Secret Manager versions by secret id, oldest first (`data` is the base64 payload).
    pub secret_versions: BTreeMap<String, Vec<Value>>,
    /// The clock of each pending transition, by resource id.
    pending: BTreeMap<String, Timer>,
    /// Requests, in order.
    pub log: Vec<Logged>,
    /// Largest page served (the live API's is 100).
    pub max_page: usize,
    /// Observations a transition takes.
    pub polls: u32,
    /// When set, transitions take this instead of `polls` observations (`--action-ms`: wall
    /// time, for people and benchmarks).
    pub pace: Option<Pace>,
    /// Listings a new snapshot is left out of (0: listed at once). Listings are served from an
    /// index that follows writes with a delay: a batched check must not take a snapshot
    /// missing from one for gone.
    pub list_lag: u32,
    /// Listings left before each new snapshot appears in them, by id.
    unlisted: BTreeMap<String, u32>,
}

/// The fake, served while it lives.
pub struct FakeScaleway {
    /// Its state, for assertions.
    pub world: Arc<Mutex<World>>,
    server: Server,
}

impl FakeScaleway {
    /// A fresh fake on a free loopback port.
    pub fn start() -> Self {
        Self::start_on("127.0.0.1:0".parse().expect("a socket address"))
            .expect("a loopback port to listen on")
    }

    /// A fresh fake with the project's default security group, listening on `addr`.
    ///
    /// # Errors
    /// A non-loopback address or a bind error.
    pub fn start_on(addr: std::net::SocketAddr) -> std::io::Result<Self> {
        let mut w = World {
            max_page: 100,
            polls: 1,
            ..World::default()
        };
        let id = w.uuid();
        w.groups.insert(
            id.clone(),
            json!({"id": id, "name": "Default security group", "project": PROJECT, "tags": [],
                   "project_default": true, "stateful": true, "servers": [],
                   "inbound_default_policy": "accept", "outbound_default_policy": "accept"}),
        );
        w.rules.insert(id, Vec::new());
        let world = Arc::new(Mutex::new(w));
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(world.clone());
        Ok(Self {
            world,
            server: Builder::new("fake-scaleway")
                .listen(addr)
                .errors(|status, kind| err(status.as_u16(), kind, "injected fault"))
                .rate_limit(
                    RateLimit::new(HeaderStyle::None, u32::MAX, 0.0),
                    "too_many_requests",
                )
                .start(app)?,
        })
    }

    /// Base URL (`--endpoint`).
    pub fn url(&self) -> String {
        self.server.url()
    }

    /// Locks the state.
    pub fn w(&self) -> std::sync::MutexGuard<'_, World> {
        self.world.lock().unwrap()
    }

    /// What a destroyed deployment must not leave: servers, our groups, volumes, IPs, images,
    /// job definitions and secrets.
    pub fn orphans(&self) -> Vec<String> {
        let w = self.w();
        let mut out = Vec::new();
        out.extend(w.servers.keys().map(|k| format!("server {k}")));
        out.extend(
            w.groups
                .values()
                .filter(|g| g["project_default"] != json!(true))
                .map(|g| format!("security group {}", g["name"])),
        );
        out.extend(w.volumes.keys().map(|k| format!("volume {k}")));
        out.extend(w.ips.keys().map(|k| format!("ip {k}")));
        out.extend(w.images.keys().map(|k| format!("image {k}")));
        out.extend(
            w.job_definitions
                .keys()
                .map(|k| format!("job definition {k}")),
        );
        out.extend(w.secrets.keys().map(|k| format!("secret {k}")));
        out
    }

    /// Number of requests that reached the fake's handler so far (faulted ones excluded).
    pub fn requests(&self) -> usize {
        self.w().log.len()
    }

    /// The kit server in front of the fake: faults, rate limits, the request log.
    pub fn kit(&self) -> &Server {
        &self.server
    }

    /// Adds a running server shaped like the server `template` (same zone, type and group),
    /// named `name` and tagged `tags`, with a root volume of its own; returns its id, or `None`
    /// when there is no such template. No request is logged: for benchmarks that need many
    /// servers without creating each through the API.
    pub fn insert_server_like(
        &self,
        template: &str,
        name: &str,
        tags: &[String],
    ) -> Option<String> {
        let mut w = self.w();
        let mut s = w.servers.get(template)?.clone();
        let id = w.uuid();
        let vid = w.uuid();
        let old_vid = s["volumes"]["0"]["id"].as_str().unwrap_or("").to_owned();
        let mut vol = w
            .volumes
            .get(&old_vid)
            .cloned()
            .unwrap_or_else(|| json!({}));
        vol["id"] = json!(vid);
        vol["name"] = json!(format!("{name}-root"));
        vol["status"] = json!("in_use");
        vol["references"] =
            json!([{"product_resource_type": "instance_server", "product_resource_id": id}]);
        s["id"] = json!(id);
        s["name"] = json!(name);
        s["state"] = json!("running");
        s["tags"] = json!(tags);
        s["volumes"]["0"]["id"] = json!(vid);
        let gid = s["security_group"]["id"].as_str().unwrap_or("").to_owned();
        if let Some(arr) = w
            .groups
            .get_mut(&gid)
            .and_then(|g| g["servers"].as_array_mut())
        {
            arr.push(json!({"id": id, "name": name}));
        }
        w.volumes.insert(vid, vol);
        w.servers.insert(id.clone(), s);
        Some(id)
    }

    /// Makes the transitions started from now on (a server starting or stopping, a Block
    /// snapshot being made) take `pace` instead of the tests' observations.
    pub fn set_pace(&self, pace: Pace) {
        self.w().pace = Some(pace);
    }

    /// Answers every `n`th request from now on with the live API's 429: no rate headers.
    pub fn throttle_every(&self, n: u64) {
        let seen = std::sync::atomic::AtomicU64::new(0);
        self.server.fail_when(
            move |_| {
                (seen.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1).is_multiple_of(n)
            },
            Fault::RateLimited { headers: false },
            usize::MAX,
        );
    }
}

impl std::ops::Deref for FakeScaleway {
    type Target = Server;

    fn deref(&self) -> &Server {
        &self.server
    }
}

impl World {
    fn uuid(&mut self) -> String {
        self.next += 1;
        format!("{:08x}-0000-4000-8000-{:012x}", self.next, self.next)
    }

    fn default_group(&self) -> String {
        self.groups
            .values()
            .find(|g| g["project_default"] == json!(true))
            .map(|g| g["id"].as_str().unwrap().to_owned())
            .unwrap()
    }

    /// Starts the clock of a transition of `id` (a server starting or stopping, a snapshot
    /// being made).
    fn start_transition(&mut self, id: &str) {
        let pace = self.pace.unwrap_or(Pace::Polls(self.polls));
        self.pending.insert(id.to_owned(), Timer::start(pace));
    }

    /// One observation of `id`: true when its transition is due now.
    fn observe(&mut self, id: &str) -> bool {
        let done = self.pending.get_mut(id).is_some_and(Timer::observe);
        if done {
            self.pending.remove(id);
        }
        done
    }

    fn tick_server(&mut self, id: &str) {
        if !self.observe(id) {
            return;
        }
        let state = self.servers[id]["state"].as_str().unwrap_or("").to_owned();
        match state.as_str() {
            "starting" => self.servers.get_mut(id).unwrap()["state"] = json!("running"),
            "stopping" => self.remove_server(id),
            _ => {}
        }
    }

    /// Terminate's end: the server goes, its SBS volumes stay (detached), its dynamic IPs go,
    /// its flexible IPs stay (detached).
    fn remove_server(&mut self, id: &str) {
        let Some(s) = self.servers.remove(id) else {
            return;
        };
        self.user_data.remove(id);
        if let Some(vols) = s["volumes"].as_object() {
            for v in vols.values() {
                if let Some(vol) = self.volumes.get_mut(v["id"].as_str().unwrap_or("")) {
                    vol["status"] = json!("available");
                    vol["references"] = json!([]);
                }
            }
        }
        for ip in self.ips.values_mut() {
            if ip["server"]["id"] == json!(id) {
                ip["server"] = Value::Null;
            }
        }
        let gid = s["security_group"]["id"].as_str().unwrap_or("").to_owned();
        if let Some(g) = self.groups.get_mut(&gid) {
            let servers: Vec<Value> = g["servers"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|x| x["id"] != json!(id))
                .cloned()
                .collect();
            g["servers"] = json!(servers);
        }
    }

    /// Whether `id` is a resource of another zone: each zone is its own API, where it is 404.
    fn elsewhere(&self, id: &str, zone: &str) -> bool {
        [
            &self.servers,
            &self.groups,
            &self.ips,
            &self.images,
            &self.volumes,
            &self.snapshots,
        ]
        .iter()
        .filter_map(|m| m.get(id))
        .any(|v| v["zone"].as_str().is_some_and(|z| z != zone))
    }

    fn server_json(&self, id: &str) -> Value {
        let mut s = self.servers[id].clone();
        let ips: Vec<Value> = self
            .ips
            .values()
            .filter(|ip| ip["server"]["id"] == json!(id))
            .cloned()
            .collect();
        // The document's `public_ip` is an object, never null: a server without IPs has none.
        match ips.first() {
            Some(ip) => s["public_ip"] = ip.clone(),
            None => {
                if let Some(o) = s.as_object_mut() {
                    o.remove("public_ip");
                }
            }
        }
        s["public_ips"] = json!(ips);
        s
    }
}

fn err(status: u16, kind: &str, message: &str) -> Response {
    (
        StatusCode::from_u16(status).unwrap(),
        [("content-type", "application/json")],
        json!({"type": kind, "message": message}).to_string(),
    )
        .into_response()
}

fn not_found(resource: &str, id: &str) -> Response {
    (
        StatusCode::NOT_FOUND,
        [("content-type", "application/json")],
        json!({"type": "not_found", "message": "resource is not found", "resource": resource, "resource_id": id}).to_string(),
    )
        .into_response()
}

fn ok(status: u16, v: Value) -> Response {
    (
        StatusCode::from_u16(status).unwrap(),
        [("content-type", "application/json")],
        v.to_string(),
    )
        .into_response()
}

fn no_content() -> Response {
    StatusCode::NO_CONTENT.into_response()
}

fn query(uri: &Uri) -> Vec<(String, String)> {
    uri.query()
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            let d = |x: &str| {
                form_urlencoded::parse(format!("a={x}").as_bytes())
                    .next()
                    .map(|(_, v)| v.into_owned())
                    .unwrap_or_default()
            };
            (d(k), d(v))
        })
        .collect()
}

fn q1<'a>(q: &'a [(String, String)], k: &str) -> Option<&'a str> {
    q.iter().find(|(x, _)| x == k).map(|(_, v)| v.as_str())
}

fn tags_of(v: &Value) -> Vec<String> {
    v["tags"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|t| t.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// One Instance page (`per_page`, `X-Total-Count`).
fn instance_page(w: &World, key: &str, items: Vec<Value>, q: &[(String, String)]) -> Response {
    let per = q1(q, "per_page")
        .and_then(|p| p.parse::<usize>().ok())
        .unwrap_or(50)
        .clamp(1, w.max_page);
    let page = q1(q, "page")
        .and_then(|p| p.parse::<usize>().ok())
        .unwrap_or(1)
        .max(1);
    let total = items.len();
    let slice: Vec<Value> = items.into_iter().skip((page - 1) * per).take(per).collect();
    (
        StatusCode::OK,
        [
            ("content-type", "application/json".to_owned()),
            ("x-total-count", total.to_string()),
        ],
        json!({ key: slice }).to_string(),
    )
        .into_response()
}

/// One Block page (`page_size`, `total_count` in the body).
fn counted_page(w: &World, key: &str, items: Vec<Value>, q: &[(String, String)]) -> Response {
    let per = q1(q, "page_size")
        .and_then(|p| p.parse::<usize>().ok())
        .unwrap_or(50)
        .clamp(1, w.max_page);
    let page = q1(q, "page")
        .and_then(|p| p.parse::<usize>().ok())
        .unwrap_or(1)
        .max(1);
    let total = items.len();
    let slice: Vec<Value> = items.into_iter().skip((page - 1) * per).take(per).collect();
    ok(200, json!({ key: slice, "total_count": total }))
}

/// Instance `tags=` filter: every comma-joined tag must be present.
fn instance_tags_match(v: &Value, q: &[(String, String)]) -> bool {
    match q1(q, "tags") {
        None => true,
        Some(t) => {
            let have = tags_of(v);
            t.split(',').all(|x| have.iter().any(|h| h == x))
        }
    }
}

/// Block `tags` filter: any of the given tags matches.
fn block_tags_match(v: &Value, q: &[(String, String)]) -> bool {
    let wanted: Vec<&str> = q
        .iter()
        .filter(|(k, _)| k == "tags")
        .map(|(_, v)| v.as_str())
        .collect();
    wanted.is_empty() || tags_of(v).iter().any(|t| wanted.contains(&t.as_str()))
}

/// An IP as the API shows it: an unattached IP has no `server` (the Instance document
/// declares it an object, not nullable).
fn ip_out(ip: &Value) -> Value {
    let mut ip = ip.clone();
    if let Some(o) = ip.as_object_mut()
        && o.get("server").is_some_and(Value::is_null)
    {
        o.remove("server");
    }
    ip
}

/// Whether a resource is in `zone` (the project's default group, without a zone, is in all).
fn in_zone(v: &Value, zone: &str) -> bool {
    v["zone"].as_str().is_none_or(|z| z == zone)
}

fn is_uuid(s: &str) -> bool {
    s.len() == 36 && s.chars().filter(|c| *c == '-').count() == 4
}

async fn handle(
    State(world): State<Arc<Mutex<World>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut w = world.lock().unwrap();
    let ct = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let resp = if headers.get("x-auth-token").is_none() {
        err(401, "denied_authentication", "authentication is denied")
    } else {
        route(&mut w, &method, &uri, &ct, &body)
    };
    w.log.push(Logged {
        method: method.to_string(),
        path: uri.path().to_owned(),
        content_type: ct,
        status: resp.status().as_u16(),
    });
    resp
}

#[allow(clippy::result_large_err)]
fn json_body(body: &Bytes) -> Result<Value, Response> {
    serde_json::from_slice(body).map_err(|_| err(400, "invalid_arguments", "invalid JSON body"))
}

#[allow(clippy::too_many_lines)]
fn route(w: &mut World, method: &Method, uri: &Uri, ct: &str, body: &Bytes) -> Response {
    let q = query(uri);
    let parts: Vec<&str> = uri.path().trim_matches('/').split('/').collect();
    let now = "2026-11-25T10:00:00.000000+00:00";
    match (method.as_str(), parts.as_slice()) {
        ("GET", ["marketplace", "v2", "local-images"]) => {
            let label = q1(&q, "image_label").unwrap_or("");
            let images: Vec<Value> = if LABELS.contains(&label) {
                vec![
                    json!({"id": format!("{label}-sbs"), "label": label, "type": "instance_sbs",
                            "zone": q1(&q, "zone"), "arch": "x86_64", "compatible_commercial_types": TYPES}),
                ]
            } else {
                vec![]
            };
            ok(
                200,
                json!({"local_images": images, "total_count": images.len()}),
            )
        }
        (_, ["instance", "v1", "zones", zone, rest @ ..]) => {
            if !ZONES.contains(zone) {
                return err(400, "invalid_arguments", "unknown zone");
            }
            if let [_, id, ..] = rest
                && w.elsewhere(id, zone)
            {
                return not_found("instance_resource", id);
            }
            instance(w, method.as_str(), rest, &q, ct, body, zone, now)
        }
        (_, ["block", "v1", "zones", zone, rest @ ..]) => {
            if !ZONES.contains(zone) {
                return err(400, "invalid_arguments", "unknown zone");
            }
            if let [_, id, ..] = rest
                && w.elsewhere(id, zone)
            {
                return not_found("block_resource", id);
            }
            block(w, method.as_str(), rest, &q, body, zone, now)
        }
        (_, ["serverless-jobs", "v1alpha2", "regions", region, rest @ ..]) => {
            jobs::serverless_jobs(w, method.as_str(), rest, &q, body, region, now)
        }
        (_, ["secret-manager", "v1beta1", "regions", region, rest @ ..]) => {
            jobs::secret_manager(w, method.as_str(), rest, &q, body, region, now)
        }
        _ => err(404, "not_found", "no such path"),
    }
}

#[allow(clippy::too_many_arguments, clippy::too_many_lines)]
fn instance(
    w: &mut World,
    m: &str,
    rest: &[&str],
    q: &[(String, String)],
    ct: &str,
    body: &Bytes,
    zone: &str,
    now: &str,
) -> Response {
    match (m, rest) {
        ("GET", ["products", "servers"]) => {
            let servers: serde_json::Map<String, Value> = TYPES
                .iter()
                .map(|t| {
                    (
                        (*t).to_owned(),
                        json!({"ncpus": 1, "ram": 2_147_483_648u64, "arch": "x86_64"}),
                    )
                })
                .collect();
            ok(200, json!({"servers": servers}))
        }
        ("GET", ["servers"]) => {
            let ids: Vec<String> = w.servers.keys().cloned().collect();
            let items: Vec<Value> = ids
                .iter()
                .map(|id| w.server_json(id))
                .filter(|s| in_zone(s, zone) && instance_tags_match(s, q))
                .collect();
            instance_page(w, "servers", items, q)
        }
        ("POST", ["servers"]) => {
            let b = match json_body(body) {
                Ok(b) => b,
                Err(e) => return e,
            };
            let Some(name) = b["name"].as_str() else {
                return err(400, "invalid_arguments", "name is required");
            };
            let ctype = b["commercial_type"].as_str().unwrap_or("");
            if !TYPES.contains(&ctype) {
                return err(400, "invalid_arguments", "unknown commercial_type");
            }
            let image = b["image"].as_str().unwrap_or("");
            let from_snapshot = if is_uuid(image) {
                match w.images.get(image) {
                    Some(i) => Some(i["root_volume"]["id"].as_str().unwrap_or("").to_owned()),
                    None => return not_found("instance_image", image),
                }
            } else if LABELS.contains(&image) {
                None
            } else {
                return err(400, "invalid_arguments", "unknown image label");
            };
            // A group is an id; without one, the project's default group is attached.
            let gid = match b["security_group"].as_str() {
                Some(g) if w.groups.contains_key(g) => g.to_owned(),
                Some(g) => return not_found("instance_security_group", g),
                None => w.default_group(),
            };
            let id = w.uuid();
            let mut ips = Vec::new();
            for ip in b["public_ips"].as_array().cloned().unwrap_or_default() {
                let ip = ip.as_str().unwrap_or("").to_owned();
                match w.ips.get(&ip) {
                    Some(x) if x["server"].is_null() => ips.push(ip),
                    Some(_) => return err(412, "precondition_failed", "ip already attached"),
                    None => return not_found("instance_ip", &ip),
                }
            }
            if b["dynamic_ip_required"] != json!(false) {
                let ipid = w.uuid();
                w.ips.insert(ipid.clone(), json!({"id": ipid, "address": format!("192.0.2.{}", 100 + w.next % 100), "family": "inet", "type": "routed_ipv4", "dynamic": true, "tags": [], "project": PROJECT, "server": null}));
                ips.push(ipid);
            }
            for ip in &ips {
                w.ips.get_mut(ip).unwrap()["server"] = json!({"id": id, "name": name});
            }
            let vid = w.uuid();
            let root = &b["volumes"]["0"];
            if root["volume_type"] != json!("sbs_volume") {
                return err(
                    400,
                    "invalid_arguments",
                    "this type only boots from sbs_volume",
                );
            }
            w.volumes.insert(vid.clone(), json!({"id": vid, "name": format!("{name}-root"), "type": "sbs_15k", "size": root["size"].as_u64().unwrap_or(10_000_000_000u64), "project_id": PROJECT, "status": "in_use", "tags": [], "references": [{"product_resource_type": "instance_server", "product_resource_id": id}], "parent_snapshot_id": from_snapshot, "created_at": now, "zone": zone}));
            let group_name = w.groups[&gid]["name"].clone();
            if let Some(arr) = w.groups.get_mut(&gid).unwrap()["servers"].as_array_mut() {
                arr.push(json!({"id": id, "name": name}));
            }
            let s = json!({"id": id, "name": name, "state": "stopped", "commercial_type": ctype,
                "tags": b["tags"].clone(), "project": PROJECT, "zone": zone, "creation_date": now,
                "image": {"id": image}, "security_group": {"id": gid, "name": group_name},
                "volumes": {"0": {"id": vid, "volume_type": "sbs_volume", "boot": true}}});
            w.servers.insert(id.clone(), s);
            let out = w.server_json(&id);
            ok(201, json!({"server": out}))
        }
        ("GET", ["servers", id]) => {
            if !w.servers.contains_key(*id) {
                return not_found("instance_server", id);
            }
            w.tick_server(id);
            if !w.servers.contains_key(*id) {
                return not_found("instance_server", id);
            }
            ok(200, json!({"server": w.server_json(id)}))
        }
        ("PATCH", ["servers", id]) => {
            let b = match json_body(body) {
                Ok(b) => b,
                Err(e) => return e,
            };
            let Some(s) = w.servers.get_mut(*id) else {
                return not_found("instance_server", id);
            };
            if let Some(t) = b.get("tags") {
                s["tags"] = t.clone();
            }
            // `security_group: {id}` moves the server to that group (it has exactly one).
            if let Some(g) = b.get("security_group") {
                let Some(gid) = g["id"].as_str() else {
                    return err(400, "invalid_arguments", "security_group needs an id");
                };
                let Some(name) = w.groups.get(gid).map(|g| g["name"].clone()) else {
                    return not_found("instance_security_group", gid);
                };
                s["security_group"] = json!({"id": gid, "name": name});
            }
            ok(200, json!({"server": w.server_json(id)}))
        }
        ("DELETE", ["servers", id]) => {
            let Some(s) = w.servers.get(*id) else {
                return not_found("instance_server", id);
            };
            if s["state"] != json!("stopped") {
                return err(
                    400,
                    "invalid_request_error",
                    "instance should be powered off",
                );
            }
            w.remove_server(id);
            no_content()
        }
        ("POST", ["servers", id, "action"]) => {
            let b = match json_body(body) {
                Ok(b) => b,
                Err(e) => return e,
            };
            let Some(s) = w.servers.get(*id) else {
                return not_found("instance_server", id);
            };
            let state = s["state"].as_str().unwrap_or("").to_owned();
            let action = b["action"].as_str().unwrap_or("poweron").to_owned();
            match (action.as_str(), state.as_str()) {
                ("poweron", "stopped") => {
                    if !w.user_data.contains_key(*id) {
                        w.booted_without_user_data.push((*id).to_owned());
                    }
                    w.servers.get_mut(*id).unwrap()["state"] = json!("starting");
                    w.start_transition(id);
                }
                ("terminate", "running" | "starting" | "stopped") => {
                    w.servers.get_mut(*id).unwrap()["state"] = json!("stopping");
                    w.start_transition(id);
                }
                ("poweroff", "running") => {
                    w.servers.get_mut(*id).unwrap()["state"] = json!("stopped");
                }
                _ => {
                    return err(
                        409,
                        "transient_state",
                        &format!("cannot {action} while {state}"),
                    );
                }
            }
            let task = w.uuid();
            // The live API: 202 with the task (the document says 200).
            ok(
                202,
                json!({"task": {"id": task, "description": format!("server_{action}"), "status": "pending", "href_from": format!("/servers/{id}/action"), "started_at": now}}),
            )
        }
        ("GET", ["servers", id, "user_data"]) => {
            if !w.servers.contains_key(*id) {
                return not_found("instance_server", id);
            }
            let keys: Vec<&str> = if w.user_data.contains_key(*id) {
                vec!["cloud-init"]
            } else {
                vec![]
            };
            ok(200, json!({"user_data": keys}))
        }
        ("PATCH", ["servers", id, "user_data", key]) => {
            if !w.servers.contains_key(*id) {
                return not_found("instance_server", id);
            }
            if !ct.starts_with("text/plain") {
                return err(
                    400,
                    "invalid_arguments",
                    "user data must be sent as text/plain",
                );
            }
            if *key == "cloud-init" {
                w.user_data
                    .insert((*id).to_owned(), String::from_utf8_lossy(body).into_owned());
            }
            no_content()
        }
        ("GET", ["servers", id, "user_data", "cloud-init"]) => match w.user_data.get(*id) {
            Some(u) => ([("content-type", "text/plain")], u.clone()).into_response(),
            None => not_found("instance_user_data", id),
        },
        ("GET", ["security_groups"]) => {
            let items: Vec<Value> = w
                .groups
                .values()
                .filter(|g| in_zone(g, zone) && instance_tags_match(g, q))
                .cloned()
                .collect();
            instance_page(w, "security_groups", items, q)
        }
        ("POST", ["security_groups"]) => {
            let b = match json_body(body) {
                Ok(b) => b,
                Err(e) => return e,
            };
            if b["stateful"] != json!(true) {
                return err(
                    400,
                    "invalid_arguments",
                    "test fake: bootstrap must send stateful: true",
                );
            }
            let id = w.uuid();
            let g = json!({"id": id, "name": b["name"], "description": b["description"], "project": PROJECT,
                "tags": b["tags"].clone(), "stateful": true, "project_default": false, "servers": [],
                "inbound_default_policy": b["inbound_default_policy"], "outbound_default_policy": b["outbound_default_policy"],
                "creation_date": now, "zone": zone});
            w.groups.insert(id.clone(), g.clone());
            w.rules.insert(id, Vec::new());
            ok(201, json!({"security_group": g}))
        }
        ("GET", ["security_groups", id]) => match w.groups.get(*id) {
            Some(g) => ok(200, json!({"security_group": g})),
            None => not_found("instance_security_group", id),
        },
        ("DELETE", ["security_groups", id]) => match w.groups.get(*id) {
            None => not_found("instance_security_group", id),
            Some(g) if !g["servers"].as_array().unwrap().is_empty() => {
                err(409, "conflict", "group is in use by servers")
            }
            Some(_) => {
                w.groups.remove(*id);
                w.rules.remove(*id);
                no_content()
            }
        },
        ("GET", ["security_groups", id, "rules"]) => match w.rules.get(*id) {
            Some(r) => {
                let r = r.clone();
                instance_page(w, "rules", r, q)
            }
            None => not_found("instance_security_group", id),
        },
        ("POST", ["security_groups", id, "rules"]) => {
            let b = match json_body(body) {
                Ok(b) => b,
                Err(e) => return e,
            };
            if !w.rules.contains_key(*id) {
                return not_found("instance_security_group", id);
            }
            let rid = w.uuid();
            let mut r = b.clone();
            r["id"] = json!(rid);
            r["editable"] = json!(true);
            w.rules.get_mut(*id).unwrap().push(r.clone());
            ok(201, json!({"rule": r}))
        }
        ("DELETE", ["security_groups", id, "rules", rid]) => {
            let Some(rules) = w.rules.get_mut(*id) else {
                return not_found("instance_security_group", id);
            };
            let before = rules.len();
            rules.retain(|r| r["id"] != json!(rid));
            if rules.len() == before {
                return not_found("instance_security_group_rule", rid);
            }
            no_content()
        }
        ("GET", ["ips"]) => {
            let items: Vec<Value> = w
                .ips
                .values()
                .filter(|i| in_zone(i, zone) && instance_tags_match(i, q))
                .map(ip_out)
                .collect();
            instance_page(w, "ips", items, q)
        }
        ("POST", ["ips"]) => {
            let b = match json_body(body) {
                Ok(b) => b,
                Err(e) => return e,
            };
            let id = w.uuid();
            let (family, address) = match b["type"].as_str() {
                Some("routed_ipv6") => ("inet6", format!("2001:db8:1::{:x}/64", w.next)),
                Some("routed_ipv4") => ("inet", format!("192.0.2.{}", w.next % 100)),
                _ => {
                    return err(
                        400,
                        "invalid_arguments",
                        "type must be routed_ipv4 or routed_ipv6",
                    );
                }
            };
            // `server`: the IP is attached to that server as it is reserved (CreateIp).
            let server = match b["server"].as_str() {
                Some(sid) => match w.servers.get(sid) {
                    Some(s) => json!({"id": sid, "name": s["name"]}),
                    None => return not_found("instance_server", sid),
                },
                None => Value::Null,
            };
            let ip = json!({"id": id, "address": address.split('/').next().unwrap(), "prefix": address, "family": family, "type": b["type"], "dynamic": false, "tags": b["tags"].clone(), "project": PROJECT, "server": server, "zone": zone});
            w.ips.insert(id, ip.clone());
            ok(201, json!({"ip": ip_out(&ip)}))
        }
        ("PATCH", ["ips", id]) => {
            let b = match json_body(body) {
                Ok(b) => b,
                Err(e) => return e,
            };
            let Some(ip) = w.ips.get_mut(*id) else {
                return not_found("instance_ip", id);
            };
            if let Some(t) = b.get("tags") {
                ip["tags"] = t.clone();
            }
            ok(200, json!({"ip": ip_out(ip)}))
        }
        ("DELETE", ["ips", id]) => match w.ips.remove(*id) {
            Some(_) => no_content(),
            None => not_found("instance_ip", id),
        },
        ("GET", ["images"]) => {
            let items: Vec<Value> = w
                .images
                .values()
                .filter(|i| in_zone(i, zone) && instance_tags_match(i, q))
                .cloned()
                .collect();
            instance_page(w, "images", items, q)
        }
        ("POST", ["images"]) => {
            let b = match json_body(body) {
                Ok(b) => b,
                Err(e) => return e,
            };
            let snap = b["root_volume"].as_str().unwrap_or("").to_owned();
            if !w.snapshots.contains_key(&snap) {
                return not_found("block_snapshot", &snap);
            }
            let id = w.uuid();
            let i = json!({"id": id, "name": b["name"], "arch": b["arch"], "state": "available", "project": PROJECT,
                "tags": b["tags"].clone(), "root_volume": {"id": snap, "volume_type": "sbs_snapshot"}, "creation_date": now, "zone": zone});
            w.images.insert(id, i.clone());
            ok(201, json!({"image": i}))
        }
        ("GET", ["images", id]) => match w.images.get(*id) {
            Some(i) => ok(200, json!({"image": i})),
            None => not_found("instance_image", id),
        },
        // Deleting an image leaves its snapshot.
        ("DELETE", ["images", id]) => match w.images.remove(*id) {
            Some(_) => no_content(),
            None => not_found("instance_image", id),
        },
        _ => err(404, "not_found", "no such path"),
    }
}

fn block(
    w: &mut World,
    m: &str,
    rest: &[&str],
    q: &[(String, String)],
    body: &Bytes,
    zone: &str,
    now: &str,
) -> Response {
    match (m, rest) {
        ("GET", ["volumes"]) => {
            let items: Vec<Value> = w
                .volumes
                .values()
                .filter(|v| in_zone(v, zone) && block_tags_match(v, q))
                .cloned()
                .collect();
            counted_page(w, "volumes", items, q)
        }
        ("PATCH", ["volumes", id]) => {
            let b = match json_body(body) {
                Ok(b) => b,
                Err(e) => return e,
            };
            let Some(v) = w.volumes.get_mut(*id) else {
                return not_found("block_volume", id);
            };
            if let Some(t) = b.get("tags") {
                v["tags"] = t.clone();
            }
            ok(200, v.clone())
        }
        ("DELETE", ["volumes", id]) => match w.volumes.get(*id) {
            None => not_found("block_volume", id),
            Some(v) if v["status"] != json!("available") => {
                err(412, "precondition_failed", "volume is in use")
            }
            Some(_) => {
                w.volumes.remove(*id);
                no_content()
            }
        },
        ("GET", ["snapshots"]) => {
            let ids: Vec<String> = w.snapshots.keys().cloned().collect();
            for id in &ids {
                if w.observe(id) {
                    w.snapshots.get_mut(id).unwrap()["status"] = json!("available");
                }
            }
            // The index behind listings lags: a snapshot made moments ago is left out.
            let hidden: Vec<String> = w.unlisted.keys().cloned().collect();
            w.unlisted.retain(|_, n| {
                *n = n.saturating_sub(1);
                *n > 0
            });
            let items: Vec<Value> = w
                .snapshots
                .values()
                .filter(|v| !hidden.iter().any(|h| v["id"] == json!(h)))
                .filter(|v| in_zone(v, zone) && block_tags_match(v, q))
                .cloned()
                .collect();
            counted_page(w, "snapshots", items, q)
        }
        ("POST", ["snapshots"]) => {
            let b = match json_body(body) {
                Ok(b) => b,
                Err(e) => return e,
            };
            let vid = b["volume_id"].as_str().unwrap_or("").to_owned();
            if !w.volumes.contains_key(&vid) {
                return not_found("block_volume", &vid);
            }
            let id = w.uuid();
            // Distinct creation times, so that retention can sort.
            let created = format!(
                "2026-11-25T10:{:02}:{:02}Z",
                (w.next / 60) % 60,
                w.next % 60
            );
            let s = json!({"id": id, "name": b["name"], "parent_volume": {"id": vid}, "size": 20_000_000_000u64,
                "project_id": b["project_id"], "status": "creating", "tags": b["tags"].clone(),
                "created_at": created, "updated_at": now, "class": "sbs", "zone": zone});
            w.start_transition(&id);
            if w.list_lag > 0 {
                let lag = w.list_lag;
                w.unlisted.insert(id.clone(), lag);
            }
            w.snapshots.insert(id, s.clone());
            // The live API answers 200 here.
            ok(200, s)
        }
        ("GET", ["snapshots", id]) => {
            if !w.snapshots.contains_key(*id) {
                return not_found("block_snapshot", id);
            }
            if w.observe(id) {
                w.snapshots.get_mut(*id).unwrap()["status"] = json!("available");
            }
            ok(200, w.snapshots[*id].clone())
        }
        ("DELETE", ["snapshots", id]) => {
            if !w.snapshots.contains_key(*id) {
                return not_found("block_snapshot", id);
            }
            if w.images
                .values()
                .any(|i| i["root_volume"]["id"] == json!(id))
            {
                return err(412, "precondition_failed", "snapshot is used by an image");
            }
            w.snapshots.remove(*id);
            no_content()
        }
        _ => err(404, "not_found", "no such path"),
    }
}
