//! One BGP session (RFC 4271 §8) as a sans-IO state machine, simplified for a speaker that
//! only announces: it has one connection at a time, dialed or (while between connections)
//! accepted by the driver, so no collision detection, and it ignores the routes it receives
//! after checking them.
//!
//! The driver owns the TCP connection and the clock. It calls [`Session::start`], dials when
//! it sees [`Event::Dial`], reports the outcome with [`Session::handle_connected`] or
//! [`Session::handle_closed`], feeds received bytes to [`Session::handle_bytes`] and calls
//! [`Session::handle_timeout`] once [`Session::poll_timeout`] has passed. After any call it
//! writes out everything [`Session::poll_transmit`] returns, then acts on
//! [`Session::poll_event`], in that order: a NOTIFICATION must leave before the connection
//! closes.
//!
//! Graceful restart (RFC 4724), when [`Config::graceful_restart`] is set: every OPEN offers
//! the capability for IPv4 and IPv6 unicast with the Forwarding State bit set (the forwarding
//! of service addresses does not live in the speaker, so it survives the speaker's restart),
//! and the Restart State bit while [`Session::set_restarting`] says so, until the session is
//! next Established. Once Established, the initial table of each family negotiated goes out
//! followed by its End-of-RIB marker, so a router that kept our routes as stale drops exactly
//! those not announced again. Stopping with [`Cease::Shutdown`] withdraws every route before
//! the NOTIFICATION, with graceful restart or without: leaving must never look like a restart.

use std::{
    collections::VecDeque,
    time::{Duration, Instant},
};

use ipnet::IpNet;

use crate::{
    config::{Config, NextHops, PeerAsn},
    error::MessageError,
    message::{
        AS_TRANS, AsWidth, Capability, HEADER_LEN, MAX_MESSAGE_LEN, Message, Notification, Open,
        frame_len,
    },
    restart::{Family, GracefulRestart},
    rib::{Peer, Rib, Route},
    update::Update,
};

/// Hold time while waiting for the peer's OPEN (RFC 4271 §8: "a large value", 4 minutes).
const OPEN_HOLD_TIME: Duration = Duration::from_secs(240);

/// RFC 4271 §8.2.2 states.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum State {
    /// Stopped.
    Idle,
    /// Dialing.
    Connect,
    /// Waiting to dial again after a failure.
    Active,
    /// Connected, our OPEN sent.
    OpenSent,
    /// The peer's OPEN accepted, waiting for its KEEPALIVE.
    OpenConfirm,
    /// Up: routes flow.
    Established,
}

/// What the driver must do or know.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// Open a TCP connection to the peer.
    Dial,
    /// Close the TCP connection (after sending what was transmitted), or abandon the dial.
    Close(DownReason),
    /// The session is up.
    Established,
    /// The session left Established.
    Down(DownReason),
}

/// Why a connection ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DownReason {
    /// Nothing heard from the peer within the hold time; we sent NOTIFICATION 4/0.
    HoldTimerExpired,
    /// The peer sent this NOTIFICATION.
    NotificationReceived(Notification),
    /// The peer sent something we refuse; we sent the error's NOTIFICATION.
    InvalidMessage(MessageError),
    /// A message the state does not allow; we sent an FSM error NOTIFICATION.
    UnexpectedMessage,
    /// The TCP connection closed or could not be opened.
    ConnectionClosed,
    /// [`Session::stop`]; we sent this Cease NOTIFICATION if connected.
    Stopped(Notification),
}

impl DownReason {
    /// A fixed snake_case name for a counter's label.
    pub fn label(&self) -> &'static str {
        match self {
            Self::HoldTimerExpired => "hold_timer_expired",
            Self::NotificationReceived(_) => "notification_received",
            Self::InvalidMessage(error) => error.label(),
            Self::UnexpectedMessage => "unexpected_message",
            Self::ConnectionClosed => "connection_closed",
            Self::Stopped(_) => "stopped",
        }
    }
}

/// How [`Session::stop`] tells the peer why.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Cease {
    /// Cease 6/2: the peer is removed or the speaker exits.
    Shutdown,
    /// Cease 6/4: the session restarts with new settings.
    Reset,
    /// Cease 6/10 (RFC 9384): BFD saw the path fail.
    BfdDown,
}

