//! The three stacks on a [`ClusterLab`], each against its own API server: ours (the controller
//! in this process, `metallb-speaker` in the nodes), MetalLB v0.16.2's controller and speakers,
//! and kube-vip in services mode. Shared by the compatibility test and the peers benchmark.
//!
//! Every process started here stops when its value is dropped (SIGTERM, SIGKILL after 2 s); the
//! lab and its network namespaces go with the [`ClusterLab`]. Included next to `common` by the
//! files that use it (`#[path]`), so the other lab tests do not compile it.

#![allow(dead_code)] // The test uses a part, the benchmark the rest.

use std::fs::File;
use std::net::{IpAddr, Ipv4Addr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use metallb_controller::Settings;
use metallb_runtime::consts::CONTROLLER_LEASE;
use metallb_runtime::lease::LeaseTiming;
use metallb_testenv::lab::{Daemon, Lab};
use metallb_testenv::peers::Kubectl;
use metallb_testenv::{ControlPlane, peers};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::common::cluster::{ClusterLab, NODES};
use crate::common::wait_for;

/// Our controller, run in this process until dropped.
pub struct OurController {
    _runtime: tokio::runtime::Runtime,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl OurController {
    /// Starts the controller against `cp`, serving the MetalLB objects of `namespace`.
    pub fn start(cp: &ControlPlane, namespace: &str) -> OurController {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let client = runtime.block_on(cp.client()).unwrap();
        let settings = Settings {
            namespace: namespace.to_owned(),
            lb_class: None,
            identity: "peers-controller".into(),
            lease_name: CONTROLLER_LEASE.into(),
            lease_timing: LeaseTiming::default(),
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        runtime.spawn(metallb_controller::run(
            client,
            settings,
            None,
            async move {
                let _ = stopped.await;
            },
        ));
        OurController {
            _runtime: runtime,
            stop: Some(stop),
        }
    }
}

impl Drop for OurController {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        // The runtime's threads run the task on while this one waits: a moment to release its
        // Lease before the runtime goes.
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A program run in this process's network namespace, its output in a log file.
pub struct HostProcess {
    child: Child,
    pub log: std::path::PathBuf,
}

impl HostProcess {
    pub fn spawn(program: &Path, args: &[String], log: std::path::PathBuf) -> HostProcess {
        let file = File::create(&log).unwrap();
        let child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .unwrap();
        HostProcess { child, log }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for HostProcess {
    fn drop(&mut self) {
        let _ = kill(Pid::from_raw(self.child.id() as i32), Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A TCP port free on the loopback of this namespace now.
pub fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// MetalLB's controller and a speaker per lab node, against the API server `cluster` proxies.
pub struct MetalLb {
    pub controller: Option<HostProcess>,
    speakers: Vec<Option<Daemon>>,
    namespace: String,
}

impl MetalLb {
    /// Installs MetalLB's CRDs and the objects its processes expect in `namespace` on `cp`;
    /// nothing runs yet.
    pub fn prepare(cp: &impl Kubectl, cluster: &ClusterLab, namespace: &str) -> MetalLb {
        peers::install_metallb_crds(cp).unwrap();
        let nodes: Vec<&str> = cluster.names.iter().map(String::as_str).collect();
        let objects = peers::metallb_objects(namespace, &nodes);
        cp.run(&["apply", "-f", "-"], Some(&objects)).unwrap();
        let addresses: Vec<(&str, Ipv4Addr)> = nodes
            .iter()
            .zip(NODES)
            .map(|(node, host)| (*node, Lab::address(host).0))
            .collect();
        peers::publish_speaker_ips(cp, namespace, &addresses).unwrap();
        MetalLb {
            controller: None,
            speakers: vec![None, None, None],
            namespace: namespace.to_owned(),
        }
    }

    /// Starts MetalLB's controller in this process's namespace.
    pub fn start_controller(&mut self, cp: &ControlPlane, cluster: &ClusterLab) {
        let args = peers::controller_args(cp.kubeconfig_path(), &self.namespace, free_port());
        let log = cluster.dir.path().join("metallb-controller.log");
        let binary = peers::binary("controller").unwrap();
        self.controller = Some(HostProcess::spawn(&binary, &args, log));
    }

    /// Starts MetalLB's speaker in lab node `index`, through that node's API proxy.
    pub fn start_speaker(&mut self, cluster: &ClusterLab, index: usize) {
        let key = peers::memberlist_key(&cluster.dir.path().join("memberlist")).unwrap();
        let args = peers::speaker_args(
            cluster.kubeconfig(index),
            &self.namespace,
            &cluster.names[index],
            Lab::address(NODES[index]).0,
            &key,
        );
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let binary = peers::binary("speaker").unwrap();
        let daemon = cluster
            .lab
            .spawn(NODES[index], binary.to_str().unwrap(), &args)
            .unwrap();
        self.speakers[index] = Some(daemon);
    }

    pub fn start_speakers(&mut self, cluster: &ClusterLab) {
        for index in 0..NODES.len() {
            self.start_speaker(cluster, index);
        }
    }

    /// SIGKILLs node `index`'s speaker.
    pub fn kill(&mut self, index: usize) {
        kill_daemon(self.speakers[index].take(), Signal::SIGKILL);
    }

    /// SIGTERMs node `index`'s speaker (SIGKILL after 2 s).
    pub fn stop(&mut self, index: usize) {
        self.speakers[index] = None;
    }

    pub fn speaker_pid(&self, index: usize) -> Option<u32> {
        self.speakers[index].as_ref().map(Daemon::pid)
    }

    /// The last lines of every speaker's log and the controller's.
    pub fn logs(&self) -> String {
        let mut files: Vec<std::path::PathBuf> = self
            .speakers
            .iter()
            .flatten()
            .map(|d| d.log().clone())
            .collect();
        files.extend(self.controller.iter().map(|c| c.log.clone()));
        tails(&files)
    }
}

/// How kube-vip announces: ARP with one Lease election, or BGP from every node.
#[derive(Clone, Copy, PartialEq)]
pub enum KubeVipMode {
    Arp,
    Bgp,
}

/// kube-vip in every lab node, each with its own home directory for its kubeconfig.
pub struct KubeVip {
    mode: KubeVipMode,
    daemons: Vec<Option<Daemon>>,
}

impl KubeVip {
    pub fn new(mode: KubeVipMode) -> KubeVip {
        KubeVip {
            mode,
            daemons: vec![None, None, None],
        }
    }

    /// Starts kube-vip in lab node `index`, through that node's API proxy. In BGP mode it
    /// peers with the lab router as our speakers do ([`crate::common::cluster::lab_peers`]):
    /// node1 and node2 from AS 64500, node3 from the router's AS 64512.
    pub fn start(&mut self, cluster: &ClusterLab, index: usize) {
        let home = cluster
            .dir
            .path()
            .join(format!("kube-vip-{}", NODES[index].name()));
        let home = peers::kube_vip_home(&home, cluster.kubeconfig(index)).unwrap();
        let binary = peers::binary("kube-vip").unwrap();
        let node = &cluster.names[index];
        let mut args = vec![format!("HOME={}", home.display())];
        let flags = match self.mode {
            KubeVipMode::Arp => peers::kube_vip_args(node, "eth0"),
            KubeVipMode::Bgp => {
                args.push(peers::kube_vip_bgp_peers("192.168.250.1:64512"));
                let local_as = if index == 2 { 64512 } else { 64500 };
                let router_id = Lab::address(NODES[index]).0;
                peers::kube_vip_bgp_args(node, router_id, local_as)
            }
        };
        args.push(binary.display().to_string());
        args.extend(flags);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.daemons[index] = Some(cluster.lab.spawn(NODES[index], "env", &args).unwrap());
    }

    pub fn mode(&self) -> KubeVipMode {
        self.mode
    }

    pub fn start_all(&mut self, cluster: &ClusterLab) {
        for index in 0..NODES.len() {
            self.start(cluster, index);
        }
    }

    pub fn kill(&mut self, index: usize) {
        kill_daemon(self.daemons[index].take(), Signal::SIGKILL);
    }

    pub fn stop(&mut self, index: usize) {
        self.daemons[index] = None;
    }

    pub fn pid(&self, index: usize) -> Option<u32> {
        self.daemons[index].as_ref().map(Daemon::pid)
    }

    pub fn logs(&self) -> String {
        let files: Vec<std::path::PathBuf> = self
            .daemons
            .iter()
            .flatten()
            .map(|d| d.log().clone())
            .collect();
        tails(&files)
    }
}

fn kill_daemon(daemon: Option<Daemon>, signal: Signal) {
    if let Some(daemon) = daemon {
        let _ = kill(Pid::from_raw(daemon.pid() as i32), signal);
        // Dropping reaps it (it is no longer running, so no second signal).
        std::thread::sleep(Duration::from_millis(50));
        drop(daemon);
    }
}

/// The last 20 lines of each file.
fn tails(files: &[std::path::PathBuf]) -> String {
    files
        .iter()
        .map(|file| {
            let text = std::fs::read_to_string(file).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let tail = lines[lines.len().saturating_sub(20)..].join("\n");
            format!("--- {} ---\n{tail}\n", file.display())
        })
        .collect()
}

/// A LoadBalancer Service `name` in `namespace` (its EndpointSlice with a ready endpoint on
/// every lab node), with `extra` lines added under `spec` and `annotations` under metadata.
pub fn service(namespace: &str, name: &str, annotations: &str, extra_spec: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Service
metadata:
  name: {name}
  namespace: {namespace}
  annotations: {{{annotations}}}
spec:
  type: LoadBalancer
  allocateLoadBalancerNodePorts: false
  ports: [{{port: 80}}]
{extra_spec}---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: {name}-1
  namespace: {namespace}
  labels: {{kubernetes.io/service-name: {name}}}
addressType: IPv4
ports: [{{port: 80}}]
endpoints:
  - {{addresses: [10.0.1.1], nodeName: node1, conditions: {{ready: true}}}}
  - {{addresses: [10.0.2.1], nodeName: node2, conditions: {{ready: true}}}}
  - {{addresses: [10.0.3.1], nodeName: node3, conditions: {{ready: true}}}}
"#
    )
}

/// The first ingress address of Service `name` once it has one.
pub fn wait_ingress(
    cp: &ControlPlane,
    namespace: &str,
    name: &str,
    within: Duration,
) -> Option<IpAddr> {
    wait_for(within, Duration::from_millis(50), || {
        let ip = cp
            .kubectl([
                "-n",
                namespace,
                "get",
                "service",
                name,
                "-o",
                "jsonpath={.status.loadBalancer.ingress[0].ip}",
            ])
            .ok()?;
        ip.trim().parse().ok()
    })
}
