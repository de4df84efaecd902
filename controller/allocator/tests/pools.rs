//! Pool edits (keep every still-valid assignment, report the rest) and pool status counts.

mod common;

use common::*;
use metallb_allocator::{
    AllocError, Allocator, ConfigError, IpFamilyPolicy, Moved, Pool, PoolCounters,
    ServiceAllocation,
};

/// MetalLB's TestConfigReload start: s1 holds 1.2.3.0, s2 holds 1000::.
fn reload_start() -> Allocator {
    let mut a = allocator(vec![
        pool("test", &["1.2.3.0/30", "1000::/126"]),
        pool("unused", &["1.2.4.0/30", "1001::/126"]),
    ]);
    a.assign(&svc("ns/s1"), &ips(&["1.2.3.0"])).unwrap();
    a.assign(&svc("ns/s2").v6(), &ips(&["1000::"])).unwrap();
    a
}

fn pool_of(a: &Allocator, service: &str) -> Option<String> {
    a.assignment(&key(service)).map(|x| x.pool.clone())
}

/// Description, new pools, then the pool s1 and s2 end up in (none: released).
type ReloadCase = (
    &'static str,
    Vec<Pool>,
    Option<&'static str>,
    Option<&'static str>,
);

#[test]
fn a_pool_edit_keeps_every_assignment_still_inside_a_pool() {
    let cases: Vec<ReloadCase> = vec![
        (
            "the same pools",
            vec![pool("test", &["1.2.3.0/30", "1000::/126"])],
            Some("test"),
            Some("test"),
        ),
        (
            "an expanded pool",
            vec![pool("test", &["1.2.3.0/24", "1000::/120"])],
            Some("test"),
            Some("test"),
        ),
        (
            "a pool shrunk around the addresses",
            vec![pool("test", &["1.2.3.0/31", "1000::/127"])],
            Some("test"),
            Some("test"),
        ),
        (
            "a pool shrunk past the IPv4 address",
            vec![pool("test", &["1.2.3.2/31", "1000::/126"])],
            None,
            Some("test"),
        ),
        (
            "a pool shrunk past the IPv6 address",
            vec![pool("test", &["1.2.3.0/30", "1000::2/127"])],
            Some("test"),
            None,
        ),
        (
            "a renamed pool",
            vec![pool("test2", &["1.2.3.0/30", "1000::/126"])],
            Some("test2"),
            Some("test2"),
        ),
        (
            "a split pool",
            vec![
                pool("test", &["1.2.3.0/31", "1000::2/127"]),
                pool("test2", &["1.2.3.2/31", "1000::/127"]),
            ],
            Some("test"),
            Some("test2"),
        ),
        (
            "avoidBuggyIPs turned on",
            vec![buggy(pool("test2", &["1.2.3.0/31", "1000::/127"]))],
            None,
            Some("test2"),
        ),
        ("every pool deleted", vec![], None, None),
    ];
    for (desc, pools, s1, s2) in cases {
        let mut a = reload_start();
        let changed = a.set_pools(pools).unwrap();
        assert_eq!(pool_of(&a, "ns/s1").as_deref(), s1, "{desc}: s1");
        assert_eq!(pool_of(&a, "ns/s2").as_deref(), s2, "{desc}: s2");
        let mut released: Vec<String> = changed
            .released
            .iter()
            .map(|r| r.service.to_string())
            .collect();
        released.sort();
        let expected: Vec<&str> = [("ns/s1", s1), ("ns/s2", s2)]
            .iter()
            .filter(|(_, p)| p.is_none())
            .map(|(s, _)| *s)
            .collect();
        assert_eq!(released, expected, "{desc}: released");
    }
}

