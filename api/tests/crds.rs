//! The committed CRDs are exactly what the types generate, and carry what administrators and
//! the API server rely on: descriptions, ranges, versions, printer columns.

use std::{collections::BTreeSet, fs, path::PathBuf};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    JSONSchemaProps, JSONSchemaPropsOrArray,
};
use metallb_api::crds;
use support::{crd, property, schema_of};

mod support;

fn crds_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../manifests/crds")
}

#[test]
fn committed_crds_are_what_the_types_generate() {
    let mut expected = BTreeSet::new();
    let mut stale = Vec::new();
    for crd in crds::all().unwrap() {
        let name = crds::file_name(&crd);
        let committed = fs::read_to_string(crds_dir().join(&name)).unwrap_or_default();
        if committed != crds::to_yaml(&crd).unwrap() {
            stale.push(name.clone());
        }
        expected.insert(name);
    }
    for entry in fs::read_dir(crds_dir()).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        if !expected.contains(&name) {
            stale.push(format!("{name} (not generated)"));
        }
    }
    assert!(
        stale.is_empty(),
        "manifests/crds is stale: {stale:?}; run `cargo run -p metallb-crdgen`"
    );
}

fn undocumented(schema: &JSONSchemaProps, path: &str, out: &mut Vec<String>) {
    for (name, prop) in schema.properties.iter().flatten() {
        let here = format!("{path}.{name}");
        if prop
            .description
            .as_deref()
            .is_none_or(|d| d.trim().is_empty())
        {
            out.push(here.clone());
        }
        undocumented(prop, &here, out);
    }
    if let Some(JSONSchemaPropsOrArray::Schema(item)) = &schema.items {
        undocumented(item, &format!("{path}[]"), out);
    }
}

#[test]
fn every_schema_property_has_a_description() {
    let mut missing = Vec::new();
    for crd in crds::all().unwrap() {
        for version in &crd.spec.versions {
            let schema = version
                .schema
                .as_ref()
                .unwrap()
                .open_api_v3_schema
                .as_ref()
                .unwrap();
            let root = format!("{}/{}", crd.metadata.name.as_deref().unwrap(), version.name);
            undocumented(schema, &root, &mut missing);
        }
    }
    assert!(
        missing.is_empty(),
        "properties without a description: {missing:#?}"
    );
}

#[test]
fn the_description_check_notices_a_missing_description() {
    let mut crd = crd("bfdprofiles.metallb.io");
    let version = &mut crd.spec.versions[0];
    let schema = version
        .schema
        .as_mut()
        .unwrap()
        .open_api_v3_schema
        .as_mut()
        .unwrap();
    let spec = schema.properties.as_mut().unwrap().get_mut("spec").unwrap();
    spec.properties
        .as_mut()
        .unwrap()
        .get_mut("echoMode")
        .unwrap()
        .description = None;
    let mut missing = Vec::new();
    undocumented(schema, "bfd", &mut missing);
    assert_eq!(missing, vec!["bfd.spec.echoMode".to_owned()]);
}

#[test]
fn every_kind_of_the_design_exists_with_its_versions_and_one_stored_version() {
    let expected = [
        ("metallbs.metallb.io", vec!["v1beta1"], "v1beta1"),
        (
            "addresspools.metallb.io",
            vec!["v1alpha1", "v1beta1"],
            "v1beta1",
        ),
        ("ipaddresspools.metallb.io", vec!["v1beta1"], "v1beta1"),
        ("l2advertisements.metallb.io", vec!["v1beta1"], "v1beta1"),
        ("bgpadvertisements.metallb.io", vec!["v1beta1"], "v1beta1"),
        ("communities.metallb.io", vec!["v1beta1"], "v1beta1"),
        ("bgppeers.metallb.io", vec!["v1beta1", "v1beta2"], "v1beta2"),
        ("bfdprofiles.metallb.io", vec!["v1beta1"], "v1beta1"),
        ("servicel2statuses.metallb.io", vec!["v1beta1"], "v1beta1"),
        ("servicebgpstatuses.metallb.io", vec!["v1beta1"], "v1beta1"),
        ("bgpsessionstates.metallb.io", vec!["v1beta1"], "v1beta1"),
    ];
    assert_eq!(crds::all().unwrap().len(), expected.len());
    for (name, versions, stored) in expected {
        let crd = crd(name);
        let mut served: Vec<_> = crd.spec.versions.iter().map(|v| v.name.as_str()).collect();
        served.sort();
        assert_eq!(served, versions, "{name}");
        let storage: Vec<_> = crd
            .spec
            .versions
            .iter()
            .filter(|v| v.storage)
            .map(|v| v.name.as_str())
            .collect();
        assert_eq!(storage, vec![stored], "{name}");
        assert!(crd.spec.versions.iter().all(|v| v.served), "{name}");
        assert_eq!(crd.spec.scope, "Namespaced", "{name}");
        let has_status = crd
            .spec
            .versions
            .iter()
            .all(|v| v.subresources.as_ref().is_some_and(|s| s.status.is_some()));
        assert!(has_status, "{name} has no status subresource");
    }
}

