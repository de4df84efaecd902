//! Allocation (MetalLB's `allocateIPs`): requested addresses, the address-pool annotation,
//! automatic choice of pool and address, avoidBuggyIPs, autoAssign, sharing, dual stack.

mod common;

use common::*;
use metallb_allocator::{Allocator, IpFamily, IpFamilyPolicy, ServiceAllocation};

/// Allocates each row in order and checks the addresses (or the error text).
fn expect(allocator: &mut Allocator, rows: Vec<(Svc, Result<&[&str], &str>)>) {
    for (i, (svc, want)) in rows.into_iter().enumerate() {
        let got = allocator
            .allocate(&svc)
            .map(|a| a.ips)
            .map_err(|e| e.to_string());
        let want = want.map(ips).map_err(str::to_owned);
        assert_eq!(got, want, "row {i}: {}", svc.key);
    }
}

#[test]
fn the_lowest_free_address_of_the_first_cidr_wins() {
    let mut a = allocator(vec![pool("p", &["10.0.0.8/31", "10.0.0.0/31"])]);
    expect(
        &mut a,
        vec![
            (svc("ns/s1"), Ok(&["10.0.0.8"])),
            (svc("ns/s2"), Ok(&["10.0.0.9"])),
            (svc("ns/s3"), Ok(&["10.0.0.0"])),
        ],
    );
    a.release(&key("ns/s2"));
    expect(
        &mut a,
        vec![
            (svc("ns/s4"), Ok(&["10.0.0.9"])),
            (svc("ns/s5"), Ok(&["10.0.0.1"])),
        ],
    );
    expect(&mut a, vec![(svc("ns/s6"), Err("no available IPs"))]);
}

#[test]
fn automatic_allocation_skips_buggy_addresses() {
    let mut a = allocator(vec![
        pool("test", &["1.2.3.0/31"]),
        pool("test2", &["1.2.3.254/31"]),
        buggy(pool("test3", &["1.2.4.0/31"])),
        buggy(pool("test4", &["1.2.4.254/31"])),
    ]);
    let rows = [
        "1.2.3.0",
        "1.2.3.1",
        "1.2.3.254",
        "1.2.3.255",
        "1.2.4.1",
        "1.2.4.254",
    ]
    .iter()
    .enumerate()
    .map(|(i, ip)| (svc(&format!("ns/s{i}")), Ok(std::slice::from_ref(ip))))
    .collect();
    expect(&mut a, rows);
    expect(&mut a, vec![(svc("ns/s7"), Err("no available IPs"))]);
}

#[test]
fn a_buggy_range_crossing_a_24_boundary_hands_out_only_usable_addresses() {
    let mut a = allocator(vec![buggy(pool("p", &["10.0.0.253-10.0.1.2"]))]);
    let order = ["10.0.0.253", "10.0.0.254", "10.0.1.1", "10.0.1.2"];
    let rows = order
        .iter()
        .enumerate()
        .map(|(i, ip)| (svc(&format!("ns/s{i}")), Ok(std::slice::from_ref(ip))))
        .collect();
    expect(&mut a, rows);
    expect(&mut a, vec![(svc("ns/last"), Err("no available IPs"))]);
}

#[test]
fn pools_without_auto_assign_serve_only_requests_naming_them() {
    let mut a = allocator(vec![
        manual(pool("test1", &["1.2.3.4/31", "1000::4/127"])),
        pool("test2", &["1.2.3.10/31", "1000::10/127"]),
    ]);
    expect(
        &mut a,
        vec![
            (svc("ns/s1"), Ok(&["1.2.3.10"])),
            (svc("ns/s2"), Ok(&["1.2.3.11"])),
            (svc("ns/s3"), Err("no available IPs")),
            (svc("ns/s3").v6(), Ok(&["1000::10"])),
            (
                svc("ns/s4").dual(IpFamilyPolicy::RequireDualStack),
                Err("no available IPs"),
            ),
            (svc("ns/s4").in_pool("test1"), Ok(&["1.2.3.4"])),
            (svc("ns/s5").wants(&["1.2.3.5"]), Ok(&["1.2.3.5"])),
        ],
    );
}

