//! Credentials the way the `scw` CLI (and Scaleway's Go SDK, `scw/config.go`) finds them, so that
//! a machine set up for `scw` works as it is.
//!
//! The order: the file is `SCW_CONFIG_PATH`, else `$XDG_CONFIG_HOME/scw/config.yaml`, else
//! `~/.config/scw/config.yaml` (a missing file is no error). Its top level is the default
//! profile; the profile in effect is the `context` argument (a future `--context` flag), else
//! `SCW_PROFILE`, else the file's `active_profile`, and its values win over the top level's.
//! The variables `SCW_SECRET_KEY`, `SCW_ACCESS_KEY`, `SCW_DEFAULT_PROJECT_ID`,
//! `SCW_DEFAULT_ORGANIZATION_ID`, `SCW_DEFAULT_ZONE` and `SCW_API_URL` win over both.
//!
//! Stricter than the CLI: a profile that does not exist is an error listing the ones that do,
//! and a missing project is an error with the fix (the API would otherwise put resources in the
//! organization's default project, where `list` and `destroy` might not look). The file is read
//! only when it is a regular file of at most [`CONFIG_MAX_BYTES`]; errors name the file, never
//! quote it, and the secret key only ever travels in a [`Secret`].

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use bootstrap_core::{Error, ErrorKind, Secret};
use serde::Deserialize;

/// The secret key (a UUID), sent as `X-Auth-Token`.
pub const SCW_SECRET_KEY: &str = "SCW_SECRET_KEY";
/// The access key (`SCW...`): not needed to call the API, read for messages only.
pub const SCW_ACCESS_KEY: &str = "SCW_ACCESS_KEY";
/// The project every resource is made in and listed from.
pub const SCW_DEFAULT_PROJECT_ID: &str = "SCW_DEFAULT_PROJECT_ID";
/// The organization; its id is also its default project's id.
pub const SCW_DEFAULT_ORGANIZATION_ID: &str = "SCW_DEFAULT_ORGANIZATION_ID";
/// The zone commands other than `create` use (`create` takes `--location`).
pub const SCW_DEFAULT_ZONE: &str = "SCW_DEFAULT_ZONE";
/// The API base URL.
pub const SCW_API_URL: &str = "SCW_API_URL";
/// The profile to use instead of the file's `active_profile`.
pub const SCW_PROFILE: &str = "SCW_PROFILE";
/// Path of the `scw` config file.
pub const SCW_CONFIG_PATH: &str = "SCW_CONFIG_PATH";
/// Where the config directory lives when set (`$XDG_CONFIG_HOME/scw`).
pub const XDG_CONFIG_HOME: &str = "XDG_CONFIG_HOME";
/// The home directory.
pub const HOME: &str = "HOME";
/// The config file under the home directory.
pub const DEFAULT_CONFIG_PATH: &str = ".config/scw/config.yaml";
/// The largest config file read: a real one is a few hundred bytes.
pub const CONFIG_MAX_BYTES: u64 = 1024 * 1024;

/// What the adapter needs to reach the API.
#[derive(Debug, Clone, PartialEq)]
pub struct Credentials {
    /// The secret key.
    pub secret_key: Secret,
    /// The project resources are made in.
    pub project_id: String,
    /// The zone from `SCW_DEFAULT_ZONE` or the profile, if any.
    pub zone: Option<String>,
    /// The API URL from `SCW_API_URL` or the profile; `None` means the default.
    pub api_url: Option<String>,
    /// The profile in effect, if any.
    pub profile: Option<String>,
}

/// Which setting named the profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProfileFrom {
    /// The `context` argument (a `--context` flag).
    Argument,
    /// `SCW_PROFILE`.
    Env,
    /// The file's `active_profile`.
    ActiveProfile,
}

impl fmt::Display for ProfileFrom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Argument => "--context",
            Self::Env => SCW_PROFILE,
            Self::ActiveProfile => "active_profile",
        })
    }
}

