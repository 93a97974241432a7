//! A deployment remembers where it lives: after `create`, its other commands work with just the
//! name (provider, endpoint, context and the provider's own flags come from the local state);
//! `--provider` / `BOOTSTRAP_PROVIDER` still win; without state the command asks for them.

use crate::scenario::digitalocean::DigitalOcean;
use crate::scenario::scaleway::Scaleway;
use crate::scenario::{Cloud, create};
use crate::support::Bin;

#[test]
fn after_create_the_name_alone_reaches_the_deployment() {
    let clouds: [(Box<dyn Cloud>, &[&str]); 2] = [
        (Box::new(DigitalOcean::start()), &[]),
        // A zone that is not the default: every later command must find it again.
        (Box::new(Scaleway::start()), &["--zone", "fr-par-2"]),
    ];
    for (cloud, extra) in &clouds {
        let c = cloud.as_ref();
        let b = c.bin();
        create(c, &b, "home1", "203.0.113.7/32", extra).expect_code(0);
        // The README's own lines, as written: no --provider, no --endpoint.
        let r = b.run(&[
            "snapshot",
            "set",
            "home1",
            "weekly:4",
            "--snapshot-day",
            "wed",
        ]);
        r.expect_code(0);
        assert!(r.stdout().contains("weekly"), "{}", r.stdout());
        let r = b.run(&["snapshot", "list", "home1"]);
        r.expect_code(0);
        let r = b.run(&["destroy", "home1", "--yes"]);
        r.expect_code(0);
        assert!(r.stdout().contains("removed"), "{}", r.stdout());
        assert_eq!(
            c.leftovers("home1"),
            Vec::<String>::new(),
            "{}",
            c.provider()
        );
    }
}

#[test]
fn without_state_the_command_asks_for_the_provider() {
    let b = Bin::new();
    for args in [
        &["destroy", "nowhere", "--yes"][..],
        &["snapshot", "list", "nowhere"][..],
        &["verify", "nowhere"][..],
        &["ssh", "nowhere"][..],
    ] {
        let r = b.run(args);
        r.expect_code(2);
        assert!(
            r.stderr().contains("--provider"),
            "{args:?}: {}",
            r.stderr()
        );
        assert_eq!(r.stderr().trim().lines().count(), 1, "{}", r.stderr());
    }
    let r = b.run(&[
        "create",
        "--name",
        "x",
        "--ssh-from",
        "203.0.113.7/32",
        "--dry-run",
    ]);
    r.expect_code(2);
    assert!(r.stderr().contains("--provider"), "{}", r.stderr());
}

#[test]
fn explicit_provider_wins_over_the_state() {
    let cloud = DigitalOcean::start();
    let mut b = cloud.bin();
    create(&cloud, &b, "home2", "203.0.113.7/32", &[]).expect_code(0);
    // BOOTSTRAP_PROVIDER names another cloud: that one is asked (and has no credentials here).
    b.env("BOOTSTRAP_PROVIDER", "scaleway");
    let r = b.run(&["snapshot", "list", "home2"]);
    r.expect_code(2);
    assert!(r.stderr().contains("SCW_SECRET_KEY"), "{}", r.stderr());
    let r = b.run(&["snapshot", "list", "home2", "--provider", "digitalocean"]);
    r.expect_code(0);
    b.unset("BOOTSTRAP_PROVIDER");
    b.run(&["destroy", "home2", "--yes"]).expect_code(0);
    assert!(cloud.leftovers("home2").is_empty());
}

#[test]
fn a_rerun_with_another_admin_user_prints_the_servers_real_one() {
    let cloud = crate::scenario::hetzner::Hetzner::start();
    let b = cloud.bin();
    create(&cloud, &b, "home3", "203.0.113.7/32", &[]).expect_code(0);
    let r = create(
        &cloud,
        &b,
        "home3",
        "203.0.113.7/32",
        &["--admin-user", "ops", "--server-type", "cx33"],
    );
    r.expect_code(0);
    let out = r.stdout();
    assert!(out.contains(" admin@203.0.113.1"), "{out}");
    assert!(!out.contains("ops@"), "never a wrong command: {out}");
    let err = r.stderr();
    assert!(err.contains("keeps admin user admin"), "{err}");
    assert!(err.contains("server type cpx22"), "{err}");
    assert!(err.contains("bootstrap destroy home3"), "{err}");
}

#[test]
fn verify_waits_for_ssh_while_the_server_boots() {
    let cloud = crate::scenario::hetzner::Hetzner::start();
    let b = cloud.bin();
    create(&cloud, &b, "boot1", "203.0.113.7/32", &[]).expect_code(0);
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port().to_string();
    drop(closed);
    let start = std::time::Instant::now();
    let r = b.run(&[
        "verify",
        "boot1",
        "--host",
        "127.0.0.1",
        "--port",
        &port,
        "--timeout",
        "5s",
    ]);
    r.expect_code(1);
    let waits = r
        .stderr()
        .lines()
        .filter(|l| l.starts_with("waiting for SSH on 127.0.0.1"))
        .count();
    assert_eq!(waits, 1, "said once: {}", r.stderr());
    // It tried again until --timeout, not once (the timeout is the whole budget: 5 s).
    assert!(
        start.elapsed() >= std::time::Duration::from_secs(4),
        "{}",
        r.stderr()
    );
    assert!(r.stdout().contains("cannot log in"), "{}", r.stdout());
}
