//! A stateful fake of the DigitalOcean API (`/v2`), for flow and trap tests that run the real
//! `bootstrap` binary against it (`--endpoint <fake.url()>`), and for `fakecloud digitalocean`.
//! Served on the kit's [`Server`] on 127.0.0.1 (its faults, its rate limit with DigitalOcean's
//! headers, its request log); actions run on the kit's clock; stopped on drop.
//!
//! It behaves like the documented API where the adapter could get it wrong:
//! - droplets: create 202 with `links.actions` (status `new` until the create action completes),
//!   `?tag_name=` lists, `DELETE /v2/droplets/{id}` 204, and `DELETE /v2/droplets?tag_name=`
//!   deleting every droplet with the tag (which the adapter must never send);
//! - droplet actions 201 `{action}`: `snapshot` (the image appears in
//!   `/v2/droplets/{id}/snapshots` with `created_at` = the action's `started_at`, untagged, and
//!   no id is ever returned), `enable_backups`, `change_backup_policy`;
//! - actions run on the kit's clock ([`Pace`]): polls of `GET /v2/actions/{id}`, or wall time;
//! - keys: 201 on upload, 422 "already in use" for a duplicate public key, get by id or
//!   fingerprint, and `GET /v2/account/keys` limited to 10 requests a minute;
//! - firewalls: 202 on create; a `tags` entry that is no existing tag is refused; `PUT`
//!   replaces everything, targets included; rules `POST`/`DELETE .../rules` 204; all ports and
//!   icmp read back as `"0"`; [`FakeDo::has_egress`] says whether a droplet can reach out;
//! - tags: create (idempotent), get with resource counts, attach/detach resources, delete;
//!   errors in the tags shape `{error, messages}`;
//! - every answer carries `ratelimit-limit`/`-remaining`/`-reset` (epoch), from the kit's
//!   [`RateLimit`] (250 a minute); over it a 429 with `retry-after`;
//! - lists page with `page`/`per_page` (default 20, max 200), `links.pages.next` as an absolute
//!   URL, and `meta.total`;
//! - errors `{id, message, request_id}`; injected faults ([`crate::Fault`]) answer in that shape.

#![allow(dead_code)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Request, State as AxState};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use md5::{Digest as _, Md5};
use serde_json::{Value, json};

use crate::clock::{Pace, Timer};
use crate::ratelimit::{HeaderStyle, RateLimit};
use crate::server::{Builder, Server};

/// A request as the fake saw it.
#[derive(Debug, Clone)]
pub struct Logged {
    /// `GET`, `POST`, ...
    pub method: String,
    /// The path without the query.
    pub path: String,
    /// The raw query.
    pub query: String,
    /// The JSON body, if any.
    pub body: Option<Value>,
}

/// Everything the fake holds.
#[derive(Debug)]
pub struct State {
    next_id: i64,
    clock: i64,
    /// How long actions take.
    pub pace: Pace,
    keys: BTreeMap<i64, Value>,
    droplets: BTreeMap<i64, Value>,
    firewalls: BTreeMap<String, Value>,
    tags: BTreeSet<String>,
    images: BTreeMap<i64, Value>,
    actions: BTreeMap<i64, (Value, Timer)>,
    log: Vec<Logged>,
    key_lists: Vec<Instant>,
    base: String,
}

/// One [`FakeDo::fail_nth`]: how many requests it has seen of those it counts.
#[derive(Debug)]
struct NthFault {
    method: String,
    prefix: String,
    nth: usize,
    seen: usize,
}

/// The fake and its server.
pub struct FakeDo {
    server: Server,
    nth: Arc<Mutex<Vec<NthFault>>>,
    state: Arc<Mutex<State>>,
}

const SYSTEM_IMAGES: &[(i64, &str, &str)] = &[
    (1, "ubuntu-24-04-x64", "Ubuntu"),
    (2, "debian-12-x64", "Debian"),
    (3, "debian-13-x64", "Debian"),
];
const REGIONS: &[&str] = &["fra1", "ams3", "nyc3"];
const SIZES: &[&str] = &["s-1vcpu-1gb", "s-1vcpu-2gb", "s-2vcpu-4gb"];

