//! What the speaker keeps of every Service and EndpointSlice of the cluster: the few fields
//! the planner and the Services' events read, in place of the typed objects. A typed Service
//! is 824 bytes and an EndpointSlice 432 before any of their strings, nearly all of it empty
//! optional fields; with 10,000 of each, the stores were a third of the speaker's heap.

use std::borrow::Cow;
use std::net::IpAddr;

use k8s_openapi::api::core::v1::{ObjectReference, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::reflector::Lookup;
use metallb_plan as plan;

use super::inputs::SERVICE_NAME_LABEL;

/// [`Lookup`] for a view of a namespaced kind of version v1: what the reflector's store keys
/// it by. The keys carry no resourceVersion and no UID: the store neither compares nor hashes
/// them, and with 10,000 Services each copy is half a megabyte.
macro_rules! lookup {
    ($view:ty, $kind:literal, $group:literal, $plural:literal) => {
        impl Lookup for $view {
            type DynamicType = ();

            fn kind(_: &()) -> Cow<'_, str> {
                $kind.into()
            }

            fn group(_: &()) -> Cow<'_, str> {
                $group.into()
            }

            fn version(_: &()) -> Cow<'_, str> {
                "v1".into()
            }

            fn plural(_: &()) -> Cow<'_, str> {
                $plural.into()
            }

            fn name(&self) -> Option<Cow<'_, str>> {
                Some(self.name.as_str().into())
            }

            fn namespace(&self) -> Option<Cow<'_, str>> {
                Some(self.namespace.as_str().into())
            }

            fn resource_version(&self) -> Option<Cow<'_, str>> {
                None
            }

            fn uid(&self) -> Option<Cow<'_, str>> {
                None
            }
        }
    };
}

/// A Service as the speaker reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceView {
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// Its UID, for the events about it.
    pub uid: Option<String>,
    /// Whether its type is `LoadBalancer`.
    pub load_balancer: bool,
    /// Its `loadBalancerClass`.
    pub class: Option<String>,
    /// Whether its `externalTrafficPolicy` is `Local`.
    pub local: bool,
    /// Its ingress IPs; entries that are no IP (a hostname) are left out.
    pub ingress: Vec<IpAddr>,
}

impl ServiceView {
    /// What the speaker keeps of `service`.
    pub fn of(service: Service) -> Self {
        let spec = service.spec.unwrap_or_default();
        let ingress = service
            .status
            .and_then(|status| status.load_balancer?.ingress)
            .into_iter()
            .flatten()
            .filter_map(|ingress| ingress.ip?.parse().ok())
            .collect();
        ServiceView {
            namespace: service.metadata.namespace.unwrap_or_default(),
            name: service.metadata.name.unwrap_or_default(),
            uid: service.metadata.uid,
            load_balancer: spec.type_.as_deref() == Some("LoadBalancer"),
            class: spec.load_balancer_class,
            local: spec.external_traffic_policy.as_deref() == Some("Local"),
            ingress,
        }
    }

    /// The reference events about the Service carry.
    pub fn reference(&self) -> ObjectReference {
        ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Service".into()),
            namespace: Some(self.namespace.clone()),
            name: Some(self.name.clone()),
            uid: self.uid.clone(),
            ..ObjectReference::default()
        }
    }
}

lookup!(ServiceView, "Service", "", "services");

/// An EndpointSlice as the speaker reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SliceView {
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// The Service it belongs to (its `kubernetes.io/service-name` label).
    pub service: Option<String>,
    /// Its endpoints: node, ready and serving.
    pub endpoints: Vec<plan::Endpoint>,
}

impl SliceView {
    /// What the speaker keeps of `slice`.
    pub fn of(slice: EndpointSlice) -> Self {
        let service = slice
            .metadata
            .labels
            .and_then(|mut labels| labels.remove(SERVICE_NAME_LABEL));
        let endpoints = slice
            .endpoints
            .into_iter()
            .flatten()
            .map(|endpoint| {
                let conditions = endpoint.conditions.unwrap_or_default();
                plan::Endpoint {
                    node: endpoint.node_name,
                    ready: conditions.ready,
                    serving: conditions.serving,
                }
            })
            .collect();
        SliceView {
            namespace: slice.metadata.namespace.unwrap_or_default(),
            name: slice.metadata.name.unwrap_or_default(),
            service,
            endpoints,
        }
    }
}

lookup!(
    SliceView,
    "EndpointSlice",
    "discovery.k8s.io",
    "endpointslices"
);

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{
        LoadBalancerIngress, LoadBalancerStatus, ServiceSpec, ServiceStatus,
    };
    use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    use super::*;

    #[test]
    fn a_service_keeps_its_identity_type_class_policy_and_ingress_ips() {
        let service = Service {
            metadata: ObjectMeta {
                namespace: Some("default".into()),
                name: Some("web".into()),
                uid: Some("u-1".into()),
                ..ObjectMeta::default()
            },
            spec: Some(ServiceSpec {
                type_: Some("LoadBalancer".into()),
                load_balancer_class: Some("metallb".into()),
                external_traffic_policy: Some("Local".into()),
                ..ServiceSpec::default()
            }),
            status: Some(ServiceStatus {
                load_balancer: Some(LoadBalancerStatus {
                    ingress: Some(vec![
                        LoadBalancerIngress {
                            ip: Some("192.168.10.1".into()),
                            ..LoadBalancerIngress::default()
                        },
                        LoadBalancerIngress {
                            hostname: Some("lb.example".into()),
                            ..LoadBalancerIngress::default()
                        },
                    ]),
                }),
                ..ServiceStatus::default()
            }),
        };
        let view = ServiceView::of(service);
        assert_eq!(
            view,
            ServiceView {
                namespace: "default".into(),
                name: "web".into(),
                uid: Some("u-1".into()),
                load_balancer: true,
                class: Some("metallb".into()),
                local: true,
                ingress: vec!["192.168.10.1".parse().unwrap()],
            }
        );
        let key = view.to_object_ref(());
        assert_eq!(
            (key.namespace.as_deref(), key.name.as_str()),
            (Some("default"), "web")
        );
        assert_eq!(key.extra.uid, None, "the view keeps the UID, not its key");
        let reference = view.reference();
        assert_eq!(reference.kind.as_deref(), Some("Service"));
        assert_eq!(reference.uid.as_deref(), Some("u-1"));
    }

    #[test]
    fn a_slice_keeps_its_service_and_each_endpoints_node_and_conditions() {
        let slice = EndpointSlice {
            metadata: ObjectMeta {
                namespace: Some("default".into()),
                name: Some("web-abc".into()),
                labels: Some([(SERVICE_NAME_LABEL.to_owned(), "web".to_owned())].into()),
                ..ObjectMeta::default()
            },
            endpoints: Some(vec![Endpoint {
                node_name: Some("node1".into()),
                conditions: Some(EndpointConditions {
                    ready: Some(false),
                    serving: Some(true),
                    terminating: Some(true),
                }),
                addresses: vec!["10.0.0.1".into()],
                ..Endpoint::default()
            }]),
            ..EndpointSlice::default()
        };
        let view = SliceView::of(slice);
        let key = view.to_object_ref(());
        assert_eq!(
            (key.namespace.as_deref(), key.name.as_str()),
            (Some("default"), "web-abc")
        );
        assert_eq!(view.service.as_deref(), Some("web"));
        assert_eq!(
            view.endpoints,
            [plan::Endpoint {
                node: Some("node1".into()),
                ready: Some(false),
                serving: Some(true),
            }]
        );
    }
}
