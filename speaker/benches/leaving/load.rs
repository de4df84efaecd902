//! What membership costs: heartbeat packets per node with the default timers at 10, 100 and
//! 1,000 simulated nodes (metallb-liveness's simulation: the real cores, a simulated network
//! and API, virtual time), and the API requests a speaker makes at idle (each speaker talks to
//! its own API server here, so that server's own request counter is that speaker's load).

use std::time::Duration;

use metallb_liveness::Config;

use crate::moves::Row;
use crate::scene::{NAMESPACE, Scene};
use crate::sim::Sim;

/// The settled cluster is measured over this much virtual time.
const WINDOW: Duration = Duration::from_secs(10);
/// How long the API servers are watched at idle.
const IDLE: Duration = Duration::from_secs(20);

/// Heartbeat packets per second sent by a node (mean and max over the nodes) at `n` nodes.
pub fn heartbeats(n: usize) -> Row {
    let mut sim = Sim::new(n, Config::default(), 0x1ea7 + n as u64);
    sim.run_for(Duration::from_secs(2));
    sim.reset_counters();
    sim.run_for(WINDOW);
    let rates: Vec<f64> = sim
        .nodes
        .iter()
        .map(|node| node.sent_packets as f64 / WINDOW.as_secs_f64())
        .collect();
    let mean = rates.iter().sum::<f64>() / rates.len() as f64;
    let max = rates.iter().copied().fold(0.0, f64::max);
    (
        format!("heartbeat packets/s per node, {n} simulated nodes"),
        format!("mean {mean:.1}, max {max:.1}"),
        "not linear in n".into(),
    )
}

/// Requests member `i`'s API server has served so far (its own counter, every verb).
fn served(scene: &Scene, i: usize) -> f64 {
    scene
        .ha
        .kubectl(i, &["get", "--raw", "/metrics"])
        .unwrap()
        .lines()
        .filter(|l| l.starts_with("apiserver_request_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Each member's request rate over [`IDLE`], less the one `/metrics` read that ends it.
fn rates(scene: &Scene) -> Vec<f64> {
    let before: Vec<f64> = (0..3).map(|i| served(scene, i)).collect();
    std::thread::sleep(IDLE);
    (0..3)
        .map(|i| (served(scene, i) - before[i] - 1.0) / IDLE.as_secs_f64())
        .collect()
}

/// API requests per second of each speaker at idle with the product's default Lease (10 s),
/// against the same servers without speakers; leaves the speakers stopped.
pub fn api_requests(scene: &mut Scene) -> Row {
    let baseline = rates(scene);
    scene.start_all(Duration::from_secs(10));
    // Past the start-up lists and the first renewals.
    std::thread::sleep(Duration::from_secs(5));
    let with = rates(scene);
    scene.stop_all();
    let per: Vec<String> = with
        .iter()
        .zip(&baseline)
        .map(|(w, b)| format!("{:.2}", (w - b).max(0.0)))
        .collect();
    (
        format!(
            "API requests/s per speaker at idle (10 s Lease, heartbeats on; namespace {NAMESPACE})"
        ),
        format!("{} /s", per.join(", ")),
        "<= 1 per node every few s".into(),
    )
}
