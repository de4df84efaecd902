//! Random operation sequences (seeded, reproducible) checked against invariants and against
//! a brute-force model of "lowest usable or shareable address first".

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;

use ipnet::IpNet;
use metallb_allocator::{
    AllocError, Allocator, IpFamily, IpFamilyPolicy, Labels, Pool, Port, ServiceAllocation,
    ServiceKey, ServiceRequest, TrafficPolicy, is_buggy, parse_pool_address,
};

/// xorshift64*: small, deterministic, good enough to pick operations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
}

fn pool(
    name: &str,
    entries: &[&str],
    buggy: bool,
    auto: bool,
    namespace: Option<(&str, i32)>,
) -> Pool {
    let mut pool = Pool::new(
        name,
        entries
            .iter()
            .flat_map(|e| parse_pool_address(e).unwrap())
            .collect(),
    );
    pool.avoid_buggy_ips = buggy;
    pool.auto_assign = auto;
    pool.service_allocation = namespace.map(|(ns, priority)| ServiceAllocation {
        priority,
        namespaces: vec![ns.into()],
        ..Default::default()
    });
    pool
}

/// Pool sets the sequence switches between: shrink, expand, rename, avoidBuggyIPs on and off.
fn configs() -> Vec<Vec<Pool>> {
    vec![
        vec![
            pool("a", &["10.0.0.0/29", "1000::/125"], true, true, None),
            pool("b", &["10.0.1.250-10.0.2.3"], true, true, Some(("ns1", 1))),
            pool("c", &["10.0.3.0/30", "1000::100/126"], false, false, None),
        ],
        vec![
            pool("a2", &["10.0.0.0/29", "1000::/125"], false, true, None),
            pool("b", &["10.0.1.252-10.0.2.1"], true, true, Some(("ns1", 2))),
            pool("c", &["10.0.3.0/30", "1000::100/126"], false, false, None),
        ],
        vec![
            pool("a", &["10.0.0.0/30", "1000::/126"], false, true, None),
            pool(
                "b",
                &["10.0.1.248/29", "10.0.2.0/30"],
                false,
                true,
                Some(("ns1", 0)),
            ),
            pool(
                "d",
                &["10.0.4.0/31", "1000::200/127"],
                false,
                true,
                Some(("ns0", 3)),
            ),
        ],
    ]
}

fn addresses(net: &IpNet) -> Vec<IpAddr> {
    match net {
        IpNet::V4(n) => (u32::from(n.network())..=u32::from(n.broadcast()))
            .map(|a| IpAddr::from(a.to_be_bytes()))
            .collect(),
        IpNet::V6(n) => (u128::from(n.network())..=u128::from(n.broadcast()))
            .map(|a| IpAddr::from(a.to_be_bytes()))
            .collect(),
    }
}

fn usable(pool: &Pool, ip: IpAddr) -> bool {
    !(pool.avoid_buggy_ips && is_buggy(ip))
}

fn group(req: &ServiceRequest) -> (String, String) {
    (
        req.sharing_key.clone().unwrap_or_default(),
        req.backend_key(),
    )
}

fn random_request(rng: &mut Rng) -> ServiceRequest {
    let key = ServiceKey::new(format!("ns{}", rng.below(2)), format!("s{}", rng.below(10)));
    const FAMILIES: [&[IpFamily]; 4] = [
        &[IpFamily::V4],
        &[IpFamily::V6],
        &[IpFamily::V4, IpFamily::V6],
        &[IpFamily::V6, IpFamily::V4],
    ];
    let families = *rng.pick(&FAMILIES);
    let mut req = ServiceRequest::new(key, families.to_vec());
    req.ip_family_policy = *rng.pick(&[
        IpFamilyPolicy::SingleStack,
        IpFamilyPolicy::PreferDualStack,
        IpFamilyPolicy::RequireDualStack,
    ]);
    if families.len() == 2 && req.ip_family_policy == IpFamilyPolicy::SingleStack {
        req.ip_family_policy = IpFamilyPolicy::PreferDualStack;
    }
    req.sharing_key = rng
        .pick(&[None, Some("k1"), Some("k2"), Some("")])
        .map(String::from);
    let ports = [Port::tcp(80), Port::tcp(443), Port::udp(53)];
    req.ports = (0..1 + rng.below(2)).map(|_| *rng.pick(&ports)).collect();
    if rng.chance(30) {
        req.external_traffic_policy = TrafficPolicy::Local;
        req.selector = Labels::from([("app".into(), rng.pick(&["x", "y"]).to_string())]);
    }
    if rng.chance(20) {
        req.requested_pool = Some(rng.pick(&["a", "a2", "b", "c", "d", "zzz"]).to_string());
    }
    if rng.chance(15) {
        let candidates = [
            "10.0.0.0",
            "10.0.0.3",
            "10.0.1.255",
            "10.0.2.0",
            "10.0.2.1",
            "10.0.3.1",
            "1000::1",
            "1000::101",
            "9.9.9.9",
        ];
        req.requested_ips = (0..1 + rng.below(2))
            .map(|_| rng.pick(&candidates).parse().unwrap())
            .collect();
    }
    req
}

