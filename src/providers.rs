//! The only place that matches on `--provider`: credentials, defaults, limits and construction.

use std::path::PathBuf;

use bootstrap_core::{Provider, Secret};

use crate::cli::ProviderKind;
use crate::env;
use crate::settings::{Connection, bad};

/// Lowercase provider name, as in `--provider`.
pub fn name(kind: ProviderKind) -> &'static str {
    match kind {
        ProviderKind::Hetzner => "hetzner",
        #[cfg(feature = "aws")]
        ProviderKind::Aws => "aws",
    }
}

/// Default server type, image and location.
#[derive(Debug, Clone, Copy)]
pub struct Defaults {
    /// Server type.
    pub server_type: &'static str,
    /// Image.
    pub image: &'static str,
    /// Location.
    pub location: &'static str,
}

/// The defaults of a provider.
pub fn defaults(kind: ProviderKind) -> Defaults {
    match kind {
        ProviderKind::Hetzner => Defaults {
            server_type: bootstrap_hetzner::defaults::SERVER_TYPE,
            image: bootstrap_hetzner::defaults::IMAGE,
            location: bootstrap_hetzner::defaults::LOCATION,
        },
        #[cfg(feature = "aws")]
        ProviderKind::Aws => Defaults {
            server_type: bootstrap_aws::defaults::SERVER_TYPE,
            image: bootstrap_aws::defaults::IMAGE,
            location: bootstrap_aws::defaults::LOCATION,
        },
    }
}

/// Snapshot engines a provider offers, its default first.
pub fn snapshot_engines(kind: ProviderKind) -> &'static [crate::cli::SnapshotEngine] {
    use crate::cli::SnapshotEngine;
    match kind {
        ProviderKind::Hetzner => &[SnapshotEngine::Job],
        #[cfg(feature = "aws")]
        // Data Lifecycle Manager by default; the job where DLM cannot be used (no role, or a
        // schedule kept from any machine alongside other providers').
        ProviderKind::Aws => &[SnapshotEngine::Dlm, SnapshotEngine::Job],
    }
}

/// Whether the provider has its own backups that `--provider-backups` turns on.
pub fn has_provider_backups(kind: ProviderKind) -> bool {
    matches!(kind, ProviderKind::Hetzner)
}

/// Largest user-data the provider accepts (checked before any call, also in `--dry-run`).
pub fn user_data_limit(kind: ProviderKind) -> usize {
    match kind {
        ProviderKind::Hetzner => bootstrap_hetzner::USER_DATA_MAX_BYTES,
        #[cfg(feature = "aws")]
        ProviderKind::Aws => bootstrap_aws::USER_DATA_MAX_BYTES,
    }
}

/// Checks the provider-specific flags offline (exit 2 before any call); flags of another
/// provider are refused rather than ignored.
#[cfg(feature = "aws")]
pub fn check_connection(conn: &Connection) -> anyhow::Result<()> {
    let a = &conn.aws;
    match conn.kind {
        ProviderKind::Aws => a.validate().map_err(|e| bad(e.to_string())),
        ProviderKind::Hetzner => {
            for (flag, set) in [
                ("--region", a.region.is_some()),
                ("--profile", a.profile.is_some()),
                ("--vpc", a.vpc.is_some()),
                ("--subnet", a.subnet.is_some()),
            ] {
                if set {
                    return Err(bad(format!(
                        "{flag} only applies to --provider aws; Hetzner's counterpart is --location"
                    )));
                }
            }
            Ok(())
        }
    }
}

/// Checks server type, image and location against what the provider accepts, offline.
pub fn check_server(
    conn: &Connection,
    server_type: &str,
    image: &str,
    location: &str,
) -> anyhow::Result<()> {
    match conn.kind {
        ProviderKind::Hetzner => {
            let _ = (server_type, image, location);
            Ok(())
        }
        #[cfg(feature = "aws")]
        ProviderKind::Aws => {
            let b = |e: bootstrap_core::Error| bad(e.to_string());
            bootstrap_aws::check_instance_type(server_type).map_err(b)?;
            bootstrap_aws::image::check(image).map_err(b)?;
            bootstrap_aws::check_zone(location).map_err(b)?;
            if conn.aws.subnet.is_some() && location != bootstrap_aws::defaults::LOCATION {
                return Err(bad(
                    "--location and --subnet both choose the availability zone: give one of them",
                ));
            }
            Ok(())
        }
    }
}

/// Builds the provider, reading its credentials the way its own CLI does.
pub async fn build(conn: &Connection) -> anyhow::Result<Box<dyn Provider>> {
    match conn.kind {
        ProviderKind::Hetzner => {
            let token = hetzner_token()?;
            Ok(Box::new(bootstrap_hetzner::Hetzner::new(
                token,
                conn.endpoint.as_deref(),
            )?))
        }
        #[cfg(feature = "aws")]
        ProviderKind::Aws => match bootstrap_aws::Aws::connect(conn.aws.clone()).await {
            Ok(p) => Ok(Box::new(p)),
            // A missing region or credentials is for the user to fix: exit 2.
            Err(e)
                if matches!(
                    e.kind(),
                    bootstrap_core::ErrorKind::InvalidInput
                        | bootstrap_core::ErrorKind::Unauthorized
                ) =>
            {
                Err(bad(e.to_string()))
            }
            Err(e) => Err(e.into()),
        },
    }
}

/// `HCLOUD_TOKEN`, else the active context of the `hcloud` CLI's config (`$HCLOUD_CONFIG` or
/// `~/.config/hcloud/cli.toml`).
fn hetzner_token() -> anyhow::Result<Secret> {
    if let Some(t) = env::var(env::HCLOUD_TOKEN) {
        return Ok(Secret::new(t));
    }
    let path = env::var(env::HCLOUD_CONFIG)
        .map(PathBuf::from)
        .or_else(|| env::var(env::HOME).map(|h| PathBuf::from(h).join(".config/hcloud/cli.toml")));
    if let Some(path) = path
        && let Ok(text) = std::fs::read_to_string(&path)
    {
        return token_from_hcloud_config(&text).ok_or_else(|| {
            bad(format!(
                "no Hetzner token: {} has no active context with a token; set HCLOUD_TOKEN or run `hcloud context use NAME`",
                path.display()
            ))
        });
    }
    Err(bad(
        "no Hetzner token: set HCLOUD_TOKEN (Cloud Console > Security > API tokens) or create an hcloud CLI context; --dry-run needs none",
    ))
}

/// The token of the active context in an `hcloud` `cli.toml`.
fn token_from_hcloud_config(text: &str) -> Option<Secret> {
    #[derive(serde::Deserialize)]
    struct Config {
        active_context: Option<String>,
        #[serde(default)]
        contexts: Vec<Context>,
    }
    #[derive(serde::Deserialize)]
    struct Context {
        name: String,
        token: Option<String>,
    }
    let c: Config = toml::from_str(text).ok()?;
    let active = c.active_context?;
    c.contexts
        .into_iter()
        .find(|x| x.name == active)
        .and_then(|x| x.token)
        .filter(|t| !t.is_empty())
        .map(Secret::new)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_active_hcloud_context() {
        let cfg = r#"
active_context = "prod"
[[contexts]]
name = "dev"
token = "devtoken"
[[contexts]]
name = "prod"
token = "prodtoken"
"#;
        assert_eq!(token_from_hcloud_config(cfg).unwrap().expose(), "prodtoken");
        assert!(token_from_hcloud_config("[[contexts]]\nname = \"x\"\ntoken = \"t\"\n").is_none());
        assert!(token_from_hcloud_config("not toml [").is_none());
    }
}
