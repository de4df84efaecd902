//! The peers benchmark's tables (Markdown, one per figure, a column per system) and the
//! document `docs/benchmarks.md` they go into.

use std::process::Command;
use std::time::Duration;

use crate::protocol::{PREFIXES, Protocol};
use crate::{Outcome, Results, System, rolling};

/// Which event's outcome a table shows.
type Pick = fn(&Results) -> &Outcome;

fn seconds(s: f64) -> String {
    format!("{s:.2} s")
}

fn header(title: &str, systems: &[System]) -> String {
    let names: Vec<&str> = systems.iter().map(|s| s.name()).collect();
    format!(
        "### {title}\n\n| | {} |\n|---|{}\n",
        names.join(" | "),
        "---|".repeat(systems.len())
    )
}

fn row(what: &str, cells: impl Iterator<Item = String>) -> String {
    format!("| {what} | {} |\n", cells.collect::<Vec<_>>().join(" | "))
}

fn moved(o: &Outcome) -> String {
    o.moved
        .map(seconds)
        .unwrap_or_else(|| format!("never within {}", seconds(o.end)))
}

fn two_macs(o: &Outcome) -> String {
    match o.two_macs {
        // Below one probe interval: no request saw two answers.
        (s, _) if s < 0.01 => "never".into(),
        (s, true) => format!("{} (still when the probe ended)", seconds(s)),
        (s, false) => seconds(s),
    }
}

fn owner_last(o: &Outcome) -> String {
    match o.owner_last {
        None => "silent before the event".into(),
        Some(t) if t > o.end - 0.5 => "never (still answering when the probe ended)".into(),
        Some(t) => seconds(t),
    }
}

fn event_table(title: &str, systems: &[System], results: &[Results], pick: Pick) -> String {
    let outcomes: Vec<&Outcome> = results.iter().map(pick).collect();
    let mut table = header(title, systems);
    table += &row(
        "another node answers after",
        outcomes.iter().map(|o| moved(o)),
    );
    table += &row(
        "the old owner falls silent after",
        outcomes.iter().map(|o| owner_last(o)),
    );
    table += &row(
        "longest time no node answers",
        outcomes.iter().map(|o| seconds(o.gap)),
    );
    table += &row(
        "longest time two MACs answer",
        outcomes.iter().map(|o| two_macs(o)),
    );
    table + "\n"
}

fn percentiles(samples: &[Duration], wanted: usize) -> String {
    if samples.is_empty() {
        return "no answer".into();
    }
    let mut sorted = samples.to_vec();
    sorted.sort();
    let at = |p: f64| {
        let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
        sorted[index].as_secs_f64() * 1000.0
    };
    let missing = wanted - sorted.len();
    let missing = if missing > 0 {
        format!(", {missing} never")
    } else {
        String::new()
    };
    format!(
        "p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms{missing}",
        at(0.5),
        at(0.99),
        at(1.0)
    )
}

/// Every table, in the order the issue lists the figures.
pub fn tables(systems: &[System], results: &[Results]) -> String {
    let mut text = event_table(
        "Layer-2 failover: the owner's speaker SIGKILLed",
        systems,
        results,
        |r| &r.events.kill,
    );
    text += &event_table(
        "Layer-2 failover: the owner's link cut at the switch for 12 s",
        systems,
        results,
        |r| &r.events.link,
    );
    text += &event_table(
        "Planned handover: SIGTERM of the owner's speaker",
        systems,
        results,
        |r| &r.events.term,
    );
    text += &event_table(
        "Planned handover: the owner's node cordoned and drained (`kubectl drain`; ours with \
         `--drain-on-cordon`, the peers have no such behaviour)",
        systems,
        results,
        |r| &r.events.drain,
    );
    text += &event_table(
        "API server cut from the owner's node for 15 s (its link stays up)",
        systems,
        results,
        |r| &r.events.api,
    );

    text += &header(
        "Longest time two MACs answer for the address, per event",
        systems,
    );
    let events: [(&str, Pick); 5] = [
        ("owner's speaker SIGKILLed", |r| &r.events.kill),
        ("owner's link cut", |r| &r.events.link),
        ("owner's speaker SIGTERMed", |r| &r.events.term),
        ("owner's node cordoned and drained", |r| &r.events.drain),
        ("owner cut from the API server", |r| &r.events.api),
    ];
    for (what, pick) in events {
        text += &row(what, results.iter().map(|r| two_macs(pick(r))));
    }
    text += "\n";

    let wanted = super::LATENCY_SERVICES;
    text += &header(
        &format!(
            "New Service -> answer ({wanted} Services, one at a time; from the `kubectl apply` of \
             the Service and its EndpointSlice)"
        ),
        systems,
    );
    text += &row(
        "ARP answer at the client",
        results.iter().map(|r| percentiles(&r.to_arp, wanted)),
    );
    text += &row(
        "route at FRR",
        results.iter().map(|r| percentiles(&r.to_route, wanted)),
    );
    text += "\n";

    text += &header("Memory at idle, one Service (resident, MiB)", systems);
    text += &row(
        "speaker (largest of three)",
        results.iter().map(|r| format!("{:.1}", r.memory.0)),
    );
    text += &row(
        "controller",
        systems
            .iter()
            .zip(results)
            .map(|(s, r)| match (s, r.memory.1) {
                (_, Some(mib)) => format!("{mib:.1}"),
                (System::KubeVip, None) => {
                    "n/a: no controller (the Service's annotation names the address)".into()
                }
                (_, None) => "not measured: the process was gone".into(),
            }),
    );
    text += "\n";
    text += &idle(systems, results);
    text += &many(systems, results);
    text
}

