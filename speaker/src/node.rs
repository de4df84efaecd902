//! The speaker on a cluster node, with the arguments the operator renders. One task owns the
//! state: it keeps this node's speaker Lease renewed and watches the others' (who is alive),
//! watches what the planner reads, plans on every change, and hands the plan to the engine.
//! A configuration that cannot be planned as it stands keeps the last good plan running, sets
//! `metallb_k8s_client_config_stale_bool` and logs each object and field at fault. On SIGTERM
//! it leaves (GRACEFUL_SHUTDOWN for the delay when asked, then withdrawal and Cease) and
//! deletes its Lease.
//!
//! A drain is handed over like a planned exit while the sessions stay up (the engine's
//! [`HANDOVER`] and GRACEFUL_SHUTDOWN), logged when it starts and ends with its trigger and
//! shown by `metallb_speaker_draining`. A Service this draining node keeps because nobody
//! else is eligible (never blackhole) gets a Warning event, `DrainingLastNode`, once per
//! change, and counts in `metallb_speaker_never_blackhole_services`.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use metallb_liveness::{NodeReason, OwnState};
use metallb_plan as plan;
use metallb_plan::{DrainTrigger, Reason, ServiceKey, ServicePlan};
use metallb_runtime::admin::{self, Readiness};
use metallb_runtime::lease::{NodeLease, NodeLeaseObserver};
use metallb_runtime::shutdown::Shutdown;
use prometheus_client::registry::Registry;
use tokio::sync::watch;
use tracing::{debug, info, warn};

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use k8s_openapi::jiff::Timestamp;
use kube::runtime::events::Reporter;
use kube::runtime::reflector::ObjectRef;
use kube::{Api, Client, Resource as _};
use metallb_runtime::consts::SPEAKER_FIELD_MANAGER;
use metallb_runtime::events::{EventRecorder, Notice, Severity};

use crate::cli::NodeArgs;
use crate::cluster::{self, Scope, Watches};
use crate::config::Plan;
use crate::engine::{Engine, HANDOVER};
use crate::event::DriverEvent;
use crate::excludel2;
use crate::membership::{self, MAX_DATAGRAM, Membership};
use crate::metrics::{Metrics, announcements};
use crate::status::{self, StatusWriter};

/// Changes closer together than this are planned once.
const SETTLE: Duration = Duration::from_millis(20);

/// Under a burst of changes, plans are at least this many times as far apart as the last one
/// took: with 10,000 Services a plan costs a good part of a second on a loaded node, and
/// planning back to back left the speaker's one thread no time for anything else.
const SETTLE_PER_PLAN: u32 = 2;

/// How often driver figures are copied into the metrics.
const METRICS_REFRESH: Duration = Duration::from_secs(1);

/// Event publishers running at once.
const EVENT_WORKERS: usize = 2;

