//! must-gather on the local cluster (tests/testenv/cluster): the product installed from the
//! plain manifests, BGP sessions up with the lab's FRR, then `metallb-gather` from this
//! machine (the user's kubeconfig), `/usr/bin/gather` from the product image as a pod, and
//! the must-gather image in the pod `oc adm must-gather` creates (a `/bin/bash -c` gather
//! container with a disk watchdog, a sleeping copy container the tree is copied out of with
//! tar). The tree holds the objects, the logs and each speaker's `show` output with its
//! session Established, and no secret value. Needs root and cgroup v1; builds the product.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use metallb_image::{MUST_GATHER_REFERENCE, PRODUCT_REFERENCE};
use metallb_testenv::cluster::{Cluster, ClusterOptions, WORKSPACE_ROOT, product_image};
use serde_json::Value;

const NS: &str = "metallb-system";
const INLINE_PASSWORD: &str = "inline-bgp-password-7391";
const SECRET_PASSWORD: &str = "secret-bgp-password-7391";

fn eventually<T>(what: &str, timeout: Duration, mut check: impl FnMut() -> Result<T, String>) -> T {
    let mut last = String::new();
    metallb_testenv::wait_for(timeout, Duration::from_millis(500), || {
        check().map_err(|e| last = e).ok()
    })
    .unwrap_or_else(|| panic!("{what} not within {timeout:?}; last: {last}"))
}

fn kubectl(cluster: &Cluster, args: &[&str]) -> Result<String, String> {
    cluster.kubectl(args).map_err(|e| e.to_string())
}

fn manifest(path: &str) -> String {
    Path::new(WORKSPACE_ROOT).join(path).display().to_string()
}

/// The product from `manifests/`, the sample MetalLB Available.
fn install(cluster: &Cluster) {
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
    kubectl(
        cluster,
        &[
            "-n",
            NS,
            "rollout",
            "status",
            "deploy/metallb-operator",
            "--timeout=180s",
        ],
    )
    .unwrap();
    let sample = manifest("manifests/samples/metallb.yaml");
    eventually(
        "the sample MetalLB accepted",
        Duration::from_secs(60),
        || kubectl(cluster, &["apply", "-f", &sample]),
    );
    eventually("MetalLB Available", Duration::from_secs(180), || {
        let path = r#"jsonpath={.status.conditions[?(@.type=="Available")].status}"#;
        let status = kubectl(
            cluster,
            &["-n", NS, "get", "metallb", "metallb", "-o", path],
        )?;
        (status == "True").then_some(()).ok_or(status)
    });
}

/// The lab router as it expects the nodes (eBGP from node1 and node2, iBGP from node3), and
/// two peers nobody answers whose passwords must not reach the tree: one inline, one from a
/// Secret; they select the eBGP nodes, since a node has one local ASN.
fn peers() -> String {
    let peer = |name: &str, my_asn: u32, nodes: &str| {
        format!(
            "apiVersion: metallb.io/v1beta2\nkind: BGPPeer\nmetadata: {{name: {name}, namespace: {NS}}}\n\
             spec:\n  myASN: {my_asn}\n  peerASN: 64512\n  peerAddress: 192.168.250.1\n  holdTime: 9s\n  \
             nodeSelectors:\n    - matchExpressions: [{{key: kubernetes.io/hostname, operator: In, values: [{nodes}]}}]\n---\n"
        )
    };
    format!(
        "{}{}\
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {{name: silent-inline, namespace: {NS}}}
spec:
  myASN: 64500
  peerASN: 64512
  peerAddress: 192.168.250.98
  password: {INLINE_PASSWORD}
  nodeSelectors: [{{matchLabels: {{kubernetes.io/hostname: node1}}}}]
---
apiVersion: v1
kind: Secret
metadata: {{name: bgp-auth, namespace: {NS}}}
type: kubernetes.io/basic-auth
stringData: {{password: {SECRET_PASSWORD}}}
---
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {{name: silent-secret, namespace: {NS}}}
spec:
  myASN: 64500
  peerASN: 64512
  peerAddress: 192.168.250.99
  passwordSecret: {{name: bgp-auth}}
  nodeSelectors: [{{matchLabels: {{kubernetes.io/hostname: node2}}}}]
",
        peer("ebgp", 64500, "node1, node2"),
        peer("ibgp", 64512, "node3")
    )
}

