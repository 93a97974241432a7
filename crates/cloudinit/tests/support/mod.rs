//! Helpers for the hardening tests: scratch directories sshd trusts, processes and users that are
//! always cleaned up, tools run with a time limit, and the rendered user-data laid out on disk.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::ffi::OsStr;
use std::fs;
use std::io::Write as _;
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bootstrap_cloudinit::{HardeningParams, HostKey, ImageProfile, Sudo, Template, render};
use serde_json::Value as Json;

/// The sshd binary: it must be started with an absolute path.
pub const SSHD: &str = "/usr/sbin/sshd";
/// Debian's pristine sshd_config, as shipped by openssh-server.
pub const PRISTINE_SSHD_CONFIG: &str = "/usr/share/openssh/sshd_config";

/// A short random-enough hex suffix, unique within the machine for this test run.
pub fn unique_suffix() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut x =
        nanos ^ (u64::from(std::process::id()) << 32) ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    // splitmix64 finaliser: spreads the bits so that two close clocks still differ.
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^= x >> 31;
    format!("{:08x}", x as u32)
}

/// True when sshd's StrictModes accepts files below `dir`: every directory up to `/` is owned by
/// root and not writable by group or others (so not `/tmp`).
fn trusted_by_sshd(dir: &Path) -> bool {
    dir.ancestors().all(|d| {
        fs::metadata(d)
            .map(|m| m.uid() == 0 && m.mode() & 0o022 == 0)
            .unwrap_or(false)
    })
}

/// A fresh directory (mode 0755, root-owned, trusted path) removed when dropped.
pub fn scratch_dir() -> tempfile::TempDir {
    let mut base = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    fs::create_dir_all(&base).unwrap();
    if !trusted_by_sshd(&base) {
        // Not /run: the hardening target mounts its own tmpfs over it.
        base = PathBuf::from("/var/lib/bootstrap-cloudinit-tests");
        fs::create_dir_all(&base).unwrap();
        fs::set_permissions(&base, fs::Permissions::from_mode(0o755)).unwrap();
    }
    assert!(
        trusted_by_sshd(&base),
        "{} and its parents must be root-owned and not group/world writable (sshd StrictModes)",
        base.display()
    );
    let dir = tempfile::Builder::new()
        .prefix("hardening-")
        .tempdir_in(&base)
        .unwrap();
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

/// What a finished command printed.
#[derive(Debug)]
pub struct Ran {
    /// How it exited.
    pub status: ExitStatus,
    /// Its standard output.
    pub stdout: String,
    /// Its standard error.
    pub stderr: String,
    /// The command line, for messages.
    pub command: String,
}

impl Ran {
    /// Standard output and error together, for searching and messages.
    pub fn all(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }

    /// Panics with everything the command printed unless it exited 0.
    pub fn assert_success(&self) -> &Self {
        assert!(
            self.status.success(),
            "`{}` failed ({}):\n--- stdout\n{}\n--- stderr\n{}",
            self.command,
            self.status,
            self.stdout,
            self.stderr
        );
        self
    }
}

/// Fails the test with an install hint when a tool is missing.
pub fn require_tool(program: &str, debian_package: &str) {
    let found = if program.contains('/') {
        Path::new(program).exists()
    } else {
        find_on_path(program).is_some()
    };
    assert!(
        found,
        "{program} not found: install it with `apt-get install -y {debian_package}`"
    );
}

/// Looks a program up on PATH.
pub fn find_on_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| {
            fs::metadata(candidate)
                .map(|m| m.is_file() && m.mode() & 0o111 != 0)
                .unwrap_or(false)
        })
}

/// Runs a command with no input and a time limit; output goes through files so nothing blocks.
pub fn run(cmd: &mut Command, limit: Duration) -> Ran {
    let dir = tempfile::tempdir().unwrap();
    let out_path = dir.path().join("stdout");
    let err_path = dir.path().join("stderr");
    let command = describe(cmd);
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(fs::File::create(&out_path).unwrap())
        .stderr(fs::File::create(&err_path).unwrap())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start `{command}`: {e}"));
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "`{command}` did not finish within {limit:?}:\n--- stdout\n{}\n--- stderr\n{}",
                fs::read_to_string(&out_path).unwrap_or_default(),
                fs::read_to_string(&err_path).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Ran {
        status,
        stdout: String::from_utf8_lossy(&fs::read(&out_path).unwrap()).into_owned(),
        stderr: String::from_utf8_lossy(&fs::read(&err_path).unwrap()).into_owned(),
        command,
    }
}

/// The command line as text.
fn describe(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(OsStr::to_string_lossy)
        .collect::<Vec<_>>()
        .join(" ")
}

