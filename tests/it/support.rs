//! Running the real `bootstrap` binary in a clean environment: its own state dir, no token
//! leaking in from the developer's shell, fast retries and polling.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

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

    /// The state dir the binary uses.
    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// Runs `bootstrap args...` and returns its output.
    pub fn run(&self, args: &[&str]) -> Run {
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
        let out = c.output().expect("run bootstrap");
        Run(out)
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
pub fn specs_dir() -> PathBuf {
    match std::env::var_os("BOOTSTRAP_SPECS_DIR") {
        Some(d) if !d.is_empty() => d.into(),
        _ => Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/specs"),
    }
}
