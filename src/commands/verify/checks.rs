//! The checks of `bootstrap verify`: each reads the real output of a command run on the server
//! (`sshd -T`, `fail2ban-client status sshd`, `nft -j list ruleset`, `apt-config dump`,
//! `apt list --upgradable`, `sysctl`, `systemctl is-enabled`, `ssh -v`, ...) and turns it into
//! pass, fail or skip with a one-line detail. No I/O here: `verify` runs the commands.

use std::collections::BTreeMap;

use bootstrap_cloudinit::ImageProfile;
use serde::Serialize;
use serde_json::Value;

use crate::state::{DeploymentRecord, SudoMode};

/// Outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// As it should be.
    Pass,
    /// Not as it should be, or could not be established.
    Fail,
    /// Does not apply to this target (said why in the detail).
    Skip,
}

impl Status {
    /// `pass`, `fail`, `skip`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pass => "pass",
            Self::Fail => "fail",
            Self::Skip => "skip",
        }
    }
}

/// One line of the checklist.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// Stable id, e.g. `sshd-password-authentication`.
    pub id: &'static str,
    /// What is checked.
    pub title: &'static str,
    /// The outcome.
    pub status: Status,
    /// What was found.
    pub detail: String,
}

impl Check {
    /// A passed check.
    pub fn pass(id: &'static str, title: &'static str, detail: impl Into<String>) -> Self {
        Self {
            id,
            title,
            status: Status::Pass,
            detail: detail.into(),
        }
    }

    /// A failed check.
    pub fn fail(id: &'static str, title: &'static str, detail: impl Into<String>) -> Self {
        Self {
            id,
            title,
            status: Status::Fail,
            detail: detail.into(),
        }
    }

    /// A skipped check.
    pub fn skip(id: &'static str, title: &'static str, detail: impl Into<String>) -> Self {
        Self {
            id,
            title,
            status: Status::Skip,
            detail: detail.into(),
        }
    }

    fn when(ok: bool, id: &'static str, title: &'static str, detail: impl Into<String>) -> Self {
        if ok {
            Self::pass(id, title, detail)
        } else {
            Self::fail(id, title, detail)
        }
    }
}

/// The output of one remote command: what it printed and its exit code, or that the tool is
/// not on the server.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Section {
    /// Standard output and error.
    pub text: String,
    /// Exit code; `None` when the section did not finish.
    pub rc: Option<i32>,
    /// The tool is not installed (or, for systemd, not running).
    pub absent: bool,
}

impl Section {
    /// True when the command ran and exited 0.
    pub fn ok(&self) -> bool {
        self.rc == Some(0)
    }

    /// The last non-empty line, for messages.
    pub fn last_line(&self) -> &str {
        self.text
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("(no output)")
            .trim()
    }
}

/// Marker the remote scripts print around each command's output.
pub const MARKER: &str = "@@bootstrap-verify@@";

/// Splits a script's output into its sections (`MARKER begin NAME` ... `MARKER rc N`).
pub fn sections(output: &str) -> BTreeMap<String, Section> {
    let mut out = BTreeMap::new();
    let mut current: Option<(String, Section)> = None;
    for line in output.lines() {
        if let Some(rest) = line.strip_prefix(MARKER) {
            let rest = rest.trim();
            if let Some(name) = rest.strip_prefix("begin ") {
                if let Some((n, s)) = current.take() {
                    out.insert(n, s);
                }
                current = Some((name.trim().to_owned(), Section::default()));
            } else if let Some(code) = rest.strip_prefix("rc ") {
                if let Some((n, mut s)) = current.take() {
                    s.rc = code.trim().parse().ok();
                    out.insert(n, s);
                }
            } else if rest == "absent"
                && let Some((n, mut s)) = current.take()
            {
                s.absent = true;
                out.insert(n, s);
            }
            continue;
        }
        if let Some((_, s)) = current.as_mut() {
            s.text.push_str(line);
            s.text.push('\n');
        }
    }
    if let Some((n, s)) = current {
        out.insert(n, s);
    }
    out
}

