//! AWS snapshots end to end, the real binary against moto (EC2, STS) and the DLM fake:
//! - the job (`--snapshot-engine job`): four simulated days of `daily:2` keep exactly the two
//!   newest AMIs; an AMI without our tags survives; `create --from-snapshot` launches from one;
//!   `destroy --delete-snapshots` deregisters every AMI of the deployment and deletes the EBS
//!   snapshots behind them.
//! - Data Lifecycle Manager (the default engine): the policy targets the deployment's tag with
//!   the schedule's rule and count, the job leaves such a server alone, `destroy` deletes the
//!   policy; a policy DLM refuses (missing role) fails the create before any instance is
//!   launched, names the command that creates the role, and leaves nothing behind.
//! - two runs in one slot: EC2 refuses the second `CreateImage` (`InvalidAMIName.Duplicate`, played
//!   by the proxy after moto made the AMI); the run takes the existing AMI over instead of failing.
//!   When the AMI holding the name is not ours, the run fails for that server and deletes nothing.
//! - a prune whose `DeleteSnapshot` fails after `DeregisterImage` succeeded: the retry finds the
//!   AMI gone and still deletes its EBS snapshots (found by EC2's `for ami-...` description).
//!
//! - the job over 30 instances stays within 3 calls a server: `CreateImage` and the `CreateTags`
//!   of its EBS snapshots each, the AMIs' waits read in batched `DescribeImages`, and on the
//!   second day one `DeregisterImage` each without a read first (plus moto's `DeleteSnapshot`).
//!
//! What moto cannot show: AMIs are `available` at once (never `pending`), `CreateImage` rejects
//! `TagSpecifications` for snapshots (so the adapter tags the EBS snapshots with `CreateTags`),
//! `DeregisterImage` ignores `DeleteAssociatedSnapshots` (so the adapter deletes the EBS
//! snapshots the answer does not report deleted), and there is no DLM, so no image taken by a
//! policy.

use aws_sdk_ec2::types::{Filter, Image};
use serde_json::Value;

use crate::dlm_fake::FakeDlm;
use crate::moto::{Ec2View, Moto, aws_env};
use crate::support::{Bin, Run};

const V4: &str = "203.0.113.7/32";

fn bin(endpoint: &str, dlm: Option<&str>) -> Bin {
    let mut b = Bin::new();
    aws_env(&mut b, endpoint);
    if let Some(d) = dlm {
        b.env("BOOTSTRAP_AWS_DLM_ENDPOINT", d);
    }
    b
}

fn create(b: &Bin, name: &str, extra: &[&str]) -> Run {
    let mut args = vec![
        "create",
        "--provider",
        "aws",
        "--name",
        name,
        "--ssh-from",
        V4,
        "--output",
        "json",
    ];
    args.extend_from_slice(extra);
    b.run(&args)
}

fn job(b: &Bin, at: &str) -> Value {
    let r = b.run(&[
        "snapshot",
        "run",
        "--provider",
        "aws",
        "--at",
        at,
        "--output",
        "json",
    ]);
    r.expect_code(0);
    serde_json::from_str(&r.stdout()).unwrap()
}

/// moto behind the recording proxy, with one deployment created on the job engine. Fields drop
/// in order: the binary's env, the view, the proxy, then moto.
struct JobCloud {
    b: Bin,
    view: Ec2View,
    proxy: crate::aws_proxy::Ec2Proxy,
    _moto: Moto,
}

impl JobCloud {
    /// `name` created with `--snapshots schedule --snapshot-engine job`.
    fn with(name: &str, schedule: &str) -> JobCloud {
        let moto = Moto::start();
        let proxy = crate::aws_proxy::Ec2Proxy::start(&moto.url());
        let view = Ec2View::new(&moto.url());
        let b = bin(&proxy.url(), None);
        create(
            &b,
            name,
            &["--snapshots", schedule, "--snapshot-engine", "job"],
        )
        .expect_code(0);
        JobCloud {
            b,
            view,
            proxy,
            _moto: moto,
        }
    }
}

fn tag<'a>(img: &'a Image, key: &str) -> Option<&'a str> {
    img.tags()
        .iter()
        .find(|t| t.key() == Some(key))
        .and_then(|t| t.value())
}

