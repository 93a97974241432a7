#![allow(clippy::unwrap_used, clippy::expect_used)]

//! The parsers against outputs captured from the real tools: `testdata/nft-*.json` is
//! `nft -j list ruleset` (nftables 1.0.6) after loading the rendered default, `--docker` and
//! `--vpn wireguard` rulesets into a network namespace; `testdata/sshd-T-default.txt` is
//! `sshd -T` (OpenSSH 9.2p1) of Debian's sshd_config with the rendered drop-in.

use super::*;
use crate::state::VpnRecord;

fn record() -> DeploymentRecord {
    DeploymentRecord {
        admin_user: "admin".into(),
        identity_file: "/home/me/.ssh/id".into(),
        image: "ubuntu-24.04".into(),
        sudo: SudoMode::Password,
        docker: false,
        vpn: None,
        allow_tcp_forwarding: false,
        reboot_time: "02:00".into(),
        ipv4: None,
        ipv6: None,
        connection: None,
        intent: None,
    }
}

fn vpn_record() -> DeploymentRecord {
    DeploymentRecord {
        vpn: Some(VpnRecord {
            interface: "wg0".into(),
            port: 51820,
            server_address: "10.213.7.1".parse().unwrap(),
            client_address: "10.213.7.2".parse().unwrap(),
        }),
        ..record()
    }
}

fn ok(text: &str) -> Section {
    Section {
        text: text.to_owned(),
        rc: Some(0),
        absent: false,
    }
}

fn status_of<'a>(checks: &'a [Check], id: &str) -> &'a Check {
    checks
        .iter()
        .find(|c| c.id == id)
        .unwrap_or_else(|| panic!("no check {id} in {checks:?}"))
}

const SSHD_T: &str = include_str!("testdata/sshd-T-default.txt");

#[test]
fn sections_split_on_markers() {
    let out = format!(
        "noise\n{MARKER} begin a\nline 1\nline 2\n{MARKER} rc 0\n{MARKER} begin b\n{MARKER} absent\n{MARKER} begin c\npartial\n"
    );
    let s = sections(&out);
    assert_eq!(s["a"].text, "line 1\nline 2\n");
    assert_eq!(s["a"].rc, Some(0));
    assert!(s["b"].absent);
    assert_eq!(s["c"].rc, None);
    assert_eq!(s["c"].text, "partial\n");
}

#[test]
fn rendered_sshd_passes_every_sshd_check() {
    let checks = sshd_checks(&ok(SSHD_T), &record());
    for c in &checks {
        assert_eq!(c.status, Status::Pass, "{c:?}");
    }
    assert!(checks.len() >= 10);
}

#[test]
fn each_weakening_of_sshd_fails_its_check() {
    for (from, to, id) in [
        (
            "permitrootlogin no",
            "permitrootlogin yes",
            "sshd-permit-root-login",
        ),
        (
            "passwordauthentication no",
            "passwordauthentication yes",
            "sshd-password-authentication",
        ),
        (
            "kbdinteractiveauthentication no",
            "kbdinteractiveauthentication yes",
            "sshd-kbd-interactive",
        ),
        (
            "authenticationmethods publickey",
            "authenticationmethods any",
            "sshd-publickey-only",
        ),
        (
            "allowusers admin",
            "allowusers admin\nallowusers root",
            "sshd-allow-users",
        ),
        ("maxauthtries 3", "maxauthtries 6", "sshd-limits"),
        (
            "allowtcpforwarding no",
            "allowtcpforwarding yes",
            "sshd-forwarding",
        ),
        ("x11forwarding no", "x11forwarding yes", "sshd-forwarding"),
        (
            "macs hmac-sha2-512-etm@openssh.com",
            "macs hmac-sha1,hmac-sha2-512-etm@openssh.com",
            "sshd-algorithms",
        ),
        ("loglevel VERBOSE", "loglevel INFO", "sshd-log-level"),
    ] {
        assert!(SSHD_T.contains(from), "fixture lacks {from}");
        let weak = SSHD_T.replacen(from, to, 1);
        let checks = sshd_checks(&ok(&weak), &record());
        let c = status_of(&checks, id);
        assert_eq!(c.status, Status::Fail, "{to}: {c:?}");
        let others = checks
            .iter()
            .filter(|c| c.id != id && c.status == Status::Fail)
            .count();
        assert_eq!(others, 0, "{to} failed other checks too: {checks:?}");
    }
    // AllowUsers missing entirely.
    let weak: String = SSHD_T
        .lines()
        .filter(|l| !l.starts_with("allowusers"))
        .map(|l| format!("{l}\n"))
        .collect();
    let checks = sshd_checks(&ok(&weak), &record());
    assert_eq!(status_of(&checks, "sshd-allow-users").status, Status::Fail);
    // With --allow-tcp-forwarding, `local` is what is expected.
    let mut r = record();
    r.allow_tcp_forwarding = true;
    let checks = sshd_checks(&ok(SSHD_T), &r);
    assert_eq!(status_of(&checks, "sshd-forwarding").status, Status::Fail);
    let local = SSHD_T.replacen("allowtcpforwarding no", "allowtcpforwarding local", 1);
    let checks = sshd_checks(&ok(&local), &r);
    assert_eq!(status_of(&checks, "sshd-forwarding").status, Status::Pass);
    // A failed sshd -T is one failure, not a pass.
    let failed = Section {
        text: "/etc/ssh/sshd_config line 3: Bad configuration option: Nope\n".into(),
        rc: Some(255),
        absent: false,
    };
    let checks = sshd_checks(&failed, &record());
    assert_eq!(checks.len(), 1);
    assert_eq!(checks[0].status, Status::Fail);
    assert!(checks[0].detail.contains("Bad configuration option"));
}

