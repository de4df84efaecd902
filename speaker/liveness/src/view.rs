//! What the core tells the speaker: the candidates, this node's state, per-node reasons for
//! `show` and metrics, and events to log.

use std::collections::{BTreeMap, BTreeSet};

use crate::{
    packet::{StandDown, Status},
    rules::{Basis, OwnState},
};

/// The liveness view at one moment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct View {
    /// This node's state.
    pub own: OwnState,
    /// How the candidates were counted.
    pub basis: Basis,
    /// The nodes counted alive for the layer 2 election and BGP: the planner's
    /// `Cluster::alive`. This node is in it only while [`OwnState::Normal`].
    pub candidates: BTreeSet<String>,
    /// Every other member, with the reason it counts or not.
    pub nodes: BTreeMap<String, NodeView>,
}

/// One other member as this node sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NodeView {
    /// Its status in the protocol.
    pub status: Status,
    /// Its incarnation as last learned.
    pub incarnation: u64,
    /// Its own stand-down flags.
    pub stand_down: StandDown,
    /// Whether it was heard directly within the detection time (it is one of our monitored
    /// nodes, or answered a probe).
    pub heard: bool,
    /// Why it counts or not.
    pub reason: NodeReason,
}

/// Why a node counts as a candidate or not; the first rule that applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeReason {
    /// It counts.
    Candidate,
    /// It counts: suspected, but not yet dead.
    Suspected,
    /// It was declared dead.
    Dead,
    /// It left on purpose.
    Left,
    /// It fenced itself (cannot reach the API while others can).
    Fenced,
    /// It stands down: it hears no peer while others hear each other.
    Isolated,
    /// Its Lease expired while the API worked for this node.
    LeaseStale,
    /// Nobody hears anybody and its Lease is not fresh.
    LeaseExpired,
}

impl NodeReason {
    /// Whether the node counts.
    pub fn counts(self) -> bool {
        matches!(self, Self::Candidate | Self::Suspected)
    }

    /// A fixed snake_case name for a metric label.
    pub fn label(self) -> &'static str {
        match self {
            Self::Candidate => "candidate",
            Self::Suspected => "suspected",
            Self::Dead => "dead",
            Self::Left => "left",
            Self::Fenced => "fenced",
            Self::Isolated => "isolated",
            Self::LeaseStale => "lease_stale",
            Self::LeaseExpired => "lease_expired",
        }
    }
}

/// Something to log (and count).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// `node` was suspected; `by` is the monitor that stopped hearing it.
    Suspected {
        /// The suspect.
        node: String,
        /// Its accuser.
        by: String,
    },
    /// `node` was declared dead: the suspicion by `by` stood.
    Dead {
        /// The dead node.
        node: String,
        /// The monitor that first suspected it.
        by: String,
    },
    /// `node` is alive again: it refuted a suspicion or came back after being dead.
    Alive {
        /// The node.
        node: String,
    },
    /// `node` left on purpose.
    Left {
        /// The node.
        node: String,
    },
    /// `node` changed its stand-down flags (fenced, isolated, or back).
    StandDown {
        /// The node.
        node: String,
        /// Its flags now.
        stand_down: StandDown,
    },
    /// This node heard it was suspected or declared dead and refuted it.
    Refuted {
        /// The new incarnation.
        incarnation: u64,
    },
    /// This node's own state changed: fenced, isolated, or back to normal (rejoined).
    OwnState {
        /// The state before.
        from: OwnState,
        /// The state now.
        to: OwnState,
    },
    /// The basis of the candidates changed (nobody hears anybody, or heartbeats are back).
    Basis {
        /// The basis now.
        to: Basis,
    },
}
