//! The BFD driver against FRR's bfdd in a network lab: sessions come up on both sides, a cut
//! cable is detected within the detection time, AdminDown reaches FRR, and routed or
//! malformed datagrams are counted and dropped. Needs root. Run with `--nocapture` to see the
//! measured detection times.

use std::{
    collections::BTreeMap,
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
use metallb_speaker::event::{self, DriverEvent};
use metallb_testenv::lab::{Host, Lab, LabOptions};
use serde_json::Value;
use socket2::{Domain, Protocol, Socket, Type};

/// The lab tests measure timing at 10 ms intervals on a small machine: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

/// Each session as (the router's address, node 1's address): IPv4, then IPv6.
fn sessions() -> [(IpAddr, IpAddr); 2] {
    let (router4, router6) = Lab::address(Host::Router);
    let (node4, node6) = Lab::address(Host::Node(1));
    [
        (router4.into(), node4.into()),
        (router6.into(), node6.into()),
    ]
}

fn profile(interval_ms: u64) -> Profile {
    Profile {
        desired_min_tx: Duration::from_millis(interval_ms),
        required_min_rx: Duration::from_millis(interval_ms),
        detect_multiplier: NonZeroU8::new(3).unwrap(),
        ..Profile::default()
    }
}

/// Takes the serial lock; brings up a lab whose router has static BFD peers (independent of
/// BGP) for node 1 over IPv4 and IPv6 at `frr_ms` both ways and multiplier 3; starts node 1's
/// driver at `node_ms`; and waits for both sessions to be Up on both sides.
fn up(frr_ms: u32, node_ms: u64, hop: Hop) -> (MutexGuard<'static, ()>, Arc<Lab>, Node) {
    let serial = SERIAL.lock().unwrap_or_else(PoisonError::into_inner);
    let lab = Lab::up(LabOptions {
        bfd_rx_ms: frr_ms,
        bfd_tx_ms: frr_ms,
        ..LabOptions::default()
    })
    .unwrap();
    let multihop = if hop == Hop::Multi { " multihop" } else { "" };
    for (router, node) in sessions() {
        lab.vtysh(&[
            "configure terminal",
            "bfd",
            &format!("peer {node}{multihop} local-address {router}"),
            &format!("receive-interval {frr_ms}"),
            &format!("transmit-interval {frr_ms}"),
            "detect-multiplier 3",
        ])
        .unwrap();
    }
    let lab = Arc::new(lab);
    let node = Node::start(&lab, node_ms, hop);
    wait_up(&lab, &node, hop);
    (serial, lab, node)
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
        let (events_tx, events) = mpsc::channel();
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
                let (reports, mut received) = event::channel();
                let (handle, task) = bfd::spawn(reports).unwrap();
                handle_tx.send(handle).unwrap();
                // The driver's reports, stamped when they arrive, for the test thread.
                tokio::spawn(async move {
                    while let Some(report) = received.recv().await {
                        if let DriverEvent::Bfd { peer, event } = report {
                            let _ = events_tx.send((peer, Instant::now(), event));
                        }
                    }
                });
                task.await.unwrap();
            });
        });
        let handle = handle_rx.recv().unwrap();
        for (peer, local) in sessions() {
            handle.add_peer(peer, Some(local), hop, profile(interval_ms));
        }
        Self {
            handle,
            events,
            thread: Some(thread),
        }
    }

    fn status(&self, peer: IpAddr) -> Option<BfdPeerStatus> {
        self.handle.status().into_iter().find(|s| s.peer == peer)
    }

    fn state(&self, peer: IpAddr) -> Option<State> {
        self.status(peer).map(|status| status.state)
    }

    fn detection(&self, peer: IpAddr) -> Option<Duration> {
        self.status(peer).and_then(|status| status.detection_time)
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

    /// The next event of `peer`, within `timeout`, is `expected`.
    fn expect_event(&self, peer: IpAddr, timeout: Duration, expected: Event) {
        let (_, event) = self.next_event(peer, timeout).expect("an event");
        assert_eq!(event, expected);
    }

    fn forget_events(&self) {
        while self.events.try_recv().is_ok() {}
    }

    fn assert_no_event(&self, message: &str) {
        assert_eq!(self.events.try_recv().ok(), None, "{message}");
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
    lab.bfd_peer(peer, hop == Hop::Multi).unwrap()
}

/// FRR has its session with `peer` and reports it with `status` ("up", "down").
fn frr_is(lab: &Lab, peer: IpAddr, hop: Hop, status: &str) -> bool {
    frr_peer(lab, peer, hop).is_some_and(|p| p["status"].as_str() == Some(status))
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
    metallb_testenv::wait_for(timeout, Duration::from_millis(10), || check().then_some(()))
        .is_some()
}

/// Both sessions Up on both sides.
fn wait_up(lab: &Lab, node: &Node, hop: Hop) {
    let up = eventually(Duration::from_secs(15), || {
        sessions().into_iter().all(|(router, ours)| {
            node.state(router) == Some(State::Up) && frr_is(lab, ours, hop, "up")
        })
    });
    assert!(
        up,
        "sessions up: ours {:#?}, frr {:#}",
        node.handle.status(),
        lab.vtysh_json("show bfd peers json").unwrap()
    );
}

/// The single hop session between `router` and node 1's `ours` is Up on both sides now.
fn assert_up(lab: &Lab, node: &Node, (router, ours): (IpAddr, IpAddr)) {
    assert_eq!(node.state(router), Some(State::Up));
    let frr = frr_peer(lab, ours, Hop::Single);
    let status = frr.as_ref().and_then(|frr| frr["status"].as_str());
    assert_eq!(status, Some("up"), "frr: {frr:?}");
}

/// FRR sees its session with `peer` go down within 3 s, told AdminDown; prints how long
/// after `since` (when we did `what`) it saw it.
fn frr_sees_admin_down(lab: &Lab, peer: IpAddr, since: Instant, what: &str) {
    let down = eventually(Duration::from_secs(3), || {
        frr_is(lab, peer, Hop::Single, "down")
    });
    let elapsed = since.elapsed();
    let frr = frr_peer(lab, peer, Hop::Single).unwrap();
    eprintln!("frr saw down {elapsed:?} after {what}: {frr}");
    assert!(down, "{frr}");
    assert_eq!(frr["remote-diagnostic"], "administratively down", "{frr}");
}

/// Cuts node 1's cable `rounds` times, plugging it back in and waiting for Up in between;
/// prints the times each session took to report Down and checks all are below `max`.
fn assert_cuts_detected(lab: &Lab, node: &Node, interval_ms: u64, rounds: usize, max: Duration) {
    let detection = Duration::from_millis(3 * interval_ms);
    let mut times = Vec::new();
    for _ in 0..rounds {
        wait_up(lab, node, Hop::Single);
        // Up first runs at the slow start rate; wait for the Poll Sequence to the profile's.
        let fast = eventually(Duration::from_secs(5), || {
            sessions()
                .iter()
                .all(|&(router, _)| node.detection(router) == Some(detection))
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
            let expired = Event::Down(DownCause::DetectionTimeExpired);
            assert_eq!(event, expired, "{peer}");
            times.push(at - cut);
        }
        lab.link(Host::Node(1), true).unwrap();
    }
    let mut sorted = times.clone();
    sorted.sort();
    eprintln!(
        "{interval_ms} ms x 3: detection after the cut, n={} min {:?} median {:?} max {:?}",
        sorted.len(),
        sorted[0],
        sorted[sorted.len() / 2],
        sorted[sorted.len() - 1]
    );
    assert!(times.iter().all(|&time| time < max), "{times:?}");
}

/// Sends `payloads` from `host`'s namespace to BFD's single hop port on each of `to`, with
/// the given TTL / hop limit.
fn send_from(lab: &Lab, host: Host, to: &[IpAddr], ttl: u32, payloads: &[Vec<u8>]) {
    thread::scope(|scope| {
        scope
            .spawn(|| {
                lab.enter(host).unwrap();
                for &address in to {
                    let destination = SocketAddr::new(address, 3784);
                    let domain = Domain::for_address(destination);
                    let socket = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP)).unwrap();
                    match destination {
                        SocketAddr::V4(_) => socket.set_ttl_v4(ttl).unwrap(),
                        SocketAddr::V6(_) => socket.set_unicast_hops_v6(ttl).unwrap(),
                    }
                    for payload in payloads {
                        socket.send_to(payload, &destination.into()).unwrap();
                    }
                }
            })
            .join()
            .unwrap();
    });
}

