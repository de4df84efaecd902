//! BGPPeer (4.10 rules on v1beta1, current rules on v1beta2) and BFDProfile rules.

use std::collections::BTreeMap;

use metallb_api::{
    bfdprofile::BFDProfile,
    bgppeer::{v1beta1, v1beta2},
    validation::{
        Operation, Snapshot, validate_bfd_profile, validate_bfd_profile_delete,
        validate_bgp_peer_v1beta1, validate_bgp_peer_v1beta2,
    },
};
use serde_json::{Value, json};

fn object<T: serde::de::DeserializeOwned>(version: &str, kind: &str, name: &str, spec: Value) -> T {
    serde_json::from_value(json!({
        "apiVersion": format!("metallb.io/{version}"), "kind": kind,
        "metadata": {"name": name, "namespace": "metallb-system"}, "spec": spec,
    }))
    .unwrap()
}

fn peer_v1beta2(name: &str, spec: Value) -> v1beta2::BGPPeer {
    object("v1beta2", "BGPPeer", name, spec)
}

fn snapshot_with(peers: Vec<v1beta2::BGPPeer>) -> Snapshot {
    Snapshot {
        namespace: "metallb-system".into(),
        bgp_peers: peers,
        ..Default::default()
    }
}

fn existing() -> Snapshot {
    snapshot_with(vec![peer_v1beta2(
        "a",
        json!({"myASN": 64500, "peerASN": 64501, "peerAddress": "10.0.0.1", "routerID": "10.10.10.10"}),
    )])
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
fn bgp_peer_v1beta1_rules_refuse_and_accept_as_the_410_operator_did() {
    let snapshot = existing();
    let base = |extra: Value| {
        let mut spec = json!({"myASN": 64500, "peerASN": 64502, "peerAddress": "10.0.0.2"});
        spec.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        spec
    };
    check(
        vec![
            ("a valid peer", base(json!({})), None),
            (
                "another local ASN",
                base(json!({"myASN": 64510})),
                Some(
                    "spec.myASN: Multiple local ASN not supported in FRR mode, myASN 64510 existing myASN 64500 (bgppeer \"a\"",
                ),
            ),
            (
                "a duplicate address",
                base(json!({"peerAddress": "10.0.0.1"})),
                Some(
                    "spec.peerAddress: Duplicate BGPPeer 10.0.0.1 in the same BGP instance not supported in FRR mode",
                ),
            ),
            (
                "multihop on iBGP",
                base(json!({"peerASN": 64500, "ebgpMultiHop": true})),
                Some("spec.ebgpMultiHop: Invalid EBGPMultiHop parameter set for an ibgp peer true"),
            ),
            (
                "multihop on eBGP",
                base(json!({"ebgpMultiHop": true})),
                None,
            ),
            (
                "keepalive without hold",
                base(json!({"keepaliveTime": "3s"})),
                Some(
                    "spec.holdTime: Missing to configure HoldTime when changing KeepaliveTime to 3s",
                ),
            ),
            (
                "keepalive above hold",
                base(json!({"keepaliveTime": "5s", "holdTime": "3s"})),
                Some("spec.keepaliveTime: Invalid keepalive time 5s higher than holdtime 3s"),
            ),
            (
                "keepalive equal to hold",
                base(json!({"keepaliveTime": "3s", "holdTime": "3s"})),
                None,
            ),
            (
                "unparsable router ID",
                base(json!({"routerID": "ten"})),
                Some("spec.routerID: Invalid RouterID ten"),
            ),
            (
                "another router ID",
                base(json!({"routerID": "10.10.10.11"})),
                Some(
                    "BGPPeers with different RouterID not supported in FRR mode, RouterID 10.10.10.11 existing routerID 10.10.10.10",
                ),
            ),
            (
                "the same router ID",
                base(json!({"routerID": "10.10.10.10"})),
                None,
            ),
            (
                "unparsable address",
                base(json!({"peerAddress": "10.0.0.300"})),
                Some("spec.peerAddress: Invalid BGPPeer address 10.0.0.300"),
            ),
            (
                "unparsable source address",
                base(json!({"sourceAddress": "here"})),
                Some("spec.sourceAddress: Invalid BGPPeer source address here"),
            ),
            (
                "hold time below 3s",
                base(json!({"holdTime": "2s"})),
                Some("spec.holdTime: Invalid hold time 2s must be 0 or >=3s"),
            ),
            ("hold time zero", base(json!({"holdTime": "0s"})), None),
            (
                "BFD, IPv6 and keepalive are accepted",
                base(
                    json!({"peerAddress": "fd00::1", "bfdProfile": "x", "keepaliveTime": "1s", "holdTime": "3s"}),
                ),
                None,
            ),
        ],
        |spec| {
            let peer: v1beta1::BGPPeer = object("v1beta1", "BGPPeer", "p", spec);
            validate_bgp_peer_v1beta1(Operation::Create, &peer, &snapshot)
                .map_err(|d| d.to_string())
        },
    );
}

#[test]
fn every_problem_of_a_peer_is_reported_at_once_in_the_reference_order() {
    let peer: v1beta1::BGPPeer = object(
        "v1beta1",
        "BGPPeer",
        "p",
        json!({"myASN": 1, "peerASN": 2, "peerAddress": "nope", "holdTime": "1s", "routerID": "x"}),
    );
    let denial = validate_bgp_peer_v1beta1(Operation::Create, &peer, &existing()).unwrap_err();
    let fields: Vec<_> = denial.problems.iter().map(|p| p.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "spec.myASN",
            "spec.routerID",
            "spec.routerID",
            "spec.peerAddress",
            "spec.holdTime"
        ]
    );
    assert!(
        denial
            .to_string()
            .starts_with("bgppeer \"p\": spec.myASN: "),
        "{denial}"
    );
}

