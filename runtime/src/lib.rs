//! The Kubernetes plumbing that `metallb-operator`, `metallb-controller` and `metallb-speaker`
//! share, written once:
//!
//! - [`consts`]: ports, mount paths, label keys and Lease names every binary agrees on;
//! - [`cli`]: the client arguments (kubeconfig or in-cluster) and the logging arguments
//!   (MetalLB's level names, text or JSON), flattened into each binary's own arguments;
//! - [`shutdown`]: SIGTERM or Ctrl-C as a future any number of tasks can wait on;
//! - [`admin`]: `/healthz`, `/readyz` and `/metrics`;
//! - [`secure`]: the same over HTTPS, `/metrics` behind TokenReview and SubjectAccessReview;
//! - [`lease`]: leader election and per-node Leases, where **every API call runs under a
//!   deadline** and a leader gives up before its Lease can expire;
//! - [`watch`]: discovery of optional kinds and reflector stores of every `metallb.io` kind;
//! - [`events`]: the event recorder with a bounded queue and a few publishing workers;
//! - [`writer`]: the coalescing status writer (one write per object at a time, the newest
//!   wins, failures retried with backoff).
//!
//! Nothing here decides what a binary does; it only runs what the binaries decided.

pub mod admin;
pub mod cli;
pub mod consts;
pub mod events;
pub mod lease;
pub mod secure;
pub mod shutdown;
pub mod watch;
pub mod writer;

/// Installs ring as the process's rustls crypto provider (the only one the workspace allows).
/// Idempotent: a second call in the same process is a no-op.
pub fn install_crypto_provider() {
    // Err means a provider is installed already, which can only be ring in this workspace.
    let _ = rustls::crypto::ring::default_provider().install_default();
}
