//! Graceful restart (RFC 4724): the capability's bytes both ways and its malformed forms, the
//! End-of-RIB markers, and a session that offers it, restarts with the R bit, ends its initial
//! table with End-of-RIB and withdraws before leaving.

#![expect(
    clippy::disallowed_methods,
    reason = "simulated time starts at Instant::now()"
)]

use std::{
    net::{Ipv4Addr, Ipv6Addr},
    time::{Duration, Instant},
};

use ipnet::IpNet;
use metallb_bgp::{
    AFI_IPV4, AFI_IPV6, AsWidth, Capability, Cease, Config, DownReason, Event, Family,
    GracefulRestart, Message, MessageError, NextHops, Open, PeerAsn, RestartFamily, Route,
    SAFI_UNICAST, Session, State, Update,
};

const PEER_ID: Ipv4Addr = Ipv4Addr::new(192, 168, 250, 1);

/// An OPEN from AS 64512 with one Capabilities parameter holding `capabilities` (raw bytes:
/// code, length, value, ...).
fn open_with(capabilities: &[u8]) -> Vec<u8> {
    let mut body = vec![4, 0xfc, 0x00, 0x00, 90, 192, 168, 250, 1];
    body.push((capabilities.len() + 2) as u8);
    body.extend_from_slice(&[2, capabilities.len() as u8]);
    body.extend_from_slice(capabilities);
    let mut bytes = vec![0xff; 16];
    bytes.extend_from_slice(&((19 + body.len()) as u16).to_be_bytes());
    bytes.push(1);
    bytes.extend_from_slice(&body);
    bytes
}

fn family(afi: u16, forwarding_preserved: bool) -> RestartFamily {
    RestartFamily {
        afi,
        safi: SAFI_UNICAST,
        forwarding_preserved,
    }
}

fn restart(restarting: bool, restart_time: u16, families: Vec<RestartFamily>) -> GracefulRestart {
    GracefulRestart {
        restarting,
        notification: false,
        restart_time,
        families,
    }
}

fn parsed_restart(value: &[u8]) -> Result<Option<GracefulRestart>, MessageError> {
    let mut capability = vec![64, value.len() as u8];
    capability.extend_from_slice(value);
    match Message::parse(&open_with(&capability), AsWidth::Two)? {
        Message::Open(open) => Ok(open.graceful_restart().cloned()),
        other => panic!("expected an OPEN, got {other:?}"),
    }
}

#[test]
fn the_restart_capability_parses_from_and_encodes_to_its_bytes() {
    let table: [(&str, &[u8], GracefulRestart); 4] = [
        (
            "a helper without families",
            &[0x00, 0x78],
            restart(false, 120, vec![]),
        ),
        (
            "a restarted speaker with IPv4 forwarding kept and IPv6 not",
            &[0x80, 0x78, 0, 1, 1, 0x80, 0, 2, 1, 0x00],
            restart(
                true,
                120,
                vec![family(AFI_IPV4, true), family(AFI_IPV6, false)],
            ),
        ),
        (
            "the largest restart time",
            &[0x0f, 0xff],
            restart(false, 4095, vec![]),
        ),
        (
            "the notification bit of RFC 8538",
            &[0x40, 0x05],
            GracefulRestart {
                notification: true,
                ..restart(false, 5, vec![])
            },
        ),
    ];
    for (case, value, expected) in table {
        assert_eq!(parsed_restart(value), Ok(Some(expected.clone())), "{case}");
        let mut capability = vec![64, value.len() as u8];
        capability.extend_from_slice(value);
        let open = Open {
            my_as: 64512,
            hold_time: 90,
            router_id: PEER_ID,
            capabilities: vec![Capability::GracefulRestart(expected)],
        };
        assert_eq!(
            Message::Open(open).encode(AsWidth::Two),
            open_with(&capability),
            "{case}"
        );
    }
}

#[test]
fn reserved_bits_are_dropped_and_a_restart_time_too_large_is_written_as_4095() {
    let parsed = parsed_restart(&[0x3f, 0xff, 0, 1, 1, 0x7f]).expect("it parses");
    assert_eq!(
        parsed,
        Some(restart(false, 4095, vec![family(AFI_IPV4, false)]))
    );
    let mut bytes = Vec::new();
    let open = Open {
        my_as: 64512,
        hold_time: 90,
        router_id: PEER_ID,
        capabilities: vec![Capability::GracefulRestart(restart(false, 9000, vec![]))],
    };
    bytes.extend(Message::Open(open).encode(AsWidth::Two));
    assert_eq!(bytes, open_with(&[64, 2, 0x0f, 0xff]));
}

