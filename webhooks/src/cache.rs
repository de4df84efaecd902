//! Where the existing objects come from: a watched cache of the API server, or a fixed
//! snapshot in tests.

use std::{collections::BTreeMap, fmt::Debug, future::Future, hash::Hash};

use kube::{Client, Resource, runtime::reflector::Store};
use metallb_api::validation::Snapshot;
use metallb_runtime::watch::Stores;

/// Supplies the existing objects for a review.
pub trait SnapshotSource: Send + Sync + 'static {
    /// The objects of `namespace` (the namespace of the object under review) and all nodes.
    fn snapshot(&self, namespace: &str) -> Snapshot;
}

/// A fixed snapshot, for tests and tools.
#[derive(Clone, Debug, Default)]
pub struct StaticSnapshot(pub Snapshot);

impl SnapshotSource for StaticSnapshot {
    fn snapshot(&self, namespace: &str) -> Snapshot {
        let mut s = self.0.clone();
        let keep = |ns: &Option<String>| ns.as_deref() == Some(namespace);
        s.address_pools.retain(|o| keep(&o.metadata.namespace));
        s.ip_address_pools.retain(|o| keep(&o.metadata.namespace));
        s.bgp_peers.retain(|o| keep(&o.metadata.namespace));
        s.bfd_profiles.retain(|o| keep(&o.metadata.namespace));
        s.bgp_advertisements.retain(|o| keep(&o.metadata.namespace));
        s.l2_advertisements.retain(|o| keep(&o.metadata.namespace));
        s.communities.retain(|o| keep(&o.metadata.namespace));
        s
    }
}

/// The watched objects of every kind the rules read (`metallb-runtime`'s stores).
#[derive(Clone)]
pub struct ClusterCache {
    metallb_namespace: String,
    stores: Stores,
}

impl Debug for ClusterCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterCache")
            .field("metallb_namespace", &self.metallb_namespace)
            .finish_non_exhaustive()
    }
}

impl ClusterCache {
    /// Starts watches of every kind; the returned future drives them and must be polled (for
    /// example spawned) for the cache to fill.
    pub fn new(client: Client, metallb_namespace: &str) -> (Self, impl Future<Output = ()> + Send) {
        let (stores, driver) = Stores::start(&client, None);
        let cache = ClusterCache {
            metallb_namespace: metallb_namespace.to_owned(),
            stores,
        };
        (cache, driver)
    }

    /// Waits until every watch has listed its objects once.
    pub async fn ready(&self) {
        self.stores.ready().await;
    }
}

fn in_namespace<K: Resource + Clone>(store: &Store<K>, namespace: &str) -> Vec<K>
where
    K::DynamicType: Eq + Hash + Clone,
{
    let mut objects: Vec<K> = store
        .state()
        .iter()
        .filter(|o| o.meta().namespace.as_deref() == Some(namespace))
        .map(|o| (**o).clone())
        .collect();
    // Reviews must not depend on the order of the watch; the reference lists by name.
    objects.sort_by(|a, b| a.meta().name.cmp(&b.meta().name));
    objects
}

impl SnapshotSource for ClusterCache {
    fn snapshot(&self, namespace: &str) -> Snapshot {
        let stores = &self.stores;
        let nodes: BTreeMap<_, _> = stores
            .nodes
            .state()
            .iter()
            .map(|n| {
                (
                    n.metadata.name.clone().unwrap_or_default(),
                    n.metadata.labels.clone().unwrap_or_default(),
                )
            })
            .collect();
        Snapshot {
            namespace: self.metallb_namespace.clone(),
            address_pools: in_namespace(&stores.address_pools, namespace),
            ip_address_pools: in_namespace(&stores.ip_address_pools, namespace),
            bgp_peers: in_namespace(&stores.bgp_peers, namespace),
            bfd_profiles: in_namespace(&stores.bfd_profiles, namespace),
            bgp_advertisements: in_namespace(&stores.bgp_advertisements, namespace),
            l2_advertisements: in_namespace(&stores.l2_advertisements, namespace),
            communities: in_namespace(&stores.communities, namespace),
            nodes,
        }
    }
}
