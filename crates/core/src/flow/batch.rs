//! What lets one job act on a thousand servers within a cloud's rate budget: a [`Waiter`] that
//! polls every pending operation or snapshot of the job together (one batched call per round
//! instead of one call per server and check) and finishes the snapshots whose operations ended
//! together (one batched call for those of a round), and an [`Admission`] that lets the job's
//! calls out only as fast as the budget refills (read from the HTTP client's gate), with
//! `--concurrency` as a ceiling.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::{Notify, Semaphore, SemaphorePermit, oneshot};
use tokio::time::Instant;

use super::{FlowConfig, final_error};
use crate::error::{Error, ErrorKind, Result};
use crate::model::{Operation, OperationStatus, Snapshot, SnapshotStatus};
use crate::provider::{Provider, SnapshotToFinish};
use crate::retry::retry;

/// What a server's task waits for.
#[derive(Debug, Clone)]
pub(crate) enum Watch {
    /// An operation to succeed.
    Op(Operation),
    /// A snapshot (its id and name) to be available, where no operation tells.
    Snapshot(String, String),
    /// A snapshot whose operations are done, to be finished (found and labelled).
    Finish(Box<SnapshotToFinish>),
}

impl Watch {
    fn what(&self, provider: &str) -> String {
        match self {
            Watch::Op(op) => format!("{provider} action {} ({})", op.id, op.what),
            Watch::Snapshot(id, name) => format!("snapshot {name} ({id}) to be available"),
            Watch::Finish(f) => format!("snapshot {} to be found and labelled", f.snapshot.name),
        }
    }
}

/// What one check says of a wait.
enum Check {
    /// It ended well (a finish: with the finished snapshot).
    Done(Option<Snapshot>),
    /// Not yet.
    Pending,
}

/// One registered wait.
struct Entry {
    watch: Watch,
    /// The waiting server's deadline.
    deadline: Instant,
    started: Instant,
    /// Checks made so far.
    checks: u32,
    /// When it is due for its next check.
    next: Instant,
    tx: oneshot::Sender<Result<Option<Snapshot>>>,
}

/// Polls every registered wait of a job together. Each wait keeps its own pace (the poll
/// config's rising interval, and at least a tenth of its age, so long snapshots are not polled
/// every few seconds for minutes); a round checks every wait that is due or nearly due, in one
/// batched call per kind.
pub(crate) struct Waiter<'a> {
    p: &'a dyn Provider,
    cfg: &'a FlowConfig,
    entries: Mutex<Vec<Entry>>,
    notify: Notify,
    closed: AtomicBool,
}

impl<'a> Waiter<'a> {
    /// A waiter for `p`'s operations, paced by `cfg.poll` and retried by `cfg.retry`.
    pub(crate) fn new(p: &'a dyn Provider, cfg: &'a FlowConfig) -> Self {
        Self {
            p,
            cfg,
            entries: Mutex::new(Vec::new()),
            notify: Notify::new(),
            closed: AtomicBool::new(false),
        }
    }

    /// Waits until `watch` is done, failed, or `deadline` passed.
    pub(crate) async fn wait(&self, watch: Watch, deadline: Instant) -> Result<()> {
        let first = self.cfg.poll.interval(Duration::ZERO);
        self.register(watch, deadline, first).await.map(|_| ())
    }

    /// Finishes a snapshot whose operations are done, together with the others of the job that
    /// come within the first poll interval; a finish that fails in a way that may pass (the
    /// image not listed yet) is tried again in a later round, until `deadline`.
    pub(crate) async fn finish(
        &self,
        item: SnapshotToFinish,
        deadline: Instant,
    ) -> Result<Snapshot> {
        let name = item.snapshot.name.clone();
        let gather = self.cfg.poll.interval(Duration::ZERO);
        match self
            .register(Watch::Finish(Box::new(item)), deadline, gather)
            .await?
        {
            Some(s) => Ok(s),
            None => Err(Error::new(
                ErrorKind::Other,
                format!("finishing snapshot {name} answered nothing"),
            )),
        }
    }

