//! The server-side secrets `create` makes locally and what it keeps of them: the pinned host key,
//! the sudo password, the WireGuard keys; and the state files written around the API calls.
//!
//! Order of a real `create` (see [`Secrets::for_create`], [`pin_before_create`],
//! [`after_create`], [`after_rollback`]):
//! 1. the host key is generated in memory (never stored); the sudo password and the WireGuard keys
//!    are loaded from the state dir or generated there (0600), so a re-run renders the same;
//! 2. before the first API call, the host key is added to `known_hosts` for the deployment name,
//!    so a server that comes up is pinned even if this process dies before it learns the IPs;
//! 3. after success, `known_hosts` pins the key for the name and the server's addresses (only when
//!    this run created the server: an existing server keeps the key it has), `deployment.json`
//!    and the WireGuard client config are written;
//! 4. after a rollback, what this run added is removed again.
//!
//! `render` and `--dry-run` never print a secret: the host key and the WireGuard server key in
//! their output are throwaways made for that output (the real ones come from `create`); the sudo
//! hash and the WireGuard client's public key are the state's when it has them.

use bootstrap_cloudinit::{HardeningParams, HostKey, Sudo, WireGuard};
use bootstrap_core::Progress;
use bootstrap_core::flow::CreateOutcome;
use bootstrap_keys::{
    KeyPair, KnownHosts, PublicKey, SudoPassword, WgKeyPair, WgPublicKey, host_pattern,
};

use crate::settings::{CreateSettings, bad};
use crate::state::{DeploymentDir, DeploymentRecord, PINNED_FROM_USER_DATA, SudoMode, VpnRecord};

/// The WireGuard keys of a deployment.
pub struct WgKeys {
    /// The server's pair; its private key goes into the user-data.
    pub server: WgKeyPair,
    /// The client's pair; its private key goes into the client config only.
    pub client: WgKeyPair,
    server_new: bool,
    client_new: bool,
}

/// What one rendering needs beyond the flags.
pub struct Secrets {
    /// The server's host key.
    pub host_key: KeyPair,
    /// The sudo password (`--sudo password`).
    pub sudo: Option<SudoPassword>,
    sudo_new: bool,
    /// The WireGuard keys (`--vpn wireguard`).
    pub wg: Option<WgKeys>,
}

impl Secrets {
    /// For `render` and `--dry-run`: writes nothing, prints no secret.
    pub fn for_preview(s: &CreateSettings, dir: &DeploymentDir) -> anyhow::Result<Self> {
        let sudo = match s.hardening.sudo {
            SudoMode::Nopasswd => None,
            SudoMode::Password => Some(if dir.sudo_password().exists() {
                SudoPassword::load(&dir.sudo_password()).map_err(|e| bad(e.to_string()))?
            } else {
                SudoPassword::generate()
            }),
        };
        let wg = if s.hardening.vpn {
            let client = if dir.wg_client_key().exists() {
                WgKeyPair::load(&dir.wg_client_key()).map_err(|e| bad(e.to_string()))?
            } else {
                WgKeyPair::generate()
            };
            Some(WgKeys {
                server: WgKeyPair::generate(),
                client,
                server_new: false,
                client_new: false,
            })
        } else {
            None
        };
        Ok(Self {
            host_key: KeyPair::generate(&format!("bootstrap-host-{}", s.name)),
            sudo,
            sudo_new: false,
            wg,
        })
    }

    /// For a real `create`: a fresh host key; the sudo password and WireGuard keys from the state
    /// dir, generated there (0600) when missing.
    pub fn for_create(s: &CreateSettings, dir: &DeploymentDir) -> anyhow::Result<Self> {
        let (sudo, sudo_new) = match s.hardening.sudo {
            SudoMode::Nopasswd => (None, false),
            SudoMode::Password => {
                let (p, new) = SudoPassword::load_or_generate(&dir.sudo_password())
                    .map_err(|e| bad(e.to_string()))?;
                (Some(p), new)
            }
        };
        let wg = if s.hardening.vpn {
            let (server, server_new) = WgKeyPair::load_or_generate(&dir.wg_server_key())
                .map_err(|e| bad(e.to_string()))?;
            let (client, client_new) = WgKeyPair::load_or_generate(&dir.wg_client_key())
                .map_err(|e| bad(e.to_string()))?;
            Some(WgKeys {
                server,
                client,
                server_new,
                client_new,
            })
        } else {
            None
        };
        Ok(Self {
            host_key: KeyPair::generate(&format!("bootstrap-host-{}", s.name)),
            sudo,
            sudo_new,
            wg,
        })
    }

