//! Byte fixtures in both directions, and malformed messages answered with the NOTIFICATION
//! RFC 4271 §6 and RFC 7606 prescribe.

use std::net::{Ipv4Addr, Ipv6Addr};

use metallb_bgp::{
    AsSegment, AsWidth, Capability, Community, LargeCommunity, Message, MessageError, MpReach,
    Notification, Open, Origin, PathAttributes, SegmentKind, Update, WithdrawReason,
};

/// A message with a correct header around `body`.
fn message(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut bytes = vec![0xff; 16];
    bytes.extend_from_slice(&((19 + body.len()) as u16).to_be_bytes());
    bytes.push(kind);
    bytes.extend_from_slice(body);
    bytes
}

fn update_body(withdrawn: &[u8], attributes: &[u8], nlri: &[u8]) -> Vec<u8> {
    let mut body = (withdrawn.len() as u16).to_be_bytes().to_vec();
    body.extend_from_slice(withdrawn);
    body.extend_from_slice(&(attributes.len() as u16).to_be_bytes());
    body.extend_from_slice(attributes);
    body.extend_from_slice(nlri);
    body
}

/// The NOTIFICATION (code, subcode, data) a parse error answers with.
fn refusal(bytes: &[u8], width: AsWidth) -> (u8, u8, Vec<u8>) {
    let error = Message::parse(bytes, width).expect_err("the message must be refused");
    let Notification {
        code,
        subcode,
        data,
    } = error.notification();
    (code, subcode, data)
}

fn parse_update(bytes: &[u8], width: AsWidth) -> Update {
    match Message::parse(bytes, width) {
        Ok(Message::Update(update)) => *update,
        other => panic!("expected an UPDATE, got {other:?}"),
    }
}

/// FRR's OPEN as the lab saw it: AS 64512, hold 9, with the capabilities FRR 10 sends.
const FRR_OPEN: &[u8] = &[
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0x00, 0x40, 0x01, // length 64, OPEN
    0x04, 0xfc, 0x00, 0x00, 0x09, 192, 168, 250, 1, // version, AS 64512, hold 9, router ID
    35, 0x02, 33, // one Capabilities parameter of 33 bytes
    0x01, 0x04, 0x00, 0x01, 0x00, 0x01, // MP IPv4 unicast
    0x01, 0x04, 0x00, 0x02, 0x00, 0x01, // MP IPv6 unicast
    0x80, 0x00, // route refresh (old Cisco code)
    0x02, 0x00, // route refresh
    0x41, 0x04, 0x00, 0x00, 0xfc, 0x00, // 4-octet AS 64512
    0x46, 0x00, // enhanced route refresh
    0x49, 0x07, 0x05, b'n', b'o', b'd', b'e', b'1', 0x00, // FQDN "node1"
];

fn frr_open() -> Open {
    Open {
        my_as: 64512,
        hold_time: 9,
        router_id: Ipv4Addr::new(192, 168, 250, 1),
        capabilities: vec![
            Capability::IPV4_UNICAST,
            Capability::IPV6_UNICAST,
            Capability::Unknown {
                code: 128,
                value: vec![],
            },
            Capability::Unknown {
                code: 2,
                value: vec![],
            },
            Capability::FourOctetAs(64512),
            Capability::Unknown {
                code: 70,
                value: vec![],
            },
            Capability::Unknown {
                code: 73,
                value: b"\x05node1\x00".to_vec(),
            },
        ],
    }
}

#[test]
fn frr_open_parses_with_unknown_capabilities_kept() {
    let open = match Message::parse(FRR_OPEN, AsWidth::Two) {
        Ok(Message::Open(open)) => open,
        other => panic!("expected an OPEN, got {other:?}"),
    };
    assert_eq!(open, frr_open());
    assert_eq!(open.asn(), 64512);
    assert!(open.four_octet_as());
    assert!(open.multiprotocol());
}

