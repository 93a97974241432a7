//! The snapshot job: for every server carrying a schedule, take the snapshot of the current slot
//! if it is missing, wait until it is usable, then delete our snapshots beyond KEEP, oldest
//! first by creation time. Stateless: the schedule lives in the server's labels, the slot in the
//! snapshot's, so it can run from any machine, twice, or twice at once.

use std::collections::BTreeMap;

use crate::deadline::Deadline;
use futures::StreamExt;
use serde::Serialize;
use time::OffsetDateTime;

use super::{FlowConfig, wait_operations};
use crate::error::{Error, ErrorKind, Result};
use crate::model::{
    LABEL_DEPLOYMENT, Labels, Server, Snapshot, SnapshotStatus, only_matching, only_ours,
};
use crate::poll::wait_until;
use crate::progress::Progress;
use crate::provider::Provider;
use crate::retry::retry;
use crate::schedule::{LABEL_ENGINE, LABEL_SLOT, Schedule, slot_name, to_prune};

/// How the job runs.
#[derive(Debug, Clone, Copy)]
pub struct JobOptions {
    /// The instant the schedule is evaluated at (`--at`, default now).
    pub at: OffsetDateTime,
    /// Only say what would happen.
    pub dry_run: bool,
    /// Servers handled at once.
    pub concurrency: usize,
}

/// What happened to one server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "result")]
pub enum Outcome {
    /// The slot's snapshot was taken now.
    Created {
        /// Its id.
        id: String,
    },
    /// The slot's snapshot already existed.
    UpToDate,
    /// Dry run: the snapshot would be taken.
    WouldCreate,
    /// Left alone (e.g. a native engine keeps its schedule).
    Skipped {
        /// Why.
        reason: String,
    },
    /// Something failed; nothing was deleted.
    Failed {
        /// What failed.
        error: String,
    },
}

/// One line of the job's summary.
#[derive(Debug, Clone, Serialize)]
pub struct ServerReport {
    /// Deployment name.
    pub deployment: String,
    /// Server id.
    pub server: String,
    /// The schedule as people read it.
    pub schedule: String,
    /// The slot evaluated.
    pub slot: String,
    /// Result.
    #[serde(flatten)]
    pub outcome: Outcome,
    /// Snapshots deleted by retention (or that would be, in a dry run).
    pub pruned: Vec<String>,
    /// Snapshots of this server that remain.
    pub kept: usize,
}

impl ServerReport {
    /// True when this server's run failed.
    pub fn failed(&self) -> bool {
        matches!(self.outcome, Outcome::Failed { .. })
    }
}

/// Makes the provider's native schedule follow a server's (new) labels: when they name a native
/// engine and a schedule, a new policy is made first, then every other one of the deployment
/// goes (no moment without one); with the job or `off`, every native schedule of the deployment
/// goes. Returns the schedule now in force, if native.
pub async fn sync_native_schedule(
    p: &dyn Provider,
    cfg: &FlowConfig,
    deployment: &crate::model::DeploymentName,
    labels: &Labels,
    had_native: bool,
) -> Result<Option<crate::model::NativeSchedule>> {
    let spec = super::create::native_spec_for(deployment, labels)?;
    if spec.is_none() && !had_native {
        return Ok(None);
    }
    Deadline::after(cfg.timeout)
        .scope(replace_native_schedules(p, cfg, deployment, spec))
        .await
}

/// Makes `spec` (if any) and then removes every other native schedule of `deployment`.
async fn replace_native_schedules(
    p: &dyn Provider,
    cfg: &FlowConfig,
    deployment: &crate::model::DeploymentName,
    spec: Option<crate::model::NativeScheduleSpec>,
) -> Result<Option<crate::model::NativeSchedule>> {
    let r = &cfg.retry;
    let selector = Labels::deployment(deployment);
    let old = only_matching(
        retry(r, "list snapshot schedules", || {
            p.list_native_schedules(&selector)
        })
        .await?,
        &selector,
    );
    let made = match &spec {
        Some(spec) => Some(p.create_native_schedule(spec).await?),
        None => None,
    };
    for o in old {
        retry(r, "delete snapshot schedule", || {
            p.delete_native_schedule(&o.id)
        })
        .await?;
    }
    Ok(made)
}

/// The name of a slot's snapshot: `<deployment>-<slot>`.
pub fn snapshot_name(deployment: &str, slot: &str) -> String {
    format!("{deployment}-{slot}")
}

