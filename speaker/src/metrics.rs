//! The speaker's metrics, with MetalLB's names and labels so existing dashboards work.
//!
//! MetalLB's Go client exports some counters without the `_total` suffix
//! (`metallb_layer2_requests_received`, `metallb_bfd_session_up_events`); OpenMetrics requires
//! it on counters, so those keep MetalLB's exact name as gauges that only grow. Driver figures
//! are read from the drivers' status at every [`Metrics::refresh`]. `metallb_speaker_announced`
//! is read from the current plan at each scrape rather than kept as a family of its own: with
//! 10,000 Services its labels would be a second copy of the plan.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::sync::{Arc, PoisonError};

use metallb_plan::{DrainTrigger, Plan, ServiceKey, ServicePlan};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::bfd::BfdPeerStatus;
use crate::bgp::PeerStatus;
use crate::control::PlanSlot;
use crate::l2::L2Status;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PeerLabel {
    peer: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct IpLabel {
    ip: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TriggerLabel {
    trigger: &'static str,
}

/// Every value of `metallb_speaker_draining`'s `trigger` label: each has a series from the
/// start, so the set of series never changes.
const TRIGGERS: [&str; 6] = [
    "outOfService",
    "deleting",
    "annotation",
    "notReady",
    "cordoned",
    "taint",
];

/// The `trigger` label of `trigger` (the taint's key is in the logs, not in a label).
fn trigger_label(trigger: &DrainTrigger) -> &'static str {
    match trigger {
        DrainTrigger::OutOfService => TRIGGERS[0],
        DrainTrigger::Deleting => TRIGGERS[1],
        DrainTrigger::Annotation => TRIGGERS[2],
        DrainTrigger::NotReady => TRIGGERS[3],
        DrainTrigger::Cordoned => TRIGGERS[4],
        DrainTrigger::Taint(_) => TRIGGERS[5],
    }
}

/// Every metric of the speaker.
#[derive(Debug, Default)]
pub struct Metrics {
    /// 1 while the running configuration is not the cluster's latest (that one is invalid).
    pub stale: Gauge,
    /// 1 once a configuration from the cluster has been loaded.
    pub loaded: Gauge,
    /// Speakers whose node Lease is fresh, as seen from here.
    pub alive: Gauge,
    /// Changes of watched objects processed.
    pub updates: Counter,
    /// Configurations refused.
    pub update_errors: Counter,
    /// 1 while this speaker stands down: fenced (it cannot prove it reaches the API while
    /// its peers can) or isolated from its peers.
    pub fenced: Gauge,
    /// Services this node keeps announcing although it drains, because no other node is
    /// eligible (never blackhole).
    pub kept_draining: Gauge,
    draining: Family<TriggerLabel, Gauge>,
    announced: AnnouncedSeries,
    bgp_session_up: Family<PeerLabel, Gauge>,
    bgp_updates: Family<PeerLabel, Counter>,
    bgp_prefixes: Family<PeerLabel, Gauge>,
    bgp_updates_seen: BTreeMap<String, u64>,
    bfd_session_up: Family<PeerLabel, Gauge>,
    bfd_up_events: Family<PeerLabel, Gauge>,
    bfd_down_events: Family<PeerLabel, Gauge>,
    l2_requests: Family<IpLabel, Gauge>,
    l2_responses: Family<IpLabel, Gauge>,
    l2_gratuitous: Family<IpLabel, Gauge>,
}

impl Metrics {
    /// Registers every metric under `metallb_`.
    pub fn register(&self, registry: &mut Registry) {
        let r = registry.sub_registry_with_prefix("metallb");
        r.register(
            "k8s_client_config_stale_bool",
            "1 when the running configuration is not the cluster's latest because that is invalid",
            self.stale.clone(),
        );
        r.register(
            "k8s_client_config_loaded_bool",
            "1 once a configuration from the cluster has been loaded",
            self.loaded.clone(),
        );
        r.register(
            "k8s_client_updates",
            "Number of k8s object updates that have been processed",
            self.updates.clone(),
        );
        r.register(
            "k8s_client_update_errors",
            "Number of k8s object updates that failed for some reason",
            self.update_errors.clone(),
        );
        r.register(
            "speaker_alive_nodes",
            "Speakers whose node Lease is fresh, as seen from this node",
            self.alive.clone(),
        );
        r.register(
            "speaker_draining",
            "1 for the trigger this node drains for, 0 for the others",
            self.draining.clone(),
        );
        for trigger in TRIGGERS {
            self.draining
                .get_or_create(&TriggerLabel { trigger })
                .set(0);
        }
        r.register(
            "speaker_fenced",
            "1 while this speaker stands down: fenced from the API or isolated from its peers",
            self.fenced.clone(),
        );
        r.register(
            "speaker_never_blackhole_services",
            "Services this draining node keeps announcing because no other node is eligible",
            self.kept_draining.clone(),
        );
        r.register_collector(Box::new(self.announced.clone()));
        r.register(
            "bgp_session_up",
            "1 while the BGP session is established",
            self.bgp_session_up.clone(),
        );
        r.register(
            "bgp_updates",
            "BGP UPDATE messages sent",
            self.bgp_updates.clone(),
        );
        r.register(
            "bgp_announced_prefixes_total",
            "Prefixes currently announced on the BGP session",
            self.bgp_prefixes.clone(),
        );
        r.register(
            "bfd_session_up",
            "1 while the BFD session is up",
            self.bfd_session_up.clone(),
        );
        r.register(
            "bfd_session_up_events",
            "BFD sessions going up",
            self.bfd_up_events.clone(),
        );
        r.register(
            "bfd_session_down_events",
            "BFD sessions going down",
            self.bfd_down_events.clone(),
        );
        r.register(
            "layer2_requests_received",
            "ARP requests and neighbor solicitations received for owned IPs",
            self.l2_requests.clone(),
        );
        r.register(
            "layer2_responses_sent",
            "ARP replies and neighbor advertisements sent for owned IPs",
            self.l2_responses.clone(),
        );
        r.register(
            "layer2_gratuitous_sent",
            "Gratuitous ARP and unsolicited neighbor advertisements sent",
            self.l2_gratuitous.clone(),
        );
    }

    /// `metallb_speaker_announced` from `plan` on: a series per (service, protocol, IP) this
    /// node announces in it.
    pub fn announced(&self, plan: Arc<Plan>) {
        *self
            .announced
            .0
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Some(plan);
    }

    /// `metallb_speaker_draining`: 1 for `trigger`, 0 for every other.
    pub fn draining(&self, trigger: Option<&DrainTrigger>) {
        let on = trigger.map(trigger_label);
        for trigger in TRIGGERS {
            let value = i64::from(on == Some(trigger));
            self.draining
                .get_or_create(&TriggerLabel { trigger })
                .set(value);
        }
    }

    /// A BFD session went up or down.
    pub fn bfd_event(&self, peer: IpAddr, up: bool) {
        let label = PeerLabel {
            peer: peer.to_string(),
        };
        let family = if up {
            &self.bfd_up_events
        } else {
            &self.bfd_down_events
        };
        family.get_or_create(&label).inc();
    }

    /// The drivers' figures.
    pub fn refresh(&mut self, l2: &L2Status, bgp: &[PeerStatus], bfd: &[BfdPeerStatus]) {
        for peer in bgp {
            let label = PeerLabel {
                peer: peer.address.to_string(),
            };
            let up = i64::from(peer.state == "established");
            self.bgp_session_up.get_or_create(&label).set(up);
            let prefixes = i64::try_from(peer.prefixes_advertised).unwrap_or(i64::MAX);
            self.bgp_prefixes.get_or_create(&label).set(prefixes);
            let seen = self.bgp_updates_seen.entry(peer.name.clone()).or_default();
            // A restarted peer task counts from zero again.
            let delta = peer
                .updates_sent
                .checked_sub(*seen)
                .unwrap_or(peer.updates_sent);
            self.bgp_updates.get_or_create(&label).inc_by(delta);
            *seen = peer.updates_sent;
        }
        for session in bfd {
            let label = PeerLabel {
                peer: session.peer.to_string(),
            };
            let up = i64::from(session.state == metallb_bfd::State::Up);
            self.bfd_session_up.get_or_create(&label).set(up);
        }
        for owned in &l2.owned {
            let label = IpLabel {
                ip: owned.ip.to_string(),
            };
            let count = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
            self.l2_requests
                .get_or_create(&label)
                .set(count(owned.requests));
            self.l2_responses
                .get_or_create(&label)
                .set(count(owned.replies));
            self.l2_gratuitous
                .get_or_create(&label)
                .set(count(owned.announcements));
        }
    }
}

/// `metallb_speaker_announced`, encoded from the plan it holds at each scrape.
#[derive(Clone, Debug, Default)]
struct AnnouncedSeries(PlanSlot);

impl Collector for AnnouncedSeries {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let plan = self
            .0
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let Some(plan) = plan.filter(|p| announcements(p).next().is_some()) else {
            // No series, no family: as a family of gauges with none.
            return Ok(());
        };
        let mut metric = encoder.encode_descriptor(
            "speaker_announced",
            "1 while this node announces the service IP with the protocol",
            None,
            MetricType::Gauge,
        )?;
        for (key, protocol, ip) in announcements(&plan) {
            let service = format!("{}/{}", key.namespace, key.name);
            let ip = ip.to_string();
            let labels = [
                ("service", service.as_str()),
                ("protocol", protocol),
                ("node", plan.node.as_str()),
                ("ip", ip.as_str()),
            ];
            metric.encode_family(&labels)?.encode_gauge(&1_i64)?;
        }
        Ok(())
    }
}

