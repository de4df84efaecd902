//! The static configuration of `metallb-speaker run`: BGP peers, BFD profiles and the addresses
//! to announce, written with the field names of the `metallb.io` kinds and checked by the same
//! validation module as the admission webhooks. It drives the engine for lab tests and for
//! debugging until the Kubernetes plumbing supplies the same inputs.
//!
//! ```yaml
//! routerID: 192.168.250.11
//! listen: "[::]:179"
//! bfdProfiles:
//!   - name: fast
//!     receiveInterval: 10
//!     transmitInterval: 10
//! peers:
//!   - name: router
//!     myASN: 64500
//!     peerASN: 64512
//!     peerAddress: 192.168.250.1
//!     holdTime: 9s
//!     bfdProfile: fast
//! bgpAdvertisements:
//!   - prefixes: [192.168.250.200/32, fd00:250::200/128]
//!     communities: ["64500:100", "large:64500:1:2"]
//! l2Advertisements:
//!   - addresses: [192.168.250.201, fd00:250::201]
//!     interfaces: [eth0]
//! ```

use std::{
    collections::{BTreeMap, BTreeSet},
    net::{IpAddr, Ipv4Addr, SocketAddr},
    num::NonZeroU8,
    path::Path,
    time::Duration,
};

use ipnet::IpNet;
use metallb_api::{
    advertisement::{BGPAdvertisement, BGPAdvertisementSpec, L2Advertisement, L2AdvertisementSpec},
    bfdprofile::{BFDProfile, BFDProfileSpec},
    bgppeer::v1beta2::{BGPPeer, BGPPeerSpec, DynamicAsnMode},
    duration::GoDuration,
    validation::{self, Community, Operation, Snapshot},
};
use metallb_bgp::{LargeCommunity, PeerAsn, Route};
use metallb_l2::AllowedInterfaces;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::bgp::PeerOptions;

/// BGP port of a peer without `peerPort`.
const BGP_PORT: u16 = 179;
/// Hold time of a peer without `holdTime` (MetalLB's default).
const DEFAULT_HOLD: Duration = Duration::from_secs(90);
/// Longest pause between connection attempts without `connectTime`.
const DEFAULT_CONNECT: Duration = Duration::from_secs(120);
/// How long a router keeps our routes after losing the session, with `enableGracefulRestart`:
/// FRR's default, which MetalLB's FRR mode keeps.
const GRACEFUL_RESTART_TIME: Duration = Duration::from_secs(120);

/// Why a configuration file was refused. The text names the entry and the field.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// Not YAML, or a field of the wrong type.
    #[error("{path}: {reason}")]
    Syntax {
        /// The file.
        path: String,
        /// The parser's reason.
        reason: String,
    },
    /// A field the configuration does not have (a misspelling would otherwise be ignored).
    #[error("{path}: unknown field {field}")]
    UnknownField {
        /// The file.
        path: String,
        /// JSON path of the field.
        field: String,
    },
    /// A value the validation module or the speaker refuses.
    #[error("{path}: {reason}")]
    Invalid {
        /// The file.
        path: String,
        /// The object, field and reason.
        reason: String,
    },
}

/// An object of the file: a name plus the spec of its `metallb.io` kind.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Named<T> {
    /// The object's name.
    pub name: String,
    /// The fields of the kind's spec.
    #[serde(flatten)]
    pub spec: T,
}

/// Prefixes to announce by BGP, with the announcement fields of a BGPAdvertisement.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BgpAnnouncement {
    /// The prefixes, e.g. `192.168.250.200/32`.
    pub prefixes: Vec<IpNet>,
    /// `localPref`, `communities` and `peers` are used; pool and node selection do not apply.
    #[serde(flatten)]
    pub spec: BGPAdvertisementSpec,
}

/// Addresses to answer ARP/NDP for, with the fields of an L2Advertisement.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct L2Announcement {
    /// The addresses this node owns.
    pub addresses: Vec<IpAddr>,
    /// `interfaces` is used; pool and node selection do not apply.
    #[serde(flatten)]
    pub spec: L2AdvertisementSpec,
}

/// The file as written.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StaticConfig {
    /// BGP identifier of peers without `routerID`; default: the session's IPv4 source.
    #[serde(default, rename = "routerID", skip_serializing_if = "Option::is_none")]
    pub router_id: Option<Ipv4Addr>,
    /// Where to accept BGP connections from configured peers, e.g. `[::]:179`; none when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listen: Option<SocketAddr>,
    /// Interfaces the ARP/NDP responder opens; every Ethernet interface when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub interfaces: Vec<String>,
    /// Gratuitous ARP / unsolicited NA repeated this often while an address is owned, after the
    /// take-over bursts; none when unset (MetalLB's behaviour).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub l2_refresh: Option<GoDuration>,
    /// BFD profiles, as BFDProfile specs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bfd_profiles: Vec<Named<BFDProfileSpec>>,
    /// BGP peers, as `metallb.io/v1beta2` BGPPeer specs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub peers: Vec<Named<BGPPeerSpec>>,
    /// What to announce by BGP.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bgp_advertisements: Vec<BgpAnnouncement>,
    /// What to announce by ARP/NDP.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub l2_advertisements: Vec<L2Announcement>,
}

