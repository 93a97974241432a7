//! Flow tests on the in-memory provider: ordering, idempotency, rollback after every possible
//! failing call (before and after the work was done), Ctrl-C, and shared keys.

use std::time::Duration;

use super::*;
use crate::model::{FirewallRule, LABEL_SSH_KEY, Protocol};
use crate::poll::PollConfig;
use crate::progress::Silent;
use crate::testing::{FakeProvider, Fault};
use crate::{
    DeploymentName, FirewallSpec, Labels, PublicKeyInfo, ServerSpec, ServerStatus, SshKeySpec,
};

fn cfg() -> FlowConfig {
    FlowConfig {
        retry: RetryConfig {
            max_retries: 0,
            base: Duration::from_millis(1),
            cap: Duration::from_millis(2),
        },
        poll: PollConfig {
            initial: Duration::from_millis(1),
            max: Duration::from_millis(2),
        },
        timeout: Duration::from_secs(5),
    }
}

fn key(n: u8) -> PublicKeyInfo {
    PublicKeyInfo {
        openssh: format!("ssh-ed25519 AAAA{n}"),
        md5: format!("00:{n:02x}"),
        sha256: format!("SHA256:{n}"),
    }
}

fn plan(name: &str, k: PublicKeyInfo) -> CreatePlan {
    let d = DeploymentName::parse(name).unwrap();
    let labels = Labels::deployment(&d);
    CreatePlan {
        ssh_key: SshKeySpec {
            name: format!("bootstrap-{name}"),
            key: k,
            labels: labels.clone(),
        },
        firewall: FirewallSpec {
            name: format!("bootstrap-{name}"),
            inbound: vec![FirewallRule {
                protocol: Protocol::Tcp,
                port: 22,
                sources: vec!["203.0.113.7/32".parse().unwrap()],
                description: "SSH".into(),
            }],
            labels: labels.clone(),
        },
        server: ServerSpec {
            name: name.into(),
            server_type: "t".into(),
            image: "i".into(),
            location: "l".into(),
            user_data: "#cloud-config\n".into(),
            ssh_key_ids: vec![],
            firewall_ids: vec![],
            labels,
        },
        deployment: d,
        provider_backups: false,
        check_options: true,
    }
}

async fn run_create(p: &FakeProvider, pl: &CreatePlan) -> Result<CreateOutcome, CreateFailure> {
    create(p, pl, &cfg(), &Silent, std::future::pending()).await
}

#[tokio::test]
async fn create_then_rerun_makes_nothing_new_then_destroy_twice() {
    let p = FakeProvider::new();
    let pl = plan("web1", key(1));
    let o = run_create(&p, &pl).await.unwrap();
    assert_eq!(o.server.status, ServerStatus::Running);
    assert_eq!(o.created.len(), 3);
    assert_eq!(
        o.server.labels.get(LABEL_SSH_KEY),
        Some(o.ssh_key.as_ref().unwrap().id.as_str())
    );
    let sel = Labels::deployment(&pl.deployment);
    assert_eq!(p.count(&sel), 3);

    let again = run_create(&p, &pl).await.unwrap();
    assert!(again.created.is_empty(), "{:?}", again.created);
    assert_eq!(again.server.id, o.server.id);
    assert_eq!(p.count(&sel), 3);
    assert!(
        !p.calls()
            .iter()
            .skip_while(|c| *c != "get_server")
            .any(|c| c.starts_with("create_"))
    );

    let t = destroy(&p, &pl.deployment, &cfg(), &Silent, Snapshots::Keep)
        .await
        .unwrap();
    let kinds: Vec<_> = t.removed.iter().map(|r| r.kind).collect();
    assert_eq!(
        kinds,
        ["server", "firewall", "ssh_key"],
        "server first, key last"
    );
    assert_eq!(p.count(&sel), 0);
    let t = destroy(&p, &pl.deployment, &cfg(), &Silent, Snapshots::Keep)
        .await
        .unwrap();
    assert!(t.removed.is_empty());
}

