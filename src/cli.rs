//! The command line, as clap types only: no I/O and no checks beyond parsing
//! (see `settings` for validation).

use std::collections::BTreeMap;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

pub use crate::providers::ProviderKind;

/// Turn a cloud API token into a hardened, reachable server; remove it again in one command.
#[derive(Debug, Parser)]
#[command(name = "bootstrap", version = crate::providers::VERSION.as_str(), about)]
pub struct Cli {
    /// More output on stderr (-v: progress details, -vv: debug logs; secrets are never logged).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Only errors (and a warning when port 22 is open to the world) on stderr.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create (or complete) a hardened server with its SSH key and cloud firewall.
    #[command(after_help = CREATE_EXAMPLES)]
    Create(CreateArgs),
    /// Print the cloud-init user-data that `create` would send, and nothing else.
    ///
    /// The server's host key (and the WireGuard server key) in it are stand-ins made for this
    /// output: they are secrets, `create` makes the real ones and never prints them.
    Render(CreateArgs),
    /// Remove the server, firewall and key of a deployment (idempotent).
    Destroy(DestroyArgs),
    /// List deployments found through their labels.
    List(ListArgs),
    /// Snapshots: the scheduled job, listing, changing a schedule, installing the job.
    #[command(subcommand)]
    Snapshot(SnapshotCommand),
    /// Check a server over SSH (pinned host key) and print a checklist; exit 1 if a check fails.
    ///
    /// Waits for cloud-init, then checks sshd's effective settings, that root and passwords are
    /// refused, fail2ban, the nftables ruleset, unattended-upgrades, pending security updates,
    /// sysctl, sudo, and the Docker and WireGuard setup when used. The first run replaces the
    /// host key from the user-data with one generated on the server.
    Verify(VerifyArgs),
    /// Open an SSH session to a deployment: its key, admin user and pinned host key.
    Ssh(SshArgs),
    /// Show a deployment: server, firewall rules and drift, snapshot schedule, pinned host key.
    Status(StatusArgs),
    /// Print a shell completion script: `bootstrap completions bash > /etc/bash_completion.d/bootstrap`.
    Completions(CompletionsArgs),
    /// Print the man page (roff): `bootstrap man | man -l -`.
    Man,
}

/// `status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Deployment to show.
    pub name: String,
    /// Provider, endpoint, timeout, output.
    #[command(flatten)]
    pub connect: ConnectArgs,
}

/// `completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// Shown at the end of `create --help`.
const CREATE_EXAMPLES: &str = "\
Examples:
  # Plan only: the resources and the exact user-data, offline, no token needed
  bootstrap create --provider hetzner --name web1 --ssh-from 203.0.113.7/32 --dry-run
  # Create: SSH open only to your address; snapshots daily, 7 kept
  bootstrap create --provider hetzner --name web1 --ssh-from 203.0.113.7/32
  # Your own key, Docker, weekly snapshots on Wednesday
  bootstrap create --provider digitalocean --name web1 --ssh-from 203.0.113.7/32 \\
      --ssh-key ~/.ssh/id_ed25519.pub --docker --snapshots weekly:4 --snapshot-day wed
  # SSH only through WireGuard, in a Scaleway zone
  bootstrap create --provider scaleway --zone nl-ams-1 --name vpn1 --ssh-from 203.0.113.7/32 --vpn wireguard
  # Your address changed: the same command moves the SSH rule
  bootstrap create --provider hetzner --name web1 --ssh-from 198.51.100.4/32";

impl Cli {
    /// The output format the command asked for, so that an error can follow it.
    pub fn output(&self) -> OutputFormat {
        match &self.command {
            Command::Create(a) | Command::Render(a) => a.connect.output,
            Command::Destroy(a) => a.connect.output,
            Command::List(a) => a.output,
            Command::Snapshot(SnapshotCommand::Run(a)) => a.connect.output,
            Command::Snapshot(SnapshotCommand::List(a)) => a.connect.output,
            Command::Snapshot(SnapshotCommand::Set(a)) => a.connect.output,
            Command::Verify(a) => a.output,
            Command::Status(a) => a.connect.output,
            Command::Snapshot(SnapshotCommand::Install(a)) => a.output,
            Command::Ssh(_) | Command::Completions(_) | Command::Man => OutputFormat::Text,
        }
    }
}

