//! What a provider is, said once: the static [`Description`] each provider crate exports and the
//! binary's registry lists. Flows ask it what a cloud can do (how each resource kind is proven
//! ours, whether the key is a resource, how long a new server may stay invisible) instead of
//! matching on which cloud it is.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::future::BoxFuture;

use crate::error::Result;
use crate::model::{DeploymentName, Labels};
use crate::provider::Provider;

/// What the user said about reaching a provider, in provider-neutral form; each provider reads
/// its own credentials (variables, its CLI's config file) when it connects.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnectOptions {
    /// `--endpoint` / `BOOTSTRAP_<PROVIDER>_ENDPOINT`: the API base URL.
    pub endpoint: Option<String>,
    /// The provider CLI's context or profile to use, where the user picked one.
    pub context: Option<String>,
    /// Values of this provider's own flags, by flag (`--region` -> `eu-central-1`).
    pub flags: BTreeMap<&'static str, String>,
}

impl ConnectOptions {
    /// The value of one of the provider's own flags.
    pub fn flag(&self, name: &str) -> Option<&str> {
        self.flags.get(name).map(String::as_str)
    }
}

/// Builds a provider: reads its credentials and checks them offline (a missing token is
/// `InvalidInput`/`Unauthorized`, which the binary turns into exit 2).
pub type Connect = fn(ConnectOptions) -> BoxFuture<'static, Result<Box<dyn Provider>>>;

/// Fixed facts about a provider that the core checks before any API call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest user-data the API accepts, in bytes of the raw cloud-config.
    pub user_data_max_bytes: usize,
}

/// Default server type, image and location of a provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Defaults {
    /// Server type / size / instance type.
    pub server_type: &'static str,
    /// Image name.
    pub image: &'static str,
    /// Location / region / zone.
    pub location: &'static str,
}

/// How the flows prove that one resource is this tool's (DESIGN.md, "labels").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ownership {
    /// Native key/value labels or tags (Hetzner labels, AWS tags): every selector label must match.
    Labels,
    /// Flat string tags `key<sep>value` (DigitalOcean `key:value`, Scaleway `key=value`),
    /// decoded by [`Labels::from_flat_tags`]; then checked like labels.
    FlatTags(char),
    /// The cloud cannot tag this kind (DigitalOcean firewalls and keys): it is ours by its
    /// [`resource_name`], and only when every label the adapter could read agrees too.
    Name,
}

/// [`Ownership`] per resource kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OwnershipModel {
    /// SSH keys.
    pub ssh_key: Ownership,
    /// Firewalls / security groups.
    pub firewall: Ownership,
    /// Servers.
    pub server: Ownership,
    /// Snapshots / images.
    pub snapshot: Ownership,
}

impl OwnershipModel {
    /// Every kind carries native labels.
    pub const LABELS: Self = Self {
        ssh_key: Ownership::Labels,
        firewall: Ownership::Labels,
        server: Ownership::Labels,
        snapshot: Ownership::Labels,
    };
}

/// Everything about a provider that is known without calling it, exported as one static by
/// each provider crate.
#[derive(Debug, Clone, Copy)]
pub struct Description {
    /// Lowercase name, as in `--provider` and the state directory (`hetzner`).
    pub name: &'static str,
    /// Name for people (`Hetzner Cloud`).
    pub title: &'static str,
    /// Variables a scheduled job needs in its env file or Secret (`HCLOUD_TOKEN`).
    pub credential_vars: &'static [&'static str],
    /// Where else credentials come from, for messages (`the hcloud CLI's active context`).
    pub credential_sources: &'static str,
    /// Defaults for `create`.
    pub defaults: Defaults,
    /// Limits checked offline.
    pub limits: Limits,
    /// Snapshot engines, the default first (`job` is the stateless `snapshot run`).
    pub snapshot_engines: &'static [&'static str],
    /// Whether `--provider-backups` turns on the provider's own backups.
    pub provider_backups: bool,
    /// How each resource kind is proven ours.
    pub ownership: OwnershipModel,
    /// False where the key must not be uploaded (Scaleway's project-wide IAM keys): it reaches
    /// the server through cloud-init only and the deployment has no key resource.
    pub key_resource: bool,
    /// Whether key names are unique at the provider (Hetzner, EC2): `create` then uploads the
    /// key before making the firewall, so that a run racing another with a different key stops
    /// before it made a firewall the other run could adopt; elsewhere the two are made together.
    pub unique_key_names: bool,
    /// Whether `destroy` may delete the key while the server made with it is still being
    /// deleted (Hetzner, EC2: a key is only read when a server is created). DigitalOcean links
    /// its key to droplets through tags that are cleaned up once the droplet is gone.
    pub key_goes_beside_server: bool,
    /// How long a server this run created may stay invisible to `get_server` before it counts
    /// as gone (EC2's eventual consistency); zero where the API is consistent.
    pub visibility_grace: Duration,
    /// The flags only this provider takes, on every command (`--region`); others refuse them,
    /// and printed commands (the rollback's `destroy`) carry them.
    pub flags: &'static [&'static str],
    /// The flags only this provider's `create` takes (`--subnet`).
    pub create_flags: &'static [&'static str],
    /// What `--context` picks here (`an hcloud CLI context`); `None` where the provider has
    /// no contexts (AWS names profiles with its own `--profile`), so `--context` is refused.
    pub context: Option<&'static str>,
    /// What `--location` means here, for help and errors.
    pub location_help: &'static str,
    /// The provider flag that names the same place as `create --location` on every command
    /// (Scaleway's `--zone`): `create` fills it from `--location` (a conflicting pair is
    /// refused), so that every printed command reaches the deployment's place.
    pub location_flag: Option<&'static str>,
    /// Where the location comes from when neither flag is given, read offline (Scaleway:
    /// `SCW_DEFAULT_ZONE`, then the `scw` profile's `default_zone`); `None`:
    /// [`Defaults::location`].
    pub default_location: fn() -> Option<String>,
    /// Offline checks of the provider's own flags (their shape; the cloud checks existence).
    pub check_flags: fn(&ConnectOptions) -> Result<()>,
    /// Offline checks of server type, image and location with the provider's flags (syntax
    /// only; the read-only API check is [`crate::Provider::check_server_options`]). For
    /// `create`, the options also carry `--snapshot-engine` (an engine may need a flag).
    pub check_server: fn(&str, &str, &str, &ConnectOptions) -> Result<()>,
    /// Connects: credentials the way the provider's own CLI finds them, then the adapter.
    pub connect: Connect,
}

