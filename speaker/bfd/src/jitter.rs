//! Transmit jitter (RFC 5880 §6.8.7). The random numbers come from a [`JitterSource`] that the
//! caller hands to the session, so tests choose them and the core reads no entropy itself.

use std::fmt;

/// Uniformly distributed random numbers for the transmit jitter.
pub trait JitterSource: fmt::Debug {
    /// The next number; every `u32` value should be equally likely.
    fn next_u32(&mut self) -> u32;
}

/// A small xorshift64* generator: plenty for spreading packets in time, and deterministic for a
/// given seed. The driver seeds it from real entropy; tests seed it with a constant.
#[derive(Clone, Debug)]
pub struct Xorshift(u64);

impl Xorshift {
    /// A generator seeded with `seed`. A zero seed, which xorshift cannot leave, is replaced.
    pub fn new(seed: u64) -> Self {
        Self(if seed == 0 {
            0x9e37_79b9_7f4a_7c15
        } else {
            seed
        })
    }
}

impl JitterSource for Xorshift {
    fn next_u32(&mut self) -> u32 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        // The high half of the multiplied state is the well-mixed part.
        (x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 32) as u32
    }
}

/// Shortens a transmit interval by a random share: up to 25 %, or 10 to 25 % when the detect
/// multiplier is 1 so that a single late packet cannot expire the peer's detection time.
/// `random` spreads the result uniformly between the bounds; 0 shortens the least.
pub(crate) fn jittered_us(interval_us: u32, detect_multiplier: u8, random: u32) -> u32 {
    let (min_percent, max_percent) = if detect_multiplier == 1 {
        (10, 25)
    } else {
        (0, 25)
    };
    let interval = u128::from(interval_us);
    let spread = (interval * (max_percent - min_percent) * u128::from(random)) >> 32;
    let reduction = (interval * min_percent + spread) / 100;
    // The reduction is at most a quarter of the interval, so this neither underflows nor
    // reaches zero for a nonzero interval.
    (interval - reduction) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_shortens_by_at_most_a_quarter() {
        assert_eq!(jittered_us(300_000, 3, 0), 300_000);
        assert_eq!(jittered_us(300_000, 3, u32::MAX), 225_001);
    }

    #[test]
    fn jitter_with_detect_multiplier_one_stays_between_75_and_90_percent() {
        assert_eq!(jittered_us(100_000, 1, 0), 90_000);
        assert_eq!(jittered_us(100_000, 1, u32::MAX), 75_001);
    }

    #[test]
    fn jitter_never_turns_a_short_interval_into_zero() {
        for random in [0, 1 << 31, u32::MAX] {
            assert_eq!(jittered_us(1, 3, random), 1);
            assert_eq!(jittered_us(1, 1, random), 1);
        }
    }

    #[test]
    fn jitter_of_the_largest_interval_does_not_overflow() {
        let shortest = jittered_us(u32::MAX, 3, u32::MAX);
        assert!(shortest >= u32::MAX / 4 * 3);
    }

    #[test]
    fn xorshift_is_deterministic_and_spreads_values() {
        let mut a = Xorshift::new(7);
        let mut b = Xorshift::new(7);
        let draws: Vec<u32> = (0..1000).map(|_| a.next_u32()).collect();
        assert!(draws.iter().all(|&d| d == b.next_u32()));
        let high = draws.iter().filter(|&&d| d >= 1 << 31).count();
        assert!(
            (400..600).contains(&high),
            "{high} of 1000 in the upper half"
        );
    }

    #[test]
    fn xorshift_with_zero_seed_still_moves() {
        let mut zero = Xorshift::new(0);
        assert_ne!(zero.next_u32(), zero.next_u32());
    }
}
