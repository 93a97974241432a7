//! The command line without any cloud: dry runs need no token, render prints only the
//! user-data, and bad input is refused with exit code 2 before any connection is made.

use std::net::TcpListener;

use crate::support::Bin;

/// A listener that proves nobody connected.
struct NoCalls(TcpListener);

impl NoCalls {
    fn new() -> Self {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.set_nonblocking(true).unwrap();
        Self(l)
    }
    fn url(&self) -> String {
        format!("http://{}/v1", self.0.local_addr().unwrap())
    }
    #[track_caller]
    fn assert_untouched(&self) {
        match self.0.accept() {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            other => panic!("the binary connected to the API: {other:?}"),
        }
    }
}

#[test]
fn dry_run_needs_no_token_and_prints_plan_and_user_data() {
    let mut b = Bin::new();
    b.unset("HCLOUD_TOKEN");
    let r = b.run(&[
        "create",
        "--provider",
        "hetzner",
        "--name",
        "demo",
        "--ssh-from",
        "203.0.113.7/32",
        "--dry-run",
    ]);
    r.expect_code(0);
    let out = r.stdout();
    assert!(out.contains("bootstrap-deployment=demo"), "{out}");
    assert!(out.contains("managed-by=bootstrap"), "{out}");
    assert!(out.contains("tcp/22 from 203.0.113.7/32"), "{out}");
    assert!(out.contains("#cloud-config"), "{out}");
    assert!(
        !b.key_path("hetzner", "demo").exists(),
        "a dry run writes no key"
    );

    let r = b.run(&[
        "create",
        "--provider",
        "hetzner",
        "--name",
        "demo",
        "--ssh-from",
        "203.0.113.7/32",
        "--dry-run",
        "--output",
        "json",
    ]);
    r.expect_code(0);
    let v: serde_json::Value = serde_json::from_str(&r.stdout()).expect("one JSON document");
    assert_eq!(v["dry_run"], true);
    assert_eq!(v["server"]["labels"]["bootstrap-deployment"], "demo");
    assert_eq!(v["firewall"]["inbound"][0]["sources"][0], "203.0.113.7/32");
    assert!(
        v["user_data"]
            .as_str()
            .unwrap()
            .starts_with("#cloud-config")
    );
}

#[test]
fn render_prints_only_the_user_data_of_an_existing_key() {
    let b = Bin::new();
    let args = [
        "render",
        "--provider",
        "hetzner",
        "--name",
        "t",
        "--ssh-from",
        "198.51.100.7/32",
    ];
    let r = b.run(&args);
    r.expect_code(0);
    assert!(r.stdout().starts_with("#cloud-config\n"), "{}", r.stdout());
    assert!(
        r.stderr().contains("placeholder"),
        "render says the key is a placeholder"
    );
    // With the user's own key, render is deterministic and carries exactly that key.
    let kp =
        ssh_key::PrivateKey::random(&mut rand::rngs::OsRng, ssh_key::Algorithm::Ed25519).unwrap();
    let pubkey = kp.public_key().to_openssh().unwrap();
    let path = b.dir.path().join("me.pub");
    std::fs::write(&path, format!("{pubkey}\n")).unwrap();
    let mut with_key: Vec<&str> = args.to_vec();
    with_key.extend(["--ssh-key", path.to_str().unwrap()]);
    let a = b.run(&with_key);
    let c = b.run(&with_key);
    a.expect_code(0);
    // Deterministic but for the values render makes up: without state, the sudo password's
    // hash; always, the host key (a secret: create makes the real one and never prints it).
    assert_ne!(a.stdout(), c.stdout(), "render must not repeat a host key");
    assert_eq!(mask_generated(&a.stdout()), mask_generated(&c.stdout()));
    assert!(a.stdout().contains(&pubkey));
    assert!(a.stderr().is_empty(), "{}", a.stderr());
}

