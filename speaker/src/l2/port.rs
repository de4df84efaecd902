//! The interfaces the responders speak on: which ones the scan finds, and per interface two
//! packet sockets, one bound to ARP and one to IPv6, with the solicited-node multicast groups
//! of the IPv6 addresses it answers for.
//!
//! Sockets bound to one EtherType each, rather than one bound to every protocol, keep the
//! kernel from handing us all other traffic and, above all, from cloning every outgoing
//! packet for a tap, as it does for `tcpdump`.

use std::{
    collections::{BTreeMap, BTreeSet},
    io,
    net::{IpAddr, Ipv6Addr},
    task::{Context, Poll},
};

use metallb_l2::{
    Frame, Interface, MacAddr, Ownership, Payload, multicast_mac, solicited_node_multicast,
};
use nix::{ifaddrs::getifaddrs, net::if_::InterfaceFlags};
use socket2::SockFilter;
use tracing::warn;

use crate::sys::packet::{PacketSocket, Received};

/// An interface as the scan found it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Link {
    pub(super) ifindex: u32,
    pub(super) interface: Interface,
}

/// One line of `getifaddrs`, reduced to what the scan reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Entry {
    pub(super) name: String,
    pub(super) flags: InterfaceFlags,
    pub(super) address: EntryAddress,
}

/// The address of an [`Entry`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum EntryAddress {
    /// The link layer (`AF_PACKET`): index, ARP hardware type and MAC.
    Link {
        ifindex: u32,
        hardware_type: u16,
        mac: [u8; 6],
    },
    /// An IPv6 address.
    Inet6(Ipv6Addr),
    /// Anything else (IPv4 addresses, odd link layers).
    Other,
}

/// `ARPHRD_ETHER`: Ethernet and everything that looks like it (veth, bridges, bonds, VLANs).
const ARPHRD_ETHER: u16 = 1;

/// Which interfaces the driver may speak on, by name.
#[derive(Clone, Debug, Default)]
pub(super) struct InterfaceFilter {
    /// Only these; empty = any.
    pub(super) names: Vec<String>,
    /// Never these.
    pub(super) excluded: Vec<regex::Regex>,
}

impl InterfaceFilter {
    /// A filter from the names and the exclusion patterns (invalid ones are skipped).
    pub(super) fn new(names: Vec<String>, excluded: &[String]) -> Self {
        let excluded = excluded
            .iter()
            .filter_map(|pattern| match regex::Regex::new(pattern) {
                Ok(regex) => Some(regex),
                Err(error) => {
                    tracing::warn!(%pattern, %error, "l2 exclusion pattern ignored");
                    None
                }
            })
            .collect();
        InterfaceFilter { names, excluded }
    }

    /// Whether the interface `name` may be spoken on.
    pub(super) fn admits(&self, name: &str) -> bool {
        (self.names.is_empty() || self.names.iter().any(|n| n == name))
            && !self.excluded.iter().any(|pattern| pattern.is_match(name))
    }
}

/// Lists the interfaces to speak on: up, not loopback, Ethernet, and among `wanted` unless
/// that is empty; sorted by name.
pub(super) fn discover(wanted: &InterfaceFilter) -> nix::Result<Vec<Link>> {
    let entries = getifaddrs()?.map(|entry| Entry {
        address: match entry.address {
            Some(address) => {
                if let Some(link) = address.as_link_addr() {
                    match (u32::try_from(link.ifindex()), link.addr()) {
                        (Ok(ifindex), Some(mac)) if link.halen() == 6 => EntryAddress::Link {
                            ifindex,
                            hardware_type: link.hatype(),
                            mac,
                        },
                        _ => EntryAddress::Other,
                    }
                } else if let Some(inet6) = address.as_sockaddr_in6() {
                    EntryAddress::Inet6(inet6.ip())
                } else {
                    EntryAddress::Other
                }
            }
            None => EntryAddress::Other,
        },
        name: entry.interface_name,
        flags: entry.flags,
    });
    Ok(select(entries, wanted))
}

/// The pure part of [`discover`].
pub(super) fn select(
    entries: impl IntoIterator<Item = Entry>,
    wanted: &InterfaceFilter,
) -> Vec<Link> {
    let mut links = BTreeMap::new();
    let mut link_locals = BTreeMap::new();
    for entry in entries {
        if !entry.flags.contains(InterfaceFlags::IFF_UP)
            || entry.flags.contains(InterfaceFlags::IFF_LOOPBACK)
            || !wanted.admits(&entry.name)
        {
            continue;
        }
        match entry.address {
            EntryAddress::Link {
                ifindex,
                hardware_type: ARPHRD_ETHER,
                mac,
            } => {
                links.insert(entry.name, (ifindex, MacAddr(mac)));
            }
            EntryAddress::Inet6(ip) if ip.is_unicast_link_local() => {
                link_locals.entry(entry.name).or_insert(ip);
            }
            _ => {}
        }
    }
    links
        .into_iter()
        .map(|(name, (ifindex, mac))| Link {
            ifindex,
            interface: Interface {
                link_local: link_locals.get(&name).copied(),
                name,
                mac,
            },
        })
        .collect()
}

