//! The speaker's status objects, as MetalLB writes them: a `ServiceL2Status` for every Service
//! this node announces in layer 2 and a `ServiceBGPStatus` for every one it announces over BGP
//! (generated names `l2-…`/`bgp-…`, labelled with the node and the Service, owned by the
//! speaker pod so they go with it), plus our `BGPSessionState` per node and peer.
//!
//! The Services' part follows the plan alone and is computed when the plan changes; the
//! sessions' part follows the drivers and is computed at every metrics refresh. [`writer`]
//! writes them.

mod writer;

use std::collections::BTreeMap;
use std::sync::Arc;

use metallb_api::status::{
    BGPSessionStateStatus, InterfaceInfo, ServiceBGPStatusStatus, ServiceL2StatusStatus,
};
use metallb_plan::{AllowedInterfaces, Plan, Reason, ServiceKey, ServicePlan};

use crate::bfd::BfdPeerStatus;
use crate::bgp::PeerStatus;

pub use writer::{CALL_DEADLINE, StatusWriter};

/// The status objects of the Services this node announces.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ServiceStatuses {
    /// Services announced in layer 2, with the interfaces when restricted.
    pub layer2: BTreeMap<ServiceKey, ServiceL2StatusStatus>,
    /// Services announced over BGP, with their peers.
    pub bgp: BTreeMap<ServiceKey, ServiceBGPStatusStatus>,
}

/// What this node's status objects should say.
#[derive(Debug, Clone, Default)]
pub struct Desired {
    /// The Services' objects, shared with the plan's owner until the plan changes.
    pub services: Arc<ServiceStatuses>,
    /// Sessions, by BGPPeer name.
    pub sessions: BTreeMap<String, BGPSessionStateStatus>,
}

impl PartialEq for Desired {
    fn eq(&self, other: &Self) -> bool {
        (Arc::ptr_eq(&self.services, &other.services) || self.services == other.services)
            && self.sessions == other.sessions
    }
}

/// The status objects of the Services `plan` announces.
pub fn services(plan: &Plan) -> ServiceStatuses {
    let mut out = ServiceStatuses::default();
    let announces = |r: &Reason| matches!(r, Reason::Announce | Reason::AnnounceDraining { .. });
    for (key, service) in &plan.services {
        let ServicePlan::Planned(planned) = service else {
            continue;
        };
        let base = |key: &ServiceKey| {
            (
                Some(plan.node.clone()),
                Some(key.name.clone()),
                Some(key.namespace.clone()),
            )
        };
        if let Some(l2) = planned.layer2.as_ref().filter(|l2| announces(&l2.reason)) {
            let (node, service_name, service_namespace) = base(key);
            let interfaces = match &l2.interfaces {
                AllowedInterfaces::All => None,
                AllowedInterfaces::Only(names) => Some(
                    names
                        .iter()
                        .map(|name| InterfaceInfo {
                            name: Some(name.clone()),
                        })
                        .collect(),
                ),
            };
            let status = ServiceL2StatusStatus {
                node,
                service_name,
                service_namespace,
                interfaces,
            };
            out.layer2.insert(key.clone(), status);
        }
        if let Some(plan_bgp) = &planned.bgp {
            let peers: Vec<String> = plan_bgp
                .peers
                .iter()
                .filter(|(_, p)| announces(&p.reason))
                .map(|(name, _)| name.clone())
                .collect();
            if !peers.is_empty() {
                let (node, service_name, service_namespace) = base(key);
                let status = ServiceBGPStatusStatus {
                    node,
                    service_name,
                    service_namespace,
                    peers: Some(peers),
                };
                out.bgp.insert(key.clone(), status);
            }
        }
    }
    out
}

/// The `BGPSessionState` of each session `plan` keeps, from the drivers' state.
pub fn sessions(
    plan: &Plan,
    bgp: &[PeerStatus],
    bfd: &[BfdPeerStatus],
) -> BTreeMap<String, BGPSessionStateStatus> {
    let mut out = BTreeMap::new();
    for session in bgp.iter().filter(|s| plan.peers.contains_key(&s.name)) {
        let bfd_status = bfd
            .iter()
            .find(|b| b.peer == session.address.to_canonical())
            .map(|b| format!("{:?}", b.state).to_lowercase());
        let status = BGPSessionStateStatus {
            node: Some(plan.node.clone()),
            peer: Some(session.address.to_string()),
            bgp_peer: Some(session.name.clone()),
            bgp_status: Some(session.state.to_owned()),
            bfd_status,
            prefixes_sent: i64::try_from(session.prefixes_advertised).ok(),
            last_down_reason: session.last_down_reason.clone(),
            ..BGPSessionStateStatus::default()
        };
        out.insert(session.name.clone(), status);
    }
    out
}
