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

/// The requests a job sent, and how many of them the fake answered 429.
fn calls_and_429s(log: &[(String, String, u16)]) -> (usize, usize) {
    (log.len(), log.iter().filter(|(_, _, s)| *s == 429).count())
}

#[test]
fn the_job_over_120_servers_stays_within_3_calls_each_and_the_rate_budget() {
    // Snapshots take 1.5 s; the bucket holds 60 requests and refills 40 a second. Per-server
    // polls and re-reads (about 7 calls a server) would need ~840 requests: 20 s of refill and
    // 429s on the way; the batched job needs under 360.
    let fake = FakeHetzner::start(FakeConfig {
        pace: Pace::Wall(std::time::Duration::from_millis(1500)),
        ..FakeConfig::default()
    });
    let n = 120;
    for i in 0..n {
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
        // Yesterday's snapshot, which KEEP=1 prunes once today's is usable.
        fake.insert_snapshot(
            &format!("{d}-20261124T0300Z"),
            &[
                ("managed-by", "bootstrap"),
                ("bootstrap-deployment", &d),
                ("bootstrap-slot", "20261124T0300Z"),
            ],
            1_763_953_200,
        );
    }
    let (limit, refill, start) = (60, 40.0, 60);
    fake.set_rate_limit(limit, refill, start);
    let before = fake.request_log().len();
    let b = Bin::new();
    let started = std::time::Instant::now();
    let r = job(&b, &fake.url(), "2026-11-25T04:00:00Z");
    let wall = started.elapsed();
    r.expect_code(0);
    let v: Value = serde_json::from_str(&r.stdout()).unwrap();
    assert_eq!(v["failed"], 0, "{v}");
    let servers = v["servers"].as_array().unwrap();
    assert_eq!(servers.len(), n);
    assert!(servers.iter().all(|s| s["result"] == "created"), "{v}");
    // Retention: exactly today's snapshot of each server is left, and usable.
    let ours: Vec<Value> = fake
        .snapshots()
        .into_iter()
        .filter(|i| i["labels"]["managed-by"] == "bootstrap")
        .collect();
    assert_eq!(ours.len(), n);
    assert!(
        ours.iter().all(
            |i| i["labels"]["bootstrap-slot"] == "20261125T0300Z" && i["status"] == "available"
        ),
        "{ours:?}"
    );
    let log = fake.request_log()[before..].to_vec();
    let (calls, limited) = calls_and_429s(&log);
    let per_server = calls as f64 / n as f64;
    // Paths as the API names them: without the base's `/v1` and the query.
    let path = |p: &str| {
        let p = p.split('?').next().unwrap_or_default();
        p.strip_prefix("/v1").unwrap_or(p).to_owned()
    };
    let polls = log.iter().filter(|(_, p, _)| path(p) == "/actions").count();
    let ideal = (calls.saturating_sub(start as usize)) as f64 / refill;
    eprintln!(
        "hetzner job, {n} servers: {calls} calls ({per_server:.2} a server, {polls} action polls), {limited} answered 429, {wall:?} (rate budget alone: {ideal:.1}s, snapshots 1.5s)"
    );
    assert_eq!(limited, 0, "no request drew a 429");
    assert!(per_server <= 3.0, "{per_server:.2} calls a server");
    assert!(polls > 0, "the job waited for its snapshots' actions");
    assert!(
        !log.iter().any(|(_, p, _)| path(p).starts_with("/actions/")),
        "actions are polled in batches, never one by one"
    );
    // The rate budget is the bottleneck: the job takes about what it allows, plus one snapshot's
    // duration and a margin for a loaded machine.
    assert!(
        wall.as_secs_f64() <= 1.2 * ideal + 1.5 + 3.0,
        "{wall:?} for a budget of {ideal:.1}s"
    );
}

