//! Servers (`/servers`): options checked against the API's lists before anything is made, then
//! created with key, firewall, labels and user-data in one request, listed by labels, relabelled
//! and deleted.
//!
//! User-data is stored by Hetzner (at most [`crate::USER_DATA_MAX_BYTES`]): it carries no secrets.

use bootstrap_core::{
    Created, Error, ErrorKind, Labels, Operation, Result, Server, ServerSpec, ServerStatus,
};
use hcloud::models;

use crate::client::{Client, id_of, labels_map};
use crate::image;
use crate::schema::{
    ActionEnvelope, LocationList, Named, ServerCreated, ServerEnvelope, ServerList, ServerTypeList,
};
use crate::selector::selector;

/// Refuses a server type, location or image Hetzner does not know, naming the valid ones, before
/// the flow creates anything.
pub(crate) async fn check_options(
    c: &Client,
    server_type: &str,
    image: &str,
    location: &str,
) -> Result<()> {
    let (types, locations, image_found) = futures::join!(
        c.list_all::<ServerTypeList>("/server_types", vec![]),
        c.list_all::<LocationList>("/locations", vec![]),
        image::exists(c, image),
    );
    one_of(
        "--server-type",
        server_type,
        types?,
        "hcloud server-type list",
    )?;
    one_of("--location", location, locations?, "hcloud location list")?;
    if !image_found? {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!(
                "--image {image}: Hetzner has no such image (`hcloud image list --type system` shows the names; a snapshot goes by its number)"
            ),
        ));
    }
    Ok(())
}

/// `value` when the API lists it, else the error naming `flag`, the valid names and the
/// `hcloud` command that lists them.
fn one_of(flag: &str, value: &str, known: Vec<Named>, list_cmd: &str) -> Result<()> {
    let names: Vec<String> = known.into_iter().map(|n| n.name).collect();
    if names.iter().any(|n| n == value) {
        return Ok(());
    }
    Err(Error::new(
        ErrorKind::InvalidInput,
        format!(
            "{flag} {value}: Hetzner has no such name; use one of {} (`{list_cmd}`)",
            names.join(", ")
        ),
    ))
}

/// The server, or `None` when it does not exist.
pub(crate) async fn get(c: &Client, id: &str) -> Result<Option<Server>> {
    let r = c
        .get_opt::<ServerEnvelope>(&format!("/servers/{}", id_of(id)?))
        .await?;
    Ok(r.map(|e| e.server.into()))
}

/// Every server carrying all of `labels`, leaving out those already being deleted.
pub(crate) async fn list_by_labels(c: &Client, labels: &Labels) -> Result<Vec<Server>> {
    let servers = c
        .list_all::<ServerList>("/servers", vec![("label_selector", selector(labels))])
        .await?;
    Ok(servers
        .into_iter()
        .map(Server::from)
        .filter(|s| s.status != ServerStatus::Deleting)
        .collect())
}

/// Creates and starts the server with public IPv4 and IPv6; the answer's actions are pending.
pub(crate) async fn create(c: &Client, spec: &ServerSpec) -> Result<Created<Server>> {
    let firewalls = spec
        .firewall_ids
        .iter()
        .map(|id| {
            Ok(models::CreateServerRequestFirewalls {
                firewall: id_of(id)?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let body = models::CreateServerRequest {
        automount: None,
        firewalls: Some(firewalls),
        image: spec.image.clone(),
        labels: Some(labels_map(&spec.labels)),
        location: Some(spec.location.clone()),
        name: spec.name.clone(),
        networks: None,
        placement_group: None,
        public_net: Some(Box::new(models::CreateServerRequestPublicNet {
            enable_ipv4: Some(true),
            enable_ipv6: Some(true),
            ipv4: None,
            ipv6: None,
        })),
        server_type: spec.server_type.clone(),
        ssh_keys: Some(spec.ssh_key_ids.clone()),
        start_after_create: Some(true),
        user_data: Some(spec.user_data.clone()),
        volumes: None,
    };
    let r: ServerCreated = c.post("/servers", &body).await?;
    let mut pending: Vec<Operation> = vec![r.action.into()];
    pending.extend(r.next_actions.into_iter().map(Operation::from));
    Ok(Created {
        resource: r.server.into(),
        pending,
    })
}

/// Replaces the server's labels (the snapshot schedule lives in them).
pub(crate) async fn set_labels(c: &Client, server: &Server, labels: &Labels) -> Result<()> {
    let body = models::ReplaceServerRequest {
        labels: Some(labels_map(labels)),
        name: None,
    };
    let _: ServerEnvelope = c
        .put(&format!("/servers/{}", id_of(&server.id)?), &body)
        .await?;
    Ok(())
}

/// Deletes the server; the answer's action is pending, and one already gone has none.
pub(crate) async fn delete(c: &Client, id: &str) -> Result<Vec<Operation>> {
    let r = c
        .delete::<ActionEnvelope>(&format!("/servers/{}", id_of(id)?))
        .await?;
    Ok(r.map(|e| vec![e.action.into()]).unwrap_or_default())
}
