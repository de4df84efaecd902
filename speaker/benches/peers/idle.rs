//! What a stack costs at idle, over one [`WINDOW`]: the CPU its processes use (user + system
//! time from `/proc/<pid>/stat`) and the requests its API server serves (the server's own
//! counter, `apiserver_request_total`, summed over every label). Each system has an API server
//! of its own, so the counter's rate is that system's load plus the server's own.

use std::time::{Duration, Instant};

use metallb_testenv::ControlPlane;

use crate::common::cluster::api_requests;

/// How long each idle figure is measured over.
pub const WINDOW: Duration = Duration::from_secs(30);

/// CPU time (user + system) `pid` has used so far, in seconds.
fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name, in parentheses, may hold spaces: count fields after it. utime and
    // stime are the line's fields 14 and 15, so 12 and 13 after the name (field 2).
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / clock_ticks())
}

/// The kernel's clock ticks per second (`getconf CLK_TCK`, 100 on Linux).
fn clock_ticks() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        let output = std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok();
        output
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// One window's figures.
pub struct Idle {
    /// Requests per second the API server served (the reading itself excluded).
    pub api: f64,
    /// Each process's CPU use, in percent of one core, in the order given (None: it exited).
    pub cpu: Vec<Option<f64>>,
}

/// Sleeps one [`WINDOW`] and reads what `cp` served and `pids` used meanwhile.
pub fn measure(cp: &ControlPlane, pids: &[u32]) -> Idle {
    let before: Vec<Option<f64>> = pids.iter().map(|p| cpu_seconds(*p)).collect();
    let requests = api_requests(cp);
    let began = Instant::now();
    std::thread::sleep(WINDOW);
    let api = (api_requests(cp) - requests - 1.0) / began.elapsed().as_secs_f64();
    let seconds = began.elapsed().as_secs_f64();
    let cpu = pids
        .iter()
        .zip(before)
        .map(|(pid, before)| Some((cpu_seconds(*pid)? - before?) / seconds * 100.0))
        .collect();
    Idle { api, cpu }
}
