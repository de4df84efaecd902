//! The heartbeat datagram and its authentication.
//!
//! All integers are big-endian. A packet is a 40-byte header, `count` entries of 25 bytes and
//! a 16-byte MAC:
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 1 | version, [`VERSION`] |
//! | 1 | 1 | kind: 0 heartbeat, 1 probe (asks for an immediate heartbeat back) |
//! | 2 | 8 | sender's node ID |
//! | 10 | 8 | receiver's node ID |
//! | 18 | 8 | sequence: strictly increasing per sender, across restarts |
//! | 26 | 8 | sender's incarnation |
//! | 34 | 1 | sender's state byte (as in an entry, always Alive) |
//! | 35 | 4 | age of the sender's last successful Lease renewal in ms; `u32::MAX`: none |
//! | 39 | 1 | `count` |
//! | 40 | 25 each | entries: node ID, incarnation, state byte, accuser's node ID |
//! | end - 16 | 16 | HMAC-SHA256 of everything before it, keyed with [`Key`], first 16 bytes |
//!
//! A state byte holds the [`Status`] in bits 0-2 and the [`StandDown`] flags in bits 4-5; any
//! other bit set is malformed. The length must be exactly what `count` says, and the MAC is
//! checked (in constant time) before any field is trusted.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use thiserror::Error;

/// The protocol version this crate speaks.
pub const VERSION: u8 = 1;
/// Bytes before the entries.
pub const HEADER_LEN: usize = 40;
/// Bytes of one entry.
pub const ENTRY_LEN: usize = 25;
/// Bytes of the MAC at the end.
pub const MAC_LEN: usize = 16;
/// The most entries a packet carries: 856 bytes, well within any MTU.
pub const MAX_ENTRIES: usize = 32;

/// The context string that makes the heartbeat key differ from any other use of the secret.
const KEY_CONTEXT: &[u8] = b"metallb-rs liveness heartbeat v1";

/// The heartbeat key, derived from the membership secret the operator provides.
#[derive(Clone)]
pub struct Key([u8; 32]);

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key(..)")
    }
}

impl Key {
    /// HMAC-SHA256(secret, context): a key of fixed size, whatever the secret's length, and
    /// distinct from the secret itself.
    pub fn derive(secret: &[u8]) -> Self {
        Self(hmac(secret, KEY_CONTEXT))
    }

    /// The MAC that ends a packet whose other bytes are `body`.
    pub fn mac(&self, body: &[u8]) -> [u8; MAC_LEN] {
        let full = hmac(&self.0, body);
        let mut mac = [0; MAC_LEN];
        mac.copy_from_slice(&full[..MAC_LEN]);
        mac
    }

    fn verify(&self, body: &[u8], mac: &[u8]) -> bool {
        let mut hmac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes any key size");
        hmac.update(body);
        hmac.verify_truncated_left(mac).is_ok()
    }
}

fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut hmac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key size");
    hmac.update(data);
    hmac.finalize().into_bytes().into()
}

/// What a speaker is, as far as the others know.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Status {
    /// Heard, or not yet missed.
    Alive,
    /// A monitor stopped hearing it; dead unless it refutes in time.
    Suspect,
    /// Declared dead: the suspicion stood.
    Dead,
    /// Left on purpose (SIGTERM): hand over at once.
    Left,
}

/// Why a live speaker does not count as a candidate, as it says itself.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct StandDown {
    /// It cannot renew its Lease while a peer can.
    pub fenced: bool,
    /// It hears no peer while the others hear each other.
    pub isolated: bool,
}

impl StandDown {
    /// Whether either flag is set.
    pub fn any(self) -> bool {
        self.fenced || self.isolated
    }
}

/// A node's status at an incarnation: the unit of news.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Entry {
    /// The node the news is about.
    pub node: u64,
    /// The node's incarnation the news refers to; only the node itself raises it.
    pub incarnation: u64,
    /// The status.
    pub status: Status,
    /// The node's own stand-down flags (news from the node itself, status Alive).
    pub stand_down: StandDown,
    /// Who first suspected it (for Suspect and Dead); the node itself otherwise.
    pub accuser: u64,
}

/// Heartbeat or probe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Periodic, or news forwarded at once.
    Heartbeat,
    /// A monitor that misses the receiver asks for an immediate heartbeat back.
    Probe,
}

/// A decoded, authenticated packet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Packet {
    /// Heartbeat or probe.
    pub kind: Kind,
    /// The sender's node ID.
    pub from: u64,
    /// The receiver's node ID.
    pub to: u64,
    /// Strictly increasing per sender.
    pub sequence: u64,
    /// The sender's incarnation.
    pub incarnation: u64,
    /// The sender's stand-down flags.
    pub stand_down: StandDown,
    /// Age of the sender's last successful Lease renewal, in ms; `None` if it never renewed
    /// or longer ago than `u32::MAX` ms.
    pub api_age_ms: Option<u32>,
    /// News, at most [`MAX_ENTRIES`].
    pub entries: Vec<Entry>,
}

/// Why bytes are not a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum PacketError {
    /// Shorter than a header and a MAC.
    #[error("{0} bytes is shorter than the smallest packet")]
    TooShort(usize),
    /// The length does not match the entry count.
    #[error("{len} bytes do not hold {count} entries")]
    WrongLength {
        /// Bytes received.
        len: usize,
        /// Entries the header announces.
        count: u8,
    },
    /// The MAC does not match: another secret, or tampering.
    #[error("the MAC does not match")]
    BadMac,
    /// Another protocol version.
    #[error("version {0} is not spoken here")]
    Version(u8),
    /// An unknown kind.
    #[error("unknown packet kind {0}")]
    Kind(u8),
    /// A state byte with unknown bits or status.
    #[error("malformed state byte {0:#04x}")]
    State(u8),
    /// More entries than a packet may carry.
    #[error("{0} entries is more than a packet carries")]
    TooManyEntries(u8),
}

