//! The secrets of a deployment, made locally:
//! - SSH keys: generate ed25519 key pairs (the admin's login key and the server's host key),
//!   write and load OpenSSH key files safely (0600 from creation, optional passphrase) and compute
//!   the fingerprints each cloud shows (MD5, SHA256, AWS's padded SHA256);
//! - [`known_hosts`]: the pinned host key entries `ssh` checks, written before the first connection;
//! - [`wireguard`]: X25519 key pairs for `--vpn wireguard`;
//! - [`password`]: the generated sudo password and its SHA-512 crypt hash.
//!
//! Secrets rule: a private key, a passphrase or a password never ends up in an error
//! message or in `Debug` output.

pub mod known_hosts;
pub mod password;
pub mod wireguard;

pub use known_hosts::{KnownHosts, KnownHostsEntry, host_pattern, write_atomic};
pub use password::SudoPassword;
pub use wireguard::{WgKeyPair, WgPublicKey};
/// Buffers that hold secrets and are wiped when dropped.
pub use zeroize::Zeroizing;

use std::ffi::OsString;
use std::fmt;
use std::fs::{self, DirBuilder, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use bootstrap_core::config_file::{ReadError, Symlinks, read_text};
use md5::Md5;
use rand::rngs::OsRng;
use sha2::{Digest, Sha256};
use ssh_key::private::Ed25519Keypair;
use ssh_key::{LineEnding, PrivateKey};

/// Errors from parsing, loading and writing keys.
///
/// Messages name the file involved but never contain key material or passphrases.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The text is not an OpenSSH public key line (`ssh-ed25519 AAAA... comment`).
    #[error("not a valid OpenSSH public key line: {source}")]
    ParsePublic {
        /// Why ssh-key rejected it (never contains the input).
        source: ssh_key::Error,
    },

    /// A `.pub` file could not be parsed as an OpenSSH public key.
    #[error("{}: line {line}: not a valid OpenSSH public key: {source}", path.display())]
    ParsePublicFile {
        /// The file that was read.
        path: PathBuf,
        /// 1-based number of the key line.
        line: usize,
        /// Why ssh-key rejected it (never contains the file's content).
        source: ssh_key::Error,
    },

    /// A private key was given where a public key (`.pub`) was expected.
    #[error(
        "{}: line {line}: this is a private key, expected an OpenSSH public key (the .pub file)",
        path.display()
    )]
    NotAPublicKey {
        /// The offending file.
        path: PathBuf,
        /// 1-based line where the private key starts.
        line: usize,
    },

    /// A private key file could not be parsed as an OpenSSH private key.
    #[error("{}: not a valid OpenSSH private key: {source}", path.display())]
    ParsePrivate {
        /// The file that was read.
        path: PathBuf,
        /// Why ssh-key rejected it (never contains the key).
        source: ssh_key::Error,
    },

    /// The private key is encrypted and no passphrase was supplied.
    #[error("{}: the private key is encrypted, a passphrase is required", path.display())]
    PassphraseRequired {
        /// The encrypted key file.
        path: PathBuf,
    },

    /// The supplied passphrase does not decrypt the private key.
    #[error("{}: wrong passphrase for the encrypted private key", path.display())]
    WrongPassphrase {
        /// The encrypted key file.
        path: PathBuf,
    },

    /// Decrypting failed for another reason than a wrong passphrase (e.g. unsupported cipher).
    #[error("{}: cannot decrypt the private key: {source}", path.display())]
    Decrypt {
        /// The encrypted key file.
        path: PathBuf,
        /// Why decryption failed.
        source: ssh_key::Error,
    },

    /// Encoding or encrypting the key for writing failed.
    #[error("{}: cannot encode the private key: {source}", path.display())]
    Encode {
        /// The file that was to be written.
        path: PathBuf,
        /// Why encoding failed.
        source: ssh_key::Error,
    },

    /// Refusing to replace an existing private key, which would lose access to servers.
    #[error("{}: a private key already exists there, refusing to overwrite it", path.display())]
    AlreadyExists {
        /// The existing file.
        path: PathBuf,
    },

    /// A `.pub` file has no key line at all (empty, or only comments).
    #[error("{}: no key line; expected one line such as `ssh-ed25519 <base64> comment`", path.display())]
    NoKeyLine {
        /// The file.
        path: PathBuf,
    },

    /// A `.pub` file has more than one key line (only the first line's number is named, never
    /// the lines themselves: it may be a private key pasted after the public one).
    #[error(
        "{}: line {line}: a second key line; a .pub file holds exactly one line (`ssh-ed25519 <base64> comment`)",
        path.display()
    )]
    ExtraLines {
        /// The file.
        path: PathBuf,
        /// 1-based number of the first extra line.
        line: usize,
    },

    /// A `.pub` file in the RFC 4716 (SSH2, PuTTY) format rather than OpenSSH's.
    #[error(
        "{}: an RFC 4716 (SSH2/PuTTY) public key; convert it with `ssh-keygen -i -f FILE > FILE.pub`",
        path.display()
    )]
    Rfc4716 {
        /// The file.
        path: PathBuf,
    },

    /// A key type this crate cannot read (ECDSA is not compiled in).
    #[error("{}: {key_type} keys are not supported", path.display())]
    UnsupportedKeyType {
        /// The file.
        path: PathBuf,
        /// The type word of the line (`ecdsa-sha2-nistp256`), or `unknown` when not a type name.
        key_type: String,
    },

    /// A local file could not be read safely (not a regular file, too large, a symlink in the
    /// state directory, not text).
    #[error("{}: {source}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// Why (never its content).
        source: bootstrap_core::config_file::ReadError,
    },

    /// Reading a key file failed.
    #[error("{}: cannot read: {source}", path.display())]
    Read {
        /// The file that was read.
        path: PathBuf,
        /// The underlying I/O error.
        source: io::Error,
    },

    /// Writing a key file failed.
    #[error("{}: cannot write: {source}", path.display())]
    Write {
        /// The file that was written.
        path: PathBuf,
        /// The underlying I/O error.
        source: io::Error,
    },

    /// Creating the directory for the key failed.
    #[error("{}: cannot create directory: {source}", path.display())]
    CreateDir {
        /// The directory that was to be created.
        path: PathBuf,
        /// The underlying I/O error.
        source: io::Error,
    },

    /// A known_hosts line is neither an entry nor a comment.
    #[error("known_hosts line {line}: {reason}")]
    KnownHostsLine {
        /// 1-based line number.
        line: usize,
        /// What is wrong with it (never the line itself).
        reason: String,
    },

    /// A known_hosts file has a line that is neither an entry nor a comment.
    #[error("{}: line {line}: {reason}", path.display())]
    KnownHostsFile {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        reason: String,
    },

    /// A WireGuard key is not 32 bytes of standard base64.
    #[error("not a WireGuard key (32 bytes in base64, as `wg genkey` prints)")]
    InvalidWireGuardKey,

    /// A WireGuard key file does not hold a key.
    #[error("{}: not a WireGuard private key (32 bytes in base64)", path.display())]
    InvalidWireGuardKeyFile {
        /// The file.
        path: PathBuf,
    },

    /// A password is empty or has characters other than printable ASCII.
    #[error("a password must be one line of printable ASCII without spaces")]
    InvalidPassword,

    /// A password file does not hold one line of printable ASCII.
    #[error("{}: not a password file (one line of printable ASCII)", path.display())]
    InvalidPasswordFile {
        /// The file.
        path: PathBuf,
    },

    /// A crypt salt is empty, too long or outside `[./0-9A-Za-z]`.
    #[error("a SHA-512 crypt salt is 1-16 characters of [./0-9A-Za-z]")]
    InvalidSalt,

    /// The SHA-512 crypt computation failed (it does not for valid input).
    #[error("SHA-512 crypt failed")]
    Crypt,
}

