//! The UPDATE message (RFC 4271 §4.3) with the path attributes a load-balancer speaker sends
//! and the ones it must understand to check what it receives: ORIGIN, AS_PATH, NEXT_HOP,
//! LOCAL_PREF, COMMUNITIES (RFC 1997), LARGE_COMMUNITY (RFC 8092) and MP_REACH_NLRI /
//! MP_UNREACH_NLRI for IPv6 unicast (RFC 4760, RFC 2545). Other attributes are kept raw.
//!
//! Errors follow RFC 7606: a malformed attribute whose damage stays inside the attribute makes
//! the UPDATE "treat-as-withdraw" ([`Update::treat_as_withdraw`]); damage to the framing of the
//! attribute list, the NLRI or the MP attributes resets the session.

use std::{
    fmt,
    net::{Ipv4Addr, Ipv6Addr},
};

use ipnet::{Ipv4Net, Ipv6Net};

use crate::{
    error::MessageError,
    message::{AFI_IPV6, AS_TRANS, AsWidth, SAFI_UNICAST},
};

/// Attribute type code of ORIGIN.
pub const ATTR_ORIGIN: u8 = 1;
/// Attribute type code of AS_PATH.
pub const ATTR_AS_PATH: u8 = 2;
/// Attribute type code of NEXT_HOP.
pub const ATTR_NEXT_HOP: u8 = 3;
/// Attribute type code of LOCAL_PREF.
pub const ATTR_LOCAL_PREF: u8 = 5;
/// Attribute type code of ATOMIC_AGGREGATE, the one well-known attribute we keep raw.
pub const ATTR_ATOMIC_AGGREGATE: u8 = 6;
/// Attribute type code of COMMUNITIES.
pub const ATTR_COMMUNITIES: u8 = 8;
/// Attribute type code of MP_REACH_NLRI.
pub const ATTR_MP_REACH: u8 = 14;
/// Attribute type code of MP_UNREACH_NLRI.
pub const ATTR_MP_UNREACH: u8 = 15;
/// Attribute type code of LARGE_COMMUNITY.
pub const ATTR_LARGE_COMMUNITY: u8 = 32;

const OPTIONAL: u8 = 0x80;
const TRANSITIVE: u8 = 0x40;
const EXTENDED_LENGTH: u8 = 0x10;
/// The flag bits that carry meaning; the low four are unused (RFC 4271 §4.3).
const FLAG_BITS: u8 = 0xe0;
const WELL_KNOWN: u8 = TRANSITIVE;
const OPTIONAL_TRANSITIVE: u8 = OPTIONAL | TRANSITIVE;

/// An UPDATE message.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Update {
    /// IPv4 prefixes no longer reachable.
    pub withdrawn: Vec<Ipv4Net>,
    /// Path attributes of the announced prefixes.
    pub attributes: PathAttributes,
    /// IPv4 prefixes announced with `attributes`.
    pub nlri: Vec<Ipv4Net>,
    /// Set by the parser when RFC 7606 says to treat every prefix announced in this UPDATE
    /// as withdrawn. The malformed attribute itself is left out of `attributes`.
    pub treat_as_withdraw: Option<WithdrawReason>,
}

/// Why an UPDATE is treated as a withdrawal (RFC 7606 §2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WithdrawReason {
    /// A recognised attribute had a bad length, value or flags.
    Malformed {
        /// Type code of the first malformed attribute.
        type_code: u8,
    },
    /// Prefixes were announced without a well-known mandatory attribute (RFC 7606 §3.d).
    MissingMandatory {
        /// Type code of the first missing attribute.
        type_code: u8,
    },
}

