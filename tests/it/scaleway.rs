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

// --- The serverless-jobs snapshot engine ---------------------------------------------------

const KEY: &str = "00000000-0000-4000-8000-000000000000";
const JOB_IMAGE: &str = "rg.fr-par.scw.cloud/ns/bootstrap:1.0";

fn engine_flags<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    let mut a = vec![
        "--snapshot-engine",
        "serverless-jobs",
        "--job-image",
        JOB_IMAGE,
    ];
    a.extend(extra);
    a
}

/// The one job definition and the one secret (both must exist, one each).
fn job_and_secret(fake: &FakeScaleway) -> (Value, Value) {
    let w = fake.w();
    assert_eq!(w.job_definitions.len(), 1, "{:?}", w.job_definitions);
    assert_eq!(w.secrets.len(), 1, "{:?}", w.secrets);
    (
        w.job_definitions.values().next().unwrap().clone(),
        w.secrets.values().next().unwrap().clone(),
    )
}

/// `--snapshot-engine serverless-jobs`: the job definition `bootstrap-web1` runs the pushed
/// image with `snapshot run --provider scaleway` on the schedule's cron; the secret key is only
/// in a Secret Manager secret the job references, never in its environment. The job run takes
/// the server's snapshots (it does not skip them as "kept by the provider"); `snapshot set`
/// replaces the job; destroy removes job and secret.
#[test]
fn serverless_jobs_engine_keeps_the_schedule_at_scaleway_with_the_key_in_secret_manager() {
    use base64::Engine as _;
    let fake = FakeScaleway::start();
    let b = bin();
    let url = fake.url();
    create(
        &b,
        &url,
        "web1",
        &engine_flags(&[
            "--snapshots",
            "weekly:4",
            "--snapshot-time",
            "03:05",
            "--snapshot-day",
            "sun",
        ]),
    )
    .expect_code(0);
    let (jd, secret) = job_and_secret(&fake);
    assert_eq!(jd["name"], "bootstrap-web1");
    assert_eq!(jd["region"], "fr-par");
    assert_eq!(jd["image_uri"], JOB_IMAGE);
    assert_eq!(
        jd["cron_schedule"],
        json!({"schedule": "5 3 * * 0", "timezone": "UTC"})
    );
    assert_eq!(
        jd["args"],
        json!([
            "snapshot",
            "run",
            "--provider",
            "scaleway",
            "--zone",
            "fr-par-1"
        ])
    );
    assert_eq!(
        jd["environment_variables"]["SCW_DEFAULT_PROJECT_ID"],
        PROJECT
    );
    assert_eq!(jd["environment_variables"]["SCW_DEFAULT_ZONE"], "fr-par-1");
    assert!(
        jd["environment_variables"].get("SCW_SECRET_KEY").is_none(),
        "{jd}"
    );
    assert!(!jd.to_string().contains(KEY), "no key in the job: {jd}");
    let desc = jd["description"].as_str().unwrap();
    assert!(
        desc.contains("managed-by=bootstrap") && desc.contains("bootstrap-deployment=web1"),
        "{desc}"
    );
    // The job's one secret reference: SCW_SECRET_KEY from our secret, latest version.
    {
        let w = fake.w();
        let refs: Vec<&Value> = w.job_secrets.values().collect();
        assert_eq!(refs.len(), 1, "{refs:?}");
        assert_eq!(refs[0]["job_definition_id"], jd["id"]);
        assert_eq!(refs[0]["secret_manager_id"], secret["id"]);
        assert_eq!(refs[0]["secret_manager_version"], "latest");
        assert_eq!(refs[0]["env_var"]["name"], "SCW_SECRET_KEY");
        let tags = tags_of(&secret);
        assert!(
            tags.contains(&"managed-by=bootstrap".to_owned()),
            "{tags:?}"
        );
        assert!(
            tags.contains(&"bootstrap-deployment=web1".to_owned()),
            "{tags:?}"
        );
        let versions = &w.secret_versions[secret["id"].as_str().unwrap()];
        assert_eq!(versions.len(), 1);
        let data = base64::engine::general_purpose::STANDARD
            .decode(versions[0]["data"].as_str().unwrap())
            .unwrap();
        assert_eq!(data, KEY.as_bytes());
    }
    let s = server_named(&fake, "web1");
    assert!(
        tags_of(&s).contains(&"bootstrap-snapshot-engine=serverless-jobs".to_owned()),
        "{s}"
    );
    // A re-run finds the job and makes no second one.
    create(
        &b,
        &url,
        "web1",
        &engine_flags(&["--snapshots", "weekly:4", "--snapshot-time", "03:05"]),
    )
    .expect_code(0);
    job_and_secret(&fake);

    // What the job runs: it takes the due snapshot of this server.
    let r = job(&b, &url, "2026-11-29T03:06:00Z");
    r.expect_code(0);
    assert!(
        !r.stdout().contains("kept by the provider"),
        "{}",
        r.stdout()
    );
    assert_eq!(fake.w().snapshots.len(), 1, "{}", r.stdout());

    // A new schedule: a new job (same image, new cron and secret), the old one gone.
    b.run(&[
        "snapshot",
        "set",
        "web1",
        "daily:3",
        "--snapshot-time",
        "04:30",
        "--provider",
        "scaleway",
        "--endpoint",
        &url,
    ])
    .expect_code(0);
    let (jd2, secret2) = job_and_secret(&fake);
    assert_ne!(jd2["id"], jd["id"]);
    assert_ne!(secret2["id"], secret["id"]);
    assert_eq!(jd2["image_uri"], JOB_IMAGE);
    assert_eq!(jd2["cron_schedule"]["schedule"], "30 4 * * *");

    let r = destroy(&b, &url, "web1", &[]);
    r.expect_code(0);
    assert!(r.stdout().contains("bootstrap-web1") || r.stderr().contains("bootstrap-web1"));
    {
        let w = fake.w();
        assert!(w.job_definitions.is_empty() && w.job_secrets.is_empty());
        assert!(w.secrets.is_empty() && w.secret_versions.is_empty());
    }
    destroy(&b, &url, "web1", &["--delete-snapshots"]).expect_code(0);
    assert_eq!(fake.orphans(), Vec::<String>::new());
}