/// Why no credentials could be read; every variant says what to fix.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// No secret key anywhere.
    #[error(
        "no Scaleway secret key{}: set SCW_SECRET_KEY (console: IAM > API keys) or run `scw init`",
        profile_note(.profile.as_deref())
    )]
    NoSecretKey {
        /// The profile in effect.
        profile: Option<String>,
    },
    /// No project anywhere.
    #[error(
        "no Scaleway project{}: set SCW_DEFAULT_PROJECT_ID (console: Project dashboard > Settings) or `scw config set default-project-id=<id>`",
        profile_note(.profile.as_deref())
    )]
    NoProject {
        /// The profile in effect.
        profile: Option<String>,
    },
    /// A profile was named that the file does not have.
    #[error("scw profile {name:?} (from {from}) does not exist: {}", known_profiles(.known, .path.as_deref(), *.file_exists))]
    UnknownProfile {
        /// The name asked for.
        name: String,
        /// Which setting asked for it.
        from: ProfileFrom,
        /// The profiles the file has.
        known: Vec<String>,
        /// The file looked at.
        path: Option<PathBuf>,
        /// Whether it exists.
        file_exists: bool,
    },
    /// The file exists but could not be read.
    #[error("reading the scw config {}: {error}", .path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        error: std::io::Error,
    },
    /// The path is not a regular file.
    #[error("{} is not a regular file; set SCW_CONFIG_PATH to the scw CLI's config.yaml", .path.display())]
    NotAFile {
        /// The path.
        path: PathBuf,
    },
    /// The file is larger than [`CONFIG_MAX_BYTES`].
    #[error("{} is larger than {} bytes: not an scw config", .path.display(), CONFIG_MAX_BYTES)]
    TooLarge {
        /// The file.
        path: PathBuf,
    },
    /// A secret key that holds a control character (one trailing newline is trimmed).
    #[error(transparent)]
    Token(#[from] bootstrap_core::secret::TokenError),
    /// An API URL that breaks the one URL rule ([`bootstrap_core::endpoint::check`]).
    #[error("invalid {from}: {why}")]
    Endpoint {
        /// Where it was set (`SCW_API_URL`, or the config file's `api_url`).
        from: String,
        /// What is wrong, with the fix (the URL is not echoed: it may carry a password).
        why: bootstrap_core::endpoint::EndpointError,
    },
    /// The file is not the `scw` CLI's YAML (contents are not quoted: they hold keys).
    #[error("{} is not a valid scw config (contents not shown)", .path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
    },
}

fn profile_note(profile: Option<&str>) -> String {
    profile
        .map(|p| format!(" (scw profile {p:?} has none)"))
        .unwrap_or_default()
}

fn known_profiles(known: &[String], path: Option<&Path>, file_exists: bool) -> String {
    match path {
        None => "there is no scw config file (SCW_CONFIG_PATH and HOME are unset)".into(),
        Some(p) if !file_exists => format!(
            "there is no scw config file at {} (`scw init` makes one)",
            p.display()
        ),
        Some(p) if known.is_empty() => format!("{} has no profiles", p.display()),
        Some(p) => format!("{} has {}", p.display(), known.join(", ")),
    }
}

impl From<ConfigError> for Error {
    fn from(e: ConfigError) -> Self {
        // Every one of them is for the user to fix before any call: exit 2.
        Error::new(ErrorKind::InvalidInput, e.to_string())
    }
}

