//! `--output json` (`-o json`) on every command that prints a result: one JSON document on
//! stdout with a `format_version`, and in JSON mode an error is a JSON document too.

use serde_json::Value;

use crate::scenario::hetzner::Hetzner;
use crate::scenario::{Cloud as _, create};
use crate::support::Bin;

fn doc(stdout: &str) -> Value {
    serde_json::from_str(stdout).unwrap_or_else(|e| panic!("not one JSON document ({e}): {stdout}"))
}

#[test]
fn every_command_prints_one_versioned_document() {
    let cloud = Hetzner::start();
    let b = cloud.bin();
    let url = cloud.0.url();
    let e = [
        "--provider",
        "hetzner",
        "--endpoint",
        url.as_str(),
        "-o",
        "json",
    ];
    let with = |head: &[&str]| -> Vec<String> {
        head.iter()
            .chain(e.iter())
            .map(|s| (*s).to_owned())
            .collect()
    };
    let run = |args: Vec<String>| {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        let r = b.run(&a);
        r.expect_code(0);
        let d = doc(&r.stdout());
        assert_eq!(d["format_version"], 1, "{a:?}: {d}");
        d
    };
    let rendered = run(with(&[
        "render",
        "--name",
        "j1",
        "--ssh-from",
        "203.0.113.7/32",
    ]));
    assert!(
        rendered["user_data"]
            .as_str()
            .unwrap()
            .starts_with("#cloud-config"),
        "{rendered}"
    );
    let plan = run(with(&[
        "create",
        "--name",
        "j1",
        "--ssh-from",
        "203.0.113.7/32",
        "--dry-run",
    ]));
    assert_eq!(plan["deployment"], "j1", "{plan}");
    create(&cloud, &b, "j1", "203.0.113.7/32", &[]).expect_code(0);
    let listed = run(with(&["list"]));
    assert_eq!(listed["deployments"][0]["name"], "j1", "{listed}");
    let set = run(with(&[
        "snapshot",
        "set",
        "j1",
        "weekly:4",
        "--snapshot-day",
        "wed",
    ]));
    assert_eq!(set["deployment"], "j1", "{set}");
    let snaps = run(with(&["snapshot", "list", "j1"]));
    assert!(snaps["snapshots"].is_array(), "{snaps}");
    let job = run(with(&["snapshot", "run", "--at", "2026-12-09T03:30:00Z"]));
    assert!(job["servers"].is_array(), "{job}");
    let gone = run(with(&["destroy", "j1", "--yes"]));
    assert!(!gone["removed"].as_array().unwrap().is_empty(), "{gone}");
}

#[test]
fn in_json_mode_an_error_is_a_document_on_stdout_too() {
    let b = Bin::new();
    // Bad input: exit 2, kind bad_input, the fix as the hint.
    let r = b.run(&[
        "list",
        "--provider",
        "hetzner",
        "--endpoint",
        "http://api.example.com/v1",
        "-o",
        "json",
    ]);
    r.expect_code(2);
    let d = doc(&r.stdout());
    assert_eq!(d["format_version"], 1);
    assert_eq!(d["error"]["kind"], "bad_input", "{d}");
    assert_eq!(d["error"]["exit_code"], 2, "{d}");
    assert!(
        d["error"]["hint"]
            .as_str()
            .unwrap()
            .starts_with("use https://"),
        "{d}"
    );
    assert!(r.stderr().starts_with("error: "), "stderr keeps the line");
    // A failure at the API (nothing listens): exit 1, not bad input.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/v1", l.local_addr().unwrap())
    };
    let r = b.run(&[
        "list",
        "--provider",
        "hetzner",
        "--endpoint",
        &closed,
        "--output",
        "json",
    ]);
    r.expect_code(1);
    let d = doc(&r.stdout());
    assert_eq!(d["error"]["exit_code"], 1, "{d}");
    assert_ne!(d["error"]["kind"], "bad_input", "{d}");
    // Text mode: nothing on stdout.
    let r = b.run(&["list", "--provider", "hetzner", "--endpoint", &closed]);
    r.expect_code(1);
    assert_eq!(r.stdout(), "");
}
