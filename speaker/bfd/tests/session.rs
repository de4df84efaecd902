//! One session core against hand-built peer packets: TTL and discriminator checks, timer
//! arithmetic, Poll/Final corner cases and jitter bounds.

#![expect(
    clippy::disallowed_methods,
    reason = "simulated time starts at Instant::now()"
)]

use std::{
    num::{NonZeroU8, NonZeroU32},
    time::{Duration, Instant},
};

use metallb_bfd::{
    ControlPacket, Diagnostic, DownCause, Event, Hop, Profile, ReceiveError, Session, State,
    Xorshift,
};

const LOCAL: u32 = 0x1234;
const PEER: u32 = 0xbeef;

fn new_session(hop: Hop, profile: Profile) -> (Session, Instant) {
    let now = Instant::now();
    let local = NonZeroU32::new(LOCAL).unwrap();
    (
        Session::new(hop, profile, local, Xorshift::new(3), now),
        now,
    )
}

fn from_peer(state: State) -> ControlPacket {
    ControlPacket {
        diagnostic: Diagnostic::None,
        state,
        poll: false,
        final_: false,
        control_plane_independent: false,
        demand: false,
        detect_multiplier: NonZeroU8::new(3).unwrap(),
        my_discriminator: NonZeroU32::new(PEER).unwrap(),
        your_discriminator: if state == State::Down { 0 } else { LOCAL },
        desired_min_tx_us: 300_000,
        required_min_rx_us: 300_000,
        required_min_echo_rx_us: 0,
    }
}

/// Down, Init, Up, and the peer's Final for our Poll to the profile's rate.
fn bring_up(session: &mut Session, now: Instant) {
    session
        .handle_packet(now, &from_peer(State::Down), 255)
        .unwrap();
    session
        .handle_packet(now, &from_peer(State::Up), 255)
        .unwrap();
    assert_eq!(session.state(), State::Up);
    let final_ = ControlPacket {
        final_: true,
        ..from_peer(State::Up)
    };
    session.handle_packet(now, &final_, 255).unwrap();
    assert!(!session.is_polling());
    while session.poll_transmit(now).is_some() {}
    while session.poll_event().is_some() {}
}

#[test]
fn ttl_254_is_refused_on_a_single_hop_session() {
    let (mut session, now) = new_session(Hop::Single, Profile::default());
    let refused = session.handle_packet(now, &from_peer(State::Down), 254);
    assert_eq!(
        refused,
        Err(ReceiveError::TtlTooLow {
            ttl: 254,
            minimum: 255
        })
    );
    assert_eq!(refused.unwrap_err().label(), "ttl_too_low");
    assert_eq!(
        session.remote_discriminator(),
        None,
        "a refused packet teaches nothing"
    );
    session
        .handle_packet(now, &from_peer(State::Down), 255)
        .unwrap();
    assert_eq!(session.state(), State::Init);
}

#[test]
fn multi_hop_accepts_packets_down_to_the_minimum_ttl() {
    let (mut session, now) = new_session(Hop::Multi, Profile::default());
    let refused = session.handle_packet(now, &from_peer(State::Down), 253);
    assert_eq!(
        refused,
        Err(ReceiveError::TtlTooLow {
            ttl: 253,
            minimum: 254
        })
    );
    session
        .handle_packet(now, &from_peer(State::Down), 254)
        .unwrap();

    let profile = Profile {
        minimum_ttl: 250,
        ..Profile::default()
    };
    let (mut session, now) = new_session(Hop::Multi, profile);
    assert!(
        session
            .handle_packet(now, &from_peer(State::Down), 249)
            .is_err()
    );
    session
        .handle_packet(now, &from_peer(State::Down), 250)
        .unwrap();
    assert_eq!(session.hop().port(), 4784);
}

#[test]
fn a_packet_for_another_discriminator_is_refused() {
    let (mut session, now) = new_session(Hop::Single, Profile::default());
    let stray = ControlPacket {
        your_discriminator: LOCAL + 1,
        ..from_peer(State::Init)
    };
    let refused = session.handle_packet(now, &stray, 255);
    assert_eq!(
        refused,
        Err(ReceiveError::WrongDiscriminator {
            received: LOCAL + 1,
            local: LOCAL
        })
    );
    assert_eq!(refused.unwrap_err().label(), "wrong_discriminator");
    assert_eq!(session.state(), State::Down);
}

