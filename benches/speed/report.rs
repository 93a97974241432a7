//! The benchmark's rows, printed as they come, and the dated markdown table appended to
//! `BENCHMARKS.md` with the machine, the binary's size and the settings of the run.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;
use std::time::Duration;

use anyhow::Result;

use super::analysis::Analysis;
use super::clouds::Bucket;
use super::run::{Facts, Options};

/// How the run was set up, for the table's header.
#[derive(Clone, Debug)]
pub struct Settings {
    latency: Duration,
    op: Duration,
    snapshot: Duration,
    quick: bool,
    /// The binary's size, stripped, and how it was measured.
    size: (u64, &'static str),
    release: bool,
    clean_build: Option<String>,
    parallel: bool,
}

impl From<&Options> for Settings {
    fn from(o: &Options) -> Settings {
        Settings {
            latency: o.latency,
            op: o.op,
            snapshot: o.snapshot,
            quick: o.quick,
            size: stripped_size(&o.bin),
            release: o.bin.components().any(|c| c.as_os_str() == "release"),
            clean_build: o.clean_build.clone(),
            parallel: o.parallel,
        }
    }
}

/// One measured run.
#[derive(Clone, Debug)]
pub struct Row {
    /// `--provider`.
    pub provider: String,
    /// `create`, `destroy` or `job`.
    pub run: String,
    /// Servers (1 for create and destroy).
    pub servers: usize,
    /// Wall time, exit code, failures.
    pub facts: Facts,
    /// What the log says.
    pub analysis: Analysis,
    /// The least time the cloud's rate limit allows for the calls made, if it has one.
    pub bucket: Option<Duration>,
}

impl Row {
    /// A row; `bucket` is the cloud's rate limit, if any.
    pub fn new(
        provider: &str,
        run: &str,
        servers: usize,
        facts: &Facts,
        analysis: Analysis,
        bucket: Option<Bucket>,
    ) -> Row {
        Row {
            provider: provider.to_owned(),
            run: run.to_owned(),
            servers,
            facts: facts.clone(),
            // A request answered 429 took no token.
            bucket: bucket.map(|b| b.least_time(analysis.calls - analysis.throttled)),
            analysis,
        }
    }

    /// The least time the work could take: the critical path, or what the rate limit allows
    /// if that is longer.
    pub fn ideal(&self) -> Duration {
        self.analysis
            .critical_path
            .max(self.bucket.unwrap_or(Duration::ZERO))
    }

    /// Wall time over [`Row::ideal`].
    pub fn ratio(&self) -> f64 {
        let ideal = self.ideal().as_secs_f64();
        if ideal > 0.0 {
            self.facts.wall.as_secs_f64() / ideal
        } else {
            0.0
        }
    }

    fn exit(&self) -> String {
        self.facts
            .code
            .map_or_else(|| "stopped".to_owned(), |c| c.to_string())
    }

    /// One line for the terminal.
    pub fn line(&self) -> String {
        let a = &self.analysis;
        let mut s = format!(
            "{:<12} {:<7} {:>5} servers: {} calls ({} mutating, {} answered 429), {} round trips before the first status poll, wall {:.1} s, critical path {:.1} s",
            self.provider,
            self.run,
            self.servers,
            a.calls,
            a.mutating,
            a.throttled,
            a.before_poll.map_or("-".to_owned(), |n| n.to_string()),
            self.facts.wall.as_secs_f64(),
            a.critical_path.as_secs_f64(),
        );
        if let Some(b) = self.bucket {
            let _ = write!(s, ", rate budget {:.1} s", b.as_secs_f64());
        }
        let _ = write!(s, ", wall/ideal {:.2}, exit {}", self.ratio(), self.exit());
        if let Some(f) = self.facts.failures {
            let _ = write!(s, ", {f} failed");
        }
        s
    }
}

/// Every row of one benchmark run.
pub struct Report {
    settings: Settings,
    /// The rows, in the order they were measured.
    pub rows: Vec<Row>,
}

fn secs(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64())
}

impl Report {
    /// An empty report.
    pub fn new(settings: Settings) -> Report {
        Report {
            settings,
            rows: Vec::new(),
        }
    }

    /// Adds a row.
    pub fn add(&mut self, row: Row) {
        self.rows.push(row);
    }