    /// The template parameters for these secrets and the settings.
    pub fn params(
        &self,
        s: &CreateSettings,
        login_key: &PublicKey,
    ) -> anyhow::Result<HardeningParams> {
        let private = self
            .host_key
            .private_openssh()
            .map_err(|e| anyhow::anyhow!("cannot encode the host key: {e}"))?;
        let sudo = match &self.sudo {
            None => Sudo::NoPasswd,
            Some(p) => Sudo::Password {
                hash: p
                    .sha512_crypt()
                    .map_err(|e| anyhow::anyhow!("cannot hash the sudo password: {e}"))?,
            },
        };
        let vpn = self.wg.as_ref().map(|w| {
            WireGuard::new(
                w.server.private_base64().to_string(),
                w.client.public().to_base64(),
            )
        });
        Ok(HardeningParams {
            hostname: s.name.to_string(),
            admin_user: s.admin_user.clone(),
            ssh_authorized_keys: vec![login_key.to_openssh()],
            ssh_from: s.ssh_from.host_sources(),
            reboot_time: s.reboot_time.clone(),
            image: s.hardening.profile.clone(),
            host_key: HostKey {
                private_openssh: private.to_string(),
                public_openssh: self.host_key.public().to_openssh(),
            },
            sudo,
            docker: s.hardening.docker,
            vpn,
            allow_tcp_forwarding: s.hardening.allow_tcp_forwarding,
        })
    }
}

/// Adds the new host key for the deployment name to `known_hosts` (other entries stay), before
/// any API call.
pub fn pin_before_create(dir: &DeploymentDir, secrets: &Secrets) -> anyhow::Result<()> {
    let path = dir.known_hosts();
    let mut kh = KnownHosts::load(&path)?.unwrap_or_default();
    kh.add(
        &[dir.alias().to_owned()],
        &secrets.host_key.public(),
        PINNED_FROM_USER_DATA,
    );
    kh.write(&path)?;
    Ok(())
}

/// The host patterns of a server: the deployment name, its addresses, the tunnel address.
fn host_patterns(dir: &DeploymentDir, o: &CreateOutcome, vpn: Option<&VpnRecord>) -> Vec<String> {
    let mut hosts = vec![dir.alias().to_owned()];
    hosts.extend(
        [o.server.ipv4, o.server.ipv6]
            .into_iter()
            .flatten()
            .map(|ip| host_pattern(&ip.to_string(), 22)),
    );
    if let Some(v) = vpn {
        hosts.push(v.server_address.to_string());
    }
    hosts
}

/// Where the state files are, for the create output.
pub struct Written {
    /// Lines for the user (text output) and their JSON fields.
    pub notes: Vec<String>,
    /// JSON fields.
    pub fields: serde_json::Map<String, serde_json::Value>,
    /// The address SSH goes to.
    pub ssh_address: Option<String>,
    /// The admin user the server really has (a re-run keeps the first run's).
    pub admin_user: String,
}