#[test]
fn the_peers_poll_is_answered_at_once_with_final_and_without_poll() {
    let (mut session, now) = new_session(Hop::Single, Profile::default());
    bring_up(&mut session, now);
    session.set_profile(Profile {
        required_min_rx: Duration::from_millis(100),
        ..Profile::default()
    });
    let ours = session.poll_transmit(now).unwrap();
    assert!(ours.poll && !ours.final_);
    let poll = ControlPacket {
        poll: true,
        ..from_peer(State::Up)
    };
    let later = now + Duration::from_millis(1);
    session.handle_packet(later, &poll, 255).unwrap();
    let answer = session
        .poll_transmit(later)
        .expect("Final without waiting for the timer");
    assert!(answer.final_ && !answer.poll);
    assert!(session.is_polling(), "the peer's Poll does not end ours");
}

#[test]
fn detection_time_is_the_peer_multiplier_times_the_slower_rate() {
    let (mut session, now) = new_session(Hop::Single, Profile::default());
    assert_eq!(session.detection_time(), None);
    let peer = ControlPacket {
        detect_multiplier: NonZeroU8::new(5).unwrap(),
        desired_min_tx_us: 200_000,
        ..from_peer(State::Down)
    };
    session.handle_packet(now, &peer, 255).unwrap();
    assert_eq!(session.detection_time(), Some(Duration::from_millis(1500)));
    let slower_peer = ControlPacket {
        desired_min_tx_us: 400_000,
        ..peer
    };
    session.handle_packet(now, &slower_peer, 255).unwrap();
    assert_eq!(session.detection_time(), Some(Duration::from_millis(2000)));
}

#[test]
fn a_faster_receive_interval_waits_for_final_before_shortening_detection() {
    let (mut session, now) = new_session(Hop::Single, Profile::default());
    let fast_peer = ControlPacket {
        desired_min_tx_us: 50_000,
        ..from_peer(State::Up)
    };
    bring_up(&mut session, now);
    session.handle_packet(now, &fast_peer, 255).unwrap();
    assert_eq!(session.detection_time(), Some(Duration::from_millis(900)));
    session.set_profile(Profile {
        required_min_rx: Duration::from_millis(100),
        ..Profile::default()
    });
    assert_eq!(
        session.poll_transmit(now).unwrap().required_min_rx_us,
        100_000
    );
    assert_eq!(session.detection_time(), Some(Duration::from_millis(900)));
    let final_ = ControlPacket {
        final_: true,
        ..fast_peer
    };
    session.handle_packet(now, &final_, 255).unwrap();
    assert_eq!(session.detection_time(), Some(Duration::from_millis(300)));
}

#[test]
fn a_change_during_a_poll_sequence_needs_a_second_final() {
    let (mut session, now) = new_session(Hop::Single, Profile::default());
    bring_up(&mut session, now);
    let slower = |ms| Profile {
        desired_min_tx: Duration::from_millis(ms),
        ..Profile::default()
    };
    session.set_profile(slower(400));
    session.set_profile(slower(500));
    let final_ = ControlPacket {
        final_: true,
        ..from_peer(State::Up)
    };
    session.handle_packet(now, &final_, 255).unwrap();
    assert!(session.is_polling());
    assert_eq!(session.transmit_interval(), Duration::from_millis(300));
    session.handle_packet(now, &final_, 255).unwrap();
    assert!(!session.is_polling());
    assert_eq!(session.transmit_interval(), Duration::from_millis(500));
}

#[test]
fn a_profile_change_while_down_applies_without_poll() {
    let (mut session, now) = new_session(Hop::Single, Profile::default());
    session.set_profile(Profile {
        desired_min_tx: Duration::from_secs(2),
        detect_multiplier: NonZeroU8::new(5).unwrap(),
        ..Profile::default()
    });
    assert!(!session.is_polling());
    let packet = session.poll_transmit(now).unwrap();
    assert!(!packet.poll);
    assert_eq!(
        (packet.desired_min_tx_us, packet.detect_multiplier.get()),
        (2_000_000, 5)
    );
}

#[test]
fn a_new_detect_multiplier_is_sent_at_once() {
    let (mut session, now) = new_session(Hop::Single, Profile::default());
    bring_up(&mut session, now);
    session.set_profile(Profile {
        detect_multiplier: NonZeroU8::new(4).unwrap(),
        ..Profile::default()
    });
    assert!(!session.is_polling(), "only intervals need a Poll Sequence");
    assert_eq!(
        session.poll_transmit(now).unwrap().detect_multiplier.get(),
        4
    );
}

