//! The `metallb-operator` binary against the real control plane: webhooks registered at a
//! local URL with generated certificates, leader election, the HTTP endpoints, speed and
//! memory, and a clean hand-over between two replicas.

use std::{
    io::{Read, Write},
    net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{OnceLock, mpsc},
    time::{Duration, Instant},
};

use k8s_openapi::{
    api::{
        admissionregistration::v1::ValidatingWebhookConfiguration,
        apps::v1::{DaemonSet, Deployment},
        coordination::v1::Lease,
        core::v1::{ConfigMap, Secret, Service},
    },
    apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
};
use kube::{
    Api, Client,
    api::{Patch, PatchParams, PostParams},
};
use metallb_api::metallb::MetalLB;
use metallb_testenv::ControlPlane;
use metallb_webhooks::GeneratedCerts;
use serde_json::json;

const NS: &str = "metallb-system";
const IDENTITY: &str = "process-test";

/// The operator started once for this test binary.
struct Running {
    pid: u32,
    http: SocketAddr,
    webhook_port: u16,
}

fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `setpriv --pdeathsig KILL` ties the operator to the thread that starts it, so it never
/// outlives the test binary, even when that is killed.
fn operator_command(args: &[String], log: &Path) -> Command {
    let mut command = Command::new("setpriv");
    command
        .args([
            "--pdeathsig",
            "KILL",
            "--",
            env!("CARGO_BIN_EXE_metallb-operator"),
        ])
        .args(args)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap());
    command
}

/// Starts an operator from a thread that lives as long as the test binary; returns its pid.
fn spawn_tied(args: Vec<String>, log: PathBuf) -> u32 {
    let (pid_tx, pid_rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut child = operator_command(&args, &log)
            .spawn()
            .expect("setpriv starts the operator");
        pid_tx.send(child.id()).unwrap();
        let status = child.wait();
        eprintln!(
            "operator {args:?} exited: {status:?}; log in {}",
            log.display()
        );
    });
    pid_rx.recv().unwrap()
}

fn control_plane() -> &'static ControlPlane {
    static CRDS: OnceLock<()> = OnceLock::new();
    let cp = ControlPlane::shared();
    CRDS.get_or_init(|| {
        cp.install_crds().unwrap();
        cp.kubectl(["create", "namespace", NS]).unwrap();
    });
    cp
}

async fn client() -> Client {
    control_plane().client().await.unwrap()
}

fn operator() -> &'static Running {
    static RUNNING: OnceLock<Running> = OnceLock::new();
    RUNNING.get_or_init(|| {
        let cp = control_plane();
        let http = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()));
        let webhook_port = free_port();
        let args = vec![
            format!("--kubeconfig={}", cp.kubeconfig_path().display()),
            format!("--http-addr={http}"),
            format!("--webhook-addr=127.0.0.1:{webhook_port}"),
            format!("--webhook-url=https://127.0.0.1:{webhook_port}"),
            format!("--identity={IDENTITY}"),
        ];
        let pid = spawn_tied(args, cp.dir().join("metallb-operator.log"));
        let running = Running {
            pid,
            http,
            webhook_port,
        };
        wait_until("the operator is ready", Duration::from_secs(60), || {
            http_get(running.http, "/readyz").is_some_and(|(status, _)| status == 200)
        });
        // The API server picks webhook configurations up asynchronously: probe with a dry run.
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(async {
            let api = Api::<MetalLB>::namespaced(client().await, NS);
            let probe = frr_backend("probe");
            let dry_run = PostParams {
                dry_run: true,
                ..PostParams::default()
            };
            let deadline = Instant::now() + Duration::from_secs(30);
            while api.create(&dry_run, &probe).await.is_ok() {
                assert!(Instant::now() < deadline, "the webhook never took effect");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        running
    })
}

fn frr_backend(name: &str) -> MetalLB {
    serde_json::from_value(json!({
        "apiVersion": "metallb.io/v1beta1", "kind": "MetalLB",
        "metadata": {"name": name, "namespace": NS}, "spec": {"bgpBackend": "frr"},
    }))
    .unwrap()
}