#[test]
fn an_update_does_not_compare_a_peer_with_its_old_self() {
    let peer: v1beta1::BGPPeer = object(
        "v1beta1",
        "BGPPeer",
        "a",
        json!({"myASN": 64500, "peerASN": 64501, "peerAddress": "10.0.0.1", "routerID": "10.10.10.10", "holdTime": "30s"}),
    );
    assert_eq!(
        validate_bgp_peer_v1beta1(Operation::Update, &peer, &existing()),
        Ok(())
    );
}

#[test]
fn single_instance_rules_only_compare_peers_that_select_a_common_node() {
    let mut snapshot = snapshot_with(vec![peer_v1beta2(
        "rack1",
        json!({"myASN": 64500, "peerASN": 64501, "peerAddress": "10.0.0.1",
               "nodeSelectors": [{"matchLabels": {"rack": "r1"}}]}),
    )]);
    snapshot.nodes = BTreeMap::from([
        (
            "n1".to_owned(),
            BTreeMap::from([("rack".to_owned(), "r1".to_owned())]),
        ),
        (
            "n2".to_owned(),
            BTreeMap::from([("rack".to_owned(), "r2".to_owned())]),
        ),
    ]);
    let rack2 = peer_v1beta2(
        "rack2",
        json!({"myASN": 64999, "peerASN": 64501, "peerAddress": "10.0.0.1", "nodeSelectors": [{"matchLabels": {"rack": "r2"}}]}),
    );
    assert_eq!(
        validate_bgp_peer_v1beta2(Operation::Create, &rack2, &snapshot),
        Ok(())
    );
    let everywhere = peer_v1beta2(
        "all",
        json!({"myASN": 64999, "peerASN": 64501, "peerAddress": "10.0.0.1"}),
    );
    let err = validate_bgp_peer_v1beta2(Operation::Create, &everywhere, &snapshot)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("Multiple local ASN not supported")
            && err.contains("peer 10.0.0.1 already exists"),
        "{err}"
    );
}

