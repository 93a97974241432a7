//! Security groups: created tagged in the default VPC (or `--vpc` / the `--subnet`'s VPC), then
//! opened for the spec's inbound rules only, beside the instance's launch ([`pay`]). EC2 gives a new VPC security group one egress rule,
//! all traffic to `0.0.0.0/0`, which is the outbound policy the core asks for; no inbound rule
//! exists until we add one.
//!
//! A security group cannot be deleted while an instance (even a `shutting-down` one) uses it:
//! EC2 answers `DependencyViolation`, which is `ErrorKind::InUse`, and the core polls.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use aws_sdk_ec2::Client;
use aws_sdk_ec2::config::http::HttpResponse;
use aws_sdk_ec2::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_ec2::types::{Filter, IpPermission, IpRange, Ipv6Range, ResourceType, SecurityGroup};
use bootstrap_core::model::{Protocol, RuleChange, rule_changes};
use bootstrap_core::{Error, ErrorKind, Firewall, FirewallRule, FirewallSpec, Labels, Result};
use ipnet::IpNet;

use crate::AwsOptions;
use crate::error::{AwsError, sdk, sdk_opt};
use crate::tags;

fn from_group(g: &SecurityGroup) -> Firewall {
    Firewall {
        id: g.group_id().unwrap_or_default().to_owned(),
        name: g.group_name().unwrap_or_default().to_owned(),
        labels: tags::labels(g.tags()),
        inbound: g.ip_permissions().iter().filter_map(inbound_rule).collect(),
    }
}

/// An ingress permission as the model sees it: TCP or UDP on one port; anything else (ranges,
/// all traffic, other groups as sources) is `None` and left alone by updates.
fn inbound_rule(p: &IpPermission) -> Option<FirewallRule> {
    let protocol = match p.ip_protocol()? {
        "tcp" | "6" => Protocol::Tcp,
        "udp" | "17" => Protocol::Udp,
        _ => return None,
    };
    let port = p.from_port()?;
    if p.to_port()? != port {
        return None;
    }
    let v4 = p.ip_ranges().iter().filter_map(|r| r.cidr_ip());
    let v6 = p.ipv6_ranges().iter().filter_map(|r| r.cidr_ipv6());
    Some(FirewallRule {
        protocol,
        port: u16::try_from(port).ok()?,
        sources: v4.chain(v6).filter_map(|c| c.parse().ok()).collect(),
        description: p
            .ip_ranges()
            .iter()
            .find_map(|r| r.description())
            .unwrap_or_default()
            .to_owned(),
    })
}

/// The VPC the security group goes into: `--vpc`, else the `--subnet`'s, else `None` (EC2 then
/// uses the region's default VPC, and answers `VPCIdNotSpecified` when there is none).
pub(crate) async fn vpc_for(ec2: &Client, opts: &AwsOptions) -> Result<Option<String>> {
    if let Some(v) = &opts.vpc {
        return Ok(Some(v.clone()));
    }
    let Some(subnet) = &opts.subnet else {
        return Ok(None);
    };
    let out = sdk(
        "DescribeSubnets",
        ec2.describe_subnets().subnet_ids(subnet).send().await,
    )?;
    out.subnets()
        .first()
        .and_then(|s| s.vpc_id())
        .map(|v| Some(v.to_owned()))
        .ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidInput,
                format!("subnet {subnet} not found in this region: check --subnet and --region"),
            )
        })
}

/// Security groups carrying every label of `selector`, following `NextToken`.
pub(crate) async fn list(ec2: &Client, selector: &Labels) -> Result<Vec<Firewall>> {
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page = sdk(
            "DescribeSecurityGroups",
            ec2.describe_security_groups()
                .set_filters(Some(tags::filters(selector)))
                .set_next_token(token.take())
                .send()
                .await,
        )?;
        out.extend(
            page.security_groups()
                .iter()
                .map(from_group)
                .filter(|f| f.labels.matches(selector)),
        );
        match page.next_token() {
            Some(t) if !t.is_empty() => token = Some(t.to_owned()),
            _ => return Ok(out),
        }
    }
}

/// The ingress permissions for `spec`: one per rule, IPv4 and IPv6 sources in their own lists.
fn permissions(spec: &FirewallSpec) -> Vec<IpPermission> {
    permissions_for(&spec.inbound)
}

