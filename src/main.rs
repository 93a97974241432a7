//! `bootstrap`: turns a cloud API token into a hardened, reachable server in one command.
//!
//! `main` only installs the TLS provider and hands over to [`app::run`]; exit codes are chosen
//! in one place: 0 success, 1 failure, 2 bad input.

mod app;
mod cli;
mod commands;
mod defaults;
mod env;
mod output;
mod progress;
mod providers;
mod settings;
mod state;

use std::process::ExitCode;

fn main() -> ExitCode {
    app::main()
}
