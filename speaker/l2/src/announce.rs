//! Gratuitous ARP and unsolicited Neighbor Advertisements when this node takes an IP over, as
//! a sans-IO timer table in the quinn-proto shape.
//!
//! The schedule is MetalLB's (the reference's B.3): a burst at once, then one every 1.1 s
//! (past Linux's 1 s `locktime`, which would drop a second update sooner) until 5 s after the
//! last time the IP was asserted, so 5 bursts for one takeover. Asserting an owned IP again
//! within that window extends it without an extra burst; asserting it after the window starts
//! over with a burst at once. MetalLB stops there, and switches that age their forwarding
//! tables faster than hosts refresh ARP then lose the IP (metallb#2910), so an optional
//! refresh period keeps sending one burst per period for as long as the IP is owned.
//! Releasing an IP sends nothing: the new owner's bursts move the traffic.
//!
//! A burst is, on every interface the IP's advertisements allow: for IPv4 a broadcast ARP
//! request and a broadcast ARP reply, both with sender IP = target IP = the service IP
//! (MetalLB sends both because some devices learn from only one form); for IPv6 one
//! advertisement to all-nodes from the interface's link-local address with only the Override
//! flag set and the interface's MAC as target link-layer address.

use std::{
    collections::{BTreeMap, BTreeSet, VecDeque},
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    time::{Duration, Instant},
};

use crate::{
    arp::{ArpOperation, ArpPacket},
    frame::{Frame, MacAddr, Payload},
    ndp::{ALL_NODES, AdvertisementFlags, NdpMessage, NdpPacket, multicast_mac},
    ownership::{AllowedInterfaces, Interface, Ownership},
};

/// The shortest period between two bursts of an IP. A zero period would keep the deadline at
/// `now` forever and spin the driver, so shorter settings count as this.
const MIN_PERIOD: Duration = Duration::from_millis(1);

/// When bursts are sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Schedule {
    /// Time between bursts after a takeover: 1.1 s.
    pub interval: Duration,
    /// How long after the last assertion bursts go on: 5 s.
    pub window: Duration,
    /// Time between bursts once the window is over, for as long as the IP is owned; `None`
    /// (the default, MetalLB's behaviour) sends nothing more.
    pub refresh: Option<Duration>,
}

impl Default for Schedule {
    fn default() -> Self {
        Self {
            interval: Duration::from_millis(1100),
            window: Duration::from_secs(5),
            refresh: None,
        }
    }
}

/// A frame to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transmit {
    /// Name of the interface to send on.
    pub interface: String,
    /// The announced IP, for `metallb_layer2_gratuitous_sent`.
    pub ip: IpAddr,
    /// The gratuitous ARP or unsolicited advertisement.
    pub frame: Frame,
}

/// Timing of one owned IP.
#[derive(Clone, Copy, Debug)]
struct Timing {
    last_burst: Instant,
    /// Bursts come every `interval` while earlier than this.
    window_end: Instant,
    /// The entry of this IP in the timer table, if another burst is due.
    next: Option<Instant>,
}

/// The IPs this node owns and the announcements they are due.
///
/// The driver calls [`take_over`](Self::take_over) and [`release`](Self::release) as the
/// election goes, [`set_interfaces`](Self::set_interfaces) after each interface scan, and
/// [`handle_timeout`](Self::handle_timeout) once [`poll_timeout`](Self::poll_timeout) has
/// passed; after each it sends what [`poll_transmit`](Self::poll_transmit) returns. The
/// responder reads [`ownership`](Self::ownership).
#[derive(Debug)]
pub struct Announcer {
    schedule: Schedule,
    interfaces: Vec<Interface>,
    ownership: Ownership,
    timings: BTreeMap<IpAddr, Timing>,
    /// Due bursts in time order; IPs break ties so that equal deadlines are distinct entries.
    timers: BTreeSet<(Instant, IpAddr)>,
    queue: VecDeque<Transmit>,
}

impl Announcer {
    /// Owns nothing, knows no interface.
    pub fn new(schedule: Schedule) -> Self {
        Self {
            schedule,
            interfaces: Vec::new(),
            ownership: Ownership::new(),
            timings: BTreeMap::new(),
            timers: BTreeSet::new(),
            queue: VecDeque::new(),
        }
    }

    /// Replaces the interfaces to announce on; later bursts use the new set.
    pub fn set_interfaces(&mut self, interfaces: Vec<Interface>) {
        self.interfaces = interfaces;
    }

