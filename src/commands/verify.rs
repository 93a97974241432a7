//! `bootstrap verify NAME`: connects with the pinned host key, waits for cloud-init, checks the
//! live server and prints a checklist (text or one JSON document); exit 1 when a check fails.
//!
//! Everything goes through the system `ssh` (the same options as `bootstrap ssh`, plus
//! `BatchMode`): one session as the admin (cloud-init, sudo), one as root through sudo (sshd -T,
//! fail2ban, nftables, apt, sysctl, systemd, Docker, WireGuard; the sudo password, when there is
//! one, goes to sudo's stdin and nowhere else), a root login attempt, an `ssh -v` that lists the
//! offered methods. Each check parses that real output ([`checks`]); a tool that is missing on
//! the target is a failure, except cloud-init and systemd, whose absence (a test target) is a skip.
//!
//! Host key rotation: the first pinned key came with the user-data, which the provider keeps and
//! its metadata service serves. After the checks, `verify` has sshd use a key generated on the
//! server, over the pinned connection: new key made -> both keys pinned -> key swapped and sshd
//! reloaded -> a connection that accepts only the new key -> only the new key pinned. If a step
//! fails, the old key stays pinned too, so nobody is locked out.

mod checks;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use bootstrap_core::Progress;
use bootstrap_keys::{KnownHosts, PublicKey, SudoPassword, WgKeyPair, WgPublicKey};
use checks::{Check, MARKER, Section, Status};
use serde_json::json;
use tokio::io::AsyncWriteExt;

use crate::cli::VerifyArgs;
use crate::commands::ssh::Target;
use crate::output::Output;
use crate::settings::{TargetSettings, bad, parse_duration};
use crate::state::{
    DeploymentDir, DeploymentRecord, PINNED_FROM_USER_DATA, PINNED_ROTATED, SudoMode, VpnRecord,
};

/// What one `ssh` run gave back.
struct Ran {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Ran {
    /// ssh exits 255 when it could not connect or authenticate.
    fn connected(&self) -> bool {
        self.code.is_some_and(|c| c != 255)
    }
}

/// Runs `ssh` to the target with the pinned options.
struct Remote<'a> {
    target: &'a Target,
    known_hosts: PathBuf,
}

impl Remote<'_> {
    /// Runs `script` as root through sudo (the password, if any, on sudo's stdin), as the admin.
    async fn as_root(
        &self,
        password: Option<&SudoPassword>,
        script: &str,
        limit: Duration,
    ) -> anyhow::Result<Ran> {
        self.run(
            &self.target.user,
            &[],
            sudo_shell(password),
            &sudo_stdin(password, script),
            limit,
        )
        .await
    }

    async fn run(
        &self,
        user: &str,
        extra: &[&str],
        command: &str,
        stdin: &[u8],
        limit: Duration,
    ) -> anyhow::Result<Ran> {
        let mut options = self.target.options();
        for o in &mut options {
            if o.starts_with("UserKnownHostsFile=") {
                *o = format!("UserKnownHostsFile={}", self.known_hosts.display());
            }
        }
        let mut cmd = tokio::process::Command::new("ssh");
        cmd.args(options)
            .args([
                "-o",
                "BatchMode=yes",
                "-o",
                "ConnectTimeout=15",
                "-o",
                "ServerAliveInterval=15",
                "-o",
                "LogLevel=ERROR",
            ])
            .args(extra)
            .arg("-l")
            .arg(user)
            .arg("--")
            .arg(&self.target.host)
            .arg(command)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd
            .spawn()
            .map_err(|e| anyhow::anyhow!("cannot run ssh: {e}; install OpenSSH's client"))?;
        if let Some(mut input) = child.stdin.take() {
            // A closed pipe means ssh ended early; its exit code tells why.
            let _ = input.write_all(stdin).await;
        }
        match tokio::time::timeout(limit, child.wait_with_output()).await {
            Ok(out) => {
                let out = out?;
                Ok(Ran {
                    code: out.status.code(),
                    stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
                    stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
                })
            }
            Err(_) => Ok(Ran {
                code: None,
                stdout: String::new(),
                stderr: format!("no answer within {}s", limit.as_secs()),
            }),
        }
    }
}

