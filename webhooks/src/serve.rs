//! HTTPS serving with rustls (ring), with certificates swapped in place on change.

use std::{net::SocketAddr, path::PathBuf, sync::Arc, time::Duration};

use axum::Router;
use axum_server::{Handle, tls_rustls::RustlsConfig};
use rustls::{
    ServerConfig,
    pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject},
};
use time::OffsetDateTime;
use tokio::sync::watch;

use crate::certs::{CertError, GeneratedCerts, ServingCert};

/// How often certificates are checked for changes: reading two small files a second is cheap,
/// and a rotated certificate is served within a second.
const RELOAD_INTERVAL: Duration = Duration::from_secs(1);

/// Where serving certificates come from.
#[derive(Debug)]
pub enum CertSource {
    /// `tls.crt` and `tls.key` in a directory (OLM, cert-manager), reloaded when they change.
    Directory(PathBuf),
    /// Generated and rotated in the process; every new certificate is published on `publish`
    /// so its CA bundle can be written into the webhook configurations.
    Generated {
        /// The generator.
        certs: GeneratedCerts,
        /// Receives each certificate as it is issued.
        publish: watch::Sender<Option<ServingCert>>,
    },
}

/// Checks for a newer certificate than the one served; `None` when it is still current.
type Refresh = Box<dyn FnMut(&ServingCert) -> Result<Option<ServingCert>, CertError> + Send>;

/// Why the server stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// Certificates could not be produced.
    #[error(transparent)]
    Cert(#[from] CertError),
    /// The listener failed.
    #[error("serving webhooks on {addr}: {source}")]
    Io {
        /// The address.
        addr: SocketAddr,
        /// The I/O error.
        source: std::io::Error,
    },
}

fn server_config(cert: &ServingCert) -> Result<Arc<ServerConfig>, CertError> {
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(cert.cert_pem.as_bytes())
            .collect::<Result<_, _>>()
            .map_err(|e| CertError::Invalid(format!("certificate PEM: {e}")))?;
    if chain.is_empty() {
        return Err(CertError::Invalid("no certificate in the PEM data".into()));
    }
    let key = PrivateKeyDer::from_pem_slice(cert.key_pem.as_bytes())
        .map_err(|e| CertError::Invalid(format!("key PEM: {e}")))?;
    let mut config =
        ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| CertError::Invalid(e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(|e| CertError::Invalid(format!("certificate and key do not match: {e}")))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

fn read_dir_cert(dir: &std::path::Path) -> Result<ServingCert, CertError> {
    let read = |name: &str| {
        let path = dir.join(name);
        std::fs::read_to_string(&path).map_err(|source| CertError::Read {
            path: path.display().to_string(),
            source,
        })
    };
    Ok(ServingCert {
        cert_pem: read("tls.crt")?,
        key_pem: read("tls.key")?,
        ca_bundle_pem: read("ca.crt").unwrap_or_default(),
        not_after: OffsetDateTime::now_utc(),
    })
}

/// Serves `router` on `addr` until `shutdown` resolves.
pub async fn serve(
    addr: SocketAddr,
    router: Router,
    source: CertSource,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let (first, mut refresh): (ServingCert, Refresh) = match source {
        CertSource::Directory(dir) => {
            let first = read_dir_cert(&dir)?;
            let refresh = move |current: &ServingCert| -> Result<Option<ServingCert>, CertError> {
                let latest = read_dir_cert(&dir)?;
                let changed =
                    latest.cert_pem != current.cert_pem || latest.key_pem != current.key_pem;
                Ok(changed.then_some(latest))
            };
            (first, Box::new(refresh))
        }
        CertSource::Generated { mut certs, publish } => {
            let first = certs.issue(OffsetDateTime::now_utc())?;
            publish.send_replace(Some(first.clone()));
            let refresh = move |current: &ServingCert| -> Result<Option<ServingCert>, CertError> {
                let now = OffsetDateTime::now_utc();
                if !certs.due(current, now) {
                    return Ok(None);
                }
                let next = certs.issue(now)?;
                publish.send_replace(Some(next.clone()));
                Ok(Some(next))
            };
            (first, Box::new(refresh))
        }
    };
    let tls = RustlsConfig::from_config(server_config(&first)?);

    let reload = tls.clone();
    let reloader = tokio::spawn(async move {
        let mut current = first;
        loop {
            tokio::time::sleep(RELOAD_INTERVAL).await;
            match refresh(&current)
                .and_then(|next| next.map(|n| server_config(&n).map(|c| (n, c))).transpose())
            {
                Ok(Some((next, config))) => {
                    reload.reload_from_config(config);
                    tracing::info!(not_after = %next.not_after, "webhook certificate replaced");
                    current = next;
                }
                Ok(None) => {}
                // Keep serving the previous certificate; a half-written file will settle.
                Err(error) => tracing::warn!(%error, "webhook certificate not reloaded"),
            }
        }
    });

    let handle = Handle::new();
    let stopper = handle.clone();
    tokio::spawn(async move {
        shutdown.await;
        stopper.graceful_shutdown(Some(Duration::from_secs(5)));
    });
    let mut server = axum_server::bind_rustls(addr, tls).handle(handle);
    server
        .http_builder()
        .http1()
        .header_read_timeout(Duration::from_secs(5));
    let result = server.serve(router.into_make_service()).await;
    reloader.abort();
    result.map_err(|source| ServeError::Io { addr, source })
}
