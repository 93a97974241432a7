//! Hetzner Cloud as the binary's registry lists it: defaults, limits, engines, credentials.

use bootstrap_core::describe::{ENGINE_JOB, Limits};
use bootstrap_core::{Defaults, Description, Error, ErrorKind, OwnershipModel, Provider};

use crate::{Hetzner, USER_DATA_MAX_BYTES, config, defaults};

/// Hetzner Cloud: labels on everything, its own daily backups, no provider-only flags.
pub static DESCRIPTION: Description = Description {
    name: "hetzner",
    title: "Hetzner Cloud",
    credential_vars: &[config::HCLOUD_TOKEN],
    credential_sources: "the hcloud CLI's active context (~/.config/hcloud/cli.toml)",
    defaults: Defaults {
        server_type: defaults::SERVER_TYPE,
        image: defaults::IMAGE,
        location: defaults::LOCATION,
    },
    limits: Limits {
        user_data_max_bytes: USER_DATA_MAX_BYTES,
    },
    snapshot_engines: &[ENGINE_JOB],
    provider_backups: true,
    ownership: OwnershipModel::LABELS,
    key_resource: true,
    unique_key_names: true,
    key_goes_beside_server: true,
    visibility_grace: std::time::Duration::ZERO,
    flags: &[],
    create_flags: &[],
    context: Some("an hcloud CLI context (hcloud context list)"),
    location_help: "a Hetzner location such as fsn1 (Falkenstein), nbg1, hel1, ash, hil, sin",
    location_flag: None,
    default_location: || None,
    check_flags: |_| Ok(()),
    // Names are checked read-only against the API (`check_server_options`): Hetzner adds types
    // and locations often, so no offline list would stay right.
    check_server: |_, _, _, _| Ok(()),
    connect: |c| {
        Box::pin(async move {
            let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
            let creds = config::credentials(c.context.as_deref(), &env)
                .map_err(|e| Error::new(ErrorKind::InvalidInput, e.to_string()))?;
            // --endpoint / BOOTSTRAP_HETZNER_ENDPOINT, else HCLOUD_ENDPOINT or the context's.
            Ok(
                Box::new(Hetzner::with_credentials(&creds, c.endpoint.as_deref())?)
                    as Box<dyn Provider>,
            )
        })
    },
};
