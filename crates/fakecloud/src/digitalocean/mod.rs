//! A stateful fake of the DigitalOcean API (`/v2`), for flow and trap tests that run the real
//! `bootstrap` binary against it (`--endpoint <fake.url()>`), and for `fakecloud digitalocean`.
//! Served on the kit's [`Server`] on 127.0.0.1 (its faults, its rate limit with DigitalOcean's
//! headers, its request log); actions run on the kit's clock; stopped on drop.
//!
//! Shapes follow the official OpenAPI document (`digitalocean.yaml`); the crate's tests check
//! every kind of answer against it. It behaves like the documented API where the adapter could
//! get it wrong, one module per resource:
//! - `droplets`: create 202 (status `new` until its action completes), `?tag_name=` lists,
//!   delete by id, and the `DELETE /v2/droplets?tag_name=` trap; droplet actions 201 `{action}`
//!   (`snapshot` returns no image id; `enable_backups`, `change_backup_policy`);
//!   `GET /v2/actions/{id}` and `GET /v2/actions` (newest first) on the kit's clock ([`Pace`]);
//! - `keys`: 201 on upload, 422 "already in use" for a duplicate, get by id or fingerprint,
//!   listing limited to 10 requests a minute;
//! - `firewalls`: a `tags` target must exist, `PUT` resets the targets, rules through
//!   `POST`/`DELETE .../rules`, all ports and icmp read back as `"0"`; no outbound rules, no
//!   egress ([`FakeDo::has_egress`]);
//! - `tags`: errors in their own shape `{error, messages}`; `images`; `catalog` (regions, sizes);
//! - `api`: errors `{id, message, request_id}` (injected faults too), and lists paged by the
//!   kit ([`crate::page`]: `per_page` up to 200, absolute `links.pages` URLs, `meta.total`);
//! - every answer carries `ratelimit-limit`/`-remaining`/`-reset` (epoch seconds) from the
//!   kit's [`RateLimit`] (250 a minute); over it a 429 with `retry-after`.

mod api;
mod catalog;
mod droplets;
mod firewalls;
mod images;
mod keys;
mod state;
mod tags;

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::body::Bytes;
use axum::extract::{Request, State as Shared};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

pub use droplets::USER_DATA_LIMIT;
pub use keys::KEY_LISTS_PER_MINUTE;
pub use state::{Logged, State};

