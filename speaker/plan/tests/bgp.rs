//! BGP announcements, one test per rule of the reference's B.6: who peers, which
//! advertisements apply, endpoints, aggregation, attributes and LOCAL_PREF conflicts.

mod common;

use std::collections::BTreeMap;

use common::*;
use ipnet::IpNet;
use metallb_plan::{
    BgpAdvertisement, BgpAttributes, Community, EXCLUDE_FROM_LOAD_BALANCERS, LabelSelector,
    LargeCommunity, LegacyProtocol, Operator, PlanError, Reason, Requirement, RouteAttributes,
    plan,
};

const NODES: [&str; 3] = ["node-a", "node-b", "node-c"];

fn net(text: &str) -> IpNet {
    text.parse().unwrap()
}

/// The reasons `node` records for `service`, peer by peer.
fn reasons(c: &metallb_plan::Cluster, node: &str, service: &str) -> BTreeMap<String, Reason> {
    bgp(c, node, service)
        .peers
        .into_iter()
        .map(|(peer, p)| (peer, p.reason))
        .collect()
}

/// The prefixes `node` sends `peer`, all services merged.
fn sent(c: &metallb_plan::Cluster, node: &str, peer: &str) -> Vec<IpNet> {
    plan_of(c, node)
        .peers
        .get(peer)
        .map(|p| p.routes.keys().copied().collect())
        .unwrap_or_default()
}

fn ad(attributes: BgpAttributes) -> BgpAdvertisement {
    BgpAdvertisement {
        attributes,
        ..BgpAdvertisement::default()
    }
}

#[test]
fn a_cluster_service_is_sent_to_every_peer_from_every_node() {
    let mut c = bgp_cluster(&NODES);
    c.services.insert(
        key("ns/web"),
        service(&["10.0.0.1"], vec![ready_on("node-a")]),
    );
    for node in NODES {
        for peer in ["router", "backup"] {
            assert_eq!(sent(&c, node, peer), [net("10.0.0.1/32")], "{node} {peer}");
        }
        assert!(
            reasons(&c, node, "ns/web")
                .values()
                .all(|r| *r == Reason::Announce)
        );
    }
}

#[test]
fn a_peer_whose_node_selectors_exclude_this_node_gets_no_session() {
    let mut c = bgp_cluster(&NODES);
    c.peers.get_mut("backup").unwrap().node_selectors = vec![LabelSelector::from_requirement(
        Requirement::new(HOSTNAME, Operator::NotIn, ["node-a"]),
    )];
    c.services.insert(
        key("ns/web"),
        service(&["10.0.0.1"], vec![ready_on("node-a")]),
    );
    let node_a = plan_of(&c, "node-a");
    assert!(node_a.peers.contains_key("router"));
    assert!(!node_a.peers.contains_key("backup"));
    assert_eq!(
        reasons(&c, "node-a", "ns/web")["backup"],
        Reason::PeerNotSelected
    );
    assert_eq!(sent(&c, "node-b", "backup"), [net("10.0.0.1/32")]);
}

#[test]
fn a_node_outside_every_bgp_advertisements_node_selectors_sends_nothing() {
    let mut c = bgp_cluster(&NODES);
    let advertisement = c.bgp_advertisements.get_mut("bgp").unwrap();
    advertisement.node_selectors = on_nodes(&["node-a"]);
    c.services.insert(
        key("ns/web"),
        service(&["10.0.0.1"], vec![ready_on("node-c")]),
    );
    assert_eq!(sent(&c, "node-a", "router"), [net("10.0.0.1/32")]);
    for node in ["node-b", "node-c"] {
        assert!(sent(&c, node, "router").is_empty());
        assert_eq!(reasons(&c, node, "ns/web")["router"], Reason::NotSelected);
        // The session stays: the peer still selects the node.
        assert!(plan_of(&c, node).peers.contains_key("router"));
    }
}

#[test]
fn an_advertisements_peers_limit_who_receives_it_and_none_means_every_peer() {
    let mut c = bgp_cluster(&NODES);
    c.bgp_advertisements.get_mut("bgp").unwrap().peers = names(&["backup"]);
    c.services.insert(
        key("ns/web"),
        service(&["10.0.0.1"], vec![ready_on("node-a")]),
    );
    assert!(sent(&c, "node-a", "router").is_empty());
    assert_eq!(sent(&c, "node-a", "backup"), [net("10.0.0.1/32")]);
    let why = reasons(&c, "node-a", "ns/web");
    assert_eq!(why["router"], Reason::NotInAdvertisementPeers);
    assert_eq!(why["backup"], Reason::Announce);

    c.bgp_advertisements.get_mut("bgp").unwrap().peers.clear();
    assert_eq!(sent(&c, "node-a", "router"), [net("10.0.0.1/32")]);
}

