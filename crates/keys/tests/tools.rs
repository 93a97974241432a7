//! Cross-checks of the non-SSH-key secrets against the tools that consume them on a server or a
//! laptop: `wg pubkey` (wireguard-tools), `openssl passwd -6` and `mkpasswd` (crypt hashes),
//! `ssh-keygen -F` (known_hosts lookups).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::io::Write;
use std::process::{Command, Stdio};

use bootstrap_keys::{KeyPair, KnownHosts, SudoPassword, WgKeyPair, host_pattern};

fn run(program: &str, args: &[&str], stdin: &str, package: &str) -> String {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("{program}: {e}; install it with `apt-get install -y {package}`")
        });
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn wireguard_public_keys_match_wg_pubkey() {
    for _ in 0..5 {
        let pair = WgKeyPair::generate();
        let theirs = run(
            "wg",
            &["pubkey"],
            &format!("{}\n", pair.private_base64().as_str()),
            "wireguard-tools",
        );
        assert_eq!(theirs.trim(), pair.public().to_base64());
    }
    // And keys from `wg genkey` load here with the same public key.
    let private = run("wg", &["genkey"], "", "wireguard-tools");
    let theirs = run("wg", &["pubkey"], &private, "wireguard-tools");
    let ours = WgKeyPair::from_private_base64(private.trim()).unwrap();
    assert_eq!(ours.public().to_base64(), theirs.trim());
}

#[test]
fn sudo_password_hash_matches_openssl_and_mkpasswd() {
    for _ in 0..3 {
        let password = SudoPassword::generate();
        let ours = password.sha512_crypt().unwrap();
        let salt = ours.split('$').nth(2).unwrap().to_owned();
        let openssl = run(
            "openssl",
            &["passwd", "-6", "-salt", &salt, "-stdin"],
            &format!("{}\n", password.expose()),
            "openssl",
        );
        assert_eq!(openssl.trim(), ours);
        let mkpasswd = run(
            "mkpasswd",
            &["-m", "sha-512", "-S", &salt, "-s"],
            &format!("{}\n", password.expose()),
            "whois",
        );
        assert_eq!(mkpasswd.trim(), ours);
    }
}

#[test]
fn ssh_keygen_finds_pinned_entries() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("known_hosts");
    let key = KeyPair::generate("host").public();
    let hosts = vec![
        "web1".to_owned(),
        "203.0.113.7".to_owned(),
        "2001:db8::1".to_owned(),
        host_pattern("127.0.0.1", 2222),
    ];
    let mut kh = KnownHosts::new();
    kh.pin(&hosts, &key, "bootstrap:user-data");
    kh.write(&path).unwrap();
    for (host, lookup) in [
        ("web1", "web1"),
        ("203.0.113.7", "203.0.113.7"),
        ("2001:db8::1", "2001:db8::1"),
        ("[127.0.0.1]:2222", "[127.0.0.1]:2222"),
    ] {
        let out = run(
            "ssh-keygen",
            &["-F", lookup, "-f", path.to_str().unwrap()],
            "",
            "openssh-client",
        );
        assert!(
            out.contains(&key.to_openssh_bare()),
            "{host} not found by ssh-keygen -F:\n{out}"
        );
    }
    let missing = Command::new("ssh-keygen")
        .args(["-F", "web2", "-f", path.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!missing.status.success());
}
