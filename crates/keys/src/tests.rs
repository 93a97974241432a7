#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use std::os::unix::fs::PermissionsExt;

/// Made with `ssh-keygen -t ed25519 -C vector@test`; the fingerprints are what `ssh-keygen -l`
/// and `ssh-keygen -l -E md5` printed for it.
const ED25519_LINE: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMOSO43tqdJ3jEo9btpgP1Q1ggkcu9eoLkmeBWG2ahly vector@test";
const ED25519_SHA256: &str = "SHA256:NhoVv0eYY4uIkL1qrZKstikUl2hnweFsfbVjjDc9sJc";
const ED25519_MD5: &str = "3c:3c:3b:a1:79:cf:97:24:ee:09:e2:f6:20:84:2d:3e";

/// Made with `ssh-keygen -t rsa -b 1024 -C r` (small on purpose: only the fingerprint math is tested).
const RSA_LINE: &str = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAgQCq/8BCQz08lNKn0xJRN4kwvQ2Gxbr9bQY++/PLGke5NBH9LjyPiWgPdm2L5GNAQOb3ekt126nadANkEIDQ3O6B7h8KLKv/R2erFa23p2IgI13Ig22RqNCd5ehjC5SIRcf/GuBL52dcqhf0L9MBj2J/9EsAC1hQZfFdwIiLFpSJcw== r";
const RSA_SHA256: &str = "SHA256:ulRwTAY6vcKSjKczM/e4zLWUaH04a3PyDNkkgJ897N8";
const RSA_MD5: &str = "6e:cf:28:b0:9f:43:25:20:02:d4:cc:93:67:b6:b4:db";

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// The base64 body lines of the unencrypted OpenSSH private key: the secret as it would leak.
fn private_pem_body(keypair: &KeyPair) -> Vec<String> {
    let pem = keypair.private.to_openssh(LineEnding::LF).unwrap();
    pem.lines()
        .filter(|line| !line.starts_with("-----"))
        .map(str::to_owned)
        .collect()
}

fn private_seed_hex(keypair: &KeyPair) -> String {
    let ed = keypair.private.key_data().ed25519().unwrap();
    format!("{:x}", ed.private)
}

#[test]
fn known_ed25519_key_has_ssh_keygen_fingerprints() {
    let key = PublicKey::parse(ED25519_LINE).unwrap();
    assert_eq!(key.fingerprint_sha256(), ED25519_SHA256);
    assert_eq!(key.fingerprint_md5(), ED25519_MD5);
    assert_eq!(
        key.fingerprint_sha256_aws(),
        "NhoVv0eYY4uIkL1qrZKstikUl2hnweFsfbVjjDc9sJc="
    );
    assert_eq!(key.algorithm(), "ssh-ed25519");
    assert_eq!(key.comment(), "vector@test");
    assert_eq!(key.to_openssh(), ED25519_LINE);
}

#[test]
fn known_rsa_key_has_ssh_keygen_fingerprints() {
    let key = PublicKey::parse(RSA_LINE).unwrap();
    assert_eq!(key.algorithm(), "ssh-rsa");
    assert_eq!(key.fingerprint_sha256(), RSA_SHA256);
    assert_eq!(key.fingerprint_md5(), RSA_MD5);
    assert_eq!(key.to_openssh(), RSA_LINE);
}

#[test]
fn parse_tolerates_surrounding_whitespace_and_missing_comment() {
    let key = PublicKey::parse(&format!("  {ED25519_LINE}\n")).unwrap();
    assert_eq!(key.to_openssh(), ED25519_LINE);

    let bare = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMOSO43tqdJ3jEo9btpgP1Q1ggkcu9eoLkmeBWG2ahly";
    let key = PublicKey::parse(bare).unwrap();
    assert_eq!(key.comment(), "");
    assert_eq!(key.to_openssh(), bare);
    // The comment is not part of the key blob, so the fingerprint does not change.
    assert_eq!(key.fingerprint_sha256(), ED25519_SHA256);
}

