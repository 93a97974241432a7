//! Renders the hardening `#cloud-config` user-data and checks it against a provider's size limit.
//!
//! # Brief overview
//! [`HardeningParams`] says what one server needs (admin, keys, networks, the image's
//! [`ImageProfile`], the pinned [`HostKey`], [`Sudo`] mode, Docker, [`WireGuard`]); [`render`] turns
//! a [`Template`] and the params into user-data; [`check_size`] holds it against a provider's limit.
//!
//! The template (`templates/cloud-init/hardening.yaml.j2`, embedded in the binary) is rendered with
//! minijinja: undefined variables are errors, and every value is auto-escaped to one JSON string, so
//! no value (a host name, a user name, a key) can add a line, a key or a list entry to the document,
//! nor a line to a file that the document writes. The result is parsed back before it is returned.
//!
//! Per image: the sshd algorithm lists and keywords follow the OpenSSH version the image ships
//! ([`ImageProfile::algorithms`]), so `mlkem768x25519-sha256` is offered only where sshd knows it;
//! an image this crate does not know gets the subset every OpenSSH since 7.4 accepts.

mod image;
mod params;

pub use image::{
    Family, ImageProfile, KNOWN_IMAGES, MIN_RSA_BITS, OpensshVersion, SshAlgorithms,
    USER_KEY_TYPES, UserKeyType, canonical_name,
};
pub use params::{HostKey, Sudo, WireGuard};

use std::fmt::Write as _;
use std::path::Path;

use minijinja::{AutoEscape, Environment, Output, State, UndefinedBehavior, Value};

/// File name of the embedded template; it names the template in error messages.
const EMBEDDED_NAME: &str = "hardening.yaml.j2";

/// Source of the embedded template, compiled into the binary so `bootstrap` works without files.
const EMBEDDED_SOURCE: &str = include_str!("../../../templates/cloud-init/hardening.yaml.j2");

/// Template steps (minijinja "fuel") one rendering may take: the embedded template takes under
/// 200; a runaway loop (`range(100000)` nested) stops within a second instead of spinning.
const FUEL: u64 = 1_000_000;

/// The first line that cloud-init needs to treat user-data as cloud-config.
const CLOUD_CONFIG_HEADER: &str = "#cloud-config";

/// What the hardening template needs to know about one server; the CLI builds it from its flags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HardeningParams {
    /// Host name of the server: an RFC 1123 label, validated by the CLI.
    pub hostname: String,
    /// The one user allowed to log in over SSH (a POSIX user name, never `root`).
    pub admin_user: String,
    /// OpenSSH public key lines installed for the admin user.
    pub ssh_authorized_keys: Vec<String>,
    /// Networks allowed to reach SSH (host firewall, fail2ban's `ignoreip`); empty means the whole world.
    pub ssh_from: Vec<ipnet::IpNet>,
    /// When unattended-upgrades may reboot the server, `HH:MM` on a 24-hour clock.
    pub reboot_time: String,
    /// The image and the OpenSSH it ships: chooses the sshd algorithms.
    pub image: ImageProfile,
    /// The server's ed25519 host key, generated locally so that it is pinned before first use.
    pub host_key: HostKey,
    /// How the admin uses sudo.
    pub sudo: Sudo,
    /// Install Docker from the distribution and let the host firewall filter its published ports.
    pub docker: bool,
    /// Reach SSH only through a WireGuard tunnel.
    pub vpn: Option<WireGuard>,
    /// Allow local TCP forwarding (`ssh -L`, `ssh -D`) for people who tunnel.
    pub allow_tcp_forwarding: bool,
}

/// A cloud-config template: its source and a name for error messages.
///
/// The embedded one is the default; `--template` swaps in a file so operators can adapt it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    name: String,
    source: String,
}

impl Template {
    /// The hardening template compiled into the binary, used unless the user passes `--template`.
    pub fn embedded() -> Template {
        Template {
            name: EMBEDDED_NAME.to_owned(),
            source: EMBEDDED_SOURCE.to_owned(),
        }
    }

