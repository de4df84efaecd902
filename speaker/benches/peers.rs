//! Our stack beside MetalLB v0.16.2 and kube-vip v0.9.2, measured in one run on the same lab
//! and printed as one table per figure with a column per system:
//!
//!   cargo bench -p metallb-speaker --bench peers
//!
//! Each system gets a lab of its own (three nodes, FRR, the client) and an API server of its
//! own, one after the other: ours (the controller in this process, `metallb-speaker` with its
//! defaults and a membership key, as the DaemonSet runs it), MetalLB's controller and speakers
//! (native BGP, memberlist at its defaults) and kube-vip (services mode, ARP, one Lease at its
//! defaults, the address named by the Service's annotation). The peers are built on first use
//! (`tests/testenv/peers/build.sh`). The client sends an ARP request for the VIP every 10 ms and
//! records which node answers when; each event acts on the node answering at that moment:
//!
//! - the owner's speaker SIGKILLed, the owner's link cut at the switch (12 s, then plugged
//!   back), SIGTERM of the owner's speaker, the owner cut from the API server (15 s): when
//!   another node answers, the longest client-side gap, the longest time two MACs answer;
//! - new Service -> ARP answer at the client and -> route at FRR, over 100 Services;
//! - speaker and controller memory at idle with one Service.
//!
//! The tables go to stdout and to `docs/benchmarks.md` with the date, machine and versions.
//! `-- kube-vip` (or `ours`, `metallb`) runs only the systems named and writes no document.

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "../tests/common/peers.rs"]
mod peers;

use std::io::{BufRead, BufReader};
use std::net::Ipv4Addr;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::cluster::{ClusterLab, NODES, lab_peers, memory_kib};
use common::wait_for;
use metallb_testenv::lab::{Host, Lab};
use metallb_testenv::peers::{KUBE_VIP_CLASS, METALLB_NAMESPACE, versions};
use metallb_testenv::{ControlPlane, Options};
use peers::{KubeVip, MetalLb, OurController, service};

/// The address every event watches.
const VIP: Ipv4Addr = Ipv4Addr::new(192, 168, 250, 201);
const LATENCY_SERVICES: usize = 100;
/// How long the link stays cut and the API server away.
const LINK_CUT: Duration = Duration::from_secs(12);
const API_CUT: Duration = Duration::from_secs(15);
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

#[derive(Clone, Copy, PartialEq)]
enum System {
    Ours,
    MetalLb,
    KubeVip,
}

impl System {
    /// The name that picks it on the command line.
    fn key(self) -> &'static str {
        match self {
            System::Ours => "ours",
            System::MetalLb => "metallb",
            System::KubeVip => "kube-vip",
        }
    }

    fn name(self) -> &'static str {
        match self {
            System::Ours => "ours",
            System::MetalLb => "MetalLB v0.16.2",
            System::KubeVip => "kube-vip v0.9.2",
        }
    }
}

/// One system on its own lab and API server.
struct Stack {
    system: System,
    /// Dropped first: the processes go before the lab and the API server.
    metallb: Option<MetalLb>,
    kube_vip: Option<KubeVip>,
    controller: Option<OurController>,
    cluster: ClusterLab,
    cp: ControlPlane,
}

/// The pool and advertisements ours and MetalLB's read, and the lab router's BGPPeers.
fn metallb_objects() -> String {
    let ns = METALLB_NAMESPACE;
    format!(
        "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {{name: bench, namespace: {ns}}}\n\
         spec: {{addresses: [192.168.250.200/29, 172.20.0.0/16], autoAssign: false}}\n---\n\
         apiVersion: metallb.io/v1beta1\nkind: L2Advertisement\nmetadata: {{name: l2, namespace: {ns}}}\nspec: {{}}\n---\n\
         apiVersion: metallb.io/v1beta1\nkind: BGPAdvertisement\nmetadata: {{name: bgp, namespace: {ns}}}\nspec: {{}}\n---\n{}",
        lab_peers(ns)
    )
}

impl Stack {
    fn up(system: System) -> Stack {
        let cp = ControlPlane::start(Options::default()).unwrap();
        let cluster = ClusterLab::up(&cp, "");
        let mut stack = Stack {
            system,
            metallb: None,
            kube_vip: None,
            controller: None,
            cluster,
            cp,
        };
        match system {
            System::Ours => {
                stack.cp.install_crds().unwrap();
                stack
                    .cp
                    .kubectl(["create", "namespace", METALLB_NAMESPACE])
                    .unwrap();
                stack.apply(&metallb_objects());
                stack.controller = Some(OurController::start(&stack.cp, METALLB_NAMESPACE));
            }
            System::MetalLb => {
                let mut metallb = MetalLb::prepare(&stack.cp, &stack.cluster, METALLB_NAMESPACE);
                stack.apply(&metallb_objects());
                metallb.start_controller(&stack.cp, &stack.cluster);
                stack.metallb = Some(metallb);
            }
            System::KubeVip => stack.kube_vip = Some(KubeVip::new()),
        }
        for index in 0..NODES.len() {
            stack.start(index);
        }
        stack.apply(&stack.service("vip", VIP));
        let owner = wait_for(Duration::from_secs(60), Duration::from_millis(200), || {
            stack.cluster.arp_owner(VIP)
        });
        assert!(
            owner.is_some(),
            "{}: nobody answers for {VIP}\n{}",
            system.name(),
            stack.logs()
        );
        stack
    }