#[test]
fn a_peer_asking_for_no_packets_gets_no_periodic_ones() {
    let (mut session, now) = new_session(Hop::Single, Profile::default());
    let quiet = ControlPacket {
        required_min_rx_us: 0,
        ..from_peer(State::Down)
    };
    session.handle_packet(now, &quiet, 255).unwrap();
    assert!(
        session.poll_transmit(now).is_some(),
        "the state change is still sent"
    );
    assert_eq!(
        session.poll_timeout(),
        Some(now + Duration::from_millis(900))
    );
    assert!(
        session
            .poll_transmit(now + Duration::from_millis(899))
            .is_none()
    );
}

#[test]
fn a_restarted_peer_takes_the_session_down() {
    let (mut session, now) = new_session(Hop::Single, Profile::default());
    bring_up(&mut session, now);
    let restarted = ControlPacket {
        my_discriminator: NonZeroU32::new(PEER + 1).unwrap(),
        ..from_peer(State::Down)
    };
    session.handle_packet(now, &restarted, 255).unwrap();
    assert_eq!(
        session.poll_event(),
        Some(Event::Down(DownCause::NeighborDown))
    );
    assert_eq!(session.remote_discriminator(), NonZeroU32::new(PEER + 1));
    let next = session.poll_transmit(now).unwrap();
    assert_eq!(
        (next.state, next.your_discriminator),
        (State::Down, PEER + 1)
    );
}

#[test]
fn an_admin_down_session_ignores_the_peer() {
    let (mut session, now) = new_session(Hop::Single, Profile::default());
    session.admin_down();
    assert_eq!(session.poll_event(), None, "it never was Up");
    let poll = ControlPacket {
        poll: true,
        ..from_peer(State::Down)
    };
    session.handle_packet(now, &poll, 255).unwrap();
    assert_eq!(session.state(), State::AdminDown);
    let packet = session.poll_transmit(now).unwrap();
    assert_eq!(packet.diagnostic, Diagnostic::AdministrativelyDown);
    assert!(!packet.final_, "an AdminDown session discards the Poll");
    assert_eq!(
        packet.your_discriminator, PEER,
        "but still addresses the peer"
    );
}

#[test]
fn detection_timeout_while_down_forgets_the_peer_and_quiets_a_passive_session() {
    let passive = Profile {
        passive: true,
        ..Profile::default()
    };
    let (mut session, now) = new_session(Hop::Single, passive);
    assert_eq!(session.poll_transmit(now), None);
    session
        .handle_packet(now, &from_peer(State::AdminDown), 255)
        .unwrap();
    assert_eq!(session.state(), State::Down);
    assert!(session.poll_transmit(now).is_some());
    let expiry = now + Duration::from_millis(900);
    assert!(session.poll_timeout().is_some_and(|next| next <= expiry));
    session.handle_timeout(expiry);
    assert_eq!(session.remote_discriminator(), None);
    assert_eq!(session.poll_timeout(), None);
    assert_eq!(session.poll_transmit(expiry + Duration::from_secs(5)), None);
    assert_eq!(session.poll_event(), None);
}

/// Gaps between periodic packets of a session that hears nothing, relative to the 1 s slow
/// rate.
fn gaps(profile: Profile) -> Vec<f64> {
    let (mut session, start) = new_session(Hop::Single, profile);
    let mut now = start;
    let mut sent = Vec::new();
    for _ in 0..200 {
        if session.poll_transmit(now).is_some() {
            sent.push(now);
        }
        now = session.poll_timeout().unwrap();
    }
    sent.windows(2)
        .map(|w| (w[1] - w[0]).as_secs_f64())
        .collect()
}

#[test]
fn transmissions_are_jittered_between_75_and_100_percent_of_the_interval() {
    let gaps = gaps(Profile::default());
    assert_eq!(gaps.len(), 199);
    assert!(
        gaps.iter().all(|&gap| (0.75..=1.0).contains(&gap)),
        "{gaps:?}"
    );
    assert!(gaps.iter().any(|&gap| gap < 0.8) && gaps.iter().any(|&gap| gap > 0.95));
}

#[test]
fn with_detect_multiplier_one_transmissions_stay_between_75_and_90_percent() {
    let gaps = gaps(Profile {
        detect_multiplier: NonZeroU8::new(1).unwrap(),
        ..Profile::default()
    });
    assert!(
        gaps.iter().all(|&gap| (0.75..=0.9).contains(&gap)),
        "{gaps:?}"
    );
}
