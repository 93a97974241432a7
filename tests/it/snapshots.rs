//! The snapshot job against the Hetzner fake: four simulated days keep exactly the newest KEEP,
//! a failed snapshot deletes nothing, a second run in a slot creates nothing, backups and
//! images without our labels survive, and 1,000 servers finish under rate limiting.

use serde_json::Value;

use crate::support::Bin;
use fakecloud::Pace;
use fakecloud::client::http_request;
use fakecloud::hetzner::{FakeConfig, FakeHetzner};

fn job(b: &Bin, url: &str, at: &str) -> crate::support::Run {
    b.run(&[
        "snapshot",
        "run",
        "--provider",
        "hetzner",
        "--endpoint",
        url,
        "--at",
        at,
        "--output",
        "json",
    ])
}

/// `create web1` on the fake with the snapshot schedule `spec`.
fn create_web1(b: &Bin, url: &str, spec: &str) {
    let mut args = crate::support::hetzner_create(url, "web1", "203.0.113.7/32");
    args.extend(["--snapshots", spec]);
    b.run(&args).expect_code(0);
}

fn ours(fake: &FakeHetzner, deployment: &str) -> Vec<Value> {
    let mut v: Vec<Value> = fake
        .snapshots()
        .into_iter()
        .filter(|i| i["type"] == "snapshot" && i["labels"]["bootstrap-deployment"] == deployment)
        .collect();
    v.sort_by_key(|i| i["id"].as_u64());
    v
}

