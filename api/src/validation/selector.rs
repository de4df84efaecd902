//! Label selectors (`matchLabels` and `matchExpressions`) of every kind and field: node, pool,
//! namespace, Service and pod selectors. Each is parsed once here, so the rule that refuses a
//! malformed selector and the code that matches labels read it the same way.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use super::Report;

/// Labels of an object.
pub type Labels = BTreeMap<String, String>;

/// The operator of one `matchExpressions` requirement.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operator {
    /// The label is set to one of the values.
    In,
    /// The label is missing or set to none of the values.
    NotIn,
    /// The label is set.
    Exists,
    /// The label is missing.
    DoesNotExist,
}

impl Operator {
    fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "In" => Operator::In,
            "NotIn" => Operator::NotIn,
            "Exists" => Operator::Exists,
            "DoesNotExist" => Operator::DoesNotExist,
            _ => return None,
        })
    }
}

/// One well-formed `matchExpressions` requirement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Requirement {
    /// The label key.
    pub key: String,
    /// How the label is compared.
    pub operator: Operator,
    /// The values of `In` and `NotIn`; empty for the others.
    pub values: BTreeSet<String>,
}

impl Requirement {
    fn holds(&self, labels: &Labels) -> bool {
        let value = labels.get(&self.key);
        match self.operator {
            Operator::In => value.is_some_and(|v| self.values.contains(v)),
            Operator::NotIn => value.is_none_or(|v| !self.values.contains(v)),
            Operator::Exists => value.is_some(),
            Operator::DoesNotExist => value.is_none(),
        }
    }
}

/// A label selector whose requirements are all well formed; the empty one matches everything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Selector {
    /// Labels an object must carry, all of them.
    pub labels: Labels,
    /// Requirements an object must meet, all of them.
    pub requirements: Vec<Requirement>,
}

/// Why a selector is malformed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SelectorError {
    /// Path of the offending field inside the selector, e.g. `matchExpressions[0].operator`.
    pub field: String,
    /// What is wrong, naming the key and the operator.
    pub text: String,
}

impl Selector {
    /// Checks a selector as the API server does when it builds one: a known operator, values
    /// for `In` and `NotIn` only, no value twice.
    pub fn parse(selector: &LabelSelector) -> Result<Self, SelectorError> {
        let mut requirements = Vec::new();
        for (i, req) in selector.match_expressions.iter().flatten().enumerate() {
            let error = |field: &str, text: String| SelectorError {
                field: format!("matchExpressions[{i}].{field}"),
                text,
            };
            let (key, op) = (&req.key, &req.operator);
            let operator = Operator::parse(op).ok_or_else(|| {
                error(
                    "operator",
                    format!(
                        "unknown operator {op:?} on key {key:?} (In, NotIn, Exists or DoesNotExist)"
                    ),
                )
            })?;
            let written = req.values.as_deref().unwrap_or_default();
            match operator {
                Operator::In | Operator::NotIn if written.is_empty() => {
                    let text = format!("operator {op} on key {key:?} needs at least one value");
                    return Err(error("values", text));
                }
                Operator::Exists | Operator::DoesNotExist if !written.is_empty() => {
                    let text = format!("operator {op} on key {key:?} takes no values");
                    return Err(error("values", text));
                }
                _ => {}
            }
            let mut values = BTreeSet::new();
            if let Some(dup) = written.iter().find(|v| !values.insert(v.to_string())) {
                let text = format!("duplicate value {dup:?} for key {key:?}");
                return Err(error("values", text));
            }
            requirements.push(Requirement {
                key: key.clone(),
                operator,
                values,
            });
        }
        Ok(Selector {
            labels: selector.match_labels.clone().unwrap_or_default(),
            requirements,
        })
    }

    /// Whether `labels` satisfy the selector.
    pub fn matches(&self, labels: &Labels) -> bool {
        self.labels.iter().all(|(k, v)| labels.get(k) == Some(v))
            && self.requirements.iter().all(|r| r.holds(labels))
    }
}

/// The selectors of one list field, such as `nodeSelectors`: an object is selected by any of
/// them, and an absent or empty list selects everything. A malformed selector selects nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Selection {
    written: bool,
    selectors: Vec<Selector>,
}

impl Selection {
    /// Parses a list field, returning the malformed selectors with their index.
    pub fn parse(list: Option<&[LabelSelector]>) -> (Self, Vec<(usize, SelectorError)>) {
        let list = list.unwrap_or_default();
        let mut errors = Vec::new();
        let mut selectors = Vec::new();
        for (i, selector) in list.iter().enumerate() {
            match Selector::parse(selector) {
                Ok(parsed) => selectors.push(parsed),
                Err(e) => errors.push((i, e)),
            }
        }
        let selection = Selection {
            written: !list.is_empty(),
            selectors,
        };
        (selection, errors)
    }

