//! `bootstrap verify` and `bootstrap ssh` against the local stand-in server of
//! [`crate::hardening_target`], built from the exact user-data `create` sent to the Hetzner fake
//! (and, through one helper, to the Scaleway and DigitalOcean fakes):
//! verify passes on it, reports each weakening, rotates the host key; the pinned known_hosts
//! admits the server and refuses another key; the firewall admits `--ssh-from` only; VPN mode
//! works through a real WireGuard tunnel.
//!
//! Needs root (namespaces, a user), and the tools listed in `.ci/install`.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::hardening_target::{
    CLIENT_IP, SERVER_IP, STRANGER_IP, Target, Weakening, admin_name, create_on_fake,
};
use crate::support::Bin;
use fakecloud::hetzner::FakeHetzner;

/// The checklist of a `--output json` run, as id -> (status, detail).
fn checklist(stdout: &str) -> BTreeMap<String, (String, String)> {
    let doc: Value = serde_json::from_str(stdout)
        .unwrap_or_else(|e| panic!("verify printed no JSON document ({e}):\n{stdout}"));
    doc["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["id"].as_str().unwrap().to_owned(),
                (
                    c["status"].as_str().unwrap().to_owned(),
                    c["detail"].as_str().unwrap().to_owned(),
                ),
            )
        })
        .collect()
}

fn failed(list: &BTreeMap<String, (String, String)>) -> Vec<&str> {
    list.iter()
        .filter(|(_, (s, _))| s == "fail")
        .map(|(id, _)| id.as_str())
        .collect()
}

fn verify(t: &Target, b: &Bin, name: &str, extra: &[&str]) -> crate::support::Run {
    let mut args = vec![
        "verify", name, "--host", SERVER_IP, "--port", "22", "--output", "json",
    ];
    args.extend(extra);
    t.bin(b, &args)
}

/// The deployment's pinned-key ssh options, as `bootstrap ssh` uses them.
fn pinned(b: &Bin, name: &str) -> Vec<String> {
    let dir = b.state_dir().join("hetzner").join(name);
    vec![
        "-i".into(),
        dir.join("id_ed25519").display().to_string(),
        "-o".into(),
        format!("UserKnownHostsFile={}", dir.join("known_hosts").display()),
        "-o".into(),
        "StrictHostKeyChecking=yes".into(),
        "-o".into(),
        "GlobalKnownHostsFile=/dev/null".into(),
        "-o".into(),
        "IdentitiesOnly=yes".into(),
    ]
}

#[test]
fn verify_passes_on_the_rendered_server_and_rotates_its_host_key() {
    let fake = FakeHetzner::start_default();
    let b = Bin::new();
    let admin = admin_name();
    let (user_data, ip) = create_on_fake(&b, &fake, "web1", &admin, &[]);
    let t = Target::start(&user_data, Some(&ip), &Weakening::default());
    let from_user_data = t.host_key_pub();
    let kh_path = b.state_dir().join("hetzner/web1/known_hosts");
    let kh_before = std::fs::read_to_string(&kh_path).unwrap();
    assert!(kh_before.contains("bootstrap:user-data"), "{kh_before}");
    assert!(
        kh_before.contains(from_user_data.split_whitespace().nth(1).unwrap()),
        "known_hosts pins the key that went into the user-data:\n{kh_before}"
    );

    let r = verify(&t, &b, "web1", &[]);
    let list = checklist(&r.stdout());
    assert!(
        failed(&list).is_empty(),
        "failed: {:?}\n{}\n{}\nsshd log:\n{}",
        failed(&list),
        r.stdout(),
        r.stderr(),
        t.sshd_log()
    );
    r.expect_code(0);
    for id in [
        "host-key",
        "sudo",
        "sshd-permit-root-login",
        "sshd-password-authentication",
        "sshd-kbd-interactive",
        "sshd-publickey-only",
        "sshd-allow-users",
        "sshd-limits",
        "sshd-forwarding",
        "sshd-algorithms",
        "sshd-host-keys",
        "sshd-log-level",
        "fail2ban-sshd",
        "firewall-default-deny",
        "firewall-ssh",
        "unattended-upgrades",
        "security-updates",
        "sysctl",
        "root-login-refused",
        "auth-methods",
        "host-key-rotated",
    ] {
        assert_eq!(list[id].0, "pass", "{id}: {:?}", list[id]);
    }
    // No cloud-init and no systemd on this target: skipped, never passed.
    assert_eq!(list["cloud-init"].0, "skip", "{:?}", list["cloud-init"]);
    assert_eq!(list["services-enabled"].0, "skip");
    assert!(list["auth-methods"].1.contains("offered: publickey"));
    assert!(list["fail2ban-sshd"].1.contains("journal"));

    // The key changed on the server, and known_hosts followed over the pinned connection.
    let now = t.host_key_pub();
    assert_ne!(now, from_user_data);
    let kh_after = std::fs::read_to_string(&kh_path).unwrap();
    assert!(
        kh_after.contains(now.split_whitespace().nth(1).unwrap()),
        "{kh_after}"
    );
    assert!(
        !kh_after.contains(from_user_data.split_whitespace().nth(1).unwrap()),
        "the user-data key is no longer trusted:\n{kh_after}"
    );
    assert!(kh_after.contains("bootstrap:rotated"));
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&kh_path).unwrap().permissions(),
    ) & 0o777;
    assert_eq!(mode, 0o600);

    // `bootstrap ssh` logs in with the new key pinned; a second verify finds nothing to rotate.
    let r = t.bin(&b, &["ssh", "web1", "--host", SERVER_IP, "--", "id", "-un"]);
    r.expect_code(0);
    assert_eq!(r.stdout().trim(), admin);
    let r = t.bin(&b, &["verify", "web1", "--host", SERVER_IP, "--port", "22"]);
    r.expect_code(0);
    let text = r.stdout();
    eprintln!("{text}");
    assert!(
        text.contains("[pass] host key is one generated on the server: already rotated"),
        "{text}"
    );
    assert!(text.contains("[skip] cloud-init finished"), "{text}");
    assert!(text.contains(" failed, "), "{text}");
    // Neither the sudo password nor a private key appears in anything verify printed.
    let password =
        std::fs::read_to_string(b.state_dir().join("hetzner/web1/sudo-password")).unwrap();
    for out in [text.as_str(), &r.stderr()] {
        assert!(!out.contains(password.trim()), "sudo password printed");
        assert!(!out.contains("PRIVATE KEY"));
    }
}

