//! `metallb-controller`: assigns LoadBalancer IPs to Services. SIGTERM or Ctrl-C releases the
//! Lease and stops; losing the Lease ends the process with an error so that it restarts
//! clean.

use std::process::ExitCode;

use clap::Parser;
use metallb_controller::cli::Args;
use metallb_runtime::shutdown::Shutdown;
use tracing::{error, info};

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    args.log.init();
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            error!("{error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
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
    metallb_controller::run(client, settings, Some(listener), shutdown.wait()).await?;
    Ok(())
}