impl Error {
    /// The key type of a key this crate cannot read, to check it against what the server accepts.
    pub fn unsupported_key_type(&self) -> Option<&str> {
        match self {
            Error::UnsupportedKeyType { key_type, .. } => Some(key_type),
            _ => None,
        }
    }

    /// Adds the file to a line-level known_hosts error.
    fn in_file(self, path: &Path) -> Error {
        match self {
            Error::KnownHostsLine { line, reason } => Error::KnownHostsFile {
                path: path.to_path_buf(),
                line,
                reason,
            },
            other => other,
        }
    }
}

/// An OpenSSH public key plus the fingerprints each cloud wants.
///
/// Cheap to clone; holds no secret, so it may be logged freely.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey {
    inner: ssh_key::PublicKey,
    /// The SSH wire-format key blob (what the base64 in the `.pub` line decodes to);
    /// every fingerprint is a hash of it.
    blob: Vec<u8>,
}

impl PublicKey {
    /// Parses one OpenSSH public key line (`ssh-ed25519 AAAA... comment`), as found in a `.pub` file.
    ///
    /// The error never echoes the input, in case a private key was passed by mistake.
    pub fn parse(openssh_line: &str) -> Result<PublicKey, Error> {
        let inner = ssh_key::PublicKey::from_openssh(openssh_line.trim())
            .map_err(|source| Error::ParsePublic { source })?;
        PublicKey::from_ssh_key(inner).map_err(|source| Error::ParsePublic { source })
    }

