//! Many cores wired together with virtual time (see `sim`): crashes, packet loss, a node cut
//! from the API only, a node cut from its peers only, heartbeats broken for everybody, the
//! whole control plane down and back, planned exits and restarts, at 10, 100 and 1,000 nodes.

mod sim;

use std::{collections::BTreeSet, time::Duration};

use metallb_liveness::{Basis, Config, Event, OwnState};
use sim::{Sim, quantile};

const SECOND: Duration = Duration::from_secs(1);

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn all_names(sim: &Sim) -> BTreeSet<String> {
    (0..sim.nodes.len())
        .map(|i| sim.name(i).to_owned())
        .collect()
}

/// Every running node counts exactly `expected`.
fn assert_candidates(sim: &Sim, nodes: &[usize], expected: &BTreeSet<String>) {
    for &i in nodes {
        let view = sim.view(i);
        assert_eq!(&view.candidates, expected, "candidates of {}", sim.name(i));
    }
}

fn deaths(sim: &Sim, since: Duration) -> usize {
    sim.events_since(since, |e| matches!(e, Event::Dead { .. }))
        .len()
}

/// Crashes one node in a settled cluster of `n` and checks that every other node declares it
/// dead within a second, and no other node dies.
fn crash_is_detected_by_all_within_a_second(n: usize, seed: u64) {
    let mut sim = Sim::new(n, Config::default(), seed);
    sim.run_for(2 * SECOND);
    assert_eq!(deaths(&sim, Duration::ZERO), 0, "no death before the crash");
    let victim = n / 3;
    let crashed = sim.elapsed();
    let detected = sim.crash_and_detect(victim, 2 * SECOND);
    let mut times: Vec<Duration> = detected
        .iter()
        .map(|d| d.expect("every node declares the crashed one dead"))
        .collect();
    times.sort_unstable();
    let worst = *times.last().expect("others");
    assert!(worst < SECOND, "slowest detection {worst:?} at {n} nodes");
    assert_eq!(
        deaths(&sim, crashed),
        n - 1,
        "exactly one death, seen once by each of the others"
    );
    let mut alive = all_names(&sim);
    alive.remove(sim.name(victim));
    assert_candidates(&sim, &sim.running(&[victim]), &alive);
    eprintln!(
        "{n} nodes: detection p50 {:?}, max {worst:?}",
        quantile(&times, 0.5)
    );
}

#[test]
fn a_crash_among_10_nodes_is_declared_by_all_within_a_second() {
    crash_is_detected_by_all_within_a_second(10, 1);
}

#[test]
fn a_crash_among_100_nodes_is_declared_by_all_within_a_second() {
    crash_is_detected_by_all_within_a_second(100, 2);
}

#[test]
fn a_crash_among_1000_nodes_is_declared_by_all_within_a_second() {
    crash_is_detected_by_all_within_a_second(1000, 3);
}

#[test]
fn a_settled_cluster_counts_everybody_and_sends_log2_heartbeats_per_interval() {
    let mut sim = Sim::new(100, Config::default(), 4);
    sim.run_for(SECOND);
    sim.reset_counters();
    sim.run_for(5 * SECOND);
    let everybody = all_names(&sim);
    assert_candidates(&sim, &sim.running(&[]), &everybody);
    for node in &sim.nodes {
        // ceil(log2 100) = 7 monitors, 10 rounds per second.
        let per_second = node.sent_packets as f64 / 5.0;
        assert!(
            (65.0..=75.0).contains(&per_second),
            "{}: {per_second} packets/s",
            node.name
        );
    }
    assert_eq!(sim.log.len(), 0, "nothing happens: {:?}", sim.log.first());
}

#[test]
fn five_percent_loss_causes_no_false_death_with_the_defaults() {
    let mut sim = Sim::new(100, Config::default(), 5);
    sim.loss = 0.05;
    sim.run_for(60 * SECOND);
    assert_eq!(deaths(&sim, Duration::ZERO), 0);
    let everybody = all_names(&sim);
    assert_candidates(&sim, &sim.running(&[]), &everybody);
    // And a real crash is still seen within a second.
    let times = sim.crash_and_detect(7, 2 * SECOND);
    assert!(
        times.iter().all(|t| t.is_some_and(|t| t < SECOND)),
        "{times:?}"
    );
}

#[test]
fn twenty_percent_loss_still_converges_and_detects_a_crash() {
    let mut sim = Sim::new(100, Config::default(), 6);
    sim.loss = 0.20;
    sim.run_for(30 * SECOND);
    let false_deaths = deaths(&sim, Duration::ZERO);
    let suspicions = sim
        .events_since(Duration::ZERO, |e| matches!(e, Event::Suspected { .. }))
        .len();
    eprintln!(
        "20% loss, 100 nodes, 30 s: {suspicions} suspicion events, {false_deaths} death events"
    );
    // Whatever was suspected refuted in time or came back: everybody counts everybody.
    sim.run_for(SECOND);
    let everybody = all_names(&sim);
    let settled = sim
        .running(&[])
        .into_iter()
        .filter(|&i| sim.view(i).candidates == everybody)
        .count();
    assert!(settled >= 95, "only {settled} nodes count everybody");
    let times = sim.crash_and_detect(11, 3 * SECOND);
    let detected: Vec<Duration> = times.iter().flatten().copied().collect();
    assert_eq!(detected.len(), 99, "every node declares the crash");
    assert!(detected.iter().all(|t| *t < 2 * SECOND), "{detected:?}");
}

