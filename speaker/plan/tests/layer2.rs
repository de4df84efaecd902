//! The layer 2 election, one test per rule of the reference's B.2, with winners checked
//! against the SHA-256 formula computed by hand.

mod common;

use common::*;
use metallb_plan::{
    AllowedInterfaces, EXCLUDE_FROM_LOAD_BALANCERS, Endpoint, L2Advertisement, LabelSelector,
    LegacyProtocol, Reason, ServicePlan, plan,
};

const NODES: [&str; 3] = ["node-a", "node-b", "node-c"];

#[test]
fn a_service_without_a_serving_endpoint_is_announced_by_nobody() {
    let mut c = l2_cluster(&NODES);
    let endpoints = vec![unready_on("node-a"), unready_on("node-b")];
    c.services
        .insert(key("ns/web"), service(&["10.0.0.1"], endpoints));
    for node in NODES {
        let l2 = layer2(&c, node, "ns/web");
        assert_eq!(l2.reason, Reason::NoServingEndpoint, "{node}");
        assert_eq!(l2.owner, None);
    }
}

#[test]
fn an_endpoint_serves_when_ready_or_unset_or_still_serving_while_terminating() {
    let cases = [
        ("ready", Some(true), None, true),
        ("ready unset", None, None, true),
        ("terminating but serving", Some(false), Some(true), true),
        ("not ready, serving unset", Some(false), None, false),
        ("terminating, not serving", Some(false), Some(false), false),
    ];
    for (what, ready, serving, announced) in cases {
        let mut c = l2_cluster(&NODES);
        let endpoint = Endpoint {
            node: Some("node-a".into()),
            ready,
            serving,
        };
        c.services
            .insert(key("ns/web"), service(&["10.0.0.1"], vec![endpoint]));
        assert_eq!(
            announcers(&c, "ns/web").len(),
            usize::from(announced),
            "{what}"
        );
    }
}

#[test]
fn an_advertisement_takes_its_pools_by_name_or_label_and_all_pools_when_it_names_none() {
    let by_name = |list: &[&str]| {
        let mut ad = L2Advertisement::default();
        ad.pools.names = names(list);
        ad
    };
    let mut by_label = L2Advertisement::default();
    by_label.pools.selectors = vec![LabelSelector::from_labels([("tier", "edge")])];
    let edge = labels(&[("tier", "edge")]);
    let cases = [
        (
            "no selection",
            L2Advertisement::default(),
            edge.clone(),
            true,
        ),
        ("its name", by_name(&[POOL]), edge.clone(), true),
        ("another name", by_name(&["other"]), edge.clone(), false),
        ("its labels", by_label.clone(), edge, true),
        ("labels it lacks", by_label, labels(&[]), false),
    ];
    for (what, ad, pool_labels, selected) in cases {
        let mut c = cluster(&NODES);
        c.pools.get_mut(POOL).unwrap().labels = pool_labels;
        c.l2_advertisements.insert("ad".into(), ad);
        c.services.insert(
            key("ns/web"),
            service(&["10.0.0.1"], vec![ready_on("node-a")]),
        );
        let planned = plan_of(&c, "node-a");
        let status = planned.explain(&key("ns/web")).unwrap();
        assert_eq!(status.layer2().is_some(), selected, "{what}");
        if !selected {
            assert!(
                matches!(status, ServicePlan::NoAdvertisement { .. }),
                "{what}"
            );
        }
    }
}

#[test]
fn a_node_outside_every_advertisements_node_selectors_is_not_selected() {
    let mut c = cluster(&NODES);
    let ad = L2Advertisement {
        node_selectors: on_nodes(&["node-a", "node-b"]),
        ..L2Advertisement::default()
    };
    c.l2_advertisements.insert("ab".into(), ad);
    c.services.insert(
        key("ns/web"),
        service(&["10.0.0.1"], vec![ready_on("node-c")]),
    );
    assert_eq!(layer2(&c, "node-c", "ns/web").reason, Reason::NotSelected);
    let owner = winner_by_hand(&["node-a", "node-b"], "10.0.0.1");
    assert_eq!(announcers(&c, "ns/web"), [owner]);
}

