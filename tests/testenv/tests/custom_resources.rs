//! The CRD helpers against a tiny CRD of the test's own, independent of `manifests/`.

mod common;

use common::{get_json, install_crds, missing_leaves};
use metallb_testenv::{ControlPlane, test_name};
use serde_json::json;

const WIDGET_CRD: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.testenv.metallb-rs.dev
spec:
  group: testenv.metallb-rs.dev
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              size: {type: integer, minimum: 1, maximum: 10}
              colours: {type: array, items: {type: string}}
              mode: {type: string, default: fast}
"#;

#[test]
fn a_tiny_crd_is_established_listed_and_enforces_its_schema() {
    let cp = ControlPlane::shared();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("widget.yaml");
    std::fs::write(&file, WIDGET_CRD).unwrap();

    let crds = install_crds(cp, &[file]);
    assert_eq!(crds.len(), 1);
    assert_eq!(crds[0].kind, "Widget");
    assert!(crds[0].namespaced);
    assert_eq!(crds[0].versions, ["v1"]);

    let listed = cp
        .kubectl(["api-resources", "--api-group=testenv.metallb-rs.dev"])
        .unwrap();
    assert!(listed.contains("Widget"), "{listed}");

    let ns = cp.namespace(test_name!()).unwrap();
    let widget = |size: u32| {
        json!({
            "apiVersion": "testenv.metallb-rs.dev/v1",
            "kind": "Widget",
            "metadata": {"name": format!("size-{size}"), "namespace": ns.name()},
            "spec": {"size": size, "colours": ["red", "blue"]}
        })
    };
    let good = widget(3);
    cp.kubectl_with_input(["apply", "-f", "-"], &good.to_string())
        .unwrap();
    let stored = get_json(cp, &["-n", ns.name(), "widgets", "size-3"]);
    assert_eq!(
        missing_leaves(&good["spec"], &stored["spec"], "spec"),
        Vec::<String>::new()
    );
    // The server-defaulted field is there but was not in the manifest: it is ignored.
    assert_eq!(stored["spec"]["mode"], "fast");

    let err = cp
        .kubectl_with_input(["apply", "-f", "-"], &widget(11).to_string())
        .unwrap_err();
    assert!(err.to_string().contains("spec.size"), "{err}");
}

#[test]
fn missing_leaves_reports_changed_and_dropped_fields() {
    let expected = json!({"a": 1, "b": {"c": [1, 2]}, "d": "x"});
    let actual = json!({"a": 1, "b": {"c": [1, 3]}, "extra": true});
    assert_eq!(
        missing_leaves(&expected, &actual, "spec"),
        [
            "spec.b.c[1]: expected 2, stored 3",
            "spec.d: expected \"x\", stored null"
        ]
    );
}
