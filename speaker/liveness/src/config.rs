//! The timers of the protocol and of fencing, and how the ones the driver must follow derive
//! from them.

use std::time::Duration;

use thiserror::Error;

/// The timers. [`Config::default`] detects a crashed speaker in about 0.8 s and fences a
/// speaker cut from the API 9 s after its last renewal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// How often a speaker sends a heartbeat to each of its monitors.
    pub interval: Duration,
    /// Heartbeats a monitor misses before it probes the silent speaker.
    pub missed: u32,
    /// How long a monitor probes a silent speaker (a probe every fifth of this) before it
    /// suspects it.
    pub probe: Duration,
    /// How long a suspicion stands before the suspect counts as dead, unless it refutes.
    pub suspicion: Duration,
    /// Rounds in which each piece of news rides along, so a lost packet does not lose it.
    pub repeat: u8,
    /// The shortest gap between two rounds: news is forwarded at once, but bursts of news are
    /// batched rather than sent packet by packet.
    pub min_gap: Duration,
    /// The duration of the speakers' Leases (`--fencing-lease-duration`).
    pub lease_duration: Duration,
    /// A speaker whose last successful renewal is older than `lease_duration - fence_margin`
    /// fences itself (when a peer vouches that the API works), so that it is silent before
    /// its Lease expires in anyone's eyes.
    pub fence_margin: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            interval: Duration::from_millis(100),
            missed: 3,
            probe: Duration::from_millis(100),
            suspicion: Duration::from_millis(300),
            repeat: 3,
            min_gap: Duration::from_millis(10),
            lease_duration: Duration::from_secs(10),
            fence_margin: Duration::from_secs(1),
        }
    }
}

/// A [`Config`] that cannot work.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum ConfigError {
    /// A zero interval, probe time or miss count would make every speaker silent or flood.
    #[error("interval, probe time and missed heartbeats must be above zero")]
    Zero,
    /// The batching gap must be shorter than the interval, or news would wait for ticks.
    #[error("the minimum gap {min_gap:?} must be shorter than the interval {interval:?}")]
    GapTooLong {
        /// The configured gap.
        min_gap: Duration,
        /// The configured interval.
        interval: Duration,
    },
    /// The margin must leave `lease - margin` above three renewal intervals: otherwise, in a
    /// control-plane outage, a speaker whose last renewal came one interval before a peer's
    /// would still hear that peer vouch for the API, and fence.
    #[error("the fence margin {margin:?} is above a quarter of the lease duration {lease:?}")]
    MarginTooLong {
        /// The configured margin.
        margin: Duration,
        /// The configured lease duration.
        lease: Duration,
    },
}

impl Config {
    /// Checks the timers against each other.
    ///
    /// # Errors
    ///
    /// See [`ConfigError`].
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.interval.is_zero() || self.probe.is_zero() || self.missed == 0 {
            return Err(ConfigError::Zero);
        }
        if self.min_gap >= self.interval {
            return Err(ConfigError::GapTooLong {
                min_gap: self.min_gap,
                interval: self.interval,
            });
        }
        if self.api_stale_after() <= self.renewal_interval() + self.vouch_within() {
            return Err(ConfigError::MarginTooLong {
                margin: self.fence_margin,
                lease: self.lease_duration,
            });
        }
        Ok(())
    }

    /// Silence after which a monitor starts probing: `missed` intervals.
    pub fn detection(&self) -> Duration {
        self.interval.saturating_mul(self.missed)
    }

    /// The longest time from a crash to its death being declared, before dissemination:
    /// the interval the last heartbeat may be old, the silence, the probes, the suspicion.
    pub fn worst_detection(&self) -> Duration {
        self.interval + self.detection() + self.probe + self.suspicion
    }

    /// The age of the last successful renewal at which the API counts as lost.
    pub fn api_stale_after(&self) -> Duration {
        self.lease_duration.saturating_sub(self.fence_margin)
    }

    /// A peer vouches that the API works when its last successful renewal is younger than
    /// this: two renewal intervals, so one slow or failed renewal does not matter, while in
    /// an outage every peer's claim is older by the time anyone could fence.
    pub fn vouch_within(&self) -> Duration {
        self.renewal_interval().saturating_mul(2)
    }

    /// How long peers must have vouched without a break before a stale speaker fences: one
    /// and a half renewal intervals, within which every speaker tries to renew again.
    pub fn fence_after_vouch(&self) -> Duration {
        self.renewal_interval() * 3 / 2
    }

    /// How often the driver renews the Lease (as `metallb_runtime::lease::NodeLease` does:
    /// four times per duration).
    pub fn renewal_interval(&self) -> Duration {
        (self.lease_duration / 4).max(Duration::from_millis(250))
    }

    pub(crate) fn probe_gap(&self) -> Duration {
        self.probe / 5
    }
}
