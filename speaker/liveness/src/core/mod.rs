//! One speaker's liveness core: heartbeats on the ring, probes, SWIM-style suspicion and
//! refutation with incarnations, news piggybacked and forwarded at once, and the rules of
//! [`crate::rules`] applied at every tick.

use std::{
    collections::{BTreeMap, BTreeSet, VecDeque},
    time::{Duration, Instant},
};

use thiserror::Error;

mod gossip;

use crate::{
    config::{Config, ConfigError},
    packet::{Entry, Key, Kind, Packet, PacketError, StandDown, Status},
    ring::node_id,
    rules::{self, Basis, Claim, Facts, LeaseView, OwnState},
    view::{Event, NodeReason, NodeView, View},
};

/// A datagram to send to a node's heartbeat port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transmit {
    /// The receiving node's name; the driver knows its address.
    pub to: String,
    /// The packet.
    pub bytes: Vec<u8>,
}

/// The outcome of one Lease renewal, as the driver's renewer reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Renewal {
    /// The write succeeded; `sent_at` is when it was sent (the conservative end).
    Succeeded {
        /// When the request went out.
        sent_at: Instant,
    },
    /// The write failed or timed out.
    Failed,
}

/// Why an authentic-looking datagram was dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum ReceiveError {
    /// Not a packet, or not ours (see [`PacketError`]).
    #[error(transparent)]
    Packet(#[from] PacketError),
    /// Addressed to another node.
    #[error("addressed to node {0:#018x}, not to this one")]
    NotForUs(u64),
    /// The sender holds no Lease we know of (or is this node).
    #[error("unknown sender {0:#018x}")]
    UnknownSender(u64),
    /// A sequence number at or below the last one accepted from that sender.
    #[error("sequence {sequence} is not above the last accepted {last}")]
    Replayed {
        /// The last accepted sequence.
        last: u64,
        /// The packet's.
        sequence: u64,
    },
}

impl ReceiveError {
    /// A fixed snake_case name for a drop counter's label.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Packet(error) => error.label(),
            Self::NotForUs(_) => "not_for_us",
            Self::UnknownSender(_) => "unknown_sender",
            Self::Replayed { .. } => "replayed",
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Probe {
    until: Instant,
    next: Instant,
}

#[derive(Clone, Debug)]
struct Member {
    name: String,
    incarnation: u64,
    status: Status,
    stand_down: StandDown,
    accuser: u64,
    /// When the status last changed here.
    since: Instant,
    last_sequence: Option<u64>,
    last_heard: Option<Instant>,
    /// Set while this node expects its heartbeats: since when.
    monitored_since: Option<Instant>,
    probe: Option<Probe>,
    /// When we last told it that it is dead here.
    noticed_at: Option<Instant>,
}

/// Rank of a status at one incarnation: a higher one overrides a lower (SWIM's order).
fn rank(status: Status) -> u8 {
    match status {
        Status::Alive => 0,
        Status::Suspect => 1,
        Status::Dead => 2,
        Status::Left => 3,
    }
}

/// One speaker's liveness. See the crate documentation for how to drive it.
#[derive(Debug)]
pub struct Liveness {
    config: Config,
    key: Key,
    me: String,
    my_id: u64,
    incarnation: u64,
    sequence: u64,
    stand_down: StandDown,
    leaving: bool,
    started: Instant,
    last_renewal: Option<Instant>,
    /// When the current run of successful renewals began (none after a failure).
    renewing_since: Option<Instant>,
    renewal_failures: u32,
    members: BTreeMap<u64, Member>,
    ids: BTreeMap<String, u64>,
    leases: BTreeMap<String, LeaseView>,
    claims: BTreeMap<String, Claim>,
    vouching_since: Option<Instant>,
    ring_dirty: bool,
    targets: Vec<u64>,
    monitored: Vec<u64>,
    suspects: BTreeSet<u64>,
    /// News to piggyback, by node, with the rounds it still rides along.
    news: BTreeMap<u64, (Entry, u8)>,
    urgent: bool,
    next_tick: Instant,
    last_round: Option<Instant>,
    last_heard_any: Option<Instant>,
    own: OwnState,
    basis: Basis,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
}

impl Liveness {
    /// The core of node `me`. `boot` must grow across restarts of this speaker (the driver
    /// passes the wall-clock time in microseconds since the epoch at start): it is the first
    /// sequence number and incarnation, so that peers accept a restarted speaker at once.
    ///
    /// # Errors
    ///
    /// A [`Config`] that does not validate.
    pub fn new(
        config: Config,
        me: &str,
        key: Key,
        boot: u64,
        now: Instant,
    ) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(Self {
            config,
            key,
            me: me.to_owned(),
            my_id: node_id(me),
            incarnation: boot,
            sequence: boot,
            stand_down: StandDown::default(),
            leaving: false,
            started: now,
            last_renewal: None,
            renewing_since: None,
            renewal_failures: 0,
            members: BTreeMap::new(),
            ids: BTreeMap::new(),
            leases: BTreeMap::new(),
            claims: BTreeMap::new(),
            vouching_since: None,
            ring_dirty: true,
            targets: Vec::new(),
            monitored: Vec::new(),
            suspects: BTreeSet::new(),
            news: BTreeMap::new(),
            urgent: false,
            next_tick: now,
            last_round: None,
            last_heard_any: None,
            own: OwnState::Normal,
            basis: Basis::Heartbeats,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
        })
    }

