//! The hardening flags through the binary and the Hetzner fake: what `create` keeps in the state
//! dir (pinned host key, sudo password, WireGuard config, all 0600) and never prints, what a
//! re-run and a rollback do to it, that `render` shows what `create` sent, how `ssh` and
//! `verify` are put together, and that bad input stops before any call.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use serde_json::Value;

use crate::support::Bin;
use fakecloud::hetzner::FakeHetzner;

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

fn create(b: &Bin, fake: &FakeHetzner, name: &str, extra: &[&str]) -> crate::support::Run {
    let url = fake.url();
    let mut args = crate::support::hetzner_create(&url, name, "198.51.100.7/32");
    args.extend(extra);
    b.run(&args)
}

fn user_data_of(fake: &FakeHetzner, name: &str) -> String {
    let id = fake.server_by_name(name).unwrap()["id"].as_u64().unwrap();
    fake.server_user_data(id).unwrap()
}

#[test]
fn create_pins_the_host_key_and_keeps_the_secrets_in_0600_files() {
    let fake = FakeHetzner::start_default();
    let b = Bin::new();
    let r = create(&b, &fake, "web1", &["--output", "json"]);
    r.expect_code(0);
    let out: Value = serde_json::from_str(&r.stdout()).unwrap();
    let dir = b.state_dir().join("hetzner/web1");
    assert_eq!(mode(&dir), 0o700);

    // The user-data carries the host key; known_hosts pins exactly it for the name and the IPs.
    let ud = user_data_of(&fake, "web1");
    let doc: Value = serde_saphyr::from_str(&ud).unwrap();
    let host_pub =
        bootstrap_keys::PublicKey::parse(doc["ssh_keys"]["ed25519_public"].as_str().unwrap())
            .unwrap();
    let kh_path = dir.join("known_hosts");
    assert_eq!(mode(&kh_path), 0o600);
    let kh = bootstrap_keys::KnownHosts::load(&kh_path).unwrap().unwrap();
    let ipv4 = out["server"]["ipv4"].as_str().unwrap();
    let ipv6 = out["server"]["ipv6"].as_str().unwrap();
    for host in ["web1", ipv4, ipv6] {
        let keys = kh.keys_for(host);
        assert_eq!(keys.len(), 1, "{host}: {kh}");
        assert!(keys[0].same_key(&host_pub), "{host}");
    }
    assert_eq!(out["known_hosts"], kh_path.display().to_string());

    // The sudo password: 0600, and only its hash went to Hetzner.
    let pw_path = dir.join("sudo-password");
    assert_eq!(mode(&pw_path), 0o600);
    let password = bootstrap_keys::SudoPassword::load(&pw_path).unwrap();
    assert_eq!(
        doc["users"][0]["hashed_passwd"],
        password.sha512_crypt().unwrap()
    );
    assert!(!ud.contains(password.expose()));
    assert_eq!(out["sudo_password_file"], pw_path.display().to_string());

    // deployment.json tells verify and ssh what to expect.
    let record: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("deployment.json")).unwrap())
            .unwrap();
    assert_eq!(mode(&dir.join("deployment.json")), 0o600);
    assert_eq!(record["admin_user"], "admin");
    assert_eq!(record["sudo"], "password");
    assert_eq!(record["image"], "ubuntu-24.04");

    // Nothing secret is printed or kept: no password, no host private key anywhere but the
    // user-data; the state dir holds no private host key.
    let private = doc["ssh_keys"]["ed25519_private"].as_str().unwrap();
    // The fourth base64 line holds private key bytes (the first ones are a header that every
    // unencrypted ed25519 key shares, and the public key).
    let body = private.lines().nth(4).unwrap();
    assert!(body.len() > 40, "{private}");
    for text in [r.stdout(), r.stderr()] {
        assert!(!text.contains(password.expose()));
        assert!(!text.contains(body));
    }
    for entry in std::fs::read_dir(&dir).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap_or_default();
        assert!(!text.contains(body), "the host private key was stored");
    }

    // Text output says where things are.
    let b2 = Bin::new();
    let r = create(&b2, &fake, "web2", &[]);
    r.expect_code(0);
    let text = r.stdout();
    assert!(text.contains("host key pinned in"), "{text}");
    assert!(text.contains("sudo password for admin: in"), "{text}");
    assert!(text.contains("bootstrap ssh web2"), "{text}");
    assert!(text.contains("bootstrap verify web2"), "{text}");

    // A re-run finds the server: nothing new is pinned, the password stays.
    let before = std::fs::read_to_string(&kh_path).unwrap();
    let r = create(&b, &fake, "web1", &["--output", "json"]);
    r.expect_code(0);
    assert_eq!(std::fs::read_to_string(&kh_path).unwrap(), before);
    assert_eq!(
        bootstrap_keys::SudoPassword::load(&pw_path)
            .unwrap()
            .expose(),
        password.expose()
    );
}