/// Within 2 s, `count` datagrams matching no session were dropped for `reason`.
fn assert_unmatched(node: &Node, reason: &str, count: u64) {
    let counted = eventually(Duration::from_secs(2), || {
        node.handle.unmatched_drops().get(reason) == Some(&count)
    });
    assert!(counted, "{:?}", node.handle.unmatched_drops());
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
    let (_serial, lab, node) = up(300, 300, Hop::Single);
    for (ours, theirs) in sessions() {
        let status = node.status(ours).unwrap();
        let frr = frr_peer(&lab, theirs, Hop::Single).unwrap();
        eprintln!("ours: {}", serde_json::to_string(&status).unwrap());
        eprintln!("frr: {frr}");
        assert_eq!(status.remote_state, State::Up);
        let frr_id = frr["id"].as_u64().map(|id| id as u32);
        assert_eq!(status.remote_discriminator, frr_id);
        let ours_id = status.local_discriminator.into();
        assert_eq!(frr["remote-id"].as_u64(), Some(ours_id));
        assert_eq!(status.detection_time, Some(Duration::from_millis(900)));
        assert!(status.drops.is_empty(), "{:?}", status.drops);
    }
}

#[test]
fn a_cut_cable_is_detected_within_three_intervals_at_300_ms() {
    let (_serial, lab, node) = up(300, 300, Hop::Single);
    assert_cuts_detected(&lab, &node, 300, 3, Duration::from_millis(1200));
}