/// The path attributes of an UPDATE. Empty community lists stand for absent attributes: an
/// empty COMMUNITIES or LARGE_COMMUNITY attribute is malformed (RFC 7606 §7.8, RFC 8092 §5).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PathAttributes {
    /// ORIGIN.
    pub origin: Option<Origin>,
    /// AS_PATH; `Some(vec![])` is the empty path of iBGP.
    pub as_path: Option<Vec<AsSegment>>,
    /// NEXT_HOP of the IPv4 NLRI.
    pub next_hop: Option<Ipv4Addr>,
    /// LOCAL_PREF, iBGP only.
    pub local_pref: Option<u32>,
    /// COMMUNITIES.
    pub communities: Vec<Community>,
    /// LARGE_COMMUNITY.
    pub large_communities: Vec<LargeCommunity>,
    /// MP_REACH_NLRI for IPv6 unicast.
    pub mp_reach: Option<MpReach>,
    /// MP_UNREACH_NLRI for IPv6 unicast; `Some(vec![])` is the IPv6 End-of-RIB marker.
    pub mp_unreach: Option<Vec<Ipv6Net>>,
    /// Every other attribute (MED, AGGREGATOR, other address families, ...), as received.
    pub other: Vec<RawAttribute>,
}

/// ORIGIN values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Origin {
    /// Learned from an interior protocol; what a speaker's service addresses are.
    Igp,
    /// Learned from EGP.
    Egp,
    /// Learned some other way.
    Incomplete,
}

/// One AS_PATH segment.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct AsSegment {
    /// Segment type.
    pub kind: SegmentKind,
    /// The AS numbers, at least one in a parsed segment.
    pub asns: Vec<u32>,
}

/// AS_PATH segment types (RFC 4271 §4.3, RFC 5065).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SegmentKind {
    /// Unordered set (type 1).
    Set = 1,
    /// Ordered sequence (type 2).
    Sequence = 2,
    /// Confederation sequence (type 3).
    ConfedSequence = 3,
    /// Confederation set (type 4).
    ConfedSet = 4,
}

/// A standard community (RFC 1997): two 16-bit halves, usually ASN and value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Community(pub u32);

impl Community {
    /// GRACEFUL_SHUTDOWN, 65535:0 (RFC 8326): receivers lower the route's preference.
    pub const GRACEFUL_SHUTDOWN: Self = Self(0xffff_0000);

    /// The community `high:low`.
    pub fn new(high: u16, low: u16) -> Self {
        Self(u32::from(high) << 16 | u32::from(low))
    }
}

impl fmt::Display for Community {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.0 >> 16, self.0 & 0xffff)
    }
}

/// A large community (RFC 8092).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LargeCommunity {
    /// Global Administrator, usually an ASN.
    pub global_admin: u32,
    /// Local Data Part 1.
    pub local_data_1: u32,
    /// Local Data Part 2.
    pub local_data_2: u32,
}

impl fmt::Display for LargeCommunity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}",
            self.global_admin, self.local_data_1, self.local_data_2
        )
    }
}

/// MP_REACH_NLRI for IPv6 unicast.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MpReach {
    /// Global next hop.
    pub next_hop: Ipv6Addr,
    /// Link-local next hop, sent when the peer shares our link (RFC 2545 §3).
    pub link_local: Option<Ipv6Addr>,
    /// The announced prefixes.
    pub nlri: Vec<Ipv6Net>,
}

/// An attribute kept as received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawAttribute {
    /// Optional, Transitive and Partial flags; the Extended Length bit is chosen on encode.
    pub flags: u8,
    /// Type code.
    pub type_code: u8,
    /// Value.
    pub value: Vec<u8>,
}

/// What a malformed attribute leads to.
enum Problem {
    Withdraw,
    Reset(MessageError),
}

