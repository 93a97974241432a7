//! `/firewalls`: list (`name`, `label_selector`), create with `rules` and `apply_to`
//! (`apply_firewall` actions), get, update, delete (422 `resource_in_use` while applied), and the
//! actions `apply_to_resources`, `remove_from_resources` and `set_rules`.

use serde_json::{Map, Value, json};

use super::api::{
    Item, Reply, Req, Resp, error, invalid_input, labels, list, not_found, opt_labels, opt_str,
    req_str, uniqueness,
};
use super::labels::{matches_text, parse_selector, rfc3339, valid_cidr};
use super::state::{Effect, Firewall, Kind, State, Target};

impl State {
    pub(crate) fn list_firewalls(&self, req: &Req) -> Reply {
        let items = self
            .firewalls
            .values()
            .map(|f| Item {
                id: f.id,
                name: Some(f.name.clone()),
                created: f.created,
                labels: f.labels.clone(),
                json: self.firewall_json(f),
            })
            .collect();
        list(req, &req.query, "firewalls", items)
    }

    /// `apply_to` targets; a missing server is `missing` (status and code differ by endpoint).
    fn parse_targets(
        &self,
        v: Option<&Value>,
        field: &str,
        missing: (u16, &str),
    ) -> Result<Vec<Target>, Resp> {
        let Some(v) = v else { return Ok(vec![]) };
        let arr = v
            .as_array()
            .ok_or_else(|| invalid_input(field, "must be an array"))?;
        let mut out = vec![];
        for t in arr {
            let target = match t.get("type").and_then(Value::as_str) {
                Some("server") => {
                    let sid = t
                        .pointer("/server/id")
                        .and_then(Value::as_u64)
                        .ok_or_else(|| {
                            invalid_input(field, "server.id is required for type server")
                        })?;
                    if !self.servers.contains_key(&sid) {
                        return Err(error(
                            missing.0,
                            missing.1,
                            &format!("server {sid} not found"),
                        ));
                    }
                    if out.contains(&Target::Server(sid)) {
                        let msg = "the server was applied more than once";
                        return Err(error(422, "server_already_added", msg));
                    }
                    Target::Server(sid)
                }
                Some("label_selector") => {
                    let msg = "label_selector.selector is required for type label_selector";
                    let sel = t
                        .pointer("/label_selector/selector")
                        .and_then(Value::as_str)
                        .ok_or_else(|| invalid_input(field, msg))?;
                    parse_selector(sel).map_err(|e| invalid_input(field, &e))?;
                    Target::LabelSelector(sel.to_owned())
                }
                _ => {
                    return Err(invalid_input(
                        field,
                        "type must be server or label_selector",
                    ));
                }
            };
            out.push(target);
        }
        Ok(out)
    }

    pub(crate) fn create_firewall(&mut self, req: &Req) -> Reply {
        let body = req.object()?;
        let name = req_str(&body, "name")?;
        let labels = labels(&body)?;
        let rules = parse_rules(body.get("rules"))?;
        let missing = (422, "firewall_resource_not_found");
        let targets = self.parse_targets(body.get("apply_to"), "apply_to", missing)?;
        if self.firewalls.values().any(|f| f.name == name) {
            return Err(uniqueness(
                "name",
                "firewall with the same name already exists",
            ));
        }
        let id = self.insert_firewall(&name, labels, rules);
        let actions: Vec<u64> = targets
            .into_iter()
            .map(|t| self.apply_target(id, t))
            .collect();
        let fw = self.firewalls.get(&id).map(|f| self.firewall_json(f));
        let actions = self.actions_json(&actions);
        Ok(Resp::json(201, json!({"firewall": fw, "actions": actions})))
    }

