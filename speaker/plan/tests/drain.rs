//! Our drain rules on top of MetalLB's: a draining node hands its layer 2 IPs to the next
//! candidate and withdraws its routes but keeps its sessions, unless nobody else can take a
//! service (never blackhole).

mod common;

use common::*;
use metallb_plan::{
    Cluster, DRAIN_ANNOTATION, DrainTrigger, L2Advertisement, OUT_OF_SERVICE, Reason,
};

const NODES: [&str; 3] = ["node-a", "node-b", "node-c"];

/// Both protocols for every pool, the service `ns/web` on 10.0.0.1 (node-b wins it, node-a
/// comes second) with the given endpoints, Local policy when `local`.
fn drained_cluster(local: bool, endpoints: &[&str]) -> Cluster {
    let mut c = bgp_cluster(&NODES);
    c.l2_advertisements
        .insert("l2".into(), L2Advertisement::default());
    let endpoints = endpoints.iter().map(|n| ready_on(n)).collect();
    let web = if local {
        local_service(&["10.0.0.1"], endpoints)
    } else {
        service(&["10.0.0.1"], endpoints)
    };
    c.services.insert(key("ns/web"), web);
    c
}

#[test]
fn each_trigger_drains_and_cordons_and_taints_only_when_configured() {
    type Setup = fn(&mut Cluster);
    let cases: [(&str, Setup, Option<DrainTrigger>); 8] = [
        (
            "out-of-service taint",
            |c| insert_taint(c, OUT_OF_SERVICE),
            Some(DrainTrigger::OutOfService),
        ),
        (
            "deletion",
            |c| c.nodes.get_mut("node-b").unwrap().deleting = true,
            Some(DrainTrigger::Deleting),
        ),
        (
            "annotation",
            |c| {
                let node = c.nodes.get_mut("node-b").unwrap();
                node.annotations.insert(DRAIN_ANNOTATION.into(), "".into());
            },
            Some(DrainTrigger::Annotation),
        ),
        (
            "not ready beyond the grace period",
            |c| c.nodes.get_mut("node-b").unwrap().not_ready = true,
            Some(DrainTrigger::NotReady),
        ),
        (
            "cordon, not configured",
            |c| c.nodes.get_mut("node-b").unwrap().unschedulable = true,
            None,
        ),
        (
            "cordon, configured",
            |c| {
                c.nodes.get_mut("node-b").unwrap().unschedulable = true;
                c.policy.drain.on_cordon = true;
            },
            Some(DrainTrigger::Cordoned),
        ),
        (
            "taint, not configured",
            |c| insert_taint(c, "example.com/maintenance"),
            None,
        ),
        (
            "taint, configured",
            |c| {
                insert_taint(c, "example.com/maintenance");
                let keys = &mut c.policy.drain.taint_keys;
                keys.insert("example.com/maintenance".into());
            },
            Some(DrainTrigger::Taint("example.com/maintenance".into())),
        ),
    ];
    for (what, setup, trigger) in cases {
        let mut c = drained_cluster(false, &["node-a"]);
        setup(&mut c);
        let node_b = plan_of(&c, "node-b");
        assert_eq!(node_b.draining, trigger, "{what}");
        let expected = if trigger.is_some() {
            "node-a"
        } else {
            "node-b"
        };
        assert_eq!(announcers(&c, "ns/web"), [expected], "{what}");
    }
}

fn insert_taint(c: &mut Cluster, key: &str) {
    c.nodes.get_mut("node-b").unwrap().taints.insert(key.into());
}

#[test]
fn a_draining_node_hands_its_layer2_ips_to_the_next_candidate() {
    let mut c = drained_cluster(false, &["node-a"]);
    insert_taint(&mut c, OUT_OF_SERVICE);
    let trigger = DrainTrigger::OutOfService;
    assert_eq!(
        layer2(&c, "node-b", "ns/web").reason,
        Reason::Draining { trigger }
    );
    assert_eq!(layer2(&c, "node-a", "ns/web").reason, Reason::Announce);
    assert_eq!(
        layer2(&c, "node-c", "ns/web").owner.as_deref(),
        Some("node-a")
    );
}

