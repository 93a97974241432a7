//! `--provider aws` end to end: the real binary against `moto_server`, directly or through the
//! recording proxy (`aws_proxy`) where moto differs from EC2 or a fault has to be injected.
//!
//! What moto cannot show, and where it is covered instead: `ClientToken` idempotency (moto
//! ignores the token; the proxy replays a repeated token's first answer, as EC2 does), pending
//! and shutting-down states (moto's instances are `running`/`terminated` at once; the proxy
//! rewrites the first describes), `DependencyViolation` on a security group still attached
//! (moto deletes it; the proxy answers the error), Canonical's and Debian's AMIs (our own AMI
//! catalog), the ed25519 fingerprint format (moto hashes the DER key; the adapter also matches
//! the key material).

use std::time::Instant;

use aws_sdk_ec2::types::{HttpTokensState, InstanceStateName, VolumeType};
use base64::Engine as _;

use crate::aws_proxy::{Ec2Proxy, Fault};
use crate::moto::{Ec2View, Moto, NOBLE_NEWEST, aws_env};
use crate::support::{Bin, Run};

const V4: &str = "203.0.113.7/32";
const V6: &str = "2001:db8::/48";

fn bin(endpoint: &str) -> Bin {
    let mut b = Bin::new();
    aws_env(&mut b, endpoint);
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
        "--ssh-from",
        V6,
        "--output",
        "json",
    ];
    // moto has no Data Lifecycle Manager (AWS's default engine): these tests keep the schedule
    // with the job; tests/it/aws_snapshots.rs covers DLM against a fake.
    if !extra.contains(&"--snapshot-engine") {
        args.extend_from_slice(&["--snapshot-engine", "job"]);
    }
    args.extend_from_slice(extra);
    b.run(&args)
}

fn destroy(b: &Bin, name: &str) -> Run {
    b.run(&[
        "destroy",
        name,
        "--provider",
        "aws",
        "--yes",
        "--output",
        "json",
    ])
}

fn tag<'a>(tags: &'a [aws_sdk_ec2::types::Tag], key: &str) -> Option<&'a str> {
    tags.iter()
        .find(|t| t.key() == Some(key))
        .and_then(|t| t.value())
}

