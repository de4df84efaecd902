//! `metallb-controller`: assigns LoadBalancer IPs to Services. SIGTERM or Ctrl-C releases the
//! Lease and stops; losing the Lease ends the process with an error so that it restarts
//! clean.

use std::io::IsTerminal;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, ValueEnum};
use kube::Client;
use kube::config::{KubeConfigOptions, Kubeconfig};
use metallb_api::DEFAULT_NAMESPACE;
use metallb_controller::leader::LeaseTiming;
use metallb_controller::{DEFAULT_LEASE, DEFAULT_METRICS_PORT, Settings};
use tokio::net::TcpListener;
use tracing::{error, info};
use tracing_subscriber::EnvFilter;

/// Assigns external IPs from MetalLB address pools to Services of type LoadBalancer.
#[derive(Debug, Parser)]
#[command(name = "metallb-controller", version)]
struct Args {
    /// The MetalLB namespace, holding the pools and the controller's Lease.
    #[arg(long, env = "METALLB_NAMESPACE", default_value = DEFAULT_NAMESPACE)]
    namespace: String,
    /// Handle only Services with this `spec.loadBalancerClass`; unset handles only Services
    /// without one.
    #[arg(long, env = "METALLB_LB_CLASS")]
    lb_class: Option<String>,
    /// Log level.
    #[arg(long, value_enum, default_value_t = LogLevel::Info)]
    log_level: LogLevel,
    /// Kubeconfig to use; by default the in-cluster configuration or `$KUBECONFIG`.
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// Address of `/metrics`, `/healthz` and `/readyz`; by default every address (IPv6 and
    /// IPv4, or IPv4 alone where IPv6 is disabled).
    #[arg(long)]
    metrics_host: Option<IpAddr>,
    /// Port of `/metrics`, `/healthz` and `/readyz`.
    #[arg(long, default_value_t = DEFAULT_METRICS_PORT)]
    metrics_port: u16,
    /// This replica's name in the Lease and in events.
    #[arg(long, env = "POD_NAME")]
    pod_name: Option<String>,
    /// Name of the Lease that elects the active replica.
    #[arg(long, default_value = DEFAULT_LEASE)]
    lease_name: String,
}

/// MetalLB's log levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum LogLevel {
    All,
    Debug,
    Info,
    Warn,
    Error,
    None,
}

impl LogLevel {
    fn directive(self) -> &'static str {
        match self {
            LogLevel::All => "trace",
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
            LogLevel::None => "off",
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(args.log_level.directive()));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            error!("{error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    rustls::crypto::ring::default_provider()
        .install_default()
        .map_err(|_| anyhow::anyhow!("a rustls crypto provider was already installed"))?;
    let client = client(args.kubeconfig.as_deref()).await?;
    let listener = listen(args.metrics_host, args.metrics_port).await?;
    let identity = args
        .pod_name
        .filter(|name| !name.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok().filter(|h| !h.is_empty()))
        .unwrap_or_else(|| format!("metallb-controller-{}", std::process::id()));
    let settings = Settings {
        namespace: args.namespace,
        lb_class: args.lb_class.filter(|class| !class.is_empty()),
        identity,
        lease_name: args.lease_name,
        lease_timing: LeaseTiming::default(),
    };
    info!(
        namespace = %settings.namespace,
        lb_class = settings.lb_class.as_deref().unwrap_or(""),
        identity = %settings.identity,
        "MetalLB controller starting"
    );
    metallb_controller::run(client, settings, Some(listener), shutdown_signal()).await?;
    Ok(())
}

async fn listen(host: Option<IpAddr>, port: u16) -> anyhow::Result<TcpListener> {
    let any_v6 = SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), port);
    let any_v4 = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port);
    let addr = match host {
        Some(host) => SocketAddr::new(host, port),
        None => match TcpListener::bind(any_v6).await {
            Ok(listener) => return Ok(listener),
            Err(_) => any_v4,
        },
    };
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))
}

async fn client(kubeconfig: Option<&std::path::Path>) -> anyhow::Result<Client> {
    let config = match kubeconfig {
        Some(path) => {
            let kubeconfig = Kubeconfig::read_from(path)
                .with_context(|| format!("reading {}", path.display()))?;
            kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
                .await
                .context("loading the kubeconfig")?
        }
        None => kube::Config::infer()
            .await
            .context("finding the cluster configuration")?,
    };
    Client::try_from(config).context("building the Kubernetes client")
}

/// Resolves on SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing a SIGTERM handler");
    tokio::select! {
        _ = term.recv() => info!("SIGTERM received"),
        _ = tokio::signal::ctrl_c() => info!("interrupt received"),
    }
}
