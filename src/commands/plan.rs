//! A plan that looks at the cloud: with credentials present, `create --dry-run` reads (never
//! writes) what exists and says per resource whether `create` would make it, change it or leave
//! it; `destroy --dry-run` lists what would go and what is kept. Without credentials the plan
//! stays offline.

use bootstrap_core::flow::CreatePlan;
use bootstrap_core::model::only_ours;
use bootstrap_core::retry::retry;
use bootstrap_core::{DeploymentName, Labels, Provider, PublicKeyInfo};
use serde_json::{Value, json};

use crate::providers;
use crate::settings::{BadInput, Connection, CreateSettings};
use crate::state::DeploymentDir;

/// A deployment's servers, firewalls and snapshots as the cloud has them, each proven ours the
/// way the provider's description says; snapshots oldest first. Read by `status` and the plans.
pub struct Found {
    /// Servers carrying the deployment's labels.
    pub servers: Vec<bootstrap_core::Server>,
    /// Its firewalls.
    pub firewalls: Vec<bootstrap_core::Firewall>,
    /// Its snapshots, oldest first.
    pub snapshots: Vec<bootstrap_core::Snapshot>,
}

/// Reads [`Found`] for deployment `name`.
pub async fn found(
    p: &dyn Provider,
    name: &DeploymentName,
    r: &bootstrap_core::RetryConfig,
) -> anyhow::Result<Found> {
    let own = p.description().ownership;
    let sel = Labels::deployment(name);
    let mut snapshots = only_ours(
        retry(r, "list snapshots", || p.list_snapshots(&sel)).await?,
        &sel,
        own.snapshot,
    );
    snapshots.sort_by(|a, b| (a.created, &a.id).cmp(&(b.created, &b.id)));
    Ok(Found {
        servers: only_ours(
            retry(r, "list servers", || p.list_servers(&sel)).await?,
            &sel,
            own.server,
        ),
        firewalls: only_ours(
            retry(r, "list firewalls", || p.list_firewalls(&sel)).await?,
            &sel,
            own.firewall,
        ),
        snapshots,
    })
}

/// The provider, when credentials are there; `None` (offline plan) when they are not.
pub async fn connect_if_possible(conn: &Connection) -> anyhow::Result<Option<Box<dyn Provider>>> {
    match providers::build(conn).await {
        Ok(p) => Ok(Some(p)),
        Err(e) if e.downcast_ref::<BadInput>().is_some() => Ok(None),
        Err(e) => Err(e),
    }
}

