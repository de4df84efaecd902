//! Drains end to end: three lab nodes run `metallb-speaker` against the real API server with
//! heartbeats and GRACEFUL_SHUTDOWN (1 s), the client probes the layer 2 VIP every 10 ms and
//! FRR is asked for the VIP's route as often as vtysh answers.
//!
//! - every drain trigger on the VIP's owner (the exclude label, `NetworkUnavailable`, the
//!   out-of-service taint, a Node held in deletion by a finalizer, the `metallb.io/drain`
//!   annotation, cordon and a taint key when configured, `Ready=False` beyond the grace
//!   period) hands the VIP over with the new owner answering before the old one falls silent
//!   (no gap over 200 ms at the client), sends the owner's route with GRACEFUL_SHUTDOWN and
//!   then withdraws it while its BGP session stays Established and its BFD session up, and
//!   the Service's statuses follow (ServiceL2Status on the new owner, no ServiceBGPStatus on
//!   the old); clearing it brings both back;
//! - a Node that turns `Ready=False` while its speaker is gone loses the VIP within 2 s of the
//!   end of the grace period;
//! - a node draining with a Service nobody else may serve keeps announcing it, with a Warning
//!   event, the metrics and `show liveness` saying so;
//! - with every speaker cut from the API server nothing moves;
//! - SIGTERM reaches FRR as GRACEFUL_SHUTDOWN, then the withdrawal, then the Cease, without
//!   graceful restart.
//!
//! Node objects are cluster-wide, so each test names its own (`<tag>-node1..3`).

mod common;

use std::net::{IpAddr, Ipv4Addr};
use std::thread;
use std::time::{Duration, Instant};

use common::cluster::{ClusterLab, NODES, VIP, assign_ingress, lab_services};
use common::probe::{Probe, RouteSamples, first_from, last_from, longest_gap};
use common::{SPEAKER, frr_bfd_status, wait_for};
use k8s_openapi::jiff::Timestamp;
use metallb_testenv::lab::Lab;
use metallb_testenv::{ControlPlane, test_name};
use serde_json::Value;

const SECOND: Duration = Duration::from_secs(1);

/// The VIP's route at FRR.
const ROUTE: &str = "192.168.250.201/32";

/// A lab in `ns` with Nodes `<tag>-node1..3`, the lab's Services, the router as BGP peer of
/// every node, and speakers with heartbeats, GRACEFUL_SHUTDOWN for 1 s and `extra`; returns
/// once the VIP is answered and FRR has the route from every node.
fn lab(cp: &ControlPlane, ns: &str, tag: &str, extra: &[&str]) -> ClusterLab {
    let mut cluster = ClusterLab::up(cp, &format!("{tag}-"));
    let manifests = format!("{}---\n{}", lab_services(ns), peers(ns, &cluster.names));
    cp.kubectl_with_input(["apply", "-f", "-"], &manifests)
        .unwrap();
    assign_ingress(cp, ns, "web", IpAddr::V4(VIP));
    let key = cluster.dir.path().join("membership-key");
    std::fs::write(&key, b"the drain lab's membership key").unwrap();
    let key = format!("--membership-key-file={}", key.display());
    let mut args = vec![
        key.as_str(),
        "--graceful-shutdown=true",
        "--graceful-shutdown-delay=1s",
    ];
    args.extend_from_slice(extra);
    cluster.start_all(ns, &args);
    let answered = wait_for(60 * SECOND, SECOND / 10, || cluster.arp_owner(VIP));
    assert!(answered.is_some(), "nobody answers\n{}", cluster.logs());
    let all = wait_for(40 * SECOND, SECOND / 5, || {
        (cluster.route_sources(ROUTE).len() == 3).then_some(())
    });
    assert!(all.is_some(), "FRR lacks three paths\n{}", cluster.logs());
    let bfd = wait_for(20 * SECOND, SECOND / 5, || {
        (0..NODES.len()).all(|i| bfd_up(&cluster, i)).then_some(())
    });
    assert!(
        bfd.is_some(),
        "BFD is not up with every node\n{}",
        cluster.logs()
    );
    cluster
}

