//! The `serverless-jobs` snapshot engine: the schedule Scaleway's own documentation recommends,
//! kept at the provider like DLM on AWS, but running this tool's own job.
//!
//! One job definition per deployment, named `bootstrap-<name>`, with a cron schedule derived
//! from the server's schedule (UTC). It runs the user's pushed image of this tool, whose
//! entrypoint is the binary (as for `snapshot install --kubernetes`), with the arguments
//! `snapshot run --provider scaleway --zone <zone>`; `SCW_DEFAULT_PROJECT_ID` and
//! `SCW_DEFAULT_ZONE` are plain environment values, the secret key reaches the job only as
//! `SCW_SECRET_KEY` from a Secret Manager secret that the job definition references, never as
//! a plain value.
//!
//! | schedule | cron (UTC) |
//! |---|---|
//! | hourly at :MM | `MM * * * *` |
//! | Nh from HH:MM | `MM h1,h2,.. * * *` (every hour congruent to HH mod N) |
//! | daily at HH:MM | `MM HH * * *` |
//! | weekly on DAY at HH:MM | `MM HH * * D` (0 = Sunday) |
//!
//! Job definitions carry no tags: ours is proven by its name and by our labels, written as flat
//! tags between brackets at the end of its description (`... [managed-by=bootstrap
//! bootstrap-deployment=web1]`). The secret carries them as real tags.
//!
//! Wire shapes: Serverless Jobs v1alpha2 and Secret Manager v1beta1 after the official Go SDK
//! (`scaleway/scaleway-sdk-go` `api/jobs/v1alpha2/jobs_sdk.go`, `api/secret/v1beta1/secret_sdk.go`,
//! commit 2c5cd81b) and the live recordings of Scaleway's Terraform provider
//! (`scaleway/terraform-provider-scaleway` `internal/services/jobs/testdata/*.cassette.yaml`, commit
//! b2d45ed4). Scaleway publishes no OpenAPI document of either API in any repository found, so
//! no Prism contract test covers these requests; the fake follows the recordings.
//!
//! Creating is three resources (secret and its version, job definition, secret reference). A
//! failure part-way removes what this call made, looked up by name where an answer was lost, so
//! that the core's find-or-create never finds a half-made schedule and rollback has nothing to
//! miss. Deleting removes the referenced secrets first and the job definition last: a teardown
//! that stops in between still finds the job definition next time.

use std::collections::BTreeSet;

use base64::Engine as _;
use bootstrap_core::schedule::{Every, Schedule};
use bootstrap_core::{
    Error, ErrorKind, Labels, NativeSchedule, NativeScheduleSpec, Result, Secret,
};
use serde_json::json;

use crate::client::{Client, ok_if_missing, uuid};
use crate::config::{SCW_DEFAULT_PROJECT_ID, SCW_DEFAULT_ZONE, SCW_SECRET_KEY};
use crate::schema::{JobDefinition, JobSecretRef, ManagerSecret, labels_of};
use crate::{filter_tag, tags};

/// The engine's name (`--snapshot-engine serverless-jobs`).
pub const ENGINE: &str = "serverless-jobs";
/// The `create` flag naming the image the job runs.
pub const JOB_IMAGE_FLAG: &str = "--job-image";
/// Regions that run Serverless Jobs (Scaleway's product availability).
pub const REGIONS: &[&str] = &["fr-par", "nl-ams", "pl-waw"];
/// The job's resources: the values Scaleway's Terraform recordings show the live API accept
/// (120 mvCPU, 256 MiB, 5120 MiB of local storage); the job is one short API client.
const CPU_LIMIT: u32 = 120;
const MEMORY_LIMIT: u32 = 256;
const LOCAL_STORAGE: u32 = 5120;
/// A run that takes longer is stuck: the next slot tries again.
const JOB_TIMEOUT: &str = "3600s";
/// Where our secrets live in Secret Manager's directory tree.
const SECRET_PATH: &str = "/bootstrap";

/// The cron expression (UTC) of a schedule.
pub(crate) fn cron(s: &Schedule) -> String {
    let (h, m) = (s.at.hour(), s.at.minute());
    match s.every {
        Every::Hourly => format!("{m} * * * *"),
        Every::Hours(n) => {
            let n = n.max(1);
            let hours: Vec<String> = (0..24u8)
                .filter(|x| x % n == h % n)
                .map(|x| x.to_string())
                .collect();
            format!("{m} {} * * *", hours.join(","))
        }
        Every::Daily => format!("{m} {h} * * *"),
        Every::Weekly(d) => format!("{m} {h} * * {}", d.number_days_from_sunday()),
    }
}

