//! Credentials the way `doctl` finds them, so that a machine set up for `doctl` works as it is.
//!
//! The order: `DIGITALOCEAN_TOKEN` (the variable Terraform and most tools read), then
//! `DIGITALOCEAN_ACCESS_TOKEN` (doctl's own), then doctl's config file. The file is
//! `$XDG_CONFIG_HOME/doctl/config.yaml`, else `~/.config/doctl/config.yaml` (a missing file is no
//! error). In it, the context in effect is the `context` argument (a `--context` flag), else
//! `DIGITALOCEAN_CONTEXT`, else the file's `context`, else `default`; the `default` context's
//! token is the top-level `access-token`, any other's is `auth-contexts.<name>`. The endpoint
//! is `DIGITALOCEAN_API_URL`, else the file's `api-url` (doctl's own settings; both are the
//! origin without `/v2`).
//!
//! A context name that does not exist is an error listing the ones that do. The file is read
//! only when it is a regular file of at most [`CONFIG_MAX_BYTES`]; errors name the file, never
//! quote it, and the token only ever travels in a [`Secret`].

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use bootstrap_core::secret::token;
use bootstrap_core::{Error, ErrorKind, Secret};
use serde::Deserialize;

/// The API token most tools read (Terraform's provider, the Python and Go SDK examples).
pub const DIGITALOCEAN_TOKEN: &str = "DIGITALOCEAN_TOKEN";
/// doctl's token variable (`--access-token`).
pub const DIGITALOCEAN_ACCESS_TOKEN: &str = "DIGITALOCEAN_ACCESS_TOKEN";
/// doctl's context variable (`--context`).
pub const DIGITALOCEAN_CONTEXT: &str = "DIGITALOCEAN_CONTEXT";
/// doctl's API URL variable (`--api-url`): the origin, without `/v2`.
pub const DIGITALOCEAN_API_URL: &str = "DIGITALOCEAN_API_URL";
/// The XDG config directory, where doctl keeps `doctl/config.yaml`.
pub const XDG_CONFIG_HOME: &str = "XDG_CONFIG_HOME";
/// The home directory, under which the default config file lives.
pub const HOME: &str = "HOME";
/// Where the config file lives under the home directory without `XDG_CONFIG_HOME`.
pub const DEFAULT_CONFIG_PATH: &str = ".config/doctl/config.yaml";
/// doctl's name for the context whose token is the top-level `access-token`.
pub const DEFAULT_CONTEXT: &str = "default";
/// The largest config file read: a real one is a few kilobytes.
pub const CONFIG_MAX_BYTES: u64 = 1024 * 1024;

/// What the adapter needs to reach the API, and where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Credentials {
    /// The API token.
    pub token: Secret,
    /// The endpoint from `DIGITALOCEAN_API_URL` or the file's `api-url`; `None` means the
    /// default. The tool's own override (`--endpoint`) wins over it.
    pub endpoint: Option<String>,
    /// Where the token came from, for hints when the API refuses it.
    pub token_source: TokenSource,
}

/// Where a token was found: what to tell a user whose token is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSource {
    /// A variable (`DIGITALOCEAN_TOKEN` or `DIGITALOCEAN_ACCESS_TOKEN`).
    Env(&'static str),
    /// The token of this doctl context in this config file.
    Context {
        /// The context's name (`default` for the top-level `access-token`).
        name: String,
        /// The config file.
        path: PathBuf,
    },
}

impl fmt::Display for TokenSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Env(var) => f.write_str(var),
            Self::Context { name, path } => {
                write!(f, "doctl context {name:?} in {}", path.display())
            }
        }
    }
}

/// Which setting named the context, so that an unknown name can be traced to where it was set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContextFrom {
    /// The `context` argument (a `--context` flag).
    Argument,
    /// The `DIGITALOCEAN_CONTEXT` variable.
    Env,
    /// The config file's `context`.
    File,
}

