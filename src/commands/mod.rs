//! One module per command; `run` dispatches.

mod create;
mod destroy;
mod list;
mod plan;
mod secrets;
mod snapshot;
mod ssh;
mod status;
mod verify;

use clap::CommandFactory as _;

use crate::cli::{Cli, Command, OutputFormat};
use crate::output::Output;
use crate::progress::StderrProgress;

/// Runs the parsed command.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let progress = StderrProgress::new(cli.quiet);
    match cli.command {
        Command::Create(a) => create::create(&a, &progress).await,
        Command::Render(a) => create::render(&a, &progress).await,
        Command::Destroy(a) => destroy::run(&a, &progress).await,
        Command::List(a) => list::run(&a).await,
        Command::Snapshot(c) => snapshot::run(c, &progress).await,
        Command::Verify(a) => verify::run(&a, &progress).await,
        Command::Ssh(a) => ssh::run(&a).await,
        Command::Status(a) => status::run(&a).await,
        Command::Completions(a) => completions(a.shell),
        Command::Man => man(),
    }
}

/// The completion script for `shell`, from the same definitions that parse the command line.
fn completions(shell: clap_complete::Shell) -> anyhow::Result<()> {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "bootstrap", &mut script);
    Output::new(OutputFormat::Text).text(&String::from_utf8_lossy(&script))
}

/// The man page, in roff.
fn man() -> anyhow::Result<()> {
    let mut page = Vec::new();
    clap_mangen::Man::new(Cli::command()).render(&mut page)?;
    Output::new(OutputFormat::Text).text(&String::from_utf8_lossy(&page))
}