#[test]
fn parse_rejects_garbage() {
    for bad in [
        "",
        "hello",
        "ssh-ed25519 not-base64!",
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMOSO43tqdJ3jEo9",
    ] {
        let err = PublicKey::parse(bad).unwrap_err();
        assert!(matches!(err, Error::ParsePublic { .. }), "{bad:?}: {err:?}");
    }
}

#[test]
fn parse_of_a_private_key_does_not_echo_it() {
    let keypair = KeyPair::generate("oops");
    let pem = keypair.private.to_openssh(LineEnding::LF).unwrap();
    let err = PublicKey::parse(&pem).unwrap_err();
    let shown = format!("{err} {err:?}");
    for line in private_pem_body(&keypair) {
        assert!(!shown.contains(&line), "error leaks the key: {shown}");
    }
}

#[test]
fn generate_makes_ed25519_with_comment() {
    let keypair = KeyPair::generate("deploy@web-1");
    let public = keypair.public();
    assert_eq!(public.algorithm(), "ssh-ed25519");
    assert_eq!(public.comment(), "deploy@web-1");
    assert!(
        public
            .to_openssh()
            .starts_with("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI")
    );
    assert!(public.to_openssh().ends_with(" deploy@web-1"));
    // Two generations never give the same key.
    assert_ne!(
        KeyPair::generate("x").public(),
        KeyPair::generate("x").public()
    );
}

#[test]
fn generate_keeps_comment_on_one_line() {
    let keypair = KeyPair::generate("a\nb\r\nc");
    assert!(!keypair.public().to_openssh().contains(['\n', '\r']));
    assert_eq!(keypair.public().comment(), "a b  c");
}

#[test]
fn hand_built_ed25519_blob_matches_ssh_key_encoding() {
    let keypair = KeyPair::generate("blob");
    let from_ssh_key = keypair.private.public_key().to_bytes().unwrap();
    assert_eq!(keypair.public.blob, from_ssh_key);
    // And the parsed form of our own line agrees on everything.
    let reparsed = PublicKey::parse(&keypair.public().to_openssh()).unwrap();
    assert_eq!(reparsed, keypair.public());
    assert_eq!(
        reparsed.fingerprint_sha256(),
        keypair
            .private
            .fingerprint(ssh_key::HashAlg::Sha256)
            .to_string()
    );
}

#[test]
fn fingerprint_formats() {
    let key = KeyPair::generate("fmt").public();
    let md5 = key.fingerprint_md5();
    let parts: Vec<&str> = md5.split(':').collect();
    assert_eq!(parts.len(), 16);
    assert!(parts.iter().all(|p| {
        p.len() == 2
            && p.chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
    }));

    let sha = key.fingerprint_sha256();
    assert!(sha.starts_with("SHA256:"));
    assert_eq!(sha.len(), "SHA256:".len() + 43);
    assert!(!sha.contains('='));

    let aws = key.fingerprint_sha256_aws();
    assert_eq!(aws.len(), 44);
    assert_eq!(aws, format!("{}=", &sha["SHA256:".len()..]));
}

#[test]
fn write_then_load_round_trips_and_sets_modes() {
    let dir = tempfile::tempdir().unwrap();
    let key_dir = dir.path().join("nested").join("keys");
    let path = key_dir.join("id_ed25519");
    let keypair = KeyPair::generate("round@trip");
    keypair.write(&path, None).unwrap();

    assert_eq!(mode(&path), 0o600);
    assert_eq!(mode(&public_path(&path)), 0o644);
    assert_eq!(mode(&key_dir), 0o700);
    assert_eq!(mode(key_dir.parent().unwrap()), 0o700);

    let text = fs::read_to_string(&path).unwrap();
    assert!(text.starts_with("-----BEGIN OPENSSH PRIVATE KEY-----\n"));
    let pub_text = fs::read_to_string(public_path(&path)).unwrap();
    assert_eq!(pub_text, format!("{}\n", keypair.public().to_openssh()));

    let loaded = KeyPair::load(&path, None).unwrap();
    assert_eq!(loaded.public(), keypair.public());
    assert_eq!(private_seed_hex(&loaded), private_seed_hex(&keypair));
    assert_eq!(
        PublicKey::load(&public_path(&path)).unwrap(),
        keypair.public()
    );
}

