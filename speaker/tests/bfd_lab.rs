//! The BFD driver against FRR's bfdd in a network lab: sessions come up on both sides, a cut
//! cable is detected within the detection time, AdminDown reaches FRR, and routed or
//! malformed datagrams are counted and dropped. Needs root. Run with `--nocapture` to see the
//! measured detection times.

use std::{
    net::{IpAddr, SocketAddr},
    num::{NonZeroU8, NonZeroU32},
    sync::{
        Arc, Mutex, MutexGuard, PoisonError,
        mpsc::{self, Receiver},
    },
    thread::{self, JoinHandle},
    time::{Duration, Instant},
};

use metallb_bfd::{ControlPacket, Diagnostic, DownCause, Event, Hop, Profile, State};
use metallb_speaker::bfd::{self, BfdHandle, BfdPeerStatus};
use metallb_testenv::lab::{Host, Lab, LabOptions};
use serde_json::Value;
use socket2::{Domain, Protocol, Socket, Type};

/// The lab tests measure timing at 10 ms intervals on a small machine: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(PoisonError::into_inner)
}

fn router() -> (IpAddr, IpAddr) {
    let (v4, v6) = Lab::address(Host::Router);
    (v4.into(), v6.into())
}

fn node1() -> (IpAddr, IpAddr) {
    let (v4, v6) = Lab::address(Host::Node(1));
    (v4.into(), v6.into())
}

fn profile(interval_ms: u64) -> Profile {
    Profile {
        desired_min_tx: Duration::from_millis(interval_ms),
        required_min_rx: Duration::from_millis(interval_ms),
        detect_multiplier: NonZeroU8::new(3).unwrap(),
        ..Profile::default()
    }
}

/// A lab whose router has static BFD peers (independent of BGP) for node 1 over IPv4 and
/// IPv6, at `interval_ms` both ways and multiplier 3.
fn lab(interval_ms: u32, hop: Hop) -> Arc<Lab> {
    let lab = Lab::up(LabOptions {
        bfd_rx_ms: interval_ms,
        bfd_tx_ms: interval_ms,
        ..LabOptions::default()
    })
    .unwrap();
    let (router4, router6) = router();
    let (node4, node6) = node1();
    let interval = interval_ms.to_string();
    for (peer, local) in [(node4, router4), (node6, router6)] {
        let multihop = if hop == Hop::Multi { " multihop" } else { "" };
        let peer = format!("peer {peer}{multihop} local-address {local}");
        let receive = format!("receive-interval {interval}");
        let transmit = format!("transmit-interval {interval}");
        lab.vtysh(&[
            "configure terminal",
            "bfd",
            &peer,
            &receive,
            &transmit,
            "detect-multiplier 3",
        ])
        .unwrap();
    }
    Arc::new(lab)
}

/// The BFD driver running in node 1's namespace, on a thread with its own runtime.
struct Node {
    handle: BfdHandle,
    events: Receiver<(IpAddr, Instant, Event)>,
    thread: Option<JoinHandle<()>>,
}

