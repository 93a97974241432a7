//! The provider-neutral model: what a deployment is made of, and how it is labelled.
//!
//! Every resource the tool creates carries [`Labels`]: `managed-by=bootstrap` and
//! `bootstrap-deployment=<name>`. The cloud is the source of truth; these labels are how `list`,
//! `destroy` and re-runs of `create` find things again from any machine.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::Serialize;

use crate::error::{Error, ErrorKind, Result};

/// Label key marking everything this tool made.
pub const LABEL_MANAGED_BY: &str = "managed-by";
/// Value of [`LABEL_MANAGED_BY`].
pub const MANAGED_BY_VALUE: &str = "bootstrap";
/// Label key carrying the deployment name.
pub const LABEL_DEPLOYMENT: &str = "bootstrap-deployment";
/// Label key on a server naming the provider id of the SSH key it was created with, so that
/// `destroy` only deletes a key no other managed server uses.
pub const LABEL_SSH_KEY: &str = "bootstrap-ssh-key";
/// Label key on a server naming the provider id of the firewall it was created with, so that a
/// run that lost a race keeps the firewall the winner's server uses.
pub const LABEL_FIREWALL: &str = "bootstrap-firewall";
/// Label key on what one `create` run makes, with a value new for each run: a create whose
/// answer was lost (or cut off by a signal) is found again by it, and never confused with the
/// same-named resource of a run racing it.
pub const LABEL_RUN: &str = "bootstrap-run";

/// A validated deployment name: an RFC 1123 label (it becomes the server's hostname).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct DeploymentName(String);

impl DeploymentName {
    /// Checks `name` is a hostname label: 1-63 of `a-z0-9-`, not starting or ending with `-`.
    pub fn parse(name: &str) -> Result<Self> {
        let ok = !name.is_empty()
            && name.len() <= 63
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !name.starts_with('-')
            && !name.ends_with('-');
        if ok {
            Ok(Self(name.to_owned()))
        } else {
            Err(Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "invalid name {name:?}: use 1-63 lowercase letters, digits and '-', not starting or ending with '-' (it becomes the hostname)"
                ),
            ))
        }
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DeploymentName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Key/value labels (tags) in the neutral form; each adapter encodes them in its cloud's syntax.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Labels(BTreeMap<String, String>);

impl Labels {
    /// No labels.
    pub fn new() -> Self {
        Self::default()
    }

    /// `managed-by=bootstrap`: selects everything this tool made.
    pub fn managed() -> Self {
        let mut l = Self::new();
        l.insert(LABEL_MANAGED_BY, MANAGED_BY_VALUE);
        l
    }

    /// `managed-by=bootstrap, bootstrap-deployment=<name>`: selects one deployment.
    pub fn deployment(name: &DeploymentName) -> Self {
        let mut l = Self::managed();
        l.insert(LABEL_DEPLOYMENT, name.as_str());
        l
    }

    /// Adds or replaces a label.
    pub fn insert(&mut self, key: impl Into<String>, value: impl Into<String>) {
        self.0.insert(key.into(), value.into());
    }

    /// True without any label.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// Iterates in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// True when every label of `selector` is present here with the same value.
    pub fn matches(&self, selector: &Labels) -> bool {
        selector.iter().all(|(k, v)| self.get(k) == Some(v))
    }

    /// The deployment these labels belong to, if any.
    pub fn deployment_name(&self) -> Option<&str> {
        self.get(LABEL_DEPLOYMENT)
    }

    /// The labels as flat string tags `key<sep>value`, sorted by key: DigitalOcean's
    /// `key:value` tags, Scaleway's `key=value`. One codec for both.
    pub fn to_flat_tags(&self, sep: char) -> Vec<String> {
        self.iter().map(|(k, v)| format!("{k}{sep}{v}")).collect()
    }