#[test]
fn write_leaves_an_existing_parent_dir_alone() {
    let dir = tempfile::tempdir().unwrap();
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let path = dir.path().join("key");
    KeyPair::generate("c").write(&path, None).unwrap();
    assert_eq!(mode(dir.path()), 0o755);
    assert_eq!(mode(&path), 0o600);
}

#[test]
fn write_with_passphrase_encrypts() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("enc");
    let keypair = KeyPair::generate("enc");
    keypair.write(&path, Some("correct horse")).unwrap();

    let on_disk = PrivateKey::read_openssh_file(&path).unwrap();
    assert!(on_disk.is_encrypted());
    let text = fs::read_to_string(&path).unwrap();
    for line in private_pem_body(&keypair) {
        assert!(!text.contains(&line));
    }

    let loaded = KeyPair::load(&path, Some("correct horse")).unwrap();
    assert_eq!(loaded.public(), keypair.public());
    assert_eq!(private_seed_hex(&loaded), private_seed_hex(&keypair));
}

#[test]
fn encrypted_key_needs_the_right_passphrase() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("enc");
    let keypair = KeyPair::generate("enc");
    keypair.write(&path, Some("s3cret-pass")).unwrap();

    for missing in [None, Some("")] {
        let err = KeyPair::load(&path, missing).unwrap_err();
        assert!(matches!(err, Error::PassphraseRequired { .. }), "{err:?}");
        let msg = err.to_string();
        assert!(msg.contains(&path.display().to_string()), "{msg}");
        assert!(msg.contains("passphrase is required"), "{msg}");
    }

    let err = KeyPair::load(&path, Some("wrong-guess")).unwrap_err();
    assert!(matches!(err, Error::WrongPassphrase { .. }), "{err:?}");
    let shown = format!("{err} {err:?}");
    assert!(shown.contains(&path.display().to_string()), "{shown}");
    assert!(!shown.contains("wrong-guess") && !shown.contains("s3cret-pass"));
    for line in private_pem_body(&keypair) {
        assert!(!shown.contains(&line));
    }
}

#[test]
fn empty_passphrase_writes_unencrypted() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("plain");
    KeyPair::generate("p").write(&path, Some("")).unwrap();
    assert!(!PrivateKey::read_openssh_file(&path).unwrap().is_encrypted());
    // A passphrase given for an unencrypted key is not an error.
    KeyPair::load(&path, Some("unused")).unwrap();
}

#[test]
fn write_refuses_to_overwrite_a_private_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("id");
    let first = KeyPair::generate("first");
    first.write(&path, None).unwrap();
    let before = fs::read(&path).unwrap();
    let before_pub = fs::read(public_path(&path)).unwrap();

    let err = KeyPair::generate("second").write(&path, None).unwrap_err();
    assert!(matches!(err, Error::AlreadyExists { .. }), "{err:?}");
    assert!(err.to_string().contains(&path.display().to_string()));
    assert_eq!(fs::read(&path).unwrap(), before);
    assert_eq!(fs::read(public_path(&path)).unwrap(), before_pub);
}

#[test]
fn write_refuses_a_dangling_symlink_at_the_private_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("id");
    let target = dir.path().join("elsewhere");
    std::os::unix::fs::symlink(&target, &path).unwrap();
    let err = KeyPair::generate("s").write(&path, None).unwrap_err();
    assert!(matches!(err, Error::AlreadyExists { .. }), "{err:?}");
    assert!(!target.exists());
}

#[test]
fn write_replaces_a_stale_public_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("id");
    let stale = public_path(&path);
    fs::write(&stale, format!("{ED25519_LINE}\n")).unwrap();
    fs::set_permissions(&stale, fs::Permissions::from_mode(0o600)).unwrap();

    let keypair = KeyPair::generate("fresh");
    keypair.write(&path, None).unwrap();
    assert_eq!(PublicKey::load(&stale).unwrap(), keypair.public());
    assert_eq!(mode(&stale), 0o644);
}

#[test]
fn public_path_appends_pub() {
    assert_eq!(
        public_path(Path::new("/a/b/id_ed25519")),
        PathBuf::from("/a/b/id_ed25519.pub")
    );
    assert_eq!(
        public_path(Path::new("deploy.key")),
        PathBuf::from("deploy.key.pub")
    );
}

