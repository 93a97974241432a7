//! The rendered hardening user-data checked by the real tools that will read it on a server:
//! cloud-init, sshd (config test and a live daemon on 127.0.0.1), ssh-audit, fail2ban, nft, apt,
//! visudo (on the sudoers file cloud-init's own code writes), sysctl and WireGuard.
//!
//! Every combination the CLI can ask for is rendered and checked: see [`variants`] (default,
//! Debian 12 and Ubuntu 24.04, `--docker`, `--vpn wireguard`, `--sudo nopasswd`,
//! `--allow-tcp-forwarding`, an unknown image, and all options at once).
//!
//! Runs as root (it creates a user and network namespaces); needs the Debian packages cloud-init,
//! openssh-server, openssh-client, fail2ban, python3-systemd, nftables, apt, passwd, sudo,
//! wireguard-tools and wireguard-go, plus ssh-audit 3.9.0 from PyPI. Every process and user it
//! creates is removed by a Drop guard, even when a test fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::process::Command;
use std::time::Duration;

use bootstrap_cloudinit::{ImageProfile, Sudo, Template, WireGuard, render};
use serde_json::Value as Json;
use support::*;

const DROP_IN: &str = "/etc/ssh/sshd_config.d/00-bootstrap-hardening.conf";
const JAIL: &str = "/etc/fail2ban/jail.d/bootstrap-sshd.local";
const NFTABLES: &str = "/etc/nftables.conf";
const UNATTENDED: &str = "/etc/apt/apt.conf.d/52bootstrap-unattended-upgrades";
const AUTO_UPGRADES: &str = "/etc/apt/apt.conf.d/20auto-upgrades";

const SYSCTL: &str = "/etc/sysctl.d/90-bootstrap-hardening.conf";
const WG_CONF: &str = "/etc/wireguard/wg0.conf";

const MINUTE: Duration = Duration::from_secs(60);

/// Values that try to break out of a YAML scalar, a block scalar or a config line.
const HOSTILE: &[&str] = &[
    "evil\nPermitRootLogin yes",
    "x\n- name: root\n  sudo: ALL",
    "a\r\nb",
    "quote\"d",
    "it's",
    "key: value",
    "# comment",
    "{{ admin_user }}",
    "- item",
    "line\u{2028}sep\u{2029}para\u{85}nel",
    "del\u{7f}bell\u{7}",
    "back\\slash",
    "&anchor *alias !!python/object:os.system",
    "ünïcødé",
];

/// A WireGuard tunnel with freshly generated keys.
fn test_vpn() -> WireGuard {
    let server = bootstrap_keys::WgKeyPair::generate();
    let client = bootstrap_keys::WgKeyPair::generate();
    WireGuard::new(
        server.private_base64().to_string(),
        client.public().to_base64(),
    )
}

/// Every combination the CLI can render, each for a fresh admin, key and host key.
fn variants() -> Vec<(&'static str, Rendered)> {
    vec![
        ("ubuntu-24.04 (default)", Rendered::new()),
        (
            "debian-12",
            Rendered::with(|p| p.image = ImageProfile::for_image("debian-12")),
        ),
        ("--docker", Rendered::with(|p| p.docker = true)),
        (
            "--vpn wireguard",
            Rendered::with(|p| p.vpn = Some(test_vpn())),
        ),
        (
            "--sudo nopasswd",
            Rendered::with(|p| p.sudo = Sudo::NoPasswd),
        ),
        (
            "--allow-tcp-forwarding",
            Rendered::with(|p| p.allow_tcp_forwarding = true),
        ),
        (
            "unknown image (common subset)",
            Rendered::with(|p| p.image = ImageProfile::for_image("ami-0123456789abcdef0")),
        ),
        // DigitalOcean's slugs name the same releases: the same per-image algorithm sets.
        (
            "digitalocean ubuntu-24-04-x64 (default)",
            Rendered::with(|p| p.image = ImageProfile::for_image("ubuntu-24-04-x64")),
        ),
        (
            "digitalocean debian-12-x64 --docker",
            Rendered::with(|p| {
                p.image = ImageProfile::for_image("debian-12-x64");
                p.docker = true;
            }),
        ),
        (
            "digitalocean ubuntu-24-04-x64 --vpn wireguard --docker",
            Rendered::with(|p| {
                p.image = ImageProfile::for_image("ubuntu-24-04-x64");
                p.vpn = Some(test_vpn());
                p.docker = true;
            }),
        ),
        // Scaleway's Marketplace labels.
        (
            "ubuntu_noble (Scaleway)",
            Rendered::with(|p| p.image = ImageProfile::for_image("ubuntu_noble")),
        ),
        (
            "debian_bookworm (Scaleway) --docker",
            Rendered::with(|p| {
                p.image = ImageProfile::for_image("debian_bookworm");
                p.docker = true;
            }),
        ),
        (
            // debian_trixie's OpenSSH 10.0 rendering needs a newer sshd than this machine's to
            // start; `sshd_accepts_a_rendering_only_when_it_knows_the_algorithms` covers it.
            "debian_bookworm (Scaleway) --vpn wireguard",
            Rendered::with(|p| {
                p.image = ImageProfile::for_image("debian_bookworm");
                p.vpn = Some(test_vpn());
            }),
        ),
        (
            "ubuntu_noble (Scaleway) --docker --vpn wireguard",
            Rendered::with(|p| {
                p.image = ImageProfile::for_image("ubuntu_noble");
                p.docker = true;
                p.vpn = Some(test_vpn());
            }),
        ),
        (
            "debian-12 --docker --vpn wireguard --sudo nopasswd --allow-tcp-forwarding",
            Rendered::with(|p| {
                p.image = ImageProfile::for_image("debian-12");
                p.docker = true;
                p.vpn = Some(test_vpn());
                p.sudo = Sudo::NoPasswd;
                p.allow_tcp_forwarding = true;
            }),
        ),
    ]
}

