//! Metrics as OpenShift monitoring expects them, in-process (what kube-rbac-proxy does in
//! front of upstream MetalLB): HTTPS with a certificate read from a directory, and `/metrics`
//! only for callers the API server vouches for.
//!
//! - **Certificate**: `tls.crt` and `tls.key` in a directory — the layout of a
//!   `kubernetes.io/tls` Secret mounted as a volume, which is what OpenShift's service CA
//!   writes for a Service annotated `service.beta.openshift.io/serving-cert-secret-name`.
//!   The files are read again every [`RELOAD_INTERVAL`]; a rotated certificate is served
//!   from the next connection on, a half-written one is ignored until it settles.
//! - **Authentication**: the `Authorization: Bearer` token goes to a TokenReview; no token or
//!   an unauthenticated one is answered 401.
//! - **Authorization**: a SubjectAccessReview for the authenticated user, verb `get` on the
//!   non-resource URL of the request (`/metrics`): what a ClusterRole with
//!   `nonResourceURLs: ["/metrics"]` grants (Prometheus' ServiceAccount on OpenShift has it).
//!   Denied is 403; an API server that does not answer in time is 503, never a pass.
//! - Verdicts are cached per token and path for [`ALLOWED_TTL`] (allowed) or
//!   [`DENIED_TTL`] (denied), so a scrape every few seconds costs the API server two calls a
//!   minute; errors are never cached.
//! - `/healthz` and `/readyz` stay open on the same port: the kubelet's probes carry no token.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum_server::tls_rustls::{RustlsAcceptor, RustlsConfig};
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use k8s_openapi::api::authorization::v1::{
    NonResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use kube::Client;
use kube::api::{Api, PostParams};
use rustls::ServerConfig;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
use tokio::net::TcpListener;
use tracing::{info, warn};

/// How often the certificate files are read again.
pub const RELOAD_INTERVAL: Duration = Duration::from_secs(10);
/// How long an allowed verdict is reused.
pub const ALLOWED_TTL: Duration = Duration::from_secs(60);
/// How long a denied verdict is reused.
pub const DENIED_TTL: Duration = Duration::from_secs(10);
/// Limit of each TokenReview and SubjectAccessReview.
const REVIEW_TIMEOUT: Duration = Duration::from_secs(5);
/// Cached verdicts kept at most; the cache starts over beyond it.
const CACHE_LIMIT: usize = 256;

/// Why serving over TLS could not start.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file of the certificate directory cannot be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The files do not make a certificate and its key.
    #[error("the certificate in {dir}: {reason}")]
    Invalid {
        /// The directory.
        dir: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// What the API server said about a caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Authenticated as this user and allowed.
    Allowed(String),
    /// No valid token.
    Unauthenticated(String),
    /// Authenticated as this user, not allowed.
    Forbidden(String),
}

/// Asks the API server who a token is and whether it may read a path; caches the answers.
pub struct Authorizer {
    client: Client,
    cache: Mutex<HashMap<(String, String), (Instant, Verdict)>>,
}

impl std::fmt::Debug for Authorizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the cache: its keys are tokens.
        f.debug_struct("Authorizer").finish_non_exhaustive()
    }
}

