//! Leaving without breaking anything (DESIGN.md 7.4), measured end to end in one run and
//! printed as tables (needs root):
//!
//!   cargo bench -p metallb-speaker --bench leaving
//!
//! The stage is the motivating report's: three control-plane nodes, each with its own etcd
//! member and kube-apiserver, each node's speaker talking to its own node's API server (as RKE2
//! runs them); FRR is the router, the lab's client probes the VIP with an ARP request every
//! 10 ms and FRR's paths for it are sampled every 10 ms.
//!
//! - the rolling update of the control plane (drain node1, remove its etcd member, delete its
//!   Node, power it off) three times: liveness from the Leases only, no drain, no fencing
//!   (MetalLB with memberlist disabled); heartbeats standing for memberlist, no drain, no
//!   fencing (today's MetalLB); and drain on cordon, heartbeats and fencing. Each shows the
//!   time without an answer, the time with two MACs answering, who answers at the end, the
//!   leaving node's BGP path;
//! - with everything on: the gap a planned exit (SIGTERM) leaves, the failover after SIGKILL,
//!   fencing after an API cut and the two-MAC window it leaves, a speaker crash at FRR with and
//!   without graceful restart;
//! - a speaker DaemonSet rolling upgrade on the local cluster of real kubelets (the operator
//!   re-rendering the speakers after a log-level change): per node replaced, the longest time
//!   without an ARP answer, the time FRR had no path, the two-MAC window;
//! - heartbeat packets per node at 10, 100 and 1,000 simulated nodes, and the API requests a
//!   speaker makes per second at idle.
//!
//! `cargo bench -p metallb-speaker --bench leaving -- rolling` (or `moves`, `upgrade`,
//! `heartbeats`) runs one part.

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "leaving/load.rs"]
mod load;
#[path = "leaving/moves.rs"]
mod moves;
#[path = "../tests/common/peers.rs"]
mod peers;
#[path = "leaving/probe.rs"]
mod probe;
#[path = "leaving/rolling.rs"]
mod rolling;
#[path = "leaving/scene.rs"]
mod scene;
#[path = "../liveness/tests/sim/mod.rs"]
#[allow(
    unfulfilled_lint_expectations,
    reason = "the simulation expects the pure crate's clippy.toml (no clock), which this crate does not have"
)]
mod sim;
#[path = "leaving/upgrade.rs"]
mod upgrade;

use moves::Row;
use scene::{Features, LEASE, Scene};

fn table(rows: &[Row]) -> String {
    let mut out = String::from("| measure | result | target |\n|---|---|---|\n");
    for (what, figure, target) in rows {
        out.push_str(&format!("| {what} | {figure} | {target} |\n"));
    }
    out
}

fn main() {
    // `cargo bench ... -- rolling` runs that part only (cargo adds `--bench`).
    let parts: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let runs = |part: &str| parts.is_empty() || parts.iter().any(|p| p == part);
    if runs("heartbeats") {
        let heartbeats: Vec<Row> = [10, 100, 1000].map(load::heartbeats).into();
        println!("{}", table(&heartbeats));
    }
    if runs("rolling") {
        rolling_update();
    }
    if runs("moves") {
        moves();
    }
    if runs("upgrade") {
        let (rows, notes) = upgrade::run();
        println!("{}{notes}", table(&rows));
    }
}

/// The rolling update, three ways.
fn rolling_update() {
    let runs = [Features::Off, Features::Memberlist, Features::On].map(rolling::run);
    let mut out = String::from(
        "| rolling update of the control plane, node1 leaving | Lease only, no drain/fencing | heartbeats (memberlist), no drain/fencing: today's MetalLB | drain on cordon + heartbeats + fencing |\n|---|---|---|---|\n",
    );
    for (i, row) in rolling::ROWS.iter().enumerate() {
        let values: Vec<&str> = runs.iter().map(|r| r.values[i].as_str()).collect();
        out.push_str(&format!("| {row} | {} |\n", values.join(" | ")));
    }
    for (i, (step, _)) in runs[0].timeline.iter().enumerate() {
        let at: Vec<String> = runs
            .iter()
            .map(|r| format!("{:.2}", r.timeline[i].1))
            .collect();
        out.push_str(&format!(
            "| step: {step}, s after the drain | {} |\n",
            at.join(" | ")
        ));
    }
    for (run, name) in runs.iter().zip(["Lease only", "memberlist", "on"]) {
        out.push_str(&format!(
            "\nARP answers, {name} (s after the drain, who): {}\n",
            run.changes
        ));
    }
    println!("{out}");
}

/// One cause at a time, every feature on, and the API load.
fn moves() {
    let mut scene = Scene::up(Features::On);
    let mut rows = vec![load::api_requests(&mut scene)];
    scene.start_all(LEASE);
    rows.push(moves::planned_handover(&mut scene));
    rows.push(moves::unplanned_failover(&mut scene));
    rows.extend(moves::api_cut(&mut scene));
    rows.push(moves::crash_at_frr(&mut scene, 1, &[0, 1, 2], false));
    rows.push(moves::crash_at_frr(&mut scene, 1, &[0, 1, 2], true));
    drop(scene);
    println!("{}", table(&rows));
}
