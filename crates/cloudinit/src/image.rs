//! Images and the OpenSSH they ship: the sshd algorithm lists are rendered per image, because an
//! sshd refuses to start on a name it does not know (`Bad SSH2 KexAlgorithms`), which would lock
//! the owner out at first boot.
//!
//! Versions are the upstream OpenSSH of each release's `openssh-server` package (Debian:
//! packages.debian.org, Ubuntu: launchpad.net/ubuntu/+source/openssh). What each version knows,
//! from the OpenSSH release notes:
//! - 7.4: `curve25519-sha256` (the floor assumed for images not listed here);
//! - 8.2: FIDO keys (`sk-ssh-ed25519@openssh.com`);
//! - 8.5: `sntrup761x25519-sha512@openssh.com`; `PubkeyAcceptedKeyTypes` renamed
//!   `PubkeyAcceptedAlgorithms` (the old name stays an alias);
//! - 9.1: `RequiredRSASize`;
//! - 9.9: `mlkem768x25519-sha256`.

use minijinja::Value;

/// An OpenSSH release, `major.minor`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct OpensshVersion {
    /// Major version (9 in 9.6).
    pub major: u8,
    /// Minor version (6 in 9.6).
    pub minor: u8,
}

impl OpensshVersion {
    /// `major.minor`.
    pub const fn new(major: u8, minor: u8) -> Self {
        Self { major, minor }
    }

    /// True when this release is `major.minor` or later.
    pub fn at_least(self, major: u8, minor: u8) -> bool {
        self >= Self::new(major, minor)
    }
}

impl std::fmt::Display for OpensshVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// Images by the names Hetzner and bootstrap's AWS provider use, and Scaleway's Marketplace
/// labels (`ubuntu_noble`, ...), with their OpenSSH. DigitalOcean's slugs (`debian-12-x64`) are
/// mapped onto these by [`canonical_name`].
pub const KNOWN_IMAGES: &[(&str, OpensshVersion)] = &[
    ("ubuntu-20.04", OpensshVersion::new(8, 2)),
    ("ubuntu-22.04", OpensshVersion::new(8, 9)),
    ("ubuntu-24.04", OpensshVersion::new(9, 6)),
    ("ubuntu-24.10", OpensshVersion::new(9, 7)),
    ("ubuntu-25.04", OpensshVersion::new(9, 9)),
    ("ubuntu-25.10", OpensshVersion::new(10, 0)),
    ("debian-11", OpensshVersion::new(8, 4)),
    ("debian-12", OpensshVersion::new(9, 2)),
    ("debian-13", OpensshVersion::new(10, 0)),
    // Scaleway Marketplace labels: the same releases.
    ("ubuntu_jammy", OpensshVersion::new(8, 9)),
    ("ubuntu_noble", OpensshVersion::new(9, 6)),
    ("debian_bookworm", OpensshVersion::new(9, 2)),
    ("debian_trixie", OpensshVersion::new(10, 0)),
];

/// Which distribution family an image belongs to, as far as its name tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// Debian or Ubuntu: what the hardening template is written for (apt, unattended-upgrades,
    /// the `sudo` group, `sshd_config.d`).
    Debian,
    /// A name of another family (Rocky, Alma, CentOS, Fedora, openSUSE, ...): the embedded
    /// template would fail on it (no apt).
    Other,
    /// An id or a name that says nothing (an AMI id, a snapshot id).
    Unknown,
}

/// What the template needs to know about the image a server boots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageProfile {
    image: String,
    openssh: Option<OpensshVersion>,
}

/// The [`KNOWN_IMAGES`] name of an image: DigitalOcean's slugs carry the architecture and
/// write the version with dashes (`ubuntu-24-04-x64` is `ubuntu-24.04`, `debian-12-x64` is
/// `debian-12`); other names are returned as they are.
pub fn canonical_name(image: &str) -> String {
    let Some(base) = image.strip_suffix("-x64") else {
        return image.to_owned();
    };
    // `<distro>-<major>-<minor>` with a two-digit minor is `<distro>-<major>.<minor>`.
    let parts: Vec<&str> = base.split('-').collect();
    let number = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
    match parts.as_slice() {
        [distro, major, minor] if number(major) && number(minor) && minor.len() == 2 => {
            format!("{distro}-{major}.{minor}")
        }
        _ => base.to_owned(),
    }
}

/// Name prefixes of images outside the Debian family.
const OTHER_FAMILIES: &[&str] = &[
    "centos", "rocky", "alma", "fedora", "opensuse", "rhel", "amzn", "al20", "arch", "freebsd",
];