#[test]
fn bgp_peer_v1beta2_rules_refuse_and_accept() {
    let snapshot = existing();
    let base = |extra: Value| {
        let mut spec = json!({"myASN": 64500, "peerASN": 64502, "peerAddress": "10.0.0.2"});
        for (k, v) in extra.as_object().unwrap() {
            if v.is_null() {
                spec.as_object_mut().unwrap().remove(k);
            } else {
                spec[k] = v.clone();
            }
        }
        spec
    };
    check(
        vec![
            (
                "a valid peer",
                base(json!({"holdTime": "90s", "keepaliveTime": "30s", "connectTime": "5s"})),
                None,
            ),
            (
                "no local ASN",
                base(json!({"myASN": 0})),
                Some("spec.myASN: missing local ASN"),
            ),
            (
                "neither peer ASN nor dynamic",
                base(json!({"peerASN": null})),
                Some("missing peer ASN and dynamicASN"),
            ),
            (
                "both peer ASN and dynamic",
                base(json!({"dynamicASN": "external"})),
                Some("peerASN and dynamicASN are mutually exclusive"),
            ),
            (
                "dynamic ASN alone",
                base(json!({"peerASN": null, "dynamicASN": "external"})),
                None,
            ),
            (
                "neither address nor interface",
                base(json!({"peerAddress": null})),
                Some("peerAddress or interface is required"),
            ),
            (
                "both address and interface",
                base(json!({"interface": "eth1"})),
                Some("peerAddress and interface are mutually exclusive"),
            ),
            (
                "unnumbered",
                base(json!({"peerAddress": null, "interface": "eth1"})),
                None,
            ),
            (
                "bad address",
                base(json!({"peerAddress": "x"})),
                Some(r#"parsing peer p: invalid BGPPeer address "x""#),
            ),
            (
                "duplicate address",
                base(json!({"peerAddress": "10.0.0.1"})),
                Some(
                    "peer 10.0.0.1 already exists, FRR mode doesn't support duplicate BGPPeers selecting the same node",
                ),
            ),
            (
                "short hold time",
                base(json!({"holdTime": "2s"})),
                Some(r#"invalid hold time "2s": must be 0 or >=3s"#),
            ),
            (
                "keepalive above hold",
                base(json!({"holdTime": "3s", "keepaliveTime": "4s"})),
                Some(r#"invalid keepaliveTime "4s", must be lower than holdTime "3s""#),
            ),
            (
                "keepalive alone",
                base(json!({"keepaliveTime": "40s"})),
                None,
            ),
            (
                "fractional connect time",
                base(json!({"connectTime": "1500ms"})),
                Some("must be whole seconds between 1s and 65535s"),
            ),
            (
                "multihop on iBGP",
                base(json!({"peerASN": 64500, "ebgpMultiHop": true})),
                Some("invalid ebgp-multihop parameter set for an ibgp peer"),
            ),
            (
                "password twice",
                base(json!({"password": "x", "passwordSecret": {"name": "s"}})),
                Some("passwordSecret and password are mutually exclusive"),
            ),
            (
                "BFD, graceful restart, large ASN",
                base(
                    json!({"bfdProfile": "p", "enableGracefulRestart": true, "peerASN": 4200000000u32}),
                ),
                None,
            ),
        ],
        |spec| {
            validate_bgp_peer_v1beta2(Operation::Create, &peer_v1beta2("p", spec), &snapshot)
                .map_err(|d| d.to_string())
        },
    );
}

#[test]
fn bfd_profile_rules_refuse_and_accept() {
    let snapshot = Snapshot {
        namespace: "metallb-system".into(),
        bfd_profiles: vec![object("v1beta1", "BFDProfile", "taken", json!({}))],
        ..Default::default()
    };
    check(
        vec![
            (
                "the full profile",
                json!({"receiveInterval": 300, "transmitInterval": 300, "detectMultiplier": 3, "echoInterval": 50, "minimumTtl": 254}),
                None,
            ),
            (
                "fast timers",
                json!({"receiveInterval": 10, "transmitInterval": 10, "detectMultiplier": 2}),
                None,
            ),
            (
                "receive interval too short",
                json!({"receiveInterval": 9}),
                Some("spec.receiveInterval: invalid receive interval value 9"),
            ),
            (
                "transmit interval too long",
                json!({"transmitInterval": 60001}),
                Some("invalid transmit interval value 60001"),
            ),
            (
                "echo interval too short",
                json!({"echoInterval": 1}),
                Some("invalid echo interval value 1"),
            ),
            (
                "multiplier too large",
                json!({"detectMultiplier": 256}),
                Some("invalid detect multiplier value 256"),
            ),
            (
                "multiplier too small",
                json!({"detectMultiplier": 1}),
                Some("invalid detect multiplier value 1"),
            ),
            (
                "minimum TTL zero",
                json!({"minimumTtl": 0}),
                Some("invalid minimum ttl value 0"),
            ),
        ],
        |spec| {
            let profile: BFDProfile = object("v1beta1", "BFDProfile", "p", spec);
            validate_bfd_profile(Operation::Create, &profile, &snapshot).map_err(|d| d.to_string())
        },
    );
    let taken: BFDProfile = object("v1beta1", "BFDProfile", "taken", json!({}));
    let err = validate_bfd_profile(Operation::Create, &taken, &snapshot)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(r#"duplicate definition of bfdprofile "taken""#),
        "{err}"
    );
    assert!(validate_bfd_profile(Operation::Update, &taken, &snapshot).is_ok());
}

#[test]
fn a_bfd_profile_in_use_cannot_be_deleted_and_an_unused_one_can() {
    let snapshot = snapshot_with(vec![
        peer_v1beta2(
            "a",
            json!({"myASN": 1, "peerASN": 2, "peerAddress": "10.0.0.1", "bfdProfile": "fast"}),
        ),
        peer_v1beta2(
            "b",
            json!({"myASN": 1, "peerASN": 2, "peerAddress": "10.0.0.2", "bfdProfile": "fast"}),
        ),
    ]);
    let fast: BFDProfile = object("v1beta1", "BFDProfile", "fast", json!({}));
    let err = validate_bfd_profile_delete(&fast, &snapshot)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("failed to delete BFDProfile fast, used by BGPPeer a, b"),
        "{err}"
    );
    let slow: BFDProfile = object("v1beta1", "BFDProfile", "slow", json!({}));
    assert!(validate_bfd_profile_delete(&slow, &snapshot).is_ok());
}

#[test]
fn a_peer_whose_node_selector_uses_an_unknown_operator_is_refused_in_both_versions() {
    let spec = json!({"myASN": 64500, "peerASN": 64502, "peerAddress": "10.0.0.2",
        "nodeSelectors": [{"matchExpressions": [{"key": "rack", "operator": "Out", "values": ["r1"]}]}]});
    let expected = r#"bgppeer "p": spec.nodeSelectors[0].matchExpressions[0].operator: invalid selector: unknown operator "Out" on key "rack""#;
    let old: v1beta1::BGPPeer = object("v1beta1", "BGPPeer", "p", spec.clone());
    let refusals = [
        validate_bgp_peer_v1beta1(Operation::Create, &old, &existing()),
        validate_bgp_peer_v1beta2(Operation::Create, &peer_v1beta2("p", spec), &existing()),
    ];
    for refusal in refusals {
        let text = refusal.unwrap_err().to_string();
        assert!(text.starts_with(expected), "{text}");
    }
}

#[test]
fn a_not_in_node_selector_is_accepted_and_compared_on_the_nodes_it_selects() {
    let mut snapshot = snapshot_with(vec![peer_v1beta2(
        "rack1",
        json!({"myASN": 64500, "peerASN": 64501, "peerAddress": "10.0.0.1",
               "nodeSelectors": [{"matchLabels": {"rack": "r1"}}]}),
    )]);
    let rack = |r: &str| BTreeMap::from([("rack".to_owned(), r.to_owned())]);
    snapshot.nodes = BTreeMap::from([("n1".to_owned(), rack("r1")), ("n2".to_owned(), rack("r2"))]);
    let not_in = |racks: Value| {
        json!({"myASN": 64999, "peerASN": 64501, "peerAddress": "10.0.0.9",
               "nodeSelectors": [{"matchExpressions": [{"key": "rack", "operator": "NotIn", "values": racks}]}]})
    };
    let elsewhere: v1beta1::BGPPeer = object("v1beta1", "BGPPeer", "p", not_in(json!(["r1"])));
    assert_eq!(
        validate_bgp_peer_v1beta1(Operation::Create, &elsewhere, &snapshot),
        Ok(())
    );
    let elsewhere = peer_v1beta2("p", not_in(json!(["r1"])));
    assert_eq!(
        validate_bgp_peer_v1beta2(Operation::Create, &elsewhere, &snapshot),
        Ok(())
    );
    let overlapping = peer_v1beta2("p", not_in(json!(["r2"])));
    let err = validate_bgp_peer_v1beta2(Operation::Create, &overlapping, &snapshot)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(r#"Multiple local ASN not supported in FRR mode, myASN 64999 existing myASN 64500 (bgppeer "rack1" selects a common node)"#),
        "{err}"
    );
}
