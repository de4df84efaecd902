//! What the OLM test does with the cluster: kubectl in the MetalLB namespace, waiting, the step
//! clock, bundles of other versions, InstallPlans and CSVs, the Services and their addresses.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use metallb_operator::bundle::{self, BundleSettings, PACKAGE};
use metallb_testenv::cluster::Cluster;
use metallb_testenv::olm;
use serde_json::Value;

/// Not the suggested namespace: the operator must work where it is installed
/// (`OPERATOR_NAMESPACE`).
pub const NS: &str = "olm-metallb";

/// A manifest of the repository, moved from `metallb-system` to [`NS`].
pub fn manifest(path: &str) -> String {
    let text = std::fs::read_to_string(source().join(path)).unwrap();
    text.replace("metallb-system", NS)
}

pub fn source() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Polls `check` every 500 ms until it returns `Ok` or `timeout` passes; panics with `what`
/// and the last error.
pub fn eventually<T>(
    what: &str,
    timeout: Duration,
    mut check: impl FnMut() -> Result<T, String>,
) -> T {
    let mut last = String::new();
    metallb_testenv::wait_for(timeout, Duration::from_millis(500), || {
        check().map_err(|e| last = e).ok()
    })
    .unwrap_or_else(|| panic!("{what} not within {timeout:?}; last: {last}"))
}

pub fn kubectl(cluster: &Cluster, args: &[&str]) -> Result<String, String> {
    let mut all = vec!["-n", NS];
    all.extend_from_slice(args);
    cluster.kubectl(&all).map_err(|e| e.to_string())
}

pub fn json(cluster: &Cluster, args: &[&str]) -> Result<Value, String> {
    let mut all = args.to_vec();
    all.extend(["-o", "json"]);
    let text = kubectl(cluster, &all)?;
    serde_json::from_str(&text).map_err(|e| e.to_string())
}

pub fn apply(cluster: &Cluster, yaml: &str) {
    let yaml = yaml.replace("metallb-system", NS);
    cluster
        .kubectl_stdin(["apply", "-f", "-"], &yaml)
        .unwrap_or_else(|e| panic!("applying {yaml}: {e}"));
}

/// `operator-sdk bundle validate DIR` with the operatorframework suite: (passed, output).
pub fn validate(dir: &Path) -> (bool, String) {
    let output = olm::tool(
        "operator-sdk",
        &[
            "bundle",
            "validate",
            dir.to_str().unwrap(),
            "--select-optional",
            "suite=operatorframework",
        ],
    )
    .unwrap();
    let text = String::from_utf8_lossy(&output.stderr).into_owned();
    (output.status.success(), text)
}

/// The step times, printed as they come and as a table at the end.
pub struct Steps {
    start: Instant,
    last: Instant,
    done: Vec<(&'static str, Duration)>,
}

impl Steps {
    pub fn new() -> Steps {
        let now = Instant::now();
        Steps {
            start: now,
            last: now,
            done: Vec::new(),
        }
    }

    pub fn mark(&mut self, what: &'static str) {
        let took = self.last.elapsed();
        self.last = Instant::now();
        eprintln!(
            "olm: {what}: {took:.1?} (total {:.1?})",
            self.start.elapsed()
        );
        self.done.push((what, took));
    }