#[test]
fn a_restart_capability_of_the_wrong_length_is_refused_with_2_0_naming_it() {
    let table: [(&str, &[u8]); 4] = [
        ("empty", &[]),
        ("one byte", &[0x00]),
        ("a family cut short", &[0x00, 0x78, 0, 1, 1]),
        ("a family and a half", &[0x00, 0x78, 0, 1, 1, 0x80, 0, 2]),
    ];
    for (case, value) in table {
        let error = parsed_restart(value).expect_err(case);
        assert_eq!(
            error,
            MessageError::MalformedCapability { code: 64 },
            "{case}"
        );
        let notification = error.notification();
        assert_eq!(
            (notification.code, notification.subcode, notification.data),
            (2, 0, vec![64]),
            "{case}"
        );
        assert_eq!(error.label(), "malformed_capability");
    }
}

#[test]
fn of_two_restart_capabilities_the_last_counts() {
    let bytes = open_with(&[64, 2, 0x00, 0x05, 64, 2, 0x80, 0x78]);
    let Ok(Message::Open(open)) = Message::parse(&bytes, AsWidth::Two) else {
        panic!("the OPEN parses");
    };
    assert_eq!(open.graceful_restart(), Some(&restart(true, 120, vec![])));
}

#[test]
fn end_of_rib_is_an_empty_update_for_ipv4_and_an_empty_mp_unreach_for_ipv6() {
    let header = |length: u8| {
        let mut bytes = vec![0xff; 16];
        bytes.extend_from_slice(&[0, length, 2]);
        bytes
    };
    let mut ipv4 = header(23);
    ipv4.extend_from_slice(&[0, 0, 0, 0]);
    let mut ipv6 = header(29);
    ipv6.extend_from_slice(&[0, 0, 0, 6, 0x80, 15, 3, 0, 2, 1]);
    for (family, bytes) in [(Family::Ipv4, ipv4), (Family::Ipv6, ipv6)] {
        let marker = Update::end_of_rib(family);
        assert_eq!(
            Message::Update(Box::new(marker.clone())).encode(AsWidth::Four),
            bytes
        );
        let Ok(Message::Update(parsed)) = Message::parse(&bytes, AsWidth::Four) else {
            panic!("the {family:?} marker parses");
        };
        assert_eq!(*parsed, marker);
        assert_eq!(parsed.end_of_rib_family(), Some(family));
    }
    let withdrawal = Update {
        withdrawn: vec!["192.168.250.210/32".parse().expect("a prefix")],
        ..Update::default()
    };
    assert_eq!(withdrawal.end_of_rib_family(), None);
}

// The session.

fn config(graceful_restart: Option<Duration>) -> Config {
    let mut config = Config::new(
        64500,
        PeerAsn::Exact(64512),
        Ipv4Addr::new(192, 168, 250, 11),
    );
    config.graceful_restart = graceful_restart;
    config
}

const RESTART_TIME: Option<Duration> = Some(Duration::from_secs(120));

fn connected(session: &mut Session, now: Instant) {
    if session.state() == State::Idle {
        session.start();
    }
    let events: Vec<Event> = std::iter::from_fn(|| session.poll_event()).collect();
    assert_eq!(events.last(), Some(&Event::Dial));
    let next_hops = NextHops {
        ipv4: Some(Ipv4Addr::new(192, 168, 250, 11)),
        ipv6: Some(Ipv6Addr::new(0xfd00, 0x250, 0, 0, 0, 0, 0, 0x11)),
        ipv6_link_local: None,
    };
    session.handle_connected(now, next_hops);
}

/// The router's OPEN: both families unless `ipv4_only`, with FRR's helper capability
/// (restart time 120, no families) when `helper`.
fn router_open(ipv4_only: bool, helper: bool) -> Vec<u8> {
    let mut capabilities = vec![Capability::IPV4_UNICAST, Capability::FourOctetAs(64512)];
    if !ipv4_only {
        capabilities.push(Capability::IPV6_UNICAST);
    }
    if helper {
        capabilities.push(Capability::GracefulRestart(restart(false, 120, vec![])));
    }
    let open = Open {
        my_as: 64512,
        hold_time: 9,
        router_id: PEER_ID,
        capabilities,
    };
    Message::Open(open).encode(AsWidth::Two)
}