/// Checks `--job-image` offline: a registry reference, nothing a shell or JSON would mangle.
pub fn check_image(image: &str) -> Result<()> {
    let ok = !image.is_empty()
        && image.len() <= 255
        && image.contains('/')
        && image
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "./:-_@".contains(c));
    if ok {
        Ok(())
    } else {
        Err(Error::new(
            ErrorKind::InvalidInput,
            format!(
                "{JOB_IMAGE_FLAG} {image:?}: give the image you pushed, e.g. rg.fr-par.scw.cloud/NAMESPACE/bootstrap:TAG"
            ),
        ))
    }
}

/// Checks offline that the engine can run in `zone`'s region.
pub fn check_region(zone: &str) -> Result<()> {
    let region = crate::client::region_of(zone);
    if REGIONS.contains(&region) {
        return Ok(());
    }
    Err(Error::new(
        ErrorKind::InvalidInput,
        format!(
            "--snapshot-engine {ENGINE}: Serverless Jobs does not run in {region} (zone {zone}); use a zone of {} or --snapshot-engine job",
            REGIONS.join(", ")
        ),
    ))
}

/// Our labels from a job definition's description (`... [k=v k=v]`).
fn labels_of_description(d: &str) -> Labels {
    let Some(inner) = d
        .trim_end()
        .strip_suffix(']')
        .and_then(|s| s.rsplit_once('[').map(|(_, t)| t))
    else {
        return Labels::new();
    };
    let flat: Vec<String> = inner.split_whitespace().map(str::to_owned).collect();
    labels_of(&flat)
}

fn to_schedule(j: &JobDefinition) -> NativeSchedule {
    NativeSchedule {
        id: j.id.clone(),
        name: j.name.clone(),
        labels: labels_of_description(&j.description),
    }
}

/// Our job definitions (named `bootstrap-...`) carrying every label of `selector`.
async fn job_definitions(c: &Client, selector: &Labels) -> Result<Vec<JobDefinition>> {
    let all: Vec<JobDefinition> = c
        .list_counted(
            &c.jobs("/job-definitions"),
            "job_definitions",
            vec![("project_id", c.project.clone())],
        )
        .await?;
    Ok(all
        .into_iter()
        .filter(|j| {
            j.name.starts_with("bootstrap-")
                && labels_of_description(&j.description).matches(selector)
        })
        .collect())
}

/// The engine's schedules carrying every label of `selector`: one job definition each.
pub(crate) async fn list(c: &Client, selector: &Labels) -> Result<Vec<NativeSchedule>> {
    Ok(job_definitions(c, selector)
        .await?
        .iter()
        .map(to_schedule)
        .collect())
}

/// Our Secret Manager secrets named `name` (a lost create answer is found this way).
async fn secrets_named(c: &Client, name: &str, labels: &Labels) -> Result<Vec<ManagerSecret>> {
    let mut q = vec![("project_id", c.project.clone()), ("name", name.to_owned())];
    if let Some(t) = filter_tag(labels) {
        q.push(("tags", t));
    }
    let all: Vec<ManagerSecret> = c.list_counted(&c.secrets("/secrets"), "secrets", q).await?;
    Ok(all
        .into_iter()
        .filter(|s| s.name == name && labels_of(&s.tags).matches(labels))
        .collect())
}

/// A name no other secret of ours has: Secret Manager names are unique per path, and a
/// schedule change makes the new job's secret while the old one still exists.
fn secret_name(deployment: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    // The low 40 bits of the clock: distinct for calls more than a nanosecond apart.
    format!("bootstrap-{deployment}-{:010x}", nanos & 0xff_ffff_ffff)
}

/// What one create call made so far, for its own clean-up.
#[derive(Default)]
struct Made {
    secret: Option<String>,
    job: Option<String>,
}

