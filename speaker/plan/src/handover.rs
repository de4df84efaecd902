//! What a new plan takes from this node because the node is leaving service: it drains, is
//! excluded by label or its network is unavailable. Those announcements are handed over the
//! way a planned exit hands them over, not dropped at once: the speaker keeps answering in
//! layer 2 for a moment so the next owner announces first, and it re-announces the routes
//! with GRACEFUL_SHUTDOWN for a while before withdrawing them. Anything else a plan takes
//! away (a service deleted, another node winning an election it lost) is dropped at once.

use std::{
    collections::{BTreeMap, BTreeSet},
    net::IpAddr,
};

use ipnet::IpNet;

use crate::{
    plan::{Plan, RouteAttributes, ServicePlan},
    reason::Reason,
};

/// The announcements `before` has and `after` drops because the node leaves service.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Handover {
    /// Layer 2 IPs to keep answering for a moment.
    pub layer2: BTreeSet<IpAddr>,
    /// Per peer that keeps its session, the prefixes to re-announce with GRACEFUL_SHUTDOWN
    /// before withdrawing them, with the attributes they had.
    pub routes: BTreeMap<String, BTreeMap<IpNet, RouteAttributes>>,
}

impl Handover {
    /// Whether nothing is handed over.
    pub fn is_empty(&self) -> bool {
        self.layer2.is_empty() && self.routes.is_empty()
    }
}

/// Whether `reason` takes a service from a node that leaves service.
fn leaving(reason: &Reason) -> bool {
    matches!(
        reason,
        Reason::Draining { .. } | Reason::ExcludedByLabel | Reason::NetworkUnavailable
    )
}

/// What `after` stops announcing, compared with `before`, because this node leaves service:
/// an IP or prefix counts when one of the services it carried in `before` is, in `after`,
/// not announced for one of those reasons. Both plans are of the same node.
pub fn handover(before: &Plan, after: &Plan) -> Handover {
    let left = |service| after.services.get(service);
    let mut out = Handover::default();
    for (ip, announcement) in &before.layer2 {
        if after.layer2.contains_key(ip) {
            continue;
        }
        let handed = announcement.services.iter().any(|service| {
            left(service)
                .and_then(ServicePlan::layer2)
                .is_some_and(|l2| leaving(&l2.reason))
        });
        if handed {
            out.layer2.insert(*ip);
        }
    }
    for (peer, routes) in &before.peers {
        let Some(kept) = after.peers.get(peer) else {
            continue;
        };
        for (prefix, attributes) in &routes.routes {
            if kept.routes.contains_key(prefix) {
                continue;
            }
            let handed = before.services.iter().any(|(service, was)| {
                let carried = was
                    .bgp()
                    .and_then(|bgp| bgp.peers.get(peer))
                    .is_some_and(|p| p.routes.contains_key(prefix));
                let now = left(service)
                    .and_then(ServicePlan::bgp)
                    .and_then(|bgp| bgp.peers.get(peer));
                carried && now.is_some_and(|p| leaving(&p.reason))
            });
            if handed {
                out.routes
                    .entry(peer.clone())
                    .or_default()
                    .insert(*prefix, attributes.clone());
            }
        }
    }
    out
}