    /// The largest `.pub` file read: a 16384-bit RSA key line is under 3 KiB.
    pub const MAX_FILE_BYTES: u64 = 8 * 1024;

    /// Loads a `.pub` file, e.g. the user's `~/.ssh/id_ed25519.pub` to upload to a cloud.
    ///
    /// Fails if the file is not a small regular file, is not exactly one public key line, or is a
    /// private key. Errors name the file and the line, never its content.
    pub fn load(path: &Path) -> Result<PublicKey, Error> {
        let text = read_local(path, PublicKey::MAX_FILE_BYTES, Symlinks::Follow)?;
        let text = Zeroizing::new(text);
        let path_buf = || path.to_path_buf();
        if let Some(index) = private_key_line(&text) {
            return Err(Error::NotAPublicKey {
                path: path_buf(),
                line: index + 1,
            });
        }
        if text.contains("---- BEGIN SSH2 PUBLIC KEY ----") {
            return Err(Error::Rfc4716 { path: path_buf() });
        }
        let mut lines = text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty() && !l.trim_start().starts_with('#'));
        let Some((index, line)) = lines.next() else {
            return Err(Error::NoKeyLine { path: path_buf() });
        };
        if let Some((n, _)) = lines.next() {
            return Err(Error::ExtraLines {
                path: path_buf(),
                line: n + 1,
            });
        }
        let parse_error = |source| Error::ParsePublicFile {
            path: path_buf(),
            line: index + 1,
            source,
        };
        let inner = ssh_key::PublicKey::from_openssh(line.trim()).map_err(|e| match e {
            ssh_key::Error::AlgorithmUnknown => Error::UnsupportedKeyType {
                path: path_buf(),
                key_type: key_type_word(line),
            },
            e => parse_error(e),
        })?;
        PublicKey::from_ssh_key(inner).map_err(parse_error)
    }

    /// The modulus size of an RSA key in bits, `None` for other types.
    pub fn rsa_bits(&self) -> Option<u32> {
        let n = self.inner.key_data().rsa()?.n.as_positive_bytes()?;
        let first = n.iter().position(|b| *b != 0)?;
        let bytes = u32::try_from(n.len() - first).ok()?;
        Some(bytes * 8 - n[first].leading_zeros())
    }

    /// The OpenSSH one-line form (`ssh-ed25519 AAAA... comment`), as `authorized_keys` and cloud APIs take it.
    pub fn to_openssh(&self) -> String {
        let mut line = format!("{} {}", self.algorithm(), STANDARD.encode(&self.blob));
        let comment = self.inner.comment();
        if !comment.is_empty() {
            line.push(' ');
            line.push_str(comment);
        }
        line
    }

    /// MD5 fingerprint as colon-separated lowercase hex (`aa:bb:...`), the form Hetzner and DigitalOcean show.
    ///
    /// Equals `ssh-keygen -l -E md5` without its `MD5:` prefix.
    pub fn fingerprint_md5(&self) -> String {
        let digest = Md5::digest(&self.blob);
        digest
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect::<Vec<_>>()
            .join(":")
    }

    /// SHA256 fingerprint as OpenSSH prints it (`SHA256:` + unpadded base64), to match `ssh-keygen -l` output.
    pub fn fingerprint_sha256(&self) -> String {
        format!("SHA256:{}", STANDARD_NO_PAD.encode(self.sha256()))
    }

    /// The fingerprint AWS `ImportKeyPair`/`DescribeKeyPairs` report for ed25519 keys:
    /// padded base64 of the SHA256 of the key blob, without prefix.
    ///
    /// Only meaningful for ed25519; AWS uses a different (MD5 of DER) scheme for imported RSA keys.
    pub fn fingerprint_sha256_aws(&self) -> String {
        STANDARD.encode(self.sha256())
    }

    /// The SSH algorithm name, e.g. `ssh-ed25519`, to check what a cloud will accept.
    pub fn algorithm(&self) -> String {
        self.inner.algorithm().as_str().to_owned()
    }

    /// The comment after the key (often `user@host`), empty if none.
    pub fn comment(&self) -> &str {
        self.inner.comment()
    }

    /// `algorithm base64` without the comment, as known_hosts and `ssh_keys` want it.
    pub fn to_openssh_bare(&self) -> String {
        format!("{} {}", self.algorithm(), STANDARD.encode(&self.blob))
    }

    /// True when both are the same key, whatever their comments.
    pub fn same_key(&self, other: &PublicKey) -> bool {
        self.blob == other.blob
    }

    fn sha256(&self) -> [u8; 32] {
        Sha256::digest(&self.blob).into()
    }

    fn from_ssh_key(inner: ssh_key::PublicKey) -> Result<PublicKey, ssh_key::Error> {
        let blob = inner.to_bytes()?;
        Ok(PublicKey { inner, blob })
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PublicKey")
            .field("algorithm", &self.algorithm())
            .field("fingerprint", &self.fingerprint_sha256())
            .field("comment", &self.inner.comment())
            .finish()
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_openssh())
    }
}

