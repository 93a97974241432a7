//! The snapshot job: for every server carrying a schedule, take the snapshot of the current slot
//! if it is missing, wait until it is usable, then delete our snapshots beyond KEEP, oldest
//! first by creation time. Stateless: the schedule lives in the server's labels, the slot in the
//! snapshot's, so it can run from any machine, twice, or twice at once. Two runs that took the
//! same slot at the same moment leave twins; the next run's listing sees them and every run
//! keeps the same one (the oldest, then the lowest id), so no run re-reads a server's snapshots
//! after taking one (issue 12: the job of 1,000 servers within Hetzner's 3,600 requests an hour).

use std::collections::BTreeMap;

use crate::deadline::Deadline;
use futures::StreamExt;
use serde::Serialize;
use time::OffsetDateTime;

use super::FlowConfig;
use super::batch::{Admission, Waiter, Watch};
use crate::error::{Error, ErrorKind, Result};
use crate::model::{
    LABEL_DEPLOYMENT, Labels, Server, Snapshot, SnapshotStatus, only_matching, only_ours,
};
use crate::progress::Progress;
use crate::provider::{Provider, SnapshotToFinish};
use crate::retry::retry;
use crate::schedule::{LABEL_ENGINE, LABEL_SLOT, Schedule, slot_name, to_prune};

/// How the job runs.
#[derive(Debug, Clone, Copy)]
pub struct JobOptions {
    /// The instant the schedule is evaluated at (`--at`, default now).
    pub at: OffsetDateTime,
    /// Only say what would happen.
    pub dry_run: bool,
    /// Most calls in flight at once (`--concurrency`): a ceiling, below which the job follows
    /// the provider's rate budget.
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
///
/// Within the rate budget of a cloud for a thousand servers: one paginated listing of servers and
/// one of snapshots, then per server only what changes something (its snapshot, its deletions);
/// every wait goes through one [`Waiter`] that polls the whole job's operations in batched calls;
/// and calls go out through an [`Admission`] that follows the rate budget, `--concurrency` being
/// its ceiling. A server's `--timeout` runs from its first call.
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
    let job = Job {
        p,
        cfg,
        opts,
        progress,
        waiter: Waiter::new(p, cfg),
        admission: Admission::new(p, opts.concurrency),
    };
    // Every server starts at once; the admission, not the stream, bounds the calls in flight,
    // so that servers waiting for their snapshot hold no slot.
    let n = work.len().max(1);
    let servers = async {
        let reports: Vec<ServerReport> = futures::stream::iter(work)
            .map(|(server, deployment, snaps)| {
                let job = &job;
                async move { job.one_server(&server, &deployment, snaps).await }
            })
            .buffer_unordered(n)
            .filter_map(|r| async move { r })
            .collect()
            .await;
        job.waiter.close();
        reports
    };
    let (mut reports, ()) = futures::join!(servers, job.waiter.run());
    reports.sort_by(|a, b| a.deployment.cmp(&b.deployment));
    Ok(reports)
}

/// What every server of one run shares.
struct Job<'a> {
    p: &'a dyn Provider,
    cfg: &'a FlowConfig,
    opts: &'a JobOptions,
    progress: &'a dyn Progress,
    waiter: Waiter<'a>,
    admission: Admission<'a>,
}

/// A server's turn with the [`Admission`]: the first call takes it (and starts the server's
/// `--timeout`), each call after that takes a new one.
type Turn<'a> = Option<tokio::sync::SemaphorePermit<'a>>;