    /// Stores a firewall applied to nothing; returns its id.
    pub(crate) fn insert_firewall(
        &mut self,
        name: &str,
        labels: super::Labels,
        rules: Vec<Value>,
    ) -> u64 {
        let id = self.next_id(Kind::Firewall);
        let created = self.now();
        let firewall = Firewall {
            id,
            name: name.to_owned(),
            labels,
            rules,
            applied_to: vec![],
            created,
        };
        self.firewalls.insert(id, firewall);
        id
    }

    /// Applies a firewall to a target (pending until its action finishes); returns the action id.
    pub(crate) fn apply_target(&mut self, fw: u64, t: Target) -> u64 {
        match t {
            Target::Server(sid) => {
                self.attach_firewall(fw, sid, false);
                let effect = Effect::ApplyFirewall {
                    fw,
                    server: Some(sid),
                };
                self.new_action(
                    "apply_firewall",
                    vec![(sid, "server"), (fw, "firewall")],
                    effect,
                )
            }
            Target::LabelSelector(sel) => {
                if let Some(f) = self.firewalls.get_mut(&fw) {
                    f.applied_to.push(Target::LabelSelector(sel));
                }
                let effect = Effect::ApplyFirewall { fw, server: None };
                self.new_action("apply_firewall", vec![(fw, "firewall")], effect)
            }
        }
    }

    /// Records the firewall on the server, pending or already applied.
    pub(crate) fn attach_firewall(&mut self, fw: u64, sid: u64, applied: bool) {
        if let Some(f) = self.firewalls.get_mut(&fw)
            && !f.applied_to.contains(&Target::Server(sid))
        {
            f.applied_to.push(Target::Server(sid));
        }
        if let Some(s) = self.servers.get_mut(&sid) {
            match s.firewalls.iter_mut().find(|(f, _)| *f == fw) {
                Some(e) => e.1 = e.1 || applied,
                None => s.firewalls.push((fw, applied)),
            }
        }
    }

    pub(crate) fn detach_firewall(&mut self, fw: u64, sid: u64) {
        if let Some(f) = self.firewalls.get_mut(&fw) {
            f.applied_to.retain(|t| *t != Target::Server(sid));
        }
        if let Some(s) = self.servers.get_mut(&sid) {
            s.firewalls.retain(|(f, _)| *f != fw);
        }
    }

    pub(crate) fn update_firewall(&mut self, req: &Req, id: u64) -> Reply {
        if !self.firewalls.contains_key(&id) {
            return Err(not_found("firewall"));
        }
        let body = req.object()?;
        let name = opt_str(&body, "name")?;
        if let Some(n) = &name
            && self.firewalls.values().any(|f| &f.name == n && f.id != id)
        {
            return Err(uniqueness(
                "name",
                "firewall with the same name already exists",
            ));
        }
        let labels = opt_labels(&body)?;
        let f = self
            .firewalls
            .get_mut(&id)
            .ok_or_else(|| not_found("firewall"))?;
        if let Some(n) = name {
            f.name = n;
        }
        if let Some(l) = labels {
            f.labels = l;
        }
        let out = self.firewalls.get(&id).map(|f| self.firewall_json(f));
        Ok(Resp::json(200, json!({"firewall": out})))
    }

    fn firewall_in_use(&self, f: &Firewall) -> bool {
        f.applied_to.iter().any(|t| match t {
            Target::Server(s) => self.servers.contains_key(s),
            Target::LabelSelector(sel) => {
                self.servers.values().any(|s| matches_text(sel, &s.labels))
            }
        })
    }

    pub(crate) fn delete_firewall(&mut self, id: u64) -> Reply {
        let f = self
            .firewalls
            .get(&id)
            .ok_or_else(|| not_found("firewall"))?;
        if self.firewall_in_use(f) {
            let msg = "firewall is still applied to a resource";
            return Err(error(422, "resource_in_use", msg));
        }
        self.firewalls.remove(&id);
        Ok(Resp::empty(204))
    }

