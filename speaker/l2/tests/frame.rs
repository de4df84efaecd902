//! Frame codec against byte fixtures built by hand from RFC 826, RFC 8200 and RFC 4861, in
//! both directions. The hosts are the lab's: a client (02:4e:4c:00:00:99, 192.168.250.99,
//! fe80::4e:4cff:fe00:99) asking for the service IPs 192.168.250.201 and fd00:250::201, which
//! node2 (02:4e:4c:00:00:12, fe80::4e:4cff:fe00:12) owns. The ICMPv6 checksums were summed by
//! hand per RFC 4443 §2.3 and agree with scapy 2.7's for the same packets.

use std::net::{Ipv4Addr, Ipv6Addr};

use metallb_l2::{
    ALL_NODES, AdvertisementFlags, ArpOperation, ArpPacket, Frame, FrameError, MacAddr, NdpMessage,
    NdpPacket, Payload, is_solicited_node_multicast, multicast_mac, solicited_node_multicast,
};

const CLIENT_MAC: MacAddr = MacAddr([0x02, 0x4e, 0x4c, 0x00, 0x00, 0x99]);
const NODE2_MAC: MacAddr = MacAddr([0x02, 0x4e, 0x4c, 0x00, 0x00, 0x12]);
const CLIENT_IP: Ipv4Addr = Ipv4Addr::new(192, 168, 250, 99);
const VIP4: Ipv4Addr = Ipv4Addr::new(192, 168, 250, 201);
const CLIENT_LINK_LOCAL: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0x4e, 0x4cff, 0xfe00, 0x99);
const NODE2_LINK_LOCAL: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0x4e, 0x4cff, 0xfe00, 0x12);
const VIP6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x250, 0, 0, 0, 0, 0, 0x201);
const VIP6_SOLICITED_NODE: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 1, 0xff00, 0x201);

/// What `arping -I eth0 192.168.250.201` (iputils) sends: a broadcast request whose target MAC
/// is broadcast too, unlike the kernel's zeros.
const ARPING_REQUEST: [u8; 42] = [
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // destination: broadcast
    0x02, 0x4e, 0x4c, 0x00, 0x00, 0x99, // source: client
    0x08, 0x06, // EtherType ARP
    0x00, 0x01, // hardware type Ethernet
    0x08, 0x00, // protocol type IPv4
    0x06, 0x04, // address lengths
    0x00, 0x01, // operation request
    0x02, 0x4e, 0x4c, 0x00, 0x00, 0x99, // sender MAC
    0xc0, 0xa8, 0xfa, 0x63, // sender IP 192.168.250.99
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // target MAC
    0xc0, 0xa8, 0xfa, 0xc9, // target IP 192.168.250.201
];

fn arping_request() -> Frame {
    Frame {
        destination: MacAddr::BROADCAST,
        source: CLIENT_MAC,
        vlan: None,
        payload: Payload::Arp(ArpPacket {
            operation: ArpOperation::Request,
            sender_mac: CLIENT_MAC,
            sender_ip: CLIENT_IP,
            target_mac: MacAddr::BROADCAST,
            target_ip: VIP4,
        }),
    }
}

/// node2's answer to it.
const ARP_REPLY: [u8; 42] = [
    0x02, 0x4e, 0x4c, 0x00, 0x00, 0x99, // destination: client
    0x02, 0x4e, 0x4c, 0x00, 0x00, 0x12, // source: node2
    0x08, 0x06, //
    0x00, 0x01, 0x08, 0x00, 0x06, 0x04, //
    0x00, 0x02, // operation reply
    0x02, 0x4e, 0x4c, 0x00, 0x00, 0x12, // sender MAC: node2
    0xc0, 0xa8, 0xfa, 0xc9, // sender IP: the service
    0x02, 0x4e, 0x4c, 0x00, 0x00, 0x99, // target MAC: client
    0xc0, 0xa8, 0xfa, 0x63, // target IP: client
];

