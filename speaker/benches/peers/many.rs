//! Many Services at once on a running stack: each created through the API with its
//! EndpointSlice (16 calls in flight, as `cluster.rs` does), then the time until FRR holds a
//! route for every one from every node, read from FRR's per-neighbour prefix counts, and the
//! processes' memory once they are all there.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use futures::stream::{self, StreamExt};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Api;
use metallb_testenv::lab::Lab;

use crate::common::cluster::{NODES, create};
use crate::common::wait_for;
use crate::{Memory, Stack, System, memory};

/// How many Services the full run creates.
pub const MANY: usize = 10_000;
/// How long the routes may take, at most.
const WITHIN: Duration = Duration::from_secs(900);

/// What creating the Services showed.
pub struct Many {
    pub count: usize,
    /// From the first API call to the last one answered.
    pub created: Duration,
    /// From the first API call to every route at FRR from every node; or how many routes the
    /// node with the fewest had when [`WITHIN`] ran out.
    pub routed: Result<Duration, u64>,
    pub memory: Memory,
}

/// The address of the `i`th Service: 172.20.1.0 on, clear of the latency Services' 172.20.0.x.
fn address(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(172, 20, (1 + i / 256) as u8, (i % 256) as u8)
}

/// The `i`th Service, named the way `system` reads its address, and its EndpointSlice.
fn objects(system: System, i: usize) -> (Service, EndpointSlice) {
    let name = format!("many-{i}");
    let address = address(i).to_string();
    // So many Services would exhaust the NodePort range; no system needs one.
    let mut spec = serde_json::json!({"type": "LoadBalancer",
        "allocateLoadBalancerNodePorts": false, "ports": [{"port": 80}]});
    let (annotation, class) = system.asks_for();
    if let Some(class) = class {
        spec["loadBalancerClass"] = class.into();
    }
    let annotations = serde_json::json!({ annotation: address });
    let service = serde_json::json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": "default", "annotations": annotations},
        "spec": spec,
    });
    let slice = serde_json::json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": format!("{name}-1"), "namespace": "default",
            "labels": {"kubernetes.io/service-name": name}},
        "addressType": "IPv4", "ports": [{"port": 80}],
        "endpoints": [{"addresses": ["10.2.0.1"], "nodeName": "node1", "conditions": {"ready": true}}],
    });
    (
        serde_json::from_value(service).unwrap(),
        serde_json::from_value(slice).unwrap(),
    )
}

/// The fewest IPv4 prefixes FRR holds from any lab node.
fn fewest_routes(lab: &Lab) -> u64 {
    let summary = lab
        .vtysh_json("show bgp ipv4 unicast summary json")
        .unwrap_or_default();
    NODES
        .iter()
        .map(|host| {
            let peer = &summary["peers"][Lab::address(*host).0.to_string()];
            peer["pfxRcd"].as_u64().unwrap_or(0)
        })
        .min()
        .unwrap_or(0)
}

/// Creates `count` Services on `stack` (the system's annotation names each address) and waits
/// for their routes.
pub fn run(stack: &Stack, count: usize) -> Many {
    let before = fewest_routes(&stack.cluster.lab);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let client = runtime.block_on(stack.cp.client()).unwrap();
    let services: Api<Service> = Api::namespaced(client.clone(), "default");
    let slices: Api<EndpointSlice> = Api::namespaced(client, "default");
    let started = Instant::now();
    runtime.block_on(stream::iter(0..count).for_each_concurrent(16, |i| {
        let (services, slices) = (services.clone(), slices.clone());
        async move {
            let (service, slice) = objects(stack.system, i);
            create(&slices, &slice).await;
            create(&services, &service).await;
        }
    }));
    let created = started.elapsed();
    let want = before + count as u64;
    let routed = wait_for(WITHIN, Duration::from_secs(1), || {
        (fewest_routes(&stack.cluster.lab) >= want).then(|| started.elapsed())
    })
    .ok_or_else(|| fewest_routes(&stack.cluster.lab).saturating_sub(before));
    // The processes settle before their memory is read.
    std::thread::sleep(Duration::from_secs(5));
    Many {
        count,
        created,
        routed,
        memory: memory(stack),
    }
}
