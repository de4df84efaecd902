//! Address pools from `IPAddressPool` and the 4.10 `AddressPool` kind, as the allocator's
//! [`Pool`]s. Both kinds share one address space. Pure: the objects are checked with the same
//! validation the admission webhook runs, then translated.

use ipnet::IpNet;
use k8s_openapi::apimachinery::pkg::apis::meta::v1 as meta;
use metallb_allocator::{
    AddressError, LabelSelector, Operator, Pool, Requirement, ServiceAllocation, parse_pool_address,
};
use metallb_api::addresspool::v1beta1::AddressPool;
use metallb_api::ipaddresspool::IPAddressPool;
use metallb_api::validation::{
    Denial, Operation, Snapshot, validate_address_pool, validate_ip_address_pool,
};
use thiserror::Error;

/// Why a set of pool objects cannot be used; the controller then keeps its previous pools.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PoolError {
    /// A pool breaks a validation rule (overlap, duplicate name, bad selector, ...).
    #[error("{0}")]
    Invalid(#[from] Denial),
    /// An address entry cannot be read.
    #[error("pool {pool:?}: {source}")]
    Address {
        /// The pool.
        pool: String,
        /// What is wrong with the entry.
        source: AddressError,
    },
    /// A selector uses an operator Kubernetes does not have.
    #[error("pool {pool:?}: unknown selector operator {operator:?}")]
    Operator {
        /// The pool.
        pool: String,
        /// The operator as written.
        operator: String,
    },
}

/// The allocator's pools for these objects of the MetalLB `namespace`, after checking every
/// object against all the others as the webhook would on an update.
pub fn pools_from(
    namespace: &str,
    ip_address_pools: &[IPAddressPool],
    address_pools: &[AddressPool],
) -> Result<Vec<Pool>, PoolError> {
    let snapshot = Snapshot {
        namespace: namespace.to_owned(),
        address_pools: address_pools.to_vec(),
        ip_address_pools: ip_address_pools.to_vec(),
        ..Snapshot::default()
    };
    let mut pools = Vec::with_capacity(ip_address_pools.len() + address_pools.len());
    for object in ip_address_pools {
        validate_ip_address_pool(Operation::Update, object, &snapshot)?;
        pools.push(from_ip_address_pool(object)?);
    }
    for object in address_pools {
        validate_address_pool(Operation::Update, object, &snapshot)?;
        pools.push(from_address_pool(object)?);
    }
    Ok(pools)
}

/// One `IPAddressPool`.
pub fn from_ip_address_pool(object: &IPAddressPool) -> Result<Pool, PoolError> {
    let name = object.metadata.name.clone().unwrap_or_default();
    let spec = &object.spec;
    let service_allocation = spec
        .service_allocation
        .as_ref()
        .map(|sa| {
            Ok::<_, PoolError>(ServiceAllocation {
                priority: sa.priority.unwrap_or(0),
                namespaces: sa.namespaces.clone().unwrap_or_default(),
                namespace_selectors: selectors(&name, sa.namespace_selectors.as_deref())?,
                service_selectors: selectors(&name, sa.service_selectors.as_deref())?,
            })
        })
        .transpose()?;
    Ok(Pool {
        cidrs: cidrs(&name, &spec.addresses)?,
        auto_assign: spec.auto_assign(),
        avoid_buggy_ips: spec.avoid_buggy_ips(),
        service_allocation,
        name,
    })
}

/// One 4.10 `AddressPool`: addresses and autoAssign; its protocol and BGP advertisements
/// concern the speakers only.
pub fn from_address_pool(object: &AddressPool) -> Result<Pool, PoolError> {
    let name = object.metadata.name.clone().unwrap_or_default();
    let mut pool = Pool::new(name.clone(), cidrs(&name, &object.spec.addresses)?);
    pool.auto_assign = object.spec.auto_assign();
    Ok(pool)
}

fn cidrs(pool: &str, addresses: &[String]) -> Result<Vec<IpNet>, PoolError> {
    let mut cidrs = Vec::new();
    for entry in addresses {
        let parsed = parse_pool_address(entry).map_err(|source| PoolError::Address {
            pool: pool.to_owned(),
            source,
        })?;
        cidrs.extend(parsed);
    }
    Ok(cidrs)
}

fn selectors(
    pool: &str,
    list: Option<&[meta::LabelSelector]>,
) -> Result<Vec<LabelSelector>, PoolError> {
    list.unwrap_or_default()
        .iter()
        .map(|s| selector(pool, s))
        .collect()
}

