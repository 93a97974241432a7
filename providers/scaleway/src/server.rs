//! Servers (`/servers`): options checked read-only first (zone, the zone's server products, the
//! image label resolved by the Marketplace); created stopped with tags, the security group by
//! id, an SBS root volume and two flexible IPs (IPv4 and IPv6); then completed: user-data
//! `PATCH`ed as `text/plain` (it is not part of the create call) **before** the `poweron` action.
//!
//! The user-data is readable without authentication from the metadata service inside the
//! server (`169.254.42.42/user_data`, from a privileged port): it carries no secrets, and the
//! host keys it would pin are rotated at first boot, as on Hetzner.

use bootstrap_core::{
    Created, Error, ErrorKind, Labels, Operation, Result, Server, ServerSpec, ServerStatus,
};
use serde_json::json;

use crate::client::{Client, is_uuid, ok_if_missing, uuid};
use crate::schema::{IpEnvelope, LocalImages, ServerEnvelope, ServerProducts, UserDataKeys};
use crate::{KNOWN_ZONES, ROOT_VOLUME_BYTES, filter_tag, image, leftovers, tags};

/// The user-data key cloud-init reads.
pub(crate) const CLOUD_INIT_KEY: &str = "cloud-init";

/// Refuses a zone, server type or image the zone does not have, before anything is made.
pub(crate) async fn check_options(
    c: &Client,
    server_type: &str,
    image_name: &str,
    zone: &str,
) -> Result<()> {
    if !KNOWN_ZONES.contains(&zone) {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!(
                "--location {zone}: not a Scaleway zone; use one of {}",
                KNOWN_ZONES.join(", ")
            ),
        ));
    }
    // `create` checks first: the deployment lives in this zone from now on.
    c.set_zone(zone);
    let products: ServerProducts = c
        .get(
            &c.inst("/products/servers"),
            &[("per_page", "100".to_owned())],
        )
        .await?;
    if !products.servers.contains_key(server_type) {
        let names: Vec<&str> = products.servers.keys().map(String::as_str).collect();
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!(
                "--server-type {server_type}: {zone} offers no such type; use one of {} (`scw instance server-type list zone={zone}`)",
                names.join(", ")
            ),
        ));
    }
    if is_uuid(image_name) {
        // A snapshot of ours (`--from-snapshot`) or an image id.
        if image::snapshot_exists(c, image_name).await?
            || image::image_exists(c, image_name).await?
        {
            return Ok(());
        }
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!("--image {image_name}: no such image or snapshot in {zone}"),
        ));
    }
    let found: LocalImages = c
        .get(
            "/marketplace/v2/local-images",
            &[
                ("image_label", image_name.to_owned()),
                ("zone", zone.to_owned()),
                ("type", "instance_sbs".to_owned()),
            ],
        )
        .await?;
    let fits = found.local_images.iter().any(|i| {
        i.compatible_commercial_types.is_empty()
            || i.compatible_commercial_types
                .iter()
                .any(|t| t == server_type)
    });
    if found.local_images.is_empty() {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!(
                "--image {image_name}: the Marketplace has no such label in {zone} (e.g. ubuntu_noble, debian_bookworm, debian_trixie; `scw marketplace image list`)"
            ),
        ));
    }
    if !fits {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!("--image {image_name} does not run on --server-type {server_type}"),
        ));
    }
    Ok(())
}

/// The server, or `None` once it is gone **and** its root volume and IPs are deleted (a
/// volume still detaching keeps it "deleting").
pub(crate) async fn get(c: &Client, id: &str) -> Result<Option<Server>> {
    let path = c.inst(&format!("/servers/{}", uuid(id)?));
    if let Some(s) = c.get_opt::<ServerEnvelope>(&path).await? {
        return Ok(Some(s.server.into()));
    }
    if leftovers::server_gone(c, id).await? {
        Ok(None)
    } else {
        Ok(Some(Server {
            id: id.to_owned(),
            name: id.to_owned(),
            status: ServerStatus::Deleting,
            ipv4: None,
            ipv6: None,
            labels: Labels::new(),
            created: None,
        }))
    }
}

/// Every server carrying all of `selector` (`ListServers?tags=` matches an exact comma-joined
/// list, so one tag is sent and the rest is checked by the flows), noting each one's SBS root
/// volume in `seen` (a snapshot of it then needs no read of the server).
pub(crate) async fn list_by_labels(
    c: &Client,
    selector: &Labels,
    seen: &crate::snapshot::Seen,
) -> Result<Vec<Server>> {
    let mut q = vec![("project", c.project.clone())];
    if let Some(t) = filter_tag(selector) {
        q.push(("tags", t));
    }
    let servers: Vec<crate::schema::ScwServer> =
        c.list_instance(&c.inst("/servers"), "servers", q).await?;
    for s in &servers {
        if let Some(root) = s.root_volume().filter(|v| v.volume_type == "sbs_volume") {
            seen.root(&s.id, &root.id);
        }
    }
    Ok(servers
        .into_iter()
        .map(Server::from)
        .filter(|s| s.labels.matches(selector))
        .collect())
}

async fn reserve_ip(c: &Client, kind: &str, labels: &Labels) -> Result<String> {
    let r: IpEnvelope = c
        .post(
            &c.inst("/ips"),
            &json!({"project": c.project, "type": kind, "tags": tags(labels)}),
        )
        .await?;
    Ok(r.ip.id)
}

