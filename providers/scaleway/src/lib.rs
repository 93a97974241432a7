//! # bootstrap-scaleway: the Scaleway adapter
//!
//! Implements [`bootstrap_core::Provider`] for Scaleway Instances and nothing else: ordering,
//! retries, polling and rollback are the core's. Scaleway publishes no Rust SDK (the community
//! crates pull reqwest 0.11, a second TLS stack), so the wire types are hand-written serde.
//!
//! # Brief overview
//!
//! - [`credentials`] (`config.rs`) reads `SCW_*` and the `scw` CLI's profiles.
//! - `client.rs` is the one request path: the core's [`bootstrap_core::http::HttpClient`] with
//!   `X-Auth-Token`, no rate-limit headers (jittered backoff on 429), the Instance
//!   (`/instance/v1/zones/{zone}`), Block (`/block/v1/zones/{zone}`) and Marketplace APIs under
//!   one base URL, and both pagination styles (`X-Total-Count`; `total_count`).
//! - [`ApiError`] (`error.rs`) keeps Scaleway's `{type, message, resource, resource_id, fields}`.
//! - One module per resource: `security_group.rs`, `server.rs` (create stopped, then IPs,
//!   user-data and `poweron` in [`Provider::complete_server`]), `snapshot.rs` (Block snapshots of the SBS
//!   root volume), `image.rs` (`--from-snapshot`), `leftovers.rs` (what `terminate` leaves
//!   billed: the SBS volume and flexible IPs), [`jobs`] (the `serverless-jobs` snapshot engine:
//!   a Serverless Jobs definition with a cron schedule and its Secret Manager secret).
//!   `schema.rs` holds the wire types; `cache.rs` what one run passes on between primitives
//!   instead of asking again (a new server, a new group's rules, what an image id is).
//! - No SSH key resource: IAM keys are project-wide (Scaleway installs every project key on
//!   every new server of the project), so the deployment's key goes in through cloud-init only.

mod cache;
pub mod cli;
mod client;
pub mod config;
mod describe;
pub mod error;
mod image;
pub mod jobs;
mod leftovers;
mod schema;
mod security_group;
mod server;
mod snapshot;

use async_trait::async_trait;
use bootstrap_core::model::{LABEL_DEPLOYMENT, LABEL_MANAGED_BY};
use bootstrap_core::provider::unsupported;
use bootstrap_core::{
    Created, Firewall, FirewallRule, FirewallSpec, Labels, NativeSchedule, NativeScheduleSpec,
    Operation, OperationStatus, Provider, PublicKeyInfo, Result, Secret, Server, ServerSpec,
    Snapshot, SshKey, SshKeySpec,
};

use crate::cache::Cache;
use crate::client::Client;

pub use crate::client::DEFAULT_ENDPOINT;
pub use crate::config::{ConfigError, Credentials, credentials};
pub use crate::describe::DESCRIPTION;
pub use crate::error::{ApiError, is_type};

/// The separator of Scaleway's flat tags: `managed-by=bootstrap`.
pub const TAG_SEP: char = '=';
/// Tag on a root volume and IPs naming the server they belong to, so that they can be deleted
/// once the server is gone.
pub const LABEL_SERVER: &str = "bootstrap-server";
/// Size of the SBS root volume of a new server (20 GB).
pub const ROOT_VOLUME_BYTES: u64 = 20_000_000_000;
/// The user-data cap checked offline, in bytes of the cloud-config. Scaleway's API document
/// and user-data guide state none; this is the limit Scaleway's own Terraform provider enforces
/// on an Instance's `cloud_init` (`validation.StringLenBetween(0, 127998)` in
/// `scaleway/terraform-provider-scaleway` `internal/services/instance/server.go`, since commit
/// 88aacf48 of 2019-06-25; its Elastic Metal docs print the same "Max length: 127998
/// characters"). Taken from that source, not measured against the live API.
pub const USER_DATA_MAX_BYTES: usize = 127_998;

/// Zones of the Instance API (its document's `zone` enum).
pub const KNOWN_ZONES: &[&str] = &[
    "fr-par-1", "fr-par-2", "fr-par-3", "nl-ams-1", "nl-ams-2", "nl-ams-3", "pl-waw-1", "pl-waw-2",
    "pl-waw-3", "it-mil-1",
];

