//! `create`: SSH key, then cloud firewall, then the server, then wait until it runs.
//! Re-running finds what exists by labels and completes it. Any failure (or a signal) removes
//! what this run's own create calls made, by id; a run that lost a race to another run of the
//! same deployment removes its own server and names the winner's.

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::Mutex;

use serde::Serialize;
use tokio::time::Instant;

use super::rollback::rollback;
use super::{FlowConfig, ResourceRef, Teardown, find_or_create, wait_operations};
use crate::deadline::Deadline;
use crate::error::{Error, ErrorKind, Result};
use crate::model::{
    DeploymentName, Firewall, FirewallSpec, LABEL_FIREWALL, LABEL_MANAGED_BY, LABEL_RUN,
    LABEL_SSH_KEY, Labels, NativeSchedule, NativeScheduleSpec, Server, ServerSpec, ServerStatus,
    SshKey, SshKeySpec, merge_rules, only_matching, only_ours, rule_changes,
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
    /// Ask the provider, in the read stage, whether the server type, image and location exist
    /// ([`Provider::check_server_options`]): an unknown one fails before anything is made.
    pub check_options: bool,
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
    /// The provider refused the server type, image or location in the read stage, before any
    /// call that changes anything: a usage error, like the offline checks.
    pub options_refused: bool,
}

/// Runs the create flow. `cancel` resolving (Ctrl-C, SIGTERM, SIGHUP) stops it and rolls back.
///
/// The rollback deletes exactly what this run's own create calls made, by id (see [`Ledger`]):
/// never a resource that a run racing this one made, even one that carries the same labels.
pub async fn create(
    p: &dyn Provider,
    plan: &CreatePlan,
    cfg: &FlowConfig,
    progress: &dyn Progress,
    cancel: impl Future<Output = ()>,
) -> std::result::Result<CreateOutcome, CreateFailure> {
    let ledger = Ledger::new();
    // One deadline for the whole run; the rollback gets its own.
    let deadline = Deadline::after(cfg.timeout);
    let result = tokio::select! {
        r = deadline.scope(run(p, plan, cfg, progress, &ledger)) => r,
        () = cancel => Err(Error::new(ErrorKind::Cancelled, "interrupted")),
    };
    match result {
        Ok(mut outcome) => {
            outcome.created = ledger.made();
            Ok(outcome)
        }
        Err(error) => {
            // Nothing to remove (refused in the read stage, say): the error alone says it.
            if !ledger.made().is_empty() || !ledger.in_doubt().is_empty() {
                progress.warn(&format!(
                    "create failed: {error}; removing what this run created"
                ));
            }
            let rollback = rollback(p, plan, &ledger, cfg, progress).await;
            let options_refused = ledger
                .options_refused
                .load(std::sync::atomic::Ordering::Relaxed);
            Err(CreateFailure {
                error,
                rollback,
                options_refused,
            })
        }
    }
}

/// What one run made, written the moment each create call answers (a signal can cut the run
/// off at any await, so nothing waits to be recorded), plus the kinds whose create call was
/// sent but gave no id: an error that may have come after the work, or a call cut off. Those
/// are found again by the run's own label ([`LABEL_RUN`]) or, for the key, its fingerprint.
pub(crate) struct Ledger {
    run: String,
    inner: Mutex<LedgerInner>,
    /// The read stage's option check refused the input.
    options_refused: std::sync::atomic::AtomicBool,
}

#[derive(Default)]
struct LedgerInner {
    made: Vec<ResourceRef>,
    in_doubt: BTreeSet<&'static str>,
}

