//! The allocator: who holds which address, and the rules for handing out more.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;

use crate::addr::{from_u128, to_u128};
use crate::error::{AllocError, ConfigError};
use crate::family::{Kind, Want, other};
use crate::model::{Assignment, IpFamily, Pool, PoolCounters, Port, ServiceKey, ServiceRequest};
use crate::pool::{Block, PoolState, validate};
use crate::selector::Labels;

/// Tracks pools and the addresses services hold, and hands out addresses with MetalLB's rules.
///
/// Allocation and release cost a few ordered-map operations per pool and CIDR: logarithmic in
/// the pool size. Searching an address that can be shared also walks the addresses already
/// shared under the same sharing key, below the lowest free address.
#[derive(Debug, Default)]
pub struct Allocator {
    /// Sorted by name, so every walk over pools is deterministic.
    pools: Vec<PoolState>,
    by_name: HashMap<String, usize>,
    /// First address of every CIDR -> (pool, block), to find the CIDR holding an address.
    blocks: BTreeMap<IpAddr, (usize, usize)>,
    services: HashMap<ServiceKey, Held>,
    ips: HashMap<IpAddr, IpUse>,
    /// Addresses held under a non-empty sharing key, by key: the candidates for sharing.
    shareable: HashMap<Group, BTreeSet<IpAddr>>,
}

/// The sharing identity of a service: the `allow-shared-ip` key and the backend key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Group {
    sharing: String,
    backend: String,
}

impl Group {
    fn of(req: &ServiceRequest) -> Self {
        Self {
            sharing: req.sharing_key.clone().unwrap_or_default(),
            backend: req.backend_key(),
        }
    }

    /// Two services may hold one address only with the same non-empty sharing key and the
    /// same backend key.
    fn shares_with(&self, other: &Self) -> bool {
        !self.sharing.is_empty() && self == other
    }
}

#[derive(Debug)]
struct Held {
    assignment: Assignment,
    ports: Vec<Port>,
    group: Group,
    /// Kept to re-check `serviceAllocation` when the pools change.
    namespace_labels: Labels,
    labels: Labels,
}

/// The users of one held address. All users share one group: sharing needs an equal group.
#[derive(Debug)]
struct IpUse {
    pool: usize,
    block: usize,
    group: Group,
    users: BTreeSet<ServiceKey>,
    ports: HashMap<Port, ServiceKey>,
}

/// What a change of pools did to existing assignments.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PoolsChanged {
    /// Services that lost their addresses; they need a new allocation.
    pub released: Vec<Released>,
    /// Services whose addresses now belong to a pool with another name (rename, split).
    pub moved: Vec<Moved>,
}

/// A service whose addresses are no longer valid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Released {
    /// The service.
    pub service: ServiceKey,
    /// What it held.
    pub previous: Assignment,
    /// Why it may not keep it (for the `ClearAssignment` event).
    pub reason: AllocError,
}

/// A service that keeps its addresses under another pool name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Moved {
    /// The service.
    pub service: ServiceKey,
    /// Old pool name.
    pub from: String,
    /// New pool name.
    pub to: String,
}

impl Allocator {
    /// An allocator without pools.
    pub fn new() -> Self {
        Self::default()
    }

