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
    }
}

/// Largest user-data the provider accepts (checked before any call, also in `--dry-run`).
pub fn user_data_limit(kind: ProviderKind) -> usize {
    match kind {
        ProviderKind::Hetzner => bootstrap_hetzner::USER_DATA_MAX_BYTES,
    }
}

/// Builds the provider, reading its credentials the way its own CLI does.
pub fn build(conn: &Connection) -> anyhow::Result<Box<dyn Provider>> {
    match conn.kind {
        ProviderKind::Hetzner => {
            let token = hetzner_token()?;
            Ok(Box::new(bootstrap_hetzner::Hetzner::new(
                token,
                conn.endpoint.as_deref(),
            )?))
        }
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