#[tokio::test]
async fn a_rerun_with_new_sources_updates_the_firewall_and_keeps_other_ports() {
    let p = FakeProvider::new();
    let mut pl = plan("web1", key(1));
    run_create(&p, &pl).await.unwrap();
    let fw_id = p.firewalls()[0].id.clone();
    // Someone opened HTTPS on the same firewall by hand.
    let https = FirewallRule {
        protocol: Protocol::Tcp,
        port: 443,
        sources: vec!["0.0.0.0/0".parse().unwrap()],
        description: "HTTPS".into(),
    };
    let mut with_https = p.firewalls()[0].clone();
    with_https.inbound.push(https.clone());
    p.update_firewall_rules(&with_https, std::slice::from_ref(&https))
        .await
        .unwrap();

    // The owner's address changed.
    pl.firewall.inbound[0].sources = vec!["198.51.100.0/24".parse().unwrap()];
    let o = run_create(&p, &pl).await.unwrap();
    assert!(o.created.is_empty());
    let fws = p.firewalls();
    assert_eq!(fws.len(), 1, "no second firewall");
    assert_eq!(fws[0].id, fw_id);
    let ssh: Vec<_> = fws[0].inbound.iter().filter(|r| r.port == 22).collect();
    assert_eq!(ssh.len(), 1);
    assert_eq!(
        ssh[0].sources,
        vec!["198.51.100.0/24".parse::<ipnet::IpNet>().unwrap()],
        "the old address lost access"
    );
    assert!(fws[0].inbound.contains(&https), "other ports stay");
    assert_eq!(o.firewall.inbound, fws[0].inbound);

    // Same sources again: no update call.
    let before = p.calls().len();
    run_create(&p, &pl).await.unwrap();
    assert!(
        !p.calls()[before..]
            .iter()
            .any(|c| c == "update_firewall_rules")
    );
}

#[tokio::test]
async fn a_new_server_not_visible_yet_is_waited_for_not_rolled_back() {
    let p = FakeProvider::new();
    p.hide_servers_for(3);
    let o = run_create(&p, &plan("web1", key(1))).await.unwrap();
    assert_eq!(o.server.status, ServerStatus::Running);
    assert_eq!(o.created.len(), 3);
    let gets = p.calls().iter().filter(|c| *c == "get_server").count();
    assert!(gets >= 4, "{gets} get_server calls");
}

#[tokio::test]
async fn a_server_that_never_shows_up_times_out_and_is_rolled_back() {
    let p = FakeProvider::new();
    p.hide_servers_for(u32::MAX);
    let pl = plan("web1", key(1));
    let mut c = cfg();
    c.timeout = Duration::from_millis(300);
    let e = create(&p, &pl, &c, &Silent, std::future::pending())
        .await
        .expect_err("create fails");
    assert!(e.error.to_string().contains("to be running"), "{}", e.error);
    assert!(e.rollback.is_ok());
    assert_eq!(p.count(&Labels::deployment(&pl.deployment)), 0);
}

#[tokio::test]
async fn a_rerun_with_another_key_says_the_deployment_has_its_own() {
    let p = FakeProvider::new();
    run_create(&p, &plan("web1", key(1))).await.unwrap();
    // The state dir was lost: a new key, same name.
    let e = run_create(&p, &plan("web1", key(2)))
        .await
        .expect_err("refused");
    let msg = e.error.to_string();
    assert!(msg.contains("--ssh-key"), "{msg}");
    assert!(!msg.contains("not this deployment's"), "{msg}");
    assert_eq!(e.error.kind(), &ErrorKind::InvalidInput);
    assert_eq!(
        p.count(&Labels::deployment(&DeploymentName::parse("web1").unwrap())),
        3
    );
}

/// The calls a clean create makes, to fail each in turn.
async fn create_call_count() -> usize {
    let p = FakeProvider::new();
    run_create(&p, &plan("probe", key(9))).await.unwrap();
    p.calls().len()
}

#[tokio::test]
async fn any_failing_call_leaves_nothing_behind() {
    let n = create_call_count().await;
    assert!(n >= 8, "{n}");
    for fault in [Fault::Before, Fault::After] {
        for i in 1..=n {
            let p = FakeProvider::new();
            p.fail_call(i, fault);
            let pl = plan("web1", key(1));
            let r = run_create(&p, &pl).await;
            let sel = Labels::managed();
            match r {
                // A fault on a read that the flow re-does may be absorbed; then all must exist.
                Ok(_) => assert_eq!(p.count(&sel), 3, "call {i} {fault:?}"),
                Err(f) => {
                    let t = f
                        .rollback
                        .unwrap_or_else(|e| panic!("call {i} {fault:?}: rollback failed: {e}"));
                    assert_eq!(
                        p.count(&sel),
                        0,
                        "call {i} {fault:?} left {:?} (removed {:?})",
                        p.calls(),
                        t.removed
                    );
                }
            }
        }
    }
}

#[tokio::test]
async fn ctrl_c_rolls_back_what_this_run_made() {
    // The server never finishes starting; Ctrl-C arrives while the flow waits for it.
    let p = FakeProvider::with_polls(u32::MAX, 1);
    let pl = plan("web1", key(1));
    let cancel = tokio::time::sleep(Duration::from_millis(100));
    let mut c = cfg();
    c.timeout = Duration::from_secs(60);
    let f = create(&p, &pl, &c, &Silent, cancel).await.unwrap_err();
    assert_eq!(f.error.kind(), &ErrorKind::Cancelled);
    let removed: Vec<_> = f
        .rollback
        .unwrap()
        .removed
        .into_iter()
        .map(|r| r.kind)
        .collect();
    assert_eq!(removed, ["server", "firewall", "ssh_key"]);
    assert_eq!(p.count(&Labels::managed()), 0);
}

