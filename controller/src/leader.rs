//! Leader election over a `coordination.k8s.io/v1` Lease, with client-go's rules: the leader
//! renews the Lease periodically; a candidate takes it over when it is free or when its record
//! has not changed for the lease duration as measured on the candidate's own clock (so clocks
//! of different nodes need not agree). Every write carries the `resourceVersion` it read, so
//! two candidates never both win.

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::PostParams;
use kube::{Api, Client};
use tracing::{debug, info, warn};

/// Timing of the election.
#[derive(Debug, Clone)]
pub struct LeaseTiming {
    /// How long a Lease stays valid without renewal.
    pub duration: Duration,
    /// How often the leader renews, and a candidate retries.
    pub retry: Duration,
    /// How long the leader keeps failing to renew before it gives up.
    pub renew_deadline: Duration,
}

impl Default for LeaseTiming {
    fn default() -> Self {
        Self {
            duration: Duration::from_secs(15),
            retry: Duration::from_secs(2),
            renew_deadline: Duration::from_secs(10),
        }
    }
}

/// What to do with the Lease as read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    /// There is none: create it.
    Create,
    /// Ours: renew it.
    Renew,
    /// Free, or its holder stopped renewing: take it.
    TakeOver,
    /// Someone else holds it.
    Held,
}

/// The rule, given the Lease's spec and whether it expired by our observation.
fn verdict(spec: Option<&LeaseSpec>, identity: &str, expired: bool) -> Verdict {
    let Some(spec) = spec else {
        return Verdict::Create;
    };
    match spec.holder_identity.as_deref() {
        Some(holder) if holder == identity => Verdict::Renew,
        Some(holder) if !holder.is_empty() && !expired => Verdict::Held,
        _ => Verdict::TakeOver,
    }
}

/// One candidate for one Lease.
#[derive(Debug)]
pub struct Elector {
    api: Api<Lease>,
    name: String,
    identity: String,
    timing: LeaseTiming,
    /// The Lease's spec as last read, and when it last changed (our clock).
    observed: Option<(LeaseSpec, Instant)>,
}

impl Elector {
    /// A candidate `identity` for the Lease `name` in `namespace`.
    pub fn new(
        client: Client,
        namespace: &str,
        name: &str,
        identity: &str,
        timing: LeaseTiming,
    ) -> Self {
        Self {
            api: Api::namespaced(client, namespace),
            name: name.to_owned(),
            identity: identity.to_owned(),
            timing,
            observed: None,
        }
    }

    /// Waits until this candidate holds the Lease.
    pub async fn acquire(&mut self) {
        let mut waiting_logged = false;
        loop {
            match self.try_hold().await {
                Ok(true) => {
                    info!(lease = %self.name, identity = %self.identity, "became leader");
                    return;
                }
                Ok(false) if !waiting_logged => {
                    info!(lease = %self.name, "another controller leads; waiting for the lease");
                    waiting_logged = true;
                }
                Ok(false) => {}
                Err(error) => {
                    warn!(%error, lease = %self.name, "could not read or write the lease")
                }
            }
            tokio::time::sleep(self.timing.retry).await;
        }
    }

    /// Renews the Lease until leadership is lost (someone else took it, or renewing failed
    /// for longer than the renew deadline); then returns.
    pub async fn keep(&mut self) {
        let mut last_renewal = Instant::now();
        loop {
            tokio::time::sleep(self.timing.retry).await;
            match self.try_hold().await {
                Ok(true) => last_renewal = Instant::now(),
                Ok(false) => {
                    warn!(lease = %self.name, "another controller took the lease");
                    return;
                }
                Err(error) => {
                    warn!(%error, lease = %self.name, "could not renew the lease");
                    if last_renewal.elapsed() > self.timing.renew_deadline {
                        warn!(lease = %self.name, "renew deadline passed; leadership lost");
                        return;
                    }
                }
            }
        }
    }

