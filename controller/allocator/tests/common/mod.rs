//! Short builders for pools and service requests used by the table tests.

#![allow(dead_code, reason = "each test file uses a different subset")]

use std::net::IpAddr;

use metallb_allocator::{
    Allocator, IpFamily, IpFamilyPolicy, LabelSelector, Labels, Pool, Port, ServiceAllocation,
    ServiceKey, ServiceRequest, TrafficPolicy, parse_pool_address,
};

pub fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

pub fn ips(list: &[&str]) -> Vec<IpAddr> {
    list.iter().map(|s| ip(s)).collect()
}

pub fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

pub fn key(text: &str) -> ServiceKey {
    let (ns, name) = text.split_once('/').unwrap();
    ServiceKey::new(ns, name)
}

/// A pool with autoAssign from address entries (CIDRs or ranges).
pub fn pool(name: &str, entries: &[&str]) -> Pool {
    Pool::new(
        name,
        entries
            .iter()
            .flat_map(|e| parse_pool_address(e).unwrap())
            .collect(),
    )
}

pub fn manual(mut pool: Pool) -> Pool {
    pool.auto_assign = false;
    pool
}

pub fn buggy(mut pool: Pool) -> Pool {
    pool.avoid_buggy_ips = true;
    pool
}

pub fn allocation(mut pool: Pool, sa: ServiceAllocation) -> Pool {
    pool.service_allocation = Some(sa);
    pool
}

pub fn for_namespaces(priority: i32, namespaces: &[&str]) -> ServiceAllocation {
    ServiceAllocation {
        priority,
        namespaces: namespaces.iter().map(|n| n.to_string()).collect(),
        ..ServiceAllocation::default()
    }
}

pub fn for_services(priority: i32, pairs: &[(&str, &str)]) -> ServiceAllocation {
    let selector = LabelSelector::from_labels(pairs.iter().copied());
    ServiceAllocation {
        priority,
        service_selectors: vec![selector],
        ..ServiceAllocation::default()
    }
}

pub fn allocator(pools: Vec<Pool>) -> Allocator {
    let mut allocator = Allocator::new();
    allocator.set_pools(pools).unwrap();
    allocator
}

/// Builds a [`ServiceRequest`]; IPv4 single stack unless told otherwise.
#[derive(Clone)]
pub struct Svc(pub ServiceRequest);

pub fn svc(name: &str) -> Svc {
    Svc(ServiceRequest::new(key(name), vec![IpFamily::V4]))
}

impl Svc {
    pub fn v6(mut self) -> Self {
        self.0.ip_families = vec![IpFamily::V6];
        self
    }

    pub fn families(mut self, families: &[IpFamily], policy: IpFamilyPolicy) -> Self {
        self.0.ip_families = families.to_vec();
        self.0.ip_family_policy = policy;
        self
    }

    pub fn dual(self, policy: IpFamilyPolicy) -> Self {
        self.families(&[IpFamily::V4, IpFamily::V6], policy)
    }

    pub fn share(mut self, sharing_key: &str) -> Self {
        self.0.sharing_key = Some(sharing_key.into());
        self
    }

    pub fn tcp(mut self, ports: &[u16]) -> Self {
        self.0.ports = ports.iter().map(|p| Port::tcp(*p)).collect();
        self
    }

    pub fn local(mut self, selector: &[(&str, &str)]) -> Self {
        self.0.external_traffic_policy = TrafficPolicy::Local;
        self.0.selector = labels(selector);
        self
    }

    pub fn labels(mut self, pairs: &[(&str, &str)]) -> Self {
        self.0.labels = labels(pairs);
        self
    }

    pub fn ns_labels(mut self, pairs: &[(&str, &str)]) -> Self {
        self.0.namespace_labels = labels(pairs);
        self
    }

    pub fn wants(mut self, list: &[&str]) -> Self {
        self.0.requested_ips = ips(list);
        self
    }

    pub fn in_pool(mut self, pool: &str) -> Self {
        self.0.requested_pool = Some(pool.into());
        self
    }
}

impl std::ops::Deref for Svc {
    type Target = ServiceRequest;

    fn deref(&self) -> &ServiceRequest {
        &self.0
    }
}

/// The addresses a service holds, as text.
pub fn held(allocator: &Allocator, service: &str) -> Vec<String> {
    allocator
        .assignment(&key(service))
        .map(|a| a.ips.iter().map(|ip| ip.to_string()).collect())
        .unwrap_or_default()
}
