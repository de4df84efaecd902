//! What the controller reads from a Service: whether it is ours, what it asks the allocator
//! for, and what its status and annotations say now. Pure: Kubernetes objects in, plain data
//! out.

use std::collections::BTreeMap;
use std::net::IpAddr;

use k8s_openapi::api::core::v1::{ObjectReference, Service, ServiceSpec};
use metallb_allocator::{
    AllocError, IpFamily, IpFamilyPolicy, Labels, Port, Protocol, ServiceKey, ServiceRequest,
    TrafficPolicy, parse_requested_ips,
};
use metallb_api::annotations::{
    ADDRESS_POOL, ALLOW_SHARED_IP, IP_ALLOCATED_FROM_POOL, LEGACY_PREFIX, LOAD_BALANCER_IPS, PREFIX,
};

/// A Service as the controller sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceView {
    /// `namespace/name`.
    pub key: ServiceKey,
    /// `metadata.uid`, a precondition of every write.
    pub uid: String,
    /// What the controller does with it.
    pub handling: Handling,
    /// Its current `status.loadBalancer` and pool annotation.
    pub status: ObservedStatus,
    /// Annotations under the deprecated prefix (`metallb.universe.tf/...`), sorted.
    pub legacy_annotations: Vec<String>,
}

/// What the controller does with a Service.
#[derive(Debug, Clone, PartialEq)]
pub enum Handling {
    /// Another controller's: its `loadBalancerClass` is not ours.
    NotOurs,
    /// Ours, but not of type LoadBalancer: it must hold no address.
    NotLoadBalancer,
    /// Ours and of type LoadBalancer.
    Balance(Box<Balancer>),
}

/// The parts of a LoadBalancer Service the allocator needs.
#[derive(Debug, Clone, PartialEq)]
pub struct Balancer {
    /// `spec.clusterIPs` (or `spec.clusterIP`) as written, for event messages.
    pub cluster_ips: Vec<String>,
    /// Families of the cluster IPs, primary first.
    pub ip_families: Vec<IpFamily>,
    /// `spec.ipFamilyPolicy`.
    pub ip_family_policy: IpFamilyPolicy,
    /// `metallb.io/loadBalancerIPs` or `spec.loadBalancerIP`, or why they cannot be read.
    pub requested_ips: Result<Vec<IpAddr>, AllocError>,
    /// `metallb.io/address-pool`.
    pub requested_pool: Option<String>,
    /// `metallb.io/allow-shared-ip`.
    pub sharing_key: Option<String>,
    /// `spec.ports`.
    pub ports: Vec<Port>,
    /// `spec.externalTrafficPolicy`.
    pub external_traffic_policy: TrafficPolicy,
    /// `spec.selector` under the `Local` traffic policy, where it decides who may share an
    /// address; empty under `Cluster`, where it plays no part.
    pub selector: Labels,
    /// `metadata.labels`.
    pub labels: Labels,
}

/// The fields of a Service the controller writes, as they are now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObservedStatus {
    /// `status.loadBalancer.ingress[].ip`, skipping entries without an IP.
    pub ingress: Vec<String>,
    /// `metallb.io/ip-allocated-from-pool`.
    pub pool: Option<String>,
    /// Whether the deprecated `metallb.universe.tf/ip-allocated-from-pool` is present.
    pub legacy_pool: bool,
}

