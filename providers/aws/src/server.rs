//! Instances: `RunInstances` with everything set in the one call (tags on the instance and its
//! volume, IMDSv2 only, an encrypted gp3 root volume, the key pair and the security group), and
//! the instance states mapped onto the core's [`ServerStatus`].
//!
//! EC2 keeps terminated instances visible for about an hour: `get` reports them as gone and
//! `list` leaves them (and `shutting-down` ones, like Hetzner's `deleting`) out.
//!
//! `RunInstances` is not idempotent by itself; its `ClientToken` makes it so. The token is a hash
//! of everything the call sends, so the SDK's own retries of a request whose answer was lost
//! return the instance the first attempt started instead of starting a second.

use aws_sdk_ec2::Client;
use aws_sdk_ec2::types::{
    BlockDeviceMapping, EbsBlockDevice, HttpTokensState, Instance, InstanceMetadataEndpointState,
    InstanceMetadataOptionsRequest, InstanceNetworkInterfaceSpecification, InstanceStateName,
    InstanceType, Placement, ResourceType, VolumeType,
};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bootstrap_core::{Error, ErrorKind, Labels, Result, Server, ServerSpec, ServerStatus};
use sha2::{Digest, Sha256};

use crate::error::{sdk, sdk_opt};
use crate::firewall::filter;
use crate::image::{self, Arch};
use crate::{AwsOptions, USER_DATA_MAX_BYTES, defaults, tags};

/// States of instances that exist for our purposes (not `shutting-down` or `terminated`).
const LIVE_STATES: [&str; 4] = ["pending", "running", "stopping", "stopped"];

fn status(state: Option<&InstanceStateName>) -> ServerStatus {
    match state {
        Some(InstanceStateName::Pending) => ServerStatus::Starting,
        Some(InstanceStateName::Running) => ServerStatus::Running,
        Some(InstanceStateName::Stopping | InstanceStateName::Stopped) => ServerStatus::Off,
        Some(InstanceStateName::ShuttingDown | InstanceStateName::Terminated) => {
            ServerStatus::Deleting
        }
        Some(other) => ServerStatus::Other(other.as_str().to_owned()),
        None => ServerStatus::Other("unknown".to_owned()),
    }
}

fn state_of(i: &Instance) -> Option<&InstanceStateName> {
    i.state().and_then(|s| s.name())
}

fn from_instance(i: &Instance) -> Server {
    let id = i.instance_id().unwrap_or_default().to_owned();
    let ipv6 = i.ipv6_address().or_else(|| {
        i.network_interfaces()
            .iter()
            .flat_map(|n| n.ipv6_addresses())
            .find_map(|a| a.ipv6_address())
    });
    Server {
        name: tags::name(i.tags()).unwrap_or(&id).to_owned(),
        status: status(state_of(i)),
        ipv4: i.public_ip_address().and_then(|a| a.parse().ok()),
        ipv6: ipv6.and_then(|a| a.parse().ok()),
        labels: tags::labels(i.tags()),
        created: i.launch_time().and_then(|t| {
            time::OffsetDateTime::from_unix_timestamp_nanos(
                i128::from(t.secs()) * 1_000_000_000 + i128::from(t.subsec_nanos()),
            )
            .ok()
        }),
        id,
    }
}

/// Live instances carrying every label of `selector`, following `NextToken`.
pub(crate) async fn list(ec2: &Client, selector: &Labels) -> Result<Vec<Server>> {
    let mut filters = tags::filters(selector);
    filters.push(
        aws_sdk_ec2::types::Filter::builder()
            .name("instance-state-name")
            .set_values(Some(LIVE_STATES.iter().map(|s| (*s).to_owned()).collect()))
            .build(),
    );
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page = sdk(
            "DescribeInstances",
            ec2.describe_instances()
                .set_filters(Some(filters.clone()))
                .set_next_token(token.take())
                .send()
                .await,
        )?;
        out.extend(
            page.reservations()
                .iter()
                .flat_map(|r| r.instances())
                .filter(|i| {
                    !matches!(
                        state_of(i),
                        Some(InstanceStateName::ShuttingDown | InstanceStateName::Terminated)
                    )
                })
                .map(from_instance)
                .filter(|s| s.labels.matches(selector)),
        );
        match page.next_token() {
            Some(t) if !t.is_empty() => token = Some(t.to_owned()),
            _ => return Ok(out),
        }
    }
}

/// One instance; `None` when EC2 does not know it or it is terminated.
pub(crate) async fn get(ec2: &Client, id: &str) -> Result<Option<Server>> {
    let Some(out) = sdk_opt(
        "DescribeInstances",
        ec2.describe_instances().instance_ids(id).send().await,
    )?
    else {
        return Ok(None);
    };
    Ok(out
        .reservations()
        .iter()
        .flat_map(|r| r.instances())
        .find(|i| i.instance_id() == Some(id))
        .filter(|i| state_of(i) != Some(&InstanceStateName::Terminated))
        .map(from_instance))
}