/// One ingress permission per rule that has sources, IPv4 and IPv6 in their own lists.
fn permissions_for(rules: &[FirewallRule]) -> Vec<IpPermission> {
    rules
        .iter()
        .filter(|r| !r.sources.is_empty())
        .map(|r| {
            let (v4, v6): (Vec<&IpNet>, Vec<&IpNet>) =
                r.sources.iter().partition(|n| matches!(n, IpNet::V4(_)));
            IpPermission::builder()
                .ip_protocol(match r.protocol {
                    Protocol::Tcp => "tcp",
                    Protocol::Udp => "udp",
                })
                .from_port(i32::from(r.port))
                .to_port(i32::from(r.port))
                .set_ip_ranges(Some(
                    v4.into_iter()
                        .map(|c| {
                            IpRange::builder()
                                .cidr_ip(c.to_string())
                                .description(&r.description)
                                .build()
                        })
                        .collect(),
                ))
                .set_ipv6_ranges(Some(
                    v6.into_iter()
                        .map(|c| {
                            Ipv6Range::builder()
                                .cidr_ipv6(c.to_string())
                                .description(&r.description)
                                .build()
                        })
                        .collect(),
                ))
                .build()
        })
        .collect()
}

/// The ingress rules of security groups this run created and has not authorized yet: they are
/// sent beside `RunInstances` ([`pay`]), so that they cost no round trip of their own.
#[derive(Debug, Default)]
pub(crate) struct Owed(Mutex<HashMap<String, (String, Vec<FirewallRule>)>>);

impl Owed {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, (String, Vec<FirewallRule>)>> {
        // Poisoned only if a thread panicked while inserting; the map is still whole.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Creates the tagged group; its ingress rules are owed ([`Owed`]) and authorized by [`pay`]
/// beside the instance's launch, or by `complete_server` if that attempt failed. Until then
/// the group lets nothing in. A run cut off in between leaves a group without its rules, which
/// the rollback deletes, or a re-run finds and gives its rules like any group it finds.
pub(crate) async fn create(
    ec2: &Client,
    opts: &AwsOptions,
    owed: &Owed,
    spec: &FirewallSpec,
) -> Result<Firewall> {
    let vpc = vpc_for(ec2, opts).await?;
    let out = sdk(
        "CreateSecurityGroup",
        ec2.create_security_group()
            .group_name(&spec.name)
            .description(format!(
                "bootstrap: SSH for {}",
                spec.labels.deployment_name().unwrap_or(&spec.name)
            ))
            .set_vpc_id(vpc)
            .tag_specifications(tags::spec(
                ResourceType::SecurityGroup,
                &spec.labels,
                &spec.name,
            ))
            .send()
            .await,
    )?;
    let id = out.group_id().unwrap_or_default().to_owned();
    if !permissions(spec).is_empty() {
        owed.lock()
            .insert(id.clone(), (spec.name.clone(), spec.inbound.clone()));
    }
    Ok(Firewall {
        id,
        name: spec.name.clone(),
        labels: tags::labels(out.tags()),
        inbound: spec.inbound.clone(),
    })
}

/// Authorizes the ingress rules group `id` still owes; a group that owes none costs nothing.
/// One call, all rules: EC2 adds all or none, and answers a repeat (an earlier attempt whose
/// answer was lost) with `InvalidPermission.Duplicate`, which is success.
pub(crate) async fn pay(ec2: &Client, owed: &Owed, id: &str) -> Result<()> {
    let Some((name, rules)) = owed.lock().get(id).cloned() else {
        return Ok(());
    };
    let added = done_unless_failed(
        "AuthorizeSecurityGroupIngress",
        DUPLICATE,
        ec2.authorize_security_group_ingress()
            .group_id(id)
            .set_ip_permissions(Some(permissions_for(&rules)))
            .send()
            .await,
    );
    match added {
        Ok(()) => {
            owed.lock().remove(id);
            Ok(())
        }
        // EC2 is eventually consistent: a group just created can be unknown to the next call
        // for a moment. That passes, so the core's retry asks again.
        Err(e) if e.kind() == &ErrorKind::NotFound => Err(Error::new(
            ErrorKind::Transient,
            format!("{e} (security group {name} ({id}) was not visible yet)"),
        )),
        Err(e) => Err(e.context(format!("adding the rules of security group {name} ({id})"))),
    }
}

/// Makes each wanted port allow exactly its sources: new sources are authorized first, then the
/// old ones revoked, so the owner never loses access halfway.
pub(crate) async fn update(ec2: &Client, group: &Firewall, wanted: &[FirewallRule]) -> Result<()> {
    let out = sdk(
        "DescribeSecurityGroups",
        ec2.describe_security_groups()
            .group_ids(&group.id)
            .send()
            .await,
    )?;
    let current: Vec<FirewallRule> = out
        .security_groups()
        .iter()
        .flat_map(|g| g.ip_permissions())
        .filter_map(inbound_rule)
        .collect();
    let changes = rule_changes(&current, wanted);
    let with = |c: &RuleChange<'_>, sources: &[IpNet]| FirewallRule {
        sources: sources.to_vec(),
        ..c.rule.clone()
    };
    let add: Vec<FirewallRule> = changes.iter().map(|c| with(c, &c.add)).collect();
    let remove: Vec<FirewallRule> = changes.iter().map(|c| with(c, &c.remove)).collect();
    let add = permissions_for(&add);
    if !add.is_empty() {
        done_unless_failed(
            "AuthorizeSecurityGroupIngress",
            DUPLICATE,
            ec2.authorize_security_group_ingress()
                .group_id(&group.id)
                .set_ip_permissions(Some(add))
                .send()
                .await,
        )?;
    }
    let remove = permissions_for(&remove);
    if !remove.is_empty() {
        done_unless_failed(
            "RevokeSecurityGroupIngress",
            "InvalidPermission.NotFound",
            ec2.revoke_security_group_ingress()
                .group_id(&group.id)
                .set_ip_permissions(Some(remove))
                .send()
                .await,
        )?;
    }
    Ok(())
}

/// What EC2 answers an authorize whose rules are all there already.
const DUPLICATE: &str = "InvalidPermission.Duplicate";

/// The answer to a rule change; `already` is the code EC2 gives when the change is in place
/// already (a first attempt that succeeded but lost its answer, sent again by the core's
/// retry): that counts as success, not as a failed create.
fn done_unless_failed<T, E>(
    action: &'static str,
    already: &str,
    r: std::result::Result<T, SdkError<E, HttpResponse>>,
) -> Result<()>
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match r {
        Ok(_) => Ok(()),
        Err(e) => {
            let e = AwsError::from_sdk(action, e);
            if e.code() == Some(already) {
                tracing::debug!(action, code = already, "already in place: done");
                Ok(())
            } else {
                Err(e.into())
            }
        }
    }
}