    /// Replaces the pools. Every assignment still valid under the new pools is kept (with the
    /// new pool name if it moved); the others are released and reported. A refused pool set
    /// changes nothing.
    pub fn set_pools(&mut self, mut pools: Vec<Pool>) -> Result<PoolsChanged, ConfigError> {
        validate(&pools)?;
        pools.sort_by(|a, b| a.name.cmp(&b.name));
        self.pools = pools.into_iter().map(PoolState::new).collect();
        self.by_name = self
            .pools
            .iter()
            .enumerate()
            .map(|(i, p)| (p.spec.name.clone(), i))
            .collect();
        self.blocks = self.block_index();
        self.ips.clear();
        self.shareable.clear();
        let mut held: Vec<(ServiceKey, Held)> = self.services.drain().collect();
        held.sort_by(|a, b| a.0.cmp(&b.0));

        let mut changed = PoolsChanged::default();
        for (service, mut entry) in held {
            let ips = &entry.assignment.ips;
            let verdict = match self.pool_for(ips) {
                None => Err(AllocError::NotAllowed { ips: ips.clone() }),
                Some(p)
                    if !self.pools[p].admits(&service, &entry.namespace_labels, &entry.labels) =>
                {
                    Err(AllocError::PoolNotCompatible {
                        pool: self.pools[p].spec.name.clone(),
                    })
                }
                Some(p) => Ok(p),
            };
            match verdict {
                Err(reason) => changed.released.push(Released {
                    service,
                    previous: entry.assignment,
                    reason,
                }),
                Ok(pool) => {
                    let name = &self.pools[pool].spec.name;
                    if *name != entry.assignment.pool {
                        let from = std::mem::replace(&mut entry.assignment.pool, name.clone());
                        changed.moved.push(Moved {
                            service: service.clone(),
                            from,
                            to: name.clone(),
                        });
                    }
                    self.occupy(service, entry);
                }
            }
        }
        Ok(changed)
    }

    /// Gives the service exactly these addresses (MetalLB's `Assign`): a requested address, or
    /// the addresses in the Service's status when the controller rebuilds its state after a
    /// restart. They must be usable addresses of one pool that admits the service, at most one
    /// per family, and shareable under the sharing rules. On success the service's previous
    /// addresses are released; on failure nothing changes.
    pub fn assign(
        &mut self,
        req: &ServiceRequest,
        ips: &[IpAddr],
    ) -> Result<Assignment, AllocError> {
        let pool = self
            .pool_for(ips)
            .ok_or_else(|| AllocError::NotAllowed { ips: ips.to_vec() })?;
        if !self.pools[pool].admits(&req.key, &req.namespace_labels, &req.labels) {
            return Err(AllocError::PoolNotCompatible {
                pool: self.pools[pool].spec.name.clone(),
            });
        }
        Kind::of_ips(ips)?;
        let group = Group::of(req);
        for ip in ips {
            self.check_sharing(&req.key, *ip, &req.ports, &group)?;
        }
        Ok(self.commit(req, pool, ips.to_vec(), group))
    }

    /// Allocates for a service, as MetalLB's `allocateIPs` after clearing the service: its
    /// requested addresses if any (also checked against the `address-pool` annotation), else
    /// the lowest usable address of the annotated pool (autoAssign ignored), else automatic:
    /// pools restricted by `serviceAllocation` that admit the service, by priority, then pools
    /// without `serviceAllocation`; only pools with autoAssign. Whatever the service held
    /// before is released first, even when this fails.
    pub fn allocate(&mut self, req: &ServiceRequest) -> Result<Assignment, AllocError> {
        self.release(&req.key);
        let want = Want::of(req)?;
        if !req.requested_ips.is_empty() {
            if Kind::of_ips(&req.requested_ips)? != Kind::of_service(req) {
                return Err(AllocError::FamilyMismatch {
                    ips: req.requested_ips.clone(),
                });
            }
            let assignment = self.assign(req, &req.requested_ips)?;
            if let Some(pool) = req
                .requested_pool
                .as_ref()
                .filter(|p| **p != assignment.pool)
            {
                self.release(&req.key);
                return Err(AllocError::PoolMismatch {
                    ips: req.requested_ips.clone(),
                    pool: pool.clone(),
                });
            }
            return Ok(assignment);
        }
        let group = Group::of(req);
        if let Some(name) = &req.requested_pool {
            let pool = *self
                .by_name
                .get(name)
                .ok_or_else(|| AllocError::UnknownPool(name.clone()))?;
            // Checked before looking for an address, so the reason is the same whether the
            // pool is full or not.
            if !self.pools[pool].admits(&req.key, &req.namespace_labels, &req.labels) {
                return Err(AllocError::PoolNotCompatible { pool: name.clone() });
            }
            let ips = self.offer(pool, want, &group, &req.ports).ok_or_else(|| {
                AllocError::NoAvailableIpsInPool {
                    pool: name.clone(),
                    family: want.name(),
                }
            })?;
            return Ok(self.commit(req, pool, ips, group));
        }
        let (pinned, unconstrained) = self.candidate_pools(req);
        let best = self
            .best_pool(&pinned, want, &group, &req.ports)
            .or_else(|| self.best_pool(&unconstrained, want, &group, &req.ports));
        let (pool, ips) = best.ok_or(AllocError::NoAvailableIps)?;
        Ok(self.commit(req, pool, ips, group))
    }

