//! The `bfd_packet` fuzz target's check on stable Rust: every file of its seed corpus, plus a few
//! thousand deterministic mutations of them (truncations, bit flips, Length fields that lie,
//! appended bytes), must parse without panicking, and whatever parses must survive encode and
//! parse unchanged. Packets that parse are also fed to a session, which must not panic either.

#![expect(
    clippy::disallowed_methods,
    reason = "simulated time starts at Instant::now()"
)]

use std::{
    collections::BTreeSet,
    num::NonZeroU32,
    path::Path,
    time::{Duration, Instant},
};

use metallb_bfd::{ControlPacket, Hop, Profile, Session, Xorshift};
use metallb_mutate::{Rng, corpus, mutate};

const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fuzz/corpus/bfd_packet");
const MUTATIONS: usize = 5000;

/// The fuzz target's assertion. Returns the drop label, or `None` if the packet parsed.
fn check(data: &[u8]) -> Option<&'static str> {
    match ControlPacket::parse(data) {
        Ok(packet) => {
            let bytes = packet.encode();
            assert_eq!(
                ControlPacket::parse(&bytes),
                Ok(packet),
                "input {data:02x?}"
            );
            None
        }
        Err(error) => Some(error.label()),
    }
}

/// The fields that random bytes rarely hit in a way that matters: the Length, the flags, the
/// Detect Mult. Returns false when the input is too short for the field drawn.
fn fields(rng: &mut Rng, input: &mut [u8]) -> bool {
    match rng.below(3) {
        0 if input.len() > 3 => {
            // The Length field lies: near the real sizes, or anything.
            let lies = [0, 23, 24, 25, 26, 27, 255, rng.byte()];
            input[3] = rng.pick(&lies);
            true
        }
        1 if input.len() > 1 => {
            // Flags and state, including the A and M bits.
            input[1] = rng.byte();
            true
        }
        2 if input.len() > 2 => {
            // Detect Mult: zero is invalid, one and the maximum are the edges.
            let multipliers = [0, 1, 3, 255, rng.byte()];
            input[2] = rng.pick(&multipliers);
            true
        }
        _ => false,
    }
}

/// Feeds a parsed packet to a fresh session and runs it for a while.
fn drive_session(packet: &ControlPacket, ttl: u8) {
    let now = Instant::now();
    let local = NonZeroU32::new(packet.your_discriminator).unwrap_or(NonZeroU32::MIN);
    let mut session = Session::new(Hop::Multi, Profile::default(), local, Xorshift::new(9), now);
    let _ = session.handle_packet(now, packet, ttl);
    let mut at = now;
    for _ in 0..4 {
        session.handle_timeout(at);
        while session.poll_transmit(at).is_some() {}
        while session.poll_event().is_some() {}
        at = session
            .poll_timeout()
            .unwrap_or(at + Duration::from_secs(1));
    }
}

#[test]
fn every_corpus_file_passes_the_fuzz_check() {
    let files = corpus(Path::new(CORPUS));
    assert!(files.len() >= 5, "seed corpus too small: {}", files.len());
    let rejected: Vec<&str> = files
        .iter()
        .filter(|(_, data)| check(data).is_some())
        .map(|(name, _)| name.as_str())
        .collect();
    assert!(
        files.len() - rejected.len() >= 4,
        "most seeds should be valid packets, these are not: {rejected:?}"
    );
}

#[test]
fn thousands_of_mutations_never_panic_and_round_trip() {
    let files = corpus(Path::new(CORPUS));
    let mut rng = Rng::new(0x5eed_bfd0_0000_0001);
    let mut labels = BTreeSet::new();
    let mut parsed = 0;
    for _ in 0..MUTATIONS {
        let mut input = files[rng.below(files.len())].1.clone();
        for _ in 0..=rng.below(3) {
            mutate(&mut rng, &mut input, |rng, input| fields(rng, input));
        }
        match check(&input) {
            Some(label) => {
                labels.insert(label);
            }
            None => {
                parsed += 1;
                drive_session(&ControlPacket::parse(&input).unwrap(), rng.byte());
            }
        }
    }
    // Proof that the mutations reach both sides of the parser, not just one early exit.
    assert!(parsed > MUTATIONS / 20, "only {parsed} mutations parsed");
    assert!(labels.len() >= 7, "drop reasons reached: {labels:?}");
}