#[test]
fn vpn_deployments_need_sshd_on_the_tunnel_address() {
    let checks = sshd_checks(&ok(SSHD_T), &vpn_record());
    assert_eq!(status_of(&checks, "sshd-listen-vpn").status, Status::Fail);
    let on_tunnel = SSHD_T
        .replace("listenaddress [::]:22\n", "")
        .replace("listenaddress 0.0.0.0:22", "listenaddress 10.213.7.1:22");
    let checks = sshd_checks(&ok(&on_tunnel), &vpn_record());
    assert_eq!(status_of(&checks, "sshd-listen-vpn").status, Status::Pass);
}

#[test]
fn nftables_rulesets_as_rendered_pass() {
    let default = nftables_checks(&ok(include_str!("testdata/nft-default.json")), &record());
    assert!(
        default.iter().all(|c| c.status == Status::Pass),
        "{default:?}"
    );
    assert!(
        status_of(&default, "firewall-ssh")
            .detail
            .contains("@ssh_allow_v4")
    );

    let mut docker = record();
    docker.docker = true;
    let checks = nftables_checks(&ok(include_str!("testdata/nft-docker.json")), &docker);
    assert!(
        checks.iter().all(|c| c.status == Status::Pass),
        "{checks:?}"
    );
    assert_eq!(status_of(&checks, "firewall-forward").status, Status::Pass);

    let checks = nftables_checks(&ok(include_str!("testdata/nft-vpn.json")), &vpn_record());
    assert!(
        checks.iter().all(|c| c.status == Status::Pass),
        "{checks:?}"
    );
    assert!(status_of(&checks, "firewall-ssh").detail.contains("on wg0"));
}

#[test]
fn nftables_failures_are_named() {
    // An empty ruleset: nothing drops.
    let empty = r#"{"nftables": [{"metainfo": {"version": "1.0.6", "json_schema_version": 1}}]}"#;
    let checks = nftables_checks(&ok(empty), &record());
    assert_eq!(
        status_of(&checks, "firewall-default-deny").status,
        Status::Fail
    );
    // Policy accept.
    let accept = include_str!("testdata/nft-default.json").replacen(
        r#""hook": "input", "prio": 0, "policy": "drop""#,
        r#""hook": "input", "prio": 0, "policy": "accept""#,
        1,
    );
    let checks = nftables_checks(&ok(&accept), &record());
    assert_eq!(
        status_of(&checks, "firewall-default-deny").status,
        Status::Fail
    );
    // The default ruleset is not enough for a VPN deployment (SSH open outside the tunnel).
    let checks = nftables_checks(
        &ok(include_str!("testdata/nft-default.json")),
        &vpn_record(),
    );
    assert_eq!(status_of(&checks, "firewall-ssh").status, Status::Fail);
    // Not JSON, or nft failing.
    let checks = nftables_checks(&ok("table inet x {}"), &record());
    assert_eq!(checks[0].status, Status::Fail);
}

