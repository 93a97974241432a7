//! One scenario suite for every cloud: the same commands, the same promises, run against each
//! provider's stateful fake on the kit (and moto for AWS). A provider plugs in by implementing
//! [`Cloud`] and adding one `#[test]` per scenario in its module.
//!
//! - [`lifecycle`]: create, list, a re-run that duplicates nothing, a new `--ssh-from` that
//!   moves the SSH rule, destroy, list again.
//! - [`snapshot_days`]: the job over four simulated days with `daily:2`: exactly the two newest
//!   remain, the oldest went, an image the job must never touch (a provider backup, or an image
//!   without our labels) is untouched; `destroy --delete-snapshots` leaves nothing labelled.
//! - [`fault_matrix_create`] and [`fault_matrix_destroy`]: every API call of create (and of
//!   destroy) fails in turn with an error status, a dropped connection, and a drop after the
//!   work. After the command, and after the `bootstrap destroy` it prints, either nothing of
//!   the deployment remains or all of it is there.

#![allow(dead_code)]

#[cfg(feature = "aws")]
pub mod aws;
pub mod digitalocean;
pub mod hetzner;
pub mod scaleway;

use fakecloud::Fault;
use serde_json::Value;

use crate::support::{Bin, Run, printed_destroy};

/// A cloud the suite runs against.
pub trait Cloud {
    /// `--provider` value.
    fn provider(&self) -> &'static str;
    /// A binary environment that reaches this cloud (credentials, state dir).
    fn bin(&self) -> Bin;
    /// Flags that point every command at this cloud (`--endpoint URL`, `--region ...`).
    fn connect_flags(&self) -> Vec<String>;
    /// Extra `create` flags this cloud needs in the suite (e.g. `--snapshot-engine job`).
    fn create_flags(&self) -> Vec<String> {
        Vec::new()
    }
    /// The kit server every request goes through: its faults and its log.
    fn kit(&self) -> &fakecloud::Server;
    /// An error status in this API's own words (`500 server_error`).
    fn server_error(&self) -> Fault;
    /// Everything of `deployment` that still exists, snapshots included, one line each.
    fn leftovers(&self, deployment: &str) -> Vec<String>;
    /// Whether the whole deployment is there: a running server, its firewall, its key where the
    /// cloud has key resources.
    fn complete(&self, deployment: &str) -> bool;
    /// The sources TCP 22 is open to at the cloud firewall, sorted.
    fn ssh_sources(&self, deployment: &str) -> Vec<String>;
    /// The slots of our snapshots of `deployment`, sorted.
    fn snapshot_slots(&self, deployment: &str) -> Vec<String>;
    /// Adds an image of `deployment`'s server that the job must never delete (a provider
    /// backup, or an image without our labels); returns its id.
    fn add_untouchable_image(&self, deployment: &str) -> String;
    /// Whether an image with this id still exists.
    fn image_exists(&self, id: &str) -> bool;
    /// Whether the untouchable image outlives its server (a Hetzner backup goes with it).
    fn untouchable_outlives_server(&self) -> bool {
        true
    }
    /// Waits between two simulated days where the cloud orders images by a coarse clock.
    fn between_days(&self) {}
    /// The credential the binary gets, where it is distinctive enough to look for in output.
    fn secret(&self) -> Option<&'static str> {
        None
    }
}

const V4: &str = "203.0.113.7/32";
const V4_NEW: &str = "198.51.100.9/32";

fn args<'a>(base: &[&'a str], more: &'a [String]) -> Vec<&'a str> {
    let mut v = base.to_vec();
    v.extend(more.iter().map(String::as_str));
    v
}

/// The arguments of `bootstrap create` of `name` from `ssh_from`, with the cloud's flags and
/// `extra`; shared by [`create`] and the tests that spawn it.
pub fn create_args(c: &dyn Cloud, name: &str, ssh_from: &str, extra: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = [
        "create",
        "--provider",
        c.provider(),
        "--name",
        name,
        "--ssh-from",
        ssh_from,
    ]
    .map(str::to_owned)
    .to_vec();
    v.extend(c.connect_flags());
    v.extend(c.create_flags());
    v.extend(extra.iter().map(|s| (*s).to_owned()));
    v
}

/// `bootstrap create` of `name` from `ssh_from`, with the cloud's flags and `extra`.
pub fn create(c: &dyn Cloud, b: &Bin, name: &str, ssh_from: &str, extra: &[&str]) -> Run {
    let v = create_args(c, name, ssh_from, extra);
    b.run(&v.iter().map(String::as_str).collect::<Vec<_>>())
}

