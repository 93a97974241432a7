//! A deployment's local state: only what the cloud cannot keep (DESIGN.md, "State").
//!
//! One directory per deployment, `<state dir>/<provider>/<name>` (mode 0700), holding:
//! - `id_ed25519`, `id_ed25519.pub`: the generated login key (unless `--ssh-key`);
//! - `known_hosts`: the pinned host key for the deployment name (used as `HostKeyAlias`) and the
//!   server's addresses, written before the server exists;
//! - `sudo-password`: the generated sudo password (`--sudo password`);
//! - `wg-server.key`, `wg-client.key`, `wg-bootstrap.conf`: the WireGuard keys and the client
//!   config (`--vpn wireguard`);
//! - `deployment.json`: the admin user, key path, image and modes `create` used, so that `verify`
//!   and `ssh` know what to expect and how to log in.
//!
//! Secrets are files of mode 0600 from creation; nothing here is printed or logged.
//!
//! The directory is trusted only when another local user cannot change it: the state root, the
//! provider's directory and the deployment's must each be a real directory (not a symlink), owned
//! by the user running bootstrap, and not writable by group or others. State files are read
//! without following symlinks, and `destroy` removes exactly the files listed here.

use std::net::{IpAddr, Ipv4Addr};
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

use bootstrap_core::DeploymentName;
use serde::{Deserialize, Serialize};

use crate::settings::{bad, state_dir};

/// Comment on a known_hosts entry pinned from the user-data (the key the provider also keeps).
pub const PINNED_FROM_USER_DATA: &str = "bootstrap:user-data";
/// Comment on a known_hosts entry for a key generated on the server by `verify`.
pub const PINNED_ROTATED: &str = "bootstrap:rotated";

/// The files of one deployment's state.
#[derive(Debug, Clone)]
pub struct DeploymentDir {
    dir: PathBuf,
    name: String,
}

impl DeploymentDir {
    /// The state of deployment `name` at `provider` (nothing is created); refuses a directory
    /// another local user could change (bad input naming the fix).
    pub fn new(provider: &str, name: &DeploymentName) -> anyhow::Result<Self> {
        let root = state_dir()?;
        let provider_dir = root.join(provider);
        let dir = provider_dir.join(name.as_str());
        for d in [&root, &provider_dir, &dir] {
            check_private_dir(d)?;
        }
        Ok(Self {
            dir,
            name: name.as_str().to_owned(),
        })
    }

    /// The directory itself.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// The deployment name, also the `HostKeyAlias` in known_hosts.
    pub fn alias(&self) -> &str {
        &self.name
    }

    /// The pinned host keys.
    pub fn known_hosts(&self) -> PathBuf {
        self.dir.join("known_hosts")
    }

    /// The generated sudo password.
    pub fn sudo_password(&self) -> PathBuf {
        self.dir.join("sudo-password")
    }

    /// The WireGuard server's private key (it also goes into the user-data).
    pub fn wg_server_key(&self) -> PathBuf {
        self.dir.join("wg-server.key")
    }

    /// The WireGuard server's public key after `verify` replaced the one from the user-data
    /// (its private half never leaves the server); the client config names it from then on.
    pub fn wg_server_public(&self) -> PathBuf {
        self.dir.join("wg-server.pub")
    }

    /// The WireGuard client's private key.
    pub fn wg_client_key(&self) -> PathBuf {
        self.dir.join("wg-client.key")
    }

    /// The client config for `wg-quick up` (interface `wg-bootstrap`).
    pub fn wg_client_config(&self) -> PathBuf {
        self.dir.join("wg-bootstrap.conf")
    }

    /// What `create` set up.
    pub fn record_path(&self) -> PathBuf {
        self.dir.join("deployment.json")
    }

    /// Reads `deployment.json` (not through a symlink); `Ok(None)` when there is none.
    pub fn load_record(&self) -> anyhow::Result<Option<DeploymentRecord>> {
        use bootstrap_core::config_file::{Symlinks, read_text};
        let path = self.record_path();
        let unreadable = |why: String| {
            bad(format!(
                "{} is not readable ({why}); remove it and run `bootstrap create` again",
                path.display()
            ))
        };
        match read_text(&path, 64 * 1024, Symlinks::Refuse) {
            // serde_json's message names line and column, never the text.
            Ok(Some(text)) => serde_json::from_str(&text)
                .map(Some)
                .map_err(|e| unreadable(e.to_string())),
            Ok(None) => Ok(None),
            Err(e) => Err(unreadable(e.to_string())),
        }
    }

    /// The record, or bad input naming what is missing.
    pub fn require_record(&self, command: &str) -> anyhow::Result<DeploymentRecord> {
        self.load_record()?.ok_or_else(|| {
            bad(format!(
                "no local state for {}: {} is missing; `bootstrap {command}` needs what `bootstrap create` wrote there (run it on the machine that created the server)",
                self.name,
                self.record_path().display()
            ))
        })
    }

