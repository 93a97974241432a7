//! One module per command; `run` dispatches.

mod create;
mod destroy;
mod list;
mod secrets;
mod snapshot;
mod ssh;
mod verify;

use crate::cli::{Cli, Command};
use crate::progress::StderrProgress;

/// Runs the parsed command.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let progress = StderrProgress::new(cli.verbose > 0, cli.quiet);
    match cli.command {
        Command::Create(a) => create::create(&a, &progress).await,
        Command::Render(a) => create::render(&a, &progress).await,
        Command::Destroy(a) => destroy::run(&a, &progress).await,
        Command::List(a) => list::run(&a).await,
        Command::Snapshot(c) => snapshot::run(c, &progress).await,
        Command::Verify(a) => verify::run(&a, &progress).await,
        Command::Ssh(a) => ssh::run(&a).await,
    }
}