    /// Reads flat tags back: each tag splits at its first `sep`; tags without one are someone
    /// else's and are skipped.
    pub fn from_flat_tags<S: AsRef<str>>(tags: impl IntoIterator<Item = S>, sep: char) -> Self {
        tags.into_iter()
            .filter_map(|t| {
                t.as_ref()
                    .split_once(sep)
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
            })
            .collect()
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for Labels {
    fn from_iter<T: IntoIterator<Item = (K, V)>>(iter: T) -> Self {
        Self(
            iter.into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        )
    }
}

/// Resources that carry labels. The flows re-check every label selector on the client side, so
/// that an API (or a mock) that ignores `label_selector` can never make them touch or delete a
/// resource that is not theirs.
pub trait Labelled {
    /// The resource's labels (those the adapter could read; none where the cloud has no tags).
    fn labels(&self) -> &Labels;
    /// The resource's name at the provider (the proof of ownership where it cannot be tagged).
    fn name(&self) -> &str;
}

/// Keeps only the items whose labels carry all of `selector`.
pub fn only_matching<T: Labelled>(items: Vec<T>, selector: &Labels) -> Vec<T> {
    only_ours(items, selector, crate::describe::Ownership::Labels)
}

/// Keeps only the items proven ours per `how` and selected by `selector`
/// (see [`crate::describe::is_ours`]).
pub fn only_ours<T: Labelled>(
    items: Vec<T>,
    selector: &Labels,
    how: crate::describe::Ownership,
) -> Vec<T> {
    items
        .into_iter()
        .filter(|i| crate::describe::is_ours(how, i.name(), i.labels(), selector))
        .collect()
}

/// A public key with the fingerprints each cloud reports, computed once by the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKeyInfo {
    /// The OpenSSH line (`ssh-ed25519 AAAA... comment`).
    pub openssh: String,
    /// MD5 colon-hex fingerprint (Hetzner, DigitalOcean).
    pub md5: String,
    /// `SHA256:...` fingerprint as `ssh-keygen -l` prints it.
    pub sha256: String,
}

/// What to upload as the deployment's SSH key.
#[derive(Debug, Clone)]
pub struct SshKeySpec {
    /// Name at the provider.
    pub name: String,
    /// The key.
    pub key: PublicKeyInfo,
    /// Labels to put on it.
    pub labels: Labels,
}

/// An SSH key as the provider knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SshKey {
    /// Provider id.
    pub id: String,
    /// Name at the provider.
    pub name: String,
    /// Fingerprint as the provider reports it.
    pub fingerprint: String,
    /// Its labels (empty for keys this tool did not make).
    pub labels: Labels,
}

impl Labelled for SshKey {
    fn labels(&self) -> &Labels {
        &self.labels
    }
    fn name(&self) -> &str {
        &self.name
    }
}

/// Transport protocol of a firewall rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

/// One inbound rule: `protocol`/`port` from `sources`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FirewallRule {
    /// Protocol.
    pub protocol: Protocol,
    /// Destination port.
    pub port: u16,
    /// Allowed source networks; `0.0.0.0/0` and `::/0` only when the user said `any`.
    pub sources: Vec<IpNet>,
    /// Shown in the provider's console.
    pub description: String,
}

/// The cloud firewall to create. Outbound traffic is allowed; adapters whose API denies outbound
/// by default (DigitalOcean) add explicit allow rules.
#[derive(Debug, Clone, Serialize)]
pub struct FirewallSpec {
    /// Name at the provider.
    pub name: String,
    /// Inbound allow rules; everything else inbound is dropped.
    pub inbound: Vec<FirewallRule>,
    /// Labels to put on it.
    pub labels: Labels,
}

/// A cloud firewall (security group) as the provider knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Firewall {
    /// Provider id.
    pub id: String,
    /// Name at the provider.
    pub name: String,
    /// Its labels.
    pub labels: Labels,
    /// The inbound rules bootstrap can express (one TCP/UDP port each); other rules exist at
    /// the provider but are not listed, and updates leave them alone.
    pub inbound: Vec<FirewallRule>,
}

impl FirewallRule {
    /// Whether `other` is a rule for the same protocol and port.
    pub fn same_port(&self, other: &FirewallRule) -> bool {
        self.protocol == other.protocol && self.port == other.port
    }
}

/// How one wanted rule differs from what a firewall allows on its protocol and port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleChange<'a> {
    /// The wanted rule.
    pub rule: &'a FirewallRule,
    /// Sources allowed now (empty: the port is closed).
    pub was: Vec<IpNet>,
    /// Wanted sources not allowed yet.
    pub add: Vec<IpNet>,
    /// Allowed sources no longer wanted.
    pub remove: Vec<IpNet>,
}

