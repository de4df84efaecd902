//! The `liveness_packet` fuzz target's check on stable Rust: every file of its seed corpus (packet
//! bodies without the MAC), plus a few thousand deterministic mutations of them (truncations,
//! bit flips, counts that lie, unknown state bytes, appended bytes), must decode without
//! panicking, raw and signed; whatever decodes must survive encode and decode unchanged; and
//! a core fed the signed bytes must not panic either.

#![expect(
    clippy::disallowed_methods,
    reason = "simulated time starts at Instant::now()"
)]

use std::{
    collections::BTreeSet,
    path::Path,
    time::{Duration, Instant},
};

use metallb_liveness::{Config, HEADER_LEN, Key, LeaseView, Liveness, Packet};
use metallb_mutate::{Rng, corpus, mutate};

const CORPUS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../fuzz/corpus/liveness_packet"
);
const MUTATIONS: usize = 5000;

fn key() -> Key {
    Key::derive(b"fuzz")
}

fn signed(data: &[u8]) -> Vec<u8> {
    let mut bytes = data.to_vec();
    bytes.extend(key().mac(data));
    bytes
}

/// The fuzz target's assertions. Returns the drop label of the signed input, or `None` if it
/// decoded.
fn check(data: &[u8]) -> Option<&'static str> {
    let signed = signed(data);
    let mut label = None;
    for (bytes, is_signed) in [(data, false), (&signed[..], true)] {
        match Packet::decode(bytes, &key()) {
            Ok(packet) => {
                let again = Packet::decode(&packet.encode(&key()), &key());
                assert_eq!(again, Ok(packet), "input {data:02x?}");
            }
            Err(error) if is_signed => label = Some(error.label()),
            Err(_) => {}
        }
    }
    drive_core(&signed);
    label
}

fn drive_core(bytes: &[u8]) {
    let now = Instant::now();
    let mut core = Liveness::new(Config::default(), "b", key(), 1, now).unwrap();
    let lease = LeaseView {
        renewed_at: now,
        expires_at: now + Duration::from_secs(10),
        peers: Some(1),
    };
    core.observe_lease(now, "a", lease);
    let _ = core.handle_packet(now, bytes);
    let mut at = now;
    for _ in 0..4 {
        core.handle_timeout(at);
        while core.poll_transmit().is_some() {}
        while core.poll_event().is_some() {}
        at = core.poll_timeout().unwrap_or(at + Duration::from_secs(1));
    }
    let _ = core.view(at);
}

/// The fields random bytes rarely hit in a way that matters: the entry count, the kind and
/// version, the state bytes.
fn fields(rng: &mut Rng, input: &mut [u8]) -> bool {
    match rng.below(3) {
        0 if input.len() >= HEADER_LEN => {
            let counts = [0, 1, 2, 32, 33, 255, rng.byte()];
            input[HEADER_LEN - 1] = rng.pick(&counts);
            true
        }
        1 if input.len() > 1 => {
            let at = rng.below(2);
            let choices = [0, 1, 2, rng.byte()];
            input[at] = rng.pick(&choices);
            true
        }
        2 if input.len() > 34 => {
            let entries = (input.len() - HEADER_LEN.min(input.len())) / 25;
            let at = if entries > 0 && rng.below(2) == 0 {
                HEADER_LEN + rng.below(entries) * 25 + 16
            } else {
                34
            };
            let choices = [0, 1, 2, 3, 4, 0x10, 0x20, 0x33, 0x47, rng.byte()];
            if at < input.len() {
                input[at] = rng.pick(&choices);
            }
            true
        }
        _ => false,
    }
}

#[test]
fn every_corpus_file_passes_the_fuzz_check() {
    let files = corpus(Path::new(CORPUS));
    assert!(files.len() >= 6, "seed corpus too small: {}", files.len());
    let decoded = files
        .iter()
        .filter(|(_, data)| check(data).is_none())
        .count();
    assert!(decoded >= 5, "most seeds should be valid bodies");
}

#[test]
fn thousands_of_mutations_never_panic_and_round_trip() {
    let files = corpus(Path::new(CORPUS));
    let mut rng = Rng::new(0x5eed_0f11_0000_0001);
    let mut labels = BTreeSet::new();
    let mut decoded = 0;
    for _ in 0..MUTATIONS {
        let mut input = files[rng.below(files.len())].1.clone();
        for _ in 0..=rng.below(3) {
            mutate(&mut rng, &mut input, |rng, input| fields(rng, input));
        }
        match check(&input) {
            Some(label) => {
                labels.insert(label);
            }
            None => decoded += 1,
        }
    }
    // Proof that the mutations reach both sides of the decoder, not just one early exit.
    assert!(decoded > MUTATIONS / 20, "only {decoded} mutations decoded");
    assert!(labels.len() >= 5, "drop reasons reached: {labels:?}");
}
