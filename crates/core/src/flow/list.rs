//! `list`: deployments found through the `managed-by=bootstrap` labels, from any machine.

use std::collections::BTreeMap;

use serde::Serialize;

use super::FlowConfig;
use crate::deadline::Deadline;
use crate::describe::deployment_of;
use crate::error::Result;
use crate::model::{Labels, Server, only_ours};
use crate::provider::Provider;
use crate::retry::retry;

/// One deployment as found at the provider.
#[derive(Debug, Clone, Serialize)]
pub struct DeploymentSummary {
    /// Deployment name.
    pub name: String,
    /// Its servers (normally one).
    pub servers: Vec<Server>,
    /// Ids of its firewalls.
    pub firewalls: Vec<String>,
    /// Ids of its SSH keys.
    pub ssh_keys: Vec<String>,
}

/// Every deployment that has at least one labelled resource, sorted by name.
pub async fn list(p: &dyn Provider, cfg: &FlowConfig) -> Result<Vec<DeploymentSummary>> {
    Deadline::after(cfg.timeout).scope(list_all(p, cfg)).await
}

async fn list_all(p: &dyn Provider, cfg: &FlowConfig) -> Result<Vec<DeploymentSummary>> {
    let sel = Labels::managed();
    let r = &cfg.retry;
    let own = p.description().ownership;
    let (servers, firewalls, keys) = futures::join!(
        retry(r, "list servers", || p.list_servers(&sel)),
        retry(r, "list firewalls", || p.list_firewalls(&sel)),
        async {
            if p.description().key_resource {
                retry(r, "list ssh keys", || p.list_ssh_keys(&sel)).await
            } else {
                Ok(Vec::new())
            }
        },
    );
    let mut map: BTreeMap<String, DeploymentSummary> = BTreeMap::new();
    for s in only_ours(servers?, &sel, own.server) {
        if let Some(d) = entry(&mut map, deployment_of(own.server, &s.name, &s.labels)) {
            d.servers.push(s);
        }
    }
    for f in only_ours(firewalls?, &sel, own.firewall) {
        if let Some(d) = entry(&mut map, deployment_of(own.firewall, &f.name, &f.labels)) {
            d.firewalls.push(f.id);
        }
    }
    for k in only_ours(keys?, &sel, own.ssh_key) {
        if let Some(d) = entry(&mut map, deployment_of(own.ssh_key, &k.name, &k.labels)) {
            d.ssh_keys.push(k.id);
        }
    }
    Ok(map.into_values().collect())
}

fn entry<'a>(
    map: &'a mut BTreeMap<String, DeploymentSummary>,
    name: Option<&str>,
) -> Option<&'a mut DeploymentSummary> {
    let name = name?.to_owned();
    Some(
        map.entry(name.clone())
            .or_insert_with(|| DeploymentSummary {
                name,
                servers: Vec::new(),
                firewalls: Vec::new(),
                ssh_keys: Vec::new(),
            }),
    )
}
