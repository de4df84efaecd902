//! Speakers on the cluster in lab nodes: each node reaches the real API server through a proxy
//! whose listener sits in the node's network namespace (`127.0.0.1:<port>` there), and runs
//! `metallb-speaker` the way the DaemonSet starts it. Shared by the cluster lab tests and the
//! benchmark.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use kube::{Api, Resource};
use metallb_plan as plan;
use metallb_testenv::lab::{Daemon, Host, Lab, LabOptions};
use metallb_testenv::{ControlPlane, FreezableProxy};

use super::{SPEAKER, wait_for};

/// How many times one object is asked for before a run gives up.
const CREATE_ATTEMPTS: u32 = 10;

/// The lab's three nodes.
pub const NODES: [Host; 3] = [Host::Node(1), Host::Node(2), Host::Node(3)];

/// A lab whose nodes run speakers against `cp`.
pub struct ClusterLab {
    pub lab: Lab,
    pub dir: tempfile::TempDir,
    /// The Node object name of each lab node (`<prefix>node1`, ...).
    pub names: Vec<String>,
    kubeconfigs: Vec<PathBuf>,
    speakers: Vec<Option<Daemon>>,
    proxies: Vec<FreezableProxy>,
}

impl ClusterLab {
    /// A lab with proxies to `cp` and Node objects named `<prefix>node1..3` (labelled with
    /// their hostname); no speaker runs yet.
    pub fn up(cp: &ControlPlane, prefix: &str) -> ClusterLab {
        let upstream = (cp.server(), cp.kubeconfig_path());
        ClusterLab::up_each([upstream; 3], prefix, |manifest| {
            cp.kubectl_with_input(["apply", "-f", "-"], manifest)
                .ok()
                .map(drop)
        })
    }

    /// Like [`up`](Self::up), with node `i` reaching its own API server `upstreams[i]` (its URL
    /// and an admin kubeconfig naming it), as on control-plane nodes; `apply` applies a
    /// manifest, `None` when it failed.
    pub fn up_each(
        upstreams: [(&str, &Path); 3],
        prefix: &str,
        apply: impl Fn(&str) -> Option<()>,
    ) -> ClusterLab {
        let lab = Lab::up(LabOptions::default()).unwrap();
        let mut proxies = Vec::new();
        let mut kubeconfigs = Vec::new();
        let mut names = Vec::new();
        for (host, (server, kubeconfig)) in NODES.into_iter().zip(upstreams) {
            let upstream: SocketAddr = server.trim_start_matches("https://").parse().unwrap();
            let listener = std::thread::scope(|s| {
                s.spawn(|| {
                    lab.enter(host).unwrap();
                    TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap()
                })
                .join()
                .unwrap()
            });
            let proxy = FreezableProxy::start_with(listener, upstream).unwrap();
            kubeconfigs.push(proxy.kubeconfig(kubeconfig, server).unwrap());
            proxies.push(proxy);
            let name = format!("{prefix}{}", host.name());
            let node = format!(
                "apiVersion: v1\nkind: Node\nmetadata:\n  name: {name}\n  labels: {{kubernetes.io/hostname: {name}}}\n"
            );
            // Tests running at once apply the same Nodes; a lost race is retried.
            let applied = wait_for(Duration::from_secs(10), Duration::from_millis(200), || {
                apply(&node)
            });
            assert!(applied.is_some(), "cannot apply Node {name}");
            names.push(name);
        }
        ClusterLab {
            lab,
            dir: tempfile::tempdir().unwrap(),
            names,
            kubeconfigs,
            speakers: vec![None, None, None],
            proxies,
        }
    }

    /// Makes the speakers act as `user` (e.g. the speaker's ServiceAccount), so that only
    /// its RBAC applies; call before starting them.
    pub fn impersonate(&self, user: &str) {
        for path in &self.kubeconfigs {
            let text = std::fs::read_to_string(path).unwrap();
            let text = text.replace("  user:\n", &format!("  user:\n    as: {user}\n"));
            std::fs::write(path, text).unwrap();
        }
    }

    /// The kubeconfig through node `index`'s proxy (what [`freeze`](Self::freeze) cuts), for
    /// other programs run in that node.
    pub fn kubeconfig(&self, index: usize) -> &Path {
        &self.kubeconfigs[index]
    }

