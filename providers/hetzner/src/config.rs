//! Credentials the way the `hcloud` CLI finds them (placeholder until the full reader lands).

use std::path::PathBuf;

use bootstrap_core::Secret;

/// Hetzner API token (the same variable the `hcloud` CLI reads).
pub const HCLOUD_TOKEN: &str = "HCLOUD_TOKEN";
/// Path of the `hcloud` CLI's config file (default `~/.config/hcloud/cli.toml`).
pub const HCLOUD_CONFIG: &str = "HCLOUD_CONFIG";

/// A token and where to send it.
#[derive(Debug, Clone)]
pub struct Credentials {
    /// The API token.
    pub token: Secret,
    /// The endpoint of the chosen context, if it names one.
    pub endpoint: Option<String>,
    /// The context the token came from.
    pub context: Option<String>,
}

/// Why no credentials could be found.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(String);

/// `HCLOUD_TOKEN`, else the active context of the `hcloud` CLI's config.
pub fn credentials(
    context: Option<&str>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Credentials, ConfigError> {
    let _ = context;
    if let Some(t) = env(HCLOUD_TOKEN) {
        return Ok(Credentials {
            token: Secret::new(t),
            endpoint: None,
            context: None,
        });
    }
    let path = env(HCLOUD_CONFIG)
        .map(PathBuf::from)
        .or_else(|| env("HOME").map(|h| PathBuf::from(h).join(".config/hcloud/cli.toml")));
    if let Some(path) = path
        && let Ok(text) = std::fs::read_to_string(&path)
    {
        return token_from_hcloud_config(&text).map(|token| Credentials { token, endpoint: None, context: None }).ok_or_else(|| {
            ConfigError(format!(
                "no Hetzner token: {} has no active context with a token; set HCLOUD_TOKEN or run `hcloud context use NAME`",
                path.display()
            ))
        });
    }
    Err(ConfigError(
        "no Hetzner token: set HCLOUD_TOKEN (Cloud Console > Security > API tokens) or create an hcloud CLI context; --dry-run needs none".into(),
    ))
}

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
