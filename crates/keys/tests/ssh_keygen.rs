//! Cross-checks against the real OpenSSH `ssh-keygen`: keys we write must be readable by it with
//! the same fingerprints, and keys it makes must load in our code.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use bootstrap_keys::{Error, KeyPair, PublicKey, load_or_generate};

fn ssh_keygen(args: &[&str]) -> Output {
    Command::new("ssh-keygen")
        .args(args)
        .output()
        .expect("ssh-keygen must be installed (openssh-client) for these tests")
}

/// Runs ssh-keygen and returns its stdout, failing the test with its stderr if it fails.
fn ssh_keygen_ok(args: &[&str]) -> String {
    let out = ssh_keygen(args);
    assert!(
        out.status.success(),
        "ssh-keygen {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

fn pub_path(private: &Path) -> PathBuf {
    let mut p = private.as_os_str().to_owned();
    p.push(".pub");
    PathBuf::from(p)
}

/// The fingerprint field of `ssh-keygen -l` output: `256 SHA256:xxx comment (ED25519)`.
fn keygen_fingerprint(args: &[&str]) -> String {
    let out = ssh_keygen_ok(args);
    out.split_whitespace().nth(1).unwrap().to_owned()
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// The secret part of an unencrypted OpenSSH private key file: its base64 body lines.
fn pem_body_lines(path: &Path) -> Vec<String> {
    fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with("-----") && !l.is_empty())
        .map(str::to_owned)
        .collect()
}

/// `ssh-keygen -y` output, without the comment (older ssh-keygen versions omit it).
fn key_type_and_blob(line: &str) -> String {
    line.split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn ssh_keygen_fingerprints_equal_ours() {
    let dir = tempfile::tempdir().unwrap();
    let private = dir.path().join("id_ed25519");
    let keypair = KeyPair::generate("fp@test");
    keypair.write(&private, None).unwrap();
    let public = keypair.public();
    let pub_file = pub_path(&private);

    assert_eq!(
        keygen_fingerprint(&["-l", "-f", s(&pub_file)]),
        public.fingerprint_sha256()
    );
    assert_eq!(
        keygen_fingerprint(&["-l", "-E", "md5", "-f", s(&pub_file)]),
        format!("MD5:{}", public.fingerprint_md5())
    );
    // ssh-keygen also reads the fingerprint straight from the private key.
    assert_eq!(
        keygen_fingerprint(&["-l", "-f", s(&private)]),
        public.fingerprint_sha256()
    );
}

#[test]
fn aws_fingerprint_is_ssh_keygen_sha256_with_padding() {
    let dir = tempfile::tempdir().unwrap();
    let private = dir.path().join("aws");
    let keypair = KeyPair::generate("aws@test");
    keypair.write(&private, None).unwrap();

    let keygen = keygen_fingerprint(&["-l", "-f", s(&pub_path(&private))]);
    let b64 = keygen.strip_prefix("SHA256:").unwrap();
    // A 32-byte digest is 43 base64 characters plus one '=' of padding.
    assert_eq!(b64.len(), 43);
    assert_eq!(keypair.public().fingerprint_sha256_aws(), format!("{b64}="));
}

#[test]
fn ssh_keygen_derives_our_public_key_from_our_private_key() {
    let dir = tempfile::tempdir().unwrap();
    let private = dir.path().join("plain");
    let keypair = KeyPair::generate("derive@test");
    keypair.write(&private, None).unwrap();

    let derived = ssh_keygen_ok(&["-y", "-f", s(&private)]);
    assert_eq!(
        key_type_and_blob(&derived),
        key_type_and_blob(&keypair.public().to_openssh())
    );
    // The .pub file we wrote is exactly our to_openssh line.
    assert_eq!(
        fs::read_to_string(pub_path(&private)).unwrap().trim_end(),
        keypair.public().to_openssh()
    );
}

#[test]
fn ssh_keygen_decrypts_our_encrypted_private_key() {
    let dir = tempfile::tempdir().unwrap();
    let private = dir.path().join("enc");
    let keypair = KeyPair::generate("enc@test");
    keypair
        .write(&private, Some("hunter2 with spaces"))
        .unwrap();

    let derived = ssh_keygen_ok(&["-y", "-P", "hunter2 with spaces", "-f", s(&private)]);
    assert_eq!(
        key_type_and_blob(&derived),
        key_type_and_blob(&keypair.public().to_openssh())
    );

    // It really is encrypted: ssh-keygen cannot read it with a wrong or empty passphrase.
    assert!(
        !ssh_keygen(&["-y", "-P", "wrong", "-f", s(&private)])
            .status
            .success()
    );
    assert!(
        !ssh_keygen(&["-y", "-P", "", "-f", s(&private)])
            .status
            .success()
    );
}

#[test]
fn key_made_by_ssh_keygen_loads_with_matching_fingerprints() {
    let dir = tempfile::tempdir().unwrap();
    let private = dir.path().join("theirs");
    ssh_keygen_ok(&[
        "-q",
        "-t",
        "ed25519",
        "-N",
        "",
        "-C",
        "made@ssh-keygen",
        "-f",
        s(&private),
    ]);
    let pub_file = pub_path(&private);

    let public = PublicKey::load(&pub_file).unwrap();
    assert_eq!(public.algorithm(), "ssh-ed25519");
    assert_eq!(
        public.to_openssh(),
        fs::read_to_string(&pub_file).unwrap().trim_end()
    );
    assert_eq!(
        public.fingerprint_sha256(),
        keygen_fingerprint(&["-l", "-f", s(&pub_file)])
    );
    assert_eq!(
        format!("MD5:{}", public.fingerprint_md5()),
        keygen_fingerprint(&["-l", "-E", "md5", "-f", s(&pub_file)])
    );

    let keypair = KeyPair::load(&private, None).unwrap();
    assert_eq!(keypair.public(), public);

    // load_or_generate picks up the existing key instead of replacing it.
    let before = fs::read(&private).unwrap();
    let (loaded, created) = load_or_generate(&private, None, "unused").unwrap();
    assert!(!created);
    assert_eq!(loaded.public(), public);
    assert_eq!(fs::read(&private).unwrap(), before);
}

#[test]
fn encrypted_key_made_by_ssh_keygen_loads_with_passphrase() {
    let dir = tempfile::tempdir().unwrap();
    let private = dir.path().join("theirs_enc");
    ssh_keygen_ok(&[
        "-q",
        "-t",
        "ed25519",
        "-N",
        "open sesame",
        "-C",
        "enc@ssh-keygen",
        "-f",
        s(&private),
    ]);
    let expected = PublicKey::load(&pub_path(&private)).unwrap();
    let keypair = KeyPair::load(&private, Some("open sesame")).unwrap();
    assert_eq!(keypair.public(), expected);
    assert_eq!(
        keypair.public().fingerprint_sha256(),
        keygen_fingerprint(&["-l", "-f", s(&pub_path(&private))])
    );
}

#[test]
fn encrypted_key_without_passphrase_fails_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let private = dir.path().join("locked");
    ssh_keygen_ok(&[
        "-q",
        "-t",
        "ed25519",
        "-N",
        "the-passphrase",
        "-f",
        s(&private),
    ]);
    let body = pem_body_lines(&private);
    assert!(!body.is_empty());

    let err = KeyPair::load(&private, None).unwrap_err();
    assert!(matches!(err, Error::PassphraseRequired { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains(s(&private)),
        "message should name the file: {msg}"
    );
    assert!(
        msg.contains("encrypted") && msg.contains("passphrase"),
        "{msg}"
    );
    let shown = format!("{msg} {err:?}");
    for line in &body {
        assert!(
            !shown.contains(line.as_str()),
            "error leaks key material: {shown}"
        );
    }

    let err = KeyPair::load(&private, Some("not-it")).unwrap_err();
    assert!(matches!(err, Error::WrongPassphrase { .. }), "{err:?}");
    let shown = format!("{err} {err:?}");
    assert!(shown.contains(s(&private)), "{shown}");
    assert!(shown.contains("wrong passphrase"), "{shown}");
    assert!(!shown.contains("not-it") && !shown.contains("the-passphrase"));
    for line in &body {
        assert!(
            !shown.contains(line.as_str()),
            "error leaks key material: {shown}"
        );
    }
}

#[test]
fn written_files_have_safe_modes() {
    let dir = tempfile::tempdir().unwrap();
    let key_dir = dir.path().join("keys");
    let private = key_dir.join("id_ed25519");
    let (keypair, created) = load_or_generate(&private, None, "modes@test").unwrap();
    assert!(created);

    assert_eq!(mode(&private), 0o600, "private key");
    assert_eq!(mode(&pub_path(&private)), 0o644, "public key");
    assert_eq!(mode(&key_dir), 0o700, "key directory");
    // ssh-keygen accepts the file (it refuses private keys readable by others).
    let derived = ssh_keygen_ok(&["-y", "-f", s(&private)]);
    assert_eq!(
        key_type_and_blob(&derived),
        key_type_and_blob(&keypair.public().to_openssh())
    );
}

#[test]
fn keypair_debug_does_not_contain_the_private_key() {
    let dir = tempfile::tempdir().unwrap();
    let private = dir.path().join("dbg");
    let keypair = KeyPair::generate("debug@test");
    keypair.write(&private, None).unwrap();

    let debug = format!("{keypair:?}\n{keypair:#?}");
    let body = pem_body_lines(&private);
    assert!(!body.is_empty());
    for line in &body {
        assert!(
            !debug.contains(line.as_str()),
            "Debug leaks the private key: {debug}"
        );
    }
    // What it does show is the public identity, which is what a log needs.
    assert!(debug.contains(&keypair.public().fingerprint_sha256()));

    // Same for a key loaded back from disk.
    let loaded = KeyPair::load(&private, None).unwrap();
    let debug = format!("{loaded:?}");
    for line in &body {
        assert!(!debug.contains(line.as_str()));
    }
}

#[test]
fn public_key_load_rejects_a_private_key_made_by_ssh_keygen() {
    let dir = tempfile::tempdir().unwrap();
    let private = dir.path().join("id");
    ssh_keygen_ok(&["-q", "-t", "ed25519", "-N", "", "-f", s(&private)]);
    let body = pem_body_lines(&private);

    let err = PublicKey::load(&private).unwrap_err();
    assert!(matches!(err, Error::NotAPublicKey { .. }), "{err:?}");
    let shown = format!("{err} {err:?}");
    assert!(shown.contains(s(&private)), "{shown}");
    for line in &body {
        assert!(!shown.contains(line.as_str()));
    }
}

#[test]
fn rsa_public_key_fingerprints_match_ssh_keygen() {
    let dir = tempfile::tempdir().unwrap();
    let private = dir.path().join("id_rsa");
    ssh_keygen_ok(&["-q", "-t", "rsa", "-b", "2048", "-N", "", "-f", s(&private)]);
    let pub_file = pub_path(&private);
    let public = PublicKey::load(&pub_file).unwrap();
    assert_eq!(public.algorithm(), "ssh-rsa");
    assert_eq!(
        public.fingerprint_sha256(),
        keygen_fingerprint(&["-l", "-f", s(&pub_file)])
    );
    assert_eq!(
        format!("MD5:{}", public.fingerprint_md5()),
        keygen_fingerprint(&["-l", "-E", "md5", "-f", s(&pub_file)])
    );
}
