//! Whole-service convergence: restart rebuild from Service status, clearing addresses that are
//! no longer valid, the PreferDualStack upgrade, and the errors that precede allocation.

mod common;

use common::*;
use metallb_allocator::{
    AllocError, Allocator, Assignment, ClearReason, Converged, IpFamily, IpFamilyPolicy, Step,
};

fn assigned(pool: &str, list: &[&str]) -> Assignment {
    Assignment {
        pool: pool.into(),
        ips: ips(list),
    }
}

fn converge(a: &mut Allocator, svc: &Svc, current: &[&str]) -> Converged {
    a.converge(svc, &ips(current))
}

#[test]
fn a_restart_rebuilds_state_from_status_before_allocating_pending_services() {
    let mut a = allocator(vec![pool("p", &["10.0.0.0/29"])]);
    let kept = |current: &[&str]| Converged {
        steps: vec![],
        result: Ok(assigned("p", current)),
    };
    assert_eq!(
        converge(&mut a, &svc("ns/s1"), &["10.0.0.5"]),
        kept(&["10.0.0.5"])
    );
    assert_eq!(
        converge(&mut a, &svc("ns/s2"), &["10.0.0.1"]),
        kept(&["10.0.0.1"])
    );
    let shared = |name| svc(name).share("k");
    assert_eq!(
        converge(&mut a, &shared("ns/s3").tcp(&[80]), &["10.0.0.3"]),
        kept(&["10.0.0.3"])
    );
    assert_eq!(
        converge(&mut a, &shared("ns/s4").tcp(&[443]), &["10.0.0.3"]),
        kept(&["10.0.0.3"])
    );
    let pending = converge(&mut a, &svc("ns/new"), &[]);
    assert_eq!(
        pending.steps,
        [Step::Allocated(assigned("p", &["10.0.0.0"]))]
    );
    let next = converge(&mut a, &svc("ns/next"), &[]);
    assert_eq!(next.result, Ok(assigned("p", &["10.0.0.2"])));
}

#[test]
fn converging_again_changes_nothing() {
    let mut a = allocator(vec![pool("p", &["10.0.0.0/29"])]);
    let first = converge(&mut a, &svc("ns/s"), &[]);
    let ips: Vec<String> = first
        .result
        .unwrap()
        .ips
        .iter()
        .map(ToString::to_string)
        .collect();
    let ips: Vec<&str> = ips.iter().map(String::as_str).collect();
    let again = converge(&mut a, &svc("ns/s"), &ips);
    assert_eq!(
        again,
        Converged {
            steps: vec![],
            result: Ok(assigned("p", &["10.0.0.0"]))
        }
    );
}

#[test]
fn an_address_two_services_claim_without_sharing_stays_with_the_first() {
    let mut a = allocator(vec![pool("p", &["10.0.0.0/29"])]);
    converge(&mut a, &svc("ns/first"), &["10.0.0.4"]);
    let second = converge(&mut a, &svc("ns/second"), &["10.0.0.4"]);
    let conflict = AllocError::SharingConflict {
        service: key("ns/second"),
        ip: ip("10.0.0.4"),
        others: vec![key("ns/first")],
    };
    assert_eq!(
        second.steps,
        [
            Step::Cleared {
                ips: ips(&["10.0.0.4"]),
                reason: ClearReason::NotAllowed(conflict)
            },
            Step::Allocated(assigned("p", &["10.0.0.0"])),
        ]
    );
}

#[test]
fn addresses_the_configuration_no_longer_allows_are_cleared_then_replaced() {
    let mut a = allocator(vec![pool("p", &["10.0.0.0/29"])]);
    let got = converge(&mut a, &svc("ns/s"), &["192.168.1.1"]);
    let Step::Cleared {
        reason: ClearReason::NotAllowed(err),
        ..
    } = &got.steps[0]
    else {
        panic!("{got:?}")
    };
    assert_eq!(
        err.to_string(),
        "[\"192.168.1.1\"] is not allowed in config"
    );
    assert_eq!(got.result, Ok(assigned("p", &["10.0.0.0"])));
}

#[test]
fn each_reason_to_drop_current_addresses_is_reported() {
    let pools = || {
        allocator(vec![
            pool("a", &["10.0.0.0/29", "1000::/120"]),
            pool("b", &["10.0.1.0/29"]),
        ])
    };
    let cases: Vec<(&str, Svc, &[&str], ClearReason, Assignment)> = vec![
        (
            "another pool is annotated",
            svc("ns/s").in_pool("b"),
            &["10.0.0.3"],
            ClearReason::DifferentPool,
            assigned("b", &["10.0.1.0"]),
        ),
        (
            "other addresses are requested",
            svc("ns/s").wants(&["10.0.0.6"]),
            &["10.0.0.3"],
            ClearReason::DifferentIps,
            assigned("a", &["10.0.0.6"]),
        ),
        (
            "the family changed",
            svc("ns/s").v6(),
            &["10.0.0.3"],
            ClearReason::FamilyChanged,
            assigned("a", &["1000::"]),
        ),
        (
            "held addresses are of one family twice",
            svc("ns/s"),
            &["10.0.0.3", "10.0.0.4"],
            ClearReason::FamilyChanged,
            assigned("a", &["10.0.0.0"]),
        ),
    ];
    for (desc, req, current, reason, after) in cases {
        let mut a = pools();
        let got = converge(&mut a, &req, current);
        let steps = vec![
            Step::Cleared {
                ips: ips(current),
                reason,
            },
            Step::Allocated(after.clone()),
        ];
        assert_eq!(
            got,
            Converged {
                steps,
                result: Ok(after)
            },
            "{desc}"
        );
    }
}