#[test]
fn every_speaker_counts_the_nodes_of_all_the_pools_advertisements() {
    // Two advertisements with disjoint node sets: node-a and node-b each match only one,
    // yet both elect among {node-a, node-b} and agree (MetalLB #3014).
    let mut c = cluster(&NODES);
    for (name, node) in [("only-a", "node-a"), ("only-b", "node-b")] {
        let ad = L2Advertisement {
            node_selectors: on_nodes(&[node]),
            ..L2Advertisement::default()
        };
        c.l2_advertisements.insert(name.into(), ad);
    }
    for i in 1..=20 {
        let ip = format!("10.0.0.{i}");
        c.services.insert(
            key(&format!("ns/s{i}")),
            service(&[&ip], vec![ready_on("node-c")]),
        );
    }
    for i in 1..=20 {
        let svc = format!("ns/s{i}");
        let expected = winner_by_hand(&["node-a", "node-b"], &format!("10.0.0.{i}"));
        assert_eq!(announcers(&c, &svc), [expected], "{svc}");
        assert_eq!(layer2(&c, "node-a", &svc).candidates, 2);
    }
}

#[test]
fn a_node_whose_speaker_is_not_alive_is_not_a_candidate() {
    let mut c = l2_cluster(&NODES);
    c.services.insert(
        key("ns/web"),
        service(&["10.0.0.1"], vec![ready_on("node-a")]),
    );
    // node-b wins 10.0.0.1 among all three (the reference's vector).
    assert_eq!(announcers(&c, "ns/web"), ["node-b"]);
    c.alive.remove("node-b");
    assert_eq!(layer2(&c, "node-b", "ns/web").reason, Reason::NotAlive);
    let owner = winner_by_hand(&["node-a", "node-c"], "10.0.0.1");
    assert_eq!(announcers(&c, "ns/web"), [owner]);
}

#[test]
fn a_node_whose_network_is_unavailable_is_not_a_candidate() {
    let mut c = l2_cluster(&NODES);
    c.services.insert(
        key("ns/web"),
        service(&["10.0.0.1"], vec![ready_on("node-a")]),
    );
    c.nodes.get_mut("node-b").unwrap().network_unavailable = true;
    assert_eq!(
        layer2(&c, "node-b", "ns/web").reason,
        Reason::NetworkUnavailable
    );
    let owner = winner_by_hand(&["node-a", "node-c"], "10.0.0.1");
    assert_eq!(announcers(&c, "ns/web"), [owner]);
}

#[test]
fn an_exclude_labelled_node_is_not_a_candidate_unless_the_label_is_ignored() {
    let mut c = l2_cluster(&NODES);
    c.services.insert(
        key("ns/web"),
        service(&["10.0.0.1"], vec![ready_on("node-a")]),
    );
    let labels = &mut c.nodes.get_mut("node-b").unwrap().labels;
    labels.insert(EXCLUDE_FROM_LOAD_BALANCERS.into(), String::new());
    assert_eq!(
        layer2(&c, "node-b", "ns/web").reason,
        Reason::ExcludedByLabel
    );
    let owner = winner_by_hand(&["node-a", "node-c"], "10.0.0.1");
    assert_eq!(announcers(&c, "ns/web"), [owner]);

    c.policy.ignore_exclude_lb = true;
    assert_eq!(announcers(&c, "ns/web"), ["node-b"]);
}

#[test]
fn a_node_without_a_serving_endpoint_is_not_a_candidate_for_a_local_service() {
    let mut c = l2_cluster(&NODES);
    let endpoints = vec![
        ready_on("node-a"),
        ready_on("node-c"),
        unready_on("node-b"),
        // An endpoint without a node makes nobody a candidate.
        Endpoint::default(),
    ];
    c.services
        .insert(key("ns/web"), local_service(&["10.0.0.1"], endpoints));
    assert_eq!(
        layer2(&c, "node-b", "ns/web").reason,
        Reason::NoLocalEndpoint
    );
    let owner = winner_by_hand(&["node-a", "node-c"], "10.0.0.1");
    assert_eq!(announcers(&c, "ns/web"), [owner]);
    assert_eq!(layer2(&c, "node-b", "ns/web").candidates, 2);
}

#[test]
fn any_node_is_a_candidate_for_a_cluster_service_with_an_endpoint_somewhere() {
    let mut c = l2_cluster(&NODES);
    // The only endpoint has no node at all: the service still has a serving endpoint.
    c.services.insert(
        key("ns/web"),
        service(&["10.0.0.1"], vec![Endpoint::default()]),
    );
    assert_eq!(announcers(&c, "ns/web"), ["node-b"]);
    assert_eq!(layer2(&c, "node-a", "ns/web").candidates, 3);
}

