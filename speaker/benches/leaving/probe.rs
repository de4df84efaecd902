//! What a client sees while nodes leave: an ARP prober in the lab's client (one request every
//! 10 ms, the MACs that answered each one) and a sampler of FRR's RIB (the nodes FRR has a
//! path for the VIP from, every 10 ms, through one long-running vtysh). Both count time from
//! one origin, [`Probes::origin`], so the scenario's events line up with their samples.
//! They run on any [`Stage`]: the speaker-process lab ([`ClusterLab`]) or the local cluster of
//! real kubelets (`upgrade.rs`), both a lab whose nodes are Nodes `node1`..`node3` or named so.

use std::io::{BufRead, BufReader, Lines, Write};
use std::net::Ipv4Addr;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use metallb_testenv::lab::{Host, Lab};
use serde_json::Value;

use crate::common::cluster::{ClusterLab, NODES};

/// A lab the probes run in: its hosts' commands, its FRR pathspace, and the Node name behind a
/// node's MAC or address.
pub trait Stage {
    /// `program` in `host`'s network namespace.
    fn command(&self, host: Host, program: &str) -> Command;
    /// The lab's name (its FRR pathspace, `vtysh -N`).
    fn lab_name(&self) -> &str;
    /// The Node name of the lab node with MAC `mac`.
    fn node_of_mac(&self, mac: &str) -> Option<String>;
    /// The Node name of the lab node with IPv4 address `address`.
    fn node_of_address(&self, address: &str) -> Option<String>;
}

impl Stage for ClusterLab {
    fn command(&self, host: Host, program: &str) -> Command {
        self.lab.command(host, program)
    }

    fn lab_name(&self) -> &str {
        self.lab.name()
    }

    fn node_of_mac(&self, mac: &str) -> Option<String> {
        ClusterLab::node_of_mac(self, mac)
    }

    fn node_of_address(&self, address: &str) -> Option<String> {
        NODES
            .iter()
            .position(|host| Lab::address(*host).0.to_string() == address)
            .map(|index| self.names[index].clone())
    }
}

/// One ARP request and one RIB sample per this period.
pub const PERIOD: Duration = Duration::from_millis(10);

/// Sends an ARP request for argv[1] from the client's eth0 (source argv[3]) every 10 ms for
/// argv[2] seconds; prints, per request, `<seconds since start> <mac,mac,...|->`: the MACs
/// that answered it within 10 ms. A prober running late (a loaded machine) sends later rather
/// than cutting a window short, so a missing answer is never an artefact of a short window.
const ARP_PROBER: &str = r#"
import socket, struct, sys, time
ip, src = socket.inet_aton(sys.argv[1]), socket.inet_aton(sys.argv[3])
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0806))
s.bind(("eth0", 0))
mac = s.getsockname()[4]
frame = b"\xff" * 6 + mac + b"\x08\x06" + struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1) + mac + src + b"\x00" * 6 + ip
s.setblocking(False)
start = time.monotonic()
print("ready", flush=True)
while True:
    sent = time.monotonic()
    if sent - start >= float(sys.argv[2]):
        break
    s.send(frame)
    macs = set()
    while time.monotonic() < sent + 0.01:
        try:
            data = s.recv(128)
        except BlockingIOError:
            time.sleep(0.0005)
            continue
        if data[12:14] == b"\x08\x06" and data[20:22] == b"\x00\x02" and data[28:32] == ip:
            macs.add(data[22:28].hex(":"))
    print("%.4f %s" % (sent - start, ",".join(sorted(macs)) or "-"), flush=True)
"#;

/// What the client saw for one ARP request: when it went out and which nodes answered.
#[derive(Debug, Clone)]
pub struct Answer {
    pub at: f64,
    pub nodes: Vec<String>,
}

/// FRR's paths for the VIP at one moment: from which nodes, and whether any is stale
/// (kept by graceful restart).
#[derive(Debug, Clone)]
pub struct RibSample {
    pub at: f64,
    pub nodes: Vec<String>,
    pub stale: bool,
}

