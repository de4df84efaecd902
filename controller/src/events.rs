//! Events on Services, with MetalLB's reasons and messages, and the workers that publish them
//! through kube's event recorder.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use k8s_openapi::api::core::v1::ObjectReference;
use kube::Client;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use metallb_allocator::{AllocError, ServiceKey};
use tokio::sync::{Mutex, mpsc};
use tokio::task::JoinSet;
use tracing::warn;

/// Event reasons, exactly as MetalLB writes them.
pub mod reason {
    /// Addresses were assigned (Normal).
    pub const IP_ALLOCATED: &str = "IPAllocated";
    /// No address could be assigned (Warning).
    pub const ALLOCATION_FAILED: &str = "AllocationFailed";
    /// The current addresses are no longer allowed and are dropped (Normal).
    pub const CLEAR_ASSIGNMENT: &str = "ClearAssignment";
    /// `PreferDualStack` could not get the second family (Normal).
    pub const ADDITIONAL_ASSIGN_FAILED: &str = "AdditionalAssignFailed";
    /// The requested addresses cannot be read while the Service holds some (Warning).
    pub const LOAD_BALANCER_FAILED: &str = "LoadBalancerFailed";
    /// `RequireDualStack` with a single cluster IP (Warning).
    pub const NOT_ENOUGH_CLUSTER_IPS: &str = "not enough clusterips";
    /// The addresses in the status are not one address or one per family (Warning).
    pub const NO_LB_IPS_FAMILY: &str = "nolbIPsIPFamily";
    /// The Service uses an annotation of the `metallb.universe.tf/` prefix (Warning).
    pub const DEPRECATED_ANNOTATION: &str = "deprecatedAnnotation";
}

/// The longest note the events API accepts, in bytes.
const NOTE_LIMIT: usize = 1024;

/// Event severity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// Something happened as expected.
    Normal,
    /// Something needs the user's attention.
    Warning,
}

/// One event about a Service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    /// Normal or Warning.
    pub severity: Severity,
    /// MetalLB's reason (see [`reason`]).
    pub reason: &'static str,
    /// What the controller did (`Allocate`, `Clear`, `Validate`); the events API requires one.
    pub action: &'static str,
    /// MetalLB's message.
    pub message: String,
}

impl Notice {
    fn new(
        severity: Severity,
        reason: &'static str,
        action: &'static str,
        message: String,
    ) -> Self {
        Self {
            severity,
            reason,
            action,
            message,
        }
    }

    /// `IPAllocated`: `Assigned IP ["<ip>" ...]`.
    pub fn ip_allocated(ips: &[IpAddr]) -> Self {
        let message = format!("Assigned IP {}", Quoted(ips));
        Self::new(Severity::Normal, reason::IP_ALLOCATED, "Allocate", message)
    }

    /// `IPAllocated`: `Assigned additional IP "<ip>"`.
    pub fn additional_ip(ip: IpAddr) -> Self {
        let message = format!("Assigned additional IP \"{ip}\"");
        Self::new(Severity::Normal, reason::IP_ALLOCATED, "Allocate", message)
    }

    /// `AllocationFailed`: `Failed to allocate IP for "<key>": <err>`.
    pub fn allocation_failed(key: &ServiceKey, err: &AllocError) -> Self {
        let message = format!("Failed to allocate IP for \"{key}\": {err}");
        Self::new(
            Severity::Warning,
            reason::ALLOCATION_FAILED,
            "Allocate",
            message,
        )
    }

    /// `ClearAssignment`: the current addresses are refused by the configuration.
    pub fn clear_assignment(key: &ServiceKey, err: &AllocError) -> Self {
        let message = format!(
            "current IP for \"{key}\" not allowed by config, will attempt for new IP assignment: {err}"
        );
        Self::new(Severity::Normal, reason::CLEAR_ASSIGNMENT, "Clear", message)
    }

