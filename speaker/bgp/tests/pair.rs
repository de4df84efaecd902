//! Two sessions wired to each other in process, with time driven by the test: establishment,
//! timers, route exchange and teardown as a peer sees them.

#![expect(
    clippy::disallowed_methods,
    reason = "simulated time starts at Instant::now()"
)]

use std::{
    collections::BTreeSet,
    net::{Ipv4Addr, Ipv6Addr},
    time::{Duration, Instant},
};

use ipnet::IpNet;

use metallb_bgp::{
    AsSegment, AsWidth, Cease, Community, Config, DownReason, Event, LargeCommunity, Message,
    NextHops, Notification, PeerAsn, Route, SegmentKind, Session, State, Update,
};

const SPEAKER_ASN: u32 = 64500;
const ROUTER_ASN: u32 = 64512;

/// The speaker under test (`a`) and a router (`b`), connected by a simulated TCP connection.
struct Pair {
    now: Instant,
    a: Session,
    b: Session,
    /// Whether bytes reach the other side; false simulates a silent peer.
    link_up: bool,
    connected: bool,
    events_a: Vec<Event>,
    events_b: Vec<Event>,
    /// Every UPDATE the router received.
    updates_to_b: Vec<Update>,
}

impl Pair {
    fn new(router_asn: u32, router_hold: u64) -> Self {
        let speaker = Config::new(
            SPEAKER_ASN,
            PeerAsn::Exact(router_asn),
            Ipv4Addr::new(192, 168, 250, 13),
        );
        let mut router = Config::new(
            router_asn,
            PeerAsn::Exact(SPEAKER_ASN),
            Ipv4Addr::new(192, 168, 250, 1),
        );
        router.hold_time = Duration::from_secs(router_hold);
        Self {
            now: Instant::now(),
            a: Session::new(speaker),
            b: Session::new(router),
            link_up: true,
            connected: false,
            events_a: Vec::new(),
            events_b: Vec::new(),
            updates_to_b: Vec::new(),
        }
    }

    /// An eBGP pair, started and pumped until both sides are Established.
    fn established() -> Self {
        let mut pair = Self::new(ROUTER_ASN, 9);
        pair.a.start();
        pair.b.start();
        pair.pump();
        assert_eq!(pair.a.state(), State::Established);
        assert_eq!(pair.b.state(), State::Established);
        pair
    }

    /// Delivers bytes and events until nothing moves.
    fn pump(&mut self) {
        loop {
            let mut moved = false;
            while let Some(bytes) = self.a.poll_transmit(self.now) {
                moved = true;
                if self.connected && self.link_up {
                    if let Ok(Message::Update(update)) = Message::parse(&bytes, AsWidth::Four) {
                        self.updates_to_b.push(*update);
                    }
                    self.b.handle_bytes(self.now, &bytes);
                }
            }
            while let Some(bytes) = self.b.poll_transmit(self.now) {
                moved = true;
                if self.connected && self.link_up {
                    self.a.handle_bytes(self.now, &bytes);
                }
            }
            let (mut dial, mut close) = (false, false);
            while let Some(event) = self.a.poll_event() {
                moved = true;
                dial |= event == Event::Dial;
                close |= matches!(event, Event::Close(_));
                self.events_a.push(event);
            }
            while let Some(event) = self.b.poll_event() {
                moved = true;
                dial |= event == Event::Dial;
                close |= matches!(event, Event::Close(_));
                self.events_b.push(event);
            }
            if close && self.connected {
                self.connected = false;
                self.a.handle_closed(self.now);
                self.b.handle_closed(self.now);
            } else if dial && !self.connected && self.link_up {
                self.connected = true;
                self.a.handle_connected(
                    self.now,
                    NextHops {
                        ipv4: Some(Ipv4Addr::new(192, 168, 250, 13)),
                        ipv6: Some("fd00:250::13".parse().unwrap()),
                        ipv6_link_local: None,
                    },
                );
                self.b.handle_connected(
                    self.now,
                    NextHops {
                        ipv4: Some(Ipv4Addr::new(192, 168, 250, 1)),
                        ..NextHops::default()
                    },
                );
            }
            if !moved {
                return;
            }
        }
    }

