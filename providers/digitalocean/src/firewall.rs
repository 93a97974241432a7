//! Firewalls (`/v2/firewalls`): `bootstrap-<name>`, applied to the deployment's droplet tag,
//! with our inbound rules and explicit outbound rules.
//!
//! DigitalOcean's rules are easy to get wrong (DESIGN.md, provider facts):
//! - A firewall without outbound rules blocks all egress: the droplet could not even install
//!   packages. [`outbound_rules`] allows tcp, udp and icmp to `0.0.0.0/0` and `::/0`.
//! - The firewall has no tags of its own; its `tags` are the droplets it applies to, and a tag
//!   must exist before a firewall names it, so [`create`] creates the tag first. Targeting the
//!   tag protects the droplet from its first boot.
//! - `PUT /v2/firewalls/{id}` replaces everything, targets included: rules change only through
//!   `POST`/`DELETE /v2/firewalls/{id}/rules` ([`set_inbound_rules`]).
//! - The API reports "all ports" and icmp as `"0"`: such rules are not single-port rules.
//! - Names allow only `^[a-zA-Z0-9][a-zA-Z0-9.-]+$`, checked offline by [`check_name`].

use bootstrap_core::model::{LABEL_DEPLOYMENT, Protocol, rule_changes};
use bootstrap_core::{
    Created, Error, ErrorKind, Firewall, FirewallRule, FirewallSpec, Operation, Result,
};
use serde_json::{Value, json};

use crate::client::Client;
use crate::schema::{FirewallEnvelope, TAG_SEP, WireFirewall, WireRule};
use crate::tags;

/// Every firewall: the API cannot filter them, the flows keep only ours (by name and target).
pub(crate) async fn list(c: &Client) -> Result<Vec<Firewall>> {
    let fws: Vec<WireFirewall> = c.list_all("/v2/firewalls", "firewalls", vec![]).await?;
    Ok(fws.into_iter().map(Into::into).collect())
}

/// One firewall as the API reports it, `None` when gone.
pub(crate) async fn get(c: &Client, id: &str) -> Result<Option<WireFirewall>> {
    Ok(
        c.get_opt::<FirewallEnvelope>(&format!("/v2/firewalls/{}", checked_id(id)?))
            .await?
            .map(|e| e.firewall),
    )
}

/// Refuses a firewall name DigitalOcean would refuse, with the fix. Every `bootstrap-<name>` of
/// a valid deployment name passes (names are `[a-z0-9-]`), so this only guards other callers.
pub(crate) fn check_name(name: &str) -> Result<()> {
    let b = name.as_bytes();
    let ok = b.len() >= 2
        && b.len() <= 255
        && b[0].is_ascii_alphanumeric()
        && b[1..]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(Error::new(
            ErrorKind::InvalidInput,
            format!(
                "firewall name {name:?} is not allowed on DigitalOcean: use letters, digits, '.' and '-', starting with a letter or digit (choose another --name)"
            ),
        ))
    }
}

/// The deployment's droplet tag, which the firewall applies to.
pub(crate) fn target_tag(spec: &FirewallSpec) -> Result<String> {
    let d = spec.labels.deployment_name().ok_or_else(|| {
        Error::new(
            ErrorKind::InvalidInput,
            format!("firewall {} names no deployment to apply to", spec.name),
        )
    })?;
    Ok(format!("{LABEL_DEPLOYMENT}{TAG_SEP}{d}"))
}

/// The explicit outbound rules: everything to everywhere. Without them DigitalOcean drops all
/// egress of the droplets the firewall applies to.
pub(crate) fn outbound_rules() -> Vec<Value> {
    ["tcp", "udp", "icmp"]
        .into_iter()
        .map(|p| json!({ "protocol": p, "ports": "0", "destinations": { "addresses": ["0.0.0.0/0", "::/0"] } }))
        .collect()
}

fn protocol(p: Protocol) -> &'static str {
    match p {
        Protocol::Tcp => "tcp",
        Protocol::Udp => "udp",
    }
}

fn inbound(protocol_: Protocol, port: u16, sources: &[ipnet::IpNet]) -> Value {
    json!({
        "protocol": protocol(protocol_),
        "ports": port.to_string(),
        "sources": { "addresses": sources.iter().map(ToString::to_string).collect::<Vec<_>>() },
    })
}

