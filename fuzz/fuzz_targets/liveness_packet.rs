//! Any bytes: decoding never panics, also behind a valid MAC (the input is signed as a packet
//! body), whatever decodes survives encode and decode unchanged, and a core fed it never
//! panics.

#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use metallb_liveness::{Config, Key, LeaseView, Liveness, Packet};

fuzz_target!(|data: &[u8]| {
    let key = Key::derive(b"fuzz");
    let mut signed = data.to_vec();
    signed.extend(key.mac(data));
    for bytes in [data, &signed[..]] {
        if let Ok(packet) = Packet::decode(bytes, &key) {
            assert_eq!(Packet::decode(&packet.encode(&key), &key), Ok(packet.clone()));
        }
    }
    let now = Instant::now();
    let mut core = Liveness::new(Config::default(), "b", key, 1, now).expect("defaults");
    let lease = LeaseView { renewed_at: now, expires_at: now + Duration::from_secs(10), peers: Some(1) };
    core.observe_lease(now, "a", lease);
    let _ = core.handle_packet(now, &signed);
    core.handle_timeout(now + Duration::from_secs(1));
    while core.poll_transmit().is_some() {}
    while core.poll_event().is_some() {}
});