    /// Registers a wait first checked after `first`, and waits for its answer.
    async fn register(
        &self,
        watch: Watch,
        deadline: Instant,
        first: Duration,
    ) -> Result<Option<Snapshot>> {
        let (tx, rx) = oneshot::channel();
        let now = Instant::now();
        if let Ok(mut e) = self.entries.lock() {
            e.push(Entry {
                watch,
                deadline,
                started: now,
                checks: 0,
                next: now + first,
                tx,
            });
        }
        self.notify.notify_one();
        rx.await.unwrap_or_else(|_| {
            Err(Error::new(
                ErrorKind::Other,
                "the job's poller stopped before the wait ended",
            ))
        })
    }

    /// Says that no more waits come: [`Waiter::run`] returns once the last one ended.
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        self.notify.notify_one();
    }

    /// The polling loop; runs beside the job's servers until [`Waiter::close`].
    pub(crate) async fn run(&self) {
        loop {
            let (due, sleep_to) = self.take_due(Instant::now());
            if due.is_empty() {
                if self.closed.load(Ordering::SeqCst) && self.is_empty() {
                    return;
                }
                match sleep_to {
                    Some(t) => {
                        tokio::select! {
                            () = tokio::time::sleep_until(t) => {}
                            () = self.notify.notified() => {}
                        }
                    }
                    None => self.notify.notified().await,
                }
                continue;
            }
            self.check(due).await;
        }
    }

    fn is_empty(&self) -> bool {
        self.entries.lock().map(|e| e.is_empty()).unwrap_or(true)
    }

    /// Removes and returns the entries due by `now` (or within a quarter of their interval, so
    /// that waits started close together share calls), and when the next one is due.
    fn take_due(&self, now: Instant) -> (Vec<Entry>, Option<Instant>) {
        let Ok(mut entries) = self.entries.lock() else {
            return (Vec::new(), None);
        };
        let Some(first) = entries.iter().map(|e| e.next).min() else {
            return (Vec::new(), None);
        };
        if first > now {
            return (Vec::new(), Some(first));
        }
        let (due, rest): (Vec<Entry>, Vec<Entry>) = entries.drain(..).partition(|e| {
            let slack = self.pace(e) / 4;
            e.next <= now + slack
        });
        *entries = rest;
        (due, None)
    }

    /// The interval after an entry's latest check: the poll config's for its age (5% of it,
    /// within the config's bounds), the same pace as any single wait.
    fn pace(&self, e: &Entry) -> Duration {
        self.cfg
            .poll
            .interval(e.next.saturating_duration_since(e.started))
    }

    /// Checks `due` (operations in one call, snapshots in another, finishes in a third),
    /// answers the finished and puts the others back.
    async fn check(&self, due: Vec<Entry>) {
        let mut ops = Vec::new();
        let mut snaps = Vec::new();
        let mut fins = Vec::new();
        for e in due {
            match e.watch {
                Watch::Op(_) => ops.push(e),
                Watch::Snapshot(..) => snaps.push(e),
                Watch::Finish(_) => fins.push(e),
            }
        }
        if !ops.is_empty() {
            let list: Vec<Operation> = ops
                .iter()
                .filter_map(|e| match &e.watch {
                    Watch::Op(op) => Some(op.clone()),
                    _ => None,
                })
                .collect();
            let what = format!("check {} {} actions", list.len(), self.p.name());
            let answers =
                match retry(&self.cfg.retry, &what, || self.p.operation_statuses(&list)).await {
                    Ok(statuses) if statuses.len() == list.len() => ops
                        .iter()
                        .zip(statuses)
                        .map(|(e, s)| op_done(&e.watch.what(self.p.name()), s))
                        .collect(),
                    Ok(_) => self.one_by_one_ops(&list).await,
                    Err(e) if e.is_retryable() => list.iter().map(|_| Err(copy(&e))).collect(),
                    // One bad operation must not fail the others: look at each alone.
                    Err(_) if list.len() > 1 => self.one_by_one_ops(&list).await,
                    Err(e) => vec![Err(final_error(e))],
                };
            self.settle(ops, answers);
        }
        if !snaps.is_empty() {
            let ids: Vec<String> = snaps
                .iter()
                .filter_map(|e| match &e.watch {
                    Watch::Snapshot(id, _) => Some(id.clone()),
                    _ => None,
                })
                .collect();
            let what = format!("check {} snapshots", ids.len());
            let answers = match retry(&self.cfg.retry, &what, || self.p.get_snapshots(&ids)).await {
                Ok(found) if found.len() == snaps.len() => snaps
                    .iter()
                    .zip(found)
                    .map(|(e, s)| snapshot_done(&e.watch, s))
                    .collect(),
                Ok(_) => {
                    let e = Error::new(
                        ErrorKind::Transient,
                        format!(
                            "{}: the snapshot check answered for other ids",
                            self.p.name()
                        ),
                    );
                    snaps.iter().map(|_| Err(copy(&e))).collect()
                }
                Err(e) => all_failed(&snaps, e),
            };
            self.settle(snaps, answers);
        }
        if !fins.is_empty() {
            let items: Vec<SnapshotToFinish> = fins
                .iter()
                .filter_map(|e| match &e.watch {
                    Watch::Finish(f) => Some(f.as_ref().clone()),
                    _ => None,
                })
                .collect();
            let what = format!("finish {} snapshots", items.len());
            let answers =
                match retry(&self.cfg.retry, &what, || self.p.finish_snapshots(&items)).await {
                    Ok(done) if done.len() == items.len() => done
                        .into_iter()
                        .map(|r| r.map(|s| Check::Done(Some(s))))
                        .collect(),
                    Ok(_) => {
                        let e = Error::new(
                            ErrorKind::Transient,
                            format!("{}: finishing answered for other snapshots", self.p.name()),
                        );
                        fins.iter().map(|_| Err(copy(&e))).collect()
                    }
                    Err(e) => all_failed(&fins, e),
                };
            self.settle(fins, answers);
        }
    }

    async fn one_by_one_ops(&self, list: &[Operation]) -> Vec<Result<Check>> {
        let mut out = Vec::with_capacity(list.len());
        for op in list {
            let what = format!("{} action {} ({})", self.p.name(), op.id, op.what);
            out.push(
                match retry(&self.cfg.retry, &what, || self.p.operation_status(op)).await {
                    Ok(s) => op_done(&what, s),
                    Err(e) if e.is_retryable() => Err(e),
                    Err(e) => Err(final_error(e)),
                },
            );
        }
        out
    }

    /// Answers each entry whose check ended its wait; the others are due again later.
    fn settle(&self, entries: Vec<Entry>, answers: Vec<Result<Check>>) {
        let now = Instant::now();
        let mut back = Vec::new();
        for (mut e, a) in entries.into_iter().zip(answers) {
            let what = e.watch.what(self.p.name());
            let failing = match a {
                Ok(Check::Done(s)) => {
                    let _ = e.tx.send(Ok(s));
                    continue;
                }
                Ok(Check::Pending) => None,
                Err(err) if err.is_retryable() => {
                    tracing::debug!(what, error = %err, "poll failed, polling on");
                    Some(err)
                }
                Err(err) => {
                    let _ = e.tx.send(Err(err));
                    continue;
                }
            };
            if now >= e.deadline {
                let waited = now.saturating_duration_since(e.started).as_secs();
                let err = match failing {
                    Some(f) => f.context(format!(
                        "gave up waiting for {what} after {waited}s, the last check failed"
                    )),
                    None => Error::new(
                        ErrorKind::Timeout,
                        format!(
                            "timed out after {waited}s waiting for {what} (raise --timeout if the provider is slow)"
                        ),
                    ),
                };
                let _ = e.tx.send(Err(err));
                continue;
            }
            e.checks += 1;
            let pace = self.pace(&e);
            e.next = (now + pace).min(e.deadline);
            back.push(e);
        }
        if let Ok(mut entries) = self.entries.lock() {
            entries.extend(back);
        }
    }
}