/// The multicast MACs to receive on interface `name`: the solicited-node groups of the owned
/// IPv6 addresses allowed there, each with how many of them share it.
pub(super) fn solicited_groups(ownership: &Ownership, name: &str) -> BTreeMap<MacAddr, usize> {
    let mut groups = BTreeMap::new();
    for (ip, allowed) in ownership.iter() {
        if let IpAddr::V6(ip) = ip
            && allowed.permits(name)
        {
            *groups
                .entry(multicast_mac(solicited_node_multicast(ip)))
                .or_insert(0) += 1;
        }
    }
    groups
}

/// EtherType of ARP.
const ETH_P_ARP: u16 = 0x0806;

/// EtherType of IPv6.
const ETH_P_IPV6: u16 = 0x86dd;

/// Lets through only what the responders read: ARP, and IPv6 packets whose next header is
/// ICMPv6 and whose ICMPv6 type is 135, Neighbor Solicitation. A frame too short for a load is
/// dropped by the kernel. So is a frame whose VLAN tag the NIC took off: it belongs to the
/// VLAN's own interface, and a reply from here would leave untagged.
const FILTER: [SockFilter; 11] = {
    const LDW_ABS: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
    const LDH_ABS: u16 = (libc::BPF_LD | libc::BPF_H | libc::BPF_ABS) as u16;
    const LDB_ABS: u16 = (libc::BPF_LD | libc::BPF_B | libc::BPF_ABS) as u16;
    const JEQ: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
    const RET: u16 = (libc::BPF_RET | libc::BPF_K) as u16;
    const VLAN_TAG_PRESENT: u32 = (libc::SKF_AD_OFF + libc::SKF_AD_VLAN_TAG_PRESENT) as u32;
    [
        SockFilter::new(LDW_ABS, 0, 0, VLAN_TAG_PRESENT),
        SockFilter::new(JEQ, 8, 0, 1),      // tag taken off: drop
        SockFilter::new(LDH_ABS, 0, 0, 12), // EtherType
        SockFilter::new(JEQ, 5, 0, ETH_P_ARP as u32), // ARP: accept
        SockFilter::new(JEQ, 0, 5, ETH_P_IPV6 as u32), // not IPv6: drop
        SockFilter::new(LDB_ABS, 0, 0, 20), // IPv6 next header
        SockFilter::new(JEQ, 0, 3, 58),     // not ICMPv6: drop
        SockFilter::new(LDB_ABS, 0, 0, 54), // ICMPv6 type
        SockFilter::new(JEQ, 0, 1, 135),    // not a solicitation: drop
        SockFilter::new(RET, 0, 0, u32::MAX),
        SockFilter::new(RET, 0, 0, 0),
    ]
};

/// An interface with its open sockets.
#[derive(Debug)]
pub(super) struct Port {
    pub(super) link: Link,
    arp: PacketSocket,
    ndp: PacketSocket,
    /// The multicast MACs the NDP socket has joined.
    joined: BTreeSet<MacAddr>,
}

impl Port {
    /// Opens the interface's sockets; they join no group yet. Needs a tokio runtime.
    pub(super) fn open(link: Link) -> io::Result<Self> {
        Ok(Self {
            arp: PacketSocket::open(link.ifindex, ETH_P_ARP, &FILTER)?,
            ndp: PacketSocket::open(link.ifindex, ETH_P_IPV6, &FILTER)?,
            link,
            joined: BTreeSet::new(),
        })
    }

    /// The interface name.
    pub(super) fn name(&self) -> &str {
        &self.link.interface.name
    }

    /// Joins the groups `ownership` needs here and leaves the others. A group that fails to
    /// join is tried again on the next call.
    pub(super) fn sync_groups(&mut self, ownership: &Ownership) {
        let wanted = solicited_groups(ownership, self.name());
        let stale: Vec<MacAddr> = self
            .joined
            .iter()
            .filter(|group| !wanted.contains_key(group))
            .copied()
            .collect();
        for group in stale {
            self.joined.remove(&group);
            if let Err(error) = self.ndp.leave(group.0) {
                warn!(interface = %self.link.interface.name, %group, %error, "l2 cannot leave multicast group");
            }
        }
        for group in wanted.into_keys() {
            if self.joined.contains(&group) {
                continue;
            }
            match self.ndp.join(group.0) {
                Ok(()) => {
                    self.joined.insert(group);
                }
                Err(error) => {
                    warn!(interface = %self.link.interface.name, %group, %error, "l2 cannot join multicast group");
                }
            }
        }
    }

