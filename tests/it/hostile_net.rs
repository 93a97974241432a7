//! Issue 13, "network and bounds": URL tricks that would send the token elsewhere, durations
//! that panicked or wrapped, rate-limit waits past `--timeout`, and messages that did not say
//! what happened (a token with a newline, TLS to a plain-http server, an API error reported as a
//! later timeout, a partial destroy). Each test fails without the fix it names.
//!
//! See: issue 13, findings 1, 3, 6 and 11.

use std::time::{Duration, Instant};

use fakecloud::Fault;
use fakecloud::hetzner::{FakeConfig, FakeHetzner};

use crate::support::{Bin, Run};

/// Runs `bootstrap args` and kills it after `limit` (a hang is a failure, not a stuck suite).
fn run_within(b: &Bin, args: &[&str], limit: Duration) -> (Run, Duration) {
    let started = Instant::now();
    let mut child = b.spawn(args);
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if started.elapsed() > limit {
            child.kill().unwrap();
            let out = child.wait_with_output().unwrap();
            panic!(
                "bootstrap {args:?} still ran after {limit:?}; stderr: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    (Run(out), started.elapsed())
}

fn list_args(url: &str) -> Vec<&str> {
    vec!["list", "--provider", "hetzner", "--endpoint", url]
}

#[test]
fn a_backslash_endpoint_is_refused_before_any_request() {
    // The old guard read the host after `\@` (127.0.0.1), the client connected to the one before.
    let fake = FakeHetzner::start_default();
    let port = fake.addr().port();
    let tricky = format!("http://127.0.0.1:{port}\\@localhost/v1");
    let b = Bin::new();
    let r = b.run(&list_args(&tricky));
    r.expect_code(2);
    let err = r.stderr();
    assert!(
        err.contains("invalid --endpoint: it contains a backslash"),
        "{err}"
    );
    assert_eq!(fake.request_count(), 0, "no request, no token sent");
    // --dry-run applies the same rule.
    let r = b.run(&[
        "create",
        "--provider",
        "hetzner",
        "--name",
        "web1",
        "--ssh-from",
        "203.0.113.7/32",
        "--dry-run",
        "--endpoint",
        "http://evil.example\\@127.0.0.1/",
    ]);
    r.expect_code(2);
    // And so does the variable.
    let mut b = Bin::new();
    b.env("BOOTSTRAP_HETZNER_ENDPOINT", "http://user@127.0.0.1:9/v1");
    let r = b.run(&["list", "--provider", "hetzner"]);
    r.expect_code(2);
    assert!(
        r.stderr()
            .contains("invalid BOOTSTRAP_HETZNER_ENDPOINT: it carries user info"),
        "{}",
        r.stderr()
    );
}

#[test]
fn the_hcloud_cli_endpoint_is_checked_too() {
    // `localhost.` is not `localhost`: plain http to it is refused, wherever it is set.
    let fake = FakeHetzner::start_default();
    let url = format!("http://localhost.:{}/v1", fake.addr().port());
    let mut b = Bin::new();
    b.env("HCLOUD_ENDPOINT", &url);
    let r = b.run(&["list", "--provider", "hetzner"]);
    r.expect_code(2);
    assert!(
        r.stderr()
            .contains("invalid HCLOUD_ENDPOINT: plain http would send the API token"),
        "{}",
        r.stderr()
    );
    // The context's endpoint in cli.toml as well.
    let cfg = b.dir.path().join("cli.toml");
    std::fs::write(
        &cfg,
        format!(
            "active_context = \"a\"\n[[contexts]]\nname = \"a\"\ntoken = \"tok\"\n[contexts.preferences]\nendpoint = \"{url}\"\n"
        ),
    )
    .unwrap();
    b.unset("HCLOUD_ENDPOINT");
    b.unset("HCLOUD_TOKEN");
    b.env("HCLOUD_CONFIG", cfg.to_str().unwrap());
    let r = b.run(&["list", "--provider", "hetzner"]);
    r.expect_code(2);
    assert!(
        r.stderr().contains("endpoint of hcloud context \"a\""),
        "{}",
        r.stderr()
    );
    assert_eq!(fake.request_count(), 0);
}

#[test]
fn timeouts_that_overflowed_are_refused_with_the_maximum() {
    let mut b = Bin::new();
    // Without a token --dry-run stays offline (with one it would read the real API).
    b.unset("HCLOUD_TOKEN");
    for t in ["18446744073709551615", "307445734561825861m", "8d"] {
        let r = b.run(&[
            "create",
            "--provider",
            "hetzner",
            "--name",
            "web1",
            "--ssh-from",
            "203.0.113.7/32",
            "--dry-run",
            "--timeout",
            t,
        ]);
        r.expect_code(2);
        assert!(
            r.stderr().contains("maximum of 7 days"),
            "{t}: {}",
            r.stderr()
        );
    }
    let r = b.run(&[
        "create",
        "--provider",
        "hetzner",
        "--name",
        "web1",
        "--ssh-from",
        "203.0.113.7/32",
        "--dry-run",
        "--timeout",
        "1h30m",
    ]);
    r.expect_code(0);
}

#[test]
fn a_far_rate_limit_reset_gives_up_at_once_naming_the_wait() {
    // 3600/h, nothing left, refilled so slowly that the next request is ~3 hours away.
    let fake = FakeHetzner::start_default();
    fake.set_rate_limit(3600, 0.0001, 0);
    let b = Bin::new();
    let (r, took) = run_within(&b, &list_args(&fake.url()), Duration::from_secs(30));
    r.expect_code(1);
    let err = r.stderr();
    assert!(
        err.contains("the API asked to wait") && err.contains("--timeout 10m"),
        "{err}"
    );
    assert!(took < Duration::from_secs(10), "{took:?}");
}

#[test]
fn snapshot_run_with_a_short_timeout_is_not_held_by_retry_after() {
    let fake = FakeHetzner::start_default();
    fake.set_rate_limit(3600, 0.00001, 0);
    fake.fail_matching("GET", "/servers", Fault::RateLimited { headers: true }, 100);
    let b = Bin::new();
    let (r, took) = run_within(
        &b,
        &[
            "snapshot",
            "run",
            "--provider",
            "hetzner",
            "--endpoint",
            &fake.url(),
            "--timeout",
            "5s",
        ],
        Duration::from_secs(30),
    );
    assert_ne!(r.code(), 0);
    let err = r.stderr();
    assert!(
        err.contains("the API asked to wait") && err.contains("--timeout 5s"),
        "{err}"
    );
    assert!(took < Duration::from_secs(5), "{took:?}");
}

#[test]
fn a_retry_after_of_100000_seconds_ends_list_with_the_wait_named() {
    let fake = fakecloud::digitalocean::FakeDo::start();
    // Nothing left, and one request back in 100000 s: DigitalOcean's 429 says `retry-after`.
    fake.kit().set_rate_limit(5000, 0.00001, 0);
    let mut b = Bin::new();
    b.env("DIGITALOCEAN_TOKEN", "dop_v1_test-token-not-secret");
    let (r, took) = run_within(
        &b,
        &[
            "list",
            "--provider",
            "digitalocean",
            "--endpoint",
            &fake.url(),
        ],
        Duration::from_secs(30),
    );
    r.expect_code(1);
    let err = r.stderr();
    assert!(err.contains("1d 3h 46m 40s"), "{err}");
    assert!(took < Duration::from_secs(10), "{took:?}");
}

#[test]
fn a_token_with_a_trailing_newline_works_and_control_characters_are_named() {
    let fake = FakeHetzner::start(FakeConfig {
        token: Some("sekrit-123".into()),
        ..FakeConfig::default()
    });
    let mut b = Bin::new();
    b.env("HCLOUD_TOKEN", "sekrit-123\n");
    b.run(&list_args(&fake.url())).expect_code(0);
    let before = fake.request_count();
    b.env("HCLOUD_TOKEN", "sekrit\u{1b}-123");
    let r = b.run(&list_args(&fake.url()));
    r.expect_code(2);
    let err = r.stderr();
    assert!(
        err.contains("HCLOUD_TOKEN holds a control character"),
        "{err}"
    );
    assert!(!err.contains("sekrit"), "never the token: {err}");
    assert_eq!(fake.request_count(), before);
}

#[test]
fn https_to_a_plain_http_server_says_so() {
    let fake = FakeHetzner::start_default();
    let url = fake.url().replacen("http://", "https://", 1);
    let b = Bin::new();
    let (r, _) = run_within(&b, &list_args(&url), Duration::from_secs(30));
    r.expect_code(1);
    let err = r.stderr();
    assert!(
        err.contains("the endpoint speaks plain http, not TLS"),
        "{err}"
    );
}

#[test]
fn a_partial_destroy_names_what_went_what_is_left_and_the_command() {
    let fake = FakeHetzner::start_default();
    let b = Bin::new();
    b.run(&crate::support::hetzner_create(
        &fake.url(),
        "web1",
        "203.0.113.7/32",
    ))
    .expect_code(0);
    fake.fail_matching(
        "DELETE",
        "/firewalls",
        Fault::Status(500, "server_error"),
        usize::MAX,
    );
    let (r, took) = run_within(
        &b,
        &crate::support::hetzner_destroy(&fake.url(), "web1"),
        Duration::from_secs(60),
    );
    r.expect_code(1);
    let err = r.stderr();
    assert!(err.contains("HTTP 500"), "the API's own error: {err}");
    assert!(!err.contains("timed out"), "{err}");
    assert!(err.contains("removed: server web1"), "{err}");
    assert!(
        err.contains("still there: firewall bootstrap-web1"),
        "{err}"
    );
    assert!(err.contains("ssh key"), "the key is left too: {err}");
    assert!(took < Duration::from_secs(20), "{took:?}");
    let cmd = crate::support::printed_destroy(&err).expect("a destroy command");
    fake.clear_faults();
    let args: Vec<&str> = cmd.iter().map(String::as_str).collect();
    b.run(&args).expect_code(0);
    assert_eq!(fake.resources_labelled("bootstrap-deployment", "web1"), 0);
}

#[cfg(feature = "aws")]
mod aws {
    use super::*;
    use crate::aws_proxy::Ec2Proxy;
    use crate::moto::{Ec2View, Moto, NOBLE_NEWEST, aws_env};

    fn create_args(name: &str) -> Vec<&str> {
        vec![
            "create",
            "--provider",
            "aws",
            "--name",
            name,
            "--ssh-from",
            "203.0.113.7/32",
            "--image",
            NOBLE_NEWEST,
            "--snapshot-engine",
            "job",
        ]
    }

    #[test]
    fn aws_endpoint_url_variables_are_checked() {
        // Nothing listens there: a request would fail differently, and none is made.
        let fake = FakeHetzner::start_default();
        let url = format!("http://localhost.:{}", fake.addr().port());
        for var in ["AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_EC2"] {
            let mut b = Bin::new();
            aws_env(&mut b, "unused");
            b.unset("BOOTSTRAP_AWS_ENDPOINT");
            b.env(var, &url);
            let r = b.run(&["list", "--provider", "aws"]);
            r.expect_code(2);
            assert!(
                r.stderr().contains(&format!("invalid {var}")),
                "{var}: {}",
                r.stderr()
            );
        }
        assert_eq!(fake.request_count(), 0);
    }

    #[test]
    fn aws_sdk_makes_one_attempt_per_call_under_the_core_retry() {
        let moto = Moto::start();
        let proxy = Ec2Proxy::start(&moto.url());
        let mut b = Bin::new();
        aws_env(&mut b, &proxy.url());
        // The SDK would retry three times if its own retries were on.
        b.env("AWS_MAX_ATTEMPTS", "3");
        b.env("AWS_RETRY_MODE", "standard");
        b.env("BOOTSTRAP_RETRY_MAX", "2");
        proxy.fail(
            "DescribeInstances",
            Fault::Status(503, "RequestLimitExceeded"),
            None,
        );
        b.run(&["list", "--provider", "aws"]).expect_code(1);
        assert_eq!(
            proxy.calls_of("DescribeInstances").len(),
            3,
            "1 attempt + 2 core retries, each one request"
        );
    }

    #[test]
    fn aws_delete_security_group_500_is_reported_as_itself_with_what_is_left() {
        let moto = Moto::start();
        let proxy = Ec2Proxy::start(&moto.url());
        let view = Ec2View::new(&moto.url());
        let mut b = Bin::new();
        aws_env(&mut b, &proxy.url());
        b.run(&create_args("sg500")).expect_code(0);
        proxy.fail(
            "DeleteSecurityGroup",
            Fault::Status(500, "InternalError"),
            None,
        );
        let (r, took) = run_within(
            &b,
            &["destroy", "sg500", "--provider", "aws", "--yes"],
            Duration::from_secs(60),
        );
        r.expect_code(1);
        let err = r.stderr();
        assert!(
            err.contains("DeleteSecurityGroup") && err.contains("InternalError"),
            "{err}"
        );
        assert!(!err.contains("to be released"), "{err}");
        assert!(err.contains("removed: server sg500"), "{err}");
        assert!(
            err.contains("still there: firewall bootstrap-sg500"),
            "{err}"
        );
        assert!(took < Duration::from_secs(20), "{took:?}");
        proxy.clear_faults();
        let cmd = crate::support::printed_destroy(&err).expect("a destroy command");
        let args: Vec<&str> = cmd.iter().map(String::as_str).collect();
        b.run(&args).expect_code(0);
        assert!(view.leftovers("sg500").is_empty());
    }

    #[test]
    fn aws_a_duplicate_ingress_after_a_lost_answer_counts_as_done() {
        let moto = Moto::start();
        let proxy = Ec2Proxy::start(&moto.url());
        let view = Ec2View::new(&moto.url());
        let mut b = Bin::new();
        aws_env(&mut b, &proxy.url());
        // moto adds the rule; the client hears what EC2 says to the resend of a lost answer.
        proxy.fail(
            "AuthorizeSecurityGroupIngress",
            Fault::StatusAfter(400, "InvalidPermission.Duplicate"),
            Some(1),
        );
        b.run(&create_args("dup")).expect_code(0);
        assert_eq!(view.security_groups("dup").len(), 1);
        assert_eq!(proxy.calls_of("CreateSecurityGroup").len(), 1);
    }

    #[test]
    fn aws_failed_rules_name_the_security_group_made_and_deleted() {
        let moto = Moto::start();
        let proxy = Ec2Proxy::start(&moto.url());
        let view = Ec2View::new(&moto.url());
        let mut b = Bin::new();
        aws_env(&mut b, &proxy.url());
        proxy.fail(
            "AuthorizeSecurityGroupIngress",
            Fault::Status(400, "InvalidParameterValue"),
            None,
        );
        let r = b.run(&create_args("norules"));
        r.expect_code(1);
        let err = r.stderr();
        // The rules go beside the launch (issue 12), so the instance exists when they fail
        // for good: the rollback removes it and the group, and says so.
        assert!(
            err.contains("adding the rules of security group bootstrap-norules (sg-")
                && err.contains("rolled back")
                && err.contains("firewall bootstrap-norules (sg-"),
            "{err}"
        );
        assert!(view.leftovers("norules").is_empty());
    }
}
