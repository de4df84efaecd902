//! The single-field rules declared on the types (`#[validate(range(..))]`, `length`, `regex`,
//! nested durations): the same attributes schemars writes into the CRD schema, checked here in
//! process by `Validate::validate()` and turned into [`Problem`]s with YAML field paths.

use serde_json::Value;
use validator::{Validate, ValidationError, ValidationErrors, ValidationErrorsKind};

use super::Problem;

/// Key validator uses for an error of the value itself rather than one of its fields.
const WHOLE_VALUE: &str = "__all__";

/// Every field rule `value` breaks, under `prefix` (e.g. `spec`), sorted by field path.
pub(crate) fn problems(prefix: &str, value: &impl Validate) -> Vec<Problem> {
    let mut out = Vec::new();
    if let Err(errors) = value.validate() {
        collect(prefix, &errors, &mut out);
    }
    out.sort_by(|a, b| a.field.cmp(&b.field));
    out
}

fn collect(path: &str, errors: &ValidationErrors, out: &mut Vec<Problem>) {
    for (key, kind) in errors.errors() {
        let here = if key == WHOLE_VALUE {
            path.to_owned()
        } else {
            format!("{path}.{}", json_name(key))
        };
        match kind {
            ValidationErrorsKind::Field(list) => out.extend(list.iter().map(|e| Problem {
                field: here.clone(),
                text: describe(key, e),
            })),
            ValidationErrorsKind::Struct(inner) => collect(&here, inner, out),
            ValidationErrorsKind::List(items) => {
                for (i, inner) in items {
                    collect(&format!("{here}[{i}]"), inner, out);
                }
            }
        }
    }
}

/// The YAML name of a Rust field: camelCase, with the acronyms the metallb.io API spells in
/// capitals (`myASN`, `routerID`, `avoidBuggyIPs`, `disableMP`).
pub(crate) fn json_name(field: &str) -> String {
    let mut words = field.trim_end_matches('_').split('_');
    let mut name = words.next().unwrap_or_default().to_owned();
    for word in words {
        match word {
            "asn" | "id" | "mp" => name.push_str(&word.to_ascii_uppercase()),
            "ips" => name.push_str("IPs"),
            "ipv4" | "ipv6" => {
                name.push_str("IP");
                name.push_str(&word[2..]);
            }
            _ => {
                let mut chars = word.chars();
                name.extend(chars.next().map(|c| c.to_ascii_uppercase()));
                name.extend(chars);
            }
        }
    }
    name
}

/// The reason, from the attribute's message or else from the rule and its parameters; ranges
/// read `invalid receive interval value 9, must be between 10 and 60000`.
fn describe(field: &str, error: &ValidationError) -> String {
    if let Some(message) = &error.message {
        return message.to_string();
    }
    let words = field.trim_end_matches('_').replace('_', " ");
    let param = |name: &str| error.params.get(name);
    let bounds = match (param("min"), param("max"), param("equal")) {
        (Some(min), Some(max), _) => format!("between {min} and {max}"),
        (Some(min), None, _) => format!("at least {min}"),
        (None, Some(max), _) => format!("at most {max}"),
        (None, None, Some(equal)) => format!("exactly {equal}"),
        (None, None, None) => String::new(),
    };
    let value = param("value");
    match error.code.as_ref() {
        "range" => format!(
            "invalid {words} value {}, must be {bounds}",
            value.map(Value::to_string).unwrap_or_default()
        ),
        "length" => {
            let unit = if value.is_some_and(Value::is_string) {
                "character"
            } else {
                "item"
            };
            let plural = if bounds.ends_with(" 1") { "" } else { "s" };
            format!("invalid {words}: must have {bounds} {unit}{plural}")
        }
        code => format!("invalid {words}: breaks the {code} rule"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rust_field_names_become_the_yaml_names_of_the_api() {
        for (field, yaml) in [
            ("hold_time", "holdTime"),
            ("my_asn", "myASN"),
            ("router_id", "routerID"),
            ("avoid_buggy_ips", "avoidBuggyIPs"),
            ("disable_mp", "disableMP"),
            ("assigned_ipv4", "assignedIPv4"),
            ("aggregation_length_v6", "aggregationLengthV6"),
            ("minimum_ttl", "minimumTtl"),
            ("type_", "type"),
            ("ip_address_pools", "ipAddressPools"),
        ] {
            assert_eq!(json_name(field), yaml);
        }
    }

    /// `rename_all = "camelCase"` in reverse: `myASN` -> `my_asn`, `avoidBuggyIPs` ->
    /// `avoid_buggy_ips`.
    fn snake_case(yaml: &str) -> String {
        let mut out = String::new();
        let mut previous_lower = false;
        for c in yaml.chars() {
            if c.is_ascii_uppercase() && previous_lower {
                out.push('_');
            }
            previous_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
            out.push(c.to_ascii_lowercase());
        }
        out
    }

    fn property_names(schema: &Value, out: &mut Vec<String>) {
        if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
            for (name, property) in properties {
                out.push(name.clone());
                property_names(property, out);
            }
        }
        if let Some(items) = schema.get("items") {
            property_names(items, out);
        }
    }

    #[test]
    fn every_field_name_of_every_crd_is_found_again_from_its_rust_name() {
        let mut names = Vec::new();
        for crd in crate::crds::all().unwrap() {
            for version in crd.spec.versions {
                let schema = serde_json::to_value(version.schema).unwrap();
                property_names(&schema["openAPIV3Schema"], &mut names);
            }
        }
        assert!(names.iter().any(|n| n == "myASN"), "{names:?}");
        let wrong: Vec<_> = names
            .iter()
            .filter(|name| json_name(&snake_case(name)) != **name)
            .collect();
        assert!(wrong.is_empty(), "json_name gets these wrong: {wrong:?}");
    }

    #[test]
    fn a_rule_without_a_message_is_described_from_its_parameters() {
        let mut range = ValidationError::new("range");
        range.add_param("min".into(), &10);
        range.add_param("max".into(), &60000);
        range.add_param("value".into(), &9);
        assert_eq!(
            describe("receive_interval", &range),
            "invalid receive interval value 9, must be between 10 and 60000"
        );
        let mut length = ValidationError::new("length");
        length.add_param("min".into(), &1);
        length.add_param("value".into(), &Vec::<String>::new());
        assert_eq!(
            describe("values", &length),
            "invalid values: must have at least 1 item"
        );
        let mut text = ValidationError::new("length");
        text.add_param("max".into(), &3);
        text.add_param("value".into(), &"long");
        assert_eq!(
            describe("reason", &text),
            "invalid reason: must have at most 3 characters"
        );
    }
}