/// A Scaleway fake with `n` servers `s0`.. on the daily:1 schedule (`s0` made by `create`, the
/// others copied from it, each with its own root volume), each with yesterday's snapshot, which
/// KEEP=1 prunes once today's is usable; and the environment to run the binary against it.
fn scaleway_fleet(n: usize) -> (fakecloud::scaleway::FakeScaleway, Bin, String) {
    use fakecloud::scaleway::{FakeScaleway, PROJECT};
    let fake = FakeScaleway::start();
    let mut b = Bin::new();
    b.env("SCW_SECRET_KEY", "00000000-0000-4000-8000-000000000000");
    b.env("SCW_DEFAULT_PROJECT_ID", PROJECT);
    let url = fake.url();
    let args = vec![
        "create",
        "--provider",
        "scaleway",
        "--endpoint",
        &url,
        "--name",
        "s0",
        "--ssh-from",
        "203.0.113.7/32",
        "--snapshots",
        "daily:1",
        "--snapshot-time",
        "03:00",
    ];
    b.run(&args).expect_code(0);
    {
        let mut w = fake.w();
        let (sid, proto) = w
            .servers
            .iter()
            .next()
            .map(|(k, v)| (k.clone(), v.clone()))
            .unwrap();
        let vid = proto["volumes"]["0"]["id"].as_str().unwrap().to_owned();
        let vol = w.volumes[&vid].clone();
        for i in 0..n {
            let d = format!("s{i}");
            let (id, v) = if i == 0 {
                (sid.clone(), vid.clone())
            } else {
                (
                    format!("00000000-0000-4000-8000-{:012}", 500_000 + i),
                    format!("00000000-0000-4000-8000-{:012}", 600_000 + i),
                )
            };
            if i > 0 {
                let mut s = proto.clone();
                s["id"] = serde_json::json!(id);
                s["name"] = serde_json::json!(d);
                s["volumes"]["0"]["id"] = serde_json::json!(v);
                let tags: Vec<Value> = proto["tags"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|t| {
                        let t = t.as_str().unwrap();
                        serde_json::json!(if t.starts_with("bootstrap-deployment=") {
                            format!("bootstrap-deployment={d}")
                        } else {
                            t.to_owned()
                        })
                    })
                    .collect();
                s["tags"] = serde_json::json!(tags);
                w.servers.insert(id.clone(), s);
                let mut vv = vol.clone();
                vv["id"] = serde_json::json!(v);
                w.volumes.insert(v.clone(), vv);
            }
            let snap = format!("00000000-0000-4000-8000-{:012}", 700_000 + i);
            w.snapshots.insert(
                snap.clone(),
                serde_json::json!({"id": snap, "name": format!("{d}-20261124T0300Z"),
                    "parent_volume": {"id": v}, "size": 20_000_000_000u64, "project_id": PROJECT,
                    "status": "available", "class": "sbs", "zone": "fr-par-1",
                    "created_at": "2026-11-24T03:00:05Z", "updated_at": "2026-11-24T03:00:05Z",
                    "tags": ["managed-by=bootstrap", format!("bootstrap-deployment={d}"),
                             "bootstrap-slot=20261124T0300Z"]}),
            );
        }
    }
    (fake, b, url)
}

/// Today's job on the Scaleway fleet.
fn scaleway_job(b: &Bin, url: &str) -> crate::support::Run {
    b.run(&[
        "snapshot",
        "run",
        "--provider",
        "scaleway",
        "--endpoint",
        url,
        "--at",
        "2026-11-25T04:00:00Z",
        "--output",
        "json",
    ])
}

