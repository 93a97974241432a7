//! Contract tests for `--provider scaleway`: every request the flows send (create, a re-run
//! with a new address, list, the snapshot job, `snapshot list`, a restore with
//! `--from-snapshot`, destroy with `--delete-snapshots`) passes Prism in proxy mode in front of
//! the stateful fake, one Prism per official document (`scaleway-instance.yaml`,
//! `scaleway-iam.yaml`, `scaleway-block.yaml`). A small router in this test sends each request to
//! the Prism of its API by path prefix.
//!
//! - The Marketplace call (`GET /marketplace/v2/local-images`, which resolves an image label
//!   to the zone's image) has **no document** in `../shared/specs`: the router sends it to the
//!   fake directly, unchecked.
//! - `scaleway-block.yaml` is derived by hand from the Go SDK (SOURCES.md), not official.
//! - The only allowed violations are the response differences SOURCES.md documents for the
//!   live API, each in [`ALLOWED`] with its reason. (Prism's "Unable to match the returned
//!   status code" for the action's 202 is already left out of the violation list by
//!   [`crate::prism`]; it is named in [`ALLOWED`] too.)

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State as AxState;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use fakecloud::scaleway::{FakeScaleway, PROJECT};

use crate::prism::{Prism, Violation};
use crate::support::Bin;

/// Documented differences between the live API (and so the fake) and the documents, as
/// (request as Prism logs it, part of the message, the reason from SOURCES.md).
const ALLOWED: &[(&str, &str, &str)] = &[
    (
        "/action",
        "Unable to match the returned status code",
        "SOURCES.md: `POST .../servers/{id}/action` answers 202 {task}; the document says 200",
    ),
    (
        "/user_data/",
        "response",
        "SOURCES.md: `GET .../user_data/{key}` answers text/plain; the document says JSON",
    ),
];

fn allowed(v: &Violation) -> bool {
    ALLOWED
        .iter()
        .any(|(req, msg, _)| v.request.contains(req) && v.message.contains(msg))
}

/// Where each API prefix goes: (prefix, base URL).
type Routes = Arc<(Vec<(&'static str, String)>, reqwest::Client)>;

async fn route(
    AxState(routes): AxState<Routes>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (table, http) = &*routes;
    let path = uri.path();
    let Some((_, base)) = table.iter().find(|(p, _)| path.starts_with(p)) else {
        return (StatusCode::NOT_FOUND, "no route").into_response();
    };
    let mut req = http.request(method, format!("{base}{uri}"));
    for (k, v) in &headers {
        if k != "host" && k != "content-length" {
            req = req.header(k, v);
        }
    }
    match req.body(body).send().await {
        Ok(r) => {
            let status = r.status();
            let mut out = Response::builder().status(status);
            for (k, v) in r.headers() {
                if k != "content-length" && k != "transfer-encoding" && k != "connection" {
                    out = out.header(k, v);
                }
            }
            let bytes = r.bytes().await.unwrap_or_default();
            out.body(axum::body::Body::from(bytes))
                .unwrap_or_else(|_| StatusCode::BAD_GATEWAY.into_response())
        }
        Err(_) => StatusCode::BAD_GATEWAY.into_response(),
    }
}

fn bin() -> Bin {
    let mut b = Bin::new();
    b.env("SCW_SECRET_KEY", "00000000-0000-4000-8000-000000000000");
    b.env("SCW_DEFAULT_PROJECT_ID", PROJECT);
    b
}

#[test]
fn every_request_of_the_flows_passes_the_official_documents() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let fake = FakeScaleway::start();
    let instance = Prism::start_proxy("scaleway-instance.yaml", &fake.url());
    let iam = Prism::start_proxy("scaleway-iam.yaml", &fake.url());
    let block = Prism::start_proxy("scaleway-block.yaml", &fake.url());
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let table = vec![
        ("/instance/", instance.url()),
        ("/iam/", iam.url()),
        ("/block/", block.url()),
        // No document: straight to the fake.
        ("/marketplace/", fake.url()),
    ];
    let app = axum::Router::new()
        .fallback(route)
        .with_state(Arc::new((table, http)));
    let router = fakecloud::Builder::new("scw-router").start(app).unwrap();
    let url = router.url();
    let b = bin();
    let run = |args: &[&str]| {
        let mut a = args.to_vec();
        a.extend(["--provider", "scaleway", "--endpoint", &url]);
        b.run(&a)
    };
    let create = |name: &str, from: &str, extra: &[&str]| {
        let mut a = vec!["create", "--name", name, "--ssh-from", from];
        a.extend(extra);
        run(&a)
    };
    create(
        "web1",
        "203.0.113.7/32",
        &["--ssh-from", "2001:db8::/32", "--snapshots", "daily:1"],
    )
    .expect_code(0);
    create("web1", "198.51.100.0/24", &["--snapshots", "daily:1"]).expect_code(0);
    run(&["list"]).expect_code(0);
    for at in ["2026-11-25T04:00:00Z", "2026-11-26T04:00:00Z"] {
        run(&["snapshot", "run", "--at", at]).expect_code(0);
    }
    run(&["snapshot", "list", "web1"]).expect_code(0);
    let snap = fake.w().snapshots.keys().next().cloned().unwrap();
    create("web2", "203.0.113.7/32", &["--from-snapshot", &snap]).expect_code(0);
    run(&["destroy", "web2", "--yes"]).expect_code(0);
    run(&["destroy", "web1", "--yes", "--delete-snapshots"]).expect_code(0);
    assert_eq!(fake.orphans(), Vec::<String>::new());

    let mut bad = Vec::new();
    for (name, p) in [("instance", &instance), ("iam", &iam), ("block", &block)] {
        p.wait_for_log(1, Duration::from_secs(2));
        std::thread::sleep(Duration::from_millis(300));
        for v in p.violation_report(0) {
            if !allowed(&v) {
                bad.push(format!("{name}: {} -> {}", v.request, v.message));
            }
        }
    }
    assert!(
        instance
            .log_lines()
            .iter()
            .any(|l| l.contains("Request received")),
        "the instance requests went through Prism"
    );
    assert!(
        block
            .log_lines()
            .iter()
            .any(|l| l.contains("Request received")),
        "the block requests went through Prism"
    );
    assert!(
        bad.is_empty(),
        "requests that break the documents:\n{}",
        bad.join("\n")
    );

    // The check itself works: user-data sent as JSON breaks the document (SOURCES.md: Prism
    // answers "must be string"), and shows up as a violation.
    let mark = instance.log_len();
    let r = crate::support::http(
        &url,
        "PATCH",
        "/instance/v1/zones/fr-par-1/servers/00000000-0000-4000-8000-000000000001/user_data/cloud-init",
        &[("X-Auth-Token", "t"), ("Content-Type", "application/json")],
        Some("{\"a\": 1}"),
    )
    .unwrap();
    assert_ne!(r.status, 204);
    instance.wait_for_line(mark, "Violation", Duration::from_secs(5));
    assert!(
        !instance.violations_since(mark).is_empty(),
        "a JSON user-data is caught: {:?}",
        instance.log_lines()
    );
}
