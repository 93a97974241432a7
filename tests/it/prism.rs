//! Prism (`@stoplight/prism-cli` 5.16) as a request-validating mock of an official API document,
//! for contract tests: the adapter's requests go to Prism, and every request that breaks the
//! document shows up in [`Prism::violations`] (and gets a 422/401 answer in mock mode).
//!
//! - Binary: env `BOOTSTRAP_PRISM`, else `prism` on `PATH`, else
//!   `/opt/bootstrap-ci/prism/node_modules/.bin/prism`, else `/tmp/prism/node_modules/.bin/prism`.
//! - Specs: env `BOOTSTRAP_SPECS_DIR`, else `../shared/specs` next to the crate.
//! - Start-up waits for Prism's "Prism is listening" line and a TCP connect, at most
//!   `BOOTSTRAP_PRISM_TIMEOUT_SECS` (default 120; Hetzner's 3.4 MB document takes ~5-20 s).
//!
//! Lifetime: Prism runs under a small `sh` wrapper whose stdin is a pipe from this process. A
//! watchdog in the wrapper kills Prism as soon as that pipe closes, which happens when the
//! [`Prism`] value is dropped *or* when the test process exits in any way (even on a panic
//! abort or SIGKILL, since the kernel closes the pipe). That is what makes [`Prism::shared`]
//! safe: the shared instances live in statics that are never dropped, yet no Prism process
//! outlives the test binary. Drop additionally waits for the wrapper and falls back to
//! SIGKILL (through `kill(1)`) after 10 s.
//!
//! What Prism 5.16 prints for a bad request (mock mode, not a TTY, so no colours):
//! ```text
//! [2:55:44 PM] › [HTTP SERVER] post /ssh_keys ℹ  info      Request received
//! [2:55:44 PM] ›     [VALIDATOR] ⚠  warning   Request did not pass the validation rules
//! [2:55:44 PM] ›     [VALIDATOR] ✖  error     Request body must have required property 'public_key'
//! [2:55:44 PM] › [HTTP SERVER] post /ssh_keys ✖  error     Request terminated with error: https://stoplight.io/prism/errors#UNPROCESSABLE_ENTITY: Invalid request
//! ```
//! and in proxy mode (`Prism::start_proxy`, which also validates the upstream's responses):
//! ```text
//! [VALIDATOR] ✖  error     Violation: request.body Request body must have required property 'public_key'
//! [VALIDATOR] ⚠  warning   Violation: response Unable to match the returned status code with those defined in the document: 201,4xx,5xx
//! ```
//! The last kind is noise from this document (errors are declared as `4xx`/`5xx`, which Prism
//! does not match) and is not counted as a violation.

#![allow(dead_code)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The wrapper: runs Prism in the background, reports its pid, kills it when our stdin closes.
const WRAPPER: &str = r#"
exec 3<&0
"$@" </dev/null 3<&- &
p=$!
echo "bootstrap-prism-wrapper: pid $p"
( read _ignored <&3; kill $p 2>/dev/null ) </dev/null &
w=$!
exec 3<&-
wait $p
rc=$?
echo "bootstrap-prism-wrapper: exited $rc"
kill $w 2>/dev/null
exit $rc
"#;

const READY_LINE: &str = "Prism is listening";
const EXITED_LINE: &str = "bootstrap-prism-wrapper: exited";

/// A Prism process serving one document on 127.0.0.1; killed on Drop.
pub struct Prism {
    child: Option<Child>,
    stdin: Option<ChildStdin>,
    pid: Option<u32>,
    port: u16,
    spec: PathBuf,
    lines: Arc<Mutex<Vec<String>>>,
    readers: Vec<std::thread::JoinHandle<()>>,
}

/// One violation with the request it belongs to.
#[derive(Clone, Debug, PartialEq)]
pub struct Violation {
    /// `"post /ssh_keys"` as Prism logs it (lower-case method, path without query), or empty.
    pub request: String,
    /// The message, e.g. `Request body must have required property 'public_key'`.
    pub message: String,
}

