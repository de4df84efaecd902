//! The controller against a real API server: Services get MetalLB's addresses, annotations
//! and events; restarts and pool edits move nothing that is still valid.
//!
//! The harness's API server serves dual-stack Services (IPv4 and IPv6 service CIDRs).

mod support;

use std::time::Duration;

use metallb_testenv::test_name;
use serde_json::json;
use support::Harness;

/// Long enough for the controller to have acted on something it should ignore.
const QUIET: Duration = Duration::from_secs(2);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_service_gets_the_first_address_with_the_pool_annotation_and_an_event() {
    let h = Harness::start(test_name!()).await;
    h.pool("default", &["192.168.10.0/24"]).await;
    h.apply_service(h.service("web")).await;
    h.wait_ingress("web", &["192.168.10.0"]).await;
    assert_eq!(h.pool_annotation("web").await.as_deref(), Some("default"));
    let (kind, message) = h.wait_event("web", "IPAllocated").await;
    assert_eq!(kind, "Normal");
    assert_eq!(message, r#"Assigned IP ["192.168.10.0"]"#);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requested_addresses_come_from_the_spec_or_either_annotation_prefix() {
    let h = Harness::start(test_name!()).await;
    h.pool("default", &["192.168.10.0/24"]).await;
    let mut by_spec = h.service("by-spec");
    by_spec["spec"]["loadBalancerIP"] = json!("192.168.10.50");
    h.apply_service(by_spec).await;
    let mut by_annotation = h.service("by-annotation");
    by_annotation["metadata"]["annotations"] =
        json!({"metallb.io/loadBalancerIPs": "192.168.10.60"});
    h.apply_service(by_annotation).await;
    let mut legacy = h.service("legacy");
    legacy["metadata"]["annotations"] =
        json!({"metallb.universe.tf/loadBalancerIPs": "192.168.10.70"});
    h.apply_service(legacy).await;

    h.wait_ingress("by-spec", &["192.168.10.50"]).await;
    h.wait_ingress("by-annotation", &["192.168.10.60"]).await;
    h.wait_ingress("legacy", &["192.168.10.70"]).await;
    let (kind, message) = h.wait_event("legacy", "deprecatedAnnotation").await;
    assert_eq!(kind, "Warning");
    assert_eq!(
        message,
        "Service uses deprecated annotation metallb.universe.tf/loadBalancerIPs"
    );
    assert!(
        !h.reasons("by-annotation")
            .await
            .contains(&"deprecatedAnnotation".to_owned())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pool_annotation_chooses_the_pool_even_without_auto_assign() {
    let h = Harness::start(test_name!()).await;
    h.pool("first", &["192.168.10.0/24"]).await;
    h.apply_pool(json!({
        "metadata": {"name": "manual"},
        "spec": {"addresses": ["10.20.0.10-10.20.0.20"], "autoAssign": false},
    }))
    .await;
    let mut svc = h.service("chosen");
    svc["metadata"]["annotations"] = json!({"metallb.io/address-pool": "manual"});
    h.apply_service(svc).await;
    h.wait_ingress("chosen", &["10.20.0.10"]).await;
    assert_eq!(h.pool_annotation("chosen").await.as_deref(), Some("manual"));
    h.apply_service(h.service("automatic")).await;
    h.wait_ingress("automatic", &["192.168.10.0"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_services_with_one_sharing_key_and_disjoint_ports_share_an_address() {
    let h = Harness::start(test_name!()).await;
    h.pool("default", &["192.168.10.0/24"]).await;
    for (name, port) in [("http", 80), ("https", 443)] {
        let mut svc = h.service(name);
        svc["metadata"]["annotations"] = json!({"metallb.io/allow-shared-ip": "front"});
        svc["spec"]["ports"] = json!([{"name": "main", "port": port, "protocol": "TCP"}]);
        h.apply_service(svc).await;
    }
    h.wait_ingress("http", &["192.168.10.0"]).await;
    h.wait_ingress("https", &["192.168.10.0"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_asking_for_a_shared_address_with_a_clashing_port_gets_allocation_failed() {
    let h = Harness::start(test_name!()).await;
    h.pool("default", &["192.168.10.0/24"]).await;
    let mut first = h.service("first");
    first["metadata"]["annotations"] = json!({"metallb.io/allow-shared-ip": "front"});
    h.apply_service(first).await;
    h.wait_ingress("first", &["192.168.10.0"]).await;

    let mut clash = h.service("clash");
    clash["metadata"]["annotations"] = json!({
        "metallb.io/allow-shared-ip": "front",
        "metallb.io/loadBalancerIPs": "192.168.10.0",
    });
    h.apply_service(clash).await;
    let (kind, message) = h.wait_event("clash", "AllocationFailed").await;
    assert_eq!(kind, "Warning");
    assert_eq!(
        message,
        format!(
            r#"Failed to allocate IP for "{}/clash": port TCP/80 is already in use on "192.168.10.0""#,
            h.ns
        )
    );
    let mut other_key = h.service("other-key");
    other_key["metadata"]["annotations"] = json!({
        "metallb.io/allow-shared-ip": "back",
        "metallb.io/loadBalancerIPs": "192.168.10.0",
    });
    other_key["spec"]["ports"] = json!([{"name": "main", "port": 8080, "protocol": "TCP"}]);
    h.apply_service(other_key).await;
    let (_, message) = h.wait_event("other-key", "AllocationFailed").await;
    assert_eq!(
        message,
        format!(
            r#"Failed to allocate IP for "{ns}/other-key": can't change sharing key for "{ns}/other-key", address also in use by {ns}/first"#,
            ns = h.ns
        )
    );
    assert!(h.ingress("clash").await.is_empty());
    assert!(h.ingress("other-key").await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prefer_dual_stack_gets_one_address_of_each_family_when_the_pool_has_both() {
    let h = Harness::start(test_name!()).await;
    h.pool("dual", &["192.168.10.0/24", "2001:db8::/64"]).await;
    let mut svc = h.service("prefer");
    svc["spec"]["ipFamilyPolicy"] = json!("PreferDualStack");
    h.apply_service(svc).await;
    h.wait_ingress("prefer", &["192.168.10.0", "2001:db8::"])
        .await;
    let (kind, message) = h.wait_event("prefer", "IPAllocated").await;
    assert_eq!(
        (kind.as_str(), message.as_str()),
        ("Normal", r#"Assigned IP ["192.168.10.0" "2001:db8::"]"#)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prefer_dual_stack_settles_for_ipv4_when_the_pool_has_no_ipv6() {
    let h = Harness::start(test_name!()).await;
    h.pool("v4only", &["192.168.11.0/24"]).await;
    let mut svc = h.service("prefer-v4");
    svc["spec"]["ipFamilyPolicy"] = json!("PreferDualStack");
    h.apply_service(svc).await;
    h.wait_ingress("prefer-v4", &["192.168.11.0"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn require_dual_stack_gets_both_families_or_fails_without_ipv6() {
    let h = Harness::start(test_name!()).await;
    h.pool("v4only", &["192.168.12.0/24"]).await;
    let mut svc = h.service("require");
    svc["spec"]["ipFamilyPolicy"] = json!("RequireDualStack");
    h.apply_service(svc).await;
    let (kind, _) = h.wait_event("require", "AllocationFailed").await;
    assert_eq!(kind, "Warning");
    assert!(h.ingress("require").await.is_empty());

    // Both addresses come from one pool, as in MetalLB.
    h.pool("dual", &["192.168.13.0/24", "2001:db8:1::/64"])
        .await;
    h.wait_ingress("require", &["192.168.13.0", "2001:db8:1::"])
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exhausted_pool_gives_allocation_failed_until_an_address_is_released() {
    let h = Harness::start(test_name!()).await;
    h.pool("tiny", &["192.168.10.1/32"]).await;
    h.apply_service(h.service("first")).await;
    h.wait_ingress("first", &["192.168.10.1"]).await;
    h.apply_service(h.service("second")).await;
    let (kind, message) = h.wait_event("second", "AllocationFailed").await;
    assert_eq!(kind, "Warning");
    assert_eq!(
        message,
        format!(
            r#"Failed to allocate IP for "{}/second": no available IPs"#,
            h.ns
        )
    );
    h.delete_service("first").await;
    h.wait_ingress("second", &["192.168.10.1"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_changed_away_from_load_balancer_releases_its_address() {
    let h = Harness::start(test_name!()).await;
    h.pool("tiny", &["192.168.10.1/32"]).await;
    h.apply_service(h.service("leaving")).await;
    h.wait_ingress("leaving", &["192.168.10.1"]).await;
    h.apply_service(h.service("waiting")).await;
    h.wait_event("waiting", "AllocationFailed").await;

    let mut cluster_ip = h.service("leaving");
    cluster_ip["spec"]["type"] = json!("ClusterIP");
    cluster_ip["spec"]
        .as_object_mut()
        .unwrap()
        .remove("loadBalancerClass");
    h.apply_service(cluster_ip).await;
    h.wait_ingress("waiting", &["192.168.10.1"]).await;
    support::eventually("the released service to be cleared", || async {
        let cleared =
            h.ingress("leaving").await.is_empty() && h.pool_annotation("leaving").await.is_none();
        cleared.then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_of_another_class_or_without_one_are_left_alone() {
    let h = Harness::start(test_name!()).await;
    h.pool("default", &["192.168.10.0/24"]).await;
    let mut foreign = h.service("foreign");
    foreign["spec"]["loadBalancerClass"] = json!("example.com/other");
    h.apply_service(foreign).await;
    let mut classless = h.service("classless");
    classless["spec"]
        .as_object_mut()
        .unwrap()
        .remove("loadBalancerClass");
    h.apply_service(classless).await;
    h.apply_service(h.service("ours")).await;
    h.wait_ingress("ours", &["192.168.10.0"]).await;
    tokio::time::sleep(QUIET).await;
    for name in ["foreign", "classless"] {
        assert!(h.ingress(name).await.is_empty(), "{name} got an address");
        assert!(h.events(name).await.is_empty(), "{name} got events");
        assert_eq!(h.pool_annotation(name).await, None);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_changes_no_address_even_when_a_preferred_pool_appeared_meanwhile() {
    let mut h = Harness::start(test_name!()).await;
    h.pool("default", &["192.168.10.0/24"]).await;
    for name in ["a", "b", "c"] {
        h.apply_service(h.service(name)).await;
    }
    let mut shared = h.service("shared");
    shared["metadata"]["annotations"] = json!({"metallb.io/allow-shared-ip": "k"});
    shared["spec"]["ports"] = json!([{"name": "main", "port": 443, "protocol": "TCP"}]);
    h.apply_service(shared).await;
    let mut before = Vec::new();
    for name in ["a", "b", "c", "shared"] {
        before.push(h.wait_assigned(name).await);
    }
    let events_before = h.reasons("a").await.len();
    h.stop().await;

    h.apply_pool(json!({
        "metadata": {"name": "preferred"},
        "spec": {"addresses": ["10.0.0.0/24"], "serviceAllocation": {"priority": 1}},
    }))
    .await;
    h.apply_service(h.service("newcomer")).await;
    h.launch().await;

    h.wait_ingress("newcomer", &["10.0.0.0"]).await;
    for (name, ips) in ["a", "b", "c", "shared"].iter().zip(&before) {
        assert_eq!(&h.ingress(name).await, ips, "{name} moved");
        assert_eq!(h.pool_annotation(name).await.as_deref(), Some("default"));
    }
    assert_eq!(
        h.reasons("a").await.len(),
        events_before,
        "a restart emits no event"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_shrink_moves_only_the_services_outside_the_new_range() {
    let h = Harness::start(test_name!()).await;
    h.pool("default", &["192.168.10.0/29"]).await;
    for (name, ip) in [
        ("s0", "192.168.10.0"),
        ("s1", "192.168.10.1"),
        ("s2", "192.168.10.2"),
    ] {
        h.apply_service(h.service(name)).await;
        h.wait_ingress(name, &[ip]).await;
    }
    h.pool(
        "default",
        &["192.168.10.0/31", "192.168.10.100-192.168.10.110"],
    )
    .await;
    h.wait_ingress("s2", &["192.168.10.100"]).await;
    let (kind, message) = h.wait_event("s2", "ClearAssignment").await;
    assert_eq!(kind, "Normal");
    assert_eq!(
        message,
        format!(
            r#"current IP for "{}/s2" not allowed by config, will attempt for new IP assignment: ["192.168.10.2"] is not allowed in config"#,
            h.ns
        )
    );
    for (name, ip) in [("s0", "192.168.10.0"), ("s1", "192.168.10.1")] {
        assert_eq!(h.ingress(name).await, [ip]);
        assert!(
            !h.reasons(name)
                .await
                .contains(&"ClearAssignment".to_owned())
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renamed_pool_keeps_the_address_and_deleting_every_pool_clears_it() {
    let h = Harness::start(test_name!()).await;
    h.pool("old-name", &["192.168.10.0/24"]).await;
    let mut svc = h.service("web");
    svc["spec"]["loadBalancerIP"] = json!("192.168.10.42");
    h.apply_service(h.service("first")).await;
    h.apply_service(svc).await;
    h.wait_ingress("web", &["192.168.10.42"]).await;
    h.delete_pool("old-name").await;
    h.pool("new-name", &["192.168.10.0/24"]).await;
    support::eventually("the annotation to follow the pool", || async {
        (h.pool_annotation("web").await.as_deref() == Some("new-name")).then_some(())
    })
    .await;
    assert_eq!(h.ingress("web").await, ["192.168.10.42"]);
    assert_eq!(h.ingress("first").await, ["192.168.10.0"]);
    let reasons = h.reasons("web").await;
    assert_eq!(reasons, ["IPAllocated"], "the address was never cleared");

    h.delete_pool("new-name").await;
    h.wait_ingress("web", &[]).await;
    h.wait_ingress("first", &[]).await;
    assert_eq!(h.pool_annotation("web").await, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pool_status_and_metrics_count_the_addresses_in_use() {
    let h = Harness::start(test_name!()).await;
    h.pool("counted", &["192.168.10.0/30"]).await;
    for (name, port) in [("a", 80), ("b", 80), ("c", 443)] {
        let mut svc = h.service(name);
        if name != "a" {
            svc["metadata"]["annotations"] = json!({"metallb.io/allow-shared-ip": "k"});
            svc["spec"]["ports"] = json!([{"name": "main", "port": port, "protocol": "TCP"}]);
        }
        h.apply_service(svc).await;
        h.wait_assigned(name).await;
    }
    let pools =
        kube::Api::<metallb_api::ipaddresspool::IPAddressPool>::namespaced(h.client.clone(), &h.ns);
    let status = support::eventually("the pool status to count two addresses", || async {
        let status = pools.get("counted").await.unwrap().status?;
        (status.assigned_ipv4 == Some(2)).then_some(status)
    })
    .await;
    assert_eq!(status.available_ipv4, Some(2));
    assert_eq!(status.assigned_ipv6, Some(0));
    assert_eq!(status.available_ipv6, Some(0));
    let text = h.metrics_text().await;
    assert!(
        text.contains(r#"metallb_allocator_addresses_in_use_total{pool="counted"} 2"#),
        "{text}"
    );
    assert!(
        text.contains(r#"metallb_allocator_addresses_total{pool="counted"} 4"#),
        "{text}"
    );
    assert!(
        text.contains("metallb_k8s_client_config_loaded_bool 1"),
        "{text}"
    );
    assert!(
        text.contains("metallb_k8s_client_config_stale_bool 0"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_annotation_gives_a_warning_and_the_controller_carries_on() {
    let h = Harness::start(test_name!()).await;
    h.pool("default", &["192.168.10.0/24"]).await;
    let mut svc = h.service("typo");
    svc["metadata"]["annotations"] = json!({"metallb.io/loadBalancerIPs": "192.168.10.300"});
    h.apply_service(svc.clone()).await;
    let (kind, message) = h.wait_event("typo", "AllocationFailed").await;
    assert_eq!(kind, "Warning");
    assert_eq!(
        message,
        format!(
            r#"Failed to allocate IP for "{}/typo": invalid metallb.io/loadBalancerIPs: "192.168.10.300""#,
            h.ns
        )
    );
    svc["metadata"]["annotations"] = json!({"metallb.io/loadBalancerIPs": "192.168.10.30"});
    h.apply_service(svc.clone()).await;
    h.wait_ingress("typo", &["192.168.10.30"]).await;

    svc["spec"]["loadBalancerIP"] = json!("192.168.10.31");
    h.apply_service(svc).await;
    let (kind, message) = h.wait_event("typo", "LoadBalancerFailed").await;
    assert_eq!(kind, "Warning");
    assert_eq!(
        message,
        "invalid requested loadbalancer IPs: service can not have both metallb.io/loadBalancerIPs and svc.Spec.LoadBalancerIP"
    );
    assert_eq!(
        h.ingress("typo").await,
        ["192.168.10.30"],
        "the held address is kept"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_for_labelled_namespaces_serves_a_namespace_once_it_is_labelled() {
    let h = Harness::start(test_name!()).await;
    h.apply_pool(json!({
        "metadata": {"name": "team-a"},
        "spec": {
            "addresses": ["192.168.10.0/24"],
            "serviceAllocation": {"namespaceSelectors": [{"matchLabels": {"team": "a"}}]},
        },
    }))
    .await;
    h.apply_service(h.service("web")).await;
    h.wait_event("web", "AllocationFailed").await;
    support::control_plane()
        .kubectl(["label", "namespace", &h.ns, "team=a"])
        .unwrap();
    h.wait_ingress("web", &["192.168.10.0"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_4_10_address_pool_serves_services_and_an_overlap_is_refused_as_stale() {
    let h = Harness::start(test_name!()).await;
    h.pool("current", &["192.168.10.0/24"]).await;
    let legacy = json!({
        "apiVersion": "metallb.io/v1beta1", "kind": "AddressPool",
        "metadata": {"name": "legacy", "namespace": h.ns},
        "spec": {"protocol": "layer2", "addresses": ["10.30.0.0/30"], "autoAssign": false},
    });
    h.apply::<metallb_api::addresspool::v1beta1::AddressPool>(legacy)
        .await;
    let mut svc = h.service("old-style");
    svc["metadata"]["annotations"] = json!({"metallb.universe.tf/address-pool": "legacy"});
    h.apply_service(svc).await;
    h.wait_ingress("old-style", &["10.30.0.0"]).await;
    h.apply_service(h.service("new-style")).await;
    h.wait_ingress("new-style", &["192.168.10.0"]).await;

    h.pool("overlap", &["192.168.10.128/25"]).await;
    support::eventually("the configuration to be marked stale", || async {
        let text = h.metrics_text().await;
        text.contains("metallb_k8s_client_config_stale_bool 1")
            .then_some(())
    })
    .await;
    h.apply_service(h.service("later")).await;
    h.wait_ingress("later", &["192.168.10.1"]).await;
    assert_eq!(h.ingress("old-style").await, ["10.30.0.0"]);
}
