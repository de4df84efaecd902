//! The process's stop signal: SIGTERM (the kubelet) or Ctrl-C, or a stop asked for by the
//! program itself, as a future any number of tasks can wait on.

use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;
use tracing::{error, info};

/// A clonable handle on the stop signal.
#[derive(Debug, Clone)]
pub struct Shutdown {
    tx: watch::Sender<bool>,
}

impl Shutdown {
    /// A signal only [`Shutdown::trigger`] fires (tests, embedded use).
    pub fn manual() -> Self {
        Shutdown {
            tx: watch::Sender::new(false),
        }
    }

    /// A signal that fires on SIGTERM or Ctrl-C, or on [`Shutdown::trigger`]. Needs a tokio
    /// runtime.
    pub fn on_signals() -> Self {
        let shutdown = Shutdown::manual();
        let fire = shutdown.clone();
        tokio::spawn(async move {
            let mut term = match signal(SignalKind::terminate()) {
                Ok(term) => term,
                Err(error) => {
                    error!(%error, "cannot watch SIGTERM; only Ctrl-C stops the process");
                    let _ = tokio::signal::ctrl_c().await;
                    fire.trigger();
                    return;
                }
            };
            tokio::select! {
                _ = term.recv() => info!("SIGTERM received"),
                _ = tokio::signal::ctrl_c() => info!("interrupt received"),
            }
            fire.trigger();
        });
        shutdown
    }

    /// Fires the signal.
    pub fn trigger(&self) {
        self.tx.send_replace(true);
    }

    /// Whether the signal has fired.
    pub fn is_triggered(&self) -> bool {
        *self.tx.borrow()
    }

    /// Resolves once the signal has fired (at once if it has already).
    pub fn wait(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut rx = self.tx.subscribe();
        async move {
            let _ = rx.wait_for(|fired| *fired).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_waiter_wakes_when_triggered_even_one_that_starts_late() {
        let shutdown = Shutdown::manual();
        let early = tokio::spawn(shutdown.wait());
        assert!(!shutdown.is_triggered());
        shutdown.trigger();
        early.await.unwrap();
        shutdown.wait().await;
        assert!(shutdown.is_triggered());
    }
}
