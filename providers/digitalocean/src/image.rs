//! Images (`/v2/images`): whether an image exists, our snapshots (images of type `snapshot`
//! carrying our tags), and DigitalOcean's own backups.
//!
//! A snapshot is the droplet action `snapshot` (201 `{action}`), which never tells the image
//! id. Once the action completed, [`finish`] finds the image in
//! `GET /v2/droplets/{id}/snapshots` by its `created_at` (equal to the action's `started_at`),
//! with the name as a cross-check, and tags it. Backups are images of type `backup`: nothing
//! here lists, tags or deletes one.

use bootstrap_core::model::LABEL_MANAGED_BY;
use bootstrap_core::schedule::{Every, Schedule};
use bootstrap_core::{
    Created, Error, ErrorKind, Labels, Operation, Result, Server, Snapshot, SnapshotStatus,
};
use serde_json::json;
use time::OffsetDateTime;

use crate::client::{Client, id_of};
use crate::schema::{ActionEnvelope, Image, ImageEnvelope, TAG_SEP};
use crate::server::filter_tag;
use crate::tags;

/// Whether `image` is a slug or the number of an image DigitalOcean has.
pub(crate) async fn exists(c: &Client, image: &str) -> Result<bool> {
    let ok = !image.is_empty()
        && image
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'));
    if !ok {
        return Ok(false);
    }
    Ok(c.get_opt::<ImageEnvelope>(&format!("/v2/images/{image}"))
        .await?
        .is_some())
}

/// Our snapshot, or `None` when it does not exist (or is not a snapshot).
pub(crate) async fn get(c: &Client, id: &str) -> Result<Option<Snapshot>> {
    let r = c
        .get_opt::<ImageEnvelope>(&format!("/v2/images/{}", id_of(id)?))
        .await?;
    Ok(r.map(|e| e.image)
        .filter(Image::is_snapshot)
        .map(Image::snapshot))
}

/// DigitalOcean's own backups of a droplet (`GET /v2/droplets/{id}/backups`).
pub(crate) async fn backups(c: &Client, server: &Server) -> Result<Vec<Snapshot>> {
    let path = format!("/v2/droplets/{}/backups", id_of(&server.id)?);
    let images: Vec<Image> = c.list_all(&path, "backups", vec![]).await?;
    Ok(images.into_iter().map(Image::snapshot).collect())
}

/// Every private snapshot carrying the selector's main tag; backups are left out by type.
pub(crate) async fn list_by_labels(c: &Client, selector: &Labels) -> Result<Vec<Snapshot>> {
    let tag = filter_tag(selector);
    tags::check(&tag)?;
    let images: Vec<Image> = c
        .list_all(
            "/v2/images",
            "images",
            vec![("private", "true".to_owned()), ("tag_name", tag)],
        )
        .await?;
    Ok(images
        .into_iter()
        .filter(Image::is_snapshot)
        .map(Image::snapshot)
        .filter(|s| s.labels.matches(selector))
        .collect())
}

/// Starts the snapshot: the action is pending, and the snapshot provisional (no id yet; its
/// `created` is the action's `started_at`, which [`finish`] looks for).
pub(crate) async fn create(
    c: &Client,
    server: &Server,
    name: &str,
    labels: &Labels,
) -> Result<Created<Snapshot>> {
    for t in labels.to_flat_tags(TAG_SEP) {
        tags::check(&t)?;
    }
    let path = format!("/v2/droplets/{}/actions", id_of(&server.id)?);
    let r: ActionEnvelope = c
        .post(&path, &json!({ "type": "snapshot", "name": name }))
        .await?;
    let started = r.action.started_at.unwrap_or_else(OffsetDateTime::now_utc);
    Ok(Created {
        resource: Snapshot {
            id: String::new(),
            name: name.to_owned(),
            created: started,
            status: SnapshotStatus::Creating,
            labels: labels.clone(),
        },
        pending: vec![r.action.operation()],
    })
}

