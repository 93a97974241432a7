//! The binary against the stateful Hetzner fake: create -> list -> destroy leaves nothing,
//! re-runs make nothing new, pagination and rate limits are handled, existing keys are reused.

use serde_json::Value;

use crate::support::{self, Bin};
use fakecloud::Pace;
use fakecloud::hetzner::{FakeConfig, FakeHetzner};

fn create_args<'a>(url: &'a str, name: &'a str) -> Vec<&'a str> {
    let mut args = support::hetzner_create(url, name, "203.0.113.7/32");
    args.extend(["--ssh-from", "2001:db8:1::/48", "--output", "json"]);
    args
}

fn posts(fake: &FakeHetzner) -> Vec<String> {
    fake.request_log()
        .into_iter()
        .filter(|(m, _, _)| m == "POST")
        .map(|(_, p, s)| format!("{p} {s}"))
        .collect()
}

#[test]
fn create_list_destroy_leaves_the_fake_empty() {
    let fake = FakeHetzner::start_default();
    // Sixty foreign keys and servers push every list past one page (50).
    for i in 0..60 {
        let kp = ssh_key::PrivateKey::random(&mut rand::rngs::OsRng, ssh_key::Algorithm::Ed25519)
            .unwrap();
        fake.insert_ssh_key(
            &format!("other-{i}"),
            &kp.public_key().to_openssh().unwrap(),
            &[],
        );
    }
    for i in 0..60 {
        fake.insert_server(
            &format!("other-{i}"),
            &[
                ("managed-by", "bootstrap"),
                ("bootstrap-deployment", &format!("other-{i}")),
            ],
        );
    }
    let before = fake.resource_count();
    let b = Bin::new();
    let url = fake.url();

    let r = b.run(&create_args(&url, "web1"));
    r.expect_code(0);
    let out: Value = serde_json::from_str(&r.stdout()).expect("one JSON document");
    assert_eq!(out["server"]["status"], "running");
    assert!(
        out["server"]["ipv4"]
            .as_str()
            .is_some_and(|ip| ip.parse::<std::net::Ipv4Addr>().is_ok()),
        "{out}"
    );
    assert!(
        out["server"]["ipv6"]
            .as_str()
            .is_some_and(|ip| ip.ends_with("::1")),
        "{out}"
    );
    assert_eq!(out["created"].as_array().unwrap().len(), 3);
    let key = b.key_path("hetzner", "web1");
    assert!(out["ssh"].as_str().unwrap().contains(key.to_str().unwrap()));

    // What the fake holds: one of each, labelled, wired together.
    let server = fake.server_by_name("web1").expect("server");
    assert_eq!(server["labels"]["managed-by"], "bootstrap");
    assert_eq!(server["labels"]["bootstrap-deployment"], "web1");
    let fw = fake
        .firewalls()
        .into_iter()
        .find(|f| f["name"] == "bootstrap-web1")
        .expect("firewall");
    assert_eq!(server["public_net"]["firewalls"][0]["id"], fw["id"]);
    let rules = fw["rules"].as_array().unwrap();
    assert_eq!(rules.len(), 1);
    assert_eq!(rules[0]["port"], "22");
    assert_eq!(
        rules[0]["source_ips"],
        serde_json::json!(["203.0.113.7/32", "2001:db8:1::/48"])
    );
    let ud = fake
        .server_user_data(server["id"].as_u64().unwrap())
        .unwrap();
    assert!(ud.starts_with("#cloud-config"));
    assert_eq!(fake.resources_labelled("bootstrap-deployment", "web1"), 3);

    // Private key: 0600 in a 0700 dir.
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(
        std::fs::metadata(key.parent().unwrap())
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o700
    );

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
    let l: Value = serde_json::from_str(&r.stdout()).unwrap();
    let names: Vec<_> = l["deployments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names.len(), 61, "all 61 managed deployments across pages");
    let web1 = l["deployments"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == "web1")
        .unwrap();
    assert_eq!(web1["servers"][0]["status"], "running");
    assert_eq!(web1["servers"][0]["ipv4"], out["server"]["ipv4"]);
    let r = b.run(&["list", "--provider", "hetzner", "--endpoint", &url]);
    r.expect_code(0);
    assert!(
        r.stdout()
            .lines()
            .any(|l| l.starts_with("web1") && l.contains("running")),
        "{}",
        r.stdout()
    );

    let r = b.run(&crate::support::hetzner_destroy(&url, "web1"));
    r.expect_code(0);
    assert!(r.stdout().contains("removed server web1"), "{}", r.stdout());
    assert_eq!(fake.resources_labelled("bootstrap-deployment", "web1"), 0);
    assert_eq!(fake.resource_count(), before, "only the others remain");
    assert!(!key.exists(), "local state removed too");
    // Twice is fine.
    let r = b.run(&crate::support::hetzner_destroy(&url, "web1"));
    r.expect_code(0);
    assert!(r.stdout().contains("nothing of web1"), "{}", r.stdout());
}

#[test]
fn a_second_create_makes_nothing_new() {
    let fake = FakeHetzner::start_default();
    let b = Bin::new();
    let url = fake.url();
    b.run(&create_args(&url, "web1")).expect_code(0);
    let first = posts(&fake);
    assert_eq!(first.len(), 3, "{first:?}");
    let r = b.run(&create_args(&url, "web1"));
    r.expect_code(0);
    let out: Value = serde_json::from_str(&r.stdout()).unwrap();
    assert_eq!(out["created"], serde_json::json!([]));
    assert_eq!(posts(&fake), first, "no POST on the second run");
    assert_eq!(fake.resources_labelled("bootstrap-deployment", "web1"), 3);

    // The server alone was deleted by hand: the re-run recreates only it.
    let id = fake.server_by_name("web1").unwrap()["id"].as_u64().unwrap();
    fakecloud::client::http_request(&url, "DELETE", &format!("/servers/{id}"), Some("t"), None)
        .unwrap();
    fake.finish_all_actions();
    assert!(fake.server_by_name("web1").is_none());
    let r = b.run(&create_args(&url, "web1"));
    r.expect_code(0);
    let out: Value = serde_json::from_str(&r.stdout()).unwrap();
    let made: Vec<_> = out["created"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["kind"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(made, ["server"]);
    assert_eq!(fake.servers().len(), 1);
}

#[test]
fn an_uploaded_key_with_the_same_fingerprint_is_reused() {
    let fake = FakeHetzner::start_default();
    let b = Bin::new();
    let kp =
        ssh_key::PrivateKey::random(&mut rand::rngs::OsRng, ssh_key::Algorithm::Ed25519).unwrap();
    let pubkey = kp.public_key().to_openssh().unwrap();
    let existing = fake.insert_ssh_key("laptop", &pubkey, &[]);
    let path = b.dir.path().join("me.pub");
    std::fs::write(&path, format!("{pubkey}\n")).unwrap();
    let url = fake.url();
    let mut args = create_args(&url, "web1");
    args.extend(["--ssh-key", path.to_str().unwrap()]);
    let r = b.run(&args);
    r.expect_code(0);
    let out: Value = serde_json::from_str(&r.stdout()).unwrap();
    assert_eq!(out["ssh_key"]["id"], existing.to_string());
    assert!(
        !posts(&fake).iter().any(|p| p.starts_with("/ssh_keys")),
        "{:?}",
        posts(&fake)
    );
    assert!(
        out["ssh"].as_str().unwrap().starts_with("ssh admin@"),
        "{out}"
    );
    b.run(&crate::support::hetzner_destroy(&url, "web1"))
        .expect_code(0);
    assert_eq!(
        fake.ssh_keys().len(),
        1,
        "the user's own key is never deleted"
    );
}

#[test]
fn a_rerun_with_a_new_ssh_from_moves_the_firewall_and_keeps_other_rules() {
    let fake = FakeHetzner::start_default();
    let b = Bin::new();
    let url = fake.url();
    b.run(&create_args(&url, "web1")).expect_code(0);
    let fw = fake.firewalls()[0].clone();
    let id = fw["id"].as_u64().unwrap();
    // The owner opened HTTPS on the same firewall in the console, and an outbound rule.
    let mut rules = fw["rules"].as_array().unwrap().clone();
    rules.push(
        serde_json::json!({"direction": "in", "protocol": "tcp", "port": "443",
        "source_ips": ["0.0.0.0/0", "::/0"], "description": "HTTPS"}),
    );
    rules.push(serde_json::json!({"direction": "out", "protocol": "icmp",
        "destination_ips": ["0.0.0.0/0"]}));
    let body = serde_json::json!({ "rules": rules }).to_string();
    let r = support::http(
        &url,
        "POST",
        &format!("/firewalls/{id}/actions/set_rules"),
        &[("Authorization", "Bearer test-token")],
        Some(&body),
    )
    .unwrap();
    assert_eq!(r.status, 201, "{}", r.body);

    // The owner's address changed: the same command with the new --ssh-from.
    let mut args = create_args(&url, "web1");
    let i = args.iter().position(|a| *a == "203.0.113.7/32").unwrap();
    args[i] = "198.51.100.0/24";
    let r = b.run(&args);
    r.expect_code(0);
    assert!(
        r.stderr().contains(
            "now from 198.51.100.0/24, 2001:db8:1::/48 (was 203.0.113.7/32, 2001:db8:1::/48)"
        ),
        "{}",
        r.stderr()
    );
    let fws = fake.firewalls();
    assert_eq!(fws.len(), 1, "no second firewall");
    let rules = fws[0]["rules"].as_array().unwrap();
    let ssh: Vec<_> = rules.iter().filter(|r| r["port"] == "22").collect();
    assert_eq!(ssh.len(), 1, "{rules:?}");
    assert_eq!(
        ssh[0]["source_ips"],
        serde_json::json!(["198.51.100.0/24", "2001:db8:1::/48"]),
        "the old address lost access"
    );
    assert!(rules.iter().any(|r| r["port"] == "443"), "{rules:?}");
    assert!(rules.iter().any(|r| r["direction"] == "out"), "{rules:?}");
    assert_eq!(fake.resources_labelled("bootstrap-deployment", "web1"), 3);

    // The same command once more changes nothing.
    let before = posts(&fake).len();
    b.run(&args).expect_code(0);
    assert_eq!(posts(&fake).len(), before, "{:?}", posts(&fake));
}

#[test]
fn unknown_server_type_image_or_location_is_refused_before_anything_is_made() {
    let fake = FakeHetzner::start_default();
    let b = Bin::new();
    let url = fake.url();
    for (flag, value, says) in [
        ("--server-type", "cx99", "use one of"),
        ("--location", "mars1", "fsn1"),
        ("--image", "ubuntu-99.04", "hcloud image list"),
        ("--image", "987654", "no such image"),
    ] {
        let mut args = create_args(&url, "web1");
        args.extend([flag, value]);
        let r = b.run(&args);
        r.expect_code(2);
        let err = r.stderr();
        assert!(
            err.contains(&format!("{flag} {value}")) && err.contains(says),
            "{flag} {value}: {err}"
        );
        let errors: Vec<_> = err.lines().filter(|l| l.starts_with("error")).collect();
        assert_eq!(errors.len(), 1, "one line: {err}");
    }
    assert!(posts(&fake).is_empty(), "{:?}", posts(&fake));
    assert_eq!(fake.resources_labelled("bootstrap-deployment", "web1"), 0);
    assert!(
        !b.key_path("hetzner", "web1").exists(),
        "no key generated for a refused create"
    );
    // The same checks let a good create through.
    b.run(&create_args(&url, "web1")).expect_code(0);
}

#[test]
fn rate_limits_are_waited_out_using_the_headers() {
    let fake = FakeHetzner::start(FakeConfig {
        pace: Pace::Polls(1),
        ..FakeConfig::default()
    });
    // A nearly empty bucket refilling 5 requests a second: create needs more than that.
    fake.set_rate_limit(3600, 5.0, 3);
    let mut b = Bin::new();
    b.env("BOOTSTRAP_RETRY_MAX", "8");
    let url = fake.url();
    let started = std::time::Instant::now();
    b.run(&create_args(&url, "web1")).expect_code(0);
    let log = fake.request_log();
    let limited = log.iter().filter(|(_, _, s)| *s == 429).count();
    assert!(started.elapsed() < std::time::Duration::from_secs(60));
    assert_eq!(fake.resources_labelled("bootstrap-deployment", "web1"), 3);
    // The gate keeps an estimate of the bucket from RateLimit-* and the requests in flight, and
    // waits before sending. Create's read stage (6 look-ups at once) goes out before any answer
    // told the bucket, so up to 3 of it may draw 429 (6 requests, 3 tokens); once the headers
    // are known nothing more may (one tolerated for a slow machine's timing).
    assert!(
        log.len() >= 10,
        "the bucket (3 + 5/s) was really exercised: {log:?}"
    );
    let first_round = 6;
    let blind = log
        .iter()
        .take(first_round)
        .filter(|(_, _, s)| *s == 429)
        .count();
    assert!(blind <= 3, "{blind} of the read stage drew 429: {log:?}");
    assert!(
        limited - blind <= 1,
        "{} requests drew 429 after the bucket was known: {log:?}",
        limited - blind
    );
}

#[test]
fn user_data_over_the_limit_is_refused_before_any_call() {
    let fake = FakeHetzner::start_default();
    let b = Bin::new();
    let t = b.dir.path().join("big.j2");
    let filler = "#".repeat(33 * 1024);
    std::fs::write(
        &t,
        format!("#cloud-config\n{filler}\nhostname: {{{{ hostname }}}}\n"),
    )
    .unwrap();
    let url = fake.url();
    let mut args = create_args(&url, "web1");
    args.extend(["--template", t.to_str().unwrap()]);
    let r = b.run(&args);
    r.expect_code(2);
    assert!(r.stderr().contains("32768"), "{}", r.stderr());
    assert_eq!(fake.request_count(), 0);
}

#[test]
fn debug_logs_never_show_the_token_or_the_private_key() {
    let fake = FakeHetzner::start_default();
    let mut b = Bin::new();
    b.env("HCLOUD_TOKEN", "s3cr3t-token-value-0123456789abcdef");
    b.env("SECRET_PASSPHRASE", "correct horse battery staple");
    let url = fake.url();
    let mut args = vec!["-vv"];
    args.extend(create_args(&url, "web1"));
    args.extend(["--passphrase-env", "SECRET_PASSPHRASE"]);
    let r = b.run(&args);
    r.expect_code(0);
    let all = format!("{}{}", r.stdout(), r.stderr());
    assert!(all.contains("POST /servers"), "debug logs are on: {all}");
    assert!(!all.contains("s3cr3t-token"), "token leaked");
    assert!(!all.contains("correct horse"), "passphrase leaked");
    let private = std::fs::read_to_string(b.key_path("hetzner", "web1")).unwrap();
    assert!(private.contains("BEGIN OPENSSH PRIVATE KEY"));
    let body: String = private
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    assert!(!all.contains(&body[..40]), "private key leaked");
    // The key on disk is encrypted with the passphrase.
    let out = std::process::Command::new("ssh-keygen")
        .args(["-y", "-P", "", "-f"])
        .arg(b.key_path("hetzner", "web1"))
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "the key must not open without the passphrase"
    );
}