    /// Writes `deployment.json` (0600, atomically).
    pub fn save_record(&self, record: &DeploymentRecord) -> anyhow::Result<()> {
        let text = serde_json::to_string_pretty(record)? + "\n";
        bootstrap_keys::write_atomic(&self.record_path(), text.as_bytes(), 0o600)?;
        Ok(())
    }

    /// Removes the directory when nothing is left in it.
    pub fn remove_if_empty(&self) {
        // Fails harmlessly when something else lives there.
        let _ = std::fs::remove_dir(&self.dir);
    }

    /// Every file bootstrap writes here (a symlink among them is removed, never followed).
    fn written_files(&self) -> Vec<PathBuf> {
        let key = self.dir.join("id_ed25519");
        vec![
            self.dir.join("id_ed25519.pub"),
            key,
            self.known_hosts(),
            self.sudo_password(),
            self.wg_server_key(),
            self.wg_server_public(),
            self.wg_client_key(),
            self.wg_client_config(),
            self.record_path(),
        ]
    }

    /// `destroy`: removes exactly the files bootstrap wrote, then the directory when that leaves
    /// it empty. Returns what was removed and the names of anything else that stays.
    pub fn remove_written(&self) -> anyhow::Result<(Vec<PathBuf>, Vec<String>)> {
        let mut removed = Vec::new();
        for f in self.written_files() {
            match std::fs::remove_file(&f) {
                Ok(()) => removed.push(f),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(anyhow::Error::new(e).context(format!("removing {}", f.display())));
                }
            }
        }
        let mut others = Vec::new();
        match std::fs::read_dir(&self.dir) {
            Ok(entries) => {
                for e in entries.flatten() {
                    others.push(e.file_name().to_string_lossy().into_owned());
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((removed, others)),
            Err(e) => {
                return Err(
                    anyhow::Error::new(e).context(format!("reading {}", self.dir.display()))
                );
            }
        }
        others.sort();
        if others.is_empty() {
            std::fs::remove_dir(&self.dir).map_err(|e| {
                anyhow::Error::new(e).context(format!("removing {}", self.dir.display()))
            })?;
        }
        Ok((removed, others))
    }
}

/// Refuses a state directory that is a symlink, not a directory, owned by someone else or
/// writable by group or others, naming the fix; a missing one is fine (it is made 0700).
pub fn check_private_dir(dir: &Path) -> anyhow::Result<()> {
    let meta = match std::fs::symlink_metadata(dir) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(anyhow::Error::new(e).context(format!("checking {}", dir.display()))),
    };
    let d = dir.display();
    if meta.file_type().is_symlink() {
        return Err(bad(format!(
            "state directory {d} is a symlink, which bootstrap does not follow (keys live there): replace it with a directory (`mkdir -m 700 {d}`) or set BOOTSTRAP_STATE_DIR to a directory of your own"
        )));
    }
    if !meta.is_dir() {
        return Err(bad(format!(
            "state directory {d} is not a directory: move it away or set BOOTSTRAP_STATE_DIR"
        )));
    }
    let me = rustix::process::geteuid().as_raw();
    if meta.uid() != me {
        return Err(bad(format!(
            "state directory {d} belongs to another user (uid {}), who could swap its keys: set BOOTSTRAP_STATE_DIR to a directory of your own",
            meta.uid()
        )));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(bad(format!(
            "state directory {d} is writable by other users (mode {:o}), who could swap known_hosts: run `chmod 700 {d}`",
            meta.mode() & 0o7777
        )));
    }
    Ok(())
}

/// The lock of one deployment, held for the length of a run that changes it (`create`,
/// `destroy`): `flock` on `<state dir>/<provider>/.<name>.lock`, which holds the holder's PID.
/// The kernel lets go when the process ends, however it ends. The file stays (removing it
/// would race with a run that just opened it).
#[derive(Debug)]
pub struct RunLock {
    _file: std::fs::File,
}

impl DeploymentDir {
    /// The lock file, beside the deployment's directory (which rollback may remove).
    fn lock_path(&self) -> PathBuf {
        let parent = self.dir.parent().unwrap_or(&self.dir);
        parent.join(format!(".{}.lock", self.name))
    }

