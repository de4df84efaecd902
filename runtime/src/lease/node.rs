//! Per-node Leases: every speaker renews `metallb-speaker-<node>` in the MetalLB namespace
//! ([`NodeLease`]), and every speaker watches all of them ([`NodeLeaseObserver`]) to know which
//! nodes' speakers are alive. A renewal is a write, and a write needs etcd quorum, so a node
//! whose API server serves stale data fails to renew: the speaker's fencing builds on that.
//!
//! A renewal is one `replace` carrying the last written `resourceVersion`; only when that
//! conflicts (or the Lease is gone) is the Lease read again, so a speaker costs one request per
//! renewal interval. Each call runs under the renewal interval as its deadline.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, PostParams};
use kube::runtime::watcher::{self, Event};
use kube::runtime::{WatchStreamExt, watcher as watch_stream};
use kube::{Api, Client};
use tokio::sync::{Notify, watch};
use tracing::{debug, info, warn};

use super::{LeaseError, Observed, bounded};
use crate::consts::{SPEAKER_LEASE_LABEL, SPEAKER_LEASE_PREFIX};

/// The name of `node`'s Lease.
pub fn lease_name(node: &str) -> String {
    format!("{SPEAKER_LEASE_PREFIX}{node}")
}

/// The renewer's latest outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Renewal {
    /// When the last successful renewal was sent.
    pub last_success: Option<Instant>,
    /// Renewals failed since that one.
    pub failures: u32,
}

impl Renewal {
    /// Whether the Lease, as others see it, is still held: the last success was sent less than
    /// `duration` ago.
    pub fn fresh(&self, duration: Duration, now: Instant) -> bool {
        self.last_success
            .is_some_and(|at| now.saturating_duration_since(at) < duration)
    }
}

/// Keeps this node's Lease renewed.
#[derive(Debug)]
pub struct NodeLease {
    api: Api<Lease>,
    node: String,
    duration: Duration,
    interval: Duration,
    last: Option<Lease>,
    renewal: watch::Sender<Renewal>,
    annotations: Option<watch::Receiver<BTreeMap<String, String>>>,
}

impl NodeLease {
    /// The Lease of `node` in `namespace`, valid for `duration` and renewed four times per
    /// duration (as the kubelet renews its node Lease).
    pub fn new(client: Client, namespace: &str, node: &str, duration: Duration) -> Self {
        NodeLease {
            api: Api::namespaced(client, namespace),
            node: node.to_owned(),
            duration,
            interval: (duration / 4).max(Duration::from_millis(250)),
            last: None,
            renewal: watch::Sender::new(Renewal::default()),
            annotations: None,
        }
    }

    /// Writes the latest of `annotations` with every renewal: facts other speakers read from
    /// the Lease at no extra request (the heartbeat address, the peers this node hears).
    pub fn with_annotations(
        mut self,
        annotations: watch::Receiver<BTreeMap<String, String>>,
    ) -> Self {
        self.annotations = Some(annotations);
        self
    }

    /// Puts the wanted annotations on `meta`, over older values of the same keys.
    fn annotate(&self, meta: &mut ObjectMeta) {
        if let Some(wanted) = &self.annotations {
            let wanted = wanted.borrow();
            if !wanted.is_empty() {
                let annotations = meta.annotations.get_or_insert_with(BTreeMap::new);
                annotations.extend(wanted.iter().map(|(k, v)| (k.clone(), v.clone())));
            }
        }
    }

    /// The renewer's outcomes as they happen.
    pub fn subscribe(&self) -> watch::Receiver<Renewal> {
        self.renewal.subscribe()
    }

    /// Renews until `stop` resolves, then deletes the Lease so observers drop this node at
    /// once (a planned exit).
    pub async fn run_until(mut self, stop: impl Future<Output = ()>) {
        tokio::select! {
            () = self.renew_forever() => {}
            () = stop => {}
        }
        self.release().await;
    }

    async fn renew_forever(&mut self) {
        loop {
            let started = Instant::now();
            let deadline = tokio::time::Instant::now() + self.interval;
            match self.renew(deadline).await {
                Ok(()) => self.renewal.send_modify(|r| {
                    *r = Renewal {
                        last_success: Some(started),
                        failures: 0,
                    }
                }),
                Err(error) => {
                    let failures = self.renewal.borrow().failures + 1;
                    // Powers of two: a long outage does not flood the log.
                    if failures.is_power_of_two() {
                        warn!(node = %self.node, %error, failures, "could not renew the node Lease");
                    }
                    self.last = None;
                    self.renewal.send_modify(|r| r.failures = failures);
                }
            }
            tokio::time::sleep_until(deadline).await;
        }
    }