/// `sshd -T` output as keyword -> values (keywords that repeat, like `hostkey`, keep all).
pub fn parse_sshd_t(text: &str) -> BTreeMap<String, Vec<String>> {
    let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in text.lines() {
        if let Some((k, v)) = line.trim().split_once(' ') {
            map.entry(k.to_ascii_lowercase())
                .or_default()
                .push(v.trim().to_owned());
        }
    }
    map
}

/// The checks of sshd's effective configuration against what `create` rendered.
pub fn sshd_checks(section: &Section, record: &DeploymentRecord) -> Vec<Check> {
    if !section.ok() {
        return vec![Check::fail(
            "sshd-config",
            "sshd effective configuration (sshd -T)",
            format!("sshd -T failed: {}", section.last_line()),
        )];
    }
    let t = parse_sshd_t(&section.text);
    let one = |k: &str| -> String {
        t.get(k)
            .map(|v| v.join(" "))
            .unwrap_or_else(|| "(not set)".to_owned())
    };
    let num = |k: &str| -> Option<u64> { one(k).parse().ok() };
    let mut checks = Vec::new();

    let v = one("permitrootlogin");
    checks.push(Check::when(
        v == "no",
        "sshd-permit-root-login",
        "sshd: root cannot log in",
        format!("PermitRootLogin {v}"),
    ));
    let v = one("passwordauthentication");
    checks.push(Check::when(
        v == "no",
        "sshd-password-authentication",
        "sshd: passwords are off",
        format!("PasswordAuthentication {v}"),
    ));
    let v = one("kbdinteractiveauthentication");
    checks.push(Check::when(
        v == "no",
        "sshd-kbd-interactive",
        "sshd: keyboard-interactive is off",
        format!("KbdInteractiveAuthentication {v}"),
    ));
    let (methods, pubkey, empty) = (
        one("authenticationmethods"),
        one("pubkeyauthentication"),
        one("permitemptypasswords"),
    );
    checks.push(Check::when(
        methods == "publickey" && pubkey == "yes" && empty == "no",
        "sshd-publickey-only",
        "sshd: public key is the only way in",
        format!(
            "AuthenticationMethods {methods}, PubkeyAuthentication {pubkey}, PermitEmptyPasswords {empty}"
        ),
    ));
    let allow = t.get("allowusers").cloned().unwrap_or_default();
    checks.push(Check::when(
        allow == [record.admin_user.clone()],
        "sshd-allow-users",
        "sshd: only the admin may log in",
        format!(
            "AllowUsers {}",
            if allow.is_empty() {
                "(anyone)".to_owned()
            } else {
                allow.join(" ")
            }
        ),
    ));
    let limits_ok = num("maxauthtries").is_some_and(|n| n <= 3)
        && num("logingracetime").is_some_and(|n| n > 0 && n <= 30)
        && num("maxsessions").is_some_and(|n| n <= 10)
        && num("clientaliveinterval").is_some_and(|n| n > 0 && n <= 300)
        && one("maxstartups") == "10:30:60";
    checks.push(Check::when(
        limits_ok,
        "sshd-limits",
        "sshd: login limits",
        format!(
            "MaxAuthTries {}, LoginGraceTime {}, MaxSessions {}, MaxStartups {}, ClientAliveInterval {}",
            one("maxauthtries"),
            one("logingracetime"),
            one("maxsessions"),
            one("maxstartups"),
            one("clientaliveinterval")
        ),
    ));
    let tcp_want = if record.allow_tcp_forwarding {
        "local"
    } else {
        "no"
    };
    let forwarding = [
        ("x11forwarding", "X11Forwarding", "no"),
        ("allowagentforwarding", "AllowAgentForwarding", "no"),
        ("allowtcpforwarding", "AllowTcpForwarding", tcp_want),
        (
            "allowstreamlocalforwarding",
            "AllowStreamLocalForwarding",
            "no",
        ),
        ("gatewayports", "GatewayPorts", "no"),
        ("permittunnel", "PermitTunnel", "no"),
        ("permituserenvironment", "PermitUserEnvironment", "no"),
    ];
    let wrong: Vec<String> = forwarding
        .iter()
        .filter(|(k, _, want)| one(k) != *want)
        .map(|(k, name, want)| format!("{name} {} (want {want})", one(k)))
        .collect();
    checks.push(Check::when(
        wrong.is_empty(),
        "sshd-forwarding",
        "sshd: no forwarding, tunnels or user environment",
        if wrong.is_empty() {
            format!("X11, agent and tunnels off, AllowTcpForwarding {tcp_want}")
        } else {
            wrong.join(", ")
        },
    ));
    let algorithms = ImageProfile::for_image(&record.image).algorithms();
    let lists = [
        ("kexalgorithms", "KexAlgorithms", &algorithms.kex),
        ("ciphers", "Ciphers", &algorithms.ciphers),
        ("macs", "MACs", &algorithms.macs),
        (
            "hostkeyalgorithms",
            "HostKeyAlgorithms",
            &algorithms.host_key,
        ),
        (
            "pubkeyacceptedalgorithms",
            "PubkeyAcceptedAlgorithms",
            &algorithms.pubkey,
        ),
    ];
    let wrong: Vec<String> = lists
        .iter()
        .filter(|(k, _, want)| one(k) != want.join(","))
        .map(|(k, name, want)| format!("{name} {} (want {})", one(k), want.join(",")))
        .collect();
    checks.push(Check::when(
        wrong.is_empty(),
        "sshd-algorithms",
        "sshd: strong algorithms only",
        if wrong.is_empty() {
            format!(
                "the set for {} (OpenSSH {}); key exchange {}",
                record.image,
                algorithms
                    .openssh
                    .map_or_else(|| "unknown".to_owned(), |v| v.to_string()),
                algorithms.kex.join(",")
            )
        } else {
            wrong.join("; ")
        },
    ));
    let host_keys = t.get("hostkey").cloned().unwrap_or_default();
    checks.push(Check::when(
        !host_keys.is_empty() && host_keys.iter().all(|k| k.ends_with("ed25519_key")),
        "sshd-host-keys",
        "sshd: ed25519 host key only",
        format!("HostKey {}", host_keys.join(", ")),
    ));
    let v = one("loglevel");
    checks.push(Check::when(
        v == "VERBOSE",
        "sshd-log-level",
        "sshd: logs key fingerprints (LogLevel VERBOSE)",
        format!("LogLevel {v}"),
    ));
    if let Some(vpn) = &record.vpn {
        let listen = t.get("listenaddress").cloned().unwrap_or_default();
        let want = format!("{}:22", vpn.server_address);
        checks.push(Check::when(
            listen == [want.clone()],
            "sshd-listen-vpn",
            "sshd: listens on the tunnel address only",
            format!("ListenAddress {} (want {want})", listen.join(", ")),
        ));
    }
    checks
}