/// `bootstrap destroy NAME --yes` with the cloud's flags and `extra`.
pub fn destroy(c: &dyn Cloud, b: &Bin, name: &str, extra: &[&str]) -> Run {
    let conn = c.connect_flags();
    let mut v = args(
        &["destroy", name, "--provider", c.provider(), "--yes"],
        &conn,
    );
    v.extend_from_slice(extra);
    b.run(&v)
}

/// The deployment names `bootstrap list --output json` shows.
pub fn listed(c: &dyn Cloud, b: &Bin) -> Vec<String> {
    let conn = c.connect_flags();
    let r = b.run(&args(
        &["list", "--provider", c.provider(), "--output", "json"],
        &conn,
    ));
    r.expect_code(0);
    let v: Value = serde_json::from_str(&r.stdout()).unwrap();
    let items = v
        .as_array()
        .or_else(|| v["deployments"].as_array())
        .cloned()
        .unwrap_or_default();
    items
        .iter()
        .filter_map(|d| d["name"].as_str().map(str::to_owned))
        .collect()
}

/// Create, list, re-run, a new `--ssh-from`, destroy.
pub fn lifecycle(c: &dyn Cloud) {
    let b = c.bin();
    let name = "life1";
    create(c, &b, name, V4, &[]).expect_code(0);
    assert!(c.complete(name), "{:?}", c.leftovers(name));
    assert!(listed(c, &b).contains(&name.to_owned()));
    assert_eq!(c.ssh_sources(name), [V4]);
    let made = c.leftovers(name);

    // A re-run makes nothing new.
    create(c, &b, name, V4, &[]).expect_code(0);
    assert_eq!(c.leftovers(name), made, "a re-run duplicated something");

    // A new address: the SSH rule moves, nothing else is made.
    let r = create(c, &b, name, V4_NEW, &[]);
    r.expect_code(0);
    assert!(r.stderr().contains(V4), "says what it was: {}", r.stderr());
    assert_eq!(c.ssh_sources(name), [V4_NEW]);
    assert_eq!(c.leftovers(name), made);

    destroy(c, &b, name, &[]).expect_code(0);
    assert!(c.leftovers(name).is_empty(), "{:?}", c.leftovers(name));
    assert!(!listed(c, &b).contains(&name.to_owned()));
    // Idempotent.
    destroy(c, &b, name, &[]).expect_code(0);
}

/// Four days of `daily:2`, then `destroy --delete-snapshots`.
pub fn snapshot_days(c: &dyn Cloud) {
    let b = c.bin();
    let name = "snap1";
    create(
        c,
        &b,
        name,
        V4,
        &["--snapshots", "daily:2", "--snapshot-time", "03:00"],
    )
    .expect_code(0);
    let untouchable = c.add_untouchable_image(name);
    let conn = c.connect_flags();
    let days = [
        "2026-11-25T04:00:00Z",
        "2026-11-26T04:00:00Z",
        "2026-11-27T04:00:00Z",
        "2026-11-28T04:00:00Z",
    ];
    for (i, at) in days.iter().enumerate() {
        if i > 0 {
            c.between_days();
        }
        let job = args(
            &[
                "snapshot",
                "run",
                "--provider",
                c.provider(),
                "--at",
                at,
                "--output",
                "json",
            ],
            &conn,
        );
        b.run(&job).expect_code(0);
        // A second run in the same slot creates nothing.
        let again = b.run(&job);
        again.expect_code(0);
        let v: Value = serde_json::from_str(&again.stdout()).unwrap();
        let ours: Vec<_> = v["servers"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|s| s["deployment"] == name)
            .collect();
        assert_eq!(ours.len(), 1, "{v}");
        assert_eq!(ours[0]["result"], "up_to_date", "{v}");
    }
    assert_eq!(
        c.snapshot_slots(name),
        ["20261127T0300Z", "20261128T0300Z"],
        "exactly the two newest remain"
    );
    assert!(
        c.image_exists(&untouchable),
        "the job touched {untouchable}"
    );

    // `snapshot list` shows them.
    let r = b.run(&args(
        &["snapshot", "list", name, "--provider", c.provider()],
        &conn,
    ));
    r.expect_code(0);
    assert!(r.stdout().contains("20261128T0300Z"), "{}", r.stdout());

    destroy(c, &b, name, &["--delete-snapshots"]).expect_code(0);
    assert!(c.leftovers(name).is_empty(), "{:?}", c.leftovers(name));
    assert!(c.snapshot_slots(name).is_empty());
    if c.untouchable_outlives_server() {
        assert!(
            c.image_exists(&untouchable),
            "destroy touched {untouchable}"
        );
    }
}

/// The three faults of the matrix.
fn faults(c: &dyn Cloud) -> [Fault; 3] {
    [c.server_error(), Fault::Drop, Fault::DropAfter]
}

