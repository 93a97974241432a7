//! `bootstrap snapshot run|list|set|install`: the stateless snapshot job and its helpers.

use std::path::{Path, PathBuf};

use bootstrap_core::flow::{self, JobOptions, Outcome};
use bootstrap_core::model::only_matching;
use bootstrap_core::retry::retry;
use bootstrap_core::schedule::{LABEL_ENGINE, LABEL_KEEP, LABEL_SCHEDULE, LABEL_SLOT};
use bootstrap_core::{DeploymentName, Labels, Progress};
use serde_json::json;

use crate::cli::{
    InstallTarget, SnapshotCommand, SnapshotInstallArgs, SnapshotListArgs, SnapshotRunArgs,
    SnapshotSetArgs,
};
use crate::output::Output;
use crate::providers;
use crate::settings::{Connection, bad, instant, schedule};

/// Runs a `snapshot` subcommand.
pub async fn run(c: SnapshotCommand, progress: &dyn Progress) -> anyhow::Result<()> {
    match c {
        SnapshotCommand::Run(a) => job(&a, progress).await,
        SnapshotCommand::List(a) => list(&a).await,
        SnapshotCommand::Set(a) => set(&a).await,
        SnapshotCommand::Install(a) => install(&a),
    }
}

async fn job(a: &SnapshotRunArgs, progress: &dyn Progress) -> anyhow::Result<()> {
    let conn = Connection::from_args(&a.connect, None)?;
    let at = instant(a.at.as_deref())?;
    if a.concurrency == 0 || a.concurrency > 64 {
        return Err(bad("--concurrency must be between 1 and 64"));
    }
    let p = providers::build(&conn).await?;
    let opts = JobOptions {
        at,
        dry_run: a.dry_run,
        concurrency: a.concurrency,
    };
    let reports = flow::snapshot_run(p.as_ref(), &conn.flow, &opts, progress).await?;
    let failed = reports.iter().filter(|r| r.failed()).count();
    let out = Output::new(conn.output);
    if out.is_json() {
        let at = at
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        out.json(&json!({"at": at, "dry_run": a.dry_run, "servers": reports, "failed": failed}))?;
    } else {
        let mut t = String::new();
        for r in &reports {
            let what = match &r.outcome {
                Outcome::Created { id } => format!("created snapshot {id}"),
                Outcome::UpToDate => "up to date".to_owned(),
                Outcome::WouldCreate => "would create a snapshot".to_owned(),
                Outcome::Skipped { reason } => format!("skipped: {reason}"),
                Outcome::Failed { error } => format!("FAILED: {error}"),
            };
            let pruned = if r.pruned.is_empty() {
                String::new()
            } else {
                let verb = if a.dry_run { "would delete" } else { "deleted" };
                format!("; {verb} {}", r.pruned.join(", "))
            };
            t.push_str(&format!(
                "{}: slot {} ({}): {what}{pruned}; {} kept\n",
                r.deployment, r.slot, r.schedule, r.kept
            ));
        }
        if reports.is_empty() {
            t.push_str("no server carries a snapshot schedule\n");
        }
        out.text(&t)?;
    }
    if failed > 0 {
        anyhow::bail!(
            "{failed} of {} servers failed; their snapshots were left as they were",
            reports.len()
        );
    }
    Ok(())
}