/// A kernel-style request (target MAC zero) on VLAN 100 with priority 0, as seen on a trunk.
const TAGGED_REQUEST: [u8; 46] = [
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, //
    0x02, 0x4e, 0x4c, 0x00, 0x00, 0x99, //
    0x81, 0x00, 0x00, 0x64, // 802.1Q tag: TPID, TCI with VLAN ID 100
    0x08, 0x06, //
    0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01, //
    0x02, 0x4e, 0x4c, 0x00, 0x00, 0x99, 0xc0, 0xa8, 0xfa, 0x63, //
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xc0, 0xa8, 0xfa, 0xc9, //
];

/// What `ndisc6 fd00:250::201 eth0` sends: a solicitation from the client's link-local address
/// to the target's solicited-node group, with the client's MAC as source link-layer option.
/// Checksum: pseudo-header source 0x24a66 + destination 0x20004 + length 0x20 + next header
/// 0x3a, message 0x1d839, total 0x622fd, folded 0x2303, complemented 0xdcfc.
const NDISC6_SOLICITATION: [u8; 86] = [
    0x33, 0x33, 0xff, 0x00, 0x02, 0x01, // destination: the group's MAC
    0x02, 0x4e, 0x4c, 0x00, 0x00, 0x99, // source: client
    0x86, 0xdd, // EtherType IPv6
    0x60, 0x00, 0x00, 0x00, // version 6, traffic class and flow label 0
    0x00, 0x20, // payload length 32
    0x3a, 0xff, // next header ICMPv6, hop limit 255
    0xfe, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // source fe80::4e:4cff:fe00:99
    0x00, 0x4e, 0x4c, 0xff, 0xfe, 0x00, 0x00, 0x99, //
    0xff, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // destination ff02::1:ff00:201
    0x00, 0x00, 0x00, 0x01, 0xff, 0x00, 0x02, 0x01, //
    0x87, 0x00, 0xdc, 0xfc, // type 135, code 0, checksum
    0x00, 0x00, 0x00, 0x00, // reserved
    0xfd, 0x00, 0x02, 0x50, 0x00, 0x00, 0x00, 0x00, // target fd00:250::201
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x01, //
    0x01, 0x01, 0x02, 0x4e, 0x4c, 0x00, 0x00, 0x99, // source link-layer address option
];

fn ndisc6_solicitation() -> Frame {
    Frame {
        destination: MacAddr([0x33, 0x33, 0xff, 0x00, 0x02, 0x01]),
        source: CLIENT_MAC,
        vlan: None,
        payload: Payload::Ndp(NdpPacket {
            source: CLIENT_LINK_LOCAL,
            destination: VIP6_SOLICITED_NODE,
            message: NdpMessage::NeighborSolicitation {
                target: VIP6,
                source_mac: Some(CLIENT_MAC),
            },
        }),
    }
}

/// node2's solicited advertisement back to the client: S and O set.
const SOLICITED_ADVERTISEMENT: [u8; 86] = [
    0x02, 0x4e, 0x4c, 0x00, 0x00, 0x99, //
    0x02, 0x4e, 0x4c, 0x00, 0x00, 0x12, //
    0x86, 0xdd, //
    0x60, 0x00, 0x00, 0x00, 0x00, 0x20, 0x3a, 0xff, //
    0xfe, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // source fe80::4e:4cff:fe00:12
    0x00, 0x4e, 0x4c, 0xff, 0xfe, 0x00, 0x00, 0x12, //
    0xfe, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // destination fe80::4e:4cff:fe00:99
    0x00, 0x4e, 0x4c, 0xff, 0xfe, 0x00, 0x00, 0x99, //
    0x88, 0x00, 0x31, 0xa8, // type 136, code 0, checksum
    0x60, 0x00, 0x00, 0x00, // S and O
    0xfd, 0x00, 0x02, 0x50, 0x00, 0x00, 0x00, 0x00, //
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x01, //
    0x02, 0x01, 0x02, 0x4e, 0x4c, 0x00, 0x00, 0x12, // target link-layer address option
];

fn solicited_advertisement() -> Frame {
    Frame {
        destination: CLIENT_MAC,
        source: NODE2_MAC,
        vlan: None,
        payload: Payload::Ndp(NdpPacket {
            source: NODE2_LINK_LOCAL,
            destination: CLIENT_LINK_LOCAL,
            message: NdpMessage::NeighborAdvertisement {
                flags: AdvertisementFlags {
                    router: false,
                    solicited: true,
                    override_: true,
                },
                target: VIP6,
                target_mac: Some(NODE2_MAC),
            },
        }),
    }
}

