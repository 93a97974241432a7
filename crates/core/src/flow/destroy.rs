//! `destroy` and rollback, one teardown: the provider's snapshot schedule first (so that it
//! takes no image of a server being deleted), then servers (waiting until they are gone), then
//! firewalls, then keys — a key only when no other managed server still uses it.

use crate::deadline::Deadline;
use serde::Serialize;
use tokio::time::Instant;

use super::{Existing, FlowConfig, ResourceRef, final_error, wait_operations};
use crate::error::{Error, ErrorKind, Result};
use crate::model::{DeploymentName, LABEL_SSH_KEY, Labels, only_matching, only_ours};
use crate::poll::wait_until;
use crate::progress::Progress;
use crate::provider::Provider;
use crate::retry::retry;
use crate::schedule::LABEL_ENGINE;

/// One removed resource.
pub type Removed = ResourceRef;

/// What a teardown removed and what it deliberately kept.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Teardown {
    /// Removed resources, in order.
    pub removed: Vec<Removed>,
    /// Kept resources with the reason (e.g. a key another server uses).
    pub kept: Vec<(ResourceRef, String)>,
}

/// What a teardown does with the deployment's snapshots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Snapshots {
    /// Do not look (rollback of a create: it made none).
    Ignore,
    /// Keep them and report them as kept (the default of `destroy`).
    Keep,
    /// Delete them too (`destroy --delete-snapshots`).
    Delete,
}

/// Removes everything labelled with `deployment`; running it twice is fine. Snapshots are kept
/// unless `snapshots` says otherwise.
pub async fn destroy(
    p: &dyn Provider,
    deployment: &DeploymentName,
    cfg: &FlowConfig,
    progress: &dyn Progress,
    snapshots: Snapshots,
) -> Result<Teardown> {
    Deadline::after(cfg.timeout)
        .scope(destroy_all(p, deployment, cfg, progress, snapshots))
        .await
}

async fn destroy_all(
    p: &dyn Provider,
    deployment: &DeploymentName,
    cfg: &FlowConfig,
    progress: &dyn Progress,
    snapshots: Snapshots,
) -> Result<Teardown> {
    let selector = Labels::deployment(deployment);
    let r = &cfg.retry;
    // The snapshots are listed beside the teardown: they do not depend on it.
    let listing = async {
        if snapshots == Snapshots::Ignore {
            Ok(Vec::new())
        } else {
            retry(r, "list snapshots", || p.list_snapshots(&selector)).await
        }
    };
    let none = Existing::new();
    let (t, listed) = tokio::join!(
        teardown(p, deployment, &none, cfg, progress, false),
        listing
    );
    let mut t = t?;
    if snapshots == Snapshots::Ignore {
        return Ok(t);
    }
    let snaps = match listed {
        Ok(s) => only_ours(s, &selector, p.description().ownership.snapshot),
        // A provider without snapshot support has none to keep or delete.
        Err(e) if e.kind() == &ErrorKind::Unsupported => Vec::new(),
        Err(e) => return Err(e),
    };
    for s in snaps {
        let rref = ResourceRef {
            kind: "snapshot",
            id: s.id.clone(),
            name: s.name.clone(),
        };
        if snapshots == Snapshots::Delete {
            progress.step(&format!("deleting snapshot {} ({})", s.name, s.id));
            retry(r, "delete snapshot", || p.delete_snapshot(&s.id)).await?;
            t.removed.push(rref);
        } else {
            t.kept.push((
                rref,
                "snapshot kept; `--delete-snapshots` removes it".to_owned(),
            ));
        }
    }
    Ok(t)
}

/// Removes everything labelled with `deployment` except `keep` (what existed before a failed
/// create). Shared by `destroy` and by the rollback of `create`.
///
/// The provider's native snapshot schedule is looked for only where one may exist: when a
/// server of the deployment names a native engine (`bootstrap-snapshot-engine=dlm`), or when
/// `native_schedule` says so (the rollback of a create that made one before its server). A
/// deployment kept by the job thus never needs the native service's permissions.
pub async fn teardown(
    p: &dyn Provider,
    deployment: &DeploymentName,
    keep: &Existing,
    cfg: &FlowConfig,
    progress: &dyn Progress,
    native_schedule: bool,
) -> Result<Teardown> {
    let mut out = Teardown::default();
    let done = Deadline::after(cfg.timeout)
        .scope(teardown_all(
            p,
            deployment,
            keep,
            cfg,
            progress,
            native_schedule,
            &mut out,
        ))
        .await;
    match done {
        Ok(()) => Ok(out),
        Err(e) => Err(partly_done(p, deployment, keep, cfg, &out, e).await),
    }
}