    /// A speaker Lease was seen (created or renewed) by the watch. Its holder becomes a
    /// member: heartbeats from it are accepted and it gets a place on the ring.
    pub fn observe_lease(&mut self, now: Instant, node: &str, lease: LeaseView) {
        match self.leases.get_mut(node) {
            Some(known) => *known = lease,
            None => {
                self.leases.insert(node.to_owned(), lease);
            }
        }
        if node == self.me || self.ids.contains_key(node) {
            return;
        }
        let id = node_id(node);
        self.ids.insert(node.to_owned(), id);
        self.members.insert(
            id,
            Member {
                name: node.to_owned(),
                incarnation: 0,
                status: Status::Alive,
                stand_down: StandDown::default(),
                accuser: id,
                since: now,
                last_sequence: None,
                last_heard: None,
                monitored_since: None,
                probe: None,
                noticed_at: None,
            },
        );
        // The ring is rebuilt once at the next timeout or packet, not per Lease: at start
        // every Lease arrives at once.
        self.ring_dirty = true;
    }

    /// A speaker Lease was deleted (a planned exit, or the node is gone): it is no member.
    pub fn forget_lease(&mut self, node: &str) {
        self.leases.remove(node);
        if let Some(id) = self.ids.remove(node) {
            self.members.remove(&id);
            self.suspects.remove(&id);
            self.news.remove(&id);
            self.claims.remove(node);
            self.ring_dirty = true;
        }
    }

    /// This node's own Lease renewal finished.
    pub fn renewal(&mut self, now: Instant, outcome: Renewal) {
        match outcome {
            Renewal::Succeeded { sent_at } => {
                self.last_renewal = Some(self.last_renewal.map_or(sent_at, |at| at.max(sent_at)));
                self.renewing_since.get_or_insert(sent_at);
                self.renewal_failures = 0;
            }
            Renewal::Failed => {
                self.renewing_since = None;
                self.renewal_failures = self.renewal_failures.saturating_add(1);
            }
        }
        self.refresh_state(now);
    }

    /// The value to write with this node's next Lease renewal (one annotation, no extra
    /// request): how many peers it heard directly within the detection time.
    pub fn lease_peers(&self, now: Instant) -> u16 {
        let heard = self.members.values().filter(|m| self.heard(m, now)).count();
        u16::try_from(heard).unwrap_or(u16::MAX)
    }

    /// Leaves on purpose (SIGTERM): peers drop this node at once instead of after the
    /// detection time. Keep driving the core for a few intervals so the news goes out.
    pub fn leave(&mut self, now: Instant) {
        self.leaving = true;
        self.push_self_news(Status::Left);
        self.refresh_state(now);
    }

