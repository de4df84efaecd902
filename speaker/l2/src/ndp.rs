//! IPv6 packets holding an ICMPv6 Neighbor Solicitation or Neighbor Advertisement
//! (RFC 4861 §4.3, §4.4), validated as §7.1 requires, and the multicast helpers NDP needs.
//!
//! ```text
//! IPv6 header (RFC 8200 §3), 40 bytes:
//! | Version | Traffic Class | Flow Label | Payload Length | Next Header 58 | Hop Limit 255 |
//! | Source Address (16 bytes)          | Destination Address (16 bytes)                     |
//!
//! ICMPv6 message (RFC 4861 §4.3, §4.4):
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |  Type 135/136 |     Code 0    |          Checksum             |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |R|S|O|                     Reserved                            |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                   Target Address (16 bytes)                   |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |   Options ...  Type 1 (source) or 2 (target link-layer address),
//! |   Length 1 (units of 8 bytes), then the 6-byte MAC address
//! ```
//!
//! The R, S and O flags exist only in advertisements; a solicitation has the whole word
//! reserved. Extension headers are not followed: NDP messages never need them.

use std::net::Ipv6Addr;

use crate::frame::{FrameError, MacAddr, octets, read_u16};

/// The all-nodes multicast group ff02::1, destination of unsolicited advertisements.
pub const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);

/// Length of the IPv6 header.
const IPV6_HEADER_LEN: usize = 40;

/// Next Header value of ICMPv6.
const NEXT_HEADER_ICMPV6: u8 = 58;

/// The Hop Limit NDP messages are sent with and must arrive with (RFC 4861 §7.1.1).
const HOP_LIMIT: u8 = 255;

/// Length of a Neighbor Solicitation or Advertisement without options.
const MESSAGE_LEN: usize = 24;

/// Length of a link-layer address option for Ethernet: one 8-byte unit.
const LINK_LAYER_OPTION_LEN: usize = 8;

/// ICMPv6 types.
mod icmp_type {
    pub(super) const NEIGHBOR_SOLICITATION: u8 = 135;
    pub(super) const NEIGHBOR_ADVERTISEMENT: u8 = 136;
}

/// NDP option types.
mod option {
    pub(super) const SOURCE_LINK_LAYER: u8 = 1;
    pub(super) const TARGET_LINK_LAYER: u8 = 2;
}

/// Flag bits of the first byte after the checksum of an advertisement.
mod flag {
    pub(super) const ROUTER: u8 = 0x80;
    pub(super) const SOLICITED: u8 = 0x40;
    pub(super) const OVERRIDE: u8 = 0x20;
}

/// Byte offsets in the IPv6 header.
mod ip_field {
    use std::ops::Range;

    pub(super) const PAYLOAD_LENGTH: Range<usize> = 4..6;
    pub(super) const NEXT_HEADER: usize = 6;
    pub(super) const HOP_LIMIT: usize = 7;
    pub(super) const SOURCE: Range<usize> = 8..24;
    pub(super) const DESTINATION: Range<usize> = 24..40;
}

/// Byte offsets in the ICMPv6 message.
mod icmp_field {
    use std::ops::Range;

    pub(super) const TYPE: usize = 0;
    pub(super) const CODE: usize = 1;
    pub(super) const CHECKSUM: Range<usize> = 2..4;
    pub(super) const FLAGS: usize = 4;
    pub(super) const TARGET: Range<usize> = 8..24;
    pub(super) const OPTIONS: usize = 24;
}

/// The solicited-node multicast group of an address, ff02::1:ffXX:XXXX with the address's low
/// 24 bits (RFC 4291 §2.7.1). Solicitations for the address go there, so a responder joins it.
pub fn solicited_node_multicast(address: Ipv6Addr) -> Ipv6Addr {
    let [.., a, b, c] = address.octets();
    Ipv6Addr::from([0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0xff, a, b, c])
}

/// Whether an address is in ff02::1:ff00:0/104, the solicited-node groups.
pub fn is_solicited_node_multicast(address: Ipv6Addr) -> bool {
    address.octets()[..13] == [0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0xff]
}

/// The Ethernet address an IPv6 multicast group maps to: 33:33 and the group's low 32 bits
/// (RFC 2464 §7). For a solicited-node group that is 33:33:ff:XX:XX:XX.
pub fn multicast_mac(group: Ipv6Addr) -> MacAddr {
    let [.., a, b, c, d] = group.octets();
    MacAddr([0x33, 0x33, a, b, c, d])
}

