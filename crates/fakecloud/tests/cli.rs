//! The `fakecloud` binary as people use it: the first line is the endpoint, it keeps state until
//! SIGTERM and then exits 0, `--action-ms` paces actions in wall time, and it refuses to listen
//! anywhere but loopback.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fakecloud::client::http_request;
use serde_json::json;

/// A running `fakecloud`; killed if the test ends before it stopped it.
struct Running {
    child: Child,
    url: String,
}

impl Running {
    fn start(args: &[&str]) -> Running {
        let mut child = Command::new(env!("CARGO_BIN_EXE_fakecloud"))
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        Running {
            child,
            url: line.trim_end().to_owned(),
        }
    }

    /// SIGTERM, then the exit status.
    fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        assert!(
            Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success()
        );
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "no exit after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

#[test]
fn prints_the_endpoint_keeps_state_and_stops_on_sigterm() {
    let fake = Running::start(&["hetzner", "--listen", "127.0.0.1:0"]);
    let url = fake.url.clone();
    assert!(
        url.starts_with("http://127.0.0.1:") && url.ends_with("/v1"),
        "{url}"
    );
    let key =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGEZksVoT5fNJmdhBBIauqPRUHr9ncyNgi+AL0ROYE4n a@test";
    let body = json!({"name": "k", "public_key": key});
    let r = http_request(&url, "POST", "/ssh_keys", Some("anything"), Some(&body)).unwrap();
    assert_eq!(r.status, 201, "{:?}", r.body);
    let r = http_request(&url, "GET", "/ssh_keys", Some("x"), None).unwrap();
    assert_eq!(
        r.body["ssh_keys"][0]["name"], "k",
        "state kept across requests"
    );
    assert_eq!(
        http_request(&url, "GET", "/ssh_keys", None, None)
            .unwrap()
            .status,
        401
    );
    let status = fake.terminate();
    assert_eq!(status.code(), Some(0), "{status:?}");
    assert!(http_request(&url, "GET", "/ssh_keys", Some("x"), None).is_err());
}

#[test]
fn digitalocean_prints_the_endpoint_keeps_state_and_stops_on_sigterm() {
    let fake = Running::start(&["digitalocean", "--listen", "127.0.0.1:0"]);
    let url = fake.url.clone();
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    let key =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGEZksVoT5fNJmdhBBIauqPRUHr9ncyNgi+AL0ROYE4n a@test";
    let body = json!({"name": "k", "public_key": key});
    let r = http_request(
        &url,
        "POST",
        "/v2/account/keys",
        Some("anything"),
        Some(&body),
    )
    .unwrap();
    assert_eq!(r.status, 201, "{:?}", r.body);
    let id = r.body["ssh_key"]["id"].as_i64().unwrap();
    let r = http_request(
        &url,
        "GET",
        &format!("/v2/account/keys/{id}"),
        Some("x"),
        None,
    )
    .unwrap();
    assert_eq!(r.body["ssh_key"]["name"], "k", "state kept across requests");
    assert_eq!(
        http_request(&url, "GET", "/v2/regions", None, None)
            .unwrap()
            .status,
        401
    );
    let status = fake.terminate();
    assert_eq!(status.code(), Some(0), "{status:?}");
    assert!(http_request(&url, "GET", "/v2/regions", Some("x"), None).is_err());
}

#[test]
fn action_ms_paces_actions_in_wall_time() {
    let fake = Running::start(&["hetzner", "--listen", "127.0.0.1:0", "--action-ms", "400"]);
    let body = json!({"name": "web1", "server_type": "cx22", "image": "ubuntu-24.04"});
    let r = http_request(&fake.url, "POST", "/servers", Some("t"), Some(&body)).unwrap();
    let started = Instant::now();
    let action = format!("/actions/{}", r.body["action"]["id"]);
    let mut polls = 0;
    loop {
        let a = http_request(&fake.url, "GET", &action, Some("t"), None).unwrap();
        if a.body["action"]["status"] == "success" {
            break;
        }
        polls += 1;
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        started.elapsed() >= Duration::from_millis(350),
        "{:?}",
        started.elapsed()
    );
    assert!(polls >= 3, "still running after {polls} polls");
    let s = http_request(&fake.url, "GET", "/servers?name=web1", Some("t"), None).unwrap();
    assert_eq!(s.body["servers"][0]["status"], "running");
    assert_eq!(fake.terminate().code(), Some(0));
}

#[test]
fn refuses_to_listen_beyond_loopback() {
    let out = Command::new(env!("CARGO_BIN_EXE_fakecloud"))
        .args(["hetzner", "--listen", "0.0.0.0:0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not a loopback address"), "{err}");
}

/// One request to the Scaleway fake (`X-Auth-Token`, which `http_request` does not send):
/// the status and the JSON answer.
fn scw(
    base: &str,
    method: &str,
    path: &str,
    body: Option<&serde_json::Value>,
) -> (u16, serde_json::Value) {
    use std::io::{Read as _, Write as _};
    let rest = base.strip_prefix("http://").unwrap();
    let (host, prefix) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let body = body.map(ToString::to_string).unwrap_or_default();
    let mut conn = std::net::TcpStream::connect(host).unwrap();
    write!(
        conn,
        "{method} {prefix}{path} HTTP/1.1\r\nHost: {host}\r\nX-Auth-Token: t\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut text = String::new();
    conn.read_to_string(&mut text).unwrap();
    let status = text[9..12].parse().unwrap();
    let json = text
        .split_once("\r\n\r\n")
        .and_then(|(_, b)| serde_json::from_str(b).ok())
        .unwrap_or_default();
    (status, json)
}

#[test]
fn scaleway_action_ms_and_latency_ms_take_wall_time() {
    let fake = Running::start(&[
        "scaleway",
        "--listen",
        "127.0.0.1:0",
        "--action-ms",
        "400",
        "--latency-ms",
        "100",
    ]);
    let zone = format!("{}/instance/v1/zones/fr-par-1", fake.url);
    let body = json!({"name": "web1", "commercial_type": "DEV1-S", "image": "debian_bookworm",
        "project": fakecloud::scaleway::PROJECT,
        "volumes": {"0": {"volume_type": "sbs_volume", "size": 10_000_000_000u64}}});
    let t = Instant::now();
    let (status, r) = scw(&zone, "POST", "/servers", Some(&body));
    assert_eq!(status, 201, "{r:?}");
    assert!(
        t.elapsed() >= Duration::from_millis(100),
        "{:?}",
        t.elapsed()
    );
    let id = r["server"]["id"].as_str().unwrap().to_owned();
    let on = json!({"action": "poweron"});
    let (status, _) = scw(&zone, "POST", &format!("/servers/{id}/action"), Some(&on));
    assert_eq!(status, 202);
    let started = Instant::now();
    let mut polls = 0;
    loop {
        let (_, s) = scw(&zone, "GET", &format!("/servers/{id}"), None);
        if s["server"]["state"] == "running" {
            break;
        }
        polls += 1;
        assert!(started.elapsed() < Duration::from_secs(10), "never running");
    }
    assert!(
        started.elapsed() >= Duration::from_millis(350),
        "{:?}",
        started.elapsed()
    );
    assert!(polls >= 2, "running after {polls} polls");
    assert_eq!(fake.terminate().code(), Some(0));
}