    /// Adds an address of the missing family, from the same pool, to a service holding one
    /// address (the `PreferDualStack` upgrade).
    pub(crate) fn add_family(&mut self, req: &ServiceRequest) -> Result<IpAddr, AllocError> {
        let held = &self.services[&req.key].assignment;
        let (existing, name) = (held.ips[0], held.pool.clone());
        let family = other(IpFamily::of(existing));
        let pool = self.by_name[&name];
        let ip = self
            .candidate(pool, family, &Group::of(req), &req.ports)
            .ok_or(AllocError::NoAvailableIpsInPool {
                pool: name,
                family: family.name(),
            })?;
        self.assign(req, &[existing, ip])?;
        Ok(ip)
    }

    /// Frees the service's addresses (an address shared with others stays held by them).
    pub fn release(&mut self, service: &ServiceKey) -> Option<Assignment> {
        let held = self.services.remove(service)?;
        for ip in &held.assignment.ips {
            let ip_use = self
                .ips
                .get_mut(ip)
                .expect("every held address is recorded");
            ip_use.users.remove(service);
            for port in &held.ports {
                if ip_use.ports.get(port) == Some(service) {
                    ip_use.ports.remove(port);
                }
            }
            if ip_use.users.is_empty() {
                let ip_use = self.ips.remove(ip).expect("present: looked up above");
                self.unindex(*ip, &ip_use.group);
                let pool = &mut self.pools[ip_use.pool];
                pool.blocks[ip_use.block].free.give(to_u128(*ip));
                pool.count(IpFamily::of(*ip), -1);
            }
        }
        Some(held.assignment)
    }

    /// What the service holds.
    pub fn assignment(&self, service: &ServiceKey) -> Option<&Assignment> {
        self.services.get(service).map(|h| &h.assignment)
    }

    /// Every service with addresses, in no particular order.
    pub fn assignments(&self) -> impl Iterator<Item = (&ServiceKey, &Assignment)> {
        self.services.iter().map(|(k, h)| (k, &h.assignment))
    }

    /// The pools, sorted by name.
    pub fn pools(&self) -> impl Iterator<Item = &Pool> {
        self.pools.iter().map(|p| &p.spec)
    }

    /// Status counts of a pool.
    pub fn counters(&self, pool: &str) -> Option<PoolCounters> {
        self.by_name.get(pool).map(|&i| self.pools[i].counters())
    }

    /// The pool of which `ip` is a usable address.
    pub fn pool_containing(&self, ip: IpAddr) -> Option<&str> {
        self.locate(ip)
            .map(|(pool, _)| self.pools[pool].spec.name.as_str())
    }

    pub(crate) fn has_pools(&self) -> bool {
        !self.pools.is_empty()
    }

    fn block_index(&self) -> BTreeMap<IpAddr, (usize, usize)> {
        let mut index = BTreeMap::new();
        for (p, pool) in self.pools.iter().enumerate() {
            for (b, block) in pool.blocks.iter().enumerate() {
                index.insert(from_u128(block.family == IpFamily::V4, block.first), (p, b));
            }
        }
        index
    }