fn tags_of(v: &Value) -> Vec<String> {
    v["tags"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|t| t.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// The engine is listed and needs its image, a region with Serverless Jobs, and nothing else:
/// each mistake is refused offline (exit 2, no request sent).
#[test]
fn serverless_jobs_engine_is_offered_and_checked_offline() {
    let fake = FakeScaleway::start();
    let b = bin();
    let url = fake.url();
    let r = create(&b, &url, "web1", &["--snapshot-engine", "bogus"]);
    r.expect_code(2);
    assert!(
        r.stderr().contains("job, serverless-jobs"),
        "{}",
        r.stderr()
    );
    let r = create(&b, &url, "web1", &["--snapshot-engine", "serverless-jobs"]);
    r.expect_code(2);
    assert!(r.stderr().contains("--job-image"), "{}", r.stderr());
    let r = create(&b, &url, "web1", &["--job-image", JOB_IMAGE]);
    r.expect_code(2);
    assert!(
        r.stderr()
            .contains("only applies to --snapshot-engine serverless-jobs"),
        "{}",
        r.stderr()
    );
    let r = create(&b, &url, "web1", &engine_flags(&["--zone", "it-mil-1"]));
    r.expect_code(2);
    assert!(r.stderr().contains("it-mil"), "{}", r.stderr());
    let r = create(
        &b,
        &url,
        "web1",
        &[
            "--snapshot-engine",
            "serverless-jobs",
            "--job-image",
            "bootstrap latest",
        ],
    );
    r.expect_code(2);
    assert_eq!(fake.request_count(), 0, "nothing was sent");
    let r = b.run(&[
        "create",
        "--provider",
        "hetzner",
        "--name",
        "web1",
        "--ssh-from",
        "203.0.113.7/32",
        "--job-image",
        JOB_IMAGE,
        "--dry-run",
    ]);
    r.expect_code(2);
    assert!(r.stderr().contains("--provider scaleway"), "{}", r.stderr());
}

/// Each request of the engine failing in turn, as a refused call (no retry: rollback) and as
/// one whose answer is lost after the work (retried): no job definition, secret or anything
/// else is left once the create failed and rolled back, or after the destroy that follows.
#[test]
fn serverless_jobs_engine_faults_leave_nothing() {
    use std::sync::atomic::{AtomicU64, Ordering};
    let is_engine =
        |path: &str| path.contains("/serverless-jobs/") || path.contains("/secret-manager/");
    let clean = FakeScaleway::start();
    create(&bin(), &clean.url(), "web1", &engine_flags(&[])).expect_code(0);
    let n = clean.w().log.iter().filter(|l| is_engine(&l.path)).count();
    assert!(n >= 5, "{n}");
    for fault in [
        fakecloud::Fault::Status(400, "invalid_arguments"),
        fakecloud::Fault::DropAfter,
    ] {
        let mut failed = 0;
        for k in 1..=u64::try_from(n).unwrap() {
            let fake = FakeScaleway::start();
            let seen = AtomicU64::new(0);
            fake.fail_when(
                move |r| is_engine(r.path) && seen.fetch_add(1, Ordering::Relaxed) + 1 == k,
                fault,
                1,
            );
            let (b, url) = (bin(), fake.url());
            let r = create(&b, &url, "web1", &engine_flags(&[]));
            if r.code() == 0 {
                job_and_secret(&fake);
            } else {
                failed += 1;
                let left = fake.orphans();
                assert!(
                    left.is_empty(),
                    "{fault:?} at engine call {k}: left {left:?}\n{}",
                    r.stderr()
                );
            }
            destroy(&b, &url, "web1", &[]).expect_code(0);
            assert_eq!(
                fake.orphans(),
                Vec::<String>::new(),
                "{fault:?} at engine call {k}"
            );
        }
        // A refused call fails the create; a lost answer is looked up and the create retried.
        if fault == fakecloud::Fault::DropAfter {
            assert_eq!(failed, 0, "{fault:?}");
        } else {
            assert_eq!(failed, n, "{fault:?}");
        }
    }
}

/// The fake's Serverless Jobs and Secret Manager answer like the live recordings: creates 200,
/// a job definition's 404 without a type, a secret reference needs an existing secret and
/// exactly one of `env_var_name` and `path`, deleting a job definition takes its references,
/// a version's data is base64 and never echoed.
#[test]
fn trap_serverless_jobs_and_secret_manager_shapes() {
    let fake = FakeScaleway::start();
    let j = "application/json";
    let secret = call(
        &fake,
        "POST",
        "/secret-manager/v1beta1/regions/fr-par/secrets",
        j,
        &json!({"project_id": PROJECT, "name": "s", "tags": [], "type": "opaque", "path": "/p", "protected": false}).to_string(),
    );
    assert_eq!(secret.status, 200, "{}", secret.body);
    let sid = serde_json::from_str::<Value>(&secret.body).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let dup = call(
        &fake,
        "POST",
        "/secret-manager/v1beta1/regions/fr-par/secrets",
        j,
        &json!({"project_id": PROJECT, "name": "s", "path": "/p"}).to_string(),
    );
    assert_eq!(dup.status, 409, "{}", dup.body);
    let v = call(
        &fake,
        "POST",
        &format!("/secret-manager/v1beta1/regions/fr-par/secrets/{sid}/versions"),
        j,
        r#"{"data":"not base64!"}"#,
    );
    assert_eq!(v.status, 400, "{}", v.body);
    let v = call(
        &fake,
        "POST",
        &format!("/secret-manager/v1beta1/regions/fr-par/secrets/{sid}/versions"),
        j,
        r#"{"data":"eW91cl9zZWNyZXQ="}"#,
    );
    assert_eq!(v.status, 200, "{}", v.body);
    assert!(!v.body.contains("eW91cl9zZWNyZXQ="), "{}", v.body);

    let jd = call(
        &fake,
        "POST",
        "/serverless-jobs/v1alpha2/regions/fr-par/job-definitions",
        j,
        &json!({"name": "jd", "cpu_limit": 120, "memory_limit": 256, "image_uri": "docker.io/alpine:latest",
            "project_id": PROJECT, "cron_schedule": {"schedule": "5 4 1 * *", "timezone": "UTC"}}).to_string(),
    );
    assert_eq!(jd.status, 200, "{}", jd.body);
    let jid = serde_json::from_str::<Value>(&jd.body).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let refs = |body: Value| {
        call(
            &fake,
            "POST",
            "/serverless-jobs/v1alpha2/regions/fr-par/secrets",
            j,
            &body.to_string(),
        )
    };
    let both = refs(
        json!({"job_definition_id": jid, "secrets": [{"secret_manager_id": sid,
        "secret_manager_version": "latest", "env_var_name": "A", "path": "/a"}]}),
    );
    assert_eq!(both.status, 400, "{}", both.body);
    let missing = refs(
        json!({"job_definition_id": jid, "secrets": [{"secret_manager_id":
        "99999999-0000-4000-8000-000000000099", "secret_manager_version": "latest", "env_var_name": "A"}]}),
    );
    assert_eq!(missing.status, 404, "{}", missing.body);
    let good = refs(
        json!({"job_definition_id": jid, "secrets": [{"secret_manager_id": sid,
        "secret_manager_version": "latest", "env_var_name": "A"}]}),
    );
    assert_eq!(good.status, 200, "{}", good.body);
    assert!(
        good.body.contains(r#""env_var":{"name":"A"}"#),
        "{}",
        good.body
    );
    assert_eq!(fake.w().job_secrets.len(), 1);

    let del = call(
        &fake,
        "DELETE",
        &format!("/serverless-jobs/v1alpha2/regions/fr-par/job-definitions/{jid}"),
        j,
        "",
    );
    assert_eq!(del.status, 204);
    assert!(
        fake.w().job_secrets.is_empty(),
        "references go with the job"
    );
    let again = call(
        &fake,
        "DELETE",
        &format!("/serverless-jobs/v1alpha2/regions/fr-par/job-definitions/{jid}"),
        j,
        "",
    );
    assert_eq!(again.status, 404);
    assert_eq!(
        serde_json::from_str::<Value>(&again.body).unwrap(),
        json!({"message": "job definition is not found"})
    );
    let elsewhere = call(
        &fake,
        "GET",
        "/serverless-jobs/v1alpha2/regions/it-mil/job-definitions",
        j,
        "",
    );
    assert_eq!(elsewhere.status, 400);
}

/// The user-data cap (127,998 bytes, Scaleway's Terraform provider's limit) is checked offline:
/// a bigger cloud-config is refused with exit 2 before any request; a 64 KiB one, over the
/// other clouds' caps, goes through.
#[test]
fn user_data_over_scaleways_cap_is_refused_offline() {
    let fake = FakeScaleway::start();
    let b = bin();
    let url = fake.url();
    let template = |kib: usize| {
        let t = b.dir.path().join(format!("big{kib}.j2"));
        std::fs::write(
            &t,
            format!(
                "#cloud-config\n#{}\nhostname: {{{{ hostname }}}}\n",
                "x".repeat(kib * 1024)
            ),
        )
        .unwrap();
        t.to_str().unwrap().to_owned()
    };
    let big = template(125);
    let r = create(&b, &url, "web1", &["--template", &big]);
    r.expect_code(2);
    assert!(r.stderr().contains("127998"), "{}", r.stderr());
    assert_eq!(fake.request_count(), 0);
    let ok = template(64);
    create(&b, &url, "web1", &["--template", &ok]).expect_code(0);
    let id = server_named(&fake, "web1")["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(fake.w().user_data[&id].len() > 64 * 1024);
    destroy(&b, &url, "web1", &[]).expect_code(0);
}

/// The new group's rules go beside the server's create and the IPs and user-data in one round
/// after it (issue 12). A rule refused there is owed, and sent again before `poweron`; a failed
/// call of that round is sent again on the core's retry, and nothing that answered is sent twice:
/// one rule, two IPs, the user-data once, no boot without it.
#[test]
fn a_refused_rule_or_user_data_is_sent_again_before_poweron_and_nothing_twice() {
    let fake = FakeScaleway::start();
    let b = bin();
    let url = fake.url();
    let fault = fakecloud::Fault::Status(500, "internal_error");
    fake.fail_matching(
        "POST",
        "/instance/v1/zones/*/security_groups/*/rules",
        fault,
        1,
    );
    fake.fail_matching(
        "PATCH",
        "/instance/v1/zones/*/servers/*/user_data",
        fault,
        1,
    );
    create(&b, &url, "web1", &[]).expect_code(0);

    let s = server_named(&fake, "web1");
    assert_eq!(s["state"], "running");
    let id = s["id"].as_str().unwrap().to_owned();
    let w = fake.w();
    let rules = &w.rules[s["security_group"]["id"].as_str().unwrap()];
    assert_eq!(rules.len(), 1, "{rules:?}");
    assert_eq!(rules[0]["ip_range"], "203.0.113.7/32");
    let ips: Vec<&Value> = w.ips.values().collect();
    assert_eq!(ips.len(), 2, "{ips:?}");
    for ip in &ips {
        assert_eq!(
            ip["server"]["id"],
            id.as_str(),
            "attached as reserved: {ip}"
        );
        let tag = format!("bootstrap-server={id}");
        assert!(tags_of(ip).contains(&tag), "tagged with its server: {ip}");
    }
    assert!(w.user_data[&id].starts_with("#cloud-config"));
    assert!(w.booted_without_user_data.is_empty());
    drop(w);
    // The kit's log: refused calls included, in the order they finished.
    let log = fake.kit().request_log();
    let path_of = |p: &str| p.split('?').next().unwrap_or_default().to_owned();
    let count = |method: &str, end: &str| {
        log.iter()
            .filter(|l| l.0 == method && path_of(&l.1).ends_with(end))
            .count()
    };
    // Each refused once, then sent again; the IPs and the volume's tag once each.
    assert_eq!(count("POST", "/rules"), 2, "{log:#?}");
    assert_eq!(count("PATCH", "/user_data/cloud-init"), 2, "{log:#?}");
    assert_eq!(count("POST", "/ips"), 2, "{log:#?}");
    let volume_tags = log
        .iter()
        .filter(|l| l.0 == "PATCH" && l.1.contains("/volumes/"))
        .count();
    assert_eq!(volume_tags, 1, "{log:#?}");
    // Power on once, after the rule and the user-data are in.
    let last_ok = |method: &str, end: &str| {
        log.iter()
            .rposition(|l| l.0 == method && path_of(&l.1).ends_with(end) && l.2 < 300)
            .unwrap()
    };
    assert_eq!(count("POST", "/action"), 1, "{log:#?}");
    let poweron = last_ok("POST", "/action");
    assert!(
        last_ok("POST", "/rules") < poweron && last_ok("PATCH", "/user_data/cloud-init") < poweron,
        "{log:#?}"
    );
    destroy(&b, &url, "web1", &[]).expect_code(0);
    assert_eq!(fake.orphans(), Vec::<String>::new());
}
