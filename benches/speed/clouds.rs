//! The clouds the benchmark runs against: `fakecloud`'s fakes in this process (Hetzner,
//! DigitalOcean, Scaleway), and moto behind a proxy for AWS (`aws.rs`). Each one says how the
//! binary reaches it, hands over its request log, and seeds servers for the snapshot job.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context as _, Result, anyhow};
use fakecloud::digitalocean::FakeDo;
use fakecloud::hetzner::{FakeConfig, FakeHetzner};
use fakecloud::scaleway::{FakeScaleway, PROJECT};
use fakecloud::{LoggedRequest, Pace};
use serde_json::Value;

use super::analysis::Api;

/// A token bucket as the fake enforces it.
#[derive(Clone, Copy, Debug)]
pub struct Bucket {
    /// Its size (and what it holds when the job starts: full).
    pub size: u32,
    /// Tokens added per second.
    pub refill_per_sec: f64,
}

impl Bucket {
    /// The least time `calls` requests take from a full bucket.
    pub fn least_time(&self, calls: usize) -> Duration {
        let over = (calls as f64 - f64::from(self.size)).max(0.0);
        Duration::from_secs_f64(over / self.refill_per_sec)
    }
}

/// How a cloud behaves while it is measured or set up.
#[derive(Clone, Copy, Debug)]
pub struct Pacing {
    /// Added to every call.
    pub latency: Duration,
    /// How long every asynchronous operation takes.
    pub op: Duration,
}

impl Pacing {
    /// No latency and instant operations: for setting up.
    pub const SETUP: Pacing = Pacing {
        latency: Duration::ZERO,
        op: Duration::ZERO,
    };
}

/// One cloud, up and reachable by the binary.
pub trait Cloud {
    /// The `--provider` value.
    fn provider(&self) -> &'static str;
    /// How its log reads.
    fn api(&self) -> Api;
    /// Variables the binary needs (credentials, an endpoint).
    fn env(&self) -> Vec<(String, String)>;
    /// Flags that point every command at it.
    fn flags(&self) -> Vec<String>;
    /// Extra `create` flags it needs.
    fn create_flags(&self) -> Vec<String> {
        Vec::new()
    }
    /// Sets latency and operation durations from now on.
    fn pace(&self, p: Pacing);
    /// Every request so far, as the cloud saw it.
    fn log(&self) -> Vec<LoggedRequest>;
    /// Forgets the requests so far.
    fn clear_log(&self);
    /// Its rate limit, if the fake has one; filled up when called.
    fn fill_bucket(&self) -> Option<Bucket>;
    /// Adds `n` running servers shaped like the server of deployment `template`, each its own
    /// deployment `bench-0001`... with the template's schedule.
    fn seed(&self, template: &str, n: usize) -> Result<()>;
}

/// The name of seeded server `i` (1-based).
pub fn seeded_name(i: usize) -> String {
    format!("bench-{i:04}")
}

/// Starts the fake (or moto) of `provider`.
pub fn start(provider: &str) -> Result<Box<dyn Cloud>> {
    let any = SocketAddr::from(([127, 0, 0, 1], 0));
    Ok(match provider {
        "hetzner" => Box::new(Hetzner(FakeHetzner::start_on(any, FakeConfig::default())?)),
        "digitalocean" => Box::new(Do(FakeDo::start_on(any, Pace::Polls(0))?)),
        "scaleway" => Box::new(Scaleway(FakeScaleway::start_on(any)?)),
        #[cfg(feature = "aws")]
        "aws" => Box::new(super::aws::Aws::start()?),
        other => return Err(anyhow!("no such provider here: {other}")),
    })
}

/// The providers the bench knows, in table order.
pub fn all_providers() -> Vec<&'static str> {
    let mut v = vec!["hetzner", "digitalocean", "scaleway"];
    if cfg!(feature = "aws") {
        v.push("aws");
    }
    v
}

/// `pace` for a fake: wall time, instant when zero.
fn wall(d: Duration) -> Pace {
    if d.is_zero() {
        Pace::Polls(0)
    } else {
        Pace::Wall(d)
    }
}

/// Hetzner Cloud: its 3,600/h bucket (1 a second).
struct Hetzner(FakeHetzner);

