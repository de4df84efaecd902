//! The driver task: one loop that sleeps until the earliest session deadline, a datagram or
//! a command, whichever comes first.
//!
//! The sessions live in a [`Table`] behind a mutex that the task holds only while it works
//! on them (never across an `.await`), so [`BfdHandle::status`](super::BfdHandle::status)
//! reads them without asking the task. Event sinks run after the mutex is released, so a
//! sink may call the handle.

use std::{
    collections::{BTreeMap, HashMap},
    hash::{BuildHasher, Hasher, RandomState},
    io,
    net::IpAddr,
    num::NonZeroU32,
    ops::ControlFlow,
    sync::{Arc, Mutex, MutexGuard, PoisonError},
    time::{Duration, Instant, SystemTime},
};

use metallb_bfd::{ControlPacket, Event, Hop, JitterSource, Profile, Session, TTL, Xorshift};
use tokio::{sync::mpsc, time};
use tracing::{debug, info, warn};

use super::{
    BfdPeerStatus, Command,
    net::{CmsgBuffer, Datagram, Receiver, Transmitter},
};
use crate::event::{DriverEvent, DriverEvents};

/// Room for the longest Control packet (24 bytes plus at most 28 of authentication) and
/// more; anything longer is malformed anyway.
const RECEIVE_BUFFER: usize = 128;

/// Datagrams read from one socket before the loop looks at its timers and other sockets
/// again, so that a flood on one port delays nothing else for long.
const BATCH: usize = 64;

/// How long the task sleeps when no session has a deadline.
const IDLE: Duration = Duration::from_secs(3600);

/// The sessions, keyed by peer address, and the counters of datagrams that found none.
#[derive(Default)]
pub(super) struct Table {
    peers: HashMap<IpAddr, Peer>,
    /// Local discriminator to peer address, for demultiplexing (RFC 5880 §6.3).
    discriminators: HashMap<u32, IpAddr>,
    unmatched: BTreeMap<&'static str, u64>,
}

impl Table {
    pub(super) fn len(&self) -> usize {
        self.peers.len()
    }

    pub(super) fn status(&self) -> Vec<BfdPeerStatus> {
        let mut status: Vec<_> = self
            .peers
            .iter()
            .map(|(&address, peer)| peer.status(address))
            .collect();
        status.sort_unstable_by_key(|status| status.peer);
        status
    }

    pub(super) fn unmatched_drops(&self) -> BTreeMap<&'static str, u64> {
        self.unmatched.clone()
    }

    /// Counts a dropped datagram against the session of its sender, if it has one.
    fn drop_from(&mut self, source: IpAddr, reason: &'static str) {
        debug!(peer = %source, reason, "bfd packet dropped");
        let counter = match self.peers.get_mut(&source) {
            Some(peer) => peer.drops.entry(reason),
            None => self.unmatched.entry(reason),
        };
        *counter.or_default() += 1;
    }

    /// A random discriminator that no live session uses.
    fn new_discriminator(&self, random: &mut Xorshift) -> NonZeroU32 {
        loop {
            if let Some(discriminator) = NonZeroU32::new(random.next_u32())
                && !self.discriminators.contains_key(&discriminator.get())
            {
                return discriminator;
            }
        }
    }

    fn remove(&mut self, address: IpAddr) -> Option<Peer> {
        let peer = self.peers.remove(&address)?;
        self.discriminators
            .remove(&peer.session.local_discriminator().get());
        Some(peer)
    }
}

/// One session with its socket and counters.
struct Peer {
    session: Session,
    local: Option<IpAddr>,
    /// Opened on the first transmit, and again after it failed to open.
    transmitter: Option<Transmitter>,
    received: u64,
    sent: u64,
    send_errors: u64,
    /// The kind of the last send error, so that a lasting failure is logged once.
    failing: Option<io::ErrorKind>,
    drops: BTreeMap<&'static str, u64>,
}

impl Peer {
    /// Sends what the session wants sent and queues its events.
    fn flush(&mut self, address: IpAddr, now: Instant, work: &mut Work) {
        while let Some(packet) = self.session.poll_transmit(now) {
            self.transmit(address, &packet.encode(), &mut work.random);
        }
        while let Some(event) = self.session.poll_event() {
            match event {
                Event::Up => info!(peer = %address, "bfd session up"),
                Event::Down(cause) => info!(peer = %address, cause = ?cause, "bfd session down"),
            }
            work.events.push((address, event));
        }
    }

    fn transmit(&mut self, address: IpAddr, packet: &[u8], random: &mut Xorshift) {
        let result = match &self.transmitter {
            Some(transmitter) => transmitter.send(packet),
            None => Transmitter::open(address, self.local, self.session.hop(), random).and_then(
                |transmitter| {
                    let sent = transmitter.send(packet);
                    self.transmitter = Some(transmitter);
                    sent
                },
            ),
        };
        match result {
            Ok(()) => {
                self.sent += 1;
                self.failing = None;
            }
            Err(error) => {
                self.send_errors += 1;
                if self.failing != Some(error.kind()) {
                    warn!(peer = %address, %error, "bfd packet not sent");
                    self.failing = Some(error.kind());
                }
            }
        }
    }

