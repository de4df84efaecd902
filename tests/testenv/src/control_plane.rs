//! The API tests use: start a control plane (or share one per test binary) and talk to it.

use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tracing::info;

use crate::binaries;
use crate::error::{Error, Result};
use crate::namespace::{self, TestNamespace};
use crate::supervisor::{Ready, Report, SuperviseOptions};

/// How long [`ControlPlane::stop`] waits for the supervisor's teardown before SIGKILL.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// How to start a control plane.
#[derive(Debug, Clone)]
pub struct Options {
    /// Address kube-apiserver binds to, advertises and has in its certificate. Default
    /// 127.0.0.1; a network-namespace lab passes e.g. its bridge address.
    pub listen: IpAddr,
    /// Instance directory; `None` (the default) uses a fresh temporary directory named
    /// `metallb-testenv-*`. The directory is removed when the control plane stops.
    pub instance_dir: Option<PathBuf>,
    /// How long to wait for `/readyz` to answer `ok`.
    pub start_timeout: Duration,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            listen: IpAddr::V4(Ipv4Addr::LOCALHOST),
            instance_dir: None,
            start_timeout: Duration::from_secs(60),
        }
    }
}

/// A running etcd + kube-apiserver, owned by a supervisor child process.
///
/// The supervisor stops everything and removes the instance directory when this value is
/// dropped or [`stop`](ControlPlane::stop)ped, and also when this process exits or is killed,
/// which is what makes [`ControlPlane::shared`] (never dropped) safe.
#[derive(Debug)]
pub struct ControlPlane {
    ready: Ready,
    bin_dir: PathBuf,
    supervisor: Mutex<Option<Child>>,
    /// The names [`install_crds`](ControlPlane::install_crds) installed, or why it failed.
    pub(crate) crds: OnceLock<std::result::Result<Vec<String>, String>>,
}

