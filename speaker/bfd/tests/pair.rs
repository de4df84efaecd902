//! Two session cores wired to each other through the codec, with simulated time and a link
//! that each direction can cut: handshake, detection, Poll/Final, passive mode, AdminDown.

#![expect(
    clippy::disallowed_methods,
    reason = "simulated time starts at Instant::now()"
)]

use std::{
    num::NonZeroU32,
    time::{Duration, Instant},
};

use metallb_bfd::{ControlPacket, DownCause, Event, Hop, Profile, Session, State, TTL, Xorshift};

const LATENCY: Duration = Duration::from_millis(1);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Side {
    A,
    B,
}

/// Something a side did, at a simulated instant.
#[derive(Clone, Copy, Debug)]
enum Record {
    Sent(ControlPacket),
    Event(Event),
}

/// Two sessions and the wire between them; the test drives time.
struct Pair {
    start: Instant,
    now: Instant,
    a: Session,
    b: Session,
    /// Whether packets from A reach B, and from B reach A.
    a_to_b: bool,
    b_to_a: bool,
    /// Arrival time, receiver and bytes of packets on the wire.
    wire: Vec<(Instant, Side, [u8; 24])>,
    log: Vec<(Duration, Side, Record)>,
}

impl Pair {
    fn new(a: Profile, b: Profile) -> Self {
        let start = Instant::now();
        let discriminator = |n| NonZeroU32::new(n).unwrap();
        Self {
            start,
            now: start,
            a: Session::new(Hop::Single, a, discriminator(0xa), Xorshift::new(1), start),
            b: Session::new(Hop::Single, b, discriminator(0xb), Xorshift::new(2), start),
            a_to_b: true,
            b_to_a: true,
            wire: Vec::new(),
            log: Vec::new(),
        }
    }

    fn session(&mut self, side: Side) -> &mut Session {
        match side {
            Side::A => &mut self.a,
            Side::B => &mut self.b,
        }
    }

    fn elapsed(&self) -> Duration {
        self.now - self.start
    }

    /// Runs the simulation for `duration` of simulated time.
    fn run(&mut self, duration: Duration) {
        let end = self.now + duration;
        self.work();
        while let Some(next) = self.next_wakeup().filter(|&next| next <= end) {
            self.now = next;
            self.work();
        }
        self.now = end;
    }

    fn next_wakeup(&self) -> Option<Instant> {
        let arrivals = self.wire.iter().map(|&(at, _, _)| at);
        arrivals
            .chain(self.a.poll_timeout())
            .chain(self.b.poll_timeout())
            .min()
    }

    /// Delivers what has arrived, then lets both sides run their timers, send and report.
    fn work(&mut self) {
        let now = self.now;
        let (arrived, in_flight) = self.wire.drain(..).partition(|&(at, _, _)| at <= now);
        self.wire = in_flight;
        for (_, to, bytes) in arrived {
            let packet = ControlPacket::parse(&bytes).expect("sessions send valid packets");
            self.session(to)
                .handle_packet(now, &packet, TTL)
                .expect("packet accepted");
        }
        for side in [Side::A, Side::B] {
            self.session(side).handle_timeout(now);
            while let Some(packet) = self.session(side).poll_transmit(now) {
                self.record(side, Record::Sent(packet));
                let (delivered, to) = match side {
                    Side::A => (self.a_to_b, Side::B),
                    Side::B => (self.b_to_a, Side::A),
                };
                if delivered {
                    self.wire.push((now + LATENCY, to, packet.encode()));
                }
            }
            while let Some(event) = self.session(side).poll_event() {
                self.record(side, Record::Event(event));
            }
        }
    }

    fn record(&mut self, side: Side, record: Record) {
        self.log.push((self.elapsed(), side, record));
    }

    fn events(&self, side: Side) -> Vec<(Duration, Event)> {
        self.log
            .iter()
            .filter_map(|&(at, s, record)| match record {
                Record::Event(event) if s == side => Some((at, event)),
                _ => None,
            })
            .collect()
    }

    fn sent(&self, side: Side) -> Vec<(Duration, ControlPacket)> {
        self.log
            .iter()
            .filter_map(|&(at, s, record)| match record {
                Record::Sent(packet) if s == side => Some((at, packet)),
                _ => None,
            })
            .collect()
    }

    /// The states a side announced, with repeats collapsed.
    fn announced_states(&self, side: Side) -> Vec<State> {
        let mut states: Vec<State> = self.sent(side).iter().map(|(_, p)| p.state).collect();
        states.dedup();
        states
    }

