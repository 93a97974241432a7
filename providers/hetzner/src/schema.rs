//! Response shapes, read tolerantly: only the fields the adapter uses, so that a field Hetzner
//! adds or a fake leaves out does not break decoding. Request bodies are the `hcloud` crate's
//! models; these are the answers, converted into the core model in one place.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};

use bootstrap_core::model::Protocol;
use bootstrap_core::{
    Firewall, FirewallRule, Labels, Operation, OperationStatus, Server, ServerStatus, Snapshot,
    SnapshotStatus, SshKey,
};
use ipnet::IpNet;
use serde::Deserialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// A list response: its items and the next page number, if any.
pub(crate) trait ListPage {
    type Item;
    fn items(self) -> Vec<Self::Item>;
    fn next_page(&self) -> Option<i64>;
    /// The last page, where the answer tells it (null on the last page itself).
    fn last_page(&self) -> Option<i64>;
}

#[derive(Debug, Deserialize, Default)]
pub(crate) struct Meta {
    #[serde(default)]
    pagination: Option<Pagination>,
}

#[derive(Debug, Deserialize)]
struct Pagination {
    #[serde(default)]
    next_page: Option<i64>,
    #[serde(default)]
    last_page: Option<i64>,
}

macro_rules! list_page {
    ($name:ident, $field:ident, $item:ty) => {
        #[derive(Debug, Deserialize)]
        pub(crate) struct $name {
            $field: Vec<$item>,
            #[serde(default)]
            meta: Meta,
        }
        impl ListPage for $name {
            type Item = $item;
            fn items(self) -> Vec<$item> {
                self.$field
            }
            fn next_page(&self) -> Option<i64> {
                self.meta.pagination.as_ref().and_then(|p| p.next_page)
            }
            fn last_page(&self) -> Option<i64> {
                self.meta.pagination.as_ref().and_then(|p| p.last_page)
            }
        }
    };
}

list_page!(SshKeyList, ssh_keys, SshKeyW);
list_page!(FirewallList, firewalls, FirewallW);
list_page!(ServerList, servers, ServerW);
list_page!(ImageList, images, ImageW);
list_page!(ServerTypeList, server_types, Named);
list_page!(LocationList, locations, Named);

/// Anything listed by name (server types, locations): only the name is read.
#[derive(Debug, Deserialize)]
pub(crate) struct Named {
    pub name: String,
}