/// AMIs this account owns, optionally only those tagged with `deployment`.
fn own_images(view: &Ec2View, deployment: Option<&str>) -> Vec<Image> {
    let mut req = view.client.describe_images().owners("self");
    if let Some(d) = deployment {
        req = req.filters(
            Filter::builder()
                .name("tag:bootstrap-deployment")
                .values(d)
                .build(),
        );
    }
    let mut v = view.block(req.send()).unwrap().images().to_vec();
    v.sort_by(|a, b| a.name().cmp(&b.name()));
    v
}

fn snapshot_exists(view: &Ec2View, id: &str) -> bool {
    view.block(view.client.describe_snapshots().owner_ids("self").send())
        .unwrap()
        .snapshots()
        .iter()
        .any(|s| s.snapshot_id() == Some(id))
}

fn backing(img: &Image) -> Vec<String> {
    img.block_device_mappings()
        .iter()
        .filter_map(|m| m.ebs().and_then(|e| e.snapshot_id()))
        .map(str::to_owned)
        .collect()
}

#[test]
fn aws_job_over_four_days_keeps_the_two_newest_amis_and_destroy_deletes_them() {
    let moto = Moto::start();
    let view = Ec2View::new(&moto.url());
    let b = bin(&moto.url(), None);
    create(
        &b,
        "web1",
        &[
            "--snapshots",
            "daily:2",
            "--snapshot-time",
            "03:00",
            "--snapshot-engine",
            "job",
        ],
    )
    .expect_code(0);
    let inst = view.live_instances("web1").remove(0);
    let itag = |k: &str| {
        inst.tags()
            .iter()
            .find(|t| t.key() == Some(k))
            .and_then(|t| t.value())
            .map(str::to_owned)
    };
    assert_eq!(itag("bootstrap-snapshot").as_deref(), Some("daily-0300"));
    assert_eq!(itag("bootstrap-keep").as_deref(), Some("2"));
    assert_eq!(itag("bootstrap-snapshot-engine").as_deref(), Some("job"));

    // An AMI of the same instance without our tags: never ours to delete.
    let foreign = view
        .block(
            view.client
                .create_image()
                .instance_id(inst.instance_id().unwrap())
                .name("hand-made")
                .send(),
        )
        .unwrap()
        .image_id()
        .unwrap()
        .to_owned();

    let days = [
        "2026-11-20T04:00:00Z",
        "2026-11-21T04:00:00Z",
        "2026-11-22T04:00:00Z",
        "2026-11-23T04:00:00Z",
    ];
    let mut all_backing = Vec::new();
    for (i, at) in days.iter().enumerate() {
        if i > 0 {
            // Retention orders by CreationDate (seconds): keep the simulated days apart.
            std::thread::sleep(std::time::Duration::from_millis(1100));
        }
        let out = job(&b, at);
        let s = &out["servers"][0];
        assert_eq!(s["deployment"], "web1", "{out}");
        assert_eq!(s["result"], "created", "{out}");
        for img in own_images(&view, Some("web1")) {
            all_backing.extend(backing(&img));
        }
        // A second run in the same slot creates nothing.
        if i == 0 {
            let again = job(&b, at);
            assert_eq!(again["servers"][0]["result"], "up_to_date", "{again}");
        }
    }
    let ours = own_images(&view, Some("web1"));
    let slots: Vec<_> = ours.iter().map(|i| tag(i, "bootstrap-slot")).collect();
    assert_eq!(
        slots,
        [Some("20261122T0300Z"), Some("20261123T0300Z")],
        "{ours:?}"
    );
    for img in &ours {
        assert_eq!(tag(img, "managed-by"), Some("bootstrap"));
        assert_eq!(
            img.name(),
            Some(format!("web1-{}", tag(img, "bootstrap-slot").unwrap()).as_str())
        );
        // The EBS snapshots behind it carry our tags too.
        for s in backing(img) {
            let snap = view
                .block(view.client.describe_snapshots().snapshot_ids(&s).send())
                .unwrap();
            let t = snap.snapshots()[0].tags();
            assert!(
                t.iter()
                    .any(|t| t.key() == Some("bootstrap-deployment") && t.value() == Some("web1")),
                "{t:?}"
            );
        }
    }
    // The pruned AMIs went with their EBS snapshots.
    let kept_backing: Vec<String> = ours.iter().flat_map(backing).collect();
    for s in all_backing.iter().filter(|s| !kept_backing.contains(s)) {
        assert!(!snapshot_exists(&view, s), "{s} left behind");
    }
    assert!(
        own_images(&view, None)
            .iter()
            .any(|i| i.image_id() == Some(foreign.as_str()))
    );

    // `snapshot list`, then a restore from the newest.
    let r = b.run(&[
        "snapshot",
        "list",
        "web1",
        "--provider",
        "aws",
        "--output",
        "json",
    ]);
    r.expect_code(0);
    let listed: Value = serde_json::from_str(&r.stdout()).unwrap();
    assert_eq!(listed["snapshots"].as_array().unwrap().len(), 2, "{listed}");
    let newest = ours[1].image_id().unwrap().to_owned();
    create(
        &b,
        "web2",
        &["--from-snapshot", &newest, "--snapshot-engine", "job"],
    )
    .expect_code(0);
    let restored = view.live_instances("web2");
    assert_eq!(restored[0].image_id(), Some(newest.as_str()));
    // Only our snapshots can be restored.
    let r = create(
        &b,
        "web3",
        &["--from-snapshot", &foreign, "--snapshot-engine", "job"],
    );
    r.expect_code(2);
    assert!(
        r.stderr().contains("no snapshot made by bootstrap"),
        "{}",
        r.stderr()
    );

    // destroy keeps the snapshots by default, --delete-snapshots removes AMIs and EBS snapshots.
    let r = b.run(&[
        "destroy",
        "web1",
        "--provider",
        "aws",
        "--yes",
        "--output",
        "json",
    ]);
    r.expect_code(0);
    assert_eq!(own_images(&view, Some("web1")).len(), 2);
    let r = b.run(&[
        "destroy",
        "web1",
        "--provider",
        "aws",
        "--yes",
        "--delete-snapshots",
        "--output",
        "json",
    ]);
    r.expect_code(0);
    assert!(own_images(&view, Some("web1")).is_empty());
    for s in &kept_backing {
        assert!(!snapshot_exists(&view, s), "{s} left behind");
    }
    assert!(
        own_images(&view, None)
            .iter()
            .any(|i| i.image_id() == Some(foreign.as_str()))
    );
    b.run(&["destroy", "web2", "--provider", "aws", "--yes"])
        .expect_code(0);
}

