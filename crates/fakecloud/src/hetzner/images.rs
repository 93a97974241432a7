//! `/images`: list (`type`, `status`, `name`, `label_selector`, `bound_to`, `architecture`), get,
//! update, delete (system images refuse both), and `POST /servers/{id}/actions/create_image`.

use serde_json::{Map, Value, json};

use super::api::{
    Item, Reply, Req, Resp, error, invalid_input, labels, list, not_found, opt_labels, opt_str,
};
use super::labels::rfc3339;
use super::state::{Effect, Image, Kind, State};

impl Image {
    pub(crate) fn json(&self) -> Value {
        json!({
            "id": self.id, "type": self.kind, "status": self.status, "name": self.name,
            "description": self.description, "image_size": self.image_size, "disk_size": self.disk_size,
            "created": rfc3339(self.created),
            "created_from": self.created_from.as_ref().map(|(id, n)| json!({"id": id, "name": n})),
            "bound_to": self.bound_to, "os_flavor": self.os_flavor, "os_version": self.os_version,
            "rapid_deploy": self.kind == "system", "protection": {"delete": false},
            "deprecated": Value::Null, "deleted": Value::Null, "labels": self.labels,
            "architecture": self.architecture,
        })
    }
}

impl State {
    pub(crate) fn list_images(&self, req: &Req) -> Reply {
        let types = req.q_all("type");
        let statuses = req.q_all("status");
        let bound = req.q_all("bound_to");
        let arch = req.q("architecture");
        let items = self
            .images
            .values()
            .filter(|i| types.is_empty() || types.contains(&i.kind))
            .filter(|i| statuses.is_empty() || statuses.contains(&i.status))
            .filter(|i| {
                bound.is_empty()
                    || i.bound_to
                        .is_some_and(|b| bound.contains(&b.to_string().as_str()))
            })
            .filter(|i| arch.is_none_or(|a| a == i.architecture))
            .map(|i| Item {
                id: i.id,
                name: i.name.clone(),
                created: i.created,
                labels: i.labels.clone(),
                json: i.json(),
            })
            .collect();
        list(req, &req.query, "images", items)
    }

    /// A snapshot or backup image (system images are refused with `what`'s message).
    fn own_image(&mut self, id: u64, what: &str) -> Result<&mut Image, Resp> {
        let i = self.images.get_mut(&id).ok_or_else(|| not_found("image"))?;
        if i.kind == "system" {
            return Err(error(
                422,
                "unsupported_error",
                &format!("system images cannot be {what}"),
            ));
        }
        Ok(i)
    }

    pub(crate) fn update_image(&mut self, req: &Req, id: u64) -> Reply {
        self.own_image(id, "updated")?;
        let body = req.object()?;
        let description = opt_str(&body, "description")?;
        let kind = match opt_str(&body, "type")?.as_deref() {
            None => None,
            Some("snapshot") => Some("snapshot"),
            Some(_) => return Err(invalid_input("type", "can only be converted to snapshot")),
        };
        let labels = opt_labels(&body)?;
        let i = self.own_image(id, "updated")?;
        if let Some(d) = description {
            i.description = d;
        }
        if let Some(k) = kind {
            i.kind = k;
            i.bound_to = None;
        }
        if let Some(l) = labels {
            i.labels = l;
        }
        Ok(Resp::json(200, json!({"image": i.json()})))
    }

    pub(crate) fn delete_image(&mut self, id: u64) -> Reply {
        self.own_image(id, "deleted")?;
        self.images.remove(&id);
        Ok(Resp::empty(204))
    }

    /// Inserts an available snapshot made at `created` (unix seconds); returns its id.
    pub(crate) fn insert_snapshot(
        &mut self,
        description: &str,
        labels: super::Labels,
        created: u64,
    ) -> u64 {
        let id = self.next_id(Kind::Image);
        let image = Image {
            id,
            kind: "snapshot",
            status: "available",
            name: None,
            description: description.to_owned(),
            created,
            created_from: None,
            bound_to: None,
            os_flavor: "ubuntu",
            os_version: Some("24.04".into()),
            labels,
            disk_size: 40.0,
            image_size: Some(1.2),
            architecture: "x86",
        };
        self.images.insert(id, image);
        id
    }

    /// `create_image` of server `sid` (checked to exist and not be deleting).
    pub(crate) fn create_image(&mut self, sid: u64, body: &Map<String, Value>) -> Reply {
        let description = opt_str(body, "description")?;
        let kind = match opt_str(body, "type")?.as_deref() {
            None | Some("snapshot") => "snapshot",
            Some("backup") => "backup",
            Some(_) => return Err(invalid_input("type", "must be snapshot or backup")),
        };
        let labels = labels(body)?;
        let s = self.servers.get(&sid).ok_or_else(|| not_found("server"))?;
        let flavor = s
            .image
            .get("os_flavor")
            .and_then(Value::as_str)
            .unwrap_or("unknown");
        let os_flavor = [
            "ubuntu", "centos", "debian", "fedora", "rocky", "alma", "opensuse",
        ]
        .into_iter()
        .find(|f| *f == flavor)
        .unwrap_or("unknown");
        let os_version = s
            .image
            .get("os_version")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let (sname, disk, architecture) = (
            s.name.clone(),
            f64::from(s.server_type.disk),
            s.server_type.architecture,
        );
        let iid = self.next_id(Kind::Image);
        let created = self.now();
        let image = Image {
            id: iid,
            kind,
            status: "creating",
            name: None,
            description: description.unwrap_or_else(|| format!("{sname}-{created}")),
            created,
            created_from: Some((sid, sname)),
            bound_to: (kind == "backup").then_some(sid),
            os_flavor,
            os_version,
            labels,
            disk_size: disk,
            image_size: None,
            architecture,
        };
        self.images.insert(iid, image);
        let resources = vec![(sid, "server"), (iid, "image")];
        let a = self.new_action("create_image", resources, Effect::CreateImage(iid));
        let image = self.images.get(&iid).map(Image::json);
        Ok(Resp::json(
            201,
            json!({"image": image, "action": self.actions_json(&[a]).pop()}),
        ))
    }
}
