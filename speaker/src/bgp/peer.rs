//! One peer's task: its session, its connection, its timers.

use std::{
    collections::BTreeMap,
    future::{Future, pending},
    io,
    pin::Pin,
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant},
};

use ipnet::IpNet;
use metallb_bgp::{Cease, DownReason, Event, Route, Session, State};
use socket2::SockRef;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    sync::mpsc,
};
use tracing::{debug, info};

use super::{PeerOptions, PeerStatus, net};
use crate::event::{DriverEvent, DriverEvents};

/// How long one message may take to enter the socket before the connection counts as dead.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a closing connection waits for the peer's FIN, so our last NOTIFICATION is not
/// thrown away by a reset (the kernel resets a socket closed with unread data).
const LINGER: Duration = Duration::from_secs(1);
/// Size of the read buffer: one message at most, the session reassembles the rest.
const READ_BUFFER: usize = 4096;

/// How long after Established a peer-signalled BFD Down is taken for FRR re-creating its BFD
/// session (it does so when BGP comes up, and signals Down once) rather than a failed path.
pub(super) const SETTLE: Duration = Duration::from_secs(3);

/// What the manager tells a peer task.
#[derive(Debug)]
pub(super) enum PeerCommand {
    Reconfigure(Box<PeerOptions>),
    Announce(IpNet, Route),
    Withdraw(IpNet),
    GracefulShutdown(bool),
    /// Close at once; with `settled_only`, not within [`SETTLE`] of becoming Established.
    TearDown {
        reason: &'static str,
        settled_only: bool,
    },
    Accepted(TcpStream),
    /// Cease 6/2, written out, then the task ends.
    Stop,
}

/// Where the task publishes its status; the manager forgets a removed peer's slot, so a
/// stopping task never writes into its successor's.
pub(super) type StatusSlot = Arc<Mutex<PeerStatus>>;

pub(super) fn read_status(slot: &StatusSlot) -> PeerStatus {
    slot.lock().unwrap_or_else(PoisonError::into_inner).clone()
}

type Dial = Pin<Box<dyn Future<Output = io::Result<TcpStream>> + Send>>;

enum Connection {
    None,
    Dialing(Dial),
    Open(TcpStream),
}

pub(super) struct PeerTask {
    options: PeerOptions,
    session: Session,
    commands: mpsc::UnboundedReceiver<PeerCommand>,
    connection: Connection,
    slot: StatusSlot,
    last_down: Option<String>,
    dropped: BTreeMap<&'static str, u64>,
    /// The reason given to the tear-down in progress, reported instead of the session's.
    tear_down: Option<&'static str>,
    /// When the session last became Established.
    established_at: Option<Instant>,
    /// Where changes of Established are reported, and the last one reported.
    reports: DriverEvents,
    reported_up: bool,
}

impl PeerTask {
    pub(super) fn new(
        options: PeerOptions,
        commands: mpsc::UnboundedReceiver<PeerCommand>,
        graceful_shutdown: bool,
        reports: DriverEvents,
    ) -> (Self, StatusSlot) {
        let mut session = Session::new(options.session.clone());
        session.set_graceful_shutdown(graceful_shutdown);
        // A new task is a new process or a new peer: see the module documentation.
        session.set_restarting(true);
        let slot = StatusSlot::new(Mutex::new(PeerStatus {
            name: options.name.clone(),
            address: options.address,
            state: state_name(State::Idle),
            hold_time_seconds: None,
            prefixes_desired: 0,
            prefixes_advertised: 0,
            last_down_reason: None,
            updates_sent: 0,
            updates_received: 0,
            messages_dropped: BTreeMap::new(),
            graceful_restart: false,
        }));
        let task = Self {
            options,
            session,
            commands,
            connection: Connection::None,
            slot: slot.clone(),
            last_down: None,
            dropped: BTreeMap::new(),
            tear_down: None,
            established_at: None,
            reports,
            reported_up: false,
        };
        (task, slot)
    }