#[test]
fn verify_reports_each_weakening() {
    let fake = FakeHetzner::start_default();
    let cases: Vec<(&str, Weakening, &[&str])> = vec![
        (
            "password auth on",
            Weakening {
                drop_in: Some(|s| {
                    s.replace("PasswordAuthentication no", "PasswordAuthentication yes")
                        .replace(
                            "KbdInteractiveAuthentication no",
                            "KbdInteractiveAuthentication yes",
                        )
                        .replace("AuthenticationMethods publickey\n", "")
                }),
                ..Weakening::default()
            },
            &[
                "auth-methods",
                "sshd-kbd-interactive",
                "sshd-password-authentication",
                "sshd-publickey-only",
            ],
        ),
        (
            "root allowed",
            Weakening {
                drop_in: Some(|s| {
                    s.replace("PermitRootLogin no", "PermitRootLogin yes")
                        .lines()
                        .map(|l| {
                            if l.starts_with("AllowUsers ") {
                                format!("{l} root\n")
                            } else {
                                format!("{l}\n")
                            }
                        })
                        .collect()
                }),
                // root holds the deployment's key: only sshd's settings stand in the way.
                root_key: Some(String::new()),
                ..Weakening::default()
            },
            &[
                "root-login-refused",
                "sshd-allow-users",
                "sshd-permit-root-login",
            ],
        ),
        (
            "fail2ban missing",
            Weakening {
                no_fail2ban: true,
                ..Weakening::default()
            },
            &["fail2ban-sshd"],
        ),
        (
            "no host firewall",
            Weakening {
                no_firewall: true,
                ..Weakening::default()
            },
            &["firewall-default-deny"],
        ),
        (
            "security update pending",
            Weakening {
                security_update_pending: true,
                ..Weakening::default()
            },
            &["security-updates"],
        ),
        (
            // verify still sends the recorded password: it must never reach the shell.
            "sudo without password",
            Weakening {
                sudo_nopasswd: true,
                ..Weakening::default()
            },
            &["sudo"],
        ),
    ];
    for (i, (name, mut weak, expected)) in cases.into_iter().enumerate() {
        let b = Bin::new();
        let deployment = format!("weak{i}");
        let (user_data, ip) = create_on_fake(&b, &fake, &deployment, &admin_name(), &[]);
        if weak.root_key.is_some() {
            let doc: Value = serde_saphyr::from_str(&user_data).unwrap();
            weak.root_key = Some(
                doc["users"][0]["ssh_authorized_keys"][0]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            );
        }
        let t = Target::start(&user_data, Some(&ip), &weak);
        let r = verify(&t, &b, &deployment, &["--keep-host-key"]);
        let list = checklist(&r.stdout());
        assert_eq!(
            failed(&list),
            expected,
            "{name}: {}\n{}",
            r.stdout(),
            r.stderr()
        );
        r.expect_code(1);
        assert!(
            r.stderr().contains("check(s) failed"),
            "{name}: {}",
            r.stderr()
        );
        if name == "root allowed" {
            // Not vacuous: root really got in.
            assert!(
                list["root-login-refused"].1.contains("root logged in"),
                "{list:?}"
            );
        }
        if name == "sudo without password" {
            let password = std::fs::read_to_string(
                b.state_dir()
                    .join(format!("hetzner/{deployment}/sudo-password")),
            )
            .unwrap();
            for out in [r.stdout(), r.stderr()] {
                assert!(
                    !out.contains(password.trim()),
                    "sudo password printed:\n{out}"
                );
            }
            // The root checks still ran (the password line did not break the script).
            assert_eq!(list["sshd-permit-root-login"].0, "pass", "{list:?}");
        }
        if name == "security update pending" {
            assert!(
                list["security-updates"].1.contains("openssh-client"),
                "{list:?}"
            );
        }
    }
}