/// How long unpublished events may hold up the exit.
const EVENT_DRAIN: Duration = Duration::from_secs(2);

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
        .listen(&client)
        .await
        .with_context(|| format!("binding the metrics port {}", args.metrics.metrics_port))?;
    let mut metrics = Metrics::default();
    let mut registry = Registry::default();
    metrics.register(&mut registry);
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
    let mut lease = NodeLease::new(client.clone(), &namespace, &node, duration);
    let mut membership = match &args.membership_key_file {
        Some(path) => {
            let (membership, annotations) = heartbeats(&args, &node, path, duration).await?;
            lease = lease.with_annotations(annotations);
            Some(membership)
        }
        None => None,
    };
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
        not_ready_grace: args.not_ready_grace,
    };
    let excluded = match &args.excludel2_file {
        Some(path) => excludel2::load(path)?,
        None => Vec::new(),
    };
    let start = Plan {
        excluded_interfaces: excluded,
        ..Plan::default()
    };
    let mut engine = Engine::start(start, Some(args.control.clone()))?;
    engine.set_graceful_shutdown(
        args.graceful_shutdown
            .then_some(args.graceful_shutdown_delay),
    );
    let reporter = Reporter {
        controller: SPEAKER_FIELD_MANAGER.to_owned(),
        instance: Some(node.clone()),
    };
    let (events, publishers) = EventRecorder::start(client.clone(), reporter, EVENT_WORKERS);
    let mut refresh = tokio::time::interval(METRICS_REFRESH);
    let owner = owner(&client, &namespace, args.pod_name.as_deref()).await;
    let (statuses, writing) = StatusWriter::start(client.clone(), &namespace, &node, owner);
    info!(%node, %namespace, "speaker running on the node");
    // The first plan waits for the speakers' Leases too: planning before them, this speaker
    // would count itself alone and announce, for a moment, the IPs other nodes answer for.
    tokio::select! {
        () = async { tokio::join!(watches.ready(), observer.synced()); } => {}
        () = shutdown.wait() => {}
    }
    if let Some(membership) = &mut membership {
        membership.leases(Instant::now(), &observer.leases());
    }
    let mut last = Last {
        events: Some(events),
        ..Last::default()
    };
    let mut dirty = true;
    let mut replan_at = None;
    let mut plan_took = Duration::ZERO;
    let mut alive = BTreeSet::new();
    let mut not_ready_at = None;
    let stopped = shutdown.wait();
    tokio::pin!(stopped);
    let mut datagram = vec![0; MAX_DATAGRAM];
    loop {
        // Lease renewals change nothing the planner reads; only who is alive does.
        let now_alive = match &membership {
            Some(membership) => counted(membership, Instant::now(), args.fencing),
            None => observer.alive(Instant::now()),
        };
        if now_alive != alive {
            alive = now_alive;
            dirty = true;
        }
        if dirty && !shutdown.is_triggered() {
            dirty = false;
            // This plan reads every change so far.
            replan_at = None;
            metrics
                .alive
                .set(i64::try_from(alive.len()).unwrap_or(i64::MAX));
            let started = Instant::now();
            last.replan(&watches, &scope, alive.clone(), &mut engine, &mut metrics)
                .await;
            plan_took = started.elapsed();
            let lease_fresh = renewals.borrow().fresh(duration, Instant::now());
            liveness(
                &last,
                membership.as_ref(),
                &alive,
                lease_fresh,
                &engine,
                &metrics,
            );
            // Nodes change only through the watches, so the next end of a grace period is
            // known after each plan, not looked for at every turn of the loop.
            not_ready_at =
                cluster::next_not_ready(&watches, Timestamp::now(), scope.not_ready_grace);
        }
        let lease_fresh = renewals.borrow().fresh(duration, Instant::now());
        ready.send_if_modified(|ready| {
            let now = lease_fresh && metrics.loaded.get() == 1;
            std::mem::replace(ready, now) != now
        });
        let expiry = observer
            .next_expiry(Instant::now())
            .map_or(duration, |at| at.saturating_duration_since(Instant::now()));
        // A grace period that ended while another branch ran is due at once, not never.
        let not_ready = not_ready_at.map(|at| {
            Duration::try_from(at.duration_since(Timestamp::now())).unwrap_or(Duration::ZERO)
        });
        let handed_over = engine.deadline();
        tokio::select! {
            () = &mut stopped => break,
            event = engine.next_event() => {
                if let DriverEvent::Bfd { peer, event } = &event {
                    metrics.bfd_event(*peer, *event == metallb_bfd::Event::Up);
                }
                engine.on_driver_event(event);
            }
            _ = refresh.tick() => {
                liveness(&last, membership.as_ref(), &alive, lease_fresh, &engine, &metrics);
                let (l2, bgp, bfd) = engine.status();
                metrics.refresh(&l2, &bgp, &bfd);
                if let Some(plan) = &last.plan {
                    statuses.publish(status::Desired {
                        plan: plan.clone(),
                        sessions: status::sessions(plan, &bgp, &bfd),
                    });
                }
            }
            () = watches.changed() => {
                metrics.updates.inc();
                let settle = SETTLE.max(plan_took * SETTLE_PER_PLAN);
                replan_at.get_or_insert(Instant::now() + settle);
            }
            () = sleep_until_or_never(replan_at) => {
                replan_at = None;
                dirty = true;
            }
            () = observer.changed() => {
                if let Some(membership) = &mut membership {
                    membership.leases(Instant::now(), &observer.leases());
                }
            }
            _ = renewals.changed() => {
                if let Some(membership) = &mut membership {
                    membership.renewal(Instant::now(), *renewals.borrow());
                }
            }
            received = receive(membership.as_ref(), &mut datagram) => {
                if let (Some(membership), Ok(len)) = (&mut membership, received) {
                    membership.packet(Instant::now(), &datagram[..len]);
                }
            }
            () = sleep_until_or_never(membership.as_ref().and_then(Membership::deadline)) => {
                if let Some(membership) = &mut membership {
                    membership.tick(Instant::now());
                }
            }
            () = tokio::time::sleep(expiry) => {}
            () = sleep_or_never(not_ready) => dirty = true,
            () = sleep_until_or_never(handed_over) => engine.expire(Instant::now()),
        }
    }
    // Layer 2 is handed over first: peers learn at once that this speaker leaves (its
    // heartbeats say so, and its Lease goes), the next owner announces, and only then does
    // this node stop answering.
    if let Some(membership) = &mut membership {
        membership.leave(Instant::now());
    }
    renewing.await?;
    if last
        .plan
        .as_ref()
        .is_some_and(|plan| !plan.layer2.is_empty())
    {
        tokio::time::sleep(HANDOVER).await;
    }
    engine
        .leave(args.graceful_shutdown, args.graceful_shutdown_delay)
        .await;
    drop(last);
    if tokio::time::timeout(EVENT_DRAIN, publishers.join_all())
        .await
        .is_err()
    {
        warn!("stopped with events still unpublished");
    }
    observing.abort();
    // The pod's deletion removes the status objects (owner reference); a speaker that stops
    // without its pod going keeps them until it runs again and brings them up to date.
    writing.abort();
    watching.abort();
    server.await??;
    Ok(())
}

