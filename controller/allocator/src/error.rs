//! Errors. Their texts are MetalLB's, so events built from them read the same
//! (`Failed to allocate IP for "<key>": <error>`).

use std::fmt;
use std::net::IpAddr;

use thiserror::Error;

use crate::model::{Port, ServiceKey};

/// Why a service cannot get (or keep) addresses.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AllocError {
    /// Automatic allocation found no pool with a usable address.
    #[error("no available IPs")]
    NoAvailableIps,
    /// The requested (or current) pool has no usable address of the family.
    #[error("no available IPs in pool {pool} for {family} IPFamily")]
    NoAvailableIpsInPool {
        /// The pool.
        pool: String,
        /// `ipv4`, `ipv6` or `dual`.
        family: &'static str,
    },
    /// The `address-pool` annotation names no pool.
    #[error("unknown pool {0:?}")]
    UnknownPool(String),
    /// The addresses are not all usable addresses of one pool.
    #[error("{} is not allowed in config", IpList(ips))]
    NotAllowed {
        /// The addresses asked for.
        ips: Vec<IpAddr>,
    },
    /// The pool's `serviceAllocation` does not admit the service.
    #[error("pool {pool} not compatible for ip assignment")]
    PoolNotCompatible {
        /// The pool.
        pool: String,
    },
    /// More than one address per family was asked for.
    #[error("more than two addresses {}", IpList(ips))]
    TooManyIps {
        /// The addresses asked for.
        ips: Vec<IpAddr>,
    },
    /// Two addresses of the same family were asked for.
    #[error("{} has the same family", IpList(ips))]
    SameFamily {
        /// The addresses asked for.
        ips: Vec<IpAddr>,
    },
    /// Another service on the address already uses this port.
    #[error("port {port} is already in use on \"{ip}\"")]
    PortInUse {
        /// The conflicting port.
        port: Port,
        /// The shared address.
        ip: IpAddr,
        /// The service holding the port.
        owner: ServiceKey,
    },
    /// The address is held by other services whose sharing key or backend key differ.
    #[error(
        "can't change sharing key for \"{service}\", address also in use by {}",
        KeyList(others)
    )]
    SharingConflict {
        /// The service asking.
        service: ServiceKey,
        /// The address.
        ip: IpAddr,
        /// Services already on the address, sorted.
        others: Vec<ServiceKey>,
    },
    /// Requested addresses are not of the service's family (dual-stack needs one per family).
    #[error(
        "requested loadBalancer IP(s) {} does not match the ipFamily of the service",
        IpList(ips)
    )]
    FamilyMismatch {
        /// The addresses asked for.
        ips: Vec<IpAddr>,
    },
    /// Requested addresses belong to another pool than the `address-pool` annotation names.
    #[error(
        "requested loadBalancer IP(s) {} is not compatible with requested address pool {pool}",
        IpList(ips)
    )]
    PoolMismatch {
        /// The addresses asked for.
        ips: Vec<IpAddr>,
        /// The pool named by the annotation.
        pool: String,
    },
    /// Both `spec.loadBalancerIP` and the `loadBalancerIPs` annotation are set.
    #[error("service can not have both metallb.io/loadBalancerIPs and svc.Spec.LoadBalancerIP")]
    BothRequested,
    /// The `loadBalancerIPs` annotation holds something that is not an address.
    #[error("invalid metallb.io/loadBalancerIPs: {0:?}")]
    InvalidAnnotationIps(String),
    /// `spec.loadBalancerIP` is not an address.
    #[error("invalid spec.loadBalancerIP {0:?}")]
    InvalidSpecIp(String),
    /// `RequireDualStack` on a service with a single cluster IP (event reason
    /// `not enough clusterips`).
    #[error("Service requires dual stack but not enough clusterips")]
    NotEnoughClusterIps,
    /// The service has no cluster IP, so its family is unknown (MetalLB clears without event).
    #[error("no cluster IPs, can't determine the IP family")]
    NoClusterIps,
    /// No pool is configured (MetalLB clears without event).
    #[error("no address pools configured")]
    NoPools,
}

/// Why a set of pools was refused; the allocator then keeps the previous set.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ConfigError {
    /// A pool has an empty name.
    #[error("missing pool name")]
    MissingName,
    /// Two pools have the same name.
    #[error("duplicate definition of pool {0:?}")]
    DuplicateName(String),
    /// A pool has no CIDR.
    #[error("pool {0:?} has no prefixes defined")]
    NoAddresses(String),
    /// Two CIDRs (of one pool or of two) overlap.
    #[error(
        "CIDR {cidr:?} in pool {pool:?} overlaps with already defined CIDR {other_cidr:?} in pool {other_pool:?}"
    )]
    Overlap {
        /// The later pool.
        pool: String,
        /// Its CIDR.
        cidr: String,
        /// The earlier pool.
        other_pool: String,
        /// Its CIDR.
        other_cidr: String,
    },
}

/// Formats addresses as Go's `%q` does for a slice: `["10.0.0.1" "2001:db8::1"]`.
struct IpList<'a>(&'a [IpAddr]);

impl fmt::Display for IpList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[")?;
        for (i, ip) in self.0.iter().enumerate() {
            let sep = if i == 0 { "" } else { " " };
            write!(f, "{sep}\"{ip}\"")?;
        }
        f.write_str("]")
    }
}

/// Formats service keys joined by commas, as MetalLB lists the other users of an address.
struct KeyList<'a>(&'a [ServiceKey]);

impl fmt::Display for KeyList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, key) in self.0.iter().enumerate() {
            let sep = if i == 0 { "" } else { "," };
            write!(f, "{sep}{key}")?;
        }
        Ok(())
    }
}
