//! The fake's state, its routing table, and actions: every asynchronous change (a server made
//! running, a firewall applied, an image made available) is an [`Effect`] that happens when its
//! action finishes, or is undone when the action is made to fail.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::FakeConfig;
use super::api::{Item, Reply, Req, Resp, error_details, list, not_allowed, not_found};
use super::catalog::{
    LOCATIONS, SERVER_TYPES, SYSTEM_IMAGES, ServerType, location_json, server_type_json,
};
use super::labels::{Labels, rfc3339};
use crate::clock::Timer;
use crate::ratelimit::unix_now;

/// Resource kinds, each with its own id range, so an id of the wrong kind is a 404.
#[derive(Clone, Copy)]
pub(crate) enum Kind {
    SshKey,
    Firewall,
    Server,
    Image,
    Action,
}

pub(crate) struct SshKey {
    pub id: u64,
    pub name: String,
    pub fingerprint: String,
    pub public_key: String,
    pub labels: Labels,
    pub created: u64,
}

/// What a firewall is applied to.
#[derive(Clone, PartialEq, Eq, Debug)]
pub(crate) enum Target {
    Server(u64),
    LabelSelector(String),
}

pub(crate) struct Firewall {
    pub id: u64,
    pub name: String,
    pub labels: Labels,
    pub rules: Vec<Value>,
    pub applied_to: Vec<Target>,
    pub created: u64,
}

pub(crate) struct Server {
    pub id: u64,
    /// 1, 2, ...: the server's addresses are made from it.
    pub seq: u64,
    pub name: String,
    pub status: &'static str,
    /// The status a failed `delete_server` returns it to.
    pub status_before: &'static str,
    pub created: u64,
    pub labels: Labels,
    pub server_type: &'static ServerType,
    pub image: Value,
    pub location: usize,
    pub ipv4: bool,
    pub ipv6: bool,
    pub user_data: Option<String>,
    pub ssh_keys: Vec<u64>,
    /// Explicitly applied firewalls: (firewall id, applied (true) or pending (false)).
    pub firewalls: Vec<(u64, bool)>,
    pub backup_window: Option<String>,
    pub start_after_create: bool,
}

pub(crate) struct Image {
    pub id: u64,
    pub kind: &'static str,
    pub status: &'static str,
    pub name: Option<String>,
    pub description: String,
    pub created: u64,
    pub created_from: Option<(u64, String)>,
    pub bound_to: Option<u64>,
    pub os_flavor: &'static str,
    pub os_version: Option<String>,
    pub labels: Labels,
    pub disk_size: f64,
    pub image_size: Option<f64>,
    pub architecture: &'static str,
}

/// What finishing an action does to the state.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Effect {
    None,
    CreateServer(u64),
    DeleteServer(u64),
    ApplyFirewall { fw: u64, server: Option<u64> },
    RemoveFirewall { fw: u64, server: u64 },
    CreateImage(u64),
    Power { server: u64, on: bool },
}

pub(crate) struct Action {
    pub id: u64,
    pub command: String,
    pub status: &'static str,
    pub progress: u32,
    pub started: u64,
    pub finished: Option<u64>,
    pub resources: Vec<(u64, &'static str)>,
    pub error: Option<(String, String)>,
    pub timer: Timer,
    pub effect: Effect,
    /// Set when the action is to fail: its error `(code, message)`.
    pub fail_with: Option<(String, String)>,
}

pub(crate) struct State {
    pub config: FakeConfig,
    pub ssh_keys: BTreeMap<u64, SshKey>,
    pub firewalls: BTreeMap<u64, Firewall>,
    pub servers: BTreeMap<u64, Server>,
    pub images: BTreeMap<u64, Image>,
    pub actions: BTreeMap<u64, Action>,
    ids: [u64; 5],
    server_seq: u64,
    /// Pending action failures: (command, code, message).
    pub action_failures: Vec<(String, String, String)>,
}

impl State {
    pub fn new(config: FakeConfig) -> State {
        let images = SYSTEM_IMAGES
            .iter()
            .map(|&(id, name, flavor, version, desc)| {
                let image = Image {
                    id,
                    kind: "system",
                    status: "available",
                    name: Some(name.to_owned()),
                    description: desc.to_owned(),
                    created: 1_714_000_000,
                    created_from: None,
                    bound_to: None,
                    os_flavor: flavor,
                    os_version: Some(version.to_owned()),
                    labels: Labels::new(),
                    disk_size: 5.0,
                    image_size: None,
                    architecture: "x86",
                };
                (id, image)
            })
            .collect();
        State {
            config,
            ssh_keys: BTreeMap::new(),
            firewalls: BTreeMap::new(),
            servers: BTreeMap::new(),
            images,
            actions: BTreeMap::new(),
            ids: [100_000, 200_000, 300_000, 400_000, 900_000],
            server_seq: 0,
            action_failures: vec![],
        }
    }

