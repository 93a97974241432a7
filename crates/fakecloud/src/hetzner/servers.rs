//! `/servers`: list (`name`, `label_selector`, `status`), create (`initializing` until its
//! `create_server` action finishes; `user_data` over the limit is 422 `invalid_input`; firewalls
//! from the body are applied), get, update, delete (200 `{action}`; gone when `delete_server`
//! finishes), and the actions `create_image`, `enable_backup`, `disable_backup`, `poweron`,
//! `poweroff`, `shutdown`, `reboot` and `reset`.

use serde_json::{Value, json};

use super::api::{
    Item, Reply, Req, Resp, error, invalid_input, labels, list, not_found, opt_labels, opt_str,
    req_str, uniqueness,
};
use super::catalog::{
    INCLUDED_TRAFFIC, LOCATIONS, SERVER_TYPES, datacenter_json, location_json, server_type_json,
};
use super::labels::{Labels, matches_text, rfc3339, valid_hostname};
use super::state::{Effect, Image, Kind, Server, State, Target};

impl State {
    /// Stores an `initializing` server made of catalog entries (unknown names: the first).
    pub(crate) fn new_server(
        &mut self,
        name: &str,
        server_type: &str,
        image: Value,
        location: &str,
        labels: Labels,
    ) -> u64 {
        let id = self.next_id(Kind::Server);
        let seq = self.next_server_seq();
        let server_type = SERVER_TYPES
            .iter()
            .find(|t| t.name == server_type)
            // The catalog is a non-empty constant.
            .unwrap_or(&SERVER_TYPES[0]);
        let location = LOCATIONS.iter().position(|l| l.1 == location).unwrap_or(0);
        let server = Server {
            id,
            seq,
            name: name.to_owned(),
            status: "initializing",
            status_before: "running",
            created: self.now(),
            labels,
            server_type,
            image,
            location,
            ipv4: true,
            ipv6: true,
            user_data: None,
            ssh_keys: vec![],
            firewalls: vec![],
            backup_window: None,
            start_after_create: true,
        };
        self.servers.insert(id, server);
        id
    }

    pub(crate) fn list_servers(&self, req: &Req) -> Reply {
        let statuses = req.q_all("status");
        let items = self
            .servers
            .values()
            .filter(|s| statuses.is_empty() || statuses.contains(&s.status))
            .map(|s| Item {
                id: s.id,
                name: Some(s.name.clone()),
                created: s.created,
                labels: s.labels.clone(),
                json: self.server_json(s),
            })
            .collect();
        list(req, &req.query, "servers", items)
    }

