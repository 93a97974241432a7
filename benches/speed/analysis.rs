//! What a run's request log says: calls, changes, round trips, and the critical path.
//!
//! The log is the cloud's own (the fake's, or the proxy's in front of moto): every request with
//! the instant it arrived and the instant its answer left, its body and its answer. From it:
//!
//! - **Round trips**: a round trip is a maximal set of overlapping requests (sorted by arrival,
//!   a request that arrives after every earlier one was answered starts a new one). Those that
//!   start before the first status poll are the sequential round trips before polling.
//! - **Critical path**: the shortest time the same work could take, given what each call needs
//!   first. Calls are the nodes; a call waits for
//!   1. every earlier call whose answer first carried an id this call sends (an id is the value
//!      of a JSON key `id`/`*_id`, or an EC2 `<...Id>` element, of four characters or more);
//!   2. one read stage before any change, when the run read anything before its first change
//!      (the look-ups that make a re-run find instead of duplicate: one concurrent round trip);
//!   3. for a poll whose answer shows an operation finished (an action `success`, a server
//!      `running`, an image `available`, a 404 on what was deleted), the change that started
//!      it (one whose answer showed it pending) plus the operation's duration: the poll cannot
//!      end before the change ended plus that duration;
//!   4. the provider's ordering rules that no id shows: a firewall (security group, volume)
//!      goes only after its server is gone; Scaleway's power-on only after the user-data;
//!      DigitalOcean's snapshot image is listed only after its action completed.
//!
//!   Each call costs what it took (arrival to answer, the latency included). The critical path
//!   is the latest finish in that schedule; its chain is printed with `--verbose`.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use fakecloud::LoggedRequest;
use serde_json::Value;

/// Which API a log is from: how to read ids, completions and ordering rules from it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Api {
    /// Hetzner Cloud (`/v1`).
    Hetzner,
    /// DigitalOcean (`/v2`).
    DigitalOcean,
    /// Scaleway (Instance and Block APIs).
    Scaleway,
    /// AWS EC2's query API (form bodies, XML answers).
    Aws,
}

/// What the analysis found in one run's log.
#[derive(Clone, Debug, Default)]
pub struct Analysis {
    /// Every request.
    pub calls: usize,
    /// Requests that change something (not GET; on EC2, not Describe*).
    pub mutating: usize,
    /// Answers of 429 (EC2: `RequestLimitExceeded`).
    pub throttled: usize,
    /// Round trips (maximal sets of overlapping requests) in the whole run.
    pub round_trips: usize,
    /// Round trips that started before the first status poll (`None`: the run never polled).
    pub before_poll: Option<usize>,
    /// The critical path (see the module documentation).
    pub critical_path: Duration,
    /// The calls on the critical path, first to last, as `METHOD path` (EC2: the action),
    /// with the wait of an operation shown as `+ wait`.
    pub chain: Vec<String>,
}

/// A call as the analysis reads it.
struct Node<'a> {
    log: &'a LoggedRequest,
    mutating: bool,
    /// Ids this request sends (path segments, query values, body values).
    sent: BTreeSet<String>,
    /// Ids its answer carries.
    answered: BTreeSet<String>,
    /// Ids whose operation its answer shows finished (a read only).
    done: BTreeSet<String>,
    /// Whether it started an operation that takes time (its answer shows something pending).
    starts: bool,
}

impl Node<'_> {
    fn touches(&self, id: &str) -> bool {
        self.sent.contains(id) || self.answered.contains(id)
    }

    fn label(&self, api: Api) -> String {
        if api == Api::Aws {
            return action_of(self.log).unwrap_or("?").to_owned();
        }
        let path = self.log.path.split('?').next().unwrap_or("");
        format!("{} {path}", self.log.method)
    }
}

/// Shortest id worth matching: shorter values (`1`, `22`) are catalog numbers and sizes.
const MIN_ID: usize = 4;

/// Whether a value can be an id: long enough, with a digit (path words such as `servers` and
/// names such as `debian_bookworm` are not).
fn id_like(s: &str) -> bool {
    s.len() >= MIN_ID && s.bytes().any(|b| b.is_ascii_digit())
}

