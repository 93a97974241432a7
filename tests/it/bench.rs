//! The benchmark (`cargo bench --bench speed`, `benches/speed/`) inside the test suite: its
//! analysis on logs whose answer is known, and its `--quick` run over 10 Hetzner servers, so
//! that the bench keeps working. Not a timed test: it checks that every run is measured and
//! the table has its numbers, not how fast anything is.

#![allow(dead_code)]

#[path = "../../benches/speed/analysis.rs"]
pub mod analysis;
#[cfg(feature = "aws")]
#[path = "../../benches/speed/aws.rs"]
pub mod aws;
#[path = "../../benches/speed/clouds.rs"]
pub mod clouds;
#[path = "../../benches/speed/report.rs"]
pub mod report;
#[path = "../../benches/speed/run.rs"]
pub mod run;

use std::time::{Duration, Instant};

use analysis::{Api, analyse};
use fakecloud::LoggedRequest;
use serde_json::{Value, json};

/// A logged call from `at` to `at + took` milliseconds after `t0`.
fn call(
    t0: Instant,
    (at, took): (u64, u64),
    method: &str,
    path: &str,
    body: Option<Value>,
    response: Value,
) -> LoggedRequest {
    LoggedRequest {
        n: 0,
        method: method.to_owned(),
        path: path.to_owned(),
        status: if response.is_null() && method == "GET" {
            404
        } else {
            200
        },
        fault: None,
        body,
        response: (!response.is_null()).then_some(response),
        arrived: t0 + Duration::from_millis(at),
        answered: t0 + Duration::from_millis(at + took),
    }
}

/// A Hetzner create as a tool with sequential look-ups makes it: 100 ms calls, a 1 s boot.
fn hetzner_create(t0: Instant) -> Vec<LoggedRequest> {
    vec![
        call(
            t0,
            (0, 100),
            "GET",
            "/v1/ssh_keys?label_selector=x",
            None,
            json!({"ssh_keys": []}),
        ),
        call(
            t0,
            (100, 100),
            "GET",
            "/v1/firewalls?label_selector=x",
            None,
            json!({"firewalls": []}),
        ),
        call(
            t0,
            (200, 100),
            "POST",
            "/v1/ssh_keys",
            Some(json!({"name": "k"})),
            json!({"ssh_key": {"id": 100_001}}),
        ),
        call(
            t0,
            (200, 100),
            "POST",
            "/v1/firewalls",
            Some(json!({"name": "f"})),
            json!({"firewall": {"id": 200_001}}),
        ),
        call(
            t0,
            (300, 100),
            "POST",
            "/v1/servers",
            Some(json!({"ssh_keys": [100_001], "firewalls": [{"firewall": 200_001}]})),
            json!({"server": {"id": 300_001, "status": "initializing"}, "action": {"id": 900_001, "status": "running"}}),
        ),
        call(
            t0,
            (400, 100),
            "GET",
            "/v1/actions?id=900001",
            None,
            json!({"actions": [{"id": 900_001, "status": "running"}]}),
        ),
        call(
            t0,
            (1500, 100),
            "GET",
            "/v1/actions?id=900001",
            None,
            json!({"actions": [{"id": 900_001, "status": "success"}]}),
        ),
    ]
}

#[test]
fn bench_round_trips_are_overlapping_sets_counted_before_the_first_poll() {
    let a = analyse(
        Api::Hetzner,
        &hetzner_create(Instant::now()),
        Duration::from_secs(1),
    );
    assert_eq!((a.calls, a.mutating, a.throttled), (7, 3, 0));
    // Two look-ups one after the other, key and firewall together, the server, two polls.
    assert_eq!(a.round_trips, 6);
    assert_eq!(a.before_poll, Some(4));
}

#[test]
fn bench_critical_path_is_a_read_stage_the_key_the_server_and_the_boot() {
    let a = analyse(
        Api::Hetzner,
        &hetzner_create(Instant::now()),
        Duration::from_secs(1),
    );
    // Read stage 100 + key 100 + server 100 + boot 1000 (the poll's own trip is hidden in
    // the boot): 1.3 s, against 1.6 s of wall time.
    assert_eq!(
        a.critical_path,
        Duration::from_millis(1300),
        "{:?}",
        a.chain
    );
    assert_eq!(
        a.chain,
        [
            "(read stage)",
            "POST /v1/ssh_keys",
            "POST /v1/servers",
            "GET /v1/actions + wait"
        ]
    );
}

