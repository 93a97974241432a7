//! What the DigitalOcean fake holds, and its actions: each is `in-progress` until the kit's
//! clock says it is done, then `completed`, and only then does its effect happen (a droplet
//! becomes `active`, a snapshot image appears).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use serde_json::{Value, json};

use super::catalog::region;
use super::images::image_json;
use crate::clock::{Pace, Timer};
use crate::hetzner::rfc3339;

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

/// Everything the fake holds. Resources are kept as the JSON the API renders; what the API
/// never renders (a droplet's `user_data`, a snapshot action's image name) is kept apart.
#[derive(Debug)]
pub struct State {
    pub(super) next_id: i64,
    pub(super) clock: i64,
    /// How long actions take.
    pub pace: Pace,
    pub(super) keys: BTreeMap<i64, Value>,
    pub(super) droplets: BTreeMap<i64, Value>,
    /// `user_data` by droplet id: immutable, and never part of an answer.
    pub(super) user_data: BTreeMap<i64, String>,
    pub(super) firewalls: BTreeMap<String, Value>,
    pub(super) tags: BTreeSet<String>,
    pub(super) images: BTreeMap<i64, Value>,
    pub(super) actions: BTreeMap<i64, (Value, Timer)>,
    /// The name of the image a snapshot action makes, by action id (never answered).
    pub(super) snapshot_names: BTreeMap<i64, String>,
    pub(super) log: Vec<Logged>,
    /// When `GET /v2/account/keys` was answered, for its own limit of 10 a minute.
    pub(super) key_lists: Vec<Instant>,
    /// The origin the fake serves on, for absolute URLs (`links`).
    pub(super) base: String,
}

/// The items of a JSON array, none for anything else.
pub(super) fn items(v: &Value) -> &[Value] {
    v.as_array().map_or(&[], Vec::as_slice)
}

/// Whether `v["tags"]` holds `tag`.
pub(super) fn has_tag(v: &Value, tag: &str) -> bool {
    items(&v["tags"]).iter().any(|t| t == tag)
}

/// The strings of `v[key]`, an array (none for anything else).
pub(super) fn strings(v: &Value, key: &str) -> Vec<String> {
    items(&v[key])
        .iter()
        .filter_map(|t| t.as_str().map(str::to_owned))
        .collect()
}

/// Pushes `x` onto the array `v`, making it one if it was not.
pub(super) fn push(v: &mut Value, x: Value) {
    if !v.is_array() {
        *v = json!([]);
    }
    if let Some(a) = v.as_array_mut() {
        a.push(x);
    }
}

/// A tag name the API accepts: `^[a-zA-Z0-9_\-:]+$`, at most 255 characters.
pub(super) fn valid_tag(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b':'))
}

impl State {
    /// An empty account with the system images; actions take `pace`.
    pub(super) fn new(pace: Pace) -> State {
        let images = super::catalog::SYSTEM_IMAGES
            .iter()
            .map(|(id, slug, dist)| {
                let img = image_json(*id, slug, "base", dist, "2024-05-01T00:00:00Z", Some(slug));
                (*id, img)
            })
            .collect();
        State {
            next_id: 1000,
            clock: 1_795_000_000,
            pace,
            keys: BTreeMap::new(),
            droplets: BTreeMap::new(),
            user_data: BTreeMap::new(),
            firewalls: BTreeMap::new(),
            tags: BTreeSet::new(),
            images,
            actions: BTreeMap::new(),
            snapshot_names: BTreeMap::new(),
            log: Vec::new(),
            key_lists: Vec::new(),
            base: String::new(),
        }
    }

    /// A fresh id (one range for everything).
    pub(super) fn id(&mut self) -> i64 {
        self.next_id += 1;
        self.next_id
    }

    /// The fake's clock, one second further: every timestamp differs.
    pub(super) fn tick(&mut self) -> String {
        self.clock += 1;
        rfc3339(self.clock.unsigned_abs())
    }

    /// Starts an action of `kind` on droplet `resource`; completes it at once when actions take
    /// no time.
    pub(super) fn action(&mut self, kind: &str, resource: i64) -> Value {
        self.action_making(kind, resource, None)
    }

    /// As [`State::action`]; a `snapshot` action makes an image named `image` when it completes.
    pub(super) fn action_making(
        &mut self,
        kind: &str,
        resource: i64,
        image: Option<&str>,
    ) -> Value {
        let id = self.id();
        if let Some(name) = image {
            self.snapshot_names.insert(id, name.to_owned());
        }
        let t = self.tick();
        let a = json!({"id": id, "status": "in-progress", "type": kind, "started_at": t,
                       "completed_at": null, "resource_id": resource, "resource_type": "droplet",
                       "region": region("fra1"), "region_slug": "fra1"});
        self.actions
            .insert(id, (a.clone(), Timer::start(self.pace)));
        if self.actions.get(&id).is_some_and(|(_, t)| t.instant()) {
            self.complete(id);
        }
        a
    }

    /// Completes every action whose wall time is up, whoever polls it.
    pub(super) fn settle_due(&mut self) {
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
    pub(super) fn complete(&mut self, id: i64) {
        let t = self.tick();
        let Some((a, _)) = self.actions.get_mut(&id) else {
            return;
        };
        if a["status"] != "in-progress" {
            return;
        }
        a["status"] = json!("completed");
        a["completed_at"] = json!(t);
        let a = a.clone();
        let droplet = a["resource_id"].as_i64().unwrap_or_default();
        match a["type"].as_str().unwrap_or_default() {
            "create" => {
                if let Some(d) = self.droplets.get_mut(&droplet) {
                    d["status"] = json!("active");
                }
            }
            "snapshot" => {
                let img_id = self.id();
                let name = self.snapshot_names.remove(&id).unwrap_or_default();
                // The image's creation time is the action's start: how the adapter finds it.
                let started = a["started_at"].as_str().unwrap_or_default();
                self.images.insert(
                    img_id,
                    image_json(img_id, &name, "snapshot", "Ubuntu", started, None),
                );
                if let Some(d) = self.droplets.get_mut(&droplet) {
                    push(&mut d["snapshot_ids"], json!(img_id));
                }
            }
            _ => {}
        }
    }

    /// How many droplets and images carry `tag`.
    pub(super) fn tag_count(&self, tag: &str) -> usize {
        self.droplets.values().filter(|d| has_tag(d, tag)).count()
            + self.images.values().filter(|i| has_tag(i, tag)).count()
    }
}
