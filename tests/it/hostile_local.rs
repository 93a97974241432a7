//! Hostile local input, refused offline (issue 13, findings 4, 5, 8, 9, 10): keys sshd would
//! refuse, files whose content must not be echoed, FIFOs and devices, runaway templates, state
//! directories another user could change, and a deterministic fuzz of every `create` flag.

use std::io::Read as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::support::{Bin, Run};

/// A 127.0.0.1 listener on a port it picked that counts connections (and answers none); its
/// thread stops when it is dropped.
struct Counter {
    url: String,
    count: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Counter {
    fn new() -> Self {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.set_nonblocking(true).unwrap();
        let url = format!("http://{}/v1", l.local_addr().unwrap());
        let count = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (c, s) = (count.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                match l.accept() {
                    Ok(_) => {
                        c.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Self {
            url,
            count,
            stop,
            thread: Some(thread),
        }
    }

    fn connections(&self) -> usize {
        // One more look, in case a connection is still in the backlog.
        std::thread::sleep(Duration::from_millis(20));
        self.count.load(Ordering::Relaxed)
    }
}

impl Drop for Counter {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Runs the binary, killing it (and failing) when it takes longer than `limit`: a hang is the
/// bug some of these tests look for. Output is drained on threads, so 80 MB of it cannot block.
#[track_caller]
fn run_within(b: &Bin, args: &[&str], limit: Duration) -> Run {
    let mut child = b.spawn(args);
    child.stdin.take();
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let out_t = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out.read_to_end(&mut v);
        v
    });
    let err_t = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err.read_to_end(&mut v);
        v
    });
    let started = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("bootstrap {args:?} still ran after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Run(std::process::Output {
        status,
        stdout: out_t.join().unwrap(),
        stderr: err_t.join().unwrap(),
    })
}

/// A public key from `crates/keys/testdata`.
fn testdata(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("crates/keys/testdata")
        .join(name)
}

/// Panics unless the run was refused as bad input with exactly one error line and nothing
/// else but warnings on stderr; returns the error line.
#[track_caller]
fn refused_in_one_line(r: &Run, what: &str) -> String {
    assert_eq!(r.code(), 2, "{what}: exit code; stderr: {}", r.stderr());
    let err = r.stderr();
    let errors: Vec<&str> = err.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "{what}: one error line: {err}");
    // clap's own refusals add this hint after their one line.
    let clap_hint = "For more information, try '--help'.";
    for line in err
        .lines()
        .filter(|l| !l.trim().is_empty() && *l != clap_hint)
    {
        assert!(
            line.starts_with("error:") || line.starts_with("warning:"),
            "{what}: only warnings beside the error: {line:?}"
        );
    }
    errors[0].to_owned()
}

fn dry_run<'a>(url: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "create",
        "--dry-run",
        "--provider",
        "hetzner",
        "--endpoint",
        url,
        "--name",
        "w",
        "--ssh-from",
        "203.0.113.7/32",
        "--sudo",
        "nopasswd",
    ];
    args.extend_from_slice(extra);
    args
}

// See: issue 13, finding 4 (RSA-1024 and DSA keys were uploaded although sshd refuses them;
// ECDSA was "unknown algorithm").
#[test]
fn keys_sshd_would_refuse_are_refused_offline_with_the_fix() {
    let api = Counter::new();
    let mut b = Bin::new();
    // No token: a dry run with one would read the API (the plan compares with the cloud).
    b.unset("HCLOUD_TOKEN");
    for image in ["ubuntu-24.04", "debian-11"] {
        for file in [
            "rsa1024.pub",
            "rsa2048.pub",
            "dsa.pub",
            "ecdsa256.pub",
            "ecdsa384.pub",
        ] {
            let key = testdata(file);
            let key = key.to_str().unwrap();
            let what = format!("{image} {file}");
            let r = b.run(&dry_run(&api.url, &["--image", image, "--ssh-key", key]));
            let line = refused_in_one_line(&r, &what);
            assert!(line.contains("ssh-keygen -t ed25519"), "{what}: {line}");
            assert!(line.contains(key), "{what}: names the file: {line}");
            assert!(!line.contains("unknown algorithm"), "{what}: {line}");
            assert!(!line.contains("hardening.yaml.j2"), "{what}: {line}");
        }
        for file in ["ed25519.pub", "rsa3072.pub"] {
            let key = testdata(file);
            let r = b.run(&dry_run(
                &api.url,
                &["--image", image, "--ssh-key", key.to_str().unwrap()],
            ));
            r.expect_code(0);
            let blob = std::fs::read_to_string(&key).unwrap();
            let blob = blob.split_whitespace().nth(1).unwrap();
            assert!(
                r.stdout().contains(blob),
                "{image} {file}: the key is installed"
            );
        }
    }
    // A real create is refused just the same, before any call.
    b.env("HCLOUD_TOKEN", "t");
    let key = testdata("rsa1024.pub");
    let mut args = dry_run(&api.url, &["--ssh-key", key.to_str().unwrap()]);
    args.retain(|a| *a != "--dry-run");
    refused_in_one_line(&run_within(&b, &args, Duration::from_secs(30)), "create");
    assert_eq!(api.connections(), 0);
    assert!(!b.state_dir().exists(), "nothing was written");
}