impl Prism {
    /// Starts `prism mock` on `<specs_dir>/<spec_file_name>`; panics with a clear message when
    /// Prism or the document is missing or Prism does not come up.
    pub fn start(spec_file_name: &str) -> Prism {
        Self::try_start(spec_file_name).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Like [`Prism::start`], returning the reason instead of panicking.
    pub fn try_start(spec_file_name: &str) -> Result<Prism, String> {
        Self::launch(spec_file_name, &["mock"], &[])
    }

    /// Starts `prism proxy` on the document in front of `upstream` (e.g. a fake's
    /// `http://127.0.0.1:PORT/v1`): requests are forwarded even when invalid, and both the
    /// requests and the upstream's responses are validated (see [`Prism::violations`]).
    pub fn start_proxy(spec_file_name: &str, upstream: &str) -> Prism {
        Self::launch(spec_file_name, &["proxy"], &[upstream]).unwrap_or_else(|e| panic!("{e}"))
    }

    /// One `prism mock` per document per test process, started on first use and shared by every
    /// test after that. It is never dropped; the wrapper's watchdog stops it when the test
    /// process exits. Tests running in parallel see each other's log lines: use
    /// [`Prism::log_len`] + [`Prism::violations_since`] or check the answers, not the global
    /// violation list.
    pub fn shared(spec_file_name: &str) -> &'static Prism {
        static SHARED: OnceLock<Mutex<HashMap<String, &'static Prism>>> = OnceLock::new();
        let map = SHARED.get_or_init(|| Mutex::new(HashMap::new()));
        let mut map = map.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(p) = map.get(spec_file_name) {
            return p;
        }
        let p: &'static Prism = Box::leak(Box::new(Prism::start(spec_file_name)));
        map.insert(spec_file_name.to_string(), p);
        p
    }

    fn launch(spec_file_name: &str, mode: &[&str], trailing: &[&str]) -> Result<Prism, String> {
        let bin = Self::binary()?;
        let spec = specs_dir().join(spec_file_name);
        if !spec.is_file() {
            return Err(format!(
                "API document {} not found (set BOOTSTRAP_SPECS_DIR to the directory holding {spec_file_name})",
                spec.display()
            ));
        }
        let timeout = std::env::var("BOOTSTRAP_PRISM_TIMEOUT_SECS")
            .ok()
            .and_then(|v| v.parse().ok())
            .map(Duration::from_secs)
            .unwrap_or(Duration::from_secs(120));
        let mut last_err = String::new();
        for _attempt in 0..3 {
            let port = free_port().map_err(|e| e.0)?;
            match Self::spawn_once(&bin, &spec, port, mode, trailing, timeout) {
                Ok(p) => return Ok(p),
                Err((e, retry)) => {
                    last_err = e;
                    if !retry {
                        break;
                    }
                }
            }
        }
        Err(last_err)
    }

