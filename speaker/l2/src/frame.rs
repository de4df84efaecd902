//! Ethernet II frames (IEEE 802.3 with an EtherType), optionally carrying one IEEE 802.1Q tag,
//! whose payload is ARP or IPv6 neighbor discovery.
//!
//! ```text
//! +-------------+-------------+ - - - - - - - - - - - - - +-----------+------------
//! | destination | source      | TPID 0x8100 | TCI         | EtherType | payload
//! | 6 bytes     | 6 bytes     | 2 bytes     | 2 bytes     | 2 bytes   |
//! +-------------+-------------+ - - - - - - - - - - - - - +-----------+------------
//! ```
//!
//! Frames are decoded into owned values (the smoltcp `Repr` idea) and encoded from them. Bytes
//! after the payload are ignored: short frames arrive padded to 60 bytes, and we emit without
//! padding because the driver of the interface pads, as it does for the kernel's own ARP.

use std::{fmt, net::Ipv6Addr};

use thiserror::Error;

use crate::{arp::ArpPacket, ndp::NdpPacket};

/// Length of the untagged Ethernet header.
const HEADER_LEN: usize = 14;

/// Length of an 802.1Q tag: TPID and TCI.
const TAG_LEN: usize = 4;

/// EtherTypes we read or write.
mod ethertype {
    pub(crate) const ARP: u16 = 0x0806;
    pub(crate) const IPV6: u16 = 0x86dd;
    pub(crate) const VLAN: u16 = 0x8100;
}

/// Byte offsets in the untagged header; a tag shifts the EtherType by [`TAG_LEN`].
mod field {
    use std::ops::Range;

    pub(super) const DESTINATION: Range<usize> = 0..6;
    pub(super) const SOURCE: Range<usize> = 6..12;
    pub(super) const ETHERTYPE: Range<usize> = 12..14;
}

/// A 48-bit IEEE 802 MAC address.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// ff:ff:ff:ff:ff:ff, the destination of ARP requests and announcements.
    pub const BROADCAST: Self = Self([0xff; 6]);

    /// Whether the group bit is set: multicast or broadcast, never a valid source.
    pub fn is_multicast(self) -> bool {
        self.0[0] & 0x01 != 0
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

// Debug prints the familiar notation, so frames in assertion failures stay readable.
impl fmt::Debug for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// What an Ethernet frame carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Payload {
    /// EtherType 0x0806.
    Arp(ArpPacket),
    /// EtherType 0x86dd, holding an ICMPv6 Neighbor Solicitation or Advertisement.
    Ndp(NdpPacket),
}

/// An Ethernet II frame with an ARP or NDP payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    /// Destination MAC address.
    pub destination: MacAddr,
    /// Source MAC address.
    pub source: MacAddr,
    /// Tag control information (priority, DEI, VLAN ID) of an 802.1Q tag. A reply carries the
    /// request's tag back, so that on a trunk it stays in the request's VLAN.
    pub vlan: Option<u16>,
    /// The ARP or NDP packet.
    pub payload: Payload,
}

