//! Field rules are declared once, as `#[validate(..)]` on the types: the generated CRD schema
//! carries them for the API server and `validate()` checks them in process (webhooks, speaker
//! files, objects built in code), so both refuse exactly the same values.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::JSONSchemaProps;
use metallb_api::{
    addresspool::v1beta1::AddressPool,
    advertisement::BGPAdvertisement,
    bfdprofile::{BFDProfile, BFDProfileSpec},
    bgppeer::{v1beta1, v1beta2},
    ipaddresspool::IPAddressPool,
    metallb::MetalLB,
    validation::{
        Operation, Snapshot, validate_address_pool, validate_bfd_profile,
        validate_bgp_advertisement, validate_bgp_peer_v1beta1, validate_bgp_peer_v1beta2,
        validate_ip_address_pool, validate_metallb,
    },
};
use regex::{Regex, RegexBuilder};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use support::{crd, property, schema_of};
use validator::Validate;

mod support;

/// A schema pattern as the API server (Go) reads it: `\w` and the classes are ASCII-only.
fn go_regex(pattern: &str) -> Regex {
    RegexBuilder::new(pattern).unicode(false).build().unwrap()
}

/// Whether the API server's check of one property lets `value` through: the bounds, lengths,
/// item counts and pattern of its schema.
fn schema_allows(schema: &JSONSchemaProps, value: &Value) -> bool {
    let within = |n: i64, min: Option<i64>, max: Option<i64>| {
        min.is_none_or(|m| n >= m) && max.is_none_or(|m| n <= m)
    };
    match value {
        Value::Number(n) => {
            let n = n.as_f64().unwrap();
            schema.minimum.is_none_or(|m| n >= m) && schema.maximum.is_none_or(|m| n <= m)
        }
        Value::String(text) => {
            let length = text.chars().count() as i64;
            within(length, schema.min_length, schema.max_length)
                && schema
                    .pattern
                    .as_deref()
                    .is_none_or(|p| go_regex(p).is_match(text))
        }
        Value::Array(items) => within(items.len() as i64, schema.min_items, schema.max_items),
        _ => true,
    }
}

fn object<T: DeserializeOwned>(version: &str, kind: &str, spec: Value) -> T {
    serde_json::from_value(json!({
        "apiVersion": format!("metallb.io/{version}"), "kind": kind,
        "metadata": {"name": "x", "namespace": "metallb-system"}, "spec": spec,
    }))
    .unwrap()
}

/// The in-process verdict on a spec of one kind, with an empty cluster.
fn verdict(kind: &str, spec: Value) -> Result<(), String> {
    let (op, none) = (Operation::Create, &Snapshot::default());
    let outcome = match kind {
        "BFDProfile" => {
            validate_bfd_profile(op, &object::<BFDProfile>("v1beta1", kind, spec), none)
        }
        "BGPPeer/v1beta1" => validate_bgp_peer_v1beta1(
            op,
            &object::<v1beta1::BGPPeer>("v1beta1", "BGPPeer", spec),
            none,
        ),
        "BGPPeer/v1beta2" => validate_bgp_peer_v1beta2(
            op,
            &object::<v1beta2::BGPPeer>("v1beta2", "BGPPeer", spec),
            none,
        ),
        "BGPAdvertisement" => {
            validate_bgp_advertisement(op, &object::<BGPAdvertisement>("v1beta1", kind, spec), none)
        }
        "AddressPool" => {
            validate_address_pool(op, &object::<AddressPool>("v1beta1", kind, spec), none)
        }
        "IPAddressPool" => {
            validate_ip_address_pool(op, &object::<IPAddressPool>("v1beta1", kind, spec), none)
        }
        "MetalLB" => validate_metallb(&object::<MetalLB>("v1beta1", kind, spec)),
        other => panic!("no verdict for {other}"),
    };
    outcome.map_err(|denial| denial.to_string())
}

/// One declared rule: where it is in the schema, a spec holding a value at the field, the field
/// path of the refusal, and a value each side of the rule.
struct Rule {
    crd: &'static str,
    kind: &'static str,
    schema_path: &'static str,
    field: &'static str,
    spec: fn(Value) -> Value,
    good: Value,
    bad: Vec<Value>,
}