#[test]
fn render_prints_what_create_sent_but_the_host_key() {
    let fake = FakeHetzner::start_default();
    let b = Bin::new();
    let flags = ["--docker", "--allow-tcp-forwarding", "--image", "debian-12"];
    create(&b, &fake, "web1", &flags).expect_code(0);
    let sent = user_data_of(&fake, "web1");
    let mut args = vec![
        "render",
        "--provider",
        "hetzner",
        "--name",
        "web1",
        "--ssh-from",
        "198.51.100.7/32",
    ];
    args.extend(flags);
    let r = b.run(&args);
    r.expect_code(0);
    let rendered = r.stdout();
    // Byte for byte, but for the two ssh_keys lines (the sudo hash comes from the state).
    let strip = |s: &str| -> Vec<String> {
        s.lines()
            .filter(|l| !l.contains("ed25519_private:") && !l.contains("ed25519_public:"))
            .map(str::to_owned)
            .collect()
    };
    assert_eq!(strip(&rendered), strip(&sent));
    assert_ne!(rendered, sent, "render must not print the real host key");
    let doc: Value = serde_saphyr::from_str(&rendered).unwrap();
    assert!(
        !sent.contains(doc["ssh_keys"]["ed25519_public"].as_str().unwrap()),
        "render's host key is a stand-in"
    );
}

#[test]
fn vpn_and_nopasswd_plans() {
    let mut b = Bin::new();
    b.unset("HCLOUD_TOKEN");
    let r = b.run(&[
        "create",
        "--provider",
        "hetzner",
        "--name",
        "v",
        "--ssh-from",
        "198.51.100.7/32",
        "--vpn",
        "wireguard",
        "--sudo",
        "nopasswd",
        "--dry-run",
        "--output",
        "json",
    ]);
    r.expect_code(0);
    let plan: Value = serde_json::from_str(&r.stdout()).unwrap();
    let rules = plan["firewall"]["inbound"].as_array().unwrap();
    assert_eq!(rules.len(), 1);
    assert_eq!(rules[0]["protocol"], "udp");
    assert_eq!(rules[0]["port"], 51820);
    assert_eq!(rules[0]["sources"][0], "198.51.100.7/32");
    let ud = plan["user_data"].as_str().unwrap();
    let doc: Value = serde_saphyr::from_str(ud).unwrap();
    assert_eq!(doc["users"][0]["sudo"], "ALL=(ALL) NOPASSWD:ALL");
    assert!(doc["users"][0].get("hashed_passwd").is_none());
    assert!(ud.contains("ListenAddress 10.213.7.1"));
    assert!(!b.state_dir().exists(), "a dry run writes nothing");
}

#[test]
fn a_failed_create_takes_back_what_it_wrote() {
    let fake = FakeHetzner::start_default();
    fake.fail_next_action("create_server", "server_error", "the host broke");
    let b = Bin::new();
    let r = create(&b, &fake, "web1", &["--vpn", "wireguard"]);
    r.expect_code(1);
    assert!(r.stderr().contains("rolled back"), "{}", r.stderr());
    let dir = b.state_dir().join("hetzner/web1");
    assert!(
        !dir.exists(),
        "left behind: {:?}",
        std::fs::read_dir(&dir).map(|d| d.flatten().map(|e| e.file_name()).collect::<Vec<_>>())
    );
}

