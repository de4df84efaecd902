//! The BGP driver against a real FRR router in a network-namespace lab (needs root).
//!
//! Each test has its own lab. A test thread enters a node's namespace, runs a current-thread
//! tokio runtime and drives the speaker's BGP driver there; the router (AS 64512) peers with
//! the nodes (.11, .12 eBGP from AS 64500; .13 iBGP) over IPv4 and IPv6. Timings are printed
//! (`cargo test -- --nocapture` shows them).

use std::{
    collections::BTreeSet,
    future::Future,
    net::{IpAddr, SocketAddr},
    time::{Duration, Instant},
};

use ipnet::IpNet;
use metallb_bgp::{Community, Config, LargeCommunity, PeerAsn, Route};
use metallb_speaker::bgp::{self, BgpHandle, PeerOptions};
use metallb_speaker::event;
use metallb_testenv::lab::{Host, Lab, LabOptions};
use serde_json::Value;

const ROUTER_V4: &str = "192.168.250.1";
const ROUTER_V6: &str = "fd00:250::1";
const PREFIX_V4: &str = "192.168.250.210/32";
const PREFIX_V6: &str = "fd00:250::210/128";
const WAIT: Duration = Duration::from_secs(20);

fn lab(password: Option<&str>) -> Lab {
    Lab::up(LabOptions {
        bgp_password: password.map(str::to_owned),
        ..LabOptions::default()
    })
    .expect("the lab comes up")
}

/// Runs `test` on a thread inside `host`'s namespace, in a current-thread runtime.
fn in_host<F, Fut>(lab: &Lab, host: Host, test: F)
where
    F: FnOnce() -> Fut + Send,
    Fut: Future<Output = ()>,
{
    std::thread::scope(|scope| {
        let thread = scope.spawn(|| {
            lab.enter(host).expect("the thread enters the namespace");
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime")
                .block_on(test());
        });
        if let Err(panic) = thread.join() {
            std::panic::resume_unwind(panic);
        }
    });
}

/// A peer towards the router from node 1 (eBGP) or node 3 (iBGP), hold time 9 s.
fn peer(node: u8, router: &str, password: Option<&str>) -> PeerOptions {
    let (node_v4, _) = Lab::address(Host::Node(node));
    let local_asn = if node == 3 { 64512 } else { 64500 };
    let mut session = Config::new(local_asn, PeerAsn::Exact(64512), node_v4);
    session.hold_time = Duration::from_secs(9);
    session.connect_retry_max = Duration::from_secs(2);
    PeerOptions {
        name: "router".to_owned(),
        address: router.parse().expect("an address"),
        port: 179,
        source: None,
        session,
        password: password.map(str::to_owned),
        ebgp_multihop: false,
    }
}

fn route(local_pref: Option<u32>) -> Route {
    Route {
        local_pref,
        communities: BTreeSet::from([Community::new(64500, 100)]),
        large_communities: BTreeSet::from([LargeCommunity {
            global_admin: 64500,
            local_data_1: 1,
            local_data_2: 2,
        }]),
    }
}

fn net(prefix: &str) -> IpNet {
    prefix.parse().expect("a prefix")
}

