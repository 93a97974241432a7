//! Wire types of the answers, hand-written after Scaleway's OpenAPI documents (Instance v1,
//! Block v1) and the Go SDK's recorded cassettes, with only the fields read here; and their
//! conversion into the core model. Request bodies are built next to their call.

use std::collections::BTreeMap;
use std::net::IpAddr;

use bootstrap_core::{Labels, Server, ServerStatus, Snapshot, SnapshotStatus};
use serde::Deserialize;

use crate::TAG_SEP;

/// Tags read back as labels (`key=value`; other tags are someone else's).
pub(crate) fn labels_of(tags: &[String]) -> Labels {
    Labels::from_flat_tags(tags, TAG_SEP)
}

/// `{id}` or `{id, name}` references.
#[derive(Debug, Clone, Deserialize, Default)]
pub(crate) struct Ref {
    #[serde(default)]
    pub id: String,
}

/// An Instance server.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct ScwServer {
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub state: String,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub public_ips: Vec<ScwIp>,
    #[serde(default)]
    pub public_ip: Option<ScwIp>,
    #[serde(default)]
    pub security_group: Option<Ref>,
    #[serde(default)]
    pub volumes: BTreeMap<String, ServerVolume>,
    /// RFC 3339 with microseconds; orders racing servers of one deployment.
    #[serde(default)]
    pub creation_date: Option<String>,
}

/// A volume as a server lists it.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct ServerVolume {
    pub id: String,
    #[serde(default)]
    pub volume_type: String,
}

impl ScwServer {
    /// The SBS volumes attached (the root one is key `"0"`).
    pub(crate) fn sbs_volume_ids(&self) -> Vec<String> {
        self.volumes
            .values()
            .filter(|v| v.volume_type == "sbs_volume")
            .map(|v| v.id.clone())
            .collect()
    }

    /// The root volume.
    pub(crate) fn root_volume(&self) -> Option<&ServerVolume> {
        self.volumes.get("0")
    }
}

impl From<ScwServer> for Server {
    fn from(s: ScwServer) -> Self {
        let mut ipv4 = None;
        let mut ipv6 = None;
        for ip in s.public_ips.iter().chain(s.public_ip.iter()) {
            match ip.address.parse::<IpAddr>() {
                Ok(a @ IpAddr::V4(_)) if ipv4.is_none() => ipv4 = Some(a),
                Ok(a @ IpAddr::V6(_)) if ipv6.is_none() => ipv6 = Some(a),
                _ => {}
            }
        }
        let status = match s.state.as_str() {
            "running" => ServerStatus::Running,
            "starting" => ServerStatus::Starting,
            "stopped" | "stopped in place" => ServerStatus::Off,
            other => ServerStatus::Other(other.to_owned()),
        };
        Server {
            id: s.id,
            name: s.name,
            status,
            ipv4,
            ipv6,
            labels: labels_of(&s.tags),
            created: s.creation_date.and_then(|c| {
                time::OffsetDateTime::parse(&c, &time::format_description::well_known::Rfc3339).ok()
            }),
        }
    }
}

/// `{server}`.
#[derive(Debug, Deserialize)]
pub(crate) struct ServerEnvelope {
    pub server: ScwServer,
}

/// A flexible (routed) IP.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct ScwIp {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub address: String,
    /// `inet` or `inet6`, as a server lists its IPs (an `/ips` answer has `type` instead).
    #[serde(default)]
    pub family: String,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub server: Option<Ref>,
}

/// A security group.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct ScwSecurityGroup {
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub servers: Vec<Ref>,
}

/// `{security_group}`.
#[derive(Debug, Deserialize)]
pub(crate) struct SecurityGroupEnvelope {
    pub security_group: ScwSecurityGroup,
}

/// A security group rule.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct ScwRule {
    pub id: String,
    #[serde(default)]
    pub protocol: String,
    #[serde(default)]
    pub direction: String,
    #[serde(default)]
    pub action: String,
    #[serde(default)]
    pub ip_range: String,
    #[serde(default)]
    pub dest_port_from: Option<u32>,
    #[serde(default)]
    pub dest_port_to: Option<u32>,
    #[serde(default = "yes")]
    pub editable: bool,
}

fn yes() -> bool {
    true
}

/// An Instance image.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct ScwImage {
    pub id: String,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub root_volume: Option<Ref>,
}

/// `{image}`.
#[derive(Debug, Deserialize)]
pub(crate) struct ImageEnvelope {
    pub image: ScwImage,
}

/// A Block volume.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct BlockVolume {
    pub id: String,
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub tags: Vec<String>,
}

/// A Block snapshot.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct BlockSnapshot {
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub created_at: Option<time::OffsetDateTime>,
}

impl From<BlockSnapshot> for Snapshot {
    fn from(s: BlockSnapshot) -> Self {
        let status = match s.status.as_str() {
            // `in_use`: an image or a volume is made from it; it is usable.
            "available" | "in_use" => SnapshotStatus::Available,
            "creating" => SnapshotStatus::Creating,
            other => SnapshotStatus::Other(other.to_owned()),
        };
        Snapshot {
            id: s.id,
            name: s.name,
            created: s.created_at.unwrap_or(time::OffsetDateTime::UNIX_EPOCH),
            status,
            labels: labels_of(&s.tags),
        }
    }
}

/// `GET /products/servers`: the types offered in a zone, by name.
#[derive(Debug, Deserialize)]
pub(crate) struct ServerProducts {
    #[serde(default)]
    pub servers: BTreeMap<String, serde_json::Value>,
}

/// `GET /marketplace/v2/local-images`.
#[derive(Debug, Deserialize)]
pub(crate) struct LocalImages {
    #[serde(default)]
    pub local_images: Vec<LocalImage>,
}

/// One image of a label in one zone.
#[derive(Debug, Deserialize)]
pub(crate) struct LocalImage {
    #[serde(default)]
    pub compatible_commercial_types: Vec<String>,
}

/// `GET .../servers/{id}/user_data`: the keys set.
#[derive(Debug, Deserialize)]
pub(crate) struct UserDataKeys {
    #[serde(default)]
    pub user_data: Vec<String>,
}

/// A Serverless Jobs job definition (v1alpha2), as Scaleway's Terraform recordings show it.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct JobDefinition {
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub image_uri: String,
    #[serde(default)]
    pub description: String,
}

/// A job definition's reference to a Secret Manager secret (`/serverless-jobs/.../secrets`).
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct JobSecretRef {
    #[serde(default)]
    pub secret_manager_id: String,
}

/// A Secret Manager secret (v1beta1): only its id, name and tags are read.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct ManagerSecret {
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub tags: Vec<String>,
}
