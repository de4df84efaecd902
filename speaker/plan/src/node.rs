//! Where each node stands before any service is looked at: whether it may announce at all
//! (its speaker alive, `NetworkUnavailable`, the exclude label) and whether it drains.

use std::collections::BTreeMap;

use crate::{
    cluster::{
        Cluster, DRAIN_ANNOTATION, Drain, EXCLUDE_FROM_LOAD_BALANCERS, Node, OUT_OF_SERVICE,
    },
    reason::{DrainTrigger, Reason},
};

/// Every node's standing, computed once per plan.
#[derive(Debug)]
pub(crate) struct Standings<'a> {
    nodes: BTreeMap<&'a str, Standing>,
}

#[derive(Debug)]
struct Standing {
    /// The rule that keeps the node from announcing anything, if one does.
    out: Option<Reason>,
    drain: Option<DrainTrigger>,
}

impl<'a> Standings<'a> {
    pub(crate) fn new(cluster: &'a Cluster) -> Self {
        let nodes = cluster
            .nodes
            .iter()
            .map(|(name, node)| {
                let out = if !cluster.alive.contains(name) {
                    Some(Reason::NotAlive)
                } else if node.network_unavailable {
                    Some(Reason::NetworkUnavailable)
                } else if !cluster.policy.ignore_exclude_lb
                    && node.labels.contains_key(EXCLUDE_FROM_LOAD_BALANCERS)
                {
                    Some(Reason::ExcludedByLabel)
                } else {
                    None
                };
                let drain = drain_trigger(node, &cluster.policy.drain);
                (name.as_str(), Standing { out, drain })
            })
            .collect();
        Self { nodes }
    }

    /// Why the node may not announce anything, if something stops it.
    pub(crate) fn out(&self, node: &str) -> Option<Reason> {
        self.nodes.get(node).and_then(|s| s.out.clone())
    }

    /// Whether the node may announce: alive, network available, not excluded.
    pub(crate) fn eligible(&self, node: &str) -> bool {
        self.nodes.get(node).is_some_and(|s| s.out.is_none())
    }

    /// Why the node drains, if it does.
    pub(crate) fn drain(&self, node: &str) -> Option<&DrainTrigger> {
        self.nodes.get(node).and_then(|s| s.drain.as_ref())
    }
}

/// The first drain trigger that applies: those that always do, then the configured ones.
fn drain_trigger(node: &Node, drain: &Drain) -> Option<DrainTrigger> {
    if node.taints.contains(OUT_OF_SERVICE) {
        Some(DrainTrigger::OutOfService)
    } else if node.deleting {
        Some(DrainTrigger::Deleting)
    } else if node.annotations.contains_key(DRAIN_ANNOTATION) {
        Some(DrainTrigger::Annotation)
    } else if node.not_ready {
        Some(DrainTrigger::NotReady)
    } else if drain.on_cordon && node.unschedulable {
        Some(DrainTrigger::Cordoned)
    } else {
        drain
            .taint_keys
            .iter()
            .find(|key| node.taints.contains(*key))
            .map(|key| DrainTrigger::Taint(key.clone()))
    }
}
