//! Against the real control plane: the API server calls our webhook over TLS, kubectl prints
//! our messages, and BGPPeers convert between versions through `/convert`.

use std::{
    net::{Ipv4Addr, SocketAddr, TcpListener},
    sync::{Arc, OnceLock},
    time::{Duration, Instant},
};

use kube::{Api, Resource, core::NamespaceResourceScope, core::object::HasSpec};
use metallb_api::advertisement::{BGPAdvertisement, L2Advertisement};
use metallb_api::bfdprofile::BFDProfile;
use metallb_api::community::Community;
use metallb_api::metallb::MetalLB;
use metallb_api::status::{BGPSessionState, ServiceBGPStatus, ServiceL2Status};
use metallb_testenv::{ControlPlane, wait_for};
use metallb_webhooks::{
    CertSource, ClusterCache, Endpoint, GeneratedCerts, bgppeer_conversion, router, serve,
    validating_webhook_configuration,
};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

const NS: &str = "metallb-system";

/// The control plane with CRDs installed and our webhook registered, once per test binary.
fn setup() -> &'static ControlPlane {
    static READY: OnceLock<()> = OnceLock::new();
    let cp = ControlPlane::shared();
    READY.get_or_init(|| {
        cp.install_crds().unwrap();
        cp.kubectl_with_input(
            ["apply", "-f", "-"],
            &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}).to_string(),
        )
        .unwrap();

        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let (publish, mut issued) = tokio::sync::watch::channel(None);
        let kubeconfig = cp.kubeconfig_path().to_owned();
        let (ca_tx, ca_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Runtime::new().unwrap();
            runtime.block_on(async move {
                let client = metallb_testenv_client(&kubeconfig).await;
                let (cache, driver) = ClusterCache::new(client, NS);
                tokio::spawn(driver);
                cache.ready().await;
                let certs =
                    GeneratedCerts::new(vec!["127.0.0.1".into()], Duration::from_secs(3600));
                let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
                let server = tokio::spawn(serve(
                    addr,
                    router(Arc::new(cache)),
                    CertSource::Generated { certs, publish },
                    std::future::pending(),
                ));
                let cert = issued
                    .wait_for(Option::is_some)
                    .await
                    .unwrap()
                    .clone()
                    .unwrap();
                ca_tx.send(cert.ca_bundle_pem).unwrap();
                server.await.unwrap().unwrap();
            });
        });
        let ca = ca_rx
            .recv_timeout(Duration::from_secs(60))
            .expect("webhook server started");
        let endpoint = Endpoint::Url(format!("https://127.0.0.1:{port}"));
        let configuration =
            serde_json::to_value(validating_webhook_configuration(&endpoint, Some(&ca))).unwrap();
        let mut configuration = configuration;
        configuration["apiVersion"] = "admissionregistration.k8s.io/v1".into();
        configuration["kind"] = "ValidatingWebhookConfiguration".into();
        cp.kubectl_with_input(["apply", "-f", "-"], &configuration.to_string())
            .unwrap();
        let conversion = json!({"spec": {"conversion": bgppeer_conversion(&endpoint, Some(&ca))}});
        cp.kubectl([
            "patch",
            "crd",
            "bgppeers.metallb.io",
            "--type=merge",
            "-p",
            &conversion.to_string(),
        ])
        .unwrap();

        // The API server picks up webhook configurations asynchronously.
        let probe = pool("probe", &["not-an-address"]);
        let deadline = Instant::now() + Duration::from_secs(30);
        while apply(cp, &probe).is_ok() {
            let _ = cp.kubectl(["delete", "addresspool", "-n", NS, "probe"]);
            assert!(Instant::now() < deadline, "the webhook never took effect");
            std::thread::sleep(Duration::from_millis(200));
        }
    });
    cp
}

async fn metallb_testenv_client(kubeconfig: &std::path::Path) -> kube::Client {
    let config = kube::Config::from_custom_kubeconfig(
        kube::config::Kubeconfig::read_from(kubeconfig).unwrap(),
        &kube::config::KubeConfigOptions::default(),
    )
    .await
    .unwrap();
    kube::Client::try_from(config).unwrap()
}

