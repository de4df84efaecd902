//! Lossless conversion between BGPPeer v1beta1 and v1beta2.
//!
//! v1beta2 has fields v1beta1 cannot hold (dynamic ASN, unnumbered interface, password secret,
//! ...). When a v1beta2 object does not survive the trip through v1beta1, its whole v1beta2
//! spec rides along in an annotation and is restored on the way back, with the v1beta1 fields
//! laid over it so edits made through v1beta1 are kept.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};

use crate::bgppeer::{v1beta1, v1beta2};

/// Annotation carrying a v1beta2 spec through a v1beta1 representation.
pub const V1BETA2_SPEC_ANNOTATION: &str = "metallb.io/v1beta2-spec";

/// A v1beta1 node selector as the label selector it always meant.
pub fn to_label_selector(selector: &v1beta1::NodeSelector) -> LabelSelector {
    LabelSelector {
        match_labels: selector.match_labels.clone(),
        match_expressions: selector.match_expressions.as_ref().map(|exprs| {
            exprs
                .iter()
                .map(|e| LabelSelectorRequirement {
                    key: e.key.clone(),
                    operator: e.operator.clone(),
                    values: Some(e.values.clone()),
                })
                .collect()
        }),
    }
}

fn to_node_selector(selector: &LabelSelector) -> v1beta1::NodeSelector {
    v1beta1::NodeSelector {
        match_labels: selector.match_labels.clone(),
        match_expressions: selector.match_expressions.as_ref().map(|exprs| {
            exprs
                .iter()
                .map(|e| v1beta1::MatchExpression {
                    key: e.key.clone(),
                    operator: e.operator.clone(),
                    values: e.values.clone().unwrap_or_default(),
                })
                .collect()
        }),
    }
}

/// Why a conversion failed.
#[derive(Debug, thiserror::Error)]
#[error("the {annotation} annotation of bgppeer {name:?} is not a v1beta2 spec: {source}")]
pub struct ConversionError {
    /// The annotation that could not be read.
    pub annotation: &'static str,
    /// Name of the object.
    pub name: String,
    /// The JSON error.
    pub source: serde_json::Error,
}

/// v1beta1 to v1beta2, restoring what an earlier down-conversion stashed.
pub fn to_v1beta2(peer: &v1beta1::BGPPeer) -> Result<v1beta2::BGPPeer, ConversionError> {
    let mut metadata = peer.metadata.clone();
    let stashed = metadata
        .annotations
        .as_mut()
        .and_then(|a| a.remove(V1BETA2_SPEC_ANNOTATION));
    if metadata.annotations.as_ref().is_some_and(|a| a.is_empty()) {
        metadata.annotations = None;
    }
    let base: v1beta2::BGPPeerSpec = match stashed {
        Some(json) => serde_json::from_str(&json).map_err(|source| ConversionError {
            annotation: V1BETA2_SPEC_ANNOTATION,
            name: peer.metadata.name.clone().unwrap_or_default(),
            source,
        })?,
        None => v1beta2::BGPPeerSpec::default(),
    };
    let s = &peer.spec;
    let node_selectors = match &base.node_selectors {
        // Keep the richer v1beta2 form unless the v1beta1 side changed the selectors.
        Some(original)
            if s.node_selectors.as_ref()
                == Some(&original.iter().map(to_node_selector).collect()) =>
        {
            Some(original.clone())
        }
        _ => s
            .node_selectors
            .as_ref()
            .map(|list| list.iter().map(to_label_selector).collect()),
    };
    let spec = v1beta2::BGPPeerSpec {
        my_asn: s.my_asn,
        peer_asn: if s.peer_asn == 0 && base.peer_asn.is_none() {
            None
        } else {
            Some(s.peer_asn)
        },
        peer_address: if s.peer_address.is_empty() && base.peer_address.is_none() {
            None
        } else {
            Some(s.peer_address.clone())
        },
        source_address: s.source_address.clone(),
        peer_port: s.peer_port,
        hold_time: s.hold_time.clone(),
        keepalive_time: s.keepalive_time.clone(),
        router_id: s.router_id.clone(),
        node_selectors,
        password: s.password.clone(),
        bfd_profile: s.bfd_profile.clone(),
        ebgp_multi_hop: s.ebgp_multi_hop,
        vrf: s.vrf.clone(),
        ..base
    };
    Ok(v1beta2::BGPPeer {
        metadata,
        spec,
        status: peer.status.as_ref().map(|_| v1beta2::BGPPeerStatus {}),
    })
}