#[test]
fn pinned_known_hosts_admit_the_server_and_refuse_any_other_key() {
    let fake = FakeHetzner::start_default();
    let b = Bin::new();
    let admin = admin_name();
    let (user_data, ip) = create_on_fake(&b, &fake, "pin1", &admin, &[]);
    let t = Target::start(&user_data, Some(&ip), &Weakening::default());
    let opts = pinned(&b, "pin1");
    let opts: Vec<&str> = opts.iter().map(String::as_str).collect();

    // By address, as create's output suggests, and by the deployment name as alias.
    let mut by_ip = opts.clone();
    by_ip.extend(["-l", &admin, &ip, "true"]);
    t.ssh(&by_ip).assert_success();
    let mut by_alias = opts.clone();
    by_alias.extend(["-o", "HostKeyAlias=pin1", "-l", &admin, SERVER_IP, "true"]);
    t.ssh(&by_alias).assert_success();
    t.bin(&b, &["ssh", "pin1", "--host", SERVER_IP, "--", "true"])
        .expect_code(0);

    // Only --ssh-from gets through the host firewall: from another address SSH times out.
    let mut stranger = by_ip.clone();
    stranger.splice(0..0, ["-b", STRANGER_IP, "-o", "ConnectTimeout=3"]);
    let ran = t.ssh(&stranger);
    assert!(!ran.status.success());
    assert!(ran.stderr.contains("timed out"), "{}", ran.all());
    let mut friend = by_ip.clone();
    friend.splice(0..0, ["-b", CLIENT_IP]);
    t.ssh(&friend).assert_success();

    // The server now presents another key: every way in refuses it.
    t.replace_host_key();
    for args in [&by_ip, &by_alias] {
        let ran = t.ssh(args);
        assert!(!ran.status.success(), "an unpinned key was accepted");
        assert!(
            ran.stderr
                .contains("REMOTE HOST IDENTIFICATION HAS CHANGED")
                && ran.stderr.contains("Host key verification failed"),
            "{}",
            ran.all()
        );
    }
    let r = t.bin(&b, &["ssh", "pin1", "--host", SERVER_IP, "--", "true"]);
    assert_eq!(r.code(), 255, "{}", r.stderr());
    assert!(
        r.stderr().contains("Host key verification failed"),
        "{}",
        r.stderr()
    );
    let r = verify(&t, &b, "pin1", &[]);
    r.expect_code(1);
    let list = checklist(&r.stdout());
    assert_eq!(list["host-key"].0, "fail");
    assert!(
        list["host-key"]
            .1
            .contains("REMOTE HOST IDENTIFICATION HAS CHANGED"),
        "{list:?}"
    );
    assert_eq!(
        list.len(),
        1,
        "nothing is checked over an unverified connection: {list:?}"
    );
}