/// Analyses the calls of one run; `op` is the duration of every asynchronous operation (a
/// boot, a deletion, a snapshot) in the cloud the run talked to.
pub fn analyse(api: Api, log: &[LoggedRequest], op: Duration) -> Analysis {
    let mut log: Vec<&LoggedRequest> = log.iter().collect();
    log.sort_by_key(|r| r.arrived);
    let nodes: Vec<Node<'_>> = log.iter().map(|r| node(api, r)).collect();
    let mut a = Analysis {
        calls: nodes.len(),
        mutating: nodes.iter().filter(|n| n.mutating).count(),
        throttled: nodes.iter().filter(|n| throttled(api, n.log)).count(),
        ..Analysis::default()
    };
    let rounds = round_trips(&log);
    a.round_trips = rounds.len();
    a.before_poll = first_status_poll(api, &nodes)
        .map(|p| rounds.iter().filter(|r| r.0 < nodes[p].log.arrived).count());
    let (cp, chain) = critical_path(api, &nodes, op);
    a.critical_path = cp;
    a.chain = chain;
    a
}

/// Whether the answer is the cloud's "too many requests".
fn throttled(api: Api, r: &LoggedRequest) -> bool {
    r.status == 429
        || (api == Api::Aws
            && r.response
                .as_ref()
                .and_then(Value::as_str)
                .is_some_and(|t| t.contains("RequestLimitExceeded")))
}

/// The `(start, end)` of every round trip, in order.
pub fn round_trips(sorted: &[&LoggedRequest]) -> Vec<(Instant, Instant)> {
    let mut out: Vec<(Instant, Instant)> = Vec::new();
    for r in sorted {
        match out.last_mut() {
            Some(last) if r.arrived < last.1 => last.1 = last.1.max(r.answered),
            _ => out.push((r.arrived, r.answered)),
        }
    }
    out
}

/// The EC2 `Action` of a query-API request.
fn action_of(r: &LoggedRequest) -> Option<&str> {
    r.body.as_ref()?.get("Action")?.as_str()
}

fn node(api: Api, r: &LoggedRequest) -> Node<'_> {
    let mutating = match api {
        Api::Aws => action_of(r).is_some_and(|a| {
            !(a.starts_with("Describe") || a.starts_with("Get") || a.starts_with("List"))
        }),
        _ => r.method != "GET",
    };
    let mut sent = BTreeSet::new();
    let (path, query) = r.path.split_once('?').unwrap_or((&r.path, ""));
    sent.extend(path.split('/').map(str::to_owned));
    for pair in query.split('&') {
        if let Some((_, v)) = pair.split_once('=') {
            sent.insert(v.to_owned());
        }
    }
    if let Some(b) = &r.body {
        leaves(b, &mut sent);
    }
    sent.retain(|s| id_like(s));
    let mut answered = BTreeSet::new();
    match &r.response {
        Some(Value::String(xml)) => xml_ids(xml, &mut answered),
        Some(v) => json_ids(v, &mut answered),
        None => {}
    }
    answered.retain(|s| id_like(s));
    let done = if mutating {
        BTreeSet::new()
    } else {
        done_ids(api, r, path)
    };
    let starts = mutating && starts_pending(api, r);
    Node {
        log: r,
        mutating,
        sent,
        answered,
        done,
        starts,
    }
}

/// Whether a change's answer shows an operation still running (a Hetzner action `running`, a
/// DigitalOcean action `in-progress`, a Scaleway task `pending` or a server `starting`, an
/// image being made; on EC2 the calls that start one). A change answered as done at once (a
/// DigitalOcean droplet's 204) has nothing to wait for.
fn starts_pending(api: Api, r: &LoggedRequest) -> bool {
    fn pending(v: &Value, states: &[&str]) -> bool {
        match v {
            Value::Array(a) => a.iter().any(|x| pending(x, states)),
            Value::Object(m) => {
                let status = m.get("status").or_else(|| m.get("state"));
                status
                    .and_then(Value::as_str)
                    .is_some_and(|s| states.contains(&s))
                    || m.values().any(|x| pending(x, states))
            }
            _ => false,
        }
    }
    let states: &[&str] = match api {
        Api::Hetzner => &["running", "initializing", "creating"],
        Api::DigitalOcean => &["in-progress", "new"],
        Api::Scaleway => &["pending", "starting", "stopping", "creating"],
        Api::Aws => {
            return matches!(
                action_of(r),
                Some("RunInstances" | "TerminateInstances" | "StopInstances" | "CreateImage")
            );
        }
    };
    r.response.as_ref().is_some_and(|v| pending(v, states))
}

