//! Leases: [`election`] picks one active replica of the operator or the controller, [`node`]
//! keeps one Lease per speaker node renewed and tells which nodes' Leases are fresh.
//!
//! Both follow client-go's rules. A holder's record (holder and renew time) expires when it has
//! not changed for the Lease duration **as measured on the observer's own clock**, so clocks of
//! different nodes need not agree. Every write carries the `resourceVersion` it read, so two
//! candidates never both win.
//!
//! Every API call runs under a deadline. kube's client has no read timeout (watches need it
//! that way), so an API server that accepts a connection and never answers would otherwise
//! stall a renewal forever while another replica takes the Lease over.

pub mod election;
pub mod node;
mod record;

use std::time::Duration;

pub use election::{Elector, Lost};
pub use node::{NodeLease, NodeLeaseObserver, ObservedLease, Renewal};
pub use record::Observed;

/// Why an API call about a Lease failed.
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    /// The API server answered with an error, or the connection failed.
    #[error("{0}")]
    Api(#[from] kube::Error),
    /// The API server did not answer before the deadline.
    #[error("no answer from the API server within {0:?}")]
    TimedOut(Duration),
}

/// Lease timings that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimingError {
    /// A leader must stop before another replica may take over.
    #[error(
        "renew deadline {renew_deadline} must be shorter than the lease duration {duration}, \
         or a leader could still act after another replica took over"
    )]
    DeadlineNotShorter {
        /// The renew deadline, as written.
        renew_deadline: String,
        /// The Lease duration, as written.
        duration: String,
    },
    /// Retrying at least as slowly as the deadline leaves no second attempt.
    #[error("retry period {retry} must be shorter than the renew deadline {renew_deadline}")]
    RetryNotShorter {
        /// The retry period, as written.
        retry: String,
        /// The renew deadline, as written.
        renew_deadline: String,
    },
}

/// Timing of an election: how long a Lease is valid, how long a leader tries to renew before
/// it stops leading, and how often it renews.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseTiming {
    duration: Duration,
    renew_deadline: Duration,
    retry: Duration,
}

impl Default for LeaseTiming {
    /// client-go's defaults: 15 s, 10 s, 2 s.
    fn default() -> Self {
        LeaseTiming {
            duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry: Duration::from_secs(2),
        }
    }
}

impl LeaseTiming {
    /// Checked timing: `retry < renew_deadline < duration`.
    pub fn new(
        duration: Duration,
        renew_deadline: Duration,
        retry: Duration,
    ) -> Result<Self, TimingError> {
        let go = |d: Duration| metallb_api::duration::GoDuration::from(d).0;
        if renew_deadline >= duration {
            return Err(TimingError::DeadlineNotShorter {
                renew_deadline: go(renew_deadline),
                duration: go(duration),
            });
        }
        if retry >= renew_deadline {
            return Err(TimingError::RetryNotShorter {
                retry: go(retry),
                renew_deadline: go(renew_deadline),
            });
        }
        Ok(LeaseTiming {
            duration,
            renew_deadline,
            retry,
        })
    }

    /// How long a Lease stays valid without renewal.
    pub fn duration(&self) -> Duration {
        self.duration
    }

    /// How long a leader keeps failing to renew before it stops leading.
    pub fn renew_deadline(&self) -> Duration {
        self.renew_deadline
    }

    /// How often the leader renews and a candidate retries.
    pub fn retry(&self) -> Duration {
        self.retry
    }

    /// The duration in whole seconds, as the Lease records it (at least one).
    fn duration_seconds(&self) -> i32 {
        i32::try_from(self.duration.as_secs().max(1)).unwrap_or(i32::MAX)
    }
}

/// Runs `call` until `deadline`.
async fn bounded<T>(
    deadline: tokio::time::Instant,
    call: impl Future<Output = Result<T, kube::Error>>,
) -> Result<T, LeaseError> {
    let budget = deadline.saturating_duration_since(tokio::time::Instant::now());
    match tokio::time::timeout_at(deadline, call).await {
        Ok(result) => Ok(result?),
        Err(_) => Err(LeaseError::TimedOut(budget)),
    }
}

/// Whether a write failed because another writer came first (the caller rereads).
fn lost_race(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(status) if status.is_conflict() || status.is_already_exists())
}
