//! `kube::Client` construction from the harness kubeconfig.

use std::path::Path;
use std::time::Duration;

use kube::config::{KubeConfigOptions, Kubeconfig};

use crate::error::{Error, Result};

/// Builds a client for the kubeconfig at `path`, with `timeout` for connecting and reading.
pub(crate) async fn from_kubeconfig(path: &Path, timeout: Duration) -> Result<kube::Client> {
    // The workspace standardises on ring; installing it explicitly keeps rustls from
    // panicking if another crate in a test binary also compiles in aws-lc-rs.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let err = |detail: String| Error::Client {
        kubeconfig: path.to_path_buf(),
        detail,
    };
    let kubeconfig = Kubeconfig::read_from(path).map_err(|e| err(e.to_string()))?;
    let mut config =
        kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
            .await
            .map_err(|e| err(e.to_string()))?;
    config.connect_timeout = Some(timeout);
    config.read_timeout = Some(timeout);
    kube::Client::try_from(config).map_err(|e| err(e.to_string()))
}

/// `GET /readyz`: the body is `ok` once every readiness check passes.
pub(crate) async fn readyz(client: &kube::Client) -> Result<String, kube::Error> {
    let request = http::Request::get("/readyz")
        .body(Vec::new())
        .expect("a constant GET request is valid");
    client.request_text(request).await
}
