//! The flows, written once for every provider: create (with rollback), destroy, list.
//!
//! Providers only implement primitives; the ordering (key and firewall concurrently, then the
//! server), idempotency (find by labels before creating), retries, polling and rollback are here.

mod batch;
mod create;
mod destroy;
mod list;
mod rollback;
mod snapshot;

pub use create::{CreateFailure, CreateOutcome, CreatePlan, create};
pub use destroy::{Removed, Snapshots, Teardown, destroy, rollback_hint, teardown};
pub use list::{DeploymentSummary, list};
pub use snapshot::{
    JobOptions, Outcome, ServerReport, snapshot_name, snapshot_run, sync_native_schedule,
};

use std::collections::BTreeSet;
use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

use crate::deadline::Deadline;
use crate::error::{Error, ErrorKind, Result};
use crate::model::{Operation, OperationStatus};
use crate::poll::{PollConfig, wait_until};
use crate::provider::Provider;
use crate::retry::{RetryConfig, pause, retry};

/// Retry, polling and overall-time settings for one run of a flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowConfig {
    /// Retries of single calls.
    pub retry: RetryConfig,
    /// Polling of actions and states.
    pub poll: PollConfig,
    /// Overall time for the waits of one flow (`--timeout`).
    pub timeout: Duration,
}

impl Default for FlowConfig {
    fn default() -> Self {
        Self {
            retry: RetryConfig::default(),
            poll: PollConfig::default(),
            timeout: Duration::from_secs(600),
        }
    }
}

/// The deadline of the waits of this flow: the [`Deadline`] it runs under, else `cfg.timeout`
/// from now (checked: never a panic, whatever the timeout).
pub(crate) fn flow_deadline(cfg: &FlowConfig) -> Instant {
    Deadline::current().map_or_else(|| crate::deadline::after(cfg.timeout), |d| d.at())
}

/// Kind and id of a resource, used to tell what a run found from what it made.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct ResourceRef {
    /// `server`, `firewall`, `ssh_key`, `snapshot`, `snapshot_schedule`, or `provider_backup`
    /// (deleted by the provider with its server).
    pub kind: &'static str,
    /// Provider id.
    pub id: String,
    /// Name at the provider.
    pub name: String,
}

impl std::fmt::Display for ResourceRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {} ({})",
            self.kind.replace('_', " "),
            self.name,
            self.id
        )
    }
}

/// Ids of resources that already existed, which a rollback must leave alone.
pub type Existing = BTreeSet<(&'static str, String)>;

/// Waits until every operation succeeded; a failed one is `ErrorKind::ActionFailed`. The
/// operations still running are checked together, in one call where the cloud reads several at
/// once ([`Provider::operation_statuses`], Hetzner `GET /actions?id=..&id=..`).
pub(crate) async fn wait_operations(
    p: &dyn Provider,
    ops: &[Operation],
    cfg: &FlowConfig,
    deadline: Instant,
) -> Result<()> {
    if ops.is_empty() {
        return Ok(());
    }
    let names = |ops: &[Operation]| {
        ops.iter()
            .map(|op| format!("{} ({})", op.id, op.what))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let what = format!("{} action {}", p.name(), names(ops));
    let pending = std::sync::Mutex::new(ops.to_vec());
    wait_until(&cfg.poll, deadline, &what, || async {
        let now: Vec<Operation> = pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        // The status check has had its retries: its error ends the wait as itself.
        let statuses = match retry(&cfg.retry, &what, || p.operation_statuses(&now)).await {
            Ok(s) => s,
            Err(e) => return Err(final_error(e)),
        };
        let mut running = Vec::new();
        for (op, status) in now.into_iter().zip(statuses) {
            match status {
                OperationStatus::Running => running.push(op),
                OperationStatus::Succeeded => {}
                OperationStatus::Failed(msg) => {
                    return Err(Error::new(
                        ErrorKind::ActionFailed,
                        format!("{} action {} ({}) failed: {msg}", p.name(), op.id, op.what),
                    ));
                }
            }
        }
        let done = running.is_empty();
        *pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = running;
        Ok(done.then_some(()))
    })
    .await
}

/// An error that has had its retries, so that a poll reports it instead of polling on until a
/// timeout: its kind becomes non-retryable (the message stays the API's own).
pub(crate) fn final_error(e: Error) -> Error {
    if e.is_retryable() {
        let msg = e.to_string();
        Error::new(ErrorKind::Other, msg).with_source(e)
    } else {
        e
    }
}

/// Finds an existing resource, else creates it; written once for keys, firewalls and servers.
/// The flag says whether this call's own create made it: it answered, or its answer was lost
/// and the look-up after it found the resource (the caller checks the run label where the
/// cloud keeps one, see [`crate::model::LABEL_RUN`]).
///
/// A create that failed in a way that may still have happened at the provider (5xx, dropped
/// connection, timeout) is never replayed blindly: the next attempt looks the resource up first.
/// A `Conflict` also leads to a look-up: what it finds was made by someone else (a run racing
/// this one), never counted as this run's; if nothing is found, the name is taken by a
/// resource this tool did not make, and the error says so.
///
/// `looked_up` is the answer of a look-up the caller already made (create's read stage, which
/// asks for everything at once): the first look-up is then not sent again.
pub(crate) async fn find_or_create<T, FF, FFut, CF, CFut>(
    cfg: &RetryConfig,
    what: &str,
    looked_up: Option<Option<T>>,
    mut find: FF,
    mut create: CF,
) -> Result<(T, bool)>
where
    FF: FnMut() -> FFut,
    FFut: Future<Output = Result<Option<T>>>,
    CF: FnMut() -> CFut,
    CFut: Future<Output = Result<T>>,
{
    let mut attempt = 0;
    let mut conflicted = false;
    let mut lost = false;
    let mut skip_find = match looked_up {
        Some(Some(found)) => return Ok((found, false)),
        Some(None) => true,
        None => false,
    };
    loop {
        if !std::mem::take(&mut skip_find)
            && let Some(found) = retry(cfg, what, &mut find).await?
        {
            // Found after a create whose answer was lost: most likely this run's.
            return Ok((found, lost));
        }
        if conflicted {
            return Err(Error::new(
                ErrorKind::Conflict,
                format!(
                    "a {what} with that name already exists but is not this deployment's; rename or delete it, or choose another --name"
                ),
            ));
        }
        match create().await {
            Ok(made) => return Ok((made, true)),
            Err(e) if e.kind() == &ErrorKind::Conflict => conflicted = true,
            Err(e) if e.is_retryable() && attempt < cfg.max_retries => {
                lost = true;
                let wait = cfg.wait_for(e.kind(), attempt, &mut rand::thread_rng());
                tracing::debug!(what, attempt, ?wait, error = %e, "create failed, looking up before retrying");
                pause(what, e, wait).await?;
            }
            Err(e) => return Err(e),
        }
        attempt += 1;
    }
}

#[cfg(test)]
mod tests;