/// The plan the engine carries out, and the problems last reported.
#[derive(Debug, Default)]
struct Last {
    plan: Option<Arc<plan::Plan>>,
    problems: Vec<(String, String)>,
    /// Where `nodeAssigned` goes; none only before the recorder starts.
    events: Option<EventRecorder>,
}

impl Last {
    /// Plans from what the watches hold and hands a changed plan to the engine; problems are
    /// logged when they change, not at every replan.
    async fn replan(
        &mut self,
        watches: &Watches,
        scope: &Scope,
        alive: BTreeSet<String>,
        engine: &mut Engine,
        metrics: &mut Metrics,
    ) {
        match cluster::plan_now(watches, scope, alive, Timestamp::now()) {
            Ok((planned, engine_plan)) => {
                metrics.stale.set(0);
                metrics.loaded.set(1);
                if !self.problems.is_empty() {
                    info!("configuration accepted again");
                    self.problems.clear();
                }
                if self.plan.as_deref() != Some(&planned) {
                    debug!(
                        layer2 = planned.layer2.len(),
                        peers = planned.peers.len(),
                        draining = ?planned.draining,
                        "new plan"
                    );
                    let handed = self
                        .plan
                        .as_deref()
                        .map(|before| plan::handover(before, &planned))
                        .unwrap_or_default();
                    engine.apply_handing_over(engine_plan, &handed);
                    self.drain_changed(&planned, metrics);
                    self.assigned(watches, &planned).await;
                    self.kept(watches, &planned, metrics).await;
                    let planned = Arc::new(planned);
                    metrics.announced(planned.clone());
                    engine.publish(planned.clone());
                    self.plan = Some(planned);
                }
            }
            Err(stale) => {
                metrics.stale.set(1);
                if stale.problems != self.problems {
                    metrics.update_errors.inc();
                    for (object, reason) in &stale.problems {
                        warn!(%object, %reason, "configuration refused; the running one stays");
                    }
                    self.problems = stale.problems;
                }
            }
        }
    }

