//! Tags (`/v2/tags`): DigitalOcean's only labels. Droplets and images carry our labels as
//! `key:value` tags; a firewall refers to the deployment's droplet tag, which must exist first.
//!
//! Tag names allow only `[a-zA-Z0-9_\-:]` (at most 255 characters), checked here before any
//! request. Tags are shared by the whole account and deleting one untags everything that
//! carries it, so [`delete_if_unused`] deletes only a tag nothing carries any more.

use bootstrap_core::{Error, ErrorKind, Result};
use serde::Deserialize;
use serde_json::json;

use crate::client::Client;

/// The longest tag name the API accepts.
pub(crate) const TAG_MAX_LEN: usize = 255;

/// Refuses a tag name DigitalOcean would refuse, naming the allowed characters.
pub(crate) fn check(tag: &str) -> Result<()> {
    let ok = !tag.is_empty()
        && tag.len() <= TAG_MAX_LEN
        && tag
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b':'));
    if ok {
        Ok(())
    } else {
        Err(Error::new(
            ErrorKind::InvalidInput,
            format!(
                "DigitalOcean tag {tag:?} is not allowed: use 1-{TAG_MAX_LEN} of letters, digits, '_', '-' and ':'"
            ),
        ))
    }
}

/// One tag of `GET /v2/tags`.
#[derive(Debug, Deserialize)]
struct Named {
    name: String,
}

/// Every tag of the account whose name starts with `prefix` (`GET /v2/tags`, paged).
pub(crate) async fn list_prefixed(c: &Client, prefix: &str) -> Result<Vec<String>> {
    let all: Vec<Named> = c.list_all("/v2/tags", "tags", vec![]).await?;
    Ok(all
        .into_iter()
        .map(|t| t.name)
        .filter(|n| n.starts_with(prefix))
        .collect())
}

/// `{tag}`.
#[derive(Debug, Deserialize)]
struct TagEnvelope {
    tag: Tag,
}

#[derive(Debug, Deserialize)]
struct Tag {
    #[serde(default)]
    resources: Option<TagResources>,
}

#[derive(Debug, Deserialize)]
struct TagResources {
    #[serde(default)]
    count: u64,
}

/// Makes sure the tag exists (`POST /v2/tags` answers an existing tag as well).
pub(crate) async fn ensure(c: &Client, tag: &str) -> Result<()> {
    check(tag)?;
    match c
        .post::<serde_json::Value, _>("/v2/tags", &json!({ "name": tag }))
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == &ErrorKind::Conflict => Ok(()),
        Err(e) => Err(e),
    }
}

/// Puts `tag` on resources (`(id, type)`, type `droplet` or `image`), creating the tag first.
pub(crate) async fn attach(c: &Client, tag: &str, resources: &[(String, &str)]) -> Result<()> {
    ensure(c, tag).await?;
    attach_existing(c, tag, resources).await
}

/// Puts a tag that exists on resources; a missing tag is `ErrorKind::NotFound`.
pub(crate) async fn attach_existing(
    c: &Client,
    tag: &str,
    resources: &[(String, &str)],
) -> Result<()> {
    check(tag)?;
    let _: serde_json::Value = c
        .post(&format!("/v2/tags/{tag}/resources"), &body(resources))
        .await?;
    Ok(())
}

/// Takes `tag` off resources; a tag already gone is fine.
pub(crate) async fn detach(c: &Client, tag: &str, resources: &[(String, &str)]) -> Result<()> {
    check(tag)?;
    match c
        .delete_with(&format!("/v2/tags/{tag}/resources"), &body(resources))
        .await
    {
        Err(e) if e.is_not_found() => Ok(()),
        r => r,
    }
}

fn body(resources: &[(String, &str)]) -> serde_json::Value {
    json!({
        "resources": resources
            .iter()
            .map(|(id, kind)| json!({ "resource_id": id, "resource_type": kind }))
            .collect::<Vec<_>>()
    })
}

/// Deletes the tag when no resource carries it; returns whether it is gone.
pub(crate) async fn delete_if_unused(c: &Client, tag: &str) -> Result<bool> {
    check(tag)?;
    let Some(t) = c.get_opt::<TagEnvelope>(&format!("/v2/tags/{tag}")).await? else {
        return Ok(true);
    };
    if t.tag.resources.is_some_and(|r| r.count > 0) {
        return Ok(false);
    }
    c.delete(&format!("/v2/tags/{tag}")).await?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bootstrap_core::{DeploymentName, Labels};

    #[test]
    fn our_labels_make_valid_tags_and_others_are_refused() {
        let name = DeploymentName::parse(&"a".repeat(63)).unwrap();
        let mut l = Labels::deployment(&name);
        let schedule = bootstrap_core::schedule::Schedule::parse(
            "weekly:4",
            time::Time::from_hms(3, 0, 0).unwrap(),
            time::Weekday::Sunday,
        )
        .unwrap()
        .unwrap();
        for (k, v) in schedule.to_labels().iter() {
            l.insert(k, v);
        }
        l.insert(bootstrap_core::schedule::LABEL_SLOT, "20261125T0300Z");
        for t in l.to_flat_tags(':') {
            check(&t).unwrap();
        }
        for bad in ["", "key=value", "a b", "tag/x", &"a".repeat(256)] {
            assert_eq!(
                check(bad).unwrap_err().kind(),
                &ErrorKind::InvalidInput,
                "{bad}"
            );
        }
    }
}
