//! Contract tests: every request the Hetzner adapter sends is validated by Prism against Hetzner's
//! official OpenAPI document (`$BOOTSTRAP_SPECS_DIR/hetzner-cloud.json`).
//!
//! In proxy mode Prism sits in front of the stateful fake, so the whole create -> list -> destroy
//! flow runs and Prism checks each request and each of the fake's answers. In mock mode Prism
//! answers from the document's examples, which proves the adapter reads the official shapes.

use crate::prism::Prism;
use crate::support::{Bin, hetzner_create};
use fakecloud::hetzner::FakeHetzner;

#[test]
fn create_list_destroy_send_only_valid_requests() {
    let fake = FakeHetzner::start_default();
    let prism = Prism::start_proxy("hetzner-cloud.json", &fake.url());
    let url = prism.url();
    let b = Bin::new();
    let mark = prism.log_len();
    let mut args = hetzner_create(&url, "web1", "203.0.113.7/32");
    args.extend(["--ssh-from", "2001:db8::/32", "--provider-backups"]);
    b.run(&args).expect_code(0);
    let backups = fake.servers()[0]["backup_window"].clone();
    assert!(backups.is_string(), "enable_backup took effect: {backups}");
    // A re-run with a new address updates the firewall's rules in place (set_rules).
    b.run(&hetzner_create(&url, "web1", "198.51.100.0/24"))
        .expect_code(0);
    b.run(&["list", "--provider", "hetzner", "--endpoint", &url])
        .expect_code(0);
    // The snapshot job, its schedule change and listing, then a destroy that deletes them.
    for at in ["2026-11-25T04:00:00Z", "2026-11-26T04:00:00Z"] {
        b.run(&[
            "snapshot",
            "run",
            "--provider",
            "hetzner",
            "--endpoint",
            &url,
            "--at",
            at,
        ])
        .expect_code(0);
    }
    b.run(&[
        "snapshot",
        "set",
        "web1",
        "daily:1",
        "--provider",
        "hetzner",
        "--endpoint",
        &url,
    ])
    .expect_code(0);
    b.run(&[
        "snapshot",
        "run",
        "--provider",
        "hetzner",
        "--endpoint",
        &url,
        "--at",
        "2026-11-26T05:00:00Z",
    ])
    .expect_code(0);
    b.run(&[
        "snapshot",
        "list",
        "web1",
        "--provider",
        "hetzner",
        "--endpoint",
        &url,
    ])
    .expect_code(0);
    b.run(&[
        "destroy",
        "web1",
        "--provider",
        "hetzner",
        "--endpoint",
        &url,
        "--yes",
        "--delete-snapshots",
    ])
    .expect_code(0);
    assert_eq!(fake.resources_labelled("bootstrap-deployment", "web1"), 0);
    assert_eq!(fake.images_labelled("bootstrap-deployment", "web1"), 0);

    let methods: std::collections::BTreeSet<String> = fake
        .request_log()
        .into_iter()
        .map(|(m, p, _)| {
            format!(
                "{m} {}",
                p.split('?')
                    .next()
                    .unwrap_or_default()
                    .trim_start_matches("/v1")
            )
        })
        .map(|s| s.split('/').take(2).collect::<Vec<_>>().join("/"))
        .collect();
    assert!(
        fake.request_log()
            .iter()
            .any(|(m, p, s)| m == "POST" && p.ends_with("/actions/set_rules") && *s == 201),
        "set_rules was not exercised"
    );
    assert!(
        fake.request_log()
            .iter()
            .any(|(m, p, s)| m == "POST" && p.ends_with("/actions/enable_backup") && *s == 201),
        "enable_backup was not exercised"
    );
    assert!(
        fake.request_log()
            .iter()
            .any(|(m, p, s)| m == "POST" && p.ends_with("/actions/create_image") && *s == 201),
        "create_image was not exercised"
    );
    for needed in [
        "POST /ssh_keys",
        "POST /firewalls",
        "POST /servers",
        "GET /actions",
        "DELETE /servers",
        "DELETE /firewalls",
        "DELETE /ssh_keys",
        "POST /servers",
        "PUT /servers",
        "GET /images",
        "DELETE /images",
    ] {
        assert!(
            methods.contains(needed),
            "{needed} was not exercised: {methods:?}"
        );
    }
    // Prism logs asynchronously: give it a moment after the last answer.
    std::thread::sleep(std::time::Duration::from_millis(500));
    let v = prism.violation_report(mark);
    assert!(
        v.is_empty(),
        "requests or responses that break the official document:\n{v:#?}"
    );
}

#[test]
fn the_adapter_reads_the_official_examples() {
    let prism = Prism::start("hetzner-cloud.json");
    let url = prism.url();
    let mut b = Bin::new();
    b.env("BOOTSTRAP_RETRY_MAX", "0");
    let mark = prism.log_len();
    let r = b.run(&[
        "list",
        "--provider",
        "hetzner",
        "--endpoint",
        &url,
        "--output",
        "json",
    ]);
    r.expect_code(0);
    let v: serde_json::Value = serde_json::from_str(&r.stdout()).unwrap();
    // The document's example server carries no bootstrap labels, so it belongs to no
    // deployment; the point is that every list answer decoded.
    assert!(v["deployments"].is_array(), "{v}");
    // destroy: the mock ignores `label_selector` and lists its example server (labels
    // `environment=prod`, ...). The flows re-check labels themselves, so nothing is deleted.
    let r = b.run(&crate::support::hetzner_destroy(&url, "web1"));
    r.expect_code(0);
    assert!(r.stdout().contains("nothing of web1"), "{}", r.stdout());
    std::thread::sleep(std::time::Duration::from_millis(500));
    let log = prism.log_lines().join("\n");
    assert!(log.contains("get /servers"), "{log}");
    assert!(
        !log.contains("delete /"),
        "deleted something that is not ours:\n{log}"
    );
    assert!(
        prism.violation_report(mark).is_empty(),
        "{:#?}",
        prism.violation_report(mark)
    );
}
