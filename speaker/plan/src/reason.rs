//! Why this node announces a service, or which rule stopped it: one vocabulary for layer 2 and
//! BGP, recorded in the plan for `metallb-speaker show`, events and logs.

use std::fmt;

use ipnet::IpNet;
use serde::Serialize;

/// The outcome of the rules for one service (and, in BGP, one peer) on this node. The rules
/// are checked in the order the variants are listed; the first that fails is recorded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "reason", rename_all = "camelCase")]
pub enum Reason {
    /// This node announces.
    Announce,
    /// This node drains, but no node that does not is eligible, so it keeps announcing rather
    /// than leave the service unreachable ([`Drain::never_blackhole`](crate::Drain)).
    AnnounceDraining {
        /// Why the node drains.
        trigger: DrainTrigger,
    },
    /// BGP: the peer's `nodeSelectors` do not select this node, so there is no session.
    PeerNotSelected,
    /// No endpoint of the service can serve, on any node: nobody announces it.
    NoServingEndpoint,
    /// No advertisement of the service's pool (of this protocol) selects this node.
    NotSelected,
    /// This node's speaker is not alive: its Lease is not renewed.
    NotAlive,
    /// This node's `NetworkUnavailable` condition is true.
    NetworkUnavailable,
    /// This node carries the `node.kubernetes.io/exclude-from-external-load-balancers` label.
    ExcludedByLabel,
    /// `externalTrafficPolicy: Local` and no serving endpoint runs on this node.
    NoLocalEndpoint,
    /// This node drains and another node can take the service over.
    Draining {
        /// Why the node drains.
        trigger: DrainTrigger,
    },
    /// Layer 2: another candidate comes first in the election.
    NotTheWinner {
        /// The node that announces.
        winner: String,
    },
    /// BGP: the advertisements that select this node name other peers.
    NotInAdvertisementPeers,
    /// BGP: advertisements send this prefix to the peer with different LOCAL_PREF values
    /// (MetalLB's `conflictingAdvertisements`), so none of them is sent.
    ConflictingLocalPref {
        /// The prefix in conflict.
        prefix: IpNet,
    },
}

impl Reason {
    /// Whether the service is announced.
    pub fn announces(&self) -> bool {
        matches!(self, Self::Announce | Self::AnnounceDraining { .. })
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Announce => f.write_str("announced"),
            Self::AnnounceDraining { trigger } => write!(
                f,
                "announced although the node drains ({trigger}): no other node is eligible"
            ),
            Self::PeerNotSelected => f.write_str("the peer's nodeSelectors exclude this node"),
            Self::NoServingEndpoint => f.write_str("no endpoint can serve"),
            Self::NotSelected => f.write_str("no advertisement of the pool selects this node"),
            Self::NotAlive => f.write_str("this node's speaker is not alive"),
            Self::NetworkUnavailable => f.write_str("the node's network is unavailable"),
            Self::ExcludedByLabel => f.write_str("the node is excluded from load balancers"),
            Self::NoLocalEndpoint => {
                f.write_str("externalTrafficPolicy Local and no serving endpoint on this node")
            }
            Self::Draining { trigger } => write!(f, "the node drains ({trigger})"),
            Self::NotTheWinner { winner } => write!(f, "{winner} won the election"),
            Self::NotInAdvertisementPeers => {
                f.write_str("the advertisements for this node name other peers")
            }
            Self::ConflictingLocalPref { prefix } => {
                write!(f, "advertisements disagree on LOCAL_PREF for {prefix}")
            }
        }
    }
}

/// Why a node drains.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum DrainTrigger {
    /// It has the `node.kubernetes.io/out-of-service` taint.
    OutOfService,
    /// The Node is being deleted.
    Deleting,
    /// It has the `metallb.io/drain` annotation.
    Annotation,
    /// Its `Ready` condition has been `False` or `Unknown` beyond the grace period. A drain,
    /// not an exclusion: when the control plane marks every node `Unknown` (it lost them all),
    /// never-blackhole keeps the services announced.
    NotReady,
    /// It is cordoned and cordons drain.
    Cordoned,
    /// It has a taint whose key the drain settings list.
    Taint(String),
}

impl fmt::Display for DrainTrigger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::OutOfService => f.write_str("out-of-service taint"),
            Self::Deleting => f.write_str("node being deleted"),
            Self::Annotation => f.write_str("metallb.io/drain annotation"),
            Self::NotReady => f.write_str("node not ready"),
            Self::Cordoned => f.write_str("cordoned"),
            Self::Taint(key) => write!(f, "taint {key}"),
        }
    }
}
