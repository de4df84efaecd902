//! One session driven by hand-built bytes: OPEN validation, framing, timers and back-off.

#![expect(
    clippy::disallowed_methods,
    reason = "simulated time starts at Instant::now()"
)]

use std::{
    net::Ipv4Addr,
    time::{Duration, Instant},
};

use metallb_bgp::{
    AS_TRANS, AsWidth, Capability, Cease, Config, DownReason, Event, Message, MessageError,
    NextHops, Notification, Open, PeerAsn, Session, State,
};

const PEER_ID: Ipv4Addr = Ipv4Addr::new(192, 168, 250, 1);

fn connected(config: Config, now: Instant) -> Session {
    let mut session = Session::new(config);
    session.start();
    assert_eq!(session.poll_event(), Some(Event::Dial));
    let next_hops = NextHops {
        ipv4: Some(Ipv4Addr::new(192, 168, 250, 13)),
        ..NextHops::default()
    };
    session.handle_connected(now, next_hops);
    session
}

fn config(local_asn: u32) -> Config {
    Config::new(
        local_asn,
        PeerAsn::Exact(64512),
        Ipv4Addr::new(192, 168, 250, 13),
    )
}

fn peer_open(hold_time: u16, four_octet: bool) -> Vec<u8> {
    let mut capabilities = vec![Capability::IPV4_UNICAST];
    if four_octet {
        capabilities.push(Capability::FourOctetAs(64512));
    }
    let open = Open {
        my_as: 64512,
        hold_time,
        router_id: PEER_ID,
        capabilities,
    };
    Message::Open(open).encode(AsWidth::Two)
}

/// Every message the session wants to send, parsed.
fn sent(session: &mut Session, now: Instant) -> Vec<Message> {
    std::iter::from_fn(|| session.poll_transmit(now))
        .map(|bytes| Message::parse(&bytes, AsWidth::Four).expect("we send valid messages"))
        .collect()
}

fn events(session: &mut Session) -> Vec<Event> {
    std::iter::from_fn(|| session.poll_event()).collect()
}

/// The NOTIFICATION the session sent last, and the reason it closed for.
fn refused_with(session: &mut Session, now: Instant) -> (Notification, DownReason) {
    let notification = match sent(session, now).pop() {
        Some(Message::Notification(notification)) => notification,
        other => panic!("expected a NOTIFICATION, got {other:?}"),
    };
    let reason = events(session)
        .into_iter()
        .find_map(|event| match event {
            Event::Close(reason) => Some(reason),
            _ => None,
        })
        .expect("the connection is closed");
    (notification, reason)
}

#[test]
fn our_open_offers_both_families_and_four_octet_as() {
    let now = Instant::now();
    let mut session = connected(config(64500), now);
    let Some(Message::Open(open)) = sent(&mut session, now).pop() else {
        panic!("expected our OPEN");
    };
    assert_eq!((open.my_as, open.hold_time), (64500, 90));
    assert!(open.has(&Capability::IPV4_UNICAST));
    assert!(open.has(&Capability::IPV6_UNICAST));
    assert!(open.has(&Capability::FourOctetAs(64500)));
}

#[test]
fn an_asn_above_65535_is_sent_as_as_trans() {
    let now = Instant::now();
    let mut session = connected(config(4_200_000_000), now);
    let Some(Message::Open(open)) = sent(&mut session, now).pop() else {
        panic!("expected our OPEN");
    };
    assert_eq!(open.my_as, AS_TRANS);
    assert_eq!(open.asn(), 4_200_000_000);
}

#[test]
fn a_peer_without_four_octet_as_is_refused_when_our_asn_needs_it() {
    let now = Instant::now();
    let mut session = connected(config(4_200_000_000), now);
    session.handle_bytes(now, &peer_open(90, false));
    let (notification, reason) = refused_with(&mut session, now);
    assert_eq!((notification.code, notification.subcode), (2, 7));
    assert_eq!(
        reason,
        DownReason::InvalidMessage(MessageError::FourOctetAsRequired {
            local_asn: 4_200_000_000
        })
    );
}

