//! The one trait each cloud implements: small primitives, nothing else.
//!
//! # Contract
//! - A get or find of something missing is `Ok(None)`; a delete of something missing is `Ok(())`.
//! - Everything created carries the labels it was given, so that list/destroy find it again.
//! - No method retries, sleeps or waits: a wait is one status check ([`Provider::operation_status`],
//!   [`Provider::get_server`]); the core loops, backs off and rolls back.
//! - `list_*` return every match (the adapter follows pagination).
//! - Errors carry the right [`crate::ErrorKind`]: `Conflict` for duplicates, `InUse` for a
//!   resource still attached, `RateLimited`/`Transient`/`Timeout` for what may pass.
//!
//! The primitives were drawn against all four clouds (see DESIGN.md's provider facts): Hetzner
//! and DigitalOcean answer with actions ([`Operation`]s), Scaleway and AWS only with states, which
//! the core polls through [`Provider::get_server`].

use async_trait::async_trait;

use crate::describe::Description;
pub use crate::describe::Limits;
use crate::error::{Error, ErrorKind, Result};
use crate::model::{
    Firewall, FirewallRule, FirewallSpec, Labels, NativeSchedule, NativeScheduleSpec, Operation,
    OperationStatus, PublicKeyInfo, Server, ServerSpec, Snapshot, SshKey, SshKeySpec,
};

/// A created resource plus the operations to wait for before it is usable.
#[derive(Debug, Clone)]
pub struct Created<T> {
    /// The resource as the create call returned it.
    pub resource: T,
    /// Operations still running (e.g. Hetzner's `action` and `next_actions`).
    pub pending: Vec<Operation>,
}

impl<T> Created<T> {
    /// A resource with nothing left to wait for (or one that was found, not created).
    pub fn ready(resource: T) -> Self {
        Self {
            resource,
            pending: Vec::new(),
        }
    }
}

/// A snapshot whose operations are done, to be finished by [`Provider::finish_snapshots`]: the
/// server it was taken of, the snapshot as created, and the labels it must carry.
#[derive(Debug, Clone)]
pub struct SnapshotToFinish {
    /// The server the snapshot is of.
    pub server: Server,
    /// The snapshot as [`Provider::create_snapshot`] returned it (DigitalOcean: without an id).
    pub snapshot: Snapshot,
    /// The labels it must carry.
    pub labels: Labels,
}

/// The primitives of one cloud. See the module doc for the contract.
#[async_trait]
pub trait Provider: Send + Sync {
    /// What this provider is and can do: the same static the binary's registry lists.
    fn description(&self) -> &'static Description;

