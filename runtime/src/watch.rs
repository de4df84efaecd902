//! Watches of the `metallb.io` kinds: discovery of the optional ones, a typed event stream per
//! kind, and reflector [`Stores`] of every kind for readers that want the current objects
//! rather than the changes.
//!
//! Stores keep what their readers look at, not whole objects: every object loses its managed
//! fields and kubectl's last-applied copy (often most of its size), and a caller trims its kind
//! further with the `trim` it passes. With 10,000 Services that is the speaker's memory.
//!
//! Optional kinds (the 4.10 `AddressPool`, whose CRD a current install may lack) are asked
//! for by discovery first. An absent kind yields an empty, complete list instead of a watch
//! that fails forever, so readers waiting for every list to arrive are not stalled.

use std::fmt::Debug;
use std::hash::Hash;
use std::sync::Arc;
use std::time::Duration;

use futures::stream::{self, BoxStream, StreamExt};
use futures::{FutureExt, future};
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::core::v1::{Node, NodeCondition, NodeStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::runtime::WatchStreamExt;
use kube::runtime::reflector::{self, Lookup, Store};
use kube::runtime::watcher::{self, Event, watcher};
use kube::{Api, Client, Resource};
use metallb_api::addresspool::v1beta1::AddressPool;
use metallb_api::advertisement::{BGPAdvertisement, L2Advertisement};
use metallb_api::bfdprofile::BFDProfile;
use metallb_api::bgppeer::v1beta2::BGPPeer;
use metallb_api::community::Community;
use metallb_api::ipaddresspool::IPAddressPool;
use serde::de::DeserializeOwned;
use tokio::sync::Notify;
use tracing::{info, warn};

/// kubectl's copy of the last object it applied, as an annotation.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// How long discovery waits between attempts when the API server does not answer.
const DISCOVERY_RETRY: Duration = Duration::from_secs(2);

/// A kind the watches can read.
pub trait Kind:
    Resource<DynamicType = ()> + Clone + Debug + DeserializeOwned + Send + Sync + 'static
{
}

impl<K> Kind for K where
    K: Resource<DynamicType = ()> + Clone + Debug + DeserializeOwned + Send + Sync + 'static
{
}

/// Whether the API server serves the kind `K`. Asks until it gets an answer: guessing "no" on
/// a transient error would drop every object of the kind.
pub async fn serves<K: Kind>(client: &Client) -> bool {
    let group_version = K::api_version(&());
    let plural = K::plural(&());
    loop {
        match client.list_api_group_resources(&group_version).await {
            Ok(list) => return list.resources.iter().any(|r| r.name == plural),
            Err(kube::Error::Api(status)) if status.code == 404 => return false,
            Err(error) => {
                warn!(%error, %group_version, "could not discover the served kinds; retrying");
                tokio::time::sleep(DISCOVERY_RETRY).await;
            }
        }
    }
}

/// The changes of `K` seen through `api`, retried with backoff (errors come out of the stream
/// so the reader can count and log them). With `optional`, discovery comes first and an
/// absent kind yields one empty, complete list.
pub fn events<K: Kind>(
    api: Api<K>,
    client: Client,
    optional: bool,
) -> BoxStream<'static, Result<Event<K>, watcher::Error>> {
    let watch = move |api: Api<K>| {
        watcher(api, watcher::Config::default())
            .default_backoff()
            .boxed()
    };
    if !optional {
        return watch(api);
    }
    stream::once(async move { serves::<K>(&client).await })
        .flat_map(move |served| {
            if served {
                watch(api.clone())
            } else {
                info!(kind = %K::kind(&()), "the kind is not installed; it has no objects");
                stream::iter([Ok(Event::Init), Ok(Event::InitDone)])
                    .chain(stream::pending())
                    .boxed()
            }
        })
        .boxed()
}

type Driver = std::pin::Pin<Box<dyn Future<Output = ()> + Send>>;

/// Drops the metadata no reader looks at: managed fields and kubectl's last-applied copy.
pub fn trim_metadata(meta: &mut ObjectMeta) {
    meta.managed_fields = None;
    if let Some(annotations) = meta.annotations.as_mut() {
        annotations.remove(LAST_APPLIED);
        if annotations.is_empty() {
            meta.annotations = None;
        }
    }
}

/// Keeps of a Node what placement rules read: labels, annotations, taints, unschedulable,
/// the conditions' types, statuses and transition times, and addresses; not its images,
/// capacity or node info.
pub fn trim_node(node: &mut Node) {
    let status = node.status.take().unwrap_or_default();
    let conditions = status.conditions.map(|conditions| {
        conditions
            .into_iter()
            .map(|c| NodeCondition {
                type_: c.type_,
                status: c.status,
                last_transition_time: c.last_transition_time,
                ..NodeCondition::default()
            })
            .collect()
    });
    node.status = Some(NodeStatus {
        conditions,
        addresses: status.addresses,
        ..NodeStatus::default()
    });
}

