//! Snapshots of the SBS root volume through the Block API (`/block/v1/zones/{zone}/snapshots`):
//! the Instance API's own snapshots only take local volumes. Create answers 200 with the
//! snapshot `creating`; the core polls [`get`] until `available`. The Block `tags` filter
//! matches *any* of the tags given, so one is sent and the rest checked here.

use bootstrap_core::model::{LABEL_MANAGED_BY, MANAGED_BY_VALUE};
use bootstrap_core::{Created, Error, ErrorKind, Labels, Result, Server, Snapshot};
use serde_json::json;

use crate::client::{Client, uuid};
use crate::schema::{BlockSnapshot, ServerEnvelope};
use crate::{filter_tag, image, tags};

/// Every snapshot of ours carrying all of `selector`.
pub(crate) async fn list_by_labels(c: &Client, selector: &Labels) -> Result<Vec<Snapshot>> {
    let mut q = vec![("project_id", c.project.clone())];
    if let Some(t) = filter_tag(selector) {
        q.push(("tags", t));
    }
    let all: Vec<BlockSnapshot> = c
        .list_counted(&c.block("/snapshots"), "snapshots", q)
        .await?;
    Ok(all
        .into_iter()
        .map(Snapshot::from)
        .filter(|s| s.labels.matches(selector))
        .collect())
}

/// One snapshot; `None` once gone.
pub(crate) async fn get(c: &Client, id: &str) -> Result<Option<Snapshot>> {
    Ok(
        c.get_opt::<BlockSnapshot>(&c.block(&format!("/snapshots/{}", uuid(id)?)))
            .await?
            .map(Snapshot::from),
    )
}

/// Snapshots the server's root volume (an `sbs_volume`).
pub(crate) async fn create(
    c: &Client,
    server: &Server,
    name: &str,
    labels: &Labels,
) -> Result<Created<Snapshot>> {
    let s = c
        .get_opt::<ServerEnvelope>(&c.inst(&format!("/servers/{}", uuid(&server.id)?)))
        .await?
        .ok_or_else(|| Error::new(ErrorKind::NotFound, format!("server {} is gone", server.id)))?
        .server;
    let root = s
        .root_volume()
        .filter(|v| v.volume_type == "sbs_volume")
        .ok_or_else(|| {
            Error::new(
                ErrorKind::Unsupported,
                format!("server {} has no SBS root volume to snapshot", server.id),
            )
        })?;
    let made: BlockSnapshot = c
        .post(
            &c.block("/snapshots"),
            &json!({
                "volume_id": root.id,
                "name": name,
                "project_id": c.project,
                "tags": tags(labels),
            }),
        )
        .await?;
    Ok(Created::ready(made.into()))
}

/// Deletes one of our snapshots, after our images made from it; anything not ours is refused.
pub(crate) async fn delete(c: &Client, id: &str) -> Result<()> {
    let Some(s) = get(c, id).await? else {
        return Ok(());
    };
    if s.labels.get(LABEL_MANAGED_BY) != Some(MANAGED_BY_VALUE) {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!("snapshot {id} was not made by bootstrap; not deleting it"),
        ));
    }
    image::delete_for_snapshot(c, id).await?;
    c.delete(&c.block(&format!("/snapshots/{id}"))).await
}
