//! The watches the controller runs, merged into one stream of [`Input`]s for the reconcile
//! loop: Services and Namespaces cluster-wide, pools of both kinds in the MetalLB namespace.

use std::collections::HashSet;
use std::hash::Hash;

use futures::stream::{self, BoxStream, StreamExt};
use k8s_openapi::api::core::v1::{Namespace, Service};
use kube::core::PartialObjectMeta;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event, watcher};
use kube::{Api, Client};
use metallb_api::addresspool::v1beta1::AddressPool;
use metallb_api::ipaddresspool::IPAddressPool;
use tracing::{info, warn};

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
/// stream so the loop can count and log them. The `AddressPool` watch starts once discovery
/// says the kind is installed; without it, it yields an empty list.
pub fn inputs(
    client: Client,
    namespace: &str,
) -> BoxStream<'static, Result<Input, watcher::Error>> {
    let config = watcher::Config::default;
    let services = watcher(Api::<Service>::all(client.clone()), config())
        .default_backoff()
        .map(|r| r.map(|e| Input::Service(Box::new(e))));
    let namespaces = watcher(
        Api::<PartialObjectMeta<Namespace>>::all(client.clone()),
        config(),
    )
    .default_backoff()
    .map(|r| r.map(|e| Input::Namespace(Box::new(e))));
    let pools = watcher(
        Api::<IPAddressPool>::namespaced(client.clone(), namespace),
        config(),
    )
    .default_backoff()
    .map(|r| r.map(|e| Input::Pool(Box::new(e))));
    let legacy_api = Api::<AddressPool>::namespaced(client.clone(), namespace);
    let legacy =
        stream::once(async move { serves_address_pools(&client).await }).flat_map(move |served| {
            if served {
                watcher(legacy_api.clone(), config())
                    .default_backoff()
                    .map(|r| r.map(|e| Input::LegacyPool(Box::new(e))))
                    .boxed()
            } else {
                info!("the AddressPool kind is not installed; only IPAddressPools are used");
                let empty =
                    [Event::Init, Event::InitDone].map(|e| Ok(Input::LegacyPool(Box::new(e))));
                stream::iter(empty).chain(stream::pending()).boxed()
            }
        });
    stream::select_all([
        services.boxed(),
        namespaces.boxed(),
        pools.boxed(),
        legacy.boxed(),
    ])
    .boxed()
}

/// Whether the API server serves `addresspools.metallb.io/v1beta1`. Asks until it gets an
/// answer: guessing "no" on a transient error would drop every 4.10 pool.
async fn serves_address_pools(client: &Client) -> bool {
    loop {
        match client.list_api_group_resources("metallb.io/v1beta1").await {
            Ok(list) => return list.resources.iter().any(|r| r.name == "addresspools"),
            Err(kube::Error::Api(status)) if status.code == 404 => return false,
            Err(error) => {
                warn!(%error, "could not discover the metallb.io kinds; retrying");
                tokio::time::sleep(std::time::Duration::from_secs(2)).await;
            }
        }
    }
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