/// Output format on stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum OutputFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON document.
    Json,
}

/// Flags every command that talks to a provider shares.
#[derive(Debug, Args)]
#[command(next_help_heading = "Connection")]
pub struct ConnectArgs {
    /// Cloud provider (after `create`, a deployment's commands find it in the local state).
    #[arg(long, value_enum, env = "BOOTSTRAP_PROVIDER")]
    pub provider: Option<ProviderKind>,
    /// API base URL (default: the provider's; also BOOTSTRAP_<PROVIDER>_ENDPOINT).
    #[arg(long, value_name = "URL")]
    pub endpoint: Option<String>,
    /// The provider CLI's context or profile whose credentials to use (hcloud context, doctl
    /// auth context, scw profile; AWS: --profile).
    #[arg(long, value_name = "NAME")]
    pub context: Option<String>,
    /// Overall time for waits, e.g. 600, 90s, 10m.
    #[arg(long, default_value = "10m", value_name = "DURATION")]
    pub timeout: String,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t)]
    pub output: OutputFormat,
    /// Each provider's own flags.
    #[command(flatten)]
    pub provider_flags: ProviderFlags,
}

/// The flag groups of the providers that have flags of their own, on every command that
/// talks to a provider (each provider refuses the others').
#[derive(Debug, Clone, Default, Args)]
pub struct ProviderFlags {
    /// AWS region and profile.
    #[cfg(feature = "aws")]
    #[command(flatten)]
    pub aws: bootstrap_aws::cli::AwsArgs,
    /// Scaleway zone.
    #[command(flatten)]
    pub scaleway: bootstrap_scaleway::cli::ScalewayArgs,
}

impl ProviderFlags {
    /// The flags the user set, by flag name.
    pub fn values(&self) -> BTreeMap<&'static str, String> {
        #[allow(unused_mut)]
        let mut out = BTreeMap::new();
        #[cfg(feature = "aws")]
        self.aws.values(&mut out);
        self.scaleway.values(&mut out);
        out
    }
}

/// The providers' flags that only `create` takes.
#[derive(Debug, Clone, Default, Args)]
pub struct ProviderCreateFlags {
    /// AWS VPC and subnet.
    #[cfg(feature = "aws")]
    #[command(flatten)]
    pub aws: bootstrap_aws::cli::AwsNetworkArgs,
    /// Scaleway's Serverless Jobs image.
    #[command(flatten)]
    pub scaleway: bootstrap_scaleway::cli::ScalewayCreateArgs,
}

impl ProviderCreateFlags {
    /// The flags the user set, by flag name.
    pub fn values(&self) -> BTreeMap<&'static str, String> {
        #[allow(unused_mut)]
        let mut out = BTreeMap::new();
        #[cfg(feature = "aws")]
        self.aws.values(&mut out);
        self.scaleway.values(&mut out);
        out
    }
}