    /// A template read from `path` (by the caller's capped reader, at most
    /// [`Template::MAX_BYTES`]), so a user can render their own variant of the hardening.
    pub fn from_source(path: &Path, source: String) -> Template {
        Template {
            name: path.display().to_string(),
            source,
        }
    }

    /// The largest template file read: the embedded one is about 20 KiB.
    pub const MAX_BYTES: u64 = 256 * 1024;

    /// The template's name (file name or path), as it appears in error messages.
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// Everything that can go wrong while rendering or checking user-data.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The template does not compile or render (syntax error, undefined variable, bad filter).
    #[error("cannot render cloud-init template {name}{}: {message}", fmt_line(*line))]
    Template {
        /// Name of the template (file path or `hardening.yaml.j2`).
        name: String,
        /// Line of the template where minijinja found the problem, when it knows it.
        line: Option<usize>,
        /// minijinja's message, including its causes.
        message: String,
    },
    /// The rendered text is not a YAML mapping that starts with `#cloud-config`.
    #[error(
        "cloud-init template {template}: the rendered user-data is not valid cloud-config: {message}"
    )]
    Parse {
        /// Name of the template that rendered it.
        template: String,
        /// What is wrong, with the YAML parser's location where there is one.
        message: String,
    },
    /// The user-data is larger than the provider accepts.
    #[error("user-data is {size} bytes, over the {limit}-byte limit of {provider}")]
    TooLarge {
        /// Size of the user-data in bytes.
        size: usize,
        /// The provider's limit in bytes.
        limit: usize,
        /// The provider that imposes the limit.
        provider: String,
    },
    /// A parameter would produce a server that nobody can log in to or that misbehaves.
    #[error("invalid {param}: {reason}")]
    InvalidParam {
        /// Which parameter is wrong.
        param: &'static str,
        /// Why it is rejected.
        reason: String,
    },
}

/// Formats the optional template line for [`Error::Template`].
fn fmt_line(line: Option<usize>) -> String {
    line.map(|l| format!(" (line {l})")).unwrap_or_default()
}

/// Renders the template with `params` into cloud-config user-data, then parses it back.
///
/// Parsing back guarantees that what reaches the provider is a YAML mapping with the
/// `#cloud-config` header, whatever template was used.
pub fn render(template: &Template, params: &HardeningParams) -> Result<String, Error> {
    validate_params(params)?;

    let env = environment();
    let tmpl = env
        .template_from_named_str(&template.name, &template.source)
        .map_err(|err| template_error(template, &err))?;
    let rendered = tmpl
        .render(context(params))
        .map_err(|err| template_error(template, &err))?;

    check_cloud_config(&rendered).map_err(|message| Error::Parse {
        template: template.name.clone(),
        message,
    })?;
    Ok(rendered)
}

/// Rejects user-data over a provider's limit before any API call, naming the sizes and the provider.
pub fn check_size(user_data: &str, limit_bytes: usize, provider: &str) -> Result<(), Error> {
    let size = user_data.len();
    if size > limit_bytes {
        return Err(Error::TooLarge {
            size,
            limit: limit_bytes,
            provider: provider.to_owned(),
        });
    }
    Ok(())
}

/// Checks a reboot time is `HH:MM` (24-hour clock), the form unattended-upgrades understands.
pub fn validate_reboot_time(s: &str) -> Result<(), Error> {
    let invalid = || Error::InvalidParam {
        param: "reboot time",
        reason: format!("{s:?} is not HH:MM on a 24-hour clock (e.g. 03:30)"),
    };
    let bytes = s.as_bytes();
    if bytes.len() != 5 || bytes[2] != b':' {
        return Err(invalid());
    }
    let two_digits = |pair: &[u8]| -> Option<u8> {
        match pair {
            [a, b] if a.is_ascii_digit() && b.is_ascii_digit() => {
                Some((a - b'0') * 10 + (b - b'0'))
            }
            _ => None,
        }
    };
    match (two_digits(&bytes[0..2]), two_digits(&bytes[3..5])) {
        (Some(hours), Some(minutes)) if hours < 24 && minutes < 60 => Ok(()),
        _ => Err(invalid()),
    }
}

