//! The speaker in the lab against FRR, measured in one run and printed as a table:
//!
//!   cargo bench -p metallb-speaker --bench lab
//!
//! - 10,000 IPv4 prefixes: time from FRR calling the session Established until it holds all of
//!   them, for our speaker and for BIRD announcing the same prefixes to the same FRR;
//! - latency from adding one prefix (configuration re-read on SIGHUP) to our UPDATE on the
//!   router's wire and to the route in the router's kernel, and of withdrawing it, with 1 and
//!   with 10,000 prefixes in the file;
//! - BFD detection of a cut link at 10 ms x 3 and 300 ms x 3, seen by our speaker;
//! - the speaker's memory, idle and holding 10,000 prefixes.

#[path = "../tests/common/mod.rs"]
mod common;

use std::{
    fmt::Write as _,
    io::{BufRead, BufReader},
    net::{IpAddr, Ipv4Addr},
    process::Stdio,
    sync::mpsc,
    thread,
    time::{Duration, Instant},
};

use common::{Speaker, frr_bfd_status, prefix, wait_established, wait_for};
use metallb_testenv::lab::{Host, Lab, LabOptions};
use serde_json::Value;

const PREFIXES: usize = 10_000;
const LATENCY_RUNS: usize = 10;
const BFD_RUNS: usize = 5;
const SECOND: Duration = Duration::from_secs(1);

fn speaker_config(
    source: Ipv4Addr,
    bfd: Option<u32>,
    prefixes: impl Iterator<Item = String>,
) -> String {
    let mut text = String::new();
    if let Some(ms) = bfd {
        writeln!(
            text,
            "bfdProfiles:\n  - name: bench\n    receiveInterval: {ms}\n    transmitInterval: {ms}\n    detectMultiplier: 3"
        )
        .unwrap();
    }
    writeln!(
        text,
        "peers:\n  - name: router\n    myASN: 64500\n    peerASN: 64512\n    peerAddress: 192.168.250.1\n    sourceAddress: {source}\n    holdTime: 9s\n    connectTime: 1s"
    )
    .unwrap();
    if bfd.is_some() {
        text.push_str("    bfdProfile: bench\n");
    }
    let prefixes: Vec<String> = prefixes.collect();
    if !prefixes.is_empty() {
        writeln!(
            text,
            "bgpAdvertisements:\n  - prefixes: [{}]",
            prefixes.join(", ")
        )
        .unwrap();
    }
    text
}

fn all_prefixes() -> impl Iterator<Item = String> {
    (0..PREFIXES).map(|i| format!("{}/32", prefix(i)))
}

/// Prefixes FRR accepted from `neighbour`.
fn received(lab: &Lab, neighbour: IpAddr) -> u64 {
    let summary = lab
        .vtysh_json("show bgp ipv4 unicast summary json")
        .unwrap_or(Value::Null);
    summary["peers"][neighbour.to_string()]["pfxRcd"]
        .as_u64()
        .unwrap_or(0)
}

/// From FRR's Established to FRR holding every prefix, and from the start to the same moment.
struct Convergence {
    established: Duration,
    all: Duration,
}

fn converge(lab: &Lab, neighbour: IpAddr, start: Instant) -> Convergence {
    // Each vtysh poll takes 20-30 ms: that is the resolution of these figures.
    let established_at = wait_for(60 * SECOND, Duration::from_millis(10), || {
        (common::frr_state(lab, neighbour) == "Established").then(Instant::now)
    })
    .expect("the session comes up");
    let all_at = wait_for(60 * SECOND, Duration::from_millis(10), || {
        (received(lab, neighbour) >= PREFIXES as u64).then(Instant::now)
    })
    .expect("FRR gets every prefix");
    Convergence {
        established: established_at - start,
        all: all_at - established_at,
    }
}

/// What our speaker's run measured.
struct Ours {
    convergence: Convergence,
    /// RSS and peak in KiB with one prefix announced, and with every prefix.
    idle: (u64, u64),
    loaded: (u64, u64),
    /// One prefix added and removed with one prefix configured, and with every prefix.
    latency_small: Latency,
    latency_loaded: Latency,
}

/// From SIGHUP with one prefix more: our UPDATE on the router's wire, the route in the
/// router's kernel; and from SIGHUP with it removed: the route gone.
#[derive(Default)]
struct Latency {
    wire: Vec<Duration>,
    add: Vec<Duration>,
    remove: Vec<Duration>,
}

