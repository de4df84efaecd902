//! Kubernetes label selectors as a pure matcher (`metav1.LabelSelector` semantics), for the
//! advertisements' `nodeSelectors` and `ipAddressPoolSelectors` and the peers' `nodeSelectors`.

use std::collections::BTreeMap;

/// Labels of an object, as `metadata.labels`.
pub type Labels = BTreeMap<String, String>;

/// A label selector: every `match_labels` pair and every expression must hold. An empty
/// selector matches everything, as `metav1.LabelSelectorAsSelector` makes it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LabelSelector {
    /// Labels that must be present with exactly these values.
    pub match_labels: Labels,
    /// Set-based requirements.
    pub match_expressions: Vec<Requirement>,
}

/// One `matchExpressions` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Requirement {
    /// The label key.
    pub key: String,
    /// How the label's value relates to `values`.
    pub operator: Operator,
    /// Values for `In` and `NotIn`; ignored by `Exists` and `DoesNotExist`.
    pub values: Vec<String>,
}

/// Operator of a [`Requirement`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
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
        Self {
            match_labels: pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
            match_expressions: Vec::new(),
        }
    }

    /// A selector made of one `matchExpressions` entry.
    pub fn from_requirement(requirement: Requirement) -> Self {
        Self {
            match_labels: Labels::new(),
            match_expressions: vec![requirement],
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
    /// The requirement `key operator values`.
    pub fn new<V: Into<String>>(
        key: impl Into<String>,
        operator: Operator,
        values: impl IntoIterator<Item = V>,
    ) -> Self {
        Self {
            key: key.into(),
            operator,
            values: values.into_iter().map(Into::into).collect(),
        }
    }

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

/// Whether `labels` match any of `selectors`, the way MetalLB reads a `nodeSelectors` list:
/// an empty list selects everything.
pub fn any_matches(selectors: &[LabelSelector], labels: &Labels) -> bool {
    selectors.is_empty() || selectors.iter().any(|s| s.matches(labels))
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
        LabelSelector::from_requirement(Requirement::new(key, operator, values.iter().copied()))
    }

    #[test]
    fn an_empty_selector_matches_everything() {
        assert!(LabelSelector::default().matches(&Labels::new()));
        assert!(LabelSelector::default().matches(&labels(&[("a", "b")])));
    }

    #[test]
    fn match_labels_need_every_pair() {
        let sel = LabelSelector::from_labels([("zone", "a"), ("rack", "1")]);
        assert!(sel.matches(&labels(&[("zone", "a"), ("rack", "1"), ("x", "y")])));
        assert!(!sel.matches(&labels(&[("zone", "a")])));
        assert!(!sel.matches(&labels(&[("zone", "b"), ("rack", "1")])));
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
            (expr("color", Operator::In, &[]), [false, false, false]),
        ];
        for (selector, expected) in cases {
            let got = [&red, &blue, &none].map(|l| selector.matches(l));
            assert_eq!(got, expected, "{selector:?}");
        }
    }

    #[test]
    fn labels_and_expressions_must_all_hold() {
        let mut sel = LabelSelector::from_labels([("zone", "a")]);
        sel.match_expressions
            .push(Requirement::new("rack", Operator::NotIn, ["1"]));
        assert!(sel.matches(&labels(&[("zone", "a"), ("rack", "2")])));
        assert!(sel.matches(&labels(&[("zone", "a")])));
        assert!(!sel.matches(&labels(&[("zone", "a"), ("rack", "1")])));
        assert!(!sel.matches(&labels(&[("rack", "2")])));
    }

    #[test]
    fn a_selector_list_selects_with_any_entry_and_everything_when_empty() {
        let a = labels(&[("zone", "a")]);
        let c = labels(&[("zone", "c")]);
        let list = [
            LabelSelector::from_labels([("zone", "a")]),
            LabelSelector::from_labels([("zone", "b")]),
        ];
        assert!(any_matches(&list, &a));
        assert!(!any_matches(&list, &c));
        assert!(any_matches(&[], &c));
    }
}
