//! `bootstrap status NAME`: one look at a deployment, read-only. The cloud says what exists
//! (server, firewall rules, snapshots, schedule); the local state says what `create` asked for
//! and which host key is pinned. Differences between the two are reported as drift.

use bootstrap_core::schedule::Schedule;
use bootstrap_core::{DeploymentName, SnapshotStatus};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::cli::StatusArgs;
use crate::output::Output;
use crate::providers;
use crate::settings::{Connection, bad};
use crate::state::DeploymentDir;

/// Shows a deployment.
pub async fn run(a: &StatusArgs) -> anyhow::Result<()> {
    let name = DeploymentName::parse(&a.name).map_err(|e| bad(e.to_string()))?;
    let conn = Connection::from_args(&a.connect, Some(&name))?;
    let dir = DeploymentDir::new(conn.kind.name(), &name)?;
    let record = dir.load_record()?;
    let p = providers::build(&conn).await?;
    let d = conn.kind.desc();
    let super::plan::Found {
        servers,
        firewalls,
        snapshots,
    } = super::plan::found(p.as_ref(), &name, &conn.flow.retry).await?;
    if servers.is_empty() && firewalls.is_empty() && snapshots.is_empty() && record.is_none() {
        return Err(bad(format!(
            "no deployment {name} at {}: `bootstrap list --provider {}` shows what exists",
            d.name, d.name
        )));
    }

    let intent = record.as_ref().and_then(|r| r.intent.clone());
    let mut drift = Vec::new();
    let server = servers.first();
    if servers.len() > 1 {
        drift.push(format!(
            "{} servers carry the deployment's labels",
            servers.len()
        ));
    }
    if server.is_none() {
        drift.push("no server".to_owned());
    }
    // The managed rule: the one on the port create opens (22, or WireGuard's).
    let rules: Vec<Value> = firewalls
        .iter()
        .flat_map(|f| f.inbound.iter())
        .map(|rule| {
            json!({
                "protocol": rule.protocol,
                "port": rule.port,
                "sources": rule.sources.iter().map(ToString::to_string).collect::<Vec<_>>(),
            })
        })
        .collect();
    match (firewalls.first(), &intent) {
        (None, _) => drift.push("no cloud firewall: the server is not filtered at the provider; `bootstrap create` with the same flags makes it again".to_owned()),
        (Some(f), Some(i)) => {
            let managed = f
                .inbound
                .iter()
                .find(|rule| rule.port == i.port && json!(rule.protocol) == i.protocol.as_str());
            match managed {
                None => drift.push(format!("the {}/{} rule is missing", i.protocol, i.port)),
                Some(rule) => {
                    let mut have: Vec<String> =
                        rule.sources.iter().map(ToString::to_string).collect();
                    let mut want = i.sources.clone();
                    have.sort();
                    want.sort();
                    if have != want {
                        drift.push(format!(
                            "{}/{} is open from {} instead of {}",
                            i.protocol,
                            i.port,
                            have.join(", "),
                            want.join(", ")
                        ));
                    }
                }
            }
        }
        (Some(_), None) => {}
    }

    let now = OffsetDateTime::now_utc();
    let schedule = server.and_then(|s| Schedule::from_labels(&s.labels).ok().flatten());
    let last = snapshots
        .iter()
        .rev()
        .find(|s| s.status == SnapshotStatus::Available)
        .map(|s| s.created);
    let fmt = |t: OffsetDateTime| t.format(&Rfc3339).unwrap_or_default();
    let engine = server.and_then(|s| s.labels.get(bootstrap_core::schedule::LABEL_ENGINE));

    let pins: Vec<Value> = match bootstrap_keys::KnownHosts::load(&dir.known_hosts()) {
        Ok(Some(kh)) => kh
            .entries_for(dir.alias())
            .iter()
            .map(|e| {
                json!({
                    "fingerprint": e.key.fingerprint_sha256(),
                    "origin": if e.comment == crate::state::PINNED_ROTATED { "rotated on the server by verify" } else { "from the user-data" },
                })
            })
            .collect(),
        _ => Vec::new(),
    };
    let rotated = pins
        .iter()
        .any(|p| p["origin"] == "rotated on the server by verify");
    let pinned_at = std::fs::metadata(dir.known_hosts())
        .and_then(|m| m.modified())
        .ok()
        .map(|t| fmt(OffsetDateTime::from(t)));

    let doc = json!({
        "deployment": name,
        "provider": d.name,
        "context": p.context(),
        "server": server.map(|s| json!({
            "id": s.id,
            "name": s.name,
            "status": s.status.to_string(),
            "ipv4": s.ipv4,
            "ipv6": s.ipv6,
            "server_type": intent.as_ref().map(|i| i.server_type.clone()),
            "image": record.as_ref().map(|r| r.image.clone()),
            "location": intent.as_ref().map(|i| i.location.clone()),
        })),
        "firewall": firewalls.first().map(|f| json!({"id": f.id, "name": f.name, "inbound": rules})),
        "drift": drift,
        "snapshots": {
            "schedule": schedule.map(|s| s.to_string()),
            "engine": engine,
            "count": snapshots.len(),
            "last": last.map(fmt),
            "next_slot": schedule.map(|s| fmt(s.next_slot(now))),
        },
        "host_key": {
            "pinned": pins,
            "rotated": rotated,
            "known_hosts_changed": pinned_at,
        },
        "admin_user": record.as_ref().map(|r| r.admin_user.clone()),
        "state_dir": record.as_ref().map(|_| dir.known_hosts().parent().map(|p| p.display().to_string())),
    });
    let out = Output::new(conn.output);
    if out.is_json() {
        return out.json(&doc);
    }
    out.text(&text(&doc))
}

