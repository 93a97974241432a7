//! Scaleway as the binary's registry lists it: defaults, limits, engines, credentials.

use std::time::Duration;

use bootstrap_core::describe::{ENGINE_JOB, Limits};
use bootstrap_core::{
    ConnectOptions, Defaults, Description, Error, ErrorKind, Ownership, OwnershipModel, Provider,
};

use crate::cli::ZONE_FLAG;
use crate::jobs::{self, JOB_IMAGE_FLAG};
use crate::{KNOWN_ZONES, Scaleway, TAG_SEP, USER_DATA_MAX_BYTES, config, defaults};

/// The flag under which the binary hands `create`'s snapshot engine to [`check_server`]'s
/// options (the engine decides whether `--job-image` is needed).
const ENGINE_FLAG: &str = "--snapshot-engine";

/// `--job-image` is needed by, and only by, the `serverless-jobs` engine, which also needs a
/// region where Serverless Jobs runs.
fn check_job_image(zone: &str, c: &ConnectOptions) -> bootstrap_core::Result<()> {
    let engine = c.flag(ENGINE_FLAG).unwrap_or(ENGINE_JOB);
    match (engine == jobs::ENGINE, c.flag(JOB_IMAGE_FLAG)) {
        (true, Some(image)) => {
            jobs::check_image(image)?;
            jobs::check_region(zone)
        }
        (true, None) => Err(Error::new(
            ErrorKind::InvalidInput,
            format!(
                "--snapshot-engine {} runs your image of bootstrap on Serverless Jobs: push it to your registry and give {JOB_IMAGE_FLAG} (e.g. rg.fr-par.scw.cloud/NAMESPACE/bootstrap:TAG), or use --snapshot-engine job",
                jobs::ENGINE
            ),
        )),
        (false, Some(_)) => Err(Error::new(
            ErrorKind::InvalidInput,
            format!(
                "{JOB_IMAGE_FLAG} only applies to --snapshot-engine {}; drop it or add that flag",
                jobs::ENGINE
            ),
        )),
        (false, None) => Ok(()),
    }
}

fn env(k: &str) -> Option<String> {
    std::env::var(k).ok().filter(|v| !v.is_empty())
}

/// A zone the Instance API knows, or the error naming them.
fn check_zone(what: &str, zone: &str) -> bootstrap_core::Result<()> {
    if KNOWN_ZONES.contains(&zone) {
        return Ok(());
    }
    Err(Error::new(
        ErrorKind::InvalidInput,
        format!(
            "{what} {zone}: not a Scaleway zone; use one of {}",
            KNOWN_ZONES.join(", ")
        ),
    ))
}

/// Scaleway: flat `key=value` tags, no key resource; the job by default, or Serverless Jobs.
pub static DESCRIPTION: Description = Description {
    name: "scaleway",
    title: "Scaleway",
    credential_vars: &[
        config::SCW_SECRET_KEY,
        config::SCW_DEFAULT_PROJECT_ID,
        config::SCW_DEFAULT_ZONE,
    ],
    credential_sources: "the scw CLI's active profile (~/.config/scw/config.yaml)",
    defaults: Defaults {
        server_type: defaults::SERVER_TYPE,
        image: defaults::IMAGE,
        location: defaults::ZONE,
    },
    limits: Limits {
        user_data_max_bytes: USER_DATA_MAX_BYTES,
    },
    // The job by default: the Serverless Jobs engine needs an image the user pushed.
    snapshot_engines: &[ENGINE_JOB, jobs::ENGINE],
    provider_backups: false,
    ownership: OwnershipModel {
        // IAM keys carry no tags; never uploaded anyway (`key_resource: false`).
        ssh_key: Ownership::Name,
        firewall: Ownership::FlatTags(TAG_SEP),
        server: Ownership::FlatTags(TAG_SEP),
        snapshot: Ownership::FlatTags(TAG_SEP),
    },
    key_resource: false,
    unique_key_names: false,
    key_goes_beside_server: false,
    visibility_grace: Duration::ZERO,
    flags: &[ZONE_FLAG],
    create_flags: &[JOB_IMAGE_FLAG],
    context: Some("an scw CLI profile (the profiles: section of ~/.config/scw/config.yaml)"),
    location_help: "a Scaleway zone such as fr-par-1, fr-par-2, nl-ams-1, pl-waw-1, it-mil-1, the same as --zone (default: SCW_DEFAULT_ZONE, else the scw profile's default_zone, else fr-par-1)",
    location_flag: Some(ZONE_FLAG),
    default_location: || config::default_zone(&env),
    check_flags: |c| match c.flags.get(ZONE_FLAG) {
        Some(z) => check_zone(ZONE_FLAG, z),
        None => Ok(()),
    },
    check_server: |server_type, image, zone, c| {
        check_zone("zone", zone)?;
        check_job_image(zone, c)?;
        if server_type.trim().is_empty() || image.trim().is_empty() {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                "--server-type and --image must not be empty",
            ));
        }
        Ok(())
    },
    connect: |c| {
        Box::pin(async move {
            let mut creds = config::credentials(c.context.as_deref(), &env).map_err(Error::from)?;
            // `--zone` wins over SCW_DEFAULT_ZONE and the profile.
            if let Some(z) = c.flags.get(ZONE_FLAG) {
                check_zone(ZONE_FLAG, z)?;
                creds.zone = Some(z.clone());
            } else if let Some(z) = &creds.zone {
                check_zone("SCW_DEFAULT_ZONE / default_zone", z)?;
            }
            let job_image = c.flag(JOB_IMAGE_FLAG).map(str::to_owned);
            Ok(Box::new(
                Scaleway::with_credentials(&creds, c.endpoint.as_deref())?
                    .with_job_image(job_image),
            ) as Box<dyn Provider>)
        })
    },
};