#[test]
fn apt_config_and_security_updates() {
    let dump = "APT \"\";\nAPT::Periodic \"\";\nAPT::Periodic::Update-Package-Lists \"1\";\nAPT::Periodic::Unattended-Upgrade \"1\";\nUnattended-Upgrade::Automatic-Reboot \"true\";\nUnattended-Upgrade::Automatic-Reboot-Time \"02:00\";\n";
    assert_eq!(unattended_check(&ok(dump), &record()).status, Status::Pass);
    let off = dump.replace("Automatic-Reboot \"true\"", "Automatic-Reboot \"false\"");
    let c = unattended_check(&ok(&off), &record());
    assert_eq!(c.status, Status::Fail);
    assert!(c.detail.contains("Automatic-Reboot false"), "{}", c.detail);

    let upgradable = "Listing...\n\
        openssl/bookworm-security 3.0.15-1~deb12u1 amd64 [upgradable from: 3.0.14-1~deb12u2]\n\
        tzdata/bookworm-updates 2025a-0+deb12u1 all [upgradable from: 2024b-0+deb12u1]\n\
        libssl3t64/noble-updates,noble-security 3.0.13-0ubuntu3.5 amd64 [upgradable from: 3.0.13-0ubuntu3.4]\n";
    assert_eq!(security_upgrades(upgradable), ["openssl", "libssl3t64"]);
    let c = security_check(&ok(""), &ok(upgradable));
    assert_eq!(c.status, Status::Fail);
    assert!(c.detail.contains("openssl") && !c.detail.contains("tzdata"));
    let c = security_check(&ok(""), &ok("Listing...\n"));
    assert_eq!(c.status, Status::Pass);
    // Stale lists are not a pass.
    let failed = Section {
        text: "E: Failed to fetch http://deb.debian.org/...\n".into(),
        rc: Some(100),
        absent: false,
    };
    assert_eq!(
        security_check(&failed, &ok("Listing...\n")).status,
        Status::Fail
    );
}

#[test]
fn fail2ban_status_is_parsed() {
    let status = "Status for the jail: sshd\n|- Filter\n|  |- Currently failed:\t0\n|  |- Total failed:\t4\n|  `- Journal matches:\t_SYSTEMD_UNIT=sshd.service + _COMM=sshd\n`- Actions\n   |- Currently banned:\t1\n   |- Total banned:\t1\n   `- Banned IP list:\t192.0.2.9\n";
    let c = fail2ban_check(&ok(status));
    assert_eq!(c.status, Status::Pass);
    assert!(
        c.detail.contains("1 banned") && c.detail.contains("journal"),
        "{}",
        c.detail
    );
    let down = Section {
        text:
            "Failed to access socket path: /var/run/fail2ban/fail2ban.sock. Is fail2ban running?\n"
                .into(),
        rc: Some(255),
        absent: false,
    };
    let c = fail2ban_check(&down);
    assert_eq!(c.status, Status::Fail);
    assert!(c.detail.contains("Is fail2ban running"));
    let absent = Section {
        absent: true,
        ..Section::default()
    };
    assert_eq!(fail2ban_check(&absent).status, Status::Fail);
}

#[test]
fn login_attempts_are_judged_from_ssh_output() {
    assert_eq!(
        root_login_check(
            Some(255),
            "root@127.0.0.1: Permission denied (publickey).\n"
        )
        .status,
        Status::Pass
    );
    assert_eq!(root_login_check(Some(0), "").status, Status::Fail);
    assert_eq!(
        root_login_check(
            Some(255),
            "ssh: connect to host x port 22: Connection refused\n"
        )
        .status,
        Status::Fail
    );
    let v = "debug1: Authentications that can continue: publickey\ndebug1: No more authentication methods to try.\nadmin@h: Permission denied (publickey).\n";
    assert_eq!(offered_methods(v), ["publickey"]);
    assert_eq!(auth_methods_check(v).status, Status::Pass);
    let weak =
        "debug1: Authentications that can continue: publickey,password,keyboard-interactive\n";
    let c = auth_methods_check(weak);
    assert_eq!(c.status, Status::Fail);
    assert!(c.detail.contains("password"));
    assert_eq!(auth_methods_check("").status, Status::Fail);
}