/// `create` and `render`.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Provider, endpoint, timeout, output.
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// Deployment name; also the server's hostname.
    #[arg(long, help_heading = "Server")]
    pub name: String,
    /// Source network allowed to reach SSH (repeat for more); `any` opens port 22 to the world.
    #[arg(long = "ssh-from", value_name = "CIDR", help_heading = "Access")]
    pub ssh_from: Vec<String>,
    /// Location: a Hetzner location (default fsn1, Germany); for AWS an availability zone (default: EC2 picks one in --region).
    #[arg(long, help_heading = "Server")]
    pub location: Option<String>,
    /// Server type (default: a cheap shared x86 type).
    #[arg(long, help_heading = "Server")]
    pub server_type: Option<String>,
    /// Image (default: Ubuntu 24.04).
    #[arg(long, help_heading = "Server")]
    pub image: Option<String>,
    /// Use this public key (PATH.pub) instead of generating one.
    #[arg(long, value_name = "PATH", help_heading = "Access")]
    pub ssh_key: Option<PathBuf>,
    /// Encrypt the generated private key with the passphrase in this environment variable.
    #[arg(long, value_name = "VAR", help_heading = "Access")]
    pub passphrase_env: Option<String>,
    /// Name of the sudo user that gets the key.
    #[arg(long, default_value = "admin", help_heading = "Access")]
    pub admin_user: String,
    /// Time (HH:MM, server local time) for automatic reboots after security updates.
    #[arg(long, default_value = "02:00", help_heading = "Hardening")]
    pub reboot_time: String,
    /// sudo, Docker, VPN and forwarding.
    #[command(flatten)]
    pub hardening: HardeningArgs,
    /// Use this cloud-init template instead of the built-in one.
    #[arg(long, value_name = "FILE", help_heading = "Hardening")]
    pub template: Option<PathBuf>,
    /// Print the plan and the user-data; create nothing (needs no token).
    #[arg(long, help_heading = "Plan")]
    pub dry_run: bool,
    /// Snapshot schedule and restore.
    #[command(flatten)]
    pub snapshots: ScheduleArgs,
    /// Each provider's own `create` flags.
    #[command(flatten)]
    pub provider_create_flags: ProviderCreateFlags,
}

/// `destroy`.
#[derive(Debug, Args)]
pub struct DestroyArgs {
    /// Deployment to remove.
    pub name: String,
    /// Provider, endpoint, timeout, output.
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// Do not ask for confirmation.
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Delete the deployment's snapshots too (by default they are kept and listed).
    #[arg(long)]
    pub delete_snapshots: bool,
    /// List what would be deleted and what is kept; delete nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// `list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Cloud provider.
    #[arg(long, value_enum, env = "BOOTSTRAP_PROVIDER", default_value = crate::providers::DEFAULT_PROVIDER)]
    pub provider: ProviderKind,
    /// API base URL (default: the provider's; also BOOTSTRAP_<PROVIDER>_ENDPOINT).
    #[arg(long, value_name = "URL")]
    pub endpoint: Option<String>,
    /// The provider CLI's context or profile whose credentials to use (hcloud context, doctl
    /// auth context, scw profile; AWS: --profile).
    #[arg(long, value_name = "NAME")]
    pub context: Option<String>,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t)]
    pub output: OutputFormat,
    /// Each provider's own flags.
    #[command(flatten)]
    pub provider_flags: ProviderFlags,
}

/// Snapshot flags of `create`.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Snapshots")]
pub struct ScheduleArgs {
    /// Snapshot schedule EVERY:KEEP: hourly:24, 12h:14, daily:7, weekly:4, or off.
    #[arg(
        long = "snapshots",
        default_value = "daily:7",
        value_name = "EVERY:KEEP"
    )]
    pub spec: String,
    /// Time of day (UTC, HH:MM) for daily, weekly and Nh snapshots; for hourly, the minute.
    #[arg(long = "snapshot-time", default_value = "03:00", value_name = "HH:MM")]
    pub time: String,
    /// Day of weekly snapshots.
    #[arg(long = "snapshot-day", default_value = "sun", value_name = "DAY")]
    pub day: String,
    /// Who keeps the schedule: `job` (`bootstrap snapshot run`, any provider) or the
    /// provider's own service (`dlm`: AWS Data Lifecycle Manager, AWS's default;
    /// `serverless-jobs`: a Scaleway Serverless Jobs cron running your image, --job-image).
    #[arg(long = "snapshot-engine", value_name = "ENGINE")]
    pub engine: Option<String>,
    /// Also turn on the provider's own backups (Hetzner: daily, 7 slots, +20% of the price).
    #[arg(long)]
    pub provider_backups: bool,
    /// Restore: create the server from this snapshot (one of ours) instead of --image.
    #[arg(long, value_name = "ID", conflicts_with = "image")]
    pub from_snapshot: Option<String>,
}