/// The variants the local sshd can run: a rendering for an image with a newer OpenSSH (Debian
/// 13's 10.0 on a Debian 12 host) names key exchanges the local sshd does not know, so it is
/// checked by every offline test and by [`sshd_accepts_a_rendering_only_when_it_knows_the_algorithms`]
/// (refused for exactly those names), but not run here.
fn local_variants() -> Vec<(&'static str, Rendered)> {
    let local = local_openssh();
    variants()
        .into_iter()
        .filter(|(name, r)| {
            let runs = r
                .params
                .image
                .openssh()
                .is_none_or(|v| (v.major, v.minor) <= local);
            if !runs {
                eprintln!(
                    "{name}: its OpenSSH is newer than the local sshd {}.{}: checked offline only",
                    local.0, local.1
                );
            }
            runs
        })
        .collect()
}

/// The `sshd -T` lines a rendering must produce.
fn expected_sshd(rendered: &Rendered) -> Vec<String> {
    let a = rendered.params.image.algorithms();
    let mut lines: Vec<String> = [
        "permitrootlogin no",
        "passwordauthentication no",
        "kbdinteractiveauthentication no",
        "pubkeyauthentication yes",
        "authenticationmethods publickey",
        "permitemptypasswords no",
        "hostbasedauthentication no",
        "ignorerhosts yes",
        "maxauthtries 3",
        "maxsessions 10",
        "logingracetime 30",
        "x11forwarding no",
        "allowagentforwarding no",
        "allowstreamlocalforwarding no",
        "gatewayports no",
        "permittunnel no",
        "permituserenvironment no",
        "clientaliveinterval 300",
        "clientalivecountmax 2",
        "maxstartups 10:30:60",
        "compression no",
        "loglevel VERBOSE",
    ]
    .map(str::to_owned)
    .to_vec();
    lines.push(format!("allowusers {}", rendered.admin));
    lines.push(format!("kexalgorithms {}", a.kex.join(",")));
    lines.push(format!("ciphers {}", a.ciphers.join(",")));
    lines.push(format!("macs {}", a.macs.join(",")));
    lines.push(format!("hostkeyalgorithms {}", a.host_key.join(",")));
    lines.push(format!("pubkeyacceptedalgorithms {}", a.pubkey.join(",")));
    lines.push(format!("hostkey {}", rendered.host_key().display()));
    if let Some(size) = a.required_rsa_size {
        lines.push(format!("requiredrsasize {size}"));
    }
    lines.push(
        if rendered.params.allow_tcp_forwarding {
            "allowtcpforwarding local"
        } else {
            "allowtcpforwarding no"
        }
        .to_owned(),
    );
    if let Some(vpn) = &rendered.params.vpn {
        lines.push(format!("listenaddress {}:22", vpn.server_address));
    }
    lines
}

/// `sshd -T` for a connection by `user`, as a list of "keyword value" lines.
fn sshd_effective_config(rendered: &Rendered, user: &str) -> support::Ran {
    let config = rendered.sshd_config();
    run(
        Command::new(SSHD)
            .arg("-T")
            .arg("-f")
            .arg(&config)
            .arg("-C")
            .arg(format!("user={user},host=x,addr=127.0.0.1")),
        MINUTE,
    )
}

#[test]
fn cloud_init_schema_accepts_every_variant() {
    require_tool("cloud-init", "cloud-init");
    for (name, rendered) in variants() {
        let ran = run(
            Command::new("cloud-init")
                .args(["schema", "-c"])
                .arg(&rendered.user_data_path),
            MINUTE,
        );
        assert!(ran.status.success(), "{name}: {}", ran.all());
        assert!(!ran.all().contains("Invalid"), "{name}: {}", ran.all());
        assert!(
            ran.stdout.contains("Valid cloud-config"),
            "{name}: {}",
            ran.all()
        );
    }
}