#[test]
fn a_cut_cable_is_detected_within_three_intervals_at_10_ms() {
    let (_serial, lab, node) = up(10, 10, Hop::Single);
    // Stable at this rate first: no flap on either side for three seconds.
    let downs = frr_downs(&lab);
    node.forget_events();
    thread::sleep(Duration::from_secs(3));
    node.assert_no_event("no event at 10 ms without a cut");
    assert_eq!(frr_downs(&lab), downs, "frr saw no flap");
    assert_cuts_detected(&lab, &node, 10, 5, Duration::from_millis(100));
}

#[test]
fn removing_a_peer_and_shutting_down_tell_frr_admin_down() {
    let (_serial, lab, node) = up(300, 300, Hop::Single);
    let [(router4, node4), v6 @ (router6, node6)] = sessions();
    let admin_down = Event::Down(DownCause::AdminDown);
    node.forget_events();
    let removed = Instant::now();
    node.handle.remove_peer(router4);
    node.expect_event(router4, Duration::from_secs(1), admin_down);
    assert!(!DownCause::AdminDown.is_failure());
    frr_sees_admin_down(&lab, node4, removed, "remove_peer");
    assert_eq!(node.status(router4), None);
    assert_up(&lab, &node, v6);

    let shut = Instant::now();
    node.handle.shutdown();
    node.expect_event(router6, Duration::from_secs(1), admin_down);
    let ended = eventually(Duration::from_secs(1), || {
        node.thread.as_ref().is_some_and(JoinHandle::is_finished)
    });
    assert!(ended, "the driver task ends");
    frr_sees_admin_down(&lab, node6, shut, "shutdown");
}

