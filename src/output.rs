//! The only writer to stdout: results as text lines or one JSON document. Progress, warnings and
//! errors go to stderr elsewhere.

use std::io::Write;

use bootstrap_core::flow::{CreateOutcome, DeploymentSummary, Teardown};
use serde_json::{Value, json};

use crate::cli::OutputFormat;

/// Version of every JSON document's layout; raised when a field changes meaning or goes away.
pub const FORMAT_VERSION: u32 = 1;

/// Whether a result went to stdout in this process: a failure after it (a `verify` check,
/// a snapshot that failed) must not add a second JSON document.
static WROTE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Rows under a header, each column as wide as its widest cell (ids of any length fit), two
/// spaces apart, no borders; the same look as `hcloud` and `doctl` lists.
pub fn table(header: &[&str], rows: impl IntoIterator<Item = Vec<String>>) -> String {
    let mut t = comfy_table::Table::new();
    t.load_preset(comfy_table::presets::NOTHING)
        .set_content_arrangement(comfy_table::ContentArrangement::Disabled)
        .set_header(header.iter().copied());
    for row in rows {
        t.add_row(row);
    }
    for c in t.column_iter_mut() {
        c.set_padding((0, 2));
    }
    let mut out: String = t.lines().map(|l| format!("{}\n", l.trim_end())).collect();
    if out.is_empty() {
        out.push('\n');
    }
    out
}

/// Prints results in the chosen format.
#[derive(Debug, Clone, Copy)]
pub struct Output {
    format: OutputFormat,
}

impl Output {
    /// An output in `format`.
    pub fn new(format: OutputFormat) -> Self {
        Self { format }
    }

