//! End to end: 10,000 LoadBalancer Services created against a real control plane until every
//! one has an address, with the controller's memory; then a controller restart over all of
//! them. Prints a table.
//!
//! `cargo run --release -p metallb-controller --example e2e_bench [-- --services N]`
//!
//! The controller runs as a child process (this example re-executed with `controller`), so
//! its memory is its own: peak RSS is the kernel's high-water mark (`VmHWM`). Services are
//! created by many concurrent client requests; a watch counts the ones with an address.

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, Write};
use std::net::{Ipv4Addr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Service;
use kube::api::{ListParams, PostParams};
use kube::runtime::watcher::{self, Event, watcher};
use kube::{Api, Client, ResourceExt};
use metallb_controller::Settings;
use metallb_runtime::cli::{ClientArgs, LogArgs, LogFormat, LogLevel};
use metallb_runtime::consts::CONTROLLER_LEASE;
use metallb_runtime::lease::LeaseTiming;
use metallb_testenv::{ControlPlane, Options};
use serde_json::json;

const NAMESPACE: &str = "metallb-system";
const SERVICES_NAMESPACE: &str = "bench";
const CONCURRENT_CREATES: usize = 64;
const PATIENCE: Duration = Duration::from_secs(600);

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("controller") {
        return controller_child(&args[2..]);
    }
    let services = match args.iter().position(|a| a == "--services") {
        Some(i) => args.get(i + 1).context("--services N")?.parse()?,
        None => 10_000,
    };
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(bench(services))
}

/// The controller process: `controller <kubeconfig> <metrics port>`; stops when stdin closes.
fn controller_child(args: &[String]) -> anyhow::Result<()> {
    let [kubeconfig, port] = args else {
        bail!("usage: e2e_bench controller <kubeconfig> <metrics port>");
    };
    let log = LogArgs {
        log_level: LogLevel::Warn,
        log_format: LogFormat::Text,
    };
    log.init();
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let client = client(Path::new(kubeconfig)).await?;
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, port.parse()?)).await?;
        let settings = Settings {
            namespace: NAMESPACE.to_owned(),
            lb_class: None,
            identity: format!("bench-{}", std::process::id()),
            lease_name: CONTROLLER_LEASE.to_owned(),
            lease_timing: LeaseTiming::default(),
        };
        let stdin_closed = async {
            let _ = tokio::task::spawn_blocking(|| {
                let mut line = String::new();
                while std::io::stdin().lock().read_line(&mut line).unwrap_or(0) > 0 {}
            })
            .await;
        };
        metallb_controller::run(client, settings, Some(listener.into()), stdin_closed).await?;
        Ok(())
    })
}

async fn client(kubeconfig: &Path) -> anyhow::Result<Client> {
    let args = ClientArgs {
        kubeconfig: Some(kubeconfig.to_owned()),
    };
    Ok(args.client().await?)
}

/// The controller child and where it serves `/readyz`.
struct Controller {
    child: Child,
    port: u16,
}

impl Controller {
    fn spawn(kubeconfig: &Path) -> anyhow::Result<Self> {
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
            .local_addr()?
            .port();
        let child = Command::new(std::env::current_exe()?)
            .arg("controller")
            .arg(kubeconfig)
            .arg(port.to_string())
            .stdin(Stdio::piped())
            .spawn()
            .context("starting the controller")?;
        Ok(Self { child, port })
    }

    /// Waits until `/readyz` answers 200: leading, and every Service converged once.
    async fn ready(&self) -> anyhow::Result<Duration> {
        let start = Instant::now();
        loop {
            if http_status(self.port, "/readyz").await == Some(200) {
                return Ok(start.elapsed());
            }
            if start.elapsed() > PATIENCE {
                bail!("the controller never became ready");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Resident memory now and at its peak, in bytes.
    fn memory(&self) -> anyhow::Result<(u64, u64)> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))?;
        let field = |name: &str| -> anyhow::Result<u64> {
            let line = status
                .lines()
                .find(|l| l.starts_with(name))
                .with_context(|| format!("{name} in /proc/<pid>/status"))?;
            let kib: u64 = line.split_whitespace().nth(1).context("a value")?.parse()?;
            Ok(kib * 1024)
        };
        Ok((field("VmRSS:")?, field("VmHWM:")?))
    }

    /// CPU time used so far (user and system).
    fn cpu_time(&self) -> anyhow::Result<Duration> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id()))?;
        // Fields after the command name, which is in parentheses and may hold spaces.
        let rest = stat.rsplit_once(')').context("/proc/<pid>/stat")?.1;
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks: u64 = fields[11].parse::<u64>()? + fields[12].parse::<u64>()?;
        // USER_HZ is 100 on Linux.
        Ok(Duration::from_millis(ticks * 10))
    }

    /// Closes its stdin (it releases the Lease and exits) and waits.
    fn stop(mut self) -> anyhow::Result<()> {
        drop(self.child.stdin.take());
        let status = self.child.wait()?;
        if !status.success() {
            bail!("the controller exited with {status}");
        }
        Ok(())
    }
}

async fn http_status(port: u16, path: &str) -> Option<u16> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect((Ipv4Addr::LOCALHOST, port))
        .await
        .ok()?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await.ok()?;
    response.split_whitespace().nth(1)?.parse().ok()
}