#[test]
fn advertisements_take_their_pools_by_name_or_label() {
    let mut c = bgp_cluster(&NODES);
    c.bgp_advertisements.clear();
    c.pools.get_mut(POOL).unwrap().labels = labels(&[("tier", "edge")]);
    let mut by_label = ad(BgpAttributes {
        local_pref: Some(50),
        ..BgpAttributes::default()
    });
    by_label.pools.selectors = vec![LabelSelector::from_labels([("tier", "edge")])];
    let mut elsewhere = ad(BgpAttributes {
        local_pref: Some(60),
        ..BgpAttributes::default()
    });
    elsewhere.pools.names = names(&["other"]);
    c.bgp_advertisements.insert("edge".into(), by_label);
    c.bgp_advertisements.insert("other".into(), elsewhere);
    c.services.insert(
        key("ns/web"),
        service(&["10.0.0.1"], vec![ready_on("node-a")]),
    );
    let routes = &plan_of(&c, "node-a").peers["router"].routes;
    assert_eq!(routes[&net("10.0.0.1/32")].local_pref, Some(50));
}

#[test]
fn a_dead_speaker_an_unavailable_network_or_the_exclude_label_stop_announcements() {
    let mut c = bgp_cluster(&NODES);
    c.services.insert(
        key("ns/web"),
        service(&["10.0.0.1"], vec![ready_on("node-a")]),
    );
    c.alive.remove("node-a");
    c.nodes.get_mut("node-b").unwrap().network_unavailable = true;
    let labels = &mut c.nodes.get_mut("node-c").unwrap().labels;
    labels.insert(EXCLUDE_FROM_LOAD_BALANCERS.into(), "true".into());
    let cases = [
        ("node-a", Reason::NotAlive),
        ("node-b", Reason::NetworkUnavailable),
        ("node-c", Reason::ExcludedByLabel),
    ];
    for (node, reason) in cases {
        assert!(sent(&c, node, "router").is_empty(), "{node}");
        assert_eq!(reasons(&c, node, "ns/web")["router"], reason);
    }
    c.policy.ignore_exclude_lb = true;
    assert_eq!(sent(&c, "node-c", "router"), [net("10.0.0.1/32")]);
}

#[test]
fn a_local_service_is_sent_only_from_nodes_with_a_serving_endpoint() {
    let mut c = bgp_cluster(&NODES);
    let endpoints = vec![ready_on("node-a"), unready_on("node-b")];
    c.services
        .insert(key("ns/web"), local_service(&["10.0.0.1"], endpoints));
    assert_eq!(sent(&c, "node-a", "router"), [net("10.0.0.1/32")]);
    for node in ["node-b", "node-c"] {
        assert!(sent(&c, node, "router").is_empty());
        assert_eq!(
            reasons(&c, node, "ns/web")["router"],
            Reason::NoLocalEndpoint
        );
    }
}

#[test]
fn a_service_without_a_serving_endpoint_is_not_sent() {
    let mut c = bgp_cluster(&NODES);
    c.services.insert(
        key("ns/web"),
        service(&["10.0.0.1"], vec![unready_on("node-a")]),
    );
    for node in NODES {
        assert!(sent(&c, node, "router").is_empty());
        assert_eq!(
            reasons(&c, node, "ns/web")["router"],
            Reason::NoServingEndpoint
        );
    }
}

#[test]
fn ips_are_masked_to_the_aggregation_length_of_their_family() {
    let mut c = bgp_cluster(&NODES);
    c.bgp_advertisements.insert(
        "bgp".into(),
        ad(BgpAttributes {
            aggregation_length: 24,
            aggregation_length_v6: 64,
            ..BgpAttributes::default()
        }),
    );
    let ready = || vec![ready_on("node-a")];
    c.services
        .insert(key("ns/one"), service(&["10.0.0.17", "fd00::17"], ready()));
    c.services
        .insert(key("ns/two"), service(&["10.0.0.99"], ready()));
    assert_eq!(
        sent(&c, "node-b", "router"),
        [net("10.0.0.0/24"), net("fd00::/64")]
    );
    let one = &bgp(&c, "node-b", "ns/one").peers["router"].routes;
    assert_eq!(
        one.keys().copied().collect::<Vec<_>>(),
        [net("10.0.0.0/24"), net("fd00::/64")]
    );
}