    /// Short lowercase name (`hetzner`), used in messages and the `--provider` flag.
    fn name(&self) -> &'static str {
        self.description().name
    }

    /// Limits checked before any call.
    fn limits(&self) -> Limits {
        self.description().limits
    }

    /// The CLI context or profile whose credentials are in use (`hcloud context "dev"`), so
    /// that output says which account it acts on; `None` when none is in effect.
    fn context(&self) -> Option<String> {
        None
    }

    /// Read-only check, before anything is created, that `server_type`, `image` and `location`
    /// exist here: an unknown one is `ErrorKind::InvalidInput` naming the flag and valid values.
    async fn check_server_options(
        &self,
        server_type: &str,
        image: &str,
        location: &str,
    ) -> Result<()>;

    /// An uploaded key with the same fingerprint as `key`, whoever uploaded it.
    async fn find_ssh_key(&self, key: &PublicKeyInfo) -> Result<Option<SshKey>>;
    /// Keys carrying all of `selector`'s labels.
    async fn list_ssh_keys(&self, selector: &Labels) -> Result<Vec<SshKey>>;
    /// Uploads a key; a duplicate name or fingerprint is `ErrorKind::Conflict`.
    async fn create_ssh_key(&self, spec: &SshKeySpec) -> Result<SshKey>;
    /// Deletes a key.
    async fn delete_ssh_key(&self, id: &str) -> Result<()>;

    /// Firewalls carrying all of `selector`'s labels.
    async fn list_firewalls(&self, selector: &Labels) -> Result<Vec<Firewall>>;
    /// Creates a firewall with the given inbound rules.
    async fn create_firewall(&self, spec: &FirewallSpec) -> Result<Created<Firewall>>;
    /// Makes each protocol/port of `inbound` allow exactly its sources (a re-run with a new
    /// `--ssh-from`); rules for other ports, and any the model cannot express, stay as they are.
    async fn update_firewall_rules(
        &self,
        firewall: &Firewall,
        inbound: &[FirewallRule],
    ) -> Result<Vec<Operation>>;
    /// Deletes a firewall; still applied somewhere is `ErrorKind::InUse`.
    async fn delete_firewall(&self, id: &str) -> Result<()>;
    /// Applies `firewall` to an existing `server`, keeping what else protects it: a re-run that
    /// found the server but had to make a new firewall (the old one was deleted by hand).
    /// Already applied is success.
    async fn attach_firewall(
        &self,
        server: &Server,
        firewall: &Firewall,
    ) -> Result<Vec<Operation>> {
        let _ = (server, firewall);
        Err(unsupported(self.name(), "attaching a firewall to a server"))
    }

    /// Servers carrying all of `selector`'s labels (deleted ones excluded).
    async fn list_servers(&self, selector: &Labels) -> Result<Vec<Server>>;
    /// One server; `None` once it is gone (or terminated, for clouds that keep them visible).
    async fn get_server(&self, id: &str) -> Result<Option<Server>>;
    /// Creates a server with keys, firewalls and labels (and user-data, where the create call
    /// takes it); most clouds also start it.
    async fn create_server(&self, spec: &ServerSpec) -> Result<Created<Server>>;
    /// Completes a server that exists, created by this run or found by a re-run: whatever the
    /// cloud needs after create (Scaleway: the user-data PATCH, then `poweron`). Idempotent:
    /// a server already complete needs nothing. The default is nothing to do.
    async fn complete_server(&self, server: &Server, spec: &ServerSpec) -> Result<Vec<Operation>> {
        let _ = (server, spec);
        Ok(Vec::new())
    }
    /// Starts deleting a server; returns the operations to wait for (may be none).
    async fn delete_server(&self, id: &str) -> Result<Vec<Operation>>;

    /// One check of an operation's status.
    async fn operation_status(&self, op: &Operation) -> Result<OperationStatus>;

    /// One check of many operations, answered in the order given: where the cloud reads several
    /// in one call (Hetzner `GET /actions?id=1&id=2`), a job over many servers polls them all for
    /// the price of a few calls. The default checks them side by side, one call each.
    async fn operation_statuses(&self, ops: &[Operation]) -> Result<Vec<OperationStatus>> {
        futures::future::try_join_all(ops.iter().map(|op| self.operation_status(op))).await
    }

    /// How long a request sent now would wait for the provider's rate budget (the core HTTP
    /// client's gate, fed by the `RateLimit-*` headers), so that a job over many servers slows
    /// down instead of queueing hundreds of requests. The default (no gate) is no wait.
    fn queue_wait(&self) -> std::time::Duration {
        std::time::Duration::ZERO
    }

    /// Replaces a server's labels (used to change its snapshot schedule).
    async fn set_server_labels(&self, server: &Server, labels: &Labels) -> Result<()>;

    /// Snapshots carrying all of `selector`'s labels. Never provider-made backups.
    async fn list_snapshots(&self, selector: &Labels) -> Result<Vec<Snapshot>>;

    /// One snapshot; `None` once it is gone.
    async fn get_snapshot(&self, id: &str) -> Result<Option<Snapshot>>;

    /// Many snapshots, answered in the order given (`None`: gone), so that a job waiting for
    /// many new snapshots checks them in few calls where the cloud lists many at once. The
    /// default reads them one by one.
    async fn get_snapshots(&self, ids: &[String]) -> Result<Vec<Option<Snapshot>>> {
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            out.push(self.get_snapshot(id).await?);
        }
        Ok(out)
    }

    /// Starts a snapshot of `server` named `name` with `labels`.
    async fn create_snapshot(
        &self,
        server: &Server,
        name: &str,
        labels: &Labels,
    ) -> Result<Created<Snapshot>>;

    /// Finishes snapshots whose waits are done, answered in the order given, each on its own
    /// (one not found yet fails alone): where the cloud only tells the image id after the wait
    /// (DigitalOcean), find each image and put its `labels` on it, so that no snapshot stays
    /// untagged; where labels reach more than the image (EC2's EBS snapshots), put them there.
    /// A job finishing many together pays once per batch (one listing, one call per tag). An
    /// error of the whole batch (a listing that failed) is the outer one. Idempotent. The default
    /// answers each snapshot as created.
    async fn finish_snapshots(&self, items: &[SnapshotToFinish]) -> Result<Vec<Result<Snapshot>>> {
        Ok(items.iter().map(|i| Ok(i.snapshot.clone())).collect())
    }

    /// Deletes a snapshot (one carrying our labels; anything else is refused).
    async fn delete_snapshot(&self, id: &str) -> Result<()>;

    /// Turns on the provider's own backups for a server (Hetzner `enable_backup`); a server
    /// whose backups are on already needs nothing (a re-run with `--provider-backups`).
    async fn enable_provider_backups(&self, server: &Server) -> Result<Vec<Operation>> {
        let _ = server;
        Err(unsupported(self.name(), "provider backups"))
    }

    /// The provider's own backups of a server (DigitalOcean's `type: backup` images), which
    /// are never the job's to prune; a provider without them has none.
    async fn list_provider_backups(&self, server: &Server) -> Result<Vec<Snapshot>> {
        let _ = server;
        Ok(Vec::new())
    }

    /// Native snapshot schedules carrying all of `selector`'s labels. A provider without one
    /// has none: the default is an empty list, so that teardown needs no special case.
    async fn list_native_schedules(&self, selector: &Labels) -> Result<Vec<NativeSchedule>> {
        let _ = selector;
        Ok(Vec::new())
    }

    /// Creates the provider's own snapshot schedule for a deployment (AWS: a Data Lifecycle
    /// Manager policy on the deployment's tag).
    async fn create_native_schedule(&self, spec: &NativeScheduleSpec) -> Result<NativeSchedule> {
        let _ = spec;
        Err(unsupported(self.name(), "native snapshot schedules"))
    }

    /// Whether the native engine `engine` schedules this tool's own job (Scaleway's Serverless
    /// Jobs run `bootstrap snapshot run`) rather than taking snapshots itself (AWS DLM): the
    /// job then takes the snapshots of the servers that engine keeps. The default is no.
    fn engine_runs_the_job(&self, engine: &str) -> bool {
        let _ = engine;
        false
    }

    /// Deletes a native snapshot schedule; a missing one is fine.
    async fn delete_native_schedule(&self, id: &str) -> Result<()> {
        let _ = id;
        Err(unsupported(self.name(), "native snapshot schedules"))
    }
}

/// The error for a capability a provider does not have.
pub fn unsupported(provider: &str, what: &str) -> Error {
    Error::new(
        ErrorKind::Unsupported,
        format!("{provider} does not support {what} (yet)"),
    )
}
