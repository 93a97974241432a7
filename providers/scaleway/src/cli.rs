//! Scaleway's flag group: the flags only `--provider scaleway` takes, as clap types the binary
//! flattens into its commands, and their values for the provider-neutral connect options.

use std::collections::BTreeMap;

use clap::Args;

/// The flag naming the zone on every command.
pub const ZONE_FLAG: &str = "--zone";

/// Flags only `--provider scaleway` takes: which zone.
#[derive(Debug, Clone, Default, Args)]
pub struct ScalewayArgs {
    /// Scaleway zone, e.g. fr-par-1, nl-ams-1 (default: SCW_DEFAULT_ZONE, else the scw
    /// profile's default_zone, else fr-par-1); `create --location` means the same.
    #[arg(long, value_name = "ZONE", help_heading = "Scaleway")]
    pub zone: Option<String>,
}

impl ScalewayArgs {
    /// Adds the flags the user set, by flag name.
    pub fn values(&self, out: &mut BTreeMap<&'static str, String>) {
        if let Some(z) = &self.zone {
            out.insert(ZONE_FLAG, z.clone());
        }
    }
}

/// Flags only `create --provider scaleway` takes: the `serverless-jobs` engine's image.
#[derive(Debug, Clone, Default, Args)]
pub struct ScalewayCreateArgs {
    /// With --snapshot-engine serverless-jobs: the image of bootstrap you pushed (entrypoint:
    /// the binary), which the Serverless Jobs definition runs on the schedule, e.g.
    /// rg.fr-par.scw.cloud/NAMESPACE/bootstrap:TAG. (`--image` is the server's OS image.)
    #[arg(long, value_name = "IMAGE", help_heading = "Scaleway")]
    pub job_image: Option<String>,
}

impl ScalewayCreateArgs {
    /// Adds the flags the user set, by flag name.
    pub fn values(&self, out: &mut BTreeMap<&'static str, String>) {
        if let Some(i) = &self.job_image {
            out.insert(crate::jobs::JOB_IMAGE_FLAG, i.clone());
        }
    }
}