/// A binary that fails on the first error, so that each injected fault really stops the flow.
fn strict(c: &dyn Cloud) -> Bin {
    let mut b = c.bin();
    b.env("BOOTSTRAP_RETRY_MAX", "0");
    b
}

/// Waits in the matrices are bounded well below the default 10 minutes: a wait that hangs
/// fails the test quickly instead of stalling the suite.
const MATRIX_TIMEOUT: [&str; 2] = ["--timeout", "90s"];

/// After a failed command: the printed `bootstrap destroy` (if any) runs as printed.
fn finish_with_printed_destroy(b: &Bin, err: &str) {
    if let Some(cmd) = printed_destroy(err) {
        let a: Vec<&str> = cmd.iter().map(String::as_str).collect();
        b.run(&a).expect_code(0);
    }
}

/// How many requests a clean run of `f` makes.
fn calls_of(c: &dyn Cloud, f: impl FnOnce()) -> u64 {
    let before = c.kit().request_count();
    f();
    c.kit().request_count() - before
}

/// Every call of `create` fails in turn.
pub fn fault_matrix_create(c: &dyn Cloud, prefix: &str) {
    let b = strict(c);
    let probe = format!("{prefix}-probe");
    let calls = calls_of(c, || {
        create(c, &b, &probe, V4, &[]).expect_code(0);
    });
    destroy(c, &b, &probe, &[]).expect_code(0);
    assert!(calls >= 5, "create made {calls} calls");
    let mut failed = 0;
    for (k, fault) in faults(c).into_iter().enumerate() {
        for i in 1..=calls {
            let name = format!("{prefix}-c{k}-{i}");
            c.kit().fail_request(c.kit().request_count() + i, fault);
            let r = create(c, &b, &name, V4, &MATRIX_TIMEOUT);
            c.kit().clear_faults();
            match r.code() {
                0 => assert!(
                    c.complete(&name),
                    "{fault:?} on call {i}: exit 0 but incomplete: {:?}",
                    c.leftovers(&name)
                ),
                1 => {
                    failed += 1;
                    let err = r.stderr();
                    assert!(
                        ["rolled back", "nothing had been created", "rollback failed"]
                            .iter()
                            .any(|w| err.contains(w)),
                        "{fault:?} on call {i}: says what became of the run: {err}"
                    );
                    if let Some(secret) = c.secret() {
                        assert!(!err.contains(secret), "the token leaked: {err}");
                    }
                    finish_with_printed_destroy(&b, &err);
                    assert!(
                        c.leftovers(&name).is_empty(),
                        "{fault:?} on call {i} left {:?}\n{}",
                        c.leftovers(&name),
                        r.stderr()
                    );
                    assert!(
                        !b.key_path(c.provider(), &name).exists(),
                        "{fault:?} on call {i}: the generated key stayed"
                    );
                }
                code => panic!("{fault:?} on call {i}: exit {code}\n{}", r.stderr()),
            }
            // Whatever happened, the deployment goes again (and must be able to).
            destroy(c, &b, &name, &[]).expect_code(0);
            assert!(c.leftovers(&name).is_empty(), "{:?}", c.leftovers(&name));
        }
    }
    assert!(failed > 0, "no injected fault ever stopped create");
}

/// Every call of `destroy` fails in turn; the printed command, or a second destroy, finishes.
pub fn fault_matrix_destroy(c: &dyn Cloud, prefix: &str) {
    let b = strict(c);
    let probe = format!("{prefix}-probe");
    create(c, &b, &probe, V4, &[]).expect_code(0);
    let calls = calls_of(c, || {
        destroy(c, &b, &probe, &[]).expect_code(0);
    });
    assert!(calls >= 4, "destroy made {calls} calls");
    let mut failed = 0;
    for (k, fault) in faults(c).into_iter().enumerate() {
        for i in 1..=calls {
            let name = format!("{prefix}-d{k}-{i}");
            create(c, &b, &name, V4, &[]).expect_code(0);
            c.kit().fail_request(c.kit().request_count() + i, fault);
            let r = destroy(c, &b, &name, &MATRIX_TIMEOUT);
            c.kit().clear_faults();
            match r.code() {
                0 => {}
                1 => {
                    failed += 1;
                    // A destroy is its own rollback: the same command again finishes it.
                    destroy(c, &b, &name, &MATRIX_TIMEOUT).expect_code(0);
                }
                code => panic!("{fault:?} on call {i}: exit {code}\n{}", r.stderr()),
            }
            assert!(
                c.leftovers(&name).is_empty(),
                "{fault:?} on call {i} of destroy left {:?}\n{}",
                c.leftovers(&name),
                r.stderr()
            );
        }
    }
    assert!(failed > 0, "no injected fault ever stopped destroy");
}
