//! The controller's Prometheus metrics, under MetalLB's names. The registry holds handles to
//! the same series, so `/metrics` reads what the reconcile loop sets here.

use std::collections::BTreeSet;

use metallb_allocator::PoolCounters;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// The `pool` label of the allocator metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PoolLabel {
    pool: String,
}

/// Every metric the controller exports.
#[derive(Debug, Default)]
pub struct Metrics {
    in_use: Family<PoolLabel, Gauge>,
    total: Family<PoolLabel, Gauge>,
    v4_in_use: Family<PoolLabel, Gauge>,
    v4_total: Family<PoolLabel, Gauge>,
    v6_in_use: Family<PoolLabel, Gauge>,
    v6_total: Family<PoolLabel, Gauge>,
    config_loaded: Gauge,
    config_stale: Gauge,
    updates: Counter,
    update_errors: Counter,
    /// Pools currently exported, to drop the series of removed ones.
    exported: BTreeSet<String>,
}

impl Metrics {
    /// Creates the metrics and registers them in `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self::default();
        let allocator = registry.sub_registry_with_prefix("metallb_allocator");
        allocator.register(
            "addresses_in_use_total",
            "Number of IP addresses in use, per pool",
            metrics.in_use.clone(),
        );
        allocator.register(
            "addresses_total",
            "Number of usable IP addresses, per pool",
            metrics.total.clone(),
        );
        let families = [
            (
                "ipv4_addresses_in_use_total",
                "IPv4 addresses in use, per pool",
                &metrics.v4_in_use,
            ),
            (
                "ipv4_addresses_total",
                "Usable IPv4 addresses, per pool",
                &metrics.v4_total,
            ),
            (
                "ipv6_addresses_in_use_total",
                "IPv6 addresses in use, per pool",
                &metrics.v6_in_use,
            ),
            (
                "ipv6_addresses_total",
                "Usable IPv6 addresses, per pool",
                &metrics.v6_total,
            ),
        ];
        for (name, help, family) in families {
            allocator.register(name, help, family.clone());
        }
        let client = registry.sub_registry_with_prefix("metallb_k8s_client");
        client.register(
            "config_loaded_bool",
            "1 if the MetalLB configuration was successfully loaded at least once",
            metrics.config_loaded.clone(),
        );
        client.register(
            "config_stale_bool",
            "1 if running on a stale configuration, because the latest config failed to load",
            metrics.config_stale.clone(),
        );
        client.register(
            "updates",
            "Number of k8s object updates that have been processed",
            metrics.updates.clone(),
        );
        client.register(
            "update_errors",
            "Number of k8s object updates that failed for some reason",
            metrics.update_errors.clone(),
        );
        metrics
    }

    /// The pools' usage after a change; series of pools not listed any more are removed.
    pub fn set_pools<'a>(&mut self, pools: impl IntoIterator<Item = (&'a str, PoolCounters)>) {
        let mut now = BTreeSet::new();
        for (name, c) in pools {
            let label = PoolLabel {
                pool: name.to_owned(),
            };
            let in_use = c.assigned_ipv4.saturating_add(c.assigned_ipv6);
            let total = in_use
                .saturating_add(c.available_ipv4)
                .saturating_add(c.available_ipv6);
            self.in_use.get_or_create(&label).set(in_use);
            self.total.get_or_create(&label).set(total);
            let v4_total = c.assigned_ipv4.saturating_add(c.available_ipv4);
            let v6_total = c.assigned_ipv6.saturating_add(c.available_ipv6);
            self.v4_in_use.get_or_create(&label).set(c.assigned_ipv4);
            self.v4_total.get_or_create(&label).set(v4_total);
            self.v6_in_use.get_or_create(&label).set(c.assigned_ipv6);
            self.v6_total.get_or_create(&label).set(v6_total);
            now.insert(label.pool);
        }
        for gone in self.exported.difference(&now) {
            let label = PoolLabel { pool: gone.clone() };
            for family in [
                &self.in_use,
                &self.total,
                &self.v4_in_use,
                &self.v4_total,
                &self.v6_in_use,
                &self.v6_total,
            ] {
                family.remove(&label);
            }
        }
        self.exported = now;
    }

    /// A configuration was loaded (`true`) or refused, keeping the previous one (`false`).
    pub fn config_loaded(&self, ok: bool) {
        if ok {
            self.config_loaded.set(1);
            self.config_stale.set(0);
        } else {
            self.config_stale.set(1);
            self.update_errors.inc();
        }
    }

    /// A watch event was processed.
    pub fn update(&self) {
        self.updates.inc();
    }

    /// A watch failed.
    pub fn update_error(&self) {
        self.update_errors.inc();
    }
}

#[cfg(test)]
mod tests {
    use prometheus_client::encoding::text::encode;

    use super::*;

    fn text(registry: &Registry) -> String {
        let mut out = String::new();
        encode(&mut out, registry).unwrap();
        out
    }

    #[test]
    fn pool_series_follow_the_pools() {
        let mut registry = Registry::default();
        let mut metrics = Metrics::register(&mut registry);
        let counters = PoolCounters {
            assigned_ipv4: 2,
            assigned_ipv6: 1,
            available_ipv4: 252,
            available_ipv6: i64::MAX,
        };
        metrics.set_pools([("a", counters), ("b", PoolCounters::default())]);
        let out = text(&registry);
        assert!(
            out.contains(r#"metallb_allocator_addresses_in_use_total{pool="a"} 3"#),
            "{out}"
        );
        assert!(
            out.contains(&format!(
                r#"metallb_allocator_addresses_total{{pool="a"}} {}"#,
                i64::MAX
            )),
            "{out}"
        );
        let v4 = r#"metallb_allocator_ipv4_addresses_in_use_total{pool="a"} 2"#;
        assert!(out.contains(v4), "{out}");
        let v4_total = r#"metallb_allocator_ipv4_addresses_total{pool="a"} 254"#;
        assert!(out.contains(v4_total), "{out}");
        let v6 = r#"metallb_allocator_ipv6_addresses_in_use_total{pool="a"} 1"#;
        assert!(out.contains(v6), "{out}");
        metrics.set_pools([("b", PoolCounters::default())]);
        let out = text(&registry);
        assert!(!out.contains(r#"pool="a""#), "{out}");
        assert!(
            out.contains(r#"metallb_allocator_addresses_total{pool="b"} 0"#),
            "{out}"
        );
    }

    #[test]
    fn a_refused_configuration_marks_the_running_one_stale() {
        let mut registry = Registry::default();
        let metrics = Metrics::register(&mut registry);
        metrics.config_loaded(true);
        metrics.config_loaded(false);
        let out = text(&registry);
        assert!(
            out.contains("metallb_k8s_client_config_loaded_bool 1"),
            "{out}"
        );
        assert!(
            out.contains("metallb_k8s_client_config_stale_bool 1"),
            "{out}"
        );
        assert!(
            out.contains("metallb_k8s_client_update_errors_total 1"),
            "{out}"
        );
    }
}
