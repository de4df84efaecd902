//! The webhook paths: one per kind and version, named as MetalLB and its operator name them.

/// A kind and version the webhook validates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// 4.10 AddressPool; v1alpha1 requests arrive here too, converted by the API server
    /// (`matchPolicy: Equivalent`).
    AddressPoolV1beta1,
    /// 4.10 BGPPeer.
    BgpPeerV1beta1,
    /// Current BGPPeer.
    BgpPeerV1beta2,
    /// IPAddressPool.
    IpAddressPool,
    /// BGPAdvertisement.
    BgpAdvertisement,
    /// L2Advertisement.
    L2Advertisement,
    /// Community.
    Community,
    /// BFDProfile (also on DELETE).
    BfdProfile,
    /// The MetalLB resource.
    MetalLB,
}

impl Target {
    /// Every target.
    pub const ALL: [Target; 9] = [
        Target::AddressPoolV1beta1,
        Target::BgpPeerV1beta1,
        Target::BgpPeerV1beta2,
        Target::IpAddressPool,
        Target::BgpAdvertisement,
        Target::L2Advertisement,
        Target::Community,
        Target::BfdProfile,
        Target::MetalLB,
    ];

    /// API version and plural resource name.
    pub fn version_and_plural(self) -> (&'static str, &'static str) {
        match self {
            Target::AddressPoolV1beta1 => ("v1beta1", "addresspools"),
            Target::BgpPeerV1beta1 => ("v1beta1", "bgppeers"),
            Target::BgpPeerV1beta2 => ("v1beta2", "bgppeers"),
            Target::IpAddressPool => ("v1beta1", "ipaddresspools"),
            Target::BgpAdvertisement => ("v1beta1", "bgpadvertisements"),
            Target::L2Advertisement => ("v1beta1", "l2advertisements"),
            Target::Community => ("v1beta1", "communities"),
            Target::BfdProfile => ("v1beta1", "bfdprofiles"),
            Target::MetalLB => ("v1beta1", "metallbs"),
        }
    }

    /// The kind the path accepts.
    pub fn kind(self) -> &'static str {
        match self {
            Target::AddressPoolV1beta1 => "AddressPool",
            Target::BgpPeerV1beta1 | Target::BgpPeerV1beta2 => "BGPPeer",
            Target::IpAddressPool => "IPAddressPool",
            Target::BgpAdvertisement => "BGPAdvertisement",
            Target::L2Advertisement => "L2Advertisement",
            Target::Community => "Community",
            Target::BfdProfile => "BFDProfile",
            Target::MetalLB => "MetalLB",
        }
    }

    /// URL path, e.g. `/validate-metallb-io-v1beta1-addresspool`.
    pub fn path(self) -> String {
        let (version, _) = self.version_and_plural();
        format!(
            "/validate-metallb-io-{version}-{}",
            self.kind().to_lowercase()
        )
    }

    /// Name of the webhook in the ValidatingWebhookConfiguration.
    pub fn webhook_name(self) -> String {
        // The current MetalLB webhook for BGPPeer v1beta2 is named in the plural.
        let stem = match self {
            Target::BgpPeerV1beta2 => "bgppeers".to_owned(),
            other => other.kind().to_lowercase(),
        };
        format!("{stem}validationwebhook.metallb.io")
    }

    /// `Exact` for BGPPeer, whose two versions have different rules (an `Equivalent` policy
    /// would send every request to both); `Equivalent` elsewhere, so AddressPool v1alpha1
    /// requests reach the v1beta1 webhook.
    pub fn match_policy(self) -> &'static str {
        match self {
            Target::BgpPeerV1beta1 | Target::BgpPeerV1beta2 => "Exact",
            _ => "Equivalent",
        }
    }

    /// Whether DELETE is reviewed too.
    pub fn reviews_delete(self) -> bool {
        self == Target::BfdProfile
    }
}
