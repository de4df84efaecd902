//! What a session is configured with: the BFDProfile parameters and how far away the peer is.

use std::{num::NonZeroU8, ops::RangeInclusive, time::Duration};

/// TTL (IPv4) or hop limit (IPv6) of every packet a session sends (RFC 5881 §5, RFC 5883 §5).
/// The receiver's TTL check only proves adjacency if senders start at the maximum.
pub const TTL: u8 = 255;

/// UDP source ports a sender must pick from (RFC 5881 §4, RFC 5883 §5).
pub const SOURCE_PORTS: RangeInclusive<u16> = 49152..=65535;

/// Whether the peer is directly connected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Hop {
    /// Directly connected (RFC 5881): packets must arrive with TTL 255, which no routed packet
    /// can have.
    Single,
    /// Across routers (RFC 5883): packets must arrive with at least [`Profile::minimum_ttl`].
    Multi,
}

impl Hop {
    /// UDP destination port of control packets.
    pub fn port(self) -> u16 {
        match self {
            Self::Single => 3784,
            Self::Multi => 4784,
        }
    }
}

/// The BFDProfile parameters the session core uses. Intervals go on the wire in whole
/// microseconds, so they are rounded down to a microsecond and kept between 1 µs and
/// `u32::MAX` µs (about 71 minutes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Profile {
    /// Desired Min TX Interval: how often this side would like to send (`transmitInterval`).
    /// While the session is not Up, at least one second is used instead (RFC 5880 §6.8.3).
    pub desired_min_tx: Duration,
    /// Required Min RX Interval: the fastest the peer may send to us (`receiveInterval`).
    pub required_min_rx: Duration,
    /// Detect Mult: how many of our packets the peer may miss before it declares the session
    /// down (`detectMultiplier`).
    pub detect_multiplier: NonZeroU8,
    /// Send nothing until the peer has sent something (`passiveMode`).
    pub passive: bool,
    /// Lowest TTL accepted on a multi-hop session (`minimumTtl`); single hop always wants 255.
    pub minimum_ttl: u8,
}

impl Default for Profile {
    /// FRR's and MetalLB's defaults: 300 ms both ways, multiplier 3, active, minimum TTL 254.
    fn default() -> Self {
        Self {
            desired_min_tx: Duration::from_millis(300),
            required_min_rx: Duration::from_millis(300),
            detect_multiplier: const { NonZeroU8::new(3).unwrap() },
            passive: false,
            minimum_ttl: 254,
        }
    }
}

/// An interval in wire microseconds, clamped to what the 32-bit fields can say. Zero is not
/// produced: a zero Desired Min TX is reserved and a zero Required Min RX would ask the peer to
/// stop sending.
pub(crate) fn micros(interval: Duration) -> u32 {
    interval.as_micros().clamp(1, u128::from(u32::MAX)) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_become_microseconds_within_the_wire_range() {
        assert_eq!(micros(Duration::from_millis(300)), 300_000);
        assert_eq!(micros(Duration::ZERO), 1);
        assert_eq!(micros(Duration::from_nanos(999)), 1);
        assert_eq!(micros(Duration::from_secs(10_000)), u32::MAX);
    }

    #[test]
    fn single_and_multi_hop_use_their_own_ports() {
        assert_eq!(Hop::Single.port(), 3784);
        assert_eq!(Hop::Multi.port(), 4784);
    }
}
