//! The scenario suite against the Hetzner fake.

use std::time::Duration;

use fakecloud::client::http_request;
use fakecloud::hetzner::{FakeConfig, FakeHetzner};
use fakecloud::{Fault, Pace};
use serde_json::Value;

use super::Cloud;
use crate::support::Bin;

/// The Hetzner fake as a [`Cloud`].
pub struct Hetzner(pub FakeHetzner);

impl Hetzner {
    /// A fresh fake with the documented behaviour; actions finish by wall time, as Hetzner's
    /// do, so a delete started by a run that died still completes without anyone polling it.
    pub fn start() -> Hetzner {
        Hetzner(FakeHetzner::start(FakeConfig {
            pace: Pace::Wall(Duration::from_millis(30)),
            ..FakeConfig::default()
        }))
    }

    fn labelled<'a>(items: &'a [Value], d: &str) -> impl Iterator<Item = &'a Value> {
        let d = d.to_owned();
        items
            .iter()
            .filter(move |x| x["labels"]["bootstrap-deployment"] == d.as_str())
    }
}

impl Cloud for Hetzner {
    fn provider(&self) -> &'static str {
        "hetzner"
    }

    fn bin(&self) -> Bin {
        Bin::new()
    }

    fn connect_flags(&self) -> Vec<String> {
        vec!["--endpoint".into(), self.0.url()]
    }

    fn kit(&self) -> &fakecloud::Server {
        &self.0
    }

    fn server_error(&self) -> Fault {
        Fault::Status(500, "server_error")
    }

    fn leftovers(&self, d: &str) -> Vec<String> {
        let f = &self.0;
        let mut out = Vec::new();
        for (kind, items) in [
            ("server", f.servers()),
            ("firewall", f.firewalls()),
            ("ssh key", f.ssh_keys()),
            ("image", f.snapshots()),
        ] {
            out.extend(Self::labelled(&items, d).map(|x| format!("{kind} {}", x["id"])));
        }
        out
    }

    fn complete(&self, d: &str) -> bool {
        let f = &self.0;
        let running = Self::labelled(&f.servers(), d).any(|s| s["status"] == "running");
        running
            && Self::labelled(&f.firewalls(), d).count() == 1
            && Self::labelled(&f.ssh_keys(), d).count() == 1
    }

    fn ssh_sources(&self, d: &str) -> Vec<String> {
        let fws = self.0.firewalls();
        let mut out: Vec<String> = Self::labelled(&fws, d)
            .flat_map(|f| f["rules"].as_array().cloned().unwrap_or_default())
            .filter(|r| r["direction"] == "in" && r["protocol"] == "tcp" && r["port"] == "22")
            .flat_map(|r| r["source_ips"].as_array().cloned().unwrap_or_default())
            .filter_map(|s| s.as_str().map(str::to_owned))
            .collect();
        out.sort();
        out
    }

    fn snapshot_slots(&self, d: &str) -> Vec<String> {
        let imgs = self.0.snapshots();
        let mut out: Vec<String> = Self::labelled(&imgs, d)
            .filter(|i| i["type"] == "snapshot")
            .filter_map(|i| i["labels"]["bootstrap-slot"].as_str().map(str::to_owned))
            .collect();
        out.sort();
        out
    }

    fn add_untouchable_image(&self, d: &str) -> String {
        // A provider backup that even carries our labels: `type: backup` is never the job's.
        let sid = self.0.server_by_name(d).unwrap()["id"].as_u64().unwrap();
        let body = serde_json::json!({"type": "backup", "description": "nightly",
            "labels": {"managed-by": "bootstrap", "bootstrap-deployment": d}});
        let r = http_request(
            &self.0.url(),
            "POST",
            &format!("/servers/{sid}/actions/create_image"),
            Some("t"),
            Some(&body),
        )
        .unwrap();
        self.0.finish_all_actions();
        r.body["image"]["id"].to_string()
    }

    fn untouchable_outlives_server(&self) -> bool {
        // Hetzner deletes a server's backups with the server.
        false
    }

    fn secret(&self) -> Option<&'static str> {
        Some("test-token-not-secret")
    }

    fn image_exists(&self, id: &str) -> bool {
        self.0
            .snapshots()
            .iter()
            .any(|i| i["id"].as_u64().is_some_and(|n| id.parse() == Ok(n)))
    }
}

#[test]
fn hetzner_lifecycle() {
    super::lifecycle(&Hetzner::start());
}

#[test]
fn hetzner_snapshot_days() {
    super::snapshot_days(&Hetzner::start());
}

#[test]
fn hetzner_every_failing_call_of_create_leaves_nothing_or_everything() {
    super::fault_matrix_create(&Hetzner::start(), "hc");
}

#[test]
fn hetzner_every_failing_call_of_destroy_is_finished_by_destroy() {
    super::fault_matrix_destroy(&Hetzner::start(), "hd");
}