/// The error of a teardown that stopped halfway, saying what it removed and what is still
/// there (looked up again, best effort), so that nobody has to guess.
async fn partly_done(
    p: &dyn Provider,
    deployment: &DeploymentName,
    keep: &Existing,
    cfg: &FlowConfig,
    out: &Teardown,
    e: Error,
) -> Error {
    let names = |v: &[ResourceRef]| {
        if v.is_empty() {
            "nothing".to_owned()
        } else {
            v.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        }
    };
    // A short deadline of its own: the run's may be spent, and this is only a report.
    let left = Deadline::after(cfg.timeout.min(std::time::Duration::from_secs(30)))
        .scope(remaining(p, deployment, keep, cfg))
        .await;
    let left = match left {
        Ok(v) => names(&v),
        Err(why) => format!("unknown (listing failed: {why})"),
    };
    Error::new(
        e.kind().clone(),
        format!("{e}; removed: {}; still there: {left}", names(&out.removed)),
    )
}

/// The deployment's servers, firewalls and keys that still exist, except `keep`.
async fn remaining(
    p: &dyn Provider,
    deployment: &DeploymentName,
    keep: &Existing,
    cfg: &FlowConfig,
) -> Result<Vec<ResourceRef>> {
    let selector = Labels::deployment(deployment);
    let r = &cfg.retry;
    let own = p.description().ownership;
    let mut left = Vec::new();
    let servers = retry(r, "list servers", || p.list_servers(&selector)).await?;
    left.extend(
        only_ours(servers, &selector, own.server)
            .into_iter()
            .map(|s| ("server", s.id, s.name)),
    );
    let firewalls = retry(r, "list firewalls", || p.list_firewalls(&selector)).await?;
    left.extend(
        only_ours(firewalls, &selector, own.firewall)
            .into_iter()
            .map(|f| ("firewall", f.id, f.name)),
    );
    if p.description().key_resource {
        let keys = retry(r, "list ssh keys", || p.list_ssh_keys(&selector)).await?;
        left.extend(
            only_ours(keys, &selector, own.ssh_key)
                .into_iter()
                .map(|k| ("ssh_key", k.id, k.name)),
        );
    }
    Ok(left
        .into_iter()
        .filter(|(kind, id, _)| !keep.contains(&(*kind, id.clone())))
        .map(|(kind, id, name)| ResourceRef { kind, id, name })
        .collect())
}

