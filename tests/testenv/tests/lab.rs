//! The network lab: real namespaces, bridge, FRR, arping, ndisc6 and BIRD. Needs root.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, TcpListener};
use std::process::Command;
use std::time::{Duration, Instant};

use metallb_testenv::lab::{Host, Lab, LabOptions};

const ROUTER_MAC: &str = "02:4e:4c:00:00:01";

fn namespaces() -> String {
    let out = Command::new("ip").args(["netns", "list"]).output().unwrap();
    String::from_utf8(out.stdout).unwrap()
}

fn bgpd_listens(lab: &Lab) -> bool {
    let out = lab
        .command(Host::Router, "ss")
        .args(["-Htln", "sport = :179"])
        .output()
        .unwrap();
    !out.stdout.is_empty()
}

/// Polls `check` every 100 ms until it holds or `timeout` passes.
fn eventually(timeout: Duration, mut check: impl FnMut() -> bool) -> bool {
    metallb_testenv::wait_for(timeout, Duration::from_millis(100), || {
        check().then_some(())
    })
    .is_some()
}

#[test]
fn two_labs_run_side_by_side_and_vanish_when_dropped() {
    let labs: Vec<String> = (0..2)
        .map(|_| {
            std::thread::spawn(|| {
                let started = Instant::now();
                let lab = Lab::up(LabOptions::default()).unwrap();
                eprintln!("lab {} up in {:?}", lab.name(), started.elapsed());
                assert!(bgpd_listens(&lab), "bgpd of {} listens on 179", lab.name());
                let (router4, router6) = Lab::address(Host::Router);
                assert_eq!(lab.arp(router4).unwrap().as_deref(), Some(ROUTER_MAC));
                assert_eq!(lab.ndp(router6).unwrap().as_deref(), Some(ROUTER_MAC));
                // the router learned the client from its request
                let (client4, _) = Lab::address(Host::Client);
                assert_eq!(
                    lab.neighbour(Host::Router, IpAddr::V4(client4)).unwrap(),
                    Some(Lab::mac(Host::Client))
                );
                let name = lab.name().to_string();
                let started = Instant::now();
                drop(lab);
                eprintln!("lab {name} down in {:?}", started.elapsed());
                name
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|t| t.join().unwrap())
        .collect();
    assert_ne!(labs[0], labs[1]);
    let left = namespaces();
    for name in &labs {
        assert!(
            !left.contains(&format!("{name}-")),
            "namespaces of {name} remain: {left}"
        );
        assert!(
            !std::path::Path::new("/run/metallb-rs/lab")
                .join(name)
                .exists()
        );
    }
}

#[test]
fn nothing_answers_for_an_unused_address() {
    let lab = Lab::up(LabOptions::default()).unwrap();
    assert_eq!(lab.arp(Ipv4Addr::new(192, 168, 250, 240)).unwrap(), None);
    assert_eq!(
        lab.ndp("fd00:250::240".parse::<Ipv6Addr>().unwrap())
            .unwrap(),
        None
    );
    assert_eq!(
        lab.neighbour(Host::Client, "192.168.250.240".parse().unwrap())
            .unwrap(),
        None
    );
}

#[test]
fn an_unplugged_node_stops_answering_until_plugged_back() {
    let lab = Lab::up(LabOptions::default()).unwrap();
    let (node1, _) = Lab::address(Host::Node(1));
    let node1_mac = Lab::mac(Host::Node(1));
    assert_eq!(lab.arp(node1).unwrap(), Some(node1_mac.clone()));
    lab.link(Host::Node(1), false).unwrap();
    assert_eq!(lab.arp(node1).unwrap(), None);
    lab.link(Host::Node(1), true).unwrap();
    assert!(eventually(Duration::from_secs(5), || lab
        .arp(node1)
        .unwrap()
        == Some(node1_mac.clone())));
}

#[test]
fn an_entered_thread_opens_sockets_inside_the_host() {
    let lab = Lab::up(LabOptions::default()).unwrap();
    let (node1, _) = Lab::address(Host::Node(1));
    assert!(
        TcpListener::bind((node1, 0)).is_err(),
        "192.168.250.11 is not an address of this machine"
    );
    std::thread::scope(|s| {
        s.spawn(|| {
            lab.enter(Host::Node(1)).unwrap();
            TcpListener::bind((node1, 0)).unwrap();
        });
    });
}

#[test]
fn a_bird_in_node1_gets_its_prefix_into_the_routers_rib() {
    let lab = Lab::up(LabOptions::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("bird.conf");
    std::fs::write(
        &conf,
        "router id 192.168.250.11;\n\
         protocol device {}\n\
         protocol static { ipv4; route 192.168.250.230/32 blackhole; }\n\
         protocol bgp {\n\
           local 192.168.250.11 as 64500; neighbor 192.168.250.1 as 64512;\n\
           connect delay time 1; error wait time 2,10;\n\
           ipv4 { import none; export all; };\n\
         }\n",
    )
    .unwrap();
    let path = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
    let (conf, sock, pid) = (
        conf.to_str().unwrap().to_string(),
        path("bird.ctl"),
        path("bird.pid"),
    );
    let started = Instant::now();
    let mut bird = lab
        .spawn(
            Host::Node(1),
            "bird",
            &["-f", "-c", &conf, "-s", &sock, "-P", &pid],
        )
        .unwrap();
    let learned = eventually(Duration::from_secs(20), || {
        let route = lab
            .vtysh_json("show bgp ipv4 unicast 192.168.250.230/32 json")
            .unwrap();
        route["paths"]
            .as_array()
            .is_some_and(|paths| !paths.is_empty())
    });
    assert!(bird.is_running(), "bird died; see {}", bird.log().display());
    assert!(
        learned,
        "no route from bird; see {} and {}",
        bird.log().display(),
        lab.state_dir().join("frr.log").display()
    );
    eprintln!(
        "route from bird in the router's RIB after {:?}",
        started.elapsed()
    );
}
