//! MetalLB's announcement rules on the cluster, end to end: the real controller (in process)
//! assigns the addresses, three lab nodes run speakers against the real API server, the client
//! uses `arping` and FRR is the router.
//!
//! - externalTrafficPolicy Local follows the endpoints; no serving endpoint, no announcement;
//! - the exclude label and `NetworkUnavailable` move layer-2 ownership away and back;
//! - an L2Advertisement's interfaces decide where the IP is answered;
//! - a killed speaker's IPs move within its Lease;
//! - BGP: an advertisement's nodeSelectors, peers, aggregation length, communities and
//!   LOCAL_PREF (iBGP only) reach FRR from the selected nodes only;
//! - OpenShift 4.10 `AddressPool`s with protocol layer2 and bgp work end to end;
//! - all of it with only the speaker ServiceAccount's permissions from the plain install.

mod common;

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use common::cluster::{ClusterLab, lab_peers};
use common::wait_for;
use metallb_controller::Settings;
use metallb_plan as plan;
use metallb_runtime::consts::CONTROLLER_LEASE;
use metallb_runtime::lease::LeaseTiming;
use metallb_testenv::{ControlPlane, test_name};

/// The lab speakers' Lease duration (`--fencing-lease-duration` of the harness).
const LEASE: Duration = Duration::from_secs(4);

fn objects(ns: &str) -> String {
    let pools = format!(
        r#"
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {{name: l2pool, namespace: {ns}}}
spec: {{addresses: [192.168.250.208/29], autoAssign: false}}
---
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: {{name: l2, namespace: {ns}}}
spec: {{ipAddressPools: [l2pool]}}
---
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {{name: ifpool, namespace: {ns}}}
spec: {{addresses: [192.168.250.216/30], autoAssign: false}}
---
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: {{name: eth9-only, namespace: {ns}}}
spec: {{ipAddressPools: [ifpool], interfaces: [eth9]}}
---
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {{name: bgppool, namespace: {ns}}}
spec: {{addresses: [192.168.250.224/29], autoAssign: false}}
---
apiVersion: metallb.io/v1beta1
kind: BGPAdvertisement
metadata: {{name: agg, namespace: {ns}}}
spec:
  ipAddressPools: [bgppool]
  aggregationLength: 30
  localPref: 250
  communities: ["64500:200"]
  nodeSelectors:
    - matchExpressions: [{{key: kubernetes.io/hostname, operator: In, values: [node2, node3]}}]
---
apiVersion: metallb.io/v1beta1
kind: AddressPool
metadata: {{name: legacy-l2, namespace: {ns}}}
spec: {{protocol: layer2, addresses: [192.168.250.240/32], autoAssign: false}}
---
apiVersion: metallb.io/v1beta1
kind: AddressPool
metadata: {{name: legacy-bgp, namespace: {ns}}}
spec:
  protocol: bgp
  addresses: [192.168.250.241/32]
  autoAssign: false
  bgpAdvertisements: [{{communities: ["64500:300"]}}]
"#
    );
    format!("{}---{pools}", lab_peers(ns))
}

/// A LoadBalancer Service from `pool` with an EndpointSlice whose endpoints sit on `nodes`.
fn service(ns: &str, name: &str, pool: &str, local: bool, nodes: &[&str]) -> String {
    let policy = if local { "Local" } else { "Cluster" };
    let endpoints: String = nodes
        .iter()
        .enumerate()
        .map(|(i, node)| {
            format!(
                "  - {{addresses: [10.1.0.{}], nodeName: {node}, conditions: {{ready: true}}}}\n",
                i + 1
            )
        })
        .collect();
    let endpoints = if endpoints.is_empty() {
        "  []\n".to_owned()
    } else {
        endpoints
    };
    format!(
        r#"
apiVersion: v1
kind: Service
metadata:
  name: {name}
  namespace: {ns}
  annotations: {{metallb.io/address-pool: {pool}}}
spec: {{type: LoadBalancer, externalTrafficPolicy: {policy}, ports: [{{port: 80}}]}}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: {name}-1
  namespace: {ns}
  labels: {{kubernetes.io/service-name: {name}}}
addressType: IPv4
ports: [{{port: 80}}]
endpoints:
{endpoints}"#
    )
}