    pub(crate) fn create_server(&mut self, req: &Req) -> Reply {
        let body = req.object()?;
        let name = req_str(&body, "name")?;
        if !valid_hostname(&name) {
            return Err(invalid_input("name", "must be a valid hostname (RFC 1123)"));
        }
        let server_type = req_str(&body, "server_type")?;
        if !SERVER_TYPES.iter().any(|t| t.name == server_type) {
            return Err(invalid_input("server_type", "server type not found"));
        }
        let image = self
            .find_image(&req_str(&body, "image")?)
            .map(Image::json)
            .ok_or_else(|| invalid_input("image", "image not found"))?;
        let location = match (opt_str(&body, "location")?, opt_str(&body, "datacenter")?) {
            (Some(l), _) => l,
            (None, Some(dc)) => dc.split('-').next().unwrap_or("").to_owned(),
            (None, None) => "fsn1".to_owned(),
        };
        if !LOCATIONS.iter().any(|l| l.1 == location) {
            return Err(invalid_input("location", "location not found"));
        }
        let user_data = opt_str(&body, "user_data")?;
        if user_data
            .as_ref()
            .is_some_and(|u| u.len() > self.config.user_data_limit)
        {
            return Err(invalid_input("user_data", "is too long"));
        }
        let labels = labels(&body)?;
        let start = match body.get("start_after_create") {
            None | Some(Value::Null) => true,
            Some(Value::Bool(b)) => *b,
            Some(_) => return Err(invalid_input("start_after_create", "must be a boolean")),
        };
        let key_ids = self.ssh_key_refs(body.get("ssh_keys"))?;
        let mut fw_ids = vec![];
        for f in array(body.get("firewalls"), "firewalls")? {
            let msg = "each entry needs an integer 'firewall'";
            let fid = f
                .get("firewall")
                .and_then(Value::as_u64)
                .ok_or_else(|| invalid_input("firewalls", msg))?;
            if !self.firewalls.contains_key(&fid) {
                return Err(invalid_input(
                    "firewalls",
                    &format!("firewall {fid} not found"),
                ));
            }
            fw_ids.push(fid);
        }
        let (ipv4, ipv6) = match body.get("public_net") {
            None | Some(Value::Null) => (true, true),
            Some(Value::Object(p)) => {
                let b = |k: &str| p.get(k).and_then(Value::as_bool).unwrap_or(true);
                (b("enable_ipv4"), b("enable_ipv6"))
            }
            Some(_) => return Err(invalid_input("public_net", "must be an object")),
        };
        if self.servers.values().any(|s| s.name == name) {
            return Err(uniqueness("name", "server name is already used"));
        }
        let id = self.new_server(&name, &server_type, image, &location, labels);
        if let Some(s) = self.servers.get_mut(&id) {
            s.user_data = user_data;
            s.ssh_keys = key_ids;
            (s.ipv4, s.ipv6, s.start_after_create) = (ipv4, ipv6, start);
        }
        let create = self.new_action(
            "create_server",
            vec![(id, "server")],
            Effect::CreateServer(id),
        );
        let mut next = vec![];
        if start {
            next.push(self.new_action("start_server", vec![(id, "server")], Effect::None));
        }
        for fw in fw_ids {
            next.push(self.apply_target(fw, Target::Server(id)));
        }
        let server = self.servers.get(&id).map(|s| self.server_json(s));
        Ok(Resp::json(
            201,
            json!({
                "server": server,
                "action": self.actions_json(&[create]).pop(),
                "next_actions": self.actions_json(&next),
                "root_password": Value::Null,
            }),
        ))
    }

    /// `ssh_keys` of a server create: names, ids or id strings of existing keys.
    fn ssh_key_refs(&self, v: Option<&Value>) -> Result<Vec<u64>, Resp> {
        array(v, "ssh_keys")?
            .iter()
            .map(|k| {
                let found = match k {
                    Value::String(s) => self
                        .ssh_keys
                        .values()
                        .find(|x| x.name == *s || x.id.to_string() == *s),
                    Value::Number(n) => n.as_u64().and_then(|n| self.ssh_keys.get(&n)),
                    _ => None,
                };
                found
                    .map(|x| x.id)
                    .ok_or_else(|| invalid_input("ssh_keys", &format!("SSH key {k} not found")))
            })
            .collect()
    }

    /// An available image by id or name.
    fn find_image(&self, r: &str) -> Option<&Image> {
        match r.parse::<u64>() {
            Ok(id) => self.images.get(&id),
            Err(_) => self.images.values().find(|i| i.name.as_deref() == Some(r)),
        }
        .filter(|i| i.status == "available")
    }

    pub(crate) fn update_server(&mut self, req: &Req, id: u64) -> Reply {
        if !self.servers.contains_key(&id) {
            return Err(not_found("server"));
        }
        let body = req.object()?;
        let name = opt_str(&body, "name")?;
        if let Some(n) = &name {
            if !valid_hostname(n) {
                return Err(invalid_input("name", "must be a valid hostname (RFC 1123)"));
            }
            if self.servers.values().any(|s| &s.name == n && s.id != id) {
                return Err(uniqueness("name", "server name is already used"));
            }
        }
        let labels = opt_labels(&body)?;
        let s = self
            .servers
            .get_mut(&id)
            .ok_or_else(|| not_found("server"))?;
        if let Some(n) = name {
            s.name = n;
        }
        if let Some(l) = labels {
            s.labels = l;
        }
        let out = self.servers.get(&id).map(|s| self.server_json(s));
        Ok(Resp::json(200, json!({"server": out})))
    }

    /// The server, unless it is being deleted (423 `locked`).
    fn unlocked(&mut self, id: u64) -> Result<&mut Server, Resp> {
        let s = self
            .servers
            .get_mut(&id)
            .ok_or_else(|| not_found("server"))?;
        if s.status == "deleting" {
            return Err(error(
                423,
                "locked",
                "server is locked: it is being deleted",
            ));
        }
        Ok(s)
    }