    /// Processes a datagram received on the heartbeat port.
    ///
    /// # Errors
    ///
    /// See [`ReceiveError`]: the core is unchanged then.
    pub fn handle_packet(&mut self, now: Instant, bytes: &[u8]) -> Result<(), ReceiveError> {
        let packet = Packet::decode(bytes, &self.key)?;
        if packet.to != self.my_id {
            return Err(ReceiveError::NotForUs(packet.to));
        }
        let member = self
            .members
            .get_mut(&packet.from)
            .ok_or(ReceiveError::UnknownSender(packet.from))?;
        if let Some(last) = member.last_sequence.filter(|&last| packet.sequence <= last) {
            return Err(ReceiveError::Replayed {
                last,
                sequence: packet.sequence,
            });
        }
        member.last_sequence = Some(packet.sequence);
        member.last_heard = Some(now);
        member.probe = None;
        self.last_heard_any = Some(now);
        let renewal_age = packet.api_age_ms.map(|ms| Duration::from_millis(ms.into()));
        self.claims.insert(
            member.name.clone(),
            Claim {
                at: now,
                renewal_age,
            },
        );
        self.apply(
            now,
            Entry {
                node: packet.from,
                incarnation: packet.incarnation,
                status: Status::Alive,
                stand_down: packet.stand_down,
                accuser: packet.from,
            },
        );
        for entry in &packet.entries {
            self.apply(now, *entry);
        }
        if packet.kind == Kind::Probe {
            self.send(now, packet.from, Kind::Heartbeat, self.current_news());
        }
        self.notice_if_dead(now, packet.from, packet.incarnation);
        self.refresh_ring(now);
        self.flush_urgent(now);
        Ok(())
    }

    /// Runs the timers: ticks, probes, suspicions, and the rules. Call it at
    /// [`Liveness::poll_timeout`], or earlier (it does nothing early).
    pub fn handle_timeout(&mut self, now: Instant) {
        self.refresh_ring(now);
        let expired: Vec<u64> = self
            .suspects
            .iter()
            .copied()
            .filter(|id| self.members[id].since + self.config.suspicion <= now)
            .collect();
        for id in expired {
            let m = &self.members[&id];
            let entry = self.entry_of(id, m, Status::Dead);
            self.apply(now, entry);
        }
        for id in self.monitored.clone() {
            self.check_monitored(now, id);
        }
        self.refresh_ring(now);
        if now >= self.next_tick {
            self.refresh_state(now);
            self.round(now);
            // From now, not from the missed deadline: a late driver does not burst.
            self.next_tick = now + self.config.interval;
        }
        self.flush_urgent(now);
    }