    pub fn print(&self) {
        eprintln!("\n| step | time |\n|---|---|");
        for (what, took) in &self.done {
            eprintln!("| {what} | {:.1} s |", took.as_secs_f64());
        }
        eprintln!("| total | {:.1} s |", self.start.elapsed().as_secs_f64());
    }
}

/// A bundle of this code at another version and image, written under `dir`.
pub fn bundle_at(dir: &Path, version: &str, image: &str, edit: impl FnOnce(&mut Value)) -> PathBuf {
    let samples = bundle::read_samples(&source().join("manifests/samples")).unwrap();
    let settings = BundleSettings {
        version: version.to_owned(),
        image: image.to_owned(),
    };
    let mut files = bundle::files(&settings, &samples).unwrap();
    let csv_path = format!("manifests/{PACKAGE}.clusterserviceversion.yaml");
    let csv = files.iter_mut().find(|f| f.path == csv_path).unwrap();
    let mut value: Value = serde_saphyr::from_str(&csv.text).unwrap();
    edit(&mut value);
    csv.text = serde_saphyr::to_string(&value).unwrap();
    let out = dir.join(format!("bundle-{version}"));
    bundle::sync(&out, &files, true).unwrap();
    out
}

pub fn wait_csv_succeeded(cluster: &Cluster, name: &str) {
    eventually(
        &format!("CSV {name} Succeeded"),
        Duration::from_secs(300),
        || {
            let csv = json(cluster, &["get", "csv", name])?;
            match csv["status"]["phase"].as_str() {
                Some("Succeeded") => Ok(()),
                _ => Err(format!(
                    "{} {}",
                    csv["status"]["reason"], csv["status"]["message"]
                )),
            }
        },
    );
}

/// Approves the InstallPlan that installs `csv` (manual approval keeps the steps apart).
pub fn approve_install_plan(cluster: &Cluster, csv: &str) {
    let plan = eventually(
        &format!("an InstallPlan for {csv}"),
        Duration::from_secs(120),
        || {
            let plans = json(cluster, &["get", "installplans"])?;
            plans["items"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|p| {
                    p["spec"]["clusterServiceVersionNames"]
                        .as_array()
                        .is_some_and(|names| names.iter().any(|n| n == csv))
                })
                .and_then(|p| p["metadata"]["name"].as_str().map(str::to_owned))
                .ok_or_else(|| {
                    kubectl(cluster, &["get", "subscription", PACKAGE, "-o", "yaml"])
                        .unwrap_or_default()
                })
        },
    );
    kubectl(
        cluster,
        &[
            "patch",
            "installplan",
            &plan,
            "--type",
            "merge",
            "-p",
            r#"{"spec":{"approved":true}}"#,
        ],
    )
    .unwrap();
    eventually(
        &format!("InstallPlan {plan} Complete"),
        Duration::from_secs(120),
        || {
            let plan = json(cluster, &["get", "installplan", &plan])?;
            match plan["status"]["phase"].as_str() {
                Some("Complete") => Ok(()),
                other => Err(format!("{other:?} {}", plan["status"]["conditions"])),
            }
        },
    );
}

pub fn operator_images(cluster: &Cluster) -> Result<Vec<String>, String> {
    let pods = json(
        cluster,
        &[
            "get",
            "pods",
            "-l",
            "app.kubernetes.io/name=metallb-operator",
        ],
    )?;
    let mut images = Vec::new();
    for pod in pods["items"].as_array().into_iter().flatten() {
        if pod["status"]["phase"] != "Running" {
            return Err(format!(
                "{} is {}",
                pod["metadata"]["name"], pod["status"]["phase"]
            ));
        }
        images.push(
            pod["spec"]["containers"][0]["image"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        );
    }
    if images.is_empty() {
        return Err("no operator pod".into());
    }
    Ok(images)
}

pub fn wait_available(cluster: &Cluster) {
    eventually("MetalLB Available=True", Duration::from_secs(240), || {
        let metallb = json(cluster, &["get", "metallb", "metallb"])?;
        let conditions = &metallb["status"]["conditions"];
        let available = conditions
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["type"] == "Available" && c["status"] == "True");
        if available {
            Ok(())
        } else {
            Err(conditions.to_string())
        }
    });
}

pub const SERVICES: [&str; 2] = ["olm-a", "olm-b"];

/// Every Service's IPv4 address, once all have one.
pub fn addresses(cluster: &Cluster) -> Result<BTreeMap<&'static str, String>, String> {
    SERVICES
        .iter()
        .map(|name| {
            let ip = cluster
                .kubectl([
                    "-n",
                    "default",
                    "get",
                    "service",
                    name,
                    "-o",
                    "jsonpath={.status.loadBalancer.ingress[0].ip}",
                ])
                .map_err(|e| e.to_string())?;
            if ip.is_empty() {
                Err(format!("{name} has no address"))
            } else {
                Ok((*name, ip))
            }
        })
        .collect()
}

pub fn services(cluster: &Cluster) -> BTreeMap<&'static str, String> {
    apply(
        cluster,
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
"#,
    );
    for name in SERVICES {
        apply(
            cluster,
            &format!(
                "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: default}}\n\
                 spec: {{type: LoadBalancer, selector: {{app: {name}}}, ports: [{{port: 80}}]}}\n"
            ),
        );
    }
    eventually(
        "an address for every Service",
        Duration::from_secs(120),
        || addresses(cluster),
    )
}

/// The webhook refuses a pool overlapping `lab`, called by the API server through the Service
/// and certificate OLM made.
pub fn webhook_refuses_through_olm(cluster: &Cluster, csv: &str) {
    let configurations = cluster
        .kubectl([
            "get",
            "validatingwebhookconfigurations",
            "-l",
            &format!("olm.owner={csv}"),
            "-o",
            "json",
        ])
        .unwrap();
    let configurations: Value = serde_json::from_str(&configurations).unwrap();
    let webhooks: Vec<&Value> = configurations["items"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|c| c["webhooks"].as_array().unwrap())
        .collect();
    assert!(!webhooks.is_empty(), "OLM registered no webhook for {csv}");
    for webhook in &webhooks {
        let service = &webhook["clientConfig"]["service"];
        assert_eq!(service["name"], "metallb-operator-service", "{webhook}");
        assert_eq!(service["namespace"], NS, "{webhook}");
        assert!(
            webhook["clientConfig"]["caBundle"]
                .as_str()
                .is_some_and(|b| !b.is_empty())
        );
    }
    let refused = cluster
        .kubectl_stdin(
            ["apply", "-f", "-"],
            &format!(
                "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\n\
                 metadata: {{name: overlapping, namespace: {NS}}}\n\
                 spec: {{addresses: [192.168.250.240/29]}}\n"
            ),
        )
        .expect_err("an overlapping pool was accepted");
    let message = refused.to_string();
    assert!(
        message.contains(
            "admission webhook \"ipaddresspoolvalidationwebhook.metallb.io\" denied the request"
        ),
        "{message}"
    );
}
