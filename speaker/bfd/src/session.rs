//! One BFD session in asynchronous mode (RFC 5880 §6.2, §6.8) as a sans-IO state machine.
//!
//! The driver owns the socket and the clock. It passes each received packet with its TTL to
//! [`Session::handle_packet`] and calls [`Session::handle_timeout`] once
//! [`Session::poll_timeout`] has passed. After either, it drains [`Session::poll_transmit`]
//! (packets to send with TTL [`TTL`](crate::TTL)) and [`Session::poll_event`] (Up and Down for
//! the BGP session). Demand mode and the echo function are not implemented: we never set the
//! D bit and always ask for no echo packets.

use std::{
    collections::VecDeque,
    num::{NonZeroU8, NonZeroU32},
    time::{Duration, Instant},
};

use thiserror::Error;

use crate::{
    config::{Hop, Profile, micros},
    jitter::{JitterSource, Xorshift, jittered_us},
    packet::{ControlPacket, Diagnostic, State},
};

/// The slowest start: while not Up, Desired Min TX is at least one second (§6.8.3).
const SLOW_TX_US: u32 = 1_000_000;

/// What the client protocol must hear about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// The session came Up: the path works in both directions.
    Up,
    /// The session left Up.
    Down(DownCause),
}

/// Why a session left Up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DownCause {
    /// No packet from the peer within the detection time.
    DetectionTimeExpired,
    /// The peer reported Down: it stopped hearing us.
    NeighborDown,
    /// The peer reported AdminDown: it is being stopped or disabled on purpose.
    NeighborAdminDown,
    /// This side was set AdminDown.
    AdminDown,
}

impl DownCause {
    /// The diagnostic this side sends after going down for this cause.
    pub fn diagnostic(self) -> Diagnostic {
        match self {
            Self::DetectionTimeExpired => Diagnostic::ControlDetectionTimeExpired,
            Self::NeighborDown | Self::NeighborAdminDown => Diagnostic::NeighborSignaledSessionDown,
            Self::AdminDown => Diagnostic::AdministrativelyDown,
        }
    }

    /// Whether the forwarding path failed, so the client must tear its session down at once.
    /// An administrative change on either side is no failure (RFC 5882 §3.2).
    pub fn is_failure(self) -> bool {
        matches!(self, Self::DetectionTimeExpired | Self::NeighborDown)
    }
}

/// Why a well-formed packet was refused by the session it was demultiplexed to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum ReceiveError {
    /// The TTL shows the packet crossed more routers than the session allows (RFC 5881 §5,
    /// RFC 5883 §5).
    #[error("TTL {ttl} is below the required {minimum}")]
    TtlTooLow {
        /// TTL or hop limit of the received packet.
        ttl: u8,
        /// 255 for single hop, the profile's minimum TTL for multi hop.
        minimum: u8,
    },
    /// Your Discriminator names another session (§6.8.6).
    #[error("your discriminator {received} is not this session's {local}")]
    WrongDiscriminator {
        /// Your Discriminator of the packet.
        received: u32,
        /// This session's discriminator.
        local: u32,
    },
}

impl ReceiveError {
    /// A fixed snake_case name for a drop counter's label.
    pub fn label(&self) -> &'static str {
        match self {
            Self::TtlTooLow { .. } => "ttl_too_low",
            Self::WrongDiscriminator { .. } => "wrong_discriminator",
        }
    }
}

/// Desired Min TX and Required Min RX, in wire microseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Intervals {
    desired_min_tx: u32,
    required_min_rx: u32,
}

impl Intervals {
    fn for_state(profile: &Profile, state: State) -> Self {
        let desired = micros(profile.desired_min_tx);
        Self {
            desired_min_tx: if state == State::Up {
                desired
            } else {
                desired.max(SLOW_TX_US)
            },
            required_min_rx: micros(profile.required_min_rx),
        }
    }
}