/// A generated key pair for one deployment.
///
/// Always holds the decrypted key; `Debug` shows only the public half.
pub struct KeyPair {
    private: PrivateKey,
    public: PublicKey,
}

impl KeyPair {
    /// Generates a fresh ed25519 key pair from the OS random source, so each deployment gets its own key.
    ///
    /// Line breaks in `comment` are replaced by spaces so the `.pub` line stays one line.
    pub fn generate(comment: &str) -> KeyPair {
        let keypair = Ed25519Keypair::random(&mut OsRng);
        let public_bytes = keypair.public.0;
        let comment = comment.replace(['\r', '\n'], " ");
        let mut private = PrivateKey::from(keypair);
        private.set_comment(comment.clone());
        let mut inner = ssh_key::PublicKey::from(private.public_key().key_data().clone());
        inner.set_comment(comment);
        let public = PublicKey {
            inner,
            blob: ed25519_blob(&public_bytes),
        };
        KeyPair { private, public }
    }

    /// The public half, to upload to the cloud or put in `authorized_keys`.
    pub fn public(&self) -> PublicKey {
        self.public.clone()
    }

    /// The unencrypted OpenSSH private key text (`-----BEGIN OPENSSH PRIVATE KEY-----`), for
    /// cloud-init's `ssh_keys.ed25519_private`. A secret: wiped when dropped, never log it.
    pub fn private_openssh(&self) -> Result<Zeroizing<String>, Error> {
        self.private
            .to_openssh(LineEnding::LF)
            .map_err(|source| Error::Encode {
                path: PathBuf::from("<memory>"),
                source,
            })
    }