/// The actions of one run, `Action x count` in order of first use, for messages.
fn summary(actions: &[String]) -> String {
    let mut seen: Vec<(String, usize)> = Vec::new();
    for a in actions {
        match seen.iter_mut().find(|(x, _)| x == a) {
            Some((_, n)) => *n += 1,
            None => seen.push((a.clone(), 1)),
        }
    }
    seen.iter()
        .map(|(a, n)| format!("{a} x{n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[test]
fn aws_create_describe_list_destroy_against_moto() {
    let moto = Moto::start();
    let proxy = Ec2Proxy::start(&moto.url());
    let view = Ec2View::new(&moto.url());
    let b = bin(&proxy.url());

    let r = create(&b, "web1", &["--image", "ubuntu-24.04"]);
    r.expect_code(0);
    let create_calls = proxy.actions();
    let out: serde_json::Value = serde_json::from_str(&r.stdout()).unwrap();
    let id = out["server"]["id"].as_str().unwrap().to_owned();
    assert_eq!(out["server"]["status"], "running");
    assert!(out["server"]["ipv4"].is_string(), "{out}");

    // The instance: running, tagged, IMDSv2 only, our key and group, the newest Canonical noble.
    let live = view.live_instances("web1");
    assert_eq!(live.len(), 1, "{live:?}");
    let i = &live[0];
    assert_eq!(i.instance_id(), Some(id.as_str()));
    assert_eq!(
        i.state().and_then(|s| s.name()),
        Some(&InstanceStateName::Running)
    );
    assert_eq!(tag(i.tags(), "managed-by"), Some("bootstrap"));
    assert_eq!(tag(i.tags(), "bootstrap-deployment"), Some("web1"));
    assert_eq!(tag(i.tags(), "Name"), Some("web1"));
    assert_eq!(tag(i.tags(), "bootstrap-ssh-key"), Some("bootstrap-web1"));
    let md = i.metadata_options().unwrap();
    assert_eq!(md.http_tokens(), Some(&HttpTokensState::Required));
    assert_eq!(md.http_put_response_hop_limit(), Some(1));
    assert_eq!(i.key_name(), Some("bootstrap-web1"));
    assert_eq!(
        i.image_id(),
        Some(NOBLE_NEWEST),
        "newest Canonical image, not someone else's"
    );
    assert_eq!(i.instance_type().map(|t| t.as_str()), Some("t3.micro"));

    // The security group: tagged, TCP 22 from exactly the given networks, nothing else in.
    let groups = view.security_groups("web1");
    assert_eq!(groups.len(), 1);
    let g = &groups[0];
    assert_eq!(
        i.security_groups()
            .iter()
            .map(|s| s.group_id())
            .collect::<Vec<_>>(),
        [g.group_id()]
    );
    assert_eq!(tag(g.tags(), "managed-by"), Some("bootstrap"));
    assert_eq!(g.ip_permissions().len(), 1, "{:?}", g.ip_permissions());
    let p = &g.ip_permissions()[0];
    assert_eq!(
        (p.ip_protocol(), p.from_port(), p.to_port()),
        (Some("tcp"), Some(22), Some(22))
    );
    assert_eq!(
        p.ip_ranges()
            .iter()
            .map(|r| r.cidr_ip().unwrap())
            .collect::<Vec<_>>(),
        [V4]
    );
    assert_eq!(
        p.ipv6_ranges()
            .iter()
            .map(|r| r.cidr_ipv6().unwrap())
            .collect::<Vec<_>>(),
        [V6]
    );
    assert!(!g.ip_permissions_egress().is_empty(), "default egress kept");

    // The key pair: imported, tagged.
    let keys = view.key_pairs("web1");
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0].key_name(), Some("bootstrap-web1"));
    assert_eq!(tag(keys[0].tags(), "managed-by"), Some("bootstrap"));

    // The root volume: encrypted gp3, tagged.
    let vols = view.volumes("web1");
    assert_eq!(vols.len(), 1, "{vols:?}");
    assert_eq!(vols[0].encrypted(), Some(true));
    assert_eq!(vols[0].volume_type(), Some(&VolumeType::Gp3));
    assert_eq!(tag(vols[0].tags(), "Name"), Some("web1"));

    // The request itself: base64 user-data equal to `render`, a ClientToken.
    let run = proxy.calls_of("RunInstances");
    assert_eq!(run.len(), 1);
    let ud = base64::engine::general_purpose::STANDARD
        .decode(&run[0].params["UserData"])
        .unwrap();
    let rendered = b.run(&[
        "render",
        "--provider",
        "aws",
        "--name",
        "web1",
        "--ssh-from",
        V4,
        "--ssh-from",
        V6,
    ]);
    rendered.expect_code(0);
    // Equal but for the host key, which render makes up (create never prints the real one).
    assert_eq!(
        crate::cli::mask_generated(&String::from_utf8(ud).unwrap()),
        crate::cli::mask_generated(&rendered.stdout())
    );
    let token = &run[0].params["ClientToken"];
    assert!(
        token.starts_with("bootstrap-") && token.len() <= 64,
        "{token}"
    );
    assert_eq!(run[0].params["MetadataOptions.HttpTokens"], "required");
    assert_eq!(run[0].params["BlockDeviceMapping.1.Ebs.Encrypted"], "true");

    // list finds it through the tags.
    let l = b.run(&["list", "--provider", "aws", "--output", "json"]);
    l.expect_code(0);
    let v: serde_json::Value = serde_json::from_str(&l.stdout()).unwrap();
    let names: Vec<_> = v["deployments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["web1"], "{v}");
    assert_eq!(v["deployments"][0]["servers"][0]["id"], id.as_str());

    proxy.clear_calls();
    let d = destroy(&b, "web1");
    d.expect_code(0);
    let destroy_calls = proxy.actions();
    assert!(
        view.leftovers("web1").is_empty(),
        "{:?}",
        view.leftovers("web1")
    );
    assert!(
        view.instances("web1")
            .iter()
            .all(|i| i.state().and_then(|s| s.name()) == Some(&InstanceStateName::Terminated))
    );
    assert!(
        view.volumes("web1").is_empty(),
        "root volume deleted on termination"
    );

    // Idempotent.
    destroy(&b, "web1").expect_code(0);
    eprintln!(
        "create: {} calls ({})\ndestroy: {} calls ({})",
        create_calls.len(),
        summary(&create_calls),
        destroy_calls.len(),
        summary(&destroy_calls)
    );
    // instance type + image check, list x3, key find + import, group create + ingress, image,
    // launch, describe until running.
    assert!(create_calls.len() <= 14, "{}", summary(&create_calls));
    assert!(destroy_calls.len() <= 12, "{}", summary(&destroy_calls));
}

#[test]
fn aws_second_create_starts_no_second_instance() {
    let moto = Moto::start();
    let proxy = Ec2Proxy::start(&moto.url());
    let view = Ec2View::new(&moto.url());
    let b = bin(&proxy.url());
    let first = create(&b, "twice", &["--image", NOBLE_NEWEST]);
    first.expect_code(0);
    let second = create(&b, "twice", &["--image", NOBLE_NEWEST]);
    second.expect_code(0);
    let id = |r: &Run| {
        serde_json::from_str::<serde_json::Value>(&r.stdout()).unwrap()["server"]["id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(id(&first), id(&second));
    assert_eq!(
        proxy.calls_of("RunInstances").len(),
        1,
        "{:?}",
        proxy.actions()
    );
    assert_eq!(proxy.calls_of("ImportKeyPair").len(), 1);
    assert_eq!(proxy.calls_of("CreateSecurityGroup").len(), 1);
    assert_eq!(view.live_instances("twice").len(), 1);
    let v: serde_json::Value = serde_json::from_str(&second.stdout()).unwrap();
    assert_eq!(
        v["created"].as_array().unwrap().len(),
        0,
        "second run made nothing: {v}"
    );
    assert!(proxy.calls_of("RevokeSecurityGroupIngress").is_empty());
    assert_eq!(proxy.calls_of("AuthorizeSecurityGroupIngress").len(), 1);

    // The owner's address changed: a third run moves SSH to it, old address out, IPv6 kept.
    let third = b.run(&[
        "create",
        "--provider",
        "aws",
        "--name",
        "twice",
        "--ssh-from",
        "198.51.100.0/24",
        "--ssh-from",
        V6,
        "--snapshot-engine",
        "job",
        "--image",
        NOBLE_NEWEST,
    ]);
    third.expect_code(0);
    assert!(
        third
            .stderr()
            .contains("(was 203.0.113.7/32, 2001:db8::/48)"),
        "{}",
        third.stderr()
    );
    assert_eq!(proxy.calls_of("AuthorizeSecurityGroupIngress").len(), 2);
    assert_eq!(proxy.calls_of("RevokeSecurityGroupIngress").len(), 1);
    assert_eq!(proxy.calls_of("CreateSecurityGroup").len(), 1);
    let groups = view.security_groups("twice");
    assert_eq!(groups.len(), 1);
    let ssh: Vec<_> = groups[0]
        .ip_permissions()
        .iter()
        .filter(|p| p.from_port() == Some(22))
        .collect();
    let v4: Vec<_> = ssh
        .iter()
        .flat_map(|p| p.ip_ranges())
        .filter_map(|r| r.cidr_ip())
        .collect();
    let v6: Vec<_> = ssh
        .iter()
        .flat_map(|p| p.ipv6_ranges())
        .filter_map(|r| r.cidr_ipv6())
        .collect();
    assert_eq!(v4, ["198.51.100.0/24"], "the old address lost access");
    assert_eq!(v6, [V6]);
}

#[test]
fn aws_lost_launch_answer_is_retried_with_the_same_client_token() {
    let moto = Moto::start();
    let proxy = Ec2Proxy::start(&moto.url());
    let view = Ec2View::new(&moto.url());
    let b = bin(&proxy.url());
    // The SDK makes one attempt (core retries): the lost launch is found again by its labels,
    // or sent again with the same token; either way one instance.
    proxy.fail(
        "RunInstances",
        Fault::StatusAfter(500, "InternalError"),
        Some(1),
    );
    create(&b, "lost", &["--image", NOBLE_NEWEST]).expect_code(0);
    let runs = proxy.calls_of("RunInstances");
    assert!(!runs.is_empty(), "{:?}", proxy.actions());
    assert!(
        runs.iter()
            .all(|r| r.params["ClientToken"] == runs[0].params["ClientToken"]),
        "{:?}",
        proxy.actions()
    );
    assert_eq!(
        view.live_instances("lost").len(),
        1,
        "one instance for one token"
    );
}

#[test]
fn aws_polls_pending_instances_and_groups_still_in_use() {
    let moto = Moto::start();
    let proxy = Ec2Proxy::start(&moto.url());
    let view = Ec2View::new(&moto.url());
    let b = bin(&proxy.url());

    proxy.pending_for(3);
    create(&b, "slow", &["--image", NOBLE_NEWEST]).expect_code(0);
    let calls = proxy.calls();
    let launched = calls
        .iter()
        .position(|c| c.action == "RunInstances")
        .unwrap();
    let describes = calls[launched..]
        .iter()
        .filter(|c| c.action == "DescribeInstances")
        .count();
    // One look by tags for a racing run's instance, then 3 pending, then running.
    assert_eq!(
        describes,
        5,
        "race check, 3 pending, then running: {}",
        summary(&proxy.actions())
    );

    proxy.clear_calls();
    proxy.shutting_down_for(2);
    proxy.security_group_in_use_for(3);
    destroy(&b, "slow").expect_code(0);
    let sg: Vec<_> = proxy
        .calls_of("DeleteSecurityGroup")
        .iter()
        .map(|c| c.code.clone().unwrap_or_else(|| "ok".into()))
        .collect();
    assert_eq!(
        sg,
        [
            "DependencyViolation",
            "DependencyViolation",
            "DependencyViolation",
            "ok"
        ]
    );
    let actions = proxy.actions();
    let terminate = actions
        .iter()
        .position(|a| a == "TerminateInstances")
        .unwrap();
    let first_delete = actions
        .iter()
        .position(|a| a == "DeleteSecurityGroup")
        .unwrap();
    let waits = actions[terminate..first_delete]
        .iter()
        .filter(|a| *a == "DescribeInstances")
        .count();
    assert_eq!(
        waits,
        3,
        "2 shutting-down, then terminated: {}",
        summary(&actions)
    );
    assert!(
        view.leftovers("slow").is_empty(),
        "{:?}",
        view.leftovers("slow")
    );
}

#[test]
fn aws_every_create_action_failing_leaves_nothing_behind() {
    let moto = Moto::start();
    let proxy = Ec2Proxy::start(&moto.url());
    let view = Ec2View::new(&moto.url());
    let b = bin(&proxy.url());

    // A clean run names the actions create uses.
    create(&b, "probe", &["--image", "ubuntu-24.04"]).expect_code(0);
    let mut actions = proxy.actions();
    actions.dedup();
    let mut used: Vec<String> = Vec::new();
    for a in actions {
        if !used.contains(&a) {
            used.push(a);
        }
    }
    destroy(&b, "probe").expect_code(0);
    assert!(used.len() >= 8, "{used:?}");

    for (n, action) in used.iter().enumerate() {
        let name = format!("fault{n}");
        // Alternate a server error (retried, then given up) and a refusal (not retried).
        let fault = if n % 2 == 0 {
            Fault::Status(500, "InternalError")
        } else {
            Fault::Status(403, "UnauthorizedOperation")
        };
        proxy.clear_faults();
        proxy.fail(action, fault, None);
        // The region as a flag: the printed destroy command must carry it.
        let r = create(
            &b,
            &name,
            &["--image", "ubuntu-24.04", "--region", crate::moto::REGION],
        );
        proxy.clear_faults();
        r.expect_code(1);
        let err = r.stderr();
        assert!(
            err.contains(action.as_str()),
            "{action}: error names the call: {err}"
        );
        if n % 2 == 1 {
            assert!(err.contains("lacks an EC2 permission"), "{err}");
        }
        if err.contains("rollback failed") {
            // The rollback needed the broken call too; the printed command finishes the job.
            let cmd = crate::support::printed_destroy(&err).expect("a destroy command");
            assert_eq!(
                cmd[..4],
                ["destroy", name.as_str(), "--provider", "aws"],
                "{err}"
            );
            assert!(cmd.contains(&"--region".to_owned()), "{err}");
            // Run exactly what was printed.
            let args: Vec<&str> = cmd.iter().map(String::as_str).collect();
            b.run(&args).expect_code(0);
        }
        assert!(
            view.leftovers(&name).is_empty(),
            "{action} failing left {:?}\n{err}",
            view.leftovers(&name)
        );
    }
}

#[test]
fn aws_failed_rollback_prints_a_destroy_command_with_the_region_that_finishes_the_job() {
    let moto = Moto::start();
    let proxy = Ec2Proxy::start(&moto.url());
    let view = Ec2View::new(&moto.url());
    let mut b = bin(&proxy.url());
    // The region comes only from the flag: a printed command without it would look elsewhere.
    b.unset("AWS_REGION");
    b.unset("AWS_DEFAULT_REGION");
    proxy.fail(
        "RunInstances",
        Fault::Status(403, "UnauthorizedOperation"),
        None,
    );
    proxy.fail(
        "DeleteSecurityGroup",
        Fault::Status(403, "UnauthorizedOperation"),
        None,
    );
    let r = create(
        &b,
        "half",
        &["--image", NOBLE_NEWEST, "--region", crate::moto::REGION],
    );
    r.expect_code(1);
    let err = r.stderr();
    assert!(err.contains("rollback failed"), "{err}");
    assert!(
        !view.leftovers("half").is_empty(),
        "the group is left: {err}"
    );
    let cmd = crate::support::printed_destroy(&err).expect("a destroy command");
    assert!(
        cmd.windows(2)
            .any(|w| w == ["--region", crate::moto::REGION]),
        "{cmd:?}"
    );
    proxy.clear_faults();
    let args: Vec<&str> = cmd.iter().map(String::as_str).collect();
    b.run(&args).expect_code(0);
    assert!(
        view.leftovers("half").is_empty(),
        "{:?}",
        view.leftovers("half")
    );
}

#[test]
fn aws_a_new_security_group_not_visible_yet_gets_its_rules_on_the_next_attempt() {
    let moto = Moto::start();
    let proxy = Ec2Proxy::start(&moto.url());
    let view = Ec2View::new(&moto.url());
    let mut b = bin(&proxy.url());
    b.env("BOOTSTRAP_RETRY_MAX", "2");
    // EC2's eventual consistency: the group CreateSecurityGroup just made is unknown to the
    // next call for a moment.
    proxy.fail(
        "AuthorizeSecurityGroupIngress",
        Fault::Status(400, "InvalidGroup.NotFound"),
        Some(1),
    );
    create(&b, "lag", &["--image", NOBLE_NEWEST]).expect_code(0);
    // The rules go beside the launch; refused there, they are sent again when the instance is
    // completed, to the same group: none is made again or deleted.
    assert_eq!(proxy.calls_of("CreateSecurityGroup").len(), 1);
    assert_eq!(proxy.calls_of("AuthorizeSecurityGroupIngress").len(), 2);
    assert!(proxy.calls_of("DeleteSecurityGroup").is_empty());
    let groups = view.security_groups("lag");
    assert_eq!(groups.len(), 1);
    assert!(
        groups[0]
            .ip_permissions()
            .iter()
            .any(|p| p.from_port() == Some(22)),
        "the group has its SSH rule: {groups:?}"
    );
    assert_eq!(view.live_instances("lag").len(), 1);
}

#[test]
fn aws_throttled_first_call_is_retried_by_the_core() {
    let moto = Moto::start();
    let proxy = Ec2Proxy::start(&moto.url());
    let mut b = bin(&proxy.url());
    // The SDK makes one attempt per call whatever the environment says: the core's retry sends
    // the call again, 4 throttled, then the 5th passes.
    b.env("AWS_MAX_ATTEMPTS", "3");
    b.env("AWS_RETRY_MODE", "standard");
    b.env("BOOTSTRAP_RETRY_MAX", "4");
    proxy.fail(
        "DescribeInstances",
        Fault::Status(503, "RequestLimitExceeded"),
        Some(4),
    );
    let started = Instant::now();
    create(&b, "throttled", &["--image", NOBLE_NEWEST]).expect_code(0);
    let calls = proxy.calls();
    let throttled = calls
        .iter()
        .filter(|c| c.code.as_deref() == Some("RequestLimitExceeded"))
        .count();
    assert_eq!(throttled, 4);
    // The same call sent again by the core: four throttled answers, then the fifth passes.
    let describes: Vec<Option<&str>> = calls
        .iter()
        .filter(|c| c.action == "DescribeInstances")
        .take(5)
        .map(|c| c.code.as_deref())
        .collect();
    assert_eq!(
        describes,
        [Some("RequestLimitExceeded"); 4]
            .into_iter()
            .chain([None])
            .collect::<Vec<_>>()
    );
    assert!(started.elapsed().as_secs() < 60);
}

#[test]
fn aws_render_equals_hetzner_render_and_dry_run_needs_no_credentials() {
    let mut b = Bin::new();
    let kp =
        ssh_key::PrivateKey::random(&mut rand::rngs::OsRng, ssh_key::Algorithm::Ed25519).unwrap();
    let path = b.dir.path().join("me.pub");
    std::fs::write(
        &path,
        format!("{}\n", kp.public_key().to_openssh().unwrap()),
    )
    .unwrap();
    let key = path.to_str().unwrap();
    let render = |p: &str| {
        let r = b.run(&[
            "render",
            "--provider",
            p,
            "--name",
            "same",
            "--ssh-from",
            V4,
            "--ssh-key",
            key,
        ]);
        r.expect_code(0);
        r.stdout()
    };
    // The template is provider-neutral: the hardening tests of Hetzner's user-data cover AWS's.
    assert_eq!(
        crate::cli::mask_generated(&render("aws")),
        crate::cli::mask_generated(&render("hetzner"))
    );

    b.unset("HCLOUD_TOKEN");
    b.env("AWS_EC2_METADATA_DISABLED", "true");
    let r = b.run(&[
        "create",
        "--provider",
        "aws",
        "--name",
        "dry",
        "--ssh-from",
        V4,
        "--dry-run",
        "--output",
        "json",
    ]);
    r.expect_code(0);
    let v: serde_json::Value = serde_json::from_str(&r.stdout()).unwrap();
    assert_eq!(v["user_data_limit"], 16384);
    assert_eq!(v["server"]["server_type"], "t3.micro");
    assert_eq!(v["server"]["image"], "ubuntu-24.04");
}

#[test]
fn aws_unknown_instance_type_ami_or_zone_is_refused_before_anything_is_made() {
    let moto = Moto::start();
    let proxy = Ec2Proxy::start(&moto.url());
    let view = Ec2View::new(&moto.url());
    let b = bin(&proxy.url());
    for (extra, says) in [
        (
            &["--server-type", "t9.nano", "--image", NOBLE_NEWEST][..],
            "--server-type",
        ),
        (&["--image", "ami-0123456789abcdef0"][..], "no such AMI"),
        (
            &["--location", "us-east-1z", "--image", NOBLE_NEWEST][..],
            "--location us-east-1z",
        ),
    ] {
        let r = create(&b, "typo", extra);
        r.expect_code(2);
        let err = r.stderr();
        assert!(err.contains(says), "{extra:?}: {err}");
        let errors: Vec<_> = err.lines().filter(|l| l.starts_with("error")).collect();
        assert_eq!(errors.len(), 1, "one line: {err}");
    }
    let writes: Vec<_> = proxy
        .actions()
        .into_iter()
        .filter(|a| !a.starts_with("Describe"))
        .collect();
    assert!(writes.is_empty(), "only reads were sent: {writes:?}");
    assert!(view.leftovers("typo").is_empty());
    assert!(!b.key_path("aws", "typo").exists());
}

#[test]
fn aws_bad_flags_and_missing_setup_are_refused_before_any_call() {
    let mut b = Bin::new();
    // Nothing listens here: any call would fail with a connection error (exit 1), not 2.
    aws_env(&mut b, "http://127.0.0.1:9");
    let base = [
        "create",
        "--provider",
        "aws",
        "--name",
        "x",
        "--ssh-from",
        V4,
    ];
    for (extra, says) in [
        (&["--region", "Europe"][..], "--region"),
        (&["--vpc", "vpc-nothex!"][..], "--vpc"),
        (&["--subnet", "sn-1"][..], "--subnet"),
        (&["--image", "ubuntu"][..], "--image"),
        (&["--server-type", "t3"][..], "--server-type"),
        (&["--location", "eu-central-1"][..], "--location"),
        (
            &["--location", "us-east-1a", "--subnet", "subnet-0123abcd"][..],
            "--location and --subnet",
        ),
        (&["--profile", "a b"][..], "--profile"),
    ] {
        let mut args = base.to_vec();
        args.extend_from_slice(extra);
        let r = b.run(&args);
        r.expect_code(2);
        assert!(r.stderr().contains(says), "{extra:?}: {}", r.stderr());
    }
    let r = b.run(&[
        "create",
        "--provider",
        "hetzner",
        "--name",
        "x",
        "--ssh-from",
        V4,
        "--region",
        "eu-central-1",
        "--dry-run",
    ]);
    r.expect_code(2);
    assert!(
        r.stderr().contains("only applies to --provider aws"),
        "{}",
        r.stderr()
    );

    let mut no_region = Bin::new();
    aws_env(&mut no_region, "http://127.0.0.1:9");
    no_region.unset("AWS_REGION");
    let r = no_region.run(&["list", "--provider", "aws"]);
    r.expect_code(2);
    assert!(r.stderr().contains("no AWS region"), "{}", r.stderr());

    let mut no_creds = Bin::new();
    aws_env(&mut no_creds, "http://127.0.0.1:9");
    no_creds.unset("AWS_ACCESS_KEY_ID");
    no_creds.unset("AWS_SECRET_ACCESS_KEY");
    let r = no_creds.run(&["list", "--provider", "aws"]);
    r.expect_code(2);
    assert!(
        r.stderr().contains("no usable AWS credentials"),
        "{}",
        r.stderr()
    );
}

#[test]
fn aws_subnet_and_vpc_flags_place_group_and_instance() {
    let moto = Moto::start();
    let view = Ec2View::new(&moto.url());
    let b = bin(&moto.url());
    let subnets = view
        .block(view.client.describe_subnets().send())
        .unwrap()
        .subnets()
        .to_vec();
    let s = subnets
        .iter()
        .find(|s| s.map_public_ip_on_launch() == Some(true))
        .expect("moto's default VPC has public subnets");
    let (subnet, vpc) = (s.subnet_id().unwrap(), s.vpc_id().unwrap());

    create(
        &b,
        "insubnet",
        &["--image", NOBLE_NEWEST, "--subnet", subnet],
    )
    .expect_code(0);
    let i = &view.live_instances("insubnet")[0];
    assert_eq!(i.subnet_id(), Some(subnet));
    assert_eq!(view.security_groups("insubnet")[0].vpc_id(), Some(vpc));

    create(&b, "invpc", &["--image", NOBLE_NEWEST, "--vpc", vpc]).expect_code(0);
    let i = &view.live_instances("invpc")[0];
    assert_eq!(i.vpc_id(), Some(vpc));
    assert_eq!(view.security_groups("invpc")[0].vpc_id(), Some(vpc));

    for name in ["insubnet", "invpc"] {
        destroy(&b, name).expect_code(0);
        assert!(
            view.leftovers(name).is_empty(),
            "{:?}",
            view.leftovers(name)
        );
    }
}

#[test]
fn aws_shared_key_pair_is_kept_while_another_instance_uses_it() {
    let moto = Moto::start();
    let view = Ec2View::new(&moto.url());
    let b = bin(&moto.url());
    let kp =
        ssh_key::PrivateKey::random(&mut rand::rngs::OsRng, ssh_key::Algorithm::Ed25519).unwrap();
    let path = b.dir.path().join("me.pub");
    std::fs::write(
        &path,
        format!("{}\n", kp.public_key().to_openssh().unwrap()),
    )
    .unwrap();
    let key = path.to_str().unwrap();

    create(&b, "first", &["--image", NOBLE_NEWEST, "--ssh-key", key]).expect_code(0);
    create(&b, "second", &["--image", NOBLE_NEWEST, "--ssh-key", key]).expect_code(0);
    // The second deployment found the key pair by its key material and reused it.
    let second = &view.live_instances("second")[0];
    assert_eq!(second.key_name(), Some("bootstrap-first"));
    assert_eq!(
        tag(second.tags(), "bootstrap-ssh-key"),
        Some("bootstrap-first")
    );

    let d = destroy(&b, "first");
    d.expect_code(0);
    let v: serde_json::Value = serde_json::from_str(&d.stdout()).unwrap();
    assert_eq!(v["kept"][0]["resource"]["id"], "bootstrap-first", "{v}");
    assert!(
        v["kept"][0]["reason"].as_str().unwrap().contains("second"),
        "{v}"
    );
    assert_eq!(view.key_pairs("first").len(), 1);

    destroy(&b, "second").expect_code(0);
    // Once nothing uses it, destroying the first deployment again removes the key pair.
    destroy(&b, "first").expect_code(0);
    assert!(view.leftovers("first").is_empty() && view.leftovers("second").is_empty());
}

#[test]
fn aws_profile_gives_region_and_credentials() {
    let moto = Moto::start();
    let mut b = bin(&moto.url());
    b.unset("AWS_REGION");
    b.unset("AWS_ACCESS_KEY_ID");
    b.unset("AWS_SECRET_ACCESS_KEY");
    let config = b.dir.path().join("aws-config");
    std::fs::write(
        &config,
        "[default]\nregion = eu-west-3\n\n[profile ops]\nregion = us-east-1\naws_access_key_id = testing\naws_secret_access_key = testing\n",
    )
    .unwrap();
    b.env("AWS_CONFIG_FILE", config.to_str().unwrap());
    // The default profile has a region but no credentials: refused before any call.
    let r = b.run(&["list", "--provider", "aws"]);
    r.expect_code(2);
    assert!(
        r.stderr().contains("no usable AWS credentials"),
        "{}",
        r.stderr()
    );
    // --profile picks the one with credentials and its region.
    let r = b.run(&[
        "list",
        "--provider",
        "aws",
        "--profile",
        "ops",
        "--output",
        "json",
    ]);
    r.expect_code(0);
    assert!(r.stdout().contains("\"deployments\""), "{}", r.stdout());
    // --region overrides the profile's: the instance lands in eu-central-1.
    let r = b.run(&[
        "create",
        "--provider",
        "aws",
        "--profile",
        "ops",
        "--region",
        "eu-central-1",
        "--name",
        "p",
        "--ssh-from",
        V4,
        "--image",
        NOBLE_NEWEST,
        "--snapshot-engine",
        "job",
    ]);
    r.expect_code(0);
    assert_eq!(
        Ec2View::in_region(&moto.url(), "eu-central-1")
            .live_instances("p")
            .len(),
        1
    );
    assert!(Ec2View::new(&moto.url()).live_instances("p").is_empty());
}