fn now_rfc3339(t: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(t)
        .ok()
        .and_then(|d| {
            d.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

/// The items of a JSON array, none for anything else.
fn items(v: &Value) -> &[Value] {
    v.as_array().map_or(&[], Vec::as_slice)
}

/// Whether the array `v` holds the string `x`.
fn has_tag_in(v: &Value, x: &str) -> bool {
    items(v).iter().any(|t| t == x)
}

/// Whether `v["tags"]` holds `tag`.
fn has_tag(v: &Value, tag: &str) -> bool {
    items(&v["tags"]).iter().any(|t| t == tag)
}

/// Pushes `x` onto the array `v`, making it one if it was not.
fn push(v: &mut Value, x: Value) {
    if !v.is_array() {
        *v = json!([]);
    }
    if let Some(a) = v.as_array_mut() {
        a.push(x);
    }
}

/// Removes `key` from an object.
fn remove(v: &mut Value, key: &str) {
    if let Some(o) = v.as_object_mut() {
        o.remove(key);
    }
}

/// DigitalOcean's error answer for an injected status or the kit's 429.
fn kit_error(status: StatusCode, code: &str) -> Response {
    let message = if status == StatusCode::TOO_MANY_REQUESTS {
        "API Rate limit exceeded."
    } else {
        "Server was unable to give you a response."
    };
    let (status, body) = err(status, code, message);
    (status, axum::Json(body)).into_response()
}

fn region(slug: &str) -> Value {
    json!({"slug": slug, "name": slug, "sizes": SIZES, "available": true,
           "features": ["backups", "ipv6", "metadata"]})
}

fn size(slug: &str) -> Value {
    json!({"slug": slug, "memory": 1024, "vcpus": 1, "disk": 25, "transfer": 1.0,
           "price_monthly": 6.0, "price_hourly": 0.00893, "regions": REGIONS, "available": true,
           "description": "Basic"})
}

fn image_json(
    id: i64,
    name: &str,
    kind: &str,
    distribution: &str,
    created: &str,
    slug: Option<&str>,
) -> Value {
    json!({"id": id, "name": name, "type": kind, "distribution": distribution, "slug": slug,
           "public": slug.is_some(), "regions": REGIONS, "created_at": created, "min_disk_size": 25,
           "size_gigabytes": 2.3, "description": "", "tags": [], "status": "available",
           "error_message": ""})
}

impl FakeDo {
    /// A fake on a free port, actions completing at their second poll, 250 requests a minute.
    ///
    /// # Panics
    /// When no loopback port can be bound (a test machine without networking).
    #[allow(clippy::expect_used)]
    pub fn start() -> FakeDo {
        // For tests: a machine that cannot bind 127.0.0.1:0 cannot run them.
        FakeDo::start_on(SocketAddr::from(([127, 0, 0, 1], 0)), Pace::Polls(1))
            .expect("bind 127.0.0.1:0")
    }

    /// A fake on `addr` (a loopback address) whose actions take `pace`.
    ///
    /// # Errors
    /// A non-loopback address or a port that cannot be bound.
    pub fn start_on(addr: SocketAddr, pace: Pace) -> io::Result<FakeDo> {
        let mut images = BTreeMap::new();
        for (id, slug, dist) in SYSTEM_IMAGES {
            images.insert(
                *id,
                image_json(*id, slug, "base", dist, "2024-05-01T00:00:00Z", Some(slug)),
            );
        }
        let state = Arc::new(Mutex::new(State {
            next_id: 1000,
            clock: 1_795_000_000,
            pace,
            keys: BTreeMap::new(),
            droplets: BTreeMap::new(),
            firewalls: BTreeMap::new(),
            tags: BTreeSet::new(),
            images,
            actions: BTreeMap::new(),
            log: Vec::new(),
            key_lists: Vec::new(),
            base: String::new(),
        }));
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(state.clone());
        let server = Builder::new("fake-do")
            .listen(addr)
            .errors(kit_error)
            .rate_limit(
                RateLimit::new(HeaderStyle::DigitalOcean, 250, 250.0 / 60.0),
                "too_many_requests",
            )
            .start(app)?;
        let fake = FakeDo {
            server,
            state,
            nth: Arc::default(),
        };
        fake.state().base = fake.server.url();
        Ok(fake)
    }

    /// The origin to pass as `--endpoint`.
    pub fn url(&self) -> String {
        self.server.url()
    }

    /// The kit server every request goes through: its faults and its log.
    pub fn kit(&self) -> &Server {
        &self.server
    }

    /// SSH keys as JSON.
    pub fn keys(&self) -> Vec<Value> {
        self.state().keys.values().cloned().collect()
    }

    /// Tag names that exist.
    pub fn tags(&self) -> Vec<String> {
        self.state().tags.iter().cloned().collect()
    }

    /// The state, for seeding and inspection.
    pub fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The `nth` request (1-based, counted from now) of `method` on a path starting with
    /// `prefix` answers 500 `server_error`, through the kit's fault layer. Several of these
    /// count the same requests independently.
    pub fn fail_nth(&self, method: &str, prefix: &str, nth: usize) {
        let Ok(mut list) = self.nth.lock() else {
            return;
        };
        let first = list.is_empty();
        list.push(NthFault {
            method: method.to_owned(),
            prefix: prefix.to_owned(),
            nth,
            seen: 0,
        });
        drop(list);
        if first {
            let shared = Arc::clone(&self.nth);
            self.server.fail_when(
                move |r| {
                    let Ok(mut list) = shared.lock() else {
                        return false;
                    };
                    let mut fire = false;
                    for f in list
                        .iter_mut()
                        .filter(|f| r.method.as_str() == f.method && r.path.starts_with(&f.prefix))
                    {
                        f.seen += 1;
                        fire |= f.seen == f.nth;
                    }
                    fire
                },
                crate::Fault::Status(500, "server_error"),
                usize::MAX,
            );
        }
    }

    /// Lets `limit` requests through at once, refilled at `per_sec` a second.
    pub fn set_rate_limit(&self, limit: u32, per_sec: f64) {
        self.server.set_rate_limit(limit, per_sec, limit);
    }

    /// Every request so far.
    pub fn log(&self) -> Vec<Logged> {
        self.state().log.clone()
    }

    /// Droplets, keys, firewalls, images (not system ones) and tags still there.
    pub fn leftovers(&self) -> Vec<String> {
        let s = self.state();
        let mut out = Vec::new();
        out.extend(
            s.droplets
                .values()
                .map(|d| format!("droplet {}", d["name"])),
        );
        out.extend(s.keys.values().map(|k| format!("key {}", k["name"])));
        out.extend(
            s.firewalls
                .values()
                .map(|f| format!("firewall {}", f["name"])),
        );
        out.extend(
            s.images
                .values()
                .filter(|i| i["public"] == false)
                .map(|i| format!("image {}", i["name"])),
        );
        out.extend(s.tags.iter().map(|t| format!("tag {t}")));
        out
    }

    /// Adds `tag` to image `id` (the tag is made if missing).
    pub fn state_tag_image(&self, id: i64, tag: &str) {
        let mut s = self.state();
        s.tags.insert(tag.to_owned());
        if let Some(t) = s.images.get_mut(&id).and_then(|i| i["tags"].as_array_mut()) {
            t.push(Value::from(tag));
        }
    }

    /// Whether image `id` still exists.
    pub fn state_has_image(&self, id: i64) -> bool {
        self.state().images.contains_key(&id)
    }

    /// Droplets as JSON.
    pub fn droplets(&self) -> Vec<Value> {
        self.state().droplets.values().cloned().collect()
    }

    /// Firewalls as JSON.
    pub fn firewalls(&self) -> Vec<Value> {
        self.state().firewalls.values().cloned().collect()
    }

    /// Private images as JSON.
    pub fn snapshots(&self) -> Vec<Value> {
        self.state()
            .images
            .values()
            .filter(|i| i["public"] == false)
            .cloned()
            .collect()
    }

    /// Adds an image of type `backup` of a droplet, as DigitalOcean's backups make.
    pub fn add_backup(&self, droplet: i64, name: &str) -> i64 {
        let mut s = self.state();
        let id = s.id();
        let t = now_rfc3339(s.tick());
        let mut img = image_json(id, name, "backup", "Ubuntu", &t, None);
        img["tags"] = json!(["managed-by:bootstrap"]);
        s.images.insert(id, img);
        if let Some(d) = s.droplets.get_mut(&droplet) {
            push(&mut d["backup_ids"], json!(id));
        }
        id
    }

    /// Whether droplet `id` can open connections out: some firewall applying to it (by tag or
    /// id) allows tcp on all ports to `0.0.0.0/0`, or none applies at all.
    pub fn has_egress(&self, id: i64) -> bool {
        let s = self.state();
        let Some(d) = s.droplets.get(&id) else {
            return false;
        };
        let tags: Vec<&str> = items(&d["tags"]).iter().filter_map(Value::as_str).collect();
        let applying: Vec<&Value> = s
            .firewalls
            .values()
            .filter(|f| {
                items(&f["tags"])
                    .iter()
                    .any(|t| t.as_str().is_some_and(|t| tags.contains(&t)))
                    || items(&f["droplet_ids"]).contains(&json!(id))
            })
            .collect();
        applying.is_empty()
            || applying.iter().all(|f| {
                items(&f["outbound_rules"]).iter().any(|r| {
                    r["protocol"] == "tcp"
                        && r["ports"] == "0"
                        && r["destinations"]["addresses"]
                            .as_array()
                            .is_some_and(|a| a.contains(&json!("0.0.0.0/0")))
                })
            })
    }
}

impl State {
    fn id(&mut self) -> i64 {
        self.next_id += 1;
        self.next_id
    }

    fn tick(&mut self) -> i64 {
        self.clock += 1;
        self.clock
    }

    fn action(&mut self, kind: &str, resource: i64) -> Value {
        let id = self.id();
        let t = now_rfc3339(self.tick());
        let a = json!({"id": id, "status": "in-progress", "type": kind, "started_at": t,
                       "completed_at": null, "resource_id": resource, "resource_type": "droplet",
                       "region": region("fra1"), "region_slug": "fra1"});
        self.actions
            .insert(id, (a.clone(), Timer::start(self.pace)));
        a
    }

    /// Completes an action at once when actions take no time.
    fn settle(&mut self, id: i64) {
        if self.actions.get(&id).is_some_and(|(_, t)| t.instant()) {
            self.complete(id);
        }
    }

    /// Completes every action whose wall time is up, whoever polls it.
    fn settle_due(&mut self) {
        let due: Vec<i64> = self
            .actions
            .iter()
            .filter(|(_, (a, t))| a["status"] == "in-progress" && t.due())
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            self.complete(id);
        }
    }

    /// Finishes an action and applies what it does.
    fn complete(&mut self, id: i64) {
        let Some((a, _)) = self.actions.get_mut(&id) else {
            return;
        };
        if a["status"] != "in-progress" {
            return;
        }
        a["status"] = json!("completed");
        let a = a.clone();
        let t = now_rfc3339(self.tick());
        if let Some((done, _)) = self.actions.get_mut(&id) {
            done["completed_at"] = json!(t);
        }
        let droplet = a["resource_id"].as_i64().unwrap_or_default();
        match a["type"].as_str().unwrap_or_default() {
            "create" => {
                if let Some(d) = self.droplets.get_mut(&droplet) {
                    d["status"] = json!("active");
                }
            }
            "snapshot" => {
                let img_id = self.id();
                let name = a["snapshot_name"].as_str().unwrap_or("").to_owned();
                let started = a["started_at"].as_str().unwrap_or_default().to_owned();
                self.images.insert(
                    img_id,
                    image_json(img_id, &name, "snapshot", "Ubuntu", &started, None),
                );
                if let Some(d) = self.droplets.get_mut(&droplet) {
                    push(&mut d["snapshot_ids"], json!(img_id));
                }
            }
            _ => {}
        }
    }

    fn tag_count(&self, tag: &str) -> usize {
        let has = |v: &Value| {
            v["tags"]
                .as_array()
                .is_some_and(|t| t.contains(&json!(tag)))
        };
        self.droplets.values().filter(|d| has(d)).count()
            + self.images.values().filter(|i| has(i)).count()
    }
}

fn err(status: StatusCode, id: &str, message: &str) -> (StatusCode, Value) {
    (
        status,
        json!({"id": id, "message": message, "request_id": "fake-req-0001"}),
    )
}

fn tag_err(status: StatusCode, message: &str) -> (StatusCode, Value) {
    (status, json!({"error": message, "messages": [message]}))
}

fn not_found() -> (StatusCode, Value) {
    err(
        StatusCode::NOT_FOUND,
        "not_found",
        "The resource you requested could not be found.",
    )
}

fn md5_fingerprint(public_key: &str) -> Option<String> {
    use base64::Engine as _;
    let blob = public_key.split_whitespace().nth(1)?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(blob)
        .ok()?;
    let digest = Md5::digest(&bytes);
    Some(
        digest
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(":"),
    )
}

fn query_map(q: &str) -> BTreeMap<String, String> {
    form_urlencoded::parse(q.as_bytes()).into_owned().collect()
}

/// One page of `items` under `key`, with `links.pages.next` as an absolute URL.
fn page(
    s: &State,
    path: &str,
    q: &BTreeMap<String, String>,
    key: &str,
    items: Vec<Value>,
) -> (StatusCode, Value) {
    let per_page: usize = q
        .get("per_page")
        .and_then(|p| p.parse().ok())
        .unwrap_or(20)
        .clamp(1, 200);
    let page_no: usize = q
        .get("page")
        .and_then(|p| p.parse().ok())
        .unwrap_or(1)
        .max(1);
    let total = items.len();
    let chunk: Vec<Value> = items
        .into_iter()
        .skip((page_no - 1) * per_page)
        .take(per_page)
        .collect();
    let mut pages = serde_json::Map::new();
    if page_no * per_page < total {
        let mut nq = q.clone();
        nq.insert("page".into(), (page_no + 1).to_string());
        nq.insert("per_page".into(), per_page.to_string());
        let qs: Vec<String> = nq
            .iter()
            .map(|(k, v)| format!("{k}={}", v.replace(':', "%3A")))
            .collect();
        pages.insert(
            "next".into(),
            json!(format!("{}{path}?{}", s.base, qs.join("&"))),
        );
        let last = total.div_ceil(per_page);
        nq.insert("page".into(), last.to_string());
        let qs: Vec<String> = nq
            .iter()
            .map(|(k, v)| format!("{k}={}", v.replace(':', "%3A")))
            .collect();
        pages.insert(
            "last".into(),
            json!(format!("{}{path}?{}", s.base, qs.join("&"))),
        );
    }
    (
        StatusCode::OK,
        json!({key: chunk, "links": {"pages": pages}, "meta": {"total": total}}),
    )
}

async fn handle(AxState(state): AxState<Arc<Mutex<State>>>, req: Request) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let query = req.uri().query().unwrap_or("").to_owned();
    let headers = req.headers().clone();
    let bytes: Bytes = axum::body::to_bytes(req.into_body(), 16 << 20)
        .await
        .unwrap_or_default();
    let body: Option<Value> = serde_json::from_slice(&bytes).ok();
    let mut s = state.lock().unwrap_or_else(|e| e.into_inner());
    s.log.push(Logged {
        method: method.to_string(),
        path: path.clone(),
        query: query.clone(),
        body: body.clone(),
    });
    let (status, value) = if headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_none_or(|v| !v.starts_with("Bearer ") || v.len() <= 7)
    {
        err(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "Unable to authenticate you",
        )
    } else {
        s.settle_due();
        route(&mut s, &method, &path, &query_map(&query), body)
    };
    let mut resp = if status == StatusCode::NO_CONTENT {
        status.into_response()
    } else {
        (status, axum::Json(value)).into_response()
    };
    resp.headers_mut()
        .insert("x-request-id", HeaderValue::from_static("fake-req-0001"));
    resp
}

fn route(
    s: &mut State,
    method: &Method,
    path: &str,
    q: &BTreeMap<String, String>,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let seg: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let body = body.unwrap_or(Value::Null);
    match (method.as_str(), seg.as_slice()) {
        ("GET", ["v2", "regions"]) => {
            let items = REGIONS.iter().map(|r| region(r)).collect();
            page(s, path, q, "regions", items)
        }
        ("GET", ["v2", "sizes"]) => {
            let items = SIZES.iter().map(|z| size(z)).collect();
            page(s, path, q, "sizes", items)
        }
        ("GET", ["v2", "images"]) => {
            let private = q.get("private").is_some_and(|p| p == "true");
            let tag = q.get("tag_name");
            let items = s
                .images
                .values()
                .filter(|i| !private || i["public"] == false)
                .filter(|i| tag.is_none_or(|t| has_tag(i, t)))
                .cloned()
                .collect();
            page(s, path, q, "images", items)
        }
        ("GET", ["v2", "images", id]) => {
            let found = match id.parse::<i64>() {
                Ok(n) => s.images.get(&n).cloned(),
                Err(_) => s.images.values().find(|i| i["slug"] == json!(id)).cloned(),
            };
            found.map_or_else(not_found, |i| (StatusCode::OK, json!({"image": i})))
        }
        ("DELETE", ["v2", "images", id]) => {
            match id.parse::<i64>().ok().and_then(|n| s.images.remove(&n)) {
                Some(_) => (StatusCode::NO_CONTENT, Value::Null),
                None => not_found(),
            }
        }
        ("GET", ["v2", "account", "keys"]) => {
            let now = Instant::now();
            s.key_lists
                .retain(|t| now.duration_since(*t) < Duration::from_secs(60));
            if s.key_lists.len() >= 10 {
                return err(
                    StatusCode::TOO_MANY_REQUESTS,
                    "too_many_requests",
                    "API Rate limit exceeded.",
                );
            }
            s.key_lists.push(now);
            let items = s.keys.values().cloned().collect();
            page(s, path, q, "ssh_keys", items)
        }
        ("GET", ["v2", "account", "keys", k]) => s
            .keys
            .values()
            .find(|v| {
                v["id"].as_i64().is_some_and(|i| k.parse() == Ok(i)) || v["fingerprint"] == json!(k)
            })
            .cloned()
            .map_or_else(not_found, |k| (StatusCode::OK, json!({"ssh_key": k}))),
        ("POST", ["v2", "account", "keys"]) => {
            let (Some(name), Some(pk)) = (body["name"].as_str(), body["public_key"].as_str())
            else {
                return err(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "unprocessable_entity",
                    "name and public_key are required",
                );
            };
            let Some(fp) = md5_fingerprint(pk) else {
                return err(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "unprocessable_entity",
                    "Key invalid type, we support 'ssh-rsa', 'ssh-ed25519'",
                );
            };
            if s.keys.values().any(|k| k["fingerprint"] == json!(fp)) {
                return err(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "unprocessable_entity",
                    "SSH Key is already in use on your account",
                );
            }
            let id = s.id();
            let k = json!({"id": id, "fingerprint": fp, "public_key": pk, "name": name});
            s.keys.insert(id, k.clone());
            (StatusCode::CREATED, json!({"ssh_key": k}))
        }
        ("DELETE", ["v2", "account", "keys", k]) => {
            let id = s
                .keys
                .values()
                .find(|v| {
                    v["id"].as_i64().is_some_and(|i| k.parse() == Ok(i))
                        || v["fingerprint"] == json!(k)
                })
                .and_then(|v| v["id"].as_i64());
            match id {
                Some(id) => {
                    s.keys.remove(&id);
                    (StatusCode::NO_CONTENT, Value::Null)
                }
                None => not_found(),
            }
        }
        ("POST", ["v2", "tags"]) => {
            let Some(name) = body["name"].as_str() else {
                return tag_err(StatusCode::BAD_REQUEST, "name is required");
            };
            if name.is_empty()
                || name.len() > 255
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b':'))
            {
                return tag_err(StatusCode::BAD_REQUEST, "tag name is invalid");
            }
            s.tags.insert(name.to_owned());
            (StatusCode::CREATED, json!({"tag": tag_json(s, name)}))
        }
        ("GET", ["v2", "tags"]) => {
            let names: Vec<String> = s.tags.iter().cloned().collect();
            let items = names.iter().map(|n| tag_json(s, n)).collect();
            page(s, path, q, "tags", items)
        }
        ("GET", ["v2", "tags", t]) => {
            if s.tags.contains(*t) {
                (StatusCode::OK, json!({"tag": tag_json(s, t)}))
            } else {
                tag_err(StatusCode::NOT_FOUND, "tag not found")
            }
        }
        ("DELETE", ["v2", "tags", t]) => {
            if !s.tags.remove(*t) {
                return tag_err(StatusCode::NOT_FOUND, "tag not found");
            }
            // Deleting a tag untags everything, firewalls' targets included.
            for v in s
                .droplets
                .values_mut()
                .chain(s.images.values_mut())
                .chain(s.firewalls.values_mut())
            {
                if let Some(a) = v["tags"].as_array_mut() {
                    a.retain(|x| x != &json!(t));
                }
            }
            (StatusCode::NO_CONTENT, Value::Null)
        }
        ("POST" | "DELETE", ["v2", "tags", t, "resources"]) => {
            if !s.tags.contains(*t) {
                return tag_err(StatusCode::NOT_FOUND, "tag not found");
            }
            let add = method == Method::POST;
            for r in body["resources"].as_array().cloned().unwrap_or_default() {
                let id: i64 = r["resource_id"]
                    .as_str()
                    .and_then(|i| i.parse().ok())
                    .unwrap_or(-1);
                let target = match r["resource_type"].as_str() {
                    Some("droplet") => s.droplets.get_mut(&id),
                    Some("image") => s.images.get_mut(&id),
                    _ => None,
                };
                let Some(v) = target else {
                    return tag_err(StatusCode::NOT_FOUND, "resource not found");
                };
                if !v["tags"].is_array() {
                    v["tags"] = json!([]);
                }
                let Some(a) = v["tags"].as_array_mut() else {
                    continue;
                };
                if add && !a.contains(&json!(t)) {
                    a.push(json!(t));
                } else if !add {
                    a.retain(|x| x != &json!(t));
                }
            }
            (StatusCode::NO_CONTENT, Value::Null)
        }
        ("GET", ["v2", "droplets"]) => {
            let tag = q.get("tag_name");
            let items = s
                .droplets
                .values()
                .filter(|d| tag.is_none_or(|t| has_tag(d, t)))
                .cloned()
                .collect();
            page(s, path, q, "droplets", items)
        }
        ("DELETE", ["v2", "droplets"]) => {
            // The trap: every droplet carrying the tag goes, whoever made it.
            let Some(tag) = q.get("tag_name") else {
                return err(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "unprocessable_entity",
                    "tag_name is required",
                );
            };
            s.droplets.retain(|_, d| !has_tag(d, tag));
            (StatusCode::NO_CONTENT, Value::Null)
        }
        ("POST", ["v2", "droplets"]) => create_droplet(s, &body),
        ("GET", ["v2", "droplets", id]) => id
            .parse::<i64>()
            .ok()
            .and_then(|n| s.droplets.get(&n).cloned())
            .map_or_else(not_found, |d| (StatusCode::OK, json!({"droplet": d}))),
        ("DELETE", ["v2", "droplets", id]) => {
            match id.parse::<i64>().ok().and_then(|n| s.droplets.remove(&n)) {
                Some(d) => {
                    // Backups go with their droplet; snapshots stay.
                    let backups = d["backup_ids"].as_array().cloned().unwrap_or_default();
                    s.images
                        .retain(|id, _| !backups.iter().any(|b| b.as_i64() == Some(*id)));
                    (StatusCode::NO_CONTENT, Value::Null)
                }
                None => not_found(),
            }
        }
        ("GET", ["v2", "droplets", id, "backups"]) => {
            let Some(d) = id
                .parse::<i64>()
                .ok()
                .and_then(|n| s.droplets.get(&n).cloned())
            else {
                return not_found();
            };
            let items = items(&d["backup_ids"])
                .iter()
                .filter_map(|i| i.as_i64().and_then(|i| s.images.get(&i)))
                .map(|i| {
                    let mut i = i.clone();
                    remove(&mut i, "tags");
                    i
                })
                .collect();
            page(s, path, q, "backups", items)
        }
        ("GET", ["v2", "droplets", id, "snapshots"]) => {
            let Some(d) = id
                .parse::<i64>()
                .ok()
                .and_then(|n| s.droplets.get(&n).cloned())
            else {
                return not_found();
            };
            let items = items(&d["snapshot_ids"])
                .iter()
                .filter_map(|i| i.as_i64().and_then(|i| s.images.get(&i)))
                .map(|i| {
                    let mut i = i.clone();
                    remove(&mut i, "tags");
                    i
                })
                .collect();
            page(s, path, q, "snapshots", items)
        }
        ("POST", ["v2", "droplets", id, "actions"]) => {
            let Some(n) = id
                .parse::<i64>()
                .ok()
                .filter(|n| s.droplets.contains_key(n))
            else {
                return not_found();
            };
            let kind = body["type"].as_str().unwrap_or("").to_owned();
            match kind.as_str() {
                "snapshot" => {
                    let mut a = s.action("snapshot", n);
                    // Remembered for the completion; never part of an answer.
                    let id = a["id"].as_i64().unwrap_or_default();
                    let name = body["name"].as_str().unwrap_or("").to_owned();
                    if let Some((held, _)) = s.actions.get_mut(&id) {
                        held["snapshot_name"] = json!(name);
                    }
                    s.settle(id);
                    remove(&mut a, "snapshot_name");
                    (StatusCode::CREATED, json!({"action": a}))
                }
                "enable_backups" | "change_backup_policy" => {
                    let policy = body["backup_policy"].clone();
                    if let Some(d) = s.droplets.get_mut(&n) {
                        if !has_tag_in(&d["features"], "backups") {
                            push(&mut d["features"], json!("backups"));
                        }
                        d["backup_policy_fake"] = policy;
                    }
                    let a = s.action(&kind, n);
                    s.settle(a["id"].as_i64().unwrap_or_default());
                    (StatusCode::CREATED, json!({"action": a}))
                }
                _ => err(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "unprocessable_entity",
                    "unknown action type",
                ),
            }
        }
        ("GET", ["v2", "actions", id]) => {
            let Some(n) = id.parse::<i64>().ok().filter(|n| s.actions.contains_key(n)) else {
                return not_found();
            };
            let done = s.actions.get_mut(&n).is_some_and(|(_, t)| t.observe());
            if done {
                s.complete(n);
            }
            let mut a = s
                .actions
                .get(&n)
                .map(|(a, _)| a.clone())
                .unwrap_or_default();
            remove(&mut a, "snapshot_name");
            (StatusCode::OK, json!({"action": a}))
        }
        ("GET", ["v2", "firewalls"]) => {
            let items = s.firewalls.values().cloned().collect();
            page(s, path, q, "firewalls", items)
        }
        ("POST", ["v2", "firewalls"]) => {
            let id = format!("fb6045f1-cf1d-4ca3-bfac-{:012}", s.id());
            match firewall_from(s, &id, &body) {
                Ok(f) => {
                    s.firewalls.insert(id, f.clone());
                    (StatusCode::ACCEPTED, json!({"firewall": f}))
                }
                Err(e) => e,
            }
        }
        ("GET", ["v2", "firewalls", id]) => s
            .firewalls
            .get(*id)
            .cloned()
            .map_or_else(not_found, |f| (StatusCode::OK, json!({"firewall": f}))),
        ("PUT", ["v2", "firewalls", id]) => {
            if !s.firewalls.contains_key(*id) {
                return not_found();
            }
            // PUT replaces everything: what the body leaves out (the targets) is gone.
            match firewall_from(s, id, &body) {
                Ok(f) => {
                    s.firewalls.insert((*id).to_owned(), f.clone());
                    (StatusCode::OK, json!({"firewall": f}))
                }
                Err(e) => e,
            }
        }
        ("DELETE", ["v2", "firewalls", id]) => match s.firewalls.remove(*id) {
            Some(_) => (StatusCode::NO_CONTENT, Value::Null),
            None => not_found(),
        },
        ("POST" | "DELETE", ["v2", "firewalls", id, "rules"]) => {
            let add = method == Method::POST;
            let Some(f) = s.firewalls.get_mut(*id) else {
                return not_found();
            };
            for (key, side) in [
                ("inbound_rules", "sources"),
                ("outbound_rules", "destinations"),
            ] {
                for r in body[key].as_array().cloned().unwrap_or_default() {
                    let r = normalize_rule(&r, side);
                    if !f[key].is_array() {
                        f[key] = json!([]);
                    }
                    let Some(rules) = f[key].as_array_mut() else {
                        continue;
                    };
                    if add {
                        rules.push(r);
                    } else {
                        rules.retain(|x| x != &r);
                    }
                }
            }
            (StatusCode::NO_CONTENT, Value::Null)
        }
        _ => not_found(),
    }
}