    /// Asserts that this node owns `ip` on `allowed` interfaces: the election picked it, or
    /// picked it again. A new IP, or one whose window is over, gets a burst at once.
    pub fn take_over(&mut self, ip: IpAddr, allowed: AllowedInterfaces, now: Instant) {
        self.ownership.insert(ip, allowed);
        let window_end = now + self.schedule.window;
        match self.timings.get(&ip).copied() {
            Some(timing) if now < timing.window_end => {
                self.reschedule(
                    ip,
                    Timing {
                        window_end,
                        ..timing
                    },
                );
            }
            _ => {
                self.burst(ip);
                self.reschedule(
                    ip,
                    Timing {
                        last_burst: now,
                        window_end,
                        next: None,
                    },
                );
            }
        }
    }

    /// Gives `ip` up: no further announcement, and queued frames for it are dropped. Returns
    /// whether it was owned.
    pub fn release(&mut self, ip: IpAddr) -> bool {
        if let Some(Timing {
            next: Some(next), ..
        }) = self.timings.remove(&ip)
        {
            self.timers.remove(&(next, ip));
        }
        self.queue.retain(|transmit| transmit.ip != ip);
        self.ownership.remove(ip).is_some()
    }

    /// The owned IPs with their interfaces, for the responder.
    pub fn ownership(&self) -> &Ownership {
        &self.ownership
    }

    /// Sends every burst due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(&(at, ip)) = self.timers.first() {
            if at > now {
                break;
            }
            self.timers.pop_first();
            let Some(timing) = self.timings.get(&ip).copied() else {
                continue;
            };
            self.burst(ip);
            // Counting from `now`, not from the deadline, keeps a late driver from bursting
            // twice in a row to catch up.
            self.reschedule(
                ip,
                Timing {
                    last_burst: now,
                    next: None,
                    ..timing
                },
            );
        }
    }

    /// The next frame to send, if any.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.queue.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) is next due, if ever.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.first().map(|&(at, _)| at)
    }

    /// When the next burst for `ip` is due, if it is owned and one is.
    pub fn next_announcement(&self, ip: IpAddr) -> Option<Instant> {
        self.timings.get(&ip).and_then(|timing| timing.next)
    }

    /// Stores `timing` for `ip` with its next deadline, replacing the old timer entry.
    fn reschedule(&mut self, ip: IpAddr, mut timing: Timing) {
        if let Some(old) = self.timings.get(&ip).and_then(|old| old.next) {
            self.timers.remove(&(old, ip));
        }
        let fast = timing.last_burst + self.schedule.interval.max(MIN_PERIOD);
        timing.next = if fast < timing.window_end {
            Some(fast)
        } else {
            self.schedule
                .refresh
                .map(|period| timing.last_burst + period.max(MIN_PERIOD))
        };
        if let Some(next) = timing.next {
            self.timers.insert((next, ip));
        }
        self.timings.insert(ip, timing);
    }

    /// Queues one burst for `ip` on every allowed interface.
    fn burst(&mut self, ip: IpAddr) {
        let Some(allowed) = self.ownership.allowed(ip) else {
            return;
        };
        for interface in &self.interfaces {
            if !allowed.permits(&interface.name) {
                continue;
            }
            let frames = match ip {
                IpAddr::V4(v4) => gratuitous_arp(v4, interface.mac).to_vec(),
                // As in MetalLB, an interface without a link-local address gets no NDP.
                IpAddr::V6(v6) => interface
                    .link_local
                    .map(|link_local| unsolicited_advertisement(v6, interface.mac, link_local))
                    .into_iter()
                    .collect(),
            };
            self.queue.extend(frames.into_iter().map(|frame| Transmit {
                interface: interface.name.clone(),
                ip,
                frame,
            }));
        }
    }
}

/// The ARP request and reply that announce `ip` at `mac` to the whole segment.
fn gratuitous_arp(ip: Ipv4Addr, mac: MacAddr) -> [Frame; 2] {
    [ArpOperation::Request, ArpOperation::Reply].map(|operation| Frame {
        destination: MacAddr::BROADCAST,
        source: mac,
        vlan: None,
        payload: Payload::Arp(ArpPacket {
            operation,
            sender_mac: mac,
            sender_ip: ip,
            target_mac: MacAddr::BROADCAST,
            target_ip: ip,
        }),
    })
}

/// The advertisement that tells all nodes `ip` is now at `mac` (RFC 4861 §7.2.6).
fn unsolicited_advertisement(ip: Ipv6Addr, mac: MacAddr, link_local: Ipv6Addr) -> Frame {
    Frame {
        destination: multicast_mac(ALL_NODES),
        source: mac,
        vlan: None,
        payload: Payload::Ndp(NdpPacket {
            source: link_local,
            destination: ALL_NODES,
            message: NdpMessage::NeighborAdvertisement {
                flags: AdvertisementFlags {
                    router: false,
                    solicited: false,
                    override_: true,
                },
                target: ip,
                target_mac: Some(mac),
            },
        }),
    }
}