#[test]
fn frr_open_encodes_to_the_same_bytes() {
    assert_eq!(Message::Open(frr_open()).encode(AsWidth::Two), FRR_OPEN);
}

#[test]
fn keepalive_is_a_bare_header_both_ways() {
    let bytes = message(4, &[]);
    assert_eq!(bytes.len(), 19);
    assert_eq!(
        Message::parse(&bytes, AsWidth::Four),
        Ok(Message::Keepalive)
    );
    assert_eq!(Message::Keepalive.encode(AsWidth::Four), bytes);
}

#[test]
fn notification_carries_code_subcode_and_data_both_ways() {
    let bytes = message(3, &[6, 2, 0xde, 0xad]);
    let notification = Notification {
        code: 6,
        subcode: 2,
        data: vec![0xde, 0xad],
    };
    assert_eq!(
        Message::parse(&bytes, AsWidth::Two),
        Ok(Message::Notification(notification.clone()))
    );
    assert_eq!(
        Message::Notification(notification).encode(AsWidth::Two),
        bytes
    );
}

const V4_ATTRIBUTES: &[u8] = &[
    0x40, 0x01, 0x01, 0x00, // ORIGIN IGP
    0x40, 0x02, 0x06, 0x02, 0x01, 0x00, 0x00, 0xfb, 0xf4, // AS_PATH sequence [64500]
    0x40, 0x03, 0x04, 192, 168, 250, 13, // NEXT_HOP
    0xc0, 0x08, 0x08, 0xfb, 0xf4, 0x01, 0x2c, 0xff, 0xff, 0x00, 0x00, // 64500:300, 65535:0
];

fn v4_update() -> Update {
    Update {
        attributes: PathAttributes {
            origin: Some(Origin::Igp),
            as_path: Some(vec![AsSegment {
                kind: SegmentKind::Sequence,
                asns: vec![64500],
            }]),
            next_hop: Some(Ipv4Addr::new(192, 168, 250, 13)),
            communities: vec![Community::new(64500, 300), Community::GRACEFUL_SHUTDOWN],
            ..PathAttributes::default()
        },
        nlri: vec![
            "192.168.250.220/32".parse().unwrap(),
            "10.0.0.0/8".parse().unwrap(),
        ],
        ..Update::default()
    }
}

#[test]
fn ipv4_update_with_communities_parses_and_encodes_byte_for_byte() {
    let nlri = [32, 192, 168, 250, 220, 8, 10];
    let bytes = message(2, &update_body(&[], V4_ATTRIBUTES, &nlri));
    assert_eq!(parse_update(&bytes, AsWidth::Four), v4_update());
    assert_eq!(
        Message::Update(Box::new(v4_update())).encode(AsWidth::Four),
        bytes
    );
    assert_eq!(Community::GRACEFUL_SHUTDOWN.to_string(), "65535:0");
}

#[test]
fn two_octet_sessions_write_as_path_in_two_octets() {
    let update = v4_update();
    let bytes = Message::Update(Box::new(update.clone())).encode(AsWidth::Two);
    assert_eq!(parse_update(&bytes, AsWidth::Two), update);
    // Two bytes shorter than the 4-octet form: one ASN of two octets instead of four.
    assert_eq!(
        bytes.len() + 2,
        Message::Update(Box::new(update))
            .encode(AsWidth::Four)
            .len()
    );
}

