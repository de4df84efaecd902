//! What the planner reads: the cluster as every speaker sees it. The speaker fills these plain
//! types from its watches (or from its static file); nothing here knows about Kubernetes
//! objects, and two speakers given equal values plan alike.

use std::{
    collections::{BTreeMap, BTreeSet},
    fmt,
    net::IpAddr,
};

use ipnet::IpNet;
use metallb_bgp::{Community, LargeCommunity};
use serde::{Serialize, Serializer};

use crate::selector::{LabelSelector, Labels, any_matches};

/// The node label that takes a node out of load balancing, whatever its value.
pub const EXCLUDE_FROM_LOAD_BALANCERS: &str =
    "node.kubernetes.io/exclude-from-external-load-balancers";
/// The taint key (any effect) that marks a node as shut down for good: it always drains.
pub const OUT_OF_SERVICE: &str = "node.kubernetes.io/out-of-service";
/// The node annotation (any value) that drains a node: a lever for cluster-lifecycle tools.
pub const DRAIN_ANNOTATION: &str = "metallb.io/drain";

/// Everything the plan depends on except which node is planning.
#[derive(Clone, Debug, Default)]
pub struct Cluster {
    /// Nodes by name.
    pub nodes: BTreeMap<String, Node>,
    /// Names of the nodes whose speaker is alive (its per-node Lease is being renewed). A node
    /// missing here neither wins an election nor announces anything.
    pub alive: BTreeSet<String>,
    /// Address pools by name: IPAddressPools and 4.10 AddressPools alike.
    pub pools: BTreeMap<String, Pool>,
    /// L2Advertisements by name.
    pub l2_advertisements: BTreeMap<String, L2Advertisement>,
    /// BGPAdvertisements by name.
    pub bgp_advertisements: BTreeMap<String, BgpAdvertisement>,
    /// BGPPeers by name.
    pub peers: BTreeMap<String, Peer>,
    /// Services of type LoadBalancer by `namespace/name`.
    pub services: BTreeMap<ServiceKey, Service>,
    /// How the speakers treat the exclude label and drains.
    pub policy: Policy,
}

impl Cluster {
    /// The name of the pool that holds `ip`, if any. Pools never overlap (the webhook refuses
    /// it), so there is at most one.
    pub fn pool_of(&self, ip: IpAddr) -> Option<&str> {
        self.pools
            .iter()
            .find(|(_, pool)| pool.contains(ip))
            .map(|(name, _)| name.as_str())
    }
}

/// A Node, reduced to what MetalLB and our drain rules read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Node {
    /// `metadata.labels`: node selectors match them, and [`EXCLUDE_FROM_LOAD_BALANCERS`] is one.
    pub labels: Labels,
    /// `metadata.annotations`; only [`DRAIN_ANNOTATION`] is read.
    pub annotations: BTreeMap<String, String>,
    /// Whether the `NetworkUnavailable` condition is `True`.
    pub network_unavailable: bool,
    /// `spec.unschedulable` (cordoned); a drain only with [`Drain::on_cordon`].
    pub unschedulable: bool,
    /// Keys of `spec.taints`, any effect: [`OUT_OF_SERVICE`] and [`Drain::taint_keys`] drain.
    pub taints: BTreeSet<String>,
    /// Whether the Node is being deleted (`metadata.deletionTimestamp` is set).
    pub deleting: bool,
    /// Whether its `Ready` condition has been `False` or `Unknown` for longer than the grace
    /// period (the caller holds the clock). A Node without the condition counts as ready.
    pub not_ready: bool,
}

/// Speaker-wide settings every speaker shares.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Policy {
    /// MetalLB's `--ignore-exclude-lb`: keep nodes labelled [`EXCLUDE_FROM_LOAD_BALANCERS`].
    pub ignore_exclude_lb: bool,
    /// The MetalLB resource's `spec.drain`.
    pub drain: Drain,
}

/// When a node drains, beyond the triggers that always apply ([`OUT_OF_SERVICE`], deletion,
/// [`DRAIN_ANNOTATION`]). A draining node hands its layer 2 IPs over and withdraws its routes,
/// but keeps its sessions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Drain {
    /// A cordoned node drains.
    pub on_cordon: bool,
    /// A node with a taint of one of these keys (any effect) drains.
    pub taint_keys: BTreeSet<String>,
    /// A draining node keeps announcing a service that no other node is eligible for, rather
    /// than leave it unreachable.
    pub never_blackhole: bool,
}

impl Default for Drain {
    /// The API's defaults: no cordon, no taint keys, never blackhole.
    fn default() -> Self {
        Self {
            on_cordon: false,
            taint_keys: BTreeSet::new(),
            never_blackhole: true,
        }
    }
}

/// An address pool.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Pool {
    /// The pool's addresses.
    pub addresses: Vec<Addresses>,
    /// `metadata.labels`, matched by the advertisements' `ipAddressPoolSelectors`.
    pub labels: Labels,
    /// For a 4.10 AddressPool: its protocol, which announces it as an advertisement of its own
    /// would. `None` for an IPAddressPool.
    pub legacy: Option<LegacyProtocol>,
}

impl Pool {
    /// Whether the pool holds `ip`.
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.addresses.iter().any(|a| a.contains(ip))
    }
}

