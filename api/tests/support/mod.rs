//! Reading the generated CRDs in tests: one CRD by name, one version's schema, one property.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, JSONSchemaProps, JSONSchemaPropsOrArray,
};
use metallb_api::crds;

/// The generated CRD named `name`, e.g. `bgppeers.metallb.io`.
pub fn crd(name: &str) -> CustomResourceDefinition {
    crds::all()
        .unwrap()
        .into_iter()
        .find(|c| c.metadata.name.as_deref() == Some(name))
        .unwrap_or_else(|| panic!("no CRD {name}"))
}

/// The property at `path` (`spec.a[].b`: `[]` steps into the items of an array).
pub fn property<'a>(schema: &'a JSONSchemaProps, path: &str) -> &'a JSONSchemaProps {
    path.split('.').fold(schema, |s, key| {
        let name = key.trim_end_matches("[]");
        let next = s
            .properties
            .as_ref()
            .and_then(|p| p.get(name))
            .unwrap_or_else(|| panic!("no property {name} in {path}"));
        if key.ends_with("[]") {
            match &next.items {
                Some(JSONSchemaPropsOrArray::Schema(item)) => item,
                _ => panic!("{name} in {path} is not an array"),
            }
        } else {
            next
        }
    })
}

/// The schema of one version of a CRD.
pub fn schema_of<'a>(crd: &'a CustomResourceDefinition, version: &str) -> &'a JSONSchemaProps {
    let version = crd
        .spec
        .versions
        .iter()
        .find(|v| v.name == version)
        .expect("version");
    version
        .schema
        .as_ref()
        .unwrap()
        .open_api_v3_schema
        .as_ref()
        .unwrap()
}
