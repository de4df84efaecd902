//! The report reproduced: a rolling update of the control-plane nodes takes node1 out while
//! the client probes the VIP (ARP) and FRR's paths for it, every 10 ms.
//!
//! The steps, as a cluster-lifecycle tool runs them: `kubectl drain` (cordon, evict), then
//! node1's etcd member is removed (its API server, the one node1's speaker talks to, serves
//! stale reads and fails writes from then on), then its Node is deleted, then the machine goes
//! away (its link goes down, its speaker dies).

use std::time::Duration;

use crate::probe::{
    Answer, Probes, RibSample, answer_changes, first_answer_of, last_answer_of, longest_where,
    ms_where, rib_first, rib_ms_where,
};
use crate::scene::{Features, LEASE, Scene};

/// When each step starts, in seconds since the probes started (a step that runs late moves
/// the later ones by as much).
const DRAIN_AT: f64 = 1.0;
const REMOVE_AT: f64 = 5.0;
/// The removed member's speaker has a Lease + 2 s to be noticed (or to fence itself).
const DELETE_AT: f64 = REMOVE_AT + LEASE.as_secs() as f64 + 2.0;
const POWER_OFF_AT: f64 = DELETE_AT + 5.0;
const END_AT: f64 = POWER_OFF_AT + 4.0;

/// The leaving node (index 0, Node `node1`), the VIP's owner at the start.
const LEAVING: usize = 0;

/// What one rolling update showed, in the order of [`ROWS`].
pub struct Outcome {
    pub values: Vec<String>,
    /// Steps as (what, seconds since the drain).
    pub timeline: Vec<(&'static str, f64)>,
    /// Who answered ARP when, from the drain on.
    pub changes: String,
}

/// The rows of the rolling-update table.
pub const ROWS: [&str; 9] = [
    "L2: ms without an answer, drain -> end (total / longest)",
    "L2: ms with two MACs answering (total / longest)",
    "L2: leaving node's last answer, s after the drain",
    "L2: leaving node answering after its Node was deleted, ms",
    "L2: answering at the end",
    "BGP: ms with no path at FRR",
    "BGP: leaving node's path gone, s after the drain",
    "BGP: ms with a path via the powered-off node",
    "BGP: paths at the end",
];

/// Runs the rolling update on a fresh scene with `features`.
pub fn run(features: Features) -> Outcome {
    let mut scene = Scene::up(features);
    scene.start_all(LEASE);
    let leaving = scene.cluster.names[LEAVING].clone();
    let probes = Probes::start(&scene.cluster, scene.vip, END_AT + 0.5);
    let wait_until = |at: f64| {
        let left = at - probes.now();
        if left > 0.0 {
            std::thread::sleep(Duration::from_secs_f64(left));
        }
        probes.now()
    };

    let drained = wait_until(DRAIN_AT);
    // Through a healthy member, as the tool driving the update would. MetalLB's speaker Pods
    // stand for a DaemonSet's, which `--ignore-daemonsets` leaves; they have no DaemonSet
    // here, so the selector leaves them (ours run no Pods).
    let drain = [
        "drain",
        leaving.as_str(),
        "--ignore-daemonsets",
        "--delete-emptydir-data",
        "--force",
        "--timeout=30s",
        "--pod-selector=component!=speaker",
    ];
    scene.ha.kubectl(1, &drain).unwrap();
    let removed = wait_until(REMOVE_AT);
    scene.ha.remove_member(LEAVING).unwrap();
    let deleted = wait_until(DELETE_AT);
    let delete = ["delete", "node", leaving.as_str(), "--wait=false"];
    scene.ha.kubectl(1, &delete).unwrap();
    wait_until(POWER_OFF_AT);
    scene
        .cluster
        .lab
        .link(crate::common::cluster::NODES[LEAVING], false)
        .unwrap();
    scene.kill(LEAVING);
    // Counted from when the machine is gone: requests sent while `ip link` ran may still be
    // answered.
    let off = probes.now();
    let end = wait_until(END_AT);
    let (answers, rib) = probes.finish(&scene.cluster);

    let values = measure(&answers, &rib, &leaving, [drained, deleted, off, end]);
    Outcome {
        values,
        changes: answer_changes(&answers, drained),
        timeline: vec![
            ("etcd member removed", removed - drained),
            ("Node deleted", deleted - drained),
            ("powered off", off - drained),
            ("end", end - drained),
        ],
    }
}

/// The table's values from the two series; `at` = drain, Node deleted, power-off, end.
fn measure(answers: &[Answer], rib: &[RibSample], leaving: &str, at: [f64; 4]) -> Vec<String> {
    let [drained, deleted, off, end] = at;
    let two = |a: &Answer| a.nodes.len() > 1;
    let none = |a: &Answer| a.nodes.is_empty();
    let leaving_answers = |a: &Answer| a.nodes.iter().any(|n| n == leaving);
    let last_leaving = last_answer_of(answers, leaving)
        .map_or("never".to_owned(), |t| format!("{:.2}", t - drained));
    let final_answer = answers
        .iter()
        .rev()
        .find(|a| !a.nodes.is_empty())
        .map_or("nobody".to_owned(), |a| a.nodes.join(" + "));
    let final_answer = match first_answer_of(answers, leaving, off) {
        // The leaving node's link is down: an answer from it after that cannot happen.
        Some(_) => format!("{final_answer} (leaving node after power-off!)"),
        None => final_answer,
    };
    let via_leaving = |s: &RibSample| s.nodes.iter().any(|n| n == leaving);
    let path_gone = rib_first(rib, drained, |s| !via_leaving(s))
        .map_or("never".to_owned(), |t| format!("{:.2}", t - drained));
    let paths_at_end = rib.last().map_or("none".to_owned(), |s| {
        format!("{} ({})", s.nodes.len(), s.nodes.join(", "))
    });
    vec![
        format!(
            "{:.0} / {:.0}",
            ms_where(answers, drained, end, none),
            longest_where(answers, drained, end, none)
        ),
        format!(
            "{:.0} / {:.0}",
            ms_where(answers, drained, end, two),
            longest_where(answers, drained, end, two)
        ),
        last_leaving,
        format!("{:.0}", ms_where(answers, deleted, off, leaving_answers)),
        final_answer,
        format!(
            "{:.0}",
            rib_ms_where(rib, drained, end, |s| s.nodes.is_empty())
        ),
        path_gone,
        format!("{:.0}", rib_ms_where(rib, off, end, via_leaving)),
        paths_at_end,
    ]
}
