//! Heartbeats between the speakers, end to end: three lab nodes run `metallb-speaker` against
//! the real API server with a membership key, as the DaemonSet does, and the client probes the
//! layer 2 VIP with an ARP request every 10 ms and records which node answers when.
//!
//! - a killed speaker's VIP moves to the next node in well under the Lease duration;
//! - a speaker stopped with SIGTERM hands the VIP over: the next owner answers before the old
//!   one falls silent, so the client sees no gap;
//! - a speaker cut from the API server while its peers reach it fences itself within the Lease
//!   duration + 1 s, the next node answers, and it takes the VIP back once the API is back;
//! - a speaker restarted on a node that does not win the VIP never answers for it: it plans
//!   only once it knows the other speakers (a DaemonSet upgrade saw two MACs for 10-35 ms).

mod common;

use std::net::IpAddr;
use std::time::{Duration, Instant};

use common::cluster::{ClusterLab, VIP, assign_ingress, lab_services, winner_of};
use common::probe::{Probe, first_from, last_from, longest_gap};
use metallb_testenv::{ControlPlane, test_name};

/// The harness's Lease duration (`--fencing-lease-duration=4s`).
const LEASE: Duration = Duration::from_secs(4);

/// The node MetalLB's election picks for the VIP among `alive`.
fn winner(alive: &[&str]) -> String {
    winner_of(IpAddr::V4(VIP), alive)
}

/// A cluster lab whose speakers share a membership key and announce the VIP, the winner
/// answering.
fn lab(cp: &ControlPlane, namespace: &str) -> ClusterLab {
    let mut cluster = ClusterLab::up(cp, "");
    cp.kubectl_with_input(["apply", "-f", "-"], &lab_services(namespace))
        .unwrap();
    assign_ingress(cp, namespace, "web", IpAddr::V4(VIP));
    cluster.start_all(namespace, &[&key_argument(&cluster)]);
    let expected = winner(&["node1", "node2", "node3"]);
    cluster.wait_owner(VIP, Some(&expected), Duration::from_secs(60));
    cluster
}

/// The speakers' `--membership-key-file` argument, the key written on first use.
fn key_argument(cluster: &ClusterLab) -> String {
    let key = cluster.dir.path().join("membership-key");
    if !key.exists() {
        std::fs::write(&key, b"a membership key only these speakers know").unwrap();
    }
    format!("--membership-key-file={}", key.display())
}

/// The lab of [`lab`] in a namespace of its own, the VIP's owner and the node next in line.
fn owner_and_next(cp: &ControlPlane, namespace: &str) -> (ClusterLab, String, String) {
    let cluster = lab(cp, namespace);
    let owner = winner(&["node1", "node2", "node3"]);
    let rest: Vec<&str> = ["node1", "node2", "node3"]
        .into_iter()
        .filter(|n| *n != owner)
        .collect();
    let next = winner(&rest);
    (cluster, owner, next)
}

fn index_of(cluster: &ClusterLab, node: &str) -> usize {
    cluster.names.iter().position(|n| n == node).unwrap()
}

#[test]
fn a_killed_speakers_vip_moves_within_a_second_and_a_half() {
    let cp = ControlPlane::shared();
    cp.install_crds().unwrap();
    let ns = cp.namespace(test_name!()).unwrap();
    let (mut cluster, owner, next) = owner_and_next(cp, ns.name());

    let probe = Probe::start(&cluster, VIP, 6);
    std::thread::sleep(Duration::from_secs(1));
    let killed = Instant::now();
    cluster.kill(index_of(&cluster, &owner));
    let killed_at = 1.0 + killed.elapsed().as_secs_f64();
    let replies = probe.replies(&cluster);
    let moved = first_from(&replies, &next, killed_at);
    let Some(moved) = moved else {
        panic!("{next} never answered\n{replies:?}\n{}", cluster.logs());
    };
    let failover = moved - killed_at;
    println!("SIGKILL of {owner}: {next} answers {failover:.3} s later");
    assert!(failover < 1.5, "failover took {failover:.3} s");
    assert!(failover < LEASE.as_secs_f64() / 2.0);
}

