//! The protocol alone, as `lab.rs` measures it against BIRD: one lab node announces
//! [`PREFIXES`] IPv4 /32s to the lab's FRR over eBGP, by our speaker (a configuration file),
//! BIRD 2 (static routes) and GoBGP's `gobgpd` (the library kube-vip and Cilium embed; routes
//! injected from an MRT dump before its neighbour is added), one after the other on a lab of
//! their own. Each has every prefix before its session comes up, so the figure is FRR's
//! Established -> FRR holding them all, then the daemon's memory.

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::time::{Duration, Instant};

use metallb_testenv::lab::{Daemon, Host, Lab, LabOptions};

use crate::common::cluster::memory_kib;
use crate::common::{Speaker, frr_state, prefix, spawn_bird, wait_for};

pub const PREFIXES: usize = 10_000;
/// Every daemon speaks from this node (eBGP, AS 64500), one at a time.
const NODE: Host = Host::Node(1);
const ROUTER: Ipv4Addr = Ipv4Addr::new(192, 168, 250, 1);

/// One daemon's figures.
pub struct Figures {
    /// FRR's Established -> FRR holding every prefix.
    pub all: Duration,
    /// Resident memory then, KiB.
    pub rss_kib: u64,
}

/// Ours, BIRD, GoBGP.
pub type Protocol = [Figures; 3];

/// Prefixes FRR accepted from the node.
fn received(lab: &Lab) -> u64 {
    let summary = lab
        .vtysh_json("show bgp ipv4 unicast summary json")
        .unwrap_or_default();
    summary["peers"][Lab::address(NODE).0.to_string()]["pfxRcd"]
        .as_u64()
        .unwrap_or(0)
}

/// Waits for the session, then for every prefix; then the session goes when `pid` stops.
fn converge(lab: &Lab, pid: u32, what: &str) -> Figures {
    let node = IpAddr::V4(Lab::address(NODE).0);
    // Each vtysh poll takes 20-30 ms: that is the resolution of these figures.
    let established = wait_for(Duration::from_secs(60), Duration::from_millis(10), || {
        (frr_state(lab, node) == "Established").then(Instant::now)
    })
    .unwrap_or_else(|| panic!("{what}: the session never came up"));
    let all = wait_for(Duration::from_secs(120), Duration::from_millis(10), || {
        (received(lab) >= PREFIXES as u64).then(Instant::now)
    })
    .unwrap_or_else(|| panic!("{what}: FRR has {} prefixes", received(lab)));
    Figures {
        all: all - established,
        rss_kib: memory_kib(pid).0,
    }
}

/// Waits until FRR has no session with the node, for the next daemon.
fn wait_down(lab: &Lab) {
    let node = IpAddr::V4(Lab::address(NODE).0);
    wait_for(Duration::from_secs(30), Duration::from_millis(50), || {
        (frr_state(lab, node) != "Established" && received(lab) == 0).then_some(())
    })
    .expect("the previous session goes");
}

fn ours(lab: &Lab, dir: &Path) -> Figures {
    let source = Lab::address(NODE).0;
    let prefixes: Vec<String> = (0..PREFIXES).map(|i| format!("{}/32", prefix(i))).collect();
    let config = format!(
        "peers:\n  - name: router\n    myASN: 64500\n    peerASN: 64512\n    peerAddress: {ROUTER}\n    \
         sourceAddress: {source}\n    holdTime: 9s\n    connectTime: 1s\n\
         bgpAdvertisements:\n  - prefixes: [{}]\n",
        prefixes.join(", ")
    );
    let speaker = Speaker::start(lab, NODE, dir, &config, &[]);
    let figures = converge(lab, speaker.pid().as_raw() as u32, "our speaker");
    speaker.terminate();
    figures
}

fn bird(lab: &Lab, dir: &Path) -> Figures {
    let daemon = spawn_bird(lab, NODE, dir, (0..PREFIXES).map(prefix));
    converge(lab, daemon.pid(), "BIRD")
}

