//! The DigitalOcean fake's own behaviour: one test for each trap of the API the adapter must
//! work around (issue 9), on the fake's HTTP API directly.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use fakecloud::client::{HttpResponse, http_request};
use fakecloud::digitalocean::FakeDo;
use serde_json::{Value, json};

fn call(
    fake: &FakeDo,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, Value, HttpResponse) {
    let r = http_request(&fake.url(), method, path, Some("t"), body.as_ref()).unwrap();
    (r.status, r.body.clone(), r)
}

#[test]
fn trap_a_firewall_without_outbound_rules_blocks_egress() {
    let fake = FakeDo::start();
    call(&fake, "POST", "/v2/tags", Some(json!({"name": "t1"})));
    let (s, d, _) = call(
        &fake,
        "POST",
        "/v2/droplets",
        Some(json!({"name": "x", "region": "fra1",
        "size": "s-1vcpu-1gb", "image": "debian-12-x64", "tags": ["t1"]})),
    );
    assert_eq!(s, 202);
    let id = d["droplet"]["id"].as_i64().unwrap();
    assert!(fake.has_egress(id));
    let (s, _, _) = call(
        &fake,
        "POST",
        "/v2/firewalls",
        Some(json!({"name": "only-in", "tags": ["t1"],
        "inbound_rules": [{"protocol": "tcp", "ports": "22", "sources": {"addresses": ["0.0.0.0/0"]}}]})),
    );
    assert_eq!(s, 202);
    assert!(!fake.has_egress(id), "no outbound rules, no egress");
}

#[test]
fn trap_a_tag_referenced_by_a_firewall_must_exist() {
    let fake = FakeDo::start();
    let fw = json!({"name": "fw", "tags": ["bootstrap-deployment:web1"], "inbound_rules": [],
        "outbound_rules": [{"protocol": "icmp", "destinations": {"addresses": ["0.0.0.0/0"]}}]});
    let (s, v, _) = call(&fake, "POST", "/v2/firewalls", Some(fw.clone()));
    assert_eq!(s, 422, "{v}");
    call(
        &fake,
        "POST",
        "/v2/tags",
        Some(json!({"name": "bootstrap-deployment:web1"})),
    );
    let (s, v, _) = call(&fake, "POST", "/v2/firewalls", Some(fw));
    assert_eq!(s, 202);
    // icmp reads back as "0".
    assert_eq!(v["firewall"]["outbound_rules"][0]["ports"], "0");
}

#[test]
fn trap_put_resets_the_targets() {
    let fake = FakeDo::start();
    call(&fake, "POST", "/v2/tags", Some(json!({"name": "t1"})));
    let (_, v, _) = call(
        &fake,
        "POST",
        "/v2/firewalls",
        Some(json!({"name": "fw", "tags": ["t1"]})),
    );
    let id = v["firewall"]["id"].as_str().unwrap().to_owned();
    let (s, v, _) = call(
        &fake,
        "PUT",
        &format!("/v2/firewalls/{id}"),
        Some(json!({"name": "fw",
        "inbound_rules": [{"protocol": "tcp", "ports": "22", "sources": {"addresses": ["192.0.2.1"]}}]})),
    );
    assert_eq!(s, 200);
    assert_eq!(v["firewall"]["tags"], json!([]), "PUT dropped the targets");
}

#[test]
fn trap_the_snapshot_action_returns_no_id() {
    let fake = FakeDo::start();
    fake.state().pace = fakecloud::Pace::Polls(0);
    let (_, d, _) = call(
        &fake,
        "POST",
        "/v2/droplets",
        Some(json!({"name": "x", "region": "fra1",
        "size": "s-1vcpu-1gb", "image": "ubuntu-24-04-x64"})),
    );
    let id = d["droplet"]["id"].as_i64().unwrap();
    let (s, a, _) = call(
        &fake,
        "POST",
        &format!("/v2/droplets/{id}/actions"),
        Some(json!({"type": "snapshot", "name": "snap"})),
    );
    assert_eq!(s, 201);
    assert_eq!(
        a.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["action"]
    );
    assert!(a["action"].get("snapshot_name").is_none() && a["action"].get("image_id").is_none());
    let (_, l, _) = call(&fake, "GET", &format!("/v2/droplets/{id}/snapshots"), None);
    assert_eq!(l["snapshots"][0]["created_at"], a["action"]["started_at"]);
    assert!(l["snapshots"][0].get("tags").is_none());
}

#[test]
fn trap_listing_keys_is_limited_to_ten_a_minute() {
    let fake = FakeDo::start();
    for _ in 0..10 {
        assert_eq!(call(&fake, "GET", "/v2/account/keys", None).0, 200);
    }
    let (s, v, r) = call(&fake, "GET", "/v2/account/keys", None);
    assert_eq!((s, v["id"].as_str()), (429, Some("too_many_requests")));
    assert_eq!(r.header("retry-after"), Some("1"));
}

#[test]
fn trap_a_duplicate_key_gets_422() {
    let fake = FakeDo::start();
    let pk = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl x";
    let (s, k, _) = call(
        &fake,
        "POST",
        "/v2/account/keys",
        Some(json!({"name": "a", "public_key": pk})),
    );
    assert_eq!(s, 201);
    let (s, v, _) = call(
        &fake,
        "POST",
        "/v2/account/keys",
        Some(json!({"name": "b", "public_key": pk})),
    );
    assert_eq!(s, 422);
    assert_eq!(v["message"], "SSH Key is already in use on your account");
    let fp = k["ssh_key"]["fingerprint"].as_str().unwrap();
    assert_eq!(
        call(&fake, "GET", &format!("/v2/account/keys/{fp}"), None).0,
        200
    );
}

#[test]
fn trap_250_requests_a_minute_with_headers() {
    let fake = FakeDo::start();
    let (s, _, r) = call(&fake, "GET", "/v2/regions", None);
    assert_eq!(s, 200);
    assert_eq!(r.header("ratelimit-limit"), Some("250"));
    assert_eq!(r.header("ratelimit-remaining"), Some("249"));
    assert!(r.header("ratelimit-reset").unwrap().parse::<u64>().unwrap() > 1_700_000_000);
    // The bucket refills at 250 a minute while the loop runs: a few more get through.
    let mut ok = 1;
    let (s, r) = loop {
        let (s, _, r) = call(&fake, "GET", "/v2/regions", None);
        if s != 200 || ok > 400 {
            break (s, r);
        }
        ok += 1;
    };
    assert_eq!(s, 429);
    assert!((250..300).contains(&ok), "{ok} got through");
    assert_eq!(r.body["id"], "too_many_requests", "{:?}", r.body);
    assert_eq!(r.header("ratelimit-remaining"), Some("0"));
    assert_eq!(r.header("retry-after"), Some("1"));
}
