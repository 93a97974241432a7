//! Flags, environment and the provider CLIs' config files resolved into checked settings,
//! before any network call. Bad input stops here with one line that names the fix (exit 2).

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use bootstrap_core::DeploymentName;
use bootstrap_core::flow::FlowConfig;
use bootstrap_core::poll::PollConfig;
use bootstrap_core::retry::RetryConfig;
use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use crate::cli::{ConnectArgs, CreateArgs, OutputFormat, ProviderKind};
use crate::env;

/// Input the user must fix; maps to exit code 2.
#[derive(Debug)]
pub struct BadInput(pub String);

impl std::error::Error for BadInput {}

impl std::fmt::Display for BadInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Shorthand for a [`BadInput`] error. The message is kept to one line: a control or
/// line-separator character (from a value echoed by any check) is written as an escape.
pub fn bad(msg: impl Into<String>) -> anyhow::Error {
    let msg: String = msg.into();
    let mut line = String::with_capacity(msg.len());
    for c in msg.chars() {
        match c {
            '\n' => line.push_str("\\n"),
            '\r' => line.push_str("\\r"),
            '\t' => line.push_str("\\t"),
            c if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}') => {
                line.push_str(&c.escape_unicode().to_string());
            }
            c => line.push(c),
        }
    }
    anyhow::Error::new(BadInput(line))
}

/// Where and how to reach a provider.
#[derive(Debug, Clone)]
pub struct Connection {
    /// Which provider.
    pub kind: ProviderKind,
    /// Base URL override.
    pub endpoint: Option<String>,
    /// Retry/poll/timeout settings.
    pub flow: FlowConfig,
    /// Output format.
    pub output: OutputFormat,
    /// The provider's own flags the user set (`--region`), by flag; checked by the provider.
    pub provider_flags: BTreeMap<&'static str, String>,
    /// `--context`: the provider CLI's context or profile.
    pub context: Option<String>,
}

impl Connection {
    /// The flags that reach the same account and place again, for a command we print (the
    /// rollback's `bootstrap destroy`): each with a leading space, shell-quoted.
    pub fn flags(&self) -> String {
        let mut out = String::new();
        let mut add = |flag: &str, v: &str| {
            out.push_str(&format!(" {flag} {}", shell_quote(v)));
        };
        if let Some(e) = &self.endpoint {
            add("--endpoint", e);
        }
        if let Some(c) = &self.context {
            add("--context", c);
        }
        // Only the flags every command takes: `--subnet` means nothing to `destroy`.
        for (flag, v) in &self.provider_flags {
            if self.kind.desc().flags.contains(flag) {
                add(flag, v);
            }
        }
        out
    }

    /// What the provider needs to connect, in provider-neutral form.
    pub fn options(&self) -> bootstrap_core::ConnectOptions {
        bootstrap_core::ConnectOptions {
            endpoint: self.endpoint.clone(),
            context: self.context.clone(),
            flags: self.provider_flags.clone(),
        }
    }

    /// Resolves `--endpoint`/env, `--timeout` and the test-tuning variables.
    pub fn resolve(
        kind: ProviderKind,
        endpoint: Option<&str>,
        timeout: Option<&str>,
        output: OutputFormat,
    ) -> anyhow::Result<Self> {
        let name = kind.name();
        let var = env::endpoint_var(name);
        let endpoint = match endpoint {
            Some(e) => Some(checked_endpoint("--endpoint", e)?),
            None => env::var(&var)
                .map(|e| checked_endpoint(&var, &e))
                .transpose()?,
        };
        let mut flow = FlowConfig::default();
        if let Some(t) = timeout {
            flow.timeout = parse_duration(t)?;
        }
        flow.retry = RetryConfig {
            max_retries: env_num(env::BOOTSTRAP_RETRY_MAX)?.map_or(flow.retry.max_retries, |n| {
                u32::try_from(n).unwrap_or(u32::MAX)
            }),
            base: env_num(env::BOOTSTRAP_RETRY_BASE_MS)?
                .map_or(flow.retry.base, Duration::from_millis),
            cap: flow.retry.cap,
        };
        if let Some(ms) = env_num(env::BOOTSTRAP_POLL_MS)? {
            flow.poll = PollConfig {
                initial: Duration::from_millis(ms),
                max: flow.poll.max.max(Duration::from_millis(ms)),
            };
        }
        Ok(Self {
            kind,
            endpoint,
            flow,
            output,
            provider_flags: BTreeMap::new(),
            context: None,
        })
    }

    /// Adds `--context`, refused where the provider has no contexts (naming its own flags).
    pub fn with_context(mut self, context: Option<&str>) -> anyhow::Result<Self> {
        let Some(c) = context else { return Ok(self) };
        let d = self.kind.desc();
        if d.context.is_none() {
            let own = if d.flags.is_empty() {
                String::new()
            } else {
                format!(" (its own flags: {})", d.flags.join(", "))
            };
            return Err(bad(format!(
                "--context does not apply to --provider {}{own}",
                d.name
            )));
        }
        if c.is_empty() || c.chars().any(char::is_control) {
            return Err(bad(
                "--context needs a context name, e.g. --context prod (the provider CLI lists them)",
            ));
        }
        self.context = Some(c.to_owned());
        Ok(self)
    }