// See: issue 13, finding 5 (a .pub with extra lines, an 80 MB file and `--template /etc/shadow`
// were echoed; the key error blamed hardening.yaml.j2).
#[test]
fn no_error_echoes_a_file() {
    const CANARY: &str = "CANARY_hl_5a1e";
    let api = Counter::new();
    let b = Bin::new();
    let dir = b.dir.path();
    let ed = std::fs::read_to_string(testdata("ed25519.pub")).unwrap();
    let write = |name: &str, text: &str| {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    let putty = write(
        "putty.pub",
        &format!(
            "{ed}PuTTY-User-Key-File-3: ssh-ed25519\nEncryption: none\nPrivate-Lines: 1\n{CANARY}\nPrivate-MAC: {CANARY}\n"
        ),
    );
    let two = write("two.pub", &format!("{ed}{CANARY} {CANARY}\n"));
    let huge = write("huge.pub", &format!("ssh-ed25519 {CANARY}\n"));
    // 80 MB, sparse: what matters is that nothing of it is read or printed.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&huge)
        .unwrap()
        .set_len(80 << 20)
        .unwrap();
    let shadow = write(
        "shadow",
        &format!("root:$y$j9T${CANARY}:19000:0:99999:7:::\ndaemon:*:19000:0:99999:7:::\n"),
    );
    let syntax = write(
        "syntax.j2",
        &format!("#cloud-config\nx: {CANARY} {{% for %}}\n"),
    );
    let yaml = write(
        "yaml.j2",
        &format!("#cloud-config\nroot: [{CANARY}\n  x: {CANARY}: q\n"),
    );
    let cases: Vec<(&str, &Path, &str)> = vec![
        ("--ssh-key", &putty, "line 2"),
        ("--ssh-key", &two, "line 2"),
        ("--ssh-key", &huge, "larger than"),
        ("--template", &huge, "larger than"),
        ("--template", &shadow, "line 1"),
        ("--template", &syntax, "line 2"),
        ("--template", &yaml, "line 3"),
    ];
    for (flag, path, needle) in cases {
        let p = path.to_str().unwrap();
        let what = format!("{flag} {p}");
        let r = run_within(&b, &dry_run(&api.url, &[flag, p]), Duration::from_secs(30));
        let line = refused_in_one_line(&r, &what);
        assert!(
            !r.stderr().contains(CANARY) && !r.stdout().contains(CANARY),
            "{what}: echoed the file: {line}"
        );
        assert!(
            r.stderr().len() < 1000,
            "{what}: {} bytes",
            r.stderr().len()
        );
        assert!(line.contains(p), "{what}: names the file: {line}");
        assert!(line.contains(needle), "{what}: {line}");
        if flag == "--ssh-key" {
            assert!(!line.contains("hardening.yaml.j2"), "{what}: {line}");
        }
    }
    // The real /etc/shadow, where it is readable: its first line must not appear (and is not
    // printed by this test either).
    if let Ok(real) = std::fs::read_to_string("/etc/shadow") {
        let first = real.lines().next().unwrap_or_default().to_owned();
        let r = b.run(&dry_run(&api.url, &["--template", "/etc/shadow"]));
        assert_eq!(r.code(), 2);
        assert!(
            first.is_empty() || !r.stderr().contains(&first),
            "/etc/shadow was echoed"
        );
    }
    assert_eq!(api.connections(), 0);
}

// See: issue 13, finding 10 (a FIFO hung, /dev/zero grew memory, a nested loop spun forever).
#[test]
fn hostile_local_files_are_refused_at_once() {
    let api = Counter::new();
    let b = Bin::new();
    let dir = b.dir.path();
    // Named `.pub`, else `--ssh-key` looks for `fifo.pub` beside it.
    let fifo = dir.join("fifo.pub");
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&fifo)
            .stdout(Stdio::null())
            .status()
            .unwrap()
            .success()
    );
    let subdir = dir.join("dir.pub");
    std::fs::create_dir(&subdir).unwrap();
    let big_key = dir.join("big.pub");
    std::fs::write(&big_key, "#".repeat(9 * 1024)).unwrap();
    let big_template = dir.join("big.j2");
    std::fs::write(&big_template, "#".repeat(300 * 1024)).unwrap();
    let targets = [
        (fifo.as_path(), "not a regular file"),
        (dir, "not a regular file"),
        (Path::new("/dev/zero"), "not a regular file"),
        (subdir.as_path(), "not a regular file"),
    ];
    for flag in ["--ssh-key", "--template"] {
        for (path, needle) in targets {
            let what = format!("{flag} {}", path.display());
            let r = run_within(
                &b,
                &dry_run(&api.url, &[flag, path.to_str().unwrap()]),
                Duration::from_secs(20),
            );
            let line = refused_in_one_line(&r, &what);
            assert!(line.contains(needle), "{what}: {line}");
        }
    }
    for (flag, path) in [("--ssh-key", &big_key), ("--template", &big_template)] {
        let r = run_within(
            &b,
            &dry_run(&api.url, &[flag, path.to_str().unwrap()]),
            Duration::from_secs(20),
        );
        let line = refused_in_one_line(&r, flag);
        assert!(line.contains("larger than"), "{flag}: {line}");
    }
    let runaway = dir.join("runaway.j2");
    std::fs::write(
        &runaway,
        "#cloud-config\n{% for i in range(100000) %}{% for j in range(100000) %}{{ i }}{% endfor %}{% endfor %}\n",
    )
    .unwrap();
    let r = run_within(
        &b,
        &dry_run(&api.url, &["--template", runaway.to_str().unwrap()]),
        Duration::from_secs(60),
    );
    let line = refused_in_one_line(&r, "runaway template");
    assert!(
        line.contains("steps") && line.contains("runaway.j2"),
        "{line}"
    );
    assert_eq!(api.connections(), 0);
}

