//! The reconcile loop. One task owns the allocator and all state: it folds the watches into
//! its maps, converges Services with [`decide`], and hands status writes to the [`Writer`]
//! and events to the [`EventRecorder`].
//!
//! Nothing is assigned before every watch has listed once. Then the pools are loaded, the
//! addresses Services already hold are recorded (so none can go to another Service), and
//! every Service is converged, those holding addresses first. After that, a Service change
//! converges that Service; a pool change converges all, once pool changes have settled for
//! [`POOL_SETTLE`] (so a pool deleted and created again under a new name keeps its Services'
//! addresses); a release (deletion, change of type, of sharing key, of ports) retries the
//! Services still waiting for an address.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use futures::FutureExt;
use futures::stream::{BoxStream, StreamExt};
use k8s_openapi::api::core::v1::{ObjectReference, Service};
use kube::runtime::watcher::{self, Event};
use kube::{Client, ResourceExt};
use metallb_allocator::{
    Allocator, Assignment, Labels, Pool, PoolCounters, Port, ServiceKey, TrafficPolicy,
};
use metallb_api::addresspool::v1beta1::AddressPool;
use metallb_api::ipaddresspool::IPAddressPool;
use tokio::sync::watch as signal;
use tokio::time::Instant;
use tracing::{debug, info, warn};

mod config;

use crate::decide::{Desired, decide, needs_write, written};
use crate::events::{self, Notice, Severity, reason};
use crate::metrics::Metrics;
use crate::service::{Handling, ServiceView};
use crate::watch::{Input, Relist};
use crate::writer::{Job, WRITE_CONCURRENCY};
use metallb_runtime::events::EventRecorder;
use metallb_runtime::writer::Writer;

/// Watch events handled before the loop flushes events, pool counts and metrics.
const BATCH: usize = 256;

/// How long pool changes may keep coming before they are applied together.
pub const POOL_SETTLE: Duration = Duration::from_secs(1);

/// How long a stopping loop waits for its writes under way.
pub const DRAIN: Duration = Duration::from_secs(2);

/// Shortest time between two updates of the pools' status counts and usage metrics, so a
/// burst of allocations costs one status write per pool and second, not one per batch.
pub const USAGE_INTERVAL: Duration = Duration::from_secs(1);

static NO_LABELS: Labels = Labels::new();

/// Everything the loop knows.
#[derive(Debug)]
pub struct Reconciler {
    namespace: String,
    lb_class: Option<String>,
    alloc: Allocator,
    services: HashMap<ServiceKey, Tracked>,
    namespaces: HashMap<String, Labels>,
    ip_pools: BTreeMap<String, IPAddressPool>,
    legacy_pools: BTreeMap<String, AddressPool>,
    /// The pools the allocator has; `None` until a valid set was loaded.
    loaded: Option<Vec<Pool>>,
    /// Status counts of each `IPAddressPool` as last seen or written.
    pool_status: HashMap<String, PoolCounters>,
    /// LoadBalancer Services of ours without an address.
    pending: BTreeSet<ServiceKey>,
    retry_pending: bool,
    /// When the first pool change not yet applied arrived.
    pools_dirty: Option<Instant>,
    /// When pool usage is to be published next, if it may have changed since.
    usage_due: Option<Instant>,
    /// When pool usage was last published.
    usage_published: Instant,
    lists: Lists,
    started: bool,
    outbox: Vec<(Notice, ObjectReference)>,
    writer: Writer<Job>,
    events: EventRecorder,
    metrics: Metrics,
    ready: signal::Sender<bool>,
}

/// Per-watch bookkeeping of (re)lists.
#[derive(Debug, Default)]
struct Lists {
    services: Relist<ServiceKey>,
    namespaces: Relist<String>,
    pools: Relist<String>,
    legacy: Relist<String>,
}

