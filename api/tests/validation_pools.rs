//! Pool rules: the 4.10 AddressPool rules in the reference's order, the current IPAddressPool
//! rules, and overlaps across both kinds. Each rule has a refused and an accepted case.

use metallb_api::{
    addresspool::v1beta1::AddressPool,
    ipaddresspool::IPAddressPool,
    validation::{Operation, Snapshot, validate_address_pool, validate_ip_address_pool},
};
use serde_json::{Value, json};

fn address_pool(name: &str, spec: Value) -> AddressPool {
    serde_json::from_value(json!({
        "apiVersion": "metallb.io/v1beta1", "kind": "AddressPool",
        "metadata": {"name": name, "namespace": "metallb-system"}, "spec": spec,
    }))
    .unwrap()
}

fn ip_pool(name: &str, spec: Value) -> IPAddressPool {
    serde_json::from_value(json!({
        "apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool",
        "metadata": {"name": name, "namespace": "metallb-system", "labels": {"zone": "east"}}, "spec": spec,
    }))
    .unwrap()
}

fn snapshot(legacy: Vec<AddressPool>, current: Vec<IPAddressPool>) -> Snapshot {
    Snapshot {
        namespace: "metallb-system".into(),
        address_pools: legacy,
        ip_address_pools: current,
        ..Default::default()
    }
}

fn legacy_verdict(op: Operation, pool: &AddressPool, existing: &Snapshot) -> Result<(), String> {
    validate_address_pool(op, pool, existing).map_err(|d| d.to_string())
}