/// Creates the server, stopped. What this call made before a failure (IPs, a restore image)
/// is removed before the error returns.
pub(crate) async fn create(c: &Client, spec: &ServerSpec) -> Result<Created<Server>> {
    if !KNOWN_ZONES.contains(&spec.location.as_str()) {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!("--location {}: not a Scaleway zone", spec.location),
        ));
    }
    c.set_zone(&spec.location);
    let Some(group) = spec.firewall_ids.first() else {
        // Without it the project's default group would be attached.
        return Err(Error::new(
            ErrorKind::InvalidInput,
            "a Scaleway server needs its security group id",
        ));
    };
    let mut made_ips: Vec<String> = Vec::new();
    let mut made_image: Option<String> = None;
    let result = async {
        let (image_ref, restored) = if is_uuid(&spec.image)
            && image::snapshot_exists(c, &spec.image).await?
        {
            let (id, new) = image::for_snapshot(c, &spec.image, &spec.name, &spec.labels).await?;
            if new {
                made_image = Some(id.clone());
            }
            (id, true)
        } else {
            (spec.image.clone(), false)
        };
        made_ips.push(reserve_ip(c, "routed_ipv4", &spec.labels).await?);
        made_ips.push(reserve_ip(c, "routed_ipv6", &spec.labels).await?);
        let mut root = json!({"volume_type": "sbs_volume", "boot": true});
        if !restored {
            // An image made from a snapshot sets its own size.
            root["size"] = json!(ROOT_VOLUME_BYTES);
        }
        let s: ServerEnvelope = c
            .post(
                &c.inst("/servers"),
                &json!({
                    "name": spec.name,
                    "commercial_type": spec.server_type,
                    "image": image_ref,
                    "volumes": {"0": root},
                    "dynamic_ip_required": false,
                    "public_ips": made_ips,
                    "boot_type": "local",
                    "project": c.project,
                    "tags": tags(&spec.labels),
                    "security_group": group,
                }),
            )
            .await?;
        Ok::<_, Error>(s.server)
    }
    .await;
    match result {
        Ok(s) => Ok(Created::ready(s.into())),
        Err(e) => {
            for ip in &made_ips {
                if let Err(d) = c.delete(&c.inst(&format!("/ips/{ip}"))).await {
                    tracing::warn!("removing IP {ip} after a failed create: {d}");
                }
            }
            if let Some(i) = made_image
                && let Err(d) = c.delete(&c.inst(&format!("/images/{i}"))).await
            {
                tracing::warn!("removing image {i} after a failed create: {d}");
            }
            Err(e)
        }
    }
}

/// Completes a server: checks its group is ours, tags its volume and IPs with its id, sets the
/// user-data if missing, then powers it on if stopped. Idempotent; the core waits for running.
pub(crate) async fn complete(
    c: &Client,
    server: &Server,
    spec: &ServerSpec,
) -> Result<Vec<Operation>> {
    let id = uuid(&server.id)?;
    let path = c.inst(&format!("/servers/{id}"));
    let s = c
        .get_opt::<ServerEnvelope>(&path)
        .await?
        .ok_or_else(|| Error::new(ErrorKind::NotFound, format!("server {id} disappeared")))?
        .server;
    let group = s.security_group.as_ref().map(|g| g.id.as_str());
    if let Some(want) = spec.firewall_ids.first()
        && group != Some(want.as_str())
    {
        return Err(Error::new(
            ErrorKind::Other,
            format!(
                "server {id} has security group {} instead of {want}: the project's default group is not bootstrap's",
                group.unwrap_or("none")
            ),
        ));
    }
    leftovers::mark(c, &s).await?;
    let keys: UserDataKeys = c.get(&format!("{path}/user_data"), &[]).await?;
    if !keys.user_data.iter().any(|k| k == CLOUD_INIT_KEY) {
        c.patch_text(
            &format!("{path}/user_data/{CLOUD_INIT_KEY}"),
            &spec.user_data,
        )
        .await?;
    }
    if matches!(s.state.as_str(), "stopped" | "stopped in place") {
        action(c, id, "poweron").await?;
    }
    Ok(Vec::new())
}

/// Runs a server action (`202 {task}` at the live API).
async fn action(c: &Client, id: &str, what: &str) -> Result<()> {
    let _: serde_json::Value = c
        .post(
            &c.inst(&format!("/servers/{id}/action")),
            &json!({"action": what}),
        )
        .await?;
    Ok(())
}

/// Starts deleting a server: tags its volume and IPs for [`get`] to delete once it is gone,
/// then `terminate` (running) or `DELETE` (stopped). Nothing to wait on: the core polls [`get`].
pub(crate) async fn delete(c: &Client, id: &str) -> Result<Vec<Operation>> {
    let id = uuid(id)?;
    let path = c.inst(&format!("/servers/{id}"));
    let Some(s) = c.get_opt::<ServerEnvelope>(&path).await? else {
        return Ok(Vec::new());
    };
    let s = s.server;
    leftovers::mark(c, &s).await?;
    match s.state.as_str() {
        "stopped" | "stopped in place" => {
            ok_if_missing(c.delete(&path).await)?;
        }
        // Already going.
        "stopping" => {}
        _ => action(c, id, "terminate").await?,
    }
    Ok(Vec::new())
}

/// Replaces a server's tags.
/// Puts the server in a security group (`PATCH /servers/{id}` with `security_group`): an
/// Instance server has exactly one, so this replaces whatever group it was left with.
pub(crate) async fn set_security_group(c: &Client, server: &Server, group: &str) -> Result<()> {
    let _: serde_json::Value = c
        .patch(
            &c.inst(&format!("/servers/{}", uuid(&server.id)?)),
            &json!({ "security_group": { "id": uuid(group)? } }),
        )
        .await?;
    Ok(())
}

pub(crate) async fn set_labels(c: &Client, server: &Server, labels: &Labels) -> Result<()> {
    let _: serde_json::Value = c
        .patch(
            &c.inst(&format!("/servers/{}", uuid(&server.id)?)),
            &json!({ "tags": tags(labels) }),
        )
        .await?;
    Ok(())
}
