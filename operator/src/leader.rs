//! Leader election over a `coordination.k8s.io/v1` Lease, the way client-go does it: the
//! leader renews the lease every [`RETRY_PERIOD`]; another replica takes it over once the
//! holder's record has not changed for the lease duration, measured on its own clock (so clock
//! skew between nodes does not matter). Writes carry the `resourceVersion` they read, so two
//! replicas can never both win.
//!
//! A leader that cannot renew within [`RENEW_DEADLINE`] reports the loss, and the operator
//! exits rather than risk two active reconcilers.

use std::time::{Duration, Instant};

use k8s_openapi::{
    api::coordination::v1::{Lease, LeaseSpec},
    apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta},
    jiff::Timestamp,
};
use kube::{Api, api::PostParams};
use tokio::{sync::watch, task::JoinHandle};
use tracing::{debug, info, warn};

/// Name of the operator's Lease in its namespace.
pub const DEFAULT_LEASE: &str = "metallb-operator-lock";

/// How long a lease stays valid without renewal.
pub const LEASE_DURATION: Duration = Duration::from_secs(15);
/// How long a leader keeps trying to renew before it gives up leadership.
pub const RENEW_DEADLINE: Duration = Duration::from_secs(10);
/// Interval between attempts to acquire or renew.
pub const RETRY_PERIOD: Duration = Duration::from_secs(2);

/// A lease this process may hold.
#[derive(Clone, Debug)]
pub struct LeaseLock {
    api: Api<Lease>,
    name: String,
    identity: String,
}

/// Leadership held until [`Leadership::lost`] resolves or [`Leadership::release`] is called.
#[derive(Debug)]
pub struct Leadership {
    lock: LeaseLock,
    lost: watch::Receiver<bool>,
    renewer: JoinHandle<()>,
}

/// What to do with the lease as it stands.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Step {
    /// There is no lease: create it.
    Create,
    /// We hold it: renew.
    Renew,
    /// Free or expired: take it over.
    TakeOver,
    /// Someone else holds it.
    Wait,
}

fn step(exists: bool, holder: Option<&str>, identity: &str, expired: bool) -> Step {
    match holder {
        _ if !exists => Step::Create,
        Some(holder) if holder == identity => Step::Renew,
        Some(_) if !expired => Step::Wait,
        _ => Step::TakeOver,
    }
}

/// The holder's record as last seen, and when this process saw it change.
#[derive(Debug, Default)]
struct Observed {
    record: Option<(Option<String>, Option<MicroTime>)>,
    since: Option<Instant>,
}

impl Observed {
    /// Notes the current record at `now`; whether it has stood still for `duration`.
    fn expired(&mut self, spec: &LeaseSpec, duration: Duration, now: Instant) -> bool {
        let record = (spec.holder_identity.clone(), spec.renew_time.clone());
        if self.record.as_ref() != Some(&record) {
            self.record = Some(record);
            self.since = Some(now);
        }
        self.since
            .is_some_and(|since| now.saturating_duration_since(since) >= duration)
    }
}

impl LeaseLock {
    /// The lease `name` in the namespace of `api`, held as `identity`.
    pub fn new(api: Api<Lease>, name: impl Into<String>, identity: impl Into<String>) -> Self {
        LeaseLock {
            api,
            name: name.into(),
            identity: identity.into(),
        }
    }

    /// Waits until this process holds the lease, then keeps renewing it in the background.
    pub async fn acquire(self) -> Leadership {
        let mut observed = Observed::default();
        let mut waiting_logged = false;
        loop {
            match self.try_acquire_or_renew(&mut observed).await {
                Ok(true) => break,
                Ok(false) if !waiting_logged => {
                    let holder = observed.record.as_ref().and_then(|r| r.0.clone());
                    info!(lease = %self.name, ?holder, "waiting for the leader lease");
                    waiting_logged = true;
                }
                Ok(false) => {}
                Err(error) => warn!(lease = %self.name, %error, "cannot acquire the leader lease"),
            }
            tokio::time::sleep(RETRY_PERIOD).await;
        }
        info!(lease = %self.name, identity = %self.identity, "became the leader");
        let (lost_tx, lost) = watch::channel(false);
        let renewer = tokio::spawn(self.clone().keep_renewing(observed, lost_tx));
        Leadership {
            lock: self,
            lost,
            renewer,
        }
    }

    async fn keep_renewing(self, mut observed: Observed, lost: watch::Sender<bool>) {
        let mut renewed = Instant::now();
        loop {
            tokio::time::sleep(RETRY_PERIOD).await;
            let attempt = self.try_acquire_or_renew(&mut observed);
            match tokio::time::timeout(RETRY_PERIOD * 2, attempt).await {
                Ok(Ok(true)) => renewed = Instant::now(),
                Ok(Ok(false)) => {
                    warn!(lease = %self.name, "another replica holds the leader lease");
                    break;
                }
                Ok(Err(error)) => warn!(lease = %self.name, %error, "leader lease not renewed"),
                Err(_) => warn!(lease = %self.name, "leader lease renewal timed out"),
            }
            if renewed.elapsed() > RENEW_DEADLINE {
                warn!(lease = %self.name, deadline = ?RENEW_DEADLINE, "leader lease not renewed in time");
                break;
            }
        }
        lost.send_replace(true);
    }