#[test]
fn a_hold_time_of_two_seconds_is_refused_with_2_6() {
    let now = Instant::now();
    let mut session = connected(config(64500), now);
    session.handle_bytes(now, &peer_open(2, true));
    let (notification, _) = refused_with(&mut session, now);
    assert_eq!((notification.code, notification.subcode), (2, 6));
    assert_eq!(session.state(), State::Active);
}

#[test]
fn a_peer_with_another_asn_is_refused_with_2_2() {
    let now = Instant::now();
    let mut config = config(64500);
    config.peer_asn = PeerAsn::Exact(65000);
    let mut session = connected(config, now);
    session.handle_bytes(now, &peer_open(90, true));
    let (notification, reason) = refused_with(&mut session, now);
    assert_eq!((notification.code, notification.subcode), (2, 2));
    assert_eq!(reason.label(), "bad_peer_as");
}

#[test]
fn dynamic_internal_and_external_peers_are_checked_against_our_asn() {
    let now = Instant::now();
    let mut internal = config(64500);
    internal.peer_asn = PeerAsn::Internal;
    let mut session = connected(internal, now);
    session.handle_bytes(now, &peer_open(90, true));
    assert_eq!(refused_with(&mut session, now).0.subcode, 2);
    let mut external = config(64500);
    external.peer_asn = PeerAsn::External;
    let mut session = connected(external, now);
    session.handle_bytes(now, &peer_open(90, true));
    assert_eq!(session.state(), State::OpenConfirm);
}

#[test]
fn bytes_fed_one_at_a_time_are_framed_into_messages() {
    let now = Instant::now();
    let mut session = connected(config(64500), now);
    let mut stream = peer_open(9, true);
    stream.extend_from_slice(&Message::Keepalive.encode(AsWidth::Four));
    for byte in stream {
        session.handle_bytes(now, &[byte]);
    }
    assert_eq!(session.state(), State::Established);
    assert_eq!(events(&mut session), vec![Event::Established]);
}

#[test]
fn a_garbage_header_is_answered_with_1_1() {
    let now = Instant::now();
    let mut session = connected(config(64500), now);
    session.handle_bytes(now, &[0u8; 19]);
    let (notification, _) = refused_with(&mut session, now);
    assert_eq!((notification.code, notification.subcode), (1, 1));
}

#[test]
fn a_keepalive_before_the_open_is_an_fsm_error() {
    let now = Instant::now();
    let mut session = connected(config(64500), now);
    session.handle_bytes(now, &Message::Keepalive.encode(AsWidth::Two));
    let (notification, reason) = refused_with(&mut session, now);
    assert_eq!((notification.code, notification.subcode), (5, 1));
    assert_eq!(reason, DownReason::UnexpectedMessage);
}

#[test]
fn hold_time_zero_means_no_keepalives_and_no_hold_timer() {
    let now = Instant::now();
    let mut session = connected(config(64500), now);
    session.handle_bytes(now, &peer_open(0, true));
    session.handle_bytes(now, &Message::Keepalive.encode(AsWidth::Four));
    assert_eq!(session.state(), State::Established);
    assert_eq!(session.negotiated_hold_time(), Some(Duration::ZERO));
    assert_eq!(session.poll_timeout(), None);
}

#[test]
fn keepalives_are_sent_every_third_of_the_negotiated_hold_time() {
    let now = Instant::now();
    let mut session = connected(config(64500), now);
    session.handle_bytes(now, &peer_open(9, true));
    session.handle_bytes(now, &Message::Keepalive.encode(AsWidth::Four));
    sent(&mut session, now);
    let at = session.poll_timeout().expect("a keepalive is due");
    assert_eq!(at, now + Duration::from_secs(3));
    session.handle_timeout(at);
    assert_eq!(sent(&mut session, at), vec![Message::Keepalive]);
}

#[test]
fn a_silent_peer_gets_hold_timer_expired_4_0() {
    let now = Instant::now();
    let mut session = connected(config(64500), now);
    session.handle_bytes(now, &peer_open(9, true));
    session.handle_bytes(now, &Message::Keepalive.encode(AsWidth::Four));
    events(&mut session);
    let later = now + Duration::from_secs(9);
    session.handle_timeout(later);
    let (notification, reason) = refused_with(&mut session, later);
    assert_eq!((notification.code, notification.subcode), (4, 0));
    assert_eq!(reason, DownReason::HoldTimerExpired);
}