fn establish(session: &mut Session, now: Instant, router_open: &[u8]) {
    session.handle_bytes(now, router_open);
    session.handle_bytes(now, &Message::Keepalive.encode(AsWidth::Four));
    assert_eq!(session.state(), State::Established);
}

fn sent(session: &mut Session, now: Instant) -> Vec<Message> {
    std::iter::from_fn(|| session.poll_transmit(now))
        .map(|bytes| Message::parse(&bytes, AsWidth::Four).expect("we send valid messages"))
        .collect()
}

fn our_restart_capability(messages: &[Message]) -> Option<GracefulRestart> {
    messages.iter().find_map(|message| match message {
        Message::Open(open) => open.graceful_restart().cloned(),
        _ => None,
    })
}

/// What the UPDATEs among `messages` are: "announce", "withdraw", or "eor ipv4/ipv6".
fn update_kinds(messages: &[Message]) -> Vec<String> {
    messages
        .iter()
        .filter_map(|message| match message {
            Message::Update(update) => Some(match update.end_of_rib_family() {
                Some(Family::Ipv4) => "eor ipv4".to_owned(),
                Some(Family::Ipv6) => "eor ipv6".to_owned(),
                None if !update.nlri.is_empty() || update.attributes.mp_reach.is_some() => {
                    "announce".to_owned()
                }
                None => "withdraw".to_owned(),
            }),
            _ => None,
        })
        .collect()
}

fn prefix(text: &str) -> IpNet {
    text.parse().expect("a prefix")
}

#[test]
fn a_restarted_session_offers_r_and_forwarding_kept_for_both_families_until_established() {
    let now = Instant::now();
    let mut session = Session::new(config(RESTART_TIME));
    session.set_restarting(true);
    assert!(session.restarting());
    connected(&mut session, now);
    let capability = our_restart_capability(&sent(&mut session, now));
    assert_eq!(
        capability,
        Some(restart(
            true,
            120,
            vec![family(AFI_IPV4, true), family(AFI_IPV6, true)]
        ))
    );
    establish(&mut session, now, &router_open(false, true));
    assert!(session.graceful_restart_negotiated());
    assert!(!session.restarting());

    // The next connection is not the first after the restart any more.
    session.handle_closed(now);
    let later = now + Duration::from_secs(1);
    session.handle_timeout(later);
    connected(&mut session, later);
    let capability = our_restart_capability(&sent(&mut session, later));
    assert_eq!(capability.map(|c| c.restarting), Some(false));
}

#[test]
fn the_r_bit_stays_on_connections_that_fail_before_established() {
    let now = Instant::now();
    let mut session = Session::new(config(RESTART_TIME));
    session.set_restarting(true);
    connected(&mut session, now);
    sent(&mut session, now);
    session.handle_closed(now);
    let later = now + Duration::from_secs(1);
    session.handle_timeout(later);
    connected(&mut session, later);
    let capability = our_restart_capability(&sent(&mut session, later));
    assert_eq!(capability.map(|c| c.restarting), Some(true));
}

#[test]
fn without_graceful_restart_the_open_has_no_capability_and_no_end_of_rib_follows() {
    let now = Instant::now();
    let mut session = Session::new(config(None));
    session.set_restarting(true);
    assert!(!session.restarting());
    session.announce(prefix("192.168.250.210/32"), Route::default());
    connected(&mut session, now);
    assert_eq!(our_restart_capability(&sent(&mut session, now)), None);
    establish(&mut session, now, &router_open(false, true));
    assert!(!session.graceful_restart_negotiated());
    assert_eq!(update_kinds(&sent(&mut session, now)), ["announce"]);
}

