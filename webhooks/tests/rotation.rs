//! Rotating the mounted certificate files while the API server keeps calling the webhook loses
//! no request.

use std::{
    net::{Ipv4Addr, SocketAddr, TcpListener},
    path::Path,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use kube::api::{Api, PostParams};
use metallb_api::ipaddresspool::{IPAddressPool, IPAddressPoolSpec};
use metallb_testenv::ControlPlane;
use metallb_webhooks::{
    CertSource, Endpoint, StaticSnapshot, router, serve, validating_webhook_configuration,
};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair, SanType};

struct Ca(CertifiedIssuer<'static, KeyPair>);

impl Ca {
    fn new() -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        Ca(CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap())
    }

    /// Writes a fresh leaf for 127.0.0.1 the way kubelet updates a mounted Secret: new files,
    /// then an atomic rename.
    fn write_leaf(&self, dir: &Path) -> String {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.subject_alt_names = vec![SanType::IpAddress(Ipv4Addr::LOCALHOST.into())];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.0).unwrap().pem();
        for (name, body) in [("tls.key", key.serialize_pem()), ("tls.crt", cert.clone())] {
            let staged = dir.join(format!(".{name}.new"));
            std::fs::write(&staged, body).unwrap();
            std::fs::rename(&staged, dir.join(name)).unwrap();
        }
        cert
    }
}

#[test]
fn rotating_the_certificate_files_under_load_loses_no_request() {
    let cp = ControlPlane::shared();
    cp.install_crds().unwrap();
    let ns = cp.namespace("rotation").unwrap();

    let ca = Ca::new();
    let dir = tempfile::tempdir().unwrap();
    let mut served = ca.write_leaf(dir.path());
    let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let cache = StaticSnapshot(metallb_api::validation::Snapshot {
        namespace: ns.name().to_owned(),
        ..Default::default()
    });
    let source = CertSource::Directory(dir.path().to_owned());
    runtime.spawn(serve(
        SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
        router(Arc::new(cache)),
        source,
        std::future::pending(),
    ));

    let endpoint = Endpoint::Url(format!("https://127.0.0.1:{port}"));
    let mut configuration = serde_json::to_value(validating_webhook_configuration(
        &endpoint,
        Some(&ca.0.pem()),
    ))
    .unwrap();
    configuration["apiVersion"] = "admissionregistration.k8s.io/v1".into();
    configuration["kind"] = "ValidatingWebhookConfiguration".into();
    configuration["metadata"]["name"] = "rotation-test".into();
    cp.kubectl_with_input(["apply", "-f", "-"], &configuration.to_string())
        .unwrap();

    let client = runtime.block_on(cp.client()).unwrap();
    let pools: Api<IPAddressPool> = Api::namespaced(client, ns.name());
    let dry_run = PostParams {
        dry_run: true,
        ..Default::default()
    };
    let create = |name: String, address: &str| {
        let pool = IPAddressPool::new(
            &name,
            IPAddressPoolSpec {
                addresses: vec![address.into()],
                ..Default::default()
            },
        );
        runtime.block_on(pools.create(&dry_run, &pool))
    };
    // Wait until the API server calls us: an invalid pool is refused by the webhook only.
    let deadline = Instant::now() + Duration::from_secs(30);
    while create("probe".into(), "not-an-address").is_ok() {
        assert!(Instant::now() < deadline, "the webhook never took effect");
        std::thread::sleep(Duration::from_millis(200));
    }

    let stop = Arc::new(AtomicBool::new(false));
    let (sent, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let failures = std::thread::scope(|scope| {
        let load = scope.spawn(|| {
            let mut errors = Vec::new();
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                sent.fetch_add(1, Ordering::Relaxed);
                if let Err(e) = create(format!("load-{i}"), "10.9.0.0/24") {
                    failed.fetch_add(1, Ordering::Relaxed);
                    errors.push(e.to_string());
                }
            }
            errors
        });
        for _ in 0..3 {
            std::thread::sleep(Duration::from_millis(1500));
            let next = ca.write_leaf(dir.path());
            assert_ne!(next, served);
            served = next;
        }
        std::thread::sleep(Duration::from_millis(1500));
        stop.store(true, Ordering::Relaxed);
        load.join().unwrap()
    });
    let sent = sent.load(Ordering::Relaxed);
    println!(
        "{sent} admission requests across 3 rotations, {} failed",
        failed.load(Ordering::Relaxed)
    );
    assert!(sent > 20, "too few requests to prove anything: {sent}");
    assert!(
        failures.is_empty(),
        "{} of {sent} requests failed: {failures:?}",
        failures.len()
    );
    let presented = runtime.block_on(presented_certificate(port, &ca.0.pem()));
    assert_eq!(
        presented,
        pem_to_der(&served),
        "the last rotated certificate is the one served"
    );
    cp.kubectl(["delete", "validatingwebhookconfiguration", "rotation-test"])
        .unwrap();
}

fn pem_to_der(pem: &str) -> Vec<u8> {
    use rustls::pki_types::{CertificateDer, pem::PemObject};
    CertificateDer::from_pem_slice(pem.as_bytes())
        .unwrap()
        .to_vec()
}

/// The leaf certificate the server presents now.
async fn presented_certificate(port: u16, ca_pem: &str) -> Vec<u8> {
    use rustls::pki_types::{CertificateDer, ServerName, pem::PemObject};
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca_pem.as_bytes()).unwrap())
        .unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect((Ipv4Addr::LOCALHOST, port))
        .await
        .unwrap();
    let name = ServerName::IpAddress(Ipv4Addr::LOCALHOST.into());
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .unwrap();
    tls.get_ref().1.peer_certificates().unwrap()[0].to_vec()
}