/// The router as BGPPeer `ebgp` (AS 64500) of the first two nodes and `ibgp` of the third,
/// as the lab's FRR expects them, with BFD at FRR's timers (300 ms x 3).
fn peers(ns: &str, names: &[String]) -> String {
    let peer = |name: &str, asn: u32, nodes: &[String]| {
        format!(
            "apiVersion: metallb.io/v1beta2\nkind: BGPPeer\nmetadata: {{name: {name}, namespace: {ns}}}\n\
             spec:\n  myASN: {asn}\n  peerASN: 64512\n  peerAddress: 192.168.250.1\n  holdTime: 9s\n  \
             bfdProfile: lab\n  \
             nodeSelectors:\n    - matchExpressions:\n        - {{key: kubernetes.io/hostname, operator: In, values: [{}]}}\n",
            nodes.join(", ")
        )
    };
    format!(
        "apiVersion: metallb.io/v1beta1\nkind: BFDProfile\nmetadata: {{name: lab, namespace: {ns}}}\n\
         spec: {{receiveInterval: 300, transmitInterval: 300, detectMultiplier: 3}}\n---\n{}---\n{}",
        peer("ebgp", 64500, &names[..2]),
        peer("ibgp", 64512, &names[2..])
    )
}

/// FRR's BFD session with node `index` is up.
fn bfd_up(cluster: &ClusterLab, index: usize) -> bool {
    frr_bfd_status(&cluster.lab, Lab::address(NODES[index]).0.into()) == "up"
}

/// A way of draining a node, and of ending the drain.
struct Trigger {
    what: &'static str,
    /// Speaker arguments the trigger needs.
    extra: &'static [&'static str],
    set: fn(&ControlPlane, &str),
    clear: fn(&ControlPlane, &str),
}

fn kubectl(cp: &ControlPlane, args: &[&str]) {
    cp.kubectl(args).unwrap();
}

/// Replaces the Node's status conditions with one of `kind`, `status` since now.
fn condition(cp: &ControlPlane, node: &str, kind: &str, status: &str) {
    let now = Timestamp::now();
    let patch = format!(
        r#"{{"status":{{"conditions":[{{"type":"{kind}","status":"{status}","reason":"DrainLab","message":"set by the drain lab","lastTransitionTime":"{now:.0}","lastHeartbeatTime":"{now:.0}"}}]}}}}"#
    );
    let args = [
        "patch",
        "node",
        node,
        "--subresource=status",
        "--type=merge",
    ];
    cp.kubectl(args.iter().copied().chain(["-p", patch.as_str()]))
        .unwrap();
}

const EXCLUDE: &str = "node.kubernetes.io/exclude-from-external-load-balancers";
const HOLD: &str = r#"{"metadata":{"finalizers":["metallb.io/drain-lab-hold"]}}"#;

const EXCLUDE_LABEL: Trigger = Trigger {
    what: "exclude label",
    extra: &[],
    set: |cp, node| kubectl(cp, &["label", "node", node, &format!("{EXCLUDE}=")]),
    clear: |cp, node| kubectl(cp, &["label", "node", node, &format!("{EXCLUDE}-")]),
};

const NETWORK_UNAVAILABLE: Trigger = Trigger {
    what: "NetworkUnavailable",
    extra: &[],
    set: |cp, node| condition(cp, node, "NetworkUnavailable", "True"),
    clear: |cp, node| condition(cp, node, "NetworkUnavailable", "False"),
};

const OUT_OF_SERVICE: Trigger = Trigger {
    what: "out-of-service taint",
    extra: &[],
    set: |cp, node| {
        let taint = "node.kubernetes.io/out-of-service=nodeshutdown:NoExecute";
        kubectl(cp, &["taint", "node", node, taint]);
    },
    clear: |cp, node| {
        kubectl(
            cp,
            &["taint", "node", node, "node.kubernetes.io/out-of-service-"],
        );
    },
};

