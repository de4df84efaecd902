//! `metallb-operator`: runs the operator, or with `manifests` writes the plain install.
//!
//! Every replica serves the webhooks and the HTTP endpoints; the replica holding the Lease
//! also reconciles. SIGTERM or Ctrl-C stops reconciling, releases the Lease and stops the
//! servers. Losing the Lease, or a server failing, ends the process with an error so that
//! Kubernetes restarts it clean.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::ExitCode,
    sync::Arc,
    time::Duration,
};

use anyhow::{Context as _, anyhow};
use clap::{ArgAction, Parser, Subcommand};
use kube::{
    Api, Client,
    config::{KubeConfigOptions, Kubeconfig},
};
use metallb_api::DEFAULT_NAMESPACE;
use metallb_operator::{
    controller::{self, Context},
    http, install,
    leader::{self, LeaseLock},
    metrics::Metrics,
    render::{DEFAULT_OPERAND_IMAGE, OperandSettings},
    webhook::{self, Certificates, WebhookSettings},
};
use metallb_webhooks::Endpoint;
use prometheus_client::registry::Registry;
use tokio::sync::{mpsc, watch};
use tracing::{error, info};

/// The MetalLB operator for metallb-rs.
#[derive(Debug, Parser)]
#[command(
    name = "metallb-operator",
    version,
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Write the plain install into DIR (default: manifests/install of the source tree).
    Manifests {
        /// Write nothing; fail when DIR differs from what would be written.
        #[arg(long)]
        check: bool,
        dir: Option<PathBuf>,
    },
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    /// Namespace of the operator, the MetalLB resource and the operands.
    #[arg(long, env = "OPERATOR_NAMESPACE", default_value = DEFAULT_NAMESPACE)]
    namespace: String,
    /// Image of the controller and the speakers.
    #[arg(long, env = "OPERAND_IMAGE", default_value = DEFAULT_OPERAND_IMAGE)]
    operand_image: String,
    /// Kubeconfig file; by default the in-cluster configuration or $KUBECONFIG.
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// Listen address of /healthz, /readyz and /metrics (plain HTTP).
    #[arg(long, default_value_t = SocketAddr::from(([0, 0, 0, 0], metallb_operator::HTTP_PORT)))]
    http_addr: SocketAddr,
    /// Listen address of the HTTPS webhook server.
    #[arg(long, default_value_t = SocketAddr::from(([0, 0, 0, 0], metallb_operator::WEBHOOK_PORT)))]
    webhook_addr: SocketAddr,
    /// Serve the webhooks with tls.crt and tls.key from this directory (reloaded when they
    /// change) instead of generated certificates; the caBundles are then left to whoever
    /// mounts them (OLM).
    #[arg(long, conflicts_with = "webhook_url")]
    cert_dir: Option<PathBuf>,
    /// Register the webhooks at this URL instead of the Service, e.g. https://127.0.0.1:9443
    /// for an API server running on this machine.
    #[arg(long, value_parser = parse_webhook_url)]
    webhook_url: Option<String>,
    /// Service through which the API server calls the webhooks.
    #[arg(long, default_value = webhook::SERVICE)]
    webhook_service: String,
    /// Reconcile only while holding the Lease; false for a single replica run by hand.
    #[arg(long, default_value_t = true, action = ArgAction::Set)]
    leader_elect: bool,
    /// Name of the Lease in the operator's namespace.
    #[arg(long, default_value = leader::DEFAULT_LEASE)]
    lease_name: String,
    /// Identity written into the Lease; default: the host name and process id.
    #[arg(long, env = "POD_NAME")]
    identity: Option<String>,
    /// Log JSON lines instead of text.
    #[arg(long)]
    log_json: bool,
}