/// node2's unsolicited advertisement after a takeover: to all-nodes, O only.
const UNSOLICITED_ADVERTISEMENT: [u8; 86] = [
    0x33, 0x33, 0x00, 0x00, 0x00, 0x01, //
    0x02, 0x4e, 0x4c, 0x00, 0x00, 0x12, //
    0x86, 0xdd, //
    0x60, 0x00, 0x00, 0x00, 0x00, 0x20, 0x3a, 0xff, //
    0xfe, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, //
    0x00, 0x4e, 0x4c, 0xff, 0xfe, 0x00, 0x00, 0x12, //
    0xff, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // destination ff02::1
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, //
    0x88, 0x00, 0xbd, 0x0c, //
    0x20, 0x00, 0x00, 0x00, // O
    0xfd, 0x00, 0x02, 0x50, 0x00, 0x00, 0x00, 0x00, //
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x01, //
    0x02, 0x01, 0x02, 0x4e, 0x4c, 0x00, 0x00, 0x12, //
];

/// Linux's duplicate address detection probe: from ::, no link-layer option, but a nonce
/// option (type 14, RFC 7527) that we skip.
const DAD_SOLICITATION: [u8; 86] = [
    0x33, 0x33, 0xff, 0x00, 0x02, 0x01, //
    0x02, 0x4e, 0x4c, 0x00, 0x00, 0x99, //
    0x86, 0xdd, //
    0x60, 0x00, 0x00, 0x00, 0x00, 0x20, 0x3a, 0xff, //
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // source ::
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, //
    0xff, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, //
    0x00, 0x00, 0x00, 0x01, 0xff, 0x00, 0x02, 0x01, //
    0x87, 0x00, 0xb1, 0xdb, //
    0x00, 0x00, 0x00, 0x00, //
    0xfd, 0x00, 0x02, 0x50, 0x00, 0x00, 0x00, 0x00, //
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x01, //
    0x0e, 0x01, 0x5a, 0x1c, 0xe0, 0x11, 0x7d, 0x42, // nonce option
];

/// Offsets into an untagged NDP frame.
const HOP_LIMIT: usize = 21;
const ICMP: usize = 54;
const CHECKSUM: usize = ICMP + 2;

