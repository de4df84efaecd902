//! The fencing and isolation rules: from what this speaker knows of the API (its own renewals,
//! the Leases it observes, what peers claim in their heartbeats) to its own state and to the
//! basis on which it counts candidates. Pure functions of their arguments, one rule each, so
//! the table tests read like the rules.
//!
//! 1. **Fenced**: the last successful renewal is older than `lease_duration - fence_margin`
//!    (or there never was one) while a peer heard within a renewal interval says its own is
//!    younger than two renewal intervals ([`Config::vouch_within`]): that peer's API works
//!    now. This speaker is silent before its Lease expires in anyone's eyes. Peers must have
//!    vouched for one and a half renewal intervals without a break, so that at the end of an
//!    outage nobody fences while waiting for its next renewal.
//! 2. **Control-plane outage**: nobody can renew, so nobody vouches, so nobody fences; the
//!    candidates keep following the heartbeats alone, and Leases that did not expire while
//!    the API was proven working are never held against anyone. Nothing moves.
//! 3. **Isolated**: this speaker hears no peer (none within the detection time) while a Lease
//!    shows that another speaker hears peers: written after our silence began and counting at
//!    least one, or counting two or more (then it hears someone besides us). It stands down;
//!    the others, who hear each other, have declared it dead.
//! 4. **Nobody hears anybody**: this speaker hears no peer and every other live Lease, written
//!    after our silence began, counts none: heartbeats are broken for everybody, so every
//!    speaker counts the nodes whose Lease is fresh, as MetalLB without memberlist does.
//!
//! A Lease is *proven stale* when it expired before this speaker's own last successful
//! renewal: the API worked then, and the holder did not renew. Only proven-stale Leases count
//! against their holder, so an outage, which freezes everybody's Lease, moves nothing.

use std::{collections::BTreeMap, time::Duration, time::Instant};

use crate::config::Config;

/// A peer's Lease as this speaker's watch last saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeaseView {
    /// When this speaker saw the last renewal (its own clock).
    pub renewed_at: Instant,
    /// `renewed_at` plus the Lease's duration.
    pub expires_at: Instant,
    /// The peers the holder heard directly when it wrote the renewal (the value of
    /// [`Liveness::lease_peers`](crate::Liveness::lease_peers) it wrote); `None` when the
    /// Lease carries none.
    pub peers: Option<u16>,
}

impl LeaseView {
    /// Whether the Lease expired while the API demonstrably worked: before `last_renewal`,
    /// this speaker's own last successful renewal.
    pub fn proven_stale(&self, last_renewal: Option<Instant>) -> bool {
        last_renewal.is_some_and(|at| self.expires_at <= at)
    }
}

/// This speaker's standing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OwnState {
    /// It counts itself as a candidate.
    Normal,
    /// It cannot prove it reaches the API while a peer can: it announces nothing.
    Fenced {
        /// Why.
        reason: FenceReason,
    },
    /// It hears no peer while the others hear each other: it announces nothing.
    Isolated {
        /// Why.
        reason: IsolationReason,
    },
}

impl OwnState {
    /// Whether this speaker may announce.
    pub fn is_normal(&self) -> bool {
        matches!(self, Self::Normal)
    }
}

/// Why this speaker fenced itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FenceReason {
    /// Age of the last successful renewal; `None`: none since the start.
    pub renewal_age: Option<Duration>,
    /// A peer that, in a heartbeat within the detection time, said its renewals succeed.
    pub vouched_by: String,
    /// The age of that peer's last renewal, as it said.
    pub peer_renewal_age: Duration,
}

/// Why this speaker stands down as isolated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IsolationReason {
    /// A node whose Lease shows it hears peers.
    pub heard_by: String,
    /// How many it hears.
    pub peers: u16,
}

/// How the candidates are counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Basis {
    /// Heartbeats: speakers not dead, not standing down, Lease not proven stale.
    Heartbeats,
    /// Nobody hears anybody: speakers whose Lease is fresh on this clock.
    Leases,
}

/// What a peer said in its last direct heartbeat about its own renewals.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Claim {
    /// When the heartbeat arrived.
    pub at: Instant,
    /// The age of its last successful renewal when it sent the heartbeat.
    pub renewal_age: Option<Duration>,
}

/// A peer that vouches that the API works now: heard within a renewal interval, its last
/// successful renewal (as it said, plus the time since) younger than
/// [`Config::vouch_within`]. The freshest such claim, with its age.
pub fn vouch(
    config: &Config,
    now: Instant,
    claims: &BTreeMap<String, Claim>,
) -> Option<(String, Duration)> {
    claims
        .iter()
        .filter(|(_, claim)| now.saturating_duration_since(claim.at) <= config.renewal_interval())
        .filter_map(|(node, claim)| {
            let age = claim.renewal_age? + now.saturating_duration_since(claim.at);
            (age < config.vouch_within()).then_some((node, age))
        })
        .min_by_key(|(_, age)| *age)
        .map(|(node, age)| (node.clone(), age))
}

