//! Heartbeats between the speakers, end to end: three lab nodes run `metallb-speaker` against
//! the real API server with a membership key, as the DaemonSet does, and the client probes the
//! layer 2 VIP with an ARP request every 10 ms and records which node answers when.
//!
//! - a killed speaker's VIP moves to the next node in well under the Lease duration;
//! - a speaker stopped with SIGTERM hands the VIP over: the next owner answers before the old
//!   one falls silent, so the client sees no gap;
//! - a speaker cut from the API server while its peers reach it fences itself within the Lease
//!   duration + 1 s, the next node answers, and it takes the VIP back once the API is back.

mod common;

use std::io::{BufRead, BufReader};
use std::net::IpAddr;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::cluster::{ClusterLab, VIP, assign_ingress, lab_services, winner_of};
use metallb_testenv::lab::{Host, Lab};
use metallb_testenv::{ControlPlane, test_name};

/// The harness's Lease duration (`--fencing-lease-duration=4s`).
const LEASE: Duration = Duration::from_secs(4);

/// Sends an ARP request for argv[1] from the client's eth0 (source argv[3]) every 10 ms for
/// argv[2] seconds and prints `<seconds since start> <mac>` for every reply.
const PROBER: &str = r#"
import socket, struct, sys, time
ip, src = socket.inet_aton(sys.argv[1]), socket.inet_aton(sys.argv[3])
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0806))
s.bind(("eth0", 0))
mac = s.getsockname()[4]
frame = b"\xff" * 6 + mac + b"\x08\x06" + struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1) + mac + src + b"\x00" * 6 + ip
s.setblocking(False)
start = time.monotonic()
print("ready", flush=True)
while time.monotonic() - start < float(sys.argv[2]):
    s.send(frame)
    end = time.monotonic() + 0.01
    while time.monotonic() < end:
        try:
            data = s.recv(128)
        except BlockingIOError:
            time.sleep(0.0005)
            continue
        if data[12:14] == b"\x08\x06" and data[20:22] == b"\x00\x02" and data[28:32] == ip:
            print("%.4f %s" % (time.monotonic() - start, data[22:28].hex(":")), flush=True)
"#;

/// The node MetalLB's election picks for the VIP among `alive`.
fn winner(alive: &[&str]) -> String {
    winner_of(IpAddr::V4(VIP), alive)
}

/// A cluster lab whose speakers share a membership key and announce the VIP, the winner
/// answering.
fn lab(cp: &ControlPlane, namespace: &str) -> ClusterLab {
    let mut cluster = ClusterLab::up(cp, "");
    cp.kubectl_with_input(["apply", "-f", "-"], &lab_services(namespace))
        .unwrap();
    assign_ingress(cp, namespace, "web", IpAddr::V4(VIP));
    let key = cluster.dir.path().join("membership-key");
    std::fs::write(&key, b"a membership key only these speakers know").unwrap();
    let key = format!("--membership-key-file={}", key.display());
    cluster.start_all(namespace, &[&key]);
    let expected = winner(&["node1", "node2", "node3"]);
    cluster.wait_owner(VIP, Some(&expected), Duration::from_secs(60));
    cluster
}

/// ARP replies seen by the client: when (since the probe started) and from which node.
struct Probe {
    child: Child,
    lines: std::io::Lines<BufReader<std::process::ChildStdout>>,
}

impl Probe {
    fn start(cluster: &ClusterLab, seconds: u32) -> Probe {
        let (client, _) = Lab::address(Host::Client);
        let mut child = cluster
            .lab
            .command(Host::Client, "python3")
            .args([
                "-c",
                PROBER,
                &VIP.to_string(),
                &seconds.to_string(),
                &client.to_string(),
            ])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        assert_eq!(lines.next().unwrap().unwrap(), "ready");
        Probe { child, lines }
    }

    /// Every reply until the probe ends, as (seconds, node).
    fn replies(mut self, cluster: &ClusterLab) -> Vec<(f64, String)> {
        let replies = self
            .lines
            .map_while(Result::ok)
            .filter_map(|line| {
                let (at, mac) = line.split_once(' ')?;
                Some((at.parse().ok()?, cluster.node_of_mac(mac)?))
            })
            .collect();
        let _ = self.child.wait();
        replies
    }
}

/// The first reply from `node` at or after `from` seconds.
fn first_from(replies: &[(f64, String)], node: &str, from: f64) -> Option<f64> {
    replies
        .iter()
        .find(|(at, n)| *at >= from && n == node)
        .map(|(at, _)| *at)
}

/// The last reply from `node`.
fn last_from(replies: &[(f64, String)], node: &str) -> Option<f64> {
    replies
        .iter()
        .rev()
        .find(|(_, n)| n == node)
        .map(|(at, _)| *at)
}

/// The longest time without any reply after `from` seconds.
fn longest_gap(replies: &[(f64, String)], from: f64) -> f64 {
    let times: Vec<f64> = replies
        .iter()
        .map(|(at, _)| *at)
        .filter(|at| *at >= from)
        .collect();
    times.windows(2).map(|w| w[1] - w[0]).fold(0.0, f64::max)
}

