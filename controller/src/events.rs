//! Events on Services, with MetalLB's reasons and messages; `metallb-runtime`'s recorder
//! publishes them.

use std::fmt;
use std::net::IpAddr;

use metallb_allocator::{AllocError, ServiceKey};
pub use metallb_runtime::events::{Notice, Severity};

/// Event reasons, exactly as MetalLB writes them.
pub mod reason {
    /// Addresses were assigned (Normal).
    pub const IP_ALLOCATED: &str = "IPAllocated";
    /// No address could be assigned (Warning).
    pub const ALLOCATION_FAILED: &str = "AllocationFailed";
    /// The current addresses are no longer allowed and are dropped (Normal).
    pub const CLEAR_ASSIGNMENT: &str = "ClearAssignment";
    /// `PreferDualStack` could not get the second family (Normal).
    pub const ADDITIONAL_ASSIGN_FAILED: &str = "AdditionalAssignFailed";
    /// The requested addresses cannot be read while the Service holds some (Warning).
    pub const LOAD_BALANCER_FAILED: &str = "LoadBalancerFailed";
    /// `RequireDualStack` with a single cluster IP (Warning).
    pub const NOT_ENOUGH_CLUSTER_IPS: &str = "not enough clusterips";
    /// The addresses in the status are not one address or one per family (Warning).
    pub const NO_LB_IPS_FAMILY: &str = "nolbIPsIPFamily";
    /// The Service uses an annotation of the `metallb.universe.tf/` prefix (Warning).
    pub const DEPRECATED_ANNOTATION: &str = "deprecatedAnnotation";
}

fn notice(
    severity: Severity,
    reason: &'static str,
    action: &'static str,
    message: String,
) -> Notice {
    Notice {
        severity,
        reason,
        action,
        message,
    }
}

/// `IPAllocated`: `Assigned IP ["<ip>" ...]`.
pub fn ip_allocated(ips: &[IpAddr]) -> Notice {
    let message = format!("Assigned IP {}", Quoted(ips));
    notice(Severity::Normal, reason::IP_ALLOCATED, "Allocate", message)
}

/// `IPAllocated`: `Assigned additional IP "<ip>"`.
pub fn additional_ip(ip: IpAddr) -> Notice {
    let message = format!("Assigned additional IP \"{ip}\"");
    notice(Severity::Normal, reason::IP_ALLOCATED, "Allocate", message)
}

/// `AllocationFailed`: `Failed to allocate IP for "<key>": <err>`.
pub fn allocation_failed(key: &ServiceKey, err: &AllocError) -> Notice {
    let message = format!("Failed to allocate IP for \"{key}\": {err}");
    notice(
        Severity::Warning,
        reason::ALLOCATION_FAILED,
        "Allocate",
        message,
    )
}

/// `ClearAssignment`: the current addresses are refused by the configuration.
pub fn clear_assignment(key: &ServiceKey, err: &AllocError) -> Notice {
    let message = format!(
        "current IP for \"{key}\" not allowed by config, will attempt for new IP assignment: {err}"
    );
    notice(Severity::Normal, reason::CLEAR_ASSIGNMENT, "Clear", message)
}

/// `AdditionalAssignFailed`: `PreferDualStack` found no address of the other family.
pub fn additional_assign_failed(err: &AllocError) -> Notice {
    let message = format!("cannot assign additional IP in PreferDualStack: {err}");
    notice(
        Severity::Normal,
        reason::ADDITIONAL_ASSIGN_FAILED,
        "Allocate",
        message,
    )
}

/// `LoadBalancerFailed`: `invalid requested loadbalancer IPs: <err>`.
pub fn load_balancer_failed(err: &AllocError) -> Notice {
    let message = format!("invalid requested loadbalancer IPs: {err}");
    notice(
        Severity::Warning,
        reason::LOAD_BALANCER_FAILED,
        "Validate",
        message,
    )
}

/// `not enough clusterips`: `Service requires dual stack but not enough clusterips [...]`.
pub fn not_enough_cluster_ips(cluster_ips: &[String]) -> Notice {
    let message = format!(
        "Service requires dual stack but not enough clusterips [{}]",
        cluster_ips.join(" ")
    );
    notice(
        Severity::Warning,
        reason::NOT_ENOUGH_CLUSTER_IPS,
        "Validate",
        message,
    )
}

/// `nolbIPsIPFamily`: the status holds something other than one address per family.
pub fn lb_ips_family(ingress: &[String], detail: &str) -> Notice {
    let list: Vec<String> = ingress.iter().map(|ip| format!("{ip:?}")).collect();
    let message = format!(
        "Failed to retrieve LBIPs IPFamily for [{}]: {detail}",
        list.join(" ")
    );
    notice(
        Severity::Warning,
        reason::NO_LB_IPS_FAMILY,
        "Validate",
        message,
    )
}

/// `deprecatedAnnotation`: `Service uses deprecated annotation <key>`.
pub fn deprecated_annotation(key: &str) -> Notice {
    let message = format!("Service uses deprecated annotation {key}");
    notice(
        Severity::Warning,
        reason::DEPRECATED_ANNOTATION,
        "Update",
        message,
    )
}

struct Quoted<'a>(&'a [IpAddr]);

impl fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[")?;
        for (i, ip) in self.0.iter().enumerate() {
            let sep = if i == 0 { "" } else { " " };
            write!(f, "{sep}\"{ip}\"")?;
        }
        f.write_str("]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn messages_read_like_metallb() {
        let key = ServiceKey::new("web", "front");
        assert_eq!(
            ip_allocated(&[ip("10.0.0.1"), ip("2001:db8::1")]).message,
            r#"Assigned IP ["10.0.0.1" "2001:db8::1"]"#
        );
        assert_eq!(
            additional_ip(ip("2001:db8::1")).message,
            r#"Assigned additional IP "2001:db8::1""#
        );
        assert_eq!(
            allocation_failed(&key, &AllocError::NoAvailableIps).message,
            r#"Failed to allocate IP for "web/front": no available IPs"#
        );
        let not_allowed = AllocError::NotAllowed {
            ips: vec![ip("10.0.0.9")],
        };
        assert_eq!(
            clear_assignment(&key, &not_allowed).message,
            r#"current IP for "web/front" not allowed by config, will attempt for new IP assignment: ["10.0.0.9"] is not allowed in config"#
        );
        assert_eq!(
            not_enough_cluster_ips(&["10.96.0.1".into()]).message,
            "Service requires dual stack but not enough clusterips [10.96.0.1]"
        );
        assert_eq!(
            load_balancer_failed(&AllocError::BothRequested).message,
            "invalid requested loadbalancer IPs: service can not have both metallb.io/loadBalancerIPs and svc.Spec.LoadBalancerIP"
        );
        assert_eq!(
            deprecated_annotation("metallb.universe.tf/address-pool").message,
            "Service uses deprecated annotation metallb.universe.tf/address-pool"
        );
    }

    #[test]
    fn severities_follow_the_reference() {
        let key = ServiceKey::new("a", "b");
        let err = AllocError::NoAvailableIps;
        assert_eq!(ip_allocated(&[]).severity, Severity::Normal);
        assert_eq!(clear_assignment(&key, &err).severity, Severity::Normal);
        assert_eq!(additional_assign_failed(&err).severity, Severity::Normal);
        assert_eq!(allocation_failed(&key, &err).severity, Severity::Warning);
        assert_eq!(load_balancer_failed(&err).severity, Severity::Warning);
        assert_eq!(deprecated_annotation("k").severity, Severity::Warning);
    }
}
