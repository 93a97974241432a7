//! Create on its critical path, measured (issue 12, item 1): the real binary's `create` against
//! each provider's fake (and moto behind the EC2 proxy), with latency added to every call, and
//! the request log read back.
//!
//! - A **round** is a maximal set of requests whose `[arrived, answered]` intervals overlap; the
//!   **chain** is the longest run of requests each sent after the previous one was answered
//!   (never fewer than the rounds). Both count what comes before the first status poll's own
//!   round (a call sent beside the poll is in the poll's round, not one before it): the
//!   first read of a server's or an action's state once the server's create and every change
//!   after it (Scaleway's user-data and `poweron`) were answered, which is where the wait starts.
//! - Before that poll no request is sent twice (method, path with query, and body: EC2's action
//!   and parameters are in its form body). The one sanctioned second read is the lost-race
//!   check, a listing of the deployment's servers after the server's create: its point is to
//!   see what other runs made since the first listing.
//! - The mutating calls of the whole `create` are counted: they must not grow.
//!
//! The numbers are printed per provider (`cargo test --test it rounds -- --nocapture`).

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use fakecloud::LoggedRequest;

use crate::scenario::Cloud;
use crate::scenario::digitalocean::DigitalOcean;
use crate::scenario::hetzner::Hetzner;
use crate::scenario::scaleway::Scaleway;

/// Added to every call, so that sequential and concurrent calls are told apart for sure.
const LATENCY: Duration = Duration::from_millis(100);

/// The goal of issue 12: at most this many sequential round trips before the first poll.
const MAX_ROUNDS: usize = 5;

/// What a request of `create` is, for the count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// The call that creates the server (POST /servers, POST /droplets, RunInstances).
    CreateServer,
    /// A read of one server's or one action's state.
    Status,
    /// A listing of the deployment's servers (the read stage's, or the lost-race check).
    ListServers,
    /// Any other read.
    Read,
    /// Any other call that changes something.
    Mutate,
}

/// How one cloud's requests read.
struct Api {
    name: &'static str,
    role: fn(&LoggedRequest) -> Role,
}

fn path_only(r: &LoggedRequest) -> &str {
    r.path.split('?').next().unwrap_or_default()
}

fn segments(r: &LoggedRequest) -> Vec<&str> {
    path_only(r).trim_matches('/').split('/').collect()
}

fn rest_role(r: &LoggedRequest, servers: &str, actions: bool) -> Role {
    let s = segments(r);
    let last = s.last().copied().unwrap_or_default();
    match r.method.as_str() {
        "POST" if last == servers => Role::CreateServer,
        "GET" if last == servers => Role::ListServers,
        "GET" if s.len() >= 2 && s[s.len() - 2] == servers => Role::Status,
        "GET" if actions && s.contains(&"actions") => Role::Status,
        "GET" => Role::Read,
        _ => Role::Mutate,
    }
}

const HETZNER: Api = Api {
    name: "hetzner",
    role: |r| rest_role(r, "servers", true),
};

const DIGITALOCEAN: Api = Api {
    name: "digitalocean",
    role: |r| rest_role(r, "droplets", true),
};

const SCALEWAY: Api = Api {
    name: "scaleway",
    role: |r| rest_role(r, "servers", false),
};

#[cfg(feature = "aws")]
const AWS: Api = Api {
    name: "aws",
    role: |r| {
        let form = r.body.as_ref();
        let field = |k: &str| form.and_then(|b| b[k].as_str()).unwrap_or_default();
        let action = field("Action");
        match action {
            "RunInstances" => Role::CreateServer,
            // get_server asks for one instance by id; the listings filter by tag.
            "DescribeInstances" if !field("InstanceId.1").is_empty() => Role::Status,
            "DescribeInstances" => Role::ListServers,
            a if a.starts_with("Describe") || a.starts_with("Get") || a.starts_with("List") => {
                Role::Read
            }
            _ => Role::Mutate,
        }
    },
};

/// One request, as the count sees it.
struct Call {
    /// Method, path with query, and body: what "sent twice" compares.
    what: String,
    /// The same, cut short for a report.
    short: String,
    role: Role,
    arrived: Instant,
    answered: Instant,
}

/// What one `create` came to.
#[derive(Debug)]
struct Measured {
    rounds: usize,
    chain: usize,
    before_poll: Vec<String>,
    repeated: Vec<String>,
    calls: usize,
    mutating: usize,
    to_poll: Duration,
    wall: Duration,
}

/// Method and path, and EC2's action (its path is always `/`).
fn short(r: &LoggedRequest) -> String {
    let action = r
        .body
        .as_ref()
        .and_then(|b| b["Action"].as_str())
        .map(|a| format!(" {a}"))
        .unwrap_or_default();
    let path: String = r.path.chars().take(120).collect();
    format!("{} {path}{action}", r.method)
}