impl ImageProfile {
    /// The profile of an image name: its OpenSSH when listed in [`KNOWN_IMAGES`] (under its
    /// [`canonical_name`]), else none (the common subset).
    pub fn for_image(image: &str) -> Self {
        let canonical = canonical_name(image);
        let openssh = KNOWN_IMAGES
            .iter()
            .find(|(name, _)| *name == canonical)
            .map(|(_, v)| *v);
        Self {
            image: image.to_owned(),
            openssh,
        }
    }

    /// A profile for an image whose OpenSSH is known by other means (tests, `--template` users).
    pub fn with_openssh(image: &str, openssh: OpensshVersion) -> Self {
        Self {
            image: image.to_owned(),
            openssh: Some(openssh),
        }
    }

    /// The image name as given.
    pub fn image(&self) -> &str {
        &self.image
    }

    /// The OpenSSH the image ships, when known.
    pub fn openssh(&self) -> Option<OpensshVersion> {
        self.openssh
    }

    /// True when the image's OpenSSH is known.
    pub fn is_known(&self) -> bool {
        self.openssh.is_some()
    }

    /// The image's family, from its name.
    pub fn family(&self) -> Family {
        let name = self.image.to_ascii_lowercase();
        if name.starts_with("ubuntu") || name.starts_with("debian") {
            Family::Debian
        } else if OTHER_FAMILIES.iter().any(|p| name.starts_with(p)) {
            Family::Other
        } else {
            Family::Unknown
        }
    }

    /// The sshd algorithm lists and keywords for this image.
    pub fn algorithms(&self) -> SshAlgorithms {
        // 7.4: the oldest OpenSSH that knows every name of the common subset below.
        let v = self.openssh.unwrap_or(OpensshVersion::new(7, 4));
        let mut kex = Vec::new();
        if v.at_least(8, 5) {
            kex.push("sntrup761x25519-sha512@openssh.com");
        }
        if v.at_least(9, 9) {
            kex.push("mlkem768x25519-sha256");
        }
        kex.extend(["curve25519-sha256", "curve25519-sha256@libssh.org"]);

        // From the one table that also decides which `--ssh-key` is accepted.
        let pubkey = USER_KEY_TYPES
            .iter()
            .filter(|t| v >= t.since)
            .flat_map(|t| t.accepted_as.iter().copied())
            .collect();
        SshAlgorithms {
            openssh: self.openssh,
            kex,
            ciphers: vec![
                "chacha20-poly1305@openssh.com",
                "aes256-gcm@openssh.com",
                "aes128-gcm@openssh.com",
                "aes256-ctr",
                "aes192-ctr",
                "aes128-ctr",
            ],
            macs: vec![
                "hmac-sha2-512-etm@openssh.com",
                "hmac-sha2-256-etm@openssh.com",
                "umac-128-etm@openssh.com",
            ],
            // The only host key the server has is the ed25519 one bootstrap generated.
            host_key: vec!["ssh-ed25519", "ssh-ed25519-cert-v01@openssh.com"],
            pubkey,
            pubkey_keyword: if v.at_least(8, 5) {
                "PubkeyAcceptedAlgorithms"
            } else {
                "PubkeyAcceptedKeyTypes"
            },
            required_rsa_size: v.at_least(9, 1).then_some(MIN_RSA_BITS),
        }
    }
}

/// The smallest RSA key bootstrap accepts, on every image: rendered as `RequiredRSASize` where
/// sshd knows it (9.1), and checked offline for `--ssh-key` everywhere, so that the same key
/// works on every image.
pub const MIN_RSA_BITS: u16 = 3072;

/// One kind of user key: the names that let it log in under the rendered sshd config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UserKeyType {
    /// The key type, as a `.pub` line starts (`ssh-rsa`, `ecdsa-sha2-nistp256`).
    pub key_type: &'static str,
    /// Its names in `PubkeyAcceptedAlgorithms`; empty: bootstrap's sshd never accepts it.
    pub accepted_as: &'static [&'static str],
    /// The first OpenSSH that knows those names.
    pub since: OpensshVersion,
}