    pub(super) async fn run(mut self) {
        let mut buffer = [0; READ_BUFFER];
        self.session.start();
        loop {
            self.drive().await;
            self.publish();
            let deadline = self.session.poll_timeout();
            tokio::select! {
                command = self.commands.recv() => match command {
                    Some(PeerCommand::Stop) | None => return self.stop().await,
                    Some(command) => {
                        self.command(command);
                        if self.take_queued_commands() {
                            return self.stop().await;
                        }
                    }
                },
                io = io(&mut self.connection, &mut buffer) => match io {
                    Io::Dialed(dialed) => self.dialed(dialed),
                    Io::Read(Ok(0) | Err(_)) => self.closed(),
                    Io::Read(Ok(length)) => {
                        self.session.handle_bytes(Instant::now(), &buffer[..length]);
                    }
                },
                () = sleep(deadline) => self.session.handle_timeout(Instant::now()),
            }
        }
    }

    /// Applies every command already queued before anything is transmitted: the manager
    /// forwards a burst at once, so 10,000 announcements leave as a few full UPDATEs instead
    /// of one small UPDATE per prefix. Returns whether to stop.
    fn take_queued_commands(&mut self) -> bool {
        while let Ok(command) = self.commands.try_recv() {
            if matches!(command, PeerCommand::Stop) {
                return true;
            }
            self.command(command);
        }
        false
    }

    fn command(&mut self, command: PeerCommand) {
        let now = Instant::now();
        match command {
            PeerCommand::Reconfigure(options) => {
                // Cease 6/4 goes out with the next drive, before the connection closes.
                self.session.stop(Cease::Reset);
                self.session.reconfigure(options.session.clone());
                self.options = *options;
                self.session.start();
            }
            PeerCommand::Announce(prefix, route) => self.session.announce(prefix, route),
            PeerCommand::Withdraw(prefix) => self.session.withdraw(prefix),
            PeerCommand::GracefulShutdown(on) => self.session.set_graceful_shutdown(on),
            PeerCommand::TearDown {
                reason,
                settled_only,
            } => {
                let settling = self.session.state() == State::Established
                    && self.established_at.is_some_and(|at| now - at < SETTLE);
                if settled_only && settling {
                    info!(peer = %self.options.name, reason, "bgp tear-down right after established tolerated");
                    return;
                }
                self.tear_down = Some(reason);
                self.session.reset(now, Cease::BfdDown);
            }
            PeerCommand::Accepted(stream) => self.accepted(now, stream),
            PeerCommand::Stop => {}
        }
    }

    /// A connection the peer opened to us: taken while we are between connections, closed
    /// otherwise (see the module documentation on collisions).
    fn accepted(&mut self, now: Instant, stream: TcpStream) {
        if !matches!(self.session.state(), State::Connect | State::Active) {
            *self.dropped.entry("connection_collision").or_default() += 1;
            debug!(peer = %self.options.name, "bgp connection from the peer closed, one is open");
            return;
        }
        if let Err(error) =
            net::set_ttl(SockRef::from(&stream), self.options.address, &self.options)
        {
            debug!(peer = %self.options.name, %error, "cannot set the ttl of an accepted connection");
        }
        self.connected(now, stream);
    }

    fn dialed(&mut self, dialed: io::Result<TcpStream>) {
        match dialed {
            Ok(stream) => self.connected(Instant::now(), stream),
            Err(error) => {
                debug!(peer = %self.options.name, %error, "bgp dial failed");
                self.closed();
            }
        }
    }

    fn connected(&mut self, now: Instant, stream: TcpStream) {
        let Ok(local) = stream.local_addr() else {
            return self.closed();
        };
        self.connection = Connection::Open(stream);
        self.session
            .handle_connected(now, net::next_hops(local.ip()));
    }

    fn closed(&mut self) {
        self.connection = Connection::None;
        self.session.handle_closed(Instant::now());
    }

    /// Writes what the session transmits, then acts on its events, until it has neither.
    async fn drive(&mut self) {
        loop {
            let now = Instant::now();
            while let Some(bytes) = self.session.poll_transmit(now) {
                if let Connection::Open(stream) = &mut self.connection {
                    let written =
                        tokio::time::timeout(WRITE_TIMEOUT, stream.write_all(&bytes)).await;
                    if !matches!(written, Ok(Ok(()))) {
                        self.closed();
                    }
                }
            }
            let Some(event) = self.session.poll_event() else {
                self.tear_down = None;
                return;
            };
            self.event(event);
        }
    }

