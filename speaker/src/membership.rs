//! This speaker's part in the heartbeat protocol: the sans-IO core of `metallb-liveness`, the
//! UDP socket it speaks through, and the facts it takes from the speaker Leases. The state task
//! owns it and calls it; it never runs on its own.
//!
//! Each speaker's Lease carries, in annotations written with its renewals (no extra request),
//! where its heartbeats go ([`ADDRESS_ANNOTATION`]) and how many peers it hears
//! ([`PEERS_ANNOTATION`]); the core reads the second to tell a speaker cut from its peers from a
//! heartbeat network that is down for everybody.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use metallb_liveness::{Config, Event, Key, LeaseView, Liveness, OwnState, Renewal, View};
use metallb_runtime::lease::{self, ObservedLease};
use serde_json::{Value, json};
use tokio::net::UdpSocket;
use tokio::sync::watch;
use tracing::{debug, info, warn};

/// The Lease annotation naming the address a speaker receives heartbeats on.
pub const ADDRESS_ANNOTATION: &str = "metallb.io/heartbeat-address";

/// The Lease annotation counting the peers a speaker heard directly.
pub const PEERS_ANNOTATION: &str = "metallb.io/heartbeat-peers";

/// The largest datagram read; the core's packets are far smaller.
pub const MAX_DATAGRAM: usize = 65_536;

/// The liveness core with its socket and the peers' addresses.
#[derive(Debug)]
pub struct Membership {
    node: String,
    core: Liveness,
    socket: UdpSocket,
    /// Where each peer receives heartbeats, from its Lease.
    addresses: BTreeMap<String, SocketAddr>,
    /// The nodes whose Leases the core was told of.
    members: BTreeSet<String>,
    /// The renewer's outcome the core heard last.
    renewal: lease::Renewal,
    annotations: watch::Sender<BTreeMap<String, String>>,
}

impl Membership {
    /// Binds the heartbeat port on `host_ip`'s family and starts the core for `node`. The
    /// receiver carries the annotations to write with each renewal of this node's Lease.
    ///
    /// # Errors
    ///
    /// When the port cannot be bound or the configuration does not validate.
    pub async fn start(
        node: &str,
        secret: &[u8],
        host_ip: IpAddr,
        port: u16,
        config: Config,
    ) -> anyhow::Result<(Self, watch::Receiver<BTreeMap<String, String>>)> {
        let any = match host_ip {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        };
        let socket = UdpSocket::bind(SocketAddr::new(any, port)).await?;
        // Wall-clock microseconds: a restarted speaker's sequence numbers and incarnation
        // start above the ones its peers remember.
        let boot = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(1, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
        let core = Liveness::new(config, node, Key::derive(secret), boot, Instant::now())?;
        let address = SocketAddr::new(host_ip, port).to_string();
        let (annotations, receiver) = watch::channel(BTreeMap::from([
            (ADDRESS_ANNOTATION.to_owned(), address),
            (PEERS_ANNOTATION.to_owned(), "0".to_owned()),
        ]));
        info!(%node, %host_ip, port, "heartbeats on");
        let membership = Membership {
            node: node.to_owned(),
            core,
            socket,
            addresses: BTreeMap::new(),
            members: BTreeSet::new(),
            renewal: lease::Renewal::default(),
            annotations,
        };
        Ok((membership, receiver))
    }

    /// Receives the next datagram into `buf`; cancel-safe.
    pub async fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.socket.recv_from(buf).await.map(|(len, _)| len)
    }

    /// Hands a received datagram to the core.
    pub fn packet(&mut self, now: Instant, bytes: &[u8]) {
        if let Err(error) = self.core.handle_packet(now, bytes) {
            debug!(reason = error.label(), "heartbeat dropped");
        }
        self.flush(now);
    }

    /// When [`Membership::tick`] has work next.
    pub fn deadline(&self) -> Option<Instant> {
        self.core.poll_timeout()
    }

    /// Runs the core's timers.
    pub fn tick(&mut self, now: Instant) {
        self.core.handle_timeout(now);
        self.flush(now);
    }

    /// Tells the core every speaker Lease seen: members, their renewals and what they hear.
    pub fn leases(&mut self, now: Instant, leases: &BTreeMap<String, ObservedLease>) {
        for (node, observed) in leases {
            let annotation = |key: &str| observed.annotations.get(key);
            let view = LeaseView {
                renewed_at: observed.renewed_at,
                expires_at: observed.expires_at,
                peers: annotation(PEERS_ANNOTATION).and_then(|p| p.parse().ok()),
            };
            self.core.observe_lease(now, node, view);
            match annotation(ADDRESS_ANNOTATION).map(|a| a.parse::<SocketAddr>()) {
                Some(Ok(address)) => {
                    self.addresses.insert(node.clone(), address);
                }
                Some(Err(_)) => warn!(%node, "the node's heartbeat address does not parse"),
                None => {}
            }
        }
        let gone: Vec<String> = self
            .members
            .iter()
            .filter(|node| !leases.contains_key(*node))
            .cloned()
            .collect();
        for node in gone {
            self.core.forget_lease(&node);
            self.addresses.remove(&node);
        }
        self.members = leases.keys().cloned().collect();
        self.flush(now);
    }

