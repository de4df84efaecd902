//! The BFD driver: UDP sockets and one tokio task around the sans-IO sessions of
//! [`metallb_bfd`].
//!
//! [`spawn`] binds the receive sockets (UDP 3784 single hop and 4784 multi hop, IPv4 and
//! IPv6, each on the wildcard address) and starts the task. The task sleeps until the
//! earliest deadline of all sessions, reads datagrams with their TTL, hands them to the
//! session they belong to (by Your Discriminator, or by the source address while that is
//! zero, RFC 5880 §6.3) and sends what the sessions want sent. Each session transmits from
//! its own socket with TTL 255 and a source port from 49152-65535 (RFC 5881 §4-5). Up and
//! Down are reported on the [`DriverEvents`] channel given to [`spawn`].
//!
//! Datagrams that are malformed, arrive with a TTL below 255 on the single hop port, or
//! belong to no session are counted by reason and dropped.

mod driver;
mod net;

use std::{
    collections::BTreeMap,
    fmt,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    sync::{Arc, Mutex, MutexGuard, PoisonError},
    time::Duration,
};

use metallb_bfd::{Diagnostic, Hop, Profile, State};
use serde::{Serialize, Serializer};
use thiserror::Error;
use tokio::{sync::mpsc, task::JoinHandle};
use tracing::warn;

use self::{driver::Driver, net::Receiver};
use crate::event::DriverEvents;

/// Why the driver could not start.
#[derive(Debug, Error)]
pub enum BfdError {
    /// A receive socket could not be set up.
    #[error("cannot listen for BFD on {address}")]
    Bind {
        /// The wildcard address and port.
        address: SocketAddr,
        /// What the kernel said.
        #[source]
        source: std::io::Error,
    },
}

/// Binds the receive sockets at once, in the calling thread's network namespace, and starts
/// the driver task. Must run inside a tokio runtime. The task opens each session's transmit
/// socket itself, so every thread of that runtime must be in the same namespace (in a test
/// that enters a namespace: a current-thread runtime on that thread). A host without IPv6
/// gets IPv4 sessions only.
///
/// # Errors
///
/// A receive socket cannot be bound, typically because another BFD daemon holds the port.
/// Up and Down of every session are reported on `events`.
pub fn spawn(events: DriverEvents) -> Result<(BfdHandle, JoinHandle<()>), BfdError> {
    let receivers = [
        Some(Receiver::bind(Ipv4Addr::UNSPECIFIED.into(), Hop::Single)?),
        ipv6_receiver(Hop::Single)?,
        Some(Receiver::bind(Ipv4Addr::UNSPECIFIED.into(), Hop::Multi)?),
        ipv6_receiver(Hop::Multi)?,
    ];
    let (commands, command_rx) = mpsc::unbounded_channel();
    let table = Arc::new(Mutex::new(driver::Table::default()));
    let driver = Driver::new(receivers, command_rx, Arc::clone(&table), events);
    let task = tokio::spawn(driver.run());
    Ok((BfdHandle { commands, table }, task))
}

/// The IPv6 receive socket of `hop`, or `None` if the kernel has no IPv6.
fn ipv6_receiver(hop: Hop) -> Result<Option<Receiver>, BfdError> {
    match Receiver::bind(Ipv6Addr::UNSPECIFIED.into(), hop) {
        Ok(receiver) => Ok(Some(receiver)),
        Err(BfdError::Bind { address, source })
            if source.raw_os_error() == Some(libc::EAFNOSUPPORT) =>
        {
            warn!(%address, "ipv6 unavailable, bfd over ipv6 disabled");
            Ok(None)
        }
        Err(error) => Err(error),
    }
}

/// What the handle asks of the driver task.
enum Command {
    Add {
        peer: IpAddr,
        local: Option<IpAddr>,
        hop: Hop,
        profile: Profile,
    },
    Remove(IpAddr),
    Shutdown,
}

