//! Security groups (`/security_groups`): the cloud firewall, created `stateful: true` with inbound
//! `drop` and outbound `accept` (all sent explicitly), one `accept` rule per source, tagged;
//! passed to the server by id. Updates touch only the rules for bootstrap's own ports.

use bootstrap_core::model::Protocol;
use bootstrap_core::{
    Created, Error, ErrorKind, Firewall, FirewallRule, FirewallSpec, Labels, Operation, Result,
};
use ipnet::IpNet;
use serde_json::json;

use crate::client::{Client, uuid};
use crate::schema::{ScwRule, ScwSecurityGroup, SecurityGroupEnvelope, labels_of};
use crate::{filter_tag, leftovers, tags};

/// Every security group carrying all of `selector` (filtered server-side on one tag).
pub(crate) async fn list_by_labels(c: &Client, selector: &Labels) -> Result<Vec<Firewall>> {
    let mut q = vec![("project", c.project.clone())];
    if let Some(t) = filter_tag(selector) {
        q.push(("tags", t));
    }
    let groups: Vec<ScwSecurityGroup> = c
        .list_instance(&c.inst("/security_groups"), "security_groups", q)
        .await?;
    let mut out = Vec::new();
    for g in groups {
        let labels = labels_of(&g.tags);
        if !labels.matches(selector) {
            continue;
        }
        let rules = rules_of(c, &g.id).await?;
        out.push(Firewall {
            id: g.id,
            name: g.name,
            labels,
            inbound: inbound(&rules),
        });
    }
    Ok(out)
}

async fn rules_of(c: &Client, id: &str) -> Result<Vec<ScwRule>> {
    c.list_instance(
        &c.inst(&format!("/security_groups/{}/rules", uuid(id)?)),
        "rules",
        vec![],
    )
    .await
}

fn protocol_of(r: &ScwRule) -> Option<Protocol> {
    match r.protocol.as_str() {
        "TCP" => Some(Protocol::Tcp),
        "UDP" => Some(Protocol::Udp),
        _ => None,
    }
}

/// The single-port accept rules bootstrap can express, one [`FirewallRule`] per protocol and
/// port with all its sources.
fn inbound(rules: &[ScwRule]) -> Vec<FirewallRule> {
    let mut out: Vec<FirewallRule> = Vec::new();
    for r in rules {
        let (Some(proto), Some(port)) = (protocol_of(r), single_port(r)) else {
            continue;
        };
        if r.direction != "inbound" || r.action != "accept" || !r.editable {
            continue;
        }
        let Ok(net) = r.ip_range.parse::<IpNet>() else {
            continue;
        };
        match out
            .iter_mut()
            .find(|x| x.protocol == proto && x.port == port)
        {
            Some(x) if !x.sources.contains(&net) => x.sources.push(net),
            Some(_) => {}
            None => out.push(FirewallRule {
                protocol: proto,
                port,
                sources: vec![net],
                description: String::new(),
            }),
        }
    }
    out
}

fn single_port(r: &ScwRule) -> Option<u16> {
    let from = r.dest_port_from?;
    match r.dest_port_to {
        Some(to) if to != from => None,
        _ => u16::try_from(from).ok(),
    }
}

fn proto_name(p: Protocol) -> &'static str {
    match p {
        Protocol::Tcp => "TCP",
        Protocol::Udp => "UDP",
    }
}

async fn add_rule(c: &Client, id: &str, rule: &FirewallRule, source: &IpNet) -> Result<()> {
    let _: serde_json::Value = c
        .post(
            &c.inst(&format!("/security_groups/{id}/rules")),
            &json!({
                "protocol": proto_name(rule.protocol),
                "direction": "inbound",
                "action": "accept",
                "ip_range": source.to_string(),
                "dest_port_from": rule.port,
                "dest_port_to": rule.port,
            }),
        )
        .await?;
    Ok(())
}

/// Creates the group and its rules. A rule refused leaves no half-made group behind: it is
/// removed before the error returns, so that a retry starts clean.
pub(crate) async fn create(c: &Client, spec: &FirewallSpec) -> Result<Created<Firewall>> {
    let made: SecurityGroupEnvelope = c
        .post(
            &c.inst("/security_groups"),
            &json!({
                "name": spec.name,
                "description": "bootstrap: SSH (or WireGuard) from the given sources only",
                "project": c.project,
                "tags": tags(&spec.labels),
                // Sent explicitly: the defaults are not what a hardened host wants to rely on.
                "stateful": true,
                "inbound_default_policy": "drop",
                "outbound_default_policy": "accept",
            }),
        )
        .await?;
    let g = made.security_group;
    for rule in &spec.inbound {
        for source in &rule.sources {
            if let Err(e) = add_rule(c, &g.id, rule, source).await {
                if let Err(d) = c
                    .delete(&c.inst(&format!("/security_groups/{}", g.id)))
                    .await
                {
                    tracing::warn!("removing half-made security group {}: {d}", g.id);
                }
                return Err(e.context(format!("adding a rule to security group {}", g.name)));
            }
        }
    }
    Ok(Created::ready(Firewall {
        id: g.id,
        name: g.name,
        labels: labels_of(&g.tags),
        inbound: spec.inbound.clone(),
    }))
}

/// Makes each wanted port allow exactly its sources: adds what is missing, then removes the
/// rules for sources no longer wanted. Other ports' rules stay.
pub(crate) async fn set_inbound_rules(
    c: &Client,
    fw: &Firewall,
    wanted: &[FirewallRule],
) -> Result<Vec<Operation>> {
    let id = uuid(&fw.id)?;
    let rules = rules_of(c, id).await?;
    for w in wanted {
        let same: Vec<&ScwRule> = rules
            .iter()
            .filter(|r| {
                r.editable
                    && r.direction == "inbound"
                    && r.action == "accept"
                    && protocol_of(r) == Some(w.protocol)
                    && single_port(r) == Some(w.port)
            })
            .collect();
        for s in &w.sources {
            if !same
                .iter()
                .any(|r| r.ip_range.parse::<IpNet>().ok() == Some(*s))
            {
                add_rule(c, id, w, s).await?;
            }
        }
        for r in same {
            let keep = r
                .ip_range
                .parse::<IpNet>()
                .is_ok_and(|n| w.sources.contains(&n));
            if !keep {
                c.delete(&c.inst(&format!("/security_groups/{id}/rules/{}", r.id)))
                    .await?;
            }
        }
    }
    Ok(Vec::new())
}

/// Deletes the group; still attached to a server is `InUse`. Before it goes, the deployment's
/// leftovers that outlive a server are removed (IPs never attached, restore images).
pub(crate) async fn delete(c: &Client, id: &str) -> Result<()> {
    let path = c.inst(&format!("/security_groups/{}", uuid(id)?));
    let Some(g) = c.get_opt::<SecurityGroupEnvelope>(&path).await? else {
        return Ok(());
    };
    let g = g.security_group;
    if !g.servers.is_empty() {
        return Err(Error::new(
            ErrorKind::InUse,
            format!("security group {} is still attached to a server", g.name),
        ));
    }
    if let Some(d) = labels_of(&g.tags).deployment_name() {
        leftovers::sweep_deployment(c, d).await?;
    }
    c.delete(&path).await
}