/// After a successful create: pins the host key for the server's addresses (when this run made
/// the server), writes `deployment.json` and the WireGuard client config.
pub fn after_create(
    s: &CreateSettings,
    dir: &DeploymentDir,
    secrets: &Secrets,
    o: &CreateOutcome,
    identity_file: &std::path::Path,
    progress: &dyn Progress,
) -> anyhow::Result<Written> {
    let created_server = o.created.iter().any(|r| r.kind == "server");
    let vpn = secrets.wg.as_ref().map(|_| VpnRecord {
        interface: WireGuard::INTERFACE.to_owned(),
        port: WireGuard::PORT,
        server_address: WireGuard::SERVER_ADDRESS,
        client_address: WireGuard::CLIENT_ADDRESS,
    });
    let new_record = DeploymentRecord {
        admin_user: s.admin_user.clone(),
        identity_file: identity_file.to_path_buf(),
        image: s.hardening.profile.image().to_owned(),
        sudo: s.hardening.sudo,
        docker: s.hardening.docker,
        vpn: vpn.clone(),
        allow_tcp_forwarding: s.hardening.allow_tcp_forwarding,
        reboot_time: s.reboot_time.clone(),
        ipv4: o.server.ipv4,
        ipv6: o.server.ipv6,
        connection: Some(s.conn.record()),
        intent: Some(crate::state::IntentRecord {
            server_type: s.server_type.clone(),
            location: s.location.clone(),
            protocol: if s.hardening.vpn { "udp" } else { "tcp" }.to_owned(),
            port: if s.hardening.vpn {
                bootstrap_cloudinit::WireGuard::PORT
            } else {
                22
            },
            sources: s
                .ssh_from
                .firewall_sources()
                .iter()
                .map(ToString::to_string)
                .collect(),
        }),
    };
    let old_record = dir.load_record()?;
    let record = match (&old_record, created_server) {
        (Some(old), false) => {
            let mut kept = Vec::new();
            if old.admin_user != new_record.admin_user {
                kept.push(format!("admin user {}", old.admin_user));
            }
            if old.image != new_record.image {
                kept.push(format!("image {}", old.image));
            }
            if let (Some(o), Some(n)) = (&old.intent, &new_record.intent)
                && o.server_type != n.server_type
            {
                kept.push(format!("server type {}", o.server_type));
            }
            if old.docker != new_record.docker
                || old.vpn.is_some() != new_record.vpn.is_some()
                || old.sudo != new_record.sudo
                || old.allow_tcp_forwarding != new_record.allow_tcp_forwarding
            {
                kept.push("its hardening choices (--docker, --vpn, --sudo, forwarding)".to_owned());
            }
            if !kept.is_empty() {
                progress.warn(&format!(
                    "{name} already existed: it keeps {}; this run's flags only apply to a new server (to change them: `bootstrap destroy {name}`, then create again)",
                    kept.join(", "),
                    name = s.name
                ));
            }
            DeploymentRecord {
                ipv4: o.server.ipv4,
                ipv6: o.server.ipv6,
                // Where this run reached it is where it lives now; the rule follows the
                // latest --ssh-from (create moved it), the rest stays as first created.
                connection: Some(s.conn.record()),
                intent: match (&old.intent, &new_record.intent) {
                    (Some(o), Some(n)) => Some(crate::state::IntentRecord {
                        sources: n.sources.clone(),
                        ..o.clone()
                    }),
                    (None, n) => n.clone(),
                    (o, None) => o.clone(),
                },
                ..old.clone()
            }
        }
        _ => new_record,
    };
    dir.save_record(&record)?;

    let kh_path = dir.known_hosts();
    let mut kh = KnownHosts::load(&kh_path)?.unwrap_or_default();
    let hosts = host_patterns(dir, o, record.vpn.as_ref());
    if created_server {
        kh.pin(&hosts, &secrets.host_key.public(), PINNED_FROM_USER_DATA);
    } else {
        // The server has the key it was created with: drop this run's, keep the pinned ones and
        // extend them to the server's current addresses.
        kh.remove_key(&secrets.host_key.public());
        let pinned: Vec<(PublicKey, String)> = kh
            .entries_for(dir.alias())
            .into_iter()
            .map(|e| (e.key.clone(), e.comment.clone()))
            .collect();
        if pinned.is_empty() {
            progress.warn(&format!(
                "{} already existed and no host key is pinned for it in {}: `bootstrap ssh` and `verify` will refuse it",
                s.name,
                kh_path.display()
            ));
        } else {
            kh.forget_hosts(&hosts);
            for (key, comment) in &pinned {
                kh.add(&hosts, key, comment);
            }
        }
    }
    kh.write(&kh_path)?;

    let mut notes = vec![format!(
        "host key pinned in {} (for {})",
        kh_path.display(),
        hosts.join(", ")
    )];
    let mut fields = serde_json::Map::new();
    fields.insert("known_hosts".into(), kh_path.display().to_string().into());
    if record.sudo == SudoMode::Password {
        notes.push(format!(
            "sudo password for {}: in {} (mode 0600)",
            record.admin_user,
            dir.sudo_password().display()
        ));
        fields.insert(
            "sudo_password_file".into(),
            dir.sudo_password().display().to_string().into(),
        );
    }
    let mut ssh_address = o.server.ipv4.or(o.server.ipv6).map(|ip| ip.to_string());
    if let (Some(v), Some(w)) = (&record.vpn, &secrets.wg) {
        let endpoint = match (o.server.ipv4, o.server.ipv6) {
            (Some(ip), _) => ip.to_string(),
            (None, Some(ip)) => format!("[{ip}]"),
            (None, None) => "<server address>".to_owned(),
        };
        // After `verify` replaced the server's key, the client talks to that one.
        let server_public = rotated_wg_server(dir)?.unwrap_or_else(|| w.server.public());
        let conf = format!(
            "# bootstrap: WireGuard tunnel to {name}; `wg-quick up {path}`, then `bootstrap ssh {name}`.\n\
             [Interface]\n\
             PrivateKey = {private}\n\
             Address = {client}/32\n\
             \n\
             [Peer]\n\
             PublicKey = {server}\n\
             Endpoint = {endpoint}:{port}\n\
             AllowedIPs = {server_address}/32\n\
             PersistentKeepalive = 25\n",
            name = s.name,
            path = dir.wg_client_config().display(),
            private = w.client.private_base64().as_str(),
            client = v.client_address,
            server = server_public,
            port = v.port,
            server_address = v.server_address,
        );
        bootstrap_keys::write_atomic(&dir.wg_client_config(), conf.as_bytes(), 0o600)?;
        notes.push(format!(
            "WireGuard client config: {} (mode 0600); `sudo wg-quick up {}` before `bootstrap ssh {}`",
            dir.wg_client_config().display(),
            dir.wg_client_config().display(),
            s.name
        ));
        fields.insert(
            "wireguard_client_config".into(),
            dir.wg_client_config().display().to_string().into(),
        );
        ssh_address = Some(v.server_address.to_string());
    }
    // The printed commands reach the same provider, endpoint and region as this run.
    let target = format!(
        "{} --provider {}{}",
        s.name,
        s.conn.kind.name(),
        s.conn.flags()
    );
    notes.push(format!(
        "log in with `bootstrap ssh {target}` (pinned host key), or add `-o UserKnownHostsFile={} -o StrictHostKeyChecking=yes` to the ssh command above",
        kh_path.display(),
    ));
    notes.push(format!(
        "next: `bootstrap verify {target}` checks the server and replaces the host key from the user-data with one made on the server"
    ));
    Ok(Written {
        notes,
        fields,
        ssh_address,
        admin_user: record.admin_user.clone(),
    })
}