/// The same failure of a batched call for each of its waits: one that may pass keeps them
/// waiting, any other ends them.
fn all_failed(entries: &[Entry], e: Error) -> Vec<Result<Check>> {
    let e = if e.is_retryable() { e } else { final_error(e) };
    entries.iter().map(|_| Err(copy(&e))).collect()
}

/// Whether an operation's status ends its wait: done on success, an error naming `what` on
/// failure.
fn op_done(what: &str, s: OperationStatus) -> Result<Check> {
    match s {
        OperationStatus::Running => Ok(Check::Pending),
        OperationStatus::Succeeded => Ok(Check::Done(None)),
        OperationStatus::Failed(msg) => Err(Error::new(
            ErrorKind::ActionFailed,
            format!("{what} failed: {msg}"),
        )),
    }
}

/// Whether a snapshot's state ends its wait.
fn snapshot_done(watch: &Watch, s: Option<Snapshot>) -> Result<Check> {
    let name = match watch {
        Watch::Snapshot(_, name) => name.as_str(),
        Watch::Op(op) => op.what.as_str(),
        Watch::Finish(f) => f.snapshot.name.as_str(),
    };
    match s {
        Some(s) if s.status == SnapshotStatus::Available => Ok(Check::Done(None)),
        Some(s) if matches!(s.status, SnapshotStatus::Other(_)) => Err(Error::new(
            ErrorKind::ActionFailed,
            format!("snapshot {name} ended as {:?}", s.status),
        )),
        Some(_) => Ok(Check::Pending),
        None => Err(Error::new(
            ErrorKind::ActionFailed,
            format!("snapshot {name} disappeared"),
        )),
    }
}