fn wait_until(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A plain HTTP/1.0 GET: the status code and the body.
fn http_get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let status = response.split(' ').nth(1)?.parse().ok()?;
    let body = response.split_once("\r\n\r\n")?.1.to_owned();
    Some((status, body))
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

fn sample() -> serde_json::Value {
    let text = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../manifests/samples/metallb.yaml"),
    )
    .unwrap();
    serde_saphyr::from_str(&text).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn applying_the_sample_creates_every_operand_within_a_second() {
    let running = tokio::task::block_in_place(operator);
    let client = client().await;
    let exists = |name: &'static str| {
        let client = client.clone();
        move |kind: &'static str| {
            let client = client.clone();
            async move {
                macro_rules! get {
                    ($k:ty) => {
                        Api::<$k>::namespaced(client, NS)
                            .get_opt(name)
                            .await
                            .unwrap()
                            .is_some()
                    };
                }
                match kind {
                    "Secret" => get!(Secret),
                    "ConfigMap" => get!(ConfigMap),
                    "Service" => get!(Service),
                    "Deployment" => get!(Deployment),
                    _ => get!(DaemonSet),
                }
            }
        }
    };
    let operands = [
        ("Secret", "metallb-memberlist"),
        ("ConfigMap", "metallb-excludel2"),
        ("Service", "controller-monitor-service"),
        ("Service", "speaker-monitor-service"),
        ("Deployment", "controller"),
        ("DaemonSet", "speaker"),
    ];
    let applied = Instant::now();
    Api::<MetalLB>::namespaced(client.clone(), NS)
        .patch(
            "metallb",
            &PatchParams::apply("administrator"),
            &Patch::Apply(sample()),
        )
        .await
        .unwrap();
    for (kind, name) in operands {
        while !exists(name)(kind).await {
            assert!(
                applied.elapsed() < Duration::from_secs(10),
                "{kind} {name} never came"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    let elapsed = applied.elapsed();
    println!("MetalLB applied -> all 6 operands created: {elapsed:?}");
    // The target is 1 s (a debug build takes about 0.2 s); the bound leaves room for a busy
    // test machine so that only a real regression fails.
    assert!(elapsed < Duration::from_secs(2), "took {elapsed:?}");
    println!(
        "operator RSS after the first reconcile: {} KiB",
        rss_kib(running.pid)
    );
}

#[test]
fn the_webhook_refuses_an_frr_backend_with_a_message_that_says_why() {
    operator();
    let manifest = serde_json::to_string(&frr_backend("with-frr")).unwrap();
    let err = control_plane()
        .kubectl_with_input(["apply", "-f", "-"], &manifest)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(
            "admission webhook \"metallbvalidationwebhook.metallb.io\" denied the request"
        ) && err.contains("spec.bgpBackend")
            && err.contains("the metallb-rs speaker implements BGP and BFD itself"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_webhooks_are_registered_with_the_bundle_of_the_shared_certificate() {
    let running = tokio::task::block_in_place(operator);
    let client = client().await;
    let secret = Api::<Secret>::namespaced(client.clone(), NS)
        .get("metallb-operator-webhook-server-cert")
        .await
        .unwrap();
    assert_eq!(secret.type_.as_deref(), Some("kubernetes.io/tls"));
    let bundle = secret.data.unwrap()["ca.crt"].0.clone();
    let prefix = format!("https://127.0.0.1:{}/", running.webhook_port);

    let configuration = Api::<ValidatingWebhookConfiguration>::all(client.clone())
        .get("metallb-rs-webhook-configuration")
        .await
        .unwrap();
    let webhooks = configuration.webhooks.unwrap();
    assert_eq!(webhooks.len(), 9);
    for webhook in webhooks {
        let config = webhook.client_config;
        assert!(
            config.url.as_deref().unwrap().starts_with(&prefix),
            "{:?}",
            config.url
        );
        assert_eq!(config.ca_bundle.unwrap().0, bundle, "{}", webhook.name);
    }

    let crd = Api::<CustomResourceDefinition>::all(client)
        .get("bgppeers.metallb.io")
        .await
        .unwrap();
    let conversion = crd.spec.conversion.unwrap();
    assert_eq!(conversion.strategy, "Webhook");
    let config = conversion.webhook.unwrap().client_config.unwrap();
    assert_eq!(config.url, Some(format!("{prefix}convert")));
    assert_eq!(config.ca_bundle.unwrap().0, bundle);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_readiness_metrics_and_the_lease_report_the_running_operator() {
    let running = tokio::task::block_in_place(operator);
    assert_eq!(
        http_get(running.http, "/healthz"),
        Some((200, "ok".to_owned()))
    );
    assert_eq!(
        http_get(running.http, "/readyz"),
        Some((200, "ok".to_owned()))
    );
    let (status, metrics) = http_get(running.http, "/metrics").unwrap();
    assert_eq!(status, 200);
    for expected in [
        "metallb_operator_leader 1",
        "metallb_operator_reconcile_runs_total",
        "metallb_operator_webhook_certificate_expiry_timestamp_seconds",
    ] {
        assert!(
            metrics.contains(expected),
            "{expected} missing from\n{metrics}"
        );
    }
    let lease = Api::<Lease>::namespaced(client().await, NS)
        .get("metallb-operator-lock")
        .await
        .unwrap();
    assert_eq!(
        lease.spec.unwrap().holder_identity.as_deref(),
        Some(IDENTITY)
    );
    let rss = rss_kib(running.pid);
    println!("operator RSS: {rss} KiB");
    assert!(rss < 100 * 1024, "{rss} KiB");
}

/// Kills a replica if the test fails before stopping it.
struct Replica {
    child: Child,
    http: SocketAddr,
    log: PathBuf,
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Replica {
    fn terminate(mut self) -> std::process::ExitStatus {
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the replica did not stop on SIGTERM; its log:\n{}",
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_replica_takes_over_at_once_when_the_leader_stops() {
    let cp = control_plane();
    let namespace = tokio::task::block_in_place(|| cp.namespace("replicas")).unwrap();
    let namespace = namespace.name().to_owned();
    // Mounted certificates: these replicas must not re-register the cluster's webhooks.
    let certs = tempfile::tempdir().unwrap();
    let cert = GeneratedCerts::new(vec!["127.0.0.1".into()], Duration::from_secs(3600))
        .issue(time::OffsetDateTime::now_utc())
        .unwrap();
    std::fs::write(certs.path().join("tls.crt"), &cert.cert_pem).unwrap();
    std::fs::write(certs.path().join("tls.key"), &cert.key_pem).unwrap();
    let start = |identity: &str| {
        let http = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()));
        let args = [
            format!("--kubeconfig={}", cp.kubeconfig_path().display()),
            format!("--namespace={namespace}"),
            format!("--http-addr={http}"),
            format!("--webhook-addr=127.0.0.1:{}", free_port()),
            format!("--cert-dir={}", certs.path().display()),
            format!("--identity={identity}"),
        ];
        let log = cp.dir().join(format!("metallb-operator-{identity}.log"));
        let child = operator_command(&args, &log).spawn().unwrap();
        Replica { child, http, log }
    };
    let leases = Api::<Lease>::namespaced(client().await, &namespace);
    let holder = || async {
        leases
            .get_opt("metallb-operator-lock")
            .await
            .unwrap()
            .and_then(|l| l.spec?.holder_identity)
    };
    let wait_for_holder = |expected: &'static str, within: Duration| async move {
        let deadline = Instant::now() + within;
        while holder().await.as_deref() != Some(expected) {
            assert!(
                Instant::now() < deadline,
                "{expected} did not get the lease"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };

    let first = start("first");
    wait_for_holder("first", Duration::from_secs(30)).await;
    let second = start("second");
    let metric = |replica: &Replica| {
        http_get(replica.http, "/metrics").and_then(|(_, body)| {
            body.lines()
                .find(|l| l.starts_with("metallb_operator_leader "))
                .map(str::to_owned)
        })
    };
    tokio::task::block_in_place(|| {
        wait_until("the second replica serves", Duration::from_secs(30), || {
            http_get(second.http, "/readyz").is_some_and(|(s, _)| s == 200)
        })
    });
    assert_eq!(
        metric(&second).as_deref(),
        Some("metallb_operator_leader 0")
    );
    assert_eq!(holder().await.as_deref(), Some("first"));

    let stopped = Instant::now();
    let status = tokio::task::block_in_place(|| first.terminate());
    assert!(status.success(), "{status}");
    wait_for_holder("second", Duration::from_secs(5)).await;
    println!("leader hand-over after SIGTERM: {:?}", stopped.elapsed());
    let status = tokio::task::block_in_place(|| second.terminate());
    assert!(status.success(), "{status}");
    assert_eq!(holder().await, None, "the last replica released the lease");
}