/// A reflector store of `K` seen through `api` (with discovery first when `optional`), and
/// the future that keeps it current; every change wakes `changed`. Each object is stored
/// after [`trim_metadata`] and `trim`.
pub fn reflect<K: Kind>(
    api: Api<K>,
    client: Client,
    optional: bool,
    changed: Arc<Notify>,
    trim: fn(&mut K),
) -> (Store<K>, impl Future<Output = ()> + Send + 'static)
where
    K::DynamicType: Eq + Hash + Clone,
{
    let (reader, writer) = reflector::store();
    let changes = events(api, client, optional).modify(move |object| {
        trim_metadata(object.meta_mut());
        trim(object);
    });
    (reader, drive::<K, K>(writer, changes, changed))
}

/// A reflector store of compact copies of the `K` seen through `api`: each object is kept as
/// what `convert` makes of it. For kinds of which a node sees thousands and reads a few
/// fields: a typed object's empty optional fields alone are most of its size.
pub fn reflect_as<K: Kind, C>(
    api: Api<K>,
    client: Client,
    changed: Arc<Notify>,
    convert: fn(K) -> C,
) -> (Store<C>, impl Future<Output = ()> + Send + 'static)
where
    C: Lookup<DynamicType = ()> + Clone + Send + Sync + 'static,
{
    let (reader, writer) = reflector::store();
    let changes = events(api, client, false).map(move |event| {
        event.map(|event| match event {
            Event::Apply(object) => Event::Apply(convert(object)),
            Event::Delete(object) => Event::Delete(convert(object)),
            Event::InitApply(object) => Event::InitApply(convert(object)),
            Event::Init => Event::Init,
            Event::InitDone => Event::InitDone,
        })
    });
    (reader, drive::<K, C>(writer, changes, changed))
}

/// Keeps `writer` current from `changes` (of the kind `K`, stored as `C`), waking `changed`
/// at every change.
fn drive<K: Kind, C>(
    writer: reflector::store::Writer<C>,
    changes: impl futures::Stream<Item = Result<Event<C>, watcher::Error>> + Send + 'static,
    changed: Arc<Notify>,
) -> impl Future<Output = ()> + Send + 'static
where
    C: Lookup<DynamicType = ()> + Clone + Send + Sync + 'static,
{
    reflector::reflector(writer, changes).for_each(move |event| {
        match event {
            Ok(_) => changed.notify_one(),
            Err(error) => warn!(kind = %K::kind(&()), %error, "watch failed; retrying"),
        }
        future::ready(())
    })
}

/// A store of the namespaced kind `K` in `namespace` (every namespace for `None`) whose
/// driver is pushed onto `drivers`.
fn store<K: Kind<Scope = NamespaceResourceScope>>(
    client: &Client,
    namespace: Option<&str>,
    optional: bool,
    changed: &Arc<Notify>,
    drivers: &mut Vec<Driver>,
) -> Store<K> {
    let api = match namespace {
        Some(namespace) => Api::<K>::namespaced(client.clone(), namespace),
        None => Api::<K>::all(client.clone()),
    };
    let (reader, driver) = reflect(api, client.clone(), optional, changed.clone(), |_| {});
    drivers.push(Box::pin(driver));
    reader
}

/// Reflector stores of every `metallb.io` kind the components read, and of Nodes.
#[derive(Clone)]
pub struct Stores {
    /// 4.10 `AddressPool`s (empty when the kind is not installed).
    pub address_pools: Store<AddressPool>,
    /// `IPAddressPool`s.
    pub ip_address_pools: Store<IPAddressPool>,
    /// `BGPPeer`s, at the storage version.
    pub bgp_peers: Store<BGPPeer>,
    /// `BFDProfile`s.
    pub bfd_profiles: Store<BFDProfile>,
    /// `BGPAdvertisement`s.
    pub bgp_advertisements: Store<BGPAdvertisement>,
    /// `L2Advertisement`s.
    pub l2_advertisements: Store<L2Advertisement>,
    /// `Community` objects.
    pub communities: Store<Community>,
    /// Nodes.
    pub nodes: Store<Node>,
    /// Woken at every change of any store.
    pub changed: Arc<Notify>,
}

impl Debug for Stores {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stores").finish_non_exhaustive()
    }
}

impl Stores {
    /// Starts the watches of the `metallb.io` kinds in `namespace` (every namespace for
    /// `None`, which needs cluster-wide read access) and of Nodes; the returned future drives
    /// them and must be polled (for example spawned) for the stores to fill.
    pub fn start(
        client: &Client,
        namespace: Option<&str>,
    ) -> (Self, impl Future<Output = ()> + Send + use<>) {
        let mut drivers = Vec::new();
        let changed = Arc::new(Notify::new());
        let (d, ns) = (&mut drivers, namespace);
        let stores = Stores {
            address_pools: store(client, ns, true, &changed, d),
            ip_address_pools: store(client, ns, false, &changed, d),
            bgp_peers: store(client, ns, false, &changed, d),
            bfd_profiles: store(client, ns, false, &changed, d),
            bgp_advertisements: store(client, ns, false, &changed, d),
            l2_advertisements: store(client, ns, false, &changed, d),
            communities: store(client, ns, false, &changed, d),
            nodes: {
                let api = Api::<Node>::all(client.clone());
                let (nodes, driver) =
                    reflect(api, client.clone(), false, changed.clone(), trim_node);
                d.push(Box::pin(driver));
                nodes
            },
            changed,
        };
        (stores, future::join_all(drivers).map(drop))
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