#[test]
fn an_exhausted_pool_still_offers_addresses_shareable_by_key_and_port() {
    let mut a = allocator(vec![pool("p", &["1.2.3.4/31"])]);
    expect(
        &mut a,
        vec![
            (svc("ns/s1").share("k").tcp(&[80]), Ok(&["1.2.3.4"])),
            (svc("ns/s2").share("k").tcp(&[443]), Ok(&["1.2.3.4"])),
            (svc("ns/s3").share("k").tcp(&[80]), Ok(&["1.2.3.5"])),
            (svc("ns/s4").share("k").tcp(&[80]), Err("no available IPs")),
            (
                svc("ns/s4").share("other").tcp(&[22]),
                Err("no available IPs"),
            ),
            (svc("ns/s4").share("k").tcp(&[22]), Ok(&["1.2.3.4"])),
            (svc("ns/s5").share("k").tcp(&[22, 8080]), Ok(&["1.2.3.5"])),
            (svc("ns/s6"), Err("no available IPs")),
        ],
    );
}

#[test]
fn a_shareable_address_wins_over_a_higher_free_one_but_not_a_lower_one() {
    let mut a = allocator(vec![pool("p", &["10.0.0.0/29"])]);
    expect(
        &mut a,
        vec![
            (svc("ns/a"), Ok(&["10.0.0.0"])),
            (svc("ns/b").share("k").tcp(&[80]), Ok(&["10.0.0.1"])),
            (svc("ns/c").share("k").tcp(&[81]), Ok(&["10.0.0.1"])),
        ],
    );
    a.release(&key("ns/a"));
    expect(
        &mut a,
        vec![(svc("ns/d").share("k").tcp(&[82]), Ok(&["10.0.0.0"]))],
    );
}

#[test]
fn pinned_pools_go_first_by_priority_with_unset_priority_last() {
    let pinned = |name, prio, net| allocation(pool(name, &[net]), for_namespaces(prio, &["team"]));
    let mut a = allocator(vec![
        pinned("a-unset", 0, "10.0.1.0/32"),
        pinned("b-second", 2, "10.0.2.0/32"),
        pinned("c-first", 1, "10.0.3.0/32"),
        pool("d-anyone", &["10.0.4.0/31"]),
        allocation(
            manual(pool("e-manual", &["10.0.5.0/32"])),
            for_namespaces(1, &["team"]),
        ),
    ]);
    expect(
        &mut a,
        vec![
            (svc("other/x"), Ok(&["10.0.4.0"])),
            (svc("team/s1"), Ok(&["10.0.3.0"])),
            (svc("team/s2"), Ok(&["10.0.2.0"])),
            (svc("team/s3"), Ok(&["10.0.1.0"])),
            (svc("team/s4"), Ok(&["10.0.4.1"])),
            (svc("team/s5"), Err("no available IPs")),
        ],
    );
}

#[test]
fn equal_priorities_are_tried_in_name_order() {
    let mut a = allocator(vec![
        allocation(pool("zeta", &["10.0.2.0/32"]), for_namespaces(3, &["ns"])),
        allocation(pool("alpha", &["10.0.1.0/32"]), for_namespaces(3, &["ns"])),
    ]);
    expect(
        &mut a,
        vec![
            (svc("ns/a"), Ok(&["10.0.1.0"])),
            (svc("ns/b"), Ok(&["10.0.2.0"])),
        ],
    );
}

#[test]
fn a_service_allocation_with_only_a_priority_admits_every_service_before_other_pools() {
    let priority_only = ServiceAllocation {
        priority: 5,
        ..ServiceAllocation::default()
    };
    let mut a = allocator(vec![
        pool("a-plain", &["10.0.1.0/24"]),
        allocation(pool("z-prio", &["10.0.2.0/24"]), priority_only),
    ]);
    expect(&mut a, vec![(svc("any/one"), Ok(&["10.0.2.0"]))]);
}

#[test]
fn service_selector_pools_take_only_matching_services() {
    let mut a = allocator(vec![
        allocation(
            pool("a-team", &["10.0.1.0/24"]),
            for_services(0, &[("team", "metallb")]),
        ),
        pool("b-rest", &["10.0.2.0/24"]),
    ]);
    expect(
        &mut a,
        vec![
            (
                svc("ns/in").labels(&[("team", "metallb")]),
                Ok(&["10.0.1.0"]),
            ),
            (svc("ns/out").labels(&[("team", "red")]), Ok(&["10.0.2.0"])),
            (svc("ns/none"), Ok(&["10.0.2.1"])),
        ],
    );
}