/// Runs the job over every managed server with a schedule.
pub async fn snapshot_run(
    p: &dyn Provider,
    cfg: &FlowConfig,
    opts: &JobOptions,
    progress: &dyn Progress,
) -> Result<Vec<ServerReport>> {
    let managed = Labels::managed();
    let r = &cfg.retry;
    progress.step("listing servers and snapshots");
    // The listing, and then each server, get their own --timeout.
    let (servers, snapshots) = Deadline::after(cfg.timeout)
        .scope(async {
            futures::join!(
                retry(r, "list servers", || p.list_servers(&managed)),
                retry(r, "list snapshots", || p.list_snapshots(&managed)),
            )
        })
        .await;
    let own = p.description().ownership;
    let servers = only_ours(servers?, &managed, own.server);
    // One paginated list for all servers instead of one call per server: the job of 1,000
    // servers must fit Hetzner's 3,600 requests an hour.
    let mut by_deployment: BTreeMap<String, Vec<Snapshot>> = BTreeMap::new();
    for s in only_ours(snapshots?, &managed, own.snapshot) {
        if let Some(d) = s.labels.deployment_name() {
            by_deployment.entry(d.to_owned()).or_default().push(s);
        }
    }
    let work: Vec<_> = servers
        .into_iter()
        .filter_map(|s| {
            let d = s.labels.deployment_name()?.to_owned();
            let snaps = by_deployment.remove(&d).unwrap_or_default();
            Some((s, d, snaps))
        })
        .collect();
    let mut reports: Vec<ServerReport> = futures::stream::iter(work)
        .map(|(server, deployment, snaps)| async move {
            Deadline::after(cfg.timeout)
                .scope(one_server(
                    p,
                    cfg,
                    opts,
                    progress,
                    &server,
                    &deployment,
                    snaps,
                ))
                .await
        })
        .buffer_unordered(opts.concurrency.max(1))
        .filter_map(|r| async move { r })
        .collect()
        .await;
    reports.sort_by(|a, b| a.deployment.cmp(&b.deployment));
    Ok(reports)
}

/// Handles one server; `None` when it carries no schedule.
async fn one_server(
    p: &dyn Provider,
    cfg: &FlowConfig,
    opts: &JobOptions,
    progress: &dyn Progress,
    server: &Server,
    deployment: &str,
    snaps: Vec<Snapshot>,
) -> Option<ServerReport> {
    let mut report = ServerReport {
        deployment: deployment.to_owned(),
        server: server.id.clone(),
        schedule: String::new(),
        slot: String::new(),
        outcome: Outcome::UpToDate,
        pruned: Vec::new(),
        kept: snaps.len(),
    };
    let schedule = match Schedule::from_labels(&server.labels) {
        Ok(Some(s)) => s,
        Ok(None) => return None,
        Err(e) => {
            report.outcome = Outcome::Failed {
                error: e.to_string(),
            };
            return Some(report);
        }
    };
    report.schedule = schedule.to_string();
    let slot = slot_name(schedule.slot(opts.at));
    report.slot.clone_from(&slot);
    if let Some(engine) = server
        .labels
        .get(LABEL_ENGINE)
        .filter(|e| *e != "job" && !p.engine_runs_the_job(e))
    {
        report.outcome = Outcome::Skipped {
            reason: format!("kept by the provider's {engine} policy"),
        };
        return Some(report);
    }
    match run_slot(
        p,
        cfg,
        opts,
        progress,
        server,
        deployment,
        &schedule,
        &slot,
        snaps,
        &mut report,
    )
    .await
    {
        Ok(()) => {}
        Err(e) => {
            report.outcome = Outcome::Failed {
                error: e.to_string(),
            }
        }
    }
    Some(report)
}

