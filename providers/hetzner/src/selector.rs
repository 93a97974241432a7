//! Hetzner's label-selector syntax: the query that `label_selector=` takes on every list call.
//!
//! Only equality terms are needed (`k=v`, joined by `,`, all must match); keys are sorted so that
//! the same labels always give the same query. The core's flows check the labels again on what
//! comes back, so an API that ignored the selector could still not make them touch others'
//! resources.

use bootstrap_core::Labels;

/// `k=v,k2=v2` for `labels`, sorted by key.
pub(crate) fn selector(labels: &Labels) -> String {
    // `Labels` iterates in key order already; sorting by key here keeps the promise if that
    // changes (by key, not by term: `a-b=x` sorts before `a=y` as text).
    let mut pairs: Vec<(&str, &str)> = labels.iter().collect();
    pairs.sort_unstable_by_key(|(k, _)| *k);
    pairs
        .into_iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terms_are_sorted_equalities_joined_by_commas() {
        let l: Labels = [
            ("managed-by", "bootstrap"),
            ("bootstrap-deployment", "web1"),
            ("bootstrap-keep", "7"),
        ]
        .into_iter()
        .collect();
        assert_eq!(
            selector(&l),
            "bootstrap-deployment=web1,bootstrap-keep=7,managed-by=bootstrap"
        );
        assert_eq!(selector(&Labels::new()), "");
        let l: Labels = [("a-b", "x"), ("a", "y")].into_iter().collect();
        assert_eq!(selector(&l), "a=y,a-b=x");
    }
}