fn percent(cpu: Option<&Option<f64>>) -> String {
    match cpu {
        Some(Some(p)) => format!("{p:.2} %"),
        _ => "exited".into(),
    }
}

/// CPU and API requests at idle.
fn idle(systems: &[System], results: &[Results]) -> String {
    let window = crate::idle::WINDOW.as_secs();
    let mut text = header(
        &format!("CPU at idle, one Service ({window} s, user + system, % of one core)"),
        systems,
    );
    text += &row(
        "speaker (busiest of three)",
        results.iter().map(|r| {
            let speakers = &r.idle.cpu[..3.min(r.idle.cpu.len())];
            let busiest = speakers
                .iter()
                .flatten()
                .copied()
                .fold(None, |a, b| Some(a.map_or(b, |a: f64| a.max(b))));
            percent(Some(&busiest))
        }),
    );
    text += &row(
        "controller",
        systems.iter().zip(results).map(|(s, r)| match s {
            System::KubeVip => "n/a: no controller".into(),
            _ => percent(r.idle.cpu.get(3)),
        }),
    );
    text += "\n";
    text += &header(
        &format!(
            "API requests/s at idle, one Service ({window} s each; the system's own API server's \
             `apiserver_request_total`)"
        ),
        systems,
    );
    text += &row(
        "API server with the controller only (kube-vip: the server alone)",
        results
            .iter()
            .map(|r| format!("{:.2}", r.before_speakers.api)),
    );
    text += &row(
        "API server with the controller and three speakers",
        results.iter().map(|r| format!("{:.2}", r.idle.api)),
    );
    text += &row(
        "per speaker (the difference / 3)",
        results
            .iter()
            .map(|r| format!("{:.2}", (r.idle.api - r.before_speakers.api).max(0.0) / 3.0)),
    );
    text + "\n"
}

/// The many-Services table.
fn many(systems: &[System], results: &[Results]) -> String {
    let count = results
        .iter()
        .map(|r| r.many.count)
        .next()
        .unwrap_or(crate::many::MANY);
    let mut text = header(
        &format!(
            "{count} Services created at once (16 API calls in flight, the address named by \
             the system's annotation; kube-vip in BGP mode) -> every route at FRR from all \
             three nodes"
        ),
        systems,
    );
    let cells = |f: &dyn Fn(&crate::many::Many) -> String| -> Vec<String> {
        results.iter().map(|r| f(&r.many)).collect()
    };
    text += &row(
        "every Service created (API)",
        cells(&|m| seconds(m.created.as_secs_f64())).into_iter(),
    );
    text += &row(
        "every route at FRR from every node, from the first call",
        cells(&|m| match m.routed {
            Ok(d) => seconds(d.as_secs_f64()),
            Err(got) => format!("not within 900 s: {got} of {} routes", m.count),
        })
        .into_iter(),
    );
    text += &row(
        "speaker memory then (largest of three, resident MiB)",
        cells(&|m| format!("{:.1}", m.memory.0)).into_iter(),
    );
    text += &row(
        "controller memory then (resident MiB)",
        systems
            .iter()
            .zip(cells(&|m| {
                m.memory
                    .1
                    .map_or("not measured: the process was gone".into(), |c| {
                        format!("{c:.1}")
                    })
            }))
            .map(|(s, cell)| match s {
                System::KubeVip => "n/a: no controller".into(),
                _ => cell,
            }),
    );
    text + "\n"
}

