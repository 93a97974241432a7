//! Running the real `bootstrap` binary in a clean environment: its own state dir, no token
//! leaking in from the developer's shell, fast retries and polling.

#![allow(dead_code)]

use std::io::Read as _;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::Duration;

/// A test's own directory and environment for the binary.
pub struct Bin {
    /// Temp dir holding the state dir and anything else the test writes.
    pub dir: tempfile::TempDir,
    envs: Vec<(String, String)>,
}

impl Bin {
    /// A fresh environment: state under a temp dir, a dummy token, quick retries and polls.
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut b = Self {
            dir,
            envs: Vec::new(),
        };
        let state = b.state_dir();
        b.env("BOOTSTRAP_STATE_DIR", state.to_str().expect("utf8"));
        b.env("HCLOUD_TOKEN", "test-token-not-secret");
        b.env("BOOTSTRAP_RETRY_MAX", "2");
        b.env("BOOTSTRAP_RETRY_BASE_MS", "20");
        b.env("BOOTSTRAP_POLL_MS", "20");
        b
    }

    /// Sets a variable for every run.
    pub fn env(&mut self, k: &str, v: &str) -> &mut Self {
        self.envs.retain(|(x, _)| x != k);
        self.envs.push((k.to_owned(), v.to_owned()));
        self
    }

    /// Removes a variable from the runs.
    pub fn unset(&mut self, k: &str) -> &mut Self {
        self.envs.retain(|(x, _)| x != k);
        self
    }

    /// The variables set for every run.
    pub fn envs(&self) -> Vec<(String, String)> {
        self.envs.clone()
    }

    /// The state dir the binary uses.
    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// Runs `bootstrap args...` and returns its output.
    pub fn run(&self, args: &[&str]) -> Run {
        let out = self.command(args).output().expect("run bootstrap");
        Run(out)
    }

    /// Starts `bootstrap args...` without waiting (stdout and stderr piped); the caller waits.
    pub fn spawn(&self, args: &[&str]) -> std::process::Child {
        self.command(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("start bootstrap")
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_bootstrap"));
        c.args(args).env_clear();
        for k in ["PATH", "LANG"] {
            if let Ok(v) = std::env::var(k) {
                c.env(k, v);
            }
        }
        c.env("HOME", self.dir.path());
        for (k, v) in &self.envs {
            c.env(k, v);
        }
        c
    }

    /// The generated private key of a deployment.
    pub fn key_path(&self, provider: &str, name: &str) -> PathBuf {
        self.state_dir()
            .join(provider)
            .join(name)
            .join("id_ed25519")
    }
}

/// A finished run.
pub struct Run(pub Output);

impl Run {
    /// Exit code.
    pub fn code(&self) -> i32 {
        self.0.status.code().unwrap_or(-1)
    }
    /// Stdout as text.
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.0.stdout).into_owned()
    }
    /// Stderr as text.
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.0.stderr).into_owned()
    }
    /// Panics with both streams unless the exit code is `code`.
    #[track_caller]
    pub fn expect_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code(),
            code,
            "exit code\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout(),
            self.stderr()
        );
        self
    }
}

/// The specs directory: `$BOOTSTRAP_SPECS_DIR`, else `../shared/specs` beside the repo.
pub use fakecloud::openapi::specs_dir;

/// An answer read by [`http`].
#[derive(Clone, Debug)]
pub struct HttpReply {
    /// Status code.
    pub status: u16,
    /// Headers, names as sent.
    pub headers: Vec<(String, String)>,
    /// Body text (de-chunked).
    pub body: String,
}

impl HttpReply {
    /// A header's value (case-insensitive name).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A minimal blocking HTTP/1.1 exchange (`Connection: close`) for tests. `body` is sent as
/// `application/json`.
pub fn http(
    base: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> std::io::Result<HttpReply> {
    use std::io::Write;
    let rest = base
        .strip_prefix("http://")
        .ok_or_else(|| std::io::Error::other("only http:// URLs"))?;
    let (hostport, prefix) = match rest.split_once('/') {
        Some((h, p)) => (h, format!("/{p}")),
        None => (rest, String::new()),
    };
    let mut s = std::net::TcpStream::connect(hostport)?;
    s.set_read_timeout(Some(Duration::from_secs(60)))?;
    let mut req = format!(
        "{method} {prefix}{path} HTTP/1.1\r\nHost: {hostport}\r\nConnection: close\r\nAccept: application/json\r\n"
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if let Some(b) = body {
        req.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            b.len()
        ));
    }
    req.push_str("\r\n");
    if let Some(b) = body {
        req.push_str(b);
    }
    s.write_all(req.as_bytes())?;
    let mut raw = vec![];
    s.read_to_end(&mut raw)?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "no response"))?;
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let hdrs = lines
        .filter_map(|l| {
            l.split_once(':')
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        })
        .collect();
    let mut body = raw[split + 4..].to_vec();
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    if chunked {
        body = dechunk(&body);
    }
    Ok(HttpReply {
        status,
        headers: hdrs,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = vec![];
    while let Some(eol) = b.windows(2).position(|w| w == b"\r\n") {
        let size = usize::from_str_radix(
            String::from_utf8_lossy(&b[..eol])
                .split(';')
                .next()
                .unwrap_or("")
                .trim(),
            16,
        )
        .unwrap_or(0);
        if size == 0 || b.len() < eol + 2 + size {
            break;
        }
        out.extend_from_slice(&b[eol + 2..eol + 2 + size]);
        b = &b[(eol + 4 + size).min(b.len())..];
    }
    out
}

/// `create --provider hetzner --endpoint URL --name NAME --ssh-from CIDR`: the arguments every
/// Hetzner test starts from; callers add their own flags.
pub fn hetzner_create<'a>(url: &'a str, name: &'a str, ssh_from: &'a str) -> Vec<&'a str> {
    vec![
        "create",
        "--provider",
        "hetzner",
        "--endpoint",
        url,
        "--name",
        name,
        "--ssh-from",
        ssh_from,
    ]
}

/// `destroy NAME --provider hetzner --endpoint URL --yes`.
pub fn hetzner_destroy<'a>(url: &'a str, name: &'a str) -> Vec<&'a str> {
    vec![
        "destroy",
        name,
        "--provider",
        "hetzner",
        "--endpoint",
        url,
        "--yes",
    ]
}

/// The arguments of the `bootstrap destroy ...` command an error message printed (between
/// backticks), without the leading `bootstrap`; `None` when there is none.
pub fn printed_destroy(err: &str) -> Option<Vec<String>> {
    let start = err.find("`bootstrap destroy ")? + 1;
    let end = start + err[start..].find('`')?;
    let words: Vec<String> = err[start..end]
        .split_whitespace()
        .map(|w| w.trim_matches('\'').to_owned())
        .collect();
    Some(words[1..].to_vec())
}

/// Decodes `application/x-www-form-urlencoded` text (and query strings): `+` is a space,
/// `%XX` a byte; a malformed escape stays as it is.
pub fn form_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(v) => {
                        out.push(v);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
