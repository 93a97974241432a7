//! The core's labels as EC2 tags, and back.
//!
//! Labels become tags one to one (`managed-by=bootstrap`, `bootstrap-deployment=web1`, ...);
//! selectors become `tag:KEY` filters, which every Describe call used here accepts. The `Name`
//! tag carries the resource's name (the console shows it) and is not a label; `aws:` tags are
//! AWS's own and are left out too.

use aws_sdk_ec2::types::{Filter, ResourceType, Tag, TagSpecification};
use bootstrap_core::Labels;

/// The tag EC2's console shows as the resource's name.
pub(crate) const NAME: &str = "Name";

/// `labels` plus `Name=name`, for a `TagSpecification`.
pub(crate) fn tags(labels: &Labels, name: &str) -> Vec<Tag> {
    labels
        .iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .chain(std::iter::once(
            Tag::builder().key(NAME).value(name).build(),
        ))
        .collect()
}

/// Tags for one resource type, set in the create call itself so the resource is never untagged.
pub(crate) fn spec(rt: ResourceType, labels: &Labels, name: &str) -> TagSpecification {
    TagSpecification::builder()
        .resource_type(rt)
        .set_tags(Some(tags(labels, name)))
        .build()
}

/// One `tag:KEY = VALUE` filter per label of `selector`.
pub(crate) fn filters(selector: &Labels) -> Vec<Filter> {
    selector
        .iter()
        .map(|(k, v)| Filter::builder().name(format!("tag:{k}")).values(v).build())
        .collect()
}

/// The labels among `tags` (without `Name` and `aws:` tags).
pub(crate) fn labels(tags: &[Tag]) -> Labels {
    tags.iter()
        .filter_map(|t| Some((t.key()?, t.value().unwrap_or_default())))
        .filter(|(k, _)| *k != NAME && !k.starts_with("aws:"))
        .collect()
}

/// The `Name` tag, if any.
pub(crate) fn name(tags: &[Tag]) -> Option<&str> {
    tags.iter()
        .find(|t| t.key() == Some(NAME))
        .and_then(Tag::value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bootstrap_core::DeploymentName;

    #[test]
    fn labels_round_trip_through_tags() {
        let mut l = Labels::deployment(&DeploymentName::parse("web1").unwrap());
        l.insert("bootstrap-ssh-key", "bootstrap-web1");
        let mut t = tags(&l, "web1");
        t.push(
            Tag::builder()
                .key("aws:cloudformation:stack-id")
                .value("x")
                .build(),
        );
        assert_eq!(labels(&t), l);
        assert_eq!(name(&t), Some("web1"));
        let f = filters(&Labels::managed());
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].name(), Some("tag:managed-by"));
        assert_eq!(f[0].values(), ["bootstrap"]);
    }
}
