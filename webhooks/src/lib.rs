//! Validating admission webhooks and the BGPPeer conversion webhook for the `metallb.io`
//! kinds, served by the operator over TLS.
//!
//! [`router`] builds an axum router that needs no socket (tests call it with `oneshot`);
//! [`serve`] runs it behind rustls with certificates that are reloaded or rotated in place.
//! The rules themselves live in [`metallb_api::validation`].

mod cache;
mod certs;
mod config;
mod convert;
mod review;
mod router;
mod serve;
mod targets;

pub use cache::{ClusterCache, SnapshotSource, StaticSnapshot};
pub use certs::{CertError, GeneratedCerts, ServingCert};
pub use config::{
    CONFIGURATION_NAME, Endpoint, bgppeer_conversion, validating_webhook_configuration,
};
pub use review::{BadReview, review};
pub use router::{MAX_BODY_BYTES, REQUEST_TIMEOUT, router};
pub use serve::{CertSource, ServeError, serve};
pub use targets::Target;
