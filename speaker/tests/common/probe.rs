//! The client's view of a layer 2 VIP: an ARP request every 10 ms from the lab's client and
//! which node answered when, to measure handover gaps and windows with two MACs answering.

use std::io::{BufRead, BufReader};
use std::net::Ipv4Addr;
use std::process::{Child, Stdio};

use metallb_testenv::lab::{Host, Lab};

use super::cluster::ClusterLab;

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

/// ARP replies seen by the client: when (since the probe started) and from which node.
pub struct Probe {
    child: Child,
    lines: std::io::Lines<BufReader<std::process::ChildStdout>>,
}

impl Probe {
    /// Probes `ip` for `seconds`; returns once the prober is ready.
    pub fn start(cluster: &ClusterLab, ip: Ipv4Addr, seconds: u32) -> Probe {
        let (client, _) = Lab::address(Host::Client);
        let mut child = cluster
            .lab
            .command(Host::Client, "python3")
            .args([
                "-c",
                PROBER,
                &ip.to_string(),
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
    pub fn replies(mut self, cluster: &ClusterLab) -> Vec<(f64, String)> {
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
pub fn first_from(replies: &[(f64, String)], node: &str, from: f64) -> Option<f64> {
    replies
        .iter()
        .find(|(at, n)| *at >= from && n == node)
        .map(|(at, _)| *at)
}

/// The last reply from `node`.
pub fn last_from(replies: &[(f64, String)], node: &str) -> Option<f64> {
    replies
        .iter()
        .rev()
        .find(|(_, n)| n == node)
        .map(|(at, _)| *at)
}

/// The longest time without any reply after `from` seconds.
pub fn longest_gap(replies: &[(f64, String)], from: f64) -> f64 {
    let times: Vec<f64> = replies
        .iter()
        .map(|(at, _)| *at)
        .filter(|at| *at >= from)
        .collect();
    times.windows(2).map(|w| w[1] - w[0]).fold(0.0, f64::max)
}