    /// Moves time forward, running every timer that falls due on the way.
    fn advance(&mut self, by: Duration) {
        let until = self.now + by;
        self.pump();
        while let Some(at) = [self.a.poll_timeout(), self.b.poll_timeout()]
            .into_iter()
            .flatten()
            .min()
            .filter(|at| *at <= until)
        {
            self.now = self.now.max(at);
            self.a.handle_timeout(self.now);
            self.b.handle_timeout(self.now);
            self.pump();
        }
        self.now = until;
    }

    /// Prefixes the router was last told are reachable.
    fn router_view(&self) -> BTreeSet<IpNet> {
        let mut view = BTreeSet::new();
        for update in &self.updates_to_b {
            let attributes = &update.attributes;
            for net in &update.withdrawn {
                view.remove(&IpNet::V4(*net));
            }
            for net in attributes.mp_unreach.iter().flatten() {
                view.remove(&IpNet::V6(*net));
            }
            view.extend(update.nlri.iter().map(|net| IpNet::V4(*net)));
            if let Some(reach) = &attributes.mp_reach {
                view.extend(reach.nlri.iter().map(|net| IpNet::V6(*net)));
            }
        }
        view
    }
}

fn net(text: &str) -> IpNet {
    text.parse().unwrap()
}

fn route(communities: &[Community]) -> Route {
    Route {
        communities: communities.iter().copied().collect(),
        ..Route::default()
    }
}

#[test]
fn sessions_establish_and_agree_on_the_smaller_hold_time() {
    let pair = Pair::established();
    assert_eq!(pair.events_a, vec![Event::Dial, Event::Established]);
    assert_eq!(pair.events_b, vec![Event::Dial, Event::Established]);
    assert_eq!(pair.a.negotiated_hold_time(), Some(Duration::from_secs(9)));
    assert_eq!(pair.b.negotiated_hold_time(), Some(Duration::from_secs(9)));
}

#[test]
fn keepalives_every_third_of_the_hold_time_keep_the_session_up() {
    let mut pair = Pair::established();
    pair.advance(Duration::from_secs(300));
    assert_eq!(pair.a.state(), State::Established);
    assert_eq!(pair.events_a.len(), 2, "{:?}", pair.events_a);
}

#[test]
fn hold_timer_expiry_tears_both_sides_down() {
    let mut pair = Pair::established();
    pair.link_up = false;
    pair.advance(Duration::from_secs(9));
    let down = Event::Down(DownReason::HoldTimerExpired);
    assert!(pair.events_a.contains(&down), "{:?}", pair.events_a);
    assert!(pair.events_b.contains(&down), "{:?}", pair.events_b);
    assert_eq!(pair.a.state(), State::Active);
}

#[test]
fn the_session_comes_back_after_the_back_off_with_the_full_table() {
    let mut pair = Pair::established();
    pair.a.announce(net("192.168.250.220/32"), Route::default());
    pair.pump();
    pair.link_up = false;
    pair.advance(Duration::from_secs(10));
    assert_eq!(pair.a.advertised_prefixes(), 0);
    pair.updates_to_b.clear();
    pair.link_up = true;
    pair.advance(Duration::from_secs(5));
    assert_eq!(pair.a.state(), State::Established);
    assert_eq!(
        pair.router_view(),
        BTreeSet::from([net("192.168.250.220/32")])
    );
}