/// Defaults for a small self-hosted server.
pub mod defaults {
    /// A current, cheap type that boots from an SBS volume (1 vCPU, 2 GB).
    pub const SERVER_TYPE: &str = "PLAY2-PICO";
    /// Ubuntu 24.04 LTS, by its Marketplace label.
    pub const IMAGE: &str = "ubuntu_noble";
    /// Paris 1.
    pub const ZONE: &str = "fr-par-1";
}

/// Labels as Scaleway tags.
pub(crate) fn tags(l: &Labels) -> Vec<String> {
    l.to_flat_tags(TAG_SEP)
}

/// The one tag sent to a list endpoint: the deployment's when selected, else `managed-by`.
pub(crate) fn filter_tag(selector: &Labels) -> Option<String> {
    [LABEL_DEPLOYMENT, LABEL_MANAGED_BY]
        .iter()
        .find_map(|k| selector.get(k).map(|v| format!("{k}{TAG_SEP}{v}")))
}

/// The Scaleway adapter.
#[derive(Debug)]
pub struct Scaleway {
    client: Client,
    /// What this run resolved or still owes, passed on between primitives.
    cache: Cache,
    /// The scw profile whose values are in use, for output.
    profile: Option<String>,
    /// The secret key again, for the `serverless-jobs` engine's Secret Manager secret.
    secret: Secret,
    /// `create --job-image`: the image the `serverless-jobs` engine runs.
    job_image: Option<String>,
    /// What listings told: root volumes, our snapshots (spares the job a read per server).
    seen: snapshot::Seen,
}

impl Scaleway {
    /// An adapter for `project` in `zone` at `endpoint` (default [`DEFAULT_ENDPOINT`]).
    pub fn new(secret: Secret, project: &str, zone: &str, endpoint: Option<&str>) -> Result<Self> {
        Ok(Self {
            cache: Cache::default(),
            client: Client::new(
                secret.clone(),
                project.to_owned(),
                zone.to_owned(),
                endpoint,
            )?,
            profile: None,
            secret,
            job_image: None,
            seen: snapshot::Seen::default(),
        })
    }

    /// The image the `serverless-jobs` engine's job runs (`create --job-image`).
    #[must_use]
    pub fn with_job_image(mut self, image: Option<String>) -> Self {
        self.job_image = image;
        self
    }

    /// An adapter for what [`credentials`] found; `endpoint` (`--endpoint`) wins over the
    /// profile's `api_url`.
    pub fn with_credentials(creds: &Credentials, endpoint: Option<&str>) -> Result<Self> {
        Ok(Self {
            profile: creds.profile.clone(),
            ..Self::new(
                creds.secret_key.clone(),
                &creds.project_id,
                creds.zone.as_deref().unwrap_or(defaults::ZONE),
                endpoint.or(creds.api_url.as_deref()),
            )?
        })
    }
}

