//! Any bytes as a frame from a packet socket: parsing never panics, whatever parses survives
//! encode and parse unchanged, and the responder's decision never panics. The responder owns
//! whatever a parsed frame asks about, so the fuzzer reaches reply building; a reply must be a
//! valid frame itself.

#![no_main]

use std::net::IpAddr;

use libfuzzer_sys::fuzz_target;
use metallb_l2::{
    AllowedInterfaces, Frame, Interface, MacAddr, NdpMessage, Ownership, Payload, respond,
};

fuzz_target!(|data: &[u8]| {
    let mut ownership = Ownership::new();
    if let Ok(frame) = Frame::parse(data) {
        assert_eq!(Frame::parse(&frame.encode()).as_ref(), Ok(&frame));
        let asked = match &frame.payload {
            Payload::Arp(arp) => IpAddr::V4(arp.target_ip),
            Payload::Ndp(ndp) => match ndp.message {
                NdpMessage::NeighborSolicitation { target, .. }
                | NdpMessage::NeighborAdvertisement { target, .. } => IpAddr::V6(target),
            },
        };
        ownership.insert(asked, AllowedInterfaces::All);
    }
    let interface = Interface {
        name: "eth0".into(),
        mac: MacAddr([0x02, 0x4e, 0x4c, 0x00, 0x00, 0x12]),
        link_local: Some("fe80::4e:4cff:fe00:12".parse().unwrap()),
    };
    if let Ok(reply) = respond(data, &interface, &ownership) {
        assert_eq!(Frame::parse(&reply.frame.encode()), Ok(reply.frame));
    }
});