    /// The (pool, block) of which `ip` is a usable address.
    fn locate(&self, ip: IpAddr) -> Option<(usize, usize)> {
        let (_, &(pool, block)) = self.blocks.range(..=ip).next_back()?;
        self.pools[pool].blocks[block]
            .holds(ip)
            .then_some((pool, block))
    }

    /// The one pool holding all of `ips` (none when empty or spread over pools).
    fn pool_for(&self, ips: &[IpAddr]) -> Option<usize> {
        let mut pools = ips.iter().map(|ip| self.locate(*ip).map(|(p, _)| p));
        let first = pools.next()??;
        pools.all(|p| p == Some(first)).then_some(first)
    }

    /// MetalLB's `checkSharing`: an address in use may be joined by a service of the same
    /// group whose ports do not clash; its sole user may also change group in place.
    fn check_sharing(
        &self,
        service: &ServiceKey,
        ip: IpAddr,
        ports: &[Port],
        group: &Group,
    ) -> Result<(), AllocError> {
        let Some(ip_use) = self.ips.get(&ip) else {
            return Ok(());
        };
        if !ip_use.group.shares_with(group) {
            let others: Vec<ServiceKey> = ip_use
                .users
                .iter()
                .filter(|u| *u != service)
                .cloned()
                .collect();
            if !others.is_empty() {
                return Err(AllocError::SharingConflict {
                    service: service.clone(),
                    ip,
                    others,
                });
            }
        }
        match ports.iter().find_map(|port| {
            ip_use
                .ports
                .get(port)
                .filter(|o| *o != service)
                .map(|o| (port, o))
        }) {
            Some((port, owner)) => Err(AllocError::PortInUse {
                port: *port,
                ip,
                owner: owner.clone(),
            }),
            None => Ok(()),
        }
    }

    /// Pools for automatic allocation: those with `serviceAllocation` admitting the service
    /// ("pinned", by priority with unset last, then name), and those without.
    fn candidate_pools(&self, req: &ServiceRequest) -> (Vec<usize>, Vec<usize>) {
        let mut pinned = Vec::new();
        let mut unconstrained = Vec::new();
        for (i, pool) in self
            .pools
            .iter()
            .enumerate()
            .filter(|(_, p)| p.spec.auto_assign)
        {
            match &pool.spec.service_allocation {
                None => unconstrained.push(i),
                Some(sa) if sa.admits(&req.key.namespace, &req.namespace_labels, &req.labels) => {
                    pinned.push(i)
                }
                Some(_) => {}
            }
        }
        let rank = |i: &usize| match self.pools[*i]
            .spec
            .service_allocation
            .as_ref()
            .map_or(0, |sa| sa.priority)
        {
            p if p > 0 => p,
            _ => i32::MAX,
        };
        // Stable: equal priorities keep name order.
        pinned.sort_by_key(rank);
        (pinned, unconstrained)
    }

    /// MetalLB's `findBestPoolForService`: the first pool offering what the service wants;
    /// for a preferred dual-stack service without such a pool, the first pool offering the
    /// primary family, else the first offering the other one.
    fn best_pool(
        &self,
        pools: &[usize],
        want: Want,
        group: &Group,
        ports: &[Port],
    ) -> Option<(usize, Vec<IpAddr>)> {
        let Want::Both { primary, required } = want else {
            return pools
                .iter()
                .find_map(|&p| self.offer(p, want, group, ports).map(|ips| (p, ips)));
        };
        let mut fallback: [Option<(usize, IpAddr)>; 2] = [None, None];
        for &p in pools {
            let (v4, v6) = (
                self.candidate(p, IpFamily::V4, group, ports),
                self.candidate(p, IpFamily::V6, group, ports),
            );
            if let (Some(a), Some(b)) = (v4, v6) {
                return Some((p, vec![a, b]));
            }
            if !required {
                for (slot, family) in fallback.iter_mut().zip([primary, other(primary)]) {
                    let ip = if family == IpFamily::V4 { v4 } else { v6 };
                    if slot.is_none() {
                        *slot = ip.map(|ip| (p, ip));
                    }
                }
            }
        }
        let [first, second] = fallback;
        first.or(second).map(|(p, ip)| (p, vec![ip]))
    }