    /// The next packet to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next event to log.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`Liveness::handle_timeout`] has work next. Packets owed at once after any call
    /// are queued already: drain [`Liveness::poll_transmit`] after each.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut next = self.next_tick;
        if self.urgent
            && let Some(last) = self.last_round
        {
            next = next.min(last + self.config.min_gap);
        }
        // A member forgotten since the last timeout may still be listed until the ring is
        // rebuilt.
        for m in self.monitored.iter().filter_map(|id| self.members.get(id)) {
            // Only a live node is probed; a suspect has its suspicion timer below.
            if m.status != Status::Alive {
                continue;
            }
            let at = match m.probe {
                Some(probe) => probe.next.min(probe.until),
                None => self.silence_deadline(m),
            };
            next = next.min(at);
        }
        for id in &self.suspects {
            next = next.min(self.members[id].since + self.config.suspicion);
        }
        Some(next)
    }

    /// This node's state.
    pub fn own_state(&self) -> &OwnState {
        &self.own
    }

    /// The nodes counted alive: the planner's `Cluster::alive`.
    pub fn candidates(&self, now: Instant) -> BTreeSet<String> {
        self.view(now).candidates
    }

    /// Everything for `show`, metrics and the planner.
    pub fn view(&self, now: Instant) -> View {
        let mut nodes = BTreeMap::new();
        let mut candidates = BTreeSet::new();
        if self.own.is_normal() && !self.leaving {
            candidates.insert(self.me.clone());
        }
        for m in self.members.values() {
            let lease = self.leases.get(&m.name);
            let reason = match self.basis {
                Basis::Leases if lease.is_some_and(|l| l.expires_at > now) => NodeReason::Candidate,
                Basis::Leases => NodeReason::LeaseExpired,
                Basis::Heartbeats => match m.status {
                    Status::Dead => NodeReason::Dead,
                    Status::Left => NodeReason::Left,
                    _ if m.stand_down.fenced => NodeReason::Fenced,
                    _ if m.stand_down.isolated => NodeReason::Isolated,
                    _ if lease.is_none_or(|l| l.proven_stale(self.proving_renewal())) => {
                        NodeReason::LeaseStale
                    }
                    Status::Suspect => NodeReason::Suspected,
                    Status::Alive => NodeReason::Candidate,
                },
            };
            if reason.counts() {
                candidates.insert(m.name.clone());
            }
            let view = NodeView {
                status: m.status,
                incarnation: m.incarnation,
                stand_down: m.stand_down,
                heard: self.heard(m, now),
                reason,
            };
            nodes.insert(m.name.clone(), view);
        }
        View {
            own: self.own.clone(),
            basis: self.basis,
            candidates,
            nodes,
        }
    }

    /// The last renewal that proves the API worked long enough for every live peer to have
    /// renewed too: renewals have succeeded without a break for [`Config::fence_after_vouch`].
    /// At the end of an outage the first speaker to renew sees every other Lease expired; that
    /// proves nothing until the others had their renewal interval, or it would count only
    /// itself for a moment and take their IPs.
    fn proving_renewal(&self) -> Option<Instant> {
        let (since, last) = (self.renewing_since?, self.last_renewal?);
        let long_enough = last.saturating_duration_since(since) >= self.config.fence_after_vouch();
        long_enough.then_some(last)
    }

    /// Renewals that failed since the last success.
    pub fn renewal_failures(&self) -> u32 {
        self.renewal_failures
    }

    fn heard(&self, m: &Member, now: Instant) -> bool {
        m.last_heard
            .is_some_and(|at| now.saturating_duration_since(at) <= self.config.detection())
    }

    fn silence_deadline(&self, m: &Member) -> Instant {
        let since = m.monitored_since.unwrap_or(self.started);
        m.last_heard.map_or(since, |at| at.max(since)) + self.config.detection()
    }

    /// Re-applies the rules; a change of this node's stand-down flags is news.
    fn refresh_state(&mut self, now: Instant) {
        let heard_any = self
            .last_heard_any
            .unwrap_or(self.started)
            .max(self.started);
        let peers = self
            .members
            .values()
            .any(|m| !matches!(m.status, Status::Left));
        let silence_since =
            (peers && now >= heard_any + self.config.detection()).then_some(heard_any);
        let vouch = rules::vouch(&self.config, now, &self.claims);
        if vouch.is_none() {
            self.vouching_since = None;
        } else if self.vouching_since.is_none() {
            self.vouching_since = Some(now);
        }
        let facts = Facts {
            me: &self.me,
            now,
            last_renewal: self.last_renewal,
            vouch,
            vouching_since: self.vouching_since,
            leases: &self.leases,
            silence_since,
        };
        let (own, basis) = rules::decide(&self.config, &facts);
        if std::mem::discriminant(&own) != std::mem::discriminant(&self.own) {
            self.events.push_back(Event::OwnState {
                from: self.own.clone(),
                to: own.clone(),
            });
        }
        if basis != self.basis {
            self.events.push_back(Event::Basis { to: basis });
        }
        let stand_down = StandDown {
            fenced: matches!(own, OwnState::Fenced { .. }),
            isolated: matches!(own, OwnState::Isolated { .. }),
        };
        self.own = own;
        self.basis = basis;
        if stand_down != self.stand_down && !self.leaving {
            self.stand_down = stand_down;
            self.incarnation += 1;
            self.push_self_news(Status::Alive);
        }
    }
}