/// The `ClientToken` of a launch (EC2 allows 64 ASCII characters; a token is scoped to the
/// account and region already): a hash of what every run of this deployment shares, never of
/// what one run makes up. The user-data carries a host key new to each run, and the run label
/// is new to each run, so both stay out: runs racing from two machines then send one token and
/// EC2 starts one instance (see: issue 13, finding 2). The security group's id is part of it,
/// so a deployment destroyed and created again gets a new token.
pub(crate) fn client_token(spec: &ServerSpec, image_id: &str, subnet: Option<&str>) -> String {
    let mut h = Sha256::new();
    for part in [
        spec.name.as_str(),
        spec.server_type.as_str(),
        image_id,
        spec.location.as_str(),
        subnet.unwrap_or_default(),
    ] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    for id in spec.ssh_key_ids.iter().chain(&spec.firewall_ids) {
        h.update(id.as_bytes());
        h.update([0]);
    }
    for (k, v) in spec
        .labels
        .iter()
        .filter(|(k, _)| *k != bootstrap_core::model::LABEL_RUN)
    {
        h.update(k.as_bytes());
        h.update([1]);
        h.update(v.as_bytes());
        h.update([0]);
    }
    let hex: String = h
        .finalize()
        .iter()
        .take(24)
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("bootstrap-{hex}")
}

/// The subnet to launch into: `--subnet`, else with `--vpc` a subnet of that VPC that gives
/// instances a public IPv4 (in `--location`'s zone when given), else none (EC2 picks a default
/// subnet of the default VPC).
async fn subnet_for(ec2: &Client, opts: &AwsOptions, zone: Option<&str>) -> Result<Option<String>> {
    if let Some(s) = &opts.subnet {
        return Ok(Some(s.clone()));
    }
    let Some(vpc) = &opts.vpc else {
        return Ok(None);
    };
    let mut req = ec2.describe_subnets().filters(filter("vpc-id", vpc));
    if let Some(z) = zone {
        req = req.filters(filter("availability-zone", z));
    }
    let out = sdk("DescribeSubnets", req.send().await)?;
    let mut subnets: Vec<_> = out
        .subnets()
        .iter()
        .filter(|s| s.map_public_ip_on_launch() == Some(true))
        .filter_map(|s| s.subnet_id())
        .collect();
    subnets.sort_unstable();
    subnets
        .first()
        .map(|s| Some((*s).to_owned()))
        .ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "VPC {vpc} has no subnet that assigns public IPv4 addresses{}: pass --subnet",
                    zone.map(|z| format!(" in {z}")).unwrap_or_default()
                ),
            )
        })
}

/// Launches one instance as `spec` says. The instance comes back `pending`; the core polls.
/// The instance type exists in the region, the image resolves for its architecture, and the
/// zone (when one is asked for) is the region's: read-only, before anything is created.
pub(crate) async fn check_options(
    ec2: &Client,
    images: &image::Cache,
    server_type: &str,
    image: &str,
    location: &str,
) -> Result<()> {
    // The three look-ups are independent: one round trip, not three.
    let (types, resolved, zones) = futures::join!(
        async {
            sdk(
                "DescribeInstanceTypes",
                ec2.describe_instance_types()
                    .instance_types(InstanceType::from(server_type))
                    .send()
                    .await,
            )
        },
        images.resolve(ec2, image, Arch::of_instance_type(server_type)),
        async {
            if location == defaults::LOCATION {
                return Ok(None);
            }
            sdk(
                "DescribeAvailabilityZones",
                ec2.describe_availability_zones()
                    .zone_names(location)
                    .send()
                    .await,
            )
            .map(Some)
        },
    );
    if types?.instance_types().is_empty() {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!("--server-type {server_type}: not offered in this region"),
        ));
    }
    resolved?;
    if zones?.is_some_and(|z| z.availability_zones().is_empty()) {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!(
                "--location {location}: no such availability zone in this region (`aws ec2 describe-availability-zones` lists them)"
            ),
        ));
    }
    Ok(())
}