#[tokio::test]
async fn a_timeout_names_what_it_waited_for_and_rolls_back() {
    let p = FakeProvider::with_polls(u32::MAX, 1);
    let mut c = cfg();
    c.timeout = Duration::from_millis(200);
    let f = create(
        &p,
        &plan("web1", key(1)),
        &c,
        &Silent,
        std::future::pending(),
    )
    .await
    .unwrap_err();
    assert_eq!(f.error.kind(), &ErrorKind::Timeout);
    assert!(f.error.to_string().contains("create_server"), "{}", f.error);
    assert!(f.rollback.is_ok());
    assert_eq!(p.count(&Labels::managed()), 0);
}

#[tokio::test]
async fn rollback_leaves_what_existed_before_the_run() {
    let p = FakeProvider::new();
    let pl = plan("web1", key(1));
    run_create(&p, &pl).await.unwrap();
    // The server is deleted by hand; the re-run must recreate it, and when that fails, it must
    // not touch the firewall and key that the first run made.
    let sel = Labels::deployment(&pl.deployment);
    let s = p.list_servers(&sel).await.unwrap();
    let ops = p.delete_server(&s[0].id).await.unwrap();
    wait_operations(
        &p,
        &ops,
        &cfg(),
        tokio::time::Instant::now() + Duration::from_secs(5),
    )
    .await
    .unwrap();
    assert_eq!(p.count(&sel), 2);
    p.fail_next("create_server", Fault::After);
    let f = run_create(&p, &pl).await.unwrap_err();
    assert!(
        f.error
            .to_string()
            .contains("injected failure of create_server"),
        "{}",
        f.error
    );
    let removed: Vec<_> = f
        .rollback
        .unwrap()
        .removed
        .into_iter()
        .map(|r| r.kind)
        .collect();
    assert_eq!(
        removed,
        ["server"],
        "only what this run made (its answer was lost)"
    );
    assert_eq!(p.count(&sel), 2, "first run's key and firewall stay");
}

#[tokio::test]
async fn a_key_used_by_another_deployment_is_kept() {
    let p = FakeProvider::new();
    let k = key(1);
    let a = run_create(&p, &plan("a", k.clone())).await.unwrap();
    let b = run_create(&p, &plan("b", k)).await.unwrap();
    assert_eq!(
        a.ssh_key.unwrap().id,
        b.ssh_key.unwrap().id,
        "same fingerprint: reused, not uploaded twice"
    );
    assert!(b.created.iter().all(|r| r.kind != "ssh_key"));
    let t = destroy(
        &p,
        &DeploymentName::parse("a").unwrap(),
        &cfg(),
        &Silent,
        Snapshots::Keep,
    )
    .await
    .unwrap();
    assert_eq!(t.kept.len(), 1, "{t:?}");
    assert!(t.kept[0].1.contains('b'));
    assert!(t.removed.iter().all(|r| r.kind != "ssh_key"));
}

#[tokio::test]
async fn foreign_key_is_reused_and_never_deleted() {
    let p = FakeProvider::new();
    let k = key(3);
    let id = p.add_foreign_key(&k, "laptop");
    let pl = plan("web1", k);
    let o = run_create(&p, &pl).await.unwrap();
    assert_eq!(o.ssh_key.unwrap().id, id);
    destroy(&p, &pl.deployment, &cfg(), &Silent, Snapshots::Keep)
        .await
        .unwrap();
    assert_eq!(p.count(&Labels::new()), 1, "the user's own key stays");
}

#[tokio::test]
async fn a_foreign_firewall_with_our_name_is_a_clear_conflict() {
    let p = FakeProvider::new();
    p.add_foreign_firewall("bootstrap-web1");
    let f = run_create(&p, &plan("web1", key(1))).await.unwrap_err();
    assert_eq!(f.error.kind(), &ErrorKind::Conflict);
    assert!(f.error.to_string().contains("firewall"), "{}", f.error);
    assert_eq!(
        p.count(&Labels::managed()),
        0,
        "the key made meanwhile was rolled back"
    );
}

// --- The four-clouds interface on the in-memory provider -------------------------------------

use crate::describe::{Description, Ownership, OwnershipModel};
use crate::schedule::{LABEL_SLOT, Schedule};
use crate::testing::FAKE_DESCRIPTION;
use crate::{Firewall, Snapshot, SnapshotStatus};

/// Scaleway's shape: no key resource (the key goes in through cloud-init).
static NO_KEY: Description = Description {
    key_resource: false,
    ..FAKE_DESCRIPTION
};

/// DigitalOcean's shape: firewalls and keys are ours by name only.
static BY_NAME: Description = Description {
    ownership: OwnershipModel {
        ssh_key: Ownership::Name,
        firewall: Ownership::Name,
        server: Ownership::FlatTags(':'),
        snapshot: Ownership::FlatTags(':'),
    },
    ..FAKE_DESCRIPTION
};

