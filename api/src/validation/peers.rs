//! BGP peers (the 4.10 rules for v1beta1, the current ones for v1beta2; every problem is
//! reported at once) and BFD profiles.

use std::{net::IpAddr, time::Duration};

use super::{
    Denial, Operation, Report, Snapshot, check_namespace,
    selector::{self, Selection, SelectorError},
};
use crate::{
    bfdprofile::BFDProfile,
    bgppeer::{
        v1beta1,
        v1beta2::{self, DynamicAsnMode},
    },
    duration::{GoDuration, format_go_duration},
};

/// Which generation's texts and rules apply.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Era {
    /// OpenShift 4.10 operator webhook (BGPPeer v1beta1).
    Legacy,
    /// Current MetalLB webhook (BGPPeer v1beta2).
    Current,
}

/// The fields the rules look at, from either version.
struct PeerView<'a> {
    name: &'a str,
    my_asn: u32,
    peer_asn: Option<u32>,
    dynamic_asn: Option<DynamicAsnMode>,
    address: Option<&'a str>,
    interface: Option<&'a str>,
    source: Option<&'a str>,
    hold: Option<&'a GoDuration>,
    keepalive: Option<&'a GoDuration>,
    connect: Option<&'a GoDuration>,
    router_id: Option<&'a str>,
    multihop: bool,
    password_both: bool,
    node_selectors: Selection,
    selector_errors: Vec<(usize, SelectorError)>,
}

impl<'a> PeerView<'a> {
    fn of_v1beta2(peer: &'a v1beta2::BGPPeer) -> Self {
        let s = &peer.spec;
        let (node_selectors, selector_errors) = Selection::parse(s.node_selectors.as_deref());
        PeerView {
            name: peer.metadata.name.as_deref().unwrap_or_default(),
            my_asn: s.my_asn,
            peer_asn: s.peer_asn,
            dynamic_asn: s.dynamic_asn,
            address: s.peer_address.as_deref(),
            interface: s.interface.as_deref(),
            source: s.source_address.as_deref(),
            hold: s.hold_time.as_ref(),
            keepalive: s.keepalive_time.as_ref(),
            connect: s.connect_time.as_ref(),
            router_id: s.router_id.as_deref(),
            multihop: s.ebgp_multi_hop.unwrap_or(false),
            password_both: s.password.as_deref().is_some_and(|p| !p.is_empty())
                && s.password_secret.is_some(),
            node_selectors,
            selector_errors,
        }
    }

    fn of_v1beta1(peer: &'a v1beta1::BGPPeer) -> Self {
        let s = &peer.spec;
        let written: Option<Vec<_>> = s.node_selectors.as_ref().map(|list| {
            list.iter()
                .map(crate::conversion::to_label_selector)
                .collect()
        });
        let (node_selectors, selector_errors) = Selection::parse(written.as_deref());
        PeerView {
            name: peer.metadata.name.as_deref().unwrap_or_default(),
            my_asn: s.my_asn,
            peer_asn: Some(s.peer_asn),
            dynamic_asn: None,
            address: Some(s.peer_address.as_str()),
            interface: None,
            source: s.source_address.as_deref(),
            hold: s.hold_time.as_ref(),
            keepalive: s.keepalive_time.as_ref(),
            connect: None,
            router_id: s.router_id.as_deref(),
            multihop: s.ebgp_multi_hop.unwrap_or(false),
            password_both: false,
            node_selectors,
            selector_errors,
        }
    }

    fn is_ibgp(&self) -> bool {
        self.peer_asn == Some(self.my_asn) || self.dynamic_asn == Some(DynamicAsnMode::Internal)
    }
}

/// Whether two peers select a common node; with no nodes known, every pair does.
fn share_a_node(a: &PeerView<'_>, b: &PeerView<'_>, snapshot: &Snapshot) -> bool {
    snapshot.nodes.is_empty()
        || snapshot
            .nodes
            .values()
            .any(|labels| a.node_selectors.selects(labels) && b.node_selectors.selects(labels))
}

fn duration(value: Option<&GoDuration>) -> Option<Duration> {
    value.and_then(|d| d.parse().ok())
}