/// Deletion held by a finalizer; ending it lets the Node go and creates it again.
const DELETION: Trigger = Trigger {
    what: "deletion",
    extra: &[],
    set: |cp, node| {
        kubectl(cp, &["patch", "node", node, "--type=merge", "-p", HOLD]);
        kubectl(cp, &["delete", "node", node, "--wait=false"]);
    },
    clear: |cp, node| {
        let release = r#"{"metadata":{"finalizers":null}}"#;
        kubectl(cp, &["patch", "node", node, "--type=merge", "-p", release]);
        let again = format!(
            "apiVersion: v1\nkind: Node\nmetadata:\n  name: {node}\n  labels: {{kubernetes.io/hostname: {node}}}\n"
        );
        let created = wait_for(10 * SECOND, SECOND / 10, || {
            cp.kubectl_with_input(["create", "-f", "-"], &again).ok()
        });
        assert!(created.is_some(), "cannot create Node {node} again");
    },
};

const ANNOTATION: Trigger = Trigger {
    what: "metallb.io/drain annotation",
    extra: &[],
    set: |cp, node| kubectl(cp, &["annotate", "node", node, "metallb.io/drain=true"]),
    clear: |cp, node| kubectl(cp, &["annotate", "node", node, "metallb.io/drain-"]),
};

const CORDON: Trigger = Trigger {
    what: "cordon with --drain-on-cordon",
    extra: &["--drain-on-cordon"],
    set: |cp, node| kubectl(cp, &["cordon", node]),
    clear: |cp, node| kubectl(cp, &["uncordon", node]),
};

const TAINT_KEY: Trigger = Trigger {
    what: "taint key from --drain-taint-keys",
    extra: &["--drain-taint-keys=example.com/maintenance"],
    set: |cp, node| {
        kubectl(
            cp,
            &["taint", "node", node, "example.com/maintenance=:NoSchedule"],
        );
    },
    clear: |cp, node| kubectl(cp, &["taint", "node", node, "example.com/maintenance-"]),
};

const NOT_READY: Trigger = Trigger {
    what: "Ready=False beyond --not-ready-grace",
    extra: &["--not-ready-grace=1s"],
    set: |cp, node| condition(cp, node, "Ready", "False"),
    clear: |cp, node| condition(cp, node, "Ready", "True"),
};

/// FRR's state of the session with node `index`.
fn session(cluster: &ClusterLab, index: usize) -> Value {
    let (address, _) = Lab::address(NODES[index]);
    cluster.lab.bgp_neighbour(address.into()).unwrap()
}

fn index_of(cluster: &ClusterLab, node: &str) -> usize {
    cluster.names.iter().position(|n| n == node).unwrap()
}

/// How the VIP went from `from` to another node, as the client saw it.
struct Move {
    to: String,
    /// When the first answer of the new owner came, after the change.
    first_new: f64,
    /// When the last answer of `from` came, after the change.
    last_old: f64,
    /// The longest run of ARP requests (one every 10 ms) nobody answered around the
    /// handover, and how long it lasted.
    unanswered: (usize, f64),
    /// The longest time between two answers over the whole probe, stalls of the loaded
    /// machine included.
    longest_gap: f64,
}

impl Move {
    /// Asserts the handover left no hole over 200 ms: at most 20 requests in a row unanswered.
    fn assert_no_gap(&self, what: &str) {
        let (requests, seconds) = self.unanswered;
        assert!(
            requests <= 20,
            "{what}: {requests} requests in a row unanswered over {seconds:.3} s"
        );
    }
}

/// Probes the VIP for `seconds`, making `change` 0.5 s in, and reads how it moved away from
/// `from`.
fn probe_move(cluster: &ClusterLab, from: &str, seconds: u32, change: impl FnOnce()) -> Move {
    let probe = Probe::start(cluster, VIP, seconds);
    thread::sleep(SECOND / 2);
    let started = Instant::now();
    change();
    let changed = 0.5 + started.elapsed().as_secs_f64();
    let record = probe.record(cluster);
    let replies = &record.replies;
    let to = replies
        .iter()
        .rev()
        .map(|(_, node)| node.clone())
        .next()
        .unwrap_or_default();
    assert_ne!(to, from, "the VIP stayed\n{replies:?}\n{}", cluster.logs());
    let first_new = first_from(replies, &to, changed).unwrap();
    let last_old = last_from(replies, from).unwrap_or(0.0);
    // From before the change (kubectl returns after the watchers may have seen it) until
    // half a second after the handover.
    let unanswered = record.unanswered(0.25, last_old.max(first_new) + 0.5);
    Move {
        last_old: last_old - changed,
        first_new: first_new - changed,
        unanswered,
        longest_gap: longest_gap(replies, 0.0),
        to,
    }
}

