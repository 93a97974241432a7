//! # bootstrap-digitalocean: the DigitalOcean adapter
//!
//! Implements [`bootstrap_core::Provider`] for DigitalOcean and nothing else: ordering, retries,
//! polling and rollback are the core's. No Rust client is maintained for this API (the
//! generated ones pull a second HTTP stack or cover only droplets and keys), so the wire types
//! are hand-written and cover only what the flows use.
//!
//! # Brief overview
//!
//! - [`credentials`] (`config.rs`) reads the token and endpoint like doctl
//!   (`DIGITALOCEAN_TOKEN`, `DIGITALOCEAN_ACCESS_TOKEN`, doctl's `config.yaml` contexts).
//! - `client.rs` is the one request path: the core's [`bootstrap_core::http::HttpClient`] with
//!   DigitalOcean's origin, bearer token, `ratelimit-*` reading and error parser, and
//!   `list_all` over `links.pages.next`.
//! - [`ApiError`] (`error.rs`) keeps the error id and request id as the source of the core
//!   error.
//! - One module per resource: `ssh_key.rs`, `firewall.rs`, `server.rs` (droplets), `image.rs`
//!   (snapshots, backups), `tags.rs`, `action.rs`; `schema.rs` holds the wire types.
//! - Ownership (see [`DESCRIPTION`]): droplets and images carry `key:value` tags; firewalls and
//!   keys cannot, and are ours by their `bootstrap-<name>` name (a firewall's target tag is
//!   read as its labels, so it must agree too).
//! - [`DigitalOcean`] below delegates each [`Provider`] method to its resource module, and
//!   remembers two things the API will not list cheaply: the ids of the SSH keys it saw on
//!   droplets or uploaded (listing keys is limited to 10 requests a minute, so keys are read
//!   by id), and the tags of the droplets it deleted (removed once nothing carries them).

mod action;
mod client;
pub mod config;
mod describe;
pub mod error;
mod firewall;
mod image;
mod schema;
mod server;
mod ssh_key;
mod tags;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use async_trait::async_trait;
use bootstrap_core::model::{LABEL_DEPLOYMENT, LABEL_SSH_KEY};
use bootstrap_core::{
    Created, Firewall, FirewallRule, FirewallSpec, Labels, Operation, OperationStatus, Provider,
    PublicKeyInfo, Result, Secret, Server, ServerSpec, Snapshot, SnapshotToFinish, SshKey,
    SshKeySpec,
};

use crate::client::Client;

pub use crate::config::{ConfigError, Credentials, TokenSource, credentials};
pub use crate::describe::DESCRIPTION;
pub use crate::error::{ApiError, api_error, is_id};

/// DigitalOcean's public API origin (paths carry `/v2`).
pub const DEFAULT_ENDPOINT: &str = "https://api.digitalocean.com";
/// DigitalOcean accepts at most 64 KiB of user-data.
pub const USER_DATA_MAX_BYTES: usize = 64 * 1024;

/// Defaults that fit a small self-hosted server.
pub mod defaults {
    /// 1 vCPU, 1 GB.
    pub const SIZE: &str = "s-1vcpu-1gb";
    /// Ubuntu 24.04 LTS.
    pub const IMAGE: &str = "ubuntu-24-04-x64";
    /// Frankfurt, Germany.
    pub const REGION: &str = "fra1";
}

/// The DigitalOcean adapter.
#[derive(Debug)]
pub struct DigitalOcean {
    client: Client,
    /// Ids of SSH keys seen on droplets (their `bootstrap-ssh-key` tag) or uploaded.
    keys: Mutex<BTreeSet<String>>,
    /// Tags of droplets, by droplet id, as last seen.
    droplet_tags: Mutex<BTreeMap<String, Vec<String>>>,
    /// Tags of droplets this adapter deleted, to remove once nothing carries them.
    dropped_tags: Mutex<BTreeSet<String>>,
    /// What listings told: droplets' images, our snapshots, tags that exist (spares a job
    /// reads and finds its new images in one listing).
    seen: image::Seen,
    /// The doctl context whose token is in use, for output.
    context: Option<String>,
}

