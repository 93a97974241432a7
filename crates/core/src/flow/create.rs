//! `create`: SSH key and cloud firewall concurrently, then the server, then wait until it runs.
//! Re-running finds what exists by labels and completes it. Any failure (or Ctrl-C) removes what
//! this run created.

use std::future::Future;

use serde::Serialize;
use tokio::time::Instant;

use crate::deadline::Deadline;

use super::{
    Existing, FlowConfig, ResourceRef, Teardown, find_or_create, teardown, wait_operations,
};
use crate::error::{Error, ErrorKind, Result};
use crate::model::{
    DeploymentName, Firewall, FirewallSpec, LABEL_MANAGED_BY, LABEL_SSH_KEY, Labels,
    NativeSchedule, NativeScheduleSpec, Server, ServerSpec, ServerStatus, SshKey, SshKeySpec,
    merge_rules, only_matching, only_ours, rule_changes,
};
use crate::poll::wait_until;
use crate::progress::Progress;
use crate::provider::{Created, Provider};
use crate::retry::retry;
use crate::schedule::{LABEL_ENGINE, LABEL_SCHEDULE, Schedule};

/// Everything `create` needs, checked and rendered before any API call.
#[derive(Debug, Clone)]
pub struct CreatePlan {
    /// The deployment.
    pub deployment: DeploymentName,
    /// The SSH key to upload (or reuse by fingerprint).
    pub ssh_key: SshKeySpec,
    /// The cloud firewall.
    pub firewall: FirewallSpec,
    /// The server; `ssh_key_ids` and `firewall_ids` are filled in by the flow.
    pub server: ServerSpec,
    /// Turn on the provider's own backups once the new server runs.
    pub provider_backups: bool,
}

/// What a successful `create` returns.
#[derive(Debug, Clone, Serialize)]
pub struct CreateOutcome {
    /// The running server.
    pub server: Server,
    /// The key resource installed on it; `None` where the provider takes the key through
    /// cloud-init only (no key resource, see [`crate::Description::key_resource`]).
    pub ssh_key: Option<SshKey>,
    /// The firewall applied to it.
    pub firewall: Firewall,
    /// The provider's own snapshot schedule, when a native engine keeps it.
    pub native_schedule: Option<NativeSchedule>,
    /// What this run created (the rest already existed).
    pub created: Vec<ResourceRef>,
}

/// A failed `create`: the error, and how the rollback went.
#[derive(Debug)]
pub struct CreateFailure {
    /// Why create failed.
    pub error: Error,
    /// What the rollback removed, or why it could not finish.
    pub rollback: std::result::Result<Teardown, Error>,
}

/// Runs the create flow. `cancel` resolving (Ctrl-C) stops it and rolls back.
pub async fn create(
    p: &dyn Provider,
    plan: &CreatePlan,
    cfg: &FlowConfig,
    progress: &dyn Progress,
    cancel: impl Future<Output = ()>,
) -> std::result::Result<CreateOutcome, CreateFailure> {
    let selector = Labels::deployment(&plan.deployment);
    progress.step("looking up existing resources");
    // Whether this plan asks for a native schedule (a broken label set fails in `run`).
    let native = native_spec(plan).ok().flatten().is_some();
    // One deadline for the look-up and the run; the rollback gets its own (see `teardown`).
    let deadline = Deadline::after(cfg.timeout);
    let existing = match deadline.scope(existing(p, &selector, cfg, native)).await {
        Ok(e) => e,
        // Nothing was created yet: no rollback to do.
        Err(error) => {
            return Err(CreateFailure {
                error,
                rollback: Ok(Teardown::default()),
            });
        }
    };
    let result = tokio::select! {
        r = deadline.scope(run(p, plan, cfg, progress)) => r,
        () = cancel => Err(Error::new(ErrorKind::Cancelled, "interrupted")),
    };
    match result {
        Ok(outcome) => Ok(outcome),
        Err(error) => {
            progress.warn(&format!(
                "create failed: {error}; removing what this run created"
            ));
            let rollback = teardown(p, &plan.deployment, &existing, cfg, progress, native).await;
            Err(CreateFailure { error, rollback })
        }
    }
}

