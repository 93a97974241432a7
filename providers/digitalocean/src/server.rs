//! Droplets (`/v2/droplets`): options checked against the API before anything is made, then
//! created with key, tags and user-data in one request, found by tag, retagged, deleted one by
//! one by id.
//!
//! - The firewall is not part of the create request: it applies to the deployment's tag,
//!   which the droplet carries from its first boot.
//! - Never `DELETE /v2/droplets?tag_name=`: it deletes every droplet carrying the tag,
//!   whoever made it. [`delete`] takes one id.
//! - User-data is plain text, at most [`crate::USER_DATA_MAX_BYTES`] (checked offline by the
//!   core), immutable and never returned by a GET.

use bootstrap_core::model::{LABEL_DEPLOYMENT, LABEL_MANAGED_BY};
use bootstrap_core::{Created, Error, ErrorKind, Labels, Operation, Result, Server, ServerSpec};
use serde_json::{Value, json};

use crate::client::{Client, id_of};
use crate::schema::{Droplet, DropletCreated, DropletEnvelope, Region, Size, TAG_SEP};
use crate::{image, tags};

/// Refuses a size, region or image DigitalOcean does not offer, naming the valid ones, before
/// the flow creates anything (read-only: `/v2/regions`, `/v2/sizes`, the image by slug or id).
pub(crate) async fn check_options(
    c: &Client,
    size: &str,
    image_: &str,
    region: &str,
) -> Result<()> {
    let (regions, sizes, found) = futures::join!(
        c.list_all::<Region>("/v2/regions", "regions", vec![]),
        c.list_all::<Size>("/v2/sizes", "sizes", vec![]),
        image::exists(c, image_),
    );
    let regions = regions?;
    if !regions.iter().any(|r| r.slug == region && r.available) {
        let names: Vec<&str> = regions
            .iter()
            .filter(|r| r.available)
            .map(|r| r.slug.as_str())
            .collect();
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!(
                "--location {region}: DigitalOcean has no such region available; use one of {} (`doctl compute region list`)",
                names.join(", ")
            ),
        ));
    }
    let sizes = sizes?;
    match sizes.iter().find(|s| s.slug == size) {
        Some(s) if s.available && s.regions.iter().any(|r| r == region) => {}
        Some(_) => {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "--server-type {size}: not available in {region} (`doctl compute size list`)"
                ),
            ));
        }
        None => {
            let names: Vec<&str> = sizes
                .iter()
                .filter(|s| s.available && s.regions.iter().any(|r| r == region))
                .map(|s| s.slug.as_str())
                .collect();
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "--server-type {size}: DigitalOcean has no such size; in {region} use one of {} (`doctl compute size list`)",
                    names.join(", ")
                ),
            ));
        }
    }
    if !found? {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!(
                "--image {image_}: DigitalOcean has no such image (`doctl compute image list-distribution` shows the slugs; a snapshot goes by its number)"
            ),
        ));
    }
    Ok(())
}

/// The one tag a list filters on: the deployment's when the selector names one, else ours.
pub(crate) fn filter_tag(selector: &Labels) -> String {
    match selector.deployment_name() {
        Some(d) => format!("{LABEL_DEPLOYMENT}{TAG_SEP}{d}"),
        None => format!(
            "{LABEL_MANAGED_BY}{TAG_SEP}{}",
            selector
                .get(LABEL_MANAGED_BY)
                .unwrap_or(bootstrap_core::model::MANAGED_BY_VALUE)
        ),
    }
}

/// The droplet, or `None` when it does not exist.
pub(crate) async fn get(c: &Client, id: &str) -> Result<Option<Server>> {
    let r = c
        .get_opt::<DropletEnvelope>(&format!("/v2/droplets/{}", id_of(id)?))
        .await?;
    Ok(r.map(|e| e.droplet.into()))
}

/// Every droplet carrying the selector's main tag (the flows check the other labels), noting
/// in `seen` each one's snapshot images and tags (a job then finds its new images in one
/// listing).
pub(crate) async fn list_by_labels(
    c: &Client,
    selector: &Labels,
    seen: &image::Seen,
) -> Result<Vec<Server>> {
    let tag = filter_tag(selector);
    tags::check(&tag)?;
    let droplets: Vec<Droplet> = c
        .list_all("/v2/droplets", "droplets", vec![("tag_name", tag)])
        .await?;
    seen.droplets(&droplets);
    Ok(droplets
        .into_iter()
        .map(Server::from)
        .filter(|s| s.labels.matches(selector))
        .collect())
}

