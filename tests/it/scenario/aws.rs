//! The scenario suite against moto, behind the recording, fault-injecting EC2 proxy.

use aws_sdk_ec2::types::{Filter, Image};
use fakecloud::Fault;

use super::Cloud;
use crate::aws_proxy::Ec2Proxy;
use crate::moto::{Ec2View, Moto, aws_env};
use crate::support::Bin;

/// moto behind the proxy, as a [`Cloud`]. Field order is drop order: the proxy stops first.
pub struct Aws {
    proxy: Ec2Proxy,
    view: Ec2View,
    _moto: Moto,
}

impl Aws {
    /// A fresh moto and proxy.
    pub fn start() -> Aws {
        let moto = Moto::start();
        let proxy = Ec2Proxy::start(&moto.url());
        let view = Ec2View::new(&moto.url());
        Aws {
            proxy,
            view,
            _moto: moto,
        }
    }

    fn tagged(d: &str) -> Filter {
        Filter::builder()
            .name("tag:bootstrap-deployment")
            .values(d)
            .build()
    }

    fn images(&self, d: &str) -> Vec<Image> {
        let req = self
            .view
            .client
            .describe_images()
            .owners("self")
            .filters(Self::tagged(d));
        self.view.block(req.send()).unwrap().images().to_vec()
    }
}

fn tag<'a>(tags: &'a [aws_sdk_ec2::types::Tag], key: &str) -> Option<&'a str> {
    tags.iter()
        .find(|t| t.key() == Some(key))
        .and_then(|t| t.value())
}

impl Cloud for Aws {
    fn provider(&self) -> &'static str {
        "aws"
    }

    fn bin(&self) -> Bin {
        let mut b = Bin::new();
        aws_env(&mut b, &self.proxy.url());
        b
    }

    fn connect_flags(&self) -> Vec<String> {
        // The endpoint comes from BOOTSTRAP_AWS_ENDPOINT, the region from AWS_REGION.
        Vec::new()
    }

    fn create_flags(&self) -> Vec<String> {
        // Data Lifecycle Manager is AWS's default engine; moto has none, the suite runs the job.
        vec!["--snapshot-engine".into(), "job".into()]
    }

    fn kit(&self) -> &fakecloud::Server {
        self.proxy.kit()
    }

    fn server_error(&self) -> Fault {
        Fault::Status(500, "InternalError")
    }

    fn leftovers(&self, d: &str) -> Vec<String> {
        let mut out = self.view.leftovers(d);
        out.extend(
            self.images(d)
                .iter()
                .map(|i| format!("image {}", i.image_id().unwrap_or_default())),
        );
        out
    }

    fn complete(&self, d: &str) -> bool {
        let running = self
            .view
            .live_instances(d)
            .iter()
            .any(|i| i.state().and_then(|s| s.name()).map(|n| n.as_str()) == Some("running"));
        running && self.view.security_groups(d).len() == 1 && self.view.key_pairs(d).len() == 1
    }

    fn ssh_sources(&self, d: &str) -> Vec<String> {
        let mut out: Vec<String> = self
            .view
            .security_groups(d)
            .iter()
            .flat_map(|g| g.ip_permissions().to_vec())
            .filter(|p| p.ip_protocol() == Some("tcp") && p.from_port() == Some(22))
            .flat_map(|p| {
                let v4 = p
                    .ip_ranges()
                    .iter()
                    .filter_map(|r| r.cidr_ip().map(str::to_owned))
                    .collect::<Vec<_>>();
                let v6 = p
                    .ipv6_ranges()
                    .iter()
                    .filter_map(|r| r.cidr_ipv6().map(str::to_owned))
                    .collect::<Vec<_>>();
                v4.into_iter().chain(v6)
            })
            .collect();
        out.sort();
        out
    }

    fn snapshot_slots(&self, d: &str) -> Vec<String> {
        let mut out: Vec<String> = self
            .images(d)
            .iter()
            .filter_map(|i| tag(i.tags(), "bootstrap-slot").map(str::to_owned))
            .collect();
        out.sort();
        out
    }

    fn add_untouchable_image(&self, d: &str) -> String {
        // An AMI of the same instance without our tags: never ours to delete.
        let inst = self.view.live_instances(d).remove(0);
        let req = self
            .view
            .client
            .create_image()
            .instance_id(inst.instance_id().unwrap())
            .name(format!("hand-made-{d}"));
        let out = self.view.block(req.send()).unwrap();
        out.image_id().unwrap().to_owned()
    }

    fn image_exists(&self, id: &str) -> bool {
        let req = self.view.client.describe_images().image_ids(id);
        self.view
            .block(req.send())
            .map(|o| !o.images().is_empty())
            .unwrap_or(false)
    }

    fn between_days(&self) {
        // Retention orders AMIs by CreationDate, in whole seconds.
        std::thread::sleep(std::time::Duration::from_millis(1100));
    }
}

#[test]
fn aws_lifecycle() {
    super::lifecycle(&Aws::start());
}

#[test]
fn aws_snapshot_days() {
    super::snapshot_days(&Aws::start());
}

#[test]
fn aws_every_failing_call_of_create_leaves_nothing_or_everything() {
    super::fault_matrix_create(&Aws::start(), "ac");
}

#[test]
fn aws_every_failing_call_of_destroy_is_finished_by_destroy() {
    super::fault_matrix_destroy(&Aws::start(), "ad");
}