fn fake(desc: &'static Description) -> FakeProvider {
    FakeProvider::new().describing(desc)
}

#[tokio::test]
async fn without_a_key_resource_nothing_is_uploaded_and_teardown_needs_none() {
    let p = fake(&NO_KEY);
    let pl = plan("web1", key(1));
    let o = run_create(&p, &pl).await.unwrap();
    assert!(o.ssh_key.is_none());
    assert_eq!(o.server.labels.get(LABEL_SSH_KEY), None);
    assert!(
        !p.calls().iter().any(|c| c.contains("ssh_key")),
        "{:?}",
        p.calls()
    );
    let kinds: Vec<_> = o.created.iter().map(|r| r.kind).collect();
    assert_eq!(kinds, ["firewall", "server"]);
    let t = destroy(&p, &pl.deployment, &cfg(), &Silent, Snapshots::Keep)
        .await
        .unwrap();
    let kinds: Vec<_> = t.removed.iter().map(|r| r.kind).collect();
    assert_eq!(kinds, ["server", "firewall"]);
    assert_eq!(p.count(&Labels::managed()), 0);
}

#[tokio::test]
async fn a_server_created_stopped_is_completed_also_by_a_rerun_and_rolled_back_if_that_fails() {
    let p = FakeProvider::new().completing();
    let pl = plan("web1", key(1));
    let o = run_create(&p, &pl).await.unwrap();
    assert_eq!(o.server.status, ServerStatus::Running);
    assert!(!p.is_incomplete(&o.server.id));

    // A run that died after the create: the server is there, stopped, without user-data.
    let q = FakeProvider::new().completing();
    q.fail_next("complete_server", Fault::Before);
    let failed = run_create(&q, &pl).await.unwrap_err();
    assert!(failed.error.to_string().contains("complete_server"));
    assert_eq!(
        q.count(&Labels::managed()),
        0,
        "the rollback removed the half-made server too"
    );

    // A re-run that finds an incomplete server (its first run lost) completes it, not waits.
    let r = FakeProvider::new().completing();
    let half = r.create_server(&pl.server).await.unwrap().resource;
    assert!(r.is_incomplete(&half.id));
    let again = run_create(&r, &pl).await.unwrap();
    assert_eq!(again.server.status, ServerStatus::Running);
    assert!(
        !again.created.iter().any(|c| c.kind == "server"),
        "found, not made"
    );
}

#[tokio::test]
async fn name_owned_resources_are_ours_only_where_every_readable_label_agrees() {
    let p = fake(&BY_NAME);
    let pl = plan("web1", key(1));
    // Name-owned kinds carry no labels at the provider.
    let mut unlabelled = pl.clone();
    unlabelled.firewall.labels = Labels::new();
    unlabelled.ssh_key.labels = Labels::new();
    run_create(&p, &unlabelled).await.unwrap();
    let listed = list(&p, &cfg()).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].firewalls.len(), 1, "found by its name");
    assert_eq!(listed[0].ssh_keys.len(), 1);

    // A firewall named like web2's but pointing at another deployment is not web2's.
    p.add_foreign_firewall("bootstrap-web2");
    let foreign: Vec<Firewall> = p.firewalls();
    let web2 = DeploymentName::parse("web2").unwrap();
    assert!(crate::describe::is_ours(
        Ownership::Name,
        "bootstrap-web2",
        &foreign[foreign.len() - 1].labels,
        &Labels::deployment(&web2)
    ));
    let mut other = Labels::new();
    other.insert(crate::model::LABEL_DEPLOYMENT, "web3");
    assert!(!crate::describe::is_ours(
        Ownership::Name,
        "bootstrap-web2",
        &other,
        &Labels::deployment(&web2)
    ));

    destroy(&p, &pl.deployment, &cfg(), &Silent, Snapshots::Keep)
        .await
        .unwrap();
    let names: Vec<_> = p.firewalls().into_iter().map(|f| f.name).collect();
    assert_eq!(names, ["bootstrap-web2"], "only web1's firewall went");
}

fn job_cfg() -> FlowConfig {
    FlowConfig {
        retry: RetryConfig {
            max_retries: 2,
            ..cfg().retry
        },
        ..cfg()
    }
}

fn at(day: i64) -> time::OffsetDateTime {
    time::macros::datetime!(2026-11-25 03:30 UTC) + time::Duration::days(day)
}

async fn run_job(p: &FakeProvider, day: i64) -> Vec<ServerReport> {
    let opts = JobOptions {
        at: at(day),
        dry_run: false,
        concurrency: 4,
    };
    snapshot_run(p, &job_cfg(), &opts, &Silent).await.unwrap()
}

