//! # bootstrap-hetzner: the Hetzner Cloud adapter
//!
//! Implements [`bootstrap_core::Provider`] for Hetzner Cloud and nothing else: ordering, retries,
//! polling and rollback are the core's.
//!
//! # Brief overview
//!
//! - [`credentials`] (`config.rs`) reads the token and endpoint the way the `hcloud` CLI does
//!   (`HCLOUD_TOKEN`, its `cli.toml` contexts); [`Hetzner::new`] takes them.
//! - `client.rs` is the one request path: the core's [`bootstrap_core::http::HttpClient`] with
//!   Hetzner's base URL, bearer token and error parser, typed get/post/put/delete helpers and
//!   `list_all` over `meta.pagination`. The core's client is used rather than the `hcloud`
//!   crate's API functions because those drop response headers, and the `RateLimit-*` headers are
//!   what tells us how long to wait.
//! - [`ApiError`] (`error.rs`) keeps Hetzner's error code and `X-Correlation-Id` as the source of
//!   the core error; [`is_code`] tests codes, never message text.
//! - One module per resource with the same verbs (`get`, `list_by_labels`, `create`, `delete`
//!   where they apply): `ssh_key.rs`, `firewall.rs`, `server.rs`, `image.rs` (snapshots,
//!   backups, image checks), `action.rs` (operation status). `selector.rs` writes Hetzner's
//!   label selectors. `schema.rs` holds the answers' wire types and their conversion into the
//!   core model; request bodies are the `hcloud` crate's generated models, so they follow
//!   Hetzner's OpenAPI document.
//! - [`Hetzner`] below only delegates each [`Provider`] method to its resource module.

mod action;
mod client;
pub mod config;
mod describe;
pub mod error;
mod firewall;
mod image;
mod schema;
mod selector;
mod server;
mod ssh_key;

use async_trait::async_trait;
use bootstrap_core::{
    Created, Firewall, FirewallRule, FirewallSpec, Labels, Operation, OperationStatus, Provider,
    PublicKeyInfo, Result, Secret, Server, ServerSpec, Snapshot, SshKey, SshKeySpec,
};

use crate::client::Client;

pub use crate::config::{ConfigError, Credentials, TokenSource, credentials};
pub use crate::describe::DESCRIPTION;
pub use crate::error::{ApiError, ErrorCode, is_code};

/// Hetzner's public API base URL.
pub const DEFAULT_ENDPOINT: &str = "https://api.hetzner.cloud/v1";
/// Hetzner stores at most 32 KiB of user-data.
pub const USER_DATA_MAX_BYTES: usize = 32 * 1024;

/// Defaults that fit a small self-hosted server (names checked against Hetzner's OpenAPI document).
pub mod defaults {
    /// A current, cheap shared-vCPU x86 type.
    pub const SERVER_TYPE: &str = "cpx22";
    /// Ubuntu 24.04 LTS.
    pub const IMAGE: &str = "ubuntu-24.04";
    /// Falkenstein, Germany.
    pub const LOCATION: &str = "fsn1";
}

/// The Hetzner Cloud adapter.
#[derive(Debug)]
pub struct Hetzner {
    client: Client,
    /// The hcloud context whose token is in use, for output.
    context: Option<String>,
}

impl Hetzner {
    /// An adapter for `endpoint` (default [`DEFAULT_ENDPOINT`]) with `token`.
    pub fn new(token: Secret, endpoint: Option<&str>) -> Result<Self> {
        Ok(Self {
            client: Client::new(token, endpoint)?,
            context: None,
        })
    }

    /// An adapter for what [`credentials`] found; `endpoint` (the tool's own override, e.g.
    /// `--endpoint`) wins over the `hcloud` CLI's endpoint setting.
    pub fn with_credentials(creds: &Credentials, endpoint: Option<&str>) -> Result<Self> {
        Ok(Self {
            context: creds.context.clone(),
            ..Self::new(creds.token.clone(), endpoint.or(creds.endpoint.as_deref()))?
        })
    }
}

