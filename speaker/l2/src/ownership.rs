//! What this node owns: the IPs it won the election for, each with the interfaces its
//! L2Advertisements allow, and the interfaces it can speak on.

use std::{
    collections::{BTreeMap, BTreeSet},
    net::{IpAddr, Ipv6Addr},
};

use crate::frame::MacAddr;

/// An interface the speaker answers and announces on, as its driver's interface scan found it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Interface {
    /// The kernel's name, matched against the L2Advertisements' `interfaces`.
    pub name: String,
    /// The interface's own MAC: replies and announcements carry it, never a virtual one.
    pub mac: MacAddr,
    /// The IPv6 link-local address, the source of our advertisements. Without one the
    /// interface gets no NDP, as in MetalLB.
    pub link_local: Option<Ipv6Addr>,
}

/// The interfaces an owned IP may be answered and announced on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AllowedInterfaces {
    /// Every interface: no matching L2Advertisement names interfaces.
    All,
    /// Only these, by name: the union of the matching L2Advertisements' `interfaces`.
    Only(BTreeSet<String>),
}

impl AllowedInterfaces {
    /// Whether the interface with this name is allowed.
    pub fn permits(&self, interface: &str) -> bool {
        match self {
            Self::All => true,
            Self::Only(names) => names.contains(interface),
        }
    }
}

impl<S: Into<String>> FromIterator<S> for AllowedInterfaces {
    /// The names of the listed interfaces; an empty list allows none.
    fn from_iter<I: IntoIterator<Item = S>>(names: I) -> Self {
        Self::Only(names.into_iter().map(Into::into).collect())
    }
}

/// The IPs this node currently owns, with the interfaces allowed for each.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ownership {
    ips: BTreeMap<IpAddr, AllowedInterfaces>,
}

impl Ownership {
    /// Owns nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes an IP, or changes its interfaces. Returns the interfaces it had if it was owned.
    pub fn insert(&mut self, ip: IpAddr, allowed: AllowedInterfaces) -> Option<AllowedInterfaces> {
        self.ips.insert(ip, allowed)
    }

    /// Gives an IP up. Returns its interfaces if it was owned.
    pub fn remove(&mut self, ip: IpAddr) -> Option<AllowedInterfaces> {
        self.ips.remove(&ip)
    }

    /// The interfaces allowed for an IP, or `None` if this node does not own it.
    pub fn allowed(&self, ip: IpAddr) -> Option<&AllowedInterfaces> {
        self.ips.get(&ip)
    }

    /// The owned IPs in address order, with their interfaces.
    pub fn iter(&self) -> impl Iterator<Item = (IpAddr, &AllowedInterfaces)> {
        self.ips.iter().map(|(ip, allowed)| (*ip, allowed))
    }

    /// How many IPs are owned.
    pub fn len(&self) -> usize {
        self.ips.len()
    }

    /// Whether nothing is owned.
    pub fn is_empty(&self) -> bool {
        self.ips.is_empty()
    }
}