#[allow(clippy::too_many_arguments)]
async fn run_slot(
    p: &dyn Provider,
    cfg: &FlowConfig,
    opts: &JobOptions,
    progress: &dyn Progress,
    server: &Server,
    deployment: &str,
    schedule: &Schedule,
    slot: &str,
    mut snaps: Vec<Snapshot>,
    report: &mut ServerReport,
) -> Result<()> {
    let r = &cfg.retry;
    let in_slot = |s: &Snapshot| s.labels.get(LABEL_SLOT) == Some(slot);
    let is_broken = |s: &Snapshot| matches!(s.status, SnapshotStatus::Other(_));
    // A snapshot of the slot that failed (or is going away) does not fill it.
    let has_slot = |s: &Snapshot| in_slot(s) && !is_broken(s);
    let mut selector = Labels::managed();
    selector.insert(LABEL_DEPLOYMENT, deployment);

    // Such a broken snapshot is ours and unusable: it goes, so that the slot can be taken again
    // (on AWS a failed AMI also holds the slot's name).
    let broken: Vec<Snapshot> = snaps
        .iter()
        .filter(|s| in_slot(s) && is_broken(s))
        .cloned()
        .collect();
    if !opts.dry_run {
        for b in &broken {
            progress.warn(&format!(
                "{deployment}: deleting snapshot {} of this slot, which is {:?}",
                b.name, b.status
            ));
            retry(r, "delete snapshot", || p.delete_snapshot(&b.id)).await?;
            report.pruned.push(b.name.clone());
        }
        snaps.retain(|s| !broken.iter().any(|b| b.id == s.id));
    }

    if !snaps.iter().any(has_slot) {
        if opts.dry_run {
            report.outcome = Outcome::WouldCreate;
            // The new one counts towards KEEP.
            let keep = schedule.keep.saturating_sub(1);
            report.pruned = prune_list(&snaps, keep)
                .into_iter()
                .map(|s| s.name)
                .collect();
            report.kept = snaps.len() + 1 - report.pruned.len();
            return Ok(());
        }
        let name = snapshot_name(deployment, slot);
        progress.step(&format!("{deployment}: taking snapshot {name}"));
        let mut labels = selector.clone();
        labels.insert(LABEL_SLOT, slot);
        // Not retried blindly: a lost answer may still have made the snapshot, and the slot
        // check below (and the next run) finds it.
        let (snapshot, pending) = match p.create_snapshot(server, &name, &labels).await {
            Ok(created) => (created.resource, created.pending),
            // The name is taken (AWS: AMI names are unique): by another run taking the same
            // slot right now, whose snapshot this run then waits for, or by something not ours.
            Err(e) if e.kind() == &ErrorKind::Conflict => {
                let found = only_ours(
                    retry(r, "list snapshots", || p.list_snapshots(&selector)).await?,
                    &selector,
                    p.description().ownership.snapshot,
                )
                .into_iter()
                .find(|s| has_slot(s));
                match found {
                    Some(s) => (s, Vec::new()),
                    None => {
                        return Err(Error::new(
                            ErrorKind::Conflict,
                            format!(
                                "a snapshot named {name} exists but is not {deployment}'s snapshot of slot {slot}: rename or delete it ({e})"
                            ),
                        ));
                    }
                }
            }
            Err(e) => return Err(e),
        };
        let id = snapshot.id.clone();
        let deadline = super::flow_deadline(cfg);
        wait_operations(p, &pending, cfg, deadline).await?;
        // Where the provider reports an operation, its success means the snapshot is usable
        // (Hetzner); otherwise poll the snapshot's own state (AWS).
        if pending.is_empty() {
            let what = format!("snapshot {name} ({id}) to be available");
            wait_until(&cfg.poll, deadline, &what, || async {
                match retry(r, &what, || p.get_snapshot(&id)).await? {
                    Some(s) if s.status == SnapshotStatus::Available => Ok(Some(())),
                    Some(s) if matches!(s.status, SnapshotStatus::Other(_)) => Err(Error::new(
                        ErrorKind::ActionFailed,
                        format!("snapshot {name} ended as {:?}", s.status),
                    )),
                    Some(_) => Ok(None),
                    None => Err(Error::new(
                        ErrorKind::ActionFailed,
                        format!("snapshot {name} disappeared"),
                    )),
                }
            })
            .await?;
        }
        // Where the image id only appears now (DigitalOcean), the provider finds the image and
        // tags it; retried, so that a snapshot never stays untagged and unprunable.
        let finished = retry(r, "finish snapshot", || {
            p.finish_snapshot(server, &snapshot, &labels)
        })
        .await?;
        report.outcome = Outcome::Created { id: finished.id };
        // Re-read: another run may have taken the same slot at the same time.
        snaps = only_ours(
            retry(r, "list snapshots", || p.list_snapshots(&selector)).await?,
            &selector,
            p.description().ownership.snapshot,
        );
        let mut twins: Vec<Snapshot> = snaps.iter().filter(|s| has_slot(s)).cloned().collect();
        if twins.len() > 1 {
            // Every run keeps the same one: the oldest, then the lowest id.
            twins.sort_by(|a, b| (a.created, &a.id).cmp(&(b.created, &b.id)));
            for extra in &twins[1..] {
                if extra.status == SnapshotStatus::Available {
                    retry(r, "delete snapshot", || p.delete_snapshot(&extra.id)).await?;
                    report.pruned.push(extra.name.clone());
                    snaps.retain(|s| s.id != extra.id);
                }
            }
            if let Outcome::Created { id } = &report.outcome
                && *id != twins[0].id
            {
                report.outcome = Outcome::UpToDate;
            }
        }
    }

    // Retention, only after the slot's snapshot exists and is usable.
    let prune = prune_list(&snaps, schedule.keep);
    let n = prune.len();
    for s in prune {
        if !opts.dry_run {
            progress.step(&format!("{deployment}: deleting old snapshot {}", s.name));
            retry(r, "delete snapshot", || p.delete_snapshot(&s.id)).await?;
        }
        report.pruned.push(s.name);
    }
    report.kept = snaps.len() - n;
    Ok(())
}

/// Our usable snapshots beyond `keep`, oldest first by creation time. Snapshots still being
/// taken are never pruned (another run may be waiting for one).
fn prune_list(snaps: &[Snapshot], keep: u32) -> Vec<Snapshot> {
    let usable: Vec<Snapshot> = snaps
        .iter()
        .filter(|s| s.status == SnapshotStatus::Available)
        .cloned()
        .collect();
    to_prune(&usable, keep, |s| {
        (s.created.unix_timestamp(), s.id.clone())
    })
}