    async fn renew(&mut self, deadline: tokio::time::Instant) -> Result<(), LeaseError> {
        let name = lease_name(&self.node);
        let now = MicroTime(Timestamp::now());
        let seconds = i32::try_from(self.duration.as_secs().max(1)).unwrap_or(i32::MAX);
        let mut lease = match self.last.take() {
            Some(lease) => lease,
            None => match bounded(deadline, self.api.get_opt(&name)).await? {
                Some(lease) => lease,
                None => {
                    let mut lease = Lease {
                        metadata: ObjectMeta {
                            name: Some(name.clone()),
                            labels: Some(BTreeMap::from([(
                                SPEAKER_LEASE_LABEL.0.to_owned(),
                                SPEAKER_LEASE_LABEL.1.to_owned(),
                            )])),
                            ..ObjectMeta::default()
                        },
                        spec: Some(LeaseSpec {
                            holder_identity: Some(self.node.clone()),
                            lease_duration_seconds: Some(seconds),
                            acquire_time: Some(now.clone()),
                            renew_time: Some(now),
                            ..LeaseSpec::default()
                        }),
                    };
                    self.annotate(&mut lease.metadata);
                    let params = PostParams::default();
                    let created = self.api.create(&params, &lease);
                    self.last = Some(bounded(deadline, created).await?);
                    info!(node = %self.node, lease = %name, "created the node Lease");
                    return Ok(());
                }
            },
        };
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        spec.holder_identity = Some(self.node.clone());
        spec.lease_duration_seconds = Some(seconds);
        spec.renew_time = Some(now);
        self.annotate(&mut lease.metadata);
        let params = PostParams::default();
        let replace = self.api.replace(&name, &params, &lease);
        self.last = Some(bounded(deadline, replace).await?);
        debug!(node = %self.node, "renewed the node Lease");
        Ok(())
    }

    /// Deletes the Lease; bounded by the renewal interval.
    async fn release(&mut self) {
        let deadline = tokio::time::Instant::now() + self.interval;
        let name = lease_name(&self.node);
        let params = DeleteParams::default();
        let deleted = self.api.delete(&name, &params);
        match bounded(deadline, deleted).await {
            Ok(_) => info!(node = %self.node, "released the node Lease"),
            Err(LeaseError::Api(kube::Error::Api(status))) if status.is_not_found() => {}
            Err(error) => warn!(node = %self.node, %error, "could not release the node Lease"),
        }
    }
}

/// Which nodes' speaker Leases are fresh, as seen from here.
#[derive(Debug, Clone, Default)]
pub struct NodeLeaseObserver {
    inner: Arc<Shared>,
}

#[derive(Debug, Default)]
struct Shared {
    leases: Mutex<Leases>,
    changed: Notify,
    /// Whether a complete list of the Leases has arrived.
    synced: watch::Sender<bool>,
}

/// The speaker Leases seen, and those of a relist under way: a relist replaces them only once
/// complete, or the speakers not listed yet would look gone meanwhile.
#[derive(Debug, Default)]
struct Leases {
    current: BTreeMap<String, Seen>,
    relisting: Option<BTreeMap<String, Seen>>,
}

/// One speaker Lease as last seen.
#[derive(Debug, Clone)]
struct Seen {
    spec: LeaseSpec,
    observed: Observed,
    annotations: BTreeMap<String, String>,
}

/// A speaker Lease as this observer has seen it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedLease {
    /// When its current record was first seen here: its last renewal, on this clock.
    pub renewed_at: Instant,
    /// When it expires unless renewed, on this clock.
    pub expires_at: Instant,
    /// Its annotations.
    pub annotations: BTreeMap<String, String>,
}

impl NodeLeaseObserver {
    /// Watches the speakers' Leases in `namespace`; the returned future drives the watch and
    /// must be polled (for example spawned) for the observer to learn anything.
    pub fn watch(
        client: Client,
        namespace: &str,
    ) -> (Self, impl Future<Output = ()> + Send + use<>) {
        let observer = NodeLeaseObserver::default();
        let api = Api::<Lease>::namespaced(client, namespace);
        let selector = format!("{}={}", SPEAKER_LEASE_LABEL.0, SPEAKER_LEASE_LABEL.1);
        let config = watcher::Config::default().labels(&selector);
        let shared = observer.inner.clone();
        let driver = watch_stream(api, config)
            .default_backoff()
            .for_each(move |event| {
                match event {
                    Ok(event) => shared.apply(event, Instant::now()),
                    Err(error) => warn!(%error, "watch of the node Leases failed; retrying"),
                }
                futures::future::ready(())
            });
        (observer, driver)
    }