#[test]
fn the_initial_table_is_followed_by_end_of_rib_of_each_negotiated_family() {
    let table: [(&str, &[&str], bool, &[&str]); 4] = [
        (
            "both families with routes",
            &["192.168.250.210/32", "fd00:250::210/128"],
            false,
            &["announce", "announce", "eor ipv4", "eor ipv6"],
        ),
        ("an empty table", &[], false, &["eor ipv4", "eor ipv6"]),
        (
            "a router without IPv6",
            &["192.168.250.210/32", "fd00:250::210/128"],
            true,
            &["announce", "eor ipv4"],
        ),
        (
            "IPv6 routes only",
            &["fd00:250::210/128"],
            false,
            &["announce", "eor ipv4", "eor ipv6"],
        ),
    ];
    for (case, prefixes, ipv4_only, expected) in table {
        let now = Instant::now();
        let mut session = Session::new(config(RESTART_TIME));
        for text in prefixes {
            session.announce(prefix(text), Route::default());
        }
        connected(&mut session, now);
        sent(&mut session, now);
        establish(&mut session, now, &router_open(ipv4_only, true));
        assert_eq!(update_kinds(&sent(&mut session, now)), *expected, "{case}");
        assert_eq!(session.updates_sent(), expected.len() as u64, "{case}");
    }
}

#[test]
fn end_of_rib_goes_once_per_connection_and_again_after_a_reconnect() {
    let now = Instant::now();
    let mut session = Session::new(config(RESTART_TIME));
    connected(&mut session, now);
    sent(&mut session, now);
    establish(&mut session, now, &router_open(true, true));
    assert_eq!(update_kinds(&sent(&mut session, now)), ["eor ipv4"]);
    session.announce(prefix("192.168.250.210/32"), Route::default());
    assert_eq!(update_kinds(&sent(&mut session, now)), ["announce"]);

    session.handle_closed(now);
    let later = now + Duration::from_secs(1);
    session.handle_timeout(later);
    connected(&mut session, later);
    sent(&mut session, later);
    establish(&mut session, later, &router_open(true, false));
    assert!(!session.graceful_restart_negotiated());
    assert_eq!(
        update_kinds(&sent(&mut session, later)),
        ["announce", "eor ipv4"]
    );
}

#[test]
fn leaving_withdraws_every_route_before_the_cease_and_keeps_them_for_a_restart() {
    let now = Instant::now();
    let mut session = Session::new(config(RESTART_TIME));
    session.announce(prefix("192.168.250.210/32"), Route::default());
    session.announce(prefix("fd00:250::210/128"), Route::default());
    connected(&mut session, now);
    sent(&mut session, now);
    establish(&mut session, now, &router_open(false, true));
    sent(&mut session, now);

    session.stop(Cease::Shutdown);
    let messages = sent(&mut session, now);
    assert_eq!(update_kinds(&messages), ["withdraw", "withdraw"]);
    let Some(Message::Notification(cease)) = messages.last() else {
        panic!("the Cease comes last, got {messages:?}");
    };
    assert_eq!((cease.code, cease.subcode), (6, 2));
    assert_eq!(session.advertised_prefixes(), 0);
    assert_eq!(session.desired_prefixes(), 2);
}

#[test]
fn a_reset_for_new_settings_sends_only_the_cease() {
    let now = Instant::now();
    let mut session = Session::new(config(RESTART_TIME));
    session.announce(prefix("192.168.250.210/32"), Route::default());
    connected(&mut session, now);
    sent(&mut session, now);
    establish(&mut session, now, &router_open(false, true));
    sent(&mut session, now);

    session.stop(Cease::Reset);
    let messages = sent(&mut session, now);
    assert!(
        matches!(messages.as_slice(), [Message::Notification(cease)] if cease.subcode == 4),
        "got {messages:?}"
    );
}

#[test]
fn a_router_sending_a_malformed_restart_capability_is_refused() {
    let now = Instant::now();
    let mut session = Session::new(config(RESTART_TIME));
    connected(&mut session, now);
    sent(&mut session, now);
    let mut capabilities = vec![1, 4, 0, 1, 0, 1, 65, 4, 0, 0, 0xfc, 0];
    capabilities.extend_from_slice(&[64, 3, 0x00, 0x78, 0x00]);
    session.handle_bytes(now, &open_with(&capabilities));
    let messages = sent(&mut session, now);
    let Some(Message::Notification(notification)) = messages.last() else {
        panic!("expected a NOTIFICATION, got {messages:?}");
    };
    assert_eq!(
        (notification.code, notification.subcode, &notification.data),
        (2, 0, &vec![64])
    );
    let events: Vec<Event> = std::iter::from_fn(|| session.poll_event()).collect();
    assert!(events.contains(&Event::Close(DownReason::InvalidMessage(
        MessageError::MalformedCapability { code: 64 }
    ))));
}