/// Creates the firewall: the target tag first, then rules in and out, applied to the tag.
pub(crate) async fn create(c: &Client, spec: &FirewallSpec) -> Result<Created<Firewall>> {
    check_name(&spec.name)?;
    let tag = target_tag(spec)?;
    tags::ensure(c, &tag).await?;
    let body = json!({
        "name": spec.name,
        "inbound_rules": spec
            .inbound
            .iter()
            .map(|r| inbound(r.protocol, r.port, &r.sources))
            .collect::<Vec<_>>(),
        "outbound_rules": outbound_rules(),
        "tags": [tag],
    });
    let r: FirewallEnvelope = c.post("/v2/firewalls", &body).await?;
    let mut fw: Firewall = r.firewall.into();
    // The model's rule descriptions are ours (DigitalOcean rules have none).
    for rule in &mut fw.inbound {
        if let Some(w) = spec.inbound.iter().find(|w| w.same_port(rule)) {
            rule.description.clone_from(&w.description);
        }
    }
    Ok(Created::ready(fw))
}

/// Makes each wanted port allow exactly its sources: the new rule is added first (no moment
/// without access), then the old rules for that port are deleted exactly as the API reports
/// them. Rules for other ports, ranges, "all ports" and icmp are left alone.
pub(crate) async fn set_inbound_rules(
    c: &Client,
    firewall: &Firewall,
    wanted: &[FirewallRule],
) -> Result<Vec<Operation>> {
    let id = checked_id(&firewall.id)?;
    let Some(current) = get(c, &firewall.id).await? else {
        return Err(Error::new(
            ErrorKind::NotFound,
            format!("firewall {} ({}) is gone", firewall.name, firewall.id),
        ));
    };
    let raw: Vec<WireRule> = current.inbound_rules.clone().unwrap_or_default();
    let model: Vec<FirewallRule> = raw.iter().filter_map(WireRule::inbound).collect();
    let path = format!("/v2/firewalls/{id}/rules");
    for change in rule_changes(&model, wanted) {
        let w = change.rule;
        let _: Value = c
            .post(
                &path,
                &json!({ "inbound_rules": [inbound(w.protocol, w.port, &w.sources)] }),
            )
            .await?;
        let old: Vec<Value> = raw
            .iter()
            .filter(|r| {
                r.inbound()
                    .is_some_and(|m| m.same_port(w) && m.sources != w.sources)
            })
            .map(|r| json!({ "protocol": r.protocol, "ports": r.ports, "sources": r.sources }))
            .collect();
        if !old.is_empty() {
            c.delete_with(&path, &json!({ "inbound_rules": old }))
                .await?;
        }
    }
    Ok(Vec::new())
}

/// Deletes the firewall (one already gone is fine), then its target tags once nothing carries
/// them any more.
pub(crate) async fn delete(c: &Client, id: &str) -> Result<()> {
    let targets = get(c, id).await?.and_then(|f| f.tags).unwrap_or_default();
    c.delete(&format!("/v2/firewalls/{}", checked_id(id)?))
        .await?;
    for t in targets {
        tags::delete_if_unused(c, &t).await?;
    }
    Ok(())
}

/// Firewall ids are UUIDs: refuse anything that could change the path.
fn checked_id(id: &str) -> Result<&str> {
    if !id.is_empty() && id.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-') {
        Ok(id)
    } else {
        Err(Error::new(
            ErrorKind::InvalidInput,
            format!("not a DigitalOcean firewall id: {id:?}"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bootstrap_core::DeploymentName;

    #[test]
    fn every_deployment_name_makes_a_valid_firewall_name() {
        for n in ["a", "web1", "my-server-2", &"z".repeat(63), "0-0"] {
            let d = DeploymentName::parse(n).unwrap();
            check_name(&bootstrap_core::describe::resource_name(&d)).unwrap();
        }
        for bad in ["-x", "a_b", "a b", "x", "web/1"] {
            let e = check_name(bad).unwrap_err();
            assert!(e.to_string().contains("--name"), "{e}");
        }
    }

    #[test]
    fn outbound_rules_open_egress_on_both_families() {
        let rules = outbound_rules();
        for p in ["tcp", "udp", "icmp"] {
            let r = rules.iter().find(|r| r["protocol"] == p).unwrap();
            assert_eq!(r["ports"], "0");
            assert_eq!(r["destinations"]["addresses"], json!(["0.0.0.0/0", "::/0"]));
        }
    }
}
