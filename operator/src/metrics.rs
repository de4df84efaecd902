//! The operator's Prometheus metrics, all under the `metallb_operator_` prefix.

use std::time::Instant;

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{
        counter::Counter,
        family::Family,
        gauge::Gauge,
        histogram::{Histogram, exponential_buckets},
    },
    registry::Registry,
};

/// Label of the failure counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FailureLabels {
    error: &'static str,
}

/// Every metric the operator exports; registered once, shared through an `Arc`.
#[derive(Debug)]
pub struct Metrics {
    reconciles: Counter,
    failures: Family<FailureLabels, Counter>,
    duration: Histogram,
    /// 1 while this replica holds the leader lease.
    pub leader: Gauge,
    /// Expiry of the webhook serving certificate, in seconds since the epoch (0 when the
    /// certificates are mounted and not managed by the operator).
    pub certificate_expiry: Gauge,
}

impl Metrics {
    /// Creates the metrics and registers them in `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Metrics {
            reconciles: Counter::default(),
            failures: Family::default(),
            // 1 ms .. 8 s: a reconcile is a handful of API calls.
            duration: Histogram::new(exponential_buckets(0.001, 2.0, 14)),
            leader: Gauge::default(),
            certificate_expiry: Gauge::default(),
        };
        let registry = registry.sub_registry_with_prefix("metallb_operator");
        registry.register(
            "reconcile_runs",
            "Reconciles of the MetalLB resource",
            metrics.reconciles.clone(),
        );
        registry.register(
            "reconcile_failures",
            "Failed reconciles, by error",
            metrics.failures.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Time a reconcile takes",
            metrics.duration.clone(),
        );
        registry.register(
            "leader",
            "Whether this replica holds the leader lease",
            metrics.leader.clone(),
        );
        registry.register(
            "webhook_certificate_expiry_timestamp_seconds",
            "When the webhook serving certificate expires",
            metrics.certificate_expiry.clone(),
        );
        metrics
    }

    /// Counts a reconcile; its duration is recorded when the returned guard drops.
    pub fn reconcile_started(&self) -> ReconcileTimer<'_> {
        self.reconciles.inc();
        ReconcileTimer {
            start: Instant::now(),
            histogram: &self.duration,
        }
    }

    /// Counts a failed reconcile.
    pub fn reconcile_failed(&self, error: &'static str) {
        self.failures.get_or_create(&FailureLabels { error }).inc();
    }
}

/// Records the duration of one reconcile when dropped.
#[derive(Debug)]
pub struct ReconcileTimer<'a> {
    start: Instant,
    histogram: &'a Histogram,
}

impl Drop for ReconcileTimer<'_> {
    fn drop(&mut self) {
        self.histogram.observe(self.start.elapsed().as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_are_exported_under_the_operator_prefix() {
        let mut registry = Registry::default();
        let metrics = Metrics::register(&mut registry);
        drop(metrics.reconcile_started());
        metrics.reconcile_failed("apply");
        metrics.leader.set(1);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        for line in [
            "metallb_operator_reconcile_runs_total 1",
            "metallb_operator_reconcile_failures_total{error=\"apply\"} 1",
            "metallb_operator_reconcile_duration_seconds_count 1",
            "metallb_operator_leader 1",
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
    }
}