#[test]
fn aws_dlm_policy_targets_the_deployment_and_destroy_removes_it() {
    let moto = Moto::start();
    let dlm = FakeDlm::start();
    let view = Ec2View::new(&moto.url());
    let b = bin(&moto.url(), Some(&dlm.url()));

    // DLM is AWS's default engine.
    create(
        &b,
        "web1",
        &[
            "--snapshots",
            "weekly:4",
            "--snapshot-time",
            "04:30",
            "--snapshot-day",
            "mon",
        ],
    )
    .expect_code(0);
    create(
        &b,
        "db1",
        &["--snapshots", "daily:5", "--snapshot-time", "02:15"],
    )
    .expect_code(0);
    let inst = view.live_instances("web1").remove(0);
    assert!(
        inst.tags()
            .iter()
            .any(|t| t.key() == Some("bootstrap-snapshot-engine") && t.value() == Some("dlm"))
    );

    let policies = dlm.policies();
    assert_eq!(policies.len(), 2, "{policies:?}");
    let web = &policies[0].1;
    let d = &web["PolicyDetails"];
    assert_eq!(d["PolicyType"], "IMAGE_MANAGEMENT", "{web}");
    assert_eq!(d["ResourceTypes"], serde_json::json!(["INSTANCE"]));
    assert_eq!(
        d["TargetTags"],
        serde_json::json!([{"Key": "bootstrap-deployment", "Value": "web1"}])
    );
    assert_eq!(d["Parameters"]["NoReboot"], true);
    let s = &d["Schedules"][0];
    assert_eq!(
        s["CreateRule"]["CronExpression"], "cron(30 4 ? * MON *)",
        "{s}"
    );
    assert_eq!(s["RetainRule"]["Count"], 4);
    let tags_to_add: Vec<(String, String)> = s["TagsToAdd"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["Key"].as_str().unwrap().into(),
                t["Value"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert!(tags_to_add.contains(&("managed-by".into(), "bootstrap".into())));
    assert!(tags_to_add.contains(&("bootstrap-deployment".into(), "web1".into())));
    assert_eq!(web["State"], "ENABLED");
    assert_eq!(web["Tags"]["managed-by"], "bootstrap");
    assert_eq!(web["Tags"]["bootstrap-deployment"], "web1");
    assert_eq!(
        web["ExecutionRoleArn"],
        "arn:aws:iam::123456789012:role/AWSDataLifecycleManagerDefaultRoleForAMIManagement"
    );
    let db = &policies[1].1["PolicyDetails"];
    assert_eq!(db["TargetTags"][0]["Value"], "db1");
    let rule = &db["Schedules"][0]["CreateRule"];
    assert_eq!(rule["Interval"], 24, "{rule}");
    assert_eq!(rule["IntervalUnit"], "HOURS");
    assert_eq!(rule["Times"], serde_json::json!(["02:15"]));
    assert_eq!(db["Schedules"][0]["RetainRule"]["Count"], 5);

    // A second create finds the policy: no second one.
    create(
        &b,
        "web1",
        &[
            "--snapshots",
            "weekly:4",
            "--snapshot-time",
            "04:30",
            "--snapshot-day",
            "mon",
        ],
    )
    .expect_code(0);
    assert_eq!(dlm.policies().len(), 2);

    // The job leaves DLM's servers alone.
    let out = job(&b, "2026-11-23T05:00:00Z");
    for s in out["servers"].as_array().unwrap() {
        assert_eq!(s["result"], "skipped", "{out}");
    }
    assert!(own_images(&view, Some("web1")).is_empty());

    // `snapshot set` replaces the policy; `off` removes it.
    b.run(&[
        "snapshot",
        "set",
        "web1",
        "daily:3",
        "--snapshot-time",
        "01:00",
        "--provider",
        "aws",
    ])
    .expect_code(0);
    let web: Vec<Value> = dlm
        .policies()
        .into_iter()
        .map(|(_, p)| p)
        .filter(|p| p["PolicyDetails"]["TargetTags"][0]["Value"] == "web1")
        .collect();
    assert_eq!(web.len(), 1, "{web:?}");
    let s = &web[0]["PolicyDetails"]["Schedules"][0];
    assert_eq!(s["CreateRule"]["Interval"], 24, "{s}");
    assert_eq!(s["CreateRule"]["Times"], serde_json::json!(["01:00"]));
    assert_eq!(s["RetainRule"]["Count"], 3);
    assert_eq!(dlm.policies().len(), 2);

    // destroy removes web1's policy (and only that one).
    b.run(&["destroy", "web1", "--provider", "aws", "--yes"])
        .expect_code(0);
    let left = dlm.policies();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].1["PolicyDetails"]["TargetTags"][0]["Value"], "db1");
    assert!(view.live_instances("web1").is_empty());
    b.run(&["snapshot", "set", "db1", "off", "--provider", "aws"])
        .expect_code(0);
    assert!(dlm.policies().is_empty());
    b.run(&["snapshot", "set", "db1", "daily:5", "--provider", "aws"])
        .expect_code(0);

    // db1's instance terminated by hand: nothing on it says DLM any more, yet destroy finds
    // the deployment's policy by its tags and removes it (issue 13, loose end d).
    let id = view.live_instances("db1")[0]
        .instance_id()
        .unwrap()
        .to_owned();
    view.block(view.client.terminate_instances().instance_ids(id).send())
        .unwrap();
    assert_eq!(dlm.policies().len(), 1);
    b.run(&["destroy", "db1", "--provider", "aws", "--yes"])
        .expect_code(0);
    assert!(dlm.policies().is_empty(), "{:?}", dlm.policies());
    assert!(view.live_instances("db1").is_empty());
}

