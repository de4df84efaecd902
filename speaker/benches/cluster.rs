//! The speaker on the cluster, measured end to end in one run and printed as tables:
//!
//!   cargo bench -p metallb-speaker --bench cluster
//!
//! Three lab nodes run speakers against the real API server; the real controller (in process)
//! assigns the addresses; FRR is the router and the lab client sends ARP requests.
//!
//! - Service created (one API call, its EndpointSlice already there) -> route at FRR and ->
//!   ARP answer at the client, over 100 Services: p50, p99, max;
//! - each speaker's memory with 10,000 LoadBalancer Services announced (layer 2 and BGP);
//! - the API requests one speaker makes per second at idle (the API server's own request
//!   counters, with and without the speakers running).

#[path = "../tests/common/mod.rs"]
mod common;

use std::io::{BufRead, BufReader};
use std::net::Ipv4Addr;
use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::cluster::{ClusterLab, NODES, api_requests, create, lab_peers, memory_kib};
use common::wait_for;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Api;
use kube::api::PostParams;
use metallb_controller::Settings;
use metallb_runtime::consts::CONTROLLER_LEASE;
use metallb_runtime::lease::LeaseTiming;
use metallb_testenv::ControlPlane;
use metallb_testenv::lab::{Host, Lab};

const LATENCY_SERVICES: usize = 100;
const MANY: usize = 10_000;
const IDLE: Duration = Duration::from_secs(30);

/// Sends an ARP request for argv[1] every 2 ms from the client's eth0 until a reply comes,
/// then prints the reply's wall-clock time; exit 1 after argv[2] seconds.
const PROBER: &str = r#"
import socket, struct, sys, time
ip, src = socket.inet_aton(sys.argv[1]), socket.inet_aton(sys.argv[3])
deadline = time.time() + float(sys.argv[2])
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0806))
s.bind(("eth0", 0))
mac = s.getsockname()[4]
frame = b"\xff" * 6 + mac + b"\x08\x06" + struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1) + mac + src + b"\x00" * 6 + ip
s.setblocking(False)
print("ready", flush=True)
while time.time() < deadline:
    s.send(frame)
    end = time.time() + 0.002
    while time.time() < end:
        try:
            data = s.recv(128)
        except BlockingIOError:
            time.sleep(0.0002)
            continue
        if data[12:14] == b"\x08\x06" and data[20:22] == b"\x00\x02" and data[28:32] == ip:
            print("%.6f" % time.time(), flush=True)
            sys.exit(0)
sys.exit(1)
"#;

fn ip(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(172, 20, (i / 256) as u8, (i % 256) as u8)
}

fn objects(ns: &str) -> String {
    format!(
        r#"
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {{name: bench, namespace: {ns}}}
spec: {{addresses: [172.20.0.0/16], autoAssign: false}}
---
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: {{name: l2, namespace: {ns}}}
spec: {{}}
---
apiVersion: metallb.io/v1beta1
kind: BGPAdvertisement
metadata: {{name: bgp, namespace: {ns}}}
spec: {{}}
"#
    )
}

fn service(ns: &str, i: usize) -> (Service, EndpointSlice) {
    let name = format!("svc-{i}");
    let service = serde_json::json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": ns,
            "annotations": {"metallb.io/loadBalancerIPs": ip(i).to_string()}},
        // 10,000 Services would exhaust the NodePort range; MetalLB needs none.
        "spec": {"type": "LoadBalancer", "allocateLoadBalancerNodePorts": false,
            "ports": [{"port": 80}]},
    });
    let slice = serde_json::json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": format!("{name}-1"), "namespace": ns,
            "labels": {"kubernetes.io/service-name": name}},
        "addressType": "IPv4", "ports": [{"port": 80}],
        "endpoints": [{"addresses": ["10.2.0.1"], "nodeName": "node1", "conditions": {"ready": true}}],
    });
    (
        serde_json::from_value(service).unwrap(),
        serde_json::from_value(slice).unwrap(),
    )
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn row(what: &str, mut samples: Vec<Duration>) -> String {
    samples.sort();
    if samples.is_empty() {
        return format!("| {what} | no sample |\n");
    }
    let ms = |d: Duration| format!("{:.1} ms", d.as_secs_f64() * 1000.0);
    format!(
        "| {what} | p50 {}, p99 {}, max {} (n={}) |\n",
        ms(percentile(&samples, 0.5)),
        ms(percentile(&samples, 0.99)),
        ms(samples[samples.len() - 1]),
        samples.len()
    )
}

/// A row per speaker: its memory now, `when`.
fn memory(cluster: &ClusterLab, when: &str) -> String {
    let mut rows = String::new();
    for (index, host) in NODES.iter().enumerate() {
        let (rss, peak) = cluster.pid(index).map(memory_kib).unwrap_or_default();
        rows.push_str(&format!(
            "| speaker memory, {when}, {} (RSS / peak) | {rss} / {peak} KiB |\n",
            host.name(),
        ));
    }
    rows
}

