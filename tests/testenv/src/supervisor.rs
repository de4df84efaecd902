//! The supervisor: the process that owns etcd and kube-apiserver.
//!
//! Test binaries never run destructors of statics, and may be killed outright, so the control
//! plane cannot be owned by the test process itself. Instead the library starts
//! `metallb-testenv supervise --parent-pid <test pid>`, which starts the components, reports
//! on stdout, and tears everything down (processes and directory) when its parent disappears
//! or it receives SIGTERM, SIGINT or SIGHUP. The components also get SIGKILL as their
//! parent-death signal, which covers the supervisor itself being killed.

use std::ffi::OsString;
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::signal::unix::{Signal, SignalKind, signal};
use tracing::{error, info, warn};

use crate::error::{Error, Result};
use crate::instance::{Abort, Instance, InstanceConfig};
use crate::state;

/// Prefix of the temporary instance directories, recognised by `hack/check-leftovers`.
pub const TEMP_DIR_PREFIX: &str = "metallb-testenv-";

/// How often the supervisor checks that its parent is still there.
const PARENT_POLL: Duration = Duration::from_millis(100);

/// Options of `metallb-testenv supervise`.
#[derive(Debug, Clone, clap::Args)]
pub struct SuperviseOptions {
    /// Directory holding the etcd and kube-apiserver binaries.
    #[arg(long)]
    pub bin_dir: PathBuf,
    /// Address kube-apiserver binds to and advertises.
    #[arg(long, default_value = "127.0.0.1")]
    pub listen: IpAddr,
    /// Stop when the process with this id is no longer the supervisor's parent.
    #[arg(long)]
    pub parent_pid: Option<u32>,
    /// Use this directory instead of a fresh temporary one; it is removed on exit.
    #[arg(long)]
    pub instance_dir: Option<PathBuf>,
    /// Start a new session, so the supervisor outlives the terminal that ran `up`.
    #[arg(long)]
    pub detach: bool,
    /// Seconds to wait for `/readyz`.
    #[arg(long, default_value_t = 60)]
    pub start_timeout_secs: u64,
}

impl SuperviseOptions {
    /// The command-line arguments (after `supervise`) that reproduce these options.
    pub(crate) fn to_args(&self) -> Vec<OsString> {
        let mut args: Vec<OsString> = vec![
            "supervise".into(),
            "--bin-dir".into(),
            self.bin_dir.clone().into(),
            "--listen".into(),
            self.listen.to_string().into(),
            "--start-timeout-secs".into(),
            self.start_timeout_secs.to_string().into(),
        ];
        if let Some(pid) = self.parent_pid {
            args.extend(["--parent-pid".into(), pid.to_string().into()]);
        }
        if let Some(dir) = &self.instance_dir {
            args.extend(["--instance-dir".into(), dir.clone().into()]);
        }
        if self.detach {
            args.push("--detach".into());
        }
        args
    }
}

/// The one line the supervisor prints on stdout once it knows how the start went.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Report {
    /// The API server answered `/readyz` with `ok`.
    Ready(Ready),
    /// The start failed; the components are already stopped and the directory removed.
    Failed(String),
}

/// Where a ready control plane is, as reported by its supervisor.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Ready {
    /// The instance directory (certificates, etcd data, logs, kubeconfig).
    pub dir: PathBuf,
    /// The admin kubeconfig.
    pub kubeconfig: PathBuf,
    /// The API server URL.
    pub server: String,
    /// Process id of the supervisor.
    pub supervisor_pid: u32,
    /// Process id of etcd.
    pub etcd_pid: u32,
    /// Process id of kube-apiserver.
    pub apiserver_pid: u32,
}

/// Runs the supervisor until it is told to stop; returns the process exit code.
pub fn run(options: SuperviseOptions) -> i32 {
    if options.detach {
        // Fails only if we already lead a session, which is just as good.
        let _ = nix::unistd::setsid();
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(err) => {
            report(&Report::Failed(format!(
                "cannot create a tokio runtime: {err}"
            )));
            return 1;
        }
    };
    runtime.block_on(supervise(options))
}