#[test]
fn communities_and_local_pref_travel_with_the_prefix_and_merge_across_advertisements() {
    let mut c = bgp_cluster(&NODES);
    let no_export = Community::new(65535, 65281);
    let tag = Community::new(64512, 7);
    let large = LargeCommunity {
        global_admin: 64512,
        local_data_1: 1,
        local_data_2: 2,
    };
    let first = ad(BgpAttributes {
        communities: [no_export].into(),
        local_pref: Some(150),
        ..BgpAttributes::default()
    });
    let second = ad(BgpAttributes {
        communities: [tag].into(),
        large_communities: [large].into(),
        local_pref: Some(150),
        ..BgpAttributes::default()
    });
    c.bgp_advertisements.insert("bgp".into(), first);
    c.bgp_advertisements.insert("tagged".into(), second);
    c.services.insert(
        key("ns/web"),
        service(&["10.0.0.1"], vec![ready_on("node-a")]),
    );
    let expected = RouteAttributes {
        local_pref: Some(150),
        communities: [no_export, tag].into(),
        large_communities: [large].into(),
    };
    let routes = &plan_of(&c, "node-c").peers["router"].routes;
    assert_eq!(routes[&net("10.0.0.1/32")], expected);
    let service_routes = &bgp(&c, "node-c", "ns/web").peers["router"].routes;
    assert_eq!(service_routes[&net("10.0.0.1/32")], expected);
}

#[test]
fn advertisements_that_disagree_on_local_pref_for_a_prefix_send_nothing_to_that_peer() {
    let mut c = bgp_cluster(&NODES);
    let pref = |local_pref| {
        ad(BgpAttributes {
            local_pref: Some(local_pref),
            ..BgpAttributes::default()
        })
    };
    c.bgp_advertisements.insert("bgp".into(), pref(100));
    let mut other = pref(200);
    other.peers = names(&["router"]);
    c.bgp_advertisements.insert("other".into(), other);
    c.services.insert(
        key("ns/web"),
        service(&["10.0.0.1"], vec![ready_on("node-a")]),
    );
    let why = reasons(&c, "node-a", "ns/web");
    let prefix = net("10.0.0.1/32");
    assert_eq!(why["router"], Reason::ConflictingLocalPref { prefix });
    assert!(sent(&c, "node-a", "router").is_empty());
    // The backup peer only gets the first advertisement: no conflict there.
    assert_eq!(why["backup"], Reason::Announce);
    assert_eq!(sent(&c, "node-a", "backup"), [prefix]);
}

/// [`bgp_cluster`] with a second pool (10.0.1.0/24) beside 10.0.0.0/24, and instead of its
/// advertisement one per pool with `attributes` (first pool, second pool), both aggregating
/// to /16: services of either pool send the one prefix 10.0.0.0/16.
fn two_pools_aggregated_to_16(attributes: [BgpAttributes; 2]) -> metallb_plan::Cluster {
    let mut c = bgp_cluster(&NODES);
    c.bgp_advertisements.clear();
    c.pools.insert("second".into(), {
        let mut pool = c.pools[POOL].clone();
        pool.addresses = vec![metallb_plan::Addresses::Range {
            first: ip("10.0.1.0"),
            last: ip("10.0.1.255"),
        }];
        pool
    });
    let [first, second] = attributes;
    for (name, pool, attributes) in [("first", POOL, first), ("second", "second", second)] {
        let mut advertisement = ad(BgpAttributes {
            aggregation_length: 16,
            ..attributes
        });
        advertisement.pools.names = names(&[pool]);
        c.bgp_advertisements.insert(name.into(), advertisement);
    }
    c
}

#[test]
fn services_aggregated_into_one_prefix_with_different_local_prefs_conflict() {
    let pref = |local_pref| BgpAttributes {
        local_pref: Some(local_pref),
        ..BgpAttributes::default()
    };
    let mut c = two_pools_aggregated_to_16([pref(100), pref(200)]);
    let ready = || vec![ready_on("node-a")];
    c.services
        .insert(key("ns/one"), service(&["10.0.0.1"], ready()));
    c.services
        .insert(key("ns/two"), service(&["10.0.1.1"], ready()));
    let prefix = net("10.0.0.0/16");
    for name in ["ns/one", "ns/two"] {
        let why = reasons(&c, "node-b", name);
        assert_eq!(
            why["router"],
            Reason::ConflictingLocalPref { prefix },
            "{name}"
        );
    }
    assert!(sent(&c, "node-b", "router").is_empty());
}

#[test]
fn services_aggregated_into_one_prefix_send_it_once_with_all_their_communities() {
    let (first, second) = (Community::new(64512, 1), Community::new(64512, 2));
    let tagged = |community| BgpAttributes {
        local_pref: Some(100),
        communities: [community].into(),
        ..BgpAttributes::default()
    };
    let mut c = two_pools_aggregated_to_16([tagged(first), tagged(second)]);
    let ready = || vec![ready_on("node-a")];
    for (name, address) in [
        ("ns/one", "10.0.0.1"),
        ("ns/two", "10.0.1.1"),
        ("ns/three", "10.0.0.2"),
    ] {
        c.services.insert(key(name), service(&[address], ready()));
    }
    let routes = &plan_of(&c, "node-b").peers["router"].routes;
    let expected = RouteAttributes {
        local_pref: Some(100),
        communities: [first, second].into(),
        ..RouteAttributes::default()
    };
    assert_eq!(
        routes.iter().collect::<Vec<_>>(),
        [(&net("10.0.0.0/16"), &expected)]
    );
    let one = &bgp(&c, "node-b", "ns/one").peers["router"].routes;
    assert_eq!(one[&net("10.0.0.0/16")].communities, [first].into());
}