#[test]
fn bench_a_firewall_goes_after_its_server_is_gone_and_only_real_operations_wait() {
    let t0 = Instant::now();
    let mut log = vec![
        call(
            t0,
            (0, 100),
            "GET",
            "/v1/servers?label_selector=x",
            None,
            json!({"servers": [{"id": 300_001, "status": "running"}]}),
        ),
        call(
            t0,
            (0, 100),
            "GET",
            "/v1/firewalls?label_selector=x",
            None,
            json!({"firewalls": [{"id": 200_001}]}),
        ),
        call(
            t0,
            (100, 100),
            "DELETE",
            "/v1/servers/300001",
            None,
            json!({"action": {"id": 900_002, "status": "running"}}),
        ),
        call(
            t0,
            (2000, 100),
            "GET",
            "/v1/actions/900002",
            None,
            json!({"action": {"id": 900_002, "status": "success"}}),
        ),
        call(
            t0,
            (2100, 100),
            "DELETE",
            "/v1/firewalls/200001",
            None,
            Value::Null,
        ),
    ];
    let a = analyse(Api::Hetzner, &log, Duration::from_secs(1));
    // 100 (list) + 100 (delete) + 1000 (the deletion) + 100 (firewall).
    assert_eq!(
        a.critical_path,
        Duration::from_millis(1300),
        "{:?}",
        a.chain
    );
    assert_eq!(a.before_poll, Some(2));
    // A delete answered as done (DigitalOcean's 204) has nothing to wait for.
    log[2].response = None;
    let a = analyse(Api::Hetzner, &log, Duration::from_secs(1));
    assert_eq!(a.critical_path, Duration::from_millis(300), "{:?}", a.chain);
}

#[test]
fn bench_reads_ec2_ids_and_states_from_the_xml() {
    let t0 = Instant::now();
    let form = |action: &str| Some(json!({"Action": action}));
    let running = "<DescribeInstancesResponse><requestId>r-1</requestId><reservationSet><item><instancesSet><item><instanceId>i-0abc</instanceId><imageId>ami-1234</imageId><instanceState><code>16</code><name>running</name></instanceState></item></instancesSet></item></reservationSet></DescribeInstancesResponse>";
    let pending = running.replace(
        "<code>16</code><name>running",
        "<code>0</code><name>pending",
    );
    let log = vec![
        call(
            t0,
            (0, 100),
            "POST",
            "/",
            form("DescribeImages"),
            json!("<imagesSet><item><imageId>ami-1234</imageId></item></imagesSet>"),
        ),
        call(
            t0,
            (100, 100),
            "POST",
            "/",
            Some(json!({"Action": "RunInstances", "ImageId": "ami-1234"})),
            json!(pending),
        ),
        call(
            t0,
            (200, 100),
            "POST",
            "/",
            Some(json!({"Action": "DescribeInstances", "InstanceId.1": "i-0abc"})),
            json!(pending),
        ),
        call(
            t0,
            (2000, 100),
            "POST",
            "/",
            Some(json!({"Action": "DescribeInstances", "InstanceId.1": "i-0abc"})),
            json!(running),
        ),
    ];
    let a = analyse(Api::Aws, &log, Duration::from_secs(1));
    assert_eq!((a.calls, a.mutating, a.before_poll), (4, 1, Some(2)));
    // The image look-up, the launch, the boot.
    assert_eq!(
        a.critical_path,
        Duration::from_millis(1200),
        "{:?}",
        a.chain
    );
    assert_eq!(
        a.chain,
        ["DescribeImages", "RunInstances", "DescribeInstances + wait"]
    );
}

/// The numbers of a markdown table row (`| a | 1 | 2.5 |` -> `["a", "1", "2.5"]`).
fn cells(line: &str) -> Vec<String> {
    line.trim_matches('|')
        .split('|')
        .map(|c| c.trim().to_owned())
        .collect()
}

#[test]
fn bench_quick_runs_create_destroy_and_the_job_over_10_hetzner_servers() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("BENCHMARKS.md");
    let args: Vec<String> = [
        "--quick",
        "--providers",
        "hetzner",
        "--op-ms",
        "2000",
        "--out",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .chain([out.display().to_string()])
    .collect();
    run::main(&args).unwrap();
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(text.starts_with("# Benchmarks"), "{text}");
    assert!(
        text.contains("cores (`nproc`)") && text.contains("binary: "),
        "{text}"
    );
    let rows: Vec<Vec<String>> = text
        .lines()
        .filter(|l| l.starts_with("| hetzner |"))
        .map(cells)
        .collect();
    assert_eq!(rows.len(), 3, "create, destroy and one job:\n{text}");
    let num = |s: &str| {
        s.parse::<f64>()
            .unwrap_or_else(|_| panic!("{s:?} in\n{text}"))
    };
    for r in &rows[..2] {
        // calls, mutating, round trips, wall, critical path, ratio, exit.
        assert!(num(&r[2]) >= 3.0 && num(&r[3]) >= 1.0, "{r:?}");
        assert!(num(&r[4]) >= 1.0, "{r:?}");
        // The 2 s operation is on the critical path, and the wall time is not below it.
        assert!(num(&r[6]) >= 2.0, "{r:?}");
        assert!(num(&r[7]) >= 0.95, "{r:?}");
        assert_eq!(r[8], "0", "{r:?}");
    }
    assert_eq!(
        (rows[0][1].as_str(), rows[1][1].as_str()),
        ("create", "destroy")
    );
    let job = &rows[2];
    assert_eq!(job[1], "10", "{job:?}");
    // At least one snapshot call per server, none throttled or failed, exit 0.
    assert!(num(&job[2]) >= 10.0 && num(&job[3]) >= 1.0, "{job:?}");
    assert_eq!((job[5].as_str(), job[6].as_str()), ("0", "0"), "{job:?}");
    assert!(
        num(&job[7]) > 0.0 && num(&job[8]) > 0.0 && num(&job[10]) >= 0.95,
        "{job:?}"
    );
    assert_eq!(job[11], "0", "{job:?}");
}