    pub fn now(&self) -> u64 {
        unix_now()
    }

    pub fn next_id(&mut self, kind: Kind) -> u64 {
        let i = kind as usize;
        self.ids[i] += 1;
        self.ids[i]
    }

    pub fn next_server_seq(&mut self) -> u64 {
        self.server_seq += 1;
        self.server_seq
    }

    /// Whether the firewall or server `id` exists (`res` is the path segment).
    fn has(&self, res: &str, id: u64) -> bool {
        match res {
            "firewalls" => self.firewalls.contains_key(&id),
            _ => self.servers.contains_key(&id),
        }
    }

    /// Answers one request (the kit has counted it, faulted it and rate-limited it).
    pub fn handle(&mut self, req: &Req) -> Reply {
        let token_ok = req
            .bearer()
            .is_some_and(|t| self.config.token.as_deref().is_none_or(|want| want == t));
        if !token_ok {
            return Err(super::api::error(
                401,
                "unauthorized",
                "unable to authenticate",
            ));
        }
        self.settle();
        self.route(req)
    }

    fn route(&mut self, req: &Req) -> Reply {
        let Some(rest) = req.path.strip_prefix("/v1") else {
            return Err(not_found("path"));
        };
        let segs: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
        let m = req.method.as_str();
        let id = |s: &str| s.parse::<u64>().ok();
        let found = |what: &str, r: Option<Value>| match r {
            Some(v) => Ok(Resp::json(200, json!({ what: v }))),
            None => Err(not_found(what)),
        };
        match (m, segs.as_slice()) {
            ("GET", ["ssh_keys"]) => self.list_ssh_keys(req),
            ("POST", ["ssh_keys"]) => self.create_ssh_key(req),
            (_, ["ssh_keys", i]) => match (m, id(i)) {
                (_, None) => Err(not_found("ssh_key")),
                ("GET", Some(i)) => found("ssh_key", self.ssh_keys.get(&i).map(SshKey::json)),
                ("PUT", Some(i)) => self.update_ssh_key(req, i),
                ("DELETE", Some(i)) => match self.ssh_keys.remove(&i) {
                    Some(_) => Ok(Resp::empty(204)),
                    None => Err(not_found("ssh_key")),
                },
                _ => Err(not_allowed()),
            },
            // The action routes firewalls and servers share.
            ("GET", [res @ ("firewalls" | "servers"), "actions"]) => {
                self.list_actions(req, Some(singular(res)), None)
            }
            ("GET", [res @ ("firewalls" | "servers"), "actions", a]) => {
                self.get_action(id(a), Some(singular(res)), None)
            }
            ("GET", [res @ ("firewalls" | "servers"), i, "actions"]) => match id(i) {
                Some(i) if self.has(res, i) => self.list_actions(req, Some(singular(res)), Some(i)),
                _ => Err(not_found(singular(res))),
            },
            (_, [res @ ("firewalls" | "servers"), i, "actions", a]) => match (m, id(i), id(a)) {
                ("GET", Some(i), Some(a)) => self.get_action(Some(a), Some(singular(res)), Some(i)),
                ("POST", Some(i), None) if *res == "firewalls" => self.firewall_action(req, i, a),
                ("POST", Some(i), None) => self.server_action(req, i, a),
                _ => Err(not_allowed()),
            },
            ("GET", ["firewalls"]) => self.list_firewalls(req),
            ("POST", ["firewalls"]) => self.create_firewall(req),
            (_, ["firewalls", i]) => match (m, id(i)) {
                (_, None) => Err(not_found("firewall")),
                ("GET", Some(i)) => {
                    self.observe_resource("firewall", i);
                    found(
                        "firewall",
                        self.firewalls.get(&i).map(|f| self.firewall_json(f)),
                    )
                }
                ("PUT", Some(i)) => self.update_firewall(req, i),
                ("DELETE", Some(i)) => self.delete_firewall(i),
                _ => Err(not_allowed()),
            },
            ("GET", ["servers"]) => self.list_servers(req),
            ("POST", ["servers"]) => self.create_server(req),
            (_, ["servers", i]) => match (m, id(i)) {
                (_, None) => Err(not_found("server")),
                ("GET", Some(i)) => {
                    self.observe_resource("server", i);
                    found("server", self.servers.get(&i).map(|s| self.server_json(s)))
                }
                ("PUT", Some(i)) => self.update_server(req, i),
                ("DELETE", Some(i)) => self.delete_server(i),
                _ => Err(not_allowed()),
            },
            ("GET", ["images"]) => self.list_images(req),
            (_, ["images", i]) => match (m, id(i)) {
                (_, None) => Err(not_found("image")),
                ("GET", Some(i)) => {
                    self.observe_resource("image", i);
                    found("image", self.images.get(&i).map(Image::json))
                }
                ("PUT", Some(i)) => self.update_image(req, i),
                ("DELETE", Some(i)) => self.delete_image(i),
                _ => Err(not_allowed()),
            },
            ("GET", ["server_types"]) => {
                let items = SERVER_TYPES
                    .iter()
                    .map(|t| catalog_item(t.id, t.name, server_type_json(t)))
                    .collect();
                list(req, &req.query, "server_types", items)
            }
            ("GET", ["locations"]) => {
                let items = LOCATIONS
                    .iter()
                    .map(|l| catalog_item(l.0, l.1, location_json(l)))
                    .collect();
                list(req, &req.query, "locations", items)
            }
            ("GET", ["actions"]) => {
                let ids = req.ids();
                if ids.is_empty() {
                    return Err(error_details(
                        410,
                        "deprecated_api_endpoint",
                        "API functionality was removed",
                        json!({"announcement": "https://docs.hetzner.cloud/changelog#2023-07-20-actions-list-endpoint-is-deprecated"}),
                    ));
                }
                let mut out = vec![];
                for i in ids {
                    self.observe_action(i);
                    out.extend(self.actions.get(&i).map(Action::json));
                }
                Ok(Resp::json(200, json!({"actions": out})))
            }
            ("GET", ["actions", a]) => self.get_action(id(a), None, None),
            (
                _,
                [] | ["ssh_keys" | "firewalls" | "servers" | "images" | "actions"] | ["actions", _],
            ) => Err(not_allowed()),
            _ => Err(not_found("path")),
        }
    }

