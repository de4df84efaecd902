//! One Service's convergence, MetalLB's `convergeBalancer`: the allocator's decision for a
//! Service turned into the events to emit and the status to hold. Pure: the allocator is
//! plain data, nothing here talks to the API server.

use std::net::IpAddr;

use metallb_allocator::{
    AllocError, Allocator, Assignment, ClearReason, IpFamilyPolicy, Labels, ServiceRequest, Step,
};
use serde_json::{Value, json};

use crate::events::{self, Notice};
use crate::service::{Balancer, Handling, ObservedStatus, ServiceView, legacy_key, new_key};

/// What a Service's status and pool annotation should be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Desired {
    /// Not ours and not held: leave whatever is there.
    Untouched,
    /// These addresses from this pool.
    Balanced(Assignment),
    /// No address and no pool annotation.
    Cleared,
}

/// The outcome of converging one Service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Events to emit, in order.
    pub notices: Vec<Notice>,
    /// The status to hold.
    pub desired: Desired,
}

impl Decision {
    fn quiet(desired: Desired) -> Self {
        Self {
            notices: Vec::new(),
            desired,
        }
    }
}

/// Converges one Service against the allocator. Addresses the allocator already records for
/// the Service are its current ones; otherwise those in its status are (after a restart, or
/// after a pool change released them), so a Service keeps what is still valid.
pub fn decide(alloc: &mut Allocator, view: &ServiceView, namespace_labels: &Labels) -> Decision {
    let balancer = match &view.handling {
        Handling::Balance(balancer) => balancer,
        Handling::NotLoadBalancer => {
            alloc.release(&view.key);
            return Decision::quiet(Desired::Cleared);
        }
        // Not ours; if it was (a class cannot change, but the type can and then the class is
        // dropped), give back what it held.
        Handling::NotOurs => {
            return match alloc.release(&view.key) {
                Some(_) => Decision::quiet(Desired::Cleared),
                None => Decision::quiet(Desired::Untouched),
            };
        }
    };
    let mut notices = Vec::new();
    let (current, family_notice) = match alloc.assignment(&view.key) {
        Some(held) => (held.ips.clone(), None),
        None => match view.status.ips() {
            Ok(ips) => (ips, None),
            Err(detail) => (
                Vec::new(),
                Some(events::lb_ips_family(&view.status.ingress, &detail)),
            ),
        },
    };
    let req = balancer.request(&view.key, namespace_labels);
    if let Err(err) = &balancer.requested_ips {
        return unreadable_request(alloc, view, balancer, &req, current, err);
    }
    let converged = alloc.converge(&req, &current);
    let setup_error = matches!(
        converged.result,
        Err(AllocError::NoPools | AllocError::NoClusterIps | AllocError::NotEnoughClusterIps)
    );
    if !setup_error {
        notices.extend(family_notice);
    }
    for step in &converged.steps {
        notices.extend(step_notice(view, step));
    }
    let desired = match converged.result {
        Ok(assignment) => Desired::Balanced(assignment),
        Err(AllocError::NoPools | AllocError::NoClusterIps) => Desired::Cleared,
        Err(AllocError::NotEnoughClusterIps) => {
            notices.push(events::not_enough_cluster_ips(&balancer.cluster_ips));
            Desired::Cleared
        }
        Err(err) => {
            notices.push(events::allocation_failed(&view.key, &err));
            Desired::Cleared
        }
    };
    Decision { notices, desired }
}

