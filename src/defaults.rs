//! The defaults file, `$XDG_CONFIG_HOME/bootstrap/config.toml` (or `~/.config/bootstrap/…`,
//! or `BOOTSTRAP_CONFIG`): per provider, the `create` flags people repeat. A flag on the command
//! line wins over the file, the file over the built-in default. Unknown keys are refused with
//! the file and line; the file's contents are never echoed.
//!
//! ```toml
//! [hetzner]
//! location = "nbg1"
//! server_type = "cx23"
//! image = "debian-12"
//! ssh_from = ["203.0.113.7/32", "2001:db8::/48"]
//! admin_user = "ops"
//! snapshots = "weekly:4"
//! snapshot_time = "04:00"
//! snapshot_day = "wed"
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;

use clap::ArgMatches;
use clap::parser::ValueSource;
use serde::Deserialize;

use crate::cli::CreateArgs;
use crate::env;
use crate::settings::bad;

/// The variable naming another defaults file.
pub const BOOTSTRAP_CONFIG: &str = "BOOTSTRAP_CONFIG";
/// A real defaults file is a few hundred bytes.
const MAX_BYTES: u64 = 64 * 1024;

/// One provider's defaults.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProviderDefaults {
    location: Option<String>,
    server_type: Option<String>,
    image: Option<String>,
    ssh_from: Option<Vec<String>>,
    admin_user: Option<String>,
    snapshots: Option<String>,
    snapshot_time: Option<String>,
    snapshot_day: Option<String>,
}

/// Where the defaults file is looked for.
fn path() -> Option<PathBuf> {
    if let Some(p) = env::var(BOOTSTRAP_CONFIG) {
        return Some(PathBuf::from(p));
    }
    Some(env::config_home()?.join("bootstrap").join("config.toml"))
}

/// The 1-based line of byte `offset` in `text`.
fn line_of(text: &str, offset: usize) -> usize {
    text.get(..offset).map_or(0, |t| t.matches('\n').count()) + 1
}

/// Reads the file: every table must be a provider this build knows, every key one of
/// [`ProviderDefaults`]'. `Ok(empty)` when there is no file.
fn load() -> anyhow::Result<(Option<PathBuf>, BTreeMap<String, ProviderDefaults>)> {
    let Some(path) = path() else {
        return Ok((None, BTreeMap::new()));
    };
    let text = match bootstrap_core::config_file::read_capped(&path, MAX_BYTES) {
        Ok(Some(t)) => t,
        Ok(None) => return Ok((None, BTreeMap::new())),
        Err(e) => return Err(bad(format!("defaults file {}: {e}", path.display()))),
    };
    let parsed: BTreeMap<String, ProviderDefaults> = toml::from_str(&text).map_err(|e| {
        // toml's Display quotes the offending line: name the place and the reason only.
        let line = e
            .span()
            .map_or_else(String::new, |s| format!(" line {}", line_of(&text, s.start)));
        bad(format!(
            "defaults file {}{line}: {}; keys per [provider] table: location, server_type, image, ssh_from, admin_user, snapshots, snapshot_time, snapshot_day",
            path.display(),
            e.message().lines().next().unwrap_or("not valid TOML")
        ))
    })?;
    for provider in parsed.keys() {
        if crate::providers::kind(provider).is_none() {
            let line = text
                .lines()
                .position(|l| l.trim() == format!("[{provider}]"))
                .map_or_else(String::new, |i| format!(" line {}", i + 1));
            return Err(bad(format!(
                "defaults file {}{line}: unknown provider table; use one of {}",
                path.display(),
                crate::providers::REGISTRY
                    .iter()
                    .map(|d| d.name)
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
    }
    Ok((Some(path), parsed))
}

/// Fills `create`/`render` flags the user did not type from the defaults file; returns the
/// file used, if it set anything.
pub fn apply(a: &mut CreateArgs, m: &ArgMatches) -> anyhow::Result<Option<PathBuf>> {
    let (path, all) = load()?;
    let d = a
        .connect
        .provider
        .and_then(|k| all.get(k.name()).cloned())
        .unwrap_or_default();
    let typed = |id: &str| m.value_source(id) == Some(ValueSource::CommandLine);
    let set = |id: &str, slot: &mut Option<String>, v: Option<String>| {
        if let Some(v) = v
            && !typed(id)
        {
            *slot = Some(v);
        }
    };
    set("location", &mut a.location, d.location);
    set("server_type", &mut a.server_type, d.server_type);
    set("image", &mut a.image, d.image);
    let plain = |id: &str, slot: &mut String, v: Option<String>| {
        if let Some(v) = v
            && !typed(id)
        {
            *slot = v;
        }
    };
    plain("admin_user", &mut a.admin_user, d.admin_user);
    plain("spec", &mut a.snapshots.spec, d.snapshots);
    plain("time", &mut a.snapshots.time, d.snapshot_time);
    plain("day", &mut a.snapshots.day, d.snapshot_day);
    if let Some(v) = d.ssh_from
        && !typed("ssh_from")
    {
        a.ssh_from = v;
    }
    if a.ssh_from.is_empty() {
        return Err(bad(
            "--ssh-from is required: the networks that may reach SSH, e.g. --ssh-from 203.0.113.7/32 (or ssh_from in the defaults file)",
        ));
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    #[test]
    fn lines_are_counted_from_one() {
        let t = "a = 1\n[x]\nb = 2\n";
        assert_eq!(super::line_of(t, 0), 1);
        assert_eq!(super::line_of(t, t.find("b =").unwrap()), 3);
    }
}
