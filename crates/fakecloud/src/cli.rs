//! The `fakecloud` command: `fakecloud <provider> --listen 127.0.0.1:PORT [--action-ms N]
//! [--latency-ms N]` serves
//! one provider's fake until SIGTERM or Ctrl-C. The first line on stdout is the URL to give
//! `bootstrap --endpoint`, so scripts and tests can read it and start; everything else goes to
//! stderr. One subcommand per provider, all sharing [`Serve`].

use std::io::Write as _;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::clock::Pace;
use crate::hetzner::{FakeConfig, FakeHetzner};

/// Serve a stateful fake of a cloud API on this machine, to try `bootstrap` without an account.
#[derive(Debug, Parser)]
#[command(name = "fakecloud", version)]
pub struct Cli {
    /// The provider to fake.
    #[command(subcommand)]
    pub provider: Provider,
}

/// One subcommand per faked provider.
#[derive(Debug, Subcommand)]
pub enum Provider {
    /// Hetzner Cloud (`/v1`); any non-empty bearer token is accepted.
    Hetzner(Serve),
    /// DigitalOcean (`/v2`); any non-empty bearer token is accepted.
    Digitalocean(Serve),
    /// Scaleway (Instance, Block and Marketplace APIs); any `X-Auth-Token` is accepted.
    Scaleway(Serve),
}

/// What every provider's fake takes.
#[derive(Debug, Args)]
pub struct Serve {
    /// Where to listen: a loopback address (port 0 picks a free one; the first line printed
    /// says which).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,
    /// Every action takes this many milliseconds of wall time (default: it finishes at the
    /// third poll, as in the tests).
    #[arg(long, value_name = "N")]
    pub action_ms: Option<u64>,
    /// Every request takes this many milliseconds longer, half before the fake does the work
    /// and half before the answer leaves, as over a network (default: none).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub latency_ms: u64,
}

impl Serve {
    /// The action clock the flags ask for.
    pub fn pace(&self) -> Pace {
        self.action_ms
            .map_or_else(Pace::default, |ms| Pace::Wall(Duration::from_millis(ms)))
    }

    /// The latency the flags ask for.
    pub fn latency(&self) -> Duration {
        Duration::from_millis(self.latency_ms)
    }
}

/// Parses the arguments and serves until SIGTERM or Ctrl-C: 0 then, 1 on a failure to serve,
/// 2 on bad arguments (clap's own exit code).
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fakecloud: error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

/// Why `fakecloud` stopped other than by a signal.
#[derive(Debug)]
pub enum Error {
    /// `--listen` is not a loopback address: fakes are for this machine only.
    NotLoopback(SocketAddr),
    /// Binding, printing, or waiting for the signal failed.
    Io(std::io::Error),
}

impl Error {
    fn exit_code(&self) -> u8 {
        match self {
            Error::NotLoopback(_) => 2,
            Error::Io(_) => 1,
        }
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::NotLoopback(a) => write!(
                f,
                "--listen {a}: not a loopback address; fakecloud listens on 127.0.0.1 or ::1 only\nhint: --listen 127.0.0.1:{}",
                a.port()
            ),
            Error::Io(e) => write!(f, "{e}"),
        }
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Io(e)
    }
}

/// Starts the fake, prints its URL, and waits for SIGTERM or Ctrl-C.
///
/// # Errors
/// A non-loopback `--listen`, a port that cannot be bound, or stdout closed.
pub fn run(cli: &Cli) -> Result<(), Error> {
    let serve = match &cli.provider {
        Provider::Hetzner(s) => s,
        Provider::Scaleway(s) => return run_scaleway(s),
        Provider::Digitalocean(s) => return run_digitalocean(s),
    };
    if !serve.listen.ip().is_loopback() {
        return Err(Error::NotLoopback(serve.listen));
    }
    let config = FakeConfig {
        pace: serve.pace(),
        ..FakeConfig::default()
    };
    let fake = FakeHetzner::start_on(serve.listen, config)?;
    fake.set_latency(serve.latency());
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", fake.url())?;
    out.flush()?;
    drop(out);
    eprintln!(
        "fakecloud: Hetzner Cloud fake; HCLOUD_TOKEN may be anything; Ctrl-C or SIGTERM stops it"
    );
    wait_for_signal()?;
    drop(fake);
    Ok(())
}

/// `fakecloud digitalocean`: the DigitalOcean fake until a signal.
fn run_digitalocean(serve: &Serve) -> Result<(), Error> {
    if !serve.listen.ip().is_loopback() {
        return Err(Error::NotLoopback(serve.listen));
    }
    let fake = crate::digitalocean::FakeDo::start_on(serve.listen, serve.pace())?;
    fake.kit().set_latency(serve.latency());
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", fake.url())?;
    out.flush()?;
    drop(out);
    eprintln!(
        "fakecloud: DigitalOcean fake; DIGITALOCEAN_TOKEN may be anything; Ctrl-C or SIGTERM stops it"
    );
    wait_for_signal()?;
    drop(fake);
    Ok(())
}

/// `fakecloud scaleway`: the Scaleway fake until a signal.
fn run_scaleway(serve: &Serve) -> Result<(), Error> {
    if !serve.listen.ip().is_loopback() {
        return Err(Error::NotLoopback(serve.listen));
    }
    let fake = crate::scaleway::FakeScaleway::start_on(serve.listen)?;
    if serve.action_ms.is_some() {
        fake.set_pace(serve.pace());
    }
    fake.kit().set_latency(serve.latency());
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", fake.url())?;
    out.flush()?;
    drop(out);
    eprintln!(
        "fakecloud: Scaleway fake; SCW_SECRET_KEY may be anything, SCW_DEFAULT_PROJECT_ID must be {}; Ctrl-C or SIGTERM stops it",
        crate::scaleway::PROJECT
    );
    wait_for_signal()?;
    drop(fake);
    Ok(())
}

/// Blocks until SIGTERM or SIGINT (Ctrl-C).
fn wait_for_signal() -> std::io::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            _ = term.recv() => Ok(()),
            r = tokio::signal::ctrl_c() => r,
        }
    })
}
