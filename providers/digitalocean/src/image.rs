//! Images (`/v2/images`): whether an image exists, our snapshots (images of type `snapshot`
//! carrying our tags), and DigitalOcean's own backups.
//!
//! A snapshot is the droplet action `snapshot` (201 `{action}`), which never tells the image
//! id. Once the action completed, [`finish_many`] finds the image and tags it. For a job over
//! many droplets that is one listing of the droplets for the whole batch (each droplet lists
//! its `snapshot_ids`: the one that is new since the droplet was listed is the action's) and
//! one call per tag for all the batch's images; for a few, or when that is ambiguous (a
//! concurrent run's twin), `GET /v2/droplets/{id}/snapshots` finds it by its `created_at`
//! (equal to the action's `started_at`), with the name as a cross-check. Backups are images of
//! type `backup`: nothing here lists, tags or deletes one.
//!
//! What listings told is not asked again ([`Seen`]): a snapshot listed as ours is deleted
//! without a read first, and a tag that a listed image or droplet still carries is not read to
//! see whether it can go.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Mutex;

use bootstrap_core::model::LABEL_MANAGED_BY;
use bootstrap_core::schedule::{Every, Schedule};
use bootstrap_core::{
    Created, Error, ErrorKind, Labels, Operation, Result, Server, Snapshot, SnapshotStatus,
    SnapshotToFinish,
};
use futures::StreamExt as _;
use serde_json::json;
use time::OffsetDateTime;

use crate::client::{Client, PER_PAGE, id_of};
use crate::schema::{ActionEnvelope, Droplet, Image, ImageEnvelope, TAG_SEP};
use crate::server::filter_tag;
use crate::tags;

/// Resources per `POST /v2/tags/{tag}/resources`: the document sets no limit; a bounded body.
const TAGGED_PER_CALL: usize = 50;

/// What listings told this adapter: the snapshot images of each listed droplet, our snapshots
/// as listed (with their tags), and the tags known to exist.
#[derive(Debug, Default)]
pub(crate) struct Seen {
    droplet_images: Mutex<HashMap<String, Vec<i64>>>,
    ours: Mutex<HashMap<String, Vec<String>>>,
    tags: Mutex<HashSet<String>>,
}

impl Seen {
    /// Notes the listed droplets' images and tags.
    pub(crate) fn droplets(&self, listed: &[Droplet]) {
        if let Ok(mut m) = self.droplet_images.lock() {
            for d in listed {
                if let Some(ids) = &d.snapshot_ids {
                    m.insert(d.id.to_string(), ids.clone());
                }
            }
        }
        self.tags_exist(listed.iter().flat_map(|d| d.tags.iter().flatten()));
    }

    /// Notes the listed snapshots that are ours, with their tags.
    pub(crate) fn snapshots(&self, listed: &[Snapshot]) {
        let ours: Vec<(String, Vec<String>)> = listed
            .iter()
            .filter(|s| {
                s.labels.get(LABEL_MANAGED_BY) == Some(bootstrap_core::model::MANAGED_BY_VALUE)
            })
            .map(|s| (s.id.clone(), s.labels.to_flat_tags(TAG_SEP)))
            .collect();
        self.tags_exist(ours.iter().flat_map(|(_, t)| t));
        if let Ok(mut o) = self.ours.lock() {
            o.extend(ours);
        }
    }

    fn tags_exist<'a>(&self, tags: impl Iterator<Item = &'a String>) {
        if let Ok(mut t) = self.tags.lock() {
            t.extend(tags.cloned());
        }
    }

    fn tag_exists(&self, tag: &str) -> bool {
        self.tags.lock().is_ok_and(|t| t.contains(tag))
    }

    /// How many droplets the last listings showed.
    fn droplet_count(&self) -> usize {
        self.droplet_images.lock().map_or(0, |m| m.len())
    }

    /// The images droplet `id` had when it was listed.
    fn images_of(&self, id: &str) -> Option<Vec<i64>> {
        self.droplet_images.lock().ok()?.get(id).cloned()
    }

    /// The tags of our snapshot `id`, when a listing showed it.
    fn ours_tags(&self, id: &str) -> Option<Vec<String>> {
        self.ours.lock().ok()?.get(id).cloned()
    }

    fn forget(&self, id: &str) {
        if let Ok(mut o) = self.ours.lock() {
            o.remove(id);
        }
    }

    /// Whether one of our snapshots still known carries `tag`.
    fn carried(&self, tag: &str) -> bool {
        self.ours
            .lock()
            .is_ok_and(|o| o.values().any(|t| t.iter().any(|x| x == tag)))
    }
}

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