/// A Kubernetes label selector as the allocator's matcher.
fn selector(pool: &str, s: &meta::LabelSelector) -> Result<LabelSelector, PoolError> {
    let match_expressions = s
        .match_expressions
        .iter()
        .flatten()
        .map(|r| {
            let operator = match r.operator.as_str() {
                "In" => Operator::In,
                "NotIn" => Operator::NotIn,
                "Exists" => Operator::Exists,
                "DoesNotExist" => Operator::DoesNotExist,
                other => {
                    return Err(PoolError::Operator {
                        pool: pool.to_owned(),
                        operator: other.to_owned(),
                    });
                }
            };
            Ok(Requirement {
                key: r.key.clone(),
                operator,
                values: r.values.clone().unwrap_or_default(),
            })
        })
        .collect::<Result<_, _>>()?;
    Ok(LabelSelector {
        match_labels: s.match_labels.clone().unwrap_or_default(),
        match_expressions,
    })
}

#[cfg(test)]
mod tests {
    use metallb_api::addresspool::Protocol;
    use metallb_api::addresspool::v1beta1::AddressPoolSpec;
    use metallb_api::ipaddresspool::{IPAddressPoolSpec, ServiceAllocation as ApiAllocation};

    use super::*;

    fn ip_pool(name: &str, addresses: &[&str]) -> IPAddressPool {
        let mut pool = IPAddressPool::new(
            name,
            IPAddressPoolSpec {
                addresses: addresses.iter().map(|a| a.to_string()).collect(),
                ..IPAddressPoolSpec::default()
            },
        );
        pool.metadata.namespace = Some("metallb-system".into());
        pool
    }

    fn legacy_pool(name: &str, addresses: &[&str]) -> AddressPool {
        let mut pool = AddressPool::new(
            name,
            AddressPoolSpec {
                protocol: Protocol::Layer2,
                addresses: addresses.iter().map(|a| a.to_string()).collect(),
                auto_assign: Some(false),
                bgp_advertisements: None,
            },
        );
        pool.metadata.namespace = Some("metallb-system".into());
        pool
    }

    #[test]
    fn both_kinds_become_pools_with_their_options() {
        let mut current = ip_pool("current", &["192.168.10.0/24", "192.168.11.1-192.168.11.2"]);
        current.spec.avoid_buggy_ips = Some(true);
        current.spec.service_allocation = Some(ApiAllocation {
            priority: Some(5),
            namespaces: Some(vec!["web".into()]),
            namespace_selectors: Some(vec![meta::LabelSelector {
                match_labels: Some([("team".to_string(), "a".to_string())].into()),
                match_expressions: Some(vec![meta::LabelSelectorRequirement {
                    key: "tier".into(),
                    operator: "In".into(),
                    values: Some(vec!["front".into()]),
                }]),
            }]),
            service_selectors: None,
        });
        let legacy = legacy_pool("legacy", &["10.0.0.0/30"]);
        let pools = pools_from("metallb-system", &[current], &[legacy]).unwrap();
        assert_eq!(pools.len(), 2);
        let current = &pools[0];
        assert_eq!(
            current
                .cidrs
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>(),
            ["192.168.10.0/24", "192.168.11.1/32", "192.168.11.2/32"]
        );
        assert!(current.auto_assign && current.avoid_buggy_ips);
        let sa = current.service_allocation.as_ref().unwrap();
        assert_eq!(sa.priority, 5);
        assert_eq!(sa.namespaces, ["web"]);
        assert_eq!(
            sa.namespace_selectors[0].match_expressions[0].operator,
            Operator::In
        );
        assert_eq!(pools[1].name, "legacy");
        assert!(!pools[1].auto_assign);
        assert_eq!(pools[1].service_allocation, None);
    }

    #[test]
    fn an_empty_service_allocation_is_kept_because_it_pins_the_pool() {
        let mut pool = ip_pool("pinned", &["10.0.0.0/24"]);
        pool.spec.service_allocation = Some(ApiAllocation::default());
        let pools = pools_from("metallb-system", &[pool], &[]).unwrap();
        assert_eq!(
            pools[0].service_allocation,
            Some(ServiceAllocation::default())
        );
    }

    #[test]
    fn pools_of_both_kinds_share_one_address_space() {
        let current = ip_pool("current", &["10.0.0.0/24"]);
        let legacy = legacy_pool("legacy", &["10.0.0.128/25"]);
        let err = pools_from("metallb-system", &[current], &[legacy]).unwrap_err();
        assert!(err.to_string().contains("overlaps"), "{err}");
    }

    #[test]
    fn a_malformed_address_refuses_the_whole_set() {
        let good = ip_pool("good", &["10.0.0.0/24"]);
        let bad = ip_pool("bad", &["10.0.1.0/33"]);
        let err = pools_from("metallb-system", &[good, bad], &[]).unwrap_err();
        assert!(err.to_string().contains("\"bad\""), "{err}");
    }

    #[test]
    fn an_unknown_selector_operator_is_refused() {
        let s = meta::LabelSelector {
            match_labels: None,
            match_expressions: Some(vec![meta::LabelSelectorRequirement {
                key: "a".into(),
                operator: "Near".into(),
                values: None,
            }]),
        };
        assert_eq!(
            selector("p", &s),
            Err(PoolError::Operator {
                pool: "p".into(),
                operator: "Near".into()
            })
        );
    }
}
