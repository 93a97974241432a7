//! Racing runs and signals (see: issue 13, findings 2 and 7).
//!
//! Three `create`s of one name start together, from one state dir (one machine) and from two
//! (two machines), against each provider's fake and moto. Exactly one server remains, every
//! run that exits 0 names it, and no rollback touches the winner's resources. Then `create`
//! gets SIGTERM, SIGHUP or SIGINT while it waits for its server: it rolls back, says so, and
//! exits 128 + the signal's number.

use std::process::Child;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::scenario::Cloud;
use crate::support::Bin;

/// The ids of the deployment's servers at the cloud (droplets, instances).
fn servers(c: &dyn Cloud, name: &str) -> Vec<String> {
    c.leftovers(name)
        .iter()
        .filter_map(|l| {
            ["server ", "droplet ", "instance "]
                .iter()
                .find_map(|k| l.strip_prefix(k))
                .map(|id| id.trim_matches('"').to_owned())
        })
        .collect()
}

fn spawn_create(c: &dyn Cloud, b: &Bin, name: &str) -> Child {
    let v = crate::scenario::create_args(
        c,
        name,
        "203.0.113.7/32",
        &["--output", "json", "--timeout", "120s"],
    );
    b.spawn(&v.iter().map(String::as_str).collect::<Vec<_>>())
}

/// Three runs at once; `bins[i % bins.len()]` is run i's machine.
fn race(c: &dyn Cloud, name: &str, bins: &[&Bin]) {
    let runs: Vec<Child> = (0..3)
        .map(|i| spawn_create(c, bins[i % bins.len()], name))
        .collect();
    let outs: Vec<_> = runs
        .into_iter()
        .map(|r| r.wait_with_output().expect("wait for bootstrap"))
        .collect();
    let report: String = outs
        .iter()
        .map(|o| {
            format!(
                "--- exit {:?}\n{}\n{}",
                o.status.code(),
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            )
        })
        .collect();
    let ids = servers(c, name);
    assert_eq!(
        ids.len(),
        1,
        "exactly one server remains: {ids:?}\n{report}"
    );
    let winner = &ids[0];
    let mut ok = 0;
    for o in &outs {
        match o.status.code() {
            Some(0) => {
                ok += 1;
                let v: Value = serde_json::from_slice(&o.stdout).expect("json");
                let named = v["server"]["id"]
                    .as_str()
                    .map_or_else(|| v["server"]["id"].to_string(), str::to_owned);
                assert_eq!(
                    &named, winner,
                    "a run that exits 0 names the winner\n{report}"
                );
            }
            Some(1) => {
                let err = String::from_utf8_lossy(&o.stderr);
                assert!(
                    !err.contains(&format!("({winner})")) || err.contains("another run"),
                    "a losing run names the winner only as the winner\n{report}"
                );
            }
            code => panic!("exit {code:?}\n{report}"),
        }
    }
    assert!(ok >= 1, "some run must win\n{report}");
    // The winner's deployment is whole: nobody's rollback took its firewall or key.
    assert!(c.complete(name), "{:?}\n{report}", c.leftovers(name));
    crate::scenario::destroy(c, bins[0], name, &[]).expect_code(0);
    assert!(c.leftovers(name).is_empty(), "{:?}", c.leftovers(name));
}

fn from_one_machine(c: &dyn Cloud) {
    let b = c.bin();
    race(c, "race1", &[&b]);
}

fn from_two_machines(c: &dyn Cloud) {
    let (a, b) = (c.bin(), c.bin());
    race(c, "race2", &[&a, &b]);
}

#[test]
fn hetzner_racing_creates_leave_one_server() {
    let c = crate::scenario::hetzner::Hetzner::start();
    from_one_machine(&c);
    from_two_machines(&c);
}

#[test]
fn digitalocean_racing_creates_leave_one_server() {
    let c = crate::scenario::digitalocean::DigitalOcean::start();
    from_one_machine(&c);
    from_two_machines(&c);
}

