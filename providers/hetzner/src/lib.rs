//! # bootstrap-hetzner: the Hetzner Cloud adapter
//!
//! Implements [`bootstrap_core::Provider`] for Hetzner Cloud and nothing else: ordering, retries,
//! polling and rollback are the core's. Request bodies are the `hcloud` crate's generated models
//! (so they follow Hetzner's OpenAPI document); requests go through the core's
//! [`bootstrap_core::http::HttpClient`] because the `hcloud` crate's API functions drop response
//! headers, and the `RateLimit-*` headers are what tells us how long to wait.

pub mod config;
pub mod error;
mod schema;

use async_trait::async_trait;
use bootstrap_core::http::{Auth, HttpClient};
use bootstrap_core::model::Protocol;
use bootstrap_core::{
    Created, Error, ErrorKind, Firewall, FirewallRule, FirewallSpec, Labels, Limits, Operation,
    OperationStatus, Provider, PublicKeyInfo, Result, Secret, Server, ServerSpec, Snapshot, SshKey,
    SshKeySpec,
};
use hcloud::models;
use reqwest::Method;
use serde::de::DeserializeOwned;

pub use crate::config::{ConfigError, Credentials, TokenSource, credentials};
pub use crate::error::{ApiError, ErrorCode, is_code};

use crate::schema::{
    ActionEnvelope, ActionsEnvelope, FirewallCreated, FirewallEnvelope, FirewallList, ImageCreated,
    ImageEnvelope, ImageList, ListPage, LocationList, Named, ServerCreated, ServerEnvelope,
    ServerList, ServerTypeList, SshKeyEnvelope, SshKeyList, inbound_rule,
};

/// Hetzner's public API base URL.
pub const DEFAULT_ENDPOINT: &str = "https://api.hetzner.cloud/v1";
/// Hetzner stores at most 32 KiB of user-data.
pub const USER_DATA_MAX_BYTES: usize = 32 * 1024;
/// Largest page Hetzner serves.
const PER_PAGE: i64 = 50;

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
    http: HttpClient,
}

impl Hetzner {
    /// An adapter for `endpoint` (default [`DEFAULT_ENDPOINT`]) with `token`.
    pub fn new(token: Secret, endpoint: Option<&str>) -> Result<Self> {
        let client = HttpClient::default_client()?;
        Ok(Self {
            http: HttpClient::new(
                client,
                endpoint.unwrap_or(DEFAULT_ENDPOINT),
                Auth::Bearer(token),
                "hetzner",
                error::parse,
            ),
        })
    }

    /// Follows `meta.pagination` until the last page.
    async fn list_all<P: ListPage + DeserializeOwned>(
        &self,
        path: &str,
        mut query: Vec<(&str, String)>,
    ) -> Result<Vec<P::Item>> {
        query.push(("per_page", PER_PAGE.to_string()));
        let mut out = Vec::new();
        let mut page = 1;
        loop {
            let mut q = query.clone();
            q.push(("page", page.to_string()));
            let resp: P = self.http.get(path, &q).await?;
            let next = resp.next_page();
            out.extend(resp.items());
            match next {
                Some(n) if n > page => page = n,
                _ => return Ok(out),
            }
        }
    }
}

impl Hetzner {
    /// Whether `image` names a system image or is the number of an image (e.g. a snapshot).
    async fn image_exists(&self, image: &str) -> Result<bool> {
        if image.parse::<u64>().is_ok() {
            let found: Result<ImageEnvelope> =
                self.http.get(&format!("/images/{image}"), &[]).await;
            return Ok(ok_if_missing(found)?.is_some());
        }
        let named = self
            .list_all::<ImageList>("/images", vec![("name", image.to_owned())])
            .await?;
        Ok(!named.is_empty())
    }
}

/// `value` when the API lists it, else the error naming `flag`, the valid names and the
/// `hcloud` command that lists them.
fn one_of(flag: &str, value: &str, known: Vec<Named>, list_cmd: &str) -> Result<()> {
    let names: Vec<String> = known.into_iter().map(|n| n.name).collect();
    if names.iter().any(|n| n == value) {
        return Ok(());
    }
    Err(Error::new(
        ErrorKind::InvalidInput,
        format!(
            "{flag} {value}: Hetzner has no such name; use one of {} (`{list_cmd}`)",
            names.join(", ")
        ),
    ))
}

