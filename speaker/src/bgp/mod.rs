//! The BGP driver: TCP connections, TCP-MD5 and timers around the sans-IO [`metallb_bgp`]
//! sessions.
//!
//! [`spawn`] starts a manager task that owns the listener and one task per peer. A peer task
//! owns its [`Session`](metallb_bgp::Session) and connection: it dials when the session asks,
//! feeds received bytes in, writes out what the session transmits and sleeps until its next
//! timer. [`BgpHandle`] talks to the manager over a channel, so its methods do not block.
//!
//! Passive side: a connection accepted on the listener is matched to a peer by its remote
//! address; connections from any other address are closed at once. Collisions (RFC 4271
//! §6.8) are settled simply: a peer whose session is between connections (dialing, or
//! waiting to dial again) takes the accepted connection and abandons its dial; a peer that
//! already has a connection keeps it, and the new one is closed.
//!
//! Graceful restart (RFC 4724), for peers whose session settings have
//! [`graceful_restart`](metallb_bgp::Config::graceful_restart) (`enableGracefulRestart`):
//! the router keeps our routes, marked stale, for the restart time after the connection is
//! lost, and a new session refreshes them with its initial table and End-of-RIB, so a crashed
//! or OOM-killed speaker that comes back is not an outage. How a new process knows it
//! restarted: it does not need to. Every peer task offers the Restart State bit on its first
//! session, because a new process only exists because the previous one ended or this is the
//! first start. That is exact after a crash, and harmless otherwise: a planned exit withdrew
//! every route before its Cease ([`BgpHandle::shutdown`], [`BgpHandle::remove_peer`]), so
//! the router keeps nothing stale, and on a first start it has nothing of ours. The
//! Forwarding State bit is always set, since forwarding to service addresses is the node's
//! data plane, not this process. No state outlives the process, so there is no marker file
//! to write, to clean up, or to find left over after a reboot. The routes a session has when
//! it comes up are its initial table, followed at once by End-of-RIB, after which the router
//! drops the stale routes not announced again: a peer must get its routes in the same burst
//! of commands as [`BgpHandle::add_peer`], as the engine's plans do.

mod net;
mod peer;

use std::{
    collections::{BTreeMap, HashMap},
    fmt,
    net::{IpAddr, SocketAddr},
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use ipnet::IpNet;
use metallb_bgp::Route;
use serde::Serialize;
use thiserror::Error;
use tokio::{
    net::{TcpListener, TcpStream},
    sync::{mpsc, oneshot},
    task::JoinHandle,
};
use tracing::{debug, warn};

use self::peer::{PeerCommand, PeerTask, StatusSlot};
use crate::event::DriverEvents;

/// How to reach one BGP peer and what to tell it.
#[derive(Clone, PartialEq, Eq)]
pub struct PeerOptions {
    /// The peer's name, unique among peers (the BGPPeer's name).
    pub name: String,
    /// The peer's address.
    pub address: IpAddr,
    /// The peer's TCP port, normally 179.
    pub port: u16,
    /// Our address for the connection, bound before connecting.
    pub source: Option<IpAddr>,
    /// ASNs, router id, hold time and connect-retry limit.
    pub session: metallb_bgp::Config,
    /// TCP-MD5 password (RFC 2385), at most 80 bytes.
    pub password: Option<String>,
    /// eBGP to a peer more than one hop away: TTL 255 instead of 1.
    pub ebgp_multihop: bool,
}

impl fmt::Debug for PeerOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PeerOptions")
            .field("name", &self.name)
            .field("address", &self.address)
            .field("port", &self.port)
            .field("source", &self.source)
            .field("session", &self.session)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("ebgp_multihop", &self.ebgp_multihop)
            .finish()
    }
}

/// What [`BgpHandle::status`] reports about one peer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PeerStatus {
    /// The peer's name.
    pub name: String,
    /// The peer's address.
    pub address: IpAddr,
    /// RFC 4271 state, in snake_case (`established`, `active`, ...).
    pub state: &'static str,
    /// Hold time agreed with the peer, in seconds, while connected; zero means none.
    pub hold_time_seconds: Option<u64>,
    /// Prefixes we want the peer to have.
    pub prefixes_desired: usize,
    /// Prefixes the peer has from us.
    pub prefixes_advertised: usize,
    /// Why the last connection ended.
    pub last_down_reason: Option<String>,
    /// UPDATE messages sent.
    pub updates_sent: u64,
    /// UPDATE messages received.
    pub updates_received: u64,
    /// Refused messages and connections, by label (`bad_peer_as`, `connection_collision`, ...).
    pub messages_dropped: BTreeMap<&'static str, u64>,
    /// Both sides offered graceful restart on the current connection.
    pub graceful_restart: bool,
}

