//! The admin's sudo password (`--sudo password`): generated here, kept in the state dir (0600),
//! and handed to the server only as a SHA-512 crypt (`$6$`) hash for cloud-init's `hashed_passwd`.
//!
//! The salt is derived from the password (16 characters of the crypt alphabet from a SHA-512 of
//! the password), so the same state renders the same user-data: `render` shows byte for byte what
//! `create` sends. A salt exists to make precomputed tables and equal-password detection useless;
//! neither applies to a 24-character random password (~143 bits), which is also never reused.

use std::fmt;
use std::path::Path;

use rand::Rng;
use rand::distributions::Alphanumeric;
use rand::rngs::OsRng;
use sha2::{Digest, Sha512};
use zeroize::Zeroizing;

use crate::Error;

/// Length of a generated password: 24 of [A-Za-z0-9], log2(62^24) ≈ 143 bits.
pub const PASSWORD_LEN: usize = 24;

/// The crypt(3) base64 alphabet, which salts are drawn from.
const CRYPT_ALPHABET: &[u8; 64] =
    b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// A sudo password. `Debug` and `Display` print `***`.
pub struct SudoPassword(Zeroizing<String>);

impl SudoPassword {
    /// A fresh random password from the OS random source.
    pub fn generate() -> Self {
        let text: String = OsRng
            .sample_iter(&Alphanumeric)
            .take(PASSWORD_LEN)
            .map(char::from)
            .collect();
        Self(Zeroizing::new(text))
    }

    /// Wraps a password read elsewhere; it must be one line of printable ASCII.
    pub fn new(text: &str) -> Result<Self, Error> {
        if text.is_empty() || !text.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(Error::InvalidPassword);
        }
        Ok(Self(Zeroizing::new(text.to_owned())))
    }

    /// The password itself, for the one place that needs it (sudo's stdin over SSH).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The `$6$<salt>$<hash>` line for `/etc/shadow` (cloud-init's `hashed_passwd`).
    pub fn sha512_crypt(&self) -> Result<String, Error> {
        sha512_crypt(&self.0, &derived_salt(&self.0))
    }

    /// Loads the password file (one line).
    pub fn load(path: &Path) -> Result<Self, Error> {
        let text = crate::read_secret(path)?;
        Self::new(text.trim_end_matches(['\n', '\r'])).map_err(|_| Error::InvalidPasswordFile {
            path: path.to_path_buf(),
        })
    }

    /// Writes the password to a new file (0600 from creation; parent 0700).
    pub fn write(&self, path: &Path) -> Result<(), Error> {
        let line = Zeroizing::new(format!("{}\n", self.expose()));
        crate::write_secret(path, line.as_bytes())
    }

    /// Loads the password at `path`, or generates and writes one; `true` when generated.
    pub fn load_or_generate(path: &Path) -> Result<(Self, bool), Error> {
        if crate::exists(path)? {
            return Ok((Self::load(path)?, false));
        }
        let password = Self::generate();
        password.write(path)?;
        Ok((password, true))
    }
}

impl fmt::Debug for SudoPassword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SudoPassword(***)")
    }
}

impl fmt::Display for SudoPassword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// SHA-512 crypt with the default 5000 rounds: `$6$<salt>$<86 characters>`, as glibc's crypt(3),
/// `openssl passwd -6` and `mkpasswd -m sha-512` write it. `salt` is 1-16 crypt characters.
pub fn sha512_crypt(password: &str, salt: &str) -> Result<String, Error> {
    if salt.is_empty() || salt.len() > 16 || !salt.bytes().all(|b| CRYPT_ALPHABET.contains(&b)) {
        return Err(Error::InvalidSalt);
    }
    let params =
        sha_crypt::Sha512Params::new(sha_crypt::ROUNDS_DEFAULT).map_err(|_| Error::Crypt)?;
    let hash = sha_crypt::sha512_crypt_b64(password.as_bytes(), salt.as_bytes(), &params)
        .map_err(|_| Error::Crypt)?;
    Ok(format!("$6${salt}${hash}"))
}

/// 16 salt characters from SHA-512("bootstrap sudo salt v1\0" || password).
fn derived_salt(password: &str) -> String {
    let digest = Sha512::new()
        .chain_update(b"bootstrap sudo salt v1\0")
        .chain_update(password.as_bytes())
        .finalize();
    digest
        .iter()
        .take(16)
        .map(|b| char::from(CRYPT_ALPHABET[usize::from(b & 63)]))
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    /// From Ulrich Drepper's SHA-crypt specification (test vector 1, default rounds).
    #[test]
    fn drepper_vector() {
        assert_eq!(
            sha512_crypt("Hello world!", "saltstring").unwrap(),
            "$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1"
        );
    }

    #[test]
    fn generated_passwords_are_long_random_and_alphanumeric() {
        let a = SudoPassword::generate();
        let b = SudoPassword::generate();
        assert_eq!(a.expose().len(), PASSWORD_LEN);
        assert!(a.expose().bytes().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(a.expose(), b.expose());
    }

    #[test]
    fn hash_is_deterministic_per_password_and_differs_between_passwords() {
        let a = SudoPassword::generate();
        let h1 = a.sha512_crypt().unwrap();
        assert_eq!(h1, a.sha512_crypt().unwrap());
        assert!(h1.starts_with("$6$"));
        let parts: Vec<&str> = h1.split('$').collect();
        assert_eq!(parts.len(), 4, "{h1}");
        assert_eq!(parts[2].len(), 16);
        assert_eq!(parts[3].len(), 86);
        let b = SudoPassword::generate();
        let h2 = b.sha512_crypt().unwrap();
        assert_ne!(h1, h2);
        assert_ne!(parts[2], h2.split('$').nth(2).unwrap(), "salts differ too");
    }

    #[test]
    fn never_formats_the_password() {
        let a = SudoPassword::generate();
        assert_eq!(format!("{a}"), "***");
        assert!(!format!("{a:?}").contains(a.expose()));
    }

    #[test]
    fn bad_salts_and_passwords_are_refused() {
        for salt in ["", "a$b", &"a".repeat(17), "sält"] {
            assert!(sha512_crypt("x", salt).is_err(), "{salt:?}");
        }
        for pw in ["", "a b", "a\nb", "ü"] {
            assert!(SudoPassword::new(pw).is_err(), "{pw:?}");
        }
    }

    #[test]
    fn file_round_trip_is_0600() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d/sudo-password");
        let (a, new) = SudoPassword::load_or_generate(&path).unwrap();
        assert!(new);
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let (b, new) = SudoPassword::load_or_generate(&path).unwrap();
        assert!(!new);
        assert_eq!(a.expose(), b.expose());
    }
}
