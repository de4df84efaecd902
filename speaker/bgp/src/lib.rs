//! Sans-IO BGP-4 (RFC 4271) for a speaker that announces service addresses: the message
//! codec, the session state machine and the outbound RIB, with graceful restart (RFC 4724)
//! and End-of-RIB.
//!
//! Nothing here touches a socket or reads a clock. The speaker's driver dials TCP when asked,
//! hands received bytes and the current [`Instant`](std::time::Instant) to a [`Session`], and
//! writes out what it returns. Prefixes are announced and withdrawn on the session at any
//! time; once Established, only the differences are sent, many prefixes per UPDATE.
//!
//! ```
//! use std::{net::Ipv4Addr, time::Instant};
//! use metallb_bgp::{Config, Event, Message, NextHops, PeerAsn, Session, State, AsWidth};
//!
//! let now = Instant::now();
//! let config = Config::new(64500, PeerAsn::Exact(64512), Ipv4Addr::new(192, 0, 2, 1));
//! let mut session = Session::new(config);
//! session.start();
//! assert_eq!(session.poll_event(), Some(Event::Dial));
//! let next_hops = NextHops { ipv4: Some(Ipv4Addr::new(192, 0, 2, 1)), ..NextHops::default() };
//! session.handle_connected(now, next_hops);
//! let open = session.poll_transmit(now).expect("the OPEN goes out first");
//! assert!(matches!(Message::parse(&open, AsWidth::Two), Ok(Message::Open(_))));
//! assert_eq!(session.state(), State::OpenSent);
//! ```

mod config;
mod error;
mod message;
mod restart;
mod rib;
mod session;
mod update;

pub use config::{Config, NextHops, PeerAsn};
pub use error::MessageError;
pub use message::{
    AFI_IPV4, AFI_IPV6, AS_TRANS, AsWidth, CAPABILITY_FOUR_OCTET_AS, CAPABILITY_MULTIPROTOCOL,
    Capability, HEADER_LEN, MAX_MESSAGE_LEN, Message, Notification, Open, SAFI_UNICAST, frame_len,
};
pub use restart::{
    CAPABILITY_GRACEFUL_RESTART, Family, GracefulRestart, MAX_RESTART_TIME, RestartFamily,
};
pub use rib::{DEFAULT_LOCAL_PREF, Route};
pub use session::{Cease, DownReason, Event, Session, State};
pub use update::{
    ATTR_AS_PATH, ATTR_ATOMIC_AGGREGATE, ATTR_COMMUNITIES, ATTR_LARGE_COMMUNITY, ATTR_LOCAL_PREF,
    ATTR_MP_REACH, ATTR_MP_UNREACH, ATTR_NEXT_HOP, ATTR_ORIGIN, AsSegment, Community,
    LargeCommunity, MpReach, Origin, PathAttributes, RawAttribute, SegmentKind, Update,
    WithdrawReason,
};