/// Polls `check` every 20 ms (letting the driver run in between) until it gives a value.
async fn wait_for<T>(
    what: &str,
    timeout: Duration,
    mut check: impl FnMut() -> Option<T>,
) -> (T, Duration) {
    let start = Instant::now();
    loop {
        if let Some(value) = check() {
            return (value, start.elapsed());
        }
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn neighbor(lab: &Lab, address: &str) -> Value {
    let address = address.parse().expect("an address");
    lab.bgp_neighbour(address).expect("vtysh answers")
}

fn frr_state(lab: &Lab, address: &str) -> String {
    neighbor(lab, address)["bgpState"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// The router's best path for `prefix`, if it has one.
fn frr_path(lab: &Lab, prefix: &str) -> Option<Value> {
    let route = lab.bgp_route(prefix).expect("vtysh answers")?;
    route["paths"].as_array()?.first().cloned()
}

fn our_state(handle: &BgpHandle) -> &'static str {
    handle
        .status()
        .first()
        .map_or("none", |status| status.state)
}

/// Waits until our side is Established (timed from the call), then for the router to agree.
async fn established(lab: &Lab, handle: &BgpHandle, frr_neighbor: &str) -> Duration {
    let (_, took) = wait_for("our side of the session to be established", WAIT, || {
        (our_state(handle) == "established").then_some(())
    })
    .await;
    wait_for(
        "the router's side of the session to be established",
        WAIT,
        || (frr_state(lab, frr_neighbor) == "Established").then_some(()),
    )
    .await;
    took
}

fn spawn_driver() -> (BgpHandle, tokio::task::JoinHandle<()>) {
    let listen: SocketAddr = "[::]:179".parse().expect("an address");
    // These tests read the driver's status, not its reports.
    let (reports, _) = event::channel();
    bgp::spawn(Some(listen), reports).expect("the driver starts")
}

fn community(path: &Value) -> &str {
    path["community"]["string"].as_str().unwrap_or_default()
}

#[test]
fn an_ipv4_session_carries_ipv4_and_ipv6_prefixes_with_communities_until_withdrawn() {
    let lab = lab(None);
    in_host(&lab, Host::Node(1), || async {
        let (handle, task) = spawn_driver();
        handle.add_peer(peer(1, ROUTER_V4, None));
        let took = established(&lab, &handle, "192.168.250.11").await;
        println!("connect -> established: {took:?}");

        let start = Instant::now();
        assert_eq!(frr_path(&lab, PREFIX_V4), None);
        println!("one vtysh query: {:?}", start.elapsed());
        handle.announce("router", net(PREFIX_V4), route(None));
        handle.announce("router", net(PREFIX_V6), route(None));
        let (_, took) = wait_for("both prefixes sent", WAIT, || {
            (handle.status()[0].prefixes_advertised == 2).then_some(())
        })
        .await;
        println!("announce -> update written: {took:?}");
        let (v4, took) = wait_for("the ipv4 prefix at the router", WAIT, || {
            frr_path(&lab, PREFIX_V4)
        })
        .await;
        println!("announce -> frr has it (vtysh polls included): {took:?}");
        let (v6, _) = wait_for("the ipv6 prefix at the router", WAIT, || {
            frr_path(&lab, PREFIX_V6)
        })
        .await;
        for path in [&v4, &v6] {
            assert_eq!(community(path), "64500:100");
            assert_eq!(path["largeCommunity"]["string"], "64500:1:2");
            assert_eq!(path["aspath"]["string"], "64500");
        }
        assert_eq!(v4["nexthops"][0]["ip"], "192.168.250.11");
        assert_eq!(v6["nexthops"][0]["ip"], "fd00:250::11");
        assert_eq!(v6["nexthops"][1]["scope"], "link-local");
        let status = &handle.status()[0];
        assert_eq!(
            (status.hold_time_seconds, status.prefixes_advertised),
            (Some(9), 2)
        );

        handle.withdraw("router", net(PREFIX_V4));
        handle.withdraw("router", net(PREFIX_V6));
        let (_, took) = wait_for("both prefixes withdrawn", WAIT, || {
            (frr_path(&lab, PREFIX_V4).is_none() && frr_path(&lab, PREFIX_V6).is_none())
                .then_some(())
        })
        .await;
        println!("withdraw -> frr lost it: {took:?}");
        handle.shutdown().await;
        task.await.expect("the driver ends");
    });
}

#[test]
fn an_ipv6_session_carries_ipv6_prefixes() {
    let lab = lab(None);
    in_host(&lab, Host::Node(1), || async {
        let (handle, task) = spawn_driver();
        handle.add_peer(peer(1, ROUTER_V6, None));
        established(&lab, &handle, "fd00:250::11").await;
        handle.announce("router", net(PREFIX_V6), route(None));
        let (path, _) = wait_for("the ipv6 prefix at the router", WAIT, || {
            frr_path(&lab, PREFIX_V6)
        })
        .await;
        assert_eq!(path["peer"]["peerId"], "fd00:250::11");
        assert_eq!(path["nexthops"][0]["ip"], "fd00:250::11");
        assert_eq!(community(&path), "64500:100");
        assert_eq!(path["largeCommunity"]["string"], "64500:1:2");
        handle.shutdown().await;
        task.await.expect("the driver ends");
    });
}

#[test]
fn tcp_md5_sessions_establish_with_the_right_password_only() {
    let lab = lab(Some("labsecret"));
    in_host(&lab, Host::Node(1), || async {
        let (handle, task) = spawn_driver();
        handle.add_peer(peer(1, ROUTER_V4, Some("labsecret")));
        let took = established(&lab, &handle, "192.168.250.11").await;
        println!("md5: connect -> established: {took:?}");
        handle.announce("router", net(PREFIX_V4), route(None));
        wait_for("the prefix over the signed session", WAIT, || {
            frr_path(&lab, PREFIX_V4)
        })
        .await;

        // The same peer with another password restarts: it must never come up, neither by
        // our dial nor by the router's connection to our listener.
        handle.add_peer(peer(1, ROUTER_V4, Some("wrongsecret")));
        wait_for("the restart", WAIT, || {
            (frr_state(&lab, "192.168.250.11") != "Established").then_some(())
        })
        .await;
        let until = Instant::now() + Duration::from_secs(12);
        while Instant::now() < until {
            assert_ne!(our_state(&handle), "established");
            assert_ne!(frr_state(&lab, "192.168.250.11"), "Established");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }

        let neighbor = neighbor(&lab, "192.168.250.11");
        assert_eq!(
            neighbor["lastNotificationReason"], "Cease/Administrative Reset",
            "{neighbor}"
        );

        // The right one again, and the prefix announced before is back.
        handle.add_peer(peer(1, ROUTER_V4, Some("labsecret")));
        let took = established(&lab, &handle, "192.168.250.11").await;
        println!("md5: right password again -> established: {took:?}");
        wait_for("the kept prefix", WAIT, || frr_path(&lab, PREFIX_V4)).await;
        handle.shutdown().await;
        task.await.expect("the driver ends");
    });
}

#[test]
fn an_ibgp_session_from_node3_carries_local_pref() {
    let lab = lab(None);
    in_host(&lab, Host::Node(3), || async {
        let (handle, task) = spawn_driver();
        handle.add_peer(peer(3, ROUTER_V4, None));
        established(&lab, &handle, "192.168.250.13").await;
        handle.announce("router", net(PREFIX_V4), route(Some(250)));
        let (path, _) = wait_for("the prefix at the router", WAIT, || {
            frr_path(&lab, PREFIX_V4)
        })
        .await;
        assert_eq!(path["locPrf"], 250);
        assert_eq!(path["peer"]["type"], "internal");
        handle.shutdown().await;
        task.await.expect("the driver ends");
    });
}

#[test]
fn graceful_shutdown_adds_community_65535_0_to_announced_routes() {
    let lab = lab(None);
    in_host(&lab, Host::Node(1), || async {
        let (handle, task) = spawn_driver();
        handle.add_peer(peer(1, ROUTER_V4, None));
        handle.announce("router", net(PREFIX_V4), route(None));
        handle.announce("router", net(PREFIX_V6), route(None));
        established(&lab, &handle, "192.168.250.11").await;
        wait_for("the prefix", WAIT, || frr_path(&lab, PREFIX_V4)).await;
        handle.set_graceful_shutdown(true);
        for prefix in [PREFIX_V4, PREFIX_V6] {
            let (path, took) = wait_for("graceful-shutdown at the router", WAIT, || {
                frr_path(&lab, prefix).filter(|path| community(path).contains("graceful-shutdown"))
            })
            .await;
            println!("graceful shutdown -> frr sees it on {prefix}: {took:?}");
            assert_eq!(community(&path), "64500:100 graceful-shutdown");
        }
        handle.shutdown().await;
        task.await.expect("the driver ends");
    });
}

/// Our side only listens: the peer's port is one where nothing answers, so every dial of ours
/// is refused, and only the router's own connection to our port 179 can bring the session up.
#[test]
fn the_routers_connection_to_our_listener_establishes_the_session() {
    let lab = lab(None);
    in_host(&lab, Host::Node(1), || async {
        let (handle, task) = spawn_driver();
        handle.add_peer(PeerOptions {
            port: 1179,
            ..peer(1, ROUTER_V4, None)
        });
        let took = established(&lab, &handle, "192.168.250.11").await;
        println!("passive: added -> established: {took:?}");
        handle.announce("router", net(PREFIX_V4), route(None));
        wait_for("the prefix over the accepted connection", WAIT, || {
            frr_path(&lab, PREFIX_V4)
        })
        .await;
        handle.shutdown().await;
        task.await.expect("the driver ends");
    });
}

#[test]
fn a_torn_down_session_sends_bfd_down_and_comes_back() {
    let lab = lab(None);
    in_host(&lab, Host::Node(1), || async {
        let (handle, task) = spawn_driver();
        handle.add_peer(peer(1, ROUTER_V4, None));
        established(&lab, &handle, "192.168.250.11").await;
        handle.tear_down("router", "bfd_down");
        let (_, took) = wait_for("the router to see the session go", WAIT, || {
            let neighbor = neighbor(&lab, "192.168.250.11");
            (neighbor["bgpState"] != "Established").then_some(neighbor)
        })
        .await;
        println!("tear down -> frr lost the session: {took:?}");
        let neighbor = neighbor(&lab, "192.168.250.11");
        assert_eq!(neighbor["lastErrorCodeSubcode"], "060A", "{neighbor}");
        assert_eq!(
            handle.status()[0].last_down_reason.as_deref(),
            Some("bfd_down")
        );
        let took = established(&lab, &handle, "192.168.250.11").await;
        println!("tear down -> established again: {took:?}");
        handle.shutdown().await;
        task.await.expect("the driver ends");
    });
}

/// FRR re-creates its BFD session when BGP comes up and signals Down once; that Down must not
/// cost the session, a later one must.
#[test]
fn a_peer_signalled_tear_down_is_tolerated_right_after_established_only() {
    let lab = lab(None);
    in_host(&lab, Host::Node(1), || async {
        let (handle, task) = spawn_driver();
        handle.add_peer(peer(1, ROUTER_V4, None));
        established(&lab, &handle, "192.168.250.11").await;
        handle.tear_down_settled("router", "bfd_neighbor_down");
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(handle.status()[0].state, "established");
        assert_eq!(neighbor(&lab, "192.168.250.11")["bgpState"], "Established");

        tokio::time::sleep(Duration::from_secs(3)).await;
        handle.tear_down_settled("router", "bfd_neighbor_down");
        wait_for("the router to see the session go", WAIT, || {
            let neighbor = neighbor(&lab, "192.168.250.11");
            (neighbor["bgpState"] != "Established").then_some(())
        })
        .await;
        assert_eq!(
            handle.status()[0].last_down_reason.as_deref(),
            Some("bfd_neighbor_down")
        );
        handle.shutdown().await;
        task.await.expect("the driver ends");
    });
}

#[test]
fn shutdown_sends_cease_administrative_shutdown() {
    let lab = lab(None);
    in_host(&lab, Host::Node(1), || async {
        let (handle, task) = spawn_driver();
        handle.add_peer(peer(1, ROUTER_V4, None));
        established(&lab, &handle, "192.168.250.11").await;
        handle.shutdown().await;
        task.await.expect("the driver ends");
        let neighbor = neighbor(&lab, "192.168.250.11");
        assert_ne!(neighbor["bgpState"], "Established");
        assert_eq!(
            neighbor["lastNotificationReason"], "Cease/Administrative Shutdown",
            "{neighbor}"
        );
        assert_eq!(neighbor["lastResetDueTo"], "BGP Notification received");
    });
}

#[test]
fn a_connection_from_an_unknown_address_is_closed_at_once() {
    let lab = lab(None);
    in_host(&lab, Host::Node(1), || async {
        let (handle, task) = spawn_driver();
        handle.add_peer(peer(1, ROUTER_V4, None));
        established(&lab, &handle, "192.168.250.11").await;
        // A raw client in the client's namespace; the async wait keeps the driver running.
        let client = "import socket, time
s = socket.create_connection(('192.168.250.11', 179), 2)
s.settimeout(3)
start = time.monotonic()
try:
    outcome = 'eof' if s.recv(64) == b'' else 'data'
except ConnectionResetError:
    outcome = 'reset'
except socket.timeout:
    outcome = 'open'
print(outcome, int((time.monotonic() - start) * 1000))";
        let mut command = lab.command(Host::Client, "python3");
        command.args(["-c", client]);
        let output = tokio::process::Command::from(command)
            .output()
            .await
            .expect("python3 runs");
        let stdout = String::from_utf8_lossy(&output.stdout);
        println!("unknown address: {stdout}");
        let (outcome, millis) = stdout.trim().split_once(' ').expect("outcome and time");
        assert!(matches!(outcome, "eof" | "reset"), "{stdout}");
        assert!(
            millis.parse::<u64>().expect("milliseconds") < 1000,
            "{stdout}"
        );
        assert_eq!(our_state(&handle), "established");
        handle.shutdown().await;
        task.await.expect("the driver ends");
    });
}

#[test]
fn a_removed_peer_gets_cease_and_is_forgotten() {
    let lab = lab(None);
    in_host(&lab, Host::Node(1), || async {
        let (handle, task) = spawn_driver();
        handle.add_peer(peer(1, ROUTER_V4, None));
        handle.announce("router", net(PREFIX_V4), route(None));
        established(&lab, &handle, "192.168.250.11").await;
        wait_for("the prefix", WAIT, || frr_path(&lab, PREFIX_V4)).await;
        handle.remove_peer("router");
        wait_for("the router to lose the session", WAIT, || {
            (frr_state(&lab, "192.168.250.11") != "Established").then_some(())
        })
        .await;
        let neighbor = neighbor(&lab, "192.168.250.11");
        assert_eq!(
            neighbor["lastNotificationReason"], "Cease/Administrative Shutdown",
            "{neighbor}"
        );
        assert_eq!(frr_path(&lab, PREFIX_V4), None);
        assert!(handle.status().is_empty());
        handle.shutdown().await;
        task.await.expect("the driver ends");
    });
}

/// 10,000 service addresses, before and after Established, leave packed into full UPDATEs (about 800 /32
/// prefixes fit in 4,096 bytes), not one message each. The timing is the benchmark's job
/// (`cargo bench -p metallb-speaker --bench lab`); it is only printed here.
#[test]
fn ten_thousand_prefixes_reach_the_router_packed_into_few_updates() {
    let lab = lab(None);
    in_host(&lab, Host::Node(1), || async {
        let (handle, task) = spawn_driver();
        let start = Instant::now();
        handle.add_peer(peer(1, ROUTER_V4, None));
        for index in 0..10_000u32 {
            let address = std::net::Ipv4Addr::from(0x0a00_0000 + index);
            handle.announce("router", IpNet::from(IpAddr::V4(address)), route(None));
        }
        let established = established(&lab, &handle, "192.168.250.11").await;
        let at_established = Instant::now();
        wait_for("10,000 prefixes at the router", WAIT, || {
            let neighbor = neighbor(&lab, "192.168.250.11");
            let accepted = &neighbor["addressFamilyInfo"]["ipv4Unicast"]["acceptedPrefixCounter"];
            (accepted.as_u64() == Some(10_000)).then_some(())
        })
        .await;
        let (total, after) = (start.elapsed(), at_established.elapsed());
        let updates = handle.status()[0].updates_sent;
        println!(
            "10,000 prefixes in {updates} updates: established after {established:?}, \
             all at the router {after:?} later, {total:?} in all"
        );
        assert!(updates <= 16, "{updates} UPDATEs for 10,000 prefixes");

        // The same on an established session: a burst of commands is taken as a whole.
        for index in 0..10_000u32 {
            let address = std::net::Ipv4Addr::from(0x0b00_0000 + index);
            handle.announce("router", IpNet::from(IpAddr::V4(address)), route(None));
        }
        wait_for("20,000 prefixes at the router", WAIT, || {
            let neighbor = neighbor(&lab, "192.168.250.11");
            let accepted = &neighbor["addressFamilyInfo"]["ipv4Unicast"]["acceptedPrefixCounter"];
            (accepted.as_u64() == Some(20_000)).then_some(())
        })
        .await;
        let burst = handle.status()[0].updates_sent - updates;
        assert!(burst <= 16, "{burst} UPDATEs for 10,000 more prefixes");
        handle.shutdown().await;
        task.await.expect("the driver ends");
    });
}