    pub(crate) fn delete_server(&mut self, id: u64) -> Reply {
        let s = self.unlocked(id)?;
        s.status_before = s.status;
        s.status = "deleting";
        let a = self.new_action(
            "delete_server",
            vec![(id, "server")],
            Effect::DeleteServer(id),
        );
        Ok(Resp::json(
            200,
            json!({"action": self.actions_json(&[a]).pop()}),
        ))
    }

    pub(crate) fn server_action(&mut self, req: &Req, id: u64, name: &str) -> Reply {
        self.unlocked(id)?;
        let body = req.object_or_empty()?;
        let (command, effect, backup_window) = match name {
            "create_image" => return self.create_image(id, &body),
            "enable_backup" => (
                "enable_backup",
                Effect::None,
                Some(Some("22-02".to_owned())),
            ),
            "disable_backup" => ("disable_backup", Effect::None, Some(None)),
            "poweron" => (
                "start_server",
                Effect::Power {
                    server: id,
                    on: true,
                },
                None,
            ),
            "poweroff" => (
                "stop_server",
                Effect::Power {
                    server: id,
                    on: false,
                },
                None,
            ),
            "shutdown" => (
                "shutdown_server",
                Effect::Power {
                    server: id,
                    on: false,
                },
                None,
            ),
            "reboot" => (
                "reboot_server",
                Effect::Power {
                    server: id,
                    on: true,
                },
                None,
            ),
            "reset" => (
                "reset_server",
                Effect::Power {
                    server: id,
                    on: true,
                },
                None,
            ),
            _ => return Err(not_found("action")),
        };
        if let (Some(window), Some(s)) = (backup_window, self.servers.get_mut(&id)) {
            s.backup_window = window;
        }
        let a = self.new_action(command, vec![(id, "server")], effect);
        Ok(Resp::json(
            201,
            json!({"action": self.actions_json(&[a]).pop()}),
        ))
    }

    pub(crate) fn server_json(&self, s: &Server) -> Value {
        // `location` is an index into the non-empty constant, clamped anyway.
        let loc = &LOCATIONS[s.location.min(LOCATIONS.len() - 1)];
        let mut firewalls: Vec<Value> = s
            .firewalls
            .iter()
            .map(|(f, applied)| json!({"id": f, "status": if *applied { "applied" } else { "pending" }}))
            .collect();
        for f in self.firewalls.values() {
            let by_selector = f
                .applied_to
                .iter()
                .any(|t| matches!(t, Target::LabelSelector(sel) if matches_text(sel, &s.labels)));
            if by_selector && !s.firewalls.iter().any(|(x, _)| *x == f.id) {
                firewalls.push(json!({"id": f.id, "status": "applied"}));
            }
        }
        let octet = (s.seq - 1) % 254 + 1;
        let ipv4 = s.ipv4.then(|| {
            json!({
                "id": 500_000 + s.seq * 2, "ip": format!("203.0.113.{octet}"), "blocked": false,
                "dns_ptr": format!("static.{octet}.113.0.203.clients.your-server.de"),
            })
        });
        let ipv6 = s.ipv6.then(|| {
            json!({"id": 500_001 + s.seq * 2, "ip": format!("2001:db8:0:{:x}::/64", s.seq), "blocked": false, "dns_ptr": []})
        });
        json!({
            "id": s.id, "name": s.name, "status": s.status, "created": rfc3339(s.created),
            "public_net": {"ipv4": ipv4, "ipv6": ipv6, "floating_ips": [], "firewalls": firewalls},
            "private_net": [],
            "server_type": server_type_json(s.server_type),
            "datacenter": datacenter_json(loc),
            "location": location_json(loc),
            "image": s.image, "iso": Value::Null, "rescue_enabled": false, "locked": false,
            "backup_window": s.backup_window, "outgoing_traffic": 0, "ingoing_traffic": 0,
            "included_traffic": INCLUDED_TRAFFIC, "protection": {"delete": false, "rebuild": false},
            "labels": s.labels, "volumes": [], "load_balancers": [],
            "primary_disk_size": s.server_type.disk, "placement_group": Value::Null,
        })
    }
}

/// An optional array field (absent or null: empty).
fn array<'a>(v: Option<&'a Value>, field: &str) -> Result<&'a [Value], Resp> {
    match v {
        None | Some(Value::Null) => Ok(&[]),
        Some(Value::Array(a)) => Ok(a),
        Some(_) => Err(invalid_input(field, "must be an array")),
    }
}
