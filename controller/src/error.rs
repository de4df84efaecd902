//! Why the controller stops.

use thiserror::Error;

/// A reason for [`run`](crate::run) to return an error.
#[derive(Debug, Error)]
pub enum Error {
    /// Another replica took the Lease, or it could not be renewed in time. The process should
    /// exit so that a fresh start rebuilds its state from the cluster.
    #[error("lost the leader lease {lease:?}: {reason}")]
    LeadershipLost {
        /// The Lease.
        lease: String,
        /// Why.
        reason: metallb_runtime::lease::Lost,
    },
    /// The HTTP endpoints stopped serving.
    #[error("serving /metrics, /healthz and /readyz: {0}")]
    Http(#[from] std::io::Error),
}