impl Update {
    pub(crate) fn parse_body(body: &[u8], width: AsWidth) -> Result<Self, MessageError> {
        let withdrawn_len = usize::from(u16::from_be_bytes([body[0], body[1]]));
        let (withdrawn, rest) = body[2..]
            .split_at_checked(withdrawn_len)
            .ok_or(MessageError::MalformedAttributeList)?;
        let [a, b, rest @ ..] = rest else {
            return Err(MessageError::MalformedAttributeList);
        };
        let (attributes, nlri) = rest
            .split_at_checked(usize::from(u16::from_be_bytes([*a, *b])))
            .ok_or(MessageError::MalformedAttributeList)?;
        let withdrawn = ipv4_prefixes(withdrawn).ok_or(MessageError::InvalidNetworkField)?;
        let nlri = ipv4_prefixes(nlri).ok_or(MessageError::InvalidNetworkField)?;
        let (attributes, malformed) = PathAttributes::parse(attributes, width)?;
        let mut update = Self {
            withdrawn,
            attributes,
            nlri,
            treat_as_withdraw: malformed,
        };
        if update.treat_as_withdraw.is_none() {
            update.treat_as_withdraw = update.missing_mandatory();
        }
        Ok(update)
    }

    fn missing_mandatory(&self) -> Option<WithdrawReason> {
        let attributes = &self.attributes;
        let announces = !self.nlri.is_empty() || attributes.mp_reach.is_some();
        let type_code = if !announces {
            return None;
        } else if attributes.origin.is_none() {
            ATTR_ORIGIN
        } else if attributes.as_path.is_none() {
            ATTR_AS_PATH
        } else if !self.nlri.is_empty() && attributes.next_hop.is_none() {
            ATTR_NEXT_HOP
        } else {
            return None;
        };
        Some(WithdrawReason::MissingMandatory { type_code })
    }

    pub(crate) fn encode_body(&self, out: &mut Vec<u8>, width: AsWidth) {
        let withdrawn_at = out.len();
        out.extend_from_slice(&[0, 0]);
        for prefix in &self.withdrawn {
            encode_prefix(out, &prefix.addr().octets(), prefix.prefix_len());
        }
        patch_length(out, withdrawn_at);
        let attributes_at = out.len();
        out.extend_from_slice(&[0, 0]);
        self.attributes.encode(out, width);
        patch_length(out, attributes_at);
        for prefix in &self.nlri {
            encode_prefix(out, &prefix.addr().octets(), prefix.prefix_len());
        }
    }
}

/// Writes the length of what follows the 2-octet field at `at`.
fn patch_length(out: &mut [u8], at: usize) {
    let length = u16::try_from(out.len() - at - 2).unwrap_or(u16::MAX);
    out[at..at + 2].copy_from_slice(&length.to_be_bytes());
}

impl PathAttributes {
    fn parse(
        mut bytes: &[u8],
        width: AsWidth,
    ) -> Result<(Self, Option<WithdrawReason>), MessageError> {
        let mut attributes = Self::default();
        let mut malformed = None;
        let mut seen = [false; 256];
        while !bytes.is_empty() {
            let (flags, type_code, header, length) = match *bytes {
                [flags, code, a, b, ..] if flags & EXTENDED_LENGTH != 0 => {
                    (flags, code, 4, usize::from(u16::from_be_bytes([a, b])))
                }
                [flags, code, length, ..] if flags & EXTENDED_LENGTH == 0 => {
                    (flags, code, 3, usize::from(length))
                }
                _ => return Err(MessageError::MalformedAttributeList),
            };
            let (whole, rest) = bytes
                .split_at_checked(header + length)
                .ok_or(MessageError::MalformedAttributeList)?;
            bytes = rest;
            if std::mem::replace(&mut seen[usize::from(type_code)], true) {
                // Repeated MP attributes make the NLRI ambiguous; any other repeat is
                // dropped (RFC 7606 §3.g).
                if matches!(type_code, ATTR_MP_REACH | ATTR_MP_UNREACH) {
                    return Err(MessageError::MalformedAttributeList);
                }
                continue;
            }
            let flags = flags & FLAG_BITS;
            match attributes.parse_one(flags, type_code, &whole[header..], width) {
                Ok(()) => {}
                Err(Problem::Withdraw) => {
                    malformed.get_or_insert(WithdrawReason::Malformed { type_code });
                }
                Err(Problem::Reset(MessageError::UnrecognizedWellKnown { type_code, .. })) => {
                    return Err(MessageError::UnrecognizedWellKnown {
                        type_code,
                        attribute: whole.to_vec(),
                    });
                }
                Err(Problem::Reset(error)) => return Err(error),
            }
        }
        Ok((attributes, malformed))
    }