impl Node {
    /// Starts the driver with sessions to the router over IPv4 and IPv6.
    fn start(lab: &Arc<Lab>, interval_ms: u64, hop: Hop) -> Self {
        let lab = Arc::clone(lab);
        let (handle_tx, handle_rx) = mpsc::channel();
        let thread = thread::spawn(move || {
            lab.enter(Host::Node(1)).unwrap();
            drop(lab);
            let _ = tracing_subscriber::fmt()
                .with_test_writer()
                .with_ansi(false)
                .with_env_filter("metallb_speaker=info")
                .try_init();
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                let (handle, task) = bfd::spawn().unwrap();
                handle_tx.send(handle).unwrap();
                task.await.unwrap();
            });
        });
        let handle = handle_rx.recv().unwrap();
        let (events_tx, events) = mpsc::channel();
        let node = Self {
            handle,
            events,
            thread: Some(thread),
        };
        let (router4, router6) = router();
        let (node4, node6) = node1();
        for (peer, local) in [(router4, node4), (router6, node6)] {
            let events_tx = Mutex::new(events_tx.clone());
            node.handle.add_peer(
                peer,
                Some(local),
                hop,
                profile(interval_ms),
                Box::new(move |event| {
                    let now = Instant::now();
                    let _ = events_tx.lock().unwrap().send((peer, now, event));
                }),
            );
        }
        node
    }

    fn status(&self, peer: IpAddr) -> Option<BfdPeerStatus> {
        self.handle.status().into_iter().find(|s| s.peer == peer)
    }

    fn state(&self, peer: IpAddr) -> Option<State> {
        self.status(peer).map(|status| status.state)
    }

    /// Waits for the next event of `peer`, skipping the other peer's.
    fn next_event(&self, peer: IpAddr, timeout: Duration) -> Option<(Instant, Event)> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            match self.events.recv_timeout(left) {
                Ok((from, at, event)) if from == peer => return Some((at, event)),
                Ok(_) => {}
                Err(_) => return None,
            }
        }
    }

    fn forget_events(&self) {
        while self.events.try_recv().is_ok() {}
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.handle.shutdown();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// FRR's view of its session with `peer`.
fn frr_peer(lab: &Lab, peer: IpAddr, hop: Hop) -> Option<Value> {
    let peers = lab.vtysh_json("show bfd peers json").unwrap();
    peers
        .as_array()?
        .iter()
        .find(|p| {
            p["peer"].as_str() == Some(&peer.to_string())
                && p["multihop"].as_bool() == Some(hop == Hop::Multi)
        })
        .cloned()
}

fn frr_status(lab: &Lab, peer: IpAddr, hop: Hop) -> Option<String> {
    frr_peer(lab, peer, hop).and_then(|p| p["status"].as_str().map(str::to_owned))
}

/// How often FRR's sessions went down so far, all peers together.
fn frr_downs(lab: &Lab) -> u64 {
    let counters = lab.vtysh_json("show bfd peers counters json").unwrap();
    counters
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|peer| peer["session-down"].as_u64())
        .sum()
}