#[test]
fn scaleway_racing_creates_leave_one_server() {
    let c = crate::scenario::scaleway::Scaleway::start();
    from_one_machine(&c);
    from_two_machines(&c);
}

#[cfg(feature = "aws")]
#[test]
fn aws_racing_creates_leave_one_server() {
    let c = crate::scenario::aws::Aws::start();
    from_one_machine(&c);
    from_two_machines(&c);
}

/// A second run on the same machine waits for the first and then finds its deployment.
#[test]
fn a_second_run_on_one_machine_waits_for_the_lock_and_says_whose_it_is() {
    let c = crate::scenario::hetzner::Hetzner::start();
    let b = c.bin();
    // The first run's server create answers after 3 s, so that it surely holds the lock when
    // the second starts (a create on its critical path is otherwise done in a blink).
    c.kit().fail_matching(
        "POST",
        "/servers",
        fakecloud::Fault::Delay(Duration::from_secs(3)),
        1,
    );
    let first = spawn_create(&c, &b, "lock1");
    // The first holds the lock once its lock file names it.
    let lock = b.state_dir().join("hetzner").join(".lock1.lock");
    let until = Instant::now() + Duration::from_secs(30);
    while std::fs::read_to_string(&lock).map_or(true, |s| s.trim().is_empty()) {
        assert!(Instant::now() < until, "no lock file at {}", lock.display());
        std::thread::sleep(Duration::from_millis(20));
    }
    let second = spawn_create(&c, &b, "lock1").wait_with_output().unwrap();
    let first = first.wait_with_output().unwrap();
    assert_eq!(first.status.code(), Some(0));
    assert_eq!(second.status.code(), Some(0));
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(
        err.contains(&format!("pid {}", first_pid(&lock))) || err.contains("another bootstrap run"),
        "{err}"
    );
    let id = |o: &std::process::Output| {
        serde_json::from_slice::<Value>(&o.stdout).unwrap()["server"]["id"].clone()
    };
    assert_eq!(id(&first), id(&second));
    assert_eq!(servers(&c, "lock1").len(), 1);
}

fn first_pid(lock: &std::path::Path) -> String {
    std::fs::read_to_string(lock)
        .unwrap_or_default()
        .trim()
        .to_owned()
}

/// SIGTERM, SIGHUP and SIGINT mid-create: the same rollback as Ctrl-C, then 128 + signal.
#[test]
fn a_signal_mid_create_rolls_back_and_exits_with_its_code() {
    use fakecloud::Pace;
    use fakecloud::hetzner::{FakeConfig, FakeHetzner};
    // Actions take 3 s, so the signal lands while the run waits for its server to start.
    let c = crate::scenario::hetzner::Hetzner(FakeHetzner::start(FakeConfig {
        pace: Pace::Wall(Duration::from_secs(3)),
        ..FakeConfig::default()
    }));
    for (sig, code, name) in [
        ("TERM", 143, "SIGTERM"),
        ("HUP", 129, "SIGHUP"),
        ("INT", 130, "SIGINT"),
    ] {
        let b = c.bin();
        let d = format!("sig-{}", sig.to_lowercase());
        let child = spawn_create(&c, &b, &d);
        let until = Instant::now() + Duration::from_secs(30);
        while servers(&c, &d).is_empty() {
            assert!(Instant::now() < until, "no server was created");
            std::thread::sleep(Duration::from_millis(20));
        }
        let killed = std::process::Command::new("kill")
            .args([&format!("-{sig}"), &child.id().to_string()])
            .status()
            .unwrap();
        assert!(killed.success());
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{err}");
        assert!(err.contains(&format!("interrupted by {name}")), "{err}");
        assert!(err.contains("rolled back: removed"), "{err}");
        assert!(c.leftovers(&d).is_empty(), "{:?}\n{err}", c.leftovers(&d));
        assert!(
            !b.key_path("hetzner", &d).exists(),
            "the generated key stayed"
        );
    }
}
