//! Control packet codec against byte fixtures built by hand from RFC 5880 §4.1, in both
//! directions, and every reception check of §6.8.6 that needs only the packet.

use std::num::{NonZeroU8, NonZeroU32};

use metallb_bfd::{ControlPacket, Diagnostic, PACKET_LEN, PacketError, State};

/// What FRR's bfdd sends on an established session with its default profile: version 1, no
/// diagnostic, state Up, detect mult 3, length 24, 300 ms both ways, echo receive 50 ms.
const FRR_UP: [u8; PACKET_LEN] = [
    0x20, // version 1, diag 0
    0xc0, // state Up, no flags
    0x03, // detect mult
    0x18, // length 24
    0x6b, 0x8b, 0x45, 0x67, // my discriminator
    0x32, 0x7b, 0x23, 0xc6, // your discriminator
    0x00, 0x04, 0x93, 0xe0, // desired min tx 300000 us
    0x00, 0x04, 0x93, 0xe0, // required min rx 300000 us
    0x00, 0x00, 0xc3, 0x50, // required min echo rx 50000 us
];

fn frr_up() -> ControlPacket {
    ControlPacket {
        diagnostic: Diagnostic::None,
        state: State::Up,
        poll: false,
        final_: false,
        control_plane_independent: false,
        demand: false,
        detect_multiplier: NonZeroU8::new(3).unwrap(),
        my_discriminator: NonZeroU32::new(0x6b8b_4567).unwrap(),
        your_discriminator: 0x327b_23c6,
        desired_min_tx_us: 300_000,
        required_min_rx_us: 300_000,
        required_min_echo_rx_us: 50_000,
    }
}

/// A peer that has not heard us yet and whose detection time expired: Down, diag 1, your
/// discriminator 0, slow 1 s transmit.
const DOWN_AFTER_TIMEOUT: [u8; PACKET_LEN] = [
    0x21, 0x40, 0x03, 0x18, //
    0x00, 0x00, 0x00, 0x2a, //
    0x00, 0x00, 0x00, 0x00, //
    0x00, 0x0f, 0x42, 0x40, //
    0x00, 0x04, 0x93, 0xe0, //
    0x00, 0x00, 0x00, 0x00, //
];

fn down_after_timeout() -> ControlPacket {
    ControlPacket {
        diagnostic: Diagnostic::ControlDetectionTimeExpired,
        state: State::Down,
        my_discriminator: NonZeroU32::new(42).unwrap(),
        your_discriminator: 0,
        desired_min_tx_us: 1_000_000,
        required_min_echo_rx_us: 0,
        ..frr_up()
    }
}

/// Init with the Poll bit.
const INIT_POLL: [u8; PACKET_LEN] = [
    0x20, 0xa0, 0x03, 0x18, //
    0x00, 0x00, 0x00, 0x2a, //
    0x00, 0x00, 0x00, 0x07, //
    0x00, 0x0f, 0x42, 0x40, //
    0x00, 0x00, 0x27, 0x10, //
    0x00, 0x00, 0x00, 0x00, //
];

/// Up with the Final bit, plus the C and D bits that we never set ourselves.
const UP_FINAL_C_D: [u8; PACKET_LEN] = [
    0x20, 0xda, 0x01, 0x18, //
    0xff, 0xff, 0xff, 0xff, //
    0x00, 0x00, 0x00, 0x01, //
    0x00, 0x00, 0x27, 0x10, //
    0x00, 0x00, 0x27, 0x10, //
    0x00, 0x00, 0x00, 0x00, //
];

/// A graceful stop: AdminDown with diag 7.
const ADMIN_DOWN: [u8; PACKET_LEN] = [
    0x27, 0x00, 0x03, 0x18, //
    0x00, 0x00, 0x00, 0x2a, //
    0x00, 0x00, 0x00, 0x07, //
    0x00, 0x0f, 0x42, 0x40, //
    0x00, 0x04, 0x93, 0xe0, //
    0x00, 0x00, 0x00, 0x00, //
];