    /// Logs the start, change and end of a drain with its trigger, and sets the metric.
    fn drain_changed(&self, planned: &plan::Plan, metrics: &Metrics) {
        let before = self.plan.as_deref().and_then(|p| p.draining.as_ref());
        let now = planned.draining.as_ref();
        if before == now {
            return;
        }
        metrics.draining(now);
        match now {
            Some(trigger) => warn!(
                node = %planned.node,
                %trigger,
                "node drains: its layer 2 IPs and routes are handed over, its sessions stay up"
            ),
            None => info!(node = %planned.node, "node no longer drains"),
        }
    }

    /// A Warning event on each Service this draining node starts keeping because no other
    /// node is eligible (never blackhole), with a log line, and the count as a metric.
    async fn kept(&self, watches: &Watches, planned: &plan::Plan, metrics: &Metrics) {
        let before = self.plan.as_deref().map(kept_by_drain).unwrap_or_default();
        let now = kept_by_drain(planned);
        metrics
            .kept_draining
            .set(i64::try_from(now.len()).unwrap_or(i64::MAX));
        for (service, trigger) in &now {
            if before.get(service) == Some(trigger) {
                continue;
            }
            let message = format!(
                "node \"{}\" drains ({trigger}) but no other node is eligible for the service: \
                 it keeps announcing it",
                planned.node
            );
            warn!(%service, node = %planned.node, %trigger, "never blackhole: a draining node keeps announcing the service");
            let Some(events) = &self.events else { continue };
            let key = ObjectRef::new(&service.name).within(&service.namespace);
            let Some(object) = watches.services.get(&key) else {
                continue;
            };
            let notice = Notice {
                severity: Severity::Warning,
                reason: "DrainingLastNode",
                action: "Announce",
                message,
            };
            events.record(notice, object.reference()).await;
        }
        for service in before.keys().filter(|s| !now.contains_key(*s)) {
            info!(%service, node = %planned.node, "the service no longer needs this draining node");
        }
    }

    /// MetalLB's `nodeAssigned` event on each Service this node starts announcing, per
    /// protocol. MetalLB repeats it at every announcement pass; once per change says the same.
    async fn assigned(&self, watches: &Watches, planned: &plan::Plan) {
        let Some(events) = &self.events else { return };
        let before = self.plan.as_deref().map(announced).unwrap_or_default();
        for (service, protocol) in announced(planned).difference(&before) {
            let key = ObjectRef::new(&service.name).within(&service.namespace);
            let Some(object) = watches.services.get(&key) else {
                continue;
            };
            let notice = Notice {
                severity: Severity::Normal,
                reason: "nodeAssigned",
                action: "Announce",
                message: format!(
                    "announcing from node \"{}\" with protocol \"{protocol}\"",
                    planned.node
                ),
            };
            events.record(notice, object.reference()).await;
        }
    }
}

/// The services `plan` announces, each with `layer2` and `bgp` as it does.
fn announced(plan: &plan::Plan) -> BTreeSet<(&ServiceKey, &'static str)> {
    announcements(plan)
        .map(|(service, protocol, _)| (service, protocol))
        .collect()
}

/// The services `plan` keeps announcing although the node drains, with the trigger.
fn kept_by_drain(plan: &plan::Plan) -> BTreeMap<ServiceKey, DrainTrigger> {
    let trigger = |reason: &Reason| match reason {
        Reason::AnnounceDraining { trigger } => Some(trigger.clone()),
        _ => None,
    };
    plan.services
        .iter()
        .filter_map(|(key, service)| {
            let ServicePlan::Planned(planned) = service else {
                return None;
            };
            let l2 = planned.layer2.as_ref().and_then(|l2| trigger(&l2.reason));
            let bgp = || {
                let peers = planned.bgp.as_ref()?.peers.values();
                peers.filter_map(|p| trigger(&p.reason)).next()
            };
            Some((key.clone(), l2.or_else(bgp)?))
        })
        .collect()
}