impl fmt::Display for ContextFrom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Argument => "--context",
            Self::Env => DIGITALOCEAN_CONTEXT,
            Self::File => "the config file's context",
        })
    }
}

/// Why no credentials could be read; every variant says what to fix.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// No variable and no context with a token.
    #[error(
        "no DigitalOcean token{}: set DIGITALOCEAN_TOKEN (Control Panel > API > Tokens) or run `doctl auth init`",
        no_token_note(.context.as_deref())
    )]
    NoToken {
        /// The context in effect, which has no token.
        context: Option<String>,
    },
    /// A context was named that the file does not have.
    #[error("doctl context {name:?} (from {from}) does not exist: {}", known_contexts(.known, .path.as_deref(), *.file_exists))]
    UnknownContext {
        /// The name asked for.
        name: String,
        /// Which setting asked for it.
        from: ContextFrom,
        /// The contexts the file has (`default` first when it has an `access-token`).
        known: Vec<String>,
        /// The config file looked at, if any.
        path: Option<PathBuf>,
        /// Whether that file exists.
        file_exists: bool,
    },
    /// The config file exists but could not be read.
    #[error("reading the doctl config {}: {error}", .path.display())]
    Read {
        /// The config file.
        path: PathBuf,
        /// The I/O error (it never quotes the file).
        error: std::io::Error,
    },
    /// The config path is a directory, a device or a pipe.
    #[error("{} is not a regular file: not a doctl config", .path.display())]
    NotAFile {
        /// The config path.
        path: PathBuf,
    },
    /// The config file is larger than [`CONFIG_MAX_BYTES`].
    #[error("{} is larger than {} bytes: not a doctl config", .path.display(), CONFIG_MAX_BYTES)]
    TooLarge {
        /// The config file.
        path: PathBuf,
    },
    /// A token that holds a control character (one trailing newline is trimmed).
    #[error(transparent)]
    Token(#[from] bootstrap_core::secret::TokenError),
    /// An endpoint that breaks the one URL rule ([`bootstrap_core::endpoint::check`]).
    #[error("invalid {from}: {why}")]
    Endpoint {
        /// Where it was set (`DIGITALOCEAN_API_URL`, or the config file's `api-url`).
        from: String,
        /// What is wrong, with the fix (the URL is not echoed: it may carry a password).
        why: bootstrap_core::endpoint::EndpointError,
    },
    /// The file is not doctl's YAML (the contents are not quoted: they hold tokens).
    #[error("{} is not a valid doctl config (contents not shown)", .path.display())]
    Invalid {
        /// The config file.
        path: PathBuf,
    },
}

fn no_token_note(context: Option<&str>) -> String {
    context
        .map(|c| format!(" (doctl context {c:?} has none)"))
        .unwrap_or_default()
}

fn known_contexts(known: &[String], path: Option<&Path>, file_exists: bool) -> String {
    match path {
        None => "there is no doctl config file (XDG_CONFIG_HOME and HOME are unset)".into(),
        Some(p) if !file_exists => format!(
            "there is no doctl config file at {} (`doctl auth init --context NAME` makes one)",
            p.display()
        ),
        Some(p) if known.is_empty() => format!(
            "{} has no contexts (`doctl auth init --context NAME` makes one)",
            p.display()
        ),
        Some(p) => format!("{} has {}", p.display(), known.join(", ")),
    }
}

impl From<ConfigError> for Error {
    fn from(e: ConfigError) -> Self {
        let kind = match e {
            ConfigError::NoToken { .. } => ErrorKind::Unauthorized,
            _ => ErrorKind::InvalidInput,
        };
        Error::new(kind, e.to_string())
    }
}

/// doctl's `config.yaml`: only the fields read here; unknown ones are ignored.
#[derive(Debug, Default, Deserialize)]
struct DoctlConfig {
    #[serde(default, rename = "access-token")]
    access_token: Option<String>,
    #[serde(default, rename = "auth-contexts")]
    auth_contexts: Option<BTreeMap<String, Option<String>>>,
    #[serde(default)]
    context: Option<String>,
    #[serde(default, rename = "api-url")]
    api_url: Option<String>,
}