/// Drains the VIP's owner with `trigger` and ends the drain, checking both moves at the
/// client and the route at FRR.
fn drains_and_comes_back(trigger: &Trigger, tag: &str, test: &str) {
    let cp = ControlPlane::shared();
    cp.install_crds().unwrap();
    let ns = cp.namespace(test).unwrap();
    let cluster = lab(cp, ns.name(), tag, trigger.extra);
    let owner = cluster.arp_owner(VIP).unwrap();
    let index = index_of(&cluster, &owner);

    let (routes, away) = RouteSamples::during(&cluster, ROUTE, || {
        let away = probe_move(&cluster, &owner, 4, || (trigger.set)(cp, &owner));
        let gone = wait_for(5 * SECOND, SECOND / 20, || {
            (!cluster.route_sources(ROUTE).contains(&owner)).then_some(())
        });
        assert!(
            gone.is_some(),
            "FRR kept {owner}'s path\n{}",
            cluster.logs()
        );
        away
    });
    let what = trigger.what;
    println!(
        "{what}: {} answers {:.0} ms after the change, {owner} last {:.0} ms after it; at most \
         {} requests in a row unanswered ({:.0} ms); longest time between answers {:.0} ms",
        away.to,
        away.first_new * 1000.0,
        away.last_old * 1000.0,
        away.unanswered.0,
        away.unanswered.1 * 1000.0,
        away.longest_gap * 1000.0
    );
    assert!(
        away.first_new <= away.last_old,
        "{what}: the new owner answered only after {owner} fell silent\n{}",
        cluster.logs()
    );
    away.assert_no_gap(what);
    let marked = routes.graceful_shutdown(&owner);
    let withdrawn = routes.withdrawn(&owner);
    println!("{what}: at FRR GRACEFUL_SHUTDOWN at {marked:?} s, withdrawn at {withdrawn:?} s");
    let (Some(marked), Some(withdrawn)) = (marked, withdrawn) else {
        panic!(
            "{what}: FRR never saw GRACEFUL_SHUTDOWN then the withdrawal\n{}",
            cluster.logs()
        );
    };
    assert!(
        marked < withdrawn,
        "{what}: withdrawn before GRACEFUL_SHUTDOWN"
    );
    assert!(
        routes.fewest_paths() >= 2,
        "{what}: FRR lost other nodes' paths"
    );
    assert_eq!(
        session(&cluster, index)["bgpState"],
        "Established",
        "{what}: the draining node's session went down"
    );
    assert!(
        bfd_up(&cluster, index),
        "{what}: the draining node's BFD session went down"
    );
    // Other tests' speakers announce their own `web` too: Services are watched cluster-wide.
    let selector = format!(
        "metallb.io/service-name=web,metallb.io/service-namespace={}",
        ns.name()
    );
    let statuses = |kind: &str| {
        let jsonpath = "jsonpath={.items[*].status.node}";
        let args = [
            "-n",
            ns.name(),
            "get",
            kind,
            "-l",
            &selector,
            "-o",
            jsonpath,
        ];
        cp.kubectl(args).unwrap_or_default()
    };
    let visible = wait_for(5 * SECOND, SECOND / 10, || {
        let l2 = statuses("servicel2statuses");
        let bgp = statuses("servicebgpstatuses");
        (l2 == away.to && !bgp.split(' ').any(|node| node == owner)).then_some(())
    });
    assert!(
        visible.is_some(),
        "{what}: the statuses still show {owner}: ServiceL2Status on {:?}, ServiceBGPStatus on \
         {:?}",
        statuses("servicel2statuses"),
        statuses("servicebgpstatuses")
    );

    let back = probe_move(&cluster, &away.to, 4, || (trigger.clear)(cp, &owner));
    println!(
        "{what} cleared: {} answers again {:.0} ms after; at most {} requests in a row \
         unanswered ({:.0} ms); longest time between answers {:.0} ms",
        back.to,
        back.first_new * 1000.0,
        back.unanswered.0,
        back.unanswered.1 * 1000.0,
        back.longest_gap * 1000.0
    );
    assert_eq!(back.to, owner, "{what}: the VIP did not come back");
    back.assert_no_gap(&format!("{what} cleared"));
    let returned = wait_for(10 * SECOND, SECOND / 10, || {
        cluster.route_sources(ROUTE).contains(&owner).then_some(())
    });
    assert!(
        returned.is_some(),
        "{what}: {owner}'s route did not come back"
    );
}