async fn list(a: &SnapshotListArgs) -> anyhow::Result<()> {
    let name = DeploymentName::parse(&a.name).map_err(|e| bad(e.to_string()))?;
    let conn = Connection::from_args(&a.connect, Some(&name))?;
    let p = providers::build(&conn).await?;
    let sel = Labels::deployment(&name);
    let mut snaps = only_matching(
        retry(&conn.flow.retry, "list snapshots", || {
            p.list_snapshots(&sel)
        })
        .await?,
        &sel,
    );
    snaps.sort_by(|a, b| (a.created, &a.id).cmp(&(b.created, &b.id)));
    // The provider's own backups, shown apart: they are not ours to prune.
    let servers = only_matching(
        retry(&conn.flow.retry, "list servers", || p.list_servers(&sel)).await?,
        &sel,
    );
    let mut backups = Vec::new();
    for s in &servers {
        backups.extend(
            retry(&conn.flow.retry, "list provider backups", || {
                p.list_provider_backups(s)
            })
            .await?,
        );
    }
    backups.sort_by(|a, b| (a.created, &a.id).cmp(&(b.created, &b.id)));
    let out = Output::new(conn.output);
    if out.is_json() {
        return out
            .json(&json!({"deployment": name, "snapshots": snaps, "provider_backups": backups}));
    }
    let rfc3339 = |t: time::OffsetDateTime| {
        t.format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default()
    };
    let rows = snaps.iter().map(|s| {
        let status = match &s.status {
            bootstrap_core::SnapshotStatus::Available => "available".to_owned(),
            bootstrap_core::SnapshotStatus::Creating => "creating".to_owned(),
            bootstrap_core::SnapshotStatus::Other(o) => o.clone(),
        };
        vec![
            s.id.clone(),
            s.name.clone(),
            rfc3339(s.created),
            status,
            s.labels.get(LABEL_SLOT).unwrap_or("-").to_owned(),
        ]
    });
    let mut t = crate::output::table(&["ID", "NAME", "CREATED", "STATUS", "SLOT"], rows);
    if !backups.is_empty() {
        t.push_str("\nprovider backups (the provider's own; bootstrap never deletes them):\n");
        t.push_str(&crate::output::table(
            &["ID", "NAME", "CREATED"],
            backups
                .iter()
                .map(|b| vec![b.id.clone(), b.name.clone(), rfc3339(b.created)]),
        ));
    }
    out.text(&t)
}

async fn set(a: &SnapshotSetArgs) -> anyhow::Result<()> {
    let name = DeploymentName::parse(&a.name).map_err(|e| bad(e.to_string()))?;
    let conn = Connection::from_args(&a.connect, Some(&name))?;
    let sched = schedule(&a.spec, &a.time, &a.day)?;
    let p = providers::build(&conn).await?;
    let sel = Labels::deployment(&name);
    let servers = only_matching(
        retry(&conn.flow.retry, "list servers", || p.list_servers(&sel)).await?,
        &sel,
    );
    let server = servers.first().ok_or_else(|| {
        bad(format!(
            "no server of deployment {name} found; `bootstrap list` shows them"
        ))
    })?;
    let mut labels: Labels = server
        .labels
        .iter()
        .filter(|(k, _)| ![LABEL_SCHEDULE, LABEL_KEEP].contains(k))
        .collect();
    match &sched {
        Some(s) => {
            for (k, v) in s.to_labels().iter() {
                labels.insert(k, v);
            }
            if labels.get(LABEL_ENGINE).is_none() {
                labels.insert(LABEL_ENGINE, "job");
            }
        }
        None => labels.insert(LABEL_SCHEDULE, "off"),
    }
    // A native engine (AWS DLM) keeps its own copy of the schedule: replace its policy first,
    // so that a refused one leaves the labels as they were.
    let had_native = server.labels.get(LABEL_ENGINE).is_some_and(|e| e != "job");
    bootstrap_core::flow::sync_native_schedule(p.as_ref(), &conn.flow, &name, &labels, had_native)
        .await?;
    retry(&conn.flow.retry, "set labels", || {
        p.set_server_labels(server, &labels)
    })
    .await?;
    let text = sched.map_or("off".to_owned(), |s| s.to_string());
    let out = Output::new(conn.output);
    if out.is_json() {
        out.json(&json!({"deployment": name, "schedule": text, "labels": labels}))
    } else {
        out.text(&format!("{name}: snapshot schedule now {text}\n"))
    }
}

/// Directories the system service's sandbox hides (`ProtectHome=yes`, `PrivateTmp=yes`): a
/// binary there fails with 203/EXEC.
const HIDDEN_FROM_SYSTEM_UNIT: &[(&str, &str)] = &[
    ("/root", "ProtectHome="),
    ("/home", "ProtectHome="),
    ("/run/user", "ProtectHome="),
    ("/tmp", "PrivateTmp="),
    ("/var/tmp", "PrivateTmp="),
];

