//! The heartbeat codec and what a core accepts: round trips, the MAC, lengths, receivers,
//! unknown senders and replays.

#![expect(
    clippy::disallowed_methods,
    reason = "simulated time starts at Instant::now()"
)]

use std::time::{Duration, Instant};

use metallb_liveness::{
    Config, ENTRY_LEN, Entry, HEADER_LEN, Key, Kind, LeaseView, Liveness, MAC_LEN, MAX_ENTRIES,
    Packet, PacketError, ReceiveError, StandDown, Status, node_id,
};

fn key() -> Key {
    Key::derive(b"secret")
}

fn packet(entries: usize) -> Packet {
    Packet {
        kind: Kind::Probe,
        from: node_id("a"),
        to: node_id("b"),
        sequence: 42,
        incarnation: 7,
        stand_down: StandDown {
            fenced: true,
            isolated: false,
        },
        api_age_ms: Some(1234),
        entries: (0..entries as u64)
            .map(|i| Entry {
                node: i,
                incarnation: i * 3,
                status: [Status::Alive, Status::Suspect, Status::Dead, Status::Left]
                    [i as usize % 4],
                stand_down: StandDown {
                    fenced: false,
                    isolated: i % 2 == 0,
                },
                accuser: i + 100,
            })
            .collect(),
    }
}

#[test]
fn a_packet_survives_encode_and_decode_with_every_status_and_flag() {
    for entries in [0, 1, 4, MAX_ENTRIES] {
        let packet = packet(entries);
        let bytes = packet.encode(&key());
        assert_eq!(bytes.len(), HEADER_LEN + entries * ENTRY_LEN + MAC_LEN);
        assert_eq!(Packet::decode(&bytes, &key()), Ok(packet));
    }
}

#[test]
fn a_packet_never_carries_more_than_max_entries() {
    let bytes = packet(MAX_ENTRIES + 5).encode(&key());
    let decoded = Packet::decode(&bytes, &key()).unwrap();
    assert_eq!(decoded.entries.len(), MAX_ENTRIES);
}

#[test]
fn no_renewal_age_travels_as_none() {
    let mut packet = packet(0);
    packet.api_age_ms = None;
    let decoded = Packet::decode(&packet.encode(&key()), &key()).unwrap();
    assert_eq!(decoded.api_age_ms, None);
}

#[test]
fn another_secret_or_a_flipped_bit_fails_the_mac() {
    let bytes = packet(2).encode(&key());
    assert_eq!(
        Packet::decode(&bytes, &Key::derive(b"other")),
        Err(PacketError::BadMac)
    );
    for at in [0, 5, HEADER_LEN + 3, bytes.len() - 1] {
        let mut flipped = bytes.clone();
        flipped[at] ^= 0x01;
        assert_eq!(
            Packet::decode(&flipped, &key()),
            Err(PacketError::BadMac),
            "bit at {at}"
        );
    }
}

#[test]
fn a_length_that_does_not_match_the_count_is_refused_before_the_mac() {
    let bytes = packet(2).encode(&key());
    assert_eq!(
        Packet::decode(&bytes[..10], &key()),
        Err(PacketError::TooShort(10))
    );
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(matches!(
        Packet::decode(&longer, &key()),
        Err(PacketError::WrongLength { count: 2, .. })
    ));
}

/// Signs arbitrary bytes as a packet body, to reach the checks behind the MAC.
fn signed(mut body: Vec<u8>) -> Vec<u8> {
    let mac = key().mac(&body);
    body.extend(mac);
    body
}

#[test]
fn authentic_packets_with_unknown_fields_are_refused() {
    let body = packet(1).encode(&key());
    let body = body[..body.len() - MAC_LEN].to_vec();
    let mut version = body.clone();
    version[0] = 2;
    assert_eq!(
        Packet::decode(&signed(version), &key()),
        Err(PacketError::Version(2))
    );
    let mut kind = body.clone();
    kind[1] = 9;
    assert_eq!(
        Packet::decode(&signed(kind), &key()),
        Err(PacketError::Kind(9))
    );
    let mut state = body.clone();
    state[HEADER_LEN + 16] = 0x47;
    assert_eq!(
        Packet::decode(&signed(state), &key()),
        Err(PacketError::State(0x47))
    );
    let mut sender_dead = body.clone();
    sender_dead[34] = 2;
    assert_eq!(
        Packet::decode(&signed(sender_dead), &key()),
        Err(PacketError::State(2))
    );
    let mut many = vec![0; HEADER_LEN + 40 * ENTRY_LEN];
    many[0] = 1;
    many[HEADER_LEN - 1] = 40;
    assert_eq!(
        Packet::decode(&signed(many), &key()),
        Err(PacketError::TooManyEntries(40))
    );
}

/// Core `b` that knows `a` and `b` as members.
fn core_b(now: Instant) -> Liveness {
    let mut b = Liveness::new(Config::default(), "b", key(), 1, now).unwrap();
    let lease = LeaseView {
        renewed_at: now,
        expires_at: now + Duration::from_secs(10),
        peers: None,
    };
    b.observe_lease(now, "a", lease);
    b.observe_lease(now, "b", lease);
    b
}

fn heartbeat(from: &str, to: &str, sequence: u64) -> Vec<u8> {
    Packet {
        kind: Kind::Heartbeat,
        from: node_id(from),
        to: node_id(to),
        sequence,
        incarnation: 1,
        stand_down: StandDown::default(),
        api_age_ms: Some(0),
        entries: Vec::new(),
    }
    .encode(&key())
}

#[test]
fn a_core_refuses_replays_other_receivers_and_unknown_senders() {
    let now = Instant::now();
    let mut b = core_b(now);
    assert_eq!(b.handle_packet(now, &heartbeat("a", "b", 10)), Ok(()));
    assert_eq!(
        b.handle_packet(now, &heartbeat("a", "b", 10)),
        Err(ReceiveError::Replayed {
            last: 10,
            sequence: 10
        })
    );
    assert!(matches!(
        b.handle_packet(now, &heartbeat("a", "b", 9)),
        Err(ReceiveError::Replayed { .. })
    ));
    assert_eq!(b.handle_packet(now, &heartbeat("a", "b", 11)), Ok(()));
    assert_eq!(
        b.handle_packet(now, &heartbeat("a", "c", 12)),
        Err(ReceiveError::NotForUs(node_id("c")))
    );
    assert_eq!(
        b.handle_packet(now, &heartbeat("mallory", "b", 1)),
        Err(ReceiveError::UnknownSender(node_id("mallory")))
    );
    assert_eq!(
        b.handle_packet(now, &heartbeat("b", "b", 1)),
        Err(ReceiveError::UnknownSender(node_id("b")))
    );
    let error = b.handle_packet(now, &[0; 3]).unwrap_err();
    assert_eq!(error.label(), "too_short");
}

#[test]
fn a_probe_is_answered_at_once() {
    let now = Instant::now();
    let mut b = core_b(now);
    let mut probe = Packet::decode(&heartbeat("a", "b", 5), &key()).unwrap();
    probe.kind = Kind::Probe;
    probe.sequence = 6;
    b.handle_packet(now, &probe.encode(&key())).unwrap();
    let answer = std::iter::from_fn(|| b.poll_transmit())
        .find(|t| t.to == "a")
        .expect("an answer to a");
    let answer = Packet::decode(&answer.bytes, &key()).unwrap();
    assert_eq!(answer.kind, Kind::Heartbeat);
    assert_eq!(answer.from, node_id("b"));
}
