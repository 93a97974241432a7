//! `bootstrap create` and `bootstrap render`: both check input, pick the key and render the
//! user-data the same way, so `render` prints exactly what `create` would send.

use std::path::Path;

use bootstrap_core::flow::{self, CreateFailure, CreatePlan, rollback_hint};
use bootstrap_core::model::Protocol;
use bootstrap_core::{
    FirewallRule, FirewallSpec, Labels, Progress, PublicKeyInfo, ServerSpec, SshKeySpec,
};
use bootstrap_keys::{KeyPair, PublicKey};
use serde_json::json;

use crate::cli::CreateArgs;
use crate::commands::secrets::{self, Secrets};
use crate::output::Output;
use crate::providers;
use crate::settings::{CreateSettings, SshFrom, bad};
use crate::state::DeploymentDir;

/// Where the deployment's key comes from, for messages.
enum KeySource {
    /// `--ssh-key`.
    File(String),
    /// The generated key in the state dir (existing or just made).
    State { path: String, new: bool },
    /// No key yet (render / dry run): a throwaway stands in for the one `create` will generate.
    Placeholder(String),
}

impl KeySource {
    fn describe(&self) -> String {
        match self {
            Self::File(p) => format!("your key {p}"),
            Self::State { path, new: true } => format!("new key, private part at {path}"),
            Self::State { path, new: false } => format!("existing key {path}"),
            Self::Placeholder(p) => format!("a new key will be generated at {p}"),
        }
    }
}

fn key_info(k: &PublicKey) -> PublicKeyInfo {
    PublicKeyInfo {
        openssh: k.to_openssh(),
        md5: k.fingerprint_md5(),
        sha256: k.fingerprint_sha256(),
    }
}

/// The key for render and dry runs: never writes anything.
fn preview_key(s: &CreateSettings) -> anyhow::Result<(PublicKey, KeySource)> {
    if let Some(k) = &s.ssh_key {
        return Ok((k.clone(), KeySource::File(String::new())));
    }
    let pub_path = pub_path(&s.key_path);
    if pub_path.exists() {
        let k = PublicKey::load(&pub_path)?;
        return Ok((
            k,
            KeySource::State {
                path: s.key_path.display().to_string(),
                new: false,
            },
        ));
    }
    let k = KeyPair::generate(&format!("bootstrap-{}", s.name)).public();
    Ok((k, KeySource::Placeholder(s.key_path.display().to_string())))
}

fn pub_path(p: &Path) -> std::path::PathBuf {
    let mut s = p.as_os_str().to_owned();
    s.push(".pub");
    s.into()
}

/// The key for a real create: the user's, or the state dir's (generated on first use, 0600).
fn real_key(s: &CreateSettings) -> anyhow::Result<(PublicKey, KeySource)> {
    if let Some(k) = &s.ssh_key {
        return Ok((k.clone(), KeySource::File(String::new())));
    }
    let pass = s.passphrase.as_ref().map(|p| p.expose());
    let comment = format!("bootstrap-{}", s.name);
    let (pair, new) = bootstrap_keys::load_or_generate(&s.key_path, pass, &comment)
        .map_err(|e| bad(format!("{e}")))?;
    Ok((
        pair.public(),
        KeySource::State {
            path: s.key_path.display().to_string(),
            new,
        },
    ))
}

fn render_user_data(
    s: &CreateSettings,
    key: &PublicKey,
    secrets: &Secrets,
) -> anyhow::Result<String> {
    let params = secrets.params(s, key)?;
    // Template errors name the template themselves; other errors (a key, a parameter) are not
    // the template's fault (issue 13, finding 5).
    let ud = bootstrap_cloudinit::render(&s.template, &params).map_err(|e| bad(e.to_string()))?;
    let provider = s.conn.kind.name();
    bootstrap_cloudinit::check_size(&ud, s.conn.kind.desc().limits.user_data_max_bytes, provider)
        .map_err(|e| bad(e.to_string()))?;
    Ok(ud)
}

fn plan(s: &CreateSettings, key: &PublicKey, user_data: String) -> CreatePlan {
    let labels = Labels::deployment(&s.name);
    let resource_name = bootstrap_core::describe::resource_name(&s.name);
    // The schedule lives on the server, so the job can run from anywhere.
    let mut server_labels = labels.clone();
    if let Some(sched) = &s.schedule {
        for (k, v) in sched.to_labels().iter() {
            server_labels.insert(k, v);
        }
        server_labels.insert(bootstrap_core::schedule::LABEL_ENGINE, s.engine);
    }
    CreatePlan {
        provider_backups: s.provider_backups,
        check_options: true,
        deployment: s.name.clone(),
        ssh_key: SshKeySpec {
            name: resource_name.clone(),
            key: key_info(key),
            labels: labels.clone(),
        },
        firewall: FirewallSpec {
            name: resource_name,
            // With --vpn wireguard only the tunnel is open; SSH goes through it.
            inbound: vec![if s.hardening.vpn {
                FirewallRule {
                    protocol: Protocol::Udp,
                    port: bootstrap_cloudinit::WireGuard::PORT,
                    sources: s.ssh_from.firewall_sources(),
                    description: "WireGuard".to_owned(),
                }
            } else {
                FirewallRule {
                    protocol: Protocol::Tcp,
                    port: 22,
                    sources: s.ssh_from.firewall_sources(),
                    description: "SSH".to_owned(),
                }
            }],
            labels: labels.clone(),
        },
        server: ServerSpec {
            name: s.name.to_string(),
            server_type: s.server_type.clone(),
            image: s.from_snapshot.clone().unwrap_or_else(|| s.image.clone()),
            location: s.location.clone(),
            user_data,
            ssh_key_ids: Vec::new(),
            firewall_ids: Vec::new(),
            labels: server_labels,
        },
    }
}