/// Creates the deployment's job definition and its secret. `image` is `--job-image`, or `None`
/// to keep the image of the deployment's current job definition (`snapshot set`).
pub(crate) async fn create(
    c: &Client,
    key: &Secret,
    image: Option<&str>,
    spec: &NativeScheduleSpec,
) -> Result<NativeSchedule> {
    let zone = c.zone();
    check_region(&zone)?;
    let existing = job_definitions(c, &spec.labels).await?;
    let image = match image {
        Some(i) => i.to_owned(),
        None => existing
            .iter()
            .map(|j| j.image_uri.clone())
            .find(|i| !i.is_empty())
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::InvalidInput,
                    format!(
                        "--snapshot-engine {ENGINE} runs your image of bootstrap: give {JOB_IMAGE_FLAG} (push it to your registry first)"
                    ),
                )
            })?,
    };
    check_image(&image)?;
    let before: BTreeSet<String> = existing.into_iter().map(|j| j.id).collect();
    let secret_name = secret_name(spec.deployment.as_str());
    let mut made = Made::default();
    match make(c, key, &image, &zone, spec, &secret_name, &mut made).await {
        Ok(s) => Ok(s),
        Err(e) => {
            // Leave nothing half-made: what this call created, also where its answer was lost.
            let cleaned = clean_up(c, spec, &secret_name, &before, &made).await;
            if let Err(ce) = cleaned {
                tracing::warn!(error = %ce, "could not remove the half-made Serverless Jobs schedule");
            }
            Err(e)
        }
    }
}

async fn make(
    c: &Client,
    key: &Secret,
    image: &str,
    zone: &str,
    spec: &NativeScheduleSpec,
    secret_name: &str,
    made: &mut Made,
) -> Result<NativeSchedule> {
    let name = format!("bootstrap-{}", spec.deployment);
    let secret: ManagerSecret = c
        .post(
            &c.secrets("/secrets"),
            &json!({
                "project_id": c.project,
                "name": secret_name,
                "tags": tags(&spec.labels),
                "description": format!("Scaleway secret key of the snapshot job {name}, made by bootstrap"),
                "type": "opaque",
                "path": SECRET_PATH,
                "protected": false,
            }),
        )
        .await?;
    made.secret = Some(secret.id.clone());
    let data = base64::engine::general_purpose::STANDARD.encode(key.expose());
    let _: serde_json::Value = c
        .post(
            &c.secrets(&format!("/secrets/{}/versions", uuid(&secret.id)?)),
            &json!({ "data": data }),
        )
        .await?;
    let job: JobDefinition = c
        .post(
            &c.jobs("/job-definitions"),
            &json!({
                "name": name,
                "cpu_limit": CPU_LIMIT,
                "memory_limit": MEMORY_LIMIT,
                "local_storage_capacity": LOCAL_STORAGE,
                "image_uri": image,
                // The image's entrypoint is the binary, as for `snapshot install --kubernetes`.
                "startup_command": [],
                "args": ["snapshot", "run", "--provider", "scaleway", "--zone", zone],
                "project_id": c.project,
                "environment_variables": {
                    SCW_DEFAULT_PROJECT_ID: c.project,
                    SCW_DEFAULT_ZONE: zone,
                },
                "description": format!("{} [{}]", spec.name, tags(&spec.labels).join(" ")),
                "job_timeout": JOB_TIMEOUT,
                "cron_schedule": {"schedule": cron(&spec.schedule), "timezone": "UTC"},
            }),
        )
        .await?;
    made.job = Some(job.id.clone());
    let _: serde_json::Value = c
        .post(
            &c.jobs("/secrets"),
            &json!({
                "job_definition_id": job.id,
                "secrets": [{
                    "secret_manager_id": secret.id,
                    "secret_manager_version": "latest",
                    "env_var_name": SCW_SECRET_KEY,
                }],
            }),
        )
        .await?;
    Ok(to_schedule(&job))
}

/// Removes what a failed create made: its secret (by id, else by its unique name) and any job
/// definition of the deployment that was not there before it.
async fn clean_up(
    c: &Client,
    spec: &NativeScheduleSpec,
    secret_name: &str,
    before: &BTreeSet<String>,
    made: &Made,
) -> Result<()> {
    let mut jobs: BTreeSet<String> = made.job.iter().cloned().collect();
    jobs.extend(
        job_definitions(c, &spec.labels)
            .await?
            .into_iter()
            .map(|j| j.id)
            .filter(|id| !before.contains(id)),
    );
    for id in jobs {
        c.delete(&c.jobs(&format!("/job-definitions/{}", uuid(&id)?)))
            .await?;
    }
    let mut secrets: BTreeSet<String> = made.secret.iter().cloned().collect();
    secrets.extend(
        secrets_named(c, secret_name, &spec.labels)
            .await?
            .into_iter()
            .map(|s| s.id),
    );
    for id in secrets {
        c.delete(&c.secrets(&format!("/secrets/{}", uuid(&id)?)))
            .await?;
    }
    Ok(())
}

