//! The scenario suite against the Scaleway fake. Scaleway has no key resource (the key goes in
//! through cloud-init only), so a complete deployment is a running server, our security group
//! and the server's SBS root volume. Leftovers are everything billed or ours: servers, security
//! groups, volumes, IPs, images and Block snapshots.

use fakecloud::Fault;
use fakecloud::scaleway::{FakeScaleway, PROJECT};
use serde_json::{Value, json};

use super::Cloud;
use crate::support::Bin;

/// The secret key the binary gets: distinctive, so that a leak shows in the output.
const SECRET: &str = "5ec7e700-0000-4000-8000-5ec7e7000000";

/// The Scaleway fake as a [`Cloud`].
pub struct Scaleway(pub FakeScaleway);

/// `bootstrap-deployment=<d>`, the tag every resource of `d` carries.
fn dtag(d: &str) -> String {
    format!("bootstrap-deployment={d}")
}

fn tagged(v: &Value, d: &str) -> bool {
    v["tags"]
        .as_array()
        .is_some_and(|t| t.iter().any(|x| x.as_str() == Some(dtag(d).as_str())))
}

impl Scaleway {
    /// A fresh fake.
    pub fn start() -> Scaleway {
        Scaleway(FakeScaleway::start())
    }

    fn server_of(&self, d: &str) -> Option<Value> {
        self.0.w().servers.values().find(|s| tagged(s, d)).cloned()
    }

    fn our_groups(&self, d: &str) -> Vec<Value> {
        self.0
            .w()
            .groups
            .values()
            .filter(|g| tagged(g, d))
            .cloned()
            .collect()
    }
}

impl Cloud for Scaleway {
    fn provider(&self) -> &'static str {
        "scaleway"
    }

    fn bin(&self) -> Bin {
        let mut b = Bin::new();
        b.env("SCW_SECRET_KEY", SECRET);
        b.env("SCW_DEFAULT_PROJECT_ID", PROJECT);
        b
    }

    fn connect_flags(&self) -> Vec<String> {
        vec!["--endpoint".into(), self.0.url()]
    }

    fn kit(&self) -> &fakecloud::Server {
        self.0.kit()
    }

    fn server_error(&self) -> Fault {
        Fault::Status(500, "internal_error")
    }

    fn leftovers(&self, d: &str) -> Vec<String> {
        let w = self.0.w();
        let mut out = Vec::new();
        let servers: Vec<&Value> = w.servers.values().filter(|s| tagged(s, d)).collect();
        out.extend(servers.iter().map(|s| format!("server {}", s["id"])));
        out.extend(
            w.groups
                .values()
                .filter(|g| tagged(g, d))
                .map(|g| format!("security group {}", g["id"])),
        );
        // A root volume is tagged only once the server is completed: until then it is ours by
        // the name the fake gives it (`<server name>-root`).
        let root = format!("{d}-root");
        out.extend(
            w.volumes
                .values()
                .filter(|v| tagged(v, d) || v["name"] == root.as_str())
                .map(|v| format!("volume {}", v["id"])),
        );
        let ours = |ip: &Value| {
            tagged(ip, d)
                || servers
                    .iter()
                    .any(|s| s["id"] == ip["server"]["id"] && !ip["server"].is_null())
        };
        out.extend(
            w.ips
                .values()
                .filter(|ip| ours(ip))
                .map(|ip| format!("ip {}", ip["id"])),
        );
        out.extend(
            w.images
                .values()
                .filter(|i| tagged(i, d))
                .map(|i| format!("image {}", i["id"])),
        );
        out.extend(
            w.snapshots
                .values()
                .filter(|s| tagged(s, d))
                .map(|s| format!("snapshot {}", s["id"])),
        );
        out
    }

    fn complete(&self, d: &str) -> bool {
        let Some(s) = self.server_of(d) else {
            return false;
        };
        let groups = self.our_groups(d);
        let w = self.0.w();
        let root = s["volumes"]["0"]["id"].as_str().unwrap_or("");
        s["state"] == "running"
            && groups.len() == 1
            && s["security_group"]["id"] == groups[0]["id"]
            && w.volumes.contains_key(root)
            && w.user_data.contains_key(s["id"].as_str().unwrap_or(""))
    }

    fn ssh_sources(&self, d: &str) -> Vec<String> {
        let groups = self.our_groups(d);
        let w = self.0.w();
        let mut out: Vec<String> = groups
            .iter()
            .filter_map(|g| g["id"].as_str())
            .flat_map(|id| w.rules.get(id).cloned().unwrap_or_default())
            .filter(|r| {
                r["direction"] == "inbound"
                    && r["protocol"] == "TCP"
                    && r["action"] == "accept"
                    && r["dest_port_from"] == 22
            })
            .filter_map(|r| r["ip_range"].as_str().map(str::to_owned))
            .collect();
        out.sort();
        out
    }

    fn snapshot_slots(&self, d: &str) -> Vec<String> {
        let w = self.0.w();
        let mut out: Vec<String> = w
            .snapshots
            .values()
            .filter(|s| tagged(s, d))
            .flat_map(|s| s["tags"].as_array().cloned().unwrap_or_default())
            .filter_map(|t| {
                t.as_str()
                    .and_then(|t| t.strip_prefix("bootstrap-slot="))
                    .map(str::to_owned)
            })
            .collect();
        out.sort();
        out
    }

    fn add_untouchable_image(&self, d: &str) -> String {
        // A snapshot of the deployment's root volume made by someone else (no tags of ours),
        // and an image made from it: the job must touch neither.
        let s = self.server_of(d).unwrap();
        let vol = s["volumes"]["0"]["id"].as_str().unwrap().to_owned();
        let url = self.0.url();
        let body =
            json!({"volume_id": vol, "name": "by-hand", "project_id": PROJECT, "tags": ["mine"]});
        let r = crate::support::http(
            &url,
            "POST",
            "/block/v1/zones/fr-par-1/snapshots",
            &[("X-Auth-Token", "t"), ("Content-Type", "application/json")],
            Some(&body.to_string()),
        )
        .unwrap();
        assert_eq!(r.status, 200, "{}", r.body);
        let v: Value = serde_json::from_str(&r.body).unwrap();
        v["id"].as_str().unwrap().to_owned()
    }

    fn image_exists(&self, id: &str) -> bool {
        let w = self.0.w();
        w.snapshots.contains_key(id) || w.images.contains_key(id)
    }

    fn secret(&self) -> Option<&'static str> {
        Some(SECRET)
    }
}

#[test]
fn scaleway_lifecycle() {
    super::lifecycle(&Scaleway::start());
}

#[test]
fn scaleway_snapshot_days() {
    super::snapshot_days(&Scaleway::start());
}

#[test]
fn scaleway_every_failing_call_of_create_leaves_nothing_or_everything() {
    super::fault_matrix_create(&Scaleway::start(), "sc");
}

#[test]
fn scaleway_every_failing_call_of_destroy_is_finished_by_destroy() {
    super::fault_matrix_destroy(&Scaleway::start(), "sd");
}
