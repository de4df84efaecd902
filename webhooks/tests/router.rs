//! The router without sockets: reviews in, verdicts out, bad input refused cleanly.

use std::sync::Arc;

use axum::{
    body::{Body, to_bytes},
    http::{Request, StatusCode},
};
use metallb_api::validation::Snapshot;
use metallb_webhooks::{MAX_BODY_BYTES, StaticSnapshot, Target, router};
use serde_json::{Value, json};
use tower::ServiceExt;

fn existing() -> StaticSnapshot {
    let pool = serde_json::from_value(json!({
        "apiVersion": "metallb.io/v1beta1", "kind": "AddressPool",
        "metadata": {"name": "a", "namespace": "metallb-system"},
        "spec": {"protocol": "layer2", "addresses": ["10.0.0.128/25"]},
    }))
    .unwrap();
    let peer = serde_json::from_value(json!({
        "apiVersion": "metallb.io/v1beta2", "kind": "BGPPeer",
        "metadata": {"name": "uses-fast", "namespace": "metallb-system"},
        "spec": {"myASN": 64500, "peerASN": 64501, "peerAddress": "10.0.0.1", "bfdProfile": "fast"},
    }))
    .unwrap();
    StaticSnapshot(Snapshot {
        namespace: "metallb-system".into(),
        address_pools: vec![pool],
        bgp_peers: vec![peer],
        ..Default::default()
    })
}

fn review(version: &str, kind: &str, operation: &str, object: Value) -> Value {
    let mut request = json!({
        "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
        "kind": {"group": "metallb.io", "version": version, "kind": kind},
        "resource": {"group": "metallb.io", "version": version, "resource": format!("{}s", kind.to_lowercase())},
        "name": object["metadata"]["name"], "namespace": "metallb-system",
        "operation": operation,
        "userInfo": {"username": "admin"},
        "dryRun": false,
    });
    let slot = if operation == "DELETE" {
        "oldObject"
    } else {
        "object"
    };
    request[slot] = object;
    json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request})
}

async fn post(path: &str, body: impl Into<Body>) -> (StatusCode, Vec<u8>) {
    let app = router(Arc::new(existing()));
    let request = Request::post(path)
        .header("content-type", "application/json")
        .body(body.into())
        .unwrap();
    let response = app.oneshot(request).await.unwrap();
    let status = response.status();
    (
        status,
        to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap()
            .to_vec(),
    )
}

async fn verdict(path: &str, body: Value) -> (bool, String) {
    let (status, bytes) = post(path, serde_json::to_vec(&body).unwrap()).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&bytes)
    );
    let reply: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(
        reply["response"]["uid"],
        "705ab4f5-6393-11e8-b7cc-42010a800002"
    );
    let message = reply["response"]["status"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    (reply["response"]["allowed"].as_bool().unwrap(), message)
}

fn pool(name: &str, addresses: &[&str]) -> Value {
    json!({"apiVersion": "metallb.io/v1beta1", "kind": "AddressPool",
           "metadata": {"name": name, "namespace": "metallb-system"},
           "spec": {"protocol": "layer2", "addresses": addresses}})
}

#[tokio::test]
async fn an_overlapping_pool_is_denied_with_a_message_naming_both_pools() {
    let path = Target::AddressPoolV1beta1.path();
    assert_eq!(path, "/validate-metallb-io-v1beta1-addresspool");
    let (allowed, message) = verdict(
        &path,
        review(
            "v1beta1",
            "AddressPool",
            "CREATE",
            pool("b", &["10.0.0.0/24"]),
        ),
    )
    .await;
    assert!(!allowed);
    assert_eq!(
        message,
        r#"addresspool "b": spec.addresses[0]: CIDR "10.0.0.0/24" in pool b overlaps with already defined CIDR "10.0.0.128/25" in pool a (addresspool "a")"#
    );
    let (allowed, _) = verdict(
        &path,
        review(
            "v1beta1",
            "AddressPool",
            "CREATE",
            pool("b", &["10.0.1.0/24"]),
        ),
    )
    .await;
    assert!(allowed);
}

#[tokio::test]
async fn every_target_has_its_own_path() {
    let paths: Vec<String> = Target::ALL.iter().map(|t| t.path()).collect();
    assert!(paths.contains(&"/validate-metallb-io-v1beta2-bgppeer".to_owned()));
    assert!(paths.contains(&"/validate-metallb-io-v1beta1-bfdprofile".to_owned()));
    for path in paths {
        let (status, _) = post(&path, "{}").await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}");
    }
}

