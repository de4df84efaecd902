//! The same MetalLB objects drive MetalLB v0.16.2's stack and ours (issue 16, acceptance 2).
//!
//! Each stack has its own API server: ours (our CRDs, our controller in this process,
//! `metallb-speaker` in three lab nodes) and MetalLB's (its CRDs, its controller and speakers,
//! built by `tests/testenv/peers/build.sh`, in a second lab).
//!
//! - Every one of MetalLB's sample objects (its module's `configsamples`, the Deployments aside)
//!   is accepted unchanged by both API servers (server-side dry run).
//! - Its layer-2 sample (pool `example` and the L2Advertisement `empty`), applied unchanged to
//!   both, makes both controllers give a new Service the same address and the same node answer
//!   the client's ARP request for it (MetalLB's election). Its BGP sample is left out: MetalLB's
//!   native BGP mode refuses the whole configuration because the pool has an IPv6 range.

mod common;
#[path = "common/peers.rs"]
mod peers;

use std::net::IpAddr;
use std::time::Duration;

use common::cluster::ClusterLab;
use common::wait_for;
use metallb_testenv::peers::{METALLB_NAMESPACE, samples_dir};
use metallb_testenv::{ControlPlane, Options};
use peers::{MetalLb, OurController, service, wait_ingress};

/// The layer-2 sample: pool `example` with the L2Advertisement `empty`.
const LAYER2_SAMPLE: &str = "simple_pool_adv_l2.yaml";

/// Every sample object of MetalLB's (its Deployments aside, which need a kubelet).
fn sample_files() -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(samples_dir().unwrap())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            !p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("deployment_")
        })
        .collect();
    files.sort();
    files
}

/// The sample files `cp` refuses in a server-side dry run, with its reasons.
fn refused(cp: &ControlPlane) -> Vec<String> {
    cp.kubectl(["create", "namespace", METALLB_NAMESPACE]).ok();
    sample_files()
        .iter()
        .filter_map(|file| {
            let path = file.display().to_string();
            let result = cp.kubectl(["apply", "--dry-run=server", "-f", &path]);
            result.err().map(|e| format!("{path}: {e}"))
        })
        .collect()
}

#[test]
fn every_metallb_sample_object_is_accepted_unchanged_by_our_api_server_as_by_metallbs() {
    let ours = ControlPlane::start(Options::default()).unwrap();
    ours.install_crds().unwrap();
    let theirs = ControlPlane::start(Options::default()).unwrap();
    metallb_testenv::peers::install_metallb_crds(&theirs).unwrap();
    let theirs_refused = refused(&theirs);
    assert!(
        theirs_refused.is_empty(),
        "MetalLB refuses its own samples: {theirs_refused:#?}"
    );
    let ours_refused = refused(&ours);
    assert!(
        ours_refused.is_empty(),
        "our API server refuses MetalLB's samples: {ours_refused:#?}"
    );
}

/// Applies the layer-2 sample unchanged and the Service `web` (in `default`).
fn configure(cp: &ControlPlane) {
    cp.kubectl(["create", "namespace", METALLB_NAMESPACE]).ok();
    let sample = samples_dir().unwrap().join(LAYER2_SAMPLE);
    cp.kubectl(["apply", "-f", &sample.display().to_string()])
        .unwrap_or_else(|e| panic!("{LAYER2_SAMPLE} refused: {e}"));
    cp.kubectl_with_input(["apply", "-f", "-"], &service("default", "web", "", ""))
        .unwrap();
}

/// The node answering ARP for `ip`, once one does.
fn owner(cluster: &ClusterLab, ip: IpAddr, logs: impl Fn() -> String) -> String {
    let IpAddr::V4(v4) = ip else {
        panic!("{ip} is not IPv4")
    };
    wait_for(Duration::from_secs(60), Duration::from_millis(200), || {
        cluster.arp_owner(v4)
    })
    .unwrap_or_else(|| panic!("nobody answers ARP for {ip}\n{}", logs()))
}

#[test]
fn metallbs_layer2_sample_gives_a_service_the_same_address_and_owner_on_its_stack_and_ours() {
    let ours_cp = ControlPlane::start(Options::default()).unwrap();
    ours_cp.install_crds().unwrap();
    let mut ours = ClusterLab::up(&ours_cp, "");
    configure(&ours_cp);
    let _controller = OurController::start(&ours_cp, METALLB_NAMESPACE);
    ours.start_all(METALLB_NAMESPACE, &[]);

    let theirs_cp = ControlPlane::start(Options::default()).unwrap();
    let theirs = ClusterLab::up(&theirs_cp, "");
    let mut metallb = MetalLb::prepare(&theirs_cp, &theirs, METALLB_NAMESPACE);
    configure(&theirs_cp);
    metallb.start_controller(&theirs_cp, &theirs);
    metallb.start_speakers(&theirs);

    let within = Duration::from_secs(60);
    let our_ip = wait_ingress(&ours_cp, "default", "web", within)
        .unwrap_or_else(|| panic!("our controller assigned nothing\n{}", ours.logs()));
    let their_ip = wait_ingress(&theirs_cp, "default", "web", within)
        .unwrap_or_else(|| panic!("MetalLB's controller assigned nothing\n{}", metallb.logs()));
    assert_eq!(
        our_ip, their_ip,
        "the two controllers chose different addresses"
    );

    let our_owner = owner(&ours, our_ip, || ours.logs());
    let their_owner = owner(&theirs, their_ip, || metallb.logs());
    println!("{our_ip}: ARP answered by {our_owner} (ours) and {their_owner} (MetalLB)");
    assert_eq!(
        our_owner, their_owner,
        "the two stacks elected different owners"
    );
}
