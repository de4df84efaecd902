//! `metallb-gather` against a real API server (etcd + kube-apiserver, no kubelet): a speaker
//! pod bound to a Node whose kubelet does not exist cannot give logs or `show` output, and the
//! collection still writes everything else, says what it could not collect, and contains no
//! secret value.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use metallb_testenv::{ControlPlane, test_name};

const INLINE_PASSWORD: &str = "inline-peer-password-4242";
const SECRET_PASSWORD: &str = "peer-password-from-secret-4242";
const MEMBERSHIP_KEY: &str = "membership-key-value-4242";

/// Deletes the cluster-scoped Node when the test ends, passed or not.
struct NodeGuard<'a>(&'a ControlPlane, String);

impl Drop for NodeGuard<'_> {
    fn drop(&mut self) {
        let _ = self.0.kubectl(["delete", "node", &self.1, "--wait=false"]);
    }
}

/// Every file under `dir`, relative path and bytes.
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

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[test]
fn an_unreachable_speaker_leaves_error_files_and_the_rest_is_collected_without_secrets() {
    let cp = ControlPlane::shared();
    cp.install_crds().unwrap();
    let ns = cp.namespace(test_name!()).unwrap();
    let ns = ns.name();
    let node = format!("ghost-{}", &ns[ns.len().saturating_sub(20)..]);
    let _node = NodeGuard(cp, node.clone());

    // A Node whose kubelet address answers nothing (TEST-NET-1), and a speaker pod on it.
    cp.kubectl_with_input(
        ["apply", "-f", "-"],
        &format!("apiVersion: v1\nkind: Node\nmetadata: {{name: {node}}}\n"),
    )
    .unwrap();
    cp.kubectl([
        "patch",
        "node",
        &node,
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"addresses":[{"type":"InternalIP","address":"192.0.2.1"}],"daemonEndpoints":{"kubeletEndpoint":{"Port":10250}}}}"#,
    ])
    .unwrap();
    // No controller-manager here: the pod's ServiceAccount is created by hand.
    let objects = format!(
        r#"
apiVersion: v1
kind: ServiceAccount
metadata: {{name: default, namespace: {ns}}}
---
apiVersion: v1
kind: Pod
metadata: {{name: speaker-ghost, namespace: {ns}, labels: {{component: speaker}}}}
spec:
  nodeName: {node}
  containers: [{{name: speaker, image: quay.io/metallb-rs/metallb-rs:0}}]
---
apiVersion: v1
kind: Secret
metadata: {{name: metallb-memberlist, namespace: {ns}}}
stringData: {{secretkey: {MEMBERSHIP_KEY}}}
---
apiVersion: v1
kind: Secret
metadata: {{name: bgp-auth, namespace: {ns}}}
type: kubernetes.io/basic-auth
stringData: {{password: {SECRET_PASSWORD}}}
---
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {{name: inline, namespace: {ns}}}
spec: {{myASN: 64500, peerASN: 64512, peerAddress: 192.0.2.10, password: {INLINE_PASSWORD}}}
---
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {{name: from-secret, namespace: {ns}}}
spec: {{myASN: 64500, peerASN: 64512, peerAddress: 192.0.2.11, passwordSecret: {{name: bgp-auth}}}}
"#
    );
    // Client-side apply, so the peer also carries kubectl's copy of itself, password included.
    cp.kubectl_with_input(["apply", "-f", "-"], &objects)
        .unwrap();

    let dest = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let output = Command::new(env!("CARGO_BIN_EXE_metallb-gather"))
        .args(["--namespace", ns, "--timeout", "3s", "--since", "1h"])
        .arg("--dest-dir")
        .arg(dest.path())
        .arg("--kubeconfig")
        .arg(cp.kubeconfig_path())
        .output()
        .unwrap();
    let elapsed = started.elapsed();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    eprintln!("gathered in {elapsed:?}: {stdout}");
    // Three calls to the dead kubelet (a log and two shows run after the first show), each
    // bounded; nothing waits for the kernel's connect timeout.
    assert!(elapsed < Duration::from_secs(60), "{elapsed:?}");

    let tree = files(dest.path());
    let has = |path: &str| tree.iter().any(|(p, _)| p == path);
    let text = |path: &str| {
        let (_, bytes) = tree
            .iter()
            .find(|(p, _)| p == path)
            .unwrap_or_else(|| panic!("{path} missing from {:#?}", names(&tree)));
        String::from_utf8_lossy(bytes).into_owned()
    };
    let pod = format!("namespaces/{ns}/pods/speaker-ghost");
    assert!(has(&format!("{pod}/speaker-ghost.yaml")));
    assert!(has(&format!(
        "{pod}/speaker/speaker/logs/current.log.error"
    )));
    for what in ["bgp", "bfd", "l2"] {
        assert!(
            has(&format!("{pod}/speaker/speaker/show/{what}.json.error")),
            "{what}: {:#?}",
            names(&tree)
        );
    }
    let peers = text(&format!("namespaces/{ns}/metallb.io/bgppeers.yaml"));
    assert!(
        peers.contains("name: inline") && peers.contains("name: from-secret"),
        "{peers}"
    );
    assert!(peers.contains("<redacted>"), "{peers}");
    // Kinds the group's preferred version (v1beta2, BGPPeer only) does not serve are there too.
    for kind in [
        "ipaddresspools",
        "l2advertisements",
        "bfdprofiles",
        "metallbs",
    ] {
        assert!(
            has(&format!("namespaces/{ns}/metallb.io/{kind}.yaml")),
            "{kind}"
        );
    }
    let secrets = text(&format!("namespaces/{ns}/core/secrets.yaml"));
    assert!(
        secrets.contains("metallb-memberlist") && secrets.contains("bgp-auth"),
        "{secrets}"
    );
    assert!(has(&format!("namespaces/{ns}/{ns}.yaml")));
    assert!(has(&format!("namespaces/{ns}/core/pods.yaml")));
    assert!(has(&format!("namespaces/{ns}/apps/daemonsets.yaml")));
    assert!(has(&format!(
        "namespaces/{ns}/coordination.k8s.io/leases.yaml"
    )));
    assert!(has(&format!(
        "cluster-scoped-resources/core/nodes/{node}.yaml"
    )));
    let summary: serde_json::Value = serde_json::from_str(&text("gather.json")).unwrap();
    let errors = summary["errors"].as_array().unwrap();
    assert!(
        errors.len() >= 4
            && errors
                .iter()
                .all(|e| e.as_str().unwrap().contains("speaker-ghost")),
        "only the unreachable pod's pieces fail: {errors:#?}"
    );

    for secret in [INLINE_PASSWORD, SECRET_PASSWORD, MEMBERSHIP_KEY] {
        for form in [secret.to_owned(), STANDARD.encode(secret)] {
            for (path, bytes) in &tree {
                assert!(!contains(bytes, &form), "{form} in {path}");
            }
        }
    }
}

fn names(tree: &[(String, Vec<u8>)]) -> Vec<&str> {
    tree.iter().map(|(p, _)| p.as_str()).collect()
}