/// The layer-2 owner of `ip` among `alive` by MetalLB's hash (all nodes eligible).
fn winner(ip: Ipv4Addr, alive: &[&str]) -> String {
    let mut cluster = plan::Cluster::default();
    for node in ["node1", "node2", "node3"] {
        cluster.nodes.insert(node.into(), plan::Node::default());
    }
    cluster.alive = alive.iter().map(|n| n.to_string()).collect();
    let pool = plan::Pool {
        addresses: vec![plan::Addresses::Cidr(ipnet::IpNet::from(IpAddr::V4(ip)))],
        ..plan::Pool::default()
    };
    cluster.pools.insert("p".into(), pool);
    cluster
        .l2_advertisements
        .insert("l2".into(), plan::L2Advertisement::default());
    let endpoint = plan::Endpoint {
        node: Some("node1".into()),
        ..plan::Endpoint::default()
    };
    let service = plan::Service {
        ours: true,
        ingress: vec![IpAddr::V4(ip)],
        endpoints: vec![endpoint],
        ..plan::Service::default()
    };
    cluster
        .services
        .insert(plan::ServiceKey::new("ns", "s"), service);
    alive
        .iter()
        .find(|node| {
            plan::plan(&cluster, node)
                .unwrap()
                .layer2
                .contains_key(&IpAddr::V4(ip))
        })
        .unwrap()
        .to_string()
}

fn apply(cp: &ControlPlane, yaml: &str) {
    cp.kubectl_with_input(["apply", "-f", "-"], yaml).unwrap();
}

/// The address the controller assigned to `name`.
fn assigned(cp: &ControlPlane, ns: &str, name: &str) -> Ipv4Addr {
    let jsonpath = "jsonpath={.status.loadBalancer.ingress[0].ip}";
    let ip = wait_for(Duration::from_secs(20), Duration::from_millis(100), || {
        cp.kubectl(["-n", ns, "get", "service", name, "-o", jsonpath])
            .ok()
            .filter(|ip| !ip.is_empty())
    });
    ip.unwrap_or_else(|| panic!("no address for {name}"))
        .parse()
        .unwrap()
}

