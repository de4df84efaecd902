//! What this node sends each BGP peer (the reference's B.6). A service goes to a peer when:
//!
//! - the peer's `nodeSelectors` select this node (else there is no session at all);
//! - some endpoint of the service can serve;
//! - some BGPAdvertisement of the pool selects this node (4.10 `bgp` AddressPools select
//!   every node);
//! - this node's speaker is alive, its network available, and it is not exclude-labelled;
//! - with `externalTrafficPolicy: Local`, a serving endpoint runs on this node;
//! - this node does not drain, or no other node is eligible (never blackhole);
//! - one of those advertisements names the peer, or names no peer;
//! - the advertisements sending a prefix to the peer agree on LOCAL_PREF.
//!
//! Each IP becomes, per advertisement, the IP masked to the advertisement's aggregation length
//! with its communities and LOCAL_PREF. Routes for one prefix merge their communities, within
//! a service and across services.

use std::{
    collections::{BTreeMap, BTreeSet},
    net::IpAddr,
};

use ipnet::IpNet;

use crate::{
    advertisement::{BgpAd, PoolAdvertisements},
    cluster::{BgpAttributes, ServiceKey},
    plan::{BgpPlan, Context, Endpoints, PeerPlan, PeerRoutes, PlanError, RouteAttributes},
    reason::Reason,
    small::SmallMap,
};

/// A service's BGP plan before LOCAL_PREF conflicts across services are known.
#[derive(Debug)]
pub(crate) struct Draft<'a> {
    peers: BTreeMap<&'a str, PeerDraft<'a>>,
}

#[derive(Debug)]
struct PeerDraft<'a> {
    reason: Reason,
    /// Per prefix, the attributes of every advertisement that sends it.
    routes: BTreeMap<IpNet, Vec<&'a BgpAttributes>>,
}

/// Applies the rules for one service with ingress IPs `ips` to every peer.
pub(crate) fn draft<'a>(
    context: &Context<'a>,
    ips: &[IpAddr],
    endpoints: &Endpoints<'_>,
    ads: &PoolAdvertisements<'a>,
) -> Result<Draft<'a>, PlanError> {
    let node = context.node;
    let standings = &context.standings;
    let mine: Vec<&BgpAd<'a>> = ads
        .bgp
        .iter()
        .filter(|ad| ad.nodes.contains(node))
        .collect();
    let blocked = if !endpoints.anywhere {
        Some(Reason::NoServingEndpoint)
    } else if mine.is_empty() {
        Some(Reason::NotSelected)
    } else if let Some(out) = standings.out(node) {
        Some(out)
    } else if !endpoints.admit(node) {
        Some(Reason::NoLocalEndpoint)
    } else if let Some(trigger) = standings.drain(node) {
        let relieved = ads.bgp_nodes.iter().any(|other| {
            *other != node
                && standings.eligible(other)
                && standings.drain(other).is_none()
                && endpoints.admit(other)
        });
        (relieved || !context.cluster.policy.drain.never_blackhole).then(|| Reason::Draining {
            trigger: trigger.clone(),
        })
    } else {
        None
    };
    let announce = match standings.drain(node) {
        Some(trigger) => Reason::AnnounceDraining {
            trigger: trigger.clone(),
        },
        None => Reason::Announce,
    };
    let mut peers = BTreeMap::new();
    for (name, peer) in &context.cluster.peers {
        let mut routes = BTreeMap::new();
        let reason = if !peer.selects(context.labels) {
            Reason::PeerNotSelected
        } else if let Some(reason) = &blocked {
            reason.clone()
        } else {
            for ad in &mine {
                if ad.peers.is_empty() || ad.peers.contains(name) {
                    for ip in ips {
                        let prefix = prefix(*ip, ad.attributes)?;
                        routes
                            .entry(prefix)
                            .or_insert_with(Vec::new)
                            .push(ad.attributes);
                    }
                }
            }
            if routes.is_empty() {
                Reason::NotInAdvertisementPeers
            } else {
                announce.clone()
            }
        };
        peers.insert(name.as_str(), PeerDraft { reason, routes });
    }
    Ok(Draft { peers })
}