#[test]
fn ssh_runs_the_system_ssh_with_the_pinned_key_and_the_provider_address() {
    let fake = FakeHetzner::start_default();
    let mut b = Bin::new();
    let r = create(
        &b,
        &fake,
        "web1",
        &["--admin-user", "ops", "--output", "json"],
    );
    r.expect_code(0);
    let out: Value = serde_json::from_str(&r.stdout()).unwrap();
    let ip = out["server"]["ipv4"].as_str().unwrap().to_owned();
    // A stand-in `ssh` first on PATH records how it was called.
    let bin_dir = b.dir.path().join("bin");
    std::fs::create_dir_all(&bin_dir).unwrap();
    let log = b.dir.path().join("ssh-args");
    let shim = bin_dir.join("ssh");
    std::fs::write(
        &shim,
        format!(
            "#!/bin/sh\nfor a in \"$@\"; do printf '%s\\n' \"$a\"; done > {}\nexit 7\n",
            log.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&shim, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap());
    b.env("PATH", &path);
    let url = fake.url();
    let r = b.run(&[
        "ssh",
        "web1",
        "--provider",
        "hetzner",
        "--endpoint",
        &url,
        "--",
        "uptime",
    ]);
    assert_eq!(r.code(), 7, "ssh's exit code is passed on: {}", r.stderr());
    let args: Vec<String> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    let dir = b.state_dir().join("hetzner/web1");
    for expected in [
        "StrictHostKeyChecking=yes".to_owned(),
        format!("UserKnownHostsFile={}", dir.join("known_hosts").display()),
        "HostKeyAlias=web1".to_owned(),
        "GlobalKnownHostsFile=/dev/null".to_owned(),
        dir.join("id_ed25519").display().to_string(),
    ] {
        assert!(args.contains(&expected), "{expected} not in {args:?}");
    }
    let tail: Vec<&str> = args
        .iter()
        .rev()
        .take(4)
        .rev()
        .map(String::as_str)
        .collect();
    assert_eq!(tail, ["ops", "--", ip.as_str(), "uptime"]);
}

#[test]
fn bad_hardening_input_stops_before_any_call() {
    let api = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    api.set_nonblocking(true).unwrap();
    let url = format!("http://{}/v1", api.local_addr().unwrap());
    let b = Bin::new();
    let base = [
        "create",
        "--provider",
        "hetzner",
        "--endpoint",
        url.as_str(),
        "--name",
        "w",
        "--ssh-from",
        "198.51.100.7/32",
    ];
    for (extra, needle) in [
        (vec!["--sudo", "maybe"], "--sudo"),
        (vec!["--vpn", "openvpn"], "wireguard"),
        (vec!["--image", "rocky-9"], "Debian and Ubuntu"),
    ] {
        let mut args = base.to_vec();
        args.extend(extra);
        let r = b.run(&args);
        r.expect_code(2);
        assert!(r.stderr().contains(needle), "{args:?}: {}", r.stderr());
        assert_eq!(r.stderr().trim().lines().count(), 1, "{}", r.stderr());
    }
    for (args, needle) in [
        (vec!["verify", "nope", "--endpoint", &url], "no local state"),
        (vec!["ssh", "nope", "--endpoint", &url], "no local state"),
        (
            vec![
                "verify",
                "nope",
                "--provider",
                "hetzner",
                "--endpoint",
                &url,
            ],
            "no local state",
        ),
        (
            vec![
                "verify",
                "w",
                "--provider",
                "hetzner",
                "--host=-oProxyCommand=x",
                "--endpoint",
                &url,
            ],
            "--host",
        ),
        (
            vec!["verify", "Bad Name", "--endpoint", &url],
            "invalid name",
        ),
        (
            vec![
                "verify",
                "w",
                "--provider",
                "hetzner",
                "--timeout",
                "soon",
                "--endpoint",
                &url,
            ],
            "--timeout",
        ),
    ] {
        let r = b.run(&args);
        r.expect_code(2);
        assert!(r.stderr().contains(needle), "{args:?}: {}", r.stderr());
        assert_eq!(r.stderr().trim().lines().count(), 1, "{}", r.stderr());
    }
    // --port needs --host (clap says so, exit 2).
    b.run(&["verify", "w", "--port", "2222"]).expect_code(2);
    match api.accept() {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        other => panic!("the binary connected to the API: {other:?}"),
    }
    assert!(!b.state_dir().exists());
}