#[test]
fn the_exclude_label_hands_the_vip_and_the_route_over_and_back() {
    drains_and_comes_back(&EXCLUDE_LABEL, "dr-label", test_name!());
}

#[test]
fn network_unavailable_hands_the_vip_and_the_route_over_and_back() {
    drains_and_comes_back(&NETWORK_UNAVAILABLE, "dr-network", test_name!());
}

#[test]
fn the_out_of_service_taint_hands_the_vip_and_the_route_over_and_back() {
    drains_and_comes_back(&OUT_OF_SERVICE, "dr-oos", test_name!());
}

#[test]
fn a_node_held_in_deletion_hands_the_vip_and_the_route_over_until_it_is_back() {
    drains_and_comes_back(&DELETION, "dr-delete", test_name!());
}

#[test]
fn the_drain_annotation_hands_the_vip_and_the_route_over_and_back() {
    drains_and_comes_back(&ANNOTATION, "dr-annotation", test_name!());
}

#[test]
fn a_cordon_drains_when_configured_and_hands_over_and_back() {
    drains_and_comes_back(&CORDON, "dr-cordon", test_name!());
}

#[test]
fn a_configured_taint_key_hands_the_vip_and_the_route_over_and_back() {
    drains_and_comes_back(&TAINT_KEY, "dr-taint", test_name!());
}

#[test]
fn a_node_not_ready_beyond_the_grace_period_hands_over_and_back() {
    drains_and_comes_back(&NOT_READY, "dr-ready", test_name!());
}

#[test]
fn a_node_not_ready_whose_speaker_is_gone_loses_the_vip_within_two_seconds_of_the_grace() {
    let cp = ControlPlane::shared();
    cp.install_crds().unwrap();
    let ns = cp.namespace(test_name!()).unwrap();
    // No heartbeats and a long Lease: only the Node's readiness can tell the others.
    let mut cluster = ClusterLab::up(cp, "dr-gone-");
    let manifests = format!(
        "{}---\n{}",
        lab_services(ns.name()),
        peers(ns.name(), &cluster.names)
    );
    cp.kubectl_with_input(["apply", "-f", "-"], &manifests)
        .unwrap();
    assign_ingress(cp, ns.name(), "web", IpAddr::V4(VIP));
    cluster.start_all(
        ns.name(),
        &["--fencing-lease-duration=30s", "--not-ready-grace=1s"],
    );
    let owner = wait_for(60 * SECOND, SECOND / 10, || cluster.arp_owner(VIP));
    let Some(owner) = owner else {
        panic!("nobody answers\n{}", cluster.logs());
    };
    cluster.kill(index_of(&cluster, &owner));
    assert_eq!(cluster.arp_owner(VIP), None, "{owner} still answers");

    let probe = Probe::start(&cluster, VIP, 5);
    thread::sleep(SECOND / 2);
    let started = Instant::now();
    condition(cp, &owner, "Ready", "False");
    let changed = 0.5 + started.elapsed().as_secs_f64();
    let replies = probe.replies(&cluster);
    let Some((at, to)) = replies.iter().find(|(at, _)| *at >= changed) else {
        panic!("nobody took the VIP over\n{}", cluster.logs());
    };
    let after = at - changed;
    println!(
        "{owner} not ready with its speaker killed: {to} answers {after:.3} s after the change"
    );
    assert_ne!(*to, owner);
    assert!(
        after < 3.0,
        "moved {after:.3} s after the change (1 s grace)"
    );
}