/// Rule 1: our renewals are stale while a peer vouches, and peers have vouched without a
/// break since `vouching_since` for at least [`Config::fence_after_vouch`]. That wait is
/// what keeps the end of an outage from fencing anybody: the first speaker to renew vouches
/// at once, and every other one renews within a renewal interval.
pub fn fence(
    config: &Config,
    now: Instant,
    renewal_age: Option<Duration>,
    vouch: Option<(String, Duration)>,
    vouching_since: Option<Instant>,
) -> Option<FenceReason> {
    if renewal_age.is_some_and(|age| age < config.api_stale_after()) {
        return None;
    }
    let since = vouching_since?;
    if now.saturating_duration_since(since) < config.fence_after_vouch() {
        return None;
    }
    vouch.map(|(node, age)| FenceReason {
        renewal_age,
        vouched_by: node,
        peer_renewal_age: age,
    })
}

/// The Leases of nodes other than `me` that are not proven stale, with whether each was
/// written after `silence_since` plus the detection time (so its count reflects our silence).
fn live_leases<'a>(
    config: &'a Config,
    me: &'a str,
    leases: &'a BTreeMap<String, LeaseView>,
    last_renewal: Option<Instant>,
    silence_since: Instant,
) -> impl Iterator<Item = (&'a String, &'a LeaseView, bool)> + 'a {
    let written_after = silence_since + config.detection();
    leases
        .iter()
        .filter(move |(node, lease)| *node != me && !lease.proven_stale(last_renewal))
        .map(move |(node, lease)| (node, lease, lease.renewed_at >= written_after))
}

/// Rule 3, for a speaker that hears nobody since `silence_since`: a Lease showing that its
/// holder hears peers other than us.
pub fn isolation(
    config: &Config,
    me: &str,
    leases: &BTreeMap<String, LeaseView>,
    last_renewal: Option<Instant>,
    silence_since: Instant,
) -> Option<IsolationReason> {
    live_leases(config, me, leases, last_renewal, silence_since)
        .filter_map(|(node, lease, after)| {
            let peers = lease.peers?;
            (peers >= 2 || (after && peers >= 1)).then_some((node, peers))
        })
        .max_by_key(|(_, peers)| *peers)
        .map(|(node, peers)| IsolationReason {
            heard_by: node.clone(),
            peers,
        })
}

/// Rule 4, for a speaker that hears nobody since `silence_since`: every other live Lease was
/// written since and hears nobody either.
pub fn nobody_hears_anybody(
    config: &Config,
    me: &str,
    leases: &BTreeMap<String, LeaseView>,
    last_renewal: Option<Instant>,
    silence_since: Instant,
) -> bool {
    let mut any = false;
    let all =
        live_leases(config, me, leases, last_renewal, silence_since).all(|(_, lease, after)| {
            any = true;
            after && lease.peers == Some(0)
        });
    any && all
}

/// What this speaker knows, for [`decide`].
#[derive(Clone, Debug)]
pub struct Facts<'a> {
    /// This node's name.
    pub me: &'a str,
    /// The current time.
    pub now: Instant,
    /// When this speaker last renewed its Lease successfully (when the renewal was sent).
    pub last_renewal: Option<Instant>,
    /// The peer that vouches for the API now ([`vouch`]).
    pub vouch: Option<(String, Duration)>,
    /// Since when peers have vouched without a break.
    pub vouching_since: Option<Instant>,
    /// The Leases this speaker observes.
    pub leases: &'a BTreeMap<String, LeaseView>,
    /// Since when no peer has been heard, if none has within the detection time and there are
    /// peers to hear.
    pub silence_since: Option<Instant>,
}

/// All rules in order: fenced, isolated, nobody hears anybody, normal.
pub fn decide(config: &Config, facts: &Facts<'_>) -> (OwnState, Basis) {
    let renewal_age = facts
        .last_renewal
        .map(|at| facts.now.saturating_duration_since(at));
    let vouch = facts.vouch.clone();
    if let Some(reason) = fence(config, facts.now, renewal_age, vouch, facts.vouching_since) {
        return (OwnState::Fenced { reason }, Basis::Heartbeats);
    }
    let Some(silence) = facts.silence_since else {
        return (OwnState::Normal, Basis::Heartbeats);
    };
    if let Some(reason) = isolation(config, facts.me, facts.leases, facts.last_renewal, silence) {
        return (OwnState::Isolated { reason }, Basis::Heartbeats);
    }
    if nobody_hears_anybody(config, facts.me, facts.leases, facts.last_renewal, silence) {
        return (OwnState::Normal, Basis::Leases);
    }
    (OwnState::Normal, Basis::Heartbeats)
}