/// The document as aligned lines.
fn text(doc: &Value) -> String {
    let s = |v: &Value| match v {
        Value::Null => "-".to_owned(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let mut t = format!(
        "deployment {} at {}{}\n",
        s(&doc["deployment"]),
        s(&doc["provider"]),
        doc["context"]
            .as_str()
            .map(|c| format!(" ({c})"))
            .unwrap_or_default()
    );
    let sv = &doc["server"];
    if sv.is_null() {
        t.push_str("  server     none\n");
    } else {
        t.push_str(&format!(
            "  server     {} {}  {}  ipv4 {}  ipv6 {}\n             type {}  image {}  location {} (as created)\n",
            s(&sv["name"]),
            s(&sv["id"]),
            s(&sv["status"]),
            s(&sv["ipv4"]),
            s(&sv["ipv6"]),
            s(&sv["server_type"]),
            s(&sv["image"]),
            s(&sv["location"]),
        ));
    }
    let fw = &doc["firewall"];
    if fw.is_null() {
        t.push_str("  firewall   none\n");
    } else {
        t.push_str(&format!(
            "  firewall   {} {}\n",
            s(&fw["name"]),
            s(&fw["id"])
        ));
        for r in fw["inbound"].as_array().into_iter().flatten() {
            let sources: Vec<String> = r["sources"]
                .as_array()
                .into_iter()
                .flatten()
                .map(s)
                .collect();
            t.push_str(&format!(
                "             allow in {}/{} from {}\n",
                s(&r["protocol"]),
                s(&r["port"]),
                sources.join(", ")
            ));
        }
    }
    let drift = doc["drift"].as_array().cloned().unwrap_or_default();
    if drift.is_empty() {
        t.push_str("  drift      none: the cloud matches what create set\n");
    } else {
        for d in &drift {
            t.push_str(&format!("  drift      {}\n", s(d)));
        }
    }
    let sn = &doc["snapshots"];
    t.push_str(&format!(
        "  snapshots  {} kept; schedule {} (engine {}); last {}; next slot {}\n",
        s(&sn["count"]),
        s(&sn["schedule"]),
        s(&sn["engine"]),
        s(&sn["last"]),
        s(&sn["next_slot"]),
    ));
    let hk = &doc["host_key"];
    for p in hk["pinned"].as_array().into_iter().flatten() {
        t.push_str(&format!(
            "  host key   {} ({})\n",
            s(&p["fingerprint"]),
            s(&p["origin"])
        ));
    }
    if hk["pinned"].as_array().is_none_or(Vec::is_empty) {
        t.push_str("  host key   none pinned on this machine\n");
    } else {
        t.push_str(&format!(
            "             known_hosts last changed {}\n",
            s(&hk["known_hosts_changed"])
        ));
    }
    t.push_str(&format!("  state      {}\n", s(&doc["state_dir"])));
    t
}
