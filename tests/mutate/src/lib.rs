//! Deterministic mutations of fuzz corpus files, shared by the `fuzz_replay` tests.
//!
//! The fuzz targets under `fuzz/` need nightly and libFuzzer, which `hack/test` does not run.
//! Instead, each crate with a target replays its seed corpus on stable Rust, plus thousands of
//! mutations of it drawn from a seeded generator, so a failure reproduces on every run. The
//! generic mutations live here; each test adds the ones that know its protocol's fields.

use std::{fs, path::Path};

/// xorshift64: a seeded generator, so every run draws the same mutations.
#[derive(Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator starting from `seed`. Zero would stay zero forever, so it is replaced.
    pub fn new(seed: u64) -> Self {
        Self(if seed == 0 { 0x5eed } else { seed })
    }

    /// The next 64 random bits.
    #[expect(
        clippy::should_implement_trait,
        reason = "the stream never ends, so an `Iterator` would only mislead"
    )]
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A number in `0..bound`, or 0 when `bound` is 0, so that an empty input needs no guard.
    pub fn below(&mut self, bound: usize) -> usize {
        (self.next() % bound.max(1) as u64) as usize
    }

    /// A random byte.
    pub fn byte(&mut self) -> u8 {
        self.next() as u8
    }

    /// One of `choices`, which must not be empty.
    pub fn pick<T: Copy>(&mut self, choices: &[T]) -> T {
        choices[self.below(choices.len())]
    }
}

/// The files of a corpus directory as (file name, contents), sorted by name so the order, and
/// with it every draw that picks a file, is the same on every machine.
///
/// # Panics
///
/// If the directory or a file in it cannot be read: a replay without its corpus proves nothing.
pub fn corpus(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let entries = fs::read_dir(dir)
        .unwrap_or_else(|error| panic!("reading the corpus {}: {error}", dir.display()));
    let mut files: Vec<(String, Vec<u8>)> = entries
        .map(|entry| {
            let path = entry
                .unwrap_or_else(|error| panic!("listing {}: {error}", dir.display()))
                .path();
            let data = fs::read(&path)
                .unwrap_or_else(|error| panic!("reading {}: {error}", path.display()));
            let name = path.file_name().unwrap_or_default().to_string_lossy();
            (name.into_owned(), data)
        })
        .collect();
    files.sort();
    files
}

/// Applies one mutation to `input`: on half the draws one of the generic ones (truncation, up
/// to four bit flips, up to 16 appended bytes, one byte replaced), on the other half `fields`,
/// the protocol's own mutation (a length that lies, another type code, JSON nesting), which
/// gets the `Vec` because some insert bytes. When `fields` returns false, because the input is
/// too short for the field it picked, a random byte changes instead, so that the draw is not
/// wasted on an unchanged input.
pub fn mutate(
    rng: &mut Rng,
    input: &mut Vec<u8>,
    fields: impl FnOnce(&mut Rng, &mut Vec<u8>) -> bool,
) {
    match rng.below(8) {
        0 => input.truncate(rng.below(input.len() + 1)),
        1 => {
            for _ in 0..=rng.below(4) {
                if !input.is_empty() {
                    let at = rng.below(input.len());
                    input[at] ^= 1 << rng.below(8);
                }
            }
        }
        2 => input.extend((0..=rng.below(16)).map(|_| rng.byte())),
        3 => replace_byte(rng, input),
        _ => {
            if !fields(rng, input) {
                replace_byte(rng, input);
            }
        }
    }
}

/// Replaces a random byte, or adds one to an empty input, which has none to replace.
fn replace_byte(rng: &mut Rng, input: &mut Vec<u8>) {
    if input.is_empty() {
        input.push(rng.byte());
    } else {
        let at = rng.below(input.len());
        input[at] = rng.byte();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED: &[u8] = b"a corpus file of a few bytes";

    /// Runs `count` mutations from `seed`, each on a fresh copy of [`SEED`].
    fn mutations(seed: u64, count: usize) -> Vec<Vec<u8>> {
        let mut rng = Rng::new(seed);
        (0..count)
            .map(|_| {
                let mut input = SEED.to_vec();
                mutate(&mut rng, &mut input, |rng, input| {
                    input[0] = rng.byte();
                    true
                });
                input
            })
            .collect()
    }

    #[test]
    fn the_same_seed_gives_the_same_mutations() {
        assert_eq!(mutations(42, 500), mutations(42, 500));
        assert_ne!(mutations(42, 500), mutations(43, 500));
    }

    #[test]
    fn a_mutation_that_shortens_the_input_only_cuts_its_end() {
        let shorter: Vec<Vec<u8>> = mutations(7, 1000)
            .into_iter()
            .filter(|input| input.len() < SEED.len())
            .collect();
        assert!(!shorter.is_empty(), "no mutation truncated");
        assert!(shorter.iter().all(|input| SEED.starts_with(input)));
    }

    #[test]
    fn a_field_mutation_that_does_not_fit_changes_a_byte_instead() {
        let mut rng = Rng::new(1);
        let mut misses = 0;
        for _ in 0..1000 {
            let mut input = Vec::new();
            let mut missed = false;
            mutate(&mut rng, &mut input, |_, _| {
                missed = true;
                false
            });
            if missed {
                misses += 1;
                assert_eq!(input.len(), 1, "the empty input got no byte");
            }
        }
        assert!(misses > 0, "the field mutation was never drawn");
    }

    #[test]
    fn below_stays_below_its_bound_and_zero_means_zero() {
        let mut rng = Rng::new(3);
        assert!((0..1000).all(|_| rng.below(7) < 7));
        assert_eq!(rng.below(0), 0);
    }

    #[test]
    fn a_zero_seed_still_draws_numbers() {
        let mut rng = Rng::new(0);
        assert_ne!(rng.next(), 0);
    }
}