/// An MRT TABLE_DUMP_V2 file (RFC 6396) with the prefixes, each from one peer with ORIGIN IGP,
/// an empty AS_PATH and `next_hop`, as `gobgp mrt inject` reads it. The prefixes come twice:
/// GoBGP 3.10's `gobgp` closes its stream before `gobgpd` has taken the last records in (here
/// 5-10 % of them, however many), so only the repeated ones go missing.
fn mrt(next_hop: Ipv4Addr) -> Vec<u8> {
    let record = |subtype: u16, body: &[u8]| {
        let mut out = Vec::with_capacity(12 + body.len());
        out.extend(0u32.to_be_bytes()); // timestamp
        out.extend(13u16.to_be_bytes()); // TABLE_DUMP_V2
        out.extend(subtype.to_be_bytes());
        out.extend((body.len() as u32).to_be_bytes());
        out.extend(body);
        out
    };
    let id = next_hop.octets();
    // PEER_INDEX_TABLE: collector id, no view name, one IPv4 peer with a 4-byte AS.
    let mut peers = Vec::new();
    peers.extend(id);
    peers.extend(0u16.to_be_bytes());
    peers.extend(1u16.to_be_bytes());
    peers.push(0b10);
    peers.extend(id);
    peers.extend(id);
    peers.extend(64500u32.to_be_bytes());
    let mut out = record(1, &peers);
    let attributes: Vec<u8> = [0x40, 1, 1, 0, 0x40, 2, 0, 0x40, 3, 4]
        .into_iter()
        .chain(id)
        .collect();
    for i in (0..PREFIXES).chain(0..PREFIXES) {
        // RIB_IPV4_UNICAST: sequence, the /32, one entry from peer 0.
        let mut rib = Vec::new();
        rib.extend((i as u32).to_be_bytes());
        rib.push(32);
        rib.extend(prefix(i).octets());
        rib.extend(1u16.to_be_bytes());
        rib.extend(0u16.to_be_bytes());
        rib.extend(0u32.to_be_bytes());
        rib.extend((attributes.len() as u16).to_be_bytes());
        rib.extend(&attributes);
        out.extend(record(2, &rib));
    }
    out
}

/// `gobgp args...` in the node, against its `gobgpd`.
fn gobgp(lab: &Lab, args: &[&str]) -> String {
    let output = lab.command(NODE, "gobgp").args(args).output().unwrap();
    assert!(
        output.status.success(),
        "gobgp {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn gobgpd(lab: &Lab, dir: &Path) -> Figures {
    let source = Lab::address(NODE).0;
    let conf = dir.join("gobgpd.toml");
    // No listener: the daemon connects out once its neighbour is added.
    let config =
        format!("[global.config]\n  as = 64500\n  router-id = \"{source}\"\n  port = -1\n");
    std::fs::write(&conf, config).unwrap();
    let daemon: Daemon = lab
        .spawn(
            NODE,
            "gobgpd",
            &["-f", conf.to_str().unwrap(), "-t", "toml", "-l", "warn"],
        )
        .unwrap();
    let ready = wait_for(Duration::from_secs(20), Duration::from_millis(100), || {
        let output = lab.command(NODE, "gobgp").arg("global").output().ok()?;
        output.status.success().then_some(())
    });
    assert!(ready.is_some(), "gobgpd never answered its API");
    let dump = dir.join("prefixes.mrt");
    std::fs::write(&dump, mrt(source)).unwrap();
    let dump = dump.to_str().unwrap();
    let want = format!("Destination: {PREFIXES},");
    let injected = wait_for(Duration::from_secs(60), Duration::from_millis(200), || {
        gobgp(lab, &["mrt", "inject", "global", dump]);
        let summary = gobgp(lab, &["global", "rib", "summary", "-a", "ipv4"]);
        summary.contains(&want).then_some(())
    });
    assert!(injected.is_some(), "gobgpd's RIB never held every prefix");
    let router = ROUTER.to_string();
    gobgp(lab, &["neighbor", "add", &router, "as", "64512"]);
    converge(lab, daemon.pid(), "gobgpd")
}

/// Runs the three on a fresh lab and removes it.
pub fn run() -> Protocol {
    let lab = Lab::up(LabOptions::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ours = ours(&lab, dir.path());
    wait_down(&lab);
    let bird = bird(&lab, dir.path());
    wait_down(&lab);
    let gobgp = gobgpd(&lab, dir.path());
    [ours, bird, gobgp]
}
