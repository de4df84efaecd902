//! The MetalLB operator: reconciles the singleton `MetalLB` resource of its namespace into the
//! controller Deployment, the speaker DaemonSet and what they need, reports their readiness in
//! the resource's status, and serves the validating admission webhooks of the `metallb.io`
//! kinds.
//!
//! From pure to effectful:
//! - [`render`] builds every operand from the spec, [`status`] the conditions from the
//!   outcome, [`install`] the plain install manifests and [`bundle`] the OLM bundle (no I/O
//!   in any of them but reading and writing the generated files);
//! - [`controller`] applies the operands with server-side apply and writes the status;
//! - [`webhook`] serves the webhooks with shared, rotated certificates;
//! - [`run`] wires it all with `metallb-runtime` (Lease election, the admin endpoints with
//!   [`metrics`]); [`cli`] is the command line.

mod app;
pub mod bundle;
pub mod cli;
pub mod controller;
pub mod error;
pub mod install;
pub mod metrics;
pub mod render;
pub mod status;
pub mod webhook;

pub use app::run;