#[test]
fn mp_reach_for_ipv6_parses_and_encodes_byte_for_byte() {
    let next_hop: Ipv6Addr = "fd00:250::13".parse().unwrap();
    let prefix: Ipv6Addr = "fd00:250::220".parse().unwrap();
    let mut reach = vec![0x00, 0x02, 0x01, 16];
    reach.extend_from_slice(&next_hop.octets());
    reach.extend_from_slice(&[0, 128]);
    reach.extend_from_slice(&prefix.octets());
    let mut attributes = vec![
        0x40, 0x01, 0x01, 0x00, 0x40, 0x02, 0x04, 0x02, 0x01, 0xfb, 0xf4,
    ];
    attributes.extend_from_slice(&[0x80, 0x0e, reach.len() as u8]);
    attributes.extend_from_slice(&reach);
    let bytes = message(2, &update_body(&[], &attributes, &[]));
    let expected = Update {
        attributes: PathAttributes {
            origin: Some(Origin::Igp),
            as_path: Some(vec![AsSegment {
                kind: SegmentKind::Sequence,
                asns: vec![64500],
            }]),
            mp_reach: Some(MpReach {
                next_hop,
                link_local: None,
                nlri: vec!["fd00:250::220/128".parse().unwrap()],
            }),
            ..PathAttributes::default()
        },
        ..Update::default()
    };
    assert_eq!(parse_update(&bytes, AsWidth::Two), expected);
    assert_eq!(
        Message::Update(Box::new(expected)).encode(AsWidth::Two),
        bytes
    );
}

#[test]
fn withdrawals_and_mp_unreach_round_trip_with_link_local_next_hop() {
    let update = Update {
        withdrawn: vec!["192.0.2.0/24".parse().unwrap()],
        attributes: PathAttributes {
            origin: Some(Origin::Incomplete),
            as_path: Some(vec![]),
            local_pref: Some(200),
            large_communities: (0..30)
                .map(|n| LargeCommunity {
                    global_admin: 64500,
                    local_data_1: n,
                    local_data_2: 7,
                })
                .collect(),
            mp_reach: Some(MpReach {
                next_hop: "2001:db8::1".parse().unwrap(),
                link_local: Some("fe80::1".parse().unwrap()),
                nlri: vec!["2001:db8:1::/48".parse().unwrap()],
            }),
            mp_unreach: Some(vec!["2001:db8:2::/64".parse().unwrap()]),
            ..PathAttributes::default()
        },
        ..Update::default()
    };
    let bytes = Message::Update(Box::new(update.clone())).encode(AsWidth::Four);
    // 30 large communities take 360 bytes: the attribute needs the Extended Length flag.
    assert!(bytes.windows(2).any(|pair| pair == [0xd0, 32]));
    assert_eq!(parse_update(&bytes, AsWidth::Four), update);
}

#[test]
fn host_bits_past_the_prefix_length_are_cleared() {
    let bytes = message(2, &update_body(&[24, 192, 0, 2], &[], &[]));
    // The withdrawn /24 has no host byte to carry; a /23 with the low bit set gets it cleared.
    let odd = message(2, &update_body(&[23, 192, 0, 3], &[], &[]));
    assert_eq!(
        parse_update(&bytes, AsWidth::Two).withdrawn,
        vec!["192.0.2.0/24".parse().unwrap()]
    );
    assert_eq!(
        parse_update(&odd, AsWidth::Two).withdrawn,
        vec!["192.0.2.0/23".parse().unwrap()]
    );
}

#[test]
fn a_bad_marker_is_connection_not_synchronized() {
    let mut bytes = message(4, &[]);
    bytes[3] = 0;
    assert_eq!(refusal(&bytes, AsWidth::Two), (1, 1, vec![]));
}

#[test]
fn lengths_outside_the_limits_are_bad_message_length_with_the_length_as_data() {
    let mut short = message(4, &[]);
    short[17] = 18;
    assert_eq!(refusal(&short, AsWidth::Two), (1, 2, vec![0, 18]));
    let mut long = message(2, &[0; 4]);
    long[16..18].copy_from_slice(&4097u16.to_be_bytes());
    assert_eq!(refusal(&long, AsWidth::Two), (1, 2, vec![0x10, 0x01]));
    assert_eq!(
        refusal(&message(4, &[0]), AsWidth::Two),
        (1, 2, vec![0, 20])
    );
    assert_eq!(
        refusal(&message(3, &[6]), AsWidth::Two),
        (1, 2, vec![0, 20])
    );
}