fn main() {
    let cp = ControlPlane::shared();
    cp.install_crds().unwrap();
    let ns = cp.namespace("cluster-bench").unwrap();
    let namespace = ns.name().to_owned();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let client = runtime.block_on(cp.client()).unwrap();
    let mut out = String::from("| measure | result |\n|---|---|\n");

    // The API server's idle request rate without speakers, as the baseline.
    let before = api_requests(cp);
    std::thread::sleep(IDLE);
    let baseline = (api_requests(cp) - before - 1.0) / IDLE.as_secs_f64();

    let mut cluster = ClusterLab::up(cp, "");
    let objects = format!("{}---\n{}", objects(&namespace), lab_peers(&namespace));
    cp.kubectl_with_input(["apply", "-f", "-"], &objects)
        .unwrap();
    cluster.start_all(
        &namespace,
        &["--fencing-lease-duration=10s", "--log-level=info"],
    );
    let ready = wait_for(Duration::from_secs(40), Duration::from_millis(200), || {
        (0..3)
            .all(|i| {
                cluster
                    .metrics(i)
                    .contains("metallb_k8s_client_config_loaded_bool 1")
            })
            .then_some(())
    });
    assert!(ready.is_some(), "speakers not ready\n{}", cluster.logs());

    // API load at idle: three speakers, nothing else running.
    std::thread::sleep(Duration::from_secs(5));
    out.push_str(&memory(&cluster, "idle, no Service"));
    let before = api_requests(cp);
    std::thread::sleep(IDLE);
    let with_speakers = (api_requests(cp) - before - 1.0) / IDLE.as_secs_f64();
    let per_speaker = (with_speakers - baseline).max(0.0) / 3.0;
    out.push_str(&format!(
        "| API requests per speaker at idle (10 s node Lease) | {per_speaker:.2} /s (server total {with_speakers:.2} /s, {baseline:.2} /s without speakers) |\n"
    ));

    let settings = Settings {
        namespace: namespace.clone(),
        lb_class: None,
        identity: "bench-controller".into(),
        lease_name: CONTROLLER_LEASE.into(),
        lease_timing: LeaseTiming::default(),
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let controller = runtime.spawn(metallb_controller::run(
        client.clone(),
        settings,
        None,
        async move {
            let _ = stopped.await;
        },
    ));
    let services: Api<Service> = Api::namespaced(client.clone(), &namespace);
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), &namespace);
    let (client_ip, _) = Lab::address(Host::Client);

    let mut to_route = Vec::new();
    let mut to_arp = Vec::new();
    for i in 0..LATENCY_SERVICES {
        let (service, slice) = service(&namespace, i);
        runtime
            .block_on(slices.create(&PostParams::default(), &slice))
            .unwrap();
        let mut prober = cluster
            .lab
            .command(Host::Client, "python3")
            .args([
                "-c",
                PROBER,
                &ip(i).to_string(),
                "10",
                &client_ip.to_string(),
            ])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(prober.stdout.take().unwrap()).lines();
        assert_eq!(lines.next().unwrap().unwrap(), "ready");
        let wall = SystemTime::now();
        let started = Instant::now();
        runtime
            .block_on(services.create(&PostParams::default(), &service))
            .unwrap();
        let prefix = format!("{}/32", ip(i));
        let routed = wait_for(Duration::from_secs(10), Duration::from_millis(1), || {
            cluster
                .lab
                .bgp_route(&prefix)
                .unwrap()
                .map(|_| started.elapsed())
        });
        to_route.extend(routed);
        if let Some(Ok(line)) = lines.next() {
            let answered: f64 = line.trim().parse().unwrap();
            let t0 = wall.duration_since(UNIX_EPOCH).unwrap().as_secs_f64();
            to_arp.push(Duration::from_secs_f64((answered - t0).max(0.0)));
        }
        let _ = prober.wait();
    }
    out.push_str(&row(
        "Service created -> route at FRR (BGP table)",
        to_route,
    ));
    out.push_str(&row("Service created -> ARP answer at the client", to_arp));
    // Printed as it goes: the 10,000-Service part takes minutes.
    println!("{out}");
    out.clear();

    // 10,000 Services, announced by every node over BGP and by their owners in layer 2.
    let started = Instant::now();
    runtime.block_on(async {
        use futures::stream::{self, StreamExt};
        stream::iter(LATENCY_SERVICES..MANY)
            .for_each_concurrent(16, |i| {
                let (services, slices, namespace) =
                    (services.clone(), slices.clone(), namespace.clone());
                async move {
                    let (service, slice) = service(&namespace, i);
                    create(&slices, &slice).await;
                    create(&services, &service).await;
                }
            })
            .await;
    });
    let last = format!("{}/32", ip(MANY - 1));
    let all = wait_for(Duration::from_secs(600), Duration::from_millis(500), || {
        let route = cluster.lab.bgp_route(&last).unwrap()?;
        (route["paths"].as_array()?.len() == 3).then_some(())
    });
    assert!(
        all.is_some(),
        "the last route never came\n{}",
        cluster.logs()
    );
    let created = started.elapsed();
    std::thread::sleep(Duration::from_secs(5));
    out.push_str(&memory(&cluster, &format!("{MANY} Services")));
    out.push_str(&format!(
        "| {MANY} Services created (API) -> the last one's route from all 3 nodes at FRR | {:.1} s |\n",
        created.as_secs_f64()
    ));
    stop.send(()).unwrap();
    let _ = runtime.block_on(controller);
    drop(cluster);
    println!("{out}");
}
