//! A VIP moving for one reason at a time, on the scene with every feature on, while the client
//! probes: node1's speaker stopped (SIGTERM), killed (SIGKILL), cut from its API server; and
//! FRR's paths across a speaker crash with and without BGP graceful restart.

use std::time::Duration;

use crate::common::cluster::lab_peers;
use crate::common::{wait_established, wait_for};
use crate::probe::{
    Probes, first_answer_of, last_answer_of, longest_where, ms_where, rib_ms_where,
};
use crate::scene::{LEASE, NAMESPACE, Scene};

/// node1: the VIP's owner while all three run.
const OWNER: usize = 0;
/// When the event happens, in seconds since the probes started.
const EVENT_AT: f64 = 1.0;

/// A measure: what, the figure, the target.
pub type Row = (String, String, String);

fn sleep_until(probes: &Probes, at: f64) -> f64 {
    let left = at - probes.now();
    if left > 0.0 {
        std::thread::sleep(Duration::from_secs_f64(left));
    }
    probes.now()
}

/// The next owner of the VIP once node1 is gone.
fn next_owner(scene: &Scene) -> String {
    let rest: Vec<&str> = scene.cluster.names[1..]
        .iter()
        .map(String::as_str)
        .collect();
    crate::common::cluster::winner_of(std::net::IpAddr::V4(scene.vip), &rest)
}

/// SIGTERM to node1's speaker: the longest time the client got no answer.
pub fn planned_handover(scene: &mut Scene) -> Row {
    let probes = Probes::start(&scene.cluster, scene.vip, 4.0);
    let at = sleep_until(&probes, EVENT_AT);
    scene.cluster.stop(OWNER);
    let (answers, _) = probes.finish(&scene.cluster);
    let gap = longest_where(&answers, at, f64::MAX, |a| a.nodes.is_empty());
    let next = next_owner(scene);
    let order = match (
        first_answer_of(&answers, &next, at),
        last_answer_of(&answers, &scene.cluster.names[OWNER]),
    ) {
        (Some(new), Some(old)) if new <= old => "new owner answered first",
        (Some(_), Some(_)) => "old owner fell silent first",
        _ => "no handover seen",
    };
    scene.start(OWNER);
    scene.wait_settled(&[0, 1, 2]);
    (
        "planned handover (SIGTERM): longest gap at the client".into(),
        format!("{gap:.0} ms ({order})"),
        "< 200 ms".into(),
    )
}

/// SIGKILL of node1's speaker: the time until the next owner answers.
pub fn unplanned_failover(scene: &mut Scene) -> Row {
    let probes = Probes::start(&scene.cluster, scene.vip, 4.0);
    let at = sleep_until(&probes, EVENT_AT);
    scene.cluster.kill(OWNER);
    let (answers, _) = probes.finish(&scene.cluster);
    let next = next_owner(scene);
    let figure = first_answer_of(&answers, &next, at).map_or("never (4 s)".to_owned(), |t| {
        format!(
            "{:.0} ms (no answer for {:.0} ms)",
            (t - at) * 1000.0,
            ms_where(&answers, at, t, |a| a.nodes.is_empty())
        )
    });
    scene.start(OWNER);
    scene.wait_settled(&[0, 1, 2]);
    (
        "unplanned failover (SIGKILL): next owner answers".into(),
        figure,
        "< 1500 ms".into(),
    )
}

/// node1 cut from its API server (connections open, silent): when it falls silent, how long
/// two MACs answered, when it answers again after the API returns.
pub fn api_cut(scene: &mut Scene) -> Vec<Row> {
    let seconds = EVENT_AT + LEASE.as_secs_f64() + 3.0;
    let probes = Probes::start(&scene.cluster, scene.vip, seconds);
    let at = sleep_until(&probes, EVENT_AT);
    scene.cluster.freeze(OWNER);
    let (answers, _) = probes.finish(&scene.cluster);
    let owner = &scene.cluster.names[OWNER];
    let fenced = last_answer_of(&answers, owner).map(|t| t - at);
    let two = longest_where(&answers, at, f64::MAX, |a| a.nodes.len() > 1);
    scene.cluster.thaw(OWNER);
    let thawed = std::time::Instant::now();
    scene.wait_settled(&[0, 1, 2]);
    let back = thawed.elapsed();
    let lease = LEASE.as_secs_f64();
    vec![
        (
            format!("fencing after an API cut ({lease:.0} s Lease): owner silent after"),
            fenced.map_or("never".into(), |t| format!("{t:.2} s")),
            format!("<= {:.0} s", lease + 1.0),
        ),
        (
            "API cut: longest window with two MACs answering".into(),
            format!("{two:.0} ms"),
            "0".into(),
        ),
        (
            "API back: owner answers again after".into(),
            format!("{:.2} s", back.as_secs_f64()),
            "one renewal".into(),
        ),
    ]
}

/// Node `index`'s speaker killed and started again 1 s later: how long FRR had no path from
/// that node, and how long its path was kept stale, with graceful restart as `graceful`.
pub fn crash_at_frr(scene: &mut Scene, index: usize, running: &[usize], graceful: bool) -> Row {
    let peers = lab_peers(NAMESPACE).replace(
        "  holdTime: 9s\n",
        &format!("  holdTime: 9s\n  enableGracefulRestart: {graceful}\n"),
    );
    // enableGracefulRestart cannot change on a BGPPeer: replace them.
    let delete = ["-n", NAMESPACE, "delete", "bgppeer", "ebgp", "ibgp"];
    scene.ha.kubectl(1, &delete).unwrap();
    scene
        .ha
        .kubectl_with_input(1, &["apply", "-f", "-"], &peers)
        .unwrap();
    let node = scene.cluster.names[index].clone();
    let (address, _) = metallb_testenv::lab::Lab::address(crate::common::cluster::NODES[index]);
    // A changed peer restarts the session; wait until it runs with the new capabilities.
    let capable = wait_for(Duration::from_secs(30), Duration::from_millis(200), || {
        let neighbour = scene.cluster.lab.bgp_neighbour(address.into()).ok()?;
        let mode = neighbour["gracefulRestartInfo"]["remoteGrMode"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        (neighbour["bgpState"] == "Established" && (mode == "Restart") == graceful).then_some(())
    });
    assert!(
        capable.is_some(),
        "{node}'s session never came up with graceful restart {graceful}\n{}",
        scene.cluster.logs()
    );
    scene.wait_settled(running);

    let probes = Probes::start(&scene.cluster, scene.vip, 8.0);
    let at = sleep_until(&probes, EVENT_AT);
    scene.cluster.kill(index);
    sleep_until(&probes, EVENT_AT + 1.0);
    scene.start(index);
    wait_established(&scene.cluster.lab, address.into(), Duration::from_secs(20));
    let (_, rib) = probes.finish(&scene.cluster);
    let from_node = |s: &crate::probe::RibSample| s.nodes.iter().any(|n| n == &node);
    let absent = rib_ms_where(&rib, at, f64::MAX, |s| !from_node(s));
    let stale = rib_ms_where(&rib, at, f64::MAX, |s| from_node(s) && s.stale);
    scene.wait_settled(running);
    let what = if graceful { "with" } else { "without" };
    (
        format!(
            "speaker crash, restarted after 1 s, {what} graceful restart: {node}'s path at FRR"
        ),
        format!("absent {absent:.0} ms, stale {stale:.0} ms"),
        if graceful { "absent 0" } else { "(reference)" }.into(),
    )
}
