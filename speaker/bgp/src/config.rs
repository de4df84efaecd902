//! The settings of a session and the addresses it announces from.

use std::{
    net::{Ipv4Addr, Ipv6Addr},
    time::Duration,
};

/// Which ASN the peer must announce.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PeerAsn {
    /// Exactly this one.
    Exact(u32),
    /// Ours: an iBGP session.
    Internal,
    /// Any other than ours: an eBGP session.
    External,
}

/// Settings of one session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// Our ASN.
    pub local_asn: u32,
    /// The ASN the peer must have.
    pub peer_asn: PeerAsn,
    /// Our BGP Identifier.
    pub router_id: Ipv4Addr,
    /// Proposed hold time, in whole seconds: zero disables keepalives and the hold timer, one
    /// or two seconds are raised to three (RFC 4271 §4.2 forbids them).
    pub hold_time: Duration,
    /// Longest wait between connection attempts; the wait doubles from one second up to it.
    pub connect_retry_max: Duration,
    /// Graceful restart (RFC 4724) with this restart time, in whole seconds up to 4095; `None`
    /// does not offer it.
    pub graceful_restart: Option<Duration>,
}

impl Config {
    /// MetalLB's defaults: hold time 90 s, back-off up to 120 s.
    pub fn new(local_asn: u32, peer_asn: PeerAsn, router_id: Ipv4Addr) -> Self {
        Self {
            local_asn,
            peer_asn,
            router_id,
            hold_time: Duration::from_secs(90),
            connect_retry_max: Duration::from_secs(120),
            graceful_restart: None,
        }
    }

    pub(crate) fn hold_seconds(&self) -> u16 {
        match self.hold_time.as_secs() {
            1 | 2 => 3,
            seconds => u16::try_from(seconds).unwrap_or(u16::MAX),
        }
    }
}

/// Our addresses on the connection, from which NEXT_HOP is taken. A family without an address
/// is not announced.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NextHops {
    /// NEXT_HOP of IPv4 prefixes, normally the local address of an IPv4 connection.
    pub ipv4: Option<Ipv4Addr>,
    /// Global next hop of IPv6 prefixes.
    pub ipv6: Option<Ipv6Addr>,
    /// Link-local next hop of IPv6 prefixes, for a peer on the same link.
    pub ipv6_link_local: Option<Ipv6Addr>,
}
