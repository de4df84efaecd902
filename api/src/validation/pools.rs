//! Address pools: the 4.10 `AddressPool` rules in the operator's order (first error wins) and
//! the current `IPAddressPool` rules. Both kinds share one address space.

use std::collections::BTreeSet;

use ipnet::IpNet;

use super::{
    Operation, Report, Snapshot,
    addresses::{AddressEntry, overlaps, parse_entry},
    check_namespace, fields, selector,
};
use crate::{
    addresspool::{LegacyBgpAdvertisement, Protocol, v1beta1::AddressPool},
    ipaddresspool::IPAddressPool,
};

/// A pool of either kind, reduced to what overlap checks need.
struct ExistingPool<'a> {
    kind: &'static str,
    name: &'a str,
    addresses: &'a [String],
}

fn existing_pools(snapshot: &Snapshot) -> impl Iterator<Item = ExistingPool<'_>> + '_ {
    let legacy = snapshot.address_pools.iter().map(|p| ExistingPool {
        kind: "addresspool",
        name: p.metadata.name.as_deref().unwrap_or_default(),
        addresses: &p.spec.addresses,
    });
    let current = snapshot.ip_address_pools.iter().map(|p| ExistingPool {
        kind: "ipaddresspool",
        name: p.metadata.name.as_deref().unwrap_or_default(),
        addresses: &p.spec.addresses,
    });
    legacy.chain(current)
}

/// Validates a 4.10 `AddressPool` (v1alpha1 or v1beta1) against the existing pools of both kinds.
pub fn validate_address_pool(
    op: Operation,
    pool: &AddressPool,
    snapshot: &Snapshot,
) -> Result<(), super::Denial> {
    let name = pool.metadata.name.as_deref().unwrap_or_default();
    let mut report = Report::new("addresspool", Some(name));
    if let Err((field, text)) = address_pool_problem(op, pool, name, snapshot) {
        report.add(field, text);
    }
    report.finish()
}

fn address_pool_problem(
    op: Operation,
    pool: &AddressPool,
    name: &str,
    snapshot: &Snapshot,
) -> Result<(), (String, String)> {
    if let Some(first) = fields::problems("spec", &pool.spec).into_iter().next() {
        return Err((first.field, first.text));
    }
    let mut entries = Vec::new();
    for (i, text) in pool.spec.addresses.iter().enumerate() {
        let entry = parse_entry(text).map_err(|inner| {
            (
                format!("spec.addresses[{i}]"),
                format!("Failed to parse addresses for {name}: invalid CIDR {text:?} in pool {name}: {inner}"),
            )
        })?;
        entries.push(entry);
    }

    let advertisements = pool.spec.bgp_advertisements.as_deref().unwrap_or_default();
    if !advertisements.is_empty() {
        if pool.spec.protocol != Protocol::Bgp {
            return Err((
                "spec.bgpAdvertisements".into(),
                format!(
                    "bgpadvertisement config not valid for protocol {}",
                    pool.spec.protocol.as_str()
                ),
            ));
        }
        legacy_advertisements_problem(advertisements, &entries)
            .map_err(|(field, text)| (field, format!("invalid bgpadvertisement config: {text}")))?;
    }

    for existing in existing_pools(snapshot) {
        if existing.name == name {
            // On UPDATE the pool with our name is our own old version.
            if op == Operation::Create {
                return Err((
                    "metadata.name".into(),
                    format!("duplicate definition of pool {name}"),
                ));
            }
            continue;
        }
        let mut theirs = Vec::new();
        for text in existing.addresses {
            let entry = parse_entry(text).map_err(|inner| {
                let other = &existing.name;
                (
                    "spec.addresses".to_owned(),
                    format!("Failed to parse addresses for {other}: invalid CIDR {text:?} in pool {other}: {inner}"),
                )
            })?;
            theirs.extend(entry.cidrs);
        }
        for (i, entry) in entries.iter().enumerate() {
            for mine in &entry.cidrs {
                if let Some(other) = theirs.iter().find(|other| overlaps(mine, other)) {
                    return Err((
                        format!("spec.addresses[{i}]"),
                        format!(
                            "CIDR \"{mine}\" in pool {name} overlaps with already defined CIDR \"{other}\" in pool {} ({} {:?})",
                            existing.name, existing.kind, existing.name
                        ),
                    ));
                }
            }
        }
    }
    // Not checked by the 4.10 operator: overlaps inside the pool would make the allocator count
    // addresses twice, so they are refused too.
    internal_overlap(&entries).map_err(|(field, text)| (field, format!("{text} in pool {name}")))
}