/// What this node announces in `plan`: each service with `layer2` or `bgp` and each of its
/// IPs, in the order of the plan's services.
pub fn announcements(plan: &Plan) -> impl Iterator<Item = (&ServiceKey, &'static str, &IpAddr)> {
    plan.services.iter().flat_map(|(key, service)| {
        let (l2, bgp, ips) = match service {
            ServicePlan::Planned(planned) => (
                planned
                    .layer2
                    .as_ref()
                    .is_some_and(|l2| l2.reason.announces()),
                planned
                    .bgp
                    .as_ref()
                    .is_some_and(|bgp| bgp.peers.values().any(|p| p.reason.announces())),
                Some(&planned.ips),
            ),
            _ => (false, false, None),
        };
        [("layer2", l2), ("bgp", bgp)]
            .into_iter()
            .filter(|(_, on)| *on)
            .flat_map(move |(protocol, _)| {
                ips.into_iter().flatten().map(move |ip| (key, protocol, ip))
            })
    })
}

#[cfg(test)]
mod tests {
    use metallb_plan::{AllowedInterfaces, Layer2Plan, Planned, Reason};

    use super::*;

    fn layer2(reason: Reason, ips: &[&str]) -> ServicePlan {
        ServicePlan::Planned(Planned {
            ips: ips.iter().map(|ip| ip.parse().unwrap()).collect(),
            pool: "pool".into(),
            layer2: Some(Layer2Plan {
                reason,
                owner: None,
                candidates: 2,
                interfaces: AllowedInterfaces::All,
            }),
            bgp: None,
        })
    }