/// One peer, resolved: everything the drivers need.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerPlan {
    /// How the BGP driver reaches the peer.
    pub options: PeerOptions,
    /// BFD with this profile, when the peer names one (multi-hop with `ebgpMultiHop`).
    pub bfd: Option<metallb_bfd::Profile>,
    /// What to announce to this peer.
    pub routes: BTreeMap<IpNet, Route>,
}

/// The whole configuration, resolved and valid.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Passive BGP listener.
    pub listen: Option<SocketAddr>,
    /// Interfaces of the ARP/NDP responder (empty: all).
    pub interfaces: Vec<String>,
    /// Interfaces the ARP/NDP responder never uses, as regular expressions.
    pub excluded_interfaces: Vec<String>,
    /// Periodic refresh of owned addresses.
    pub l2_refresh: Option<Duration>,
    /// Peers by name.
    pub peers: BTreeMap<String, PeerPlan>,
    /// Addresses owned in layer 2, with the interfaces allowed for each.
    pub l2: BTreeMap<IpAddr, AllowedInterfaces>,
}

/// Reads, checks and resolves a configuration file.
pub fn load(path: &Path) -> Result<Plan, ConfigError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: shown.clone(),
        source,
    })?;
    parse(&text)
        .and_then(|config| resolve(&config))
        .map_err(|error| error.in_file(&shown))
}

/// Why a text was refused, before the file's name is known.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    /// Not YAML, or a field of the wrong type.
    #[error("{0}")]
    Syntax(String),
    /// The path of a field the configuration does not have.
    #[error("{0}")]
    UnknownField(String),
    /// What the validation module or the speaker refuses: object, field and reason.
    #[error("{0}")]
    Invalid(String),
}

impl Refusal {
    fn in_file(self, path: &str) -> ConfigError {
        let path = path.to_owned();
        match self {
            Self::Syntax(reason) => ConfigError::Syntax { path, reason },
            Self::UnknownField(field) => ConfigError::UnknownField { path, field },
            Self::Invalid(reason) => ConfigError::Invalid { path, reason },
        }
    }
}

/// Parses the YAML text, refusing fields the configuration does not know.
pub fn parse(text: &str) -> Result<StaticConfig, Refusal> {
    let raw: Value = serde_saphyr::from_str(text).map_err(|e| Refusal::Syntax(e.to_string()))?;
    let raw = if raw.is_null() {
        Value::Object(Default::default())
    } else {
        raw
    };
    let config: StaticConfig =
        serde_json::from_value(raw.clone()).map_err(|e| Refusal::Syntax(e.to_string()))?;
    // Flattened specs cannot deny unknown fields, so compare with what survives a round trip.
    let known = serde_json::to_value(&config).map_err(|e| Refusal::Syntax(e.to_string()))?;
    if let Some(field) = first_unknown(&raw, &known, String::new()) {
        return Err(Refusal::UnknownField(field));
    }
    Ok(config)
}

/// The path of the first key of `raw` that `known` lacks.
fn first_unknown(raw: &Value, known: &Value, path: String) -> Option<String> {
    match (raw, known) {
        (Value::Object(raw), Value::Object(known)) => raw.iter().find_map(|(key, value)| {
            let here = if path.is_empty() {
                key.clone()
            } else {
                format!("{path}.{key}")
            };
            match known.get(key) {
                Some(inner) => first_unknown(value, inner, here),
                // An explicit null or empty list of an optional field is not serialized back.
                None if value.is_null() || value.as_array().is_some_and(Vec::is_empty) => None,
                None => Some(here),
            }
        }),
        (Value::Array(raw), Value::Array(known)) => raw
            .iter()
            .zip(known)
            .enumerate()
            .find_map(|(i, (raw, known))| first_unknown(raw, known, format!("{path}[{i}]"))),
        _ => None,
    }
}

