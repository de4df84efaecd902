//! The operator's command line, in the library so tests can parse the operator's own
//! Deployment command with these very types.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{ArgAction, Parser, Subcommand};
use metallb_api::DEFAULT_NAMESPACE;
use metallb_runtime::cli::{ClientArgs, LeaseArgs, LogArgs};
use metallb_runtime::consts::{OPERATOR_HTTP_PORT, OPERATOR_LEASE, WEBHOOK_PORT};

use crate::render::DEFAULT_OPERAND_IMAGE;
use crate::webhook;

/// The MetalLB operator for metallb-rs.
#[derive(Debug, Parser)]
#[command(
    name = "metallb-operator",
    version,
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    /// A tool command instead of running the operator.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// How to run the operator.
    #[command(flatten)]
    pub run: RunArgs,
}

/// Tool commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write the plain install into DIR (default: manifests/install of the source tree).
    Manifests {
        /// Write nothing; fail when DIR differs from what would be written.
        #[arg(long)]
        check: bool,
        /// Where to write.
        dir: Option<PathBuf>,
    },
    /// Write the OLM bundle into DIR (default: bundle/ of the source tree).
    Bundle {
        /// Write nothing; fail when DIR differs from what would be written.
        #[arg(long)]
        check: bool,
        /// The CSV's version.
        #[arg(long, default_value = env!("CARGO_PKG_VERSION"))]
        version: String,
        /// The operator's (and operands') image.
        #[arg(long, default_value = DEFAULT_OPERAND_IMAGE)]
        image: String,
        /// Where to write.
        dir: Option<PathBuf>,
    },
}

/// How to run the operator.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Namespace of the operator, the MetalLB resource and the operands.
    #[arg(long, env = "OPERATOR_NAMESPACE", default_value = DEFAULT_NAMESPACE)]
    pub namespace: String,
    /// Image of the controller and the speakers.
    #[arg(long, env = "OPERAND_IMAGE", default_value = DEFAULT_OPERAND_IMAGE)]
    pub operand_image: String,
    /// Serve the controller's and speakers' metrics over HTTPS, only to callers the API
    /// server authorizes, with certificates from OpenShift's service CA: `auto` on OpenShift
    /// (`config.openshift.io` served), `true` or `false`.
    #[arg(long, env = "METRICS_TLS", value_enum, default_value_t = MetricsTls::Auto)]
    pub metrics_tls: MetricsTls,
    /// Listen address of /healthz, /readyz and /metrics (plain HTTP).
    #[arg(long, default_value_t = SocketAddr::from(([0, 0, 0, 0], OPERATOR_HTTP_PORT)))]
    pub http_addr: SocketAddr,
    /// Listen address of the HTTPS webhook server.
    #[arg(long, default_value_t = SocketAddr::from(([0, 0, 0, 0], WEBHOOK_PORT)))]
    pub webhook_addr: SocketAddr,
    /// Serve the webhooks with tls.crt and tls.key from this directory (reloaded when they
    /// change) instead of generated certificates; the caBundles are then left to whoever
    /// mounts them (OLM).
    #[arg(long, conflicts_with = "webhook_url")]
    pub cert_dir: Option<PathBuf>,
    /// Register the webhooks at this URL instead of the Service, e.g. https://127.0.0.1:9443
    /// for an API server running on this machine.
    #[arg(long, value_parser = parse_webhook_url)]
    pub webhook_url: Option<String>,
    /// Service through which the API server calls the webhooks.
    #[arg(long, default_value = webhook::SERVICE)]
    pub webhook_service: String,
    /// Reconcile only while holding the Lease; false for a single replica run by hand.
    #[arg(long, default_value_t = true, action = ArgAction::Set)]
    pub leader_elect: bool,
    /// Name of the Lease in the operator's namespace.
    #[arg(long, default_value = OPERATOR_LEASE)]
    pub lease_name: String,
    /// Identity written into the Lease; default: the host name and process id.
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,
    #[command(flatten)]
    pub lease: LeaseArgs,
    #[command(flatten)]
    pub client: ClientArgs,
    #[command(flatten)]
    pub log: LogArgs,
}

/// Whether the operands serve metrics over HTTPS (see `render::Monitoring`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum MetricsTls {
    /// On OpenShift only.
    Auto,
    /// Always (the `<component>-metrics-tls` Secrets must come from somewhere).
    True,
    /// Never: plain HTTP.
    False,
}

fn parse_webhook_url(url: &str) -> Result<String, String> {
    let url = url.trim_end_matches('/');
    match webhook::url_host(url) {
        Some(_) => Ok(url.to_owned()),
        None => Err("expected https://HOST[:PORT]".to_owned()),
    }
}
