//! `moto_server` (the AWS emulator) on 127.0.0.1, one per test, stopped on Drop; the binary's
//! AWS environment; and a view of what moto holds, through the SDK.
//!
//! The server runs under `sh`, which kills it when its stdin closes: on Drop, and also when the
//! test process dies without unwinding, so no moto outlives the tests. Its AMI catalog is ours
//! (`MOTO_AMIS_PATH`): two Canonical Ubuntu 24.04 images of different dates, one 22.04, one
//! Debian 12, so that name resolution ("newest first, from the publisher") is tested for real.
//!
//! The binary never sees a real AWS setting: no config or credentials file (paths that do not
//! exist), IMDS disabled, static test credentials, a fixed region, SDK retries off
//! (`AWS_MAX_ATTEMPTS=1`) so that moto's 500 for an unimplemented call fails at once.

#![allow(dead_code)]

use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_ec2::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_ec2::types::{Filter, Instance, KeyPairInfo, SecurityGroup, Volume};

use crate::support::Bin;

/// Region every AWS test uses.
pub const REGION: &str = "us-east-1";
/// The newest Ubuntu 24.04 AMI of the test catalog (what `--image ubuntu-24.04` must pick).
pub const NOBLE_NEWEST: &str = "ami-0a0000000000000b2";
/// An older Ubuntu 24.04 AMI of the test catalog.
pub const NOBLE_OLD: &str = "ami-0a0000000000000b1";
/// A Debian 12 AMI of the test catalog.
pub const DEBIAN_12: &str = "ami-0a0000000000000d1";

const AMIS: &str = r#"[
 {"ami_id": "ami-0a0000000000000b1", "state": "available", "public": true, "owner_id": "099720109477",
  "image_location": "amazon/ubuntu", "sriov": "simple", "root_device_type": "ebs", "root_device_name": "/dev/sda1",
  "description": "Canonical, Ubuntu, 24.04, amd64 noble image", "image_type": "machine", "platform": null,
  "architecture": "x86_64", "name": "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-20240423",
  "virtualization_type": "hvm", "hypervisor": "xen", "creation_date": "2024-04-23T10:00:00.000Z"},
 {"ami_id": "ami-0a0000000000000b2", "state": "available", "public": true, "owner_id": "099720109477",
  "image_location": "amazon/ubuntu", "sriov": "simple", "root_device_type": "ebs", "root_device_name": "/dev/sda1",
  "description": "Canonical, Ubuntu, 24.04, amd64 noble image", "image_type": "machine", "platform": null,
  "architecture": "x86_64", "name": "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-20250601",
  "virtualization_type": "hvm", "hypervisor": "xen", "creation_date": "2025-06-01T10:00:00.000Z"},
 {"ami_id": "ami-0a0000000000000b3", "state": "available", "public": true, "owner_id": "099720109477",
  "image_location": "amazon/ubuntu", "sriov": "simple", "root_device_type": "ebs", "root_device_name": "/dev/sda1",
  "description": "Canonical, Ubuntu, 24.04, arm64 noble image", "image_type": "machine", "platform": null,
  "architecture": "arm64", "name": "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-arm64-server-20250701",
  "virtualization_type": "hvm", "hypervisor": "xen", "creation_date": "2025-07-01T10:00:00.000Z"},
 {"ami_id": "ami-0a0000000000000c1", "state": "available", "public": true, "owner_id": "099720109477",
  "image_location": "amazon/ubuntu", "sriov": "simple", "root_device_type": "ebs", "root_device_name": "/dev/sda1",
  "description": "Canonical, Ubuntu, 22.04", "image_type": "machine", "platform": null,
  "architecture": "x86_64", "name": "ubuntu/images/hvm-ssd/ubuntu-jammy-22.04-amd64-server-20250801",
  "virtualization_type": "hvm", "hypervisor": "xen", "creation_date": "2025-08-01T10:00:00.000Z"},
 {"ami_id": "ami-0a0000000000000e1", "state": "available", "public": true, "owner_id": "111122223333",
  "image_location": "someone/else", "sriov": "simple", "root_device_type": "ebs", "root_device_name": "/dev/sda1",
  "description": "not Canonical's, newest of all", "image_type": "machine", "platform": null,
  "architecture": "x86_64", "name": "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-20991231",
  "virtualization_type": "hvm", "hypervisor": "xen", "creation_date": "2099-12-31T10:00:00.000Z"},
 {"ami_id": "ami-0a0000000000000d1", "state": "available", "public": true, "owner_id": "136693071363",
  "image_location": "debian", "sriov": "simple", "root_device_type": "ebs", "root_device_name": "/dev/xvda",
  "description": "Debian 12", "image_type": "machine", "platform": null,
  "architecture": "x86_64", "name": "debian-12-amd64-20250610-2138",
  "virtualization_type": "hvm", "hypervisor": "xen", "creation_date": "2025-06-10T21:38:00.000Z"}
]"#;