/// The requested addresses cannot be read. As in MetalLB, after the checks that come first
/// (pools, cluster IPs), a Service without addresses fails allocation, and one holding
/// addresses keeps those still valid and gets `LoadBalancerFailed`.
fn unreadable_request(
    alloc: &mut Allocator,
    view: &ServiceView,
    balancer: &Balancer,
    req: &ServiceRequest,
    current: Vec<IpAddr>,
    err: &AllocError,
) -> Decision {
    if alloc.pools().next().is_none() || balancer.ip_families.is_empty() {
        alloc.release(&view.key);
        return Decision::quiet(Desired::Cleared);
    }
    if balancer.ip_family_policy == IpFamilyPolicy::RequireDualStack
        && balancer.ip_families.len() < 2
    {
        alloc.release(&view.key);
        return Decision {
            notices: vec![events::not_enough_cluster_ips(&balancer.cluster_ips)],
            desired: Desired::Cleared,
        };
    }
    if current.is_empty() {
        alloc.release(&view.key);
        return Decision {
            notices: vec![events::allocation_failed(&view.key, err)],
            desired: Desired::Cleared,
        };
    }
    let mut notices = Vec::new();
    let kept = match alloc.assign(req, &current) {
        Err(reason) => {
            notices.push(events::clear_assignment(&view.key, &reason));
            None
        }
        Ok(held) if req.requested_pool.as_ref().is_some_and(|p| *p != held.pool) => None,
        Ok(held) => Some(held),
    };
    notices.push(events::load_balancer_failed(err));
    let desired = match kept {
        Some(held) => Desired::Balanced(held),
        None => {
            alloc.release(&view.key);
            Desired::Cleared
        }
    };
    Decision { notices, desired }
}

/// The event of one convergence step, if it has one.
fn step_notice(view: &ServiceView, step: &Step) -> Option<Notice> {
    match step {
        Step::Cleared {
            reason: ClearReason::NotAllowed(err),
            ..
        } => Some(events::clear_assignment(&view.key, err)),
        Step::Cleared { .. } => None,
        Step::AddedFamily(ip) => Some(events::additional_ip(*ip)),
        Step::AddFamilyFailed(err) => Some(events::additional_assign_failed(err)),
        Step::Allocated(assignment) => Some(events::ip_allocated(&assignment.ips)),
    }
}

/// Whether the Service's status and annotations differ from `desired`.
pub fn needs_write(observed: &ObservedStatus, desired: &Desired) -> bool {
    match desired {
        Desired::Untouched => false,
        Desired::Balanced(assignment) => {
            observed.legacy_pool
                || observed.pool.as_deref() != Some(assignment.pool.as_str())
                || observed.ingress.len() != assignment.ips.len()
                || observed
                    .ingress
                    .iter()
                    .zip(&assignment.ips)
                    .any(|(text, ip)| text.parse::<IpAddr>().ok() != Some(*ip))
        }
        Desired::Cleared => {
            observed.legacy_pool || observed.pool.is_some() || !observed.ingress.is_empty()
        }
    }
}

/// What the Service will look like once `desired` is written.
pub fn written(desired: &Desired, before: &ObservedStatus) -> ObservedStatus {
    match desired {
        Desired::Untouched => before.clone(),
        Desired::Balanced(assignment) => ObservedStatus {
            ingress: assignment.ips.iter().map(ToString::to_string).collect(),
            pool: Some(assignment.pool.clone()),
            legacy_pool: false,
        },
        Desired::Cleared => ObservedStatus::default(),
    }
}

/// The merge patch of the status subresource that writes `desired` whole (so a newer patch
/// can replace an older one that was never sent). The UID makes it fail on a Service that was
/// deleted and created again under the same name.
pub fn status_patch(uid: &str, desired: &Desired) -> Value {
    let pool_key = new_key(metallb_api::annotations::IP_ALLOCATED_FROM_POOL);
    let legacy_pool_key = legacy_key(metallb_api::annotations::IP_ALLOCATED_FROM_POOL);
    let (pool, load_balancer) = match desired {
        Desired::Balanced(assignment) => {
            let ingress: Vec<Value> = assignment
                .ips
                .iter()
                .map(|ip| json!({"ip": ip.to_string()}))
                .collect();
            (json!(assignment.pool), json!({"ingress": ingress}))
        }
        Desired::Cleared | Desired::Untouched => (Value::Null, Value::Null),
    };
    json!({
        "metadata": {
            "uid": uid,
            "annotations": {pool_key: pool, legacy_pool_key: Value::Null},
        },
        "status": {"loadBalancer": load_balancer},
    })
}

#[cfg(test)]
mod tests;