async fn existing(
    p: &dyn Provider,
    selector: &Labels,
    cfg: &FlowConfig,
    native: bool,
) -> Result<Existing> {
    let r = &cfg.retry;
    let own = p.description().ownership;
    let (servers, firewalls, keys, schedules) = futures::join!(
        retry(r, "list servers", || p.list_servers(selector)),
        retry(r, "list firewalls", || p.list_firewalls(selector)),
        async {
            if p.description().key_resource {
                retry(r, "list ssh keys", || p.list_ssh_keys(selector)).await
            } else {
                Ok(Vec::new())
            }
        },
        async {
            if native {
                retry(r, "list snapshot schedules", || {
                    p.list_native_schedules(selector)
                })
                .await
            } else {
                Ok(Vec::new())
            }
        },
    );
    let mut set = Existing::new();
    set.extend(
        only_ours(servers?, selector, own.server)
            .into_iter()
            .map(|s| ("server", s.id)),
    );
    set.extend(
        only_ours(firewalls?, selector, own.firewall)
            .into_iter()
            .map(|f| ("firewall", f.id)),
    );
    set.extend(
        only_ours(keys?, selector, own.ssh_key)
            .into_iter()
            .map(|k| ("ssh_key", k.id)),
    );
    set.extend(
        only_matching(schedules?, selector)
            .into_iter()
            .map(|n| ("snapshot_schedule", n.id)),
    );
    Ok(set)
}

