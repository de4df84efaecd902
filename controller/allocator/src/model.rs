//! The plain data the allocator works on: pools in, service requests in, assignments out.

use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;

use crate::error::AllocError;
use crate::selector::{LabelSelector, Labels};

/// An address pool (`IPAddressPool`, or an `AddressPool` translated by the caller).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pool {
    /// Unique, non-empty name.
    pub name: String,
    /// Addresses in declared order; ranges already summarised (see
    /// [`parse_pool_address`](crate::parse_pool_address)). Order matters: the first CIDR of a
    /// family with a usable address wins.
    pub cidrs: Vec<IpNet>,
    /// Whether automatic allocation may use the pool (`spec.autoAssign`, default true).
    pub auto_assign: bool,
    /// Skip IPv4 addresses ending in `.0` or `.255` (`spec.avoidBuggyIPs`).
    pub avoid_buggy_ips: bool,
    /// `spec.serviceAllocation`; `None` when the field is absent. A pool with one is tried
    /// before pools without, for the services it admits; one without namespaces or selectors
    /// (only a priority, or empty) admits every service.
    pub service_allocation: Option<ServiceAllocation>,
}

impl Pool {
    /// A pool with `autoAssign: true` and no other option set.
    pub fn new(name: impl Into<String>, cidrs: Vec<IpNet>) -> Self {
        Self {
            name: name.into(),
            cidrs,
            auto_assign: true,
            avoid_buggy_ips: false,
            service_allocation: None,
        }
    }
}

/// `spec.serviceAllocation` of a pool.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceAllocation {
    /// Lower is tried first; 0 (or negative, which the API refuses) means "no priority" and
    /// sorts after every pool with one.
    pub priority: i32,
    /// Namespaces whose services may use the pool.
    pub namespaces: Vec<String>,
    /// Namespaces, by their labels, whose services may use the pool.
    pub namespace_selectors: Vec<LabelSelector>,
    /// Services, by their labels, that may use the pool; any one match is enough.
    pub service_selectors: Vec<LabelSelector>,
}

impl ServiceAllocation {
    /// Whether a service may take addresses from a pool with this allocation. Namespace
    /// restriction (names or selectors, either admits) AND, when present, a service selector.
    pub fn admits(&self, namespace: &str, namespace_labels: &Labels, labels: &Labels) -> bool {
        let namespace_ok = (self.namespaces.is_empty() && self.namespace_selectors.is_empty())
            || self.namespaces.iter().any(|n| n == namespace)
            || self
                .namespace_selectors
                .iter()
                .any(|s| s.matches(namespace_labels));
        namespace_ok
            && (self.service_selectors.is_empty()
                || self.service_selectors.iter().any(|s| s.matches(labels)))
    }
}

/// A service's identity, displayed as `namespace/name`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServiceKey {
    /// `metadata.namespace`.
    pub namespace: String,
    /// `metadata.name`.
    pub name: String,
}

impl ServiceKey {
    /// The key of `namespace/name`.
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

impl fmt::Display for ServiceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// IP family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IpFamily {
    /// IPv4.
    V4,
    /// IPv6.
    V6,
}

impl IpFamily {
    /// Family of an address.
    pub fn of(ip: IpAddr) -> Self {
        if ip.is_ipv4() { Self::V4 } else { Self::V6 }
    }

    /// Family of a CIDR.
    pub fn of_net(net: &IpNet) -> Self {
        Self::of(net.addr())
    }

    /// The name MetalLB prints (`ipv4`, `ipv6`).
    pub fn name(self) -> &'static str {
        match self {
            Self::V4 => "ipv4",
            Self::V6 => "ipv6",
        }
    }
}

/// `spec.ipFamilyPolicy`; unset is `SingleStack`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum IpFamilyPolicy {
    /// One address, of the cluster IP family.
    #[default]
    SingleStack,
    /// Both families when a pool offers them, else one.
    PreferDualStack,
    /// Both families from one pool, or nothing.
    RequireDualStack,
}

/// `spec.externalTrafficPolicy`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum TrafficPolicy {
    /// Traffic may go to any node.
    #[default]
    Cluster,
    /// Traffic stays on nodes with endpoints, so sharing an IP needs the same endpoints.
    Local,
}

/// Transport protocol of a service port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
    /// SCTP.
    Sctp,
}

/// One entry of `spec.ports`, displayed as MetalLB does (`TCP/80`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Port {
    /// Protocol.
    pub protocol: Protocol,
    /// Port number.
    pub port: u16,
}

impl Port {
    /// A TCP port.
    pub fn tcp(port: u16) -> Self {
        Self {
            protocol: Protocol::Tcp,
            port,
        }
    }

    /// A UDP port.
    pub fn udp(port: u16) -> Self {
        Self {
            protocol: Protocol::Udp,
            port,
        }
    }
}

impl fmt::Display for Port {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let protocol = match self.protocol {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
            Protocol::Sctp => "SCTP",
        };
        write!(f, "{protocol}/{}", self.port)
    }
}

