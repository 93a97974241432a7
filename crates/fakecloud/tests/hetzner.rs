//! The Hetzner fake against the API it fakes: behaviour (actions, pagination, label selectors,
//! uniqueness, faults, rate limits) and shape (every kind of answer checked against the official
//! OpenAPI document's response schemas).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read as _, Write as _};
use std::time::{Duration, Instant};

use fakecloud::client::{HttpResponse, http_request};
use fakecloud::hetzner::{
    FakeConfig, FakeHetzner, USER_DATA_LIMIT, md5_fingerprint, rfc3339, validate_label,
};
use fakecloud::openapi::Spec;
use fakecloud::ratelimit::unix_now;
use fakecloud::{Fault, Pace};
use serde_json::{Value, json};

fn enc(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

const TOKEN: Option<&str> = Some("test-token");
// ssh-keygen -t ed25519 (throwaway); `ssh-keygen -l -E md5` gives the fingerprint below.
const KEY_A: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGEZksVoT5fNJmdhBBIauqPRUHr9ncyNgi+AL0ROYE4n a@test";
const KEY_A_MD5: &str = "50:b6:29:99:10:4e:6c:2d:d8:b7:da:08:d6:0e:17:aa";
const KEY_B: &str = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQDYO0MibnQb62t/mt++G3/DzVK5PfFO0dlcl6dsyuiqgZXQcIA6bgRclB6ZmlzXSPyM/n/egLqKgjzBarT165Q50ffQki1e6cLgz+Cr49d+vAPGzpyX62uDXmQptzgk7gaactP/XUEfByD/6mSXFiTlM7AEKEamwKea/nhE8B+0zeIfQawH815aE/xihSusHHFNRlkd1HQlQJhzofUWm6Xh/9e4qMwtVK6EKVIH/gjbQyqBUnVPJ5/GZHIUzRmIN3SfMl6ns4882k2wy/60/d/UNaROTaR6yz7BceuhiMTPFyhLwAJxMqwmyuy8IraUFPVN4P+HvejOaoaICJwwYN7T r@test";
const KEY_B_MD5: &str = "d6:c2:64:95:a4:66:4e:31:1e:de:ac:45:5e:69:e7:dd";

fn call(f: &FakeHetzner, method: &str, path: &str, body: Option<Value>) -> HttpResponse {
    http_request(&f.url(), method, path, TOKEN, body.as_ref()).expect("request")
}

/// A syntactically valid ed25519 public key line whose blob is derived from `seed`.
fn key(seed: u32) -> String {
    let mut blob = vec![0, 0, 0, 11];
    blob.extend_from_slice(b"ssh-ed25519");
    blob.extend_from_slice(&[0, 0, 0, 32]);
    for i in 0..32u32 {
        blob.push((seed.wrapping_mul(2654435761).wrapping_add(i * 97) >> (i % 24)) as u8);
    }
    format!("ssh-ed25519 {} k{seed}@test", base64_encode(&blob))
}

fn base64_encode(b: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in b.chunks(3) {
        let n = (c[0] as u32) << 16
            | (*c.get(1).unwrap_or(&0) as u32) << 8
            | *c.get(2).unwrap_or(&0) as u32;
        for i in 0..4 {
            if i <= c.len() {
                out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn server_body(name: &str) -> Value {
    json!({
        "name": name, "server_type": "cx22", "image": "ubuntu-24.04", "location": "fsn1",
        "user_data": "#cloud-config\n", "labels": {"managed-by": "bootstrap", "bootstrap-deployment": name},
        "start_after_create": true, "public_net": {"enable_ipv4": true, "enable_ipv6": true},
    })
}

fn wait_action(f: &FakeHetzner, id: u64) -> Value {
    for _ in 0..20 {
        let r = call(f, "GET", &format!("/actions/{id}"), None);
        assert_eq!(r.status, 200);
        if r.body["action"]["status"] != "running" {
            return r.body["action"].clone();
        }
    }
    panic!("action {id} never finished");
}

#[test]
fn md5_fingerprints() {
    // fingerprints as printed by `ssh-keygen -l -E md5`
    assert_eq!(md5_fingerprint(KEY_A).unwrap(), KEY_A_MD5);
    assert_eq!(md5_fingerprint(KEY_B).unwrap(), KEY_B_MD5);
    assert!(
        md5_fingerprint(
            "ssh-rsa AAAAC3NzaC1lZDI1NTE5AAAAIGEZksVoT5fNJmdhBBIauqPRUHr9ncyNgi+AL0ROYE4n"
        )
        .is_err()
    );
    assert!(md5_fingerprint("not a key").is_err());
}

#[test]
fn rfc3339_and_labels() {
    assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
    assert_eq!(rfc3339(1_454_198_100), "2016-01-30T23:55:00Z");
    assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    assert!(validate_label("managed-by", "bootstrap").is_ok());
    assert!(validate_label("example.com/my", "label").is_ok());
    assert!(validate_label("just-a-key", "").is_ok());
    assert!(validate_label("hetzner.cloud/x", "y").is_err());
    assert!(validate_label("bad key", "v").is_err());
    assert!(validate_label("k", "has space").is_err());
    assert!(validate_label("k", "-leading").is_err());
}

#[test]
fn auth_is_required() {
    let f = FakeHetzner::start_default();
    let r = http_request(&f.url(), "GET", "/ssh_keys", None, None).unwrap();
    assert_eq!(r.status, 401);
    assert_eq!(r.body["error"]["code"], "unauthorized");
    assert!(r.header("RateLimit-Limit").is_some());
    let r = call(&f, "GET", "/ssh_keys", None);
    assert_eq!(r.status, 200);
    let f2 = FakeHetzner::start(FakeConfig {
        token: Some("right".into()),
        ..Default::default()
    });
    assert_eq!(
        http_request(&f2.url(), "GET", "/servers", Some("wrong"), None)
            .unwrap()
            .status,
        401
    );
    assert_eq!(
        http_request(&f2.url(), "GET", "/servers", Some("right"), None)
            .unwrap()
            .status,
        200
    );
}

#[test]
fn pagination_60_keys_two_pages() {
    let f = FakeHetzner::start_default();
    for i in 0..60 {
        let r = call(
            &f,
            "POST",
            "/ssh_keys",
            Some(
                json!({"name": format!("key-{i:02}"), "public_key": key(i), "labels": {"n": i.to_string()}}),
            ),
        );
        assert_eq!(r.status, 201, "{:?}", r.body);
    }
    let p1 = call(&f, "GET", "/ssh_keys?per_page=50", None);
    assert_eq!(p1.body["ssh_keys"].as_array().unwrap().len(), 50);
    assert_eq!(
        p1.body["meta"]["pagination"],
        json!({"page": 1, "per_page": 50, "previous_page": null, "next_page": 2, "last_page": 2, "total_entries": 60})
    );
    assert!(p1.header("Link").unwrap().contains("rel=\"next\""));
    let p2 = call(&f, "GET", "/ssh_keys?per_page=50&page=2", None);
    assert_eq!(p2.body["ssh_keys"].as_array().unwrap().len(), 10);
    assert_eq!(
        p2.body["meta"]["pagination"],
        json!({"page": 2, "per_page": 50, "previous_page": 1, "next_page": null, "last_page": 2, "total_entries": 60})
    );
    // default per_page 25, max 50
    let d = call(&f, "GET", "/ssh_keys", None);
    assert_eq!(d.body["ssh_keys"].as_array().unwrap().len(), 25);
    assert_eq!(d.body["meta"]["pagination"]["last_page"], 3);
    let big = call(&f, "GET", "/ssh_keys?per_page=500", None);
    assert_eq!(big.body["meta"]["pagination"]["per_page"], 50);
    // no duplicates across pages
    let mut ids: Vec<u64> = p1.body["ssh_keys"]
        .as_array()
        .unwrap()
        .iter()
        .chain(p2.body["ssh_keys"].as_array().unwrap())
        .map(|k| k["id"].as_u64().unwrap())
        .collect();
    ids.dedup();
    assert_eq!(ids.len(), 60);
    // sorting
    let s = call(&f, "GET", "/ssh_keys?sort=name:desc&per_page=1", None);
    assert_eq!(s.body["ssh_keys"][0]["name"], "key-59");
    // filters
    let n = call(&f, "GET", "/ssh_keys?name=key-07", None);
    assert_eq!(n.body["ssh_keys"].as_array().unwrap().len(), 1);
    let fp = n.body["ssh_keys"][0]["fingerprint"]
        .as_str()
        .unwrap()
        .to_string();
    let byfp = call(
        &f,
        "GET",
        &format!("/ssh_keys?fingerprint={}", enc(&fp)),
        None,
    );
    assert_eq!(byfp.body["ssh_keys"][0]["name"], "key-07");
    assert_eq!(call(&f, "GET", "/ssh_keys?page=0", None).status, 422);
}

#[test]
fn label_selectors() {
    let f = FakeHetzner::start_default();
    f.insert_server("a", &[("env", "prod"), ("tier", "web")]);
    f.insert_server("b", &[("env", "staging"), ("tier", "db")]);
    f.insert_server("c", &[("env", "testing")]);
    let names = |sel: &str| -> Vec<String> {
        let r = call(
            &f,
            "GET",
            &format!("/servers?label_selector={}", enc(sel)),
            None,
        );
        assert_eq!(r.status, 200, "{sel}: {:?}", r.body);
        r.body["servers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(names("env=prod"), ["a"]);
    assert_eq!(names("env==prod"), ["a"]);
    assert_eq!(names("env!=prod"), ["b", "c"]);
    assert_eq!(names("tier"), ["a", "b"]);
    assert_eq!(names("!tier"), ["c"]);
    assert_eq!(names("env in (staging,testing)"), ["b", "c"]);
    assert_eq!(names("env notin (staging,testing)"), ["a"]);
    assert_eq!(names("env=prod,tier=web"), ["a"]);
    assert_eq!(names("env=prod,tier=db"), Vec::<String>::new());
    assert_eq!(names("tier,env!=prod"), ["b"]);
    // '+' and %20 both decode to a space
    let r = call(&f, "GET", "/servers?label_selector=env+in+%28prod%29", None);
    assert_eq!(r.body["servers"].as_array().unwrap().len(), 1);
    assert_eq!(
        call(&f, "GET", "/servers?label_selector=env%3Dprod%2C", None).status,
        422
    );
    assert_eq!(f.resources_labelled("env", "prod"), 1);
}

#[test]
fn uniqueness_errors() {
    let f = FakeHetzner::start_default();
    let r = call(
        &f,
        "POST",
        "/ssh_keys",
        Some(json!({"name": "k", "public_key": key(1)})),
    );
    assert_eq!(r.status, 201);
    assert_eq!(
        r.body["ssh_key"]["fingerprint"],
        md5_fingerprint(&key(1)).unwrap()
    );
    let dup_name = call(
        &f,
        "POST",
        "/ssh_keys",
        Some(json!({"name": "k", "public_key": key(2)})),
    );
    assert_eq!(dup_name.status, 409);
    assert_eq!(dup_name.body["error"]["code"], "uniqueness_error");
    let dup_fp = call(
        &f,
        "POST",
        "/ssh_keys",
        Some(json!({"name": "other", "public_key": key(1)})),
    );
    assert_eq!(dup_fp.status, 409);
    assert_eq!(dup_fp.body["error"]["code"], "uniqueness_error");
    assert_eq!(
        dup_fp.body["error"]["details"]["fields"][0]["name"],
        "public_key"
    );
    let bad = call(
        &f,
        "POST",
        "/ssh_keys",
        Some(json!({"name": "x", "public_key": "garbage"})),
    );
    assert_eq!(
        (bad.status, bad.body["error"]["code"].as_str()),
        (422, Some("invalid_input"))
    );
    let missing = call(&f, "POST", "/ssh_keys", Some(json!({"name": "x"})));
    assert_eq!(missing.status, 422);
    let badjson = http_request(&f.url(), "POST", "/ssh_keys", TOKEN, Some(&json!("str"))).unwrap();
    assert_eq!(badjson.body["error"]["code"], "json_error");

    let fw = call(&f, "POST", "/firewalls", Some(json!({"name": "fw"})));
    assert_eq!(fw.status, 201);
    let fw2 = call(&f, "POST", "/firewalls", Some(json!({"name": "fw"})));
    assert_eq!(
        (fw2.status, fw2.body["error"]["code"].as_str()),
        (409, Some("uniqueness_error"))
    );

    assert_eq!(
        call(&f, "POST", "/servers", Some(server_body("web1"))).status,
        201
    );
    let s2 = call(&f, "POST", "/servers", Some(server_body("web1")));
    assert_eq!(
        (s2.status, s2.body["error"]["code"].as_str()),
        (409, Some("uniqueness_error"))
    );
    assert_eq!(f.servers().len(), 1);
}

#[test]
fn user_data_limit_and_input_checks() {
    let f = FakeHetzner::start_default();
    let mut b = server_body("big");
    b["user_data"] = json!("x".repeat(USER_DATA_LIMIT + 1));
    let r = call(&f, "POST", "/servers", Some(b));
    assert_eq!(
        (r.status, r.body["error"]["code"].as_str()),
        (422, Some("invalid_input"))
    );
    assert_eq!(r.body["error"]["details"]["fields"][0]["name"], "user_data");
    let mut ok = server_body("exact");
    ok["user_data"] = json!("x".repeat(USER_DATA_LIMIT));
    assert_eq!(call(&f, "POST", "/servers", Some(ok)).status, 201);
    let mut badlabel = server_body("lbl");
    badlabel["labels"] = json!({"hetzner.cloud/x": "y"});
    assert_eq!(call(&f, "POST", "/servers", Some(badlabel)).status, 422);
    let mut badkey = server_body("k");
    badkey["ssh_keys"] = json!(["nope"]);
    assert_eq!(call(&f, "POST", "/servers", Some(badkey)).status, 422);
    let mut badtype = server_body("t");
    badtype["server_type"] = json!("cx99");
    assert_eq!(call(&f, "POST", "/servers", Some(badtype)).status, 422);
    let badrule = call(
        &f,
        "POST",
        "/firewalls",
        Some(json!({"name": "f", "rules": [{"direction": "in", "protocol": "tcp", "port": "22"}]})),
    );
    assert_eq!(badrule.status, 422, "in-rule without source_ips");
    assert_eq!(f.servers().len(), 1);
}

#[test]
fn action_lifecycle_and_server_status() {
    let f = FakeHetzner::start_default();
    let k = call(
        &f,
        "POST",
        "/ssh_keys",
        Some(json!({"name": "k", "public_key": key(3)})),
    );
    let mut body = server_body("web1");
    body["ssh_keys"] = json!([k.body["ssh_key"]["name"]]);
    let r = call(&f, "POST", "/servers", Some(body));
    assert_eq!(r.status, 201);
    assert_eq!(r.body["server"]["status"], "initializing");
    assert_eq!(r.body["root_password"], Value::Null);
    assert_eq!(r.body["action"]["command"], "create_server");
    assert_eq!(r.body["action"]["status"], "running");
    assert_eq!(r.body["action"]["progress"], 0);
    assert_eq!(r.body["action"]["finished"], Value::Null);
    assert_eq!(r.body["next_actions"][0]["command"], "start_server");
    let ip = r.body["server"]["public_net"]["ipv4"]["ip"]
        .as_str()
        .unwrap();
    assert!(ip.starts_with("203.0.113."), "{ip}");
    assert!(
        r.body["server"]["public_net"]["ipv6"]["ip"]
            .as_str()
            .unwrap()
            .starts_with("2001:db8:")
    );
    let sid = r.body["server"]["id"].as_u64().unwrap();
    let aid = r.body["action"]["id"].as_u64().unwrap();

    let p1 = call(&f, "GET", &format!("/actions/{aid}"), None);
    assert_eq!(p1.body["action"]["status"], "running");
    let prog1 = p1.body["action"]["progress"].as_u64().unwrap();
    let p2 = call(&f, "GET", &format!("/actions?id={aid}"), None);
    assert_eq!(p2.body["actions"][0]["status"], "running");
    assert!(p2.body["actions"][0]["progress"].as_u64().unwrap() > prog1);
    // a GET of the server is an observation of its actions too: the third one finishes it
    assert_eq!(
        call(&f, "GET", &format!("/servers/{sid}"), None).body["server"]["status"],
        "running"
    );
    let p3 = call(&f, "GET", &format!("/actions/{aid}"), None);
    assert_eq!(p3.body["action"]["status"], "success");
    assert_eq!(p3.body["action"]["progress"], 100);
    assert!(p3.body["action"]["finished"].is_string());
    assert_eq!(p3.body["action"]["error"], Value::Null);
    assert_eq!(
        p3.body["action"]["resources"],
        json!([{"id": sid, "type": "server"}])
    );
    assert_eq!(
        call(&f, "GET", &format!("/servers/{sid}"), None).body["server"]["status"],
        "running"
    );

    // a failing action
    f.fail_next_action("create_server", "action_failed", "placement failed");
    let r = call(&f, "POST", "/servers", Some(server_body("web2")));
    let a = wait_action(&f, r.body["action"]["id"].as_u64().unwrap());
    assert_eq!(a["status"], "error");
    assert_eq!(
        a["error"],
        json!({"code": "action_failed", "message": "placement failed"})
    );
    let s2 = f.server_by_name("web2").unwrap();
    assert_eq!(s2["status"], "off");

    // polls = 0: finished at once
    f.set_pace(Pace::Polls(0));
    let r = call(&f, "POST", "/servers", Some(server_body("web3")));
    assert_eq!(r.body["action"]["status"], "success");
    assert_eq!(r.body["server"]["status"], "running");
    assert_eq!(call(&f, "GET", "/actions", None).status, 410);
}

#[test]
fn rate_limit_429_with_headers() {
    let f = FakeHetzner::start(FakeConfig {
        rate_limit: 3,
        rate_refill_per_sec: 0.0,
        ..Default::default()
    });
    let r1 = call(&f, "GET", "/servers", None);
    assert_eq!(r1.status, 200);
    assert_eq!(r1.header("RateLimit-Limit"), Some("3"));
    assert_eq!(r1.header("RateLimit-Remaining"), Some("2"));
    let reset: u64 = r1.header("RateLimit-Reset").unwrap().parse().unwrap();
    assert!(reset >= unix_now());
    call(&f, "GET", "/servers", None);
    let r3 = call(&f, "GET", "/servers", None);
    assert_eq!(r3.header("RateLimit-Remaining"), Some("0"));
    let r4 = call(&f, "GET", "/servers", None);
    assert_eq!(r4.status, 429);
    assert_eq!(r4.body["error"]["code"], "rate_limit_exceeded");
    assert_eq!(r4.header("RateLimit-Remaining"), Some("0"));
    assert!(r4.header("RateLimit-Reset").is_some());
    // refill
    f.set_rate_limit(3600, 1000.0, 0);
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(call(&f, "GET", "/servers", None).status, 200);
}

#[test]
fn fault_status500_does_nothing_and_after_does_the_work() {
    let f = FakeHetzner::start_default();
    f.fail_request(1, Fault::Status(500, "server_error"));
    let r = call(
        &f,
        "POST",
        "/ssh_keys",
        Some(json!({"name": "k", "public_key": key(5)})),
    );
    assert_eq!(r.status, 500);
    assert_eq!(r.body["error"]["code"], "server_error");
    assert!(f.ssh_keys().is_empty());
    f.fail_request(2, Fault::StatusAfter(500, "server_error"));
    let r = call(
        &f,
        "POST",
        "/ssh_keys",
        Some(json!({"name": "k", "public_key": key(5)})),
    );
    assert_eq!(r.status, 500);
    assert_eq!(f.ssh_keys().len(), 1);
    // the retry now sees the key
    let r = call(
        &f,
        "POST",
        "/ssh_keys",
        Some(json!({"name": "k", "public_key": key(5)})),
    );
    assert_eq!(r.status, 409);
    let log = f.request_log();
    assert_eq!(log.iter().map(|l| l.2).collect::<Vec<_>>(), [500, 500, 409]);
    f.fail_matching("GET", "/servers", Fault::Status(503, "unavailable"), 2);
    assert_eq!(call(&f, "GET", "/servers", None).status, 503);
    assert_eq!(call(&f, "GET", "/ssh_keys", None).status, 200);
    assert_eq!(
        call(&f, "GET", "/v1/servers".trim_start_matches("/v1"), None).status,
        503
    );
    assert_eq!(call(&f, "GET", "/servers", None).status, 200);
}

#[test]
fn fault_drop_and_drop_after() {
    let f = FakeHetzner::start_default();
    f.fail_request(1, Fault::Drop);
    let r = http_request(
        &f.url(),
        "POST",
        "/firewalls",
        TOKEN,
        Some(&json!({"name": "fw"})),
    );
    assert!(r.is_err(), "dropped request must fail: {r:?}");
    assert!(f.firewalls().is_empty());
    f.fail_request(2, Fault::DropAfter);
    let r = http_request(
        &f.url(),
        "POST",
        "/firewalls",
        TOKEN,
        Some(&json!({"name": "fw"})),
    );
    assert!(r.is_err());
    assert_eq!(f.firewalls().len(), 1);
    let log = f.requests();
    assert_eq!(log[0].status, 0);
    assert_eq!(log[0].fault, Some(Fault::Drop));
    assert_eq!(log[1].status, 0);
    assert!(log[1].response.as_ref().unwrap()["firewall"]["id"].is_u64());
    // a persistent drop on every server POST
    f.fail_matching("POST", "/servers", Fault::Drop, usize::MAX);
    for _ in 0..3 {
        assert!(
            http_request(&f.url(), "POST", "/servers", TOKEN, Some(&server_body("x"))).is_err()
        );
    }
    assert!(f.servers().is_empty());
    f.clear_faults();
    assert_eq!(
        call(&f, "POST", "/servers", Some(server_body("x"))).status,
        201
    );
}

#[test]
fn drop_on_a_keep_alive_connection() {
    // A client that reuses one connection: the second request is dropped mid-stream.
    let f = FakeHetzner::start_default();
    f.fail_request(2, Fault::Drop);
    let mut s = std::net::TcpStream::connect(f.addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let req = "GET /v1/servers HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer t\r\n\r\n";
    s.write_all(req.as_bytes()).unwrap();
    let mut buf = vec![0u8; 65536];
    let n = s.read(&mut buf).unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    s.write_all(req.as_bytes()).unwrap();
    let n = s.read(&mut buf).unwrap_or(0);
    assert_eq!(n, 0, "expected EOF after the dropped request");
}

#[test]
fn fault_delay() {
    let f = FakeHetzner::start_default();
    f.fail_request(1, Fault::Delay(Duration::from_millis(300)));
    let t = Instant::now();
    assert_eq!(call(&f, "GET", "/servers", None).status, 200);
    assert!(t.elapsed() >= Duration::from_millis(300));
}

#[test]
fn firewall_resource_in_use_and_apply() {
    let f = FakeHetzner::start_default();
    let fw = call(
        &f,
        "POST",
        "/firewalls",
        Some(
            json!({"name": "fw", "labels": {"managed-by": "bootstrap"}, "rules": [
                {"direction": "in", "protocol": "tcp", "port": "22", "source_ips": ["203.0.113.7/32"], "description": "ssh"},
                {"direction": "in", "protocol": "icmp", "source_ips": ["0.0.0.0/0", "::/0"]}
            ]}),
        ),
    );
    assert_eq!(fw.status, 201);
    assert_eq!(fw.body["actions"], json!([]));
    assert_eq!(fw.body["firewall"]["rules"][1]["port"], Value::Null);
    assert_eq!(
        fw.body["firewall"]["rules"][0]["destination_ips"],
        json!([])
    );
    let fid = fw.body["firewall"]["id"].as_u64().unwrap();
    let mut body = server_body("web1");
    body["firewalls"] = json!([{"firewall": fid}]);
    let r = call(&f, "POST", "/servers", Some(body));
    assert_eq!(r.status, 201);
    let sid = r.body["server"]["id"].as_u64().unwrap();
    assert_eq!(
        r.body["server"]["public_net"]["firewalls"],
        json!([{"id": fid, "status": "pending"}])
    );
    let apply = r.body["next_actions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["command"] == "apply_firewall")
        .unwrap()
        .clone();
    assert_eq!(
        apply["resources"],
        json!([{"id": sid, "type": "server"}, {"id": fid, "type": "firewall"}])
    );
    wait_action(&f, apply["id"].as_u64().unwrap());
    let s = call(&f, "GET", &format!("/servers/{sid}"), None);
    assert_eq!(
        s.body["server"]["public_net"]["firewalls"],
        json!([{"id": fid, "status": "applied"}])
    );
    let g = call(&f, "GET", &format!("/firewalls/{fid}"), None);
    assert_eq!(
        g.body["firewall"]["applied_to"],
        json!([{"type": "server", "server": {"id": sid}}])
    );

    let d = call(&f, "DELETE", &format!("/firewalls/{fid}"), None);
    assert_eq!(
        (d.status, d.body["error"]["code"].as_str()),
        (422, Some("resource_in_use"))
    );

    // apply_to_resources on a second firewall, then already applied
    let fw2 = call(
        &f,
        "POST",
        "/firewalls",
        Some(json!({"name": "fw2", "apply_to": [{"type": "server", "server": {"id": sid}}]})),
    );
    assert_eq!(fw2.body["actions"][0]["command"], "apply_firewall");
    let fid2 = fw2.body["firewall"]["id"].as_u64().unwrap();
    let again = call(
        &f,
        "POST",
        &format!("/firewalls/{fid2}/actions/apply_to_resources"),
        Some(json!({"apply_to": [{"type": "server", "server": {"id": sid}}]})),
    );
    assert_eq!(
        (again.status, again.body["error"]["code"].as_str()),
        (422, Some("firewall_already_applied"))
    );
    let fw3 = call(&f, "POST", "/firewalls", Some(json!({"name": "fw3"})));
    let fid3 = fw3.body["firewall"]["id"].as_u64().unwrap();
    let ap = call(
        &f,
        "POST",
        &format!("/firewalls/{fid3}/actions/apply_to_resources"),
        Some(
            json!({"apply_to": [{"type": "label_selector", "label_selector": {"selector": "managed-by=bootstrap"}}]}),
        ),
    );
    assert_eq!(ap.status, 201);
    let g3 = call(&f, "GET", &format!("/firewalls/{fid3}"), None);
    assert_eq!(
        g3.body["firewall"]["applied_to"][0]["applied_to_resources"],
        json!([{"type": "server", "server": {"id": sid}}])
    );
    let missing = call(
        &f,
        "POST",
        &format!("/firewalls/{fid3}/actions/apply_to_resources"),
        Some(json!({"apply_to": [{"type": "server", "server": {"id": 1}}]})),
    );
    assert_eq!(
        (missing.status, missing.body["error"]["code"].as_str()),
        (404, Some("firewall_resource_not_found"))
    );

    // remove_from_resources frees fw2 once its action finished
    let rm = call(
        &f,
        "POST",
        &format!("/firewalls/{fid2}/actions/remove_from_resources"),
        Some(json!({"remove_from": [{"type": "server", "server": {"id": sid}}]})),
    );
    assert_eq!(rm.status, 201);
    assert_eq!(
        call(&f, "DELETE", &format!("/firewalls/{fid2}"), None).status,
        422
    );
    wait_action(&f, rm.body["actions"][0]["id"].as_u64().unwrap());
    assert_eq!(
        call(&f, "DELETE", &format!("/firewalls/{fid2}"), None).status,
        204
    );

    // after the server is gone, the firewall can be deleted
    let del = call(&f, "DELETE", &format!("/servers/{sid}"), None);
    wait_action(&f, del.body["action"]["id"].as_u64().unwrap());
    let g = call(&f, "GET", &format!("/firewalls/{fid}"), None);
    assert_eq!(g.body["firewall"]["applied_to"], json!([]));
    assert_eq!(
        call(&f, "DELETE", &format!("/firewalls/{fid}"), None).status,
        204
    );
    assert_eq!(
        call(&f, "DELETE", &format!("/firewalls/{fid3}"), None).status,
        204
    );
    assert_eq!(
        call(&f, "GET", &format!("/firewalls/{fid}"), None).status,
        404
    );
}

#[test]
fn delete_server_lifecycle() {
    let f = FakeHetzner::start(FakeConfig {
        pace: Pace::Polls(1),
        ..Default::default()
    });
    let r = call(&f, "POST", "/servers", Some(server_body("web1")));
    let sid = r.body["server"]["id"].as_u64().unwrap();
    wait_action(&f, r.body["action"]["id"].as_u64().unwrap());
    let d = call(&f, "DELETE", &format!("/servers/{sid}"), None);
    assert_eq!(d.status, 200);
    assert_eq!(d.body["action"]["command"], "delete_server");
    assert_eq!(d.body["action"]["status"], "running");
    assert_eq!(
        d.body["action"]["resources"],
        json!([{"id": sid, "type": "server"}])
    );
    let again = call(&f, "DELETE", &format!("/servers/{sid}"), None);
    assert_eq!(
        (again.status, again.body["error"]["code"].as_str()),
        (423, Some("locked"))
    );
    let g = call(&f, "GET", &format!("/servers/{sid}"), None);
    assert_eq!(g.status, 200, "still there while delete_server runs");
    assert_eq!(g.body["server"]["status"], "deleting");
    let a = wait_action(&f, d.body["action"]["id"].as_u64().unwrap());
    assert_eq!(a["status"], "success");
    let g = call(&f, "GET", &format!("/servers/{sid}"), None);
    assert_eq!(
        (g.status, g.body["error"]["code"].as_str()),
        (404, Some("not_found"))
    );
    assert!(f.servers().is_empty());
    assert_eq!(
        call(&f, "DELETE", &format!("/servers/{sid}"), None).status,
        404
    );
    // failing delete: the server stays with its old status
    let sid2 = f.insert_server("keep", &[]);
    f.fail_next_action("delete_server", "action_failed", "nope");
    let d = call(&f, "DELETE", &format!("/servers/{sid2}"), None);
    assert_eq!(
        wait_action(&f, d.body["action"]["id"].as_u64().unwrap())["status"],
        "error"
    );
    assert_eq!(f.server_by_name("keep").unwrap()["status"], "running");
}

#[test]
fn snapshots_and_images() {
    let f = FakeHetzner::start(FakeConfig {
        pace: Pace::Polls(1),
        ..Default::default()
    });
    let sid = f.insert_server("web1", &[("bootstrap-deployment", "web1")]);
    let r = call(
        &f,
        "POST",
        &format!("/servers/{sid}/actions/create_image"),
        Some(
            json!({"type": "snapshot", "description": "web1-1", "labels": {"managed-by": "bootstrap", "bootstrap-deployment": "web1"}}),
        ),
    );
    assert_eq!(r.status, 201, "{:?}", r.body);
    assert_eq!(r.body["image"]["status"], "creating");
    let iid = r.body["image"]["id"].as_u64().unwrap();
    wait_action(&f, r.body["action"]["id"].as_u64().unwrap());
    let l = call(
        &f,
        "GET",
        "/images?type=snapshot&label_selector=bootstrap-deployment%3Dweb1",
        None,
    );
    assert_eq!(l.body["images"].as_array().unwrap().len(), 1);
    assert_eq!(l.body["images"][0]["status"], "available");
    assert_eq!(
        l.body["images"][0]["created_from"],
        json!({"id": sid, "name": "web1"})
    );
    let old = f.insert_snapshot("old", &[("bootstrap-deployment", "web1")], 1_600_000_000);
    let sorted = call(&f, "GET", "/images?type=snapshot&sort=created:asc", None);
    assert_eq!(sorted.body["images"][0]["id"], old);
    assert_eq!(f.images_labelled("bootstrap-deployment", "web1"), 2);
    assert_eq!(
        call(&f, "DELETE", &format!("/images/{old}"), None).status,
        204
    );
    assert_eq!(call(&f, "DELETE", "/images/2", None).status, 422);
    let sys = call(&f, "GET", "/images?type=system&name=ubuntu-24.04", None);
    assert_eq!(sys.body["images"].as_array().unwrap().len(), 1);
    let eb = call(
        &f,
        "POST",
        &format!("/servers/{sid}/actions/enable_backup"),
        None,
    );
    assert_eq!(eb.body["action"]["command"], "enable_backup");
    assert_eq!(f.server_by_name("web1").unwrap()["backup_window"], "22-02");
    assert_eq!(f.snapshots().len(), 1);
    let _ = iid;
}

/// Shape fidelity: every kind of body the fake sends is checked against the response schema
/// of its operation in the official document.
#[test]
fn responses_match_the_official_schemas() {
    let spec = Spec::named("hetzner-cloud.json").unwrap();
    let f = FakeHetzner::start_default();
    let mut checked = 0;
    let mut check = |method: &str, op: &str, status: &str, body: &Value| {
        let schema = spec
            .response_schema(method, op, status)
            .unwrap_or_else(|| panic!("no schema for {method} {op} {status}"));
        let errs = spec.errors(schema, body);
        assert!(
            errs.is_empty(),
            "{method} {op} {status}: {errs:#?}\nbody: {body:#}"
        );
        checked += 1;
    };
    let k = call(
        &f,
        "POST",
        "/ssh_keys",
        Some(json!({"name": "k", "public_key": key(9), "labels": {"a": "b"}})),
    );
    check("post", "/ssh_keys", "201", &k.body);
    let kid = k.body["ssh_key"]["id"].as_u64().unwrap();
    check(
        "get",
        "/ssh_keys",
        "200",
        &call(&f, "GET", "/ssh_keys", None).body,
    );
    check(
        "get",
        "/ssh_keys/{id}",
        "200",
        &call(&f, "GET", &format!("/ssh_keys/{kid}"), None).body,
    );
    check(
        "put",
        "/ssh_keys/{id}",
        "200",
        &call(
            &f,
            "PUT",
            &format!("/ssh_keys/{kid}"),
            Some(json!({"labels": {"x": "y"}})),
        )
        .body,
    );
    let fw = call(
        &f,
        "POST",
        "/firewalls",
        Some(
            json!({"name": "fw", "rules": [{"direction": "in", "protocol": "tcp", "port": "22", "source_ips": ["0.0.0.0/0"]}, {"direction": "out", "protocol": "udp", "port": "53", "destination_ips": ["::/0"]}]}),
        ),
    );
    check("post", "/firewalls", "201", &fw.body);
    for (op, query) in [
        ("/server_types", ""),
        ("/server_types", "?name=cpx22"),
        ("/locations", ""),
        ("/locations", "?name=fsn1"),
    ] {
        let r = call(&f, "GET", &format!("{op}{query}"), None);
        check("get", op, "200", &r.body);
    }
    let fid = fw.body["firewall"]["id"].as_u64().unwrap();
    let mut sb = server_body("web1");
    sb["firewalls"] = json!([{"firewall": fid}]);
    sb["ssh_keys"] = json!(["k"]);
    let s = call(&f, "POST", "/servers", Some(sb));
    check("post", "/servers", "201", &s.body);
    let sid = s.body["server"]["id"].as_u64().unwrap();
    let mut v6only = server_body("web2");
    v6only["public_net"] = json!({"enable_ipv4": false, "enable_ipv6": true});
    check(
        "post",
        "/servers",
        "201",
        &call(&f, "POST", "/servers", Some(v6only)).body,
    );
    check(
        "get",
        "/servers/{id}",
        "200",
        &call(&f, "GET", &format!("/servers/{sid}"), None).body,
    );
    check(
        "get",
        "/servers",
        "200",
        &call(
            &f,
            "GET",
            "/servers?label_selector=managed-by%3Dbootstrap",
            None,
        )
        .body,
    );
    check(
        "put",
        "/servers/{id}",
        "200",
        &call(
            &f,
            "PUT",
            &format!("/servers/{sid}"),
            Some(json!({"labels": {"a": "b"}})),
        )
        .body,
    );
    let fw2 = call(
        &f,
        "POST",
        "/firewalls",
        Some(
            json!({"name": "fw2", "apply_to": [{"type": "server", "server": {"id": sid}}, {"type": "label_selector", "label_selector": {"selector": "a=b"}}]}),
        ),
    );
    check("post", "/firewalls", "201", &fw2.body);
    check(
        "get",
        "/firewalls/{id}",
        "200",
        &call(
            &f,
            "GET",
            &format!("/firewalls/{}", fw2.body["firewall"]["id"]),
            None,
        )
        .body,
    );
    check(
        "get",
        "/firewalls",
        "200",
        &call(&f, "GET", "/firewalls", None).body,
    );
    let aid = s.body["action"]["id"].as_u64().unwrap();
    check(
        "get",
        "/actions/{id}",
        "200",
        &call(&f, "GET", &format!("/actions/{aid}"), None).body,
    );
    check(
        "get",
        "/actions",
        "200",
        &call(
            &f,
            "GET",
            &format!("/actions?id={aid}&id={}", aid + 1),
            None,
        )
        .body,
    );
    f.finish_all_actions();
    check(
        "get",
        "/actions/{id}",
        "200",
        &call(&f, "GET", &format!("/actions/{aid}"), None).body,
    );
    check(
        "get",
        "/servers/{id}/actions",
        "200",
        &call(&f, "GET", &format!("/servers/{sid}/actions"), None).body,
    );
    f.fail_next_action("create_server", "action_failed", "x");
    let bad = call(&f, "POST", "/servers", Some(server_body("web3")));
    f.finish_all_actions();
    check(
        "get",
        "/actions/{id}",
        "200",
        &call(
            &f,
            "GET",
            &format!("/actions/{}", bad.body["action"]["id"]),
            None,
        )
        .body,
    );
    let ap = call(
        &f,
        "POST",
        &format!("/firewalls/{fid}/actions/set_rules"),
        Some(json!({"rules": []})),
    );
    check("post", "/firewalls/{id}/actions/set_rules", "201", &ap.body);
    let img = call(
        &f,
        "POST",
        &format!("/servers/{sid}/actions/create_image"),
        Some(json!({"description": "snap", "labels": {"a": "b"}})),
    );
    check(
        "post",
        "/servers/{id}/actions/create_image",
        "201",
        &img.body,
    );
    check(
        "get",
        "/images",
        "200",
        &call(&f, "GET", "/images", None).body,
    );
    check(
        "post",
        "/servers/{id}/actions/enable_backup",
        "201",
        &call(
            &f,
            "POST",
            &format!("/servers/{sid}/actions/enable_backup"),
            None,
        )
        .body,
    );
    check(
        "delete",
        "/servers/{id}",
        "200",
        &call(&f, "DELETE", &format!("/servers/{sid}"), None).body,
    );
    // errors
    for (m, p, b) in [
        ("GET", "/servers/1".to_string(), None),
        (
            "POST",
            "/ssh_keys".to_string(),
            Some(json!({"name": "k", "public_key": key(9)})),
        ),
        ("DELETE", format!("/firewalls/{fid}"), None),
    ] {
        let r = call(&f, m, &p, b);
        assert!(r.status >= 400);
        check("get", "/servers/{id}", "4xx", &r.body);
    }
    let unauth = http_request(&f.url(), "GET", "/servers", None, None).unwrap();
    check("get", "/servers", "4xx", &unauth.body);
    f.fail_request(f.request_count() + 1, Fault::Status(500, "server_error"));
    check(
        "get",
        "/servers",
        "5xx",
        &call(&f, "GET", "/servers", None).body,
    );
    assert!(checked >= 25, "{checked}");
}

#[test]
fn schema_checker_catches_mistakes() {
    let spec = Spec::named("hetzner-cloud.json").unwrap();
    let f = FakeHetzner::start_default();
    f.insert_server("web1", &[]);
    let good = json!({"server": f.servers()[0].clone()});
    let schema = spec.response_schema("get", "/servers/{id}", "200").unwrap();
    assert!(spec.errors(schema, &good).is_empty());
    assert!(
        spec.response_errors("GET", "/servers/{id}", 200, &good)
            .is_empty()
    );
    let mut bad = good.clone();
    bad["server"]
        .as_object_mut()
        .unwrap()
        .remove("primary_disk_size");
    bad["server"]["status"] = json!("booting");
    bad["server"]["public_net"]["ipv4"]["blocked"] = json!("no");
    bad["server"]["created"] = json!("yesterday");
    bad["server"]["image"] = Value::Null; // nullable: fine
    bad["server"]["labels"]["x"] = json!(1);
    bad["server"]["extra"] = json!(true);
    let errs = spec.errors(schema, &bad);
    assert_eq!(errs.len(), 6, "{errs:#?}");
}

#[tokio::test]
async fn works_from_an_async_test() {
    let f = FakeHetzner::start_default();
    let url = f.url();
    let r = tokio::task::spawn_blocking(move || {
        http_request(&url, "GET", "/servers", Some("t"), None).unwrap()
    })
    .await
    .unwrap();
    assert_eq!(r.status, 200);
    drop(f);
}

#[test]
fn drop_stops_the_server() {
    let f = FakeHetzner::start_default();
    let addr = f.addr();
    drop(f);
    assert!(std::net::TcpStream::connect(addr).is_err());
}