#[test]
fn aws_dlm_refused_policy_fails_before_launch_and_names_the_role_command() {
    let moto = Moto::start();
    let dlm = FakeDlm::start();
    dlm.refuse_create(true);
    let view = Ec2View::new(&moto.url());
    let b = bin(&moto.url(), Some(&dlm.url()));
    let r = create(&b, "web1", &[]);
    r.expect_code(1);
    assert!(
        r.stderr()
            .contains("aws dlm create-default-role --resource-type image"),
        "{}",
        r.stderr()
    );
    assert!(
        r.stderr().contains("--snapshot-engine job"),
        "{}",
        r.stderr()
    );
    assert!(view.instances("web1").is_empty(), "no instance launched");
    assert!(
        view.leftovers("web1").is_empty(),
        "{:?}",
        view.leftovers("web1")
    );
    assert!(dlm.policies().is_empty());
    // `--snapshots off` needs no policy at all.
    create(&b, "web1", &["--snapshots", "off"]).expect_code(0);
    assert!(dlm.policies().is_empty());
    b.run(&["destroy", "web1", "--provider", "aws", "--yes"])
        .expect_code(0);
}

#[test]
fn aws_job_takes_over_the_ami_another_run_made_for_the_same_slot() {
    let JobCloud {
        b,
        view,
        proxy,
        _moto,
    } = JobCloud::with("web1", "daily:2");
    // EC2 makes the AMI, then answers as it does when another run already took the name: AMI
    // names are unique per account, so of two runs in one slot only one CreateImage succeeds.
    proxy.fail(
        "CreateImage",
        crate::aws_proxy::Fault::StatusAfter(400, "InvalidAMIName.Duplicate"),
        Some(1),
    );
    let out = job(&b, "2026-11-20T04:00:00Z");
    assert_eq!(out["servers"][0]["result"], "created", "{out}");
    let ours = own_images(&view, Some("web1"));
    assert_eq!(ours.len(), 1, "{ours:?}");
    assert_eq!(
        out["servers"][0]["id"].as_str(),
        ours[0].image_id(),
        "{out}"
    );
    assert_eq!(proxy.calls_of("CreateImage").len(), 1);
    b.run(&[
        "destroy",
        "web1",
        "--provider",
        "aws",
        "--yes",
        "--delete-snapshots",
    ])
    .expect_code(0);
    assert!(own_images(&view, Some("web1")).is_empty());
}

