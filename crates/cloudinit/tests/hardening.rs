//! The rendered hardening user-data checked by the real tools that will read it on a server:
//! cloud-init, sshd (config test and a live daemon on 127.0.0.1), ssh-audit, fail2ban, nft and apt.
//!
//! Runs as root (it creates a user); needs the Debian packages cloud-init, openssh-server,
//! openssh-client, fail2ban, python3-systemd, nftables, apt and passwd, plus ssh-audit 3.9.0 from
//! PyPI. Every process and user it creates is removed by a Drop guard, even when a test fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::process::Command;
use std::time::Duration;

use bootstrap_cloudinit::{Template, render};
use serde_json::Value as Json;
use support::*;

const DROP_IN: &str = "/etc/ssh/sshd_config.d/00-bootstrap-hardening.conf";
const JAIL: &str = "/etc/fail2ban/jail.d/bootstrap-sshd.local";
const NFTABLES: &str = "/etc/nftables.conf";
const UNATTENDED: &str = "/etc/apt/apt.conf.d/52bootstrap-unattended-upgrades";
const AUTO_UPGRADES: &str = "/etc/apt/apt.conf.d/20auto-upgrades";

const KEX: &str =
    "sntrup761x25519-sha512@openssh.com,curve25519-sha256,curve25519-sha256@libssh.org";
const CIPHERS: &str = "chacha20-poly1305@openssh.com,aes256-gcm@openssh.com,aes128-gcm@openssh.com,aes256-ctr,aes192-ctr,aes128-ctr";
const MACS: &str =
    "hmac-sha2-512-etm@openssh.com,hmac-sha2-256-etm@openssh.com,umac-128-etm@openssh.com";

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

/// `sshd -T` for a connection by `user`, as a list of "keyword value" lines.
fn sshd_effective_config(rendered: &Rendered, user: &str) -> support::Ran {
    let config = rendered.sshd_config();
    run(
        Command::new(SSHD)
            .arg("-T")
            .arg("-f")
            .arg(&config)
            .arg("-o")
            .arg(format!("HostKey={}", rendered.host_key().display()))
            .arg("-C")
            .arg(format!("user={user},host=x,addr=127.0.0.1")),
        MINUTE,
    )
}

#[test]
fn cloud_init_schema_accepts_the_rendered_user_data() {
    require_tool("cloud-init", "cloud-init");
    let rendered = Rendered::new();
    let ran = run(
        Command::new("cloud-init")
            .args(["schema", "-c"])
            .arg(&rendered.user_data_path),
        MINUTE,
    );
    ran.assert_success();
    assert!(!ran.all().contains("Invalid"), "{}", ran.all());
    assert!(ran.stdout.contains("Valid cloud-config"), "{}", ran.all());
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
fn sshd_accepts_the_drop_in_and_applies_it() {
    let rendered = Rendered::new();
    let drop_in = fs::read_to_string(rendered.file(DROP_IN)).unwrap();
    assert!(
        !drop_in.contains("Match"),
        "a Match block would capture sshd_config's own lines"
    );
    let config = rendered.sshd_config();
    fs::create_dir_all("/run/sshd").unwrap();
    run(
        Command::new(SSHD)
            .arg("-t")
            .arg("-f")
            .arg(&config)
            .arg("-o")
            .arg(format!("HostKey={}", rendered.host_key().display())),
        MINUTE,
    )
    .assert_success();

    let ran = sshd_effective_config(&rendered, &rendered.admin);
    ran.assert_success();
    let lines: Vec<&str> = ran.stdout.lines().collect();
    let allow = format!("allowusers {}", rendered.admin);
    let kex = format!("kexalgorithms {KEX}");
    let ciphers = format!("ciphers {CIPHERS}");
    let macs = format!("macs {MACS}");
    for expected in [
        "permitrootlogin no",
        "passwordauthentication no",
        "kbdinteractiveauthentication no",
        "pubkeyauthentication yes",
        "authenticationmethods publickey",
        "permitemptypasswords no",
        "maxauthtries 3",
        "logingracetime 30",
        "x11forwarding no",
        "allowagentforwarding no",
        "allowtcpforwarding no",
        "permittunnel no",
        "permituserenvironment no",
        "clientaliveinterval 300",
        "clientalivecountmax 2",
        "maxstartups 10:30:60",
        "loglevel VERBOSE",
        allow.as_str(),
        kex.as_str(),
        ciphers.as_str(),
        macs.as_str(),
        "hostkeyalgorithms ssh-ed25519,ssh-ed25519-cert-v01@openssh.com,rsa-sha2-512,rsa-sha2-512-cert-v01@openssh.com,rsa-sha2-256,rsa-sha2-256-cert-v01@openssh.com",
        "pubkeyacceptedalgorithms ssh-ed25519,ssh-ed25519-cert-v01@openssh.com,rsa-sha2-512,rsa-sha2-512-cert-v01@openssh.com,rsa-sha2-256,rsa-sha2-256-cert-v01@openssh.com",
    ] {
        assert!(
            lines.contains(&expected),
            "sshd -T lacks {expected:?}:\n{}",
            ran.stdout
        );
    }
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.starts_with("allowusers "))
            .count(),
        1,
        "only the admin may log in:\n{}",
        ran.stdout
    );
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
    let rendered = Rendered::new();
    let _user = UserGuard::create(&rendered.admin);
    for user in [rendered.admin.as_str(), "root"] {
        let keys = rendered.dir.path().join(format!("{user}.keys"));
        fs::write(&keys, &rendered.public_key).unwrap();
        fs::set_permissions(&keys, fs::Permissions::from_mode(0o644)).unwrap();
    }
    let sshd = LiveSshd::start(&rendered);

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
fn ssh_audit_finds_no_failures() {
    let audit = ssh_audit();
    let help = run(Command::new(&audit).arg("-h"), MINUTE);
    if let Some(version) = help.all().lines().find(|l| l.contains("ssh-audit v")) {
        eprintln!(
            "using {} ({})",
            audit.display(),
            version.trim_start_matches("# ")
        );
    }
    let rendered = Rendered::new();
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
    assert!(out.contains("sntrup761x25519-sha512@openssh.com"), "{out}");
    let fails: Vec<&str> = out.lines().filter(|l| l.contains("[fail]")).collect();
    assert!(
        fails.is_empty(),
        "ssh-audit failures:\n{}\n\nfull report:\n{out}",
        fails.join("\n")
    );
    // Warnings are accepted but shown (cargo test -- --nocapture).
    for warn in out.lines().filter(|l| l.contains("[warn]")) {
        eprintln!("ssh-audit: {warn}");
    }
}

#[test]
fn fail2ban_accepts_the_sshd_jail() {
    require_tool("fail2ban-client", "fail2ban");
    let rendered = Rendered::new();
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
    let variants = [
        ("ssh_from v4 + v6", Rendered::new()),
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
    ];
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
fn apt_reads_unattended_upgrades_with_automatic_reboot() {
    require_tool("apt-config", "apt");
    let rendered = Rendered::new();
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