/// Checks the configuration with the shared validation module and resolves it into a plan.
pub fn resolve(config: &StaticConfig) -> Result<Plan, Refusal> {
    let mut snapshot = Snapshot::default();
    let mut profiles = BTreeMap::new();
    for (i, entry) in config.bfd_profiles.iter().enumerate() {
        let profile = BFDProfile::new(&entry.name, entry.spec.clone());
        validation::validate_bfd_profile(Operation::Create, &profile, &snapshot)
            .map_err(|denial| Refusal::Invalid(format!("bfdProfiles[{i}]: {denial}")))?;
        profiles.insert(entry.name.clone(), bfd_profile(&entry.spec));
        snapshot.bfd_profiles.push(profile);
    }

    let mut peers = BTreeMap::new();
    for (i, entry) in config.peers.iter().enumerate() {
        let peer = BGPPeer::new(&entry.name, entry.spec.clone());
        validation::validate_bgp_peer_v1beta2(Operation::Create, &peer, &snapshot)
            .map_err(|denial| Refusal::Invalid(format!("peers[{i}]: {denial}")))?;
        if peers.contains_key(&entry.name) {
            return Err(Refusal::Invalid(format!(
                "peers[{i}]: bgppeer {:?}: metadata.name: duplicate definition of bgppeer",
                entry.name
            )));
        }
        let plan =
            peer_plan(&entry.name, &entry.spec, config.router_id, &profiles).map_err(|reason| {
                Refusal::Invalid(format!("peers[{i}]: bgppeer {:?}: {reason}", entry.name))
            })?;
        peers.insert(entry.name.clone(), plan);
        snapshot.bgp_peers.push(peer);
    }

    for (i, entry) in config.bgp_advertisements.iter().enumerate() {
        let name = format!("bgpAdvertisements[{i}]");
        let object = BGPAdvertisement::new(&name, entry.spec.clone());
        validation::validate_bgp_advertisement(Operation::Create, &object, &snapshot)
            .map_err(|denial| Refusal::Invalid(format!("{name}: {denial}")))?;
        let route =
            route(&entry.spec).map_err(|reason| Refusal::Invalid(format!("{name}: {reason}")))?;
        let targets: Vec<String> = match entry.spec.peers.as_deref() {
            None | Some([]) => peers.keys().cloned().collect(),
            Some(names) => names.to_vec(),
        };
        for (j, target) in targets.into_iter().enumerate() {
            let Some(peer) = peers.get_mut(&target) else {
                return Err(Refusal::Invalid(format!(
                    "{name}: spec.peers[{j}]: no peer named {target:?}"
                )));
            };
            for prefix in &entry.prefixes {
                merge_route(peer.routes.entry(prefix.trunc()).or_default(), &route);
            }
        }
    }

    let mut l2: BTreeMap<IpAddr, AllowedInterfaces> = BTreeMap::new();
    for (i, entry) in config.l2_advertisements.iter().enumerate() {
        let name = format!("l2Advertisements[{i}]");
        let object = L2Advertisement::new(&name, entry.spec.clone());
        validation::validate_l2_advertisement(Operation::Create, &object, &snapshot)
            .map_err(|denial| Refusal::Invalid(format!("{name}: {denial}")))?;
        let allowed = match entry.spec.interfaces.as_deref() {
            None | Some([]) => AllowedInterfaces::All,
            Some(names) => names.iter().cloned().collect(),
        };
        for address in &entry.addresses {
            let merged = match (l2.remove(address), &allowed) {
                (Some(AllowedInterfaces::Only(mut old)), AllowedInterfaces::Only(new)) => {
                    old.extend(new.iter().cloned());
                    AllowedInterfaces::Only(old)
                }
                _ => allowed.clone(),
            };
            l2.insert(*address, merged);
        }
    }

    let l2_refresh = config
        .l2_refresh
        .as_ref()
        .map(|d| {
            d.parse()
                .map_err(|e| Refusal::Invalid(format!("l2Refresh: {e}")))
        })
        .transpose()?;
    Ok(Plan {
        listen: config.listen,
        interfaces: config.interfaces.clone(),
        excluded_interfaces: Vec::new(),
        l2_refresh,
        peers,
        l2,
    })
}

pub(crate) fn bfd_profile(spec: &BFDProfileSpec) -> metallb_bfd::Profile {
    let defaults = metallb_bfd::Profile::default();
    let millis = |value: Option<u32>, default: Duration| {
        value.map_or(default, |ms| Duration::from_millis(u64::from(ms)))
    };
    metallb_bfd::Profile {
        desired_min_tx: millis(spec.transmit_interval, defaults.desired_min_tx),
        required_min_rx: millis(spec.receive_interval, defaults.required_min_rx),
        detect_multiplier: spec
            .detect_multiplier
            .and_then(|m| u8::try_from(m).ok())
            .and_then(NonZeroU8::new)
            .unwrap_or(defaults.detect_multiplier),
        passive: spec.passive_mode.unwrap_or(defaults.passive),
        minimum_ttl: spec
            .minimum_ttl
            .and_then(|t| u8::try_from(t).ok())
            .unwrap_or(defaults.minimum_ttl),
    }
}

