//! The stage of every measurement: three control-plane nodes (an etcd member and an API server
//! each, [`HaControlPlane`]), the lab nodes whose speakers each talk to their own node's API
//! server (as RKE2 runs them), the lab's Services and BGP peers, and a VIP that node1 owns.
//! The speakers are ours, or MetalLB v0.16.2's own (the peers benchmark includes this file and
//! `rolling.rs` for that); the Service's address is written as a controller would, so no
//! controller runs.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use metallb_testenv::ha::HaControlPlane;
use metallb_testenv::peers::Member;

use crate::common::cluster::{ClusterLab, NODES, lab_peers, lab_services, winner_of};
use crate::common::wait_for;
use crate::peers::MetalLb;

/// The speakers' namespace.
pub const NAMESPACE: &str = "metallb-system";
/// The Lease duration the scenarios run with (fencing acts within it + 1 s).
pub const LEASE: Duration = Duration::from_secs(4);
/// The Service whose VIP is probed.
const SERVICE: &str = "web";

/// Which of the speaker's leaving features run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Features {
    /// Cordon ignored, no fencing, no heartbeats: a speaker is alive while its Lease is fresh
    /// (MetalLB with memberlist disabled).
    Off,
    /// Today's MetalLB: cordon ignored, no fencing, the speakers hear each other directly
    /// (heartbeats standing for memberlist), so a speaker is alive while it is heard.
    Memberlist,
    /// Drain on cordon, heartbeats with the membership key, fencing.
    On,
    /// MetalLB v0.16.2's speaker (memberlist, native BGP) from MetalLB's own CRDs.
    MetalLb,
}

/// The HA control plane and the lab; the speakers go first on drop, then the lab.
pub struct Scene {
    /// MetalLB's speakers, with [`Features::MetalLb`].
    metallb: Option<MetalLb>,
    pub cluster: ClusterLab,
    pub ha: HaControlPlane,
    /// The VIP of `web`, owned by node1 while all three nodes run.
    pub vip: Ipv4Addr,
    features: Features,
    lease: Duration,
}

impl Scene {
    /// A fresh HA control plane and lab with the Services and peers applied; no speaker runs.
    pub fn up(features: Features) -> Scene {
        let ha = HaControlPlane::start(3).unwrap();
        if features != Features::MetalLb {
            ha.install_crds(0).unwrap();
            ha.kubectl(0, &["create", "namespace", NAMESPACE]).unwrap();
        }
        let upstreams = [0, 1, 2].map(|i| (ha.server(i), ha.kubeconfig(i)));
        let apply = |manifest: &str| {
            ha.kubectl_with_input(0, &["apply", "-f", "-"], manifest)
                .ok()
                .map(drop)
        };
        let cluster = ClusterLab::up_each(upstreams, "", apply);
        // MetalLB's CRDs, namespace and the Pods its speakers find each other by.
        let metallb = (features == Features::MetalLb)
            .then(|| MetalLb::prepare(&Member(&ha, 0), &cluster, NAMESPACE));
        let mut services = lab_services(NAMESPACE);
        if features == Features::MetalLb {
            // MetalLB's native BGP mode refuses a configuration with an IPv6 pool.
            services = services.replace(r#", "fd00:250::200/125""#, "");
        }
        let objects = format!("{services}---\n{}", lab_peers(NAMESPACE));
        apply(&objects).expect("the lab's objects apply");
        let all = ["node1", "node2", "node3"];
        let vip = (200..=207)
            .map(|last| Ipv4Addr::new(192, 168, 250, last))
            .find(|ip| winner_of(IpAddr::V4(*ip), &all) == "node1")
            .expect("node1 wins one of eight addresses");
        let status = format!(r#"{{"status":{{"loadBalancer":{{"ingress":[{{"ip":"{vip}"}}]}}}}}}"#);
        let patch = [
            "-n",
            NAMESPACE,
            "patch",
            "service",
            SERVICE,
            "--subresource=status",
            "--type=merge",
            "-p",
            &status,
        ];
        ha.kubectl(0, &patch).unwrap();
        Scene {
            metallb,
            cluster,
            ha,
            vip,
            features,
            lease: LEASE,
        }
    }

    /// The speaker arguments of this scene's features and Lease duration.
    fn args(&self) -> Vec<String> {
        let mut args = vec![
            format!("--fencing-lease-duration={}s", self.lease.as_secs()),
            "--log-level=info".to_owned(),
        ];
        match self.features {
            Features::Off => {
                args.extend(["--fencing=false", "--drain-on-cordon=false"].map(String::from));
            }
            Features::Memberlist => {
                args.extend(["--fencing=false", "--drain-on-cordon=false"].map(String::from));
                args.push(self.membership_key());
            }
            Features::On => {
                args.push("--drain-on-cordon=true".to_owned());
                args.push(self.membership_key());
            }
            Features::MetalLb => unreachable!("MetalLB's speaker takes its own arguments"),
        }
        args
    }

    /// The membership key argument; the key file is written on first use.
    fn membership_key(&self) -> String {
        let key = self.cluster.dir.path().join("membership-key");
        std::fs::write(&key, b"the leaving benchmark's membership key").unwrap();
        format!("--membership-key-file={}", key.display())
    }

    /// Starts (or restarts) node `index`'s speaker.
    pub fn start(&mut self, index: usize) {
        if let Some(metallb) = &mut self.metallb {
            metallb.start_speaker(&self.cluster, index);
            return;
        }
        let args = self.args();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.cluster.start(index, NAMESPACE, &args);
    }

    /// Starts every speaker with a Lease of `lease` and waits until node1 answers for the VIP
    /// and FRR has a path from each node.
    pub fn start_all(&mut self, lease: Duration) {
        self.lease = lease;
        for index in 0..NODES.len() {
            self.start(index);
        }
        self.wait_settled(&[0, 1, 2]);
    }

    /// Kills node `index`'s speaker at once (SIGKILL).
    pub fn kill(&mut self, index: usize) {
        match &mut self.metallb {
            Some(metallb) => metallb.kill(index),
            None => self.cluster.kill(index),
        }
    }

    /// Stops every speaker (SIGTERM).
    pub fn stop_all(&mut self) {
        for index in 0..NODES.len() {
            match &mut self.metallb {
                Some(metallb) => metallb.stop(index),
                None => self.cluster.stop(index),
            }
        }
    }

    /// Waits until the VIP's owner among `running` (indices) answers ARP and FRR has a path from
    /// each of them.
    pub fn wait_settled(&self, running: &[usize]) {
        let alive: Vec<&str> = running
            .iter()
            .map(|&i| self.cluster.names[i].as_str())
            .collect();
        let owner = winner_of(IpAddr::V4(self.vip), &alive);
        self.cluster
            .wait_owner(self.vip, Some(&owner), Duration::from_secs(60));
        let mut want: Vec<String> = alive.iter().map(|n| n.to_string()).collect();
        want.sort();
        let prefix = self.prefix();
        let routed = wait_for(Duration::from_secs(60), Duration::from_millis(100), || {
            (self.cluster.route_sources(&prefix) == want).then_some(())
        });
        assert!(
            routed.is_some(),
            "FRR's paths for {prefix}: {:?}, wanted {want:?}\n{}",
            self.cluster.route_sources(&prefix),
            self.cluster.logs()
        );
    }

    /// The VIP as the prefix FRR holds.
    pub fn prefix(&self) -> String {
        format!("{}/32", self.vip)
    }
}