/// Directories a user service's sandbox hides (`PrivateTmp=yes`; home stays readable).
const HIDDEN_FROM_USER_UNIT: &[(&str, &str)] =
    &[("/tmp", "PrivateTmp="), ("/var/tmp", "PrivateTmp=")];

/// Sandboxing shared by the system and the user service: the job only reads its environment
/// and talks HTTPS to the provider's API, so it needs no capability, no writable path, no
/// device and no namespace. `systemd-analyze security` scores the system unit 1.2 (tested).
const SANDBOX: &str = "\
NoNewPrivileges=yes
ProtectSystem=strict
PrivateTmp=yes
PrivateDevices=yes
PrivateUsers=yes
PrivateIPC=yes
CapabilityBoundingSet=
AmbientCapabilities=
RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
MemoryDenyWriteExecute=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
SystemCallFilter=@system-service
SystemCallFilter=~@privileged @resources
SystemCallErrorNumber=EPERM
SystemCallArchitectures=native
UMask=0077
";

/// Whether the systemd units go to the system manager or the caller's own user manager.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    System,
    User,
}

/// One file `snapshot install` prints or writes.
#[derive(Debug)]
struct InstallFile {
    path: PathBuf,
    mode: u32,
    contents: String,
    /// The credentials file: never overwritten, since it holds the token once filled in.
    keep_existing: bool,
}

fn install(a: &SnapshotInstallArgs) -> anyhow::Result<()> {
    let target = if a.systemd {
        InstallTarget::Systemd
    } else if a.cron {
        InstallTarget::Cron
    } else {
        InstallTarget::Kubernetes
    };
    let scope = if a.user { Scope::User } else { Scope::System };
    let provider = a.provider.name();
    let vars = a.provider.desc().credential_vars;
    let dir = match (&a.dir, target, scope) {
        (Some(d), ..) => d.clone(),
        (None, InstallTarget::Systemd, Scope::System) => PathBuf::from("/etc/systemd/system"),
        (None, InstallTarget::Systemd, Scope::User) => config_home()?.join("systemd/user"),
        (None, InstallTarget::Cron, _) => PathBuf::from("/etc/cron.d"),
        (None, InstallTarget::Kubernetes, _) => PathBuf::from("."),
    };
    let files = match target {
        InstallTarget::Kubernetes => {
            let image = a.image.as_deref().unwrap_or_default();
            if image.is_empty()
                || image
                    .chars()
                    .any(|c| c.is_whitespace() || c.is_control() || c == '"' || c == '\\')
            {
                return Err(bad(format!(
                    "--image {image:?}: not a container image reference; give one such as registry.example.com/bootstrap:0.1.0"
                )));
            }
            vec![InstallFile {
                path: dir.join("bootstrap-snapshot-cronjob.yaml"),
                mode: 0o644,
                contents: cronjob(image, provider, vars),
                keep_existing: false,
            }]
        }
        InstallTarget::Systemd | InstallTarget::Cron => {
            let env_file = match &a.env_file {
                Some(f) => f.clone(),
                None if scope == Scope::User => config_home()?.join("bootstrap/snapshot.env"),
                None => PathBuf::from("/etc/bootstrap/snapshot.env"),
            };
            let env = checked_path("--env-file", &env_file)?;
            let binary = match &a.binary {
                Some(b) => b.clone(),
                None => std::env::current_exe()?,
            };
            let bin = check_binary(&binary, a.binary.is_some(), target, scope, a.write)?;
            let env_template = InstallFile {
                contents: format!(
                    "# Credentials of the bootstrap snapshot job ({provider}): fill in the values.\n\
                     # Keep this file mode 0600; {reader} reads it, the job never prints it.\n{}",
                    vars.iter().map(|v| format!("{v}=\n")).collect::<String>(),
                    reader = if target == InstallTarget::Cron {
                        "cron"
                    } else {
                        "systemd"
                    },
                ),
                path: env_file,
                mode: 0o600,
                keep_existing: true,
            };
            let mut files = if target == InstallTarget::Systemd {
                systemd_units(&dir, scope, &bin, &env, provider)
            } else {
                vec![InstallFile {
                    path: dir.join("bootstrap-snapshot"),
                    mode: 0o644,
                    contents: format!(
                        "# bootstrap snapshot job, every hour at :07 (/etc/cron.d format: minute hour day month weekday user command).\n\
                         # {vars} come from {env} (mode 0600), one VAR=value per line.\n\
                         7 * * * * root set -a; . {env}; set +a; {bin} snapshot run --provider {provider} --quiet\n",
                        vars = vars.join(", ")
                    ),
                    keep_existing: false,
                }]
            };
            files.push(env_template);
            files
        }
    };
    let actions = if a.write {
        Some(write_files(&files)?)
    } else {
        None
    };
    let next = next_steps(target, scope, &files, vars);
    let out = Output::new(a.output);
    if out.is_json() {
        let docs: Vec<_> = files
            .iter()
            .enumerate()
            .map(|(i, f)| {
                let mut d = json!({
                    "path": f.path.display().to_string(),
                    "mode": format!("{:04o}", f.mode),
                    "contents": f.contents,
                });
                if let Some(action) = actions.as_ref().and_then(|acts| acts.get(i)) {
                    d["action"] = json!(action);
                }
                d
            })
            .collect();
        return out.json(&json!({
            "format_version": 1,
            "target": format!("{target:?}").to_lowercase(),
            "scope": (target == InstallTarget::Systemd)
                .then(|| if scope == Scope::User { "user" } else { "system" }),
            "written": a.write,
            "files": docs,
            "next": next,
        }));
    }
    let mut t = String::new();
    match &actions {
        None => {
            for f in &files {
                if files.len() > 1 {
                    t.push_str(&format!(
                        "# --- {} (mode {:04o})\n",
                        f.path.display(),
                        f.mode
                    ));
                }
                t.push_str(&f.contents);
            }
        }
        Some(acts) => {
            for (f, act) in files.iter().zip(acts) {
                t.push_str(&format!(
                    "{act} {} (mode {:04o})\n",
                    f.path.display(),
                    f.mode
                ));
            }
            for n in &next {
                t.push_str(&format!("next: {n}\n"));
            }
        }
    }
    out.text(&t)
}