#[test]
fn an_unknown_type_is_bad_message_type_with_the_type_as_data() {
    // ROUTE-REFRESH is never negotiated, so it is as unknown as type 9.
    assert_eq!(
        refusal(&message(5, &[0, 1, 0, 1]), AsWidth::Two),
        (1, 3, vec![5])
    );
    assert_eq!(refusal(&message(9, &[]), AsWidth::Two), (1, 3, vec![9]));
}

#[test]
fn an_open_of_version_three_is_refused_with_our_version_as_data() {
    let mut bytes = FRR_OPEN.to_vec();
    bytes[19] = 3;
    assert_eq!(refusal(&bytes, AsWidth::Two), (2, 1, vec![0, 4]));
}

#[test]
fn open_parameters_that_do_not_add_up_are_refused() {
    let mut bytes = FRR_OPEN.to_vec();
    bytes[28] = 34;
    assert_eq!(refusal(&bytes, AsWidth::Two), (2, 0, vec![]));
    let mut bytes = FRR_OPEN.to_vec();
    bytes[30] = 40;
    assert_eq!(refusal(&bytes, AsWidth::Two), (2, 0, vec![]));
}

#[test]
fn an_optional_parameter_other_than_capabilities_is_unsupported() {
    let mut bytes = FRR_OPEN.to_vec();
    bytes[29] = 1;
    assert_eq!(refusal(&bytes, AsWidth::Two), (2, 4, vec![]));
}

#[test]
fn a_withdrawn_length_past_the_end_is_a_malformed_attribute_list() {
    let mut body = update_body(&[], &[], &[]);
    body[1] = 9;
    assert_eq!(refusal(&message(2, &body), AsWidth::Two), (3, 1, vec![]));
    let mut attributes_overrun = update_body(&[], &[0x40, 0x01, 0x05, 0x00], &[]);
    attributes_overrun[3] = 9;
    assert_eq!(
        refusal(&message(2, &attributes_overrun), AsWidth::Two),
        (3, 1, vec![])
    );
}

#[test]
fn an_attribute_longer_than_the_list_is_a_malformed_attribute_list() {
    let body = update_body(&[], &[0x40, 0x01, 0x05, 0x00], &[]);
    assert_eq!(refusal(&message(2, &body), AsWidth::Two), (3, 1, vec![]));
}

#[test]
fn a_prefix_longer_than_32_bits_is_an_invalid_network_field() {
    let body = update_body(&[], V4_ATTRIBUTES, &[33, 10, 0, 0, 1, 0]);
    assert_eq!(refusal(&message(2, &body), AsWidth::Four), (3, 10, vec![]));
    let truncated = update_body(&[], V4_ATTRIBUTES, &[32, 10, 0]);
    assert_eq!(
        refusal(&message(2, &truncated), AsWidth::Four),
        (3, 10, vec![])
    );
}

#[test]
fn an_unknown_well_known_attribute_is_refused_with_the_attribute_as_data() {
    let attribute = [0x40, 99, 0x02, 0xab, 0xcd];
    let body = update_body(&[], &attribute, &[]);
    assert_eq!(
        refusal(&message(2, &body), AsWidth::Two),
        (3, 2, attribute.to_vec())
    );
}

#[test]
fn unknown_optional_attributes_are_kept_and_re_encoded() {
    let mut attributes = V4_ATTRIBUTES.to_vec();
    attributes.extend_from_slice(&[0x80, 0x04, 0x04, 0, 0, 0, 10]); // MED 10
    let body = update_body(&[], &attributes, &[8, 10]);
    let update = parse_update(&message(2, &body), AsWidth::Four);
    assert_eq!(update.attributes.other.len(), 1);
    assert_eq!(update.treat_as_withdraw, None);
    let again = Message::Update(Box::new(update.clone())).encode(AsWidth::Four);
    assert_eq!(parse_update(&again, AsWidth::Four), update);
}

