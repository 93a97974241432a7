//! `bootstrap ssh NAME`: runs the system `ssh` with the deployment's key, admin user and pinned
//! host key (`StrictHostKeyChecking yes`, the state dir's known_hosts, the deployment name as
//! `HostKeyAlias`), so no host key is ever trusted on first use. `verify` connects the same way.

use std::path::PathBuf;

use bootstrap_core::Labels;

use crate::cli::{OutputFormat, SshArgs};
use crate::providers;
use crate::settings::{TargetSettings, admin_user, bad};
use crate::state::{DeploymentDir, DeploymentRecord};

/// Everything `ssh` needs to reach one deployment.
#[derive(Debug, Clone)]
pub struct Target {
    /// Address to connect to.
    pub host: String,
    /// SSH port.
    pub port: u16,
    /// The admin user.
    pub user: String,
    /// The private key.
    pub identity: PathBuf,
    /// The pinned host keys.
    pub known_hosts: PathBuf,
    /// The known_hosts name of the server (the deployment name).
    pub alias: String,
}

impl Target {
    /// The state and address of a deployment: `--host`, else the tunnel address, else the
    /// server's address from the provider's labels.
    pub async fn resolve(
        t: &TargetSettings,
        dir: &DeploymentDir,
        record: &DeploymentRecord,
    ) -> anyhow::Result<Self> {
        let known_hosts = dir.known_hosts();
        if !known_hosts.exists() {
            return Err(bad(format!(
                "no pinned host key for {}: {} is missing (it is written by `bootstrap create`)",
                t.name,
                known_hosts.display()
            )));
        }
        let user = admin_user(&record.admin_user)?;
        let (host, port) = match (&t.address, &record.vpn) {
            (Some((h, p)), _) => (h.clone(), *p),
            (None, Some(vpn)) => (vpn.server_address.to_string(), 22),
            (None, None) => (lookup(t).await?, 22),
        };
        Ok(Self {
            host,
            port,
            user,
            identity: record.identity_file.clone(),
            known_hosts,
            alias: dir.alias().to_owned(),
        })
    }

    /// `ssh` options that pin the host key and pick the key. Command-line options win over the
    /// user's ssh_config, so a config cannot weaken them.
    pub fn options(&self) -> Vec<String> {
        let mut o = vec![
            "-i".to_owned(),
            self.identity.display().to_string(),
            "-p".to_owned(),
            self.port.to_string(),
        ];
        for opt in [
            "IdentitiesOnly=yes".to_owned(),
            "StrictHostKeyChecking=yes".to_owned(),
            format!("UserKnownHostsFile={}", self.known_hosts.display()),
            "GlobalKnownHostsFile=/dev/null".to_owned(),
            format!("HostKeyAlias={}", self.alias),
            "UpdateHostKeys=no".to_owned(),
            "CheckHostIP=no".to_owned(),
        ] {
            o.push("-o".to_owned());
            o.push(opt);
        }
        o
    }
}

/// The server's address (IPv4, else IPv6) from the provider, by the deployment's labels.
async fn lookup(t: &TargetSettings) -> anyhow::Result<String> {
    let p = providers::build(&t.conn).await?;
    let selector = Labels::deployment(&t.name);
    let servers = bootstrap_core::retry::retry(&t.conn.flow.retry, "list servers", || {
        p.list_servers(&selector)
    })
    .await?;
    let server = servers.first().ok_or_else(|| {
        anyhow::anyhow!(
            "no server of deployment {} at {}; `bootstrap list` shows what exists",
            t.name,
            t.conn.kind.name()
        )
    })?;
    server
        .ipv4
        .or(server.ipv6)
        .map(|ip| ip.to_string())
        .ok_or_else(|| anyhow::anyhow!("server {} has no public address yet", server.name))
}

/// Replaces this process with `ssh` (its exit code becomes ours).
pub async fn run(a: &SshArgs) -> anyhow::Result<()> {
    let t = TargetSettings::from_args(&a.name, &a.target, OutputFormat::Text)?;
    let dir = DeploymentDir::new(t.conn.kind.name(), &t.name)?;
    let record = dir.require_record("ssh")?;
    let target = Target::resolve(&t, &dir, &record).await?;
    let mut cmd = std::process::Command::new("ssh");
    cmd.args(target.options())
        .arg("-l")
        .arg(&target.user)
        .arg("--")
        .arg(&target.host)
        .args(&a.command);
    tracing::debug!(host = %target.host, port = target.port, user = %target.user, "exec ssh");
    let err = std::os::unix::process::CommandExt::exec(&mut cmd);
    Err(anyhow::anyhow!(
        "cannot run ssh: {err}; install OpenSSH's client"
    ))
}
