//! Where the existing objects come from: a watched cache of the API server, or a fixed
//! snapshot in tests.

use std::{collections::BTreeMap, fmt::Debug, future::Future, hash::Hash, pin::Pin};

use futures::{FutureExt, StreamExt, future};
use k8s_openapi::api::core::v1::Node;
use kube::{
    Api, Client, Resource,
    runtime::{WatchStreamExt, reflector, reflector::Store, watcher},
};
use metallb_api::{
    addresspool::v1beta1::AddressPool,
    advertisement::{BGPAdvertisement, L2Advertisement},
    bfdprofile::BFDProfile,
    bgppeer::v1beta2::BGPPeer,
    community::Community,
    ipaddresspool::IPAddressPool,
    validation::Snapshot,
};
use serde::de::DeserializeOwned;

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

/// Reflector stores of every kind the rules read, kept current by watches.
#[derive(Clone)]
pub struct ClusterCache {
    metallb_namespace: String,
    address_pools: Store<AddressPool>,
    ip_address_pools: Store<IPAddressPool>,
    bgp_peers: Store<BGPPeer>,
    bfd_profiles: Store<BFDProfile>,
    bgp_advertisements: Store<BGPAdvertisement>,
    l2_advertisements: Store<L2Advertisement>,
    communities: Store<Community>,
    nodes: Store<Node>,
}

impl Debug for ClusterCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterCache")
            .field("metallb_namespace", &self.metallb_namespace)
            .finish_non_exhaustive()
    }
}

type Driver = Pin<Box<dyn Future<Output = ()> + Send>>;

fn watch<K>(client: &Client, drivers: &mut Vec<Driver>) -> Store<K>
where
    K: Resource<DynamicType = ()> + Clone + Debug + DeserializeOwned + Send + Sync + 'static,
    K::DynamicType: Eq + Hash + Clone,
{
    let (reader, writer) = reflector::store();
    let stream = reflector(
        writer,
        watcher(Api::<K>::all(client.clone()), watcher::Config::default()).default_backoff(),
    )
    .touched_objects()
    .for_each(|event| {
        if let Err(error) = event {
            tracing::warn!(kind = K::kind(&()).as_ref(), %error, "watch failed; retrying");
        }
        future::ready(())
    });
    drivers.push(Box::pin(stream));
    reader
}

impl ClusterCache {
    /// Starts watches of every kind; the returned future drives them and must be polled (for
    /// example spawned) for the cache to fill.
    pub fn new(client: Client, metallb_namespace: &str) -> (Self, impl Future<Output = ()> + Send) {
        let mut drivers = Vec::new();
        let cache = ClusterCache {
            metallb_namespace: metallb_namespace.to_owned(),
            address_pools: watch(&client, &mut drivers),
            ip_address_pools: watch(&client, &mut drivers),
            bgp_peers: watch(&client, &mut drivers),
            bfd_profiles: watch(&client, &mut drivers),
            bgp_advertisements: watch(&client, &mut drivers),
            l2_advertisements: watch(&client, &mut drivers),
            communities: watch(&client, &mut drivers),
            nodes: watch(&client, &mut drivers),
        };
        (cache, future::join_all(drivers).map(|_| ()))
    }

    /// Waits until every watch has listed its objects once.
    pub async fn ready(&self) {
        let _ = futures::join!(
            self.address_pools.wait_until_ready(),
            self.ip_address_pools.wait_until_ready(),
            self.bgp_peers.wait_until_ready(),
            self.bfd_profiles.wait_until_ready(),
            self.bgp_advertisements.wait_until_ready(),
            self.l2_advertisements.wait_until_ready(),
            self.communities.wait_until_ready(),
            self.nodes.wait_until_ready(),
        );
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
        let nodes: BTreeMap<_, _> = self
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
            address_pools: in_namespace(&self.address_pools, namespace),
            ip_address_pools: in_namespace(&self.ip_address_pools, namespace),
            bgp_peers: in_namespace(&self.bgp_peers, namespace),
            bfd_profiles: in_namespace(&self.bfd_profiles, namespace),
            bgp_advertisements: in_namespace(&self.bgp_advertisements, namespace),
            l2_advertisements: in_namespace(&self.l2_advertisements, namespace),
            communities: in_namespace(&self.communities, namespace),
            nodes,
        }
    }
}