#[test]
fn address_pool_rules_refuse_and_accept_as_the_410_operator_did() {
    let a = address_pool(
        "a",
        json!({"protocol": "layer2", "addresses": ["1.1.1.8/29", "2000::/64"]}),
    );
    let existing = snapshot(vec![a.clone()], vec![]);
    let cases: Vec<(&str, Operation, Value, Option<&str>)> = vec![
        (
            "bare IPv4 address",
            Operation::Create,
            json!({"protocol": "layer2", "addresses": ["2.2.2.2"]}),
            Some(
                r#"Failed to parse addresses for p: invalid CIDR "2.2.2.2" in pool p: invalid CIDR "2.2.2.2""#,
            ),
        ),
        (
            "bare IPv6 address",
            Operation::Create,
            json!({"protocol": "layer2", "addresses": ["3000::"]}),
            Some(r#"invalid CIDR "3000::""#),
        ),
        (
            "bad range start",
            Operation::Create,
            json!({"protocol": "layer2", "addresses": ["x-2.2.2.2"]}),
            Some(r#"invalid IP range "x-2.2.2.2": invalid start IP "x""#),
        ),
        (
            "bad range end",
            Operation::Create,
            json!({"protocol": "layer2", "addresses": ["2.2.2.2-y"]}),
            Some(r#"invalid end IP "y""#),
        ),
        (
            "reversed range",
            Operation::Create,
            json!({"protocol": "layer2", "addresses": ["2.2.2.9-2.2.2.1"]}),
            Some(r#"start IP "2.2.2.9" is after the end IP "2.2.2.1""#),
        ),
        (
            "single-address range",
            Operation::Create,
            json!({"protocol": "layer2", "addresses": ["2.2.2.2-2.2.2.2"]}),
            None,
        ),
        (
            "CIDR with host bits",
            Operation::Create,
            json!({"protocol": "layer2", "addresses": ["10.20.30.40/24"]}),
            None,
        ),
        (
            "advertisements on a layer2 pool",
            Operation::Create,
            json!({"protocol": "layer2", "addresses": ["2.2.2.0/24"], "bgpAdvertisements": [{"localPref": 1}]}),
            Some("bgpadvertisement config not valid for protocol layer2"),
        ),
        (
            "duplicate advertisements",
            Operation::Create,
            json!({"protocol": "bgp", "addresses": ["2.2.2.0/24"], "bgpAdvertisements": [{"localPref": 1}, {"localPref": 1}]}),
            Some("invalid bgpadvertisement config: duplicate definition of bgpadvertisement"),
        ),
        (
            "duplicate communities",
            Operation::Create,
            json!({"protocol": "bgp", "addresses": ["2.2.2.0/24"], "bgpAdvertisements": [{"communities": ["1:1", "1:1"]}]}),
            Some("duplicate definition of communities"),
        ),
        (
            "IPv4 aggregation over 32",
            Operation::Create,
            json!({"protocol": "bgp", "addresses": ["2.2.2.0/24"], "bgpAdvertisements": [{"aggregationLength": 33}]}),
            Some(
                "spec.bgpAdvertisements[0].aggregationLength: invalid aggregation length value 33, must be between 1 and 32",
            ),
        ),
        (
            "IPv6 aggregation over 128",
            Operation::Create,
            json!({"protocol": "bgp", "addresses": ["3000::/64"], "bgpAdvertisements": [{"aggregationLengthV6": 129}]}),
            Some(
                "spec.bgpAdvertisements[0].aggregationLengthV6: invalid aggregation length v6 value 129, must be between 1 and 128",
            ),
        ),
        (
            "aggregation shorter than the pool",
            Operation::Create,
            json!({"protocol": "bgp", "addresses": ["3.3.3.2-3.3.3.254"], "bgpAdvertisements": [{"aggregationLength": 24}]}),
            Some(
                "invalid aggregation length 24: prefix 26 in this pool is more specific than the aggregation length for addresses 3.3.3.2-3.3.3.254",
            ),
        ),
        (
            "aggregation within the pool",
            Operation::Create,
            json!({"protocol": "bgp", "addresses": ["3.3.3.2-3.3.3.254"], "bgpAdvertisements": [{"aggregationLength": 26}]}),
            None,
        ),
        (
            "IPv6-only pool with only a v6 length",
            Operation::Create,
            json!({"protocol": "bgp", "addresses": ["3000::/64"], "bgpAdvertisements": [{"aggregationLength": 32, "aggregationLengthV6": 64}]}),
            None,
        ),
        (
            "IPv6 aggregation shorter than the pool",
            Operation::Create,
            json!({"protocol": "bgp", "addresses": ["3000::/64"], "bgpAdvertisements": [{"aggregationLengthV6": 48}]}),
            Some("invalid aggregation length 48: prefix 64 in this pool is more specific"),
        ),
        (
            "community with two colons",
            Operation::Create,
            json!({"protocol": "bgp", "addresses": ["2.2.2.0/24"], "bgpAdvertisements": [{"communities": ["1:2:3"]}]}),
            Some(r#"invalid community string "1:2:3""#),
        ),
        (
            "community first section too large",
            Operation::Create,
            json!({"protocol": "bgp", "addresses": ["2.2.2.0/24"], "bgpAdvertisements": [{"communities": ["70000:1"]}]}),
            Some(r#"invalid first section of community "70000""#),
        ),
        (
            "community second section not a number",
            Operation::Create,
            json!({"protocol": "bgp", "addresses": ["2.2.2.0/24"], "bgpAdvertisements": [{"communities": ["1:x"]}]}),
            Some(r#"invalid second section of community "x""#),
        ),
        (
            "community with leading zeros",
            Operation::Create,
            json!({"protocol": "bgp", "addresses": ["2.2.2.0/24"], "bgpAdvertisements": [{"communities": ["7003:007"]}]}),
            None,
        ),
        (
            "overlap with an existing pool",
            Operation::Create,
            json!({"protocol": "layer2", "addresses": ["1.1.1.15/32"]}),
            Some(
                r#"CIDR "1.1.1.15/32" in pool p overlaps with already defined CIDR "1.1.1.8/29" in pool a"#,
            ),
        ),
        (
            "overlap as a range",
            Operation::Create,
            json!({"protocol": "layer2", "addresses": ["1.1.1.1-1.1.1.9"]}),
            Some(r#"overlaps with already defined CIDR "1.1.1.8/29" in pool a"#),
        ),
        (
            "IPv6 overlap",
            Operation::Create,
            json!({"protocol": "layer2", "addresses": ["2000::5/128"]}),
            Some(r#"overlaps with already defined CIDR "2000::/64""#),
        ),
        (
            "adjacent to an existing pool",
            Operation::Create,
            json!({"protocol": "layer2", "addresses": ["1.1.1.16/29"]}),
            None,
        ),
        (
            "overlap inside the pool itself",
            Operation::Create,
            json!({"protocol": "layer2", "addresses": ["9.9.9.0/24", "9.9.9.5/32"]}),
            Some(
                r#"CIDR "9.9.9.5/32" overlaps with already defined CIDR "9.9.9.0/24" (spec.addresses[0]) in pool p"#,
            ),
        ),
    ];
    let mut failures = Vec::new();
    for (what, op, spec, expected) in cases {
        let verdict = legacy_verdict(op, &address_pool("p", spec), &existing);
        match (expected, &verdict) {
            (None, Ok(())) => {}
            (Some(phrase), Err(text))
                if text.contains(phrase) && text.starts_with("addresspool \"p\": spec.") => {}
            _ => failures.push(format!("{what}: expected {expected:?}, got {verdict:?}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_first_address_pool_error_wins() {
    let pool = address_pool(
        "p",
        json!({"protocol": "layer2", "addresses": ["bad", "1.1.1.8/29"], "bgpAdvertisements": [{"localPref": 1}]}),
    );
    let denial =
        validate_address_pool(Operation::Create, &pool, &snapshot(vec![], vec![])).unwrap_err();
    assert_eq!(denial.problems.len(), 1);
    assert!(denial.problems[0].text.contains(r#"invalid CIDR "bad""#));
}

#[test]
fn a_duplicate_name_is_refused_on_create_but_is_the_old_self_on_update() {
    let a = address_pool(
        "a",
        json!({"protocol": "layer2", "addresses": ["1.1.1.8/29"]}),
    );
    let existing = snapshot(vec![a.clone()], vec![]);
    let err = legacy_verdict(Operation::Create, &a, &existing).unwrap_err();
    assert!(err.contains("duplicate definition of pool a"), "{err}");
    let grown = address_pool(
        "a",
        json!({"protocol": "layer2", "addresses": ["1.1.1.0/28"]}),
    );
    assert_eq!(legacy_verdict(Operation::Update, &grown, &existing), Ok(()));
}

#[test]
fn address_pools_and_ip_address_pools_share_one_address_space() {
    let current = ip_pool("east", json!({"addresses": ["10.0.0.128/25"]}));
    let legacy = address_pool(
        "b",
        json!({"protocol": "layer2", "addresses": ["10.0.0.0/24"]}),
    );
    let err = legacy_verdict(
        Operation::Create,
        &legacy,
        &snapshot(vec![], vec![current.clone()]),
    )
    .unwrap_err();
    assert!(err.contains(r#"overlaps with already defined CIDR "10.0.0.128/25" in pool east (ipaddresspool "east")"#), "{err}");

    let err =
        validate_ip_address_pool(Operation::Create, &current, &snapshot(vec![legacy], vec![]))
            .unwrap_err()
            .to_string();
    assert!(err.contains(r#"CIDR "10.0.0.128/25" in pool "east" overlaps with already defined CIDR "10.0.0.0/24" in addresspool "b""#), "{err}");
}

#[test]
fn ip_address_pool_rules_refuse_and_accept() {
    let other = ip_pool("other", json!({"addresses": ["192.168.1.0/24"]}));
    let existing = snapshot(vec![], vec![other.clone()]);
    let cases: Vec<(&str, Operation, Value, Option<&str>)> = vec![
        (
            "a valid dual-stack pool",
            Operation::Create,
            json!({"addresses": ["10.1.0.0/24", "fc00::1-fc00::9"]}),
            None,
        ),
        (
            "no addresses",
            Operation::Create,
            json!({"addresses": []}),
            Some("has no addresses"),
        ),
        (
            "unparsable entry",
            Operation::Create,
            json!({"addresses": ["10.1.0.1"]}),
            Some(r#"invalid CIDR "10.1.0.1" in pool "p": invalid CIDR "10.1.0.1""#),
        ),
        (
            "overlap with another pool",
            Operation::Create,
            json!({"addresses": ["192.168.1.128-192.168.1.130"]}),
            Some(
                r#"CIDR "192.168.1.128/31" in pool "p" overlaps with already defined CIDR "192.168.1.0/24""#,
            ),
        ),
        (
            "overlap inside the pool",
            Operation::Create,
            json!({"addresses": ["10.1.0.0/24", "10.1.0.0/25"]}),
            Some("overlaps with already defined CIDR"),
        ),
        (
            "duplicate namespaces",
            Operation::Create,
            json!({"addresses": ["10.1.0.0/24"], "serviceAllocation": {"namespaces": ["a", "a"]}}),
            Some(r#"duplicate definition of namespaces "a""#),
        ),
        (
            "a malformed service selector",
            Operation::Create,
            json!({"addresses": ["10.1.0.0/24"], "serviceAllocation": {"serviceSelectors": [{"matchExpressions": [{"key": "k", "operator": "In"}]}]}}),
            Some("invalid selector"),
        ),
        (
            "priority and selectors",
            Operation::Create,
            json!({"addresses": ["10.1.0.0/24"], "serviceAllocation": {"priority": 1, "namespaces": ["a"], "namespaceSelectors": [{"matchLabels": {"t": "gold"}}]}}),
            None,
        ),
    ];
    let mut failures = Vec::new();
    for (what, op, spec, expected) in cases {
        let verdict =
            validate_ip_address_pool(op, &ip_pool("p", spec), &existing).map_err(|d| d.to_string());
        match (expected, &verdict) {
            (None, Ok(())) => {}
            (Some(phrase), Err(text)) if text.contains(phrase) => {}
            _ => failures.push(format!("{what}: expected {expected:?}, got {verdict:?}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn ip_address_pools_are_created_only_in_the_metallb_namespace_but_updated_anywhere() {
    let mut pool = ip_pool("p", json!({"addresses": ["10.1.0.0/24"]}));
    pool.metadata.namespace = Some("default".into());
    let err = validate_ip_address_pool(Operation::Create, &pool, &snapshot(vec![], vec![]))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("resource must be created in metallb-system namespace"),
        "{err}"
    );
    assert!(validate_ip_address_pool(Operation::Update, &pool, &snapshot(vec![], vec![])).is_ok());
}

#[test]
fn every_problem_of_an_ip_address_pool_is_reported_at_once() {
    let pool = ip_pool(
        "p",
        json!({"addresses": ["nope", "192.168.1.0/30"], "serviceAllocation": {"namespaces": ["a", "a"]}}),
    );
    let existing = snapshot(
        vec![],
        vec![ip_pool("other", json!({"addresses": ["192.168.1.0/24"]}))],
    );
    let denial = validate_ip_address_pool(Operation::Create, &pool, &existing).unwrap_err();
    assert_eq!(denial.problems.len(), 3, "{denial}");
}