fn internal_overlap(entries: &[AddressEntry]) -> Result<(), (String, String)> {
    let mut seen: Vec<(usize, IpNet)> = Vec::new();
    for (i, entry) in entries.iter().enumerate() {
        for cidr in &entry.cidrs {
            if let Some((j, other)) = seen.iter().find(|(_, other)| overlaps(cidr, other)) {
                return Err((
                    format!("spec.addresses[{i}]"),
                    format!(
                        "CIDR \"{cidr}\" overlaps with already defined CIDR \"{other}\" (spec.addresses[{j}])"
                    ),
                ));
            }
        }
        seen.extend(entry.cidrs.iter().map(|c| (i, *c)));
    }
    Ok(())
}

fn legacy_advertisements_problem(
    ads: &[LegacyBgpAdvertisement],
    entries: &[AddressEntry],
) -> Result<(), (String, String)> {
    for (i, ad) in ads.iter().enumerate() {
        if ads[..i].contains(ad) {
            return Err((
                format!("spec.bgpAdvertisements[{i}]"),
                "duplicate definition of bgpadvertisement".into(),
            ));
        }
    }
    for (i, ad) in ads.iter().enumerate() {
        let field = |name: &str| format!("spec.bgpAdvertisements[{i}].{name}");
        let communities = ad.communities.as_deref().unwrap_or_default();
        let mut seen = BTreeSet::new();
        if communities.iter().any(|c| !seen.insert(c)) {
            return Err((
                field("communities"),
                "duplicate definition of communities".into(),
            ));
        }
        for (length, v4, name) in [
            (ad.aggregation_length, true, "aggregationLength"),
            (ad.aggregation_length_v6, false, "aggregationLengthV6"),
        ] {
            let Some(length) = length else { continue };
            aggregation_fits(length, entries.iter().filter(|e| e.is_ipv4() == v4))
                .map_err(|text| (field(name), text))?;
        }
        for community in communities {
            legacy_community_problem(community).map_err(|text| (field("communities"), text))?;
        }
    }
    Ok(())
}

/// The aggregation length must not be longer than any CIDR of the pool's entries, or the
/// aggregate would announce addresses outside the pool.
pub(super) fn aggregation_fits<'a>(
    length: i32,
    entries: impl Iterator<Item = &'a AddressEntry>,
) -> Result<(), String> {
    for entry in entries {
        if let Some(widest) = entry.widest()
            && i32::from(widest.prefix_len()) > length
        {
            return Err(format!(
                "invalid aggregation length {length}: prefix {} in this pool is more specific than the aggregation length for addresses {}",
                widest.prefix_len(),
                entry.text
            ));
        }
    }
    Ok(())
}

fn legacy_community_problem(community: &str) -> Result<(), String> {
    let Some((first, second)) = community.split_once(':').filter(|(_, b)| !b.contains(':')) else {
        return Err(format!("invalid community string {community:?}"));
    };
    for (which, part) in [("first", first), ("second", second)] {
        parse_u16_like_go(part)
            .map_err(|e| format!("invalid {which} section of community {part:?}: {e}"))?;
    }
    Ok(())
}

/// `strconv.ParseUint(part, 10, 16)` with Go's error texts.
pub(super) fn parse_u16_like_go(part: &str) -> Result<u16, String> {
    if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "strconv.ParseUint: parsing {part:?}: invalid syntax"
        ));
    }
    part.parse()
        .map_err(|_| format!("strconv.ParseUint: parsing {part:?}: value out of range"))
}

