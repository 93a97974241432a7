//! What outlives a server at Scaleway and is still billed: `terminate` (and `DELETE` of a
//! stopped server) detaches SBS volumes and keeps flexible IPs. Before a server is deleted, its
//! root volume and IPs get the tag `bootstrap-server=<id>`; once the server is gone,
//! [`server_gone`] deletes them, and only then does the server count as gone. A deployment's
//! IPs that never reached a server and its restore images go with its security group
//! ([`sweep_deployment`]). Every step is idempotent, so an interrupted teardown is re-runnable.

use bootstrap_core::model::{LABEL_DEPLOYMENT, LABEL_MANAGED_BY, MANAGED_BY_VALUE};
use bootstrap_core::{Labels, Result};
use serde_json::json;

use crate::client::Client;
use crate::schema::{BlockVolume, ScwImage, ScwIp, ScwServer, labels_of};
use crate::{LABEL_SERVER, tags};

/// The labels that tie a leftover to `server`: managed, its deployment, its id.
pub(crate) fn server_labels(server: &ScwServer) -> Labels {
    let own = labels_of(&server.tags);
    let mut l = Labels::managed();
    if let Some(d) = own.deployment_name() {
        l.insert(LABEL_DEPLOYMENT, d);
    }
    l.insert(LABEL_SERVER, server.id.clone());
    l
}

/// Tags the server's SBS volumes and its own flexible IPs with its id, so that they can be
/// found and deleted once it is gone; all at once, each call let finish. Idempotent.
pub(crate) async fn mark(c: &Client, server: &ScwServer) -> Result<()> {
    let labels = server_labels(server);
    let body = json!({ "tags": tags(&labels) });
    let volumes = server
        .sbs_volume_ids()
        .into_iter()
        .map(|v| c.block(&format!("/volumes/{v}")));
    let ips = server
        .public_ips
        .iter()
        .filter(|ip| {
            let l = labels_of(&ip.tags);
            l.get(LABEL_MANAGED_BY) == Some(MANAGED_BY_VALUE) && l.get(LABEL_SERVER).is_none()
        })
        .map(|ip| c.inst(&format!("/ips/{}", ip.id)));
    let patches = volumes.chain(ips).map(|path| {
        let body = &body;
        async move {
            let _: serde_json::Value = c.patch(&path, body).await?;
            Ok::<_, bootstrap_core::Error>(())
        }
    });
    futures::future::join_all(patches)
        .await
        .into_iter()
        .collect::<Result<Vec<()>>>()
        .map(drop)
}

/// The project's Block volumes carrying `tag` (`key=value`; the API matches any one tag).
async fn volumes_tagged(c: &Client, tag: &str) -> Result<Vec<BlockVolume>> {
    c.list_counted(
        &c.block("/volumes"),
        "volumes",
        vec![("project_id", c.project.clone()), ("tags", tag.to_owned())],
    )
    .await
}

/// Deletes what server `id` left behind; true once nothing is left (a volume still detaching
/// makes it false: the core asks again).
pub(crate) async fn server_gone(c: &Client, id: &str) -> Result<bool> {
    let tag = format!("{LABEL_SERVER}={id}");
    let volumes = volumes_tagged(c, &tag).await?;
    let mut done = true;
    for v in volumes
        .iter()
        .filter(|v| labels_of(&v.tags).get(LABEL_SERVER) == Some(id))
    {
        match v.status.as_str() {
            "available" | "error" => c.delete(&c.block(&format!("/volumes/{}", v.id))).await?,
            "deleting" | "deleted" => {}
            _ => done = false,
        }
    }
    let ips: Vec<ScwIp> = c
        .list_instance(
            &c.inst("/ips"),
            "ips",
            vec![("project", c.project.clone()), ("tags", tag)],
        )
        .await?;
    for ip in ips
        .iter()
        .filter(|ip| labels_of(&ip.tags).get(LABEL_SERVER) == Some(id))
    {
        c.delete(&c.inst(&format!("/ips/{}", ip.id))).await?;
    }
    Ok(done)
}

/// Deletes the deployment's IPs that are attached to nothing, root volumes left detached by a
/// server that is gone, and its restore images.
pub(crate) async fn sweep_deployment(c: &Client, deployment: &str) -> Result<()> {
    let mut sel = Labels::managed();
    sel.insert(LABEL_DEPLOYMENT, deployment);
    let tag = format!("{LABEL_DEPLOYMENT}={deployment}");
    let ips: Vec<ScwIp> = c
        .list_instance(
            &c.inst("/ips"),
            "ips",
            vec![("project", c.project.clone()), ("tags", tag.clone())],
        )
        .await?;
    for ip in ips
        .iter()
        .filter(|ip| ip.server.is_none() && labels_of(&ip.tags).matches(&sel))
    {
        c.delete(&c.inst(&format!("/ips/{}", ip.id))).await?;
    }
    // A root volume whose server vanished while a teardown was cut short: detached ("available"
    // or "error"), tagged with a server of this deployment, and billed until deleted.
    let volumes = volumes_tagged(c, &tag).await?;
    for v in volumes.iter().filter(|v| {
        let l = labels_of(&v.tags);
        l.matches(&sel)
            && l.get(LABEL_SERVER).is_some()
            && matches!(v.status.as_str(), "available" | "error")
    }) {
        c.delete(&c.block(&format!("/volumes/{}", v.id))).await?;
    }
    let images: Vec<ScwImage> = c
        .list_instance(
            &c.inst("/images"),
            "images",
            vec![("project", c.project.clone()), ("tags", tag)],
        )
        .await?;
    for i in images.iter().filter(|i| labels_of(&i.tags).matches(&sel)) {
        c.delete(&c.inst(&format!("/images/{}", i.id))).await?;
    }
    Ok(())
}