#[test]
fn cloud_init_schema_rejects_a_broken_document() {
    // Guards the test above: the tool really validates what it is given.
    require_tool("cloud-init", "cloud-init");
    let rendered = Rendered::new();
    let broken = rendered.dir.path().join("broken.yaml");
    fs::write(
        &broken,
        "#cloud-config\nssh_pwauth: [1, 2]\nwrite_files: 5\n",
    )
    .unwrap();
    let ran = run(
        Command::new("cloud-init")
            .args(["schema", "-c"])
            .arg(&broken),
        MINUTE,
    );
    assert!(!ran.status.success(), "{}", ran.all());
}

#[test]
fn sshd_accepts_every_variant_and_applies_it() {
    fs::create_dir_all("/run/sshd").unwrap();
    for (name, rendered) in local_variants() {
        let drop_in = fs::read_to_string(rendered.file(DROP_IN)).unwrap();
        assert!(
            !drop_in.contains("Match"),
            "a Match block would capture sshd_config's own lines"
        );
        let config = rendered.sshd_config();
        let ran = run(Command::new(SSHD).arg("-t").arg("-f").arg(&config), MINUTE);
        assert!(
            ran.status.success(),
            "{name}: sshd -t: {}\n{drop_in}",
            ran.all()
        );

        let ran = sshd_effective_config(&rendered, &rendered.admin);
        ran.assert_success();
        let lines: Vec<&str> = ran.stdout.lines().collect();
        for expected in expected_sshd(&rendered) {
            assert!(
                lines.contains(&expected.as_str()),
                "{name}: sshd -T lacks {expected:?}:\n{}",
                ran.stdout
            );
        }
        assert_eq!(
            lines
                .iter()
                .filter(|l| l.starts_with("allowusers "))
                .count(),
            1,
            "{name}: only the admin may log in:\n{}",
            ran.stdout
        );
        // The only host key is the pinned one from the user-data.
        assert_eq!(
            lines.iter().filter(|l| l.starts_with("hostkey ")).count(),
            1,
            "{name}:\n{}",
            ran.stdout
        );
    }
}

/// The OpenSSH version of the local sshd, from `ssh -V` (same package version as sshd).
fn local_openssh() -> (u8, u8) {
    let ran = run(Command::new("ssh").arg("-V"), MINUTE);
    let text = ran.all();
    let v = text
        .split("OpenSSH_")
        .nth(1)
        .and_then(|r| r.split(['p', ',', ' ']).next())
        .unwrap_or_else(|| panic!("cannot read the OpenSSH version from {text:?}"));
    let (major, minor) = v.split_once('.').unwrap();
    (major.parse().unwrap(), minor.parse().unwrap())
}

#[test]
fn sshd_accepts_a_rendering_only_when_it_knows_the_algorithms() {
    // Why the algorithms are rendered per image: a rendering for an image with a newer OpenSSH
    // names algorithms an older sshd does not know, and sshd then refuses to start (a lockout
    // at first boot). The local sshd is one version; each image's rendering is accepted exactly
    // when that version knows every name in it.
    let local = local_openssh();
    for image in [
        "debian-11",
        "debian-12",
        "ubuntu-22.04",
        "ubuntu-24.04",
        "debian-13",
        "ubuntu-25.04",
        "ubuntu-24-04-x64",
        "debian-12-x64",
        "debian-13-x64",
        "ubuntu_noble",
        "debian_bookworm",
        "debian_trixie",
    ] {
        let rendered = Rendered::with(|p| p.image = ImageProfile::for_image(image));
        let version = rendered.params.image.openssh().unwrap();
        let config = rendered.sshd_config();
        let ran = run(Command::new(SSHD).arg("-t").arg("-f").arg(&config), MINUTE);
        let knows = (version.major, version.minor) <= local;
        eprintln!(
            "{image} (OpenSSH {version}) on local sshd {}.{}: {}",
            local.0,
            local.1,
            if ran.status.success() {
                "accepted"
            } else {
                "refused"
            }
        );
        if knows {
            assert!(ran.status.success(), "{image}: {}", ran.all());
        } else if rendered
            .params
            .image
            .algorithms()
            .kex
            .contains(&"mlkem768x25519-sha256")
        {
            assert!(!ran.status.success(), "{image} accepted by an older sshd?");
            assert!(
                ran.all().contains("KexAlgorithms"),
                "{image}: {}",
                ran.all()
            );
        }
    }
}

