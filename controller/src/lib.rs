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
//! - [`run`] wires it all with `metallb-runtime`: the Lease election, the admin endpoints
//!   (`/metrics` of [`metrics`], `/healthz`, `/readyz`), the event recorder;
//! - [`cli`] is the command line.

mod app;
pub mod cli;
pub mod decide;
pub mod error;
pub mod events;
pub mod metrics;
pub mod pools;
pub mod reconcile;
pub mod service;
pub mod watch;
pub mod writer;

pub use app::{Settings, run};
pub use error::Error;
