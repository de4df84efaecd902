//! When a holder's record expires, measured on this process's clock: the pure part of both
//! kinds of Lease.

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::LeaseSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;

/// What identifies one renewal: the holder and its renew time.
type Record = (Option<String>, Option<MicroTime>);

/// A Lease's record as last seen, and when this process saw it change.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    seen: Option<(Record, Instant)>,
}

impl Observed {
    /// Notes the record of `spec` read at `now`; whether it has stood still for the Lease's
    /// duration (`default` when the Lease states none).
    pub fn expired(&mut self, spec: &LeaseSpec, default: Duration, now: Instant) -> bool {
        let record = (spec.holder_identity.clone(), spec.renew_time.clone());
        let since = match &self.seen {
            Some((seen, since)) if *seen == record => *since,
            _ => now,
        };
        self.seen = Some((record, since));
        now.saturating_duration_since(since) >= duration_of(spec, default)
    }

    /// When the record seen last expires unless it changes; `None` before anything was seen.
    pub fn expires_at(&self, spec: &LeaseSpec, default: Duration) -> Option<Instant> {
        self.seen
            .as_ref()
            .map(|(_, since)| *since + duration_of(spec, default))
    }

    /// When the record seen last was first seen: when its holder renewed it, on this clock.
    pub fn since(&self) -> Option<Instant> {
        self.seen.as_ref().map(|(_, since)| *since)
    }

    /// Forgets what was seen (after our own write: the next read starts the clock afresh).
    pub fn reset(&mut self) {
        self.seen = None;
    }
}

/// The Lease's own duration, or `default`.
pub(super) fn duration_of(spec: &LeaseSpec, default: Duration) -> Duration {
    spec.lease_duration_seconds
        .and_then(|s| u64::try_from(s).ok())
        .map_or(default, Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use k8s_openapi::jiff::Timestamp;

    use super::*;

    fn spec(holder: &str, renewed: i64, seconds: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(holder.to_owned()),
            renew_time: Some(MicroTime(Timestamp::from_second(renewed).unwrap())),
            lease_duration_seconds: Some(seconds),
            ..LeaseSpec::default()
        }
    }

    #[test]
    fn a_record_expires_only_after_standing_still_for_its_duration_on_our_clock() {
        let start = Instant::now();
        let default = Duration::from_secs(15);
        let mut observed = Observed::default();
        assert!(!observed.expired(&spec("other", 100, 10), default, start));
        let later = start + Duration::from_secs(9);
        assert!(!observed.expired(&spec("other", 100, 10), default, later));
        // A renewal restarts the clock, whatever its timestamp says.
        let renewed = start + Duration::from_secs(11);
        assert!(!observed.expired(&spec("other", 90, 10), default, renewed));
        let silent = renewed + Duration::from_secs(10);
        assert_eq!(
            observed.expires_at(&spec("other", 90, 10), default),
            Some(silent)
        );
        assert!(observed.expired(&spec("other", 90, 10), default, silent));
    }

    #[test]
    fn a_lease_without_a_duration_uses_the_default() {
        let start = Instant::now();
        let mut observed = Observed::default();
        let mut lease = spec("other", 1, 0);
        lease.lease_duration_seconds = None;
        let default = Duration::from_secs(3);
        assert!(!observed.expired(&lease, default, start));
        assert!(observed.expired(&lease, default, start + default));
    }
}
