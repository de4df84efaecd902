//! Prints heartbeat traffic per node and crash detection times at 10, 100 and 1,000 simulated
//! nodes with the default timers, without loss and with 5% and 20% packet loss:
//!
//! ```text
//! cargo run -p metallb-liveness --example traffic --release
//! ```
//!
//! Traffic is measured over 10 s of a settled cluster (UDP payload bytes; add 28 bytes of
//! IPv4 and UDP headers per packet for the wire). Detection is the time from a crash to each
//! other node declaring it dead, over several crashes one after the other.

#[path = "../tests/sim/mod.rs"]
mod sim;

use std::time::Duration;

use metallb_liveness::Config;
use sim::{Sim, quantile};

const CRASHES: usize = 5;

fn measure(n: usize, loss: f64) {
    let mut sim = Sim::new(n, Config::default(), 0x7a11 + n as u64);
    sim.loss = loss;
    sim.run_for(Duration::from_secs(2));
    sim.reset_counters();
    let window = Duration::from_secs(10);
    sim.run_for(window);
    let seconds = window.as_secs_f64();
    let packets: Vec<f64> = sim
        .nodes
        .iter()
        .map(|node| node.sent_packets as f64 / seconds)
        .collect();
    let bytes: Vec<f64> = sim
        .nodes
        .iter()
        .map(|node| node.sent_bytes as f64 / seconds)
        .collect();
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let max = |v: &[f64]| v.iter().copied().fold(0.0, f64::max);
    let mut detections = Vec::new();
    let mut missed = 0;
    for k in 0..CRASHES {
        let victim = (k * 7919 + 1) % n;
        for time in sim.crash_and_detect(victim, Duration::from_secs(3)) {
            match time {
                Some(time) => detections.push(time),
                None => missed += 1,
            }
        }
        sim.boot(victim);
        sim.run_for(Duration::from_secs(1));
    }
    detections.sort_unstable();
    println!(
        "| {n:>5} | {:>4.0}% | {:>8.1} | {:>8.1} | {:>9.0} | {:>9.0} | {:>7.0} ms | {:>7.0} ms | {:>7.0} ms | {missed:>6} |",
        loss * 100.0,
        mean(&packets),
        max(&packets),
        mean(&bytes),
        max(&bytes),
        quantile(&detections, 0.5).as_secs_f64() * 1000.0,
        quantile(&detections, 0.99).as_secs_f64() * 1000.0,
        detections.last().copied().unwrap_or_default().as_secs_f64() * 1000.0,
    );
}

fn main() {
    let config = Config::default();
    println!(
        "Defaults: interval {:?}, {} missed, probe {:?}, suspicion {:?}; {CRASHES} crashes per row",
        config.interval, config.missed, config.probe, config.suspicion
    );
    println!(
        "| nodes | loss  | pkt/s avg | pkt/s max | B/s avg   | B/s max   | detect p50 | detect p99 | detect max | missed |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for loss in [0.0, 0.05, 0.20] {
        for n in [10, 100, 1000] {
            measure(n, loss);
        }
    }
}