#[test]
fn a_node_cut_from_the_api_fences_within_the_lease_and_the_others_stop_counting_it() {
    let config = Config::default();
    let mut sim = Sim::new(10, config, 7);
    sim.run_for(3 * SECOND);
    let victim = 4;
    let cut = sim.elapsed();
    sim.set_api(victim, false);
    let mut fenced_at = None;
    let mut dropped_by_all_at = None;
    let others = sim.running(&[victim]);
    let name = sim.name(victim).to_owned();
    while sim.elapsed() < cut + config.lease_duration + 2 * SECOND {
        sim.run_for(ms(10));
        let view = sim.view(victim);
        if fenced_at.is_none() && matches!(view.own, OwnState::Fenced { .. }) {
            assert!(
                !view.candidates.contains(&name),
                "a fenced node does not count itself"
            );
            fenced_at = Some(sim.elapsed() - cut);
        }
        if dropped_by_all_at.is_none()
            && others
                .iter()
                .all(|&i| !sim.view(i).candidates.contains(&name))
        {
            dropped_by_all_at = Some(sim.elapsed() - cut);
        }
        // Never two owners: while the others no longer count it, it does not count itself.
        if dropped_by_all_at.is_some() {
            assert!(!sim.view(victim).candidates.contains(&name));
        }
    }
    let fenced_at = fenced_at.expect("fenced");
    let dropped = dropped_by_all_at.expect("dropped by all");
    assert!(
        fenced_at <= config.lease_duration + SECOND,
        "fenced after {fenced_at:?}"
    );
    assert!(
        dropped >= fenced_at,
        "others stop counting it only once it is silent"
    );
    assert!(
        dropped <= fenced_at + ms(50),
        "others follow within 50 ms: {dropped:?}"
    );
    eprintln!("API cut: fenced after {fenced_at:?}, dropped by all after {dropped:?}");
    // Nobody else moved: no death, nobody else fenced or isolated.
    assert_eq!(deaths(&sim, Duration::ZERO), 0);
    let mut rest = all_names(&sim);
    rest.remove(&name);
    assert_candidates(&sim, &others, &rest);

    // Access back: counted again within one renewal.
    let back = sim.elapsed();
    sim.set_api(victim, true);
    let limit = config.renewal_interval() + config.interval + ms(20);
    let everybody = all_names(&sim);
    let mut rejoined = None;
    while sim.elapsed() < back + limit + SECOND {
        sim.run_for(ms(10));
        if rejoined.is_none()
            && sim
                .running(&[])
                .iter()
                .all(|&i| sim.view(i).candidates == everybody)
        {
            rejoined = Some(sim.elapsed() - back);
        }
    }
    let rejoined = rejoined.expect("rejoined");
    assert!(rejoined <= limit, "rejoined after {rejoined:?}");
    eprintln!("API back: counted by all after {rejoined:?}");
}

#[test]
fn a_node_cut_from_its_peers_only_stands_down_before_the_others_take_over() {
    let mut sim = Sim::new(10, Config::default(), 8);
    sim.run_for(3 * SECOND);
    let victim = 2;
    let name = sim.name(victim).to_owned();
    let cut = sim.elapsed();
    sim.nodes[victim].cut = true;
    let others = sim.running(&[victim]);
    let mut stood_down = None;
    let mut dropped = None;
    while sim.elapsed() < cut + 5 * SECOND {
        sim.run_for(ms(5));
        let self_counts = sim.view(victim).candidates.contains(&name);
        let others_count = others
            .iter()
            .filter(|&&i| sim.view(i).candidates.contains(&name))
            .count();
        assert!(
            !self_counts || others_count > 0,
            "two owners at {:?}: the victim counts itself and nobody else counts it",
            sim.elapsed() - cut
        );
        if stood_down.is_none() && !self_counts {
            stood_down = Some(sim.elapsed() - cut);
        }
        if dropped.is_none() && others_count == 0 {
            dropped = Some(sim.elapsed() - cut);
        }
    }
    let view = sim.view(victim);
    assert!(
        matches!(view.own, OwnState::Isolated { .. }),
        "{:?}",
        view.own
    );
    let (stood_down, dropped) = (stood_down.expect("stood down"), dropped.expect("dropped"));
    assert!(
        dropped < SECOND,
        "the others take over within a second: {dropped:?}"
    );
    eprintln!(
        "peers cut: victim stood down after {stood_down:?}, dropped by all after {dropped:?}"
    );
    let mut rest = all_names(&sim);
    rest.remove(&name);
    assert_candidates(&sim, &others, &rest);

    // Reconnected: it refutes its death and everybody counts it again.
    sim.nodes[victim].cut = false;
    sim.run_for(SECOND);
    assert_candidates(&sim, &sim.running(&[]), &all_names(&sim));
}

