//! The speaker's planner: from what every speaker sees of the cluster (nodes, which speakers
//! are alive, pools, advertisements, peers, services and their endpoints) to what one node
//! announces, where and to whom, and why: MetalLB's layer 2 election and BGP rules (the
//! reference's B.2 and B.6, summed up below), plus our drain rules.
//!
//! The contract:
//! - **Pure.** No I/O, no clock, no async: the speaker fills a [`Cluster`] from its watches
//!   or its static file and calls [`plan`]; the drivers apply the differences between plans.
//! - **Deterministic.** Every map is ordered. Two speakers planning from equal clusters elect
//!   the same layer 2 owner for every service, so exactly one of them announces it.
//! - **Explained.** Every service gets a [`Reason`] for layer 2 and for every BGP peer:
//!   `Announce`, or the first rule that stopped it. [`Plan::explain`] returns them for
//!   `metallb-speaker show service`, and the plan serializes for `--json`.
//!
//! # Layer 2
//!
//! Candidates are the nodes that some L2Advertisement of the service's pool selects, whose
//! speaker is alive, whose `NetworkUnavailable` is not true and that do not carry the exclude
//! label; for `externalTrafficPolicy: Local` only those with a serving endpoint; nobody when
//! no endpoint serves anywhere. Draining nodes stand aside unless nobody else is left. The
//! first candidate by SHA-256 of `<node>#<first ingress IP>` announces, on the union of its
//! advertisements' interfaces.
//!
//! # BGP
//!
//! A node sends a service to a peer when the peer selects the node, an advertisement of the
//! pool selects the node and names the peer (or no peer), the node is alive, available, not
//! excluded and not draining, and an endpoint serves (on this node, for `Local`). Each IP
//! goes out masked to the advertisement's aggregation length, with its communities and
//! LOCAL_PREF; advertisements that disagree on LOCAL_PREF for a prefix send nothing.
//!
//! ```
//! use metallb_plan::{Cluster, Endpoint, L2Advertisement, Node, Pool, Addresses, Reason,
//!     Service, ServiceKey, plan};
//!
//! let mut cluster = Cluster::default();
//! for name in ["node1", "node2", "node3"] {
//!     cluster.nodes.insert(name.into(), Node::default());
//!     cluster.alive.insert(name.into());
//! }
//! let pool = Pool {
//!     addresses: vec![Addresses::Cidr("192.168.250.0/24".parse().unwrap())],
//!     ..Pool::default()
//! };
//! cluster.pools.insert("lab".into(), pool);
//! cluster.l2_advertisements.insert("all".into(), L2Advertisement::default());
//! let web = ServiceKey::new("default", "web");
//! let service = Service {
//!     ours: true,
//!     ingress: vec!["192.168.250.201".parse().unwrap()],
//!     endpoints: vec![Endpoint { node: Some("node1".into()), ..Endpoint::default() }],
//!     ..Service::default()
//! };
//! cluster.services.insert(web.clone(), service);
//!
//! let node3 = plan(&cluster, "node3").unwrap();
//! let layer2 = node3.explain(&web).unwrap().layer2().unwrap();
//! assert_eq!(layer2.reason, Reason::Announce);
//! let node1 = plan(&cluster, "node1").unwrap();
//! let layer2 = node1.explain(&web).unwrap().layer2().unwrap();
//! assert_eq!(layer2.reason, Reason::NotTheWinner { winner: "node3".into() });
//! ```

mod advertisement;
mod bgp;
mod cluster;
mod handover;
mod layer2;
mod node;
mod plan;
mod reason;
mod selector;
mod ser;
mod small;

pub use cluster::{
    Addresses, BgpAdvertisement, BgpAttributes, Cluster, DRAIN_ANNOTATION, Drain,
    EXCLUDE_FROM_LOAD_BALANCERS, Endpoint, L2Advertisement, LegacyProtocol, Node, OUT_OF_SERVICE,
    Peer, Policy, Pool, PoolSelection, Service, ServiceKey, TrafficPolicy,
};
pub use handover::{Handover, handover};
pub use metallb_bgp::{Community, LargeCommunity};
pub use metallb_l2::AllowedInterfaces;
pub use plan::{
    BgpPlan, Layer2Announcement, Layer2Plan, PeerPlan, PeerRoutes, Plan, PlanError, Planned,
    RouteAttributes, ServicePlan, plan,
};
pub use reason::{DrainTrigger, Reason};
pub use selector::{LabelSelector, Labels, Operator, Requirement, any_matches};
pub use small::SmallMap;