#[test]
fn drop_in_wins_over_cloud_inits_own_sshd_settings() {
    // cloud-init and images write 50-cloud-init.conf / 60-cloudimg-settings.conf; sshd keeps the
    // first value it reads, and 00- sorts first.
    let rendered = Rendered::new();
    let dropins = rendered.root.join("etc/ssh/sshd_config.d");
    fs::write(
        dropins.join("50-cloud-init.conf"),
        "PasswordAuthentication yes\nPermitRootLogin yes\nMaxAuthTries 10\nX11Forwarding yes\n",
    )
    .unwrap();
    let ran = sshd_effective_config(&rendered, &rendered.admin);
    ran.assert_success();
    for expected in [
        "passwordauthentication no",
        "permitrootlogin no",
        "maxauthtries 3",
        "x11forwarding no",
    ] {
        assert!(
            ran.stdout.lines().any(|l| l == expected),
            "{expected:?} lost:\n{}",
            ran.stdout
        );
    }
}

#[test]
fn live_sshd_admits_the_admin_by_key_and_nobody_else() {
    for (name, rendered) in local_variants() {
        eprintln!("live sshd: {name}");
        live_sshd_checks(&rendered);
    }
}

/// Key login works, root is refused, only publickey is offered: against a live sshd.
fn live_sshd_checks(rendered: &Rendered) {
    let _user = UserGuard::create(&rendered.admin);
    for user in [rendered.admin.as_str(), "root"] {
        let keys = rendered.dir.path().join(format!("{user}.keys"));
        fs::write(&keys, &rendered.public_key).unwrap();
        fs::set_permissions(&keys, fs::Permissions::from_mode(0o644)).unwrap();
    }
    let sshd = LiveSshd::start(rendered);

    // The admin logs in with the key and runs a command.
    let admin_at = format!("{}@127.0.0.1", rendered.admin);
    let ran = run(
        ssh(&rendered.key, sshd.port, &admin_at).args(["id", "-un"]),
        MINUTE,
    );
    ran.assert_success();
    assert_eq!(ran.stdout.trim(), rendered.admin, "{}", ran.all());

    // root is refused even with an authorized key.
    let ran = run(
        ssh(&rendered.key, sshd.port, "root@127.0.0.1").arg("true"),
        MINUTE,
    );
    assert!(!ran.status.success(), "root logged in:\n{}", ran.all());
    assert!(
        ran.stderr.contains("Permission denied (publickey)"),
        "{}",
        ran.all()
    );

    // Only publickey is offered: neither password nor keyboard-interactive.
    let ran = run(
        ssh(&rendered.key, sshd.port, &admin_at)
            .args(["-v", "-o", "PreferredAuthentications=none"])
            .arg("true"),
        MINUTE,
    );
    assert!(
        !ran.status.success(),
        "`none` authentication succeeded:\n{}",
        ran.all()
    );
    let offered: Vec<&str> = ran
        .stderr
        .lines()
        .filter_map(|l| {
            l.split_once("Authentications that can continue: ")
                .map(|(_, m)| m.trim())
        })
        .collect();
    assert!(
        !offered.is_empty(),
        "no method list in ssh -v output:\n{}",
        ran.stderr
    );
    assert!(
        offered.iter().all(|m| *m == "publickey"),
        "offered: {offered:?}"
    );

    // And asking for them explicitly gets nowhere.
    let ran = run(
        ssh(&rendered.key, sshd.port, &admin_at)
            .args([
                "-o",
                "PreferredAuthentications=password,keyboard-interactive",
            ])
            .arg("true"),
        MINUTE,
    );
    assert!(!ran.status.success(), "{}", ran.all());
    assert!(
        ran.stderr.contains("Permission denied (publickey)"),
        "{}",
        ran.all()
    );

    let log = sshd.log();
    assert!(
        log.contains(&format!("Accepted publickey for {}", rendered.admin)),
        "sshd log:\n{log}"
    );
    assert!(
        log.contains("User root from 127.0.0.1 not allowed because not listed in AllowUsers")
            || log.contains("ROOT LOGIN REFUSED"),
        "sshd log:\n{log}"
    );
}