    fn parse_one(
        &mut self,
        flags: u8,
        type_code: u8,
        value: &[u8],
        width: AsWidth,
    ) -> Result<(), Problem> {
        let expect = |category: u8, problem: Problem| {
            if flags & (OPTIONAL | TRANSITIVE) == category {
                Ok(())
            } else {
                Err(problem)
            }
        };
        let mp_error = || Problem::Reset(MessageError::OptionalAttribute { type_code });
        match type_code {
            ATTR_ORIGIN => {
                expect(WELL_KNOWN, Problem::Withdraw)?;
                self.origin = Some(match value {
                    [0] => Origin::Igp,
                    [1] => Origin::Egp,
                    [2] => Origin::Incomplete,
                    _ => return Err(Problem::Withdraw),
                });
            }
            ATTR_AS_PATH => {
                expect(WELL_KNOWN, Problem::Withdraw)?;
                self.as_path = Some(parse_as_path(value, width).ok_or(Problem::Withdraw)?);
            }
            ATTR_NEXT_HOP => {
                expect(WELL_KNOWN, Problem::Withdraw)?;
                let octets: [u8; 4] = value.try_into().map_err(|_| Problem::Withdraw)?;
                self.next_hop = Some(Ipv4Addr::from(octets));
            }
            ATTR_LOCAL_PREF => {
                // RFC 7606 §7.5 discards it from eBGP peers; the codec does not know the
                // session kind, so it takes the stricter iBGP rule.
                expect(WELL_KNOWN, Problem::Withdraw)?;
                let octets: [u8; 4] = value.try_into().map_err(|_| Problem::Withdraw)?;
                self.local_pref = Some(u32::from_be_bytes(octets));
            }
            ATTR_COMMUNITIES => {
                expect(OPTIONAL_TRANSITIVE, Problem::Withdraw)?;
                if value.is_empty() || !value.len().is_multiple_of(4) {
                    return Err(Problem::Withdraw);
                }
                self.communities = value
                    .chunks_exact(4)
                    .map(|chunk| Community(u32_at(chunk, 0)))
                    .collect();
            }
            ATTR_LARGE_COMMUNITY => {
                expect(OPTIONAL_TRANSITIVE, Problem::Withdraw)?;
                if value.is_empty() || !value.len().is_multiple_of(12) {
                    return Err(Problem::Withdraw);
                }
                self.large_communities = value
                    .chunks_exact(12)
                    .map(|chunk| LargeCommunity {
                        global_admin: u32_at(chunk, 0),
                        local_data_1: u32_at(chunk, 4),
                        local_data_2: u32_at(chunk, 8),
                    })
                    .collect();
            }
            ATTR_MP_REACH | ATTR_MP_UNREACH => {
                expect(OPTIONAL, mp_error())?;
                let [a, b, safi, rest @ ..] = value else {
                    return Err(mp_error());
                };
                if (u16::from_be_bytes([*a, *b]), *safi) != (AFI_IPV6, SAFI_UNICAST) {
                    // Never negotiated, so never used; kept for completeness.
                    self.other.push(RawAttribute {
                        flags,
                        type_code,
                        value: value.to_vec(),
                    });
                } else if type_code == ATTR_MP_REACH {
                    self.mp_reach = Some(parse_mp_reach(rest).ok_or_else(mp_error)?);
                } else {
                    self.mp_unreach = Some(ipv6_prefixes(rest).ok_or_else(mp_error)?);
                }
            }
            _ if flags & OPTIONAL == 0 && type_code != ATTR_ATOMIC_AGGREGATE => {
                return Err(Problem::Reset(MessageError::UnrecognizedWellKnown {
                    type_code,
                    attribute: Vec::new(),
                }));
            }
            _ => self.other.push(RawAttribute {
                flags,
                type_code,
                value: value.to_vec(),
            }),
        }
        Ok(())
    }