fn fixtures() -> Vec<(&'static str, [u8; PACKET_LEN], ControlPacket)> {
    let base = down_after_timeout();
    vec![
        ("frr up", FRR_UP, frr_up()),
        ("down after timeout", DOWN_AFTER_TIMEOUT, base),
        (
            "init poll",
            INIT_POLL,
            ControlPacket {
                diagnostic: Diagnostic::None,
                state: State::Init,
                poll: true,
                your_discriminator: 7,
                required_min_rx_us: 10_000,
                ..base
            },
        ),
        (
            "up final with c and d",
            UP_FINAL_C_D,
            ControlPacket {
                diagnostic: Diagnostic::None,
                state: State::Up,
                final_: true,
                control_plane_independent: true,
                demand: true,
                detect_multiplier: NonZeroU8::new(1).unwrap(),
                my_discriminator: NonZeroU32::new(u32::MAX).unwrap(),
                your_discriminator: 1,
                desired_min_tx_us: 10_000,
                required_min_rx_us: 10_000,
                ..base
            },
        ),
        (
            "admin down",
            ADMIN_DOWN,
            ControlPacket {
                diagnostic: Diagnostic::AdministrativelyDown,
                state: State::AdminDown,
                your_discriminator: 7,
                ..base
            },
        ),
    ]
}

#[test]
fn fixtures_parse_field_by_field() {
    for (name, bytes, expected) in fixtures() {
        assert_eq!(ControlPacket::parse(&bytes), Ok(expected), "{name}");
    }
}

#[test]
fn fixtures_encode_to_the_same_bytes() {
    for (name, bytes, packet) in fixtures() {
        assert_eq!(packet.encode(), bytes, "{name}");
    }
}

#[test]
fn bytes_after_the_length_field_are_ignored() {
    let mut padded = FRR_UP.to_vec();
    padded.extend_from_slice(&[0xde, 0xad]);
    assert_eq!(ControlPacket::parse(&padded), Ok(frr_up()));
}

#[test]
fn every_diagnostic_code_survives_a_round_trip() {
    for code in 0..32u8 {
        let mut bytes = ADMIN_DOWN;
        bytes[0] = 0x20 | code;
        let packet = ControlPacket::parse(&bytes).unwrap();
        assert_eq!(packet.diagnostic.code(), code);
        assert_eq!(packet.encode(), bytes);
    }
    let reserved = ControlPacket::parse(&[&[0x29][..], &ADMIN_DOWN[1..]].concat()).unwrap();
    assert_eq!(reserved.diagnostic, Diagnostic::Reserved(9));
}

#[test]
fn diagnostics_read_like_frr() {
    assert_eq!(
        Diagnostic::NeighborSignaledSessionDown.to_string(),
        "neighbor signaled session down"
    );
    assert_eq!(
        Diagnostic::AdministrativelyDown.to_string(),
        "administratively down"
    );
    assert_eq!(
        Diagnostic::Reserved(31).to_string(),
        "reserved diagnostic 31"
    );
}

fn with(bytes: [u8; PACKET_LEN], change: impl FnOnce(&mut [u8; PACKET_LEN])) -> [u8; PACKET_LEN] {
    let mut changed = bytes;
    change(&mut changed);
    changed
}

#[test]
fn a_payload_shorter_than_the_header_is_truncated() {
    for len in 0..PACKET_LEN {
        assert_eq!(
            ControlPacket::parse(&FRR_UP[..len]),
            Err(PacketError::Truncated { len })
        );
    }
}

#[test]
fn versions_other_than_one_are_refused() {
    for version in [0u8, 2, 7] {
        let bytes = with(FRR_UP, |b| b[0] = version << 5);
        assert_eq!(
            ControlPacket::parse(&bytes),
            Err(PacketError::BadVersion(version))
        );
    }
}

#[test]
fn a_length_field_below_24_is_refused() {
    let bytes = with(FRR_UP, |b| b[3] = 23);
    assert_eq!(
        ControlPacket::parse(&bytes),
        Err(PacketError::LengthTooShort {
            length: 23,
            minimum: 24
        })
    );
}