/// A running server of `name` with a `daily:KEEP` schedule at 03:00.
async fn scheduled(p: &FakeProvider, name: &str, keep: u32) -> CreateOutcome {
    let mut pl = plan(name, key(name.len() as u8));
    let sched = Schedule::parse(
        &format!("daily:{keep}"),
        crate::schedule::parse_time("03:00").unwrap(),
        crate::schedule::parse_weekday("sun").unwrap(),
    )
    .unwrap()
    .unwrap();
    for (k, v) in sched.to_labels().iter() {
        pl.server.labels.insert(k, v);
    }
    run_create(p, &pl).await.unwrap()
}

fn ours(p: &FakeProvider, name: &str) -> Vec<Snapshot> {
    let d = DeploymentName::parse(name).unwrap();
    p.snapshots()
        .into_iter()
        .filter(|s| s.labels.matches(&Labels::deployment(&d)))
        .collect()
}

#[tokio::test]
async fn the_job_over_four_days_keeps_two_prunes_the_oldest_and_never_a_backup() {
    let p = FakeProvider::new();
    scheduled(&p, "web1", 2).await;
    // A provider backup: no labels of ours.
    let backup = p.add_snapshot("web1-backup", Labels::new(), 100);
    let mut first = None;
    for day in 0..4 {
        let r = run_job(&p, day).await;
        assert_eq!(r.len(), 1);
        assert!(matches!(r[0].outcome, Outcome::Created { .. }), "{r:?}");
        if day == 0 {
            first = ours(&p, "web1").first().map(|s| s.id.clone());
        }
        // A second run in the same slot creates nothing.
        let again = run_job(&p, day).await;
        assert_eq!(again[0].outcome, Outcome::UpToDate);
    }
    let left = ours(&p, "web1");
    assert_eq!(left.len(), 2, "{left:?}");
    let slots: Vec<_> = left
        .iter()
        .filter_map(|s| s.labels.get(LABEL_SLOT))
        .collect();
    assert_eq!(slots, ["20261127T0300Z", "20261128T0300Z"]);
    assert!(!left.iter().any(|s| Some(&s.id) == first.as_ref()));
    assert!(
        p.snapshots().iter().any(|s| s.id == backup),
        "backup untouched"
    );
}

#[tokio::test]
async fn a_foreign_image_holding_the_slot_name_fails_that_server_and_deletes_nothing() {
    let p = FakeProvider::new();
    scheduled(&p, "web1", 1).await;
    run_job(&p, 0).await;
    let before = p.snapshots();
    // Someone else's image took tomorrow's name.
    p.add_snapshot("web1-20261126T0300Z", Labels::new(), 0);
    let r = run_job(&p, 1).await;
    assert!(r[0].failed(), "{r:?}");
    assert!(r[0].pruned.is_empty());
    for s in before {
        assert!(
            p.snapshots().iter().any(|x| x.id == s.id),
            "kept {}",
            s.name
        );
    }
}

#[tokio::test]
async fn a_broken_snapshot_of_the_slot_is_replaced_not_counted() {
    let p = FakeProvider::new();
    scheduled(&p, "web1", 3).await;
    run_job(&p, 0).await;
    let broken = ours(&p, "web1")[0].id.clone();
    p.break_snapshot(&broken);
    let r = run_job(&p, 0).await;
    assert!(matches!(r[0].outcome, Outcome::Created { .. }), "{r:?}");
    let left = ours(&p, "web1");
    assert_eq!(left.len(), 1);
    assert_ne!(left[0].id, broken);
    assert_eq!(left[0].status, SnapshotStatus::Available);
}

#[tokio::test]
async fn a_snapshot_whose_id_comes_after_the_wait_is_found_and_tagged_even_after_a_failure() {
    let p = FakeProvider::new().deferring_snapshots();
    scheduled(&p, "web1", 2).await;
    // The first finishing attempt fails; the retry tags it.
    p.fail_next("finish_snapshots", Fault::Transient);
    let r = run_job(&p, 0).await;
    let Outcome::Created { id } = &r[0].outcome else {
        panic!("{r:?}")
    };
    assert!(!id.is_empty(), "the real image id, not the action's");
    let all = p.snapshots();
    assert_eq!(all.len(), 1);
    assert!(
        all.iter().all(|s| s.labels.get(LABEL_SLOT).is_some()),
        "no snapshot stays untagged: {all:?}"
    );
    // Tagged, so the next days prune it like any other.
    for day in 1..3 {
        run_job(&p, day).await;
    }
    assert_eq!(ours(&p, "web1").len(), 2);
    assert!(!ours(&p, "web1").iter().any(|s| s.id == *id));
}

// See: issue 13, finding 2 (racing creates).

