//! SSH keys (`/v2/account/keys`): 201 on upload, 422 "already in use" for a public key the
//! account already has, read and deleted by id or MD5 fingerprint. Listing them is limited to
//! 10 requests a minute (429 with `retry-after`), on top of the account's own limit.

use std::time::{Duration, Instant};

use axum::http::StatusCode;
use serde_json::{Value, json};

use super::api::{Answer, Req, err, no_content, not_found, page, unprocessable};
use super::state::State;
use crate::hetzner::md5_fingerprint;

/// How many key listings a minute the API answers.
pub const KEY_LISTS_PER_MINUTE: usize = 10;

/// The key whose id or fingerprint is `k`.
fn find<'a>(s: &'a State, k: &str) -> Option<&'a Value> {
    s.keys
        .values()
        .find(|v| v["id"].as_i64().is_some_and(|i| k.parse() == Ok(i)) || v["fingerprint"] == k)
}

/// Every `/v2/account/keys` endpoint.
pub(super) fn route(s: &mut State, r: &Req) -> Option<Answer> {
    Some(match (r.method, r.seg.as_slice()) {
        ("GET", ["v2", "account", "keys"]) => {
            let now = Instant::now();
            s.key_lists
                .retain(|t| now.duration_since(*t) < Duration::from_secs(60));
            if s.key_lists.len() >= KEY_LISTS_PER_MINUTE {
                return Some(err(
                    StatusCode::TOO_MANY_REQUESTS,
                    "too_many_requests",
                    "API Rate limit exceeded.",
                ));
            }
            s.key_lists.push(now);
            let items = s.keys.values().cloned().collect();
            page(s, r, "ssh_keys", items)
        }
        ("GET", ["v2", "account", "keys", k]) => {
            find(s, k).map_or_else(not_found, |k| (StatusCode::OK, json!({"ssh_key": k})))
        }
        ("POST", ["v2", "account", "keys"]) => {
            let (Some(name), Some(pk)) = (r.body["name"].as_str(), r.body["public_key"].as_str())
            else {
                return Some(unprocessable("name and public_key are required"));
            };
            let Ok(fp) = md5_fingerprint(pk) else {
                return Some(unprocessable(
                    "Key invalid type, we support 'ssh-rsa', 'ssh-ed25519'",
                ));
            };
            if s.keys.values().any(|k| k["fingerprint"] == fp.as_str()) {
                return Some(unprocessable("SSH Key is already in use on your account"));
            }
            let id = s.id();
            let k = json!({"id": id, "fingerprint": fp, "public_key": pk, "name": name});
            s.keys.insert(id, k.clone());
            (StatusCode::CREATED, json!({"ssh_key": k}))
        }
        ("DELETE", ["v2", "account", "keys", k]) => {
            match find(s, k).and_then(|v| v["id"].as_i64()) {
                Some(id) => {
                    s.keys.remove(&id);
                    no_content()
                }
                None => not_found(),
            }
        }
        _ => return None,
    })
}
