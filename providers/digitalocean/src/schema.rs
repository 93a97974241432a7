//! Wire types: the parts of DigitalOcean's answers the flows read (field names as in
//! `digitalocean.yaml`), and their conversion into the core model, in one place. Request bodies
//! are built where they are sent, as `serde_json` values named after the document's schemas.

use std::net::IpAddr;

use bootstrap_core::model::Protocol;
use bootstrap_core::{
    Firewall, FirewallRule, Labels, OperationStatus, Server, ServerStatus, Snapshot,
    SnapshotStatus, SshKey,
};
use ipnet::IpNet;
use serde::Deserialize;
use time::OffsetDateTime;

/// The separator of our `key:value` tags.
pub(crate) const TAG_SEP: char = ':';

/// `links.pages` of a list answer; `next` is absent on the last page (and with 20 items or
/// fewer).
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Links {
    #[serde(default)]
    pub pages: Option<Pages>,
}

/// The page links.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Pages {
    #[serde(default)]
    pub next: Option<String>,
}

/// `{action}`.
#[derive(Debug, Deserialize)]
pub(crate) struct ActionEnvelope {
    pub action: Action,
}

/// An action (`/v2/actions/{id}`).
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Action {
    pub id: i64,
    pub status: String,
    #[serde(default, rename = "type")]
    pub kind: String,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub started_at: Option<OffsetDateTime>,
}

impl Action {
    /// Where it stands: `in-progress`, `completed` or `errored`.
    pub(crate) fn status(&self) -> OperationStatus {
        match self.status.as_str() {
            "completed" => OperationStatus::Succeeded,
            "errored" => {
                OperationStatus::Failed(format!("{} action {} errored", self.kind, self.id))
            }
            _ => OperationStatus::Running,
        }
    }

    /// The action as a core operation.
    pub(crate) fn operation(&self) -> bootstrap_core::Operation {
        bootstrap_core::Operation {
            id: self.id.to_string(),
            what: self.kind.clone(),
        }
    }
}

/// `{ssh_key}`.
#[derive(Debug, Deserialize)]
pub(crate) struct SshKeyEnvelope {
    pub ssh_key: WireSshKey,
}

/// An SSH key (`/v2/account/keys`).
#[derive(Debug, Deserialize)]
pub(crate) struct WireSshKey {
    pub id: i64,
    #[serde(default)]
    pub fingerprint: String,
    #[serde(default)]
    pub name: String,
}

impl From<WireSshKey> for SshKey {
    fn from(k: WireSshKey) -> Self {
        // Keys carry no tags: they are ours by name only.
        Self {
            id: k.id.to_string(),
            name: k.name,
            fingerprint: k.fingerprint,
            labels: Labels::new(),
        }
    }
}

/// `{firewall}`.
#[derive(Debug, Deserialize)]
pub(crate) struct FirewallEnvelope {
    pub firewall: WireFirewall,
}

/// A firewall (`/v2/firewalls`).
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct WireFirewall {
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub inbound_rules: Option<Vec<WireRule>>,
    #[serde(default)]
    pub tags: Option<Vec<String>>,
}

/// A firewall rule as the API reports it; `sources`/`destinations` are kept verbatim so that
/// a rule can be sent back exactly (to delete it).
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct WireRule {
    pub protocol: String,
    #[serde(default)]
    pub ports: String,
    #[serde(default)]
    pub sources: Option<serde_json::Value>,
}

impl WireRule {
    /// The rule in the core model: one TCP/UDP port from addresses. "All ports" (`"0"`),
    /// ranges and icmp are not expressible and stay out (updates leave them alone).
    pub(crate) fn inbound(&self) -> Option<FirewallRule> {
        let protocol = match self.protocol.as_str() {
            "tcp" => Protocol::Tcp,
            "udp" => Protocol::Udp,
            _ => return None,
        };
        let port: u16 = self.ports.parse().ok().filter(|p| *p != 0)?;
        let addresses = self
            .sources
            .as_ref()
            .and_then(|s| s.get("addresses"))
            .and_then(|a| a.as_array())
            .map(|a| a.iter().filter_map(|v| v.as_str()).collect::<Vec<_>>())
            .unwrap_or_default();
        Some(FirewallRule {
            protocol,
            port,
            sources: addresses.into_iter().filter_map(parse_net).collect(),
            description: String::new(),
        })
    }
}

/// An address as DigitalOcean writes it: a CIDR, or a bare address meaning a single host.
pub(crate) fn parse_net(s: &str) -> Option<IpNet> {
    s.parse::<IpNet>()
        .ok()
        .or_else(|| s.parse::<IpAddr>().ok().map(IpNet::from))
}

impl From<WireFirewall> for Firewall {
    fn from(f: WireFirewall) -> Self {
        // A firewall has no tags of its own; its `tags` are the droplet tags it applies to.
        // Read as labels, they say which deployment it protects, and ownership checks them.
        let labels = Labels::from_flat_tags(f.tags.iter().flatten(), TAG_SEP);
        Self {
            id: f.id,
            name: f.name,
            labels,
            inbound: f
                .inbound_rules
                .iter()
                .flatten()
                .filter_map(WireRule::inbound)
                .collect(),
        }
    }
}

/// `{droplet}`.
#[derive(Debug, Deserialize)]
pub(crate) struct DropletEnvelope {
    pub droplet: Droplet,
}

/// The answer to `POST /v2/droplets`: the droplet and its create action.
#[derive(Debug, Deserialize)]
pub(crate) struct DropletCreated {
    pub droplet: Droplet,
    #[serde(default)]
    pub links: Option<ActionLinks>,
}