fn apply(cp: &ControlPlane, object: &Value) -> Result<String, String> {
    cp.kubectl_with_input(["apply", "-f", "-"], &object.to_string())
        .map_err(|e| e.to_string())
}

fn object(version: &str, kind: &str, name: &str, spec: Value) -> Value {
    json!({"apiVersion": format!("metallb.io/{version}"), "kind": kind,
           "metadata": {"name": name, "namespace": NS}, "spec": spec})
}

fn pool(name: &str, addresses: &[&str]) -> Value {
    object(
        "v1beta1",
        "AddressPool",
        name,
        json!({"protocol": "layer2", "addresses": addresses}),
    )
}

/// Applies `object` and expects `webhook` to refuse it with `phrase`. The webhook reads a
/// watched cache (DESIGN.md 5), so a conflict with an object applied just before shows once
/// the watch has delivered that object: server-side dry runs, which change nothing, wait for it.
fn refused(cp: &ControlPlane, object: &Value, webhook: &str, phrase: &str) {
    wait_for(Duration::from_secs(10), Duration::from_millis(100), || {
        cp.kubectl_with_input(
            ["apply", "--dry-run=server", "-f", "-"],
            &object.to_string(),
        )
        .err()
    });
    let err = apply(cp, object).expect_err("the webhook must refuse it");
    let expected = format!("admission webhook \"{webhook}\" denied the request: ");
    assert!(
        err.contains(&expected) && err.contains(phrase),
        "expected {phrase:?} from {webhook}, kubectl said: {err}"
    );
}

#[test]
fn kubectl_shows_our_message_for_an_overlapping_pool_and_accepts_a_disjoint_one() {
    let cp = setup();
    apply(cp, &pool("ov-a", &["10.20.0.128/25"])).unwrap();
    refused(
        cp,
        &pool("ov-b", &["10.20.0.0/24"]),
        "addresspoolvalidationwebhook.metallb.io",
        r#"addresspool "ov-b": spec.addresses[0]: CIDR "10.20.0.0/24" in pool ov-b overlaps with already defined CIDR "10.20.0.128/25" in pool ov-a"#,
    );
    apply(cp, &pool("ov-c", &["10.20.1.0/24"])).unwrap();
    // v1alpha1 requests reach the same webhook, converted by the API server.
    let mut old = pool("ov-d", &["10.20.0.200/32"]);
    old["apiVersion"] = "metallb.io/v1alpha1".into();
    refused(
        cp,
        &old,
        "addresspoolvalidationwebhook.metallb.io",
        "overlaps with already defined CIDR",
    );
}

