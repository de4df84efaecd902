//! Advertisement, Community and MetalLB rules.

use metallb_api::{
    advertisement::{BGPAdvertisement, L2Advertisement},
    community::Community,
    ipaddresspool::IPAddressPool,
    metallb::MetalLB,
    validation::{
        Operation, Snapshot, validate_bgp_advertisement, validate_community,
        validate_l2_advertisement, validate_metallb,
    },
};
use serde_json::{Value, json};

fn object<T: serde::de::DeserializeOwned>(kind: &str, name: &str, spec: Value) -> T {
    serde_json::from_value(json!({
        "apiVersion": "metallb.io/v1beta1", "kind": kind,
        "metadata": {"name": name, "namespace": "metallb-system", "labels": {"zone": "east"}}, "spec": spec,
    }))
    .unwrap()
}

fn snapshot() -> Snapshot {
    Snapshot {
        namespace: "metallb-system".into(),
        ip_address_pools: vec![
            object::<IPAddressPool>(
                "IPAddressPool",
                "east",
                json!({"addresses": ["10.0.0.0/26", "fc00::/120"]}),
            ),
            object::<IPAddressPool>(
                "IPAddressPool",
                "picky",
                json!({"addresses": ["10.1.0.0/24"], "serviceAllocation": {"serviceSelectors": [{"matchLabels": {"a": "b"}}]}}),
            ),
        ],
        communities: vec![object(
            "Community",
            "existing",
            json!({"communities": [{"name": "no-advertise", "value": "65535:65282"}]}),
        )],
        ..Default::default()
    }
}