#[test]
fn public_load_rejects_a_private_key_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("id");
    let keypair = KeyPair::generate("k");
    keypair.write(&path, None).unwrap();

    let err = PublicKey::load(&path).unwrap_err();
    assert!(matches!(err, Error::NotAPublicKey { .. }), "{err:?}");
    let shown = format!("{err} {err:?}");
    assert!(shown.contains(&path.display().to_string()), "{shown}");
    for line in private_pem_body(&keypair) {
        assert!(!shown.contains(&line));
    }
}

#[test]
fn public_load_errors_name_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.pub");
    let err = PublicKey::load(&missing).unwrap_err();
    assert!(matches!(err, Error::Read { .. }), "{err:?}");
    assert!(err.to_string().contains(&missing.display().to_string()));

    let junk = dir.path().join("junk.pub");
    fs::write(&junk, "not a key\n").unwrap();
    let err = PublicKey::load(&junk).unwrap_err();
    assert!(matches!(err, Error::ParsePublicFile { .. }), "{err:?}");
    assert!(err.to_string().contains(&junk.display().to_string()));
}

#[test]
fn private_load_errors_name_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing");
    let err = KeyPair::load(&missing, None).unwrap_err();
    assert!(matches!(err, Error::Read { .. }), "{err:?}");
    assert!(err.to_string().contains(&missing.display().to_string()));

    // A .pub given where the private key is expected.
    let public = dir.path().join("id.pub");
    fs::write(&public, format!("{ED25519_LINE}\n")).unwrap();
    let err = KeyPair::load(&public, None).unwrap_err();
    assert!(matches!(err, Error::ParsePrivate { .. }), "{err:?}");
    assert!(err.to_string().contains(&public.display().to_string()));
}

#[test]
fn load_or_generate_creates_once_then_loads() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("deploy").join("id_ed25519");

    let (first, created) = load_or_generate(&path, None, "deploy@one").unwrap();
    assert!(created);
    assert_eq!(mode(&path), 0o600);
    assert_eq!(mode(path.parent().unwrap()), 0o700);

    let (second, created) = load_or_generate(&path, None, "ignored").unwrap();
    assert!(!created);
    assert_eq!(second.public(), first.public());
    assert_eq!(second.public().comment(), "deploy@one");
}

#[test]
fn load_or_generate_with_passphrase() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("id");
    let (first, created) = load_or_generate(&path, Some("pw"), "c").unwrap();
    assert!(created);
    let (second, created) = load_or_generate(&path, Some("pw"), "c").unwrap();
    assert!(!created);
    assert_eq!(first.public(), second.public());
    let err = load_or_generate(&path, None, "c").unwrap_err();
    assert!(matches!(err, Error::PassphraseRequired { .. }), "{err:?}");
}

#[test]
fn debug_output_hides_the_private_key() {
    let keypair = KeyPair::generate("debug@test");
    let debug = format!("{keypair:?} {keypair:#?}");
    for line in private_pem_body(&keypair) {
        assert!(
            !debug.contains(&line),
            "Debug leaks the private key: {debug}"
        );
    }
    assert!(!debug.contains(&private_seed_hex(&keypair)));
    assert!(debug.contains("<redacted>"));
    assert!(debug.contains(&keypair.public().fingerprint_sha256()));
}

/// A test key file from `testdata/`.
fn testdata(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata")
        .join(name)
}

// See: issue 13, finding 4 (an RSA-1024 key was uploaded although sshd requires 3072 bits).
#[test]
fn key_types_and_rsa_sizes_are_read_from_the_file() {
    for (file, algorithm, bits) in [
        ("rsa1024.pub", "ssh-rsa", Some(1024)),
        ("rsa2048.pub", "ssh-rsa", Some(2048)),
        ("rsa3072.pub", "ssh-rsa", Some(3072)),
        ("dsa.pub", "ssh-dss", None),
        ("ed25519.pub", "ssh-ed25519", None),
    ] {
        let k = PublicKey::load(&testdata(file)).unwrap();
        assert_eq!(k.algorithm(), algorithm, "{file}");
        assert_eq!(k.rsa_bits(), bits, "{file}");
    }
    // ECDSA is not compiled in: its type is named, so the caller can say what to use instead.
    for (file, key_type) in [
        ("ecdsa256.pub", "ecdsa-sha2-nistp256"),
        ("ecdsa384.pub", "ecdsa-sha2-nistp384"),
    ] {
        let err = PublicKey::load(&testdata(file)).unwrap_err();
        assert_eq!(err.unsupported_key_type(), Some(key_type), "{err:?}");
    }
}