impl PacketError {
    /// A fixed snake_case name for a drop counter's label.
    pub fn label(&self) -> &'static str {
        match self {
            Self::TooShort(_) => "too_short",
            Self::WrongLength { .. } => "wrong_length",
            Self::BadMac => "bad_mac",
            Self::Version(_) => "version",
            Self::Kind(_) => "kind",
            Self::State(_) => "state",
            Self::TooManyEntries(_) => "too_many_entries",
        }
    }
}

const FENCED_BIT: u8 = 0x10;
const ISOLATED_BIT: u8 = 0x20;

fn state_byte(status: Status, stand_down: StandDown) -> u8 {
    let status = match status {
        Status::Alive => 0,
        Status::Suspect => 1,
        Status::Dead => 2,
        Status::Left => 3,
    };
    let mut byte = status;
    if stand_down.fenced {
        byte |= FENCED_BIT;
    }
    if stand_down.isolated {
        byte |= ISOLATED_BIT;
    }
    byte
}

fn parse_state(byte: u8) -> Result<(Status, StandDown), PacketError> {
    if byte & !(0x07 | FENCED_BIT | ISOLATED_BIT) != 0 {
        return Err(PacketError::State(byte));
    }
    let status = match byte & 0x07 {
        0 => Status::Alive,
        1 => Status::Suspect,
        2 => Status::Dead,
        3 => Status::Left,
        _ => return Err(PacketError::State(byte)),
    };
    let stand_down = StandDown {
        fenced: byte & FENCED_BIT != 0,
        isolated: byte & ISOLATED_BIT != 0,
    };
    Ok((status, stand_down))
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    let mut word = [0; 8];
    word.copy_from_slice(&bytes[at..at + 8]);
    u64::from_be_bytes(word)
}

impl Packet {
    /// Authenticates and decodes `bytes`.
    ///
    /// # Errors
    ///
    /// See [`PacketError`]; nothing in `bytes` can make this panic.
    pub fn decode(bytes: &[u8], key: &Key) -> Result<Self, PacketError> {
        if bytes.len() < HEADER_LEN + MAC_LEN {
            return Err(PacketError::TooShort(bytes.len()));
        }
        let count = bytes[HEADER_LEN - 1];
        if bytes.len() != HEADER_LEN + usize::from(count) * ENTRY_LEN + MAC_LEN {
            return Err(PacketError::WrongLength {
                len: bytes.len(),
                count,
            });
        }
        let (body, mac) = bytes.split_at(bytes.len() - MAC_LEN);
        if !key.verify(body, mac) {
            return Err(PacketError::BadMac);
        }
        if body[0] != VERSION {
            return Err(PacketError::Version(body[0]));
        }
        let kind = match body[1] {
            0 => Kind::Heartbeat,
            1 => Kind::Probe,
            other => return Err(PacketError::Kind(other)),
        };
        if usize::from(count) > MAX_ENTRIES {
            return Err(PacketError::TooManyEntries(count));
        }
        let (status, stand_down) = parse_state(body[34])?;
        if status != Status::Alive {
            return Err(PacketError::State(body[34]));
        }
        let age = u32::from_be_bytes([body[35], body[36], body[37], body[38]]);
        let entries = body[HEADER_LEN..]
            .chunks_exact(ENTRY_LEN)
            .map(|chunk| {
                let (status, stand_down) = parse_state(chunk[16])?;
                Ok(Entry {
                    node: u64_at(chunk, 0),
                    incarnation: u64_at(chunk, 8),
                    status,
                    stand_down,
                    accuser: u64_at(chunk, 17),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            kind,
            from: u64_at(body, 2),
            to: u64_at(body, 10),
            sequence: u64_at(body, 18),
            incarnation: u64_at(body, 26),
            stand_down,
            api_age_ms: (age != u32::MAX).then_some(age),
            entries,
        })
    }

    /// Encodes and authenticates the packet. Entries beyond [`MAX_ENTRIES`] are not sent.
    pub fn encode(&self, key: &Key) -> Vec<u8> {
        let entries = &self.entries[..self.entries.len().min(MAX_ENTRIES)];
        let mut bytes = Vec::with_capacity(HEADER_LEN + entries.len() * ENTRY_LEN + MAC_LEN);
        bytes.push(VERSION);
        bytes.push(match self.kind {
            Kind::Heartbeat => 0,
            Kind::Probe => 1,
        });
        bytes.extend(self.from.to_be_bytes());
        bytes.extend(self.to.to_be_bytes());
        bytes.extend(self.sequence.to_be_bytes());
        bytes.extend(self.incarnation.to_be_bytes());
        bytes.push(state_byte(Status::Alive, self.stand_down));
        // u32::MAX ms means "none"; 49 days and "none" mean the same to fencing.
        let age = self
            .api_age_ms
            .map_or(u32::MAX, |age| age.min(u32::MAX - 1));
        bytes.extend(age.to_be_bytes());
        bytes.push(u8::try_from(entries.len()).expect("at most MAX_ENTRIES"));
        for entry in entries {
            bytes.extend(entry.node.to_be_bytes());
            bytes.extend(entry.incarnation.to_be_bytes());
            bytes.push(state_byte(entry.status, entry.stand_down));
            bytes.extend(entry.accuser.to_be_bytes());
        }
        let mac = key.mac(&bytes);
        bytes.extend(mac);
        bytes
    }
}
