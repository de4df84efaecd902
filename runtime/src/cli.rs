//! Arguments the binaries share, as clap argument groups to `#[command(flatten)]` into each
//! binary's own arguments: how to reach the API server ([`ClientArgs`]), how to log
//! ([`LogArgs`]), which MetalLB installation to serve ([`ScopeArgs`]), where to serve the admin
//! endpoints ([`MetricsArgs`]) and, for binaries that elect a leader, the Lease timing
//! ([`LeaseArgs`]).

use std::io::IsTerminal;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::ValueEnum;
use kube::Client;
use kube::config::{KubeConfigOptions, Kubeconfig};
use metallb_api::DEFAULT_NAMESPACE;
use metallb_api::duration::GoDuration;
use tokio::net::TcpListener;
use tracing_subscriber::EnvFilter;

use crate::consts::METRICS_PORT;
use crate::lease::LeaseTiming;

/// Why the API client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The kubeconfig file given with `--kubeconfig` cannot be read.
    #[error("reading the kubeconfig {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        source: kube::config::KubeconfigError,
    },
    /// Neither a kubeconfig nor the in-cluster configuration works.
    #[error("finding the cluster configuration: {0}")]
    Infer(#[from] kube::config::InferConfigError),
    /// The kubeconfig does not describe a usable cluster.
    #[error("loading the kubeconfig: {0}")]
    Load(#[from] kube::config::KubeconfigError),
    /// The client cannot be built from the configuration.
    #[error("building the Kubernetes client: {0}")]
    Build(#[from] kube::Error),
}

/// How to reach the API server.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ClientArgs {
    /// Kubeconfig file; by default the in-cluster configuration, or `$KUBECONFIG`.
    #[arg(long, env = "KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
}

impl ClientArgs {
    /// A client for the configured cluster. Requests have no read timeout (watches stay open
    /// for minutes); callers that must not hang bound their calls themselves, as [`crate::lease`]
    /// does.
    pub async fn client(&self) -> Result<Client, ClientError> {
        crate::install_crypto_provider();
        let config = match &self.kubeconfig {
            Some(path) => {
                let file = Kubeconfig::read_from(path).map_err(|source| ClientError::Read {
                    path: path.clone(),
                    source,
                })?;
                kube::Config::from_custom_kubeconfig(file, &KubeConfigOptions::default()).await?
            }
            None => kube::Config::infer().await?,
        };
        Ok(Client::try_from(config)?)
    }
}

/// Which MetalLB installation a controller or speaker serves.
#[derive(Debug, Clone, clap::Args)]
pub struct ScopeArgs {
    /// The MetalLB namespace: configuration objects and Leases live there.
    #[arg(long, env = "METALLB_NAMESPACE", default_value = DEFAULT_NAMESPACE)]
    pub namespace: String,
    /// Handle only Services with this `spec.loadBalancerClass`; unset handles only Services
    /// without one.
    #[arg(long, env = "METALLB_LB_CLASS")]
    pub lb_class: Option<String>,
}

impl ScopeArgs {
    /// The load-balancer class, an empty one meaning none.
    pub fn lb_class(&self) -> Option<String> {
        self.lb_class.clone().filter(|class| !class.is_empty())
    }
}

/// Where `/metrics`, `/healthz` and `/readyz` are served.
#[derive(Debug, Clone, clap::Args)]
pub struct MetricsArgs {
    /// Address of `/metrics`, `/healthz` and `/readyz`; by default every address.
    #[arg(long)]
    pub metrics_host: Option<IpAddr>,
    /// Port of `/metrics`, `/healthz` and `/readyz`.
    #[arg(long, default_value_t = METRICS_PORT)]
    pub metrics_port: u16,
    /// Serve HTTPS with the `tls.crt` and `tls.key` of this directory, `/metrics` only to
    /// callers the API server authenticates and authorizes (`get` on `/metrics`); plain HTTP
    /// when unset.
    #[arg(long, env = "METALLB_METRICS_TLS_DIR")]
    pub metrics_tls_dir: Option<PathBuf>,
}

impl MetricsArgs {
    /// Binds the admin endpoints' socket.
    pub async fn bind(&self) -> std::io::Result<TcpListener> {
        crate::admin::bind(self.metrics_host, self.metrics_port).await
    }

    /// Binds the admin endpoints' listener: secure with `--metrics-tls-dir`, asking the API
    /// server through `client`, plain without.
    pub async fn listen(&self, client: &Client) -> std::io::Result<crate::admin::Listener> {
        let tcp = self.bind().await?;
        Ok(match &self.metrics_tls_dir {
            Some(dir) => {
                let authorizer = Arc::new(crate::secure::Authorizer::new(client.clone()));
                crate::admin::Listener::secure(tcp, dir.clone(), authorizer)
            }
            None => tcp.into(),
        })
    }
}

/// MetalLB's log levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogLevel {
    /// Everything, including traces.
    All,
    /// Debug and above.
    Debug,
    /// Info and above.
    Info,
    /// Warnings and errors.
    Warn,
    /// Errors only.
    Error,
    /// Nothing.
    None,
}

