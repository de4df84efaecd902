//! The watches the controller runs, merged into one stream of [`Input`]s for the reconcile
//! loop: Services and Namespaces cluster-wide, pools of both kinds in the MetalLB namespace.

use std::collections::HashSet;
use std::hash::Hash;

use futures::stream::{self, BoxStream, StreamExt};
use k8s_openapi::api::core::v1::{Namespace, Service};
use kube::core::PartialObjectMeta;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client};
use metallb_api::addresspool::v1beta1::AddressPool;
use metallb_api::ipaddresspool::IPAddressPool;
use metallb_runtime::watch::events;

/// One change seen by a watch (boxed: objects differ much in size).
#[derive(Debug)]
pub enum Input {
    /// A Service.
    Service(Box<Event<Service>>),
    /// A Namespace (labels only, for pools' namespace selectors).
    Namespace(Box<Event<PartialObjectMeta<Namespace>>>),
    /// An `IPAddressPool` of the MetalLB namespace.
    Pool(Box<Event<IPAddressPool>>),
    /// A 4.10 `AddressPool` of the MetalLB namespace.
    LegacyPool(Box<Event<AddressPool>>),
}

/// Every watch, merged. A watch that fails is retried with backoff; its errors come out of the
/// stream so the loop can count and log them. The `AddressPool` kind is optional: without it,
/// its watch yields one empty list.
pub fn inputs(
    client: Client,
    namespace: &str,
) -> BoxStream<'static, Result<Input, watcher::Error>> {
    let c = &client;
    let services = events(Api::<Service>::all(c.clone()), c.clone(), false)
        .map(|r| r.map(|e| Input::Service(Box::new(e))));
    let namespaces = events(
        Api::<PartialObjectMeta<Namespace>>::all(c.clone()),
        c.clone(),
        false,
    )
    .map(|r| r.map(|e| Input::Namespace(Box::new(e))));
    let pools = events(
        Api::<IPAddressPool>::namespaced(c.clone(), namespace),
        c.clone(),
        false,
    )
    .map(|r| r.map(|e| Input::Pool(Box::new(e))));
    let legacy = events(
        Api::<AddressPool>::namespaced(c.clone(), namespace),
        c.clone(),
        true,
    )
    .map(|r| r.map(|e| Input::LegacyPool(Box::new(e))));
    stream::select_all([
        services.boxed(),
        namespaces.boxed(),
        pools.boxed(),
        legacy.boxed(),
    ])
    .boxed()
}

/// The keys seen since a watch (re)started listing, so that objects gone meanwhile can be
/// dropped when the list is complete.
#[derive(Debug)]
pub struct Relist<K> {
    seen: Option<HashSet<K>>,
    listed_once: bool,
}

impl<K> Default for Relist<K> {
    fn default() -> Self {
        Self {
            seen: None,
            listed_once: false,
        }
    }
}

impl<K: Hash + Eq> Relist<K> {
    /// A (re)list begins.
    pub fn begin(&mut self) {
        self.seen = Some(HashSet::new());
    }

    /// An object of the list.
    pub fn saw(&mut self, key: K) {
        if let Some(seen) = &mut self.seen {
            seen.insert(key);
        }
    }

    /// Whether a (re)list is under way.
    pub fn is_listing(&self) -> bool {
        self.seen.is_some()
    }

    /// The list is complete: the keys seen in it.
    pub fn finish(&mut self) -> HashSet<K> {
        self.listed_once = true;
        self.seen.take().unwrap_or_default()
    }

    /// Whether a complete list has arrived at least once.
    pub fn listed_once(&self) -> bool {
        self.listed_once
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_relist_reports_what_it_saw_and_remembers_it_completed() {
        let mut relist = Relist::default();
        assert!(!relist.listed_once());
        relist.saw("ignored outside a list");
        relist.begin();
        assert!(relist.is_listing());
        relist.saw("a");
        relist.saw("b");
        let seen = relist.finish();
        assert_eq!(seen.len(), 2);
        assert!(seen.contains("a"));
        assert!(relist.listed_once());
        assert!(!relist.is_listing());
        relist.begin();
        assert!(relist.finish().is_empty());
    }
}
