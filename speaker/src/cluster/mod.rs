//! The speaker's view of the cluster: watch stores of everything the planner reads
//! ([`Watches`]), the planner's inputs made from them ([`inputs`]), and the engine's plan made
//! from the planner's output ([`engine_plan`]). The static file and the cluster end in the same
//! engine plan.

pub mod compact;
pub mod inputs;

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::runtime::reflector::Store;
use kube::{Api, Client};
use metallb_plan as plan;
use metallb_runtime::watch::{Stores, reflect_as};
use tokio::sync::Notify;

use crate::config::{self, PeerPlan, Plan};
use compact::{ServiceView, SliceView};

/// Everything the planner reads, kept current; `changed` wakes at every change.
#[derive(Clone)]
pub struct Watches {
    /// The `metallb.io` kinds and Nodes.
    pub stores: Stores,
    /// Services, all namespaces.
    pub services: Store<ServiceView>,
    /// EndpointSlices, all namespaces.
    pub endpoint_slices: Store<SliceView>,
}

impl std::fmt::Debug for Watches {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watches").finish_non_exhaustive()
    }
}

impl Watches {
    /// Starts the watches (the `metallb.io` kinds of `namespace` only); the returned future
    /// drives them.
    pub fn start(
        client: &Client,
        namespace: &str,
    ) -> (Self, impl Future<Output = ()> + Send + use<>) {
        let (stores, metallb) = Stores::start(client, Some(namespace));
        let changed: Arc<Notify> = stores.changed.clone();
        let api = Api::<Service>::all(client.clone());
        let (services, services_driver) =
            reflect_as(api, client.clone(), changed.clone(), ServiceView::of);
        let api = Api::<EndpointSlice>::all(client.clone());
        let (endpoint_slices, slices_driver) =
            reflect_as(api, client.clone(), changed, SliceView::of);
        let watches = Watches {
            stores,
            services,
            endpoint_slices,
        };
        let driver = async move {
            tokio::join!(metallb, services_driver, slices_driver);
        };
        (watches, driver)
    }

    /// Waits until every watch has listed once.
    pub async fn ready(&self) {
        let _ = tokio::join!(
            self.stores.ready(),
            self.services.wait_until_ready(),
            self.endpoint_slices.wait_until_ready()
        );
    }

    /// Resolves at the next change of any watched object.
    pub async fn changed(&self) {
        self.stores.changed.notified().await;
    }
}

/// What a plan is computed for.
#[derive(Debug, Clone)]
pub struct Scope {
    /// This node.
    pub node: String,
    /// The MetalLB namespace.
    pub namespace: String,
    /// The load-balancer class this speaker serves.
    pub lb_class: Option<String>,
    /// The router ID of sessions whose BGPPeer names none (the node's IPv4 address).
    pub router_id: Option<Ipv4Addr>,
    /// Drain and exclusion rules.
    pub policy: plan::Policy,
    /// How long a Node's `Ready` condition may be `False` or `Unknown` before it drains.
    pub not_ready_grace: Duration,
}

/// Why no plan could be made from what the cluster holds now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stale {
    /// Each object left out, with the field and the reason.
    pub problems: Vec<(String, String)>,
}