/// The user-data with the values render generates (host key, sudo hash without state) masked.
pub fn mask_generated(user_data: &str) -> String {
    user_data
        .lines()
        .map(|l| {
            for key in ["ed25519_private:", "ed25519_public:", "hashed_passwd:"] {
                if let Some(at) = l.find(key) {
                    return format!("{}{key} <generated>", &l[..at]);
                }
            }
            l.to_owned()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn hostile_input_is_refused_before_any_call() {
    let api = NoCalls::new();
    let b = Bin::new();
    let url = api.url();
    let base = [
        "create",
        "--provider",
        "hetzner",
        "--endpoint",
        url.as_str(),
    ];
    let long = "a".repeat(64);
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["--name", "web\n1", "--ssh-from", "203.0.113.7/32"],
            "invalid name",
        ),
        (
            vec!["--name", "Web1", "--ssh-from", "203.0.113.7/32"],
            "invalid name",
        ),
        (
            vec!["--name", &long, "--ssh-from", "203.0.113.7/32"],
            "invalid name",
        ),
        (
            vec!["--name", "a\"b: c", "--ssh-from", "203.0.113.7/32"],
            "invalid name",
        ),
        (
            vec!["--name", "w", "--ssh-from", "203.0.113.7/33"],
            "--ssh-from",
        ),
        (
            vec!["--name", "w", "--ssh-from", "0.0.0.0/0"],
            "--ssh-from any",
        ),
        (
            vec![
                "--name",
                "w",
                "--ssh-from",
                "any",
                "--ssh-from",
                "1.2.3.4/32",
            ],
            "alone",
        ),
        (
            vec![
                "--name",
                "w",
                "--ssh-from",
                "203.0.113.7/32",
                "--admin-user",
                "root",
            ],
            "root",
        ),
        (
            vec![
                "--name",
                "w",
                "--ssh-from",
                "203.0.113.7/32",
                "--admin-user",
                "x\ny",
            ],
            "--admin-user",
        ),
        (
            vec![
                "--name",
                "w",
                "--ssh-from",
                "203.0.113.7/32",
                "--admin-user",
                "a: b",
            ],
            "--admin-user",
        ),
        (
            vec![
                "--name",
                "w",
                "--ssh-from",
                "203.0.113.7/32",
                "--reboot-time",
                "25:00",
            ],
            "--reboot-time",
        ),
        (
            vec![
                "--name",
                "w",
                "--ssh-from",
                "203.0.113.7/32",
                "--timeout",
                "soon",
            ],
            "--timeout",
        ),
        (
            vec![
                "--name",
                "w",
                "--ssh-from",
                "203.0.113.7/32",
                "--template",
                "/nonexistent.j2",
            ],
            "--template",
        ),
        (
            vec![
                "--name",
                "w",
                "--ssh-from",
                "203.0.113.7/32",
                "--ssh-key",
                "/nonexistent.pub",
            ],
            "--ssh-key",
        ),
        (
            vec![
                "--name",
                "w",
                "--ssh-from",
                "203.0.113.7/32",
                "--passphrase-env",
                "NOPE_UNSET",
            ],
            "NOPE_UNSET",
        ),
    ];
    for (extra, needle) in cases {
        let mut args: Vec<&str> = base.to_vec();
        args.extend(extra.iter().copied());
        let r = b.run(&args);
        r.expect_code(2);
        let err = r.stderr();
        assert!(err.contains(needle), "{args:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
        assert!(!err.contains("test-token"), "token leaked: {err}");
    }
    // A template that does not render or does not parse as YAML.
    for (body, needle) in [
        ("{{ nope }}", "template"),
        ("#cloud-config\nkey: [unclosed\n", "template"),
    ] {
        let t = b.dir.path().join("bad.j2");
        std::fs::write(&t, body).unwrap();
        let mut args: Vec<&str> = base.to_vec();
        args.extend([
            "--name",
            "w",
            "--ssh-from",
            "203.0.113.7/32",
            "--template",
            t.to_str().unwrap(),
        ]);
        let r = b.run(&args);
        r.expect_code(2);
        assert!(r.stderr().contains(needle), "{}", r.stderr());
    }
    api.assert_untouched();
    assert!(
        !b.state_dir().exists(),
        "bad input creates no local state either"
    );
}

#[test]
fn missing_token_is_bad_input_naming_the_fix() {
    let api = NoCalls::new();
    let mut b = Bin::new();
    b.unset("HCLOUD_TOKEN");
    let url = api.url();
    let r = b.run(&["list", "--provider", "hetzner", "--endpoint", &url]);
    r.expect_code(2);
    assert!(r.stderr().contains("HCLOUD_TOKEN"), "{}", r.stderr());
    api.assert_untouched();
    // The hcloud CLI's active context is used when the variable is unset.
    let cfg = b.dir.path().join("cli.toml");
    std::fs::write(
        &cfg,
        "active_context = \"p\"\n[[contexts]]\nname = \"p\"\ntoken = \"ctx-token\"\n",
    )
    .unwrap();
    b.env("HCLOUD_CONFIG", cfg.to_str().unwrap());
    api.assert_untouched();
    // A port where nothing listens: the connection is refused at once.
    let closed = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/v1", l.local_addr().unwrap())
    };
    let r = b.run(&["list", "--provider", "hetzner", "--endpoint", &closed]);
    // Now it does try to connect (and fails) — exit 1, not 2.
    r.expect_code(1);
    assert!(
        !r.stderr().contains("ctx-token"),
        "token leaked: {}",
        r.stderr()
    );
}

#[test]
fn render_is_the_library_render_that_the_hardening_tests_check() {
    // crates/cloudinit/tests/hardening.rs checks `bootstrap_cloudinit::render` of the embedded
    // template with real sshd, cloud-init, ssh-audit, fail2ban, nft and apt; this ties the
    // binary's `render` (and so what `create` sends) to exactly that output.
    let b = Bin::new();
    let kp =
        ssh_key::PrivateKey::random(&mut rand::rngs::OsRng, ssh_key::Algorithm::Ed25519).unwrap();
    let pubkey = kp.public_key().to_openssh().unwrap();
    let path = b.dir.path().join("me.pub");
    std::fs::write(&path, format!("{pubkey}\n")).unwrap();
    let r = b.run(&[
        "render",
        "--provider",
        "hetzner",
        "--name",
        "t",
        "--ssh-from",
        "198.51.100.7/32",
        "--ssh-key",
        path.to_str().unwrap(),
        "--admin-user",
        "ops",
        "--reboot-time",
        "03:30",
    ]);
    r.expect_code(0);
    // The values render generates (host key; sudo hash, as there is no state yet) are taken
    // from its output; everything else comes from the flags.
    let doc: serde_json::Value = serde_saphyr::from_str(&r.stdout()).unwrap();
    let expected = bootstrap_cloudinit::render(
        &bootstrap_cloudinit::Template::embedded(),
        &bootstrap_cloudinit::HardeningParams {
            hostname: "t".into(),
            admin_user: "ops".into(),
            ssh_authorized_keys: vec![pubkey],
            ssh_from: vec!["198.51.100.7/32".parse().unwrap()],
            reboot_time: "03:30".into(),
            image: bootstrap_cloudinit::ImageProfile::for_image("ubuntu-24.04"),
            host_key: bootstrap_cloudinit::HostKey {
                private_openssh: doc["ssh_keys"]["ed25519_private"].as_str().unwrap().into(),
                public_openssh: doc["ssh_keys"]["ed25519_public"].as_str().unwrap().into(),
            },
            sudo: bootstrap_cloudinit::Sudo::Password {
                hash: doc["users"][0]["hashed_passwd"].as_str().unwrap().into(),
            },
            docker: false,
            vpn: None,
            allow_tcp_forwarding: false,
        },
    )
    .unwrap();
    assert_eq!(r.stdout(), expected);
}

#[test]
fn plain_http_to_a_remote_endpoint_is_refused_so_the_token_stays_encrypted() {
    let mut b = Bin::new();
    b.env("HCLOUD_TOKEN", "test-token");
    let r = b.run(&[
        "list",
        "--provider",
        "hetzner",
        "--endpoint",
        "http://api.hetzner.cloud/v1",
    ]);
    r.expect_code(2);
    let err = r.stderr();
    assert!(err.contains("use https://"), "{err}");
    assert!(!err.contains("test-token"), "{err}");
}

#[test]
fn snapshot_run_without_provider_is_hetzner_like_list() {
    let fake = fakecloud::hetzner::FakeHetzner::start_default();
    let mut b = Bin::new();
    b.env("BOOTSTRAP_HETZNER_ENDPOINT", &fake.url());
    let r = b.run(&["snapshot", "run", "--output", "json"]);
    r.expect_code(0);
    let v: serde_json::Value = serde_json::from_str(&r.stdout()).unwrap();
    assert_eq!(v["servers"], serde_json::json!([]), "{v}");
    assert!(
        fake.request_log()
            .iter()
            .any(|(_, p, _)| p.starts_with("/v1/servers")),
        "it asked Hetzner"
    );
}

#[test]
fn quiet_still_warns_when_port_22_is_open_to_the_world() {
    let mut b = Bin::new();
    // No token: the dry run stays offline (with one it would compare with the cloud).
    b.unset("HCLOUD_TOKEN");
    let r = b.run(&[
        "-q",
        "create",
        "--provider",
        "hetzner",
        "--name",
        "demo",
        "--ssh-from",
        "any",
        "--dry-run",
    ]);
    r.expect_code(0);
    assert!(
        r.stderr().contains("open to the whole internet"),
        "{}",
        r.stderr()
    );
    // Other warnings stay quiet.
    let r = b.run(&[
        "-q",
        "create",
        "--provider",
        "hetzner",
        "--name",
        "demo",
        "--ssh-from",
        "203.0.113.7/32",
        "--image",
        "ubuntu-26.04",
        "--dry-run",
    ]);
    r.expect_code(0);
    assert!(!r.stderr().contains("warning"), "{}", r.stderr());
}
