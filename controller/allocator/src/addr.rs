//! Address arithmetic: pool address strings, range summarisation, the buggy-IP rule.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use thiserror::Error;

/// Why an entry of `IPAddressPool.spec.addresses` could not be read.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AddressError {
    /// Neither a CIDR nor a range.
    #[error("invalid CIDR {0:?}")]
    InvalidCidr(String),
    /// One side of an `a-b` range is not an IP address.
    #[error("invalid IP range {range:?}: invalid {side} IP {value:?}")]
    InvalidRangeIp {
        /// The whole entry.
        range: String,
        /// `start` or `end`.
        side: &'static str,
        /// The text that did not parse.
        value: String,
    },
    /// The range starts after it ends.
    #[error("invalid IP range {range:?}: start IP \"{start}\" is after the end IP \"{end}\"")]
    StartAfterEnd {
        /// The whole entry.
        range: String,
        /// First address.
        start: IpAddr,
        /// Last address.
        end: IpAddr,
    },
    /// The range mixes an IPv4 and an IPv6 address.
    #[error("invalid IP range {0:?}: start and end IP are of different families")]
    MixedFamilies(String),
}

/// Reads one entry of a pool's `addresses`: a CIDR (host bits allowed, they are cleared, as Go's
/// `net.ParseCIDR` does) or an inclusive range `a-b`, summarised into the fewest CIDRs in
/// ascending order. Surrounding whitespace is ignored.
pub fn parse_pool_address(entry: &str) -> Result<Vec<IpNet>, AddressError> {
    let entry = entry.trim();
    let Some((start, end)) = entry.split_once('-') else {
        return entry
            .parse::<IpNet>()
            .map(|net| vec![net.trunc()])
            .map_err(|_| AddressError::InvalidCidr(entry.to_owned()));
    };
    let side = |side: &'static str, text: &str| {
        text.trim()
            .parse::<IpAddr>()
            .map_err(|_| AddressError::InvalidRangeIp {
                range: entry.to_owned(),
                side,
                value: text.to_owned(),
            })
    };
    let (start, end) = (side("start", start)?, side("end", end)?);
    if start.is_ipv4() != end.is_ipv4() {
        return Err(AddressError::MixedFamilies(entry.to_owned()));
    }
    if start > end {
        return Err(AddressError::StartAfterEnd {
            range: entry.to_owned(),
            start,
            end,
        });
    }
    Ok(summarize_range(start, end))
}

/// The fewest CIDRs that cover exactly `start..=end`, in ascending order. Empty when the two
/// addresses are of different families or `start > end`.
pub fn summarize_range(start: IpAddr, end: IpAddr) -> Vec<IpNet> {
    if start.is_ipv4() != end.is_ipv4() || start > end {
        return Vec::new();
    }
    let bits = family_bits(start);
    let (mut cur, end) = (to_u128(start), to_u128(end));
    let mut nets = Vec::new();
    loop {
        // The largest block that starts at `cur` (alignment) and stays within `end`.
        let mut host_bits = cur.trailing_zeros().min(bits);
        while host_bits > 0 && block_last(cur, host_bits) > end {
            host_bits -= 1;
        }
        nets.push(net_of(start.is_ipv4(), cur, (bits - host_bits) as u8));
        let last = block_last(cur, host_bits);
        if last >= end {
            return nets;
        }
        cur = last + 1;
    }
}

/// Whether `ip` is an IPv4 address ending in `.0` or `.255`, which some consumer routers'
/// smurf protection drops (the reason for `avoidBuggyIPs`).
pub fn is_buggy(ip: IpAddr) -> bool {
    matches!(ip, IpAddr::V4(v4) if matches!(v4.octets()[3], 0 | 255))
}

/// The last address of the block of `2^host_bits` addresses starting at `first`.
fn block_last(first: u128, host_bits: u32) -> u128 {
    match host_bits {
        128 => u128::MAX,
        n => first | ((1u128 << n) - 1),
    }
}

/// Number of address bits of the family of `ip`.
pub(crate) fn family_bits(ip: IpAddr) -> u32 {
    if ip.is_ipv4() { 32 } else { 128 }
}

/// The address as an integer of its own family (IPv4 in the low 32 bits).
pub(crate) fn to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