#[async_trait]
impl Provider for Scaleway {
    fn description(&self) -> &'static bootstrap_core::Description {
        &DESCRIPTION
    }

    fn context(&self) -> Option<String> {
        self.profile.as_ref().map(|p| format!("scw profile {p:?}"))
    }

    async fn check_server_options(
        &self,
        server_type: &str,
        image: &str,
        location: &str,
    ) -> Result<()> {
        server::check_options(&self.client, &self.cache, server_type, image, location).await
    }

    // No key resource (see the crate doc): the flows never call these.
    async fn find_ssh_key(&self, _key: &PublicKeyInfo) -> Result<Option<SshKey>> {
        Ok(None)
    }

    async fn list_ssh_keys(&self, _selector: &Labels) -> Result<Vec<SshKey>> {
        Ok(Vec::new())
    }

    async fn create_ssh_key(&self, _spec: &SshKeySpec) -> Result<SshKey> {
        Err(unsupported(
            "scaleway",
            "uploading the SSH key (IAM keys are project-wide: every new server of the project would get it)",
        ))
    }

    async fn delete_ssh_key(&self, _id: &str) -> Result<()> {
        Ok(())
    }

    async fn list_firewalls(&self, selector: &Labels) -> Result<Vec<Firewall>> {
        security_group::list_by_labels(&self.client, selector).await
    }

    async fn create_firewall(&self, spec: &FirewallSpec) -> Result<Created<Firewall>> {
        security_group::create(&self.client, &self.cache, spec).await
    }

    async fn update_firewall_rules(
        &self,
        firewall: &Firewall,
        inbound: &[FirewallRule],
    ) -> Result<Vec<Operation>> {
        security_group::set_inbound_rules(&self.client, firewall, inbound).await
    }

    async fn attach_firewall(&self, server: &Server, fw: &Firewall) -> Result<Vec<Operation>> {
        server::set_security_group(&self.client, server, &fw.id).await?;
        Ok(Vec::new())
    }

    async fn delete_firewall(&self, id: &str) -> Result<()> {
        security_group::delete(&self.client, id).await
    }

    async fn list_servers(&self, selector: &Labels) -> Result<Vec<Server>> {
        server::list_by_labels(&self.client, selector, &self.seen).await
    }

    async fn get_server(&self, id: &str) -> Result<Option<Server>> {
        server::get(&self.client, id).await
    }

    async fn create_server(&self, spec: &ServerSpec) -> Result<Created<Server>> {
        server::create(&self.client, &self.cache, spec).await
    }

    async fn complete_server(&self, server: &Server, spec: &ServerSpec) -> Result<Vec<Operation>> {
        server::complete(&self.client, &self.cache, server, spec).await
    }

    async fn delete_server(&self, id: &str) -> Result<Vec<Operation>> {
        server::delete(&self.client, id).await
    }

    async fn operation_status(&self, _op: &Operation) -> Result<OperationStatus> {
        // No operations are handed out: the core polls server and snapshot states.
        Ok(OperationStatus::Succeeded)
    }

    fn queue_wait(&self) -> std::time::Duration {
        self.client.queue_wait()
    }

    async fn set_server_labels(&self, server: &Server, labels: &Labels) -> Result<()> {
        server::set_labels(&self.client, server, labels).await
    }

    async fn list_snapshots(&self, selector: &Labels) -> Result<Vec<Snapshot>> {
        let listed = snapshot::list_by_labels(&self.client, selector).await?;
        self.seen.snapshots(&listed);
        Ok(listed)
    }

    async fn get_snapshot(&self, id: &str) -> Result<Option<Snapshot>> {
        snapshot::get(&self.client, id).await
    }

    async fn get_snapshots(&self, ids: &[String]) -> Result<Vec<Option<Snapshot>>> {
        snapshot::get_many(&self.client, ids).await
    }

    async fn create_snapshot(
        &self,
        server: &Server,
        name: &str,
        labels: &Labels,
    ) -> Result<Created<Snapshot>> {
        snapshot::create(&self.client, &self.seen, server, name, labels).await
    }

    async fn delete_snapshot(&self, id: &str) -> Result<()> {
        snapshot::delete(&self.client, &self.seen, id).await
    }

    async fn list_native_schedules(&self, selector: &Labels) -> Result<Vec<NativeSchedule>> {
        jobs::list(&self.client, selector).await
    }

    async fn create_native_schedule(&self, spec: &NativeScheduleSpec) -> Result<NativeSchedule> {
        jobs::create(&self.client, &self.secret, self.job_image.as_deref(), spec).await
    }

    async fn delete_native_schedule(&self, id: &str) -> Result<()> {
        jobs::delete(&self.client, id).await
    }

    fn engine_runs_the_job(&self, engine: &str) -> bool {
        // The job definition runs `bootstrap snapshot run`: that run must not skip the servers
        // this engine keeps.
        engine == jobs::ENGINE
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bootstrap_core::DeploymentName;

    #[test]
    fn one_tag_goes_to_the_server_the_deployment_first() {
        let web1 = DeploymentName::parse("web1").unwrap();
        assert_eq!(
            filter_tag(&Labels::deployment(&web1)).as_deref(),
            Some("bootstrap-deployment=web1")
        );
        assert_eq!(
            filter_tag(&Labels::managed()).as_deref(),
            Some("managed-by=bootstrap")
        );
        assert_eq!(filter_tag(&Labels::new()), None);
        assert_eq!(
            tags(&Labels::deployment(&web1)),
            ["bootstrap-deployment=web1", "managed-by=bootstrap"]
        );
    }

    #[test]
    fn ids_are_uuids() {
        assert!(client::is_uuid("3f2a1c9e-0b7d-4e8f-9a6b-5c4d3e2f1a0b"));
        assert!(!client::is_uuid("bootstrap-web1"));
        assert!(client::uuid("../../x").is_err());
    }
}