    fn clear_log(&mut self) {
        self.log.clear();
    }
}

fn fast() -> Profile {
    Profile {
        desired_min_tx: Duration::from_millis(10),
        required_min_rx: Duration::from_millis(10),
        ..Profile::default()
    }
}

fn passive(profile: Profile) -> Profile {
    Profile {
        passive: true,
        ..profile
    }
}

fn established(a: Profile, b: Profile) -> Pair {
    let mut pair = Pair::new(a, b);
    pair.run(Duration::from_secs(2));
    assert_eq!((pair.a.state(), pair.b.state()), (State::Up, State::Up));
    pair.clear_log();
    pair
}

#[test]
fn three_way_handshake_brings_both_sides_up() {
    let mut pair = Pair::new(Profile::default(), passive(Profile::default()));
    pair.run(Duration::from_millis(10));
    assert_eq!(pair.announced_states(Side::A), [State::Down, State::Up]);
    assert_eq!(pair.announced_states(Side::B), [State::Init, State::Up]);
    for side in [Side::A, Side::B] {
        let events: Vec<Event> = pair.events(side).into_iter().map(|(_, e)| e).collect();
        assert_eq!(events, [Event::Up], "{side:?}");
    }
    // Down (A), Init (B), Up (A) and Up (B): three one-way trips of 1 ms.
    assert_eq!(pair.events(Side::A)[0].0, 2 * LATENCY);
    assert_eq!(pair.events(Side::B)[0].0, 3 * LATENCY);
}

#[test]
fn two_active_sides_meet_in_init() {
    let mut pair = Pair::new(Profile::default(), Profile::default());
    pair.run(Duration::from_millis(10));
    for side in [Side::A, Side::B] {
        assert_eq!(
            pair.announced_states(side),
            [State::Down, State::Init, State::Up]
        );
    }
}

#[test]
fn the_slow_rate_until_up_gives_way_to_the_profile_through_poll_and_final() {
    let mut pair = Pair::new(fast(), fast());
    pair.run(Duration::from_millis(100));
    let sent = pair.sent(Side::A);
    let first_up = sent.iter().position(|(_, p)| p.state == State::Up).unwrap();
    assert!(
        sent[..first_up]
            .iter()
            .all(|(_, p)| p.desired_min_tx_us == 1_000_000)
    );
    assert!(
        sent[first_up].1.poll,
        "the first Up packet polls for the faster rate"
    );
    assert_eq!(sent[first_up].1.desired_min_tx_us, 10_000);
    assert!(pair.sent(Side::B).iter().any(|(_, p)| p.final_));
    for session in [&pair.a, &pair.b] {
        assert!(!session.is_polling());
        assert_eq!(session.transmit_interval(), Duration::from_millis(10));
        assert_eq!(session.detection_time(), Some(Duration::from_millis(30)));
    }
}

#[test]
fn a_silent_peer_is_detected_within_detect_mult_times_interval() {
    let mut pair = established(fast(), fast());
    let cut = pair.elapsed();
    pair.a_to_b = false;
    pair.run(Duration::from_millis(200));
    let events = pair.events(Side::B);
    assert_eq!(events.len(), 1);
    let (at, event) = events[0];
    assert_eq!(event, Event::Down(DownCause::DetectionTimeExpired));
    // B last heard A at most one (jittered) interval before the cut, plus the wire delay.
    let detected_after = at - cut;
    assert!(
        detected_after <= Duration::from_millis(30) + LATENCY,
        "{detected_after:?}"
    );
    assert!(
        detected_after >= Duration::from_millis(20),
        "{detected_after:?}"
    );
    assert!(
        detected_after < Duration::from_millis(50),
        "design target: under 50 ms"
    );
    assert!(DownCause::DetectionTimeExpired.is_failure());
    assert_eq!(pair.b.diagnostic().code(), 1);
}

#[test]
fn the_side_still_heard_learns_from_the_peer_that_it_went_down() {
    let mut pair = established(fast(), fast());
    pair.a_to_b = false;
    pair.run(Duration::from_millis(200));
    let events = pair.events(Side::A);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].1, Event::Down(DownCause::NeighborDown));
    assert!(DownCause::NeighborDown.is_failure());
    assert_eq!(
        pair.a.diagnostic().to_string(),
        "neighbor signaled session down"
    );
}

