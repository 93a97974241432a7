//! Credentials the way the `hcloud` CLI finds them, so that a machine set up for `hcloud` works
//! as it is.
//!
//! The CLI's order (hetznercloud/cli `internal/state/config`): the token is `HCLOUD_TOKEN`, else
//! the token of the context in effect; the context is the `--context` flag, else `HCLOUD_CONTEXT`,
//! else the file's `active_context`; the file is `HCLOUD_CONFIG`, else `~/.config/hcloud/cli.toml`
//! (a missing file is no error); the endpoint is `HCLOUD_ENDPOINT`, else the context's
//! `[contexts.preferences] endpoint`, else the global `[preferences] endpoint`.
//!
//! Two choices are stricter than the CLI's: a context name that does not exist is an error
//! listing the ones that do (the CLI only warns), and a context that gets its token from a
//! `token_command` is refused with the fix rather than run. The file is read only when it is a
//! regular file of at most [`CONFIG_MAX_BYTES`]; errors name the file, never quote it, and the
//! token only ever travels in a [`Secret`].

use std::fmt;
use std::path::{Path, PathBuf};

use bootstrap_core::secret::token;
use bootstrap_core::{Error, ErrorKind, Secret};
use serde::Deserialize;

/// The API token; wins over any context's.
pub const HCLOUD_TOKEN: &str = "HCLOUD_TOKEN";
/// The context to use instead of the file's `active_context`.
pub const HCLOUD_CONTEXT: &str = "HCLOUD_CONTEXT";
/// Path of the `hcloud` CLI's config file (default `~/.config/hcloud/cli.toml`).
pub const HCLOUD_CONFIG: &str = "HCLOUD_CONFIG";
/// The API base URL; wins over the config file's `endpoint` preference.
pub const HCLOUD_ENDPOINT: &str = "HCLOUD_ENDPOINT";
/// The home directory, under which the default config file lives.
pub const HOME: &str = "HOME";
/// Where the config file lives under the home directory when `HCLOUD_CONFIG` is unset.
pub const DEFAULT_CONFIG_PATH: &str = ".config/hcloud/cli.toml";
/// The largest config file read: a real one is a few hundred bytes.
pub const CONFIG_MAX_BYTES: u64 = 1024 * 1024;

/// What the adapter needs to reach the API, and where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Credentials {
    /// The API token.
    pub token: Secret,
    /// The endpoint from `HCLOUD_ENDPOINT` or the config file; `None` means the default one. An
    /// endpoint override of the tool itself (`--endpoint`) wins over it.
    pub endpoint: Option<String>,
    /// The `hcloud` context in effect, if any: its endpoint applies, and its token unless
    /// `HCLOUD_TOKEN` is set.
    pub context: Option<String>,
    /// Where the token came from, for hints when the API refuses it.
    pub token_source: TokenSource,
}

/// Where a token was found: what to tell a user whose token is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSource {
    /// The `HCLOUD_TOKEN` variable.
    Env,
    /// The `token` of this context in this config file.
    Context {
        /// The context's name.
        name: String,
        /// The config file.
        path: PathBuf,
    },
}

impl fmt::Display for TokenSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Env => f.write_str(HCLOUD_TOKEN),
            Self::Context { name, path } => {
                write!(f, "hcloud context {name:?} in {}", path.display())
            }
        }
    }
}

/// Which setting named the context, so that an unknown name can be traced to where it was set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContextFrom {
    /// The `context` argument (a `--context` flag).
    Argument,
    /// The `HCLOUD_CONTEXT` variable.
    Env,
    /// The config file's `active_context`.
    ActiveContext,
}

impl fmt::Display for ContextFrom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Argument => "--context",
            Self::Env => HCLOUD_CONTEXT,
            Self::ActiveContext => "active_context",
        })
    }
}

