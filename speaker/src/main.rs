//! `metallb-speaker`: on a cluster node without a subcommand; `run`, `check` and `show` for
//! labs and debugging (see `cli`).

use std::process::ExitCode;

use anyhow::Context as _;
use clap::Parser;
use metallb_speaker::cli::{Cli, Command};
use metallb_speaker::runner::{self, RunOptions};
use metallb_speaker::{config, node, show};

/// jemalloc gives memory back after the bursts of a large cluster's replans (one plan built
/// while the last is still held): 95 instead of 108 MiB resident with 10,000 Services, the
/// same at idle.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        None => {
            cli.node.log.init();
            runtime().and_then(|runtime| runtime.block_on(node::run(cli.node)))
        }
        Some(Command::Run {
            config,
            control,
            graceful_shutdown,
            graceful_shutdown_delay,
            log,
        }) => {
            log.init();
            let options = RunOptions {
                config,
                control: Some(control),
                graceful_shutdown,
                graceful_shutdown_delay,
            };
            runtime().and_then(|runtime| runtime.block_on(runner::run(options)))
        }
        Some(Command::Check { config }) => config::check(&config)
            .map(|summary| println!("{summary}"))
            .map_err(Into::into),
        Some(Command::Show {
            what,
            name,
            control,
            json,
        }) => show::show(&what.request(name.as_deref()), &control, json),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("metallb-speaker: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// The speaker's drivers share one thread: they wait on sockets and timers, not on CPU.
fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")
}
