//! The scenario suite against the DigitalOcean fake.

use serde_json::Value;

use super::Cloud;
use crate::support::Bin;
use fakecloud::Fault;
use fakecloud::digitalocean::FakeDo;

/// The DigitalOcean fake as a [`Cloud`].
pub struct DigitalOcean(pub FakeDo);

impl DigitalOcean {
    /// A fresh fake; its per-minute limit is lifted, since a fault matrix sends far more than
    /// 250 requests a minute (the limit has its own test).
    pub fn start() -> DigitalOcean {
        let f = FakeDo::start();
        f.set_rate_limit(1_000_000, 1_000_000.0);
        DigitalOcean(f)
    }

    fn tagged<'a>(items: &'a [Value], d: &str) -> impl Iterator<Item = &'a Value> {
        let tag = Value::from(format!("bootstrap-deployment:{d}"));
        items
            .iter()
            .filter(move |x| x["tags"].as_array().is_some_and(|t| t.contains(&tag)))
    }

    fn named<'a>(items: &'a [Value], d: &str) -> impl Iterator<Item = &'a Value> {
        let name = format!("bootstrap-{d}");
        items.iter().filter(move |x| x["name"] == name.as_str())
    }
}

impl Cloud for DigitalOcean {
    fn provider(&self) -> &'static str {
        "digitalocean"
    }

    fn bin(&self) -> Bin {
        let mut b = Bin::new();
        b.unset("HCLOUD_TOKEN");
        b.env("DIGITALOCEAN_TOKEN", "dop_v1_test-token-not-secret");
        b
    }

    fn connect_flags(&self) -> Vec<String> {
        vec!["--endpoint".into(), self.0.url()]
    }

    fn kit(&self) -> &fakecloud::Server {
        self.0.kit()
    }

    fn server_error(&self) -> Fault {
        Fault::Status(500, "server_error")
    }

    fn leftovers(&self, d: &str) -> Vec<String> {
        let f = &self.0;
        let mut out = Vec::new();
        let droplets = f.droplets();
        out.extend(Self::tagged(&droplets, d).map(|x| format!("droplet {}", x["id"])));
        let fws = f.firewalls();
        out.extend(Self::named(&fws, d).map(|x| format!("firewall {}", x["id"])));
        let keys = f.keys();
        out.extend(Self::named(&keys, d).map(|x| format!("ssh key {}", x["id"])));
        let images = f.snapshots();
        out.extend(
            Self::tagged(&images, d)
                .filter(|i| i["type"] != "backup")
                .map(|x| format!("image {}", x["id"])),
        );
        let tag = format!("bootstrap-deployment:{d}");
        out.extend(
            f.tags()
                .into_iter()
                .filter(|t| *t == tag)
                .map(|t| format!("tag {t}")),
        );
        out
    }

    fn complete(&self, d: &str) -> bool {
        let f = &self.0;
        let active = Self::tagged(&f.droplets(), d).any(|s| s["status"] == "active");
        active
            && Self::named(&f.firewalls(), d).count() == 1
            && Self::named(&f.keys(), d).count() == 1
    }

    fn ssh_sources(&self, d: &str) -> Vec<String> {
        let fws = self.0.firewalls();
        let mut out: Vec<String> = Self::named(&fws, d)
            .flat_map(|f| f["inbound_rules"].as_array().cloned().unwrap_or_default())
            .filter(|r| r["protocol"] == "tcp" && r["ports"] == "22")
            .flat_map(|r| {
                r["sources"]["addresses"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
            })
            .filter_map(|s| s.as_str().map(str::to_owned))
            .collect();
        out.sort();
        out
    }

    fn snapshot_slots(&self, d: &str) -> Vec<String> {
        let imgs = self.0.snapshots();
        let mut out: Vec<String> = Self::tagged(&imgs, d)
            .filter(|i| i["type"] == "snapshot")
            .flat_map(|i| i["tags"].as_array().cloned().unwrap_or_default())
            .filter_map(|t| {
                t.as_str()
                    .and_then(|t| t.strip_prefix("bootstrap-slot:"))
                    .map(str::to_owned)
            })
            .collect();
        out.sort();
        out
    }

    fn add_untouchable_image(&self, d: &str) -> String {
        // A DigitalOcean backup that even carries our tags: `type: backup` is never the job's.
        let droplets = self.0.droplets();
        let id = Self::tagged(&droplets, d).next().unwrap()["id"]
            .as_i64()
            .unwrap();
        let backup = self.0.add_backup(id, &format!("{d} backup"));
        self.0
            .state_tag_image(backup, &format!("bootstrap-deployment:{d}"));
        backup.to_string()
    }

    fn image_exists(&self, id: &str) -> bool {
        id.parse().is_ok_and(|n| self.0.state_has_image(n))
    }

    fn untouchable_outlives_server(&self) -> bool {
        // DigitalOcean deletes a droplet's backups with the droplet.
        false
    }

    fn secret(&self) -> Option<&'static str> {
        Some("dop_v1_test-token-not-secret")
    }
}

#[test]
fn digitalocean_lifecycle() {
    super::lifecycle(&DigitalOcean::start());
}

#[test]
fn digitalocean_snapshot_days() {
    super::snapshot_days(&DigitalOcean::start());
}

#[test]
fn digitalocean_every_failing_call_of_create_leaves_nothing_or_everything() {
    super::fault_matrix_create(&DigitalOcean::start(), "dc");
}

#[test]
fn digitalocean_every_failing_call_of_destroy_is_finished_by_destroy() {
    super::fault_matrix_destroy(&DigitalOcean::start(), "dd");
}