/// Every scalar of a JSON value, as text.
fn leaves(v: &Value, out: &mut BTreeSet<String>) {
    match v {
        Value::String(s) => {
            out.insert(s.clone());
        }
        Value::Number(n) => {
            out.insert(n.to_string());
        }
        Value::Array(a) => a.iter().for_each(|x| leaves(x, out)),
        Value::Object(m) => m.values().for_each(|x| leaves(x, out)),
        Value::Bool(_) | Value::Null => {}
    }
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The values of keys `id` and `*_id` anywhere in a JSON answer.
fn json_ids(v: &Value, out: &mut BTreeSet<String>) {
    match v {
        Value::Array(a) => a.iter().for_each(|x| json_ids(x, out)),
        Value::Object(m) => {
            for (k, x) in m {
                if k == "id" || k.ends_with("_id") {
                    out.extend(scalar(x));
                }
                json_ids(x, out);
            }
        }
        _ => {}
    }
}

/// The text of every `<somethingId>` element of an EC2 answer (not `requestId`, which every
/// answer has and no request sends).
fn xml_ids(xml: &str, out: &mut BTreeSet<String>) {
    let mut rest = xml;
    while let Some(open) = rest.find('<') {
        rest = &rest[open + 1..];
        let Some(close) = rest.find('>') else { break };
        let tag = &rest[..close];
        rest = &rest[close + 1..];
        if tag.ends_with("Id")
            && tag != "requestId"
            && !tag.contains(' ')
            && !tag.contains('/')
            && let Some(end) = rest.find('<')
        {
            out.insert(rest[..end].to_owned());
        }
    }
}

/// The ids whose operation a read's answer shows finished.
fn done_ids(api: Api, r: &LoggedRequest, path: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    if r.status == 404 {
        // What was being deleted is gone.
        out.extend(path.rsplit('/').next().map(str::to_owned));
        return out;
    }
    match (&r.response, api) {
        (Some(Value::String(xml)), Api::Aws) => ec2_done(xml, &mut out),
        (Some(v), _) => json_done(api, v, &mut out),
        _ => {}
    }
    out
}

/// Objects with an id and a finished status.
fn json_done(api: Api, v: &Value, out: &mut BTreeSet<String>) {
    let finished: &[&str] = match api {
        Api::Hetzner => &["success", "error", "running", "available"],
        Api::DigitalOcean => &["completed", "errored", "active"],
        Api::Scaleway => &["running", "available"],
        Api::Aws => &[],
    };
    match v {
        Value::Array(a) => a.iter().for_each(|x| json_done(api, x, out)),
        Value::Object(m) => {
            let status = m.get("status").or_else(|| m.get("state"));
            if let (Some(id), Some(Value::String(s))) = (m.get("id").and_then(scalar), status)
                && finished.contains(&s.as_str())
            {
                out.insert(id);
            }
            m.values().for_each(|x| json_done(api, x, out));
        }
        _ => {}
    }
}

/// EC2: instances `running` or `terminated`, images `available`.
fn ec2_done(xml: &str, out: &mut BTreeSet<String>) {
    for (tag, state_tag, finished) in [
        (
            "instanceId",
            "instanceState",
            &["running", "terminated"][..],
        ),
        ("imageId", "imageState", &["available"][..]),
    ] {
        let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
        for part in xml.split(open.as_str()).skip(1) {
            let Some((id, rest)) = part.split_once(close.as_str()) else {
                continue;
            };
            let Some(state) = element(rest, state_tag) else {
                continue;
            };
            // An instance's state is `<code>16</code><name>running</name>`.
            let state = element(state, "name").unwrap_or(state);
            if finished.contains(&state.trim()) {
                out.insert(id.to_owned());
            }
        }
    }
}

/// The text of the first `<tag>...</tag>` in `xml`.
fn element<'a>(xml: &'a str, tag: &str) -> Option<&'a str> {
    let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
    let start = xml.find(&open)? + open.len();
    let end = xml[start..].find(&close)? + start;
    Some(&xml[start..end])
}

