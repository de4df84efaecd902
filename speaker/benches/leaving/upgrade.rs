//! A speaker DaemonSet rolling upgrade on the local cluster of real kubelets and containerd
//! (`tests/testenv/cluster`), as an administrator causes one: the product image loaded, the
//! operator installed with the sample MetalLB resource, the lab's pool, L2 and BGP
//! advertisements and peers towards the lab's FRR, and the Service `web` with an endpoint on
//! every node; then the MetalLB resource's log level changes, the operator re-renders the
//! speaker pod template and the DaemonSet controller replaces the speakers one node at a time
//! (the update strategy as the operator renders it). Throughout, the lab's client sends an ARP
//! request for the VIP every 10 ms and FRR's paths for it are sampled every 10 ms.
//!
//! A node's replacement runs from its old speaker's SIGTERM (its log; else when the pod list
//! shows it terminating) to the next node's (the last one: to the end of the probes), so the
//! VIP moving back to its owner once the new pod runs counts against that node. A time without
//! an answer is a run of requests no answer came to within 10 ms: on a loaded machine that
//! includes late answers, so the prober's longest interval is printed too. Printed per node and over the whole
//! upgrade: the longest time without an ARP answer, the time FRR had no path at all, the two-MAC
//! window; then where each node's time went, from the speakers' own logs (old pod from its
//! SIGTERM on, new pod from its start), on the probes' clock.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use metallb_testenv::cluster::{
    Cluster, ClusterOptions, WORKSPACE_ROOT, cluster_bin_dir, product_image,
};
use metallb_testenv::lab::{Host, Lab};
use serde_json::Value;

use crate::common::cluster::{NODES, lab_peers, lab_services};
use crate::common::wait_for;
use crate::moves::Row;
use crate::probe::{
    Answer, Probes, RibSample, Stage, answer_changes, longest_where, ms_where, rib_ms_where,
};

/// Where the operator runs the speakers (the sample MetalLB's namespace).
const NS: &str = "metallb-system";
/// The speaker pods' label, as the operator renders them.
const SPEAKERS: &str = "component=speaker";
/// When the log level changes, in seconds since the probes started.
const TRIGGER_AT: f64 = 2.0;
/// How long the probes run: the whole rollout, with room for a loaded machine.
const PROBE_SECONDS: f64 = 100.0;
/// The target for each node's replacement, L2 and BGP.
const TARGET: &str = "< 200 ms per node";

impl Stage for Cluster {
    fn command(&self, host: Host, program: &str) -> Command {
        Cluster::command(self, host.name(), program)
    }

    fn lab_name(&self) -> &str {
        self.name()
    }

    fn node_of_mac(&self, mac: &str) -> Option<String> {
        NODES
            .iter()
            .find(|host| Lab::mac(**host) == mac.to_lowercase())
            .map(|host| host.name().to_owned())
    }

    fn node_of_address(&self, address: &str) -> Option<String> {
        NODES
            .iter()
            .find(|host| Lab::address(**host).0.to_string() == address)
            .map(|host| host.name().to_owned())
    }
}

fn kubectl(cluster: &Cluster, args: &[&str]) -> Result<String, String> {
    let mut all = vec!["-n", NS];
    all.extend_from_slice(args);
    cluster.kubectl(&all).map_err(|e| e.to_string())
}

fn eventually<T>(what: &str, within: Duration, mut check: impl FnMut() -> Result<T, String>) -> T {
    let mut last = String::new();
    wait_for(within, Duration::from_millis(500), || {
        check().map_err(|e| last = e).ok()
    })
    .unwrap_or_else(|| panic!("{what} not within {within:?}; last: {last}"))
}

fn manifest(path: &str) -> String {
    Path::new(WORKSPACE_ROOT).join(path).display().to_string()
}

