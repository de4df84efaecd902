//! Sans-IO BFD (RFC 5880, single hop RFC 5881, multi hop RFC 5883): the Control packet codec
//! and the session state machine in asynchronous mode.
//!
//! Nothing here touches a socket or reads a clock. The speaker's driver receives UDP
//! datagrams, decodes them with [`ControlPacket::parse`], finds the session (by Your
//! Discriminator, or by addresses while that is zero) and hands the packet over together with
//! the received TTL and the current [`Instant`](std::time::Instant). Packets to send, the next
//! timer deadline and Up/Down events come back as values:
//!
//! ```
//! use std::{num::NonZeroU32, time::Instant};
//! use metallb_bfd::{Hop, Profile, Session, State, Xorshift};
//!
//! let now = Instant::now();
//! let discriminator = NonZeroU32::new(7).unwrap();
//! let mut session = Session::new(Hop::Single, Profile::default(), discriminator, Xorshift::new(1), now);
//! let first = session.poll_transmit(now).expect("an active session speaks first");
//! assert_eq!(first.state, State::Down);
//! assert_eq!(first.your_discriminator, 0);
//! assert!(session.poll_timeout().is_some_and(|deadline| deadline > now));
//! ```

mod config;
mod jitter;
mod packet;
mod session;

pub use config::{Hop, Profile, SOURCE_PORTS, TTL};
pub use jitter::{JitterSource, Xorshift};
pub use packet::{ControlPacket, Diagnostic, PACKET_LEN, PacketError, State, VERSION};
pub use session::{DownCause, Event, ReceiveError, Session};