    fn spawn_once(
        bin: &Path,
        spec: &Path,
        port: u16,
        mode: &[&str],
        trailing: &[&str],
        timeout: Duration,
    ) -> Result<Prism, (String, bool)> {
        let port_s = port.to_string();
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(WRAPPER)
            .arg("bootstrap-prism")
            .arg(bin)
            .args(mode);
        cmd.args(["-h", "127.0.0.1", "-p", &port_s])
            .arg(spec)
            .args(trailing);
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .map_err(|e| (format!("cannot run sh to start Prism: {e}"), false))?;
        let lines = Arc::new(Mutex::new(Vec::new()));
        let echo = std::env::var_os("BOOTSTRAP_PRISM_ECHO").is_some();
        let mut readers = vec![];
        if let Some(out) = child.stdout.take() {
            readers.push(spawn_reader(out, lines.clone(), echo));
        }
        if let Some(err) = child.stderr.take() {
            readers.push(spawn_reader(err, lines.clone(), echo));
        }
        let stdin = child.stdin.take();
        let mut prism = Prism {
            child: Some(child),
            stdin,
            pid: None,
            port,
            spec: spec.to_path_buf(),
            lines,
            readers,
        };
        let deadline = Instant::now() + timeout;
        loop {
            if prism.pid.is_none() {
                prism.pid = prism.log_lines().iter().find_map(|l| {
                    l.strip_prefix("bootstrap-prism-wrapper: pid ")
                        .and_then(|p| p.trim().parse().ok())
                });
            }
            let log = prism.log_lines();
            let listening = log.iter().any(|l| l.contains(READY_LINE));
            if listening && std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Ok(prism);
            }
            let exited = log.iter().any(|l| l.contains(EXITED_LINE))
                || prism
                    .child
                    .as_mut()
                    .is_some_and(|c| matches!(c.try_wait(), Ok(Some(_))));
            if exited || Instant::now() > deadline {
                let tail = log
                    .iter()
                    .rev()
                    .take(25)
                    .rev()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join("\n");
                let retry = tail.contains("EADDRINUSE");
                let why = if exited {
                    "exited before it was ready"
                } else {
                    "did not become ready in time"
                };
                return Err((
                    format!(
                        "Prism ({}) {why} serving {} on 127.0.0.1:{port}; last output:\n{tail}",
                        bin.display(),
                        spec.display()
                    ),
                    retry,
                ));
                // `prism` is dropped here, which stops whatever is left.
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Where Prism is: `BOOTSTRAP_PRISM`, `prism` on `PATH`,
    /// `/opt/bootstrap-ci/prism/node_modules/.bin/prism`, `/tmp/prism/node_modules/.bin/prism`.
    pub fn binary() -> Result<PathBuf, String> {
        if let Some(p) = std::env::var_os("BOOTSTRAP_PRISM").filter(|p| !p.is_empty()) {
            let p = PathBuf::from(p);
            return if p.is_file() {
                Ok(p)
            } else {
                Err(format!("BOOTSTRAP_PRISM={} does not exist", p.display()))
            };
        }
        if let Some(path) = std::env::var_os("PATH") {
            for dir in std::env::split_paths(&path) {
                let c = dir.join("prism");
                if c.is_file() {
                    return Ok(c);
                }
            }
        }
        for c in [
            "/opt/bootstrap-ci/prism/node_modules/.bin/prism",
            "/tmp/prism/node_modules/.bin/prism",
        ] {
            if Path::new(c).is_file() {
                return Ok(PathBuf::from(c));
            }
        }
        Err(
            "Prism not found: set BOOTSTRAP_PRISM, put `prism` on PATH, or install it with \
             `npm i @stoplight/prism-cli@5.16.0` in /opt/bootstrap-ci/prism (Node 20)"
                .to_string(),
        )
    }

    /// Whether a Prism binary can be found.
    pub fn available() -> bool {
        Self::binary().is_ok()
    }

    /// Base URL, `http://127.0.0.1:PORT` (the documents' paths follow directly, e.g. `/servers`).
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The port Prism listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Prism's process id (node), if the wrapper reported it.
    pub fn pid(&self) -> Option<u32> {
        self.pid
    }

    /// The document Prism serves.
    pub fn spec_path(&self) -> &Path {
        &self.spec
    }

    /// Every line Prism printed so far (stdout and stderr interleaved as read).
    pub fn log_lines(&self) -> Vec<String> {
        self.lines.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// How many lines were printed so far; a mark for [`Prism::violations_since`].
    pub fn log_len(&self) -> usize {
        self.lines.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Every violation line: "did not pass the validation rules", `[VALIDATOR]` errors, and
    /// `Violation:` lines (proxy mode), without the document's unmatched-`4xx` noise.
    pub fn violations(&self) -> Vec<String> {
        self.violations_since(0)
    }

    /// Violation lines printed after the mark `from` (see [`Prism::log_len`]).
    pub fn violations_since(&self, from: usize) -> Vec<String> {
        let lines = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        lines
            .iter()
            .skip(from)
            .filter(|l| is_violation(l))
            .cloned()
            .collect()
    }

    /// Violations with the request each belongs to (the last `[HTTP SERVER] ... Request received`
    /// before it), without the "did not pass the validation rules" summary lines. Exact only when
    /// requests do not overlap in time.
    pub fn violation_report(&self, from: usize) -> Vec<Violation> {
        let lines = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        let mut current = String::new();
        let mut out = vec![];
        for l in lines.iter().skip(from) {
            if let Some(rest) = l.split("[HTTP SERVER] ").nth(1) {
                if rest.contains("Request received") {
                    current = rest.split(" ℹ").next().unwrap_or("").trim().to_string();
                }
                continue;
            }
            if is_violation(l) && !l.contains("did not pass the validation rules") {
                out.push(Violation {
                    request: current.clone(),
                    message: violation_message(l),
                });
            }
        }
        out
    }

    /// Blocks until at least `n` lines were printed or `timeout` passed (Prism writes its log
    /// asynchronously; call this before reading violations right after a request).
    pub fn wait_for_log(&self, n: usize, timeout: Duration) -> bool {
        let end = Instant::now() + timeout;
        while Instant::now() < end {
            if self.log_len() >= n {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.log_len() >= n
    }

    /// Blocks until a line containing `needle` appears after the mark `from`.
    pub fn wait_for_line(&self, from: usize, needle: &str, timeout: Duration) -> bool {
        let end = Instant::now() + timeout;
        loop {
            if self
                .lines
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .skip(from)
                .any(|l| l.contains(needle))
            {
                return true;
            }
            if Instant::now() > end {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops Prism now (also done on Drop).
    pub fn stop(&mut self) {
        // Closing the pipe makes the wrapper's watchdog kill Prism; the wrapper then exits.
        drop(self.stdin.take());
        if let Some(mut child) = self.child.take() {
            let end = Instant::now() + Duration::from_secs(10);
            loop {
                match child.try_wait() {
                    Ok(Some(_)) => break,
                    Ok(None) if Instant::now() < end => {
                        std::thread::sleep(Duration::from_millis(25))
                    }
                    _ => {
                        if let Some(pid) = self.pid {
                            let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
                        }
                        let _ = child.kill();
                        let _ = child.wait();
                        break;
                    }
                }
            }
        }
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
    }
}

impl Drop for Prism {
    fn drop(&mut self) {
        self.stop();
    }
}

fn is_violation(l: &str) -> bool {
    if l.contains("did not pass the validation rules") {
        return true;
    }
    if !l.contains("[VALIDATOR]") {
        return false;
    }
    if l.contains("Unable to match the returned status code") {
        return false;
    }
    l.contains('✖') || l.contains(" error ") || l.contains("Violation:")
}

fn violation_message(l: &str) -> String {
    let after = l.split("[VALIDATOR]").nth(1).unwrap_or(l);
    let after = after.trim_start_matches(|c: char| !c.is_ascii_alphabetic());
    let after = after
        .strip_prefix("error")
        .or_else(|| after.strip_prefix("warning"))
        .unwrap_or(after);
    after.trim().to_string()
}

fn spawn_reader<R: Read + Send + 'static>(
    r: R,
    lines: Arc<Mutex<Vec<String>>>,
    echo: bool,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut r = BufReader::new(r);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match r.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let line = String::from_utf8_lossy(&buf)
                        .trim_end_matches(['\r', '\n'])
                        .to_string();
                    if echo {
                        eprintln!("[prism] {line}");
                    }
                    lines.lock().unwrap_or_else(|e| e.into_inner()).push(line);
                }
            }
        }
    })
}

fn free_port() -> Result<u16, (String, bool)> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")
        .map_err(|e| (format!("bind 127.0.0.1:0: {e}"), false))?;
    l.local_addr()
        .map(|a| a.port())
        .map_err(|e| (format!("local_addr: {e}"), false))
}

pub use crate::support::specs_dir;

pub use crate::support::{HttpReply, http};

#[cfg(test)]
mod self_tests {
    use super::*;

    const BEARER: (&str, &str) = ("Authorization", "Bearer test-token");

    #[test]
    fn validates_hetzner_requests() {
        let prism = Prism::start("hetzner-cloud.json");
        let pid = prism.pid().expect("wrapper reports the pid");
        let url = prism.url();

        let HttpReply { status, body, .. } =
            http(&url, "GET", "/ssh_keys", &[BEARER], None).unwrap();
        assert_eq!(status, 200, "{body}");
        assert!(body.contains("\"ssh_keys\""), "{body}");
        let HttpReply { status, .. } = http(&url, "GET", "/ssh_keys", &[], None).unwrap();
        assert_eq!(status, 401, "no token");

        let mark = prism.log_len();
        let HttpReply { status, body, .. } =
            http(&url, "POST", "/ssh_keys", &[BEARER], Some(r#"{"name": 5}"#)).unwrap();
        assert_eq!(status, 422, "{body}");
        assert!(body.contains("public_key"), "{body}");
        assert!(prism.wait_for_line(
            mark,
            "Request terminated with error",
            Duration::from_secs(10)
        ));
        let v = prism.violations_since(mark);
        assert!(
            v.iter()
                .any(|l| l.contains("did not pass the validation rules")),
            "{v:#?}"
        );
        assert!(
            v.iter()
                .any(|l| l.contains("must have required property 'public_key'")),
            "{v:#?}"
        );
        let report = prism.violation_report(mark);
        assert_eq!(
            report,
            vec![
                Violation {
                    request: "post /ssh_keys".into(),
                    message: "Request body must have required property 'public_key'".into()
                },
                Violation {
                    request: "post /ssh_keys".into(),
                    message: "Request body property name must be string".into()
                },
            ]
        );

        // a valid POST passes and leaves no violation
        let mark = prism.log_len();
        let HttpReply { status, body, .. } = http(
            &url,
            "POST",
            "/ssh_keys",
            &[BEARER],
            Some(r#"{"name": "k", "public_key": "ssh-ed25519 AAAA k"}"#),
        )
        .unwrap();
        assert_eq!(status, 201, "{body}");
        assert!(prism.wait_for_line(mark, "Responding with \"201\"", Duration::from_secs(10)));
        assert!(
            prism.violations_since(mark).is_empty(),
            "{:#?}",
            prism.violations_since(mark)
        );
        assert!(prism.violations().len() >= 3);

        // Drop stops Prism (and nothing is left listening)
        let port = prism.port();
        drop(prism);
        assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "prism (pid {pid}) still running"
        );
    }

    #[test]
    fn proxy_mode_validates_the_upstream_too() {
        // Prism in front of the stateful fake: requests and the fake's responses are validated.
        let fake = fakecloud::hetzner::FakeHetzner::start_default();
        let prism = Prism::start_proxy("hetzner-cloud.json", &fake.url());
        let url = prism.url();
        let mark = prism.log_len();
        let HttpReply { status, body, .. } = http(
            &url,
            "POST",
            "/servers",
            &[BEARER],
            Some(r#"{"name":"web1","server_type":"cx22","image":"ubuntu-24.04","location":"fsn1","labels":{"managed-by":"bootstrap"}}"#),
        )
        .unwrap();
        assert_eq!(status, 201, "{body}");
        assert!(
            body.contains("\"initializing\""),
            "the fake answered: {body}"
        );
        let HttpReply { status, .. } = http(
            &url,
            "GET",
            "/servers?label_selector=managed-by%3Dbootstrap",
            &[BEARER],
            None,
        )
        .unwrap();
        assert_eq!(status, 200);
        assert!(prism.wait_for_line(mark, "has returned 200", Duration::from_secs(10)));
        std::thread::sleep(Duration::from_millis(300));
        assert!(
            prism.violations_since(mark).is_empty(),
            "{:#?}",
            prism.violations_since(mark)
        );
        // an invalid request is forwarded (the fake answers 422) and reported
        let mark = prism.log_len();
        let HttpReply { status, .. } =
            http(&url, "POST", "/ssh_keys", &[BEARER], Some(r#"{"name": 5}"#)).unwrap();
        assert_eq!(status, 422);
        assert!(prism.wait_for_line(mark, "Violation: request.body", Duration::from_secs(10)));
        assert_eq!(fake.request_log().len(), 3);
    }

    #[test]
    fn shared_instance_is_reused() {
        let a = Prism::shared("hetzner-cloud.json");
        let b = Prism::shared("hetzner-cloud.json");
        assert!(std::ptr::eq(a, b));
        let HttpReply { status, body, .. } =
            http(&a.url(), "GET", "/actions/42", &[BEARER], None).unwrap();
        assert_eq!(status, 200);
        // Prism answers the document's example: a `running` action that never finishes.
        assert!(body.contains("\"status\":\"running\""), "{body}");
    }

    #[test]
    fn missing_document_is_a_clear_error() {
        if !Prism::available() {
            return;
        }
        let e = Prism::try_start("no-such-document.json")
            .err()
            .expect("error");
        assert!(
            e.contains("no-such-document.json") && e.contains("BOOTSTRAP_SPECS_DIR"),
            "{e}"
        );
    }
}
