//! Which families a service wants, and which families a set of addresses has.

use std::net::IpAddr;

use crate::error::AllocError;
use crate::model::{IpFamily, IpFamilyPolicy, ServiceRequest};

/// The family of a service (from its cluster IPs) or of a set of addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    One(IpFamily),
    Dual,
}

impl Kind {
    /// The service's family: dual when it has two cluster IP families. The caller has checked
    /// that there is at least one.
    pub(crate) fn of_service(req: &ServiceRequest) -> Self {
        match req.ip_families.as_slice() {
            [family] => Self::One(*family),
            _ => Self::Dual,
        }
    }

    /// The family of requested or held addresses: one address, or one of each family.
    pub(crate) fn of_ips(ips: &[IpAddr]) -> Result<Self, AllocError> {
        match ips {
            [ip] => Ok(Self::One(IpFamily::of(*ip))),
            [a, b] if IpFamily::of(*a) == IpFamily::of(*b) => {
                Err(AllocError::SameFamily { ips: ips.to_vec() })
            }
            [_, _] => Ok(Self::Dual),
            _ => Err(AllocError::TooManyIps { ips: ips.to_vec() }),
        }
    }
}

/// What automatic or pool allocation must produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Want {
    /// One address of this family.
    One(IpFamily),
    /// One of each family from the same pool; when not `required`, one address of `primary`
    /// (else of the other family) is acceptable.
    Both { primary: IpFamily, required: bool },
}

impl Want {
    /// From the cluster IP families and the policy. `RequireDualStack` with a single cluster IP
    /// is refused, as MetalLB does before allocating; `PreferDualStack` with a single cluster
    /// IP is single-stack. Kubernetes never pairs two families with `SingleStack`; should it
    /// happen, both are required.
    pub(crate) fn of(req: &ServiceRequest) -> Result<Self, AllocError> {
        match (req.ip_families.as_slice(), req.ip_family_policy) {
            ([], _) => Err(AllocError::NoClusterIps),
            ([_], IpFamilyPolicy::RequireDualStack) => Err(AllocError::NotEnoughClusterIps),
            ([family], _) => Ok(Self::One(*family)),
            ([primary, ..], policy) => Ok(Self::Both {
                primary: *primary,
                required: policy != IpFamilyPolicy::PreferDualStack,
            }),
        }
    }

    /// The name MetalLB prints for the wanted family.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::One(family) => family.name(),
            Self::Both { .. } => "dual",
        }
    }

    /// The addresses to take from one pool that offers `v4` and `v6`, as MetalLB's
    /// `selectIPsForFamilyAndPolicy`: `[v4, v6]` when both are needed or preferred; a
    /// preferred-dual-stack service falls back to IPv4, then IPv6.
    pub(crate) fn select(self, v4: Option<IpAddr>, v6: Option<IpAddr>) -> Option<Vec<IpAddr>> {
        match (self, v4, v6) {
            (Self::One(IpFamily::V4), Some(ip), _) | (Self::One(IpFamily::V6), _, Some(ip)) => {
                Some(vec![ip])
            }
            (Self::Both { .. }, Some(a), Some(b)) => Some(vec![a, b]),
            (
                Self::Both {
                    required: false, ..
                },
                Some(ip),
                None,
            )
            | (
                Self::Both {
                    required: false, ..
                },
                None,
                Some(ip),
            ) => Some(vec![ip]),
            _ => None,
        }
    }
}

/// The family other than `family`.
pub(crate) fn other(family: IpFamily) -> IpFamily {
    match family {
        IpFamily::V4 => IpFamily::V6,
        IpFamily::V6 => IpFamily::V4,
    }
}
