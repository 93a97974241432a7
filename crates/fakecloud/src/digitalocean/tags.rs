//! Tags (`/v2/tags`): DigitalOcean's only labels. Create is idempotent, a tag is read with its
//! resource counts, put on and taken off droplets and images, and deleting one untags
//! everything, firewall targets included. These endpoints answer errors as `{error, messages}`,
//! not in the shape of the rest of the API.

use axum::http::StatusCode;
use serde_json::{Value, json};

use super::api::{Answer, Req, no_content, page, tag_err};
use super::state::{State, items, valid_tag};

/// A tag with its counts, as `GET /v2/tags/{tag}` renders it.
fn tag_json(s: &State, t: &str) -> Value {
    let count = s.tag_count(t);
    json!({"name": t, "resources": {"count": count, "last_tagged_uri": "",
        "droplets": {"count": count}, "images": {"count": 0}, "volumes": {"count": 0},
        "volume_snapshots": {"count": 0}, "databases": {"count": 0}}})
}

/// Every `/v2/tags` endpoint.
pub(super) fn route(s: &mut State, r: &Req) -> Option<Answer> {
    Some(match (r.method, r.seg.as_slice()) {
        ("POST", ["v2", "tags"]) => {
            let Some(name) = r.body["name"].as_str() else {
                return Some(tag_err(StatusCode::BAD_REQUEST, "name is required"));
            };
            if !valid_tag(name) {
                return Some(tag_err(StatusCode::BAD_REQUEST, "tag name is invalid"));
            }
            s.tags.insert(name.to_owned());
            (StatusCode::CREATED, json!({"tag": tag_json(s, name)}))
        }
        ("GET", ["v2", "tags"]) => {
            let items = s.tags.iter().map(|n| tag_json(s, n)).collect();
            page(s, r, "tags", items)
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
                return Some(tag_err(StatusCode::NOT_FOUND, "tag not found"));
            }
            for v in s
                .droplets
                .values_mut()
                .chain(s.images.values_mut())
                .chain(s.firewalls.values_mut())
            {
                if let Some(a) = v["tags"].as_array_mut() {
                    a.retain(|x| x != *t);
                }
            }
            no_content()
        }
        ("POST" | "DELETE", ["v2", "tags", t, "resources"]) => {
            if !s.tags.contains(*t) {
                return Some(tag_err(StatusCode::NOT_FOUND, "tag not found"));
            }
            let add = r.method == "POST";
            for res in items(&r.body["resources"]) {
                let id: i64 = res["resource_id"]
                    .as_str()
                    .and_then(|i| i.parse().ok())
                    .unwrap_or(-1);
                let target = match res["resource_type"].as_str() {
                    Some("droplet") => s.droplets.get_mut(&id),
                    Some("image") => s.images.get_mut(&id),
                    _ => None,
                };
                let Some(v) = target else {
                    return Some(tag_err(StatusCode::NOT_FOUND, "resource not found"));
                };
                if !v["tags"].is_array() {
                    v["tags"] = json!([]);
                }
                if let Some(a) = v["tags"].as_array_mut() {
                    if add && !a.iter().any(|x| x == *t) {
                        a.push(json!(t));
                    } else if !add {
                        a.retain(|x| x != *t);
                    }
                }
            }
            no_content()
        }
        _ => return None,
    })
}