/// Settles the drafts: a prefix sent to a peer with different LOCAL_PREF values is a conflict
/// and no service sends anything to that peer that contributes to it; the rest is merged into
/// `peers`, the sessions this node keeps. Returns each service's BGP plan.
pub(crate) fn settle<'k>(
    drafts: BTreeMap<&'k ServiceKey, Draft<'_>>,
    peers: &mut BTreeMap<String, PeerRoutes>,
) -> BTreeMap<&'k ServiceKey, BgpPlan> {
    let mut local_prefs: BTreeMap<(&str, IpNet), BTreeSet<Option<u32>>> = BTreeMap::new();
    for draft in drafts.values() {
        for (peer, peer_draft) in &draft.peers {
            for (prefix, attributes) in &peer_draft.routes {
                local_prefs
                    .entry((peer, *prefix))
                    .or_default()
                    .extend(attributes.iter().map(|a| a.local_pref));
            }
        }
    }
    let conflict = |peer: &str, prefix: &IpNet| local_prefs[&(peer, *prefix)].len() > 1;
    let mut sent: BTreeMap<&str, Vec<(IpNet, RouteAttributes)>> = BTreeMap::new();
    let plans = drafts
        .iter()
        .map(|(key, draft)| {
            let peer_plans = draft
                .peers
                .iter()
                .map(|(peer, peer_draft)| {
                    let conflicting = peer_draft.routes.keys().find(|p| conflict(peer, p));
                    let plan = match conflicting {
                        Some(prefix) => PeerPlan {
                            reason: Reason::ConflictingLocalPref { prefix: *prefix },
                            routes: SmallMap::default(),
                        },
                        None => PeerPlan {
                            reason: peer_draft.reason.clone(),
                            routes: peer_draft
                                .routes
                                .iter()
                                .map(|(prefix, attributes)| (*prefix, merge(attributes)))
                                .collect(),
                        },
                    };
                    if peers.contains_key(*peer) {
                        let routes = plan.routes.iter().map(|(p, a)| (*p, a.clone()));
                        sent.entry(peer).or_default().extend(routes);
                    }
                    (peer.to_string(), plan)
                })
                .collect();
            (*key, BgpPlan { peers: peer_plans })
        })
        .collect();
    for (peer, routes) in sent {
        if let Some(session) = peers.get_mut(peer) {
            session.routes = merged(routes);
        }
    }
    plans
}

/// One route per prefix of `routes` (in the order the services sent them): the last
/// LOCAL_PREF, the union of the communities. Collected from sorted entries, so the map's
/// nodes are full.
fn merged(mut routes: Vec<(IpNet, RouteAttributes)>) -> BTreeMap<IpNet, RouteAttributes> {
    // Stable: the routes of one prefix stay in the services' order.
    routes.sort_by_key(|(prefix, _)| *prefix);
    let mut out: Vec<(IpNet, RouteAttributes)> = Vec::with_capacity(routes.len());
    for (prefix, attributes) in routes {
        if let Some((_, route)) = out.last_mut().filter(|(last, _)| *last == prefix) {
            route.local_pref = attributes.local_pref;
            route.communities.extend(attributes.communities);
            route.large_communities.extend(attributes.large_communities);
        } else {
            out.push((prefix, attributes));
        }
    }
    out.into_iter().collect()
}

/// The route of a prefix that several advertisements send, LOCAL_PREF already agreed on.
fn merge(attributes: &[&BgpAttributes]) -> RouteAttributes {
    let mut route = RouteAttributes::default();
    for a in attributes {
        route.local_pref = a.local_pref;
        route.communities.extend(&a.communities);
        route.large_communities.extend(&a.large_communities);
    }
    route
}

/// `ip` masked to the advertisement's aggregation length for its family.
fn prefix(ip: IpAddr, attributes: &BgpAttributes) -> Result<IpNet, PlanError> {
    let length = match ip {
        IpAddr::V4(_) => attributes.aggregation_length,
        IpAddr::V6(_) => attributes.aggregation_length_v6,
    };
    IpNet::new(ip, length)
        .map(|net| net.trunc())
        .map_err(|_| PlanError::AggregationLength { ip, length })
}
