//! The benchmark's options and its runs: for each provider, `create` -> `destroy` of one
//! deployment, then the snapshot job over 10, 100 and 1,000 servers, each run by the real
//! `bootstrap` binary against a cloud that adds latency and takes its time over operations.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use serde_json::Value;

use super::analysis::{Analysis, analyse};
use super::clouds::{self, Cloud, Pacing};
use super::report::{Report, Row, Settings};

/// What to run and how.
#[derive(Clone, Debug)]
pub struct Options {
    /// Providers, in order.
    pub providers: Vec<String>,
    /// Server counts of the snapshot job.
    pub sizes: Vec<usize>,
    /// Added to every call.
    pub latency: Duration,
    /// How long every operation of `create` and `destroy` takes (a boot, a deletion).
    pub op: Duration,
    /// How long a snapshot takes in the job.
    pub snapshot: Duration,
    /// The longest one run of the binary may take before it is stopped and reported so.
    pub limit: Duration,
    /// Where to append the table (`None`: print only).
    pub out: Option<PathBuf>,
    /// The time of a clean release build, as measured by whoever runs the bench.
    pub clean_build: Option<String>,
    /// The binary to run.
    pub bin: PathBuf,
    /// Print each run's critical path.
    pub verbose: bool,
    /// Print every call of each run, with its times.
    pub calls: bool,
    /// Run the providers at the same time, each in a thread with its own clouds.
    pub parallel: bool,
    /// `--quick` was given.
    pub quick: bool,
}

/// The repository's own `BENCHMARKS.md`.
pub fn default_out() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("BENCHMARKS.md")
}

/// The usage text.
pub const USAGE: &str = "\
cargo bench --bench speed [-- OPTIONS]

Runs the real bootstrap binary against fakecloud (Hetzner, DigitalOcean, Scaleway, in this
process) and moto behind a latency proxy (AWS): create -> destroy of one deployment, then the
snapshot job over 10, 100 and 1,000 servers. Prints one table row per run and appends a dated
table to BENCHMARKS.md.

  --quick                10 servers, 3 s operations (boots 10x shorter), nothing written
                         unless --out is given
  --providers LIST       comma-separated: hetzner,digitalocean,scaleway,aws (default: all)
  --sizes LIST           job sizes (default: 10,100,1000)
  --latency-ms N         added to every call, half each way (default: 100)
  --op-ms N              every operation of create and destroy (default: 30000)
  --snapshot-ms N        every snapshot of the job (default: 3000)
  --limit-mins N         stop a run of the binary after N minutes (default: 120)
  --out PATH             append the table here (default: BENCHMARKS.md, not with --quick)
  --no-write             print only
  --clean-build TEXT     the time a clean release build took, for the table
                         (or BOOTSTRAP_BENCH_CLEAN_BUILD)
  --bin PATH             the bootstrap binary (default: the one cargo built)
  --verbose              print each run's critical path
  --calls                print every call of each run (start and end, seconds)
  --parallel             run the providers at the same time (each with its own clouds)
";

/// Parses the arguments (`cargo bench` adds `--bench`, which is ignored).
///
/// # Errors
/// An unknown option or a bad value.
pub fn parse(args: &[String]) -> Result<Options> {
    let mut o = Options {
        providers: clouds::all_providers()
            .into_iter()
            .map(str::to_owned)
            .collect(),
        sizes: vec![10, 100, 1000],
        latency: Duration::from_millis(100),
        op: Duration::from_secs(30),
        snapshot: Duration::from_secs(3),
        limit: Duration::from_secs(120 * 60),
        out: Some(default_out()),
        clean_build: std::env::var("BOOTSTRAP_BENCH_CLEAN_BUILD")
            .ok()
            .filter(|v| !v.is_empty()),
        bin: PathBuf::from(env!("CARGO_BIN_EXE_bootstrap")),
        verbose: false,
        calls: false,
        parallel: false,
        quick: false,
    };
    if args.iter().any(|a| a == "--quick") {
        o.quick = true;
        o.sizes = vec![10];
        o.op = Duration::from_secs(3);
        o.out = None;
    }
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = || it.next().with_context(|| format!("{a} needs a value"));
        match a.as_str() {
            "--bench" | "--quick" => {}
            "--providers" => {
                o.providers = value()?.split(',').map(str::to_owned).collect();
                for p in &o.providers {
                    if !clouds::all_providers().contains(&p.as_str()) {
                        bail!("--providers: unknown provider {p}");
                    }
                }
            }
            "--sizes" => {
                o.sizes = value()?
                    .split(',')
                    .map(|s| s.parse::<usize>().ok().filter(|n| *n > 0))
                    .collect::<Option<_>>()
                    .context("--sizes: numbers above 0, comma-separated")?;
            }
            "--latency-ms" => o.latency = millis(value()?)?,
            "--op-ms" => o.op = millis(value()?)?,
            "--snapshot-ms" => o.snapshot = millis(value()?)?,
            "--limit-mins" => o.limit = Duration::from_secs(60 * value()?.parse::<u64>()?),
            "--out" => o.out = Some(PathBuf::from(value()?)),
            "--no-write" => o.out = None,
            "--clean-build" => o.clean_build = Some(value()?.clone()),
            "--bin" => o.bin = PathBuf::from(value()?),
            "--verbose" => o.verbose = true,
            "--calls" => o.calls = true,
            "--parallel" => o.parallel = true,
            "-h" | "--help" => bail!("{USAGE}"),
            other => bail!("unknown option {other}\n\n{USAGE}"),
        }
    }
    Ok(o)
}