/// `links.actions` of a create answer.
#[derive(Debug, Deserialize)]
pub(crate) struct ActionLinks {
    #[serde(default)]
    pub actions: Vec<ActionLink>,
}

/// One `{id, rel, href}` action link.
#[derive(Debug, Deserialize)]
pub(crate) struct ActionLink {
    pub id: i64,
    #[serde(default)]
    pub rel: String,
}

/// A droplet (`/v2/droplets`).
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Droplet {
    pub id: i64,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub networks: Option<Networks>,
    #[serde(default)]
    pub features: Option<Vec<String>>,
    #[serde(default)]
    pub tags: Option<Vec<String>>,
    /// Orders racing droplets of one deployment.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub created_at: Option<OffsetDateTime>,
    /// The ids of the droplet's snapshot images.
    #[serde(default)]
    pub snapshot_ids: Option<Vec<i64>>,
}

/// `networks`.
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct Networks {
    #[serde(default)]
    pub v4: Vec<Network>,
    #[serde(default)]
    pub v6: Vec<Network>,
}

/// One address of a droplet.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Network {
    pub ip_address: String,
    #[serde(default, rename = "type")]
    pub kind: String,
}

fn public(nets: &[Network]) -> Option<IpAddr> {
    nets.iter()
        .filter(|n| n.kind == "public")
        .find_map(|n| n.ip_address.parse().ok())
}

impl From<Droplet> for Server {
    fn from(d: Droplet) -> Self {
        let nets = d.networks.unwrap_or_default();
        Self {
            id: d.id.to_string(),
            name: d.name,
            status: match d.status.as_str() {
                "new" => ServerStatus::Starting,
                "active" => ServerStatus::Running,
                "off" => ServerStatus::Off,
                "archive" => ServerStatus::Deleting,
                other => ServerStatus::Other(other.to_owned()),
            },
            ipv4: public(&nets.v4),
            ipv6: public(&nets.v6),
            labels: Labels::from_flat_tags(d.tags.iter().flatten(), TAG_SEP),
            created: d.created_at,
        }
    }
}

/// `{image}`.
#[derive(Debug, Deserialize)]
pub(crate) struct ImageEnvelope {
    pub image: Image,
}

/// An image (`/v2/images`, and `/v2/droplets/{id}/snapshots`, which leaves out `tags`).
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Image {
    pub id: i64,
    #[serde(default)]
    pub name: String,
    #[serde(default, rename = "type")]
    pub kind: String,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub created_at: Option<OffsetDateTime>,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub tags: Option<Vec<String>>,
}

impl Image {
    /// Whether it is a snapshot someone took (not a backup DigitalOcean made, nor a base or
    /// custom image).
    pub(crate) fn is_snapshot(&self) -> bool {
        self.kind == "snapshot"
    }

    /// The image as a core snapshot.
    pub(crate) fn snapshot(self) -> Snapshot {
        Snapshot {
            id: self.id.to_string(),
            name: self.name,
            created: self.created_at.unwrap_or(OffsetDateTime::UNIX_EPOCH),
            status: match self.status.as_deref() {
                Some("available") | None => SnapshotStatus::Available,
                Some("NEW" | "new" | "pending") => SnapshotStatus::Creating,
                Some(other) => SnapshotStatus::Other(other.to_owned()),
            },
            labels: Labels::from_flat_tags(self.tags.iter().flatten(), TAG_SEP),
        }
    }
}

/// A region (`/v2/regions`).
#[derive(Debug, Deserialize)]
pub(crate) struct Region {
    pub slug: String,
    #[serde(default)]
    pub available: bool,
}

/// A size (`/v2/sizes`).
#[derive(Debug, Deserialize)]
pub(crate) struct Size {
    pub slug: String,
    #[serde(default)]
    pub available: bool,
    #[serde(default)]
    pub regions: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_ports_ranges_and_icmp_are_not_single_port_rules() {
        let rule = |protocol: &str, ports: &str| WireRule {
            protocol: protocol.into(),
            ports: ports.into(),
            sources: Some(serde_json::json!({"addresses": ["203.0.113.7", "2001:db8::/64"]})),
        };
        let r = rule("tcp", "22").inbound().unwrap();
        assert_eq!(r.port, 22);
        assert_eq!(
            r.sources,
            vec![
                "203.0.113.7/32".parse::<IpNet>().unwrap(),
                "2001:db8::/64".parse().unwrap()
            ]
        );
        assert!(rule("tcp", "0").inbound().is_none(), "\"0\" is all ports");
        assert!(rule("tcp", "8000-9000").inbound().is_none());
        assert!(rule("icmp", "0").inbound().is_none());
        assert_eq!(
            rule("udp", "51820").inbound().unwrap().protocol,
            Protocol::Udp
        );
    }

    #[test]
    fn a_firewall_s_target_tags_are_its_labels() {
        let f: WireFirewall = serde_json::from_value(serde_json::json!({
            "id": "fb6045f1-cf1d-4ca3-bfac-18832663025b",
            "name": "bootstrap-web1",
            "status": "succeeded",
            "inbound_rules": [{"protocol":"tcp","ports":"22","sources":{"addresses":["203.0.113.7/32"]}}],
            "outbound_rules": [{"protocol":"icmp","ports":"0","destinations":{"addresses":["0.0.0.0/0","::/0"]}}],
            "tags": ["bootstrap-deployment:web1"],
            "droplet_ids": []
        }))
        .unwrap();
        let f = Firewall::from(f);
        assert_eq!(f.labels.deployment_name(), Some("web1"));
        assert_eq!(f.inbound.len(), 1);
    }
}