#[test]
fn when_heartbeats_are_broken_for_everybody_the_lease_view_decides() {
    let config = Config::default();
    let mut sim = Sim::new(10, config, 9);
    sim.run_for(3 * SECOND);
    sim.all_deaf = true;
    // One renewal round after everybody stopped hearing: every Lease says "hears nobody".
    sim.run_for(config.renewal_interval() + 2 * config.worst_detection());
    let everybody = all_names(&sim);
    for i in sim.running(&[]) {
        let view = sim.view(i);
        assert_eq!(view.basis, Basis::Leases, "{}", sim.name(i));
        assert_eq!(view.own, OwnState::Normal);
        assert_eq!(view.candidates, everybody);
    }
    // A crash is then noticed when its Lease expires, as without heartbeats.
    sim.crash(5);
    sim.run_for(config.lease_duration + SECOND);
    let mut rest = everybody.clone();
    rest.remove(sim.name(5));
    assert_candidates(&sim, &sim.running(&[]), &rest);
    // Heartbeats back: the heartbeat view again.
    sim.all_deaf = false;
    sim.run_for(2 * SECOND);
    for i in sim.running(&[]) {
        assert_eq!(sim.view(i).basis, Basis::Heartbeats);
    }
    assert_candidates(&sim, &sim.running(&[]), &rest);
}

#[test]
fn the_whole_control_plane_down_for_minutes_moves_nothing_and_access_back_changes_nothing() {
    let config = Config::default();
    let mut sim = Sim::new(10, config, 10);
    sim.run_for(3 * SECOND);
    let down = sim.elapsed();
    for i in 0..10 {
        sim.set_api(i, false);
    }
    let everybody = all_names(&sim);
    for _ in 0..(5 * 60) {
        sim.run_for(SECOND);
        for i in sim.running(&[]) {
            let view = sim.view(i);
            assert_eq!(
                view.own,
                OwnState::Normal,
                "{} at {:?}",
                sim.name(i),
                sim.elapsed()
            );
            assert_eq!(view.candidates, everybody);
        }
    }
    for i in 0..10 {
        sim.set_api(i, true);
    }
    // Every node counts everybody at every moment of the return: the first to renew again
    // sees the others' Leases expired, which proves nothing until they had time to renew.
    let back = sim.elapsed();
    while sim.elapsed() < back + config.renewal_interval() + SECOND {
        sim.run_for(ms(10));
        assert_candidates(&sim, &sim.running(&[]), &everybody);
    }
    let moved = sim.events_since(down, |e| {
        matches!(
            e,
            Event::OwnState { .. } | Event::Dead { .. } | Event::StandDown { .. }
        )
    });
    assert!(moved.is_empty(), "something moved: {moved:?}");
}

#[test]
fn a_crash_during_a_control_plane_outage_still_moves_its_ips() {
    let mut sim = Sim::new(10, Config::default(), 11);
    sim.run_for(3 * SECOND);
    for i in 0..10 {
        sim.set_api(i, false);
    }
    sim.run_for(20 * SECOND);
    let times = sim.crash_and_detect(3, 2 * SECOND);
    assert!(
        times.iter().all(|t| t.is_some_and(|t| t < SECOND)),
        "{times:?}"
    );
    let mut rest = all_names(&sim);
    rest.remove(sim.name(3));
    assert_candidates(&sim, &sim.running(&[]), &rest);
}

#[test]
fn a_planned_exit_is_seen_by_all_within_50_ms() {
    let mut sim = Sim::new(100, Config::default(), 12);
    sim.run_for(2 * SECOND);
    let leaving = 42;
    let name = sim.name(leaving).to_owned();
    sim.leave(leaving);
    sim.run_for(ms(50));
    assert!(!sim.view(leaving).candidates.contains(&name));
    for i in sim.running(&[leaving]) {
        assert!(
            !sim.view(i).candidates.contains(&name),
            "{} still counts it",
            sim.name(i)
        );
    }
    assert_eq!(deaths(&sim, Duration::ZERO), 0, "leaving is no death");
}

#[test]
fn a_restarted_speaker_is_counted_again_at_once() {
    let mut sim = Sim::new(10, Config::default(), 13);
    sim.run_for(2 * SECOND);
    sim.crash(6);
    sim.run_for(2 * SECOND);
    sim.boot(6);
    sim.run_for(ms(300));
    assert_candidates(&sim, &sim.running(&[]), &all_names(&sim));
}

#[test]
fn in_a_two_node_cluster_the_survivor_of_a_crash_takes_over_within_a_second() {
    // The survivor hears nobody, but the dead node's Lease only says it heard one peer (the
    // survivor): no evidence of isolation, so the heartbeats decide.
    let mut sim = Sim::new(2, Config::default(), 14);
    sim.run_for(3 * SECOND);
    let times = sim.crash_and_detect(1, 2 * SECOND);
    assert!(times[0].is_some_and(|t| t < SECOND), "{times:?}");
    let view = sim.view(0);
    assert_eq!(view.own, OwnState::Normal);
    assert_eq!(view.candidates, BTreeSet::from([sim.name(0).to_owned()]));
}
