//! `bootstrap destroy NAME`: removes the deployment's server, firewall and key, then its local
//! state. Idempotent: a second run finds nothing and says so.

use std::io::{BufRead, IsTerminal, Write};

use bootstrap_core::{DeploymentName, Progress, flow};

use crate::cli::DestroyArgs;
use crate::output::Output;
use crate::providers;
use crate::settings::{Connection, bad, state_dir};

/// Destroys a deployment.
pub async fn run(a: &DestroyArgs, progress: &dyn Progress) -> anyhow::Result<()> {
    let conn = Connection::from_args(&a.connect)?;
    let name = DeploymentName::parse(&a.name).map_err(|e| bad(e.to_string()))?;
    let p = providers::build(&conn).await?;
    if !a.yes {
        confirm(&name)?;
    }
    let snapshots = if a.delete_snapshots {
        flow::Snapshots::Delete
    } else {
        flow::Snapshots::Keep
    };
    // The same lock as `create`: no destroy under a create of this machine, nor the reverse.
    let _lock = crate::state::DeploymentDir::new(conn.kind.name(), &name)?
        .lock(conn.flow.timeout, progress)
        .await?;
    let t = flow::destroy(p.as_ref(), &name, &conn.flow, progress, snapshots).await?;
    let local = state_dir()?.join(conn.kind.name()).join(name.as_str());
    let removed_local = if local.exists() {
        std::fs::remove_dir_all(&local)?;
        Some(local.display().to_string())
    } else {
        None
    };
    Output::new(conn.output).destroyed(name.as_str(), &t, removed_local.as_deref())
}

fn confirm(name: &DeploymentName) -> anyhow::Result<()> {
    if !std::io::stdin().is_terminal() {
        return Err(bad(format!(
            "refusing to destroy {name} without confirmation: add --yes when not running interactively"
        )));
    }
    eprint!(
        "This deletes the server, firewall and SSH key of {name} (snapshots only with --delete-snapshots). Type the name to confirm: "
    );
    std::io::stderr().flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    if line.trim() != name.as_str() {
        return Err(bad("not confirmed; nothing was deleted"));
    }
    Ok(())
}
