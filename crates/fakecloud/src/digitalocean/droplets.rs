//! Droplets (`/v2/droplets`) and their actions (`/v2/actions`).
//!
//! - create 202 with `links.actions`; `status: new` until the create action completes; the
//!   `user_data` (at most 64 KiB) is kept but never rendered; tags that do not exist yet are made;
//! - `?tag_name=` lists; `DELETE /v2/droplets/{id}` 204, the droplet's backups go with it (its
//!   snapshots stay); `DELETE /v2/droplets?tag_name=` deletes every droplet carrying the tag,
//!   whoever made it: the trap the adapter must never send;
//! - `/backups` and `/snapshots` list the droplet's images, without their tags;
//! - droplet actions answer 201 `{action}`: `snapshot` (the image appears once the action
//!   completes, with `created_at` = the action's `started_at`; its id is never returned),
//!   `enable_backups` and `change_backup_policy` (the policy is kept as `backup_policy_fake`);
//! - `GET /v2/actions/{id}` is an observation that may complete the action (the kit's clock);
//!   `GET /v2/actions` lists every action of the account, newest first (the order the API
//!   gives, which the document does not state), each one on the page served observed.

use axum::http::StatusCode;
use serde_json::{Value, json};

use super::api::{Answer, Req, no_content, not_found, num, page, unprocessable};
use super::catalog::{REGIONS, SIZES, region, size};
use super::state::{State, has_tag, items, push, strings, valid_tag};
use crate::page::Paging;

/// Largest `user_data` the API accepts, in bytes.
pub const USER_DATA_LIMIT: usize = 64 * 1024;

/// The images whose ids a droplet lists under `key`, in the narrower `droplet_snapshot` shape
/// of `/backups` and `/snapshots` (no tags, status or slug).
fn images_of(s: &State, d: &Value, key: &str) -> Vec<Value> {
    const FIELDS: &[&str] = &[
        "id",
        "name",
        "type",
        "created_at",
        "regions",
        "min_disk_size",
        "size_gigabytes",
    ];
    items(&d[key])
        .iter()
        .filter_map(|i| i.as_i64().and_then(|i| s.images.get(&i)))
        .map(|i| {
            FIELDS
                .iter()
                .map(|f| ((*f).to_owned(), i[*f].clone()))
                .collect()
        })
        .collect()
}

/// A droplet as the API renders it, `new` until its create action completes.
#[allow(clippy::too_many_arguments)]
pub(super) fn droplet_json(
    id: i64,
    name: &str,
    region_slug: &str,
    size_slug: &str,
    image: Value,
    tags: &[String],
    created: &str,
    ipv6: bool,
) -> Value {
    let octet = id % 250;
    let features = if ipv6 { json!(["ipv6"]) } else { json!([]) };
    json!({"id": id, "name": name, "memory": 1024, "vcpus": 1, "disk": 25, "locked": false,
        "status": "new", "kernel": null, "created_at": created, "features": features,
        "backup_ids": [], "next_backup_window": null, "snapshot_ids": [], "image": image,
        "volume_ids": [], "size": size(size_slug), "size_slug": size_slug,
        "networks": {"v4": [{"ip_address": format!("203.0.113.{octet}"), "netmask": "255.255.255.0", "gateway": "203.0.113.1", "type": "public"}],
                     "v6": [{"ip_address": format!("2001:db8::{id:x}"), "netmask": 64, "gateway": "2001:db8::1", "type": "public"}]},
        "region": region(region_slug), "tags": tags, "vpc_uuid": "760e09ef-dc84-11e8-981e-3cfdfeaae000"})
}

fn create(s: &mut State, body: &Value) -> Answer {
    let name = body["name"].as_str().unwrap_or("");
    let region_slug = body["region"].as_str().unwrap_or("");
    let size_slug = body["size"].as_str().unwrap_or("");
    if name.is_empty() || !REGIONS.contains(&region_slug) || !SIZES.contains(&size_slug) {
        return unprocessable("name, region and size must be valid");
    }
    let user_data = body["user_data"].as_str();
    if user_data.is_some_and(|u| u.len() > USER_DATA_LIMIT) {
        return unprocessable("user_data is limited to 64 KiB");
    }
    let image = match &body["image"] {
        Value::Number(n) => n.as_i64().and_then(|n| s.images.get(&n)),
        Value::String(slug) => s.images.values().find(|i| i["slug"] == *slug),
        _ => None,
    };
    let Some(image) = image.cloned() else {
        return unprocessable("You specified an invalid image for Droplet creation.");
    };
    let known = |k: &Value| {
        s.keys
            .values()
            .any(|v| v["id"] == *k || v["fingerprint"] == *k)
    };
    if !items(&body["ssh_keys"]).iter().all(known) {
        return unprocessable("You specified an invalid SSH key ID.");
    }
    let tags = strings(body, "tags");
    if let Some(bad) = tags.iter().find(|t| !valid_tag(t)) {
        return unprocessable(&format!("invalid tag name {bad:?}"));
    }
    // Droplet create makes missing tags.
    s.tags.extend(tags.iter().cloned());
    let id = s.id();
    let t = s.tick();
    let d = droplet_json(
        id,
        name,
        region_slug,
        size_slug,
        image,
        &tags,
        &t,
        body["ipv6"] == true,
    );
    s.droplets.insert(id, d.clone());
    if let Some(u) = user_data {
        s.user_data.insert(id, u.to_owned());
    }
    let a = s.action("create", id);
    let href = format!("{}/v2/actions/{}", s.base, a["id"]);
    (
        StatusCode::ACCEPTED,
        json!({"droplet": d, "links": {"actions": [{"id": a["id"], "rel": "create", "href": href}]}}),
    )
}

