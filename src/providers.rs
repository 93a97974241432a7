//! The registry: the only place in `src/` that names providers. Everything else asks the
//! provider's [`Description`] (defaults, limits, engines, credentials, its own flags).
//!
//! Adding a provider: a crate under `providers/` exporting a `DESCRIPTION`, one line in
//! [`REGISTRY`], and its flag group in `cli.rs` (if it has flags of its own).

use std::collections::BTreeMap;
use std::sync::LazyLock;

use bootstrap_core::{ConnectOptions, Description, ErrorKind, Provider};

use crate::settings::bad;

/// Every provider this build knows, in the order `--help` lists them.
pub static REGISTRY: &[&Description] = &[
    &bootstrap_hetzner::DESCRIPTION,
    &bootstrap_digitalocean::DESCRIPTION,
    &bootstrap_scaleway::DESCRIPTION,
    #[cfg(feature = "aws")]
    &bootstrap_aws::DESCRIPTION,
];

/// `--version`: the crate version, the commit it was built from and the providers compiled in
/// (a build without the `aws` feature says so here).
pub static VERSION: LazyLock<String> = LazyLock::new(|| {
    let names: Vec<_> = REGISTRY.iter().map(|d| d.name).collect();
    format!(
        "{} (commit {}; providers: {})",
        env!("CARGO_PKG_VERSION"),
        env!("BOOTSTRAP_COMMIT"),
        names.join(", ")
    )
});

/// The provider of `list`, `snapshot run`, `verify` and `ssh` without `--provider`.
pub const DEFAULT_PROVIDER: &str = "hetzner";

/// A provider chosen with `--provider`: its description.
#[derive(Debug, Clone, Copy)]
pub struct ProviderKind(pub &'static Description);

impl PartialEq for ProviderKind {
    fn eq(&self, other: &Self) -> bool {
        self.0.name == other.0.name
    }
}

impl Eq for ProviderKind {}

impl ProviderKind {
    /// Lowercase name, as in `--provider`.
    pub fn name(self) -> &'static str {
        self.0.name
    }

    /// What the provider is and can do.
    pub fn desc(self) -> &'static Description {
        self.0
    }
}

static KINDS: LazyLock<Vec<ProviderKind>> =
    LazyLock::new(|| REGISTRY.iter().map(|d| ProviderKind(d)).collect());

impl clap::ValueEnum for ProviderKind {
    fn value_variants<'a>() -> &'a [Self] {
        &KINDS
    }

    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        Some(clap::builder::PossibleValue::new(self.0.name).help(self.0.title))
    }
}

/// The provider named `name` in this build.
pub fn kind(name: &str) -> Option<ProviderKind> {
    REGISTRY
        .iter()
        .find(|d| d.name == name)
        .map(|d| ProviderKind(d))
}

/// Refuses the flags of another provider (rather than ignoring them), then lets the provider
/// check its own, offline (exit 2 before any call).
pub fn check_flags(
    kind: ProviderKind,
    flags: &BTreeMap<&'static str, String>,
    options: &ConnectOptions,
) -> anyhow::Result<()> {
    let d = kind.desc();
    for flag in flags.keys() {
        if d.flags.contains(flag) || d.create_flags.contains(flag) {
            continue;
        }
        let owner = REGISTRY
            .iter()
            .find(|o| o.flags.contains(flag) || o.create_flags.contains(flag))
            .map_or("another provider", |o| o.name);
        return Err(bad(format!(
            "{flag} only applies to --provider {owner}; {}'s counterpart is --location ({})",
            d.title, d.location_help
        )));
    }
    (d.check_flags)(options).map_err(|e| bad(e.to_string()))
}

/// Builds the provider, reading its credentials the way its own CLI does.
pub async fn build(conn: &crate::settings::Connection) -> anyhow::Result<Box<dyn Provider>> {
    match (conn.kind.desc().connect)(conn.options()).await {
        Ok(p) => {
            // Which account this acts on, when a CLI context chose it (not just a variable).
            if let Some(c) = p.context() {
                crate::progress::note(&format!("using {c}"));
            }
            Ok(p)
        }
        // A missing token, region or credentials is for the user to fix: exit 2.
        Err(e) if matches!(e.kind(), ErrorKind::InvalidInput | ErrorKind::Unauthorized) => {
            Err(bad(e.to_string()))
        }
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_provider_is_listed_once_and_names_its_own_flags_only() {
        assert!(REGISTRY.iter().any(|d| d.name == DEFAULT_PROVIDER));
        let mut names: Vec<_> = REGISTRY.iter().map(|d| d.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), REGISTRY.len());
        for d in REGISTRY {
            assert!(
                !d.snapshot_engines.is_empty(),
                "{}: a default engine",
                d.name
            );
            for f in d.flags.iter().chain(d.create_flags) {
                assert!(f.starts_with("--"), "{f}");
                let owners = REGISTRY
                    .iter()
                    .filter(|o| o.flags.contains(f) || o.create_flags.contains(f))
                    .count();
                assert_eq!(owners, 1, "{f} belongs to one provider");
            }
        }
    }
}