/// Recomputes the ICMPv6 checksum of an untagged NDP frame after a test changed it, by
/// RFC 1071 arithmetic written out again here rather than borrowed from the crate.
fn with_checksum(mut frame: Vec<u8>) -> Vec<u8> {
    frame[CHECKSUM..CHECKSUM + 2].fill(0);
    let length = u16::from_be_bytes([frame[18], frame[19]]);
    let mut pseudo = frame[22..54].to_vec();
    pseudo.extend_from_slice(&[0, 0]);
    pseudo.extend_from_slice(&length.to_be_bytes());
    pseudo.extend_from_slice(&[0, 0, 0, 58]);
    let mut sum: u32 = 0;
    for bytes in [&pseudo[..], &frame[ICMP..ICMP + usize::from(length)]] {
        for pair in bytes.chunks(2) {
            sum += u32::from(pair[0]) << 8 | u32::from(*pair.get(1).unwrap_or(&0));
        }
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    frame[CHECKSUM..CHECKSUM + 2].copy_from_slice(&(!(sum as u16)).to_be_bytes());
    frame
}

fn changed(fixture: &[u8], changes: &[(usize, u8)]) -> Vec<u8> {
    let mut frame = fixture.to_vec();
    for &(at, value) in changes {
        frame[at] = value;
    }
    frame
}

#[test]
fn an_arping_request_parses_into_its_fields() {
    assert_eq!(Frame::parse(&ARPING_REQUEST), Ok(arping_request()));
}

#[test]
fn an_arping_request_encodes_to_the_same_bytes() {
    let frame = arping_request();
    assert_eq!(frame.buffer_len(), ARPING_REQUEST.len());
    assert_eq!(frame.encode(), ARPING_REQUEST);
}

#[test]
fn ethernet_padding_to_60_bytes_is_ignored() {
    let mut padded = ARPING_REQUEST.to_vec();
    padded.resize(60, 0);
    assert_eq!(Frame::parse(&padded), Ok(arping_request()));
}

#[test]
fn an_arp_reply_survives_both_directions() {
    let frame = Frame::parse(&ARP_REPLY).unwrap();
    let Payload::Arp(arp) = frame.payload else {
        panic!("not ARP: {frame:?}");
    };
    assert_eq!(arp.operation, ArpOperation::Reply);
    assert_eq!((arp.sender_mac, arp.sender_ip), (NODE2_MAC, VIP4));
    assert_eq!((arp.target_mac, arp.target_ip), (CLIENT_MAC, CLIENT_IP));
    assert_eq!(frame.encode(), ARP_REPLY);
}

#[test]
fn a_vlan_tag_is_kept_and_written_back() {
    let frame = Frame::parse(&TAGGED_REQUEST).unwrap();
    assert_eq!(frame.vlan, Some(100));
    let Payload::Arp(arp) = frame.payload else {
        panic!("not ARP: {frame:?}");
    };
    assert_eq!(arp.target_mac, MacAddr([0; 6]));
    assert_eq!(frame.buffer_len(), TAGGED_REQUEST.len());
    assert_eq!(frame.encode(), TAGGED_REQUEST);
}

#[test]
fn unknown_arp_operations_still_decode() {
    let rarp = changed(&ARPING_REQUEST, &[(21, 3)]);
    let frame = Frame::parse(&rarp).unwrap();
    let Payload::Arp(arp) = frame.payload else {
        panic!("not ARP: {frame:?}");
    };
    assert_eq!(arp.operation, ArpOperation::Other(3));
    assert_eq!(frame.encode(), rarp);
}

#[test]
fn an_ndisc6_solicitation_parses_with_its_checksum_verified() {
    assert_eq!(
        Frame::parse(&NDISC6_SOLICITATION),
        Ok(ndisc6_solicitation())
    );
}

#[test]
fn a_solicitation_encodes_with_the_hand_computed_checksum() {
    assert_eq!(ndisc6_solicitation().encode(), NDISC6_SOLICITATION);
}

#[test]
fn a_solicited_advertisement_survives_both_directions() {
    assert_eq!(
        Frame::parse(&SOLICITED_ADVERTISEMENT),
        Ok(solicited_advertisement())
    );
    assert_eq!(solicited_advertisement().encode(), SOLICITED_ADVERTISEMENT);
}

#[test]
fn an_unsolicited_advertisement_survives_both_directions() {
    let frame = Frame::parse(&UNSOLICITED_ADVERTISEMENT).unwrap();
    let Payload::Ndp(ndp) = &frame.payload else {
        panic!("not NDP: {frame:?}");
    };
    assert_eq!(ndp.destination, ALL_NODES);
    let NdpMessage::NeighborAdvertisement { flags, .. } = ndp.message else {
        panic!("not an advertisement: {ndp:?}");
    };
    assert_eq!(
        flags,
        AdvertisementFlags {
            override_: true,
            ..AdvertisementFlags::default()
        }
    );
    assert_eq!(frame.encode(), UNSOLICITED_ADVERTISEMENT);
}

#[test]
fn a_duplicate_address_probe_parses_and_its_nonce_is_skipped() {
    let frame = Frame::parse(&DAD_SOLICITATION).unwrap();
    let Payload::Ndp(ndp) = &frame.payload else {
        panic!("not NDP: {frame:?}");
    };
    assert!(ndp.is_duplicate_address_detection());
    assert_eq!(
        ndp.message,
        NdpMessage::NeighborSolicitation {
            target: VIP6,
            source_mac: None,
        }
    );
    // Written back without the nonce, so shorter and with a new checksum that still verifies.
    let encoded = frame.encode();
    assert_eq!(encoded.len(), DAD_SOLICITATION.len() - 8);
    assert_eq!(Frame::parse(&encoded), Ok(frame));
}

#[test]
fn an_advertisement_without_a_link_layer_option_round_trips() {
    let mut frame = solicited_advertisement();
    let Payload::Ndp(ndp) = &mut frame.payload else {
        unreachable!()
    };
    ndp.message = NdpMessage::NeighborAdvertisement {
        flags: AdvertisementFlags {
            router: true,
            solicited: true,
            override_: false,
        },
        target: VIP6,
        target_mac: None,
    };
    let encoded = frame.encode();
    assert_eq!(encoded.len(), 14 + 40 + 24);
    assert_eq!(encoded[ICMP + 4], 0xc0, "R and S");
    assert_eq!(Frame::parse(&encoded), Ok(frame));
}

#[test]
fn a_unicast_solicitation_may_leave_out_the_link_layer_option() {
    let mut probe = NDISC6_SOLICITATION[..78].to_vec();
    probe[19] = 24;
    let frame = Frame::parse(&with_checksum(probe)).unwrap();
    let Payload::Ndp(ndp) = frame.payload else {
        panic!("not NDP: {frame:?}");
    };
    assert_eq!(
        ndp.message,
        NdpMessage::NeighborSolicitation {
            target: VIP6,
            source_mac: None
        }
    );
}

#[test]
fn every_malformed_frame_gets_its_own_error() {
    let cases: Vec<(&str, Vec<u8>, FrameError)> = vec![
        (
            "short Ethernet header",
            ARPING_REQUEST[..13].to_vec(),
            FrameError::Truncated {
                needed: 14,
                available: 13,
            },
        ),
        (
            "tag cut off",
            TAGGED_REQUEST[..16].to_vec(),
            FrameError::Truncated {
                needed: 18,
                available: 16,
            },
        ),
        (
            "multicast source MAC",
            changed(&ARPING_REQUEST, &[(6, 0x03)]),
            FrameError::GroupSource(MacAddr([0x03, 0x4e, 0x4c, 0x00, 0x00, 0x99])),
        ),
        (
            "IPv4",
            changed(&ARPING_REQUEST, &[(12, 0x08), (13, 0x00)]),
            FrameError::UnsupportedEtherType(0x0800),
        ),
        (
            "short ARP",
            ARPING_REQUEST[..41].to_vec(),
            FrameError::Truncated {
                needed: 28,
                available: 27,
            },
        ),
        (
            "ARP over IEEE 802 hardware",
            changed(&ARPING_REQUEST, &[(15, 6)]),
            FrameError::UnsupportedArp {
                hardware_type: 6,
                protocol_type: 0x0800,
                hardware_len: 6,
                protocol_len: 4,
            },
        ),
        (
            "short IPv6 header",
            NDISC6_SOLICITATION[..53].to_vec(),
            FrameError::Truncated {
                needed: 40,
                available: 39,
            },
        ),
        (
            "IPv4 header in an IPv6 frame",
            changed(&NDISC6_SOLICITATION, &[(14, 0x45)]),
            FrameError::BadIpVersion(4),
        ),
        (
            "payload length past the frame",
            changed(&NDISC6_SOLICITATION, &[(19, 33)]),
            FrameError::PayloadLengthExceedsFrame {
                payload_length: 33,
                available: 32,
            },
        ),
        (
            "multicast IPv6 source",
            changed(&NDISC6_SOLICITATION, &[(22, 0xff)]),
            FrameError::MulticastSource("ff80::4e:4cff:fe00:99".parse().unwrap()),
        ),
        (
            "UDP",
            changed(&NDISC6_SOLICITATION, &[(20, 17)]),
            FrameError::NotIcmpv6(17),
        ),
        (
            "echo request",
            changed(&NDISC6_SOLICITATION, &[(ICMP, 128)]),
            FrameError::NotNeighborDiscovery(128),
        ),
        (
            "routed solicitation",
            changed(&NDISC6_SOLICITATION, &[(HOP_LIMIT, 64)]),
            FrameError::HopLimit(64),
        ),
        (
            "message shorter than a solicitation",
            with_checksum(changed(&NDISC6_SOLICITATION, &[(19, 20)])[..14 + 40 + 20].to_vec()),
            FrameError::Truncated {
                needed: 24,
                available: 20,
            },
        ),
        (
            "checksum off by one",
            changed(&NDISC6_SOLICITATION, &[(CHECKSUM + 1, 0xfd)]),
            FrameError::BadChecksum {
                received: 0xdcfd,
                expected: 0xdcfc,
            },
        ),
        (
            "code 1",
            with_checksum(changed(&NDISC6_SOLICITATION, &[(ICMP + 1, 1)])),
            FrameError::BadCode(1),
        ),
        (
            "multicast target",
            with_checksum(changed(&NDISC6_SOLICITATION, &[(ICMP + 8, 0xff)])),
            FrameError::MulticastTarget("ff00:250::201".parse().unwrap()),
        ),
        (
            "option of length zero",
            with_checksum(changed(&NDISC6_SOLICITATION, &[(ICMP + 25, 0)])),
            FrameError::ZeroLengthOption,
        ),
        (
            "option longer than the message",
            with_checksum(changed(&NDISC6_SOLICITATION, &[(ICMP + 25, 2)])),
            FrameError::Truncated {
                needed: 16,
                available: 8,
            },
        ),
        (
            "link-layer option of two units",
            with_checksum({
                let mut long = changed(&NDISC6_SOLICITATION, &[(19, 40), (ICMP + 25, 2)]);
                long.extend_from_slice(&[0; 8]);
                long
            }),
            FrameError::BadLinkLayerOption(2),
        ),
        (
            "probe to a unicast address",
            with_checksum(changed(
                &DAD_SOLICITATION,
                &[
                    (38, 0xfd),
                    (39, 0x00),
                    (40, 0x02),
                    (41, 0x50),
                    (49, 0),
                    (50, 0),
                ],
            )),
            FrameError::DadDestination(VIP6),
        ),
        (
            "probe with a source link-layer option",
            with_checksum({
                let mut probe = NDISC6_SOLICITATION.to_vec();
                probe[22..38].fill(0);
                probe
            }),
            FrameError::DadWithSourceLinkLayer,
        ),
        (
            "solicited advertisement to all nodes",
            with_checksum(changed(&UNSOLICITED_ADVERTISEMENT, &[(ICMP + 4, 0x60)])),
            FrameError::SolicitedToMulticast(ALL_NODES),
        ),
    ];
    for (what, bytes, error) in cases {
        assert_eq!(Frame::parse(&bytes), Err(error), "{what}");
    }
}

#[test]
fn drop_labels_are_fixed_snake_case_names() {
    let labels = [
        FrameError::UnsupportedEtherType(0x0800).label(),
        FrameError::HopLimit(64).label(),
        FrameError::BadChecksum {
            received: 0,
            expected: 1,
        }
        .label(),
        FrameError::DadWithSourceLinkLayer.label(),
    ];
    assert_eq!(
        labels,
        [
            "unsupported_ethertype",
            "hop_limit",
            "bad_checksum",
            "dad_with_source_link_layer"
        ]
    );
}

#[test]
fn mac_addresses_print_in_colon_notation() {
    assert_eq!(NODE2_MAC.to_string(), "02:4e:4c:00:00:12");
    assert_eq!(format!("{:?}", MacAddr::BROADCAST), "ff:ff:ff:ff:ff:ff");
    assert!(MacAddr::BROADCAST.is_multicast());
    assert!(!NODE2_MAC.is_multicast());
}

#[test]
fn a_service_ip_has_its_solicited_node_group_and_group_mac() {
    assert_eq!(solicited_node_multicast(VIP6), VIP6_SOLICITED_NODE);
    assert_eq!(
        multicast_mac(VIP6_SOLICITED_NODE),
        MacAddr([0x33, 0x33, 0xff, 0x00, 0x02, 0x01])
    );
    assert_eq!(
        multicast_mac(ALL_NODES),
        MacAddr([0x33, 0x33, 0x00, 0x00, 0x00, 0x01])
    );
    // Only the low 24 bits count: a link-local and a global address can share a group.
    assert_eq!(
        solicited_node_multicast("fe80::aa:bbff:fecc:ddee".parse().unwrap()),
        solicited_node_multicast("fd00::1:ffcc:ddee".parse().unwrap())
    );
    assert!(is_solicited_node_multicast(VIP6_SOLICITED_NODE));
    assert!(!is_solicited_node_multicast(ALL_NODES));
    assert!(!is_solicited_node_multicast(VIP6));
}
