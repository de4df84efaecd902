//! The admin endpoints every binary serves: `/healthz` (the process answers), `/readyz`
//! (whatever the binary says readiness is) and `/metrics` (OpenMetrics text of the binary's
//! registry). Over plain HTTP by default; a [`Listener`] made [`Listener::secure`] serves
//! HTTPS with `/metrics` behind the API server's authentication and authorization
//! ([`crate::secure`]).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::info;

use crate::secure::{self, Authorizer};

/// Content type of the OpenMetrics text format.
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// What `/readyz` answers and why.
#[derive(Clone, Debug)]
pub struct Readiness {
    ready: watch::Receiver<bool>,
    /// The body of a 503, saying what readiness waits for.
    waiting_for: &'static str,
}

impl Readiness {
    /// Ready while `ready` holds true; otherwise a 503 with `waiting_for` as its body.
    pub fn new(ready: watch::Receiver<bool>, waiting_for: &'static str) -> Self {
        Readiness { ready, waiting_for }
    }
}

#[derive(Clone)]
struct Shared {
    registry: Arc<Registry>,
    readiness: Readiness,
}

/// The router, for serving or for in-process tests.
pub fn router(registry: Arc<Registry>, readiness: Readiness) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(Shared {
            registry,
            readiness,
        })
}

async fn readyz(State(shared): State<Shared>) -> impl IntoResponse {
    if *shared.readiness.ready.borrow() {
        (StatusCode::OK, "ok")
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            shared.readiness.waiting_for,
        )
    }
}

async fn metrics(State(shared): State<Shared>) -> impl IntoResponse {
    let mut text = String::new();
    match prometheus_client::encoding::text::encode(&mut text, &shared.registry) {
        Ok(()) => ([(header::CONTENT_TYPE, OPENMETRICS)], text).into_response(),
        Err(error) => (StatusCode::INTERNAL_SERVER_ERROR, error.to_string()).into_response(),
    }
}

/// Binds `host:port`; without a host, every address (IPv6 and IPv4, or IPv4 alone where IPv6
/// is disabled).
pub async fn bind(host: Option<IpAddr>, port: u16) -> std::io::Result<TcpListener> {
    let addr = match host {
        Some(host) => SocketAddr::new(host, port),
        None => {
            let any_v6 = SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), port);
            match TcpListener::bind(any_v6).await {
                Ok(listener) => return Ok(listener),
                Err(_) => SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port),
            }
        }
    };
    TcpListener::bind(addr).await
}

/// The paths only authorized callers reach on a secure listener.
pub const PROTECTED: &[&str] = &["/metrics"];

/// Where the admin endpoints are served: a bound socket, plain or secure.
#[derive(Debug)]
pub struct Listener {
    tcp: TcpListener,
    secure: Option<(PathBuf, Arc<Authorizer>)>,
}

impl Listener {
    /// HTTPS with the certificate in `cert_dir`, [`PROTECTED`] paths checked by `authorizer`.
    pub fn secure(tcp: TcpListener, cert_dir: PathBuf, authorizer: Arc<Authorizer>) -> Self {
        Listener {
            tcp,
            secure: Some((cert_dir, authorizer)),
        }
    }

    /// The bound address.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.tcp.local_addr()
    }
}

impl From<TcpListener> for Listener {
    /// Plain HTTP, every path open.
    fn from(tcp: TcpListener) -> Self {
        Listener { tcp, secure: None }
    }
}

/// Serves `router` on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: impl Into<Listener>,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let Listener { tcp, secure } = listener.into();
    if let Some((cert_dir, authorizer)) = secure {
        let router = secure::protect(router, authorizer, PROTECTED);
        return secure::serve_tls(tcp, router, cert_dir, shutdown).await;
    }
    if let Ok(addr) = tcp.local_addr() {
        info!(%addr, "serving /healthz, /readyz and /metrics");
    }
    axum::serve(tcp, router)
        .with_graceful_shutdown(shutdown)
        .await
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::Request;
    use http_body_util::BodyExt;
    use prometheus_client::metrics::gauge::Gauge;
    use tower::ServiceExt;

    use super::*;

    async fn get(router: &Router, path: &str) -> (StatusCode, String) {
        let request = Request::get(path).body(Body::empty()).unwrap();
        let response = router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test]
    async fn readyz_follows_the_readiness_and_says_what_it_waits_for() {
        let (ready, rx) = watch::channel(false);
        let router = router(
            Arc::new(Registry::default()),
            Readiness::new(rx, "not leading yet"),
        );
        assert_eq!(
            get(&router, "/healthz").await,
            (StatusCode::OK, "ok".into())
        );
        let waiting = get(&router, "/readyz").await;
        assert_eq!(
            waiting,
            (StatusCode::SERVICE_UNAVAILABLE, "not leading yet".into())
        );
        ready.send_replace(true);
        assert_eq!(get(&router, "/readyz").await, (StatusCode::OK, "ok".into()));
    }

    #[tokio::test]
    async fn metrics_are_the_registry_in_openmetrics_text() {
        let mut registry = Registry::default();
        let gauge = Gauge::<i64>::default();
        gauge.set(3);
        registry.register("metallb_probe", "A probe", gauge);
        let (_ready, rx) = watch::channel(true);
        let router = router(Arc::new(registry), Readiness::new(rx, ""));
        let (status, body) = get(&router, "/metrics").await;
        assert_eq!(status, StatusCode::OK);
        assert!(body.contains("metallb_probe 3"), "{body}");
        assert!(body.ends_with("# EOF\n"), "{body}");
    }
}
