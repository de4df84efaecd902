//! The product as pods on real multi-node clusters (tests/testenv/cluster), installed from the
//! plain manifests as a user would, up to the lab's client reaching a LoadBalancer Service: every test has a cluster of its own, so they run in
//! parallel. Needs root and cgroup v1; builds the product and its image first.

use std::path::Path;
use std::time::{Duration, Instant};

use metallb_testenv::cluster::{
    Cluster, ClusterOptions, DEMO_REFERENCE, WORKSPACE_ROOT, cluster_bin_dir, demo_image,
    product_image, product_image_tagged,
};

const NODES: u8 = 3;
const NS: &str = "metallb-system";

/// Polls `check` every 500 ms until it returns `Ok` or `timeout` passes; panics with `what`
/// and the last error.
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

/// `kubectl -n metallb-system ARGS -o jsonpath=PATH`.
fn jsonpath(cluster: &Cluster, args: &[&str], path: &str) -> Result<String, String> {
    let output = format!("jsonpath={path}");
    let mut all = vec!["-n", NS];
    all.extend_from_slice(args);
    all.extend(["-o", &output]);
    cluster.kubectl(&all).map_err(|e| e.to_string())
}

fn kubectl(cluster: &Cluster, args: &[&str]) -> Result<String, String> {
    let mut all = vec!["-n", NS];
    all.extend_from_slice(args);
    cluster.kubectl(&all).map_err(|e| e.to_string())
}

/// A cluster with the product imported, installed from `manifests/crds` and
/// `manifests/install`, and the sample MetalLB resource Available.
fn installed(started: Instant) -> Cluster {
    let cluster = Cluster::up(ClusterOptions {
        nodes: NODES,
        ..ClusterOptions::default()
    })
    .unwrap();
    eprintln!("{}: up after {:?}", cluster.name(), started.elapsed());
    cluster.import(&product_image().unwrap()).unwrap();
    let (crds, install) = (manifest("manifests/crds"), manifest("manifests/install"));
    cluster
        .kubectl(["apply", "--server-side", "-f", &crds, "-f", &install])
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
    kubectl(
        &cluster,
        &[
            "rollout",
            "status",
            "deploy/metallb-operator",
            "--timeout=180s",
        ],
    )
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
    wait_available(&cluster);
    eprintln!(
        "{}: MetalLB Available after {:?}",
        cluster.name(),
        started.elapsed()
    );
    cluster
}

fn wait_available(cluster: &Cluster) {
    eventually("MetalLB Available=True", Duration::from_secs(180), || {
        let available = jsonpath(
            cluster,
            &["get", "metallb", "metallb"],
            "{.status.conditions[?(@.type==\"Available\")].status}",
        )?;
        if available == "True" {
            return Ok(());
        }
        // the conditions and the pods say why, should it never happen
        let conditions = jsonpath(
            cluster,
            &["get", "metallb", "metallb"],
            "{.status.conditions}",
        )?;
        let pods = kubectl(cluster, &["get", "pods", "-o", "wide"])?;
        Err(format!("{conditions}\n{pods}"))
    });
}

/// Applies a dual-stack address pool on the lab's segment with an L2Advertisement, and a
/// dual-stack LoadBalancer Service; returns its IPv4 address once it has both.
fn service_with_address(cluster: &Cluster) -> String {
    cluster
        .kubectl_stdin(
            ["apply", "-f", "-"],
            r#"
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: lab, namespace: metallb-system}
spec:
  addresses: [192.168.250.200-192.168.250.250, "fd00:250::200-fd00:250::250"]
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
  ipFamilyPolicy: RequireDualStack
  ipFamilies: [IPv4, IPv6]
  selector: {app: demo}
  ports: [{port: 80, targetPort: 8080}]
"#,
        )
        .unwrap();
    let address = eventually(
        "both addresses for the Service",
        Duration::from_secs(60),
        || {
            let ip = service_address(cluster)?;
            let ip6 = service_address6(cluster)?;
            if !ip.is_empty() && ip6.starts_with("fd00:250::2") {
                Ok(ip)
            } else {
                Err(format!("{ip:?} {ip6:?}"))
            }
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
    address
}

fn service_address(cluster: &Cluster) -> Result<String, String> {
    ingress(cluster, 0)
}

fn service_address6(cluster: &Cluster) -> Result<String, String> {
    ingress(cluster, 1)
}

fn ingress(cluster: &Cluster, index: usize) -> Result<String, String> {
    let path = format!("jsonpath={{.status.loadBalancer.ingress[{index}].ip}}");
    cluster
        .kubectl(["get", "service", "demo", "-o", &path])
        .map_err(|e| e.to_string())
}

/// The demo Deployment behind the Service, from the demo image.
fn demo(cluster: &Cluster) {
    cluster
        .import(&demo_image(&cluster_bin_dir().unwrap()).unwrap())
        .unwrap();
    let deployment = format!(
        r#"
apiVersion: apps/v1
kind: Deployment
metadata: {{name: demo, namespace: default}}
spec:
  replicas: 2
  selector: {{matchLabels: {{app: demo}}}}
  template:
    metadata: {{labels: {{app: demo}}}}
    spec:
      containers:
      - name: demo
        image: {DEMO_REFERENCE}
        imagePullPolicy: Never
        ports: [{{containerPort: 8080}}]
        env:
        - name: POD_NAME
          valueFrom: {{fieldRef: {{fieldPath: metadata.name}}}}
        - name: NODE_NAME
          valueFrom: {{fieldRef: {{fieldPath: spec.nodeName}}}}
"#
    );
    cluster
        .kubectl_stdin(["apply", "-f", "-"], &deployment)
        .unwrap();
    cluster
        .kubectl(["rollout", "status", "deployment/demo", "--timeout=120s"])
        .unwrap();
}

/// What the lab's client gets from `http://ADDRESS/`.
fn client_get(cluster: &Cluster, address: &str) -> Result<String, String> {
    let url = if address.contains(':') {
        format!("http://[{address}]/")
    } else {
        format!("http://{address}/")
    };
    let output = cluster
        .command("client", "curl")
        .args(["-sf", "-m", "2", &url])
        .output()
        .map_err(|e| e.to_string())?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(format!("curl {url}: {}", output.status))
    }
}

