//! The `bgp_message` fuzz target's check on stable Rust: every file of its seed corpus, plus a
//! few thousand deterministic mutations of them (truncations, bit flips, length fields that
//! lie, appended bytes), must parse without panicking, and whatever parses cleanly must survive
//! encode and parse unchanged. The mutated bytes are also fed to a connected session.

#![expect(
    clippy::disallowed_methods,
    reason = "simulated time starts at Instant::now()"
)]

use std::{
    collections::BTreeSet,
    net::Ipv4Addr,
    path::Path,
    time::{Duration, Instant},
};

use metallb_bgp::{AsWidth, Config, Message, NextHops, PeerAsn, Session};
use metallb_mutate::{Rng, corpus, mutate};

const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fuzz/corpus/bgp_message");
const MUTATIONS: usize = 5000;

/// The fuzz target's assertion. Returns the error label, or `None` if the message parsed.
fn check(data: &[u8], width: AsWidth) -> Option<&'static str> {
    match Message::parse(data, width) {
        Ok(Message::Update(update)) if update.treat_as_withdraw.is_some() => None,
        Ok(message) => {
            let bytes = message.encode(width);
            assert_eq!(
                Message::parse(&bytes, width),
                Ok(message),
                "input {data:02x?}"
            );
            None
        }
        Err(error) => Some(error.label()),
    }
}

/// The length fields, which random bytes rarely set to a lie that matters. Returns false when
/// the input is too short for the field drawn.
fn fields(rng: &mut Rng, input: &mut [u8]) -> bool {
    match rng.below(2) {
        0 if input.len() > 18 => {
            // The header Length lies, or agrees with the real size after other mutations.
            let length = [input.len() as u16, 18, 19, 4097, u16::from(rng.byte())];
            input[16..18].copy_from_slice(&rng.pick(&length).to_be_bytes());
            true
        }
        1 if input.len() > 22 => {
            // Inner lengths: withdrawn, attribute list, optional parameters, attribute lengths.
            let at = 19 + rng.below(input.len() - 19);
            let lengths = [0, 1, 3, 4, 12, 16, 32, 255, rng.byte()];
            input[at] = rng.pick(&lengths);
            true
        }
        _ => false,
    }
}

/// Keeps the header Length in step with the size, so mutations reach the body parsers.
fn fix_length(input: &mut [u8]) {
    if input.len() >= 19 {
        let length = u16::try_from(input.len()).unwrap_or(u16::MAX);
        input[16..18].copy_from_slice(&length.to_be_bytes());
    }
}

/// Feeds the bytes to a session that has just sent its OPEN, then runs its timers a while.
fn drive_session(data: &[u8]) {
    let now = Instant::now();
    let config = Config::new(64500, PeerAsn::External, Ipv4Addr::new(192, 0, 2, 1));
    let mut session = Session::new(config);
    session.start();
    session.handle_connected(now, NextHops::default());
    session.handle_bytes(now, data);
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
    assert!(files.len() >= 6, "seed corpus too small: {}", files.len());
    let rejected: Vec<&str> = files
        .iter()
        .filter(|(_, data)| check(data, AsWidth::Four).is_some())
        .map(|(name, _)| name.as_str())
        .collect();
    assert!(
        files.len() - rejected.len() >= 6,
        "most seeds should be valid messages, these are not: {rejected:?}"
    );
}

#[test]
fn thousands_of_mutations_never_panic_and_round_trip() {
    let files = corpus(Path::new(CORPUS));
    let mut rng = Rng::new(0x5eed_b9b0_0000_0001);
    let mut labels = BTreeSet::new();
    let mut parsed = 0;
    for _ in 0..MUTATIONS {
        let mut input = files[rng.below(files.len())].1.clone();
        for _ in 0..=rng.below(3) {
            mutate(&mut rng, &mut input, |rng, input| fields(rng, input));
        }
        if rng.below(2) == 0 {
            fix_length(&mut input);
        }
        for width in [AsWidth::Two, AsWidth::Four] {
            match check(&input, width) {
                Some(label) => {
                    labels.insert(label);
                }
                None => parsed += 1,
            }
        }
        drive_session(&input);
    }
    // Proof that the mutations reach both sides of the parser, not just one early exit.
    assert!(parsed > MUTATIONS / 10, "only {parsed} mutations parsed");
    assert!(labels.len() >= 8, "errors reached: {labels:?}");
}