    /// Sends one frame on the socket of its EtherType; a full socket buffer is an error, not a
    /// wait.
    pub(super) fn send(&self, frame: &Frame) -> io::Result<()> {
        let socket = match frame.payload {
            Payload::Arp(_) => &self.arp,
            Payload::Ndp(_) => &self.ndp,
        };
        socket.send(&frame.encode())
    }

    /// Reads one frame from the ARP (`ndp` false) or the NDP socket if one is waiting, or
    /// registers the task's waker.
    pub(super) fn poll_recv(
        &self,
        ndp: bool,
        buffer: &mut [u8],
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<Received>> {
        let socket = if ndp { &self.ndp } else { &self.arp };
        socket.poll_recv(buffer, cx)
    }
}

#[cfg(test)]
mod tests {
    use metallb_l2::AllowedInterfaces;

    use super::*;

    fn entry(name: &str, flags: InterfaceFlags, address: EntryAddress) -> Entry {
        Entry {
            name: name.into(),
            flags,
            address,
        }
    }

    fn ethernet(ifindex: u32, last: u8) -> EntryAddress {
        EntryAddress::Link {
            ifindex,
            hardware_type: ARPHRD_ETHER,
            mac: [0x02, 0x4e, 0x4c, 0, 0, last],
        }
    }

    const UP: InterfaceFlags = InterfaceFlags::IFF_UP;

    #[test]
    fn the_scan_keeps_up_ethernet_interfaces_with_their_link_local_address() {
        let link_local: Ipv6Addr = "fe80::4e:4cff:fe00:11".parse().unwrap();
        let entries = [
            entry("lo", UP | InterfaceFlags::IFF_LOOPBACK, ethernet(1, 0)),
            entry("eth0", UP, ethernet(2, 0x11)),
            entry(
                "eth0",
                UP,
                EntryAddress::Inet6("fd00:250::11".parse().unwrap()),
            ),
            entry("eth0", UP, EntryAddress::Inet6(link_local)),
            entry("eth1", InterfaceFlags::empty(), ethernet(3, 0x12)),
            entry(
                "wg0",
                UP,
                EntryAddress::Link {
                    ifindex: 4,
                    hardware_type: 65534,
                    mac: [0; 6],
                },
            ),
            entry("eth2", UP, ethernet(5, 0x13)),
        ];
        let links = select(entries.clone(), &InterfaceFilter::default());
        assert_eq!(
            links,
            [
                Link {
                    ifindex: 2,
                    interface: Interface {
                        name: "eth0".into(),
                        mac: MacAddr([0x02, 0x4e, 0x4c, 0, 0, 0x11]),
                        link_local: Some(link_local),
                    },
                },
                Link {
                    ifindex: 5,
                    interface: Interface {
                        name: "eth2".into(),
                        mac: MacAddr([0x02, 0x4e, 0x4c, 0, 0, 0x13]),
                        link_local: None,
                    },
                },
            ]
        );
        let named = InterfaceFilter::new(vec!["eth2".to_owned(), "eth1".to_owned()], &[]);
        assert_eq!(select(entries.clone(), &named), links[1..]);
        let excluded = InterfaceFilter::new(Vec::new(), &["^eth0$".to_owned(), "(".to_owned()]);
        assert_eq!(select(entries, &excluded), links[1..]);
    }

    #[test]
    fn addresses_sharing_a_solicited_node_group_keep_it_until_the_last_is_released() {
        let mut ownership = Ownership::new();
        let first: IpAddr = "fd00:250::201".parse().unwrap();
        let second: IpAddr = "fd00:251::201".parse().unwrap();
        let group = MacAddr([0x33, 0x33, 0xff, 0x00, 0x02, 0x01]);
        ownership.insert(first, AllowedInterfaces::All);
        ownership.insert(second, ["eth0"].into_iter().collect());
        ownership.insert("192.168.250.201".parse().unwrap(), AllowedInterfaces::All);
        assert_eq!(
            solicited_groups(&ownership, "eth0"),
            BTreeMap::from([(group, 2)])
        );
        assert_eq!(
            solicited_groups(&ownership, "eth1"),
            BTreeMap::from([(group, 1)])
        );
        ownership.remove(first);
        assert_eq!(
            solicited_groups(&ownership, "eth0"),
            BTreeMap::from([(group, 1)])
        );
        assert!(solicited_groups(&ownership, "eth1").is_empty());
    }
}
