//! Contract test of the DigitalOcean adapter: Prism in proxy mode in front of the DigitalOcean
//! fake checks every request the flows send, and every answer of the fake, against the official
//! document (`$BOOTSTRAP_SPECS_DIR/digitalocean.yaml`).
//!
//! The one allowed exception is the documented gap of that document (SOURCES.md):
//! `change_backup_policy` is missing from the `droplet_action.type` enum, so the schedule
//! change's `POST /v2/droplets/{id}/actions` breaks it although the live API accepts it.

use fakecloud::digitalocean::FakeDo;

use crate::prism::{Prism, Violation};
use crate::support::Bin;

fn bin() -> Bin {
    let mut b = Bin::new();
    b.unset("HCLOUD_TOKEN");
    b.env("DIGITALOCEAN_TOKEN", "dop_v1_test-token-not-secret");
    b
}

fn run(b: &Bin, url: &str, args: &[&str]) {
    let mut v = args.to_vec();
    v.extend(["--provider", "digitalocean", "--endpoint", url]);
    b.run(&v).expect_code(0);
}

/// Whether a violation is the `change_backup_policy` enum gap: a droplet action whose `type`
/// is not among the document's values (one line per branch of the body's `anyOf`, and the
/// `anyOf` summary).
fn is_change_backup_policy_gap(v: &Violation) -> bool {
    let enum_line = v.message.contains("request.body.type")
        && v.message
            .contains("must be equal to one of the allowed values")
        && !v.message.contains("change_backup_policy");
    // Prism's summary of the same: no branch of the anyOf takes that `type`.
    let summary = v.message == "Violation: request.body Request body must match a schema in anyOf";
    v.request.starts_with("post /v2/droplets/")
        && v.request.ends_with("/actions")
        && (enum_line || summary)
}

#[test]
fn digitalocean_flows_send_only_valid_requests_and_get_valid_answers() {
    let fake = FakeDo::start();
    let prism = Prism::start_proxy("digitalocean.yaml", &fake.url());
    let url = prism.url();
    let b = bin();
    let mark = prism.log_len();
    let create = |from: &[&str], extra: &[&str]| {
        let mut v = vec!["create", "--name", "web1"];
        for f in from {
            v.extend(["--ssh-from", f]);
        }
        v.extend_from_slice(extra);
        run(&b, &url, &v);
    };
    create(
        &["203.0.113.7/32", "2001:db8::/32"],
        &["--provider-backups", "--snapshots", "daily:2"],
    );
    // A re-run, then a new address (rules through POST/DELETE .../rules).
    create(&["203.0.113.7/32", "2001:db8::/32"], &[]);
    create(&["198.51.100.0/24"], &[]);
    run(&b, &url, &["list"]);
    for at in ["2026-11-25T04:00:00Z", "2026-11-26T04:00:00Z"] {
        run(&b, &url, &["snapshot", "run", "--at", at]);
    }
    run(&b, &url, &["snapshot", "list", "web1"]);
    // Let Prism finish logging before the window of the allowed gap opens.
    std::thread::sleep(std::time::Duration::from_millis(500));
    let before_set = prism.log_len();
    run(&b, &url, &["snapshot", "set", "web1", "weekly:2"]);
    std::thread::sleep(std::time::Duration::from_millis(500));
    let after_set = prism.log_len();
    run(
        &b,
        &url,
        &["destroy", "web1", "--yes", "--delete-snapshots"],
    );
    assert!(
        fake.leftovers()
            .iter()
            .all(|l| l.starts_with("tag managed-by")),
        "{:?}",
        fake.leftovers()
    );

    let log = fake.log();
    let sent = |method: &str, pred: &dyn Fn(&fakecloud::digitalocean::Logged) -> bool| {
        log.iter().any(|l| l.method == method && pred(l))
    };
    for (what, ok) in [
        (
            "POST /v2/account/keys",
            sent("POST", &|l| l.path == "/v2/account/keys"),
        ),
        ("POST /v2/tags", sent("POST", &|l| l.path == "/v2/tags")),
        (
            "POST /v2/firewalls",
            sent("POST", &|l| l.path == "/v2/firewalls"),
        ),
        (
            "POST /v2/droplets",
            sent("POST", &|l| l.path == "/v2/droplets"),
        ),
        (
            "POST .../rules",
            sent("POST", &|l| l.path.ends_with("/rules")),
        ),
        (
            "DELETE .../rules",
            sent("DELETE", &|l| l.path.ends_with("/rules")),
        ),
        (
            "enable_backups",
            sent("POST", &|l| {
                l.body
                    .as_ref()
                    .is_some_and(|b| b["type"] == "enable_backups")
            }),
        ),
        (
            "snapshot",
            sent("POST", &|l| {
                l.body.as_ref().is_some_and(|b| b["type"] == "snapshot")
            }),
        ),
        (
            "change_backup_policy",
            sent("POST", &|l| {
                l.body
                    .as_ref()
                    .is_some_and(|b| b["type"] == "change_backup_policy")
            }),
        ),
        (
            "POST /v2/tags/{tag}/resources",
            sent("POST", &|l| l.path.ends_with("/resources")),
        ),
        (
            "DELETE /v2/images",
            sent("DELETE", &|l| l.path.starts_with("/v2/images/")),
        ),
        (
            "DELETE /v2/droplets",
            sent("DELETE", &|l| l.path.starts_with("/v2/droplets/")),
        ),
        (
            "DELETE /v2/firewalls",
            sent("DELETE", &|l| l.path.starts_with("/v2/firewalls/")),
        ),
        (
            "DELETE /v2/account/keys",
            sent("DELETE", &|l| l.path.starts_with("/v2/account/keys/")),
        ),
    ] {
        assert!(ok, "{what} was not exercised");
    }

    std::thread::sleep(std::time::Duration::from_millis(500));
    let all = prism.violation_report(mark);
    let gap = prism.violation_report(before_set);
    let in_set_window = gap.len() - prism.violation_report(after_set).len();
    let gap: Vec<&Violation> = gap.iter().take(in_set_window).collect();
    // The exception is seen (so Prism validates), and it is the only thing in its window.
    assert!(
        !gap.is_empty(),
        "Prism accepted change_backup_policy: the document's gap is closed, drop the exception"
    );
    assert!(
        gap.iter().all(|v| is_change_backup_policy_gap(v)),
        "the schedule change broke the document beyond the change_backup_policy gap:\n{gap:#?}"
    );
    let rest: Vec<&Violation> = all.iter().filter(|v| !gap.contains(v)).collect();
    assert!(
        rest.is_empty(),
        "requests or responses that break the official document:\n{rest:#?}"
    );
}