#[test]
fn prefixes_announced_by_the_speaker_are_parsed_by_the_router() {
    let mut pair = Pair::established();
    let mut attributes = route(&[Community::new(64500, 300)]);
    attributes.large_communities.insert(LargeCommunity {
        global_admin: 64500,
        local_data_1: 1,
        local_data_2: 2,
    });
    attributes.local_pref = Some(300);
    pair.a
        .announce(net("192.168.250.220/32"), attributes.clone());
    pair.a.announce(net("fd00:250::220/128"), attributes);
    pair.pump();
    assert_eq!(pair.b.state(), State::Established);
    assert_eq!(pair.updates_to_b.len(), 2);
    let v4 = &pair.updates_to_b[0].attributes;
    assert_eq!(v4.next_hop, Some(Ipv4Addr::new(192, 168, 250, 13)));
    assert_eq!(v4.communities, vec![Community::new(64500, 300)]);
    assert_eq!(v4.large_communities.len(), 1);
    assert_eq!(v4.local_pref, None, "LOCAL_PREF is for iBGP only");
    assert_eq!(
        v4.as_path,
        Some(vec![AsSegment {
            kind: SegmentKind::Sequence,
            asns: vec![SPEAKER_ASN],
        }])
    );
    let reach = pair.updates_to_b[1].attributes.mp_reach.as_ref().unwrap();
    assert_eq!(reach.next_hop, "fd00:250::13".parse::<Ipv6Addr>().unwrap());
    assert_eq!(
        pair.router_view(),
        BTreeSet::from([net("192.168.250.220/32"), net("fd00:250::220/128")])
    );
    assert_eq!(pair.a.advertised_prefixes(), 2);
}

#[test]
fn ibgp_sends_local_pref_and_an_empty_as_path() {
    let mut pair = Pair::new(SPEAKER_ASN, 90);
    pair.a.start();
    pair.b.start();
    pair.pump();
    pair.a.announce(net("10.1.0.0/16"), Route::default());
    pair.pump();
    let attributes = &pair.updates_to_b[0].attributes;
    assert_eq!(attributes.local_pref, Some(metallb_bgp::DEFAULT_LOCAL_PREF));
    assert_eq!(attributes.as_path, Some(vec![]));
}

#[test]
fn ten_thousand_prefixes_leave_in_a_few_full_updates() {
    let mut pair = Pair::established();
    for n in 0..10_000u32 {
        let address = Ipv4Addr::from(0x0a00_0000 + n);
        pair.a.announce(
            IpNet::from(std::net::IpAddr::from(address)),
            route(&[Community::new(1, 2)]),
        );
    }
    pair.pump();
    // 5 bytes per /32 and about 4,040 bytes of room per message: 13 messages.
    assert_eq!(pair.updates_to_b.len(), 13);
    for update in &pair.updates_to_b {
        let bytes = Message::Update(Box::new(update.clone())).encode(AsWidth::Four);
        assert!(bytes.len() <= 4096, "{} bytes", bytes.len());
    }
    assert_eq!(pair.router_view().len(), 10_000);
}

#[test]
fn ipv6_prefixes_pack_into_mp_reach_under_the_size_limit() {
    let mut pair = Pair::established();
    for n in 0..2_000u128 {
        let address = Ipv6Addr::from(0xfd00_0250_u128 << 96 | n);
        pair.a.announce(
            IpNet::from(std::net::IpAddr::from(address)),
            Route::default(),
        );
    }
    pair.pump();
    for update in &pair.updates_to_b {
        let bytes = Message::Update(Box::new(update.clone())).encode(AsWidth::Four);
        assert!(bytes.len() <= 4096, "{} bytes", bytes.len());
    }
    assert_eq!(pair.router_view().len(), 2_000);
    assert!(pair.updates_to_b.len() <= 10, "{}", pair.updates_to_b.len());
}