#[test]
fn ssh_audit_finds_no_failures_and_only_post_quantum_warnings_per_image() {
    let audit = ssh_audit();
    let help = run(Command::new(&audit).arg("-h"), MINUTE);
    if let Some(version) = help.all().lines().find(|l| l.contains("ssh-audit v")) {
        eprintln!(
            "using {} ({})",
            audit.display(),
            version.trim_start_matches("# ")
        );
    }
    let (major, minor) = local_openssh();
    for (variant, rendered) in local_variants() {
        let image = rendered.params.image.image().to_owned();
        let image = format!("{image} [{variant}]");
        let sshd = LiveSshd::start(&rendered);
        let ran = run(
            Command::new(&audit)
                .args(["--no-colors", "--timeout=10", "-p"])
                .arg(sshd.port.to_string())
                .arg("127.0.0.1"),
            Duration::from_secs(180),
        );
        let out = ran.all();
        assert!(
            out.contains("(gen) banner: SSH-2.0-OpenSSH"),
            "ssh-audit did not reach sshd (pid {}):\n{out}",
            sshd.pid()
        );
        let pq = rendered
            .params
            .image
            .algorithms()
            .kex
            .contains(&"sntrup761x25519-sha512@openssh.com");
        let offered = out
            .lines()
            .any(|l| l.starts_with("(kex) sntrup761x25519-sha512@openssh.com"));
        assert_eq!(offered, pq, "{image}:\n{out}");
        let fails: Vec<&str> = out.lines().filter(|l| l.contains("[fail]")).collect();
        assert!(
            fails.is_empty(),
            "{image}: ssh-audit failures:\n{}\n\nfull report:\n{out}",
            fails.join("\n")
        );
        let warns: Vec<&str> = out.lines().filter(|l| l.contains("[warn]")).collect();
        eprintln!(
            "ssh-audit 3.9.0, rendering for {image}, local sshd {major}.{minor}: 0 fail, {} warn",
            warns.len()
        );
        for warn in &warns {
            eprintln!("  {}", warn.trim());
        }
        assert!(
            warns.iter().all(|w| w.contains("post-quantum")),
            "{image}: warnings other than post-quantum ones:\n{}",
            warns.join("\n")
        );
    }
}

#[test]
fn fail2ban_accepts_the_sshd_jail() {
    require_tool("fail2ban-client", "fail2ban");
    for (name, rendered) in variants() {
        eprintln!("fail2ban: {name}");
        fail2ban_checks(&rendered);
    }
}

/// `fail2ban-client -t` and `-d` on the distribution's config plus the rendered jail.
fn fail2ban_checks(rendered: &Rendered) {
    let conf = rendered.dir.path().join("fail2ban");
    copy_dir(std::path::Path::new("/etc/fail2ban"), &conf);
    fs::copy(
        rendered.file(JAIL),
        conf.join("jail.d/bootstrap-sshd.local"),
    )
    .unwrap();

    let ran = run(
        Command::new("fail2ban-client")
            .arg("-c")
            .arg(&conf)
            .arg("-t"),
        MINUTE,
    );
    ran.assert_success();
    assert!(
        ran.all().contains("OK: configuration test is successful"),
        "{}",
        ran.all()
    );

    // The configuration fail2ban would load: our settings reached the sshd jail.
    let ran = run(
        Command::new("fail2ban-client")
            .arg("-c")
            .arg(&conf)
            .arg("-d"),
        MINUTE,
    );
    ran.assert_success();
    for expected in [
        "['add', 'sshd', 'systemd']",
        "['set', 'sshd', 'addignoreip', '127.0.0.1/8', '::1', '198.51.100.7/32', '2001:db8::/32']",
        "['set', 'sshd', 'maxretry', 3]",
        "['set', 'sshd', 'bantime', '1h']",
        "['set', 'sshd', 'findtime', '10m']",
        "['set', 'sshd', 'addaction', 'nftables-multiport']",
        "['start', 'sshd']",
    ] {
        assert!(
            ran.stdout.contains(expected),
            "fail2ban -d lacks {expected}:\n{}",
            ran.stdout
        );
    }
}

#[test]
fn nft_accepts_the_host_firewall() {
    require_tool("nft", "nftables");
    let mut variants = variants();
    variants.extend([
        (
            "--vpn wireguard, ssh_from empty",
            Rendered::with(|p| {
                p.vpn = Some(test_vpn());
                p.ssh_from.clear();
            }),
        ),
        ("ssh_from empty", Rendered::with(|p| p.ssh_from.clear())),
        (
            "ssh_from overlapping, v6 only",
            Rendered::with(|p| {
                p.ssh_from = vec![
                    "2001:db8::/32".parse().unwrap(),
                    "2001:db8:1::/48".parse().unwrap(),
                    "2001:db8::1/128".parse().unwrap(),
                ]
            }),
        ),
    ]);
    for (name, rendered) in &variants {
        let ran = run(
            Command::new("nft")
                .arg("-c")
                .arg("-f")
                .arg(rendered.file(NFTABLES)),
            MINUTE,
        );
        assert!(
            ran.status.success(),
            "{name}: nft -c failed ({}):\n{}\n--- file\n{}",
            ran.status,
            ran.all(),
            fs::read_to_string(rendered.file(NFTABLES)).unwrap()
        );
    }
    // nft -c really parses: a broken rule is rejected.
    let broken = variants[0].1.dir.path().join("broken.nft");
    fs::write(
        &broken,
        "table inet filter { chain input { tcp dport ssh acept } }\n",
    )
    .unwrap();
    let ran = run(Command::new("nft").arg("-c").arg("-f").arg(&broken), MINUTE);
    assert!(!ran.status.success(), "{}", ran.all());
}

