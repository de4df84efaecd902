//! Nothing outlives its owner: not when a control plane is dropped, and not when the process
//! that started it is killed.

mod common;

use std::io::{BufRead, BufReader};
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{eventually, process_alive, processes_mentioning};
use metallb_testenv::{ControlPlane, Options};
use serde_json::json;

/// Set in the child process that holds a control plane for the parent-death test.
const HOLDER_ENV: &str = "METALLB_TESTENV_HOLDER";
/// Prefix of the line the holder prints once its control plane is ready.
const HOLDER_READY: &str = "HOLDER-READY ";

#[test]
fn the_supervisor_tears_everything_down_when_its_parent_is_killed() {
    let mut holder = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "holder_of_a_control_plane_for_the_parent_death_test",
        ])
        .args(["--ignored", "--nocapture", "--test-threads=1"])
        .env(HOLDER_ENV, "1")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let ready = BufReader::new(holder.stdout.take().unwrap())
        .lines()
        .map_while(Result::ok)
        // libtest prints "test <name> ... " without a newline before the test's own output.
        .find_map(|l| l.split_once(HOLDER_READY).map(|(_, rest)| rest.to_string()))
        .expect("the holder process reports its control plane");
    let ready: serde_json::Value = serde_json::from_str(&ready).unwrap();
    let dir = PathBuf::from(ready["dir"].as_str().unwrap());
    let pids: Vec<u32> = serde_json::from_value(ready["pids"].clone()).unwrap();
    assert!(
        dir.is_dir(),
        "{} exists while the holder runs",
        dir.display()
    );
    assert!(
        pids.iter().all(|p| process_alive(*p)),
        "{pids:?} run while the holder runs"
    );

    holder.kill().unwrap(); // SIGKILL: no destructor, no signal handler runs in the holder
    holder.wait().unwrap();
    let killed = Instant::now();

    let needle = dir.to_string_lossy().into_owned();
    let gone = eventually(Duration::from_secs(10), || {
        !dir.exists()
            && pids.iter().all(|p| !process_alive(*p))
            && processes_mentioning(&needle).is_empty()
    });
    assert!(
        gone,
        "10 s after the holder was killed: dir exists={}, alive={:?}, mentioning the dir={:?}",
        dir.exists(),
        pids.iter()
            .filter(|p| process_alive(**p))
            .collect::<Vec<_>>(),
        processes_mentioning(&needle)
    );
    eprintln!(
        "teardown after the parent was killed took {:?}",
        killed.elapsed()
    );
}

/// Not a test of its own: the parent-death test runs this in a child process, which it kills.
#[test]
#[ignore = "helper process of the parent-death test"]
fn holder_of_a_control_plane_for_the_parent_death_test() {
    if std::env::var_os(HOLDER_ENV).is_none() {
        return;
    }
    let cp = ControlPlane::start(Options::default()).unwrap();
    println!(
        "{HOLDER_READY}{}",
        json!({"dir": cp.dir(), "pids": cp.pids()})
    );
    loop {
        std::thread::sleep(Duration::from_secs(60));
    }
}

#[test]
fn a_control_plane_on_another_address_is_gone_once_dropped() {
    let cp = ControlPlane::start(Options {
        listen: IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)),
        ..Options::default()
    })
    .unwrap();
    assert!(
        cp.server().starts_with("https://127.0.0.2:"),
        "{}",
        cp.server()
    );
    assert_eq!(
        cp.kubectl(["get", "--raw", "/readyz"]).unwrap().trim(),
        "ok"
    );
    let listening = cp.kubectl([
        "config",
        "view",
        "-o",
        "jsonpath={.clusters[0].cluster.server}",
    ]);
    assert_eq!(listening.unwrap(), cp.server());

    let dir = cp.dir().to_path_buf();
    let pids = cp.pids();
    assert!(
        dir.file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with(metallb_testenv::TEMP_DIR_PREFIX)
    );
    drop(cp);
    // Dropping waits for the supervisor, so everything is gone right away.
    assert!(!dir.exists(), "{} remains", dir.display());
    for pid in pids {
        assert!(!process_alive(pid), "process {pid} remains");
    }
}