/// The admin session: cloud-init's wait, then sudo without a password.
///
/// The wait is for `boot-finished`, which cloud-init's final stage writes last on every boot
/// (written since this boot began: after a reboot the file of the first boot is still there):
/// `cloud-init status --wait` can return `error` while the final stage still installs packages,
/// after an earlier module failed (seen on a real boot, issue 14). It ends early only when
/// `cloud-final.service` failed outright; then `status --long` names the failing modules. A
/// wait that runs out is reported with `timeout`'s code, 124.
fn admin_script(wait: Duration) -> String {
    format!(
        "M='{MARKER}'\n\
         echo \"$M begin cloud-init\"\n\
         if command -v cloud-init >/dev/null 2>&1; then \
           f=/var/lib/cloud/instance/boot-finished; end=$(( $(date +%s) + {secs} )); \
           boot=$(awk '/^btime/ {{print $2}}' /proc/stat 2>/dev/null); \
           finished() {{ [ -e \"$f\" ] && [ \"$(stat -c %Y \"$f\")\" -ge \"${{boot:-0}}\" ]; }}; \
           while ! finished && [ \"$(date +%s)\" -lt \"$end\" ]; do \
             if [ -d /run/systemd/system ] && systemctl is-failed --quiet cloud-final.service 2>/dev/null; then break; fi; \
             sleep 2; \
           done; \
           cloud-init status --long 2>&1; rc=$?; \
           if finished || [ \"$rc\" != 0 ]; then echo \"$M rc $rc\"; else echo \"$M rc 124\"; fi; \
         else echo \"$M absent\"; fi\n\
         echo \"$M begin sudo\"\n\
         sudo -k >/dev/null 2>&1; LC_ALL=C sudo -n true 2>&1; echo \"$M rc $?\"\n",
        secs = wait.as_secs().max(1)
    )
}

/// The root session's script (read by `sh -s` from stdin after the sudo password line).
fn root_script(record: &DeploymentRecord) -> String {
    let sysctl_keys: Vec<&str> = checks::expected_sysctl(record)
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    let mut s = format!(
        "export LC_ALL=C PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n\
         M='{MARKER}'\n\
         begin() {{ echo \"$M begin $1\"; }}\n\
         rc() {{ echo \"$M rc $1\"; }}\n\
         begin sshd; sshd -T -C user={admin},host=bootstrap-verify,addr=192.0.2.1 2>&1; rc $?\n\
         begin fail2ban; if command -v fail2ban-client >/dev/null 2>&1; then fail2ban-client status sshd 2>&1; rc $?; else echo \"$M absent\"; fi\n\
         begin nft; nft -j list ruleset 2>&1; rc $?\n\
         begin apt-config; apt-config dump 2>&1; rc $?\n\
         begin apt-update; timeout 300 apt-get update -qq 2>&1; rc $?\n\
         begin apt-upgradable; apt list --upgradable 2>/dev/null; rc $?\n\
         begin sysctl; sysctl {sysctl} 2>&1; rc $?\n\
         begin systemd; if [ -d /run/systemd/system ]; then systemctl is-enabled {units} 2>&1; rc $?; else echo \"$M absent\"; fi\n",
        admin = record.admin_user,
        sysctl = sysctl_keys.join(" "),
        units = checks::expected_units(record).join(" "),
    );
    if record.docker {
        s.push_str("begin docker; if command -v docker >/dev/null 2>&1; then docker info --format '{{.ServerVersion}}' 2>&1; rc $?; else echo \"$M absent\"; fi\n");
    }
    if let Some(v) = &record.vpn {
        s.push_str(&format!("begin wg; wg show {} 2>&1; rc $?\n", v.interface));
    }
    s
}

/// The remote command that runs a script from stdin as root.
fn sudo_shell(password: Option<&SudoPassword>) -> &'static str {
    match password {
        // The shell reads the password line itself. When sudo needs none (NOPASSWD, or a cached
        // ticket) it is dropped; else `-k` makes sudo read it for sure, so the line can never
        // reach `sh -s` and be run (and echoed in an error) as a command. printf is a builtin:
        // the password is in no process's arguments.
        Some(_) => {
            "IFS= read -r p; if sudo -n true 2>/dev/null; then unset p; exec sudo -n sh -s; fi; \
             { printf '%s\n' \"$p\"; unset p; exec cat; } | sudo -S -k -p '' sh -s"
        }
        None => "sudo -n sh -s",
    }
}

