//! Our snapshots on EC2 are AMIs: `CreateImage` of the instance (`NoReboot`, tags on the image),
//! so that `create --from-snapshot ami-...` launches from one with `RunInstances` like any AMI.
//! The AMI's EBS snapshots carry the same tags (best effort, once the AMI is available: EC2 also
//! takes them in `CreateImage`'s `TagSpecifications`, moto answers that with an error) and go
//! with it: deleting a snapshot deregisters the AMI with `DeleteAssociatedSnapshots`, then
//! deletes itself any EBS snapshot the answer does not report deleted (moto reports none).
//!
//! A job over many servers costs per server its `CreateImage` and the `CreateTags` of its EBS
//! snapshots; the waits read all pending AMIs in one `DescribeImages` (an `image-id` filter,
//! which unlike `ImageIds` does not fail the whole call for one unknown id), and an AMI the job's
//! listing showed is deregistered without a read first.
//!
//! Only AMIs this account owns (`Owners=self`) and that carry `managed-by=bootstrap` are listed,
//! and nothing else is ever deregistered. Data Lifecycle Manager's images (the `dlm` engine)
//! carry the same labels (its `TagsToAdd`), so `snapshot list` and `destroy --delete-snapshots`
//! see them too.

use std::collections::HashMap;
use std::sync::Mutex;

use aws_sdk_ec2::Client;
use aws_sdk_ec2::types::{Filter, Image, ImageState, ResourceType, SnapshotReturnCodes, Tag};
use bootstrap_core::SnapshotToFinish;
use bootstrap_core::model::{LABEL_MANAGED_BY, MANAGED_BY_VALUE};
use bootstrap_core::{Created, Error, ErrorKind, Labels, Result, Server, Snapshot, SnapshotStatus};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::error::{AwsError, sdk};
use crate::tags;

fn status(state: Option<&ImageState>) -> SnapshotStatus {
    match state {
        Some(ImageState::Pending) => SnapshotStatus::Creating,
        Some(ImageState::Available) => SnapshotStatus::Available,
        Some(other) => SnapshotStatus::Other(other.as_str().to_owned()),
        None => SnapshotStatus::Other("unknown".to_owned()),
    }
}

fn from_image(img: &Image) -> Result<Snapshot> {
    let id = img.image_id().unwrap_or_default().to_owned();
    let created = img
        .creation_date()
        .and_then(|d| OffsetDateTime::parse(d, &Rfc3339).ok())
        .ok_or_else(|| {
            Error::new(
                ErrorKind::Other,
                format!(
                    "AMI {id} has no readable CreationDate ({:?})",
                    img.creation_date()
                ),
            )
        })?;
    Ok(Snapshot {
        name: tags::name(img.tags())
            .or(img.name())
            .unwrap_or(&id)
            .to_owned(),
        created,
        status: status(img.state()),
        labels: tags::labels(img.tags()),
        id,
    })
}

/// The EBS snapshots behind an AMI.
fn backing_snapshots(img: &Image) -> Vec<String> {
    img.block_device_mappings()
        .iter()
        .filter_map(|m| m.ebs().and_then(|e| e.snapshot_id()))
        .map(str::to_owned)
        .collect()
}

fn ours(img: &Image) -> bool {
    tags::labels(img.tags()).get(LABEL_MANAGED_BY) == Some(MANAGED_BY_VALUE)
}

/// AMIs per `DescribeImages` `image-id` filter: a bounded request.
const IDS_PER_CALL: usize = 100;

/// Our AMIs as this process last read them, so that deleting one that a listing showed needs no
/// read first (the job lists every snapshot, then prunes).
#[derive(Debug, Default)]
pub(crate) struct Seen(Mutex<HashMap<String, Image>>);