/// What a Service of type LoadBalancer asks for, extracted from the Service by the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceRequest {
    /// `namespace/name`.
    pub key: ServiceKey,
    /// Labels of the service's namespace (for `namespaceSelectors`).
    pub namespace_labels: Labels,
    /// `metadata.labels` (for `serviceSelectors`).
    pub labels: Labels,
    /// Families of `spec.clusterIPs` (`spec.ipFamilies`), primary first. Two entries make the
    /// service dual-stack.
    pub ip_families: Vec<IpFamily>,
    /// `spec.ipFamilyPolicy`.
    pub ip_family_policy: IpFamilyPolicy,
    /// Requested addresses, see [`parse_requested_ips`].
    pub requested_ips: Vec<IpAddr>,
    /// The `address-pool` annotation.
    pub requested_pool: Option<String>,
    /// The `allow-shared-ip` annotation; `None` or empty means no sharing.
    pub sharing_key: Option<String>,
    /// `spec.ports`.
    pub ports: Vec<Port>,
    /// `spec.externalTrafficPolicy`.
    pub external_traffic_policy: TrafficPolicy,
    /// `spec.selector`; part of the sharing rules under the `Local` policy.
    pub selector: Labels,
}

impl ServiceRequest {
    /// A single-stack request without options.
    pub fn new(key: ServiceKey, ip_families: Vec<IpFamily>) -> Self {
        Self {
            key,
            namespace_labels: Labels::new(),
            labels: Labels::new(),
            ip_families,
            ip_family_policy: IpFamilyPolicy::SingleStack,
            requested_ips: Vec::new(),
            requested_pool: None,
            sharing_key: None,
            ports: Vec::new(),
            external_traffic_policy: TrafficPolicy::Cluster,
            selector: Labels::new(),
        }
    }

    /// The backend key of the sharing rules: the selector as `k=v,k2=v2` under the `Local`
    /// policy (so only services with the same endpoints share), empty under `Cluster`.
    pub fn backend_key(&self) -> String {
        match self.external_traffic_policy {
            TrafficPolicy::Cluster => String::new(),
            TrafficPolicy::Local => {
                let pairs: Vec<String> = self
                    .selector
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect();
                pairs.join(",")
            }
        }
    }
}

/// Reads the requested addresses from `spec.loadBalancerIP` and the `loadBalancerIPs`
/// annotation (comma-separated); empty strings count as unset. Both set is an error.
pub fn parse_requested_ips(
    spec_ip: Option<&str>,
    annotation: Option<&str>,
) -> Result<Vec<IpAddr>, AllocError> {
    let spec_ip = spec_ip.filter(|s| !s.is_empty());
    let annotation = annotation.filter(|s| !s.is_empty());
    match (spec_ip, annotation) {
        (None, None) => Ok(Vec::new()),
        (Some(_), Some(_)) => Err(AllocError::BothRequested),
        (None, Some(list)) => list
            .split(',')
            .map(|ip| {
                ip.trim()
                    .parse()
                    .map_err(|_| AllocError::InvalidAnnotationIps(list.to_owned()))
            })
            .collect(),
        (Some(ip), None) => ip
            .trim()
            .parse()
            .map(|ip| vec![ip])
            .map_err(|_| AllocError::InvalidSpecIp(ip.to_owned())),
    }
}

/// Addresses held by a service and the pool they belong to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    /// The pool, for the `ip-allocated-from-pool` annotation.
    pub pool: String,
    /// One address, or one per family (IPv4 first when allocated automatically).
    pub ips: Vec<IpAddr>,
}

/// Usage counts of a pool, as in `IPAddressPool.status`. IPv6 capacity saturates at `i64::MAX`
/// (a CIDR with 62 or more host bits alone reaches it).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolCounters {
    /// Distinct IPv4 addresses held by services.
    pub assigned_ipv4: i64,
    /// Distinct IPv6 addresses held by services.
    pub assigned_ipv6: i64,
    /// Usable IPv4 addresses not held.
    pub available_ipv4: i64,
    /// Usable IPv6 addresses not held.
    pub available_ipv6: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backend_key_is_the_sorted_selector_only_under_the_local_policy() {
        let mut req = ServiceRequest::new(ServiceKey::new("ns", "a"), vec![IpFamily::V4]);
        req.selector = [("b", "2"), ("a", "1")]
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        assert_eq!(req.backend_key(), "");
        req.external_traffic_policy = TrafficPolicy::Local;
        assert_eq!(req.backend_key(), "a=1,b=2");
    }

    #[test]
    fn requested_ips_come_from_exactly_one_source() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(parse_requested_ips(None, None), Ok(vec![]));
        assert_eq!(parse_requested_ips(Some(""), Some("")), Ok(vec![]));
        assert_eq!(
            parse_requested_ips(Some("10.0.0.1"), None),
            Ok(vec![ip("10.0.0.1")])
        );
        assert_eq!(
            parse_requested_ips(None, Some("10.0.0.1, 2001:db8::1")),
            Ok(vec![ip("10.0.0.1"), ip("2001:db8::1")])
        );
        let both = parse_requested_ips(Some("10.0.0.1"), Some("10.0.0.2")).unwrap_err();
        assert_eq!(
            both.to_string(),
            "service can not have both metallb.io/loadBalancerIPs and svc.Spec.LoadBalancerIP"
        );
        let bad = parse_requested_ips(None, Some("10.0.0.1,nope")).unwrap_err();
        assert_eq!(
            bad.to_string(),
            "invalid metallb.io/loadBalancerIPs: \"10.0.0.1,nope\""
        );
        let bad = parse_requested_ips(Some("nope"), None).unwrap_err();
        assert_eq!(bad.to_string(), "invalid spec.loadBalancerIP \"nope\"");
    }

    #[test]
    fn ports_print_like_metallb() {
        assert_eq!(Port::tcp(80).to_string(), "TCP/80");
        assert_eq!(
            Port {
                protocol: Protocol::Sctp,
                port: 9
            }
            .to_string(),
            "SCTP/9"
        );
    }
}
