//! Every `bootstrap ...` line of the README's code blocks runs as written, through bash, against
//! the fakes (AWS: moto). Each code block is a fresh world; a block that uses a deployment it
//! does not create gets `web1` made first. The only rewrites: the fixed ports the "try it"
//! blocks start `fakecloud` on are the test's fakes, and `export VAR=...` lines (your real
//! credentials) are skipped because the test sets them. The named exceptions need a real server
//! to log in to: `bootstrap verify` and `bootstrap ssh` (the verify tests run them against a
//! stand-in server built from the user-data).

use std::path::Path;
use std::process::{Command, Stdio};

use crate::scenario::Cloud;
use crate::scenario::digitalocean::DigitalOcean;
use crate::scenario::hetzner::Hetzner;
use crate::scenario::scaleway::Scaleway;
use crate::support::Bin;

/// Lines that need a reachable server, by their command.
const NEEDS_A_SERVER: &[&str] = &["bootstrap verify", "bootstrap ssh"];

/// The README's code blocks, each as its lines.
fn blocks() -> Vec<Vec<String>> {
    let text =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let mut out = Vec::new();
    let mut cur: Option<Vec<String>> = None;
    for line in text.lines() {
        if line.starts_with("```") {
            match cur.take() {
                Some(b) => out.push(b),
                None => cur = Some(Vec::new()),
            }
        } else if let Some(b) = cur.as_mut() {
            b.push(line.to_owned());
        }
    }
    out.into_iter()
        .filter(|b| b.iter().any(|l| is_command(l)))
        .collect()
}

fn is_command(line: &str) -> bool {
    line.split_whitespace()
        .find(|w| !w.contains('=') || w.starts_with('-'))
        == Some("bootstrap")
        || line.starts_with("mkdir ")
}

/// The provider a line talks to.
fn provider_of(line: &str) -> &'static str {
    for p in ["digitalocean", "scaleway", "aws"] {
        if line.contains(&format!("--provider {p}")) {
            return p;
        }
    }
    "hetzner"
}

/// Runs `line` in bash with the binary first on PATH, `env` set, and `stdin` on a terminal
/// when given (for destroy's prompt).
fn sh(b: &Bin, env: &[(String, String)], line: &str, stdin: Option<&str>) -> (i32, String) {
    let bin_dir = b.dir.path().join("bin");
    std::fs::create_dir_all(&bin_dir).unwrap();
    let link = bin_dir.join("bootstrap");
    if !link.exists() {
        std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_bootstrap"), &link).unwrap();
    }
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut c = match stdin {
        // `script` gives the line a terminal, so destroy asks and reads the name.
        Some(_) => {
            let mut c = Command::new("script");
            c.args(["-qec", line, "/dev/null"]);
            c
        }
        None => {
            let mut c = Command::new("bash");
            c.args(["--noprofile", "--norc", "-c", line]);
            c
        }
    };
    c.env_clear()
        .env("PATH", path)
        .env("HOME", b.dir.path())
        .env("MANPAGER", "cat")
        .env("BOOTSTRAP_STATE_DIR", b.state_dir())
        .env("BOOTSTRAP_RETRY_BASE_MS", "20")
        .env("BOOTSTRAP_POLL_MS", "20");
    for (k, v) in env {
        c.env(k, v);
    }
    c.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    {
        use std::io::Write as _;
        let mut i = child.stdin.take().unwrap();
        if let Some(s) = stdin {
            // After the prompt is up: the terminal would drop input typed before it.
            std::thread::sleep(std::time::Duration::from_millis(1500));
            let _ = i.write_all(s.as_bytes());
        }
    }
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn every_readme_command_runs_as_written() {
    let mut ran = 0;
    let mut skipped = Vec::new();
    for block in blocks() {
        let hz = Hetzner::start();
        let dox = DigitalOcean::start();
        let scw = Scaleway::start();
        #[cfg(feature = "aws")]
        let aws = crate::scenario::aws::Aws::start();
        // AWS's default engine is Data Lifecycle Manager, which moto lacks: the DLM fake.
        #[cfg(feature = "aws")]
        let dlm = crate::dlm_fake::FakeDlm::start();
        // Credentials and endpoints as a user's shell would have them (the fakes accept any).
        let b = Bin::new();
        let mut env: Vec<(String, String)> = Vec::new();
        #[allow(unused_mut)] // pushed to only with the aws feature
        let mut clouds: Vec<&dyn Cloud> = vec![&hz, &dox, &scw];
        #[cfg(feature = "aws")]
        clouds.push(&aws);
        for c in clouds {
            for (k, v) in c.bin().envs() {
                if !k.starts_with("BOOTSTRAP_STATE") && !env.iter().any(|(x, _)| *x == k) {
                    env.push((k, v));
                }
            }
            let flags = c.connect_flags();
            if let Some(i) = flags.iter().position(|f| f == "--endpoint") {
                env.push((
                    format!("BOOTSTRAP_{}_ENDPOINT", c.provider().to_ascii_uppercase()),
                    flags[i + 1].clone(),
                ));
            }
        }
        #[cfg(feature = "aws")]
        env.push(("BOOTSTRAP_AWS_DLM_ENDPOINT".into(), dlm.url()));
        env.retain(|(k, _)| k != "HCLOUD_TOKEN");
        env.push(("HCLOUD_TOKEN".into(), "anything".into()));
        let commands: Vec<&String> = block.iter().filter(|l| is_command(l)).collect();
        let first_creates = commands.iter().any(|l| l.contains("bootstrap create"));
        if !first_creates && commands.iter().any(|l| l.contains("web1")) {
            let (code, out) = sh(
                &b,
                &env,
                "bootstrap create --provider hetzner --name web1 --ssh-from 203.0.113.7/32",
                None,
            );
            assert_eq!(code, 0, "setup: {out}");
        }
        for line in commands {
            let line = line
                .replace("http://127.0.0.1:8080/v1", &hz.0.url())
                .replace("http://127.0.0.1:8081", &dox.0.url());
            if NEEDS_A_SERVER
                .iter()
                .any(|n| line.trim_start().starts_with(n))
            {
                skipped.push(line.clone());
                continue;
            }
            if provider_of(&line) == "aws" && !cfg!(feature = "aws") {
                skipped.push(format!("{line} (built without aws)"));
                continue;
            }
            let confirm =
                (line.contains("bootstrap destroy") && !line.contains("--yes")).then(|| {
                    line.split_whitespace()
                        .skip_while(|w| *w != "destroy")
                        .nth(1)
                        .map(|n| format!("{n}\n"))
                        .unwrap_or_default()
                });
            let (code, out) = sh(&b, &env, &line, confirm.as_deref());
            assert_eq!(code, 0, "README line failed: {line}\n{out}");
            ran += 1;
        }
    }
    assert!(ran >= 18, "ran {ran} lines, skipped {skipped:?}");
    assert!(
        skipped
            .iter()
            .all(|s| NEEDS_A_SERVER.iter().any(|n| s.starts_with(n))
                || s.ends_with("(built without aws)")),
        "{skipped:?}"
    );
}