/// Why no credentials could be read; every variant says what to fix.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// Neither `HCLOUD_TOKEN` nor a context with a token.
    #[error(
        "no Hetzner token{}: set HCLOUD_TOKEN (Cloud Console > Security > API tokens) or run `hcloud context create NAME`",
        no_token_note(.context.as_deref())
    )]
    NoToken {
        /// The context in effect, which has no token.
        context: Option<String>,
    },
    /// The context gets its token by running a command, which this tool does not do.
    #[error(
        "hcloud context {context:?} in {} gets its token from a token_command, which bootstrap does not run: set HCLOUD_TOKEN to its output",
        .path.display()
    )]
    TokenCommand {
        /// The context.
        context: String,
        /// The config file.
        path: PathBuf,
    },
    /// A context was named (by argument, `HCLOUD_CONTEXT` or `active_context`) that the file
    /// does not have.
    #[error("hcloud context {name:?} (from {from}) does not exist: {}", known_contexts(.known, .path.as_deref(), *.file_exists))]
    UnknownContext {
        /// The name asked for.
        name: String,
        /// Which setting asked for it.
        from: ContextFrom,
        /// The contexts the file has.
        known: Vec<String>,
        /// The config file looked at, if any.
        path: Option<PathBuf>,
        /// Whether that file exists.
        file_exists: bool,
    },
    /// The config file exists but could not be read.
    #[error("reading the hcloud config {}: {error}", .path.display())]
    Read {
        /// The config file.
        path: PathBuf,
        /// The I/O error (it never quotes the file).
        error: std::io::Error,
    },
    /// The config path is a directory, a device or a pipe.
    #[error("{} is not a regular file; set HCLOUD_CONFIG to the hcloud CLI's cli.toml", .path.display())]
    NotAFile {
        /// The config path.
        path: PathBuf,
    },
    /// The config file is larger than [`CONFIG_MAX_BYTES`].
    #[error("{} is larger than {} bytes: not an hcloud config", .path.display(), CONFIG_MAX_BYTES)]
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
        /// Where it was set (`HCLOUD_ENDPOINT`, or the config file's setting).
        from: String,
        /// What is wrong, with the fix (the URL is not echoed: it may carry a password).
        why: bootstrap_core::endpoint::EndpointError,
    },
    /// The config file is not the `hcloud` CLI's TOML (the contents are not quoted: they hold
    /// tokens).
    #[error("{} is not a valid hcloud config{} (contents not shown)", .path.display(), line_note(*.line))]
    Invalid {
        /// The config file.
        path: PathBuf,
        /// The line of the first error, if known.
        line: Option<usize>,
    },
}

fn no_token_note(context: Option<&str>) -> String {
    context
        .map(|c| format!(" (hcloud context {c:?} has none)"))
        .unwrap_or_default()
}

fn known_contexts(known: &[String], path: Option<&Path>, file_exists: bool) -> String {
    match path {
        None => "there is no hcloud config file (HCLOUD_CONFIG and HOME are unset)".into(),
        Some(p) if !file_exists => format!(
            "there is no hcloud config file at {} (`hcloud context create NAME` makes one)",
            p.display()
        ),
        Some(p) if known.is_empty() => format!(
            "{} has no contexts (`hcloud context create NAME` makes one)",
            p.display()
        ),
        Some(p) => format!("{} has {}", p.display(), known.join(", ")),
    }
}

fn line_note(line: Option<usize>) -> String {
    line.map(|l| format!(" (line {l})")).unwrap_or_default()
}

impl From<ConfigError> for Error {
    fn from(e: ConfigError) -> Self {
        let kind = match e {
            ConfigError::NoToken { .. } | ConfigError::TokenCommand { .. } => {
                ErrorKind::Unauthorized
            }
            _ => ErrorKind::InvalidInput,
        };
        Error::new(kind, e.to_string())
    }
}

/// The `hcloud` CLI's `cli.toml`: only the fields read here; unknown ones are ignored.
#[derive(Debug, Default, Deserialize)]
struct CliConfig {
    #[serde(default)]
    active_context: String,
    #[serde(default)]
    preferences: Preferences,
    #[serde(default)]
    contexts: Vec<Context>,
}

