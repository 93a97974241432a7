//! `/ssh_keys`: list (filters `name`, `fingerprint`, `label_selector`), create (MD5 colon-hex
//! fingerprint of the key blob; `uniqueness_error` on a duplicate name or fingerprint), get,
//! update, delete.

use serde_json::{Value, json};

use super::api::{
    Item, Reply, Req, Resp, invalid_input, labels, list, not_found, opt_labels, opt_str, req_str,
    uniqueness,
};
use super::labels::{md5_fingerprint, rfc3339};
use super::state::{Kind, SshKey, State};

impl SshKey {
    pub(crate) fn json(&self) -> Value {
        json!({
            "id": self.id, "name": self.name, "fingerprint": self.fingerprint,
            "public_key": self.public_key, "labels": self.labels, "created": rfc3339(self.created),
        })
    }
}

impl State {
    pub(crate) fn list_ssh_keys(&self, req: &Req) -> Reply {
        let fp = req.q("fingerprint");
        let items = self
            .ssh_keys
            .values()
            .filter(|k| fp.is_none_or(|f| f == k.fingerprint))
            .map(|k| Item {
                id: k.id,
                name: Some(k.name.clone()),
                created: k.created,
                labels: k.labels.clone(),
                json: k.json(),
            })
            .collect();
        list(req, &req.query, "ssh_keys", items)
    }

    pub(crate) fn create_ssh_key(&mut self, req: &Req) -> Reply {
        let body = req.object()?;
        let name = req_str(&body, "name")?;
        let public_key = req_str(&body, "public_key")?;
        let labels = labels(&body)?;
        let fingerprint =
            md5_fingerprint(&public_key).map_err(|e| invalid_input("public_key", &e))?;
        if self.ssh_keys.values().any(|k| k.name == name) {
            return Err(uniqueness(
                "name",
                "SSH key with the same name already exists",
            ));
        }
        if self.ssh_keys.values().any(|k| k.fingerprint == fingerprint) {
            let msg = "SSH key with the same fingerprint already exists";
            return Err(uniqueness("public_key", msg));
        }
        let id = self.insert_ssh_key(name, fingerprint, &public_key, labels);
        let key = self.ssh_keys.get(&id).map(SshKey::json);
        Ok(Resp::json(201, json!({"ssh_key": key})))
    }

    /// Stores a key whose fingerprint is known; returns its id.
    pub(crate) fn insert_ssh_key(
        &mut self,
        name: String,
        fingerprint: String,
        public_key: &str,
        labels: super::Labels,
    ) -> u64 {
        let id = self.next_id(Kind::SshKey);
        let key = SshKey {
            id,
            name,
            fingerprint,
            public_key: public_key.trim().to_owned(),
            labels,
            created: self.now(),
        };
        self.ssh_keys.insert(id, key);
        id
    }

    pub(crate) fn update_ssh_key(&mut self, req: &Req, id: u64) -> Reply {
        if !self.ssh_keys.contains_key(&id) {
            return Err(not_found("ssh_key"));
        }
        let body = req.object()?;
        let name = opt_str(&body, "name")?;
        if let Some(n) = &name
            && self.ssh_keys.values().any(|k| &k.name == n && k.id != id)
        {
            return Err(uniqueness(
                "name",
                "SSH key with the same name already exists",
            ));
        }
        let labels = opt_labels(&body)?;
        let k = self
            .ssh_keys
            .get_mut(&id)
            .ok_or_else(|| not_found("ssh_key"))?;
        if let Some(n) = name {
            k.name = n;
        }
        if let Some(l) = labels {
            k.labels = l;
        }
        Ok(Resp::json(200, json!({"ssh_key": k.json()})))
    }
}