fn parse_webhook_url(url: &str) -> Result<String, String> {
    let url = url.trim_end_matches('/');
    match webhook::url_host(url) {
        Some(_) => Ok(url.to_owned()),
        None => Err("expected https://HOST[:PORT]".to_owned()),
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    if rustls::crypto::ring::default_provider()
        .install_default()
        .is_err()
    {
        eprintln!("metallb-operator: another rustls crypto provider is already installed");
        return ExitCode::FAILURE;
    }
    let cli = Cli::parse();
    init_tracing(cli.run.log_json);
    let result = match cli.command {
        Some(Command::Manifests { check, dir }) => manifests(check, dir),
        None => run(cli.run).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            error!("{err:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn manifests(check: bool, dir: Option<PathBuf>) -> anyhow::Result<()> {
    let dir =
        dir.unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests/install"));
    let files = install::files(DEFAULT_NAMESPACE, DEFAULT_OPERAND_IMAGE);
    let stale = install::sync(&dir, &files, !check)?;
    if check && !stale.is_empty() {
        return Err(anyhow!(
            "stale manifests in {}: {}; run `cargo run -p metallb-operator -- manifests`",
            dir.display(),
            stale.join(", ")
        ));
    }
    for name in stale {
        println!("wrote {name}");
    }
    Ok(())
}

async fn client(kubeconfig: Option<&Path>) -> anyhow::Result<Client> {
    let config = match kubeconfig {
        Some(path) => {
            let file = Kubeconfig::read_from(path)
                .with_context(|| format!("reading {}", path.display()))?;
            kube::Config::from_custom_kubeconfig(file, &KubeConfigOptions::default()).await?
        }
        None => kube::Config::infer().await?,
    };
    Ok(Client::try_from(config)?)
}

/// Resolves on SIGTERM or Ctrl-C.
async fn termination() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(term) => term,
        Err(err) => {
            error!(%err, "cannot watch SIGTERM; only Ctrl-C stops the operator");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

fn default_identity() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    format!("{}-{}", host.trim(), std::process::id())
}

async fn run(args: RunArgs) -> anyhow::Result<()> {
    let client = client(args.kubeconfig.as_deref()).await?;
    let mut registry = Registry::default();
    let metrics = Arc::new(Metrics::register(&mut registry));

    let (stop, stopping) = watch::channel(false);
    let stopped = move || {
        let mut stopping = stopping.clone();
        async move {
            let _ = stopping.wait_for(|stop| *stop).await;
        }
    };
    let signalled = stop.clone();
    tokio::spawn(async move {
        termination().await;
        info!("stopping");
        signalled.send_replace(true);
    });

    // A server that fails ends the process; one that stops because we are stopping does not.
    let (fatal, mut fatal_errors) = mpsc::unbounded_channel::<anyhow::Error>();
    let (ready, ready_rx) = watch::channel(false);
    let router = http::router(Arc::new(registry), ready_rx);
    let http_server = {
        let fatal = fatal.clone();
        let shutdown = stopped();
        tokio::spawn(async move {
            if let Err(err) = http::serve(args.http_addr, router, shutdown).await {
                let _ =
                    fatal.send(anyhow!(err).context(format!("HTTP server on {}", args.http_addr)));
            }
        })
    };
    let certificates = match (args.cert_dir, args.webhook_url) {
        (Some(dir), _) => Certificates::Mounted(dir),
        (None, Some(url)) => Certificates::Managed {
            endpoint: Endpoint::Url(url),
        },
        (None, None) => Certificates::Managed {
            endpoint: Endpoint::Service {
                name: args.webhook_service,
                namespace: args.namespace.clone(),
            },
        },
    };
    let webhook_settings = WebhookSettings {
        addr: args.webhook_addr,
        namespace: args.namespace.clone(),
        certificates,
    };
    let webhooks = {
        let (client, metrics, shutdown) = (client.clone(), metrics.clone(), stopped());
        tokio::spawn(async move {
            if let Err(err) = webhook::run(client, webhook_settings, ready, metrics, shutdown).await
            {
                let _ = fatal.send(anyhow!(err).context("webhook server"));
            }
        })
    };

    let ctx = Arc::new(Context {
        client: client.clone(),
        settings: OperandSettings {
            namespace: args.namespace.clone(),
            image: args.operand_image,
        },
        metrics: metrics.clone(),
    });
    let reconciling = async {
        if !args.leader_elect {
            controller::run(ctx, stopped()).await;
            return Ok(());
        }
        let identity = args.identity.unwrap_or_else(default_identity);
        let lock = LeaseLock::new(
            Api::namespaced(client, &args.namespace),
            args.lease_name,
            identity,
        );
        let mut leadership = tokio::select! {
            leadership = lock.acquire() => leadership,
            () = stopped() => return Ok(()),
        };
        metrics.leader.set(1);
        let outcome = tokio::select! {
            () = controller::run(ctx, stopped()) => Ok(()),
            () = leadership.lost() => Err(anyhow!("lost the leader lease")),
        };
        metrics.leader.set(0);
        leadership.release().await;
        outcome
    };
    let outcome = tokio::select! {
        outcome = reconciling => outcome,
        Some(err) = fatal_errors.recv() => Err(err),
    };
    stop.send_replace(true);
    let servers = futures::future::join(http_server, webhooks);
    if tokio::time::timeout(Duration::from_secs(10), servers)
        .await
        .is_err()
    {
        error!("servers did not stop within 10s");
    }
    outcome
}