impl ObservedStatus {
    /// The addresses in the status: none, one, or one per family; otherwise why not.
    pub fn ips(&self) -> Result<Vec<IpAddr>, String> {
        let ips = self
            .ingress
            .iter()
            .map(|text| {
                text.parse::<IpAddr>()
                    .map_err(|_| format!("invalid IP address {text:?}"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        match ips.as_slice() {
            [a, b] if IpFamily::of(*a) == IpFamily::of(*b) => {
                Err("both addresses are of the same family".to_owned())
            }
            [_, _, _, ..] => Err("more than two addresses".to_owned()),
            _ => Ok(ips),
        }
    }
}

impl ServiceView {
    /// Reads a Service. `lb_class` is the controller's `--lb-class` (`None` when unset).
    pub fn from_service(service: &Service, lb_class: Option<&str>) -> Self {
        let meta = &service.metadata;
        let key = ServiceKey::new(
            meta.namespace.clone().unwrap_or_default(),
            meta.name.clone().unwrap_or_default(),
        );
        let empty = BTreeMap::new();
        let annotations = meta.annotations.as_ref().unwrap_or(&empty);
        let spec = service.spec.clone().unwrap_or_default();
        let handling = if !is_our_class(spec.load_balancer_class.as_deref(), lb_class) {
            Handling::NotOurs
        } else if spec.type_.as_deref() != Some("LoadBalancer") {
            Handling::NotLoadBalancer
        } else {
            let labels = meta.labels.clone().unwrap_or_default();
            Handling::Balance(Box::new(Balancer::read(&spec, annotations, labels)))
        };
        let ingress = service
            .status
            .as_ref()
            .and_then(|s| s.load_balancer.as_ref())
            .and_then(|lb| lb.ingress.as_ref())
            .map(|ingress| {
                ingress
                    .iter()
                    .filter_map(|i| i.ip.clone().filter(|ip| !ip.is_empty()))
                    .collect()
            })
            .unwrap_or_default();
        let status = ObservedStatus {
            ingress,
            pool: annotations.get(&new_key(IP_ALLOCATED_FROM_POOL)).cloned(),
            legacy_pool: annotations.contains_key(&legacy_key(IP_ALLOCATED_FROM_POOL)),
        };
        let legacy_annotations = annotations
            .keys()
            .filter(|k| k.starts_with(LEGACY_PREFIX))
            .cloned()
            .collect();
        Self {
            key,
            uid: meta.uid.clone().unwrap_or_default(),
            handling,
            status,
            legacy_annotations,
        }
    }

    /// The reference events about this Service point to.
    pub fn object_reference(&self) -> ObjectReference {
        ObjectReference {
            api_version: Some("v1".to_owned()),
            kind: Some("Service".to_owned()),
            namespace: Some(self.key.namespace.clone()),
            name: Some(self.key.name.clone()),
            uid: Some(self.uid.clone()),
            ..ObjectReference::default()
        }
    }

    /// The balancer, when the Service is ours and of type LoadBalancer.
    pub fn balancer(&self) -> Option<&Balancer> {
        match &self.handling {
            Handling::Balance(balancer) => Some(balancer),
            Handling::NotOurs | Handling::NotLoadBalancer => None,
        }
    }
}

impl Balancer {
    fn read(spec: &ServiceSpec, annotations: &BTreeMap<String, String>, labels: Labels) -> Self {
        let cluster_ips = match &spec.cluster_ips {
            Some(ips) if !ips.is_empty() => ips.clone(),
            _ => spec.cluster_ip.iter().cloned().collect(),
        };
        let ip_families = cluster_ips
            .iter()
            .filter_map(|ip| ip.parse::<IpAddr>().ok())
            .map(IpFamily::of)
            .collect();
        let ip_family_policy = match spec.ip_family_policy.as_deref() {
            Some("PreferDualStack") => IpFamilyPolicy::PreferDualStack,
            Some("RequireDualStack") => IpFamilyPolicy::RequireDualStack,
            _ => IpFamilyPolicy::SingleStack,
        };
        let requested_ips = parse_requested_ips(
            spec.load_balancer_ip.as_deref(),
            annotation(annotations, LOAD_BALANCER_IPS),
        );
        let ports = spec
            .ports
            .iter()
            .flatten()
            .filter_map(|p| {
                let protocol = match p.protocol.as_deref() {
                    None | Some("TCP") => Protocol::Tcp,
                    Some("UDP") => Protocol::Udp,
                    Some("SCTP") => Protocol::Sctp,
                    Some(_) => return None,
                };
                let port = u16::try_from(p.port).ok()?;
                Some(Port { protocol, port })
            })
            .collect();
        let external_traffic_policy = match spec.external_traffic_policy.as_deref() {
            Some("Local") => TrafficPolicy::Local,
            _ => TrafficPolicy::Cluster,
        };
        let non_empty = |s: &str| (!s.is_empty()).then(|| s.to_owned());
        Self {
            cluster_ips,
            ip_families,
            ip_family_policy,
            requested_ips,
            requested_pool: annotation(annotations, ADDRESS_POOL).and_then(non_empty),
            sharing_key: annotation(annotations, ALLOW_SHARED_IP).and_then(non_empty),
            ports,
            selector: match external_traffic_policy {
                TrafficPolicy::Local => spec.selector.clone().unwrap_or_default(),
                TrafficPolicy::Cluster => Labels::new(),
            },
            external_traffic_policy,
            labels,
        }
    }

    /// The allocator's request for this Service. Unreadable requested addresses count as
    /// none: the caller reports them.
    pub fn request(&self, key: &ServiceKey, namespace_labels: &Labels) -> ServiceRequest {
        ServiceRequest {
            key: key.clone(),
            namespace_labels: namespace_labels.clone(),
            labels: self.labels.clone(),
            ip_families: self.ip_families.clone(),
            ip_family_policy: self.ip_family_policy,
            requested_ips: self.requested_ips.clone().unwrap_or_default(),
            requested_pool: self.requested_pool.clone(),
            sharing_key: self.sharing_key.clone(),
            ports: self.ports.clone(),
            external_traffic_policy: self.external_traffic_policy,
            selector: self.selector.clone(),
        }
    }
}

/// MetalLB's class filter: without `--lb-class` only Services without a class are ours; with
/// it, only Services of exactly that class.
pub fn is_our_class(service_class: Option<&str>, lb_class: Option<&str>) -> bool {
    service_class == lb_class
}

/// An annotation by suffix: the current prefix wins when both are present (even empty).
fn annotation<'a>(annotations: &'a BTreeMap<String, String>, suffix: &str) -> Option<&'a str> {
    annotations
        .get(&new_key(suffix))
        .or_else(|| annotations.get(&legacy_key(suffix)))
        .map(String::as_str)
}

/// `metallb.io/<suffix>`.
pub fn new_key(suffix: &str) -> String {
    format!("{PREFIX}{suffix}")
}

/// `metallb.universe.tf/<suffix>`.
pub fn legacy_key(suffix: &str) -> String {
    format!("{LEGACY_PREFIX}{suffix}")
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{
        LoadBalancerIngress, LoadBalancerStatus, ServicePort, ServiceStatus,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    use super::*;

    fn service(annotations: &[(&str, &str)], spec: ServiceSpec) -> Service {
        Service {
            metadata: ObjectMeta {
                namespace: Some("web".into()),
                name: Some("front".into()),
                uid: Some("uid-1".into()),
                annotations: Some(
                    annotations
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                ),
                ..ObjectMeta::default()
            },
            spec: Some(spec),
            status: None,
        }
    }

    fn lb_spec() -> ServiceSpec {
        ServiceSpec {
            type_: Some("LoadBalancer".into()),
            cluster_ips: Some(vec!["10.96.0.10".into()]),
            ..ServiceSpec::default()
        }
    }

    fn balancer(view: &ServiceView) -> &Balancer {
        view.balancer().expect("a balancer")
    }

    #[test]
    fn without_a_class_flag_only_services_without_a_class_are_ours() {
        assert!(is_our_class(None, None));
        assert!(!is_our_class(Some("other.io/lb"), None));
        assert!(!is_our_class(None, Some("ours.io/lb")));
        assert!(!is_our_class(Some("other.io/lb"), Some("ours.io/lb")));
        assert!(is_our_class(Some("ours.io/lb"), Some("ours.io/lb")));
    }

    #[test]
    fn a_service_of_another_class_is_not_ours_whatever_its_type() {
        let mut spec = lb_spec();
        spec.load_balancer_class = Some("other.io/lb".into());
        let view = ServiceView::from_service(&service(&[], spec), None);
        assert_eq!(view.handling, Handling::NotOurs);
    }

    #[test]
    fn a_cluster_ip_service_of_ours_must_hold_no_address() {
        let spec = ServiceSpec {
            type_: Some("ClusterIP".into()),
            ..ServiceSpec::default()
        };
        let view = ServiceView::from_service(&service(&[], spec), None);
        assert_eq!(view.handling, Handling::NotLoadBalancer);
    }

    #[test]
    fn the_current_prefix_wins_over_the_deprecated_one() {
        let svc = service(
            &[
                ("metallb.io/address-pool", "new"),
                ("metallb.universe.tf/address-pool", "old"),
                ("metallb.universe.tf/allow-shared-ip", "key"),
            ],
            lb_spec(),
        );
        let view = ServiceView::from_service(&svc, None);
        let b = balancer(&view);
        assert_eq!(b.requested_pool.as_deref(), Some("new"));
        assert_eq!(b.sharing_key.as_deref(), Some("key"));
        assert_eq!(
            view.legacy_annotations,
            [
                "metallb.universe.tf/address-pool",
                "metallb.universe.tf/allow-shared-ip"
            ]
        );
    }

    #[test]
    fn an_empty_current_annotation_hides_the_deprecated_one() {
        let svc = service(
            &[
                ("metallb.io/allow-shared-ip", ""),
                ("metallb.universe.tf/allow-shared-ip", "key"),
            ],
            lb_spec(),
        );
        let view = ServiceView::from_service(&svc, None);
        assert_eq!(balancer(&view).sharing_key, None);
    }

    #[test]
    fn requested_addresses_come_from_the_annotation_or_the_spec_but_not_both() {
        let svc = service(
            &[("metallb.universe.tf/loadBalancerIPs", "192.168.1.5")],
            lb_spec(),
        );
        let view = ServiceView::from_service(&svc, None);
        assert_eq!(
            balancer(&view).requested_ips,
            Ok(vec!["192.168.1.5".parse().unwrap()])
        );
        let mut spec = lb_spec();
        spec.load_balancer_ip = Some("192.168.1.6".into());
        let svc = service(&[("metallb.io/loadBalancerIPs", "192.168.1.5")], spec);
        let view = ServiceView::from_service(&svc, None);
        assert_eq!(
            balancer(&view).requested_ips,
            Err(AllocError::BothRequested)
        );
        let svc = service(&[("metallb.io/loadBalancerIPs", "nope")], lb_spec());
        let view = ServiceView::from_service(&svc, None);
        assert_eq!(
            balancer(&view).requested_ips,
            Err(AllocError::InvalidAnnotationIps("nope".into()))
        );
    }

    #[test]
    fn families_come_from_the_cluster_ips_primary_first() {
        let mut spec = lb_spec();
        spec.cluster_ips = Some(vec!["fd00::10".into(), "10.96.0.10".into()]);
        spec.ip_family_policy = Some("PreferDualStack".into());
        let view = ServiceView::from_service(&service(&[], spec), None);
        let b = balancer(&view);
        assert_eq!(b.ip_families, [IpFamily::V6, IpFamily::V4]);
        assert_eq!(b.ip_family_policy, IpFamilyPolicy::PreferDualStack);
        let mut spec = lb_spec();
        spec.cluster_ips = None;
        spec.cluster_ip = Some("10.96.0.11".into());
        let view = ServiceView::from_service(&service(&[], spec), None);
        assert_eq!(balancer(&view).cluster_ips, ["10.96.0.11"]);
    }

    #[test]
    fn ports_and_traffic_policy_feed_the_sharing_rules() {
        let mut spec = lb_spec();
        spec.ports = Some(vec![
            ServicePort {
                port: 80,
                ..ServicePort::default()
            },
            ServicePort {
                port: 53,
                protocol: Some("UDP".into()),
                ..ServicePort::default()
            },
        ]);
        spec.external_traffic_policy = Some("Local".into());
        spec.selector = Some([("app".to_string(), "web".to_string())].into());
        let view = ServiceView::from_service(&service(&[], spec), None);
        let b = balancer(&view);
        assert_eq!(b.ports, [Port::tcp(80), Port::udp(53)]);
        let req = b.request(&view.key, &Labels::new());
        assert_eq!(req.backend_key(), "app=web");
    }

    #[test]
    fn the_observed_status_lists_ingress_ips_and_pool_annotations() {
        let mut svc = service(
            &[
                ("metallb.io/ip-allocated-from-pool", "default"),
                ("metallb.universe.tf/ip-allocated-from-pool", "default"),
            ],
            lb_spec(),
        );
        svc.status = Some(ServiceStatus {
            load_balancer: Some(LoadBalancerStatus {
                ingress: Some(vec![
                    LoadBalancerIngress {
                        ip: Some("192.168.1.1".into()),
                        ..LoadBalancerIngress::default()
                    },
                    LoadBalancerIngress {
                        hostname: Some("lb.example.com".into()),
                        ..LoadBalancerIngress::default()
                    },
                ]),
            }),
            ..ServiceStatus::default()
        });
        let view = ServiceView::from_service(&svc, None);
        assert_eq!(
            view.status,
            ObservedStatus {
                ingress: vec!["192.168.1.1".into()],
                pool: Some("default".into()),
                legacy_pool: true,
            }
        );
        let reference = view.object_reference();
        assert_eq!(reference.uid.as_deref(), Some("uid-1"));
        assert_eq!(reference.kind.as_deref(), Some("Service"));
    }
}
