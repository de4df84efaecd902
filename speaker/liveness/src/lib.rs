//! Sans-IO speaker liveness and fencing: who counts as alive for the layer 2 election and BGP,
//! decided from authenticated UDP heartbeats between speakers and from the speakers' Lease
//! renewals, so that a dead speaker's IPs move in well under a second, a speaker cut from the
//! API falls silent before its Lease expires, and a control-plane outage moves nothing.
//!
//! Nothing here touches a socket or reads a clock: the driver passes datagrams, Lease facts
//! and `now` in, and takes datagrams, the [`View`] and [`Event`]s out.
//!
//! # Protocol
//!
//! - **Topology.** Members are the holders of speaker Leases. They sit on a ring ordered by
//!   [`node_id`] (SHA-256 of the name); each sends a heartbeat every [`Config::interval`] to
//!   its successors at distances 1, 2, 4, ... and so is monitored by as many predecessors:
//!   `ceil(log2 N)` packets per interval, 10 at 1,000 nodes. Dead nodes keep their place, so
//!   the ring does not reshuffle on a death and a node wrongly held dead (a healed partition)
//!   keeps hearing that it is, and refutes; nodes that left are off the ring. Alternatives
//!   considered: all-to-all heartbeats (N - 1 packets per interval) and memberlist-style
//!   random probing (constant traffic, but detection in seconds and a full membership
//!   exchange on join).
//! - **Detection.** A monitor that misses [`Config::missed`] heartbeats probes the silent
//!   node a few times for [`Config::probe`] (a probe asks for an immediate heartbeat back, and
//!   also repairs monitors whose rings briefly disagree); unanswered, it suspects it and tells
//!   the suspect directly. A suspicion that stands for [`Config::suspicion`] becomes a death.
//!   With the defaults a crash is declared within 0.8 s, and a monitor falsely suspects a live
//!   node only when 3 heartbeats and 5 probe exchanges are all lost.
//! - **Dissemination (SWIM).** News is a node's status (alive, suspect, dead, left) at an
//!   incarnation, with its stand-down flags; only a node raises its own incarnation, to refute
//!   a suspicion or announce new flags. News that changes what a node knows is forwarded at
//!   once to all its targets (batched at most every [`Config::min_gap`]) and rides along in
//!   the next [`Config::repeat`] rounds, so it crosses the cluster in about `log2 N` network
//!   hops. A node heard from while held dead is told so, and refutes.
//! - **Authentication.** Every packet carries HMAC-SHA256 (truncated to 16 bytes) under a key
//!   derived from the membership secret ([`Key::derive`]), its receiver's ID and a sequence
//!   number that grows per sender across restarts; a bad MAC, a wrong length, another
//!   receiver, an unknown sender or a replayed sequence is dropped ([`ReceiveError`]).
//! - **Fencing and isolation** follow the rules of [`rules`]; each heartbeat carries the age of
//!   the sender's last successful Lease renewal, and each renewal writes
//!   [`Liveness::lease_peers`], the peers the node hears.
//!
//! # Driving it
//!
//! - On start: [`Liveness::new`] with the node name, the key and `boot` (wall-clock µs).
//! - For every speaker Lease the watch delivers: [`Liveness::observe_lease`] (holder, when it
//!   was seen renewed, when it expires on this clock, the annotated peer count), and
//!   [`Liveness::forget_lease`] when one is deleted.
//! - After every renewal attempt: [`Liveness::renewal`]; write [`Liveness::lease_peers`]
//!   with the next renewal (an annotation on the same write).
//! - For every datagram: [`Liveness::handle_packet`] (count drops by
//!   [`ReceiveError::label`]); at [`Liveness::poll_timeout`]: [`Liveness::handle_timeout`].
//!   After either, send every [`Liveness::poll_transmit`] to the named node's heartbeat port,
//!   log every [`Liveness::poll_event`], and replan with [`View::candidates`] as the
//!   planner's `Cluster::alive` when it changed. While [`View::own`] is not
//!   [`OwnState::Normal`], this node is not among its own candidates, so it announces nothing.
//! - On SIGTERM: [`Liveness::leave`], then keep driving it for a few intervals.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use metallb_liveness::{Config, Key, LeaseView, Liveness, Renewal};
//!
//! let now = Instant::now();
//! let key = Key::derive(b"membership secret");
//! let mut a = Liveness::new(Config::default(), "a", key.clone(), 1, now).unwrap();
//! let mut b = Liveness::new(Config::default(), "b", key, 1, now).unwrap();
//! let lease = LeaseView { renewed_at: now, expires_at: now + Duration::from_secs(10), peers: None };
//! for core in [&mut a, &mut b] {
//!     core.observe_lease(now, "a", lease);
//!     core.observe_lease(now, "b", lease);
//!     core.renewal(now, Renewal::Succeeded { sent_at: now });
//!     core.handle_timeout(now);
//! }
//! let heartbeat = a.poll_transmit().expect("a sends to its only monitor");
//! assert_eq!(heartbeat.to, "b");
//! b.handle_packet(now, &heartbeat.bytes).unwrap();
//! assert!(b.candidates(now).contains("a"));
//! ```

mod config;
mod core;
mod packet;
mod ring;
pub mod rules;
mod view;

pub use config::{Config, ConfigError};
pub use core::{Liveness, ReceiveError, Renewal, Transmit};
pub use packet::{
    ENTRY_LEN, Entry, HEADER_LEN, Key, Kind, MAC_LEN, MAX_ENTRIES, Packet, PacketError, StandDown,
    Status, VERSION,
};
pub use ring::node_id;
pub use rules::{Basis, FenceReason, IsolationReason, LeaseView, OwnState};
pub use view::{Event, NodeReason, NodeView, View};
