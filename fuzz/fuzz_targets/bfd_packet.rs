//! Any bytes: parsing never panics, and whatever parses survives encode and parse unchanged.

#![no_main]

use libfuzzer_sys::fuzz_target;
use metallb_bfd::ControlPacket;

fuzz_target!(|data: &[u8]| {
    if let Ok(packet) = ControlPacket::parse(data) {
        let bytes = packet.encode();
        assert_eq!(ControlPacket::parse(&bytes), Ok(packet));
    }
});