/// Two runs of one deployment started together, from two machines (two keys), on a cloud
/// that does not refuse a second server of the same name.
#[tokio::test]
async fn racing_runs_leave_exactly_one_server_and_the_loser_touches_nothing_of_the_winner() {
    let p = FakeProvider::new()
        .allowing_duplicate_names()
        .interleaving();
    let (a, b) = (plan("web1", key(1)), plan("web1", key(2)));
    let (ra, rb) = tokio::join!(run_create(&p, &a), run_create(&p, &b));
    let servers = p.servers();
    assert_eq!(servers.len(), 1, "exactly one server remains: {servers:?}");
    let winner = &servers[0];
    let (won, lost) = match (ra, rb) {
        (Ok(w), Err(l)) | (Err(l), Ok(w)) => (w, l),
        (Ok(x), Ok(y)) => panic!("both exit 0: {} and {}", x.server.id, y.server.id),
        (Err(x), Err(y)) => panic!("both failed: {} / {}", x.error, y.error),
    };
    assert_eq!(won.server.id, winner.id, "the run that succeeds names it");
    let msg = lost.error.to_string();
    assert!(
        msg.contains(&winner.id) && msg.contains("another run"),
        "{msg}"
    );
    let t = lost.rollback.expect("the loser's rollback finished");
    assert!(
        t.removed.iter().all(|r| r.id != winner.id
            && r.id != won.firewall.id
            && Some(&r.id) != won.ssh_key.as_ref().map(|k| &k.id)),
        "the loser removed the winner's {:?}",
        t.removed
    );
    assert!(t.removed.iter().any(|r| r.kind == "server"), "{t:?}");
    // The winner's firewall and key are whole and still applied.
    assert!(p.firewalls_of(&winner.id).contains(&won.firewall.id));
    assert_eq!(
        winner.labels.get(LABEL_SSH_KEY),
        Some(won.ssh_key.as_ref().unwrap().id.as_str())
    );
}

/// Where key names are unique (Hetzner, EC2) the run with the other key stops at the key,
/// before it made anything: no rollback at all, and the winner completes.
#[tokio::test]
async fn a_racing_run_with_another_key_stops_before_making_anything() {
    let p = FakeProvider::new().interleaving();
    let (a, b) = (plan("web1", key(1)), plan("web1", key(2)));
    let (ra, rb) = tokio::join!(run_create(&p, &a), run_create(&p, &b));
    let won = ra.expect("the first run completes");
    let lost = rb.expect_err("the second one stops");
    assert!(!lost.options_refused, "a conflict, not refused options");
    assert!(lost.rollback.unwrap().removed.is_empty());
    assert_eq!(p.servers().len(), 1);
    assert_eq!(p.servers()[0].id, won.server.id);
    assert_eq!(p.count(&Labels::deployment(&a.deployment)), 3);
}

/// A created resource is this run's by its run label, not by "labelled now and not there at
/// the start": a server another run made, found by a re-run, is never in `created`, so the
/// re-run's rollback leaves it.
#[tokio::test]
async fn a_failing_rerun_leaves_a_server_it_found_even_when_it_made_the_firewall() {
    let p = FakeProvider::new();
    let pl = plan("web1", key(1));
    let first = run_create(&p, &pl).await.unwrap();
    p.remove_firewall_by_hand(&first.firewall.id);
    p.fail_next("attach_firewall", Fault::Before);
    let f = run_create(&p, &pl).await.unwrap_err();
    let removed: Vec<_> = f
        .rollback
        .unwrap()
        .removed
        .into_iter()
        .map(|r| r.kind)
        .collect();
    assert_eq!(removed, ["firewall"], "only the firewall this run made");
    assert_eq!(p.servers().len(), 1);
}

/// Loose end: a re-run that finds the server without its firewall (deleted by hand) makes a
/// new one and applies it.
#[tokio::test]
async fn a_rerun_applies_a_new_firewall_to_a_server_that_lost_its_own() {
    let p = FakeProvider::new();
    let pl = plan("web1", key(1));
    let first = run_create(&p, &pl).await.unwrap();
    p.remove_firewall_by_hand(&first.firewall.id);
    assert!(p.firewalls_of(&first.server.id).is_empty());
    let again = run_create(&p, &pl).await.unwrap();
    assert_eq!(again.server.id, first.server.id);
    assert_ne!(again.firewall.id, first.firewall.id);
    assert_eq!(
        p.firewalls_of(&first.server.id),
        std::slice::from_ref(&again.firewall.id)
    );
    assert_eq!(
        p.servers()[0].labels.get(crate::model::LABEL_FIREWALL),
        Some(again.firewall.id.as_str())
    );
}

/// Loose end: `--provider-backups` on a re-run whose server exists turns them on.
#[tokio::test]
async fn provider_backups_on_a_rerun_are_turned_on() {
    let p = FakeProvider::new();
    let mut pl = plan("web1", key(1));
    run_create(&p, &pl).await.unwrap();
    assert!(!p.calls().iter().any(|c| c == "enable_provider_backups"));
    pl.provider_backups = true;
    let again = run_create(&p, &pl).await.unwrap();
    assert!(again.created.is_empty());
    assert!(p.calls().iter().any(|c| c == "enable_provider_backups"));
}