    fn status(&self, address: IpAddr) -> BfdPeerStatus {
        let session = &self.session;
        BfdPeerStatus {
            peer: address,
            local: self.local,
            hop: session.hop(),
            state: session.state(),
            remote_state: session.remote_state(),
            local_discriminator: session.local_discriminator().get(),
            remote_discriminator: session.remote_discriminator().map(NonZeroU32::get),
            diagnostic: session.diagnostic(),
            detection_time: session.detection_time(),
            transmit_interval: session.transmit_interval(),
            packets_received: self.received,
            packets_sent: self.sent,
            send_errors: self.send_errors,
            drops: self.drops.clone(),
        }
    }
}

/// What the loop reuses from one step to the next, so that a packet allocates nothing.
struct Work {
    random: Xorshift,
    /// Events to report once the table is unlocked.
    events: Vec<(IpAddr, Event)>,
}

/// The driver task: the sockets it waits on and the [`Engine`] that does the work.
pub(super) struct Driver {
    /// IPv4 single hop, IPv6 single hop, IPv4 multi hop, IPv6 multi hop; `None` without IPv6.
    receivers: [Option<Receiver>; 4],
    commands: mpsc::UnboundedReceiver<Command>,
    engine: Engine,
}

impl Driver {
    pub(super) fn new(
        receivers: [Option<Receiver>; 4],
        commands: mpsc::UnboundedReceiver<Command>,
        table: Arc<Mutex<Table>>,
        reports: DriverEvents,
    ) -> Self {
        let engine = Engine {
            table,
            reports,
            buffer: [0; RECEIVE_BUFFER],
            cmsg: CmsgBuffer::new(),
            work: Work {
                random: Xorshift::new(entropy()),
                events: Vec::new(),
            },
        };
        Self {
            receivers,
            commands,
            engine,
        }
    }

    /// Runs until [`Command::Shutdown`], or until every handle is gone.
    pub(super) async fn run(self) {
        let Self {
            receivers: [v4_single, v6_single, v4_multi, v6_multi],
            mut commands,
            mut engine,
        } = self;
        let sleep = time::sleep_until(engine.next_deadline());
        tokio::pin!(sleep);
        loop {
            sleep.as_mut().reset(engine.next_deadline());
            // No `biased`: a flood on one socket must not starve the others.
            let flow = tokio::select! {
                command = commands.recv() => match command {
                    Some(Command::Shutdown) | None => ControlFlow::Break(()),
                    Some(command) => {
                        engine.command(command);
                        ControlFlow::Continue(())
                    }
                },
                ready = readable(v4_single.as_ref()) => engine.drain(ready),
                ready = readable(v6_single.as_ref()) => engine.drain(ready),
                ready = readable(v4_multi.as_ref()) => engine.drain(ready),
                ready = readable(v6_multi.as_ref()) => engine.drain(ready),
                () = &mut sleep => ControlFlow::Continue(()),
            };
            if flow.is_break() {
                engine.shutdown();
                engine.deliver_events();
                return;
            }
            // Every turn, not only when the sleep fires: a busy socket must not hold up
            // the timers.
            engine.expire();
            engine.deliver_events();
        }
    }
}

/// The sessions and the buffers the loop reuses.
struct Engine {
    table: Arc<Mutex<Table>>,
    /// Where Up and Down are reported.
    reports: DriverEvents,
    buffer: [u8; RECEIVE_BUFFER],
    cmsg: CmsgBuffer,
    work: Work,
}

impl Engine {
    /// Reads up to [`BATCH`] datagrams from the socket that became readable.
    fn drain(&mut self, ready: io::Result<&Receiver>) -> ControlFlow<()> {
        let receiver = match ready {
            Ok(ready) => ready,
            Err(error) => {
                // Only a runtime that is shutting down takes the reactor away.
                warn!(%error, "bfd receive socket unusable");
                return ControlFlow::Break(());
            }
        };
        let mut table = lock(&self.table);
        for _ in 0..BATCH {
            match receiver.try_receive(&mut self.buffer, &mut self.cmsg) {
                Ok(datagram) => {
                    let payload = &self.buffer[..datagram.len.min(RECEIVE_BUFFER)];
                    receive(
                        &mut table,
                        &mut self.work,
                        receiver.hop(),
                        datagram,
                        payload,
                    );
                }
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => break,
                Err(error) => {
                    debug!(%error, "bfd receive failed");
                    break;
                }
            }
        }
        ControlFlow::Continue(())
    }

    fn command(&mut self, command: Command) {
        let now = Instant::now();
        let mut table = lock(&self.table);
        match command {
            Command::Add {
                peer: address,
                local,
                hop,
                profile,
            } => add(
                &mut table,
                &mut self.work,
                now,
                address,
                local,
                hop,
                profile,
            ),
            Command::Remove(address) => {
                if let Some(mut peer) = table.remove(address) {
                    debug!(peer = %address, "bfd session removed");
                    peer.session.admin_down();
                    peer.flush(address, now, &mut self.work);
                }
            }
            Command::Shutdown => {}
        }
    }