/// Why the driver could not start.
#[derive(Debug, Error)]
pub enum BgpError {
    /// The listening socket could not be opened.
    #[error("cannot listen for bgp connections on {address}")]
    Listen {
        /// The address asked for.
        address: SocketAddr,
        /// What the kernel said.
        #[source]
        source: std::io::Error,
    },
}

/// The status slots of the current peers, shared between the manager and the handles.
type Statuses = Arc<Mutex<BTreeMap<String, StatusSlot>>>;

enum Command {
    AddPeer(Box<PeerOptions>),
    RemovePeer(String),
    ToPeer(String, PeerCommand),
    GracefulShutdown(bool),
    Shutdown(oneshot::Sender<()>),
}

/// Controls the driver; cheap to clone. Commands take effect in the order they are given.
#[derive(Clone, Debug)]
pub struct BgpHandle {
    commands: mpsc::UnboundedSender<Command>,
    statuses: Statuses,
}

/// Starts the driver in the calling thread's network namespace, listening (passive side) on
/// `listen` when given, e.g. `[::]:179` for both families; sessions reaching or leaving
/// Established are reported on `reports`. Must run inside a tokio runtime.
pub fn spawn(
    listen: Option<SocketAddr>,
    reports: DriverEvents,
) -> Result<(BgpHandle, JoinHandle<()>), BgpError> {
    let listener = listen
        .map(|address| net::listen(address).map_err(|source| BgpError::Listen { address, source }))
        .transpose()?;
    let (commands, receiver) = mpsc::unbounded_channel();
    let statuses = Statuses::default();
    let manager = Manager {
        listener,
        keys: net::ListenerKeys::default(),
        peers: HashMap::new(),
        graceful_shutdown: false,
        statuses: statuses.clone(),
        reports,
    };
    let task = tokio::spawn(manager.run(receiver));
    Ok((BgpHandle { commands, statuses }, task))
}

impl BgpHandle {
    /// Adds a peer and starts connecting. A peer of the same name with other options is
    /// restarted with the new ones (Cease 6/4 if connected), keeping its prefixes.
    pub fn add_peer(&self, options: PeerOptions) {
        self.send(Command::AddPeer(Box::new(options)));
    }

    /// Withdraws the peer's prefixes, closes the session with Cease 6/2 and forgets the peer
    /// and its prefixes.
    pub fn remove_peer(&self, name: &str) {
        self.send(Command::RemovePeer(name.to_owned()));
    }

    /// Announces `prefix` to the peer, replacing its earlier attributes. Ignored for a peer
    /// that was not added.
    pub fn announce(&self, peer: &str, prefix: IpNet, route: Route) {
        self.to_peer(peer, PeerCommand::Announce(prefix, route));
    }

    /// Withdraws `prefix` from the peer.
    pub fn withdraw(&self, peer: &str, prefix: IpNet) {
        self.to_peer(peer, PeerCommand::Withdraw(prefix));
    }

    /// Adds the GRACEFUL_SHUTDOWN community (RFC 8326) to every route of every peer, also of
    /// peers added later, or removes it again.
    pub fn set_graceful_shutdown(&self, on: bool) {
        self.send(Command::GracefulShutdown(on));
    }

    /// BFD found the path down: the connection is closed at once with Cease 6/10 and the
    /// session reconnects after the back-off. `reason` becomes the last down reason.
    pub fn tear_down(&self, peer: &str, reason: &'static str) {
        let settled_only = false;
        self.to_peer(
            peer,
            PeerCommand::TearDown {
                reason,
                settled_only,
            },
        );
    }

    /// As [`tear_down`](Self::tear_down), but ignored within 3 s of the session becoming
    /// Established: for a BFD Down the peer signalled, which FRR does once when BGP comes up
    /// and it re-creates its BFD session. A path that really failed is still caught by our
    /// own detection time, and the peer tears its side down itself.
    pub fn tear_down_settled(&self, peer: &str, reason: &'static str) {
        let settled_only = true;
        self.to_peer(
            peer,
            PeerCommand::TearDown {
                reason,
                settled_only,
            },
        );
    }

    /// The state of every peer, sorted by name.
    pub fn status(&self) -> Vec<PeerStatus> {
        let statuses = self.statuses.lock().unwrap_or_else(PoisonError::into_inner);
        statuses.values().map(peer::read_status).collect()
    }

    /// Sends Cease 6/2 to every peer (after withdrawing its prefixes, with graceful restart or
    /// without), waits until it is written, and ends the driver's tasks.
    pub async fn shutdown(&self) {
        let (done, finished) = oneshot::channel();
        self.send(Command::Shutdown(done));
        // An error means the manager has already ended: nothing is left to shut down.
        let _ = finished.await;
    }

    fn to_peer(&self, peer: &str, command: PeerCommand) {
        self.send(Command::ToPeer(peer.to_owned(), command));
    }