/// The same error again, for each wait a failed batched call concerned.
fn copy(e: &Error) -> Error {
    Error::new(e.kind().clone(), e.to_string())
}

/// Lets the job's calls out as fast as the provider's rate budget allows: at most `ceiling`
/// at once, and none while a request sent now would wait at the HTTP client's gate for more
/// than [`HORIZON`] (the budget is spent: the gate would queue, and past its longest wait draw
/// 429s).
pub(crate) struct Admission<'a> {
    p: &'a dyn Provider,
    slots: Semaphore,
}

/// How long a request may wait at the rate-limit gate before the job holds the next ones back.
const HORIZON: Duration = Duration::from_secs(1);

/// How often a held-back call looks at the budget again.
const LOOK_AGAIN: Duration = Duration::from_millis(250);

impl<'a> Admission<'a> {
    /// At most `ceiling` calls at once (`--concurrency`).
    pub(crate) fn new(p: &'a dyn Provider, ceiling: usize) -> Self {
        Self {
            p,
            slots: Semaphore::new(ceiling.max(1)),
        }
    }

    /// Waits for a slot and for the budget; the call goes out while the turn is held.
    pub(crate) async fn turn(&self) -> Option<SemaphorePermit<'_>> {
        // The semaphore is never closed, so this is always a permit.
        let permit = self.slots.acquire().await.ok();
        loop {
            let w = self.p.queue_wait();
            if w <= HORIZON {
                break;
            }
            tracing::debug!(?w, "rate budget spent: holding the job's next call back");
            // The wait is an estimate (without a refill rate, DigitalOcean's, a cautious one):
            // answers to the calls in flight may bring the budget back sooner.
            tokio::time::sleep((w - HORIZON).min(LOOK_AGAIN)).await;
        }
        permit
    }
}
