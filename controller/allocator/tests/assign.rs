//! Explicit assignment (MetalLB's `Assign`, used for requested IPs and for rebuilding state
//! from Service status): pool membership, avoidBuggyIPs, sharing, dual stack, serviceAllocation.

mod common;

use common::*;
use metallb_allocator::{Allocator, LabelSelector, Port, ServiceAllocation};

/// One table row: assign addresses (description, service, addresses, expected) or release.
#[expect(
    clippy::large_enum_variant,
    reason = "a short-lived table of test rows"
)]
enum Op {
    Assign(
        &'static str,
        Svc,
        &'static [&'static str],
        Result<(), &'static str>,
    ),
    Release(&'static str),
}
use Op::{Assign, Release};

/// Runs the rows in order on one allocator. A failed assignment must leave the service with
/// what it held before.
fn run(allocator: &mut Allocator, rows: Vec<Op>) {
    for row in rows {
        match row {
            Release(service) => {
                allocator.release(&key(service));
            }
            Assign(desc, svc, want_ips, expected) => {
                let before = held(allocator, &svc.key.to_string());
                let got = allocator.assign(&svc, &ips(want_ips));
                let now = held(allocator, &svc.key.to_string());
                match expected {
                    Ok(()) => {
                        let assignment = got.unwrap_or_else(|e| panic!("{desc}: {e}"));
                        assert_eq!(assignment.ips, ips(want_ips), "{desc}");
                        assert_eq!(now, want_ips, "{desc}");
                    }
                    Err(message) => {
                        assert_eq!(
                            got.map_err(|e| e.to_string()),
                            Err(message.to_string()),
                            "{desc}"
                        );
                        assert_eq!(now, before, "{desc}: a failed assignment changes nothing");
                    }
                }
            }
        }
    }
}

fn reference_pools() -> Allocator {
    allocator(vec![
        pool("test", &["1.2.3.4/31", "1000::4/127"]),
        buggy(pool("test2", &["1.2.4.0/24", "1000::4:0/120"])),
        buggy(allocation(
            pool("test3", &["1.2.5.0/24", "1000::5:0/120"]),
            for_namespaces(0, &["test-ns1"]),
        )),
        buggy(allocation(
            pool("test4", &["1.2.6.0/24", "1000::6:0/120"]),
            for_services(0, &[("team", "metallb")]),
        )),
        buggy(allocation(
            pool("test5", &["1.2.7.0/24", "1000::7:0/120"]),
            ServiceAllocation {
                namespaces: vec!["test-ns1".into()],
                ..for_services(20, &[("team", "metallb")])
            },
        )),
        buggy(allocation(
            pool("test6", &["1.2.8.0/24", "1000::9:0/120"]),
            ServiceAllocation {
                namespaces: vec!["test-ns2".into()],
                ..for_services(20, &[("foo", "bar")])
            },
        )),
    ])
}

#[test]
fn an_address_belongs_to_one_service_unless_both_allow_sharing() {
    let s = |n| svc(n);
    run(
        &mut reference_pools(),
        vec![
            Assign("s1 takes an address", s("default/s1"), &["1.2.3.4"], Ok(())),
            Assign(
                "assigning it again changes nothing",
                s("default/s1"),
                &["1.2.3.4"],
                Ok(()),
            ),
            Assign(
                "s2 cannot take s1's address",
                s("default/s2"),
                &["1.2.3.4"],
                Err(
                    "can't change sharing key for \"default/s2\", address also in use by default/s1",
                ),
            ),
            Assign(
                "s2 takes the other address",
                s("default/s2"),
                &["1.2.3.5"],
                Ok(()),
            ),
            Assign(
                "s1 cannot take s2's address and keeps its own",
                s("default/s1"),
                &["1.2.3.5"],
                Err(
                    "can't change sharing key for \"default/s1\", address also in use by default/s2",
                ),
            ),
            Release("default/s1"),
            Assign(
                "s2 moves to s1's former address",
                s("default/s2"),
                &["1.2.3.4"],
                Ok(()),
            ),
            Assign(
                "s1 takes s2's former address",
                s("default/s1"),
                &["1.2.3.5"],
                Ok(()),
            ),
            Assign(
                "an empty sharing key does not allow sharing",
                s("default/s3").share("").tcp(&[9]),
                &["1.2.3.5"],
                Err(
                    "can't change sharing key for \"default/s3\", address also in use by default/s1",
                ),
            ),
        ],
    );
}