#[test]
fn each_kind_is_refused_with_its_rule_and_accepted_when_valid() {
    let cp = setup();
    let peer = |name: &str, spec: Value| object("v1beta1", "BGPPeer", name, spec);
    refused(
        cp,
        &peer(
            "k-peer",
            json!({"myASN": 64500, "peerASN": 64501, "peerAddress": "10.30.0.1", "holdTime": "2s", "keepaliveTime": "5s"}),
        ),
        "bgppeervalidationwebhook.metallb.io",
        "spec.keepaliveTime: Invalid keepalive time 5s higher than holdtime 2s; spec.holdTime: Invalid hold time 2s must be 0 or >=3s",
    );
    apply(
        cp,
        &peer(
            "k-peer",
            json!({"myASN": 64500, "peerASN": 64501, "peerAddress": "10.30.0.1", "holdTime": "9s"}),
        ),
    )
    .unwrap();

    let v2 = |name: &str, spec: Value| object("v1beta2", "BGPPeer", name, spec);
    refused(
        cp,
        &v2(
            "k-peer2",
            json!({"myASN": 64500, "peerASN": 64500, "peerAddress": "10.30.0.2", "ebgpMultiHop": true}),
        ),
        "bgppeersvalidationwebhook.metallb.io",
        "invalid ebgp-multihop parameter set for an ibgp peer",
    );
    apply(cp, &v2("k-peer2", json!({"myASN": 64500, "peerASN": 64502, "peerAddress": "10.30.0.2", "bfdProfile": "k-bfd"}))).unwrap();

    let mut elsewhere = object(
        "v1beta1",
        "IPAddressPool",
        "k-ipp",
        json!({"addresses": ["10.40.0.0/24"]}),
    );
    elsewhere["metadata"]["namespace"] = "default".into();
    refused(
        cp,
        &elsewhere,
        "ipaddresspoolvalidationwebhook.metallb.io",
        "resource must be created in metallb-system namespace",
    );
    apply(
        cp,
        &object(
            "v1beta1",
            "IPAddressPool",
            "k-ipp",
            json!({"addresses": ["10.40.0.0/24"]}),
        ),
    )
    .unwrap();

    refused(
        cp,
        &object(
            "v1beta1",
            "BGPAdvertisement",
            "k-adv",
            json!({"communities": ["70000:1"]}),
        ),
        "bgpadvertisementvalidationwebhook.metallb.io",
        "invalid community value: invalid section",
    );
    apply(
        cp,
        &object(
            "v1beta1",
            "BGPAdvertisement",
            "k-adv",
            json!({"communities": ["65000:1"], "ipAddressPools": ["k-ipp"]}),
        ),
    )
    .unwrap();

    refused(
        cp,
        &object(
            "v1beta1",
            "L2Advertisement",
            "k-l2",
            json!({"interfaces": ["eth0", "eth0"]}),
        ),
        "l2advertisementvalidationwebhook.metallb.io",
        "duplicate definition of interface",
    );
    apply(
        cp,
        &object(
            "v1beta1",
            "L2Advertisement",
            "k-l2",
            json!({"interfaces": ["eth0"]}),
        ),
    )
    .unwrap();

    refused(
        cp,
        &object(
            "v1beta1",
            "Community",
            "k-comm",
            json!({"communities": [{"name": "x", "value": "1:1"}, {"name": "x", "value": "1:2"}]}),
        ),
        "communityvalidationwebhook.metallb.io",
        r#"duplicate definition of community "x""#,
    );
    apply(
        cp,
        &object(
            "v1beta1",
            "Community",
            "k-comm",
            json!({"communities": [{"name": "x", "value": "1:1"}]}),
        ),
    )
    .unwrap();

    refused(
        cp,
        &object(
            "v1beta1",
            "MetalLB",
            "metallb",
            json!({"bgpBackend": "frr"}),
        ),
        "metallbvalidationwebhook.metallb.io",
        "the metallb-rs speaker implements BGP and BFD itself",
    );
    apply(
        cp,
        &object(
            "v1beta1",
            "MetalLB",
            "metallb",
            json!({"bgpBackend": "native"}),
        ),
    )
    .unwrap();

    apply(
        cp,
        &object(
            "v1beta1",
            "BFDProfile",
            "k-bfd",
            json!({"detectMultiplier": 3}),
        ),
    )
    .unwrap();
    let err = cp
        .kubectl(["delete", "bfdprofile", "-n", NS, "k-bfd"])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("failed to delete BFDProfile k-bfd, used by BGPPeer k-peer2"),
        "{err}"
    );
    cp.kubectl(["delete", "bgppeers.v1beta2.metallb.io", "-n", NS, "k-peer2"])
        .unwrap();
    // The cache follows the delete within moments.
    let deadline = Instant::now() + Duration::from_secs(10);
    while let Err(e) = cp.kubectl(["delete", "bfdprofile", "-n", NS, "k-bfd"]) {
        assert!(
            Instant::now() < deadline,
            "unused profile still refused: {e}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn get(cp: &ControlPlane, resource: &str, name: &str) -> Value {
    serde_json::from_str(
        &cp.kubectl(["get", resource, "-n", NS, name, "-o", "json"])
            .unwrap(),
    )
    .unwrap()
}

#[test]
fn a_bgppeer_written_in_one_version_reads_back_field_for_field_in_the_other() {
    let cp = setup();
    let old_spec = json!({"myASN": 64500, "peerASN": 64601, "peerAddress": "10.50.0.1", "sourceAddress": "10.50.0.10",
        "peerPort": 1790, "holdTime": "30s", "keepaliveTime": "10s", "password": "pw", "bfdProfile": "fast", "ebgpMultiHop": true,
        "vrf": "red", "nodeSelectors": [{"matchExpressions": [{"key": "rack", "operator": "In", "values": ["r1"]}]}]});
    apply(
        cp,
        &object("v1beta1", "BGPPeer", "conv-old", old_spec.clone()),
    )
    .unwrap();
    let as_v2 = get(cp, "bgppeers.v1beta2.metallb.io", "conv-old");
    assert_eq!(as_v2["apiVersion"], "metallb.io/v1beta2");
    assert_eq!(as_v2["spec"], old_spec);
    assert_eq!(
        get(cp, "bgppeers.v1beta1.metallb.io", "conv-old")["spec"],
        old_spec
    );

    let new_spec = json!({"myASN": 64500, "dynamicASN": "external", "interface": "eth1", "connectTime": "5s",
        "passwordSecret": {"name": "s", "namespace": NS}, "enableGracefulRestart": true, "peerPort": 179,
        "nodeSelectors": [{"matchExpressions": [{"key": "rack", "operator": "Exists"}]}]});
    apply(
        cp,
        &object("v1beta2", "BGPPeer", "conv-new", new_spec.clone()),
    )
    .unwrap();
    let as_v1 = get(cp, "bgppeers.v1beta1.metallb.io", "conv-new");
    assert_eq!(as_v1["apiVersion"], "metallb.io/v1beta1");
    assert_eq!(as_v1["spec"]["myASN"], 64500);
    // Written back through v1beta1, nothing of the v1beta2 spec is lost.
    let mut edited = as_v1.clone();
    edited["spec"]["myASN"] = 64500.into();
    edited["metadata"]["labels"] = json!({"edited": "through-v1beta1"});
    cp.kubectl_with_input(["replace", "-f", "-"], &edited.to_string())
        .unwrap();
    assert_eq!(
        get(cp, "bgppeers.v1beta2.metallb.io", "conv-new")["spec"],
        new_spec
    );
}

/// Reads the object `bare` of kind `K` through the API and checks that its spec is the default.
async fn assert_default_spec<K>(client: &kube::Client)
where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + HasSpec
        + Clone
        + DeserializeOwned
        + std::fmt::Debug,
    K::Spec: Default + PartialEq + std::fmt::Debug,
{
    let object = Api::<K>::namespaced(client.clone(), NS)
        .get("bare")
        .await
        .unwrap_or_else(|e| panic!("reading {} bare: {e}", K::kind(&())));
    assert_eq!(object.spec(), &K::Spec::default(), "{}", K::kind(&()));
}

#[test]
fn objects_without_spec_are_accepted_and_read_back_with_the_default_spec() {
    let cp = setup();
    // MetalLB's samples and quick start create these with metadata only.
    for kind in [
        "L2Advertisement",
        "BGPAdvertisement",
        "Community",
        "BFDProfile",
        "MetalLB",
        "ServiceL2Status",
        "ServiceBGPStatus",
        "BGPSessionState",
    ] {
        let bare = json!({"apiVersion": "metallb.io/v1beta1", "kind": kind,
                          "metadata": {"name": "bare", "namespace": NS}});
        apply(cp, &bare).unwrap_or_else(|e| panic!("{kind} without spec refused: {e}"));
    }
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let client = metallb_testenv_client(cp.kubeconfig_path()).await;
        assert_default_spec::<L2Advertisement>(&client).await;
        assert_default_spec::<BGPAdvertisement>(&client).await;
        assert_default_spec::<Community>(&client).await;
        assert_default_spec::<BFDProfile>(&client).await;
        assert_default_spec::<MetalLB>(&client).await;
        assert_default_spec::<ServiceL2Status>(&client).await;
        assert_default_spec::<ServiceBGPStatus>(&client).await;
        assert_default_spec::<BGPSessionState>(&client).await;
    });
}