/// The service and its hourly timer, sandboxed for the system or the user manager.
fn systemd_units(
    dir: &Path,
    scope: Scope,
    bin: &str,
    env: &str,
    provider: &str,
) -> Vec<InstallFile> {
    let (after, identity) = match scope {
        // A dynamic user (no account, nothing it owns outlives the run); systemd reads the
        // root-owned env file before dropping privileges.
        Scope::System => (
            "Wants=network-online.target\nAfter=network-online.target\n",
            "DynamicUser=yes\nProtectHome=yes\nProtectProc=invisible\nProcSubset=pid\n\
             DevicePolicy=closed\nKeyringMode=private\nRemoveIPC=yes\n",
        ),
        // The user manager runs it as you; the binary may live in your home, so home stays
        // readable (not writable).
        Scope::User => ("", "ProtectHome=read-only\n"),
    };
    vec![
        InstallFile {
            path: dir.join("bootstrap-snapshot.service"),
            mode: 0o644,
            contents: format!(
                "[Unit]\n\
                 Description=bootstrap snapshot job: take due snapshots, prune old ones\n\
                 {after}\n\
                 [Service]\n\
                 Type=oneshot\n\
                 # The credentials: mode 0600, read by systemd, never printed by the job.\n\
                 EnvironmentFile={env}\n\
                 ExecStart={bin} snapshot run --provider {provider}\n\
                 # The job keeps no local state: it reads the API, writes nothing on disk.\n\
                 {identity}{SANDBOX}"
            ),
            keep_existing: false,
        },
        InstallFile {
            path: dir.join("bootstrap-snapshot.timer"),
            mode: 0o644,
            contents: "[Unit]\n\
                       Description=Run the bootstrap snapshot job every hour\n\n\
                       [Timer]\n\
                       OnCalendar=hourly\n\
                       RandomizedDelaySec=300\n\
                       Persistent=true\n\n\
                       [Install]\n\
                       WantedBy=timers.target\n"
                .to_owned(),
            keep_existing: false,
        },
    ]
}