#[test]
fn default_profile_detects_within_900_ms() {
    let mut pair = established(Profile::default(), Profile::default());
    let cut = pair.elapsed();
    pair.a_to_b = false;
    pair.b_to_a = false;
    pair.run(Duration::from_secs(2));
    for side in [Side::A, Side::B] {
        let (at, event) = pair.events(side)[0];
        assert_eq!(event, Event::Down(DownCause::DetectionTimeExpired));
        let after = at - cut;
        assert!(after >= Duration::from_millis(600) && after <= Duration::from_millis(901));
    }
}

#[test]
fn the_session_comes_back_up_when_the_link_heals() {
    let mut pair = established(fast(), fast());
    pair.a_to_b = false;
    pair.run(Duration::from_millis(100));
    pair.a_to_b = true;
    pair.run(Duration::from_secs(3));
    assert_eq!((pair.a.state(), pair.b.state()), (State::Up, State::Up));
    let b_events: Vec<Event> = pair.events(Side::B).into_iter().map(|(_, e)| e).collect();
    assert_eq!(
        b_events,
        [Event::Down(DownCause::DetectionTimeExpired), Event::Up]
    );
}

#[test]
fn a_slower_interval_is_announced_with_poll_and_used_after_final() {
    let mut pair = established(fast(), fast());
    let slower = Profile {
        desired_min_tx: Duration::from_millis(50),
        ..fast()
    };
    pair.a.set_profile(slower);
    assert!(pair.a.is_polling());
    assert_eq!(
        pair.a.transmit_interval(),
        Duration::from_millis(10),
        "not before Final"
    );
    pair.run(Duration::from_millis(5));
    let poll_at = pair
        .sent(Side::A)
        .iter()
        .find(|(_, p)| p.poll)
        .map(|&(at, _)| at);
    let final_at = pair
        .sent(Side::B)
        .iter()
        .find(|(_, p)| p.final_)
        .map(|&(at, _)| at);
    assert!(poll_at.unwrap() < final_at.unwrap());
    assert!(!pair.a.is_polling());
    assert_eq!(pair.a.transmit_interval(), Duration::from_millis(50));
    assert_eq!(pair.b.detection_time(), Some(Duration::from_millis(150)));
    pair.run(Duration::from_secs(1));
    assert!(pair.events(Side::A).is_empty() && pair.events(Side::B).is_empty());
}

#[test]
fn a_passive_side_stays_silent_until_the_peer_speaks() {
    let mut pair = Pair::new(fast(), passive(fast()));
    pair.a_to_b = false;
    pair.run(Duration::from_secs(5));
    assert!(pair.sent(Side::B).is_empty());
    assert_eq!(pair.b.poll_timeout(), None);
    pair.a_to_b = true;
    pair.run(Duration::from_secs(2));
    assert_eq!((pair.a.state(), pair.b.state()), (State::Up, State::Up));
}

#[test]
fn two_passive_sides_never_start_a_session() {
    let mut pair = Pair::new(passive(fast()), passive(fast()));
    pair.run(Duration::from_secs(10));
    assert!(pair.log.is_empty());
}

#[test]
fn admin_down_takes_the_peer_down_without_a_failure() {
    let mut pair = established(fast(), fast());
    let stopped = pair.elapsed();
    pair.a.admin_down();
    pair.run(Duration::from_millis(1));
    let (at, first) = pair.sent(Side::A)[0];
    assert_eq!(at, stopped, "sent at once, not at the next interval");
    assert_eq!(
        (first.state, first.diagnostic.code()),
        (State::AdminDown, 7)
    );
    assert_eq!(pair.events(Side::A)[0].1, Event::Down(DownCause::AdminDown));
    let (_, b_event) = pair.events(Side::B)[0];
    assert_eq!(b_event, Event::Down(DownCause::NeighborAdminDown));
    assert!(!DownCause::NeighborAdminDown.is_failure());
    assert!(!DownCause::AdminDown.is_failure());
    assert_eq!(
        pair.b.diagnostic().to_string(),
        "neighbor signaled session down"
    );
}

#[test]
fn an_admin_down_peer_keeps_us_down() {
    let mut pair = established(fast(), fast());
    pair.a.admin_down();
    pair.run(Duration::from_secs(10));
    assert_eq!(
        (pair.a.state(), pair.b.state()),
        (State::AdminDown, State::Down)
    );
    assert_eq!(pair.b.remote_state(), State::AdminDown);
    assert_eq!(pair.events(Side::B).len(), 1);
    // While not Up, both sides are back at the slow rate.
    let a_sent = pair.sent(Side::A);
    assert!(a_sent.len() <= 15, "{} packets in 10 s", a_sent.len());
    assert!(a_sent.iter().all(|(_, p)| p.desired_min_tx_us == 1_000_000));
}