impl Seen {
    fn note<'a>(&self, imgs: impl IntoIterator<Item = &'a Image>) {
        if let Ok(mut m) = self.0.lock() {
            for img in imgs.into_iter().filter(|i| ours(i)) {
                if let Some(id) = img.image_id() {
                    m.insert(id.to_owned(), img.clone());
                }
            }
        }
    }

    /// The AMI as last seen, forgotten (it is being deleted).
    fn take(&self, id: &str) -> Option<Image> {
        self.0.lock().ok().and_then(|mut m| m.remove(id))
    }
}

/// This account's AMIs matching `filters`, every page (`NextToken`).
async fn describe_owned(ec2: &Client, filters: Vec<Filter>) -> Result<Vec<Image>> {
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page = sdk(
            "DescribeImages",
            ec2.describe_images()
                .owners("self")
                .set_filters(Some(filters.clone()))
                .set_next_token(token.take())
                .send()
                .await,
        )?;
        out.extend_from_slice(page.images());
        match page.next_token() {
            Some(t) if !t.is_empty() => token = Some(t.to_owned()),
            _ => return Ok(out),
        }
    }
}

/// Our AMIs carrying every label of `selector`.
pub(crate) async fn list(ec2: &Client, seen: &Seen, selector: &Labels) -> Result<Vec<Snapshot>> {
    let images = describe_owned(ec2, tags::filters(selector)).await?;
    seen.note(&images);
    let mut out = Vec::new();
    for img in images.iter().filter(|i| ours(i)) {
        let s = from_image(img)?;
        if s.labels.matches(selector) {
            out.push(s);
        }
    }
    Ok(out)
}

async fn describe(ec2: &Client, id: &str) -> Result<Option<Image>> {
    let r = ec2.describe_images().image_ids(id).send().await;
    match r {
        Ok(out) => Ok(out
            .images()
            .iter()
            .find(|i| i.image_id() == Some(id))
            .filter(|i| i.state() != Some(&ImageState::Deregistered))
            .cloned()),
        Err(e) => {
            let e = AwsError::from_sdk("DescribeImages", e);
            match e.code() {
                Some("InvalidAMIID.NotFound" | "InvalidAMIID.Unavailable") => Ok(None),
                _ => Err(e.into()),
            }
        }
    }
}

/// One AMI; `None` once it is deregistered or unknown.
pub(crate) async fn get(ec2: &Client, id: &str) -> Result<Option<Snapshot>> {
    describe(ec2, id)
        .await?
        .as_ref()
        .map(from_image)
        .transpose()
}

/// Our AMIs among `ids` (this account's, not deregistered), read with `image-id` filters a
/// hundred at a time.
async fn describe_many(ec2: &Client, ids: &[String]) -> Result<HashMap<String, Image>> {
    let mut found = HashMap::new();
    for chunk in ids.chunks(IDS_PER_CALL) {
        let by_id = Filter::builder()
            .name("image-id")
            .set_values(Some(chunk.to_vec()))
            .build();
        for img in describe_owned(ec2, vec![by_id]).await? {
            if let Some(id) = img.image_id().map(str::to_owned)
                && img.state() != Some(&ImageState::Deregistered)
            {
                found.insert(id, img);
            }
        }
    }
    Ok(found)
}

/// Many AMIs in the order asked, in one call per hundred; one the filtered answer leaves out is
/// read alone (just made, it may not show in filters yet), `None` when that says it is gone.
pub(crate) async fn get_many(ec2: &Client, ids: &[String]) -> Result<Vec<Option<Snapshot>>> {
    let found = describe_many(ec2, ids).await?;
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        out.push(match found.get(id) {
            Some(img) => Some(from_image(img)?),
            None => get(ec2, id).await?,
        });
    }
    Ok(out)
}