#[test]
fn with_no_candidate_left_nobody_announces() {
    let mut c = l2_cluster(&NODES);
    c.services.insert(
        key("ns/web"),
        local_service(&["10.0.0.1"], vec![ready_on("node-a")]),
    );
    c.alive.remove("node-a");
    for node in NODES {
        let l2 = layer2(&c, node, "ns/web");
        assert_eq!(l2.owner, None, "{node}");
        assert_eq!(l2.candidates, 0);
    }
    assert_eq!(
        layer2(&c, "node-b", "ns/web").reason,
        Reason::NoLocalEndpoint
    );
}

#[test]
fn the_reference_vectors_elect_node_b() {
    // speaker/layer2_controller_test.go TestSortL2Candidates: 10.0.0.1 orders node-b, node-a,
    // node-c; 10.0.0.2 orders node-b, node-c, node-a.
    let mut c = l2_cluster(&NODES);
    for (name, ip) in [("ns/one", "10.0.0.1"), ("ns/two", "10.0.0.2")] {
        c.services
            .insert(key(name), service(&[ip], vec![ready_on("node-a")]));
    }
    for name in ["ns/one", "ns/two"] {
        assert_eq!(announcers(&c, name), ["node-b"]);
    }
    // Without node-b, the second of each order takes over.
    c.alive.remove("node-b");
    assert_eq!(announcers(&c, "ns/one"), ["node-a"]);
    assert_eq!(announcers(&c, "ns/two"), ["node-c"]);
}

#[test]
fn the_winner_is_the_lowest_sha256_of_node_hash_ip_computed_by_hand() {
    let nodes: Vec<String> = (0..12).map(|i| format!("worker-{i}")).collect();
    let nodes: Vec<&str> = nodes.iter().map(String::as_str).collect();
    let mut c = l2_cluster(&nodes);
    // IPv6 hashes in its RFC 5952 text, as Go's net.IP.String writes it.
    let ips = ["10.0.0.7", "10.0.0.200", "fd00::1", "fd00::a:0:0:1"];
    c.pools
        .get_mut(POOL)
        .unwrap()
        .addresses
        .push(metallb_plan::Addresses::Cidr("fd00::/64".parse().unwrap()));
    for (i, ip) in ips.iter().enumerate() {
        c.services.insert(
            key(&format!("ns/s{i}")),
            service(&[ip], vec![ready_on("worker-0")]),
        );
    }
    for (i, text) in ips.iter().enumerate() {
        let svc = format!("ns/s{i}");
        let expected = winner_by_hand(&nodes, text);
        assert_eq!(announcers(&c, &svc), [expected], "{text}");
        for node in nodes.iter().filter(|n| **n != expected) {
            let reason = layer2(&c, node, &svc).reason;
            let winner = expected.to_string();
            assert_eq!(reason, Reason::NotTheWinner { winner }, "{node} for {text}");
        }
    }
}

#[test]
fn a_dual_stack_service_is_elected_by_its_first_ingress_ip() {
    let nodes: Vec<String> = (0..8).map(|i| format!("n{i}")).collect();
    let nodes: Vec<&str> = nodes.iter().map(String::as_str).collect();
    let mut c = l2_cluster(&nodes);
    let ready = || vec![ready_on("n0")];
    c.services.insert(
        key("ns/v4-first"),
        service(&["10.0.0.9", "fd00::9"], ready()),
    );
    c.services.insert(
        key("ns/v6-first"),
        service(&["fd00::9", "10.0.0.9"], ready()),
    );
    let v4 = winner_by_hand(&nodes, "10.0.0.9");
    let v6 = winner_by_hand(&nodes, "fd00::9");
    assert_ne!(v4, v6, "the fixture must tell the two orders apart");
    assert_eq!(announcers(&c, "ns/v4-first"), [v4]);
    assert_eq!(announcers(&c, "ns/v6-first"), [v6]);
    // Both families of one service are announced by its one owner.
    let owner = plan_of(&c, v4);
    assert!(
        owner.layer2[&ip("10.0.0.9")]
            .services
            .contains(&key("ns/v4-first"))
    );
    assert!(
        owner.layer2[&ip("fd00::9")]
            .services
            .contains(&key("ns/v4-first"))
    );
}

#[test]
fn services_sharing_an_ip_land_on_the_same_node() {
    let mut c = l2_cluster(&NODES);
    c.services.insert(
        key("ns/tcp"),
        service(&["10.0.0.5"], vec![ready_on("node-a")]),
    );
    c.services.insert(
        key("ns/udp"),
        service(&["10.0.0.5"], vec![ready_on("node-c")]),
    );
    let owner = winner_by_hand(&NODES, "10.0.0.5");
    assert_eq!(announcers(&c, "ns/tcp"), [owner]);
    assert_eq!(announcers(&c, "ns/udp"), [owner]);
    let sharing = &plan_of(&c, owner).layer2[&ip("10.0.0.5")].services;
    assert_eq!(sharing.len(), 2);
}

