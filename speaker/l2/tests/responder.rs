//! The responders' decision: what gets a reply, what the reply is to the byte, and the reason
//! for every frame that gets none. node2 owns 192.168.250.201 and fd00:250::201 on every
//! interface, and 192.168.250.202 only on eth1; requests arrive on eth0.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use metallb_l2::{
    ALL_NODES, AdvertisementFlags, AllowedInterfaces, ArpOperation, ArpPacket, Frame, FrameError,
    Ignored, Interface, MacAddr, NdpMessage, NdpPacket, Ownership, Payload, Reply, multicast_mac,
    respond, solicited_node_multicast,
};

const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fuzz/corpus/l2_frame/");

const CLIENT_MAC: MacAddr = MacAddr([0x02, 0x4e, 0x4c, 0x00, 0x00, 0x99]);
const NODE2_MAC: MacAddr = MacAddr([0x02, 0x4e, 0x4c, 0x00, 0x00, 0x12]);
const CLIENT_IP: Ipv4Addr = Ipv4Addr::new(192, 168, 250, 99);
const VIP4: Ipv4Addr = Ipv4Addr::new(192, 168, 250, 201);
const ETH1_ONLY: Ipv4Addr = Ipv4Addr::new(192, 168, 250, 202);
const CLIENT_GLOBAL: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x250, 0, 0, 0, 0, 0, 0x99);
const NODE2_LINK_LOCAL: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0x4e, 0x4cff, 0xfe00, 0x12);
const VIP6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x250, 0, 0, 0, 0, 0, 0x201);

fn corpus(name: &str) -> Vec<u8> {
    std::fs::read(format!("{CORPUS}{name}.bin")).expect("corpus file")
}

fn eth0() -> Interface {
    Interface {
        name: "eth0".into(),
        mac: NODE2_MAC,
        link_local: Some(NODE2_LINK_LOCAL),
    }
}

fn ownership() -> Ownership {
    let mut owned = Ownership::new();
    owned.insert(IpAddr::V4(VIP4), AllowedInterfaces::All);
    owned.insert(IpAddr::V6(VIP6), AllowedInterfaces::All);
    owned.insert(IpAddr::V4(ETH1_ONLY), ["eth1"].into_iter().collect());
    owned
}

fn answer(bytes: &[u8]) -> Result<Reply, Ignored> {
    respond(bytes, &eth0(), &ownership())
}

fn arp(
    operation: ArpOperation,
    destination: MacAddr,
    sender_ip: Ipv4Addr,
    target: Ipv4Addr,
) -> Frame {
    Frame {
        destination,
        source: CLIENT_MAC,
        vlan: None,
        payload: Payload::Arp(ArpPacket {
            operation,
            sender_mac: CLIENT_MAC,
            sender_ip,
            target_mac: MacAddr([0; 6]),
            target_ip: target,
        }),
    }
}

fn who_has(target: Ipv4Addr) -> Vec<u8> {
    arp(ArpOperation::Request, MacAddr::BROADCAST, CLIENT_IP, target).encode()
}

/// A frame from the client; unicast IPv6 goes to node2's MAC, which the client has cached.
fn ndp(source: Ipv6Addr, destination: Ipv6Addr, message: NdpMessage) -> Vec<u8> {
    Frame {
        destination: if destination.is_multicast() {
            multicast_mac(destination)
        } else {
            NODE2_MAC
        },
        source: CLIENT_MAC,
        vlan: None,
        payload: Payload::Ndp(NdpPacket {
            source,
            destination,
            message,
        }),
    }
    .encode()
}

fn solicit(target: Ipv6Addr) -> Vec<u8> {
    ndp(
        CLIENT_GLOBAL,
        solicited_node_multicast(target),
        NdpMessage::NeighborSolicitation {
            target,
            source_mac: Some(CLIENT_MAC),
        },
    )
}

#[test]
fn an_arping_request_for_an_owned_ip_gets_the_reply_fixture() {
    let reply = answer(&corpus("arping_request")).unwrap();
    assert_eq!(reply.ip, IpAddr::V4(VIP4));
    assert_eq!(reply.frame.encode(), corpus("arp_reply"));
}

