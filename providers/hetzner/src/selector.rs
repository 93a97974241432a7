//! Hetzner's label-selector syntax.

use bootstrap_core::Labels;

/// A Kubernetes-style selector `k=v,k2=v2`, sorted by key (Hetzner's `label_selector`).
pub(crate) fn selector(labels: &Labels) -> String {
    labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}
