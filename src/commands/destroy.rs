//! `bootstrap destroy NAME`: removes the deployment's server, firewall and key, then its local
//! state. Idempotent: a second run finds nothing and says so.

use std::io::{BufRead, IsTerminal, Write};

use bootstrap_core::{DeploymentName, Progress, flow};

use crate::cli::DestroyArgs;
use crate::output::Output;
use crate::providers;
use crate::settings::{Connection, bad};
use crate::state::DeploymentDir;

/// Destroys a deployment.
pub async fn run(a: &DestroyArgs, progress: &dyn Progress) -> anyhow::Result<()> {
    let name = DeploymentName::parse(&a.name).map_err(|e| bad(e.to_string()))?;
    let conn = Connection::from_args(&a.connect, Some(&name))?;
    // Checked before anything is deleted: a state dir another user could change is refused.
    let local = DeploymentDir::new(conn.kind.name(), &name)?;
    let p = providers::build(&conn).await?;
    if a.dry_run {
        let doc = super::plan::destroy_plan(p.as_ref(), &conn, &name, a.delete_snapshots).await?;
        return Output::new(conn.output).destroy_plan(&doc);
    }
    if !a.yes {
        let backups = p.description().provider_backups;
        crate::progress::suspend(|| confirm(&name, backups))?;
    }
    let snapshots = if a.delete_snapshots {
        flow::Snapshots::Delete
    } else {
        flow::Snapshots::Keep
    };
    // The same lock as `create`: no destroy under a create of this machine, nor the reverse.
    let _lock = local.lock(conn.flow.timeout, progress).await?;
    // A teardown that stops halfway names what it removed and what is left; the fix is to run
    // the same command again once the cause is gone.
    let t = flow::destroy(p.as_ref(), &name, &conn.flow, progress, snapshots)
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "{e}; run `bootstrap destroy {name} --provider {}{}{} --yes` to finish",
                conn.kind.name(),
                conn.flags(),
                if a.delete_snapshots {
                    " --delete-snapshots"
                } else {
                    ""
                }
            )
        })?;
    // Exactly the files bootstrap wrote, never `remove_dir_all` (issue 13, finding 8).
    let (removed, others) = local.remove_written()?;
    if !others.is_empty() {
        progress.warn(&format!(
            "kept {}: it also holds files bootstrap did not write ({})",
            local.path().display(),
            others.join(", ")
        ));
    }
    let removed_local = (!removed.is_empty()).then(|| local.path().display().to_string());
    Output::new(conn.output).destroyed(name.as_str(), &t, removed_local.as_deref())
}

fn confirm(name: &DeploymentName, provider_backups: bool) -> anyhow::Result<()> {
    if !std::io::stdin().is_terminal() {
        return Err(bad(format!(
            "refusing to destroy {name} without confirmation: add --yes when not running interactively"
        )));
    }
    let backups = if provider_backups {
        "; the provider's own backups of the server go with it"
    } else {
        ""
    };
    eprint!(
        "This deletes the server, firewall and SSH key of {name} (snapshots only with --delete-snapshots{backups}). Type the name to confirm: "
    );
    std::io::stderr().flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    if line.trim() != name.as_str() {
        return Err(bad("not confirmed; nothing was deleted"));
    }
    Ok(())
}
