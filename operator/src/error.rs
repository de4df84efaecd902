//! The reconciler's error type.

/// Why a reconcile failed. Each failure is counted under [`Error::metric_label`] and retried.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The API server refused an operand.
    #[error("applying {kind} {name}: {}", api_message(.source))]
    Apply {
        /// Kind of the operand.
        kind: String,
        /// Name of the operand.
        name: String,
        /// The API server's answer.
        source: kube::Error,
    },
    /// The membership Secret could not be read.
    #[error("reading Secret {name}: {}", api_message(.source))]
    ReadSecret {
        /// Name of the Secret.
        name: &'static str,
        /// The API server's answer.
        source: kube::Error,
    },
    /// The status could not be written.
    #[error("writing the status of MetalLB {name}: {}", api_message(.source))]
    Status {
        /// Name of the MetalLB resource.
        name: String,
        /// The API server's answer.
        source: kube::Error,
    },
    /// The system random source failed.
    #[error("generating the membership key: {0}")]
    Random(#[from] getrandom::Error),
}

impl Error {
    /// Short label for the failure counter.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Apply { .. } => "apply",
            Error::ReadSecret { .. } => "read_secret",
            Error::Status { .. } => "status",
            Error::Random(_) => "random",
        }
    }
}

/// The API server's own message for an API error (what an administrator needs), or the
/// client error otherwise.
pub fn api_message(error: &kube::Error) -> String {
    match error {
        kube::Error::Api(status) if !status.message.is_empty() => status.message.clone(),
        other => other.to_string(),
    }
}