#[test]
fn the_address_pool_annotation_limits_allocation_to_that_pool() {
    let mut a = allocator(vec![
        pool("v4", &["10.0.0.0/31"]),
        pool("v6", &["1000::/127"]),
        allocation(pool("team", &["10.0.9.0/24"]), for_namespaces(0, &["team"])),
    ]);
    expect(
        &mut a,
        vec![
            (svc("ns/a").in_pool("v4"), Ok(&["10.0.0.0"])),
            (svc("ns/b").in_pool("nope"), Err("unknown pool \"nope\"")),
            (
                svc("ns/c").in_pool("team"),
                Err("pool team not compatible for ip assignment"),
            ),
            (svc("team/c").in_pool("team"), Ok(&["10.0.9.0"])),
            (
                svc("ns/d").v6().in_pool("v4"),
                Err("no available IPs in pool v4 for ipv6 IPFamily"),
            ),
            (svc("ns/e").in_pool("v4"), Ok(&["10.0.0.1"])),
            (
                svc("ns/f").in_pool("v4"),
                Err("no available IPs in pool v4 for ipv4 IPFamily"),
            ),
            (
                svc("ns/g")
                    .dual(IpFamilyPolicy::RequireDualStack)
                    .in_pool("v6"),
                Err("no available IPs in pool v6 for dual IPFamily"),
            ),
            (
                svc("ns/h")
                    .dual(IpFamilyPolicy::PreferDualStack)
                    .in_pool("v6"),
                Ok(&["1000::"]),
            ),
        ],
    );
}

#[test]
fn requested_addresses_must_fit_the_family_the_pools_and_the_annotation() {
    let mut a = allocator(vec![
        pool("one", &["10.0.0.0/24", "1000::/120"]),
        manual(pool("two", &["10.0.1.0/24"])),
    ]);
    let dual = || svc("ns/d").dual(IpFamilyPolicy::RequireDualStack);
    expect(
        &mut a,
        vec![
            (svc("ns/a").wants(&["10.0.1.7"]), Ok(&["10.0.1.7"])),
            (
                svc("ns/b").wants(&["1000::1"]),
                Err(
                    "requested loadBalancer IP(s) [\"1000::1\"] does not match the ipFamily of the service",
                ),
            ),
            (
                dual().wants(&["10.0.0.1"]),
                Err(
                    "requested loadBalancer IP(s) [\"10.0.0.1\"] does not match the ipFamily of the service",
                ),
            ),
            (
                dual().wants(&["10.0.0.1", "10.0.0.2"]),
                Err("[\"10.0.0.1\" \"10.0.0.2\"] has the same family"),
            ),
            (
                dual().wants(&["10.0.0.1", "1000::1"]),
                Ok(&["10.0.0.1", "1000::1"]),
            ),
            (
                svc("ns/c").wants(&["192.168.0.1"]),
                Err("[\"192.168.0.1\"] is not allowed in config"),
            ),
            (
                svc("ns/e").wants(&["10.0.0.9"]).in_pool("two"),
                Err(
                    "requested loadBalancer IP(s) [\"10.0.0.9\"] is not compatible with requested address pool two",
                ),
            ),
            (
                svc("ns/e").wants(&["10.0.1.9"]).in_pool("two"),
                Ok(&["10.0.1.9"]),
            ),
        ],
    );
    assert!(a.assignment(&key("ns/b")).is_none());
}

#[test]
fn require_dual_stack_takes_both_families_from_one_pool() {
    let mut a = allocator(vec![
        pool("a-v4", &["10.0.1.0/24"]),
        pool("b-dual", &["10.0.2.0/24", "1000::/120"]),
    ]);
    let req = || svc("ns/s").dual(IpFamilyPolicy::RequireDualStack);
    expect(&mut a, vec![(req(), Ok(&["10.0.2.0", "1000::"]))]);
    let mut a = allocator(vec![
        pool("a-v4", &["10.0.1.0/24"]),
        pool("b-v6", &["1000::/120"]),
    ]);
    expect(&mut a, vec![(req(), Err("no available IPs"))]);
}