    fn scrape(metrics: &Metrics) -> String {
        let mut registry = Registry::default();
        metrics.register(&mut registry);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        text
    }

    #[test]
    fn announced_series_are_those_of_the_latest_plan() {
        let metrics = Metrics::default();
        assert!(!scrape(&metrics).contains("speaker_announced"));
        let mut plan = Plan {
            node: "node1".into(),
            draining: None,
            layer2: BTreeMap::new(),
            peers: BTreeMap::new(),
            services: BTreeMap::new(),
        };
        let web = ServiceKey::new("default", "web");
        let other = ServiceKey::new("default", "other");
        let lost = Reason::NotTheWinner {
            winner: "node2".into(),
        };
        plan.services
            .insert(web, layer2(Reason::Announce, &["192.0.2.1", "2001:db8::1"]));
        plan.services.insert(other, layer2(lost, &["192.0.2.2"]));
        metrics.announced(Arc::new(plan.clone()));

        let text = scrape(&metrics);
        for ip in ["192.0.2.1", "2001:db8::1"] {
            let series = format!(
                "metallb_speaker_announced{{service=\"default/web\",protocol=\"layer2\",\
                 node=\"node1\",ip=\"{ip}\"}} 1"
            );
            assert!(text.contains(&series), "{series} missing from\n{text}");
        }
        assert!(!text.contains("default/other"), "{text}");

        plan.services.clear();
        metrics.announced(Arc::new(plan));
        assert!(!scrape(&metrics).contains("speaker_announced"));
    }
}