#[test]
fn spec_may_be_left_out_exactly_when_none_of_its_fields_is_required() {
    let mut optional = BTreeSet::new();
    for crd in crds::all().unwrap() {
        let name = crd.metadata.name.clone().unwrap();
        for version in &crd.spec.versions {
            let schema = schema_of(&crd, &version.name);
            let spec_required = schema.required.iter().flatten().any(|r| r == "spec");
            let spec_fields_required = property(schema, "spec")
                .required
                .as_ref()
                .is_some_and(|r| !r.is_empty());
            // As in MetalLB, whose samples leave out an empty spec. Its CRD does not require
            // BGPPeer's either, but its webhook refuses a BGPPeer without one (`missing local ASN`).
            assert_eq!(
                spec_required, spec_fields_required,
                "{name}/{}",
                version.name
            );
            if !spec_required {
                optional.insert(name.clone());
            }
        }
    }
    let expected = [
        "bfdprofiles.metallb.io",
        "bgpadvertisements.metallb.io",
        "bgpsessionstates.metallb.io",
        "communities.metallb.io",
        "l2advertisements.metallb.io",
        "metallbs.metallb.io",
        "servicebgpstatuses.metallb.io",
        "servicel2statuses.metallb.io",
    ];
    assert_eq!(optional, expected.map(str::to_owned).into());
}

#[test]
fn metallb_prints_available_progressing_degraded_and_age() {
    let crd = crd("metallbs.metallb.io");
    let columns: Vec<_> = crd.spec.versions[0]
        .additional_printer_columns
        .iter()
        .flatten()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(columns, ["Available", "Progressing", "Degraded", "Age"]);
}

fn bounds(schema: &JSONSchemaProps) -> (Option<f64>, Option<f64>) {
    (schema.minimum, schema.maximum)
}

#[test]
fn schemas_carry_the_reference_ranges_and_patterns() {
    let bfd = crd("bfdprofiles.metallb.io");
    let bfd = schema_of(&bfd, "v1beta1");
    for field in ["receiveInterval", "transmitInterval", "echoInterval"] {
        assert_eq!(
            bounds(property(bfd, &format!("spec.{field}"))),
            (Some(10.0), Some(60000.0)),
            "{field}"
        );
    }
    assert_eq!(
        bounds(property(bfd, "spec.detectMultiplier")),
        (Some(2.0), Some(255.0))
    );
    assert_eq!(
        bounds(property(bfd, "spec.minimumTtl")),
        (Some(1.0), Some(254.0))
    );

    let peers = crd("bgppeers.metallb.io");
    for version in ["v1beta1", "v1beta2"] {
        let schema = schema_of(&peers, version);
        for field in ["myASN", "peerASN"] {
            assert_eq!(
                bounds(property(schema, &format!("spec.{field}"))),
                (Some(0.0), Some(4294967295.0))
            );
        }
        let port_max = property(schema, "spec.peerPort").maximum;
        assert_eq!(port_max, Some(16384.0), "{version}");
        assert!(
            property(schema, "spec.holdTime").pattern.is_some(),
            "{version} holdTime"
        );
    }
    let v1beta1 = schema_of(&peers, "v1beta1");
    let values = property(v1beta1, "spec.nodeSelectors[].matchExpressions[].values");
    assert_eq!(values.min_items, Some(1));
    let required = v1beta1.properties.as_ref().unwrap()["spec"]
        .required
        .clone()
        .unwrap();
    assert_eq!(required, ["myASN", "peerASN", "peerAddress"]);

    let metallb = crd("metallbs.metallb.io");
    let schema = schema_of(&metallb, "v1beta1");
    let levels: Vec<_> = property(schema, "spec.logLevel")
        .enum_
        .iter()
        .flatten()
        .map(|v| v.0.clone())
        .collect();
    assert_eq!(
        levels,
        ["all", "debug", "info", "warn", "error", "none"].map(serde_json::Value::from)
    );
    assert_eq!(
        property(schema, "spec.loadBalancerClass")
            .pattern
            .as_deref(),
        Some(metallb_api::metallb::LOAD_BALANCER_CLASS_PATTERN)
    );
    assert_eq!(
        property(schema, "status.conditions[].reason")
            .pattern
            .as_deref(),
        Some(metallb_api::condition::REASON_PATTERN)
    );

    let pools = crd("addresspools.metallb.io");
    for version in ["v1alpha1", "v1beta1"] {
        let schema = schema_of(&pools, version);
        let protocols: Vec<_> = property(schema, "spec.protocol")
            .enum_
            .iter()
            .flatten()
            .map(|v| v.0.clone())
            .collect();
        assert_eq!(protocols, ["layer2", "bgp"].map(serde_json::Value::from));
        let adv = property(schema, "spec.bgpAdvertisements[].aggregationLength");
        assert_eq!(
            (adv.minimum, adv.default.as_ref().map(|d| d.0.clone())),
            (Some(1.0), Some(32.into()))
        );
        let auto = property(schema, "spec.autoAssign")
            .default
            .as_ref()
            .map(|d| d.0.clone());
        assert_eq!(auto, Some(true.into()));
    }
}