// See: issue 13, finding 8 (a 0777 deployment dir was used; a symlinked one was followed, and
// `destroy` removed only the link).
#[test]
fn state_dirs_another_user_could_change_are_refused() {
    use std::os::unix::fs::PermissionsExt as _;
    let api = Counter::new();
    let mut b = Bin::new();
    // No token: the dry runs stay offline (with one they would read the API).
    b.unset("HCLOUD_TOKEN");
    let root = b.state_dir();
    let deployment = root.join("hetzner").join("w");
    std::fs::create_dir_all(&deployment).unwrap();
    for d in [&root, &root.join("hetzner"), &deployment] {
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o700)).unwrap();
    }
    b.run(&dry_run(&api.url, &[])).expect_code(0);

    for (dir, mode) in [(&deployment, 0o777), (&deployment, 0o770), (&root, 0o757)] {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode)).unwrap();
        let r = b.run(&dry_run(&api.url, &[]));
        let line = refused_in_one_line(&r, &format!("{} {mode:o}", dir.display()));
        assert!(
            line.contains(&format!("chmod 700 {}", dir.display())),
            "{line}"
        );
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    }

    // A symlinked deployment dir: neither create nor destroy goes through it.
    let elsewhere = b.dir.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    std::fs::write(elsewhere.join("keep-me"), "x").unwrap();
    std::fs::remove_dir(&deployment).unwrap();
    std::os::unix::fs::symlink(&elsewhere, &deployment).unwrap();
    let create: Vec<&str> = dry_run(&api.url, &[])
        .into_iter()
        .filter(|a| *a != "--dry-run")
        .collect();
    for args in [
        dry_run(&api.url, &[]),
        create,
        vec![
            "destroy",
            "w",
            "--provider",
            "hetzner",
            "--endpoint",
            &api.url,
            "--yes",
        ],
    ] {
        let r = run_within(&b, &args, Duration::from_secs(30));
        let line = refused_in_one_line(&r, &args[0..2].join(" "));
        assert!(line.contains("symlink"), "{line}");
    }
    let left: Vec<_> = std::fs::read_dir(&elsewhere).unwrap().flatten().collect();
    assert_eq!(
        left.len(),
        1,
        "nothing written to or removed from the link's target"
    );
    assert!(deployment.is_symlink());

    // Owned by someone else: only testable where chown works (as root).
    std::fs::remove_file(&deployment).unwrap();
    std::fs::create_dir(&deployment).unwrap();
    std::fs::set_permissions(&deployment, std::fs::Permissions::from_mode(0o700)).unwrap();
    if std::os::unix::fs::chown(&deployment, Some(65534), Some(65534)).is_ok() {
        let r = b.run(&dry_run(&api.url, &[]));
        let line = refused_in_one_line(&r, "owned by another user");
        assert!(line.contains("another user"), "{line}");
    }
    assert_eq!(api.connections(), 0);
}

