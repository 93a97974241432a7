//! Scaleway as the binary's registry lists it: defaults, limits, engines, credentials.

use std::time::Duration;

use bootstrap_core::describe::{ENGINE_JOB, Limits};
use bootstrap_core::{
    Defaults, Description, Error, ErrorKind, Ownership, OwnershipModel, Provider,
};

use crate::{KNOWN_ZONES, Scaleway, TAG_SEP, USER_DATA_MAX_BYTES, config, defaults};

/// Scaleway: flat `key=value` tags, no key resource, the job as the only snapshot engine.
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
    snapshot_engines: &[ENGINE_JOB],
    provider_backups: false,
    ownership: OwnershipModel {
        // IAM keys carry no tags; never uploaded anyway (`key_resource: false`).
        ssh_key: Ownership::Name,
        firewall: Ownership::FlatTags(TAG_SEP),
        server: Ownership::FlatTags(TAG_SEP),
        snapshot: Ownership::FlatTags(TAG_SEP),
    },
    key_resource: false,
    visibility_grace: Duration::ZERO,
    flags: &[],
    create_flags: &[],
    location_help: "a Scaleway zone such as fr-par-1 (default), fr-par-2, nl-ams-1, pl-waw-1, it-mil-1; other commands use SCW_DEFAULT_ZONE or the scw profile's default_zone",
    check_flags: |_| Ok(()),
    check_server: |server_type, image, zone, _| {
        if !KNOWN_ZONES.contains(&zone) {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "--location {zone}: not a Scaleway zone; use one of {}",
                    KNOWN_ZONES.join(", ")
                ),
            ));
        }
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
            let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
            let creds = config::credentials(c.context.as_deref(), &env).map_err(Error::from)?;
            if let Some(z) = &creds.zone
                && !KNOWN_ZONES.contains(&z.as_str())
            {
                return Err(Error::new(
                    ErrorKind::InvalidInput,
                    format!(
                        "SCW_DEFAULT_ZONE / default_zone {z}: not a Scaleway zone; use one of {}",
                        KNOWN_ZONES.join(", ")
                    ),
                ));
            }
            Ok(
                Box::new(Scaleway::with_credentials(&creds, c.endpoint.as_deref())?)
                    as Box<dyn Provider>,
            )
        })
    },
};