    pub(crate) fn firewall_action(&mut self, req: &Req, id: u64, name: &str) -> Reply {
        let applied = match self.firewalls.get(&id) {
            Some(f) => f.applied_to.clone(),
            None => return Err(not_found("firewall")),
        };
        let body = req.object()?;
        let not_applied = || {
            error(
                422,
                "firewall_not_applied",
                "firewall is not applied to resource",
            )
        };
        let ids = match name {
            "apply_to_resources" => {
                if body.get("apply_to").is_none() {
                    return Err(invalid_input("apply_to", "is required"));
                }
                let missing = (404, "firewall_resource_not_found");
                let targets = self.parse_targets(body.get("apply_to"), "apply_to", missing)?;
                if targets.iter().any(|t| applied.contains(t)) {
                    let msg = "firewall is already applied to resource";
                    return Err(error(422, "firewall_already_applied", msg));
                }
                targets
                    .into_iter()
                    .map(|t| self.apply_target(id, t))
                    .collect()
            }
            "remove_from_resources" => {
                let arr = body
                    .get("remove_from")
                    .and_then(Value::as_array)
                    .ok_or_else(|| invalid_input("remove_from", "is required"))?;
                let mut ids = vec![];
                for t in arr {
                    let (target, resources, effect) = match t.get("type").and_then(Value::as_str) {
                        Some("server") => {
                            let sid = t.pointer("/server/id").and_then(Value::as_u64).ok_or_else(
                                || invalid_input("remove_from", "server.id is required"),
                            )?;
                            let effect = Effect::RemoveFirewall {
                                fw: id,
                                server: sid,
                            };
                            (
                                Target::Server(sid),
                                vec![(sid, "server"), (id, "firewall")],
                                effect,
                            )
                        }
                        Some("label_selector") => {
                            let sel = t
                                .pointer("/label_selector/selector")
                                .and_then(Value::as_str);
                            let target = Target::LabelSelector(sel.unwrap_or("").to_owned());
                            (target, vec![(id, "firewall")], Effect::None)
                        }
                        _ => {
                            let msg = "type must be server or label_selector";
                            return Err(invalid_input("remove_from", msg));
                        }
                    };
                    if !self
                        .firewalls
                        .get(&id)
                        .is_some_and(|f| f.applied_to.contains(&target))
                    {
                        return Err(not_applied());
                    }
                    // A selector is gone at once; a server when the action finishes.
                    if let (Target::LabelSelector(_), Some(f)) =
                        (&target, self.firewalls.get_mut(&id))
                    {
                        f.applied_to.retain(|x| *x != target);
                    }
                    ids.push(self.new_action("remove_firewall", resources, effect));
                }
                ids
            }
            "set_rules" => {
                if body.get("rules").is_none() {
                    return Err(invalid_input("rules", "is required"));
                }
                let rules = parse_rules(body.get("rules"))?;
                if let Some(f) = self.firewalls.get_mut(&id) {
                    f.rules = rules;
                }
                let mut ids = vec![self.new_action(
                    "set_firewall_rules",
                    vec![(id, "firewall")],
                    Effect::None,
                )];
                for t in &applied {
                    if let Target::Server(s) = t {
                        let resources = vec![(id, "firewall"), (*s, "server")];
                        ids.push(self.new_action("apply_firewall", resources, Effect::None));
                    }
                }
                ids
            }
            _ => return Err(not_found("action")),
        };
        Ok(Resp::json(201, json!({"actions": self.actions_json(&ids)})))
    }

    pub(crate) fn firewall_json(&self, f: &Firewall) -> Value {
        let applied: Vec<Value> = f
            .applied_to
            .iter()
            .map(|t| match t {
                Target::Server(s) => json!({"type": "server", "server": {"id": s}}),
                Target::LabelSelector(sel) => {
                    let res: Vec<Value> = self
                        .servers
                        .values()
                        .filter(|s| matches_text(sel, &s.labels))
                        .map(|s| json!({"type": "server", "server": {"id": s.id}}))
                        .collect();
                    json!({"type": "label_selector", "label_selector": {"selector": sel}, "applied_to_resources": res})
                }
            })
            .collect();
        json!({
            "id": f.id, "name": f.name, "labels": f.labels, "created": rfc3339(f.created),
            "rules": f.rules, "applied_to": applied,
        })
    }
}

