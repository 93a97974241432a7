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

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;

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
    /// The state of deployment `name` at `provider` (nothing is created).
    pub fn new(provider: &str, name: &DeploymentName) -> anyhow::Result<Self> {
        Ok(Self {
            dir: state_dir()?.join(provider).join(name.as_str()),
            name: name.as_str().to_owned(),
        })
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

    /// Reads `deployment.json`; `Ok(None)` when there is none.
    pub fn load_record(&self) -> anyhow::Result<Option<DeploymentRecord>> {
        let path = self.record_path();
        match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text).map(Some).map_err(|e| {
                bad(format!(
                    "{} is not readable ({e}); remove it and run `bootstrap create` again",
                    path.display()
                ))
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(anyhow::Error::new(e).context(format!("reading {}", path.display()))),
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
            .open(&path)
            .map_err(|e| anyhow::anyhow!("opening the lock {}: {e}", path.display()))?;
        let until = tokio::time::Instant::now() + wait;
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
}
