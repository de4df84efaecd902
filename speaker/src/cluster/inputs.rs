//! From the cluster's objects to the planner's inputs ([`metallb_plan::Cluster`]). Pure:
//! objects in, planner types out; what does not parse (the webhooks refuse it, but objects
//! may predate them) is left out with a reason for the log, never guessed.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::Node;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::jiff::Timestamp;
use metallb_api::addresspool::Protocol;
use metallb_api::addresspool::v1beta1::AddressPool;
use metallb_api::advertisement::{BGPAdvertisement, BGPAdvertisementSpec, L2Advertisement};
use metallb_api::bgppeer::v1beta2::BGPPeer;
use metallb_api::community::Community;
use metallb_api::ipaddresspool::IPAddressPool;
use metallb_api::validation::{self, Community as Value};
use metallb_plan as plan;

use super::compact::{ServiceView, SliceView};

/// The label naming an EndpointSlice's Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// Something left out of the plan, and why.
pub type Skipped = (String, String);

/// The objects one speaker reads, borrowed from its watch stores.
#[derive(Debug, Default)]
pub struct Objects<'a> {
    /// Nodes.
    pub nodes: Vec<&'a Node>,
    /// `IPAddressPool`s of the MetalLB namespace.
    pub ip_address_pools: Vec<&'a IPAddressPool>,
    /// 4.10 `AddressPool`s of the MetalLB namespace.
    pub address_pools: Vec<&'a AddressPool>,
    /// `L2Advertisement`s of the MetalLB namespace.
    pub l2_advertisements: Vec<&'a L2Advertisement>,
    /// `BGPAdvertisement`s of the MetalLB namespace.
    pub bgp_advertisements: Vec<&'a BGPAdvertisement>,
    /// `BGPPeer`s of the MetalLB namespace.
    pub bgp_peers: Vec<&'a BGPPeer>,
    /// `Community` objects of the MetalLB namespace.
    pub communities: Vec<&'a Community>,
    /// Services, all namespaces.
    pub services: Vec<&'a ServiceView>,
    /// EndpointSlices, all namespaces.
    pub endpoint_slices: Vec<&'a SliceView>,
}

/// The planner's view of `objects`; `alive` are the nodes whose speaker is alive,
/// `lb_class` the class this speaker serves, and a node counts as not ready when its `Ready`
/// condition left `True` at or before `not_ready_before`. Returns what was left out too.
pub fn cluster(
    objects: &Objects<'_>,
    alive: BTreeSet<String>,
    lb_class: Option<&str>,
    policy: plan::Policy,
    not_ready_before: Timestamp,
) -> (plan::Cluster, Vec<Skipped>) {
    let mut skipped = Vec::new();
    let mut cluster = plan::Cluster {
        alive,
        policy,
        ..plan::Cluster::default()
    };
    for node in &objects.nodes {
        cluster
            .nodes
            .insert(name(&node.metadata), node_of(node, not_ready_before));
    }
    for pool in &objects.ip_address_pools {
        let addresses = addresses(&pool.spec.addresses, &mut skipped, "ipaddresspool");
        let pool_plan = plan::Pool {
            addresses,
            labels: pool.metadata.labels.clone().unwrap_or_default(),
            legacy: None,
        };
        cluster.pools.insert(name(&pool.metadata), pool_plan);
    }
    let aliases = aliases(&objects.communities);
    for pool in &objects.address_pools {
        let legacy = match pool.spec.protocol {
            Protocol::Layer2 => plan::LegacyProtocol::Layer2,
            Protocol::Bgp => {
                let ads = pool.spec.bgp_advertisements.iter().flatten();
                let attributes = ads.filter_map(|ad| {
                    let spec = BGPAdvertisementSpec {
                        aggregation_length: ad.aggregation_length,
                        aggregation_length_v6: ad.aggregation_length_v6,
                        local_pref: ad.local_pref,
                        communities: ad.communities.clone(),
                        ..BGPAdvertisementSpec::default()
                    };
                    let what = format!("addresspool {:?}", name(&pool.metadata));
                    attributes(&spec, &aliases)
                        .map_err(|e| skipped.push((what, e)))
                        .ok()
                });
                plan::LegacyProtocol::Bgp(attributes.collect())
            }
        };
        let addresses = addresses(&pool.spec.addresses, &mut skipped, "addresspool");
        let pool_plan = plan::Pool {
            addresses,
            labels: pool.metadata.labels.clone().unwrap_or_default(),
            legacy: Some(legacy),
        };
        cluster.pools.insert(name(&pool.metadata), pool_plan);
    }
    for ad in &objects.l2_advertisements {
        let spec = &ad.spec;
        let l2 = plan::L2Advertisement {
            pools: pools(
                spec.ip_address_pools.as_ref(),
                spec.ip_address_pool_selectors.as_ref(),
            ),
            node_selectors: selectors(spec.node_selectors.as_ref()),
            interfaces: spec.interfaces.iter().flatten().cloned().collect(),
        };
        cluster.l2_advertisements.insert(name(&ad.metadata), l2);
    }
    for ad in &objects.bgp_advertisements {
        let spec = &ad.spec;
        let what = format!("bgpadvertisement {:?}", name(&ad.metadata));
        let attributes = match attributes(spec, &aliases) {
            Ok(attributes) => attributes,
            Err(reason) => {
                skipped.push((what, reason));
                continue;
            }
        };
        let bgp = plan::BgpAdvertisement {
            pools: pools(
                spec.ip_address_pools.as_ref(),
                spec.ip_address_pool_selectors.as_ref(),
            ),
            node_selectors: selectors(spec.node_selectors.as_ref()),
            peers: spec.peers.iter().flatten().cloned().collect(),
            attributes,
        };
        cluster.bgp_advertisements.insert(name(&ad.metadata), bgp);
    }
    for peer in &objects.bgp_peers {
        let spec = &peer.spec;
        let address = spec.peer_address.as_deref().and_then(|a| a.parse().ok());
        let Some(address) = address else {
            let what = format!("bgppeer {:?}", name(&peer.metadata));
            skipped.push((what, "spec.peerAddress: not an IP address".to_owned()));
            continue;
        };
        let peer_plan = plan::Peer {
            address,
            node_selectors: selectors(spec.node_selectors.as_ref()),
        };
        cluster.peers.insert(name(&peer.metadata), peer_plan);
    }
    let endpoints = endpoints(&objects.endpoint_slices);
    for service in &objects.services {
        if let Some((key, planned)) = service_of(service, lb_class, &endpoints) {
            cluster.services.insert(key, planned);
        }
    }
    (cluster, skipped)
}