#[test]
fn packets_that_crossed_a_router_are_dropped_and_counted() {
    let (_serial, lab, node) = up(300, 300, Hop::Single);
    let [(router4, node4), (_, node6)] = sessions();
    let hello = [control_packet(State::Down, 0)];
    send_from(&lab, Host::Client, &[node4, node6], 254, &hello);
    assert_unmatched(&node, "ttl_too_low", 2);
    // The same packets with TTL 255 get as far as the lookup, which knows no such peer.
    send_from(&lab, Host::Client, &[node4, node6], 255, &hello);
    assert_unmatched(&node, "unknown_peer", 2);

    // From the router's own address, "Down" addressed to our session: routed, so ignored.
    node.forget_events();
    let ours = node.status(router4).unwrap().local_discriminator;
    let impostor = [control_packet(State::Down, ours)];
    send_from(&lab, Host::Router, &[node4], 254, &impostor);
    let counted = eventually(Duration::from_secs(2), || {
        node.status(router4).unwrap().drops.get("ttl_too_low") == Some(&1)
    });
    assert!(counted, "{:#?}", node.status(router4));
    thread::sleep(Duration::from_millis(500));
    assert_eq!(node.state(router4), Some(State::Up));
    node.assert_no_event("no event from a dropped packet");
    // Sent with TTL 255, the same packet would have taken the session down.
    send_from(&lab, Host::Router, &[node4], 255, &impostor);
    let neighbor_down = Event::Down(DownCause::NeighborDown);
    node.expect_event(router4, Duration::from_secs(2), neighbor_down);
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
    let (_serial, lab, node) = up(300, 300, Hop::Single);
    let [v4 @ (router4, node4), v6 @ (_, node6)] = sessions();
    node.forget_events();
    let before = node.status(router4).unwrap().packets_received;
    let garbage = garbage();
    let total = |drops: &BTreeMap<&str, u64>| drops.values().sum::<u64>();

    send_from(&lab, Host::Client, &[node4, node6], 255, &garbage);
    send_from(&lab, Host::Router, &[node4], 255, &garbage);
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
    node.assert_no_event("no event from garbage");
    assert!(node.status(router4).unwrap().packets_received > before);
    assert_up(&lab, &node, v4);
    assert_up(&lab, &node, v6);
}

#[test]
fn multi_hop_sessions_with_frr_come_up_on_port_4784() {
    let (_serial, lab, node) = up(300, 300, Hop::Multi);
    for (_, ours) in sessions() {
        assert_eq!(frr_peer(&lab, ours, Hop::Multi).unwrap()["multihop"], true);
    }
    for status in node.handle.status() {
        assert_eq!(status.hop, Hop::Multi);
        // The router's BGP neighbours have single hop BFD sessions to the same address:
        // those packets reach port 3784 and do not count for the multi hop session.
        let wrong_port = status.drops.keys().all(|&reason| reason == "wrong_port");
        assert!(wrong_port, "{:?}", status.drops);
    }
}

#[test]
fn a_new_profile_on_an_up_session_is_negotiated_without_a_flap() {
    let (_serial, lab, node) = up(10, 300, Hop::Single);
    let [v4 @ (router4, node4), _] = sessions();
    // We receive no faster than every 300 ms, although FRR would send every 10 ms.
    assert!(eventually(Duration::from_secs(5), || {
        node.detection(router4) == Some(Duration::from_millis(900))
    }));
    let downs = frr_downs(&lab);
    node.forget_events();
    node.handle
        .add_peer(router4, Some(node4), Hop::Single, profile(10));
    let faster = eventually(Duration::from_secs(3), || {
        node.detection(router4) == Some(Duration::from_millis(30))
            && frr_peer(&lab, node4, Hop::Single)
                .is_some_and(|frr| frr["remote-receive-interval"] == 10)
    });
    assert!(faster, "{:#?}", node.status(router4));
    let flap = node.next_event(router4, Duration::from_millis(200));
    assert_eq!(flap, None, "no flap here");
    assert_eq!(frr_downs(&lab), downs, "no flap at frr");
    assert_up(&lab, &node, v4);
}