/// The lab of [`lab`] in a namespace of its own, the VIP's owner and the node next in line.
fn owner_and_next(cp: &ControlPlane, namespace: &str) -> (ClusterLab, String, String) {
    let cluster = lab(cp, namespace);
    let owner = winner(&["node1", "node2", "node3"]);
    let rest: Vec<&str> = ["node1", "node2", "node3"]
        .into_iter()
        .filter(|n| *n != owner)
        .collect();
    let next = winner(&rest);
    (cluster, owner, next)
}

fn index_of(cluster: &ClusterLab, node: &str) -> usize {
    cluster.names.iter().position(|n| n == node).unwrap()
}

#[test]
fn a_killed_speakers_vip_moves_within_a_second_and_a_half() {
    let cp = ControlPlane::shared();
    cp.install_crds().unwrap();
    let ns = cp.namespace(test_name!()).unwrap();
    let (mut cluster, owner, next) = owner_and_next(cp, ns.name());

    let probe = Probe::start(&cluster, 6);
    std::thread::sleep(Duration::from_secs(1));
    let killed = Instant::now();
    cluster.kill(index_of(&cluster, &owner));
    let killed_at = 1.0 + killed.elapsed().as_secs_f64();
    let replies = probe.replies(&cluster);
    let moved = first_from(&replies, &next, killed_at);
    let Some(moved) = moved else {
        panic!("{next} never answered\n{replies:?}\n{}", cluster.logs());
    };
    let failover = moved - killed_at;
    println!("SIGKILL of {owner}: {next} answers {failover:.3} s later");
    assert!(failover < 1.5, "failover took {failover:.3} s");
    assert!(failover < LEASE.as_secs_f64() / 2.0);
}

#[test]
fn a_speaker_stopped_with_sigterm_hands_its_vip_over_without_a_gap() {
    let cp = ControlPlane::shared();
    cp.install_crds().unwrap();
    let ns = cp.namespace(test_name!()).unwrap();
    let (mut cluster, owner, next) = owner_and_next(cp, ns.name());

    let probe = Probe::start(&cluster, 5);
    std::thread::sleep(Duration::from_secs(1));
    cluster.stop(index_of(&cluster, &owner));
    let replies = probe.replies(&cluster);
    let first_new = first_from(&replies, &next, 0.0);
    let last_old = last_from(&replies, &owner);
    let (Some(first_new), Some(last_old)) = (first_new, last_old) else {
        panic!("no handover seen\n{replies:?}\n{}", cluster.logs());
    };
    let gap = longest_gap(&replies, 0.0);
    println!(
        "SIGTERM of {owner}: {next} first answered at {first_new:.3} s, {owner} last at \
         {last_old:.3} s; longest gap at the client {:.0} ms",
        gap * 1000.0
    );
    assert!(
        first_new <= last_old,
        "the new owner answered only after the old one fell silent\n{}",
        cluster.logs()
    );
    assert!(gap < 0.2, "the client saw a {gap:.3} s gap");
}

#[test]
fn a_speaker_cut_from_the_api_fences_itself_and_takes_its_vip_back_when_the_api_returns() {
    let cp = ControlPlane::shared();
    cp.install_crds().unwrap();
    let ns = cp.namespace(test_name!()).unwrap();
    let (cluster, owner, next) = owner_and_next(cp, ns.name());
    let cut = index_of(&cluster, &owner);

    let probe = Probe::start(&cluster, 12);
    std::thread::sleep(Duration::from_secs(1));
    let frozen = Instant::now();
    cluster.freeze(cut);
    let frozen_at = 1.0 + frozen.elapsed().as_secs_f64();
    let replies = probe.replies(&cluster);
    let last_old = last_from(&replies, &owner).unwrap_or(0.0);
    let first_new = first_from(&replies, &next, frozen_at);
    let Some(first_new) = first_new else {
        panic!("{next} never answered\n{replies:?}\n{}", cluster.logs());
    };
    let fenced = last_old - frozen_at;
    let two_macs = (last_old - first_new).max(0.0);
    println!(
        "{owner} cut from the API: silent {fenced:.3} s later, {next} answers after {:.3} s; \
         two MACs answered for {:.0} ms",
        first_new - frozen_at,
        two_macs * 1000.0
    );
    assert!(
        fenced <= LEASE.as_secs_f64() + 1.0,
        "{owner} answered {fenced:.3} s after the cut\n{}",
        cluster.logs()
    );
    assert!(two_macs < 0.2, "two MACs answered for {two_macs:.3} s");
    assert!(
        cluster.full_logs().contains("Fenced"),
        "no fencing logged\n{}",
        cluster.logs()
    );

    cluster.thaw(cut);
    let back = Instant::now();
    cluster.wait_owner(VIP, Some(&owner), LEASE * 3);
    println!("API back: {owner} answers again after {:?}", back.elapsed());
}
