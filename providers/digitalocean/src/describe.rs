//! DigitalOcean as the binary's registry lists it: defaults, limits, engines, ownership,
//! credentials.

use bootstrap_core::describe::{ENGINE_JOB, Limits};
use bootstrap_core::{
    Defaults, Description, Error, ErrorKind, Ownership, OwnershipModel, Provider,
};

use crate::{DigitalOcean, USER_DATA_MAX_BYTES, config, defaults};

/// DigitalOcean: `key:value` tags on droplets and images, firewalls and keys ours by name,
/// its own backups with a policy, no provider-only flags.
pub static DESCRIPTION: Description = Description {
    name: "digitalocean",
    title: "DigitalOcean",
    credential_vars: &[config::DIGITALOCEAN_TOKEN],
    credential_sources: "DIGITALOCEAN_ACCESS_TOKEN or the doctl CLI's current context (~/.config/doctl/config.yaml)",
    defaults: Defaults {
        server_type: defaults::SIZE,
        image: defaults::IMAGE,
        location: defaults::REGION,
    },
    limits: Limits {
        user_data_max_bytes: USER_DATA_MAX_BYTES,
    },
    snapshot_engines: &[ENGINE_JOB],
    provider_backups: true,
    ownership: OwnershipModel {
        ssh_key: Ownership::Name,
        firewall: Ownership::Name,
        server: Ownership::FlatTags(crate::schema::TAG_SEP),
        snapshot: Ownership::FlatTags(crate::schema::TAG_SEP),
    },
    key_resource: true,
    unique_key_names: false,
    key_goes_beside_server: false,
    visibility_grace: std::time::Duration::ZERO,
    flags: &[],
    create_flags: &[],
    context: Some("a doctl auth context (doctl auth list)"),
    location_help: "a DigitalOcean region such as fra1 (Frankfurt), ams3, lon1, nyc3, sfo3, sgp1",
    location_flag: None,
    default_location: || None,
    check_flags: |_| Ok(()),
    check_server,
    connect: |c| {
        Box::pin(async move {
            let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
            let creds = config::credentials(c.context.as_deref(), &env).map_err(Error::from)?;
            // --endpoint / BOOTSTRAP_DIGITALOCEAN_ENDPOINT, else DIGITALOCEAN_API_URL or doctl's.
            Ok(Box::new(DigitalOcean::with_credentials(
                &creds,
                c.endpoint.as_deref(),
            )?) as Box<dyn Provider>)
        })
    },
};

/// Slugs are `[a-z0-9-]` (images may be a number): anything else cannot exist, refused offline.
/// Existence is checked read-only against the API before anything is made.
fn check_server(
    size: &str,
    image: &str,
    region: &str,
    _: &bootstrap_core::ConnectOptions,
) -> bootstrap_core::Result<()> {
    let slug = |s: &str| {
        !s.is_empty()
            && s.len() <= 100
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'.'))
    };
    for (flag, value) in [
        ("--server-type", size),
        ("--image", image),
        ("--location", region),
    ] {
        if !slug(value) {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "{flag} {value:?}: DigitalOcean slugs are lowercase letters, digits, '.' and '-' (e.g. s-1vcpu-1gb, ubuntu-24-04-x64, fra1)"
                ),
            ));
        }
    }
    Ok(())
}