/// Waits until `workload` (e.g. `daemonset/speaker`) has rolled out its current template.
fn rolled_out(cluster: &Cluster, workload: &str) {
    kubectl(cluster, &["rollout", "status", workload, "--timeout=180s"])
        .unwrap_or_else(|e| panic!("{workload} did not roll out: {e}"));
}

#[test]
fn the_product_runs_as_pods_and_assigns_a_service_address() {
    let started = Instant::now();
    let cluster = installed(started);
    let ready = jsonpath(
        &cluster,
        &["get", "daemonset", "speaker"],
        "{.status.numberReady}",
    );
    assert_eq!(ready.unwrap(), NODES.to_string(), "a speaker on every node");
    let controller = jsonpath(
        &cluster,
        &["get", "deployment", "controller"],
        "{.status.readyReplicas}",
    );
    assert_eq!(controller.unwrap(), "1");

    // Every speaker keeps its node's Lease; logs and exec reach the speaker pods.
    for node in 1..=NODES {
        let lease = format!("metallb-speaker-node{node}");
        eventually(&lease, Duration::from_secs(30), || {
            kubectl(&cluster, &["get", "lease", &lease])
        });
    }
    let logs = kubectl(&cluster, &["logs", "daemonset/speaker"]).unwrap();
    assert!(logs.contains("node Lease"), "speaker logs: {logs}");
    kubectl(
        &cluster,
        &[
            "exec",
            "daemonset/speaker",
            "--",
            "metallb-speaker",
            "show",
            "bgp",
        ],
    )
    .unwrap();

    let refused = kubectl(
        &cluster,
        &[
            "patch",
            "metallb",
            "metallb",
            "--type=merge",
            "-p",
            r#"{"spec":{"bgpBackend":"frr"}}"#,
        ],
    )
    .unwrap_err();
    assert!(refused.contains("denied the request"), "{refused}");

    let address = service_with_address(&cluster);
    eprintln!("Service address {address} after {:?}", started.elapsed());

    // The client on the nodes' segment reaches the demo by both addresses (layer 2).
    demo(&cluster);
    let address6 = service_address6(&cluster).unwrap();
    for ip in [&address, &address6] {
        let answer = eventually(&format!("HTTP from {ip}"), Duration::from_secs(60), || {
            client_get(&cluster, ip)
        });
        assert!(answer.starts_with("hello from demo-"), "{answer}");
    }
    eprintln!(
        "the client reached both addresses after {:?}",
        started.elapsed()
    );
    cluster.down().unwrap();
    eprintln!("torn down after {:?}", started.elapsed());
}

