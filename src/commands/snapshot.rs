//! `bootstrap snapshot run|list|set|install`: the stateless snapshot job and its helpers.

use std::path::PathBuf;

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

fn install(a: &SnapshotInstallArgs) -> anyhow::Result<()> {
    let target = if a.systemd {
        InstallTarget::Systemd
    } else if a.cron {
        InstallTarget::Cron
    } else {
        InstallTarget::Kubernetes
    };
    let provider = a.provider.name();
    let binary = match &a.binary {
        Some(b) => b.clone(),
        None => std::env::current_exe()?,
    };
    let bin = binary.display().to_string();
    if bin
        .chars()
        .any(|c| c.is_whitespace() || c == '%' || c == '"')
    {
        return Err(bad(format!(
            "--binary {bin:?}: use a path without spaces, quotes or %"
        )));
    }
    let vars = a.provider.desc().credential_vars;
    let files: Vec<(String, String)> = match target {
        InstallTarget::Systemd => vec![
            (
                "bootstrap-snapshot.service".to_owned(),
                format!(
                    "[Unit]\n\
                     Description=bootstrap snapshot job: take due snapshots, prune old ones\n\
                     Wants=network-online.target\n\
                     After=network-online.target\n\n\
                     [Service]\n\
                     Type=oneshot\n\
                     # {vars} go in this file (mode 0600, owned by root).\n\
                     EnvironmentFile=/etc/bootstrap/snapshot.env\n\
                     ExecStart={bin} snapshot run --provider {provider}\n\
                     DynamicUser=yes\n\
                     NoNewPrivileges=yes\n\
                     PrivateTmp=yes\n\
                     ProtectSystem=strict\n\
                     ProtectHome=yes\n",
                    vars = vars.join(", ")
                ),
            ),
            (
                "bootstrap-snapshot.timer".to_owned(),
                "[Unit]\n\
                 Description=Run the bootstrap snapshot job every hour\n\n\
                 [Timer]\n\
                 OnCalendar=hourly\n\
                 RandomizedDelaySec=300\n\
                 Persistent=true\n\n\
                 [Install]\n\
                 WantedBy=timers.target\n"
                    .to_owned(),
            ),
        ],
        InstallTarget::Cron => vec![(
            "bootstrap-snapshot".to_owned(),
            format!(
                "# bootstrap snapshot job, every hour at :07 (/etc/cron.d format: minute hour day month weekday user command).\n\
                 # {vars} come from /etc/bootstrap/snapshot.env (mode 0600), one VAR=value per line.\n\
                 7 * * * * root set -a; . /etc/bootstrap/snapshot.env; set +a; {bin} snapshot run --provider {provider} --quiet\n",
                vars = vars.join(", ")
            ),
        )],
        InstallTarget::Kubernetes => {
            let image = &a.image;
            if image
                .chars()
                .any(|c| c.is_whitespace() || c == '"' || c == '\\')
            {
                return Err(bad(format!(
                    "--image {image:?}: not a container image reference"
                )));
            }
            vec![(
                "bootstrap-snapshot-cronjob.yaml".to_owned(),
                format!(
                    "# The credentials come from a Secret; create it with:\n\
                     #   kubectl create secret generic bootstrap-credentials {from}\n\
                     apiVersion: batch/v1\n\
                     kind: CronJob\n\
                     metadata:\n  name: bootstrap-snapshot\n\
                     spec:\n  schedule: \"7 * * * *\"\n  concurrencyPolicy: Forbid\n  startingDeadlineSeconds: 3000\n  successfulJobsHistoryLimit: 3\n  failedJobsHistoryLimit: 3\n\
                     \x20 jobTemplate:\n    spec:\n      backoffLimit: 1\n      template:\n        spec:\n          restartPolicy: Never\n\
                     \x20         containers:\n            - name: snapshot\n              image: \"{image}\"\n\
                     \x20             args: [\"snapshot\", \"run\", \"--provider\", \"{provider}\"]\n\
                     \x20             envFrom:\n                - secretRef:\n                    name: bootstrap-credentials\n\
                     \x20             securityContext:\n                runAsNonRoot: true\n                runAsUser: 65532\n                allowPrivilegeEscalation: false\n                readOnlyRootFilesystem: true\n",
                    from = vars
                        .iter()
                        .map(|v| format!("--from-literal={v}=..."))
                        .collect::<Vec<_>>()
                        .join(" ")
                ),
            )]
        }
    };
    if !a.write {
        let mut t = String::new();
        for (name, body) in &files {
            if files.len() > 1 {
                t.push_str(&format!("# --- {name}\n"));
            }
            t.push_str(body);
        }
        return Output::new(crate::cli::OutputFormat::Text).text(&t);
    }
    let dir = a.dir.clone().unwrap_or_else(|| match target {
        InstallTarget::Systemd => PathBuf::from("/etc/systemd/system"),
        InstallTarget::Cron => PathBuf::from("/etc/cron.d"),
        InstallTarget::Kubernetes => PathBuf::from("."),
    });
    let mut written = String::new();
    for (name, body) in &files {
        let path = dir.join(name);
        std::fs::write(&path, body)
            .map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))?;
        written.push_str(&format!("wrote {}\n", path.display()));
    }
    written.push_str(match target {
        InstallTarget::Systemd => "next: put the credentials in /etc/bootstrap/snapshot.env (0600), then `systemctl daemon-reload && systemctl enable --now bootstrap-snapshot.timer`\n",
        InstallTarget::Cron => "next: put the credentials in /etc/bootstrap/snapshot.env (0600)\n",
        InstallTarget::Kubernetes => "next: create the Secret named in the file, then `kubectl apply -f bootstrap-snapshot-cronjob.yaml`\n",
    });
    Output::new(crate::cli::OutputFormat::Text).text(&written)
}