    fn encode(&self, out: &mut Vec<u8>, width: AsWidth) {
        if let Some(origin) = self.origin {
            encode_attribute(out, WELL_KNOWN, ATTR_ORIGIN, &[origin as u8]);
        }
        if let Some(path) = &self.as_path {
            let mut value = Vec::new();
            for segment in path {
                for asns in segment.asns.chunks(255) {
                    value.extend_from_slice(&[segment.kind as u8, asns.len() as u8]);
                    for &asn in asns {
                        match width {
                            AsWidth::Two => value.extend_from_slice(
                                &u16::try_from(asn).unwrap_or(AS_TRANS).to_be_bytes(),
                            ),
                            AsWidth::Four => value.extend_from_slice(&asn.to_be_bytes()),
                        }
                    }
                }
            }
            encode_attribute(out, WELL_KNOWN, ATTR_AS_PATH, &value);
        }
        if let Some(next_hop) = self.next_hop {
            encode_attribute(out, WELL_KNOWN, ATTR_NEXT_HOP, &next_hop.octets());
        }
        if let Some(local_pref) = self.local_pref {
            encode_attribute(out, WELL_KNOWN, ATTR_LOCAL_PREF, &local_pref.to_be_bytes());
        }
        if !self.communities.is_empty() {
            let value: Vec<u8> = self
                .communities
                .iter()
                .flat_map(|community| community.0.to_be_bytes())
                .collect();
            encode_attribute(out, OPTIONAL_TRANSITIVE, ATTR_COMMUNITIES, &value);
        }
        if let Some(reach) = &self.mp_reach {
            let mut value = AFI_IPV6.to_be_bytes().to_vec();
            value.push(SAFI_UNICAST);
            value.push(if reach.link_local.is_some() { 32 } else { 16 });
            value.extend_from_slice(&reach.next_hop.octets());
            if let Some(link_local) = reach.link_local {
                value.extend_from_slice(&link_local.octets());
            }
            value.push(0);
            for prefix in &reach.nlri {
                encode_prefix(&mut value, &prefix.addr().octets(), prefix.prefix_len());
            }
            encode_attribute(out, OPTIONAL, ATTR_MP_REACH, &value);
        }
        if let Some(withdrawn) = &self.mp_unreach {
            let mut value = AFI_IPV6.to_be_bytes().to_vec();
            value.push(SAFI_UNICAST);
            for prefix in withdrawn {
                encode_prefix(&mut value, &prefix.addr().octets(), prefix.prefix_len());
            }
            encode_attribute(out, OPTIONAL, ATTR_MP_UNREACH, &value);
        }
        if !self.large_communities.is_empty() {
            let value: Vec<u8> = self
                .large_communities
                .iter()
                .flat_map(|large| {
                    [large.global_admin, large.local_data_1, large.local_data_2]
                        .into_iter()
                        .flat_map(u32::to_be_bytes)
                })
                .collect();
            encode_attribute(out, OPTIONAL_TRANSITIVE, ATTR_LARGE_COMMUNITY, &value);
        }
        for raw in &self.other {
            encode_attribute(out, raw.flags & FLAG_BITS, raw.type_code, &raw.value);
        }
    }
}