/// Validates a BGPPeer v1beta1 with the 4.10 rules (single BGP instance per node).
pub fn validate_bgp_peer_v1beta1(
    _op: Operation,
    peer: &v1beta1::BGPPeer,
    snapshot: &Snapshot,
) -> Result<(), Denial> {
    let view = PeerView::of_v1beta1(peer);
    let mut report = Report::new("bgppeer", Some(view.name));
    report.check_fields("spec", &peer.spec);
    peer_rules(&mut report, &view, snapshot, Era::Legacy);
    report.finish()
}

/// Validates a BGPPeer v1beta2 with the current rules.
pub fn validate_bgp_peer_v1beta2(
    op: Operation,
    peer: &v1beta2::BGPPeer,
    snapshot: &Snapshot,
) -> Result<(), Denial> {
    let view = PeerView::of_v1beta2(peer);
    let mut report = Report::new("bgppeer", Some(view.name));
    check_namespace(
        &mut report,
        op,
        peer.metadata.namespace.as_deref(),
        snapshot,
    );
    report.check_fields("spec", &peer.spec);
    peer_rules(&mut report, &view, snapshot, Era::Current);
    report.finish()
}

fn peer_rules(r: &mut Report, new: &PeerView<'_>, snapshot: &Snapshot, era: Era) {
    let others: Vec<PeerView<'_>> = snapshot
        .bgp_peers
        .iter()
        .map(PeerView::of_v1beta2)
        .filter(|o| o.name != new.name && share_a_node(new, o, snapshot))
        .collect();

    if era == Era::Current {
        if new.my_asn == 0 {
            r.add("spec.myASN", "missing local ASN");
        }
        match (new.peer_asn, new.dynamic_asn) {
            (None, None) => r.add("spec.peerASN", "missing peer ASN and dynamicASN"),
            (Some(_), Some(_)) => r.add(
                "spec.dynamicASN",
                "peerASN and dynamicASN are mutually exclusive",
            ),
            _ => {}
        }
        match (new.address, new.interface) {
            (None, None) => r.add("spec.peerAddress", "peerAddress or interface is required"),
            (Some(_), Some(_)) => r.add(
                "spec.interface",
                "peerAddress and interface are mutually exclusive",
            ),
            _ => {}
        }
        if new.password_both {
            r.add(
                "spec.passwordSecret",
                "passwordSecret and password are mutually exclusive",
            );
        }
    }

    // The node has one BGP instance: one local ASN, one router ID, one session per address.
    if let Some(other) = others.iter().find(|o| o.my_asn != new.my_asn) {
        r.add(
            "spec.myASN",
            format!(
                "Multiple local ASN not supported in FRR mode, myASN {} existing myASN {} (bgppeer {:?} selects a common node)",
                new.my_asn, other.my_asn, other.name
            ),
        );
    }
    if let Some(address) = new.address
        && let Some(other) = others.iter().find(|o| o.address == Some(address))
    {
        let text = match era {
            Era::Legacy => format!(
                "Duplicate BGPPeer {address} in the same BGP instance not supported in FRR mode (bgppeer {:?} selects a common node)",
                other.name
            ),
            Era::Current => format!(
                "peer {address} already exists, FRR mode doesn't support duplicate BGPPeers selecting the same node (bgppeer {:?})",
                other.name
            ),
        };
        r.add("spec.peerAddress", text);
    }
    if new.multihop && new.is_ibgp() {
        let text = match era {
            Era::Legacy => "Invalid EBGPMultiHop parameter set for an ibgp peer true".to_owned(),
            Era::Current => "invalid ebgp-multihop parameter set for an ibgp peer".to_owned(),
        };
        r.add("spec.ebgpMultiHop", text);
    }

    check_timers(r, new, era);

    if let Some(id) = new.router_id {
        if id.parse::<IpAddr>().is_err() {
            r.add("spec.routerID", format!("Invalid RouterID {id}"));
        }
        if let Some(other) = others
            .iter()
            .find(|o| o.router_id.unwrap_or_default() != id)
        {
            r.add(
                "spec.routerID",
                format!(
                    "BGPPeers with different RouterID not supported in FRR mode, RouterID {id} existing routerID {} (bgppeer {:?} selects a common node)",
                    other.router_id.unwrap_or("\"\""),
                    other.name
                ),
            );
        }
    }
    if let Some(address) = new.address
        && address.parse::<IpAddr>().is_err()
    {
        let text = match era {
            Era::Legacy => format!("Invalid BGPPeer address {address}"),
            Era::Current => format!(
                "parsing peer {}: invalid BGPPeer address {address:?}",
                new.name
            ),
        };
        r.add("spec.peerAddress", text);
    }
    if let Some(source) = new.source
        && !source.is_empty()
        && source.parse::<IpAddr>().is_err()
    {
        r.add(
            "spec.sourceAddress",
            format!("Invalid BGPPeer source address {source}"),
        );
    }
    if let Some(hold) = new.hold
        && let Some(value) = duration(Some(hold))
        && value != Duration::ZERO
        && value < Duration::from_secs(3)
    {
        let text = match era {
            Era::Legacy => format!("Invalid hold time {hold} must be 0 or >=3s"),
            Era::Current => format!("invalid hold time {:?}: must be 0 or >=3s", hold.as_str()),
        };
        r.add("spec.holdTime", text);
    }
    selector::add_errors(r, "spec.nodeSelectors", &new.selector_errors);
}

