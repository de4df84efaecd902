//! The whole operator process. Every replica serves the webhooks and the admin endpoints; the
//! replica holding the Lease also reconciles. SIGTERM or Ctrl-C stops reconciling, releases
//! the Lease and stops the servers. Losing the Lease, or a server failing, ends the process
//! with an error so that Kubernetes restarts it clean.

use std::sync::Arc;
use std::time::Duration;

use anyhow::anyhow;
use metallb_runtime::admin::{self, Readiness};
use metallb_runtime::lease::Elector;
use metallb_runtime::shutdown::Shutdown;
use metallb_webhooks::Endpoint;
use prometheus_client::registry::Registry;
use tokio::sync::{mpsc, watch};
use tracing::{error, info};

use crate::cli::{MetricsTls, RunArgs};
use crate::controller::{self, Context};
use crate::metrics::Metrics;
use crate::render::{Monitoring, OperandSettings};
use crate::webhook::{self, Certificates, WebhookSettings};

/// How long the servers get to stop after the reconciler has.
const SERVER_DRAIN: Duration = Duration::from_secs(10);

fn default_identity() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    format!("{}-{}", host.trim(), std::process::id())
}

/// How the operands' metrics are exposed, decided once at start from what the cluster serves:
/// ServiceMonitors when `monitoring.coreos.com` has the kind; TLS as `tls` says, `auto`
/// meaning OpenShift (`config.openshift.io` served), whose service CA issues the certificate.
async fn monitoring(client: &kube::Client, tls: MetricsTls) -> Monitoring {
    let served =
        |group: &'static str| async move { kube::discovery::group(client, group).await.ok() };
    let service_monitors = served("monitoring.coreos.com").await.is_some_and(|group| {
        group
            .recommended_resources()
            .iter()
            .any(|(resource, _)| resource.kind == "ServiceMonitor")
    });
    let tls = match tls {
        MetricsTls::True => true,
        MetricsTls::False => false,
        MetricsTls::Auto => served("config.openshift.io").await.is_some(),
    };
    info!(service_monitors, tls, "operand metrics");
    Monitoring {
        service_monitors,
        tls,
    }
}

/// Runs the operator until SIGTERM or Ctrl-C, a lost Lease or a failed server.
pub async fn run(args: RunArgs) -> anyhow::Result<()> {
    let timing = args.lease.timing()?;
    let client = args.client.client().await?;
    let mut registry = Registry::default();
    let metrics = Arc::new(Metrics::register(&mut registry));
    let shutdown = Shutdown::on_signals();

    // A server that fails ends the process; one that stops because we are stopping does not.
    let (fatal, mut fatal_errors) = mpsc::unbounded_channel::<anyhow::Error>();
    let (ready, ready_rx) = watch::channel(false);
    let readiness = Readiness::new(ready_rx, "webhook not serving yet");
    let router = admin::router(Arc::new(registry), readiness);
    let listener = tokio::net::TcpListener::bind(args.http_addr).await?;
    let http_server = {
        let (fatal, addr) = (fatal.clone(), args.http_addr);
        let served = admin::serve(listener, router, shutdown.wait());
        tokio::spawn(async move {
            if let Err(err) = served.await {
                let _ = fatal.send(anyhow!(err).context(format!("HTTP server on {addr}")));
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
        let (client, metrics, stopped) = (client.clone(), metrics.clone(), shutdown.wait());
        tokio::spawn(async move {
            if let Err(err) = webhook::run(client, webhook_settings, ready, metrics, stopped).await
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
            monitoring: monitoring(&client, args.metrics_tls).await,
        },
        metrics: metrics.clone(),
    });
    let reconciling = async {
        if !args.leader_elect {
            controller::run(ctx, shutdown.wait()).await;
            return Ok(());
        }
        let identity = args.identity.unwrap_or_else(default_identity);
        let mut elector =
            Elector::new(client, &args.namespace, &args.lease_name, &identity, timing);
        tokio::select! {
            () = elector.acquire() => {}
            () = shutdown.wait() => return Ok(()),
        }
        metrics.leader.set(1);
        let outcome = tokio::select! {
            () = controller::run(ctx, shutdown.wait()) => Ok(()),
            lost = elector.keep() => Err(anyhow!("lost the leader lease: {lost}")),
        };
        metrics.leader.set(0);
        if outcome.is_ok() {
            elector.release().await;
        }
        outcome
    };
    let outcome = tokio::select! {
        outcome = reconciling => outcome,
        Some(err) = fatal_errors.recv() => Err(err),
    };
    info!("stopping");
    shutdown.trigger();
    let servers = futures::future::join(http_server, webhooks);
    if tokio::time::timeout(SERVER_DRAIN, servers).await.is_err() {
        error!("servers did not stop within {SERVER_DRAIN:?}");
    }
    outcome
}