impl DoctlConfig {
    /// The token of a context: `default` is the top-level `access-token`.
    fn token_of(&self, context: &str) -> Option<Option<&str>> {
        if context == DEFAULT_CONTEXT {
            return Some(self.access_token.as_deref().filter(|t| !t.is_empty()));
        }
        self.auth_contexts
            .as_ref()?
            .get(context)
            .map(|t| t.as_deref().filter(|t| !t.is_empty()))
    }

    fn known(&self) -> Vec<String> {
        let mut known = Vec::new();
        if self.access_token.as_deref().is_some_and(|t| !t.is_empty()) {
            known.push(DEFAULT_CONTEXT.to_owned());
        }
        if let Some(c) = &self.auth_contexts {
            known.extend(c.keys().filter(|k| *k != DEFAULT_CONTEXT).cloned());
        }
        known
    }
}

/// Reads the credentials like doctl does. `context` is an explicit choice (a `--context` flag)
/// and wins over `DIGITALOCEAN_CONTEXT` and the file's `context`; `env` reads a variable
/// (injected so tests need not touch the process environment; empty counts as unset).
pub fn credentials(
    context: Option<&str>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Credentials, ConfigError> {
    let var = |name: &str| env(name).filter(|v| !v.is_empty());
    let endpoint_env = var(DIGITALOCEAN_API_URL)
        .map(|e| checked(DIGITALOCEAN_API_URL.to_owned(), e))
        .transpose()?;
    // A variable token wins outright; the file is then only read for a context asked for.
    let env_token = [DIGITALOCEAN_TOKEN, DIGITALOCEAN_ACCESS_TOKEN]
        .into_iter()
        .find_map(|v| var(v).map(|t| (v, t)));
    let path = var(XDG_CONFIG_HOME)
        .map(|x| Path::new(&x).join("doctl/config.yaml"))
        .or_else(|| var(HOME).map(|h| Path::new(&h).join(DEFAULT_CONFIG_PATH)));
    let explicit = context.filter(|c| !c.is_empty());
    if let Some((name, t)) = &env_token
        && explicit.is_none()
    {
        return Ok(Credentials {
            token: token(name, t)?,
            endpoint: endpoint_env,
            token_source: TokenSource::Env(name),
        });
    }
    let file = match &path {
        Some(p) => read_config(p)?
            .map(|text| parse_config(p, &text))
            .transpose()?,
        None => None,
    };
    let (name, from) = explicit
        .map(|c| (c.to_owned(), ContextFrom::Argument))
        .or_else(|| var(DIGITALOCEAN_CONTEXT).map(|c| (c, ContextFrom::Env)))
        .or_else(|| {
            file.as_ref()
                .and_then(|f| f.context.clone())
                .filter(|c| !c.is_empty())
                .map(|c| (c, ContextFrom::File))
        })
        .unwrap_or_else(|| (DEFAULT_CONTEXT.to_owned(), ContextFrom::File));
    let endpoint = match endpoint_env {
        Some(e) => Some(e),
        None => file
            .as_ref()
            .and_then(|f| f.api_url.clone())
            .filter(|u| !u.is_empty())
            .map(|e| {
                let from = format!("api-url in {}", path.clone().unwrap_or_default().display());
                checked(from, e)
            })
            .transpose()?,
    };
    let found = file.as_ref().and_then(|f| f.token_of(&name));
    match (found, env_token) {
        // An explicit context must exist even when a variable holds the token.
        (None, _) if name != DEFAULT_CONTEXT || from == ContextFrom::Argument => {
            Err(ConfigError::UnknownContext {
                name,
                from,
                known: file.as_ref().map(DoctlConfig::known).unwrap_or_default(),
                path,
                file_exists: file.is_some(),
            })
        }
        (Some(Some(t)), _) => Ok(Credentials {
            token: token(
                &format!(
                    "the token of doctl context {name:?} in {}",
                    path.clone().unwrap_or_default().display()
                ),
                t,
            )?,
            endpoint,
            token_source: TokenSource::Context {
                name,
                path: path.unwrap_or_default(),
            },
        }),
        (_, Some((var_name, t))) => Ok(Credentials {
            token: token(var_name, &t)?,
            endpoint,
            token_source: TokenSource::Env(var_name),
        }),
        (Some(None), None) => Err(ConfigError::NoToken {
            context: Some(name),
        }),
        (None, None) => Err(ConfigError::NoToken { context: None }),
    }
}

/// `e` under the one URL rule, `from` naming where it was set.
fn checked(from: String, e: String) -> Result<String, ConfigError> {
    match bootstrap_core::endpoint::check(&e) {
        Ok(_) => Ok(e),
        Err(why) => Err(ConfigError::Endpoint { from, why }),
    }
}

/// The file's text; `None` when there is no file (as for doctl, that is no error).
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

fn parse_config(path: &Path, text: &str) -> Result<DoctlConfig, ConfigError> {
    if text.trim().is_empty() {
        return Ok(DoctlConfig::default());
    }
    // The parser's message may quote the file (a token included): say only that it is bad.
    serde_saphyr::from_str(text).map_err(|_| ConfigError::Invalid {
        path: path.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    const TOKEN_D: &str = "dop_v1_default0123456789";
    const TOKEN_W: &str = "dop_v1_work0123456789";

    fn config() -> String {
        format!(
            "access-token: {TOKEN_D}\nauth-contexts:\n  work: {TOKEN_W}\n  empty: \"\"\ncontext: default\noutput: text\n"
        )
    }

    /// A temp dir holding `doctl/config.yaml` with `text`, and an env pointing at it.
    fn setup(text: &str) -> (tempfile::TempDir, HashMap<&'static str, String>) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("doctl")).unwrap();
        std::fs::write(dir.path().join("doctl/config.yaml"), text).unwrap();
        let env = HashMap::from([(XDG_CONFIG_HOME, dir.path().display().to_string())]);
        (dir, env)
    }

    fn read(
        context: Option<&str>,
        env: &HashMap<&'static str, String>,
    ) -> Result<Credentials, ConfigError> {
        credentials(context, &|k| env.get(k).cloned())
    }

    #[test]
    fn variables_win_in_order() {
        let (_d, mut env) = setup(&config());
        env.insert(DIGITALOCEAN_ACCESS_TOKEN, "from-doctl-var".into());
        let c = read(None, &env).unwrap();
        assert_eq!(c.token.expose(), "from-doctl-var");
        assert_eq!(c.token_source, TokenSource::Env(DIGITALOCEAN_ACCESS_TOKEN));
        env.insert(DIGITALOCEAN_TOKEN, "from-token-var".into());
        let c = read(None, &env).unwrap();
        assert_eq!(c.token.expose(), "from-token-var");
        assert_eq!(c.token_source.to_string(), DIGITALOCEAN_TOKEN);
    }

    #[test]
    fn the_default_context_is_the_top_level_access_token() {
        let (_d, env) = setup(&config());
        let c = read(None, &env).unwrap();
        assert_eq!(c.token.expose(), TOKEN_D);
        assert!(
            matches!(c.token_source, TokenSource::Context { ref name, .. } if name == "default")
        );
        assert_eq!(c.endpoint, None);
    }

    #[test]
    fn the_context_comes_from_the_argument_the_variable_or_the_file() {
        let (_d, mut env) = setup(&config().replace("context: default", "context: work"));
        assert_eq!(read(None, &env).unwrap().token.expose(), TOKEN_W);
        env.insert(DIGITALOCEAN_CONTEXT, "default".into());
        assert_eq!(read(None, &env).unwrap().token.expose(), TOKEN_D);
        assert_eq!(read(Some("work"), &env).unwrap().token.expose(), TOKEN_W);
        // An explicit context wins over a token variable: the user asked for that account.
        env.insert(DIGITALOCEAN_TOKEN, "from-var".into());
        assert_eq!(read(Some("work"), &env).unwrap().token.expose(), TOKEN_W);
    }

    #[test]
    fn an_unknown_context_lists_the_ones_that_exist() {
        let (_d, mut env) = setup(&config());
        let e = read(Some("prod"), &env).unwrap_err();
        let msg = e.to_string();
        assert!(
            matches!(e, ConfigError::UnknownContext { ref known, .. } if known == &["default", "empty", "work"]),
            "{msg}"
        );
        assert!(msg.contains("\"prod\" (from --context)"), "{msg}");
        assert!(!msg.contains(TOKEN_D) && !msg.contains(TOKEN_W), "{msg}");
        env.insert(DIGITALOCEAN_CONTEXT, "staging".into());
        let msg = read(None, &env).unwrap_err().to_string();
        assert!(msg.contains("(from DIGITALOCEAN_CONTEXT)"), "{msg}");
        // A context without a token says which one.
        let msg = read(Some("empty"), &env).unwrap_err().to_string();
        assert!(msg.contains("doctl context \"empty\" has none"), "{msg}");
    }

    #[test]
    fn api_url_is_the_endpoint() {
        let (_d, mut env) = setup(&format!("{}api-url: https://do.example\n", config()));
        assert_eq!(
            read(None, &env).unwrap().endpoint.as_deref(),
            Some("https://do.example")
        );
        env.insert(DIGITALOCEAN_API_URL, "http://127.0.0.1:9".into());
        assert_eq!(
            read(None, &env).unwrap().endpoint.as_deref(),
            Some("http://127.0.0.1:9")
        );
    }

    #[test]
    fn a_missing_file_is_no_error_but_gives_no_token() {
        let dir = tempfile::tempdir().unwrap();
        let mut env = HashMap::from([(HOME, dir.path().display().to_string())]);
        let e = read(None, &env).unwrap_err();
        assert!(matches!(e, ConfigError::NoToken { context: None }), "{e}");
        assert!(e.to_string().contains("doctl auth init"), "{e}");
        assert_eq!(Error::from(e).kind(), &ErrorKind::Unauthorized);
        env.insert(DIGITALOCEAN_TOKEN, "t".into());
        assert_eq!(read(None, &env).unwrap().token.expose(), "t");
        let e = read(Some("work"), &env).unwrap_err();
        assert!(e.to_string().contains("no doctl config file"), "{e}");
        // The default path is under HOME.
        env.remove(DIGITALOCEAN_TOKEN);
        std::fs::create_dir_all(dir.path().join(".config/doctl")).unwrap();
        std::fs::write(dir.path().join(DEFAULT_CONFIG_PATH), config()).unwrap();
        assert_eq!(read(None, &env).unwrap().token.expose(), TOKEN_D);
    }

    #[test]
    fn non_regular_too_large_and_invalid_files_are_refused_unquoted() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("doctl/config.yaml")).unwrap();
        let env = HashMap::from([(XDG_CONFIG_HOME, dir.path().display().to_string())]);
        assert!(matches!(
            read(None, &env),
            Err(ConfigError::NotAFile { .. })
        ));
        let big = format!("{}\n# {}", config(), "x".repeat(CONFIG_MAX_BYTES as usize));
        let (_d, env) = setup(&big);
        assert!(matches!(
            read(None, &env),
            Err(ConfigError::TooLarge { .. })
        ));
        let (_d, env) = setup(&format!("access-token: [{TOKEN_W}\n  bad: : :\n"));
        let e = read(None, &env).unwrap_err();
        assert!(matches!(e, ConfigError::Invalid { .. }), "{e}");
        assert!(!e.to_string().contains(TOKEN_W), "{e}");
    }

    #[test]
    fn debug_output_never_shows_the_token() {
        let (_d, env) = setup(&config());
        let c = read(None, &env).unwrap();
        assert!(!format!("{c:?}").contains(TOKEN_D));
    }
}