#[test]
fn aws_job_fails_without_deleting_when_a_foreign_ami_holds_the_slot_name() {
    let JobCloud {
        b,
        view,
        proxy,
        _moto,
    } = JobCloud::with("web1", "daily:1");
    // Yesterday's snapshot: retention would delete it once today's exists.
    let first = job(&b, "2026-11-19T04:00:00Z");
    assert_eq!(first["servers"][0]["result"], "created", "{first}");
    // Someone else's AMI already carries today's name: EC2 refuses the name.
    proxy.fail(
        "CreateImage",
        crate::aws_proxy::Fault::Status(400, "InvalidAMIName.Duplicate"),
        Some(1),
    );
    let r = b.run(&[
        "snapshot",
        "run",
        "--provider",
        "aws",
        "--at",
        "2026-11-20T04:00:00Z",
        "--output",
        "json",
    ]);
    assert_eq!(r.code(), 1, "{}", r.stderr());
    let out: Value = serde_json::from_str(&r.stdout()).unwrap();
    assert_eq!(out["servers"][0]["result"], "failed", "{out}");
    let err = out["servers"][0]["error"].as_str().unwrap();
    assert!(err.contains("is not web1's snapshot"), "{err}");
    assert_eq!(
        own_images(&view, Some("web1")).len(),
        1,
        "yesterday's snapshot is kept when today's could not be taken"
    );
}

#[test]
fn aws_prune_retried_after_a_failed_ebs_delete_leaves_no_orphan() {
    let JobCloud {
        mut b,
        view,
        proxy,
        _moto,
    } = JobCloud::with("web1", "daily:1");
    b.env("BOOTSTRAP_RETRY_MAX", "3");
    job(&b, "2026-11-19T04:00:00Z");
    let old = own_images(&view, Some("web1")).remove(0);
    let old_backing = backing(&old);
    assert!(!old_backing.is_empty());
    std::thread::sleep(std::time::Duration::from_millis(1100));
    // The AMI is deregistered, then deleting its EBS snapshot fails once.
    proxy.fail(
        "DeleteSnapshot",
        crate::aws_proxy::Fault::Status(500, "InternalError"),
        Some(1),
    );
    let out = job(&b, "2026-11-20T04:00:00Z");
    assert_eq!(out["servers"][0]["result"], "created", "{out}");
    assert_eq!(proxy.calls_of("DeregisterImage").len(), 1);
    assert!(
        proxy.calls_of("DeleteSnapshot").len() >= 2,
        "{:?}",
        proxy.actions()
    );
    let ours = own_images(&view, Some("web1"));
    assert_eq!(ours.len(), 1);
    assert_ne!(ours[0].image_id(), old.image_id());
    for s in &old_backing {
        assert!(
            !snapshot_exists(&view, s),
            "EBS snapshot {s} of the pruned AMI was orphaned"
        );
    }
    for s in backing(&ours[0]) {
        assert!(
            snapshot_exists(&view, &s),
            "today's EBS snapshot {s} is kept"
        );
    }
}