pub(crate) async fn create(
    ec2: &Client,
    images: &image::Cache,
    opts: &AwsOptions,
    spec: &ServerSpec,
) -> Result<Server> {
    if spec.user_data.len() > USER_DATA_MAX_BYTES {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!(
                "user-data is {} bytes, EC2 takes at most {USER_DATA_MAX_BYTES} (before base64)",
                spec.user_data.len()
            ),
        ));
    }
    let (Some(key), Some(group)) = (spec.ssh_key_ids.first(), spec.firewall_ids.first()) else {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            "an EC2 instance needs a key pair and a security group",
        ));
    };
    let zone = (spec.location != defaults::LOCATION).then_some(spec.location.as_str());
    let image = images
        .resolve(ec2, &spec.image, Arch::of_instance_type(&spec.server_type))
        .await?;
    let subnet = subnet_for(ec2, opts, zone).await?;
    let token = client_token(spec, &image.id, subnet.as_deref());

    let mut req = ec2
        .run_instances()
        .client_token(&token)
        .image_id(&image.id)
        .instance_type(InstanceType::from(spec.server_type.as_str()))
        .min_count(1)
        .max_count(1)
        .key_name(key)
        .user_data(STANDARD.encode(spec.user_data.as_bytes()))
        .metadata_options(
            InstanceMetadataOptionsRequest::builder()
                .http_endpoint(InstanceMetadataEndpointState::Enabled)
                .http_tokens(HttpTokensState::Required)
                .http_put_response_hop_limit(1)
                .build(),
        )
        .block_device_mappings(
            BlockDeviceMapping::builder()
                .device_name(&image.root_device)
                .ebs(
                    EbsBlockDevice::builder()
                        .volume_type(VolumeType::Gp3)
                        .volume_size(image.root_size_gib)
                        .encrypted(true)
                        .delete_on_termination(true)
                        .build(),
                )
                .build(),
        )
        .tag_specifications(tags::spec(ResourceType::Instance, &spec.labels, &spec.name))
        .tag_specifications(tags::spec(ResourceType::Volume, &spec.labels, &spec.name));
    req = match &subnet {
        // A subnet of one's own may not assign public addresses by default: ask for one.
        Some(s) => req.network_interfaces(
            InstanceNetworkInterfaceSpecification::builder()
                .device_index(0)
                .subnet_id(s)
                .set_groups(Some(spec.firewall_ids.clone()))
                .associate_public_ip_address(true)
                .delete_on_termination(true)
                .build(),
        ),
        None => req
            .security_group_ids(group)
            .set_placement(zone.map(|z| Placement::builder().availability_zone(z).build())),
    };
    let out = sdk("RunInstances", req.send().await)?;
    let Some(instance) = out.instances().first() else {
        return Err(Error::new(
            ErrorKind::Transient,
            "RunInstances answered without an instance",
        ));
    };
    if matches!(
        state_of(instance),
        Some(InstanceStateName::ShuttingDown | InstanceStateName::Terminated)
    ) {
        // EC2 replays the answer of an earlier launch with the same client token, even when
        // that instance has since been terminated.
        return Err(Error::new(
            ErrorKind::Other,
            format!(
                "EC2 answered with instance {} of an earlier identical launch (client token {token}), which is terminated; change the spec (e.g. --server-type) or wait a few hours before retrying",
                instance.instance_id().unwrap_or_default()
            ),
        ));
    }
    Ok(from_instance(instance))
}

/// Starts terminating an instance; unknown or already terminated is fine.
pub(crate) async fn delete(ec2: &Client, id: &str) -> Result<()> {
    sdk_opt(
        "TerminateInstances",
        ec2.terminate_instances().instance_ids(id).send().await,
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_ec2::types::{InstanceState, Tag};

    #[test]
    fn states_map_onto_the_core() {
        assert_eq!(
            status(Some(&InstanceStateName::Pending)),
            ServerStatus::Starting
        );
        assert_eq!(
            status(Some(&InstanceStateName::Running)),
            ServerStatus::Running
        );
        assert_eq!(status(Some(&InstanceStateName::Stopped)), ServerStatus::Off);
        assert_eq!(
            status(Some(&InstanceStateName::ShuttingDown)),
            ServerStatus::Deleting
        );
        let i = Instance::builder()
            .instance_id("i-0123")
            .state(
                InstanceState::builder()
                    .name(InstanceStateName::Running)
                    .build(),
            )
            .public_ip_address("203.0.113.9")
            .ipv6_address("2001:db8::5")
            .tags(Tag::builder().key("Name").value("web1").build())
            .tags(
                Tag::builder()
                    .key("bootstrap-deployment")
                    .value("web1")
                    .build(),
            )
            .build();
        let s = from_instance(&i);
        assert_eq!(s.name, "web1");
        assert_eq!(s.ipv4, Some("203.0.113.9".parse().unwrap()));
        assert_eq!(s.ipv6, Some("2001:db8::5".parse().unwrap()));
        assert_eq!(s.labels.deployment_name(), Some("web1"));
    }

    #[test]
    fn client_token_is_stable_and_follows_the_spec() {
        let spec = ServerSpec {
            name: "web1".into(),
            server_type: "t3.micro".into(),
            image: "ubuntu-24.04".into(),
            location: "auto".into(),
            user_data: "#cloud-config\n".into(),
            ssh_key_ids: vec!["bootstrap-web1".into()],
            firewall_ids: vec!["sg-1".into()],
            labels: Labels::managed(),
        };
        let a = client_token(&spec, "ami-1", None);
        assert_eq!(a, client_token(&spec, "ami-1", None));
        assert!(a.len() <= 64 && a.is_ascii(), "{a}");
        assert_ne!(a, client_token(&spec, "ami-2", None));
        let mut other = spec.clone();
        other.firewall_ids = vec!["sg-2".into()];
        assert_ne!(a, client_token(&other, "ami-1", None));
        // See: issue 13, finding 2. What differs between racing runs (the host key in the
        // user-data, the run label) leaves the token alone.
        let mut racing = spec.clone();
        racing.user_data = "#cloud-config\nssh_keys: {other: host key}\n".into();
        racing
            .labels
            .insert(bootstrap_core::model::LABEL_RUN, "0123456789abcdef");
        assert_eq!(a, client_token(&racing, "ami-1", None));
    }
}
