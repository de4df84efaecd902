use metallb_allocator::{
    IpFamily, IpFamilyPolicy, Pool, Port, ServiceKey, TrafficPolicy, parse_pool_address,
};

use super::*;
use crate::events::{self, Severity, reason};
use crate::service::Balancer;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn pool(name: &str, addresses: &[&str]) -> Pool {
    let cidrs = addresses
        .iter()
        .flat_map(|a| parse_pool_address(a).unwrap())
        .collect();
    Pool::new(name, cidrs)
}

fn allocator(pools: Vec<Pool>) -> Allocator {
    let mut alloc = Allocator::new();
    alloc.set_pools(pools).unwrap();
    alloc
}

fn balancer() -> Balancer {
    Balancer {
        cluster_ips: vec!["10.96.0.10".into()],
        ip_families: vec![IpFamily::V4],
        ip_family_policy: IpFamilyPolicy::SingleStack,
        requested_ips: Ok(Vec::new()),
        requested_pool: None,
        sharing_key: None,
        ports: vec![Port::tcp(80)],
        external_traffic_policy: TrafficPolicy::Cluster,
        selector: Labels::new(),
        labels: Labels::new(),
    }
}

fn dual(policy: IpFamilyPolicy) -> Balancer {
    Balancer {
        cluster_ips: vec!["10.96.0.10".into(), "fd00::10".into()],
        ip_families: vec![IpFamily::V4, IpFamily::V6],
        ip_family_policy: policy,
        ..balancer()
    }
}

fn view(name: &str, balancer: Balancer) -> ServiceView {
    ServiceView {
        key: ServiceKey::new("web", name),
        uid: format!("uid-{name}"),
        handling: Handling::Balance(Box::new(balancer)),
        status: ObservedStatus::default(),
        legacy_annotations: Vec::new(),
    }
}

fn with_status(mut view: ServiceView, ingress: &[&str]) -> ServiceView {
    view.status.ingress = ingress.iter().map(|s| s.to_string()).collect();
    view
}

fn run(alloc: &mut Allocator, view: &ServiceView) -> Decision {
    decide(alloc, view, &Labels::new())
}

fn balanced(pool: &str, ips: &[&str]) -> Desired {
    Desired::Balanced(Assignment {
        pool: pool.into(),
        ips: ips.iter().map(|s| ip(s)).collect(),
    })
}

fn reasons(decision: &Decision) -> Vec<&'static str> {
    decision.notices.iter().map(|n| n.reason).collect()
}

#[test]
fn a_new_service_gets_the_lowest_address_and_an_ip_allocated_event() {
    let mut alloc = allocator(vec![pool("default", &["192.168.1.10-192.168.1.20"])]);
    let decision = run(&mut alloc, &view("a", balancer()));
    assert_eq!(decision.desired, balanced("default", &["192.168.1.10"]));
    assert_eq!(
        decision.notices,
        [events::ip_allocated(&[ip("192.168.1.10")])]
    );
}

#[test]
fn a_restarted_controller_keeps_the_address_in_the_status_without_an_event() {
    let mut alloc = allocator(vec![pool("default", &["192.168.1.0/24"])]);
    let svc = with_status(view("a", balancer()), &["192.168.1.77"]);
    let decision = run(&mut alloc, &svc);
    assert_eq!(decision.desired, balanced("default", &["192.168.1.77"]));
    assert!(decision.notices.is_empty());
    let again = run(&mut alloc, &svc);
    assert_eq!(again, decision);
}

#[test]
fn an_address_outside_every_pool_is_cleared_and_replaced() {
    let mut alloc = allocator(vec![pool("default", &["192.168.1.0/30"])]);
    let svc = with_status(view("a", balancer()), &["10.0.0.7"]);
    let decision = run(&mut alloc, &svc);
    assert_eq!(decision.desired, balanced("default", &["192.168.1.0"]));
    assert_eq!(
        reasons(&decision),
        [reason::CLEAR_ASSIGNMENT, reason::IP_ALLOCATED]
    );
    assert_eq!(
        decision.notices[0].message,
        r#"current IP for "web/a" not allowed by config, will attempt for new IP assignment: ["10.0.0.7"] is not allowed in config"#
    );
}

#[test]
fn an_exhausted_pool_gives_allocation_failed_and_no_address() {
    let mut alloc = allocator(vec![pool("tiny", &["192.168.1.1/32"])]);
    run(&mut alloc, &view("a", balancer()));
    let decision = run(&mut alloc, &view("b", balancer()));
    assert_eq!(decision.desired, Desired::Cleared);
    assert_eq!(decision.notices.len(), 1);
    let notice = &decision.notices[0];
    assert_eq!(notice.severity, Severity::Warning);
    assert_eq!(notice.reason, reason::ALLOCATION_FAILED);
    assert_eq!(
        notice.message,
        r#"Failed to allocate IP for "web/b": no available IPs"#
    );
}