#[test]
fn aws_job_over_30_instances_stays_within_3_calls_a_server() {
    use aws_sdk_ec2::types::Tag;
    let JobCloud {
        b,
        view,
        proxy,
        _moto,
    } = JobCloud::with("s0", "daily:1");
    // 29 more instances straight to moto, tagged like s0 but for their own deployments.
    let n = 30;
    let template = view.instances("s0").remove(0);
    let ran = view
        .block(
            view.client
                .run_instances()
                .image_id(template.image_id().unwrap())
                .instance_type(template.instance_type().unwrap().clone())
                .min_count(n - 1)
                .max_count(n - 1)
                .send(),
        )
        .unwrap();
    for (i, inst) in ran.instances().iter().enumerate() {
        let name = format!("s{}", i + 1);
        let tags: Vec<Tag> = template
            .tags()
            .iter()
            .map(|t| {
                Tag::builder()
                    .key(t.key().unwrap())
                    .value(t.value().unwrap().replace("s0", &name))
                    .build()
            })
            .collect();
        view.block(
            view.client
                .create_tags()
                .resources(inst.instance_id().unwrap())
                .set_tags(Some(tags))
                .send(),
        )
        .unwrap();
    }
    let n = n as usize;
    for (day, at) in [(1, "2026-11-19T04:00:00Z"), (2, "2026-11-20T04:00:00Z")] {
        // Retention goes by creation time, which moto keeps to the second.
        std::thread::sleep(std::time::Duration::from_millis(1100));
        proxy.clear_calls();
        let out = job(&b, at);
        let servers = out["servers"].as_array().unwrap();
        assert_eq!(servers.len(), n, "{out}");
        assert!(servers.iter().all(|s| s["result"] == "created"), "{out}");
        let count = |a: &str| proxy.calls_of(a).len();
        let calls = proxy.calls().len();
        let describes = count("DescribeImages");
        eprintln!(
            "aws job day {day}, {n} servers: {calls} calls ({:.2} a server): {:?}",
            calls as f64 / n as f64,
            proxy.actions().iter().fold(
                std::collections::BTreeMap::<String, usize>::new(),
                |mut m, a| {
                    *m.entry(a.clone()).or_default() += 1;
                    m
                }
            )
        );
        assert_eq!(count("CreateImage"), n);
        assert_eq!(
            count("CreateTags"),
            n,
            "the EBS snapshots of each AMI, once"
        );
        // One by one, each AMI would be read at least twice (its wait, its finish): batched,
        // fewer reads than servers, however moto's pace spreads the waits over rounds.
        assert!(
            describes < n,
            "pending AMIs are read together, not one by one: {describes} DescribeImages"
        );
        if day == 1 {
            assert_eq!(count("DeregisterImage"), 0);
            assert!(calls <= 3 * n, "{calls} calls for {n} servers");
        } else {
            // Yesterday's AMI goes without a read first; moto reports no EBS snapshot deleted
            // by `DeleteAssociatedSnapshots`, so the adapter deletes each itself.
            assert_eq!(count("DeregisterImage"), n);
            assert_eq!(count("DeleteSnapshot"), n);
            assert!(
                calls - count("DeleteSnapshot") <= 4 * n,
                "{calls} calls for {n} servers"
            );
            let sent = proxy.calls_of("DeregisterImage");
            assert!(
                sent.iter().all(|c| c
                    .params
                    .get("DeleteAssociatedSnapshots")
                    .map(String::as_str)
                    == Some("true")),
                "{sent:?}"
            );
        }
    }
    // Each deployment keeps exactly today's AMI, with its EBS snapshots tagged.
    let ours = own_images(&view, None);
    assert_eq!(ours.len(), n);
    for img in &ours {
        assert_eq!(tag(img, "bootstrap-slot"), Some("20261120T0300Z"));
        for s in backing(img) {
            let snap = view
                .block(view.client.describe_snapshots().snapshot_ids(&s).send())
                .unwrap();
            assert_eq!(
                snap.snapshots()[0]
                    .tags()
                    .iter()
                    .find(|t| t.key() == Some("bootstrap-deployment"))
                    .and_then(|t| t.value()),
                tag(img, "bootstrap-deployment")
            );
        }
    }
}