async fn teardown_all(
    p: &dyn Provider,
    deployment: &DeploymentName,
    keep: &Existing,
    cfg: &FlowConfig,
    progress: &dyn Progress,
    native_schedule: bool,
    out: &mut Teardown,
) -> Result<()> {
    let deadline = super::flow_deadline(cfg);
    let selector = Labels::deployment(deployment);
    let r = &cfg.retry;
    let kept_id = |kind: &'static str, id: &str| keep.contains(&(kind, id.to_owned()));
    let desc = p.description();
    let own = desc.ownership;
    // Where the provider has a native schedule engine, its listing may be needed (see below).
    let may_have_native = native_schedule
        || desc
            .snapshot_engines
            .iter()
            .any(|e| *e != crate::describe::ENGINE_JOB);

    // One read stage: every listing the teardown needs, at once.
    let (servers, firewalls, keys, managed, schedules) = tokio::join!(
        retry(r, "list servers", || p.list_servers(&selector)),
        retry(r, "list firewalls", || p.list_firewalls(&selector)),
        async {
            if desc.key_resource {
                retry(r, "list ssh keys", || p.list_ssh_keys(&selector)).await
            } else {
                // A provider without key resources (the key went in through cloud-init) has
                // none to delete.
                Ok(Vec::new())
            }
        },
        async {
            if desc.key_resource {
                let all = Labels::managed();
                retry(r, "list servers", || p.list_servers(&all))
                    .await
                    .map(|v| only_ours(v, &all, own.server))
            } else {
                Ok(Vec::new())
            }
        },
        async {
            if may_have_native {
                Some(
                    retry(r, "list snapshot schedules", || {
                        p.list_native_schedules(&selector)
                    })
                    .await,
                )
            } else {
                None
            }
        },
    );
    let servers = only_ours(servers?, &selector, own.server);
    let firewalls = only_ours(firewalls?, &selector, own.firewall);
    let keys: Vec<_> = only_ours(keys?, &selector, own.ssh_key)
        .into_iter()
        .filter(|k| !kept_id("ssh_key", &k.id))
        .collect();
    let native = native_schedule
        || servers
            .iter()
            .any(|s| s.labels.get(LABEL_ENGINE).is_some_and(|e| e != "job"));
    // With the server already gone nothing tells which engine kept the schedule: where the
    // provider has a native one, look for the deployment's policy by its tags anyway. That look
    // is a guess, so its failure only warns.
    let guess = !native && servers.is_empty() && may_have_native;
    let schedules = match schedules {
        Some(Ok(v)) if native || guess => only_matching(v, &selector),
        // Any failure of the guess (no permission, a service the endpoint does not serve)
        // only warns: the deployment gave no sign of having a native schedule.
        Some(Err(e)) if guess => {
            progress.warn(&format!(
                "could not look for a snapshot schedule of {deployment} ({e}); if it had one, delete it at the provider"
            ));
            Vec::new()
        }
        Some(Err(e)) if native => return Err(e),
        _ => Vec::new(),
    };
    for n in schedules
        .into_iter()
        .filter(|n| !kept_id("snapshot_schedule", &n.id))
    {
        progress.step(&format!("deleting snapshot schedule {} ({})", n.name, n.id));
        retry(r, "delete snapshot schedule", || {
            p.delete_native_schedule(&n.id)
        })
        .await?;
        out.removed.push(ResourceRef {
            kind: "snapshot_schedule",
            id: n.id,
            name: n.name,
        });
    }

    let servers: Vec<_> = servers
        .into_iter()
        .filter(|s| !kept_id("server", &s.id))
        .collect();
    // A key goes only when no managed server outside this teardown was created with it. A key
    // is only read when a server is created, so it goes beside the server's wait where the
    // provider allows ([`crate::Description::key_goes_beside_server`]).
    // Without the listing of every managed server no key can be proven unused.
    let managed = if keys.is_empty() {
        Vec::new()
    } else {
        managed?
    };
    let going: Vec<&str> = servers.iter().map(|s| s.id.as_str()).collect();
    let users = |key: &str| -> Vec<String> {
        managed
            .iter()
            .filter(|s| !going.contains(&s.id.as_str()) && s.labels.get(LABEL_SSH_KEY) == Some(key))
            .map(|s| s.name.clone())
            .collect()
    };
    let key_stage = async {
        let mut removed = Vec::new();
        let mut kept = Vec::new();
        for k in &keys {
            let users = users(&k.id);
            let rref = ResourceRef {
                kind: "ssh_key",
                id: k.id.clone(),
                name: k.name.clone(),
            };
            if users.is_empty() {
                progress.step(&format!("deleting ssh key {} ({})", k.name, k.id));
                if let Err(e) = retry(r, "delete ssh key", || p.delete_ssh_key(&k.id)).await {
                    return (Err(e), removed, kept);
                }
                removed.push(rref);
            } else {
                let why = format!("still used by {}", users.join(", "));
                progress.warn(&format!("keeping ssh key {} ({}): {why}", k.name, k.id));
                kept.push((rref, why));
            }
        }
        (Ok(()), removed, kept)
    };
    let mut gone = Vec::new();
    let server_stage = async {
        for s in &servers {
            // The provider's own backups of a server are deleted with it (DigitalOcean,
            // Hetzner): listed first so that the teardown says so. Only a note: failing to
            // list them stops nothing.
            let backups = if desc.provider_backups {
                retry(r, "list provider backups", || p.list_provider_backups(s))
                    .await
                    .unwrap_or_else(|e| {
                        progress.warn(&format!("could not list the backups of {}: {e}", s.name));
                        Vec::new()
                    })
            } else {
                Vec::new()
            };
            progress.step(&format!("deleting server {} ({})", s.name, s.id));
            delete_server_and_wait(p, &s.id, cfg, deadline).await?;
            if !backups.is_empty() {
                progress.step(&format!(
                    "the provider deleted {} backup(s) of {} with it",
                    backups.len(),
                    s.name
                ));
            }
            gone.push(ResourceRef {
                kind: "server",
                id: s.id.clone(),
                name: s.name.clone(),
            });
            gone.extend(backups.into_iter().map(|b| ResourceRef {
                kind: "provider_backup",
                id: b.id,
                name: b.name,
            }));
        }
        // A firewall is released only once its servers are gone.
        for f in firewalls.iter().filter(|f| !kept_id("firewall", &f.id)) {
            progress.step(&format!("deleting firewall {} ({})", f.name, f.id));
            delete_firewall_when_released(p, &f.id, cfg, deadline).await?;
            gone.push(ResourceRef {
                kind: "firewall",
                id: f.id.clone(),
                name: f.name.clone(),
            });
        }
        Ok::<_, Error>(())
    };
    let (servers_done, (keys_done, keys_removed, keys_kept)) = if desc.key_goes_beside_server {
        tokio::join!(server_stage, key_stage)
    } else {
        match server_stage.await {
            Ok(()) => (Ok(()), key_stage.await),
            Err(e) => (Err(e), (Ok(()), Vec::new(), Vec::new())),
        }
    };
    // Reported in teardown order (servers, firewalls, keys), whatever finished first.
    out.removed.extend(gone);
    out.removed.extend(keys_removed);
    out.kept.extend(keys_kept);
    servers_done?;
    keys_done
}

