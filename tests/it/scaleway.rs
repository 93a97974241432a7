//! `--provider scaleway` end to end against the stateful fake (`scaleway_fake.rs`): create,
//! re-run, list, snapshots, restore, destroy with nothing left, one test per trap of the live
//! API, and a fault matrix.

use serde_json::{Value, json};

use crate::support::{Bin, Run};
use fakecloud::scaleway::{FakeScaleway, PROJECT};

fn bin() -> Bin {
    let mut b = Bin::new();
    b.env("SCW_SECRET_KEY", "00000000-0000-4000-8000-000000000000");
    b.env("SCW_DEFAULT_PROJECT_ID", PROJECT);
    b
}

fn create(b: &Bin, url: &str, name: &str, extra: &[&str]) -> Run {
    let mut a = vec![
        "create",
        "--provider",
        "scaleway",
        "--endpoint",
        url,
        "--name",
        name,
        "--ssh-from",
        "203.0.113.7/32",
    ];
    a.extend(extra);
    b.run(&a)
}

fn destroy(b: &Bin, url: &str, name: &str, extra: &[&str]) -> Run {
    let mut a = vec![
        "destroy",
        name,
        "--provider",
        "scaleway",
        "--endpoint",
        url,
        "--yes",
    ];
    a.extend(extra);
    b.run(&a)
}

fn server_named(fake: &FakeScaleway, name: &str) -> Value {
    fake.w()
        .servers
        .values()
        .find(|s| s["name"] == name)
        .cloned()
        .unwrap_or_else(|| panic!("no server {name}"))
}

