//! What the client and the router see of a cluster lab's VIP while something happens: an ARP
//! request every 10 ms from the lab's client and which node answered when, to measure handover
//! gaps and windows with two MACs answering; FRR's paths for a prefix, to see in which order
//! GRACEFUL_SHUTDOWN and the withdrawal came.

use std::io::{BufRead, BufReader};
use std::net::Ipv4Addr;
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Instant;

use metallb_testenv::lab::{Host, Lab};
use serde_json::Value;

use super::cluster::{ClusterLab, NODES};

/// Sends an ARP request for argv[1] from the client's eth0 (source argv[3]) every 10 ms for
/// argv[2] seconds and prints `sent <seconds since start>` for every request and
/// `<seconds since start> <mac>` for every reply.
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
    print("sent %.4f" % (time.monotonic() - start), flush=True)
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

/// What the client sent and which node answered when, in seconds since the probe started.
#[derive(Debug, Default)]
pub struct Record {
    /// When each request went out.
    pub sent: Vec<f64>,
    /// Every reply, as (seconds, node).
    pub replies: Vec<(f64, String)>,
}

impl Record {
    /// The longest run of requests sent from `from` to `to` seconds that got no reply before
    /// the next request went out: how many, and from the first of them to the next request
    /// that was answered. Unlike the time between replies, a stall of the prober itself (a
    /// loaded machine) does not count: it sends nothing while it stalls.
    pub fn unanswered(&self, from: f64, to: f64) -> (usize, f64) {
        let mut replies = self.replies.iter().map(|(at, _)| *at).peekable();
        let (mut run, mut run_start, mut longest) = (0, 0.0, (0, 0.0));
        for (i, sent) in self.sent.iter().enumerate() {
            let next = self.sent.get(i + 1).copied().unwrap_or(f64::INFINITY);
            let mut answered = false;
            while let Some(at) = replies.next_if(|at| *at < next) {
                answered |= at >= *sent;
            }
            if *sent > to {
                break;
            }
            if *sent < from {
                continue;
            }
            if answered {
                if run > longest.0 {
                    longest = (run, sent - run_start);
                }
                run = 0;
            } else {
                if run == 0 {
                    run_start = *sent;
                }
                run += 1;
            }
        }
        if run > longest.0 {
            longest = (
                run,
                to.min(self.sent.last().copied().unwrap_or(to)) - run_start,
            );
        }
        longest
    }
}

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
    pub fn replies(self, cluster: &ClusterLab) -> Vec<(f64, String)> {
        self.record(cluster).replies
    }

    /// Every request and reply until the probe ends.
    pub fn record(mut self, cluster: &ClusterLab) -> Record {
        let mut record = Record::default();
        for line in self.lines.by_ref().map_while(Result::ok) {
            let Some((first, second)) = line.split_once(' ') else {
                continue;
            };
            if first == "sent" {
                record.sent.extend(second.parse::<f64>().ok());
            } else if let (Ok(at), Some(node)) = (first.parse(), cluster.node_of_mac(second)) {
                record.replies.push((at, node));
            }
        }
        let _ = self.child.wait();
        record
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

/// FRR's paths for a prefix, sampled as fast as vtysh answers (every 60-100 ms): when (since
/// sampling started), and per node whether its path carries GRACEFUL_SHUTDOWN (65535:0).
pub struct RouteSamples(pub Vec<(f64, Vec<(String, bool)>)>);

impl RouteSamples {
    /// Samples `prefix` while `during` runs.
    pub fn during<T>(
        cluster: &ClusterLab,
        prefix: &str,
        during: impl FnOnce() -> T,
    ) -> (RouteSamples, T) {
        let done = AtomicBool::new(false);
        thread::scope(|scope| {
            let sampler = scope.spawn(|| {
                let start = Instant::now();
                let mut samples = Vec::new();
                // One sample after `during` returns, so that what it waited for is seen.
                loop {
                    let last = done.load(Ordering::Relaxed);
                    let route = cluster.lab.bgp_route(prefix).unwrap();
                    samples.push((start.elapsed().as_secs_f64(), paths(cluster, route)));
                    if last {
                        break;
                    }
                }
                RouteSamples(samples)
            });
            let out = during();
            done.store(true, Ordering::Relaxed);
            (sampler.join().unwrap(), out)
        })
    }

    /// The first sample at which `node`'s path carries GRACEFUL_SHUTDOWN.
    pub fn graceful_shutdown(&self, node: &str) -> Option<f64> {
        let marked = |paths: &Vec<(String, bool)>| paths.iter().any(|(n, gs)| n == node && *gs);
        self.0.iter().find(|(_, p)| marked(p)).map(|(at, _)| *at)
    }

    /// The first sample without a path from `node`.
    pub fn withdrawn(&self, node: &str) -> Option<f64> {
        let from = |paths: &Vec<(String, bool)>| paths.iter().any(|(n, _)| n == node);
        self.0.iter().find(|(_, p)| !from(p)).map(|(at, _)| *at)
    }

    /// The smallest number of paths any sample saw.
    pub fn fewest_paths(&self) -> usize {
        self.0.iter().map(|(_, p)| p.len()).min().unwrap_or(0)
    }
}

/// The nodes of a route's paths, with whether each carries GRACEFUL_SHUTDOWN.
fn paths(cluster: &ClusterLab, route: Option<Value>) -> Vec<(String, bool)> {
    let Some(route) = route else {
        return Vec::new();
    };
    let paths = route["paths"].as_array().cloned().unwrap_or_default();
    paths
        .iter()
        .filter_map(|path| {
            let from = path["peer"]["peerId"].as_str()?;
            let index = NODES
                .iter()
                .position(|h| Lab::address(*h).0.to_string() == from)?;
            let communities = path["community"]["string"].as_str().unwrap_or_default();
            let gs = communities.contains("graceful-shutdown") || communities.contains("65535:0");
            Some((cluster.names[index].clone(), gs))
        })
        .collect()
}
