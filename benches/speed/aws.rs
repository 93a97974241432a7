//! AWS for the benchmark: `moto_server` on 127.0.0.1 (installed by `.ci/install`, or
//! `$BOOTSTRAP_MOTO`) behind a proxy on `fakecloud`'s kit, which adds the latency, logs every
//! call, and plays the timing moto leaves out: an instance is `pending` for the operation's
//! duration after `RunInstances`, `shutting-down` for as long after `TerminateInstances`, and an
//! image made by `CreateImage` is `pending` as long (moto has them `running`, `terminated` and
//! `available` at once). moto has no Data Lifecycle Manager: the proxy answers its listing
//! (`GET /policies`, which `destroy` makes to find native schedules) with none, as DLM does
//! for a deployment on the job engine.

use std::collections::HashMap;
use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use fakecloud::LoggedRequest;

use super::analysis::Api;
use super::clouds::{Bucket, Cloud, Pacing, seeded_name};

/// The region of every call.
const REGION: &str = "us-east-1";

/// moto's AMI catalog: the images `create` resolves by default (Canonical's Ubuntu 24.04) and
/// Debian 12.
const AMIS: &str = r#"[
 {"ami_id": "ami-0a0000000000000b2", "state": "available", "public": true, "owner_id": "099720109477",
  "image_location": "amazon/ubuntu", "sriov": "simple", "root_device_type": "ebs", "root_device_name": "/dev/sda1",
  "description": "Canonical, Ubuntu, 24.04, amd64 noble image", "image_type": "machine", "platform": null,
  "architecture": "x86_64", "name": "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-20250601",
  "virtualization_type": "hvm", "hypervisor": "xen", "creation_date": "2025-06-01T10:00:00.000Z"},
 {"ami_id": "ami-0a0000000000000d1", "state": "available", "public": true, "owner_id": "136693071363",
  "image_location": "debian", "sriov": "simple", "root_device_type": "ebs", "root_device_name": "/dev/xvda",
  "description": "Debian 12", "image_type": "machine", "platform": null,
  "architecture": "x86_64", "name": "debian-12-amd64-20250610-2138",
  "virtualization_type": "hvm", "hypervisor": "xen", "creation_date": "2025-06-10T21:38:00.000Z"}
]"#;

