//! The outbound RIB: the prefixes this speaker wants the peer to have, what the peer was
//! last sent, and the UPDATEs that turn one into the other.
//!
//! The difference is computed lazily, when the session is about to transmit, so a burst of
//! announcements (10,000 service addresses after a restart) leaves as a few full UPDATEs
//! instead of one per prefix. Prefixes with identical attributes share an UPDATE.

use std::{
    collections::{BTreeMap, BTreeSet},
    mem,
    net::{Ipv4Addr, Ipv6Addr},
};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use crate::{
    message::{AsWidth, MAX_MESSAGE_LEN, Message},
    update::{
        AsSegment, Community, LargeCommunity, MpReach, Origin, PathAttributes, SegmentKind, Update,
        prefix_wire_len,
    },
};

/// LOCAL_PREF sent to iBGP peers for routes without one (the usual default).
pub const DEFAULT_LOCAL_PREF: u32 = 100;

/// What one prefix is announced with. ORIGIN (IGP), AS_PATH and NEXT_HOP come from the session.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Route {
    /// LOCAL_PREF, sent to iBGP peers only; [`DEFAULT_LOCAL_PREF`] when unset.
    pub local_pref: Option<u32>,
    /// Standard communities, sorted and without repeats.
    pub communities: BTreeSet<Community>,
    /// Large communities, sorted and without repeats.
    pub large_communities: BTreeSet<LargeCommunity>,
}

/// What the established session tells the RIB about the peer.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Peer {
    pub local_asn: u32,
    pub ibgp: bool,
    pub width: AsWidth,
    /// NEXT_HOP for IPv4 prefixes; `None` when IPv4 unicast was not negotiated or we have no
    /// IPv4 address on the session, and then IPv4 prefixes are not sent.
    pub ipv4: Option<Ipv4Addr>,
    /// Global and link-local next hop for IPv6 prefixes, under the same rule.
    pub ipv6: Option<(Ipv6Addr, Option<Ipv6Addr>)>,
}

impl Peer {
    fn accepts(&self, prefix: &IpNet) -> bool {
        match prefix {
            IpNet::V4(_) => self.ipv4.is_some(),
            IpNet::V6(_) => self.ipv6.is_some(),
        }
    }

    fn attributes(&self, route: &Route) -> PathAttributes {
        PathAttributes {
            origin: Some(Origin::Igp),
            as_path: Some(if self.ibgp {
                Vec::new()
            } else {
                vec![AsSegment {
                    kind: SegmentKind::Sequence,
                    asns: vec![self.local_asn],
                }]
            }),
            local_pref: self
                .ibgp
                .then(|| route.local_pref.unwrap_or(DEFAULT_LOCAL_PREF)),
            communities: route.communities.iter().copied().collect(),
            large_communities: route.large_communities.iter().copied().collect(),
            ..PathAttributes::default()
        }
    }
}

/// Desired and advertised prefixes of one session.
#[derive(Clone, Debug, Default)]
pub(crate) struct Rib {
    desired: BTreeMap<IpNet, Route>,
    /// Exactly what the peer holds from us, with the attributes it was sent.
    advertised: BTreeMap<IpNet, Route>,
    graceful_shutdown: bool,
    /// Whether `desired` may differ from `advertised`; saves a full comparison per poll.
    dirty: bool,
}

impl Rib {
    pub fn announce(&mut self, prefix: IpNet, route: Route) {
        let prefix = prefix.trunc();
        if self.desired.get(&prefix) != Some(&route) {
            self.desired.insert(prefix, route);
            self.dirty = true;
        }
    }

    pub fn withdraw(&mut self, prefix: IpNet) {
        self.dirty |= self.desired.remove(&prefix.trunc()).is_some();
    }

    pub fn set_graceful_shutdown(&mut self, on: bool) {
        self.dirty |= mem::replace(&mut self.graceful_shutdown, on) != on;
    }

    pub fn graceful_shutdown(&self) -> bool {
        self.graceful_shutdown
    }

    pub fn desired_len(&self) -> usize {
        self.desired.len()
    }

    pub fn advertised_len(&self) -> usize {
        self.advertised.len()
    }

    /// The connection is gone, and with it every route the peer had from us.
    pub fn forget_advertised(&mut self) {
        self.advertised.clear();
        self.dirty = true;
    }