impl LogLevel {
    /// The `tracing` filter directive of this level.
    pub fn directive(self) -> &'static str {
        match self {
            LogLevel::All => "trace",
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
            LogLevel::None => "off",
        }
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, fields flattened.
    Json,
}

/// How to log. `RUST_LOG`, when set, overrides the level.
#[derive(Debug, Clone, clap::Args)]
pub struct LogArgs {
    /// Log level: all, debug, info, warn, error or none.
    #[arg(long, value_enum, default_value_t = LogLevel::Info)]
    pub log_level: LogLevel,
    /// Log lines as text or as JSON objects.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

impl LogArgs {
    /// Installs the global subscriber writing to stderr. Call once, first thing in `main`.
    pub fn init(&self) {
        let filter = EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| EnvFilter::new(self.log_level.directive()));
        let builder = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr);
        match self.log_format {
            LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
            LogFormat::Json => builder.json().flatten_event(true).init(),
        }
    }
}

/// Timing of a leader election (client-go's flags, with its defaults).
#[derive(Debug, Clone, clap::Args)]
pub struct LeaseArgs {
    /// How long a Lease stays valid without renewal.
    #[arg(long, default_value = "15s", value_parser = parse_duration)]
    pub lease_duration: Duration,
    /// How long the leader keeps failing to renew before it stops leading; must be shorter
    /// than the lease duration.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub renew_deadline: Duration,
    /// How often the leader renews and a candidate retries.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub retry_period: Duration,
}

impl LeaseArgs {
    /// The timing, checked: the renew deadline must end before the Lease can expire.
    pub fn timing(&self) -> Result<LeaseTiming, crate::lease::TimingError> {
        LeaseTiming::new(self.lease_duration, self.renew_deadline, self.retry_period)
    }
}

/// A duration in Go syntax (`1m30s`, `300ms`), as Kubernetes flags take them.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    GoDuration(text.to_owned())
        .parse()
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Probe {
        #[command(flatten)]
        log: LogArgs,
        #[command(flatten)]
        lease: LeaseArgs,
    }

    #[test]
    fn metallb_level_names_and_go_durations_parse() {
        let probe = Probe::try_parse_from([
            "probe",
            "--log-level=none",
            "--log-format=json",
            "--lease-duration=4s",
            "--renew-deadline=2500ms",
        ])
        .unwrap();
        assert_eq!(probe.log.log_level.directive(), "off");
        assert_eq!(probe.log.log_format, LogFormat::Json);
        let timing = probe.lease.timing().unwrap();
        assert_eq!(timing.renew_deadline(), Duration::from_millis(2500));
        assert_eq!(timing.retry(), Duration::from_secs(2));
    }

    #[test]
    fn a_renew_deadline_not_shorter_than_the_lease_is_refused() {
        let probe =
            Probe::try_parse_from(["probe", "--lease-duration=5s", "--renew-deadline=5s"]).unwrap();
        let error = probe.lease.timing().unwrap_err().to_string();
        assert!(error.contains("renew deadline 5s"), "{error}");
    }

    #[test]
    fn an_unknown_level_is_refused_with_the_choices() {
        let error = Probe::try_parse_from(["probe", "--log-level=verbose"]).unwrap_err();
        assert!(error.to_string().contains("debug"), "{error}");
    }
}