    /// `AdditionalAssignFailed`: `PreferDualStack` found no address of the other family.
    pub fn additional_assign_failed(err: &AllocError) -> Self {
        let message = format!("cannot assign additional IP in PreferDualStack: {err}");
        Self::new(
            Severity::Normal,
            reason::ADDITIONAL_ASSIGN_FAILED,
            "Allocate",
            message,
        )
    }

    /// `LoadBalancerFailed`: `invalid requested loadbalancer IPs: <err>`.
    pub fn load_balancer_failed(err: &AllocError) -> Self {
        let message = format!("invalid requested loadbalancer IPs: {err}");
        Self::new(
            Severity::Warning,
            reason::LOAD_BALANCER_FAILED,
            "Validate",
            message,
        )
    }

    /// `not enough clusterips`: `Service requires dual stack but not enough clusterips [...]`.
    pub fn not_enough_cluster_ips(cluster_ips: &[String]) -> Self {
        let message = format!(
            "Service requires dual stack but not enough clusterips [{}]",
            cluster_ips.join(" ")
        );
        Self::new(
            Severity::Warning,
            reason::NOT_ENOUGH_CLUSTER_IPS,
            "Validate",
            message,
        )
    }

    /// `nolbIPsIPFamily`: the status holds something other than one address per family.
    pub fn lb_ips_family(ingress: &[String], detail: &str) -> Self {
        let list: Vec<String> = ingress.iter().map(|ip| format!("{ip:?}")).collect();
        let message = format!(
            "Failed to retrieve LBIPs IPFamily for [{}]: {detail}",
            list.join(" ")
        );
        Self::new(
            Severity::Warning,
            reason::NO_LB_IPS_FAMILY,
            "Validate",
            message,
        )
    }

    /// `deprecatedAnnotation`: `Service uses deprecated annotation <key>`.
    pub fn deprecated_annotation(key: &str) -> Self {
        let message = format!("Service uses deprecated annotation {key}");
        Self::new(
            Severity::Warning,
            reason::DEPRECATED_ANNOTATION,
            "Update",
            message,
        )
    }

    /// The event to publish, with the note cut to what the API accepts.
    fn event(&self) -> Event {
        let mut note = self.message.clone();
        if note.len() > NOTE_LIMIT {
            let mut end = NOTE_LIMIT;
            while !note.is_char_boundary(end) {
                end -= 1;
            }
            note.truncate(end);
        }
        Event {
            type_: match self.severity {
                Severity::Normal => EventType::Normal,
                Severity::Warning => EventType::Warning,
            },
            reason: self.reason.to_owned(),
            note: Some(note),
            action: self.action.to_owned(),
            secondary: None,
        }
    }
}

/// Addresses as Go's `%q` prints a slice of them: `["10.0.0.1" "2001:db8::1"]`.
struct Quoted<'a>(&'a [IpAddr]);

impl fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[")?;
        for (i, ip) in self.0.iter().enumerate() {
            let sep = if i == 0 { "" } else { " " };
            write!(f, "{sep}\"{ip}\"")?;
        }
        f.write_str("]")
    }
}

/// Sends events to a few publishing workers, so the reconcile loop never waits on the API
/// server for them (only for room in the queue).
#[derive(Debug, Clone)]
pub struct EventSink {
    queue: mpsc::Sender<(Notice, ObjectReference)>,
}

impl EventSink {
    /// Starts `workers` publishers; they stop once every sink is dropped and the queue is
    /// drained.
    pub fn start(client: Client, reporter: Reporter, workers: usize) -> (Self, JoinSet<()>) {
        let (queue, rx) = mpsc::channel::<(Notice, ObjectReference)>(1024);
        let rx = Arc::new(Mutex::new(rx));
        let mut tasks = JoinSet::new();
        for _ in 0..workers.max(1) {
            let (client, reporter, rx) = (client.clone(), reporter.clone(), rx.clone());
            tasks.spawn(async move {
                loop {
                    let next = rx.lock().await.recv().await;
                    let Some((notice, reference)) = next else {
                        break;
                    };
                    publish(&client, &reporter, &notice, &reference).await;
                }
            });
        }
        (Self { queue }, tasks)
    }