fn tag_json(s: &State, t: &str) -> Value {
    let count = s.tag_count(t);
    json!({"name": t, "resources": {"count": count, "last_tagged_uri": "",
        "droplets": {"count": count}, "images": {"count": 0}, "volumes": {"count": 0},
        "volume_snapshots": {"count": 0}, "databases": {"count": 0}}})
}

/// A rule as the API stores it: all ports and icmp as `"0"`, every target list present.
fn normalize_rule(r: &Value, side: &str) -> Value {
    let protocol = r["protocol"].as_str().unwrap_or("");
    let ports = match (protocol, r["ports"].as_str()) {
        ("icmp", _) | (_, None | Some("all" | "")) => "0".to_owned(),
        (_, Some(p)) => p.to_owned(),
    };
    let t = &r[side];
    json!({"protocol": protocol, "ports": ports, side: {
        "addresses": t["addresses"].as_array().cloned().unwrap_or_default(),
    }})
}

fn firewall_from(s: &mut State, id: &str, body: &Value) -> Result<Value, (StatusCode, Value)> {
    let name = body["name"].as_str().unwrap_or("");
    let valid = name.len() >= 2
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-'));
    if !valid {
        return Err(err(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "name: must match ^[a-zA-Z0-9][a-zA-Z0-9\\.-]+$",
        ));
    }
    let tags: Vec<String> = body["tags"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter_map(|t| t.as_str().map(str::to_owned))
        .collect();
    if let Some(missing) = tags.iter().find(|t| !s.tags.contains(*t)) {
        return Err(err(
            StatusCode::UNPROCESSABLE_ENTITY,
            "unprocessable_entity",
            &format!("tag '{missing}' does not exist"),
        ));
    }
    let rules = |key: &str, side: &str| -> Vec<Value> {
        body[key]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|r| normalize_rule(r, side))
            .collect()
    };
    let t = now_rfc3339(s.tick());
    Ok(
        json!({"id": id, "status": "succeeded", "created_at": t, "pending_changes": [],
        "name": name, "inbound_rules": rules("inbound_rules", "sources"),
        "outbound_rules": rules("outbound_rules", "destinations"),
        "droplet_ids": body["droplet_ids"].as_array().cloned().unwrap_or_default(), "tags": tags}),
    )
}

