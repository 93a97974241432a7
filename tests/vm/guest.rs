//! A deployment `create` made, reached in its VM: `bootstrap verify` and `bootstrap ssh` with
//! `--host 127.0.0.1 --port P`, and root commands over the system `ssh` with the deployment's
//! pinned host key and its sudo password (on sudo's stdin only).

use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::machine::Vm;
use crate::support::{Bin, Run};

/// The admin user every VM test creates (the default).
pub const ADMIN: &str = "admin";

/// One deployment in the state dir of `bin`.
pub struct Deployment {
    /// The binary's environment (state dir, credentials of the fake).
    pub bin: Bin,
    /// `hetzner`, `aws`.
    pub provider: &'static str,
    /// Deployment name.
    pub name: &'static str,
}

/// How the host reaches the guest's sshd.
#[derive(Clone, Debug)]
pub enum Reach {
    /// QEMU's forward of guest TCP 22 on 127.0.0.1:port.
    Forward(u16),
    /// Through the WireGuard tunnel, from the network namespace of this process (pid), to the
    /// deployment's tunnel address (the one in its state).
    #[cfg_attr(not(feature = "aws"), allow(dead_code))]
    Tunnel(u32, String),
}

impl Reach {
    /// The command, run inside the tunnel's network namespace when there is one.
    fn command(&self, program: &std::ffi::OsStr) -> Command {
        match self {
            Reach::Forward(_) => Command::new(program),
            Reach::Tunnel(pid, _) => {
                let mut c = Command::new("nsenter");
                c.arg("-t")
                    .arg(pid.to_string())
                    .arg("-n")
                    .arg("--")
                    .arg(program);
                c
            }
        }
    }
}

/// A `verify --output json` checklist.
pub struct Checklist {
    /// The whole document.
    pub doc: Value,
}