    /// Adds the provider-only flags (`--region`, `--subnet`), checked offline: another
    /// provider's flags are refused, and the provider checks its own.
    pub fn with_flags(mut self, flags: BTreeMap<&'static str, String>) -> anyhow::Result<Self> {
        self.provider_flags = flags;
        crate::providers::check_flags(self.kind, &self.provider_flags, &self.options())?;
        Ok(self)
    }

    /// From the shared `--provider/--endpoint/--timeout/--output` flags of a command on
    /// deployment `name`: what the flags (or `BOOTSTRAP_PROVIDER`) leave out comes from the
    /// deployment's local state, so `bootstrap destroy web1` alone reaches where `create` did.
    pub fn from_args(a: &ConnectArgs, name: Option<&DeploymentName>) -> anyhow::Result<Self> {
        let (kind, stored) = locate(a.provider, name)?;
        Self::from_parts(
            kind,
            stored.unwrap_or_default(),
            a.endpoint.as_deref(),
            Some(&a.timeout),
            a.output,
            a.context.as_deref(),
            a.provider_flags.values(),
        )
    }

    /// Explicit values over stored ones, per setting (an endpoint variable counts as explicit).
    fn from_parts(
        kind: ProviderKind,
        stored: crate::state::ConnectionRecord,
        endpoint: Option<&str>,
        timeout: Option<&str>,
        output: OutputFormat,
        context: Option<&str>,
        mut flags: BTreeMap<&'static str, String>,
    ) -> anyhow::Result<Self> {
        let endpoint_var = env::var(&env::endpoint_var(kind.name()));
        let endpoint = endpoint.or(if endpoint_var.is_some() {
            None
        } else {
            stored.endpoint.as_deref()
        });
        for flag in kind.desc().flags {
            if let Some(v) = stored.flags.get(*flag) {
                flags.entry(flag).or_insert_with(|| v.clone());
            }
        }
        Self::resolve(kind, endpoint, timeout, output)?
            .with_context(context.or(stored.context.as_deref()))?
            .with_flags(flags)
    }

    /// What the local state keeps of this connection (never a credential).
    pub fn record(&self) -> crate::state::ConnectionRecord {
        crate::state::ConnectionRecord {
            endpoint: self.endpoint.clone(),
            context: self.context.clone(),
            flags: self
                .provider_flags
                .iter()
                .filter(|(f, _)| self.kind.desc().flags.contains(f))
                .map(|(f, v)| ((*f).to_owned(), v.clone()))
                .collect(),
        }
    }
}

/// The provider of a command: `--provider` / `BOOTSTRAP_PROVIDER`, else the one provider under
/// whose state deployment `name` has a record; with that record's connection, if any.
pub fn locate(
    provider: Option<ProviderKind>,
    name: Option<&DeploymentName>,
) -> anyhow::Result<(ProviderKind, Option<crate::state::ConnectionRecord>)> {
    let stored = |kind: ProviderKind| -> anyhow::Result<Option<crate::state::ConnectionRecord>> {
        // An unreadable record only loses the stored connection: `destroy` must still work.
        Ok(match name {
            Some(n) => crate::state::DeploymentDir::new(kind.name(), n)?
                .load_record()
                .ok()
                .flatten()
                .and_then(|r| r.connection),
            None => None,
        })
    };
    if let Some(kind) = provider {
        return Ok((kind, stored(kind)?));
    }
    let all = || {
        crate::providers::REGISTRY
            .iter()
            .map(|d| d.name)
            .collect::<Vec<_>>()
            .join(", ")
    };
    let Some(name) = name else {
        return Err(bad(format!(
            "which provider? add --provider ({}) or set BOOTSTRAP_PROVIDER",
            all()
        )));
    };
    let found = crate::state::providers_with_state(name)?;
    match found.as_slice() {
        [one] => {
            let kind = crate::providers::kind(one)
                .ok_or_else(|| bad(format!("unknown provider {one} in the local state")))?;
            Ok((kind, stored(kind)?))
        }
        [] => Err(bad(format!(
            "no local state for {name} names its provider: add --provider ({})",
            all()
        ))),
        many => Err(bad(format!(
            "{name} has local state at {}: add --provider to pick one",
            many.join(" and ")
        ))),
    }
}

fn env_num(name: &str) -> anyhow::Result<Option<u64>> {
    env::var(name)
        .map(|v| {
            v.parse()
                .map_err(|_| bad(format!("{name}={v:?} is not a whole number")))
        })
        .transpose()
}

/// The longest `--timeout`: a week is more than any wait of one run needs, and keeps every
/// deadline far from `Instant`'s limits.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(7 * 24 * 3600);