fn encode_attribute(out: &mut Vec<u8>, flags: u8, type_code: u8, value: &[u8]) {
    match u8::try_from(value.len()) {
        Ok(length) => out.extend_from_slice(&[flags, type_code, length]),
        Err(_) => {
            let length = u16::try_from(value.len()).unwrap_or(u16::MAX);
            out.extend_from_slice(&[flags | EXTENDED_LENGTH, type_code]);
            out.extend_from_slice(&length.to_be_bytes());
        }
    }
    out.extend_from_slice(value);
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

fn parse_as_path(mut bytes: &[u8], width: AsWidth) -> Option<Vec<AsSegment>> {
    let size = match width {
        AsWidth::Two => 2,
        AsWidth::Four => 4,
    };
    let mut segments = Vec::new();
    while let [kind, count, rest @ ..] = bytes {
        let kind = match kind {
            1 => SegmentKind::Set,
            2 => SegmentKind::Sequence,
            3 => SegmentKind::ConfedSequence,
            4 => SegmentKind::ConfedSet,
            _ => return None,
        };
        if *count == 0 {
            return None;
        }
        let (asns, rest) = rest.split_at_checked(usize::from(*count) * size)?;
        let asns = asns
            .chunks_exact(size)
            .map(|asn| match *asn {
                [a, b] => u32::from(u16::from_be_bytes([a, b])),
                _ => u32_at(asn, 0),
            })
            .collect();
        segments.push(AsSegment { kind, asns });
        bytes = rest;
    }
    bytes.is_empty().then_some(segments)
}

fn parse_mp_reach(bytes: &[u8]) -> Option<MpReach> {
    let [length, rest @ ..] = bytes else {
        return None;
    };
    let (next_hops, rest) = rest.split_at_checked(usize::from(*length))?;
    let (next_hop, link_local) = match next_hops.len() {
        16 => (ipv6_at(next_hops, 0), None),
        32 => (ipv6_at(next_hops, 0), Some(ipv6_at(next_hops, 16))),
        _ => return None,
    };
    // One reserved octet (RFC 4760 §3), then the NLRI.
    let [_reserved, nlri @ ..] = rest else {
        return None;
    };
    Some(MpReach {
        next_hop,
        link_local,
        nlri: ipv6_prefixes(nlri)?,
    })
}

fn ipv6_at(bytes: &[u8], at: usize) -> Ipv6Addr {
    let mut octets = [0; 16];
    octets.copy_from_slice(&bytes[at..at + 16]);
    Ipv6Addr::from(octets)
}

/// Parses a run of (length, prefix bytes) pairs for an address of `N` octets. Bits past the
/// prefix length are cleared, so parsing is canonical.
fn prefixes<const N: usize>(mut bytes: &[u8]) -> Option<Vec<([u8; N], u8)>> {
    let mut prefixes = Vec::new();
    while let [length, rest @ ..] = bytes {
        if usize::from(*length) > N * 8 {
            return None;
        }
        let used = usize::from(*length).div_ceil(8);
        let (octets, rest) = rest.split_at_checked(used)?;
        let mut address = [0; N];
        address[..used].copy_from_slice(octets);
        prefixes.push((address, *length));
        bytes = rest;
    }
    Some(prefixes)
}

fn ipv4_prefixes(bytes: &[u8]) -> Option<Vec<Ipv4Net>> {
    prefixes::<4>(bytes)?
        .into_iter()
        .map(|(octets, length)| Some(Ipv4Net::new(octets.into(), length).ok()?.trunc()))
        .collect()
}

fn ipv6_prefixes(bytes: &[u8]) -> Option<Vec<Ipv6Net>> {
    prefixes::<16>(bytes)?
        .into_iter()
        .map(|(octets, length)| Some(Ipv6Net::new(octets.into(), length).ok()?.trunc()))
        .collect()
}

/// Bytes one prefix of this length takes in NLRI or withdrawn routes.
pub(crate) fn prefix_wire_len(length: u8) -> usize {
    1 + usize::from(length).div_ceil(8)
}

fn encode_prefix(out: &mut Vec<u8>, octets: &[u8], length: u8) {
    let used = usize::from(length).div_ceil(8).min(octets.len());
    out.push(length);
    out.extend_from_slice(&octets[..used]);
}