impl Frame {
    /// Decodes a frame as read from a packet socket, starting at the destination address.
    /// Never panics.
    ///
    /// # Errors
    ///
    /// Anything that is not a well-formed ARP (Ethernet/IPv4) or a valid NS or NA (the checks of
    /// RFC 4861 §7.1) gives a [`FrameError`]; its [`label`](FrameError::label) names a drop
    /// counter.
    pub fn parse(bytes: &[u8]) -> Result<Self, FrameError> {
        let header = bytes
            .get(..HEADER_LEN)
            .ok_or(FrameError::truncated(HEADER_LEN, bytes.len()))?;
        let destination = MacAddr(octets(header, field::DESTINATION));
        let source = MacAddr(octets(header, field::SOURCE));
        // IEEE 802 addresses with the group bit are destinations only.
        if source.is_multicast() {
            return Err(FrameError::GroupSource(source));
        }
        let (vlan, ethertype, payload) = match read_u16(header, field::ETHERTYPE) {
            ethertype::VLAN => {
                let tagged = bytes
                    .get(..HEADER_LEN + TAG_LEN)
                    .ok_or(FrameError::truncated(HEADER_LEN + TAG_LEN, bytes.len()))?;
                let tci = read_u16(tagged, HEADER_LEN..HEADER_LEN + 2);
                let inner = read_u16(tagged, HEADER_LEN + 2..HEADER_LEN + TAG_LEN);
                (Some(tci), inner, &bytes[HEADER_LEN + TAG_LEN..])
            }
            other => (None, other, &bytes[HEADER_LEN..]),
        };
        let payload = match ethertype {
            ethertype::ARP => Payload::Arp(ArpPacket::parse(payload)?),
            ethertype::IPV6 => Payload::Ndp(NdpPacket::parse(payload)?),
            other => return Err(FrameError::UnsupportedEtherType(other)),
        };
        Ok(Self {
            destination,
            source,
            vlan,
            payload,
        })
    }

    /// Length of [`encode`](Self::encode)'s output.
    pub fn buffer_len(&self) -> usize {
        let tag = if self.vlan.is_some() { TAG_LEN } else { 0 };
        let payload = match &self.payload {
            Payload::Arp(_) => ArpPacket::LEN,
            Payload::Ndp(ndp) => ndp.buffer_len(),
        };
        HEADER_LEN + tag + payload
    }

    /// Encodes the frame for a packet socket, without padding or frame check sequence.
    pub fn encode(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(self.buffer_len());
        bytes.extend_from_slice(&self.destination.0);
        bytes.extend_from_slice(&self.source.0);
        if let Some(tci) = self.vlan {
            bytes.extend_from_slice(&ethertype::VLAN.to_be_bytes());
            bytes.extend_from_slice(&tci.to_be_bytes());
        }
        match &self.payload {
            Payload::Arp(arp) => {
                bytes.extend_from_slice(&ethertype::ARP.to_be_bytes());
                arp.emit(&mut bytes);
            }
            Payload::Ndp(ndp) => {
                bytes.extend_from_slice(&ethertype::IPV6.to_be_bytes());
                ndp.emit(&mut bytes);
            }
        }
        bytes
    }
}

/// Copies six bytes out of a slice whose length the caller has checked.
pub(crate) fn octets(bytes: &[u8], range: std::ops::Range<usize>) -> [u8; 6] {
    let mut out = [0; 6];
    out.copy_from_slice(&bytes[range]);
    out
}

/// Reads a big-endian u16 from a slice whose length the caller has checked.
pub(crate) fn read_u16(bytes: &[u8], range: std::ops::Range<usize>) -> u16 {
    u16::from_be_bytes([bytes[range.start], bytes[range.start + 1]])
}