    /// The dated markdown section: machine, settings, and two tables.
    pub fn markdown(&self) -> String {
        let s = &self.settings;
        let mut m = String::new();
        let now = time::OffsetDateTime::now_utc();
        let date = now
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        let _ = writeln!(
            m,
            "\n## {date}{}{}\n",
            if s.quick { " (--quick)" } else { "" },
            if s.parallel {
                " (providers in parallel)"
            } else {
                ""
            }
        );
        let _ = writeln!(m, "- commit: {}", commit());
        let _ = writeln!(
            m,
            "- machine: {} cores (`nproc`), {}",
            std::thread::available_parallelism().map_or(0, std::num::NonZero::get),
            cpu_model()
        );
        let (size, how) = s.size;
        let _ = writeln!(
            m,
            "- binary: {size} bytes ({:.1} MB, {how}), {} build{}",
            size as f64 / 1e6,
            if s.release { "release" } else { "debug" },
            s.clean_build
                .as_ref()
                .map_or_else(String::new, |t| format!("; clean release build: {t}")),
        );
        let _ = writeln!(
            m,
            "- cloud: {} ms added to every call (half each way); every action of create and destroy takes {:.1} s (a boot, a deletion); every snapshot of the job {:.1} s; rate limits as the fakes enforce them (Hetzner 3,600/h bucket, 1 a second, full at the start; DigitalOcean 250/min; Scaleway and moto none); the binary with its defaults",
            s.latency.as_millis(),
            s.op.as_secs_f64(),
            s.snapshot.as_secs_f64()
        );
        let _ = writeln!(
            m,
            "- job: one server made by `create`, the others seeded in the fake's state (moto: `RunInstances` and `CreateTags` straight to moto), all on the default schedule, none with a snapshot yet"
        );
        let _ = writeln!(
            m,
            "\n| provider | run | calls | mutating | round trips before first poll | wall s | critical path s | wall ÷ critical path | exit |"
        );
        let _ = writeln!(m, "|---|---|---:|---:|---:|---:|---:|---:|---|");
        for r in self.rows.iter().filter(|r| r.run != "job") {
            let a = &r.analysis;
            let _ = writeln!(
                m,
                "| {} | {} | {} | {} | {} | {} | {} | {:.2} | {} |",
                r.provider,
                r.run,
                a.calls,
                a.mutating,
                a.before_poll.map_or("-".to_owned(), |n| n.to_string()),
                secs(r.facts.wall),
                secs(a.critical_path),
                r.ratio(),
                r.exit(),
            );
        }
        let _ = writeln!(
            m,
            "\n| provider | servers | calls | calls per server | mutating | 429 answers | failures | wall s | critical path s | rate budget s | wall ÷ max(critical path, budget) | exit |"
        );
        let _ = writeln!(
            m,
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
        );
        for r in self.rows.iter().filter(|r| r.run == "job") {
            let a = &r.analysis;
            let _ = writeln!(
                m,
                "| {} | {} | {} | {:.2} | {} | {} | {} | {} | {} | {} | {:.2} | {} |",
                r.provider,
                r.servers,
                a.calls,
                a.calls as f64 / r.servers.max(1) as f64,
                a.mutating,
                a.throttled,
                r.facts.failures.unwrap_or(0),
                secs(r.facts.wall),
                secs(a.critical_path),
                r.bucket.map_or("-".to_owned(), secs),
                r.ratio(),
                r.exit(),
            );
        }
        m
    }

    /// Appends [`Report::markdown`] to `path`, starting the file with its explanation when new.
    ///
    /// # Errors
    /// The file cannot be written.
    pub fn append(&self, path: &Path) -> Result<()> {
        let new = !path.exists();
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        if new {
            f.write_all(PREAMBLE.as_bytes())?;
        }
        f.write_all(self.markdown().as_bytes())?;
        Ok(())
    }
}

/// The head of a new `BENCHMARKS.md`.
const PREAMBLE: &str = "# Benchmarks

Measured with `cargo bench --bench speed` (see the README's Tests section): the real `bootstrap`
binary against `fakecloud` (Hetzner, DigitalOcean, Scaleway) and moto behind a latency proxy
(AWS). Each section below is one run, appended by the bench; numbers are never edited by hand.

- **calls**, **mutating**: requests the cloud received, and those that change something.
- **round trips before first poll**: a round trip is a maximal set of overlapping requests; counted
  up to the first request that reads what the server-creating (or deleting, or snapshotting) call
  started.
- **critical path**: the shortest time the same work could take given what each call needs first:
  the ids it sends that an earlier answer carried, one read stage before any change, an operation's
  duration before the poll that sees it finished, and the ordering rules no id shows (a firewall
  goes after its server is gone; Scaleway powers on after the user-data; a DigitalOcean snapshot
  image is listed after its action completed). Each call costs what it took, latency included.
  `benches/speed/analysis.rs` has the rules.
- **rate budget**: the least time the cloud's bucket allows for the calls the job made (those
  answered 429 took no token), starting full: (calls - bucket size) / refill rate. It counts
  the calls made, so a job that makes more calls than it needs gets a longer budget: read it with
  calls per server (at 3 a server, 1,000 Hetzner servers fit the full bucket of 3,600 and the
  budget is 0).
- **wall ÷ ...**: how far the command is from that bound (1.00: at it).
";

/// The size of the binary without symbols, as `cargo build --release` makes it (`strip =
/// true`; `cargo bench` links the same code but keeps the symbols): a stripped copy's size, or
/// the file's own when `strip` is not there.
fn stripped_size(bin: &Path) -> (u64, &'static str) {
    let own = std::fs::metadata(bin).map_or(0, |m| m.len());
    let Ok(dir) = tempfile::tempdir() else {
        return (own, "as built");
    };
    let copy = dir.path().join("stripped");
    let stripped = std::process::Command::new("strip")
        .arg("-o")
        .arg(&copy)
        .arg(bin)
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    match std::fs::metadata(&copy) {
        Ok(m) if stripped => (m.len(), "stripped"),
        _ => (own, "as built"),
    }
}

/// The commit measured, `-dirty` when the work tree has changes.
fn commit() -> String {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    let Some(head) = git(&["rev-parse", "--short", "HEAD"]) else {
        return "unknown".to_owned();
    };
    let dirty =
        git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
    format!("{head}{}", if dirty { "-dirty" } else { "" })
}

/// The CPU's model name from `/proc/cpuinfo`.
fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned())
}