/// `600` (seconds), `90s`, `10m`, `1h30m` as a duration (humantime's syntax), more than 0 and at
/// most [`MAX_TIMEOUT`]; anything else is one line naming the fix.
pub fn parse_duration(s: &str) -> anyhow::Result<Duration> {
    let s = s.trim();
    let invalid = || {
        bad(format!(
            "invalid --timeout {s:?}: use seconds or units, e.g. 600, 90s, 10m, 1h30m (at most 7d)"
        ))
    };
    let d = if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        // Plain seconds; too many digits for u64 is simply too long.
        s.parse::<u64>().map_or(Duration::MAX, Duration::from_secs)
    } else {
        match humantime::parse_duration(s) {
            Ok(d) => d,
            Err(humantime::DurationError::NumberOverflow) => Duration::MAX,
            Err(_) => return Err(invalid()),
        }
    };
    if d.is_zero() {
        return Err(bad("--timeout must be more than 0"));
    }
    if d > MAX_TIMEOUT {
        return Err(bad(format!(
            "--timeout {s} is longer than the maximum of 7 days (7d); give a shorter one, e.g. 1h"
        )));
    }
    Ok(d)
}

/// Who may reach SSH at the cloud firewall.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SshFrom {
    /// The whole world (`--ssh-from any`), only when asked for explicitly.
    Any,
    /// These networks.
    Cidrs(Vec<IpNet>),
}

impl SshFrom {
    /// Parses the `--ssh-from` values: CIDRs or bare addresses (taken as /32 or /128), or `any`.
    pub fn parse(values: &[String]) -> anyhow::Result<Self> {
        if values.iter().any(|v| v == "any") {
            if values.len() > 1 {
                return Err(bad(
                    "--ssh-from any opens SSH to everyone: give it alone, or give only CIDRs",
                ));
            }
            return Ok(Self::Any);
        }
        let mut nets = Vec::new();
        for v in values {
            if has_leading_zero_octet(v) {
                return Err(bad(format!(
                    "invalid --ssh-from {v:?}: an IPv4 part with a leading zero is read as octal by some tools and as decimal by others; write it without leading zeros"
                )));
            }
            let net = v
                .parse::<IpNet>()
                .or_else(|_| v.parse::<std::net::IpAddr>().map(IpNet::from))
                .map_err(|_| {
                    bad(format!(
                        "invalid --ssh-from {v:?}: give a CIDR such as 203.0.113.7/32 or 2001:db8::/48, or `any`"
                    ))
                })?;
            if net.trunc() != net {
                return Err(bad(format!(
                    "invalid --ssh-from {v}: host bits are set; did you mean {}?",
                    net.trunc()
                )));
            }
            if let IpNet::V6(v6) = net
                && v6.prefix_len() >= 96
                && let Some(v4) = v6.network().to_ipv4_mapped()
            {
                // Clients reach IPv4 servers from their IPv4 address: the mapped form matches no one.
                return Err(bad(format!(
                    "invalid --ssh-from {v}: an IPv4-mapped IPv6 address; write the IPv4 network {v4}/{}",
                    v6.prefix_len() - 96
                )));
            }
            if net.prefix_len() == 0 {
                return Err(bad(format!(
                    "--ssh-from {v} opens SSH to everyone: write `--ssh-from any` if that is really what you want"
                )));
            }
            if !nets.contains(&net) {
                nets.push(net);
            }
        }
        Ok(Self::Cidrs(nets))
    }

    /// Which address families these networks open SSH to entirely (`IPv4`, `IPv6`), also when
    /// only their union does (`0.0.0.0/1` + `128.0.0.0/1`): that is "open to the world" too.
    pub fn world_open_families(&self) -> Vec<&'static str> {
        let Self::Cidrs(nets) = self else {
            return vec!["IPv4", "IPv6"];
        };
        IpNet::aggregate(nets)
            .iter()
            .filter(|n| n.prefix_len() == 0)
            .map(|n| match n {
                IpNet::V4(_) => "IPv4",
                IpNet::V6(_) => "IPv6",
            })
            .collect()
    }

    /// The source networks for the cloud firewall (`0.0.0.0/0` and `::/0` for `any`).
    pub fn firewall_sources(&self) -> Vec<IpNet> {
        match self {
            Self::Any => vec![
                IpNet::V4(Ipv4Net::new(Ipv4Addr::UNSPECIFIED, 0).unwrap_or_default()),
                IpNet::V6(Ipv6Net::new(Ipv6Addr::UNSPECIFIED, 0).unwrap_or_default()),
            ],
            Self::Cidrs(c) => c.clone(),
        }
    }

    /// The networks for the host (fail2ban ignoreip, nftables); empty means anyone.
    pub fn host_sources(&self) -> Vec<IpNet> {
        match self {
            Self::Any => Vec::new(),
            Self::Cidrs(c) => c.clone(),
        }
    }
}

/// True when a dotted IPv4 part of `v` starts with `0` and has more digits (`010.0.0.1`).
fn has_leading_zero_octet(v: &str) -> bool {
    let addr = v.split('/').next().unwrap_or_default();
    // Only the dotted-quad part: in IPv6 (`2001:db8::0a`) leading zeros are plain hex.
    let quad = addr.rsplit(':').next().unwrap_or_default();
    quad.contains('.')
        && quad
            .split('.')
            .any(|part| part.len() > 1 && part.starts_with('0'))
}