#[test]
fn a_draining_node_withdraws_its_routes_but_keeps_its_sessions() {
    let mut c = drained_cluster(false, &["node-a"]);
    c.nodes.get_mut("node-b").unwrap().deleting = true;
    let node_b = plan_of(&c, "node-b");
    for peer in ["router", "backup"] {
        assert!(node_b.peers[peer].routes.is_empty(), "{peer}");
    }
    let why = &bgp(&c, "node-b", "ns/web").peers["router"].reason;
    let trigger = DrainTrigger::Deleting;
    assert_eq!(*why, Reason::Draining { trigger });
    assert!(!plan_of(&c, "node-a").peers["router"].routes.is_empty());
}

#[test]
fn a_draining_node_keeps_a_service_nobody_else_can_take() {
    // Local policy with the only endpoint on the draining node.
    let mut c = drained_cluster(true, &["node-c"]);
    c.nodes
        .get_mut("node-c")
        .unwrap()
        .annotations
        .insert(DRAIN_ANNOTATION.into(), "true".into());
    let trigger = DrainTrigger::Annotation;
    let kept = Reason::AnnounceDraining { trigger };
    assert_eq!(layer2(&c, "node-c", "ns/web").reason, kept);
    assert_eq!(announcers(&c, "ns/web"), ["node-c"]);
    assert_eq!(bgp(&c, "node-c", "ns/web").peers["router"].reason, kept);
    assert!(!plan_of(&c, "node-c").peers["router"].routes.is_empty());

    // A second endpoint on a node that does not drain takes over both protocols.
    c.services
        .get_mut(&key("ns/web"))
        .unwrap()
        .endpoints
        .push(ready_on("node-a"));
    assert_eq!(announcers(&c, "ns/web"), ["node-a"]);
    assert!(plan_of(&c, "node-c").peers["router"].routes.is_empty());
}

#[test]
fn without_never_blackhole_a_draining_node_lets_go_even_of_its_last_service() {
    let mut c = drained_cluster(true, &["node-c"]);
    c.policy.drain.never_blackhole = false;
    c.nodes.get_mut("node-c").unwrap().deleting = true;
    assert!(announcers(&c, "ns/web").is_empty());
    assert_eq!(layer2(&c, "node-a", "ns/web").owner, None);
    assert!(plan_of(&c, "node-c").peers["router"].routes.is_empty());
}

#[test]
fn when_every_candidate_drains_the_election_runs_among_them() {
    let mut c = drained_cluster(false, &["node-a"]);
    for node in NODES {
        c.nodes.get_mut(node).unwrap().deleting = true;
    }
    // node-b wins 10.0.0.1 among all three: it keeps announcing, the others stay out.
    assert_eq!(announcers(&c, "ns/web"), ["node-b"]);
    let winner = "node-b".to_string();
    assert_eq!(
        layer2(&c, "node-a", "ns/web").reason,
        Reason::NotTheWinner { winner }
    );
}

#[test]
fn when_the_control_plane_marks_every_node_not_ready_the_services_stay_announced() {
    let mut c = drained_cluster(false, &["node-a"]);
    for node in NODES {
        c.nodes.get_mut(node).unwrap().not_ready = true;
    }
    assert_eq!(announcers(&c, "ns/web"), ["node-b"]);
    let trigger = DrainTrigger::NotReady;
    let kept = Reason::AnnounceDraining { trigger };
    assert_eq!(layer2(&c, "node-b", "ns/web").reason, kept);

    // One node ready again takes the service over from the not-ready ones.
    c.nodes.get_mut("node-c").unwrap().not_ready = false;
    assert_eq!(announcers(&c, "ns/web"), ["node-c"]);
}