impl Ledger {
    fn new() -> Self {
        use rand::Rng as _;
        let n: u64 = rand::thread_rng().r#gen();
        Self {
            run: format!("{n:016x}"),
            inner: Mutex::default(),
            options_refused: std::sync::atomic::AtomicBool::new(false),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LedgerInner> {
        // Poisoned only if a thread panicked while pushing; the list is still whole.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// This run's value of [`LABEL_RUN`].
    pub(crate) fn run_id(&self) -> &str {
        &self.run
    }

    /// A create call of `kind` is about to be sent.
    fn sending(&self, kind: &'static str) {
        self.lock().in_doubt.insert(kind);
    }

    /// The create of `kind` is settled: made by this run (`Some`), or found (`None`).
    fn settled(&self, kind: &'static str, made: Option<ResourceRef>) {
        let mut l = self.lock();
        l.in_doubt.remove(kind);
        l.made.extend(made);
    }

    /// A create that failed in a way that proves nothing was made (a conflict, refused input).
    fn refused(&self, kind: &'static str, e: &Error) {
        if matches!(e.kind(), ErrorKind::Conflict | ErrorKind::InvalidInput) {
            self.lock().in_doubt.remove(kind);
        }
    }

    /// Whether this run made `kind` `id`; if so it is taken off the list, for a caller that
    /// removes it itself. A key this run did not make is left alone.
    fn forget(&self, kind: &str, id: &str) -> bool {
        let mut l = self.lock();
        let before = l.made.len();
        l.made.retain(|r| !(r.kind == kind && r.id == id));
        l.made.len() != before
    }

    pub(crate) fn made(&self) -> Vec<ResourceRef> {
        self.lock().made.clone()
    }

    pub(crate) fn in_doubt(&self) -> Vec<&'static str> {
        self.lock().in_doubt.iter().copied().collect()
    }

    /// Whether a resource with these labels is this run's: its run label decides where the
    /// cloud keeps labels on it; elsewhere `fallback` (the create call answered, or a lost
    /// answer was followed by finding it).
    fn is_mine(&self, labels: &Labels, fallback: bool) -> bool {
        labels.get(LABEL_RUN).map_or(fallback, |r| r == self.run)
    }
}

/// `labels` plus this run's label.
fn with_run(labels: &Labels, ledger: &Ledger) -> Labels {
    let mut l = labels.clone();
    l.insert(LABEL_RUN, ledger.run_id());
    l
}

/// The deployment's server that racing runs agree on: the oldest by [`Server::race_order`].
fn oldest(servers: Vec<Server>) -> Option<Server> {
    servers
        .into_iter()
        .min_by(|a, b| a.race_order().cmp(&b.race_order()))
}

/// After this run made `ours`: another server of the deployment that is older means another
/// run won the race (DigitalOcean, Scaleway and EC2 do not refuse a second server of the
/// same name). Every run decides by the same order, so exactly one goes on; the others remove
/// only their own server and name the winner's.
async fn lost_race(
    p: &dyn Provider,
    selector: &Labels,
    ours: &Server,
    cfg: &FlowConfig,
) -> Result<()> {
    let servers = only_ours(
        retry(&cfg.retry, "list servers", || p.list_servers(selector)).await?,
        selector,
        p.description().ownership.server,
    );
    // The listed copy carries the creation time even where the create answer did not.
    let me = servers
        .iter()
        .find(|s| s.id == ours.id)
        .cloned()
        .unwrap_or_else(|| ours.clone());
    match oldest(servers.into_iter().filter(|s| s.id != ours.id).collect()) {
        Some(w) if w.race_order() < me.race_order() => Err(Error::new(
            ErrorKind::Conflict,
            format!(
                "another run created deployment {} at the same time and won: its server {} ({}) is the deployment's; this run removes only its own server {} and touches nothing of the winner's",
                selector.deployment_name().unwrap_or_default(),
                w.name,
                w.id,
                me.id
            ),
        )),
        _ => Ok(()),
    }
}

/// What the read stage found: everything `create` looks up, asked for at once.
struct Found {
    key: Option<Option<Created<SshKey>>>,
    firewall: Option<Created<Firewall>>,
    server: Option<Created<Server>>,
    schedule: Option<Option<NativeSchedule>>,
}

/// The read stage: the option check and every look-up of what exists, in one concurrent
/// round, so that no look-up waits for another and none is sent twice.
async fn read_stage(
    p: &dyn Provider,
    plan: &CreatePlan,
    native: Option<&NativeScheduleSpec>,
    selector: &Labels,
    cfg: &FlowConfig,
    ledger: &Ledger,
) -> Result<Found> {
    let desc = p.description();
    let s = &plan.server;
    let (_, key, firewall, server, schedule) = tokio::try_join!(
        async {
            if plan.check_options {
                retry(&cfg.retry, "check server options", || {
                    p.check_server_options(&s.server_type, &s.image, &s.location)
                })
                .await
                .inspect_err(|e| {
                    if e.kind() == &ErrorKind::InvalidInput {
                        ledger
                            .options_refused
                            .store(true, std::sync::atomic::Ordering::Relaxed);
                    }
                })?;
            }
            Ok(())
        },
        async {
            if !desc.key_resource {
                return Ok(None);
            }
            let k = retry(&cfg.retry, "ssh key", || p.find_ssh_key(&plan.ssh_key.key)).await?;
            Ok(Some(k.map(Created::ready)))
        },
        async {
            let all = retry(&cfg.retry, "firewall", || p.list_firewalls(selector)).await?;
            Ok(only_ours(all, selector, desc.ownership.firewall)
                .into_iter()
                .next()
                .map(Created::ready))
        },
        async {
            let all = retry(&cfg.retry, "server", || p.list_servers(selector)).await?;
            Ok(oldest(only_ours(all, selector, desc.ownership.server)).map(Created::ready))
        },
        async {
            if native.is_none() {
                return Ok(None);
            }
            let all = retry(&cfg.retry, "snapshot schedule", || {
                p.list_native_schedules(selector)
            })
            .await?;
            Ok(Some(only_matching(all, selector).into_iter().next()))
        },
    )?;
    Ok(Found {
        key,
        firewall,
        server,
        schedule,
    })
}

async fn run(
    p: &dyn Provider,
    plan: &CreatePlan,
    cfg: &FlowConfig,
    progress: &dyn Progress,
    ledger: &Ledger,
) -> Result<CreateOutcome> {
    let deadline = super::flow_deadline(cfg);
    let selector = Labels::deployment(&plan.deployment);
    let desc = p.description();
    let native = native_spec(plan)?;

    progress.step(if plan.check_options {
        "checking the server options and looking up what exists"
    } else {
        "looking up what exists"
    });
    let found = read_stage(p, plan, native.as_ref(), &selector, cfg, ledger).await?;

    // Key and firewall together, except where key names are unique (Hetzner, EC2): there the
    // key goes first, so that a run racing another with a different key stops at the key,
    // before it made anything another run could come to use.
    let key_stage = async {
        let Some(looked_up) = found.key else {
            return Ok(None);
        };
        progress.step("uploading SSH key");
        let (key, _) = ensure_key(p, &plan.ssh_key, cfg, ledger, looked_up).await?;
        progress.done(&format!("ssh key {} ({})", key.name, key.id));
        Ok(Some(key))
    };
    let firewall_stage = async {
        progress.step(if desc.key_resource {
            "creating firewall"
        } else {
            "creating firewall (the SSH key goes in through cloud-init)"
        });
        let (firewall, made) = ensure_firewall(
            p,
            &plan.firewall,
            &selector,
            cfg,
            progress,
            ledger,
            found.firewall,
        )
        .await?;
        progress.done(&format!("firewall {} ({})", firewall.name, firewall.id));
        Ok::<_, Error>((firewall, made))
    };
    // A native engine (AWS DLM) keeps the schedule: its policy comes before the server, so that
    // a policy the provider refuses (e.g. a missing role) fails the create before an instance
    // is launched.
    let schedule_stage = async {
        let Some(mut ns) = native.clone() else {
            return Ok(None);
        };
        progress.step("creating the provider's snapshot schedule");
        ns.labels = with_run(&ns.labels, ledger);
        let (ns, sel) = (&ns, &selector);
        let (made, lost) = find_or_create(
            &cfg.retry,
            "snapshot schedule",
            found.schedule,
            || async move {
                Ok(only_matching(p.list_native_schedules(sel).await?, sel)
                    .into_iter()
                    .next())
            },
            || async move {
                ledger.sending("snapshot_schedule");
                p.create_native_schedule(ns)
                    .await
                    .inspect_err(|e| ledger.refused("snapshot_schedule", e))
            },
        )
        .await?;
        let mine = ledger.is_mine(&made.labels, lost);
        ledger.settled(
            "snapshot_schedule",
            mine.then(|| ResourceRef {
                kind: "snapshot_schedule",
                id: made.id.clone(),
                name: made.name.clone(),
            }),
        );
        progress.done(&format!("snapshot schedule {} ({})", made.name, made.id));
        Ok(Some(made))
    };
    // Each branch runs to its end even when another fails: one cut off between two of its
    // calls (DigitalOcean's tag, then its key) would leave what the first call made unrecorded.
    let (key, fw, sched) = if desc.unique_key_names {
        let key = key_stage.await?;
        let (fw, sched) = tokio::join!(firewall_stage, schedule_stage);
        (Ok(key), fw, sched)
    } else {
        tokio::join!(key_stage, firewall_stage, schedule_stage)
    };
    let (key, (firewall, fw_made), native_schedule) = (key?, fw?, sched?);

    progress.step("creating server");
    let mut spec: ServerSpec = plan.server.clone();
    if let Some(key) = &key {
        spec.ssh_key_ids = vec![key.id.clone()];
        spec.labels.insert(LABEL_SSH_KEY, key.id.clone());
    }
    spec.firewall_ids = vec![firewall.id.clone()];
    spec.labels.insert(LABEL_FIREWALL, firewall.id.clone());
    spec.labels.insert(LABEL_RUN, ledger.run_id());
    let (selector, spec) = (&selector, &spec);
    let found = find_or_create(
        &cfg.retry,
        "server",
        Some(found.server),
        || async move {
            Ok(oldest(only_ours(
                p.list_servers(selector).await?,
                selector,
                desc.ownership.server,
            ))
            .map(Created::ready))
        },
        || async move {
            ledger.sending("server");
            p.create_server(spec)
                .await
                .inspect_err(|e| ledger.refused("server", e))
        },
    )
    .await;
    let (
        Created {
            resource: server,
            pending,
        },
        lost,
    ) = found?;
    // An idempotent create (EC2's ClientToken) answers with the server another run made.
    let server_made = ledger.is_mine(&server.labels, lost);
    ledger.settled(
        "server",
        server_made.then(|| ResourceRef {
            kind: "server",
            id: server.id.clone(),
            name: server.name.clone(),
        }),
    );
    // A server another run made (a race, or a first create from another machine) was created
    // with that run's key: a key this run uploaded would only be left unused, so it goes now.
    let key = match key {
        Some(k)
            if !server_made
                && server
                    .labels
                    .get(LABEL_SSH_KEY)
                    .is_some_and(|id| id != k.id)
                && ledger.forget("ssh_key", &k.id) =>
        {
            retry(&cfg.retry, "delete ssh key", || p.delete_ssh_key(&k.id)).await?;
            progress.warn(&format!(
                "server {} was created with another key ({}); removed the key {} this run uploaded",
                server.name,
                server.labels.get(LABEL_SSH_KEY).unwrap_or_default(),
                k.id
            ));
            None
        }
        k => k,
    };
    progress.step(&format!("waiting for server {} to start", server.id));
    // Whether another run won the race is asked beside the first waits, not before them: a
    // run that lost stops there all the same, and the one that won loses no round trip.
    let race_check = async {
        if server_made {
            lost_race(p, selector, &server, cfg).await?;
        }
        Ok::<_, Error>(())
    };
    let started = async {
        wait_operations(p, &pending, cfg, deadline).await?;
        // What the cloud needs after create (Scaleway: user-data, then power on); also for a
        // server a re-run found half-made. A failure here rolls the server back like any other.
        let ops = retry(&cfg.retry, "complete server", || {
            p.complete_server(&server, spec)
        })
        .await?;
        wait_operations(p, &ops, cfg, deadline).await?;
        // A re-run that found the server but had to make its firewall (the old one was deleted
        // by hand) applies the new one, so the server is not left unprotected.
        if fw_made && !server_made {
            progress.step(&format!(
                "applying firewall {} to server {}",
                firewall.id, server.id
            ));
            let ops = retry(&cfg.retry, "attach firewall", || {
                p.attach_firewall(&server, &firewall)
            })
            .await?;
            wait_operations(p, &ops, cfg, deadline).await?;
            let mut labels = server.labels.clone();
            labels.insert(LABEL_FIREWALL, firewall.id.clone());
            retry(&cfg.retry, "set server labels", || {
                p.set_server_labels(&server, &labels)
            })
            .await?;
        }
        let what = format!("server {} to be running", server.id);
        // Some clouds are eventually consistent (EC2): a server just created can be unknown to
        // a get for a while. Not seen yet is only "gone" once it was seen, or after the
        // provider's grace period.
        let unseen_until = crate::deadline::after(desc.visibility_grace);
        let seen = std::sync::atomic::AtomicBool::new(!server_made);
        wait_until(&cfg.poll, deadline, &what, || async {
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
        .await
    };
    let ((), server) = tokio::try_join!(race_check, started)?;
    if server_made {
        // Once more, now that every run that started with this one has made its server: a
        // run that listed before another's create landed decides here, the same way.
        lost_race(p, selector, &server, cfg).await?;
    }
    progress.done(&format!("server {} running", server.id));
    if plan.provider_backups {
        // Also on a re-run whose server exists: the provider leaves backups that are on alone.
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
        created: Vec::new(),
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
    ledger: &Ledger,
    looked_up: Option<Created<SshKey>>,
) -> Result<(SshKey, bool)> {
    let labelled = SshKeySpec {
        labels: with_run(&spec.labels, ledger),
        ..spec.clone()
    };
    let labelled = &labelled;
    let found = find_or_create(
        &cfg.retry,
        "ssh key",
        Some(looked_up),
        || async move { Ok(p.find_ssh_key(&spec.key).await?.map(Created::ready)) },
        || async move {
            ledger.sending("ssh_key");
            match p.create_ssh_key(labelled).await {
                Ok(k) => Ok(Created::ready(k)),
                Err(e) => {
                    ledger.refused("ssh_key", &e);
                    Err(e)
                }
            }
        },
    )
    .await;
    match found {
        Ok((key, lost)) => {
            let key = key.resource;
            let made = ledger.is_mine(&key.labels, lost);
            ledger.settled(
                "ssh_key",
                made.then(|| ResourceRef {
                    kind: "ssh_key",
                    id: key.id.clone(),
                    name: key.name.clone(),
                }),
            );
            Ok((key, made))
        }
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
                        "this deployment's SSH key {} ({}) is another key than this run's ({}): its server only accepts that one; run again with --ssh-key pointing at its public key (or, if another run is creating this deployment right now, let it finish)",
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
    ledger: &Ledger,
    looked_up: Option<Created<Firewall>>,
) -> Result<(Firewall, bool)> {
    let deadline = super::flow_deadline(cfg);
    let labelled = FirewallSpec {
        labels: with_run(&spec.labels, ledger),
        ..spec.clone()
    };
    let labelled = &labelled;
    let (Created { resource, pending }, lost) = find_or_create(
        &cfg.retry,
        "firewall",
        Some(looked_up),
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
        || async move {
            ledger.sending("firewall");
            p.create_firewall(labelled)
                .await
                .inspect_err(|e| ledger.refused("firewall", e))
        },
    )
    .await?;
    let made = ledger.is_mine(&resource.labels, lost);
    ledger.settled(
        "firewall",
        made.then(|| ResourceRef {
            kind: "firewall",
            id: resource.id.clone(),
            name: resource.name.clone(),
        }),
    );
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