/// Finds the images the snapshot actions made and tags them, each item answered on its own: an
/// image not listed yet is a `Transient` error (the core tries again later). Idempotent: a
/// snapshot with an id is only (re)tagged.
///
/// Where the batch has more snapshots than the droplets' listing has pages, that one listing
/// finds them all: a droplet's image that is new since the droplet was listed is its action's.
/// Otherwise (and where two are new: a concurrent run's twin) the droplet's own snapshot list
/// tells, by the action's start. Each tag then takes one call (per 50 images) for the batch.
pub(crate) async fn finish_many(
    c: &Client,
    seen: &Seen,
    items: &[SnapshotToFinish],
) -> Result<Vec<Result<Snapshot>>> {
    let unfound = items.iter().filter(|i| i.snapshot.id.is_empty()).count();
    let pages = seen.droplet_count().div_ceil(PER_PAGE as usize).max(1);
    let now: HashMap<String, Vec<i64>> = if unfound > pages {
        let droplets: Vec<Droplet> = c
            .list_all(
                "/v2/droplets",
                "droplets",
                vec![("tag_name", filter_tag(&Labels::managed()))],
            )
            .await?;
        droplets
            .into_iter()
            .map(|d| (d.id.to_string(), d.snapshot_ids.unwrap_or_default()))
            .collect()
    } else {
        HashMap::new()
    };
    let mut out: Vec<Result<Snapshot>> = Vec::with_capacity(items.len());
    for i in items {
        out.push(if i.snapshot.id.is_empty() {
            let new: Option<Vec<i64>> = now
                .get(&i.server.id)
                .zip(seen.images_of(&i.server.id))
                .map(|(after, before)| {
                    after
                        .iter()
                        .filter(|x| !before.contains(x))
                        .copied()
                        .collect()
                });
            match new.as_deref() {
                Some([id]) => Ok(Snapshot {
                    id: id.to_string(),
                    status: SnapshotStatus::Available,
                    ..i.snapshot.clone()
                }),
                Some([]) => Err(not_listed_yet(&i.server, &i.snapshot)),
                _ => find(c, &i.server, &i.snapshot).await.map(Image::snapshot),
            }
        } else {
            Ok(i.snapshot.clone())
        });
    }
    // One call per tag (and per 50 images) for every image found.
    let mut by_tag: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (n, i) in items.iter().enumerate() {
        if out[n].is_ok() {
            for t in i.labels.to_flat_tags(TAG_SEP) {
                by_tag.entry(t).or_default().push(n);
            }
        }
    }
    // The tags side by side, CALLS_AT_ONCE at a time (each deployment's own tag is one call per
    // image: one after another they made a job's finish take a tenth of a second per server).
    let calls = by_tag.into_iter().map(|(tag, carriers)| {
        let resources: Vec<(String, &str)> = carriers
            .iter()
            .filter_map(|n| out[*n].as_ref().ok().map(|s| (s.id.clone(), "image")))
            .collect();
        async move {
            let r = attach_many(c, seen, &tag, &resources).await;
            (carriers, r)
        }
    });
    let failed: Vec<(Vec<usize>, Result<()>)> = futures::stream::iter(calls)
        .buffer_unordered(bootstrap_core::http::CALLS_AT_ONCE)
        .collect()
        .await;
    for (carriers, r) in failed {
        if let Err(e) = r {
            for n in carriers {
                out[n] = Err(Error::new(e.kind().clone(), e.to_string()));
            }
        }
    }
    for (r, i) in out.iter_mut().zip(items) {
        if let Ok(s) = r {
            s.labels = i.labels.clone();
            s.status = SnapshotStatus::Available;
        }
    }
    let done: Vec<Snapshot> = out
        .iter()
        .filter_map(|r| r.as_ref().ok().cloned())
        .collect();
    seen.snapshots(&done);
    Ok(out)
}

