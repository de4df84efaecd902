//! What the drivers report to the task that owns the speaker's state, all on one channel:
//! sessions coming up and going down. Drivers never call each other; the owner decides (for
//! example, a BFD Down takes the BGP session down, and BFD starts once BGP is up).

use std::net::IpAddr;

use tokio::sync::mpsc;

/// One report of a driver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DriverEvent {
    /// A BGP session reached Established (`up`) or left it.
    Bgp {
        /// The peer's name.
        peer: String,
        /// Whether the session is Established now.
        up: bool,
        /// Why it went down, when it did (the status's last down reason).
        reason: Option<String>,
    },
    /// A BFD session went Up or Down.
    Bfd {
        /// The peer's address.
        peer: IpAddr,
        /// The session's event.
        event: metallb_bfd::Event,
    },
}

/// Where drivers send their reports. A report to an owner that has gone is dropped.
pub type DriverEvents = mpsc::UnboundedSender<DriverEvent>;

/// A channel for driver reports.
pub fn channel() -> (DriverEvents, mpsc::UnboundedReceiver<DriverEvent>) {
    mpsc::unbounded_channel()
}