/// One entry of a pool's `addresses`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Addresses {
    /// A CIDR such as `192.168.1.0/24`.
    Cidr(IpNet),
    /// An inclusive range such as `192.168.1.10-192.168.1.20`.
    Range {
        /// The first address.
        first: IpAddr,
        /// The last address.
        last: IpAddr,
    },
}

impl Addresses {
    /// Whether `ip` is inside.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match *self {
            Self::Cidr(net) => net.contains(&ip),
            Self::Range { first, last } => {
                first.is_ipv4() == ip.is_ipv4() && first <= ip && ip <= last
            }
        }
    }
}

/// The protocol of a 4.10 AddressPool.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LegacyProtocol {
    /// `layer2`: announced from every node on every interface.
    Layer2,
    /// `bgp` with its inline `bgpAdvertisements`, to every peer from every node. An empty list
    /// announces each IP alone with no attributes, as one default advertisement.
    Bgp(Vec<BgpAttributes>),
}

/// Which pools an advertisement announces: those named, those whose labels match a selector,
/// and every pool when both lists are empty.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PoolSelection {
    /// `ipAddressPools`.
    pub names: BTreeSet<String>,
    /// `ipAddressPoolSelectors`.
    pub selectors: Vec<LabelSelector>,
}

impl PoolSelection {
    /// Whether the pool `name` is selected.
    pub fn selects(&self, name: &str, pool: &Pool) -> bool {
        (self.names.is_empty() && self.selectors.is_empty())
            || self.names.contains(name)
            || self.selectors.iter().any(|s| s.matches(&pool.labels))
    }
}

/// An L2Advertisement.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct L2Advertisement {
    /// The pools it announces.
    pub pools: PoolSelection,
    /// `nodeSelectors`: the nodes that may announce; every node when empty.
    pub node_selectors: Vec<LabelSelector>,
    /// `interfaces`: where to answer and announce; every interface when empty.
    pub interfaces: BTreeSet<String>,
}

/// A BGPAdvertisement.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BgpAdvertisement {
    /// The pools it announces.
    pub pools: PoolSelection,
    /// `nodeSelectors`: the nodes that announce; every node when empty.
    pub node_selectors: Vec<LabelSelector>,
    /// `peers`: names of the BGPPeers that receive the routes; every peer when empty.
    pub peers: BTreeSet<String>,
    /// What the routes carry.
    pub attributes: BgpAttributes,
}

/// How an advertisement's routes look, with communities already resolved to values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BgpAttributes {
    /// Standard communities.
    pub communities: BTreeSet<Community>,
    /// Large communities.
    pub large_communities: BTreeSet<LargeCommunity>,
    /// LOCAL_PREF, for iBGP peers.
    pub local_pref: Option<u32>,
    /// IPv4 service IPs are announced as this prefix length (32: each IP alone).
    pub aggregation_length: u8,
    /// IPv6 service IPs are announced as this prefix length (128: each IP alone).
    pub aggregation_length_v6: u8,
}

impl Default for BgpAttributes {
    /// No communities, no LOCAL_PREF, one route per IP.
    fn default() -> Self {
        Self {
            communities: BTreeSet::new(),
            large_communities: BTreeSet::new(),
            local_pref: None,
            aggregation_length: 32,
            aggregation_length_v6: 128,
        }
    }
}

/// A BGPPeer, as far as the plan goes; the session itself is the driver's business.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Peer {
    /// `peerAddress`.
    pub address: IpAddr,
    /// `nodeSelectors`: the nodes that open a session; every node when empty.
    pub node_selectors: Vec<LabelSelector>,
}

impl Peer {
    /// Whether a node with these labels peers with it.
    pub fn selects(&self, labels: &Labels) -> bool {
        any_matches(&self.node_selectors, labels)
    }
}

/// A Service's `namespace/name`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServiceKey {
    /// `metadata.namespace`.
    pub namespace: String,
    /// `metadata.name`.
    pub name: String,
}

impl ServiceKey {
    /// The key of `namespace/name`.
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

impl fmt::Display for ServiceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

impl Serialize for ServiceKey {
    /// As `namespace/name`, so it can key a JSON object.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// A Service of type LoadBalancer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Service {
    /// Whether its `loadBalancerClass` is ours; other services are left alone.
    pub ours: bool,
    /// `status.loadBalancer.ingress` IPs, in order: the first one seeds the layer 2 election.
    pub ingress: Vec<IpAddr>,
    /// `spec.externalTrafficPolicy`.
    pub traffic_policy: TrafficPolicy,
    /// The endpoints of its EndpointSlices.
    pub endpoints: Vec<Endpoint>,
}

/// `spec.externalTrafficPolicy`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TrafficPolicy {
    /// Any node forwards to any endpoint.
    #[default]
    Cluster,
    /// Only nodes with a serving endpoint of their own take traffic.
    Local,
}

/// One EndpointSlice endpoint.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Endpoint {
    /// `nodeName`.
    pub node: Option<String>,
    /// `conditions.ready`.
    pub ready: Option<bool>,
    /// `conditions.serving`.
    pub serving: Option<bool>,
}

impl Endpoint {
    /// MetalLB's `EndpointCanServe`: ready (unset counts as ready) or serving. A terminating
    /// pod is never ready, so it counts exactly as long as it still serves.
    pub fn can_serve(&self) -> bool {
        self.ready.unwrap_or(true) || self.serving == Some(true)
    }
}
