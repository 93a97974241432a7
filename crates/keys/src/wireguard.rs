//! WireGuard key pairs (X25519), generated locally for `--vpn wireguard`.
//!
//! The encoding is WireGuard's: 32 bytes in standard base64 (44 characters), the private key
//! clamped as `wg genkey` clamps it, the public key `X25519(private, 9)` as `wg pubkey` computes
//! it. The curve arithmetic is curve25519-dalek's, the copy ed25519-dalek already brings.

use std::fmt;
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use curve25519_dalek::montgomery::MontgomeryPoint;
use rand::RngCore;
use rand::rngs::OsRng;
use zeroize::Zeroizing;

use crate::Error;

/// A WireGuard key pair; `Debug` shows only the public key.
pub struct WgKeyPair {
    private: Zeroizing<[u8; 32]>,
    public: WgPublicKey,
}

/// A WireGuard public key: 32 bytes, shown in base64 (safe to print and log).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct WgPublicKey([u8; 32]);

impl WgKeyPair {
    /// A fresh key pair from the OS random source.
    pub fn generate() -> Self {
        let mut bytes = Zeroizing::new([0u8; 32]);
        OsRng.fill_bytes(bytes.as_mut());
        Self::from_bytes(bytes)
    }

    /// Parses a private key in WireGuard's base64 form (as `wg genkey` prints it).
    pub fn from_private_base64(text: &str) -> Result<Self, Error> {
        let bytes = decode32(text.trim()).ok_or(Error::InvalidWireGuardKey)?;
        Ok(Self::from_bytes(bytes))
    }

    fn from_bytes(mut bytes: Zeroizing<[u8; 32]>) -> Self {
        clamp(&mut bytes);
        let public = WgPublicKey(MontgomeryPoint::mul_base_clamped(*bytes).to_bytes());
        Self {
            private: bytes,
            public,
        }
    }

    /// The public key, for the peer's configuration.
    pub fn public(&self) -> WgPublicKey {
        self.public
    }

    /// The private key in base64, for a `PrivateKey =` line. A secret: never print or log it.
    pub fn private_base64(&self) -> Zeroizing<String> {
        Zeroizing::new(STANDARD.encode(self.private.as_ref()))
    }

    /// Loads a private key file (base64 on one line, as `wg genkey > file` writes it).
    pub fn load(path: &Path) -> Result<Self, Error> {
        let text = crate::read_secret(path)?;
        Self::from_private_base64(&text).map_err(|_| Error::InvalidWireGuardKeyFile {
            path: path.to_path_buf(),
        })
    }

    /// Writes the private key to a new file (mode 0600 from creation; parent 0700).
    pub fn write(&self, path: &Path) -> Result<(), Error> {
        let mut line = self.private_base64();
        line.push('\n');
        crate::write_secret(path, line.as_bytes())
    }

    /// Loads the key at `path`, or generates and writes one; `true` when it was generated.
    pub fn load_or_generate(path: &Path) -> Result<(Self, bool), Error> {
        if crate::exists(path)? {
            return Ok((Self::load(path)?, false));
        }
        let pair = Self::generate();
        pair.write(path)?;
        Ok((pair, true))
    }
}

impl fmt::Debug for WgKeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WgKeyPair")
            .field("public", &self.public)
            .field("private", &"<redacted>")
            .finish()
    }
}

impl WgPublicKey {
    /// Parses a public key in base64.
    pub fn from_base64(text: &str) -> Result<Self, Error> {
        decode32(text.trim())
            .map(|b| Self(*b))
            .ok_or(Error::InvalidWireGuardKey)
    }

    /// The base64 form (44 characters: `A-Z a-z 0-9 + / =`).
    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.0)
    }
}

impl fmt::Debug for WgPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WgPublicKey({})", self.to_base64())
    }
}

impl fmt::Display for WgPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_base64())
    }
}

/// Clamps a Curve25519 scalar the way WireGuard (and RFC 7748) does.
fn clamp(bytes: &mut [u8; 32]) {
    bytes[0] &= 248;
    bytes[31] &= 127;
    bytes[31] |= 64;
}

/// Standard base64 of exactly 32 bytes.
fn decode32(text: &str) -> Option<Zeroizing<[u8; 32]>> {
    if text.len() != 44 {
        return None;
    }
    let decoded = Zeroizing::new(STANDARD.decode(text).ok()?);
    let mut out = Zeroizing::new([0u8; 32]);
    if decoded.len() != 32 {
        return None;
    }
    out.copy_from_slice(&decoded);
    Some(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    /// RFC 7748 section 6.1: Alice's private key and public key.
    #[test]
    fn rfc7748_vector() {
        let private = hex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a");
        let public = hex("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a");
        let pair = WgKeyPair::from_private_base64(&STANDARD.encode(private)).unwrap();
        assert_eq!(pair.public().0, public);
    }

    #[test]
    fn generated_keys_are_clamped_round_trip_and_differ() {
        let a = WgKeyPair::generate();
        let b = WgKeyPair::generate();
        assert_ne!(a.public(), b.public());
        let text = a.private_base64();
        assert_eq!(text.len(), 44);
        let bytes = STANDARD.decode(text.as_str()).unwrap();
        assert_eq!(bytes[0] & 7, 0);
        assert_eq!(bytes[31] & 0xc0, 0x40);
        let again = WgKeyPair::from_private_base64(&text).unwrap();
        assert_eq!(again.public(), a.public());
        assert_eq!(
            WgPublicKey::from_base64(&a.public().to_base64()).unwrap(),
            a.public()
        );
    }

    #[test]
    fn debug_hides_the_private_key() {
        let a = WgKeyPair::generate();
        let dbg = format!("{a:?}");
        assert!(!dbg.contains(a.private_base64().as_str()), "{dbg}");
        assert!(dbg.contains(&a.public().to_base64()));
    }

    #[test]
    fn rejects_wrong_lengths_and_alphabets() {
        for bad in [
            "",
            "AAAA",
            &"A".repeat(43),
            &"A".repeat(45),
            &format!("{}!", "A".repeat(43)),
        ] {
            assert!(WgKeyPair::from_private_base64(bad).is_err(), "{bad:?}");
            assert!(WgPublicKey::from_base64(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn files_are_0600_and_load_back() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wg/server.key");
        let (a, new) = WgKeyPair::load_or_generate(&path).unwrap();
        assert!(new);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let (b, new) = WgKeyPair::load_or_generate(&path).unwrap();
        assert!(!new);
        assert_eq!(a.public(), b.public());
        std::fs::write(&path, "garbage\n").unwrap();
        let err = WgKeyPair::load(&path).unwrap_err().to_string();
        assert!(
            err.contains("server.key") && !err.contains("garbage"),
            "{err}"
        );
    }

    fn hex(s: &str) -> [u8; 32] {
        let mut out = [0u8; 32];
        for (i, o) in out.iter_mut().enumerate() {
            *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap();
        }
        out
    }
}