impl Cease {
    fn notification(self) -> Notification {
        match self {
            Self::Shutdown => Notification::administrative_shutdown(),
            Self::Reset => Notification::administrative_reset(),
            Self::BfdDown => Notification::bfd_down(),
        }
    }
}

/// The timers and encoding agreed in the OPEN exchange.
#[derive(Clone, Copy, Debug)]
struct Negotiated {
    peer: Peer,
    /// `None` for a hold time of zero: no keepalives, no hold timer.
    hold: Option<Duration>,
    /// The families both sides offered, which get an End-of-RIB marker.
    families: [bool; 2],
    /// Both sides offered graceful restart.
    graceful_restart: bool,
}

/// One BGP session.
#[derive(Debug)]
pub struct Session {
    config: Config,
    state: State,
    rib: Rib,
    next_hops: NextHops,
    negotiated: Option<Negotiated>,
    /// Bytes of the message being received; never more than one message.
    rx: Vec<u8>,
    transmit: VecDeque<Vec<u8>>,
    events: VecDeque<Event>,
    connect_retry_at: Option<Instant>,
    hold_at: Option<Instant>,
    keepalive_at: Option<Instant>,
    /// Connection attempts that failed since the session was last Established.
    failures: u32,
    /// The Restart State bit of our next OPENs.
    restarting: bool,
    /// End-of-RIB markers go out after the next flush: the initial table of this connection.
    end_of_rib_due: bool,
    updates_sent: u64,
    updates_received: u64,
}

impl Session {
    /// A stopped session.
    pub fn new(config: Config) -> Self {
        Self {
            config,
            state: State::Idle,
            rib: Rib::default(),
            next_hops: NextHops::default(),
            negotiated: None,
            rx: Vec::with_capacity(MAX_MESSAGE_LEN),
            transmit: VecDeque::new(),
            events: VecDeque::new(),
            connect_retry_at: None,
            hold_at: None,
            keepalive_at: None,
            failures: 0,
            restarting: false,
            end_of_rib_due: false,
            updates_sent: 0,
            updates_received: 0,
        }
    }

    /// Starts a stopped session: the driver is asked to dial at once.
    pub fn start(&mut self) {
        if self.state == State::Idle {
            self.failures = 0;
            self.dial();
        }
    }

    /// Stops the session: a connected peer gets the Cease NOTIFICATION, and the session stays
    /// Idle until [`Session::start`].
    pub fn stop(&mut self, cease: Cease) {
        if let (Cease::Shutdown, State::Established, Some(negotiated)) =
            (cease, self.state, self.negotiated)
        {
            // The router would drop the routes on the Cease anyway (we never offer RFC 8538's
            // N bit), but only once it reads it: withdrawing first makes the order explicit on
            // the wire, with or without graceful restart, and no router keeps the routes as if
            // we restarted.
            let updates = self.rib.withdraw_all(&negotiated.peer);
            self.send_updates(updates);
        }
        let notification = cease.notification();
        let send = self.is_connected().then(|| notification.clone());
        self.disconnect(DownReason::Stopped(notification), send);
        self.state = State::Idle;
        self.connect_retry_at = None;
    }

    /// Closes the connection at once, with the Cease NOTIFICATION if connected, and dials
    /// again after the back-off as after any failure. For a path that BFD found broken.
    /// Ignored while stopped.
    pub fn reset(&mut self, now: Instant, cease: Cease) {
        if self.state == State::Idle {
            return;
        }
        let notification = cease.notification();
        let send = self.is_connected().then(|| notification.clone());
        self.fail(now, DownReason::Stopped(notification), send);
    }

    /// Sets the Restart State bit (RFC 4724 §3) in the OPENs sent until the session is next
    /// Established: the speaker has restarted and this session is its first since. Only sent
    /// with graceful restart on.
    pub fn set_restarting(&mut self, restarting: bool) {
        self.restarting = restarting;
    }

    /// Replaces the settings. They apply from the next connection, so a driver changing them
    /// stops the session first and starts it again; the prefixes stay.
    pub fn reconfigure(&mut self, config: Config) {
        self.config = config;
    }

