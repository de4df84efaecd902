//! The `bfd_packet` fuzz target's check on stable Rust: every file of its seed corpus, plus a few
//! thousand deterministic mutations of them (truncations, bit flips, Length fields that lie,
//! appended bytes), must parse without panicking, and whatever parses must survive encode and
//! parse unchanged. Packets that parse are also fed to a session, which must not panic either.

use std::{
    collections::BTreeSet,
    fs,
    num::NonZeroU32,
    path::Path,
    time::{Duration, Instant},
};

use metallb_bfd::{ControlPacket, Hop, Profile, Session, Xorshift};

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

/// xorshift64, so the mutations are the same on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, bound: usize) -> usize {
        (self.next() % bound.max(1) as u64) as usize
    }

    fn byte(&mut self) -> u8 {
        self.next() as u8
    }
}

fn mutate(rng: &mut Rng, input: &mut Vec<u8>) {
    match rng.below(6) {
        0 => input.truncate(rng.below(input.len() + 1)),
        1 => {
            for _ in 0..=rng.below(4) {
                if !input.is_empty() {
                    let at = rng.below(input.len());
                    input[at] ^= 1 << rng.below(8);
                }
            }
        }
        2 if input.len() > 3 => {
            // The Length field lies: near the real sizes, or anything.
            let lies = [0, 23, 24, 25, 26, 27, 255, rng.byte()];
            input[3] = lies[rng.below(lies.len())];
        }
        3 => input.extend((0..rng.below(9)).map(|_| rng.byte())),
        4 if input.len() > 1 => {
            // Flags and state, including the A and M bits.
            input[1] = rng.byte();
        }
        _ if !input.is_empty() => {
            let at = rng.below(input.len());
            input[at] = rng.byte();
        }
        _ => input.push(rng.byte()),
    }
}

fn corpus() -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = fs::read_dir(Path::new(CORPUS))
        .expect("the bfd_packet corpus exists")
        .map(|entry| {
            let path = entry.unwrap().path();
            (path.display().to_string(), fs::read(&path).unwrap())
        })
        .collect();
    files.sort();
    files
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
    let files = corpus();
    assert!(files.len() >= 5, "seed corpus too small: {}", files.len());
    let parsed = files
        .iter()
        .filter(|(_, data)| check(data).is_none())
        .count();
    assert!(
        parsed >= 4,
        "most seeds should be valid packets, {parsed} are"
    );
}

#[test]
fn thousands_of_mutations_never_panic_and_round_trip() {
    let files = corpus();
    let mut rng = Rng(0x5eed_bfd0_0000_0001);
    let mut labels = BTreeSet::new();
    let mut parsed = 0;
    for _ in 0..MUTATIONS {
        let mut input = files[rng.below(files.len())].1.clone();
        for _ in 0..=rng.below(3) {
            mutate(&mut rng, &mut input);
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
