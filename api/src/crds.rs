//! The CustomResourceDefinitions generated from the types, one per kind, multi-version kinds
//! merged with their stored version.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;
use kube::core::crd::{MergeError, merge_crds};
use kube::core::object::HasSpec;
use serde_json::Value;

use crate::optional_spec::MayBeAbsent;
use crate::{
    addresspool, advertisement, bfdprofile, bgppeer, community, ipaddresspool, metallb, status,
};

/// Why the CRDs could not be generated or written.
#[derive(Debug, thiserror::Error)]
pub enum CrdError {
    /// Versions of one kind disagree on group, kind or scope.
    #[error("merging the versions of {kind}: {source}")]
    Merge {
        /// The kind being merged.
        kind: &'static str,
        /// What disagreed.
        source: MergeError,
    },
    /// The YAML serializer failed.
    #[error("writing {name} as YAML: {message}")]
    Yaml {
        /// The CRD being written.
        name: String,
        /// The serializer's message.
        message: String,
    },
}

/// Every metallb.io CRD, sorted by name.
pub fn all() -> Result<Vec<CustomResourceDefinition>, CrdError> {
    let merged = |kind, crds, stored| {
        merge_crds(crds, stored).map_err(|source| CrdError::Merge { kind, source })
    };
    let mut crds = vec![
        spec_optional::<metallb::MetalLB>(),
        merged(
            "AddressPool",
            vec![
                addresspool::v1alpha1::AddressPool::crd(),
                addresspool::v1beta1::AddressPool::crd(),
            ],
            "v1beta1",
        )?,
        ipaddresspool::IPAddressPool::crd(),
        spec_optional::<advertisement::L2Advertisement>(),
        spec_optional::<advertisement::BGPAdvertisement>(),
        spec_optional::<community::Community>(),
        merged(
            "BGPPeer",
            vec![
                bgppeer::v1beta1::BGPPeer::crd(),
                bgppeer::v1beta2::BGPPeer::crd(),
            ],
            "v1beta2",
        )?,
        spec_optional::<bfdprofile::BFDProfile>(),
        spec_optional::<status::ServiceL2Status>(),
        spec_optional::<status::ServiceBGPStatus>(),
        spec_optional::<status::BGPSessionState>(),
    ];
    crds.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    crds.into_iter().map(tidy).collect()
}

/// The CRD of `K` without `spec` among the required properties, as MetalLB's CRDs have it for
/// kinds whose spec fields are all optional.
fn spec_optional<K>() -> CustomResourceDefinition
where
    K: CustomResourceExt + HasSpec,
    K::Spec: MayBeAbsent,
{
    let mut crd = K::crd();
    let schemas = crd.spec.versions.iter_mut().filter_map(|version| {
        version
            .schema
            .as_mut()
            .and_then(|schema| schema.open_api_v3_schema.as_mut())
    });
    for schema in schemas {
        schema.required = schema
            .required
            .take()
            .map(|required| required.into_iter().filter(|name| name != "spec").collect())
            .filter(|required: &Vec<String>| !required.is_empty());
    }
    crd
}

/// Joins the hard-wrapped lines of doc comments so `kubectl explain` reflows them; blank lines
/// stay paragraph breaks.
fn tidy(crd: CustomResourceDefinition) -> Result<CustomResourceDefinition, CrdError> {
    let name = crd.metadata.name.clone().unwrap_or_default();
    let mut value = serde_json::to_value(crd).map_err(|e| CrdError::Yaml {
        name: name.clone(),
        message: e.to_string(),
    })?;
    walk(&mut value, &mut |_, v| {
        // The API server knows int32/int64 only and warns about Rust's unsigned formats; the
        // ranges carry the bounds.
        if let Value::Object(schema) = v
            && schema
                .get("format")
                .and_then(Value::as_str)
                .is_some_and(|f| f.starts_with("uint"))
        {
            schema.remove("format");
        }
    });
    walk(&mut value, &mut |key, v| {
        if key == "description"
            && let Value::String(text) = v
        {
            *text = text
                .split("\n\n")
                .map(|p| p.split('\n').map(str::trim).collect::<Vec<_>>().join(" "))
                .collect::<Vec<_>>()
                .join("\n\n");
        }
    });
    serde_json::from_value(value).map_err(|e| CrdError::Yaml {
        name,
        message: e.to_string(),
    })
}

/// Calls `f` on every object member of `value`, depth first.
fn walk(value: &mut Value, f: &mut impl FnMut(&str, &mut Value)) {
    match value {
        Value::Object(map) => {
            for (key, member) in map.iter_mut() {
                f(key, member);
                walk(member, f);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|item| walk(item, f)),
        _ => {}
    }
}

/// File name of a CRD under `manifests/crds/`: `metallb.io_<plural>.yaml`.
pub fn file_name(crd: &CustomResourceDefinition) -> String {
    format!("{}_{}.yaml", crd.spec.group, crd.spec.names.plural)
}

/// The CRD as the YAML document committed in the repository.
pub fn to_yaml(crd: &CustomResourceDefinition) -> Result<String, CrdError> {
    let name = crd.metadata.name.clone().unwrap_or_default();
    let mut value = serde_json::to_value(crd).map_err(|e| CrdError::Yaml {
        name: name.clone(),
        message: e.to_string(),
    })?;
    // Schema bounds are f64 in the Rust model; write whole numbers as integers, as kubebuilder does.
    walk(&mut value, &mut |_, v| {
        if let Some(n) = v.as_f64()
            && v.is_f64()
            && n.fract() == 0.0
            && n.abs() < 9.0e15
        {
            *v = Value::from(n as i64);
        }
    });
    let body = serde_saphyr::to_string(&value).map_err(|e| CrdError::Yaml {
        name,
        message: e.to_string(),
    })?;
    Ok(format!(
        "# Generated by `cargo run -p metallb-crdgen`; do not edit.\n---\n{body}"
    ))
}