#[test]
fn a_released_service_is_reported_with_its_old_addresses_and_the_reason() {
    let mut a = reload_start();
    let changed = a
        .set_pools(vec![buggy(pool("test", &["1.2.3.0/30", "1000::/126"]))])
        .unwrap();
    assert_eq!(changed.released.len(), 1);
    let released = &changed.released[0];
    assert_eq!(released.service, key("ns/s1"));
    assert_eq!(released.previous.ips, ips(&["1.2.3.0"]));
    assert_eq!(
        released.reason,
        AllocError::NotAllowed {
            ips: ips(&["1.2.3.0"])
        }
    );
    assert_eq!(
        released.reason.to_string(),
        "[\"1.2.3.0\"] is not allowed in config"
    );
    assert!(changed.moved.is_empty());
    // The address is free again: buggy skipping makes .1 the next one.
    assert_eq!(a.allocate(&svc("ns/s3")).unwrap().ips, ips(&["1.2.3.1"]));
}

#[test]
fn a_renamed_pool_reports_the_move_and_keeps_the_addresses() {
    let mut a = reload_start();
    let changed = a
        .set_pools(vec![pool("renamed", &["1.2.3.0/30", "1000::/126"])])
        .unwrap();
    assert!(changed.released.is_empty());
    let moved = |s: &str| Moved {
        service: key(s),
        from: "test".into(),
        to: "renamed".into(),
    };
    assert_eq!(changed.moved, vec![moved("ns/s1"), moved("ns/s2")]);
    assert_eq!(held(&a, "ns/s1"), ["1.2.3.0"]);
    assert_eq!(
        a.allocate(&svc("ns/s3")).unwrap().ips,
        ips(&["1.2.3.1"]),
        "held addresses stay taken"
    );
}

#[test]
fn a_pool_that_stops_admitting_a_service_releases_it() {
    let mut a = allocator(vec![pool("p", &["10.0.0.0/24"])]);
    a.allocate(&svc("blue/s")).unwrap();
    a.allocate(&svc("green/s")).unwrap();
    let changed = a
        .set_pools(vec![allocation(
            pool("p", &["10.0.0.0/24"]),
            for_namespaces(0, &["green"]),
        )])
        .unwrap();
    let released: Vec<_> = changed
        .released
        .iter()
        .map(|r| (r.service.to_string(), r.reason.to_string()))
        .collect();
    assert_eq!(
        released,
        [(
            "blue/s".to_string(),
            "pool p not compatible for ip assignment".to_string()
        )]
    );
    assert_eq!(held(&a, "green/s"), ["10.0.0.1"]);
}

#[test]
fn a_dual_stack_service_whose_pool_loses_a_family_is_released_whole() {
    let mut a = allocator(vec![pool("dual", &["10.0.0.0/24", "1000::/120"])]);
    a.allocate(&svc("ns/d").dual(IpFamilyPolicy::PreferDualStack))
        .unwrap();
    let changed = a.set_pools(vec![pool("dual", &["10.0.0.0/24"])]).unwrap();
    assert_eq!(changed.released.len(), 1);
    assert!(a.assignment(&key("ns/d")).is_none());
    assert_eq!(
        a.counters("dual").unwrap().assigned_ipv4,
        0,
        "the kept family was freed too"
    );
}

#[test]
fn shared_addresses_survive_a_pool_edit_with_all_their_users() {
    let mut a = allocator(vec![pool("p", &["10.0.0.0/31"])]);
    a.allocate(&svc("ns/a").share("k").tcp(&[80])).unwrap();
    a.allocate(&svc("ns/b").share("k").tcp(&[81])).unwrap();
    a.set_pools(vec![pool("q", &["10.0.0.0/30"])]).unwrap();
    let err = a
        .allocate(&svc("ns/c").share("k").tcp(&[80]))
        .map(|x| x.ips);
    assert_eq!(
        err,
        Ok(ips(&["10.0.0.1"])),
        "port 80 on the shared address is still taken"
    );
    assert_eq!(a.counters("q").unwrap().assigned_ipv4, 2);
}

#[test]
fn an_invalid_pool_set_is_refused_and_changes_nothing() {
    let mut a = reload_start();
    let overlapping = vec![
        pool("x", &["1.2.3.0/24"]),
        pool("y", &["1.2.3.128-1.2.3.130"]),
    ];
    assert!(matches!(
        a.set_pools(overlapping),
        Err(ConfigError::Overlap { .. })
    ));
    assert_eq!(pool_of(&a, "ns/s1").as_deref(), Some("test"));
    assert_eq!(
        a.pools().map(|p| p.name.as_str()).collect::<Vec<_>>(),
        ["test", "unused"]
    );
}

