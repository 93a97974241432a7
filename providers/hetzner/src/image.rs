//! Images (`/images`): whether an image name exists, our snapshots (images of type `snapshot`
//! with our labels), and Hetzner's own backups.
//!
//! Hetzner's backups are images of type `backup`; every snapshot call here asks for
//! `type=snapshot`, so pruning can never reach a backup.

use bootstrap_core::{Created, Labels, Operation, Result, Server, Snapshot};
use hcloud::models;

use crate::client::{Client, id_of, labels_map};
use crate::schema::{ActionEnvelope, ImageCreated, ImageEnvelope, ImageList};
use crate::selector::selector;

/// Whether `image` names a system image or is the number of an image (e.g. a snapshot).
pub(crate) async fn exists(c: &Client, image: &str) -> Result<bool> {
    if image.parse::<u64>().is_ok() {
        let found = c
            .get_opt::<ImageEnvelope>(&format!("/images/{image}"))
            .await?;
        return Ok(found.is_some());
    }
    let named = c
        .list_all::<ImageList>("/images", vec![("name", image.to_owned())])
        .await?;
    Ok(!named.is_empty())
}

/// The snapshot, or `None` when it does not exist.
pub(crate) async fn get(c: &Client, id: &str) -> Result<Option<Snapshot>> {
    let r = c
        .get_opt::<ImageEnvelope>(&format!("/images/{}", id_of(id)?))
        .await?;
    r.map(|e| Snapshot::try_from(e.image)).transpose()
}

/// Every snapshot carrying all of `labels`; backups are left out by type.
pub(crate) async fn list_by_labels(c: &Client, labels: &Labels) -> Result<Vec<Snapshot>> {
    let images = c
        .list_all::<ImageList>(
            "/images",
            vec![
                ("type", "snapshot".to_owned()),
                ("label_selector", selector(labels)),
            ],
        )
        .await?;
    images.into_iter().map(Snapshot::try_from).collect()
}

/// Starts a snapshot of `server` named `name` with `labels`; the image is `creating` until its
/// action finishes.
pub(crate) async fn create(
    c: &Client,
    server: &Server,
    name: &str,
    labels: &Labels,
) -> Result<Created<Snapshot>> {
    let path = format!("/servers/{}/actions/create_image", id_of(&server.id)?);
    let body = models::CreateImageFromServerRequest {
        description: Some(name.to_owned()),
        labels: Some(labels_map(labels)),
        r#type: Some(models::create_image_from_server_request::Type::Snapshot),
    };
    let r: ImageCreated = c.post(&path, &body).await?;
    Ok(Created {
        resource: r.image.try_into()?,
        pending: vec![r.action.into()],
    })
}

/// Deletes the image; one already gone is fine.
pub(crate) async fn delete(c: &Client, id: &str) -> Result<()> {
    c.delete::<serde_json::Value>(&format!("/images/{}", id_of(id)?))
        .await
        .map(|_| ())
}

/// Turns on Hetzner's own daily backups of `server` (7 slots, kept by Hetzner, never pruned by
/// us).
pub(crate) async fn enable_backups(c: &Client, server: &Server) -> Result<Vec<Operation>> {
    // A server with a backup window has them on already (a re-run with --provider-backups).
    let now: serde_json::Value = c
        .get(&format!("/servers/{}", id_of(&server.id)?), &[])
        .await?;
    if now["server"]["backup_window"].is_string() {
        return Ok(Vec::new());
    }
    let path = format!("/servers/{}/actions/enable_backup", id_of(&server.id)?);
    // The operation takes no request body (Hetzner's document refuses one).
    let r: ActionEnvelope = c.post_empty(&path).await?;
    Ok(vec![r.action.into()])
}
