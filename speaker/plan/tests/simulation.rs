//! Many speakers planning from the same cluster: 100 nodes and 1,000 services, each node
//! computing its own plan. Exactly one node announces each service in layer 2, and all agree
//! which; when a node goes, only its IPs move, and they come back when it returns.
//!
//! Every plan hashes `node#ip` for every candidate of every service, so a round costs
//! nodes x services x nodes SHA-256 digests: about 3 s for 1,000 services in an optimized
//! build (`cargo test --release`), over a minute unoptimized. Debug builds plan 200 services.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::*;
use metallb_plan::{Cluster, Endpoint, Reason, ServiceKey, plan};

const NODES: usize = 100;
const SERVICES: usize = if cfg!(debug_assertions) { 200 } else { 1_000 };

/// A small deterministic generator (64-bit LCG), so the fixture is the same on every run.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((self.0 >> 33) % n as u64) as usize
    }
}

/// 100 nodes; every fourth service Local with endpoints on three random nodes, the others
/// Cluster with one endpoint anywhere; IPs from 10.0.0.0/22 and fd00::/120.
fn big_cluster() -> Cluster {
    let names: Vec<String> = (0..NODES).map(|i| format!("node-{i:03}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut c = l2_cluster(&names);
    let pool = c.pools.get_mut(POOL).unwrap();
    pool.addresses = vec![
        metallb_plan::Addresses::Cidr("10.0.0.0/22".parse().unwrap()),
        metallb_plan::Addresses::Cidr("fd00::/112".parse().unwrap()),
    ];
    let mut random = Lcg(12);
    for i in 0..SERVICES {
        let ip = if i % 10 == 9 {
            format!("fd00::{i:x}")
        } else {
            format!("10.0.{}.{}", i / 256, i % 256)
        };
        let key = format!("ns/svc-{i:04}");
        let service = if i % 4 == 0 {
            let endpoints = (0..3)
                .map(|_| ready_on(names[random.below(NODES)]))
                .collect();
            local_service(&[&ip], endpoints)
        } else {
            service(&[&ip], vec![Endpoint::default()])
        };
        c.services.insert(common::key(&key), service);
    }
    c
}

/// Every node plans; returns each service's announcing node, checking that exactly one node
/// announces it and that every node names that one as the owner.
fn owners(c: &Cluster) -> BTreeMap<ServiceKey, String> {
    let plans: Vec<_> = c.nodes.keys().map(|n| plan(c, n).unwrap()).collect();
    let mut owners = BTreeMap::new();
    for key in c.services.keys() {
        let layer2: Vec<_> = plans
            .iter()
            .map(|p| (&p.node, p.explain(key).unwrap().layer2().unwrap()))
            .collect();
        let announcing: Vec<_> = layer2
            .iter()
            .filter(|(_, l2)| l2.reason.announces())
            .map(|(node, _)| node.to_string())
            .collect();
        assert_eq!(announcing.len(), 1, "{key}: announced by {announcing:?}");
        let owner = &announcing[0];
        let winner = Reason::NotTheWinner {
            winner: owner.clone(),
        };
        for (node, l2) in &layer2 {
            assert_eq!(l2.owner.as_ref(), Some(owner), "{key} as {node} sees it");
            let expected = match c.alive.contains(*node) {
                false => Reason::NotAlive,
                true if *node == owner => Reason::Announce,
                true if l2.reason == Reason::NoLocalEndpoint => continue,
                true => winner.clone(),
            };
            assert_eq!(l2.reason, expected, "{key} on {node}");
        }
        owners.insert(key.clone(), owner.clone());
    }
    owners
}

#[test]
fn every_ip_has_exactly_one_owner_and_only_a_leaving_nodes_ips_move() {
    let mut c = big_cluster();
    let before = owners(&c);
    // The load spreads: most nodes own something.
    let distinct: BTreeSet<_> = before.values().collect();
    assert!(distinct.len() > NODES * 3 / 4, "{} owners", distinct.len());

    let leaving = before.values().next().unwrap().clone();
    c.alive.remove(&leaving);
    let after = owners(&c);
    for (key, owner) in &before {
        if *owner == leaving {
            assert_ne!(after[key], leaving, "{key} must move");
        } else {
            assert_eq!(&after[key], owner, "{key} moved although {owner} stayed");
        }
    }

    // No stickiness: the node takes its IPs back when it returns.
    c.alive.insert(leaving.clone());
    let back = plan(&c, &leaving).unwrap();
    let announced: Vec<_> = back
        .services
        .iter()
        .filter(|(_, s)| s.layer2().is_some_and(|l2| l2.reason.announces()))
        .map(|(key, _)| key)
        .collect();
    let owned: Vec<_> = before
        .iter()
        .filter(|(_, o)| **o == leaving)
        .map(|(k, _)| k)
        .collect();
    assert_eq!(announced, owned);
}
