//! The fixed catalog droplets are made from: regions, sizes and the system images the tool's
//! defaults and tests name (`GET /v2/regions`, `GET /v2/sizes`).

use serde_json::{Value, json};

use super::api::{Answer, Req, page};
use super::state::State;

/// `(id, slug, distribution)` of the public images.
pub(super) const SYSTEM_IMAGES: &[(i64, &str, &str)] = &[
    (1, "ubuntu-24-04-x64", "Ubuntu"),
    (2, "debian-12-x64", "Debian"),
    (3, "debian-13-x64", "Debian"),
];
/// Region slugs.
pub(super) const REGIONS: &[&str] = &["fra1", "ams3", "nyc3"];
/// Size slugs.
pub(super) const SIZES: &[&str] = &["s-1vcpu-1gb", "s-1vcpu-2gb", "s-2vcpu-4gb"];

/// A region as the API renders it.
pub(super) fn region(slug: &str) -> Value {
    json!({"slug": slug, "name": slug, "sizes": SIZES, "available": true,
           "features": ["backups", "ipv6", "metadata"]})
}

/// A size as the API renders it.
pub(super) fn size(slug: &str) -> Value {
    json!({"slug": slug, "memory": 1024, "vcpus": 1, "disk": 25, "transfer": 1.0,
           "price_monthly": 6.0, "price_hourly": 0.00893, "regions": REGIONS, "available": true,
           "description": "Basic"})
}

/// `GET /v2/regions`, `GET /v2/sizes`.
pub(super) fn route(s: &mut State, r: &Req) -> Option<Answer> {
    Some(match (r.method, r.seg.as_slice()) {
        ("GET", ["v2", "regions"]) => {
            let items = REGIONS.iter().map(|x| region(x)).collect();
            page(s, r, "regions", items)
        }
        ("GET", ["v2", "sizes"]) => {
            let items = SIZES.iter().map(|x| size(x)).collect();
            page(s, r, "sizes", items)
        }
        _ => return None,
    })
}