/// The product from `manifests/`, the sample MetalLB Available, the lab's objects applied;
/// the VIP of `web` once FRR has a path for it from every node.
fn install(cluster: &Cluster) -> String {
    cluster.import(&product_image().unwrap()).unwrap();
    let (crds, install) = (manifest("manifests/crds"), manifest("manifests/install"));
    kubectl(
        cluster,
        &["apply", "--server-side", "-f", &crds, "-f", &install],
    )
    .unwrap();
    kubectl(
        cluster,
        &["wait", "--for=condition=Established", "crd", "--all"],
    )
    .unwrap();
    let operator = [
        "rollout",
        "status",
        "deploy/metallb-operator",
        "--timeout=180s",
    ];
    kubectl(cluster, &operator).unwrap();
    // Through the operator's webhook, reachable once its Service has endpoints.
    let sample = manifest("manifests/samples/metallb.yaml");
    eventually(
        "the sample MetalLB accepted",
        Duration::from_secs(60),
        || kubectl(cluster, &["apply", "-f", &sample]),
    );
    eventually("MetalLB Available", Duration::from_secs(180), || {
        let path = r#"jsonpath={.status.conditions[?(@.type=="Available")].status}"#;
        let status = kubectl(cluster, &["get", "metallb", "metallb", "-o", path])?;
        (status == "True").then_some(()).ok_or(status)
    });
    let objects = format!("{}---\n{}", lab_services(NS), lab_peers(NS));
    eventually(
        "the lab's objects accepted",
        Duration::from_secs(60),
        || {
            cluster
                .kubectl_stdin(["apply", "-f", "-"], &objects)
                .map_err(|e| e.to_string())
        },
    );
    let vip = eventually("an address for web", Duration::from_secs(60), || {
        let path = "jsonpath={.status.loadBalancer.ingress[0].ip}";
        let ip = kubectl(cluster, &["get", "service", "web", "-o", path])?;
        (!ip.is_empty()).then_some(ip).ok_or("none yet".to_owned())
    });
    eventually(
        "FRR's paths from every node",
        Duration::from_secs(120),
        || {
            let paths = frr_paths(cluster, &vip);
            (paths.len() == NODES.len())
                .then_some(())
                .ok_or(format!("{paths:?}"))
        },
    );
    vip
}

/// The peers FRR has a path for `vip/32` from, by one vtysh.
fn frr_paths(cluster: &Cluster, vip: &str) -> Vec<String> {
    let command = format!("show bgp ipv4 unicast {vip}/32 json");
    let output = cluster
        .command("router", "vtysh")
        .args(["-N", cluster.name(), "-c", &command])
        .output()
        .map(|o| o.stdout)
        .unwrap_or_default();
    let route: Value = serde_json::from_slice(&output).unwrap_or(Value::Null);
    route["paths"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["peer"]["peerId"].as_str().map(str::to_owned))
        .collect()
}

/// One speaker pod as the watcher saw it.
#[derive(Debug, Clone)]
struct Pod {
    name: String,
    node: String,
    deleting: bool,
    ready: bool,
}

fn speaker_pods(cluster: &Cluster) -> Result<Vec<Pod>, String> {
    let text = kubectl(cluster, &["get", "pods", "-l", SPEAKERS, "-o", "json"])?;
    let list: Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
    Ok(list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|pod| Pod {
            name: pod["metadata"]["name"].as_str().unwrap_or("").to_owned(),
            node: pod["spec"]["nodeName"].as_str().unwrap_or("").to_owned(),
            deleting: !pod["metadata"]["deletionTimestamp"].is_null(),
            ready: pod["status"]["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["type"] == "Ready" && c["status"] == "True"),
        })
        .collect())
}

/// When each node's speaker went through the replacement, in probe seconds.
#[derive(Debug, Default, Clone)]
struct Replacement {
    old_pod: String,
    new_pod: String,
    terminating: Option<f64>,
    gone: Option<f64>,
    new_ready: Option<f64>,
    /// When the old speaker logged its SIGTERM (the pod list shows a deletion later).
    sigterm: Option<f64>,
}

impl Replacement {
    /// Where this node's replacement starts: its SIGTERM, else the deletion the watcher saw.
    fn start(&self) -> Option<f64> {
        self.sigterm.or(self.terminating)
    }
}