/// Established BGP sessions as the lab's FRR counts them.
fn frr_established(cluster: &Cluster) -> Result<usize, String> {
    let output = cluster
        .command("router", "vtysh")
        .args(["-N", cluster.name(), "-c", "show bgp ipv4 summary json"])
        .output()
        .map_err(|e| e.to_string())?;
    let summary: Value = serde_json::from_slice(&output.stdout).map_err(|e| e.to_string())?;
    let peers = summary["ipv4Unicast"]["peers"]
        .as_object()
        .ok_or(summary.to_string())?;
    Ok(peers
        .values()
        .filter(|p| p["state"] == "Established")
        .count())
}

/// Every file under `dir`: relative path and bytes.
fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(at) = stack.pop() {
        for entry in std::fs::read_dir(&at).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let relative = path.strip_prefix(dir).unwrap().display().to_string();
                out.push((relative, std::fs::read(&path).unwrap()));
            }
        }
    }
    out.sort();
    out
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// `/usr/bin/gather` of the product image in a pod with cluster-admin, as `oc adm
/// must-gather` runs it; its output (the summary line) once it has succeeded.
fn gather_in_a_pod(cluster: &Cluster) -> String {
    let pod = format!(
        r#"
apiVersion: v1
kind: Namespace
metadata: {{name: must-gather}}
---
apiVersion: v1
kind: ServiceAccount
metadata: {{name: gather, namespace: must-gather}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {{name: must-gather-test}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: cluster-admin}}
subjects: [{{kind: ServiceAccount, name: gather, namespace: must-gather}}]
---
apiVersion: v1
kind: Pod
metadata: {{name: gather, namespace: must-gather}}
spec:
  serviceAccountName: gather
  restartPolicy: Never
  containers:
  - name: gather
    image: {PRODUCT_REFERENCE}
    imagePullPolicy: Never
    command: [/usr/bin/gather]
    volumeMounts: [{{name: out, mountPath: /must-gather}}]
  volumes: [{{name: out, emptyDir: {{}}}}]
"#
    );
    cluster.kubectl_stdin(["apply", "-f", "-"], &pod).unwrap();
    eventually("the gather pod Succeeded", Duration::from_secs(180), || {
        let phase = kubectl(
            cluster,
            &[
                "-n",
                "must-gather",
                "get",
                "pod",
                "gather",
                "-o",
                "jsonpath={.status.phase}",
            ],
        )?;
        match phase.as_str() {
            "Succeeded" => Ok(()),
            "Failed" => panic!(
                "the gather pod failed: {:?}",
                kubectl(cluster, &["-n", "must-gather", "logs", "gather"])
            ),
            other => Err(other.to_owned()),
        }
    });
    kubectl(cluster, &["-n", "must-gather", "logs", "gather"]).unwrap()
}