/// Where `moto_server` is: `$BOOTSTRAP_MOTO`, else the CI venv's.
pub fn moto_path() -> String {
    std::env::var("BOOTSTRAP_MOTO")
        .unwrap_or_else(|_| "/opt/bootstrap-ci/venv/bin/moto_server".to_owned())
}

/// A running `moto_server`; stops when dropped.
pub struct Moto {
    child: Child,
    port: u16,
    /// Holds the AMI catalog and moto's log; `None` only while starting.
    _dir: Option<tempfile::TempDir>,
}

impl Moto {
    /// Starts moto on a free port of 127.0.0.1 and waits until it answers.
    pub fn start() -> Moto {
        let path = moto_path();
        assert!(
            std::path::Path::new(&path).exists(),
            "moto_server not found at {path}: run `bash .ci/install` (installs moto[server] in /opt/bootstrap-ci/venv) or set BOOTSTRAP_MOTO"
        );
        let dir = tempfile::tempdir().unwrap();
        let amis = dir.path().join("amis.json");
        std::fs::write(&amis, AMIS).unwrap();
        let log = dir.path().join("moto.log");
        for _attempt in 0..5 {
            let port = TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            // `read` returns when our end of stdin closes (Drop, or this process dying).
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
                .expect("start moto_server under sh");
            let mut m = Moto {
                child,
                port,
                _dir: None,
            };
            if m.wait_ready(Duration::from_secs(30)) {
                m._dir = Some(dir);
                return m;
            }
            m.stop();
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            assert!(
                text.contains("Address already in use"),
                "moto_server did not start:\n{text}"
            );
        }
        panic!("moto_server found no free port in 5 tries");
    }

