//! A local stand-in for a booted server, built from the user-data `create` sent, for `verify`,
//! `ssh` and known_hosts pinning tests. Everything runs for real, in namespaces of its own:
//!
//! - a server network + mount namespace: `/etc/ssh`, `/etc/fail2ban`, `/etc/apt`,
//!   `/etc/sudoers.d`, `/etc/wireguard`, apt's lists and cache and a tmpfs `/run` are the
//!   user-data's files laid out as cloud-init would (write_files, ssh_keys, the sudoers rule by
//!   cloud-init's own code), so `sudo sshd -T`, `fail2ban-client`, `apt-config` run by `verify`
//!   over SSH read exactly those; the rendered nftables ruleset and the network sysctls are loaded
//!   into that namespace's kernel state; sshd (port 22 of that namespace, unreachable from the
//!   machine's own network), fail2ban-server and (with `--vpn`) WireGuard (wireguard-go, as
//!   wg-quick falls back to it) run there;
//! - a client network namespace joined to it by a veth pair, from which the binary connects:
//!   its address 198.51.100.7 is in `--ssh-from`, 198.51.100.8 is not;
//! - the admin is a real user (password hash from `hashed_passwd`, key from
//!   `ssh_authorized_keys`, group sudo), removed afterwards.
//!
//! What is not real: there is no systemd and no cloud-init run (this machine has cloud-init
//! installed for the schema tests, but it never booted the target, so the target hides it and
//! verify reports those checks as skipped), apt's sources are a local file repository (so "pending security updates" is decided
//! by apt over a repository the test controls), and `kernel.*` sysctls are global to the machine:
//! they are set on this VM for the duration (and restored), as the server's runcmd would set them.
#![allow(dead_code)]

#[path = "../../crates/cloudinit/tests/support/mod.rs"]
mod hsupport;

use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

pub use hsupport::{ProcessGuard, Ran, UserGuard, require_tool, run};
use serde_json::Value;

use crate::support::{Bin, Run};

const MINUTE: Duration = Duration::from_secs(60);

/// The server's address on the link; the client's allowed and not-allowed addresses.
pub const SERVER_IP: &str = "198.51.100.1";
/// In `--ssh-from` (the tests pass `198.51.100.7/32`).
pub const CLIENT_IP: &str = "198.51.100.7";
/// Not in `--ssh-from`.
pub const STRANGER_IP: &str = "198.51.100.8";

/// How to deviate from the rendered configuration.
#[derive(Default)]
pub struct Weakening {
    /// Rewrites the sshd drop-in (e.g. turn passwords on).
    pub drop_in: Option<fn(&str) -> String>,
    /// An authorized key for root (so that a root login could succeed if sshd allowed it).
    pub root_key: Option<String>,
    /// Do not start fail2ban.
    pub no_fail2ban: bool,
    /// Do not load the nftables ruleset.
    pub no_firewall: bool,
    /// The apt repository offers a newer version of an installed package from a `-security`
    /// suite.
    pub security_update_pending: bool,
    /// The admin's sudoers rule says NOPASSWD although the deployment asked for a password.
    pub sudo_nopasswd: bool,
}

/// A network (and optionally mount) namespace held open by a `sleep`; every process in it is
/// killed when this is dropped.
pub struct Namespace {
    holder: ProcessGuard,
    pid: u32,
    mount: bool,
}