/// `cloud-init status --long` once `boot-finished` is there (or the wait ran out).
pub fn cloud_init_check(section: &Section) -> Check {
    const ID: &str = "cloud-init";
    const TITLE: &str = "cloud-init finished";
    if section.absent {
        return Check::skip(ID, TITLE, "cloud-init is not installed on this target");
    }
    let status = section
        .text
        .lines()
        .find_map(|l| l.trim().strip_prefix("status:"))
        .map(str::trim)
        .unwrap_or("unknown");
    let extended = section
        .text
        .lines()
        .find_map(|l| l.trim().strip_prefix("extended_status:"))
        .map(str::trim);
    match section.rc {
        Some(0) if status == "done" => Check::pass(ID, TITLE, "status: done"),
        // cloud-init 23.4+: finished, with warnings (`extended_status: degraded done`).
        Some(2) if status == "done" => Check::pass(
            ID,
            TITLE,
            format!(
                "status: done ({}; `cloud-init status --long` lists the warnings)",
                extended.unwrap_or("degraded")
            ),
        ),
        // 124: `timeout` stopped the wait.
        None | Some(124) => {
            Check::fail(ID, TITLE, format!("still {status} when --timeout ran out"))
        }
        _ => {
            let modules = failed_modules(&section.text);
            let errors: Vec<&str> = section
                .text
                .lines()
                .filter(|l| l.contains("error") || l.contains("Error"))
                .filter(|l| !l.trim_start().starts_with("status:"))
                .map(str::trim)
                .take(3)
                .collect();
            let named = if modules.is_empty() {
                String::new()
            } else {
                format!("failed module(s): {}; ", modules.join(", "))
            };
            Check::fail(
                ID,
                TITLE,
                format!("status: {status}; {named}{}", errors.join("; ")),
            )
        }
    }
}

