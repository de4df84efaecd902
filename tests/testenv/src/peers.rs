//! The peers the benchmarks run beside metallb-rs: MetalLB's own controller and speaker and
//! kube-vip, built from the Go module proxy, run as plain processes against a [`ControlPlane`].
//!
//! `tests/testenv/peers/build.sh` builds them once, at the versions pinned in its two wrapper
//! modules, into `${METALLB_RS_CACHE:-~/.cache/metallb-rs}/peers/metallb<v>-kube-vip<v>/`
//! (binaries, MetalLB's CRDs and its sample objects) and installs GoBGP from Debian; [`root`]
//! runs it on first use, so a test or benchmark builds them on demand.
//!
//! Without kubelet, MetalLB needs what a cluster would give its pods, and [`metallb_objects`]
//! writes it: the namespace's `default` ServiceAccount, a Pod per process (the controller's
//! owner references; the speakers find each other by listing speaker Pods and reading their
//! `status.podIP`, which [`publish_speaker_ips`] sets to the node's address). kube-vip reads
//! only `/etc/kubernetes/admin.conf` or `$HOME/.kube/config`, so [`kube_vip_home`] makes a home
//! directory per process.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use crate::binaries::run_forwarding_stderr;
use crate::control_plane::ControlPlane;
use crate::error::{Error, Result};
use crate::ha::HaControlPlane;

/// The build recipe of the peers.
pub const PEERS_BUILD_SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/peers/build.sh");

/// The namespace MetalLB's manifests and samples use.
pub const METALLB_NAMESPACE: &str = "metallb-system";

/// The labels MetalLB's speakers find each other by (`--ml-labels`).
pub const SPEAKER_LABELS: &str = "app=metallb,component=speaker";

/// The class kube-vip serves with `--lbClassOnly`.
pub const KUBE_VIP_CLASS: &str = "kube-vip.io/kube-vip-class";

/// What the peers' setup runs `kubectl` against: a [`ControlPlane`], or one member of an
/// [`HaControlPlane`] ([`Member`]).
pub trait Kubectl {
    /// Runs kubectl with `args` (and `input` on stdin) and returns stdout.
    fn run(&self, args: &[&str], input: Option<&str>) -> Result<String>;
}

impl Kubectl for ControlPlane {
    fn run(&self, args: &[&str], input: Option<&str>) -> Result<String> {
        match input {
            Some(input) => self.kubectl_with_input(args, input),
            None => self.kubectl(args),
        }
    }
}

/// Member `.1` of an HA control plane, as a [`Kubectl`] target.
#[derive(Debug)]
pub struct Member<'a>(pub &'a HaControlPlane, pub usize);

impl Kubectl for Member<'_> {
    fn run(&self, args: &[&str], input: Option<&str>) -> Result<String> {
        match input {
            Some(input) => self.0.kubectl_with_input(self.1, args, input),
            None => self.0.kubectl(self.1, args),
        }
    }
}

/// `peers/build.sh` once per process: the peers' root directory (`bin/`, `crds/`, `samples/`).
pub fn root() -> Result<PathBuf> {
    static ROOT: OnceLock<std::result::Result<PathBuf, String>> = OnceLock::new();
    ROOT.get_or_init(|| {
        let mut cmd = Command::new("bash");
        cmd.arg(PEERS_BUILD_SCRIPT);
        let (status, stdout, tail) = run_forwarding_stderr(&mut cmd)?;
        if !status.success() {
            return Err(format!("{status}:\n{tail}"));
        }
        Ok(stdout.lines().last().map(PathBuf::from).unwrap_or_default())
    })
    .clone()
    .map_err(|detail| Error::Build {
        script: PathBuf::from(PEERS_BUILD_SCRIPT),
        detail,
    })
}

/// A peer's program: `controller`, `speaker` (MetalLB's) or `kube-vip`.
pub fn binary(name: &str) -> Result<PathBuf> {
    Ok(root()?.join("bin").join(name))
}

