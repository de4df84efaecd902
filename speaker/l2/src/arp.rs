//! ARP packets (RFC 826) for Ethernet hardware and IPv4 protocol addresses, the only kind the
//! speaker answers or announces.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |     Hardware Type (1)         |    Protocol Type (0x0800)     |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |   HLEN (6)    |   PLEN (4)    |           Operation           |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |            Sender Hardware Address (first 4 bytes)            |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! | Sender HA (last 2 bytes)      | Sender Protocol Address (2)   |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! | Sender PA (last 2 bytes)      | Target Hardware Address (2)   |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |            Target Hardware Address (last 4 bytes)             |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                   Target Protocol Address                     |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```

use std::net::Ipv4Addr;

use crate::frame::{FrameError, MacAddr, octets, read_u16};

/// Hardware type of Ethernet.
const HARDWARE_ETHERNET: u16 = 1;

/// Protocol type of IPv4 (its EtherType).
const PROTOCOL_IPV4: u16 = 0x0800;

/// Byte offsets of the fields.
mod field {
    use std::ops::Range;

    pub(super) const HARDWARE_TYPE: Range<usize> = 0..2;
    pub(super) const PROTOCOL_TYPE: Range<usize> = 2..4;
    pub(super) const HARDWARE_LEN: usize = 4;
    pub(super) const PROTOCOL_LEN: usize = 5;
    pub(super) const OPERATION: Range<usize> = 6..8;
    pub(super) const SENDER_MAC: Range<usize> = 8..14;
    pub(super) const SENDER_IP: Range<usize> = 14..18;
    pub(super) const TARGET_MAC: Range<usize> = 18..24;
    pub(super) const TARGET_IP: Range<usize> = 24..28;
}

/// The ARP operation code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ArpOperation {
    /// 1: who has the target IP?
    Request,
    /// 2: the sender IP is at the sender MAC.
    Reply,
    /// Any other code (RARP, InARP, ...). Kept so that such packets still decode.
    Other(u16),
}

impl ArpOperation {
    fn from_code(code: u16) -> Self {
        match code {
            1 => Self::Request,
            2 => Self::Reply,
            other => Self::Other(other),
        }
    }

    /// The code on the wire.
    pub fn code(self) -> u16 {
        match self {
            Self::Request => 1,
            Self::Reply => 2,
            Self::Other(code) => code,
        }
    }
}

/// An ARP packet mapping IPv4 addresses to Ethernet addresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArpPacket {
    /// Request, reply or another operation.
    pub operation: ArpOperation,
    /// The sender's MAC address.
    pub sender_mac: MacAddr,
    /// The sender's IPv4 address; 0.0.0.0 in an address probe (RFC 5227 §2.1.1).
    pub sender_ip: Ipv4Addr,
    /// The target's MAC address; zero or broadcast in a request, as the sender chose.
    pub target_mac: MacAddr,
    /// The IPv4 address asked about, or the requester's in a reply.
    pub target_ip: Ipv4Addr,
}

impl ArpPacket {
    /// Length of an Ethernet/IPv4 ARP packet.
    pub const LEN: usize = 28;

    /// Whether this announces the sender's own binding (sender IP equals target IP), the form
    /// of gratuitous ARP and of RFC 5227 announcements, rather than asking about an address.
    pub fn is_gratuitous(&self) -> bool {
        self.sender_ip == self.target_ip
    }

    /// Decodes the payload of an ARP frame. Bytes after the packet are padding.
    pub(crate) fn parse(bytes: &[u8]) -> Result<Self, FrameError> {
        let packet = bytes
            .get(..Self::LEN)
            .ok_or(FrameError::truncated(Self::LEN, bytes.len()))?;
        let hardware_type = read_u16(packet, field::HARDWARE_TYPE);
        let protocol_type = read_u16(packet, field::PROTOCOL_TYPE);
        let hardware_len = packet[field::HARDWARE_LEN];
        let protocol_len = packet[field::PROTOCOL_LEN];
        // The address lengths fix the field offsets, so anything but 6 and 4 is another layout.
        if (hardware_type, protocol_type, hardware_len, protocol_len)
            != (HARDWARE_ETHERNET, PROTOCOL_IPV4, 6, 4)
        {
            return Err(FrameError::UnsupportedArp {
                hardware_type,
                protocol_type,
                hardware_len,
                protocol_len,
            });
        }
        Ok(Self {
            operation: ArpOperation::from_code(read_u16(packet, field::OPERATION)),
            sender_mac: MacAddr(octets(packet, field::SENDER_MAC)),
            sender_ip: ipv4(packet, field::SENDER_IP),
            target_mac: MacAddr(octets(packet, field::TARGET_MAC)),
            target_ip: ipv4(packet, field::TARGET_IP),
        })
    }

    /// Appends the [`LEN`](Self::LEN) bytes of the packet.
    pub(crate) fn emit(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&HARDWARE_ETHERNET.to_be_bytes());
        out.extend_from_slice(&PROTOCOL_IPV4.to_be_bytes());
        out.extend_from_slice(&[6, 4]);
        out.extend_from_slice(&self.operation.code().to_be_bytes());
        out.extend_from_slice(&self.sender_mac.0);
        out.extend_from_slice(&self.sender_ip.octets());
        out.extend_from_slice(&self.target_mac.0);
        out.extend_from_slice(&self.target_ip.octets());
    }
}

fn ipv4(bytes: &[u8], range: std::ops::Range<usize>) -> Ipv4Addr {
    let mut octets = [0; 4];
    octets.copy_from_slice(&bytes[range]);
    Ipv4Addr::from(octets)
}
