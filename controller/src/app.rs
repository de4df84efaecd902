//! The whole controller: HTTP endpoints at once, the reconcile loop once this replica holds
//! the Lease.

use std::future::Future;
use std::sync::Arc;

use futures::FutureExt;
use kube::Client;
use kube::runtime::events::Reporter;
use prometheus_client::registry::Registry;
use tokio::sync::watch;
use tracing::{info, warn};

use metallb_runtime::admin::{self, Readiness};
use metallb_runtime::consts::CONTROLLER_FIELD_MANAGER;
use metallb_runtime::events::EventRecorder;
use metallb_runtime::lease::{Elector, LeaseTiming};

use crate::error::Error;
use crate::metrics::Metrics;
use crate::reconcile::{DRAIN, Reconciler};

/// Event publishers running at once.
const EVENT_WORKERS: usize = 8;

/// How the controller runs.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The MetalLB namespace: pools and the Lease live there.
    pub namespace: String,
    /// `--lb-class`: only Services of this class are handled; `None` handles those without.
    pub lb_class: Option<String>,
    /// This replica's name in the Lease and in events (the pod name in a cluster).
    pub identity: String,
    /// Name of the Lease.
    pub lease_name: String,
    /// Lease timing.
    pub lease_timing: LeaseTiming,
}

/// Runs the controller until `shutdown` resolves (then the Lease is released) or leadership
/// is lost. `listener`, when given, serves `/metrics`, `/healthz` and `/readyz` meanwhile
/// (a bound `TcpListener` converts into a plain one).
pub async fn run(
    client: Client,
    settings: Settings,
    listener: Option<admin::Listener>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let shutdown = shutdown.boxed().shared();
    let mut registry = Registry::default();
    let metrics = Metrics::register(&mut registry);
    let (ready, ready_rx) = watch::channel(false);
    let http = listener.map(|listener| {
        let readiness = Readiness::new(ready_rx, "not leading or not synced yet");
        let router = admin::router(Arc::new(registry), readiness);
        tokio::spawn(admin::serve(listener, router, shutdown.clone()))
    });

    let mut elector = Elector::new(
        client.clone(),
        &settings.namespace,
        &settings.lease_name,
        &settings.identity,
        settings.lease_timing,
    );
    let leading = tokio::select! {
        () = elector.acquire() => true,
        () = shutdown.clone() => false,
    };
    let mut outcome = Ok(());
    if leading {
        let reporter = Reporter {
            controller: CONTROLLER_FIELD_MANAGER.to_owned(),
            instance: Some(settings.identity.clone()),
        };
        let (events, workers) = EventRecorder::start(client.clone(), reporter, EVENT_WORKERS);
        let inputs = crate::watch::inputs(client.clone(), &settings.namespace);
        let reconciler = Reconciler::new(
            client,
            settings.namespace.clone(),
            settings.lb_class.clone(),
            events,
            metrics,
            ready,
        );
        tokio::select! {
            () = reconciler.run(inputs, shutdown.clone()) => {
                info!("stopping");
                if tokio::time::timeout(DRAIN, elector.release()).await.is_err() {
                    warn!("could not release the lease in time; it expires on its own");
                }
            }
            lost = elector.keep() => {
                outcome = Err(Error::LeadershipLost {
                    lease: settings.lease_name.clone(),
                    reason: lost,
                });
            }
        }
        // The loop is gone, and with it the sink: the workers stop once the queue is empty.
        if tokio::time::timeout(DRAIN, workers.join_all())
            .await
            .is_err()
        {
            warn!("stopped with events still unpublished");
        }
    }
    if let Some(http) = http {
        if outcome.is_err() {
            http.abort();
        } else if let Ok(served) = http.await {
            served?;
        }
    }
    outcome
}
