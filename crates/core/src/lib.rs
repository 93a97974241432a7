//! # bootstrap-core: the house every provider shares
//!
//! The model ([`model`]), the [`Provider`] trait of small primitives, and the flows written once
//! for all clouds: [`flow::create`] (key and firewall concurrently, then the server, with rollback),
//! [`flow::destroy`], [`flow::list`]. Retries ([`retry`]), action polling ([`poll`]) and the typed
//! HTTP client for hand-written adapters ([`http`]) live here too, so providers stay thin.
//!
//! ```text
//!   bootstrap (src/: CLI, settings, output)
//!        |                 \
//!   providers/hetzner, ...  crates/cloudinit, crates/keys
//!        |
//!   bootstrap-core   (never names a provider)
//! ```

pub mod config_file;
pub mod deadline;
pub mod describe;
pub mod endpoint;
pub mod error;
pub mod flow;
pub mod http;
pub mod model;
pub mod poll;
pub mod progress;
pub mod provider;
pub mod retry;
pub mod schedule;
pub mod secret;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

pub use describe::{ConnectOptions, Defaults, Description, Ownership, OwnershipModel};
pub use error::{Error, ErrorKind, Result};
pub use model::{
    DeploymentName, Firewall, FirewallRule, FirewallSpec, Labels, NativeSchedule,
    NativeScheduleSpec, Operation, OperationStatus, PublicKeyInfo, Server, ServerSpec,
    ServerStatus, Snapshot, SnapshotStatus, SshKey, SshKeySpec,
};
pub use progress::{Progress, Silent};
pub use provider::{Created, Limits, Provider, SnapshotToFinish};
pub use retry::RetryConfig;
pub use secret::Secret;