#[test]
fn the_scaleway_job_over_120_servers_reads_each_server_once_and_lists_instead_of_polling_each() {
    let n = 120;
    let (fake, b, url) = scaleway_fleet(n);
    // A bucket of 420 requests that never refills, and no rate headers (as Scaleway): reading
    // each server before its snapshot, each snapshot before its delete and polling each
    // snapshot alone would need 600 and more, and draw 429s.
    fake.set_rate_limit(420, 0.0, 420);
    let before = fake.request_log().len();
    let r = scaleway_job(&b, &url);
    r.expect_code(0);
    let v: Value = serde_json::from_str(&r.stdout()).unwrap();
    assert_eq!(v["failed"], 0, "{v}");
    assert_eq!(v["servers"].as_array().unwrap().len(), n);
    let log = fake.request_log()[before..].to_vec();
    let (calls, limited) = calls_and_429s(&log);
    let per_server = calls as f64 / n as f64;
    eprintln!(
        "scaleway job, {n} servers: {calls} calls ({per_server:.2} a server), {limited} answered 429"
    );
    assert_eq!(limited, 0);
    assert!(per_server <= 3.0, "{per_server:.2} calls a server");
    // Retention: exactly today's snapshot of each server is left.
    let w = fake.w();
    assert_eq!(w.snapshots.len(), n);
    assert!(
        w.snapshots
            .values()
            .all(|s| s["name"].as_str().unwrap().ends_with("-20261125T0300Z")),
        "{:?}",
        w.snapshots.values().collect::<Vec<_>>()
    );
}

#[test]
fn a_scaleway_snapshot_missing_from_a_lagging_listing_is_read_alone_not_taken_for_gone() {
    // Six servers: the job checks their new snapshots through one listing, whose index leaves
    // a snapshot out for its first three listings after the create. Taken for gone, each
    // server would fail ("disappeared"); read alone, each is found creating, then available.
    let n = 6;
    let (fake, b, url) = scaleway_fleet(n);
    fake.w().list_lag = 3;
    let before = fake.request_log().len();
    let r = scaleway_job(&b, &url);
    let v: Value = serde_json::from_str(&r.stdout()).unwrap();
    assert_eq!(v["failed"], 0, "{v}");
    r.expect_code(0);
    let servers = v["servers"].as_array().unwrap();
    assert_eq!(servers.len(), n);
    assert!(servers.iter().all(|s| s["result"] == "created"), "{v}");
    let log = fake.request_log()[before..].to_vec();
    let listings = log
        .iter()
        .filter(|(m, p, _)| m == "GET" && p.starts_with("/block/v1/zones/fr-par-1/snapshots?"))
        .count();
    let reads = log
        .iter()
        .filter(|(m, p, _)| m == "GET" && p.starts_with("/block/v1/zones/fr-par-1/snapshots/"))
        .count();
    assert!(listings >= 2, "the job checked through listings: {log:#?}");
    assert!(reads >= n, "each missing snapshot was read alone: {log:#?}");
    let w = fake.w();
    assert_eq!(w.snapshots.len(), n, "yesterday's pruned, today's kept");
    assert!(
        w.snapshots.values().all(|s| s["status"] == "available"
            && s["name"].as_str().unwrap().ends_with("-20261125T0300Z")),
        "{:?}",
        w.snapshots.values().collect::<Vec<_>>()
    );
}

