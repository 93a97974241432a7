//! AWS's flag group: the flags only `--provider aws` takes, as clap types the binary flattens
//! into its commands, and their values for the provider-neutral connect options.

use std::collections::BTreeMap;

use clap::Args;

/// Flags only `--provider aws` takes: which account and region.
#[derive(Debug, Clone, Default, Args)]
pub struct AwsArgs {
    /// AWS region (default: AWS_REGION, else the profile's `region`).
    #[arg(long, value_name = "REGION", help_heading = "AWS")]
    pub region: Option<String>,
    /// AWS profile of ~/.aws/config and credentials (default: AWS_PROFILE, else `default`).
    #[arg(long, value_name = "NAME", help_heading = "AWS")]
    pub profile: Option<String>,
}

/// Flags only `create --provider aws` takes: where in the account's network.
#[derive(Debug, Clone, Default, Args)]
pub struct AwsNetworkArgs {
    /// VPC of the security group and instance (default: the region's default VPC).
    #[arg(long, value_name = "VPC_ID", help_heading = "AWS")]
    pub vpc: Option<String>,
    /// Subnet to launch into (default: a default subnet of the default VPC).
    #[arg(long, value_name = "SUBNET_ID", help_heading = "AWS")]
    pub subnet: Option<String>,
}

impl AwsArgs {
    /// Adds the flags the user set, by flag name.
    pub fn values(&self, out: &mut BTreeMap<&'static str, String>) {
        set(out, "--region", &self.region);
        set(out, "--profile", &self.profile);
    }
}

impl AwsNetworkArgs {
    /// Adds the flags the user set, by flag name.
    pub fn values(&self, out: &mut BTreeMap<&'static str, String>) {
        set(out, "--vpc", &self.vpc);
        set(out, "--subnet", &self.subnet);
    }
}

fn set(out: &mut BTreeMap<&'static str, String>, flag: &'static str, v: &Option<String>) {
    if let Some(v) = v {
        out.insert(flag, v.clone());
    }
}