/// The job over several droplets takes its batched paths: the account's action listing, one
/// droplet listing to find the new images, one tag call for several images, deletes without a
/// read first. Every request and answer of two days of it must fit the document.
#[test]
fn digitalocean_batched_job_sends_only_valid_requests_and_gets_valid_answers() {
    let fake = FakeDo::start();
    for d in ["web1", "web2", "web3"] {
        fake.insert_droplet(
            d,
            &[
                "managed-by:bootstrap",
                &format!("bootstrap-deployment:{d}"),
                "bootstrap-snapshot:daily-0300",
                "bootstrap-keep:1",
                "bootstrap-snapshot-engine:job",
            ],
        );
    }
    let prism = Prism::start_proxy("digitalocean.yaml", &fake.url());
    let url = prism.url();
    let b = bin();
    let mark = prism.log_len();
    for at in ["2026-11-25T04:00:00Z", "2026-11-26T04:00:00Z"] {
        run(&b, &url, &["snapshot", "run", "--at", at]);
    }
    let log = fake.log();
    let sent = |method: &str, pred: &dyn Fn(&fakecloud::digitalocean::Logged) -> bool| {
        log.iter().any(|l| l.method == method && pred(l))
    };
    for (what, ok) in [
        ("GET /v2/actions", sent("GET", &|l| l.path == "/v2/actions")),
        (
            "GET /v2/droplets (finding the new images)",
            log.iter()
                .filter(|l| l.method == "GET" && l.path == "/v2/droplets")
                .count()
                > 2,
        ),
        (
            "POST /v2/tags/{tag}/resources with several images",
            sent("POST", &|l| {
                l.path.ends_with("/resources")
                    && l.body
                        .as_ref()
                        .is_some_and(|b| b["resources"].as_array().is_some_and(|r| r.len() > 1))
            }),
        ),
        (
            "DELETE /v2/images",
            sent("DELETE", &|l| l.path.starts_with("/v2/images/")),
        ),
    ] {
        assert!(ok, "{what} was not exercised: {log:#?}");
    }
    std::thread::sleep(std::time::Duration::from_millis(500));
    let all = prism.violation_report(mark);
    assert!(
        all.is_empty(),
        "requests or responses that break the official document:\n{all:#?}"
    );
}