/// Deletes a server and waits until it is gone.
pub(super) async fn delete_server_and_wait(
    p: &dyn Provider,
    id: &str,
    cfg: &FlowConfig,
    deadline: Instant,
) -> Result<()> {
    let r = &cfg.retry;
    let ops = retry(r, "delete server", || p.delete_server(id)).await?;
    wait_operations(p, &ops, cfg, deadline).await?;
    let what = format!("server {id} to be gone");
    wait_until(&cfg.poll, deadline, &what, || async {
        match retry(r, &what, || p.get_server(id)).await {
            Ok(found) => Ok(found.is_none().then_some(())),
            Err(e) => Err(final_error(e)),
        }
    })
    .await
}

/// Deletes a firewall; one stays "in use" for a moment after its server is gone, so this
/// polls until it lets go.
pub(super) async fn delete_firewall_when_released(
    p: &dyn Provider,
    id: &str,
    cfg: &FlowConfig,
    deadline: Instant,
) -> Result<()> {
    let what = format!("firewall {id} to be released");
    wait_until(&cfg.poll, deadline, &what, || async {
        match retry(&cfg.retry, "delete firewall", || p.delete_firewall(id)).await {
            Ok(()) => Ok(Some(())),
            Err(e) if e.kind() == &ErrorKind::InUse => Ok(None),
            // Any other answer (a 500 included, after its retries) is the API's error, not a
            // reason to wait on until the timeout.
            Err(e) => Err(final_error(e)),
        }
    })
    .await
}

/// Which managed servers (of any deployment) were created with a key: a key goes only when
/// none does. Returns a lookup from key id to the servers' names.
pub(super) async fn key_users(
    p: &dyn Provider,
    cfg: &FlowConfig,
) -> Result<impl Fn(&str) -> Vec<String>> {
    let all = Labels::managed();
    let managed = only_ours(
        retry(&cfg.retry, "list servers", || p.list_servers(&all)).await?,
        &all,
        p.description().ownership.server,
    );
    Ok(move |key: &str| {
        managed
            .iter()
            .filter(|s| s.labels.get(LABEL_SSH_KEY) == Some(key))
            .map(|s| s.name.clone())
            .collect()
    })
}

/// The error a failed rollback leaves the user with: what failed and the exact command to finish.
/// `connection` holds the flags that point at the same account and place (`--region`, ...),
/// each with a leading space, already quoted for a shell.
pub fn rollback_hint(
    provider: &str,
    deployment: &DeploymentName,
    connection: &str,
    e: &Error,
) -> String {
    format!(
        "rollback failed too ({e}); run `bootstrap destroy {deployment} --provider {provider}{connection} --yes` to remove what is left"
    )
}
