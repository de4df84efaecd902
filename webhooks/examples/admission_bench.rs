//! `cargo run --release -p metallb-webhooks --example admission_bench`
//!
//! Admission latency and throughput over HTTPS on loopback, with 1,000 existing pools: each
//! request asks to create one more IPAddressPool, so every review checks it against all of
//! them. Prints a table.

use std::{
    net::{Ipv4Addr, SocketAddr, TcpListener},
    sync::Arc,
    time::{Duration, Instant},
};

use http_body_util::{BodyExt, Full};
use hyper::{Request, body::Bytes};
use hyper_util::rt::TokioIo;
use metallb_api::{
    ipaddresspool::{IPAddressPool, IPAddressPoolSpec},
    validation::Snapshot,
};
use metallb_webhooks::{CertSource, GeneratedCerts, StaticSnapshot, Target, router, serve};
use rustls::pki_types::{CertificateDer, ServerName, pem::PemObject};
use serde_json::json;

const EXISTING_POOLS: usize = 1000;
const SEQUENTIAL_REQUESTS: usize = 5000;
const CONCURRENCY: usize = 4;
const THROUGHPUT_WINDOW: Duration = Duration::from_secs(5);

fn snapshot() -> Snapshot {
    let pools = (0..EXISTING_POOLS)
        .map(|i| {
            let mut pool = IPAddressPool::new(
                &format!("pool-{i}"),
                IPAddressPoolSpec {
                    addresses: vec![
                        format!("10.{}.{}.0/24", i / 256, i % 256),
                        format!("fd00:{i:x}::/120"),
                    ],
                    ..Default::default()
                },
            );
            pool.metadata.namespace = Some("metallb-system".into());
            pool
        })
        .collect();
    Snapshot {
        namespace: "metallb-system".into(),
        ip_address_pools: pools,
        ..Default::default()
    }
}

fn review_body(i: usize) -> Bytes {
    let object = json!({"apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool",
        "metadata": {"name": format!("new-{i}"), "namespace": "metallb-system"},
        "spec": {"addresses": ["192.168.0.0/24", "172.16.0.1-172.16.0.99"]}});
    let review = json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
        "uid": format!("u-{i}"), "kind": {"group": "metallb.io", "version": "v1beta1", "kind": "IPAddressPool"},
        "resource": {"group": "metallb.io", "version": "v1beta1", "resource": "ipaddresspools"},
        "name": format!("new-{i}"), "namespace": "metallb-system", "operation": "CREATE",
        "userInfo": {"username": "bench"}, "object": object}});
    Bytes::from(serde_json::to_vec(&review).unwrap())
}

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

async fn connect(port: u16, ca_pem: &str) -> Sender {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
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
    tcp.set_nodelay(true).unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::IpAddress(Ipv4Addr::LOCALHOST.into()), tcp)
        .await
        .unwrap();
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(connection);
    sender
}

async fn send(sender: &mut Sender, path: &str, body: Bytes) {
    let request = Request::post(path)
        .header("content-type", "application/json")
        .body(Full::new(body))
        .unwrap();
    sender.ready().await.unwrap();
    let response = sender.send_request(request).await.unwrap();
    assert!(
        response.status().is_success(),
        "status {}",
        response.status()
    );
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    assert!(
        bytes.windows(14).any(|w| w == b"\"allowed\":true"),
        "{}",
        String::from_utf8_lossy(&bytes)
    );
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

#[tokio::main]
async fn main() {
    let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (publish, mut issued) = tokio::sync::watch::channel(None);
    let certs = GeneratedCerts::new(vec!["127.0.0.1".into()], Duration::from_secs(3600));
    let app = router(Arc::new(StaticSnapshot(snapshot())));
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    tokio::spawn(serve(
        addr,
        app,
        CertSource::Generated { certs, publish },
        std::future::pending(),
    ));
    let ca = issued
        .wait_for(Option::is_some)
        .await
        .unwrap()
        .clone()
        .unwrap()
        .ca_bundle_pem;
    let path = Target::IpAddressPool.path();

    let cache = StaticSnapshot(snapshot());
    let body = review_body(0);
    let started = Instant::now();
    for _ in 0..1000 {
        metallb_webhooks::review(Target::IpAddressPool, &body, &cache).unwrap();
    }
    let in_process = started.elapsed() / 1000;
    let started = Instant::now();
    for _ in 0..1000 {
        std::hint::black_box(metallb_webhooks::SnapshotSource::snapshot(
            &cache,
            "metallb-system",
        ));
    }
    let snapshot_only = started.elapsed() / 1000;

    let mut sender = connect(port, &ca).await;
    for i in 0..200 {
        send(&mut sender, &path, review_body(i)).await;
    }
    let mut latencies = Vec::with_capacity(SEQUENTIAL_REQUESTS);
    for i in 0..SEQUENTIAL_REQUESTS {
        let body = review_body(i);
        let started = Instant::now();
        send(&mut sender, &path, body).await;
        latencies.push(started.elapsed());
    }
    latencies.sort();

    let deadline = Instant::now() + THROUGHPUT_WINDOW;
    let mut workers = Vec::new();
    for w in 0..CONCURRENCY {
        let (ca, path) = (ca.clone(), path.clone());
        workers.push(tokio::spawn(async move {
            let mut sender = connect(port, &ca).await;
            let mut done = 0usize;
            while Instant::now() < deadline {
                send(&mut sender, &path, review_body(w * 1_000_000 + done)).await;
                done += 1;
            }
            done
        }));
    }
    let mut total = 0;
    for worker in workers {
        total += worker.await.unwrap();
    }

    println!(
        "admission over HTTPS on loopback, {EXISTING_POOLS} existing IPAddressPools (v4 /24 + v6 /120 each)"
    );
    println!("| measure | value |");
    println!("|---|---|");
    println!("| sequential requests | {SEQUENTIAL_REQUESTS} |");
    for (label, p) in [("p50", 0.50), ("p90", 0.90), ("p99", 0.99), ("max", 1.0)] {
        println!(
            "| latency {label} | {:.3} ms |",
            percentile(&latencies, p).as_secs_f64() * 1e3
        );
    }
    println!(
        "| review in process (no TLS, no HTTP) | {:.3} ms |",
        in_process.as_secs_f64() * 1e3
    );
    println!(
        "| of which building the snapshot | {:.3} ms |",
        snapshot_only.as_secs_f64() * 1e3
    );
    println!(
        "| throughput, {CONCURRENCY} connections | {:.0} reviews/s |",
        total as f64 / THROUGHPUT_WINDOW.as_secs_f64()
    );
}
