//! Our stack beside MetalLB v0.16.2 and kube-vip v0.9.2, measured in one run on the same lab
//! and printed as one table per figure with a column per system:
//!
//!   cargo bench -p metallb-speaker --bench peers
//!
//! Each system gets a lab of its own (three nodes, FRR, the client) and an API server of its
//! own, one after the other: ours (`metallb-controller` as a child process, `metallb-speaker`
//! with its defaults and a membership key, as the DaemonSet runs it), MetalLB's controller and
//! speakers (native BGP, memberlist at its defaults) and kube-vip (services mode, ARP, one Lease
//! at its defaults, the address named by the Service's annotation). The peers are built on
//! first use (`tests/testenv/peers/build.sh`). The client sends an ARP request for the VIP
//! every 10 ms and records which node answers when; each event acts on the node answering at
//! that moment:
//!
//! - the owner's speaker SIGKILLed, the owner's link cut at the switch (12 s, then plugged
//!   back), SIGTERM of the owner's speaker, the owner's node cordoned and drained (`kubectl
//!   drain`; ours runs with `--drain-on-cordon`, the peers have no such behaviour), the owner
//!   cut from the API server (15 s): when another node answers, when the owner falls silent,
//!   the longest client-side gap, the longest time two MACs answer;
//! - new Service -> ARP answer at the client and -> route at FRR, over 100 Services;
//! - speaker and controller memory and CPU at idle with one Service, and the API requests per
//!   second of the API server with the controller alone and with the speakers added;
//! - 10,000 Services created at once -> all routes at FRR from every node, and the memory then.
//!
//! kube-vip announces by ARP or by BGP, not both: its route figures (new Service -> route,
//! 10,000 Services) come from a second kube-vip stack in BGP mode (every node announcing every
//! Service, no election), started after the first is gone;
//!
//! and, on stages of their own:
//!
//! - the protocol alone (`peers/protocol.rs`): 10,000 prefixes from one lab node to FRR by our
//!   speaker, BIRD 2 and GoBGP (`gobgpd`);
//! - the leaving benchmark's rolling update of the control plane (seed 000: `leaving/rolling.rs`
//!   and `leaving/scene.rs`, included from there) with our speakers and with MetalLB's.
//!
//! The tables go to stdout and to `docs/benchmarks.md` with the date, machine, versions and run
//! time. `-- kube-vip` (or `ours`, `metallb`, `protocol`, `rolling`) runs only the parts named
//! and writes no document; `-- many=500` creates that many Services instead of 10,000.

#[path = "peers/arp.rs"]
mod arp;
#[path = "../tests/common/mod.rs"]
mod common;
#[path = "peers/idle.rs"]
mod idle;
#[path = "peers/many.rs"]
mod many;
#[path = "../tests/common/peers.rs"]
mod peers;
#[path = "leaving/probe.rs"]
#[allow(dead_code, reason = "the leaving benchmark uses the rest")]
mod probe;
#[path = "peers/protocol.rs"]
mod protocol;
#[path = "peers/report.rs"]
mod report;
#[path = "leaving/rolling.rs"]
mod rolling;
#[path = "leaving/scene.rs"]
#[allow(dead_code, reason = "the leaving benchmark uses the rest")]
mod scene;

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use arp::{Outcome, outcome};
use common::cluster::{ClusterLab, NODES, lab_peers, memory_kib};
use common::wait_for;
use idle::Idle;
use many::Many;
use metallb_testenv::peers::{KUBE_VIP_CLASS, METALLB_NAMESPACE, versions};
use metallb_testenv::{ControlPlane, Options};
use peers::{HostProcess, KubeVip, KubeVipMode, MetalLb, free_port, service};