    /// Queues an event about `reference`.
    pub async fn send(&self, notice: Notice, reference: ObjectReference) {
        // The workers only stop after every sink is gone, so the queue is open here.
        let _ = self.queue.send((notice, reference)).await;
    }
}

/// Publishes one event. Each event gets a recorder of its own: kube's recorder folds events
/// of one reason into a series that keeps the first message, and MetalLB's messages carry the
/// addresses, so repeats are suppressed by the caller instead.
async fn publish(
    client: &Client,
    reporter: &Reporter,
    notice: &Notice,
    reference: &ObjectReference,
) {
    let recorder = Recorder::new(client.clone(), reporter.clone());
    if let Err(error) = recorder.publish(&notice.event(), reference).await {
        warn!(
            %error,
            reason = notice.reason,
            service = reference.name.as_deref().unwrap_or_default(),
            namespace = reference.namespace.as_deref().unwrap_or_default(),
            "could not publish event"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn messages_read_like_metallb() {
        let key = ServiceKey::new("web", "front");
        assert_eq!(
            Notice::ip_allocated(&[ip("10.0.0.1"), ip("2001:db8::1")]).message,
            r#"Assigned IP ["10.0.0.1" "2001:db8::1"]"#
        );
        assert_eq!(
            Notice::additional_ip(ip("2001:db8::1")).message,
            r#"Assigned additional IP "2001:db8::1""#
        );
        assert_eq!(
            Notice::allocation_failed(&key, &AllocError::NoAvailableIps).message,
            r#"Failed to allocate IP for "web/front": no available IPs"#
        );
        let not_allowed = AllocError::NotAllowed {
            ips: vec![ip("10.0.0.9")],
        };
        assert_eq!(
            Notice::clear_assignment(&key, &not_allowed).message,
            r#"current IP for "web/front" not allowed by config, will attempt for new IP assignment: ["10.0.0.9"] is not allowed in config"#
        );
        assert_eq!(
            Notice::not_enough_cluster_ips(&["10.96.0.1".into()]).message,
            "Service requires dual stack but not enough clusterips [10.96.0.1]"
        );
        assert_eq!(
            Notice::load_balancer_failed(&AllocError::BothRequested).message,
            "invalid requested loadbalancer IPs: service can not have both metallb.io/loadBalancerIPs and svc.Spec.LoadBalancerIP"
        );
        assert_eq!(
            Notice::deprecated_annotation("metallb.universe.tf/address-pool").message,
            "Service uses deprecated annotation metallb.universe.tf/address-pool"
        );
    }

    #[test]
    fn severities_follow_the_reference() {
        let key = ServiceKey::new("a", "b");
        let err = AllocError::NoAvailableIps;
        assert_eq!(Notice::ip_allocated(&[]).severity, Severity::Normal);
        assert_eq!(
            Notice::clear_assignment(&key, &err).severity,
            Severity::Normal
        );
        assert_eq!(
            Notice::additional_assign_failed(&err).severity,
            Severity::Normal
        );
        assert_eq!(
            Notice::allocation_failed(&key, &err).severity,
            Severity::Warning
        );
        assert_eq!(
            Notice::load_balancer_failed(&err).severity,
            Severity::Warning
        );
        assert_eq!(
            Notice::deprecated_annotation("k").severity,
            Severity::Warning
        );
    }

    #[test]
    fn long_notes_are_cut_on_a_character_boundary() {
        let notice = Notice::new(Severity::Warning, "R", "A", "é".repeat(600));
        let note = notice.event().note.unwrap();
        assert!(note.len() <= NOTE_LIMIT);
        assert!(note.chars().all(|c| c == 'é'));
    }
}