// See: issue 13, finding 8 (`destroy` used `remove_dir_all`).
#[test]
fn destroy_removes_exactly_the_files_it_wrote() {
    use std::os::unix::fs::PermissionsExt as _;
    let fake = fakecloud::hetzner::FakeHetzner::start_default();
    let url = fake.url();
    let b = Bin::new();
    let deployment = b.state_dir().join("hetzner").join("w");
    std::fs::create_dir_all(&deployment).unwrap();
    for d in [
        b.state_dir(),
        b.state_dir().join("hetzner"),
        deployment.clone(),
    ] {
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o700)).unwrap();
    }
    for f in ["known_hosts", "sudo-password", "deployment.json"] {
        std::fs::write(deployment.join(f), "x").unwrap();
    }
    std::fs::write(deployment.join("my-notes.txt"), "mine").unwrap();
    // A link among our names is removed as a link; its target stays.
    let outside = b.dir.path().join("outside.conf");
    std::fs::write(&outside, "outside").unwrap();
    std::os::unix::fs::symlink(&outside, deployment.join("wg-bootstrap.conf")).unwrap();
    let destroy = [
        "destroy",
        "w",
        "--provider",
        "hetzner",
        "--endpoint",
        &url,
        "--yes",
    ];
    let r = b.run(&destroy);
    r.expect_code(0);
    let mut left: Vec<String> = std::fs::read_dir(&deployment)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, ["my-notes.txt"]);
    assert_eq!(std::fs::read_to_string(&outside).unwrap(), "outside");
    assert!(
        r.stderr().contains("kept") && r.stderr().contains("my-notes.txt"),
        "{}",
        r.stderr()
    );
    // Without files of its own, the directory goes too.
    std::fs::remove_file(deployment.join("my-notes.txt")).unwrap();
    std::fs::write(deployment.join("known_hosts"), "x").unwrap();
    b.run(&destroy).expect_code(0);
    assert!(!deployment.exists());
}

// See: issue 13, finding 9 (halves of the world without a warning, mapped IPv6, octal-looking
// octets, system accounts as the admin).
#[test]
fn ssh_from_and_admin_user_semantics() {
    let api = Counter::new();
    let mut b = Bin::new();
    // No token: the dry runs stay offline (with one they would read the API).
    b.unset("HCLOUD_TOKEN");
    for (nets, family) in [
        (["0.0.0.0/1", "128.0.0.0/1"], "IPv4"),
        (["::/1", "8000::/1"], "IPv6"),
    ] {
        let mut args = dry_run(
            &api.url,
            &["-q", "--ssh-from", nets[0], "--ssh-from", nets[1]],
        );
        // Only these networks: drop the default one.
        let i = args.iter().position(|a| *a == "203.0.113.7/32").unwrap();
        args.drain(i - 1..=i);
        let r = b.run(&args);
        r.expect_code(0);
        assert!(
            r.stderr().contains("open to the whole world") && r.stderr().contains(family),
            "{nets:?}: {}",
            r.stderr()
        );
    }
    let r = b.run(&dry_run(&api.url, &["--ssh-from", "0.0.0.0/1"]));
    r.expect_code(0);
    assert!(!r.stderr().contains("whole world"), "{}", r.stderr());

    for (flag, value, needle) in [
        (
            "--ssh-from",
            "::ffff:1.2.3.4/128",
            "write the IPv4 network 1.2.3.4/32",
        ),
        ("--ssh-from", "010.0.0.1", "leading zero"),
        ("--admin-user", "daemon", "such as admin"),
        ("--admin-user", "sshd", "such as admin"),
        ("--admin-user", "nobody", "such as admin"),
    ] {
        let r = b.run(&dry_run(&api.url, &[flag, value]));
        let line = refused_in_one_line(&r, value);
        assert!(line.contains(needle), "{value}: {line}");
    }
    assert_eq!(api.connections(), 0);
}