/// The cloud-init modules `status --long` reports as failed: each error is printed as the
/// Python tuple `('module_name', Exception(...))` (cloud-init 22.4 under `detail:`, 23.4+ under
/// `errors:`).
pub fn failed_modules(text: &str) -> Vec<String> {
    let mut found: Vec<String> = Vec::new();
    for (i, _) in text.match_indices("('") {
        let rest = &text[i + 2..];
        let Some(end) = rest.find("',") else { continue };
        let name = &rest[..end];
        if !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
            && !found.iter().any(|f| f == name)
        {
            found.push(name.to_owned());
        }
    }
    found
}

/// `sudo -n true` as the admin: refused in password mode, allowed with `--sudo nopasswd`.
pub fn sudo_check(section: &Section, mode: SudoMode) -> Check {
    const ID: &str = "sudo";
    const TITLE: &str = "sudo";
    match mode {
        SudoMode::Password => {
            if section.rc.is_some_and(|c| c != 0) && section.text.contains("password is required") {
                Check::pass(ID, TITLE, "asks the admin for the password")
            } else if section.ok() {
                Check::fail(
                    ID,
                    TITLE,
                    "runs without a password (--sudo password was asked for)",
                )
            } else {
                Check::fail(ID, TITLE, format!("sudo -n: {}", section.last_line()))
            }
        }
        SudoMode::Nopasswd => Check::when(
            section.ok(),
            ID,
            TITLE,
            if section.ok() {
                "runs without a password, as --sudo nopasswd asked".to_owned()
            } else {
                format!("sudo -n: {}", section.last_line())
            },
        ),
    }
}

/// `ssh -l root`: must be refused.
pub fn root_login_check(code: Option<i32>, stderr: &str) -> Check {
    const ID: &str = "root-login-refused";
    const TITLE: &str = "a root login is refused";
    match code {
        Some(0) => Check::fail(ID, TITLE, "root logged in with the deployment's key"),
        _ if stderr.contains("Permission denied") => Check::pass(
            ID,
            TITLE,
            stderr
                .lines()
                .find(|l| l.contains("Permission denied"))
                .unwrap_or_default()
                .trim()
                .to_owned(),
        ),
        _ => Check::fail(
            ID,
            TITLE,
            format!(
                "the attempt ended otherwise: {}",
                stderr.lines().last().unwrap_or("(no output)").trim()
            ),
        ),
    }
}

/// The methods in `ssh -v`'s "Authentications that can continue:" lines.
pub fn offered_methods(stderr: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for line in stderr.lines() {
        let list = line
            .split_once("Authentications that can continue: ")
            .map(|(_, m)| m)
            .or_else(|| {
                line.split_once("Permission denied (")
                    .and_then(|(_, r)| r.split_once(')'))
                    .map(|(m, _)| m)
            });
        for m in list.into_iter().flat_map(|l| l.trim().split(',')) {
            let m = m.trim().to_owned();
            if !m.is_empty() && !out.contains(&m) {
                out.push(m);
            }
        }
    }
    out
}

/// Only `publickey` may be offered.
pub fn auth_methods_check(stderr: &str) -> Check {
    const ID: &str = "auth-methods";
    const TITLE: &str = "only public keys are offered (no password, no keyboard-interactive)";
    let methods = offered_methods(stderr);
    if methods.is_empty() {
        return Check::fail(
            ID,
            TITLE,
            format!(
                "ssh -v showed no method list: {}",
                stderr.lines().last().unwrap_or("(no output)").trim()
            ),
        );
    }
    Check::when(
        methods == ["publickey"],
        ID,
        TITLE,
        format!("offered: {}", methods.join(",")),
    )
}

