//! Images (`/v2/images`): the system images, snapshots (made by the droplet action, untagged)
//! and backups (type `backup`). `?private=true` lists only the account's own, `?tag_name=` those
//! carrying a tag; an image is read by id or slug.

use serde_json::{Value, json};

use super::api::{Answer, Req, no_content, not_found, num, page};
use super::catalog::REGIONS;
use super::state::{State, has_tag};

/// An image as the API renders it; `slug` only on public (system) images.
pub(super) fn image_json(
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

/// `GET /v2/images`, `GET` and `DELETE /v2/images/{id}`.
pub(super) fn route(s: &mut State, r: &Req) -> Option<Answer> {
    Some(match (r.method, r.seg.as_slice()) {
        ("GET", ["v2", "images"]) => {
            let private = r.q("private") == Some("true");
            let tag = r.q("tag_name");
            let items = s
                .images
                .values()
                .filter(|i| !private || i["public"] == false)
                .filter(|i| tag.is_none_or(|t| has_tag(i, t)))
                .cloned()
                .collect();
            page(s, r, "images", items)
        }
        ("GET", ["v2", "images", id]) => {
            let found = match num(id) {
                Some(n) => s.images.get(&n),
                None => s.images.values().find(|i| i["slug"] == *id),
            };
            found.map_or_else(not_found, |i| {
                (axum::http::StatusCode::OK, json!({"image": i}))
            })
        }
        ("DELETE", ["v2", "images", id]) => match num(id).and_then(|n| s.images.remove(&n)) {
            Some(_) => no_content(),
            None => not_found(),
        },
        _ => return None,
    })
}