/// v1beta2 to v1beta1, stashing the v1beta2 spec when v1beta1 cannot hold all of it.
pub fn to_v1beta1(peer: &v1beta2::BGPPeer) -> v1beta1::BGPPeer {
    let s = &peer.spec;
    let spec = v1beta1::BGPPeerSpec {
        my_asn: s.my_asn,
        peer_asn: s.peer_asn.unwrap_or(0),
        peer_address: s.peer_address.clone().unwrap_or_default(),
        source_address: s.source_address.clone(),
        peer_port: s.peer_port,
        hold_time: s.hold_time.clone(),
        keepalive_time: s.keepalive_time.clone(),
        router_id: s.router_id.clone(),
        node_selectors: s
            .node_selectors
            .as_ref()
            .map(|list| list.iter().map(to_node_selector).collect()),
        password: s.password.clone(),
        bfd_profile: s.bfd_profile.clone(),
        ebgp_multi_hop: s.ebgp_multi_hop,
        vrf: s.vrf.clone(),
    };
    let mut converted = v1beta1::BGPPeer {
        metadata: peer.metadata.clone(),
        spec,
        status: peer.status.as_ref().map(|_| v1beta1::BGPPeerStatus {}),
    };
    let lossless = to_v1beta2(&converted).is_ok_and(|back| back.spec == peer.spec);
    if !lossless {
        let json = serde_json::to_string(&peer.spec).expect("a spec always serialises");
        converted
            .metadata
            .annotations
            .get_or_insert_default()
            .insert(V1BETA2_SPEC_ANNOTATION.to_owned(), json);
    }
    converted
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::duration::GoDuration;

    fn v1beta2_peer(spec: v1beta2::BGPPeerSpec) -> v1beta2::BGPPeer {
        let mut peer = v1beta2::BGPPeer::new("p", spec);
        peer.metadata.namespace = Some("metallb-system".into());
        peer
    }

    #[test]
    fn a_plain_v1beta2_peer_converts_without_an_annotation_and_back() {
        let peer = v1beta2_peer(v1beta2::BGPPeerSpec {
            my_asn: 64500,
            peer_asn: Some(64501),
            peer_address: Some("10.0.0.1".into()),
            hold_time: Some(GoDuration("90s".into())),
            ..Default::default()
        });
        let down = to_v1beta1(&peer);
        assert!(down.metadata.annotations.is_none());
        assert_eq!(down.spec.peer_address, "10.0.0.1");
        assert_eq!(to_v1beta2(&down).unwrap(), peer);
    }

    #[test]
    fn v1beta2_only_fields_survive_a_trip_through_v1beta1() {
        let peer = v1beta2_peer(v1beta2::BGPPeerSpec {
            my_asn: 64500,
            dynamic_asn: Some(v1beta2::DynamicAsnMode::External),
            interface: Some("eth1".into()),
            connect_time: Some(GoDuration("5s".into())),
            node_selectors: Some(vec![LabelSelector {
                match_expressions: Some(vec![LabelSelectorRequirement {
                    key: "rack".into(),
                    operator: "Exists".into(),
                    values: None,
                }]),
                ..Default::default()
            }]),
            ..Default::default()
        });
        let down = to_v1beta1(&peer);
        assert!(
            down.metadata
                .annotations
                .as_ref()
                .unwrap()
                .contains_key(V1BETA2_SPEC_ANNOTATION)
        );
        assert_eq!(to_v1beta2(&down).unwrap(), peer);
    }

    #[test]
    fn edits_made_through_v1beta1_win_over_the_stash() {
        let peer = v1beta2_peer(v1beta2::BGPPeerSpec {
            my_asn: 64500,
            dynamic_asn: Some(v1beta2::DynamicAsnMode::Internal),
            peer_address: Some("10.0.0.1".into()),
            ..Default::default()
        });
        let mut down = to_v1beta1(&peer);
        down.spec.peer_address = "10.0.0.9".into();
        let up = to_v1beta2(&down).unwrap();
        assert_eq!(up.spec.peer_address.as_deref(), Some("10.0.0.9"));
        assert_eq!(up.spec.dynamic_asn, Some(v1beta2::DynamicAsnMode::Internal));
    }

    #[test]
    fn a_v1beta1_peer_converts_up_and_back_unchanged() {
        let peer = v1beta1::BGPPeer::new(
            "old",
            v1beta1::BGPPeerSpec {
                my_asn: 64500,
                peer_asn: 64501,
                peer_address: "10.0.0.2".into(),
                node_selectors: Some(vec![v1beta1::NodeSelector {
                    match_expressions: Some(vec![v1beta1::MatchExpression {
                        key: "kubernetes.io/hostname".into(),
                        operator: "In".into(),
                        values: vec!["a".into()],
                    }]),
                    ..Default::default()
                }]),
                ..Default::default()
            },
        );
        assert_eq!(to_v1beta1(&to_v1beta2(&peer).unwrap()), peer);
    }

    #[test]
    fn a_corrupt_stash_is_an_error_naming_the_object() {
        let mut peer = v1beta1::BGPPeer::new("broken", v1beta1::BGPPeerSpec::default());
        peer.metadata.annotations =
            Some([(V1BETA2_SPEC_ANNOTATION.to_owned(), "{".to_owned())].into());
        let err = to_v1beta2(&peer).unwrap_err().to_string();
        assert!(err.contains("\"broken\""), "{err}");
    }
}