#[test]
fn the_digitalocean_job_follows_the_ratelimit_headers_without_a_429() {
    use fakecloud::digitalocean::FakeDo;
    let fake = FakeDo::start();
    let url = fake.url();
    let mut b = Bin::new();
    b.unset("HCLOUD_TOKEN");
    b.env("DIGITALOCEAN_TOKEN", "dop_v1_test-token-not-secret");
    let n = 4;
    for i in 0..n {
        let name = format!("s{i}");
        b.run(&[
            "create",
            "--provider",
            "digitalocean",
            "--endpoint",
            &url,
            "--name",
            &name,
            "--ssh-from",
            "203.0.113.7/32",
            "--snapshots",
            "daily:1",
        ])
        .expect_code(0);
    }
    let job = |at: &str| {
        b.run(&[
            "snapshot",
            "run",
            "--provider",
            "digitalocean",
            "--endpoint",
            &url,
            "--at",
            at,
            "--output",
            "json",
        ])
    };
    job("2026-11-25T04:00:00Z").expect_code(0);
    // 10 requests at once, 5 more a second: the day's run needs more than that, so it must
    // wait for the budget as the `ratelimit-*` headers tell, not draw 429s.
    fake.set_rate_limit(10, 5.0);
    let before = fake.kit().request_log().len();
    let r = job("2026-11-26T04:00:00Z");
    r.expect_code(0);
    let v: Value = serde_json::from_str(&r.stdout()).unwrap();
    assert_eq!(v["failed"], 0, "{v}");
    let log = fake.kit().request_log()[before..].to_vec();
    let (calls, limited) = calls_and_429s(&log);
    eprintln!(
        "digitalocean job, {n} servers: {calls} calls ({:.2} a server), {limited} answered 429",
        calls as f64 / n as f64
    );
    assert_eq!(limited, 0, "{log:#?}");
    assert!(
        calls > 10,
        "the run needed more than the bucket held: {calls}"
    );
    let ours: Vec<Value> = fake
        .snapshots()
        .into_iter()
        .filter(|i| i["type"] == "snapshot")
        .collect();
    assert_eq!(ours.len(), n, "{ours:?}");
    assert!(
        ours.iter()
            .all(|i| i["name"].as_str().unwrap().ends_with("-20261126T0300Z")),
        "{ours:?}"
    );
}

/// The requests of one DigitalOcean job run, with the fake's bucket full again first.
struct DoRun {
    log: Vec<(String, String, u16)>,
    report: Value,
    wall: std::time::Duration,
}

fn do_job_run(fake: &fakecloud::digitalocean::FakeDo, at: &str) -> DoRun {
    fake.set_rate_limit(60, 40.0);
    let mut b = Bin::new();
    b.unset("HCLOUD_TOKEN");
    b.env("DIGITALOCEAN_TOKEN", "dop_v1_test-token-not-secret");
    let before = fake.kit().request_log().len();
    let started = std::time::Instant::now();
    let r = b.run(&[
        "snapshot",
        "run",
        "--provider",
        "digitalocean",
        "--endpoint",
        &fake.url(),
        "--at",
        at,
        "--output",
        "json",
    ]);
    let wall = started.elapsed();
    let report: Value = serde_json::from_str(&r.stdout()).unwrap();
    assert_eq!(report["failed"], 0, "{report}");
    r.expect_code(0);
    DoRun {
        log: fake.kit().request_log()[before..].to_vec(),
        report,
        wall,
    }
}