/// Every user key type bootstrap knows, in the order the template lists them: the one table
/// behind both the rendered `PubkeyAcceptedAlgorithms` and the offline `--ssh-key` check, so the
/// two cannot drift. No ECDSA (NIST curves), no DSA, no SHA-1 `ssh-rsa` signatures.
pub const USER_KEY_TYPES: &[UserKeyType] = &[
    UserKeyType {
        key_type: "ssh-ed25519",
        accepted_as: &["ssh-ed25519", "ssh-ed25519-cert-v01@openssh.com"],
        since: OpensshVersion::new(7, 4),
    },
    UserKeyType {
        key_type: "sk-ssh-ed25519@openssh.com",
        accepted_as: &[
            "sk-ssh-ed25519@openssh.com",
            "sk-ssh-ed25519-cert-v01@openssh.com",
        ],
        since: OpensshVersion::new(8, 2),
    },
    UserKeyType {
        key_type: "ssh-rsa",
        accepted_as: &[
            "rsa-sha2-512",
            "rsa-sha2-512-cert-v01@openssh.com",
            "rsa-sha2-256",
            "rsa-sha2-256-cert-v01@openssh.com",
        ],
        since: OpensshVersion::new(7, 4),
    },
    UserKeyType {
        key_type: "ecdsa-sha2-nistp256",
        accepted_as: &[],
        since: OpensshVersion::new(7, 4),
    },
    UserKeyType {
        key_type: "ecdsa-sha2-nistp384",
        accepted_as: &[],
        since: OpensshVersion::new(7, 4),
    },
    UserKeyType {
        key_type: "ecdsa-sha2-nistp521",
        accepted_as: &[],
        since: OpensshVersion::new(7, 4),
    },
    UserKeyType {
        key_type: "sk-ecdsa-sha2-nistp256@openssh.com",
        accepted_as: &[],
        since: OpensshVersion::new(8, 2),
    },
    UserKeyType {
        key_type: "ssh-dss",
        accepted_as: &[],
        since: OpensshVersion::new(7, 4),
    },
];

/// What to do about a refused key, in every refusal.
const KEY_FIX: &str = "use an ed25519 key: `ssh-keygen -t ed25519`";

/// The sshd algorithm settings of one image. `bootstrap verify` checks a live `sshd -T` against
/// the same lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshAlgorithms {
    /// The OpenSSH they were chosen for; `None` means the common subset.
    pub openssh: Option<OpensshVersion>,
    /// `KexAlgorithms`: post-quantum hybrids first where known, then curve25519.
    pub kex: Vec<&'static str>,
    /// `Ciphers`: AEAD first, CTR for old clients; no CBC.
    pub ciphers: Vec<&'static str>,
    /// `MACs`: encrypt-then-MAC only.
    pub macs: Vec<&'static str>,
    /// `HostKeyAlgorithms`: ed25519 only.
    pub host_key: Vec<&'static str>,
    /// Accepted user key types: no ECDSA, no DSA, no SHA-1 `ssh-rsa`.
    pub pubkey: Vec<&'static str>,
    /// `PubkeyAcceptedAlgorithms`, or its pre-8.5 name.
    pub pubkey_keyword: &'static str,
    /// `RequiredRSASize` where sshd knows it.
    pub required_rsa_size: Option<u16>,
}

impl SshAlgorithms {
    /// Refuses, offline, a user key that this sshd config would refuse at login: a type outside
    /// [`SshAlgorithms::pubkey`] (ECDSA, DSA, FIDO keys on old sshd) or RSA under
    /// [`MIN_RSA_BITS`]. `key_type` is the `.pub` line's first word, `rsa_bits` the modulus size.
    pub fn check_user_key(
        &self,
        key_type: &str,
        rsa_bits: Option<u32>,
    ) -> Result<(), crate::Error> {
        let refused = |reason: String| crate::Error::InvalidParam {
            param: "SSH key",
            reason: format!("{reason}; {KEY_FIX}"),
        };
        let accepted = USER_KEY_TYPES
            .iter()
            .find(|t| t.key_type == key_type)
            .filter(|t| t.accepted_as.iter().any(|a| self.pubkey.contains(a)));
        let Some(entry) = accepted else {
            // Named only when it is one of ours: the word comes from the user's file.
            let name = USER_KEY_TYPES
                .iter()
                .find(|t| t.key_type == key_type)
                .map_or("a key of this type", |t| t.key_type);
            return Err(refused(format!(
                "{name} cannot log in: the server's sshd ({}, {}) accepts only {} keys (RSA of {MIN_RSA_BITS} bits or more)",
                self.openssh.map_or_else(
                    || "any OpenSSH since 7.4".to_owned(),
                    |v| format!("OpenSSH {v}")
                ),
                self.pubkey_keyword,
                self.accepted_key_types().join(", ")
            )));
        };
        if entry.key_type == "ssh-rsa" {
            match rsa_bits {
                Some(bits) if bits >= u32::from(MIN_RSA_BITS) => {}
                Some(bits) => {
                    return Err(refused(format!(
                        "an RSA key of {bits} bits cannot log in: bootstrap's sshd config requires at least {MIN_RSA_BITS} bits (RequiredRSASize)"
                    )));
                }
                None => {
                    return Err(refused("the size of this RSA key is unknown".to_owned()));
                }
            }
        }
        Ok(())
    }

