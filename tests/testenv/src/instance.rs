//! One running etcd + kube-apiserver pair, owned by the supervisor process.

use std::fs::File;
use std::net::{IpAddr, Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tracing::{debug, info, warn};

use crate::error::{Error, Result};
use crate::pki::Pki;
use crate::{kubeconfig, tied};

/// How many times a start is retried when a freshly chosen port was taken in the meantime.
const PORT_RETRIES: usize = 3;
/// How long stopping waits for a component after SIGTERM before it uses SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(3);
/// Lines of a component's log quoted in an error.
const LOG_TAIL_LINES: usize = 25;

/// What to start.
#[derive(Debug, Clone)]
pub(crate) struct InstanceConfig {
    /// Directory holding `etcd` and `kube-apiserver`.
    pub bin_dir: PathBuf,
    /// Directory for certificates, data, logs and the kubeconfig. It must exist.
    pub dir: PathBuf,
    /// Address kube-apiserver binds to and advertises.
    pub listen: IpAddr,
    /// How long to wait for `/readyz`.
    pub start_timeout: Duration,
}

/// A running control plane.
#[derive(Debug)]
pub(crate) struct Instance {
    /// The instance directory.
    pub dir: PathBuf,
    /// The admin kubeconfig.
    pub kubeconfig: PathBuf,
    /// `https://<listen>:<port>`.
    pub server: String,
    pub etcd: Child,
    pub apiserver: Child,
}

/// Whether a start attempt may be retried with new ports.
enum Attempt {
    Ready(Instance),
    PortTaken(Error),
}

/// Reacts to a request to give up while starting (a signal, or the parent went away).
pub(crate) trait Abort {
    /// Waits a little; returns a reason when the start should be abandoned.
    fn pause(&mut self, period: Duration) -> impl Future<Output = Option<String>>;
}

impl Instance {
    /// Starts etcd and kube-apiserver and waits until `/readyz` answers `ok`.
    ///
    /// On failure everything started so far is stopped; the error quotes the relevant log.
    pub(crate) async fn start(config: &InstanceConfig, abort: &mut impl Abort) -> Result<Instance> {
        let pki = Pki::generate(&config.dir.join("pki"), config.listen)?;
        let mut attempt = 1;
        loop {
            match start_once(config, &pki, abort).await? {
                Attempt::Ready(instance) => return Ok(instance),
                Attempt::PortTaken(err) if attempt < PORT_RETRIES => {
                    warn!(attempt, error = %err, "a chosen port was taken; retrying with new ports");
                    attempt += 1;
                }
                Attempt::PortTaken(err) => return Err(err),
            }
        }
    }

    /// Returns a description of the first component that has exited, if any.
    pub(crate) fn exited_component(&mut self) -> Option<String> {
        for (name, child) in [
            ("etcd", &mut self.etcd),
            ("kube-apiserver", &mut self.apiserver),
        ] {
            if let Ok(Some(status)) = child.try_wait() {
                let log = log_tail(&self.dir.join(format!("{name}.log")));
                return Some(format!("{name} exited ({status}); last log lines:\n{log}"));
            }
        }
        None
    }

    /// Stops kube-apiserver, then etcd (SIGTERM, then SIGKILL after a grace period).
    pub(crate) fn stop(&mut self) {
        stop_child("kube-apiserver", &mut self.apiserver);
        stop_child("etcd", &mut self.etcd);
    }
}

async fn start_once(config: &InstanceConfig, pki: &Pki, abort: &mut impl Abort) -> Result<Attempt> {
    let loopback = IpAddr::V4(Ipv4Addr::LOCALHOST);
    // Hold all listeners until every port is chosen so the three are distinct.
    let etcd_client = reserve(loopback)?;
    let etcd_peer = reserve(loopback)?;
    let secure = reserve(config.listen)?;
    let ports = (port(&etcd_client), port(&etcd_peer), port(&secure));
    drop((etcd_client, etcd_peer, secure));
    let (client_port, peer_port, secure_port) = ports;

    let host = match config.listen {
        IpAddr::V4(ip) => ip.to_string(),
        IpAddr::V6(ip) => format!("[{ip}]"),
    };
    let server = format!("https://{host}:{secure_port}");
    let kubeconfig = config.dir.join("kubeconfig");
    kubeconfig::write(&kubeconfig, &server, pki)?;
    let data = config.dir.join("etcd");
    if data.exists() {
        // A state directory reused by `up` must not resurrect the previous cluster's objects.
        std::fs::remove_dir_all(&data)
            .map_err(Error::io(format!("clearing {}", data.display())))?;
    }
    let etcd_url = format!("http://127.0.0.1:{client_port}");
    let peer_url = format!("http://127.0.0.1:{peer_port}");
    let initial_cluster = format!("{ETCD_NAME}={peer_url}");
    let mut etcd = etcd_command(
        &config.bin_dir,
        ETCD_NAME,
        &data,
        &etcd_url,
        &peer_url,
        &initial_cluster,
    );
    let etcd = spawn_logged("etcd", &mut etcd, &config.dir)?;

    let mut apiserver = apiserver_command(
        &config.bin_dir,
        config.listen,
        secure_port,
        &etcd_url,
        &config.dir.join("apiserver-certs"),
        pki,
    );
    let apiserver = match spawn_logged("kube-apiserver", &mut apiserver, &config.dir) {
        Ok(child) => child,
        Err(err) => {
            let mut etcd = etcd;
            stop_child("etcd", &mut etcd);
            return Err(err);
        }
    };

    let mut instance = Instance {
        dir: config.dir.clone(),
        kubeconfig,
        server,
        etcd,
        apiserver,
    };
    match wait_ready(&mut instance, config.start_timeout, abort).await {
        Ok(()) => Ok(Attempt::Ready(instance)),
        Err(err) => {
            instance.stop();
            let logs = [
                std::fs::read_to_string(config.dir.join("kube-apiserver.log")).unwrap_or_default(),
                std::fs::read_to_string(config.dir.join("etcd.log")).unwrap_or_default(),
            ];
            if logs.iter().any(|l| l.contains("address already in use")) {
                Ok(Attempt::PortTaken(err))
            } else {
                Err(err)
            }
        }
    }
}

/// Polls `/readyz` until it says `ok`, a component exits, time runs out or `abort` fires.
async fn wait_ready(
    instance: &mut Instance,
    timeout: Duration,
    abort: &mut impl Abort,
) -> Result<()> {
    let started = Instant::now();
    let client =
        crate::client::from_kubeconfig(&instance.kubeconfig, Duration::from_secs(2)).await?;
    loop {
        if let Some(exited) = instance.exited_component() {
            return Err(Error::Start(exited));
        }
        let last_error = match crate::client::readyz(&client).await {
            Ok(body) if body.trim() == "ok" => {
                info!(elapsed_ms = started.elapsed().as_millis() as u64, server = %instance.server, "kube-apiserver is ready");
                return Ok(());
            }
            Ok(body) => body,
            Err(err) => err.to_string(),
        };
        debug!(%last_error, "kube-apiserver not ready yet");
        if started.elapsed() > timeout {
            return Err(Error::Start(format!(
                "kube-apiserver at {} was not ready after {} s (last /readyz answer: {last_error}); last log lines:\n{}",
                instance.server,
                timeout.as_secs(),
                log_tail(&instance.dir.join("kube-apiserver.log"))
            )));
        }
        if let Some(reason) = abort.pause(Duration::from_millis(100)).await {
            return Err(Error::Start(format!("start abandoned: {reason}")));
        }
    }
}

/// The etcd member name of a single-member instance.
const ETCD_NAME: &str = "metallb-testenv";

/// etcd as member `name` of the cluster `initial_cluster` (`name=peer-url,...`), serving
/// clients on `client_url` and peers on `peer_url`, with its data in `data`.
pub(crate) fn etcd_command(
    bin_dir: &Path,
    name: &str,
    data: &Path,
    client_url: &str,
    peer_url: &str,
    initial_cluster: &str,
) -> Command {
    let mut etcd = Command::new(bin_dir.join("etcd"));
    etcd.args(["--name", name, "--data-dir"])
        .arg(data)
        .args([
            "--listen-client-urls",
            client_url,
            "--advertise-client-urls",
            client_url,
        ])
        .args([
            "--listen-peer-urls",
            peer_url,
            "--initial-advertise-peer-urls",
            peer_url,
        ])
        .arg(format!("--initial-cluster={initial_cluster}"))
        // The data is thrown away after the run; fsync only slows the start on a busy disk.
        .args(["--unsafe-no-fsync", "--log-level", "warn"]);
    etcd
}

/// kube-apiserver on `listen:secure_port` with the certificates of `pki`, storing in
/// `etcd_servers` (comma-separated URLs); `cert_dir` is its own scratch directory.
pub(crate) fn apiserver_command(
    bin_dir: &Path,
    listen: IpAddr,
    secure_port: u16,
    etcd_servers: &str,
    cert_dir: &Path,
    pki: &Pki,
) -> Command {
    let mut apiserver = Command::new(bin_dir.join("kube-apiserver"));
    apiserver
        .arg(format!("--etcd-servers={etcd_servers}"))
        .arg(format!("--bind-address={listen}"))
        .arg(format!("--advertise-address={listen}"))
        .arg(format!("--secure-port={secure_port}"))
        .arg(path_flag("--cert-dir", cert_dir))
        .arg(path_flag("--tls-cert-file", &pki.serving_cert))
        .arg(path_flag("--tls-private-key-file", &pki.serving_key))
        .arg(path_flag("--client-ca-file", &pki.ca_cert))
        .arg("--service-account-issuer=https://kubernetes.default.svc.cluster.local")
        .arg(path_flag("--service-account-key-file", &pki.sa_pub))
        .arg(path_flag("--service-account-signing-key-file", &pki.sa_key))
        .arg("--service-cluster-ip-range=10.96.0.0/12,fd00:10:96::/108")
        .arg("--authorization-mode=RBAC")
        // On by default already; listed so the webhook tests never depend on a default.
        .arg("--enable-admission-plugins=MutatingAdmissionWebhook,ValidatingAdmissionWebhook")
        .arg("--allow-privileged=true")
        // Nothing routes to the kubernetes Service here, and a loopback advertise address is
        // not a valid endpoint, so the endpoint reconciler would only log errors.
        .arg("--endpoint-reconciler-type=none")
        .arg("--profiling=false");
    apiserver
}

fn reserve(addr: IpAddr) -> Result<TcpListener> {
    TcpListener::bind((addr, 0)).map_err(|source| Error::Port { addr, source })
}

fn port(listener: &TcpListener) -> u16 {
    listener.local_addr().map(|a| a.port()).unwrap_or_default()
}

fn path_flag(flag: &str, path: &Path) -> String {
    format!("{flag}={}", path.display())
}

/// Starts a component with stdout and stderr going to `<dir>/<name>.log`.
pub(crate) fn spawn_logged(name: &str, cmd: &mut Command, dir: &Path) -> Result<Child> {
    let log_path = dir.join(format!("{name}.log"));
    let log =
        File::create(&log_path).map_err(Error::io(format!("creating {}", log_path.display())))?;
    let log2 = log
        .try_clone()
        .map_err(Error::io("duplicating a log file handle"))?;
    cmd.stdin(Stdio::null()).stdout(log).stderr(log2);
    let child = tied::spawn(cmd).map_err(|source| Error::Spawn {
        what: format!("{name} ({})", cmd.get_program().to_string_lossy()),
        source,
    })?;
    debug!(name, pid = child.id(), "started");
    Ok(child)
}

pub(crate) fn stop_child(name: &str, child: &mut Child) {
    if let Ok(Some(_)) = child.try_wait() {
        return;
    }
    let pid = Pid::from_raw(child.id() as i32);
    let _ = kill(pid, Signal::SIGTERM);
    let deadline = Instant::now() + STOP_GRACE;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            debug!(name, "stopped");
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    warn!(name, "did not stop after SIGTERM; killing it");
    let _ = child.kill();
    let _ = child.wait();
}

/// The last lines of a log file, or a note saying it could not be read.
pub(crate) fn log_tail(path: &Path) -> String {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let lines: Vec<&str> = text.lines().collect();
            let start = lines.len().saturating_sub(LOG_TAIL_LINES);
            lines[start..].join("\n")
        }
        Err(err) => format!("(cannot read {}: {err})", path.display()),
    }
}