    /// Parses a list field of an object already accepted, ignoring what is malformed in it.
    pub fn of(list: Option<&[LabelSelector]>) -> Self {
        Self::parse(list).0
    }

    /// Whether the list is absent or empty, so that it selects everything.
    pub fn is_everything(&self) -> bool {
        !self.written
    }

    /// Whether the list selects an object with these labels.
    pub fn selects(&self, labels: &Labels) -> bool {
        self.is_everything() || self.any_matches(labels)
    }

    /// Whether one of the written selectors matches, an empty list matching nothing.
    pub fn any_matches(&self, labels: &Labels) -> bool {
        self.selectors.iter().any(|s| s.matches(labels))
    }
}

/// Reports the malformed selectors of a list field as `field[i].<path>` and returns what it
/// selects.
pub(crate) fn check_list(
    report: &mut Report,
    field: &str,
    list: Option<&[LabelSelector]>,
) -> Selection {
    let (selection, errors) = Selection::parse(list);
    add_errors(report, field, &errors);
    selection
}

/// Reports selector errors of a list field, found by [`Selection::parse`].
pub(crate) fn add_errors(report: &mut Report, field: &str, errors: &[(usize, SelectorError)]) {
    for (i, e) in errors {
        report.add(
            format!("{field}[{i}].{}", e.field),
            format!("invalid selector: {}", e.text),
        );
    }
}

/// Reports a malformed single selector field, such as a pod affinity term's `labelSelector`.
pub(crate) fn check_one(report: &mut Report, field: &str, selector: Option<&LabelSelector>) {
    if let Some(Err(e)) = selector.map(Selector::parse) {
        report.add(
            format!("{field}.{}", e.field),
            format!("invalid selector: {}", e.text),
        );
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

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

    fn matches(selector: &LabelSelector, labels: &Labels) -> bool {
        Selector::parse(selector).unwrap().matches(labels)
    }

    #[test]
    fn selectors_match_like_kubernetes() {
        let node = labels(&[("rack", "r1"), ("zone", "east")]);
        assert!(matches(&LabelSelector::default(), &node));
        assert!(matches(&expr("rack", "In", &["r1", "r2"]), &node));
        assert!(!matches(&expr("rack", "NotIn", &["r1"]), &node));
        assert!(matches(&expr("rack", "NotIn", &["r2"]), &node));
        assert!(matches(&expr("gpu", "DoesNotExist", &[]), &node));
        assert!(!matches(&expr("gpu", "Exists", &[]), &node));
        let by_label = LabelSelector {
            match_labels: Some(labels(&[("zone", "west")])),
            ..Default::default()
        };
        assert!(!matches(&by_label, &node));
        assert!(Selection::of(None).selects(&node));
        let either = [by_label.clone(), expr("zone", "In", &["east"])];
        assert!(Selection::of(Some(&either)).selects(&node));
        assert!(!Selection::of(Some(&[by_label])).selects(&node));
    }

    #[test]
    fn a_list_whose_only_selector_is_malformed_selects_nothing() {
        let node = labels(&[("rack", "r1")]);
        let (selection, errors) = Selection::parse(Some(&[expr("rack", "Out", &["r2"])]));
        assert_eq!(errors.len(), 1);
        assert!(!selection.is_everything());
        assert!(!selection.selects(&node));
    }

    #[test]
    fn malformed_selectors_are_explained_at_the_offending_field() {
        let error = |s: LabelSelector| Selector::parse(&s).unwrap_err();
        let e = error(expr("a", "In", &[]));
        assert_eq!(e.field, "matchExpressions[0].values");
        assert!(e.text.contains("at least one value"), "{}", e.text);
        assert!(
            error(expr("a", "Exists", &["x"]))
                .text
                .contains("takes no values")
        );
        let e = error(expr("rack", "Out", &["x"]));
        assert_eq!(e.field, "matchExpressions[0].operator");
        assert_eq!(
            e.text,
            r#"unknown operator "Out" on key "rack" (In, NotIn, Exists or DoesNotExist)"#
        );
        assert!(
            error(expr("a", "In", &["x", "x"]))
                .text
                .contains(r#"duplicate value "x""#)
        );
        assert!(Selector::parse(&expr("a", "In", &["x"])).is_ok());
    }
}