    /// Takes the deployment's lock, waiting up to `wait` for another run on this machine to
    /// finish; then fails naming that run's PID.
    pub async fn lock(
        &self,
        wait: std::time::Duration,
        progress: &dyn bootstrap_core::Progress,
    ) -> anyhow::Result<RunLock> {
        use std::io::{Read as _, Seek as _, Write as _};
        use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
        let path = self.lock_path();
        if let Some(parent) = path.parent() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(parent)
                .map_err(|e| anyhow::anyhow!("creating {}: {e}", parent.display()))?;
        }
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            // Never through a symlink someone planted beside the deployment's directory.
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)
            .map_err(|e| anyhow::anyhow!("opening the lock {}: {e}", path.display()))?;
        let until = bootstrap_core::deadline::after(wait);
        let mut told = false;
        loop {
            match file.try_lock() {
                Ok(()) => break,
                Err(std::fs::TryLockError::WouldBlock) => {
                    let mut pid = String::new();
                    let _ = file.rewind().and_then(|()| file.read_to_string(&mut pid));
                    let pid = pid.trim().chars().take(12).collect::<String>();
                    let who = if pid.is_empty() {
                        "another bootstrap run".to_owned()
                    } else {
                        format!("another bootstrap run (pid {pid})")
                    };
                    if tokio::time::Instant::now() >= until {
                        anyhow::bail!(
                            "{who} is still working on deployment {} (lock {}); let it finish, then run this again (or give a longer --timeout)",
                            self.name,
                            path.display()
                        );
                    }
                    if !told {
                        progress.warn(&format!(
                            "{who} is working on deployment {}; waiting for it (up to {}s)",
                            self.name,
                            wait.as_secs()
                        ));
                        told = true;
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
                Err(std::fs::TryLockError::Error(e)) => {
                    anyhow::bail!("locking {}: {e}", path.display());
                }
            }
        }
        // Who holds it, for the message of a run that waits.
        file.set_len(0)?;
        file.rewind()?;
        writeln!(file, "{}", std::process::id())?;
        Ok(RunLock { _file: file })
    }
}

/// How sudo works for the admin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SudoMode {
    /// A generated password, kept in `sudo-password`.
    Password,
    /// No password.
    Nopasswd,
}

/// The WireGuard tunnel of a deployment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VpnRecord {
    /// Interface on the server.
    pub interface: String,
    /// UDP port on the server.
    pub port: u16,
    /// The server's tunnel address (where sshd listens).
    pub server_address: Ipv4Addr,
    /// The client's tunnel address.
    pub client_address: Ipv4Addr,
}

/// What `create` set up, for `verify` and `ssh`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeploymentRecord {
    /// The admin user.
    pub admin_user: String,
    /// The private key that logs in as the admin.
    pub identity_file: PathBuf,
    /// The image the server was created from (its OpenSSH decides the algorithms).
    pub image: String,
    /// sudo mode.
    pub sudo: SudoMode,
    /// `--docker`.
    pub docker: bool,
    /// `--vpn wireguard`.
    pub vpn: Option<VpnRecord>,
    /// `--allow-tcp-forwarding`.
    pub allow_tcp_forwarding: bool,
    /// Automatic reboot time, `HH:MM`.
    pub reboot_time: String,
    /// The server's addresses when `create` last saw it.
    pub ipv4: Option<IpAddr>,
    /// See `ipv4`.
    pub ipv6: Option<IpAddr>,
    /// How `create` reached the provider, so that the deployment's other commands need only
    /// its name (absent in state written before it was recorded).
    #[serde(default)]
    pub connection: Option<ConnectionRecord>,
    /// What `create` asked for, for `status` (absent in older state).
    #[serde(default)]
    pub intent: Option<IntentRecord>,
}

/// The server type, location and cloud-firewall rule `create` asked for: `status` compares the
/// cloud with them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IntentRecord {
    /// `--server-type` (or the provider's default).
    pub server_type: String,
    /// `--location` (or the provider's default).
    pub location: String,
    /// The managed inbound rule: `tcp` or `udp`.
    pub protocol: String,
    /// Its port (22, or 51820 with `--vpn wireguard`).
    pub port: u16,
    /// Its sources, as CIDRs.
    pub sources: Vec<String>,
}

/// Where a deployment lives: what `create` connected with, besides the provider (the directory
/// says that). No credential is ever stored here: a context is a name, not a token.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectionRecord {
    /// `--endpoint`, when one was given.
    pub endpoint: Option<String>,
    /// `--context`, when one was given.
    pub context: Option<String>,
    /// The provider's own connection flags (`--region`, `--zone`, `--profile`), by flag.
    pub flags: std::collections::BTreeMap<String, String>,
}

/// The providers under whose state a deployment `name` has a record, in registry order.
pub fn providers_with_state(name: &DeploymentName) -> anyhow::Result<Vec<&'static str>> {
    let root = state_dir()?;
    Ok(crate::providers::REGISTRY
        .iter()
        .map(|d| d.name)
        .filter(|p| {
            root.join(p)
                .join(name.as_str())
                .join("deployment.json")
                .is_file()
        })
        .collect())
}