impl ControlPlane {
    /// The control plane shared by all tests of this test binary, started on first use.
    ///
    /// # Panics
    ///
    /// When the control plane cannot be started; the message says why (build failure, port
    /// in use, the API server's last log lines). Every test that asks gets the same message.
    pub fn shared() -> &'static ControlPlane {
        match ControlPlane::try_shared() {
            Ok(cp) => cp,
            Err(err) => panic!("{err}"),
        }
    }

    /// Like [`ControlPlane::shared`], but returns the error instead of panicking.
    pub fn try_shared() -> Result<&'static ControlPlane> {
        static SHARED: OnceLock<std::result::Result<ControlPlane, String>> = OnceLock::new();
        SHARED
            .get_or_init(|| ControlPlane::start(Options::default()).map_err(|e| e.to_string()))
            .as_ref()
            .map_err(|e| Error::Shared(e.clone()))
    }

    /// Starts a new control plane owned by the returned value.
    ///
    /// Builds the Kubernetes binaries first if the cache is cold (minutes), then starts the
    /// supervisor and waits until kube-apiserver is ready.
    pub fn start(options: Options) -> Result<ControlPlane> {
        let started = Instant::now();
        let bin_dir = binaries::k8s_bin_dir()?;
        let supervise = SuperviseOptions {
            bin_dir: bin_dir.clone(),
            listen: options.listen,
            parent_pid: Some(std::process::id()),
            instance_dir: options.instance_dir,
            detach: false,
            start_timeout_secs: options.start_timeout.as_secs().max(1),
        };
        let (child, ready) = spawn_supervisor(&supervise, Stdio::inherit())?;
        info!(
            server = %ready.server,
            kubeconfig = %ready.kubeconfig.display(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "control plane ready"
        );
        Ok(ControlPlane {
            ready,
            bin_dir,
            supervisor: Mutex::new(Some(child)),
            crds: OnceLock::new(),
        })
    }

    /// The admin kubeconfig (client certificate in group `system:masters`).
    pub fn kubeconfig_path(&self) -> &Path {
        &self.ready.kubeconfig
    }

    /// The API server URL, `https://<listen>:<port>`.
    pub fn server(&self) -> &str {
        &self.ready.server
    }

    /// The instance directory (certificates, etcd data, `kube-apiserver.log`, `etcd.log`).
    pub fn dir(&self) -> &Path {
        &self.ready.dir
    }

    /// The directory with the `etcd`, `kube-apiserver` and `kubectl` binaries.
    pub fn bin_dir(&self) -> &Path {
        &self.bin_dir
    }

    /// Process ids of the supervisor, etcd and kube-apiserver, in that order.
    pub fn pids(&self) -> [u32; 3] {
        [
            self.ready.supervisor_pid,
            self.ready.etcd_pid,
            self.ready.apiserver_pid,
        ]
    }

    /// Whether the supervisor (and so the control plane) is still running.
    pub fn is_running(&self) -> bool {
        let mut guard = self.supervisor.lock().unwrap_or_else(|e| e.into_inner());
        guard
            .as_mut()
            .is_some_and(|child| matches!(child.try_wait(), Ok(None)))
    }

    /// Runs the harness's `kubectl` with this control plane's kubeconfig and returns stdout.
    ///
    /// A non-zero exit becomes [`Error::Kubectl`] carrying the arguments and stderr, so a
    /// test can assert on the server's message.
    pub fn kubectl<I, S>(&self, args: I) -> Result<String>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.run_kubectl(args, None)
    }

    /// Like [`kubectl`](ControlPlane::kubectl), with `input` on stdin (for `apply -f -`).
    pub fn kubectl_with_input<I, S>(&self, args: I, input: &str) -> Result<String>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.run_kubectl(args, Some(input))
    }

    fn run_kubectl<I, S>(&self, args: I, input: Option<&str>) -> Result<String>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let args: Vec<_> = args
            .into_iter()
            .map(|a| a.as_ref().to_os_string())
            .collect();
        let shown = args
            .iter()
            .map(|a| a.to_string_lossy())
            .collect::<Vec<_>>()
            .join(" ");
        let kubectl = self.bin_dir.join("kubectl");
        let mut child = Command::new(&kubectl)
            .arg("--kubeconfig")
            .arg(self.kubeconfig_path())
            // Discovery cache in the instance directory: nothing is written to ~/.kube, and
            // it is thrown away with the control plane.
            .arg("--cache-dir")
            .arg(self.dir().join("kubectl-cache"))
            .args(&args)
            .stdin(if input.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| Error::Spawn {
                what: kubectl.display().to_string(),
                source,
            })?;
        if let Some(input) = input {
            let mut stdin = child.stdin.take().expect("stdin is piped");
            stdin
                .write_all(input.as_bytes())
                .map_err(Error::io(format!("writing to kubectl {shown}")))?;
        }
        let output = child
            .wait_with_output()
            .map_err(Error::io(format!("waiting for kubectl {shown}")))?;
        if !output.status.success() {
            return Err(Error::Kubectl {
                args: shown,
                status: output.status,
                stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            });
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// A `kube::Client` for this control plane, authenticated as the admin.
    pub async fn client(&self) -> Result<kube::Client> {
        crate::client::from_kubeconfig(self.kubeconfig_path(), Duration::from_secs(30)).await
    }

    /// Creates a namespace for one test, named after `test_name` and unique in this process.
    ///
    /// Pass [`test_name!()`](crate::test_name) or any descriptive string.
    pub fn namespace(&self, test_name: &str) -> Result<TestNamespace> {
        let name = namespace::unique_name(test_name);
        self.kubectl(["create", "namespace", &name])?;
        Ok(TestNamespace::new(name))
    }

    /// Stops the control plane and waits until its processes and directory are gone.
    pub fn stop(self) -> Result<()> {
        self.stop_supervisor()
    }

    fn stop_supervisor(&self) -> Result<()> {
        let mut guard = self.supervisor.lock().unwrap_or_else(|e| e.into_inner());
        let Some(mut child) = guard.take() else {
            return Ok(());
        };
        let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM);
        let deadline = Instant::now() + STOP_TIMEOUT;
        while Instant::now() < deadline {
            if child
                .try_wait()
                .map_err(Error::io("waiting for the supervisor"))?
                .is_some()
            {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // Its components get SIGKILL through their parent-death signal.
        let _ = child.kill();
        let _ = child.wait();
        Err(Error::Supervisor(format!(
            "the supervisor did not stop within {} s and was killed; {} may remain",
            STOP_TIMEOUT.as_secs(),
            self.dir().display()
        )))
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        if let Err(err) = self.stop_supervisor() {
            tracing::warn!(%err, "stopping the control plane");
        }
    }
}

/// Starts `metallb-testenv supervise` and waits for its report.
///
/// `stderr` receives the supervisor's logs. On success the supervisor keeps running and owns
/// the control plane; the caller owns the returned child.
pub(crate) fn spawn_supervisor(
    options: &SuperviseOptions,
    stderr: Stdio,
) -> Result<(Child, Ready)> {
    let exe = binaries::supervisor_exe()?;
    let mut child = Command::new(&exe)
        .args(options.to_args())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .map_err(|source| Error::Spawn {
            what: format!("{} supervise", exe.display()),
            source,
        })?;
    let stdout = child.stdout.take().expect("stdout is piped");
    let mut line = String::new();
    let read = BufReader::new(stdout).read_line(&mut line);
    match serde_json::from_str::<Report>(&line) {
        Ok(Report::Ready(ready)) => Ok((child, ready)),
        Ok(Report::Failed(message)) => {
            let _ = child.wait();
            Err(Error::Supervisor(message))
        }
        Err(_) => {
            let _ = child.kill();
            let status = child
                .wait()
                .map_err(Error::io("waiting for the supervisor"))?;
            Err(Error::Supervisor(format!(
                "the supervisor {} exited ({status}) without a report (read: {read:?}, line: {line:?})",
                exe.display()
            )))
        }
    }
}
