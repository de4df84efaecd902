//! The speaker's status objects, as MetalLB writes them: a `ServiceL2Status` for every Service
//! this node announces in layer 2 and a `ServiceBGPStatus` for every one it announces over BGP
//! (generated names `l2-…`/`bgp-…`, labelled with the node and the Service, owned by the
//! speaker pod so they go with it), plus our `BGPSessionState` per node and peer.
//!
//! The Services' part follows the plan alone and is computed from it as it is written; the
//! sessions' part follows the drivers and is computed at every metrics refresh. [`writer`]
//! writes them.

mod writer;

use std::collections::BTreeMap;
use std::sync::Arc;

use metallb_api::status::{
    BGPSessionStateStatus, InterfaceInfo, ServiceBGPStatusStatus, ServiceL2StatusStatus,
};
use metallb_plan::{AllowedInterfaces, Plan, ServiceKey, ServicePlan};

use crate::bfd::BfdPeerStatus;
use crate::bgp::PeerStatus;

pub use writer::{CALL_DEADLINE, StatusWriter};

/// What this node's status objects should say.
#[derive(Debug, Clone)]
pub struct Desired {
    /// The plan the Services' objects follow ([`layer2`], [`bgp`]), shared with its owner:
    /// the statuses are computed as they are written, never kept beside the plan.
    pub plan: Arc<Plan>,
    /// Sessions, by BGPPeer name.
    pub sessions: BTreeMap<String, BGPSessionStateStatus>,
}

impl PartialEq for Desired {
    /// The owner replaces the plan's `Arc` only when the plan changes.
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.plan, &other.plan) && self.sessions == other.sessions
    }
}

/// The `ServiceL2Status` of the Service `key` planned as `service` in `plan`, when this node
/// announces it in layer 2.
pub fn layer2(
    plan: &Plan,
    key: &ServiceKey,
    service: &ServicePlan,
) -> Option<ServiceL2StatusStatus> {
    let l2 = service.layer2().filter(|l2| l2.reason.announces())?;
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
    Some(ServiceL2StatusStatus {
        node: Some(plan.node.clone()),
        service_name: Some(key.name.clone()),
        service_namespace: Some(key.namespace.clone()),
        interfaces,
    })
}

/// The `ServiceBGPStatus` of the Service `key` planned as `service` in `plan`, when this node
/// announces it to some peer.
pub fn bgp(plan: &Plan, key: &ServiceKey, service: &ServicePlan) -> Option<ServiceBGPStatusStatus> {
    let peers: Vec<String> = service
        .bgp()?
        .peers
        .iter()
        .filter(|(_, p)| p.reason.announces())
        .map(|(name, _)| name.clone())
        .collect();
    (!peers.is_empty()).then(|| ServiceBGPStatusStatus {
        node: Some(plan.node.clone()),
        service_name: Some(key.name.clone()),
        service_namespace: Some(key.namespace.clone()),
        peers: Some(peers),
    })
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