/// Rejects parameters that would render a server nobody can log in to, or inject key options.
///
/// Host and user names are validated by the CLI; escaping keeps even hostile ones harmless to the
/// document, so only what would break the server itself is checked here.
fn validate_params(params: &HardeningParams) -> Result<(), Error> {
    validate_reboot_time(&params.reboot_time)?;
    params.host_key.validate()?;
    params.sudo.validate()?;
    if let Some(vpn) = &params.vpn {
        vpn.validate()?;
    }
    if params.admin_user.is_empty() || params.admin_user == "root" {
        return Err(Error::InvalidParam {
            param: "admin user",
            reason: format!(
                "{:?}: root logins are disabled, pick another name",
                params.admin_user
            ),
        });
    }
    if params.ssh_authorized_keys.is_empty() {
        return Err(Error::InvalidParam {
            param: "SSH authorized keys",
            reason: "at least one public key is needed, password logins are disabled".to_owned(),
        });
    }
    for (i, key) in params.ssh_authorized_keys.iter().enumerate() {
        if key.trim().is_empty() || key.chars().any(char::is_control) {
            // Not quoted: a key that is more than one line may be a private key file.
            return Err(Error::InvalidParam {
                param: "SSH authorized key",
                reason: format!("key {} must be one non-empty line", i + 1),
            });
        }
    }
    Ok(())
}

/// The minijinja environment: strict undefined, everything JSON-escaped, ASCII-only output.
fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_auto_escape_callback(|_| AutoEscape::Json);
    env.set_formatter(yaml_safe_formatter);
    env.add_filter("tojson", tojson_filter);
    env.set_trim_blocks(true);
    env.set_lstrip_blocks(true);
    env.set_keep_trailing_newline(true);
    env.set_fuel(Some(FUEL));
    env
}

/// The template's variables. CIDRs are formatted here from parsed networks and marked safe, so
/// fail2ban and nftables get them bare; everything else is escaped on output.
fn context(params: &HardeningParams) -> Value {
    let mut all = Vec::new();
    let mut v4 = Vec::new();
    let mut v6 = Vec::new();
    for net in &params.ssh_from {
        // nftables rejects host bits in interval sets: use the network address.
        let net = net.trunc();
        let text = net.to_string();
        if all.contains(&text) {
            continue;
        }
        match net {
            ipnet::IpNet::V4(_) => v4.push(Value::from_safe_string(text.clone())),
            ipnet::IpNet::V6(_) => v6.push(Value::from_safe_string(text.clone())),
        }
        all.push(text);
    }
    let all: Vec<Value> = all.into_iter().map(Value::from_safe_string).collect();
    let (sudo_mode, sudo_password_hash) = match &params.sudo {
        Sudo::Password { hash } => ("password", hash.as_str()),
        Sudo::NoPasswd => ("nopasswd", ""),
    };
    minijinja::context! {
        hostname => params.hostname,
        admin_user => params.admin_user,
        ssh_authorized_keys => params.ssh_authorized_keys,
        reboot_time => params.reboot_time,
        ssh_from => all,
        ssh_from_v4 => v4,
        ssh_from_v6 => v6,
        image => params.image.image(),
        ssh => params.image.algorithms().template_value(),
        host_key_private => params.host_key.private_openssh,
        host_key_public => params.host_key.public_openssh,
        sudo_mode => sudo_mode,
        sudo_password_hash => sudo_password_hash,
        docker => params.docker,
        allow_tcp_forwarding => params.allow_tcp_forwarding,
        vpn => params.vpn.as_ref().map(WireGuard::template_value),
    }
}

/// Writes a value as minijinja's JSON auto-escaping does, but with every non-ASCII character
/// escaped too: PyYAML (cloud-init) treats U+0085, U+2028 and U+2029 as line breaks and rejects
/// DEL and C1 controls, which JSON leaves raw.
fn yaml_safe_formatter(
    out: &mut Output<'_>,
    state: &State<'_, '_>,
    value: &Value,
) -> Result<(), minijinja::Error> {
    if state.auto_escape() != AutoEscape::Json || value.is_safe() {
        return minijinja::escape_formatter(out, state, value);
    }
    if value.is_undefined() {
        // Only reachable with lenient undefined behaviour; keep it out of the document.
        return Err(minijinja::Error::new(
            minijinja::ErrorKind::UndefinedError,
            "undefined value",
        ));
    }
    out.write_str(&to_ascii_json(value)?)
        .map_err(minijinja::Error::from)
}

