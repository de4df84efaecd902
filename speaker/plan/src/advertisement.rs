//! The advertisements of each pool, with the nodes each one selects: L2Advertisements and
//! BGPAdvertisements whose pool selection takes the pool, plus the advertisement a 4.10
//! AddressPool makes of its own (every node, every interface, every peer).

use std::collections::{BTreeMap, BTreeSet};

use crate::{
    cluster::{BgpAttributes, Cluster, LegacyProtocol},
    selector::{LabelSelector, any_matches},
};

/// No interface named: every interface.
static ALL_INTERFACES: BTreeSet<String> = BTreeSet::new();
/// No peer named: every peer.
static ALL_PEERS: BTreeSet<String> = BTreeSet::new();
/// A 4.10 `bgp` pool without `bgpAdvertisements`: each IP alone, no attributes.
static LEGACY_DEFAULT: BgpAttributes = BgpAttributes {
    communities: BTreeSet::new(),
    large_communities: BTreeSet::new(),
    local_pref: None,
    aggregation_length: 32,
    aggregation_length_v6: 128,
};

/// The advertisements of every pool.
#[derive(Debug)]
pub(crate) struct Advertisements<'a> {
    pools: BTreeMap<&'a str, PoolAdvertisements<'a>>,
}

/// The advertisements of one pool.
#[derive(Debug, Default)]
pub(crate) struct PoolAdvertisements<'a> {
    pub(crate) l2: Vec<L2Ad<'a>>,
    pub(crate) bgp: Vec<BgpAd<'a>>,
    /// The nodes any L2 advertisement selects.
    pub(crate) l2_nodes: BTreeSet<&'a str>,
    /// The nodes any BGP advertisement selects.
    pub(crate) bgp_nodes: BTreeSet<&'a str>,
}

/// An L2 advertisement of a pool.
#[derive(Debug)]
pub(crate) struct L2Ad<'a> {
    pub(crate) nodes: BTreeSet<&'a str>,
    /// Empty: every interface.
    pub(crate) interfaces: &'a BTreeSet<String>,
}

/// A BGP advertisement of a pool.
#[derive(Debug)]
pub(crate) struct BgpAd<'a> {
    pub(crate) nodes: BTreeSet<&'a str>,
    /// Empty: every peer.
    pub(crate) peers: &'a BTreeSet<String>,
    pub(crate) attributes: &'a BgpAttributes,
}

impl<'a> Advertisements<'a> {
    pub(crate) fn new(cluster: &'a Cluster) -> Self {
        let nodes = |selectors: &[LabelSelector]| -> BTreeSet<&'a str> {
            cluster
                .nodes
                .iter()
                .filter(|(_, node)| any_matches(selectors, &node.labels))
                .map(|(name, _)| name.as_str())
                .collect()
        };
        let every_node = nodes(&[]);
        let pools = cluster
            .pools
            .iter()
            .map(|(name, pool)| {
                let mut ads = PoolAdvertisements::default();
                for ad in cluster.l2_advertisements.values() {
                    if ad.pools.selects(name, pool) {
                        ads.l2.push(L2Ad {
                            nodes: nodes(&ad.node_selectors),
                            interfaces: &ad.interfaces,
                        });
                    }
                }
                for ad in cluster.bgp_advertisements.values() {
                    if ad.pools.selects(name, pool) {
                        ads.bgp.push(BgpAd {
                            nodes: nodes(&ad.node_selectors),
                            peers: &ad.peers,
                            attributes: &ad.attributes,
                        });
                    }
                }
                match &pool.legacy {
                    None => {}
                    Some(LegacyProtocol::Layer2) => ads.l2.push(L2Ad {
                        nodes: every_node.clone(),
                        interfaces: &ALL_INTERFACES,
                    }),
                    Some(LegacyProtocol::Bgp(list)) if list.is_empty() => ads.bgp.push(BgpAd {
                        nodes: every_node.clone(),
                        peers: &ALL_PEERS,
                        attributes: &LEGACY_DEFAULT,
                    }),
                    Some(LegacyProtocol::Bgp(list)) => {
                        ads.bgp.extend(list.iter().map(|attributes| BgpAd {
                            nodes: every_node.clone(),
                            peers: &ALL_PEERS,
                            attributes,
                        }));
                    }
                }
                ads.l2_nodes = ads.l2.iter().flat_map(|ad| &ad.nodes).copied().collect();
                ads.bgp_nodes = ads.bgp.iter().flat_map(|ad| &ad.nodes).copied().collect();
                (name.as_str(), ads)
            })
            .collect();
        Self { pools }
    }

    /// The advertisements of the pool `name`, one of the cluster's pools.
    pub(crate) fn of(&self, name: &str) -> &PoolAdvertisements<'a> {
        &self.pools[name]
    }
}