#[tokio::test]
async fn a_bfd_profile_in_use_cannot_be_deleted() {
    let profile = json!({"apiVersion": "metallb.io/v1beta1", "kind": "BFDProfile",
                         "metadata": {"name": "fast", "namespace": "metallb-system"}, "spec": {}});
    let path = Target::BfdProfile.path();
    let (allowed, message) = verdict(
        &path,
        review("v1beta1", "BFDProfile", "DELETE", profile.clone()),
    )
    .await;
    assert!(!allowed);
    assert!(
        message.contains("failed to delete BFDProfile fast, used by BGPPeer uses-fast"),
        "{message}"
    );
    let mut unused = profile;
    unused["metadata"]["name"] = "slow".into();
    assert!(
        verdict(&path, review("v1beta1", "BFDProfile", "DELETE", unused))
            .await
            .0
    );
}

#[tokio::test]
async fn a_body_that_is_not_json_gets_400_with_the_reason() {
    let (status, body) = post(&Target::IpAddressPool.path(), "this is not json").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(String::from_utf8_lossy(&body).contains("not an AdmissionReview"));
}

#[tokio::test]
async fn a_wrong_kind_on_a_path_is_denied() {
    let (allowed, message) = verdict(
        &Target::BgpPeerV1beta2.path(),
        review(
            "v1beta1",
            "AddressPool",
            "CREATE",
            pool("x", &["1.1.1.1/32"]),
        ),
    )
    .await;
    assert!(!allowed);
    assert!(
        message
            .contains("validates BGPPeer.metallb.io/v1beta2, not AddressPool.metallb.io/v1beta1"),
        "{message}"
    );
}

#[tokio::test]
async fn an_object_with_missing_fields_is_denied_naming_the_field() {
    let broken = json!({"apiVersion": "metallb.io/v1beta1", "kind": "AddressPool",
                        "metadata": {"name": "broken", "namespace": "metallb-system"}, "spec": {"addresses": []}});
    let (allowed, message) = verdict(
        &Target::AddressPoolV1beta1.path(),
        review("v1beta1", "AddressPool", "CREATE", broken),
    )
    .await;
    assert!(!allowed);
    assert!(
        message.contains(r#"addresspool "broken": cannot be read"#) && message.contains("protocol"),
        "{message}"
    );
}

#[tokio::test]
async fn a_ten_megabyte_body_is_refused_without_reading_it_all() {
    let huge = vec![b' '; 10 * 1024 * 1024];
    assert!(huge.len() > MAX_BODY_BYTES);
    let (status, _) = post(&Target::IpAddressPool.path(), huge).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn bgppeers_convert_between_versions_losslessly() {
    let v1beta2 = json!({"apiVersion": "metallb.io/v1beta2", "kind": "BGPPeer",
        "metadata": {"name": "dyn", "namespace": "metallb-system"},
        "spec": {"myASN": 64500, "dynamicASN": "external", "interface": "eth1", "holdTime": "9s"}});
    let convert = |objects: Vec<Value>, desired: &str| {
        json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "ConversionReview",
               "request": {"uid": "c1", "desiredAPIVersion": desired, "objects": objects}})
    };
    let (status, body) = post(
        "/convert",
        serde_json::to_vec(&convert(vec![v1beta2.clone()], "metallb.io/v1beta1")).unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let reply: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(reply["response"]["result"]["status"], "Success", "{reply}");
    let down = reply["response"]["convertedObjects"][0].clone();
    assert_eq!(down["apiVersion"], "metallb.io/v1beta1");
    assert_eq!(down["spec"]["holdTime"], "9s");

    let (_, body) = post(
        "/convert",
        serde_json::to_vec(&convert(vec![down], "metallb.io/v1beta2")).unwrap(),
    )
    .await;
    let reply: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(reply["response"]["convertedObjects"][0], v1beta2);
}

#[tokio::test]
async fn a_conversion_of_garbage_fails_the_review_with_a_reason() {
    let review = json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "ConversionReview",
        "request": {"uid": "c2", "desiredAPIVersion": "metallb.io/v1beta2",
                    "objects": [{"apiVersion": "metallb.io/v1beta1", "kind": "BGPPeer", "metadata": {"name": "x"}, "spec": {"myASN": "many"}}]}});
    let (status, body) = post("/convert", serde_json::to_vec(&review).unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    let reply: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(reply["response"]["result"]["status"], "Failure");
    assert!(
        reply["response"]["result"]["message"]
            .as_str()
            .unwrap()
            .contains(r#"bgppeer "x" (metallb.io/v1beta1) cannot be read"#)
    );
}

#[tokio::test(start_paused = true)]
async fn a_client_that_never_finishes_its_body_gets_408_after_the_request_timeout() {
    let app = router(Arc::new(existing()));
    let never = futures::stream::pending::<Result<axum::body::Bytes, std::io::Error>>();
    let request = Request::post(Target::IpAddressPool.path())
        .header("content-type", "application/json")
        .body(Body::from_stream(never))
        .unwrap();
    let started = tokio::time::Instant::now();
    let response = app.oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::REQUEST_TIMEOUT);
    assert_eq!(started.elapsed(), metallb_webhooks::REQUEST_TIMEOUT);
}