/// Polls `check` every 10 ms until it holds or `timeout` passes.
fn eventually(timeout: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if check() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// Both sessions Up on both sides.
fn wait_up(lab: &Lab, node: &Node, hop: Hop) {
    let (router4, router6) = router();
    let (node4, node6) = node1();
    let up = eventually(Duration::from_secs(15), || {
        node.state(router4) == Some(State::Up)
            && node.state(router6) == Some(State::Up)
            && frr_status(lab, node4, hop).as_deref() == Some("up")
            && frr_status(lab, node6, hop).as_deref() == Some("up")
    });
    assert!(
        up,
        "sessions up: ours {:#?}, frr {:#}",
        node.handle.status(),
        lab.vtysh_json("show bfd peers json").unwrap()
    );
}

/// Cuts node 1's cable `rounds` times and returns, per round, how long each session took to
/// report Down; plugs the cable back in and waits for Up in between.
fn detection_times(lab: &Lab, node: &Node, interval_ms: u64, rounds: usize) -> Vec<Duration> {
    let (router4, router6) = router();
    let detection = Duration::from_millis(3 * interval_ms);
    let mut times = Vec::new();
    for _ in 0..rounds {
        wait_up(lab, node, Hop::Single);
        // Up first runs at the slow start rate; wait for the Poll Sequence to the profile's.
        let fast = eventually(Duration::from_secs(5), || {
            [router4, router6].iter().all(|&peer| {
                node.status(peer)
                    .is_some_and(|status| status.detection_time == Some(detection))
            })
        });
        assert!(
            fast,
            "detection time {detection:?}: {:#?}",
            node.handle.status()
        );
        node.forget_events();
        let cut = Instant::now();
        lab.link(Host::Node(1), false).unwrap();
        for _ in 0..2 {
            let (peer, at, event) = node
                .events
                .recv_timeout(Duration::from_secs(5))
                .expect("a down event after the cut");
            assert_eq!(
                event,
                Event::Down(DownCause::DetectionTimeExpired),
                "{peer}"
            );
            times.push(at - cut);
        }
        lab.link(Host::Node(1), true).unwrap();
    }
    times
}

fn report(label: &str, times: &[Duration]) {
    let mut sorted = times.to_vec();
    sorted.sort();
    eprintln!(
        "{label}: detection after the cut, n={} min {:?} median {:?} max {:?}",
        sorted.len(),
        sorted[0],
        sorted[sorted.len() / 2],
        sorted[sorted.len() - 1]
    );
}

/// Sends `payloads` from `host`'s namespace to `destination` with the given TTL / hop limit.
fn send_from(lab: &Lab, host: Host, destination: SocketAddr, ttl: u32, payloads: &[Vec<u8>]) {
    thread::scope(|scope| {
        scope
            .spawn(|| {
                lab.enter(host).unwrap();
                let socket = Socket::new(
                    Domain::for_address(destination),
                    Type::DGRAM,
                    Some(Protocol::UDP),
                )
                .unwrap();
                match destination {
                    SocketAddr::V4(_) => socket.set_ttl_v4(ttl).unwrap(),
                    SocketAddr::V6(_) => socket.set_unicast_hops_v6(ttl).unwrap(),
                }
                for payload in payloads {
                    socket.send_to(payload, &destination.into()).unwrap();
                }
            })
            .join()
            .unwrap();
    });
}

/// A well-formed Control packet as a stranger or an impostor would send it.
fn control_packet(state: State, your_discriminator: u32) -> Vec<u8> {
    ControlPacket {
        diagnostic: Diagnostic::None,
        state,
        poll: false,
        final_: false,
        control_plane_independent: false,
        demand: false,
        detect_multiplier: NonZeroU8::new(3).unwrap(),
        my_discriminator: NonZeroU32::new(0x0bad_cafe).unwrap(),
        your_discriminator,
        desired_min_tx_us: 300_000,
        required_min_rx_us: 300_000,
        required_min_echo_rx_us: 0,
    }
    .encode()
    .to_vec()
}

#[test]
fn sessions_with_frr_come_up_on_both_sides_over_ipv4_and_ipv6() {
    let _serial = serial();
    let lab = lab(300, Hop::Single);
    let node = Node::start(&lab, 300, Hop::Single);
    wait_up(&lab, &node, Hop::Single);
    let (node4, node6) = node1();
    for (ours, theirs) in [(router().0, node4), (router().1, node6)] {
        let status = node.status(ours).unwrap();
        let frr = frr_peer(&lab, theirs, Hop::Single).unwrap();
        eprintln!("ours: {}", serde_json::to_string(&status).unwrap());
        eprintln!("frr: {frr}");
        assert_eq!(status.remote_state, State::Up);
        assert_eq!(
            status.remote_discriminator,
            frr["id"].as_u64().map(|id| id as u32)
        );
        assert_eq!(
            frr["remote-id"].as_u64(),
            Some(status.local_discriminator.into())
        );
        assert_eq!(status.detection_time, Some(Duration::from_millis(900)));
        assert!(status.drops.is_empty(), "{:?}", status.drops);
    }
}

#[test]
fn a_cut_cable_is_detected_within_three_intervals_at_300_ms() {
    let _serial = serial();
    let lab = lab(300, Hop::Single);
    let node = Node::start(&lab, 300, Hop::Single);
    let times = detection_times(&lab, &node, 300, 3);
    report("300 ms x 3", &times);
    assert!(
        times.iter().all(|&time| time < Duration::from_millis(1200)),
        "{times:?}"
    );
}

#[test]
fn a_cut_cable_is_detected_within_three_intervals_at_10_ms() {
    let _serial = serial();
    let lab = lab(10, Hop::Single);
    let node = Node::start(&lab, 10, Hop::Single);
    wait_up(&lab, &node, Hop::Single);
    // Stable at this rate first: no flap on either side for three seconds.
    let downs = frr_downs(&lab);
    node.forget_events();
    thread::sleep(Duration::from_secs(3));
    let flap = node.events.try_recv().ok();
    assert_eq!(flap, None, "no event at 10 ms without a cut");
    assert_eq!(frr_downs(&lab), downs, "frr saw no flap");
    let times = detection_times(&lab, &node, 10, 5);
    report("10 ms x 3", &times);
    assert!(
        times.iter().all(|&time| time < Duration::from_millis(100)),
        "{times:?}"
    );
}

#[test]
fn removing_a_peer_and_shutting_down_tell_frr_admin_down() {
    let _serial = serial();
    let lab = lab(300, Hop::Single);
    let node = Node::start(&lab, 300, Hop::Single);
    wait_up(&lab, &node, Hop::Single);
    let (router4, router6) = router();
    let (node4, node6) = node1();
    node.forget_events();
    let removed = Instant::now();
    node.handle.remove_peer(router4);
    let (_, event) = node.next_event(router4, Duration::from_secs(1)).unwrap();
    assert_eq!(event, Event::Down(DownCause::AdminDown));
    assert!(!DownCause::AdminDown.is_failure());
    let down = eventually(Duration::from_secs(3), || {
        frr_status(&lab, node4, Hop::Single).as_deref() == Some("down")
    });
    let elapsed = removed.elapsed();
    let frr = frr_peer(&lab, node4, Hop::Single).unwrap();
    eprintln!("frr saw down {elapsed:?} after remove_peer: {frr}");
    assert!(down, "{frr}");
    assert_eq!(frr["remote-diagnostic"], "administratively down", "{frr}");
    assert_eq!(node.status(router4), None);
    assert_eq!(node.state(router6), Some(State::Up));
    assert_eq!(frr_status(&lab, node6, Hop::Single).as_deref(), Some("up"));

    node.handle.shutdown();
    let (_, event) = node.next_event(router6, Duration::from_secs(1)).unwrap();
    assert_eq!(event, Event::Down(DownCause::AdminDown));
    let ended = eventually(Duration::from_secs(1), || {
        node.thread.as_ref().is_some_and(JoinHandle::is_finished)
    });
    assert!(ended, "the driver task ends");
    assert!(eventually(Duration::from_secs(3), || {
        frr_status(&lab, node6, Hop::Single).as_deref() == Some("down")
    }));
    let frr = frr_peer(&lab, node6, Hop::Single).unwrap();
    assert_eq!(frr["remote-diagnostic"], "administratively down", "{frr}");
}

#[test]
fn packets_that_crossed_a_router_are_dropped_and_counted() {
    let _serial = serial();
    let lab = lab(300, Hop::Single);
    let node = Node::start(&lab, 300, Hop::Single);
    wait_up(&lab, &node, Hop::Single);
    let (router4, _) = router();
    let (node4, node6) = node1();
    let to4 = SocketAddr::new(node4, 3784);
    let to6 = SocketAddr::new(node6, 3784);
    let hello = [control_packet(State::Down, 0)];
    let unmatched = |reason: &str, count: u64| {
        eventually(Duration::from_secs(2), || {
            node.handle.unmatched_drops().get(reason) == Some(&count)
        })
    };

    send_from(&lab, Host::Client, to4, 254, &hello);
    send_from(&lab, Host::Client, to6, 254, &hello);
    assert!(
        unmatched("ttl_too_low", 2),
        "{:?}",
        node.handle.unmatched_drops()
    );
    // The same packets with TTL 255 get as far as the lookup, which knows no such peer.
    send_from(&lab, Host::Client, to4, 255, &hello);
    send_from(&lab, Host::Client, to6, 255, &hello);
    assert!(
        unmatched("unknown_peer", 2),
        "{:?}",
        node.handle.unmatched_drops()
    );

    // From the router's own address, "Down" addressed to our session: routed, so ignored.
    node.forget_events();
    let ours = node.status(router4).unwrap().local_discriminator;
    let impostor = [control_packet(State::Down, ours)];
    send_from(&lab, Host::Router, to4, 254, &impostor);
    let counted = eventually(Duration::from_secs(2), || {
        node.status(router4).unwrap().drops.get("ttl_too_low") == Some(&1)
    });
    assert!(counted, "{:#?}", node.status(router4));
    thread::sleep(Duration::from_millis(500));
    assert_eq!(node.state(router4), Some(State::Up));
    assert!(
        node.events.try_recv().is_err(),
        "no event from a dropped packet"
    );
    // Sent with TTL 255, the same packet would have taken the session down.
    send_from(&lab, Host::Router, to4, 255, &impostor);
    let (_, event) = node.next_event(router4, Duration::from_secs(2)).unwrap();
    assert_eq!(event, Event::Down(DownCause::NeighborDown));
    eprintln!("unmatched drops: {:?}", node.handle.unmatched_drops());
}

/// Datagrams no BFD implementation would send: short, long, wrong version, zero fields,
/// authentication or multipoint bits, and noise.
fn garbage() -> Vec<Vec<u8>> {
    let valid = control_packet(State::Down, 0);
    let with = |index: usize, value: u8| {
        let mut packet = valid.clone();
        packet[index] = value;
        packet
    };
    let mut datagrams = vec![
        Vec::new(),
        vec![0x20],
        valid[..23].to_vec(),
        vec![0xff; 24],
        with(0, 0x00),        // version 0
        with(2, 0),           // detect multiplier 0
        with(3, 10),          // length below 24
        with(3, 200),         // length beyond the datagram
        with(1, 0x40 | 0x04), // authentication bit, unconfigured
        with(1, 0x40 | 0x01), // multipoint bit
        with(1, 0xc0),        // Up without Your Discriminator
        vec![0x20; 2000],
    ];
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    for len in 24..88 {
        let noise = (0..len)
            .map(|_| {
                seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                (seed >> 56) as u8
            })
            .collect();
        datagrams.push(noise);
    }
    datagrams
}

#[test]
fn garbage_is_counted_and_dropped_without_disturbing_an_up_session() {
    let _serial = serial();
    let lab = lab(300, Hop::Single);
    let node = Node::start(&lab, 300, Hop::Single);
    wait_up(&lab, &node, Hop::Single);
    let (router4, router6) = router();
    let (node4, node6) = node1();
    node.forget_events();
    let before = node.status(router4).unwrap().packets_received;
    let garbage = garbage();
    let total = |drops: &std::collections::BTreeMap<&str, u64>| drops.values().sum::<u64>();

    for (host, to) in [
        (Host::Client, node4),
        (Host::Client, node6),
        (Host::Router, node4),
    ] {
        send_from(&lab, host, SocketAddr::new(to, 3784), 255, &garbage);
    }
    let counted = eventually(Duration::from_secs(2), || {
        total(&node.handle.unmatched_drops()) == 2 * garbage.len() as u64
            && total(&node.status(router4).unwrap().drops) == garbage.len() as u64
    });
    let status = node.status(router4).unwrap();
    eprintln!("unmatched drops: {:?}", node.handle.unmatched_drops());
    eprintln!("drops from the router: {:?}", status.drops);
    assert!(counted, "sent {} of each", garbage.len());

    // Longer than the detection time: the session kept hearing FRR and stayed Up.
    thread::sleep(Duration::from_millis(1500));
    assert!(node.events.try_recv().is_err(), "no event from garbage");
    assert!(node.status(router4).unwrap().packets_received > before);
    assert_eq!(node.state(router4), Some(State::Up));
    assert_eq!(node.state(router6), Some(State::Up));
    assert_eq!(frr_status(&lab, node4, Hop::Single).as_deref(), Some("up"));
    assert_eq!(frr_status(&lab, node6, Hop::Single).as_deref(), Some("up"));
}

#[test]
fn multi_hop_sessions_with_frr_come_up_on_port_4784() {
    let _serial = serial();
    let lab = lab(300, Hop::Multi);
    let node = Node::start(&lab, 300, Hop::Multi);
    wait_up(&lab, &node, Hop::Multi);
    let (node4, node6) = node1();
    for peer in [node4, node6] {
        assert_eq!(frr_peer(&lab, peer, Hop::Multi).unwrap()["multihop"], true);
    }
    for status in node.handle.status() {
        assert_eq!(status.hop, Hop::Multi);
        // The router's BGP neighbours have single hop BFD sessions to the same address:
        // those packets reach port 3784 and do not count for the multi hop session.
        assert!(
            status.drops.keys().all(|&reason| reason == "wrong_port"),
            "{:?}",
            status.drops
        );
    }
}

#[test]
fn a_new_profile_on_an_up_session_is_negotiated_without_a_flap() {
    let _serial = serial();
    let lab = lab(10, Hop::Single);
    let node = Node::start(&lab, 300, Hop::Single);
    wait_up(&lab, &node, Hop::Single);
    let (router4, _) = router();
    let (node4, _) = node1();
    let detection = |node: &Node| {
        node.status(router4)
            .and_then(|status| status.detection_time)
    };
    // We receive no faster than every 300 ms, although FRR would send every 10 ms.
    assert!(eventually(Duration::from_secs(5), || {
        detection(&node) == Some(Duration::from_millis(900))
    }));
    let downs = frr_downs(&lab);
    let (events_tx, events) = mpsc::channel();
    let events_tx = Mutex::new(events_tx);
    let sink = move |event| {
        let _ = events_tx.lock().unwrap().send(event);
    };
    node.handle.add_peer(
        router4,
        Some(node4),
        Hop::Single,
        profile(10),
        Box::new(sink),
    );
    let faster = eventually(Duration::from_secs(3), || {
        detection(&node) == Some(Duration::from_millis(30))
            && frr_peer(&lab, node4, Hop::Single)
                .is_some_and(|frr| frr["remote-receive-interval"] == 10)
    });
    assert!(faster, "{:#?}", node.status(router4));
    assert!(events.try_recv().is_err(), "no flap here");
    assert_eq!(frr_downs(&lab), downs, "no flap at frr");
    assert_eq!(node.state(router4), Some(State::Up));
    assert_eq!(frr_status(&lab, node4, Hop::Single).as_deref(), Some("up"));
}
