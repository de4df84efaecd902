//! The speaker on a cluster node, with the arguments the operator renders. One task owns the
//! state: it keeps this node's speaker Lease renewed and watches the others' (who is alive),
//! watches what the planner reads, plans on every change, and hands the plan to the engine.
//! A configuration that cannot be planned as it stands keeps the last good plan running, sets
//! `metallb_k8s_client_config_stale_bool` and logs each object and field at fault. On SIGTERM
//! it leaves (GRACEFUL_SHUTDOWN for the delay when asked, then Cease) and deletes its Lease.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use metallb_plan as plan;
use metallb_runtime::admin::{self, Readiness};
use metallb_runtime::lease::{NodeLease, NodeLeaseObserver};
use metallb_runtime::shutdown::Shutdown;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::sync::watch;
use tracing::{debug, info, warn};

use crate::cli::NodeArgs;
use crate::cluster::{self, Scope, Watches};
use crate::config::Plan;
use crate::engine::Engine;

/// Changes closer together than this are planned once.
const SETTLE: Duration = Duration::from_millis(20);

/// The speaker's own gauges (MetalLB's names).
#[derive(Debug, Default, Clone)]
struct Gauges {
    stale: Gauge,
    loaded: Gauge,
    alive: Gauge,
}

impl Gauges {
    fn register(&self, registry: &mut Registry) {
        let metallb = registry.sub_registry_with_prefix("metallb");
        metallb.register(
            "k8s_client_config_stale_bool",
            "1 when the running configuration is not the cluster's latest because that one is invalid",
            self.stale.clone(),
        );
        metallb.register(
            "k8s_client_config_loaded_bool",
            "1 once a configuration from the cluster has been loaded",
            self.loaded.clone(),
        );
        metallb.register(
            "speaker_alive_nodes",
            "Speakers whose node Lease is fresh, as seen from this node",
            self.alive.clone(),
        );
    }
}

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
    let gauges = Gauges::default();
    let mut registry = Registry::default();
    gauges.register(&mut registry);
    let (ready, ready_rx) = watch::channel(false);
    let readiness = Readiness::new(
        ready_rx,
        "node Lease not renewed or configuration not loaded",
    );
    let shutdown = Shutdown::on_signals();
    let server = tokio::spawn(admin::serve(
        listener,
        admin::router(Arc::new(registry), readiness),
        shutdown.wait(),
    ));

    let namespace = args.scope.namespace.clone();
    let duration = args.fencing_lease_duration;
    let lease = NodeLease::new(client.clone(), &namespace, &node, duration);
    let mut renewals = lease.subscribe();
    let renewing = tokio::spawn(lease.run_until(shutdown.wait()));
    let (observer, observing) = NodeLeaseObserver::watch(client.clone(), &namespace);
    let observing = tokio::spawn(observing);
    let (watches, watching) = Watches::start(&client, &namespace);
    let watching = tokio::spawn(watching);

    let scope = Scope {
        node: node.clone(),
        namespace: namespace.clone(),
        lb_class: args.scope.lb_class(),
        router_id: match args.host_ip {
            Some(IpAddr::V4(ip)) => Some(ip),
            _ => None,
        },
        policy: plan::Policy {
            ignore_exclude_lb: false,
            drain: plan::Drain {
                on_cordon: args.drain_on_cordon,
                taint_keys: args.drain_taint_keys.iter().cloned().collect(),
                never_blackhole: args.never_blackhole,
            },
        },
    };
    let mut engine = Engine::start(Plan::default(), Some(args.control.clone()))?;
    info!(%node, %namespace, "speaker running on the node");
    tokio::select! {
        () = watches.ready() => {}
        () = shutdown.wait() => {}
    }
    let mut last = Last::default();
    let mut dirty = true;
    let stopped = shutdown.wait();
    tokio::pin!(stopped);
    loop {
        if dirty && !shutdown.is_triggered() {
            dirty = false;
            let alive = observer.alive(Instant::now());
            gauges
                .alive
                .set(i64::try_from(alive.len()).unwrap_or(i64::MAX));
            last.replan(&watches, &scope, alive, &mut engine, &gauges);
            let lease_fresh = renewals.borrow().fresh(duration, Instant::now());
            ready.send_replace(lease_fresh && gauges.loaded.get() == 1);
        }
        let expiry = observer
            .next_expiry(Instant::now())
            .map_or(duration, |at| at.saturating_duration_since(Instant::now()));
        tokio::select! {
            () = &mut stopped => break,
            event = engine.next_event() => engine.on_driver_event(event),
            () = watches.changed() => {
                tokio::time::sleep(SETTLE).await;
                dirty = true;
            }
            () = observer.changed() => dirty = true,
            _ = renewals.changed() => dirty = true,
            () = tokio::time::sleep(expiry) => dirty = true,
        }
    }
    engine
        .leave(args.graceful_shutdown, args.graceful_shutdown_delay)
        .await;
    renewing.await?;
    observing.abort();
    watching.abort();
    server.await??;
    Ok(())
}

/// The plan the engine carries out, and the problems last reported.
#[derive(Debug, Default)]
struct Last {
    plan: Option<plan::Plan>,
    problems: Vec<(String, String)>,
}

impl Last {
    /// Plans from what the watches hold and hands a changed plan to the engine; problems are
    /// logged when they change, not at every replan.
    fn replan(
        &mut self,
        watches: &Watches,
        scope: &Scope,
        alive: std::collections::BTreeSet<String>,
        engine: &mut Engine,
        gauges: &Gauges,
    ) {
        match cluster::plan_now(watches, scope, alive) {
            Ok((planned, engine_plan)) => {
                gauges.stale.set(0);
                gauges.loaded.set(1);
                if !self.problems.is_empty() {
                    info!("configuration accepted again");
                    self.problems.clear();
                }
                if self.plan.as_ref() != Some(&planned) {
                    debug!(
                        layer2 = planned.layer2.len(),
                        peers = planned.peers.len(),
                        draining = ?planned.draining,
                        "new plan"
                    );
                    engine.apply(engine_plan);
                    engine.publish(planned.clone());
                    self.plan = Some(planned);
                }
            }
            Err(stale) => {
                gauges.stale.set(1);
                if stale.problems != self.problems {
                    for (object, reason) in &stale.problems {
                        warn!(%object, %reason, "configuration refused; the running one stays");
                    }
                    self.problems = stale.problems;
                }
            }
        }
    }
}
