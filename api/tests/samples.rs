//! Every sample under `manifests/samples/` parses into its Rust type and serialises back to the
//! same document, so no field of the samples (and of the reference they follow) is unknown to
//! the types.

use std::{collections::BTreeSet, fs, path::PathBuf};

use metallb_api::{
    addresspool, advertisement, bfdprofile, bgppeer, community, crds, ipaddresspool, metallb,
    status,
};
use serde::{Serialize, de::DeserializeOwned};
use serde_json::{Value, json};

fn samples() -> Vec<(String, Value)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../manifests/samples");
    let mut out: Vec<(String, Value)> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "yaml"))
        .map(|path| {
            let text = fs::read_to_string(&path).unwrap();
            let value: Value =
                serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            (
                path.file_name().unwrap().to_string_lossy().into_owned(),
                value,
            )
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    assert!(!out.is_empty(), "no samples in {}", dir.display());
    out
}

fn round_trip<T: DeserializeOwned + Serialize>(value: &Value) -> Result<Value, String> {
    let typed: T = serde_json::from_value(value.clone()).map_err(|e| e.to_string())?;
    serde_json::to_value(&typed).map_err(|e| e.to_string())
}

fn type_round_trip(value: &Value) -> Result<Value, String> {
    let api_version = value["apiVersion"].as_str().unwrap_or_default();
    let kind = value["kind"].as_str().unwrap_or_default();
    match (api_version, kind) {
        ("metallb.io/v1beta1", "MetalLB") => round_trip::<metallb::MetalLB>(value),
        ("metallb.io/v1alpha1", "AddressPool") => {
            round_trip::<addresspool::v1alpha1::AddressPool>(value)
        }
        ("metallb.io/v1beta1", "AddressPool") => {
            round_trip::<addresspool::v1beta1::AddressPool>(value)
        }
        ("metallb.io/v1beta1", "IPAddressPool") => {
            round_trip::<ipaddresspool::IPAddressPool>(value)
        }
        ("metallb.io/v1beta1", "L2Advertisement") => {
            round_trip::<advertisement::L2Advertisement>(value)
        }
        ("metallb.io/v1beta1", "BGPAdvertisement") => {
            round_trip::<advertisement::BGPAdvertisement>(value)
        }
        ("metallb.io/v1beta1", "Community") => round_trip::<community::Community>(value),
        ("metallb.io/v1beta1", "BGPPeer") => round_trip::<bgppeer::v1beta1::BGPPeer>(value),
        ("metallb.io/v1beta2", "BGPPeer") => round_trip::<bgppeer::v1beta2::BGPPeer>(value),
        ("metallb.io/v1beta1", "BFDProfile") => round_trip::<bfdprofile::BFDProfile>(value),
        ("metallb.io/v1beta1", "ServiceL2Status") => round_trip::<status::ServiceL2Status>(value),
        ("metallb.io/v1beta1", "ServiceBGPStatus") => round_trip::<status::ServiceBGPStatus>(value),
        ("metallb.io/v1beta1", "BGPSessionState") => round_trip::<status::BGPSessionState>(value),
        other => Err(format!("no Rust type for {other:?}")),
    }
}

#[test]
fn every_sample_parses_into_its_type_and_writes_back_unchanged() {
    let mut failures = Vec::new();
    for (file, value) in samples() {
        match type_round_trip(&value) {
            Ok(written) if written == value => {}
            Ok(written) => failures.push(format!(
                "{file}: wrote back\n{written:#}\ninstead of\n{value:#}"
            )),
            Err(e) => failures.push(format!("{file}: {e}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn a_misspelled_field_is_caught_by_the_round_trip() {
    let mut value = samples()
        .into_iter()
        .find(|(f, _)| f == "bfdprofile.yaml")
        .unwrap()
        .1;
    value["spec"]["detectMultipler"] = Value::from(3);
    let written = type_round_trip(&value).unwrap();
    assert_ne!(
        written, value,
        "an unknown field must not survive the round trip"
    );
}

#[test]
fn every_kind_and_version_has_a_sample() {
    let served: BTreeSet<(String, String)> = crds::all()
        .unwrap()
        .iter()
        .flat_map(|crd| {
            crd.spec
                .versions
                .iter()
                .map(|v| {
                    (
                        format!("{}/{}", crd.spec.group, v.name),
                        crd.spec.names.kind.clone(),
                    )
                })
                .collect::<Vec<_>>()
        })
        .collect();
    let sampled: BTreeSet<(String, String)> = samples()
        .iter()
        .map(|(_, v)| {
            (
                v["apiVersion"].as_str().unwrap().to_owned(),
                v["kind"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let missing: Vec<_> = served.difference(&sampled).collect();
    assert!(missing.is_empty(), "kinds without a sample: {missing:?}");
}

#[test]
fn an_object_without_spec_reads_as_the_default_spec_wherever_the_crd_allows_it() {
    let mut failures = Vec::new();
    for crd in crds::all().unwrap() {
        for version in &crd.spec.versions {
            let schema = version.schema.as_ref().unwrap();
            let required = &schema.open_api_v3_schema.as_ref().unwrap().required;
            if required.iter().flatten().any(|name| name == "spec") {
                continue;
            }
            let bare = json!({
                "apiVersion": format!("{}/{}", crd.spec.group, version.name),
                "kind": crd.spec.names.kind,
                "metadata": {"name": "bare"},
            });
            let mut expected = bare.clone();
            expected["spec"] = json!({});
            match type_round_trip(&bare) {
                Ok(written) if written == expected => {}
                other => failures.push(format!(
                    "{} {}: {other:?}",
                    crd.spec.names.kind, version.name
                )),
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