#[test]
fn a_padded_request_gets_the_same_reply() {
    let reply = answer(&corpus("arping_request_padded")).unwrap();
    assert_eq!(reply.frame.encode(), corpus("arp_reply"));
}

#[test]
fn an_ndisc6_solicitation_gets_a_solicited_advertisement_with_override() {
    let reply = answer(&corpus("ndisc6_solicitation")).unwrap();
    assert_eq!(reply.ip, IpAddr::V6(VIP6));
    assert_eq!(reply.frame.encode(), corpus("solicited_advertisement"));
}

#[test]
fn a_duplicate_address_probe_for_an_owned_ip_is_defended_to_all_nodes() {
    let reply = answer(&corpus("dad_solicitation")).unwrap();
    // Solicited flag clear, to ff02::1: byte for byte what a takeover announces.
    assert_eq!(reply.frame.encode(), corpus("unsolicited_advertisement"));
}

#[test]
fn a_solicitation_without_a_source_option_is_answered_to_the_frame_source() {
    let probe = ndp(
        CLIENT_GLOBAL,
        VIP6,
        NdpMessage::NeighborSolicitation {
            target: VIP6,
            source_mac: None,
        },
    );
    let reply = answer(&probe).unwrap();
    assert_eq!(reply.frame.destination, CLIENT_MAC);
    let Payload::Ndp(advertisement) = reply.frame.payload else {
        panic!("not NDP: {reply:?}");
    };
    assert_eq!(advertisement.source, VIP6);
    assert_eq!(advertisement.destination, CLIENT_GLOBAL);
    assert_eq!(
        advertisement.message,
        NdpMessage::NeighborAdvertisement {
            flags: AdvertisementFlags {
                router: false,
                solicited: true,
                override_: true,
            },
            target: VIP6,
            target_mac: Some(NODE2_MAC),
        }
    );
}

#[test]
fn an_address_probe_from_0_0_0_0_is_told_the_ip_is_taken() {
    let probe = arp(
        ArpOperation::Request,
        MacAddr::BROADCAST,
        Ipv4Addr::UNSPECIFIED,
        VIP4,
    );
    let reply = answer(&probe.encode()).unwrap();
    let Payload::Arp(arp) = reply.frame.payload else {
        panic!("not ARP: {reply:?}");
    };
    assert_eq!(arp.operation, ArpOperation::Reply);
    assert_eq!((arp.sender_mac, arp.sender_ip), (NODE2_MAC, VIP4));
    assert_eq!(
        (arp.target_mac, arp.target_ip),
        (CLIENT_MAC, Ipv4Addr::UNSPECIFIED)
    );
}

#[test]
fn a_unicast_request_to_our_mac_is_answered() {
    // Hosts refresh a cached entry this way.
    let refresh = arp(ArpOperation::Request, NODE2_MAC, CLIENT_IP, VIP4);
    assert!(answer(&refresh.encode()).is_ok());
}

#[test]
fn a_tagged_request_gets_a_reply_in_its_vlan() {
    let reply = answer(&corpus("tagged_request")).unwrap();
    assert_eq!(reply.frame.vlan, Some(100));
    assert_eq!(reply.frame.destination, CLIENT_MAC);
}

#[test]
fn an_ip_limited_to_eth1_is_answered_there() {
    let eth1 = Interface {
        name: "eth1".into(),
        ..eth0()
    };
    let reply = respond(&who_has(ETH1_ONLY), &eth1, &ownership()).unwrap();
    assert_eq!(reply.ip, IpAddr::V4(ETH1_ONLY));
}