fn describe(r: &LoggedRequest) -> String {
    let body = match &r.body {
        Some(b) => format!(" {b}"),
        None => String::new(),
    };
    format!("{} {}{body}", r.method, r.path)
}

/// Rounds: overlapping intervals merged, counted in arrival order.
fn rounds(calls: &[&Call]) -> usize {
    let mut sorted: Vec<&&Call> = calls.iter().collect();
    sorted.sort_by_key(|c| c.arrived);
    let mut n = 0;
    let mut end: Option<Instant> = None;
    for c in sorted {
        match end {
            Some(e) if c.arrived <= e => end = Some(e.max(c.answered)),
            _ => {
                n += 1;
                end = Some(c.answered);
            }
        }
    }
    n
}

/// The longest run of calls each sent after the one before was answered.
fn chain(calls: &[&Call]) -> usize {
    let mut sorted: Vec<&&Call> = calls.iter().collect();
    sorted.sort_by_key(|c| c.arrived);
    let mut depth: Vec<usize> = Vec::with_capacity(sorted.len());
    for (i, c) in sorted.iter().enumerate() {
        let d = (0..i)
            .filter(|&j| sorted[j].answered <= c.arrived)
            .map(|j| depth[j])
            .max()
            .unwrap_or(0);
        depth.push(d + 1);
    }
    depth.into_iter().max().unwrap_or(0)
}

fn measure(api: &Api, log: &[LoggedRequest], wall: Duration) -> Measured {
    let calls: Vec<Call> = log
        .iter()
        .map(|r| Call {
            what: describe(r),
            short: short(r),
            role: (api.role)(r),
            arrived: r.arrived,
            answered: r.answered,
        })
        .collect();
    let start = calls
        .iter()
        .map(|c| c.arrived)
        .min()
        .expect("create called");
    let created = calls
        .iter()
        .filter(|c| c.role == Role::CreateServer)
        .map(|c| c.answered)
        .min()
        .unwrap_or_else(|| panic!("{}: no server create in {:#?}", api.name, names(&calls)));
    // The wait starts once nothing is left to change: a read of the new server's state that
    // comes before its last change (Scaleway's user-data and `poweron`) is part of the path.
    let settled = calls
        .iter()
        .filter(|c| matches!(c.role, Role::CreateServer | Role::Mutate))
        .map(|c| c.answered)
        .max()
        .unwrap_or(created);
    let poll = calls
        .iter()
        .filter(|c| c.role == Role::Status && c.arrived >= settled)
        .map(|c| c.arrived)
        .min()
        .unwrap_or_else(|| panic!("{}: no status poll in {:#?}", api.name, names(&calls)));
    // The poll's own round (say the lost-race check sent beside it) is not one before it.
    let upto: Vec<&Call> = calls.iter().filter(|c| c.arrived <= poll).collect();
    let before: Vec<&Call> = calls.iter().filter(|c| c.arrived < poll).collect();
    let mut seen = BTreeSet::new();
    let repeated = before
        .iter()
        .filter(|c| !(c.role == Role::ListServers && c.arrived >= created))
        .filter(|c| !seen.insert(c.what.clone()))
        .map(|c| c.short.clone())
        .collect();
    Measured {
        rounds: rounds(&upto) - 1,
        chain: chain(&upto) - 1,
        before_poll: before
            .iter()
            .map(|c| {
                format!(
                    "{:>5}..{:>5} ms {}",
                    (c.arrived - start).as_millis(),
                    (c.answered - start).as_millis(),
                    c.short
                )
            })
            .collect(),
        repeated,
        calls: calls.len(),
        mutating: calls
            .iter()
            .filter(|c| matches!(c.role, Role::CreateServer | Role::Mutate))
            .count(),
        to_poll: poll - start,
        wall,
    }
}

fn names(calls: &[Call]) -> Vec<&str> {
    calls.iter().map(|c| c.short.as_str()).collect()
}

/// Runs `create` against `c` with [`LATENCY`] on every call, and measures it.
fn create_measured(c: &dyn Cloud, api: &Api) -> Measured {
    let b = c.bin();
    let name = format!("rounds-{}", api.name);
    let v = crate::scenario::create_args(c, &name, "203.0.113.7/32", &["--timeout", "120s"]);
    c.kit().set_latency(LATENCY);
    c.kit().clear_log();
    let t = Instant::now();
    let r = b.run(&v.iter().map(String::as_str).collect::<Vec<_>>());
    let wall = t.elapsed();
    c.kit().set_latency(Duration::ZERO);
    r.expect_code(0);
    assert!(c.complete(&name), "{:?}", c.leftovers(&name));
    let m = measure(api, &c.kit().requests(), wall);
    crate::scenario::destroy(c, &b, &name, &[]).expect_code(0);
    m
}