#[test]
fn buggy_addresses_are_not_in_an_avoid_buggy_ips_pool() {
    run(
        &mut reference_pools(),
        vec![
            Assign(
                "a .0 address",
                svc("default/s3"),
                &["1.2.4.0"],
                Err("[\"1.2.4.0\"] is not allowed in config"),
            ),
            Assign(
                "a .255 address",
                svc("default/s3"),
                &["1.2.4.255"],
                Err("[\"1.2.4.255\"] is not allowed in config"),
            ),
            Assign(
                "another address of the pool",
                svc("default/s3"),
                &["1.2.4.254"],
                Ok(()),
            ),
            Assign(
                "IPv6 is unaffected",
                svc("default/s4").v6(),
                &["1000::4:ff"],
                Ok(()),
            ),
            Assign(
                "an address in no pool",
                svc("default/s5"),
                &["9.9.9.9"],
                Err("[\"9.9.9.9\"] is not allowed in config"),
            ),
        ],
    );
}

#[test]
fn sharing_needs_the_same_key_the_same_backend_and_distinct_ports() {
    let s4 = || svc("default/s4").local(&[("app", "x")]);
    let s3 = || svc("default/s3").local(&[("app", "x")]);
    let in_use_by_s4 =
        Err("can't change sharing key for \"default/s3\", address also in use by default/s4");
    let mut s3_udp = s3().share("share");
    s3_udp.0.ports = vec![Port::udp(53)];
    run(
        &mut reference_pools(),
        vec![
            Assign("s3 holds an address", s3(), &["1.2.4.254"], Ok(())),
            Assign(
                "s4 takes an address with sharing",
                s4().share("sharing").tcp(&[80]),
                &["1.2.4.3"],
                Ok(()),
            ),
            Assign(
                "s4, its sole user, changes its key in place",
                s4().share("share").tcp(&[80]),
                &["1.2.4.3"],
                Ok(()),
            ),
            Assign(
                "s3 cannot share it on the same port",
                s3().share("share").tcp(&[80]),
                &["1.2.4.3"],
                Err("port TCP/80 is already in use on \"1.2.4.3\""),
            ),
            Assign(
                "s3 cannot share it with another key",
                s3().share("othershare").tcp(&[443]),
                &["1.2.4.3"],
                in_use_by_s4,
            ),
            Assign(
                "s3 cannot share it with other endpoints",
                svc("default/s3")
                    .local(&[("app", "y")])
                    .share("share")
                    .tcp(&[443]),
                &["1.2.4.3"],
                in_use_by_s4,
            ),
            Assign(
                "a Cluster service cannot share with a Local one",
                svc("default/s3").share("share").tcp(&[443]),
                &["1.2.4.3"],
                in_use_by_s4,
            ),
            Assign(
                "s3 shares it",
                s3().share("share").tcp(&[443]),
                &["1.2.4.3"],
                Ok(()),
            ),
            Assign(
                "s3 changes its ports on the shared address",
                s3_udp,
                &["1.2.4.3"],
                Ok(()),
            ),
            Assign(
                "s3 cannot change its key while others use the address",
                s3().share("othershare").tcp(&[443]),
                &["1.2.4.3"],
                in_use_by_s4,
            ),
            Assign(
                "s4 moves to s3's former address",
                s4().tcp(&[80]),
                &["1.2.4.254"],
                Ok(()),
            ),
            Assign(
                "s3, now alone, changes its key in place",
                s3().share("solo").tcp(&[443]),
                &["1.2.4.3"],
                Ok(()),
            ),
        ],
    );
}