    /// The UPDATEs that bring the peer from what it has to what we want: withdrawals first,
    /// then announcements grouped by attributes, each message at most 4096 bytes.
    pub fn flush(&mut self, peer: &Peer) -> Vec<Update> {
        if !mem::take(&mut self.dirty) {
            return Vec::new();
        }
        let wanted = self
            .desired
            .iter()
            .filter(|(prefix, _)| peer.accepts(prefix))
            .map(|(prefix, route)| {
                let mut route = route.clone();
                if self.graceful_shutdown {
                    route.communities.insert(Community::GRACEFUL_SHUTDOWN);
                }
                (*prefix, route)
            })
            .collect();
        self.advertise(peer, wanted)
    }

    /// The UPDATEs that withdraw everything the peer has from us; what we want announced
    /// stays, for the next connection.
    pub fn withdraw_all(&mut self, peer: &Peer) -> Vec<Update> {
        self.dirty = true;
        self.advertise(peer, BTreeMap::new())
    }

    /// The UPDATEs that replace what the peer has with `wanted`, which it then has.
    fn advertise(&mut self, peer: &Peer, wanted: BTreeMap<IpNet, Route>) -> Vec<Update> {
        let (mut gone_v4, mut gone_v6) = (Vec::new(), Vec::new());
        for prefix in self.advertised.keys().filter(|p| !wanted.contains_key(p)) {
            match prefix {
                IpNet::V4(net) => gone_v4.push(*net),
                IpNet::V6(net) => gone_v6.push(*net),
            }
        }
        let mut groups_v4: BTreeMap<&Route, Vec<Ipv4Net>> = BTreeMap::new();
        let mut groups_v6: BTreeMap<&Route, Vec<Ipv6Net>> = BTreeMap::new();
        for (prefix, route) in &wanted {
            if self.advertised.get(prefix) == Some(route) {
                continue;
            }
            match prefix {
                IpNet::V4(net) => groups_v4.entry(route).or_default().push(*net),
                IpNet::V6(net) => groups_v6.entry(route).or_default().push(*net),
            }
        }

        let width = peer.width;
        let mut updates = pack(&Update::default(), width, &gone_v4, |update, net| {
            update.withdrawn.push(net);
        });
        let template = Update {
            attributes: PathAttributes {
                mp_unreach: Some(Vec::new()),
                ..PathAttributes::default()
            },
            ..Update::default()
        };
        updates.extend(pack(&template, width, &gone_v6, |update, net| {
            if let Some(withdrawn) = &mut update.attributes.mp_unreach {
                withdrawn.push(net);
            }
        }));
        for (route, prefixes) in groups_v4 {
            let template = Update {
                attributes: PathAttributes {
                    next_hop: peer.ipv4,
                    ..peer.attributes(route)
                },
                ..Update::default()
            };
            updates.extend(pack(&template, width, &prefixes, |update, net| {
                update.nlri.push(net);
            }));
        }
        if let Some((next_hop, link_local)) = peer.ipv6 {
            for (route, prefixes) in groups_v6 {
                let template = Update {
                    attributes: PathAttributes {
                        mp_reach: Some(MpReach {
                            next_hop,
                            link_local,
                            nlri: Vec::new(),
                        }),
                        ..peer.attributes(route)
                    },
                    ..Update::default()
                };
                updates.extend(pack(&template, width, &prefixes, |update, net| {
                    if let Some(reach) = &mut update.attributes.mp_reach {
                        reach.nlri.push(net);
                    }
                }));
            }
        }
        self.advertised = wanted;
        updates
    }
}

/// A prefix type the packer can size.
trait WirePrefix: Copy {
    fn length(&self) -> u8;
}

impl WirePrefix for Ipv4Net {
    fn length(&self) -> u8 {
        self.prefix_len()
    }
}

impl WirePrefix for Ipv6Net {
    fn length(&self) -> u8 {
        self.prefix_len()
    }
}

/// Copies of `template`, each filled by `add` with as many of `prefixes` as fit in one message.
fn pack<P: WirePrefix>(
    template: &Update,
    width: AsWidth,
    prefixes: &[P],
    add: impl Fn(&mut Update, P),
) -> Vec<Update> {
    // One spare byte: an MP attribute that grows past 255 bytes takes a 4-byte header.
    let budget = MAX_MESSAGE_LEN
        - Message::Update(Box::new(template.clone()))
            .encode(width)
            .len()
        - 1;
    let mut updates = Vec::new();
    let mut current = template.clone();
    let mut used = 0;
    for &prefix in prefixes {
        let size = prefix_wire_len(prefix.length());
        if used + size > budget {
            updates.push(mem::replace(&mut current, template.clone()));
            used = 0;
        }
        add(&mut current, prefix);
        used += size;
    }
    if used > 0 {
        updates.push(current);
    }
    updates
}
