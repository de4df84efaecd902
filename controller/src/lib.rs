//! The MetalLB controller: assigns external IPs from address pools to Services of type
//! LoadBalancer, with MetalLB's rules, events and annotations, and never moves an address
//! that is still valid.
//!
//! From pure to effectful:
//! - [`service`] and [`pools`] read Services and pool objects into the allocator's terms;
//! - [`decide`] converges one Service with the `metallb-allocator` crate and says which
//!   events to emit and which status to hold; [`events`] holds MetalLB's reasons and texts;
//! - [`reconcile`] is the loop that owns the allocator, fed by [`watch`], writing through
//!   [`writer`] and [`events`];
//! - [`leader`] elects the one replica that assigns, through a Lease; [`http`] serves
//!   `/metrics` ([`metrics`]), `/healthz` and `/readyz`; [`run`] wires it all.

mod app;
pub mod decide;
pub mod error;
pub mod events;
pub mod http;
pub mod leader;
pub mod metrics;
pub mod pools;
pub mod reconcile;
pub mod service;
pub mod watch;
pub mod writer;

pub use app::{Settings, run};
pub use error::Error;

/// Field manager of every write the controller makes.
pub const FIELD_MANAGER: &str = "metallb-controller";

/// `reportingController` of the controller's events.
pub const REPORTING_CONTROLLER: &str = "metallb-controller";

/// Name of the controller's Lease in the MetalLB namespace.
pub const DEFAULT_LEASE: &str = "metallb-controller";

/// Port of `/metrics`, `/healthz` and `/readyz` (MetalLB's).
pub const DEFAULT_METRICS_PORT: u16 = 7472;