impl Checklist {
    /// (id, status, detail) of each check, in order.
    pub fn checks(&self) -> Vec<(String, String, String)> {
        self.doc["checks"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|c| {
                        (
                            c["id"].as_str().unwrap_or_default().to_owned(),
                            c["status"].as_str().unwrap_or_default().to_owned(),
                            c["detail"].as_str().unwrap_or_default().to_owned(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The detail of check `id`.
    pub fn detail(&self, id: &str) -> String {
        self.checks()
            .into_iter()
            .find(|(i, _, _)| i == id)
            .map(|(_, _, d)| d)
            .unwrap_or_else(|| panic!("no check {id} in {:#}", self.doc))
    }

    /// Prints the checklist and asserts: every check passed, none skipped.
    #[track_caller]
    pub fn assert_all_passed(&self, when: &str) {
        let checks = self.checks();
        eprintln!("verify {when}: {} checks", checks.len());
        for (id, status, detail) in &checks {
            eprintln!("  {status:4} {id}: {detail}");
        }
        let bad: Vec<&(String, String, String)> =
            checks.iter().filter(|(_, s, _)| s != "pass").collect();
        assert!(
            !checks.is_empty()
                && bad.is_empty()
                && self.doc["failed"] == 0
                && self.doc["skipped"] == 0,
            "verify {when}: not every check passed: {bad:?}"
        );
    }
}

impl Deployment {
    /// The deployment's state dir.
    pub fn dir(&self) -> PathBuf {
        self.bin.state_dir().join(self.provider).join(self.name)
    }

    /// `bootstrap ARGS`.
    pub fn run(&self, args: &[&str]) -> Run {
        self.bin.run(args)
    }

    /// `bootstrap VERB NAME ARGS` where `reach` works (inside the tunnel's namespace for a
    /// tunnel), with `--host 127.0.0.1 --port P` added for a forward.
    pub fn run_at(&self, reach: &Reach, args: &[&str]) -> Run {
        let mut c = reach.command(env!("CARGO_BIN_EXE_bootstrap").as_ref());
        // `VERB NAME [--host 127.0.0.1 --port P] REST...`: before any `--`.
        let (head, rest) = args.split_at(args.len().min(2));
        c.args(head);
        if let Reach::Forward(p) = reach {
            c.args(["--host", "127.0.0.1", "--port", &p.to_string()]);
        }
        c.args(rest);
        c.env_clear();
        for k in ["PATH", "LANG"] {
            if let Ok(v) = std::env::var(k) {
                c.env(k, v);
            }
        }
        c.env("HOME", self.bin.dir.path());
        for (k, v) in self.bin.envs() {
            c.env(k, v);
        }
        Run(c.output().expect("run bootstrap"))
    }

    /// `bootstrap verify NAME --output json` over `reach`, with `extra` flags.
    pub fn verify(&self, reach: &Reach, extra: &[&str]) -> (Run, Checklist) {
        // A first boot under software emulation on a busy 2-core machine took 15 to 30+ min
        // (apt under TCG); --timeout bounds verify's wait for SSH and for boot-finished.
        let mut args = vec!["verify", self.name, "--output", "json", "--timeout", "75m"];
        args.extend(extra);
        let r = self.run_at(reach, &args);
        let doc = serde_json::from_str(&r.stdout()).unwrap_or_else(|e| {
            panic!(
                "verify printed no JSON ({e}):\n{}\n{}",
                r.stdout(),
                r.stderr()
            )
        });
        (r, Checklist { doc })
    }

    /// The system `ssh` as the admin with the pinned key over `reach` (the options `bootstrap
    /// ssh` uses).
    pub fn ssh_command(&self, reach: &Reach) -> Command {
        let dir = self.dir();
        let (host, port) = match reach {
            Reach::Forward(p) => ("127.0.0.1".to_owned(), *p),
            Reach::Tunnel(_, addr) => (addr.clone(), 22),
        };
        let mut c = reach.command("ssh".as_ref());
        c.args(["-F", "/dev/null", "-i"])
            .arg(dir.join("id_ed25519"))
            .arg("-p")
            .arg(port.to_string())
            .arg("-o")
            .arg(format!(
                "UserKnownHostsFile={}",
                dir.join("known_hosts").display()
            ))
            .args([
                "-o",
                "GlobalKnownHostsFile=/dev/null",
                "-o",
                "StrictHostKeyChecking=yes",
                "-o",
                &format!("HostKeyAlias={}", self.name),
                "-o",
                "IdentitiesOnly=yes",
                "-o",
                "BatchMode=yes",
                "-o",
                "ConnectTimeout=20",
                "-o",
                "LogLevel=ERROR",
                "-l",
                ADMIN,
                &host,
            ]);
        c
    }

    /// Runs `script` as root in the guest (sudo with the deployment's password); (exit code,
    /// stdout, stderr).
    pub fn root(&self, reach: &Reach, script: &str) -> (i32, String, String) {
        let password = std::fs::read_to_string(self.dir().join("sudo-password"))
            .expect("the sudo password create kept");
        let mut c = self.ssh_command(reach);
        c.arg(
            "IFS= read -r p; { printf '%s\\n' \"$p\"; unset p; exec cat; } | sudo -S -k -p '' sh -s",
        )
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        let mut child = c.spawn().expect("ssh");
        {
            let mut stdin = child.stdin.take().expect("piped stdin");
            let _ = stdin.write_all(password.trim_end().as_bytes());
            let _ = stdin.write_all(b"\n");
            let _ = stdin.write_all(script.as_bytes());
        }
        let out = wait_output(child, Duration::from_secs(600));
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Reboots the guest and waits until its sshd went away (the next `verify` waits for it to
    /// come back).
    pub fn reboot(&self, vm: &mut Vm, reach: &Reach) {
        let (code, out, err) = self.root(reach, "systemd-run --on-active=2 systemctl reboot\n");
        assert_eq!(code, 0, "scheduling the reboot: {out}{err}");
        vm.wait_ssh_gone(Duration::from_secs(300));
    }
}

/// Waits for a child with a limit (its pipes drained meanwhile); kills it when the limit passes.
pub fn wait_output(mut child: std::process::Child, limit: Duration) -> std::process::Output {
    fn drain<R: std::io::Read + Send + 'static>(r: Option<R>) -> std::thread::JoinHandle<Vec<u8>> {
        std::thread::spawn(move || {
            let mut v = Vec::new();
            if let Some(mut r) = r {
                let _ = r.read_to_end(&mut v);
            }
            v
        })
    }
    let out = drain(child.stdout.take());
    let err = drain(child.stderr.take());
    let end = std::time::Instant::now() + limit;
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) if std::time::Instant::now() < end => {
                std::thread::sleep(Duration::from_millis(200));
            }
            _ => {
                let _ = child.kill();
                break child.wait().expect("wait");
            }
        }
    };
    std::process::Output {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    }
}