    fn event(&mut self, event: Event) {
        let name = &self.options.name;
        match event {
            Event::Dial => {
                self.connection = Connection::Dialing(Box::pin(net::dial(self.options.clone())));
            }
            Event::Close(reason) => {
                self.count_refusal(&reason);
                if let Connection::Open(stream) =
                    std::mem::replace(&mut self.connection, Connection::None)
                {
                    tokio::spawn(linger(stream));
                }
                let label = self.label(&reason);
                self.last_down = Some(label);
            }
            Event::Established => {
                let graceful_restart = self.session.graceful_restart_negotiated();
                info!(peer = %name, graceful_restart, "bgp session established");
                self.established_at = Some(Instant::now());
            }
            Event::Down(reason) => {
                let label = self.label(&reason);
                info!(peer = %name, reason = %label, "bgp session down");
                self.last_down = Some(label);
            }
        }
    }

    /// Cease 6/2, written and the connection closed, then the task ends.
    async fn stop(mut self) {
        self.session.stop(Cease::Shutdown);
        let now = Instant::now();
        while let Some(bytes) = self.session.poll_transmit(now) {
            if let Connection::Open(stream) = &mut self.connection {
                let _ = tokio::time::timeout(WRITE_TIMEOUT, stream.write_all(&bytes)).await;
            }
        }
        while let Some(event) = self.session.poll_event() {
            if let Event::Down(reason) = event {
                let label = self.label(&reason);
                info!(peer = %self.options.name, reason = %label, "bgp session down");
            }
        }
        if let Connection::Open(stream) = std::mem::replace(&mut self.connection, Connection::None)
        {
            linger(stream).await;
        }
    }

    fn label(&self, reason: &DownReason) -> String {
        match (self.tear_down, reason) {
            (Some(reason), DownReason::Stopped(_)) => reason.to_owned(),
            (_, DownReason::NotificationReceived(notification)) => format!(
                "{} {}/{}",
                reason.label(),
                notification.code,
                notification.subcode
            ),
            _ => reason.label().to_owned(),
        }
    }

    fn count_refusal(&mut self, reason: &DownReason) {
        if matches!(
            reason,
            DownReason::InvalidMessage(_) | DownReason::UnexpectedMessage
        ) {
            *self.dropped.entry(reason.label()).or_default() += 1;
        }
    }

    fn publish(&mut self) {
        let up = self.session.state() == State::Established;
        if up != self.reported_up {
            self.reported_up = up;
            let report = DriverEvent::Bgp {
                peer: self.options.name.clone(),
                up,
                reason: if up { None } else { self.last_down.clone() },
            };
            // An owner that has gone no longer needs to know.
            let _ = self.reports.send(report);
        }
        let mut status = self.slot.lock().unwrap_or_else(PoisonError::into_inner);
        status.address = self.options.address;
        status.state = state_name(self.session.state());
        status.hold_time_seconds = self
            .session
            .negotiated_hold_time()
            .map(|hold| hold.as_secs());
        status.prefixes_desired = self.session.desired_prefixes();
        status.prefixes_advertised = self.session.advertised_prefixes();
        status.last_down_reason.clone_from(&self.last_down);
        status.updates_sent = self.session.updates_sent();
        status.updates_received = self.session.updates_received();
        status.messages_dropped.clone_from(&self.dropped);
        status.graceful_restart = self.session.graceful_restart_negotiated();
    }
}

fn state_name(state: State) -> &'static str {
    match state {
        State::Idle => "idle",
        State::Connect => "connect",
        State::Active => "active",
        State::OpenSent => "open_sent",
        State::OpenConfirm => "open_confirm",
        State::Established => "established",
    }
}

/// What happened on the connection.
enum Io {
    Dialed(io::Result<TcpStream>),
    Read(io::Result<usize>),
}

/// Waits for the dial to finish or for bytes to arrive, whichever the connection is doing.
async fn io(connection: &mut Connection, buffer: &mut [u8]) -> Io {
    match connection {
        Connection::None => pending().await,
        Connection::Dialing(dial) => Io::Dialed(dial.await),
        Connection::Open(stream) => Io::Read(stream.read(buffer).await),
    }
}

async fn sleep(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline.into()).await,
        None => pending().await,
    }
}

/// Sends FIN after what was written and reads until the peer closes too (or [`LINGER`]
/// passes), so the last NOTIFICATION arrives instead of being cut off by a reset.
async fn linger(mut stream: TcpStream) {
    let _ = stream.shutdown().await;
    let mut sink = [0; 512];
    let drain = async { while matches!(stream.read(&mut sink).await, Ok(length) if length > 0) {} };
    let _ = tokio::time::timeout(LINGER, drain).await;
}