/// The WireGuard server key `verify` put in place of the user-data's, if it did.
pub fn rotated_wg_server(dir: &DeploymentDir) -> anyhow::Result<Option<WgPublicKey>> {
    let path = dir.wg_server_public();
    let Some(text) = bootstrap_core::config_file::read_text(
        &path,
        1024,
        bootstrap_core::config_file::Symlinks::Refuse,
    )?
    else {
        return Ok(None);
    };
    WgPublicKey::from_base64(text.trim())
        .map(Some)
        .map_err(|_| anyhow::anyhow!("{} is not a WireGuard public key", path.display()))
}

/// After a rollback removed the server: removes what this run added to the state dir.
pub fn after_rollback(dir: &DeploymentDir, secrets: &Secrets) {
    let kh_path = dir.known_hosts();
    if let Ok(Some(mut kh)) = KnownHosts::load(&kh_path) {
        kh.remove_key(&secrets.host_key.public());
        let result = if kh.is_empty() {
            std::fs::remove_file(&kh_path).map_err(anyhow::Error::from)
        } else {
            kh.write(&kh_path).map_err(anyhow::Error::from)
        };
        if let Err(e) = result {
            tracing::warn!("could not update {}: {e:#}", kh_path.display());
        }
    }
    let mut generated = Vec::new();
    if secrets.sudo_new {
        generated.push(dir.sudo_password());
    }
    if let Some(w) = &secrets.wg {
        if w.server_new {
            generated.push(dir.wg_server_key());
        }
        if w.client_new {
            generated.push(dir.wg_client_key());
        }
    }
    for p in generated {
        if let Err(e) = std::fs::remove_file(&p)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!("could not remove {}: {e}", p.display());
        }
    }
}
