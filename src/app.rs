//! Parses the command line, sets up logging, TLS and the runtime, runs the command, and turns
//! the outcome into an exit code: 0 success, 1 failure, 2 bad input.

use std::process::ExitCode;

use clap::{CommandFactory as _, FromArgMatches as _};

use crate::cli::{Cli, Command};
use crate::settings::BadInput;
use crate::{commands, env};

/// Runs the tool and returns its exit code.
pub fn main() -> ExitCode {
    let matches = match Cli::command().try_get_matches() {
        Ok(m) => m,
        Err(e) => return parse_error(&e),
    };
    let mut cli = match Cli::from_arg_matches(&matches) {
        Ok(c) => c,
        Err(e) => return parse_error(&e),
    };
    init_logging(cli.verbose, cli.quiet);
    crate::progress::QUIET.store(cli.quiet, std::sync::atomic::Ordering::Relaxed);
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
    let output = cli.output();
    // `create`/`render` flags not typed come from the defaults file.
    if let (Command::Create(a) | Command::Render(a), Some((_, sub))) =
        (&mut cli.command, matches.subcommand())
        && let Err(e) = crate::defaults::apply(a, sub)
    {
        eprintln!("error: {e:#}");
        return ExitCode::from(2);
    }
    match runtime.block_on(commands::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let bad_input = e.downcast_ref::<BadInput>().is_some();
            let code = if bad_input {
                2
            } else if let Some(i) = e.downcast_ref::<Interrupted>() {
                i.exit_code()
            } else {
                1
            };
            let message = format!("{e:#}");
            eprintln!("error: {message}");
            let out = crate::output::Output::new(output);
            if out.is_json() {
                let kind = match e.downcast_ref::<bootstrap_core::Error>() {
                    _ if bad_input => "bad_input".to_owned(),
                    Some(core) => format!("{:?}", core.kind()),
                    None => "failure".to_owned(),
                };
                out.error(&kind, &message, hint(&message), code);
            }
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
        .with_ansi(crate::progress::color())
        .without_time()
        .try_init();
}

/// The fix a message names: our messages say what is wrong, then after `: ` or `; ` what to do
/// (`plain http would send the token unencrypted; use https://`); the last such part.
fn hint(message: &str) -> Option<&str> {
    const VERBS: &[&str] = &[
        "use ",
        "run ",
        "set ",
        "add ",
        "give ",
        "pick ",
        "create ",
        "delete ",
        "remove ",
        "try ",
        "check ",
        "`bootstrap",
    ];
    message
        .char_indices()
        .rev()
        .filter(|&(i, _)| message[i..].starts_with("; ") || message[i..].starts_with(": "))
        .map(|(i, _)| message[i + 2..].trim())
        .find(|rest| VERBS.iter().any(|v| rest.starts_with(v)))
}

/// Help and version as clap prints them; any other parse error as one line on stderr, exit 2,
/// like every other refusal (clap's own layout spreads it over several lines).
fn parse_error(e: &clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        let _ = e.print();
        return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
    }
    eprintln!("{}", one_line(&e.render().to_string()));
    ExitCode::from(2)
}

/// clap's rendered error on one line: the message, the possible values and the hint, without
/// the usage block and the "For more information" footer.
fn one_line(rendered: &str) -> String {
    let mut parts = Vec::new();
    let mut in_usage = false;
    for line in rendered.lines().map(str::trim) {
        if line.starts_with("Usage:") {
            in_usage = true;
            continue;
        }
        if line.is_empty() {
            in_usage = false;
            continue;
        }
        if in_usage || line.starts_with("For more information") {
            continue;
        }
        parts.push(line);
    }
    parts.join(" ")
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_hint_is_the_part_that_names_the_fix() {
        assert_eq!(
            super::hint(
                "endpoint http://x: plain http would send the API token unencrypted; use https:// (http:// is only for 127.0.0.1)"
            ),
            Some("use https:// (http:// is only for 127.0.0.1)")
        );
        assert_eq!(
            super::hint(
                "no Hetzner token: set HCLOUD_TOKEN (Cloud Console > Security > API tokens)"
            ),
            Some("set HCLOUD_TOKEN (Cloud Console > Security > API tokens)")
        );
        assert_eq!(super::hint("server 5: locked"), None);
    }

    #[test]
    fn clap_errors_become_one_line() {
        let r = "error: invalid value 'openvpn' for '--vpn <KIND>'\n  [possible values: wireguard]\n\nFor more information, try '--help'.\n";
        assert_eq!(
            super::one_line(r),
            "error: invalid value 'openvpn' for '--vpn <KIND>' [possible values: wireguard]"
        );
        let r = "error: the following required arguments were not provided:\n  --ssh-from <CIDR>\n\nUsage: bootstrap create --provider <PROVIDER> --name <NAME> --ssh-from <CIDR>\n\nFor more information, try '--help'.\n";
        assert_eq!(
            super::one_line(r),
            "error: the following required arguments were not provided: --ssh-from <CIDR>"
        );
    }
}