fn check<F: Fn(Value) -> Result<(), String>>(cases: Vec<(&str, Value, Option<&str>)>, verdict: F) {
    let mut failures = Vec::new();
    for (what, spec, expected) in cases {
        let result = verdict(spec);
        match (expected, &result) {
            (None, Ok(())) => {}
            (Some(phrase), Err(text)) if text.contains(phrase) => {}
            _ => failures.push(format!("{what}: expected {expected:?}, got {result:?}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn bgp_advertisement_rules_refuse_and_accept() {
    let snapshot = snapshot();
    check(
        vec![
            (
                "communities of every form",
                json!({"ipAddressPools": ["east"], "communities": ["65535:65281", "large:1:2:3", "no-advertise", "not-yet-defined"]}),
                None,
            ),
            (
                "a bad standard community",
                json!({"communities": ["65536:1"]}),
                Some("invalid community value: invalid section"),
            ),
            (
                "a bad large marker",
                json!({"communities": ["big:1:2:3"]}),
                Some("expected community to be of format large"),
            ),
            (
                "the same community twice",
                json!({"communities": ["1:1", "1:1"]}),
                Some("duplicate definition of communities"),
            ),
            (
                "an alias and its value",
                json!({"communities": ["no-advertise", "65535:65282"]}),
                Some("duplicate definition of communities"),
            ),
            (
                "aggregation shorter than a pool",
                json!({"ipAddressPools": ["east"], "aggregationLength": 24}),
                Some(
                    "invalid aggregation length 24: prefix 26 in this pool is more specific than the aggregation length",
                ),
            ),
            (
                "IPv6 aggregation shorter than a pool",
                json!({"ipAddressPools": ["east"], "aggregationLengthV6": 112}),
                Some("invalid aggregation length 112: prefix 120"),
            ),
            (
                "aggregation of a pool with service selectors",
                json!({"ipAddressPools": ["picky"], "aggregationLength": 28}),
                Some("serviceSelectors and aggregationLength are mutually exclusive"),
            ),
            (
                "aggregation within the pools",
                json!({"ipAddressPools": ["east"], "aggregationLength": 28, "aggregationLengthV6": 124}),
                None,
            ),
            (
                "a pool listed twice",
                json!({"ipAddressPools": ["east", "east"]}),
                Some(r#"duplicate definition of ipaddresspool "east""#),
            ),
            (
                "a malformed node selector",
                json!({"nodeSelectors": [{"matchExpressions": [{"key": "k", "operator": "Near", "values": ["x"]}]}]}),
                Some(
                    r#"spec.nodeSelectors[0].matchExpressions[0].operator: invalid selector: unknown operator "Near" on key "k""#,
                ),
            ),
        ],
        |spec| {
            let ad: BGPAdvertisement = object("BGPAdvertisement", "ad", spec);
            validate_bgp_advertisement(Operation::Create, &ad, &snapshot).map_err(|d| d.to_string())
        },
    );
}

#[test]
fn l2_advertisement_rules_refuse_and_accept() {
    let snapshot = snapshot();
    check(
        vec![
            (
                "the sample",
                json!({"ipAddressPools": ["east"], "interfaces": ["eno1", "bond0"], "nodeSelectors": [{"matchLabels": {"a": "b"}}]}),
                None,
            ),
            (
                "an interface twice",
                json!({"interfaces": ["eno1", "eno1"]}),
                Some(r#"duplicate definition of interface "eno1""#),
            ),
            (
                "an impossible interface name",
                json!({"interfaces": ["a/b"]}),
                Some("invalid interface name"),
            ),
            (
                "a malformed pool selector",
                json!({"ipAddressPoolSelectors": [{"matchExpressions": [{"key": "k", "operator": "Exists", "values": ["x"]}]}]}),
                Some("takes no values"),
            ),
        ],
        |spec| {
            let ad: L2Advertisement = object("L2Advertisement", "ad", spec);
            validate_l2_advertisement(Operation::Create, &ad, &snapshot).map_err(|d| d.to_string())
        },
    );
}

#[test]
fn advertisements_are_created_only_in_the_metallb_namespace() {
    let mut ad: L2Advertisement = object("L2Advertisement", "ad", json!({}));
    ad.metadata.namespace = Some("default".into());
    let err = validate_l2_advertisement(Operation::Create, &ad, &snapshot())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("resource must be created in metallb-system namespace"),
        "{err}"
    );
}

#[test]
fn community_rules_refuse_and_accept() {
    let snapshot = snapshot();
    check(
        vec![
            (
                "two aliases",
                json!({"communities": [{"name": "a", "value": "1:1"}, {"name": "b", "value": "large:1:2:3"}]}),
                None,
            ),
            (
                "an alias twice",
                json!({"communities": [{"name": "a", "value": "1:1"}, {"name": "a", "value": "1:2"}]}),
                Some(r#"duplicate definition of community "a""#),
            ),
            (
                "an alias defined elsewhere",
                json!({"communities": [{"name": "no-advertise", "value": "1:1"}]}),
                Some(
                    r#"duplicate definition of community "no-advertise", already defined in community "existing""#,
                ),
            ),
            (
                "a bad value",
                json!({"communities": [{"name": "a", "value": "1:70000"}]}),
                Some("invalid community value: invalid section"),
            ),
            (
                "no name",
                json!({"communities": [{"value": "1:1"}]}),
                Some("missing community alias name"),
            ),
            (
                "no value",
                json!({"communities": [{"name": "a"}]}),
                Some("missing value of community alias"),
            ),
        ],
        |spec| {
            let c: Community = object("Community", "c", spec);
            validate_community(Operation::Create, &c, &snapshot).map_err(|d| d.to_string())
        },
    );
    let existing: Community = object(
        "Community",
        "existing",
        json!({"communities": [{"name": "no-advertise", "value": "1:1"}]}),
    );
    assert!(
        validate_community(Operation::Update, &existing, &snapshot).is_ok(),
        "an update is not a duplicate of itself"
    );
}

#[test]
fn metallb_rules_refuse_and_accept() {
    check(
        vec![
            (
                "the sample-like spec",
                json!({"logLevel": "debug", "bgpBackend": "native", "nodeSelector": {"a": ""},
                "drain": {"onCordon": true, "taintKeys": ["example.com/maintenance"]},
                "gracefulShutdown": {"delay": "10s"}, "fencing": {"leaseDuration": "10s"}}),
                None,
            ),
            (
                "frr backend",
                json!({"bgpBackend": "frr"}),
                Some(
                    "spec.bgpBackend: invalid BGP Backend \"frr\": the metallb-rs speaker implements BGP and BFD itself",
                ),
            ),
            (
                "frr-k8s backend",
                json!({"bgpBackend": "frr-k8s"}),
                Some("only \"native\" is supported"),
            ),
            (
                "frr-k8s-external backend",
                json!({"bgpBackend": "frr-k8s-external"}),
                Some("invalid BGP Backend"),
            ),
            (
                "controller toleration seconds without NoExecute",
                json!({"controllerTolerations": [{"key": "k", "operator": "Exists", "effect": "NoSchedule", "tolerationSeconds": 5}]}),
                Some("ControllerToleration effect must be NoExecute when tolerationSeconds is set"),
            ),
            (
                "speaker toleration seconds without NoExecute",
                json!({"speakerTolerations": [{"key": "k", "operator": "Exists", "tolerationSeconds": 5}]}),
                Some("SpeakerToleration effect must be NoExecute when tolerationSeconds is set"),
            ),
            (
                "toleration seconds with NoExecute",
                json!({"speakerTolerations": [{"key": "k", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 5}]}),
                None,
            ),
            (
                "speaker node affinity weight 0",
                json!({"speakerConfig": {"affinity": {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 0, "preference": {"matchExpressions": [{"key": "a", "operator": "Exists"}]}}]}}}}),
                Some(
                    "SpeakerConfig NodeAffinity set with invalid weight for preferred scheduling term",
                ),
            ),
            (
                "controller pod affinity weight 101",
                json!({"controllerConfig": {"affinity": {"podAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 101, "podAffinityTerm": {"topologyKey": "kubernetes.io/hostname"}}]}}}}),
                Some(
                    "ControllerConfig PodAffinity set with invalid weight for preferred scheduling term",
                ),
            ),
            (
                "affinity weights 10 and 100",
                json!({"speakerConfig": {"affinity": {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 10, "preference": {}}, {"weight": 100, "preference": {}}]}}}}),
                None,
            ),
            (
                "a bad alwaysBlock CIDR",
                json!({"frrk8sConfig": {"alwaysBlock": ["10.0.0.0/8", "nope"]}}),
                Some("invalid CIDR nope in AlwaysBlock"),
            ),
            (
                "a bad taint key",
                json!({"drain": {"taintKeys": ["-bad"]}}),
                Some("spec.drain.taintKeys[0]: invalid taint key"),
            ),
            (
                "a taint key twice",
                json!({"drain": {"taintKeys": ["a", "a"]}}),
                Some("duplicate taint key"),
            ),
            (
                "a graceful shutdown delay of an hour",
                json!({"gracefulShutdown": {"delay": "1h"}}),
                Some("longer than the maximum"),
            ),
            (
                "a lease of one second",
                json!({"fencing": {"leaseDuration": "1s"}}),
                Some("must be between 2s and 5m0s"),
            ),
            (
                "an unparsable graceful shutdown delay",
                json!({"gracefulShutdown": {"delay": "5x"}}),
                Some(r#"spec.gracefulShutdown.delay: invalid duration "5x": unknown unit"#),
            ),
            (
                "a load balancer class with a space",
                json!({"loadBalancerClass": "my class"}),
                Some("spec.loadBalancerClass: must be a qualified name"),
            ),
            (
                "a prefixed load balancer class",
                json!({"loadBalancerClass": "example.com/metallb"}),
                None,
            ),
            (
                "a pod anti-affinity selector with an unknown operator",
                json!({"speakerConfig": {"affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
                {"topologyKey": "kubernetes.io/hostname", "labelSelector": {"matchExpressions": [{"key": "app", "operator": "Out", "values": ["x"]}]}}]}}}}),
                Some(
                    r#"spec.speakerConfig.affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution[0].labelSelector.matchExpressions[0].operator: invalid selector: unknown operator "Out" on key "app""#,
                ),
            ),
        ],
        |spec| {
            let m: MetalLB = object("MetalLB", "metallb", spec);
            validate_metallb(&m).map_err(|d| d.to_string())
        },
    );
}
