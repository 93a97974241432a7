//! `bootstrap --provider digitalocean` end to end against the stateful fake
//! ([`FakeDo`]): create, re-run, list, snapshots, backups, destroy, faults, and one test per
//! trap of DigitalOcean's API (issue 9).

use serde_json::{Value, json};

use crate::support::{Bin, http};
use fakecloud::digitalocean::{FakeDo, Logged};

fn bin() -> Bin {
    let mut b = Bin::new();
    b.unset("HCLOUD_TOKEN");
    b.env("DIGITALOCEAN_TOKEN", "dop_v1_test-token-not-secret");
    b
}

fn create<'a>(url: &'a str, name: &'a str, ssh_from: &'a str) -> Vec<&'a str> {
    vec![
        "create",
        "--provider",
        "digitalocean",
        "--endpoint",
        url,
        "--name",
        name,
        "--ssh-from",
        ssh_from,
    ]
}

fn cmd<'a>(url: &'a str, args: &[&'a str]) -> Vec<&'a str> {
    let mut v = args.to_vec();
    v.extend(["--provider", "digitalocean", "--endpoint", url]);
    v
}

fn sent(fake: &FakeDo, method: &str, path_start: &str) -> Vec<Logged> {
    fake.log()
        .into_iter()
        .filter(|l| l.method == method && l.path.starts_with(path_start))
        .collect()
}

fn tags(v: &Value) -> Vec<String> {
    v["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn create_rerun_list_destroy_leaves_nothing() {
    let fake = FakeDo::start();
    let url = fake.url();
    let b = bin();
    b.run(&create(&url, "web1", "203.0.113.7/32"))
        .expect_code(0);

    let droplets = fake.droplets();
    assert_eq!(droplets.len(), 1);
    let d = &droplets[0];
    assert_eq!(d["status"], "active");
    let t = tags(d);
    for want in ["managed-by:bootstrap", "bootstrap-deployment:web1"] {
        assert!(t.contains(&want.to_owned()), "{t:?}");
    }
    assert!(t.iter().all(|t| {
        t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-:".contains(&b))
    }));
    let post = &sent(&fake, "POST", "/v2/droplets")[0];
    let body = post.body.as_ref().unwrap();
    assert_eq!(body["ipv6"], true);
    assert!(body["ssh_keys"][0].is_i64(), "the key by id: {body}");
    assert!(
        body["user_data"]
            .as_str()
            .unwrap()
            .starts_with("#cloud-config")
    );
    assert_eq!(
        (
            body["region"].as_str(),
            body["size"].as_str(),
            body["image"].as_str()
        ),
        (Some("fra1"), Some("s-1vcpu-1gb"), Some("ubuntu-24-04-x64"))
    );

    let fws = fake.firewalls();
    assert_eq!(fws.len(), 1);
    assert_eq!(fws[0]["name"], "bootstrap-web1");
    assert_eq!(fws[0]["tags"], json!(["bootstrap-deployment:web1"]));
    assert!(
        fake.has_egress(d["id"].as_i64().unwrap()),
        "explicit outbound rules"
    );
    // The tag existed before the firewall named it.
    let log = fake.log();
    let tag_at = log
        .iter()
        .position(|l| l.method == "POST" && l.path == "/v2/tags")
        .unwrap();
    let fw_at = log
        .iter()
        .position(|l| l.method == "POST" && l.path == "/v2/firewalls")
        .unwrap();
    assert!(tag_at < fw_at);

    // A re-run finds everything; a new --ssh-from moves the SSH rule through /rules, never PUT.
    b.run(&create(&url, "web1", "198.51.100.0/24"))
        .expect_code(0);
    assert_eq!(fake.droplets().len(), 1);
    let fw = &fake.firewalls()[0];
    let ssh: Vec<&Value> = fw["inbound_rules"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["ports"] == "22")
        .collect();
    assert_eq!(ssh.len(), 1, "{fw}");
    assert_eq!(ssh[0]["sources"]["addresses"], json!(["198.51.100.0/24"]));
    assert_eq!(
        fw["tags"],
        json!(["bootstrap-deployment:web1"]),
        "targets kept"
    );
    assert!(sent(&fake, "PUT", "/v2/firewalls").is_empty());
    assert!(!sent(&fake, "POST", "/v2/firewalls/").is_empty());

    let out = b.run(&cmd(&url, &["list"])).expect_code(0).stdout();
    assert!(out.contains("web1"), "{out}");

    b.run(&cmd(&url, &["destroy", "web1", "--yes"]))
        .expect_code(0);
    assert_eq!(fake.leftovers(), Vec::<String>::new());
    // Never the tag-wide delete, never a key listing.
    assert!(
        sent(&fake, "DELETE", "/v2/droplets")
            .iter()
            .all(|l| l.path != "/v2/droplets")
    );
    assert!(
        sent(&fake, "GET", "/v2/account/keys")
            .iter()
            .all(|l| l.path != "/v2/account/keys")
    );
    // Idempotent.
    b.run(&cmd(&url, &["destroy", "web1", "--yes"]))
        .expect_code(0);
}

#[test]
fn snapshot_job_keeps_two_and_never_touches_backups() {
    let fake = FakeDo::start();
    let url = fake.url();
    let b = bin();
    let mut args = create(&url, "web1", "203.0.113.7/32");
    args.extend(["--snapshots", "daily:2"]);
    b.run(&args).expect_code(0);
    let droplet = fake.droplets()[0]["id"].as_i64().unwrap();
    let backup = fake.add_backup(droplet, "web1 backup");
    for day in ["25", "26", "27", "28"] {
        let at = format!("2026-11-{day}T04:00:00Z");
        b.run(&cmd(&url, &["snapshot", "run", "--at", &at]))
            .expect_code(0);
    }
    let snaps: Vec<Value> = fake
        .snapshots()
        .into_iter()
        .filter(|i| i["type"] == "snapshot")
        .collect();
    assert_eq!(snaps.len(), 2, "{snaps:?}");
    for s in &snaps {
        let t = tags(s);
        assert!(t.contains(&"bootstrap-deployment:web1".to_owned()), "{t:?}");
        assert!(t.iter().any(|t| t.starts_with("bootstrap-slot:")), "{t:?}");
    }
    // The answer to the snapshot action carried no image id: each was found and tagged after.
    assert_eq!(
        sent(&fake, "GET", &format!("/v2/droplets/{droplet}/snapshots")).len(),
        4
    );
    assert!(fake.state_has_image(backup), "the job touched the backup");
    let out = b
        .run(&cmd(&url, &["snapshot", "list", "web1"]))
        .expect_code(0)
        .stdout();
    let (ours, backups) = out
        .split_once("provider backups")
        .expect("a backups section");
    assert!(
        ours.contains("web1-20261128T0300Z") && !ours.contains("web1 backup"),
        "{out}"
    );
    assert!(
        backups.contains("web1 backup") && !backups.contains("20261128T0300Z"),
        "the backup apart: {out}"
    );
    b.run(&cmd(
        &url,
        &["destroy", "web1", "--yes", "--delete-snapshots"],
    ))
    .expect_code(0);
    // DigitalOcean deletes a droplet's backups with the droplet.
    // The shared tag goes too once nothing carries it, as `destroy` without snapshots does.
    let left = fake.leftovers();
    assert_eq!(left, Vec::<String>::new(), "nothing stays");
    assert!(!fake.state_has_image(backup));
}

#[test]
fn provider_backups_get_a_policy_in_the_snapshot_window() {
    let fake = FakeDo::start();
    let url = fake.url();
    let b = bin();
    let mut args = create(&url, "web1", "203.0.113.7/32");
    args.extend(["--provider-backups", "--snapshot-time", "05:30"]);
    let r = b.run(&args);
    r.expect_code(0);
    // The user hears which window 05:30 falls into.
    assert!(
        r.stderr()
            .contains("05:30: DigitalOcean backs up at a time of its choosing within 4-hour windows: daily backups in the 04:00-08:00 UTC window"),
        "{}",
        r.stderr()
    );
    let actions: Vec<Value> = sent(&fake, "POST", "/v2/droplets/")
        .into_iter()
        .filter_map(|l| l.body)
        .filter(|b| b["type"] == "enable_backups")
        .collect();
    assert_eq!(actions.len(), 1);
    assert_eq!(
        actions[0]["backup_policy"],
        json!({"plan": "daily", "hour": 4})
    );
    b.run(&cmd(&url, &["destroy", "web1", "--yes"]))
        .expect_code(0);
    assert_eq!(fake.leftovers(), Vec::<String>::new());
}

#[test]
fn every_failing_call_leaves_nothing_behind() {
    // Each write (and the lists the flow relies on) fails once with a 500: create either
    // succeeds after retries or rolls back; destroy then leaves nothing.
    for (method, path) in [
        ("POST", "/v2/account/keys"),
        ("POST", "/v2/tags"),
        ("POST", "/v2/firewalls"),
        ("POST", "/v2/droplets"),
        ("GET", "/v2/actions/"),
        ("GET", "/v2/droplets"),
        ("GET", "/v2/firewalls"),
        ("DELETE", "/v2/droplets/"),
        ("DELETE", "/v2/firewalls/"),
        ("DELETE", "/v2/account/keys/"),
    ] {
        let fake = FakeDo::start();
        let url = fake.url();
        let b = bin();
        fake.fail_nth(method, path, 1);
        let r = b.run(&create(&url, "web1", "203.0.113.7/32"));
        assert!(
            r.code() == 0 || r.code() == 1,
            "{method} {path}: {}",
            r.stderr()
        );
        b.run(&cmd(&url, &["destroy", "web1", "--yes"]))
            .expect_code(0);
        assert_eq!(fake.leftovers(), Vec::<String>::new(), "{method} {path}");
    }
    // A create that cannot finish at all rolls back everything it made.
    let fake = FakeDo::start();
    let url = fake.url();
    let b = bin();
    for n in 1..=6 {
        fake.fail_nth("POST", "/v2/droplets", n);
    }
    b.run(&create(&url, "web1", "203.0.113.7/32"))
        .expect_code(1);
    assert_eq!(fake.leftovers(), Vec::<String>::new());
}

// ---- The traps, one test each, on the fake's own API (what the adapter must work around).

fn call(
    fake: &FakeDo,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, Value, crate::support::HttpReply) {
    let text = body.map(|b| b.to_string());
    let r = http(
        &fake.url(),
        method,
        path,
        &[("Authorization", "Bearer t")],
        text.as_deref(),
    )
    .unwrap();
    let v = serde_json::from_str(&r.body).unwrap_or(Value::Null);
    (r.status, v, r)
}

#[test]
fn a_tight_rate_window_is_waited_out() {
    // The binary waits as told and still gets through a tight window.
    let fake = FakeDo::start();
    fake.set_rate_limit(8, 8.0);
    let b = bin();
    b.run(&create(&fake.url(), "web1", "203.0.113.7/32"))
        .expect_code(0);
    b.run(&cmd(&fake.url(), &["destroy", "web1", "--yes"]))
        .expect_code(0);
    assert_eq!(fake.leftovers(), Vec::<String>::new());
}

#[test]
fn trap_lists_are_paginated() {
    let fake = FakeDo::start();
    let url = fake.url();
    let b = bin();
    for i in 0..22 {
        call(
            &fake,
            "POST",
            "/v2/droplets",
            Some(json!({"name": format!("other{i}"), "region": "fra1",
            "size": "s-1vcpu-1gb", "image": "debian-12-x64", "tags": ["managed-by:bootstrap"]})),
        );
    }
    let (_, first, _) = call(&fake, "GET", "/v2/droplets", None);
    assert_eq!(first["droplets"].as_array().unwrap().len(), 20);
    let next = first["links"]["pages"]["next"].as_str().unwrap();
    assert!(next.starts_with(&url), "absolute: {next}");
    let (_, small, _) = call(&fake, "GET", "/v2/regions", None);
    assert!(
        small["links"]["pages"].get("next").is_none(),
        "absent at 20 or fewer"
    );
    // The adapter follows pages: a firewall on the third page of 10 is still found.
    call(&fake, "POST", "/v2/tags", Some(json!({"name": "x"})));
    for i in 0..25 {
        call(
            &fake,
            "POST",
            "/v2/firewalls",
            Some(json!({"name": format!("fw{i}")})),
        );
    }
    b.run(&create(&url, "web1", "203.0.113.7/32"))
        .expect_code(0);
    let per_page: Vec<String> = sent(&fake, "GET", "/v2/firewalls")
        .iter()
        .map(|l| l.query.clone())
        .collect();
    assert!(
        per_page.iter().all(|q| q.contains("per_page=200")),
        "{per_page:?}"
    );
    b.run(&create(&url, "web1", "203.0.113.7/32"))
        .expect_code(0);
    assert_eq!(
        fake.firewalls()
            .iter()
            .filter(|f| f["name"] == "bootstrap-web1")
            .count(),
        1
    );
}

/// A create killed right after its key upload leaves a key that nothing names: no droplet, no
/// firewall, and keys carry no tags. `destroy` still finds it (the deployment's
/// `bootstrap-key-fp:<name>:<md5>` tag, made before the upload) and leaves nothing behind.
#[test]
fn destroy_removes_a_key_orphaned_by_a_create_killed_after_the_upload() {
    let fake = FakeDo::start();
    let url = fake.url();
    let b = bin();
    // Hold up the firewall side (the deployment tag, then the firewall): only the key is made.
    fake.kit().fail_when(
        |r| {
            r.method == "POST"
                && (r.path == "/v2/firewalls"
                    || (r.path == "/v2/tags"
                        && String::from_utf8_lossy(r.body).contains("bootstrap-deployment:")))
        },
        fakecloud::Fault::Delay(std::time::Duration::from_secs(20)),
        usize::MAX,
    );
    let mut child = b.spawn(&create(&url, "orph", "203.0.113.7/32"));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while fake.keys().is_empty() {
        assert!(std::time::Instant::now() < deadline, "no key uploaded");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    fake.kit().clear_faults();
    assert_eq!(fake.keys()[0]["name"], "bootstrap-orph");
    assert!(fake.droplets().is_empty() && fake.firewalls().is_empty());
    // Keys are never listed, also not to find this one.
    let lists_before = sent(&fake, "GET", "/v2/account/keys")
        .iter()
        .filter(|l| l.path == "/v2/account/keys")
        .count();

    let r = b.run(&cmd(&url, &["destroy", "orph", "--yes"]));
    r.expect_code(0);
    assert!(
        r.stdout().contains("bootstrap-orph") && !r.stdout().contains("nothing of"),
        "{}",
        r.stdout()
    );
    assert_eq!(fake.leftovers(), Vec::<String>::new());
    let lists_after = sent(&fake, "GET", "/v2/account/keys")
        .iter()
        .filter(|l| l.path == "/v2/account/keys")
        .count();
    assert_eq!(lists_before, lists_after);
    // Idempotent: nothing left to remove.
    b.run(&cmd(&url, &["destroy", "orph", "--yes"]))
        .expect_code(0);
}

/// DigitalOcean deletes a droplet's backups with the droplet
/// (<https://docs.digitalocean.com/products/images/backups/support/>): `destroy` says so, one
/// line per backup, while our snapshots are kept unless `--delete-snapshots`.
#[test]
fn destroy_says_the_droplet_s_backups_go_with_it() {
    let fake = FakeDo::start();
    let url = fake.url();
    let b = bin();
    let mut args = create(&url, "web1", "203.0.113.7/32");
    args.push("--provider-backups");
    b.run(&args).expect_code(0);
    let droplet = fake.droplets()[0]["id"].as_i64().unwrap();
    let backup = fake.add_backup(droplet, "web1 backup");
    let r = b.run(&cmd(&url, &["destroy", "web1", "--yes"]));
    r.expect_code(0);
    assert!(
        r.stdout()
            .contains(&format!("removed provider backup web1 backup ({backup})")),
        "{}",
        r.stdout()
    );
    assert!(!fake.state_has_image(backup));
    assert_eq!(fake.leftovers(), Vec::<String>::new());
}

/// Without `--host`, `ssh` and `verify` find the droplet by its tags through the API and
/// connect to its address with the pinned host key. The system `ssh` is replaced by a script
/// that records its arguments (no network is reached; the live login is `verify.rs`'s).
#[test]
fn ssh_and_verify_find_the_droplet_by_its_tags() {
    use std::os::unix::fs::PermissionsExt;
    let fake = FakeDo::start();
    let url = fake.url();
    let mut b = bin();
    b.run(&create(&url, "web1", "203.0.113.7/32"))
        .expect_code(0);
    let ip = fake.droplets()[0]["networks"]["v4"][0]["ip_address"]
        .as_str()
        .unwrap()
        .to_owned();
    let bin_dir = b.state_dir().with_file_name("fake-bin");
    std::fs::create_dir_all(&bin_dir).unwrap();
    let record = bin_dir.join("ssh-args");
    let script = bin_dir.join("ssh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nfor a in \"$@\"; do echo \"$a\"; done >> {}\nexit 255\n",
            record.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    b.env("PATH", &path);

    let before = sent(&fake, "GET", "/v2/droplets").len();
    let mut ssh = cmd(&url, &["ssh", "web1"]);
    ssh.extend(["--", "true"]);
    let r = b.run(&ssh);
    assert_eq!(r.code(), 255, "the script's exit code: {}", r.stderr());
    assert!(
        sent(&fake, "GET", "/v2/droplets")
            .iter()
            .skip(before)
            .any(|l| l.query.contains("tag_name=bootstrap-deployment%3Aweb1")),
        "ssh looked the droplet up by its tag: {:?}",
        sent(&fake, "GET", "/v2/droplets")
            .iter()
            .skip(before)
            .map(|l| l.query.clone())
            .collect::<Vec<_>>()
    );
    let args = std::fs::read_to_string(&record).unwrap();
    let known_hosts = b.state_dir().join("digitalocean/web1/known_hosts");
    for want in [
        ip.as_str(),
        "StrictHostKeyChecking=yes",
        "HostKeyAlias=web1",
        &format!("UserKnownHostsFile={}", known_hosts.display()),
    ] {
        assert!(args.lines().any(|l| l.contains(want)), "{want}: {args}");
    }
    std::fs::remove_file(&record).unwrap();
    let r = b.run(&cmd(&url, &["verify", "web1", "--output", "json"]));
    let doc: Value = serde_json::from_str(&r.stdout()).unwrap();
    assert_eq!(doc["target"], format!("admin@{ip}:22"), "{doc}");
    assert!(std::fs::read_to_string(&record).unwrap().contains(&ip));
}
