//! `metallb-speaker run` in the lab against FRR, arping and ndisc6: the runner's wiring of the
//! drivers (static configuration, reload, BFD tearing BGP down, graceful exit, `show`).

mod common;

use std::{
    net::IpAddr,
    thread,
    time::{Duration, Instant},
};

use common::{
    Speaker, frr_bfd_status, frr_neighbour, frr_route, frr_state, wait_established, wait_for,
};
use metallb_testenv::lab::{Host, Lab, LabOptions};

const SECOND: Duration = Duration::from_secs(1);
const POLL: Duration = Duration::from_millis(20);

fn node4(n: u8) -> IpAddr {
    Lab::address(Host::Node(n)).0.into()
}

/// node1 (eBGP) towards the router, announcing `prefixes` with communities.
fn ebgp(extra_peer: &str, bfd: &str, prefixes: &[&str]) -> String {
    format!(
        r#"
bfdProfiles:
  - name: lab
    receiveInterval: 300
    transmitInterval: 300
    detectMultiplier: 3
peers:
  - name: router
    myASN: 64500
    peerASN: 64512
    peerAddress: 192.168.250.1
    sourceAddress: 192.168.250.11
    holdTime: 9s
    connectTime: 2s
{extra_peer}{bfd}
bgpAdvertisements:
  - prefixes: [{}]
    communities: ["64500:100", "large:64500:1:2"]
"#,
        prefixes
            .iter()
            .map(|p| format!("\"{p}\""))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

#[test]
fn prefixes_reach_frr_over_md5_with_communities_and_local_pref_and_leave_on_reload() {
    let lab = Lab::up(LabOptions {
        bgp_password: Some("labsecret".into()),
        ..LabOptions::default()
    })
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let both = ["192.168.250.210/32", "fd00:250::210/128"];
    let node1 = Speaker::start(
        &lab,
        Host::Node(1),
        dir.path(),
        &ebgp("    password: labsecret\n", "", &both),
        &[],
    );
    let node3 = Speaker::start(
        &lab,
        Host::Node(3),
        dir.path(),
        r#"
peers:
  - name: router
    myASN: 64512
    peerASN: 64512
    peerAddress: 192.168.250.1
    sourceAddress: 192.168.250.13
    holdTime: 9s
    password: labsecret
bgpAdvertisements:
  - prefixes: ["192.168.250.220/32"]
    localPref: 250
"#,
        &[],
    );
    wait_established(&lab, node4(1), 20 * SECOND)
        .unwrap_or_else(|| panic!("node1 never Established:\n{}", node1.log()));
    wait_established(&lab, node4(3), 20 * SECOND)
        .unwrap_or_else(|| panic!("node3 never Established:\n{}", node3.log()));

    let v4 =
        wait_for(10 * SECOND, POLL, || frr_route(&lab, both[0])).expect("FRR has the IPv4 prefix");
    let path = &v4["paths"][0];
    assert!(
        path["community"]["string"]
            .as_str()
            .unwrap()
            .contains("64500:100"),
        "{path}"
    );
    assert_eq!(path["largeCommunity"]["string"], "64500:1:2", "{path}");
    assert_eq!(path["nexthops"][0]["ip"], "192.168.250.11", "{path}");
    // IPv6 NLRI over the IPv4 session, with node1's global IPv6 address as next hop.
    let v6 =
        wait_for(10 * SECOND, POLL, || frr_route(&lab, both[1])).expect("FRR has the IPv6 prefix");
    assert_eq!(v6["paths"][0]["nexthops"][0]["ip"], "fd00:250::11", "{v6}");
    assert!(
        v6["paths"][0]["community"]["string"]
            .as_str()
            .unwrap()
            .contains("64500:100")
    );
    // LOCAL_PREF travels over iBGP only.
    let ibgp = wait_for(10 * SECOND, POLL, || frr_route(&lab, "192.168.250.220/32"))
        .expect("FRR has node3's prefix");
    assert_eq!(ibgp["paths"][0]["locPrf"], 250, "{ibgp}");

    let bgp = node1.show("bgp");
    assert_eq!(bgp[0]["state"], "established", "{bgp}");
    assert_eq!(bgp[0]["prefixes_advertised"], 2, "{bgp}");
    assert!(node1.show_table("bgp").contains("router"));

    node1.reload(&ebgp("    password: labsecret\n", "", &both[..1]));
    wait_for(5 * SECOND, POLL, || {
        frr_route(&lab, both[1]).is_none().then_some(())
    })
    .expect("the removed IPv6 prefix is withdrawn");
    assert!(frr_route(&lab, both[0]).is_some(), "the kept prefix stays");
    assert_eq!(
        frr_state(&lab, node4(1)),
        "Established",
        "a route change does not reset the session"
    );
}

#[test]
fn sigterm_with_graceful_shutdown_marks_the_routes_then_ceases() {
    let lab = Lab::up(LabOptions::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let prefix = "192.168.250.211/32";
    let mut node1 = Speaker::start(
        &lab,
        Host::Node(1),
        dir.path(),
        &ebgp("", "", &[prefix]),
        &["--graceful-shutdown", "--graceful-shutdown-delay", "3s"],
    );
    wait_established(&lab, node4(1), 20 * SECOND).expect("Established");
    wait_for(10 * SECOND, POLL, || frr_route(&lab, prefix)).expect("FRR has the prefix");

    let start = Instant::now();
    node1.terminate();
    let marked = wait_for(3 * SECOND, POLL, || {
        let route = frr_route(&lab, prefix)?;
        let communities = route["paths"][0]["community"]["string"]
            .as_str()?
            .to_owned();
        communities
            .contains("graceful-shutdown")
            .then_some(start.elapsed())
    });
    assert!(
        marked.is_some(),
        "FRR never saw the GRACEFUL_SHUTDOWN community:\n{}",
        node1.log()
    );
    // The route stays, marked, for the delay; then the session ends with a Cease.
    thread::sleep(SECOND);
    assert!(
        frr_route(&lab, prefix).is_some(),
        "withdrawn before the delay was over"
    );
    wait_for(6 * SECOND, POLL, || {
        frr_route(&lab, prefix).is_none().then_some(())
    })
    .expect("withdrawn after the delay");
    let neighbour = frr_neighbour(&lab, node4(1));
    assert!(neighbour.to_string().contains("Cease"), "{neighbour}");
    wait_for(5 * SECOND, POLL, || (!node1.is_running()).then_some(())).expect("the speaker exits");
}

#[test]
fn a_cut_link_is_detected_by_bfd_and_takes_the_bgp_session_down() {
    let lab = Lab::up(LabOptions::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let node1 = Speaker::start(
        &lab,
        Host::Node(1),
        dir.path(),
        &ebgp("", "    bfdProfile: lab\n", &["192.168.250.212/32"]),
        &[],
    );
    wait_established(&lab, node4(1), 20 * SECOND).expect("Established");
    wait_for(15 * SECOND, POLL, || {
        (frr_bfd_status(&lab, node4(1)) == "up").then_some(())
    })
    .unwrap_or_else(|| panic!("BFD never came up on FRR:\n{}", node1.log()));
    wait_for(5 * SECOND, POLL, || {
        (!node1.events("bfd session up").is_empty()).then_some(())
    })
    .expect("our BFD Up");

    // FRR re-creates its BFD session when BGP comes up; that must not have reset BGP.
    assert!(
        node1.events("bgp session down").is_empty(),
        "{}",
        node1.log()
    );

    let start = Instant::now();
    lab.link(Host::Node(1), false).unwrap();
    let detected = wait_for(3 * SECOND, Duration::from_millis(5), || {
        (!node1.events("bfd session down").is_empty()).then(|| start.elapsed())
    })
    .unwrap_or_else(|| panic!("BFD never went down:\n{}", node1.log()));
    assert!(
        detected < Duration::from_millis(1500),
        "detected after {detected:?} at 300 ms x 3"
    );
    wait_for(SECOND, POLL, || {
        (!node1.events("bgp session down").is_empty()).then_some(())
    })
    .unwrap_or_else(|| panic!("BFD down did not take BGP down:\n{}", node1.log()));
    println!("BFD at 300 ms x 3 detected the cut after {detected:?}");

    lab.link(Host::Node(1), true).unwrap();
    wait_established(&lab, node4(1), 30 * SECOND).expect("the session comes back with the link");
}

#[test]
fn arping_and_ndisc6_get_the_owner_and_a_takeover_moves_the_client_entry() {
    let lab = Lab::up(LabOptions::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let owned = |addresses: &str| format!("l2Advertisements:\n  - addresses: [{addresses}]\n");
    let (v4, v6) = ("192.168.250.201", "fd00:250::201");
    let node1 = Speaker::start(
        &lab,
        Host::Node(1),
        dir.path(),
        &owned(&format!("{v4}, \"{v6}\"")),
        &[],
    );
    let node2 = Speaker::start(&lab, Host::Node(2), dir.path(), "", &[]);
    let (mac1, mac2) = (Lab::mac(Host::Node(1)), Lab::mac(Host::Node(2)));

    let arp = wait_for(5 * SECOND, POLL, || lab.arp(v4.parse().unwrap()).unwrap());
    assert_eq!(arp.as_deref(), Some(mac1.as_str()));
    assert_eq!(
        lab.ndp(v6.parse().unwrap()).unwrap().as_deref(),
        Some(mac1.as_str())
    );
    assert_eq!(
        lab.arp("192.168.250.202".parse().unwrap()).unwrap(),
        None,
        "nobody owns .202"
    );
    assert!(node1.show("l2").to_string().contains(v4));

    // The client knows node1 as the owner; node1 gives the addresses up and node2 takes over.
    for ip in [v4, v6] {
        let status = lab
            .command(Host::Client, "ip")
            .args([
                "neigh", "replace", ip, "lladdr", &mac1, "dev", "eth0", "nud", "stale",
            ])
            .status()
            .unwrap();
        assert!(status.success());
    }
    // Linux ignores a new lladdr within `locktime` (1 s) of the last update.
    thread::sleep(Duration::from_millis(1100));
    node1.reload("");
    let start = Instant::now();
    node2.reload(&owned(&format!("{v4}, \"{v6}\"")));
    for ip in [v4, v6] {
        let ip: IpAddr = ip.parse().unwrap();
        let moved = wait_for(2 * SECOND, Duration::from_millis(10), || {
            (lab.neighbour(Host::Client, ip).unwrap().as_deref() == Some(mac2.as_str()))
                .then(|| start.elapsed())
        });
        assert!(
            moved.is_some(),
            "the client's entry for {ip} still points at node1:\n{}",
            node2.log()
        );
        println!(
            "client entry for {ip} moved to node2 after {:?}",
            moved.unwrap()
        );
    }
    assert_eq!(
        lab.arp(v4.parse().unwrap()).unwrap().as_deref(),
        Some(mac2.as_str())
    );
}