/// Accounts and groups that Debian and Ubuntu cloud images already have (UID/GID < 1000, from
/// base-passwd and the packages the images and the template install): cloud-init's `useradd`
/// fails on a taken user or group name, or worse, hands SSH to a system account. `admin`, our
/// default, is not among them (Debian's AWS images name their default user `admin`, which the
/// template does not create), nor are `ubuntu` and `debian` (the template creates only ours).
const SYSTEM_ACCOUNTS: &[&str] = &[
    // Users.
    "root",
    "daemon",
    "bin",
    "sys",
    "sync",
    "games",
    "man",
    "lp",
    "mail",
    "news",
    "uucp",
    "proxy",
    "www-data",
    "backup",
    "list",
    "irc",
    "gnats",
    "nobody",
    "messagebus",
    "syslog",
    "sshd",
    "uuidd",
    "tcpdump",
    "tss",
    "landscape",
    "pollinate",
    "fwupd-refresh",
    "usbmux",
    "dnsmasq",
    "polkitd",
    "lxd",
    "chrony",
    "ntp",
    "statd",
    "dhcpcd",
    "avahi",
    "ec2-instance-connect",
    // Groups.
    "adm",
    "tty",
    "disk",
    "kmem",
    "dialout",
    "fax",
    "voice",
    "cdrom",
    "floppy",
    "tape",
    "sudo",
    "audio",
    "dip",
    "operator",
    "src",
    "shadow",
    "utmp",
    "video",
    "sasl",
    "plugdev",
    "staff",
    "users",
    "nogroup",
    "netdev",
    "crontab",
    "input",
    "kvm",
    "render",
    "sgx",
    "ssh",
    "admins",
    // Debian's underscore names for newer system users and groups.
    "_apt",
    "_chrony",
    "_rpc",
    "_ssh",
    "_gnats",
    "_laurel",
];

/// Checks a POSIX user name usable as the admin: `[a-z_][a-z0-9_-]*`, at most 32, not root,
/// not a system account or group of the images.
pub fn admin_user(name: &str) -> anyhow::Result<String> {
    let valid = !name.is_empty()
        && name.len() <= 32
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b == b'_')
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if !valid {
        return Err(bad(format!(
            "invalid --admin-user {name:?}: use 1-32 lowercase letters, digits, '_' or '-', starting with a letter or '_'"
        )));
    }
    if name == "root" {
        return Err(bad(
            "--admin-user root is refused: root login is disabled on the server; choose another name such as admin",
        ));
    }
    if SYSTEM_ACCOUNTS.contains(&name) || name.starts_with("systemd-") {
        return Err(bad(format!(
            "--admin-user {name} is refused: Debian and Ubuntu images already have a system account or group of that name; choose another name such as admin"
        )));
    }
    Ok(name.to_owned())
}

/// The local state directory (`$BOOTSTRAP_STATE_DIR`, else `$XDG_STATE_HOME/bootstrap`, else
/// `~/.local/state/bootstrap`).
pub fn state_dir() -> anyhow::Result<PathBuf> {
    if let Some(d) = env::var(env::BOOTSTRAP_STATE_DIR) {
        return Ok(PathBuf::from(d));
    }
    env::state_home()
        .map(|d| d.join("bootstrap"))
        .ok_or_else(|| bad("cannot find the state directory: set BOOTSTRAP_STATE_DIR or HOME"))
}

/// Where the deployment's generated private key lives.
pub fn deployment_key_path(provider: &str, name: &DeploymentName) -> anyhow::Result<PathBuf> {
    Ok(state_dir()?
        .join(provider)
        .join(name.as_str())
        .join("id_ed25519"))
}

/// Validated `create`/`render` input.
#[derive(Debug)]
pub struct CreateSettings {
    /// Provider connection.
    pub conn: Connection,
    /// Deployment name.
    pub name: DeploymentName,
    /// Who may reach SSH.
    pub ssh_from: SshFrom,
    /// Server type.
    pub server_type: String,
    /// Image.
    pub image: String,
    /// Location.
    pub location: String,
    /// The user's own public key, if given.
    pub ssh_key: Option<bootstrap_keys::PublicKey>,
    /// Path of the generated private key (when no `--ssh-key`).
    pub key_path: PathBuf,
    /// Passphrase for the generated key.
    pub passphrase: Option<bootstrap_core::Secret>,
    /// Admin user.
    pub admin_user: String,
    /// Reboot time HH:MM.
    pub reboot_time: String,
    /// The template.
    pub template: bootstrap_cloudinit::Template,
    /// Plan only.
    pub dry_run: bool,
    /// Snapshot schedule (`None`: off).
    pub schedule: Option<bootstrap_core::schedule::Schedule>,
    /// Who keeps the schedule.
    pub engine: &'static str,
    /// Turn on the provider's own backups too.
    pub provider_backups: bool,
    /// Restore from this snapshot id.
    pub from_snapshot: Option<String>,
    /// sudo, Docker, VPN, forwarding and the image's OpenSSH.
    pub hardening: HardeningSettings,
}

