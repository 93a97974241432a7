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