    /// One attempt; `Ok(true)` when this process holds the lease afterwards.
    async fn try_acquire_or_renew(&self, observed: &mut Observed) -> Result<bool, kube::Error> {
        let now = MicroTime(Timestamp::now());
        let current = self.api.get_opt(&self.name).await?;
        let spec = current
            .as_ref()
            .and_then(|l| l.spec.clone())
            .unwrap_or_default();
        let duration = spec
            .lease_duration_seconds
            .map_or(LEASE_DURATION, |s| Duration::from_secs(s.max(0) as u64));
        let expired = observed.expired(&spec, duration, Instant::now());
        let holder = spec.holder_identity.as_deref().filter(|h| !h.is_empty());
        let ours = LeaseSpec {
            holder_identity: Some(self.identity.clone()),
            lease_duration_seconds: Some(LEASE_DURATION.as_secs() as i32),
            renew_time: Some(now.clone()),
            ..spec.clone()
        };
        let written = match step(current.is_some(), holder, &self.identity, expired) {
            Step::Wait => return Ok(false),
            Step::Create => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(self.name.clone()),
                        ..ObjectMeta::default()
                    },
                    spec: Some(LeaseSpec {
                        acquire_time: Some(now),
                        lease_transitions: Some(0),
                        ..ours
                    }),
                };
                self.api.create(&PostParams::default(), &lease).await
            }
            Step::Renew => self.write(current, ours).await,
            Step::TakeOver => {
                let spec = LeaseSpec {
                    acquire_time: Some(now),
                    lease_transitions: Some(spec.lease_transitions.unwrap_or(0) + 1),
                    ..ours
                };
                self.write(current, spec).await
            }
        };
        match written {
            Ok(lease) => {
                *observed = Observed::default();
                observed.expired(&lease.spec.unwrap_or_default(), duration, Instant::now());
                Ok(true)
            }
            // Someone else wrote first; the next attempt reads what they wrote.
            Err(kube::Error::Api(status)) if status.is_conflict() || status.is_already_exists() => {
                debug!(lease = %self.name, "lost a race for the leader lease");
                Ok(false)
            }
            Err(error) => Err(error),
        }
    }

    /// Replaces the lease read as `current` (its resourceVersion makes the write conditional).
    async fn write(&self, current: Option<Lease>, spec: LeaseSpec) -> Result<Lease, kube::Error> {
        let mut lease = current.unwrap_or_default();
        lease.spec = Some(spec);
        self.api
            .replace(&self.name, &PostParams::default(), &lease)
            .await
    }
}

impl Leadership {
    /// Resolves when leadership is lost.
    pub async fn lost(&mut self) {
        let _ = self.lost.wait_for(|lost| *lost).await;
    }

    /// Gives the lease up so another replica can take over at once instead of waiting for it
    /// to expire.
    pub async fn release(self) {
        self.renewer.abort();
        let lock = self.lock;
        let released = async {
            let mut lease = lock.api.get(&lock.name).await?;
            let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
            if spec.holder_identity.as_deref() != Some(lock.identity.as_str()) {
                return Ok(());
            }
            spec.holder_identity = None;
            spec.lease_duration_seconds = Some(1);
            spec.renew_time = Some(MicroTime(Timestamp::now()));
            lock.api
                .replace(&lock.name, &PostParams::default(), &lease)
                .await
                .map(|_| ())
        };
        match released.await {
            Ok(()) => info!(lease = %lock.name, "released the leader lease"),
            Err(error) => warn!(lease = %lock.name, %error, "could not release the leader lease"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_lease_is_created_and_our_own_is_renewed() {
        assert_eq!(step(false, None, "me", false), Step::Create);
        assert_eq!(step(true, Some("me"), "me", false), Step::Renew);
        assert_eq!(step(true, Some("me"), "me", true), Step::Renew);
    }

    #[test]
    fn a_live_holder_is_respected_and_a_free_or_expired_lease_taken_over() {
        assert_eq!(step(true, Some("other"), "me", false), Step::Wait);
        assert_eq!(step(true, Some("other"), "me", true), Step::TakeOver);
        assert_eq!(step(true, None, "me", false), Step::TakeOver);
    }

    #[test]
    fn a_holder_expires_only_after_its_record_stood_still_for_the_duration() {
        let start = Instant::now();
        let duration = Duration::from_secs(15);
        let spec = |renewed: i64| LeaseSpec {
            holder_identity: Some("other".into()),
            renew_time: Some(MicroTime(Timestamp::from_second(renewed).unwrap())),
            ..LeaseSpec::default()
        };
        let mut observed = Observed::default();
        assert!(!observed.expired(&spec(100), duration, start));
        assert!(!observed.expired(&spec(100), duration, start + Duration::from_secs(14)));
        // A renewal restarts the clock, whatever the timestamps say.
        assert!(!observed.expired(&spec(101), duration, start + Duration::from_secs(14)));
        assert!(!observed.expired(&spec(101), duration, start + Duration::from_secs(28)));
        assert!(observed.expired(&spec(101), duration, start + Duration::from_secs(29)));
    }
}