impl Authorizer {
    /// An authorizer asking through `client` (whose identity needs `create` on
    /// `tokenreviews` and `subjectaccessreviews`).
    pub fn new(client: Client) -> Self {
        Authorizer {
            client,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The verdict for `token` reading `path`; an error when the API server does not answer.
    pub async fn verdict(&self, token: &str, path: &str) -> Result<Verdict, String> {
        let key = (token.to_owned(), path.to_owned());
        let now = Instant::now();
        if let Some((at, verdict)) = self.cache().get(&key) {
            let ttl = match verdict {
                Verdict::Allowed(_) => ALLOWED_TTL,
                _ => DENIED_TTL,
            };
            if now.duration_since(*at) < ttl {
                return Ok(verdict.clone());
            }
        }
        let verdict = tokio::time::timeout(REVIEW_TIMEOUT, self.review(token, path))
            .await
            .map_err(|_| format!("no review within {REVIEW_TIMEOUT:?}"))?
            .map_err(|e| e.to_string())?;
        let mut cache = self.cache();
        if cache.len() >= CACHE_LIMIT {
            cache.clear();
        }
        cache.insert(key, (now, verdict.clone()));
        Ok(verdict)
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), (Instant, Verdict)>> {
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn review(&self, token: &str, path: &str) -> Result<Verdict, kube::Error> {
        let tokens: Api<TokenReview> = Api::all(self.client.clone());
        let review = TokenReview {
            spec: TokenReviewSpec {
                token: token.to_owned(),
                ..TokenReviewSpec::default()
            },
            ..TokenReview::default()
        };
        let status = tokens
            .create(&PostParams::default(), &review)
            .await?
            .status
            .unwrap_or_default();
        let user = match status.user {
            Some(user) if status.authenticated == Some(true) => user,
            _ => {
                let reason = status.error.unwrap_or_else(|| "token not accepted".into());
                return Ok(Verdict::Unauthenticated(reason));
            }
        };
        let name = user.username.clone().unwrap_or_default();
        let access: Api<SubjectAccessReview> = Api::all(self.client.clone());
        let review = SubjectAccessReview {
            spec: SubjectAccessReviewSpec {
                user: user.username,
                uid: user.uid,
                groups: user.groups,
                extra: user.extra,
                non_resource_attributes: Some(NonResourceAttributes {
                    path: Some(path.to_owned()),
                    verb: Some("get".to_owned()),
                }),
                ..SubjectAccessReviewSpec::default()
            },
            ..SubjectAccessReview::default()
        };
        let status = access
            .create(&PostParams::default(), &review)
            .await?
            .status
            .unwrap_or_default();
        Ok(if status.allowed {
            Verdict::Allowed(name)
        } else {
            Verdict::Forbidden(name)
        })
    }
}

/// `router` with `paths` open only to authorized callers (see the module documentation).
pub fn protect(
    router: Router,
    authorizer: Arc<Authorizer>,
    paths: &'static [&'static str],
) -> Router {
    router.layer(middleware::from_fn_with_state((authorizer, paths), guard))
}

async fn guard(
    State((authorizer, paths)): State<(Arc<Authorizer>, &'static [&'static str])>,
    request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path().to_owned();
    if !paths.contains(&path.as_str()) {
        return next.run(request).await;
    }
    let token = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty());
    let Some(token) = token else {
        return unauthorized("no bearer token");
    };
    match authorizer.verdict(token, &path).await {
        Ok(Verdict::Allowed(_)) => next.run(request).await,
        Ok(Verdict::Unauthenticated(reason)) => unauthorized(&reason),
        Ok(Verdict::Forbidden(user)) => (
            StatusCode::FORBIDDEN,
            format!("{user} may not get {path}\n"),
        )
            .into_response(),
        Err(reason) => {
            warn!(%reason, "metrics authorization unavailable");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "authorization unavailable\n",
            )
                .into_response()
        }
    }
}

fn unauthorized(reason: &str) -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Bearer")],
        format!("unauthorized: {reason}\n"),
    )
        .into_response()
}

/// The certificate and key of `dir`, as the files' text (to notice changes) and a config.
fn load(dir: &Path) -> Result<(String, Arc<ServerConfig>), TlsError> {
    let read = |name: &str| {
        let path = dir.join(name);
        std::fs::read(&path).map_err(|source| TlsError::Read { path, source })
    };
    let (cert, key) = (read("tls.crt")?, read("tls.key")?);
    let invalid = |reason: String| TlsError::Invalid {
        dir: dir.to_owned(),
        reason,
    };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert)
        .collect::<Result<_, _>>()
        .map_err(|e| invalid(format!("tls.crt: {e}")))?;
    if chain.is_empty() {
        return Err(invalid("tls.crt holds no certificate".into()));
    }
    let private =
        PrivateKeyDer::from_pem_slice(&key).map_err(|e| invalid(format!("tls.key: {e}")))?;
    let mut config =
        ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| invalid(e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(chain, private)
            .map_err(|e| invalid(format!("certificate and key do not match: {e}")))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let mut fingerprint = String::from_utf8_lossy(&cert).into_owned();
    fingerprint.push_str(&String::from_utf8_lossy(&key));
    Ok((fingerprint, Arc::new(config)))
}

/// Serves `router` over HTTPS on `listener` with the certificate in `dir` until `shutdown`
/// resolves.
pub async fn serve_tls(
    listener: TcpListener,
    router: Router,
    dir: PathBuf,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (mut current, config) = load(&dir).map_err(std::io::Error::other)?;
    let tls = RustlsConfig::from_config(config);
    let reload = tls.clone();
    let reloader = tokio::spawn(async move {
        loop {
            tokio::time::sleep(RELOAD_INTERVAL).await;
            match load(&dir) {
                Ok((latest, config)) if latest != current => {
                    reload.reload_from_config(config);
                    info!(dir = %dir.display(), "metrics certificate replaced");
                    current = latest;
                }
                Ok(_) => {}
                Err(error) => warn!(%error, "metrics certificate not reloaded"),
            }
        }
    });
    if let Ok(addr) = listener.local_addr() {
        info!(%addr, "serving /healthz, /readyz and /metrics over HTTPS, /metrics to authorized callers");
    }
    let handle = axum_server::Handle::<SocketAddr>::new();
    let stopper = handle.clone();
    tokio::spawn(async move {
        shutdown.await;
        stopper.graceful_shutdown(Some(Duration::from_secs(2)));
    });
    let served = axum_server::Server::<SocketAddr>::from_listener(listener)
        .acceptor(RustlsAcceptor::new(tls))
        .handle(handle)
        .serve(router.into_make_service())
        .await;
    reloader.abort();
    served
}
