//! A configured pool with its free sets and counters, and the checks on a set of pools.

use std::collections::HashSet;
use std::net::IpAddr;

use ipnet::IpNet;

use crate::addr::{is_buggy, to_u128};
use crate::error::ConfigError;
use crate::freeset::FreeSet;
use crate::model::{IpFamily, Pool, PoolCounters, ServiceKey};
use crate::selector::Labels;

/// One CIDR of a pool and its free addresses.
#[derive(Debug, Clone)]
pub(crate) struct Block {
    pub(crate) family: IpFamily,
    pub(crate) first: u128,
    pub(crate) last: u128,
    /// `avoidBuggyIPs` applies to this block (IPv4 only).
    pub(crate) skip_buggy: bool,
    pub(crate) free: FreeSet,
}

impl Block {
    fn new(net: &IpNet, avoid_buggy_ips: bool) -> Self {
        let family = IpFamily::of_net(net);
        let (first, last) = (to_u128(net.network()), to_u128(net.broadcast()));
        let skip_buggy = avoid_buggy_ips && family == IpFamily::V4;
        Self {
            family,
            first,
            last,
            skip_buggy,
            free: FreeSet::new(first, last, skip_buggy),
        }
    }

    /// Whether `ip` is a usable address of this block (inside it, and not buggy when skipped).
    pub(crate) fn holds(&self, ip: IpAddr) -> bool {
        let value = to_u128(ip);
        IpFamily::of(ip) == self.family
            && (self.first..=self.last).contains(&value)
            && !(self.skip_buggy && is_buggy(ip))
    }
}

/// A pool and its live state.
#[derive(Debug, Clone)]
pub(crate) struct PoolState {
    pub(crate) spec: Pool,
    /// One per CIDR, in declared order.
    pub(crate) blocks: Vec<Block>,
    capacity_v4: i64,
    capacity_v6: i64,
    assigned_v4: i64,
    assigned_v6: i64,
}

impl PoolState {
    pub(crate) fn new(spec: Pool) -> Self {
        let blocks = spec
            .cidrs
            .iter()
            .map(|net| Block::new(net, spec.avoid_buggy_ips))
            .collect();
        let (mut capacity_v4, mut capacity_v6) = (0i64, 0i64);
        for net in &spec.cidrs {
            let count = capacity(net, spec.avoid_buggy_ips);
            match IpFamily::of_net(net) {
                IpFamily::V4 => capacity_v4 = capacity_v4.saturating_add(count),
                IpFamily::V6 => capacity_v6 = capacity_v6.saturating_add(count),
            }
        }
        Self {
            spec,
            blocks,
            capacity_v4,
            capacity_v6,
            assigned_v4: 0,
            assigned_v6: 0,
        }
    }

    /// Whether the pool's `serviceAllocation` (if any) admits the service.
    pub(crate) fn admits(
        &self,
        key: &ServiceKey,
        namespace_labels: &Labels,
        labels: &Labels,
    ) -> bool {
        self.spec
            .service_allocation
            .as_ref()
            .is_none_or(|sa| sa.admits(&key.namespace, namespace_labels, labels))
    }

    /// Records that an address of `family` became held (`+1`) or free (`-1`).
    pub(crate) fn count(&mut self, family: IpFamily, delta: i64) {
        match family {
            IpFamily::V4 => self.assigned_v4 += delta,
            IpFamily::V6 => self.assigned_v6 += delta,
        }
    }

    pub(crate) fn counters(&self) -> PoolCounters {
        PoolCounters {
            assigned_ipv4: self.assigned_v4,
            assigned_ipv6: self.assigned_v6,
            available_ipv4: self.capacity_v4.saturating_sub(self.assigned_v4),
            available_ipv6: self.capacity_v6.saturating_sub(self.assigned_v6),
        }
    }
}

/// Usable addresses of one CIDR, as MetalLB's `poolCount` reports them.
///
/// IPv6 CIDRs with 62 or more host bits count as `i64::MAX` ("never exhausts"). With
/// `avoidBuggyIPs`, an IPv4 CIDR of /24 or shorter loses 2 addresses per /24 it contains; a
/// longer one loses its first address if it ends in `.0` and its last if it ends in `.255`
/// (once for a /32, where MetalLB's formula would subtract twice and report -1).
pub(crate) fn capacity(net: &IpNet, avoid_buggy_ips: bool) -> i64 {
    let host_bits = u32::from(net.max_prefix_len() - net.prefix_len());
    if host_bits >= 62 {
        return i64::MAX;
    }
    let size = 1i64 << host_bits;
    if !avoid_buggy_ips || !net.addr().is_ipv4() {
        return size;
    }
    if net.prefix_len() <= 24 {
        return size - 2 * (1i64 << (24 - net.prefix_len()));
    }
    let (first, last) = (net.network(), net.broadcast());
    let buggy = i64::from(is_buggy(first)) + i64::from(first != last && is_buggy(last));
    size - buggy
}

