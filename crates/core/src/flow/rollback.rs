//! The rollback of a failed (or interrupted) `create`: exactly what this run's own create calls
//! made, by id, and nothing else (DESIGN.md: never "whatever is labelled now", which let the
//! loser of a race delete the winner's server and firewall).
//!
//! A create whose answer never came (an error after the work, or a call cut off by a signal)
//! is found again by this run's own label ([`LABEL_RUN`]) or, for a key, by its fingerprint.
//! A firewall or key that another run's server has come to use (a race where the other run
//! found ours) stays, and the teardown says why.

use super::create::{CreatePlan, Ledger};
use super::destroy::{delete_firewall_when_released, delete_server_and_wait, key_users};
use super::{FlowConfig, ResourceRef, Teardown};
use crate::describe::is_ours;
use crate::error::Result;
use crate::model::{LABEL_FIREWALL, LABEL_RUN, Labels, only_matching, only_ours};
use crate::progress::Progress;
use crate::provider::Provider;
use crate::retry::retry;

/// Removes what `ledger` says this run made (and finds what it may have made without an
/// answer), schedule first, then servers, firewalls, keys.
pub(crate) async fn rollback(
    p: &dyn Provider,
    plan: &CreatePlan,
    ledger: &Ledger,
    cfg: &FlowConfig,
    progress: &dyn Progress,
) -> Result<Teardown> {
    let deadline = crate::deadline::after(cfg.timeout);
    let r = &cfg.retry;
    let own = p.description().ownership;
    let selector = Labels::deployment(&plan.deployment);
    let mut mine = selector.clone();
    mine.insert(LABEL_RUN, ledger.run_id());
    let mine = &mine;

    let mut made = ledger.made();
    for kind in ledger.in_doubt() {
        let found: Vec<ResourceRef> = match kind {
            "server" => only_ours(
                retry(r, "list servers", || p.list_servers(mine)).await?,
                mine,
                own.server,
            )
            .into_iter()
            .map(|s| ResourceRef {
                kind,
                id: s.id,
                name: s.name,
            })
            .collect(),
            "firewall" => only_ours(
                retry(r, "list firewalls", || p.list_firewalls(mine)).await?,
                mine,
                own.firewall,
            )
            .into_iter()
            .map(|f| ResourceRef {
                kind,
                id: f.id,
                name: f.name,
            })
            .collect(),
            "ssh_key" => retry(r, "find ssh key", || p.find_ssh_key(&plan.ssh_key.key))
                .await?
                .filter(|k| is_ours(own.ssh_key, &k.name, &k.labels, mine))
                .map(|k| ResourceRef {
                    kind,
                    id: k.id,
                    name: k.name,
                })
                .into_iter()
                .collect(),
            _ => only_matching(
                retry(r, "list snapshot schedules", || {
                    p.list_native_schedules(mine)
                })
                .await?,
                mine,
            )
            .into_iter()
            .map(|n| ResourceRef {
                kind: "snapshot_schedule",
                id: n.id,
                name: n.name,
            })
            .collect(),
        };
        for f in found {
            if !made.contains(&f) {
                made.push(f);
            }
        }
    }

    let mut out = Teardown::default();
    let of = |kind: &'static str| made.iter().filter(move |x| x.kind == kind);
    for n in of("snapshot_schedule") {
        progress.step(&format!("deleting snapshot schedule {} ({})", n.name, n.id));
        retry(r, "delete snapshot schedule", || {
            p.delete_native_schedule(&n.id)
        })
        .await?;
        out.removed.push(n.clone());
    }
    for s in of("server") {
        progress.step(&format!("deleting server {} ({})", s.name, s.id));
        delete_server_and_wait(p, &s.id, cfg, deadline).await?;
        out.removed.push(s.clone());
    }
    if of("firewall").next().is_some() {
        // The servers of the deployment that remain are another run's.
        let others = only_ours(
            retry(r, "list servers", || p.list_servers(&selector)).await?,
            &selector,
            own.server,
        );
        for f in of("firewall") {
            if let Some(s) = others
                .iter()
                .find(|s| s.labels.get(LABEL_FIREWALL) == Some(f.id.as_str()))
            {
                let why = format!(
                    "applied to server {} ({}), made by another run",
                    s.name, s.id
                );
                progress.warn(&format!("keeping {f}: {why}"));
                out.kept.push((f.clone(), why));
                continue;
            }
            progress.step(&format!("deleting firewall {} ({})", f.name, f.id));
            delete_firewall_when_released(p, &f.id, cfg, deadline).await?;
            out.removed.push(f.clone());
        }
    }
    if of("ssh_key").next().is_some() {
        let managed = key_users(p, cfg).await?;
        for k in of("ssh_key") {
            let users = managed(&k.id);
            if users.is_empty() {
                progress.step(&format!("deleting ssh key {} ({})", k.name, k.id));
                retry(r, "delete ssh key", || p.delete_ssh_key(&k.id)).await?;
                out.removed.push(k.clone());
            } else {
                let why = format!("still used by {}", users.join(", "));
                progress.warn(&format!("keeping {k}: {why}"));
                out.kept.push((k.clone(), why));
            }
        }
    }
    Ok(out)
}