#[test]
fn prefer_dual_stack_falls_back_to_the_primary_family_then_the_other() {
    let pools = || {
        vec![
            pool("a-v6", &["1000::/120"]),
            pool("b-v4", &["10.0.1.0/24"]),
        ]
    };
    let prefer =
        |families: &[IpFamily]| svc("ns/s").families(families, IpFamilyPolicy::PreferDualStack);
    expect(
        &mut allocator(pools()),
        vec![(prefer(&[IpFamily::V4, IpFamily::V6]), Ok(&["10.0.1.0"]))],
    );
    expect(
        &mut allocator(pools()),
        vec![(prefer(&[IpFamily::V6, IpFamily::V4]), Ok(&["1000::"]))],
    );
    let mut only_v6 = allocator(vec![pool("a-v6", &["1000::/120"])]);
    expect(
        &mut only_v6,
        vec![(prefer(&[IpFamily::V4, IpFamily::V6]), Ok(&["1000::"]))],
    );
    let mut with_dual = allocator(vec![
        pool("a-v4", &["10.0.1.0/24"]),
        pool("b-dual", &["10.0.2.0/24", "1000::/120"]),
    ]);
    expect(
        &mut with_dual,
        vec![(
            prefer(&[IpFamily::V6, IpFamily::V4]),
            Ok(&["10.0.2.0", "1000::"]),
        )],
    );
}

#[test]
fn single_stack_services_take_their_family_from_a_dual_pool() {
    let mut a = allocator(vec![pool("dual", &["10.0.0.0/24", "1000::/120"])]);
    expect(
        &mut a,
        vec![
            (svc("ns/v6").v6(), Ok(&["1000::"])),
            (svc("ns/v4"), Ok(&["10.0.0.0"])),
        ],
    );
    let prefer_single = svc("ns/p").families(&[IpFamily::V6], IpFamilyPolicy::PreferDualStack);
    expect(&mut a, vec![(prefer_single, Ok(&["1000::1"]))]);
}

#[test]
fn services_without_usable_cluster_ips_are_refused() {
    let mut a = allocator(vec![pool("dual", &["10.0.0.0/24", "1000::/120"])]);
    expect(
        &mut a,
        vec![
            (
                svc("ns/a").families(&[IpFamily::V4], IpFamilyPolicy::RequireDualStack),
                Err("Service requires dual stack but not enough clusterips"),
            ),
            (
                svc("ns/b").families(&[], IpFamilyPolicy::SingleStack),
                Err("no cluster IPs, can't determine the IP family"),
            ),
        ],
    );
}

#[test]
fn allocate_releases_what_the_service_held_before() {
    let mut a = allocator(vec![pool("p", &["10.0.0.0/30"])]);
    expect(
        &mut a,
        vec![
            (svc("ns/a").wants(&["10.0.0.2"]), Ok(&["10.0.0.2"])),
            (svc("ns/a"), Ok(&["10.0.0.0"])),
        ],
    );
    expect(
        &mut a,
        vec![(svc("ns/b").wants(&["10.0.0.2"]), Ok(&["10.0.0.2"]))],
    );
}

#[test]
fn releasing_a_shared_address_leaves_it_to_the_other_users() {
    let mut a = allocator(vec![pool("p", &["10.0.0.0/31"])]);
    expect(
        &mut a,
        vec![
            (svc("ns/a").share("k").tcp(&[80]), Ok(&["10.0.0.0"])),
            (svc("ns/b").share("k").tcp(&[81]), Ok(&["10.0.0.0"])),
        ],
    );
    assert_eq!(
        a.release(&key("ns/a")).map(|x| x.ips),
        Some(ips(&["10.0.0.0"]))
    );
    assert_eq!(a.release(&key("ns/a")), None);
    expect(
        &mut a,
        vec![
            (svc("ns/c"), Ok(&["10.0.0.1"])),
            (svc("ns/d").share("k").tcp(&[80]), Ok(&["10.0.0.0"])),
        ],
    );
}