fn create_droplet(s: &mut State, body: &Value) -> (StatusCode, Value) {
    let name = body["name"].as_str().unwrap_or("");
    let region_slug = body["region"].as_str().unwrap_or("");
    let size_slug = body["size"].as_str().unwrap_or("");
    if name.is_empty() || !REGIONS.contains(&region_slug) || !SIZES.contains(&size_slug) {
        return err(
            StatusCode::UNPROCESSABLE_ENTITY,
            "unprocessable_entity",
            "name, region and size must be valid",
        );
    }
    if body["user_data"]
        .as_str()
        .is_some_and(|u| u.len() > 64 * 1024)
    {
        return err(
            StatusCode::UNPROCESSABLE_ENTITY,
            "unprocessable_entity",
            "user_data is limited to 64 KiB",
        );
    }
    let image = match &body["image"] {
        Value::Number(n) => s.images.get(&n.as_i64().unwrap_or(-1)).cloned(),
        Value::String(slug) => s
            .images
            .values()
            .find(|i| i["slug"] == json!(slug))
            .cloned(),
        _ => None,
    };
    let Some(image) = image else {
        return err(
            StatusCode::UNPROCESSABLE_ENTITY,
            "unprocessable_entity",
            "You specified an invalid image for Droplet creation.",
        );
    };
    for k in body["ssh_keys"].as_array().cloned().unwrap_or_default() {
        if !s
            .keys
            .values()
            .any(|v| v["id"] == k || v["fingerprint"] == k)
        {
            return err(
                StatusCode::UNPROCESSABLE_ENTITY,
                "unprocessable_entity",
                "You specified an invalid SSH key ID.",
            );
        }
    }
    let tags: Vec<String> = body["tags"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter_map(|t| t.as_str().map(str::to_owned))
        .collect();
    if let Some(bad) = tags.iter().find(|t| {
        !t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b':'))
    }) {
        return err(
            StatusCode::UNPROCESSABLE_ENTITY,
            "unprocessable_entity",
            &format!("invalid tag name {bad:?}"),
        );
    }
    // Droplet create makes missing tags.
    s.tags.extend(tags.iter().cloned());
    let id = s.id();
    let octet = id % 250;
    let t = now_rfc3339(s.tick());
    let d = json!({"id": id, "name": name, "memory": 1024, "vcpus": 1, "disk": 25, "locked": false,
        "status": "new", "kernel": null, "created_at": t, "features": if body["ipv6"] == true { json!(["ipv6"]) } else { json!([]) },
        "backup_ids": [], "next_backup_window": null, "snapshot_ids": [], "image": image,
        "volume_ids": [], "size": size(size_slug), "size_slug": size_slug,
        "networks": {"v4": [{"ip_address": format!("203.0.113.{octet}"), "netmask": "255.255.255.0", "gateway": "203.0.113.1", "type": "public"}],
                     "v6": [{"ip_address": format!("2001:db8::{id:x}"), "netmask": 64, "gateway": "2001:db8::1", "type": "public"}]},
        "region": region(region_slug), "tags": tags, "vpc_uuid": "760e09ef-dc84-11e8-981e-3cfdfeaae000"});
    s.droplets.insert(id, d.clone());
    let a = s.action("create", id);
    s.settle(a["id"].as_i64().unwrap_or_default());
    (
        StatusCode::ACCEPTED,
        json!({"droplet": d, "links": {"actions": [{"id": a["id"], "rel": "create", "href": format!("{}/v2/actions/{}", s.base, a["id"])}]}}),
    )
}
