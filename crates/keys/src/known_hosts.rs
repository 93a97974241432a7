//! known_hosts files that pin a server's host key before the first connection.
//!
//! `bootstrap create` generates the server's ed25519 host key itself, so it can write the entry
//! for the server's addresses and for an alias (the deployment name, used with `ssh -o
//! HostKeyAlias=NAME`) without ever trusting a key on first use. The file is the deployment's
//! own (mode 0600, replaced atomically), read by the system `ssh` through `UserKnownHostsFile`.
//!
//! The format is sshd(8)'s "SSH_KNOWN_HOSTS FILE FORMAT": `hosts keytype base64 [comment]`.
//! The comment after the key carries how the key was pinned (e.g. `bootstrap:user-data` until
//! `bootstrap verify` rotates it), so the file alone records whether a rotation is due.
//! Each entry line is read by `ssh_key::known_hosts` (the parser of the key crate already used);
//! this module adds what it lacks: line numbers in errors, lines kept verbatim, atomic writes.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use ssh_key::known_hosts::HostPatterns;

use crate::{Error, PublicKey};

/// One `hosts key comment` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownHostsEntry {
    /// Host patterns as ssh looks them up: `name`, `203.0.113.7`, `[127.0.0.1]:2222`.
    pub hosts: Vec<String>,
    /// The pinned public key.
    pub key: PublicKey,
    /// Free text after the key (how it was pinned); empty if none.
    pub comment: String,
}

/// A known_hosts file's content: our entries, plus comment and marker lines kept as they were.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KnownHosts {
    lines: Vec<Line>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Line {
    Entry(KnownHostsEntry),
    /// Blank lines, `#` comments, `@cert-authority`/`@revoked` and hashed (`|1|`) entries:
    /// not ours to interpret, kept verbatim.
    Verbatim(String),
}

/// The host pattern ssh uses for `host` on `port`: bare for port 22, `[host]:port` otherwise.
pub fn host_pattern(host: &str, port: u16) -> String {
    if port == 22 {
        host.to_owned()
    } else {
        format!("[{host}]:{port}")
    }
}

impl KnownHosts {
    /// An empty file.
    pub fn new() -> Self {
        Self::default()
    }

