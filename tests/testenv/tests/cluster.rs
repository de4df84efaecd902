//! The product as pods on a real multi-node cluster (tests/testenv/cluster): installed from the
//! plain manifests, the sample MetalLB resource brings up the controller and a speaker on every
//! node, the webhook answers through its Service, and a LoadBalancer Service gets an address
//! from an IPAddressPool. Needs root and cgroup v1; builds the product and its image first.

use std::path::Path;
use std::time::{Duration, Instant};

use metallb_testenv::cluster::{Cluster, ClusterOptions, WORKSPACE_ROOT, product_image};

const NODES: u8 = 3;
const NS: [&str; 2] = ["-n", "metallb-system"];

/// Polls `check` every 500 ms until it returns `Some` or `timeout` passes; panics with `what`
/// and the last answer.
fn eventually<T>(what: &str, timeout: Duration, mut check: impl FnMut() -> Result<T, String>) -> T {
    let mut last = String::new();
    metallb_testenv::wait_for(timeout, Duration::from_millis(500), || {
        check().map_err(|e| last = e).ok()
    })
    .unwrap_or_else(|| panic!("{what} not within {timeout:?}; last: {last}"))
}

fn manifest(path: &str) -> String {
    Path::new(WORKSPACE_ROOT).join(path).display().to_string()
}

fn jsonpath(cluster: &Cluster, args: &[&str], path: &str) -> Result<String, String> {
    let mut all: Vec<&str> = args.to_vec();
    let output = format!("jsonpath={path}");
    all.extend(["-o", &output]);
    cluster.kubectl(&all).map_err(|e| e.to_string())
}

#[test]
fn the_product_runs_as_pods_and_assigns_a_service_address() {
    let started = Instant::now();
    let cluster = Cluster::up(ClusterOptions {
        nodes: NODES,
        ..ClusterOptions::default()
    })
    .unwrap();
    eprintln!("cluster up after {:?}", started.elapsed());
    cluster.import(&product_image().unwrap()).unwrap();
    eprintln!("product image imported after {:?}", started.elapsed());

    // The users' path: CRDs and the plain install, then the operator's Deployment rolls out.
    cluster
        .kubectl([
            "apply",
            "--server-side",
            "-f",
            &manifest("manifests/crds"),
            "-f",
            &manifest("manifests/install"),
        ])
        .unwrap();
    cluster
        .kubectl([
            "wait",
            "--for=condition=Established",
            "crd",
            "--all",
            "--timeout=60s",
        ])
        .unwrap();
    cluster
        .kubectl([
            NS[0],
            NS[1],
            "rollout",
            "status",
            "deploy/metallb-operator",
            "--timeout=180s",
        ])
        .unwrap();

    // The MetalLB resource goes through the operator's webhook, reached through its Service.
    let sample = manifest("manifests/samples/metallb.yaml");
    eventually(
        "the sample MetalLB accepted",
        Duration::from_secs(60),
        || {
            cluster
                .kubectl(["apply", "-f", &sample])
                .map_err(|e| e.to_string())
        },
    );
    eventually("MetalLB Available=True", Duration::from_secs(180), || {
        let available = jsonpath(
            &cluster,
            &[NS[0], NS[1], "get", "metallb", "metallb"],
            "{.status.conditions[?(@.type==\"Available\")].status}",
        )?;
        if available == "True" {
            return Ok(());
        }
        // the conditions and the pods say why, should it never happen
        let conditions = jsonpath(
            &cluster,
            &[NS[0], NS[1], "get", "metallb", "metallb"],
            "{.status.conditions}",
        )?;
        let pods = cluster
            .kubectl([NS[0], NS[1], "get", "pods", "-o", "wide"])
            .map_err(|e| e.to_string())?;
        Err(format!("{conditions}\n{pods}"))
    });
    let ready = jsonpath(
        &cluster,
        &[NS[0], NS[1], "get", "daemonset", "speaker"],
        "{.status.numberReady}",
    )
    .unwrap();
    assert_eq!(ready, NODES.to_string(), "a speaker on every node");
    let controller = jsonpath(
        &cluster,
        &[NS[0], NS[1], "get", "deployment", "controller"],
        "{.status.readyReplicas}",
    )
    .unwrap();
    assert_eq!(controller, "1");
    eprintln!("MetalLB Available after {:?}", started.elapsed());

    // Every speaker keeps its node's Lease.
    for node in 1..=NODES {
        let lease = format!("metallb-speaker-node{node}");
        eventually(&lease, Duration::from_secs(30), || {
            cluster
                .kubectl([NS[0], NS[1], "get", "lease", &lease])
                .map_err(|e| e.to_string())
        });
    }
    let logs = cluster
        .kubectl([NS[0], NS[1], "logs", "daemonset/speaker"])
        .unwrap();
    assert!(logs.contains("node Lease"), "speaker logs: {logs}");

    let refused = cluster
        .kubectl([
            NS[0],
            NS[1],
            "patch",
            "metallb",
            "metallb",
            "--type=merge",
            "-p",
            r#"{"spec":{"bgpBackend":"frr"}}"#,
        ])
        .unwrap_err()
        .to_string();
    assert!(refused.contains("denied the request"), "{refused}");

    // A pool on the lab's segment, and a LoadBalancer Service that takes an address from it.
    cluster
        .kubectl_stdin(
            ["apply", "-f", "-"],
            r#"
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: lab, namespace: metallb-system}
spec:
  addresses: [192.168.250.200-192.168.250.250]
---
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: {name: lab, namespace: metallb-system}
spec:
  ipAddressPools: [lab]
---
apiVersion: v1
kind: Service
metadata: {name: demo, namespace: default}
spec:
  type: LoadBalancer
  selector: {app: demo}
  ports: [{port: 80, targetPort: 8080}]
"#,
        )
        .unwrap();
    let address = eventually(
        "an address for the Service",
        Duration::from_secs(60),
        || {
            let ip = jsonpath(
                &cluster,
                &["get", "service", "demo"],
                "{.status.loadBalancer.ingress[0].ip}",
            )?;
            (!ip.is_empty())
                .then_some(ip)
                .ok_or_else(|| "none yet".to_owned())
        },
    );
    let last: u8 = address
        .strip_prefix("192.168.250.")
        .and_then(|l| l.parse().ok())
        .unwrap_or_else(|| panic!("{address} is not from the pool"));
    assert!(
        (200..=250).contains(&last),
        "{address} is not from the pool"
    );
    eprintln!("Service address {address} after {:?}", started.elapsed());

    cluster.down().unwrap();
    eprintln!("torn down after {:?}", started.elapsed());
}