    fn apply(&self, yaml: &str) {
        self.cp
            .kubectl_with_input(["apply", "-f", "-"], yaml)
            .unwrap();
    }

    /// A LoadBalancer Service `name` asking for `ip` the way this system reads it.
    fn service(&self, name: &str, ip: Ipv4Addr) -> String {
        match self.system {
            System::KubeVip => service(
                "default",
                name,
                &format!("kube-vip.io/loadbalancerIPs: {ip}"),
                &format!("  loadBalancerClass: {KUBE_VIP_CLASS}\n"),
            ),
            _ => service(
                "default",
                name,
                &format!("metallb.io/loadBalancerIPs: {ip}"),
                "",
            ),
        }
    }

    /// Starts node `index`'s speaker (kube-vip: its kube-vip).
    fn start(&mut self, index: usize) {
        match self.system {
            System::Ours => {
                let key = self.cluster.dir.path().join("membership-key");
                std::fs::write(&key, b"the membership key of the peers bench").unwrap();
                let key = format!("--membership-key-file={}", key.display());
                self.cluster.start(
                    index,
                    METALLB_NAMESPACE,
                    &[&key, "--fencing-lease-duration=10s", "--log-level=info"],
                );
            }
            System::MetalLb => self
                .metallb
                .as_mut()
                .unwrap()
                .start_speaker(&self.cluster, index),
            System::KubeVip => self.kube_vip.as_mut().unwrap().start(&self.cluster, index),
        }
    }

    fn kill(&mut self, index: usize) {
        match self.system {
            System::Ours => self.cluster.kill(index),
            System::MetalLb => self.metallb.as_mut().unwrap().kill(index),
            System::KubeVip => self.kube_vip.as_mut().unwrap().kill(index),
        }
    }

    fn stop(&mut self, index: usize) {
        match self.system {
            System::Ours => self.cluster.stop(index),
            System::MetalLb => self.metallb.as_mut().unwrap().stop(index),
            System::KubeVip => self.kube_vip.as_mut().unwrap().stop(index),
        }
    }

    fn speaker_pid(&self, index: usize) -> Option<u32> {
        match self.system {
            System::Ours => self.cluster.pid(index),
            System::MetalLb => self.metallb.as_ref().unwrap().speaker_pid(index),
            System::KubeVip => self.kube_vip.as_ref().unwrap().pid(index),
        }
    }

    fn logs(&self) -> String {
        match self.system {
            System::Ours => self.cluster.logs(),
            System::MetalLb => self.metallb.as_ref().unwrap().logs(),
            System::KubeVip => self.kube_vip.as_ref().unwrap().logs(),
        }
    }

    /// The index of the node answering for the VIP now.
    fn owner(&self) -> usize {
        let owner = wait_for(Duration::from_secs(60), Duration::from_millis(200), || {
            self.cluster.arp_owner(VIP)
        })
        .unwrap_or_else(|| panic!("{}: nobody answers\n{}", self.system.name(), self.logs()));
        self.cluster.names.iter().position(|n| *n == owner).unwrap()
    }

    /// Brings node `index`'s speaker back after an event and lets the system settle: kube-vip
    /// leaves the address of a killed leader on its interface, which an operator would remove.
    fn restore(&mut self, index: usize) {
        if self.system == System::KubeVip {
            let _ = self
                .cluster
                .lab
                .command(NODES[index], "ip")
                .args(["addr", "del", &format!("{VIP}/32"), "dev", "eth0"])
                .output();
        }
        if self.speaker_pid(index).is_none() {
            self.start(index);
        }
        std::thread::sleep(Duration::from_secs(10));
        self.owner();
    }
}

/// The client's ARP replies for the VIP: (seconds since the probe began, node).
struct Probe {
    child: Child,
    lines: std::io::Lines<BufReader<std::process::ChildStdout>>,
    began: Instant,
}