/// The snapshot engine that every provider has: the stateless `bootstrap snapshot run`.
pub const ENGINE_JOB: &str = "job";

/// The name of a resource that carries the deployment's name (`bootstrap-web1`): firewalls and
/// keys everywhere, and the only proof of ownership where a cloud cannot tag them.
pub fn resource_name(deployment: &DeploymentName) -> String {
    format!("bootstrap-{deployment}")
}

/// Whether a resource named `name` with readable `labels` is owned per `how` and selected by
/// `selector`. Name ownership needs the name to be [`resource_name`] of the selected deployment
/// (any `bootstrap-` name when the selector names none) and every label it does carry to agree.
pub fn is_ours(how: Ownership, name: &str, labels: &Labels, selector: &Labels) -> bool {
    match how {
        Ownership::Labels | Ownership::FlatTags(_) => labels.matches(selector),
        Ownership::Name => {
            let named = match selector.deployment_name() {
                Some(d) => DeploymentName::parse(d).is_ok_and(|d| name == resource_name(&d)),
                None => name
                    .strip_prefix("bootstrap-")
                    .is_some_and(|d| DeploymentName::parse(d).is_ok()),
            };
            named
                && labels
                    .iter()
                    .all(|(k, v)| selector.get(k).is_none_or(|want| want == v))
        }
    }
}

/// The deployment a resource proven ours belongs to: its label, or where the cloud cannot tag
/// it, the name after `bootstrap-`.
pub fn deployment_of<'a>(how: Ownership, name: &'a str, labels: &'a Labels) -> Option<&'a str> {
    labels.deployment_name().or_else(|| match how {
        Ownership::Name => name.strip_prefix("bootstrap-"),
        Ownership::Labels | Ownership::FlatTags(_) => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_alone_is_ours_only_where_nothing_else_can_be_checked() {
        let web1 = DeploymentName::parse("web1").unwrap();
        let sel = Labels::deployment(&web1);
        let none = Labels::new();
        assert!(is_ours(Ownership::Name, "bootstrap-web1", &none, &sel));
        assert!(!is_ours(Ownership::Name, "bootstrap-web2", &none, &sel));
        assert!(!is_ours(Ownership::Name, "web1", &none, &sel));
        // A label that disagrees (a firewall targeting another deployment's tag) is not ours.
        let mut other = Labels::new();
        other.insert(crate::model::LABEL_DEPLOYMENT, "web2");
        assert!(!is_ours(Ownership::Name, "bootstrap-web1", &other, &sel));
        assert!(is_ours(Ownership::Name, "bootstrap-web1", &sel, &sel));
        // `list` selects every managed deployment: any bootstrap-<valid name>.
        assert!(is_ours(
            Ownership::Name,
            "bootstrap-web2",
            &none,
            &Labels::managed()
        ));
        assert!(!is_ours(
            Ownership::Name,
            "bootstrap-",
            &none,
            &Labels::managed()
        ));
        // Labels: the name says nothing.
        assert!(!is_ours(Ownership::Labels, "bootstrap-web1", &none, &sel));
        assert!(is_ours(Ownership::Labels, "anything", &sel, &sel));
    }
}