impl Cloud for Hetzner {
    fn provider(&self) -> &'static str {
        "hetzner"
    }
    fn api(&self) -> Api {
        Api::Hetzner
    }
    fn env(&self) -> Vec<(String, String)> {
        vec![("HCLOUD_TOKEN".into(), "bench-token-not-secret".into())]
    }
    fn flags(&self) -> Vec<String> {
        vec!["--endpoint".into(), self.0.url()]
    }
    fn pace(&self, p: Pacing) {
        self.0.set_latency(p.latency);
        self.0.set_pace(wall(p.op));
    }
    fn log(&self) -> Vec<LoggedRequest> {
        self.0.requests()
    }
    fn clear_log(&self) {
        self.0.clear_log();
    }
    fn fill_bucket(&self) -> Option<Bucket> {
        let config = FakeConfig::default();
        self.0.set_rate_limit(
            config.rate_limit,
            config.rate_refill_per_sec,
            config.rate_limit,
        );
        Some(Bucket {
            size: config.rate_limit,
            refill_per_sec: config.rate_refill_per_sec,
        })
    }
    fn seed(&self, template: &str, n: usize) -> Result<()> {
        let server = self
            .0
            .server_by_name(template)
            .with_context(|| format!("no server {template}"))?;
        let labels: Vec<(String, String)> = server["labels"]
            .as_object()
            .context("server labels")?
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
            .collect();
        for i in 1..=n {
            let name = seeded_name(i);
            let mine: Vec<(String, String)> = labels
                .iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        if v == template {
                            name.clone()
                        } else {
                            v.clone()
                        },
                    )
                })
                .collect();
            let refs: Vec<(&str, &str)> =
                mine.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            self.0.insert_server(&name, &refs);
        }
        Ok(())
    }
}

/// DigitalOcean: its 250/min bucket (the fake does not model the 5,000/h one).
struct Do(FakeDo);

/// The DigitalOcean fake's bucket (`FakeDo::start_on`): 250 a minute.
const DO_BUCKET: Bucket = Bucket {
    size: 250,
    refill_per_sec: 250.0 / 60.0,
};

impl Cloud for Do {
    fn provider(&self) -> &'static str {
        "digitalocean"
    }
    fn api(&self) -> Api {
        Api::DigitalOcean
    }
    fn env(&self) -> Vec<(String, String)> {
        vec![("DIGITALOCEAN_TOKEN".into(), "bench-token-not-secret".into())]
    }
    fn flags(&self) -> Vec<String> {
        vec!["--endpoint".into(), self.0.url()]
    }
    fn pace(&self, p: Pacing) {
        self.0.kit().set_latency(p.latency);
        self.0.state().pace = wall(p.op);
    }
    fn log(&self) -> Vec<LoggedRequest> {
        self.0.kit().requests()
    }
    fn clear_log(&self) {
        self.0.kit().clear_log();
    }
    fn fill_bucket(&self) -> Option<Bucket> {
        self.0
            .set_rate_limit(DO_BUCKET.size, DO_BUCKET.refill_per_sec);
        Some(DO_BUCKET)
    }
    fn seed(&self, template: &str, n: usize) -> Result<()> {
        let droplet = self
            .0
            .droplets()
            .into_iter()
            .find(|d| d["name"] == template)
            .with_context(|| format!("no droplet {template}"))?;
        let tags = strings(&droplet["tags"]);
        for i in 1..=n {
            let name = seeded_name(i);
            let mine: Vec<String> = tags.iter().map(|t| t.replace(template, &name)).collect();
            self.0.insert_droplet_like(&droplet, &name, &mine);
        }
        Ok(())
    }
}

/// Scaleway: no rate limit is modelled (the live API's is undocumented).
struct Scaleway(FakeScaleway);

impl Cloud for Scaleway {
    fn provider(&self) -> &'static str {
        "scaleway"
    }
    fn api(&self) -> Api {
        Api::Scaleway
    }
    fn env(&self) -> Vec<(String, String)> {
        vec![
            (
                "SCW_SECRET_KEY".into(),
                "5ec7e700-0000-4000-8000-be4c40000000".into(),
            ),
            ("SCW_DEFAULT_PROJECT_ID".into(), PROJECT.into()),
        ]
    }
    fn flags(&self) -> Vec<String> {
        vec!["--endpoint".into(), self.0.url()]
    }
    fn pace(&self, p: Pacing) {
        self.0.kit().set_latency(p.latency);
        self.0.set_pace(wall(p.op));
    }
    fn log(&self) -> Vec<LoggedRequest> {
        self.0.kit().requests()
    }
    fn clear_log(&self) {
        self.0.kit().clear_log();
    }
    fn fill_bucket(&self) -> Option<Bucket> {
        None
    }
    fn seed(&self, template: &str, n: usize) -> Result<()> {
        let server = {
            let w = self.0.w();
            w.servers
                .values()
                .find(|s| s["name"] == template)
                .cloned()
                .with_context(|| format!("no server {template}"))?
        };
        let id = server["id"].as_str().context("server id")?;
        let tags = strings(&server["tags"]);
        for i in 1..=n {
            let name = seeded_name(i);
            let mine: Vec<String> = tags.iter().map(|t| t.replace(template, &name)).collect();
            self.0
                .insert_server_like(id, &name, &mine)
                .context("clone the template server")?;
        }
        Ok(())
    }
}

/// The strings of a JSON array.
fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}