/// Prints the numbers and checks the goal: at most [`MAX_ROUNDS`] rounds (and as long a chain)
/// before the first poll, nothing sent twice, and `mutating` calls in all.
fn check(c: &dyn Cloud, api: &Api, mutating: usize) {
    let m = create_measured(c, api);
    println!(
        "rounds {}: {} rounds (chain {}) and {} calls before the first status poll at {} ms; {} calls, {} mutating; create took {} ms at {} ms a call",
        api.name,
        m.rounds,
        m.chain,
        m.before_poll.len(),
        m.to_poll.as_millis(),
        m.calls,
        m.mutating,
        m.wall.as_millis(),
        LATENCY.as_millis()
    );
    let report = format!("{}: {:#?}", api.name, m);
    assert!(m.rounds <= MAX_ROUNDS, "{report}");
    assert!(m.chain <= MAX_ROUNDS, "{report}");
    assert!(m.repeated.is_empty(), "sent twice: {report}");
    assert_eq!(m.mutating, mutating, "mutating calls: {report}");
}

// The mutating calls each create makes: Hetzner key, firewall, server; DigitalOcean two tags,
// key, firewall, droplet; Scaleway group, rule, server, volume tag, two IPs, user-data, poweron
// (10 before issue 12: two IP tags more); EC2 key pair, group, ingress, launch.

#[test]
fn rounds_hetzner() {
    check(&Hetzner::start(), &HETZNER, 3);
}

#[test]
fn rounds_digitalocean() {
    check(&DigitalOcean::start(), &DIGITALOCEAN, 5);
}

#[test]
fn rounds_scaleway() {
    check(&Scaleway::start(), &SCALEWAY, 8);
}

#[cfg(feature = "aws")]
#[test]
fn rounds_aws() {
    check(&crate::scenario::aws::Aws::start(), &AWS, 4);
}

/// The counting itself, on a log made by hand: overlapping calls are one round, and a call that
/// overlaps a round but started after another call of it was answered still lengthens the chain.
#[test]
fn rounds_and_chains_count_what_overlaps() {
    let t0 = Instant::now();
    let at = |ms: u64| t0 + Duration::from_millis(ms);
    let call = |a: u64, b: u64| Call {
        what: String::new(),
        short: String::new(),
        role: Role::Read,
        arrived: at(a),
        answered: at(b),
    };
    let calls = [
        call(0, 100),
        call(5, 110),
        call(120, 220),
        call(230, 330),
        // Overlaps the last one: the same round, yet a chain of its own after the third.
        call(225, 400),
    ];
    let refs: Vec<&Call> = calls.iter().collect();
    assert_eq!(rounds(&refs), 3);
    assert_eq!(chain(&refs), 3);
    let long = [call(0, 500), call(10, 100), call(110, 200), call(210, 300)];
    let refs: Vec<&Call> = long.iter().collect();
    assert_eq!(
        rounds(&refs),
        1,
        "one call spanning the rest makes one round"
    );
    assert_eq!(chain(&refs), 3, "but the chain still sees three in a row");
}

#[test]
fn hetzner_reads_the_pages_of_a_long_listing_side_by_side() {
    // 130 servers are three pages of 50: the second and third are read together once the first
    // named the last page (20 pages one after another took 2 s of a 1,000-server job's start).
    use fakecloud::hetzner::FakeHetzner;
    let fake = FakeHetzner::start_default();
    for i in 0..130 {
        let d = format!("p{i}");
        fake.insert_server(
            &d,
            &[
                ("managed-by", "bootstrap"),
                ("bootstrap-deployment", d.as_str()),
            ],
        );
    }
    fake.set_latency(LATENCY);
    let r = crate::support::Bin::new().run(&[
        "list",
        "--provider",
        "hetzner",
        "--endpoint",
        &fake.url(),
        "--output",
        "json",
    ]);
    r.expect_code(0);
    let listed: serde_json::Value = serde_json::from_str(&r.stdout()).unwrap();
    let names: BTreeSet<String> = listed["deployments"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|d| d["name"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(names.len(), 130, "{listed}");
    let pages: Vec<LoggedRequest> = fake
        .requests()
        .into_iter()
        .filter(|q| q.method == "GET" && q.path.starts_with("/v1/servers?"))
        .collect();
    let page = |n: u32| {
        pages
            .iter()
            .find(|q| q.path.contains(&format!("&page={n}")))
            .unwrap_or_else(|| panic!("page {n} not read: {pages:?}"))
    };
    assert_eq!(pages.len(), 3, "each page once: {pages:?}");
    assert!(
        page(2).arrived >= page(1).answered,
        "the first page tells the last"
    );
    assert!(
        page(3).arrived < page(2).answered && page(2).arrived < page(3).answered,
        "pages 2 and 3 overlap"
    );
}