/// `Service` `solo` on 192.168.250.202 with `Local` policy and its only endpoint on `node`.
fn solo(ns: &str, node: &str) -> String {
    format!(
        r#"
apiVersion: v1
kind: Service
metadata: {{name: solo, namespace: {ns}}}
spec: {{type: LoadBalancer, externalTrafficPolicy: Local, ports: [{{port: 80}}]}}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: solo-1
  namespace: {ns}
  labels: {{kubernetes.io/service-name: solo}}
addressType: IPv4
ports: [{{port: 80}}]
endpoints:
  - {{addresses: [10.0.1.2], nodeName: {node}, conditions: {{ready: true}}}}
"#
    )
}

#[test]
fn a_draining_node_keeps_a_service_nobody_else_can_serve_and_says_so() {
    let cp = ControlPlane::shared();
    cp.install_crds().unwrap();
    let ns = cp.namespace(test_name!()).unwrap();
    let cluster = lab(cp, ns.name(), "dr-last", &[]);
    let node = cluster.names[0].clone();
    let solo_ip = Ipv4Addr::new(192, 168, 250, 202);
    cp.kubectl_with_input(["apply", "-f", "-"], &solo(ns.name(), &node))
        .unwrap();
    assign_ingress(cp, ns.name(), "solo", IpAddr::V4(solo_ip));
    cluster.wait_owner(solo_ip, Some(&node), 20 * SECOND);

    (ANNOTATION.set)(cp, &node);
    let event = wait_for(10 * SECOND, SECOND / 5, || {
        let events = cp
            .kubectl(["-n", ns.name(), "get", "events", "-o", "json"])
            .unwrap();
        let events: Value = serde_json::from_str(&events).unwrap();
        events["items"].as_array()?.iter().find_map(|e| {
            let ours = e["reason"] == "DrainingLastNode" && e["involvedObject"]["name"] == "solo";
            ours.then(|| (e["type"].clone(), e["message"].clone()))
        })
    });
    let Some((kind, message)) = event else {
        panic!("no DrainingLastNode event\n{}", cluster.logs());
    };
    println!("never blackhole: {kind} event: {message}");
    assert_eq!(kind, "Warning");
    assert!(message.as_str().unwrap().contains(&node), "{message}");
    assert_eq!(cluster.arp_owner(solo_ip).as_deref(), Some(node.as_str()));
    assert!(
        cluster.route_sources("192.168.250.202/32").contains(&node),
        "FRR lost the only path"
    );
    let metrics = cluster.metrics(0);
    for series in [
        "metallb_speaker_never_blackhole_services 1",
        "metallb_speaker_draining{trigger=\"annotation\"} 1",
        "metallb_speaker_draining{trigger=\"cordoned\"} 0",
        "metallb_speaker_fenced 0",
    ] {
        assert!(metrics.contains(series), "no {series:?} in\n{metrics}");
    }
    let output = std::process::Command::new(SPEAKER)
        .args(["show", "liveness", "--json", "--control"])
        .arg(cluster.control(0))
        .output()
        .unwrap();
    let view: Value = serde_json::from_slice(&output.stdout).unwrap();
    println!("show liveness: {view}");
    assert_eq!(view["draining"], "metallb.io/drain annotation");
    assert_eq!(view["own"], "normal");
    assert_eq!(view["nodes"].as_array().map(Vec::len), Some(2));
}