/// The flags of a Neighbor Advertisement.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct AdvertisementFlags {
    /// R: the sender is a router.
    pub router: bool,
    /// S: the advertisement answers a solicitation.
    pub solicited: bool,
    /// O: the advertisement replaces a cached link-layer address.
    pub override_: bool,
}

/// The two NDP messages the speaker reads and writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NdpMessage {
    /// Type 135: who has the target address?
    NeighborSolicitation {
        /// The address asked about.
        target: Ipv6Addr,
        /// The solicitor's MAC from the source link-layer address option, if present.
        source_mac: Option<MacAddr>,
    },
    /// Type 136: the target address is at the target MAC.
    NeighborAdvertisement {
        /// R, S and O.
        flags: AdvertisementFlags,
        /// The address advertised.
        target: Ipv6Addr,
        /// The MAC from the target link-layer address option, if present.
        target_mac: Option<MacAddr>,
    },
}

/// An IPv6 packet carrying an NDP message with Hop Limit 255. Options other than the link-layer
/// address options are skipped on receive, as RFC 4861 §4.6 requires, and never emitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NdpPacket {
    /// IPv6 source; unspecified (::) in a duplicate address detection probe.
    pub source: Ipv6Addr,
    /// IPv6 destination.
    pub destination: Ipv6Addr,
    /// The solicitation or advertisement.
    pub message: NdpMessage,
}

impl NdpPacket {
    /// Whether this is a duplicate address detection probe: a solicitation from :: (RFC 4862
    /// §5.4.2).
    pub fn is_duplicate_address_detection(&self) -> bool {
        matches!(self.message, NdpMessage::NeighborSolicitation { .. })
            && self.source.is_unspecified()
    }

    /// Decodes the payload of an IPv6 frame and validates it as RFC 4861 §7.1.1 (solicitation)
    /// or §7.1.2 (advertisement) requires. Bytes after the IPv6 payload are padding.
    pub(crate) fn parse(bytes: &[u8]) -> Result<Self, FrameError> {
        let header = bytes
            .get(..IPV6_HEADER_LEN)
            .ok_or(FrameError::truncated(IPV6_HEADER_LEN, bytes.len()))?;
        let version = header[0] >> 4;
        if version != 6 {
            return Err(FrameError::BadIpVersion(version));
        }
        let payload_length = read_u16(header, ip_field::PAYLOAD_LENGTH);
        let available = bytes.len() - IPV6_HEADER_LEN;
        let message = bytes
            .get(IPV6_HEADER_LEN..IPV6_HEADER_LEN + usize::from(payload_length))
            .ok_or(FrameError::PayloadLengthExceedsFrame {
                payload_length,
                available,
            })?;
        let source = ipv6(header, ip_field::SOURCE);
        let destination = ipv6(header, ip_field::DESTINATION);
        if source.is_multicast() {
            return Err(FrameError::MulticastSource(source));
        }
        let next_header = header[ip_field::NEXT_HEADER];
        if next_header != NEXT_HEADER_ICMPV6 {
            return Err(FrameError::NotIcmpv6(next_header));
        }
        // The type comes first so that other ICMPv6 traffic is dropped before the checksum.
        let icmp_type = *message
            .get(icmp_field::TYPE)
            .ok_or(FrameError::truncated(1, 0))?;
        if !matches!(
            icmp_type,
            icmp_type::NEIGHBOR_SOLICITATION | icmp_type::NEIGHBOR_ADVERTISEMENT
        ) {
            return Err(FrameError::NotNeighborDiscovery(icmp_type));
        }
        let hop_limit = header[ip_field::HOP_LIMIT];
        if hop_limit != HOP_LIMIT {
            return Err(FrameError::HopLimit(hop_limit));
        }
        if message.len() < MESSAGE_LEN {
            return Err(FrameError::truncated(MESSAGE_LEN, message.len()));
        }
        verify_checksum(source, destination, message)?;
        let code = message[icmp_field::CODE];
        if code != 0 {
            return Err(FrameError::BadCode(code));
        }
        let target = ipv6(message, icmp_field::TARGET);
        if target.is_multicast() {
            return Err(FrameError::MulticastTarget(target));
        }
        let wanted = if icmp_type == icmp_type::NEIGHBOR_SOLICITATION {
            option::SOURCE_LINK_LAYER
        } else {
            option::TARGET_LINK_LAYER
        };
        let mac = link_layer_option(&message[icmp_field::OPTIONS..], wanted)?;
        let message = if icmp_type == icmp_type::NEIGHBOR_SOLICITATION {
            solicitation(source, destination, target, mac)?
        } else {
            advertisement(destination, message[icmp_field::FLAGS], target, mac)?
        };
        Ok(Self {
            source,
            destination,
            message,
        })
    }