#[test]
fn nftables_reloads_in_a_namespace_and_leaves_other_tables_alone() {
    // A real kernel load, twice (nftables.service reload), in a network namespace of its own:
    // the file replaces only `inet bootstrap`; Docker's and fail2ban's tables stay.
    require_tool("nft", "nftables");
    require_tool("unshare", "util-linux");
    for (name, rendered) in variants() {
        let script = format!(
            "set -e\n\
             nft add table ip filter\n\
             nft add chain ip filter DOCKER-USER\n\
             nft add table inet f2b-table\n\
             nft -f {file}\n\
             nft -f {file}\n\
             nft list tables\n\
             nft list chain inet bootstrap input\n",
            file = rendered.file(NFTABLES).display()
        );
        let ran = run(
            Command::new("unshare").args(["--net", "sh", "-c", &script]),
            MINUTE,
        );
        assert!(ran.status.success(), "{name}: {}", ran.all());
        let tables: Vec<&str> = ran
            .stdout
            .lines()
            .filter(|l| l.starts_with("table ") && !l.ends_with('{'))
            .collect();
        assert_eq!(
            tables,
            [
                "table ip filter",
                "table inet f2b-table",
                "table inet bootstrap"
            ],
            "{name}:\n{}",
            ran.stdout
        );
        assert!(
            ran.stdout
                .contains("type filter hook input priority filter; policy drop;"),
            "{name}:\n{}",
            ran.stdout
        );
    }
}

#[test]
fn apt_reads_unattended_upgrades_with_automatic_reboot() {
    require_tool("apt-config", "apt");
    for (name, rendered) in variants() {
        eprintln!("apt-config: {name}");
        apt_checks(&rendered);
    }
}

/// `apt-config dump` over a distribution-like default plus the rendered files.
fn apt_checks(rendered: &Rendered) {
    // Only our files (and a distribution-like default that ours must override), not the host's.
    let parts = rendered.dir.path().join("apt.conf.d");
    fs::create_dir_all(&parts).unwrap();
    fs::write(
        parts.join("50unattended-upgrades"),
        "Unattended-Upgrade::Automatic-Reboot \"false\";\nUnattended-Upgrade::Automatic-Reboot-Time \"now\";\n",
    )
    .unwrap();
    for file in [UNATTENDED, AUTO_UPGRADES] {
        let name = file.rsplit('/').next().unwrap();
        fs::copy(rendered.file(file), parts.join(name)).unwrap();
    }
    let apt_conf = rendered.dir.path().join("apt.conf");
    fs::write(
        &apt_conf,
        format!(
            "Dir::Etc::Parts \"{}\";\nDir::Etc::Main \"/dev/null\";\n",
            parts.display()
        ),
    )
    .unwrap();

    let ran = run(
        Command::new("apt-config")
            .arg("dump")
            .env("APT_CONFIG", &apt_conf),
        MINUTE,
    );
    ran.assert_success();
    assert!(!ran.stderr.contains("E:"), "{}", ran.all());
    let time = format!(
        "Unattended-Upgrade::Automatic-Reboot-Time \"{}\";",
        rendered.params.reboot_time
    );
    for expected in [
        "Unattended-Upgrade::Automatic-Reboot \"true\";",
        time.as_str(),
        "Unattended-Upgrade::Remove-Unused-Dependencies \"true\";",
        "APT::Periodic::Update-Package-Lists \"1\";",
        "APT::Periodic::Unattended-Upgrade \"1\";",
    ] {
        assert!(
            ran.stdout.lines().any(|l| l == expected),
            "apt-config lacks {expected}:\n{}",
            ran.stdout
        );
    }

    // apt really parses these files: a syntax error fails.
    fs::write(parts.join("99broken"), "Foo \"bar\n").unwrap();
    let ran = run(
        Command::new("apt-config")
            .arg("dump")
            .env("APT_CONFIG", &apt_conf),
        MINUTE,
    );
    assert!(!ran.status.success(), "{}", ran.all());
}