/// Tags the EBS snapshots of finished AMIs (one `DescribeImages` for all, then one `CreateTags`
/// each, side by side: each AMI's tags are its own) and answers each AMI as it is now.
pub(crate) async fn finish_many(
    ec2: &Client,
    items: &[SnapshotToFinish],
) -> Result<Vec<Result<Snapshot>>> {
    let ids: Vec<String> = items.iter().map(|i| i.snapshot.id.clone()).collect();
    let found = describe_many(ec2, &ids).await?;
    let answers = items.iter().map(|i| {
        let img = found.get(&i.snapshot.id);
        async move {
            let Some(img) = img else {
                // Not shown by the filter (yet): it was seen available; its tags stay best effort.
                return Ok(i.snapshot.clone());
            };
            tag_backing_snapshots(ec2, img, &i.labels, &i.snapshot.name).await;
            from_image(img)
        }
    });
    Ok(futures::future::join_all(answers).await)
}

/// `CreateImage` of `server` without reboot. AMI names are unique per account and region, so a
/// second run taking the same slot at the same time gets `InvalidAMIName.Duplicate`, which is
/// `ErrorKind::Conflict`: the core then looks the slot's snapshot up and waits for it.
pub(crate) async fn create(
    ec2: &Client,
    server: &Server,
    name: &str,
    labels: &Labels,
) -> Result<Created<Snapshot>> {
    let out = sdk(
        "CreateImage",
        ec2.create_image()
            .instance_id(&server.id)
            .name(name)
            .description(name)
            .no_reboot(true)
            .tag_specifications(tags::spec(ResourceType::Image, labels, name))
            .send()
            .await,
    )?;
    // Pending until the core's wait reads it (all of a job's AMIs in one call); its EBS
    // snapshots are tagged once it is available (`finish_many`).
    Ok(Created::ready(Snapshot {
        id: out.image_id().unwrap_or_default().to_owned(),
        name: name.to_owned(),
        created: OffsetDateTime::now_utc(),
        status: SnapshotStatus::Creating,
        labels: labels.clone(),
    }))
}

/// Puts the AMI's labels on its EBS snapshots, so that they are recognisable in the console and
/// in cost reports. Best effort: the AMI's own tags are what this tool goes by.
async fn tag_backing_snapshots(ec2: &Client, img: &Image, labels: &Labels, name: &str) {
    let snaps = backing_snapshots(img);
    if snaps.is_empty() {
        return;
    }
    let tags: Vec<Tag> = tags::tags(labels, name);
    if let Err(e) = sdk(
        "CreateTags",
        ec2.create_tags()
            .set_resources(Some(snaps))
            .set_tags(Some(tags))
            .send()
            .await,
    ) {
        tracing::debug!(error = %e, "could not tag the AMI's EBS snapshots");
    }
}

/// Deregisters one of our AMIs with its EBS snapshots, deleting any the answer does not report
/// deleted. An AMI without our labels is refused; a missing one is fine. One a listing showed
/// is not read again.
pub(crate) async fn delete(ec2: &Client, seen: &Seen, id: &str) -> Result<()> {
    let img = match seen.take(id) {
        Some(img) => img,
        None => match describe(ec2, id).await? {
            Some(img) => img,
            // Gone: maybe an earlier try deregistered it and then failed on its EBS snapshots.
            None => return delete_orphans(ec2, id).await,
        },
    };
    if !ours(&img) {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!(
                "AMI {id} does not carry {LABEL_MANAGED_BY}={MANAGED_BY_VALUE}: not ours, left alone"
            ),
        ));
    }
    let mut snaps = backing_snapshots(&img);
    match ec2
        .deregister_image()
        .image_id(id)
        .delete_associated_snapshots(true)
        .send()
        .await
    {
        Ok(out) => {
            let deleted: Vec<&str> = out
                .delete_snapshot_results()
                .iter()
                .filter(|r| r.return_code() == Some(&SnapshotReturnCodes::Success))
                .filter_map(|r| r.snapshot_id())
                .collect();
            snaps.retain(|s| !deleted.contains(&s.as_str()));
        }
        Err(e) => {
            let e = AwsError::from_sdk("DeregisterImage", e);
            if !matches!(
                e.code(),
                Some("InvalidAMIID.NotFound" | "InvalidAMIID.Unavailable")
            ) {
                return Err(e.into());
            }
        }
    }
    for s in snaps {
        let r = ec2.delete_snapshot().snapshot_id(&s).send().await;
        if let Err(e) = r {
            let e = AwsError::from_sdk("DeleteSnapshot", e);
            if e.code() != Some("InvalidSnapshot.NotFound") {
                return Err(e.into());
            }
        }
    }
    Ok(())
}