fn warn_open_ssh(s: &CreateSettings, progress: &dyn Progress) {
    if s.ssh_from == SshFrom::Any && !s.hardening.vpn {
        progress.security_warning("--ssh-from any: port 22 will be open to the whole internet at the cloud firewall; fail2ban and key-only login are the only guards");
    } else if !s.hardening.vpn {
        // Halves that add up to everything are open to the world too (issue 13, finding 9).
        let families = s.ssh_from.world_open_families();
        if !families.is_empty() {
            progress.security_warning(&format!(
                "--ssh-from: together these networks cover all of {}: port 22 will be open to the whole world at the cloud firewall; give only your own networks",
                families.join(" and ")
            ));
        }
    }
    if !s.hardening.profile.is_known() {
        progress.warn(&format!(
            "--image {}: bootstrap does not know its OpenSSH version, so sshd gets the algorithms every OpenSSH since 7.4 knows (no post-quantum key exchange)",
            s.hardening.profile.image()
        ));
    }
}

/// `bootstrap render`: the user-data alone on stdout.
pub async fn render(a: &CreateArgs, progress: &dyn Progress) -> anyhow::Result<()> {
    let s = CreateSettings::from_args(a)?;
    let (key, source) = preview_key(&s)?;
    if let KeySource::Placeholder(p) = &source {
        progress.warn(&format!(
            "no key for {} yet: the user-data shows a placeholder key; `create` generates the real one at {p}",
            s.name
        ));
    }
    let dir = DeploymentDir::new(s.conn.kind.name(), &s.name)?;
    let secrets = Secrets::for_preview(&s, &dir)?;
    let ud = render_user_data(&s, &key, &secrets)?;
    Output::new(s.conn.output).user_data(&ud)
}