#[test]
fn verify_through_the_wireguard_tunnel() {
    let fake = FakeHetzner::start_default();
    let b = Bin::new();
    let admin = admin_name();
    let (user_data, ip) = create_on_fake(&b, &fake, "vpn1", &admin, &["--vpn", "wireguard"]);
    // The cloud firewall opens the tunnel, not SSH.
    let fw = fake.firewalls();
    let rules = fw[0]["rules"].as_array().unwrap();
    assert_eq!(rules.len(), 1, "{fw:?}");
    assert_eq!(rules[0]["protocol"], "udp");
    assert_eq!(rules[0]["port"], "51820");
    assert_eq!(
        rules[0]["source_ips"],
        serde_json::json!(["198.51.100.7/32"])
    );

    let t = Target::start(&user_data, Some(&ip), &Weakening::default());
    let conf = b.state_dir().join("hetzner/vpn1/wg-bootstrap.conf");
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&conf).unwrap().permissions())
            & 0o777;
    assert_eq!(mode, 0o600);
    assert!(
        std::fs::read_to_string(&conf)
            .unwrap()
            .contains(&format!("Endpoint = {ip}:51820"))
    );
    // The client brings the tunnel up with the config create wrote, unchanged.
    t.client.sh(&format!(
        "WG_QUICK_USERSPACE_IMPLEMENTATION=wireguard-go WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD=1 wg-quick up {} >/dev/null 2>&1",
        conf.display()
    ));

    // SSH on the public address: nothing listens and the firewall drops it.
    let opts = pinned(&b, "vpn1");
    let mut outside: Vec<&str> = opts.iter().map(String::as_str).collect();
    outside.extend(["-o", "HostKeyAlias=vpn1", "-l", &admin, &ip, "true"]);
    let ran = t.ssh(&outside);
    assert!(!ran.status.success(), "SSH answered outside the tunnel");

    // verify finds the tunnel address in the state: no --host.
    let r = t.bin(&b, &["verify", "vpn1", "--output", "json"]);
    let list = checklist(&r.stdout());
    assert!(
        failed(&list).is_empty(),
        "failed: {:?}\n{}\n{}\nsshd log:\n{}",
        failed(&list),
        r.stdout(),
        r.stderr(),
        t.sshd_log()
    );
    r.expect_code(0);
    for id in [
        "sshd-listen-vpn",
        "firewall-ssh",
        "wireguard",
        "host-key-rotated",
        "wireguard-key-rotated",
    ] {
        assert_eq!(list[id].0, "pass", "{id}: {:?}", list[id]);
    }
    assert!(
        list["firewall-ssh"].1.contains("on wg0"),
        "{:?}",
        list["firewall-ssh"]
    );

    // The WireGuard server key from the user-data is gone from the server: a new one, made
    // there, is live and in its config; the client config names its public half.
    let user_data_key = user_data
        .lines()
        .find_map(|l| l.trim().strip_prefix("PrivateKey = "))
        .expect("the user-data carries the server key")
        .to_owned();
    let server_pub = || {
        t.server
            .sh("sleep 3; wg show wg0 public-key")
            .stdout
            .trim()
            .to_owned()
    };
    let live = server_pub();
    let client_conf = std::fs::read_to_string(&conf).unwrap();
    assert!(
        client_conf.contains(&format!("PublicKey = {live}")),
        "the client config names the server's live key {live}"
    );
    let server_conf = t.server.sh("cat /etc/wireguard/wg0.conf").stdout;
    assert!(
        !server_conf.contains(&user_data_key),
        "the user-data's private key is still in wg0.conf"
    );
    assert!(server_conf.contains("PrivateKey = "));
    let stored = std::fs::read_to_string(b.state_dir().join("hetzner/vpn1/wg-server.pub")).unwrap();
    assert_eq!(stored.trim(), live);
    assert!(
        list["wireguard-key-rotated"].1.contains("wg-quick up"),
        "{:?}",
        list["wireguard-key-rotated"]
    );

    // The tunnel, brought up again with the config as verify left it, carries SSH.
    t.client.sh(&format!(
        "WG_QUICK_USERSPACE_IMPLEMENTATION=wireguard-go WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD=1 wg-quick down {c} >/dev/null 2>&1; \
         WG_QUICK_USERSPACE_IMPLEMENTATION=wireguard-go WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD=1 wg-quick up {c} >/dev/null 2>&1",
        c = conf.display()
    ));
    let r = t.bin(&b, &["ssh", "vpn1", "--", "id", "-un"]);
    r.expect_code(0);
    assert_eq!(r.stdout().trim(), admin);

    // A second verify finds both keys rotated and changes nothing.
    let r = t.bin(&b, &["verify", "vpn1", "--output", "json"]);
    let again = checklist(&r.stdout());
    r.expect_code(0);
    for id in ["host-key-rotated", "wireguard-key-rotated"] {
        assert_eq!(again[id].0, "pass", "{id}: {:?}", again[id]);
        assert!(again[id].1.contains("already rotated"), "{:?}", again[id]);
    }
    assert_eq!(server_pub(), live);
}