    /// The addresses `pool` would give for `want`.
    fn offer(&self, pool: usize, want: Want, group: &Group, ports: &[Port]) -> Option<Vec<IpAddr>> {
        want.select(
            self.candidate(pool, IpFamily::V4, group, ports),
            self.candidate(pool, IpFamily::V6, group, ports),
        )
    }

    /// The address of `family` the pool would give: in the first CIDR of that family that has
    /// one, the lowest address that is free or shareable by this group and ports.
    fn candidate(
        &self,
        pool: usize,
        family: IpFamily,
        group: &Group,
        ports: &[Port],
    ) -> Option<IpAddr> {
        self.pools[pool]
            .blocks
            .iter()
            .filter(|b| b.family == family)
            .find_map(|block| self.block_candidate(block, group, ports))
    }

    fn block_candidate(&self, block: &Block, group: &Group, ports: &[Port]) -> Option<IpAddr> {
        let v4 = block.family == IpFamily::V4;
        let free = block.free.lowest();
        let shared = (!group.sharing.is_empty())
            .then(|| self.shareable.get(group))
            .flatten()
            .and_then(|set| {
                // Only addresses below the lowest free one can win.
                let below = match free {
                    Some(f) if f == block.first => return None,
                    Some(f) => f - 1,
                    None => block.last,
                };
                let range = from_u128(v4, block.first)..=from_u128(v4, below);
                set.range(range)
                    .copied()
                    .find(|ip| !ports.iter().any(|p| self.ips[ip].ports.contains_key(p)))
            });
        shared.or_else(|| free.map(|f| from_u128(v4, f)))
    }

    /// Records a checked assignment, replacing what the service held.
    fn commit(
        &mut self,
        req: &ServiceRequest,
        pool: usize,
        ips: Vec<IpAddr>,
        group: Group,
    ) -> Assignment {
        self.release(&req.key);
        let assignment = Assignment {
            pool: self.pools[pool].spec.name.clone(),
            ips,
        };
        let held = Held {
            assignment: assignment.clone(),
            ports: req.ports.clone(),
            group,
            namespace_labels: req.namespace_labels.clone(),
            labels: req.labels.clone(),
        };
        self.occupy(req.key.clone(), held);
        assignment
    }

    /// Marks the held addresses used by `service`; they are known valid and shareable.
    fn occupy(&mut self, service: ServiceKey, held: Held) {
        for ip in &held.assignment.ips {
            if !self.ips.contains_key(ip) {
                let (p, block) = self
                    .locate(*ip)
                    .expect("checked: a usable address of the pool");
                let state = &mut self.pools[p];
                let taken = state.blocks[block].free.take(to_u128(*ip));
                debug_assert!(taken, "an unused address is free");
                state.count(IpFamily::of(*ip), 1);
                if !held.group.sharing.is_empty() {
                    self.shareable
                        .entry(held.group.clone())
                        .or_default()
                        .insert(*ip);
                }
                let ip_use = IpUse {
                    pool: p,
                    block,
                    group: held.group.clone(),
                    users: BTreeSet::new(),
                    ports: HashMap::new(),
                };
                self.ips.insert(*ip, ip_use);
            }
            let ip_use = self.ips.get_mut(ip).expect("inserted above");
            ip_use.users.insert(service.clone());
            ip_use
                .ports
                .extend(held.ports.iter().map(|p| (*p, service.clone())));
        }
        self.services.insert(service, held);
    }

    fn unindex(&mut self, ip: IpAddr, group: &Group) {
        if let Some(set) = self.shareable.get_mut(group) {
            set.remove(&ip);
            if set.is_empty() {
                self.shareable.remove(group);
            }
        }
    }
}