    /// Writes the OpenSSH private key to `private_path` (mode 0600 from creation, encrypted when a
    /// non-empty passphrase is given) and the public key to `<private_path>.pub` (0644).
    ///
    /// Creates a missing parent directory with mode 0700. Refuses to overwrite an existing private
    /// key; a stale `.pub` next to a missing private key is replaced.
    pub fn write(&self, private_path: &Path, passphrase: Option<&str>) -> Result<(), Error> {
        let encode_error = |source| Error::Encode {
            path: private_path.to_path_buf(),
            source,
        };
        if exists(private_path)? {
            return Err(Error::AlreadyExists {
                path: private_path.to_path_buf(),
            });
        }
        let pem = match non_empty(passphrase) {
            Some(passphrase) => self
                .private
                .encrypt(&mut OsRng, passphrase)
                .map_err(encode_error)?
                .to_openssh(LineEnding::LF),
            None => self.private.to_openssh(LineEnding::LF),
        }
        .map_err(encode_error)?;

        ensure_private_dir(private_path)?;

        write_new_file(private_path, pem.as_bytes(), 0o600).map_err(|source| {
            if source.kind() == io::ErrorKind::AlreadyExists {
                Error::AlreadyExists {
                    path: private_path.to_path_buf(),
                }
            } else {
                Error::Write {
                    path: private_path.to_path_buf(),
                    source,
                }
            }
        })?;

        let public_path = public_path(private_path);
        let public_line = format!("{}\n", self.public.to_openssh());
        let written = match fs::remove_file(&public_path) {
            Ok(()) => Ok(()),
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(err) => Err(err),
        }
        .and_then(|()| write_new_file(&public_path, public_line.as_bytes(), 0o644));
        if let Err(source) = written {
            // Do not leave a private key without its .pub: the next run would load a half-written pair.
            let _ = fs::remove_file(private_path);
            return Err(Error::Write {
                path: public_path,
                source,
            });
        }
        Ok(())
    }

    /// Loads an OpenSSH private key file, decrypting it with `passphrase` when it is encrypted.
    ///
    /// Fails with [`Error::PassphraseRequired`] or [`Error::WrongPassphrase`] when the passphrase
    /// is missing (or empty) or wrong; a passphrase given for an unencrypted key is ignored.
    pub fn load(private_path: &Path, passphrase: Option<&str>) -> Result<KeyPair, Error> {
        let path = || private_path.to_path_buf();
        // A state file: never through a symlink.
        let text = Zeroizing::new(read_local(private_path, 64 * 1024, Symlinks::Refuse)?);
        let mut private =
            PrivateKey::from_openssh(text.as_bytes()).map_err(|source| Error::ParsePrivate {
                path: path(),
                source,
            })?;
        if private.is_encrypted() {
            let Some(passphrase) = non_empty(passphrase) else {
                return Err(Error::PassphraseRequired { path: path() });
            };
            private = private.decrypt(passphrase).map_err(|source| match source {
                ssh_key::Error::Crypto => Error::WrongPassphrase { path: path() },
                source => Error::Decrypt {
                    path: path(),
                    source,
                },
            })?;
        }
        let public = PublicKey::from_ssh_key(private.public_key().clone()).map_err(|source| {
            Error::ParsePrivate {
                path: path(),
                source,
            }
        })?;
        Ok(KeyPair { private, public })
    }
}

impl fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyPair")
            .field("public", &self.public)
            .field("private", &"<redacted>")
            .finish()
    }
}

/// Loads the deployment key at `private_path` if it exists, else generates and writes it.
///
/// Returns `(keypair, created)`; `created` is true when a new key was generated and written,
/// so the caller knows to tell the user where it is.
pub fn load_or_generate(
    private_path: &Path,
    passphrase: Option<&str>,
    comment: &str,
) -> Result<(KeyPair, bool), Error> {
    if exists(private_path)? {
        return Ok((KeyPair::load(private_path, passphrase)?, false));
    }
    let keypair = KeyPair::generate(comment);
    keypair.write(private_path, passphrase)?;
    Ok((keypair, true))
}

/// `<private_path>.pub`, the name ssh-keygen uses for the public half.
fn public_path(private_path: &Path) -> PathBuf {
    let mut name = OsString::from(private_path.as_os_str());
    name.push(".pub");
    PathBuf::from(name)
}