#[test]
fn requested_addresses_in_another_order_are_kept() {
    let mut a = allocator(vec![pool("a", &["10.0.0.0/29", "1000::/120"])]);
    let req = svc("ns/s")
        .dual(IpFamilyPolicy::RequireDualStack)
        .wants(&["1000::9", "10.0.0.3"]);
    let got = converge(&mut a, &req, &["10.0.0.3", "1000::9"]);
    assert_eq!(
        got,
        Converged {
            steps: vec![],
            result: Ok(assigned("a", &["10.0.0.3", "1000::9"]))
        }
    );
}

#[test]
fn prefer_dual_stack_adds_the_missing_family_from_the_same_pool() {
    let prefer = || svc("ns/s").dual(IpFamilyPolicy::PreferDualStack);
    let mut a = allocator(vec![pool("dual", &["10.0.0.0/29", "1000::/120"])]);
    let got = converge(&mut a, &prefer(), &["10.0.0.3"]);
    assert_eq!(got.steps, [Step::AddedFamily(ip("1000::"))]);
    assert_eq!(got.result, Ok(assigned("dual", &["10.0.0.3", "1000::"])));
    assert_eq!(
        converge(&mut a, &prefer(), &["10.0.0.3", "1000::"]).steps,
        []
    );

    let mut a = allocator(vec![
        pool("v4", &["10.0.0.0/29"]),
        pool("v6", &["1000::/120"]),
    ]);
    let got = converge(&mut a, &prefer(), &["10.0.0.3"]);
    let Step::AddFamilyFailed(err) = &got.steps[0] else {
        panic!("{got:?}")
    };
    assert_eq!(
        err.to_string(),
        "no available IPs in pool v4 for ipv6 IPFamily"
    );
    assert_eq!(
        got.result,
        Ok(assigned("v4", &["10.0.0.3"])),
        "the service keeps its one address"
    );
}

#[test]
fn prefer_dual_stack_on_a_single_stack_cluster_never_adds_a_family() {
    let mut a = allocator(vec![pool("dual", &["10.0.0.0/29", "1000::/120"])]);
    let req = svc("ns/s").families(&[IpFamily::V4], IpFamilyPolicy::PreferDualStack);
    assert_eq!(
        converge(&mut a, &req, &["10.0.0.3"]),
        Converged {
            steps: vec![],
            result: Ok(assigned("dual", &["10.0.0.3"]))
        }
    );
}

#[test]
fn services_that_cannot_be_served_lose_what_they_held() {
    let cases = [
        (
            "RequireDualStack with one cluster IP",
            svc("ns/s").families(&[IpFamily::V4], IpFamilyPolicy::RequireDualStack),
            AllocError::NotEnoughClusterIps,
        ),
        (
            "no cluster IP",
            svc("ns/s").families(&[], IpFamilyPolicy::SingleStack),
            AllocError::NoClusterIps,
        ),
        (
            "a full pool",
            svc("ns/s").in_pool("tiny"),
            AllocError::NoAvailableIpsInPool {
                pool: "tiny".into(),
                family: "ipv4",
            },
        ),
    ];
    for (desc, req, err) in cases {
        let mut a = allocator(vec![
            pool("p", &["10.0.0.0/29"]),
            pool("tiny", &["10.0.1.0/32"]),
        ]);
        a.allocate(&svc("ns/other").in_pool("tiny")).unwrap();
        a.assign(&req, &ips(&["10.0.0.1"])).unwrap();
        let got = converge(&mut a, &req, &[]);
        assert_eq!(got.result, Err(err), "{desc}");
        assert!(a.assignment(&key("ns/s")).is_none(), "{desc}: released");
    }
}

#[test]
fn without_pools_every_service_is_cleared() {
    let mut a = allocator(vec![pool("p", &["10.0.0.0/29"])]);
    a.allocate(&svc("ns/s")).unwrap();
    a.set_pools(vec![]).unwrap();
    assert_eq!(
        converge(&mut a, &svc("ns/s"), &["10.0.0.0"]).result,
        Err(AllocError::NoPools)
    );
    assert_eq!(a.assignments().count(), 0);
}