/// Controls the driver task. Cheap to clone; every method returns at once.
#[derive(Clone)]
pub struct BfdHandle {
    commands: mpsc::UnboundedSender<Command>,
    table: Arc<Mutex<driver::Table>>,
}

impl fmt::Debug for BfdHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BfdHandle")
            .field("sessions", &self.table().len())
            .finish_non_exhaustive()
    }
}

impl BfdHandle {
    /// Adds the session towards `peer`, or gives an existing one the new profile. A changed
    /// `local` or `hop` starts the session afresh.
    pub fn add_peer(&self, peer: IpAddr, local: Option<IpAddr>, hop: Hop, profile: Profile) {
        // An IPv4-mapped IPv6 address names an IPv4 peer, which needs an IPv4 socket.
        self.send(Command::Add {
            peer: peer.to_canonical(),
            local: local.map(|local| local.to_canonical()),
            hop,
            profile,
        });
    }

    /// Sends the peer one AdminDown packet, so that it goes Down without counting a failure
    /// (RFC 5880 §6.8.16), then forgets the session.
    pub fn remove_peer(&self, peer: IpAddr) {
        self.send(Command::Remove(peer.to_canonical()));
    }

    /// The sessions and their counters, ordered by peer address.
    pub fn status(&self) -> Vec<BfdPeerStatus> {
        self.table().status()
    }

    /// Datagrams that matched no session, by reason: from unknown senders, malformed ones,
    /// or with a TTL that shows they were routed.
    pub fn unmatched_drops(&self) -> BTreeMap<&'static str, u64> {
        self.table().unmatched_drops()
    }

    /// Sends AdminDown to every peer, then the driver task ends.
    pub fn shutdown(&self) {
        self.send(Command::Shutdown);
    }

    fn send(&self, command: Command) {
        // After shutdown the task is gone, and there is nothing left to tell it.
        let _ = self.commands.send(command);
    }

    fn table(&self) -> MutexGuard<'_, driver::Table> {
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// One session as `metallb-speaker show bfd` reports it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BfdPeerStatus {
    /// The peer's address.
    pub peer: IpAddr,
    /// The source address, if one was configured.
    pub local: Option<IpAddr>,
    /// Single or multi hop.
    #[serde(serialize_with = "hop_name")]
    pub hop: Hop,
    /// Our state.
    #[serde(serialize_with = "display")]
    pub state: State,
    /// The peer's state, as it last said.
    #[serde(serialize_with = "display")]
    pub remote_state: State,
    /// Our discriminator.
    pub local_discriminator: u32,
    /// The peer's discriminator, while the peer is heard.
    pub remote_discriminator: Option<u32>,
    /// Why our state last changed, as sent to the peer.
    #[serde(serialize_with = "display")]
    pub diagnostic: Diagnostic,
    /// How long the peer may stay silent before the session fails; `None` until heard.
    #[serde(rename = "detection_time_ms", serialize_with = "optional_millis")]
    pub detection_time: Option<Duration>,
    /// The negotiated transmit interval before jitter.
    #[serde(rename = "transmit_interval_ms", serialize_with = "millis")]
    pub transmit_interval: Duration,
    /// Packets the session accepted.
    pub packets_received: u64,
    /// Packets sent.
    pub packets_sent: u64,
    /// Packets that could not be sent (no route, no socket).
    pub send_errors: u64,
    /// Packets from this peer that were dropped, by reason.
    pub drops: BTreeMap<&'static str, u64>,
}

fn display<T: fmt::Display, S: Serializer>(value: &T, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_str(value)
}

fn hop_name<S: Serializer>(hop: &Hop, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(match hop {
        Hop::Single => "single",
        Hop::Multi => "multi",
    })
}

fn millis<S: Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_f64(duration.as_secs_f64() * 1000.0)
}

fn optional_millis<S: Serializer>(
    duration: &Option<Duration>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match duration {
        Some(duration) => millis(duration, serializer),
        None => serializer.serialize_none(),
    }
}
