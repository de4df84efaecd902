//! The CRD conversion webhook: BGPPeer v1beta1 <-> v1beta2, lossless both ways.

use kube::core::{
    Status,
    conversion::{ConversionRequest, ConversionResponse, ConversionReview},
};
use metallb_api::{
    bgppeer::{v1beta1, v1beta2},
    conversion,
};
use serde_json::Value;

/// Converts every object of the review to the desired version; a failure fails the whole
/// review, as the API server expects.
pub(crate) fn convert(body: &[u8]) -> Result<ConversionReview, String> {
    let review: ConversionReview = serde_json::from_slice(body)
        .map_err(|e| format!("the body is not a ConversionReview: {e}"))?;
    let request = ConversionRequest::from_review(review)
        .map_err(|_| "the ConversionReview has no request".to_owned())?;
    let desired = request.desired_api_version.clone();
    let objects = request.objects.clone();
    let response = ConversionResponse::for_request(request);
    let converted: Result<Vec<Value>, String> = objects
        .into_iter()
        .map(|o| convert_one(o, &desired))
        .collect();
    Ok(match converted {
        Ok(objects) => response.success(objects),
        Err(message) => {
            tracing::warn!(%message, "conversion failed");
            response.failure(Status::failure(&message, "ConversionFailed"))
        }
    }
    .into_review())
}

fn convert_one(object: Value, desired: &str) -> Result<Value, String> {
    let from = object["apiVersion"].as_str().unwrap_or_default().to_owned();
    let kind = object["kind"].as_str().unwrap_or_default();
    let name = object["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    if kind != "BGPPeer" {
        return Err(format!(
            "cannot convert {kind} {name:?}: only BGPPeer has several versions"
        ));
    }
    let read_error =
        |e: serde_json::Error| format!("bgppeer {name:?} ({from}) cannot be read: {e}");
    let v2: v1beta2::BGPPeer = match from.as_str() {
        "metallb.io/v1beta2" => serde_json::from_value(object).map_err(read_error)?,
        "metallb.io/v1beta1" => {
            let v1: v1beta1::BGPPeer = serde_json::from_value(object).map_err(read_error)?;
            conversion::to_v1beta2(&v1).map_err(|e| e.to_string())?
        }
        other => return Err(format!("bgppeer {name:?}: unknown version {other}")),
    };
    let out = match desired {
        "metallb.io/v1beta2" => serde_json::to_value(v2),
        "metallb.io/v1beta1" => serde_json::to_value(conversion::to_v1beta1(&v2)),
        other => {
            return Err(format!(
                "bgppeer {name:?}: cannot convert to unknown version {other}"
            ));
        }
    };
    out.map_err(|e| e.to_string())
}