#[test]
fn pool_capacity_follows_avoid_buggy_ips_accounting() {
    let cases = [
        (
            "a range ending in .255",
            buggy(pool("p", &["192.168.10.250-192.168.10.255"])),
            (5, 0),
        ),
        ("a /24", buggy(pool("p", &["192.168.10.0/24"])), (254, 0)),
        ("a /16", buggy(pool("p", &["192.168.0.0/16"])), (65_024, 0)),
        (
            "a /24 without the flag",
            pool("p", &["192.168.10.0/24"]),
            (256, 0),
        ),
        (
            "IPv4 and IPv6",
            buggy(pool("p", &["1.2.3.0/31", "1000::/127"])),
            (1, 2),
        ),
        (
            "a huge IPv6 CIDR",
            pool("p", &["1.2.3.0/24", "1000::/64", "2000::/120"]),
            (256, i64::MAX),
        ),
    ];
    for (desc, pool, (v4, v6)) in cases {
        let a = allocator(vec![pool]);
        let want = PoolCounters {
            assigned_ipv4: 0,
            assigned_ipv6: 0,
            available_ipv4: v4,
            available_ipv6: v6,
        };
        assert_eq!(a.counters("p"), Some(want), "{desc}");
    }
}

#[test]
fn counters_count_distinct_held_addresses_per_family() {
    let mut a = allocator(vec![pool("test", &["1.2.3.4/30", "1000::4/126"])]);
    let count = |a: &Allocator| {
        let c = a.counters("test").unwrap();
        (
            c.assigned_ipv4,
            c.available_ipv4,
            c.assigned_ipv6,
            c.available_ipv6,
        )
    };
    a.assign(&svc("ns/s1"), &ips(&["1.2.3.4"])).unwrap();
    a.assign(&svc("ns/s2"), &ips(&["1.2.3.5"])).unwrap();
    assert_eq!(count(&a), (2, 2, 0, 4));
    a.release(&key("ns/s1"));
    a.release(&key("ns/s2"));
    assert_eq!(count(&a), (0, 4, 0, 4));
    for (name, port) in [("ns/s1", 80), ("ns/s2", 443), ("ns/s3", 23)] {
        a.assign(&svc(name).share("key").tcp(&[port]), &ips(&["1.2.3.4"]))
            .unwrap();
        assert_eq!(count(&a), (1, 3, 0, 4), "{name} shares the address");
    }
    a.assign(
        &svc("ns/d").dual(IpFamilyPolicy::RequireDualStack),
        &ips(&["1.2.3.6", "1000::4"]),
    )
    .unwrap();
    assert_eq!(count(&a), (2, 2, 1, 3));
    for name in ["ns/s1", "ns/s2", "ns/s3", "ns/d"] {
        a.release(&key(name));
    }
    assert_eq!(count(&a), (0, 4, 0, 4));
    assert_eq!(a.counters("missing"), None);
}

#[test]
fn the_pool_of_an_address_ignores_buggy_addresses() {
    let a = allocator(vec![
        buggy(pool("b", &["10.0.0.0/24"])),
        pool("v6", &["1000::/120"]),
    ]);
    assert_eq!(a.pool_containing(ip("10.0.0.1")), Some("b"));
    assert_eq!(a.pool_containing(ip("10.0.0.0")), None);
    assert_eq!(a.pool_containing(ip("1000::ff")), Some("v6"));
    assert_eq!(a.pool_containing(ip("10.0.1.1")), None);
}

#[test]
fn pools_are_listed_by_name_whatever_the_given_order() {
    let sa = ServiceAllocation::default();
    let a = allocator(vec![
        pool("b", &["10.0.1.0/24"]),
        allocation(pool("a", &["10.0.0.0/24"]), sa),
    ]);
    assert_eq!(
        a.pools().map(|p| p.name.as_str()).collect::<Vec<_>>(),
        ["a", "b"]
    );
}