#[derive(Debug, Deserialize)]
pub(crate) struct ImageW {
    id: i64,
    #[serde(default)]
    description: Option<String>,
    created: String,
    status: String,
    #[serde(default)]
    labels: HashMap<String, String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct ImageEnvelope {
    pub image: ImageW,
}

#[derive(Debug, Deserialize)]
pub(crate) struct ImageCreated {
    pub image: ImageW,
    pub action: ActionW,
}

impl TryFrom<ImageW> for Snapshot {
    type Error = bootstrap_core::Error;
    fn try_from(i: ImageW) -> Result<Self, Self::Error> {
        let created = OffsetDateTime::parse(&i.created, &Rfc3339).map_err(|e| {
            bootstrap_core::Error::new(
                bootstrap_core::ErrorKind::Other,
                format!(
                    "image {}: unreadable created time {:?}: {e}",
                    i.id, i.created
                ),
            )
        })?;
        Ok(Snapshot {
            id: i.id.to_string(),
            name: i.description.unwrap_or_default(),
            created,
            status: match i.status.as_str() {
                "available" => SnapshotStatus::Available,
                "creating" => SnapshotStatus::Creating,
                other => SnapshotStatus::Other(other.to_owned()),
            },
            labels: labels(i.labels),
        })
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct SshKeyW {
    id: i64,
    name: String,
    fingerprint: String,
    #[serde(default)]
    labels: HashMap<String, String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct SshKeyEnvelope {
    pub ssh_key: SshKeyW,
}

#[derive(Debug, Deserialize)]
pub(crate) struct FirewallW {
    id: i64,
    name: String,
    #[serde(default)]
    labels: HashMap<String, String>,
    /// Raw, so that an update can send back verbatim the rules it does not touch.
    #[serde(default)]
    pub rules: Vec<serde_json::Value>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct FirewallEnvelope {
    pub firewall: FirewallW,
}

#[derive(Debug, Deserialize)]
pub(crate) struct ActionsEnvelope {
    #[serde(default)]
    pub actions: Vec<ActionW>,
}

/// A raw rule as the model sees it: inbound, TCP or UDP, one port; anything else is `None`.
pub(crate) fn inbound_rule(v: &serde_json::Value) -> Option<FirewallRule> {
    if v.get("direction")?.as_str()? != "in" {
        return None;
    }
    let protocol = match v.get("protocol")?.as_str()? {
        "tcp" => Protocol::Tcp,
        "udp" => Protocol::Udp,
        _ => return None,
    };
    let port = v.get("port")?.as_str()?.parse().ok()?;
    let sources = v
        .get("source_ips")
        .and_then(|s| s.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str()?.parse::<IpNet>().ok())
                .collect()
        })
        .unwrap_or_default();
    Some(FirewallRule {
        protocol,
        port,
        sources,
        description: v
            .get("description")
            .and_then(|d| d.as_str())
            .unwrap_or_default()
            .to_owned(),
    })
}

#[derive(Debug, Deserialize)]
pub(crate) struct FirewallCreated {
    pub firewall: FirewallW,
    #[serde(default)]
    pub actions: Vec<ActionW>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct ServerW {
    id: i64,
    name: String,
    status: String,
    #[serde(default)]
    labels: HashMap<String, String>,
    #[serde(default)]
    public_net: Option<PublicNet>,
    /// RFC 3339; orders racing servers of one deployment.
    #[serde(default)]
    created: Option<String>,
}

#[derive(Debug, Deserialize)]
struct PublicNet {
    #[serde(default)]
    ipv4: Option<IpW>,
    #[serde(default)]
    ipv6: Option<IpW>,
}

#[derive(Debug, Deserialize)]
struct IpW {
    ip: String,
}

#[derive(Debug, Deserialize)]
pub(crate) struct ServerEnvelope {
    pub server: ServerW,
}

#[derive(Debug, Deserialize)]
pub(crate) struct ServerCreated {
    pub server: ServerW,
    pub action: ActionW,
    #[serde(default)]
    pub next_actions: Vec<ActionW>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct ActionW {
    id: i64,
    command: String,
    status: String,
    #[serde(default)]
    error: Option<ActionError>,
}

#[derive(Debug, Deserialize)]
struct ActionError {
    code: String,
    message: String,
}

#[derive(Debug, Deserialize)]
pub(crate) struct ActionEnvelope {
    pub action: ActionW,
}

/// `GET /actions?id=..`: the actions asked for.
#[derive(Debug, Deserialize)]
pub(crate) struct ActionList {
    pub actions: Vec<ActionW>,
}

impl ActionW {
    /// The action's id.
    pub(crate) fn id(&self) -> i64 {
        self.id
    }

    pub(crate) fn status(&self) -> OperationStatus {
        match self.status.as_str() {
            "success" => OperationStatus::Succeeded,
            "error" => OperationStatus::Failed(match &self.error {
                Some(e) => format!("{} ({})", e.message, e.code),
                None => "no reason given".to_owned(),
            }),
            _ => OperationStatus::Running,
        }
    }
}

fn labels(m: HashMap<String, String>) -> Labels {
    m.into_iter().collect()
}

impl From<SshKeyW> for SshKey {
    fn from(k: SshKeyW) -> Self {
        SshKey {
            id: k.id.to_string(),
            name: k.name,
            fingerprint: k.fingerprint,
            labels: labels(k.labels),
        }
    }
}

impl From<FirewallW> for Firewall {
    fn from(f: FirewallW) -> Self {
        Firewall {
            id: f.id.to_string(),
            name: f.name,
            labels: labels(f.labels),
            inbound: f.rules.iter().filter_map(inbound_rule).collect(),
        }
    }
}

impl From<ActionW> for Operation {
    fn from(a: ActionW) -> Self {
        Operation {
            id: a.id.to_string(),
            what: a.command,
        }
    }
}

/// Hetzner reports the server's IPv6 as its /64; the address in use is the network's `::1`.
fn first_host(net: &str) -> Option<IpAddr> {
    let addr: Ipv6Addr = net.split('/').next()?.parse().ok()?;
    Some(IpAddr::V6(Ipv6Addr::from(u128::from(addr) | 1)))
}

impl From<ServerW> for Server {
    fn from(s: ServerW) -> Self {
        let status = match s.status.as_str() {
            "initializing" | "starting" | "rebuilding" | "migrating" => ServerStatus::Starting,
            "running" => ServerStatus::Running,
            "off" | "stopping" => ServerStatus::Off,
            "deleting" => ServerStatus::Deleting,
            other => ServerStatus::Other(other.to_owned()),
        };
        let (ipv4, ipv6) = match s.public_net {
            Some(n) => (
                n.ipv4.and_then(|i| i.ip.parse().ok()),
                n.ipv6.and_then(|i| first_host(&i.ip)),
            ),
            None => (None, None),
        };
        Server {
            id: s.id.to_string(),
            name: s.name,
            status,
            ipv4,
            ipv6,
            labels: labels(s.labels),
            created: s
                .created
                .and_then(|c| OffsetDateTime::parse(&c, &Rfc3339).ok()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_decodes_from_the_spec_example_shape() {
        let json = r#"{"server":{"id":42,"name":"web1","status":"running","created":"2016-01-30T23:50:00Z",
            "labels":{"managed-by":"bootstrap","bootstrap-deployment":"web1"},
            "public_net":{"ipv4":{"ip":"203.0.113.1","blocked":false,"dns_ptr":"x"},
                          "ipv6":{"ip":"2001:db8::/64","blocked":false,"dns_ptr":[]},"floating_ips":[],"firewalls":[]}}}"#;
        let s: Server = serde_json::from_str::<ServerEnvelope>(json)
            .unwrap()
            .server
            .into();
        assert_eq!(s.status, ServerStatus::Running);
        assert_eq!(s.ipv4, Some("203.0.113.1".parse().unwrap()));
        assert_eq!(s.ipv6, Some("2001:db8::1".parse().unwrap()));
        assert_eq!(s.labels.deployment_name(), Some("web1"));
    }

    #[test]
    fn pagination_and_action_status() {
        let page: SshKeyList = serde_json::from_str(
            r#"{"ssh_keys":[],"meta":{"pagination":{"page":1,"per_page":50,"previous_page":null,"next_page":2,"last_page":2,"total_entries":60}}}"#,
        )
        .unwrap();
        assert_eq!(page.next_page(), Some(2));
        let a: ActionEnvelope = serde_json::from_str(
            r#"{"action":{"id":1,"command":"create_server","status":"error","progress":100,"started":"x","finished":"y","resources":[],"error":{"code":"action_failed","message":"Action failed"}}}"#,
        )
        .unwrap();
        assert_eq!(
            a.action.status(),
            OperationStatus::Failed("Action failed (action_failed)".into())
        );
    }

    #[test]
    fn only_single_port_tcp_udp_inbound_rules_enter_the_model() {
        let rules: Vec<serde_json::Value> = serde_json::from_str(
            r#"[
            {"direction":"in","protocol":"tcp","port":"22","source_ips":["203.0.113.7/32","2001:db8::/48"],"destination_ips":[],"description":"SSH"},
            {"direction":"in","protocol":"tcp","port":"80-85","source_ips":["0.0.0.0/0"],"destination_ips":[]},
            {"direction":"in","protocol":"icmp","port":null,"source_ips":["0.0.0.0/0"],"destination_ips":[]},
            {"direction":"out","protocol":"udp","port":"53","source_ips":[],"destination_ips":["0.0.0.0/0"]}
        ]"#,
        )
        .unwrap();
        let model: Vec<FirewallRule> = rules.iter().filter_map(inbound_rule).collect();
        assert_eq!(model.len(), 1);
        assert_eq!((model[0].protocol, model[0].port), (Protocol::Tcp, 22));
        assert_eq!(model[0].sources.len(), 2);
        assert_eq!(model[0].description, "SSH");
    }
}
