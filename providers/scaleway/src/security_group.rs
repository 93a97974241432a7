//! Security groups (`/security_groups`): the cloud firewall, created `stateful: true` with inbound
//! `drop` and outbound `accept` (all sent explicitly), one `accept` rule per source, tagged;
//! passed to the server by id. A new group's rules are sent beside the server's create
//! ([`pay`]). Updates touch only the rules for bootstrap's own ports.

use bootstrap_core::model::Protocol;
use bootstrap_core::{
    Created, Error, ErrorKind, Firewall, FirewallRule, FirewallSpec, Labels, Operation, Result,
};
use ipnet::IpNet;
use serde_json::json;

use crate::cache::Cache;
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
    let ours: Vec<ScwSecurityGroup> = groups
        .into_iter()
        .filter(|g| labels_of(&g.tags).matches(selector))
        .collect();
    // Each group's rules at once: a re-run's read stage waits for one round, not one a group.
    let rules = futures::future::try_join_all(ours.iter().map(|g| rules_of(c, &g.id))).await?;
    Ok(ours
        .into_iter()
        .zip(rules)
        .map(|(g, rules)| Firewall {
            labels: labels_of(&g.tags),
            id: g.id,
            name: g.name,
            inbound: inbound(&rules),
        })
        .collect())
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

/// Creates the group, closed: its inbound policy is `drop` and it has no rule yet. The rules
/// are owed (see [`crate::cache::Cache::owe`]) and sent beside the server's create by [`pay`],
/// so that they cost no round trip of their own; the server is created stopped and only powered
/// on once they are in (`complete_server` pays what is still owed first).
pub(crate) async fn create(
    c: &Client,
    cache: &Cache,
    spec: &FirewallSpec,
) -> Result<Created<Firewall>> {
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
    cache.owe(&g.id, spec.inbound.clone());
    Ok(Created::ready(Firewall {
        id: g.id,
        name: g.name,
        labels: labels_of(&g.tags),
        inbound: spec.inbound.clone(),
    }))
}

/// Gives group `id` the rules it still owes, if any. A fresh group has none of ours: one `POST`
/// per rule and source, all at once. After an attempt that failed some may exist, so the rules
/// are then made exact like a re-run's ([`set_rules`]). A group that owes nothing costs nothing.
pub(crate) async fn pay(c: &Client, cache: &Cache, id: &str) -> Result<()> {
    let Some(owed) = cache.owed(id) else {
        return Ok(());
    };
    let r = if owed.fresh {
        let adds = owed
            .rules
            .iter()
            .flat_map(|rule| rule.sources.iter().map(move |s| add_rule(c, id, rule, s)));
        futures::future::join_all(adds)
            .await
            .into_iter()
            .collect::<Result<Vec<()>>>()
            .map(drop)
    } else {
        set_rules(c, id, &owed.rules).await
    };
    cache.settle(id, &r);
    r.map_err(|e| e.context(format!("adding the rules of security group {id}")))
}

/// Makes each wanted port allow exactly its sources: adds what is missing, then removes the
/// rules for sources no longer wanted. Other ports' rules stay.
pub(crate) async fn set_inbound_rules(
    c: &Client,
    fw: &Firewall,
    wanted: &[FirewallRule],
) -> Result<Vec<Operation>> {
    set_rules(c, &fw.id, wanted).await?;
    Ok(Vec::new())
}

/// [`set_inbound_rules`] for a group known by id.
async fn set_rules(c: &Client, id: &str, wanted: &[FirewallRule]) -> Result<()> {
    let id = uuid(id)?;
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
    Ok(())
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