    /// Every speaker's whole log.
    pub fn full_logs(&self) -> String {
        NODES
            .iter()
            .map(|host| {
                let path = self
                    .lab
                    .state_dir()
                    .join(format!("metallb-speaker-{}.log", host.name()));
                std::fs::read_to_string(&path).unwrap_or_default()
            })
            .collect()
    }

    /// Starts the speaker of node `index` (0-2) serving `namespace`, with `extra` arguments
    /// (a `--fencing-lease-duration`, `--log-level` or `--graceful-shutdown` among them
    /// replaces the harness's 4 s, debug and false).
    pub fn start(&mut self, index: usize, namespace: &str, extra: &[&str]) {
        let host = NODES[index];
        let (address, _) = Lab::address(host);
        let mut args = vec![
            format!("--kubeconfig={}", self.kubeconfigs[index].display()),
            format!("--namespace={namespace}"),
            format!("--node-name={}", self.names[index]),
            format!("--host-ip={address}"),
            "--metrics-host=127.0.0.1".to_owned(),
            "--metrics-port=7472".to_owned(),
            format!("--control={}", self.control(index).display()),
            "--log-format=json".to_owned(),
        ];
        // Defaults of the harness that `extra` may replace.
        let defaults = [
            "--fencing-lease-duration=4s",
            "--log-level=debug",
            "--graceful-shutdown=false",
        ];
        for default in defaults {
            let flag = default.split('=').next().unwrap_or(default);
            let replaced = |a: &&str| *a == flag || a.starts_with(&format!("{flag}="));
            if !extra.iter().any(replaced) {
                args.push(default.to_owned());
            }
        }
        args.extend(extra.iter().map(|a| a.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.speakers[index] = Some(self.lab.spawn(host, SPEAKER, &args).unwrap());
    }

    /// Cuts node `index` from the API server: its connections stay open and go silent.
    pub fn freeze(&self, index: usize) {
        self.proxies[index].freeze();
    }

    /// Gives node `index` the API server back.
    pub fn thaw(&self, index: usize) {
        self.proxies[index].thaw();
    }

    /// Starts every node's speaker.
    pub fn start_all(&mut self, namespace: &str, extra: &[&str]) {
        for index in 0..NODES.len() {
            self.start(index, namespace, extra);
        }
    }

    /// Stops node `index`'s speaker with SIGTERM (SIGKILL after 2 s).
    pub fn stop(&mut self, index: usize) {
        self.speakers[index] = None;
    }

    /// Kills node `index`'s speaker at once: no goodbye, its Lease stays until it expires.
    pub fn kill(&mut self, index: usize) {
        if let Some(daemon) = &self.speakers[index] {
            let _ = Command::new("kill")
                .args(["-KILL", &daemon.pid().to_string()])
                .status();
        }
        self.speakers[index] = None;
    }

    /// The control socket of node `index`'s speaker.
    pub fn control(&self, index: usize) -> PathBuf {
        self.dir
            .path()
            .join(format!("{}.sock", NODES[index].name()))
    }

    /// The Node name of the lab node whose MAC answered, from a MAC.
    pub fn node_of_mac(&self, mac: &str) -> Option<String> {
        NODES
            .iter()
            .position(|host| Lab::mac(*host) == mac.to_lowercase())
            .map(|index| self.names[index].clone())
    }

    /// The node answering ARP for `ip` now (one request), if any.
    pub fn arp_owner(&self, ip: Ipv4Addr) -> Option<String> {
        let mac = self.lab.arp(ip).unwrap()?;
        self.node_of_mac(&mac)
    }

    /// Waits until `node` answers ARP for `ip`; panics with the logs after `within`.
    pub fn wait_owner(&self, ip: Ipv4Addr, node: Option<&str>, within: Duration) {
        let ok = wait_for(within, Duration::from_millis(100), || {
            (self.arp_owner(ip).as_deref() == node).then_some(())
        });
        assert!(
            ok.is_some(),
            "{ip}: wanted {node:?}, got {:?}\n{}",
            self.arp_owner(ip),
            self.logs()
        );
    }

    /// The nodes FRR has a path for `prefix` from (their Node names).
    pub fn route_sources(&self, prefix: &str) -> Vec<String> {
        let Some(route) = self.lab.bgp_route(prefix).unwrap() else {
            return Vec::new();
        };
        let mut nodes: Vec<String> = route["paths"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|path| {
                let from = path["peer"]["peerId"].as_str()?;
                let index = NODES
                    .iter()
                    .position(|h| Lab::address(*h).0.to_string() == from)?;
                Some(self.names[index].clone())
            })
            .collect();
        nodes.sort();
        nodes
    }

    /// `GET /metrics` of node `index`'s speaker.
    pub fn metrics(&self, index: usize) -> String {
        let script = "exec 3<>/dev/tcp/127.0.0.1/7472 && printf 'GET /metrics HTTP/1.0\\r\\n\\r\\n' >&3 && cat <&3";
        let output = self
            .lab
            .command(NODES[index], "bash")
            .args(["-c", script])
            .output()
            .unwrap();
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// `metallb-speaker show service NAME` of node `index`.
    pub fn show_service(&self, index: usize, name: &str) -> String {
        show_service(&self.control(index), name)
    }

    /// The process id of node `index`'s speaker.
    pub fn pid(&self, index: usize) -> Option<u32> {
        self.speakers[index].as_ref().map(Daemon::pid)
    }

    /// The last lines of every speaker's log.
    pub fn logs(&self) -> String {
        NODES
            .iter()
            .map(|host| {
                let path = self
                    .lab
                    .state_dir()
                    .join(format!("metallb-speaker-{}.log", host.name()));
                let text = std::fs::read_to_string(&path).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(15).collect();
                let tail: Vec<&str> = tail.into_iter().rev().collect();
                format!("--- {} ---\n{}\n", host.name(), tail.join("\n"))
            })
            .collect()
    }
}

/// The VIP the tests assign to `web`.
pub const VIP: Ipv4Addr = Ipv4Addr::new(192, 168, 250, 201);

/// A pool, L2 and BGP advertisements, the dual-stack LoadBalancer Services `web` (endpoints on
/// every node) and `web6` (on node1) and their EndpointSlices, in `ns`.
pub fn lab_services(ns: &str) -> String {
    format!(
        r#"
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {{name: lab, namespace: {ns}}}
spec: {{addresses: [192.168.250.200/29, "fd00:250::200/125"]}}
---
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: {{name: l2, namespace: {ns}}}
spec: {{}}
---
apiVersion: metallb.io/v1beta1
kind: BGPAdvertisement
metadata: {{name: bgp, namespace: {ns}}}
spec: {{communities: ["64500:100"]}}
---
apiVersion: v1
kind: Service
metadata: {{name: web, namespace: {ns}}}
spec: {{type: LoadBalancer, ports: [{{port: 80}}]}}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: web-1
  namespace: {ns}
  labels: {{kubernetes.io/service-name: web}}
addressType: IPv4
ports: [{{port: 80}}]
endpoints:
  - {{addresses: [10.0.1.1], nodeName: node1, conditions: {{ready: true}}}}
  - {{addresses: [10.0.2.1], nodeName: node2, conditions: {{ready: true}}}}
  - {{addresses: [10.0.3.1], nodeName: node3, conditions: {{ready: true}}}}
---
apiVersion: v1
kind: Service
metadata: {{name: web6, namespace: {ns}}}
spec: {{type: LoadBalancer, ipFamilies: [IPv6], ipFamilyPolicy: SingleStack, ports: [{{port: 80}}]}}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: web6-1
  namespace: {ns}
  labels: {{kubernetes.io/service-name: web6}}
addressType: IPv6
ports: [{{port: 80}}]
endpoints:
  - {{addresses: ["fd00:1::1"], nodeName: node1, conditions: {{ready: true}}}}
"#
    )
}

/// The node MetalLB's election picks for `ip` among `alive`.
pub fn winner_of(ip: IpAddr, alive: &[&str]) -> String {
    let mut cluster = plan::Cluster::default();
    for node in ["node1", "node2", "node3"] {
        cluster.nodes.insert(node.into(), plan::Node::default());
    }
    cluster.alive = alive.iter().map(|n| n.to_string()).collect();
    let pool = plan::Pool {
        addresses: vec![
            plan::Addresses::Cidr("192.168.250.200/29".parse().unwrap()),
            plan::Addresses::Cidr("fd00:250::200/125".parse().unwrap()),
        ],
        ..plan::Pool::default()
    };
    cluster.pools.insert("lab".into(), pool);
    cluster
        .l2_advertisements
        .insert("l2".into(), plan::L2Advertisement::default());
    let endpoints = ["node1", "node2", "node3"].map(|node| plan::Endpoint {
        node: Some(node.into()),
        ready: Some(true),
        serving: None,
    });
    let service = plan::Service {
        ours: true,
        ingress: vec![ip],
        endpoints: endpoints.to_vec(),
        ..plan::Service::default()
    };
    cluster
        .services
        .insert(plan::ServiceKey::new("ns", "web"), service);
    let owners: BTreeSet<String> = alive
        .iter()
        .filter(|node| plan::plan(&cluster, node).unwrap().layer2.contains_key(&ip))
        .map(|n| n.to_string())
        .collect();
    assert_eq!(owners.len(), 1, "{owners:?}");
    owners.into_iter().next().unwrap()
}

/// Writes `ip` as the ingress of Service `name` in `ns`, as the controller would.
pub fn assign_ingress(cp: &ControlPlane, ns: &str, name: &str, ip: IpAddr) {
    let status = format!(r#"{{"status":{{"loadBalancer":{{"ingress":[{{"ip":"{ip}"}}]}}}}}}"#);
    let args = [
        "-n",
        ns,
        "patch",
        "service",
        name,
        "--subresource=status",
        "--type=merge",
        "-p",
        &status,
    ];
    cp.kubectl(args).unwrap();
}

/// The lab router as two BGPPeers in `ns`: `ebgp` (AS 64500 -> 64512) for node1 and node2,
/// `ibgp` (AS 64512) for node3, chosen by nodeSelectors as the lab's FRR expects them.
pub fn lab_peers(ns: &str) -> String {
    let peer = |name: &str, my_asn: u32, nodes: &str| {
        format!(
            "apiVersion: metallb.io/v1beta2\nkind: BGPPeer\nmetadata: {{name: {name}, namespace: {ns}}}\n\
             spec:\n  myASN: {my_asn}\n  peerASN: 64512\n  peerAddress: 192.168.250.1\n  holdTime: 9s\n  \
             nodeSelectors:\n    - matchExpressions: [{{key: kubernetes.io/hostname, operator: In, values: [{nodes}]}}]\n"
        )
    };
    format!(
        "{}---\n{}",
        peer("ebgp", 64500, "node1, node2"),
        peer("ibgp", 64512, "node3")
    )
}

/// VmRSS and VmHWM of process `pid`, in KiB.
pub fn memory_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// `metallb-speaker show service NAME` against the control socket `control`.
pub fn show_service(control: &Path, name: &str) -> String {
    let output = Command::new(SPEAKER)
        .args(["show", "service", name, "--control"])
        .arg(control)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Requests the API server has served so far (its own counter, all verbs and resources).
pub fn api_requests(cp: &ControlPlane) -> f64 {
    let text = cp.kubectl(["get", "--raw", "/metrics"]).unwrap();
    text.lines()
        .filter(|l| l.starts_with("apiserver_request_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Creates `object`, asking again while the API server, loaded by the system under test,
/// fails or times out (a run lost a call to a connection timeout while MetalLB's speakers
/// loaded it). A conflict means an earlier attempt got through.
pub async fn create<K>(api: &Api<K>, object: &K)
where
    K: Resource + Clone + serde::Serialize + serde::de::DeserializeOwned + std::fmt::Debug,
{
    for attempt in 1.. {
        match api.create(&kube::api::PostParams::default(), object).await {
            Ok(_) => return,
            Err(kube::Error::Api(status)) if status.code == 409 => return,
            Err(error) if attempt < CREATE_ATTEMPTS => {
                eprintln!("create failed ({error}); asking again");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(error) => panic!("cannot create {:?}: {error}", object.meta().name),
        }
    }
}