#[test]
fn cloud_init_sudo_sysctl_units() {
    let absent = Section {
        absent: true,
        ..Section::default()
    };
    assert_eq!(cloud_init_check(&absent).status, Status::Skip);
    assert_eq!(
        cloud_init_check(&ok("...\nstatus: done\n")).status,
        Status::Pass
    );
    let err = Section {
        text:
            "status: error\nerrors:\n\t- ('scripts_user', RuntimeError('Runparts: 1 failures'))\n"
                .into(),
        rc: Some(1),
        absent: false,
    };
    let c = cloud_init_check(&err);
    assert_eq!(c.status, Status::Fail);
    assert!(
        c.detail.contains("failed module(s): scripts_user;"),
        "{}",
        c.detail
    );
    // cloud-init 22.4 (Debian 12) lists the errors under `detail:`, one tuple a line.
    let bookworm = Section {
        text: "status: error\nboot_status_code: enabled-by-generator\nlast_update: Mon, 07 Dec 2026 04:01:02 +0000\ndetail:\n('locale', ProcessExecutionError(\"Unexpected error while running command.\\nCommand: ['update-locale', 'LANG=en_US.UTF-8']\"))\n('package-update-upgrade-install', ProcessExecutionError('Unexpected error'))\n('locale', RuntimeError('again'))\n".into(),
        rc: Some(1),
        absent: false,
    };
    let c = cloud_init_check(&bookworm);
    assert_eq!(c.status, Status::Fail);
    assert!(
        c.detail
            .contains("failed module(s): locale, package-update-upgrade-install;"),
        "{}",
        c.detail
    );
    assert_eq!(failed_modules("status: done\n"), Vec::<String>::new());
    let degraded = Section {
        text: "status: done\nextended_status: degraded done\n".into(),
        rc: Some(2),
        absent: false,
    };
    let c = cloud_init_check(&degraded);
    assert_eq!(c.status, Status::Pass);
    assert!(c.detail.contains("degraded done"), "{}", c.detail);
    let running = Section {
        text: "....".into(),
        rc: None,
        absent: false,
    };
    assert_eq!(cloud_init_check(&running).status, Status::Fail);

    let refused = Section {
        text: "sudo: a password is required\n".into(),
        rc: Some(1),
        absent: false,
    };
    assert_eq!(
        sudo_check(&refused, SudoMode::Password).status,
        Status::Pass
    );
    assert_eq!(sudo_check(&ok(""), SudoMode::Password).status, Status::Fail);
    assert_eq!(sudo_check(&ok(""), SudoMode::Nopasswd).status, Status::Pass);

    let good: String = expected_sysctl(&record())
        .iter()
        .map(|(k, v)| format!("{k} = {v}\n"))
        .collect();
    assert_eq!(sysctl_check(&ok(&good), &record()).status, Status::Pass);
    let weak = good.replace("net.ipv4.ip_forward = 0", "net.ipv4.ip_forward = 1");
    let c = sysctl_check(&ok(&weak), &record());
    assert_eq!(c.status, Status::Fail);
    assert!(c.detail.contains("ip_forward = 1 (want 0)"), "{}", c.detail);

    assert_eq!(units_check(&absent, &record()).status, Status::Skip);
    let enabled = "enabled\n".repeat(expected_units(&record()).len());
    assert_eq!(units_check(&ok(&enabled), &record()).status, Status::Pass);
    let one_off = enabled.replacen("enabled", "disabled", 1);
    assert_eq!(units_check(&ok(&one_off), &record()).status, Status::Fail);
}

#[test]
fn docker_and_wireguard_sections() {
    assert_eq!(docker_check(&ok("26.1.5+dfsg1\n")).status, Status::Pass);
    let down = Section {
        text: "Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?\n".into(),
        rc: Some(1),
        absent: false,
    };
    let c = docker_check(&down);
    assert_eq!(c.status, Status::Fail);
    assert!(c.detail.contains("Is the docker daemon running"));
    let absent = Section {
        absent: true,
        ..Section::default()
    };
    assert_eq!(docker_check(&absent).status, Status::Fail);

    assert!(wireguard_check(&ok(""), &record()).is_none());
    let up = "interface: wg0\n  public key: x\n  private key: (hidden)\n  listening port: 51820\n\npeer: y\n  allowed ips: 10.213.7.2/32\n";
    assert_eq!(
        wireguard_check(&ok(up), &vpn_record()).unwrap().status,
        Status::Pass
    );
    let no_peer = "interface: wg0\n  listening port: 51820\n";
    assert_eq!(
        wireguard_check(&ok(no_peer), &vpn_record()).unwrap().status,
        Status::Fail
    );
}