/// Puts `tag` on `resources`, making the tag first unless a listing showed it exists (or it
/// was deleted since: the call answers 404, and the tag is made then).
async fn attach_many(
    c: &Client,
    seen: &Seen,
    tag: &str,
    resources: &[(String, &str)],
) -> Result<()> {
    if !seen.tag_exists(tag) {
        tags::ensure(c, tag).await?;
        seen.tags_exist(std::iter::once(&tag.to_owned()));
    }
    for chunk in resources.chunks(TAGGED_PER_CALL) {
        match tags::attach_existing(c, tag, chunk).await {
            Err(e) if e.is_not_found() => {
                tags::ensure(c, tag).await?;
                tags::attach_existing(c, tag, chunk).await?;
            }
            r => r?,
        }
    }
    Ok(())
}

/// The action is done but the droplet does not list its image yet: may pass.
fn not_listed_yet(server: &Server, snapshot: &Snapshot) -> Error {
    Error::new(
        ErrorKind::Transient,
        format!(
            "snapshot {} of droplet {} (started {}) is not among its snapshots yet",
            snapshot.name, server.id, snapshot.created
        ),
    )
}

/// The image the action made, from the droplet's own snapshot list.
async fn find(c: &Client, server: &Server, snapshot: &Snapshot) -> Result<Image> {
    let images: Vec<Image> = c
        .list_all(
            &format!("/v2/droplets/{}/snapshots", id_of(&server.id)?),
            "snapshots",
            vec![],
        )
        .await?;
    pick(images, snapshot).ok_or_else(|| not_listed_yet(server, snapshot))
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

/// Deletes one of our snapshots (one already gone is fine), then its slot tag (and
/// `managed-by:bootstrap`) once nothing carries it. A backup, or an image without our tag, is refused. One a listing showed as ours
/// is deleted without a read first; a tag that one of our listed snapshots, or (the deployment's)
/// a droplet still carries (`on_a_droplet`), is kept without a read.
pub(crate) async fn delete(
    c: &Client,
    seen: &Seen,
    id: &str,
    on_a_droplet: &(dyn Fn(&str) -> bool + Send + Sync),
) -> Result<()> {
    let path = format!("/v2/images/{}", id_of(id)?);
    let tags = match seen.ours_tags(id) {
        Some(tags) => {
            c.delete(&path).await?;
            tags
        }
        None => {
            let Some(image) = c.get_opt::<ImageEnvelope>(&path).await?.map(|e| e.image) else {
                return Ok(());
            };
            let ours = Labels::from_flat_tags(image.tags.iter().flatten(), TAG_SEP)
                .get(LABEL_MANAGED_BY)
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
            image.tags.unwrap_or_default()
        }
    };
    seen.forget(id);
    // Its slot tag was its own; its deployment tag goes too once nothing carries it and no
    // firewall applies to it (a deployment destroyed with --delete-snapshots).
    let slot = format!("{}{TAG_SEP}", bootstrap_core::schedule::LABEL_SLOT);
    let deployment = format!("{}{TAG_SEP}", bootstrap_core::model::LABEL_DEPLOYMENT);
    let managed = format!(
        "{LABEL_MANAGED_BY}{TAG_SEP}{}",
        bootstrap_core::model::MANAGED_BY_VALUE
    );
    for t in &tags {
        if seen.carried(t) {
            continue;
        }
        // The slot tag, and `managed-by:bootstrap` when nothing listed carries it (the last
        // snapshot of the last deployment: `destroy --delete-snapshots` left it, empty).
        if t.starts_with(&slot) || *t == managed {
            tags::delete_if_unused(c, t).await?;
        } else if t.starts_with(&deployment) && !on_a_droplet(t) {
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
