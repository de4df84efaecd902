//! `metallb-speaker run`: the engine driven by a static configuration file. It applies the
//! file's plan, re-reads the file on SIGHUP and applies only the differences, and leaves the
//! way DESIGN 7.4 asks on SIGTERM (GRACEFUL_SHUTDOWN community, the delay, then Cease).

use std::{path::PathBuf, time::Duration};

use tokio::signal::unix::{SignalKind, signal};
use tracing::{error, info};

use crate::{config, engine::Engine};

/// What `metallb-speaker run` was started with.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// The static configuration file.
    pub config: PathBuf,
    /// Unix socket serving `metallb-speaker show`; none when unset.
    pub control: Option<PathBuf>,
    /// On SIGTERM, announce every route with GRACEFUL_SHUTDOWN and wait before withdrawing.
    pub graceful_shutdown: bool,
    /// How long to wait with the community on before withdrawing.
    pub graceful_shutdown_delay: Duration,
}

/// Runs until SIGTERM or SIGINT. A configuration refused at start-up is an error; one refused
/// on reload is logged and the running one stays.
pub async fn run(options: RunOptions) -> anyhow::Result<()> {
    let plan = config::load(&options.config)?;
    let mut engine = Engine::start(plan, options.control.clone())?;
    info!(config = %options.config.display(), "speaker running");

    let mut hangup = signal(SignalKind::hangup())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    loop {
        tokio::select! {
            event = engine.next_event() => engine.on_driver_event(event),
            _ = hangup.recv() => match config::load(&options.config) {
                Ok(plan) => engine.reload(plan),
                Err(error) => error!(%error, "configuration refused; the running one stays"),
            },
            _ = terminate.recv() => break,
            _ = interrupt.recv() => break,
        }
    }
    engine
        .leave(options.graceful_shutdown, options.graceful_shutdown_delay)
        .await;
    info!("speaker stopped");
    Ok(())
}
