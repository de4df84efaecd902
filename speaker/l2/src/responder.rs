//! The ARP and NDP responders' decision: answer a request only for an IP this node owns, on an
//! interface its advertisements allow, from the interface's own MAC.
//!
//! The rules are MetalLB's (ARP requests only, to broadcast or to us; the interface's MAC), with
//! three deliberate differences on the NDP side, all from RFC 4861 §7.2.4:
//! - a solicitation without a source link-layer option is answered to the frame's source MAC,
//!   where MetalLB ignores it (hosts may send unicast probes without the option);
//! - a duplicate address detection probe for an owned IP is answered, Solicited flag clear, to
//!   all-nodes, so that a host cannot configure the service's address;
//! - the Override flag is set: the speaker is the owner of the IP, not a proxy, and a reply
//!   must replace a stale cache entry left by the previous owner;
//! - a solicited advertisement comes from the service IP itself, as Linux answers for its own
//!   addresses, not from the link-local address: ndisc6 drops a reply to a global target that
//!   comes from a link-local (scoped) source, so MetalLB's replies fail it.

use std::net::IpAddr;

use thiserror::Error;

use crate::{
    arp::{ArpOperation, ArpPacket},
    frame::{Frame, FrameError, MacAddr, Payload},
    ndp::{ALL_NODES, AdvertisementFlags, NdpMessage, NdpPacket, multicast_mac},
    ownership::{Interface, Ownership},
};

/// A reply to send on the interface the request arrived on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    /// The owned IP the request asked about, for the per-IP counters.
    pub ip: IpAddr,
    /// The ARP reply or Neighbor Advertisement.
    pub frame: Frame,
}

/// Why a received frame gets no reply. Each variant is one counter label.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum Ignored {
    /// The bytes are not a valid ARP or NDP frame.
    #[error("malformed frame: {0}")]
    Malformed(#[from] FrameError),
    /// We sent it: a packet socket also sees the interface's outgoing frames.
    #[error("frame sent by this interface")]
    OwnFrame,
    /// An ARP reply, another ARP operation or a Neighbor Advertisement: nothing asks.
    #[error("not a request")]
    NotRequest,
    /// An ARP request sent to another host's MAC.
    #[error("ARP request for MAC {0}, neither broadcast nor ours")]
    WrongDestination(MacAddr),
    /// An ARP announcement (sender IP equals target IP): the sender tells, it does not ask.
    #[error("gratuitous ARP")]
    Gratuitous,
    /// This node does not own the IP asked about.
    #[error("{0} is not owned by this node")]
    NotOwned(IpAddr),
    /// This node owns the IP, but its advertisements do not allow this interface.
    #[error("{0} is not announced on this interface")]
    InterfaceNotAllowed(IpAddr),
    /// The interface has no IPv6 link-local address to advertise from.
    #[error("no link-local address to advertise {0} from")]
    NoLinkLocal(IpAddr),
}

impl Ignored {
    /// A fixed snake_case name for a counter's label; a malformed frame gives the parser's.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Malformed(error) => error.label(),
            Self::OwnFrame => "own_frame",
            Self::NotRequest => "not_request",
            Self::WrongDestination(_) => "wrong_destination",
            Self::Gratuitous => "gratuitous",
            Self::NotOwned(_) => "not_owned",
            Self::InterfaceNotAllowed(_) => "interface_not_allowed",
            Self::NoLinkLocal(_) => "no_link_local",
        }
    }
}

/// Decides whether a frame received on `interface` gets a reply, and builds it.
///
/// # Errors
///
/// Every frame that gets no reply gives the reason as [`Ignored`].
pub fn respond(
    bytes: &[u8],
    interface: &Interface,
    ownership: &Ownership,
) -> Result<Reply, Ignored> {
    let frame = Frame::parse(bytes)?;
    if frame.source == interface.mac {
        return Err(Ignored::OwnFrame);
    }
    match &frame.payload {
        Payload::Arp(arp) => answer_arp(&frame, arp, interface, ownership),
        Payload::Ndp(ndp) => answer_solicitation(&frame, ndp, interface, ownership),
    }
}

fn answer_arp(
    frame: &Frame,
    request: &ArpPacket,
    interface: &Interface,
    ownership: &Ownership,
) -> Result<Reply, Ignored> {
    if request.operation != ArpOperation::Request {
        return Err(Ignored::NotRequest);
    }
    if frame.destination != MacAddr::BROADCAST && frame.destination != interface.mac {
        return Err(Ignored::WrongDestination(frame.destination));
    }
    if request.is_gratuitous() {
        return Err(Ignored::Gratuitous);
    }
    let ip = IpAddr::V4(request.target_ip);
    owned_on(ip, interface, ownership)?;
    // RFC 826: swap sender and target, fill in our MAC, send to the requester. An RFC 5227
    // probe (sender IP 0.0.0.0) gets the same reply, which tells the prober the IP is taken.
    let reply = ArpPacket {
        operation: ArpOperation::Reply,
        sender_mac: interface.mac,
        sender_ip: request.target_ip,
        target_mac: request.sender_mac,
        target_ip: request.sender_ip,
    };
    Ok(Reply {
        ip,
        frame: Frame {
            destination: request.sender_mac,
            source: interface.mac,
            vlan: frame.vlan,
            payload: Payload::Arp(reply),
        },
    })
}

fn answer_solicitation(
    frame: &Frame,
    packet: &NdpPacket,
    interface: &Interface,
    ownership: &Ownership,
) -> Result<Reply, Ignored> {
    let NdpMessage::NeighborSolicitation { target, source_mac } = packet.message else {
        return Err(Ignored::NotRequest);
    };
    let ip = IpAddr::V6(target);
    owned_on(ip, interface, ownership)?;
    let link_local = interface.link_local.ok_or(Ignored::NoLinkLocal(ip))?;
    // A defence against duplicate address detection is the takeover announcement itself.
    let (source, destination, mac, solicited) = if packet.is_duplicate_address_detection() {
        (link_local, ALL_NODES, multicast_mac(ALL_NODES), false)
    } else {
        (
            target,
            packet.source,
            source_mac.unwrap_or(frame.source),
            true,
        )
    };
    let advertisement = NdpPacket {
        source,
        destination,
        message: NdpMessage::NeighborAdvertisement {
            flags: AdvertisementFlags {
                router: false,
                solicited,
                override_: true,
            },
            target,
            target_mac: Some(interface.mac),
        },
    };
    Ok(Reply {
        ip,
        frame: Frame {
            destination: mac,
            source: interface.mac,
            vlan: frame.vlan,
            payload: Payload::Ndp(advertisement),
        },
    })
}

fn owned_on(ip: IpAddr, interface: &Interface, ownership: &Ownership) -> Result<(), Ignored> {
    let allowed = ownership.allowed(ip).ok_or(Ignored::NotOwned(ip))?;
    if allowed.permits(&interface.name) {
        Ok(())
    } else {
        Err(Ignored::InterfaceNotAllowed(ip))
    }
}