/// `fail2ban-client status sshd`.
pub fn fail2ban_check(section: &Section) -> Check {
    const ID: &str = "fail2ban-sshd";
    const TITLE: &str = "fail2ban guards sshd";
    if section.absent {
        return Check::fail(ID, TITLE, "fail2ban-client is not installed");
    }
    if !section.ok() || !section.text.contains("Status for the jail: sshd") {
        return Check::fail(
            ID,
            TITLE,
            format!("the sshd jail is not running: {}", section.last_line()),
        );
    }
    let field = |name: &str| {
        section
            .text
            .lines()
            .find_map(|l| l.split_once(name).map(|(_, v)| v.trim().to_owned()))
            .unwrap_or_default()
    };
    let journal = field("Journal matches:");
    Check::pass(
        ID,
        TITLE,
        format!(
            "jail sshd active, {} banned now, {} failures seen{}",
            field("Currently banned:"),
            field("Total failed:"),
            if journal.is_empty() {
                String::new()
            } else {
                format!(", reading the journal ({journal})")
            }
        ),
    )
}

/// A base chain of the ruleset.
#[derive(Debug)]
struct BaseChain {
    family: String,
    table: String,
    name: String,
    hook: String,
    policy: String,
}

/// What one rule matches and decides, as far as the checks care.
#[derive(Debug, Default)]
struct RuleFacts {
    accept: bool,
    tcp_dport: Vec<u64>,
    udp_dport: Vec<u64>,
    iifname: Vec<String>,
    saddr: Vec<String>,
}

fn port_values(right: &Value) -> Vec<u64> {
    match right {
        Value::Number(n) => n.as_u64().into_iter().collect(),
        Value::Object(o) => o
            .get("set")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_u64).collect())
            .unwrap_or_default(),
        _ => Vec::new(),
    }
}

fn rule_facts(rule: &Value) -> RuleFacts {
    let mut f = RuleFacts::default();
    for e in rule["expr"].as_array().into_iter().flatten() {
        if e.get("accept").is_some() {
            f.accept = true;
        }
        let Some(m) = e.get("match") else { continue };
        let (left, right) = (&m["left"], &m["right"]);
        if let Some(p) = left.get("payload") {
            let (proto, field) = (p["protocol"].as_str(), p["field"].as_str());
            match (proto, field) {
                (Some("tcp"), Some("dport")) => f.tcp_dport.extend(port_values(right)),
                (Some("udp"), Some("dport")) => f.udp_dport.extend(port_values(right)),
                (Some("ip" | "ip6"), Some("saddr")) => f.saddr.push(match right {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                }),
                _ => {}
            }
        }
        if left.pointer("/meta/key").and_then(Value::as_str) == Some("iifname")
            && let Some(name) = right.as_str()
        {
            f.iifname.push(name.to_owned());
        }
    }
    f
}

