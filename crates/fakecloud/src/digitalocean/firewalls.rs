//! Firewalls (`/v2/firewalls`): 202 on create; a `tags` target that is no existing tag is
//! refused (422); `PUT` replaces everything, targets included, so a body without `tags` leaves
//! the droplets unprotected; rules change through `POST`/`DELETE .../rules` (204); all ports and
//! icmp read back as `"0"`. A firewall without outbound rules lets nothing out
//! ([`egress`]), which is why the adapter must send them.

use axum::http::StatusCode;
use serde_json::{Value, json};

use super::api::{Answer, Req, no_content, not_found, page, unprocessable};
use super::state::{State, items, strings};

/// A rule as the API stores it: all ports and icmp as `"0"`, the target list present.
fn normalize_rule(r: &Value, side: &str) -> Value {
    let protocol = r["protocol"].as_str().unwrap_or("");
    let ports = match (protocol, r["ports"].as_str()) {
        ("icmp", _) | (_, None | Some("all" | "")) => "0".to_owned(),
        (_, Some(p)) => p.to_owned(),
    };
    let addresses = r[side]["addresses"].as_array().cloned().unwrap_or_default();
    json!({"protocol": protocol, "ports": ports, side: {"addresses": addresses}})
}

/// The rules under `key` of a request body, normalized.
fn rules(body: &Value, key: &str, side: &str) -> Vec<Value> {
    items(&body[key])
        .iter()
        .map(|r| normalize_rule(r, side))
        .collect()
}

/// The firewall `id` a create or `PUT` body describes, or the API's refusal.
fn firewall_from(s: &mut State, id: &str, body: &Value) -> Result<Value, Answer> {
    let name = body["name"].as_str().unwrap_or("");
    let valid = name.len() >= 2
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-'));
    if !valid {
        return Err(super::api::err(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "name: must match ^[a-zA-Z0-9][a-zA-Z0-9\\.-]+$",
        ));
    }
    let tags = strings(body, "tags");
    if let Some(missing) = tags.iter().find(|t| !s.tags.contains(*t)) {
        return Err(unprocessable(&format!("tag '{missing}' does not exist")));
    }
    let t = s.tick();
    Ok(
        json!({"id": id, "status": "succeeded", "created_at": t, "pending_changes": [],
        "name": name, "inbound_rules": rules(body, "inbound_rules", "sources"),
        "outbound_rules": rules(body, "outbound_rules", "destinations"),
        "droplet_ids": items(&body["droplet_ids"]), "tags": tags}),
    )
}

/// Whether droplet `droplet` (with `tags`) can open connections out: every firewall applying
/// to it (by tag or id) allows tcp on all ports to `0.0.0.0/0`, or none applies at all.
pub(super) fn egress(s: &State, droplet: i64, tags: &[String]) -> bool {
    s.firewalls
        .values()
        .filter(|f| {
            strings(f, "tags").iter().any(|t| tags.contains(t))
                || items(&f["droplet_ids"]).contains(&json!(droplet))
        })
        .all(|f| {
            items(&f["outbound_rules"]).iter().any(|r| {
                r["protocol"] == "tcp"
                    && r["ports"] == "0"
                    && items(&r["destinations"]["addresses"]).contains(&json!("0.0.0.0/0"))
            })
        })
}

/// Every `/v2/firewalls` endpoint.
pub(super) fn route(s: &mut State, r: &Req) -> Option<Answer> {
    Some(match (r.method, r.seg.as_slice()) {
        ("GET", ["v2", "firewalls"]) => {
            let items = s.firewalls.values().cloned().collect();
            page(s, r, "firewalls", items)
        }
        ("POST", ["v2", "firewalls"]) => {
            let id = format!("fb6045f1-cf1d-4ca3-bfac-{:012}", s.id());
            match firewall_from(s, &id, &r.body) {
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
            .map_or_else(not_found, |f| (StatusCode::OK, json!({"firewall": f}))),
        ("PUT", ["v2", "firewalls", id]) => {
            if !s.firewalls.contains_key(*id) {
                return Some(not_found());
            }
            // PUT replaces everything: what the body leaves out (the targets) is gone.
            match firewall_from(s, id, &r.body) {
                Ok(f) => {
                    s.firewalls.insert((*id).to_owned(), f.clone());
                    (StatusCode::OK, json!({"firewall": f}))
                }
                Err(e) => e,
            }
        }
        ("DELETE", ["v2", "firewalls", id]) => match s.firewalls.remove(*id) {
            Some(_) => no_content(),
            None => not_found(),
        },
        ("POST" | "DELETE", ["v2", "firewalls", id, "rules"]) => {
            let add = r.method == "POST";
            let Some(f) = s.firewalls.get_mut(*id) else {
                return Some(not_found());
            };
            for (key, side) in [
                ("inbound_rules", "sources"),
                ("outbound_rules", "destinations"),
            ] {
                if !f[key].is_array() {
                    f[key] = json!([]);
                }
                let Some(list) = f[key].as_array_mut() else {
                    continue;
                };
                for rule in rules(&r.body, key, side) {
                    if add {
                        list.push(rule);
                    } else {
                        list.retain(|x| *x != rule);
                    }
                }
            }
            no_content()
        }
        _ => return None,
    })
}