async fn run(
    p: &dyn Provider,
    plan: &CreatePlan,
    cfg: &FlowConfig,
    progress: &dyn Progress,
) -> Result<CreateOutcome> {
    let deadline = super::flow_deadline(cfg);
    let selector = Labels::deployment(&plan.deployment);
    let desc = p.description();
    let mut created = Vec::new();

    progress.step(if desc.key_resource {
        "uploading SSH key and creating firewall"
    } else {
        "creating firewall (the SSH key goes in through cloud-init)"
    });
    // Both run to completion (join, not try_join): a create still in flight when the other
    // fails could otherwise land after the rollback looked.
    let (key, firewall) = futures::join!(
        async {
            if desc.key_resource {
                ensure_key(p, &plan.ssh_key, cfg).await.map(Some)
            } else {
                Ok(None)
            }
        },
        ensure_firewall(p, &plan.firewall, &selector, cfg, progress, deadline),
    );
    let key = key?;
    let (firewall, fw_made) = firewall?;
    if let Some((key, true)) = &key {
        created.push(ResourceRef {
            kind: "ssh_key",
            id: key.id.clone(),
            name: key.name.clone(),
        });
    }
    let key = key.map(|(k, _)| k);
    if fw_made {
        created.push(ResourceRef {
            kind: "firewall",
            id: firewall.id.clone(),
            name: firewall.name.clone(),
        });
    }
    progress.done(&match &key {
        Some(key) => format!(
            "ssh key {} ({}), firewall {} ({})",
            key.name, key.id, firewall.name, firewall.id
        ),
        None => format!("firewall {} ({})", firewall.name, firewall.id),
    });

    // A native engine (AWS DLM) keeps the schedule: its policy comes before the server, so that
    // a policy the provider refuses (e.g. a missing role) fails the create before an instance
    // is launched.
    let native_schedule = match native_spec(plan)? {
        Some(ns) => {
            progress.step("creating the provider's snapshot schedule");
            let (ns, sel) = (&ns, &selector);
            let (made, is_new) = find_or_create(
                &cfg.retry,
                "snapshot schedule",
                || async move {
                    Ok(only_matching(p.list_native_schedules(sel).await?, sel)
                        .into_iter()
                        .next())
                },
                || p.create_native_schedule(ns),
            )
            .await?;
            if is_new {
                created.push(ResourceRef {
                    kind: "snapshot_schedule",
                    id: made.id.clone(),
                    name: made.name.clone(),
                });
            }
            progress.done(&format!("snapshot schedule {} ({})", made.name, made.id));
            Some(made)
        }
        None => None,
    };

    progress.step("creating server");
    let mut spec: ServerSpec = plan.server.clone();
    if let Some(key) = &key {
        spec.ssh_key_ids = vec![key.id.clone()];
        spec.labels.insert(LABEL_SSH_KEY, key.id.clone());
    }
    spec.firewall_ids = vec![firewall.id.clone()];
    let (selector, spec) = (&selector, &spec);
    let (
        Created {
            resource: server,
            pending,
        },
        server_made,
    ) = find_or_create(
        &cfg.retry,
        "server",
        || async move {
            Ok(only_ours(
                p.list_servers(selector).await?,
                selector,
                desc.ownership.server,
            )
            .into_iter()
            .next()
            .map(Created::ready))
        },
        || p.create_server(spec),
    )
    .await?;
    if server_made {
        created.push(ResourceRef {
            kind: "server",
            id: server.id.clone(),
            name: server.name.clone(),
        });
    }
    progress.step(&format!("waiting for server {} to start", server.id));
    wait_operations(p, &pending, cfg, deadline).await?;
    // What the cloud needs after create (Scaleway: user-data, then power on); also for a
    // server a re-run found half-made. A failure here rolls the server back like any other.
    let ops = retry(&cfg.retry, "complete server", || {
        p.complete_server(&server, spec)
    })
    .await?;
    wait_operations(p, &ops, cfg, deadline).await?;
    let what = format!("server {} to be running", server.id);
    // Some clouds are eventually consistent (EC2): a server just created can be unknown to a
    // get for a while. Not seen yet is only "gone" once it was seen, or after the provider's
    // grace period.
    let unseen_until = crate::deadline::after(desc.visibility_grace);
    let seen = std::sync::atomic::AtomicBool::new(!server_made);
    let server = wait_until(&cfg.poll, deadline, &what, || async {
        match retry(&cfg.retry, &what, || p.get_server(&server.id)).await? {
            Some(s) => {
                seen.store(true, std::sync::atomic::Ordering::Relaxed);
                Ok((s.status == ServerStatus::Running).then_some(s))
            }
            None if !seen.load(std::sync::atomic::Ordering::Relaxed)
                && Instant::now() < unseen_until =>
            {
                Ok(None)
            }
            None => Err(Error::new(
                ErrorKind::NotFound,
                format!("server {} disappeared while starting", server.id),
            )),
        }
    })
    .await?;
    progress.done(&format!("server {} running", server.id));
    if plan.provider_backups && server_made {
        progress.step("turning on the provider's backups");
        let ops = retry(&cfg.retry, "enable backups", || {
            p.enable_provider_backups(&server)
        })
        .await?;
        wait_operations(p, &ops, cfg, deadline).await?;
    }
    Ok(CreateOutcome {
        server,
        ssh_key: key,
        firewall,
        native_schedule,
        created,
    })
}

/// The native schedule a plan asks for: the server carries a schedule and names an engine
/// other than the job (`bootstrap-snapshot-engine=dlm`).
fn native_spec(plan: &CreatePlan) -> Result<Option<NativeScheduleSpec>> {
    native_spec_for(&plan.deployment, &plan.server.labels)
}

