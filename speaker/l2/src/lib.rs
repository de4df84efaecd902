//! Sans-IO layer 2 for the speaker: ARP (RFC 826) and NDP (RFC 4861) frames, the responders'
//! decision, the announcement schedule after a takeover, and MetalLB's election order.
//!
//! Nothing here touches a socket or reads a clock. The driver reads frames from a packet
//! socket per interface and passes them to [`respond`] with the interface and what this node
//! owns; a reply comes back as a [`Frame`] to [`encode`](Frame::encode) and send. When the
//! election ([`owner`]) makes this node announce an IP, the driver calls
//! [`Announcer::take_over`] and sends what [`Announcer::poll_transmit`] returns, calling
//! [`Announcer::handle_timeout`] whenever [`Announcer::poll_timeout`] passes:
//!
//! ```
//! use std::{net::IpAddr, time::{Duration, Instant}};
//! use metallb_l2::{AllowedInterfaces, Announcer, Interface, MacAddr, Schedule, owner, respond};
//!
//! let vip: IpAddr = "192.168.250.201".parse().unwrap();
//! assert_eq!(owner(vip, ["node1", "node2", "node3"]), Some("node3"));
//!
//! let eth0 = Interface {
//!     name: "eth0".into(),
//!     mac: MacAddr([0x02, 0x4e, 0x4c, 0x00, 0x00, 0x13]),
//!     link_local: None,
//! };
//! let now = Instant::now();
//! let mut announcer = Announcer::new(Schedule::default());
//! announcer.set_interfaces(vec![eth0.clone()]);
//! announcer.take_over(vip, AllowedInterfaces::All, now);
//! let first = announcer.poll_transmit().expect("a gratuitous ARP at once");
//! assert_eq!(first.interface, "eth0");
//! assert_eq!(announcer.poll_timeout(), Some(now + Duration::from_millis(1100)));
//!
//! // Our own announcement, looped back by the packet socket, gets no reply.
//! let looped = first.frame.encode();
//! assert!(respond(&looped, &eth0, announcer.ownership()).is_err());
//! ```

mod announce;
mod arp;
mod election;
mod frame;
mod ndp;
mod ownership;
mod responder;

pub use announce::{Announcer, Schedule, Transmit};
pub use arp::{ArpOperation, ArpPacket};
pub use election::{Candidate, election_hash, owner, rank};
pub use frame::{Frame, FrameError, MacAddr, Payload};
pub use ndp::{
    ALL_NODES, AdvertisementFlags, NdpMessage, NdpPacket, is_solicited_node_multicast,
    multicast_mac, solicited_node_multicast,
};
pub use ownership::{AllowedInterfaces, Interface, Ownership};
pub use responder::{Ignored, Reply, respond};