/// `tojson` with the same ASCII-only escaping, for templates that build a scalar by hand.
fn tojson_filter(value: &Value) -> Result<Value, minijinja::Error> {
    Ok(Value::from_safe_string(to_ascii_json(value)?))
}

/// Serializes a value to JSON with every character outside printable ASCII as a `\uXXXX` escape.
fn to_ascii_json(value: &Value) -> Result<String, minijinja::Error> {
    let json = serde_json::to_string(value).map_err(|err| {
        minijinja::Error::new(
            minijinja::ErrorKind::BadSerialization,
            "cannot format value as JSON",
        )
        .with_source(err)
    })?;
    let mut escaped = String::with_capacity(json.len());
    for c in json.chars() {
        if c.is_ascii() && !c.is_ascii_control() {
            escaped.push(c);
        } else {
            // Outside strings JSON is plain ASCII, so these only occur inside string literals.
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                let _ = write!(escaped, "\\u{unit:04x}");
            }
        }
    }
    Ok(escaped)
}

/// Variables the template may use, listed when it uses another one.
const VARIABLES: &str = "hostname, admin_user, ssh_authorized_keys, reboot_time, ssh_from, ssh_from_v4, ssh_from_v6, image, ssh, host_key_private, host_key_public, sudo_mode, sudo_password_hash, docker, allow_tcp_forwarding, vpn";

/// Turns a minijinja error into [`Error::Template`], keeping its line and the chain of causes,
/// but never the template's text: `--template /etc/shadow` must not print the file.
fn template_error(template: &Template, err: &minijinja::Error) -> Error {
    let mut message = if err.kind() == minijinja::ErrorKind::OutOfFuel {
        format!(
            "the template takes more than {FUEL} steps to render (a loop too large, or one that never ends); make it smaller"
        )
    } else {
        err.to_string()
    };
    let mut cause = std::error::Error::source(err);
    while let Some(inner) = cause {
        message.push_str(": ");
        message.push_str(&inner.to_string());
        cause = inner.source();
    }
    let mut message = one_short_line(&message);
    if err.kind() == minijinja::ErrorKind::UndefinedError {
        let _ = write!(message, "; known variables: {VARIABLES}");
    }
    Error::Template {
        name: template.name.clone(),
        line: err.line(),
        message,
    }
}

/// minijinja's message on one line of printable ASCII, at most 200 characters: it names tokens
/// (`unknown statement foo`), never a whole line, but keep even those short.
fn one_short_line(message: &str) -> String {
    const MAX: usize = 200;
    let mut out: String = message
        .chars()
        .map(|c| if c.is_ascii_graphic() { c } else { ' ' })
        .take(MAX)
        .collect();
    if message.chars().count() > MAX {
        out.push_str("...");
    }
    out
}

/// Checks the header and that the text parses as one YAML mapping.
fn check_cloud_config(rendered: &str) -> Result<(), String> {
    let first_line = rendered.lines().next().unwrap_or_default();
    if first_line.trim_end() != CLOUD_CONFIG_HEADER {
        // The line itself is not quoted: the template may be any file (`--template /etc/shadow`).
        return Err(format!("line 1 must be {CLOUD_CONFIG_HEADER:?}"));
    }
    // The parser's own message quotes the offending lines: keep only where it is.
    let doc: serde_json::Value =
        serde_saphyr::from_str(rendered).map_err(|err| match err.location() {
            Some(at) => format!(
                "not valid YAML at line {}, column {} of the rendered text (`bootstrap render` shows it)",
                at.line(),
                at.column()
            ),
            None => "not valid YAML (`bootstrap render` shows the rendered text)".to_owned(),
        })?;
    if !doc.is_object() {
        return Err("the document is not a mapping of cloud-config keys".to_owned());
    }
    Ok(())
}

#[cfg(test)]
mod tests;