/// The wanted rules whose sources differ from what `current` allows on the same protocol and
/// port (a port with no rule yet allows nothing). Empty when the firewall needs no update.
pub fn rule_changes<'a>(
    current: &[FirewallRule],
    wanted: &'a [FirewallRule],
) -> Vec<RuleChange<'a>> {
    wanted
        .iter()
        .filter_map(|w| {
            let mut was: Vec<IpNet> = Vec::new();
            for c in current.iter().filter(|c| c.same_port(w)) {
                for s in &c.sources {
                    if !was.contains(s) {
                        was.push(*s);
                    }
                }
            }
            let add: Vec<IpNet> = w
                .sources
                .iter()
                .filter(|s| !was.contains(s))
                .copied()
                .collect();
            let remove: Vec<IpNet> = was
                .iter()
                .filter(|s| !w.sources.contains(s))
                .copied()
                .collect();
            (!add.is_empty() || !remove.is_empty()).then_some(RuleChange {
                rule: w,
                was,
                add,
                remove,
            })
        })
        .collect()
}

/// `current` with the rules for each of `wanted`'s ports replaced by `wanted`'s: what a
/// firewall looks like after [`crate::Provider::update_firewall_rules`].
pub fn merge_rules(current: &[FirewallRule], wanted: &[FirewallRule]) -> Vec<FirewallRule> {
    current
        .iter()
        .filter(|c| !wanted.iter().any(|w| w.same_port(c)))
        .chain(wanted)
        .cloned()
        .collect()
}

impl Labelled for Firewall {
    fn labels(&self) -> &Labels {
        &self.labels
    }
    fn name(&self) -> &str {
        &self.name
    }
}

/// The server to create.
#[derive(Debug, Clone, Serialize)]
pub struct ServerSpec {
    /// Name (and hostname).
    pub name: String,
    /// Provider's server type / size / instance type.
    pub server_type: String,
    /// Image name or id.
    pub image: String,
    /// Location / region / zone.
    pub location: String,
    /// The rendered cloud-config.
    #[serde(skip)]
    pub user_data: String,
    /// Provider ids of the SSH keys to install.
    pub ssh_key_ids: Vec<String>,
    /// Provider ids of the firewalls to apply.
    pub firewall_ids: Vec<String>,
    /// Labels to put on it.
    pub labels: Labels,
}

/// Where a server is in its life.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ServerStatus {
    /// Being created or booting.
    Starting,
    /// Running.
    Running,
    /// Powered off or stopped.
    Off,
    /// Being deleted.
    Deleting,
    /// A status this tool has no name for.
    Other(String),
}

impl fmt::Display for ServerStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Starting => f.write_str("starting"),
            Self::Running => f.write_str("running"),
            Self::Off => f.write_str("off"),
            Self::Deleting => f.write_str("deleting"),
            Self::Other(s) => f.write_str(s),
        }
    }
}

/// A server as the provider knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Server {
    /// Provider id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Status.
    pub status: ServerStatus,
    /// Public IPv4 address.
    pub ipv4: Option<IpAddr>,
    /// Public IPv6 address.
    pub ipv6: Option<IpAddr>,
    /// Its labels.
    pub labels: Labels,
    /// When the provider created it, where it says; orders racing servers (see
    /// [`Server::race_order`]).
    #[serde(
        skip_serializing_if = "Option::is_none",
        with = "time::serde::rfc3339::option"
    )]
    pub created: Option<time::OffsetDateTime>,
}

impl Server {
    /// The order that decides which of two servers of one deployment is the older: creation
    /// time, then the id (numerically where both are numbers). Every run sorts the same way,
    /// so racing runs agree on the winner without talking to each other.
    pub fn race_order(&self) -> (Option<time::OffsetDateTime>, u128, &str) {
        // A numeric id sorts as a number (9 before 10); others fall back to the string.
        (
            self.created,
            self.id.parse::<u128>().unwrap_or(u128::MAX),
            self.id.as_str(),
        )
    }
}

impl Labelled for Server {
    fn labels(&self) -> &Labels {
        &self.labels
    }
    fn name(&self) -> &str {
        &self.name
    }
}

/// Where a snapshot is in its life.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SnapshotStatus {
    /// Being taken.
    Creating,
    /// Usable.
    Available,
    /// Anything else (failed, being deleted, ...).
    Other(String),
}

/// A snapshot (image) of a server that this tool took; provider-made backups are never listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Snapshot {
    /// Provider id.
    pub id: String,
    /// Name / description.
    pub name: String,
    /// When the provider created it; retention sorts by this, never by id.
    #[serde(with = "time::serde::rfc3339")]
    pub created: time::OffsetDateTime,
    /// Status.
    pub status: SnapshotStatus,
    /// Its labels.
    pub labels: Labels,
}