/// The must-gather image in a pod shaped like the one `oc adm must-gather --image=...` makes:
/// the gather container runs `/usr/bin/gather` under `/bin/bash -c` next to a disk-usage
/// watchdog, then `sync`; the copy container sleeps in bash; the tree is copied out of the
/// copy container with `kubectl cp` (tar in the image, as `oc rsync` falls back to).
fn oc_must_gather(cluster: &Cluster, dest: &Path) {
    let image = dest.join("must-gather.tar");
    let tools = metallb_image::must_gather_tools().unwrap();
    let gather = Path::new(env!("CARGO_BIN_EXE_metallb-gather"));
    metallb_image::must_gather(MUST_GATHER_REFERENCE, gather, &tools)
        .unwrap()
        .write(&image)
        .unwrap();
    cluster.import(&image).unwrap();
    std::fs::remove_file(&image).unwrap();
    let watchdog = "(while true; do used=$(df -P /must-gather | awk 'NR==2 {print $5}' | sed 's/%//'); \
        echo \"[disk usage checker] $used%\"; if [ \"$used\" -gt 95 ]; then kill 0; fi; sleep 5; done) & \
        /usr/bin/gather; status=$?; sync; exit $status";
    let pod = format!(
        r#"
apiVersion: v1
kind: Pod
metadata: {{name: oc-shaped, namespace: must-gather}}
spec:
  serviceAccountName: gather
  restartPolicy: Never
  terminationGracePeriodSeconds: 0
  containers:
  - name: gather
    image: {MUST_GATHER_REFERENCE}
    imagePullPolicy: Never
    command: [/bin/bash, -c, {watchdog:?}]
    volumeMounts: [{{name: out, mountPath: /must-gather}}]
  - name: copy
    image: {MUST_GATHER_REFERENCE}
    imagePullPolicy: Never
    command: [/bin/bash, -c, "trap : TERM INT; sleep infinity & wait"]
    volumeMounts: [{{name: out, mountPath: /must-gather}}]
  volumes: [{{name: out, emptyDir: {{}}}}]
"#
    );
    cluster.kubectl_stdin(["apply", "-f", "-"], &pod).unwrap();
    let terminated =
        r#"jsonpath={.status.containerStatuses[?(@.name=="gather")].state.terminated.exitCode}"#;
    let code = eventually(
        "the oc-shaped gather finished",
        Duration::from_secs(180),
        || {
            let code = kubectl(
                cluster,
                &[
                    "-n",
                    "must-gather",
                    "get",
                    "pod",
                    "oc-shaped",
                    "-o",
                    terminated,
                ],
            )?;
            (!code.is_empty())
                .then_some(code)
                .ok_or_else(|| "running".to_owned())
        },
    );
    let logs = kubectl(
        cluster,
        &["-n", "must-gather", "logs", "oc-shaped", "-c", "gather"],
    );
    assert_eq!(code, "0", "{logs:?}");
    let source = "must-gather/oc-shaped:/must-gather";
    let target = dest.display().to_string();
    kubectl(cluster, &["cp", "-c", "copy", source, &target]).unwrap();
}

