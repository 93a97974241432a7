//! Servers (`/servers`): options checked read-only first (zone, the zone's server products, the
//! image label resolved by the Marketplace, asked at once); created stopped with tags, the
//! security group by id and an SBS root volume, beside the group's rules; then completed in one
//! round (the group's rules if still owed, the volume tagged, two flexible IPs, IPv4 and IPv6,
//! reserved attached to it, and the user-data `PATCH`ed as `text/plain`, which is not part of
//! the create call), all **before** the `poweron` action.
//!
//! The user-data is readable without authentication from the metadata service inside the
//! server (`169.254.42.42/user_data`, from a privileged port): it carries no secrets, and the
//! host keys it would pin are rotated at first boot, as on Hetzner.

use bootstrap_core::{
    Created, Error, ErrorKind, Labels, Operation, Result, Server, ServerSpec, ServerStatus,
};
use serde_json::json;

use crate::cache::{Cache, Step};
use crate::client::{Client, is_uuid, ok_if_missing, uuid};
use crate::schema::{LocalImages, ScwServer, ServerEnvelope, ServerProducts, UserDataKeys};
use crate::{KNOWN_ZONES, ROOT_VOLUME_BYTES, filter_tag, image, leftovers, security_group, tags};

/// The user-data key cloud-init reads.
pub(crate) const CLOUD_INIT_KEY: &str = "cloud-init";

/// Refuses a zone, server type or image the zone does not have, before anything is made. The
/// zone's types and the image are asked for at once; what an image id turned out to be (a Block
/// snapshot or an image) is kept for the server's create, which does not ask again.
pub(crate) async fn check_options(
    c: &Client,
    cache: &Cache,
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
    let products = async {
        c.get::<ServerProducts>(
            &c.inst("/products/servers"),
            &[("per_page", "100".to_owned())],
        )
        .await
    };
    let image = async {
        if is_uuid(image_name) {
            // A snapshot of ours (`--from-snapshot`) or an image id.
            let (snapshot, image) = futures::join!(
                image::snapshot_exists(c, image_name),
                image::image_exists(c, image_name)
            );
            Ok::<_, Error>(ImageFound::Id {
                snapshot: snapshot?,
                image: image?,
            })
        } else {
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
            Ok(ImageFound::Label(found))
        }
    };
    let (products, image) = futures::join!(products, image);
    let products = products?;
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
    let found = match image? {
        ImageFound::Id { snapshot, image } => {
            if snapshot || image {
                cache.image_kind(image_name, snapshot);
                return Ok(());
            }
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!("--image {image_name}: no such image or snapshot in {zone}"),
            ));
        }
        ImageFound::Label(found) => found,
    };
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

/// What the option check found for `--image`.
enum ImageFound {
    /// An id: whether a Block snapshot and whether an image of that id exist.
    Id { snapshot: bool, image: bool },
    /// A Marketplace label: the zone's images of it.
    Label(LocalImages),
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

/// Creates the server, stopped, with neither public IP nor user-data (`complete` adds both
/// before `poweron`). The rules its new security group still owes are sent at the same time
/// ([`security_group::pay`]): the server cannot be reached before it is powered on, and
/// `complete` pays whatever is still owed first. A restore image this call made is removed
/// again when the create fails.
pub(crate) async fn create(
    c: &Client,
    cache: &Cache,
    spec: &ServerSpec,
) -> Result<Created<Server>> {
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
    let mut made_image: Option<String> = None;
    let server = async {
        let snapshot = match (is_uuid(&spec.image), cache.is_snapshot(&spec.image)) {
            (false, _) => false,
            // The option check found out already.
            (true, Some(known)) => known,
            (true, None) => image::snapshot_exists(c, &spec.image).await?,
        };
        let image_ref = if snapshot {
            let (id, new) = image::for_snapshot(c, &spec.image, &spec.name, &spec.labels).await?;
            if new {
                made_image = Some(id.clone());
            }
            id
        } else {
            spec.image.clone()
        };
        let mut root = json!({"volume_type": "sbs_volume", "boot": true});
        if !snapshot {
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
                    "boot_type": "local",
                    "project": c.project,
                    "tags": tags(&spec.labels),
                    "security_group": group,
                }),
            )
            .await?;
        Ok::<_, Error>(s.server)
    };
    // A rule refused here is not the server's failure: it stays owed, and `complete` (or, if
    // the server failed too, the rollback of the group) deals with it.
    let (result, _) = futures::join!(server, security_group::pay(c, cache, group));
    match result {
        Ok(s) => {
            cache.made(&s);
            Ok(Created::ready(s.into()))
        }
        Err(e) => {
            if let Some(i) = made_image
                && let Err(d) = c.delete(&c.inst(&format!("/images/{i}"))).await
            {
                tracing::warn!("removing image {i} after a failed create: {d}");
            }
            Err(e)
        }
    }
}