#[test]
fn cloud_init_reads_hostile_values_as_values() {
    // cloud-init parses with PyYAML (YAML 1.1), which differs from serde-saphyr: U+0085, U+2028
    // and U+2029 are line breaks there. Both must see the same document.
    require_tool("cloud-init", "cloud-init");
    require_tool("/usr/bin/python3", "python3-yaml");
    let base = Rendered::new();
    let mut files = Vec::new();
    let mut expected = Vec::new();
    for (i, hostile) in HOSTILE.iter().enumerate() {
        let mut params = base.params.clone();
        params.hostname = (*hostile).to_owned();
        params.admin_user = format!("u{hostile}");
        let user_data = render(&Template::embedded(), &params).unwrap();
        let path = base.dir.path().join(format!("hostile-{i}.yaml"));
        fs::write(&path, &user_data).unwrap();
        let doc: Json = serde_saphyr::from_str(&user_data).unwrap();
        assert_eq!(doc["hostname"], *hostile);
        files.push(path);
        expected.push(doc);
    }
    let ran = run(
        Command::new("/usr/bin/python3")
            .arg("-c")
            .arg("import json, sys, yaml\nprint(json.dumps([yaml.safe_load(open(p, encoding='utf-8')) for p in sys.argv[1:]]))")
            .args(&files),
        MINUTE,
    );
    ran.assert_success();
    let pyyaml: Vec<Json> = serde_json::from_str(&ran.stdout).unwrap();
    assert_eq!(pyyaml.len(), expected.len());
    for ((hostile, py), ours) in HOSTILE.iter().zip(&pyyaml).zip(&expected) {
        assert_eq!(py, ours, "PyYAML reads {hostile:?} differently");
        assert_eq!(py["users"].as_array().unwrap().len(), 1);
        assert_eq!(py["users"][0]["name"], format!("u{hostile}"));
        assert_eq!(
            py["write_files"].as_array().unwrap().len(),
            base.doc["write_files"].as_array().unwrap().len()
        );
    }
    for path in &files {
        let ran = run(
            Command::new("cloud-init").args(["schema", "-c"]).arg(path),
            MINUTE,
        );
        ran.assert_success();
        assert!(!ran.all().contains("Invalid"), "{}", ran.all());
    }
}

#[test]
fn sshd_keeps_hostile_user_names_inside_allowusers() {
    // In the drop-in, the user name is one double-quoted sshd argument; whatever it holds, sshd
    // either rejects the file or applies every hardening line.
    let mut applied = Vec::new();
    for hostile in HOSTILE {
        let rendered = Rendered::with(|p| p.admin_user = format!("u{hostile}"));
        let ran = sshd_effective_config(&rendered, "root");
        if !ran.status.success() {
            eprintln!(
                "sshd rejects the drop-in for {hostile:?}: {}",
                ran.stderr.trim()
            );
            continue;
        }
        applied.push(*hostile);
        for expected in [
            "permitrootlogin no",
            "passwordauthentication no",
            "authenticationmethods publickey",
            "maxauthtries 3",
        ] {
            assert!(
                ran.stdout.lines().any(|l| l == expected),
                "{hostile:?} changed {expected:?}:\n{}",
                ran.stdout
            );
        }
        assert_eq!(
            ran.stdout
                .lines()
                .filter(|l| l.starts_with("allowusers "))
                .count(),
            1,
            "{hostile:?}:\n{}",
            ran.stdout
        );
    }
    // Not vacuous: sshd reads most of them as an ordinary (odd) user name.
    for plain in [
        "quote\"d",
        "it's",
        "key: value",
        "# comment",
        "- item",
        "evil\nPermitRootLogin yes",
    ] {
        assert!(
            applied.contains(&plain),
            "sshd rejected {plain:?}; applied: {applied:?}"
        );
    }
}

/// The sudoers file cloud-init itself writes for the admin (its `Distro.write_sudo_rules`, with
/// the step that would edit the machine's /etc/sudoers switched off).
fn cloud_init_sudoers(rendered: &Rendered) -> std::path::PathBuf {
    require_tool("/usr/bin/python3", "cloud-init");
    let user = rendered.doc["users"][0]["name"].as_str().unwrap();
    let rule = rendered.doc["users"][0]["sudo"].as_str().unwrap();
    let path = rendered.dir.path().join("90-cloud-init-users");
    let ran = run(
        Command::new("/usr/bin/python3")
            .arg("-c")
            .arg(
                "import sys\n\
                 from cloudinit.distros import debian\n\
                 d = debian.Distro('debian', {}, None)\n\
                 d.ensure_sudo_dir = lambda *a, **k: None\n\
                 d.write_sudo_rules(sys.argv[1], sys.argv[2], sudo_file=sys.argv[3])\n",
            )
            .args([user, rule])
            .arg(&path),
        MINUTE,
    );
    ran.assert_success();
    path
}

#[test]
fn visudo_accepts_the_sudo_rule_cloud_init_writes() {
    require_tool("visudo", "sudo");
    for (name, rendered) in variants() {
        let sudoers = cloud_init_sudoers(&rendered);
        let text = fs::read_to_string(&sudoers).unwrap();
        let ran = run(
            Command::new("visudo").arg("-c").arg("-f").arg(&sudoers),
            MINUTE,
        );
        assert!(ran.status.success(), "{name}: {}\n{text}", ran.all());
        assert!(ran.stdout.contains("parsed OK"), "{name}: {}", ran.all());
        let rule_line = text
            .lines()
            .find(|l| l.starts_with(&rendered.admin))
            .unwrap_or_else(|| panic!("{name}: no rule for the admin:\n{text}"));
        match &rendered.params.sudo {
            Sudo::Password { hash } => {
                assert_eq!(rule_line, format!("{} ALL=(ALL:ALL) ALL", rendered.admin));
                assert!(!text.contains("NOPASSWD"), "{name}");
                assert_eq!(rendered.doc["users"][0]["hashed_passwd"], hash.as_str());
                assert_eq!(rendered.doc["users"][0]["lock_passwd"], false);
            }
            Sudo::NoPasswd => {
                assert_eq!(
                    rule_line,
                    format!("{} ALL=(ALL) NOPASSWD:ALL", rendered.admin)
                );
                assert_eq!(rendered.doc["users"][0]["lock_passwd"], true);
            }
        }
    }
    // visudo really parses: a broken rule fails.
    let rendered = Rendered::new();
    let broken = rendered.dir.path().join("broken");
    fs::write(&broken, "admin ALL=(ALL ALL\n").unwrap();
    let ran = run(
        Command::new("visudo").arg("-c").arg("-f").arg(&broken),
        MINUTE,
    );
    assert!(!ran.status.success(), "{}", ran.all());
}