#[test]
fn sharing_works_the_same_for_ipv6() {
    let shared = |name: &'static str, port| svc(name).v6().share("share").tcp(&[port]);
    run(
        &mut reference_pools(),
        vec![
            Assign(
                "s1 takes an IPv6 address",
                svc("default/s1").v6(),
                &["1000::4"],
                Ok(()),
            ),
            Assign(
                "s2 cannot take it",
                svc("default/s2").v6(),
                &["1000::4"],
                Err(
                    "can't change sharing key for \"default/s2\", address also in use by default/s1",
                ),
            ),
            Assign(
                "s3 takes one with sharing",
                shared("default/s3", 80),
                &["1000::4:3"],
                Ok(()),
            ),
            Assign(
                "s4 cannot share it on the same port",
                shared("default/s4", 80),
                &["1000::4:3"],
                Err("port TCP/80 is already in use on \"1000::4:3\""),
            ),
            Assign(
                "s4 shares it on another port",
                shared("default/s4", 443),
                &["1000::4:3"],
                Ok(()),
            ),
        ],
    );
}

#[test]
fn dual_stack_addresses_come_from_one_pool_one_per_family() {
    run(
        &mut reference_pools(),
        vec![
            Assign(
                "one of each family from one pool",
                svc("default/s1"),
                &["1.2.3.4", "1000::4"],
                Ok(()),
            ),
            Assign(
                "addresses from two pools",
                svc("default/s2"),
                &["1.2.4.5", "1000::5"],
                Err("[\"1.2.4.5\" \"1000::5\"] is not allowed in config"),
            ),
            Assign(
                "two addresses of one family",
                svc("default/s2"),
                &["1.2.4.5", "1.2.4.6"],
                Err("[\"1.2.4.5\" \"1.2.4.6\"] has the same family"),
            ),
            Assign(
                "three addresses",
                svc("default/s2"),
                &["1.2.4.5", "1.2.4.6", "1000::4:1"],
                Err("more than two addresses [\"1.2.4.5\" \"1.2.4.6\" \"1000::4:1\"]"),
            ),
        ],
    );
}

#[test]
fn service_allocation_admits_by_namespace_and_service_labels() {
    run(
        &mut reference_pools(),
        vec![
            Assign(
                "the pool's namespace",
                svc("test-ns1/s1"),
                &["1.2.5.10"],
                Ok(()),
            ),
            Assign(
                "another namespace",
                svc("other/s1"),
                &["1.2.5.10"],
                Err("pool test3 not compatible for ip assignment"),
            ),
            Assign(
                "matching service labels",
                svc("other/s2").labels(&[("team", "metallb")]),
                &["1.2.6.10"],
                Ok(()),
            ),
            Assign(
                "other service labels",
                svc("other/s3").labels(&[("team", "red")]),
                &["1.2.6.11"],
                Err("pool test4 not compatible for ip assignment"),
            ),
            Assign(
                "namespace and labels both match",
                svc("test-ns1/s4").labels(&[("team", "metallb")]),
                &["1.2.7.10"],
                Ok(()),
            ),
            Assign(
                "the namespace matches, not the labels",
                svc("test-ns2/s5").labels(&[("team", "metallb")]),
                &["1.2.8.10"],
                Err("pool test6 not compatible for ip assignment"),
            ),
            Assign(
                "the labels match, not the namespace",
                svc("other/s6").labels(&[("foo", "bar")]),
                &["1.2.8.10"],
                Err("pool test6 not compatible for ip assignment"),
            ),
        ],
    );
}

#[test]
fn namespace_selectors_admit_namespaces_by_their_labels() {
    let sa = ServiceAllocation {
        namespace_selectors: vec![LabelSelector::from_labels([("env", "prod")])],
        ..ServiceAllocation::default()
    };
    let mut allocator = allocator(vec![allocation(pool("prod", &["10.0.0.0/24"]), sa)]);
    run(
        &mut allocator,
        vec![
            Assign(
                "a namespace with the label",
                svc("shop/a").ns_labels(&[("env", "prod")]),
                &["10.0.0.1"],
                Ok(()),
            ),
            Assign(
                "a namespace without it",
                svc("lab/b").ns_labels(&[("env", "dev")]),
                &["10.0.0.2"],
                Err("pool prod not compatible for ip assignment"),
            ),
        ],
    );
}