/// Validates an `IPAddressPool` with the current rules, against pools of both kinds.
pub fn validate_ip_address_pool(
    op: Operation,
    pool: &IPAddressPool,
    snapshot: &Snapshot,
) -> Result<(), super::Denial> {
    let name = pool.metadata.name.as_deref().unwrap_or_default();
    let mut report = Report::new("ipaddresspool", Some(name));
    check_namespace(
        &mut report,
        op,
        pool.metadata.namespace.as_deref(),
        snapshot,
    );
    report.check_fields("spec", &pool.spec);

    let mut entries = Vec::new();
    let mut indexed = Vec::new();
    for (i, text) in pool.spec.addresses.iter().enumerate() {
        match parse_entry(text) {
            Ok(entry) => {
                indexed.push((i, entry.clone()));
                entries.push(entry);
            }
            Err(inner) => report.add(
                format!("spec.addresses[{i}]"),
                format!("invalid CIDR {text:?} in pool {name:?}: {inner}"),
            ),
        }
    }
    if let Err((field, text)) = internal_overlap(&entries) {
        report.add(
            field,
            text.replacen("overlaps", &format!("in pool {name:?} overlaps"), 1),
        );
    }
    for existing in existing_pools(snapshot) {
        if existing.name == name {
            if op == Operation::Create || existing.kind != "ipaddresspool" {
                report.add(
                    "metadata.name",
                    format!(
                        "duplicate definition of pool {name:?} ({} {:?} exists)",
                        existing.kind, existing.name
                    ),
                );
            }
            continue;
        }
        let theirs: Vec<IpNet> = existing
            .addresses
            .iter()
            .filter_map(|t| parse_entry(t).ok())
            .flat_map(|e| e.cidrs)
            .collect();
        for (i, entry) in &indexed {
            for mine in &entry.cidrs {
                if let Some(other) = theirs.iter().find(|other| overlaps(mine, other)) {
                    report.add(
                        format!("spec.addresses[{i}]"),
                        format!(
                            "CIDR \"{mine}\" in pool {name:?} overlaps with already defined CIDR \"{other}\" in {} {:?}",
                            existing.kind, existing.name
                        ),
                    );
                }
            }
        }
    }

    if let Some(allocation) = &pool.spec.service_allocation {
        let mut seen = BTreeSet::new();
        for ns in allocation.namespaces.iter().flatten() {
            if !seen.insert(ns) {
                report.add(
                    "spec.serviceAllocation.namespaces",
                    format!("duplicate definition of namespaces {ns:?}"),
                );
            }
        }
        for (field, selectors) in [
            ("namespaceSelectors", &allocation.namespace_selectors),
            ("serviceSelectors", &allocation.service_selectors),
        ] {
            let path = format!("spec.serviceAllocation.{field}");
            selector::check_list(&mut report, &path, selectors.as_deref());
            let selectors = selectors.as_deref().unwrap_or_default();
            for (i, s) in selectors.iter().enumerate() {
                if selectors[..i].contains(s) {
                    report.add(
                        format!("{path}[{i}]"),
                        format!("duplicate definition of {field}"),
                    );
                }
            }
        }
        if allocation
            .service_selectors
            .as_deref()
            .is_some_and(|s| !s.is_empty())
        {
            let labels = pool.metadata.labels.clone().unwrap_or_default();
            for ad in &snapshot.bgp_advertisements {
                if super::communities::selects_pool(&ad.spec, name, &labels)
                    && super::communities::aggregates(&ad.spec)
                {
                    report.add(
                        "spec.serviceAllocation.serviceSelectors",
                        format!(
                            "serviceSelectors and aggregationLength are mutually exclusive, both cannot be set in bgpadvertisement {:?}",
                            ad.metadata.name.as_deref().unwrap_or_default()
                        ),
                    );
                }
            }
        }
    }
    report.finish()
}