/// The call that starts what a command waits for: a server's creation or start, its
/// deletion, a snapshot.
fn starts_operation(api: Api, n: &Node<'_>) -> bool {
    let r = n.log;
    let path = r.path.split('?').next().unwrap_or("");
    match api {
        Api::Hetzner => {
            (r.method == "POST" && path == "/v1/servers")
                || (r.method == "DELETE" && path.starts_with("/v1/servers/"))
                || path.ends_with("/actions/create_image")
        }
        Api::DigitalOcean => {
            (r.method == "POST" && path == "/v2/droplets")
                || (r.method == "DELETE" && path.starts_with("/v2/droplets/"))
                || (r.method == "POST" && path.ends_with("/actions"))
        }
        Api::Scaleway => {
            r.method == "POST" && (path.ends_with("/action") || path.ends_with("/snapshots"))
        }
        Api::Aws => matches!(
            action_of(r),
            Some("RunInstances" | "TerminateInstances" | "CreateImage")
        ),
    }
}

/// The first read after the first operation-starting call that looks at what it started.
fn first_status_poll(api: Api, nodes: &[Node<'_>]) -> Option<usize> {
    let start = nodes.iter().position(|n| starts_operation(api, n))?;
    let s = &nodes[start];
    let touched: BTreeSet<&String> = s.sent.iter().chain(&s.answered).collect();
    nodes.iter().enumerate().skip(start + 1).find_map(|(i, n)| {
        (!n.mutating
            && n.log.arrived >= s.log.answered
            && n.sent.iter().any(|t| touched.contains(t)))
        .then_some(i)
    })
}

/// Whether the call may only go once its server is gone (rule 4).
fn after_server_gone(api: Api, n: &Node<'_>) -> bool {
    let r = n.log;
    let path = r.path.split('?').next().unwrap_or("");
    match api {
        Api::Hetzner => r.method == "DELETE" && path.starts_with("/v1/firewalls/"),
        Api::DigitalOcean => r.method == "DELETE" && path.starts_with("/v2/firewalls/"),
        Api::Scaleway => {
            r.method == "DELETE"
                && ["/security_groups/", "/volumes/", "/ips/"]
                    .iter()
                    .any(|p| path.contains(p))
        }
        Api::Aws => action_of(r) == Some("DeleteSecurityGroup"),
    }
}

/// Whether the call deletes a server.
fn deletes_server(api: Api, n: &Node<'_>) -> bool {
    let r = n.log;
    let path = r.path.split('?').next().unwrap_or("");
    match api {
        Api::Hetzner => r.method == "DELETE" && path.starts_with("/v1/servers/"),
        Api::DigitalOcean => r.method == "DELETE" && path.starts_with("/v2/droplets/"),
        Api::Scaleway => {
            r.method == "POST"
                && path.ends_with("/action")
                && r.body.as_ref().and_then(|b| b["action"].as_str()) == Some("terminate")
        }
        Api::Aws => action_of(r) == Some("TerminateInstances"),
    }
}

/// The earliest poll after `x` that shows something `x` touched finished; none when `x` had
/// nothing pending.
fn completion_of(nodes: &[Node<'_>], x: usize, before: Instant) -> Option<usize> {
    let xn = &nodes[x];
    if !xn.starts {
        return None;
    }
    nodes.iter().enumerate().skip(x + 1).find_map(|(i, n)| {
        (n.log.arrived >= xn.log.answered
            && n.log.answered <= before
            && n.done.iter().any(|t| xn.touches(t)))
        .then_some(i)
    })
}

/// Rule 4's dependencies of call `i`.
fn ordering_deps(api: Api, nodes: &[Node<'_>], i: usize) -> Vec<usize> {
    let n = &nodes[i];
    let before = n.log.arrived;
    let earlier = |pick: &dyn Fn(&Node<'_>) -> bool| -> Vec<usize> {
        (0..i)
            .filter(|&j| nodes[j].log.answered <= before && pick(&nodes[j]))
            .collect()
    };
    let mut deps = Vec::new();
    if after_server_gone(api, n) {
        for d in earlier(&|m| deletes_server(api, m)) {
            deps.push(completion_of(nodes, d, before).unwrap_or(d));
        }
    }
    let path = n.log.path.split('?').next().unwrap_or("");
    match api {
        Api::Scaleway
            if n.log.method == "POST"
                && path.ends_with("/action")
                && n.log.body.as_ref().and_then(|b| b["action"].as_str()) == Some("poweron") =>
        {
            // The user-data of the same server, set before it boots.
            deps.extend(earlier(&|m| {
                m.log.method == "PATCH"
                    && m.log.path.contains("/user_data")
                    && n.sent.iter().any(|t| m.sent.contains(t))
            }));
        }
        Api::DigitalOcean if n.log.method == "GET" && path.ends_with("/snapshots") => {
            // The image shows once the droplet's snapshot action completed.
            let droplet: Vec<&String> = n.sent.iter().collect();
            for j in earlier(&|m| {
                m.log.method == "POST"
                    && m.log.path.ends_with("/actions")
                    && droplet.iter().any(|d| m.sent.contains(*d))
            }) {
                deps.push(completion_of(nodes, j, before).unwrap_or(j));
            }
        }
        _ => {}
    }
    deps
}

/// The critical path and its chain.
fn critical_path(api: Api, nodes: &[Node<'_>], op: Duration) -> (Duration, Vec<String>) {
    if nodes.is_empty() {
        return (Duration::ZERO, Vec::new());
    }
    let took = |n: &Node<'_>| n.log.answered.saturating_duration_since(n.log.arrived);
    // Rule 2: one read stage before any change.
    let first_change = nodes.iter().position(|n| n.mutating);
    let mut early_reads: Vec<Duration> = nodes
        .iter()
        .take(first_change.unwrap_or(0))
        .map(took)
        .collect();
    early_reads.sort();
    let read_stage = early_reads
        .get(early_reads.len() / 2)
        .copied()
        .unwrap_or(Duration::ZERO);
    // Rule 1: who first answered each id.
    let mut by_answer: Vec<usize> = (0..nodes.len()).collect();
    by_answer.sort_by_key(|&i| nodes[i].log.answered);
    let mut introduced: HashMap<&str, usize> = HashMap::new();
    for &i in &by_answer {
        for id in &nodes[i].answered {
            introduced.entry(id.as_str()).or_insert(i);
        }
    }
    // Changes that started an operation, by the ids they touched, for rule 3.
    let mut changed: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, n) in nodes.iter().enumerate().filter(|(_, n)| n.starts) {
        for id in n.sent.iter().chain(&n.answered) {
            changed.entry(id.as_str()).or_default().push(i);
        }
    }
    let mut finish = vec![Duration::ZERO; nodes.len()];
    let mut prev: Vec<Option<(usize, bool)>> = vec![None; nodes.len()];
    for (i, n) in nodes.iter().enumerate() {
        let ready = |j: usize| nodes[j].log.answered <= n.log.arrived && j != i;
        let mut start = if n.mutating && first_change.is_some_and(|f| f > 0) {
            read_stage
        } else {
            Duration::ZERO
        };
        let mut best: Option<(usize, bool)> = None;
        let mut deps: Vec<usize> = n
            .sent
            .iter()
            .filter_map(|id| introduced.get(id.as_str()).copied())
            .filter(|&j| ready(j))
            .collect();
        deps.extend(ordering_deps(api, nodes, i));
        for j in deps {
            // A real call that ends with the read stage names the chain better than the stage.
            if finish[j] > start || (best.is_none() && finish[j] == start && !start.is_zero()) {
                start = finish[j];
                best = Some((j, false));
            }
        }
        let mut end = start + took(n);
        for id in &n.done {
            for &j in changed.get(id.as_str()).map_or(&[][..], Vec::as_slice) {
                if ready(j) && finish[j] + op > end {
                    end = finish[j] + op;
                    best = Some((j, true));
                }
            }
        }
        finish[i] = end;
        prev[i] = best;
    }
    let (last, cp) = finish
        .iter()
        .enumerate()
        .max_by_key(|(_, f)| **f)
        .map(|(i, f)| (i, *f))
        .unwrap_or((0, Duration::ZERO));
    let mut chain = Vec::new();
    let mut at = Some(last);
    while let Some(i) = at {
        let mut label = nodes[i].label(api);
        if prev[i].is_some_and(|(_, waited)| waited) {
            label.push_str(" + wait");
        }
        chain.push(label);
        at = prev[i].map(|(j, _)| j);
        // A chain only goes back in time; this guards against a broken log.
        if chain.len() > nodes.len() {
            break;
        }
    }
    if nodes[chain_start(&prev, last)].mutating && !read_stage.is_zero() {
        chain.push("(read stage)".to_owned());
    }
    chain.reverse();
    (cp, chain)
}

/// The first call of the chain that ends at `last`.
fn chain_start(prev: &[Option<(usize, bool)>], last: usize) -> usize {
    let mut i = last;
    let mut steps = 0;
    while let Some((j, _)) = prev[i] {
        i = j;
        steps += 1;
        if steps > prev.len() {
            break;
        }
    }
    i
}
