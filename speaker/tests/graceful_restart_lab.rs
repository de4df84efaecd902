//! BGP graceful restart against FRR as the helper (needs root): a speaker killed with SIGKILL
//! and started again keeps its routes at FRR throughout, marked stale in between, over IPv4
//! and IPv6 sessions; without graceful restart they vanish; a planned exit (SIGTERM)
//! withdraws them even with graceful restart on. FRR is polled every 10 ms through one
//! long-running vtysh (a new vtysh per query takes 60 ms or more). The measured figures are
//! printed (`cargo test -- --nocapture` shows them).

mod common;

use std::{
    io::{BufRead, BufReader, Lines, Write},
    net::IpAddr,
    path::Path,
    process::{Child, ChildStdin, ChildStdout, Stdio},
    sync::atomic::{AtomicBool, Ordering},
    thread,
    time::{Duration, Instant},
};

use common::{Speaker, frr_bfd_status, frr_neighbour, frr_route, wait_established, wait_for};
use metallb_testenv::lab::{Host, Lab, LabOptions};
use nix::sys::signal::{Signal, kill};
use serde_json::Value;

const SECOND: Duration = Duration::from_secs(1);
const POLL: Duration = Duration::from_millis(10);

/// node1's static configuration: one eBGP session to the router over `family`, announcing
/// `prefixes`, with `enableGracefulRestart` as given.
fn config(family: Family, graceful_restart: bool, prefixes: &[&str]) -> String {
    config_with_bfd(family, graceful_restart, false, prefixes)
}

/// As [`config`], with FRR's BFD timers (300 ms x 3) on the session when `bfd`.
fn config_with_bfd(family: Family, graceful_restart: bool, bfd: bool, prefixes: &[&str]) -> String {
    let (router, source) = match family {
        Family::Ipv4 => ("192.168.250.1", "192.168.250.11"),
        Family::Ipv6 => ("fd00:250::1", "fd00:250::11"),
    };
    let prefixes: Vec<String> = prefixes.iter().map(|p| format!("\"{p}\"")).collect();
    let (profiles, profile) = if bfd {
        let profiles = "bfdProfiles:\n  - name: lab\n    receiveInterval: 300\n    \
                        transmitInterval: 300\n    detectMultiplier: 3\n";
        (profiles, "    bfdProfile: lab\n")
    } else {
        ("", "")
    };
    format!(
        r#"
routerID: 192.168.250.11
{profiles}peers:
  - name: router
    myASN: 64500
    peerASN: 64512
    peerAddress: "{router}"
    sourceAddress: "{source}"
    holdTime: 9s
    connectTime: 1s
    enableGracefulRestart: {graceful_restart}
{profile}bgpAdvertisements:
  - prefixes: [{}]
"#,
        prefixes.join(", ")
    )
}

#[derive(Clone, Copy, Debug)]
enum Family {
    Ipv4,
    Ipv6,
}

impl Family {
    /// The session's neighbour address at FRR, the route kept and the one the restarted
    /// speaker no longer announces.
    fn fixture(self) -> (IpAddr, &'static str, &'static str) {
        let (v4, v6) = Lab::address(Host::Node(1));
        match self {
            Family::Ipv4 => (v4.into(), "192.168.250.210/32", "192.168.250.211/32"),
            Family::Ipv6 => (v6.into(), "fd00:250::210/128", "fd00:250::211/128"),
        }
    }
}

/// What FRR showed for a prefix at one moment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Seen {
    Absent,
    Fresh,
    Stale,
}

impl Seen {
    fn of(route: Option<&Value>) -> Seen {
        match route {
            None => Seen::Absent,
            Some(route) if route["paths"][0]["stale"] == Value::Bool(true) => Seen::Stale,
            Some(_) => Seen::Fresh,
        }
    }
}

fn seen(lab: &Lab, prefix: &str) -> Seen {
    Seen::of(frr_route(lab, prefix).as_ref())
}

/// One vtysh attached to the router's bgpd, answering a command per line on its stdin.
struct Vtysh {
    child: Child,
    input: ChildStdin,
    output: Lines<BufReader<ChildStdout>>,
}