/// The CronJob under the "restricted" Pod Security Standard: non-root, no privilege
/// escalation, every capability dropped, the runtime's seccomp profile, a read-only root
/// filesystem, bounded resources, no service account token (the job never calls Kubernetes).
fn cronjob(image: &str, provider: &str, vars: &[&str]) -> String {
    let from = vars
        .iter()
        .map(|v| format!("--from-literal={v}=..."))
        .collect::<Vec<_>>()
        .join(" ");
    format!(
        r#"# The credentials come from a Secret; create it with:
#   kubectl create secret generic bootstrap-credentials {from}
# Meets the "restricted" Pod Security Standard; 65532 is the image's non-root user.
apiVersion: batch/v1
kind: CronJob
metadata:
  name: bootstrap-snapshot
spec:
  schedule: "7 * * * *"
  concurrencyPolicy: Forbid
  startingDeadlineSeconds: 3000
  successfulJobsHistoryLimit: 3
  failedJobsHistoryLimit: 3
  jobTemplate:
    spec:
      backoffLimit: 1
      activeDeadlineSeconds: 3300
      template:
        spec:
          restartPolicy: Never
          automountServiceAccountToken: false
          securityContext:
            runAsNonRoot: true
            runAsUser: 65532
            runAsGroup: 65532
            seccompProfile:
              type: RuntimeDefault
          containers:
            - name: snapshot
              image: "{image}"
              args: ["snapshot", "run", "--provider", "{provider}"]
              envFrom:
                - secretRef:
                    name: bootstrap-credentials
              resources:
                requests:
                  cpu: 50m
                  memory: 64Mi
                limits:
                  cpu: 500m
                  memory: 256Mi
              securityContext:
                runAsNonRoot: true
                runAsUser: 65532
                runAsGroup: 65532
                allowPrivilegeEscalation: false
                readOnlyRootFilesystem: true
                capabilities:
                  drop: ["ALL"]
                seccompProfile:
                  type: RuntimeDefault
"#
    )
}

/// What to run after the files are in place.
fn next_steps(
    target: InstallTarget,
    scope: Scope,
    files: &[InstallFile],
    vars: &[&str],
) -> Vec<String> {
    let env = files
        .iter()
        .find(|f| f.keep_existing)
        .map(|f| f.path.display().to_string());
    let fill = env.map(|e| format!("fill in {} in {e} (mode 0600)", vars.join(", ")));
    match (target, scope) {
        (InstallTarget::Systemd, Scope::System) => vec![
            fill.unwrap_or_default(),
            "systemctl daemon-reload && systemctl enable --now bootstrap-snapshot.timer".to_owned(),
        ],
        (InstallTarget::Systemd, Scope::User) => vec![
            fill.unwrap_or_default(),
            "systemctl --user daemon-reload && systemctl --user enable --now bootstrap-snapshot.timer"
                .to_owned(),
            "loginctl enable-linger \"$USER\" (the timer then runs while you are logged out)"
                .to_owned(),
        ],
        (InstallTarget::Cron, _) => vec![fill.unwrap_or_default()],
        (InstallTarget::Kubernetes, _) => vec![
            format!(
                "kubectl create secret generic bootstrap-credentials {}",
                vars.iter()
                    .map(|v| format!("--from-literal={v}=..."))
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
            format!(
                "kubectl apply -f {}",
                files.first().map(|f| f.path.display().to_string()).unwrap_or_default()
            ),
        ],
    }
}

/// Writes the files, creating their directories (0755; 0700 for the credentials file's),
/// and returns what happened to each: `wrote`, or `kept` for a credentials file that exists.
fn write_files(files: &[InstallFile]) -> anyhow::Result<Vec<&'static str>> {
    use std::fs::{DirBuilder, OpenOptions, Permissions};
    use std::io::Write as _;
    use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};

    let mut actions = Vec::new();
    for f in files {
        let at = |e: std::io::Error| anyhow::anyhow!("writing {}: {e}", f.path.display());
        if let Some(parent) = f.path.parent().filter(|p| !p.as_os_str().is_empty()) {
            DirBuilder::new()
                .recursive(true)
                .mode(if f.keep_existing { 0o700 } else { 0o755 })
                .create(parent)
                .map_err(|e| anyhow::anyhow!("creating {}: {e}", parent.display()))?;
        }
        if f.keep_existing {
            match OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(f.mode)
                .open(&f.path)
            {
                Ok(mut file) => file.write_all(f.contents.as_bytes()).map_err(at)?,
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    // It may hold the token already: keep its contents, but not a loose mode.
                    std::fs::set_permissions(&f.path, Permissions::from_mode(f.mode))
                        .map_err(at)?;
                    actions.push("kept");
                    continue;
                }
                Err(e) => return Err(at(e)),
            }
        } else {
            std::fs::write(&f.path, &f.contents).map_err(at)?;
        }
        std::fs::set_permissions(&f.path, Permissions::from_mode(f.mode)).map_err(at)?;
        actions.push("wrote");
    }
    Ok(actions)
}

