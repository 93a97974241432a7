//! `bootstrap status NAME`: the server, its firewall rules and drift from what `create` set,
//! the snapshot schedule with last and next slot, the pinned host key and the state dir.

use fakecloud::client::http_request;
use serde_json::{Value, json};

use crate::scenario::hetzner::Hetzner;
use crate::scenario::{Cloud as _, create};

#[test]
fn status_shows_the_deployment_and_the_drift_from_what_create_set() {
    let cloud = Hetzner::start();
    let b = cloud.bin();
    create(
        &cloud,
        &b,
        "st1",
        "203.0.113.7/32",
        &["--snapshots", "daily:3"],
    )
    .expect_code(0);
    let job = b.run(&[
        "snapshot",
        "run",
        "--endpoint",
        &cloud.0.url(),
        "--at",
        "2026-12-07T03:10:00Z",
    ]);
    job.expect_code(0);

    // The name alone: the provider and endpoint come from the local state.
    let r = b.run(&["status", "st1", "-o", "json"]);
    r.expect_code(0);
    let d: Value = serde_json::from_str(&r.stdout()).unwrap();
    assert_eq!(d["format_version"], 1);
    assert_eq!(d["provider"], "hetzner");
    assert_eq!(d["server"]["status"], "running", "{d}");
    assert_eq!(d["server"]["ipv4"], "203.0.113.1", "{d}");
    assert_eq!(d["server"]["server_type"], "cpx22", "{d}");
    assert_eq!(d["server"]["location"], "fsn1", "{d}");
    assert_eq!(
        d["firewall"]["inbound"][0]["sources"],
        json!(["203.0.113.7/32"]),
        "{d}"
    );
    assert_eq!(d["drift"], json!([]), "{d}");
    assert_eq!(d["snapshots"]["count"], 1, "{d}");
    assert_eq!(
        d["snapshots"]["schedule"], "daily at 03:00 UTC, keep 3",
        "{d}"
    );
    assert!(
        d["snapshots"]["next_slot"]
            .as_str()
            .unwrap()
            .ends_with("T03:00:00Z"),
        "{d}"
    );
    assert_eq!(d["host_key"]["pinned"].as_array().unwrap().len(), 1, "{d}");
    assert!(
        d["host_key"]["pinned"][0]["fingerprint"]
            .as_str()
            .unwrap()
            .starts_with("SHA256:")
    );
    assert!(
        d["state_dir"].as_str().unwrap().ends_with("hetzner/st1"),
        "{d}"
    );

    // Someone opens SSH to another network by hand: status names the drift.
    let fw = cloud
        .0
        .firewalls()
        .into_iter()
        .find(|f| f["name"] == "bootstrap-st1")
        .unwrap();
    let body = json!({"rules": [{
        "direction": "in", "protocol": "tcp", "port": "22",
        "source_ips": ["0.0.0.0/0", "::/0"], "description": "SSH"
    }]});
    let res = http_request(
        &cloud.0.url(),
        "POST",
        &format!("/firewalls/{}/actions/set_rules", fw["id"]),
        Some("t"),
        Some(&body),
    )
    .unwrap();
    assert!(res.status < 300, "{}", res.status);
    let r = b.run(&["status", "st1"]);
    r.expect_code(0);
    let out = r.stdout();
    assert!(
        out.contains("drift      tcp/22 is open from 0.0.0.0/0, ::/0 instead of 203.0.113.7/32"),
        "{out}"
    );
    assert!(out.contains("server     st1"), "{out}");
    assert!(out.contains("host key   SHA256:"), "{out}");

    // A name that exists nowhere: exit 2 with the fix.
    let r = b.run(&[
        "status",
        "nope",
        "--provider",
        "hetzner",
        "--endpoint",
        &cloud.0.url(),
    ]);
    r.expect_code(2);
    assert!(r.stderr().contains("bootstrap list"), "{}", r.stderr());
}

#[test]
fn dry_runs_compare_with_the_cloud_when_credentials_are_there() {
    let cloud = Hetzner::start();
    let b = cloud.bin();
    let url = cloud.0.url();
    let dry = |ssh_from: &str, extra: &[&str]| {
        let mut args = vec![
            "create",
            "--provider",
            "hetzner",
            "--endpoint",
            &url,
            "--name",
            "pl1",
            "--ssh-from",
            ssh_from,
            "--dry-run",
        ];
        args.extend_from_slice(extra);
        let r = b.run(&args);
        r.expect_code(0);
        r
    };
    // Nothing exists: three to create, and no throwaway fingerprint in the plan.
    let r = dry("203.0.113.7/32", &["-o", "json"]);
    let d: Value = serde_json::from_str(&r.stdout()).unwrap();
    assert_eq!(
        d["cloud"]["summary"], "3 to create, 0 to update, 0 unchanged",
        "{d}"
    );
    assert!(d["ssh_key"]["fingerprint"].is_null(), "{d}");
    create(&cloud, &b, "pl1", "203.0.113.7/32", &[]).expect_code(0);
    let before = cloud.0.request_log().len();
    // A new address: the firewall is updated, the rest unchanged; nothing is written.
    let r = dry("198.51.100.4/32", &[]);
    let out = r.stdout();
    assert!(out.contains("1 to update, 2 unchanged"), "{out}");
    assert!(
        out.contains("198.51.100.4/32 instead of 203.0.113.7/32"),
        "{out}"
    );
    let writes = cloud.0.request_log()[before..]
        .iter()
        .filter(|(m, _, _)| m != "GET")
        .count();
    assert_eq!(writes, 0, "a dry run only reads");
    // Another admin user: the plan says the server keeps its own, and how to change it.
    let r = dry("203.0.113.7/32", &["--admin-user", "ops"]);
    assert!(
        r.stdout().contains("keeps admin user admin"),
        "{}",
        r.stdout()
    );
    assert!(
        r.stdout().contains("0 to create, 0 to update, 3 unchanged"),
        "{}",
        r.stdout()
    );

    // destroy --dry-run: exactly what would go, what is kept; nothing deleted.
    b.run(&[
        "snapshot",
        "run",
        "--endpoint",
        &url,
        "--at",
        "2026-12-07T03:10:00Z",
    ])
    .expect_code(0);
    let r = b.run(&["destroy", "pl1", "--dry-run", "-o", "json"]);
    r.expect_code(0);
    let d: Value = serde_json::from_str(&r.stdout()).unwrap();
    let delete: Vec<&str> = d["delete"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(delete.len(), 3, "{d}");
    assert!(delete.iter().any(|l| l.starts_with("server pl1")), "{d}");
    assert!(
        delete
            .iter()
            .any(|l| l.starts_with("firewall bootstrap-pl1")),
        "{d}"
    );
    assert!(
        delete
            .iter()
            .any(|l| l.starts_with("ssh key bootstrap-pl1")),
        "{d}"
    );
    assert_eq!(
        d["keep"].as_array().unwrap().len(),
        1,
        "the snapshot is kept: {d}"
    );
    assert!(!cloud.0.servers().is_empty(), "nothing was deleted");
    // Offline without credentials: the plan says so.
    let mut off = cloud.bin();
    off.unset("HCLOUD_TOKEN");
    let r = off.run(&[
        "create",
        "--provider",
        "hetzner",
        "--name",
        "pl2",
        "--ssh-from",
        "203.0.113.7/32",
        "--dry-run",
    ]);
    r.expect_code(0);
    assert!(
        r.stdout().contains("offline: no credentials"),
        "{}",
        r.stdout()
    );
}
