//! Firewalls (`/firewalls`): created with our inbound rules and labels, listed by labels, their
//! SSH rule moved without touching the rules someone else added.
//!
//! `set_rules` replaces the whole list, so [`set_inbound_rules`] reads the firewall fresh and
//! sends back verbatim every rule it does not own.

use bootstrap_core::model::Protocol;
use bootstrap_core::{
    Created, Error, ErrorKind, Firewall, FirewallRule, FirewallSpec, Labels, Operation, Result,
};
use hcloud::models;

use crate::client::{Client, id_of, labels_map};
use crate::schema::{
    ActionsEnvelope, FirewallCreated, FirewallEnvelope, FirewallList, inbound_rule,
};
use crate::selector::selector;

/// Every firewall carrying all of `labels`.
pub(crate) async fn list_by_labels(c: &Client, labels: &Labels) -> Result<Vec<Firewall>> {
    let fws = c
        .list_all::<FirewallList>("/firewalls", vec![("label_selector", selector(labels))])
        .await?;
    Ok(fws.into_iter().map(Into::into).collect())
}

/// Creates the firewall with the spec's inbound rules and labels, applied to nothing yet (the
/// server is created with it).
pub(crate) async fn create(c: &Client, spec: &FirewallSpec) -> Result<Created<Firewall>> {
    let rules = spec.inbound.iter().map(rule_model).collect();
    let body = models::CreateFirewallRequest {
        apply_to: None,
        labels: Some(labels_map(&spec.labels)),
        name: spec.name.clone(),
        rules: Some(rules),
    };
    let r: FirewallCreated = c.post("/firewalls", &body).await?;
    Ok(Created {
        resource: r.firewall.into(),
        pending: r.actions.into_iter().map(Into::into).collect(),
    })
}

/// Replaces the rules for the ports in `inbound` and keeps every other rule as it is.
pub(crate) async fn set_inbound_rules(
    c: &Client,
    firewall: &Firewall,
    inbound: &[FirewallRule],
) -> Result<Vec<Operation>> {
    let path = format!("/firewalls/{}", id_of(&firewall.id)?);
    let current: FirewallEnvelope = c.get(&path, &[]).await?;
    let mut rules = Vec::new();
    for raw in current.firewall.rules {
        if inbound_rule(&raw).is_some_and(|r| inbound.iter().any(|w| w.same_port(&r))) {
            continue;
        }
        rules.push(kept_rule(raw, &firewall.name)?);
    }
    rules.extend(inbound.iter().map(rule_model));
    let r: ActionsEnvelope = c
        .post(
            &format!("{path}/actions/set_rules"),
            &models::SetRulesRequest { rules },
        )
        .await?;
    Ok(r.actions.into_iter().map(Into::into).collect())
}

/// Applies the firewall to a server (`apply_to_resources`); already applied is success.
pub(crate) async fn apply_to_server(
    c: &Client,
    firewall: &Firewall,
    server: &bootstrap_core::Server,
) -> Result<Vec<Operation>> {
    let path = format!(
        "/firewalls/{}/actions/apply_to_resources",
        id_of(&firewall.id)?
    );
    let body = serde_json::json!({
        "apply_to": [{"type": "server", "server": {"id": id_of(&server.id)?}}]
    });
    match c.post::<ActionsEnvelope, _>(&path, &body).await {
        Ok(r) => Ok(r.actions.into_iter().map(Into::into).collect()),
        Err(e) if crate::error::is_code(&e, &[crate::error::ErrorCode::FirewallAlreadyApplied]) => {
            Ok(Vec::new())
        }
        Err(e) => Err(e),
    }
}

/// Deletes the firewall; one already gone is fine, one still applied is `InUse`.
pub(crate) async fn delete(c: &Client, id: &str) -> Result<()> {
    c.delete::<serde_json::Value>(&format!("/firewalls/{}", id_of(id)?))
        .await
        .map(|_| ())
}

/// One inbound rule as Hetzner's request model.
fn rule_model(r: &FirewallRule) -> models::Rule {
    models::Rule {
        description: Some(Some(r.description.clone())),
        destination_ips: None,
        direction: models::rule::Direction::In,
        port: Some(Some(r.port.to_string())),
        protocol: match r.protocol {
            Protocol::Tcp => models::rule::Protocol::Tcp,
            Protocol::Udp => models::rule::Protocol::Udp,
        },
        source_ips: Some(r.sources.iter().map(ToString::to_string).collect()),
    }
}

/// A rule read back from the API, to send again unchanged: the answer lists both address
/// fields, a request only the one its direction uses.
fn kept_rule(mut raw: serde_json::Value, firewall: &str) -> Result<models::Rule> {
    if let Some(o) = raw.as_object_mut() {
        let unused = match o.get("direction").and_then(|d| d.as_str()) {
            Some("out") => "source_ips",
            _ => "destination_ips",
        };
        o.remove(unused);
    }
    serde_json::from_value(raw).map_err(|e| {
        Error::new(
            ErrorKind::Other,
            format!(
                "firewall {firewall} has a rule bootstrap cannot send back ({e}); change its SSH sources in the Hetzner console"
            ),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_rules_go_back_with_only_their_direction_s_addresses() {
        let out = kept_rule(
            serde_json::json!({"direction":"out","protocol":"icmp","port":null,
                "source_ips":[],"destination_ips":["0.0.0.0/0"],"description":null}),
            "fw",
        )
        .unwrap();
        let v = serde_json::to_value(&out).unwrap();
        assert_eq!(v["destination_ips"], serde_json::json!(["0.0.0.0/0"]));
        assert!(v.get("source_ips").is_none(), "{v}");
        let inbound = kept_rule(
            serde_json::json!({"direction":"in","protocol":"tcp","port":"443",
                "source_ips":["0.0.0.0/0"],"destination_ips":[]}),
            "fw",
        )
        .unwrap();
        let v = serde_json::to_value(&inbound).unwrap();
        assert!(v.get("destination_ips").is_none(), "{v}");
        let unknown = kept_rule(
            serde_json::json!({"direction":"in","protocol":"sctp","port":"9"}),
            "fw",
        );
        let e = unknown.unwrap_err();
        assert_eq!(e.kind(), &ErrorKind::Other);
        // Our own hint, not the API's text: the user is told where to fix it.
        assert!(e.to_string().contains("Hetzner console"), "{e}");
    }
}