/// Creates the droplet with IPv6, the key by id, our tags and the user-data; the create action
/// is pending.
pub(crate) async fn create(c: &Client, spec: &ServerSpec) -> Result<Created<Server>> {
    let tag_names = spec.labels.to_flat_tags(TAG_SEP);
    for t in &tag_names {
        tags::check(t)?;
    }
    let keys = spec
        .ssh_key_ids
        .iter()
        .map(|k| id_of(k))
        .collect::<Result<Vec<_>>>()?;
    // A snapshot goes by its number, a distribution image by its slug.
    let image_: Value = match spec.image.parse::<u64>() {
        Ok(n) => json!(n),
        Err(_) => json!(spec.image),
    };
    let body = json!({
        "name": spec.name,
        "region": spec.location,
        "size": spec.server_type,
        "image": image_,
        "ssh_keys": keys,
        "backups": false,
        "ipv6": true,
        "monitoring": false,
        "tags": tag_names,
        "user_data": spec.user_data,
    });
    let r: DropletCreated = c.post("/v2/droplets", &body).await?;
    let pending = r
        .links
        .map(|l| {
            l.actions
                .into_iter()
                .map(|a| Operation {
                    id: a.id.to_string(),
                    what: if a.rel.is_empty() {
                        "create".into()
                    } else {
                        a.rel
                    },
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(Created {
        resource: r.droplet.into(),
        pending,
    })
}

/// Replaces our labels on the droplet: new `key:value` tags are attached, old ones taken off.
/// Tags without a `:` are someone else's and stay.
pub(crate) async fn set_labels(c: &Client, server: &Server, labels: &Labels) -> Result<()> {
    let id = id_of(&server.id)?.to_string();
    let Some(droplet) = c
        .get_opt::<DropletEnvelope>(&format!("/v2/droplets/{id}"))
        .await?
        .map(|e| e.droplet)
    else {
        return Err(Error::new(
            ErrorKind::NotFound,
            format!("droplet {} is gone", server.id),
        ));
    };
    let backups_on = droplet
        .features
        .as_ref()
        .is_some_and(|f| f.iter().any(|x| x == "backups"));
    let now = Server::from(droplet).labels;
    let want = labels.to_flat_tags(TAG_SEP);
    let have = now.to_flat_tags(TAG_SEP);
    for t in &want {
        tags::check(t)?;
    }
    let res = [(id, "droplet")];
    for t in want.iter().filter(|t| !have.contains(t)) {
        tags::attach(c, t, &res).await?;
    }
    for t in have.iter().filter(|t| !want.contains(t)) {
        tags::detach(c, t, &res).await?;
        // An old schedule's tag goes once nothing carries it; the deployment's tag (a
        // firewall's target) and a key's tag (how a teardown finds the key) stay.
        let kept = [
            bootstrap_core::model::LABEL_DEPLOYMENT,
            bootstrap_core::model::LABEL_SSH_KEY,
        ]
        .iter()
        .any(|k| t.starts_with(&format!("{k}{TAG_SEP}")));
        if !kept {
            tags::delete_if_unused(c, t).await?;
        }
    }
    // DigitalOcean's own backups follow a new schedule through `change_backup_policy`.
    let schedule = |l: &Labels| {
        bootstrap_core::schedule::Schedule::from_labels(l)
            .ok()
            .flatten()
    };
    if backups_on
        && let Some(new) = schedule(labels)
        && schedule(&now) != Some(new)
    {
        let mut s = server.clone();
        s.labels = labels.clone();
        image::set_backups(c, &s, true).await?;
    }
    Ok(())
}

/// Deletes the one droplet (204); one already gone is fine. Nothing to wait for but its
/// absence, which the core polls through [`get`].
pub(crate) async fn delete(c: &Client, id: &str) -> Result<Vec<Operation>> {
    c.delete(&format!("/v2/droplets/{}", id_of(id)?)).await?;
    Ok(Vec::new())
}