/// One profile of the file (its top level is one too); only the fields read here.
#[derive(Debug, Default, Clone, Deserialize)]
struct Profile {
    #[serde(default)]
    secret_key: Option<String>,
    #[serde(default)]
    default_project_id: Option<String>,
    #[serde(default)]
    default_organization_id: Option<String>,
    #[serde(default)]
    default_zone: Option<String>,
    #[serde(default)]
    api_url: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct ScwConfig {
    #[serde(flatten)]
    top: Profile,
    #[serde(default)]
    active_profile: Option<String>,
    #[serde(default)]
    profiles: BTreeMap<String, Profile>,
}

/// Reads the credentials like the `scw` CLI. `context` names a profile and wins over
/// `SCW_PROFILE` and `active_profile`; `env` reads a variable (empty counts as unset).
pub fn credentials(
    context: Option<&str>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Credentials, ConfigError> {
    let var = |name: &str| env(name).filter(|v| !v.trim().is_empty());
    let path = var(SCW_CONFIG_PATH)
        .map(PathBuf::from)
        .or_else(|| var(XDG_CONFIG_HOME).map(|x| Path::new(&x).join("scw/config.yaml")))
        .or_else(|| var(HOME).map(|h| Path::new(&h).join(DEFAULT_CONFIG_PATH)));
    let file = match &path {
        Some(p) => read_config(p)?
            .map(|text| parse_config(p, &text))
            .transpose()?,
        None => None,
    };
    let wanted = context
        .filter(|c| !c.is_empty())
        .map(|c| (c.to_owned(), ProfileFrom::Argument))
        .or_else(|| var(SCW_PROFILE).map(|p| (p, ProfileFrom::Env)))
        .or_else(|| {
            file.as_ref()
                .and_then(|f| f.active_profile.clone())
                .filter(|p| !p.is_empty())
                .map(|p| (p, ProfileFrom::ActiveProfile))
        });
    let top = file.as_ref().map(|f| f.top.clone()).unwrap_or_default();
    let (profile_name, profile) = match wanted {
        // The SDK's name for the top level.
        Some((name, _)) if name == "default" => (Some(name), Profile::default()),
        Some((name, from)) => match file.as_ref().and_then(|f| f.profiles.get(&name)) {
            Some(p) => (Some(name), p.clone()),
            None => {
                return Err(ConfigError::UnknownProfile {
                    name,
                    from,
                    known: file
                        .as_ref()
                        .map(|f| f.profiles.keys().cloned().collect())
                        .unwrap_or_default(),
                    path: path.clone(),
                    file_exists: file.is_some(),
                });
            }
        },
        None => (None, Profile::default()),
    };
    // The value and where it was set: the variable, else the profile's key, else the top level's.
    let pick_from = |env_name: &str, key: &str, f: fn(&Profile) -> &Option<String>| {
        let in_file = |p: &Profile, which: &str| {
            f(p).clone().filter(|v| !v.is_empty()).map(|v| {
                let file = path.clone().unwrap_or_default();
                (v, format!("{key} of {which} in {}", file.display()))
            })
        };
        var(env_name)
            .map(|v| (v, env_name.to_owned()))
            .or_else(|| {
                let which = format!("scw profile {:?}", profile_name.as_deref().unwrap_or(""));
                in_file(&profile, &which)
            })
            .or_else(|| in_file(&top, "the default scw profile"))
    };
    let pick = |env_name: &str, f: fn(&Profile) -> &Option<String>| {
        pick_from(env_name, "", f).map(|(v, _)| v)
    };
    let (secret, secret_from) = pick_from(SCW_SECRET_KEY, "secret_key", |p| &p.secret_key)
        .ok_or_else(|| ConfigError::NoSecretKey {
            profile: profile_name.clone(),
        })?;
    let api_url = match pick_from(SCW_API_URL, "api_url", |p| &p.api_url) {
        Some((e, from)) => match bootstrap_core::endpoint::check(&e) {
            Ok(_) => Some(e),
            Err(why) => return Err(ConfigError::Endpoint { from, why }),
        },
        None => None,
    };
    // The organization's id is its default project's id, as for the SDK.
    let project = pick(SCW_DEFAULT_PROJECT_ID, |p| &p.default_project_id)
        .or_else(|| pick(SCW_DEFAULT_ORGANIZATION_ID, |p| &p.default_organization_id))
        .ok_or_else(|| ConfigError::NoProject {
            profile: profile_name.clone(),
        })?;
    Ok(Credentials {
        secret_key: bootstrap_core::secret::token(&secret_from, &secret)?,
        project_id: project.trim().to_owned(),
        zone: pick(SCW_DEFAULT_ZONE, |p| &p.default_zone),
        api_url,
        profile: profile_name,
    })
}

/// The zone `SCW_DEFAULT_ZONE` or the `scw` profile names, read offline and without needing the
/// keys (for `create`'s default zone); `None` when neither names one or the file is unusable
/// (connecting reports that).
pub fn default_zone(env: &dyn Fn(&str) -> Option<String>) -> Option<String> {
    // Only the zone is wanted: stand-ins for the keys keep their absence from failing here.
    let stand_in = |k: &str| match k {
        SCW_SECRET_KEY | SCW_DEFAULT_PROJECT_ID => Some("-".to_owned()),
        _ => env(k),
    };
    credentials(None, &stand_in).ok()?.zone
}

/// The file's text; `None` when there is none.
fn read_config(path: &Path) -> Result<Option<String>, ConfigError> {
    use bootstrap_core::config_file::{ReadError, read_capped};
    read_capped(path, CONFIG_MAX_BYTES).map_err(|e| match e {
        ReadError::Io(error) => ConfigError::Read {
            path: path.to_owned(),
            error,
        },
        ReadError::NotAFile => ConfigError::NotAFile {
            path: path.to_owned(),
        },
        ReadError::TooLarge(_) => ConfigError::TooLarge {
            path: path.to_owned(),
        },
    })
}

fn parse_config(path: &Path, text: &str) -> Result<ScwConfig, ConfigError> {
    if text.trim().is_empty() {
        return Ok(ScwConfig::default());
    }
    serde_saphyr::from_str(text).map_err(|_| ConfigError::Invalid {
        path: path.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    const FILE: &str = "secret_key: 11111111-1111-1111-1111-111111111111\n\
default_project_id: aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa\n\
default_zone: fr-par-1\n\
active_profile: prod\n\
profiles:\n  prod:\n    secret_key: 22222222-2222-2222-2222-222222222222\n    default_zone: nl-ams-1\n  \
dev:\n    default_project_id: bbbbbbbb-bbbb-bbbb-bbbb-bbbbbbbbbbbb\n";

    fn env_with(file: &Path, vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let mut m: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        m.insert(SCW_CONFIG_PATH.into(), file.display().to_string());
        move |k| m.get(k).cloned()
    }

    fn write(dir: &tempfile::TempDir, text: &str) -> PathBuf {
        let p = dir.path().join("config.yaml");
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn profiles_layer_over_the_top_level_and_variables_win() {
        let d = tempfile::tempdir().unwrap();
        let p = write(&d, FILE);
        let c = credentials(None, &env_with(&p, &[])).unwrap();
        assert_eq!(c.profile.as_deref(), Some("prod"));
        assert_eq!(
            c.secret_key.expose(),
            "22222222-2222-2222-2222-222222222222"
        );
        assert_eq!(c.project_id, "aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa");
        assert_eq!(c.zone.as_deref(), Some("nl-ams-1"));
        let c = credentials(Some("dev"), &env_with(&p, &[(SCW_PROFILE, "prod")])).unwrap();
        assert_eq!(c.profile.as_deref(), Some("dev"));
        assert_eq!(
            c.secret_key.expose(),
            "11111111-1111-1111-1111-111111111111"
        );
        assert_eq!(c.project_id, "bbbbbbbb-bbbb-bbbb-bbbb-bbbbbbbbbbbb");
        let c = credentials(
            None,
            &env_with(
                &p,
                &[
                    (SCW_SECRET_KEY, "33333333-3333-3333-3333-333333333333"),
                    (SCW_DEFAULT_ZONE, "pl-waw-1"),
                ],
            ),
        )
        .unwrap();
        assert_eq!(
            c.secret_key.expose(),
            "33333333-3333-3333-3333-333333333333"
        );
        assert_eq!(c.zone.as_deref(), Some("pl-waw-1"));
    }

    #[test]
    fn an_unknown_profile_lists_the_known_ones() {
        let d = tempfile::tempdir().unwrap();
        let p = write(&d, FILE);
        let e = credentials(Some("staging"), &env_with(&p, &[])).unwrap_err();
        let text = e.to_string();
        assert!(text.contains("\"staging\" (from --context)"), "{text}");
        assert!(text.contains("dev, prod"), "{text}");
        let e = credentials(None, &env_with(&p, &[(SCW_PROFILE, "x")])).unwrap_err();
        assert!(e.to_string().contains("from SCW_PROFILE"), "{e}");
    }

    #[test]
    fn missing_key_or_project_says_the_fix_and_never_prints_the_key() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("none.yaml");
        let e = credentials(None, &env_with(&p, &[])).unwrap_err();
        assert!(e.to_string().contains("set SCW_SECRET_KEY"), "{e}");
        let e = credentials(None, &env_with(&p, &[(SCW_SECRET_KEY, "s3cr3t-value")])).unwrap_err();
        assert!(e.to_string().contains("SCW_DEFAULT_PROJECT_ID"), "{e}");
        assert!(!e.to_string().contains("s3cr3t"));
        let core: Error = e.into();
        assert_eq!(core.kind(), &ErrorKind::InvalidInput);
        // The organization id stands in for its default project.
        let c = credentials(
            None,
            &env_with(
                &p,
                &[
                    (SCW_SECRET_KEY, "k"),
                    (SCW_DEFAULT_ORGANIZATION_ID, "org-id"),
                ],
            ),
        )
        .unwrap();
        assert_eq!(c.project_id, "org-id");
    }

    #[test]
    fn bad_files_are_named_not_quoted() {
        let d = tempfile::tempdir().unwrap();
        let p = write(&d, "secret_key: [unclosed-SECRET\n  : :");
        let e = credentials(None, &env_with(&p, &[])).unwrap_err();
        assert!(matches!(e, ConfigError::Invalid { .. }), "{e}");
        assert!(!e.to_string().contains("SECRET"));
        let e = credentials(None, &env_with(d.path(), &[])).unwrap_err();
        assert!(matches!(e, ConfigError::NotAFile { .. }), "{e}");
        let big = write(&d, &"#".repeat(CONFIG_MAX_BYTES as usize + 2));
        let e = credentials(None, &env_with(&big, &[])).unwrap_err();
        assert!(matches!(e, ConfigError::TooLarge { .. }), "{e}");
    }
}
