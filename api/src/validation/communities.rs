//! BGP communities and the two advertisement kinds, plus the `Community` alias kind.

use std::collections::BTreeSet;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use super::{
    Denial, Operation, Report, Snapshot,
    addresses::parse_entry,
    check_namespace,
    pools::aggregation_fits,
    selector::{self, Selection},
};
use crate::{
    advertisement::{BGPAdvertisement, BGPAdvertisementSpec, L2Advertisement},
    community::Community as CommunityObject,
};

/// A BGP community value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Community {
    /// RFC 1997 community `high:low`.
    Standard(u16, u16),
    /// RFC 8092 large community `large:global:local1:local2`.
    Large(u32, u32, u32),
}

/// Parses `65535:65282` or `large:64500:1:2`.
pub fn parse_community(text: &str) -> Result<Community, String> {
    let parts: Vec<&str> = text.split(':').collect();
    let section = |part: &str| -> Result<u32, String> {
        part.parse::<u32>().map_err(|_| {
            format!("invalid community value: invalid section {part:?} of community {text:?}")
        })
    };
    match parts.as_slice() {
        [high, low] => {
            let value = |part: &str| -> Result<u16, String> {
                part.parse::<u16>().map_err(|_| {
                    format!("invalid community value: invalid section {part:?} of community {text:?}, must be 0-65535")
                })
            };
            Ok(Community::Standard(value(high)?, value(low)?))
        }
        [marker, global, one, two] => {
            if *marker != "large" {
                return Err(format!(
                    "invalid community value: invalid marker for large community, expected community to be of format large:<uint32>:<uint32>:<uint32>, got {text:?}"
                ));
            }
            Ok(Community::Large(
                section(global)?,
                section(one)?,
                section(two)?,
            ))
        }
        _ => Err(format!(
            "invalid community value: {text:?} is neither a community (65535:65282), a large community (large:1:2:3) nor an alias"
        )),
    }
}

fn is_alias(text: &str) -> bool {
    !text.contains(':')
}

/// Validates a `Community` object: every alias has a name and a valid value, and no name is
/// defined twice here or in another Community object.
pub fn validate_community(
    op: Operation,
    object: &CommunityObject,
    snapshot: &Snapshot,
) -> Result<(), Denial> {
    let name = object.metadata.name.as_deref().unwrap_or_default();
    let mut report = Report::new("community", Some(name));
    check_namespace(
        &mut report,
        op,
        object.metadata.namespace.as_deref(),
        snapshot,
    );
    let mut seen = BTreeSet::new();
    for (i, alias) in object.spec.communities.iter().flatten().enumerate() {
        let field = |f: &str| format!("spec.communities[{i}].{f}");
        let alias_name = alias.name.as_deref().unwrap_or_default();
        if alias_name.is_empty() {
            report.add(field("name"), "missing community alias name");
        } else if !is_alias(alias_name) {
            report.add(
                field("name"),
                format!("community alias {alias_name:?} must not contain ':'"),
            );
        } else if !seen.insert(alias_name) {
            report.add(
                field("name"),
                format!("duplicate definition of community {alias_name:?}"),
            );
        } else if let Some(other) = snapshot.communities.iter().find(|c| {
            c.metadata.name.as_deref() != Some(name)
                && c.spec
                    .communities
                    .iter()
                    .flatten()
                    .any(|a| a.name.as_deref() == Some(alias_name))
        }) {
            report.add(
                field("name"),
                format!(
                    "duplicate definition of community {alias_name:?}, already defined in community {:?}",
                    other.metadata.name.as_deref().unwrap_or_default()
                ),
            );
        }
        match alias.value.as_deref() {
            None | Some("") => report.add(
                field("value"),
                format!("missing value of community alias {alias_name:?}"),
            ),
            Some(value) => {
                if let Err(text) = parse_community(value) {
                    report.add(field("value"), text);
                }
            }
        }
    }
    report.finish()
}

/// Whether the advertisement selects the pool (by name or labels; neither means all pools).
pub(super) fn selects_pool(
    ad: &BGPAdvertisementSpec,
    pool: &str,
    labels: &selector::Labels,
) -> bool {
    pool_selected(
        ad.ip_address_pools.as_deref(),
        ad.ip_address_pool_selectors.as_deref(),
        pool,
        labels,
    )
}

fn pool_selected(
    names: Option<&[String]>,
    selectors: Option<&[LabelSelector]>,
    pool: &str,
    labels: &selector::Labels,
) -> bool {
    let names = names.unwrap_or_default();
    let selection = Selection::of(selectors);
    if names.is_empty() && selection.is_everything() {
        return true;
    }
    names.iter().any(|n| n == pool) || selection.any_matches(labels)
}

/// Whether the advertisement aggregates (a length other than one route per IP).
pub(super) fn aggregates(ad: &BGPAdvertisementSpec) -> bool {
    ad.aggregation_length.is_some_and(|l| l != 32)
        || ad.aggregation_length_v6.is_some_and(|l| l != 128)
}

fn check_unique(report: &mut Report, field: &str, what: &str, values: Option<&[String]>) {
    let mut seen = BTreeSet::new();
    for (i, value) in values.unwrap_or_default().iter().enumerate() {
        if !seen.insert(value) {
            report.add(
                format!("{field}[{i}]"),
                format!("duplicate definition of {what} {value:?}"),
            );
        }
    }
}