#[test]
fn a_length_field_beyond_the_payload_is_refused() {
    let bytes = with(FRR_UP, |b| b[3] = 25);
    assert_eq!(
        ControlPacket::parse(&bytes),
        Err(PacketError::LengthExceedsPayload {
            length: 25,
            payload: 24
        })
    );
}

#[test]
fn a_zero_detect_multiplier_is_refused() {
    let bytes = with(FRR_UP, |b| b[2] = 0);
    assert_eq!(
        ControlPacket::parse(&bytes),
        Err(PacketError::ZeroDetectMultiplier)
    );
}

#[test]
fn the_multipoint_bit_is_refused() {
    let bytes = with(FRR_UP, |b| b[1] |= 0x01);
    assert_eq!(ControlPacket::parse(&bytes), Err(PacketError::Multipoint));
}

#[test]
fn a_zero_my_discriminator_is_refused() {
    let bytes = with(FRR_UP, |b| b[4..8].fill(0));
    assert_eq!(
        ControlPacket::parse(&bytes),
        Err(PacketError::ZeroMyDiscriminator)
    );
}

#[test]
fn a_zero_your_discriminator_is_refused_in_init_and_up() {
    for (flags, state) in [(0x80, State::Init), (0xc0, State::Up)] {
        let bytes = with(FRR_UP, |b| {
            b[1] = flags;
            b[8..12].fill(0);
        });
        assert_eq!(
            ControlPacket::parse(&bytes),
            Err(PacketError::ZeroYourDiscriminator(state))
        );
    }
}

#[test]
fn a_zero_your_discriminator_is_fine_in_down_and_admin_down() {
    for flags in [0x00, 0x40] {
        let bytes = with(FRR_UP, |b| {
            b[1] = flags;
            b[8..12].fill(0);
        });
        assert!(ControlPacket::parse(&bytes).is_ok());
    }
}

#[test]
fn an_authenticated_packet_is_refused_because_we_configure_no_authentication() {
    // Simple password auth (type 1), key id 1, password "frr": length 24 + 6.
    let mut bytes = with(FRR_UP, |b| {
        b[1] |= 0x04;
        b[3] = 30;
    })
    .to_vec();
    bytes.extend_from_slice(&[0x01, 0x06, 0x01, b'f', b'r', b'r']);
    assert_eq!(
        ControlPacket::parse(&bytes),
        Err(PacketError::AuthenticationNotConfigured)
    );
}

#[test]
fn the_auth_bit_raises_the_minimum_length_to_26() {
    let bytes = with(FRR_UP, |b| b[1] |= 0x04);
    assert_eq!(
        ControlPacket::parse(&bytes),
        Err(PacketError::LengthTooShort {
            length: 24,
            minimum: 26
        })
    );
}

#[test]
fn checks_run_in_the_order_of_rfc_5880() {
    // Wrong version and zero multiplier: the version is reported.
    let bytes = with(FRR_UP, |b| {
        b[0] = 0x40;
        b[2] = 0;
    });
    assert_eq!(
        ControlPacket::parse(&bytes),
        Err(PacketError::BadVersion(2))
    );
    // Multipoint and auth: multipoint comes first, so auth is the last check.
    let mut bytes = with(FRR_UP, |b| {
        b[1] |= 0x05;
        b[3] = 26;
    })
    .to_vec();
    bytes.extend_from_slice(&[0, 0]);
    assert_eq!(ControlPacket::parse(&bytes), Err(PacketError::Multipoint));
}

#[test]
fn drop_reasons_have_distinct_labels() {
    let errors = [
        PacketError::Truncated { len: 0 },
        PacketError::BadVersion(0),
        PacketError::LengthTooShort {
            length: 0,
            minimum: 24,
        },
        PacketError::LengthExceedsPayload {
            length: 30,
            payload: 24,
        },
        PacketError::ZeroDetectMultiplier,
        PacketError::Multipoint,
        PacketError::ZeroMyDiscriminator,
        PacketError::ZeroYourDiscriminator(State::Up),
        PacketError::AuthenticationNotConfigured,
    ];
    let mut labels: Vec<_> = errors.iter().map(PacketError::label).collect();
    labels.sort_unstable();
    labels.dedup();
    assert_eq!(labels.len(), errors.len());
}
