//! Short builders for clusters, services and endpoints, and the election winner computed by
//! hand from the reference's formula (SHA-256 of `<node>#<ip>`, lowest digest first).

#![allow(dead_code, reason = "each test file uses a different subset")]

use std::{collections::BTreeSet, net::IpAddr};

use metallb_plan::{
    Addresses, BgpAdvertisement, BgpPlan, Cluster, Endpoint, L2Advertisement, LabelSelector,
    Labels, Layer2Plan, Node, Peer, Plan, Pool, Service, ServiceKey, TrafficPolicy, plan,
};
use sha2::{Digest, Sha256};

pub const POOL: &str = "pool";
pub const HOSTNAME: &str = "kubernetes.io/hostname";

pub fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

pub fn key(text: &str) -> ServiceKey {
    let (namespace, name) = text.split_once('/').unwrap();
    ServiceKey::new(namespace, name)
}

pub fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

pub fn names(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// Selects the nodes with one of these names (by their hostname label).
pub fn on_nodes(nodes: &[&str]) -> Vec<LabelSelector> {
    nodes
        .iter()
        .map(|n| LabelSelector::from_labels([(HOSTNAME, *n)]))
        .collect()
}

/// Alive nodes labelled with their hostname, and the pool `pool` (10.0.0.0/24, fd00::/120);
/// no advertisement, peer or service.
pub fn cluster(nodes: &[&str]) -> Cluster {
    let mut cluster = Cluster::default();
    for name in nodes {
        let node = Node {
            labels: labels(&[(HOSTNAME, name)]),
            ..Node::default()
        };
        cluster.nodes.insert(name.to_string(), node);
        cluster.alive.insert(name.to_string());
    }
    let pool = Pool {
        addresses: vec![
            Addresses::Cidr("10.0.0.0/24".parse().unwrap()),
            Addresses::Cidr("fd00::/120".parse().unwrap()),
        ],
        ..Pool::default()
    };
    cluster.pools.insert(POOL.into(), pool);
    cluster
}

/// [`cluster`] with one L2Advertisement for every pool and node.
pub fn l2_cluster(nodes: &[&str]) -> Cluster {
    let mut cluster = cluster(nodes);
    cluster
        .l2_advertisements
        .insert("l2".into(), L2Advertisement::default());
    cluster
}

/// [`cluster`] with one BGPAdvertisement for every pool and node, and the peers `router`
/// (10.255.0.1) and `backup` (10.255.0.2) for every node.
pub fn bgp_cluster(nodes: &[&str]) -> Cluster {
    let mut cluster = cluster(nodes);
    cluster
        .bgp_advertisements
        .insert("bgp".into(), BgpAdvertisement::default());
    for (name, address) in [("router", "10.255.0.1"), ("backup", "10.255.0.2")] {
        let peer = Peer {
            address: ip(address),
            node_selectors: Vec::new(),
        };
        cluster.peers.insert(name.into(), peer);
    }
    cluster
}

/// An endpoint on `node` that is ready.
pub fn ready_on(node: &str) -> Endpoint {
    Endpoint {
        node: Some(node.into()),
        ready: Some(true),
        serving: Some(true),
    }
}

/// An endpoint on `node` that is not ready and does not serve.
pub fn unready_on(node: &str) -> Endpoint {
    Endpoint {
        node: Some(node.into()),
        ready: Some(false),
        serving: Some(false),
    }
}

/// Ours, `Cluster` policy, with these ingress IPs and endpoints.
pub fn service(ips: &[&str], endpoints: Vec<Endpoint>) -> Service {
    Service {
        ours: true,
        ingress: ips.iter().map(|s| ip(s)).collect(),
        traffic_policy: TrafficPolicy::Cluster,
        endpoints,
    }
}

/// [`service`] with `externalTrafficPolicy: Local`.
pub fn local_service(ips: &[&str], endpoints: Vec<Endpoint>) -> Service {
    Service {
        traffic_policy: TrafficPolicy::Local,
        ..service(ips, endpoints)
    }
}

pub fn plan_of(cluster: &Cluster, node: &str) -> Plan {
    plan(cluster, node).unwrap()
}

/// The layer 2 outcome of `service` on `node`.
pub fn layer2(cluster: &Cluster, node: &str, service: &str) -> Layer2Plan {
    plan_of(cluster, node)
        .explain(&key(service))
        .and_then(|s| s.layer2())
        .cloned()
        .unwrap_or_else(|| panic!("{service} has no layer 2 plan on {node}"))
}

/// The BGP outcome of `service` on `node`.
pub fn bgp(cluster: &Cluster, node: &str, service: &str) -> BgpPlan {
    plan_of(cluster, node)
        .explain(&key(service))
        .and_then(|s| s.bgp())
        .cloned()
        .unwrap_or_else(|| panic!("{service} has no BGP plan on {node}"))
}

/// The nodes that announce `service` in layer 2, asking every node of the cluster.
pub fn announcers(cluster: &Cluster, service: &str) -> Vec<String> {
    cluster
        .nodes
        .keys()
        .filter(|node| layer2(cluster, node, service).reason.announces())
        .cloned()
        .collect()
}

/// The reference's formula, computed here rather than by the crate: the candidate with the
/// lowest SHA-256 of the bytes `<node>#<ip>` wins.
pub fn winner_by_hand<'a>(candidates: &[&'a str], ip: &str) -> &'a str {
    candidates
        .iter()
        .copied()
        .min_by_key(|node| Sha256::digest(format!("{node}#{ip}").as_bytes()))
        .unwrap()
}
