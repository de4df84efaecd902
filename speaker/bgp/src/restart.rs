//! Graceful restart (RFC 4724): the capability a speaker offers in its OPEN, and the
//! End-of-RIB marker that ends its initial table of each address family.
//!
//! The capability carries the Restart State bit (R: "I have just restarted"), the restart time
//! (how long the receiver keeps our routes, marked stale, after the connection is lost), and
//! per address family the Forwarding State bit (F: "the forwarding of these routes survived
//! my restart"). A receiver that kept stale routes drops them at once when the new OPEN lacks
//! F for their family, and otherwise when the End-of-RIB of that family arrives, keeping only
//! what the new session announced again. The N bit of RFC 8538 (keep routes on a
//! NOTIFICATION too) is parsed and never offered: a Cease must always end the routes.

use std::time::Duration;

use crate::{
    message::{AFI_IPV4, AFI_IPV6, SAFI_UNICAST},
    update::{PathAttributes, Update},
};

/// Capability code of Graceful Restart (RFC 4724 §3).
pub const CAPABILITY_GRACEFUL_RESTART: u8 = 64;
/// The largest restart time the capability's 12 bits can carry, in seconds.
pub const MAX_RESTART_TIME: u16 = 0x0fff;

const RESTART_STATE: u16 = 0x8000;
const NOTIFICATION: u16 = 0x4000;
const FORWARDING_STATE: u8 = 0x80;

/// The Graceful Restart capability.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GracefulRestart {
    /// R: the sender restarted and this is its first session since.
    pub restarting: bool,
    /// N (RFC 8538): the sender keeps routes across a NOTIFICATION too.
    pub notification: bool,
    /// Seconds the receiver keeps the sender's routes after losing the connection, at most
    /// [`MAX_RESTART_TIME`]; larger values are written as that.
    pub restart_time: u16,
    /// The address families the sender can restart gracefully.
    pub families: Vec<RestartFamily>,
}

/// One address family of the capability.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RestartFamily {
    /// Address family identifier.
    pub afi: u16,
    /// Subsequent address family identifier.
    pub safi: u8,
    /// F: the forwarding of this family's routes was kept across the restart.
    pub forwarding_preserved: bool,
}

impl GracefulRestart {
    /// What our OPEN offers: both families with their forwarding kept (the forwarding of
    /// service addresses does not live in the speaker), N never.
    pub(crate) fn offered(restart_time: Duration, restarting: bool) -> Self {
        Self {
            restarting,
            notification: false,
            restart_time: u16::try_from(restart_time.as_secs())
                .unwrap_or(u16::MAX)
                .min(MAX_RESTART_TIME),
            families: Family::ALL
                .into_iter()
                .map(|family| {
                    let (afi, safi) = family.afi_safi();
                    RestartFamily {
                        afi,
                        safi,
                        forwarding_preserved: true,
                    }
                })
                .collect(),
        }
    }

    /// Parses the capability's value; `None` when its length is not 2 + 4n (RFC 4724 §3).
    /// Reserved bits are dropped.
    pub(crate) fn parse(value: &[u8]) -> Option<Self> {
        let [a, b, families @ ..] = value else {
            return None;
        };
        if !families.len().is_multiple_of(4) {
            return None;
        }
        let word = u16::from_be_bytes([*a, *b]);
        Some(Self {
            restarting: word & RESTART_STATE != 0,
            notification: word & NOTIFICATION != 0,
            restart_time: word & MAX_RESTART_TIME,
            families: families
                .chunks_exact(4)
                .map(|family| RestartFamily {
                    afi: u16::from_be_bytes([family[0], family[1]]),
                    safi: family[2],
                    forwarding_preserved: family[3] & FORWARDING_STATE != 0,
                })
                .collect(),
        })
    }

    /// Writes the capability's value. At most 63 families fit a capability's 255 bytes; the
    /// rest are left out.
    pub(crate) fn encode_value(&self, out: &mut Vec<u8>) {
        let mut word = self.restart_time.min(MAX_RESTART_TIME);
        if self.restarting {
            word |= RESTART_STATE;
        }
        if self.notification {
            word |= NOTIFICATION;
        }
        out.extend_from_slice(&word.to_be_bytes());
        for family in self.families.iter().take(63) {
            out.extend_from_slice(&family.afi.to_be_bytes());
            out.push(family.safi);
            out.push(if family.forwarding_preserved {
                FORWARDING_STATE
            } else {
                0
            });
        }
    }

    /// Whether `family` is listed.
    pub fn covers(&self, family: Family) -> bool {
        let (afi, safi) = family.afi_safi();
        self.families
            .iter()
            .any(|listed| (listed.afi, listed.safi) == (afi, safi))
    }
}

/// The two address families this speaker announces.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    /// IPv4 unicast.
    Ipv4,
    /// IPv6 unicast.
    Ipv6,
}

impl Family {
    /// Both, IPv4 first.
    pub const ALL: [Family; 2] = [Family::Ipv4, Family::Ipv6];

    /// AFI and SAFI of the family.
    pub fn afi_safi(self) -> (u16, u8) {
        match self {
            Family::Ipv4 => (AFI_IPV4, SAFI_UNICAST),
            Family::Ipv6 => (AFI_IPV6, SAFI_UNICAST),
        }
    }
}

impl Update {
    /// The End-of-RIB marker of `family` (RFC 4724 §2): for IPv4 an UPDATE with nothing in
    /// it, for IPv6 one whose only attribute is an MP_UNREACH_NLRI without prefixes.
    pub fn end_of_rib(family: Family) -> Self {
        match family {
            Family::Ipv4 => Self::default(),
            Family::Ipv6 => Self {
                attributes: PathAttributes {
                    mp_unreach: Some(Vec::new()),
                    ..PathAttributes::default()
                },
                ..Self::default()
            },
        }
    }

    /// The family whose End-of-RIB marker this UPDATE is, if it is one.
    pub fn end_of_rib_family(&self) -> Option<Family> {
        Family::ALL
            .into_iter()
            .find(|family| *self == Self::end_of_rib(*family))
    }
}