/// The protocol-only table: our BGP core, BIRD and GoBGP from one node to FRR.
pub fn protocol(figures: &Protocol) -> String {
    let mut text = format!(
        "### Protocol only: {PREFIXES} IPv4 prefixes from one lab node to FRR (eBGP, every \
         prefix known before the session)\n\n\
         | | ours (metallb-speaker, its BGP core) | BIRD 2 | GoBGP (gobgpd) |\n|---|---|---|---|\n"
    );
    text += &row(
        "FRR's Established -> FRR holds every prefix",
        figures.iter().map(|f| seconds(f.all.as_secs_f64())),
    );
    text += &row(
        "daemon memory then (resident MiB)",
        figures
            .iter()
            .map(|f| format!("{:.1}", f.rss_kib as f64 / 1024.0)),
    );
    text + "\n"
}

/// The rolling-update table: ours with every leaving feature, MetalLB's speaker.
pub fn rolling(runs: &[rolling::Outcome; 2]) -> String {
    let mut text = String::from(
        "### The rolling update of the control plane (seed 000; the leaving benchmark's scene): \
         node1, owner of the VIP, drained, its etcd member removed, its Node deleted, powered \
         off\n\n\
         | | ours (drain on cordon, heartbeats, fencing) | MetalLB v0.16.2 speaker (memberlist) \
         | kube-vip v0.9.2 |\n|---|---|---|---|\n",
    );
    let not_run = "not run: the scene is MetalLB's objects and speakers";
    for (i, what) in rolling::ROWS.iter().enumerate() {
        text += &row(
            what,
            runs.iter()
                .map(|r| r.values[i].clone())
                .chain([not_run.to_owned()]),
        );
    }
    for (i, (step, _)) in runs[0].timeline.iter().enumerate() {
        text += &row(
            &format!("step: {step}, s after the drain"),
            runs.iter()
                .map(|r| format!("{:.2}", r.timeline[i].1))
                .chain([not_run.to_owned()]),
        );
    }
    for (run, name) in runs.iter().zip(["ours", "MetalLB"]) {
        text += &format!(
            "\nARP answers, {name} (s after the drain, who): {}\n",
            run.changes
        );
    }
    text + "\n"
}

fn command(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

/// The CPU model, core count and memory of this machine.
fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpu
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|rest| rest.trim_start_matches([' ', '\t', ':']).to_owned())
        .unwrap_or_default();
    let memory = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let total = memory
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|rest| rest.split_whitespace().next()?.parse::<f64>().ok())
        .map(|kib| kib / 1024.0 / 1024.0)
        .unwrap_or_default();
    format!(
        "{model}, {} cores, {total:.0} GiB, {}",
        command("nproc", &[]),
        command("uname", &["-sr"])
    )
}

/// `docs/benchmarks.md`: how the tables were made, then the tables.
pub fn document(tables: &str, peers: &str, took: Duration) -> String {
    let date = command("date", &["-u", "+%Y-%m-%d %H:%M UTC"]);
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let commit = command("git", &["-C", root, "rev-parse", "--short", "HEAD"]);
    let peers = peers
        .lines()
        .filter(|l| !l.starts_with("built"))
        .collect::<Vec<_>>()
        .join("; ");
    format!(
        "# Benchmarks beside MetalLB and kube-vip\n\n\
         Written by `cargo bench -p metallb-speaker --bench peers` ({date}; the run took \
         {:.1} min).\n\n\
         - Machine: {}\n\
         - Ours: metallb-rs {} at {commit}; peers: {peers}, built from the Go module proxy by \
         `tests/testenv/peers/build.sh`\n\
         - Setup: each system in a lab of its own (three node namespaces on one bridge, FRR as \
         the router, a client) with an API server of its own, one after the other in the same \
         run. Ours: `metallb-controller` (the benchmark's executable run again as it, a \
         process of its own) and `metallb-speaker` at their defaults (10 s node Lease, \
         heartbeats with a membership key) but `--drain-on-cordon`, SIGTERM without BGP \
         graceful shutdown. MetalLB: its \
         controller and speakers, native BGP, memberlist at its defaults. kube-vip: services \
         mode, ARP, one Lease (5 s, renew 3 s, retry 1 s); its route figures come from a second \
         kube-vip stack in BGP mode (every node announces every Service, no election; the \
         addresses on `lo`; GoBGP at the lab router's 3 s/9 s timers). The client sends an ARP request for \
         the address every 10 ms; each event acts on the node answering at that moment; one \
         sample per event. The protocol-only table and the rolling update run on stages of \
         their own (`speaker/benches/peers/protocol.rs`, `speaker/benches/leaving/rolling.rs`).\
         \n\n{tables}\n\
         Not measured yet: the peers on the local cluster.\n",
        took.as_secs_f64() / 60.0,
        machine(),
        env!("CARGO_PKG_VERSION"),
    )
}