impl Probe {
    fn start(cluster: &ClusterLab, seconds: f64) -> Probe {
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
    fn now(&self) -> f64 {
        self.began.elapsed().as_secs_f64()
    }

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

/// What the client saw around one event at `at` seconds, the owner being `owner`.
struct Outcome {
    /// When another node first answered, after the event.
    moved: Option<f64>,
    /// The longest time without any answer after the event.
    gap: f64,
    /// The longest time two nodes both answered, and whether they still did when the probe
    /// ended.
    two_macs: (f64, bool),
    /// When the owner fell silent, after the event (None: it was silent already).
    owner_last: Option<f64>,
    end: f64,
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

fn outcome(replies: &[(f64, String)], owner: &str, at: f64, end: f64) -> Outcome {
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

/// The four layer-2 events on `stack`, in order.
struct Events {
    kill: Outcome,
    link: Outcome,
    term: Outcome,
    api: Outcome,
}

fn events(stack: &mut Stack) -> Events {
    let event =
        |stack: &mut Stack, seconds: f64, act: &mut dyn FnMut(&mut Stack, usize, &Probe)| {
            let owner = stack.owner();
            let name = stack.cluster.names[owner].clone();
            let probe = Probe::start(&stack.cluster, seconds);
            std::thread::sleep(Duration::from_secs(1));
            let at = probe.now();
            act(stack, owner, &probe);
            let replies = probe.replies(&stack.cluster);
            let result = outcome(&replies, &name, at, seconds);
            stack.restore(owner);
            result
        };
    let kill = event(stack, 16.0, &mut |s, owner, _| s.kill(owner));
    let link = event(
        stack,
        1.0 + LINK_CUT.as_secs_f64() + 5.0,
        &mut |s, owner, _| {
            s.cluster.lab.link(NODES[owner], false).unwrap();
            std::thread::sleep(LINK_CUT);
            s.cluster.lab.link(NODES[owner], true).unwrap();
        },
    );
    let term = event(stack, 8.0, &mut |s, owner, _| s.stop(owner));
    let api = event(
        stack,
        1.0 + API_CUT.as_secs_f64() + 5.0,
        &mut |s, owner, _| {
            s.cluster.freeze(owner);
            std::thread::sleep(API_CUT);
            s.cluster.thaw(owner);
        },
    );
    Events {
        kill,
        link,
        term,
        api,
    }
}

/// New Service -> ARP answer at the client and -> route at FRR (None where the system sends
/// no route), over [`LATENCY_SERVICES`] Services, each with its own address.
fn latencies(stack: &Stack) -> (Vec<Duration>, Option<Vec<Duration>>) {
    let bgp = stack.system != System::KubeVip;
    let (mut to_arp, mut to_route) = (Vec::new(), Vec::new());
    for i in 0..LATENCY_SERVICES {
        let ip = Ipv4Addr::new(172, 20, 0, (i + 1) as u8);
        let yaml = stack.service(&format!("svc-{i}"), ip);
        let started = Instant::now();
        stack.apply(&yaml);
        let prefix = format!("{ip}/32");
        let (mut arp, mut route) = (None, None);
        let _ = wait_for(Duration::from_secs(15), Duration::from_millis(5), || {
            if arp.is_none() && stack.cluster.arp_owner(ip).is_some() {
                arp = Some(started.elapsed());
            }
            if bgp && route.is_none() && stack.cluster.lab.bgp_route(&prefix).unwrap().is_some() {
                route = Some(started.elapsed());
            }
            (arp.is_some() && (route.is_some() || !bgp)).then_some(())
        });
        to_arp.extend(arp);
        to_route.extend(route);
    }
    (to_arp, bgp.then_some(to_route))
}

/// The largest resident memory among the speakers, and the controller's, in MiB.
fn memory(stack: &Stack) -> (f64, Option<f64>) {
    let mib = |pid: u32| memory_kib(pid).0 as f64 / 1024.0;
    let speakers = (0..NODES.len())
        .filter_map(|i| stack.speaker_pid(i))
        .map(mib)
        .fold(0.0, f64::max);
    let controller = stack
        .metallb
        .as_ref()
        .and_then(|m| m.controller.as_ref())
        .map(|c| mib(c.pid()));
    (speakers, controller)
}

struct Results {
    events: Events,
    to_arp: Vec<Duration>,
    to_route: Option<Vec<Duration>>,
    memory: (f64, Option<f64>),
}

fn measure(system: System) -> Results {
    eprintln!("peers bench: {}", system.name());
    let mut stack = Stack::up(system);
    std::thread::sleep(Duration::from_secs(10));
    let memory = memory(&stack);
    let events = events(&mut stack);
    let (to_arp, to_route) = latencies(&stack);
    Results {
        events,
        to_arp,
        to_route,
        memory,
    }
}

fn main() {
    // `-- ours metallb kube-vip` picks systems (cargo adds `--bench`); a partial run does not
    // rewrite the document.
    let picked: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let systems: Vec<System> = [System::Ours, System::MetalLb, System::KubeVip]
        .into_iter()
        .filter(|s| picked.is_empty() || picked.iter().any(|p| p == s.key()))
        .collect();
    let results: Vec<Results> = systems.iter().map(|s| measure(*s)).collect();
    let text = report::tables(&systems, &results);
    println!("{text}");
    if picked.is_empty() {
        let doc = report::document(&text, &versions().unwrap());
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs");
        std::fs::create_dir_all(dir).unwrap();
        let path = format!("{dir}/benchmarks.md");
        std::fs::write(&path, doc).unwrap();
        eprintln!("peers bench: wrote {path}");
    }
}

#[path = "peers/report.rs"]
mod report;
