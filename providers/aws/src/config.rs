//! Where the adapter gets its region, credentials and endpoint: aws-config's standard chain
//! (environment, `~/.aws/config` and `credentials`, profiles, SSO, IMDS on EC2), narrowed by the
//! `--region`/`--profile`/`--endpoint` flags; and the offline checks of the AWS-only flags.

use aws_config::BehaviorVersion;
use aws_sdk_ec2::config::{ProvideCredentials, Region};
use bootstrap_core::{Error, ErrorKind, Result};

/// What the user chose for AWS; everything `None` means "the standard chain decides".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AwsOptions {
    /// `--region` (else `AWS_REGION`, else the profile's `region`).
    pub region: Option<String>,
    /// `--profile` (else `AWS_PROFILE`, else `default`).
    pub profile: Option<String>,
    /// `--endpoint` / `BOOTSTRAP_AWS_ENDPOINT` (else `AWS_ENDPOINT_URL`, else AWS's).
    pub endpoint: Option<String>,
    /// `BOOTSTRAP_AWS_DLM_ENDPOINT`: Data Lifecycle Manager's endpoint only (tests point it at a
    /// fake; moto has no DLM). Else `endpoint`, else AWS's.
    pub dlm_endpoint: Option<String>,
    /// `--vpc`: the VPC of the security group (else the subnet's, else the default VPC).
    pub vpc: Option<String>,
    /// `--subnet`: the subnet to launch into (else a default subnet of the default VPC).
    pub subnet: Option<String>,
}

impl AwsOptions {
    /// The AWS flags and endpoint from the provider-neutral options; the DLM endpoint from
    /// [`crate::DLM_ENDPOINT_VAR`].
    pub fn from_connect(c: &bootstrap_core::ConnectOptions) -> Self {
        let flag = |f: &str| c.flag(f).map(str::to_owned);
        Self {
            region: flag("--region"),
            profile: flag("--profile"),
            endpoint: c.endpoint.clone(),
            dlm_endpoint: std::env::var(crate::DLM_ENDPOINT_VAR)
                .ok()
                .filter(|v| !v.is_empty()),
            vpc: flag("--vpc"),
            subnet: flag("--subnet"),
        }
    }

    /// Checks the shape of every flag, offline; the cloud checks that they exist.
    pub fn validate(&self) -> Result<()> {
        if let Some(r) = &self.region {
            check_region(r)?;
        }
        if let Some(p) = &self.profile
            && (p.is_empty() || p.chars().any(|c| c.is_whitespace() || c.is_control()))
        {
            return Err(invalid(format!(
                "invalid --profile {p:?}: give a profile name from ~/.aws/config"
            )));
        }
        if let Some(e) = &self.dlm_endpoint {
            check_endpoints(vec![(crate::DLM_ENDPOINT_VAR.to_owned(), e.clone())])?;
        }
        if let Some(v) = &self.vpc {
            check_id("--vpc", "vpc-", v)?;
        }
        if let Some(s) = &self.subnet {
            check_id("--subnet", "subnet-", s)?;
        }
        Ok(())
    }
}

fn invalid(msg: String) -> Error {
    Error::new(ErrorKind::InvalidInput, msg)
}

/// `eu-central-1`, `us-gov-west-1`, `ap-southeast-4`: lowercase words and a number.
pub fn check_region(r: &str) -> Result<()> {
    let parts: Vec<&str> = r.split('-').collect();
    let ok = parts.len() >= 3
        && parts
            .last()
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        && parts[..parts.len() - 1]
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase()));
    if ok {
        Ok(())
    } else {
        Err(invalid(format!(
            "invalid --region {r:?}: give an AWS region such as eu-central-1"
        )))
    }
}

/// `prefix` followed by 8 or 17 lowercase hex digits, as EC2 ids are.
pub fn check_id(flag: &str, prefix: &str, id: &str) -> Result<()> {
    let ok = id.strip_prefix(prefix).is_some_and(|hex| {
        matches!(hex.len(), 8 | 17)
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    });
    if ok {
        Ok(())
    } else {
        Err(invalid(format!(
            "invalid {flag} {id:?}: give an id such as {prefix}0123456789abcdef0"
        )))
    }
}

/// An availability zone (`eu-central-1a`, `us-east-1-bos-1a` for Local Zones), or `auto`.
pub fn check_zone(z: &str) -> Result<()> {
    let ok = z == crate::defaults::LOCATION
        || (z.len() <= 40
            && z.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && z.bytes().last().is_some_and(|b| b.is_ascii_lowercase())
            && z.bytes().any(|b| b.is_ascii_digit()));
    if ok {
        Ok(())
    } else {
        Err(invalid(format!(
            "invalid --location {z:?}: give an availability zone such as eu-central-1a, or leave it out to let EC2 choose"
        )))
    }
}

/// `t3.micro`, `m7g.large`, `c6in.2xlarge`: family `.` size.
pub fn check_instance_type(t: &str) -> Result<()> {
    let ok = t.split_once('.').is_some_and(|(family, size)| {
        !family.is_empty()
            && !size.is_empty()
            && family
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && size
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    });
    if ok {
        Ok(())
    } else {
        Err(invalid(format!(
            "invalid --server-type {t:?}: give an EC2 instance type such as t3.micro"
        )))
    }
}