// See: issue 13, finding 5 (a .pub with extra lines echoed them, a PuTTY private key included).
#[test]
fn pub_files_with_more_than_a_key_line_are_refused_without_quoting_them() {
    const CANARY: &str = "CANARY_PRIVATE_c0ffee";
    let dir = tempfile::tempdir().unwrap();
    let ed = fs::read_to_string(testdata("ed25519.pub")).unwrap();
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "putty-after.pub",
            format!(
                "{ed}PuTTY-User-Key-File-3: ssh-ed25519\nEncryption: none\nPrivate-Lines: 1\n{CANARY}\n"
            ),
            "line 2: this is a private key",
        ),
        (
            "putty.ppk",
            format!("PuTTY-User-Key-File-3: ssh-ed25519\nPrivate-Lines: 1\n{CANARY}\n"),
            "line 1: this is a private key",
        ),
        ("two.pub", format!("{ed}{ed}"), "line 2: a second key line"),
        ("junk.pub", format!("{CANARY} AAAA\n"), "line 1"),
        (
            "ssh2.pub",
            format!("---- BEGIN SSH2 PUBLIC KEY ----\n{CANARY}\n---- END SSH2 PUBLIC KEY ----\n"),
            "ssh-keygen -i",
        ),
        (
            "empty.pub",
            "\n# only a comment\n".to_owned(),
            "no key line",
        ),
    ];
    for (name, text, needle) in cases {
        let path = dir.path().join(name);
        fs::write(&path, &text).unwrap();
        let err = PublicKey::load(&path).unwrap_err().to_string();
        assert!(
            !err.contains(CANARY) && !err.contains("AAAA"),
            "{name}: {err}"
        );
        assert!(!err.contains("Private-Lines"), "{name}: {err}");
        assert!(err.contains(needle), "{name}: {err}");
        assert!(err.contains(&path.display().to_string()), "{name}: {err}");
    }
    // Comments and blank lines around the one key line are fine.
    let ok = dir.path().join("ok.pub");
    fs::write(&ok, format!("# mine\n\n{ed}\n")).unwrap();
    assert!(PublicKey::load(&ok).is_ok());
}

// See: issue 13, findings 5 and 10 (an 80 MB file, a FIFO, /dev/zero, a directory).
#[test]
fn only_small_regular_files_are_read_as_keys() {
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big.pub");
    let mut text = fs::read_to_string(testdata("ed25519.pub")).unwrap();
    text.push_str(&"#".repeat(20_000));
    fs::write(&big, &text).unwrap();
    let fifo = dir.path().join("fifo.pub");
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let started = std::time::Instant::now();
    for path in [
        big.as_path(),
        fifo.as_path(),
        Path::new("/dev/zero"),
        dir.path(),
    ] {
        let err = PublicKey::load(path).unwrap_err();
        assert!(matches!(err, Error::File { .. }), "{path:?}: {err:?}");
        assert!(err.to_string().len() < 300, "{err}");
    }
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}

// See: issue 13, finding 8 (state files were read through symlinks).
#[test]
fn state_files_are_not_read_through_a_symlink() {
    let dir = tempfile::tempdir().unwrap();
    let real = dir.path().join("real");
    KeyPair::generate("x").write(&real, None).unwrap();
    let link = dir.path().join("link");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let err = KeyPair::load(&link, None).unwrap_err();
    assert!(err.to_string().contains("symlink"), "{err}");
    let kh = dir.path().join("known_hosts");
    std::os::unix::fs::symlink(&real, &kh).unwrap();
    let err = KnownHosts::load(&kh).unwrap_err();
    assert!(err.to_string().contains("symlink"), "{err}");
}