/// MetalLB's parse-time checks on a pool set: names present and unique, addresses present,
/// no two CIDRs overlapping (within a pool or across pools).
pub(crate) fn validate(pools: &[Pool]) -> Result<(), ConfigError> {
    let mut names: HashSet<&str> = HashSet::with_capacity(pools.len());
    let mut ranges: Vec<(IpFamily, u128, u128, &str, &IpNet)> = Vec::new();
    for pool in pools {
        if pool.name.is_empty() {
            return Err(ConfigError::MissingName);
        }
        if !names.insert(&pool.name) {
            return Err(ConfigError::DuplicateName(pool.name.clone()));
        }
        if pool.cidrs.is_empty() {
            return Err(ConfigError::NoAddresses(pool.name.clone()));
        }
        for net in &pool.cidrs {
            let (first, last) = (to_u128(net.network()), to_u128(net.broadcast()));
            ranges.push((IpFamily::of_net(net), first, last, &pool.name, net));
        }
    }
    // Sorted by start, an overlap always shows between a CIDR and the one reaching furthest
    // among those before it.
    ranges.sort_by_key(|&(family, first, ..)| (family == IpFamily::V6, first));
    let mut reach: Option<(IpFamily, u128, &str, &IpNet)> = None;
    for (family, first, last, pool, net) in ranges {
        if let Some((reach_family, reach_last, other_pool, other_net)) = reach
            && reach_family == family
            && reach_last >= first
        {
            return Err(ConfigError::Overlap {
                pool: pool.to_owned(),
                cidr: net.to_string(),
                other_pool: other_pool.to_owned(),
                other_cidr: other_net.to_string(),
            });
        }
        if reach.is_none_or(|(f, l, ..)| f != family || l < last) {
            reach = Some((family, last, pool, net));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::addr::parse_pool_address;

    fn total(entries: &[&str], avoid: bool) -> i64 {
        let nets = entries.iter().flat_map(|e| parse_pool_address(e).unwrap());
        nets.map(|n| capacity(&n, avoid))
            .fold(0i64, i64::saturating_add)
    }

    #[test]
    fn avoid_buggy_ips_capacity_follows_the_reference_examples() {
        assert_eq!(total(&["192.168.10.250-192.168.10.255"], true), 5);
        assert_eq!(total(&["192.168.10.0/24"], true), 254);
        assert_eq!(total(&["192.168.0.0/16"], true), 65_024);
        assert_eq!(total(&["1.2.3.0/24", "2.3.4.128/25"], true), 381);
        assert_eq!(total(&["1.2.3.0/31"], true), 1);
        assert_eq!(total(&["1.2.3.0/32"], true), 0);
        assert_eq!(total(&["1.2.3.0/24", "2.3.4.128/25"], false), 384);
    }

    #[test]
    fn ipv6_is_never_reduced_and_large_cidrs_saturate() {
        assert_eq!(total(&["1000::/127"], true), 2);
        assert_eq!(total(&["1000::/120"], true), 256);
        assert_eq!(total(&["1000::/67"], false), 1 << 61);
        assert_eq!(total(&["1000::/66"], false), i64::MAX);
        assert_eq!(total(&["1000::/64"], false), i64::MAX);
        assert_eq!(
            total(&["1000::/64", "2000::/64", "3000::/120"], false),
            i64::MAX
        );
    }

    #[test]
    fn overlapping_cidrs_are_refused_naming_both() {
        let a = Pool::new("a", parse_pool_address("10.0.0.0/24").unwrap());
        let b = Pool::new("b", parse_pool_address("10.0.0.128/25").unwrap());
        let err = validate(&[a.clone(), b]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "CIDR \"10.0.0.128/25\" in pool \"b\" overlaps with already defined CIDR \"10.0.0.0/24\" in pool \"a\""
        );
        let nested = Pool::new(
            "n",
            ["10.1.0.0/16", "10.2.0.0/24", "10.1.9.0/24"]
                .iter()
                .map(|n| n.parse().unwrap())
                .collect(),
        );
        assert!(matches!(
            validate(&[nested]),
            Err(ConfigError::Overlap { .. })
        ));
        let v6 = Pool::new("v6", parse_pool_address("::/0").unwrap());
        assert_eq!(
            validate(&[a, v6]),
            Ok(()),
            "families never overlap each other"
        );
    }

    #[test]
    fn pools_need_a_unique_name_and_addresses() {
        let net = parse_pool_address("10.0.0.0/24").unwrap();
        assert_eq!(
            validate(&[Pool::new("", net.clone())]),
            Err(ConfigError::MissingName)
        );
        assert_eq!(
            validate(&[Pool::new("a", vec![])]),
            Err(ConfigError::NoAddresses("a".into()))
        );
        let other = parse_pool_address("10.0.1.0/24").unwrap();
        assert_eq!(
            validate(&[Pool::new("a", net), Pool::new("a", other)]),
            Err(ConfigError::DuplicateName("a".into()))
        );
    }
}