#[test]
fn when_no_speaker_reaches_the_api_nothing_moves() {
    let cp = ControlPlane::shared();
    cp.install_crds().unwrap();
    let ns = cp.namespace(test_name!()).unwrap();
    let cluster = lab(cp, ns.name(), "dr-outage", &[]);
    let owner = cluster.arp_owner(VIP).unwrap();

    // Twice the Lease (4 s) and more, with every speaker cut from the API server.
    let probe = Probe::start(&cluster, VIP, 11);
    thread::sleep(SECOND / 2);
    for index in 0..NODES.len() {
        cluster.freeze(index);
    }
    let (routes, ()) = RouteSamples::during(&cluster, ROUTE, || thread::sleep(9 * SECOND));
    for index in 0..NODES.len() {
        cluster.thaw(index);
    }
    let record = probe.record(&cluster);
    let replies = &record.replies;
    let others: Vec<&(f64, String)> = replies.iter().filter(|(_, n)| *n != owner).collect();
    let (unanswered, _) = record.unanswered(0.0, f64::INFINITY);
    println!(
        "control plane out for 9 s: {} answers from {owner}, {} from others, at most {} \
         requests in a row unanswered, longest time between answers {:.0} ms, fewest paths \
         at FRR {}",
        replies.len(),
        others.len(),
        unanswered,
        longest_gap(replies, 0.0) * 1000.0,
        routes.fewest_paths()
    );
    assert!(others.is_empty(), "another node answered: {others:?}");
    assert!(
        unanswered <= 20,
        "{unanswered} requests in a row unanswered"
    );
    assert_eq!(routes.fewest_paths(), 3, "FRR lost a path");
    let after = Probe::start(&cluster, VIP, 2).replies(&cluster);
    assert!(
        !after.is_empty() && after.iter().all(|(_, n)| *n == owner),
        "ownership changed after the API came back: {after:?}"
    );
}

#[test]
fn sigterm_reaches_frr_as_graceful_shutdown_then_withdrawal_then_cease() {
    let cp = ControlPlane::shared();
    cp.install_crds().unwrap();
    let ns = cp.namespace(test_name!()).unwrap();
    let mut cluster = lab(cp, ns.name(), "dr-sigterm", &[]);
    let leaving = cluster.names[0].clone();
    let stats = session(&cluster, 0)["messageStats"].clone();

    let (routes, ()) = RouteSamples::during(&cluster, ROUTE, || {
        let pid = cluster.pid(0).unwrap();
        let pid = nix::unistd::Pid::from_raw(i32::try_from(pid).unwrap());
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
        let gone = wait_for(5 * SECOND, SECOND / 20, || {
            (session(&cluster, 0)["bgpState"] != "Established").then_some(())
        });
        assert!(gone.is_some(), "the session outlived the speaker");
    });
    cluster.stop(0);
    let marked = routes.graceful_shutdown(&leaving);
    let withdrawn = routes.withdrawn(&leaving);
    let session = session(&cluster, 0);
    println!(
        "SIGTERM: GRACEFUL_SHUTDOWN at FRR at {marked:?} s, withdrawn at {withdrawn:?} s, \
         UPDATEs {} -> {}, NOTIFICATIONs {} -> {}, last reset: {}",
        stats["updatesRecv"],
        session["messageStats"]["updatesRecv"],
        stats["notificationsRecv"],
        session["messageStats"]["notificationsRecv"],
        session["lastResetDueTo"]
    );
    let (Some(marked), Some(withdrawn)) = (marked, withdrawn) else {
        panic!(
            "FRR never saw GRACEFUL_SHUTDOWN then the withdrawal\n{}",
            cluster.logs()
        );
    };
    assert!(marked < withdrawn);
    // The GRACEFUL_SHUTDOWN UPDATE and the withdrawal both reached FRR before the session
    // ended, and it ended with the NOTIFICATION (Cease) FRR received. The reset reason FRR
    // keeps is the last one: BFD's AdminDown, sent after the Cease, replaces it.
    let count = |stats: &Value, what: &str| stats[what].as_u64().unwrap_or_default();
    let after = &session["messageStats"];
    assert_eq!(
        count(after, "updatesRecv"),
        count(&stats, "updatesRecv") + 2
    );
    assert!(count(after, "notificationsRecv") > count(&stats, "notificationsRecv"));
}
