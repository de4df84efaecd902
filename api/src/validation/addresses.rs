//! Pool address entries: `CIDR` or inclusive `start-end` ranges, summarised into CIDRs, with
//! the error texts of MetalLB's parser.

use std::net::IpAddr;

use ipnet::IpNet;

/// One parsed entry of a pool's `addresses`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddressEntry {
    /// The entry as written.
    pub text: String,
    /// The minimal list of CIDRs covering it, ascending; networks are masked (host bits of a
    /// written CIDR are dropped, as Go's `ParseCIDR` does).
    pub cidrs: Vec<IpNet>,
}

impl AddressEntry {
    /// The least specific CIDR of the entry (the one with the shortest prefix).
    pub fn widest(&self) -> Option<IpNet> {
        self.cidrs.iter().copied().min_by_key(|c| c.prefix_len())
    }

    /// Whether the entry is IPv4.
    pub fn is_ipv4(&self) -> bool {
        self.cidrs
            .first()
            .is_some_and(|c| matches!(c, IpNet::V4(_)))
    }
}

/// Parses one `addresses` entry. The error is MetalLB's inner text, e.g.
/// `invalid CIDR "1.1.1.15"` or `invalid IP range "a-b": invalid start IP "a"`.
pub fn parse_entry(entry: &str) -> Result<AddressEntry, String> {
    let cidrs = match entry.split_once('-') {
        None => {
            let net: IpNet = entry
                .parse()
                .map_err(|_| format!("invalid CIDR {entry:?}"))?;
            vec![net.trunc()]
        }
        Some((start, end)) => {
            let (start_text, end_text) = (start.trim(), end.trim());
            let start: IpAddr = start_text.parse().map_err(|_| {
                format!("invalid IP range {entry:?}: invalid start IP {start_text:?}")
            })?;
            let end: IpAddr = end_text
                .parse()
                .map_err(|_| format!("invalid IP range {entry:?}: invalid end IP {end_text:?}"))?;
            if start.is_ipv4() != end.is_ipv4() {
                return Err(format!(
                    "invalid IP range {entry:?}: start IP {start_text:?} and end IP {end_text:?} are of different families"
                ));
            }
            if to_u128(start) > to_u128(end) {
                return Err(format!(
                    "invalid IP range {entry:?}: start IP {start_text:?} is after the end IP {end_text:?}"
                ));
            }
            summarize_range(start, end)
        }
    };
    Ok(AddressEntry {
        text: entry.to_owned(),
        cidrs,
    })
}

/// The minimal ascending list of CIDRs covering `start..=end` (same family, start <= end).
pub fn summarize_range(start: IpAddr, end: IpAddr) -> Vec<IpNet> {
    let bits: u32 = if start.is_ipv4() { 32 } else { 128 };
    let (mut low, high) = (to_u128(start), to_u128(end));
    let mut out = Vec::new();
    loop {
        // Largest block aligned at `low` that does not pass `high`.
        let mut size_log = if low == 0 {
            bits
        } else {
            low.trailing_zeros().min(bits)
        };
        while size_log > 0 && block_end(low, size_log) > high {
            size_log -= 1;
        }
        let prefix = (bits - size_log) as u8;
        out.push(net_from(low, prefix, start.is_ipv4()));
        let last = block_end(low, size_log);
        if last >= high {
            return out;
        }
        low = last + 1;
    }
}

fn block_end(low: u128, size_log: u32) -> u128 {
    if size_log >= 128 {
        u128::MAX
    } else {
        low + ((1u128 << size_log) - 1)
    }
}

fn net_from(value: u128, prefix: u8, v4: bool) -> IpNet {
    let addr = if v4 {
        IpAddr::from(std::net::Ipv4Addr::from(value as u32))
    } else {
        IpAddr::from(std::net::Ipv6Addr::from(value))
    };
    IpNet::new(addr, prefix).expect("prefix within the family's width")
}

fn to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

/// Whether two CIDRs share an address (one contains the other); IPv4 never overlaps IPv6.
pub fn overlaps(a: &IpNet, b: &IpNet) -> bool {
    match (a, b) {
        (IpNet::V4(_), IpNet::V4(_)) | (IpNet::V6(_), IpNet::V6(_)) => {
            a.contains(b) || b.contains(a)
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidrs(entry: &str) -> Vec<String> {
        parse_entry(entry)
            .unwrap()
            .cidrs
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn a_cidr_with_host_bits_is_masked_like_go() {
        assert_eq!(cidrs("10.20.30.40/24"), ["10.20.30.0/24"]);
    }

    #[test]
    fn ranges_become_the_minimal_cidr_list() {
        assert_eq!(
            cidrs("192.168.10.250-192.168.10.255"),
            ["192.168.10.250/31", "192.168.10.252/30"]
        );
        assert_eq!(cidrs("1.1.1.1-1.1.1.1"), ["1.1.1.1/32"]);
        assert_eq!(cidrs(" 10.0.0.0 - 10.0.0.255 "), ["10.0.0.0/24"]);
        assert_eq!(cidrs("0.0.0.0-255.255.255.255"), ["0.0.0.0/0"]);
        assert_eq!(
            cidrs("2002:2:2::1-2002:2:2::3"),
            ["2002:2:2::1/128", "2002:2:2::2/127"]
        );
        assert_eq!(
            cidrs("::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"),
            ["::/0"]
        );
    }

    #[test]
    fn the_widest_cidr_of_a_range_is_its_shortest_prefix() {
        let entry = parse_entry("3.3.3.2-3.3.3.254").unwrap();
        assert_eq!(entry.widest().unwrap().prefix_len(), 26);
        let entry = parse_entry("1.1.1.1-1.1.1.100").unwrap();
        assert_eq!(entry.widest().unwrap().prefix_len(), 27);
    }

    #[test]
    fn bad_entries_give_metallbs_texts() {
        assert_eq!(
            parse_entry("1.1.1.15").unwrap_err(),
            r#"invalid CIDR "1.1.1.15""#
        );
        assert_eq!(
            parse_entry("2000::").unwrap_err(),
            r#"invalid CIDR "2000::""#
        );
        assert_eq!(
            parse_entry("x-1.1.1.1").unwrap_err(),
            r#"invalid IP range "x-1.1.1.1": invalid start IP "x""#
        );
        assert_eq!(
            parse_entry("1.1.1.1-y").unwrap_err(),
            r#"invalid IP range "1.1.1.1-y": invalid end IP "y""#
        );
        assert_eq!(
            parse_entry("1.1.1.9-1.1.1.1").unwrap_err(),
            r#"invalid IP range "1.1.1.9-1.1.1.1": start IP "1.1.1.9" is after the end IP "1.1.1.1""#
        );
        assert!(
            parse_entry("1.1.1.1-::1")
                .unwrap_err()
                .contains("different families")
        );
    }

    #[test]
    fn only_same_family_nested_cidrs_overlap() {
        let net = |s: &str| s.parse::<IpNet>().unwrap();
        assert!(overlaps(&net("10.0.0.0/24"), &net("10.0.0.128/25")));
        assert!(!overlaps(&net("10.0.0.0/25"), &net("10.0.0.128/25")));
        assert!(!overlaps(&net("0.0.0.0/0"), &net("::/0")));
    }
}