impl Job<'_> {
    /// Handles one server; `None` when it carries no schedule.
    async fn one_server(
        &self,
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
        let slot = slot_name(schedule.slot(self.opts.at));
        report.slot.clone_from(&slot);
        if let Some(engine) = server
            .labels
            .get(LABEL_ENGINE)
            .filter(|e| *e != "job" && !self.p.engine_runs_the_job(e))
        {
            report.outcome = Outcome::Skipped {
                reason: format!("kept by the provider's {engine} policy"),
            };
            return Some(report);
        }
        let plan = plan_slot(&schedule, &slot, snaps);
        if plan.is_nothing() {
            report.kept = plan.snaps.len();
            return Some(report);
        }
        // The server's turn comes when the budget allows; its --timeout runs from then on.
        let turn = if self.opts.dry_run {
            None
        } else {
            self.admission.turn().await
        };
        let done = Deadline::after(self.cfg.timeout)
            .scope(self.run_slot(
                server,
                deployment,
                &schedule,
                &slot,
                plan,
                turn,
                &mut report,
            ))
            .await;
        if let Err(e) = done {
            report.outcome = Outcome::Failed {
                error: e.to_string(),
            };
        }
        Some(report)
    }

    /// One call of the job, on the server's turn if it still holds it, else on a new one.
    async fn call<'t, T, F, Fut>(&'t self, turn: &mut Turn<'t>, what: &str, f: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        let held = match turn.take() {
            Some(t) => Some(t),
            None if self.opts.dry_run => None,
            None => self.admission.turn().await,
        };
        let r = retry(&self.cfg.retry, what, f).await;
        drop(held);
        r
    }

    #[allow(clippy::too_many_arguments)]
    async fn run_slot<'t>(
        &'t self,
        server: &Server,
        deployment: &str,
        schedule: &Schedule,
        slot: &str,
        plan: SlotPlan,
        mut turn: Turn<'t>,
        report: &mut ServerReport,
    ) -> Result<()> {
        let p = self.p;
        let progress = self.progress;
        let SlotPlan {
            mut snaps,
            broken,
            twins,
            create,
            ..
        } = plan;
        let mut selector = Labels::managed();
        selector.insert(LABEL_DEPLOYMENT, deployment);

        // A broken snapshot of the slot is ours and unusable: it goes, so that the slot can be
        // taken again (on AWS a failed AMI also holds the slot's name).
        if !self.opts.dry_run {
            for b in &broken {
                progress.warn(&format!(
                    "{deployment}: deleting snapshot {} of this slot, which is {:?}",
                    b.name, b.status
                ));
                self.call(&mut turn, "delete snapshot", || p.delete_snapshot(&b.id))
                    .await?;
                report.pruned.push(b.name.clone());
            }
            snaps.retain(|s| !broken.iter().any(|b| b.id == s.id));
        }
        // Two runs took the slot at the same time (seen by the next run's listing): every run
        // keeps the same one, the oldest, then the lowest id.
        for extra in &twins {
            if !self.opts.dry_run {
                self.call(&mut turn, "delete snapshot", || {
                    p.delete_snapshot(&extra.id)
                })
                .await?;
            }
            report.pruned.push(extra.name.clone());
            snaps.retain(|s| s.id != extra.id);
        }

        if create {
            if self.opts.dry_run {
                report.outcome = Outcome::WouldCreate;
                // The new one counts towards KEEP.
                let keep = schedule.keep.saturating_sub(1);
                let prune = prune_list(&snaps, keep);
                report.kept = snaps.len() + 1 - prune.len();
                report.pruned.extend(prune.into_iter().map(|s| s.name));
                return Ok(());
            }
            let made = self
                .take_snapshot(server, deployment, slot, &selector, &mut turn)
                .await?;
            report.outcome = Outcome::Created {
                id: made.id.clone(),
            };
            snaps.retain(|s| s.id != made.id);
            snaps.push(made);
        }

        // Retention, only after the slot's snapshot exists and is usable.
        let prune = prune_list(&snaps, schedule.keep);
        let n = prune.len();
        for s in prune {
            if !self.opts.dry_run {
                progress.step(&format!("{deployment}: deleting old snapshot {}", s.name));
                self.call(&mut turn, "delete snapshot", || p.delete_snapshot(&s.id))
                    .await?;
            }
            report.pruned.push(s.name);
        }
        report.kept = snaps.len() - n;
        Ok(())
    }

    /// Takes the slot's snapshot, waits until it is usable and finishes it; returns it as it is
    /// now (available).
    async fn take_snapshot<'t>(
        &'t self,
        server: &Server,
        deployment: &str,
        slot: &str,
        selector: &Labels,
        turn: &mut Turn<'t>,
    ) -> Result<Snapshot> {
        let p = self.p;
        let name = snapshot_name(deployment, slot);
        self.progress
            .step(&format!("{deployment}: taking snapshot {name}"));
        let mut labels = selector.clone();
        labels.insert(LABEL_SLOT, slot);
        let in_slot = |s: &Snapshot| s.labels.get(LABEL_SLOT) == Some(slot);
        // Not retried blindly: a lost answer may still have made the snapshot, and the slot
        // check of the next run finds it.
        let held = match turn.take() {
            Some(t) => Some(t),
            None => self.admission.turn().await,
        };
        let created = p.create_snapshot(server, &name, &labels).await;
        drop(held);
        let (snapshot, pending) = match created {
            Ok(created) => (created.resource, created.pending),
            // The name is taken (AWS: AMI names are unique): by another run taking the same
            // slot right now, whose snapshot this run then waits for, or by something not ours.
            // Only here is the deployment's list read again.
            Err(e) if e.kind() == &ErrorKind::Conflict => {
                let found = only_ours(
                    self.call(turn, "list snapshots", || p.list_snapshots(selector))
                        .await?,
                    selector,
                    p.description().ownership.snapshot,
                )
                .into_iter()
                .find(|s| in_slot(s) && !is_broken(s));
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
        let deadline = super::flow_deadline(self.cfg);
        // Where the provider reports operations, their success means the snapshot is usable
        // (Hetzner); otherwise the snapshot's own state tells (AWS, Scaleway).
        if pending.is_empty() {
            if snapshot.status != SnapshotStatus::Available {
                self.waiter
                    .wait(Watch::Snapshot(snapshot.id.clone(), name.clone()), deadline)
                    .await?;
            }
        } else {
            for op in pending {
                self.waiter.wait(Watch::Op(op), deadline).await?;
            }
        }
        // Where the image id only appears now (DigitalOcean), the provider finds the image and
        // tags it, for all the job's snapshots whose waits ended together at once (one listing,
        // one call per tag); tried again until the deadline, so that a snapshot never stays
        // untagged and unprunable.
        let item = SnapshotToFinish {
            server: server.clone(),
            snapshot,
            labels,
        };
        let mut finished = self.waiter.finish(item, deadline).await?;
        finished.status = SnapshotStatus::Available;
        Ok(finished)
    }
}

/// A snapshot that failed (or is going away) does not fill its slot.
fn is_broken(s: &Snapshot) -> bool {
    matches!(s.status, SnapshotStatus::Other(_))
}

/// What a server needs in this slot, decided from the listing alone.
struct SlotPlan {
    /// Our snapshots of the server's deployment.
    snaps: Vec<Snapshot>,
    /// Ours in this slot that ended unusable: deleted, then the slot is taken again.
    broken: Vec<Snapshot>,
    /// Usable twins in this slot beyond the one every run keeps.
    twins: Vec<Snapshot>,
    /// Whether the slot's snapshot must be taken.
    create: bool,
    /// KEEP.
    keep: u32,
}

impl SlotPlan {
    /// Nothing to create, delete or prune: no call at all.
    fn is_nothing(&self) -> bool {
        !self.create
            && self.broken.is_empty()
            && self.twins.is_empty()
            && prune_list(&self.snaps, self.keep).is_empty()
    }
}

fn plan_slot(schedule: &Schedule, slot: &str, snaps: Vec<Snapshot>) -> SlotPlan {
    let in_slot = |s: &Snapshot| s.labels.get(LABEL_SLOT) == Some(slot);
    let broken: Vec<Snapshot> = snaps
        .iter()
        .filter(|s| in_slot(s) && is_broken(s))
        .cloned()
        .collect();
    let mut filled: Vec<Snapshot> = snaps
        .iter()
        .filter(|s| in_slot(s) && !is_broken(s))
        .cloned()
        .collect();
    filled.sort_by(|a, b| (a.created, &a.id).cmp(&(b.created, &b.id)));
    let twins: Vec<Snapshot> = filled
        .iter()
        .skip(1)
        .filter(|s| s.status == SnapshotStatus::Available)
        .cloned()
        .collect();
    SlotPlan {
        create: filled.is_empty(),
        keep: schedule.keep,
        snaps,
        broken,
        twins,
    }
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
