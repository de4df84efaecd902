//! The MetalLB operator: reconciles the singleton `MetalLB` resource of its namespace into the
//! controller Deployment, the speaker DaemonSet and what they need, reports their readiness in
//! the resource's status, and serves the validating admission webhooks of the `metallb.io`
//! kinds.
//!
//! From pure to effectful:
//! - [`render`] builds every operand from the spec, [`status`] the conditions from the
//!   outcome, [`install`] the plain install manifests (no I/O in any of them);
//! - [`controller`] applies the operands with server-side apply and writes the status;
//! - [`leader`] elects the one replica that reconciles, through a Lease;
//! - [`webhook`] serves the webhooks with shared, rotated certificates;
//! - [`http`] serves `/healthz`, `/readyz` and `/metrics` ([`metrics`]).

pub mod controller;
pub mod error;
pub mod http;
pub mod install;
pub mod leader;
pub mod metrics;
pub mod render;
pub mod status;
pub mod webhook;

/// Field manager of every server-side apply the operator makes.
pub const FIELD_MANAGER: &str = "metallb-operator";

/// Default port of the HTTPS webhook server.
pub const WEBHOOK_PORT: u16 = 9443;

/// Default port of `/healthz`, `/readyz` and `/metrics`.
pub const HTTP_PORT: u16 = 8080;