fn millis(v: &str) -> Result<Duration> {
    Ok(Duration::from_millis(
        v.parse()
            .with_context(|| format!("{v}: not milliseconds"))?,
    ))
}

/// The binary in an environment of its own: a temp home and state dir, the cloud's
/// credentials, nothing from the caller's environment but `PATH`.
struct Bin {
    dir: tempfile::TempDir,
    path: PathBuf,
    env: Vec<(String, String)>,
}

/// One finished (or stopped) run of the binary.
struct Ran {
    wall: Duration,
    /// `None` when it was stopped at the limit.
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Bin {
    fn new(path: &Path, cloud: &dyn Cloud) -> Result<Bin> {
        let dir = tempfile::tempdir()?;
        let mut env = cloud.env();
        let state = dir.path().join("state");
        env.push(("BOOTSTRAP_STATE_DIR".into(), state.display().to_string()));
        Ok(Bin {
            dir,
            path: path.to_owned(),
            env,
        })
    }

    /// Runs `args` until it exits or `limit` passes (then it is killed).
    fn run(&self, args: &[String], limit: Duration) -> Result<Ran> {
        let out = self.dir.path().join("stdout");
        let err = self.dir.path().join("stderr");
        let mut c = Command::new(&self.path);
        c.args(args)
            .env_clear()
            .env("HOME", self.dir.path())
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            // Files, not pipes: the job's JSON for 1,000 servers outgrows a pipe's buffer.
            .stdout(File::create(&out)?)
            .stderr(File::create(&err)?);
        let started = Instant::now();
        let mut child = c
            .spawn()
            .with_context(|| format!("start {}", self.path.display()))?;
        let code = loop {
            if let Some(status) = child.try_wait()? {
                break status.code();
            }
            if started.elapsed() > limit {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        let wall = started.elapsed();
        Ok(Ran {
            wall,
            code,
            stdout: std::fs::read_to_string(&out).unwrap_or_default(),
            stderr: std::fs::read_to_string(&err).unwrap_or_default(),
        })
    }
}

/// The name of the deployment `create` -> `destroy` makes.
const NAME: &str = "bench1";
/// The deployment whose server the job's servers are shaped after.
const TEMPLATE: &str = "bench-tpl";
/// Any source address: the fakes reach no one.
const SSH_FROM: &str = "203.0.113.7/32";

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

fn create_args(cloud: &dyn Cloud, name: &str) -> Vec<String> {
    let mut a = strings(&[
        "create",
        "--provider",
        cloud.provider(),
        "--name",
        name,
        "--ssh-from",
        SSH_FROM,
    ]);
    a.extend(cloud.flags());
    a.extend(cloud.create_flags());
    a
}

/// Everything, provider by provider; each row is printed as it is measured.
///
/// # Errors
/// A cloud that does not start, or a setup step (the job's template deployment) that fails.
pub fn run(o: &Options) -> Result<Report> {
    let mut report = Report::new(Settings::from(o));
    // A copy of its own: a build in the same target dir may replace the original meanwhile.
    let copy = tempfile::tempdir()?;
    let bin = copy.path().join("bootstrap");
    std::fs::copy(&o.bin, &bin).with_context(|| format!("copy {}", o.bin.display()))?;
    let o = &Options { bin, ..o.clone() };
    if o.parallel {
        let done: Vec<Result<Vec<Row>>> = std::thread::scope(|s| {
            let runs: Vec<_> = o
                .providers
                .iter()
                .map(|p| s.spawn(move || provider(o, p, &|row| eprintln!("{}", row.line()))))
                .collect();
            runs.into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err(anyhow::anyhow!("a provider's run panicked")))
                })
                .collect()
        });
        for rows in done {
            for row in rows? {
                report.add(row);
            }
        }
    } else {
        for p in &o.providers {
            eprintln!("== {p}");
            for row in provider(o, p, &|row| report_line(row, o.verbose))? {
                report.add(row);
            }
        }
    }
    Ok(report)
}

/// Prints a row as it is measured (with its critical path when `verbose`).
fn report_line(row: &Row, verbose: bool) {
    eprintln!("{}", row.line());
    if verbose {
        eprintln!("  {}", describe(&row.analysis));
    }
}

/// Every run of one provider, each row shown as it is measured.
fn provider(o: &Options, p: &str, show: &(dyn Fn(&Row) + Sync)) -> Result<Vec<Row>> {
    let mut rows = Vec::new();
    for row in create_destroy(o, p)? {
        show(&row);
        rows.push(row);
    }
    for &n in &o.sizes {
        let row = job(o, p, n)?;
        show(&row);
        rows.push(row);
    }
    Ok(rows)
}

