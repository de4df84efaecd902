//! The plan of one node: what it announces in layer 2 and to each BGP peer, and for every
//! service the reason, computed from a [`Cluster`] by [`plan`].

use std::{
    collections::{BTreeMap, BTreeSet},
    net::IpAddr,
};

use ipnet::IpNet;
use metallb_bgp::{Community, LargeCommunity};
use metallb_l2::AllowedInterfaces;
use serde::Serialize;

use crate::{
    advertisement::Advertisements,
    bgp,
    cluster::{Cluster, Service, ServiceKey, TrafficPolicy},
    layer2,
    node::Standings,
    reason::{DrainTrigger, Reason},
    selector::Labels,
    ser,
    small::SmallMap,
};

/// What a plan cannot be made from.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// The planning node has no Node in the cluster, so no selector can be matched.
    #[error("node {0:?} is not among the cluster's nodes")]
    UnknownNode(String),
    /// A BGP advertisement aggregates to a prefix length the IP's family does not have.
    #[error("aggregation length {length} does not fit {ip}")]
    AggregationLength {
        /// The service IP.
        ip: IpAddr,
        /// The advertisement's length for that family.
        length: u8,
    },
}

/// What one node announces, and why, for every service.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    /// The planning node.
    pub node: String,
    /// Why this node drains, if it does.
    pub draining: Option<DrainTrigger>,
    /// The IPs this node answers ARP/NDP for and announces, with where.
    pub layer2: BTreeMap<IpAddr, Layer2Announcement>,
    /// The peers this node keeps a session with (their `nodeSelectors` select it), with the
    /// routes to send each. A peer missing here gets no session.
    pub peers: BTreeMap<String, PeerRoutes>,
    /// Every service, with what this node does for it and why.
    pub services: BTreeMap<ServiceKey, ServicePlan>,
}

impl Plan {
    /// What this node does for `service` and why; `None` for a service the cluster lacks.
    pub fn explain(&self, service: &ServiceKey) -> Option<&ServicePlan> {
        self.services.get(service)
    }
}

/// An IP this node announces in layer 2.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Layer2Announcement {
    /// The interfaces to answer and announce on: the union of this node's L2Advertisements'
    /// `interfaces`, every interface if one of them names none.
    #[serde(serialize_with = "ser::interfaces")]
    pub interfaces: AllowedInterfaces,
    /// The services with this IP (several when they share it), in order, each once. A list
    /// rather than a set: nearly every IP has one service, and a set's smallest node holds
    /// eleven.
    pub services: Vec<ServiceKey>,
}

/// A BGP session this node keeps, with its routes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PeerRoutes {
    /// The peer's address.
    pub address: IpAddr,
    /// The prefixes to send, merged across services.
    pub routes: BTreeMap<IpNet, RouteAttributes>,
}

/// The path attributes a prefix is sent with.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RouteAttributes {
    /// LOCAL_PREF (the session sends it to iBGP peers only).
    pub local_pref: Option<u32>,
    /// Standard communities, the union over the advertisements that send the prefix.
    #[serde(serialize_with = "ser::display_all")]
    pub communities: BTreeSet<Community>,
    /// Large communities, the union over the advertisements that send the prefix.
    #[serde(serialize_with = "ser::display_all")]
    pub large_communities: BTreeSet<LargeCommunity>,
}

/// What this node does for one service.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "camelCase")]
pub enum ServicePlan {
    /// Its `loadBalancerClass` belongs to another implementation.
    NotOurs,
    /// It has no ingress IP yet.
    NoIngress,
    /// No single pool holds all its IPs.
    NoPool {
        /// Its ingress IPs.
        ips: Vec<IpAddr>,
    },
    /// No advertisement of either protocol selects its pool.
    NoAdvertisement {
        /// Its ingress IPs.
        ips: Vec<IpAddr>,
        /// Its pool.
        pool: String,
    },
    /// Its pool is advertised in layer 2, BGP or both.
    Planned(Planned),
}