/// Drift repair, a changed MetalLB rolling the DaemonSet, an image upgrade rolling controller
/// and speakers while the Service keeps its address, garbage collection of the operands when
/// the MetalLB goes, and an uninstall that leaves no metallb.io object behind.
#[test]
fn the_operator_repairs_rolls_upgrades_and_uninstalls() {
    let started = Instant::now();
    let cluster = installed(started);
    let address = service_with_address(&cluster);

    // Drift: the controller Deployment deleted by hand comes back.
    kubectl(
        &cluster,
        &["delete", "deployment", "controller", "--wait=true"],
    )
    .unwrap();
    eventually(
        "the controller Deployment repaired",
        Duration::from_secs(60),
        || {
            let ready = jsonpath(
                &cluster,
                &["get", "deployment", "controller"],
                "{.status.readyReplicas}",
            )?;
            (ready == "1").then_some(()).ok_or(ready)
        },
    );
    eprintln!("drift repaired after {:?}", started.elapsed());

    // A changed MetalLB rolls the DaemonSet with the new arguments.
    kubectl(
        &cluster,
        &[
            "patch",
            "metallb",
            "metallb",
            "--type=merge",
            "-p",
            r#"{"spec":{"logLevel":"debug"}}"#,
        ],
    )
    .unwrap();
    eventually(
        "the speaker template at debug",
        Duration::from_secs(60),
        || {
            let args = jsonpath(
                &cluster,
                &["get", "daemonset", "speaker"],
                "{.spec.template.spec.containers[0].args}",
            )?;
            args.contains("--log-level=debug").then_some(()).ok_or(args)
        },
    );
    rolled_out(&cluster, "daemonset/speaker");
    eprintln!(
        "speakers rolled for the new log level after {:?}",
        started.elapsed()
    );

    // An upgrade: the operator is told of a new operand image; controller and speakers roll
    // to it, and the Service keeps its address all along.
    let upgrade = "quay.io/metallb-rs/metallb-rs:e2e-upgrade";
    cluster
        .import(&product_image_tagged(upgrade).unwrap())
        .unwrap();
    let operand_image = format!("OPERAND_IMAGE={upgrade}");
    kubectl(
        &cluster,
        &["set", "env", "deployment/metallb-operator", &operand_image],
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(240);
    loop {
        assert_eq!(
            service_address(&cluster).unwrap(),
            address,
            "the Service lost its address during the upgrade"
        );
        let images = [
            jsonpath(
                &cluster,
                &["get", "deployment", "controller"],
                "{.spec.template.spec.containers[0].image}",
            ),
            jsonpath(
                &cluster,
                &["get", "daemonset", "speaker"],
                "{.spec.template.spec.containers[0].image}",
            ),
        ];
        let updated = [
            jsonpath(
                &cluster,
                &["get", "deployment", "controller"],
                "{.status.updatedReplicas}/{.status.readyReplicas}/{.status.replicas}",
            ),
            jsonpath(
                &cluster,
                &["get", "daemonset", "speaker"],
                "{.status.updatedNumberScheduled}/{.status.numberReady}/{.status.desiredNumberScheduled}",
            ),
        ];
        let done = images.iter().all(|i| i.as_deref() == Ok(upgrade))
            && updated[0].as_deref() == Ok("1/1/1")
            && updated[1].as_deref() == Ok(&*format!("{NODES}/{NODES}/{NODES}"));
        if done {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the operands did not roll to {upgrade}: {images:?} {updated:?}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    eprintln!("upgraded after {:?}", started.elapsed());

    // Deleting the MetalLB removes the operands.
    kubectl(&cluster, &["delete", "metallb", "metallb", "--wait=true"]).unwrap();
    eventually("the operands gone", Duration::from_secs(120), || {
        let left = kubectl(&cluster, &["get", "deployment,daemonset", "-o", "name"])?;
        let operands: Vec<_> = left
            .lines()
            .filter(|l| l.ends_with("/controller") || l.ends_with("/speaker"))
            .collect();
        operands.is_empty().then_some(()).ok_or(left)
    });
    eprintln!("operands collected after {:?}", started.elapsed());

    // Uninstall: the configuration, the plain install and the CRDs; no metallb.io kind or
    // object is left.
    kubectl(
        &cluster,
        &[
            "delete",
            "ipaddresspool,l2advertisement",
            "--all",
            "--wait=true",
        ],
    )
    .unwrap();
    let (crds, install) = (manifest("manifests/crds"), manifest("manifests/install"));
    cluster
        .kubectl(["delete", "--wait=true", "-f", &install, "-f", &crds])
        .unwrap();
    eventually("no metallb.io API left", Duration::from_secs(120), || {
        let kinds = cluster
            .kubectl(["api-resources", "--api-group=metallb.io", "-o", "name"])
            .map_err(|e| e.to_string())?;
        let crds = cluster
            .kubectl(["get", "crd", "-o", "name"])
            .map_err(|e| e.to_string())?;
        let left: Vec<_> = crds
            .lines()
            .filter(|l| l.ends_with(".metallb.io"))
            .collect();
        (kinds.trim().is_empty() && left.is_empty())
            .then_some(())
            .ok_or(format!("{kinds}{left:?}"))
    });
    eprintln!("uninstalled after {:?}", started.elapsed());
    cluster.down().unwrap();
}
