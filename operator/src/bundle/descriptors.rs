//! The CSV's `customresourcedefinitions.owned`: one entry per CRD version, described from the
//! CRD's own schema (the doc comments of the `metallb.io` types), so the OperatorHub form and
//! details pages show what `kubectl explain` shows. Each top-level `spec` field becomes a spec
//! descriptor and each `status` field a status descriptor, with a UI widget chosen from its
//! schema type.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, JSONSchemaProps,
};
use serde_json::{Value, json};

use super::BundleError;
use crate::render::names;

const UI: &str = "urn:alm:descriptor:com.tectonic.ui";

/// The owned-CRD entries of every version of `crds`.
pub fn owned(crds: &[CustomResourceDefinition]) -> Result<Vec<Value>, BundleError> {
    let mut owned = Vec::new();
    for crd in crds {
        let kind = crd.spec.names.kind.as_str();
        let display = display_name(kind)
            .ok_or_else(|| BundleError::Csv(format!("no display name for kind {kind}")))?;
        for version in &crd.spec.versions {
            let schema = version
                .schema
                .as_ref()
                .and_then(|s| s.open_api_v3_schema.as_ref());
            let mut entry = json!({
                "name": crd.metadata.name,
                "version": version.name,
                "kind": kind,
                "displayName": display,
                "description": schema.map(summary).unwrap_or_default(),
            });
            let field = |name: &str| schema.and_then(|s| s.properties.as_ref()?.get(name));
            if let Some(spec) = field("spec") {
                entry["specDescriptors"] = descriptors(spec, spec_widgets);
            }
            if let Some(status) = field("status") {
                entry["statusDescriptors"] = descriptors(status, status_widgets);
            }
            if kind == "MetalLB" {
                entry["resources"] = json!([
                    {"kind": "Deployment", "version": "v1", "name": names::CONTROLLER},
                    {"kind": "DaemonSet", "version": "v1", "name": names::SPEAKER},
                ]);
            }
            owned.push(entry);
        }
    }
    Ok(owned)
}

fn display_name(kind: &str) -> Option<&'static str> {
    Some(match kind {
        "AddressPool" => "Address Pool",
        "BFDProfile" => "BFD Profile",
        "BGPAdvertisement" => "BGP Advertisement",
        "BGPPeer" => "BGP Peer",
        "BGPSessionState" => "BGP Session State",
        "Community" => "Community",
        "IPAddressPool" => "IP Address Pool",
        "L2Advertisement" => "L2 Advertisement",
        "MetalLB" => "MetalLB",
        "ServiceBGPStatus" => "Service BGP Status",
        "ServiceL2Status" => "Service L2 Status",
        _ => return None,
    })
}

/// The first paragraph of a schema's description.
fn summary(schema: &JSONSchemaProps) -> String {
    let text = schema.description.as_deref().unwrap_or_default();
    text.split("\n\n")
        .next()
        .unwrap_or_default()
        .trim()
        .to_owned()
}

fn descriptors(
    object: &JSONSchemaProps,
    widgets: fn(&str, &JSONSchemaProps) -> Vec<String>,
) -> Value {
    object
        .properties
        .iter()
        .flatten()
        .map(|(name, schema)| {
            json!({
                "path": name,
                "displayName": words(name),
                "description": summary(schema),
                "x-descriptors": widgets(name, schema),
            })
        })
        .collect()
}

fn spec_widgets(name: &str, schema: &JSONSchemaProps) -> Vec<String> {
    if name.ends_with("odeSelector") {
        return vec![format!("{UI}:selector:core:v1:Node")];
    }
    if let Some(values) = &schema.enum_ {
        return values
            .iter()
            .filter_map(|v| v.0.as_str())
            .map(|v| format!("{UI}:select:{v}"))
            .collect();
    }
    match schema.type_.as_deref() {
        Some("boolean") => vec![format!("{UI}:booleanSwitch")],
        Some("integer" | "number") => vec![format!("{UI}:number")],
        Some("string") => vec![format!("{UI}:text")],
        _ => vec![format!("{UI}:advanced")],
    }
}

fn status_widgets(name: &str, _: &JSONSchemaProps) -> Vec<String> {
    if name == "conditions" {
        vec!["urn:alm:descriptor:io.kubernetes.conditions".to_owned()]
    } else {
        vec!["urn:alm:descriptor:text".to_owned()]
    }
}

/// `ipAddressPools` -> `IP Address Pools`: camelCase split into capitalised words, the
/// protocol acronyms in capitals.
fn words(name: &str) -> String {
    let mut parts: Vec<String> = Vec::new();
    let chars: Vec<char> = name.chars().collect();
    let mut current = String::new();
    for (i, &c) in chars.iter().enumerate() {
        // `IPs`: a plural acronym is one word.
        let plural_s = |j: usize| {
            chars.get(j) == Some(&'s') && chars.get(j + 1).is_none_or(|n| n.is_uppercase())
        };
        let boundary = c.is_uppercase()
            && !current.is_empty()
            && (chars[i - 1].is_lowercase()
                || (chars.get(i + 1).is_some_and(|n| n.is_lowercase()) && !plural_s(i + 1)));
        if boundary {
            parts.push(std::mem::take(&mut current));
        }
        current.push(c);
    }
    parts.push(current);
    parts
        .iter()
        .map(|part| match part.to_lowercase().as_str() {
            "ebgp" => "eBGP".to_owned(),
            "frrk8s" => "FRR-K8s".to_owned(),
            "ips" => "IPs".to_owned(),
            acronym @ ("ip" | "bgp" | "bfd" | "asn" | "ttl" | "vrf" | "id" | "l2" | "tcp") => {
                acronym.to_uppercase()
            }
            _ => {
                let mut c = part.chars();
                c.next()
                    .map(|f| f.to_uppercase().chain(c).collect())
                    .unwrap_or_default()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_names_read_as_words_with_the_acronyms_in_capitals() {
        assert_eq!(words("ipAddressPools"), "IP Address Pools");
        assert_eq!(words("myASN"), "My ASN");
        assert_eq!(words("ebgpMultiHop"), "eBGP Multi Hop");
        assert_eq!(words("avoidBuggyIPs"), "Avoid Buggy IPs");
        assert_eq!(words("bfdProfile"), "BFD Profile");
        assert_eq!(words("logLevel"), "Log Level");
    }

    #[test]
    fn every_crd_version_is_owned_with_a_display_name_and_descriptors() {
        let crds = metallb_api::crds::all().unwrap();
        let owned = owned(&crds).unwrap();
        let versions: usize = crds.iter().map(|c| c.spec.versions.len()).sum();
        assert_eq!(owned.len(), versions);
        let metallb = owned.iter().find(|o| o["kind"] == "MetalLB").unwrap();
        assert!(metallb["specDescriptors"].as_array().unwrap().len() > 3);
        assert!(
            metallb["statusDescriptors"]
                .as_array()
                .unwrap()
                .iter()
                .any(|d| d["path"] == "conditions"
                    && d["x-descriptors"][0] == "urn:alm:descriptor:io.kubernetes.conditions")
        );
        for entry in &owned {
            assert!(
                !entry["description"].as_str().unwrap().is_empty(),
                "{entry}"
            );
        }
    }
}