/// Finds the image the snapshot action made and tags it with `labels`. Idempotent: a snapshot
/// with an id is only (re)tagged.
pub(crate) async fn finish(
    c: &Client,
    server: &Server,
    snapshot: &Snapshot,
    labels: &Labels,
) -> Result<Snapshot> {
    let image = if snapshot.id.is_empty() {
        let images: Vec<Image> = c
            .list_all(
                &format!("/v2/droplets/{}/snapshots", id_of(&server.id)?),
                "snapshots",
                vec![],
            )
            .await?;
        pick(images, snapshot).ok_or_else(|| {
            Error::new(
                ErrorKind::NotFound,
                format!(
                    "snapshot {} of droplet {} (started {}) is not among its snapshots yet",
                    snapshot.name, server.id, snapshot.created
                ),
            )
        })?
    } else {
        c.get::<ImageEnvelope>(&format!("/v2/images/{}", id_of(&snapshot.id)?), &[])
            .await?
            .image
    };
    let id = image.id.to_string();
    for t in labels.to_flat_tags(TAG_SEP) {
        tags::attach(c, &t, &[(id.clone(), "image")]).await?;
    }
    let mut done = image.snapshot();
    done.labels = labels.clone();
    Ok(done)
}

/// The image made by the action: `created_at` equal to its `started_at`, and the same name. A
/// droplet's snapshot list leaves out tags, so nothing else is known to match on.
fn pick(images: Vec<Image>, snapshot: &Snapshot) -> Option<Image> {
    let mut same_time: Vec<Image> = images
        .into_iter()
        .filter(|i| i.is_snapshot() && i.created_at == Some(snapshot.created))
        .collect();
    if same_time.len() > 1 {
        same_time.retain(|i| i.name == snapshot.name);
    }
    same_time
        .into_iter()
        .find(|i| i.name == snapshot.name || i.name.is_empty())
}

/// Deletes one of our snapshots (one already gone is fine), then its slot tag once nothing
/// carries it. A backup, or an image without our tag, is refused.
pub(crate) async fn delete(c: &Client, id: &str) -> Result<()> {
    let path = format!("/v2/images/{}", id_of(id)?);
    let Some(image) = c.get_opt::<ImageEnvelope>(&path).await?.map(|e| e.image) else {
        return Ok(());
    };
    let ours = Labels::from_flat_tags(image.tags.iter().flatten(), TAG_SEP).get(LABEL_MANAGED_BY)
        == Some(bootstrap_core::model::MANAGED_BY_VALUE);
    if !image.is_snapshot() || !ours {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!(
                "image {id} ({}) is a {} not tagged {LABEL_MANAGED_BY}{TAG_SEP}bootstrap: bootstrap never deletes it",
                image.name, image.kind
            ),
        ));
    }
    c.delete(&path).await?;
    // Its slot tag was its own; its deployment tag goes too once nothing carries it and no
    // firewall applies to it (a deployment destroyed with --delete-snapshots).
    let slot = format!("{}{TAG_SEP}", bootstrap_core::schedule::LABEL_SLOT);
    let deployment = format!("{}{TAG_SEP}", bootstrap_core::model::LABEL_DEPLOYMENT);
    for t in image.tags.iter().flatten() {
        if t.starts_with(&slot) {
            tags::delete_if_unused(c, t).await?;
        } else if t.starts_with(&deployment) {
            let fws = crate::firewall::list(c).await?;
            let targeted = fws
                .iter()
                .any(|f| f.labels.to_flat_tags(TAG_SEP).iter().any(|x| x == t));
            if !targeted {
                tags::delete_if_unused(c, t).await?;
            }
        }
    }
    Ok(())
}

/// DigitalOcean's `backup_policy` for a schedule: daily (for daily and shorter intervals) or
/// weekly on its day, in the 4-hour window (`hour` 0, 4, ..., 20) the time falls into.
pub(crate) fn backup_policy(schedule: &Schedule) -> serde_json::Value {
    let hour = schedule.at.hour() / 4 * 4;
    match schedule.every {
        Every::Weekly(day) => json!({
            "plan": "weekly",
            "weekday": day.to_string()[..3].to_ascii_uppercase(),
            "hour": hour,
        }),
        Every::Daily | Every::Hourly | Every::Hours(_) => json!({ "plan": "daily", "hour": hour }),
    }
}

/// What the policy means, for messages: `daily backups in the 00:00-04:00 UTC window`.
pub(crate) fn describe_policy(policy: &serde_json::Value) -> String {
    let hour = policy["hour"].as_u64().unwrap_or(0);
    let when = match policy["weekday"].as_str() {
        Some(d) => format!("weekly on {d}"),
        None => "daily".to_owned(),
    };
    format!(
        "{when} backups in the {hour:02}:00-{:02}:00 UTC window",
        (hour + 4) % 24
    )
}

/// What to tell a user whose `--snapshot-time` is not the start of a backup window: DigitalOcean
/// backs up at a time of its choosing within the 4-hour window, not at that minute.
pub(crate) fn window_note(schedule: &Schedule) -> Option<String> {
    let at = schedule.at;
    (at.minute() != 0 || !at.hour().is_multiple_of(4)).then(|| {
        format!(
            "--snapshot-time {:02}:{:02}: DigitalOcean backs up at a time of its choosing within 4-hour windows: {}",
            at.hour(),
            at.minute(),
            describe_policy(&backup_policy(schedule))
        )
    })
}