/// The public IPs a server gets, by `family` as a server lists them and `type` as `POST /ips`
/// reserves them.
const IP_KINDS: [(&str, &str); 2] = [("inet", "routed_ipv4"), ("inet6", "routed_ipv6")];

/// Whether `s` has a public IP of `family` (`inet`, `inet6`); read from the address where an
/// answer leaves the family out.
fn has_ip(s: &ScwServer, family: &str) -> bool {
    s.public_ips.iter().chain(s.public_ip.iter()).any(|ip| {
        if ip.family.is_empty() {
            let v6 = ip.address.contains(':');
            (family == "inet6") == v6 && !ip.address.is_empty()
        } else {
            ip.family == family
        }
    })
}

/// Reserves a flexible IP of `kind` attached to `s`, tagged with its id like [`leftovers::mark`]
/// tags one, so that it goes once the server is gone.
async fn attach_new_ip(c: &Client, s: &ScwServer, kind: &str) -> Result<()> {
    let _: serde_json::Value = c
        .post(
            &c.inst("/ips"),
            &json!({
                "project": c.project,
                "type": kind,
                "server": s.id,
                "tags": tags(&leftovers::server_labels(s)),
            }),
        )
        .await?;
    Ok(())
}

/// Completes a server: checks its group is ours; then, at once, gives the group the rules it
/// still owes, tags the server's volume (and IPs) with its id, reserves the public IPs it lacks
/// attached to it, and sets the user-data; then powers it on if stopped. A server this run just
/// created is known from the create's answer and has no user-data: neither is asked for.
/// Idempotent; the core waits for running.
pub(crate) async fn complete(
    c: &Client,
    cache: &Cache,
    server: &Server,
    spec: &ServerSpec,
) -> Result<Vec<Operation>> {
    let id = uuid(&server.id)?;
    let path = c.inst(&format!("/servers/{id}"));
    let (s, fresh) = match cache.take_made(id) {
        Some(s) => (s, true),
        None => (
            c.get_opt::<ServerEnvelope>(&path)
                .await?
                .ok_or_else(|| Error::new(ErrorKind::NotFound, format!("server {id} disappeared")))?
                .server,
            false,
        ),
    };
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
    let user_data = format!("{path}/user_data/{CLOUD_INIT_KEY}");
    let rules = async {
        match group {
            Some(g) => security_group::pay(c, cache, g).await,
            None => Ok(()),
        }
    };
    // What answered in an earlier attempt of this run is not sent again (a retry after one
    // failed call of the round costs only that call, and the reads).
    let mark = async {
        if !cache.done(id, Step::Marked) {
            leftovers::mark(c, &s).await?;
            cache.did(id, Step::Marked);
        }
        Ok::<_, Error>(())
    };
    let ips = IP_KINDS
        .iter()
        .filter(|(family, _)| !has_ip(&s, family))
        .map(|(_, kind)| attach_new_ip(c, &s, kind));
    // A new server has no user-data; a found one is asked (a re-run must not send it again).
    let has_user_data = async {
        if cache.done(id, Step::UserData) {
            return Ok(true);
        }
        if fresh {
            c.patch_text(&user_data, &spec.user_data).await?;
            cache.did(id, Step::UserData);
            return Ok(true);
        }
        let keys: UserDataKeys = c.get(&format!("{path}/user_data"), &[]).await?;
        Ok::<_, Error>(keys.user_data.iter().any(|k| k == CLOUD_INIT_KEY))
    };
    // Every call of the round is let finish before an error returns: none is cut off halfway.
    let (rules, marked, ips, has_user_data) =
        futures::join!(rules, mark, futures::future::join_all(ips), has_user_data);
    rules?;
    marked?;
    ips.into_iter().collect::<Result<Vec<()>>>()?;
    if !has_user_data? {
        c.patch_text(&user_data, &spec.user_data).await?;
        cache.did(id, Step::UserData);
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