/// A Service the controller tracks: a LoadBalancer of ours, or one it still has to clear.
#[derive(Debug)]
struct Tracked {
    /// The Service as last seen, with its status as last seen or written.
    view: ServiceView,
    /// What it occupied after its last convergence.
    footprint: Option<Footprint>,
    /// The lasting conditions last reported (warnings, missing second family), so they are
    /// not repeated on every convergence.
    conditions: Vec<Notice>,
}

/// What a Service takes from others: addresses, and the sharing terms on them (key, ports,
/// and the endpoints under the `Local` policy).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Footprint {
    assignment: Option<Assignment>,
    sharing_key: Option<String>,
    ports: Vec<Port>,
    backend: Option<(TrafficPolicy, Labels)>,
}

impl Footprint {
    fn of(alloc: &Allocator, view: &ServiceView) -> Self {
        let balancer = view.balancer();
        Self {
            assignment: alloc.assignment(&view.key).cloned(),
            sharing_key: balancer.and_then(|b| b.sharing_key.clone()),
            ports: balancer.map(|b| b.ports.clone()).unwrap_or_default(),
            backend: balancer.map(|b| (b.external_traffic_policy, b.selector.clone())),
        }
    }
}

/// Reported once while it lasts, unlike a transition (an allocation, a clearing).
fn is_condition(notice: &Notice) -> bool {
    notice.severity == Severity::Warning || notice.reason == reason::ADDITIONAL_ASSIGN_FAILED
}

impl Reconciler {
    /// A loop for the MetalLB `namespace`, handling the Services of `lb_class`.
    pub fn new(
        client: Client,
        namespace: String,
        lb_class: Option<String>,
        events: EventRecorder,
        metrics: Metrics,
        ready: signal::Sender<bool>,
    ) -> Self {
        Self {
            writer: Writer::new(client, WRITE_CONCURRENCY),
            namespace,
            lb_class,
            alloc: Allocator::new(),
            services: HashMap::new(),
            namespaces: HashMap::new(),
            ip_pools: BTreeMap::new(),
            legacy_pools: BTreeMap::new(),
            loaded: None,
            pool_status: HashMap::new(),
            pending: BTreeSet::new(),
            retry_pending: false,
            pools_dirty: None,
            usage_due: None,
            usage_published: Instant::now(),
            lists: Lists::default(),
            started: false,
            outbox: Vec::new(),
            events,
            metrics,
            ready,
        }
    }

    /// Runs until `shutdown` resolves or the watches end, then gives the writes and events
    /// under way up to [`DRAIN`] to finish.
    pub async fn run(
        mut self,
        mut inputs: BoxStream<'static, Result<Input, watcher::Error>>,
        shutdown: impl std::future::Future<Output = ()>,
    ) {
        tokio::pin!(shutdown);
        loop {
            let settled = self.pools_dirty.map(|since| since + POOL_SETTLE);
            let usage_due = self.usage_due;
            tokio::select! {
                () = &mut shutdown => break,
                done = self.writer.next_done() => self.writer.finish(done),
                () = until(settled) => {
                    self.pools_dirty = None;
                    if self.load_pools() {
                        self.reprocess_all();
                    }
                    self.after_batch().await;
                }
                () = until(usage_due) => {
                    self.usage_due = None;
                    self.usage_published = Instant::now();
                    self.publish_usage();
                    self.writer.pump();
                }
                input = inputs.next() => {
                    let Some(input) = input else { break };
                    self.handle(input);
                    for _ in 1..BATCH {
                        match inputs.next().now_or_never() {
                            Some(Some(input)) => self.handle(input),
                            _ => break,
                        }
                    }
                    self.after_batch().await;
                }
            }
        }
        let drained = tokio::time::timeout(DRAIN, async {
            for (notice, reference) in std::mem::take(&mut self.outbox) {
                self.events.record(notice, reference).await;
            }
            self.writer.pump();
            while !self.writer.is_idle() {
                let done = self.writer.next_done().await;
                self.writer.finish(done);
            }
        });
        if drained.await.is_err() {
            warn!("stopped with status writes still under way");
        }
    }