/// `create` then `destroy` of one deployment, each measured.
fn create_destroy(o: &Options, provider: &str) -> Result<Vec<Row>> {
    let cloud = clouds::start(provider)?;
    let cloud = cloud.as_ref();
    cloud.pace(Pacing {
        latency: o.latency,
        op: o.op,
    });
    let bin = Bin::new(&o.bin, cloud)?;
    let mut rows = Vec::new();
    for (what, args) in [
        ("create", create_args(cloud, NAME)),
        ("destroy", {
            let mut a = strings(&["destroy", NAME, "--provider", provider, "--yes"]);
            a.extend(cloud.flags());
            a
        }),
    ] {
        cloud.clear_log();
        let ran = bin.run(&args, o.limit)?;
        let log = cloud.log();
        if o.calls {
            print_calls(&log);
        }
        let a = analyse(cloud.api(), &log, o.op);
        rows.push(Row::new(provider, what, 1, &ran_facts(&ran), a, None));
        if ran.code != Some(0) {
            eprintln!("{provider} {what} failed:\n{}", tail(&ran.stderr));
            break;
        }
    }
    Ok(rows)
}

/// The snapshot job over `n` servers: one made by `create`, `n - 1` seeded in the cloud's
/// state beside it, set up without latency; then measured.
fn job(o: &Options, provider: &str, n: usize) -> Result<Row> {
    let cloud = clouds::start(provider)?;
    let cloud = cloud.as_ref();
    cloud.pace(Pacing::SETUP);
    let bin = Bin::new(&o.bin, cloud)?;
    let made = bin.run(&create_args(cloud, TEMPLATE), o.limit)?;
    if made.code != Some(0) {
        bail!(
            "{provider}: setting up the job's template deployment failed:\n{}",
            tail(&made.stderr)
        );
    }
    cloud.seed(TEMPLATE, n - 1)?;
    cloud.pace(Pacing {
        latency: o.latency,
        op: o.snapshot,
    });
    let bucket = cloud.fill_bucket();
    cloud.clear_log();
    let mut args = strings(&[
        "snapshot",
        "run",
        "--provider",
        provider,
        "--output",
        "json",
    ]);
    args.extend(cloud.flags());
    let ran = bin.run(&args, o.limit)?;
    let log = cloud.log();
    if o.calls {
        print_calls(&log);
    }
    let a = analyse(cloud.api(), &log, o.snapshot);
    let mut facts = ran_facts(&ran);
    facts.failures = Some(failures(&ran.stdout, n));
    if ran.code != Some(0) && ran.code != Some(1) {
        eprintln!(
            "{provider} job over {n} servers: exit {:?}\n{}",
            ran.code,
            tail(&ran.stderr)
        );
    }
    Ok(Row::new(provider, "job", n, &facts, a, bucket))
}

/// What the bench saw of a run, beside the log.
#[derive(Clone, Debug, Default)]
pub struct Facts {
    /// Wall time, start to exit.
    pub wall: Duration,
    /// Exit code; `None`: stopped at the limit.
    pub code: Option<i32>,
    /// Servers the job reported failed (or did not report at all).
    pub failures: Option<usize>,
}

fn ran_facts(r: &Ran) -> Facts {
    Facts {
        wall: r.wall,
        code: r.code,
        failures: None,
    }
}

/// Servers of the job's JSON summary that failed, plus those it never reported.
fn failures(stdout: &str, n: usize) -> usize {
    let Ok(v) = serde_json::from_str::<Value>(stdout) else {
        return n;
    };
    let servers = v["servers"].as_array().map_or(&[][..], Vec::as_slice);
    let failed = servers.iter().filter(|s| s["result"] == "failed").count();
    failed + n.saturating_sub(servers.len())
}

/// The last lines of a run's stderr, for a failure message.
fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}

/// `--calls`: every call, in order of arrival, with its start and end in seconds.
fn print_calls(log: &[fakecloud::LoggedRequest]) {
    let mut log: Vec<&fakecloud::LoggedRequest> = log.iter().collect();
    log.sort_by_key(|r| r.arrived);
    let Some(t0) = log.first().map(|r| r.arrived) else {
        return;
    };
    for r in log {
        let action = r
            .body
            .as_ref()
            .and_then(|b| b.get("Action"))
            .and_then(Value::as_str)
            .unwrap_or("");
        eprintln!(
            "  {:>8.3} {:>8.3} {} {} {action} {}",
            (r.arrived - t0).as_secs_f64(),
            (r.answered - t0).as_secs_f64(),
            r.status,
            r.method,
            r.path
        );
    }
}

/// What `--verbose` prints of a run.
pub fn describe(a: &Analysis) -> String {
    format!("critical path: {}", a.chain.join(" -> "))
}

/// Parses `args`, runs, prints the table and appends it where asked.
///
/// # Errors
/// Bad arguments, a cloud that does not start, a table that cannot be written.
pub fn main(args: &[String]) -> Result<()> {
    let o = parse(args)?;
    let report = run(&o)?;
    let table = report.markdown();
    println!("{table}");
    if let Some(path) = &o.out {
        report.append(path)?;
        eprintln!("appended to {}", path.display());
    }
    Ok(())
}