/// What the last accepted packet said about the peer (the bfd.Remote* variables of §6.8.1).
#[derive(Clone, Copy, Debug)]
struct Remote {
    /// Zero while no peer has been heard.
    discriminator: u32,
    state: State,
    /// Zero while no peer has been heard; a parsed packet never carries zero.
    detect_multiplier: u8,
    desired_min_tx: u32,
    required_min_rx: u32,
}

impl Default for Remote {
    fn default() -> Self {
        Self {
            discriminator: 0,
            state: State::Down,
            detect_multiplier: 0,
            desired_min_tx: 0,
            // §6.8.1 starts at 1 µs so that we send before hearing the peer's value.
            required_min_rx: 1,
        }
    }
}

/// Progress of our Poll Sequence (§6.5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Poll {
    Idle,
    Running,
    /// The parameters changed again after the running sequence began: a Final may answer a
    /// packet that carried the older values, so one more sequence must follow.
    Rerun,
}

/// One BFD session. `J` supplies the randomness of the transmit jitter.
#[derive(Debug)]
pub struct Session<J = Xorshift> {
    hop: Hop,
    profile: Profile,
    jitter: J,
    local_discriminator: NonZeroU32,
    state: State,
    diagnostic: Diagnostic,
    remote: Remote,
    /// The intervals our packets carry.
    advertised: Intervals,
    /// The intervals our own timing uses. They differ from `advertised` only while a Poll
    /// Sequence confirms a slower transmit rate or a faster receive rate (§6.8.3).
    active: Intervals,
    poll: Poll,
    /// The peer sent a Poll, and our Final is owed.
    final_due: bool,
    /// Our packet contents changed: send one without waiting for the timer (§6.8.7).
    send_now: bool,
    next_tx: Instant,
    detect_deadline: Option<Instant>,
    events: VecDeque<Event>,
}

impl<J: JitterSource> Session<J> {
    /// A session in state Down. `local_discriminator` must be unique among the driver's
    /// sessions, since peers address packets with it. An active session sends its first
    /// packet at `now`.
    pub fn new(
        hop: Hop,
        profile: Profile,
        local_discriminator: NonZeroU32,
        jitter: J,
        now: Instant,
    ) -> Self {
        let intervals = Intervals::for_state(&profile, State::Down);
        Self {
            hop,
            profile,
            jitter,
            local_discriminator,
            state: State::Down,
            diagnostic: Diagnostic::None,
            remote: Remote::default(),
            advertised: intervals,
            active: intervals,
            poll: Poll::Idle,
            final_due: false,
            send_now: false,
            next_tx: now,
            detect_deadline: None,
            events: VecDeque::new(),
        }
    }

    /// Processes a packet demultiplexed to this session, with the TTL or hop limit it arrived
    /// with (§6.8.6 from the discriminator check on; the packet-only checks ran in
    /// [`ControlPacket::parse`]).
    ///
    /// # Errors
    ///
    /// A TTL too low for the hop count, or a Your Discriminator of another session. The
    /// session is unchanged then.
    pub fn handle_packet(
        &mut self,
        now: Instant,
        packet: &ControlPacket,
        ttl: u8,
    ) -> Result<(), ReceiveError> {
        let minimum = match self.hop {
            Hop::Single => crate::TTL,
            Hop::Multi => self.profile.minimum_ttl,
        };
        if ttl < minimum {
            return Err(ReceiveError::TtlTooLow { ttl, minimum });
        }
        let local = self.local_discriminator.get();
        if packet.your_discriminator != 0 && packet.your_discriminator != local {
            return Err(ReceiveError::WrongDiscriminator {
                received: packet.your_discriminator,
                local,
            });
        }
        self.remote = Remote {
            discriminator: packet.my_discriminator.get(),
            state: packet.state,
            detect_multiplier: packet.detect_multiplier.get(),
            desired_min_tx: packet.desired_min_tx_us,
            required_min_rx: packet.required_min_rx_us,
        };
        if packet.final_ {
            self.finish_poll();
        }
        // Restarted even in AdminDown, so the peer is not forgotten while it keeps talking.
        self.detect_deadline = self.detection_time().map(|time| now + time);
        if self.state == State::AdminDown {
            return Ok(());
        }
        match packet.state {
            State::AdminDown if self.state != State::Down => {
                self.go_down(State::Down, DownCause::NeighborAdminDown);
            }
            State::Down if self.state == State::Down => self.go_init(),
            State::Down if self.state == State::Up => {
                self.go_down(State::Down, DownCause::NeighborDown);
            }
            State::Init if matches!(self.state, State::Down | State::Init) => self.go_up(),
            State::Up if self.state == State::Init => self.go_up(),
            _ => {}
        }
        if packet.poll {
            self.final_due = true;
        }
        Ok(())
    }

