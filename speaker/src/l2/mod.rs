//! The layer 2 driver: ARP and NDP responders and announcements on packet sockets, around the
//! sans-IO core of `metallb-l2`.
//!
//! [`spawn`] opens two `AF_PACKET` sockets per interface, one bound to ARP and one to IPv6,
//! each with a filter that passes only ARP and Neighbor Solicitations, and starts one task that
//! owns all the state: the [`Announcer`](metallb_l2::Announcer) with the owned IPs, the
//! sockets, and the counters. The task answers requests read from the sockets with
//! [`respond`](metallb_l2::respond), sends the gratuitous ARP and unsolicited advertisements
//! the announcer schedules, takes [`L2Handle`] commands from a channel, and scans the
//! interfaces again every few seconds (every half second for a while after a change) so that
//! one that appears later is served. Frames the core rejects get no reply and are counted by
//! reason.

mod driver;
mod port;

use std::{
    collections::BTreeMap,
    io,
    net::{IpAddr, Ipv6Addr},
    sync::{Arc, Mutex, PoisonError},
};

use metallb_l2::{AllowedInterfaces, Schedule};
use serde::{Deserialize, Serialize};
use thiserror::Error;
use tokio::{sync::mpsc, task::JoinHandle};
use tracing::debug;

use self::driver::{Command, Driver};

/// What the driver answers and announces on.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct L2Options {
    /// Interfaces to answer on; empty = every up, non-loopback Ethernet interface.
    pub interfaces: Vec<String>,
    /// Interfaces never answered on, as regular expressions matched against the name
    /// (MetalLB's `announcedInterfacesToExclude`); invalid ones are skipped with a warning.
    pub excluded: Vec<String>,
    /// When gratuitous ARP and unsolicited advertisements go out after a takeover.
    pub schedule: Schedule,
}

/// Why the driver could not start.
#[derive(Debug, Error)]
pub enum L2Error {
    /// [`spawn`] was called outside a tokio runtime.
    #[error("the l2 driver needs a tokio runtime")]
    NoRuntime,
    /// The interface list could not be read.
    #[error("cannot list the network interfaces")]
    Interfaces(#[source] nix::Error),
    /// A packet socket could not be opened for want of `CAP_NET_RAW`. Other failures to open
    /// one are left to the next interface scan.
    #[error("cannot open a packet socket on {interface}")]
    Socket {
        /// The interface's name.
        interface: String,
        /// The system call's error.
        #[source]
        source: io::Error,
    },
}

/// Controls a running driver; clones control the same one. The methods only queue a command
/// for the driver's task, so they never block.
#[derive(Clone, Debug)]
pub struct L2Handle {
    commands: mpsc::UnboundedSender<Command>,
    status: Arc<Mutex<L2Status>>,
}

/// Opens the packet sockets at once, in the calling thread's network namespace, and starts the
/// driver's task. Must run inside a tokio runtime. The task ends on [`L2Handle::shutdown`] or
/// when every handle is dropped.
///
/// # Errors
///
/// No runtime, an unreadable interface list, or no permission to open packet sockets.
pub fn spawn(options: L2Options) -> Result<(L2Handle, JoinHandle<()>), L2Error> {
    let runtime = tokio::runtime::Handle::try_current().map_err(|_| L2Error::NoRuntime)?;
    let (commands, receiver) = mpsc::unbounded_channel();
    let status = Arc::new(Mutex::new(L2Status::default()));
    let driver = Driver::new(options, receiver, Arc::clone(&status))?;
    let task = runtime.spawn(driver.run());
    Ok((L2Handle { commands, status }, task))
}

impl L2Handle {
    /// Takes `ip` over: a gratuitous ARP or unsolicited advertisement now and on the schedule,
    /// and replies to requests for it on `interfaces`. Announcing an owned IP again extends
    /// its announcements and replaces its interfaces.
    pub fn announce(&self, ip: IpAddr, interfaces: AllowedInterfaces) {
        self.send(Command::Announce(ip, interfaces));
    }

    /// Stops answering for `ip`.
    pub fn release(&self, ip: IpAddr) {
        self.send(Command::Release(ip));
    }

    /// The interfaces, owned IPs and counters as the driver last published them; a command
    /// shows here once the task has taken it.
    pub fn status(&self) -> L2Status {
        self.status
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Stops answering for everything; the task ends and its sockets close.
    pub fn shutdown(&self) {
        self.send(Command::Shutdown);
    }

    fn send(&self, command: Command) {
        if self.commands.send(command).is_err() {
            debug!("l2 driver already stopped");
        }
    }
}

/// The driver's state for `show l2` and metrics.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct L2Status {
    /// The interfaces with open sockets, by name.
    pub interfaces: Vec<InterfaceStatus>,
    /// The owned IPs in address order.
    pub owned: Vec<OwnedIp>,
    /// Totals since the driver started.
    pub counters: L2Counters,
}

/// An interface the driver speaks on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InterfaceStatus {
    /// The kernel's name.
    pub name: String,
    /// The kernel's index.
    pub ifindex: u32,
    /// The MAC replies and announcements carry, as `02:4e:4c:00:00:11`.
    pub mac: String,
    /// The source of advertisements; without one, no NDP on this interface.
    pub link_local: Option<Ipv6Addr>,
}

/// An IP this node answers for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwnedIp {
    /// The service IP.
    pub ip: IpAddr,
    /// Where it is answered and announced.
    pub interfaces: Interfaces,
    /// Requests for it received since it was last taken over.
    pub requests: u64,
    /// Replies sent for it since it was last taken over.
    pub replies: u64,
    /// Gratuitous ARP and unsolicited advertisements sent for it since then.
    pub announcements: u64,
}

/// The interfaces of an [`OwnedIp`], as [`AllowedInterfaces`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Interfaces {
    /// Every interface.
    All,
    /// Only these, by name.
    Only(Vec<String>),
}

impl From<&AllowedInterfaces> for Interfaces {
    fn from(allowed: &AllowedInterfaces) -> Self {
        match allowed {
            AllowedInterfaces::All => Self::All,
            AllowedInterfaces::Only(names) => Self::Only(names.iter().cloned().collect()),
        }
    }
}

/// Frame counters; labels are the core's fixed snake_case names.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct L2Counters {
    /// ARP replies and Neighbor Advertisements sent in answer to a request.
    pub replies_sent: u64,
    /// Gratuitous ARP and unsolicited Neighbor Advertisements sent.
    pub announcements_sent: u64,
    /// Frames that could not be sent.
    pub send_errors: u64,
    /// Well-formed frames that got no reply, by [`Ignored`](metallb_l2::Ignored) label.
    pub ignored: BTreeMap<String, u64>,
    /// Frames dropped as malformed, by [`FrameError`](metallb_l2::FrameError) label, plus
    /// `oversized` for frames larger than the receive buffer.
    pub malformed: BTreeMap<String, u64>,
}

/// Adds one to the counter `label` of `counters`.
fn bump(counters: &mut BTreeMap<String, u64>, label: &str) {
    match counters.get_mut(label) {
        Some(count) => *count += 1,
        None => {
            counters.insert(label.to_owned(), 1);
        }
    }
}