    /// Tells the core how this node's own renewal went, when the renewer reports something
    /// new.
    pub fn renewal(&mut self, now: Instant, renewal: lease::Renewal) {
        let outcome = if renewal.last_success != self.renewal.last_success {
            renewal
                .last_success
                .map(|sent_at| Renewal::Succeeded { sent_at })
        } else if renewal.failures > self.renewal.failures {
            Some(Renewal::Failed)
        } else {
            None
        };
        self.renewal = renewal;
        if let Some(outcome) = outcome {
            self.core.renewal(now, outcome);
            self.flush(now);
        }
    }

    /// The nodes counted alive: the planner's candidates.
    pub fn candidates(&self, now: Instant) -> BTreeSet<String> {
        self.core.candidates(now)
    }

    /// This node's name.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// Everything the core knows, for `show` and metrics.
    pub fn view(&self, now: Instant) -> View {
        self.core.view(now)
    }

    /// Leaves on purpose: peers drop this node at once.
    pub fn leave(&mut self, now: Instant) {
        self.core.leave(now);
        self.flush(now);
    }

    /// Sends what the core owes, logs its events and updates the Lease annotations.
    fn flush(&mut self, now: Instant) {
        while let Some(transmit) = self.core.poll_transmit() {
            let Some(address) = self.addresses.get(&transmit.to) else {
                debug!(node = %transmit.to, "no heartbeat address for the node yet");
                continue;
            };
            // A full send buffer drops the heartbeat, as the network may: the protocol
            // tolerates losses, and the state task must never wait on a socket.
            if let Err(error) = self.socket.try_send_to(&transmit.bytes, *address) {
                debug!(node = %transmit.to, %error, "heartbeat not sent");
            }
        }
        while let Some(event) = self.core.poll_event() {
            log(&event);
        }
        let peers = self.core.lease_peers(now).to_string();
        self.annotations.send_if_modified(|annotations| {
            let old = annotations.insert(PEERS_ANNOTATION.to_owned(), peers.clone());
            old.as_ref() != Some(&peers)
        });
    }
}

/// The liveness view for `metallb-speaker show liveness`: this node's state and why it
/// drains (`draining`), how candidates are counted, and every other member with why it counts
/// or not.
pub fn show(node: &str, view: &View, draining: Option<String>) -> Value {
    let own = match &view.own {
        OwnState::Normal => "normal".to_owned(),
        OwnState::Fenced { reason } => format!(
            "fenced: last renewal {}, while {} renewed {:?} ago",
            reason
                .renewal_age
                .map_or("never".to_owned(), |age| format!("{age:?} ago")),
            reason.vouched_by,
            reason.peer_renewal_age
        ),
        OwnState::Isolated { reason } => format!(
            "isolated: hears no peer while {} hears {}",
            reason.heard_by, reason.peers
        ),
    };
    let nodes: Vec<Value> = view
        .nodes
        .iter()
        .map(|(name, n)| {
            json!({
                "name": name,
                "status": format!("{:?}", n.status).to_lowercase(),
                "reason": format!("{:?}", n.reason),
                "heard": n.heard,
                "incarnation": n.incarnation,
            })
        })
        .collect();
    json!({
        "node": node,
        "own": own,
        "draining": draining,
        "basis": format!("{:?}", view.basis).to_lowercase(),
        "candidates": view.candidates,
        "nodes": nodes,
    })
}

/// The liveness view without heartbeats: the nodes whose Lease is fresh count.
pub fn show_leases(
    node: &str,
    own_fresh: bool,
    alive: &BTreeSet<String>,
    draining: Option<String>,
) -> Value {
    let own = if own_fresh {
        "normal"
    } else {
        "lease not renewed"
    };
    let nodes: Vec<Value> = alive
        .iter()
        .filter(|name| *name != node)
        .map(|name| json!({ "name": name, "status": "alive", "reason": "LeaseFresh" }))
        .collect();
    json!({
        "node": node,
        "own": own,
        "draining": draining,
        "basis": "leases",
        "candidates": alive,
        "nodes": nodes,
    })
}

/// One log line per event: deaths, fencing and rejoining at info, the rest at debug.
fn log(event: &Event) {
    match event {
        Event::Dead { node, by } => info!(%node, %by, "speaker declared dead"),
        Event::Left { node } => info!(%node, "speaker left"),
        Event::Alive { node } => info!(%node, "speaker alive"),
        Event::OwnState { from, to } => warn!(?from, ?to, "this speaker's liveness state changed"),
        Event::Basis { to } => warn!(?to, "the candidates are now counted differently"),
        other => debug!(event = ?other, "liveness"),
    }
}