/// Who holds each address, from the allocator's own listing.
fn holders(a: &Allocator) -> HashMap<IpAddr, Vec<ServiceKey>> {
    let mut map: HashMap<IpAddr, Vec<ServiceKey>> = HashMap::new();
    for (key, assignment) in a.assignments() {
        for ip in &assignment.ips {
            map.entry(*ip).or_default().push(key.clone());
        }
    }
    map
}

/// Brute force: the address `pool` offers `req` in `family` (first CIDR with one, lowest
/// address that is unused or shareable), given who holds what before the allocation.
fn model_candidate(
    pool: &Pool,
    family: IpFamily,
    req: &ServiceRequest,
    held: &HashMap<IpAddr, Vec<ServiceKey>>,
    shadow: &HashMap<ServiceKey, ServiceRequest>,
) -> Option<IpAddr> {
    let cidrs = pool.cidrs.iter().filter(|n| IpFamily::of_net(n) == family);
    cidrs.flat_map(addresses).find(|ip| {
        let others: Vec<&ServiceRequest> = held
            .get(ip)
            .into_iter()
            .flatten()
            .filter(|k| **k != req.key)
            .map(|k| &shadow[k])
            .collect();
        usable(pool, *ip)
            && (others.is_empty()
                || others.iter().all(|o| {
                    !group(o).0.is_empty()
                        && group(o) == group(req)
                        && !o.ports.iter().any(|p| req.ports.contains(p))
                }))
    })
}

/// Pools in MetalLB's order for automatic (or annotated) single-family allocation.
fn model_pool_order<'a>(pools: &'a [Pool], req: &ServiceRequest) -> Vec<&'a Pool> {
    if let Some(name) = &req.requested_pool {
        return pools.iter().filter(|p| p.name == *name).collect();
    }
    let mut sorted: Vec<&Pool> = pools.iter().collect();
    sorted.sort_by(|a, b| a.name.cmp(&b.name));
    let admits = |p: &Pool| {
        p.service_allocation
            .as_ref()
            .is_some_and(|sa| sa.namespaces.contains(&req.key.namespace))
    };
    let mut pinned: Vec<&Pool> = sorted
        .iter()
        .copied()
        .filter(|p| p.auto_assign && admits(p))
        .collect();
    pinned.sort_by_key(|p| match p.service_allocation.as_ref().unwrap().priority {
        0 => i32::MAX,
        n => n,
    });
    pinned.extend(
        sorted
            .iter()
            .copied()
            .filter(|p| p.auto_assign && p.service_allocation.is_none()),
    );
    pinned
}

fn check_invariants(
    a: &Allocator,
    pools: &[Pool],
    shadow: &HashMap<ServiceKey, ServiceRequest>,
    ctx: &str,
) {
    let listed: BTreeSet<&ServiceKey> = a.assignments().map(|(k, _)| k).collect();
    assert_eq!(
        listed,
        shadow.keys().collect(),
        "{ctx}: the services holding addresses"
    );
    let mut per_pool: HashMap<&str, [BTreeSet<IpAddr>; 2]> = HashMap::new();
    for (key, assignment) in a.assignments() {
        let families: BTreeSet<bool> = assignment.ips.iter().map(IpAddr::is_ipv4).collect();
        assert!(
            matches!(assignment.ips.len(), 1 | 2) && families.len() == assignment.ips.len(),
            "{ctx}: {key} {assignment:?}"
        );
        for ip in &assignment.ips {
            assert_eq!(
                a.pool_containing(*ip),
                Some(assignment.pool.as_str()),
                "{ctx}: {key} holds {ip}"
            );
            per_pool.entry(&assignment.pool).or_default()[usize::from(ip.is_ipv4())].insert(*ip);
        }
    }
    for (ip, users) in holders(a) {
        for (i, x) in users.iter().enumerate() {
            for y in &users[i + 1..] {
                let (x, y) = (&shadow[x], &shadow[y]);
                assert!(
                    !group(x).0.is_empty() && group(x) == group(y),
                    "{ctx}: {ip} shared by {} and {}",
                    x.key,
                    y.key
                );
                assert!(
                    !x.ports.iter().any(|p| y.ports.contains(p)),
                    "{ctx}: {ip} ports of {} and {}",
                    x.key,
                    y.key
                );
            }
        }
    }
    for pool in pools {
        let capacity = |v4: bool| {
            let nets = pool.cidrs.iter().filter(|n| n.addr().is_ipv4() == v4);
            nets.flat_map(addresses)
                .filter(|ip| usable(pool, *ip))
                .count() as i64
        };
        let [v6, v4] = per_pool.remove(pool.name.as_str()).unwrap_or_default();
        let c = a.counters(&pool.name).unwrap();
        assert_eq!(
            (c.assigned_ipv4, c.assigned_ipv6),
            (v4.len() as i64, v6.len() as i64),
            "{ctx}: {}",
            pool.name
        );
        assert_eq!(
            c.available_ipv4 + c.assigned_ipv4,
            capacity(true),
            "{ctx}: {} v4 capacity",
            pool.name
        );
        assert_eq!(
            c.available_ipv6 + c.assigned_ipv6,
            capacity(false),
            "{ctx}: {} v6 capacity",
            pool.name
        );
    }
}

