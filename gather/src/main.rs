//! `metallb-gather` (`/usr/bin/gather` in the product image): collects MetalLB's state for a
//! support case. See the library documentation for what and where.
//!
//! ```text
//! metallb-gather [--dest-dir /must-gather] [--namespace NS] [--since 2h | --since-time RFC3339]
//!                [--timeout 20s] [--kubeconfig FILE]
//! ```
//!
//! Exits 0 once the tree is written, whatever could not be collected (listed in
//! `gather.json`); 1 when the destination cannot be written or no cluster is configured.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use metallb_gather::{DEFAULT_TIMEOUT, Options, Since};
use metallb_runtime::cli::{ClientArgs, LogArgs, parse_duration};
use tracing::error;

#[derive(Debug, Parser)]
#[command(about = "Collects MetalLB's objects, logs and speaker state for a support case")]
struct Args {
    /// Where the tree is written (`oc adm must-gather` copies /must-gather back).
    #[arg(long, default_value = "/must-gather")]
    dest_dir: PathBuf,
    /// The MetalLB namespace; by default the `MetalLB` resource's.
    #[arg(long, short = 'n')]
    namespace: Option<String>,
    /// Only logs and events newer than this (Go duration, e.g. 2h or 1h0m0s).
    #[arg(long, env = "MUST_GATHER_SINCE")]
    since: Option<String>,
    /// Only logs and events from this time on (RFC 3339).
    #[arg(long, env = "MUST_GATHER_SINCE_TIME")]
    since_time: Option<String>,
    /// Limit of every API call (a list, a log, an exec).
    #[arg(long, default_value = "20s", value_parser = parse_duration)]
    timeout: Duration,
    #[command(flatten)]
    client: ClientArgs,
    #[command(flatten)]
    log: LogArgs,
}

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
    let since = Since::parse(args.since.as_deref(), args.since_time.as_deref())
        .map_err(anyhow::Error::msg)?;
    let client = args.client.client().await?;
    let options = Options {
        dest: args.dest_dir,
        namespace: args.namespace,
        since,
        timeout: if args.timeout.is_zero() {
            DEFAULT_TIMEOUT
        } else {
            args.timeout
        },
    };
    let summary = metallb_gather::gather(client, &options).await?;
    println!(
        "gathered namespace {} into {}: {} files, {} bytes, {} not collected, in {:.1}s",
        summary.namespace,
        options.dest.display(),
        summary.totals.files,
        summary.totals.bytes,
        summary.totals.errors.len(),
        summary.elapsed.as_secs_f64()
    );
    for line in &summary.totals.errors {
        println!("  not collected: {line}");
    }
    Ok(())
}
