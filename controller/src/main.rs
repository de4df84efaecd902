//! `metallb-controller`: assigns LoadBalancer IPs to Services. SIGTERM or Ctrl-C releases the
//! Lease and stops; losing the Lease ends the process with an error so that it restarts
//! clean.

use std::process::ExitCode;

use clap::Parser;
use metallb_controller::cli::{self, Args};
use tracing::error;

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    args.log.init();
    match cli::run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            error!("{error:#}");
            ExitCode::FAILURE
        }
    }
}