pub(crate) fn peer_plan(
    name: &str,
    spec: &BGPPeerSpec,
    default_router_id: Option<Ipv4Addr>,
    profiles: &BTreeMap<String, metallb_bfd::Profile>,
) -> Result<PeerPlan, String> {
    let address: IpAddr = match spec.peer_address.as_deref() {
        Some(text) => text
            .parse()
            .map_err(|_| format!("spec.peerAddress: invalid peer IP {text:?}"))?,
        None => return Err("spec.interface: unnumbered sessions are not supported by the static configuration; set spec.peerAddress".into()),
    };
    let source: Option<IpAddr> = spec
        .source_address
        .as_deref()
        .map(|text| {
            text.parse()
                .map_err(|_| format!("spec.sourceAddress: invalid IP {text:?}"))
        })
        .transpose()?;
    let router_id =
        match spec.router_id.as_deref() {
            Some(text) => text
                .parse()
                .map_err(|_| format!("spec.routerID: invalid router ID {text:?}"))?,
            None => match (default_router_id, source) {
                (Some(id), _) => id,
                (None, Some(IpAddr::V4(source))) => source,
                _ => return Err(
                    "spec.routerID: needed when neither routerID nor an IPv4 sourceAddress is set"
                        .into(),
                ),
            },
        };
    let local_asn = spec.local_asn.unwrap_or(spec.my_asn);
    let peer_asn = match (spec.peer_asn, spec.dynamic_asn) {
        (Some(asn), _) => PeerAsn::Exact(asn),
        (None, Some(DynamicAsnMode::Internal)) => PeerAsn::Internal,
        (None, Some(DynamicAsnMode::External)) => PeerAsn::External,
        (None, None) => return Err("spec.peerASN: missing peer ASN".into()),
    };
    let duration = |value: Option<&GoDuration>, default: Duration| {
        value.and_then(|d| d.parse().ok()).unwrap_or(default)
    };
    let mut session = metallb_bgp::Config::new(local_asn, peer_asn, router_id);
    session.hold_time = duration(spec.hold_time.as_ref(), DEFAULT_HOLD);
    session.connect_retry_max = duration(spec.connect_time.as_ref(), DEFAULT_CONNECT);
    session.graceful_restart = spec
        .enable_graceful_restart
        .unwrap_or(false)
        .then_some(GRACEFUL_RESTART_TIME);
    let bfd = match spec.bfd_profile.as_deref().filter(|p| !p.is_empty()) {
        Some(profile) => Some(
            *profiles
                .get(profile)
                .ok_or_else(|| format!("spec.bfdProfile: no bfd profile named {profile:?}"))?,
        ),
        None => None,
    };
    Ok(PeerPlan {
        options: PeerOptions {
            name: name.to_owned(),
            address,
            port: spec.peer_port.unwrap_or(BGP_PORT),
            source,
            session,
            password: spec.password.clone().filter(|p| !p.is_empty()),
            ebgp_multihop: spec.ebgp_multi_hop.unwrap_or(false),
        },
        bfd,
        routes: BTreeMap::new(),
    })
}

fn route(spec: &BGPAdvertisementSpec) -> Result<Route, String> {
    let mut route = Route {
        local_pref: spec.local_pref,
        ..Route::default()
    };
    for (i, text) in spec.communities.iter().flatten().enumerate() {
        if !text.contains(':') {
            return Err(format!(
                "spec.communities[{i}]: community alias {text:?} cannot be resolved in a static configuration; write its value"
            ));
        }
        match validation::parse_community(text)
            .map_err(|reason| format!("spec.communities[{i}]: {reason}"))?
        {
            Community::Standard(high, low) => {
                route
                    .communities
                    .insert(metallb_bgp::Community::new(high, low));
            }
            Community::Large(global, one, two) => {
                route.large_communities.insert(LargeCommunity {
                    global_admin: global,
                    local_data_1: one,
                    local_data_2: two,
                });
            }
        }
    }
    Ok(route)
}

/// Two advertisements of one prefix to one peer: the communities add up and the higher
/// LOCAL_PREF wins, as when MetalLB renders both into the router's configuration.
fn merge_route(into: &mut Route, from: &Route) {
    into.local_pref = into.local_pref.max(from.local_pref);
    into.communities.extend(from.communities.iter().copied());
    into.large_communities
        .extend(from.large_communities.iter().copied());
}

/// The prefixes of every peer, for logs and tests.
pub fn prefixes(plan: &Plan) -> BTreeSet<IpNet> {
    plan.peers
        .values()
        .flat_map(|p| p.routes.keys().copied())
        .collect()
}

/// `metallb-speaker check`: validates the file at `path` and says what it resolves to.
pub fn check(path: &Path) -> Result<String, ConfigError> {
    let plan = load(path)?;
    Ok(format!(
        "{}: valid: {} peers, {} prefixes, {} layer-2 addresses",
        path.display(),
        plan.peers.len(),
        prefixes(&plan).len(),
        plan.l2.len()
    ))
}