/// MetalLB's sample objects (its module's `configsamples`), one file each.
pub fn samples_dir() -> Result<PathBuf> {
    Ok(root()?.join("samples"))
}

/// What was built: one line per peer and the Go toolchain, from the build's stamp.
pub fn versions() -> Result<String> {
    let stamp = root()?.join(".complete");
    std::fs::read_to_string(&stamp).map_err(Error::io(format!("reading {}", stamp.display())))
}

/// Applies MetalLB's own CRDs to `cp` and waits until they are Established. They define the
/// same kinds as metallb-rs's, so a control plane serves one set or the other.
pub fn install_metallb_crds(cp: &impl Kubectl) -> Result<()> {
    let dir = root()?.join("crds");
    let dir = dir.display().to_string();
    let apply = ["apply", "--server-side", "--force-conflicts", "-f", &dir];
    cp.run(&apply, None)?;
    let wait = [
        "wait",
        "--for=condition=Established",
        "--timeout=60s",
        "-f",
        &dir,
    ];
    cp.run(&wait, None)?;
    Ok(())
}

/// The objects MetalLB's processes expect in `namespace` on a cluster: the namespace, its
/// `default` ServiceAccount, the controller's Pod `controller` and a speaker Pod
/// `speaker-<node>` per node, bound to that node.
pub fn metallb_objects(namespace: &str, nodes: &[&str]) -> String {
    let pod = |name: &str, labels: &str, node: Option<&str>| {
        let node = node
            .map(|n| format!("  nodeName: {n}\n"))
            .unwrap_or_default();
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  namespace: {namespace}\n  \
             labels: {{{labels}}}\nspec:\n{node}  containers: [{{name: main, image: metallb}}]\n---\n"
        )
    };
    let mut yaml = format!(
        "apiVersion: v1\nkind: Namespace\nmetadata: {{name: {namespace}}}\n---\n\
         apiVersion: v1\nkind: ServiceAccount\nmetadata: {{name: default, namespace: {namespace}}}\n---\n"
    );
    yaml.push_str(&pod(
        "controller",
        "app: metallb, component: controller",
        None,
    ));
    let labels = SPEAKER_LABELS.replace('=', ": ").replace(',', ", ");
    for node in nodes {
        yaml.push_str(&pod(&format!("speaker-{node}"), &labels, Some(node)));
    }
    yaml
}

/// Writes each speaker Pod's `status.podIP` (its node's address), which memberlist joins.
pub fn publish_speaker_ips(
    cp: &impl Kubectl,
    namespace: &str,
    nodes: &[(&str, Ipv4Addr)],
) -> Result<()> {
    for (node, ip) in nodes {
        let status = format!(
            r#"{{"status":{{"phase":"Running","podIP":"{ip}","podIPs":[{{"ip":"{ip}"}}],"hostIP":"{ip}"}}}}"#
        );
        let pod = format!("speaker-{node}");
        let patch = [
            "-n",
            namespace,
            "patch",
            "pod",
            &pod,
            "--subresource=status",
            "--type=merge",
            "-p",
            &status,
        ];
        cp.run(&patch, None)?;
    }
    Ok(())
}

/// The memberlist key file MetalLB's speakers read (`--ml-secret-key-path` names `dir`).
pub fn memberlist_key(dir: &Path) -> Result<PathBuf> {
    std::fs::create_dir_all(dir).map_err(Error::io(format!("creating {}", dir.display())))?;
    let file = dir.join("secretkey");
    std::fs::write(&file, b"metallb-rs peers memberlist key!")
        .map_err(Error::io(format!("writing {}", file.display())))?;
    Ok(dir.to_path_buf())
}