/// Why received bytes are not a frame we act on. Each variant is one drop counter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum FrameError {
    /// A header or option ends before its fixed part does.
    #[error("{available} bytes where {needed} are needed")]
    Truncated {
        /// Bytes the structure needs.
        needed: usize,
        /// Bytes there are.
        available: usize,
    },
    /// The Ethernet source has the group bit set.
    #[error("source MAC {0} is a group address")]
    GroupSource(MacAddr),
    /// The EtherType is neither ARP nor IPv6.
    #[error("EtherType {0:#06x} is neither ARP nor IPv6")]
    UnsupportedEtherType(u16),
    /// ARP for another hardware or protocol than Ethernet and IPv4, or with lengths that do
    /// not fit them.
    #[error(
        "ARP for hardware type {hardware_type} ({hardware_len} bytes), protocol {protocol_type:#06x} ({protocol_len} bytes)"
    )]
    UnsupportedArp {
        /// The hardware type (1 is Ethernet).
        hardware_type: u16,
        /// The protocol type (0x0800 is IPv4).
        protocol_type: u16,
        /// The hardware address length (6 for Ethernet).
        hardware_len: u8,
        /// The protocol address length (4 for IPv4).
        protocol_len: u8,
    },
    /// The IP version is not 6.
    #[error("IP version {0} in an IPv6 frame")]
    BadIpVersion(u8),
    /// The IPv6 Payload Length claims more bytes than the frame holds.
    #[error("IPv6 payload length {payload_length} exceeds the {available} bytes received")]
    PayloadLengthExceedsFrame {
        /// The Payload Length field.
        payload_length: u16,
        /// Bytes after the IPv6 header.
        available: usize,
    },
    /// The IPv6 source is a multicast address, which RFC 4291 §2.7 forbids.
    #[error("IPv6 source {0} is multicast")]
    MulticastSource(Ipv6Addr),
    /// The IPv6 Next Header is not ICMPv6 (extension headers are not followed).
    #[error("IPv6 next header {0} is not ICMPv6")]
    NotIcmpv6(u8),
    /// An ICMPv6 message other than a Neighbor Solicitation or Advertisement.
    #[error("ICMPv6 type {0} is not neighbor solicitation or advertisement")]
    NotNeighborDiscovery(u8),
    /// The Hop Limit is not 255, so the message may come from off-link (RFC 4861 §7.1).
    #[error("hop limit {0} is not 255")]
    HopLimit(u8),
    /// The ICMPv6 checksum does not match the pseudo-header and message.
    #[error("ICMPv6 checksum {received:#06x}, expected {expected:#06x}")]
    BadChecksum {
        /// The Checksum field.
        received: u16,
        /// What the message and pseudo-header add up to.
        expected: u16,
    },
    /// The ICMPv6 Code is not 0.
    #[error("ICMPv6 code {0} is not 0")]
    BadCode(u8),
    /// The Target Address is a multicast address.
    #[error("target {0} is multicast")]
    MulticastTarget(Ipv6Addr),
    /// An NDP option has length zero, which RFC 4861 §4.6 says to drop.
    #[error("NDP option with length zero")]
    ZeroLengthOption,
    /// A link-layer address option is not the one 8-byte unit an Ethernet address takes.
    #[error("link-layer address option of {0} units, Ethernet needs 1")]
    BadLinkLayerOption(u8),
    /// A duplicate address detection probe (unspecified source) not sent to a solicited-node
    /// multicast group.
    #[error("duplicate address detection probe sent to {0}")]
    DadDestination(Ipv6Addr),
    /// A duplicate address detection probe carries a source link-layer address option.
    #[error("duplicate address detection probe with a source link-layer address")]
    DadWithSourceLinkLayer,
    /// A solicited advertisement sent to a multicast group.
    #[error("solicited advertisement to multicast {0}")]
    SolicitedToMulticast(Ipv6Addr),
}

impl FrameError {
    pub(crate) fn truncated(needed: usize, available: usize) -> Self {
        Self::Truncated { needed, available }
    }

    /// A fixed snake_case name for a drop counter's label.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Truncated { .. } => "truncated",
            Self::GroupSource(_) => "group_source",
            Self::UnsupportedEtherType(_) => "unsupported_ethertype",
            Self::UnsupportedArp { .. } => "unsupported_arp",
            Self::BadIpVersion(_) => "bad_ip_version",
            Self::PayloadLengthExceedsFrame { .. } => "payload_length_exceeds_frame",
            Self::MulticastSource(_) => "multicast_source",
            Self::NotIcmpv6(_) => "not_icmpv6",
            Self::NotNeighborDiscovery(_) => "not_neighbor_discovery",
            Self::HopLimit(_) => "hop_limit",
            Self::BadChecksum { .. } => "bad_checksum",
            Self::BadCode(_) => "bad_code",
            Self::MulticastTarget(_) => "multicast_target",
            Self::ZeroLengthOption => "zero_length_option",
            Self::BadLinkLayerOption(_) => "bad_link_layer_option",
            Self::DadDestination(_) => "dad_destination",
            Self::DadWithSourceLinkLayer => "dad_with_source_link_layer",
            Self::SolicitedToMulticast(_) => "solicited_to_multicast",
        }
    }
}