/// Per resource: `create`, `update` (what changes) or `unchanged`, and a summary line.
pub async fn compare_create(
    p: &dyn Provider,
    s: &CreateSettings,
    plan: &CreatePlan,
    key: Option<&PublicKeyInfo>,
) -> anyhow::Result<Value> {
    let d = p.description();
    let r = &s.conn.flow.retry;
    let Found {
        servers, firewalls, ..
    } = found(p, &s.name, r).await?;
    let mut items = Vec::new();
    if d.key_resource {
        let found = match key {
            Some(k) => retry(r, "find ssh key", || p.find_ssh_key(k)).await?,
            None => None,
        };
        items.push(match found {
            Some(k) => json!({"resource": "ssh key", "action": "unchanged", "detail": format!("uploaded as {} ({})", k.name, k.id)}),
            None => json!({"resource": "ssh key", "action": "create", "detail": plan.ssh_key.name}),
        });
    }
    let want = &plan.firewall.inbound;
    items.push(match firewalls.first() {
        None => json!({"resource": "firewall", "action": "create", "detail": plan.firewall.name}),
        Some(f) => {
            let mut changes = Vec::new();
            for rule in want {
                let have = f.inbound.iter().find(|h| h.same_port(rule));
                let mut w: Vec<String> = rule.sources.iter().map(ToString::to_string).collect();
                w.sort();
                match have {
                    None => changes.push(format!("add {}/{} from {}", json!(rule.protocol).as_str().unwrap_or_default(), rule.port, w.join(", "))),
                    Some(h) => {
                        let mut got: Vec<String> = h.sources.iter().map(ToString::to_string).collect();
                        got.sort();
                        if got != w {
                            changes.push(format!(
                                "{}/{} from {} instead of {}",
                                json!(rule.protocol).as_str().unwrap_or_default(),
                                rule.port,
                                w.join(", "),
                                got.join(", ")
                            ));
                        }
                    }
                }
            }
            if changes.is_empty() {
                json!({"resource": "firewall", "action": "unchanged", "detail": format!("{} ({})", f.name, f.id)})
            } else {
                json!({"resource": "firewall", "action": "update", "detail": changes.join("; ")})
            }
        }
    });
    items.push(match servers.first() {
        None => json!({"resource": "server", "action": "create", "detail": format!(
            "{} type {} image {} location {}",
            plan.server.name, plan.server.server_type, plan.server.image, plan.server.location
        )}),
        Some(sv) => {
            // The server keeps what it was made with; say so where this run asks otherwise.
            let dir = DeploymentDir::new(s.conn.kind.name(), &s.name)?;
            let record = dir.load_record()?;
            let mut kept = Vec::new();
            if let Some(rec) = &record {
                if rec.admin_user != s.admin_user {
                    kept.push(format!("admin user {}", rec.admin_user));
                }
                if rec.image != s.image && s.from_snapshot.is_none() {
                    kept.push(format!("image {}", rec.image));
                }
                if let Some(i) = &rec.intent
                    && i.server_type != s.server_type
                {
                    kept.push(format!("server type {}", i.server_type));
                }
            }
            let detail = if kept.is_empty() {
                format!("{} ({}) {}", sv.name, sv.id, sv.status)
            } else {
                format!(
                    "{} ({}) keeps {}: `bootstrap destroy {}` and create again to change that",
                    sv.name,
                    sv.id,
                    kept.join(", "),
                    s.name
                )
            };
            json!({"resource": "server", "action": "unchanged", "detail": detail})
        }
    });
    let count = |a: &str| items.iter().filter(|i| i["action"] == a).count();
    let summary = format!(
        "{} to create, {} to update, {} unchanged",
        count("create"),
        count("update"),
        count("unchanged")
    );
    Ok(json!({"resources": items, "summary": summary}))
}

/// What `destroy` would delete and keep, read-only.
pub async fn destroy_plan(
    p: &dyn Provider,
    conn: &Connection,
    name: &DeploymentName,
    delete_snapshots: bool,
) -> anyhow::Result<Value> {
    let d = p.description();
    let sel = Labels::deployment(name);
    let r = &conn.flow.retry;
    let f = found(p, name, r).await?;
    let mut delete = Vec::new();
    for s in &f.servers {
        delete.push(format!("server {} ({})", s.name, s.id));
    }
    for fw in &f.firewalls {
        delete.push(format!("firewall {} ({})", fw.name, fw.id));
    }
    if d.key_resource {
        for k in only_ours(
            retry(r, "list ssh keys", || p.list_ssh_keys(&sel)).await?,
            &sel,
            d.ownership.ssh_key,
        ) {
            delete.push(format!("ssh key {} ({})", k.name, k.id));
        }
    }
    for n in bootstrap_core::model::only_matching(
        retry(r, "list snapshot schedules", || {
            p.list_native_schedules(&sel)
        })
        .await?,
        &sel,
    ) {
        delete.push(format!("snapshot schedule {}", n.id));
    }
    let mut keep = Vec::new();
    for sn in &f.snapshots {
        let line = format!("snapshot {} ({})", sn.name, sn.id);
        if delete_snapshots {
            delete.push(line);
        } else {
            keep.push(line);
        }
    }
    let dir = DeploymentDir::new(conn.kind.name(), name)?;
    let local = dir
        .record_path()
        .parent()
        .filter(|d| d.exists())
        .map(|d| d.display().to_string());
    Ok(json!({
        "dry_run": true,
        "deployment": name,
        "provider": d.name,
        "delete": delete,
        "keep": keep,
        "local_state": local,
    }))
}