fn name(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> String {
    meta.name.clone().unwrap_or_default()
}

/// Since when the Node's `Ready` condition is `False` or `Unknown` (its last transition; the
/// epoch when the API server gave none); `None` while ready or when it has no such condition.
pub fn not_ready_since(node: &Node) -> Option<Timestamp> {
    let conditions = node.status.as_ref()?.conditions.as_ref()?;
    let ready = conditions.iter().find(|c| c.type_ == "Ready")?;
    (ready.status != "True").then(|| {
        ready
            .last_transition_time
            .as_ref()
            .map_or(Timestamp::UNIX_EPOCH, |t| t.0)
    })
}

fn node_of(node: &Node, not_ready_before: Timestamp) -> plan::Node {
    let spec = node.spec.as_ref();
    let conditions = node.status.as_ref().and_then(|s| s.conditions.as_ref());
    let network_unavailable = conditions
        .into_iter()
        .flatten()
        .any(|c| c.type_ == "NetworkUnavailable" && c.status == "True");
    plan::Node {
        labels: node.metadata.labels.clone().unwrap_or_default(),
        annotations: node.metadata.annotations.clone().unwrap_or_default(),
        network_unavailable,
        unschedulable: spec.and_then(|s| s.unschedulable).unwrap_or(false),
        taints: spec
            .and_then(|s| s.taints.as_ref())
            .into_iter()
            .flatten()
            .map(|t| t.key.clone())
            .collect(),
        deleting: node.metadata.deletion_timestamp.is_some(),
        not_ready: not_ready_since(node).is_some_and(|since| since <= not_ready_before),
    }
}

fn addresses(entries: &[String], skipped: &mut Vec<Skipped>, kind: &str) -> Vec<plan::Addresses> {
    let mut out = Vec::new();
    for entry in entries {
        match validation::addresses::parse_entry(entry) {
            Ok(parsed) => out.extend(parsed.cidrs.into_iter().map(plan::Addresses::Cidr)),
            Err(reason) => skipped.push((format!("{kind} address {entry:?}"), reason)),
        }
    }
    out
}

fn pools(
    names: Option<&Vec<String>>,
    selectors_: Option<&Vec<LabelSelector>>,
) -> plan::PoolSelection {
    plan::PoolSelection {
        names: names.into_iter().flatten().cloned().collect(),
        selectors: selectors(selectors_),
    }
}

/// The planner's selectors. An unknown operator (the webhooks refuse it) selects nothing.
fn selectors(selectors: Option<&Vec<LabelSelector>>) -> Vec<plan::LabelSelector> {
    selectors.into_iter().flatten().map(selector).collect()
}

fn selector(selector: &LabelSelector) -> plan::LabelSelector {
    let expressions = selector.match_expressions.iter().flatten();
    plan::LabelSelector {
        match_labels: selector.match_labels.clone().unwrap_or_default(),
        match_expressions: expressions
            .map(|e| {
                let values = e.values.clone().unwrap_or_default();
                let operator = match e.operator.as_str() {
                    "In" => plan::Operator::In,
                    "NotIn" => plan::Operator::NotIn,
                    "Exists" => plan::Operator::Exists,
                    "DoesNotExist" => plan::Operator::DoesNotExist,
                    // `In` nothing matches no node.
                    _ => {
                        return plan::Requirement {
                            key: e.key.clone(),
                            operator: plan::Operator::In,
                            values: Vec::new(),
                        };
                    }
                };
                plan::Requirement {
                    key: e.key.clone(),
                    operator,
                    values,
                }
            })
            .collect(),
    }
}

/// Community aliases of every `Community` object, by name.
fn aliases(communities: &[&Community]) -> BTreeMap<String, String> {
    communities
        .iter()
        .flat_map(|c| c.spec.communities.iter().flatten())
        .filter_map(|alias| Some((alias.name.clone()?, alias.value.clone()?)))
        .collect()
}

/// An advertisement's route attributes, with aliases resolved.
fn attributes(
    spec: &BGPAdvertisementSpec,
    aliases: &BTreeMap<String, String>,
) -> Result<plan::BgpAttributes, String> {
    let length = |value: Option<i32>, default: u8, field: &str| match value {
        None => Ok(default),
        Some(v) => u8::try_from(v).map_err(|_| format!("spec.{field}: {v} is not a prefix length")),
    };
    let mut attributes = plan::BgpAttributes {
        local_pref: spec.local_pref,
        aggregation_length: length(spec.aggregation_length, 32, "aggregationLength")?,
        aggregation_length_v6: length(spec.aggregation_length_v6, 128, "aggregationLengthV6")?,
        ..plan::BgpAttributes::default()
    };
    for (i, text) in spec.communities.iter().flatten().enumerate() {
        let value = match aliases.get(text) {
            Some(value) => value.as_str(),
            None if text.contains(':') => text.as_str(),
            None => {
                return Err(format!(
                    "spec.communities[{i}]: no community alias {text:?}"
                ));
            }
        };
        match validation::parse_community(value)
            .map_err(|reason| format!("spec.communities[{i}]: {reason}"))?
        {
            Value::Standard(high, low) => {
                attributes
                    .communities
                    .insert(plan::Community::new(high, low));
            }
            Value::Large(global, one, two) => {
                attributes.large_communities.insert(plan::LargeCommunity {
                    global_admin: global,
                    local_data_1: one,
                    local_data_2: two,
                });
            }
        }
    }
    Ok(attributes)
}

/// The endpoints of every Service, by namespace and name, from its EndpointSlices.
fn endpoints(slices: &[&SliceView]) -> BTreeMap<(String, String), Vec<plan::Endpoint>> {
    let mut out: BTreeMap<(String, String), Vec<plan::Endpoint>> = BTreeMap::new();
    for slice in slices {
        let Some(service) = &slice.service else {
            continue;
        };
        out.entry((slice.namespace.clone(), service.clone()))
            .or_default()
            .extend(slice.endpoints.iter().cloned());
    }
    out
}

fn service_of(
    service: &ServiceView,
    lb_class: Option<&str>,
    endpoints: &BTreeMap<(String, String), Vec<plan::Endpoint>>,
) -> Option<(plan::ServiceKey, plan::Service)> {
    if !service.load_balancer {
        return None;
    }
    let key = (service.namespace.clone(), service.name.clone());
    let planned = plan::Service {
        ours: service.class.as_deref() == lb_class,
        ingress: service.ingress.clone(),
        traffic_policy: if service.local {
            plan::TrafficPolicy::Local
        } else {
            plan::TrafficPolicy::Cluster
        },
        endpoints: endpoints.get(&key).cloned().unwrap_or_default(),
    };
    Some((plan::ServiceKey::new(key.0, key.1), planned))
}
