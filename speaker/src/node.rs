//! The speaker on a cluster node, with the arguments the operator renders: it keeps this
//! node's speaker Lease renewed (the other speakers watch these Leases to know who is alive),
//! watches the others' Leases, and serves `/healthz`, `/readyz` (ready once the Lease has been
//! renewed) and `/metrics`. On SIGTERM it deletes its Lease, so the others drop it at once.

use std::sync::Arc;
use std::time::Instant;

use anyhow::Context as _;
use metallb_runtime::admin::{self, Readiness};
use metallb_runtime::lease::{NodeLease, NodeLeaseObserver};
use metallb_runtime::shutdown::Shutdown;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::sync::watch;
use tracing::info;

use crate::cli::NodeArgs;

/// Runs until SIGTERM or Ctrl-C.
pub async fn run(args: NodeArgs) -> anyhow::Result<()> {
    let node = args
        .node_name
        .clone()
        .filter(|n| !n.is_empty())
        .context("the node name is unknown: set NODE_NAME or --node-name")?;
    let client = args.client.client().await?;
    let listener = args
        .metrics
        .bind()
        .await
        .with_context(|| format!("binding the metrics port {}", args.metrics.metrics_port))?;

    let mut registry = Registry::default();
    let alive_nodes = Gauge::<i64>::default();
    registry.register(
        "metallb_speaker_alive_nodes",
        "Speakers whose node Lease is fresh, as seen from this node",
        alive_nodes.clone(),
    );
    let (ready, ready_rx) = watch::channel(false);
    let readiness = Readiness::new(ready_rx, "node Lease not renewed yet");
    let shutdown = Shutdown::on_signals();
    let server = tokio::spawn(admin::serve(
        listener,
        admin::router(Arc::new(registry), readiness),
        shutdown.wait(),
    ));

    let lease = NodeLease::new(
        client.clone(),
        &args.scope.namespace,
        &node,
        args.fencing_lease_duration,
    );
    let mut renewals = lease.subscribe();
    let renewing = tokio::spawn(lease.run_until(shutdown.wait()));
    let (observer, watching) = NodeLeaseObserver::watch(client, &args.scope.namespace);
    let watching = tokio::spawn(watching);
    info!(%node, namespace = %args.scope.namespace, "speaker running on the node");
    let duration = args.fencing_lease_duration;
    let stopped = shutdown.wait();
    tokio::pin!(stopped);
    loop {
        let recheck = observer
            .next_expiry(Instant::now())
            .map_or(duration, |at| at.saturating_duration_since(Instant::now()));
        tokio::select! {
            () = &mut stopped => break,
            _ = renewals.changed() => {
                let fresh = renewals.borrow_and_update().fresh(duration, Instant::now());
                ready.send_replace(fresh);
            }
            () = observer.changed() => {}
            () = tokio::time::sleep(recheck) => {}
        }
        let alive = observer.alive(Instant::now());
        alive_nodes.set(i64::try_from(alive.len()).unwrap_or(i64::MAX));
    }
    renewing.await?;
    watching.abort();
    server.await??;
    Ok(())
}