/// `moto_server` under `sh`, which kills it when its stdin closes: on drop, and when the bench
/// dies without unwinding.
struct Moto {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Moto {
    fn start() -> Result<Moto> {
        let path = std::env::var("BOOTSTRAP_MOTO")
            .unwrap_or_else(|_| "/opt/bootstrap-ci/venv/bin/moto_server".to_owned());
        if !std::path::Path::new(&path).exists() {
            bail!(
                "moto_server not found at {path}: run `bash .ci/install`, set BOOTSTRAP_MOTO, or leave aws out of --providers"
            );
        }
        let dir = tempfile::tempdir()?;
        let amis = dir.path().join("amis.json");
        std::fs::write(&amis, AMIS)?;
        let log = dir.path().join("moto.log");
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let child = Command::new("sh")
            .arg("-c")
            .arg(r#""$0" -H 127.0.0.1 -p "$1" >"$2" 2>&1 & pid=$!; read _ignored; kill $pid 2>/dev/null; wait $pid"#)
            .arg(&path)
            .arg(port.to_string())
            .arg(&log)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("MOTO_AMIS_PATH", &amis)
            .env("HOME", dir.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("start moto_server under sh")?;
        let mut m = Moto {
            child,
            port,
            _dir: dir,
        };
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(60) {
            if m.child.try_wait()?.is_some() {
                break;
            }
            if let Ok(mut s) = TcpStream::connect(("127.0.0.1", m.port)) {
                let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
                let mut buf = [0u8; 12];
                if s.write_all(b"GET /moto-api/ HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
                    .is_ok()
                    && s.read_exact(&mut buf).is_ok()
                {
                    return Ok(m);
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        m.stop();
        bail!("moto_server did not start:\n{text}")
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn stop(&mut self) {
        drop(self.child.stdin.take());
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(10) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        self.stop();
    }
}

/// When things started, to show them unfinished for the operation's duration.
#[derive(Default)]
struct Timing {
    op: Duration,
    launched: HashMap<String, Instant>,
    terminated: HashMap<String, Instant>,
    images: HashMap<String, Instant>,
}

/// moto behind the latency proxy.
pub struct Aws {
    proxy: fakecloud::Server,
    timing: Arc<Mutex<Timing>>,
    moto: Moto,
    runtime: tokio::runtime::Runtime,
    http: reqwest::Client,
}

fn lock(t: &Mutex<Timing>) -> MutexGuard<'_, Timing> {
    t.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Aws {
    /// Starts moto and the proxy in front of it.
    ///
    /// # Errors
    /// moto is missing or does not start, or no loopback port can be bound.
    pub fn start() -> Result<Aws> {
        // reqwest is built without a crypto provider; the binary installs this one too.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let moto = Moto::start()?;
        let timing = Arc::new(Mutex::new(Timing::default()));
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(300))
            .build()?;
        let app = axum::Router::new().fallback(forward).with_state((
            timing.clone(),
            http.clone(),
            moto.url(),
        ));
        let proxy = fakecloud::Builder::new("bench-ec2-proxy").start(app)?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        Ok(Aws {
            proxy,
            timing,
            moto,
            runtime,
            http,
        })
    }

    /// One EC2 call straight to moto (not logged, no latency): the answer's text.
    fn ec2(&self, params: &[(&str, String)]) -> Result<String> {
        let mut form: Vec<(&str, String)> = vec![("Version", "2016-11-15".into())];
        form.extend(params.iter().cloned());
        let req = self
            .http
            .post(self.moto.url())
            .header("Authorization", auth_header())
            .form(&form);
        let text = self.runtime.block_on(async {
            let r = req.send().await?;
            let status = r.status();
            let text = r.text().await?;
            anyhow::Ok((status, text))
        })?;
        if !text.0.is_success() {
            bail!("moto: {}", text.1);
        }
        Ok(text.1)
    }
}

/// An `Authorization` header moto reads the region from (it does not check signatures).
fn auth_header() -> String {
    format!(
        "AWS4-HMAC-SHA256 Credential=testing/20260101/{REGION}/ec2/aws4_request, SignedHeaders=host, Signature=0"
    )
}

/// The text of every `<tag>...</tag>` in `xml`.
fn all<'a>(xml: &'a str, tag: &str) -> Vec<&'a str> {
    let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
    xml.split(open.as_str())
        .skip(1)
        .filter_map(|p| p.split_once(close.as_str()).map(|(v, _)| v))
        .collect()
}

/// The form field `key` of a query-API body, as sent (`Action` values need no decoding).
fn field(body: &[u8], key: &str) -> Option<String> {
    String::from_utf8_lossy(body)
        .split('&')
        .find_map(|pair| pair.split_once('=').filter(|(k, _)| *k == key))
        .map(|(_, v)| v.to_owned())
}

/// Replaces, in each `<idTag>ID</idTag>...` item of `xml` that `pick` chooses, the first `from`
/// after the id with `to`.
fn rewrite(xml: &str, id_tag: &str, from: &str, to: &str, pick: &dyn Fn(&str) -> bool) -> String {
    let open = format!("<{id_tag}>");
    let close = format!("</{id_tag}>");
    let mut parts = xml.split(open.as_str());
    let mut out = parts.next().unwrap_or_default().to_owned();
    for part in parts {
        out.push_str(&open);
        match part.split_once(close.as_str()) {
            Some((id, rest)) if pick(id) => {
                out.push_str(id);
                out.push_str(&close);
                out.push_str(&rest.replacen(from, to, 1));
            }
            _ => out.push_str(part),
        }
    }
    out
}

const RUNNING: &str = "<instanceState><code>16</code><name>running</name></instanceState>";
const PENDING: &str = "<instanceState><code>0</code><name>pending</name></instanceState>";
const TERMINATED: &str = "<instanceState><code>48</code><name>terminated</name></instanceState>";
const SHUTTING_DOWN: &str =
    "<instanceState><code>32</code><name>shutting-down</name></instanceState>";

impl Timing {
    /// Records what `action` started and shows moto's answer as EC2 would at this instant.
    fn answer(&mut self, action: &str, text: String) -> String {
        let now = Instant::now();
        match action {
            "RunInstances" => {
                for id in all(&text, "instanceId") {
                    self.launched.insert(id.to_owned(), now);
                }
                text
            }
            "TerminateInstances" => {
                for id in all(&text, "instanceId") {
                    self.terminated.entry(id.to_owned()).or_insert(now);
                }
                text
            }
            "CreateImage" => {
                for id in all(&text, "imageId") {
                    self.images.insert(id.to_owned(), now);
                }
                text
            }
            "DescribeInstances" => {
                let busy = |m: &HashMap<String, Instant>, id: &str| {
                    m.get(id).is_some_and(|t| t.elapsed() < self.op)
                };
                let text = rewrite(&text, "instanceId", RUNNING, PENDING, &|id| {
                    busy(&self.launched, id)
                });
                rewrite(&text, "instanceId", TERMINATED, SHUTTING_DOWN, &|id| {
                    busy(&self.terminated, id)
                })
            }
            "DescribeImages" => rewrite(
                &text,
                "imageId",
                "<imageState>available</imageState>",
                "<imageState>pending</imageState>",
                &|id| self.images.get(id).is_some_and(|t| t.elapsed() < self.op),
            ),
            _ => text,
        }
    }
}

type ProxyState = (Arc<Mutex<Timing>>, reqwest::Client, String);

/// Every request: to moto, and its answer back as EC2 would give it now.
async fn forward(
    State((timing, http, upstream)): State<ProxyState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    // Data Lifecycle Manager's policy listing: none (moto answers it 500, and `destroy` would
    // retry it for seconds before going on).
    if method == Method::GET && uri.path() == "/policies" {
        return (
            StatusCode::OK,
            [("content-type", "application/json")],
            r#"{"Policies":[]}"#,
        )
            .into_response();
    }
    let url = format!(
        "{upstream}{}",
        uri.path_and_query().map_or("/", |p| p.as_str())
    );
    let mut req = http.request(method, url).body(body.clone());
    for (k, v) in &headers {
        if k != "host" && k != "content-length" {
            req = req.header(k, v);
        }
    }
    let answer = async {
        let r = req.send().await?;
        let status = r.status().as_u16();
        let kind = r
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("text/xml")
            .to_owned();
        let text = r.text().await?;
        reqwest::Result::Ok((status, kind, text))
    };
    match answer.await {
        Ok((status, kind, text)) => {
            let action = field(&body, "Action").unwrap_or_default();
            let text = lock(&timing).answer(&action, text);
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
            (status, [("content-type", kind)], text).into_response()
        }
        Err(e) => (StatusCode::BAD_GATEWAY, format!("moto: {e}")).into_response(),
    }
}

impl Cloud for Aws {
    fn provider(&self) -> &'static str {
        "aws"
    }
    fn api(&self) -> Api {
        Api::Aws
    }
    fn env(&self) -> Vec<(String, String)> {
        [
            ("AWS_CONFIG_FILE", "/nonexistent/bootstrap-bench/config"),
            (
                "AWS_SHARED_CREDENTIALS_FILE",
                "/nonexistent/bootstrap-bench/credentials",
            ),
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
            ("AWS_REGION", REGION),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .chain([("BOOTSTRAP_AWS_ENDPOINT".to_owned(), self.proxy.url())])
        .collect()
    }
    fn flags(&self) -> Vec<String> {
        Vec::new()
    }
    fn create_flags(&self) -> Vec<String> {
        // moto has no Data Lifecycle Manager, AWS's default engine: the job keeps the schedule.
        vec!["--snapshot-engine".into(), "job".into()]
    }
    fn pace(&self, p: Pacing) {
        self.proxy.set_latency(p.latency);
        lock(&self.timing).op = p.op;
    }
    fn log(&self) -> Vec<LoggedRequest> {
        self.proxy.requests()
    }
    fn clear_log(&self) {
        self.proxy.clear_log();
    }
    fn fill_bucket(&self) -> Option<Bucket> {
        None
    }
    fn seed(&self, template: &str, n: usize) -> Result<()> {
        let found = self.ec2(&[
            ("Action", "DescribeInstances".into()),
            ("Filter.1.Name", "tag:bootstrap-deployment".into()),
            ("Filter.1.Value.1", template.into()),
        ])?;
        let tags_xml = all(&found, "tagSet")
            .first()
            .copied()
            .with_context(|| format!("no instance of {template}"))?;
        let keys = all(tags_xml, "key");
        let values = all(tags_xml, "value");
        let image = all(&found, "imageId")
            .first()
            .map(|s| (*s).to_owned())
            .context("the template's image")?;
        let kind = all(&found, "instanceType")
            .first()
            .map_or_else(|| "t3.micro".to_owned(), |s| (*s).to_owned());
        let mut made = 0;
        while made < n {
            let batch = (n - made).min(100);
            let ran = self.ec2(&[
                ("Action", "RunInstances".into()),
                ("ImageId", image.clone()),
                ("InstanceType", kind.clone()),
                ("MinCount", batch.to_string()),
                ("MaxCount", batch.to_string()),
            ])?;
            for id in all(&ran, "instanceId") {
                made += 1;
                let name = seeded_name(made);
                let mut params: Vec<(String, String)> = vec![
                    ("Action".into(), "CreateTags".into()),
                    ("ResourceId.1".into(), id.to_owned()),
                ];
                for (i, (key, value)) in keys.iter().zip(&values).enumerate() {
                    params.push((format!("Tag.{}.Key", i + 1), (*key).to_owned()));
                    params.push((
                        format!("Tag.{}.Value", i + 1),
                        value.replace(template, &name),
                    ));
                }
                let refs: Vec<(&str, String)> = params
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.clone()))
                    .collect();
                self.ec2(&refs)?;
            }
        }
        Ok(())
    }
}