/// A create whose answer is lost (or cut off) is found again by this run's label: the
/// rollback removes it although no create call returned its id.
#[tokio::test]
async fn a_server_whose_answer_was_lost_is_found_by_the_run_label_and_rolled_back() {
    let pl = plan("web1", key(1));
    let q = FakeProvider::new();
    q.fail_next("create_server", Fault::After);
    let f = run_create(&q, &pl).await.unwrap_err();
    let removed: Vec<_> = f
        .rollback
        .unwrap()
        .removed
        .into_iter()
        .map(|r| r.kind)
        .collect();
    assert_eq!(removed, ["server", "firewall", "ssh_key"]);
    assert_eq!(q.count(&Labels::managed()), 0);
}

// --- Speed: create and destroy on their critical path (issue 12) ----------------------------

/// Key and firewall names that repeat (DigitalOcean): key and firewall are made together.
static REPEATING: Description = Description {
    unique_key_names: false,
    ..FAKE_DESCRIPTION
};

/// Sequential round trips before the first status check, read off paused time where every call
/// takes `ms`; and the calls sent before it.
fn rounds_before_first_poll(
    p: &FakeProvider,
    start: tokio::time::Instant,
    ms: u64,
) -> (u128, Vec<String>) {
    let sent = p.sent();
    let poll = sent
        .iter()
        .filter(|(n, _)| n.starts_with("operation_status") || n == "get_server")
        .map(|(_, t)| *t)
        .min()
        .expect("the flow polled");
    let before = sent
        .iter()
        .filter(|(_, t)| *t < poll)
        .map(|(n, _)| n.clone())
        .collect();
    ((poll - start).as_millis() / u128::from(ms), before)
}

/// One read stage (option check and every look-up together), key and firewall (together where
/// names repeat), then the server: 4 round trips before polling where key names are unique,
/// 3 elsewhere; no call is sent twice, and the mutating calls stay three.
#[tokio::test(start_paused = true)]
async fn create_reaches_its_first_poll_in_at_most_four_round_trips() {
    for (desc, expected) in [(&FAKE_DESCRIPTION, 4), (&REPEATING, 3)] {
        let p = fake(desc).with_latency(Duration::from_millis(100));
        let start = tokio::time::Instant::now();
        run_create(&p, &plan("web1", key(1))).await.unwrap();
        let (rounds, before) = rounds_before_first_poll(&p, start, 100);
        assert_eq!(rounds, expected, "{}: {before:?}", desc.unique_key_names);
        let mut unique = before.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), before.len(), "a call repeated: {before:?}");
        for c in [
            "check_server_options",
            "find_ssh_key",
            "list_firewalls",
            "list_servers",
        ] {
            assert!(before.contains(&c.to_owned()), "{c} missing: {before:?}");
        }
        let mutating = before.iter().filter(|c| c.starts_with("create_")).count();
        assert_eq!(mutating, 3, "{before:?}");
    }
}

/// An unknown server type is refused in the read stage: nothing is created, nothing to roll back.
#[tokio::test]
async fn refused_options_fail_the_read_stage_before_anything_is_made() {
    let p = FakeProvider::new();
    p.fail_next("check_server_options", Fault::Invalid);
    let f = run_create(&p, &plan("web1", key(1))).await.unwrap_err();
    assert_eq!(f.error.kind(), &ErrorKind::InvalidInput);
    assert!(f.options_refused);
    assert!(f.rollback.unwrap().removed.is_empty());
    assert!(
        !p.calls().iter().any(|c| c.starts_with("create_")),
        "{:?}",
        p.calls()
    );
    assert_eq!(p.count(&Labels::managed()), 0);
}

/// Destroy lists everything in one round, and deletes the key beside the server's wait: the
/// key is gone before the server is, the firewall only after.
#[tokio::test(start_paused = true)]
async fn destroy_deletes_the_key_beside_the_server_wait() {
    let mut p = FakeProvider::new();
    let pl = plan("web1", key(1));
    run_create(&p, &pl).await.unwrap();
    p.latency = Some(Duration::from_millis(100));
    let start = tokio::time::Instant::now();
    let t = destroy(&p, &pl.deployment, &cfg(), &Silent, Snapshots::Keep)
        .await
        .unwrap();
    let kinds: Vec<_> = t.removed.iter().map(|r| r.kind).collect();
    assert_eq!(kinds, ["server", "firewall", "ssh_key"]);
    let sent = p.sent();
    let at = |name: &str| {
        sent.iter()
            .filter(|(n, t)| n == name && *t >= start)
            .map(|(_, t)| (*t - start).as_millis())
            .collect::<Vec<_>>()
    };
    // Round 1: every listing together.
    assert!(at("list_servers").iter().all(|t| *t == 0), "{sent:?}");
    assert_eq!(at("list_firewalls"), [0]);
    assert_eq!(at("list_ssh_keys"), [0]);
    assert_eq!(at("list_snapshots"), [0]);
    // Round 2: the server's delete and the key's together.
    assert_eq!(at("delete_server"), [100]);
    assert_eq!(at("delete_ssh_key"), [100]);
    assert!(
        at("delete_firewall")[0] > at("delete_server")[0] + 100,
        "{sent:?}"
    );
    assert_eq!(p.count(&Labels::managed()), 0);
}