#[test]
fn a_service_changed_away_from_load_balancer_releases_its_address() {
    let mut alloc = allocator(vec![pool("tiny", &["192.168.1.1/32"])]);
    let mut svc = view("a", balancer());
    run(&mut alloc, &svc);
    svc.handling = Handling::NotLoadBalancer;
    let decision = run(&mut alloc, &svc);
    assert_eq!(decision, Decision::quiet(Desired::Cleared));
    assert_eq!(alloc.assignment(&svc.key), None);
    let next = run(&mut alloc, &view("b", balancer()));
    assert_eq!(next.desired, balanced("tiny", &["192.168.1.1"]));
}

#[test]
fn a_service_of_another_class_is_left_alone_unless_it_held_an_address() {
    let mut alloc = allocator(vec![pool("default", &["192.168.1.0/24"])]);
    let mut svc = with_status(view("a", balancer()), &["203.0.113.1"]);
    svc.handling = Handling::NotOurs;
    assert_eq!(run(&mut alloc, &svc), Decision::quiet(Desired::Untouched));
    let mut held = view("b", balancer());
    run(&mut alloc, &held);
    held.handling = Handling::NotOurs;
    assert_eq!(run(&mut alloc, &held), Decision::quiet(Desired::Cleared));
}

#[test]
fn without_pools_the_status_is_cleared_silently() {
    let mut alloc = Allocator::new();
    let svc = with_status(view("a", balancer()), &["192.168.1.1"]);
    assert_eq!(run(&mut alloc, &svc), Decision::quiet(Desired::Cleared));
}

#[test]
fn require_dual_stack_with_one_cluster_ip_is_refused_with_the_cluster_ips() {
    let mut alloc = allocator(vec![pool("default", &["192.168.1.0/24"])]);
    let mut b = balancer();
    b.ip_family_policy = IpFamilyPolicy::RequireDualStack;
    let decision = run(&mut alloc, &view("a", b));
    assert_eq!(decision.desired, Desired::Cleared);
    assert_eq!(
        decision.notices,
        [events::not_enough_cluster_ips(&["10.96.0.10".into()])]
    );
}

#[test]
fn require_dual_stack_takes_both_families_from_one_pool() {
    let mut alloc = allocator(vec![
        pool("v4only", &["10.0.0.0/24"]),
        pool("zdual", &["192.168.1.0/24", "2001:db8::/64"]),
    ]);
    let decision = run(
        &mut alloc,
        &view("a", dual(IpFamilyPolicy::RequireDualStack)),
    );
    assert_eq!(
        decision.desired,
        balanced("zdual", &["192.168.1.0", "2001:db8::"])
    );
    assert_eq!(
        decision.notices[0].message,
        r#"Assigned IP ["192.168.1.0" "2001:db8::"]"#
    );
}

#[test]
fn prefer_dual_stack_falls_back_to_one_family_then_adds_the_other() {
    let mut alloc = allocator(vec![pool("dual", &["192.168.1.0/24"])]);
    let svc = view("a", dual(IpFamilyPolicy::PreferDualStack));
    let first = run(&mut alloc, &svc);
    assert_eq!(first.desired, balanced("dual", &["192.168.1.0"]));
    let again = run(&mut alloc, &svc);
    assert_eq!(reasons(&again), [reason::ADDITIONAL_ASSIGN_FAILED]);
    assert_eq!(
        again.notices[0].message,
        "cannot assign additional IP in PreferDualStack: no available IPs in pool dual for ipv6 IPFamily"
    );
    alloc
        .set_pools(vec![pool("dual", &["192.168.1.0/24", "2001:db8::/64"])])
        .unwrap();
    let upgraded = run(&mut alloc, &svc);
    assert_eq!(
        upgraded.desired,
        balanced("dual", &["192.168.1.0", "2001:db8::"])
    );
    assert_eq!(upgraded.notices, [events::additional_ip(ip("2001:db8::"))]);
}

#[test]
fn two_services_share_an_address_with_disjoint_ports_and_a_third_conflicts() {
    let mut alloc = allocator(vec![pool("default", &["192.168.1.0/24"])]);
    let shared = |name: &str, port: u16| {
        let mut b = balancer();
        b.sharing_key = Some("key".into());
        b.ports = vec![Port::tcp(port)];
        view(name, b)
    };
    let a = run(&mut alloc, &shared("a", 80));
    let b = run(&mut alloc, &shared("b", 443));
    assert_eq!(a.desired, balanced("default", &["192.168.1.0"]));
    assert_eq!(b.desired, a.desired);
    let mut c = balancer();
    c.requested_ips = Ok(vec![ip("192.168.1.0")]);
    let c = run(&mut alloc, &view("c", c));
    assert_eq!(c.desired, Desired::Cleared);
    assert_eq!(
        c.notices[0].message,
        r#"Failed to allocate IP for "web/c": can't change sharing key for "web/c", address also in use by web/a,web/b"#
    );
}