    /// Runs the timers of every session whose deadline has passed.
    fn expire(&mut self) {
        let now = Instant::now();
        let mut table = lock(&self.table);
        for (&address, peer) in &mut table.peers {
            if peer.session.poll_timeout().is_some_and(|due| due <= now) {
                peer.session.handle_timeout(now);
                peer.flush(address, now, &mut self.work);
            }
        }
    }

    /// Tells every peer AdminDown and forgets the sessions.
    fn shutdown(&mut self) {
        let now = Instant::now();
        let mut table = lock(&self.table);
        for (address, mut peer) in table.peers.drain() {
            peer.session.admin_down();
            peer.flush(address, now, &mut self.work);
        }
        table.discriminators.clear();
    }

    fn next_deadline(&self) -> time::Instant {
        let table = lock(&self.table);
        let earliest = table
            .peers
            .values()
            .filter_map(|peer| peer.session.poll_timeout())
            .min();
        time::Instant::from_std(earliest.unwrap_or_else(|| Instant::now() + IDLE))
    }

    /// Reports the events, outside the table's lock.
    fn deliver_events(&mut self) {
        for (peer, event) in self.work.events.drain(..) {
            // An owner that has gone no longer needs to know.
            let _ = self.reports.send(DriverEvent::Bfd { peer, event });
        }
    }
}

/// Waits for a receive socket, or forever if there is none (no IPv6 on this host).
async fn readable(receiver: Option<&Receiver>) -> io::Result<&Receiver> {
    match receiver {
        Some(receiver) => receiver.readable().await.map(|()| receiver),
        None => std::future::pending().await,
    }
}

/// Demultiplexes one datagram and hands it to its session (RFC 5880 §6.3, §6.8.6).
fn receive(table: &mut Table, work: &mut Work, hop: Hop, datagram: Datagram, payload: &[u8]) {
    let source = datagram.source;
    let Some(ttl) = datagram.ttl else {
        return table.drop_from(source, "no_ttl");
    };
    // A routed packet can never arrive with 255 (RFC 5881 §5): refuse it before parsing.
    if hop == Hop::Single && ttl < TTL {
        return table.drop_from(source, "ttl_too_low");
    }
    let packet = match ControlPacket::parse(payload) {
        Ok(packet) => packet,
        Err(error) => return table.drop_from(source, error.label()),
    };
    let address = match packet.your_discriminator {
        0 => source,
        discriminator => match table.discriminators.get(&discriminator) {
            Some(&address) if address == source => address,
            Some(_) => return table.drop_from(source, "wrong_source"),
            None => return table.drop_from(source, "unknown_discriminator"),
        },
    };
    let Some(peer) = table.peers.get_mut(&address) else {
        return table.drop_from(source, "unknown_peer");
    };
    if peer.session.hop() != hop {
        return table.drop_from(source, "wrong_port");
    }
    let now = Instant::now();
    match peer.session.handle_packet(now, &packet, ttl) {
        Ok(()) => peer.received += 1,
        Err(error) => return table.drop_from(source, error.label()),
    }
    peer.flush(address, now, work);
}

/// Starts the session towards `address`, or updates it in place when only the profile or
/// the sink changed.
fn add(
    table: &mut Table,
    work: &mut Work,
    now: Instant,
    address: IpAddr,
    local: Option<IpAddr>,
    hop: Hop,
    profile: Profile,
) {
    if let Some(peer) = table.peers.get_mut(&address)
        && peer.local == local
        && peer.session.hop() == hop
    {
        peer.session.set_profile(profile);
        peer.flush(address, now, work);
        return;
    }
    if let Some(mut old) = table.remove(address) {
        old.session.admin_down();
        old.flush(address, now, work);
    }
    let discriminator = table.new_discriminator(&mut work.random);
    let seed = (u64::from(discriminator.get()) << 32) | u64::from(work.random.next_u32());
    let session = Session::new(hop, profile, discriminator, Xorshift::new(seed), now);
    let mut peer = Peer {
        session,
        local,
        transmitter: None,
        received: 0,
        sent: 0,
        send_errors: 0,
        failing: None,
        drops: BTreeMap::new(),
    };
    debug!(peer = %address, ?hop, discriminator, "bfd session added");
    peer.flush(address, now, work);
    table.discriminators.insert(discriminator.get(), address);
    table.peers.insert(address, peer);
}

fn lock(table: &Mutex<Table>) -> MutexGuard<'_, Table> {
    table.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A seed for discriminators, source ports and jitter: std's per-process random hash keys,
/// mixed with the clock.
fn entropy() -> u64 {
    let mut hasher = RandomState::new().build_hasher();
    let since_epoch = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    hasher.write_u128(since_epoch.as_nanos());
    hasher.finish()
}