/// The tag that records deployment `name`'s key by its MD5 fingerprint (`md5` empty: the
/// prefix of all of them). Tags allow `:`, and the fingerprint is colon-hex.
fn key_fp_tag(name: &str, md5: &str) -> String {
    format!(
        "bootstrap-key-fp{sep}{name}{sep}{md5}",
        sep = schema::TAG_SEP
    )
}

impl DigitalOcean {
    /// An adapter for `endpoint` (the origin, default [`DEFAULT_ENDPOINT`]) with `token`.
    pub fn new(token: Secret, endpoint: Option<&str>) -> Result<Self> {
        Ok(Self {
            client: Client::new(token, endpoint)?,
            keys: Mutex::default(),
            droplet_tags: Mutex::default(),
            dropped_tags: Mutex::default(),
            seen: image::Seen::default(),
            context: None,
        })
    }

    /// An adapter for what [`credentials`] found; `endpoint` (the tool's own override, e.g.
    /// `--endpoint`) wins over doctl's `api-url`.
    pub fn with_credentials(creds: &Credentials, endpoint: Option<&str>) -> Result<Self> {
        let context = match &creds.token_source {
            config::TokenSource::Context { name, .. } => Some(name.clone()),
            config::TokenSource::Env(_) => None,
        };
        Ok(Self {
            context,
            ..Self::new(creds.token.clone(), endpoint.or(creds.endpoint.as_deref()))?
        })
    }

    /// Remembers what a droplet tells about its key and tags.
    fn saw(&self, s: &Server) {
        if let Some(k) = s.labels.get(LABEL_SSH_KEY)
            && let Ok(mut keys) = self.keys.lock()
        {
            keys.insert(k.to_owned());
        }
        if let Ok(mut t) = self.droplet_tags.lock() {
            t.insert(s.id.clone(), s.labels.to_flat_tags(schema::TAG_SEP));
        }
    }

    fn saw_key(&self, k: &SshKey) {
        if let Ok(mut keys) = self.keys.lock() {
            keys.insert(k.id.clone());
        }
    }
}

