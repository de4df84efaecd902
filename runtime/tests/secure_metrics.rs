//! The admin endpoints over HTTPS against the real API server: `/metrics` refuses a caller
//! without a token (401), refuses a ServiceAccount token the RBAC does not allow (403), and
//! serves the metrics once a ClusterRole granting `get` on `/metrics` is bound; the probes'
//! paths stay open. Requests are made with curl, trusting only the test's certificate.

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use metallb_runtime::admin::{self, Listener, Readiness};
use metallb_runtime::secure::Authorizer;
use metallb_runtime::shutdown::Shutdown;
use metallb_testenv::{ControlPlane, test_name, wait_for};
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::sync::watch;

/// Deletes the cluster-scoped RBAC objects of the test when it ends, passed or not.
struct Rbac<'a>(&'a ControlPlane, String);

impl Drop for Rbac<'_> {
    fn drop(&mut self) {
        let _ = self.0.kubectl([
            "delete",
            "clusterrolebinding",
            &self.1,
            "--ignore-not-found",
        ]);
        let _ = self
            .0
            .kubectl(["delete", "clusterrole", &self.1, "--ignore-not-found"]);
    }
}

/// `(status, body)` of `GET https://localhost:<port><path>`, with `token` as bearer.
fn get(ca: &std::path::Path, port: u16, path: &str, token: Option<&str>) -> (u16, String) {
    let mut curl = Command::new("curl");
    curl.args([
        "-sS",
        "--max-time",
        "10",
        "-w",
        "\n%{http_code}",
        "--cacert",
    ])
    .arg(ca)
    .arg(format!("https://localhost:{port}{path}"));
    if let Some(token) = token {
        curl.args(["-H", &format!("Authorization: Bearer {token}")]);
    }
    let output = curl.output().unwrap();
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let (body, status) = text.rsplit_once('\n').unwrap_or(("", &text));
    let status = status
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("curl: {text}{}", String::from_utf8_lossy(&output.stderr)));
    (status, body.to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_refuse_no_token_and_a_token_without_rbac_and_serve_an_authorized_one() {
    let cp = ControlPlane::shared();
    let ns = tokio::task::block_in_place(|| cp.namespace(test_name!())).unwrap();
    let ns = ns.name().to_owned();
    let client = cp.client().await.unwrap();

    // A self-signed serving certificate for localhost, as the service CA's Secret lays it out.
    let dir = tempfile::tempdir().unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    std::fs::write(dir.path().join("tls.crt"), cert.pem()).unwrap();
    std::fs::write(dir.path().join("tls.key"), key.serialize_pem()).unwrap();

    let mut registry = Registry::default();
    let gauge = Gauge::<i64>::default();
    gauge.set(7);
    registry.register("metallb_secure_probe", "A probe", gauge);
    let (_ready, ready_rx) = watch::channel(true);
    let router = admin::router(Arc::new(registry), Readiness::new(ready_rx, ""));
    let tcp = admin::bind(Some("127.0.0.1".parse().unwrap()), 0)
        .await
        .unwrap();
    let port = tcp.local_addr().unwrap().port();
    let listener = Listener::secure(
        tcp,
        dir.path().to_owned(),
        Arc::new(Authorizer::new(client)),
    );
    let stop = Shutdown::manual();
    let server = tokio::spawn(admin::serve(listener, router, stop.wait()));

    let ca = dir.path().join("tls.crt");
    let (probe, no_token, unknown) = tokio::task::block_in_place(|| {
        (
            get(&ca, port, "/readyz", None),
            get(&ca, port, "/metrics", None),
            get(&ca, port, "/metrics", Some("not-a-token")),
        )
    });
    assert_eq!(probe, (200, "ok".to_owned()), "probes need no token");
    assert_eq!(no_token.0, 401, "{no_token:?}");
    assert_eq!(unknown.0, 401, "{unknown:?}");

    // A ServiceAccount's token: authenticated, but nothing grants it /metrics yet.
    let scraper = "scraper";
    let token = tokio::task::block_in_place(|| {
        cp.kubectl(["-n", &ns, "create", "serviceaccount", scraper])
            .unwrap();
        cp.kubectl(["-n", &ns, "create", "token", scraper]).unwrap()
    });
    let token = token.trim().to_owned();
    let denied = tokio::task::block_in_place(|| get(&ca, port, "/metrics", Some(&token)));
    assert_eq!(denied.0, 403, "{denied:?}");
    assert!(
        denied
            .1
            .contains(&format!("system:serviceaccount:{ns}:{scraper}")),
        "{denied:?}"
    );

    // Granted: the ClusterRole monitoring stacks bind (`get` on the non-resource URL).
    let role = format!("{ns}-metrics-reader");
    let _rbac = Rbac(cp, role.clone());
    tokio::task::block_in_place(|| {
        cp.kubectl([
            "create",
            "clusterrole",
            &role,
            "--verb=get",
            "--non-resource-url=/metrics",
        ])
        .unwrap();
        cp.kubectl([
            "create",
            "clusterrolebinding",
            &role,
            &format!("--clusterrole={role}"),
            &format!("--serviceaccount={ns}:{scraper}"),
        ])
        .unwrap();
    });
    // A denial is remembered for a few seconds; the grant shows once it expires.
    let served = tokio::task::block_in_place(|| {
        wait_for(Duration::from_secs(30), Duration::from_millis(500), || {
            let answer = get(&ca, port, "/metrics", Some(&token));
            (answer.0 == 200).then_some(answer)
        })
    });
    let (_, body) = served.expect("the authorized scraper gets the metrics");
    assert!(body.contains("metallb_secure_probe 7"), "{body}");

    stop.trigger();
    server.await.unwrap().unwrap();
}
