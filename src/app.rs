//! Parses the command line, sets up logging, TLS and the runtime, runs the command, and turns
//! the outcome into an exit code: 0 success, 1 failure, 2 bad input.

use std::process::ExitCode;

use clap::Parser;

use crate::cli::Cli;
use crate::settings::BadInput;
use crate::{commands, env};

/// Runs the tool and returns its exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose, cli.quiet);
    // One TLS provider for the whole process: reqwest is built without one, so this is the only
    // crypto backend compiled in.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(commands::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let code = if e.downcast_ref::<BadInput>().is_some() {
                2
            } else if let Some(i) = e.downcast_ref::<Interrupted>() {
                i.exit_code()
            } else {
                1
            };
            eprintln!("error: {e:#}");
            ExitCode::from(code)
        }
    }
}

/// A run stopped by a signal, after its rollback: the process exits 128 + the signal's number
/// (130 SIGINT, 143 SIGTERM, 129 SIGHUP), as a shell reports a process the signal ended.
#[derive(Debug)]
pub struct Interrupted {
    /// The signal's number.
    pub signal: i32,
    /// What the run did about it (the rollback's outcome).
    pub message: String,
}

impl Interrupted {
    /// The signal's name, for messages.
    pub fn name(signal: i32) -> &'static str {
        match signal {
            1 => "SIGHUP",
            2 => "SIGINT",
            15 => "SIGTERM",
            _ => "a signal",
        }
    }

    fn exit_code(&self) -> u8 {
        u8::try_from(128 + self.signal).unwrap_or(1)
    }
}

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Interrupted {}

/// Waits for SIGINT, SIGTERM or SIGHUP and returns its number; never returns where the
/// handlers cannot be set up. Listening replaces the signals' default action (ending the
/// process) for the rest of the run, so call it only around work that rolls back.
pub async fn signalled() -> i32 {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut int), Ok(mut term), Ok(mut hup)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
        signal(SignalKind::hangup()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = int.recv() => 2,
        _ = term.recv() => 15,
        _ = hup.recv() => 1,
    }
}

fn init_logging(verbose: u8, quiet: bool) {
    let default = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        // A target matches by prefix: `bootstrap` covers bootstrap_core and every
        // bootstrap_<provider> crate, so no provider is named here.
        (false, 1) => "warn,bootstrap=info",
        _ => "info,bootstrap=debug",
    };
    let filter = env::var(env::BOOTSTRAP_LOG).unwrap_or_else(|| default.to_owned());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .with_target(false)
        .without_time()
        .try_init();
}
