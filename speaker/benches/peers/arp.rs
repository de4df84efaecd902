//! What the client sees around one event: an ARP prober in the lab's client (a request for the
//! VIP every 10 ms, each reply printed with its time and MAC), and what the replies say about
//! the event: when another node answered, the longest silence, the longest time two MACs
//! answered.

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::time::Instant;

use metallb_testenv::lab::{Host, Lab};

use crate::VIP;
use crate::common::cluster::ClusterLab;

/// A node whose replies stop for longer than this has stopped answering (the client asks every
/// 10 ms).
const SPAN_GAP: f64 = 0.2;

/// Sends an ARP request for argv[1] from the client's eth0 (source argv[3]) every 10 ms for
/// argv[2] seconds; prints `ready`, then `<seconds since ready> <mac>` for every reply.
const PROBE: &str = r#"
import socket, struct, sys, time
target, source = socket.inet_aton(sys.argv[1]), socket.inet_aton(sys.argv[3])
sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0806))
sock.bind(("eth0", 0))
own = sock.getsockname()[4]
request = b"\xff" * 6 + own + b"\x08\x06" + struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1) + own + source + b"\x00" * 6 + target
sock.setblocking(False)
begin = time.monotonic()
print("ready", flush=True)
while time.monotonic() - begin < float(sys.argv[2]):
    sock.send(request)
    until = time.monotonic() + 0.01
    while time.monotonic() < until:
        try:
            frame = sock.recv(64)
        except BlockingIOError:
            time.sleep(0.0005)
            continue
        if frame[12:14] == b"\x08\x06" and frame[20:22] == b"\x00\x02" and frame[28:32] == target:
            print("%.4f %s" % (time.monotonic() - begin, frame[22:28].hex(":")), flush=True)
"#;

/// The client's ARP replies for the VIP: (seconds since the probe began, node).
pub struct Probe {
    child: Child,
    lines: std::io::Lines<BufReader<std::process::ChildStdout>>,
    began: Instant,
}

impl Probe {
    pub fn start(cluster: &ClusterLab, seconds: f64) -> Probe {
        let (client, _) = Lab::address(Host::Client);
        let mut child = cluster
            .lab
            .command(Host::Client, "python3")
            .args([
                "-c",
                PROBE,
                &VIP.to_string(),
                &seconds.to_string(),
                &client.to_string(),
            ])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        assert_eq!(lines.next().unwrap().unwrap(), "ready");
        Probe {
            child,
            lines,
            began: Instant::now(),
        }
    }

    /// Seconds since the probe began.
    pub fn now(&self) -> f64 {
        self.began.elapsed().as_secs_f64()
    }

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

/// What the client saw around one event at `at` seconds, the owner being `owner`.
pub struct Outcome {
    /// When another node first answered, after the event.
    pub moved: Option<f64>,
    /// The longest time without any answer after the event.
    pub gap: f64,
    /// The longest time two nodes both answered, and whether they still did when the probe
    /// ended.
    pub two_macs: (f64, bool),
    /// When the owner fell silent, after the event (None: it was silent already).
    pub owner_last: Option<f64>,
    pub end: f64,
}

/// Each node's answering spans: runs of replies without a silence longer than [`SPAN_GAP`].
fn spans(replies: &[(f64, String)]) -> Vec<(String, f64, f64)> {
    let mut spans: Vec<(String, f64, f64)> = Vec::new();
    for (t, node) in replies {
        match spans.iter_mut().rev().find(|(n, _, _)| n == node) {
            Some(span) if t - span.2 <= SPAN_GAP => span.2 = *t,
            _ => spans.push((node.clone(), *t, *t)),
        }
    }
    spans
}

pub fn outcome(replies: &[(f64, String)], owner: &str, at: f64, end: f64) -> Outcome {
    let after: Vec<&(f64, String)> = replies.iter().filter(|(t, _)| *t >= at).collect();
    let moved = after.iter().find(|(_, n)| n != owner).map(|(t, _)| t - at);
    let spans = spans(replies);
    // The owner's span that was running at the event: when it ended is when the owner fell
    // silent (answers after a silence, e.g. once its link is back, are a span of their own).
    let owner_last = spans
        .iter()
        .find(|(n, start, stop)| n == owner && *start <= at && *stop >= at - SPAN_GAP)
        .map(|(_, _, stop)| (stop - at).max(0.0));
    let mut times: Vec<f64> = vec![at];
    times.extend(after.iter().map(|(t, _)| *t));
    times.push(end);
    let gap = times.windows(2).map(|w| w[1] - w[0]).fold(0.0, f64::max);
    let mut two_macs = (0.0, false);
    for (i, (a, a_start, a_end)) in spans.iter().enumerate() {
        for (b, b_start, b_end) in &spans[i + 1..] {
            let overlap = a_end.min(*b_end) - a_start.max(*b_start);
            if a != b && overlap > two_macs.0 {
                two_macs = (overlap, a_end.min(*b_end) > end - 0.5);
            }
        }
    }
    Outcome {
        moved,
        gap,
        two_macs,
        owner_last,
        end: end - at,
    }
}
