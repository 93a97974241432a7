//! Every environment variable the tool reads, in one place.
//!
//! AWS's variables are read by `aws-config`'s standard chain, not here: `AWS_REGION`,
//! `AWS_PROFILE`, `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`/`AWS_SESSION_TOKEN`,
//! `AWS_CONFIG_FILE`, `AWS_SHARED_CREDENTIALS_FILE`, `AWS_ENDPOINT_URL`, `AWS_MAX_ATTEMPTS`,
//! `AWS_RETRY_MODE`, `AWS_EC2_METADATA_DISABLED` and the rest of the SDK's documented set.
//! `BOOTSTRAP_AWS_ENDPOINT` is [`endpoint_var`]`("aws")`.

/// Hetzner API token (the same variable the `hcloud` CLI reads).
pub const HCLOUD_TOKEN: &str = "HCLOUD_TOKEN";
/// Path of the `hcloud` CLI's config file (default `~/.config/hcloud/cli.toml`).
pub const HCLOUD_CONFIG: &str = "HCLOUD_CONFIG";
/// Where private keys and other local state go (default: XDG state dir).
pub const BOOTSTRAP_STATE_DIR: &str = "BOOTSTRAP_STATE_DIR";
/// XDG base directory for state.
pub const XDG_STATE_HOME: &str = "XDG_STATE_HOME";
/// Home directory.
pub const HOME: &str = "HOME";
/// Retries of a single API call after the first attempt (default 5).
pub const BOOTSTRAP_RETRY_MAX: &str = "BOOTSTRAP_RETRY_MAX";
/// First retry backoff in milliseconds (default 500).
pub const BOOTSTRAP_RETRY_BASE_MS: &str = "BOOTSTRAP_RETRY_BASE_MS";
/// First polling interval in milliseconds (default 250).
pub const BOOTSTRAP_POLL_MS: &str = "BOOTSTRAP_POLL_MS";
/// Data Lifecycle Manager's endpoint alone (tests point it at a fake; moto has no DLM).
#[cfg(feature = "aws")]
pub const BOOTSTRAP_AWS_DLM_ENDPOINT: &str = "BOOTSTRAP_AWS_DLM_ENDPOINT";
/// Log filter for `-v` output (tracing `EnvFilter` syntax).
pub const BOOTSTRAP_LOG: &str = "BOOTSTRAP_LOG";

/// The endpoint override variable of a provider: `BOOTSTRAP_HETZNER_ENDPOINT` and so on
/// (tests point it at loopback).
pub fn endpoint_var(provider: &str) -> String {
    format!("BOOTSTRAP_{}_ENDPOINT", provider.to_ascii_uppercase())
}

/// A variable's value, treating empty as unset.
pub fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}