#[test]
fn readiness_cordons_and_taints_do_not_change_the_election() {
    let mut c = l2_cluster(&NODES);
    c.services.insert(
        key("ns/web"),
        service(&["10.0.0.1"], vec![ready_on("node-a")]),
    );
    let winner = c.nodes.get_mut("node-b").unwrap();
    winner.unschedulable = true;
    winner
        .taints
        .insert("node.kubernetes.io/unreachable".into());
    winner.taints.insert("node.kubernetes.io/not-ready".into());
    assert_eq!(announcers(&c, "ns/web"), ["node-b"]);
    assert_eq!(plan_of(&c, "node-b").draining, None);
}

#[test]
fn the_interfaces_are_the_union_of_this_nodes_advertisements() {
    let mut c = cluster(&NODES);
    let ad = |interfaces: &[&str], nodes: &[&str]| L2Advertisement {
        interfaces: names(interfaces),
        node_selectors: on_nodes(nodes),
        ..L2Advertisement::default()
    };
    c.l2_advertisements
        .insert("eth0".into(), ad(&["eth0"], &["node-a", "node-b"]));
    c.l2_advertisements
        .insert("eth1".into(), ad(&["eth1", "bond0"], &["node-b"]));
    c.l2_advertisements
        .insert("all".into(), ad(&[], &["node-c"]));
    c.services.insert(
        key("ns/web"),
        service(&["10.0.0.1"], vec![ready_on("node-a")]),
    );
    let only = |list: &[&str]| list.iter().copied().collect::<AllowedInterfaces>();
    assert_eq!(layer2(&c, "node-a", "ns/web").interfaces, only(&["eth0"]));
    assert_eq!(
        layer2(&c, "node-b", "ns/web").interfaces,
        only(&["bond0", "eth0", "eth1"])
    );
    assert_eq!(
        layer2(&c, "node-c", "ns/web").interfaces,
        AllowedInterfaces::All
    );
    // node-b owns 10.0.0.1 and announces it where its advertisements allow.
    let announced = &plan_of(&c, "node-b").layer2[&ip("10.0.0.1")];
    assert_eq!(announced.interfaces, only(&["bond0", "eth0", "eth1"]));
}

#[test]
fn a_legacy_layer2_address_pool_is_announced_from_every_node_on_every_interface() {
    let mut c = cluster(&NODES);
    c.pools.get_mut(POOL).unwrap().legacy = Some(LegacyProtocol::Layer2);
    c.services.insert(
        key("ns/web"),
        service(&["10.0.0.1"], vec![ready_on("node-a")]),
    );
    assert_eq!(announcers(&c, "ns/web"), ["node-b"]);
    assert_eq!(
        layer2(&c, "node-b", "ns/web").interfaces,
        AllowedInterfaces::All
    );
    assert_eq!(
        plan_of(&c, "node-b").explain(&key("ns/web")).unwrap().bgp(),
        None
    );
}

#[test]
fn only_our_services_with_ips_from_one_advertised_pool_are_planned() {
    let mut c = l2_cluster(&NODES);
    let ready = || vec![ready_on("node-a")];
    let mut theirs = service(&["10.0.0.1"], ready());
    theirs.ours = false;
    c.services.insert(key("ns/theirs"), theirs);
    c.services.insert(key("ns/pending"), service(&[], ready()));
    c.services
        .insert(key("ns/stray"), service(&["192.0.2.1"], ready()));
    c.services.insert(
        key("ns/split"),
        service(&["10.0.0.2", "2001:db8::2"], ready()),
    );
    let planned = plan_of(&c, "node-b");
    let status = |name: &str| planned.explain(&key(name)).unwrap().clone();
    assert_eq!(status("ns/theirs"), ServicePlan::NotOurs);
    assert_eq!(status("ns/pending"), ServicePlan::NoIngress);
    assert!(matches!(status("ns/stray"), ServicePlan::NoPool { .. }));
    assert!(matches!(status("ns/split"), ServicePlan::NoPool { .. }));
    assert!(planned.layer2.is_empty());
    assert_eq!(planned.explain(&key("ns/absent")), None);
}

#[test]
fn planning_for_a_node_the_cluster_lacks_is_an_error() {
    let c = l2_cluster(&NODES);
    let error = plan(&c, "ghost").unwrap_err();
    assert_eq!(
        error.to_string(),
        "node \"ghost\" is not among the cluster's nodes"
    );
}