#[tokio::test]
async fn the_job_over_many_servers_lists_once_polls_in_batches_and_never_rereads() {
    let p = FakeProvider::new();
    let n = 30;
    for i in 0..n {
        scheduled(&p, &format!("web{i}"), 1).await;
    }
    run_job(&p, 0).await;
    let before = p.calls().len();
    let r = run_job(&p, 1).await;
    assert_eq!(r.len(), n);
    assert!(
        r.iter()
            .all(|s| matches!(s.outcome, Outcome::Created { .. }) && s.pruned.len() == 1),
        "{r:?}"
    );
    let calls = p.calls()[before..].to_vec();
    let count = |name: &str| calls.iter().filter(|c| *c == name).count();
    assert_eq!(count("list_servers"), 1, "{calls:?}");
    assert_eq!(
        count("list_snapshots"),
        1,
        "no per-server re-read: {calls:?}"
    );
    assert_eq!(
        count("get_snapshot") + count("operation_status"),
        0,
        "{calls:?}"
    );
    assert_eq!(count("create_snapshot"), n);
    assert_eq!(count("delete_snapshot"), n);
    // Each action runs for two checks: the waits of all servers share their rounds.
    let polls = count("operation_statuses");
    assert!(
        (3..n).contains(&polls),
        "{polls} batched checks for {n} actions"
    );
    // The fake records finish_snapshots, which sends nothing where the id is known at create
    // (the default, e.g. Hetzner's).
    let sent = calls.len() - count("finish_snapshots");
    assert!(sent <= 3 * n, "{sent} calls for {n} servers");
    for i in 0..n {
        let left = ours(&p, &format!("web{i}"));
        assert_eq!(left.len(), 1, "KEEP=1 leaves only today's: {left:?}");
        assert_eq!(left[0].labels.get(LABEL_SLOT), Some("20261126T0300Z"));
    }
}

/// DigitalOcean's shape: the image id and labels only come when the snapshot is finished. The
/// snapshots whose actions ended in the same round are finished by one batched call, not one
/// call each.
#[tokio::test]
async fn the_job_finishes_snapshots_whose_waits_ended_together_in_one_batch() {
    let p = FakeProvider::new().deferring_snapshots();
    let n = 30;
    for i in 0..n {
        scheduled(&p, &format!("web{i}"), 1).await;
    }
    run_job(&p, 0).await;
    let before = p.calls().len();
    let r = run_job(&p, 1).await;
    assert!(
        r.iter().all(
            |s| matches!(&s.outcome, Outcome::Created { id } if !id.is_empty())
                && s.pruned.len() == 1
        ),
        "{r:?}"
    );
    let calls = p.calls()[before..].to_vec();
    let count = |name: &str| calls.iter().filter(|c| *c == name).count();
    assert_eq!(count("finish_snapshot"), 0, "never one by one: {calls:?}");
    let batches = count("finish_snapshots");
    assert!(
        (1..n / 3).contains(&batches),
        "{batches} finishing batches for {n} snapshots"
    );
    for i in 0..n {
        let left = ours(&p, &format!("web{i}"));
        assert_eq!(left.len(), 1, "{left:?}");
        assert_eq!(left[0].labels.get(LABEL_SLOT), Some("20261126T0300Z"));
    }
}

#[tokio::test]
async fn a_twin_left_by_a_concurrent_run_is_resolved_by_the_next_run_keeping_the_oldest() {
    let p = FakeProvider::new();
    scheduled(&p, "web1", 2).await;
    run_job(&p, 0).await;
    // A second run took the same slot at the same moment: a twin, younger by the fake's clock.
    let first = ours(&p, "web1")[0].clone();
    let twin = p.add_snapshot("web1-twin", first.labels.clone(), -1);
    let r = run_job(&p, 0).await;
    assert_eq!(r[0].outcome, Outcome::UpToDate, "{r:?}");
    let left: Vec<String> = ours(&p, "web1").into_iter().map(|s| s.id).collect();
    // The older one stays, as every run decides; the younger twin goes.
    assert_eq!(left, std::slice::from_ref(&first.id));
    assert_ne!(twin, first.id);
    assert_eq!(r[0].pruned, ["web1-twin"]);
}
