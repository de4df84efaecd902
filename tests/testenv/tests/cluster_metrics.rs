//! Metrics as OpenShift monitoring gets them, on the local cluster: with a ServiceMonitor CRD
//! served and `METRICS_TLS=true`, the operator renders ServiceMonitors and HTTPS metrics; the
//! pods become ready through HTTPS probes, and the lab's client reaching a speaker's
//! `/metrics` gets 401 without a token, 403 with a ServiceAccount token nothing grants it,
//! and the metrics once a ClusterRole with `get` on `/metrics` is bound.
//!
//! OpenShift's service CA is not here, so the test writes the two serving-certificate Secrets
//! the metrics Services ask it for; the ServiceMonitor CRD is a structural stand-in for
//! prometheus-operator's (only its group, kind and scope matter to the operator).
//! Needs root and cgroup v1; builds the product and its image first.

use std::path::Path;
use std::time::{Duration, Instant};

use metallb_testenv::cluster::{Cluster, ClusterOptions, WORKSPACE_ROOT, product_image};

const NS: &str = "metallb-system";

const SERVICE_MONITOR_CRD: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: servicemonitors.monitoring.coreos.com}
spec:
  group: monitoring.coreos.com
  scope: Namespaced
  names: {kind: ServiceMonitor, listKind: ServiceMonitorList, plural: servicemonitors, singular: servicemonitor}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        x-kubernetes-preserve-unknown-fields: true
"#;

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

/// `(status, body)` of the lab client's `GET https://speaker-monitor-service...:7472/metrics`
/// sent to node1's speaker, trusting only `ca`.
fn scrape(cluster: &Cluster, ca: &Path, token: Option<&str>) -> Result<(u16, String), String> {
    let host = format!("speaker-monitor-service.{NS}.svc");
    let mut curl = cluster.command("client", "curl");
    curl.args(["-sS", "-m", "5", "-w", "\n%{http_code}", "--cacert"])
        .arg(ca)
        .args(["--resolve", &format!("{host}:7472:192.168.250.11")])
        .arg(format!("https://{host}:7472/metrics"));
    if let Some(token) = token {
        curl.args(["-H", &format!("Authorization: Bearer {token}")]);
    }
    let output = curl.output().map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let (body, status) = text.rsplit_once('\n').unwrap_or(("", &text));
    let status = status
        .trim()
        .parse()
        .map_err(|_| format!("curl: {text}{}", String::from_utf8_lossy(&output.stderr)))?;
    Ok((status, body.to_owned()))
}

#[test]
fn metrics_are_https_behind_token_and_rbac_with_service_monitors_when_the_cluster_has_them() {
    let started = Instant::now();
    let cluster = Cluster::up(ClusterOptions::default()).unwrap();
    cluster.import(&product_image().unwrap()).unwrap();

    // What OpenShift would provide: the ServiceMonitor kind, and the service CA's Secrets.
    cluster
        .kubectl_stdin(["apply", "-f", "-"], SERVICE_MONITOR_CRD)
        .unwrap();
    let (crds, install) = (manifest("manifests/crds"), manifest("manifests/install"));
    kubectl(
        &cluster,
        &["apply", "--server-side", "-f", &crds, "-f", &install],
    )
    .unwrap();
    kubectl(
        &cluster,
        &["wait", "--for=condition=Established", "crd", "--all"],
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let names = ["controller", "speaker"].map(|c| format!("{c}-monitor-service.{NS}.svc"));
    let cert = rcgen::CertificateParams::new(names.to_vec())
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let (crt, pem) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    std::fs::write(&crt, cert.pem()).unwrap();
    std::fs::write(&pem, key.serialize_pem()).unwrap();
    for component in ["controller", "speaker"] {
        let (cert_arg, key_arg) = (
            format!("--cert={}", crt.display()),
            format!("--key={}", pem.display()),
        );
        let name = format!("{component}-metrics-tls");
        kubectl(
            &cluster,
            &[
                "-n", NS, "create", "secret", "tls", &name, &cert_arg, &key_arg,
            ],
        )
        .unwrap();
    }
    kubectl(
        &cluster,
        &[
            "-n",
            NS,
            "set",
            "env",
            "deployment/metallb-operator",
            "METRICS_TLS=true",
        ],
    )
    .unwrap();
    kubectl(
        &cluster,
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
        || kubectl(&cluster, &["apply", "-f", &sample]),
    );
    // Available needs ready pods, and readiness is probed over HTTPS now.
    eventually("MetalLB Available", Duration::from_secs(180), || {
        let path = r#"jsonpath={.status.conditions[?(@.type=="Available")].status}"#;
        let status = kubectl(
            &cluster,
            &["-n", NS, "get", "metallb", "metallb", "-o", path],
        )?;
        (status == "True").then_some(()).ok_or(status)
    });
    eprintln!("Available over HTTPS probes after {:?}", started.elapsed());
    let probe = kubectl(
        &cluster,
        &[
            "-n",
            NS,
            "get",
            "daemonset",
            "speaker",
            "-o",
            "jsonpath={.spec.template.spec.containers[0].readinessProbe.httpGet.scheme}",
        ],
    )
    .unwrap();
    assert_eq!(probe, "HTTPS");
    for component in ["controller", "speaker"] {
        let scheme = kubectl(
            &cluster,
            &[
                "-n",
                NS,
                "get",
                "servicemonitor",
                &format!("{component}-monitor"),
                "-o",
                "jsonpath={.spec.endpoints[0].scheme}",
            ],
        )
        .unwrap();
        assert_eq!(scheme, "https", "{component}'s ServiceMonitor");
    }

    let (status, body) = scrape(&cluster, &crt, None).unwrap();
    assert_eq!(status, 401, "{body}");
    kubectl(
        &cluster,
        &["-n", "default", "create", "serviceaccount", "scraper"],
    )
    .unwrap();
    let token = kubectl(&cluster, &["-n", "default", "create", "token", "scraper"]).unwrap();
    let token = token.trim();
    let (status, body) = scrape(&cluster, &crt, Some(token)).unwrap();
    assert_eq!(status, 403, "{body}");
    kubectl(
        &cluster,
        &[
            "create",
            "clusterrole",
            "metrics-reader",
            "--verb=get",
            "--non-resource-url=/metrics",
        ],
    )
    .unwrap();
    kubectl(
        &cluster,
        &[
            "create",
            "clusterrolebinding",
            "metrics-reader",
            "--clusterrole=metrics-reader",
            "--serviceaccount=default:scraper",
        ],
    )
    .unwrap();
    // The denial is remembered for a few seconds.
    let body = eventually(
        "the authorized scrape",
        Duration::from_secs(30),
        || match scrape(&cluster, &crt, Some(token))? {
            (200, body) => Ok(body),
            (status, body) => Err(format!("{status}: {body}")),
        },
    );
    assert!(body.contains("metallb_"), "{body}");
    eprintln!("scraped over HTTPS after {:?}", started.elapsed());
    cluster.down().unwrap();
}