/// `$XDG_CONFIG_HOME`, else `~/.config`: where the user manager looks for units.
fn config_home() -> anyhow::Result<PathBuf> {
    crate::env::config_home().ok_or_else(|| {
        bad("cannot find your config directory: set HOME, or pass --dir and --env-file")
    })
}

/// A path that goes into a unit or a crontab as it is: absolute, no `..`, nothing that
/// systemd or the shell would read differently (spaces, quotes, `%`, `\`, `$`, `;`).
fn checked_path(flag: &str, p: &Path) -> anyhow::Result<String> {
    let s = p.display().to_string();
    if !p.is_absolute() {
        return Err(bad(format!(
            "{flag} {s}: give an absolute path, e.g. {}; the job does not run in this directory",
            std::env::current_dir()
                .map(|d| d.join(p).display().to_string())
                .unwrap_or_else(|_| "/usr/local/bin/bootstrap".to_owned())
        )));
    }
    if p.components().any(|c| c == std::path::Component::ParentDir)
        || s.chars()
            .any(|c| c.is_whitespace() || c.is_control() || "%\"'\\$;&|`<>*?".contains(c))
    {
        return Err(bad(format!(
            "{flag} {s:?}: use a plain path without .., spaces, quotes, % or shell characters"
        )));
    }
    Ok(s)
}

/// Refuses a binary the job could not start: relative, hidden by the sandbox, or (when
/// writing) missing or not executable by the user the job runs as.
fn check_binary(
    binary: &Path,
    given: bool,
    target: InstallTarget,
    scope: Scope,
    write: bool,
) -> anyhow::Result<String> {
    let flag = if given { "--binary" } else { "this binary" };
    let bin = checked_path(flag, binary)?;
    let hidden = match (target, scope) {
        (InstallTarget::Systemd, Scope::System) => HIDDEN_FROM_SYSTEM_UNIT,
        (InstallTarget::Systemd, Scope::User) => HIDDEN_FROM_USER_UNIT,
        _ => &[],
    };
    if let Some((dir, option)) = hidden.iter().find(|(d, _)| binary.starts_with(d)) {
        let home = scope == Scope::User;
        let dest = if home {
            "~/.local/bin/bootstrap"
        } else {
            "/usr/local/bin/bootstrap"
        };
        return Err(bad(format!(
            "{flag} {bin} is under {dir}, which the service's sandbox ({option}) hides, so it would fail with 203/EXEC: \
             install it first (`install -m 0755 {bin} {dest}`) and pass --binary {dest}"
        )));
    }
    if write {
        use std::os::unix::fs::PermissionsExt as _;
        let meta = std::fs::metadata(binary).map_err(|e| {
            bad(format!(
                "{flag} {bin}: {e}; install bootstrap there first, or pass --binary with the path where it is"
            ))
        })?;
        // The system service runs as a dynamic user: the binary must be executable by others.
        let need = if target == InstallTarget::Systemd && scope == Scope::System {
            0o001
        } else {
            0o111
        };
        if !meta.is_file() || meta.permissions().mode() & need == 0 {
            return Err(bad(format!(
                "{flag} {bin} is not a file the job's user may execute (mode {:04o}): `chmod 0755 {bin}`",
                meta.permissions().mode() & 0o7777
            )));
        }
    }
    Ok(bin)
}