fn peer(extra: Value) -> Value {
    let mut spec = json!({"myASN": 64500, "peerASN": 64501, "peerAddress": "10.0.0.1"});
    spec.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    spec
}

fn rules() -> Vec<Rule> {
    let bfd = |field: &'static str, good: Value, bad: Vec<Value>| Rule {
        crd: "bfdprofiles.metallb.io/v1beta1",
        kind: "BFDProfile",
        schema_path: field,
        field,
        spec: match field {
            "spec.receiveInterval" => |v| json!({"receiveInterval": v}),
            "spec.transmitInterval" => |v| json!({"transmitInterval": v}),
            "spec.echoInterval" => |v| json!({"echoInterval": v}),
            "spec.detectMultiplier" => |v| json!({"detectMultiplier": v}),
            _ => |v| json!({"minimumTtl": v}),
        },
        good,
        bad,
    };
    vec![
        bfd(
            "spec.receiveInterval",
            json!(10),
            vec![json!(9), json!(60001)],
        ),
        bfd(
            "spec.transmitInterval",
            json!(60000),
            vec![json!(9), json!(60001)],
        ),
        bfd("spec.echoInterval", json!(50), vec![json!(9), json!(60001)]),
        bfd(
            "spec.detectMultiplier",
            json!(255),
            vec![json!(1), json!(256)],
        ),
        bfd("spec.minimumTtl", json!(1), vec![json!(0), json!(255)]),
        Rule {
            crd: "bgppeers.metallb.io/v1beta1",
            kind: "BGPPeer/v1beta1",
            schema_path: "spec.peerPort",
            field: "spec.peerPort",
            spec: |v| peer(json!({"peerPort": v})),
            good: json!(16384),
            bad: vec![json!(16385)],
        },
        Rule {
            crd: "bgppeers.metallb.io/v1beta2",
            kind: "BGPPeer/v1beta2",
            schema_path: "spec.peerPort",
            field: "spec.peerPort",
            spec: |v| peer(json!({"peerPort": v})),
            good: json!(179),
            bad: vec![json!(0), json!(16385)],
        },
        Rule {
            crd: "bgppeers.metallb.io/v1beta2",
            kind: "BGPPeer/v1beta2",
            schema_path: "spec.holdTime",
            field: "spec.holdTime",
            spec: |v| peer(json!({"holdTime": v})),
            good: json!("1m30s"),
            bad: vec![json!("90"), json!("-1s"), json!("9x")],
        },
        Rule {
            crd: "bgppeers.metallb.io/v1beta1",
            kind: "BGPPeer/v1beta1",
            schema_path: "spec.nodeSelectors[].matchExpressions[].values",
            field: "spec.nodeSelectors[0].matchExpressions[0].values",
            spec: |v| {
                peer(json!({"nodeSelectors": [{"matchExpressions": [
                    {"key": "rack", "operator": "In", "values": v}]}]}))
            },
            good: json!(["r1"]),
            bad: vec![json!([])],
        },
        Rule {
            crd: "bgpadvertisements.metallb.io/v1beta1",
            kind: "BGPAdvertisement",
            schema_path: "spec.aggregationLength",
            field: "spec.aggregationLength",
            spec: |v| json!({"aggregationLength": v}),
            good: json!(0),
            bad: vec![json!(-1), json!(33)],
        },
        Rule {
            crd: "bgpadvertisements.metallb.io/v1beta1",
            kind: "BGPAdvertisement",
            schema_path: "spec.aggregationLengthV6",
            field: "spec.aggregationLengthV6",
            spec: |v| json!({"aggregationLengthV6": v}),
            good: json!(128),
            bad: vec![json!(129)],
        },
        Rule {
            crd: "addresspools.metallb.io/v1beta1",
            kind: "AddressPool",
            schema_path: "spec.bgpAdvertisements[].aggregationLength",
            field: "spec.bgpAdvertisements[0].aggregationLength",
            spec: |v| {
                json!({"protocol": "bgp", "addresses": ["10.0.0.0/24"],
                       "bgpAdvertisements": [{"aggregationLength": v}]})
            },
            good: json!(24),
            bad: vec![json!(0), json!(33)],
        },
        Rule {
            crd: "ipaddresspools.metallb.io/v1beta1",
            kind: "IPAddressPool",
            schema_path: "spec.addresses",
            field: "spec.addresses",
            spec: |v| json!({"addresses": v}),
            good: json!(["10.0.0.0/24"]),
            bad: vec![json!([])],
        },
        Rule {
            crd: "metallbs.metallb.io/v1beta1",
            kind: "MetalLB",
            schema_path: "spec.loadBalancerClass",
            field: "spec.loadBalancerClass",
            spec: |v| json!({"loadBalancerClass": v}),
            good: json!("example.com/metallb"),
            bad: vec![json!("my class"), json!("/metallb"), json!("métallb")],
        },
        Rule {
            crd: "metallbs.metallb.io/v1beta1",
            kind: "MetalLB",
            schema_path: "spec.fencing.leaseDuration",
            field: "spec.fencing.leaseDuration",
            spec: |v| json!({"fencing": {"leaseDuration": v}}),
            good: json!("10s"),
            bad: vec![json!("ten seconds")],
        },
    ]
}

