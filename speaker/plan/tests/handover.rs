//! What a new plan hands over (rather than drops) because the node leaves service: a drain,
//! the exclude label or `NetworkUnavailable` take layer 2 IPs and routes that the speaker
//! then lets go of gently; anything else a plan takes away is dropped at once.

mod common;

use common::*;
use metallb_plan::{
    Cluster, DRAIN_ANNOTATION, EXCLUDE_FROM_LOAD_BALANCERS, L2Advertisement, handover,
};

const NODES: [&str; 3] = ["node-a", "node-b", "node-c"];

fn node_b(c: &mut Cluster) -> &mut metallb_plan::Node {
    c.nodes.get_mut("node-b").unwrap()
}

/// Both protocols for every pool and `ns/web` on 10.0.0.1 with endpoints on every node:
/// node-b wins it in layer 2 and every node sends it to both peers.
fn served() -> Cluster {
    let mut c = bgp_cluster(&NODES);
    c.l2_advertisements
        .insert("l2".into(), L2Advertisement::default());
    let endpoints = NODES.iter().map(|n| ready_on(n)).collect();
    c.services
        .insert(key("ns/web"), service(&["10.0.0.1"], endpoints));
    c
}

#[test]
fn each_way_of_leaving_service_hands_the_ip_and_the_routes_over() {
    type Setup = fn(&mut Cluster);
    let cases: [(&str, Setup); 4] = [
        ("drain annotation", |c| {
            let annotations = &mut node_b(c).annotations;
            annotations.insert(DRAIN_ANNOTATION.into(), "".into());
        }),
        ("exclude label", |c| {
            let labels = &mut node_b(c).labels;
            labels.insert(EXCLUDE_FROM_LOAD_BALANCERS.into(), "".into());
        }),
        ("network unavailable", |c| {
            node_b(c).network_unavailable = true
        }),
        ("node being deleted", |c| node_b(c).deleting = true),
    ];
    for (what, setup) in cases {
        let c = served();
        let before = plan_of(&c, "node-b");
        let mut after = c.clone();
        setup(&mut after);
        let handed = handover(&before, &plan_of(&after, "node-b"));
        assert_eq!(handed.layer2, [ip("10.0.0.1")].into(), "{what}");
        for peer in ["router", "backup"] {
            let prefixes: Vec<String> = handed.routes[peer]
                .keys()
                .map(ToString::to_string)
                .collect();
            assert_eq!(prefixes, ["10.0.0.1/32"], "{what}: {peer}");
        }
    }
}

#[test]
fn a_deleted_service_or_endpoints_moving_away_drop_at_once() {
    let mut c = served();
    let web = c.services.get_mut(&key("ns/web")).unwrap();
    web.traffic_policy = metallb_plan::TrafficPolicy::Local;
    web.endpoints = vec![ready_on("node-b")];
    let before = plan_of(&c, "node-b");
    assert!(before.layer2.contains_key(&ip("10.0.0.1")));

    let mut moved = c.clone();
    moved.services.get_mut(&key("ns/web")).unwrap().endpoints = vec![ready_on("node-a")];
    let after = plan_of(&moved, "node-b");
    assert!(!after.layer2.contains_key(&ip("10.0.0.1")));
    assert!(handover(&before, &after).is_empty());

    let mut deleted = c.clone();
    deleted.services.clear();
    assert!(handover(&before, &plan_of(&deleted, "node-b")).is_empty());
}

#[test]
fn a_service_kept_by_never_blackhole_is_not_handed_over() {
    let mut c = served();
    let web = c.services.get_mut(&key("ns/web")).unwrap();
    web.endpoints = vec![ready_on("node-b")];
    web.traffic_policy = metallb_plan::TrafficPolicy::Local;
    let before = plan_of(&c, "node-b");
    c.nodes.get_mut("node-b").unwrap().deleting = true;
    let after = plan_of(&c, "node-b");
    assert!(after.layer2.contains_key(&ip("10.0.0.1")));
    assert!(handover(&before, &after).is_empty());
}

#[test]
fn a_peer_that_no_longer_selects_the_node_is_not_handed_over() {
    let c = served();
    let before = plan_of(&c, "node-b");
    let mut after = c.clone();
    after.peers.get_mut("backup").unwrap().node_selectors = on_nodes(&["node-a"]);
    after
        .nodes
        .get_mut("node-b")
        .unwrap()
        .annotations
        .insert(DRAIN_ANNOTATION.into(), "".into());
    let handed = handover(&before, &plan_of(&after, "node-b"));
    assert!(handed.routes.contains_key("router"));
    assert!(!handed.routes.contains_key("backup"));
}