fn action(s: &mut State, droplet: i64, body: &Value) -> Answer {
    let kind = body["type"].as_str().unwrap_or("");
    let a = match kind {
        // The image's name is remembered for the completion, never part of an answer.
        "snapshot" => s.action_making(kind, droplet, Some(body["name"].as_str().unwrap_or(""))),
        "enable_backups" | "change_backup_policy" => {
            if let Some(d) = s.droplets.get_mut(&droplet) {
                if !items(&d["features"]).iter().any(|f| f == "backups") {
                    push(&mut d["features"], json!("backups"));
                }
                d["backup_policy_fake"] = body["backup_policy"].clone();
            }
            s.action(kind, droplet)
        }
        _ => return unprocessable("unknown action type"),
    };
    (StatusCode::CREATED, json!({"action": a}))
}

/// Every `/v2/droplets` and `/v2/actions` endpoint.
pub(super) fn route(s: &mut State, r: &Req) -> Option<Answer> {
    let droplet = |s: &State, id: &str| num(id).and_then(|n| s.droplets.get(&n).cloned());
    Some(match (r.method, r.seg.as_slice()) {
        ("GET", ["v2", "droplets"]) => {
            let tag = r.q("tag_name");
            let items = s
                .droplets
                .values()
                .filter(|d| tag.is_none_or(|t| has_tag(d, t)))
                .cloned()
                .collect();
            page(s, r, "droplets", items)
        }
        ("DELETE", ["v2", "droplets"]) => {
            // The trap: every droplet carrying the tag goes, whoever made it.
            let Some(tag) = r.q("tag_name") else {
                return Some(unprocessable("tag_name is required"));
            };
            s.droplets.retain(|_, d| !has_tag(d, tag));
            no_content()
        }
        ("POST", ["v2", "droplets"]) => create(s, &r.body),
        ("GET", ["v2", "droplets", id]) => {
            droplet(s, id).map_or_else(not_found, |d| (StatusCode::OK, json!({"droplet": d})))
        }
        ("DELETE", ["v2", "droplets", id]) => match num(id).and_then(|n| s.droplets.remove(&n)) {
            Some(d) => {
                // Backups go with their droplet, snapshots stay: "Destroying a Droplet destroys
                // the backups along with it" (docs.digitalocean.com/products/images/backups/support/).
                let backups = items(&d["backup_ids"]).to_vec();
                s.images.retain(|id, _| !backups.contains(&json!(id)));
                s.user_data.remove(&d["id"].as_i64().unwrap_or_default());
                no_content()
            }
            None => not_found(),
        },
        ("GET", ["v2", "droplets", id, kind @ ("backups" | "snapshots")]) => {
            let Some(d) = droplet(s, id) else {
                return Some(not_found());
            };
            let key = if *kind == "backups" {
                "backup_ids"
            } else {
                "snapshot_ids"
            };
            let items = images_of(s, &d, key);
            page(s, r, kind, items)
        }
        ("POST", ["v2", "droplets", id, "actions"]) => match num(id) {
            Some(n) if s.droplets.contains_key(&n) => action(s, n, &r.body),
            _ => not_found(),
        },
        ("GET", ["v2", "actions"]) => {
            // Every action of the account, newest first; each one served is an observation.
            let ids: Vec<i64> = s.actions.keys().rev().copied().collect();
            if let Ok(p) = Paging::parse(r.q("page"), r.q("per_page"), 20, 200) {
                for n in p.slice(ids.clone()).items {
                    if s.actions.get_mut(&n).is_some_and(|(_, t)| t.observe()) {
                        s.complete(n);
                    }
                }
            }
            let items = ids
                .iter()
                .filter_map(|n| s.actions.get(n).map(|(a, _)| a.clone()))
                .collect();
            page(s, r, "actions", items)
        }
        ("GET", ["v2", "actions", id]) => {
            let Some(n) = num(id).filter(|n| s.actions.contains_key(n)) else {
                return Some(not_found());
            };
            if s.actions.get_mut(&n).is_some_and(|(_, t)| t.observe()) {
                s.complete(n);
            }
            let a = s.actions.get(&n).map(|(a, _)| a.clone());
            (StatusCode::OK, json!({"action": a}))
        }
        _ => return None,
    })
}