#[test]
fn sysctl_settings_exist_and_the_kernel_takes_the_network_ones() {
    // net.* settings are per network namespace: they are applied for real in a fresh one.
    // kernel.* settings are global to the machine, so they are only checked to exist here.
    require_tool("sysctl", "procps");
    for (name, rendered) in variants() {
        let text = fs::read_to_string(rendered.file(SYSCTL)).unwrap();
        let settings: Vec<(&str, &str)> = text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .map(|l| {
                l.split_once(" = ")
                    .unwrap_or_else(|| panic!("{name}: {l:?}"))
            })
            .collect();
        let forward = if rendered.params.docker { "1" } else { "0" };
        assert!(
            settings.contains(&("net.ipv4.ip_forward", forward)),
            "{name}"
        );
        for (key, _) in &settings {
            let proc = std::path::Path::new("/proc/sys").join(key.replace('.', "/"));
            assert!(
                proc.exists(),
                "{name}: {key} is not a sysctl of this kernel"
            );
        }
        let net = rendered.dir.path().join("net.conf");
        fs::write(
            &net,
            settings
                .iter()
                .filter(|(k, _)| k.starts_with("net."))
                .map(|(k, v)| format!("{k} = {v}\n"))
                .collect::<String>(),
        )
        .unwrap();
        let ran = run(
            Command::new("unshare")
                .args(["--net", "sh", "-c"])
                .arg(format!(
                    "sysctl -q -p {} && sysctl net.ipv4.ip_forward net.ipv4.conf.all.rp_filter net.ipv4.conf.all.accept_redirects",
                    net.display()
                )),
            MINUTE,
        );
        assert!(ran.status.success(), "{name}: {}", ran.all());
        assert!(
            ran.stdout
                .contains(&format!("net.ipv4.ip_forward = {forward}"))
                && ran.stdout.contains("net.ipv4.conf.all.rp_filter = 1")
                && ran
                    .stdout
                    .contains("net.ipv4.conf.all.accept_redirects = 0"),
            "{name}: {}",
            ran.stdout
        );
    }
}

#[test]
fn wireguard_takes_the_server_config() {
    // The rendered wg0.conf through wg-quick's own parser (`strip`), then loaded into a real
    // WireGuard interface (wireguard-go, in a network namespace of its own).
    require_tool("wg-quick", "wireguard-tools");
    require_tool("wireguard-go", "wireguard-go");
    let mut checked = 0;
    for (name, rendered) in variants() {
        let Some(vpn) = &rendered.params.vpn else {
            continue;
        };
        let conf = rendered.file(WG_CONF);
        assert_eq!(
            fs::metadata(&conf).unwrap().permissions().mode() & 0o777,
            0o600,
            "{name}"
        );
        let stripped = rendered.dir.path().join("wg0.stripped");
        let ran = run(Command::new("wg-quick").arg("strip").arg(&conf), MINUTE);
        assert!(ran.status.success(), "{name}: {}", ran.all());
        fs::write(&stripped, &ran.stdout).unwrap();
        let script = format!(
            "set -e\n\
             WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD=1 wireguard-go wg0 >/dev/null 2>&1\n\
             wg setconf wg0 {}\n\
             wg show wg0\n\
             ip link del wg0\n",
            stripped.display()
        );
        let ran = run(
            Command::new("unshare").args(["--net", "sh", "-c", &script]),
            MINUTE,
        );
        assert!(ran.status.success(), "{name}: {}", ran.all());
        assert!(
            ran.stdout
                .contains(&format!("listening port: {}", vpn.port)),
            "{name}: {}",
            ran.stdout
        );
        assert!(
            ran.stdout
                .contains(&format!("peer: {}", vpn.client_public_key)),
            "{name}: {}",
            ran.stdout
        );
        assert!(
            ran.stdout
                .contains(&format!("allowed ips: {}/32", vpn.client_address)),
            "{name}: {}",
            ran.stdout
        );
        checked += 1;
    }
    assert!(checked >= 2, "no --vpn variant was checked");
}