impl CreateSettings {
    /// Checks every flag; no network.
    pub fn from_args(a: &CreateArgs) -> anyhow::Result<Self> {
        let c = &a.connect;
        let mut flags = c.provider_flags.values();
        flags.extend(a.provider_create_flags.values());
        let kind = c.provider.ok_or_else(|| {
            bad(format!(
                "create needs --provider ({}) or BOOTSTRAP_PROVIDER",
                crate::providers::REGISTRY
                    .iter()
                    .map(|d| d.name)
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })?;
        let conn = Connection::resolve(kind, c.endpoint.as_deref(), Some(&c.timeout), c.output)?
            .with_context(c.context.as_deref())?
            .with_flags(flags)?;
        let name = DeploymentName::parse(&a.name).map_err(|e| bad(e.to_string()))?;
        let schedule = schedule(&a.snapshots.spec, &a.snapshots.time, &a.snapshots.day)?;
        let engine = snapshot_engine(conn.kind, a.snapshots.engine.as_deref())?;
        if a.snapshots.provider_backups && !conn.kind.desc().provider_backups {
            return Err(bad(format!(
                "--provider-backups is not available on {}; drop it (the snapshot schedule still applies)",
                conn.kind.name()
            )));
        }
        let from_snapshot = match &a.snapshots.from_snapshot {
            Some(id)
                if id.is_empty() || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') =>
            {
                return Err(bad(format!(
                    "invalid --from-snapshot {id:?}: give the id that `bootstrap snapshot list` shows"
                )));
            }
            other => other.clone(),
        };
        let ssh_from = SshFrom::parse(&a.ssh_from)?;
        let admin_user = admin_user(&a.admin_user)?;
        bootstrap_cloudinit::validate_reboot_time(&a.reboot_time)
            .map_err(|e| bad(format!("invalid --reboot-time: {e}")))?;
        let template = match &a.template {
            Some(p) => read_template(p)?,
            None => bootstrap_cloudinit::Template::embedded(),
        };
        let passphrase = match &a.passphrase_env {
            Some(var) if a.ssh_key.is_some() => {
                return Err(bad(format!("--passphrase-env {var} only applies to a generated key; drop it or drop --ssh-key")));
            }
            Some(var) => Some(bootstrap_core::Secret::new(env::var(var).ok_or_else(|| {
                bad(format!("--passphrase-env {var}: the variable {var} is not set or empty; export it first"))
            })?)),
            None => None,
        };
        let provider = conn.kind.name();
        let d = conn.kind.desc().defaults;
        let non_empty = |flag: &str, v: &Option<String>, default: &str| -> anyhow::Result<String> {
            match v {
                Some(v) if v.trim().is_empty() || v.chars().any(char::is_whitespace) => Err(bad(
                    format!("invalid --{flag} {v:?}: give a name without spaces"),
                )),
                Some(v) => Ok(v.clone()),
                None => Ok(default.to_owned()),
            }
        };
        let server_type = non_empty("server-type", &a.server_type, d.server_type)?;
        let image = non_empty("image", &a.image, d.image)?;
        let mut location = non_empty("location", &a.location, d.location)?;
        let mut conn = conn;
        if let Some(flag) = conn.kind.desc().location_flag {
            // One place, two names: `--location` and the provider's flag (Scaleway's `--zone`).
            location = match (&a.location, conn.provider_flags.get(flag)) {
                (Some(_), Some(f)) if *f != location => {
                    return Err(bad(format!(
                        "--location {location} and {flag} {f} name different places; give one of them (they mean the same for {provider})"
                    )));
                }
                (Some(_), _) => location,
                (None, Some(f)) => f.clone(),
                (None, None) => (conn.kind.desc().default_location)().unwrap_or(location),
            };
            // Printed commands (the rollback's `destroy`) then reach the same place.
            conn.provider_flags.insert(flag, location.clone());
        }
        // The engine rides along: a provider's engine may need one of its flags (Scaleway's
        // serverless-jobs needs --job-image).
        let mut options = conn.options();
        options.flags.insert("--snapshot-engine", engine.to_owned());
        (conn.kind.desc().check_server)(&server_type, &image, &location, &options)
            .map_err(|e| bad(e.to_string()))?;
        let hardening = HardeningSettings::from_args(a, &image, from_snapshot.as_deref())?;
        // After the image: whether sshd takes the key depends on the image's OpenSSH.
        let ssh_key = match &a.ssh_key {
            Some(p) => Some(load_user_key(p, &hardening.profile)?),
            None => None,
        };
        Ok(Self {
            hardening,
            key_path: deployment_key_path(provider, &name)?,
            server_type,
            image,
            location,
            conn,
            name,
            ssh_from,
            ssh_key,
            passphrase,
            admin_user,
            reboot_time: a.reboot_time.clone(),
            template,
            dry_run: a.dry_run,
            schedule,
            engine,
            provider_backups: a.snapshots.provider_backups,
            from_snapshot,
        })
    }
}

/// Reads `--template` with the one local-file reader: a regular file of at most 256 KiB.
fn read_template(p: &Path) -> anyhow::Result<bootstrap_cloudinit::Template> {
    use bootstrap_core::config_file::{Symlinks, read_text};
    let max = bootstrap_cloudinit::Template::MAX_BYTES;
    match read_text(p, max, Symlinks::Follow) {
        Ok(Some(source)) => Ok(bootstrap_cloudinit::Template::from_source(p, source)),
        Ok(None) => Err(bad(format!(
            "--template {}: no such file; give the path of a cloud-init template",
            p.display()
        ))),
        Err(e) => Err(bad(format!(
            "--template {}: {e}; give a template file of at most {} KiB",
            p.display(),
            max / 1024
        ))),
    }
}

/// Loads `--ssh-key`: a `.pub` file, or a private key path whose `.pub` sits beside it; refuses
/// a key that the image's sshd config would refuse at login (issue 13, finding 4).
fn load_user_key(
    p: &Path,
    profile: &bootstrap_cloudinit::ImageProfile,
) -> anyhow::Result<bootstrap_keys::PublicKey> {
    let candidate = if p.extension().is_some_and(|e| e == "pub") {
        p.to_path_buf()
    } else {
        let mut s = p.as_os_str().to_owned();
        s.push(".pub");
        PathBuf::from(s)
    };
    // A FIFO, a device or a directory named without `.pub` is refused as itself, not as a
    // missing `PATH.pub` (the metadata of a FIFO does not open it).
    if candidate != p && std::fs::metadata(p).is_ok_and(|m| !m.is_file()) {
        return Err(bad(format!(
            "--ssh-key {}: not a regular file; give the path of an OpenSSH public key (PATH.pub)",
            p.display()
        )));
    }
    let algorithms = profile.algorithms();
    let refused =
        |e: bootstrap_cloudinit::Error| bad(format!("--ssh-key {}: {e}", candidate.display()));
    match bootstrap_keys::PublicKey::load(&candidate) {
        Ok(key) => {
            algorithms
                .check_user_key(&key.algorithm(), key.rsa_bits())
                .map_err(refused)?;
            Ok(key)
        }
        Err(e) => {
            // A type we cannot read (ECDSA) is named with the fix when sshd would refuse it anyway.
            if let Some(key_type) = e.unsupported_key_type() {
                algorithms.check_user_key(key_type, None).map_err(refused)?;
            }
            Err(bad(format!(
                "--ssh-key: {e}; give the path of an OpenSSH public key (PATH.pub)"
            )))
        }
    }
}

/// Parses `--snapshots`, `--snapshot-time` and `--snapshot-day` into a schedule (`None`: off).
pub fn schedule(
    spec: &str,
    time: &str,
    day: &str,
) -> anyhow::Result<Option<bootstrap_core::schedule::Schedule>> {
    use bootstrap_core::schedule::{Schedule, parse_time, parse_weekday};
    let t = parse_time(time).map_err(|e| bad(format!("--snapshot-time: {e}")))?;
    let d = parse_weekday(day).map_err(|e| bad(format!("--snapshot-day: {e}")))?;
    Schedule::parse(spec, t, d).map_err(|e| bad(e.to_string()))
}

/// The snapshot engine: the user's choice if the provider has it, else the provider's default.
pub fn snapshot_engine(kind: ProviderKind, chosen: Option<&str>) -> anyhow::Result<&'static str> {
    let available = kind.desc().snapshot_engines;
    match chosen {
        Some(e) => available.iter().copied().find(|a| *a == e).ok_or_else(|| {
            bad(format!(
                "--snapshot-engine {e:?} is not available on {}; use one of: {}",
                kind.name(),
                available.join(", ")
            ))
        }),
        // The first is the provider's default (a native engine where one exists).
        None => available
            .first()
            .copied()
            .ok_or_else(|| bad(format!("{} has no snapshot engine", kind.name()))),
    }
}

/// Parses `--at` (RFC 3339), default now.
pub fn instant(at: Option<&str>) -> anyhow::Result<time::OffsetDateTime> {
    match at {
        None => Ok(time::OffsetDateTime::now_utc()),
        Some(s) => time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
            .map_err(|_| {
                bad(format!(
                    "invalid --at {s:?}: use RFC 3339, e.g. 2026-11-25T03:00:00Z"
                ))
            }),
    }
}

/// The hardening choices of `create`/`render`, checked offline.
#[derive(Debug, Clone)]
pub struct HardeningSettings {
    /// `--sudo`.
    pub sudo: crate::state::SudoMode,
    /// `--docker`.
    pub docker: bool,
    /// `--vpn wireguard`.
    pub vpn: bool,
    /// `--allow-tcp-forwarding`.
    pub allow_tcp_forwarding: bool,
    /// The image's OpenSSH (from `--image`; a snapshot's is unknown).
    pub profile: bootstrap_cloudinit::ImageProfile,
    /// The private key of `--ssh-key`, which `verify` and `ssh` log in with.
    pub user_identity: Option<PathBuf>,
}

impl HardeningSettings {
    /// Checks `--sudo`, `--vpn` and that the embedded template fits the image.
    pub fn from_args(
        a: &CreateArgs,
        image: &str,
        from_snapshot: Option<&str>,
    ) -> anyhow::Result<Self> {
        let h = &a.hardening;
        let sudo = match h.sudo {
            crate::cli::SudoArg::Password => crate::state::SudoMode::Password,
            crate::cli::SudoArg::Nopasswd => crate::state::SudoMode::Nopasswd,
        };
        let vpn = matches!(h.vpn, Some(crate::cli::VpnArg::Wireguard));
        let profile = bootstrap_cloudinit::ImageProfile::for_image(from_snapshot.unwrap_or(image));
        if a.template.is_none()
            && from_snapshot.is_none()
            && profile.family() == bootstrap_cloudinit::Family::Other
        {
            return Err(bad(format!(
                "--image {image}: the built-in hardening is written for Debian and Ubuntu (apt, unattended-upgrades); use a debian-* or ubuntu-* image, or your own --template"
            )));
        }
        let user_identity = a.ssh_key.as_ref().map(|p| {
            if p.extension().is_some_and(|e| e == "pub") {
                p.with_extension("")
            } else {
                p.clone()
            }
        });
        let user_identity = user_identity.map(|p| std::path::absolute(&p).unwrap_or(p));
        Ok(Self {
            sudo,
            docker: h.docker,
            vpn,
            allow_tcp_forwarding: h.allow_tcp_forwarding,
            profile,
            user_identity,
        })
    }
}

/// Where `verify` and `ssh` reach a deployment, checked offline.
#[derive(Debug)]
pub struct TargetSettings {
    /// Provider connection (for the label lookup, and where the state lives).
    pub conn: Connection,
    /// Deployment name.
    pub name: DeploymentName,
    /// `--host`/`--port`: skip the lookup.
    pub address: Option<(String, u16)>,
}

impl TargetSettings {
    /// Checks the name, `--host`, `--port` and the provider flags.
    pub fn from_args(
        name: &str,
        t: &crate::cli::TargetArgs,
        output: OutputFormat,
    ) -> anyhow::Result<Self> {
        let name = DeploymentName::parse(name).map_err(|e| bad(e.to_string()))?;
        let (kind, stored) = locate(t.provider, Some(&name))?;
        let conn = Connection::from_parts(
            kind,
            stored.unwrap_or_default(),
            t.endpoint.as_deref(),
            None,
            output,
            t.context.as_deref(),
            t.provider_flags.values(),
        )?;
        let address = match &t.host {
            None => None,
            Some(h) => {
                let ok = h.parse::<std::net::IpAddr>().is_ok()
                    || (!h.is_empty()
                        && h.len() <= 253
                        && !h.starts_with(['-', '.'])
                        && h.bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-'));
                if !ok {
                    return Err(bad(format!(
                        "invalid --host {h:?}: give an IP address or a DNS name"
                    )));
                }
                if t.port == Some(0) {
                    return Err(bad("invalid --port 0: give the SSH port, e.g. 22"));
                }
                Some((h.clone(), t.port.unwrap_or(22)))
            }
        };
        Ok(Self {
            conn,
            name,
            address,
        })
    }
}

/// `--endpoint` or `BOOTSTRAP_<PROVIDER>_ENDPOINT` under core's one URL rule; `source` names
/// where it came from (the URL is not echoed: user info may hold a password). Kept as written
/// (printed commands repeat it): the client parses the same text the check did, and appending a
/// path cannot move its host.
fn checked_endpoint(source: &str, e: &str) -> anyhow::Result<String> {
    bootstrap_core::endpoint::check(e)
        .map(|_| e.to_owned())
        .map_err(|why| bad(format!("invalid {source}: {why}")))
}

/// `v` as one shell word: bare when it is plain, else in single quotes.
fn shell_quote(v: &str) -> String {
    // A NUL cannot be passed to a program at all; the values here never hold one.
    shlex::try_quote(v).map_or_else(|_| format!("'{}'", v.replace('\0', "")), |q| q.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_endpoint_goes_through_the_one_rule() {
        let ok = checked_endpoint("--endpoint", "http://127.0.0.1:8080/v1").unwrap();
        assert_eq!(ok, "http://127.0.0.1:8080/v1");
        // See: issue 13, finding 1.
        let e = checked_endpoint("--endpoint", "http://vm:4099\\@127.0.0.1/").unwrap_err();
        assert!(e.downcast_ref::<BadInput>().is_some());
        assert!(e.to_string().starts_with("invalid --endpoint: "), "{e}");
    }

    #[test]
    fn context_reaches_the_provider_and_every_printed_command() {
        let kind = crate::providers::ProviderKind(&bootstrap_hetzner::DESCRIPTION);
        let conn = Connection::resolve(kind, None, None, OutputFormat::Text)
            .unwrap()
            .with_context(Some("dev ops"))
            .unwrap();
        assert_eq!(conn.options().context.as_deref(), Some("dev ops"));
        assert_eq!(conn.flags(), " --context 'dev ops'");
        let none = Connection::resolve(kind, None, None, OutputFormat::Text).unwrap();
        assert_eq!(none.flags(), "");
        let err = none.with_context(Some("a\nb")).unwrap_err().to_string();
        assert!(err.contains("--context"), "{err}");
    }

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| (*x).to_owned()).collect()
    }