/// `nft -j list ruleset`: default-deny input with SSH allowed (through the tunnel in VPN mode),
/// and a default-deny forward path in Docker mode.
pub fn nftables_checks(section: &Section, record: &DeploymentRecord) -> Vec<Check> {
    if !section.ok() {
        return vec![Check::fail(
            "firewall-default-deny",
            "host firewall drops what is not allowed",
            format!("nft list ruleset failed: {}", section.last_line()),
        )];
    }
    let doc: Value = match serde_json::from_str(section.text.trim()) {
        Ok(v) => v,
        Err(e) => {
            return vec![Check::fail(
                "firewall-default-deny",
                "host firewall drops what is not allowed",
                format!("nft -j output is not JSON: {e}"),
            )];
        }
    };
    let items = doc["nftables"].as_array().cloned().unwrap_or_default();
    let chains: Vec<BaseChain> = items
        .iter()
        .filter_map(|i| i.get("chain"))
        .filter(|c| c.get("hook").is_some())
        .map(|c| BaseChain {
            family: c["family"].as_str().unwrap_or_default().to_owned(),
            table: c["table"].as_str().unwrap_or_default().to_owned(),
            name: c["name"].as_str().unwrap_or_default().to_owned(),
            hook: c["hook"].as_str().unwrap_or_default().to_owned(),
            policy: c["policy"].as_str().unwrap_or("accept").to_owned(),
        })
        .collect();
    let rules_of = |ch: &BaseChain| -> Vec<RuleFacts> {
        items
            .iter()
            .filter_map(|i| i.get("rule"))
            .filter(|r| {
                r["family"] == ch.family.as_str()
                    && r["table"] == ch.table.as_str()
                    && r["chain"] == ch.name.as_str()
            })
            .map(rule_facts)
            .collect()
    };
    let drop_inputs: Vec<&BaseChain> = chains
        .iter()
        .filter(|c| {
            c.hook == "input" && c.policy == "drop" && matches!(c.family.as_str(), "inet" | "ip")
        })
        .collect();
    let mut checks = Vec::new();
    let Some(input) = drop_inputs.first() else {
        checks.push(Check::fail(
            "firewall-default-deny",
            "host firewall drops what is not allowed",
            format!(
                "no input chain with policy drop; input chains: {}",
                chains
                    .iter()
                    .filter(|c| c.hook == "input")
                    .map(|c| format!("{} {} {} policy {}", c.family, c.table, c.name, c.policy))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
        return checks;
    };
    checks.push(Check::pass(
        "firewall-default-deny",
        "host firewall drops what is not allowed",
        format!(
            "table {} {}, chain {}: policy drop",
            input.family, input.table, input.name
        ),
    ));
    let rules = rules_of(input);
    let ssh: Vec<&RuleFacts> = rules
        .iter()
        .filter(|r| r.accept && r.tcp_dport.contains(&22))
        .collect();
    let describe = |r: &RuleFacts| -> String {
        let mut parts = Vec::new();
        if !r.iifname.is_empty() {
            parts.push(format!("on {}", r.iifname.join(",")));
        }
        if !r.saddr.is_empty() {
            parts.push(format!("from {}", r.saddr.join(",")));
        }
        if parts.is_empty() {
            "from anywhere".to_owned()
        } else {
            parts.join(" ")
        }
    };
    match &record.vpn {
        None => checks.push(Check::when(
            !ssh.is_empty(),
            "firewall-ssh",
            "host firewall lets SSH in",
            if ssh.is_empty() {
                "no rule accepts tcp/22: nobody can log in".to_owned()
            } else {
                format!(
                    "tcp/22 {}",
                    ssh.iter()
                        .map(|r| describe(r))
                        .collect::<Vec<_>>()
                        .join("; ")
                )
            },
        )),
        Some(vpn) => {
            let outside: Vec<&&RuleFacts> = ssh
                .iter()
                .filter(|r| r.iifname != [vpn.interface.clone()])
                .collect();
            let tunnel = rules
                .iter()
                .any(|r| r.accept && r.udp_dport.contains(&u64::from(vpn.port)));
            checks.push(Check::when(
                !ssh.is_empty() && outside.is_empty() && tunnel,
                "firewall-ssh",
                "host firewall lets SSH in through the tunnel only",
                format!(
                    "tcp/22 {}; udp/{} {}",
                    if ssh.is_empty() {
                        "not accepted at all".to_owned()
                    } else {
                        ssh.iter()
                            .map(|r| describe(r))
                            .collect::<Vec<_>>()
                            .join("; ")
                    },
                    vpn.port,
                    if tunnel { "accepted" } else { "not accepted" }
                ),
            ));
        }
    }
    if record.docker {
        let forward = chains
            .iter()
            .find(|c| c.hook == "forward" && c.table == input.table && c.family == input.family);
        checks.push(match forward {
            Some(f) if f.policy == "drop" => Check::pass(
                "firewall-forward",
                "host firewall filters traffic to containers",
                format!("chain {} policy drop", f.name),
            ),
            Some(f) => Check::fail(
                "firewall-forward",
                "host firewall filters traffic to containers",
                format!("chain {} policy {}", f.name, f.policy),
            ),
            None => Check::fail(
                "firewall-forward",
                "host firewall filters traffic to containers",
                format!("no forward chain in table {} {}", input.family, input.table),
            ),
        });
    }
    checks
}

/// `apt-config dump` as key -> value (the quotes removed).
pub fn parse_apt_config(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| {
            let l = l.trim().strip_suffix(';')?;
            let (k, v) = l.split_once(' ')?;
            Some((k.to_owned(), v.trim().trim_matches('"').to_owned()))
        })
        .collect()
}

/// Unattended upgrades on, with automatic reboots at the chosen time.
pub fn unattended_check(section: &Section, record: &DeploymentRecord) -> Check {
    const ID: &str = "unattended-upgrades";
    const TITLE: &str = "unattended-upgrades installs security updates and reboots";
    if !section.ok() {
        return Check::fail(
            ID,
            TITLE,
            format!("apt-config dump failed: {}", section.last_line()),
        );
    }
    let c = parse_apt_config(&section.text);
    let get = |k: &str| c.get(k).map_or("(unset)", String::as_str);
    let want = [
        ("APT::Periodic::Update-Package-Lists", "1"),
        ("APT::Periodic::Unattended-Upgrade", "1"),
        ("Unattended-Upgrade::Automatic-Reboot", "true"),
        (
            "Unattended-Upgrade::Automatic-Reboot-Time",
            record.reboot_time.as_str(),
        ),
    ];
    let wrong: Vec<String> = want
        .iter()
        .filter(|(k, v)| get(k) != *v)
        .map(|(k, v)| format!("{k} {} (want {v})", get(k)))
        .collect();
    Check::when(
        wrong.is_empty(),
        ID,
        TITLE,
        if wrong.is_empty() {
            format!("daily, automatic reboot at {}", record.reboot_time)
        } else {
            wrong.join(", ")
        },
    )
}

/// Packages `apt list --upgradable` offers from a security archive (`*-security`).
pub fn security_upgrades(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| {
            let (name, rest) = l.split_once('/')?;
            let suites = rest.split_whitespace().next()?;
            suites
                .split(',')
                .any(|s| s.ends_with("-security") || s.ends_with("/updates"))
                .then(|| name.to_owned())
        })
        .collect()
}

/// No pending upgrade from a security archive, after refreshing the lists.
pub fn security_check(update: &Section, upgradable: &Section) -> Check {
    const ID: &str = "security-updates";
    const TITLE: &str = "no security update is pending";
    if !update.ok() {
        return Check::fail(
            ID,
            TITLE,
            format!(
                "cannot refresh the package lists (apt-get update: {}), so pending updates are unknown",
                update.last_line()
            ),
        );
    }
    if !upgradable.ok() {
        return Check::fail(
            ID,
            TITLE,
            format!("apt list --upgradable failed: {}", upgradable.last_line()),
        );
    }
    let pending = security_upgrades(&upgradable.text);
    let all = upgradable
        .text
        .lines()
        .filter(|l| l.contains("[upgradable"))
        .count();
    Check::when(
        pending.is_empty(),
        ID,
        TITLE,
        if pending.is_empty() {
            format!("none ({all} other upgrades pending)")
        } else {
            format!("{} pending: {}", pending.len(), pending.join(", "))
        },
    )
}

/// The sysctl values the template sets, for this deployment.
pub fn expected_sysctl(record: &DeploymentRecord) -> Vec<(&'static str, &'static str)> {
    let mut v = vec![
        ("net.ipv4.conf.all.rp_filter", "1"),
        ("net.ipv4.conf.all.accept_redirects", "0"),
        ("net.ipv6.conf.all.accept_redirects", "0"),
        ("net.ipv4.conf.all.send_redirects", "0"),
        ("net.ipv4.conf.all.accept_source_route", "0"),
        ("net.ipv6.conf.all.accept_source_route", "0"),
        ("net.ipv4.tcp_syncookies", "1"),
        ("kernel.kptr_restrict", "2"),
        ("kernel.dmesg_restrict", "1"),
    ];
    v.push(("net.ipv4.ip_forward", if record.docker { "1" } else { "0" }));
    v
}

/// `sysctl KEY...` output against [`expected_sysctl`].
pub fn sysctl_check(section: &Section, record: &DeploymentRecord) -> Check {
    const ID: &str = "sysctl";
    const TITLE: &str = "kernel and network hardening (sysctl)";
    let live: BTreeMap<&str, &str> = section
        .text
        .lines()
        .filter_map(|l| l.split_once(" = "))
        .map(|(k, v)| (k.trim(), v.trim()))
        .collect();
    let wrong: Vec<String> = expected_sysctl(record)
        .into_iter()
        .filter(|(k, v)| live.get(k) != Some(v))
        .map(|(k, v)| {
            format!(
                "{k} = {} (want {v})",
                live.get(k).unwrap_or(&"(unreadable)")
            )
        })
        .collect();
    Check::when(
        wrong.is_empty(),
        ID,
        TITLE,
        if wrong.is_empty() {
            format!(
                "{} settings as rendered (ip_forward {})",
                expected_sysctl(record).len(),
                if record.docker {
                    "on for Docker"
                } else {
                    "off"
                }
            )
        } else {
            wrong.join(", ")
        },
    )
}

/// The units that must start at boot.
pub fn expected_units(record: &DeploymentRecord) -> Vec<String> {
    let mut units: Vec<String> = [
        "nftables.service",
        "fail2ban.service",
        "unattended-upgrades.service",
        "apt-daily.timer",
        "apt-daily-upgrade.timer",
    ]
    .map(str::to_owned)
    .to_vec();
    if record.docker {
        units.push("docker.service".to_owned());
    }
    if let Some(v) = &record.vpn {
        units.push(format!("wg-quick@{}.service", v.interface));
    }
    units
}

/// `systemctl is-enabled UNIT...` (one state per line, in order).
pub fn units_check(section: &Section, record: &DeploymentRecord) -> Check {
    const ID: &str = "services-enabled";
    const TITLE: &str = "firewall, fail2ban and updates start at boot";
    if section.absent {
        return Check::skip(ID, TITLE, "systemd is not running on this target");
    }
    let units = expected_units(record);
    let states: Vec<&str> = section.text.lines().map(str::trim).collect();
    let wrong: Vec<String> = units
        .iter()
        .enumerate()
        .filter(|(i, _)| states.get(*i).copied() != Some("enabled"))
        .map(|(i, u)| format!("{u} {}", states.get(i).copied().unwrap_or("(no answer)")))
        .collect();
    Check::when(
        wrong.is_empty(),
        ID,
        TITLE,
        if wrong.is_empty() {
            format!("enabled: {}", units.join(", "))
        } else {
            wrong.join(", ")
        },
    )
}

/// `docker info --format {{.ServerVersion}}`.
pub fn docker_check(section: &Section) -> Check {
    const ID: &str = "docker";
    const TITLE: &str = "Docker runs";
    if section.absent {
        return Check::fail(ID, TITLE, "docker is not installed");
    }
    Check::when(
        section.ok(),
        ID,
        TITLE,
        if section.ok() {
            format!("server version {}", section.last_line())
        } else {
            format!("docker info: {}", section.last_line())
        },
    )
}

/// `wg show IFACE`: the interface is up with its port and the client as peer.
pub fn wireguard_check(section: &Section, record: &DeploymentRecord) -> Option<Check> {
    const ID: &str = "wireguard";
    const TITLE: &str = "WireGuard tunnel is up";
    let vpn = record.vpn.as_ref()?;
    let text = &section.text;
    let ok = section.ok()
        && text.contains(&format!("interface: {}", vpn.interface))
        && text.contains(&format!("listening port: {}", vpn.port))
        && text.contains("peer: ");
    Some(Check::when(
        ok,
        ID,
        TITLE,
        if ok {
            format!(
                "{} listening on udp/{}, {} peer(s)",
                vpn.interface,
                vpn.port,
                text.matches("peer: ").count()
            )
        } else {
            format!("wg show {}: {}", vpn.interface, section.last_line())
        },
    ))
}

#[cfg(test)]
mod tests;