    /// Parses known_hosts text; a line that is neither an entry nor a comment/marker is an error
    /// naming its number (never its content).
    pub fn parse(text: &str) -> Result<Self, Error> {
        let mut lines = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let trimmed = raw.trim();
            if trimmed.is_empty()
                || trimmed.starts_with('#')
                || trimmed.starts_with('@')
                || trimmed.starts_with("|1|")
            {
                lines.push(Line::Verbatim(raw.to_owned()));
                continue;
            }
            let bad = |reason: &str| Error::KnownHostsLine {
                line: i + 1,
                reason: reason.to_owned(),
            };
            // ssh-key's own known_hosts parser reads the line (host patterns, key type, key,
            // comment); a parse error names the line, never its content.
            let entry: ssh_key::known_hosts::Entry = trimmed
                .parse()
                .map_err(|_| bad("not `hosts key-type base64-key [comment]`"))?;
            let HostPatterns::Patterns(hosts) = entry.host_patterns() else {
                // A hashed name: not one of ours (we never hash), kept as it was.
                lines.push(Line::Verbatim(raw.to_owned()));
                continue;
            };
            if hosts.is_empty() || hosts.iter().any(String::is_empty) {
                return Err(bad("empty host pattern"));
            }
            let mut inner = entry.public_key().clone();
            let comment = inner.comment().trim().to_owned();
            // The entry's comment is kept beside the key, as `add` stores it.
            inner.set_comment("");
            let key = PublicKey::from_ssh_key(inner).map_err(|_| bad("the key does not parse"))?;
            lines.push(Line::Entry(KnownHostsEntry {
                hosts: hosts.clone(),
                key,
                comment,
            }));
        }
        Ok(Self { lines })
    }

    /// Loads a file; `Ok(None)` when it does not exist.
    ///
    /// A state file: read without following a symlink, at most 1 MiB.
    pub fn load(path: &Path) -> Result<Option<Self>, Error> {
        match crate::read_local(
            path,
            1024 * 1024,
            bootstrap_core::config_file::Symlinks::Refuse,
        ) {
            Ok(text) => Self::parse(&text).map(Some).map_err(|e| e.in_file(path)),
            Err(Error::Read { source, .. }) if source.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Replaces the file atomically (temp file in the same directory, mode 0600, then rename),
    /// creating a missing parent directory with mode 0700.
    pub fn write(&self, path: &Path) -> Result<(), Error> {
        write_atomic(path, self.to_string().as_bytes(), 0o600)
    }

    /// The entries, in file order.
    pub fn entries(&self) -> impl Iterator<Item = &KnownHostsEntry> {
        self.lines.iter().filter_map(|l| match l {
            Line::Entry(e) => Some(e),
            Line::Verbatim(_) => None,
        })
    }

    /// The keys pinned for exactly this host pattern (see [`host_pattern`]).
    pub fn keys_for(&self, host: &str) -> Vec<&PublicKey> {
        self.entries()
            .filter(|e| e.hosts.iter().any(|h| h == host))
            .map(|e| &e.key)
            .collect()
    }

    /// The entries that name this host pattern.
    pub fn entries_for(&self, host: &str) -> Vec<&KnownHostsEntry> {
        self.entries()
            .filter(|e| e.hosts.iter().any(|h| h == host))
            .collect()
    }

    /// Makes `key` the only key pinned for `hosts`: they are removed from every other entry
    /// (entries left without hosts go), then one entry for all of them is added.
    pub fn pin(&mut self, hosts: &[String], key: &PublicKey, comment: &str) {
        self.forget_hosts(hosts);
        self.add(hosts, key, comment);
    }

    /// Adds an entry without touching others, so that ssh accepts either key for these hosts
    /// (used while a host key is being replaced).
    pub fn add(&mut self, hosts: &[String], key: &PublicKey, comment: &str) {
        if hosts.is_empty() {
            return;
        }
        self.lines.push(Line::Entry(KnownHostsEntry {
            hosts: hosts.to_vec(),
            key: bare(key),
            comment: comment.replace(['\r', '\n'], " "),
        }));
    }

    /// Removes these host patterns from every entry; entries left without hosts go.
    pub fn forget_hosts(&mut self, hosts: &[String]) {
        self.lines.retain_mut(|l| match l {
            Line::Entry(e) => {
                e.hosts.retain(|h| !hosts.contains(h));
                !e.hosts.is_empty()
            }
            Line::Verbatim(_) => true,
        });
    }

    /// Removes every entry for `key`, whatever hosts it names.
    pub fn remove_key(&mut self, key: &PublicKey) {
        self.lines.retain(|l| match l {
            Line::Entry(e) => !e.key.same_key(key),
            Line::Verbatim(_) => true,
        });
    }

    /// True when no entry is left.
    pub fn is_empty(&self) -> bool {
        self.entries().next().is_none()
    }
}

impl std::fmt::Display for KnownHosts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for line in &self.lines {
            match line {
                Line::Verbatim(s) => writeln!(f, "{s}")?,
                Line::Entry(e) => {
                    write!(f, "{} {}", e.hosts.join(","), e.key.to_openssh_bare())?;
                    if !e.comment.is_empty() {
                        write!(f, " {}", e.comment)?;
                    }
                    writeln!(f)?;
                }
            }
        }
        Ok(())
    }
}

/// The key without its comment (the entry's comment is the one that counts).
fn bare(key: &PublicKey) -> PublicKey {
    // The bare form is produced by our own formatter from a parsed key: it always parses.
    PublicKey::parse(&key.to_openssh_bare()).unwrap_or_else(|_| key.clone())
}

/// Writes `contents` to `path` through a temp file in the same directory (created with `mode`)
/// and a rename, so a reader sees the old or the new file, never half of one. A missing parent
/// directory is created with mode 0700.
pub fn write_atomic(path: &Path, contents: &[u8], mode: u32) -> Result<(), Error> {
    crate::ensure_private_dir(path)?;
    let tmp = temp_sibling(path);
    let write_err = |source| Error::Write {
        path: path.to_path_buf(),
        source,
    };
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        file.write_all(contents)?;
        file.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map_err(write_err)
}