/// Runs one seeded sequence; returns how many allocations the brute-force model confirmed.
fn run(seed: u64, steps: usize) -> usize {
    let mut rng = Rng(seed);
    let configs = configs();
    let mut current = 0;
    let mut a = Allocator::new();
    a.set_pools(configs[current].clone()).unwrap();
    let mut shadow: HashMap<ServiceKey, ServiceRequest> = HashMap::new();
    let mut confirmed = 0;
    for step in 0..steps {
        let ctx = format!("seed {seed} step {step}");
        let req = random_request(&mut rng);
        match rng.below(10) {
            0..=3 => {
                let before = holders(&a);
                let result = a.allocate(&req);
                shadow.remove(&req.key);
                let single = req.ip_families.len() == 1
                    && req.ip_family_policy != IpFamilyPolicy::RequireDualStack;
                if single && req.requested_ips.is_empty() {
                    let order = model_pool_order(&configs[current], &req);
                    let model = order.iter().find_map(|p| {
                        model_candidate(p, req.ip_families[0], &req, &before, &shadow)
                            .map(|ip| (p.name.clone(), ip))
                    });
                    match &result {
                        Ok(got) => {
                            assert_eq!(
                                Some((got.pool.clone(), got.ips[0])),
                                model,
                                "{ctx}: lowest first"
                            );
                            confirmed += 1;
                        }
                        Err(
                            AllocError::NoAvailableIps | AllocError::NoAvailableIpsInPool { .. },
                        ) => {
                            assert_eq!(model, None, "{ctx}: nothing available")
                        }
                        Err(_) => {}
                    }
                }
                if result.is_ok() {
                    shadow.insert(req.key.clone(), req);
                }
            }
            4..=5 => {
                let ips = if rng.chance(50) {
                    req.requested_ips.clone()
                } else {
                    Vec::new()
                };
                let held = a.assignment(&req.key).map(|x| x.ips.clone());
                let ips = if ips.is_empty() {
                    held.clone().unwrap_or_default()
                } else {
                    ips
                };
                if a.assign(&req, &ips).is_ok() {
                    shadow.insert(req.key.clone(), req);
                } else {
                    assert_eq!(
                        a.assignment(&req.key).map(|x| x.ips.clone()),
                        held,
                        "{ctx}: failed assign changed nothing"
                    );
                }
            }
            6..=7 => {
                let current_ips = a
                    .assignment(&req.key)
                    .map(|x| x.ips.clone())
                    .unwrap_or_default();
                match a.converge(&req, &current_ips).result {
                    Ok(_) => shadow.insert(req.key.clone(), req),
                    Err(_) => shadow.remove(&req.key),
                };
            }
            8 => {
                a.release(&req.key);
                shadow.remove(&req.key);
            }
            _ => {
                current = rng.below(configs.len());
                let changed = a.set_pools(configs[current].clone()).unwrap();
                for released in changed.released {
                    shadow.remove(&released.service);
                }
            }
        }
        check_invariants(&a, &configs[current], &shadow, &ctx);
    }
    confirmed
}

#[test]
fn random_operation_sequences_keep_every_invariant() {
    let confirmed: usize = (1..=30u64)
        .map(|seed| run(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15), 1500))
        .sum();
    assert!(
        confirmed > 1000,
        "the model checked only {confirmed} allocations"
    );
}