/// Deletes a job definition of ours and the Secret Manager secrets it references (those that
/// carry our tags); the job definition goes last. A missing one is fine.
pub(crate) async fn delete(c: &Client, id: &str) -> Result<()> {
    let id = uuid(id)?;
    let Some(job) = c
        .get_opt::<JobDefinition>(&c.jobs(&format!("/job-definitions/{id}")))
        .await?
    else {
        return Ok(());
    };
    let labels = labels_of_description(&job.description);
    if !job.name.starts_with("bootstrap-") || labels.deployment_name().is_none() {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!(
                "job definition {} ({id}) is not one of bootstrap's; not deleting it",
                job.name
            ),
        ));
    }
    let refs: Vec<JobSecretRef> = c
        .list_counted(
            &c.jobs("/secrets"),
            "secrets",
            vec![("job_definition_id", id.to_owned())],
        )
        .await?;
    for r in refs {
        let Ok(sid) = uuid(&r.secret_manager_id) else {
            continue;
        };
        let path = c.secrets(&format!("/secrets/{sid}"));
        let Some(s) = ok_if_missing(c.get::<ManagerSecret>(&path, &[]).await)? else {
            continue;
        };
        // Only a secret of ours: the user may have pointed a job at one of theirs.
        if labels_of(&s.tags).matches(&labels) {
            c.delete(&path).await?;
        }
    }
    c.delete(&c.jobs(&format!("/job-definitions/{id}"))).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use bootstrap_core::schedule::{parse_time, parse_weekday};

    fn sched(spec: &str, at: &str, day: &str) -> Schedule {
        Schedule::parse(spec, parse_time(at).unwrap(), parse_weekday(day).unwrap())
            .unwrap()
            .unwrap()
    }

    #[test]
    fn schedules_become_utc_cron_expressions() {
        assert_eq!(cron(&sched("daily:7", "03:00", "sun")), "0 3 * * *");
        assert_eq!(cron(&sched("hourly:24", "03:15", "sun")), "15 * * * *");
        assert_eq!(cron(&sched("12h:14", "06:30", "sun")), "30 6,18 * * *");
        assert_eq!(cron(&sched("6h:4", "21:05", "sun")), "5 3,9,15,21 * * *");
        assert_eq!(cron(&sched("weekly:4", "03:05", "sun")), "5 3 * * 0");
        assert_eq!(cron(&sched("weekly:4", "23:59", "sat")), "59 23 * * 6");
    }

    #[test]
    fn labels_live_at_the_end_of_the_description() {
        let l = labels_of_description(
            "bootstrap web1 daily-0300 keep 7 [bootstrap-deployment=web1 managed-by=bootstrap]",
        );
        assert_eq!(l.deployment_name(), Some("web1"));
        assert_eq!(l.get("managed-by"), Some("bootstrap"));
        assert!(labels_of_description("someone's job").is_empty());
        assert!(labels_of_description("[unclosed").is_empty());
    }

    #[test]
    fn images_and_regions_are_checked_offline() {
        assert!(check_image("rg.fr-par.scw.cloud/ns/bootstrap:1.2").is_ok());
        assert!(check_image("ghcr.io/me/bootstrap@sha256:abc").is_ok());
        for bad in [
            "",
            "bootstrap",
            "rg.fr-par.scw.cloud/ns/boot strap",
            "a/b\"c",
        ] {
            let e = check_image(bad).unwrap_err();
            assert_eq!(e.kind(), &ErrorKind::InvalidInput, "{bad}");
            assert!(e.to_string().contains("--job-image"), "{e}");
        }
        assert!(check_region("fr-par-2").is_ok());
        assert!(check_region("pl-waw-3").is_ok());
        let e = check_region("it-mil-1").unwrap_err();
        assert!(e.to_string().contains("it-mil"), "{e}");
    }
}
