//! One AdmissionReview in, one verdict out.

use kube::core::{
    DynamicObject,
    admission::{
        AdmissionRequest, AdmissionResponse, AdmissionReview, Operation as AdmissionOperation,
    },
};
use metallb_api::{
    addresspool::v1beta1::AddressPool,
    advertisement::{BGPAdvertisement, L2Advertisement},
    bfdprofile::BFDProfile,
    bgppeer::{v1beta1, v1beta2},
    community::Community,
    conversion,
    ipaddresspool::IPAddressPool,
    metallb::MetalLB,
    validation::{self, Denial, Operation, Snapshot},
};
use serde::de::DeserializeOwned;

use crate::{cache::SnapshotSource, targets::Target};

/// Why a body is not a usable AdmissionReview; answered with 400.
#[derive(Debug, thiserror::Error)]
pub enum BadReview {
    /// The body does not parse as an AdmissionReview.
    #[error("the body is not an AdmissionReview: {0}")]
    NotAReview(serde_json::Error),
    /// The review carries no request.
    #[error("the AdmissionReview has no request")]
    NoRequest,
}

/// Reviews `body` for `target` and returns the response review. This is what the router runs
/// for each path; it is public for fuzzing and tools.
pub fn review(
    target: Target,
    body: &[u8],
    cache: &dyn SnapshotSource,
) -> Result<AdmissionReview<DynamicObject>, BadReview> {
    let review: AdmissionReview<DynamicObject> =
        serde_json::from_slice(body).map_err(BadReview::NotAReview)?;
    let request: AdmissionRequest<DynamicObject> =
        review.try_into().map_err(|_| BadReview::NoRequest)?;
    let response = AdmissionResponse::from(&request);
    let response = match verdict(target, &request, cache) {
        Ok(()) => response,
        Err(message) => {
            tracing::info!(
                kind = target.kind(),
                name = %request.name,
                namespace = request.namespace.as_deref().unwrap_or_default(),
                operation = ?request.operation,
                %message,
                "admission denied"
            );
            response.deny(message)
        }
    };
    Ok(response.into_review())
}

fn verdict(
    target: Target,
    request: &AdmissionRequest<DynamicObject>,
    cache: &dyn SnapshotSource,
) -> Result<(), String> {
    let (version, _) = target.version_and_plural();
    if request.kind.group != metallb_api::GROUP || request.kind.kind != target.kind() {
        return Err(format!(
            "{} validates {}.{}/{}, not {}.{}/{}",
            target.path(),
            target.kind(),
            metallb_api::GROUP,
            version,
            request.kind.kind,
            request.kind.group,
            request.kind.version
        ));
    }
    let operation = match request.operation {
        AdmissionOperation::Create => Operation::Create,
        AdmissionOperation::Update => Operation::Update,
        AdmissionOperation::Delete => Operation::Delete,
        AdmissionOperation::Connect => return Ok(()),
    };
    if operation == Operation::Delete && !target.reviews_delete() {
        return Ok(());
    }
    let object = match operation {
        Operation::Delete => request.old_object.as_ref(),
        _ => request.object.as_ref(),
    }
    .ok_or_else(|| {
        format!(
            "{} {:?}: the request carries no object",
            target.kind().to_lowercase(),
            request.name
        )
    })?;
    let namespace = request
        .namespace
        .clone()
        .or_else(|| object.metadata.namespace.clone())
        .unwrap_or_default();
    let snapshot = cache.snapshot(&namespace);

    let outcome = match target {
        Target::AddressPoolV1beta1 => validation::validate_address_pool(
            operation,
            &typed::<AddressPool>(target, object)?,
            &snapshot,
        ),
        Target::BgpPeerV1beta1 => {
            let peer = typed::<v1beta1::BGPPeer>(target, object)?;
            let stashed = peer.metadata.annotations.as_ref();
            if stashed.is_some_and(|a| a.contains_key(conversion::V1BETA2_SPEC_ANNOTATION)) {
                // A v1beta2 peer edited through its v1beta1 form: judge what will be stored.
                let stored = conversion::to_v1beta2(&peer).map_err(|e| e.to_string())?;
                validation::validate_bgp_peer_v1beta2(operation, &stored, &snapshot)
            } else {
                validation::validate_bgp_peer_v1beta1(operation, &peer, &snapshot)
            }
        }
        Target::BgpPeerV1beta2 => validation::validate_bgp_peer_v1beta2(
            operation,
            &typed::<v1beta2::BGPPeer>(target, object)?,
            &snapshot,
        ),
        Target::IpAddressPool => validation::validate_ip_address_pool(
            operation,
            &typed::<IPAddressPool>(target, object)?,
            &snapshot,
        ),
        Target::BgpAdvertisement => validation::validate_bgp_advertisement(
            operation,
            &typed::<BGPAdvertisement>(target, object)?,
            &snapshot,
        ),
        Target::L2Advertisement => validation::validate_l2_advertisement(
            operation,
            &typed::<L2Advertisement>(target, object)?,
            &snapshot,
        ),
        Target::Community => validation::validate_community(
            operation,
            &typed::<Community>(target, object)?,
            &snapshot,
        ),
        Target::BfdProfile => {
            bfd_profile(operation, &typed::<BFDProfile>(target, object)?, &snapshot)
        }
        Target::MetalLB => validation::validate_metallb(&typed::<MetalLB>(target, object)?),
    };
    outcome.map_err(|denial: Denial| denial.to_string())
}

fn bfd_profile(
    operation: Operation,
    profile: &BFDProfile,
    snapshot: &Snapshot,
) -> Result<(), Denial> {
    match operation {
        Operation::Delete => validation::validate_bfd_profile_delete(profile, snapshot),
        _ => validation::validate_bfd_profile(operation, profile, snapshot),
    }
}

fn typed<T: DeserializeOwned>(target: Target, object: &DynamicObject) -> Result<T, String> {
    let name = object.metadata.name.as_deref().unwrap_or_default();
    let value = serde_json::to_value(object).map_err(|e| e.to_string())?;
    serde_json::from_value(value).map_err(|e| {
        format!(
            "{} {name:?}: cannot be read: {e}",
            target.kind().to_lowercase()
        )
    })
}
