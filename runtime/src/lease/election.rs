//! Leader election over a `coordination.k8s.io/v1` Lease.
//!
//! The contract that keeps two replicas from acting at once: a leader stops leading (returns
//! from [`Elector::keep`]) no later than `renew_deadline` after it *sent* its last successful
//! renewal, and every API call of a round runs under that same deadline. Another replica can
//! take over only after the record has stood still for the Lease duration on its own clock,
//! which starts after that renewal was written; since `renew_deadline < duration`, the old
//! leader has stopped before the new one starts. A frozen API server therefore cannot keep a
//! leader acting beyond its deadline.

use std::time::Instant;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::PostParams;
use kube::{Api, Client};
use tracing::{debug, info, warn};

use super::{LeaseError, LeaseTiming, Observed, bounded, lost_race};

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

/// The rule, given the Lease's spec and whether its record expired by our observation.
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

/// Why a leader stopped leading.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lost {
    /// Another replica holds the Lease now.
    TakenOver,
    /// No renewal succeeded within the renew deadline.
    DeadlinePassed,
}

impl std::fmt::Display for Lost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Lost::TakenOver => "another replica took the Lease over",
            Lost::DeadlinePassed => "the Lease was not renewed within the renew deadline",
        })
    }
}

/// One candidate for one Lease.
#[derive(Debug)]
pub struct Elector {
    api: Api<Lease>,
    name: String,
    identity: String,
    timing: LeaseTiming,
    observed: Observed,
    /// When the round that last wrote the Lease in our name started.
    renewed: Option<tokio::time::Instant>,
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
        Elector {
            api: Api::namespaced(client, namespace),
            name: name.to_owned(),
            identity: identity.to_owned(),
            timing,
            observed: Observed::default(),
            renewed: None,
        }
    }

    /// Waits until this candidate holds the Lease.
    pub async fn acquire(&mut self) {
        let mut waiting_logged = false;
        loop {
            let deadline = tokio::time::Instant::now() + self.timing.renew_deadline();
            match self.round(deadline).await {
                Ok(true) => {
                    info!(lease = %self.name, identity = %self.identity, "became leader");
                    return;
                }
                Ok(false) if !waiting_logged => {
                    info!(lease = %self.name, "another replica leads; waiting for the Lease");
                    waiting_logged = true;
                }
                Ok(false) => {}
                Err(error) => warn!(lease = %self.name, %error, "could not acquire the Lease"),
            }
            tokio::time::sleep(self.timing.retry()).await;
        }
    }

    /// Renews the Lease until leadership is lost; returns why. Returns no later than the renew
    /// deadline after the last successful renewal was sent, even when the API server hangs.
    pub async fn keep(&mut self) -> Lost {
        loop {
            let renewed = self.renewed.unwrap_or_else(tokio::time::Instant::now);
            let give_up = renewed + self.timing.renew_deadline();
            let next = (tokio::time::Instant::now() + self.timing.retry()).min(give_up);
            tokio::time::sleep_until(next).await;
            if tokio::time::Instant::now() >= give_up {
                return self.lost(Lost::DeadlinePassed);
            }
            match self.round(give_up).await {
                Ok(true) => {}
                Ok(false) => return self.lost(Lost::TakenOver),
                Err(error) => warn!(lease = %self.name, %error, "could not renew the Lease"),
            }
        }
    }

    fn lost(&mut self, why: Lost) -> Lost {
        warn!(lease = %self.name, identity = %self.identity, reason = %why, "stopped leading");
        self.renewed = None;
        why
    }

    /// Gives the Lease up so the next candidate need not wait for it to expire; bounded by
    /// the retry period.
    pub async fn release(&mut self) {
        let deadline = tokio::time::Instant::now() + self.timing.retry();
        match self.try_release(deadline).await {
            Ok(true) => info!(lease = %self.name, "released the Lease"),
            Ok(false) => {}
            Err(error) => warn!(lease = %self.name, %error, "could not release the Lease"),
        }
    }

    async fn try_release(&mut self, deadline: tokio::time::Instant) -> Result<bool, LeaseError> {
        let Some(mut lease) = bounded(deadline, self.api.get_opt(&self.name)).await? else {
            return Ok(false);
        };
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        if spec.holder_identity.as_deref() != Some(&self.identity) {
            return Ok(false);
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        spec.renew_time = Some(MicroTime(Timestamp::now()));
        let params = PostParams::default();
        bounded(deadline, self.api.replace(&self.name, &params, &lease)).await?;
        Ok(true)
    }

    /// One round, every call bounded by `deadline`: read the Lease and create, renew or take
    /// it over when allowed. `Ok(true)` when this candidate holds it afterwards.
    async fn round(&mut self, deadline: tokio::time::Instant) -> Result<bool, LeaseError> {
        let started = tokio::time::Instant::now();
        let current = bounded(deadline, self.api.get_opt(&self.name)).await?;
        // A Lease without a spec is as good as a free one.
        let spec = current.as_ref().map(|l| l.spec.clone().unwrap_or_default());
        let expired = spec.as_ref().is_none_or(|spec| {
            self.observed
                .expired(spec, self.timing.duration(), Instant::now())
        });
        let verdict = verdict(spec.as_ref(), &self.identity, expired);
        debug!(lease = %self.name, ?verdict, "lease round");
        let now = MicroTime(Timestamp::now());
        let duration = self.timing.duration_seconds();
        let written = match (verdict, current) {
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
                let params = PostParams::default();
                bounded(deadline, self.api.create(&params, &lease)).await
            }
            (_, Some(mut lease)) => {
                let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
                if verdict == Verdict::TakeOver {
                    spec.holder_identity = Some(self.identity.clone());
                    spec.acquire_time = Some(now.clone());
                    spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
                }
                spec.lease_duration_seconds = Some(duration);
                spec.renew_time = Some(now);
                let params = PostParams::default();
                bounded(deadline, self.api.replace(&self.name, &params, &lease)).await
            }
        };
        match written {
            Ok(_) => {
                self.observed.reset();
                self.renewed = Some(started);
                Ok(true)
            }
            Err(LeaseError::Api(error)) if lost_race(&error) => {
                debug!(lease = %self.name, "another candidate wrote first");
                Ok(false)
            }
            Err(error) => Err(error),
        }
    }
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
        let ours = held_by(Some("me"));
        assert_eq!(verdict(Some(&ours), "me", true), Verdict::Renew);
    }

    #[test]
    fn a_live_lease_of_another_holder_is_respected() {
        let theirs = held_by(Some("other"));
        assert_eq!(verdict(Some(&theirs), "me", false), Verdict::Held);
    }

    #[test]
    fn an_expired_or_released_lease_is_taken_over() {
        let theirs = held_by(Some("other"));
        assert_eq!(verdict(Some(&theirs), "me", true), Verdict::TakeOver);
        assert_eq!(
            verdict(Some(&held_by(None)), "me", false),
            Verdict::TakeOver
        );
        assert_eq!(
            verdict(Some(&held_by(Some(""))), "me", false),
            Verdict::TakeOver
        );
    }
}