/// The planner's output for this node and the engine plan carrying it out, or why the
/// configuration is not usable as it stands (the running plan then stays).
pub fn plan_now(
    watches: &Watches,
    scope: &Scope,
    alive: std::collections::BTreeSet<String>,
    now: Timestamp,
) -> Result<(plan::Plan, Plan), Stale> {
    let ns = |meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta| {
        meta.namespace.as_deref() == Some(scope.namespace.as_str())
    };
    let s = &watches.stores;
    let (nodes, services, slices) = (
        s.nodes.state(),
        watches.services.state(),
        watches.endpoint_slices.state(),
    );
    let (ip_pools, pools, l2, bgp, peers, communities, bfd) = (
        s.ip_address_pools.state(),
        s.address_pools.state(),
        s.l2_advertisements.state(),
        s.bgp_advertisements.state(),
        s.bgp_peers.state(),
        s.communities.state(),
        s.bfd_profiles.state(),
    );
    let objects = inputs::Objects {
        nodes: nodes.iter().map(AsRef::as_ref).collect(),
        ip_address_pools: ip_pools
            .iter()
            .map(AsRef::as_ref)
            .filter(|o| ns(&o.metadata))
            .collect(),
        address_pools: pools
            .iter()
            .map(AsRef::as_ref)
            .filter(|o| ns(&o.metadata))
            .collect(),
        l2_advertisements: l2
            .iter()
            .map(AsRef::as_ref)
            .filter(|o| ns(&o.metadata))
            .collect(),
        bgp_advertisements: bgp
            .iter()
            .map(AsRef::as_ref)
            .filter(|o| ns(&o.metadata))
            .collect(),
        bgp_peers: peers
            .iter()
            .map(AsRef::as_ref)
            .filter(|o| ns(&o.metadata))
            .collect(),
        communities: communities
            .iter()
            .map(AsRef::as_ref)
            .filter(|o| ns(&o.metadata))
            .collect(),
        services: services.iter().map(AsRef::as_ref).collect(),
        endpoint_slices: slices.iter().map(AsRef::as_ref).collect(),
    };
    let (cluster, mut problems) = inputs::cluster(
        &objects,
        alive,
        scope.lb_class.as_deref(),
        scope.policy.clone(),
        not_ready_cutoff(now, scope.not_ready_grace),
    );
    let profiles: BTreeMap<String, metallb_bfd::Profile> = bfd
        .iter()
        .filter(|p| ns(&p.metadata))
        .map(|p| {
            (
                p.metadata.name.clone().unwrap_or_default(),
                config::bfd_profile(&p.spec),
            )
        })
        .collect();
    let planned = match plan::plan(&cluster, &scope.node) {
        Ok(planned) => planned,
        Err(error) => {
            problems.push((format!("node {:?}", scope.node), error.to_string()));
            return Err(Stale { problems });
        }
    };
    let mut engine = Plan::default();
    for (name, routes) in &planned.peers {
        let Some(peer) = objects
            .bgp_peers
            .iter()
            .find(|p| p.metadata.name.as_deref() == Some(name.as_str()))
        else {
            continue;
        };
        match config::peer_plan(name, &peer.spec, scope.router_id, &profiles) {
            Ok(peer_plan) => {
                engine
                    .peers
                    .insert(name.clone(), with_routes(peer_plan, routes));
            }
            Err(reason) => problems.push((format!("bgppeer {name:?}"), reason)),
        }
    }
    if !problems.is_empty() {
        return Err(Stale { problems });
    }
    engine.l2 = planned
        .layer2
        .iter()
        .map(|(ip, announcement)| (*ip, announcement.interfaces.clone()))
        .collect::<BTreeMap<IpAddr, _>>();
    Ok((planned, engine))
}

/// Nodes not ready since this moment or earlier drain at `now`.
fn not_ready_cutoff(now: Timestamp, grace: Duration) -> Timestamp {
    let grace = SignedDuration::try_from(grace).unwrap_or(SignedDuration::MAX);
    now.checked_sub(grace).unwrap_or(Timestamp::MIN)
}

/// The next moment after `now` at which a not-ready Node's grace period ends, so the plan
/// changes without any object changing.
pub fn next_not_ready(watches: &Watches, now: Timestamp, grace: Duration) -> Option<Timestamp> {
    let cutoff = not_ready_cutoff(now, grace);
    let grace = SignedDuration::try_from(grace).unwrap_or(SignedDuration::MAX);
    watches
        .stores
        .nodes
        .state()
        .iter()
        .filter_map(|node| inputs::not_ready_since(node))
        .filter(|since| *since > cutoff)
        .filter_map(|since| since.checked_add(grace).ok())
        .min()
}

fn with_routes(mut peer: PeerPlan, routes: &plan::PeerRoutes) -> PeerPlan {
    peer.routes = routes
        .routes
        .iter()
        .map(|(prefix, attributes)| {
            let route = metallb_bgp::Route {
                local_pref: attributes.local_pref,
                communities: attributes.communities.clone(),
                large_communities: attributes.large_communities.clone(),
            };
            (*prefix, route)
        })
        .collect();
    peer
}