impl ServicePlan {
    /// The layer 2 outcome, if the pool is advertised in layer 2.
    pub fn layer2(&self) -> Option<&Layer2Plan> {
        match self {
            Self::Planned(planned) => planned.layer2.as_ref(),
            _ => None,
        }
    }

    /// The BGP outcome, if the pool is advertised in BGP.
    pub fn bgp(&self) -> Option<&BgpPlan> {
        match self {
            Self::Planned(planned) => planned.bgp.as_ref(),
            _ => None,
        }
    }
}

/// A service whose pool is advertised.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Planned {
    /// Its ingress IPs.
    pub ips: Vec<IpAddr>,
    /// The pool that holds them.
    pub pool: String,
    /// The layer 2 outcome; `None` when no L2Advertisement selects the pool.
    pub layer2: Option<Layer2Plan>,
    /// The BGP outcome; `None` when no BGPAdvertisement selects the pool.
    pub bgp: Option<BgpPlan>,
}

/// The layer 2 election for a service, as every speaker computes it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Layer2Plan {
    /// Why this node announces the service's IPs or not.
    #[serde(flatten)]
    pub reason: Reason,
    /// The node that announces them; `None` when no node is a candidate.
    pub owner: Option<String>,
    /// How many nodes took part in the election.
    pub candidates: usize,
    /// Where this node would announce them (see [`Layer2Announcement::interfaces`]).
    #[serde(serialize_with = "ser::interfaces")]
    pub interfaces: AllowedInterfaces,
}

/// The BGP outcome for a service on this node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BgpPlan {
    /// Every BGPPeer, with what it receives of this service and why.
    pub peers: SmallMap<String, PeerPlan>,
}

/// What one peer receives of one service.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PeerPlan {
    /// Why the service is sent or not.
    #[serde(flatten)]
    pub reason: Reason,
    /// The prefixes sent; empty unless the reason announces.
    pub routes: SmallMap<IpNet, RouteAttributes>,
}

/// Plans for `node`: what it announces in layer 2 and to each BGP peer, and why, for every
/// service of the cluster. Every node that plans from equal clusters elects the same layer 2
/// owners.
pub fn plan(cluster: &Cluster, node: &str) -> Result<Plan, PlanError> {
    let labels = &cluster
        .nodes
        .get(node)
        .ok_or_else(|| PlanError::UnknownNode(node.to_owned()))?
        .labels;
    let context = Context {
        cluster,
        node,
        labels,
        standings: Standings::new(cluster),
        advertisements: Advertisements::new(cluster),
    };
    let mut services = Vec::with_capacity(cluster.services.len());
    let mut drafts = BTreeMap::new();
    for (key, service) in &cluster.services {
        let (service_plan, draft) = context.service(service)?;
        services.push((key.clone(), service_plan));
        if let Some(draft) = draft {
            drafts.insert(key, draft);
        }
    }
    // Collected, not inserted one by one: a map built from sorted entries fills its nodes,
    // where inserting in order leaves each about half full (180 bytes more per service).
    let mut services: BTreeMap<ServiceKey, ServicePlan> = services.into_iter().collect();
    let mut peers = cluster
        .peers
        .iter()
        .filter(|(_, peer)| peer.selects(labels))
        .map(|(name, peer)| {
            let routes = PeerRoutes {
                address: peer.address,
                routes: BTreeMap::new(),
            };
            (name.clone(), routes)
        })
        .collect();
    for (key, bgp_plan) in bgp::settle(drafts, &mut peers) {
        if let Some(ServicePlan::Planned(planned)) = services.get_mut(key) {
            planned.bgp = Some(bgp_plan);
        }
    }
    Ok(Plan {
        node: node.to_owned(),
        draining: context.standings.drain(node).cloned(),
        layer2: layer2_announcements(&services),
        peers,
        services,
    })
}

/// What every rule reads, computed once per plan.
#[derive(Debug)]
pub(crate) struct Context<'a> {
    pub(crate) cluster: &'a Cluster,
    pub(crate) node: &'a str,
    pub(crate) labels: &'a Labels,
    pub(crate) standings: Standings<'a>,
    pub(crate) advertisements: Advertisements<'a>,
}