/// A small deterministic generator (xorshift64*), so a failure names a case that reruns.
struct Gen(u64);

impl Gen {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        let i = usize::try_from(self.next() % from.len() as u64).unwrap();
        from[i]
    }
}

/// Pieces of hostile input: control and bidi characters, YAML and Jinja syntax, shell,
/// paths, numbers past every integer type, address tricks.
const FRAGMENTS: &[&str] = &[
    "",
    " ",
    "\t",
    "\n",
    "\r\n",
    "\u{7f}",
    "\u{1b}[31m",
    "\u{85}",
    "\u{2028}",
    "\u{202e}",
    "\u{feff}",
    "é",
    "💥",
    "$(id)",
    "`id`",
    ";rm -rf /",
    "../../etc/passwd",
    "%00",
    "%2e%2e/",
    "\\",
    "\"",
    "'",
    "{{ 7*7 }}",
    "{% for %}",
    "#",
    "- ",
    ": ",
    "&a",
    "*a",
    "!!python/object",
    "@",
    "0",
    "00",
    "010",
    "-1",
    "4294967296",
    "18446744073709551615",
    "18446744073709551616",
    "99999999999999999999999999",
    "0x10",
    "1e9",
    "NaN",
    "::ffff:",
    "0.0.0.0",
    "/0",
    "/33",
    "/129",
    "ms",
    "h",
    "d",
    "w",
    ",",
    "*",
    "?",
];

/// Each flag of `create` with values that are valid or nearly so; the generator mutates them.
const FLAGS: &[(&str, &[&str])] = &[
    ("--name", &["web1", "a", "db-2"]),
    (
        "--ssh-from",
        &["203.0.113.7/32", "2001:db8::/48", "10.0.0.1", "any"],
    ),
    ("--location", &["fsn1", "nbg1"]),
    ("--server-type", &["cpx22", "cx23"]),
    ("--image", &["ubuntu-24.04", "debian-12"]),
    ("--admin-user", &["admin", "ops", "deploy"]),
    ("--reboot-time", &["02:00", "23:59"]),
    ("--timeout", &["10m", "90s", "1h", "600"]),
    ("--snapshots", &["daily", "weekly", "off", "daily:7"]),
    ("--snapshot-time", &["03:00", "00:00"]),
    ("--snapshot-day", &["sun", "mon"]),
    ("--snapshot-engine", &["job", "native"]),
    ("--from-snapshot", &["123456", "snap-1"]),
    ("--sudo", &["password", "nopasswd"]),
    ("--vpn", &["wireguard"]),
    ("--passphrase-env", &["MY_PASS", "HCLOUD_TOKEN"]),
    (
        "--endpoint",
        &[
            "http://127.0.0.1:1/v1",
            "https://127.0.0.1:1/v1",
            "http://localhost:9/v1",
        ],
    ),
];

/// Mutates a near-valid value with one to three fragments: prefix, suffix, middle, or whole.
fn hostile_value(g: &mut Gen, base: &str) -> String {
    let mut v = base.to_owned();
    for _ in 0..=(g.next() % 3) {
        let f = g.pick(FRAGMENTS);
        match g.next() % 5 {
            0 => v.insert_str(0, f),
            1 => v.push_str(f),
            2 => {
                let chars: Vec<char> = v.chars().collect();
                let at = usize::try_from(g.next() % (chars.len() as u64 + 1)).unwrap();
                v = chars[..at]
                    .iter()
                    .chain(f.chars().collect::<Vec<_>>().iter())
                    .chain(chars[at..].iter())
                    .collect();
            }
            3 => v = f.to_owned(),
            _ => v = v.repeat(usize::try_from(g.next() % 40).unwrap() + 2),
        }
    }
    v
}

