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
        Some(o.ssh_key.id.as_str())
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
        .err()
        .expect("create fails");
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
        .err()
        .expect("refused");
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
        a.ssh_key.id, b.ssh_key.id,
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
    assert_eq!(o.ssh_key.id, id);
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