fn slots(fake: &FakeHetzner, deployment: &str) -> Vec<String> {
    ours(fake, deployment)
        .iter()
        .map(|i| {
            i["labels"]["bootstrap-slot"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect()
}

#[test]
fn four_days_of_daily_2_keep_the_two_newest_and_spare_everything_else() {
    let fake = FakeHetzner::start_default();
    let b = Bin::new();
    let url = fake.url();
    b.run(&[
        "create",
        "--provider",
        "hetzner",
        "--endpoint",
        &url,
        "--name",
        "web1",
        "--ssh-from",
        "203.0.113.7/32",
        "--snapshots",
        "daily:2",
        "--snapshot-time",
        "03:00",
    ])
    .expect_code(0);
    let server = fake.server_by_name("web1").unwrap();
    assert_eq!(server["labels"]["bootstrap-snapshot"], "daily-0300");
    assert_eq!(server["labels"]["bootstrap-keep"], "2");
    let sid = server["id"].as_u64().unwrap();

    // Things the job must never touch: an image without our labels, another deployment's
    // snapshot, and a provider backup that even carries our labels.
    let foreign = fake.insert_snapshot("hand-made", &[], 1_000);
    let other = fake.insert_snapshot(
        "x",
        &[
            ("managed-by", "bootstrap"),
            ("bootstrap-deployment", "other"),
        ],
        1_000,
    );
    let body = serde_json::json!({"type": "backup", "description": "nightly", "labels": {"managed-by": "bootstrap", "bootstrap-deployment": "web1"}});
    http_request(
        &url,
        "POST",
        &format!("/servers/{sid}/actions/create_image"),
        Some("t"),
        Some(&body),
    )
    .unwrap();
    fake.finish_all_actions();
    let backups = || {
        fake.snapshots()
            .into_iter()
            .filter(|i| i["type"] == "backup")
            .count()
    };
    assert_eq!(backups(), 1);

    let days = [
        "2026-11-25T04:00:00Z",
        "2026-11-26T04:00:00Z",
        "2026-11-27T04:00:00Z",
        "2026-11-28T04:00:00Z",
    ];
    for (n, at) in days.iter().enumerate() {
        let r = job(&b, &url, at);
        r.expect_code(0);
        let v: Value = serde_json::from_str(&r.stdout()).unwrap();
        assert_eq!(v["failed"], 0);
        assert_eq!(v["servers"][0]["result"], "created", "{v}");
        // Same slot again: nothing new.
        let again: Value = serde_json::from_str(&job(&b, &url, at).stdout()).unwrap();
        assert_eq!(again["servers"][0]["result"], "up_to_date", "{again}");
        assert_eq!(ours(&fake, "web1").len(), (n + 1).min(2));
    }
    assert_eq!(slots(&fake, "web1"), ["20261127T0300Z", "20261128T0300Z"]);
    let names: Vec<_> = ours(&fake, "web1")
        .iter()
        .map(|i| i["description"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["web1-20261127T0300Z", "web1-20261128T0300Z"]);
    let ids: Vec<u64> = fake
        .snapshots()
        .iter()
        .map(|i| i["id"].as_u64().unwrap())
        .collect();
    assert!(
        ids.contains(&foreign) && ids.contains(&other),
        "foreign images untouched"
    );
    assert_eq!(backups(), 1, "the provider backup survives");

    // A dry run plans without acting.
    let before = fake
        .request_log()
        .iter()
        .filter(|(m, _, _)| m != "GET")
        .count();
    let r = b.run(&[
        "snapshot",
        "run",
        "--provider",
        "hetzner",
        "--endpoint",
        &url,
        "--at",
        "2026-11-29T04:00:00Z",
        "--dry-run",
    ]);
    r.expect_code(0);
    assert!(r.stdout().contains("would create"), "{}", r.stdout());
    assert!(
        r.stdout().contains("would delete web1-20261127T0300Z"),
        "{}",
        r.stdout()
    );
    assert_eq!(
        fake.request_log()
            .iter()
            .filter(|(m, _, _)| m != "GET")
            .count(),
        before,
        "a dry run only reads"
    );

    // snapshot list shows them; destroy keeps them unless asked.
    let r = b.run(&[
        "snapshot",
        "list",
        "web1",
        "--provider",
        "hetzner",
        "--endpoint",
        &url,
    ]);
    r.expect_code(0);
    assert!(r.stdout().contains("web1-20261128T0300Z"), "{}", r.stdout());
    let r = b.run(&crate::support::hetzner_destroy(&url, "web1"));
    r.expect_code(0);
    assert!(
        r.stdout().contains("kept snapshot web1-20261127T0300Z"),
        "{}",
        r.stdout()
    );
    assert_eq!(ours(&fake, "web1").len(), 2);

    // Restore: a new hardened server from one of our snapshots.
    let snap = ours(&fake, "web1")[1]["id"].as_u64().unwrap().to_string();
    let r = b.run(&[
        "create",
        "--provider",
        "hetzner",
        "--endpoint",
        &url,
        "--name",
        "web2",
        "--ssh-from",
        "203.0.113.7/32",
        "--from-snapshot",
        &snap,
    ]);
    r.expect_code(0);
    let body = fake
        .requests()
        .into_iter()
        .rev()
        .find(|q| q.method == "POST" && q.path.ends_with("/servers"))
        .unwrap()
        .body
        .unwrap();
    assert_eq!(body["image"], snap.as_str());
    // ... but never from an image that is not ours.
    let r = b.run(&[
        "create",
        "--provider",
        "hetzner",
        "--endpoint",
        &url,
        "--name",
        "web3",
        "--ssh-from",
        "203.0.113.7/32",
        "--from-snapshot",
        &foreign.to_string(),
    ]);
    r.expect_code(2);

    let r = b.run(&[
        "destroy",
        "web1",
        "--provider",
        "hetzner",
        "--endpoint",
        &url,
        "--yes",
        "--delete-snapshots",
    ]);
    r.expect_code(0);
    assert!(ours(&fake, "web1").is_empty());
    assert!(fake.snapshots().iter().any(|i| i["id"] == foreign));
}

#[test]
fn a_failed_snapshot_deletes_nothing() {
    let fake = FakeHetzner::start_default();
    let b = Bin::new();
    let url = fake.url();
    create_web1(&b, &url, "daily:1");
    job(&b, &url, "2026-11-25T04:00:00Z").expect_code(0);
    assert_eq!(ours(&fake, "web1").len(), 1);
    fake.fail_next_action("create_image", "image_failed", "disk busy");
    let r = job(&b, &url, "2026-11-26T04:00:00Z");
    r.expect_code(1);
    let v: Value = serde_json::from_str(&r.stdout()).unwrap();
    assert_eq!(v["failed"], 1);
    assert!(
        v["servers"][0]["error"]
            .as_str()
            .unwrap()
            .contains("disk busy"),
        "{v}"
    );
    let left = slots(&fake, "web1");
    assert!(
        left.contains(&"20261125T0300Z".to_owned()),
        "yesterday's snapshot kept: {left:?}"
    );
    // The next run retries the slot and then prunes.
    job(&b, &url, "2026-11-26T05:00:00Z").expect_code(0);
    let left: Vec<_> = ours(&fake, "web1")
        .into_iter()
        .filter(|i| i["status"] == "available")
        .map(|i| i["labels"]["bootstrap-slot"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(left, ["20261126T0300Z"]);
}

#[test]
fn a_broken_snapshot_of_the_slot_is_replaced_not_counted() {
    let fake = FakeHetzner::start_default();
    let b = Bin::new();
    let url = fake.url();
    create_web1(&b, &url, "daily:1");
    job(&b, &url, "2026-11-25T04:00:00Z").expect_code(0);
    // Today's slot already holds a snapshot of ours that ended up unusable.
    let broken = fake.insert_snapshot(
        "web1-20261126T0300Z",
        &[
            ("managed-by", "bootstrap"),
            ("bootstrap-deployment", "web1"),
            ("bootstrap-slot", "20261126T0300Z"),
        ],
        1_764_126_000,
    );
    fake.set_image_status(broken, "unavailable");
    let r = job(&b, &url, "2026-11-26T04:00:00Z");
    r.expect_code(0);
    let v: Value = serde_json::from_str(&r.stdout()).unwrap();
    assert_eq!(v["servers"][0]["result"], "created", "{v}");
    let left: Vec<_> = ours(&fake, "web1")
        .into_iter()
        .map(|i| {
            (
                i["id"].as_u64().unwrap(),
                i["status"].as_str().unwrap().to_owned(),
                i["labels"]["bootstrap-slot"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(left.len(), 1, "{left:?}");
    assert_ne!(left[0].0, broken, "the broken one went");
    assert_eq!(left[0].1, "available");
    assert_eq!(left[0].2, "20261126T0300Z");
}

#[test]
fn schedules_can_be_changed_and_turned_off() {
    let fake = FakeHetzner::start_default();
    let b = Bin::new();
    let url = fake.url();
    b.run(&crate::support::hetzner_create(
        &url,
        "web1",
        "203.0.113.7/32",
    ))
    .expect_code(0);
    assert_eq!(
        fake.server_by_name("web1").unwrap()["labels"]["bootstrap-snapshot"],
        "daily-0300"
    );
    b.run(&[
        "snapshot",
        "set",
        "web1",
        "weekly:4",
        "--snapshot-day",
        "wed",
        "--snapshot-time",
        "01:30",
        "--provider",
        "hetzner",
        "--endpoint",
        &url,
    ])
    .expect_code(0);
    let s = fake.server_by_name("web1").unwrap();
    assert_eq!(s["labels"]["bootstrap-snapshot"], "weekly-wed-0130");
    assert_eq!(s["labels"]["bootstrap-keep"], "4");
    assert_eq!(
        s["labels"]["bootstrap-deployment"], "web1",
        "other labels kept"
    );
    let v: Value = serde_json::from_str(&job(&b, &url, "2026-11-28T12:00:00Z").stdout()).unwrap();
    assert_eq!(v["servers"][0]["slot"], "20261125T0130Z");
    b.run(&[
        "snapshot",
        "set",
        "web1",
        "off",
        "--provider",
        "hetzner",
        "--endpoint",
        &url,
    ])
    .expect_code(0);
    let r = job(&b, &url, "2026-12-05T12:00:00Z");
    r.expect_code(0);
    let v: Value = serde_json::from_str(&r.stdout()).unwrap();
    assert_eq!(v["servers"], serde_json::json!([]));
    for bad in [["x", "daily:7"], ["web1", "daily"], ["web1", "5h:2"]] {
        let r = b.run(&[
            "snapshot",
            "set",
            bad[0],
            bad[1],
            "--provider",
            "hetzner",
            "--endpoint",
            &url,
        ]);
        assert_ne!(r.code(), 0);
    }
    let r = b.run(&[
        "snapshot",
        "run",
        "--provider",
        "hetzner",
        "--endpoint",
        &url,
        "--at",
        "yesterday",
    ]);
    r.expect_code(2);
}

#[test]
fn a_thousand_servers_finish_under_rate_limits() {
    let fake = FakeHetzner::start(FakeConfig {
        pace: Pace::Polls(1),
        rate_limit: 3600,
        rate_refill_per_sec: 1000.0,
        ..FakeConfig::default()
    });
    for i in 0..1000 {
        let d = format!("s{i}");
        fake.insert_server(
            &d,
            &[
                ("managed-by", "bootstrap"),
                ("bootstrap-deployment", &d),
                ("bootstrap-snapshot", "daily-0300"),
                ("bootstrap-keep", "1"),
                ("bootstrap-snapshot-engine", "job"),
            ],
        );
    }
    // Start with the bucket almost empty so the job has to wait for refills.
    fake.set_rate_limit(3600, 1000.0, 50);
    let mut b = Bin::new();
    b.env("BOOTSTRAP_RETRY_MAX", "8");
    let url = fake.url();
    let started = std::time::Instant::now();
    let r = b.run(&[
        "snapshot",
        "run",
        "--provider",
        "hetzner",
        "--endpoint",
        &url,
        "--at",
        "2026-11-25T04:00:00Z",
        "--output",
        "json",
        "--concurrency",
        "16",
    ]);
    let wall = started.elapsed();
    r.expect_code(0);
    let v: Value = serde_json::from_str(&r.stdout()).unwrap();
    assert_eq!(v["failed"], 0);
    assert_eq!(v["servers"].as_array().unwrap().len(), 1000);
    assert_eq!(fake.snapshots().len(), 1000);
    let calls = fake.request_count();
    let limited = fake
        .request_log()
        .iter()
        .filter(|(_, _, s)| *s == 429)
        .count();
    eprintln!("snapshot job, 1000 servers: {calls} API calls, {limited} answered 429, {wall:?}");
    assert!(calls < 6000, "{calls} calls");
}
