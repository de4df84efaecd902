//! The `l2_frame` fuzz target's check on stable Rust: every file of its seed corpus, plus a few
//! thousand deterministic mutations of them (truncations, bit flips, lying length fields,
//! other EtherTypes and ICMPv6 types, appended bytes, often with the checksum summed again so
//! that the checks behind it are reached), must parse without panicking, and whatever parses
//! must survive encode and parse unchanged. Every input also goes to the responder, owning
//! whatever the frame asks about, and a reply must itself be a valid frame.

use std::{collections::BTreeSet, net::IpAddr, path::Path};

use metallb_l2::{
    AllowedInterfaces, Frame, Interface, MacAddr, NdpMessage, Ownership, Payload, respond,
};
use metallb_mutate::{Rng, corpus, mutate};

const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fuzz/corpus/l2_frame");
const MUTATIONS: usize = 6000;

/// Offsets in an untagged IPv6 frame.
const PAYLOAD_LENGTH: usize = 18;
const SOURCE: usize = 22;
const DESTINATION: usize = 38;
const ICMP: usize = 54;
const TARGET: usize = ICMP + 8;

/// The fuzz target's assertions. Returns the parser's drop label, or `None` if the frame
/// parsed.
fn check(data: &[u8]) -> Option<&'static str> {
    let parsed = Frame::parse(data);
    let mut ownership = Ownership::new();
    if let Ok(frame) = &parsed {
        assert_eq!(
            Frame::parse(&frame.encode()).as_ref(),
            Ok(frame),
            "input {data:02x?}"
        );
        ownership.insert(asked_about(frame), AllowedInterfaces::All);
    }
    let interface = Interface {
        name: "eth0".into(),
        mac: MacAddr([0x02, 0x4e, 0x4c, 0x00, 0x00, 0x12]),
        link_local: Some("fe80::4e:4cff:fe00:12".parse().unwrap()),
    };
    if let Ok(reply) = respond(data, &interface, &ownership) {
        assert_eq!(
            Frame::parse(&reply.frame.encode()),
            Ok(reply.frame),
            "reply to {data:02x?}"
        );
    }
    parsed.err().map(|error| error.label())
}

/// The IP a frame asks or tells about.
fn asked_about(frame: &Frame) -> IpAddr {
    match &frame.payload {
        Payload::Arp(arp) => IpAddr::V4(arp.target_ip),
        Payload::Ndp(ndp) => match ndp.message {
            NdpMessage::NeighborSolicitation { target, .. }
            | NdpMessage::NeighborAdvertisement { target, .. } => IpAddr::V6(target),
        },
    }
}

/// The fields that random bytes rarely set to a value that matters: EtherType, Payload Length,
/// ICMPv6 type, option length, hop limit, multicast addresses, advertisement flags. Returns
/// false when the input is too short for the field drawn.
fn fields(rng: &mut Rng, input: &mut [u8]) -> bool {
    let len = input.len();
    match rng.below(7) {
        0 if len > 13 => {
            let ethertype = rng.pick(&[[0x08, 0x06], [0x86, 0xdd], [0x81, 0x00], [0x08, 0x00]]);
            input[12..14].copy_from_slice(&ethertype);
        }
        1 if len > PAYLOAD_LENGTH + 1 => {
            // The IPv6 Payload Length lies: near the real sizes, or anything.
            let lies = [0, 20, 23, 24, 31, 32, 33, 40, 255, rng.byte()];
            input[PAYLOAD_LENGTH] = 0;
            input[PAYLOAD_LENGTH + 1] = rng.pick(&lies);
        }
        2 if len > ICMP => {
            let any = rng.byte();
            input[ICMP] = rng.pick(&[133, 134, 135, 136, 137, 128, any]);
        }
        3 if len > ICMP + 25 => {
            // An option's length: zero, one unit, more than there is.
            input[ICMP + 25] = rng.pick(&[0, 1, 2, 255]);
        }
        4 if len > 21 => {
            // Hop limit, next header, version.
            let at = rng.pick(&[14, 20, 21]);
            input[at] = rng.byte();
        }
        5 => {
            // A multicast address: the source, which is never valid, the destination, the target.
            let at = rng.pick(&[SOURCE, DESTINATION, TARGET]);
            match input.get_mut(at) {
                Some(byte) => *byte = 0xff,
                None => return false,
            }
        }
        6 if len > ICMP + 4 => {
            // Router, Solicited and Override of an advertisement, as any combination.
            input[ICMP + 4] = rng.byte();
        }
        _ => return false,
    }
    true
}

/// Sums the ICMPv6 checksum of an untagged IPv6 frame again, when there is one to sum, so that
/// a mutation behind the checksum reaches the checks after it.
fn resum(input: &mut [u8]) {
    if input.len() < ICMP + 4 || input[12..14] != [0x86, 0xdd] {
        return;
    }
    let length = usize::from(u16::from_be_bytes([input[18], input[19]]));
    if input.len() < ICMP + length || length < 4 {
        return;
    }
    input[ICMP + 2..ICMP + 4].fill(0);
    let mut sum = length as u32 + 58;
    for bytes in [&input[22..54], &input[ICMP..ICMP + length]] {
        for pair in bytes.chunks(2) {
            sum += u32::from(pair[0]) << 8 | u32::from(*pair.get(1).unwrap_or(&0));
        }
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    input[ICMP + 2..ICMP + 4].copy_from_slice(&(!(sum as u16)).to_be_bytes());
}

#[test]
fn every_corpus_file_passes_the_fuzz_check() {
    let files = corpus(Path::new(CORPUS));
    assert!(files.len() >= 10, "seed corpus too small: {}", files.len());
    let rejected: Vec<&str> = files
        .iter()
        .filter(|(_, data)| check(data).is_some())
        .map(|(name, _)| name.as_str())
        .collect();
    assert!(
        rejected.len() <= 2,
        "most seeds should be valid frames, these are not: {rejected:?}"
    );
}

#[test]
fn thousands_of_mutations_never_panic_and_round_trip() {
    let files = corpus(Path::new(CORPUS));
    let mut rng = Rng::new(0x5eed_0012_0000_0001);
    let mut labels = BTreeSet::new();
    let mut parsed = 0;
    for _ in 0..MUTATIONS {
        let mut input = files[rng.below(files.len())].1.clone();
        for _ in 0..=rng.below(3) {
            mutate(&mut rng, &mut input, |rng, input| fields(rng, input));
        }
        if rng.below(3) > 0 {
            resum(&mut input);
        }
        match check(&input) {
            Some(label) => {
                labels.insert(label);
            }
            None => parsed += 1,
        }
    }
    // Proof that the mutations reach both sides of the parser, not just one early exit.
    assert!(parsed > MUTATIONS / 10, "only {parsed} mutations parsed");
    assert!(labels.len() >= 14, "drop reasons reached: {labels:?}");
}