/// `bootstrap create`.
pub async fn create(a: &CreateArgs, progress: &dyn Progress) -> anyhow::Result<()> {
    let s = CreateSettings::from_args(a)?;
    warn_open_ssh(&s, progress);
    let out = Output::new(s.conn.output);
    let provider_name = s.conn.kind.name();

    let dir = DeploymentDir::new(provider_name, &s.name)?;
    if s.dry_run {
        let (key, source) = preview_key(&s)?;
        let secrets = Secrets::for_preview(&s, &dir)?;
        let ud = render_user_data(&s, &key, &secrets)?;
        let p = plan(&s, &key, ud.clone());
        // A throwaway stands in for a key `create` will generate: its fingerprint means nothing.
        let real_key = !matches!(source, KeySource::Placeholder(_));
        let mut doc = json!({
            "dry_run": true,
            "provider": provider_name,
            "deployment": s.name,
            "ssh_key": {
                // False where the key reaches the server through cloud-init only.
                "resource": s.conn.kind.desc().key_resource,
                "name": p.ssh_key.name,
                "fingerprint": real_key.then(|| key.fingerprint_sha256()),
                "source": source.describe(),
                "labels": p.ssh_key.labels,
            },
            "firewall": p.firewall,
            "server": p.server,
            "user_data_bytes": ud.len(),
            "user_data_limit": s.conn.kind.desc().limits.user_data_max_bytes,
        });
        // With credentials, compare with what exists (read-only); without, stay offline.
        if let Some(provider) = super::plan::connect_if_possible(&s.conn).await? {
            let info = real_key.then(|| key_info(&key));
            doc["cloud"] =
                super::plan::compare_create(provider.as_ref(), &s, &p, info.as_ref()).await?;
        }
        return out.plan(&doc, &ud);
    }

    // Everything that can be checked offline is checked before the key is made or a call sent.
    let (placeholder, _) = preview_key(&s)?;
    render_user_data(&s, &placeholder, &Secrets::for_preview(&s, &dir)?)?;
    // One run per deployment on this machine: a second waits (up to --timeout), so that it
    // finds what the first made instead of racing it with the same key and state files.
    let _lock = dir.lock(s.conn.flow.timeout, progress).await?;
    let provider = providers::build(&s.conn).await?;
    if let Some(id) = &s.from_snapshot {
        check_our_snapshot(provider.as_ref(), &s.conn.flow, id).await?;
    }
    // The server type, image and location are checked by the flow's read stage, beside its
    // look-ups: an unknown one fails there before anything is made at the cloud (exit 2).
    let (key, source) = real_key(&s)?;
    let secrets = Secrets::for_create(&s, &dir)?;
    let ud = render_user_data(&s, &key, &secrets)?;
    let p = plan(&s, &key, ud);
    secrets::pin_before_create(&dir, &secrets)?;

    // SIGINT (Ctrl-C), SIGTERM (`timeout`, CI cancellation, systemd) and SIGHUP (a closed
    // terminal) all stop the flow and roll back; the exit code says which came.
    let signal = std::sync::OnceLock::new();
    let cancel = async {
        let _ = signal.set(crate::app::signalled().await);
    };
    match flow::create(provider.as_ref(), &p, &s.conn.flow, progress, cancel).await {
        Ok(o) => {
            let identity = match (&source, &s.hardening.user_identity) {
                (KeySource::State { path, .. }, _) => std::path::PathBuf::from(path),
                (_, Some(p)) => p.clone(),
                (_, None) => s.key_path.clone(),
            };
            let written = secrets::after_create(&s, &dir, &secrets, &o, &identity, progress)?;
            let target = written
                .ssh_address
                .clone()
                .unwrap_or_else(|| "<ip>".to_owned());
            // The server's admin, which a re-run with another --admin-user does not change.
            let admin = &written.admin_user;
            let ssh = match &source {
                KeySource::State { path, .. } => format!("ssh -i {path} {admin}@{target}"),
                _ => format!("ssh {admin}@{target}"),
            };
            let mut extra = json!({"deployment": s.name, "provider": provider_name, "admin_user": admin,
                "private_key": match &source { KeySource::State { path, .. } => Some(path.clone()), _ => None },
                "notes": written.notes});
            if let Some(m) = extra.as_object_mut() {
                m.extend(written.fields);
            }
            out.created(&o, &extra, &ssh)
        }
        Err(CreateFailure {
            error,
            rollback,
            options_refused,
        }) => {
            // A key generated by this run goes with the rest; one that served before stays.
            if let (Ok(_), KeySource::State { new: true, .. }) = (&rollback, &source) {
                remove_generated_key(&s.key_path);
            }
            if rollback.is_ok() {
                secrets::after_rollback(&dir, &secrets);
                dir.remove_if_empty();
            }
            let detail = match rollback {
                Ok(t) if t.removed.is_empty() => "nothing had been created".to_owned(),
                Ok(t) => format!(
                    "rolled back: removed {}",
                    t.removed
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                Err(e) => rollback_hint(provider_name, &s.name, &s.conn.flags(), &e),
            };
            if let Some(&sig) = signal.get() {
                return Err(crate::app::Interrupted {
                    signal: sig,
                    message: format!(
                        "create {} interrupted by {}; {detail}",
                        s.name,
                        crate::app::Interrupted::name(sig)
                    ),
                }
                .into());
            }
            // Refused input (an unknown server type, image or location) before anything was
            // made is a usage error, like the offline checks: exit 2, the API's one line.
            if options_refused && detail == "nothing had been created" {
                return Err(bad(error.to_string()));
            }
            Err(anyhow::anyhow!(
                "create {} failed: {error}; {detail}",
                s.name
            ))
        }
    }
}

/// Removes a key pair this run generated, and its directory when that is left empty.
fn remove_generated_key(private: &Path) {
    for p in [private.to_path_buf(), pub_path(private)] {
        if let Err(e) = std::fs::remove_file(&p)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!("could not remove {}: {e}", p.display());
        }
    }
    if let Some(dir) = private.parent() {
        // Fails harmlessly when something else lives there.
        let _ = std::fs::remove_dir(dir);
    }
}

/// `--from-snapshot` must name one of our snapshots: restoring someone else's image, or a
/// provider backup, is not what the flag is for.
async fn check_our_snapshot(
    p: &dyn bootstrap_core::Provider,
    cfg: &flow::FlowConfig,
    id: &str,
) -> anyhow::Result<()> {
    let managed = Labels::managed();
    let ours =
        bootstrap_core::retry::retry(&cfg.retry, "list snapshots", || p.list_snapshots(&managed))
            .await?;
    match ours
        .iter()
        .find(|x| x.id == id && x.labels.matches(&managed))
    {
        Some(x) if x.status == bootstrap_core::SnapshotStatus::Available => Ok(()),
        Some(x) => Err(bad(format!(
            "snapshot {id} is {:?}, not available yet; wait for it",
            x.status
        ))),
        None => Err(bad(format!(
            "--from-snapshot {id}: no snapshot made by bootstrap has that id; `bootstrap snapshot list NAME` shows them"
        ))),
    }
}