/// Inverse of [`to_u128`]; `value` must fit the family.
pub(crate) fn from_u128(v4: bool, value: u128) -> IpAddr {
    if v4 {
        // Truncation cannot happen: IPv4 values come from a 32-bit space.
        IpAddr::V4(Ipv4Addr::from(value as u32))
    } else {
        IpAddr::V6(Ipv6Addr::from(value))
    }
}

fn net_of(v4: bool, first: u128, prefix: u8) -> IpNet {
    match from_u128(v4, first) {
        IpAddr::V4(a) => IpNet::V4(Ipv4Net::new_assert(a, prefix)),
        IpAddr::V6(a) => IpNet::V6(Ipv6Net::new_assert(a, prefix)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|n| n.parse().unwrap()).collect()
    }

    fn range(start: &str, end: &str) -> Vec<IpNet> {
        summarize_range(start.parse().unwrap(), end.parse().unwrap())
    }

    #[test]
    fn a_range_is_summarised_into_the_fewest_ascending_cidrs() {
        assert_eq!(
            range("192.168.10.250", "192.168.10.255"),
            nets(&["192.168.10.250/31", "192.168.10.252/30"])
        );
        assert_eq!(
            range("10.0.0.1", "10.0.0.6"),
            nets(&["10.0.0.1/32", "10.0.0.2/31", "10.0.0.4/31", "10.0.0.6/32"])
        );
        assert_eq!(range("10.0.0.0", "10.0.1.255"), nets(&["10.0.0.0/23"]));
        assert_eq!(
            range("2001:db8::1", "2001:db8::2"),
            nets(&["2001:db8::1/128", "2001:db8::2/128"])
        );
    }

    #[test]
    fn whole_address_spaces_summarise_without_overflow() {
        assert_eq!(range("0.0.0.0", "255.255.255.255"), nets(&["0.0.0.0/0"]));
        assert_eq!(
            range("::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"),
            nets(&["::/0"])
        );
        assert_eq!(
            range("255.255.255.255", "255.255.255.255"),
            nets(&["255.255.255.255/32"])
        );
    }

    #[test]
    fn reversed_or_mixed_ranges_summarise_to_nothing() {
        assert!(range("10.0.0.2", "10.0.0.1").is_empty());
        assert!(range("10.0.0.1", "::1").is_empty());
    }

    #[test]
    fn pool_entries_accept_cidrs_with_host_bits_and_trimmed_ranges() {
        assert_eq!(
            parse_pool_address(" 10.0.0.7/24 ").unwrap(),
            nets(&["10.0.0.0/24"])
        );
        assert_eq!(
            parse_pool_address("10.0.0.1/32").unwrap(),
            nets(&["10.0.0.1/32"])
        );
        assert_eq!(
            parse_pool_address(" 10.0.0.1 - 10.0.0.2 ").unwrap(),
            nets(&["10.0.0.1/32", "10.0.0.2/32"])
        );
        assert_eq!(
            parse_pool_address("2001:db8::/64").unwrap(),
            nets(&["2001:db8::/64"])
        );
    }

    #[test]
    fn bad_pool_entries_are_refused_with_the_reason() {
        let cases = [
            ("10.0.0.1", "invalid CIDR \"10.0.0.1\""),
            ("10.0.0.0/33", "invalid CIDR \"10.0.0.0/33\""),
            (
                "x-10.0.0.1",
                "invalid IP range \"x-10.0.0.1\": invalid start IP \"x\"",
            ),
            (
                "10.0.0.1-y",
                "invalid IP range \"10.0.0.1-y\": invalid end IP \"y\"",
            ),
            (
                "10.0.0.9-10.0.0.1",
                "invalid IP range \"10.0.0.9-10.0.0.1\": start IP \"10.0.0.9\" is after the end IP \"10.0.0.1\"",
            ),
            (
                "10.0.0.1-::1",
                "invalid IP range \"10.0.0.1-::1\": start and end IP are of different families",
            ),
        ];
        for (entry, message) in cases {
            assert_eq!(
                parse_pool_address(entry).unwrap_err().to_string(),
                message,
                "{entry}"
            );
        }
    }

    #[test]
    fn only_ipv4_addresses_ending_in_0_or_255_are_buggy() {
        for (ip, buggy) in [
            ("10.0.0.0", true),
            ("10.0.0.255", true),
            ("10.0.0.1", false),
            ("::", false),
            ("::ff", false),
        ] {
            assert_eq!(is_buggy(ip.parse().unwrap()), buggy, "{ip}");
        }
    }
}