/// `snapshot` subcommands.
#[derive(Debug, Subcommand)]
pub enum SnapshotCommand {
    /// Take due snapshots and prune old ones, for every server with a schedule (run it hourly).
    Run(SnapshotRunArgs),
    /// List a deployment's snapshots.
    List(SnapshotListArgs),
    /// Change a deployment's schedule.
    Set(SnapshotSetArgs),
    /// Print (or write) a systemd timer, a crontab line or a Kubernetes CronJob for the job.
    Install(SnapshotInstallArgs),
}

/// `snapshot run`.
#[derive(Debug, Args)]
// Like `list`, the scheduled job defaults to Hetzner: `bootstrap snapshot run` alone works.
#[command(mut_arg("provider", |a| a.required(false).default_value(crate::providers::DEFAULT_PROVIDER)))]
pub struct SnapshotRunArgs {
    /// Provider, endpoint, timeout, output.
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// Evaluate the schedule at this instant (RFC 3339), for planning and tests.
    #[arg(long, value_name = "RFC3339")]
    pub at: Option<String>,
    /// Only print what would be created and deleted.
    #[arg(long)]
    pub dry_run: bool,
    /// Most calls of the job in flight at once: a ceiling; below it the job follows the
    /// provider's rate budget (`RateLimit-*` headers).
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
}

/// `snapshot list`.
#[derive(Debug, Args)]
pub struct SnapshotListArgs {
    /// Deployment.
    pub name: String,
    /// Provider, endpoint, timeout, output.
    #[command(flatten)]
    pub connect: ConnectArgs,
}

/// `snapshot set`.
#[derive(Debug, Args)]
pub struct SnapshotSetArgs {
    /// Deployment.
    pub name: String,
    /// New schedule EVERY:KEEP (hourly:24, 12h:14, daily:7, weekly:4) or off.
    pub spec: String,
    /// Time of day (UTC, HH:MM).
    #[arg(long = "snapshot-time", default_value = "03:00", value_name = "HH:MM")]
    pub time: String,
    /// Day of weekly snapshots.
    #[arg(long = "snapshot-day", default_value = "sun", value_name = "DAY")]
    pub day: String,
    /// Provider, endpoint, timeout, output.
    #[command(flatten)]
    pub connect: ConnectArgs,
}

/// Where the job gets scheduled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum InstallTarget {
    /// A systemd service and hourly timer.
    Systemd,
    /// A crontab line.
    Cron,
    /// A Kubernetes CronJob.
    Kubernetes,
}

/// `snapshot install`.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("target").required(true).args(["systemd", "cron", "kubernetes"])))]
pub struct SnapshotInstallArgs {
    /// A sandboxed systemd service + timer (hourly, Persistent=true).
    #[arg(long)]
    pub systemd: bool,
    /// A crontab line for /etc/cron.d.
    #[arg(long)]
    pub cron: bool,
    /// A Kubernetes CronJob (restricted Pod Security) with credentials from a Secret; needs --image.
    #[arg(long, requires = "image")]
    pub kubernetes: bool,
    /// With --systemd: units for your own user manager (~/.config/systemd/user,
    /// `systemctl --user`) instead of the system's.
    #[arg(long, conflicts_with_all = ["cron", "kubernetes"])]
    pub user: bool,
    /// Write the files instead of printing them (into --dir, created when missing).
    #[arg(long)]
    pub write: bool,
    /// Directory of the units or the CronJob (default: /etc/systemd/system,
    /// ~/.config/systemd/user with --user, /etc/cron.d, or the current directory).
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// The job's credentials file, an absolute path (default: /etc/bootstrap/snapshot.env,
    /// ~/.config/bootstrap/snapshot.env with --user); --write creates it (0600) with empty values.
    #[arg(long, value_name = "PATH", conflicts_with = "kubernetes")]
    pub env_file: Option<PathBuf>,
    /// Provider the job runs for.
    #[arg(long, value_enum, default_value = crate::providers::DEFAULT_PROVIDER)]
    pub provider: ProviderKind,
    /// Absolute path of the bootstrap binary in the unit or crontab (default: this binary).
    #[arg(long, value_name = "PATH", conflicts_with = "kubernetes")]
    pub binary: Option<PathBuf>,
    /// Container image of the Kubernetes CronJob, e.g. one built from the repository's Dockerfile.
    #[arg(long, value_name = "IMAGE", conflicts_with_all = ["systemd", "cron"])]
    pub image: Option<String>,
    /// Output format: the files as text, or one JSON document listing path, mode and contents.
    #[arg(short, long, value_enum, default_value_t)]
    pub output: OutputFormat,
}