#[test]
fn an_unreadable_request_fails_allocation_for_a_service_without_an_address() {
    let mut alloc = allocator(vec![pool("default", &["192.168.1.0/24"])]);
    let mut b = balancer();
    b.requested_ips = Err(AllocError::InvalidAnnotationIps("nope".into()));
    let decision = run(&mut alloc, &view("a", b));
    assert_eq!(decision.desired, Desired::Cleared);
    assert_eq!(
        decision.notices[0].message,
        r#"Failed to allocate IP for "web/a": invalid metallb.io/loadBalancerIPs: "nope""#
    );
}

#[test]
fn an_unreadable_request_keeps_the_address_held_with_load_balancer_failed() {
    let mut alloc = allocator(vec![pool("default", &["192.168.1.0/24"])]);
    let mut b = balancer();
    b.requested_ips = Err(AllocError::BothRequested);
    let svc = with_status(view("a", b), &["192.168.1.9"]);
    let decision = run(&mut alloc, &svc);
    assert_eq!(decision.desired, balanced("default", &["192.168.1.9"]));
    assert_eq!(reasons(&decision), [reason::LOAD_BALANCER_FAILED]);
    let taken = run(&mut alloc, &view("b", balancer()));
    assert_eq!(taken.desired, balanced("default", &["192.168.1.0"]));
}

#[test]
fn an_unreadable_request_without_pools_clears_silently() {
    let mut alloc = Allocator::new();
    let mut b = balancer();
    b.requested_ips = Err(AllocError::BothRequested);
    let svc = with_status(view("a", b), &["192.168.1.9"]);
    assert_eq!(run(&mut alloc, &svc), Decision::quiet(Desired::Cleared));
}

#[test]
fn a_malformed_status_is_reported_and_replaced() {
    let mut alloc = allocator(vec![pool("default", &["192.168.1.0/24"])]);
    let svc = with_status(view("a", balancer()), &["192.168.1.1", "192.168.1.2"]);
    let decision = run(&mut alloc, &svc);
    assert_eq!(
        reasons(&decision),
        [reason::NO_LB_IPS_FAMILY, reason::IP_ALLOCATED]
    );
    assert_eq!(
        decision.notices[0].message,
        r#"Failed to retrieve LBIPs IPFamily for ["192.168.1.1" "192.168.1.2"]: both addresses are of the same family"#
    );
    assert_eq!(decision.desired, balanced("default", &["192.168.1.0"]));
}

#[test]
fn the_pool_annotation_moves_a_service_to_the_named_pool() {
    let mut alloc = allocator(vec![
        pool("a-first", &["10.0.0.0/24"]),
        pool("b-second", &["10.0.1.0/24"]),
    ]);
    let mut svc = view("a", balancer());
    assert_eq!(
        run(&mut alloc, &svc).desired,
        balanced("a-first", &["10.0.0.0"])
    );
    let mut b = balancer();
    b.requested_pool = Some("b-second".into());
    svc.handling = Handling::Balance(Box::new(b));
    let moved = run(&mut alloc, &svc);
    assert_eq!(moved.desired, balanced("b-second", &["10.0.1.0"]));
    assert_eq!(reasons(&moved), [reason::IP_ALLOCATED]);
}

#[test]
fn a_write_is_needed_only_when_status_or_annotations_differ() {
    let desired = balanced("default", &["192.168.1.1"]);
    let exact = written(&desired, &ObservedStatus::default());
    assert!(!needs_write(&exact, &desired));
    let mut legacy = exact.clone();
    legacy.legacy_pool = true;
    assert!(needs_write(&legacy, &desired));
    let mut other_pool = exact.clone();
    other_pool.pool = Some("other".into());
    assert!(needs_write(&other_pool, &desired));
    assert!(needs_write(&exact, &Desired::Cleared));
    assert!(!needs_write(&ObservedStatus::default(), &Desired::Cleared));
    assert!(!needs_write(&exact, &Desired::Untouched));
}

#[test]
fn the_status_patch_writes_everything_the_controller_owns() {
    let patch = status_patch("u1", &balanced("default", &["192.168.1.1"]));
    assert_eq!(
        patch,
        json!({
            "metadata": {
                "uid": "u1",
                "annotations": {
                    "metallb.io/ip-allocated-from-pool": "default",
                    "metallb.universe.tf/ip-allocated-from-pool": null,
                },
            },
            "status": {"loadBalancer": {"ingress": [{"ip": "192.168.1.1"}]}},
        })
    );
    let cleared = status_patch("u1", &Desired::Cleared);
    assert_eq!(cleared["status"]["loadBalancer"], Value::Null);
    assert_eq!(
        cleared["metadata"]["annotations"]["metallb.io/ip-allocated-from-pool"],
        Value::Null
    );
}