/// MetalLB's controller's arguments, as its Deployment runs it without webhooks or metrics.
pub fn controller_args(kubeconfig: &Path, namespace: &str, health_port: u16) -> Vec<String> {
    vec![
        format!("--kubeconfig={}", kubeconfig.display()),
        format!("--namespace={namespace}"),
        "--pod-name=controller".into(),
        "--webhook-mode=disabled".into(),
        "--disable-cert-rotation".into(),
        "--port=0".into(),
        format!("--health-probe-port={health_port}"),
    ]
}

/// MetalLB's speaker's arguments on `node` (address `ip`), as its DaemonSet runs it; memberlist
/// on `ip`:7946 with the key in `key_dir`.
pub fn speaker_args(
    kubeconfig: &Path,
    namespace: &str,
    node: &str,
    ip: Ipv4Addr,
    key_dir: &Path,
) -> Vec<String> {
    vec![
        format!("--kubeconfig={}", kubeconfig.display()),
        format!("--namespace={namespace}"),
        format!("--node-name={node}"),
        format!("--pod-name=speaker-{node}"),
        format!("--ml-bindaddr={ip}"),
        "--ml-bindport=7946".into(),
        format!("--ml-labels={SPEAKER_LABELS}"),
        format!("--ml-secret-key-path={}", key_dir.display()),
        "--port=0".into(),
        "--health-probe-port=7473".into(),
    ]
}

/// kube-vip's arguments on `node`: services mode, ARP on `interface`, one Lease election in
/// `kube-system` at kube-vip's default timing (5 s lease, 3 s renew deadline, 1 s retry),
/// serving only Services of class [`KUBE_VIP_CLASS`].
pub fn kube_vip_args(node: &str, interface: &str) -> Vec<String> {
    [
        "manager",
        "--services",
        "--arp",
        "--leaderElection",
        "--interface",
        interface,
        "--nodeName",
        node,
        "--namespace",
        "kube-system",
        "--lbClassOnly",
    ]
    .map(String::from)
    .to_vec()
}

/// kube-vip's arguments on `node` in BGP mode: services mode without an election (every node
/// announces every Service of class [`KUBE_VIP_CLASS`], as MetalLB's BGP mode does), from AS
/// `local_as` with router ID `router_id`, at the lab router's timers (3 s keepalive, 9 s
/// hold). The addresses go on `lo`, as kube-vip's BGP guide puts them. Without an election
/// kube-vip announces a Service only once it has endpoints, read from EndpointSlices (the lab
/// has no controller writing the older Endpoints). The peer is in the environment:
/// [`kube_vip_bgp_peers`].
pub fn kube_vip_bgp_args(node: &str, router_id: Ipv4Addr, local_as: u32) -> Vec<String> {
    let mut args: Vec<String> = [
        "manager",
        "--services",
        "--bgp",
        "--interface",
        "lo",
        "--nodeName",
        node,
        "--namespace",
        "kube-system",
        "--lbClassOnly",
        "--enableEndpointSlices",
        "--bgpHoldTimer",
        "9",
        "--bgpKeepAliveInterval",
        "3",
    ]
    .map(String::from)
    .to_vec();
    args.extend([
        format!("--bgpRouterID={router_id}"),
        format!("--localAS={local_as}"),
    ]);
    args
}

/// The environment entry naming kube-vip's BGP peer `peer` (`ADDRESS:AS`): its `manager`
/// reads peers from `bgp_peers` only (`--bgppeers` is for its manifest generator).
pub fn kube_vip_bgp_peers(peer: &str) -> String {
    // address:as:password:multihop
    format!("bgp_peers={peer}::false")
}

/// A home directory under `dir` whose `.kube/config` is `kubeconfig`, for kube-vip's `HOME`.
pub fn kube_vip_home(dir: &Path, kubeconfig: &Path) -> Result<PathBuf> {
    let kube = dir.join(".kube");
    std::fs::create_dir_all(&kube).map_err(Error::io(format!("creating {}", kube.display())))?;
    std::fs::copy(kubeconfig, kube.join("config"))
        .map_err(Error::io(format!("copying {}", kubeconfig.display())))?;
    Ok(dir.to_path_buf())
}