fn check_timers(r: &mut Report, new: &PeerView<'_>, era: Era) {
    let hold = duration(new.hold);
    let keepalive = duration(new.keepalive);
    match era {
        Era::Legacy => {
            let Some(keepalive) = keepalive.filter(|k| !k.is_zero()) else {
                return;
            };
            match hold.filter(|h| !h.is_zero()) {
                None => r.add(
                    "spec.holdTime",
                    format!(
                        "Missing to configure HoldTime when changing KeepaliveTime to {}",
                        format_go_duration(keepalive)
                    ),
                ),
                Some(hold) if keepalive > hold => r.add(
                    "spec.keepaliveTime",
                    format!(
                        "Invalid keepalive time {} higher than holdtime {}",
                        format_go_duration(keepalive),
                        format_go_duration(hold)
                    ),
                ),
                Some(_) => {}
            }
        }
        Era::Current => {
            // A missing hold time is three keepalives, and the other way round.
            if let (Some(k), Some(h)) = (keepalive, hold)
                && k > h
            {
                r.add(
                    "spec.keepaliveTime",
                    format!(
                        "invalid keepaliveTime {:?}, must be lower than holdTime {:?}",
                        format_go_duration(k),
                        format_go_duration(h)
                    ),
                );
            }
            if let Some(connect) = new.connect.and_then(|c| c.parse().ok())
                && (connect.subsec_nanos() != 0 || !(1..=65535).contains(&connect.as_secs()))
            {
                r.add(
                    "spec.connectTime",
                    format!(
                        "invalid connectTime {:?}: must be whole seconds between 1s and 65535s",
                        format_go_duration(connect)
                    ),
                );
            }
        }
    }
}

/// Validates a `BFDProfile`: parameter ranges (declared on the type) and a unique name.
pub fn validate_bfd_profile(
    op: Operation,
    profile: &BFDProfile,
    snapshot: &Snapshot,
) -> Result<(), Denial> {
    let name = profile.metadata.name.as_deref().unwrap_or_default();
    let mut report = Report::new("bfdprofile", Some(name));
    check_namespace(
        &mut report,
        op,
        profile.metadata.namespace.as_deref(),
        snapshot,
    );
    if name.is_empty() {
        report.add("metadata.name", "missing bfdprofile name");
    }
    if op == Operation::Create
        && snapshot
            .bfd_profiles
            .iter()
            .any(|p| p.metadata.name.as_deref() == Some(name))
    {
        report.add(
            "metadata.name",
            format!("duplicate definition of bfdprofile {name:?}"),
        );
    }
    report.check_fields("spec", &profile.spec);
    report.finish()
}

/// Refuses to delete a `BFDProfile` that a BGPPeer still names.
pub fn validate_bfd_profile_delete(
    profile: &BFDProfile,
    snapshot: &Snapshot,
) -> Result<(), Denial> {
    let name = profile.metadata.name.as_deref().unwrap_or_default();
    let mut report = Report::new("bfdprofile", Some(name));
    let users: Vec<&str> = snapshot
        .bgp_peers
        .iter()
        .filter(|p| p.spec.bfd_profile.as_deref() == Some(name))
        .filter_map(|p| p.metadata.name.as_deref())
        .collect();
    if !users.is_empty() {
        report.add(
            "metadata.name",
            format!(
                "failed to delete BFDProfile {name}, used by BGPPeer {}",
                users.join(", ")
            ),
        );
    }
    report.finish()
}