    fn write(&self, text: &str) -> anyhow::Result<()> {
        crate::progress::clear();
        WROTE.store(true, std::sync::atomic::Ordering::Relaxed);
        let mut out = std::io::stdout().lock();
        match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
            // A closed pipe (`| head`) is not an error worth a message.
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
            r => Ok(r?),
        }
    }

    /// Whether results are JSON.
    pub fn is_json(&self) -> bool {
        self.format == OutputFormat::Json
    }

    /// Plain text as it is (unit files, crontab lines).
    pub fn text(&self, text: &str) -> anyhow::Result<()> {
        self.write(text)
    }

    /// One JSON document, with the [`FORMAT_VERSION`] its readers check first.
    pub fn json(&self, v: &Value) -> anyhow::Result<()> {
        let mut doc = serde_json::Map::new();
        doc.insert("format_version".into(), json!(FORMAT_VERSION));
        match v {
            Value::Object(m) => doc.extend(m.clone()),
            other => {
                doc.insert("result".into(), other.clone());
            }
        }
        self.write(&format!(
            "{}\n",
            serde_json::to_string_pretty(&Value::Object(doc))?
        ))
    }

    /// `render`: the user-data alone, byte for byte (in JSON, `{"user_data": ...}`).
    pub fn user_data(&self, user_data: &str) -> anyhow::Result<()> {
        if self.is_json() {
            return self.json(&json!({ "user_data": user_data }));
        }
        self.write(user_data)
    }

    /// A failed command in JSON mode: the error as a document on stdout too (stderr still has
    /// the line), so that a script reading stdout always gets one JSON document.
    pub fn error(&self, kind: &str, message: &str, hint: Option<&str>, exit_code: u8) {
        if WROTE.load(std::sync::atomic::Ordering::Relaxed) {
            // The result document already says what failed; stdout stays one document.
            return;
        }
        let _ = self.json(&json!({
            "error": {"kind": kind, "message": message, "hint": hint, "exit_code": exit_code}
        }));
    }

    /// `create --dry-run`: the plan, then the user-data.
    pub fn plan(&self, plan: &Value, user_data: &str) -> anyhow::Result<()> {
        if self.format == OutputFormat::Json {
            let mut p = plan.clone();
            p["user_data"] = Value::String(user_data.to_owned());
            return self.json(&p);
        }
        let mut t = String::new();
        let labels = |v: &Value| {
            v.as_object()
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .unwrap_or_default()
        };
        t.push_str(&format!(
            "Plan for deployment {} on {} (dry run: nothing is created{})\n",
            plan["deployment"].as_str().unwrap_or_default(),
            plan["provider"].as_str().unwrap_or_default(),
            if plan["cloud"].is_null() {
                "; offline: no credentials, so nothing was compared with the cloud"
            } else {
                "; compared read-only with what exists"
            }
        ));
        for r in plan["cloud"]["resources"].as_array().into_iter().flatten() {
            t.push_str(&format!(
                "  {:<10}{:<10} {}\n",
                r["resource"].as_str().unwrap_or_default(),
                r["action"].as_str().unwrap_or_default(),
                r["detail"].as_str().unwrap_or_default()
            ));
        }
        if let Some(sum) = plan["cloud"]["summary"].as_str() {
            t.push_str(&format!("  {sum}\n\nWhat create sets:\n"));
        }
        let k = &plan["ssh_key"];
        if k["resource"] == Value::Bool(false) {
            t.push_str(&format!(
                "  ssh key   {}  ({}; not uploaded: cloud-init installs it for the admin user)\n",
                k["fingerprint"].as_str().unwrap_or("(generated by create)"),
                k["source"].as_str().unwrap_or_default(),
            ));
        } else {
            t.push_str(&format!(
                "  ssh key   {}  {}  ({})\n            labels {}\n",
                k["name"].as_str().unwrap_or_default(),
                k["fingerprint"].as_str().unwrap_or("(generated by create)"),
                k["source"].as_str().unwrap_or_default(),
                labels(&k["labels"])
            ));
        }
        let f = &plan["firewall"];
        for r in f["inbound"].as_array().into_iter().flatten() {
            let sources: Vec<_> = r["sources"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            t.push_str(&format!(
                "  firewall  {}  allow in {}/{} from {}\n",
                f["name"].as_str().unwrap_or_default(),
                r["protocol"].as_str().unwrap_or_default(),
                r["port"],
                sources.join(", ")
            ));
        }
        t.push_str(&format!("            labels {}\n", labels(&f["labels"])));
        let s = &plan["server"];
        t.push_str(&format!(
            "  server    {}  type {}  image {}  location {}\n            labels {}\n",
            s["name"].as_str().unwrap_or_default(),
            s["server_type"].as_str().unwrap_or_default(),
            s["image"].as_str().unwrap_or_default(),
            s["location"].as_str().unwrap_or_default(),
            labels(&s["labels"])
        ));
        t.push_str(&format!(
            "  user-data {} of {} bytes:\n\n{user_data}",
            plan["user_data_bytes"], plan["user_data_limit"]
        ));
        self.write(&t)
    }

    /// A successful `create`.
    pub fn created(&self, o: &CreateOutcome, extra: &Value, ssh: &str) -> anyhow::Result<()> {
        if self.format == OutputFormat::Json {
            let mut v = json!({
                "server": o.server,
                "ssh_key": o.ssh_key,
                "firewall": o.firewall,
                "created": o.created,
                "ssh": ssh,
            });
            if let (Some(m), Some(e)) = (v.as_object_mut(), extra.as_object()) {
                m.extend(e.clone());
            }
            return self.json(&v);
        }
        let ip = |a: Option<std::net::IpAddr>| a.map_or("-".to_owned(), |a| a.to_string());
        // Where create left the host key pin, the sudo password, the WireGuard config.
        let notes: String = extra["notes"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(|n| format!("{n}\n"))
            .collect();
        self.write(&format!(
            "{}  {}  {}  {}  (server {})\n{ssh}\n{notes}",
            o.server.name,
            o.server.status,
            ip(o.server.ipv4),
            ip(o.server.ipv6),
            o.server.id
        ))
    }

    /// `verify`: the checklist as text lines or one JSON document.
    pub fn checklist(&self, doc: &Value) -> anyhow::Result<()> {
        if self.format == OutputFormat::Json {
            return self.json(doc);
        }
        let mut t = format!(
            "verify {} ({})\n",
            doc["deployment"].as_str().unwrap_or_default(),
            doc["target"].as_str().unwrap_or_default()
        );
        for c in doc["checks"].as_array().into_iter().flatten() {
            t.push_str(&format!(
                "  [{}] {}: {}\n",
                c["status"].as_str().unwrap_or_default(),
                c["title"].as_str().unwrap_or_default(),
                c["detail"].as_str().unwrap_or_default()
            ));
        }
        t.push_str(&format!(
            "{} passed, {} failed, {} skipped\n",
            doc["passed"], doc["failed"], doc["skipped"]
        ));
        self.write(&t)
    }

    /// `destroy --dry-run`: what would be deleted and what is kept.
    pub fn destroy_plan(&self, doc: &Value) -> anyhow::Result<()> {
        if self.is_json() {
            return self.json(doc);
        }
        let mut t = format!(
            "destroy {} on {} would delete (dry run: nothing is deleted):\n",
            doc["deployment"].as_str().unwrap_or_default(),
            doc["provider"].as_str().unwrap_or_default()
        );
        let list = |v: &Value| -> Vec<String> {
            v.as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        };
        let delete = list(&doc["delete"]);
        if delete.is_empty() {
            t.push_str("  nothing: no resource of it exists\n");
        }
        for d in delete {
            t.push_str(&format!("  {d}\n"));
        }
        if let Some(l) = doc["local_state"].as_str() {
            t.push_str(&format!("  local state {l}\n"));
        }
        let keep = list(&doc["keep"]);
        if !keep.is_empty() {
            t.push_str("and keep (--delete-snapshots deletes them too):\n");
            for k in keep {
                t.push_str(&format!("  {k}\n"));
            }
        }
        self.write(&t)
    }

    /// A finished `destroy`.
    pub fn destroyed(&self, name: &str, t: &Teardown, local: Option<&str>) -> anyhow::Result<()> {
        if self.format == OutputFormat::Json {
            return self.json(&json!({
                "deployment": name,
                "removed": t.removed,
                "kept": t.kept.iter().map(|(r, why)| json!({"resource": r, "reason": why})).collect::<Vec<_>>(),
                "local_state_removed": local,
            }));
        }
        let mut s = String::new();
        if t.removed.is_empty() {
            s.push_str(&format!("nothing of {name} was left to remove\n"));
        }
        for r in &t.removed {
            s.push_str(&format!("removed {r}\n"));
        }
        for (r, why) in &t.kept {
            s.push_str(&format!("kept {r}: {why}\n"));
        }
        if let Some(l) = local {
            s.push_str(&format!("removed local state {l}\n"));
        }
        self.write(&s)
    }

    /// `list`.
    pub fn list(&self, deployments: &[DeploymentSummary]) -> anyhow::Result<()> {
        if self.format == OutputFormat::Json {
            return self.json(&json!({ "deployments": deployments }));
        }
        let ip = |a: Option<std::net::IpAddr>| a.map_or("-".to_owned(), |a| a.to_string());
        let rows = deployments.iter().map(|d| match d.servers.first() {
            Some(sv) => vec![
                d.name.clone(),
                sv.status.to_string(),
                ip(sv.ipv4),
                ip(sv.ipv6),
                sv.id.clone(),
            ],
            None => vec![
                d.name.clone(),
                "no-server".into(),
                "-".into(),
                "-".into(),
                "-".into(),
            ],
        });
        self.write(&table(&["NAME", "STATUS", "IPV4", "IPV6", "SERVER"], rows))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn columns_grow_with_their_longest_cell() {
        let t = super::table(
            &["ID", "NAME"],
            [
                vec!["ami-0123456789abcdef0".to_owned(), "web1".to_owned()],
                vec!["7".to_owned(), "bootstrap-web1-20261207T0300Z".to_owned()],
            ],
        );
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 3, "{t}");
        // Every NAME starts in the same column, after the 21-character AMI id and two spaces.
        let col = "ami-0123456789abcdef0".len() + 2;
        for l in &lines {
            assert!(
                !l[..col].trim().is_empty() && &l[col - 2..col] == "  ",
                "{t}"
            );
        }
        assert_eq!(&lines[1][col..], "web1");
        assert_eq!(&lines[2][col..], "bootstrap-web1-20261207T0300Z");
    }
}
