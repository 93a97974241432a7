//! Fault injection against the Hetzner fake beyond the shared matrix (`scenario`): a rollback
//! that fails too and the exact command it prints, transient failures ridden out, and Ctrl-C
//! while the server's create is in flight.

use crate::support::Bin;
use fakecloud::Fault;
use fakecloud::hetzner::{FakeConfig, FakeHetzner};

fn create(b: &Bin, url: &str) -> crate::support::Run {
    b.run(&create_args(url))
}

fn create_args(url: &str) -> Vec<&str> {
    crate::support::hetzner_create(url, "web1", "203.0.113.7/32")
}

fn bin() -> Bin {
    let mut b = Bin::new();
    // Fail on the first error, so that each injected fault really stops the flow.
    b.env("BOOTSTRAP_RETRY_MAX", "0");
    b
}

#[test]
fn a_failing_rollback_prints_the_destroy_command() {
    let fake = FakeHetzner::start(FakeConfig::default());
    // The server's creation fails, and so does every DELETE after it.
    fake.fail_next_action("create_server", "action_failed", "no capacity");
    fake.fail_matching(
        "DELETE",
        "/servers",
        Fault::Status(500, "server_error"),
        usize::MAX,
    );
    let b = bin();
    let r = create(&b, &fake.url());
    r.expect_code(1);
    let err = r.stderr();
    assert!(err.contains("no capacity"), "{err}");
    let cmd = crate::support::printed_destroy(&err).expect("a destroy command");
    let url = fake.url();
    assert_eq!(
        cmd,
        [
            "destroy",
            "web1",
            "--provider",
            "hetzner",
            "--endpoint",
            url.as_str(),
            "--yes"
        ],
        "exact, endpoint included: {err}"
    );
    // And that very command finishes the job once the API works again.
    fake.clear_faults();
    let args: Vec<&str> = cmd.iter().map(String::as_str).collect();
    let r = b.run(&args);
    r.expect_code(0);
    assert_eq!(fake.resources_labelled("bootstrap-deployment", "web1"), 0);
}

#[test]
fn transient_failures_are_retried_and_the_run_succeeds() {
    let fake = FakeHetzner::start(FakeConfig::default());
    fake.fail_matching("POST", "/servers", Fault::Status(503, "unavailable"), 2);
    fake.fail_matching("POST", "/firewalls", Fault::DropAfter, 1);
    let mut b = Bin::new();
    b.env("BOOTSTRAP_RETRY_MAX", "3");
    create(&b, &fake.url()).expect_code(0);
    assert_eq!(fake.servers().len(), 1);
    assert_eq!(
        fake.firewalls().len(),
        1,
        "the dropped-but-done create was found, not repeated"
    );
    let posts = fake
        .request_log()
        .into_iter()
        .filter(|(m, p, _)| {
            m == "POST" && (p.starts_with("/v1/firewalls") || p.starts_with("/firewalls"))
        })
        .count();
    assert_eq!(posts, 1, "{:?}", fake.request_log());
}

#[test]
fn ctrl_c_while_the_server_create_is_in_flight_leaves_nothing_behind() {
    let fake = FakeHetzner::start(FakeConfig::default());
    // The API takes its time with the server: it is made after the client has given up.
    fake.fail_matching(
        "POST",
        "/servers",
        Fault::Delay(std::time::Duration::from_millis(3000)),
        1,
    );
    let b = bin();
    let url = fake.url();
    let child = b.spawn(&create_args(&url));
    let started = std::time::Instant::now();
    // The log shows answered requests: once key and firewall are made, the server's POST is
    // next, and the API sits on it for 3 s. Interrupt in that window.
    while !["/v1/ssh_keys", "/v1/firewalls"].iter().all(|want| {
        fake.request_log()
            .iter()
            .any(|(m, p, s)| m == "POST" && p == want && *s == 201)
    }) {
        assert!(
            started.elapsed().as_secs() < 60,
            "key and firewall never made"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    // Then wait until a request has arrived that the API is still sitting on (arrived, not
    // answered, for 100 ms): the delayed POST /servers.
    let mut held = 0;
    while held < 2 {
        assert!(
            started.elapsed().as_secs() < 60,
            "POST /servers never arrived"
        );
        held = if fake.request_count() > fake.request_log().len() as u64 {
            held + 1
        } else {
            0
        };
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let post_seen = std::time::Instant::now();
    let pid = child.id().to_string();
    let killed = std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap();
    assert!(killed.success());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    // Ctrl-C: exit 130 (128 + SIGINT) after the rollback.
    assert_eq!(out.status.code(), Some(130), "{err}");
    assert!(err.contains("interrupted"), "{err}");
    // Give the delayed create time to land before looking.
    let landed = post_seen + std::time::Duration::from_millis(3500);
    std::thread::sleep(landed.saturating_duration_since(std::time::Instant::now()));
    // The create that was in flight when the interrupt came landed after the rollback looked.
    assert_eq!(
        fake.resources_labelled("bootstrap-deployment", "web1"),
        0,
        "{err}\n{:?}",
        fake.request_log()
    );
    assert!(fake.servers().is_empty(), "{:?}", fake.servers());
    // Why: the rollback deleted the key and firewall first, so the late create was refused.
    let late = fake
        .request_log()
        .into_iter()
        .find(|(m, p, _)| m == "POST" && p.starts_with("/v1/servers"))
        .unwrap();
    assert!(late.2 >= 400, "{late:?}\n{err}\n{:?}", fake.request_log());
}