#[test]
fn a_legacy_bgp_address_pool_announces_its_inline_advertisements_or_each_ip_alone() {
    let mut c = bgp_cluster(&NODES);
    c.bgp_advertisements.clear();
    c.pools.get_mut(POOL).unwrap().legacy = Some(LegacyProtocol::Bgp(Vec::new()));
    c.services.insert(
        key("ns/web"),
        service(&["10.0.0.1"], vec![ready_on("node-a")]),
    );
    for node in NODES {
        let routes = &plan_of(&c, node).peers["backup"].routes;
        assert_eq!(
            routes[&net("10.0.0.1/32")],
            RouteAttributes::default(),
            "{node}"
        );
    }
    let inline = BgpAttributes {
        communities: [Community::new(64512, 1)].into(),
        aggregation_length: 28,
        ..BgpAttributes::default()
    };
    c.pools.get_mut(POOL).unwrap().legacy = Some(LegacyProtocol::Bgp(vec![inline]));
    assert_eq!(sent(&c, "node-c", "router"), [net("10.0.0.0/28")]);
    let status = plan_of(&c, "node-c");
    assert_eq!(status.explain(&key("ns/web")).unwrap().layer2(), None);
}

#[test]
fn an_aggregation_length_longer_than_the_family_is_an_error() {
    let mut c = bgp_cluster(&NODES);
    c.bgp_advertisements.insert(
        "bgp".into(),
        ad(BgpAttributes {
            aggregation_length: 33,
            ..BgpAttributes::default()
        }),
    );
    c.services.insert(
        key("ns/web"),
        service(&["10.0.0.1"], vec![ready_on("node-a")]),
    );
    let error = plan(&c, "node-a").unwrap_err();
    let expected = PlanError::AggregationLength {
        ip: ip("10.0.0.1"),
        length: 33,
    };
    assert_eq!(error, expected);
    assert_eq!(
        error.to_string(),
        "aggregation length 33 does not fit 10.0.0.1"
    );
}

#[test]
fn a_pool_with_both_protocols_is_planned_for_both() {
    let mut c = bgp_cluster(&NODES);
    c.l2_advertisements
        .insert("l2".into(), metallb_plan::L2Advertisement::default());
    c.services.insert(
        key("ns/web"),
        service(&["10.0.0.1"], vec![ready_on("node-a")]),
    );
    let node_a = plan_of(&c, "node-a");
    let status = node_a.explain(&key("ns/web")).unwrap();
    assert_eq!(status.layer2().unwrap().owner.as_deref(), Some("node-b"));
    assert_eq!(
        status.bgp().unwrap().peers["router"].reason,
        Reason::Announce
    );
}

#[test]
fn the_plan_serializes_for_show() {
    let mut c = bgp_cluster(&NODES);
    c.l2_advertisements
        .insert("l2".into(), metallb_plan::L2Advertisement::default());
    c.bgp_advertisements.get_mut("bgp").unwrap().attributes = BgpAttributes {
        communities: [Community::new(65535, 0)].into(),
        large_communities: [LargeCommunity {
            global_admin: 1,
            local_data_1: 2,
            local_data_2: 3,
        }]
        .into(),
        ..BgpAttributes::default()
    };
    c.services.insert(
        key("ns/web"),
        service(&["10.0.0.1"], vec![ready_on("node-a")]),
    );
    let json = serde_json::to_value(plan_of(&c, "node-a")).unwrap();
    let web = &json["services"]["ns/web"];
    assert_eq!(web["status"], "planned");
    assert_eq!(web["pool"], POOL);
    assert_eq!(web["layer2"]["reason"], "notTheWinner");
    assert_eq!(web["layer2"]["winner"], "node-b");
    assert_eq!(web["layer2"]["interfaces"], "all");
    assert_eq!(web["bgp"]["peers"]["router"]["reason"], "announce");
    let route = &json["peers"]["router"]["routes"]["10.0.0.1/32"];
    assert_eq!(route["communities"], serde_json::json!(["65535:0"]));
    assert_eq!(route["largeCommunities"], serde_json::json!(["1:2:3"]));
    assert_eq!(json["peers"]["router"]["address"], "10.255.0.1");
}