/// Deletes a security group; gone is fine, still used is `InUse`.
pub(crate) async fn delete(ec2: &Client, id: &str) -> Result<()> {
    sdk_opt(
        "DeleteSecurityGroup",
        ec2.delete_security_group().group_id(id).send().await,
    )?;
    Ok(())
}

/// Adds a security group to an instance's groups (`ModifyInstanceAttribute`), keeping the
/// ones it has; already there is success.
pub(crate) async fn attach(ec2: &Client, instance: &str, group: &str) -> Result<()> {
    let out = sdk(
        "DescribeInstances",
        ec2.describe_instances().instance_ids(instance).send().await,
    )?;
    let mut groups: Vec<String> = out
        .reservations()
        .iter()
        .flat_map(|r| r.instances())
        .filter(|i| i.instance_id() == Some(instance))
        .flat_map(|i| i.security_groups())
        .filter_map(|g| g.group_id().map(str::to_owned))
        .collect();
    if groups.iter().any(|g| g == group) {
        return Ok(());
    }
    groups.push(group.to_owned());
    sdk(
        "ModifyInstanceAttribute",
        ec2.modify_instance_attribute()
            .instance_id(instance)
            .set_groups(Some(groups))
            .send()
            .await,
    )?;
    Ok(())
}

/// A filter on one value, for Describe calls.
pub(crate) fn filter(name: &str, value: &str) -> Filter {
    Filter::builder().name(name).values(value).build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_and_ipv6_sources_go_to_their_own_ranges() {
        let spec = FirewallSpec {
            name: "bootstrap-web1".into(),
            inbound: vec![FirewallRule {
                protocol: Protocol::Tcp,
                port: 22,
                sources: vec![
                    "203.0.113.7/32".parse().unwrap(),
                    "2001:db8::/48".parse().unwrap(),
                ],
                description: "SSH".into(),
            }],
            labels: Labels::managed(),
        };
        let p = permissions(&spec);
        assert_eq!(p.len(), 1);
        assert_eq!(
            (p[0].ip_protocol(), p[0].from_port(), p[0].to_port()),
            (Some("tcp"), Some(22), Some(22))
        );
        assert_eq!(p[0].ip_ranges().len(), 1);
        assert_eq!(p[0].ip_ranges()[0].cidr_ip(), Some("203.0.113.7/32"));
        assert_eq!(p[0].ipv6_ranges()[0].cidr_ipv6(), Some("2001:db8::/48"));
    }
}