async fn supervise(options: SuperviseOptions) -> i32 {
    let mut watch = match Watch::new(options.parent_pid) {
        Ok(w) => w,
        Err(err) => {
            report(&Report::Failed(format!(
                "cannot install signal handlers: {err}"
            )));
            return 1;
        }
    };
    let dir = match instance_dir(options.instance_dir.as_deref()) {
        Ok(dir) => dir,
        Err(err) => {
            report(&Report::Failed(err.to_string()));
            return 1;
        }
    };
    let config = InstanceConfig {
        bin_dir: options.bin_dir.clone(),
        dir: dir.clone(),
        listen: options.listen,
        start_timeout: Duration::from_secs(options.start_timeout_secs),
    };
    let mut instance = match Instance::start(&config, &mut watch).await {
        Ok(instance) => instance,
        Err(err) => {
            remove_dir(&dir);
            report(&Report::Failed(err.to_string()));
            return 1;
        }
    };
    // `down` and `kubeconfig` find the supervisor of a state directory through this file.
    if let Err(err) = std::fs::write(dir.join(state::PID_FILE), std::process::id().to_string()) {
        warn!(%err, "cannot write the pid file; `down` will not find this supervisor");
    }
    report(&Report::Ready(Ready {
        dir: dir.clone(),
        kubeconfig: instance.kubeconfig.clone(),
        server: instance.server.clone(),
        supervisor_pid: std::process::id(),
        etcd_pid: instance.etcd.id(),
        apiserver_pid: instance.apiserver.id(),
    }));

    let code = loop {
        if let Some(reason) = watch.pause(PARENT_POLL).await {
            info!(%reason, "stopping the control plane");
            break 0;
        }
        if let Some(exited) = instance.exited_component() {
            error!("{exited}");
            break 1;
        }
    };
    instance.stop();
    remove_dir(&dir);
    code
}

/// Creates the temporary instance directory, or prepares the given one.
fn instance_dir(given: Option<&Path>) -> Result<PathBuf> {
    match given {
        Some(dir) => {
            state::claim(dir)?;
            Ok(dir.to_path_buf())
        }
        None => tempfile::Builder::new()
            .prefix(TEMP_DIR_PREFIX)
            .tempdir()
            .map(tempfile::TempDir::keep)
            .map_err(Error::io("creating a temporary directory")),
    }
}

fn remove_dir(dir: &Path) {
    if let Err(err) = std::fs::remove_dir_all(dir)
        && err.kind() != std::io::ErrorKind::NotFound
    {
        warn!(dir = %dir.display(), %err, "cannot remove the instance directory");
    }
}

fn report(report: &Report) {
    let line = serde_json::to_string(report).expect("reports always serialise");
    let mut stdout = std::io::stdout().lock();
    // The reader may be gone (e.g. `up` was interrupted); the supervisor carries on regardless.
    let _ = writeln!(stdout, "{line}");
    let _ = stdout.flush();
}

/// Everything that tells the supervisor to stop: signals and the parent going away.
struct Watch {
    parent: Option<u32>,
    term: Signal,
    int: Signal,
    hup: Signal,
}

impl Watch {
    fn new(parent: Option<u32>) -> std::io::Result<Watch> {
        Ok(Watch {
            parent,
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            hup: signal(SignalKind::hangup())?,
        })
    }

    fn parent_gone(&self) -> bool {
        // The supervisor is the parent's child, so when the parent dies it is re-parented and
        // the parent id changes; unlike kill(pid, 0) this cannot be fooled by pid reuse.
        self.parent
            .is_some_and(|pid| std::os::unix::process::parent_id() != pid)
    }
}

impl Abort for Watch {
    async fn pause(&mut self, period: Duration) -> Option<String> {
        if self.parent_gone() {
            return Some("the parent process exited".into());
        }
        tokio::select! {
            _ = tokio::time::sleep(period) => None,
            _ = self.term.recv() => Some("SIGTERM".into()),
            _ = self.int.recv() => Some("SIGINT".into()),
            _ = self.hup.recv() => Some("SIGHUP".into()),
        }
    }
}