    /// The nodes whose Lease record changed less than its duration ago, at `now`.
    pub fn alive(&self, now: Instant) -> BTreeSet<String> {
        let leases = self.inner.leases.lock().unwrap_or_else(|e| e.into_inner());
        leases
            .current
            .iter()
            .filter(|(_, seen)| {
                seen.observed
                    .expires_at(&seen.spec, Duration::ZERO)
                    .is_some_and(|at| at > now)
            })
            .map(|(node, _)| node.clone())
            .collect()
    }

    /// The earliest moment after `now` at which a fresh Lease expires unless renewed.
    pub fn next_expiry(&self, now: Instant) -> Option<Instant> {
        let leases = self.inner.leases.lock().unwrap_or_else(|e| e.into_inner());
        leases
            .current
            .values()
            .filter_map(|seen| seen.observed.expires_at(&seen.spec, Duration::ZERO))
            .filter(|at| *at > now)
            .min()
    }

    /// Every speaker Lease seen so far, by node.
    pub fn leases(&self) -> BTreeMap<String, ObservedLease> {
        let leases = self.inner.leases.lock().unwrap_or_else(|e| e.into_inner());
        leases
            .current
            .iter()
            .filter_map(|(node, seen)| {
                let lease = ObservedLease {
                    renewed_at: seen.observed.since()?,
                    expires_at: seen.observed.expires_at(&seen.spec, Duration::ZERO)?,
                    annotations: seen.annotations.clone(),
                };
                Some((node.clone(), lease))
            })
            .collect()
    }

    /// Resolves at the next change of any Lease (one waiter: a change while nobody waits is
    /// kept for the next one).
    pub async fn changed(&self) {
        self.inner.changed.notified().await;
    }

    /// Resolves once the first complete list of the Leases has arrived. Before, [`alive`]
    /// misses speakers that are running: a speaker that plans then would take their IPs.
    ///
    /// [`alive`]: NodeLeaseObserver::alive
    pub async fn synced(&self) {
        let mut synced = self.inner.synced.subscribe();
        // The sender lives as long as this observer, so waiting cannot fail.
        let _ = synced.wait_for(|synced| *synced).await;
    }
}

impl Shared {
    fn apply(&self, event: Event<Lease>, now: Instant) {
        let mut leases = self.leases.lock().unwrap_or_else(|e| e.into_inner());
        let Leases { current, relisting } = &mut *leases;
        let mut synced = false;
        match event {
            Event::Apply(lease) => note(current, lease, now),
            Event::InitApply(lease) => match relisting {
                Some(relisting) => {
                    // Carried over, so a Lease that did not change keeps its renewal time.
                    if let Some(node) = node_of(&lease)
                        && let Some(seen) = current.get(&node)
                    {
                        relisting.entry(node).or_insert_with(|| seen.clone());
                    }
                    note(relisting, lease, now);
                    return;
                }
                None => note(current, lease, now),
            },
            Event::Delete(lease) => {
                if let Some(node) = node_of(&lease) {
                    current.remove(&node);
                }
            }
            Event::Init => {
                *relisting = Some(BTreeMap::new());
                return;
            }
            Event::InitDone => {
                if let Some(listed) = relisting.take() {
                    *current = listed;
                }
                synced = true;
            }
        }
        drop(leases);
        self.changed.notify_one();
        if synced {
            self.synced.send_replace(true);
        }
    }
}

/// Notes `lease` as seen at `now` in `leases`.
fn note(leases: &mut BTreeMap<String, Seen>, lease: Lease, now: Instant) {
    let Some(node) = node_of(&lease) else { return };
    let spec = lease.spec.unwrap_or_default();
    let annotations = lease.metadata.annotations.unwrap_or_default();
    let seen = leases.entry(node).or_insert_with(|| Seen {
        spec: spec.clone(),
        observed: Observed::default(),
        annotations: BTreeMap::new(),
    });
    seen.spec = spec;
    seen.observed.expired(&seen.spec, Duration::ZERO, now);
    seen.annotations = annotations;
}

