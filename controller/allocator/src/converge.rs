//! One service's whole convergence (MetalLB's `convergeBalancer` from the family checks on):
//! keep what is still valid, upgrade to dual stack, or allocate anew.

use std::net::IpAddr;

use crate::allocator::Allocator;
use crate::error::AllocError;
use crate::family::{Kind, Want};
use crate::model::{Assignment, IpFamilyPolicy, ServiceRequest};

/// What [`Allocator::converge`] did, in order. Each step maps to one of MetalLB's events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// The addresses the service had were dropped.
    Cleared {
        /// The dropped addresses.
        ips: Vec<IpAddr>,
        /// Why.
        reason: ClearReason,
    },
    /// `PreferDualStack`: an address of the missing family was added from the same pool
    /// (`IPAllocated`, `Assigned additional IP "<ip>"`).
    AddedFamily(IpAddr),
    /// `PreferDualStack`: the pool has no address of the missing family
    /// (`AdditionalAssignFailed`, `cannot assign additional IP in PreferDualStack: <err>`).
    AddFamilyFailed(AllocError),
    /// New addresses were allocated (`IPAllocated`, `Assigned IP [...]`).
    Allocated(Assignment),
}

/// Why a service's current addresses were dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClearReason {
    /// Their family no longer matches the service's (MetalLB logs it, no event).
    FamilyChanged,
    /// The configuration no longer allows them (`ClearAssignment`, `current IP for "<key>"
    /// not allowed by config, will attempt for new IP assignment: <err>`).
    NotAllowed(AllocError),
    /// The `address-pool` annotation names another pool (no event).
    DifferentPool,
    /// The requested addresses differ from the current ones (no event).
    DifferentIps,
}

/// The outcome of [`Allocator::converge`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Converged {
    /// What happened, in order.
    pub steps: Vec<Step>,
    /// The addresses to write to `status.loadBalancer.ingress` and the pool for the
    /// `ip-allocated-from-pool` annotation; on error the status is cleared and the error goes
    /// into `AllocationFailed` (or `not enough clusterips` for
    /// [`AllocError::NotEnoughClusterIps`]; no event for [`AllocError::NoPools`] and
    /// [`AllocError::NoClusterIps`]).
    pub result: Result<Assignment, AllocError>,
}

impl Allocator {
    /// Brings one LoadBalancer service to its end state, given the addresses currently in its
    /// `status.loadBalancer.ingress`.
    ///
    /// Current addresses are re-validated (this is also how the state is rebuilt after a
    /// restart: converge every service that has addresses before any that has none, so no
    /// running service loses its address to a pending one). They are dropped when their family
    /// no longer matches, the configuration refuses them, the `address-pool` annotation names
    /// another pool, or other addresses are requested. A `PreferDualStack` dual-stack service
    /// holding one address gets the other family from the same pool when it has one. A service
    /// left without addresses is allocated with [`Allocator::allocate`].
    pub fn converge(&mut self, req: &ServiceRequest, current: &[IpAddr]) -> Converged {
        let mut steps = Vec::new();
        let result = self.converge_steps(req, current, &mut steps);
        if result.is_err() {
            self.release(&req.key);
        }
        Converged { steps, result }
    }

    fn converge_steps(
        &mut self,
        req: &ServiceRequest,
        current: &[IpAddr],
        steps: &mut Vec<Step>,
    ) -> Result<Assignment, AllocError> {
        if !self.has_pools() {
            return Err(AllocError::NoPools);
        }
        Want::of(req)?;
        let mut held = current.to_vec();
        if !held.is_empty()
            && let Some(reason) = self.keep_or_clear(req, &held)
        {
            self.release(&req.key);
            steps.push(Step::Cleared {
                ips: std::mem::take(&mut held),
                reason,
            });
        }
        let dual_cluster = Kind::of_service(req) == Kind::Dual;
        if held.len() == 1
            && dual_cluster
            && req.ip_family_policy == IpFamilyPolicy::PreferDualStack
        {
            match self.add_family(req) {
                Ok(ip) => steps.push(Step::AddedFamily(ip)),
                Err(err) => steps.push(Step::AddFamilyFailed(err)),
            }
        }
        if held.is_empty() {
            let assignment = self.allocate(req)?;
            steps.push(Step::Allocated(assignment.clone()));
            return Ok(assignment);
        }
        Ok(self
            .assignment(&req.key)
            .cloned()
            .expect("kept or re-assigned above"))
    }

    /// Re-validates the current addresses; `None` when the service keeps them (now recorded).
    fn keep_or_clear(&mut self, req: &ServiceRequest, held: &[IpAddr]) -> Option<ClearReason> {
        if family_changed(req, held) {
            return Some(ClearReason::FamilyChanged);
        }
        let assignment = match self.assign(req, held) {
            Ok(assignment) => assignment,
            Err(err) => return Some(ClearReason::NotAllowed(err)),
        };
        if req
            .requested_pool
            .as_ref()
            .is_some_and(|p| *p != assignment.pool)
        {
            return Some(ClearReason::DifferentPool);
        }
        if !req.requested_ips.is_empty() && !same_addresses(&req.requested_ips, held) {
            return Some(ClearReason::DifferentIps);
        }
        None
    }
}

/// Whether held addresses no longer fit the service's cluster IP family. A dual-stack
/// `PreferDualStack` service may hold a single family.
fn family_changed(req: &ServiceRequest, held: &[IpAddr]) -> bool {
    let service = Kind::of_service(req);
    match Kind::of_ips(held) {
        Err(_) => true,
        Ok(kind) if kind == service => false,
        Ok(_) => {
            !(service == Kind::Dual && req.ip_family_policy == IpFamilyPolicy::PreferDualStack)
        }
    }
}

/// The same addresses, in any order.
fn same_addresses(a: &[IpAddr], b: &[IpAddr]) -> bool {
    let (mut a, mut b) = (a.to_vec(), b.to_vec());
    a.sort_unstable();
    b.sort_unstable();
    a == b
}