/// Validates a `BGPAdvertisement` against the pools it selects and the community aliases.
pub fn validate_bgp_advertisement(
    op: Operation,
    ad: &BGPAdvertisement,
    snapshot: &Snapshot,
) -> Result<(), Denial> {
    let name = ad.metadata.name.as_deref().unwrap_or_default();
    let spec = &ad.spec;
    let mut report = Report::new("bgpadvertisement", Some(name));
    check_namespace(&mut report, op, ad.metadata.namespace.as_deref(), snapshot);
    report.check_fields("spec", spec);
    check_unique(
        &mut report,
        "spec.ipAddressPools",
        "ipaddresspool",
        spec.ip_address_pools.as_deref(),
    );
    check_unique(&mut report, "spec.peers", "peer", spec.peers.as_deref());
    selector::check_list(
        &mut report,
        "spec.ipAddressPoolSelectors",
        spec.ip_address_pool_selectors.as_deref(),
    );
    selector::check_list(
        &mut report,
        "spec.nodeSelectors",
        spec.node_selectors.as_deref(),
    );

    let mut seen = BTreeSet::new();
    for (i, text) in spec.communities.iter().flatten().enumerate() {
        let field = format!("spec.communities[{i}]");
        let value = if is_alias(text) {
            // An alias not defined yet is accepted: the Community may be created next; the
            // speaker reports the configuration as incomplete until it is.
            let defined = snapshot
                .communities
                .iter()
                .flat_map(|c| c.spec.communities.iter().flatten())
                .find(|a| a.name.as_deref() == Some(text.as_str()))
                .and_then(|a| a.value.as_deref().map(parse_community));
            match defined {
                Some(Ok(value)) => Some(value),
                Some(Err(_)) | None => None,
            }
        } else {
            match parse_community(text) {
                Ok(value) => Some(value),
                Err(problem) => {
                    report.add(&field, problem);
                    None
                }
            }
        };
        let key = value.map_or_else(|| text.clone(), |v| format!("{v:?}"));
        if !seen.insert(key) {
            report.add(
                &field,
                format!("duplicate definition of communities {text:?}"),
            );
        }
    }

    for pool in &snapshot.ip_address_pools {
        let pool_name = pool.metadata.name.as_deref().unwrap_or_default();
        let labels = pool.metadata.labels.clone().unwrap_or_default();
        if !selects_pool(spec, pool_name, &labels) {
            continue;
        }
        let entries: Vec<_> = pool
            .spec
            .addresses
            .iter()
            .filter_map(|a| parse_entry(a).ok())
            .collect();
        for (length, v4, field) in [
            (
                spec.aggregation_length.unwrap_or(32),
                true,
                "spec.aggregationLength",
            ),
            (
                spec.aggregation_length_v6.unwrap_or(128),
                false,
                "spec.aggregationLengthV6",
            ),
        ] {
            if report.has_problem(field) {
                continue;
            }
            if let Err(text) =
                aggregation_fits(length, entries.iter().filter(|e| e.is_ipv4() == v4))
            {
                report.add(field, format!("{text} (ipaddresspool {pool_name:?})"));
            }
        }
        let has_service_selectors = pool
            .spec
            .service_allocation
            .as_ref()
            .and_then(|a| a.service_selectors.as_deref())
            .is_some_and(|s| !s.is_empty());
        if has_service_selectors && aggregates(spec) {
            report.add(
                "spec.aggregationLength",
                format!(
                    "serviceSelectors and aggregationLength are mutually exclusive, both cannot be set in {name} (ipaddresspool {pool_name:?} has serviceSelectors)"
                ),
            );
        }
    }
    report.finish()
}

/// Validates an `L2Advertisement`.
pub fn validate_l2_advertisement(
    op: Operation,
    ad: &L2Advertisement,
    snapshot: &Snapshot,
) -> Result<(), Denial> {
    let name = ad.metadata.name.as_deref().unwrap_or_default();
    let spec = &ad.spec;
    let mut report = Report::new("l2advertisement", Some(name));
    check_namespace(&mut report, op, ad.metadata.namespace.as_deref(), snapshot);
    check_unique(
        &mut report,
        "spec.ipAddressPools",
        "ipaddresspool",
        spec.ip_address_pools.as_deref(),
    );
    check_unique(
        &mut report,
        "spec.interfaces",
        "interface",
        spec.interfaces.as_deref(),
    );
    for (i, interface) in spec.interfaces.iter().flatten().enumerate() {
        if interface.is_empty() || interface.len() > 15 || interface.contains(['/', ' ']) {
            report.add(
                format!("spec.interfaces[{i}]"),
                format!("invalid interface name {interface:?}"),
            );
        }
    }
    selector::check_list(
        &mut report,
        "spec.ipAddressPoolSelectors",
        spec.ip_address_pool_selectors.as_deref(),
    );
    selector::check_list(
        &mut report,
        "spec.nodeSelectors",
        spec.node_selectors.as_deref(),
    );
    report.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn communities_parse_in_both_forms() {
        assert_eq!(
            parse_community("65535:65282"),
            Ok(Community::Standard(65535, 65282))
        );
        assert_eq!(
            parse_community("large:64500:1:2"),
            Ok(Community::Large(64500, 1, 2))
        );
        assert!(
            parse_community("65536:1")
                .unwrap_err()
                .contains("invalid community value: invalid section")
        );
        assert!(
            parse_community("huge:1:2:3")
                .unwrap_err()
                .contains("expected community to be of format large")
        );
        assert!(
            parse_community("large:1:2:x")
                .unwrap_err()
                .contains("invalid section")
        );
        assert!(
            parse_community("1:2:3")
                .unwrap_err()
                .contains("invalid community value")
        );
    }
}