/// The ARP prober and the RIB sampler, running.
pub struct Probes {
    origin: Instant,
    arp: Child,
    /// Reads the prober's lines as they come: a full pipe would stop the prober mid-run.
    arp_lines: JoinHandle<Vec<String>>,
    rib_done: Arc<AtomicBool>,
    rib: JoinHandle<Vec<RibSample>>,
}

impl Probes {
    /// Starts probing `vip` (ARP) and `vip/32` (FRR) for `seconds`.
    pub fn start(cluster: &impl Stage, vip: Ipv4Addr, seconds: f64) -> Probes {
        let (client, _) = Lab::address(Host::Client);
        let mut arp = cluster
            .command(Host::Client, "python3")
            .args(["-c", ARP_PROBER])
            .args([vip.to_string(), seconds.to_string(), client.to_string()])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut arp_lines = BufReader::new(arp.stdout.take().unwrap()).lines();
        let mut vtysh = Vtysh::open(cluster);
        let prefix = format!("{vip}/32");
        vtysh.paths(&prefix);
        assert_eq!(arp_lines.next().unwrap().unwrap(), "ready");
        let arp_lines = std::thread::spawn(move || arp_lines.map_while(Result::ok).collect());
        let origin = Instant::now();
        let rib_done = Arc::new(AtomicBool::new(false));
        let done = rib_done.clone();
        let rib = std::thread::spawn(move || {
            let mut samples = Vec::new();
            while !done.load(Ordering::Relaxed) {
                let (peers, stale) = vtysh.paths(&prefix);
                let at = origin.elapsed().as_secs_f64();
                samples.push(RibSample {
                    at,
                    nodes: peers,
                    stale,
                });
                std::thread::sleep(PERIOD);
            }
            samples
        });
        Probes {
            origin,
            arp,
            arp_lines,
            rib_done,
            rib,
        }
    }

    /// Seconds since the probes started.
    pub fn now(&self) -> f64 {
        self.origin.elapsed().as_secs_f64()
    }

    /// Waits for the prober to finish and returns both series, nodes by their Node names.
    pub fn finish(mut self, cluster: &impl Stage) -> (Vec<Answer>, Vec<RibSample>) {
        let answers = self
            .arp_lines
            .join()
            .unwrap()
            .into_iter()
            .filter_map(|line| {
                let (at, macs) = line.split_once(' ')?;
                let nodes = macs
                    .split(',')
                    .filter_map(|mac| cluster.node_of_mac(mac))
                    .collect();
                Some(Answer {
                    at: at.parse().ok()?,
                    nodes,
                })
            })
            .collect();
        let _ = self.arp.wait();
        self.rib_done.store(true, Ordering::Relaxed);
        let mut rib = self.rib.join().unwrap();
        for sample in &mut rib {
            sample.nodes = sample
                .nodes
                .iter()
                .filter_map(|peer| cluster.node_of_address(peer))
                .collect();
        }
        (answers, rib)
    }
}

/// One vtysh attached to the router's bgpd, answering a command per line on its stdin (a new
/// vtysh per query takes 60 ms or more).
struct Vtysh {
    child: Child,
    input: ChildStdin,
    output: Lines<BufReader<ChildStdout>>,
}

