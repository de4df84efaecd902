//! Label selector matching (`matchLabels` and `matchExpressions`), for node and pool selectors.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};

/// Labels of an object.
pub type Labels = BTreeMap<String, String>;

/// Whether `labels` satisfy the selector; an empty selector matches everything.
pub fn matches(selector: &LabelSelector, labels: &Labels) -> bool {
    let labels_ok = selector
        .match_labels
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    labels_ok
        && selector
            .match_expressions
            .iter()
            .flatten()
            .all(|req| requirement_holds(req, labels))
}

/// Whether any selector of the list matches; an absent or empty list matches everything.
pub fn any_matches(selectors: Option<&[LabelSelector]>, labels: &Labels) -> bool {
    match selectors {
        None | Some([]) => true,
        Some(list) => list.iter().any(|s| matches(s, labels)),
    }
}

fn requirement_holds(req: &LabelSelectorRequirement, labels: &Labels) -> bool {
    let value = labels.get(&req.key);
    let values = req.values.as_deref().unwrap_or_default();
    match req.operator.as_str() {
        "In" => value.is_some_and(|v| values.contains(v)),
        "NotIn" => value.is_none_or(|v| !values.contains(v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        _ => false,
    }
}

/// Why a selector is malformed, or `None` when it is fine.
pub fn problem(selector: &LabelSelector) -> Option<String> {
    for req in selector.match_expressions.iter().flatten() {
        let count = req.values.as_ref().map_or(0, Vec::len);
        match req.operator.as_str() {
            "In" | "NotIn" if count == 0 => {
                return Some(format!(
                    "operator {} on key {:?} needs at least one value",
                    req.operator, req.key
                ));
            }
            "Exists" | "DoesNotExist" if count > 0 => {
                return Some(format!(
                    "operator {} on key {:?} takes no values",
                    req.operator, req.key
                ));
            }
            "In" | "NotIn" | "Exists" | "DoesNotExist" => {}
            other => return Some(format!("unknown operator {other:?} on key {:?}", req.key)),
        }
        let mut seen = std::collections::BTreeSet::new();
        if let Some(dup) = req.values.iter().flatten().find(|v| !seen.insert(*v)) {
            return Some(format!("duplicate value {dup:?} for key {:?}", req.key));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn expr(key: &str, op: &str, values: &[&str]) -> LabelSelector {
        LabelSelector {
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: key.into(),
                operator: op.into(),
                values: Some(values.iter().map(|v| v.to_string()).collect()),
            }]),
            ..Default::default()
        }
    }

    #[test]
    fn selectors_match_like_kubernetes() {
        let node = labels(&[("rack", "r1"), ("zone", "east")]);
        assert!(matches(&LabelSelector::default(), &node));
        assert!(matches(&expr("rack", "In", &["r1", "r2"]), &node));
        assert!(!matches(&expr("rack", "NotIn", &["r1"]), &node));
        assert!(matches(&expr("gpu", "DoesNotExist", &[]), &node));
        assert!(!matches(&expr("gpu", "Exists", &[]), &node));
        let by_label = LabelSelector {
            match_labels: Some(labels(&[("zone", "west")])),
            ..Default::default()
        };
        assert!(!matches(&by_label, &node));
        assert!(any_matches(None, &node));
        assert!(any_matches(
            Some(&[by_label.clone(), expr("zone", "In", &["east"])]),
            &node
        ));
        assert!(!any_matches(Some(&[by_label]), &node));
    }

    #[test]
    fn malformed_selectors_are_explained() {
        assert!(
            problem(&expr("a", "In", &[]))
                .unwrap()
                .contains("at least one value")
        );
        assert!(
            problem(&expr("a", "Exists", &["x"]))
                .unwrap()
                .contains("takes no values")
        );
        assert!(
            problem(&expr("a", "Near", &["x"]))
                .unwrap()
                .contains("unknown operator")
        );
        assert!(
            problem(&expr("a", "In", &["x", "x"]))
                .unwrap()
                .contains("duplicate value")
        );
        assert_eq!(problem(&expr("a", "In", &["x"])), None);
    }
}