/// Checks firewall rules as the API does and renders them as it stores them.
fn parse_rules(v: Option<&Value>) -> Result<Vec<Value>, Resp> {
    let Some(v) = v else { return Ok(vec![]) };
    let arr = v
        .as_array()
        .ok_or_else(|| invalid_input("rules", "must be an array"))?;
    if arr.len() > 50 {
        return Err(invalid_input("rules", "must not have more than 50 entries"));
    }
    arr.iter()
        .enumerate()
        .map(|(i, r)| {
            let r = r
                .as_object()
                .ok_or_else(|| invalid_input(&format!("rules[{i}]"), "must be an object"))?;
            parse_rule(&format!("rules[{i}]"), r)
        })
        .collect()
}

fn parse_rule(field: &str, r: &Map<String, Value>) -> Result<Value, Resp> {
    let bad = |sub: &str, msg: &str| invalid_input(&format!("{field}.{sub}"), msg);
    let direction = match r.get("direction").and_then(Value::as_str) {
        Some(d @ ("in" | "out")) => d,
        _ => return Err(bad("direction", "must be 'in' or 'out'")),
    };
    let protocol = match r.get("protocol").and_then(Value::as_str) {
        Some(p @ ("tcp" | "udp" | "icmp" | "esp" | "gre")) => p,
        _ => return Err(bad("protocol", "must be one of tcp, udp, icmp, esp, gre")),
    };
    let port = match r.get("port") {
        None | Some(Value::Null) => None,
        Some(Value::String(p)) => Some(p.clone()),
        Some(_) => return Err(bad("port", "must be a string")),
    };
    match (&port, matches!(protocol, "tcp" | "udp")) {
        (None, true) => return Err(bad("port", "is required for tcp and udp")),
        (Some(p), true) => {
            let ok = |s: &str| s.parse::<u16>().is_ok_and(|n| n >= 1);
            if !(p == "any" || ok(p) || p.split_once('-').is_some_and(|(a, b)| ok(a) && ok(b))) {
                return Err(bad("port", "must be a port, a range a-b, or any"));
            }
        }
        (Some(_), false) => return Err(bad("port", "is only allowed for tcp and udp")),
        (None, false) => {}
    }
    let ips = |key: &str| -> Result<Vec<String>, Resp> {
        match r.get(key) {
            None | Some(Value::Null) => Ok(vec![]),
            Some(Value::Array(a)) => a
                .iter()
                .map(|x| match x.as_str() {
                    Some(s) if valid_cidr(s) => Ok(s.to_owned()),
                    _ => Err(bad(key, &format!("invalid CIDR {x}"))),
                })
                .collect(),
            Some(_) => Err(bad(key, "must be an array")),
        }
    };
    let source_ips = ips("source_ips")?;
    let destination_ips = ips("destination_ips")?;
    if direction == "in" && source_ips.is_empty() {
        return Err(bad("source_ips", "is required for direction in"));
    }
    if direction == "out" && destination_ips.is_empty() {
        return Err(bad("destination_ips", "is required for direction out"));
    }
    let description = match r.get("description") {
        None | Some(Value::Null) => Value::Null,
        Some(Value::String(s)) if s.len() <= 255 => json!(s),
        Some(_) => {
            return Err(bad(
                "description",
                "must be a string of at most 255 characters",
            ));
        }
    };
    Ok(json!({
        "description": description, "direction": direction, "source_ips": source_ips,
        "destination_ips": destination_ips, "protocol": protocol, "port": port,
    }))
}