    fn wait_ready(&mut self, limit: Duration) -> bool {
        let start = Instant::now();
        while start.elapsed() < limit {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false;
            }
            if let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) {
                let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
                let req = "GET /moto-api/ HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
                let mut buf = [0u8; 12];
                if s.write_all(req.as_bytes()).is_ok() && s.read_exact(&mut buf).is_ok() {
                    return true;
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    }

    /// The endpoint URL, `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// moto's log so far (for failure messages).
    pub fn log(&self) -> String {
        self._dir
            .as_ref()
            .and_then(|d| std::fs::read_to_string(d.path().join("moto.log")).ok())
            .unwrap_or_default()
    }

    fn stop(&mut self) {
        // Closing stdin makes the shell kill moto and exit.
        drop(self.child.stdin.take());
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(10) {
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

/// Gives `b` the AWS environment of a test against `endpoint`: nothing real can be reached.
pub fn aws_env(b: &mut Bin, endpoint: &str) {
    let nowhere = b.dir.path().join("no-such-aws-dir");
    b.env("AWS_CONFIG_FILE", nowhere.join("config").to_str().unwrap());
    b.env(
        "AWS_SHARED_CREDENTIALS_FILE",
        nowhere.join("credentials").to_str().unwrap(),
    );
    b.env("AWS_EC2_METADATA_DISABLED", "true");
    b.env("AWS_ACCESS_KEY_ID", "testing");
    b.env("AWS_SECRET_ACCESS_KEY", "testing");
    b.env("AWS_REGION", REGION);
    b.env("AWS_MAX_ATTEMPTS", "1");
    b.env("BOOTSTRAP_AWS_ENDPOINT", endpoint);
    b.unset("HCLOUD_TOKEN");
}

/// What moto holds, read through the SDK (sync wrappers on a small runtime of its own).
pub struct Ec2View {
    rt: tokio::runtime::Runtime,
    /// The SDK client, pointed at moto.
    pub client: aws_sdk_ec2::Client,
}

impl Ec2View {
    /// A client for `endpoint` with the test credentials.
    pub fn new(endpoint: &str) -> Ec2View {
        Self::in_region(endpoint, REGION)
    }

    /// A client for `endpoint` in `region`.
    pub fn in_region(endpoint: &str, region: &str) -> Ec2View {
        let conf = aws_sdk_ec2::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(region.to_owned()))
            .endpoint_url(endpoint)
            .credentials_provider(Credentials::new("testing", "testing", None, None, "test"))
            .build();
        Ec2View {
            rt: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap(),
            client: aws_sdk_ec2::Client::from_conf(conf),
        }
    }

    /// Runs a future on the view's runtime.
    pub fn block<F: std::future::Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }

    fn tag_filter(deployment: &str) -> Filter {
        Filter::builder()
            .name("tag:bootstrap-deployment")
            .values(deployment)
            .build()
    }

    /// Instances tagged with `deployment`, terminated ones included.
    pub fn instances(&self, deployment: &str) -> Vec<Instance> {
        let out = self
            .block(
                self.client
                    .describe_instances()
                    .filters(Self::tag_filter(deployment))
                    .send(),
            )
            .unwrap();
        out.reservations()
            .iter()
            .flat_map(|r| r.instances().iter().cloned())
            .collect()
    }

    /// Instances tagged with `deployment` that are not terminated.
    pub fn live_instances(&self, deployment: &str) -> Vec<Instance> {
        self.instances(deployment)
            .into_iter()
            .filter(|i| i.state().and_then(|s| s.name()).map(|n| n.as_str()) != Some("terminated"))
            .collect()
    }

    /// Security groups tagged with `deployment`.
    pub fn security_groups(&self, deployment: &str) -> Vec<SecurityGroup> {
        self.block(
            self.client
                .describe_security_groups()
                .filters(Self::tag_filter(deployment))
                .send(),
        )
        .unwrap()
        .security_groups()
        .to_vec()
    }

    /// Key pairs tagged with `deployment`.
    pub fn key_pairs(&self, deployment: &str) -> Vec<KeyPairInfo> {
        self.block(
            self.client
                .describe_key_pairs()
                .filters(Self::tag_filter(deployment))
                .send(),
        )
        .unwrap()
        .key_pairs()
        .to_vec()
    }

    /// Volumes tagged with `deployment`.
    pub fn volumes(&self, deployment: &str) -> Vec<Volume> {
        self.block(
            self.client
                .describe_volumes()
                .filters(Self::tag_filter(deployment))
                .send(),
        )
        .unwrap()
        .volumes()
        .to_vec()
    }

    /// Everything of `deployment` that still exists (terminated instances do not count), as
    /// `kind id` lines; empty when the deployment is gone.
    pub fn leftovers(&self, deployment: &str) -> Vec<String> {
        let mut out: Vec<String> = self
            .live_instances(deployment)
            .iter()
            .map(|i| format!("instance {}", i.instance_id().unwrap_or_default()))
            .collect();
        out.extend(
            self.security_groups(deployment)
                .iter()
                .map(|g| format!("security group {}", g.group_id().unwrap_or_default())),
        );
        out.extend(
            self.key_pairs(deployment)
                .iter()
                .map(|k| format!("key pair {}", k.key_name().unwrap_or_default())),
        );
        out
    }
}