#[test]
fn every_declared_field_rule_refuses_the_same_values_in_the_schema_and_in_process() {
    let mut failures = Vec::new();
    for rule in rules() {
        let (name, version) = rule.crd.split_once('/').unwrap();
        let crd = crd(name);
        let schema = property(schema_of(&crd, version), rule.schema_path);
        let what = format!("{} {}", rule.kind, rule.field);
        if !schema_allows(schema, &rule.good) {
            failures.push(format!("{what}: the schema refuses {}", rule.good));
        }
        if let Err(text) = verdict(rule.kind, (rule.spec)(rule.good.clone())) {
            failures.push(format!(
                "{what}: {} is refused in process: {text}",
                rule.good
            ));
        }
        for bad in rule.bad {
            if schema_allows(schema, &bad) {
                failures.push(format!("{what}: the schema accepts {bad}"));
            }
            match verdict(rule.kind, (rule.spec)(bad.clone())) {
                Err(text) if text.contains(&format!("{}: ", rule.field)) => {}
                other => failures.push(format!("{what}: {bad} in process gives {other:?}")),
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn a_detect_multiplier_above_255_is_refused_in_process_and_by_the_schema() {
    let crd = crd("bfdprofiles.metallb.io");
    let schema = property(schema_of(&crd, "v1beta1"), "spec.detectMultiplier");
    assert_eq!((schema.minimum, schema.maximum), (Some(2.0), Some(255.0)));
    assert!(!schema_allows(schema, &json!(256)));
    assert_eq!(
        verdict("BFDProfile", json!({"detectMultiplier": 256})),
        Err(
            r#"bfdprofile "x": spec.detectMultiplier: invalid detect multiplier value 256, must be between 2 and 255"#
                .to_owned()
        )
    );
}

#[test]
fn a_spec_built_in_code_is_checked_by_validate_without_the_validation_module() {
    let spec = BFDProfileSpec {
        transmit_interval: Some(5),
        ..Default::default()
    };
    let errors = spec.validate().unwrap_err();
    assert_eq!(
        errors.field_errors().keys().collect::<Vec<_>>(),
        ["transmit_interval"]
    );
    let fine = BFDProfileSpec {
        transmit_interval: Some(BFDProfileSpec::DEFAULT_INTERVAL_MS),
        ..Default::default()
    };
    assert_eq!(fine.validate(), Ok(()));
}

#[test]
fn an_unparsable_duration_is_refused_by_the_schema_pattern_and_in_process_with_its_reason() {
    let crd = crd("bgppeers.metallb.io");
    let schema = property(schema_of(&crd, "v1beta2"), "spec.keepaliveTime");
    assert!(!schema_allows(schema, &json!("3 s")));
    let text = verdict("BGPPeer/v1beta2", peer(json!({"keepaliveTime": "3 s"}))).unwrap_err();
    assert!(
        text.contains(r#"spec.keepaliveTime: invalid duration "3 s": unknown unit"#),
        "{text}"
    );
}