/// A started process that is stopped (TERM, then KILL) and reaped when dropped, even on panic.
pub struct ProcessGuard {
    child: Child,
}

impl ProcessGuard {
    /// Takes ownership of a started child.
    pub fn new(child: Child) -> Self {
        Self { child }
    }

    /// The process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// The exit status if the process has already ended.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().unwrap()
    }
}

impl Drop for ProcessGuard {
    fn drop(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A local user created for a test and removed with its home when dropped, even on panic.
pub struct UserGuard {
    name: String,
}

impl UserGuard {
    /// Creates the user (with a home and bash, password locked like cloud-init's `lock_passwd`).
    pub fn create(name: &str) -> Self {
        require_tool("useradd", "passwd");
        // useradd takes a lock on /etc/passwd; another test may hold it for a moment.
        for attempt in 0.. {
            let ran = run(
                Command::new("useradd").args(["--create-home", "--shell", "/bin/bash", name]),
                Duration::from_secs(30),
            );
            if ran.status.success() {
                break;
            }
            assert!(
                attempt < 20 && ran.all().contains("lock"),
                "useradd {name} failed: {}",
                ran.all()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        Self {
            name: name.to_owned(),
        }
    }
}

impl Drop for UserGuard {
    fn drop(&mut self) {
        for _ in 0..20 {
            let status = Command::new("userdel")
                .args(["--remove", &self.name])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            // 0: done; 6: no such user; 12: home or mail spool not removable (already gone).
            if matches!(status.map(|s| s.code()), Ok(Some(0 | 6 | 12))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        eprintln!("warning: could not remove test user {}", self.name);
    }
}

/// A free TCP port on 127.0.0.1, as the kernel picks it.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Generates an ed25519 key pair with ssh-keygen; returns the private key path.
pub fn ssh_keygen(path: &Path, comment: &str) -> PathBuf {
    require_tool("ssh-keygen", "openssh-client");
    run(
        Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f"])
            .arg(path),
        Duration::from_secs(30),
    )
    .assert_success();
    path.to_path_buf()
}

/// A freshly generated host key, as `bootstrap create` makes one.
pub fn generated_host_key(name: &str) -> HostKey {
    let pair = bootstrap_keys::KeyPair::generate(&format!("bootstrap-host-{name}"));
    HostKey {
        private_openssh: pair.private_openssh().unwrap().to_string(),
        public_openssh: pair.public().to_openssh(),
    }
}

/// The test's default parameters: the networks from the brief, a reboot time, Ubuntu 24.04, a
/// generated host key and a generated sudo password (its hash).
pub fn test_params(admin: &str, public_key: &str) -> HardeningParams {
    HardeningParams {
        hostname: format!("test-{}", unique_suffix()),
        admin_user: admin.to_owned(),
        ssh_authorized_keys: vec![public_key.trim().to_owned()],
        ssh_from: vec![
            "198.51.100.7/32".parse().unwrap(),
            "2001:db8::/32".parse().unwrap(),
        ],
        reboot_time: "04:15".to_owned(),
        image: ImageProfile::for_image("ubuntu-24.04"),
        host_key: generated_host_key(admin),
        sudo: Sudo::Password {
            hash: bootstrap_keys::SudoPassword::generate()
                .sha512_crypt()
                .unwrap(),
        },
        docker: false,
        vpn: None,
        allow_tcp_forwarding: false,
    }
}

/// The embedded template rendered for a fresh admin and key, with its write_files laid out below
/// `root` as they would be on the server.
pub struct Rendered {
    /// Scratch directory holding everything below; removed on drop.
    pub dir: tempfile::TempDir,
    /// The admin user name (`bsadm` + random suffix).
    pub admin: String,
    /// The admin's private key.
    pub key: PathBuf,
    /// The admin's public key line.
    pub public_key: String,
    /// The parameters used.
    pub params: HardeningParams,
    /// The rendered user-data.
    pub user_data: String,
    /// The user-data written to a file.
    pub user_data_path: PathBuf,
    /// The user-data parsed back.
    pub doc: Json,
    /// Stand-in for `/` with the write_files in place.
    pub root: PathBuf,
}

impl Rendered {
    /// Renders with the default test parameters.
    pub fn new() -> Self {
        Self::with(|_| {})
    }

    /// Renders after `adjust` changed the default test parameters.
    pub fn with(adjust: impl FnOnce(&mut HardeningParams)) -> Self {
        let dir = scratch_dir();
        let admin = format!("bsadm{}", unique_suffix());
        let key = ssh_keygen(&dir.path().join("id_ed25519"), &format!("{admin}@test"));
        let public_key = fs::read_to_string(key.with_extension("pub")).unwrap();
        let mut params = test_params(&admin, &public_key);
        adjust(&mut params);
        let user_data = render(&Template::embedded(), &params).unwrap();
        let user_data_path = dir.path().join("user-data.yaml");
        fs::write(&user_data_path, &user_data).unwrap();
        let doc: Json = serde_saphyr::from_str(&user_data).unwrap();
        let root = dir.path().join("root");
        extract_write_files(&doc, &root);
        extract_host_keys(&doc, &root);
        Self {
            dir,
            admin,
            key,
            public_key,
            params,
            user_data,
            user_data_path,
            doc,
            root,
        }
    }

    /// Where a file from write_files landed.
    pub fn file(&self, absolute: &str) -> PathBuf {
        let path = self.root.join(absolute.trim_start_matches('/'));
        assert!(path.exists(), "{absolute} is not in write_files");
        path
    }

    /// An sshd_config made from Debian's pristine one, including this rendering's drop-in dir.
    pub fn sshd_config(&self) -> PathBuf {
        require_tool(SSHD, "openssh-server");
        let pristine = fs::read_to_string(PRISTINE_SSHD_CONFIG)
            .unwrap_or_else(|e| panic!("{PRISTINE_SSHD_CONFIG}: {e} (install openssh-server)"));
        let include = "Include /etc/ssh/sshd_config.d/*.conf";
        assert_eq!(
            pristine.lines().filter(|l| l.trim() == include).count(),
            1,
            "Debian's sshd_config no longer has `{include}`"
        );
        let dropins = self.root.join("etc/ssh/sshd_config.d");
        let config = pristine
            .lines()
            .map(|l| {
                if l.trim() == include {
                    format!("Include {}/*.conf", dropins.display())
                } else {
                    l.to_owned()
                }
            })
            .collect::<Vec<_>>()
            .join("\n")
            + "\n";
        let path = self.dir.path().join("sshd_config");
        fs::write(&path, config).unwrap();
        path
    }

    /// The host key from the user-data's `ssh_keys`, where cloud-init writes it (below `root`);
    /// the extracted drop-in's `HostKey` line points there (never the machine's own key).
    pub fn host_key(&self) -> PathBuf {
        self.file("/etc/ssh/ssh_host_ed25519_key")
    }
}

/// Writes `ssh_keys.ed25519_private`/`_public` below `root` as cloud-init's cc_ssh does (0600 and
/// 0644), and points the extracted sshd drop-ins' `HostKey /etc/ssh/...` lines there.
pub fn extract_host_keys(doc: &Json, root: &Path) {
    let Some(keys) = doc.get("ssh_keys") else {
        return;
    };
    let ssh = root.join("etc/ssh");
    fs::create_dir_all(&ssh).unwrap();
    for (field, name, mode) in [
        ("ed25519_private", "ssh_host_ed25519_key", 0o600),
        ("ed25519_public", "ssh_host_ed25519_key.pub", 0o644),
    ] {
        let text = keys[field].as_str().expect("ssh_keys values are strings");
        let path = ssh.join(name);
        fs::write(&path, text).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
    }
    let dropins = ssh.join("sshd_config.d");
    for entry in fs::read_dir(&dropins).into_iter().flatten().flatten() {
        let text = fs::read_to_string(entry.path()).unwrap();
        let rebased = text.replace("HostKey /etc/ssh/", &format!("HostKey {}/", ssh.display()));
        fs::write(entry.path(), rebased).unwrap();
    }
}

/// Writes each write_files entry below `root` with its content and mode.
pub fn extract_write_files(doc: &Json, root: &Path) {
    for file in doc["write_files"]
        .as_array()
        .expect("write_files is a list")
    {
        let path = file["path"].as_str().expect("path is a string");
        assert!(
            path.starts_with('/') && !path.contains(".."),
            "odd path {path}"
        );
        assert!(
            file.get("encoding").is_none(),
            "{path}: encoded content is not expected"
        );
        let content = file["content"].as_str().expect("content is a string");
        let mode = file["permissions"]
            .as_str()
            .expect("permissions is a quoted string");
        let mode = u32::from_str_radix(mode, 8).expect("permissions is octal");
        let target = root.join(path.trim_start_matches('/'));
        let parent = target.parent().unwrap();
        fs::create_dir_all(parent).unwrap();
        fs::set_permissions(parent, fs::Permissions::from_mode(0o755)).unwrap();
        let mut f = fs::File::create(&target).unwrap();
        f.write_all(content.as_bytes()).unwrap();
        fs::set_permissions(&target, fs::Permissions::from_mode(mode)).unwrap();
    }
    // Every directory created on the way must satisfy sshd's StrictModes too.
    for d in walk_dirs(root) {
        fs::set_permissions(&d, fs::Permissions::from_mode(0o755)).unwrap();
    }
}

/// All directories below `dir`, including itself.
fn walk_dirs(dir: &Path) -> Vec<PathBuf> {
    let mut out = vec![dir.to_path_buf()];
    if let Ok(entries) = fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                out.extend(walk_dirs(&entry.path()));
            }
        }
    }
    out
}

/// Copies a directory tree (files and directories; symlinks are copied as their targets).
pub fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if fs::metadata(entry.path()).unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// sshd running in the foreground on 127.0.0.1 with a rendering's config; stopped on drop.
pub struct LiveSshd {
    /// The port it listens on.
    pub port: u16,
    /// Its log (`-e`: everything it logs goes to stderr, here).
    pub log: PathBuf,
    process: ProcessGuard,
}

impl LiveSshd {
    /// Starts sshd with the rendered drop-in, the user-data's host key, and authorized keys read from
    /// `<scratch>/%u.keys` (so no real authorized_keys is used or touched).
    pub fn start(rendered: &Rendered) -> Self {
        // sshd refuses to start without its privilege separation directory.
        fs::create_dir_all("/run/sshd").unwrap();
        let config = rendered.sshd_config();
        let dir = rendered.dir.path();
        let mut last_log = String::new();
        for attempt in 0..5 {
            let port = free_port();
            let log = dir.join(format!("sshd-{port}.log"));
            let child = Command::new(SSHD)
                .arg("-D")
                .arg("-e")
                .arg("-f")
                .arg(&config)
                .arg("-o")
                .arg(format!("Port={port}"))
                .arg("-o")
                .arg("ListenAddress=127.0.0.1")
                .arg("-o")
                .arg(format!(
                    "PidFile={}",
                    dir.join(format!("sshd-{port}.pid")).display()
                ))
                .arg("-o")
                .arg(format!("AuthorizedKeysFile={}/%u.keys", dir.display()))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(fs::File::create(&log).unwrap())
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {SSHD}: {e}"));
            let mut process = ProcessGuard::new(child);
            let ready = format!("Server listening on 127.0.0.1 port {port}.");
            let deadline = Instant::now() + Duration::from_secs(15);
            loop {
                last_log = fs::read_to_string(&log).unwrap_or_default();
                if last_log.contains(&ready) {
                    return Self { port, log, process };
                }
                if process.exited().is_some() || Instant::now() > deadline {
                    break;
                }
                std::thread::sleep(Duration::from_millis(25));
            }
            drop(process);
            // Another test may have taken the port between our probe and sshd's bind: retry.
            assert!(
                last_log.contains("Address already in use") && attempt < 4,
                "sshd did not start:\n{last_log}"
            );
        }
        panic!("sshd did not start:\n{last_log}");
    }

    /// Everything sshd logged so far.
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// sshd's process id.
    pub fn pid(&self) -> u32 {
        self.process.id()
    }
}

/// The ssh client with options that ignore the machine's config, agent, keys and known_hosts.
pub fn ssh(key: &Path, port: u16, destination: &str) -> Command {
    require_tool("ssh", "openssh-client");
    let mut cmd = Command::new("ssh");
    cmd.args(["-F", "/dev/null", "-i"])
        .arg(key)
        .args([
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "IdentityAgent=none",
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "ConnectTimeout=10",
            "-p",
        ])
        .arg(port.to_string())
        .arg(destination);
    cmd
}

/// Where to find ssh-audit: `BOOTSTRAP_SSH_AUDIT`, else `ssh-audit` on PATH, else the venv that
/// the install hint below creates. Fails with that hint when none exists.
pub fn ssh_audit() -> PathBuf {
    const HINT: &str = "python3 -m venv /opt/bootstrap-ci/venv && /opt/bootstrap-ci/venv/bin/pip install ssh-audit==3.9.0";
    if let Some(path) = std::env::var_os("BOOTSTRAP_SSH_AUDIT") {
        let path = PathBuf::from(path);
        assert!(
            path.is_file(),
            "BOOTSTRAP_SSH_AUDIT={} does not exist; install ssh-audit with `{HINT}`",
            path.display()
        );
        return path;
    }
    if let Some(path) = find_on_path("ssh-audit") {
        return path;
    }
    let venv = PathBuf::from("/opt/bootstrap-ci/venv/bin/ssh-audit");
    assert!(
        venv.is_file(),
        "ssh-audit not found (set BOOTSTRAP_SSH_AUDIT or put it on PATH); install it with `{HINT}`"
    );
    venv
}