/// Polls the speaker pods until every node runs a new, Ready one (or the probes end).
fn watch_rollout(cluster: &Cluster, probes: &Probes, old: &[Pod]) -> BTreeMap<String, Replacement> {
    let mut nodes: BTreeMap<String, Replacement> = old
        .iter()
        .map(|pod| {
            let replacement = Replacement {
                old_pod: pod.name.clone(),
                ..Replacement::default()
            };
            (pod.node.clone(), replacement)
        })
        .collect();
    while probes.now() < PROBE_SECONDS - 1.0 {
        let Ok(pods) = speaker_pods(cluster) else {
            continue;
        };
        let now = probes.now();
        for (node, replacement) in &mut nodes {
            let old_pod = pods.iter().find(|p| p.name == replacement.old_pod);
            if old_pod.is_some_and(|p| p.deleting) || old_pod.is_none() {
                replacement.terminating.get_or_insert(now);
            }
            if old_pod.is_none() {
                replacement.gone.get_or_insert(now);
            }
            let new_pod = pods
                .iter()
                .find(|p| p.node == *node && p.name != replacement.old_pod);
            if let Some(pod) = new_pod {
                replacement.new_pod.clone_from(&pod.name);
                if pod.ready {
                    replacement.new_ready.get_or_insert(now);
                }
            }
        }
        if nodes
            .values()
            .all(|r| r.new_ready.is_some() && r.gone.is_some())
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    nodes
}

/// `kubectl logs -f --timestamps` of the old speaker pods into files: their logs go with them.
struct LogFollowers {
    children: Vec<Child>,
}

impl LogFollowers {
    fn start(cluster: &Cluster, dir: &Path, old: &[Pod]) -> LogFollowers {
        let mut children = Vec::new();
        for pod in old {
            let path = dir.join(format!("{}.log", pod.name));
            let out = std::fs::File::create(&path).unwrap();
            let child = Command::new(cluster_bin_dir().unwrap().join("kubectl"))
                .arg("--kubeconfig")
                .arg(cluster.kubeconfig_path())
                .args(["-n", NS, "logs", "-f", "--timestamps", &pod.name])
                .stdout(out)
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            children.push(child);
        }
        LogFollowers { children }
    }
}

impl Drop for LogFollowers {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Seconds of the day of an RFC 3339 UTC timestamp (`2026-12-02T20:01:02.123456789Z`).
fn seconds_of_day(stamp: &str) -> Option<f64> {
    let time = stamp.split_once('T')?.1.trim_end_matches('Z');
    let mut parts = time.split(':');
    let hours: f64 = parts.next()?.parse().ok()?;
    let minutes: f64 = parts.next()?.parse().ok()?;
    let seconds: f64 = parts.next()?.parse().ok()?;
    Some(hours * 3600.0 + minutes * 60.0 + seconds)
}

/// Log lines on the probes' clock: `(probe seconds, line)`, given the probes' origin as seconds
/// of the day.
fn timed_lines(text: &str, origin_of_day: f64) -> Vec<(f64, String)> {
    text.lines()
        .filter_map(|line| {
            let (stamp, rest) = line.split_once(' ')?;
            // Wrapped into half a day either way, so a run across midnight still lines up.
            let at =
                (seconds_of_day(stamp)? - origin_of_day + 43_200.0).rem_euclid(86_400.0) - 43_200.0;
            Some((at, rest.chars().take(220).collect()))
        })
        .collect()
}

/// The measured figures of `[from, to)`: longest L2 gap, L2 ms without an answer, longest
/// two-MAC window, BGP ms without any path.
fn figures(answers: &[Answer], rib: &[RibSample], from: f64, to: f64) -> [f64; 4] {
    let none = |a: &Answer| a.nodes.is_empty();
    let two = |a: &Answer| a.nodes.len() > 1;
    [
        longest_where(answers, from, to, none),
        ms_where(answers, from, to, none),
        longest_where(answers, from, to, two),
        rib_ms_where(rib, from, to, |s| s.nodes.is_empty()),
    ]
}

fn verdict(l2_gap: f64, bgp: f64) -> &'static str {
    if l2_gap < 200.0 && bgp < 200.0 {
        "met"
    } else {
        "MISSED"
    }
}

/// Runs the upgrade on a fresh cluster; the table's rows, then where the time went.
pub fn run() -> (Vec<Row>, String) {
    let cluster = Cluster::up(ClusterOptions::default()).unwrap();
    let vip = install(&cluster);
    let old = eventually("three Ready speakers", Duration::from_secs(120), || {
        let pods = speaker_pods(&cluster)?;
        let ready = pods.iter().filter(|p| p.ready && !p.deleting).count();
        if ready == NODES.len() {
            Ok(pods)
        } else {
            Err(format!("{pods:?}"))
        }
    });
    let strategy = kubectl(
        &cluster,
        &[
            "get",
            "daemonset",
            "speaker",
            "-o",
            "jsonpath={.spec.updateStrategy}",
        ],
    )
    .unwrap_or_default();
    let grace = kubectl(
        &cluster,
        &[
            "get",
            "daemonset",
            "speaker",
            "-o",
            "jsonpath={.spec.template.spec.terminationGracePeriodSeconds}",
        ],
    )
    .unwrap_or_default();
    let logs_dir = tempfile::tempdir().unwrap();
    let followers = LogFollowers::start(&cluster, logs_dir.path(), &old);
    let probes = Probes::start(&cluster, vip.parse().unwrap(), PROBE_SECONDS);
    let origin_of_day = {
        let since_epoch = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
        (since_epoch.as_secs_f64() - probes.now()).rem_euclid(86_400.0)
    };
    let left = TRIGGER_AT - probes.now();
    if left > 0.0 {
        std::thread::sleep(Duration::from_secs_f64(left));
    }
    let triggered = probes.now();
    let patch = r#"{"spec":{"logLevel":"debug"}}"#;
    kubectl(
        &cluster,
        &["patch", "metallb", "metallb", "--type=merge", "-p", patch],
    )
    .unwrap();
    let mut replaced = watch_rollout(&cluster, &probes, &old);
    let rolled = probes.now();
    let (answers, rib) = probes.finish(&cluster);
    let end = answers.last().map_or(PROBE_SECONDS, |a| a.at);
    drop(followers);
    for replacement in replaced.values_mut() {
        let log = logs_dir.path().join(format!("{}.log", replacement.old_pod));
        let text = std::fs::read_to_string(log).unwrap_or_default();
        replacement.sigterm = timed_lines(&text, origin_of_day)
            .into_iter()
            .find(|(_, line)| line.contains("SIGTERM received"))
            .map(|(at, _)| at);
    }

    let mut order: Vec<(&String, &Replacement)> = replaced.iter().collect();
    order.sort_by(|a, b| {
        let start = |r: &Replacement| r.start().unwrap_or(f64::MAX);
        start(a.1).total_cmp(&start(b.1))
    });
    let mut rows: Vec<Row> = vec![(
        "speaker DaemonSet rolling upgrade: the operator's strategy, grace period".to_owned(),
        format!("{strategy}, {grace} s"),
        String::new(),
    )];
    let mut notes = String::new();
    for (i, (node, replacement)) in order.iter().enumerate() {
        let Some(from) = replacement.start() else {
            rows.push((
                format!("{node} replaced"),
                "never (not within the probes)".to_owned(),
                TARGET.to_owned(),
            ));
            continue;
        };
        let to = order
            .get(i + 1)
            .and_then(|(_, next)| next.start())
            .unwrap_or(end);
        let [gap, silent, two, bgp] = figures(&answers, &rib, from, to);
        rows.push((
            format!("{node} replaced: L2 longest gap / ms without answer, two MACs, BGP ms with no path at FRR"),
            format!("{gap:.0} / {silent:.0} ms, {two:.0} ms, {bgp:.0} ms: {}", verdict(gap, bgp)),
            TARGET.to_owned(),
        ));
        let since =
            |at: Option<f64>| at.map_or("never".to_owned(), |t| format!("{:.2}", t - triggered));
        notes.push_str(&format!(
            "\n{node}: old pod {} SIGTERM at {}, seen terminating at {}, gone at {}; new pod {} Ready at {} (s after the log-level change); its window {:.2}..{:.2}\n",
            replacement.old_pod,
            since(replacement.sigterm),
            since(replacement.terminating),
            since(replacement.gone),
            replacement.new_pod,
            since(replacement.new_ready),
            from - triggered,
            to - triggered,
        ));
        notes.push_str(&pod_logs(
            &cluster,
            logs_dir.path(),
            replacement,
            origin_of_day,
            triggered,
            from,
        ));
    }
    let [gap, silent, two, bgp] = figures(&answers, &rib, triggered, end);
    rows.push((
        "whole upgrade: L2 longest gap / ms without answer, two MACs, BGP ms with no path"
            .to_owned(),
        format!("{gap:.0} / {silent:.0} ms, {two:.0} ms, {bgp:.0} ms"),
        "< 200 ms per node".to_owned(),
    ));
    // Each request stands for the time until the next: a stalled prober (a loaded machine)
    // would stretch one answer, or one silence, over the stall.
    let stalled = answers
        .windows(2)
        .filter(|w| w[0].at >= triggered)
        .map(|w| (w[1].at - w[0].at) * 1000.0)
        .fold(0.0, f64::max);
    rows.push((
        "ARP prober: longest interval between two requests, ms (10 = no stall)".to_owned(),
        format!("{stalled:.0}"),
        String::new(),
    ));
    rows.push((
        "whole upgrade: rollout done, s after the log-level change".to_owned(),
        if replaced
            .values()
            .all(|r| r.new_ready.is_some() && r.gone.is_some())
        {
            format!("{:.2}", rolled - triggered)
        } else {
            "not within the probes".to_owned()
        },
        String::new(),
    ));
    notes.insert_str(
        0,
        &format!(
            "ARP answers during the upgrade (s after the log-level change, who): {}\n",
            answer_changes(&answers, triggered)
        ),
    );
    (rows, notes)
}

/// Where a node's time went: the old pod's log from a second before its replacement started,
/// the new pod's first lines above debug (the level the upgrade sets; its ARP replies are
/// summed up), on the trigger's clock.
fn pod_logs(
    cluster: &Cluster,
    dir: &Path,
    replacement: &Replacement,
    origin_of_day: f64,
    triggered: f64,
    start: f64,
) -> String {
    let old = std::fs::read_to_string(dir.join(format!("{}.log", replacement.old_pod)))
        .unwrap_or_default();
    let new = if replacement.new_pod.is_empty() {
        String::new()
    } else {
        kubectl(cluster, &["logs", "--timestamps", &replacement.new_pod]).unwrap_or_default()
    };
    let mut out = String::new();
    let old_lines = timed_lines(&old, origin_of_day);
    for (at, line) in old_lines
        .iter()
        .filter(|(at, _)| *at >= start - 1.0)
        .take(12)
    {
        out.push_str(&format!("  old {:+.3} {line}\n", at - triggered));
    }
    let new_lines = timed_lines(&new, origin_of_day);
    let replies: Vec<f64> = new_lines
        .iter()
        .filter(|(_, line)| line.contains("l2 reply sent"))
        .map(|(at, _)| *at)
        .collect();
    let telling = new_lines
        .iter()
        .filter(|(_, line)| !line.contains(" DEBUG ") && !line.contains(" TRACE "));
    for (at, line) in telling.take(14) {
        out.push_str(&format!("  new {:+.3} {line}\n", at - triggered));
    }
    if let (Some(first), Some(last)) = (replies.first(), replies.last()) {
        out.push_str(&format!(
            "  new: {} ARP replies logged, {:+.3} .. {:+.3}\n",
            replies.len(),
            first - triggered,
            last - triggered
        ));
    }
    out
}