    // ----- actions -----

    /// Starts an action; with an instant pace it is finished (with its effect) at once.
    pub fn new_action(
        &mut self,
        command: &str,
        resources: Vec<(u64, &'static str)>,
        effect: Effect,
    ) -> u64 {
        let id = self.next_id(Kind::Action);
        let fail_with = self
            .action_failures
            .iter()
            .position(|(c, _, _)| c == command)
            .map(|p| {
                let (_, code, msg) = self.action_failures.remove(p);
                (code, msg)
            });
        let timer = Timer::start(self.config.pace);
        let instant = timer.instant();
        self.actions.insert(
            id,
            Action {
                id,
                command: command.to_owned(),
                status: "running",
                progress: 0,
                started: self.now(),
                finished: None,
                resources,
                error: None,
                timer,
                effect,
                fail_with,
            },
        );
        if instant {
            self.finish_action(id);
        }
        id
    }

    /// The rendered actions `ids`.
    pub fn actions_json(&self, ids: &[u64]) -> Vec<Value> {
        ids.iter()
            .filter_map(|a| self.actions.get(a))
            .map(Action::json)
            .collect()
    }

    /// One look at an action: it finishes once its clock says so.
    pub fn observe_action(&mut self, id: u64) {
        let Some(a) = self.actions.get_mut(&id).filter(|a| a.status == "running") else {
            return;
        };
        if a.timer.observe() {
            self.finish_action(id);
        } else {
            a.progress = a.timer.progress();
        }
    }

    /// A GET of a resource is a look at each running action on it.
    fn observe_resource(&mut self, kind: &str, rid: u64) {
        let ids: Vec<u64> = self
            .actions
            .values()
            .filter(|a| a.status == "running" && a.resources.contains(&(rid, kind)))
            .map(|a| a.id)
            .collect();
        for id in ids {
            self.observe_action(id);
        }
    }

    /// Finishes the actions whose wall time is up (none when actions count polls).
    fn settle(&mut self) {
        let due: Vec<u64> = self
            .actions
            .values()
            .filter(|a| a.status == "running" && a.timer.due())
            .map(|a| a.id)
            .collect();
        for id in due {
            self.finish_action(id);
        }
    }

    /// Finishes a running action: `success` with its effect, or `error` with its effect undone.
    pub fn finish_action(&mut self, id: u64) {
        let now = self.now();
        let Some(a) = self.actions.get_mut(&id).filter(|a| a.status == "running") else {
            return;
        };
        a.finished = Some(now);
        let effect = a.effect;
        if let Some(err) = a.fail_with.take() {
            a.status = "error";
            a.error = Some(err);
            self.undo_effect(effect);
        } else {
            a.status = "success";
            a.progress = 100;
            self.apply_effect(effect);
        }
    }

    fn apply_effect(&mut self, effect: Effect) {
        match effect {
            Effect::None | Effect::ApplyFirewall { server: None, .. } => {}
            Effect::CreateServer(sid) => {
                if let Some(s) = self
                    .servers
                    .get_mut(&sid)
                    .filter(|s| s.status == "initializing")
                {
                    s.status = if s.start_after_create {
                        "running"
                    } else {
                        "off"
                    };
                }
            }
            Effect::DeleteServer(sid) => {
                self.servers.remove(&sid);
                for f in self.firewalls.values_mut() {
                    f.applied_to.retain(|t| *t != Target::Server(sid));
                }
                self.images
                    .retain(|_, i| !(i.kind == "backup" && i.bound_to == Some(sid)));
            }
            Effect::ApplyFirewall {
                fw,
                server: Some(sid),
            } => {
                if let Some(s) = self.servers.get_mut(&sid) {
                    for e in s.firewalls.iter_mut().filter(|(f, _)| *f == fw) {
                        e.1 = true;
                    }
                }
            }
            Effect::RemoveFirewall { fw, server } => self.detach_firewall(fw, server),
            Effect::CreateImage(iid) => {
                if let Some(i) = self.images.get_mut(&iid) {
                    i.status = "available";
                    i.image_size = Some(1.2);
                }
            }
            Effect::Power { server, on } => {
                if let Some(s) = self
                    .servers
                    .get_mut(&server)
                    .filter(|s| s.status != "deleting")
                {
                    s.status = if on { "running" } else { "off" };
                }
            }
        }
    }

    fn undo_effect(&mut self, effect: Effect) {
        match effect {
            // The server stays, switched off: the client has to clean it up.
            Effect::CreateServer(sid) => {
                if let Some(s) = self
                    .servers
                    .get_mut(&sid)
                    .filter(|s| s.status == "initializing")
                {
                    s.status = "off";
                }
            }
            Effect::DeleteServer(sid) => {
                if let Some(s) = self.servers.get_mut(&sid) {
                    s.status = s.status_before;
                }
            }
            Effect::ApplyFirewall {
                fw,
                server: Some(sid),
            } => self.detach_firewall(fw, sid),
            Effect::CreateImage(iid) => {
                self.images.remove(&iid);
            }
            Effect::None
            | Effect::ApplyFirewall { server: None, .. }
            | Effect::RemoveFirewall { .. }
            | Effect::Power { .. } => {}
        }
    }

    fn get_action(&mut self, id: Option<u64>, kind: Option<&str>, rid: Option<u64>) -> Reply {
        let id = id
            .filter(|i| self.actions.get(i).is_some_and(|a| a.concerns(kind, rid)))
            .ok_or_else(|| not_found("action"))?;
        self.observe_action(id);
        let a = self.actions.get(&id).map(Action::json);
        Ok(Resp::json(200, json!({"action": a})))
    }

    fn list_actions(&mut self, req: &Req, kind: Option<&str>, rid: Option<u64>) -> Reply {
        let ids = req.ids();
        let statuses = req.q_all("status");
        let selected: Vec<u64> = self
            .actions
            .values()
            .filter(|a| (ids.is_empty() || ids.contains(&a.id)) && a.concerns(kind, rid))
            .map(|a| a.id)
            .collect();
        for id in &selected {
            self.observe_action(*id);
        }
        let items = selected
            .iter()
            .filter_map(|id| self.actions.get(id))
            .filter(|a| statuses.is_empty() || statuses.contains(&a.status))
            .map(|a| Item {
                id: a.id,
                name: None,
                created: a.started,
                labels: Labels::new(),
                json: a.json(),
            })
            .collect();
        // `name` and `label_selector` do not filter action lists, and sorting by name is not
        // offered; the rest of the query applies.
        let query: Vec<(String, String)> = req
            .query
            .iter()
            .filter(|(k, v)| {
                k != "name" && k != "label_selector" && !(k == "sort" && v.starts_with("name"))
            })
            .cloned()
            .collect();
        list(req, &query, "actions", items)
    }
}

impl Action {
    /// Whether the action is on a resource of `kind` (and with id `rid`), or `kind` is any.
    fn concerns(&self, kind: Option<&str>, rid: Option<u64>) -> bool {
        match kind {
            None => true,
            Some(k) => self
                .resources
                .iter()
                .any(|(i, t)| *t == k && rid.is_none_or(|r| r == *i)),
        }
    }

    pub fn json(&self) -> Value {
        json!({
            "id": self.id,
            "command": self.command,
            "status": self.status,
            "progress": self.progress,
            "started": rfc3339(self.started),
            "finished": self.finished.map(rfc3339),
            "resources": self.resources.iter().map(|(id, t)| json!({"id": id, "type": t})).collect::<Vec<_>>(),
            "error": self.error.as_ref().map(|(c, m)| json!({"code": c, "message": m})),
        })
    }
}

/// `firewalls` -> `firewall`: the resource type in errors and action resources.
fn singular(res: &str) -> &'static str {
    match res {
        "firewalls" => "firewall",
        _ => "server",
    }
}

fn catalog_item(id: u64, name: &str, json: Value) -> Item {
    Item {
        id,
        name: Some(name.to_owned()),
        created: 0,
        labels: Labels::new(),
        json,
    }
}