impl<'a> Context<'a> {
    /// The service's plan, its BGP part still a draft (settled across services later).
    fn service(
        &self,
        service: &'a Service,
    ) -> Result<(ServicePlan, Option<bgp::Draft<'a>>), PlanError> {
        if !service.ours {
            return Ok((ServicePlan::NotOurs, None));
        }
        let Some(&first) = service.ingress.first() else {
            return Ok((ServicePlan::NoIngress, None));
        };
        let ips = service.ingress.clone();
        let holds_all = |pool: &&str| ips.iter().all(|ip| self.cluster.pools[*pool].contains(*ip));
        let Some(pool) = self.cluster.pool_of(first).filter(holds_all) else {
            return Ok((ServicePlan::NoPool { ips }, None));
        };
        let ads = self.advertisements.of(pool);
        let pool = pool.to_owned();
        if ads.l2.is_empty() && ads.bgp.is_empty() {
            return Ok((ServicePlan::NoAdvertisement { ips, pool }, None));
        }
        let endpoints = Endpoints::new(service);
        let layer2 = (!ads.l2.is_empty()).then(|| layer2::elect(self, first, &endpoints, ads));
        let draft = if ads.bgp.is_empty() {
            None
        } else {
            Some(bgp::draft(self, &service.ingress, &endpoints, ads)?)
        };
        let planned = Planned {
            ips,
            pool,
            layer2,
            bgp: None,
        };
        Ok((ServicePlan::Planned(planned), draft))
    }
}

/// Where a service's endpoints can serve.
#[derive(Debug)]
pub(crate) struct Endpoints<'a> {
    /// Some endpoint can serve, on any node or none.
    pub(crate) anywhere: bool,
    policy: TrafficPolicy,
    /// The nodes with an endpoint that can serve.
    nodes: BTreeSet<&'a str>,
}

impl<'a> Endpoints<'a> {
    fn new(service: &'a Service) -> Self {
        let serving = || service.endpoints.iter().filter(|e| e.can_serve());
        Self {
            anywhere: serving().next().is_some(),
            policy: service.traffic_policy,
            nodes: serving().filter_map(|e| e.node.as_deref()).collect(),
        }
    }

    /// Whether `node` may take the service's traffic: any node for `Cluster` (given an endpoint
    /// anywhere), only nodes with a serving endpoint for `Local`.
    pub(crate) fn admit(&self, node: &str) -> bool {
        match self.policy {
            TrafficPolicy::Cluster => self.anywhere,
            TrafficPolicy::Local => self.nodes.contains(node),
        }
    }
}

/// The IPs this node announces in layer 2, merged across services sharing them.
fn layer2_announcements(
    services: &BTreeMap<ServiceKey, ServicePlan>,
) -> BTreeMap<IpAddr, Layer2Announcement> {
    let mut announced: Vec<(IpAddr, &ServiceKey, &AllowedInterfaces)> = Vec::new();
    for (key, service) in services {
        let ServicePlan::Planned(planned) = service else {
            continue;
        };
        let Some(layer2) = service.layer2().filter(|l2| l2.reason.announces()) else {
            continue;
        };
        announced.extend(planned.ips.iter().map(|ip| (*ip, key, &layer2.interfaces)));
    }
    // Stable: the services of one IP stay in key order. Merged, then collected into full
    // nodes as the services are.
    announced.sort_by_key(|(ip, _, _)| *ip);
    let mut merged: Vec<(IpAddr, Layer2Announcement)> = Vec::new();
    for (ip, key, interfaces) in announced {
        if let Some((_, announcement)) = merged.last_mut().filter(|(last, _)| *last == ip) {
            layer2::widen(&mut announcement.interfaces, interfaces);
            if announcement.services.last() != Some(key) {
                announcement.services.push(key.clone());
            }
        } else {
            let mut announcement = Layer2Announcement {
                interfaces: AllowedInterfaces::Only(BTreeSet::new()),
                services: vec![key.clone()],
            };
            layer2::widen(&mut announcement.interfaces, interfaces);
            merged.push((ip, announcement));
        }
    }
    merged.into_iter().collect()
}
