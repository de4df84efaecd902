//! The controller's command line, in the library so the operator's tests can parse what it
//! renders with these very types.

use clap::Parser;
use metallb_runtime::cli::{ClientArgs, LeaseArgs, LogArgs, MetricsArgs, ScopeArgs};
use metallb_runtime::consts::CONTROLLER_LEASE;
use metallb_runtime::lease::TimingError;
use metallb_runtime::shutdown::Shutdown;
use tracing::info;

use crate::Settings;

/// Assigns external IPs from MetalLB address pools to Services of type LoadBalancer.
#[derive(Debug, Parser)]
#[command(name = "metallb-controller", version)]
pub struct Args {
    #[command(flatten)]
    pub scope: ScopeArgs,
    #[command(flatten)]
    pub metrics: MetricsArgs,
    /// This replica's name in the Lease and in events.
    #[arg(long, env = "POD_NAME")]
    pub pod_name: Option<String>,
    /// Name of the Lease that elects the active replica.
    #[arg(long, default_value = CONTROLLER_LEASE)]
    pub lease_name: String,
    #[command(flatten)]
    pub lease: LeaseArgs,
    #[command(flatten)]
    pub client: ClientArgs,
    #[command(flatten)]
    pub log: LogArgs,
}

impl Args {
    /// What the controller runs with; this replica's identity is the pod name, else the host
    /// name, else one made of the process id.
    pub fn settings(&self) -> Result<Settings, TimingError> {
        let identity = self
            .pod_name
            .clone()
            .filter(|name| !name.is_empty())
            .or_else(|| std::env::var("HOSTNAME").ok().filter(|h| !h.is_empty()))
            .unwrap_or_else(|| format!("metallb-controller-{}", std::process::id()));
        Ok(Settings {
            namespace: self.scope.namespace.clone(),
            lb_class: self.scope.lb_class(),
            identity,
            lease_name: self.lease_name.clone(),
            lease_timing: self.lease.timing()?,
        })
    }
}

/// Runs the controller as its binary does, until SIGTERM or Ctrl-C (then the Lease is
/// released) or until leadership is lost (an error, so that it restarts clean). Logging is
/// the caller's to set up, from `args.log`.
pub async fn run(args: Args) -> anyhow::Result<()> {
    let settings = args.settings()?;
    let client = args.client.client().await?;
    let listener = args.metrics.listen(&client).await?;
    info!(
        namespace = %settings.namespace,
        lb_class = settings.lb_class.as_deref().unwrap_or(""),
        identity = %settings.identity,
        "MetalLB controller starting"
    );
    let shutdown = Shutdown::on_signals();
    crate::run(client, settings, Some(listener), shutdown.wait()).await?;
    Ok(())
}