impl Labelled for Snapshot {
    fn labels(&self) -> &Labels {
        &self.labels
    }
    fn name(&self) -> &str {
        &self.name
    }
}

/// A provider's own snapshot schedule for one deployment (an AWS Data Lifecycle Manager policy
/// targeting the deployment's tag). The core creates it with the server when the server's
/// `bootstrap-snapshot-engine` label names a native engine, and removes it in every teardown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NativeSchedule {
    /// Provider id (`policy-0123...`).
    pub id: String,
    /// Name / description.
    pub name: String,
    /// Its labels (tags).
    pub labels: Labels,
}

impl Labelled for NativeSchedule {
    fn labels(&self) -> &Labels {
        &self.labels
    }
    fn name(&self) -> &str {
        &self.name
    }
}

/// What [`crate::Provider::create_native_schedule`] makes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NativeScheduleSpec {
    /// Name / description.
    pub name: String,
    /// The deployment whose servers it snapshots (they carry its `bootstrap-deployment` label).
    pub deployment: DeploymentName,
    /// Interval, time and retention count.
    pub schedule: crate::schedule::Schedule,
    /// Labels of the schedule itself, also put on every image it takes.
    pub labels: Labels,
}

/// Something asynchronous the provider is doing, to be polled with
/// [`crate::Provider::operation_status`] (a Hetzner action, a DigitalOcean action, ...).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Operation {
    /// Provider id of the operation.
    pub id: String,
    /// What it does (`create_server`, `start_server`, ...), for messages.
    pub what: String,
}

/// Result of one check of an [`Operation`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OperationStatus {
    /// Still running.
    Running,
    /// Finished well.
    Succeeded,
    /// Finished with an error message from the provider.
    Failed(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deployment_names_are_hostname_labels() {
        for ok in ["web1", "a", "my-server-2", &"a".repeat(63)] {
            assert!(DeploymentName::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "-a",
            "a-",
            "Web1",
            "a_b",
            "a.b",
            "a b",
            "a\nb",
            &"a".repeat(64),
            "x: y",
        ] {
            let e = DeploymentName::parse(bad).unwrap_err();
            assert_eq!(e.kind(), &ErrorKind::InvalidInput);
        }
    }

    #[test]
    fn labels_select_and_encode() {
        let name = DeploymentName::parse("web1").unwrap();
        let l = Labels::deployment(&name);
        assert_eq!(
            l.to_flat_tags(':'),
            ["bootstrap-deployment:web1", "managed-by:bootstrap"]
        );
        assert_eq!(
            Labels::from_flat_tags(["managed-by=bootstrap", "plain", "a=b=c"], '='),
            [("managed-by", "bootstrap"), ("a", "b=c")]
                .into_iter()
                .collect()
        );
        let mut server = l.clone();
        server.insert(LABEL_SSH_KEY, "42");
        assert!(server.matches(&l));
        assert!(server.matches(&Labels::managed()));
        assert!(!Labels::managed().matches(&l));
        assert_eq!(server.deployment_name(), Some("web1"));
    }

    #[test]
    fn rule_changes_name_what_to_add_and_drop_per_port() {
        let rule = |port: u16, sources: &[&str]| FirewallRule {
            protocol: Protocol::Tcp,
            port,
            sources: sources.iter().map(|s| s.parse().unwrap()).collect(),
            description: String::new(),
        };
        let current = [
            rule(22, &["192.0.2.1/32", "198.51.100.0/24"]),
            rule(443, &["0.0.0.0/0"]),
        ];
        let wanted = [rule(22, &["198.51.100.0/24", "203.0.113.7/32"])];
        let c = rule_changes(&current, &wanted);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].add, ["203.0.113.7/32".parse::<IpNet>().unwrap()]);
        assert_eq!(c[0].remove, ["192.0.2.1/32".parse::<IpNet>().unwrap()]);
        assert_eq!(c[0].was.len(), 2);
        assert!(rule_changes(&current, &current[..1]).is_empty());
        let closed = rule_changes(&[], &wanted);
        assert!(closed[0].was.is_empty() && closed[0].add.len() == 2);
        let merged = merge_rules(&current, &wanted);
        assert!(rule_changes(&merged, &wanted).is_empty());
        assert!(merged.contains(&current[1]), "other ports stay");
    }
}
