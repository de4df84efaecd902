//! The layer 2 election of one service (the reference's B.2), as every speaker runs it:
//!
//! 1. no endpoint can serve anywhere: nobody announces;
//! 2. the candidates are the nodes some L2Advertisement of the pool selects (all of the
//!    pool's advertisements, not only this node's, so every speaker gets the same set)
//! 3. whose speaker is alive, whose network is available and that are not labelled
//!    `node.kubernetes.io/exclude-from-external-load-balancers`;
//! 4. with `externalTrafficPolicy: Local`, only those with a serving endpoint of their own;
//! 5. draining nodes step aside unless nobody else is left (never blackhole);
//! 6. the first by SHA-256 of `<node>#<first ingress IP>` announces ([`metallb_l2::owner`]).
//!
//! Node readiness, cordons and taints play no part unless the drain settings make them drain.

use std::net::IpAddr;

use metallb_l2::AllowedInterfaces;

use crate::{
    advertisement::PoolAdvertisements,
    plan::{Context, Endpoints, Layer2Plan},
    reason::Reason,
};

/// Elects the node that announces a service whose first ingress IP is `first`.
pub(crate) fn elect(
    context: &Context<'_>,
    first: IpAddr,
    endpoints: &Endpoints<'_>,
    ads: &PoolAdvertisements<'_>,
) -> Layer2Plan {
    let standings = &context.standings;
    let node = context.node;
    let eligible: Vec<&str> = if endpoints.anywhere {
        ads.l2_nodes
            .iter()
            .copied()
            .filter(|n| standings.eligible(n) && endpoints.admit(n))
            .collect()
    } else {
        Vec::new()
    };
    let steady: Vec<&str> = eligible
        .iter()
        .copied()
        .filter(|n| standings.drain(n).is_none())
        .collect();
    let electorate = if !steady.is_empty() {
        steady
    } else if context.cluster.policy.drain.never_blackhole {
        eligible
    } else {
        Vec::new()
    };
    let owner = metallb_l2::owner(first, electorate.iter().copied());
    let drain = standings.drain(node);
    let reason = if !endpoints.anywhere {
        Reason::NoServingEndpoint
    } else if !ads.l2_nodes.contains(node) {
        Reason::NotSelected
    } else if let Some(out) = standings.out(node) {
        out
    } else if !endpoints.admit(node) {
        Reason::NoLocalEndpoint
    } else if let Some(trigger) = drain.filter(|_| !electorate.contains(&node)) {
        Reason::Draining {
            trigger: trigger.clone(),
        }
    } else {
        // This node is in the electorate, so there is an owner.
        match (owner, drain) {
            (Some(winner), _) if winner != node => Reason::NotTheWinner {
                winner: winner.to_owned(),
            },
            (_, Some(trigger)) => Reason::AnnounceDraining {
                trigger: trigger.clone(),
            },
            (_, None) => Reason::Announce,
        }
    };
    let mut interfaces = AllowedInterfaces::Only(Default::default());
    for ad in ads.l2.iter().filter(|ad| ad.nodes.contains(node)) {
        let names = if ad.interfaces.is_empty() {
            AllowedInterfaces::All
        } else {
            ad.interfaces.iter().collect()
        };
        widen(&mut interfaces, &names);
    }
    Layer2Plan {
        reason,
        owner: owner.map(str::to_owned),
        candidates: electorate.len(),
        interfaces,
    }
}

/// Adds `more` to `interfaces`: every interface once either allows all.
pub(crate) fn widen(interfaces: &mut AllowedInterfaces, more: &AllowedInterfaces) {
    match more {
        AllowedInterfaces::All => *interfaces = AllowedInterfaces::All,
        AllowedInterfaces::Only(names) => {
            if let AllowedInterfaces::Only(mine) = interfaces {
                mine.extend(names.iter().cloned());
            }
        }
    }
}