#[test]
fn create_completes_the_server_in_order_and_destroy_leaves_nothing_billed() {
    let fake = FakeScaleway::start();
    let b = bin();
    let url = fake.url();
    create(&b, &url, "web1", &[]).expect_code(0);

    let s = server_named(&fake, "web1");
    assert_eq!(s["state"], "running");
    let id = s["id"].as_str().unwrap().to_owned();
    let tags: Vec<&str> = s["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert!(tags.contains(&"managed-by=bootstrap") && tags.contains(&"bootstrap-deployment=web1"));
    {
        let w = fake.w();
        // Our group, by id, stateful, drop inbound, SSH from the one source only.
        let g = &w.groups[s["security_group"]["id"].as_str().unwrap()];
        assert_eq!(g["name"], "bootstrap-web1");
        assert_eq!(g["stateful"], true);
        assert_eq!(g["inbound_default_policy"], "drop");
        assert_eq!(g["outbound_default_policy"], "accept");
        let rules = &w.rules[g["id"].as_str().unwrap()];
        assert_eq!(rules.len(), 1);
        assert_eq!(rules[0]["protocol"], "TCP");
        assert_eq!(rules[0]["ip_range"], "203.0.113.7/32");
        assert_eq!(rules[0]["dest_port_from"], 22);
        // The user-data went in as text/plain, before poweron.
        assert!(w.user_data[&id].starts_with("#cloud-config"));
        assert!(w.booted_without_user_data.is_empty());
        let patch = w
            .log
            .iter()
            .position(|l| l.method == "PATCH" && l.path.ends_with("/user_data/cloud-init"))
            .unwrap();
        assert!(w.log[patch].content_type.starts_with("text/plain"));
        assert_eq!(w.log[patch].status, 204);
        let poweron = w
            .log
            .iter()
            .position(|l| l.method == "POST" && l.path.ends_with("/action"))
            .unwrap();
        assert!(patch < poweron);
        assert_eq!(w.log[poweron].status, 202);
        // IPv4 and IPv6, and no IAM key anywhere.
        assert_eq!(w.ips.len(), 2);
        assert!(!w.log.iter().any(|l| l.path.contains("/iam/")));
    }
    // A re-run finds everything and makes nothing.
    let before = fake.w().servers.len();
    create(&b, &url, "web1", &[]).expect_code(0);
    assert_eq!(fake.w().servers.len(), before);

    let r = b.run(&["list", "--provider", "scaleway", "--endpoint", &url]);
    r.expect_code(0);
    assert!(r.stdout().contains("web1"), "{}", r.stdout());

    destroy(&b, &url, "web1", &[]).expect_code(0);
    assert_eq!(fake.orphans(), Vec::<String>::new());
    // Re-runnable.
    destroy(&b, &url, "web1", &[]).expect_code(0);
}

#[test]
fn a_new_ssh_from_changes_only_bootstraps_rules() {
    let fake = FakeScaleway::start();
    let b = bin();
    let url = fake.url();
    create(&b, &url, "web1", &[]).expect_code(0);
    let gid = server_named(&fake, "web1")["security_group"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // Someone's own rule on another port.
    fake.w().rules.get_mut(&gid).unwrap().push(
        json!({"id": "00000000-0000-4000-8000-00000000ffff",
        "protocol": "TCP", "direction": "inbound", "action": "accept", "ip_range": "0.0.0.0/0",
        "dest_port_from": 443, "dest_port_to": 443, "editable": true}),
    );
    let r = b.run(&[
        "create",
        "--provider",
        "scaleway",
        "--endpoint",
        &url,
        "--name",
        "web1",
        "--ssh-from",
        "198.51.100.0/24",
    ]);
    r.expect_code(0);
    let rules = fake.w().rules[&gid].clone();
    let ranges: Vec<(&str, u64)> = rules
        .iter()
        .map(|r| {
            (
                r["ip_range"].as_str().unwrap(),
                r["dest_port_from"].as_u64().unwrap(),
            )
        })
        .collect();
    assert!(ranges.contains(&("198.51.100.0/24", 22)), "{ranges:?}");
    assert!(!ranges.contains(&("203.0.113.7/32", 22)), "{ranges:?}");
    assert!(ranges.contains(&("0.0.0.0/0", 443)), "{ranges:?}");
    destroy(&b, &url, "web1", &[]).expect_code(0);
    assert_eq!(fake.orphans(), Vec::<String>::new());
}

fn job(b: &Bin, url: &str, at: &str) -> Run {
    b.run(&[
        "snapshot",
        "run",
        "--provider",
        "scaleway",
        "--endpoint",
        url,
        "--at",
        at,
    ])
}

#[test]
fn four_days_keep_two_then_restore_and_delete_everything() {
    let fake = FakeScaleway::start();
    let b = bin();
    let url = fake.url();
    create(
        &b,
        &url,
        "web1",
        &["--snapshots", "daily:2", "--snapshot-time", "03:00"],
    )
    .expect_code(0);
    for day in ["26", "27", "28", "29"] {
        job(&b, &url, &format!("2026-11-{day}T04:00:00Z")).expect_code(0);
    }
    let names = |fake: &FakeScaleway| {
        let mut v: Vec<String> = fake
            .w()
            .snapshots
            .values()
            .map(|s| s["name"].as_str().unwrap().to_owned())
            .collect();
        v.sort();
        v
    };
    assert_eq!(names(&fake), ["web1-20261128T0300Z", "web1-20261129T0300Z"]);
    let r = b.run(&[
        "snapshot",
        "list",
        "web1",
        "--provider",
        "scaleway",
        "--endpoint",
        &url,
    ]);
    r.expect_code(0);
    assert!(r.stdout().contains("web1-20261129T0300Z"), "{}", r.stdout());
    let r = b.run(&[
        "snapshot",
        "set",
        "web1",
        "daily:3",
        "--provider",
        "scaleway",
        "--endpoint",
        &url,
    ]);
    r.expect_code(0);
    assert!(
        server_named(&fake, "web1")["tags"]
            .as_array()
            .unwrap()
            .contains(&json!("bootstrap-keep=3")),
        "{}",
        r.stderr()
    );

    // Restore: an image from our snapshot, tagged, gone with the deployment.
    let snap = fake
        .w()
        .snapshots
        .values()
        .find(|s| s["name"] == "web1-20261129T0300Z")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    create(&b, &url, "web2", &["--from-snapshot", &snap]).expect_code(0);
    {
        let w = fake.w();
        assert_eq!(w.images.len(), 1);
        let img = w.images.values().next().unwrap();
        assert_eq!(img["root_volume"]["id"], snap.as_str());
        assert!(
            img["tags"]
                .as_array()
                .unwrap()
                .contains(&json!("bootstrap-deployment=web2"))
        );
    }
    destroy(&b, &url, "web2", &[]).expect_code(0);
    assert!(
        fake.w().images.is_empty(),
        "the restore image goes with web2"
    );
    assert!(
        fake.w().snapshots.contains_key(&snap),
        "deleting the image leaves the snapshot"
    );

    let r = destroy(&b, &url, "web1", &[]);
    r.expect_code(0);
    assert_eq!(fake.w().snapshots.len(), 2, "kept: {}", r.stdout());
    destroy(&b, &url, "web1", &["--delete-snapshots"]).expect_code(0);
    assert!(fake.w().snapshots.is_empty());
    assert_eq!(fake.orphans(), Vec::<String>::new());
}

// --- traps of the live API, one test each ---

fn call(
    fake: &FakeScaleway,
    method: &str,
    path: &str,
    ct: &str,
    body: &str,
) -> crate::support::HttpReply {
    crate::support::http(
        &fake.url(),
        method,
        path,
        &[("X-Auth-Token", "t"), ("Content-Type", ct)],
        Some(body),
    )
    .unwrap()
}

fn post_server(fake: &FakeScaleway, extra: Value) -> crate::support::HttpReply {
    let mut b = json!({"name": "x", "commercial_type": "PLAY2-PICO", "image": "ubuntu_noble",
        "volumes": {"0": {"volume_type": "sbs_volume"}}, "project": PROJECT});
    for (k, v) in extra.as_object().unwrap() {
        b[k] = v.clone();
    }
    call(
        fake,
        "POST",
        "/instance/v1/zones/fr-par-1/servers",
        "application/json",
        &b.to_string(),
    )
}

#[test]
fn trap_user_data_must_be_text_plain() {
    let fake = FakeScaleway::start();
    let r = post_server(&fake, json!({}));
    assert_eq!(r.status, 201);
    let id = serde_json::from_str::<Value>(&r.body).unwrap()["server"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = format!("/instance/v1/zones/fr-par-1/servers/{id}/user_data/cloud-init");
    assert_eq!(
        call(
            &fake,
            "PATCH",
            &path,
            "application/json",
            "\"#cloud-config\""
        )
        .status,
        400
    );
    assert_eq!(
        call(&fake, "PATCH", &path, "text/plain", "#cloud-config\n").status,
        204
    );
}

#[test]
fn trap_a_group_name_where_an_id_belongs_is_404_and_none_means_the_default_group() {
    let fake = FakeScaleway::start();
    let r = post_server(&fake, json!({"security_group": "bootstrap-web1"}));
    assert_eq!(r.status, 404, "{}", r.body);
    let r = post_server(&fake, json!({}));
    let s: Value = serde_json::from_str(&r.body).unwrap();
    let gid = s["server"]["security_group"]["id"].as_str().unwrap();
    assert_eq!(fake.w().groups[gid]["project_default"], true);
}

#[test]
fn trap_terminate_leaves_the_sbs_volume_which_destroy_deletes() {
    let fake = FakeScaleway::start();
    let r = post_server(&fake, json!({}));
    let id = serde_json::from_str::<Value>(&r.body).unwrap()["server"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let act = format!("/instance/v1/zones/fr-par-1/servers/{id}/action");
    assert_eq!(
        call(
            &fake,
            "POST",
            &act,
            "application/json",
            r#"{"action":"terminate"}"#
        )
        .status,
        202
    );
    for _ in 0..3 {
        let _ = call(
            &fake,
            "GET",
            &format!("/instance/v1/zones/fr-par-1/servers/{id}"),
            "application/json",
            "",
        );
    }
    let w = fake.w();
    assert!(w.servers.is_empty());
    assert_eq!(w.volumes.len(), 1, "the volume stays, billed");
    assert_eq!(w.volumes.values().next().unwrap()["status"], "available");
    // (The tool's own teardown deleting it is checked by every destroy above: orphans() is empty.)
}

#[test]
fn trap_a_429_without_headers_is_retried_with_backoff() {
    let fake = FakeScaleway::start();
    fake.throttle_every(7);
    let b = bin();
    let url = fake.url();
    create(&b, &url, "web1", &[]).expect_code(0);
    assert!(fake.request_log().iter().any(|l| l.2 == 429));
    destroy(&b, &url, "web1", &[]).expect_code(0);
    assert_eq!(fake.orphans(), Vec::<String>::new());
}

#[test]
fn trap_deleting_an_image_leaves_its_snapshot() {
    let fake = FakeScaleway::start();
    let b = bin();
    let url = fake.url();
    create(&b, &url, "web1", &["--snapshots", "daily:2"]).expect_code(0);
    job(&b, &url, "2026-11-26T04:00:00Z").expect_code(0);
    let snap = fake.w().snapshots.keys().next().unwrap().clone();
    let r = call(&fake, "POST", "/instance/v1/zones/fr-par-1/images", "application/json",
        &json!({"name": "i", "root_volume": snap, "arch": "x86_64", "project": PROJECT, "tags": ["managed-by=bootstrap"]}).to_string());
    assert_eq!(r.status, 201);
    let img = serde_json::from_str::<Value>(&r.body).unwrap()["image"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // A snapshot an image still uses cannot go; the tool removes our image first.
    assert_eq!(
        call(
            &fake,
            "DELETE",
            &format!("/block/v1/zones/fr-par-1/snapshots/{snap}"),
            "application/json",
            ""
        )
        .status,
        412
    );
    assert_eq!(
        call(
            &fake,
            "DELETE",
            &format!("/instance/v1/zones/fr-par-1/images/{img}"),
            "application/json",
            ""
        )
        .status,
        204
    );
    assert!(fake.w().snapshots.contains_key(&snap));
    call(&fake, "POST", "/instance/v1/zones/fr-par-1/images", "application/json",
        &json!({"name": "i", "root_volume": snap, "arch": "x86_64", "project": PROJECT, "tags": ["managed-by=bootstrap"]}).to_string());
    destroy(&b, &url, "web1", &["--delete-snapshots"]).expect_code(0);
    assert!(fake.w().snapshots.is_empty());
    assert_eq!(fake.orphans(), Vec::<String>::new());
}

#[test]
fn trap_both_pagination_styles_are_followed() {
    let fake = FakeScaleway::start();
    let b = bin();
    let url = fake.url();
    for n in ["web1", "web2", "web3"] {
        create(&b, &url, n, &["--snapshots", "daily:2"]).expect_code(0);
    }
    job(&b, &url, "2026-11-26T04:00:00Z").expect_code(0);
    // One item a page: Instance (X-Total-Count) and Block (total_count) lists must be walked.
    fake.w().max_page = 1;
    let r = b.run(&["list", "--provider", "scaleway", "--endpoint", &url]);
    r.expect_code(0);
    for n in ["web1", "web2", "web3"] {
        assert!(r.stdout().contains(n), "{}", r.stdout());
    }
    let r = job(&b, &url, "2026-11-26T05:00:00Z");
    r.expect_code(0);
    assert_eq!(
        fake.w().snapshots.len(),
        3,
        "each slot already has its snapshot: {}",
        r.stdout()
    );
    for n in ["web1", "web2", "web3"] {
        destroy(&b, &url, n, &["--delete-snapshots"]).expect_code(0);
    }
    assert_eq!(fake.orphans(), Vec::<String>::new());
    assert!(fake.w().snapshots.is_empty());
}

#[test]
fn missing_project_or_unknown_zone_is_refused_offline() {
    let fake = FakeScaleway::start();
    let mut b = bin();
    b.unset("SCW_DEFAULT_PROJECT_ID");
    let r = create(&b, &fake.url(), "web1", &[]);
    r.expect_code(2);
    assert!(
        r.stderr().contains("SCW_DEFAULT_PROJECT_ID"),
        "{}",
        r.stderr()
    );
    let b = bin();
    let r = create(&b, &fake.url(), "web1", &["--location", "mars-1"]);
    r.expect_code(2);
    assert!(r.stderr().contains("fr-par-1"), "{}", r.stderr());
    let r = create(&b, &fake.url(), "web1", &["--provider-backups"]);
    r.expect_code(2);
    assert_eq!(fake.requests(), 0, "nothing was sent");
}

/// Every request of a create failing in turn (a non-retryable 400): the create fails and
/// rolls back, or succeeds; a destroy after it leaves nothing either way.
#[test]
fn fault_matrix_leaves_no_orphans() {
    let clean = FakeScaleway::start();
    create(&bin(), &clean.url(), "web1", &[]).expect_code(0);
    let n = clean.requests();
    assert!(n > 10, "{n}");
    for at in 1..=n {
        let fake = FakeScaleway::start();
        let at = u64::try_from(at).unwrap();
        fake.fail_request(at, fakecloud::Fault::Status(400, "invalid_arguments"));
        let b = bin();
        let url = fake.url();
        let r = create(&b, &url, "web1", &[]);
        if r.code() != 0 {
            let left = fake.orphans();
            assert!(
                left.is_empty(),
                "request {at}: the rollback left {left:?}\n{}",
                r.stderr()
            );
        }
        destroy(&b, &url, "web1", &[]).expect_code(0);
        assert_eq!(fake.orphans(), Vec::<String>::new(), "request {at}");
    }
}

/// A failed create in `nl-ams-1` whose rollback fails too prints a `bootstrap destroy` that
/// carries `--zone nl-ams-1`; run as printed (no SCW_DEFAULT_ZONE), it finishes the job.
#[test]
fn a_failed_rollback_in_another_zone_prints_a_destroy_that_finishes_it() {
    let fake = FakeScaleway::start();
    let mut b = bin();
    b.env("BOOTSTRAP_RETRY_MAX", "0");
    let url = fake.url();
    let fault = fakecloud::Fault::Status(500, "internal_error");
    // Power-on fails, and so does the rollback's delete of the (stopped) server.
    fake.fail_matching(
        "POST",
        "/instance/v1/zones/nl-ams-1/servers/*/action",
        fault,
        1,
    );
    fake.fail_matching("DELETE", "/instance/v1/zones/nl-ams-1/servers", fault, 1);
    let r = create(
        &b,
        &url,
        "ams1",
        &["--location", "nl-ams-1", "--timeout", "60s"],
    );
    r.expect_code(1);
    fake.clear_faults();
    let err = r.stderr();
    assert!(err.contains("rollback failed"), "{err}");
    assert!(
        fake.w().servers.values().all(|s| s["zone"] == "nl-ams-1"),
        "made in the asked zone"
    );
    assert!(!fake.orphans().is_empty(), "the rollback really failed");
    let cmd = crate::support::printed_destroy(&err).expect("a printed destroy");
    assert!(
        cmd.windows(2)
            .any(|w| w[0] == "--zone" && w[1] == "nl-ams-1"),
        "{cmd:?}"
    );
    let a: Vec<&str> = cmd.iter().map(String::as_str).collect();
    b.run(&a).expect_code(0);
    assert_eq!(fake.orphans(), Vec::<String>::new());
}

/// `--zone` reaches every command; `create --location` and `--zone` must agree; an unknown
/// zone is refused offline.
#[test]
fn zone_flag_reaches_every_command_and_conflicts_are_refused() {
    let fake = FakeScaleway::start();
    let b = bin();
    let url = fake.url();
    let r = create(
        &b,
        &url,
        "waw1",
        &["--location", "nl-ams-1", "--zone", "pl-waw-1"],
    );
    r.expect_code(2);
    assert!(r.stderr().contains("--zone pl-waw-1"), "{}", r.stderr());
    let r = b.run(&[
        "list",
        "--provider",
        "scaleway",
        "--endpoint",
        &url,
        "--zone",
        "mars-1",
    ]);
    r.expect_code(2);
    assert!(r.stderr().contains("pl-waw-1"), "{}", r.stderr());
    assert_eq!(fake.request_count(), 0, "nothing was sent");

    create(&b, &url, "waw1", &["--zone", "pl-waw-1"]).expect_code(0);
    assert_eq!(server_named(&fake, "waw1")["zone"], "pl-waw-1");
    let list = |zone: &str| {
        let r = b.run(&[
            "list",
            "--provider",
            "scaleway",
            "--endpoint",
            &url,
            "--zone",
            zone,
        ]);
        r.expect_code(0);
        r.stdout()
    };
    assert!(list("pl-waw-1").contains("waw1"));
    assert!(
        !list("fr-par-1").contains("waw1"),
        "each zone is its own API"
    );
    destroy(&b, &url, "waw1", &["--zone", "pl-waw-1"]).expect_code(0);
    assert_eq!(fake.orphans(), Vec::<String>::new());
}

/// `snapshot install --provider scaleway` names Scaleway's credential variables (the secret
/// key, the project and the zone the job lists in) and no other provider's, in every target.
#[test]
fn snapshot_install_names_scaleway_credentials() {
    let b = bin();
    let want = [
        "SCW_SECRET_KEY",
        "SCW_DEFAULT_PROJECT_ID",
        "SCW_DEFAULT_ZONE",
    ];
    // The CronJob needs its image; the units, a binary the sandbox can run.
    for target in [
        ["--systemd", "--binary", "/usr/local/bin/bootstrap"],
        ["--cron", "--binary", "/usr/local/bin/bootstrap"],
        [
            "--kubernetes",
            "--image",
            "registry.example.com/bootstrap:0.1.0",
        ],
    ] {
        let mut args = vec!["snapshot", "install", "--provider", "scaleway"];
        args.extend(target);
        let target = target[0];
        let r = b.run(&args);
        r.expect_code(0);
        let out = r.stdout();
        for v in want {
            assert!(out.contains(v), "{target}: {v} missing:\n{out}");
        }
        assert!(!out.contains("HCLOUD_TOKEN"), "{target}:\n{out}");
        assert!(!out.contains("DIGITALOCEAN"), "{target}:\n{out}");
        assert!(!out.contains("AWS_"), "{target}:\n{out}");
        assert!(
            out.contains("snapshot run --provider scaleway")
                || out.contains("\"--provider\", \"scaleway\"")
                || out.contains("- scaleway"),
            "{target}: the job runs for Scaleway:\n{out}"
        );
    }
    let r = b.run(&[
        "snapshot",
        "install",
        "--kubernetes",
        "--image",
        "registry.example.com/bootstrap:0.1.0",
        "--provider",
        "scaleway",
    ]);
    for v in want {
        assert!(
            r.stdout().contains(&format!("--from-literal={v}=")),
            "{}",
            r.stdout()
        );
    }
}

/// Without `--zone` or `--location`, `create` uses the same zone as every other command:
/// `SCW_DEFAULT_ZONE`, else the scw profile's `default_zone`; and prints it into its commands.
#[test]
fn create_defaults_to_the_zone_every_other_command_uses() {
    let fake = FakeScaleway::start();
    let url = fake.url();
    let mut b = bin();
    b.env("SCW_DEFAULT_ZONE", "fr-par-2");
    create(&b, &url, "par2", &[]).expect_code(0);
    assert_eq!(server_named(&fake, "par2")["zone"], "fr-par-2");
    let r = b.run(&["list", "--provider", "scaleway", "--endpoint", &url]);
    assert!(r.stdout().contains("par2"), "{}", r.stdout());
    destroy(&b, &url, "par2", &[]).expect_code(0);
    assert_eq!(fake.orphans(), Vec::<String>::new());

    // The profile's default_zone, from the scw config file.
    let mut b = bin();
    let cfg = b.dir.path().join("scw.yaml");
    std::fs::write(&cfg, "default_zone: nl-ams-2\n").unwrap();
    b.env("SCW_CONFIG_PATH", cfg.to_str().unwrap());
    create(&b, &url, "ams2", &[]).expect_code(0);
    assert_eq!(server_named(&fake, "ams2")["zone"], "nl-ams-2");
    destroy(&b, &url, "ams2", &[]).expect_code(0);
    assert_eq!(fake.orphans(), Vec::<String>::new());
}