    /// The TCP connection is up (dialed, or accepted from the peer while Connect or Active).
    /// Ignored in other states.
    pub fn handle_connected(&mut self, now: Instant, next_hops: NextHops) {
        if !matches!(self.state, State::Connect | State::Active) {
            return;
        }
        self.next_hops = next_hops;
        self.connect_retry_at = None;
        let local_asn = self.config.local_asn;
        let mut capabilities = vec![Capability::IPV4_UNICAST, Capability::IPV6_UNICAST];
        if let Some(restart_time) = self.config.graceful_restart {
            let offered = GracefulRestart::offered(restart_time, self.restarting);
            capabilities.push(Capability::GracefulRestart(offered));
        }
        capabilities.push(Capability::FourOctetAs(local_asn));
        let open = Open {
            my_as: u16::try_from(local_asn).unwrap_or(AS_TRANS),
            hold_time: self.config.hold_seconds(),
            router_id: self.config.router_id,
            capabilities,
        };
        self.send(Message::Open(open));
        self.state = State::OpenSent;
        self.hold_at = Some(now + OPEN_HOLD_TIME);
    }

    /// The TCP connection closed, or the dial failed. Retries after the back-off.
    pub fn handle_closed(&mut self, now: Instant) {
        if self.state != State::Idle {
            self.fail(now, DownReason::ConnectionClosed, None);
        }
    }

    /// Bytes received on the connection, in any chunks.
    pub fn handle_bytes(&mut self, now: Instant, mut bytes: &[u8]) {
        while !bytes.is_empty() && self.is_connected() {
            let wanted = if self.rx.len() < HEADER_LEN {
                HEADER_LEN
            } else {
                match frame_len(&self.rx) {
                    Ok(length) => length,
                    Err(error) => return self.refuse(now, error),
                }
            };
            let (take, rest) = bytes.split_at(bytes.len().min(wanted - self.rx.len()));
            self.rx.extend_from_slice(take);
            bytes = rest;
            if self.rx.len() < HEADER_LEN {
                continue;
            }
            match frame_len(&self.rx) {
                Ok(length) if length == self.rx.len() => {
                    let message = std::mem::take(&mut self.rx);
                    self.handle_message(now, &message);
                }
                Ok(_) => {}
                Err(error) => return self.refuse(now, error),
            }
        }
    }