impl Vtysh {
    fn open(lab: &impl Stage) -> Vtysh {
        let mut child = lab
            .command(Host::Router, "vtysh")
            .args(["-N", lab.lab_name(), "-d", "bgpd"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let input = child.stdin.take().unwrap();
        let output = BufReader::new(child.stdout.take().unwrap()).lines();
        Vtysh {
            child,
            input,
            output,
        }
    }

    /// The peers FRR has a path for `prefix` from, and whether any path is stale. vtysh
    /// echoes the prompt and the command, then prints the JSON object, ending with a line `}`.
    fn paths(&mut self, prefix: &str) -> (Vec<String>, bool) {
        writeln!(self.input, "show bgp ipv4 unicast {prefix} json").unwrap();
        let mut json = String::new();
        for line in self.output.by_ref() {
            let line = line.unwrap();
            if line == "{}" {
                return (Vec::new(), false);
            }
            if line == "{" || !json.is_empty() {
                json.push_str(&line);
                if line == "}" {
                    break;
                }
            }
        }
        let route: Value = serde_json::from_str(&json).unwrap_or(Value::Null);
        let paths = route["paths"].as_array().cloned().unwrap_or_default();
        let stale = paths.iter().any(|p| p["stale"] == Value::Bool(true));
        let peers = paths
            .iter()
            .filter_map(|p| p["peer"]["peerId"].as_str().map(str::to_owned))
            .collect();
        (peers, stale)
    }
}

impl Drop for Vtysh {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Milliseconds in `[from, to)` where `count(answer)` holds: each request stands for the time
/// until the next one.
pub fn ms_where(answers: &[Answer], from: f64, to: f64, count: impl Fn(&Answer) -> bool) -> f64 {
    answers
        .windows(2)
        .filter(|w| w[0].at >= from && w[0].at < to && count(&w[0]))
        .map(|w| (w[1].at.min(to) - w[0].at) * 1000.0)
        .fold(0.0, |total, ms| total + ms)
}

/// The longest stretch of consecutive requests in `[from, to)` where `count(answer)` holds,
/// in ms (from the first of them to the next request after the last).
pub fn longest_where(
    answers: &[Answer],
    from: f64,
    to: f64,
    count: impl Fn(&Answer) -> bool,
) -> f64 {
    let mut longest: f64 = 0.0;
    let mut began: Option<f64> = None;
    for w in answers
        .windows(2)
        .filter(|w| w[0].at >= from && w[0].at < to)
    {
        if count(&w[0]) {
            let start = *began.get_or_insert(w[0].at);
            longest = longest.max((w[1].at - start) * 1000.0);
        } else {
            began = None;
        }
    }
    longest
}

/// The time of the last request `node` answered, if any.
pub fn last_answer_of(answers: &[Answer], node: &str) -> Option<f64> {
    answers
        .iter()
        .rev()
        .find(|a| a.nodes.iter().any(|n| n == node))
        .map(|a| a.at)
}

/// The time of the first request at or after `from` that `node` answered.
pub fn first_answer_of(answers: &[Answer], node: &str, from: f64) -> Option<f64> {
    answers
        .iter()
        .find(|a| a.at >= from && a.nodes.iter().any(|n| n == node))
        .map(|a| a.at)
}

/// Sampled time in `[from, to)` where `holds(sample)`, in ms: each sample stands for the time
/// until the next one.
pub fn rib_ms_where(
    samples: &[RibSample],
    from: f64,
    to: f64,
    holds: impl Fn(&RibSample) -> bool,
) -> f64 {
    samples
        .windows(2)
        .filter(|w| w[0].at >= from && w[0].at < to && holds(&w[0]))
        .map(|w| (w[1].at.min(to) - w[0].at) * 1000.0)
        // Not `sum`: an empty float sum is -0.0.
        .fold(0.0, |total, ms| total + ms)
}

/// The time of the first sample at or after `from` where `holds(sample)`.
pub fn rib_first(
    samples: &[RibSample],
    from: f64,
    holds: impl Fn(&RibSample) -> bool,
) -> Option<f64> {
    samples
        .iter()
        .find(|s| s.at >= from && holds(s))
        .map(|s| s.at)
}

/// Who answered when, from `from` on: `t=<s> <nodes>` each time the set of answering nodes
/// changes (`-` for none), times relative to `from`.
pub fn answer_changes(answers: &[Answer], from: f64) -> String {
    let mut out = Vec::new();
    let mut last: Option<&[String]> = None;
    for answer in answers.iter().filter(|a| a.at >= from) {
        if last != Some(answer.nodes.as_slice()) {
            let nodes = if answer.nodes.is_empty() {
                "-".to_owned()
            } else {
                answer.nodes.join("+")
            };
            out.push(format!("{:.2} {nodes}", answer.at - from));
            last = Some(answer.nodes.as_slice());
        }
    }
    out.join(", ")
}