/// `.<name>.tmp-<pid>` next to `path`.
fn temp_sibling(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp-{}", std::process::id()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::KeyPair;
    use std::os::unix::fs::PermissionsExt;

    fn key() -> PublicKey {
        KeyPair::generate("host").public()
    }

    #[test]
    fn host_patterns_bracket_non_default_ports() {
        assert_eq!(host_pattern("web1", 22), "web1");
        assert_eq!(host_pattern("2001:db8::1", 22), "2001:db8::1");
        assert_eq!(host_pattern("127.0.0.1", 2222), "[127.0.0.1]:2222");
        assert_eq!(host_pattern("2001:db8::1", 2222), "[2001:db8::1]:2222");
    }

    #[test]
    fn pin_then_round_trip() {
        let k = key();
        let mut kh = KnownHosts::new();
        let hosts = vec!["web1".to_owned(), "203.0.113.7".to_owned()];
        kh.pin(&hosts, &k, "bootstrap:user-data");
        let text = kh.to_string();
        assert_eq!(
            text,
            format!(
                "web1,203.0.113.7 {} bootstrap:user-data\n",
                k.to_openssh_bare()
            )
        );
        let back = KnownHosts::parse(&text).unwrap();
        assert_eq!(back, kh);
        assert_eq!(back.keys_for("web1").len(), 1);
        assert!(back.keys_for("web1")[0].same_key(&k));
        assert!(back.keys_for("web2").is_empty());
        assert_eq!(
            back.entries_for("203.0.113.7")[0].comment,
            "bootstrap:user-data"
        );
    }

    #[test]
    fn pin_replaces_only_the_named_hosts() {
        let (old, new) = (key(), key());
        let mut kh = KnownHosts::parse("# mine\n").unwrap();
        kh.pin(&["web1".into(), "203.0.113.7".into()], &old, "a");
        kh.pin(&["other".into()], &old, "b");
        kh.pin(&["web1".into()], &new, "c");
        assert!(kh.keys_for("web1")[0].same_key(&new));
        assert_eq!(kh.keys_for("web1").len(), 1);
        assert!(kh.keys_for("203.0.113.7")[0].same_key(&old));
        assert!(kh.keys_for("other")[0].same_key(&old));
        assert!(kh.to_string().starts_with("# mine\n"));
    }

    #[test]
    fn add_keeps_both_keys_and_remove_key_drops_one() {
        let (old, new) = (key(), key());
        let mut kh = KnownHosts::new();
        kh.pin(&["web1".into()], &old, "old");
        kh.add(&["web1".into()], &new, "new");
        assert_eq!(kh.keys_for("web1").len(), 2);
        kh.remove_key(&old);
        assert_eq!(kh.keys_for("web1").len(), 1);
        assert!(kh.keys_for("web1")[0].same_key(&new));
        kh.remove_key(&new);
        assert!(kh.is_empty());
    }

    #[test]
    fn keeps_markers_and_hashed_lines_verbatim() {
        let k = key();
        let text = format!(
            "\n# comment\n@cert-authority *.example {}\n|1|abc=|def= {}\nweb1 {}\n",
            k.to_openssh_bare(),
            k.to_openssh_bare(),
            k.to_openssh_bare()
        );
        let kh = KnownHosts::parse(&text).unwrap();
        assert_eq!(kh.to_string(), text);
        assert_eq!(kh.entries().count(), 1);
    }

    #[test]
    fn rejects_garbage_naming_the_line_not_the_content() {
        for bad in [
            "web1\n",
            "web1 ssh-ed25519\n",
            "web1 ssh-ed25519 notbase64!!\n",
            ",x ssh-ed25519 AAAA\n",
        ] {
            let err = KnownHosts::parse(&format!("# ok\n{bad}")).unwrap_err();
            let msg = err.to_string();
            assert!(msg.contains("line 2"), "{msg}");
            assert!(!msg.contains("notbase64"), "{msg}");
        }
    }

    #[test]
    fn write_is_0600_and_replaces_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state/known_hosts");
        let mut kh = KnownHosts::new();
        kh.pin(&["web1".into()], &key(), "x");
        kh.write(&path).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let dir_mode = fs::metadata(path.parent().unwrap())
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(dir_mode, 0o700);
        kh.pin(&["web1".into()], &key(), "y");
        kh.write(&path).unwrap();
        assert_eq!(KnownHosts::load(&path).unwrap().unwrap(), kh);
        // No temp file is left behind.
        assert_eq!(fs::read_dir(path.parent().unwrap()).unwrap().count(), 1);
        assert!(
            KnownHosts::load(&dir.path().join("missing"))
                .unwrap()
                .is_none()
        );
    }
}