/// `create` on `provider`'s fake with `flags` (endpoint, credentials in `b`), as `admin`, on
/// an image with OpenSSH 9.2 (the local sshd's); returns the server's id and IPv4.
fn create_json(
    b: &Bin,
    provider: &str,
    flags: &[&str],
    admin: &str,
    image: &str,
) -> (String, String) {
    let mut args = vec![
        "create",
        "--provider",
        provider,
        "--name",
        "web1",
        "--ssh-from",
        "198.51.100.7/32",
        "--admin-user",
        admin,
        "--image",
        image,
        "--output",
        "json",
    ];
    args.extend(flags);
    let r = b.run(&args);
    r.expect_code(0);
    let out: Value = serde_json::from_str(&r.stdout()).unwrap();
    (
        out["server"]["id"].as_str().unwrap().to_owned(),
        out["server"]["ipv4"].as_str().unwrap().to_owned(),
    )
}

/// The promise of `verify` and `ssh` for any provider: the user-data `create` sent to
/// `provider`'s fake, run on the stand-in server, passes every check; the host key is rotated
/// and `bootstrap ssh` logs in with it pinned.
fn verify_and_ssh_pass(b: &Bin, provider: &str, admin: &str, user_data: &str, ip: &str) {
    let t = Target::start(user_data, Some(ip), &Weakening::default());
    let kh_path = b.state_dir().join(provider).join("web1/known_hosts");
    assert!(
        std::fs::read_to_string(&kh_path)
            .unwrap()
            .contains("bootstrap:user-data")
    );
    let r = verify(&t, b, "web1", &["--provider", provider]);
    let list = checklist(&r.stdout());
    assert!(
        failed(&list).is_empty(),
        "{provider}: failed: {:?}\n{}\n{}\nsshd log:\n{}",
        failed(&list),
        r.stdout(),
        r.stderr(),
        t.sshd_log()
    );
    r.expect_code(0);
    assert_eq!(
        list["host-key-rotated"].0, "pass",
        "{:?}",
        list["host-key-rotated"]
    );
    assert!(
        std::fs::read_to_string(&kh_path)
            .unwrap()
            .contains("bootstrap:rotated")
    );
    let ssh = ["ssh", "web1", "--provider", provider, "--host", SERVER_IP];
    let r = t.bin(b, &[&ssh[..], &["--", "id", "-un"]].concat());
    r.expect_code(0);
    assert_eq!(r.stdout().trim(), admin);
    t.bin(b, &[&ssh[..], &["--", "true"]].concat())
        .expect_code(0);
}

/// `verify` and `ssh` for a Scaleway deployment: its user-data is PATCHed to the fake
/// (`text/plain`, before power-on).
#[test]
fn scaleway_verify_and_ssh_pass_on_the_rendered_server() {
    use fakecloud::scaleway::{FakeScaleway, PROJECT};
    let fake = FakeScaleway::start();
    let mut b = Bin::new();
    b.env("SCW_SECRET_KEY", "00000000-0000-4000-8000-000000000000");
    b.env("SCW_DEFAULT_PROJECT_ID", PROJECT);
    let admin = admin_name();
    let url = fake.url();
    let (id, ip) = create_json(
        &b,
        "scaleway",
        &["--endpoint", &url],
        &admin,
        "debian_bookworm",
    );
    let user_data = fake.w().user_data[&id].clone();
    verify_and_ssh_pass(&b, "scaleway", &admin, &user_data, &ip);
}

/// `verify` and `ssh` for a DigitalOcean deployment: the droplet's `user_data` as the fake
/// received it in `POST /v2/droplets`.
#[test]
fn digitalocean_verify_and_ssh_pass_on_the_rendered_server() {
    use fakecloud::digitalocean::FakeDo;
    let fake = FakeDo::start();
    let mut b = Bin::new();
    b.unset("HCLOUD_TOKEN");
    b.env("DIGITALOCEAN_TOKEN", "dop_v1_test-token-not-secret");
    let admin = admin_name();
    let url = fake.url();
    let (id, ip) = create_json(
        &b,
        "digitalocean",
        &["--endpoint", &url],
        &admin,
        "debian-12-x64",
    );
    let user_data = fake
        .user_data(id.parse().unwrap())
        .expect("the fake keeps user_data");
    assert_eq!(
        fake.droplets()[0]["networks"]["v4"][0]["ip_address"],
        ip.as_str()
    );
    verify_and_ssh_pass(&b, "digitalocean", &admin, &user_data, &ip);
}