    /// Runs the detection timer (§6.8.4). Call it once [`Session::poll_timeout`] has passed.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.detect_deadline.is_none_or(|deadline| now < deadline) {
            return;
        }
        self.detect_deadline = None;
        // Forget the peer (§6.8.1): a passive session falls silent, and a restarted peer is
        // learned afresh.
        self.remote = Remote::default();
        if matches!(self.state, State::Init | State::Up) {
            self.go_down(State::Down, DownCause::DetectionTimeExpired);
        }
    }

    /// The next packet to send at `now`, if one is due: periodic, a Final owed to the peer, or
    /// an early one because our contents changed (§6.8.7).
    pub fn poll_transmit(&mut self, now: Instant) -> Option<ControlPacket> {
        if !self.may_send() {
            return None;
        }
        let periodic = self.sends_periodically() && now >= self.next_tx;
        if !(periodic || self.final_due || self.send_now) {
            return None;
        }
        let final_ = std::mem::take(&mut self.final_due);
        self.send_now = false;
        let interval = jittered_us(
            self.transmit_interval_us(),
            self.profile.detect_multiplier.get(),
            self.jitter.next_u32(),
        );
        self.next_tx = now + Duration::from_micros(interval.into());
        Some(ControlPacket {
            diagnostic: self.diagnostic,
            state: self.state,
            // A Final never carries a Poll (§4.1); the next periodic packet does.
            poll: !final_ && self.poll != Poll::Idle,
            final_,
            control_plane_independent: false,
            demand: false,
            detect_multiplier: self.profile.detect_multiplier,
            my_discriminator: self.local_discriminator,
            your_discriminator: self.remote.discriminator,
            desired_min_tx_us: self.advertised.desired_min_tx,
            required_min_rx_us: self.advertised.required_min_rx,
            required_min_echo_rx_us: 0,
        })
    }

    /// When [`Session::handle_timeout`] or [`Session::poll_transmit`] has work next, if ever.
    /// Packets owed at once (after a received packet, a timeout, [`Session::admin_down`] or
    /// [`Session::set_profile`]) are not announced here: drain [`Session::poll_transmit`] after
    /// each of those calls.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let transmit = self.sends_periodically().then_some(self.next_tx);
        transmit.into_iter().chain(self.detect_deadline).min()
    }

    /// The next state change the client protocol must act on.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Takes the session down on purpose (§6.8.16). From now on packets say AdminDown with
    /// diagnostic 7, so the peer goes Down without treating it as a failure; the first is
    /// sent at once. For a graceful stop, keep driving the session until that packet has gone
    /// out. The session stays AdminDown; build a new one to start again.
    pub fn admin_down(&mut self) {
        if self.state != State::AdminDown {
            self.go_down(State::AdminDown, DownCause::AdminDown);
        }
    }

    /// Applies a changed profile. New intervals on an Up session are announced with a Poll
    /// Sequence (§6.5); a slower transmit rate and a faster receive rate wait for its Final.
    pub fn set_profile(&mut self, profile: Profile) {
        if profile.detect_multiplier != self.profile.detect_multiplier {
            self.send_now = true;
        }
        self.profile = profile;
        self.refresh_intervals();
    }

    /// The local session state.
    pub fn state(&self) -> State {
        self.state
    }

    /// The reason for the last change of the local state, as sent to the peer.
    pub fn diagnostic(&self) -> Diagnostic {
        self.diagnostic
    }

    /// This side's discriminator, which the peer's packets carry as Your Discriminator.
    pub fn local_discriminator(&self) -> NonZeroU32 {
        self.local_discriminator
    }

    /// The peer's discriminator, once the peer has been heard within the detection time.
    pub fn remote_discriminator(&self) -> Option<NonZeroU32> {
        NonZeroU32::new(self.remote.discriminator)
    }

    /// The peer's state as last reported.
    pub fn remote_state(&self) -> State {
        self.remote.state
    }

    /// Single or multi hop.
    pub fn hop(&self) -> Hop {
        self.hop
    }

    /// The profile in force.
    pub fn profile(&self) -> &Profile {
        &self.profile
    }

    /// Whether our Poll Sequence still waits for the peer's Final.
    pub fn is_polling(&self) -> bool {
        self.poll != Poll::Idle
    }

    /// How long without a packet until the session fails: the peer's Detect Mult times the
    /// greater of our Required Min RX and the peer's Desired Min TX (§6.8.4). `None` until the
    /// peer has been heard.
    pub fn detection_time(&self) -> Option<Duration> {
        NonZeroU8::new(self.remote.detect_multiplier).map(|multiplier| {
            let interval = self.active.required_min_rx.max(self.remote.desired_min_tx);
            Duration::from_micros(u64::from(multiplier.get()) * u64::from(interval))
        })
    }

    /// The negotiated transmit interval before jitter: the greater of our Desired Min TX and
    /// the peer's Required Min RX (§6.8.7).
    pub fn transmit_interval(&self) -> Duration {
        Duration::from_micros(self.transmit_interval_us().into())
    }

    fn transmit_interval_us(&self) -> u32 {
        self.active.desired_min_tx.max(self.remote.required_min_rx)
    }

    /// §6.8.7: a passive session stays silent until it knows the peer.
    fn may_send(&self) -> bool {
        !(self.profile.passive && self.remote.discriminator == 0)
    }

    /// §6.8.7: a peer asking for a zero receive interval gets no periodic packets.
    fn sends_periodically(&self) -> bool {
        self.may_send() && self.remote.required_min_rx != 0
    }

    fn go_init(&mut self) {
        self.state = State::Init;
        self.send_now = true;
    }

    fn go_up(&mut self) {
        self.state = State::Up;
        self.diagnostic = Diagnostic::None;
        self.send_now = true;
        self.events.push_back(Event::Up);
        self.refresh_intervals();
    }

    fn go_down(&mut self, to: State, cause: DownCause) {
        if self.state == State::Up {
            self.events.push_back(Event::Down(cause));
        }
        self.state = to;
        self.diagnostic = cause.diagnostic();
        self.send_now = true;
        self.refresh_intervals();
    }

    /// Recomputes the intervals after a state or profile change (§6.8.3).
    fn refresh_intervals(&mut self) {
        let target = Intervals::for_state(&self.profile, self.state);
        if self.state != State::Up {
            // Nothing relies on our timing yet: new values apply at once, without a Poll.
            self.poll = Poll::Idle;
            self.active = target;
        } else if target != self.advertised {
            // Sending faster and accepting slower are safe at once; the reverse waits until
            // the Final shows the peer has adapted.
            self.active = Intervals {
                desired_min_tx: self.active.desired_min_tx.min(target.desired_min_tx),
                required_min_rx: self.active.required_min_rx.max(target.required_min_rx),
            };
            self.poll = match self.poll {
                Poll::Idle => Poll::Running,
                Poll::Running | Poll::Rerun => Poll::Rerun,
            };
        }
        if target != self.advertised {
            self.send_now = true;
            self.advertised = target;
        }
    }

    fn finish_poll(&mut self) {
        match self.poll {
            Poll::Idle => {}
            Poll::Running => {
                self.poll = Poll::Idle;
                self.active = self.advertised;
            }
            Poll::Rerun => self.poll = Poll::Running,
        }
    }
}