#[derive(Debug, Default, Deserialize)]
struct Preferences {
    #[serde(default)]
    endpoint: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Context {
    name: String,
    #[serde(default)]
    token: String,
    #[serde(default)]
    token_command: String,
    #[serde(default)]
    preferences: Preferences,
}

/// Reads the credentials like the `hcloud` CLI does. `context` is an explicit choice (a
/// `--context` flag) and wins over `HCLOUD_CONTEXT` and `active_context`; `env` reads a variable
/// (injected so tests need not touch the process environment; empty counts as unset).
pub fn credentials(
    context: Option<&str>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Credentials, ConfigError> {
    let var = |name: &str| env(name).filter(|v| !v.is_empty());
    let path = var(HCLOUD_CONFIG)
        .map(PathBuf::from)
        .or_else(|| var(HOME).map(|h| Path::new(&h).join(DEFAULT_CONFIG_PATH)));
    let file = match &path {
        Some(p) => read_config(p)?
            .map(|text| parse_config(p, &text))
            .transpose()?,
        None => None,
    };
    let wanted = context
        .filter(|c| !c.is_empty())
        .map(|c| (c.to_owned(), ContextFrom::Argument))
        .or_else(|| var(HCLOUD_CONTEXT).map(|c| (c, ContextFrom::Env)))
        .or_else(|| {
            file.as_ref()
                .map(|f| f.active_context.clone())
                .filter(|c| !c.is_empty())
                .map(|c| (c, ContextFrom::ActiveContext))
        });
    let selected = match wanted {
        None => None,
        Some((name, from)) => {
            let found = file
                .as_ref()
                .and_then(|f| f.contexts.iter().find(|c| c.name == name));
            match found {
                Some(c) => Some(c),
                None => {
                    return Err(ConfigError::UnknownContext {
                        name,
                        from,
                        known: file
                            .as_ref()
                            .map(|f| f.contexts.iter().map(|c| c.name.clone()).collect())
                            .unwrap_or_default(),
                        path: path.clone(),
                        file_exists: file.is_some(),
                    });
                }
            }
        }
    };
    let file_name = || path.clone().unwrap_or_default().display().to_string();
    let (token, token_source) = match (var(HCLOUD_TOKEN), selected) {
        (Some(t), _) => (token(HCLOUD_TOKEN, &t)?, TokenSource::Env),
        (None, Some(c)) if !c.token.is_empty() => (
            token(
                &format!(
                    "the token of hcloud context {:?} in {}",
                    c.name,
                    file_name()
                ),
                &c.token,
            )?,
            TokenSource::Context {
                name: c.name.clone(),
                path: path.clone().unwrap_or_default(),
            },
        ),
        (None, Some(c)) if !c.token_command.is_empty() => {
            return Err(ConfigError::TokenCommand {
                context: c.name.clone(),
                path: path.clone().unwrap_or_default(),
            });
        }
        (None, c) => {
            return Err(ConfigError::NoToken {
                context: c.map(|c| c.name.clone()),
            });
        }
    };
    let non_empty = |e: &Option<String>| e.clone().filter(|e| !e.is_empty());
    let endpoint = var(HCLOUD_ENDPOINT)
        .map(|e| (e, HCLOUD_ENDPOINT.to_owned()))
        .or_else(|| {
            selected.and_then(|c| {
                non_empty(&c.preferences.endpoint).map(|e| {
                    let from =
                        format!("endpoint of hcloud context {:?} in {}", c.name, file_name());
                    (e, from)
                })
            })
        })
        .or_else(|| {
            file.as_ref()
                .and_then(|f| non_empty(&f.preferences.endpoint))
                .map(|e| (e, format!("[preferences] endpoint in {}", file_name())))
        });
    let endpoint = match endpoint {
        Some((e, from)) => match bootstrap_core::endpoint::check(&e) {
            Ok(_) => Some(e),
            Err(why) => return Err(ConfigError::Endpoint { from, why }),
        },
        None => None,
    };
    Ok(Credentials {
        token,
        endpoint,
        context: selected.map(|c| c.name.clone()),
        token_source,
    })
}

/// The file's text; `None` when there is no file (as for the CLI, that is no error).
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

fn parse_config(path: &Path, text: &str) -> Result<CliConfig, ConfigError> {
    // The parser's message may quote the file (a token included): keep only the line.
    toml::from_str(text).map_err(|e| ConfigError::Invalid {
        path: path.to_owned(),
        line: e
            .span()
            .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1),
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    const TOKEN_A: &str = "token-of-a-0123456789";
    const TOKEN_B: &str = "token-of-b-0123456789";

    fn config() -> String {
        format!(
            r#"active_context = "a"

[preferences]
  debug = true
  endpoint = "https://global.example/v1"

[[contexts]]
  name = "a"
  token = "{TOKEN_A}"

[[contexts]]
  name = "b"
  token = "{TOKEN_B}"
  [contexts.preferences]
    endpoint = "https://b.example/v1"
    poll_interval = "1.234s"
"#
        )
    }

    /// A temp dir holding `cli.toml` with `text`, and an env pointing `HCLOUD_CONFIG` at it.
    fn setup(text: &str) -> (tempfile::TempDir, HashMap<&'static str, String>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cli.toml");
        std::fs::write(&path, text).unwrap();
        let env = HashMap::from([(HCLOUD_CONFIG, path.display().to_string())]);
        (dir, env)
    }

    fn read(
        context: Option<&str>,
        env: &HashMap<&'static str, String>,
    ) -> Result<Credentials, ConfigError> {
        credentials(context, &|k| env.get(k).cloned())
    }

    #[test]
    fn the_env_token_wins_over_the_context_s() {
        let (_d, mut env) = setup(&config());
        env.insert(HCLOUD_TOKEN, "from-env".into());
        let c = read(None, &env).unwrap();
        assert_eq!(c.token.expose(), "from-env");
        assert_eq!(c.token_source, TokenSource::Env);
        // The context still applies its endpoint, as in the CLI.
        assert_eq!(c.context.as_deref(), Some("a"));
        assert_eq!(c.endpoint.as_deref(), Some("https://global.example/v1"));
    }

    #[test]
    fn the_active_context_gives_token_and_endpoint() {
        let (_d, env) = setup(&config());
        let c = read(None, &env).unwrap();
        assert_eq!(c.token.expose(), TOKEN_A);
        assert_eq!(c.context.as_deref(), Some("a"));
        assert!(matches!(c.token_source, TokenSource::Context { ref name, .. } if name == "a"));
        // Context "a" has no endpoint of its own: the global preference applies.
        assert_eq!(c.endpoint.as_deref(), Some("https://global.example/v1"));
    }

    #[test]
    fn hcloud_context_overrides_the_active_context() {
        let (_d, mut env) = setup(&config());
        env.insert(HCLOUD_CONTEXT, "b".into());
        let c = read(None, &env).unwrap();
        assert_eq!(c.token.expose(), TOKEN_B);
        assert_eq!(c.endpoint.as_deref(), Some("https://b.example/v1"));
        env.insert(HCLOUD_ENDPOINT, "http://127.0.0.1:9/v1".into());
        let c = read(None, &env).unwrap();
        assert_eq!(c.endpoint.as_deref(), Some("http://127.0.0.1:9/v1"));
    }

    #[test]
    fn an_explicit_context_overrides_both() {
        let (_d, mut env) = setup(&config());
        env.insert(HCLOUD_CONTEXT, "a".into());
        let c = read(Some("b"), &env).unwrap();
        assert_eq!(c.context.as_deref(), Some("b"));
        assert_eq!(c.token.expose(), TOKEN_B);
    }

    #[test]
    fn an_unknown_context_lists_the_ones_that_exist() {
        let (_d, mut env) = setup(&config());
        let e = read(Some("prod"), &env).unwrap_err();
        let msg = e.to_string();
        assert!(matches!(e, ConfigError::UnknownContext { ref known, .. } if known == &["a", "b"]));
        assert!(
            msg.contains("\"prod\" (from --context)") && msg.contains("a, b"),
            "{msg}"
        );
        assert!(!msg.contains(TOKEN_A), "{msg}");
        env.insert(HCLOUD_CONTEXT, "staging".into());
        let msg = read(None, &env).unwrap_err().to_string();
        assert!(msg.contains("(from HCLOUD_CONTEXT)"), "{msg}");
        // A dangling active_context is as wrong as a mistyped flag.
        let (_d2, env) =
            setup(&config().replace(r#"active_context = "a""#, r#"active_context = "gone""#));
        let msg = read(None, &env).unwrap_err().to_string();
        assert!(msg.contains("(from active_context)"), "{msg}");
    }

    #[test]
    fn a_missing_file_is_no_error_but_gives_no_token() {
        let dir = tempfile::tempdir().unwrap();
        let mut env = HashMap::from([(
            HCLOUD_CONFIG,
            dir.path().join("nope.toml").display().to_string(),
        )]);
        let e = read(None, &env).unwrap_err();
        assert!(matches!(e, ConfigError::NoToken { context: None }), "{e}");
        env.insert(HCLOUD_TOKEN, "t".into());
        let c = read(None, &env).unwrap();
        assert_eq!((c.context, c.endpoint), (None, None));
        // A context asked for without a file cannot exist.
        let e = read(Some("a"), &env).unwrap_err();
        assert!(e.to_string().contains("no hcloud config file"), "{e}");
        // The default path is under HOME.
        let home = HashMap::from([(HOME, dir.path().display().to_string())]);
        std::fs::create_dir_all(dir.path().join(".config/hcloud")).unwrap();
        std::fs::write(dir.path().join(DEFAULT_CONFIG_PATH), config()).unwrap();
        assert_eq!(read(None, &home).unwrap().token.expose(), TOKEN_A);
    }

    #[test]
    fn non_regular_and_too_large_files_are_refused_unread() {
        let dir = tempfile::tempdir().unwrap();
        let env = HashMap::from([(HCLOUD_CONFIG, dir.path().display().to_string())]);
        assert!(matches!(
            read(None, &env),
            Err(ConfigError::NotAFile { .. })
        ));
        #[cfg(unix)]
        {
            let env = HashMap::from([(HCLOUD_CONFIG, "/dev/null".to_owned())]);
            assert!(matches!(
                read(None, &env),
                Err(ConfigError::NotAFile { .. })
            ));
        }
        let big = format!("{}\n# {}", config(), "x".repeat(CONFIG_MAX_BYTES as usize));
        let (_d, env) = setup(&big);
        let e = read(None, &env).unwrap_err();
        assert!(matches!(e, ConfigError::TooLarge { .. }), "{e}");
    }

    #[test]
    fn invalid_toml_is_reported_by_line_without_its_contents() {
        let (_d, env) = setup(&format!("{}\ntoken = = \"{TOKEN_B}\"\n", config()));
        let e = read(None, &env).unwrap_err();
        let msg = e.to_string();
        assert!(
            matches!(e, ConfigError::Invalid { line: Some(_), .. }),
            "{msg}"
        );
        assert!(!msg.contains(TOKEN_A) && !msg.contains(TOKEN_B), "{msg}");
        // A wrongly typed token must not be quoted either.
        let (_d, env) =
            setup("active_context = \"a\"\n[[contexts]]\nname = \"a\"\ntoken = 123456789\n");
        let msg = read(None, &env).unwrap_err().to_string();
        assert!(!msg.contains("123456789"), "{msg}");
    }

    #[test]
    fn no_token_anywhere_says_how_to_get_one() {
        let e = read(None, &HashMap::new()).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("HCLOUD_TOKEN") && msg.contains("hcloud context create"),
            "{msg}"
        );
        assert_eq!(Error::from(e).kind(), &ErrorKind::Unauthorized);
        // A context without a token says which one.
        let (_d, env) = setup("active_context = \"a\"\n[[contexts]]\nname = \"a\"\n");
        let msg = read(None, &env).unwrap_err().to_string();
        assert!(msg.contains("hcloud context \"a\" has none"), "{msg}");
        // A token_command is named, not run and not quoted.
        let (_d, env) = setup(
            "active_context = \"a\"\n[[contexts]]\nname = \"a\"\ntoken_command = \"pass show hcloud\"\n",
        );
        let e = read(None, &env).unwrap_err();
        assert!(matches!(e, ConfigError::TokenCommand { .. }), "{e}");
        assert!(!e.to_string().contains("pass show"), "{e}");
    }

    #[test]
    fn tokens_are_trimmed_of_one_newline_and_endpoints_checked() {
        // See: issue 13, finding 11 (token) and finding 1 (every endpoint source).
        let (_d, mut env) = setup(&config());
        env.insert(HCLOUD_TOKEN, "from-env\n".into());
        assert_eq!(read(None, &env).unwrap().token.expose(), "from-env");
        env.insert(HCLOUD_TOKEN, "from\nenv".into());
        let msg = read(None, &env).unwrap_err().to_string();
        assert!(msg.starts_with("HCLOUD_TOKEN holds a control"), "{msg}");
        assert!(!msg.contains("from\nenv"), "{msg}");
        env.insert(HCLOUD_TOKEN, "t".into());
        env.insert(HCLOUD_ENDPOINT, "http://vm:4099\\@127.0.0.1/".into());
        let msg = read(None, &env).unwrap_err().to_string();
        assert!(msg.starts_with("invalid HCLOUD_ENDPOINT: "), "{msg}");
        env.remove(HCLOUD_ENDPOINT);
        let (_d, mut env) =
            setup(&config().replace("https://b.example/v1", "http://evil.example/v1"));
        env.insert(HCLOUD_CONTEXT, "b".into());
        let e = read(None, &env).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("endpoint of hcloud context \"b\"") && msg.contains("evil.example"),
            "{msg}"
        );
        assert!(!msg.contains(TOKEN_B), "{msg}");
    }

    #[test]
    fn debug_output_never_shows_the_token() {
        let (_d, env) = setup(&config());
        let c = read(None, &env).unwrap();
        assert!(!format!("{c:?}").contains(TOKEN_A));
    }
}