/// The native schedule that a server's labels ask for (`None` for the job or no schedule).
pub(crate) fn native_spec_for(
    deployment: &DeploymentName,
    labels: &Labels,
) -> Result<Option<NativeScheduleSpec>> {
    if labels.get(LABEL_ENGINE).is_none_or(|e| e == "job") {
        return Ok(None);
    }
    let Some(schedule) = Schedule::from_labels(labels)? else {
        return Ok(None);
    };
    let mut own = Labels::deployment(deployment);
    if let Some(m) = labels.get(LABEL_MANAGED_BY) {
        own.insert(LABEL_MANAGED_BY, m);
    }
    Ok(Some(NativeScheduleSpec {
        name: format!(
            "bootstrap {} {} keep {}",
            deployment,
            labels.get(LABEL_SCHEDULE).unwrap_or_default(),
            schedule.keep
        ),
        deployment: deployment.clone(),
        schedule,
        labels: own,
    }))
}

async fn ensure_key(
    p: &dyn Provider,
    spec: &SshKeySpec,
    cfg: &FlowConfig,
) -> Result<(SshKey, bool)> {
    let found = find_or_create(
        &cfg.retry,
        "ssh key",
        || async move { Ok(p.find_ssh_key(&spec.key).await?.map(Created::ready)) },
        || async move { Ok(Created::ready(p.create_ssh_key(spec).await?)) },
    )
    .await;
    match found {
        Ok((key, made)) => Ok((key.resource, made)),
        // The name is taken: by this deployment's own key from an earlier run, when this run
        // holds another key (a lost state dir, or a different --ssh-key). Say that, not "foreign".
        Err(e) if e.kind() == &ErrorKind::Conflict => {
            let own = retry(&cfg.retry, "list ssh keys", || {
                p.list_ssh_keys(&spec.labels)
            })
            .await?
            .into_iter()
            .find(|k| {
                k.name == spec.name
                    && crate::describe::is_ours(
                        p.description().ownership.ssh_key,
                        &k.name,
                        &k.labels,
                        &spec.labels,
                    )
            });
            match own {
                Some(k) => Err(Error::new(
                    ErrorKind::InvalidInput,
                    format!(
                        "this deployment's SSH key {} ({}) is another key than this run's ({}): its server only accepts that one; run again with --ssh-key pointing at its public key",
                        k.name, k.fingerprint, spec.key.md5
                    ),
                )),
                None => Err(e),
            }
        }
        Err(e) => Err(e),
    }
}

async fn ensure_firewall(
    p: &dyn Provider,
    spec: &FirewallSpec,
    selector: &Labels,
    cfg: &FlowConfig,
    progress: &dyn Progress,
    deadline: Instant,
) -> Result<(Firewall, bool)> {
    let (Created { resource, pending }, made) = find_or_create(
        &cfg.retry,
        "firewall",
        || async move {
            Ok(only_ours(
                p.list_firewalls(selector).await?,
                selector,
                p.description().ownership.firewall,
            )
            .into_iter()
            .next()
            .map(Created::ready))
        },
        || p.create_firewall(spec),
    )
    .await?;
    wait_operations(p, &pending, cfg, deadline).await?;
    let mut firewall = resource;
    // A firewall found from an earlier run gets this run's sources (say a new --ssh-from), so
    // the old addresses lose access; rules for other ports are someone's own and stay.
    let changes = rule_changes(&firewall.inbound, &spec.inbound);
    if !made && !changes.is_empty() {
        let list = |v: &[ipnet::IpNet]| {
            v.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        };
        for c in &changes {
            progress.warn(&format!(
                "firewall {}: {} ({:?} {}) now from {} (was {})",
                firewall.name,
                c.rule.description,
                c.rule.protocol,
                c.rule.port,
                list(&c.rule.sources),
                if c.was.is_empty() {
                    "closed".to_owned()
                } else {
                    list(&c.was)
                }
            ));
        }
        let fw = &firewall;
        let ops = retry(&cfg.retry, "update firewall rules", || {
            p.update_firewall_rules(fw, &spec.inbound)
        })
        .await?;
        wait_operations(p, &ops, cfg, deadline).await?;
        firewall.inbound = merge_rules(&firewall.inbound, &spec.inbound);
    }
    Ok((firewall, made))
}