/// The address every event watches.
const VIP: Ipv4Addr = Ipv4Addr::new(192, 168, 250, 201);
const LATENCY_SERVICES: usize = 100;
/// How long the client probes each new Service's address, in seconds.
const PROBE: u32 = 2;
/// How long the link stays cut and the API server away.
const LINK_CUT: Duration = Duration::from_secs(12);
const API_CUT: Duration = Duration::from_secs(15);
/// The first argument that makes this executable our controller, for [`Stack::controller`].
const CONTROLLER_ARG: &str = "our-controller";

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

    /// The annotation a Service names its address by for this system, and the
    /// `loadBalancerClass` it needs.
    fn asks_for(self) -> (&'static str, Option<&'static str>) {
        match self {
            System::KubeVip => ("kube-vip.io/loadbalancerIPs", Some(KUBE_VIP_CLASS)),
            _ => ("metallb.io/loadBalancerIPs", None),
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
    /// Our controller: this executable run again with [`CONTROLLER_ARG`], a process of its
    /// own as MetalLB's is, so that its memory and CPU are its own.
    controller: Option<HostProcess>,
    cluster: ClusterLab,
    cp: ControlPlane,
    /// At idle before any speaker ran: the API server with the controller alone (kube-vip: the
    /// server alone), and the controller's CPU.
    before_speakers: Idle,
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
        Stack::up_in(system, KubeVipMode::Arp)
    }

    /// The stack of `system`, kube-vip in `mode`, with the VIP's Service: answered by ARP, or
    /// for kube-vip in BGP mode routed at FRR from every node.
    fn up_in(system: System, mode: KubeVipMode) -> Stack {
        let cp = ControlPlane::start(Options::default()).unwrap();
        let cluster = ClusterLab::up(&cp, "");
        let mut stack = Stack {
            system,
            metallb: None,
            kube_vip: None,
            controller: None,
            cluster,
            cp,
            before_speakers: Idle {
                api: 0.0,
                cpu: Vec::new(),
            },
        };
        match system {
            System::Ours => {
                stack.cp.install_crds().unwrap();
                stack
                    .cp
                    .kubectl(["create", "namespace", METALLB_NAMESPACE])
                    .unwrap();
                stack.apply(&metallb_objects());
                let args = vec![
                    CONTROLLER_ARG.to_owned(),
                    format!("--kubeconfig={}", stack.cp.kubeconfig_path().display()),
                    format!("--namespace={METALLB_NAMESPACE}"),
                    "--pod-name=controller".into(),
                    "--metrics-host=127.0.0.1".into(),
                    format!("--metrics-port={}", free_port()),
                ];
                let log = stack.cluster.dir.path().join("controller.log");
                let exe = std::env::current_exe().unwrap();
                stack.controller = Some(HostProcess::spawn(&exe, &args, log));
            }
            System::MetalLb => {
                let mut metallb = MetalLb::prepare(&stack.cp, &stack.cluster, METALLB_NAMESPACE);
                stack.apply(&metallb_objects());
                metallb.start_controller(&stack.cp, &stack.cluster);
                stack.metallb = Some(metallb);
            }
            System::KubeVip => stack.kube_vip = Some(KubeVip::new(mode)),
        }
        // The controller syncs first; then the baseline the speakers' requests are told from.
        std::thread::sleep(Duration::from_secs(5));
        let controller: Vec<u32> = stack.controller_pid().into_iter().collect();
        stack.before_speakers = idle::measure(&stack.cp, &controller);
        for index in 0..NODES.len() {
            stack.start(index);
        }
        stack.apply(&stack.service("vip", VIP));
        let ready = wait_for(Duration::from_secs(60), Duration::from_millis(200), || {
            if stack.answers_arp() {
                stack.cluster.arp_owner(VIP).map(drop)
            } else {
                let sources = stack.cluster.route_sources(&format!("{VIP}/32"));
                (sources.len() == NODES.len()).then_some(())
            }
        });
        assert!(
            ready.is_some(),
            "{}: nobody announces {VIP}\n{}",
            system.name(),
            stack.logs()
        );
        stack
    }

    /// Whether the system answers ARP for its addresses (kube-vip: in ARP mode only; in BGP
    /// mode the kernel answers for the addresses kube-vip puts on `lo`, which says nothing).
    fn answers_arp(&self) -> bool {
        self.kube_vip
            .as_ref()
            .is_none_or(|k| k.mode() == KubeVipMode::Arp)
    }

    /// Whether the system announces routes to FRR (kube-vip: in BGP mode only).
    fn announces_routes(&self) -> bool {
        self.kube_vip
            .as_ref()
            .is_none_or(|k| k.mode() == KubeVipMode::Bgp)
    }

    fn apply(&self, yaml: &str) {
        self.cp
            .kubectl_with_input(["apply", "-f", "-"], yaml)
            .unwrap();
    }

    /// A LoadBalancer Service `name` asking for `ip` the way this system reads it.
    fn service(&self, name: &str, ip: Ipv4Addr) -> String {
        let (annotation, class) = self.system.asks_for();
        let class = class.map_or(String::new(), |c| format!("  loadBalancerClass: {c}\n"));
        service("default", name, &format!("{annotation}: {ip}"), &class)
    }

    /// Starts node `index`'s speaker (kube-vip: its kube-vip).
    fn start(&mut self, index: usize) {
        match self.system {
            System::Ours => {
                let key = self.cluster.dir.path().join("membership-key");
                std::fs::write(&key, b"the membership key of the peers bench").unwrap();
                let key = format!("--membership-key-file={}", key.display());
                let args = [
                    key.as_str(),
                    "--fencing-lease-duration=10s",
                    "--drain-on-cordon=true",
                    "--log-level=info",
                ];
                self.cluster.start(index, METALLB_NAMESPACE, &args);
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

    /// The controller's process (kube-vip has none).
    fn controller_pid(&self) -> Option<u32> {
        match self.system {
            System::Ours => self.controller.as_ref().map(HostProcess::pid),
            System::MetalLb => self.metallb.as_ref()?.controller.as_ref().map(|c| c.pid()),
            System::KubeVip => None,
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
        // A drained node is back in service, as after maintenance.
        let node = self.cluster.names[index].clone();
        self.cp.kubectl(["uncordon", node.as_str()]).unwrap();
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

/// The layer-2 events on `stack`, in order.
struct Events {
    kill: Outcome,
    link: Outcome,
    term: Outcome,
    drain: Outcome,
    api: Outcome,
}

fn events(stack: &mut Stack) -> Events {
    let event = |stack: &mut Stack, seconds: u32, act: &mut dyn FnMut(&mut Stack, usize)| {
        let owner = stack.owner();
        let name = stack.cluster.names[owner].clone();
        let probe = common::probe::Probe::start(&stack.cluster, VIP, seconds);
        let began = Instant::now();
        std::thread::sleep(Duration::from_secs(1));
        let at = began.elapsed().as_secs_f64();
        act(stack, owner);
        let replies = probe.replies(&stack.cluster);
        let result = outcome(&replies, &name, at, f64::from(seconds));
        stack.restore(owner);
        result
    };
    let kill = event(stack, 16, &mut |s, owner| s.kill(owner));
    let link = event(stack, 1 + LINK_CUT.as_secs() as u32 + 5, &mut |s, owner| {
        s.cluster.lab.link(NODES[owner], false).unwrap();
        std::thread::sleep(LINK_CUT);
        s.cluster.lab.link(NODES[owner], true).unwrap();
    });
    let term = event(stack, 8, &mut |s, owner| s.stop(owner));
    let drain = event(stack, 8, &mut |s, owner| {
        // MetalLB's speaker Pods stand for a DaemonSet's, which `--ignore-daemonsets` leaves;
        // they have no DaemonSet here, so the selector leaves them.
        let node = s.cluster.names[owner].clone();
        let drain = [
            "drain",
            node.as_str(),
            "--ignore-daemonsets",
            "--delete-emptydir-data",
            "--pod-selector=component!=speaker",
            "--timeout=30s",
        ];
        s.cp.kubectl(drain).unwrap();
    });

    let api = event(stack, 1 + API_CUT.as_secs() as u32 + 5, &mut |s, owner| {
        s.cluster.freeze(owner);
        std::thread::sleep(API_CUT);
        s.cluster.thaw(owner);
    });
    Events {
        kill,
        link,
        term,
        drain,
        api,
    }
}

/// New Service -> ARP answer at the client and -> route at FRR, each empty where the stack
/// does not answer that way, over [`LATENCY_SERVICES`] Services, each with its own address.
/// The client asks every 10 ms ([`common::probe::Probe`]; `arping` would ask again only a
/// second after an unanswered request) and FRR's table is read as fast as vtysh answers.
fn latencies(stack: &Stack) -> (Vec<Duration>, Vec<Duration>) {
    let (arp_mode, bgp) = (stack.answers_arp(), stack.announces_routes());
    let (mut to_arp, mut to_route) = (Vec::new(), Vec::new());
    for i in 0..LATENCY_SERVICES {
        let ip = Ipv4Addr::new(172, 20, 0, (i + 1) as u8);
        let yaml = stack.service(&format!("svc-{i}"), ip);
        let probe = arp_mode.then(|| common::probe::Probe::start(&stack.cluster, ip, PROBE));
        // The probe's clock starts when it is ready, just before this one.
        let applied = Instant::now();
        stack.apply(&yaml);
        let prefix = format!("{ip}/32");
        if bgp {
            let routed = wait_for(Duration::from_secs(15), Duration::from_millis(5), || {
                let route = stack.cluster.lab.bgp_route(&prefix).unwrap();
                route.map(|_| applied.elapsed())
            });
            to_route.extend(routed);
        }
        if let Some(probe) = probe {
            let first = probe.replies(&stack.cluster).first().map(|(at, _)| *at);
            to_arp.extend(first.map(Duration::from_secs_f64));
        }
    }
    (to_arp, to_route)
}

/// Resident memory in MiB: the largest speaker's, and the controller's where it runs in a
/// process of its own.
type Memory = (f64, Option<f64>);

fn memory(stack: &Stack) -> Memory {
    let mib = |pid: u32| memory_kib(pid).0 as f64 / 1024.0;
    let speakers = (0..NODES.len())
        .filter_map(|i| stack.speaker_pid(i))
        .map(mib)
        .fold(0.0, f64::max);
    (speakers, stack.controller_pid().map(mib))
}

struct Results {
    events: Events,
    to_arp: Vec<Duration>,
    to_route: Vec<Duration>,
    memory: Memory,
    /// The API server with the controller alone, then at idle with everything: the three
    /// speakers' CPU, then the controller's.
    before_speakers: Idle,
    idle: Idle,
    many: Many,
}

fn measure(system: System, many: usize) -> Results {
    eprintln!("peers bench: {}", system.name());
    let mut stack = Stack::up(system);
    std::thread::sleep(Duration::from_secs(10));
    let memory = memory(&stack);
    let mut pids: Vec<u32> = (0..NODES.len())
        .filter_map(|i| stack.speaker_pid(i))
        .collect();
    pids.extend(stack.controller_pid());
    let idle = idle::measure(&stack.cp, &pids);
    let events = events(&mut stack);
    let (to_arp, mut to_route) = latencies(&stack);
    let stack = if stack.announces_routes() {
        stack
    } else {
        drop(stack);
        eprintln!("peers bench: {} in BGP mode", system.name());
        let routing = Stack::up_in(system, KubeVipMode::Bgp);
        to_route = latencies(&routing).1;
        routing
    };
    eprintln!("peers bench: {}: {many} Services", system.name());
    let many = many::run(&stack, many);
    Results {
        events,
        to_arp,
        to_route,
        memory,
        before_speakers: stack.before_speakers,
        idle,
        many,
    }
}

/// Our controller, as `metallb-controller` runs, from the arguments after [`CONTROLLER_ARG`].
fn controller_main(args: impl Iterator<Item = String>) -> std::process::ExitCode {
    use clap::Parser;
    let args = metallb_controller::cli::Args::parse_from(
        std::iter::once("metallb-controller".into()).chain(args),
    );
    args.log.init();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    match runtime.block_on(metallb_controller::cli::run(args)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("controller: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn main() -> std::process::ExitCode {
    let mut argv = std::env::args().skip(1);
    if argv.next().as_deref() == Some(CONTROLLER_ARG) {
        return controller_main(argv);
    }
    let began = Instant::now();
    // `-- ours metallb kube-vip protocol rolling` picks parts (cargo adds `--bench`), `many=N`
    // scales the many-Services part; a partial or scaled run does not rewrite the document.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let many = args
        .iter()
        .find_map(|a| a.strip_prefix("many=")?.parse().ok())
        .unwrap_or(many::MANY);
    let picked: Vec<&String> = args.iter().filter(|a| !a.starts_with("many=")).collect();
    let runs = |part: &str| picked.is_empty() || picked.iter().any(|p| *p == part);
    let systems: Vec<System> = [System::Ours, System::MetalLb, System::KubeVip]
        .into_iter()
        .filter(|s| runs(s.key()))
        .collect();
    let results: Vec<Results> = systems.iter().map(|s| measure(*s, many)).collect();
    let mut text = if systems.is_empty() {
        String::new()
    } else {
        report::tables(&systems, &results)
    };
    if runs("protocol") {
        eprintln!(
            "peers bench: {} prefixes, protocol only",
            protocol::PREFIXES
        );
        text += &report::protocol(&protocol::run());
    }
    if runs("rolling") {
        eprintln!("peers bench: the rolling update");
        let rolling = [scene::Features::On, scene::Features::MetalLb].map(rolling::run);
        text += &report::rolling(&rolling);
    }
    let took = began.elapsed();
    println!("{text}\nRun time: {:.1} min", took.as_secs_f64() / 60.0);
    if picked.is_empty() && many == many::MANY {
        let doc = report::document(&text, &versions().unwrap(), took);
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs");
        std::fs::create_dir_all(dir).unwrap();
        let path = format!("{dir}/benchmarks.md");
        std::fs::write(&path, doc).unwrap();
        eprintln!("peers bench: wrote {path}");
    }
    std::process::ExitCode::SUCCESS
}
