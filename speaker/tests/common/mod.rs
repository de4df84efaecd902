//! The speaker binary in a lab node, and what the tests ask FRR. Shared by the lab tests and
//! the lab benchmark.

#![allow(dead_code)] // Each test binary uses its own part.

use std::{
    fs,
    net::IpAddr,
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use metallb_testenv::lab::{Daemon, Host, Lab};
use nix::{
    sys::signal::{Signal, kill},
    unistd::Pid,
};
use serde_json::Value;

pub const SPEAKER: &str = env!("CARGO_BIN_EXE_metallb-speaker");

pub use metallb_testenv::wait_for;

/// The `i`th of the benchmarks' IPv4 /32 prefixes, 172.16.0.0 on.
pub fn prefix(i: usize) -> std::net::Ipv4Addr {
    std::net::Ipv4Addr::new(172, 16, (i / 256) as u8, (i % 256) as u8)
}

/// BIRD 2 in lab `host`, sending `prefixes` (static /32 blackhole routes) to the lab's FRR over
/// eBGP (AS 64500 to 64512), with its configuration, socket and pid file in `dir`.
pub fn spawn_bird(
    lab: &Lab,
    host: Host,
    dir: &Path,
    prefixes: impl Iterator<Item = std::net::Ipv4Addr>,
) -> Daemon {
    use std::fmt::Write as _;
    let source = Lab::address(host).0;
    let mut config =
        format!("router id {source};\nprotocol device {{}}\nprotocol static {{\n  ipv4;\n");
    for prefix in prefixes {
        writeln!(config, "  route {prefix}/32 blackhole;").unwrap();
    }
    writeln!(
        config,
        "}}\nprotocol bgp frr {{\n  local {source} as 64500;\n  neighbor 192.168.250.1 as 64512;\n  \
         hold time 9;\n  keepalive time 3;\n  connect delay time 1;\n  error wait time 2,10;\n  \
         ipv4 {{ import none; export all; }};\n}}"
    )
    .unwrap();
    let conf = dir.join("bird.conf");
    fs::write(&conf, config).unwrap();
    let (sock, pid) = (dir.join("bird.ctl"), dir.join("bird.pid"));
    let path = |p: &Path| p.to_str().unwrap().to_owned();
    let args = [
        "-f",
        "-c",
        &path(&conf),
        "-s",
        &path(&sock),
        "-P",
        &path(&pid),
    ];
    lab.spawn(host, "bird", &args).unwrap()
}

pub mod cluster;
pub mod probe;

/// A `metallb-speaker run` inside a lab host, with its configuration file, control socket and
/// log (JSON lines) in a directory of the test.
pub struct Speaker {
    daemon: Daemon,
    pub config: PathBuf,
    pub control: PathBuf,
}

impl Speaker {
    pub fn start(lab: &Lab, host: Host, dir: &Path, yaml: &str, extra: &[&str]) -> Speaker {
        let config = dir.join(format!("{}.yaml", host.name()));
        let control = dir.join(format!("{}.sock", host.name()));
        fs::write(&config, yaml).unwrap();
        let mut args = vec![
            "run",
            "--config",
            config.to_str().unwrap(),
            "--control",
            control.to_str().unwrap(),
            "--log-format",
            "json",
            "--log-level",
            "debug",
        ];
        args.extend_from_slice(extra);
        let daemon = lab.spawn(host, SPEAKER, &args).unwrap();
        let speaker = Speaker {
            daemon,
            config,
            control,
        };
        wait_for(Duration::from_secs(10), Duration::from_millis(20), || {
            speaker.control.exists().then_some(())
        })
        .unwrap_or_else(|| {
            panic!(
                "the speaker never opened its control socket:\n{}",
                speaker.log()
            )
        });
        speaker
    }

    pub fn pid(&self) -> Pid {
        Pid::from_raw(self.daemon.pid() as i32)
    }

    /// Rewrites the configuration and tells the speaker to re-read it.
    pub fn reload(&self, yaml: &str) {
        fs::write(&self.config, yaml).unwrap();
        kill(self.pid(), Signal::SIGHUP).unwrap();
    }

    pub fn terminate(&self) {
        kill(self.pid(), Signal::SIGTERM).unwrap();
    }

    pub fn is_running(&mut self) -> bool {
        self.daemon.is_running()
    }

    pub fn log(&self) -> String {
        fs::read_to_string(self.daemon.log()).unwrap_or_default()
    }

    /// Log lines (JSON objects) whose message is `message`.
    pub fn events(&self, message: &str) -> Vec<Value> {
        self.log()
            .lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .filter(|event| event["message"] == message)
            .collect()
    }

    /// `metallb-speaker show WHAT --json`.
    pub fn show(&self, what: &str) -> Value {
        let output = Command::new(SPEAKER)
            .args(["show", what, "--json", "--control"])
            .arg(&self.control)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "show {what}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice(&output.stdout).unwrap()
    }

    /// `metallb-speaker show WHAT` as a table.
    pub fn show_table(&self, what: &str) -> String {
        let output = Command::new(SPEAKER)
            .args(["show", what, "--control"])
            .arg(&self.control)
            .output()
            .unwrap();
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Resident and peak memory in KiB, from /proc.
    pub fn memory_kib(&self) -> (u64, u64) {
        cluster::memory_kib(self.daemon.pid())
    }
}

/// FRR's view of one prefix: its paths, or `None` when FRR does not have it.
pub fn frr_route(lab: &Lab, prefix: &str) -> Option<Value> {
    lab.bgp_route(prefix).ok().flatten()
}

/// The `bgpState` FRR reports for a neighbour.
pub fn frr_state(lab: &Lab, neighbour: IpAddr) -> String {
    frr_neighbour(lab, neighbour)["bgpState"]
        .as_str()
        .unwrap_or("")
        .to_owned()
}

pub fn frr_neighbour(lab: &Lab, neighbour: IpAddr) -> Value {
    lab.bgp_neighbour(neighbour).unwrap_or(Value::Null)
}

/// Waits until FRR calls the session with `neighbour` Established.
pub fn wait_established(lab: &Lab, neighbour: IpAddr, timeout: Duration) -> Option<Duration> {
    let start = Instant::now();
    wait_for(timeout, Duration::from_millis(50), || {
        (frr_state(lab, neighbour) == "Established").then(|| start.elapsed())
    })
}

/// The status FRR reports for its single-hop BFD session with `peer` (`up`, `down`, ...).
pub fn frr_bfd_status(lab: &Lab, peer: IpAddr) -> String {
    let session = lab
        .bfd_peer(peer, false)
        .ok()
        .flatten()
        .unwrap_or(Value::Null);
    session["status"].as_str().unwrap_or("").to_owned()
}
