//! Snapshots of the SBS root volume through the Block API (`/block/v1/zones/{zone}/snapshots`):
//! the Instance API's own snapshots only take local volumes. Create answers 200 with the
//! snapshot `creating`; the core polls [`get`] (or, for many at once, [`get_many`]) until
//! `available`. The Block `tags` filter matches *any* of the tags given, so one is sent and the
//! rest checked here.
//!
//! For a job over many servers, what a listing already told is not asked again: the root volume
//! of each listed server ([`Seen`]), and which snapshots are ours, so that a create is one call
//! and a delete of a snapshot listed as ours goes straight to `DELETE` (an image made from it
//! since answers `precondition_failed`, and the careful path runs then).

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use bootstrap_core::model::{LABEL_MANAGED_BY, MANAGED_BY_VALUE};
use bootstrap_core::{Created, Error, ErrorKind, Labels, Result, Server, Snapshot};
use serde_json::json;

use crate::client::{Client, uuid};
use crate::error::{is_type, types};
use crate::schema::{BlockSnapshot, ServerEnvelope};
use crate::{filter_tag, image, tags};

/// What listings told this adapter: the SBS root volume of each server, and the snapshots that
/// carried our `managed-by` tag.
#[derive(Debug, Default)]
pub(crate) struct Seen {
    roots: Mutex<HashMap<String, String>>,
    ours: Mutex<HashSet<String>>,
}

impl Seen {
    /// Notes a listed server's SBS root volume.
    pub(crate) fn root(&self, server: &str, volume: &str) {
        if let Ok(mut r) = self.roots.lock() {
            r.insert(server.to_owned(), volume.to_owned());
        }
    }

    /// Notes the listed snapshots that are ours.
    pub(crate) fn snapshots(&self, listed: &[Snapshot]) {
        if let Ok(mut o) = self.ours.lock() {
            o.extend(
                listed
                    .iter()
                    .filter(|s| s.labels.get(LABEL_MANAGED_BY) == Some(MANAGED_BY_VALUE))
                    .map(|s| s.id.clone()),
            );
        }
    }

    fn root_of(&self, server: &str) -> Option<String> {
        self.roots.lock().ok()?.get(server).cloned()
    }

    fn is_ours(&self, snapshot: &str) -> bool {
        self.ours.lock().is_ok_and(|o| o.contains(snapshot))
    }
}

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

/// Many snapshots at once, in the order of `ids` (`None`: gone): one listing of ours instead
/// of a read each, from three on. A listing may not show a snapshot created moments ago yet,
/// so an id it leaves out is read alone: only that read says it is gone.
pub(crate) async fn get_many(c: &Client, ids: &[String]) -> Result<Vec<Option<Snapshot>>> {
    let mut listed: HashMap<String, Snapshot> = if ids.len() < 3 {
        HashMap::new()
    } else {
        list_by_labels(c, &Labels::managed())
            .await?
            .into_iter()
            .map(|s| (s.id.clone(), s))
            .collect()
    };
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        out.push(match listed.remove(id) {
            Some(s) => Some(s),
            None => get(c, id).await?,
        });
    }
    Ok(out)
}

/// Snapshots the server's root volume (an `sbs_volume`); its id comes from the listing that
/// found the server, else from a read of the server.
pub(crate) async fn create(
    c: &Client,
    seen: &Seen,
    server: &Server,
    name: &str,
    labels: &Labels,
) -> Result<Created<Snapshot>> {
    let root = match seen.root_of(&server.id) {
        Some(r) => r,
        None => root_volume(c, server).await?,
    };
    let made: BlockSnapshot = c
        .post(
            &c.block("/snapshots"),
            &json!({
                "volume_id": root,
                "name": name,
                "project_id": c.project,
                "tags": tags(labels),
            }),
        )
        .await?;
    Ok(Created::ready(made.into()))
}

/// The id of the server's SBS root volume, read from the server.
async fn root_volume(c: &Client, server: &Server) -> Result<String> {
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
    Ok(root.id.clone())
}

/// Deletes one of our snapshots, after our images made from it; anything not ours is refused.
/// One listed as ours is deleted at once; only if an image holds it is the careful path taken.
pub(crate) async fn delete(c: &Client, seen: &Seen, id: &str) -> Result<()> {
    if seen.is_ours(id) {
        match c
            .delete(&c.block(&format!("/snapshots/{}", uuid(id)?)))
            .await
        {
            Err(e) if is_type(&e, &[types::PRECONDITION_FAILED]) => {}
            done => return done,
        }
    }
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