impl Namespace {
    fn new(mount: bool) -> Self {
        require_tool("unshare", "util-linux");
        require_tool("nsenter", "util-linux");
        let mut cmd = Command::new("unshare");
        cmd.arg("--net");
        if mount {
            cmd.args(["--mount", "--propagation", "private"]);
        }
        let child = cmd
            .args(["sleep", "100000"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let pid = child.id();
        let mut holder = ProcessGuard::new(child);
        // unshare(2) happens before exec: wait until the process is `sleep` in its own netns.
        let own = fs::read_link("/proc/self/ns/net").unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let comm = fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            let net = fs::read_link(format!("/proc/{pid}/ns/net")).ok();
            if comm.trim() == "sleep" && net.is_some_and(|n| n != own) {
                break;
            }
            assert!(holder.exited().is_none(), "unshare failed (needs root)");
            assert!(Instant::now() < deadline, "namespace did not come up");
            std::thread::sleep(Duration::from_millis(10));
        }
        Self { holder, pid, mount }
    }

    fn nsenter(&self) -> Command {
        let mut cmd = Command::new("nsenter");
        cmd.arg("-t").arg(self.pid.to_string()).arg("-n");
        if self.mount {
            cmd.arg("-m");
        }
        cmd.arg("--");
        cmd
    }

    /// Runs a shell script inside; panics with its output when it fails.
    pub fn sh(&self, script: &str) -> Ran {
        let ran = run(self.nsenter().args(["sh", "-c", script]), MINUTE);
        ran.assert_success();
        ran
    }

    /// Runs a shell script inside and returns what happened.
    pub fn try_sh(&self, script: &str, limit: Duration) -> Ran {
        run(self.nsenter().args(["sh", "-c", script]), limit)
    }

    /// A command that runs `program` inside.
    pub fn command(&self, program: &str) -> Command {
        let mut cmd = self.nsenter();
        cmd.arg(program);
        cmd
    }

    /// The holder's pid (for `ip link set ... netns PID`).
    pub fn pid(&self) -> u32 {
        self.pid
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        // Daemons that fork (wireguard-go, sshd's sessions) are found by their namespace.
        let Ok(ns) = fs::read_link(format!("/proc/{}/ns/net", self.pid)) else {
            return;
        };
        for _ in 0..3 {
            let mut found = false;
            for entry in fs::read_dir("/proc").into_iter().flatten().flatten() {
                let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
                    continue;
                };
                if pid == self.pid {
                    continue;
                }
                if fs::read_link(format!("/proc/{pid}/ns/net")).ok().as_ref() == Some(&ns) {
                    found = true;
                    let _ = Command::new("kill")
                        .args(["-KILL", &pid.to_string()])
                        .stderr(Stdio::null())
                        .status();
                }
            }
            if !found {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.holder.exited();
    }
}

/// `kernel.*` sysctls are global: set while any target lives, restored after the last one.
struct KernelSysctls;

static KERNEL_SYSCTLS: Mutex<(u32, Vec<(String, String)>)> = Mutex::new((0, Vec::new()));

impl KernelSysctls {
    fn apply(settings: &[(String, String)]) -> Self {
        let mut state = KERNEL_SYSCTLS.lock().unwrap_or_else(|e| e.into_inner());
        if state.0 == 0 {
            state.1.clear();
            for (k, v) in settings {
                let path = Path::new("/proc/sys").join(k.replace('.', "/"));
                let old = fs::read_to_string(&path).unwrap().trim().to_owned();
                state.1.push((k.clone(), old));
                fs::write(&path, v).unwrap_or_else(|e| panic!("cannot set {k}: {e}"));
            }
        }
        state.0 += 1;
        Self
    }
}

impl Drop for KernelSysctls {
    fn drop(&mut self) {
        let mut state = KERNEL_SYSCTLS.lock().unwrap_or_else(|e| e.into_inner());
        state.0 -= 1;
        if state.0 == 0 {
            for (k, v) in &state.1 {
                let _ = fs::write(Path::new("/proc/sys").join(k.replace('.', "/")), v);
            }
        }
    }
}

/// The stand-in server and the client namespace next to it.
pub struct Target {
    /// Scratch directory (root-owned, trusted by sshd's StrictModes).
    pub dir: tempfile::TempDir,
    /// Where the server's files are laid out.
    pub root: PathBuf,
    /// The user-data, parsed.
    pub doc: Value,
    /// The admin.
    pub admin: String,
    /// The server namespaces.
    pub server: Namespace,
    /// The client's network namespace.
    pub client: Namespace,
    /// The server's public IPv4 as the provider reported it, also on the server's link.
    pub public_ip: Option<String>,
    sshd: Option<ProcessGuard>,
    sshd_log: PathBuf,
    fail2ban: Option<ProcessGuard>,
    _user: UserGuard,
    _kernel: KernelSysctls,
}

static LINK: AtomicU32 = AtomicU32::new(0);

impl Target {
    /// Lays out `user_data` and starts the server. `public_ip` (the address `create` reported)
    /// is added to the server's link so that known_hosts entries and WireGuard endpoints for it
    /// work unchanged.
    pub fn start(user_data: &str, public_ip: Option<&str>, weak: &Weakening) -> Self {
        for (tool, pkg) in [
            ("ip", "iproute2"),
            ("nft", "nftables"),
            ("fail2ban-server", "fail2ban"),
            ("sudo", "sudo"),
            ("sysctl", "procps"),
            ("apt-get", "apt"),
        ] {
            require_tool(tool, pkg);
        }
        let doc: Value = serde_saphyr::from_str(user_data).unwrap();
        let dir = hsupport::scratch_dir();
        let root = dir.path().join("root");
        let admin = doc["users"][0]["name"].as_str().unwrap().to_owned();

        // /etc as cloud-init leaves it: the distribution's files, then write_files and ssh_keys.
        for (from, to) in [
            ("/etc/fail2ban", "etc/fail2ban"),
            ("/etc/apt", "etc/apt"),
            ("/etc/sudoers.d", "etc/sudoers.d"),
        ] {
            hsupport::copy_dir(Path::new(from), &root.join(to));
        }
        let ssh = root.join("etc/ssh");
        fs::create_dir_all(ssh.join("sshd_config.d")).unwrap();
        fs::copy(hsupport::PRISTINE_SSHD_CONFIG, ssh.join("sshd_config")).unwrap();
        hsupport::extract_write_files(&doc, &root);
        for (field, name, mode) in [
            ("ed25519_private", "ssh_host_ed25519_key", 0o600),
            ("ed25519_public", "ssh_host_ed25519_key.pub", 0o644),
        ] {
            let path = ssh.join(name);
            fs::write(&path, doc["ssh_keys"][field].as_str().unwrap()).unwrap();
            fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
        }
        if let Some(weaken) = weak.drop_in {
            let path = ssh.join("sshd_config.d/00-bootstrap-hardening.conf");
            let text = fs::read_to_string(&path).unwrap();
            fs::write(&path, weaken(&text)).unwrap();
        }
        fs::create_dir_all(root.join("etc/wireguard")).unwrap();
        fs::set_permissions(
            root.join("etc/wireguard"),
            fs::Permissions::from_mode(0o700),
        )
        .unwrap();

        // apt: a local repository instead of the network.
        let repo = dir.path().join("repo");
        fs::create_dir_all(&repo).unwrap();
        let mut packages = String::new();
        let suite = if weak.security_update_pending {
            let v = run(
                Command::new("dpkg-query").args(["-W", "-f", "${Version}", "openssh-client"]),
                MINUTE,
            );
            v.assert_success();
            let arch = run(Command::new("dpkg").arg("--print-architecture"), MINUTE);
            packages = format!(
                "Package: openssh-client\nVersion: {}+bootstrap1\nArchitecture: {}\nMaintainer: test <test@example.org>\nFilename: ./openssh-client.deb\nSize: 1\nSHA256: {}\nDescription: a pending security fix\n\n",
                v.stdout.trim(),
                arch.stdout.trim(),
                "0".repeat(64)
            );
            "bookworm-security"
        } else {
            "bookworm"
        };
        fs::write(repo.join("Packages"), packages).unwrap();
        fs::write(
            repo.join("Release"),
            format!("Origin: Debian\nSuite: {suite}\nCodename: {suite}\nArchitectures: amd64 arm64 all\nComponents: main\n"),
        )
        .unwrap();
        let apt = root.join("etc/apt");
        let _ = fs::remove_dir_all(apt.join("sources.list.d"));
        fs::create_dir_all(apt.join("sources.list.d")).unwrap();
        fs::write(
            apt.join("sources.list"),
            format!("deb [trusted=yes] file:{} ./\n", repo.display()),
        )
        .unwrap();
        for d in [
            "var/lib/apt/lists/partial",
            "var/cache/apt/archives/partial",
            "root-home/.ssh",
        ] {
            fs::create_dir_all(root.join(d)).unwrap();
        }
        for d in [repo.as_path(), dir.path()] {
            fs::set_permissions(d, fs::Permissions::from_mode(0o755)).unwrap();
        }
        fs::set_permissions(root.join("root-home"), fs::Permissions::from_mode(0o700)).unwrap();
        if let Some(key) = &weak.root_key {
            fs::write(
                root.join("root-home/.ssh/authorized_keys"),
                format!("{key}\n"),
            )
            .unwrap();
        }

        // The admin, as cloud-init's users module makes it.
        let user = UserGuard::create(&admin);
        run(
            Command::new("usermod").args(["-aG", "sudo", &admin]),
            MINUTE,
        )
        .assert_success();
        if let Some(hash) = doc["users"][0]["hashed_passwd"].as_str() {
            run(Command::new("usermod").args(["-p", hash, &admin]), MINUTE).assert_success();
        }
        let home = PathBuf::from(format!("/home/{admin}"));
        fs::create_dir_all(home.join(".ssh")).unwrap();
        let keys: String = doc["users"][0]["ssh_authorized_keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| format!("{}\n", k.as_str().unwrap()))
            .collect();
        fs::write(home.join(".ssh/authorized_keys"), keys).unwrap();
        run(
            Command::new("chown").args([
                "-R",
                &format!("{admin}:{admin}"),
                &format!("/home/{admin}/.ssh"),
            ]),
            MINUTE,
        )
        .assert_success();
        fs::set_permissions(home.join(".ssh"), fs::Permissions::from_mode(0o700)).unwrap();
        // The sudoers rule, written by cloud-init's own code.
        let rule = doc["users"][0]["sudo"].as_str().unwrap();
        let rule = if weak.sudo_nopasswd {
            rule.replace("ALL=(ALL:ALL) ALL", "ALL=(ALL:ALL) NOPASSWD:ALL")
        } else {
            rule.to_owned()
        };
        run(
            Command::new("/usr/bin/python3")
                .arg("-c")
                .arg(
                    "import sys\nfrom cloudinit.distros import debian\n\
                     d = debian.Distro('debian', {}, None)\n\
                     d.ensure_sudo_dir = lambda *a, **k: None\n\
                     d.write_sudo_rules(sys.argv[1], sys.argv[2], sudo_file=sys.argv[3])\n",
                )
                .args([&admin, &rule])
                .arg(root.join("etc/sudoers.d/90-cloud-init-users")),
            MINUTE,
        )
        .assert_success();

        // The namespaces, the link between them, the mounts.
        let server = Namespace::new(true);
        let client = Namespace::new(false);
        let n = LINK.fetch_add(1, Ordering::Relaxed);
        let (vs, vc) = (
            format!("bs{}{n}s", std::process::id() % 10000),
            format!("bs{}{n}c", std::process::id() % 10000),
        );
        run(
            Command::new("ip").args(["link", "add", &vs, "type", "veth", "peer", "name", &vc]),
            MINUTE,
        )
        .assert_success();
        run(
            Command::new("ip").args(["link", "set", &vs, "netns", &server.pid().to_string()]),
            MINUTE,
        )
        .assert_success();
        run(
            Command::new("ip").args(["link", "set", &vc, "netns", &client.pid().to_string()]),
            MINUTE,
        )
        .assert_success();
        let r = root.display();
        let mut setup = format!(
            "set -e\n\
             mount -t tmpfs -o mode=0755 tmpfs /run\n\
             mkdir -p -m 0755 /run/sshd /run/fail2ban\n\
             mount --bind {r}/etc/ssh /etc/ssh\n\
             mount --bind {r}/etc/fail2ban /etc/fail2ban\n\
             mount --bind {r}/etc/apt /etc/apt\n\
             mount --bind {r}/etc/sudoers.d /etc/sudoers.d\n\
             mkdir -p /etc/wireguard && mount --bind {r}/etc/wireguard /etc/wireguard\n\
             mount --bind {r}/var/lib/apt/lists /var/lib/apt/lists\n\
             mount --bind {r}/var/cache/apt /var/cache/apt\n\
             mount --bind {r}/root-home /root\n\
             if [ -e /usr/bin/cloud-init ]; then mount --bind /dev/null /usr/bin/cloud-init; fi\n\
             ip link set lo up\n\
             ip addr add {SERVER_IP}/24 dev {vs}\n\
             ip link set {vs} up\n"
        );
        if let Some(ip) = public_ip {
            setup.push_str(&format!("ip addr add {ip}/32 dev {vs}\n"));
        }
        server.sh(&setup);
        let mut setup = format!(
            "set -e\nip link set lo up\n\
             ip addr add {CLIENT_IP}/24 dev {vc}\n\
             ip addr add {STRANGER_IP}/24 dev {vc}\n\
             ip link set {vc} up\n"
        );
        if let Some(ip) = public_ip {
            setup.push_str(&format!("ip route add {ip}/32 dev {vc}\n"));
        }
        client.sh(&setup);

        // sysctl: network settings in the server's namespace, kernel ones on the machine.
        let sysctl =
            fs::read_to_string(root.join("etc/sysctl.d/90-bootstrap-hardening.conf")).unwrap();
        let settings: Vec<(String, String)> = sysctl
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .filter_map(|l| l.split_once(" = "))
            .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
            .collect();
        let net: String = settings
            .iter()
            .filter(|(k, _)| k.starts_with("net."))
            .map(|(k, v)| format!("{k} = {v}\n"))
            .collect();
        fs::write(dir.path().join("net-sysctl.conf"), net).unwrap();
        // Forwarding on first, as on an image (or a host running Docker) that had it on: turning
        // it off resets conf.all.accept_redirects, which the file must survive.
        server.sh(&format!(
            "sysctl -q -w net.ipv4.ip_forward=1 && sysctl -q -p {}/net-sysctl.conf",
            dir.path().display()
        ));
        let kernel = KernelSysctls::apply(
            &settings
                .into_iter()
                .filter(|(k, _)| k.starts_with("kernel."))
                .collect::<Vec<_>>(),
        );

        if !weak.no_firewall {
            server.sh(&format!("nft -f {r}/etc/nftables.conf"));
        }
        let mut target = Self {
            sshd_log: dir.path().join("sshd.log"),
            dir,
            root,
            doc,
            admin,
            server,
            client,
            public_ip: public_ip.map(str::to_owned),
            sshd: None,
            fail2ban: None,
            _user: user,
            _kernel: kernel,
        };
        if target.doc.pointer("/write_files").is_some_and(|w| {
            w.as_array()
                .unwrap()
                .iter()
                .any(|f| f["path"] == "/etc/wireguard/wg0.conf")
        }) {
            target.server.sh(
                "WG_QUICK_USERSPACE_IMPLEMENTATION=wireguard-go WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD=1 wg-quick up wg0 >/dev/null 2>&1",
            );
        }
        if !weak.no_fail2ban {
            target.start_fail2ban();
        }
        target.start_sshd();
        target
    }

    fn start_fail2ban(&mut self) {
        let log = self.dir.path().join("fail2ban.log");
        let child = self
            .server
            .command("fail2ban-server")
            .args(["-f", "-x", "--logtarget", "STDERR"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let guard = ProcessGuard::new(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ran = self
                .server
                .try_sh("fail2ban-client status sshd", Duration::from_secs(10));
            if ran.status.success() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "fail2ban did not start: {}\n{}",
                ran.all(),
                fs::read_to_string(&log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        self.fail2ban = Some(guard);
    }

    /// (Re)starts sshd exactly as configured: no command-line overrides.
    pub fn start_sshd(&mut self) {
        self.sshd = None;
        let child = self
            .server
            .command(hsupport::SSHD)
            .args(["-D", "-e"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(&self.sshd_log).unwrap())
            .spawn()
            .unwrap();
        let mut guard = ProcessGuard::new(child);
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let log = fs::read_to_string(&self.sshd_log).unwrap_or_default();
            if log.contains("Server listening on") {
                break;
            }
            assert!(guard.exited().is_none(), "sshd did not start:\n{log}");
            assert!(Instant::now() < deadline, "sshd did not start:\n{log}");
            std::thread::sleep(Duration::from_millis(25));
        }
        self.sshd = Some(guard);
    }

    /// sshd's log so far.
    pub fn sshd_log(&self) -> String {
        fs::read_to_string(&self.sshd_log).unwrap_or_default()
    }

    /// The host key file sshd serves (in the laid-out /etc/ssh).
    pub fn host_key_pub(&self) -> String {
        fs::read_to_string(self.root.join("etc/ssh/ssh_host_ed25519_key.pub")).unwrap()
    }

    /// Replaces the server's host key with a new one and has sshd reload it (SIGHUP).
    pub fn replace_host_key(&self) {
        let key = self.root.join("etc/ssh/ssh_host_ed25519_key");
        let _ = fs::remove_file(&key);
        let _ = fs::remove_file(key.with_extension("pub"));
        hsupport::ssh_keygen(&key, "impostor");
        self.server.sh("kill -HUP \"$(cat /run/sshd.pid)\"");
        std::thread::sleep(Duration::from_millis(500));
    }

    /// Runs the binary inside the client namespace, with `b`'s environment.
    pub fn bin(&self, b: &Bin, args: &[&str]) -> Run {
        let mut cmd = self.client.command(env!("CARGO_BIN_EXE_bootstrap"));
        cmd.args(args).env_clear();
        for k in ["PATH", "LANG"] {
            if let Ok(v) = std::env::var(k) {
                cmd.env(k, v);
            }
        }
        cmd.env("HOME", b.dir.path())
            .env("BOOTSTRAP_STATE_DIR", b.state_dir());
        Run(cmd.output().unwrap())
    }

    /// The system `ssh` from the client namespace with the given options.
    pub fn ssh(&self, args: &[&str]) -> Ran {
        let mut cmd = self.client.command("ssh");
        cmd.args([
            "-F",
            "/dev/null",
            "-o",
            "BatchMode=yes",
            "-o",
            "ConnectTimeout=5",
        ])
        .args(args);
        run(&mut cmd, MINUTE)
    }
}

/// `create` against the Hetzner fake; returns the user-data the fake received and the server's
/// IPv4 it reported.
pub fn create_on_fake(
    b: &Bin,
    fake: &fakecloud::hetzner::FakeHetzner,
    name: &str,
    admin: &str,
    extra: &[&str],
) -> (String, String) {
    let url = fake.url();
    let mut args = crate::support::hetzner_create(&url, name, "198.51.100.7/32");
    args.extend([
        "--admin-user",
        admin,
        "--image",
        "debian-12",
        "--output",
        "json",
    ]);
    args.extend(extra);
    let r = b.run(&args);
    r.expect_code(0);
    let out: Value = serde_json::from_str(&r.stdout()).unwrap();
    let id: u64 = out["server"]["id"].as_str().unwrap().parse().unwrap();
    let user_data = fake.server_user_data(id).expect("the fake keeps user_data");
    let ip = out["server"]["ipv4"].as_str().unwrap().to_owned();
    (user_data, ip)
}

/// A unique admin user name for one test.
pub fn admin_name() -> String {
    format!("bsv{}", hsupport::unique_suffix())
}
