//! Instance images, only for `--from-snapshot`: a Block snapshot becomes an image (tagged like
//! the deployment, removed with it), then the server boots from that image. Deleting an image
//! leaves its snapshot, so a snapshot is deleted after the images of ours made from it.

use bootstrap_core::model::LABEL_DEPLOYMENT;
use bootstrap_core::{Labels, Result};
use serde_json::json;

use crate::client::{Client, ok_if_missing};
use crate::schema::{BlockSnapshot, ImageEnvelope, ScwImage, labels_of};
use crate::tags;

/// Whether a Block snapshot with this id exists in the zone.
pub(crate) async fn snapshot_exists(c: &Client, id: &str) -> Result<bool> {
    Ok(
        c.get_opt::<BlockSnapshot>(&c.block(&format!("/snapshots/{id}")))
            .await?
            .is_some(),
    )
}

/// Whether an Instance image with this id exists in the zone.
pub(crate) async fn image_exists(c: &Client, id: &str) -> Result<bool> {
    Ok(
        c.get_opt::<ImageEnvelope>(&c.inst(&format!("/images/{id}")))
            .await?
            .is_some(),
    )
}

/// Our images (carrying all of `selector`), filtered server-side on one tag.
pub(crate) async fn list_ours(c: &Client, selector: &Labels) -> Result<Vec<ScwImage>> {
    let mut q = vec![("project", c.project.clone())];
    if let Some(t) = crate::filter_tag(selector) {
        q.push(("tags", t));
    }
    let all: Vec<ScwImage> = c.list_instance(&c.inst("/images"), "images", q).await?;
    Ok(all
        .into_iter()
        .filter(|i| labels_of(&i.tags).matches(selector))
        .collect())
}

/// The deployment's image of `snapshot`: the one a former run made, else a new one. Returns
/// its id and whether this call made it.
pub(crate) async fn for_snapshot(
    c: &Client,
    snapshot: &str,
    name: &str,
    labels: &Labels,
) -> Result<(String, bool)> {
    let mut sel = Labels::managed();
    if let Some(d) = labels.deployment_name() {
        sel.insert(LABEL_DEPLOYMENT, d);
    }
    let found = list_ours(c, &sel)
        .await?
        .into_iter()
        .find(|i| i.root_volume.as_ref().is_some_and(|r| r.id == snapshot));
    if let Some(i) = found {
        return Ok((i.id, false));
    }
    let mut own = Labels::managed();
    if let Some(d) = labels.deployment_name() {
        own.insert(LABEL_DEPLOYMENT, d);
    }
    let made: ImageEnvelope = c
        .post(
            &c.inst("/images"),
            &json!({
                "name": format!("bootstrap-{name}-restore"),
                "root_volume": snapshot,
                "arch": "x86_64",
                "project": c.project,
                "tags": tags(&own),
            }),
        )
        .await?;
    Ok((made.image.id, true))
}

/// Deletes our images made from `snapshot`.
pub(crate) async fn delete_for_snapshot(c: &Client, snapshot: &str) -> Result<()> {
    for i in list_ours(c, &Labels::managed()).await? {
        if i.root_volume.as_ref().is_some_and(|r| r.id == snapshot) {
            ok_if_missing(c.delete(&c.inst(&format!("/images/{}", i.id))).await)?;
        }
    }
    Ok(())
}