#[test]
fn a_malformed_mp_reach_resets_the_session_with_optional_attribute_error() {
    // A next hop of 5 bytes is neither 16 nor 32.
    let attributes = [0x80, 0x0e, 0x0a, 0x00, 0x02, 0x01, 5, 1, 2, 3, 4, 5, 0];
    let body = update_body(&[], &attributes, &[]);
    assert_eq!(refusal(&message(2, &body), AsWidth::Two), (3, 9, vec![]));
    let flags = [0x40, 0x0f, 0x03, 0x00, 0x02, 0x01];
    let body = update_body(&[], &flags, &[]);
    assert_eq!(refusal(&message(2, &body), AsWidth::Two), (3, 9, vec![]));
}

#[test]
fn a_repeated_mp_attribute_is_a_malformed_attribute_list() {
    let unreach = [0x80, 0x0f, 0x03, 0x00, 0x02, 0x01];
    let body = update_body(&[], &[unreach, unreach].concat(), &[]);
    assert_eq!(refusal(&message(2, &body), AsWidth::Two), (3, 1, vec![]));
}

#[test]
fn a_community_attribute_of_three_bytes_makes_the_update_treat_as_withdraw() {
    let mut attributes = V4_ATTRIBUTES[..20].to_vec();
    attributes.extend_from_slice(&[0xc0, 0x08, 0x03, 1, 2, 3]);
    let body = update_body(&[], &attributes, &[8, 10]);
    let update = parse_update(&message(2, &body), AsWidth::Four);
    assert_eq!(
        update.treat_as_withdraw,
        Some(WithdrawReason::Malformed { type_code: 8 })
    );
    assert!(update.attributes.communities.is_empty());
}

#[test]
fn bad_origin_as_path_and_next_hop_make_the_update_treat_as_withdraw() {
    let cases: [(&[u8], u8); 4] = [
        (&[0x40, 0x01, 0x01, 0x07], 1),
        (&[0x40, 0x02, 0x02, 0x02, 0x00], 2),
        (&[0x40, 0x03, 0x03, 1, 2, 3], 3),
        (&[0xc0, 0x01, 0x01, 0x00], 1),
    ];
    for (attribute, type_code) in cases {
        let body = update_body(&[], attribute, &[8, 10]);
        let update = parse_update(&message(2, &body), AsWidth::Four);
        assert_eq!(
            update.treat_as_withdraw,
            Some(WithdrawReason::Malformed { type_code }),
            "{attribute:02x?}"
        );
    }
}

#[test]
fn prefixes_without_a_next_hop_make_the_update_treat_as_withdraw() {
    let body = update_body(&[], &V4_ATTRIBUTES[..13], &[8, 10]);
    let update = parse_update(&message(2, &body), AsWidth::Four);
    assert_eq!(
        update.treat_as_withdraw,
        Some(WithdrawReason::MissingMandatory { type_code: 3 })
    );
}

#[test]
fn repeated_ordinary_attributes_keep_the_first() {
    let mut attributes = V4_ATTRIBUTES.to_vec();
    attributes.extend_from_slice(&[0x40, 0x01, 0x01, 0x02]);
    let body = update_body(&[], &attributes, &[8, 10]);
    let update = parse_update(&message(2, &body), AsWidth::Four);
    assert_eq!(update.attributes.origin, Some(Origin::Igp));
    assert_eq!(update.treat_as_withdraw, None);
}

#[test]
fn every_error_has_a_distinct_label() {
    let errors = [
        MessageError::NotSynchronized,
        MessageError::BadLength { length: 0 },
        MessageError::BadType { kind: 0 },
        MessageError::MalformedOpen,
        MessageError::MalformedCapability { code: 64 },
        MessageError::InvalidNetworkField,
        MessageError::MalformedAttributeList,
    ];
    let labels: std::collections::BTreeSet<_> = errors.iter().map(MessageError::label).collect();
    assert_eq!(labels.len(), errors.len());
}