/// Publishes the liveness view for `show liveness` and sets `metallb_speaker_fenced`.
fn liveness(
    last: &Last,
    membership: Option<&Membership>,
    alive: &BTreeSet<String>,
    lease_fresh: bool,
    engine: &Engine,
    metrics: &Metrics,
) {
    let draining = last
        .plan
        .as_deref()
        .and_then(|p| p.draining.as_ref())
        .map(ToString::to_string);
    let (view, stands_down) = match membership {
        Some(membership) => {
            let view = membership.view(Instant::now());
            let down = !view.own.is_normal();
            (membership::show(membership.node(), &view, draining), down)
        }
        None => {
            let node = last.plan.as_deref().map_or("", |p| p.node.as_str());
            let view = membership::show_leases(node, lease_fresh, alive, draining);
            (view, false)
        }
    };
    metrics.fenced.set(i64::from(stands_down));
    engine.publish_liveness(view);
}

/// Starts the heartbeats with the key in `path`; they need this node's address.
async fn heartbeats(
    args: &NodeArgs,
    node: &str,
    path: &std::path::Path,
    lease_duration: Duration,
) -> anyhow::Result<(Membership, watch::Receiver<BTreeMap<String, String>>)> {
    let secret = std::fs::read(path)
        .with_context(|| format!("reading the membership key {}", path.display()))?;
    anyhow::ensure!(
        !secret.is_empty(),
        "the membership key {} is empty",
        path.display()
    );
    let host_ip = args
        .host_ip
        .context("heartbeats need this node's address: set HOST_IP or --host-ip")?;
    let defaults = metallb_liveness::Config::default();
    // Short Leases (labs) need a margin the core accepts: under a quarter of the Lease.
    let config = metallb_liveness::Config {
        lease_duration,
        fence_margin: defaults.fence_margin.min(lease_duration / 8),
        ..defaults
    };
    Membership::start(node, &secret, host_ip, args.heartbeat_port, config)
        .await
        .context("starting the heartbeats")
}

/// The nodes the planner counts alive. Without fencing, a speaker that fenced itself (and
/// the peers that did) still count: every speaker has the same setting, so all agree.
fn counted(membership: &Membership, now: Instant, fencing: bool) -> BTreeSet<String> {
    if fencing {
        return membership.candidates(now);
    }
    let view = membership.view(now);
    let mut alive = view.candidates;
    let fenced = view
        .nodes
        .iter()
        .filter(|(_, n)| n.reason == NodeReason::Fenced);
    alive.extend(fenced.map(|(name, _)| name.clone()));
    if matches!(view.own, OwnState::Fenced { .. }) {
        alive.insert(membership.node().to_owned());
    }
    alive
}

/// The next heartbeat datagram, or never without heartbeats.
async fn receive(membership: Option<&Membership>, buf: &mut [u8]) -> std::io::Result<usize> {
    match membership {
        Some(membership) => membership.recv(buf).await,
        None => std::future::pending().await,
    }
}

/// Sleeps until `at`, or forever without it.
async fn sleep_until_or_never(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

/// Sleeps `duration`, or forever without one.
async fn sleep_or_never(duration: Option<Duration>) {
    match duration {
        Some(duration) => tokio::time::sleep(duration).await,
        None => std::future::pending().await,
    }
}

/// The speaker pod as the owner of its status objects; none outside a pod or when the pod
/// cannot be read within the status writer's deadline.
async fn owner(client: &Client, namespace: &str, pod: Option<&str>) -> Option<OwnerReference> {
    let pod = pod.filter(|p| !p.is_empty())?;
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    match tokio::time::timeout(status::CALL_DEADLINE, api.get(pod)).await {
        Ok(Ok(pod)) => pod.controller_owner_ref(&()).map(|mut owner| {
            owner.controller = None;
            owner.block_owner_deletion = None;
            owner
        }),
        Ok(Err(error)) => {
            warn!(%pod, %error, "cannot read the speaker pod; status objects get no owner");
            None
        }
        Err(_) => {
            warn!(%pod, "cannot read the speaker pod in time; status objects get no owner");
            None
        }
    }
}