    /// Length of the IPv6 packet [`emit`](Self::emit) writes.
    pub(crate) fn buffer_len(&self) -> usize {
        IPV6_HEADER_LEN + self.message_len()
    }

    fn message_len(&self) -> usize {
        let mac = match self.message {
            NdpMessage::NeighborSolicitation { source_mac, .. } => source_mac,
            NdpMessage::NeighborAdvertisement { target_mac, .. } => target_mac,
        };
        MESSAGE_LEN + mac.map_or(0, |_| LINK_LAYER_OPTION_LEN)
    }

    /// Appends the IPv6 header and the ICMPv6 message with its checksum.
    pub(crate) fn emit(&self, out: &mut Vec<u8>) {
        let message_len = self.message_len();
        // Version 6, traffic class and flow label zero, as the kernel sends NDP.
        out.extend_from_slice(&[0x60, 0, 0, 0]);
        out.extend_from_slice(&(message_len as u16).to_be_bytes());
        out.extend_from_slice(&[NEXT_HEADER_ICMPV6, HOP_LIMIT]);
        out.extend_from_slice(&self.source.octets());
        out.extend_from_slice(&self.destination.octets());
        let start = out.len();
        let (icmp_type, flags, target, option) = match self.message {
            NdpMessage::NeighborSolicitation { target, source_mac } => (
                icmp_type::NEIGHBOR_SOLICITATION,
                0,
                target,
                source_mac.map(|mac| (option::SOURCE_LINK_LAYER, mac)),
            ),
            NdpMessage::NeighborAdvertisement {
                flags,
                target,
                target_mac,
            } => (
                icmp_type::NEIGHBOR_ADVERTISEMENT,
                flag_bits(flags),
                target,
                target_mac.map(|mac| (option::TARGET_LINK_LAYER, mac)),
            ),
        };
        out.extend_from_slice(&[icmp_type, 0, 0, 0, flags, 0, 0, 0]);
        out.extend_from_slice(&target.octets());
        if let Some((kind, mac)) = option {
            out.extend_from_slice(&[kind, 1]);
            out.extend_from_slice(&mac.0);
        }
        let sum = partial_sum(self.source, self.destination, &out[start..]);
        let checksum = !fold(sum);
        out[start + icmp_field::CHECKSUM.start..start + icmp_field::CHECKSUM.end]
            .copy_from_slice(&checksum.to_be_bytes());
    }
}

/// The checks of RFC 4861 §7.1.1 that depend on the source address.
fn solicitation(
    source: Ipv6Addr,
    destination: Ipv6Addr,
    target: Ipv6Addr,
    source_mac: Option<MacAddr>,
) -> Result<NdpMessage, FrameError> {
    if source.is_unspecified() {
        if !is_solicited_node_multicast(destination) {
            return Err(FrameError::DadDestination(destination));
        }
        if source_mac.is_some() {
            return Err(FrameError::DadWithSourceLinkLayer);
        }
    }
    Ok(NdpMessage::NeighborSolicitation { target, source_mac })
}

/// The check of RFC 4861 §7.1.2 on the flags: a multicast advertisement cannot be solicited.
fn advertisement(
    destination: Ipv6Addr,
    bits: u8,
    target: Ipv6Addr,
    target_mac: Option<MacAddr>,
) -> Result<NdpMessage, FrameError> {
    let flags = AdvertisementFlags {
        router: bits & flag::ROUTER != 0,
        solicited: bits & flag::SOLICITED != 0,
        override_: bits & flag::OVERRIDE != 0,
    };
    if flags.solicited && destination.is_multicast() {
        return Err(FrameError::SolicitedToMulticast(destination));
    }
    Ok(NdpMessage::NeighborAdvertisement {
        flags,
        target,
        target_mac,
    })
}

fn flag_bits(flags: AdvertisementFlags) -> u8 {
    let bit = |set: bool, mask: u8| if set { mask } else { 0 };
    bit(flags.router, flag::ROUTER)
        | bit(flags.solicited, flag::SOLICITED)
        | bit(flags.override_, flag::OVERRIDE)
}