#[test]
fn every_ignored_frame_says_why() {
    let other_host = MacAddr([0x02, 0x4e, 0x4c, 0x00, 0x00, 0x13]);
    let cases: Vec<(&str, Vec<u8>, Ignored)> = vec![
        (
            "malformed",
            corpus("truncated_solicitation"),
            Ignored::Malformed(FrameError::PayloadLengthExceedsFrame {
                payload_length: 32,
                available: 6,
            }),
        ),
        (
            "bad checksum",
            corpus("bad_checksum"),
            Ignored::Malformed(FrameError::BadChecksum {
                received: 0xdcfd,
                expected: 0xdcfc,
            }),
        ),
        (
            "our own announcement looped back",
            corpus("garp_request"),
            Ignored::OwnFrame,
        ),
        (
            "an ARP reply",
            arp(ArpOperation::Reply, NODE2_MAC, CLIENT_IP, VIP4).encode(),
            Ignored::NotRequest,
        ),
        (
            "an unknown ARP operation",
            arp(ArpOperation::Other(8), MacAddr::BROADCAST, CLIENT_IP, VIP4).encode(),
            Ignored::NotRequest,
        ),
        (
            "another node's advertisement",
            {
                let mut frame = Frame::parse(&corpus("unsolicited_advertisement")).unwrap();
                frame.source = other_host;
                frame.encode()
            },
            Ignored::NotRequest,
        ),
        (
            "an ARP request to another host",
            arp(ArpOperation::Request, other_host, CLIENT_IP, VIP4).encode(),
            Ignored::WrongDestination(other_host),
        ),
        (
            "another host's gratuitous ARP",
            arp(
                ArpOperation::Request,
                MacAddr::BROADCAST,
                CLIENT_IP,
                CLIENT_IP,
            )
            .encode(),
            Ignored::Gratuitous,
        ),
        (
            "who has an IPv4 we do not own",
            who_has(Ipv4Addr::new(192, 168, 250, 13)),
            Ignored::NotOwned("192.168.250.13".parse().unwrap()),
        ),
        (
            "a solicitation for an IPv6 we do not own",
            solicit("fd00:250::13".parse().unwrap()),
            Ignored::NotOwned("fd00:250::13".parse().unwrap()),
        ),
        (
            "an owned IP on an interface its advertisements leave out",
            who_has(ETH1_ONLY),
            Ignored::InterfaceNotAllowed(IpAddr::V4(ETH1_ONLY)),
        ),
    ];
    for (what, bytes, reason) in cases {
        assert_eq!(answer(&bytes), Err(reason), "{what}");
    }
}

#[test]
fn an_interface_without_a_link_local_address_gets_no_ndp() {
    let bare = Interface {
        link_local: None,
        ..eth0()
    };
    assert_eq!(
        respond(&solicit(VIP6), &bare, &ownership()),
        Err(Ignored::NoLinkLocal(IpAddr::V6(VIP6)))
    );
    assert!(respond(&who_has(VIP4), &bare, &ownership()).is_ok());
}

#[test]
fn after_release_the_ip_is_no_longer_answered() {
    let mut owned = ownership();
    owned.remove(IpAddr::V4(VIP4));
    assert_eq!(
        respond(&who_has(VIP4), &eth0(), &owned),
        Err(Ignored::NotOwned(IpAddr::V4(VIP4)))
    );
}

#[test]
fn ignore_reasons_have_counter_labels() {
    assert_eq!(Ignored::Gratuitous.label(), "gratuitous");
    assert_eq!(Ignored::NotOwned(IpAddr::V4(VIP4)).label(), "not_owned");
    // A malformed frame is counted under the parser's own reason.
    assert_eq!(
        Ignored::Malformed(FrameError::HopLimit(64)).label(),
        "hop_limit"
    );
}

#[test]
fn every_reply_is_a_valid_frame() {
    for request in [
        corpus("arping_request"),
        corpus("ndisc6_solicitation"),
        corpus("dad_solicitation"),
        solicit(VIP6),
    ] {
        let reply = answer(&request).unwrap();
        assert_eq!(Frame::parse(&reply.frame.encode()), Ok(reply.frame.clone()));
        assert_eq!(reply.frame.source, NODE2_MAC);
    }
    let dad = answer(&corpus("dad_solicitation")).unwrap();
    let Payload::Ndp(advertisement) = dad.frame.payload else {
        panic!("not NDP: {dad:?}");
    };
    assert_eq!(advertisement.destination, ALL_NODES);
}