/// Turns on DigitalOcean's backups with the policy of the droplet's schedule labels (daily in
/// the 00:00 window without one). `change` uses `change_backup_policy` on a droplet whose
/// backups are on already.
pub(crate) async fn set_backups(
    c: &Client,
    server: &Server,
    change: bool,
) -> Result<Vec<Operation>> {
    if !change {
        // Backups on already (a re-run with --provider-backups): nothing to do.
        let now: Option<serde_json::Value> = c
            .get_opt(&format!("/v2/droplets/{}", id_of(&server.id)?))
            .await?;
        let on = now
            .as_ref()
            .and_then(|d| d["droplet"]["features"].as_array())
            .is_some_and(|f| f.iter().any(|x| x == "backups"));
        if on {
            return Ok(Vec::new());
        }
    }
    let schedule = Schedule::from_labels(&server.labels)?;
    let policy = schedule
        .as_ref()
        .map_or_else(|| json!({ "plan": "daily", "hour": 0 }), backup_policy);
    let kind = if change {
        "change_backup_policy"
    } else {
        "enable_backups"
    };
    match schedule.as_ref().and_then(window_note) {
        Some(note) => tracing::warn!("{note}"),
        None => tracing::info!(droplet = %server.id, "{}", describe_policy(&policy)),
    }
    let r: ActionEnvelope = c
        .post(
            &format!("/v2/droplets/{}/actions", id_of(&server.id)?),
            &json!({ "type": kind, "backup_policy": policy }),
        )
        .await?;
    let mut op = r.action.operation();
    op.what = format!("{kind}: {}", describe_policy(&policy));
    Ok(vec![op])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn datetime(s: &str) -> OffsetDateTime {
        OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).unwrap()
    }

    fn image(id: i64, name: &str, at: OffsetDateTime, kind: &str) -> Image {
        Image {
            id,
            name: name.into(),
            kind: kind.into(),
            created_at: Some(at),
            status: Some("available".into()),
            tags: None,
        }
    }

    #[test]
    fn the_image_is_found_by_the_action_s_start_and_its_name() {
        let t = datetime("2026-11-25T03:00:01Z");
        let provisional = Snapshot {
            id: String::new(),
            name: "web1-20261125T0300Z".into(),
            created: t,
            status: SnapshotStatus::Creating,
            labels: Labels::new(),
        };
        let images = vec![
            image(
                1,
                "web1-20261124T0300Z",
                datetime("2026-11-24T03:00:01Z"),
                "snapshot",
            ),
            image(2, "web1-20261125T0300Z", t, "backup"),
            image(3, "someone-else", t, "snapshot"),
            image(4, "web1-20261125T0300Z", t, "snapshot"),
        ];
        assert_eq!(pick(images, &provisional).unwrap().id, 4);
        assert!(pick(vec![image(5, "x", t, "snapshot")], &provisional).is_none());
    }

    #[test]
    fn backup_windows_are_four_hours() {
        let s = |spec: &str, h: u8| {
            Schedule::parse(
                spec,
                time::Time::from_hms(h, 30, 0).unwrap(),
                time::Weekday::Sunday,
            )
            .unwrap()
            .unwrap()
        };
        assert_eq!(
            backup_policy(&s("daily:7", 3)),
            json!({"plan":"daily","hour":0})
        );
        assert_eq!(
            backup_policy(&s("daily:7", 23)),
            json!({"plan":"daily","hour":20})
        );
        assert_eq!(
            backup_policy(&s("weekly:4", 9)),
            json!({"plan":"weekly","weekday":"SUN","hour":8})
        );
        assert_eq!(
            describe_policy(&backup_policy(&s("daily:7", 22))),
            "daily backups in the 20:00-00:00 UTC window"
        );
        assert_eq!(
            window_note(&s("daily:7", 5)).unwrap(),
            "--snapshot-time 05:30: DigitalOcean backs up at a time of its choosing within 4-hour windows: daily backups in the 04:00-08:00 UTC window"
        );
        let on_the_hour = Schedule::parse(
            "daily:7",
            time::Time::from_hms(8, 0, 0).unwrap(),
            time::Weekday::Sunday,
        )
        .unwrap()
        .unwrap();
        assert_eq!(window_note(&on_the_hour), None);
    }
}