fn ours_10k(lab: &Lab, dir: &std::path::Path) -> Ours {
    let node = Host::Node(1);
    let source = Lab::address(node).0;
    let small = || std::iter::once("172.18.0.1/32".to_owned());
    let (idle, latency_small) = {
        let config = speaker_config(source, None, small());
        let speaker = Speaker::start(lab, node, dir, &config, &[]);
        wait_established(lab, source.into(), 30 * SECOND).expect("idle session");
        thread::sleep(SECOND);
        let memory = speaker.memory_kib();
        let latency = latency(lab, &speaker, source, small);
        speaker.terminate();
        wait_for(10 * SECOND, Duration::from_millis(50), || {
            (common::frr_state(lab, source.into()) != "Established").then_some(())
        });
        (memory, latency)
    };

    let start = Instant::now();
    let config = speaker_config(source, None, all_prefixes());
    let speaker = Speaker::start(lab, node, dir, &config, &[]);
    let convergence = converge(lab, source.into(), start);
    let loaded = speaker.memory_kib();
    let latency_loaded = latency(lab, &speaker, source, all_prefixes);
    speaker.terminate();
    Ours {
        convergence,
        idle,
        loaded,
        latency_small,
        latency_loaded,
    }
}

/// Whether a `tcpdump` line is a BGP message longer than a KEEPALIVE (19 bytes).
fn is_update(line: &str) -> bool {
    line.split("length ")
        .nth(1)
        .and_then(|rest| rest.split(':').next())
        .and_then(|n| n.parse::<u32>().ok())
        .is_some_and(|n| n > 19)
}

/// Adds one prefix to `base` and removes it again, `LATENCY_RUNS` times.
fn latency<I: Iterator<Item = String>>(
    lab: &Lab,
    speaker: &Speaker,
    source: Ipv4Addr,
    base: impl Fn() -> I,
) -> Latency {
    let routes = Monitor::start(lab, "ip", &["monitor", "route"]);
    let filter = format!("src host {source} and tcp dst port 179");
    let wire = Monitor::start(
        lab,
        "tcpdump",
        &["-l", "--immediate-mode", "-n", "-i", "eth0", &filter],
    );
    let mut latency = Latency::default();
    for run in 0..LATENCY_RUNS {
        let extra = format!("172.17.0.{}/32", run + 1);
        let with = speaker_config(source, None, base().chain([extra]));
        let without = speaker_config(source, None, base());
        let added = format!("172.17.0.{} ", run + 1);
        let deleted = format!("Deleted {added}");
        routes.drain();
        wire.drain();
        let t = Instant::now();
        speaker.reload(&with);
        latency
            .wire
            .push(wire.wait(is_update, t).expect("UPDATE sent"));
        let add = routes.wait(|line| line.starts_with(&added), t);
        latency.add.push(add.expect("route added"));
        thread::sleep(Duration::from_millis(200));
        routes.drain();
        let t = Instant::now();
        speaker.reload(&without);
        let remove = routes.wait(|line| line.starts_with(&deleted), t);
        latency.remove.push(remove.expect("route removed"));
        thread::sleep(Duration::from_millis(200));
    }
    latency
}

/// Lines a command in the router's namespace prints (`ip monitor`, `tcpdump -l`), timestamped
/// on arrival.
struct Monitor {
    lines: mpsc::Receiver<(Instant, String)>,
    child: std::process::Child,
}

impl Monitor {
    fn start(lab: &Lab, program: &str, args: &[&str]) -> Monitor {
        let mut child = lab
            .command(Host::Router, program)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send((Instant::now(), line)).is_err() {
                    break;
                }
            }
        });
        thread::sleep(Duration::from_millis(200));
        Monitor { lines, child }
    }

    fn drain(&self) {
        while self.lines.try_recv().is_ok() {}
    }

    fn wait(&self, matches: impl Fn(&str) -> bool, since: Instant) -> Option<Duration> {
        let deadline = Instant::now() + 10 * SECOND;
        while let Ok((at, line)) = self
            .lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            if matches(&line) {
                return Some(at - since);
            }
        }
        None
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn bird_10k(lab: &Lab, dir: &std::path::Path) -> Convergence {
    let node = Host::Node(2);
    let start = Instant::now();
    let _bird = common::spawn_bird(lab, node, dir, (0..PREFIXES).map(prefix));
    converge(lab, Lab::address(node).0.into(), start)
}

