//! The configuration side of the loop: namespaces (their labels feed pools' namespace
//! selectors), pools of both kinds, and what the loop publishes about pools (status counts,
//! metrics).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Namespace;
use kube::ResourceExt;
use kube::core::PartialObjectMeta;
use kube::runtime::watcher::Event;
use metallb_allocator::{PoolCounters, ServiceKey};
use metallb_api::addresspool::v1beta1::AddressPool;
use metallb_api::ipaddresspool::{IPAddressPool, IPAddressPoolStatus};
use tokio::time::Instant;
use tracing::{error, info};

use super::Reconciler;
use crate::pools::pools_from;
use crate::watch::Relist;
use crate::writer::Job;

impl Reconciler {
    /// A Namespace event: labels kept for namespace selectors.
    pub(super) fn on_namespace(&mut self, event: Event<PartialObjectMeta<Namespace>>) {
        match event {
            Event::Init => self.lists.namespaces.begin(),
            Event::InitApply(ns) | Event::Apply(ns) => {
                let name = ns.name_any();
                self.lists.namespaces.saw(name.clone());
                let labels = ns.metadata.labels.unwrap_or_default();
                if self.namespaces.get(&name) != Some(&labels) {
                    self.namespaces.insert(name.clone(), labels);
                    self.namespace_changed(&name);
                }
            }
            Event::Delete(ns) => {
                self.namespaces.remove(&ns.name_any());
            }
            Event::InitDone => {
                let seen = self.lists.namespaces.finish();
                self.namespaces.retain(|name, _| seen.contains(name));
                self.maybe_start();
            }
        }
    }

    /// An `IPAddressPool` event.
    pub(super) fn on_pool(&mut self, event: Event<IPAddressPool>) {
        if let Event::Apply(pool) | Event::InitApply(pool) = &event {
            let name = pool.name_any();
            match pool.status.as_ref().and_then(counters_of) {
                Some(counters) => self.pool_status.insert(name, counters),
                None => self.pool_status.remove(&name),
            };
        }
        if fold(&mut self.ip_pools, &mut self.lists.pools, event, |p| {
            &p.spec
        }) {
            self.pools_changed();
        }
    }

    /// A 4.10 `AddressPool` event.
    pub(super) fn on_legacy_pool(&mut self, event: Event<AddressPool>) {
        if fold(&mut self.legacy_pools, &mut self.lists.legacy, event, |p| {
            &p.spec
        }) {
            self.pools_changed();
        }
    }

    /// Converges the Services of a namespace whose labels changed (pools may select them by
    /// namespace labels).
    fn namespace_changed(&mut self, namespace: &str) {
        if !self.started {
            return;
        }
        let mut keys: Vec<ServiceKey> = self
            .services
            .keys()
            .filter(|k| k.namespace == namespace)
            .cloned()
            .collect();
        keys.sort();
        for key in keys {
            self.reconcile(&key);
        }
    }

    /// The pools may have changed: applied once changes settle, or at start.
    fn pools_changed(&mut self) {
        if self.started {
            self.pools_dirty.get_or_insert_with(Instant::now);
        } else {
            self.maybe_start();
        }
    }

    /// Loads the pools into the allocator; whether its pools changed. A refused set keeps the
    /// previous one and marks the configuration stale.
    pub(super) fn load_pools(&mut self) -> bool {
        let current: Vec<IPAddressPool> = self.ip_pools.values().cloned().collect();
        let legacy: Vec<AddressPool> = self.legacy_pools.values().cloned().collect();
        let pools = match pools_from(&self.namespace, &current, &legacy) {
            Ok(pools) => pools,
            Err(error) => {
                error!(%error, "pool configuration refused; keeping the previous one");
                self.metrics.config_loaded(false);
                return false;
            }
        };
        if self.loaded.as_ref() == Some(&pools) {
            self.metrics.config_loaded(true);
            return false;
        }
        match self.alloc.set_pools(pools.clone()) {
            Err(error) => {
                error!(%error, "pool configuration refused; keeping the previous one");
                self.metrics.config_loaded(false);
                false
            }
            Ok(changed) => {
                for moved in &changed.moved {
                    info!(service = %moved.service, from = %moved.from, to = %moved.to, "address now in a renamed pool");
                }
                for released in &changed.released {
                    info!(service = %released.service, ips = ?released.previous.ips, reason = %released.reason, "address no longer allowed");
                }
                info!(pools = pools.len(), "pool configuration loaded");
                self.loaded = Some(pools);
                self.metrics.config_loaded(true);
                true
            }
        }
    }

    /// Pool metrics, and status counts of `IPAddressPool`s that changed.
    pub(super) fn publish_usage(&mut self) {
        let usage: Vec<(String, PoolCounters)> = self
            .alloc
            .pools()
            .filter_map(|p| Some((p.name.clone(), self.alloc.counters(&p.name)?)))
            .collect();
        self.metrics
            .set_pools(usage.iter().map(|(name, c)| (name.as_str(), *c)));
        for (name, counters) in usage {
            if self.ip_pools.contains_key(&name) && self.pool_status.get(&name) != Some(&counters) {
                self.pool_status.insert(name.clone(), counters);
                self.writer.enqueue(Job::Pool {
                    namespace: self.namespace.clone(),
                    name,
                    counters,
                });
            }
        }
    }
}

/// Folds a pool watch event into `pools`; whether the pool set may have changed. A status
/// update (the controller's own, mostly) changes nothing, and neither does a list in
/// progress until it completes.
fn fold<K: ResourceExt, S: PartialEq>(
    pools: &mut BTreeMap<String, K>,
    relist: &mut Relist<String>,
    event: Event<K>,
    spec: fn(&K) -> &S,
) -> bool {
    match event {
        Event::Init => {
            relist.begin();
            false
        }
        Event::InitApply(pool) | Event::Apply(pool) => {
            let name = pool.name_any();
            relist.saw(name.clone());
            let same = pools.get(&name).is_some_and(|p| spec(p) == spec(&pool));
            pools.insert(name, pool);
            !same && !relist.is_listing()
        }
        Event::Delete(pool) => pools.remove(&pool.name_any()).is_some(),
        Event::InitDone => {
            let seen = relist.finish();
            pools.retain(|name, _| seen.contains(name));
            true
        }
    }
}

/// The counts in a pool's status, when all four are there.
fn counters_of(status: &IPAddressPoolStatus) -> Option<PoolCounters> {
    Some(PoolCounters {
        assigned_ipv4: status.assigned_ipv4?,
        assigned_ipv6: status.assigned_ipv6?,
        available_ipv4: status.available_ipv4?,
        available_ipv6: status.available_ipv6?,
    })
}