use crate::clock::Pace;
use crate::ratelimit::{HeaderStyle, RateLimit};
use crate::server::{Builder, Server};
use api::{Answer, Req, err};
use state::{push, strings};

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

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A test that panicked while holding the lock must not take the fake down with it.
    m.lock().unwrap_or_else(PoisonError::into_inner)
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
        let state = Arc::new(Mutex::new(State::new(pace)));
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(state.clone());
        let server = Builder::new("fake-do")
            .listen(addr)
            .errors(api::kit_error)
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

    /// The state, for seeding and inspection.
    pub fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    // ----- seeding (no request is logged) -----

    /// Adds an `active` droplet shaped like `template` (a droplet as the API renders it) under a
    /// new id, with `name` and `tags` (made if missing); returns its id. For benchmarks that
    /// need many servers without creating each through the API.
    pub fn insert_droplet_like(&self, template: &Value, name: &str, tags: &[String]) -> i64 {
        let mut s = self.state();
        let id = s.id();
        let created = s.tick();
        let mut d = template.clone();
        d["id"] = json!(id);
        d["name"] = json!(name);
        d["status"] = json!("active");
        d["created_at"] = json!(created);
        d["tags"] = json!(tags);
        d["snapshot_ids"] = json!([]);
        d["backup_ids"] = json!([]);
        s.tags.extend(tags.iter().cloned());
        s.droplets.insert(id, d);
        id
    }

    // ----- inspection -----

    /// SSH keys as JSON.
    pub fn keys(&self) -> Vec<Value> {
        self.state().keys.values().cloned().collect()
    }

    /// Tag names that exist.
    pub fn tags(&self) -> Vec<String> {
        self.state().tags.iter().cloned().collect()
    }

    /// Droplets as JSON.
    pub fn droplets(&self) -> Vec<Value> {
        self.state().droplets.values().cloned().collect()
    }

    /// The `user_data` droplet `id` was created with (the API never returns it).
    pub fn user_data(&self, id: i64) -> Option<String> {
        self.state().user_data.get(&id).cloned()
    }

    /// Firewalls as JSON.
    pub fn firewalls(&self) -> Vec<Value> {
        self.state().firewalls.values().cloned().collect()
    }

    /// Private images (snapshots and backups) as JSON.
    pub fn snapshots(&self) -> Vec<Value> {
        self.state()
            .images
            .values()
            .filter(|i| i["public"] == false)
            .cloned()
            .collect()
    }

    /// Whether image `id` still exists.
    pub fn state_has_image(&self, id: i64) -> bool {
        self.state().images.contains_key(&id)
    }

    /// Every request so far.
    pub fn log(&self) -> Vec<Logged> {
        self.state().log.clone()
    }

    /// Droplets, keys, firewalls, images (not system ones) and tags still there.
    pub fn leftovers(&self) -> Vec<String> {
        let s = self.state();
        let named = |kind: &str, v: &Value| format!("{kind} {}", v["name"]);
        let mut out: Vec<String> = s.droplets.values().map(|d| named("droplet", d)).collect();
        out.extend(s.keys.values().map(|k| named("key", k)));
        out.extend(s.firewalls.values().map(|f| named("firewall", f)));
        out.extend(
            s.images
                .values()
                .filter(|i| i["public"] == false)
                .map(|i| named("image", i)),
        );
        out.extend(s.tags.iter().map(|t| format!("tag {t}")));
        out
    }

    /// Whether droplet `id` can open connections out: every firewall applying to it (by tag or
    /// id) allows tcp on all ports to `0.0.0.0/0`, or none applies at all.
    pub fn has_egress(&self, id: i64) -> bool {
        let s = self.state();
        s.droplets
            .get(&id)
            .is_some_and(|d| firewalls::egress(&s, id, &strings(d, "tags")))
    }

    // ----- seeding (no request is logged) -----

    /// Adds `tag` to image `id` (the tag is made if missing).
    pub fn state_tag_image(&self, id: i64, tag: &str) {
        let mut s = self.state();
        s.tags.insert(tag.to_owned());
        if let Some(i) = s.images.get_mut(&id) {
            push(&mut i["tags"], json!(tag));
        }
    }

    /// Adds an active droplet carrying `tags` (made if missing), as if created earlier (in
    /// fra1, s-1vcpu-1gb, Ubuntu 24.04); returns its id.
    pub fn insert_droplet(&self, name: &str, tags: &[&str]) -> i64 {
        let mut s = self.state();
        let id = s.id();
        let t = s.tick();
        let tags: Vec<String> = tags.iter().map(|t| (*t).to_owned()).collect();
        s.tags.extend(tags.iter().cloned());
        let image = s
            .images
            .values()
            .find(|i| i["slug"] == "ubuntu-24-04-x64")
            .cloned()
            .unwrap_or(Value::Null);
        let mut d = droplets::droplet_json(id, name, "fra1", "s-1vcpu-1gb", image, &tags, &t, true);
        d["status"] = json!("active");
        s.droplets.insert(id, d);
        id
    }

    /// Adds a snapshot image of droplet `droplet` carrying `tags` (made if missing), as if its
    /// snapshot action completed at `created_at` (RFC 3339); returns its id.
    pub fn insert_snapshot(
        &self,
        droplet: i64,
        name: &str,
        tags: &[&str],
        created_at: &str,
    ) -> i64 {
        let mut s = self.state();
        let id = s.id();
        let mut img = images::image_json(id, name, "snapshot", "Ubuntu", created_at, None);
        img["tags"] = json!(tags);
        s.tags.extend(tags.iter().map(|t| (*t).to_owned()));
        s.images.insert(id, img);
        if let Some(d) = s.droplets.get_mut(&droplet) {
            push(&mut d["snapshot_ids"], json!(id));
        }
        id
    }

    /// Adds an image of type `backup` of a droplet, as DigitalOcean's backups make.
    pub fn add_backup(&self, droplet: i64, name: &str) -> i64 {
        let mut s = self.state();
        let id = s.id();
        let t = s.tick();
        let mut img = images::image_json(id, name, "backup", "Ubuntu", &t, None);
        img["tags"] = json!(["managed-by:bootstrap"]);
        s.images.insert(id, img);
        if let Some(d) = s.droplets.get_mut(&droplet) {
            push(&mut d["backup_ids"], json!(id));
        }
        id
    }

    // ----- faults and limits -----

    /// The `nth` request (1-based, counted from now) of `method` on a path starting with
    /// `prefix` answers 500 `server_error`, through the kit's fault layer. Several of these
    /// count the same requests independently.
    pub fn fail_nth(&self, method: &str, prefix: &str, nth: usize) {
        let mut list = lock(&self.nth);
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
                    let mut fire = false;
                    for f in lock(&shared)
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
}

/// Every request: logged, authenticated (`Authorization: Bearer <anything>`), then answered by
/// the first resource module that knows its path, under the state's lock.
async fn handle(Shared(state): Shared<Arc<Mutex<State>>>, req: Request) -> Response {
    let method = req.method().as_str().to_owned();
    let path = req.uri().path().to_owned();
    let query = req.uri().query().unwrap_or("").to_owned();
    let authorized = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|t| !t.trim().is_empty());
    let bytes: Bytes = axum::body::to_bytes(req.into_body(), 16 << 20)
        .await
        .unwrap_or_default();
    let body: Option<Value> = serde_json::from_slice(&bytes).ok();
    let mut s = lock(&state);
    s.log.push(Logged {
        method: method.clone(),
        path: path.clone(),
        query: query.clone(),
        body: body.clone(),
    });
    let (status, value) = if authorized {
        s.settle_due();
        route(&mut s, &Req::new(&method, &path, &query, body))
    } else {
        err(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "Unable to authenticate you",
        )
    };
    drop(s);
    let mut resp = if status == StatusCode::NO_CONTENT {
        status.into_response()
    } else {
        (status, axum::Json(value)).into_response()
    };
    resp.headers_mut()
        .insert("x-request-id", HeaderValue::from_static(api::REQUEST_ID));
    resp
}

fn route(s: &mut State, r: &Req) -> Answer {
    let modules: [fn(&mut State, &Req) -> Option<Answer>; 6] = [
        droplets::route,
        firewalls::route,
        keys::route,
        tags::route,
        images::route,
        catalog::route,
    ];
    modules
        .iter()
        .find_map(|m| m(s, r))
        .unwrap_or_else(api::not_found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_paths_are_404_in_the_api_shape() {
        let mut s = State::new(Pace::Polls(0));
        let (status, body) = route(&mut s, &Req::new("GET", "/v2/nothing", "", None));
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(body["id"], "not_found");
        assert_eq!(body["request_id"], api::REQUEST_ID);
    }
}