async fn bench(count: usize) -> anyhow::Result<()> {
    eprintln!("starting a control plane");
    let cp = ControlPlane::start(Options::default())?;
    cp.install_crds()?;
    for ns in [NAMESPACE, SERVICES_NAMESPACE] {
        cp.kubectl(["create", "namespace", ns])?;
    }
    let pool = json!({
        "apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool",
        "metadata": {"name": "bench", "namespace": NAMESPACE},
        "spec": {"addresses": ["10.200.0.0/16"]},
    });
    cp.kubectl_with_input(["apply", "-f", "-"], &pool.to_string())?;
    let client = client(cp.kubeconfig_path()).await?;

    let controller = Controller::spawn(cp.kubeconfig_path())?;
    controller.ready().await?;
    let (idle_rss, _) = controller.memory()?;
    let idle_cpu = controller.cpu_time()?;

    eprintln!("creating {count} services");
    let watched = tokio::spawn(assigned_at(client.clone(), count));
    let start = Instant::now();
    let created_at = create_services(&client, count).await?;
    let created = start.elapsed();
    let assigned = watched.await??;
    let assigned_after = start.elapsed();
    let (_, peak_rss) = controller.memory()?;
    let busy_cpu = controller.cpu_time()? - idle_cpu;
    let mut latencies: Vec<Duration> = created_at
        .iter()
        .map(|(name, created)| assigned[name].saturating_duration_since(*created))
        .collect();
    latencies.sort();
    let percentile = |p: usize| latencies[(latencies.len() * p / 100).min(latencies.len() - 1)];
    let before = addresses(&client).await?;
    let unique: HashSet<&String> = before.values().collect();
    if unique.len() != count {
        bail!("{} distinct addresses for {count} services", unique.len());
    }
    controller.stop()?;

    eprintln!("restarting the controller over {count} services");
    let restarted = Controller::spawn(cp.kubeconfig_path())?;
    let ready_after = restarted.ready().await?;
    let (_, restart_peak) = restarted.memory()?;
    let after = addresses(&client).await?;
    let moved = before
        .iter()
        .filter(|(k, v)| after.get(*k) != Some(*v))
        .count();
    restarted.stop()?;

    let mib = |bytes: u64| format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0));
    let secs = |d: Duration| format!("{:.2} s", d.as_secs_f64());
    let rate = count as f64 / assigned_after.as_secs_f64();
    let rows = [
        ("services (one IPv4 /16 pool)", format!("{count}")),
        (
            "created by the client",
            format!(
                "{} ({CONCURRENT_CREATES} concurrent requests)",
                secs(created)
            ),
        ),
        (
            "every service has an address, from the first create",
            secs(assigned_after),
        ),
        ("end-to-end rate", format!("{rate:.0} services/s")),
        (
            "create returned -> address seen, p50 / p99 / max",
            format!(
                "{} / {} / {} ms",
                percentile(50).as_millis(),
                percentile(99).as_millis(),
                latencies.last().map_or(0, Duration::as_millis)
            ),
        ),
        ("controller CPU time for the burst", secs(busy_cpu)),
        ("distinct addresses", format!("{}", unique.len())),
        ("controller RSS, idle before", mib(idle_rss)),
        ("controller peak RSS (VmHWM)", mib(peak_rss)),
        ("restart: ready (all converged) after", secs(ready_after)),
        ("restart: addresses changed", format!("{moved}")),
        ("restart: peak RSS", mib(restart_peak)),
    ];
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "| {:width$} | value |",
        "end to end, metallb-controller"
    )?;
    writeln!(out, "|{}|-------|", "-".repeat(width + 2))?;
    for (k, v) in rows {
        writeln!(out, "| {k:width$} | {v} |")?;
    }
    cp.stop()?;
    Ok(())
}

/// Creates `count` Services, many requests at once; when each create returned.
async fn create_services(client: &Client, count: usize) -> anyhow::Result<Vec<(String, Instant)>> {
    let api = Api::<Service>::namespaced(client.clone(), SERVICES_NAMESPACE);
    futures::stream::iter(0..count)
        .map(|i| {
            let api = api.clone();
            async move {
                let name = format!("svc-{i}");
                let service: Service = serde_json::from_value(json!({
                    "metadata": {"name": name},
                    "spec": {
                        "type": "LoadBalancer",
                        // The node port range holds fewer than 3,000 ports.
                        "allocateLoadBalancerNodePorts": false,
                        "selector": {"app": format!("app-{i}")},
                        "ports": [{"port": 80, "protocol": "TCP"}],
                    },
                }))?;
                api.create(&PostParams::default(), &service).await?;
                anyhow::Ok((name, Instant::now()))
            }
        })
        .buffer_unordered(CONCURRENT_CREATES)
        .try_collect()
        .await
}

/// Watches the Services until `count` have an address; when each was first seen with one.
async fn assigned_at(client: Client, count: usize) -> anyhow::Result<HashMap<String, Instant>> {
    let api = Api::<Service>::namespaced(client, SERVICES_NAMESPACE);
    let mut assigned = HashMap::new();
    let mut events = watcher(api, watcher::Config::default()).boxed();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while assigned.len() < count {
        let event = tokio::time::timeout_at(deadline, events.try_next())
            .await
            .context("waiting for addresses")??
            .context("the watch ended")?;
        if let Event::Apply(svc) | Event::InitApply(svc) = event
            && has_address(&svc)
        {
            assigned.entry(svc.name_any()).or_insert_with(Instant::now);
        }
    }
    Ok(assigned)
}

fn has_address(svc: &Service) -> bool {
    svc.status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .is_some_and(|i| !i.is_empty())
}

/// Every Service's first address, by name.
async fn addresses(client: &Client) -> anyhow::Result<HashMap<String, String>> {
    let api = Api::<Service>::namespaced(client.clone(), SERVICES_NAMESPACE);
    let list = api.list(&ListParams::default()).await?;
    Ok(list
        .items
        .iter()
        .filter_map(|svc| {
            let ip = svc
                .status
                .as_ref()?
                .load_balancer
                .as_ref()?
                .ingress
                .as_ref()?;
            Some((svc.name_any(), ip.first()?.ip.clone()?))
        })
        .collect())
}