#[test]
fn a_withdraw_sends_only_the_difference() {
    let mut pair = Pair::established();
    pair.a.announce(net("10.0.0.1/32"), Route::default());
    pair.a.announce(net("10.0.0.2/32"), Route::default());
    pair.a.announce(net("fd00::2/128"), Route::default());
    pair.pump();
    pair.updates_to_b.clear();
    pair.a.withdraw(net("10.0.0.1/32"));
    pair.a.withdraw(net("fd00::2/128"));
    pair.a.announce(net("10.0.0.2/32"), Route::default());
    pair.pump();
    assert_eq!(pair.updates_to_b.len(), 2);
    assert_eq!(
        pair.updates_to_b[0].withdrawn,
        vec!["10.0.0.1/32".parse().unwrap()]
    );
    assert!(pair.updates_to_b[0].nlri.is_empty());
    assert_eq!(
        pair.updates_to_b[1].attributes.mp_unreach,
        Some(vec!["fd00::2/128".parse().unwrap()])
    );
    assert_eq!(pair.a.advertised_prefixes(), 1);
}

#[test]
fn graceful_shutdown_re_announces_every_prefix_with_the_community() {
    let mut pair = Pair::established();
    pair.a
        .announce(net("10.0.0.1/32"), route(&[Community::new(64500, 300)]));
    pair.a.announce(net("10.0.0.2/32"), Route::default());
    pair.pump();
    pair.updates_to_b.clear();
    pair.a.set_graceful_shutdown(true);
    pair.pump();
    let mut announced = 0;
    for update in &pair.updates_to_b {
        assert!(
            update
                .attributes
                .communities
                .contains(&Community::GRACEFUL_SHUTDOWN)
        );
        announced += update.nlri.len();
    }
    assert_eq!(announced, 2);
    // Announcing again with the flag on changes nothing on the wire.
    pair.updates_to_b.clear();
    pair.a.announce(net("10.0.0.2/32"), Route::default());
    pair.pump();
    assert!(pair.updates_to_b.is_empty());
}

#[test]
fn stop_sends_cease_and_the_peer_goes_down_with_its_code() {
    let mut pair = Pair::established();
    pair.a.stop(Cease::Shutdown);
    pair.pump();
    let cease = Notification::administrative_shutdown();
    assert_eq!(
        pair.events_b.last(),
        Some(&Event::Down(DownReason::NotificationReceived(
            cease.clone()
        )))
    );
    assert!(
        pair.events_a
            .contains(&Event::Down(DownReason::Stopped(cease)))
    );
    assert_eq!(pair.a.state(), State::Idle);
    assert_eq!(pair.b.state(), State::Active);
    // A stopped speaker does not dial again, however long we wait.
    pair.advance(Duration::from_secs(600));
    assert_eq!(pair.a.state(), State::Idle);
}

#[test]
fn a_planned_stop_withdraws_every_route_before_the_cease_without_graceful_restart() {
    let mut pair = Pair::established();
    pair.a.announce(net("10.0.0.1/32"), Route::default());
    pair.pump();
    pair.updates_to_b.clear();
    pair.a.stop(Cease::Shutdown);
    pair.pump();
    // The router reads the withdrawal while the session is still up: the Cease comes after.
    let withdrawn: Vec<_> = pair
        .updates_to_b
        .iter()
        .flat_map(|u| &u.withdrawn)
        .collect();
    assert_eq!(withdrawn, [&"10.0.0.1/32".parse().unwrap()]);
    assert_eq!(
        pair.events_b.last(),
        Some(&Event::Down(DownReason::NotificationReceived(
            Notification::administrative_shutdown()
        )))
    );
}

#[test]
fn announcements_made_before_establishment_go_out_once_it_is_up() {
    let mut pair = Pair::new(ROUTER_ASN, 9);
    pair.a.announce(net("192.0.2.10/32"), Route::default());
    assert_eq!(pair.a.desired_prefixes(), 1);
    pair.a.start();
    pair.b.start();
    pair.pump();
    assert_eq!(pair.router_view(), BTreeSet::from([net("192.0.2.10/32")]));
}