    /// The user key types this config accepts (`ssh-ed25519`, `ssh-rsa`, ...), for messages.
    pub fn accepted_key_types(&self) -> Vec<&'static str> {
        USER_KEY_TYPES
            .iter()
            .filter(|t| t.accepted_as.iter().any(|a| self.pubkey.contains(a)))
            .map(|t| t.key_type)
            .collect()
    }

    /// The `ssh` template variable. The lists are this crate's constants, so they are printed bare.
    pub(crate) fn template_value(&self) -> Value {
        let join = |v: &[&str]| Value::from_safe_string(v.join(","));
        minijinja::context! {
            kex => join(&self.kex),
            ciphers => join(&self.ciphers),
            macs => join(&self.macs),
            host_key_algorithms => join(&self.host_key),
            pubkey_algorithms => join(&self.pubkey),
            pubkey_keyword => Value::from_safe_string(self.pubkey_keyword.to_owned()),
            required_rsa_size => self.required_rsa_size,
            openssh => Value::from_safe_string(
                self.openssh.map_or_else(|| "unknown, common subset".to_owned(), |v| v.to_string()),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digitalocean_slugs_get_their_release_s_openssh() {
        for (slug, canonical, v) in [
            (
                "ubuntu-24-04-x64",
                "ubuntu-24.04",
                OpensshVersion::new(9, 6),
            ),
            ("debian-12-x64", "debian-12", OpensshVersion::new(9, 2)),
            ("debian-13-x64", "debian-13", OpensshVersion::new(10, 0)),
        ] {
            assert_eq!(canonical_name(slug), canonical);
            let p = ImageProfile::for_image(slug);
            assert_eq!(p.openssh(), Some(v), "{slug}");
            assert_eq!(p.image(), slug, "the name given is kept");
            assert_eq!(p.family(), Family::Debian);
        }
        // Other names pass through; a snapshot id says nothing.
        assert_eq!(canonical_name("ubuntu-24.04"), "ubuntu-24.04");
        assert_eq!(canonical_name("123456789"), "123456789");
        assert_eq!(canonical_name("centos-stream-9-x64"), "centos-stream-9");
        assert!(!ImageProfile::for_image("fedora-42-x64").is_known());
    }

    #[test]
    fn mlkem_only_from_9_9() {
        for (image, mlkem) in [
            ("ubuntu-24.04", false),
            ("debian-12", false),
            ("ubuntu-25.04", true),
            ("debian-13", true),
        ] {
            let a = ImageProfile::for_image(image).algorithms();
            assert_eq!(a.kex.contains(&"mlkem768x25519-sha256"), mlkem, "{image}");
            assert_eq!(a.kex[0], "sntrup761x25519-sha512@openssh.com", "{image}");
        }
    }

    #[test]
    fn old_and_unknown_images_get_names_their_sshd_knows() {
        let a = ImageProfile::for_image("debian-11").algorithms();
        assert!(!a.kex.iter().any(|k| k.starts_with("sntrup")));
        assert_eq!(a.pubkey_keyword, "PubkeyAcceptedKeyTypes");
        assert_eq!(a.required_rsa_size, None);

        let u = ImageProfile::for_image("ami-0123456789abcdef0");
        assert!(!u.is_known());
        assert_eq!(u.family(), Family::Unknown);
        let a = u.algorithms();
        assert_eq!(a.kex, ["curve25519-sha256", "curve25519-sha256@libssh.org"]);
        assert!(!a.pubkey.iter().any(|k| k.starts_with("sk-")));
        assert_eq!(a.required_rsa_size, None);

        let a = ImageProfile::for_image("ubuntu-24.04").algorithms();
        assert_eq!(a.pubkey_keyword, "PubkeyAcceptedAlgorithms");
        assert_eq!(a.required_rsa_size, Some(3072));
    }

    #[test]
    fn no_weak_algorithm_anywhere() {
        for image in KNOWN_IMAGES.iter().map(|(n, _)| *n).chain(["unknown"]) {
            let a = ImageProfile::for_image(image).algorithms();
            for name in a.kex.iter().chain(&a.host_key).chain(&a.pubkey) {
                assert!(
                    !name.contains("ecdsa")
                        && !name.contains("dss")
                        && !name.contains("sha1")
                        && *name != "ssh-rsa"
                        && !name.contains("diffie-hellman-group1"),
                    "{image}: {name}"
                );
            }
            assert!(
                a.macs.iter().all(|m| m.ends_with("-etm@openssh.com")),
                "{image}"
            );
            assert!(a.ciphers.iter().all(|c| !c.contains("cbc")), "{image}");
        }
    }

    #[test]
    fn families_from_names() {
        assert_eq!(
            ImageProfile::for_image("ubuntu-26.04").family(),
            Family::Debian
        );
        assert_eq!(
            ImageProfile::for_image("debian-12").family(),
            Family::Debian
        );
        assert_eq!(ImageProfile::for_image("rocky-9").family(), Family::Other);
        assert_eq!(
            ImageProfile::for_image("12345678").family(),
            Family::Unknown
        );
        assert!(!ImageProfile::for_image("ubuntu-26.04").is_known());
    }
}
