//! Allocation throughput of `metallb-allocator` next to a linear-scan allocator (the way
//! MetalLB walks a CIDR from its first address), measured in the same run.
//!
//! `cargo run --release -p metallb-allocator --example bench`
//!
//! Two figures per case: "fill" allocates N services into an empty pool (average rate), "at N"
//! allocates 1,000 more services into a pool already holding N - 1,000 (the marginal cost once
//! the pool is busy). A linear fill that would run past the time budget stops early and
//! reports the rate of the part it did, which flatters it (early allocations are the cheap
//! ones).

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use ipnet::IpNet;
use metallb_allocator::{Allocator, IpFamily, Pool, ServiceKey, ServiceRequest};

const BUDGET: Duration = Duration::from_secs(5);
const TAIL: usize = 1_000;

/// The baseline: try every address from the first, skip those in use.
struct LinearScan {
    first: u128,
    last: u128,
    v4: bool,
    used: HashMap<IpAddr, ServiceKey>,
}

impl LinearScan {
    fn new(net: IpNet) -> Self {
        let v4 = net.addr().is_ipv4();
        let (first, last) = match net {
            IpNet::V4(n) => (
                u128::from(u32::from(n.network())),
                u128::from(u32::from(n.broadcast())),
            ),
            IpNet::V6(n) => (u128::from(n.network()), u128::from(n.broadcast())),
        };
        Self {
            first,
            last,
            v4,
            used: HashMap::new(),
        }
    }

    fn ip(&self, value: u128) -> IpAddr {
        if self.v4 {
            IpAddr::from((value as u32).to_be_bytes())
        } else {
            IpAddr::from(value.to_be_bytes())
        }
    }

    fn allocate(&mut self, req: &ServiceRequest) -> Option<IpAddr> {
        let ip = (self.first..=self.last)
            .map(|v| self.ip(v))
            .find(|ip| !self.used.contains_key(ip))?;
        self.used.insert(ip, req.key.clone());
        Some(ip)
    }
}

fn requests(count: usize, family: IpFamily) -> Vec<ServiceRequest> {
    (0..count)
        .map(|i| {
            ServiceRequest::new(
                ServiceKey::new(format!("ns{}", i % 50), format!("svc-{i}")),
                vec![family],
            )
        })
        .collect()
}

/// Allocations per second of `allocate` over `reqs`, and whether the budget cut it short.
fn rate(
    reqs: &[ServiceRequest],
    mut allocate: impl FnMut(&ServiceRequest),
) -> (f64, Option<usize>) {
    #[expect(clippy::disallowed_methods, reason = "a benchmark measures wall time")]
    let start = Instant::now();
    for (done, req) in reqs.iter().enumerate() {
        allocate(req);
        if done % 256 == 0 && start.elapsed() > BUDGET {
            return (
                (done + 1) as f64 / start.elapsed().as_secs_f64(),
                Some(done + 1),
            );
        }
    }
    (reqs.len() as f64 / start.elapsed().as_secs_f64(), None)
}

fn ours(net: IpNet) -> Allocator {
    let mut allocator = Allocator::new();
    allocator
        .set_pools(vec![Pool::new("bench", vec![net])])
        .expect("one valid pool");
    allocator
}

fn show((rate, cut): (f64, Option<usize>)) -> String {
    match cut {
        None => format!("{rate:>12.0}"),
        Some(done) => format!("{rate:>12.0} (stopped after {done})"),
    }
}

fn main() {
    let cases = [
        ("IPv4 10.0.0.0/15", "10.0.0.0/15", IpFamily::V4),
        ("IPv6 fd00::/64", "fd00::/64", IpFamily::V6),
    ];
    println!("| pool | services | measure | metallb-allocator allocs/s | linear scan allocs/s |");
    println!("|---|---:|---|---:|---:|");
    for (label, cidr, family) in cases {
        let net: IpNet = cidr.parse().expect("valid CIDR");
        for count in [10_000, 100_000] {
            let reqs = requests(count, family);

            let mut a = ours(net);
            let fill_ours = rate(&reqs, |r| {
                a.allocate(r).expect("room left");
            });
            let mut b = LinearScan::new(net);
            let fill_linear = rate(&reqs, |r| {
                b.allocate(r).expect("room left");
            });
            println!(
                "| {label} | {count} | fill | {} | {} |",
                show(fill_ours),
                show(fill_linear)
            );

            // Busy pool: hold N - TAIL addresses, then time the last TAIL allocations.
            let (held, tail) = reqs.split_at(count - TAIL);
            let mut a = ours(net);
            let mut b = LinearScan::new(net);
            for (i, req) in held.iter().enumerate() {
                let ip = b.ip(b.first + i as u128);
                a.assign(req, &[ip]).expect("free address");
                b.used.insert(ip, req.key.clone());
            }
            let tail_ours = rate(tail, |r| {
                a.allocate(r).expect("room left");
            });
            let tail_linear = rate(tail, |r| {
                b.allocate(r).expect("room left");
            });
            println!(
                "| {label} | {count} | at {count} | {} | {} |",
                show(tail_ours),
                show(tail_linear)
            );
        }
    }
}