#[async_trait]
impl Provider for DigitalOcean {
    fn description(&self) -> &'static bootstrap_core::Description {
        &DESCRIPTION
    }

    fn context(&self) -> Option<String> {
        self.context
            .as_ref()
            .map(|c| format!("doctl context {c:?}"))
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
        let found = ssh_key::get(&self.client, &key.md5).await?;
        if let Some(k) = &found {
            self.saw_key(k);
        }
        Ok(found)
    }

    /// Never lists keys (10 requests a minute): reads by id every key the deployment's droplets
    /// name, and every key this adapter saw or uploaded. The flows keep those ours by name.
    ///
    /// When neither names one (a teardown that died after deleting the droplet, or a create
    /// killed right after uploading the key), the keys come from the account's tags: the
    /// `bootstrap-ssh-key:<id>` tags, which outlive the droplet until its key is deleted (see
    /// [`Provider::delete_ssh_key`]), and the deployment's `bootstrap-key-fp:<name>:<md5>` tag,
    /// made before the key is uploaded (see [`Provider::create_ssh_key`]). Such a tag whose key
    /// is gone or is not `bootstrap-<name>` marks nothing of ours: it is deleted on the way.
    async fn list_ssh_keys(&self, selector: &Labels) -> Result<Vec<SshKey>> {
        for s in server::list_by_labels(&self.client, selector, &self.seen).await? {
            self.saw(&s);
        }
        let mut ids: Vec<String> = self
            .keys
            .lock()
            .map(|k| k.iter().cloned().collect())
            .unwrap_or_default();
        let mut stale = Vec::new();
        if let Some(d) = selector.deployment_name().filter(|_| ids.is_empty()) {
            let by_id = format!("{LABEL_SSH_KEY}{}", schema::TAG_SEP);
            let by_fp = key_fp_tag(d, "");
            for t in tags::list_prefixed(&self.client, "bootstrap-").await? {
                if let Some(id) = t.strip_prefix(&by_id) {
                    ids.push(id.to_owned());
                } else if let Some(fp) = t.strip_prefix(&by_fp) {
                    match ssh_key::get(&self.client, fp).await? {
                        Some(k) if k.name == format!("bootstrap-{d}") => ids.push(k.id),
                        _ => stale.push(t),
                    }
                }
            }
        }
        for t in stale {
            tags::delete_if_unused(&self.client, &t).await?;
        }
        ids.sort();
        ids.dedup();
        let mut out = Vec::new();
        for id in ids.iter().filter(|id| id.parse::<i64>().is_ok()) {
            if let Some(k) = ssh_key::get(&self.client, id).await? {
                out.push(k);
            }
        }
        Ok(out)
    }

    /// Tags the deployment's key fingerprint (`bootstrap-key-fp:<name>:<md5>`) before the
    /// upload: keys carry no tags, and a run killed right after the upload leaves no droplet
    /// naming the key, so that tag is how `destroy` still finds it. A failed upload that left
    /// no key takes its tag back.
    async fn create_ssh_key(&self, spec: &SshKeySpec) -> Result<SshKey> {
        let tag = spec
            .labels
            .deployment_name()
            .map(|d| key_fp_tag(d, &spec.key.md5));
        if let Some(t) = &tag {
            tags::ensure(&self.client, t).await?;
        }
        match ssh_key::create(&self.client, spec).await {
            Ok(k) => {
                self.saw_key(&k);
                Ok(k)
            }
            Err(e) => {
                if let Some(t) = &tag
                    && let Ok(None) = ssh_key::get(&self.client, &spec.key.md5).await
                {
                    // Best effort: a leftover tag is found and deleted by the next teardown.
                    let _ = tags::delete_if_unused(&self.client, t).await;
                }
                Err(e)
            }
        }
    }

    /// Deletes the key, then its `bootstrap-ssh-key:<id>` tag and, for a key named
    /// `bootstrap-<name>`, its `bootstrap-key-fp` tag and (once its firewall is gone) the
    /// deployment's tag, each only once nothing carries it: the last trace of a deployment whose teardown or create died half-way.
    async fn delete_ssh_key(&self, id: &str) -> Result<()> {
        let key = ssh_key::get(&self.client, id).await?;
        ssh_key::delete(&self.client, id).await?;
        let id_tag = format!("{LABEL_SSH_KEY}{}{id}", schema::TAG_SEP);
        let Some((k, d)) = key
            .as_ref()
            .and_then(|k| Some((k, k.name.strip_prefix("bootstrap-")?)))
        else {
            tags::delete_if_unused(&self.client, &id_tag).await?;
            return Ok(());
        };
        // The key's two tags and the firewall listing side by side: none needs another.
        let fp_tag = key_fp_tag(d, &k.fingerprint);
        let (by_id, by_fp, firewalls) = futures::join!(
            tags::delete_if_unused(&self.client, &id_tag),
            tags::delete_if_unused(&self.client, &fp_tag),
            firewall::list(&self.client),
        );
        by_id?;
        by_fp?;
        let tag = format!("{LABEL_DEPLOYMENT}{}{d}", schema::TAG_SEP);
        let targeted = firewalls?
            .iter()
            .any(|f| f.labels.to_flat_tags(schema::TAG_SEP).contains(&tag));
        if !targeted && tags::check(&tag).is_ok() {
            tags::delete_if_unused(&self.client, &tag).await?;
        }
        Ok(())
    }

    async fn list_firewalls(&self, _selector: &Labels) -> Result<Vec<Firewall>> {
        firewall::list(&self.client).await
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

    /// Deletes the firewall, then the tags it targeted and those of the droplets deleted
    /// before it, each only once nothing carries it.
    /// The firewall applies to the deployment's tag, which every droplet of it carries: a new
    /// firewall covers the server as soon as it exists, nothing to attach.
    async fn attach_firewall(&self, server: &Server, fw: &Firewall) -> Result<Vec<Operation>> {
        let _ = (server, fw);
        Ok(Vec::new())
    }

    async fn delete_firewall(&self, id: &str) -> Result<()> {
        firewall::delete(&self.client, id).await?;
        let dropped: Vec<String> = self
            .dropped_tags
            .lock()
            .map(|t| t.iter().cloned().collect())
            .unwrap_or_default();
        // A key's tag stays until its key goes: it is how a later teardown finds the key.
        let key_tag = format!("{LABEL_SSH_KEY}{}", schema::TAG_SEP);
        // Each tag on its own, all side by side.
        let dropped: Vec<String> = dropped
            .into_iter()
            .filter(|t| !t.starts_with(&key_tag))
            .collect();
        let gone = futures::future::join_all(
            dropped
                .iter()
                .map(|t| tags::delete_if_unused(&self.client, t)),
        )
        .await;
        let mut first_error = None;
        for (t, r) in dropped.iter().zip(gone) {
            match r {
                Ok(true) => {
                    if let Ok(mut d) = self.dropped_tags.lock() {
                        d.remove(t);
                    }
                }
                Ok(false) => {}
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    async fn list_servers(&self, selector: &Labels) -> Result<Vec<Server>> {
        let servers = server::list_by_labels(&self.client, selector, &self.seen).await?;
        for s in &servers {
            self.saw(s);
        }
        Ok(servers)
    }

    async fn get_server(&self, id: &str) -> Result<Option<Server>> {
        let s = server::get(&self.client, id).await?;
        if let Some(s) = &s {
            self.saw(s);
        }
        Ok(s)
    }

    async fn create_server(&self, spec: &ServerSpec) -> Result<Created<Server>> {
        let c = server::create(&self.client, spec).await?;
        self.saw(&c.resource);
        Ok(c)
    }

    async fn delete_server(&self, id: &str) -> Result<Vec<Operation>> {
        let ops = server::delete(&self.client, id).await?;
        let tags = self
            .droplet_tags
            .lock()
            .ok()
            .and_then(|mut t| t.remove(id))
            .unwrap_or_default();
        if let Ok(mut d) = self.dropped_tags.lock() {
            d.extend(tags);
        }
        Ok(ops)
    }

    async fn operation_status(&self, op: &Operation) -> Result<OperationStatus> {
        action::status(&self.client, op).await
    }

    /// The account's action listing, newest first, instead of one read per action.
    async fn operation_statuses(&self, ops: &[Operation]) -> Result<Vec<OperationStatus>> {
        action::statuses(&self.client, ops).await
    }

    fn queue_wait(&self) -> std::time::Duration {
        self.client.queue_wait()
    }

    async fn set_server_labels(&self, server: &Server, labels: &Labels) -> Result<()> {
        server::set_labels(&self.client, server, labels).await
    }

    async fn list_snapshots(&self, selector: &Labels) -> Result<Vec<Snapshot>> {
        let listed = image::list_by_labels(&self.client, selector).await?;
        self.seen.snapshots(&listed);
        Ok(listed)
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

    async fn finish_snapshots(&self, items: &[SnapshotToFinish]) -> Result<Vec<Result<Snapshot>>> {
        image::finish_many(&self.client, &self.seen, items).await
    }

    async fn delete_snapshot(&self, id: &str) -> Result<()> {
        let on_a_droplet = |tag: &str| {
            self.droplet_tags
                .lock()
                .is_ok_and(|d| d.values().any(|t| t.iter().any(|x| x == tag)))
        };
        image::delete(&self.client, &self.seen, id, &on_a_droplet).await
    }

    /// The droplet's backups (`GET /v2/droplets/{id}/backups`). They do not outlive it:
    /// "Destroying a Droplet destroys the backups along with it"
    /// (<https://docs.digitalocean.com/products/images/backups/support/>), which is why the
    /// teardown lists them first and reports them with the droplet.
    async fn list_provider_backups(&self, server: &Server) -> Result<Vec<Snapshot>> {
        image::backups(&self.client, server).await
    }

    async fn enable_provider_backups(&self, server: &Server) -> Result<Vec<Operation>> {
        image::set_backups(&self.client, server, false).await
    }
}