/// Hostile files for `--ssh-key` and `--template`: special files, binary, huge lines, and
/// text made of the fragments.
fn hostile_files(g: &mut Gen, dir: &Path) -> Vec<String> {
    let mut files = vec![
        "/dev/zero".to_owned(),
        "/dev/null".to_owned(),
        "/proc/self/environ".to_owned(),
        "/proc/self/mem".to_owned(),
        "/etc".to_owned(),
        "/nonexistent/x".to_owned(),
        String::new(),
    ];
    let fifo = dir.join("fuzz-fifo");
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    files.push(fifo.display().to_string());
    std::fs::write(dir.join("fuzz-binary"), [0u8, 0xff, 0xfe, 0x80, 0x0a]).unwrap();
    files.push(dir.join("fuzz-binary").display().to_string());
    for i in 0..20 {
        let mut text = String::new();
        if i % 2 == 0 {
            text.push_str("ssh-ed25519 ");
        } else {
            text.push_str("#cloud-config\n");
        }
        for _ in 0..(g.next() % 20) {
            text.push_str(g.pick(FRAGMENTS));
        }
        let p = dir.join(format!("fuzz-{i}"));
        std::fs::write(&p, text).unwrap();
        files.push(p.display().to_string());
    }
    files
}

// See: issue 13, "Done when": a fuzz-style test of the offline validation of every flag.
#[test]
fn fuzz_hostile_values_are_refused_offline_without_a_call() {
    let api = Counter::new();
    let mut b = Bin::new();
    // Dry runs and renders without a token stay offline; the real creates below carry one.
    b.unset("HCLOUD_TOKEN");
    let mut g = Gen(0x1313_2026_dead_beef);
    let mut cases: Vec<(String, String)> = Vec::new();
    for (flag, bases) in FLAGS {
        for _ in 0..14 {
            let base = g.pick(bases);
            cases.push(((*flag).to_owned(), hostile_value(&mut g, base)));
        }
    }
    for f in hostile_files(&mut g, b.dir.path()) {
        cases.push(("--ssh-key".to_owned(), f.clone()));
        cases.push(("--template".to_owned(), f));
    }
    // Scaleway's own flag, through the provider that has it.
    for _ in 0..10 {
        cases.push(("--zone".to_owned(), hostile_value(&mut g, "fr-par-1")));
    }
    // A value can contain anything but NUL, which no argv can carry.
    for (_, v) in &mut cases {
        v.retain(|c| c != '\0');
    }

    let (mut refused, mut accepted) = (0usize, 0usize);
    for (i, (flag, value)) in cases.iter().enumerate() {
        let what = format!("case {i}: {flag}={value:?}");
        let arg = format!("{flag}={value}");
        let provider = if flag == "--zone" {
            "scaleway"
        } else {
            "hetzner"
        };
        let command = if i % 3 == 0 { "render" } else { "create" };
        let mut args = vec![command];
        if command == "create" {
            args.push("--dry-run");
        }
        // The hostile value replaces the flag's valid value.
        for (f, v) in [
            ("--provider", provider),
            ("--name", "w"),
            ("--ssh-from", "203.0.113.7/32"),
            ("--sudo", "nopasswd"),
            ("--endpoint", api.url.as_str()),
        ] {
            if f != flag {
                args.extend([f, v]);
            }
        }
        args.push(&arg);
        let r = run_within(&b, &args, Duration::from_secs(60));
        let err = r.stderr();
        assert!(
            !err.contains("panicked") && r.code() != 101,
            "{what}: panic: {err}"
        );
        assert!(!err.contains("CANARY_TOKEN_fz") && !r.stdout().contains("CANARY_TOKEN_fz"));
        match r.code() {
            0 => accepted += 1,
            2 => {
                refused_in_one_line(&r, &what);
                refused += 1;
                // A real create refuses it just the same, before any call.
                if command == "create" {
                    args.retain(|a| *a != "--dry-run");
                    b.env("HCLOUD_TOKEN", "CANARY_TOKEN_fz");
                    let real = run_within(&b, &args, Duration::from_secs(60));
                    b.unset("HCLOUD_TOKEN");
                    refused_in_one_line(&real, &format!("{what} (real create)"));
                }
            }
            other => panic!("{what}: exit {other}: {err}"),
        }
    }
    eprintln!(
        "fuzz: {} hostile values, {refused} refused (exit 2, one line), {accepted} accepted",
        cases.len()
    );
    assert!(cases.len() >= 200, "{}", cases.len());
    assert!(refused > cases.len() / 2, "{refused} of {}", cases.len());
    assert_eq!(api.connections(), 0, "an API call was made");
    assert!(
        !b.state_dir()
            .join("hetzner")
            .join("w")
            .join("id_ed25519")
            .exists(),
        "no key was generated"
    );
}