#[test]
fn failed_dials_back_off_from_one_second_up_to_the_limit() {
    let mut now = Instant::now();
    let mut session = Session::new(config(64500));
    session.start();
    let mut waits = Vec::new();
    for _ in 0..10 {
        assert_eq!(events(&mut session), vec![Event::Dial]);
        session.handle_closed(now);
        let at = session.poll_timeout().expect("a retry is scheduled");
        waits.push((at - now).as_secs());
        now = at;
        session.handle_timeout(now);
    }
    assert_eq!(waits, [1, 2, 4, 8, 16, 32, 64, 120, 120, 120]);
}

#[test]
fn stopping_before_the_peer_answers_sends_admin_reset_when_asked() {
    let now = Instant::now();
    let mut session = connected(config(64500), now);
    sent(&mut session, now);
    session.stop(Cease::Reset);
    assert_eq!(
        sent(&mut session, now),
        vec![Message::Notification(Notification::administrative_reset())]
    );
    assert_eq!(session.state(), State::Idle);
    assert_eq!(session.poll_timeout(), None);
}

#[test]
fn a_reset_sends_bfd_down_closes_and_dials_again_after_a_second() {
    let now = Instant::now();
    let mut session = connected(config(64500), now);
    session.handle_bytes(now, &peer_open(9, true));
    session.handle_bytes(now, &Message::Keepalive.encode(AsWidth::Four));
    sent(&mut session, now);
    assert_eq!(events(&mut session), vec![Event::Established]);
    session.reset(now, Cease::BfdDown);
    assert_eq!(
        sent(&mut session, now),
        vec![Message::Notification(Notification::bfd_down())]
    );
    let reason = DownReason::Stopped(Notification::bfd_down());
    assert_eq!(
        events(&mut session),
        vec![Event::Close(reason.clone()), Event::Down(reason)]
    );
    assert_eq!(session.state(), State::Active);
    let retry = now + Duration::from_secs(1);
    assert_eq!(session.poll_timeout(), Some(retry));
    session.handle_timeout(retry);
    assert_eq!(events(&mut session), vec![Event::Dial]);
}

#[test]
fn a_reset_while_dialing_abandons_the_dial_without_a_notification() {
    let now = Instant::now();
    let mut session = Session::new(config(64500));
    session.start();
    events(&mut session);
    session.reset(now, Cease::BfdDown);
    assert_eq!(sent(&mut session, now), vec![]);
    let reason = DownReason::Stopped(Notification::bfd_down());
    assert_eq!(events(&mut session), vec![Event::Close(reason)]);
    assert_eq!(session.state(), State::Active);
}

#[test]
fn reconfigured_settings_apply_to_the_next_open() {
    let now = Instant::now();
    let mut session = connected(config(64500), now);
    sent(&mut session, now);
    session.stop(Cease::Reset);
    sent(&mut session, now);
    session.reconfigure(config(64501));
    session.start();
    events(&mut session);
    session.handle_connected(now, NextHops::default());
    match sent(&mut session, now).as_slice() {
        [Message::Open(open)] => assert_eq!(open.asn(), 64501),
        other => panic!("expected one OPEN, got {other:?}"),
    }
}

#[test]
fn updates_are_counted_both_ways() {
    let now = Instant::now();
    let mut session = connected(config(64500), now);
    session.handle_bytes(now, &peer_open(9, true));
    session.handle_bytes(now, &Message::Keepalive.encode(AsWidth::Four));
    session.announce(
        "192.168.250.210/32".parse().expect("a prefix"),
        metallb_bgp::Route::default(),
    );
    sent(&mut session, now);
    let end_of_rib = metallb_bgp::Update::default();
    session.handle_bytes(
        now,
        &Message::Update(Box::new(end_of_rib)).encode(AsWidth::Four),
    );
    assert_eq!((session.updates_sent(), session.updates_received()), (1, 1));
}