/// Walks the options and returns the MAC of the first option of type `wanted`. Every option
/// must have a non-zero length and fit in the message (RFC 4861 §7.1.1); unknown options are
/// skipped (§4.6).
fn link_layer_option(mut options: &[u8], wanted: u8) -> Result<Option<MacAddr>, FrameError> {
    let mut found = None;
    while !options.is_empty() {
        let [kind, units, ..] = *options else {
            return Err(FrameError::truncated(2, options.len()));
        };
        if units == 0 {
            return Err(FrameError::ZeroLengthOption);
        }
        let len = usize::from(units) * 8;
        let body = options
            .get(..len)
            .ok_or(FrameError::truncated(len, options.len()))?;
        if kind == wanted && found.is_none() {
            // Linux drops a message whose link-layer option does not fit the link, and so do we.
            if len != LINK_LAYER_OPTION_LEN {
                return Err(FrameError::BadLinkLayerOption(units));
            }
            found = Some(MacAddr(octets(body, 2..8)));
        }
        options = &options[len..];
    }
    Ok(found)
}

/// The ICMPv6 checksum (RFC 4443 §2.3) must make the pseudo-header (RFC 8200 §8.1) and the
/// whole message add up to all ones.
fn verify_checksum(
    source: Ipv6Addr,
    destination: Ipv6Addr,
    message: &[u8],
) -> Result<(), FrameError> {
    let received = read_u16(message, icmp_field::CHECKSUM);
    let without = partial_sum(source, destination, message) - u64::from(received);
    if fold(without + u64::from(received)) == 0xffff {
        Ok(())
    } else {
        Err(FrameError::BadChecksum {
            received,
            expected: !fold(without),
        })
    }
}

/// The ones' complement sum, before folding, of the pseudo-header (RFC 8200 §8.1) and the
/// message taken as big-endian 16-bit words; an odd last byte is padded with zero. u64 cannot
/// overflow: a message is at most 65535 bytes.
fn partial_sum(source: Ipv6Addr, destination: Ipv6Addr, message: &[u8]) -> u64 {
    let length = message.len() as u64;
    words(&source.octets())
        + words(&destination.octets())
        + (length >> 16)
        + (length & 0xffff)
        + u64::from(NEXT_HEADER_ICMPV6)
        + words(message)
}

fn words(bytes: &[u8]) -> u64 {
    bytes
        .chunks(2)
        .map(|pair| u64::from(u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)])))
        .sum()
}

/// Folds the carries back in until 16 bits remain.
fn fold(mut sum: u64) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

fn ipv6(bytes: &[u8], range: std::ops::Range<usize>) -> Ipv6Addr {
    let mut octets = [0; 16];
    octets.copy_from_slice(&bytes[range]);
    Ipv6Addr::from(octets)
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 1071 §3's worked example: the words 0001 f203 f4f5 f6f7 add up to 2ddf0, which
    // folds to ddf2.
    #[test]
    fn fold_matches_the_rfc_1071_example() {
        let sum = words(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]);
        assert_eq!(sum, 0x2ddf0);
        assert_eq!(fold(sum), 0xddf2);
    }

    #[test]
    fn an_odd_last_byte_counts_as_the_high_half_of_a_word() {
        assert_eq!(words(&[0x12, 0x34, 0x56]), 0x1234 + 0x5600);
    }

    #[test]
    fn a_checksum_of_all_ones_is_as_good_as_zero() {
        // Ones' complement has two zeros. Pick the target's last word so that the message sums
        // to all ones: the checksum is then zero, and a sender may write 0xffff instead.
        let source = Ipv6Addr::UNSPECIFIED;
        let destination = solicited_node_multicast(Ipv6Addr::LOCALHOST);
        let mut message = [0u8; MESSAGE_LEN];
        message[0] = icmp_type::NEIGHBOR_SOLICITATION;
        let rest = fold(partial_sum(source, destination, &message));
        message[22..24].copy_from_slice(&(0xffff - rest).to_be_bytes());
        assert_eq!(!fold(partial_sum(source, destination, &message)), 0);
        assert_eq!(verify_checksum(source, destination, &message), Ok(()));
        message[2..4].copy_from_slice(&[0xff, 0xff]);
        assert_eq!(verify_checksum(source, destination, &message), Ok(()));
        message[2..4].copy_from_slice(&[0xff, 0xfe]);
        assert!(verify_checksum(source, destination, &message).is_err());
    }
}