    #[test]
    fn ssh_from_parses_cidrs_addresses_and_any() {
        let f = SshFrom::parse(&s(&["203.0.113.7/32", "2001:db8::/48", "198.51.100.9"])).unwrap();
        assert_eq!(
            f.firewall_sources()
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>(),
            ["203.0.113.7/32", "2001:db8::/48", "198.51.100.9/32"]
        );
        assert_eq!(SshFrom::parse(&s(&["any"])).unwrap(), SshFrom::Any);
        assert_eq!(
            SshFrom::Any
                .firewall_sources()
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>(),
            ["0.0.0.0/0", "::/0"]
        );
        assert!(SshFrom::Any.host_sources().is_empty());
        for bad in [
            "203.0.113.7/33",
            "nope",
            "0.0.0.0/0",
            "::/0",
            "203.0.113.7/24",
            "1.2.3.4\n/32",
            "",
        ] {
            assert!(SshFrom::parse(&s(&[bad])).is_err(), "{bad:?}");
        }
        assert!(SshFrom::parse(&s(&["any", "203.0.113.7/32"])).is_err());
    }

    #[test]
    fn admin_user_rules() {
        for ok in ["admin", "_x", "ops-1", "a_b"] {
            assert!(admin_user(ok).is_ok(), "{ok}");
        }
        for bad in [
            "root",
            "",
            "Admin",
            "1abc",
            "a b",
            "a\nb",
            "a:b",
            "x\"y",
            &"a".repeat(33),
        ] {
            assert!(admin_user(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn bad_input_is_one_line_whatever_it_echoes() {
        let e = bad("zone \"a\r\nb\u{85}c\u{2028}d\te\u{1b}[31m\": not a zone").to_string();
        assert_eq!(
            e,
            r#"zone "a\r\nb\u{85}c\u{2028}d\te\u{1b}[31m": not a zone"#
        );
    }

    // See: issue 13, finding 9 (`--admin-user daemon|sshd|nobody` was accepted).
    #[test]
    fn system_accounts_and_groups_are_refused_as_admin() {
        for name in [
            "daemon",
            "sshd",
            "nobody",
            "bin",
            "www-data",
            "_apt",
            "systemd-network",
            "systemd-anything",
            "messagebus",
            "syslog",
            "sudo",
            "users",
        ] {
            let err = admin_user(name).unwrap_err().to_string();
            assert!(
                err.contains("system account") && err.contains("such as admin"),
                "{name}: {err}"
            );
        }
        // Our default, and the cloud images' default user names (the template does not create them).
        for name in ["admin", "ubuntu", "debian", "deploy"] {
            assert!(admin_user(name).is_ok(), "{name}");
        }
    }

    // See: issue 13, finding 9 (mapped IPv6, leading zeros, halves of the world).
    #[test]
    fn ssh_from_semantics() {
        for (v, needle) in [
            ("::ffff:1.2.3.4/128", "1.2.3.4/32"),
            ("::ffff:1.2.3.0/120", "1.2.3.0/24"),
            ("::ffff:1.2.3.4", "1.2.3.4/32"),
            ("010.0.0.1", "leading zero"),
            ("10.0.0.01/32", "leading zero"),
            ("192.168.000.0/24", "leading zero"),
        ] {
            let err = SshFrom::parse(&s(&[v])).unwrap_err().to_string();
            assert!(err.contains(needle), "{v}: {err}");
        }
        // Leading zeros in IPv6 hex groups are ordinary.
        assert!(SshFrom::parse(&s(&["2001:db8::0a/128"])).is_ok());
        assert!(SshFrom::parse(&s(&["10.0.0.0/8"])).is_ok());

        let open = |v: &[&str]| SshFrom::parse(&s(v)).unwrap().world_open_families();
        assert_eq!(open(&["0.0.0.0/1", "128.0.0.0/1"]), ["IPv4"]);
        assert_eq!(open(&["::/1", "8000::/1"]), ["IPv6"]);
        assert_eq!(
            open(&["0.0.0.0/2", "64.0.0.0/2", "128.0.0.0/1", "::/1", "8000::/1"]),
            ["IPv4", "IPv6"]
        );
        assert!(open(&["0.0.0.0/1", "203.0.113.0/24"]).is_empty());
        assert_eq!(open(&["any"]), ["IPv4", "IPv6"]);
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("600").unwrap(), Duration::from_secs(600));
        assert_eq!(parse_duration("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("10m").unwrap(), Duration::from_secs(600));
        assert_eq!(parse_duration("1h").unwrap(), Duration::from_secs(3600));
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("7d").unwrap(), MAX_TIMEOUT);
        for b in ["", "m", "10x", "-1", "0", "0s", "1h 30x"] {
            assert!(parse_duration(b).is_err(), "{b:?}");
        }
        // See: issue 13, finding 3: no panic, no wrap, one line with the maximum.
        for huge in [
            "18446744073709551615",
            "18446744073709551616",
            "307445734561825861m",
            "99999999999999999999999h",
            "8d",
            "604801",
        ] {
            let e = parse_duration(huge).unwrap_err().to_string();
            assert!(e.contains("maximum of 7 days"), "{huge}: {e}");
        }
    }
}