/// Loads the SDK configuration through the standard chain and checks that a region and
/// credentials are there, so that a missing one is one clear error before any EC2 call.
/// Resolving credentials reads files and the environment (or, on EC2, asks IMDS); it sends no
/// request to EC2.
pub(crate) async fn load(opts: &AwsOptions) -> Result<aws_config::SdkConfig> {
    // One attempt per SDK call: the core's retry loop decides by kind, with its own backoff and
    // the run's deadline; the SDK's standard mode under it would multiply every call by three.
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .retry_config(aws_config::retry::RetryConfig::disabled());
    if let Some(p) = &opts.profile {
        loader = loader.profile_name(p);
    }
    if let Some(r) = &opts.region {
        loader = loader.region(Region::new(r.clone()));
    }
    if let Some(e) = &opts.endpoint {
        loader = loader.endpoint_url(e);
    }
    let sdk = loader.load().await;
    if opts.endpoint.is_none() {
        check_configured_endpoints(&sdk)?;
    }
    if sdk.region().is_none() {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            "no AWS region: pass --region, set AWS_REGION, or set `region` in the profile (~/.aws/config)",
        ));
    }
    let msg = "no usable AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, run `aws configure` or `aws sso login`, or pass --profile";
    let Some(creds) = sdk.credentials_provider() else {
        return Err(Error::new(ErrorKind::Unauthorized, msg));
    };
    if let Err(e) = creds.provide_credentials().await {
        let detail = crate::error::chain(&e);
        return Err(
            Error::new(ErrorKind::Unauthorized, format!("{msg} ({detail})")).with_source(e),
        );
    }
    Ok(sdk)
}

/// The services the adapter calls, by the SDK's service id (`AWS_ENDPOINT_URL_<ID>`).
const SERVICES: [&str; 3] = ["EC2", "STS", "DLM"];

/// Every endpoint the standard chain configured (`AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_EC2` and the
/// like, a profile's `endpoint_url` and its `services` section) under core's one URL rule, so
/// that no signed request goes out in plain http to another machine. `--endpoint` (which wins
/// over all of them) was checked with the other flags.
fn check_configured_endpoints(sdk: &aws_config::SdkConfig) -> Result<()> {
    let mut found = Vec::new();
    if let Some(e) = sdk.endpoint_url() {
        found.push((
            "AWS_ENDPOINT_URL (or the profile's endpoint_url)".to_owned(),
            e.to_owned(),
        ));
    }
    if let Some(conf) = sdk.service_config() {
        for id in SERVICES {
            let key = aws_types::service_config::ServiceConfigKey::builder()
                .service_id(id)
                .env("AWS_ENDPOINT_URL")
                .profile("endpoint_url")
                .build();
            if let Some(e) = key.ok().and_then(|k| conf.load_config(k)) {
                let from = format!(
                    "AWS_ENDPOINT_URL_{id} (or the profile's services endpoint_url for {})",
                    id.to_ascii_lowercase()
                );
                found.push((from, e));
            }
        }
    }
    check_endpoints(found)
}

/// Each `(source, url)` under the one URL rule; the error names the source, not the URL.
pub(crate) fn check_endpoints(found: Vec<(String, String)>) -> Result<()> {
    for (from, e) in found {
        if let Err(why) = bootstrap_core::endpoint::check(&e) {
            return Err(invalid(format!("invalid {from}: {why}")));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_shapes() {
        for ok in ["eu-central-1", "us-gov-west-1", "ap-southeast-4"] {
            check_region(ok).unwrap();
        }
        for bad in [
            "",
            "eu",
            "EU-central-1",
            "eu-central",
            "eu-central-x",
            "eu central 1",
            "eu--1",
        ] {
            assert!(check_region(bad).is_err(), "{bad:?}");
        }
        check_id("--vpc", "vpc-", "vpc-0123abcd").unwrap();
        check_id("--subnet", "subnet-", "subnet-0123456789abcdef0").unwrap();
        for bad in [
            "vpc-",
            "vpc-XYZ12345",
            "subnet-0123abcd",
            "vpc-0123abc",
            "vpc-0123abcd\n",
        ] {
            assert!(check_id("--vpc", "vpc-", bad).is_err(), "{bad:?}");
        }
        for ok in ["auto", "eu-central-1a", "us-east-1-bos-1a"] {
            check_zone(ok).unwrap();
        }
        for bad in ["", "eu-central-1", "EU-1a", "a b"] {
            assert!(check_zone(bad).is_err(), "{bad:?}");
        }
        for ok in ["t3.micro", "m7g.large", "c6in.2xlarge", "u-6tb1.metal"] {
            check_instance_type(ok).unwrap();
        }
        for bad in ["", "t3", ".micro", "t3.", "T3.micro", "t3.micro;x"] {
            assert!(check_instance_type(bad).is_err(), "{bad:?}");
        }
        let o = AwsOptions {
            profile: Some("a b".into()),
            ..AwsOptions::default()
        };
        assert!(o.validate().is_err());
    }
}