#[async_trait]
impl Provider for Hetzner {
    fn description(&self) -> &'static bootstrap_core::Description {
        &DESCRIPTION
    }

    fn context(&self) -> Option<String> {
        self.context
            .as_ref()
            .map(|c| format!("hcloud context {c:?}"))
    }

    async fn check_server_options(
        &self,
        server_type: &str,
        image: &str,
        location: &str,
    ) -> Result<()> {
        server::check_options(&self.client, server_type, image, location).await
    }

    async fn find_ssh_key(&self, key: &PublicKeyInfo) -> Result<Option<SshKey>> {
        ssh_key::get_by_fingerprint(&self.client, &key.md5).await
    }

    async fn list_ssh_keys(&self, selector: &Labels) -> Result<Vec<SshKey>> {
        ssh_key::list_by_labels(&self.client, selector).await
    }

    async fn create_ssh_key(&self, spec: &SshKeySpec) -> Result<SshKey> {
        ssh_key::create(&self.client, spec).await
    }

    async fn delete_ssh_key(&self, id: &str) -> Result<()> {
        ssh_key::delete(&self.client, id).await
    }

    async fn list_firewalls(&self, selector: &Labels) -> Result<Vec<Firewall>> {
        firewall::list_by_labels(&self.client, selector).await
    }

    async fn create_firewall(&self, spec: &FirewallSpec) -> Result<Created<Firewall>> {
        firewall::create(&self.client, spec).await
    }

    async fn update_firewall_rules(
        &self,
        firewall: &Firewall,
        inbound: &[FirewallRule],
    ) -> Result<Vec<Operation>> {
        firewall::set_inbound_rules(&self.client, firewall, inbound).await
    }

    async fn delete_firewall(&self, id: &str) -> Result<()> {
        firewall::delete(&self.client, id).await
    }

    async fn attach_firewall(&self, server: &Server, fw: &Firewall) -> Result<Vec<Operation>> {
        firewall::apply_to_server(&self.client, fw, server).await
    }

    async fn list_servers(&self, selector: &Labels) -> Result<Vec<Server>> {
        server::list_by_labels(&self.client, selector).await
    }

    async fn get_server(&self, id: &str) -> Result<Option<Server>> {
        server::get(&self.client, id).await
    }

    async fn create_server(&self, spec: &ServerSpec) -> Result<Created<Server>> {
        server::create(&self.client, spec).await
    }

    async fn delete_server(&self, id: &str) -> Result<Vec<Operation>> {
        server::delete(&self.client, id).await
    }

    async fn operation_statuses(&self, ops: &[Operation]) -> Result<Vec<OperationStatus>> {
        action::statuses(&self.client, ops).await
    }

    fn queue_wait(&self) -> std::time::Duration {
        self.client.queue_wait()
    }

    async fn operation_status(&self, op: &Operation) -> Result<OperationStatus> {
        action::status(&self.client, op).await
    }

    async fn set_server_labels(&self, server: &Server, labels: &Labels) -> Result<()> {
        server::set_labels(&self.client, server, labels).await
    }

    async fn list_snapshots(&self, selector: &Labels) -> Result<Vec<Snapshot>> {
        image::list_by_labels(&self.client, selector).await
    }

    async fn get_snapshot(&self, id: &str) -> Result<Option<Snapshot>> {
        image::get(&self.client, id).await
    }

    async fn create_snapshot(
        &self,
        server: &Server,
        name: &str,
        labels: &Labels,
    ) -> Result<Created<Snapshot>> {
        image::create(&self.client, server, name, labels).await
    }

    async fn delete_snapshot(&self, id: &str) -> Result<()> {
        image::delete(&self.client, id).await
    }

    async fn enable_provider_backups(&self, server: &Server) -> Result<Vec<Operation>> {
        image::enable_backups(&self.client, server).await
    }
}