    fn send(&self, command: Command) {
        // The manager only ends after shutdown, when commands have nothing left to act on.
        let _ = self.commands.send(command);
    }
}

struct PeerEntry {
    options: PeerOptions,
    commands: mpsc::UnboundedSender<PeerCommand>,
    task: JoinHandle<()>,
}

/// Owns the listener and the peer tasks.
struct Manager {
    listener: Option<TcpListener>,
    keys: net::ListenerKeys,
    peers: HashMap<String, PeerEntry>,
    graceful_shutdown: bool,
    statuses: Statuses,
    reports: DriverEvents,
}

impl Manager {
    async fn run(mut self, mut commands: mpsc::UnboundedReceiver<Command>) {
        loop {
            tokio::select! {
                command = commands.recv() => {
                    let Some(first) = command else { return self.shutdown().await };
                    // Forward a whole burst at once, so each peer can take it as one.
                    let burst = std::iter::once(first).chain(std::iter::from_fn(|| commands.try_recv().ok()));
                    for command in burst {
                        if let Command::Shutdown(done) = command {
                            self.shutdown().await;
                            let _ = done.send(());
                            return;
                        }
                        self.handle(command);
                    }
                }
                accepted = accept(self.listener.as_ref()) => match accepted {
                    Ok((stream, remote)) => self.accepted(stream, remote),
                    Err(error) => {
                        // Out of file descriptors and the like: pause rather than spin.
                        warn!(%error, "cannot accept a bgp connection");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
            }
        }
    }

    fn handle(&mut self, command: Command) {
        match command {
            Command::AddPeer(options) => self.add_peer(*options),
            Command::RemovePeer(name) => {
                if let Some(entry) = self.peers.remove(&name) {
                    let _ = entry.commands.send(PeerCommand::Stop);
                    self.lock_statuses().remove(&name);
                    self.update_keys();
                }
            }
            Command::ToPeer(name, command) => match self.peers.get(&name) {
                Some(entry) => {
                    let _ = entry.commands.send(command);
                }
                None => debug!(peer = %name, "bgp command for an unknown peer ignored"),
            },
            Command::GracefulShutdown(on) => {
                self.graceful_shutdown = on;
                for entry in self.peers.values() {
                    let _ = entry.commands.send(PeerCommand::GracefulShutdown(on));
                }
            }
            Command::Shutdown(_) => {}
        }
    }

    fn add_peer(&mut self, options: PeerOptions) {
        if let Some(entry) = self.peers.get_mut(&options.name) {
            if entry.options != options {
                entry.options = options.clone();
                let _ = entry
                    .commands
                    .send(PeerCommand::Reconfigure(Box::new(options)));
                self.update_keys();
            }
            return;
        }
        let (commands, receiver) = mpsc::unbounded_channel();
        let reports = self.reports.clone();
        let (task, slot) =
            PeerTask::new(options.clone(), receiver, self.graceful_shutdown, reports);
        self.lock_statuses().insert(options.name.clone(), slot);
        let task = tokio::spawn(task.run());
        let name = options.name.clone();
        let entry = PeerEntry {
            options,
            commands,
            task,
        };
        self.peers.insert(name, entry);
        self.update_keys();
    }

    /// Hands an accepted connection to the peer with its remote address, or closes it.
    fn accepted(&mut self, stream: TcpStream, remote: SocketAddr) {
        let remote = remote.ip().to_canonical();
        let peer = self
            .peers
            .values()
            .find(|entry| entry.options.address == remote);
        match peer {
            Some(entry) => {
                let _ = entry.commands.send(PeerCommand::Accepted(stream));
            }
            None => debug!(%remote, "bgp connection from an unknown address closed"),
        }
    }

    fn update_keys(&mut self) {
        if let Some(listener) = &self.listener {
            let wanted = self
                .peers
                .values()
                .filter_map(|entry| {
                    let password = entry.options.password.clone()?;
                    Some((entry.options.address, password))
                })
                .collect();
            self.keys.update(listener, wanted);
        }
    }

    /// Stops every peer (Cease 6/2) and waits for their tasks.
    async fn shutdown(&mut self) {
        self.listener = None;
        let peers: Vec<PeerEntry> = self.peers.drain().map(|(_, entry)| entry).collect();
        for entry in &peers {
            let _ = entry.commands.send(PeerCommand::Stop);
        }
        for entry in peers {
            if let Err(error) = entry.task.await {
                warn!(%error, "bgp peer task failed");
            }
        }
        self.lock_statuses().clear();
    }

    fn lock_statuses(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, StatusSlot>> {
        self.statuses.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

async fn accept(listener: Option<&TcpListener>) -> std::io::Result<(TcpStream, SocketAddr)> {
    match listener {
        Some(listener) => listener.accept().await,
        None => std::future::pending().await,
    }
}