fn id_of(id: &str) -> Result<i64> {
    id.parse()
        .map_err(|_| Error::new(ErrorKind::InvalidInput, format!("not a Hetzner id: {id:?}")))
}

fn labels_map(l: &Labels) -> std::collections::HashMap<String, String> {
    l.iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// Treats 404 as "already gone".
fn ok_if_missing<T>(r: Result<T>) -> Result<Option<T>> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e),
    }
}

#[async_trait]
impl Provider for Hetzner {
    fn name(&self) -> &'static str {
        "hetzner"
    }

    fn limits(&self) -> Limits {
        Limits {
            user_data_max_bytes: USER_DATA_MAX_BYTES,
        }
    }

    async fn check_server_options(
        &self,
        server_type: &str,
        image: &str,
        location: &str,
    ) -> Result<()> {
        let (types, locations, image_found) = futures::join!(
            self.list_all::<ServerTypeList>("/server_types", vec![]),
            self.list_all::<LocationList>("/locations", vec![]),
            self.image_exists(image),
        );
        one_of(
            "--server-type",
            server_type,
            types?,
            "hcloud server-type list",
        )?;
        one_of("--location", location, locations?, "hcloud location list")?;
        if !image_found? {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "--image {image}: Hetzner has no such image (`hcloud image list --type system` shows the names; a snapshot goes by its number)"
                ),
            ));
        }
        Ok(())
    }

    async fn find_ssh_key(&self, key: &PublicKeyInfo) -> Result<Option<SshKey>> {
        let keys = self
            .list_all::<SshKeyList>("/ssh_keys", vec![("fingerprint", key.md5.clone())])
            .await?;
        Ok(keys.into_iter().next().map(Into::into))
    }

    async fn list_ssh_keys(&self, selector: &Labels) -> Result<Vec<SshKey>> {
        let keys = self
            .list_all::<SshKeyList>(
                "/ssh_keys",
                vec![("label_selector", selector.to_selector())],
            )
            .await?;
        Ok(keys.into_iter().map(Into::into).collect())
    }

    async fn create_ssh_key(&self, spec: &SshKeySpec) -> Result<SshKey> {
        let body = models::CreateSshKeyRequest {
            labels: Some(labels_map(&spec.labels)),
            name: spec.name.clone(),
            public_key: spec.key.openssh.clone(),
        };
        let r: SshKeyEnvelope = self.http.post("/ssh_keys", &body).await?;
        Ok(r.ssh_key.into())
    }

    async fn delete_ssh_key(&self, id: &str) -> Result<()> {
        let path = format!("/ssh_keys/{}", id_of(id)?);
        ok_if_missing(self.http.delete::<serde_json::Value>(&path).await).map(|_| ())
    }

    async fn list_firewalls(&self, selector: &Labels) -> Result<Vec<Firewall>> {
        let fws = self
            .list_all::<FirewallList>(
                "/firewalls",
                vec![("label_selector", selector.to_selector())],
            )
            .await?;
        Ok(fws.into_iter().map(Into::into).collect())
    }

    async fn create_firewall(&self, spec: &FirewallSpec) -> Result<Created<Firewall>> {
        let rules = spec.inbound.iter().map(rule_model).collect();
        let body = models::CreateFirewallRequest {
            apply_to: None,
            labels: Some(labels_map(&spec.labels)),
            name: spec.name.clone(),
            rules: Some(rules),
        };
        let r: FirewallCreated = self.http.post("/firewalls", &body).await?;
        Ok(Created {
            resource: r.firewall.into(),
            pending: r.actions.into_iter().map(Into::into).collect(),
        })
    }

    async fn update_firewall_rules(
        &self,
        firewall: &Firewall,
        inbound: &[FirewallRule],
    ) -> Result<Vec<Operation>> {
        // set_rules replaces the whole list: read it fresh and send back what we do not own.
        let path = format!("/firewalls/{}", id_of(&firewall.id)?);
        let current: FirewallEnvelope = self.http.get(&path, &[]).await?;
        let mut rules = Vec::new();
        for raw in current.firewall.rules {
            if inbound_rule(&raw).is_some_and(|r| inbound.iter().any(|w| w.same_port(&r))) {
                continue;
            }
            rules.push(kept_rule(raw, &firewall.name)?);
        }
        rules.extend(inbound.iter().map(rule_model));
        let r: ActionsEnvelope = self
            .http
            .post(
                &format!("{path}/actions/set_rules"),
                &models::SetRulesRequest { rules },
            )
            .await?;
        Ok(r.actions.into_iter().map(Into::into).collect())
    }

    async fn delete_firewall(&self, id: &str) -> Result<()> {
        let path = format!("/firewalls/{}", id_of(id)?);
        ok_if_missing(self.http.delete::<serde_json::Value>(&path).await).map(|_| ())
    }

    async fn list_servers(&self, selector: &Labels) -> Result<Vec<Server>> {
        let servers = self
            .list_all::<ServerList>("/servers", vec![("label_selector", selector.to_selector())])
            .await?;
        Ok(servers
            .into_iter()
            .map(Server::from)
            .filter(|s| s.status != bootstrap_core::ServerStatus::Deleting)
            .collect())
    }

    async fn get_server(&self, id: &str) -> Result<Option<Server>> {
        let path = format!("/servers/{}", id_of(id)?);
        let r = ok_if_missing(self.http.get::<ServerEnvelope>(&path, &[]).await)?;
        Ok(r.map(|e| e.server.into()))
    }

    async fn create_server(&self, spec: &ServerSpec) -> Result<Created<Server>> {
        let firewalls = spec
            .firewall_ids
            .iter()
            .map(|id| {
                Ok(models::CreateServerRequestFirewalls {
                    firewall: id_of(id)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let body = models::CreateServerRequest {
            automount: None,
            firewalls: Some(firewalls),
            image: spec.image.clone(),
            labels: Some(labels_map(&spec.labels)),
            location: Some(spec.location.clone()),
            name: spec.name.clone(),
            networks: None,
            placement_group: None,
            public_net: Some(Box::new(models::CreateServerRequestPublicNet {
                enable_ipv4: Some(true),
                enable_ipv6: Some(true),
                ipv4: None,
                ipv6: None,
            })),
            server_type: spec.server_type.clone(),
            ssh_keys: Some(spec.ssh_key_ids.clone()),
            start_after_create: Some(true),
            user_data: Some(spec.user_data.clone()),
            volumes: None,
        };
        let r: ServerCreated = self.http.post("/servers", &body).await?;
        let mut pending: Vec<Operation> = vec![r.action.into()];
        pending.extend(r.next_actions.into_iter().map(Operation::from));
        Ok(Created {
            resource: r.server.into(),
            pending,
        })
    }

    async fn delete_server(&self, id: &str) -> Result<Vec<Operation>> {
        let path = format!("/servers/{}", id_of(id)?);
        let r = ok_if_missing(self.http.delete::<ActionEnvelope>(&path).await)?;
        Ok(r.map(|e| vec![e.action.into()]).unwrap_or_default())
    }

    async fn operation_status(&self, op: &Operation) -> Result<OperationStatus> {
        let path = format!("/actions/{}", id_of(&op.id)?);
        let r: ActionEnvelope = self.http.get(&path, &[]).await?;
        Ok(r.action.status())
    }

    async fn set_server_labels(&self, server: &Server, labels: &Labels) -> Result<()> {
        let path = format!("/servers/{}", id_of(&server.id)?);
        let body = models::ReplaceServerRequest {
            labels: Some(labels_map(labels)),
            name: None,
        };
        let _: ServerEnvelope = self.http.send(Method::PUT, &path, &[], Some(&body)).await?;
        Ok(())
    }

    async fn list_snapshots(&self, selector: &Labels) -> Result<Vec<Snapshot>> {
        // `type=snapshot` keeps Hetzner's own backups (type `backup`) out of reach.
        let images = self
            .list_all::<ImageList>(
                "/images",
                vec![
                    ("type", "snapshot".to_owned()),
                    ("label_selector", selector.to_selector()),
                ],
            )
            .await?;
        images.into_iter().map(Snapshot::try_from).collect()
    }

    async fn get_snapshot(&self, id: &str) -> Result<Option<Snapshot>> {
        let path = format!("/images/{}", id_of(id)?);
        let r = ok_if_missing(self.http.get::<ImageEnvelope>(&path, &[]).await)?;
        r.map(|e| Snapshot::try_from(e.image)).transpose()
    }

    async fn create_snapshot(
        &self,
        server: &Server,
        name: &str,
        labels: &Labels,
    ) -> Result<Created<Snapshot>> {
        let path = format!("/servers/{}/actions/create_image", id_of(&server.id)?);
        let body = models::CreateImageFromServerRequest {
            description: Some(name.to_owned()),
            labels: Some(labels_map(labels)),
            r#type: Some(models::create_image_from_server_request::Type::Snapshot),
        };
        let r: ImageCreated = self.http.post(&path, &body).await?;
        Ok(Created {
            resource: r.image.try_into()?,
            pending: vec![r.action.into()],
        })
    }

    async fn delete_snapshot(&self, id: &str) -> Result<()> {
        let path = format!("/images/{}", id_of(id)?);
        ok_if_missing(self.http.delete::<serde_json::Value>(&path).await).map(|_| ())
    }

    async fn enable_provider_backups(&self, server: &Server) -> Result<Vec<Operation>> {
        let path = format!("/servers/{}/actions/enable_backup", id_of(&server.id)?);
        // The operation takes no request body (Hetzner's document refuses one).
        let r: ActionEnvelope = self
            .http
            .send(Method::POST, &path, &[], None::<&()>)
            .await?;
        Ok(vec![r.action.into()])
    }
}

/// One inbound rule as Hetzner's request model.
fn rule_model(r: &FirewallRule) -> models::Rule {
    models::Rule {
        description: Some(Some(r.description.clone())),
        destination_ips: None,
        direction: models::rule::Direction::In,
        port: Some(Some(r.port.to_string())),
        protocol: match r.protocol {
            Protocol::Tcp => models::rule::Protocol::Tcp,
            Protocol::Udp => models::rule::Protocol::Udp,
        },
        source_ips: Some(r.sources.iter().map(ToString::to_string).collect()),
    }
}

/// A rule read back from the API, to send again unchanged: the answer lists both address
/// fields, a request only the one its direction uses.
fn kept_rule(mut raw: serde_json::Value, firewall: &str) -> Result<models::Rule> {
    if let Some(o) = raw.as_object_mut() {
        let unused = match o.get("direction").and_then(|d| d.as_str()) {
            Some("out") => "source_ips",
            _ => "destination_ips",
        };
        o.remove(unused);
    }
    serde_json::from_value(raw).map_err(|e| {
        Error::new(
            ErrorKind::Other,
            format!(
                "firewall {firewall} has a rule bootstrap cannot send back ({e}); change its SSH sources in the Hetzner console"
            ),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_rules_go_back_with_only_their_direction_s_addresses() {
        let out = kept_rule(
            serde_json::json!({"direction":"out","protocol":"icmp","port":null,
                "source_ips":[],"destination_ips":["0.0.0.0/0"],"description":null}),
            "fw",
        )
        .unwrap();
        let v = serde_json::to_value(&out).unwrap();
        assert_eq!(v["destination_ips"], serde_json::json!(["0.0.0.0/0"]));
        assert!(v.get("source_ips").is_none(), "{v}");
        let inbound = kept_rule(
            serde_json::json!({"direction":"in","protocol":"tcp","port":"443",
                "source_ips":["0.0.0.0/0"],"destination_ips":[]}),
            "fw",
        )
        .unwrap();
        let v = serde_json::to_value(&inbound).unwrap();
        assert!(v.get("destination_ips").is_none(), "{v}");
        let unknown = kept_rule(
            serde_json::json!({"direction":"in","protocol":"sctp","port":"9"}),
            "fw",
        );
        assert!(unknown.unwrap_err().to_string().contains("Hetzner console"));
    }
}