    fn handle(&mut self, input: Result<Input, watcher::Error>) {
        let input = match input {
            Ok(input) => input,
            Err(error) => {
                warn!(%error, "watch failed; retrying");
                self.metrics.update_error();
                return;
            }
        };
        self.metrics.update();
        match input {
            Input::Service(event) => self.on_service(*event),
            Input::Namespace(event) => self.on_namespace(*event),
            Input::Pool(event) => self.on_pool(*event),
            Input::LegacyPool(event) => self.on_legacy_pool(*event),
        }
    }

    fn on_service(&mut self, event: Event<Service>) {
        match event {
            Event::Init => self.lists.services.begin(),
            Event::InitApply(service) | Event::Apply(service) => self.service_applied(&service),
            Event::Delete(service) => {
                let key =
                    ServiceKey::new(service.namespace().unwrap_or_default(), service.name_any());
                self.service_deleted(&key);
            }
            Event::InitDone => {
                let seen = self.lists.services.finish();
                let gone: Vec<ServiceKey> = self
                    .services
                    .keys()
                    .filter(|k| !seen.contains(*k))
                    .cloned()
                    .collect();
                for key in gone {
                    self.service_deleted(&key);
                }
                self.maybe_start();
            }
        }
    }

    fn service_applied(&mut self, service: &Service) {
        let view = ServiceView::from_service(service, self.lb_class.as_deref());
        let key = view.key.clone();
        self.lists.services.saw(key.clone());
        match self.services.get_mut(&key) {
            Some(tracked) => tracked.view = view,
            None => {
                let tracked = Tracked {
                    view,
                    footprint: None,
                    conditions: Vec::new(),
                };
                self.services.insert(key.clone(), tracked);
            }
        }
        if self.started {
            self.reconcile(&key);
        } else if !self.worth_tracking(&key) {
            self.services.remove(&key);
        }
    }

    fn service_deleted(&mut self, key: &ServiceKey) {
        self.services.remove(key);
        self.pending.remove(key);
        if let Some(released) = self.alloc.release(key) {
            info!(service = %key, ips = ?released.ips, pool = %released.pool, "service deleted; address released");
            self.retry_pending = true;
        }
    }

    /// Whether a Service needs tracking: a LoadBalancer of ours, one the allocator records,
    /// or one that still shows an address or pool annotation to clear.
    fn worth_tracking(&self, key: &ServiceKey) -> bool {
        let Some(tracked) = self.services.get(key) else {
            return false;
        };
        tracked.view.balancer().is_some()
            || self.alloc.assignment(key).is_some()
            || (tracked.view.handling == Handling::NotLoadBalancer
                && needs_write(&tracked.view.status, &Desired::Cleared))
    }

    /// The first pass, once every watch has listed and the pools are valid.
    fn maybe_start(&mut self) {
        let lists = &self.lists;
        let listed = lists.services.listed_once()
            && lists.namespaces.listed_once()
            && lists.pools.listed_once()
            && lists.legacy.listed_once();
        if self.started || !listed {
            return;
        }
        self.load_pools();
        if self.loaded.is_none() {
            warn!("no valid pool configuration yet; not assigning anything");
            return;
        }
        self.rebuild();
        self.started = true;
        self.reprocess_all();
        info!(
            services = self.services.len(),
            pending = self.pending.len(),
            "initial pass done"
        );
        self.ready.send_replace(true);
    }