fn node_condition(cp: &ControlPlane, node: &str, unavailable: bool) {
    let status = if unavailable { "True" } else { "False" };
    let patch = format!(
        r#"{{"status":{{"conditions":[{{"type":"NetworkUnavailable","status":"{status}","reason":"Test","message":"test","lastTransitionTime":"2026-01-01T00:00:00Z"}}]}}}}"#
    );
    let args = [
        "patch",
        "node",
        node,
        "--subresource=status",
        "--type=merge",
        "-p",
        &patch,
    ];
    cp.kubectl(args).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metallbs_rules_decide_who_announces_what_end_to_end() {
    let cp = ControlPlane::shared();
    tokio::task::block_in_place(|| cp.install_crds()).unwrap();
    let ns = tokio::task::block_in_place(|| cp.namespace(test_name!())).unwrap();
    let namespace = ns.name().to_owned();
    let mut cluster = tokio::task::block_in_place(|| ClusterLab::up(cp, ""));

    // The real controller assigns the addresses.
    let settings = Settings {
        namespace: namespace.clone(),
        lb_class: None,
        identity: "rules-controller".into(),
        lease_name: CONTROLLER_LEASE.into(),
        lease_timing: LeaseTiming::default(),
    };
    let client = cp.client().await.unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let controller = tokio::spawn(metallb_controller::run(
        client,
        settings,
        None,
        async move {
            let _ = stopped.await;
        },
    ));

    tokio::task::block_in_place(|| {
        // The plain install's RBAC, in this test's namespace; the speakers act as its
        // ServiceAccount.
        let rbac = include_str!("../../manifests/install/10-rbac.yaml").replace(
            "namespace: metallb-system",
            &format!("namespace: {namespace}"),
        );
        apply(cp, &rbac);
        cluster.impersonate(&format!("system:serviceaccount:{namespace}:speaker"));
        apply(cp, &objects(&namespace));
        apply(
            cp,
            &service(&namespace, "local", "l2pool", true, &["node2"]),
        );
        apply(
            cp,
            &service(
                &namespace,
                "cluster",
                "l2pool",
                false,
                &["node1", "node2", "node3"],
            ),
        );
        apply(
            cp,
            &service(
                &namespace,
                "agg",
                "bgppool",
                false,
                &["node1", "node2", "node3"],
            ),
        );
        let all = ["node1", "node2", "node3"];
        apply(cp, &service(&namespace, "iface", "ifpool", false, &all));
        apply(
            cp,
            &service(&namespace, "legacy-l2", "legacy-l2", false, &["node1"]),
        );
        apply(
            cp,
            &service(&namespace, "legacy-bgp", "legacy-bgp", false, &["node1"]),
        );
        cluster.start_all(&namespace, &[]);
        rules(cp, &namespace, &mut cluster);
        let logs = cluster.full_logs();
        assert!(
            !logs.contains("forbidden"),
            "the speaker was refused something:\n{logs}"
        );
    });
    stop.send(()).unwrap();
    controller.await.unwrap().unwrap();
    drop(cluster);
    for node in ["node1", "node2", "node3"] {
        let _ = cp.kubectl(["delete", "node", node, "--wait=false"]);
    }
}

fn rules(cp: &ControlPlane, ns: &str, cluster: &mut ClusterLab) {
    let within = Duration::from_secs(30);
    // Local: only the node with the endpoint; it follows the endpoint; none, nobody.
    let local = assigned(cp, ns, "local");
    cluster.wait_owner(local, Some("node2"), within);
    apply(cp, &service(ns, "local", "l2pool", true, &["node1"]));
    cluster.wait_owner(local, Some("node1"), within);
    apply(cp, &service(ns, "local", "l2pool", true, &[]));
    cluster.wait_owner(local, None, within);

    // Cluster: the hash winner; the exclude label and NetworkUnavailable move it and back.
    let ip = assigned(cp, ns, "cluster");
    let owner = winner(ip, &["node1", "node2", "node3"]);
    cluster.wait_owner(ip, Some(&owner), within);
    let others: Vec<&str> = ["node1", "node2", "node3"]
        .into_iter()
        .filter(|n| *n != owner)
        .collect();
    let next = winner(ip, &others);
    let label = "node.kubernetes.io/exclude-from-external-load-balancers";
    cp.kubectl(["label", "node", &owner, &format!("{label}=")])
        .unwrap();
    cluster.wait_owner(ip, Some(&next), within);
    cp.kubectl(["label", "node", &owner, &format!("{label}-")])
        .unwrap();
    cluster.wait_owner(ip, Some(&owner), within);
    node_condition(cp, &owner, true);
    cluster.wait_owner(ip, Some(&next), within);
    node_condition(cp, &owner, false);
    cluster.wait_owner(ip, Some(&owner), within);
    let text = cluster.show_service(0, &format!("{ns}/cluster"));
    assert!(text.contains(&format!("owner {owner}")), "{text}");

    // An advertisement's interfaces: none of the nodes has eth9, so nobody answers on eth0;
    // naming eth0 makes the owner answer, and its ServiceL2Status lists the interface.
    let iface = assigned(cp, ns, "iface");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(cluster.arp_owner(iface), None);
    let eth0 = format!(
        "apiVersion: metallb.io/v1beta1\nkind: L2Advertisement\nmetadata: {{name: eth9-only, namespace: {ns}}}\nspec: {{ipAddressPools: [ifpool], interfaces: [eth0]}}\n"
    );
    apply(cp, &eth0);
    let iface_owner = winner(iface, &["node1", "node2", "node3"]);
    cluster.wait_owner(iface, Some(&iface_owner), within);
    let jsonpath =
        "jsonpath={range .items[*]}{.status.serviceName}={.status.interfaces[*].name};{end}";
    let statuses = wait_for(within, Duration::from_millis(100), || {
        let text = cp
            .kubectl(["-n", ns, "get", "servicel2statuses", "-o", jsonpath])
            .ok()?;
        text.contains("iface=eth0;").then_some(text)
    });
    assert!(
        statuses.is_some(),
        "no ServiceL2Status with interfaces for iface"
    );

    // BGP: the /30 aggregate goes out from node2 (eBGP) and node3 (iBGP, LOCAL_PREF 250) only.
    assigned(cp, ns, "agg");
    let prefix = "192.168.250.224/30";
    let sources = wait_for(within, Duration::from_millis(200), || {
        Some(cluster.route_sources(prefix)).filter(|s| s.len() == 2)
    });
    assert_eq!(
        sources,
        Some(vec!["node2".to_owned(), "node3".to_owned()]),
        "{}",
        cluster.logs()
    );
    let route = cluster.lab.bgp_route(prefix).unwrap().unwrap();
    for path in route["paths"].as_array().unwrap() {
        let community = path["community"]["string"].as_str().unwrap_or_default();
        assert!(community.contains("64500:200"), "{path}");
        if path["peer"]["type"] == "internal" {
            assert_eq!(path["locPrf"], 250, "{path}");
        }
    }

    // OpenShift 4.10 AddressPools: layer2 answered by the hash winner, bgp sent by every node.
    let legacy = assigned(cp, ns, "legacy-l2");
    cluster.wait_owner(
        legacy,
        Some(&winner(legacy, &["node1", "node2", "node3"])),
        within,
    );
    assigned(cp, ns, "legacy-bgp");
    let sources = wait_for(within, Duration::from_millis(200), || {
        Some(cluster.route_sources("192.168.250.241/32")).filter(|s| s.len() == 3)
    });
    assert!(sources.is_some(), "{}", cluster.logs());
    let route = cluster
        .lab
        .bgp_route("192.168.250.241/32")
        .unwrap()
        .unwrap();
    let community = route["paths"][0]["community"]["string"]
        .as_str()
        .unwrap_or_default();
    assert!(community.contains("64500:300"), "{route}");

    // A killed speaker says no goodbye: its IPs move once its Lease expires.
    let killed = Instant::now();
    let index = cluster.names.iter().position(|n| *n == owner).unwrap();
    cluster.kill(index);
    cluster.wait_owner(ip, Some(&next), LEASE * 3);
    let moved = killed.elapsed();
    println!("{owner} killed -> {next} answers after {moved:?} (Lease {LEASE:?})");
    assert!(moved < LEASE + Duration::from_secs(3), "{moved:?}");
}