/// Cuts node1's link `runs` times and reads how long our speaker took to log BFD down.
fn bfd_detection(interval_ms: u32, dir: &std::path::Path) -> Vec<Duration> {
    let lab = Lab::up(LabOptions {
        bfd_rx_ms: interval_ms,
        bfd_tx_ms: interval_ms,
        bfd_multiplier: 3,
        ..LabOptions::default()
    })
    .unwrap();
    let node = Host::Node(1);
    let source = Lab::address(node).0;
    let speaker = Speaker::start(
        &lab,
        node,
        dir,
        &speaker_config(source, Some(interval_ms), std::iter::empty()),
        &[],
    );
    let mut detections = Vec::new();
    for _ in 0..BFD_RUNS {
        wait_established(&lab, source.into(), 60 * SECOND).expect("session up");
        wait_for(30 * SECOND, Duration::from_millis(20), || {
            (frr_bfd_status(&lab, source.into()) == "up").then_some(())
        })
        .expect("BFD up on FRR");
        wait_for(5 * SECOND, Duration::from_millis(10), || {
            let ups = speaker.events("bfd session up").len();
            (ups > speaker.events("bfd session down").len()).then_some(())
        })
        .expect("our BFD up");
        let downs = speaker.events("bfd session down").len();
        let start = Instant::now();
        lab.link(node, false).unwrap();
        let detected = wait_for(5 * SECOND, Duration::from_millis(1), || {
            (speaker.events("bfd session down").len() > downs).then(|| start.elapsed())
        })
        .expect("BFD down");
        detections.push(detected);
        lab.link(node, true).unwrap();
    }
    speaker.terminate();
    detections
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn spread(mut values: Vec<Duration>) -> String {
    values.sort();
    let median = values[values.len() / 2];
    format!(
        "median {}, min {}, max {} (n={})",
        ms(median),
        ms(values[0]),
        ms(*values.last().unwrap()),
        values.len()
    )
}

fn main() {
    // `cargo bench` passes `--bench`; any other argument filters nothing here.
    let dir = tempfile::tempdir().unwrap();
    let lab = Lab::up(LabOptions::default()).unwrap();
    eprintln!(
        "lab {} up; our speaker announces {PREFIXES} prefixes",
        lab.name()
    );
    let Ours {
        convergence: ours,
        idle,
        loaded,
        latency_small,
        latency_loaded,
    } = ours_10k(&lab, dir.path());
    eprintln!("BIRD announces the same {PREFIXES} prefixes");
    let bird = bird_10k(&lab, dir.path());
    drop(lab);
    eprintln!("BFD detection at 10 ms x 3");
    let fast = bfd_detection(10, dir.path());
    eprintln!("BFD detection at 300 ms x 3");
    let slow = bfd_detection(300, dir.path());

    println!("\n| measure | metallb-speaker | BIRD 2 |");
    println!("|---|---:|---:|");
    println!(
        "| {PREFIXES} prefixes: Established -> all in FRR | {} | {} |",
        ms(ours.all),
        ms(bird.all)
    );
    println!(
        "| {PREFIXES} prefixes: process start -> all in FRR | {} | {} |",
        ms(ours.established + ours.all),
        ms(bird.established + bird.all)
    );
    println!("\n| measure | result |");
    println!("|---|---|");
    for (config, latency) in [
        ("1 prefix", latency_small),
        ("10,000 prefixes", latency_loaded),
    ] {
        println!(
            "| one prefix added, {config} in the file: SIGHUP -> our UPDATE at the router | {} |",
            spread(latency.wire)
        );
        println!(
            "| one prefix added, {config} in the file: SIGHUP -> route in the router's kernel | {} |",
            spread(latency.add)
        );
        println!(
            "| that prefix removed: SIGHUP -> route gone from the router's kernel | {} |",
            spread(latency.remove)
        );
    }
    println!(
        "| BFD 10 ms x 3: link cut -> speaker logs down | {} |",
        spread(fast)
    );
    println!(
        "| BFD 300 ms x 3: link cut -> speaker logs down | {} |",
        spread(slow)
    );
    println!(
        "| speaker memory, one session, 1 prefix (RSS / peak) | {} / {} KiB |",
        idle.0, idle.1
    );
    println!(
        "| speaker memory, {PREFIXES} prefixes (RSS / peak) | {} / {} KiB |",
        loaded.0, loaded.1
    );
}