#[test]
fn the_digitalocean_job_over_120_servers_follows_the_budget_and_batches_its_calls() {
    use fakecloud::digitalocean::FakeDo;
    // Snapshots take 1.5 s; 60 requests at once, 40 more a second, told by the `ratelimit-*`
    // headers. One read per action, one snapshot list per droplet and three tag calls per
    // image (about 15 calls a server, as measured before) would need 1,800 requests and draw
    // 429s. Two days: the first takes each server's snapshot, the second also prunes the
    // first's (KEEP=1).
    let fake = FakeDo::start_on(
        std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        Pace::Wall(std::time::Duration::from_millis(1500)),
    )
    .unwrap();
    let n = 120;
    for i in 0..n {
        let d = format!("s{i}");
        fake.insert_droplet(
            &d,
            &[
                "managed-by:bootstrap",
                &format!("bootstrap-deployment:{d}"),
                "bootstrap-snapshot:daily-0300",
                "bootstrap-keep:1",
                "bootstrap-snapshot-engine:job",
            ],
        );
    }
    let path = |p: &str| p.split('?').next().unwrap_or_default().to_owned();
    let count = |log: &[(String, String, u16)], method: &str, pred: &dyn Fn(&str) -> bool| {
        log.iter()
            .filter(|(m, p, _)| m == method && pred(&path(p)))
            .count()
    };
    for (day, at) in [(1, "2026-11-25T04:00:00Z"), (2, "2026-11-26T04:00:00Z")] {
        let run = do_job_run(&fake, at);
        let servers = run.report["servers"].as_array().unwrap();
        assert_eq!(servers.len(), n);
        assert!(
            servers.iter().all(|s| s["result"] == "created"),
            "{}",
            run.report
        );
        let (calls, limited) = calls_and_429s(&run.log);
        let per_server = calls as f64 / n as f64;
        let log = &run.log;
        let snapshots = count(log, "POST", &|p| p.ends_with("/actions"));
        let deletes = count(log, "DELETE", &|p| p.starts_with("/v2/images/"));
        let deployment_tags = count(log, "POST", &|p| {
            p.starts_with("/v2/tags/bootstrap-deployment:")
        });
        let polls = count(log, "GET", &|p| p == "/v2/actions");
        let ideal = calls.saturating_sub(60) as f64 / 40.0;
        eprintln!(
            "digitalocean job day {day}, {n} servers: {calls} calls ({per_server:.2} a server: {snapshots} snapshot actions, {deployment_tags} deployment tags, {deletes} deletes, {} else; {polls} action listings), {limited} answered 429, {:?} (rate budget alone: {ideal:.1}s, snapshots 1.5s)",
            calls - snapshots - deployment_tags - deletes,
            run.wall
        );
        assert_eq!(limited, 0, "no request drew a 429");
        assert!(polls > 0, "the job waited for its snapshots' actions");
        let one_by_one = count(log, "GET", &|p| p.starts_with("/v2/actions/"));
        assert!(
            one_by_one * 20 <= n,
            "actions are checked through the listing (a round of one reads its action alone, the same one call): {one_by_one} single reads"
        );
        let per_droplet = count(log, "GET", &|p| p.starts_with("/v2/droplets/"));
        assert!(
            per_droplet * 20 <= n,
            "images are found through one droplet listing per batch (a batch of one reads its droplet's list, the same one call): {per_droplet} droplet reads"
        );
        // Per server: its snapshot action, its image's deployment tag (one tag per call, and
        // that tag is the image's own), and from the second day the delete of yesterday's.
        // Everything else (listings, action polls, the shared tags, tag cleanup) is batched.
        assert_eq!(snapshots, n);
        assert_eq!(deployment_tags, n);
        assert_eq!(deletes, if day == 1 { 0 } else { n });
        // Each round of finishes costs a droplet listing and a call per shared tag: a loaded
        // machine spreads the waits over more rounds (seen: 19 to over 40 for 120 servers).
        let rest = calls - snapshots - deployment_tags - deletes;
        assert!(rest * 2 <= n, "{rest} batched calls for {n} servers");
        if day == 1 {
            assert!(per_server <= 3.0, "{per_server:.2} calls a server");
        }
        // The budget is the bottleneck: the job takes about what it allows, plus one
        // snapshot's duration and a margin for a loaded machine.
        assert!(
            run.wall.as_secs_f64() <= 1.2 * ideal + 1.5 + 3.0,
            "{:?} for a budget of {ideal:.1}s",
            run.wall
        );
    }
    // Retention: exactly the second day's snapshot of each server is left, labelled like any
    // other, and the first day's slot tag went with the last snapshot carrying it.
    let ours: Vec<Value> = fake
        .snapshots()
        .into_iter()
        .filter(|i| i["type"] == "snapshot")
        .collect();
    assert_eq!(ours.len(), n, "{ours:?}");
    for i in &ours {
        let tags: Vec<&str> = i["tags"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .collect();
        let d = i["name"]
            .as_str()
            .unwrap()
            .trim_end_matches("-20261126T0300Z");
        for want in [
            "managed-by:bootstrap".to_owned(),
            format!("bootstrap-deployment:{d}"),
            "bootstrap-slot:20261126T0300Z".to_owned(),
        ] {
            assert!(tags.contains(&want.as_str()), "{want} on {i}");
        }
    }
    assert!(
        !fake
            .tags()
            .iter()
            .any(|t| t == "bootstrap-slot:20261125T0300Z"),
        "{:?}",
        fake.tags()
    );
}