#[test]
fn a_speaker_stopped_with_sigterm_hands_its_vip_over_without_a_gap() {
    let cp = ControlPlane::shared();
    cp.install_crds().unwrap();
    let ns = cp.namespace(test_name!()).unwrap();
    let (mut cluster, owner, next) = owner_and_next(cp, ns.name());

    let probe = Probe::start(&cluster, VIP, 5);
    std::thread::sleep(Duration::from_secs(1));
    cluster.stop(index_of(&cluster, &owner));
    let replies = probe.replies(&cluster);
    let first_new = first_from(&replies, &next, 0.0);
    let last_old = last_from(&replies, &owner);
    let (Some(first_new), Some(last_old)) = (first_new, last_old) else {
        panic!("no handover seen\n{replies:?}\n{}", cluster.logs());
    };
    let gap = longest_gap(&replies, 0.0);
    println!(
        "SIGTERM of {owner}: {next} first answered at {first_new:.3} s, {owner} last at \
         {last_old:.3} s; longest gap at the client {:.0} ms",
        gap * 1000.0
    );
    assert!(
        first_new <= last_old,
        "the new owner answered only after the old one fell silent\n{}",
        cluster.logs()
    );
    assert!(gap < 0.2, "the client saw a {gap:.3} s gap");
}

#[test]
fn a_speaker_cut_from_the_api_fences_itself_and_takes_its_vip_back_when_the_api_returns() {
    let cp = ControlPlane::shared();
    cp.install_crds().unwrap();
    let ns = cp.namespace(test_name!()).unwrap();
    let (cluster, owner, next) = owner_and_next(cp, ns.name());
    let cut = index_of(&cluster, &owner);

    let probe = Probe::start(&cluster, VIP, 12);
    std::thread::sleep(Duration::from_secs(1));
    let frozen = Instant::now();
    cluster.freeze(cut);
    let frozen_at = 1.0 + frozen.elapsed().as_secs_f64();
    let replies = probe.replies(&cluster);
    let last_old = last_from(&replies, &owner).unwrap_or(0.0);
    let first_new = first_from(&replies, &next, frozen_at);
    let Some(first_new) = first_new else {
        panic!("{next} never answered\n{replies:?}\n{}", cluster.logs());
    };
    let fenced = last_old - frozen_at;
    let two_macs = (last_old - first_new).max(0.0);
    println!(
        "{owner} cut from the API: silent {fenced:.3} s later, {next} answers after {:.3} s; \
         two MACs answered for {:.0} ms",
        first_new - frozen_at,
        two_macs * 1000.0
    );
    assert!(
        fenced <= LEASE.as_secs_f64() + 1.0,
        "{owner} answered {fenced:.3} s after the cut\n{}",
        cluster.logs()
    );
    assert!(two_macs < 0.2, "two MACs answered for {two_macs:.3} s");
    assert!(
        cluster.full_logs().contains("Fenced"),
        "no fencing logged\n{}",
        cluster.logs()
    );

    cluster.thaw(cut);
    let back = Instant::now();
    cluster.wait_owner(VIP, Some(&owner), LEASE * 3);
    println!("API back: {owner} answers again after {:?}", back.elapsed());
}

#[test]
fn a_restarted_speaker_that_does_not_win_the_vip_never_answers_for_it() {
    let cp = ControlPlane::shared();
    cp.install_crds().unwrap();
    let ns = cp.namespace(test_name!()).unwrap();
    let (mut cluster, owner, next) = owner_and_next(cp, ns.name());
    let restarted = index_of(&cluster, &next);
    cluster.stop(restarted);

    let probe = Probe::start(&cluster, VIP, 6);
    std::thread::sleep(Duration::from_secs(1));
    cluster.start(restarted, ns.name(), &[&key_argument(&cluster)]);
    let record = probe.record(&cluster);
    let from_restarted: Vec<f64> = record
        .replies
        .iter()
        .filter(|(_, node)| *node == next)
        .map(|(at, _)| *at)
        .collect();
    let (unanswered, for_s) = record.unanswered(0.0, f64::INFINITY);
    println!(
        "{next} restarted at 1 s: {} replies from it; at most {unanswered} requests in a row \
         unanswered ({:.0} ms)",
        from_restarted.len(),
        for_s * 1000.0
    );
    assert!(
        from_restarted.is_empty(),
        "{next} answered for {owner}'s VIP at {from_restarted:?}\n{}",
        cluster.logs()
    );
    let text = cluster.show_service(restarted, &format!("{}/web", ns.name()));
    assert!(
        text.contains(&format!("{owner} won the election")),
        "the restarted speaker does not know the owner\n{text}\n{}",
        cluster.logs()
    );
    assert!(
        unanswered <= 2,
        "{owner} stopped answering\n{}",
        cluster.logs()
    );
}