/// Whether something (even a dangling symlink) is at `path`; errors other than "not found" are reported.
pub(crate) fn exists(path: &Path) -> Result<bool, Error> {
    match fs::symlink_metadata(path) {
        Ok(_) => Ok(true),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(source) => Err(Error::Read {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Creates the parent directory of `path` with mode 0700 when it is missing.
pub(crate) fn ensure_private_dir(path: &Path) -> Result<(), Error> {
    if let Some(parent) = path.parent()
        && !parent.as_os_str().is_empty()
        && !exists(parent)?
    {
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)
            .map_err(|source| Error::CreateDir {
                path: parent.to_path_buf(),
                source,
            })?;
    }
    Ok(())
}

/// Writes a secret to a new file: parent 0700 when created, the file 0600 from creation,
/// refusing to replace an existing one.
pub(crate) fn write_secret(path: &Path, contents: &[u8]) -> Result<(), Error> {
    ensure_private_dir(path)?;
    write_new_file(path, contents, 0o600).map_err(|source| {
        if source.kind() == io::ErrorKind::AlreadyExists {
            Error::AlreadyExists {
                path: path.to_path_buf(),
            }
        } else {
            Error::Write {
                path: path.to_path_buf(),
                source,
            }
        }
    })
}

/// Reads a small secret file of the state directory as text (never through a symlink); the
/// buffer is wiped when dropped.
pub(crate) fn read_secret(path: &Path) -> Result<Zeroizing<String>, Error> {
    read_local(path, 64 * 1024, Symlinks::Refuse).map(Zeroizing::new)
}

/// Reads a local file with core's one reader: a regular file of at most `max_bytes`; a missing
/// file is [`Error::Read`] with [`io::ErrorKind::NotFound`].
pub(crate) fn read_local(path: &Path, max_bytes: u64, symlinks: Symlinks) -> Result<String, Error> {
    match read_text(path, max_bytes, symlinks) {
        Ok(Some(text)) => Ok(text),
        Ok(None) => Err(Error::Read {
            path: path.to_path_buf(),
            source: io::Error::new(io::ErrorKind::NotFound, "no such file"),
        }),
        Err(ReadError::Io(source)) => Err(Error::Read {
            path: path.to_path_buf(),
            source,
        }),
        Err(source) => Err(Error::File {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// The first word of a key line when it looks like a key type name, for messages: it comes
/// from the user's file, so anything else is `unknown`.
fn key_type_word(line: &str) -> String {
    let word = line.split_whitespace().next().unwrap_or_default();
    let is_name = !word.is_empty()
        && word.len() <= 64
        && word
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"@.-".contains(&b));
    if is_name { word } else { "unknown" }.to_owned()
}

/// Creates `path` exclusively with `mode` (never widened later) and writes `contents`;
/// removes the file again if writing fails, so no truncated key is left behind.
fn write_new_file(path: &Path, contents: &[u8], mode: u32) -> io::Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)?;
    let result = file.write_all(contents).and_then(|()| file.sync_all());
    if result.is_err() {
        drop(file);
        let _ = fs::remove_file(path);
    }
    result
}

/// Treats an empty passphrase like none, as `ssh-keygen -N ""` does.
fn non_empty(passphrase: Option<&str>) -> Option<&str> {
    passphrase.filter(|p| !p.is_empty())
}

/// The 0-based line where a private key starts: PEM armor (OpenSSH, PKCS#1, PKCS#8) or a
/// PuTTY key file, whose public and private halves share one file.
fn private_key_line(text: &str) -> Option<usize> {
    text.lines().position(|l| {
        (l.contains("-----BEGIN") && l.contains("PRIVATE KEY"))
            || l.starts_with("PuTTY-User-Key-File-")
    })
}

/// The SSH wire-format blob of an ed25519 public key: string "ssh-ed25519", string key.
fn ed25519_blob(key: &[u8; 32]) -> Vec<u8> {
    const NAME: &[u8] = b"ssh-ed25519";
    let mut blob = Vec::with_capacity(4 + NAME.len() + 4 + key.len());
    blob.extend_from_slice(&[0, 0, 0, 11]);
    blob.extend_from_slice(NAME);
    blob.extend_from_slice(&[0, 0, 0, 32]);
    blob.extend_from_slice(key);
    blob
}

#[cfg(test)]
mod tests;