/// Hardening choices of `create` and `render`.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Hardening")]
pub struct HardeningArgs {
    /// sudo for the admin.
    #[arg(long, value_enum, value_name = "MODE", default_value_t = SudoArg::Password)]
    pub sudo: SudoArg,
    /// Install Docker from the distribution; the host firewall still filters published ports.
    #[arg(long)]
    pub docker: bool,
    /// Reach SSH only through a VPN (the cloud firewall opens its port instead of TCP 22).
    #[arg(long, value_enum, value_name = "KIND")]
    pub vpn: Option<VpnArg>,
    /// Allow local TCP forwarding (ssh -L, ssh -D) for people who tunnel; off by default.
    #[arg(long)]
    pub allow_tcp_forwarding: bool,
}

/// `--sudo`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SudoArg {
    /// A generated password, kept in the state dir; only its SHA-512 crypt hash is sent.
    Password,
    /// No password, as cloud images do.
    Nopasswd,
}

/// `--vpn`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum VpnArg {
    /// WireGuard: keys made locally, UDP 51820 from --ssh-from, client config in the state dir.
    Wireguard,
}

/// Where `verify` and `ssh` find the server.
#[derive(Debug, Args)]
pub struct TargetArgs {
    /// Cloud provider (default: the one the local state of the deployment names).
    #[arg(long, value_enum, env = "BOOTSTRAP_PROVIDER")]
    pub provider: Option<ProviderKind>,
    /// API base URL (default: the provider's; also BOOTSTRAP_<PROVIDER>_ENDPOINT).
    #[arg(long, value_name = "URL")]
    pub endpoint: Option<String>,
    /// The provider CLI's context or profile whose credentials to use (hcloud context, doctl
    /// auth context, scw profile; AWS: --profile).
    #[arg(long, value_name = "NAME")]
    pub context: Option<String>,
    /// Connect to this address instead of asking the provider (a tunnel, a test target). The
    /// host key is still checked against the deployment's pinned key.
    #[arg(long, value_name = "ADDRESS", help_heading = "Advanced")]
    pub host: Option<String>,
    /// The SSH port at --host.
    #[arg(
        long,
        value_name = "PORT",
        requires = "host",
        help_heading = "Advanced"
    )]
    pub port: Option<u16>,
    /// Each provider's own flags.
    #[command(flatten)]
    pub provider_flags: ProviderFlags,
}

/// `verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Deployment to check.
    pub name: String,
    /// Provider and address.
    #[command(flatten)]
    pub target: TargetArgs,
    /// How long to wait for cloud-init to finish, e.g. 600, 90s, 10m.
    #[arg(long, default_value = "10m", value_name = "DURATION")]
    pub timeout: String,
    /// Keep the host key from the user-data instead of replacing it with one made on the server.
    #[arg(long)]
    pub keep_host_key: bool,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t)]
    pub output: OutputFormat,
}

/// `ssh`.
#[derive(Debug, Args)]
pub struct SshArgs {
    /// Deployment to log in to.
    pub name: String,
    /// Provider and address.
    #[command(flatten)]
    pub target: TargetArgs,
    /// A command to run instead of a login shell (after `--`).
    #[arg(last = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}
