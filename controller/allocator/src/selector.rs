//! Kubernetes label selectors as a pure matcher (`metav1.LabelSelector` semantics).

use std::collections::BTreeMap;

/// Labels of an object, as `metadata.labels`.
pub type Labels = BTreeMap<String, String>;

/// A label selector: every `match_labels` pair and every expression must hold. An empty
/// selector matches everything, as `metav1.LabelSelectorAsSelector` makes it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector {
    /// Labels that must be present with exactly these values.
    pub match_labels: Labels,
    /// Set-based requirements.
    pub match_expressions: Vec<Requirement>,
}

/// One `matchExpressions` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    /// The label key.
    pub key: String,
    /// How the label's value relates to `values`.
    pub operator: Operator,
    /// Values for `In` and `NotIn`; ignored by `Exists` and `DoesNotExist`.
    pub values: Vec<String>,
}

/// Operator of a [`Requirement`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operator {
    /// The label is present and its value is one of the values.
    In,
    /// The label is absent, or its value is none of the values.
    NotIn,
    /// The label is present, whatever its value.
    Exists,
    /// The label is absent.
    DoesNotExist,
}

impl LabelSelector {
    /// A selector made only of `matchLabels`.
    pub fn from_labels<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        let match_labels = pairs
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        Self {
            match_labels,
            match_expressions: Vec::new(),
        }
    }

    /// Whether `labels` satisfy the selector.
    pub fn matches(&self, labels: &Labels) -> bool {
        self.match_labels
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v))
            && self.match_expressions.iter().all(|r| r.matches(labels))
    }
}

impl Requirement {
    /// Whether `labels` satisfy this one requirement.
    pub fn matches(&self, labels: &Labels) -> bool {
        let value = labels.get(&self.key);
        match self.operator {
            Operator::In => value.is_some_and(|v| self.values.contains(v)),
            Operator::NotIn => value.is_none_or(|v| !self.values.contains(v)),
            Operator::Exists => value.is_some(),
            Operator::DoesNotExist => value.is_none(),
        }
    }
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

    fn expr(key: &str, operator: Operator, values: &[&str]) -> LabelSelector {
        let values = values.iter().map(|v| v.to_string()).collect();
        LabelSelector {
            match_labels: Labels::new(),
            match_expressions: vec![Requirement {
                key: key.into(),
                operator,
                values,
            }],
        }
    }

    #[test]
    fn an_empty_selector_matches_everything() {
        assert!(LabelSelector::default().matches(&Labels::new()));
        assert!(LabelSelector::default().matches(&labels(&[("a", "b")])));
    }

    #[test]
    fn match_labels_need_every_pair() {
        let sel = LabelSelector::from_labels([("team", "a"), ("tier", "web")]);
        assert!(sel.matches(&labels(&[("team", "a"), ("tier", "web"), ("x", "y")])));
        assert!(!sel.matches(&labels(&[("team", "a")])));
        assert!(!sel.matches(&labels(&[("team", "b"), ("tier", "web")])));
    }

    #[test]
    fn each_operator_follows_kubernetes() {
        let red = labels(&[("color", "red")]);
        let blue = labels(&[("color", "blue")]);
        let none = Labels::new();
        let cases = [
            (
                expr("color", Operator::In, &["red", "green"]),
                [true, false, false],
            ),
            (
                expr("color", Operator::NotIn, &["red"]),
                [false, true, true],
            ),
            (expr("color", Operator::Exists, &[]), [true, true, false]),
            (
                expr("color", Operator::DoesNotExist, &[]),
                [false, false, true],
            ),
        ];
        for (sel, want) in cases {
            assert_eq!(
                [sel.matches(&red), sel.matches(&blue), sel.matches(&none)],
                want,
                "{sel:?}"
            );
        }
    }

    #[test]
    fn labels_and_expressions_must_both_hold() {
        let mut sel = expr("tier", Operator::Exists, &[]);
        sel.match_labels = labels(&[("team", "a")]);
        assert!(sel.matches(&labels(&[("team", "a"), ("tier", "x")])));
        assert!(!sel.matches(&labels(&[("team", "a")])));
        assert!(!sel.matches(&labels(&[("tier", "x")])));
    }
}