    /// Runs the timers that are due.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.hold_at.is_some_and(|at| at <= now) {
            let notification = Notification::hold_timer_expired();
            self.fail(now, DownReason::HoldTimerExpired, Some(notification));
        }
        if self.keepalive_at.is_some_and(|at| at <= now) {
            self.send(Message::Keepalive);
            self.restart_keepalive(now);
        }
        if self.state == State::Active && self.connect_retry_at.is_some_and(|at| at <= now) {
            self.connect_retry_at = None;
            self.dial();
        }
    }

    /// The next message to write to the connection. Once Established, pending RIB changes
    /// are turned into UPDATEs here, so changes made between two polls share messages; the
    /// first ones of a connection are followed by the End-of-RIB markers.
    pub fn poll_transmit(&mut self, now: Instant) -> Option<Vec<u8>> {
        if let (State::Established, Some(negotiated)) = (self.state, self.negotiated) {
            let mut updates = self.rib.flush(&negotiated.peer);
            if std::mem::take(&mut self.end_of_rib_due) {
                let families = Family::ALL.into_iter().zip(negotiated.families);
                updates.extend(
                    families
                        .filter(|(_, negotiated)| *negotiated)
                        .map(|(family, _)| Update::end_of_rib(family)),
                );
            }
            if !updates.is_empty() {
                self.send_updates(updates);
                self.restart_keepalive(now);
            }
        }
        self.transmit.pop_front()
    }

    /// When [`Session::handle_timeout`] must next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        [self.connect_retry_at, self.hold_at, self.keepalive_at]
            .into_iter()
            .flatten()
            .min()
    }

    /// The next event for the driver.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Announces `prefix` (host bits are cleared) with `route`, replacing earlier attributes.
    pub fn announce(&mut self, prefix: IpNet, route: Route) {
        self.rib.announce(prefix, route);
    }

    /// Withdraws `prefix`.
    pub fn withdraw(&mut self, prefix: IpNet) {
        self.rib.withdraw(prefix);
    }

    /// Adds the GRACEFUL_SHUTDOWN community (RFC 8326) to every prefix, or removes it again;
    /// the prefixes are announced anew either way.
    pub fn set_graceful_shutdown(&mut self, on: bool) {
        self.rib.set_graceful_shutdown(on);
    }

    /// Whether GRACEFUL_SHUTDOWN is being added.
    pub fn graceful_shutdown(&self) -> bool {
        self.rib.graceful_shutdown()
    }

    /// The current state.
    pub fn state(&self) -> State {
        self.state
    }

    /// The settings.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Prefixes the peer holds from us (`metallb_bgp_announced_prefixes_total`).
    pub fn advertised_prefixes(&self) -> usize {
        self.rib.advertised_len()
    }

    /// Prefixes we want announced, whether or not the session is up.
    pub fn desired_prefixes(&self) -> usize {
        self.rib.desired_len()
    }

    /// The hold time agreed with the peer, once its OPEN was accepted; zero means none.
    pub fn negotiated_hold_time(&self) -> Option<Duration> {
        self.negotiated
            .map(|negotiated| negotiated.hold.unwrap_or_default())
    }

    /// Whether both sides offered graceful restart on the current connection.
    pub fn graceful_restart_negotiated(&self) -> bool {
        self.negotiated
            .is_some_and(|negotiated| negotiated.graceful_restart)
    }

    /// Whether our next OPEN says we restarted.
    pub fn restarting(&self) -> bool {
        self.restarting && self.config.graceful_restart.is_some()
    }

    /// UPDATE messages sent since the session was created.
    pub fn updates_sent(&self) -> u64 {
        self.updates_sent
    }

    /// UPDATE messages received since the session was created.
    pub fn updates_received(&self) -> u64 {
        self.updates_received
    }

    fn is_connected(&self) -> bool {
        matches!(
            self.state,
            State::OpenSent | State::OpenConfirm | State::Established
        )
    }

    fn width(&self) -> AsWidth {
        self.negotiated
            .map_or(AsWidth::Two, |negotiated| negotiated.peer.width)
    }

    fn dial(&mut self) {
        self.state = State::Connect;
        self.events.push_back(Event::Dial);
    }

    fn send(&mut self, message: Message) {
        let bytes = message.encode(self.width());
        self.transmit.push_back(bytes);
    }

    fn send_updates(&mut self, updates: Vec<Update>) {
        self.updates_sent += updates.len() as u64;
        for update in updates {
            self.send(Message::Update(Box::new(update)));
        }
    }

    fn restart_keepalive(&mut self, now: Instant) {
        let hold = self.negotiated.and_then(|negotiated| negotiated.hold);
        self.keepalive_at = hold.map(|hold| now + hold / 3);
    }

    fn restart_hold(&mut self, now: Instant) {
        let hold = self.negotiated.and_then(|negotiated| negotiated.hold);
        self.hold_at = hold.map(|hold| now + hold);
    }

    fn handle_message(&mut self, now: Instant, bytes: &[u8]) {
        let message = match Message::parse(bytes, self.width()) {
            Ok(message) => message,
            Err(error) => return self.refuse(now, error),
        };
        if matches!(self.state, State::OpenConfirm | State::Established) {
            self.restart_hold(now);
        }
        match (self.state, message) {
            (_, Message::Notification(notification)) => {
                self.fail(now, DownReason::NotificationReceived(notification), None);
            }
            (State::OpenSent, Message::Open(open)) => match self.negotiate(&open) {
                Ok(negotiated) => {
                    self.negotiated = Some(negotiated);
                    self.send(Message::Keepalive);
                    self.restart_keepalive(now);
                    self.restart_hold(now);
                    self.state = State::OpenConfirm;
                }
                Err(error) => self.refuse(now, error),
            },
            (State::OpenConfirm, Message::Keepalive) => {
                self.state = State::Established;
                self.failures = 0;
                self.restarting = false;
                self.end_of_rib_due = self.config.graceful_restart.is_some();
                // A new connection starts with an empty Adj-RIB-In at the peer (stale routes
                // it kept are not ours to count: they go unless announced again).
                self.rib.forget_advertised();
                self.events.push_back(Event::Established);
            }
            // Received routes are checked by the parser and otherwise ignored: this speaker
            // only announces. A treat-as-withdraw UPDATE needs no action for the same reason.
            (State::Established, Message::Keepalive) => {}
            (State::Established, Message::Update(_)) => self.updates_received += 1,
            (state, _) => {
                let subcode = match state {
                    State::OpenSent => 1,
                    State::OpenConfirm => 2,
                    _ => 3,
                };
                let notification = Notification::fsm_error(subcode);
                self.fail(now, DownReason::UnexpectedMessage, Some(notification));
            }
        }
    }

    /// Checks the peer's OPEN against our settings (RFC 4271 §6.2, RFC 6793, RFC 4760).
    fn negotiate(&self, open: &Open) -> Result<Negotiated, MessageError> {
        let local_asn = self.config.local_asn;
        let asn = open.asn();
        let asn_ok = match self.config.peer_asn {
            PeerAsn::Exact(expected) => asn == expected,
            PeerAsn::Internal => asn == local_asn,
            PeerAsn::External => asn != local_asn,
        };
        if !asn_ok {
            return Err(MessageError::BadPeerAs { asn });
        }
        if matches!(open.hold_time, 1 | 2) {
            return Err(MessageError::UnacceptableHoldTime {
                seconds: open.hold_time,
            });
        }
        let ibgp = asn == local_asn;
        if open.router_id.is_unspecified() || (ibgp && open.router_id == self.config.router_id) {
            return Err(MessageError::BadBgpIdentifier { id: open.router_id });
        }
        if local_asn > u32::from(u16::MAX) && !open.four_octet_as() {
            return Err(MessageError::FourOctetAsRequired { local_asn });
        }
        let (ipv4, ipv6) = if open.multiprotocol() {
            (
                open.has(&Capability::IPV4_UNICAST),
                open.has(&Capability::IPV6_UNICAST),
            )
        } else {
            (true, false)
        };
        let hold = self.config.hold_seconds().min(open.hold_time);
        let next_hops = self.next_hops;
        let graceful_restart =
            self.config.graceful_restart.is_some() && open.graceful_restart().is_some();
        Ok(Negotiated {
            families: [ipv4, ipv6],
            graceful_restart,
            peer: Peer {
                local_asn,
                ibgp,
                width: if open.four_octet_as() {
                    AsWidth::Four
                } else {
                    AsWidth::Two
                },
                ipv4: next_hops.ipv4.filter(|_| ipv4),
                ipv6: next_hops
                    .ipv6
                    .filter(|_| ipv6)
                    .map(|global| (global, next_hops.ipv6_link_local)),
            },
            hold: (hold > 0).then(|| Duration::from_secs(u64::from(hold))),
        })
    }

    fn refuse(&mut self, now: Instant, error: MessageError) {
        let notification = error.notification();
        self.fail(now, DownReason::InvalidMessage(error), Some(notification));
    }

    /// Ends the connection and schedules the next attempt after the back-off (1, 2, 4 ... s).
    fn fail(&mut self, now: Instant, reason: DownReason, notification: Option<Notification>) {
        self.disconnect(reason, notification);
        self.state = State::Active;
        let backoff = Duration::from_secs(1 << self.failures.min(16));
        self.connect_retry_at = Some(now + backoff.min(self.config.connect_retry_max));
        self.failures = self.failures.saturating_add(1);
    }

    fn disconnect(&mut self, reason: DownReason, notification: Option<Notification>) {
        if let Some(notification) = notification {
            self.send(Message::Notification(notification));
        }
        // After handle_closed there is nothing left to close; in Idle and Active neither.
        let open = !matches!(self.state, State::Idle | State::Active);
        if open && reason != DownReason::ConnectionClosed {
            self.events.push_back(Event::Close(reason.clone()));
        }
        if self.state == State::Established {
            self.events.push_back(Event::Down(reason));
        }
        self.rx.clear();
        self.negotiated = None;
        self.end_of_rib_due = false;
        self.hold_at = None;
        self.keepalive_at = None;
        self.rib.forget_advertised();
    }
}