/// Deletes the EBS snapshots EC2 made for AMI `id` (`Created by CreateImage(i-...) for <id>`)
/// when the AMI itself is gone, so a delete retried after a half-done try leaves nothing behind.
async fn delete_orphans(ec2: &Client, id: &str) -> Result<()> {
    let out = sdk(
        "DescribeSnapshots",
        ec2.describe_snapshots()
            .owner_ids("self")
            .filters(
                aws_sdk_ec2::types::Filter::builder()
                    .name("description")
                    .values(format!("Created by CreateImage(*) for {id}"))
                    .build(),
            )
            .send()
            .await,
    )?;
    for s in out.snapshots() {
        let Some(sid) = s.snapshot_id() else { continue };
        tracing::debug!(
            snapshot = sid,
            ami = id,
            "deleting an EBS snapshot left by a deregistered AMI"
        );
        if let Err(e) = ec2.delete_snapshot().snapshot_id(sid).send().await {
            let e = AwsError::from_sdk("DeleteSnapshot", e);
            if e.code() != Some("InvalidSnapshot.NotFound") {
                return Err(e.into());
            }
        }
    }
    Ok(())
}

/// Makes the instance's tags equal `labels` (plus its `Name`, which is not a label): removes the
/// labels `server` has that `labels` lacks, then sets the rest.
pub(crate) async fn set_labels(ec2: &Client, server: &Server, labels: &Labels) -> Result<()> {
    let gone: Vec<Tag> = server
        .labels
        .iter()
        .filter(|(k, _)| labels.get(k).is_none())
        .map(|(k, _)| Tag::builder().key(k).build())
        .collect();
    if !gone.is_empty() {
        sdk(
            "DeleteTags",
            ec2.delete_tags()
                .resources(&server.id)
                .set_tags(Some(gone))
                .send()
                .await,
        )?;
    }
    let set: Vec<Tag> = labels
        .iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect();
    if !set.is_empty() {
        sdk(
            "CreateTags",
            ec2.create_tags()
                .resources(&server.id)
                .set_tags(Some(set))
                .send()
                .await,
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_ec2::types::{BlockDeviceMapping, EbsBlockDevice};

    #[test]
    fn images_map_onto_snapshots() {
        let img = Image::builder()
            .image_id("ami-0123")
            .name("web1-20261125T0300Z")
            .state(ImageState::Pending)
            .creation_date("2026-11-25T03:00:05.000Z")
            .tags(Tag::builder().key("managed-by").value("bootstrap").build())
            .tags(
                Tag::builder()
                    .key("aws:dlm:lifecycle-policy-id")
                    .value("policy-1")
                    .build(),
            )
            .block_device_mappings(
                BlockDeviceMapping::builder()
                    .device_name("/dev/sda1")
                    .ebs(EbsBlockDevice::builder().snapshot_id("snap-1").build())
                    .build(),
            )
            .build();
        let s = from_image(&img).unwrap();
        assert_eq!(s.name, "web1-20261125T0300Z");
        assert_eq!(s.status, SnapshotStatus::Creating);
        assert_eq!(s.created.unix_timestamp(), 1_795_575_605);
        assert_eq!(s.labels.get("managed-by"), Some("bootstrap"));
        assert!(s.labels.get("aws:dlm:lifecycle-policy-id").is_none());
        assert!(ours(&img));
        assert_eq!(backing_snapshots(&img), ["snap-1"]);
        assert_eq!(
            status(Some(&ImageState::Failed)),
            SnapshotStatus::Other("failed".into())
        );
    }
}