#[test]
fn must_gather_collects_objects_logs_and_established_sessions_and_no_secret() {
    let started = Instant::now();
    let cluster = Cluster::up(ClusterOptions::default()).unwrap();
    install(&cluster);
    eprintln!("installed after {:?}", started.elapsed());
    cluster
        .kubectl_stdin(["apply", "-f", "-"], &peers())
        .unwrap();
    eventually(
        "three sessions Established at FRR",
        Duration::from_secs(120),
        || {
            let n = frr_established(&cluster)?;
            (n == 3).then_some(()).ok_or(format!("{n} established"))
        },
    );
    eprintln!("sessions up after {:?}", started.elapsed());
    let key_base64 = kubectl(
        &cluster,
        &[
            "-n",
            NS,
            "get",
            "secret",
            "metallb-memberlist",
            "-o",
            "jsonpath={.data.secretkey}",
        ],
    )
    .unwrap();
    let key = STANDARD.decode(key_base64.trim()).unwrap();
    assert!(key.len() >= 16, "a membership key: {key_base64}");

    // From this machine, with the admin kubeconfig.
    let dest = tempfile::tempdir().unwrap();
    let gather_started = Instant::now();
    let output = Command::new(env!("CARGO_BIN_EXE_metallb-gather"))
        .arg("--dest-dir")
        .arg(dest.path())
        .arg("--kubeconfig")
        .arg(cluster.kubeconfig_path())
        .output()
        .unwrap();
    let took = gather_started.elapsed();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let tree = files(dest.path());
    let bytes: usize = tree.iter().map(|(_, b)| b.len()).sum();
    eprintln!(
        "gather took {took:?}: {} files, {bytes} bytes; {stdout}",
        tree.len()
    );

    let find = |path: &str| {
        tree.iter()
            .find(|(p, _)| p == path)
            .map(|(_, b)| String::from_utf8_lossy(b).into_owned())
            .unwrap_or_else(|| {
                let names: Vec<&str> = tree.iter().map(|(p, _)| p.as_str()).collect();
                panic!("{path} missing from {names:#?}")
            })
    };
    let summary: Value = serde_json::from_str(&find("gather.json")).unwrap();
    assert_eq!(summary["namespace"], NS, "found from the MetalLB resource");
    assert_eq!(summary["errors"], serde_json::json!([]), "{summary:#}");
    let peers = find(&format!("namespaces/{NS}/metallb.io/bgppeers.yaml"));
    for name in ["ebgp", "ibgp", "silent-inline", "silent-secret"] {
        assert!(peers.contains(&format!("name: {name}")), "{peers}");
    }
    assert!(find(&format!("namespaces/{NS}/metallb.io/metallbs.yaml")).contains("name: metallb"));
    for list in [
        "core/pods",
        "core/services",
        "core/configmaps",
        "core/events",
        "core/secrets",
        "apps/deployments",
        "apps/daemonsets",
        "coordination.k8s.io/leases",
    ] {
        find(&format!("namespaces/{NS}/{list}.yaml"));
    }
    assert!(find(&format!("namespaces/{NS}/core/secrets.yaml")).contains("metallb-memberlist"));
    for node in ["node1", "node2", "node3"] {
        find(&format!("cluster-scoped-resources/core/nodes/{node}.yaml"));
    }

    // Every container's log, and each speaker's show output with its router session up.
    let pods = kubectl(&cluster, &["-n", NS, "get", "pods", "-o", "json"]).unwrap();
    let pods: Value = serde_json::from_str(&pods).unwrap();
    let mut speakers = 0;
    for pod in pods["items"].as_array().unwrap() {
        let name = pod["metadata"]["name"].as_str().unwrap();
        let dir = format!("namespaces/{NS}/pods/{name}");
        find(&format!("{dir}/{name}.yaml"));
        for container in pod["spec"]["containers"].as_array().unwrap() {
            let container = container["name"].as_str().unwrap();
            let log = find(&format!("{dir}/{container}/{container}/logs/current.log"));
            assert!(!log.is_empty(), "{name}/{container} logged nothing");
        }
        if pod["metadata"]["labels"]["component"] != "speaker" {
            continue;
        }
        speakers += 1;
        let bgp: Value =
            serde_json::from_str(&find(&format!("{dir}/speaker/speaker/show/bgp.json"))).unwrap();
        let router = bgp
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["address"] == "192.168.250.1")
            .unwrap_or_else(|| panic!("{name}: no router session in {bgp:#}"));
        assert_eq!(router["state"], "established", "{name}: {router:#}");
        for what in ["bfd", "l2"] {
            let text = find(&format!("{dir}/speaker/speaker/show/{what}.json"));
            serde_json::from_str::<Value>(&text).unwrap();
        }
    }
    assert_eq!(speakers, 3);

    let secrets: Vec<Vec<u8>> = vec![
        INLINE_PASSWORD.into(),
        STANDARD.encode(INLINE_PASSWORD).into(),
        SECRET_PASSWORD.into(),
        STANDARD.encode(SECRET_PASSWORD).into(),
        key_base64.trim().into(),
        key.clone(),
    ];
    for secret in &secrets {
        for (path, bytes) in &tree {
            assert!(
                !contains(bytes, secret),
                "{path} holds a secret value ({})",
                String::from_utf8_lossy(secret)
            );
        }
    }

    // The product image's /usr/bin/gather, in the cluster with its in-cluster credentials.
    let in_pod = gather_in_a_pod(&cluster);
    eprintln!("in a pod: {in_pod}");
    assert!(
        in_pod.contains(&format!("gathered namespace {NS} into /must-gather"))
            && in_pod.contains(", 0 not collected,"),
        "{in_pod}"
    );

    // The must-gather image where `oc adm must-gather` would run it; copied out with tar.
    let copied = tempfile::tempdir().unwrap();
    oc_must_gather(&cluster, copied.path());
    let copied_tree = files(copied.path());
    let summary = copied_tree
        .iter()
        .find(|(p, _)| p == "gather.json")
        .map(|(_, b)| serde_json::from_slice::<Value>(b).unwrap())
        .expect("gather.json copied out");
    assert_eq!(summary["errors"], serde_json::json!([]), "{summary:#}");
    for path in [
        format!("namespaces/{NS}/metallb.io/bgppeers.yaml"),
        format!("namespaces/{NS}/core/pods.yaml"),
    ] {
        assert!(
            copied_tree.iter().any(|(p, _)| *p == path),
            "{path} not copied out"
        );
    }
    let shows = copied_tree
        .iter()
        .filter(|(p, _)| p.ends_with("/speaker/speaker/show/bgp.json"))
        .count();
    assert_eq!(shows, 3, "each speaker's show output");
    for secret in &secrets {
        for (path, bytes) in &copied_tree {
            assert!(!contains(bytes, secret), "{path} holds a secret value");
        }
    }
    cluster.down().unwrap();
    eprintln!("done after {:?}", started.elapsed());
}