impl Vtysh {
    fn open(lab: &Lab) -> Vtysh {
        let mut command = lab.command(Host::Router, "vtysh");
        command
            .args(["-N", lab.name(), "-d", "bgpd"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        let mut child = command.spawn().expect("vtysh starts");
        let input = child.stdin.take().expect("its stdin");
        let output = BufReader::new(child.stdout.take().expect("its stdout")).lines();
        Vtysh {
            child,
            input,
            output,
        }
    }

    /// FRR's view of `prefix`: vtysh echoes the prompt and command, then prints the JSON
    /// object, which ends with a `}` of its own line.
    fn seen(&mut self, prefix: &str) -> Seen {
        let family = if prefix.contains(':') { "ipv6" } else { "ipv4" };
        writeln!(self.input, "show bgp {family} unicast {prefix} json").expect("vtysh reads");
        let mut json = String::new();
        for line in self.output.by_ref() {
            let line = line.expect("vtysh answers");
            if line == "{" || !json.is_empty() {
                json.push_str(&line);
                if line == "}" {
                    break;
                }
            }
        }
        let route: Value = serde_json::from_str(&json).expect("vtysh prints JSON");
        let has_paths = route["paths"].as_array().is_some_and(|p| !p.is_empty());
        Seen::of(has_paths.then_some(&route))
    }
}

impl Drop for Vtysh {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Samples of FRR's view of a prefix, taken every 10 ms: when the answer came, counted from
/// the moment the poller started, and what it was.
struct Samples(Vec<(Duration, Seen)>);

impl Samples {
    /// Runs `during` while polling FRR for `prefix` on another thread.
    fn during(lab: &Lab, prefix: &str, during: impl FnOnce()) -> Samples {
        let done = AtomicBool::new(false);
        thread::scope(|scope| {
            let mut vtysh = Vtysh::open(lab);
            vtysh.seen(prefix);
            let done = &done;
            let poller = scope.spawn(move || {
                let start = Instant::now();
                let mut samples = Vec::new();
                while !done.load(Ordering::Relaxed) {
                    let seen = vtysh.seen(prefix);
                    samples.push((start.elapsed(), seen));
                    thread::sleep(POLL);
                }
                samples
            });
            during();
            done.store(true, Ordering::Relaxed);
            Samples(poller.join().expect("the poller runs"))
        })
    }

    fn count(&self, state: Seen) -> usize {
        self.0.iter().filter(|(_, seen)| *seen == state).count()
    }

    /// From the first sample in `state` to the first one after it in another state.
    fn span(&self, state: Seen) -> Option<Duration> {
        let first = self.0.iter().position(|(_, seen)| *seen == state)?;
        let end = self.0[first..]
            .iter()
            .find(|(_, seen)| *seen != state)
            .map_or(self.0.last()?.0, |(at, _)| *at);
        Some(end - self.0[first].0)
    }

    /// The median and the longest gap between two samples: the resolution of what they prove.
    fn resolution(&self) -> (Duration, Duration) {
        let mut gaps: Vec<Duration> = self.0.windows(2).map(|p| p[1].0 - p[0].0).collect();
        gaps.sort();
        let median = gaps.get(gaps.len() / 2).copied().unwrap_or_default();
        (median, gaps.last().copied().unwrap_or_default())
    }
}

/// Kills the speaker without letting it say anything, and waits for the process to be gone.
fn kill_hard(speaker: &mut Speaker) {
    kill(speaker.pid(), Signal::SIGKILL).expect("the speaker is killed");
    wait_for(5 * SECOND, POLL, || (!speaker.is_running()).then_some(())).expect("it dies");
}

fn start(lab: &Lab, dir: &Path, yaml: &str) -> Speaker {
    Speaker::start(lab, Host::Node(1), dir, yaml, &[])
}

/// FRR's graceful restart view of the neighbour, for the test output.
fn frr_restart_info(lab: &Lab, neighbour: IpAddr) -> String {
    let info = &frr_neighbour(lab, neighbour)["gracefulRestartInfo"];
    format!(
        "remote mode {}, R bit {}, received restart time {} s",
        info["remoteGrMode"], info["rBit"], info["timers"]["receivedRestartTimer"]
    )
}

/// With graceful restart on, SIGKILL and a new process: the kept prefix never leaves FRR and
/// is stale in between, the prefix the new process drops goes at its End-of-RIB.
fn a_killed_speaker_keeps_its_routes(family: Family) {
    let lab = Lab::up(LabOptions::default()).expect("the lab comes up");
    let dir = tempfile::tempdir().expect("a directory");
    let (neighbour, kept, dropped) = family.fixture();
    let mut speaker = start(&lab, dir.path(), &config(family, true, &[kept, dropped]));
    wait_established(&lab, neighbour, 20 * SECOND).expect("Established");
    for prefix in [kept, dropped] {
        wait_for(10 * SECOND, POLL, || frr_route(&lab, prefix)).expect("FRR has the prefix");
    }
    let info = &frr_neighbour(&lab, neighbour)["gracefulRestartInfo"];
    assert_eq!(
        info["remoteGrMode"], "Restart",
        "FRR sees our capability: {info}"
    );
    assert_eq!(
        info["endOfRibRecv"].as_object().map(|eor| eor.len()),
        Some(2)
    );
    println!(
        "{family:?}: first session: {}",
        frr_restart_info(&lab, neighbour)
    );

    let mut restarted = None;
    let mut dropped_gone = None;
    let samples = Samples::during(&lab, kept, || {
        kill_hard(&mut speaker);
        // FRR notices the closed connection and marks the routes stale.
        wait_for(5 * SECOND, POLL, || {
            (seen(&lab, kept) == Seen::Stale).then_some(())
        })
        .expect("FRR marks the route stale");
        let started = Instant::now();
        let yaml = config(family, true, &[kept]);
        restarted = Some(start(&lab, dir.path(), &yaml));
        wait_established(&lab, neighbour, 20 * SECOND).expect("Established again");
        let established = started.elapsed();
        let gone = wait_for(10 * SECOND, POLL, || {
            frr_route(&lab, dropped)
                .is_none()
                .then(|| started.elapsed())
        })
        .expect("the prefix the new process does not announce goes at its End-of-RIB");
        dropped_gone = Some((established, gone));
        wait_for(5 * SECOND, POLL, || {
            (seen(&lab, kept) == Seen::Fresh).then_some(())
        })
        .expect("the route is fresh again");
        // A little more of the fresh route, to see it stays.
        thread::sleep(SECOND / 2);
    });
    let speaker = restarted.expect("the speaker was started again");
    let (established, gone) = dropped_gone.expect("measured");
    let stale = samples.span(Seen::Stale).expect("seen stale");
    println!(
        "{family:?}: {} samples ({:?} apart, at most {:?}): absent {}, stale for {stale:?}; \
         new process seen Established after {established:?}, dropped prefix seen gone after \
         {gone:?}; {}",
        samples.0.len(),
        samples.resolution().0,
        samples.resolution().1,
        samples.count(Seen::Absent),
        frr_restart_info(&lab, neighbour),
    );
    assert_eq!(
        samples.count(Seen::Absent),
        0,
        "FRR lost the route while the speaker restarted:\n{}",
        speaker.log()
    );
    assert!(
        stale < 120 * SECOND,
        "the route stayed stale for the whole restart time"
    );
    let restart_bit = &frr_neighbour(&lab, neighbour)["gracefulRestartInfo"]["rBit"];
    assert_eq!(
        restart_bit,
        &Value::Bool(true),
        "the new process said it restarted"
    );
}

#[test]
fn a_killed_speaker_with_graceful_restart_keeps_its_ipv4_route_at_frr_throughout() {
    a_killed_speaker_keeps_its_routes(Family::Ipv4);
}

#[test]
fn a_killed_speaker_with_graceful_restart_keeps_its_ipv6_route_at_frr_throughout() {
    a_killed_speaker_keeps_its_routes(Family::Ipv6);
}

#[test]
fn without_graceful_restart_a_killed_speakers_route_disappears_until_it_is_back() {
    let lab = Lab::up(LabOptions::default()).expect("the lab comes up");
    let dir = tempfile::tempdir().expect("a directory");
    let (neighbour, kept, _) = Family::Ipv4.fixture();
    let yaml = config(Family::Ipv4, false, &[kept]);
    let mut speaker = start(&lab, dir.path(), &yaml);
    wait_established(&lab, neighbour, 20 * SECOND).expect("Established");
    wait_for(10 * SECOND, POLL, || frr_route(&lab, kept)).expect("FRR has the prefix");
    let info = &frr_neighbour(&lab, neighbour)["gracefulRestartInfo"];
    assert_eq!(
        info["remoteGrMode"], "Disable",
        "we do not offer it: {info}"
    );

    let mut restarted = None;
    let samples = Samples::during(&lab, kept, || {
        kill_hard(&mut speaker);
        wait_for(5 * SECOND, POLL, || {
            frr_route(&lab, kept).is_none().then_some(())
        })
        .expect("FRR drops the route");
        restarted = Some(start(&lab, dir.path(), &yaml));
        wait_for(20 * SECOND, POLL, || frr_route(&lab, kept)).expect("the route is back");
    });
    let gap = samples.span(Seen::Absent).expect("seen absent");
    println!(
        "without graceful restart: {} samples, route absent for {gap:?}, never stale: {}",
        samples.0.len(),
        samples.count(Seen::Stale) == 0
    );
    assert_eq!(samples.count(Seen::Stale), 0);
    drop(restarted);
}

#[test]
fn a_planned_exit_withdraws_even_with_graceful_restart_on() {
    let lab = Lab::up(LabOptions::default()).expect("the lab comes up");
    let dir = tempfile::tempdir().expect("a directory");
    let (neighbour, kept, _) = Family::Ipv4.fixture();
    let mut speaker = start(&lab, dir.path(), &config(Family::Ipv4, true, &[kept]));
    wait_established(&lab, neighbour, 20 * SECOND).expect("Established");
    wait_for(10 * SECOND, POLL, || frr_route(&lab, kept)).expect("FRR has the prefix");
    let end_of_ribs = || {
        let info = frr_neighbour(&lab, neighbour)["gracefulRestartInfo"].clone();
        (info["endOfRibRecv"].as_object().map(|eor| eor.len()) == Some(2)).then_some(())
    };
    wait_for(5 * SECOND, POLL, end_of_ribs).expect("the initial table is complete");
    let updates = || frr_neighbour(&lab, neighbour)["messageStats"]["updatesRecv"].as_u64();
    let updates_before = updates();

    let start = Instant::now();
    let samples = Samples::during(&lab, kept, || {
        speaker.terminate();
        wait_for(5 * SECOND, POLL, || (!speaker.is_running()).then_some(()))
            .expect("the speaker exits");
        // Long enough for a stale route to show.
        thread::sleep(SECOND);
    });
    let gone = samples
        .0
        .iter()
        .find(|(_, seen)| *seen == Seen::Absent)
        .map(|(at, _)| *at);
    println!(
        "planned exit with graceful restart: route gone after {gone:?}, stale samples {}, \
         exit took {:?}",
        samples.count(Seen::Stale),
        start.elapsed()
    );
    assert!(gone.is_some(), "FRR kept the route after a planned exit");
    // The withdrawal itself reached FRR before the Cease.
    assert_eq!(updates(), updates_before.map(|count| count + 1));
    let last_reset = &frr_neighbour(&lab, neighbour)["lastResetDueTo"];
    println!("planned exit: FRR's last reset: {last_reset}");
    assert_eq!(
        samples.count(Seen::Stale),
        0,
        "FRR took the exit for a restart"
    );
    assert_eq!(samples.0.last().map(|(_, seen)| *seen), Some(Seen::Absent));
}

#[test]
fn with_graceful_restart_and_bfd_a_cut_link_still_drops_the_route_at_detection() {
    let lab = Lab::up(LabOptions::default()).expect("the lab comes up");
    let dir = tempfile::tempdir().expect("a directory");
    let (neighbour, kept, _) = Family::Ipv4.fixture();
    let yaml = config_with_bfd(Family::Ipv4, true, true, &[kept]);
    let _speaker = start(&lab, dir.path(), &yaml);
    wait_established(&lab, neighbour, 20 * SECOND).expect("Established");
    wait_for(10 * SECOND, POLL, || frr_route(&lab, kept)).expect("FRR has the prefix");
    wait_for(10 * SECOND, POLL, || {
        (frr_bfd_status(&lab, neighbour) == "up").then_some(())
    })
    .expect("BFD is up at FRR");

    let mut cut_at = Duration::ZERO;
    let samples = Samples::during(&lab, kept, || {
        let start = Instant::now();
        lab.link(Host::Node(1), false).expect("the cable is pulled");
        cut_at = start.elapsed();
        wait_for(5 * SECOND, POLL, || {
            frr_route(&lab, kept).is_none().then_some(())
        })
        .expect("FRR drops the route");
        // Long enough to see it does not come back as stale.
        thread::sleep(SECOND);
    });
    let gone = samples
        .0
        .iter()
        .find(|(_, seen)| *seen == Seen::Absent)
        .map(|(at, _)| *at - cut_at)
        .expect("seen absent");
    println!(
        "graceful restart with BFD (300 ms x 3): cut link, route gone after {gone:?}, \
         stale samples {}",
        samples.count(Seen::Stale)
    );
    assert!(gone < 3 * SECOND, "the route outlived BFD's detection");
    assert_eq!(samples.0.last().map(|(_, seen)| *seen), Some(Seen::Absent));
}