    /// Gives the Lease up so the next candidate need not wait for it to expire.
    pub async fn release(&mut self) {
        let Ok(Some(mut lease)) = self.api.get_opt(&self.name).await else {
            return;
        };
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        if spec.holder_identity.as_deref() != Some(&self.identity) {
            return;
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        match self
            .api
            .replace(&self.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => info!(lease = %self.name, "released the lease"),
            Err(error) => warn!(%error, lease = %self.name, "could not release the lease"),
        }
    }

    /// One round: read the Lease and create, renew or take it over when allowed. `Ok(true)`
    /// when this candidate holds it afterwards.
    async fn try_hold(&mut self) -> Result<bool, kube::Error> {
        let current = self.api.get_opt(&self.name).await?;
        // A Lease without a spec is as good as a free one.
        let spec = current.as_ref().map(|l| l.spec.clone().unwrap_or_default());
        let expired = observe(
            &mut self.observed,
            spec.as_ref(),
            Instant::now(),
            self.timing.duration,
        );
        let now = MicroTime(Timestamp::now());
        let duration = i32::try_from(self.timing.duration.as_secs()).unwrap_or(i32::MAX);
        let verdict = verdict(spec.as_ref(), &self.identity, expired);
        debug!(lease = %self.name, ?verdict, "lease round");
        let mut lease = match (verdict, current) {
            (Verdict::Held, _) => return Ok(false),
            (Verdict::Create, _) | (_, None) => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(self.name.clone()),
                        ..ObjectMeta::default()
                    },
                    spec: Some(LeaseSpec {
                        holder_identity: Some(self.identity.clone()),
                        lease_duration_seconds: Some(duration),
                        acquire_time: Some(now.clone()),
                        renew_time: Some(now),
                        lease_transitions: Some(0),
                        ..LeaseSpec::default()
                    }),
                };
                return self.settle(self.api.create(&PostParams::default(), &lease).await);
            }
            (_, Some(lease)) => lease,
        };
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        if verdict == Verdict::TakeOver {
            spec.holder_identity = Some(self.identity.clone());
            spec.acquire_time = Some(now.clone());
            spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
        }
        spec.lease_duration_seconds = Some(duration);
        spec.renew_time = Some(now);
        let written = self
            .api
            .replace(&self.name, &PostParams::default(), &lease)
            .await;
        self.settle(written)
    }

    /// The result of a write: a conflict means another candidate wrote first.
    fn settle(&mut self, written: Result<Lease, kube::Error>) -> Result<bool, kube::Error> {
        match written {
            Ok(lease) => {
                self.observed = lease.spec.map(|spec| (spec, Instant::now()));
                Ok(true)
            }
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
            Err(error) => Err(error),
        }
    }
}

/// Records the Lease spec read at `now`; whether it expired by our own observation: it has not
/// changed for its duration (`default` when it states none). No Lease counts as expired.
fn observe(
    observed: &mut Option<(LeaseSpec, Instant)>,
    spec: Option<&LeaseSpec>,
    now: Instant,
    default: Duration,
) -> bool {
    let Some(spec) = spec else {
        *observed = None;
        return true;
    };
    let since = match observed {
        Some((seen, since)) if seen == spec => *since,
        _ => now,
    };
    *observed = Some((spec.clone(), since));
    let duration = spec
        .lease_duration_seconds
        .and_then(|s| u64::try_from(s).ok())
        .map_or(default, Duration::from_secs);
    now.duration_since(since) >= duration
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held_by(holder: Option<&str>) -> LeaseSpec {
        LeaseSpec {
            holder_identity: holder.map(str::to_owned),
            ..LeaseSpec::default()
        }
    }

    #[test]
    fn a_missing_lease_is_created() {
        assert_eq!(verdict(None, "me", false), Verdict::Create);
    }

    #[test]
    fn our_own_lease_is_renewed_even_when_it_looks_expired() {
        assert_eq!(
            verdict(Some(&held_by(Some("me"))), "me", true),
            Verdict::Renew
        );
    }

    #[test]
    fn a_live_lease_of_another_holder_is_respected() {
        assert_eq!(
            verdict(Some(&held_by(Some("other"))), "me", false),
            Verdict::Held
        );
    }

    #[test]
    fn an_expired_or_released_lease_is_taken_over() {
        assert_eq!(
            verdict(Some(&held_by(Some("other"))), "me", true),
            Verdict::TakeOver
        );
        assert_eq!(
            verdict(Some(&held_by(None)), "me", false),
            Verdict::TakeOver
        );
        assert_eq!(
            verdict(Some(&held_by(Some(""))), "me", false),
            Verdict::TakeOver
        );
    }

    #[test]
    fn expiry_is_measured_from_the_last_change_we_saw() {
        let default = Duration::from_secs(15);
        let start = Instant::now();
        let mut observed = None;
        let mut spec = held_by(Some("other"));
        spec.lease_duration_seconds = Some(10);
        assert!(!observe(&mut observed, Some(&spec), start, default));
        let later = start + Duration::from_secs(9);
        assert!(!observe(&mut observed, Some(&spec), later, default));
        // A renewal resets the clock.
        spec.renew_time = Some(MicroTime(Timestamp::now()));
        let renewed = start + Duration::from_secs(11);
        assert!(!observe(&mut observed, Some(&spec), renewed, default));
        let silent = renewed + Duration::from_secs(10);
        assert!(observe(&mut observed, Some(&spec), silent, default));
        assert!(observe(&mut observed, None, silent, default));
    }
}