/// stdin for [`sudo_shell`]: the password line (if any), then the script. Wiped when dropped.
fn sudo_stdin(password: Option<&SudoPassword>, script: &str) -> bootstrap_keys::Zeroizing<Vec<u8>> {
    let mut v = bootstrap_keys::Zeroizing::new(Vec::new());
    if let Some(p) = password {
        v.extend_from_slice(p.expose().as_bytes());
        v.push(b'\n');
    }
    v.extend_from_slice(script.as_bytes());
    v
}

/// A remote path we put into a shell command: absolute and of plain characters only.
fn safe_path(p: &str) -> Option<&str> {
    (p.starts_with('/')
        && p.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-".contains(&b)))
    .then_some(p)
}

/// Between attempts to reach a server's SSH while it boots.
const SSH_RETRY: Duration = Duration::from_secs(2);

/// Whether ssh failed because nothing answers yet (booting), not because it was refused a
/// login or a host key: only then is it worth trying again.
fn not_up_yet(stderr: &str) -> bool {
    [
        "Connection refused",
        "Connection timed out",
        "No route to host",
        "Connection reset",
        "Connection closed by",
        "kex_exchange_identification",
        "Network is unreachable",
    ]
    .iter()
    .any(|m| stderr.contains(m))
}

/// `bootstrap verify`.
pub async fn run(a: &VerifyArgs, progress: &dyn Progress) -> anyhow::Result<()> {
    let t = TargetSettings::from_args(&a.name, &a.target, a.output)?;
    let wait = parse_duration(&a.timeout)?;
    let dir = DeploymentDir::new(t.conn.kind.name(), &t.name)?;
    let record = dir.require_record("verify")?;
    let password = match record.sudo {
        SudoMode::Nopasswd => None,
        SudoMode::Password => Some(SudoPassword::load(&dir.sudo_password()).map_err(|e| {
            bad(format!(
                "{e}; verify needs the sudo password create kept there (or re-create the deployment)"
            ))
        })?),
    };
    let target = Target::resolve(&t, &dir, &record).await?;
    let remote = Remote {
        target: &target,
        known_hosts: target.known_hosts.clone(),
    };
    let mut list: Vec<Check> = Vec::new();

    progress.step(&format!(
        "connecting to {}:{} as {} (pinned host key)",
        target.host, target.port, target.user
    ));
    // A server that is still booting refuses or drops connections: try again until --timeout.
    let deadline = std::time::Instant::now().checked_add(wait);
    let mut attempts = 0u32;
    let first = loop {
        attempts += 1;
        let r = remote
            .run(
                &target.user,
                &[],
                "sh -s",
                admin_script(wait).as_bytes(),
                wait.saturating_add(Duration::from_secs(60)),
            )
            .await?;
        let left = deadline.map(|d| d.saturating_duration_since(std::time::Instant::now()));
        if r.connected() || !not_up_yet(&r.stderr) || left.is_some_and(|l| l.is_zero()) {
            break r;
        }
        if attempts == 1 {
            progress.step(&format!(
                "waiting for SSH on {}:{} (the server may still be booting)",
                target.host, target.port
            ));
        }
        tokio::time::sleep(left.map_or(SSH_RETRY, |l| l.min(SSH_RETRY))).await;
    };
    if !first.connected() {
        let why = first
            .stderr
            .lines()
            .find(|l| l.contains("REMOTE HOST IDENTIFICATION HAS CHANGED"))
            .or_else(|| first.stderr.lines().rev().find(|l| !l.trim().is_empty()))
            .unwrap_or("no output")
            .trim()
            .to_owned();
        list.push(Check::fail(
            "host-key",
            "the server proves the pinned host key",
            format!("cannot log in: {why}"),
        ));
        return finish(a, &t.name, &target, list);
    }
    let pinned = KnownHosts::load(&target.known_hosts)?
        .map(|kh| {
            kh.keys_for(&target.alias)
                .iter()
                .map(|k| k.fingerprint_sha256())
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default();
    list.push(Check::pass(
        "host-key",
        "the server proves the pinned host key",
        format!("StrictHostKeyChecking yes, pinned {pinned}"),
    ));
    let admin = checks::sections(&first.stdout);
    progress.step("waiting for cloud-init");
    list.push(checks::cloud_init_check(
        admin.get("cloud-init").unwrap_or(&Section::default()),
    ));
    list.push(checks::sudo_check(
        admin.get("sudo").unwrap_or(&Section::default()),
        record.sudo,
    ));

    progress.step("checking sshd, fail2ban, nftables, apt, sysctl as root");
    let script = root_script(&record);
    let root = remote
        .as_root(password.as_ref(), &script, Duration::from_secs(420))
        .await?;
    let s = checks::sections(&root.stdout);
    if s.is_empty() {
        list.push(Check::fail(
            "root-commands",
            "commands run as root through sudo",
            format!(
                "sudo did not run them: {}",
                root.stderr
                    .lines()
                    .rev()
                    .find(|l| !l.trim().is_empty())
                    .unwrap_or("no output")
                    .trim()
            ),
        ));
    }
    let get = |name: &str| s.get(name).cloned().unwrap_or_default();
    list.extend(checks::sshd_checks(&get("sshd"), &record));
    list.push(checks::fail2ban_check(&get("fail2ban")));
    list.extend(checks::nftables_checks(&get("nft"), &record));
    list.push(checks::unattended_check(&get("apt-config"), &record));
    list.push(checks::security_check(
        &get("apt-update"),
        &get("apt-upgradable"),
    ));
    list.push(checks::sysctl_check(&get("sysctl"), &record));
    list.push(checks::units_check(&get("systemd"), &record));
    if record.docker {
        list.push(checks::docker_check(&get("docker")));
    }
    list.extend(checks::wireguard_check(&get("wg"), &record));

    progress.step("trying root and password logins");
    let root_try = remote
        .run("root", &[], "true", b"", Duration::from_secs(60))
        .await?;
    list.push(checks::root_login_check(root_try.code, &root_try.stderr));
    let methods = remote
        .run(
            &target.user,
            &[
                "-v",
                "-o",
                "LogLevel=DEBUG1",
                "-o",
                "PreferredAuthentications=none",
                "-o",
                "PubkeyAuthentication=no",
            ],
            "true",
            b"",
            Duration::from_secs(60),
        )
        .await?;
    list.push(checks::auth_methods_check(&methods.stderr));

    if !a.keep_host_key {
        let hostkey = checks::parse_sshd_t(&get("sshd").text);
        list.push(
            rotate_host_key(
                &remote,
                &target,
                password.as_ref(),
                hostkey.get("hostkey").cloned().unwrap_or_default(),
                hostkey
                    .get("pidfile")
                    .and_then(|v| v.first().cloned())
                    .unwrap_or_else(|| "/run/sshd.pid".to_owned()),
                progress,
            )
            .await,
        );
        // Last: the tunnel this session may run through drops when the server switches keys.
        if let Some(vpn) = &record.vpn {
            list.push(
                rotate_wireguard_key(
                    &remote,
                    password.as_ref(),
                    &dir,
                    vpn,
                    &get("wg").text,
                    progress,
                )
                .await,
            );
        }
    }
    finish(a, &t.name, &target, list)
}

/// Prints the checklist; an error (exit 1) when a check failed.
fn finish(
    a: &VerifyArgs,
    name: &bootstrap_core::DeploymentName,
    target: &Target,
    list: Vec<Check>,
) -> anyhow::Result<()> {
    let count = |st: Status| list.iter().filter(|c| c.status == st).count();
    let (passed, failed, skipped) = (
        count(Status::Pass),
        count(Status::Fail),
        count(Status::Skip),
    );
    let doc = json!({
        "deployment": name.as_str(),
        "target": format!("{}@{}:{}", target.user, target.host, target.port),
        "checks": list.iter().map(|c| json!({
            "id": c.id,
            "title": c.title,
            "status": c.status.as_str(),
            "detail": c.detail,
        })).collect::<Vec<_>>(),
        "passed": passed,
        "failed": failed,
        "skipped": skipped,
        "ok": failed == 0,
    });
    Output::new(a.output).checklist(&doc)?;
    if failed > 0 {
        let ids: Vec<&str> = list
            .iter()
            .filter(|c| c.status == Status::Fail)
            .map(|c| c.id)
            .collect();
        return Err(anyhow::anyhow!(
            "verify {name}: {failed} check(s) failed: {}",
            ids.join(", ")
        ));
    }
    Ok(())
}

/// Replaces the host key from the user-data with one generated on the server (see the module
/// doc); already-rotated keys are left alone.
async fn rotate_host_key(
    remote: &Remote<'_>,
    target: &Target,
    password: Option<&SudoPassword>,
    host_keys: Vec<String>,
    pidfile: String,
    progress: &dyn Progress,
) -> Check {
    const ID: &str = "host-key-rotated";
    const TITLE: &str = "host key is one generated on the server";
    let kh_path = &target.known_hosts;
    let mut kh = match KnownHosts::load(kh_path) {
        Ok(Some(kh)) => kh,
        Ok(None) => return Check::fail(ID, TITLE, format!("{} is gone", kh_path.display())),
        Err(e) => return Check::fail(ID, TITLE, e.to_string()),
    };
    let old: Vec<(PublicKey, Vec<String>)> = kh
        .entries_for(&target.alias)
        .into_iter()
        .filter(|e| e.comment == PINNED_FROM_USER_DATA)
        .map(|e| (e.key.clone(), e.hosts.clone()))
        .collect();
    if old.is_empty() {
        let fp = kh
            .keys_for(&target.alias)
            .first()
            .map(|k| k.fingerprint_sha256())
            .unwrap_or_default();
        return Check::pass(ID, TITLE, format!("already rotated ({fp})"));
    }
    let Some(key_path) = host_keys
        .iter()
        .find(|k| k.ends_with("ed25519_key"))
        .and_then(|k| safe_path(k))
    else {
        return Check::fail(
            ID,
            TITLE,
            format!("sshd has no ed25519 host key file to replace ({host_keys:?})"),
        );
    };
    let Some(pidfile) = safe_path(&pidfile) else {
        return Check::fail(ID, TITLE, format!("odd sshd pid file {pidfile:?}"));
    };
    progress.step("replacing the host key with one generated on the server");

    // 1. A new key on the server; only its public half comes back.
    let make = format!(
        "set -e\nk='{key_path}'\numask 077\nrm -f \"$k.bootstrap-new\" \"$k.bootstrap-new.pub\"\n\
         ssh-keygen -q -t ed25519 -N '' -C '' -f \"$k.bootstrap-new\" </dev/null >/dev/null\n\
         cat \"$k.bootstrap-new.pub\"\n"
    );
    let ran = match remote
        .as_root(password, &make, Duration::from_secs(60))
        .await
    {
        Ok(r) => r,
        Err(e) => return Check::fail(ID, TITLE, e.to_string()),
    };
    let new = match ran
        .stdout
        .lines()
        .find(|l| l.starts_with("ssh-ed25519 "))
        .map(PublicKey::parse)
    {
        Some(Ok(k)) => k,
        _ => {
            return Check::fail(
                ID,
                TITLE,
                format!("no new key from the server: {}", ran.stderr.trim()),
            );
        }
    };
    // 2. Both keys pinned, so neither a crash nor a failed reload locks anyone out.
    let hosts: Vec<String> = {
        let mut h: Vec<String> = Vec::new();
        for (_, hs) in &old {
            for x in hs {
                if !h.contains(x) {
                    h.push(x.clone());
                }
            }
        }
        h
    };
    kh.add(&hosts, &new, "bootstrap:rotating");
    if let Err(e) = kh.write(kh_path) {
        return Check::fail(ID, TITLE, format!("cannot pin the new key: {e}"));
    }
    // 3. The server switches.
    let swap = format!(
        "set -e\nk='{key_path}'\n\
         mv -f \"$k.bootstrap-new\" \"$k\"\nmv -f \"$k.bootstrap-new.pub\" \"$k.pub\"\n\
         if [ -d /run/systemd/system ]; then systemctl reload ssh.service 2>/dev/null || systemctl reload sshd.service; \
         else kill -HUP \"$(cat '{pidfile}')\"; fi\n\
         echo reloaded\n"
    );
    let ran = match remote
        .as_root(password, &swap, Duration::from_secs(60))
        .await
    {
        Ok(r) => r,
        Err(e) => return Check::fail(ID, TITLE, e.to_string()),
    };
    if !ran.stdout.contains("reloaded") {
        return Check::fail(
            ID,
            TITLE,
            format!(
                "the server did not switch keys ({}); both keys stay pinned",
                ran.stderr.trim()
            ),
        );
    }
    // 4. Proof: a connection that accepts only the new key.
    let only_new = only_new_known_hosts(kh_path, &target.alias, &new);
    let proof = Remote {
        target,
        known_hosts: only_new.clone(),
    };
    let mut proved = false;
    for _ in 0..20 {
        if let Ok(r) = proof
            .run(&target.user, &[], "true", b"", Duration::from_secs(30))
            .await
            && r.code == Some(0)
        {
            proved = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let _ = std::fs::remove_file(&only_new);
    if !proved {
        return Check::fail(
            ID,
            TITLE,
            format!(
                "the server does not present the new key {}; both keys stay pinned in {}",
                new.fingerprint_sha256(),
                kh_path.display()
            ),
        );
    }
    // 5. Only the new key stays.
    for (key, _) in &old {
        kh.remove_key(key);
    }
    kh.pin(&hosts, &new, PINNED_ROTATED);
    if let Err(e) = kh.write(kh_path) {
        return Check::fail(ID, TITLE, format!("cannot unpin the old key: {e}"));
    }
    Check::pass(
        ID,
        TITLE,
        format!(
            "replaced the key from the user-data {} with {} (made on the server, pinned over the verified connection)",
            old.first()
                .map(|(k, _)| k.fingerprint_sha256())
                .unwrap_or_default(),
            new.fingerprint_sha256()
        ),
    )
}

/// Replaces the WireGuard server key from the user-data (which the provider keeps) with one
/// generated on the server; its private half never leaves the server, the client config gets
/// the public half. The tunnel drops when the server switches, so this runs last and the check
/// says how to bring it up again; the next `verify` confirms the server uses the new key.
async fn rotate_wireguard_key(
    remote: &Remote<'_>,
    password: Option<&SudoPassword>,
    dir: &DeploymentDir,
    vpn: &VpnRecord,
    wg_show: &str,
    progress: &dyn Progress,
) -> Check {
    const ID: &str = "wireguard-key-rotated";
    const TITLE: &str = "WireGuard server key is one generated on the server";
    let conf = dir.wg_client_config();
    let iface = &vpn.interface;
    if iface.is_empty()
        || !iface
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-".contains(&b))
    {
        return Check::fail(ID, TITLE, format!("odd interface name {iface:?}"));
    }
    let Some(current) = wg_show
        .lines()
        .find_map(|l| l.trim().strip_prefix("public key:"))
        .map(str::trim)
    else {
        return Check::fail(ID, TITLE, format!("`wg show {iface}` named no public key"));
    };
    match crate::commands::secrets::rotated_wg_server(dir) {
        Ok(Some(k)) if k.to_string() == current => {
            return Check::pass(ID, TITLE, format!("already rotated ({current})"));
        }
        Ok(_) => {}
        Err(e) => return Check::fail(ID, TITLE, format!("{e:#}")),
    }
    let from_user_data = match WgKeyPair::load(&dir.wg_server_key()) {
        Ok(k) => k.public().to_string(),
        Err(e) => return Check::fail(ID, TITLE, e.to_string()),
    };
    if from_user_data != current {
        return Check::fail(
            ID,
            TITLE,
            format!(
                "the server uses {current}, which is neither the user-data's key nor one verify put there; the client config in {} stays as it is",
                conf.display()
            ),
        );
    }
    progress.step("replacing the WireGuard server key with one generated on the server");
    // 1. A new key on the server; only its public half comes back.
    let make = format!(
        "set -e\numask 077\nn=/etc/wireguard/{iface}.key.bootstrap-new\n\
         wg genkey > \"$n\"\nwg pubkey < \"$n\"\n"
    );
    let run = |script: String| async move {
        remote
            .as_root(password, &script, Duration::from_secs(60))
            .await
    };
    let ran = match run(make).await {
        Ok(r) => r,
        Err(e) => return Check::fail(ID, TITLE, e.to_string()),
    };
    let new = match ran
        .stdout
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .map(|l| WgPublicKey::from_base64(l.trim()))
    {
        Some(Ok(k)) => k,
        _ => {
            return Check::fail(
                ID,
                TITLE,
                format!("no new key from the server: {}", ran.stderr.trim()),
            );
        }
    };
    // 2. The client config naming the new key, ready beside the old one before the server
    //    switches (a failure here leaves everything as it was).
    let next = conf.with_file_name(".wg-bootstrap.conf.next");
    let ready = bootstrap_core::config_file::read_text(
        &conf,
        16 * 1024,
        bootstrap_core::config_file::Symlinks::Refuse,
    )
    .map_err(|e| e.to_string())
    .and_then(|t| t.ok_or_else(|| format!("{} is gone", conf.display())))
    .map(|text| {
        let text = bootstrap_keys::Zeroizing::new(text);
        text.lines()
            .map(|l| {
                if l.trim_start().starts_with("PublicKey") {
                    format!("PublicKey = {new}")
                } else {
                    l.to_owned()
                }
            })
            .collect::<Vec<_>>()
            .join("\n")
            + "\n"
    })
    .map(bootstrap_keys::Zeroizing::new)
    .and_then(|t| {
        bootstrap_keys::write_atomic(&next, t.as_bytes(), 0o600).map_err(|e| e.to_string())
    });
    if let Err(e) = ready {
        let _ = run(format!("rm -f /etc/wireguard/{iface}.key.bootstrap-new\n")).await;
        return Check::fail(ID, TITLE, format!("cannot prepare the client config: {e}"));
    }
    // 3. The server's config takes the new key (read from its file, never on a command line),
    //    and the live interface switches two seconds later, after this session has ended.
    let swap = format!(
        "set -e\numask 077\nc=/etc/wireguard/{iface}.conf\nn=/etc/wireguard/{iface}.key.bootstrap-new\n\
         awk -v f=\"$n\" 'BEGIN {{ getline k < f }} /^PrivateKey[ \\t]*=/ {{ print \"PrivateKey = \" k; next }} {{ print }}' \"$c\" > \"$c.bootstrap-new\"\n\
         grep -q '^PrivateKey = ' \"$c.bootstrap-new\"\nmv -f \"$c.bootstrap-new\" \"$c\"\n\
         setsid sh -c 'sleep 2; wg set {iface} private-key /etc/wireguard/{iface}.key.bootstrap-new && rm -f /etc/wireguard/{iface}.key.bootstrap-new' </dev/null >/dev/null 2>&1 &\n\
         echo switching\n"
    );
    let switched = matches!(run(swap).await, Ok(r) if r.stdout.contains("switching"));
    if !switched {
        let _ = std::fs::remove_file(&next);
        return Check::fail(
            ID,
            TITLE,
            "the server did not take the new key; the tunnel and the client config stay as they were"
                .to_owned(),
        );
    }
    // 4. The client config and the record of the new key.
    if let Err(e) = std::fs::rename(&next, &conf)
        .map_err(anyhow::Error::from)
        .and_then(|()| {
            bootstrap_keys::write_atomic(
                &dir.wg_server_public(),
                format!("{new}\n").as_bytes(),
                0o600,
            )
            .map_err(anyhow::Error::from)
        })
    {
        return Check::fail(
            ID,
            TITLE,
            format!(
                "the server switched to {new}, but the client config could not be updated ({e:#}): set `PublicKey = {new}` under [Peer] in {}",
                conf.display()
            ),
        );
    }
    let up_again = format!(
        "sudo wg-quick down {c}; sudo wg-quick up {c}",
        c = conf.display()
    );
    progress.warn(&format!(
        "the WireGuard tunnel restarts with the new server key: run `{up_again}`"
    ));
    Check::pass(
        ID,
        TITLE,
        format!(
            "replaced the user-data's key {from_user_data} with {new} (made on the server); bring the tunnel up again: `{up_again}`",
        ),
    )
}

/// A temporary known_hosts next to the real one that pins only `key` for `alias`.
fn only_new_known_hosts(real: &Path, alias: &str, key: &PublicKey) -> PathBuf {
    let path = real.with_file_name(format!(".known_hosts.proof-{}", std::process::id()));
    let mut kh = KnownHosts::new();
    kh.pin(&[alias.to_owned()], key, "proof");
    if let Err(e) = kh.write(&path) {
        tracing::warn!("cannot write {}: {e}", path.display());
    }
    path
}