    /// Records the addresses Services already hold, before anything is assigned.
    fn rebuild(&mut self) {
        let mut keys: Vec<&ServiceKey> = self.services.keys().collect();
        keys.sort();
        let mut kept = 0usize;
        for key in keys {
            let tracked = &self.services[key];
            let (Some(balancer), Ok(ips)) = (tracked.view.balancer(), tracked.view.status.ips())
            else {
                continue;
            };
            if ips.is_empty() {
                continue;
            }
            let labels = self.namespaces.get(&key.namespace).unwrap_or(&NO_LABELS);
            match self.alloc.assign(&balancer.request(key, labels), &ips) {
                Ok(_) => kept += 1,
                Err(error) => debug!(service = %key, %error, "held address not kept at start"),
            }
        }
        info!(kept, "addresses held by services recorded");
    }

    /// Converges every tracked Service, those holding addresses first.
    fn reprocess_all(&mut self) {
        let mut keys: Vec<(bool, ServiceKey)> = self
            .services
            .iter()
            .map(|(key, t)| {
                let holds =
                    self.alloc.assignment(key).is_some() || !t.view.status.ingress.is_empty();
                (!holds, key.clone())
            })
            .collect();
        keys.sort();
        for (_, key) in keys {
            self.reconcile(&key);
        }
    }

    /// Converges one Service and queues what follows: events, a status write.
    fn reconcile(&mut self, key: &ServiceKey) {
        let Some(tracked) = self.services.get_mut(key) else {
            return;
        };
        let labels = self.namespaces.get(&key.namespace).unwrap_or(&NO_LABELS);
        let decision = decide(&mut self.alloc, &tracked.view, labels);
        let footprint = Footprint::of(&self.alloc, &tracked.view);
        let released = tracked
            .footprint
            .as_ref()
            .is_some_and(|before| before.assignment.is_some() && *before != footprint);
        self.retry_pending |= released;
        let holds = footprint.assignment.is_some();
        tracked.footprint = Some(footprint);

        let conditions: Vec<Notice> = decision
            .notices
            .iter()
            .filter(|n| is_condition(n))
            .cloned()
            .collect();
        let fresh_conditions = conditions != tracked.conditions;
        tracked.conditions = conditions;
        let reference = tracked.view.object_reference();
        for notice in decision.notices {
            if is_condition(&notice) && !fresh_conditions {
                continue;
            }
            match notice.severity {
                Severity::Normal => {
                    info!(service = %key, reason = notice.reason, note = %notice.message, "event")
                }
                Severity::Warning => {
                    warn!(service = %key, reason = notice.reason, note = %notice.message, "event")
                }
            }
            self.outbox.push((notice, reference.clone()));
        }

        if needs_write(&tracked.view.status, &decision.desired) {
            for annotation in &tracked.view.legacy_annotations {
                let notice = events::deprecated_annotation(annotation);
                self.outbox.push((notice, reference.clone()));
            }
            debug!(service = %key, desired = ?decision.desired, "status write queued");
            tracked.view.status = written(&decision.desired, &tracked.view.status);
            self.writer.enqueue(Job::Service {
                key: key.clone(),
                uid: tracked.view.uid.clone(),
                desired: decision.desired,
            });
        }

        let balancer = tracked.view.balancer().is_some();
        if balancer && !holds {
            self.pending.insert(key.clone());
        } else {
            self.pending.remove(key);
        }
        if !balancer && !holds {
            self.services.remove(key);
        }
    }

    /// After a batch of watch events: retry waiting Services if something was released,
    /// schedule the pools' usage update, send events, start writes.
    async fn after_batch(&mut self) {
        if self.started {
            if std::mem::take(&mut self.retry_pending) && !self.pending.is_empty() {
                let waiting: Vec<ServiceKey> = self.pending.iter().cloned().collect();
                debug!(
                    services = waiting.len(),
                    "retrying services waiting for an address"
                );
                for key in waiting {
                    self.reconcile(&key);
                }
            }
            let next = self.usage_published + USAGE_INTERVAL;
            self.usage_due.get_or_insert(next);
        }
        for (notice, reference) in std::mem::take(&mut self.outbox) {
            self.events.record(notice, reference).await;
        }
        self.writer.pump();
    }
}

/// Resolves at `deadline`; never without one.
async fn until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}