/// The node a speaker Lease belongs to, from its name.
fn node_of(lease: &Lease) -> Option<String> {
    let name = lease.metadata.name.as_deref()?;
    name.strip_prefix(SPEAKER_LEASE_PREFIX)
        .filter(|node| !node.is_empty())
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(node: &str, renewed: i64) -> Lease {
        Lease {
            metadata: ObjectMeta {
                name: Some(lease_name(node)),
                ..ObjectMeta::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(node.to_owned()),
                renew_time: Some(MicroTime(Timestamp::from_second(renewed).unwrap())),
                lease_duration_seconds: Some(10),
                ..LeaseSpec::default()
            }),
        }
    }

    #[test]
    fn a_node_stays_alive_while_its_lease_changes_and_leaves_when_it_stands_still() {
        let shared = Shared::default();
        let observer = NodeLeaseObserver {
            inner: Arc::new(shared),
        };
        let start = Instant::now();
        observer.inner.apply(Event::InitApply(lease("a", 1)), start);
        observer.inner.apply(Event::InitApply(lease("b", 1)), start);
        let alive = observer.alive(start + Duration::from_secs(9));
        assert_eq!(alive, BTreeSet::from(["a".to_owned(), "b".to_owned()]));
        observer
            .inner
            .apply(Event::Apply(lease("a", 2)), start + Duration::from_secs(8));
        let later = start + Duration::from_secs(10);
        assert_eq!(observer.alive(later), BTreeSet::from(["a".to_owned()]));
        assert_eq!(
            observer.next_expiry(later),
            Some(start + Duration::from_secs(18))
        );
    }

    #[test]
    fn observed_leases_carry_their_annotations_and_when_they_were_seen_renewed() {
        let observer = NodeLeaseObserver::default();
        let start = Instant::now();
        let mut annotated = lease("a", 1);
        annotated.metadata.annotations = Some(BTreeMap::from([("k".into(), "v".into())]));
        observer.inner.apply(Event::Apply(annotated), start);
        let later = start + Duration::from_secs(3);
        observer.inner.apply(Event::Apply(lease("b", 1)), later);
        let leases = observer.leases();
        assert_eq!(leases["a"].renewed_at, start);
        assert_eq!(leases["a"].expires_at, start + Duration::from_secs(10));
        assert_eq!(leases["a"].annotations["k"], "v");
        assert_eq!(leases["b"].renewed_at, later);
        assert!(leases["b"].annotations.is_empty());
    }

    #[test]
    fn a_deleted_lease_leaves_at_once_and_foreign_names_are_ignored() {
        let observer = NodeLeaseObserver::default();
        let now = Instant::now();
        observer.inner.apply(Event::Apply(lease("a", 1)), now);
        let mut foreign = lease("x", 1);
        foreign.metadata.name = Some("kube-node-x".to_owned());
        observer.inner.apply(Event::Apply(foreign), now);
        assert_eq!(observer.alive(now), BTreeSet::from(["a".to_owned()]));
        observer.inner.apply(Event::Delete(lease("a", 1)), now);
        assert!(observer.alive(now).is_empty());
    }

    #[test]
    fn a_relist_replaces_the_leases_only_once_complete_and_keeps_unchanged_renewal_times() {
        let observer = NodeLeaseObserver::default();
        assert!(!*observer.inner.synced.borrow());
        let start = Instant::now();
        observer.inner.apply(Event::Init, start);
        observer.inner.apply(Event::InitApply(lease("a", 1)), start);
        observer.inner.apply(Event::InitApply(lease("b", 1)), start);
        assert!(
            observer.alive(start).is_empty(),
            "nothing before the list is complete"
        );
        observer.inner.apply(Event::InitDone, start);
        assert!(*observer.inner.synced.borrow());
        let both = BTreeSet::from(["a".to_owned(), "b".to_owned()]);
        assert_eq!(observer.alive(start), both);

        // A relist (after a watch error) lists only "a" so far: "b" is still there meanwhile.
        let later = start + Duration::from_secs(5);
        observer.inner.apply(Event::Init, later);
        observer.inner.apply(Event::InitApply(lease("a", 1)), later);
        assert_eq!(observer.alive(later), both);
        observer.inner.apply(Event::InitDone, later);
        assert_eq!(observer.alive(later), BTreeSet::from(["a".to_owned()]));
        assert_eq!(observer.leases()["a"].renewed_at, start);
    }

    #[test]
    fn a_renewal_is_fresh_for_the_lease_duration_after_it_was_sent() {
        let sent = Instant::now();
        let renewal = Renewal {
            last_success: Some(sent),
            failures: 3,
        };
        let duration = Duration::from_secs(10);
        assert!(renewal.fresh(duration, sent + Duration::from_secs(9)));
        assert!(!renewal.fresh(duration, sent + duration));
        assert!(!Renewal::default().fresh(duration, sent));
    }
}
