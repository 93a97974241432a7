//! Every environment variable the binary itself reads, in one place.
//!
//! Each provider reads its own credentials in its crate's `config` (`HCLOUD_TOKEN` and the
//! `hcloud` CLI's config; the AWS SDK's standard chain), listed in its `Description`.
//! `BOOTSTRAP_<PROVIDER>_ENDPOINT` is [`endpoint_var`]; `HOME` and `XDG_STATE_HOME`/`XDG_CONFIG_HOME`
//! are read through the `etcetera` crate ([`state_home`], [`config_home`]).
/// Where private keys and other local state go (default: XDG state dir).
pub const BOOTSTRAP_STATE_DIR: &str = "BOOTSTRAP_STATE_DIR";
/// Retries of a single API call after the first attempt (default 5).
pub const BOOTSTRAP_RETRY_MAX: &str = "BOOTSTRAP_RETRY_MAX";
/// First retry backoff in milliseconds (default 500).
pub const BOOTSTRAP_RETRY_BASE_MS: &str = "BOOTSTRAP_RETRY_BASE_MS";
/// Shortest polling interval in milliseconds (default 1000; the wait is 5% of the time waited).
pub const BOOTSTRAP_POLL_MS: &str = "BOOTSTRAP_POLL_MS";
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

/// The XDG base directories: `XDG_STATE_HOME` / `XDG_CONFIG_HOME` when set to absolute paths,
/// else under the home directory (`~/.local/state`, `~/.config`), as the spec says.
fn xdg() -> Option<etcetera::base_strategy::Xdg> {
    etcetera::base_strategy::Xdg::new().ok()
}

/// `$XDG_STATE_HOME`, else `~/.local/state`.
pub fn state_home() -> Option<std::path::PathBuf> {
    use etcetera::BaseStrategy as _;
    xdg().and_then(|x| x.state_dir())
}

/// `$XDG_CONFIG_HOME`, else `~/.config`.
pub fn config_home() -> Option<std::path::PathBuf> {
    use etcetera::BaseStrategy as _;
    xdg().map(|x| x.config_dir())
}
